//! Timing delivery without depending on when the tool looks: each record in
//! flight has a waker that stamps the moment it is woken, and a tally of
//! latencies and failures.
//!
//! In throughput runs (no rate) only one record in [`SAMPLE_EVERY`] is
//! timed, for every client alike: the others cost no clock read, neither
//! when they are due nor when they are delivered, so the harness's own
//! cost per record is an atomic store and a wake-up (futures) or a
//! counter (callbacks), not two clock reads. With a rate every record is
//! timed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

/// In throughput runs, one record in this many is timed (module docs).
pub const SAMPLE_EVERY: u64 = 64;

/// The `due` of a record that is not timed.
pub const UNTIMED: u64 = u64::MAX;

/// What one producing thread measured.
#[derive(Default)]
pub struct Tally {
    /// Delivery latency of each timed record, in nanoseconds.
    pub latencies: Vec<u64>,
    /// Records reported (timed or not).
    pub reported: u64,
    pub failed: u64,
    pub first_error: Option<String>,
}

impl Tally {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            latencies: Vec::with_capacity(n),
            ..Self::default()
        }
    }

    /// Records one outcome that completed at `done` for a record due at
    /// `due` (or [`UNTIMED`]).
    pub fn record<T, E: std::fmt::Display>(&mut self, due: u64, done: u64, outcome: Result<T, E>) {
        if due != UNTIMED {
            self.latencies.push(done.saturating_sub(due));
        }
        self.reported += 1;
        if let Err(e) = outcome {
            self.failed += 1;
            self.first_error.get_or_insert_with(|| e.to_string());
        }
    }
}

/// Nanoseconds since `start`.
pub fn nanos_since(start: Instant) -> u64 {
    start.elapsed().as_nanos() as u64
}

/// A waker that stamps the time of its first wake-up (nanoseconds since
/// its window was made; [`Probe::UNSTAMPED`] for a record not timed) and
/// unparks its owner.
pub struct Probe {
    origin: Instant,
    woke_at: AtomicU64,
    /// Whether the record it waits for is timed.
    timed: AtomicBool,
    owner: Thread,
}

impl Probe {
    const NOT_WOKEN: u64 = u64::MAX;
    /// Woken, for a record that is not timed.
    const UNSTAMPED: u64 = u64::MAX - 1;

    fn woke_at(&self) -> Option<u64> {
        Some(self.woke_at.load(Ordering::Acquire)).filter(|&t| t != Self::NOT_WOKEN)
    }
}

impl Wake for Probe {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let stamp = if self.timed.load(Ordering::Relaxed) {
            nanos_since(self.origin)
        } else {
            Self::UNSTAMPED
        };
        let _ = self.woke_at.compare_exchange(
            Self::NOT_WOKEN,
            stamp,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
        self.owner.unpark();
    }
}

/// A ring of `size` in-flight futures, each with its own probe.
///
/// Futures are reaped (polled to completion and dropped) oldest first, as
/// soon as their probe has fired, as an application awaiting each delivery
/// would: a client's per-record state lives as long as the record is in
/// flight, not as long as the window is wide. Only a full window waits.
///
/// Made once per producing thread and reused by every run on it
/// ([`Window::begin`]), so that making its probes is not timed.
pub struct Window<F> {
    probes: Vec<Arc<Probe>>,
    wakers: Vec<Waker>,
    slots: Vec<Option<(F, u64)>>,
    /// The sequence number of the oldest record not yet reaped.
    oldest: u64,
    /// When the probes' clock started.
    origin: Instant,
    /// When the current run's clock started.
    start: Instant,
}

