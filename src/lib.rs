//! A lock-free, allocation-free asynchronous Kafka producer over librdkafka.
//!
//! `aioproducer` is the Rust counterpart of Python's
//! `confluent_kafka.aio.AIOProducer`: callers on any thread or async runtime
//! hand records over and get a future per record that resolves to its
//! delivery report ([`Delivery`]: partition, offset, timestamp) or to a
//! [`DeliveryError`] that hands the record back. The same parts as the
//! original (a buffer, batching workers, a pool of delivery contexts, a
//! buffer-timeout timer) are here made lock-free and native.
//!
//! # Example
//!
//! ```
//! use aioproducer::{AioProducer, EmbeddedCluster, Record};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // An in-process Kafka cluster; point `bootstrap_servers` at a real one instead.
//! let cluster = EmbeddedCluster::new(1)?;
//! cluster.create_topic("orders", 6)?;
//!
//! let producer = AioProducer::builder()
//!     .bootstrap_servers(cluster.bootstrap_servers())
//!     .set("acks", "all")
//!     .build()?;
//!
//! futures::executor::block_on(async {
//!     // `produce` queues the record; the future resolves with its report.
//!     let delivery = producer
//!         .produce(Record::new("orders").with_key("customer-7").with_payload("12.50"))
//!         .await?;
//!     let report = delivery.await?;
//!     println!("stored at partition {} offset {}", report.partition, report.offset);
//!
//!     producer.flush().await;
//!     producer.close().await;
//!     Ok(())
//! })
//! # }
//! ```
//!
//! # Threads and queues
//!
//! ```text
//!  callers (any thread/runtime)
//!    │ produce(record): validate → Ledger.admit → slot from Pool → push ticket
//!    ▼
//!  Ring 0 … Ring N-1          one bounded lock-free ArrayQueue per worker;
//!    │                        a key (or explicit partition) always maps to one ring
//!    ▼
//!  aioproducer-worker-K       drains its ring into per-(topic, partition) Batches,
//!    │                        hands them over: rd_kafka_produce_batch / produceva
//!    ▼                        (aioproducer-timer forces hand-over at buffer_timeout)
//!  librdkafka                 broker threads send; the delivery report goes to the
//!    │                        main queue, forwarded to the background queue
//!    ▼
//!  rdk:bg (librdkafka)        delivery-report event: Slot.claim ×n → room freed →
//!    │                        Slot.publish ×n → Ledger.complete once → wake ×n
//!    ▼
//!  DeliveryFuture             takes the outcome, returns the slot to the Pool
//! ```
//!
//! No thread of ours polls: the delivery report completes the future on
//! librdkafka's background thread. Idle workers and the timer park; busy
//! ones never sleep. A producer that finds its worker asleep hands its
//! record to librdkafka itself (it takes the worker's baton, and never
//! waits), so at low load there is no wake-up and no thread hop. In steady
//! state nothing is allocated per record: slots are reused, rings and
//! batches are preallocated, and payloads are handed to librdkafka without
//! copying. `docs/ARCHITECTURE.md` has the long form.
//!
//! # Safety and correctness
//!
//! Each lock-free protocol is written up above its code, with the reason
//! for every memory ordering:
//!
//! - the delivery slot's state machine and generation guard (`delivery/slot.rs`);
//! - the slot pool (`delivery/pool.rs`);
//! - the ledger behind `flush`, `close` and `len` (`delivery/ledger.rs`);
//! - the wait lists for backpressure and flush (`sync/wait_list.rs`);
//! - parking and waking workers and the timer (`sync/park.rs`,
//!   `worker/timer.rs`);
//! - producers handing over for a sleeping worker (`sync/baton.rs`,
//!   `worker/remote.rs`, `worker/mod.rs`).
//!
//! All of them take their atomics, cells and threads from one shim
//! (`sync/mod.rs`), so building with `--cfg aioproducer_loom` runs the same code
//! under the [loom] model checker (crossbeam's `ArrayQueue` is replaced by a
//! loom-visible bounded queue there). Every `unsafe` block states its
//! invariant in a `SAFETY` comment; every `extern "C"` callback catches
//! panics. The integration tests consume delivered records back from the
//! cluster and compare them byte for byte.
//!
//! # Layout
//!
//! One folder per side of a record's life, each importing only what lies
//! below it (checked by `tests/layers.rs`): `producer/` (the handle,
//! intake, transactions, the state its threads share), `config.rs` (the
//! builder), `worker/` (the thread loop, its remote, the timer, rings,
//! batches, routing), `native/` (everything that touches a librdkafka
//! pointer), `delivery/` (the future, the slot pool, the ledger, tickets),
//! the plain types (`record.rs`, `report.rs`, `error.rs`, `stats.rs`), and
//! `sync/` (the loom shim and the primitives built on it).
//!
//! [loom]: https://docs.rs/loom

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, missing_debug_implementations)]
// Items the loom models reach are `pub` for `__internals`, which exposes them
// only under the loom cfg: that build is where a stray `pub` shows.
#![cfg_attr(aioproducer_loom, warn(unreachable_pub))]

