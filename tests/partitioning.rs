//! Embedded cluster: the worker chooses the partition of records with no key
//! and no partition itself (sticky, among the partitions the topic's
//! metadata shows with a leader), as librdkafka's sticky partitioner would;
//! keyed records and explicit partitions are left as they are.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use aioproducer::{AioProducer, Record, Stats, Topic};
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
fn keyed_records_and_explicit_partitions_are_not_partitioned_by_the_worker() {
    let topic = Topic::new("keyed");
    let cluster = cluster(&topic, 6);
    let producer = builder(&cluster).build().unwrap();
    deliver_first(&producer, &topic);
    std::thread::sleep(Duration::from_millis(500));
    let before = partitioned(&producer.stats());
    run(Duration::from_secs(60), async {
        for i in 0..500 {
            let keyed = Record::new(topic.clone()).with_key(format!("k{}", i % 7));
            let explicit = Record::new(topic.clone()).with_partition(i % 6);
            let keyed = producer.produce(keyed).await.unwrap().await.unwrap();
            let explicit = producer.produce(explicit).await.unwrap().await.unwrap();
            assert_eq!(explicit.partition, i % 6);
            assert!((0..6).contains(&keyed.partition));
        }
    });
    assert_eq!(partitioned(&producer.stats()), before);
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
