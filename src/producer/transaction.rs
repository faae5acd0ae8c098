//! Transactions: the same calls as librdkafka's (and the Python
//! `AIOProducer`'s), as async methods that never block the caller's
//! executor. librdkafka's transactional calls wait on the transaction
//! coordinator, so each runs on a short-lived helper thread
//! (`aioproducer-txn`) while the caller's future waits.
//!
//! The calls are cancel-safe: dropping the future does not stop the call,
//! which goes on to its end on its thread. Each helper thread first joins
//! the one before it, so the next transactional call runs only after a
//! cancelled one has finished (librdkafka would refuse calls that overlap
//! with `_CONFLICT` or `_STATE`), and shutdown joins the last before it
//! destroys the handle the helpers use (`producer.rs`).
//!
//! Two things differ from calling librdkafka directly, both so that the
//! producer's own buffers cannot leak records across a transaction boundary:
//!
//! - `commit_transaction` first waits for every record produced before it to
//!   be handed over and reported (as the Python original flushes its buffer
//!   first), then commits;
//! - `abort_transaction` first fails every record still in the producer's
//!   rings and batches (and in librdkafka's queue) with
//!   [`Error::Purged`], so none of them can be handed over into the *next*
//!   transaction, then aborts.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::types::RDKafkaErrorCode;
use rdkafka::TopicPartitionList;

use crate::error::Error;
use crate::native::txn::NativeGroupMetadata;
use crate::producer::AioProducer;

/// A consumer group's identity, for
/// [`send_offsets_to_transaction`](AioProducer::send_offsets_to_transaction)
/// (librdkafka's `rd_kafka_consumer_group_metadata_t`).
///
/// ```
/// let group = aioproducer::GroupMetadata::new("billing")?;
/// let with_generation =
///     aioproducer::GroupMetadata::with_generation("billing", 7, "member-1", None)?;
/// # Ok::<(), aioproducer::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct GroupMetadata(Arc<NativeGroupMetadata>);

impl GroupMetadata {
    /// The group by id only (brokers before Kafka 2.5 fence zombies by
    /// transactional id alone).
    pub fn new(group_id: &str) -> Result<Self, Error> {
        Ok(Self(Arc::new(NativeGroupMetadata::new(group_id, None)?)))
    }

    /// The group with the consumer's generation and member id, which lets
    /// the broker fence zombie consumers (KIP-447).
    pub fn with_generation(
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<Self, Error> {
        let generation = Some((generation_id, member_id, group_instance_id));
        Ok(Self(Arc::new(NativeGroupMetadata::new(
            group_id, generation,
        )?)))
    }
}

/// Why a transaction that lost `lost` records before librdkafka saw them
/// must not commit (the Java producer moves to an abortable state here).
fn lost_records(lost: u64) -> Error {
    let records = if lost == 1 { "record" } else { "records" };
    Error::Transaction {
        code: RDKafkaErrorCode::State,
        message: format!(
            "{lost} {records} of this transaction failed before librdkafka saw them (each \
             with its own delivery error); committing would commit the transaction without \
             them: abort it"
        ),
        retriable: false,
        requires_abort: true,
        fatal: false,
    }
}

impl AioProducer {
    /// Initialises transactions (`transactional.id` must be set): fences
    /// older instances with the same id and recovers their transactions.
    /// Call once, before the first transaction.
    pub async fn init_transactions(&self, timeout: Duration) -> Result<(), Error> {
        self.transactional(move |native| native.init_transactions(timeout))
            .await
    }

    /// Starts a transaction; records produced until commit or abort belong
    /// to it.
    pub async fn begin_transaction(&self) -> Result<(), Error> {
        self.transactional(|native| native.begin_transaction())
            .await?;
        self.shared().forget_lost();
        Ok(())
    }

    /// Adds consumer offsets to the transaction, to be committed with it
    /// (consume-transform-produce).
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &TopicPartitionList,
        group: &GroupMetadata,
        timeout: Duration,
    ) -> Result<(), Error> {
        let (offsets, group) = (offsets.clone(), Arc::clone(&group.0));
        self.transactional(move |native| {
            native.send_offsets_to_transaction(&offsets, &group, timeout)
        })
        .await
    }

    /// Waits for every record produced so far to be reported, then commits
    /// the transaction. On an error with
    /// [`requires_abort`](Error::requires_abort), call
    /// [`abort_transaction`](Self::abort_transaction).
    pub async fn commit_transaction(&self, timeout: Duration) -> Result<(), Error> {
        self.flush().await;
        let lost = self.shared().lost_before_librdkafka();
        if lost > 0 {
            return Err(lost_records(lost));
        }
        self.transactional(move |native| native.commit_transaction(timeout))
            .await
    }

    /// Fails every record not yet handed to the broker with
    /// [`Error::Purged`], then aborts the transaction: nothing produced in
    /// it becomes visible to `read_committed` consumers. Records the broker
    /// already acknowledged keep their successful report but are aborted
    /// with the transaction.
    pub async fn abort_transaction(&self, timeout: Duration) -> Result<(), Error> {
        self.purge().await;
        self.transactional(move |native| native.abort_transaction(timeout))
            .await?;
        self.shared().forget_lost();
        Ok(())
    }
}
