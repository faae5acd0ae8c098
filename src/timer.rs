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
//! worker: deadline = d (SeqCst)        if d < next_wake (SeqCst) { wake timer }
//! timer:  next_wake = earliest (SeqCst) re-scan deadlines (SeqCst); sleep
//! ```
//!
//! In the single total order of these `SeqCst` operations, either the
//! timer's re-scan sees `d`, or the worker's load sees the timer's new
//! `next_wake` (later than `d`) and wakes it.
//!
//! Without `batch_size` no worker ever publishes a deadline and the timer
//! sleeps until shutdown.

use std::sync::atomic::Ordering::{Relaxed, Release, SeqCst};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::loom::{Arc, AtomicBool, AtomicU64};
use crate::park::Parker;
use crate::shared::Shared;
use crate::worker::NO_DEADLINE;

/// The timer's shared state.
#[derive(Debug)]
pub(crate) struct Timer {
    parker: Parker,
    /// When the timer will next wake up on its own (timer clock).
    next_wake: AtomicU64,
    stop: AtomicBool,
    origin: Instant,
}

impl Timer {
    pub(crate) fn new() -> Self {
        Self {
            parker: Parker::new(),
            next_wake: AtomicU64::new(NO_DEADLINE),
            stop: AtomicBool::new(false),
            origin: Instant::now(),
        }
    }

    /// The timer clock: nanoseconds since the producer started.
    pub(crate) fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    /// Tells the timer about a deadline a worker just published.
    pub(crate) fn schedule(&self, deadline: u64) {
        // SeqCst: pairs with the store in `run` (module docs).
        if deadline < self.next_wake.load(SeqCst) {
            self.parker.wake();
        }
    }

    /// Asks the timer thread to exit.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Release);
        self.parker.wake();
    }

    /// Starts the timer thread, named `aioproducer-timer`.
    pub(crate) fn spawn(shared: Arc<Shared>) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("aioproducer-timer".into())
            .spawn(move || Timer::run(&shared))
    }

    fn run(shared: &Shared) {
        let timer = &shared.timer;
        timer.parker.register_current();
        loop {
            if timer.stop.load(SeqCst) {
                return;
            }
            let now = timer.now();
            let earliest = Self::fire_due(shared, now);
            // SeqCst: pairs with `schedule` (module docs).
            timer.next_wake.store(earliest, SeqCst);
            if Self::fire_due(shared, now) < earliest {
                continue; // a worker published an earlier deadline meanwhile
            }
            let timeout = (earliest != NO_DEADLINE).then(|| Duration::from_nanos(earliest - now));
            // Relaxed: read after the parker's SeqCst fence.
            timer
                .parker
                .park_unless(timeout, || timer.stop.load(Relaxed));
        }
    }

    /// Forces every worker whose deadline is at or before `now`; returns the
    /// earliest deadline still to come.
    fn fire_due(shared: &Shared, now: u64) -> u64 {
        let mut earliest = NO_DEADLINE;
        for worker in shared.workers.iter() {
            let deadline = worker.deadline.load(SeqCst);
            if deadline <= now {
                // Only the CAS winner forces: the worker may have re-armed.
                if worker
                    .deadline
                    .compare_exchange(deadline, NO_DEADLINE, SeqCst, SeqCst)
                    .is_ok()
                {
                    worker.force();
                }
            } else {
                earliest = earliest.min(deadline);
            }
        }
        earliest
    }
}
