//! What producers, the timer and control calls share with one worker: its
//! ring, its parking spot, and the flags that ask it to act (hand over now,
//! purge, stop), with the protocol each follows.
//!
//! Every flag is set, then the worker is woken (`Parker::wake`, which
//! fences); the worker checks all of them after announcing its sleep
//! (`Parker::park_unless`, which fences too), so none is missed (see
//! `park.rs`).

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use crossbeam::utils::CachePadded;

use crate::delivery::ticket::Ticket;
use crate::sync::baton::Baton;
use crate::sync::bugs::{self, Bug};
use crate::sync::park::Parker;
use crate::sync::{AtomicBool, AtomicU64};
use crate::worker::ring::Ring;
use crate::worker::timer::{Deadline, Timer, NO_DEADLINE};

/// How many tickets [`Remote::drain_ahead`] pops before the first is placed:
/// enough for the records' cache misses to overlap, few enough that the
/// prefetched lines are still in the cache when they are read.
const TICKETS_AHEAD: usize = 16;

/// What one worker handed to librdkafka so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandOverCounts {
    /// Records handed over.
    pub records: u64,
    /// librdkafka calls made to hand them over.
    pub calls: u64,
    /// Of `records`, those producers handed over on the worker's behalf.
    pub by_producers: u64,
    /// Of `records`, those whose partition the worker chose.
    pub partitioned: u64,
}

/// One worker's remote.
///
/// Generic over what its baton guards: the worker's core (`S` is
/// `worker::Core` in the producer), so that this file needs nothing from
/// the worker loop above it.
#[derive(Debug)]
pub struct Remote<S> {
    pub(crate) ring: Ring,
    pub(crate) parker: Parker,
    /// The worker's hand-over state, for whoever runs a round (`worker/mod.rs`).
    core: Baton<Option<S>>,
    /// When a push last found the worker asleep and took its baton (timer
    /// clock): a hint of the push rate, for `worker/mod.rs`.
    pub(crate) asleep_push_at: AtomicU64,
    /// Hand over everything held now (timer or flush).
    force: AtomicBool,
    /// Exit once the ring is empty and nothing is held.
    stop: AtomicBool,
    purge_requested: AtomicU64,
    purge_done: AtomicU64,
    /// When the oldest held record must be handed over (timer clock), or
    /// `NO_DEADLINE`. Armed by the worker, fired and cleared by the timer.
    deadline: CachePadded<AtomicU64>,
    /// Records handed to librdkafka (written under the baton).
    records: AtomicU64,
    /// librdkafka calls made to hand them over (written under the baton).
    calls: AtomicU64,
    /// Of `records`, those producers handed over on the worker's behalf.
    by_producers: AtomicU64,
    /// Of `records`, those whose partition the worker chose.
    partitioned: AtomicU64,
    /// Topic handles the worker holds (written under the baton).
    topics: AtomicU64,
}

impl<S> Remote<S> {
    /// A remote with a ring of `ring_capacity` tickets.
    pub fn new(ring_capacity: usize) -> Self {
        Self {
            ring: Ring::new(ring_capacity),
            parker: Parker::new(),
            core: Baton::new(None),
            asleep_push_at: AtomicU64::new(0),
            force: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            purge_requested: AtomicU64::new(0),
            purge_done: AtomicU64::new(0),
            deadline: CachePadded::new(AtomicU64::new(NO_DEADLINE)),
            records: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            by_producers: AtomicU64::new(0),
            partitioned: AtomicU64::new(0),
            topics: AtomicU64::new(0),
        }
    }

    // ---- producers --------------------------------------------------------

    /// Pushes a ticket and wakes the worker; hands the ticket back when the
    /// ring is full (then wait on [`Remote::space`] and retry).
    pub fn push(&self, ticket: Ticket) -> Result<(), Ticket> {
        self.ring.push(ticket)?;
        self.parker.wake();
        Ok(())
    }

