//! The timer thread: enforces `buffer_timeout` when workers hold records for
//! batching (`batch_size`).
//!
//! A worker that starts holding records publishes a deadline; the timer
//! sleeps until the earliest deadline and then *forces* that worker, which
//! hands its batches over on its own thread. The timer never touches a
//! record, so a record cannot be handed over twice, or by two threads.
//!
//! # Not missing a new, earlier deadline
//!
//! ```text
//! worker: deadline = d       fence(SeqCst)   if d < next_wake { wake timer }
//! timer:  next_wake = min    fence(SeqCst)   re-scan deadlines; sleep
//! ```
//!
//! The fences are ordered one way or the other, so either the timer's
//! re-scan sees `d`, or the worker sees the timer's new `next_wake` (later
//! than `d`) and wakes it. The wake itself goes through the parker
//! (`park.rs`), whose last look before sleeping checks the deadlines again:
//! a wake that finds the timer not yet asleep is answered by that look.
//! (The loom model of this protocol found the version without it leaving
//! the timer asleep past a deadline.)
//!
//! Without `batch_size` no worker ever publishes a deadline and the timer
//! sleeps until shutdown.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::time::{Duration, Instant};

use crate::sync::park::Parker;
use crate::sync::{fence, AtomicBool, AtomicU64};

/// No deadline armed.
pub const NO_DEADLINE: u64 = u64::MAX;

/// What the timer watches: one worker's deadline (a remote).
pub trait Deadline {
    /// The armed deadline (timer clock), or [`NO_DEADLINE`].
    fn deadline(&self) -> u64;
    /// Fires `deadline` if it is still the armed one; only one of racing
    /// firers wins.
    fn fire(&self, deadline: u64) -> bool;
}

/// The timer's shared state.
#[derive(Debug)]
pub struct Timer {
    parker: Parker,
    /// When the timer will next wake up on its own (timer clock).
    next_wake: AtomicU64,
    stop: AtomicBool,
    origin: Instant,
}

impl Default for Timer {
    fn default() -> Self {
        Self::new()
    }
}

impl Timer {
    /// A timer whose clock starts now.
    pub fn new() -> Self {
        Self {
            parker: Parker::new(),
            next_wake: AtomicU64::new(NO_DEADLINE),
            stop: AtomicBool::new(false),
            origin: Instant::now(),
        }
    }

    /// The timer clock: nanoseconds since the producer started.
    pub fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    /// Tells the timer about a deadline a worker just published.
    pub fn schedule(&self, deadline: u64) {
        // SeqCst: pairs with the fence in `run` (module docs).
        fence(SeqCst);
        // Relaxed: ordered by the fence.
        if deadline < self.next_wake.load(Relaxed) {
            self.parker.wake();
        }
    }

    /// Asks the timer thread to exit.
    pub fn stop(&self) {
        self.stop.store(true, Release);
        self.parker.wake();
    }

    /// The timer thread's loop, until [`Timer::stop`]: fires due deadlines
    /// of `workers` and sleeps until the next one, reading the time from
    /// `now` (the timer clock, or a mock one in the loom model).
    pub fn run<W: Deadline>(&self, workers: &[W], now: impl Fn() -> u64) {
        self.parker.register_current();
        loop {
            // Acquire: pairs with the Release in `stop`.
            if self.stop.load(Acquire) {
                return;
            }
            let now = now();
            let earliest = Self::fire_due(workers, now);
            // Relaxed, then SeqCst fence: pairs with `schedule` (module docs).
            self.next_wake.store(earliest, Relaxed);
            fence(SeqCst);
            if Self::fire_due(workers, now) < earliest {
                continue; // a worker published an earlier deadline meanwhile
            }
            let timeout = (earliest != NO_DEADLINE).then(|| Duration::from_nanos(earliest - now));
            // The last look before sleeping must include the deadlines: a
            // worker that armed one after our re-scan, and saw us not yet
            // asleep, did not wake us. (Relaxed: after the parker's fence.)
            self.parker.park_unless(timeout, || {
                self.stop.load(Relaxed) || workers.iter().any(|w| w.deadline() < earliest)
            });
        }
    }

    /// Forces every worker whose deadline is at or before `now`; returns the
    /// earliest deadline still to come.
    fn fire_due<W: Deadline>(workers: &[W], now: u64) -> u64 {
        let mut earliest = NO_DEADLINE;
        for worker in workers {
            let deadline = worker.deadline();
            if deadline <= now {
                // Only one firer wins; the worker may have re-armed since.
                worker.fire(deadline);
            } else {
                earliest = earliest.min(deadline);
            }
        }
        earliest
    }
}
