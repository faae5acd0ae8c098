//! The delivery slot: where one record waits for its delivery report, and
//! where the report waits for the caller.
//!
//! # States
//!
//! A slot's `state` word packs a generation counter (high 32 bits) with the
//! flags below. The generation travels with the slot index through
//! librdkafka's per-message opaque, so a stale or duplicated report (one that
//! names an earlier generation) is recognised and ignored instead of
//! completing the slot's next record (the ABA guard of sharded-slab).
//!
//! | state | owner | who may touch the record / outcome |
//! |---|---|---|
//! | free (`IN_USE` clear) | the pool | nobody; the acquirer after popping it |
//! | `IN_USE` | producer → ring → worker → librdkafka | the worker reads the record; nobody writes |
//! | `IN_USE \| CLAIMED` | the completer that won the claim | the completer writes the outcome |
//! | `… \| COMPLETE` | the future | the future takes outcome and record |
//! | `… \| DETACHED` | no future will look | whoever sets the second of `COMPLETE`/`DETACHED` releases |
//!
//! # Protocol
//!
//! *Completion* (librdkafka's thread, or a worker failing a record):
//! 1. CAS `IN_USE` → `IN_USE | CLAIMED` if the generation matches and nobody
//!    claimed it (Acquire: the record written before `occupy` is visible).
//!    Losing means a stale or duplicate report: do nothing.
//! 2. Write the outcome (callback mode: run the callback instead).
//! 3. `fetch_or(COMPLETE)` (AcqRel: Release publishes the outcome to the
//!    future; Acquire sees a concurrent `DETACHED`). If `DETACHED` was set,
//!    the completer releases the slot; otherwise it wakes the future.
//!
//! *Poll*: if `COMPLETE` is not set yet, register the waker, then
//! `fetch_or(REGISTERED)` (AcqRel). The completer's `fetch_or(COMPLETE)` and
//! ours are ordered in the state word's modification order: if ours came
//! second it returns `COMPLETE` and the future is ready; if it came first,
//! the completer sees `REGISTERED` and wakes the waker registered before it.
//! A completer that sees no `REGISTERED` does not touch the waker.
//!
//! *Drop of an unfinished future*: `fetch_or(DETACHED)`; if `COMPLETE` was
//! already set, the dropper releases. Exactly one side sees the other's bit,
//! so the slot is released exactly once.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::task::{Context, Poll};

use crate::delivery::latency;
use crate::delivery::ledger::Parity;
use crate::error::Error;
use crate::record::Record;
use crate::report::{Delivery, Timestamp};
use crate::report::{DeliveryError, Persistence};
use crate::sync::block_on::Reporting;
use crate::sync::bugs::{self, Bug};
use crate::sync::{prefetch_lines, AtomicU32, AtomicU64, AtomicWaker, Intent, UnsafeCell};

/// Set while the slot is out of the pool.
const IN_USE: u64 = 1 << 0;
/// Set by the one completer allowed to write the outcome.
const CLAIMED: u64 = 1 << 1;
/// Set once the outcome is written.
const COMPLETE: u64 = 1 << 2;
/// Set when no future will read the outcome: it was dropped, or the record
/// was produced with a callback.
const DETACHED: u64 = 1 << 3;
/// The ledger parity the record was admitted under (see `ledger.rs`).
const PARITY: u64 = 1 << 4;
/// A future registered a waker: the completer must wake it. A future polled
/// only after the report (the common case under load) never sets it, and
/// then neither side touches the waker at all.
const REGISTERED: u64 = 1 << 5;
/// The record was produced with a callback (set with `DETACHED` by
/// `occupy`): the completer reads the callback cell only then, so that
/// completing a record with a future touches none of the lines that hold
/// the record and the callback (see [`Slot`]).
const CALLBACK: u64 = 1 << 6;
/// The record is timed (`latency.rs`): `sampled_at` holds when it entered
/// the slot. The completer reads that cell only then.
const SAMPLED: u64 = 1 << 7;
const GEN_SHIFT: u32 = 32;

/// A slot's state word, unpacked by name: the generation in the high 32
/// bits, the flags above in the low ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SlotState(u64);

impl SlotState {
    /// A free slot of `generation`.
    fn free(generation: u32) -> Self {
        Self(u64::from(generation) << GEN_SHIFT)
    }

    /// An occupied slot of `generation`: detached from the start for a
    /// callback record, admitted under ledger `parity`.
    fn occupied(generation: u32, detached: bool, parity: Parity, timed: bool) -> Self {
        let mut bits = Self::free(generation).0 | IN_USE;
        if timed {
            bits |= SAMPLED;
        }
        if detached {
            bits |= DETACHED | CALLBACK;
        }
        if parity.is_odd() {
            bits |= PARITY;
        }
        Self(bits)
    }

