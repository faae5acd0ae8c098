//! What the producer tells the application's hooks: client-wide errors,
//! statistics and throttling ([`AioProducerBuilder::on_error`],
//! [`on_statistics`](AioProducerBuilder::on_statistics),
//! [`on_throttle`](AioProducerBuilder::on_throttle)). The hooks run on a
//! thread of the producer's own (`aioproducer-hooks`), in the order the
//! events came, never on librdkafka's threads.
//!
//! [`AioProducerBuilder::on_error`]: crate::AioProducerBuilder::on_error

use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::stats::Stats;

/// A client-wide error: not one record's (those go to the record's
/// future), but the client's (a broker down, every broker down, a refused
/// login, a fatal idempotence error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    /// What went wrong: [`Error::Kafka`] with librdkafka's code and text,
    /// or [`Error::Fatal`] for a fatal error.
    pub error: Error,
    fatal: bool,
}

impl ClientError {
    pub(crate) fn new(error: Error, fatal: bool) -> Self {
        Self { error, fatal }
    }

    /// Whether the error is fatal: the producer can no longer produce
    /// (every later call fails with it; build a new producer).
    pub fn is_fatal(&self) -> bool {
        self.fatal
    }

    /// Whether the producer goes on by itself (librdkafka reconnects and
    /// retries): every error but a fatal one.
    pub fn producer_goes_on(&self) -> bool {
        !self.fatal
    }
}

/// A broker told the producer to slow down (a quota).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    /// The broker's id.
    pub broker_id: i32,
    /// The broker's name, as librdkafka calls it (`host:port/id`).
    pub broker_name: String,
    /// How long the broker holds the producer's requests back.
    pub time: Duration,
}

/// One round of statistics, every `statistics.interval.ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statistics {
    /// librdkafka's statistics, whole, as it wrote them (its
    /// `STATISTICS.md` describes every field).
    pub json: String,
    /// Messages in librdkafka's queues, not yet delivered.
    pub librdkafka_queued_messages: u64,
    /// Their payload bytes.
    pub librdkafka_queued_bytes: u64,
    /// Each broker's round trip and throttling.
    pub brokers: Vec<BrokerStatistics>,
    /// The producer's own counters at the same moment.
    pub producer: Stats,
}

/// A broker's part of [`Statistics`] (times over librdkafka's last window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerStatistics {
    /// The broker's name, as librdkafka calls it (`host:port/id`).
    pub name: String,
    /// Its id (-1 for a bootstrap connection not yet identified).
    pub id: i32,
    /// Its connection state (`UP`, `DOWN`, ...).
    pub state: String,
    /// The average round-trip time of its requests.
    pub rtt_avg: Duration,
    /// Their 99th percentile.
    pub rtt_p99: Duration,
    /// The average time it throttled the producer.
    pub throttle_avg: Duration,
    /// Messages waiting to be sent to it.
    pub waiting_to_send: i64,
    /// Messages sent to it, awaiting its response.
    pub awaiting_response: i64,
}

type Hook<T> = Arc<dyn Fn(&T) + Send + Sync>;

/// The application's hooks, as the builder holds them.
#[derive(Clone, Default)]
pub(crate) struct HookSet {
    pub(crate) error: Option<Hook<ClientError>>,
    pub(crate) statistics: Option<Hook<Statistics>>,
    pub(crate) throttle: Option<Hook<Throttle>>,
}

impl HookSet {
    /// Whether any hook is set.
    pub(crate) fn any(&self) -> bool {
        self.error.is_some() || self.statistics.is_some() || self.throttle.is_some()
    }
}

impl std::fmt::Debug for HookSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookSet")
            .field("error", &self.error.is_some())
            .field("statistics", &self.statistics.is_some())
            .field("throttle", &self.throttle.is_some())
            .finish()
    }
}
