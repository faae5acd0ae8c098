//! Per-key order holds with many workers and many producing tasks, and every
//! field of every record (key, payload, headers, timestamp) arrives intact.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use aioproducer::{Record, Topic};
use common::{builder, cluster, consume_all, run, Consumed};

const TASKS: usize = 8;
const PER_TASK: usize = 10_000;
const KEYS_PER_TASK: usize = 5;

/// The record task `t` sends as its `i`-th: some with headers (a null one
/// too), some with a timestamp, most plain, so a key's records are often a
/// few apart within one run of the batch call, and runs are cut by
/// single-record calls.
fn record(topic: &Topic, t: usize, i: usize) -> Record {
    let key = format!("task{t}-key{}", i % KEYS_PER_TASK);
    let mut record = Record::new(topic)
        .with_key(key)
        .with_payload(format!("{t}:{i}"));
    if i % 7 == 0 {
        record = record
            .with_header("seq", i.to_string())
            .with_header("task", t.to_string())
            .with_null_header("nothing");
    }
    if i % 11 == 0 {
        record = record.with_timestamp(1_700_000_000_000 + i as i64);
    }
    record
}

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
    run(Duration::from_secs(180), async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let (producer, topic) = (producer.clone(), topic.clone());
                tokio::spawn(async move {
                    let mut futures = Vec::with_capacity(PER_TASK);
                    for i in 0..PER_TASK {
                        futures.push(
                            producer
                                .produce(record(&topic, t, i))
                                .await
                                .expect("accepted"),
                        );
                    }
                    for f in futures {
                        f.await.expect("delivered");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });

    let stored = consume_all(&cluster.bootstrap_servers(), &name, 6, TASKS * PER_TASK);
    let mut by_key: HashMap<Vec<u8>, Vec<&Consumed>> = HashMap::new();
    for r in &stored {
        by_key
            .entry(r.key.clone().expect("keyed"))
            .or_default()
            .push(r);
    }
    assert_eq!(by_key.len(), TASKS * KEYS_PER_TASK);
    for (key, mut records) in by_key {
        let partition = records[0].partition;
        assert!(
            records.iter().all(|r| r.partition == partition),
            "one key, one partition"
        );
        records.sort_by_key(|r| r.offset);
        let sequence: Vec<usize> = records
            .iter()
            .map(|r| {
                let payload = String::from_utf8(r.payload.clone().unwrap()).unwrap();
                payload.split_once(':').unwrap().1.parse().unwrap()
            })
            .collect();
        let mut sorted = sequence.clone();
        sorted.sort_unstable();
        assert_eq!(
            sequence,
            sorted,
            "key {:?} out of order",
            String::from_utf8_lossy(&key)
        );
    }

    // Exact content: rebuild what each record should be and compare.
    for r in &stored {
        let payload = String::from_utf8(r.payload.clone().unwrap()).unwrap();
        let (t, i) = payload.split_once(':').unwrap();
        let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
        let sent = record(&topic, t, i);
        assert_eq!(r.key.as_deref(), sent.key().map(|k| k.as_ref()));
        let headers: Vec<(String, Option<Vec<u8>>)> = sent
            .headers()
            .iter()
            .map(|h| (h.key.to_string(), h.value.as_ref().map(|v| v.to_vec())))
            .collect();
        assert_eq!(r.headers, headers, "headers of {payload}");
        if let Some(ts) = sent.timestamp() {
            assert_eq!(r.timestamp, Some(ts), "timestamp of {payload}");
        } else {
            assert!(r
                .timestamp
                .is_some_and(|ts| ts > 1_700_000_000_000 + 10_000_000));
        }
    }
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