    fn generation(self) -> u32 {
        (self.0 >> GEN_SHIFT) as u32
    }

    fn is_in_use(self) -> bool {
        self.0 & IN_USE != 0
    }

    fn is_claimed(self) -> bool {
        self.0 & CLAIMED != 0
    }

    fn is_complete(self) -> bool {
        self.0 & COMPLETE != 0
    }

    fn is_detached(self) -> bool {
        self.0 & DETACHED != 0
    }

    fn is_registered(self) -> bool {
        self.0 & REGISTERED != 0
    }

    fn has_callback(self) -> bool {
        self.0 & CALLBACK != 0
    }

    fn is_sampled(self) -> bool {
        self.0 & SAMPLED != 0
    }

    fn parity(self) -> Parity {
        Parity::from_odd(self.0 & PARITY != 0)
    }

    /// The same state with `CLAIMED` set.
    fn claimed(self) -> Self {
        Self(self.0 | CLAIMED)
    }
}

const HOLDS: &str = "an occupied slot holds a record";

/// A callback run on the completing thread instead of waking a future.
pub(crate) type Callback = Box<dyn FnOnce(Result<Delivery, DeliveryError>) + Send>;

/// What the delivery report said.
#[derive(Debug)]
pub enum Outcome {
    /// Stored in the log.
    Delivered {
        /// The partition.
        partition: i32,
        /// The record's offset.
        offset: i64,
        /// The record's timestamp.
        timestamp: Timestamp,
    },
    /// Not delivered.
    Failed {
        /// Why (boxed: failures are rare, and a small outcome keeps the
        /// lines the completer writes few, see [`Slot`]).
        error: Box<Error>,
        /// Whether it may be in the log anyway.
        persistence: Persistence,
    },
}

impl Outcome {
    /// A failure of a record that never left this process.
    pub fn failed(error: Error) -> Self {
        Outcome::Failed {
            error: Box::new(error),
            persistence: Persistence::NotPersisted,
        }
    }

    /// Whether the record was delivered.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Delivered { .. })
    }

    /// Pairs the outcome with its record into what the caller receives.
    pub(crate) fn into_result(self, mut record: Record) -> Result<Delivery, DeliveryError> {
        match self {
            Outcome::Delivered {
                partition,
                offset,
                timestamp,
            } => Ok(Delivery {
                topic: record.take_topic(),
                partition,
                offset,
                timestamp,
            }),
            Outcome::Failed { error, persistence } => {
                Err(DeliveryError::new(*error, persistence, record))
            }
        }
    }
}

/// What a completer must do after [`Slot::publish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Next {
    /// Wake the waiting future ([`Slot::wake`]).
    Wake,
    /// The future will find the outcome when polled: nothing to do.
    Nothing,
    /// Nobody will read the outcome: release the slot to the pool.
    Release,
}

/// A successful claim: what to credit in the ledger.
#[derive(Debug, Clone, Copy)]
pub struct Claim {
    /// The parity the record was admitted under.
    pub(crate) parity: Parity,
    /// Whether the outcome is a delivery.
    pub(crate) ok: bool,
    /// When a timed record entered its slot (`latency.rs`).
    pub(crate) sampled_at: Option<u64>,
}

impl Claim {
    /// When the timed record entered its slot (for the loom models).
    #[cfg(aioproducer_loom)]
    pub fn sampled_at(&self) -> Option<u64> {
        self.sampled_at
    }
}

/// One reusable delivery context.
///
/// Aligned to 128 bytes (two cache lines, the unit the x86-64 spatial
/// prefetcher moves; crossbeam's `CachePadded` uses the same): the thread
/// completing one slot and a caller reusing its neighbour never share a
/// line (`docs/ARCHITECTURE.md`, Allocation, has what it saved).
///
/// Laid out in this order (`repr(C)`) so that what crosses threads at
/// completion sits in the first 128 bytes: the state, the outcome and the
/// waker, which the completer (`rdk:bg`) writes, and the record's topic
/// (first in `Record`), which the future reads with them. Completing a
/// record with a future then touches one pair of lines; before, the state,
/// the outcome and the topic sat on three lines, and the completer's claim
/// and the future's poll each waited for them in turn. The rest of the
/// record and the callback (read by the completer only when the state says
/// there is one) follow.
#[repr(C, align(128))]
pub struct Slot {
    state: AtomicU64,
    /// While free: `index + 1` of the next free slot in the pool's stack
    /// (0: none). Owned by the pool.
    pub(crate) next: AtomicU32,
    outcome: UnsafeCell<Option<Outcome>>,
    waker: AtomicWaker,
    record: UnsafeCell<Option<Record>>,
    callback: UnsafeCell<Option<Callback>>,
    /// When a timed record entered the slot (`latency.rs`); read only
    /// under `SAMPLED`, on the line the producer writes with the callback.
    sampled_at: UnsafeCell<u64>,
}

