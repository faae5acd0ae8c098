//! The lock-free pool of delivery slots.
//!
//! Slots live in pages that double in size (256, 512, 1024, … slots) and are
//! allocated on first use, so a producer that never has more than a few
//! thousand records in flight never pays for more. A page, once allocated,
//! stays until the pool is dropped: slot addresses are stable and an index
//! is all a future, a ring or librdkafka's opaque needs to carry.
//!
//! Free slots form lock-free stacks (Treiber's), linked through each
//! slot's `next` field. `acquire` pops a free index, or, when none is free,
//! claims a never-used index from `next`. In steady state every acquisition
//! is a reuse: no allocation per record. A stack rather than a queue: the
//! slot released last is reused first, while its cache lines are still
//! warm, and a push or a pop is one CAS.
//!
//! # One stack per thread group
//!
//! There are [`SHARDS`] stacks. A thread releases to the stack of its
//! number (`sync::thread_number`) and acquires from it, and pops the other
//! stacks in turn only when its own is empty; only when every stack was
//! found empty does it create a slot. Producing threads that await their
//! own futures so each keep a stack of their own, and no line is written
//! per record by every producer (one shared stack head was: a profile with
//! four producing threads put `Pool::acquire` at 6% of all samples, against
//! 4% with one). A slot found on no stack because it moved between stacks
//! during the scan makes one slot more, which later acquisitions reuse, so
//! the pool still grows only to about what is held at once.
//!
//! # The stack and its ABA guard
//!
//! `head` packs a 32-bit tag with `index + 1` of the top slot (0: empty).
//! Every successful push and pop increments the tag, so a pop that read
//! `head` and the top slot's `next`, and was overtaken by pops and pushes
//! that put the same slot back on top, fails its CAS instead of installing
//! a stale `next`. (The tag would have to wrap around, 2³² operations
//! within one pop, to fool it.) Push publishes the slot's emptied cells with
//! its Release CAS; pop's Acquire load and CAS see them and the `next` link.
//!
//! # Scanning while the pool grows
//!
//! `acquire` claims a fresh index from `next` *before* it allocates and
//! publishes the page holding it, so `next` can count indices whose page
//! does not exist yet. A scan (`for_each`, behind `stats()`) may run at any
//! time, so it does not trust `next` alone: it walks the pages, skips one
//! not yet published, and reads the slots of a published one after an
//! Acquire load of its pointer. Skipping loses nothing: `acquire` returns
//! an index only after its page is published, so a slot on an unpublished
//! page was handed to nobody and holds no record. Once every thread that
//! acquired has been joined (as `fail_unreported` requires), every page
//! below `next` is published and a scan sees every slot.
//!
//! The pool itself is not the bound on records in flight (the ledger is):
//! a slot is held until its future has read the report, and a caller may
//! keep any number of futures unread without blocking its own `produce`.
//! The pool grows to what is held at once (records in flight plus reports
//! not yet read) and keeps that many slots for reuse.

use std::fmt;
use std::ptr;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use crossbeam::utils::CachePadded;

use crate::delivery::slot::Slot;
use crate::sync::bugs::{self, Bug};
use crate::sync::{AtomicPtr, AtomicU64, AtomicUsize};

/// Slots in the first page; page `k` holds `FIRST_PAGE << k`.
#[cfg(not(aioproducer_loom))]
const FIRST_PAGE: usize = 256;
#[cfg(aioproducer_loom)]
const FIRST_PAGE: usize = 2;

/// Free stacks (module docs).
#[cfg(not(aioproducer_loom))]
const SHARDS: usize = 4;
#[cfg(aioproducer_loom)]
const SHARDS: usize = 2;

/// Enough pages for any `u32` index.
const PAGES: usize = 32;

/// The most slots: every index must fit in a ticket's 32 bits.
const MAX_SLOTS: usize = u32::MAX as usize;

/// The pool of delivery slots.
pub struct Pool {
    pages: [AtomicPtr<Slot>; PAGES],
    /// Tops of the free stacks: tag (high 32 bits) and `index + 1` (0:
    /// empty) each.
    free: [CachePadded<AtomicU64>; SHARDS],
    /// Indices handed out so far (fresh slots).
    next: CachePadded<AtomicUsize>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("created", &self.created())
            .field("in_use", &self.in_use())
            .finish()
    }
}

/// The free stack's head word: a tag (high 32 bits) bumped by every push
/// and pop, and `index + 1` of the top slot (low 32 bits; 0: empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StackHead(u64);

impl StackHead {
    /// The index of the top slot, if any.
    fn top(self) -> Option<u32> {
        (self.link() != 0).then(|| self.link() - 1)
    }

    /// The top as a `next` link: `index + 1`, or 0 for none.
    fn link(self) -> u32 {
        self.0 as u32
    }

