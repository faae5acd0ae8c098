//! The baton: a try-lock that gives one thread at a time a worker's
//! hand-over state, so that a producer who finds the worker asleep can hand
//! its records over itself instead of waking it.
//!
//! Taking it is one CAS (`false → true`, Acquire) and giving it back one
//! swap (Release), so whatever one holder did to the state happens before
//! the next holder sees it. Producers only ever *try*, and never wait while
//! they hold it (see `worker/mod.rs`). The worker, which must eventually run,
//! yields until it gets it; it may itself hold the baton for long (blocked
//! in librdkafka on a full queue, or reading a topic's size limit), but
//! then producers simply do not get it and wake it instead.
//!
//! The value is reached only through [`BatonGuard::with`], so that the loom
//! build tracks every access and the models in `loom-tests/` check that two
//! holders never overlap. A panic inside `with` aborts the process: the
//! value (batches half handed over, tickets popped and not yet placed) can
//! be left in a state the next holder would trust, and records whose bytes
//! librdkafka still references could be freed. (Not under loom, where a
//! panic is how a model reports what it found.)

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crate::sync::bugs::{self, Bug};
use crate::sync::{thread, AtomicBool, UnsafeCell};

/// A value one thread at a time may use.
pub struct Baton<T> {
    held: AtomicBool,
    value: UnsafeCell<T>,
}

impl<T> std::fmt::Debug for Baton<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Relaxed: a snapshot for display; the value is not ours to read.
        let held = self.held.load(Relaxed);
        f.debug_struct("Baton").field("held", &held).finish()
    }
}

// SAFETY: the baton hands the value to one thread at a time (`try_take`'s
// CAS), with the Acquire/Release pair ordering one holder's accesses before
// the next's; the value itself only needs to be sendable between threads.
unsafe impl<T: Send> Sync for Baton<T> {}

impl<T> Baton<T> {
    /// A free baton holding `value`.
    pub fn new(value: T) -> Self {
        Self {
            held: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the baton if it is free.
    pub fn try_take(&self) -> Option<BatonGuard<'_, T>> {
        // Acquire: see everything the previous holder did to the value.
        // Relaxed on failure: we touch nothing then.
        let success = bugs::ordering(Bug::RelaxedBaton, Acquire);
        self.held
            .compare_exchange(false, true, success, Relaxed)
            .ok()
            .map(|_| BatonGuard { baton: self })
    }

    /// Takes the baton, yielding the CPU while another thread holds it.
    pub fn take(&self) -> BatonGuard<'_, T> {
        loop {
            if let Some(guard) = self.try_take() {
                return guard;
            }
            thread::yield_now();
        }
    }
}

/// The baton, held; given back when dropped.
pub struct BatonGuard<'a, T> {
    baton: &'a Baton<T>,
}

impl<T> std::fmt::Debug for BatonGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BatonGuard")
    }
}

impl<T> BatonGuard<'_, T> {
    /// Runs `f` on the value; a panic in `f` aborts (module docs).
    pub fn with<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> R {
        let abort = AbortOnUnwind;
        // SAFETY: holding the baton makes this thread the value's only user
        // (module docs); `&mut self` keeps this borrow unique on our side.
        let result = self.baton.value.with_mut(|value| f(unsafe { &mut *value }));
        std::mem::forget(abort);
        result
    }
}

/// Aborts the process when dropped, which only happens while unwinding out
/// of [`BatonGuard::with`].
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        #[cfg(not(aioproducer_loom))]
        {
            log::error!("a panic while handing records to librdkafka; aborting");
            eprintln!("aioproducer: a panic while handing records to librdkafka left a worker's state half-updated; aborting");
            std::process::abort();
        }
    }
}

impl<T> Drop for BatonGuard<'_, T> {
    fn drop(&mut self) {
        // Release: our accesses to the value happen before the next
        // holder's Acquire. (A swap: others CAS the flag; see `loom.rs` on
        // loom #254.)
        self.baton.held.swap(false, Release);
    }
}

#[cfg(all(test, not(aioproducer_loom)))]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let baton = Baton::new(0);
        let mut first = baton.try_take().expect("free");
        assert!(baton.try_take().is_none(), "held");
        first.with(|v| *v += 1);
        drop(first);
        let mut again = baton.take();
        assert_eq!(again.with(|v| *v), 1);
    }
}
