//! Bad input gets a typed error naming what was wrong, hands the record
//! back, and costs the records around it nothing.

mod common;

use std::time::Duration;

use aioproducer::rdkafka::types::RDKafkaErrorCode;
use aioproducer::{AioProducer, Error, Record};
use common::{builder, by_payload, cluster, consume_all, run};

#[test]
fn unknown_or_invalid_configuration_is_named() {
    let err = AioProducer::builder()
        .set("no.such.property", "1")
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config { key, .. } if key == "no.such.property"),
        "{err:?}"
    );

    let err = AioProducer::builder()
        .set("acks", "banana")
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config { key, value, .. } if key == "acks" && value == "banana"),
        "{err:?}"
    );
    assert!(err.to_string().contains("acks"), "{err}");

    let err = AioProducer::builder()
        .set("sasl.password", "s3cret\0")
        .build()
        .unwrap_err();
    assert!(
        !format!("{err} {err:?}").contains("s3cret"),
        "secrets never shown: {err:?}"
    );
}

fn invalid_topics() -> Vec<(String, &'static str)> {
    vec![
        (String::new(), "empty"),
        ("nul\0byte".into(), "only ASCII"),
        ("x".repeat(250), "249"),
        ("spaces are bad".into(), "only ASCII"),
        ("slash/bad".into(), "only ASCII"),
        ("..".into(), "\"..\""),
    ]
}

#[test]
fn invalid_records_are_refused_at_the_call_and_their_neighbours_delivered() {
    let cluster = cluster("neighbours", 3);
    let producer = builder(&cluster)
        .set("message.max.bytes", "10000")
        .batch_size(100) // hold the good ones together in one batch
        .buffer_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let mut good = Vec::new();
    run(Duration::from_secs(60), async {
        let mut i = 0;
        let mut next_good = |good: &mut Vec<_>| {
            i += 1;
            let payload = format!("good-{i}");
            good.push(payload.clone());
            Record::new("neighbours").with_payload(payload)
        };
        let mut futures = Vec::new();
        let mut bad = invalid_topics()
            .into_iter()
            .map(|(topic, rule)| (Record::new(topic).with_payload("bad"), rule))
            .collect::<Vec<_>>();
        bad.push((
            Record::new("neighbours").with_payload(vec![0u8; 20_000]),
            "message.max.bytes",
        ));
        bad.push((Record::new("neighbours").with_partition(-3), "partition"));
        bad.push((Record::new("neighbours").with_timestamp(0), "timestamp"));
        for (record, rule) in bad {
            futures.push(producer.produce(next_good(&mut good)).await.unwrap());
            let refused = producer.produce(record.clone()).await.unwrap_err();
            assert!(
                refused.to_string().contains(rule),
                "{refused} should mention {rule}"
            );
            assert!(!refused.error().is_retriable());
            assert_eq!(refused.into_record(), record, "the record comes back");
            futures.push(producer.produce(next_good(&mut good)).await.unwrap());
        }
        for f in futures {
            f.await.expect("neighbours are delivered");
        }
    });
    let stored = consume_all(&cluster.bootstrap_servers(), "neighbours", 3, good.len());
    let stored = by_payload(&stored);
    assert!(good.iter().all(|g| stored.get(g.as_bytes()) == Some(&1)));
}

#[test]
fn oversized_record_error_names_sizes() {
    let cluster = cluster("big", 1);
    let producer = builder(&cluster)
        .set("message.max.bytes", "10000")
        .build()
        .unwrap();
    let record = Record::new("big")
        .with_key("k")
        .with_payload(vec![7u8; 10_000]);
    let refused = producer.try_produce(record).unwrap_err();
    assert_eq!(
        *refused.error(),
        Error::RecordTooLarge {
            size: 36 + 1 + 10_000,
            max: 10_000
        }
    );
    assert_eq!(
        refused.error().kafka_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge)
    );
    // The largest record that fits is accepted and delivered.
    let fits = Record::new("big").with_payload(vec![7u8; 10_000 - 36]);
    producer
        .try_produce(fits)
        .unwrap()
        .wait()
        .expect("delivered");
}

#[test]
fn a_record_librdkafka_refuses_at_hand_over_fails_alone() {
    let cluster = cluster("handover", 3);
    let producer = builder(&cluster)
        .batch_size(3)
        .buffer_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    // Learn the topic's partitions first, so librdkafka can tell 99 is unknown.
    futures::executor::block_on(producer.send(Record::new("handover").with_payload("warm-up")))
        .unwrap();
    let results = run(Duration::from_secs(60), async {
        let a = producer
            .produce(Record::new("handover").with_payload("a"))
            .await
            .unwrap();
        let bad = producer
            .produce(
                Record::new("handover")
                    .with_partition(99)
                    .with_payload("bad"),
            )
            .await
            .unwrap();
        let b = producer
            .produce(Record::new("handover").with_payload("b"))
            .await
            .unwrap();
        (a.await, bad.await, b.await)
    });
    assert!(results.0.is_ok() && results.2.is_ok(), "{results:?}");
    let failure = results.1.unwrap_err();
    assert_eq!(
        failure.error().kafka_code(),
        Some(RDKafkaErrorCode::UnknownPartition),
        "{failure}"
    );
    assert!(!failure.possibly_persisted());
    assert_eq!(
        failure.record().partition(),
        Some(99),
        "the record comes back"
    );
    let stored = consume_all(&cluster.bootstrap_servers(), "handover", 3, 3);
    assert!(!by_payload(&stored).contains_key(b"bad".as_slice()));
}
