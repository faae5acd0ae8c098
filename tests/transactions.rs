//! Transactions on the embedded cluster: committed records become visible,
//! records aborted while still held are purged and never reach the log, and
//! commit flushes the producer's own held batches first.
//!
//! librdkafka's mock cluster does not hide aborted records from
//! read_committed consumers, so records aborted *after* the broker
//! acknowledged them are checked against a real broker
//! (`tests/kafka_transactions.rs`).

mod common;

use std::time::Duration;

use aioproducer::{AioProducer, DeliveryFuture, EmbeddedCluster, Error, GroupMetadata, Record};
use common::{builder, by_payload, cluster, consume_all, run};

const TIMEOUT: Duration = Duration::from_secs(30);

fn transactional(cluster: &EmbeddedCluster, id: &str) -> AioProducer {
    builder(cluster)
        .set("transactional.id", id)
        // Held batches: commit must hand them over itself.
        .batch_size(10_000)
        .buffer_timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn produce(producer: &AioProducer, topic: &str, tag: &str, n: usize) -> Vec<DeliveryFuture> {
    let mut futures = Vec::new();
    for i in 0..n {
        let record = Record::new(topic.to_string()).with_payload(format!("{tag}-{i}"));
        futures.push(producer.produce(record).await.expect("accepted"));
    }
    futures
}

#[test]
fn committed_records_are_visible_and_aborted_ones_never() {
    let cluster = cluster("txn", 3);
    let producer = transactional(&cluster, "txn-1");
    run(Duration::from_secs(120), async {
        producer.init_transactions(TIMEOUT).await.unwrap();

        producer.begin_transaction().await.unwrap();
        let committed = produce(&producer, "txn", "committed", 1000).await;
        producer.commit_transaction(TIMEOUT).await.unwrap();
        for f in committed {
            f.await.expect("delivered by the commit");
        }

        // Aborted while still held in the producer's batches: purged, so they
        // cannot leak into the next transaction.
        producer.begin_transaction().await.unwrap();
        let held = produce(&producer, "txn", "aborted-held", 500).await;
        producer.abort_transaction(TIMEOUT).await.unwrap();
        for f in held {
            assert_eq!(*f.await.unwrap_err().error(), Error::Purged);
        }

        producer.begin_transaction().await.unwrap();
        let last = produce(&producer, "txn", "last", 10).await;
        producer.commit_transaction(TIMEOUT).await.unwrap();
        for f in last {
            f.await.expect("delivered");
        }
        producer.close().await;
    });
    let stored = consume_all(&cluster.bootstrap_servers(), "txn", 3, 1010);
    // (Exactly 1010: the 500 aborted records never reached the log.)
    let payloads = by_payload(&stored);
    assert!(
        payloads.keys().all(|p| !p.starts_with(b"aborted")),
        "aborted records are invisible"
    );
    assert!(
        payloads.contains_key(b"committed-999".as_slice())
            && payloads.contains_key(b"last-9".as_slice())
    );
}

#[test]
fn producing_outside_a_transaction_fails_each_record_clearly() {
    let cluster = cluster("txn-state", 1);
    let producer = transactional(&cluster, "txn-2");
    run(Duration::from_secs(60), async {
        producer.init_transactions(TIMEOUT).await.unwrap();
        let f = producer
            .produce(Record::new("txn-state").with_payload("x"))
            .await
            .unwrap();
        producer.flush().await;
        let failure = f.await.unwrap_err();
        assert!(failure.to_string().contains("State"), "{failure}");
        assert_eq!(failure.record().payload().unwrap().as_ref(), b"x");
    });
}

#[test]
fn offsets_are_sent_with_a_transaction() {
    let cluster = cluster("txn-offsets", 1);
    cluster.create_topic("txn-input", 1).unwrap();
    let producer = transactional(&cluster, "txn-3");
    run(Duration::from_secs(60), async {
        producer.init_transactions(TIMEOUT).await.unwrap();
        producer.begin_transaction().await.unwrap();
        drop(produce(&producer, "txn-offsets", "out", 5).await);
        let mut offsets = aioproducer::rdkafka::TopicPartitionList::new();
        offsets
            .add_partition_offset("txn-input", 0, aioproducer::rdkafka::Offset::Offset(42))
            .unwrap();
        let group = GroupMetadata::new("txn-group").unwrap();
        producer
            .send_offsets_to_transaction(&offsets, &group, TIMEOUT)
            .await
            .unwrap();
        producer.commit_transaction(TIMEOUT).await.unwrap();
    });
    assert_eq!(
        consume_all(&cluster.bootstrap_servers(), "txn-offsets", 1, 5).len(),
        5
    );
}

#[test]
fn transactional_calls_without_a_transactional_id_fail_with_a_typed_error() {
    let cluster = cluster("txn-none", 1);
    let producer = builder(&cluster).build().unwrap();
    let err = futures::executor::block_on(producer.init_transactions(TIMEOUT)).unwrap_err();
    assert!(matches!(err, Error::Transaction { .. }), "{err:?}");
    assert!(!err.is_retriable());
}
