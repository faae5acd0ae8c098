//! Errors: one enum for everything that can go wrong. (The failure that
//! hands a record back to its owner, [`DeliveryError`](crate::DeliveryError),
//! is in `report.rs`.)

use std::fmt;

use rdkafka::types::RDKafkaErrorCode;

/// What went wrong.
///
/// Every variant names the offending value where there is one. Variants that
/// come from librdkafka keep its error code ([`Error::kafka_code`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A configuration property was refused: unknown key, bad value, or a
    /// combination librdkafka rejects. Secret values are shown as
    /// `[redacted]`.
    Config {
        /// The property name.
        key: String,
        /// The value as given, or `[redacted]` for secrets.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// librdkafka refused to create the client.
    Client(String),
    /// The operating system refused to start one of the producer's threads.
    Thread {
        /// The thread's kind (`aioproducer-worker`, `aioproducer-txn`, ...).
        name: &'static str,
        /// The operating system's reason.
        reason: String,
    },
    /// A transactional call panicked on its helper thread (a bug; the
    /// transaction's state is unknown: abort it).
    TransactionalCallPanicked,
    /// The embedded (mock) cluster refused a request.
    EmbeddedCluster(String),
    /// The topic name is not a valid Kafka topic name.
    InvalidTopic {
        /// The name as given (control characters escaped when displayed).
        topic: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// An explicit partition was negative.
    InvalidPartition(i32),
    /// An explicit timestamp was not a positive number of milliseconds.
    InvalidTimestamp(i64),
    /// The record is larger than `message.max.bytes` allows (the size counts
    /// key, payload, headers and per-record framing, as librdkafka does).
    RecordTooLarge {
        /// The record's size on the wire, in bytes.
        size: usize,
        /// The configured `message.max.bytes`.
        max: usize,
    },
    /// The record, even in a batch of its own, is larger than its topic's
    /// `max.message.bytes`: the broker would reject it, and with it every
    /// record librdkafka batched alongside. Refused alone instead.
    RecordTooLargeForTopic {
        /// The topic.
        topic: String,
        /// The size of a record batch holding just this record, in bytes.
        size: usize,
        /// The topic's `max.message.bytes`.
        max: usize,
    },
    /// The record's payload is larger than librdkafka's whole queue
    /// (`queue.buffering.max.kbytes`, which librdkafka counts in payload
    /// bytes), though within `message.max.bytes`: it could never enter the
    /// queue, so it is refused at the call.
    RecordTooLargeForQueue {
        /// The payload's size, in bytes.
        size: usize,
        /// `queue.buffering.max.kbytes`, in bytes.
        queue_max: usize,
        /// The configured `message.max.bytes`.
        message_max: usize,
    },
    /// No room right now (only from the non-waiting `try_*` calls).
    QueueFull,
    /// The producer is closed or closing.
    Closed,
    /// The record was removed by `purge()` (or by a drop that ran out of time)
    /// before it was delivered. It may still have reached the broker if it
    /// was in flight; see [`DeliveryError::possibly_persisted`](crate::DeliveryError::possibly_persisted).
    Purged,
    /// A transactional call failed.
    Transaction {
        /// librdkafka's error code.
        code: RDKafkaErrorCode,
        /// librdkafka's description.
        message: String,
        /// The call may be retried.
        retriable: bool,
        /// The transaction must be aborted before the producer can go on.
        requires_abort: bool,
        /// The producer can no longer be used.
        fatal: bool,
    },
    /// librdkafka raised a fatal error (an idempotent or transactional
    /// producer lost its guarantees, e.g. its producer id was refused or
    /// fenced, or a sequence gap was found with
    /// `enable.gapless.guarantee`): the producer can no longer produce.
    /// Every record it could not deliver fails with this error, and so does
    /// every later call; see [`AioProducer::fatal_error`](crate::AioProducer::fatal_error).
    /// Build a new producer to go on.
    Fatal {
        /// The underlying error code (not librdkafka's generic `Fatal`).
        code: RDKafkaErrorCode,
        /// librdkafka's description.
        reason: String,
    },
    /// librdkafka or the broker reported an error.
    Kafka {
        /// librdkafka's error code.
        code: RDKafkaErrorCode,
        /// Context, when librdkafka gave more than the code.
        detail: Option<String>,
    },
}

impl Error {
    /// Maps a failed thread start to [`Error::Thread`].
    pub(crate) fn thread(name: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |e| Error::Thread {
            name,
            reason: e.to_string(),
        }
    }

    /// A configuration error naming the property, its value and why.
    pub(crate) fn config(key: &str, value: String, reason: &str) -> Self {
        Error::Config {
            key: key.into(),
            value,
            reason: reason.into(),
        }
    }

    pub(crate) fn kafka(code: RDKafkaErrorCode) -> Self {
        match code {
            RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight => Error::Purged,
            code => Error::Kafka { code, detail: None },
        }
    }

    /// The librdkafka error code, for errors that came from librdkafka.
    pub fn kafka_code(&self) -> Option<RDKafkaErrorCode> {
        match self {
            Error::Kafka { code, .. }
            | Error::Transaction { code, .. }
            | Error::Fatal { code, .. } => Some(*code),
            Error::RecordTooLarge { .. }
            | Error::RecordTooLargeForTopic { .. }
            | Error::RecordTooLargeForQueue { .. } => Some(RDKafkaErrorCode::MessageSizeTooLarge),
            Error::QueueFull => Some(RDKafkaErrorCode::QueueFull),
            _ => None,
        }
    }

    /// Whether trying the same record again may succeed (a timeout, a leader
    /// change, a full queue), as opposed to a permanent rejection.
    pub fn is_retriable(&self) -> bool {
        use RDKafkaErrorCode as C;
        match self {
            Error::QueueFull => true,
            Error::Transaction { retriable, .. } => *retriable,
            Error::Kafka { code, .. } => matches!(
                code,
                C::MessageTimedOut
                    | C::OperationTimedOut
                    | C::RequestTimedOut
                    | C::BrokerTransportFailure
                    | C::AllBrokersDown
                    | C::QueueFull
                    | C::LeaderNotAvailable
                    | C::NotLeaderForPartition
                    | C::BrokerNotAvailable
                    | C::ReplicaNotAvailable
                    | C::NetworkException
                    | C::NotEnoughReplicas
                    | C::NotEnoughReplicasAfterAppend
                    | C::KafkaStorageError
                    | C::NotController
                    | C::CoordinatorLoadInProgress
                    | C::CoordinatorNotAvailable
                    | C::NotCoordinator
                    | C::UnknownTopicOrPartition
                    | C::FencedLeaderEpoch
                    | C::UnknownLeaderEpoch
                    | C::OffsetNotAvailable
                    | C::PreferredLeaderNotAvailable
                    | C::ThrottlingQuotaExceeded
                    | C::ConcurrentTransactions
                    | C::Retry
            ),
            _ => false,
        }
    }

    /// Whether a transactional call failed in a way that needs
    /// `abort_transaction` before the producer can go on.
    pub fn requires_abort(&self) -> bool {
        matches!(
            self,
            Error::Transaction {
                requires_abort: true,
                ..
            }
        )
    }

    /// Whether the producer instance can no longer produce (librdkafka raised
    /// a fatal error, e.g. the idempotent producer lost its sequence).
    pub fn is_fatal(&self) -> bool {
        match self {
            Error::Transaction { fatal, .. } => return *fatal,
            Error::Fatal { .. } => return true,
            _ => {}
        }
        matches!(
            self,
            Error::Kafka {
                code: RDKafkaErrorCode::Fatal
                    | RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::Fenced,
                ..
            }
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config { key, value, reason } => {
                write!(f, "invalid configuration {key}={value:?}: {reason}")
            }
            Error::Client(reason) => write!(f, "could not create the Kafka client: {reason}"),
            Error::Thread { name, reason } => {
                write!(f, "could not start a {name} thread: {reason}")
            }
            Error::TransactionalCallPanicked => f.write_str(
                "a transactional call panicked on its helper thread; abort the transaction",
            ),
            Error::EmbeddedCluster(reason) => write!(f, "embedded cluster: {reason}"),
            Error::InvalidTopic { topic, reason } => {
                write!(f, "invalid topic name {topic:?}: {reason}")
            }
            Error::InvalidPartition(p) => {
                write!(f, "invalid partition {p}: a partition is 0 or more")
            }
            Error::InvalidTimestamp(ts) => write!(
                f,
                "invalid timestamp {ts}: a timestamp is a positive number of milliseconds \
                 since the Unix epoch (librdkafka reads 0 as \"now\")"
            ),
            Error::RecordTooLarge { size, max } => write!(
                f,
                "record of {size} bytes (key, payload, headers and framing) exceeds \
                 message.max.bytes={max}"
            ),
            Error::RecordTooLargeForTopic { topic, size, max } => write!(
                f,
                "record batch of {size} bytes (this record alone) exceeds topic {topic:?}'s \
                 max.message.bytes={max}"
            ),
            Error::RecordTooLargeForQueue {
                size,
                queue_max,
                message_max,
            } => write!(
                f,
                "record payload of {size} bytes exceeds librdkafka's whole queue, \
                 queue.buffering.max.kbytes={} ({queue_max} bytes), though within \
                 message.max.bytes={message_max}: raise queue.buffering.max.kbytes to at \
                 least message.max.bytes",
                queue_max / 1024
            ),
            Error::QueueFull => f.write_str("the producer's queue is full"),
            Error::Closed => f.write_str("the producer is closed"),
            Error::Purged => f.write_str("the record was purged before delivery"),
            Error::Transaction { code, message, .. } => {
                write!(f, "transaction error {code:?}: {message}")
            }
            Error::Fatal { code, reason } => write!(
                f,
                "fatal error, the producer can no longer produce: {code} ({reason})"
            ),
            Error::Kafka { code, detail } => {
                write!(f, "Kafka error: {code}")?;
                if let Some(detail) = detail {
                    write!(f, " ({detail})")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {}
