//! The ledger: counts records in and out, and from those counts answers
//! `len()`, `flush()` and `close()` without a lock and without starving.
//!
//! Every protocol here rests on read-modify-writes of a single variable and
//! on acquire/release, never on the single total order of `SeqCst`
//! accesses, so loom can check it (loom models `SeqCst` fences but treats
//! `SeqCst` accesses as acquire/release).
//!
//! # Counting
//!
//! Each admitted record is counted in `accepted[p]` and, when its report is
//! in, in `completed[p]`, where `p` is the parity of the *epoch* current when
//! it was admitted. `pending(p) = accepted[p] - completed[p]` is read
//! `completed` first (Acquire), then `accepted`. Reading `completed = c`
//! synchronises with the `c` completions (release `fetch_add`s forming a
//! release sequence), hence with their admissions, so the later read of
//! `accepted` counts at least those; it counts too every admission that
//! happened before the reader (a record produced before a flush). So when
//! the two are equal, no record admitted before the read is still pending.
//! (A refused record is taken back out of `accepted`; it was never
//! completed, so this holds with refusals too.)
//!
//! # Flush without starvation
//!
//! Waiting for `pending == 0` could wait forever under a steady stream of new
//! records. Instead, a flush waits until the epoch has moved on twice. The
//! epoch moves from `e` to `e + 1` only when `pending` of the *other* parity
//! (that of `e - 1`, which no new record joins) is zero:
//!
//! - `t → t+1` requires parity `t-1` drained, and
//! - `t+1 → t+2` requires parity `t` drained, while new records go to `t+1`.
//!
//! A record admitted before the flush is counted in one of the two parities,
//! so both checks must see it. They do, even when other threads make the
//! moves: the epoch word also counts flush *requests*, and a flush starts
//! with a read-modify-write of the word (its request). A move is a CAS of the
//! whole word from the value its check started from, so a move whose check
//! began before the request fails and is re-checked; a move that succeeds
//! after the request began with an acquire load of a value at or after it,
//! so its check happened after everything that happened before the flush. A
//! record that read the epoch long ago and is counted late only joins a
//! parity that a later check covers: it can delay a flush, never escape one.
//!
//! The request count lives in the word's low `REQUEST_BITS` (24) bits and
//! wraps *within* them: a request is a CAS loop that increments that field
//! modulo 2²⁴ and leaves the epoch as it is. (A plain `fetch_add` would
//! carry into the epoch after 2²⁴ requests and so move it without the
//! check, letting a flush return while a record before it is pending.
//! Flushes are rare, so the loop costs nothing.) A request changes the word
//! all the same, which is all the argument above needs, with one exception:
//! a move's CAS succeeds on a stale check only if, between its load and its
//! CAS, no move happened and a whole multiple of 2²⁴ requests did, bringing
//! the word back to the value loaded. A check is a load, two counter reads
//! and a CAS; sixteen million flushes, each an RMW of this one cache line,
//! cannot start within it, and not even while a preempted thread sleeps in
//! it for a scheduler quantum.
//!
//! # Close without losing a record
//!
//! Closing sets a `CLOSED` bit in both `accepted` words (`fetch_or`).
//! `admit` is one `fetch_add` on its word: if the word it incremented had the
//! bit, the record is refused and its count taken back; if not, the
//! increment precedes `close`'s `fetch_or` in that word's modification order,
//! so `close`, reading the word afterwards, counts the record and waits for
//! its report. No record is accepted and then forgotten.
//!
//! # The bound on records in flight
//!
//! `outstanding` counts records admitted and not yet reported, and `admit`
//! takes room in it with one CAS that never goes past `limit`; `free_room`
//! (when reports are claimed, before anyone can read them: once for a run
//! of reports) and `cancel` give the room back. It bounds what waits in our rings and
//! in librdkafka, not the futures a caller keeps: a report that arrived is
//! no longer in flight even if nobody has read it yet, so a caller holding
//! any number of futures cannot block its own `produce`. Producers waiting
//! for room follow `WaitList`'s protocol: a completion changes the count,
//! fences (`settle`), then looks for waiters. The count publishes no data,
//! so it is `Relaxed` throughout.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};

use crossbeam::utils::CachePadded;

use crate::sync::bugs::{self, Bug};
use crate::sync::wait_list::WaitList;
use crate::sync::{fence, AtomicU64};

/// Set in both `accepted` words once closed.
const CLOSED: u64 = 1 << 63;

/// The epoch word: the epoch in the high bits, flush requests (counted
/// modulo 2^`REQUEST_BITS`) in the low.
const REQUEST_BITS: u32 = 24;
/// One move of the epoch.
const EPOCH: u64 = 1 << REQUEST_BITS;
/// The request field of the epoch word.
const REQUESTS: u64 = EPOCH - 1;

