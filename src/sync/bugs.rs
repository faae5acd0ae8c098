//! Seeded bugs, for the loom models' twins only.
//!
//! Each loom model in `loom-tests/` has a twin that switches on one bug here
//! (an ordering weakened, a check removed, a wake-up skipped) and asserts
//! that loom then reports a failure: a model that still passes with its bug
//! in place proves nothing. The switch exists only in the loom build
//! (`--cfg aioproducer_loom`, which `scripts/loom` sets), never in a normal
//! build: there [`active`] is a constant `false` and every check compiles
//! away. (Not a Cargo feature: features are unified across a workspace, so
//! one would put live bug checks into the real crate's builds.) A site is
//! one call: [`active`] for a check, [`ordering`] for an ordering.

/// One seeded bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Bug {
    /// `Slot::reset` keeps the generation: a stale report can complete the
    /// slot's next record.
    ReuseGeneration = 1,
    /// The pool's free stack does not change its tag: ABA can hand one
    /// slot out twice.
    UntaggedStack,
    /// The completer publishes `COMPLETE` with `Relaxed` instead of
    /// `AcqRel`: the future may read the outcome before it is written.
    RelaxedComplete,
    /// A polled future registers its waker but does not look at the slot
    /// again before returning `Pending`.
    SkipPollRecheck,
    /// `Parker::park_unless` parks without checking for work after
    /// announcing the sleep.
    SkipParkRecheck,
    /// The worker does not tell producers waiting for ring space.
    SkipSpaceNotify,
    /// `Ledger::advance` moves the epoch without checking the older parity.
    SkipOlderParityCheck,
    /// `Ledger::admit` reads `closed` before counting the record in.
    CheckClosedFirst,
    /// A worker arming a deadline does not tell the timer.
    SkipTimerSchedule,
    /// A report does not wake a producer waiting for room under the bound
    /// on records in flight.
    SkipRoomNotify,
    /// A run of reports frees its room under the bound only after its
    /// outcomes are visible.
    FreeRoomAfterPublish,
    /// A producer that finds the worker asleep and its baton held neither
    /// hands over nor wakes the worker.
    SkipBusyBatonWake,
    /// A producer whose round left work for the worker (records it could
    /// not hand over without waiting) does not wake it.
    SkipLeftWorkWake,
    /// Taking the baton is `Relaxed` instead of `Acquire`: a holder may not
    /// see the previous holder's writes to the core.
    RelaxedBaton,
    /// A hand-over ignores the purge flag: a record of a purge's parity
    /// pushed after its worker served the purge reaches librdkafka.
    SkipPurgeFlag,
    /// `Slot::occupy` writes a timed record's enqueue time after its
    /// Release store: a completer's claim may read it before it is written.
    LateSampleTime,
}

#[cfg(aioproducer_loom)]
static ACTIVE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Switches `bug` on (or all off with `None`) for what runs next.
#[cfg(aioproducer_loom)]
pub fn activate(bug: Option<Bug>) {
    ACTIVE.store(
        bug.map_or(0, |b| b as u8),
        std::sync::atomic::Ordering::SeqCst,
    );
}

/// Whether `bug` is switched on.
#[inline(always)]
pub(crate) fn active(bug: Bug) -> bool {
    #[cfg(aioproducer_loom)]
    {
        ACTIVE.load(std::sync::atomic::Ordering::Relaxed) == bug as u8
    }
    #[cfg(not(aioproducer_loom))]
    {
        let _ = bug;
        false
    }
}

/// `ordering`, or `Relaxed` while `bug` (an ordering weakened) is on.
#[inline(always)]
pub(crate) fn ordering(
    bug: Bug,
    ordering: std::sync::atomic::Ordering,
) -> std::sync::atomic::Ordering {
    if active(bug) {
        std::sync::atomic::Ordering::Relaxed
    } else {
        ordering
    }
}
