//! The ledger: counts records in and out, and from those counts answers
//! `len()`, `flush()` and `close()` without a lock and without starving.
//!
//! # Counting
//!
//! Each admitted record is counted in `accepted[p]` and, when its report is
//! in, in `completed[p]`, where `p` is the parity of the *epoch* current when
//! it was admitted. The counters only grow (except that a record refused right
//! after admission is taken back out of `accepted`), so
//! `pending(p) = accepted[p] - completed[p]` is read as: `completed` first,
//! then `accepted`. Both loads are `SeqCst`; a zero seen that way was true at
//! the instant of the first load.
//!
//! # Flush without starvation
//!
//! Waiting for `pending == 0` could wait forever under a steady stream of new
//! records. Instead, a flush called at epoch `t` waits until the epoch reaches
//! `t + 2`. The epoch moves from `e` to `e + 1` only when `pending` of the
//! *other* parity (that of `e - 1`, which no new record joins) is zero, so:
//!
//! - `t → t+1` required parity `t-1` drained, and
//! - `t+1 → t+2` required parity `t` drained, while new records went to `t+1`.
//!
//! A record admitted before the flush call was counted in one of the two
//! parities before the first of those checks, so both checks cover it. A
//! record that read the epoch long ago and is counted late only joins a parity
//! that a later check covers: it can delay a flush, never escape one.
//!
//! # Close without losing a record
//!
//! `admit` increments `accepted` and then reads `closed`; `close` sets
//! `closed` and then waits for `pending == 0`. All four are `SeqCst`, so
//! either the admitting thread sees `closed` (and takes its count back,
//! refusing the record), or `close` sees the count and waits for that record's
//! report. No record is accepted and then forgotten.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use crossbeam::utils::CachePadded;

use crate::loom::{AtomicBool, AtomicU64};
use crate::notify::Notify;

/// The records-in/records-out counters.
#[derive(Debug)]
pub(crate) struct Ledger {
    epoch: CachePadded<AtomicU64>,
    closed: AtomicBool,
    accepted: [CachePadded<AtomicU64>; 2],
    completed: [CachePadded<AtomicU64>; 2],
    failed: CachePadded<AtomicU64>,
    /// Notified when a parity's pending count reaches zero.
    pub(crate) drained: Notify,
}

impl Default for Ledger {
    fn default() -> Self {
        Self {
            epoch: CachePadded::new(AtomicU64::new(0)),
            closed: AtomicBool::new(false),
            accepted: std::array::from_fn(|_| CachePadded::new(AtomicU64::new(0))),
            completed: std::array::from_fn(|_| CachePadded::new(AtomicU64::new(0))),
            failed: CachePadded::new(AtomicU64::new(0)),
            drained: Notify::new(),
        }
    }
}

/// The producer was closed: the record is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

impl Ledger {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Counts a new record in; returns its parity, or `Closed` (and counts
    /// nothing) when the producer is closing.
    pub(crate) fn admit(&self) -> Result<usize, Closed> {
        // Relaxed: any epoch is a valid parity choice (module docs).
        let parity = (self.epoch.load(Relaxed) & 1) as usize;
        // SeqCst: the admit/close handshake (module docs).
        self.accepted[parity].fetch_add(1, SeqCst);
        if self.closed.load(SeqCst) {
            self.cancel(parity);
            return Err(Closed);
        }
        Ok(parity)
    }

    /// Takes back a record admitted under `parity` that was then refused.
    pub(crate) fn cancel(&self, parity: usize) {
        self.accepted[parity].fetch_sub(1, SeqCst);
        self.settle(parity);
    }

    /// Counts a record's report in.
    pub(crate) fn complete(&self, parity: usize, ok: bool) {
        if !ok {
            // Relaxed: a statistic.
            self.failed.fetch_add(1, Relaxed);
        }
        // SeqCst: `pending` readers and `settle` rely on the total order.
        self.completed[parity].fetch_add(1, SeqCst);
        self.settle(parity);
    }

    /// Wakes flush and close waiters when `parity` has just drained. Called
    /// after a `SeqCst` read-modify-write of that parity's counters.
    fn settle(&self, parity: usize) {
        if self.drained.has_waiters() && self.pending(parity) == 0 {
            self.drained.notify_all_after_seqcst_rmw();
        }
    }

    /// Records admitted under `parity` and not yet completed.
    fn pending(&self, parity: usize) -> u64 {
        // Completed first, then accepted (module docs).
        let completed = self.completed[parity].load(SeqCst);
        let accepted = self.accepted[parity].load(SeqCst);
        accepted.wrapping_sub(completed)
    }

    /// Records admitted and not yet completed, over both parities.
    pub(crate) fn in_flight(&self) -> u64 {
        let completed = self.completed[0].load(SeqCst) + self.completed[1].load(SeqCst);
        let accepted = self.accepted[0].load(SeqCst) + self.accepted[1].load(SeqCst);
        accepted.wrapping_sub(completed)
    }

    /// The epoch a flush called now must reach.
    pub(crate) fn flush_target(&self) -> u64 {
        self.epoch.load(SeqCst) + 2
    }

    /// Advances the epoch as far as drained parities allow; `true` once it
    /// has reached `target` (every record admitted before the flush that
    /// computed `target` is complete).
    pub(crate) fn advance(&self, target: u64) -> bool {
        loop {
            let epoch = self.epoch.load(SeqCst);
            if epoch >= target {
                return true;
            }
            let older = ((epoch + 1) & 1) as usize;
            if self.pending(older) != 0 {
                return false;
            }
            // A failed CAS means another flush advanced it: look again.
            let _ = self
                .epoch
                .compare_exchange(epoch, epoch + 1, SeqCst, SeqCst);
        }
    }

    /// Marks the ledger closed; returns `true` for the first caller.
    pub(crate) fn close(&self) -> bool {
        !self.closed.swap(true, SeqCst)
    }

    /// Whether `close` was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    /// Records ever admitted (refused ones excluded).
    pub(crate) fn admitted(&self) -> u64 {
        self.accepted[0].load(Relaxed) + self.accepted[1].load(Relaxed)
    }

    /// Reports ever counted in.
    pub(crate) fn completed(&self) -> u64 {
        self.completed[0].load(Relaxed) + self.completed[1].load(Relaxed)
    }

    /// Reports that were failures.
    pub(crate) fn failed(&self) -> u64 {
        self.failed.load(Relaxed)
    }
}

#[cfg(all(test, not(aioproducer_loom)))]
mod tests {
    use super::*;

    #[test]
    fn flush_target_waits_for_records_before_it_only() {
        let ledger = Ledger::new();
        let early = ledger.admit().unwrap();
        let target = ledger.flush_target();
        assert!(!ledger.advance(target), "an early record is pending");
        // Records admitted now go to the next epoch's parity and do not block.
        let late = ledger.admit().unwrap();
        assert_ne!(early, late);
        ledger.complete(early, true);
        assert!(ledger.advance(target));
        assert_eq!(ledger.in_flight(), 1);
    }

    #[test]
    fn closed_ledger_refuses_and_counts_nothing() {
        let ledger = Ledger::new();
        assert!(ledger.close());
        assert!(!ledger.close());
        assert_eq!(ledger.admit(), Err(Closed));
        assert_eq!(ledger.in_flight(), 0);
        assert_eq!(ledger.admitted(), 0);
    }
}
