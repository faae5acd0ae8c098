//! Fault injection on the embedded cluster (librdkafka's mock brokers):
//! retriable and permanent Produce errors, a broker going down and up, slow
//! round trips. In every case: records reported delivered are in the log
//! exactly once, no record is in the log twice (idempotence is on), every
//! future resolves exactly once, and the pool drains to zero.

mod common;

use std::time::{Duration, Instant};

use aioproducer::rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use aioproducer::{AioProducer, Delivery, DeliveryError, EmbeddedCluster, Record};
use common::records::{check_outcomes, Tally, Twice};
use common::{builder, cluster, consume_at_least, run};

const RECORDS: usize = 20_000;

/// Produces `RECORDS` keyed records (payload = index) and awaits them all,
/// running `during` once the first quarter is delivered (so that the fault
/// lands mid-stream however fast the records are queued: a run where
/// every record was queued before librdkafka sent its first request once
/// put them all in the two requests an injected error fails).
fn stream(
    producer: &AioProducer,
    topic: &str,
    during: impl FnOnce(),
) -> Vec<Result<Delivery, DeliveryError>> {
    let mut during = Some(during);
    run(Duration::from_secs(180), async {
        let mut futures = Vec::with_capacity(RECORDS);
        for i in 0..RECORDS {
            if i == RECORDS / 4 {
                let quarter = Instant::now();
                while producer.stats().delivered < i as u64 {
                    assert!(
                        quarter.elapsed() < Duration::from_secs(60),
                        "the first quarter was not delivered"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
                (during.take().unwrap())();
            }
            let record = Record::new(topic.to_string())
                .with_key((i % 101).to_string())
                .with_payload(i.to_string());
            futures.push(producer.produce(record).await.expect("accepted"));
        }
        let mut outcomes = Vec::with_capacity(RECORDS);
        for f in futures {
            outcomes.push(f.await);
        }
        outcomes
    })
}

/// Checks the invariants of the module docs; returns what happened.
fn settle(
    cluster: &EmbeddedCluster,
    producer: &AioProducer,
    topic: &str,
    outcomes: &[Result<Delivery, DeliveryError>],
) -> Tally {
    let stats = producer.stats();
    assert_eq!(stats.produced, RECORDS as u64);
    assert_eq!(
        stats.delivered + stats.failed,
        RECORDS as u64,
        "each record reported once"
    );
    assert_eq!((stats.in_flight, stats.pool.in_use), (0, 0));
    let delivered = outcomes.iter().filter(|o| o.is_ok()).count();
    let stored = consume_at_least(&cluster.bootstrap_servers(), topic, 4, delivered);
    let tally = check_outcomes(outcomes, &stored, Twice::Never);
    eprintln!("{topic}: {tally:?}");
    tally
}

fn idempotent(cluster: &EmbeddedCluster) -> AioProducer {
    builder(cluster)
        .set("enable.idempotence", "true")
        .set("retry.backoff.ms", "10")
        .build()
        .unwrap()
}

#[test]
fn retriable_produce_errors_are_retried_without_loss_or_duplicates() {
    use RDKafkaRespErr::*;
    let cluster = cluster("retriable", 4);
    let producer = idempotent(&cluster);
    let outcomes = stream(&producer, "retriable", || {
        cluster.mock().request_errors(
            RDKafkaApiKey::Produce,
            &[
                RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            ],
        );
    });
    let tally = settle(&cluster, &producer, "retriable", &outcomes);
    assert_eq!(
        tally.delivered, RECORDS,
        "retriable errors lose nothing: {tally:?}"
    );
}

#[test]
fn permanent_produce_errors_fail_only_the_batches_they_hit() {
    use RDKafkaRespErr::*;
    let cluster = cluster("permanent", 4);
    let producer = idempotent(&cluster);
    let outcomes = stream(&producer, "permanent", || {
        cluster.mock().request_errors(
            RDKafkaApiKey::Produce,
            &[
                RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
                RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
            ],
        );
    });
    let tally = settle(&cluster, &producer, "permanent", &outcomes);
    assert!(tally.delivered > 0, "{tally:?}");
    assert!(
        tally.failed.contains_key("MessageSizeTooLarge")
            && tally.failed.contains_key("TopicAuthorizationFailed"),
        "each injected error failed the records of its batch: {tally:?}"
    );
    for failure in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert!(!failure.error().is_retriable(), "{failure}");
        assert!(
            failure.record().payload().is_some(),
            "the record comes back"
        );
    }
}

#[test]
fn a_broker_going_down_and_up_loses_nothing() {
    let cluster = cluster("down-up", 4);
    let producer = idempotent(&cluster);
    let outcomes = stream(&producer, "down-up", || {
        cluster.mock().broker_down(1).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        cluster.mock().broker_up(1).unwrap();
    });
    let tally = settle(&cluster, &producer, "down-up", &outcomes);
    assert_eq!(tally.delivered, RECORDS, "{tally:?}");
}

#[test]
fn slow_round_trips_delay_but_lose_nothing() {
    let cluster = cluster("slow", 4);
    let producer = idempotent(&cluster);
    let round_trip = Duration::from_millis(300);
    let started = Instant::now();
    let outcomes = stream(&producer, "slow", || {
        cluster
            .mock()
            .broker_round_trip_time(1, round_trip)
            .unwrap();
    });
    assert!(started.elapsed() >= round_trip);
    let tally = settle(&cluster, &producer, "slow", &outcomes);
    assert_eq!(tally.delivered, RECORDS, "{tally:?}");
}

#[test]
fn records_time_out_with_a_clear_error_when_the_broker_stays_down() {
    let cluster = cluster("gone", 4);
    let producer = builder(&cluster)
        .set("message.timeout.ms", "1500")
        .build()
        .unwrap();
    let outcomes = stream(&producer, "gone", || {
        cluster.mock().broker_down(1).unwrap();
    });
    cluster.mock().broker_up(1).unwrap();
    let tally = settle(&cluster, &producer, "gone", &outcomes);
    assert!(
        tally.failed.get("MessageTimedOut").copied().unwrap_or(0) > 0,
        "{tally:?}"
    );
}