    /// The next head: a new tag over `link` (`index + 1`, or 0).
    fn retag(self, link: u32) -> Self {
        let step = u64::from(!bugs::active(Bug::UntaggedStack));
        Self((((self.0 >> 32).wrapping_add(step)) << 32) | u64::from(link))
    }
}

/// The stack the calling thread releases to and acquires from first.
fn home_stack() -> usize {
    crate::sync::thread_number() % SHARDS
}

/// Page number and offset of slot `index`.
fn locate(index: usize) -> (usize, usize) {
    let scaled = index / FIRST_PAGE + 1;
    let page = (usize::BITS - 1 - scaled.leading_zeros()) as usize;
    (page, index - page_start(page))
}

/// Index of the first slot of `page`.
fn page_start(page: usize) -> usize {
    FIRST_PAGE * ((1 << page) - 1)
}

fn page_len(page: usize) -> usize {
    FIRST_PAGE << page
}

impl Default for Pool {
    fn default() -> Self {
        Self::new()
    }
}

impl Pool {
    /// An empty pool; slots are created as they are first needed.
    pub fn new() -> Self {
        Self {
            pages: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            free: std::array::from_fn(|_| CachePadded::new(AtomicU64::new(0))),
            next: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    /// Takes a free slot, or creates one when none is free.
    ///
    /// # Panics
    /// When 2³²−1 slots are held at once (hundreds of GiB of them).
    pub fn acquire(&self) -> u32 {
        let home = home_stack();
        for k in 0..SHARDS {
            if let Some(index) = self.pop(&self.free[(home + k) % SHARDS]) {
                return index;
            }
        }
        // Relaxed: `next` only hands out distinct numbers; the page pointer
        // (Acquire/Release in `page`) publishes the memory.
        let index = self.next.fetch_add(1, Relaxed);
        assert!(
            index < MAX_SLOTS,
            "more than {MAX_SLOTS} delivery slots held"
        );
        self.page(locate(index).0);
        index as u32
    }

    /// The slot behind `index`.
    ///
    /// # Panics
    /// If `index` was never handed out by [`acquire`](Self::acquire).
    pub fn slot(&self, index: u32) -> &Slot {
        let (page, offset) = locate(index as usize);
        let Some(slots) = self.published(page) else {
            panic!("slot index {index} was never handed out")
        };
        &slots[offset]
    }

    /// The slots of `page`, if it is published.
    fn published(&self, page: usize) -> Option<&[Slot]> {
        // Acquire: pairs with the Release that published the page.
        let base = self.pages[page].load(Acquire);
        // SAFETY: a non-null page pointer was published by `page` with
        // `page_len(page)` initialised slots, and the page stays allocated
        // until `self` is dropped.
        (!base.is_null()).then(|| unsafe { std::slice::from_raw_parts(base, page_len(page)) })
    }

    /// The page, allocated and published on first use.
    fn page(&self, page: usize) -> *mut Slot {
        let current = self.pages[page].load(Acquire);
        if !current.is_null() {
            return current;
        }
        let fresh: Box<[Slot]> = (0..page_len(page)).map(|_| Slot::default()).collect();
        let fresh = Box::into_raw(fresh).cast::<Slot>();
        // AcqRel: Release publishes the new page's slots; Acquire sees the
        // winner's when we lose.
        match self.pages[page].compare_exchange(ptr::null_mut(), fresh, AcqRel, Acquire) {
            Ok(_) => fresh,
            Err(winner) => {
                // SAFETY: `fresh` came from `Box::into_raw` above and lost the
                // race, so nobody else has seen it.
                drop(unsafe {
                    Box::from_raw(ptr::slice_from_raw_parts_mut(fresh, page_len(page)))
                });
                winner
            }
        }
    }

    /// Returns a slot to the pool.
    ///
    /// # Safety
    /// The caller owns the slot (see [`Slot::reset`]).
    pub unsafe fn release(&self, index: u32) {
        // SAFETY: forwarded contract.
        unsafe { self.slot(index).reset() };
        self.push(&self.free[home_stack()], index);
    }

    /// Pops a free index from the stack topped by `free`.
    fn pop(&self, free: &AtomicU64) -> Option<u32> {
        // Acquire: see the slot (and its `next`) as its pusher left it.
        let mut head = StackHead(free.load(Acquire));
        loop {
            let top = head.top()?;
            // Relaxed: a stale `next` (the slot was taken meanwhile) is
            // harmless, the tag makes the CAS below fail.
            let next = self.slot(top).next.load(Relaxed);
            // AcqRel: Acquire as above; Release keeps the tag chain ordered.
            match free.compare_exchange_weak(head.0, head.retag(next).0, AcqRel, Acquire) {
                Ok(_) => return Some(top),
                Err(actual) => head = StackHead(actual),
            }
        }
    }

    /// Pushes a free index on the stack topped by `free`.
    fn push(&self, free: &AtomicU64, index: u32) {
        let slot = self.slot(index);
        let mut head = StackHead(free.load(Relaxed));
        loop {
            // Relaxed: published by the Release CAS below.
            slot.next.store(head.link(), Relaxed);
            // Release: the next popper sees the emptied slot and `next`.
            match free.compare_exchange_weak(head.0, head.retag(index + 1).0, Release, Relaxed) {
                Ok(_) => return,
                Err(actual) => head = StackHead(actual),
            }
        }
    }

    /// Runs `f` on every slot created so far whose page is published (module
    /// docs, scanning while the pool grows): every slot handed out, and,
    /// once every thread that acquired is joined, every slot created.
    pub fn for_each(&self, mut f: impl FnMut(u32, &Slot)) {
        let created = self.created();
        for page in 0..PAGES {
            let start = page_start(page);
            if start >= created {
                break;
            }
            // Unpublished: its slots are not handed out yet (module docs).
            let Some(slots) = self.published(page) else {
                continue;
            };
            for (offset, slot) in slots.iter().take(created - start).enumerate() {
                f((start + offset) as u32, slot);
            }
        }
    }

    /// Slots created so far (indices claimed; see [`for_each`](Self::for_each)
    /// for whose pages exist).
    pub fn created(&self) -> usize {
        // Relaxed: a count; a page's slots are read only after the Acquire
        // load of its pointer (`published`).
        self.next.load(Relaxed)
    }

    /// Slots currently out of the pool: a scan of every slot's state, for
    /// statistics (a racy snapshot, and O(slots created)); safe while other
    /// threads acquire and grow the pool.
    pub fn in_use(&self) -> usize {
        let mut in_use = 0;
        self.for_each(|_, slot| in_use += usize::from(slot.in_use()));
        in_use
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for (page, pointer) in self.pages.iter().enumerate() {
            let base = pointer.load(Acquire);
            if !base.is_null() {
                // SAFETY: the page came from `Box::into_raw` of a boxed slice
                // of `page_len(page)` slots, and we are its last user.
                drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(base, page_len(page))) });
            }
        }
    }
}

