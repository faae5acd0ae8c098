//! A varied record pattern, and the check that what the cluster stored is
//! exactly what was sent, in per-key order.

use std::collections::{HashMap, HashSet};

use aioproducer::{Delivery, Record, Topic};

use super::Consumed;

/// Keys per producing task.
pub const KEYS_PER_TASK: usize = 5;

/// The record task `t` sends as its `i`-th: some with headers (a null one
/// too), some with a timestamp, most plain, so a key's records are often a
/// few apart within one run of the batch call, and runs are cut by
/// single-record calls.
pub fn varied(topic: &Topic, t: usize, i: usize) -> Record {
    let mut record = Record::new(topic)
        .with_key(format!("task{t}-key{}", i % KEYS_PER_TASK))
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

fn task_and_index(r: &Consumed) -> (usize, usize) {
    let payload = String::from_utf8(r.payload.clone().expect("payload")).unwrap();
    let (t, i) = payload.split_once(':').expect("t:i payload");
    (t.parse().unwrap(), i.parse().unwrap())
}

/// Produces `varied` records from `tasks` concurrent tokio tasks of
/// `per_task` records each, awaits every delivery, and returns the reports.
pub async fn produce_varied(
    producer: &aioproducer::AioProducer,
    topic: &Topic,
    tasks: usize,
    per_task: usize,
) -> Vec<Delivery> {
    let tasks: Vec<_> = (0..tasks)
        .map(|t| {
            let (producer, topic) = (producer.clone(), topic.clone());
            tokio::spawn(async move {
                let mut futures = Vec::with_capacity(per_task);
                for i in 0..per_task {
                    let record = varied(&topic, t, i);
                    futures.push(producer.produce(record).await.expect("accepted"));
                }
                let mut reports = Vec::with_capacity(per_task);
                for f in futures {
                    reports.push(f.await.expect("delivered"));
                }
                reports
            })
        })
        .collect();
    let mut reports = Vec::with_capacity(tasks.len() * per_task);
    for task in tasks {
        reports.extend(task.await.expect("a producing task panicked"));
    }
    reports
}

/// Checks `stored` against the records `varied` makes for `tasks` tasks of
/// `per_task` records: each exactly once, with identical key, payload,
/// headers and timestamp, and each key's records in the order sent.
pub fn check_varied(stored: &[Consumed], topic: &Topic, tasks: usize, per_task: usize) {
    let sent: HashSet<(usize, usize)> = stored.iter().map(task_and_index).collect();
    assert_eq!(sent.len(), stored.len(), "no record stored twice");
    assert_eq!(stored.len(), tasks * per_task, "every record stored");

    let mut by_key: HashMap<&[u8], Vec<&Consumed>> = HashMap::new();
    for r in stored {
        by_key
            .entry(r.key.as_deref().expect("keyed"))
            .or_default()
            .push(r);
    }
    assert_eq!(by_key.len(), tasks * KEYS_PER_TASK);
    for (key, mut records) in by_key {
        let partition = records[0].partition;
        assert!(
            records.iter().all(|r| r.partition == partition),
            "one key, one partition"
        );
        records.sort_by_key(|r| r.offset);
        let sequence: Vec<usize> = records.iter().map(|r| task_and_index(r).1).collect();
        let mut sorted = sequence.clone();
        sorted.sort_unstable();
        assert_eq!(
            sequence,
            sorted,
            "key {:?} out of order",
            String::from_utf8_lossy(key)
        );
    }

    for r in stored {
        let (t, i) = task_and_index(r);
        let sent = varied(topic, t, i);
        assert_eq!(r.key.as_deref(), sent.key().map(|k| k.as_ref()));
        let headers: Vec<(String, Option<Vec<u8>>)> = sent
            .headers()
            .iter()
            .map(|h| (h.key.to_string(), h.value.as_ref().map(|v| v.to_vec())))
            .collect();
        assert_eq!(r.headers, headers, "headers of {t}:{i}");
        match sent.timestamp() {
            Some(ts) => assert_eq!(r.timestamp, Some(ts), "timestamp of {t}:{i}"),
            None => assert!(r
                .timestamp
                .is_some_and(|ts| ts > 1_700_000_000_000 + 10_000_000)),
        }
    }
}

/// Checks that the reported places are exactly where the records are.
pub fn check_reports_match_log(reports: &[Delivery], stored: &[Consumed]) {
    let reported: HashSet<(i32, i64)> = reports.iter().map(|d| (d.partition, d.offset)).collect();
    let logged: HashSet<(i32, i64)> = stored.iter().map(|r| (r.partition, r.offset)).collect();
    assert_eq!(
        reported.len(),
        reports.len(),
        "each report names a distinct place"
    );
    assert_eq!(reported, logged, "reported partition/offset match the log");
}

/// What a stream of records came to.
#[derive(Debug, Default)]
pub struct Tally {
    pub delivered: usize,
    /// Failures by librdkafka error code (or our error, when none).
    pub failed: HashMap<String, usize>,
    /// Failed records said possibly persisted that are in the log.
    pub failed_but_stored: usize,
    /// Of those, the ones in the log more than once.
    pub failed_but_stored_twice: usize,
}

/// Which records may be in the log more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Twice {
    /// None.
    Never,
    /// A failed record said possibly persisted: after a message timeout of
    /// records in flight, librdkafka's idempotent producer bumps its epoch
    /// and sends the rest of their request again under new sequence
    /// numbers, which the broker cannot recognise (docs/KAFKA.md).
    IfFailedPossiblyPersisted,
}

