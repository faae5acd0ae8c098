//! Intake: from a caller's record to a ticket in a worker's ring.
//!
//! 1. check the record (closed? topic name, partition, timestamp, size);
//! 2. count it in with the ledger, waiting for room if the producer is at
//!    its bound on records in flight (the ledger refuses it once closed);
//! 3. move it into a delivery slot from the pool;
//! 4. push the slot's ticket to the worker chosen for the record, waiting
//!    for room if that ring is full, and wake the worker.
//!
//! [`Intake`] is one hand-written future for both `produce` (which waits)
//! and `try_produce` (which refuses with `QueueFull` instead). Written by
//! hand rather than as an `async fn`, it is a fifth of the size and moves
//! the record once, into its slot. Each wait follows `WaitList`'s rule: try,
//! register, try again, then sleep.
//!
//! Dropping it at any point leaves nothing behind: before step 2 the caller
//! still owns the record; after it, [`Staged`] takes the record back out of
//! its slot and the count back out of the ledger.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};

use crate::delivery::ledger::{Parity, Refusal};
use crate::delivery::slot::Callback;
use crate::delivery::ticket::Ticket;
use crate::error::Error;
use crate::producer::shared::Shared;
use crate::record::Record;
use crate::report::DeliveryError;
use crate::sync::wait_list::{Listener, WaitList};
use crate::worker::producer_round;
use crate::worker::route::worker_for;

/// A record admitted and in its slot, not yet in a ring. Dropping it takes
/// the record back out and uncounts it.
struct Staged<'a> {
    shared: &'a Shared,
    worker: usize,
    ticket: Ticket,
    parity: Parity,
}

impl Staged<'_> {
    /// Pushes the ticket to its worker's ring (handing over on the worker's
    /// behalf if it sleeps, see `worker/mod.rs`); hands `self` back when full.
    fn push(self) -> Result<Ticket, Self> {
        let (shared, remote) = (self.shared, &self.shared.workers[self.worker]);
        if !shared.producers_hand_over {
            return match remote.push(self.ticket) {
                Ok(()) => Ok(self.disarm()),
                Err(_) => Err(self),
            };
        }
        let ticket = self.ticket;
        let mut staged = Some(self);
        let pushed = remote.push_or_run_round(
            ticket,
            // The ticket is out of our hands from here: a round may hand it
            // to librdkafka, so nothing may take the record back.
            || {
                if let Some(staged) = staged.take() {
                    staged.disarm();
                }
            },
            |core| producer_round(core, shared, remote),
        );
        match pushed {
            Ok(()) => Ok(ticket),
            Err(_) => Err(staged.take().expect("not pushed: still staged")),
        }
    }

    /// The ticket, now published: dropping `self` no longer undoes it.
    fn disarm(self) -> Ticket {
        let ticket = self.ticket;
        std::mem::forget(self);
        ticket
    }

    /// Undoes the admission and returns the record.
    fn cancel(self) -> Record {
        let record = self.undo();
        std::mem::forget(self);
        record
    }

    fn undo(&self) -> Record {
        let (shared, index) = (self.shared, self.ticket.index());
        // SAFETY: the ticket never reached a ring: this thread still owns
        // the slot.
        let record = unsafe { shared.pool.slot(index).unoccupy() };
        // SAFETY: as above.
        unsafe { shared.pool.release(index) };
        shared.ledger.cancel(self.parity);
        shared.refused.fetch_add(1, Relaxed);
        record
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        drop(self.undo());
    }
}

/// What an intake does when the producer or the ring is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhenFull {
    /// Wait for room (`produce`).
    Wait,
    /// Hand the record back with `QueueFull` (`try_produce`).
    Refuse,
}

enum State<'a> {
    /// Not yet checked.
    New {
        record: Record,
        callback: Option<Callback>,
    },
    /// Checked; needs room under the bound on records in flight.
    NeedAdmission {
        record: Record,
        callback: Option<Callback>,
    },
    /// In its slot; needs room in its ring.
    NeedRoom {
        staged: Staged<'a>,
    },
    Done,
}

/// What one attempt came to.
enum Attempt<'a> {
    Finished(Result<Ticket, DeliveryError>),
    /// At the bound on records in flight.
    Full(Record, Option<Callback>),
    NoRoom(Staged<'a>),
}

