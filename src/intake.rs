//! Intake: from a caller's record to a ticket in a worker's ring.
//!
//! 1. check the record (closed? topic name, partition, timestamp, size);
//! 2. take a delivery slot from the pool, waiting for one if the producer is
//!    at its bound on records in flight;
//! 3. count the record in (the ledger refuses it once closed) and move it
//!    into the slot;
//! 4. push the slot's ticket to the worker chosen for the record, waiting
//!    for room if that ring is full, and wake the worker.
//!
//! [`Intake`] is one hand-written future for both `produce` (which waits)
//! and `try_produce` (which refuses with `QueueFull` instead). Written by
//! hand rather than as an `async fn`, it is a fifth of the size and moves
//! the record once, into its slot. Each wait follows `Notify`'s rule: try,
//! register, try again, then sleep.
//!
//! Dropping it at any point leaves nothing behind: before step 3 the caller
//! still owns the record; after it, [`Staged`] takes the record back out of
//! its slot and the count back out of the ledger.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};

use crate::error::{DeliveryError, Error};
use crate::notify::Listener;
use crate::record::Record;
use crate::ring::Ticket;
use crate::route::worker_for;
use crate::shared::Shared;
use crate::slot::Callback;

/// A record admitted and in its slot, not yet in a ring. Dropping it takes
/// the record back out and uncounts it.
struct Staged<'a> {
    shared: &'a Shared,
    worker: usize,
    ticket: Ticket,
    parity: usize,
}

impl Staged<'_> {
    /// Pushes the ticket to its worker's ring; hands `self` back when full.
    fn push(self) -> Result<Ticket, Self> {
        match self.shared.workers[self.worker].push(self.ticket) {
            Ok(()) => {
                let ticket = self.ticket;
                std::mem::forget(self);
                Ok(ticket)
            }
            Err(_) => Err(self),
        }
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

enum State<'a> {
    /// Not yet checked.
    New {
        record: Record,
        callback: Option<Callback>,
    },
    /// Checked; needs a slot (with a registration once it had to wait).
    NeedSlot {
        record: Record,
        callback: Option<Callback>,
        listener: Option<Listener<'a>>,
    },
    /// In its slot; needs room in its ring.
    NeedRoom {
        staged: Staged<'a>,
        listener: Option<Listener<'a>>,
    },
    Done,
}

/// The intake of one record; resolves to its ticket, or hands the record
/// back with the reason it was refused.
#[must_use = "a record is queued only when its intake is polled"]
pub(crate) struct Intake<'a> {
    shared: &'a Shared,
    /// Wait for room, or refuse with `QueueFull`.
    wait: bool,
    state: State<'a>,
}

impl<'a> Intake<'a> {
    pub(crate) fn new(
        shared: &'a Shared,
        record: Record,
        callback: Option<Callback>,
        wait: bool,
    ) -> Self {
        Self {
            shared,
            wait,
            state: State::New { record, callback },
        }
    }

    /// Counts the record in and moves it into slot `index`.
    fn admit(
        &self,
        index: u32,
        record: Record,
        callback: Option<Callback>,
    ) -> Result<Staged<'a>, DeliveryError> {
        let shared = self.shared;
        let parity = match shared.ledger.admit() {
            Ok(parity) => parity,
            Err(_closed) => {
                // SAFETY: the slot was just acquired and never published.
                unsafe { shared.pool.release(index) };
                shared.refused.fetch_add(1, Relaxed);
                return Err(DeliveryError::refused(Error::Closed, record));
            }
        };
        let worker = worker_for(&record, shared.workers.len());
        // SAFETY: the slot was just acquired and is not yet published.
        let generation = unsafe { shared.pool.slot(index).occupy(record, callback, parity) };
        Ok(Staged {
            shared,
            worker,
            ticket: Ticket::new(index, generation),
            parity,
        })
    }
}

/// Polls a registration, if any: `true` once notified (time to try again),
/// `false` to keep waiting. A missing one is created (registered) and counts
/// as "try again", which is the try–register–try of `Notify`.
fn notified<'a>(
    listener: &mut Option<Listener<'a>>,
    notify: &'a crate::notify::Notify,
    cx: &mut Context<'_>,
) -> bool {
    match listener {
        None => {
            *listener = Some(notify.listen());
            true
        }
        Some(registered) => {
            if Pin::new(registered).poll(cx).is_ready() {
                *listener = None;
                true
            } else {
                false
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
            match std::mem::replace(&mut this.state, State::Done) {
                State::New { record, callback } => {
                    let checked = if shared.ledger.is_closed() {
                        Err(Error::Closed)
                    } else {
                        record.validate(shared.max_message_bytes)
                    };
                    if let Err(error) = checked {
                        return Poll::Ready(Err(DeliveryError::refused(error, record)));
                    }
                    this.state = State::NeedSlot {
                        record,
                        callback,
                        listener: None,
                    };
                }
                State::NeedSlot {
                    record,
                    callback,
                    mut listener,
                } => {
                    if let Some(index) = shared.pool.try_acquire() {
                        drop(listener);
                        match this.admit(index, record, callback) {
                            Ok(staged) => {
                                this.state = State::NeedRoom {
                                    staged,
                                    listener: None,
                                }
                            }
                            Err(refused) => return Poll::Ready(Err(refused)),
                        }
                        continue;
                    }
                    let refusal = if shared.ledger.is_closed() {
                        Some(Error::Closed)
                    } else if !this.wait {
                        Some(Error::QueueFull)
                    } else {
                        None
                    };
                    if let Some(error) = refusal {
                        return Poll::Ready(Err(DeliveryError::refused(error, record)));
                    }
                    let again = notified(&mut listener, &shared.pool.space, cx);
                    this.state = State::NeedSlot {
                        record,
                        callback,
                        listener,
                    };
                    if !again {
                        return Poll::Pending;
                    }
                }
                State::NeedRoom {
                    staged,
                    mut listener,
                } => {
                    let worker = staged.worker;
                    match staged.push() {
                        Ok(ticket) => return Poll::Ready(Ok(ticket)),
                        Err(staged) if !this.wait => {
                            let record = staged.cancel();
                            return Poll::Ready(Err(DeliveryError::refused(
                                Error::QueueFull,
                                record,
                            )));
                        }
                        Err(staged) => {
                            // Admitted records are not refused when closing:
                            // `close` waits for them, and workers still drain.
                            let space = shared.workers[worker].space();
                            let again = notified(&mut listener, space, cx);
                            this.state = State::NeedRoom { staged, listener };
                            if !again {
                                return Poll::Pending;
                            }
                        }
                    }
                }
                State::Done => panic!("Intake polled after it resolved"),
            }
        }
    }
}
