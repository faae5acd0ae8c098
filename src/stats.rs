//! A snapshot of a producer's counters ([`AioProducer::stats`](crate::AioProducer::stats)).

/// Counters of one producer, read without stopping it (so only roughly
/// consistent with each other while records flow).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Records accepted by `produce` and friends.
    pub produced: u64,
    /// Records delivered.
    pub delivered: u64,
    /// Records whose report was a failure.
    pub failed: u64,
    /// Records not yet reported (the same as [`len`](crate::AioProducer::len)).
    pub in_flight: u64,
    /// The bound on records in flight (`queue.buffering.max.messages`):
    /// `produce` waits, and `try_produce` refuses, while it is reached.
    pub max_in_flight: u64,
    /// The delivery-slot pool.
    pub pool: PoolStats,
    /// One entry per worker.
    pub workers: Vec<WorkerStats>,
    /// librdkafka's latest statistics JSON, when `statistics.interval.ms` is
    /// set.
    pub librdkafka: Option<String>,
    /// Enqueue-to-report latency of one record in 64 (from the call that
    /// queued it to the completion of its report, on librdkafka's thread).
    pub latency: LatencyStats,
    /// Events (errors, statistics, throttling) the hooks thread was too
    /// busy to take, and that were dropped rather than delay librdkafka's
    /// thread ([`AioProducerBuilder::on_error`](crate::AioProducerBuilder::on_error)).
    pub hook_events_dropped: u64,
    /// The fatal error that ended the producer, if one was raised
    /// ([`AioProducer::fatal_error`](crate::AioProducer::fatal_error)).
    pub fatal_error: Option<crate::Error>,
}

/// The delivery-slot pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Slots created so far (each allocated once, then reused): the most
    /// held at once.
    pub created: usize,
    /// Slots out of the pool now: records in flight plus reports not yet
    /// taken by their future (a future holds its slot until it has read
    /// the report or is dropped).
    pub in_use: usize,
    /// Acquisitions served by an existing slot.
    pub reused: u64,
}

/// One worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Tickets in its ring now.
    pub ring_depth: usize,
    /// Its ring's capacity.
    pub ring_capacity: usize,
    /// Records it handed to librdkafka.
    pub records: u64,
    /// librdkafka calls it made to hand them over (a batch call or a
    /// single-record call each).
    pub batches: u64,
    /// Of `records`, those that producers handed over on its behalf while
    /// it slept (no thread hop; see the crate docs).
    pub handed_over_by_producers: u64,
    /// Of `records`, those whose partition it chose itself: with no key
    /// and no partition, sticky, among the partitions the topic's metadata
    /// shows with a leader (as librdkafka's sticky partitioner does); with
    /// a key, by the configured `partitioner`'s hash of it (where
    /// librdkafka puts it). Either way librdkafka is spared its
    /// per-record partitioner. The others went to librdkafka's partitioner
    /// (their topic's partitions not known yet) or to their explicit
    /// partition.
    pub partitioned: u64,
    /// Topic handles it holds (those of topics in use: idle ones are
    /// evicted once there are many).
    pub topics: usize,
}

impl WorkerStats {
    /// Mean records per librdkafka call.
    pub fn mean_batch_size(&self) -> f64 {
        if self.batches == 0 {
            0.0
        } else {
            self.records as f64 / self.batches as f64
        }
    }
}

/// Percentiles of the enqueue-to-report latency of the records sampled so
/// far (one in 64; each percentile at most 25% above the true value).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LatencyStats {
    /// Records timed.
    pub samples: u64,
    /// The median.
    pub p50: std::time::Duration,
    /// The 99th percentile.
    pub p99: std::time::Duration,
    /// The 99.9th percentile.
    pub p999: std::time::Duration,
    /// The longest, exactly.
    pub max: std::time::Duration,
}
