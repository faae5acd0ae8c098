//! The state every thread of a producer shares: the slot pool, the ledger,
//! the workers' rings and flags, the timer. Held in an `Arc` by the
//! producer handle, the worker and timer threads, and librdkafka's callback
//! context.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::OnceLock;

use crossbeam::utils::CachePadded;

use crate::delivery::latency::{self, LatencyHistogram};
use crate::delivery::ledger::{Ledger, Parity, Reported};
use crate::delivery::pool::Pool;
use crate::delivery::slot::{Next, Outcome};
use crate::delivery::ticket::Ticket;
use crate::error::Error;
use crate::events::{ClientError, Throttle};
use crate::native::reports::Reports;
use crate::producer::hooks::Hooks;
use crate::record::{Record, SizeLimits};
use crate::stats::{PoolStats, Stats, WorkerStats};
use crate::sync::bugs::{self, Bug};
use crate::sync::wait_list::WaitList;
use crate::sync::{Arc, AtomicU64, Mutex};
use crate::worker::timer::Timer;
use crate::worker::{Host, Remote};

/// Reports claimed before their room is freed and their outcomes published
/// together ([`Shared::complete_run`]): enough that the ledger's updates per
/// record vanish, few enough to keep their indices on the stack.
const RUN_CHUNK: usize = 64;

/// Everything the producer's threads share.
#[derive(Debug)]
pub struct Shared {
    /// Delivery slots; also held by every `DeliveryFuture`.
    pub(crate) pool: Arc<Pool>,
    pub(crate) ledger: Ledger,
    pub(crate) workers: Box<[Remote]>,
    pub(crate) timer: Timer,
    /// librdkafka's size limits, checked before a record is queued.
    pub(crate) limits: SizeLimits,
    /// The latest librdkafka statistics JSON, if `statistics.interval.ms`.
    pub(crate) librdkafka_stats: Mutex<Option<String>>,
    /// Notified when a worker has served a purge request.
    pub(crate) purge_acks: WaitList,
    /// Slots taken for records that were then refused (for pool stats).
    pub(crate) refused: CachePadded<AtomicU64>,
    /// Whether a producer that finds a worker asleep hands over on its
    /// behalf (`worker/mod.rs`); not with `batch_size`, which holds records.
    pub(crate) producers_hand_over: bool,
    /// Records failed before librdkafka saw them (not purged) since the
    /// current transaction began: a commit must not go through without
    /// them (`transaction.rs`).
    lost_before_librdkafka: CachePadded<AtomicU64>,
    /// The fatal error librdkafka raised, once it did.
    fatal: OnceLock<Error>,
    /// The way to the hooks thread, when the application set hooks.
    pub(crate) hooks: OnceLock<Hooks>,
    /// Enqueue-to-report latency of the timed records (`latency.rs`).
    latency: LatencyHistogram,
    /// The flush target of the latest purge still running, or 0 (see
    /// `Host::purged_at_hand_over` below).
    purging: CachePadded<AtomicU64>,
}

/// How a producer's shared state is sized.
#[derive(Debug, Clone, Copy)]
pub struct SharedConfig {
    /// The bound on records in flight.
    pub max_in_flight: usize,
    /// Worker threads (one remote and ring each).
    pub workers: usize,
    /// Tickets per ring.
    pub ring_capacity: usize,
    /// librdkafka's size limits, checked at the call.
    pub limits: SizeLimits,
    /// Whether producers hand over for a sleeping worker (not with
    /// `batch_size`, which holds records).
    pub producers_hand_over: bool,
}

impl Shared {
    /// State sized by `config`.
    pub fn new(config: SharedConfig) -> Self {
        let SharedConfig {
            max_in_flight,
            workers,
            ring_capacity,
            limits,
            producers_hand_over,
        } = config;
        Self {
            pool: Arc::new(Pool::new()),
            ledger: Ledger::new(max_in_flight as u64),
            workers: (0..workers).map(|_| Remote::new(ring_capacity)).collect(),
            timer: Timer::new(),
            limits,
            librdkafka_stats: Mutex::new(None),
            purge_acks: WaitList::new(),
            refused: CachePadded::new(AtomicU64::new(0)),
            producers_hand_over,
            purging: CachePadded::new(AtomicU64::new(0)),
            fatal: OnceLock::new(),
            hooks: OnceLock::new(),
            latency: LatencyHistogram::default(),
            lost_before_librdkafka: CachePadded::new(AtomicU64::new(0)),
        }
    }

