//! Real broker: 200k records (keys, headers, timestamps) with acks=all and
//! idempotence arrive exactly once and intact, in per-key order, where the
//! delivery reports said.

mod common;

use std::time::Duration;

use aioproducer::{AioProducer, Topic};
use common::kafka::{bootstrap, create_topic, unique_topic};
use common::records::{check_reports_match_log, check_varied, produce_varied};
use common::{consume_all, run};

const TASKS: usize = 8;
const PER_TASK: usize = 25_000;

#[test]
fn two_hundred_thousand_records_round_trip_exactly_once_and_intact() {
    let Some(bootstrap) = bootstrap() else { return };
    let name = unique_topic("round-trip");
    create_topic(&bootstrap, &name, 6, &[]);
    let producer = AioProducer::builder()
        .bootstrap_servers(&bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .workers(2)
        .build()
        .unwrap();
    let topic = Topic::from(name.clone());
    let reports = run(
        Duration::from_secs(300),
        produce_varied(&producer, &topic, TASKS, PER_TASK),
    );
    futures::executor::block_on(producer.close());
    let stats = producer.stats();
    assert_eq!(
        (stats.delivered, stats.failed, stats.pool.in_use),
        ((TASKS * PER_TASK) as u64, 0, 0)
    );

    let stored = consume_all(&bootstrap, &name, 6, TASKS * PER_TASK);
    check_varied(&stored, &topic, TASKS, PER_TASK);
    check_reports_match_log(&reports, &stored);
}