// SAFETY: the cells are accessed only by the owner of the state they belong
// to (see the module docs), and the contents are `Send`.
unsafe impl Sync for Slot {}
// SAFETY: all contents are `Send`.
unsafe impl Send for Slot {}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.load(Relaxed);
        f.debug_struct("Slot")
            .field("generation", &(state >> GEN_SHIFT))
            .field("flags", &format_args!("{:#08b}", state & 0x3f))
            .finish()
    }
}

impl Default for Slot {
    fn default() -> Self {
        Self {
            state: AtomicU64::new(0),
            next: AtomicU32::new(0),
            record: UnsafeCell::new(None),
            outcome: UnsafeCell::new(None),
            callback: UnsafeCell::new(None),
            waker: AtomicWaker::new(),
            sampled_at: UnsafeCell::new(0),
        }
    }
}

impl Slot {
    /// Fills a free slot and marks it in use; returns its generation.
    ///
    /// # Safety
    /// The caller owns the slot: it popped it from the pool's free list and
    /// has not yet published its index.
    pub unsafe fn occupy(&self, record: Record, callback: Option<Callback>, parity: Parity) -> u32 {
        let detached = callback.is_some();
        // SAFETY: the caller owns the free slot (function contract).
        self.record.with_mut(|r| unsafe { *r = Some(record) });
        // SAFETY: as above.
        self.callback.with_mut(|c| unsafe { *c = callback });
        // Relaxed: only the owner writes the state of a free slot.
        let generation = SlotState(self.state.load(Relaxed)).generation();
        // Slots are 256 bytes apart in their pages: the address numbers
        // them as well as their index would.
        let number = (self as *const Self as usize >> 8) as u32;
        let timed = latency::sampled(number, generation);
        let late = bugs::active(Bug::LateSampleTime);
        if timed && !late {
            // SAFETY: as above; published by the Release store below.
            self.sampled_at
                .with_mut(|at| unsafe { *at = latency::now_nanos() });
        }
        let state = SlotState::occupied(generation, detached, parity, timed);
        // Release: publishes the record (and its time) to the completer's
        // claim (Acquire).
        self.state.store(state.0, Release);
        if timed && late {
            // SAFETY: none; the seeded bug of a loom twin (never in a normal
            // build): a write the Release store above does not publish.
            self.sampled_at
                .with_mut(|at| unsafe { *at = latency::now_nanos() });
        }
        generation
    }

    /// Takes the record back out of a slot whose index was never published
    /// (the record was refused after `occupy`).
    ///
    /// # Safety
    /// The caller owns the slot and never published its index.
    pub unsafe fn unoccupy(&self) -> Record {
        // SAFETY: the caller owns the slot (function contract).
        self.callback.with_mut(|c| unsafe { *c = None });
        // SAFETY: as above.
        self.record
            .with_mut(|r| unsafe { (*r).take() })
            .expect(HOLDS)
    }

    /// Runs `f` on the queued record.
    ///
    /// # Safety
    /// The caller is the worker that popped the slot's index from its ring and
    /// has not yet handed the record to librdkafka (nobody else touches the
    /// record in that phase).
    pub unsafe fn with_record<R>(&self, f: impl FnOnce(&Record) -> R) -> R {
        // SAFETY: the worker has shared, unaliased-by-writers access (contract).
        self.record
            .with(|r| f(unsafe { (*r).as_ref() }.expect(HOLDS)))
    }

    /// Hints that [`with_record`](Slot::with_record) will soon read the
    /// record: starts loading its lines, which its producer wrote.
    pub fn prefetch_record(&self) {
        prefetch_lines(&self.record, Intent::Read);
    }

    /// Hints that [`claim`](Slot::claim) will soon complete the slot: starts
    /// loading the lines of the state, the outcome and the waker.
    pub fn prefetch_claim(&self) {
        // The claim writes the state and the outcome; the wake swaps the
        // waker's state.
        prefetch_lines(&self.state, Intent::Write);
        prefetch_lines(&self.outcome, Intent::Write);
        prefetch_lines(&self.waker, Intent::Write);
    }

