//! Per-key order holds with many workers and many producing tasks, and every
//! field of every record (key, payload, headers, timestamp) arrives intact.

mod common;

use std::time::Duration;

use aioproducer::{Record, Topic};
use common::records::{check_varied, produce_varied};
use common::{builder, cluster, consume_all, run};

const TASKS: usize = 8;
const PER_TASK: usize = 10_000;

#[test]
fn per_key_order_and_exact_content_hold_across_8_tasks_and_4_workers() {
    check_order_and_content(None);
}

/// Held batches of 500 put many records of one key in one hand-over, mixing
/// the batch call and single-record calls within it.
#[test]
fn per_key_order_and_exact_content_hold_with_held_batches() {
    check_order_and_content(Some(500));
}

fn check_order_and_content(batch_size: Option<usize>) {
    let name = format!("ordering-{}", batch_size.unwrap_or(0));
    let cluster = cluster(&name, 6);
    let mut builder = builder(&cluster).workers(4);
    if let Some(size) = batch_size {
        builder = builder
            .batch_size(size)
            .buffer_timeout(Duration::from_millis(20));
    }
    let producer = builder.build().unwrap();
    let topic = Topic::from(name.clone());
    run(
        Duration::from_secs(180),
        produce_varied(&producer, &topic, TASKS, PER_TASK),
    );

    let stored = consume_all(&cluster.bootstrap_servers(), &name, 6, TASKS * PER_TASK);
    check_varied(&stored, &topic, TASKS, PER_TASK);
}

/// Offsets in one partition follow produce order exactly, across batch calls
/// and the single-record calls that cut them.
#[test]
fn one_partition_stores_records_in_produce_order() {
    let cluster = cluster("ordering-one", 1);
    let producer = builder(&cluster)
        .workers(1)
        .batch_size(500)
        .buffer_timeout(Duration::from_millis(20))
        .build()
        .unwrap();
    let offsets = run(Duration::from_secs(60), async {
        let mut futures = Vec::new();
        for i in 0..5_000usize {
            let mut record = Record::new("ordering-one").with_payload(i.to_string());
            if i % 3 == 0 {
                record = record.with_header("h", "v");
            }
            futures.push(producer.produce(record).await.expect("accepted"));
        }
        let mut offsets = Vec::new();
        for f in futures {
            offsets.push(f.await.expect("delivered").offset);
        }
        offsets
    });
    let expected: Vec<i64> = (0..5_000).collect();
    assert_eq!(offsets, expected);
}