#[cfg(all(test, not(aioproducer_loom)))]
mod tests {
    use super::*;

    #[test]
    fn locate_walks_doubling_pages() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(FIRST_PAGE - 1), (0, FIRST_PAGE - 1));
        assert_eq!(locate(FIRST_PAGE), (1, 0));
        assert_eq!(locate(3 * FIRST_PAGE - 1), (1, 2 * FIRST_PAGE - 1));
        assert_eq!(locate(3 * FIRST_PAGE), (2, 0));
    }

    #[test]
    fn a_scan_while_the_pool_grows_never_panics() {
        use std::sync::atomic::AtomicBool;
        let pool = Pool::new();
        let grown = AtomicBool::new(false);
        let scans = std::thread::scope(|scope| {
            scope.spawn(|| {
                // Pages of up to 2^19 slots are allocated along the way.
                for _ in 0..1 << 20 {
                    pool.acquire();
                }
                // Relaxed: only ends the loop below; the scope joins.
                grown.store(true, Relaxed);
            });
            let mut scans = 0_u64;
            while !grown.load(Relaxed) {
                assert_eq!(pool.in_use(), 0, "no slot holds a record");
                scans += 1;
            }
            scans
        });
        assert!(scans > 0);
        assert_eq!(pool.created(), 1 << 20);
        let mut seen = 0;
        pool.for_each(|index, _| {
            assert_eq!(index, seen, "every slot once, in order");
            seen += 1;
        });
        assert_eq!(seen, 1 << 20, "after the growth, every slot is scanned");
    }

    #[test]
    fn acquire_creates_when_none_is_free_then_reuses() {
        let pool = Pool::new();
        let taken: Vec<u32> = (0..600).map(|_| pool.acquire()).collect();
        assert_eq!(pool.created(), 600);
        // `in_use` counts slots holding a record.
        // SAFETY: owned and unpublished; emptied again below.
        unsafe {
            pool.slot(taken[3]).occupy(
                crate::Record::new("t"),
                None,
                crate::delivery::ledger::Parity::from_odd(false),
            )
        };
        assert_eq!(pool.in_use(), 1);
        // SAFETY: as above.
        drop(unsafe { pool.slot(taken[3]).unoccupy() });
        let mut distinct = taken.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 600);
        // SAFETY: each index is owned and unpublished.
        unsafe { pool.release(taken[7]) };
        // SAFETY: as above.
        unsafe { pool.release(taken[9]) };
        // Last released, first reused (a stack); then a fresh one.
        assert_eq!(pool.acquire(), taken[9]);
        assert_eq!(pool.acquire(), taken[7]);
        assert_eq!(pool.created(), 600);
        assert_eq!(pool.acquire(), 600);
        assert_eq!(pool.created(), 601);
    }
}
