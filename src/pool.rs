//! The lock-free pool of delivery slots.
//!
//! Slots live in pages that double in size (256, 512, 1024, … slots) and are
//! allocated on first use, so a producer that never has more than a few
//! thousand records in flight never pays for more. A page, once allocated,
//! stays until the pool is dropped: slot addresses are stable and an index
//! is all a future, a ring or librdkafka's opaque needs to carry.
//!
//! Free slots are indices in a bounded lock-free queue (crossbeam's
//! `ArrayQueue`, sized for every slot the pool may ever create). `acquire`
//! pops a free index, or, when none is free and the pool is below capacity,
//! claims a never-used index with a CAS on `next`. In steady state every
//! acquisition is a reuse: no allocation per record.
//!
//! The pool's capacity is the producer's bound on records in flight (queued,
//! in librdkafka, or completed but not yet observed by their future). A
//! caller that finds the pool exhausted waits on `space`, which `release`
//! notifies.

use std::fmt;
use std::ptr;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};

use crossbeam::utils::CachePadded;

use crate::loom::{ArrayQueue, AtomicPtr, AtomicUsize};
use crate::notify::Notify;
use crate::slot::Slot;

/// Slots in the first page; page `k` holds `FIRST_PAGE << k`.
#[cfg(not(aioproducer_loom))]
const FIRST_PAGE: usize = 256;
#[cfg(aioproducer_loom)]
const FIRST_PAGE: usize = 2;

/// Enough pages for any `u32` index.
const PAGES: usize = 32;

/// The pool of delivery slots.
pub struct Pool {
    pages: [AtomicPtr<Slot>; PAGES],
    free: ArrayQueue<u32>,
    /// Indices handed out so far (fresh slots); never exceeds `capacity`.
    next: CachePadded<AtomicUsize>,
    capacity: usize,
    /// Notified when a slot is released.
    pub(crate) space: Notify,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("capacity", &self.capacity)
            .field("created", &self.created())
            .field("in_use", &self.in_use())
            .finish()
    }
}

/// Page number and offset of slot `index`.
fn locate(index: usize) -> (usize, usize) {
    let scaled = index / FIRST_PAGE + 1;
    let page = (usize::BITS - 1 - scaled.leading_zeros()) as usize;
    (page, index - FIRST_PAGE * ((1 << page) - 1))
}

fn page_len(page: usize) -> usize {
    FIRST_PAGE << page
}

impl Pool {
    /// A pool that will hold at most `capacity` slots.
    pub fn new(capacity: usize) -> Self {
        assert!(
            capacity > 0 && capacity <= u32::MAX as usize,
            "pool capacity {capacity} out of range"
        );
        Self {
            pages: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            free: ArrayQueue::new(capacity),
            next: CachePadded::new(AtomicUsize::new(0)),
            capacity,
            space: Notify::new(),
        }
    }

    /// Takes a free slot, or creates one below capacity. `None` when all
    /// `capacity` slots are in use.
    pub fn try_acquire(&self) -> Option<u32> {
        if let Some(index) = self.free.pop() {
            return Some(index);
        }
        // Relaxed: `next` only hands out distinct numbers; the page pointer
        // (Acquire/Release in `page`) publishes the memory.
        let index = self
            .next
            .fetch_update(Relaxed, Relaxed, |n| (n < self.capacity).then_some(n + 1))
            .ok()?;
        self.page(locate(index).0);
        Some(index as u32)
    }

    /// The slot behind `index`.
    pub fn slot(&self, index: u32) -> &Slot {
        let (page, offset) = locate(index as usize);
        // Acquire: pairs with the Release that published the page.
        let base = self.pages[page].load(Acquire);
        assert!(!base.is_null(), "slot index {index} was never handed out");
        debug_assert!(offset < page_len(page));
        // SAFETY: the page holds `page_len(page)` initialised slots, stays
        // allocated until `self` is dropped, and `offset` is within it.
        unsafe { &*base.add(offset) }
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

    /// Returns a slot to the pool and wakes one caller waiting for space.
    ///
    /// # Safety
    /// The caller owns the slot (see [`Slot::reset`]).
    pub unsafe fn release(&self, index: u32) {
        // SAFETY: forwarded contract.
        unsafe { self.slot(index).reset() };
        if self.free.push(index).is_err() {
            unreachable!("the free list has room for every slot");
        }
        self.space.notify_one();
    }

    /// Runs `f` on every slot ever created.
    pub fn for_each(&self, mut f: impl FnMut(u32, &Slot)) {
        let created = self.created();
        for index in 0..created as u32 {
            f(index, self.slot(index));
        }
    }

    /// The most slots the pool will hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Slots created so far.
    pub fn created(&self) -> usize {
        self.next.load(Relaxed)
    }

    /// Slots currently out of the pool (racy snapshot).
    pub fn in_use(&self) -> usize {
        self.created().saturating_sub(self.free.len())
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
    fn acquire_creates_up_to_capacity_then_reuses() {
        let pool = Pool::new(600);
        let taken: Vec<u32> = (0..600).map(|_| pool.try_acquire().unwrap()).collect();
        assert_eq!(pool.try_acquire(), None);
        assert_eq!(pool.created(), 600);
        assert_eq!(pool.in_use(), 600);
        let mut distinct = taken.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 600);
        // SAFETY: each index is owned and unpublished.
        unsafe { pool.release(taken[7]) };
        assert_eq!(pool.try_acquire(), Some(taken[7]));
        assert_eq!(pool.created(), 600);
    }
}