    /// Claims the right to complete generation `generation` and stores
    /// `outcome` in the slot, where nobody sees it until
    /// [`publish`](Slot::publish). Returns `None`, storing nothing, for a
    /// stale or duplicate completion.
    ///
    /// Claim and publication are two steps so that a run of reports can free
    /// their room under the ledger's bound once, between the two, before any
    /// of them is visible (`Shared::complete_run`).
    ///
    /// # Safety
    /// No intake owns the record of generation `generation` of this slot:
    /// its ticket was published (the record left the intake for a ring),
    /// or `generation` is not the slot's current one. A stale or duplicate
    /// completion is then harmless: the claim refuses it.
    pub unsafe fn claim(&self, generation: u32, outcome: Outcome) -> Option<Claim> {
        let mut state = SlotState(self.state.load(Acquire));
        loop {
            if state.generation() != generation || !state.is_in_use() || state.is_claimed() {
                return None;
            }
            // Acquire: see the record written before `occupy`'s Release store.
            match self
                .state
                .compare_exchange_weak(state.0, state.claimed().0, Acquire, Acquire)
            {
                Ok(_) => break,
                Err(actual) => state = SlotState(actual),
            }
        }
        let ok = outcome.is_ok();
        // SAFETY: the claim makes this thread the only one touching the
        // outcome until COMPLETE is published.
        self.outcome.with_mut(|o| unsafe { *o = Some(outcome) });
        // SAFETY: written before `occupy`'s Release store, which the claim's
        // Acquire saw; nobody writes it until the slot is reused.
        let sampled_at = state
            .is_sampled()
            .then(|| self.sampled_at.with(|at| unsafe { *at }));
        Some(Claim {
            parity: state.parity(),
            ok,
            sampled_at,
        })
    }

    /// Makes a claimed outcome visible and says what the caller must do
    /// next. In callback mode the callback runs here, on the calling thread;
    /// a panic in it is caught and logged so it cannot unwind into
    /// librdkafka.
    ///
    /// # Safety
    /// The caller claimed the slot ([`claim`](Slot::claim) returned `Some`)
    /// and has not published it yet.
    pub unsafe fn publish(&self) -> Next {
        // Relaxed: CALLBACK was set by `occupy` and seen by our claim's
        // Acquire; nobody changes it while the slot is claimed.
        let has_callback = SlotState(self.state.load(Relaxed)).has_callback();
        // SAFETY: the claim makes this thread the only one touching the
        // callback and outcome until COMPLETE is published.
        if let Some(callback) = has_callback
            .then(|| self.callback.with_mut(|c| unsafe { (*c).take() }))
            .flatten()
        {
            // SAFETY: as above; nobody else reads the record of a claimed,
            // detached slot.
            let record = self
                .record
                .with_mut(|r| unsafe { (*r).take() })
                .expect(HOLDS);
            // SAFETY: as above.
            let outcome = self.outcome.with_mut(|o| unsafe { (*o).take() });
            let result = outcome
                .expect("a claimed slot holds an outcome")
                .into_result(record);
            // The callback may drop the last producer handle: that drop
            // must hand the shutdown to another thread (`block_on.rs`).
            let reporting = Reporting::enter();
            let ran = catch_unwind(AssertUnwindSafe(|| callback(result)));
            drop(reporting);
            if ran.is_err() {
                log::error!("a delivery callback panicked; the panic was contained");
            }
            return Next::Release;
        }
        // A callback record always takes the branch above: CALLBACK is set
        // exactly when `occupy` stored a callback.
        // AcqRel: Release publishes the outcome to `poll`; Acquire orders a
        // concurrent DETACHED before our release of the slot.
        let previous = SlotState(
            self.state
                .fetch_or(COMPLETE, bugs::ordering(Bug::RelaxedComplete, AcqRel)),
        );
        if previous.is_detached() {
            Next::Release
        } else if previous.is_registered() {
            Next::Wake
        } else {
            Next::Nothing
        }
    }

    /// Wakes the future waiting on this slot (after [`Next::Wake`]).
    pub fn wake(&self) {
        self.waker.wake();
    }

