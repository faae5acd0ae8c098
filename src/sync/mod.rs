//! The synchronisation shim: every atomic, lock, cell, thread and waker the
//! crate uses comes from here.
//!
//! In a normal build these are the `std`, `parking_lot`, `crossbeam` and
//! `futures` types. Built with `RUSTFLAGS="--cfg aioproducer_loom"` (see
//! `scripts/loom`), they are [loom]'s model-checked equivalents, so the loom
//! models in `loom-tests/` run the crate's real protocols, not copies of them.
//!
//! Two substitutions are not one-to-one and are worth knowing about:
//!
//! - [`ArrayQueue`] (crossbeam) uses plain `std` atomics that loom cannot see.
//!   Under loom it becomes a `Mutex<VecDeque>` with the same bounded
//!   `push`/`pop` contract, so loom checks *our* use of the ring (its
//!   orderings, the wake-ups around it) but not crossbeam's internals.
//! - [`AtomicWaker`] is `futures`' type normally and loom's own under loom.
//!
//! One more thing to know when reading the code: loom 0.7.3 lets a plain
//! `store` land between the read and the write of another thread's
//! read-modify-write on the same atomic (tokio-rs/loom#254, unfixed), and
//! then reports lost updates that cannot happen. Where a flag is both
//! stored by one thread and swapped or CASed by another (the parker's
//! `sleeping`, a remote's `force` and `deadline`), the store is written as
//! a `swap`. On the paths concerned (going idle, forcing a hand-over, arming
//! a timer) the extra cost is nil.
//!
//! [loom]: https://docs.rs/loom
//!
//! Built on the shim, the crate's own blocking and waking primitives:
//! [`wait_list`] (wait lists for backpressure and flush), [`park`] (idle
//! threads), [`baton`] (a worker's core, handed between threads),
//! [`block_on`] (a plain thread waiting on a future), and [`bugs`] (the
//! loom twins' seeded bugs).

pub(crate) mod baton;
pub(crate) mod block_on;
pub(crate) mod bugs;
pub(crate) mod park;
pub(crate) mod wait_list;

/// What a thread will do with a line it [`prefetch`]es.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intent {
    /// Only read it.
    Read,
    /// Write it (an atomic read-modify-write, say): the line is fetched
    /// exclusive, so the write need not wait again to take it from the
    /// core that has it.
    Write,
}

/// Starts loading the cache line holding `address` into this core's cache:
/// a hint, which writes nothing and never faults, whatever the address.
///
/// For a thread about to read many slots that other cores wrote (a worker
/// the records of the tickets it popped, `rdk:bg` the states of the
/// records it completes): each such read misses the cache, and when the
/// reads come one after another, with an atomic read-modify-write between
/// them (a full barrier on x86), the misses come one after another too.
/// Hinting a chunk of them first lets them overlap. A no-op under loom and
/// on architectures other than x86_64.
#[inline(always)]
pub(crate) fn prefetch<T>(address: *const T, intent: Intent) {
    #[cfg(all(target_arch = "x86_64", not(aioproducer_loom)))]
    match intent {
        // SAFETY: `prefetcht0` only hints the cache: it never faults and
        // changes no memory, whatever the address; SSE, which it needs, is
        // part of x86_64's baseline.
        Intent::Read => unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
        },
        // SAFETY: as above for `prefetchw`, which x86_64 processors without
        // it (Intel's before Broadwell) run as a no-op; it touches neither
        // the stack nor the flags.
        Intent::Write => unsafe {
            std::arch::asm!(
                "prefetchw [{}]",
                in(reg) address,
                options(nostack, preserves_flags, readonly)
            );
        },
    }
    #[cfg(not(all(target_arch = "x86_64", not(aioproducer_loom))))]
    let _ = (address, intent);
}

/// [`prefetch`]es every cache line of `value`.
#[inline(always)]
pub(crate) fn prefetch_lines<T>(value: &T, intent: Intent) {
    /// A cache line on every x86_64 this runs on.
    const LINE: usize = 64;
    let start = value as *const T as usize;
    let end = start + std::mem::size_of::<T>();
    let mut line = start & !(LINE - 1);
    while line < end {
        prefetch(line as *const u8, intent);
        line += LINE;
    }
}

#[cfg(not(aioproducer_loom))]
mod imp {
    pub(crate) use std::sync::atomic::{
        fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize,
    };
    pub(crate) use std::sync::Arc;
    pub(crate) use std::thread;