// Layers, each importing only those below it (`docs/ARCHITECTURE.md`,
// checked by `tests/layers.rs`).
mod cluster;
mod config;
mod delivery;
mod embedded;
mod error;
mod events;
mod native;
mod oauth;
mod producer;
mod record;
mod report;
mod stats;
mod sync;
mod worker;

pub use cluster::{BrokerInfo, ClusterMetadata, PartitionInfo, TopicInfo};
pub use config::AioProducerBuilder;
pub use delivery::DeliveryFuture;
pub use embedded::EmbeddedCluster;
pub use error::Error;
pub use events::{BrokerStatistics, ClientError, Statistics, Throttle};
pub use oauth::{OAuthToken, OAuthTokenProvider, TokenResult};
pub use producer::transaction::GroupMetadata;
pub use producer::AioProducer;
pub use record::{Header, Record, Topic};
pub use report::{Delivery, DeliveryError, Persistence, Timestamp};
pub use stats::{LatencyStats, PoolStats, Stats, WorkerStats};

/// The crate's internals, opened to the micro-benchmarks in `benches/` and
/// (under `--cfg aioproducer_loom`, with more items) to the loom models in
/// `loom-tests/`, so that both exercise the real code, not a copy. Not an
/// API: no stability promise, hidden from the docs.
#[doc(hidden)]
pub mod __internals {
    pub use crate::delivery::ledger::Parity;
    pub use crate::delivery::pool::Pool;
    pub use crate::delivery::ticket::Ticket;
    pub use crate::worker::batch::{BatchKey, Batches};
    /// A worker's remote, as the producer uses it.
    pub type Remote = crate::worker::remote::Remote<crate::worker::Core>;

    /// The future of the record in slot `index` of `pool`.
    ///
    /// # Safety
    /// At most one future per published ticket: two futures of one slot
    /// would both take its outcome and release it.
    ///
    /// ```compile_fail
    /// # // Unsafe: calling it without `unsafe` does not compile.
    /// let pool = std::sync::Arc::new(aioproducer::__internals::Pool::new());
    /// let index = pool.acquire();
    /// drop(aioproducer::__internals::delivery_future(pool, index));
    /// ```
    ///
    /// ```
    /// let pool = std::sync::Arc::new(aioproducer::__internals::Pool::new());
    /// let index = pool.acquire();
    /// // SAFETY: the only future of this slot.
    /// drop(unsafe { aioproducer::__internals::delivery_future(pool, index) });
    /// ```
    pub unsafe fn delivery_future(
        pool: crate::sync::Arc<Pool>,
        index: u32,
    ) -> crate::DeliveryFuture {
        crate::DeliveryFuture::new(pool, index)
    }

    #[cfg(aioproducer_loom)]
    pub use loom_only::*;

    /// What only the loom models reach.
    #[cfg(aioproducer_loom)]
    mod loom_only {
        pub use crate::delivery::ledger::{Ledger, Refusal, Reported};
        pub use crate::delivery::slot::{Claim, Next, Outcome, Slot};
        use crate::delivery::ticket::Ticket;
        pub use crate::producer::shared::{Shared, SharedConfig};
        pub use crate::record::SizeLimits;
        pub use crate::sync::baton::{Baton, BatonGuard};
        pub use crate::sync::block_on::block_on;
        pub use crate::sync::bugs::{activate, Bug};
        pub use crate::sync::park::Parker;
        pub use crate::sync::wait_list::WaitList;
        pub use crate::worker::timer::{Deadline, Timer, NO_DEADLINE};

        /// `produce`'s intake of `record` into `shared`: resolves to its ticket
        /// once admitted and queued, waiting for room as `produce` does.
        pub fn intake(
            shared: &Shared,
            record: crate::Record,
        ) -> impl std::future::Future<Output = Result<Ticket, crate::DeliveryError>> + '_ {
            crate::producer::intake::Intake::new(
                shared,
                record,
                None,
                crate::producer::intake::WhenFull::Wait,
            )
        }
    }
}

// The README's examples compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The rust-rdkafka crate this producer is built on, for its types (error
/// codes, the mock cluster, consumers).
pub use rdkafka;
