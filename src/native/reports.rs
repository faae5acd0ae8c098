//! How the librdkafka side reports to the producer without knowing
//! it: a small trait the producer implements (rust-rdkafka's `ProducerContext`
//! is the model). The client's callbacks and the hand-over reach the producer
//! only through [`Reports`], so nothing in `native/` depends on the
//! producer, the workers or the slot pool.

use crate::delivery::slot::Outcome;
use crate::delivery::ticket::Ticket;
use crate::error::Error;
use crate::events::{ClientError, Throttle};
use crate::record::Record;
use crate::sync::Arc;

/// What the producer offers the librdkafka side.
pub(crate) trait Reports: Send + Sync {
    /// Completes the records of a run of delivery reports (one event of
    /// librdkafka's), each with its outcome; stale or duplicate reports are
    /// ignored.
    ///
    /// # Safety
    /// Every ticket of `run` was published to a ring (the record left the
    /// producer's intake).
    unsafe fn complete_run(&self, run: &mut dyn Iterator<Item = (Ticket, Outcome)>);

    /// Fails the record behind `ticket` before librdkafka saw it (refused
    /// at hand-over).
    ///
    /// # Safety
    /// As for [`Reports::complete_run`].
    unsafe fn refuse(&self, ticket: Ticket, error: Error);

    /// The record behind `ticket`, while it is handed over.
    ///
    /// # Safety
    /// The caller popped `ticket` under its worker's baton and has not
    /// handed it over yet: nobody else touches the record meanwhile.
    unsafe fn record(&self, ticket: Ticket) -> &Record;

    /// A hint: [`record`](Reports::record) will soon read the record of
    /// `ticket` (one the producer published). Changes nothing.
    fn prefetch_record(&self, ticket: Ticket);

    /// A hint: [`complete_run`](Reports::complete_run) will soon complete
    /// the record of `ticket` (one the producer published). Changes nothing.
    fn prefetch_report(&self, ticket: Ticket);

    /// The producer's fatal error, once librdkafka raised one.
    fn fatal(&self) -> Option<&Error>;

    /// Remembers the producer's fatal error (the first one counts) and
    /// returns it.
    fn set_fatal(&self, error: Error) -> Error;

    /// librdkafka's latest statistics JSON.
    fn statistics(&self, json: String);

    /// A client-wide error librdkafka raised (for the application's hook).
    fn client_error(&self, error: ClientError);

    /// A broker throttled the producer (for the application's hook).
    fn throttle(&self, throttle: Throttle);
}

/// Shared producer state reports through the `Arc` the client's context holds.
impl<T: Reports + ?Sized> Reports for Arc<T> {
    unsafe fn complete_run(&self, run: &mut dyn Iterator<Item = (Ticket, Outcome)>) {
        // SAFETY: forwarded contract.
        unsafe { (**self).complete_run(run) }
    }

    unsafe fn refuse(&self, ticket: Ticket, error: Error) {
        // SAFETY: forwarded contract.
        unsafe { (**self).refuse(ticket, error) }
    }

    unsafe fn record(&self, ticket: Ticket) -> &Record {
        // SAFETY: forwarded contract.
        unsafe { (**self).record(ticket) }
    }

    fn prefetch_record(&self, ticket: Ticket) {
        (**self).prefetch_record(ticket)
    }

    fn prefetch_report(&self, ticket: Ticket) {
        (**self).prefetch_report(ticket)
    }

    fn fatal(&self) -> Option<&Error> {
        (**self).fatal()
    }

    fn set_fatal(&self, error: Error) -> Error {
        (**self).set_fatal(error)
    }

    fn statistics(&self, json: String) {
        (**self).statistics(json)
    }

    fn client_error(&self, error: ClientError) {
        (**self).client_error(error)
    }

    fn throttle(&self, throttle: Throttle) {
        (**self).throttle(throttle)
    }
}