    pub(crate) use futures::task::AtomicWaker;

    /// A small number for the calling thread, the same on every call:
    /// threads are numbered in the order they first ask.
    pub(crate) fn thread_number() -> usize {
        use std::cell::Cell;
        use std::sync::atomic::Ordering::Relaxed;
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static NUMBER: Cell<Option<usize>> = const { Cell::new(None) };
        }
        NUMBER.with(|number| {
            number.get().unwrap_or_else(|| {
                // Relaxed: only hands out distinct numbers.
                let fresh = NEXT.fetch_add(1, Relaxed);
                number.set(Some(fresh));
                fresh
            })
        })
    }

    /// A mutex with `parking_lot`'s infallible `lock()`.
    pub(crate) type Mutex<T> = parking_lot::Mutex<T>;

    /// The bounded MPMC queue behind every ring and free list.
    pub(crate) type ArrayQueue<T> = crossbeam::queue::ArrayQueue<T>;

    /// An `UnsafeCell` whose accesses go through closures, so the loom build
    /// can track every read and write (tokio's `loom/std/unsafe_cell.rs` idea).
    #[derive(Debug, Default)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }

        /// Runs `f` with a shared pointer to the value.
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Runs `f` with a unique pointer to the value.
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }

    /// Parks the current thread for at most `timeout`.
    pub(crate) fn park_timeout(timeout: std::time::Duration) {
        std::thread::park_timeout(timeout);
    }
}

#[cfg(aioproducer_loom)]
mod imp {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::atomic::{
        fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize,
    };
    pub(crate) use loom::sync::Arc;
    pub(crate) use loom::thread;

    /// A number for the calling (loom) thread, the same on every call and
    /// in every execution of a model: its index in the execution, which
    /// loom shows only in the id's `Debug` form (loom threads share the OS
    /// thread's thread-locals, so the std version would number them all
    /// alike).
    pub(crate) fn thread_number() -> usize {
        let id = format!("{:?}", loom::thread::current().id());
        let digits: String = id.chars().filter(char::is_ascii_digit).collect();
        digits.parse().expect("loom's ThreadId(N)")
    }

    use std::collections::VecDeque;
    use std::task::Waker;

    /// loom's `AtomicWaker` behind the `futures` method names.
    #[derive(Debug, Default)]
    pub(crate) struct AtomicWaker(loom::future::AtomicWaker);

    impl AtomicWaker {
        pub(crate) fn new() -> Self {
            Self(loom::future::AtomicWaker::new())
        }

        pub(crate) fn register(&self, waker: &Waker) {
            self.0.register_by_ref(waker);
        }

        pub(crate) fn wake(&self) {
            self.0.wake();
        }

        pub(crate) fn take(&self) -> Option<Waker> {
            self.0.take_waker()
        }
    }

    /// loom's mutex behind `parking_lot`'s infallible `lock()`.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            self.0
                .lock()
                .expect("a loom model panicked while holding a lock")
        }
    }

    /// A loom-visible stand-in for crossbeam's `ArrayQueue`: bounded, FIFO,
    /// `push` hands the value back when full.
    #[derive(Debug)]
    pub(crate) struct ArrayQueue<T> {
        items: Mutex<VecDeque<T>>,
        capacity: usize,
    }

    impl<T> ArrayQueue<T> {
        pub(crate) fn new(capacity: usize) -> Self {
            assert!(capacity > 0, "capacity must be non-zero");
            Self {
                items: Mutex::new(VecDeque::with_capacity(capacity)),
                capacity,
            }
        }

        pub(crate) fn push(&self, value: T) -> Result<(), T> {
            let mut items = self.items.lock();
            if items.len() == self.capacity {
                return Err(value);
            }
            items.push_back(value);
            Ok(())
        }

        pub(crate) fn pop(&self) -> Option<T> {
            self.items.lock().pop_front()
        }

        pub(crate) fn len(&self) -> usize {
            self.items.lock().len()
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.items.lock().is_empty()
        }

        pub(crate) fn capacity(&self) -> usize {
            self.capacity
        }
    }

    /// Time does not pass inside a loom model: a timed park is a yield, which
    /// is a legal spurious wake-up for every caller.
    pub(crate) fn park_timeout(_timeout: std::time::Duration) {
        loom::thread::yield_now();
    }
}

pub(crate) use imp::*;