/// The epoch of an epoch word.
fn epoch_of(word: u64) -> u64 {
    word >> REQUEST_BITS
}

/// The epoch word after one more flush request: the request field
/// incremented modulo 2^`REQUEST_BITS`, the epoch unchanged.
fn with_request(word: u64) -> u64 {
    (word & !REQUESTS) | (word.wrapping_add(1) & REQUESTS)
}

/// Which of the ledger's two counter pairs a record is counted in: the
/// parity of the epoch current when it was admitted (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parity(bool);

impl Parity {
    /// The parity of `epoch`.
    pub fn of_epoch(epoch: u64) -> Self {
        Self(epoch & 1 == 1)
    }

    /// The odd parity if `odd`, else the even one (as the slot state
    /// stores it, in one bit).
    pub fn from_odd(odd: bool) -> Self {
        Self(odd)
    }

    /// The other parity.
    fn other(self) -> Self {
        Self(!self.0)
    }

    /// Whether this is the odd parity.
    pub fn is_odd(self) -> bool {
        self.0
    }

    /// Index into the ledger's counter pairs.
    fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// Reports counted in together ([`Ledger::complete`]): how many of each
/// parity, and how many of them failed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reported {
    by_parity: [u64; 2],
    failed: u64,
}

impl Reported {
    /// Counts one report of a record admitted under `parity`.
    pub fn add(&mut self, parity: Parity, ok: bool) {
        self.by_parity[parity.index()] += 1;
        self.failed += u64::from(!ok);
    }

    /// Reports counted.
    pub fn total(&self) -> u64 {
        self.by_parity[0] + self.by_parity[1]
    }
}

/// The records-in/records-out counters.
#[derive(Debug)]
pub struct Ledger {
    epoch: CachePadded<AtomicU64>,
    accepted: [CachePadded<AtomicU64>; 2],
    completed: [CachePadded<AtomicU64>; 2],
    failed: CachePadded<AtomicU64>,
    /// Records admitted and not yet reported (module docs, the bound).
    outstanding: CachePadded<AtomicU64>,
    /// The most records in flight.
    limit: u64,
    /// Notified when a parity's pending count reaches zero.
    pub(crate) drained: WaitList,
    /// Notified when a record in flight is reported (or taken back).
    room: WaitList,
}

/// Why [`Ledger::admit`] refused a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The producer was closed.
    Closed,
    /// `limit` records are in flight; wait on [`Ledger::room`] and retry.
    Full,
}

impl Ledger {
    /// An empty, open ledger allowing at most `limit` records in flight.
    pub fn new(limit: u64) -> Self {
        Self {
            epoch: CachePadded::new(AtomicU64::new(0)),
            accepted: std::array::from_fn(|_| CachePadded::new(AtomicU64::new(0))),
            completed: std::array::from_fn(|_| CachePadded::new(AtomicU64::new(0))),
            failed: CachePadded::new(AtomicU64::new(0)),
            outstanding: CachePadded::new(AtomicU64::new(0)),
            limit,
            drained: WaitList::new(),
            room: WaitList::new(),
        }
    }

    /// Counts a new record in; returns its parity, or why it was refused
    /// (and counts nothing).
    pub fn admit(&self) -> Result<Parity, Refusal> {
        // Relaxed: a bound on a count (module docs).
        let taken = self
            .outstanding
            .fetch_update(Relaxed, Relaxed, |n| (n < self.limit).then_some(n + 1));
        if taken.is_err() {
            return Err(Refusal::Full);
        }
        // Relaxed: any epoch is a valid parity choice (module docs).
        let parity = Parity::of_epoch(epoch_of(self.epoch.load(Relaxed)));
        if bugs::active(Bug::CheckClosedFirst) {
            if self.is_closed() {
                self.free_room(1);
                return Err(Refusal::Closed);
            }
            self.accepted[parity.index()].fetch_add(1, Release);
            return Ok(parity);
        }
        // Release: with `complete`'s release, lets `pending` readers count
        // this record; one RMW both counts it and reads CLOSED (module docs).
        if self.accepted[parity.index()].fetch_add(1, AcqRel) & CLOSED != 0 {
            self.cancel(parity);
            return Err(Refusal::Closed);
        }
        Ok(parity)
    }

    /// Takes back a record admitted under `parity` that was then refused.
    pub fn cancel(&self, parity: Parity) {
        self.accepted[parity.index()].fetch_sub(1, AcqRel);
        self.free_room(1);
        let mut taken_back = Reported::default();
        taken_back.add(parity, true);
        self.settle(&taken_back);
    }