/// Checks the outcomes of records whose payloads are their index as text
/// against what the log holds: every record reported delivered is in the
/// log exactly once, where reported; a failed record said never persisted
/// is not in the log; a failed record said possibly persisted is in it at
/// most once unless `twice` allows more; any other record in the log is
/// there once.
pub fn check_outcomes<'a>(
    outcomes: impl IntoIterator<Item = &'a Result<Delivery, aioproducer::DeliveryError>>,
    stored: &[Consumed],
    twice: Twice,
) -> Tally {
    let mut in_log: HashMap<&[u8], Vec<(i32, i64)>> = HashMap::new();
    for r in stored {
        in_log
            .entry(r.payload.as_deref().unwrap_or_default())
            .or_default()
            .push((r.partition, r.offset));
    }
    let mut tally = Tally::default();
    let mut ours = HashSet::new();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let payload = i.to_string();
        let logged = in_log.get(payload.as_bytes());
        ours.insert(payload);
        match outcome {
            Ok(d) => {
                assert_eq!(
                    logged,
                    Some(&vec![(d.partition, d.offset)]),
                    "record {i} is where reported, once"
                );
                tally.delivered += 1;
            }
            Err(e) => {
                let copies = logged.map_or(0, Vec::len);
                if !e.possibly_persisted() {
                    assert_eq!(
                        copies, 0,
                        "record {i} failed as never persisted but is in the log"
                    );
                } else if copies > 0 {
                    tally.failed_but_stored += 1;
                    if copies > 1 {
                        assert_eq!(
                            twice,
                            Twice::IfFailedPossiblyPersisted,
                            "record {i} is in the log {copies} times: {logged:?}"
                        );
                        tally.failed_but_stored_twice += 1;
                    }
                }
                let kind = e
                    .error()
                    .kafka_code()
                    .map_or_else(|| e.error().to_string(), |c| format!("{c:?}"));
                *tally.failed.entry(kind).or_default() += 1;
            }
        }
    }
    for (payload, places) in &in_log {
        let payload = String::from_utf8_lossy(payload);
        assert!(
            ours.contains(payload.as_ref()) || places.len() == 1,
            "record {payload:?} is in the log {} times",
            places.len()
        );
    }
    tally
}