    /// Polls for the result. On `Ready` the caller owns the slot and must
    /// release it. A delivered record stays in the slot (it is dropped in
    /// place on release); a failed one is moved into the error.
    ///
    /// # Safety
    /// The caller is the one future of the slot's current record (no other
    /// caller polls or detaches it), and it has not seen `Ready` yet.
    pub unsafe fn poll_result(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Delivery, DeliveryError>> {
        // Acquire: pairs with the completer's Release of COMPLETE.
        let state = SlotState(self.state.load(Acquire));
        if !state.is_complete() {
            self.waker.register(cx.waker());
            // Announce the waker and learn, in the same RMW, whether the
            // outcome came first (module docs). Once announced, a plain load
            // re-checks (the completer wakes whatever is registered).
            let state = SlotState(if !state.is_registered() {
                // AcqRel: Release publishes the registration to the
                // completer; Acquire sees its outcome if it came first.
                self.state.fetch_or(REGISTERED, AcqRel)
            } else {
                self.state.load(Acquire)
            });
            if bugs::active(Bug::SkipPollRecheck) || !state.is_complete() {
                return Poll::Pending;
            }
        }
        // SAFETY: COMPLETE is set and this future is not detached: the
        // completer is done with the slot and only the future touches it.
        let outcome = self.outcome.with_mut(|o| unsafe { (*o).take() });
        let result = match outcome.expect("a complete slot holds an outcome") {
            Outcome::Delivered {
                partition,
                offset,
                timestamp,
            } => Ok(Delivery {
                // SAFETY: as above. The record stays in the slot (dropped on
                // release) without its topic (`Record::take_topic`).
                topic: self
                    .record
                    .with_mut(|r| unsafe { (*r).as_mut() }.expect(HOLDS).take_topic()),
                partition,
                offset,
                timestamp,
            }),
            Outcome::Failed { error, persistence } => {
                // SAFETY: as above.
                let record = self.record.with_mut(|r| unsafe { (*r).take() });
                Err(DeliveryError::new(
                    *error,
                    persistence,
                    record.expect(HOLDS),
                ))
            }
        };
        Poll::Ready(result)
    }

    /// Marks that no future will read the outcome. Returns `true` when the
    /// slot was already complete and the caller must release it.
    pub fn detach(&self) -> bool {
        // AcqRel: Acquire sees the outcome if complete (we drop it on
        // release); Release hands our side over to the completer otherwise.
        SlotState(self.state.fetch_or(DETACHED, AcqRel)).is_complete()
    }

    /// The ledger parity the slot's record was admitted under.
    ///
    /// # Safety
    /// As for [`Slot::with_record`]: the caller holds the record's ticket,
    /// popped and not yet handed over.
    pub unsafe fn parity(&self) -> Parity {
        // Relaxed: the parity bit was written by `occupy`, which the ticket's
        // journey through the ring already ordered before us.
        SlotState(self.state.load(Relaxed)).parity()
    }

    /// Whether the slot is out of the pool.
    pub fn in_use(&self) -> bool {
        SlotState(self.state.load(Relaxed)).is_in_use()
    }

    /// Whether the slot holds a record nobody has completed yet: used after
    /// librdkafka is destroyed, to fail what it never reported.
    pub fn pending_generation(&self) -> Option<u32> {
        let state = SlotState(self.state.load(Acquire));
        (state.is_in_use() && !state.is_claimed()).then_some(state.generation())
    }

    /// Empties the slot and advances its generation, making it free.
    ///
    /// # Safety
    /// The caller owns the slot: it took the outcome in `poll_result`, or it
    /// was told [`Next::Release`], or `detach` returned `true`, or it owns an
    /// unpublished slot.
    pub unsafe fn reset(&self) {
        // SAFETY: the caller owns the slot (function contract).
        self.record.with_mut(|r| unsafe { *r = None });
        // SAFETY: as above.
        self.outcome.with_mut(|o| unsafe { *o = None });
        // SAFETY: as above.
        self.callback.with_mut(|c| unsafe { *c = None });
        let state = SlotState(self.state.load(Relaxed));
        if state.is_registered() {
            // Do not keep the last task alive until the slot's next use.
            drop(self.waker.take());
        }
        let step = u32::from(!bugs::active(Bug::ReuseGeneration));
        let next = SlotState::free(state.generation().wrapping_add(step));
        // Release: the next owner (via the free list) sees the emptied cells.
        self.state.store(next.0, Release);
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;
    use crate::record::Topic;

    #[test]
    fn what_crosses_threads_at_completion_sits_in_the_first_two_lines() {
        let topic_end = offset_of!(Slot, record) + size_of::<Topic>();
        let fields = [
            ("state", offset_of!(Slot, state) + size_of::<AtomicU64>()),
            (
                "outcome",
                offset_of!(Slot, outcome) + size_of::<Option<Outcome>>(),
            ),
            ("waker", offset_of!(Slot, waker) + size_of::<AtomicWaker>()),
            ("the record's topic", topic_end),
        ];
        for (field, end) in fields {
            assert!(end <= 128, "{field} ends at byte {end} of the slot");
        }
        assert_eq!(size_of::<Slot>() % 128, 0);
    }
}
