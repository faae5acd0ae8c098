//! Helpers shared by the integration tests: a cluster with a topic, and a
//! consumer that reads everything back for comparison.
#![allow(dead_code)] // each test binary uses a different subset

pub mod kafka;
pub mod records;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aioproducer::rdkafka::consumer::{BaseConsumer, Consumer};
use aioproducer::rdkafka::message::{Headers, Message};
use aioproducer::rdkafka::{ClientConfig, Offset, TopicPartitionList};
use aioproducer::{AioProducer, AioProducerBuilder, EmbeddedCluster, Record, Topic};

/// An embedded cluster with `topic` created with `partitions` partitions.
pub fn cluster(topic: &str, partitions: i32) -> EmbeddedCluster {
    let cluster = EmbeddedCluster::new(1).expect("embedded cluster");
    cluster
        .create_topic(topic, partitions)
        .expect("create topic");
    cluster
}

/// A builder pointed at `cluster`.
pub fn builder(cluster: &EmbeddedCluster) -> AioProducerBuilder {
    AioProducer::builder().bootstrap_servers(cluster.bootstrap_servers())
}

/// Delivers one record (payload `first`) to `topic` and waits for it:
/// afterwards the worker has the topic's handle and sleeps, and the
/// connections are up.
pub fn deliver_first(producer: &AioProducer, topic: &str) {
    producer
        .try_produce(Record::new(Topic::new(topic)).with_payload("first"))
        .expect("room")
        .wait()
        .expect("delivered");
}

/// A record as read back from the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
}

/// Reads `expected` records of `topic` (all `partitions`) from the start,
/// failing the test if they do not all arrive within a minute, or if more
/// arrive within a short grace period after.
pub fn consume_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
) -> Vec<Consumed> {
    let out = consume_at_least(bootstrap, topic, partitions, expected);
    assert_eq!(out.len(), expected, "records in {topic}");
    out
}

/// Reads every record of `topic` from the start: at least `expected`
/// (failing the test if they do not arrive within a minute), and whatever
/// else arrives within a short grace period after.
pub fn consume_at_least(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("verify-{topic}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let mut out = Vec::with_capacity(expected);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut grace_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        match grace_until {
            Some(until) if now >= until => break,
            None if out.len() >= expected => grace_until = Some(now + Duration::from_millis(500)),
            _ => {}
        }
        assert!(
            now < deadline,
            "consumed {} of at least {expected} records of {topic} in 60 s",
            out.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.expect("consume");
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        out.push(Consumed {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
            timestamp: message.timestamp().to_millis(),
        });
    }
    out
}

/// Groups consumed records by payload, for exact-once checks.
pub fn by_payload(records: &[Consumed]) -> HashMap<Vec<u8>, usize> {
    let mut seen = HashMap::new();
    for r in records {
        *seen
            .entry(r.payload.clone().unwrap_or_default())
            .or_insert(0) += 1;
    }
    seen
}

/// Runs `f` on a multi-threaded tokio runtime, failing after `limit`.
pub fn run<F: std::future::Future>(limit: Duration, f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("runtime")
        .block_on(async move {
            tokio::time::timeout(limit, f)
                .await
                .expect("the test did not finish in time: something hangs")
        })
}