    /// Records failed before librdkafka saw them since the last
    /// [`Shared::forget_lost`].
    pub(crate) fn lost_before_librdkafka(&self) -> u64 {
        // Relaxed: see `Reports::refuse` below.
        self.lost_before_librdkafka.load(Relaxed)
    }

    /// A transaction begins or ends: its lost records no longer count.
    pub(crate) fn forget_lost(&self) {
        // Relaxed: see `Reports::refuse` below.
        self.lost_before_librdkafka.store(0, Relaxed);
    }

    /// The fatal error that ended the producer, if any.
    pub(crate) fn fatal(&self) -> Option<&Error> {
        self.fatal.get()
    }

    /// Records the producer's fatal error (the first one counts) and returns
    /// it, to fail the record that found it.
    pub(crate) fn set_fatal(&self, error: Error) -> Error {
        self.fatal.get_or_init(|| error).clone()
    }

    /// A purge with flush target `target` begins: until [`Shared::end_purge`],
    /// records of its parity are failed instead of handed over.
    ///
    /// A purge fails what our rings and batches hold, then what librdkafka
    /// holds, then waits for every record admitted before it (the flush
    /// target's two parities). Under continuous production a record of
    /// those parities can still reach librdkafka after librdkafka was
    /// purged (a producer admitted it just before the epoch moved, and
    /// pushed it just after the workers served the purge), and with the
    /// broker down it would hold the purge until `message.timeout.ms`. With
    /// this flag up, a hand-over fails such a record instead. Records of the
    /// other parity were admitted after the purge began and are not its
    /// business. The flag is read under each worker's baton; the workers'
    /// purge acknowledgements (Acquire/Release) order it before every
    /// hand-over that starts after them, and `purge` purges librdkafka only
    /// after every worker acknowledged, so a hand-over that began before
    /// the flag was visible is purged there.
    pub fn begin_purge(&self, target: u64) {
        // Relaxed: published to the workers by the purge request's release.
        self.purging.fetch_max(target, Relaxed);
    }

    /// The purge with flush target `target` is over (unless a later one
    /// began meanwhile).
    pub fn end_purge(&self, target: u64) {
        // Relaxed: a stale flag only fails records a purge could have taken.
        let _ = self.purging.compare_exchange(target, 0, Relaxed, Relaxed);
    }

    /// Asks every worker to fail what it holds; returns the requests to
    /// wait for with [`Shared::purges_served`].
    pub fn request_purges(&self) -> Vec<u64> {
        self.workers.iter().map(|w| w.request_purge()).collect()
    }

    /// Resolves once every worker served its request of `requests`, or
    /// once `done_anyway()` (the workers have exited).
    pub async fn purges_served(&self, requests: &[u64], done_anyway: impl Fn() -> bool) {
        self.purge_acks
            .wait_for(|| {
                let served = self.workers.iter().zip(requests).all(|(w, &r)| w.purged(r));
                (served || done_anyway()).then_some(())
            })
            .await;
    }

    /// The slot pool (for the loom models).
    #[cfg(aioproducer_loom)]
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// The ledger (for the loom models).
    #[cfg(aioproducer_loom)]
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Worker `id`'s remote (for the loom models).
    #[cfg(aioproducer_loom)]
    pub fn worker(&self, id: usize) -> &Remote {
        &self.workers[id]
    }

    /// Whether a purge under way takes the record of `ticket` instead of
    /// its hand-over (see [`Shared::begin_purge`]).
    ///
    /// # Safety
    /// The caller holds the ticket, popped and not yet handed over.
    pub unsafe fn purged_at_hand_over(&self, ticket: Ticket) -> bool {
        if bugs::active(Bug::SkipPurgeFlag) {
            return false;
        }
        // Relaxed: see `begin_purge`.
        let target = self.purging.load(Relaxed);
        // SAFETY: forwarded contract.
        target != 0
            && unsafe { self.pool.slot(ticket.index()).parity() } == Parity::of_epoch(target)
    }