    /// Pushes a ticket and runs `pushed` (the caller gives up its claim on
    /// the record: from here a round may hand it to librdkafka); then, if
    /// the worker sleeps and its core is free, runs `round` on the core
    /// instead of waking it (the caller hands over on the worker's behalf).
    /// `round` returns whether it left work for the worker, which then
    /// wakes it. Hands the ticket back when the ring is full. This is what
    /// a producer's intake calls, and what the loom model `baton.rs` checks.
    ///
    /// No ticket is left behind: the pusher looks at the worker after its
    /// push, as in [`Remote::push`]. Awake, the worker will see the ticket
    /// before it sleeps. Asleep, either this pusher takes the baton after
    /// its push and so drains the ring with the ticket in it (or someone
    /// drained it first), or the baton is held and the pusher wakes the
    /// worker, which takes the baton once it is free and drains.
    pub fn push_or_run_round(
        &self,
        ticket: Ticket,
        pushed: impl FnOnce(),
        round: impl FnOnce(&mut Option<S>) -> bool,
    ) -> Result<(), Ticket> {
        self.ring.push(ticket)?;
        pushed();
        if !self.parker.asleep() {
            return Ok(());
        }
        let left = match self.core.try_take() {
            Some(mut core) => core.with(round) && !bugs::active(Bug::SkipLeftWorkWake),
            None => !bugs::active(Bug::SkipBusyBatonWake),
        };
        if left {
            self.force();
        }
        Ok(())
    }

    /// The worker's core behind its baton.
    pub fn baton(&self) -> &Baton<Option<S>> {
        &self.core
    }

    /// Notified when the worker makes room in the ring.
    pub fn space(&self) -> &crate::sync::wait_list::WaitList {
        &self.ring.space
    }

    // ---- the worker -------------------------------------------------------

    /// Called by the worker thread once, before it first parks.
    pub fn register_worker(&self) {
        self.parker.register_current();
    }

    /// Pops up to `max` tickets into `each`, stopping early after one for
    /// which `each` says `false`, then tells producers waiting for room.
    /// Returns how many were popped.
    pub fn drain(&self, max: usize, mut each: impl FnMut(Ticket) -> bool) -> usize {
        let mut drained = 0;
        while drained < max {
            let Some(ticket) = self.ring.pop() else {
                break;
            };
            drained += 1;
            if !each(ticket) {
                break;
            }
        }
        self.popped(drained)
    }

    /// Pops up to `max` tickets into `each`, [`TICKETS_AHEAD`] at a time:
    /// `ahead` sees every ticket of a chunk before `each` sees the first
    /// (to prefetch what `each` will read). Then tells producers waiting
    /// for room. Returns how many were popped.
    pub fn drain_ahead(
        &self,
        max: usize,
        ahead: impl Fn(Ticket),
        mut each: impl FnMut(Ticket),
    ) -> usize {
        let mut chunk = [Ticket::new(0, 0); TICKETS_AHEAD];
        let mut drained = 0;
        while drained < max {
            let want = TICKETS_AHEAD.min(max - drained);
            let mut len = 0;
            while len < want {
                let Some(ticket) = self.ring.pop() else {
                    break;
                };
                ahead(ticket);
                chunk[len] = ticket;
                len += 1;
            }
            drained += len;
            chunk[..len].iter().for_each(|&ticket| each(ticket));
            if len < want {
                break;
            }
        }
        self.popped(drained)
    }

    /// Tells producers waiting for room that `drained` tickets left the
    /// ring; returns `drained`.
    fn popped(&self, drained: usize) -> usize {
        if drained > 0 && !bugs::active(Bug::SkipSpaceNotify) {
            self.ring.space.notify_many(drained);
        }
        drained
    }

    /// Parks the worker unless one of its flags is set or its ring holds
    /// tickets (checked after announcing the sleep).
    pub fn park(&self) {
        self.parker.park_unless(None, || self.has_work());
    }

    /// Parks the worker for `timeout` while librdkafka's queue is full,
    /// unless a control request (hand over now, stop, purge) is pending.
    pub fn park_until_retry(&self, timeout: std::time::Duration) {
        self.parker
            .park_unless(Some(timeout), || self.has_request());
    }

    /// Parks the worker for at most `timeout`, unless it has work.
    pub fn park_at_most(&self, timeout: std::time::Duration) {
        self.parker.park_unless(Some(timeout), || self.has_work());
    }

    fn has_work(&self) -> bool {
        !self.ring.is_empty() || self.has_request()
    }

    fn has_request(&self) -> bool {
        // Relaxed: called after the parker's SeqCst fence.
        self.force.load(Relaxed)
            || self.stop.load(Relaxed)
            || self.purge_requested.load(Relaxed) > self.purge_done.load(Relaxed)
    }

    /// Takes the "hand over now" request, if any.
    pub fn take_force(&self) -> bool {
        // Acquire: pairs with the Release in `force`.
        self.force.swap(false, Acquire)
    }

    /// Whether the worker was asked to exit.
    pub fn stopping(&self) -> bool {
        self.stop.load(Acquire)
    }

