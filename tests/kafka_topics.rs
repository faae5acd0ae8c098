//! Real broker, per-topic failures stay per record: an unknown topic (with
//! auto-creation off, as `scripts/kafka` runs the broker) fails its own
//! records with a typed error, and a record over its topic's
//! `max.message.bytes` fails alone while its neighbours are delivered; a
//! topic made again with fewer partitions than the worker last read loses
//! no unkeyed record.

mod common;

use std::time::Duration;

use aioproducer::rdkafka::types::RDKafkaErrorCode;
use aioproducer::{AioProducer, Record};
use common::kafka::{
    bootstrap, create_topic, only_the_oversized_record_fails, remake_topic, unique_topic,
};
use common::{by_payload, consume_all, run};

#[test]
fn records_for_an_unknown_topic_fail_alone_and_other_topics_are_unaffected() {
    let Some(bootstrap) = bootstrap() else { return };
    let known = unique_topic("known");
    let unknown = unique_topic("never-created");
    create_topic(&bootstrap, &known, 2, &[]);
    let producer = AioProducer::builder()
        .bootstrap_servers(&bootstrap)
        // How long librdkafka waits for a topic to appear before failing.
        .set("topic.metadata.propagation.max.ms", "2000")
        .build()
        .unwrap();
    run(Duration::from_secs(120), async {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for i in 0..50 {
            let r = Record::new(known.clone()).with_payload(format!("good-{i}"));
            good.push(producer.produce(r).await.unwrap());
            let r = Record::new(unknown.clone()).with_payload(format!("bad-{i}"));
            bad.push(producer.produce(r).await.unwrap());
        }
        for f in good {
            f.await.expect("the known topic is unaffected");
        }
        for f in bad {
            let failure = f.await.expect_err("no such topic");
            let code = failure.error().kafka_code();
            assert!(
                matches!(
                    code,
                    Some(
                        RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownTopicOrPartition
                    )
                ),
                "{failure}"
            );
            assert_eq!(failure.record().topic().as_str(), unknown);
        }
    });
    assert_eq!(consume_all(&bootstrap, &known, 2, 50).len(), 50);
}

#[test]
fn a_record_over_its_topics_limit_fails_alone_and_its_batch_neighbours_are_delivered() {
    let Some(bootstrap) = bootstrap() else { return };
    let topic = unique_topic("small-limit");
    create_topic(&bootstrap, &topic, 1, &[("max.message.bytes", "10000")]);
    let producer = AioProducer::builder()
        .bootstrap_servers(&bootstrap)
        // Hold five records so the big one is batched with its neighbours.
        .batch_size(5)
        .buffer_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    only_the_oversized_record_fails(&producer, &topic);
    let stored = consume_all(&bootstrap, &topic, 1, 4);
    assert_eq!(by_payload(&stored).len(), 4);
}

#[test]
fn unkeyed_records_for_a_topic_made_again_with_fewer_partitions_are_all_delivered() {
    let Some(bootstrap) = bootstrap() else { return };
    let topic = unique_topic("shrunk");
    create_topic(&bootstrap, &topic, 6, &[]);
    let producer = AioProducer::builder()
        .bootstrap_servers(&bootstrap)
        // librdkafka learns the new partition count within half a second;
        // the worker's own list is read again only after 10 s.
        .set("topic.metadata.refresh.interval.ms", "500")
        .build()
        .unwrap();
    let partitioned = || -> u64 { producer.stats().workers.iter().map(|w| w.partitioned).sum() };
    let send = |records: usize, label: &'static str| {
        run(Duration::from_secs(60), async {
            let mut partitions = Vec::new();
            for i in 0..records {
                let record = Record::new(topic.clone()).with_payload(format!("{label}-{i}"));
                let delivered = producer.produce(record).await.unwrap().await;
                partitions.push(delivered.expect("delivered").partition);
                // Further apart than the sticky interval: each record may
                // get a new partition.
                std::thread::sleep(Duration::from_millis(11));
            }
            partitions
        })
    };
    send(1, "warm-up");
    // The worker now holds the topic; its partitions are read at once.
    std::thread::sleep(Duration::from_secs(1));
    let before = send(60, "six");
    assert!(partitioned() > 0, "the worker chose partitions");
    assert!(before.iter().any(|&p| p > 0), "{before:?}");
    remake_topic(&bootstrap, &topic, 1);
    std::thread::sleep(Duration::from_secs(2));
    let after = send(100, "one");
    assert!(after.iter().all(|&p| p == 0), "{after:?}");
    drop(producer);
    let stored = consume_all(&bootstrap, &topic, 1, 100);
    assert_eq!(by_payload(&stored).len(), 100);
}