    /// Tells those waiting that a worker served a purge request.
    pub fn purge_served(&self) {
        self.purge_acks.notify_all();
    }

    /// Completes the record behind `ticket` exactly once: a stale or
    /// duplicate report (wrong generation, already claimed) is ignored.
    ///
    /// # Safety
    /// `ticket` was published to a ring (see [`Slot::claim`]).
    pub unsafe fn complete(&self, ticket: Ticket, outcome: Outcome) {
        // SAFETY: forwarded contract.
        unsafe { self.complete_run(&mut std::iter::once((ticket, outcome))) }
    }

    /// Completes a run of records, each exactly once (stale or duplicate
    /// reports are ignored), with one update of the ledger per
    /// [`RUN_CHUNK`] records instead of one per record.
    ///
    /// Each chunk is claimed first, every outcome stored out of sight; then
    /// the chunk's room under the bound is freed, before any of its
    /// outcomes is visible (a caller that has read a report finds the room
    /// it freed); then each outcome is published (callbacks run); then the
    /// reports are counted, which is what flush and close wait for (so they
    /// see every outcome); then the futures are woken (so a woken caller
    /// finds its report counted) and detached slots released.
    ///
    /// # Safety
    /// Every ticket of `run` was published to a ring (see [`Slot::claim`]).
    pub unsafe fn complete_run(&self, run: &mut dyn Iterator<Item = (Ticket, Outcome)>) {
        let mut claimed = [0u32; RUN_CHUNK];
        let mut next = [Next::Nothing; RUN_CHUNK];
        // Read once per run, and only if a record of it is timed.
        let mut now = None;
        loop {
            let (mut count, mut reported) = (0, Reported::default());
            for (ticket, outcome) in &mut *run {
                // SAFETY: forwarded contract.
                match unsafe {
                    self.pool
                        .slot(ticket.index())
                        .claim(ticket.generation(), outcome)
                } {
                    Some(claim) => {
                        reported.add(claim.parity, claim.ok);
                        if let Some(at) = claim.sampled_at {
                            let now = *now.get_or_insert_with(latency::now_nanos);
                            self.latency.record(now.saturating_sub(at));
                        }
                        claimed[count] = ticket.index();
                        count += 1;
                        if count == RUN_CHUNK {
                            break;
                        }
                    }
                    None => log::debug!(
                        "ignored a stale delivery report for slot {}",
                        ticket.index()
                    ),
                }
            }
            if count == 0 {
                return;
            }
            let late = bugs::active(Bug::FreeRoomAfterPublish);
            if !late {
                self.ledger.free_room(reported.total());
            }
            for (index, next) in claimed[..count].iter().zip(&mut next) {
                // SAFETY: claimed above, not yet published.
                *next = unsafe { self.pool.slot(*index).publish() };
            }
            if late {
                self.ledger.free_room(reported.total());
            }
            // Counted before anyone is woken: a caller woken by its report
            // finds it in the statistics, `len` and `in_flight`.
            self.ledger.complete(&reported);
            for (&index, &next) in claimed[..count].iter().zip(&next) {
                match next {
                    Next::Wake => self.pool.slot(index).wake(),
                    Next::Nothing => {}
                    // SAFETY: the slot said nobody else will touch it.
                    Next::Release => unsafe { self.pool.release(index) },
                }
            }
            if count < RUN_CHUNK {
                return;
            }
        }
    }