impl<F, T, E> Window<F>
where
    F: Future<Output = Result<T, E>> + Unpin,
    E: std::fmt::Display,
{
    /// A window of `size` futures for the calling thread.
    pub fn new(size: usize) -> Self {
        let (me, origin) = (thread::current(), Instant::now());
        let probes: Vec<Arc<Probe>> = (0..size)
            .map(|_| {
                Arc::new(Probe {
                    origin,
                    woke_at: AtomicU64::new(Probe::NOT_WOKEN),
                    timed: AtomicBool::new(true),
                    owner: me.clone(),
                })
            })
            .collect();
        let wakers = probes.iter().map(|p| Waker::from(Arc::clone(p))).collect();
        Self {
            probes,
            wakers,
            slots: (0..size).map(|_| None).collect(),
            oldest: 0,
            origin,
            start: origin,
        }
    }

    /// Starts a run whose record 0 is the next inserted and whose clock
    /// started at `start` (before or after the window was made).
    pub fn begin(&mut self, start: Instant) {
        assert!(
            self.slots.iter().all(Option::is_none),
            "a run still in flight"
        );
        self.oldest = 0;
        self.start = start;
    }

    /// A probe's stamp as nanoseconds since the run's start.
    fn since_start(&self, stamp: u64) -> u64 {
        let origin_later = self.origin.saturating_duration_since(self.start).as_nanos() as u64;
        let start_later = self.start.saturating_duration_since(self.origin).as_nanos() as u64;
        (stamp + origin_later).saturating_sub(start_later)
    }

    /// Before record `i`: reaps, oldest first, the futures whose probes
    /// have fired, and waits for the oldest one if the window is full.
    pub fn make_room(&mut self, i: u64, tally: &mut Tally) {
        let size = self.slots.len() as u64;
        while self.oldest < i {
            let pos = (self.oldest % size) as usize;
            let full = i - self.oldest >= size;
            if self.slots[pos].is_some() && !full && self.probes[pos].woke_at().is_none() {
                break;
            }
            if let Some((future, due)) = self.slots[pos].take() {
                self.reap(pos, future, due, tally);
            }
            self.oldest += 1;
        }
    }

    /// Puts a future for a record due at `due` (or [`UNTIMED`]) at position
    /// `i % size`, and polls it once so its probe is registered before the
    /// report arrives.
    pub fn insert(&mut self, i: u64, mut future: F, due: u64, tally: &mut Tally) {
        let pos = (i % self.slots.len() as u64) as usize;
        let probe = &self.probes[pos];
        probe.woke_at.store(Probe::NOT_WOKEN, Ordering::Relaxed);
        // Relaxed: read by the waker, which the poll below hands over.
        probe.timed.store(due != UNTIMED, Ordering::Relaxed);
        let mut cx = Context::from_waker(&self.wakers[pos]);
        match Pin::new(&mut future).poll(&mut cx) {
            Poll::Ready(outcome) => tally.record(due, done_now(self.start, due), outcome),
            Poll::Pending => self.slots[pos] = Some((future, due)),
        }
    }

    /// Waits for every future still in flight.
    pub fn drain(&mut self, tally: &mut Tally) {
        for pos in 0..self.slots.len() {
            if let Some((future, due)) = self.slots[pos].take() {
                self.reap(pos, future, due, tally);
            }
        }
    }

    fn reap(&self, pos: usize, mut future: F, due: u64, tally: &mut Tally) {
        let mut cx = Context::from_waker(&self.wakers[pos]);
        let outcome = loop {
            match Pin::new(&mut future).poll(&mut cx) {
                Poll::Ready(outcome) => break outcome,
                // Woken but not ready (a spurious wake-up): yield instead.
                Poll::Pending if self.probes[pos].woke_at().is_some() => thread::yield_now(),
                Poll::Pending => thread::park(),
            }
        };
        let done = match self.probes[pos].woke_at() {
            Some(Probe::UNSTAMPED) => 0,
            Some(stamp) => self.since_start(stamp),
            None => done_now(self.start, due),
        };
        tally.record(due, done, outcome);
    }
}

/// Now, for a record due at `due`, without a clock read if it is not timed.
fn done_now(start: Instant, due: u64) -> u64 {
    if due == UNTIMED {
        0
    } else {
        nanos_since(start)
    }
}
