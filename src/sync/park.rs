//! How our threads sleep when idle and are woken without losing a wake-up.
//!
//! A worker (or the timer) that has nothing to do announces it is going to
//! sleep, then checks once more for work, then parks. A thread that makes
//! work available (pushes to a ring, sets a flag) then checks whether the
//! sleeper announced itself, and unparks it if so:
//!
//! ```text
//! sleeper: sleeping = true    fence(SeqCst)   if no work { park }
//! waker:   make work visible  fence(SeqCst)   if sleeping { unpark }
//! ```
//!
//! The fences are ordered one way or the other, so either the sleeper's last
//! check sees the work or the waker sees `sleeping`. `park` keeps an unpark
//! that arrives before it (a token), so an unpark racing the sleeper's check
//! is not lost either. Busy threads never park: the waker pays one fence and
//! one load of a flag that only changes when the sleeper goes idle.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::OnceLock;
use std::time::Duration;

use crate::sync::bugs::{self, Bug};
use crate::sync::{fence, park_timeout, thread, AtomicBool};

/// The parking spot of one thread of ours.
#[derive(Debug, Default)]
pub struct Parker {
    sleeping: AtomicBool,
    thread: OnceLock<thread::Thread>,
}

impl Parker {
    /// A parking spot, not yet registered to a thread.
    pub fn new() -> Self {
        Self::default()
    }

    /// Called once by the parking thread itself before it first parks.
    pub fn register_current(&self) {
        let registered = self.thread.set(thread::current());
        debug_assert!(registered.is_ok(), "a parker serves one thread");
    }

    /// Parks the calling thread unless `has_work()` is true after announcing
    /// the sleep; with a `timeout`, parks at most that long. Returns early on
    /// a wake-up, and possibly spuriously: callers re-check their work.
    pub fn park_unless(&self, timeout: Option<Duration>, has_work: impl FnOnce() -> bool) {
        // Relaxed: ordered by the fence that follows. A swap, not a store,
        // because wakers swap the flag too (see `loom.rs` on loom #254).
        self.sleeping.swap(true, Relaxed);
        // SeqCst: pairs with the fence in `wake` (module docs).
        fence(SeqCst);
        if bugs::active(Bug::SkipParkRecheck) || !has_work() {
            match timeout {
                Some(timeout) => park_timeout(timeout),
                None => thread::park(),
            }
        }
        // Relaxed: only this thread acts on its own flag.
        self.sleeping.swap(false, Relaxed);
    }

    /// Wakes the thread if it is parked or about to park. Call after making
    /// the work visible.
    pub fn wake(&self) {
        if self.asleep() {
            self.wake_sleeper();
        }
    }

    /// Whether the thread has announced that it sleeps. Call after making
    /// the work visible. `false`: the thread is awake and will see the work
    /// before it parks. `true`: it may park without seeing it (or may have
    /// seen it already), so either do the work yourself or wake the thread
    /// with [`Parker::wake_sleeper`].
    pub fn asleep(&self) -> bool {
        // SeqCst: pairs with the fence in `park_unless` (module docs).
        fence(SeqCst);
        // Relaxed: ordered by the fence.
        self.sleeping.load(Relaxed)
    }

    /// Wakes the thread after [`Parker::asleep`] said it sleeps.
    pub fn wake_sleeper(&self) {
        // Relaxed: ordered by `asleep`'s fence; the swap lets one waker of
        // many pay for the unpark.
        if self.sleeping.swap(false, Relaxed) {
            if let Some(thread) = self.thread.get() {
                thread.unpark();
            }
        }
    }
}