    /// The purge request to serve, if one is pending.
    pub fn purge_pending(&self) -> Option<u64> {
        let requested = self.purge_requested.load(Acquire);
        // Relaxed: only the worker writes `purge_done`.
        (requested > self.purge_done.load(Relaxed)).then_some(requested)
    }

    /// Marks purge request `request` served.
    pub fn purge_served(&self, request: u64) {
        // Release: the purged records' completions happen before the ack.
        self.purge_done.store(request, Release);
    }

    /// Starts the buffer timeout (timer clock `deadline`) for records the
    /// worker just started holding, unless one is running. Returns whether
    /// it armed one.
    pub fn arm_deadline(&self, deadline: u64, timer: &Timer) -> bool {
        // Relaxed: only the worker arms; the timer only clears.
        if self.deadline.load(Relaxed) != NO_DEADLINE {
            return false;
        }
        // Relaxed: `schedule` fences before reading the timer's state. (A
        // swap: the timer CASes it; see `loom.rs` on loom #254.)
        self.deadline.swap(deadline, Relaxed);
        if !bugs::active(Bug::SkipTimerSchedule) {
            timer.schedule(deadline);
        }
        true
    }

    /// Adds one hand-over's counts, and clears the buffer timeout.
    pub fn count_hand_over(&self, counts: HandOverCounts) {
        // Relaxed: statistics, written by the baton's holder only.
        let add = |counter: &AtomicU64, n| counter.store(counter.load(Relaxed) + n, Relaxed);
        add(&self.records, counts.records);
        add(&self.calls, counts.calls);
        add(&self.by_producers, counts.by_producers);
        add(&self.partitioned, counts.partitioned);
        self.clear_deadline();
    }

    /// Records how many topic handles the worker holds.
    pub fn held_topics(&self, topics: usize) {
        // Relaxed: a statistic, written by the baton's holder only.
        self.topics.store(topics as u64, Relaxed);
    }

    /// Topic handles the worker holds.
    pub fn topics(&self) -> usize {
        // Relaxed: a statistic.
        self.topics.load(Relaxed) as usize
    }

    /// Clears the buffer timeout (nothing is held any more).
    pub fn clear_deadline(&self) {
        // Relaxed: a stale deadline only causes one early hand-over. (A
        // swap: see `arm_deadline`.)
        self.deadline.swap(NO_DEADLINE, Relaxed);
    }

    // ---- control ----------------------------------------------------------

    /// Asks the worker to hand over everything it holds.
    pub fn force(&self) {
        // Release: pairs with `take_force`; the parker's fence orders it
        // before the sleeping check. (A swap: see `loom.rs` on loom #254.)
        self.force.swap(true, Release);
        self.parker.wake();
    }

    /// Asks the worker to exit once it holds nothing.
    pub fn stop(&self) {
        self.stop.store(true, Release);
        self.parker.wake();
    }

    /// Asks the worker to fail everything it holds; returns the request
    /// number to wait for with [`Remote::purged`].
    pub fn request_purge(&self) -> u64 {
        let request = self.purge_requested.fetch_add(1, AcqRel) + 1;
        self.parker.wake();
        request
    }

    /// Whether purge request `request` has been served.
    pub fn purged(&self, request: u64) -> bool {
        self.purge_done.load(Acquire) >= request
    }

    /// What the worker (and producers on its behalf) handed over so far.
    pub fn counts(&self) -> HandOverCounts {
        // Relaxed: statistics.
        HandOverCounts {
            records: self.records.load(Relaxed),
            calls: self.calls.load(Relaxed),
            by_producers: self.by_producers.load(Relaxed),
            partitioned: self.partitioned.load(Relaxed),
        }
    }
}

/// The timer's side of a remote.
impl<S> Deadline for Remote<S> {
    /// The armed deadline, or `NO_DEADLINE`.
    fn deadline(&self) -> u64 {
        // Relaxed: the timer fences before reading (timer.rs).
        self.deadline.load(Relaxed)
    }

    /// Fires deadline `deadline` if it is still the armed one: clears it and
    /// asks the worker to hand over. Only one of racing firers wins.
    fn fire(&self, deadline: u64) -> bool {
        // Relaxed: the value is all that matters; `force` publishes the rest.
        let won = self
            .deadline
            .compare_exchange(deadline, NO_DEADLINE, Relaxed, Relaxed)
            .is_ok();
        if won {
            self.force();
        }
        won
    }
}
