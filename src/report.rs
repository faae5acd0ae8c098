//! What a producer reports for each record: where it landed ([`Delivery`]),
//! or why not, with the record handed back ([`DeliveryError`]).

use std::fmt;

use crate::error::Error;
use crate::record::{Record, Topic};

/// A record's timestamp as the broker stored it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timestamp {
    /// No timestamp (old message formats).
    NotAvailable,
    /// Set by the producer (the record's, or the time of `produce`).
    CreateTime(i64),
    /// Set by the broker on append (topic `message.timestamp.type=LogAppendTime`).
    LogAppendTime(i64),
}

impl Timestamp {
    /// Milliseconds since the Unix epoch, if available.
    pub fn millis(&self) -> Option<i64> {
        match *self {
            Timestamp::NotAvailable => None,
            Timestamp::CreateTime(ms) | Timestamp::LogAppendTime(ms) => Some(ms),
        }
    }
}

/// Where a record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The topic.
    pub topic: Topic,
    /// The partition.
    pub partition: i32,
    /// The record's offset in the partition.
    pub offset: i64,
    /// The record's timestamp.
    pub timestamp: Timestamp,
}

/// Whether a failed record may nevertheless be in the broker's log
/// (librdkafka's `rd_kafka_msg_status_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// The record never reached a broker: retrying cannot duplicate it.
    NotPersisted,
    /// The record was sent but not acknowledged: it may be in the log.
    PossiblyPersisted,
    /// The broker acknowledged the record.
    Persisted,
}

/// A record that was not delivered, handed back with the reason.
///
/// Returned when a record is refused at the call
/// ([`AioProducer::produce`](crate::AioProducer::produce): invalid, closed,
/// no room for `try_produce`) and when its delivery fails (the
/// [`DeliveryFuture`](crate::DeliveryFuture) resolves to it). Nothing is lost:
/// the caller gets the record back to retry, reroute or drop.
///
/// It is one pointer wide (the failure is boxed), so the `Result`s of the
/// hot path stay small; the allocation happens only when a record fails.
#[derive(Debug)]
pub struct DeliveryError(Box<Failure>);

#[derive(Debug)]
struct Failure {
    error: Error,
    persistence: Persistence,
    record: Record,
}

impl DeliveryError {
    /// A record refused before it was queued: it never left this process.
    pub(crate) fn refused(error: Error, record: Record) -> Self {
        Self::new(error, Persistence::NotPersisted, record)
    }

    pub(crate) fn new(error: Error, persistence: Persistence, record: Record) -> Self {
        Self(Box::new(Failure {
            error,
            persistence,
            record,
        }))
    }

    /// Why the record was not delivered.
    pub fn error(&self) -> &Error {
        &self.0.error
    }

    /// Whether the record may be in the log anyway (it was in flight when it
    /// timed out or was purged). Retrying such a record without idempotence
    /// may duplicate it.
    pub fn possibly_persisted(&self) -> bool {
        self.0.persistence != Persistence::NotPersisted
    }

    /// librdkafka's verdict on where the record got to.
    pub fn persistence(&self) -> Persistence {
        self.0.persistence
    }

    /// The undelivered record.
    pub fn record(&self) -> &Record {
        &self.0.record
    }

    /// Takes the record back.
    pub fn into_record(self) -> Record {
        self.0.record
    }

    /// Splits into the reason and the record.
    pub fn into_parts(self) -> (Error, Record) {
        let failure = *self.0;
        (failure.error, failure.record)
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "record for topic {:?} not delivered: {}",
            self.0.record.topic(),
            self.0.error
        )
    }
}

impl std::error::Error for DeliveryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0.error)
    }
}