    /// Frees the room `records` took under the bound. For reported records,
    /// call it once their reports are claimed and before any is visible
    /// (so whoever reads a report finds its room), then count the reports
    /// with [`complete`](Ledger::complete), which wakes waiting producers.
    pub fn free_room(&self, records: u64) {
        // Relaxed: a bound on a count; `settle` fences before it looks for
        // waiters (module docs).
        self.outstanding.fetch_sub(records, Relaxed);
    }

    /// Counts reports in (after [`free_room`](Ledger::free_room)): one
    /// update of each counter for any number of reports.
    pub fn complete(&self, reported: &Reported) {
        if reported.failed > 0 {
            // Relaxed: a statistic.
            self.failed.fetch_add(reported.failed, Relaxed);
        }
        for (completed, &count) in self.completed.iter().zip(&reported.by_parity) {
            if count > 0 {
                // Release: `pending` readers that see this count see the
                // reports.
                completed.fetch_add(count, Release);
            }
        }
        self.settle(reported);
    }

    /// Wakes as many producers waiting for room as `reported` freed, and
    /// flush and close waiters when a parity it touched has just drained.
    fn settle(&self, reported: &Reported) {
        // SeqCst: pairs with the fence in `WaitList::listen`: either a waiter
        // registering now sees the counts just changed, or we see the waiter.
        fence(SeqCst);
        if self.room.has_waiters() && !bugs::active(Bug::SkipRoomNotify) {
            self.room
                .notify_many(usize::try_from(reported.total()).unwrap_or(usize::MAX));
        }
        if self.drained.has_waiters() {
            let drained = [Parity::from_odd(false), Parity::from_odd(true)]
                .into_iter()
                .any(|p| reported.by_parity[p.index()] > 0 && self.pending(p) == 0);
            if drained {
                self.drained.notify_all();
            }
        }
    }

    /// Records admitted under `parity` and not yet completed.
    fn pending(&self, parity: Parity) -> u64 {
        // Completed first, then accepted (module docs).
        let completed = self.completed[parity.index()].load(Acquire);
        let accepted = self.accepted[parity.index()].load(Acquire) & !CLOSED;
        accepted.wrapping_sub(completed)
    }

    /// Records admitted and not yet completed, over both parities.
    pub fn in_flight(&self) -> u64 {
        let completed = self.completed[0].load(Acquire) + self.completed[1].load(Acquire);
        let accepted =
            (self.accepted[0].load(Acquire) & !CLOSED) + (self.accepted[1].load(Acquire) & !CLOSED);
        accepted.wrapping_sub(completed)
    }

    /// Registers a flush and returns the epoch it must reach.
    pub fn flush_target(&self) -> u64 {
        // AcqRel on the successful CAS: the request orders everything before
        // this flush before every later move of the epoch (module docs).
        // Relaxed loads: a value that fails the CAS is only retried, and the
        // epoch returned is the one the successful CAS read.
        let requested = self
            .epoch
            .fetch_update(AcqRel, Relaxed, |word| Some(with_request(word)));
        // The closure never declines, so this is always `Ok`.
        let (Ok(word) | Err(word)) = requested;
        epoch_of(word) + 2
    }

    /// Moves the epoch as far as drained parities allow; `true` once it
    /// has reached `target` (every record admitted before the flush that
    /// computed `target` is complete).
    pub fn advance(&self, target: u64) -> bool {
        loop {
            // Acquire: see what happened before the request(s) in this word.
            let word = self.epoch.load(Acquire);
            let epoch = epoch_of(word);
            if epoch >= target {
                return true;
            }
            let older = Parity::of_epoch(epoch).other();
            if self.pending(older) != 0 && !bugs::active(Bug::SkipOlderParityCheck) {
                return false;
            }
            // AcqRel: fails (and we look again) if a request or another move
            // came in since the load our check followed.
            let _ = self
                .epoch
                .compare_exchange(word, word.wrapping_add(EPOCH), AcqRel, Relaxed);
        }
    }

    /// Resolves once the epoch reaches `target`: every record admitted
    /// before the flush that computed it has its report.
    pub async fn reported_up_to(&self, target: u64) {
        self.drained
            .wait_for(|| self.advance(target).then_some(()))
            .await;
    }

    /// Resolves once no record is in flight (it only ends for certain once
    /// the ledger is closed).
    pub async fn all_reported(&self) {
        self.drained
            .wait_for(|| (self.in_flight() == 0).then_some(()))
            .await;
    }

