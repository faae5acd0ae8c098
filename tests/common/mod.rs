//! Helpers shared by the integration tests: a cluster with a topic, and a
//! consumer that reads everything back for comparison.
#![allow(dead_code)] // each test binary uses a different subset

pub mod cluster;
pub mod kafka;
pub mod records;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aioproducer::rdkafka::consumer::{BaseConsumer, Consumer};
use aioproducer::rdkafka::error::KafkaError;
use aioproducer::rdkafka::message::{Headers, Message};
use aioproducer::rdkafka::types::RDKafkaErrorCode;
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
        let message = match message {
            Ok(message) => message,
            // A node of a cluster is down (the failover tests): the consumer
            // reads from the others and says so; nothing is lost by that.
            Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown,
            )) => continue,
            Err(e) => panic!("consume: {e}"),
        };
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

/// Runs `f` on a thread of its own and returns its result, failing the test
/// if it has not returned after `limit` (a hang, even in a blocking call
/// such as `Drop`, fails instead of blocking the suite; the stuck thread is
/// left behind and ends with the test process).
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("test-within".into())
        .spawn(move || {
            let _ = done.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
        })
        .expect("spawn");
    match result.recv_timeout(limit) {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{what} did not finish within {limit:?}: it hangs"),
    }
}

/// Runs the `#[ignore]`d test `name` of this test binary in a child process
/// (a scenario that could abort the process), killing it after `limit`.
/// Returns whether it exited successfully, and its output.
pub fn in_child(name: &str, limit: Duration) -> (bool, String) {
    use std::io::Read;
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = std::process::Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            name,
            "--nocapture",
            "--test-threads=1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the child");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("child status") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut text = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut text);
    let _ = child.stderr.take().unwrap().read_to_string(&mut text);
    assert!(
        text.contains("running 1 test"),
        "no test named {name} ran:\n{text}"
    );
    match status {
        None => (false, format!("killed after {limit:?} (it hangs)\n{text}")),
        Some(status) => (status.success(), format!("{status}\n{text}")),
    }
}

/// The names of this process's threads whose name starts with `prefix`.
pub fn threads_named(prefix: &str) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .filter(|name| name.starts_with(prefix))
        .collect()
}

/// Waits until no thread of the producer or of librdkafka is left (each
/// producer shut down and its handle destroyed), failing after `limit`.
pub fn await_no_client_threads(limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let left: Vec<String> = threads_named("aioproducer")
            .into_iter()
            .chain(threads_named("rdk:"))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "threads still running after {limit:?}: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// librdkafka's own count of messages in its queues (`msg_cnt` of its
/// statistics JSON; needs `statistics.interval.ms`), once a fresh
/// statistics line has arrived.
pub fn librdkafka_msg_cnt(producer: &AioProducer) -> Option<u64> {
    let json = producer.stats().librdkafka?;
    let start = json.find("\"msg_cnt\":")? + "\"msg_cnt\":".len();
    let digits: String = json[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}
