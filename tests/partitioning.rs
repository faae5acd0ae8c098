//! Embedded cluster: the worker chooses the partition of records with no key
//! and no partition itself (sticky, among the partitions the topic's
//! metadata shows with a leader), as librdkafka's sticky partitioner would,
//! and computes keyed records' partitions with the configured
//! `partitioner`'s hash, landing each key where librdkafka puts it;
//! explicit partitions are left as they are.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use aioproducer::rdkafka::producer::{FutureProducer, FutureRecord};
use aioproducer::rdkafka::ClientConfig;
use aioproducer::{AioProducer, EmbeddedCluster, Record, Stats, Topic};
use common::{builder, cluster, consume_all, deliver_first, run};

fn partitioned(stats: &Stats) -> u64 {
    stats.workers.iter().map(|w| w.partitioned).sum()
}

/// Produces `bursts` bursts of `per_burst` unkeyed records, `gap` apart,
/// and returns the partitions each burst's records were delivered to.
fn bursts(
    producer: &AioProducer,
    topic: &Topic,
    bursts: usize,
    per_burst: usize,
    gap: Duration,
) -> Vec<HashSet<i32>> {
    run(Duration::from_secs(60), async {
        let mut seen = Vec::new();
        for b in 0..bursts {
            let mut futures = Vec::new();
            for i in 0..per_burst {
                let record = Record::new(topic.clone()).with_payload(format!("{b}-{i}"));
                futures.push(producer.produce(record).await.expect("queued"));
            }
            let mut partitions = HashSet::new();
            for f in futures {
                partitions.insert(f.await.expect("delivered").partition);
            }
            seen.push(partitions);
            std::thread::sleep(gap);
        }
        seen
    })
}

#[test]
fn unkeyed_records_are_partitioned_by_the_worker_and_spread_over_every_partition() {
    let topic = Topic::new("sticky");
    let cluster = cluster(&topic, 6);
    let producer = builder(&cluster).workers(1).build().unwrap();
    deliver_first(&producer, &topic);
    // The metadata thread reads the partitions once the worker holds the
    // topic; records before that go to librdkafka's partitioner.
    std::thread::sleep(Duration::from_millis(500));
    let before = partitioned(&producer.stats());
    // Bursts further apart than the sticky interval (10 ms by default).
    let seen = bursts(&producer, &topic, 60, 200, Duration::from_millis(25));
    let stats = producer.stats();
    assert_eq!(
        partitioned(&stats) - before,
        60 * 200,
        "every unkeyed record partitioned by the worker: {stats:?}"
    );
    let used: HashSet<i32> = seen.iter().flatten().copied().collect();
    assert_eq!(used, (0..6).collect(), "60 bursts reach all 6 partitions");
    let sticky = seen.iter().filter(|p| p.len() == 1).count();
    assert!(sticky >= 50, "most bursts stick to one partition: {seen:?}");
    drop(producer);
    assert_eq!(
        consume_all(&cluster.bootstrap_servers(), &topic, 6, 1 + 60 * 200).len(),
        1 + 60 * 200
    );
}

#[test]
fn explicit_partitions_are_not_partitioned_by_the_worker() {
    let topic = Topic::new("explicit");
    let cluster = cluster(&topic, 6);
    let producer = builder(&cluster).build().unwrap();
    deliver_first(&producer, &topic);
    std::thread::sleep(Duration::from_millis(500));
    let before = partitioned(&producer.stats());
    run(Duration::from_secs(60), async {
        for i in 0..500 {
            let explicit = Record::new(topic.clone()).with_partition(i % 6);
            let explicit = producer.produce(explicit).await.unwrap().await.unwrap();
            assert_eq!(explicit.partition, i % 6);
        }
    });
    assert_eq!(partitioned(&producer.stats()), before);
}

/// The partition librdkafka's own partitioner gives each of `keys` (a
/// rust-rdkafka `FutureProducer` with the same `partitioner`).
fn librdkafkas_choice(
    cluster: &EmbeddedCluster,
    topic: &str,
    partitioner: &str,
    keys: &[String],
) -> Vec<i32> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("partitioner", partitioner)
        .create()
        .unwrap();
    keys.iter()
        .map(|key| {
            let record = FutureRecord::<String, str>::to(topic)
                .key(key)
                .payload("librdkafka");
            let delivered =
                futures::executor::block_on(producer.send(record, Duration::from_secs(30)));
            delivered.expect("delivered").partition
        })
        .collect()
}

#[test]
fn keyed_records_land_where_librdkafkas_partitioner_puts_them_for_every_partitioner() {
    // 7 partitions: a count that is not a power of two shows a wrong modulo.
    let topic = Topic::new("keyed");
    let cluster = cluster(&topic, 7);
    let mut keys: Vec<String> = (0..300).map(|i| format!("key-{i}")).collect();
    keys.push(String::new()); // an empty key: sticky under consistent_random
    keys.push("PreAmbleWillBeRemoved,ThePrePartThatIs".into());
    for partitioner in [
        "consistent_random",
        "consistent",
        "murmur2",
        "murmur2_random",
        "fnv1a",
        "fnv1a_random",
    ] {
        let expected = librdkafkas_choice(&cluster, &topic, partitioner, &keys);
        let producer = builder(&cluster)
            .set("partitioner", partitioner)
            .build()
            .unwrap();
        deliver_first(&producer, &topic);
        std::thread::sleep(Duration::from_millis(500));
        let before = partitioned(&producer.stats());
        let ours: Vec<i32> = run(Duration::from_secs(60), async {
            let mut ours = Vec::new();
            for key in &keys {
                let record = Record::new(topic.clone()).with_key(key.clone());
                ours.push(
                    producer
                        .produce(record)
                        .await
                        .unwrap()
                        .await
                        .unwrap()
                        .partition,
                );
            }
            ours
        });
        let hashed = partitioned(&producer.stats()) - before;
        let empty_is_sticky = partitioner == "consistent_random";
        for ((key, ours), theirs) in keys.iter().zip(&ours).zip(&expected) {
            if key.is_empty() && empty_is_sticky {
                continue; // librdkafka's sticky choice: any partition
            }
            assert_eq!(ours, theirs, "{partitioner}: key {key:?}");
        }
        let expected_hashed = keys.len() as u64 - u64::from(empty_is_sticky);
        assert_eq!(
            hashed, expected_hashed,
            "{partitioner}: keys hashed by the worker"
        );
    }
}

#[test]
fn partitions_without_a_leader_are_never_chosen() {
    let topic = Topic::new("leaderless");
    let cluster = cluster(&topic, 6);
    for partition in [0, 1, 2, 4, 5] {
        cluster
            .mock()
            .partition_leader(&topic, partition, None)
            .unwrap();
    }
    let producer = builder(&cluster)
        .set("message.timeout.ms", "5000")
        .build()
        .unwrap();
    // The first record's partition is librdkafka's choice: explicit here.
    producer
        .try_produce(Record::new(topic.clone()).with_partition(3))
        .unwrap()
        .wait()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let seen = bursts(&producer, &topic, 20, 100, Duration::from_millis(25));
    assert!(partitioned(&producer.stats()) > 0);
    assert!(seen.iter().all(|p| p == &HashSet::from([3])), "{seen:?}");
}