    /// Marks the ledger closed; returns `true` for the first caller.
    pub fn close(&self) -> bool {
        // AcqRel: see the module docs (close without losing a record).
        let first = self.accepted[0].fetch_or(CLOSED, AcqRel) & CLOSED == 0;
        self.accepted[1].fetch_or(CLOSED, AcqRel);
        first
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.accepted[1].load(Acquire) & CLOSED != 0
    }

    /// Notified when room frees up under the bound: wait on it after
    /// [`Refusal::Full`], following `WaitList`'s protocol.
    pub fn room(&self) -> &WaitList {
        &self.room
    }

    /// The most records in flight.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Records ever admitted (refused ones excluded).
    pub fn admitted(&self) -> u64 {
        (self.accepted[0].load(Relaxed) & !CLOSED) + (self.accepted[1].load(Relaxed) & !CLOSED)
    }

    /// Reports ever counted in.
    pub fn completed(&self) -> u64 {
        self.completed[0].load(Relaxed) + self.completed[1].load(Relaxed)
    }

    /// Reports that were failures.
    pub fn failed(&self) -> u64 {
        self.failed.load(Relaxed)
    }
}

#[cfg(all(test, not(aioproducer_loom)))]
mod tests {
    use super::*;

    /// One record's report, as the completion path counts it.
    fn report(ledger: &Ledger, parity: Parity, ok: bool) {
        ledger.free_room(1);
        let mut reported = Reported::default();
        reported.add(parity, ok);
        ledger.complete(&reported);
    }

    #[test]
    fn flush_target_waits_for_records_before_it_only() {
        let ledger = Ledger::new(10);
        let early = ledger.admit().unwrap();
        let target = ledger.flush_target();
        assert!(!ledger.advance(target), "an early record is pending");
        // Records admitted now go to the next epoch's parity and do not block.
        let late = ledger.admit().unwrap();
        assert_ne!(early, late);
        report(&ledger, early, true);
        assert!(ledger.advance(target));
        assert_eq!(ledger.in_flight(), 1);
    }

    #[test]
    fn flush_requests_wrap_in_their_field_and_never_move_the_epoch() {
        let ledger = Ledger::new(10);
        let early = ledger.admit().unwrap();
        // A first flush moves the epoch on once, then waits for `early`.
        let first = ledger.flush_target();
        assert!(!ledger.advance(first), "an early record is pending");
        // As if 2^24 - 1 flushes had started since: the next one fills the
        // request field.
        ledger.epoch.fetch_or(REQUESTS, Relaxed);
        let target = ledger.flush_target();
        assert_eq!(ledger.epoch.load(Relaxed), EPOCH, "wrapped, epoch kept");
        assert!(
            !ledger.advance(target),
            "a flush returned while an earlier record is pending"
        );
        report(&ledger, early, true);
        assert!(ledger.advance(target));
        assert!(ledger.advance(first));
    }

    #[test]
    fn closed_ledger_refuses_and_counts_nothing() {
        let ledger = Ledger::new(10);
        assert!(ledger.close());
        assert!(!ledger.close());
        assert!(ledger.is_closed());
        assert_eq!(ledger.admit(), Err(Refusal::Closed));
        assert_eq!(ledger.in_flight(), 0);
        assert_eq!(ledger.admitted(), 0);
        assert_eq!(ledger.outstanding.load(Relaxed), 0, "room given back");
    }

    #[test]
    fn admission_stops_at_the_limit_until_a_report_or_a_cancel() {
        let ledger = Ledger::new(2);
        let a = ledger.admit().unwrap();
        let b = ledger.admit().unwrap();
        assert_eq!(ledger.admit(), Err(Refusal::Full));
        report(&ledger, a, true);
        let c = ledger.admit().unwrap();
        assert_eq!(ledger.admit(), Err(Refusal::Full));
        ledger.cancel(c);
        assert!(ledger.admit().is_ok());
        report(&ledger, b, false);
        assert_eq!(ledger.in_flight(), 1);
    }

    #[test]
    fn a_run_of_reports_counts_each_parity_and_failure_once() {
        let ledger = Ledger::new(10);
        let early: Vec<Parity> = (0..3).map(|_| ledger.admit().unwrap()).collect();
        let target = ledger.flush_target();
        assert!(!ledger.advance(target), "early records are pending");
        let late = ledger.admit().unwrap();
        assert_ne!(early[0], late);
        let mut reported = Reported::default();
        for &parity in early.iter().chain([&late]) {
            reported.add(parity, parity == late);
        }
        ledger.free_room(reported.total());
        ledger.complete(&reported);
        assert!(ledger.advance(target));
        assert_eq!(
            (ledger.in_flight(), ledger.completed(), ledger.failed()),
            (0, 4, 3)
        );
        assert_eq!(ledger.outstanding.load(Relaxed), 0, "every room freed");
    }
}