    /// A snapshot of the producer's counters.
    pub fn stats(&self) -> Stats {
        let (ledger, pool) = (&self.ledger, &self.pool);
        let acquired = ledger.admitted() + self.refused.load(Relaxed);
        let created = pool.created() as u64;
        let completed = ledger.completed();
        let failed = ledger.failed();
        Stats {
            produced: ledger.admitted(),
            delivered: completed - failed,
            failed,
            in_flight: ledger.in_flight(),
            max_in_flight: ledger.limit(),
            pool: PoolStats {
                created: created as usize,
                in_use: pool.in_use(),
                reused: acquired.saturating_sub(created),
            },
            workers: self
                .workers
                .iter()
                .map(|w| {
                    let counts = w.counts();
                    WorkerStats {
                        ring_depth: w.ring.len(),
                        ring_capacity: w.ring.capacity(),
                        records: counts.records,
                        batches: counts.calls,
                        handed_over_by_producers: counts.by_producers,
                        partitioned: counts.partitioned,
                        topics: w.topics(),
                    }
                })
                .collect(),
            librdkafka: self.librdkafka_stats.lock().clone(),
            latency: self.latency.snapshot(),
            hook_events_dropped: self.hooks.get().map_or(0, Hooks::dropped),
            fatal_error: self.fatal().cloned(),
        }
    }

    /// Fails every record that was never reported. Only sound once
    /// librdkafka is destroyed and the workers have exited, so that no
    /// report can race with it.
    pub fn fail_unreported(&self) -> usize {
        let mut failed = 0;
        self.pool.for_each(|index, slot| {
            if let Some(generation) = slot.pending_generation() {
                // SAFETY: a pending slot's ticket was published (a staged
                // record is never pending here: no intake runs any more).
                unsafe {
                    self.complete(
                        Ticket::new(index, generation),
                        Outcome::failed(Error::Purged),
                    )
                };
                failed += 1;
            }
        });
        failed
    }
}

/// The producer's side of librdkafka's reports (`native/reports.rs`).
impl Reports for Shared {
    unsafe fn complete_run(&self, run: &mut dyn Iterator<Item = (Ticket, Outcome)>) {
        // SAFETY: forwarded contract.
        unsafe { Shared::complete_run(self, run) }
    }

    /// Counts the record as lost to the current transaction unless it was
    /// purged, then fails it.
    unsafe fn refuse(&self, ticket: Ticket, error: Error) {
        if error != Error::Purged {
            // Relaxed: read after a flush, which every report happens
            // before (the ledger's Release/Acquire).
            self.lost_before_librdkafka.fetch_add(1, Relaxed);
        }
        // SAFETY: forwarded contract.
        unsafe { Shared::complete(self, ticket, Outcome::failed(error)) };
    }

    unsafe fn record(&self, ticket: Ticket) -> &Record {
        let slot = self.pool.slot(ticket.index());
        // SAFETY: the caller holds the popped ticket (forwarded contract):
        // the record stays in its slot, untouched by others, until the
        // caller hands it over; the reference does not outlive `self`.
        unsafe { slot.with_record(|record| &*(record as *const Record)) }
    }

    fn prefetch_record(&self, ticket: Ticket) {
        self.pool.slot(ticket.index()).prefetch_record();
    }

    fn prefetch_report(&self, ticket: Ticket) {
        self.pool.slot(ticket.index()).prefetch_claim();
    }

    fn fatal(&self) -> Option<&Error> {
        Shared::fatal(self)
    }

    fn set_fatal(&self, error: Error) -> Error {
        Shared::set_fatal(self, error)
    }

    fn statistics(&self, json: String) {
        if let Some(hooks) = self.hooks.get().filter(|h| h.wants_statistics()) {
            hooks.statistics(json.clone(), self.stats());
        }
        *self.librdkafka_stats.lock() = Some(json);
    }

    fn client_error(&self, error: ClientError) {
        if let Some(hooks) = self.hooks.get() {
            hooks.error(error);
        }
    }

    fn throttle(&self, throttle: Throttle) {
        if let Some(hooks) = self.hooks.get() {
            hooks.throttle(throttle);
        }
    }
}

/// What the workers need of the producer (`worker/mod.rs`).
impl Host for Shared {
    fn remote(&self, id: usize) -> &Remote {
        &self.workers[id]
    }

    fn timer(&self) -> &Timer {
        &self.timer
    }

    unsafe fn purged_at_hand_over(&self, ticket: Ticket) -> bool {
        // SAFETY: forwarded contract.
        unsafe { Shared::purged_at_hand_over(self, ticket) }
    }

    fn purge_served(&self) {
        Shared::purge_served(self);
    }
}