/// The intake of one record; resolves to its ticket, or hands the record
/// back with the reason it was refused.
#[must_use = "a record is queued only when its intake is polled"]
pub(crate) struct Intake<'a> {
    shared: &'a Shared,
    /// Wait for room, or refuse with `QueueFull`.
    when_full: WhenFull,
    state: State<'a>,
    /// The registration of the current wait, if any.
    listener: Option<Listener<'a>>,
}

impl<'a> Intake<'a> {
    pub(crate) fn new(
        shared: &'a Shared,
        record: Record,
        callback: Option<Callback>,
        when_full: WhenFull,
    ) -> Self {
        Self {
            shared,
            when_full,
            state: State::New { record, callback },
            listener: None,
        }
    }

    /// Counts the record in, moves it into a slot, pushes its ticket.
    fn attempt_admission(&self, record: Record, callback: Option<Callback>) -> Attempt<'a> {
        let shared = self.shared;
        let parity = match shared.ledger.admit() {
            Ok(parity) => parity,
            Err(Refusal::Full) => return Attempt::Full(record, callback),
            Err(Refusal::Closed) => {
                return Attempt::Finished(Err(DeliveryError::refused(Error::Closed, record)));
            }
        };
        let index = shared.pool.acquire();
        let worker = worker_for(&record, shared.workers.len());
        // SAFETY: the slot was just acquired and is not yet published.
        let generation = unsafe { shared.pool.slot(index).occupy(record, callback, parity) };
        Self::attempt_room(Staged {
            shared,
            worker,
            ticket: Ticket::new(index, generation),
            parity,
        })
    }

    /// Pushes the staged ticket to its worker's ring.
    fn attempt_room(staged: Staged<'a>) -> Attempt<'a> {
        match staged.push() {
            Ok(ticket) => Attempt::Finished(Ok(ticket)),
            Err(staged) => Attempt::NoRoom(staged),
        }
    }

    /// Waits on `notify` (try, register, try again, sleep): `true` to try
    /// again now, `false` to return `Pending`.
    fn wait_on(&mut self, notify: &'a WaitList, cx: &mut Context<'_>) -> bool {
        match &mut self.listener {
            Some(listener) if listener.is_for(notify) => {
                if Pin::new(listener).poll(cx).is_ready() {
                    self.listener = None;
                    true
                } else {
                    false
                }
            }
            _ => {
                // Registered now: look once more before sleeping.
                self.listener = Some(notify.listen());
                true
            }
        }
    }
}

impl Future for Intake<'_> {
    type Output = Result<Ticket, DeliveryError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let shared = this.shared;
        loop {
            let attempt = match std::mem::replace(&mut this.state, State::Done) {
                State::New { record, callback } => {
                    let checked = if shared.ledger.is_closed() {
                        Err(Error::Closed)
                    } else if let Some(fatal) = shared.fatal() {
                        Err(fatal.clone())
                    } else {
                        record.validate(shared.limits)
                    };
                    match checked {
                        Ok(()) => this.attempt_admission(record, callback),
                        Err(error) => Attempt::Finished(Err(DeliveryError::refused(error, record))),
                    }
                }
                State::NeedAdmission { record, callback } => {
                    this.attempt_admission(record, callback)
                }
                State::NeedRoom { staged } => Self::attempt_room(staged),
                State::Done => panic!("Intake polled after it resolved"),
            };
            let again = match attempt {
                Attempt::Finished(result) => {
                    this.listener = None;
                    return Poll::Ready(result);
                }
                Attempt::Full(record, callback) => {
                    let refusal = if shared.ledger.is_closed() {
                        Some(Error::Closed)
                    } else if this.when_full == WhenFull::Refuse {
                        Some(Error::QueueFull)
                    } else {
                        None
                    };
                    if let Some(error) = refusal {
                        this.listener = None;
                        return Poll::Ready(Err(DeliveryError::refused(error, record)));
                    }
                    this.state = State::NeedAdmission { record, callback };
                    this.wait_on(shared.ledger.room(), cx)
                }
                Attempt::NoRoom(staged) if this.when_full == WhenFull::Refuse => {
                    return Poll::Ready(Err(DeliveryError::refused(
                        Error::QueueFull,
                        staged.cancel(),
                    )));
                }
                Attempt::NoRoom(staged) => {
                    // Admitted records are not refused when closing: `close`
                    // waits for them, and workers still drain.
                    let space = shared.workers[staged.worker].space();
                    this.state = State::NeedRoom { staged };
                    this.wait_on(space, cx)
                }
            };
            if !again {
                return Poll::Pending;
            }
        }
    }
}
