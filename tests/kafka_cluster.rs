//! Failover on a real three-node cluster (replication factor 3,
//! `min.insync.replicas` 2, idempotence on, `acks=all`): a partition leader
//! killed, a leader hung, a rolling restart, two nodes of three down,
//! partitions added, the active controller killed, each while eight tasks
//! produce keyed records. After each, everything is consumed back and
//! checked (`check_stream`): every future resolved; every record reported
//! delivered is in the log exactly once, where its report says; a record
//! failed as never persisted is not in the log; no other record is in the
//! log twice, except (in the one test that times records out) a failure
//! said possibly persisted, which librdkafka may have sent twice (`Twice`);
//! each key's delivered records are in the order they were sent.
//!
//! Each test starts a cluster of its own (`scripts/kafka cluster`, a private
//! state directory) and the tests take turns, so a fault in one disturbs no
//! other. docs/KAFKA.md lists the guarantees and how to run these by hand.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use aioproducer::rdkafka::types::RDKafkaErrorCode;
use aioproducer::{AioProducer, Delivery, DeliveryError, Record};
use common::cluster::Cluster;
use common::kafka::{broker_tests_on, unique_topic};
use common::records::{check_outcomes, Tally, Twice};
use common::{consume_at_least, run, Consumed};

/// One cluster at a time: three JVMs per test on a 2-core machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The topic of most tests.
const PARTITIONS: i32 = 6;
/// Producing tasks.
const TASKS: usize = 8;
/// Keys per producing task (each key is one task's alone, so its order is
/// that task's order).
const KEYS: usize = 5;

/// Starts a cluster for one test, or `None` when broker tests are off (said
/// on stderr; they are never off in CI).
fn cluster() -> Option<(std::sync::MutexGuard<'static, ()>, Cluster)> {
    if !broker_tests_on() {
        return None;
    }
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let cluster = Cluster::start(3);
    eprintln!("cluster of 3 up in {:?}", started.elapsed());
    Some((turn, cluster))
}

/// A producer for `cluster` with idempotence and `acks=all`.
fn producer(cluster: &Cluster, message_timeout: Duration) -> AioProducer {
    AioProducer::builder()
        .bootstrap_servers(cluster.bootstrap())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set(
            "message.timeout.ms",
            message_timeout.as_millis().to_string(),
        )
        .build()
        .expect("producer")
}

/// What the producing tasks send: `tasks` tasks of up to `per_task`
/// records, at `rate` records a second in all. Record `n = j * tasks + t`
/// (task `t`'s `j`-th, due `n / rate` after the start) has `first + n` as
/// payload and, unless `t < unkeyed`, the key `t{t}-k{j % KEYS}`. With a
/// `tail`, the stream ends that long after the fault does (or at
/// `per_task` records a task, which then fails the test): a fault that
/// takes longer on a loaded machine still hits a running stream.
#[derive(Debug, Clone, Copy)]
struct Plan {
    first: usize,
    tasks: usize,
    per_task: usize,
    rate: f64,
    unkeyed: usize,
    tail: Option<Duration>,
}

impl Plan {
    fn keyed(per_task: usize, rate: f64) -> Self {
        Plan {
            first: 0,
            tasks: TASKS,
            per_task,
            rate,
            unkeyed: 0,
            tail: None,
        }
    }

    /// `keyed`, ending `tail` after the fault does.
    fn keyed_until_after(tail: Duration, per_task: usize, rate: f64) -> Self {
        Plan {
            tail: Some(tail),
            ..Plan::keyed(per_task, rate)
        }
    }

    fn records(&self) -> usize {
        self.tasks * self.per_task
    }

    fn record(&self, topic: &str, t: usize, j: usize) -> Record {
        let record = Record::new(topic.to_string())
            .with_payload((self.first + j * self.tasks + t).to_string());
        if t < self.unkeyed {
            record
        } else {
            record.with_key(format!("t{t}-k{}", j % KEYS))
        }
    }
}

/// One record's fate.
struct Sent {
    outcome: Result<Delivery, DeliveryError>,
    queued: Instant,
    resolved: Instant,
}

/// Runs `plan` against `topic` on a runtime of its own while `during` runs
/// on this thread (it gets the count of records queued so far, to time its
/// fault); returns every record's fate, in index order, and what `during`
/// returned. Fails the test when a future has not resolved after `limit`.
fn stream<R>(
    producer: &AioProducer,
    topic: &str,
    plan: Plan,
    limit: Duration,
    during: impl FnOnce(&AtomicUsize) -> R,
) -> (Vec<Sent>, R) {
    let queued = Arc::new(AtomicUsize::new(0));
    // The stream's end: records from `n = end` on are not sent.
    let end = Arc::new(AtomicUsize::new(plan.records()));
    let started = Instant::now();
    thread::scope(|s| {
        let tasks = s.spawn(|| {
            run(limit, async {
                let start = tokio::time::Instant::now();
                let handles: Vec<_> = (0..plan.tasks)
                    .map(|t| {
                        let (producer, topic) = (producer.clone(), topic.to_string());
                        let (queued, end) = (Arc::clone(&queued), Arc::clone(&end));
                        tokio::spawn(async move {
                            let mut pending = Vec::with_capacity(plan.per_task);
                            for j in 0..plan.per_task {
                                let n = j * plan.tasks + t;
                                // Relaxed: a count, set once; the join publishes the rest.
                                if n >= end.load(Ordering::Relaxed) {
                                    break;
                                }
                                let due = start + Duration::from_secs_f64(n as f64 / plan.rate);
                                if due > tokio::time::Instant::now() + Duration::from_millis(2) {
                                    tokio::time::sleep_until(due).await;
                                }
                                let at = Instant::now();
                                let future = producer
                                    .produce(plan.record(&topic, t, j))
                                    .await
                                    .expect("accepted");
                                queued.fetch_add(1, Ordering::Relaxed);
                                pending.push(tokio::spawn(async move {
                                    let outcome = future.await;
                                    let sent = Sent {
                                        outcome,
                                        queued: at,
                                        resolved: Instant::now(),
                                    };
                                    (n, sent)
                                }));
                            }
                            let mut sent = Vec::with_capacity(plan.per_task);
                            for p in pending {
                                sent.push(p.await.expect("no panic"));
                            }
                            sent
                        })
                    })
                    .collect();
                let mut all = Vec::with_capacity(plan.records());
                for h in handles {
                    all.extend(h.await.expect("a producing task panicked"));
                }
                all.sort_unstable_by_key(|(n, _)| *n);
                all
            })
        });
        let result = during(&queued);
        if let Some(tail) = plan.tail {
            // Every record sent so far was due by now (`n / rate` after a
            // start no earlier than `started`): the end cuts no gap.
            let due = (started.elapsed() + tail).as_secs_f64() * plan.rate;
            end.fetch_min(due.ceil() as usize, Ordering::Relaxed);
        }
        let all = tasks.join().expect("the stream panicked");
        for (i, (n, _)) in all.iter().enumerate() {
            assert_eq!(i, *n, "the stream's records are numbered without gaps");
        }
        (all.into_iter().map(|(_, sent)| sent).collect(), result)
    })
}

/// Waits until `count` records of the stream are queued.
fn await_queued(queued: &AtomicUsize, count: usize) {
    while queued.load(Ordering::Relaxed) < count {
        thread::sleep(Duration::from_millis(5));
    }
}

/// Consumes `topic` back and checks every record's fate against it (see
/// the top of this file); `moves` allows a key's records to go on in one
/// other partition (after partitions were added), as long as none of its
/// later records lands before an earlier one. Returns the tally of outcomes
/// and the records consumed.
fn check_stream(
    producer: &AioProducer,
    cluster: &Cluster,
    topic: &str,
    partitions: i32,
    sent: &[Sent],
    moves: bool,
    twice: Twice,
) -> (Tally, Vec<Consumed>) {
    let stats = producer.stats();
    assert_eq!(stats.in_flight, 0, "every record reported");
    assert_eq!(stats.pool.in_use, 0, "every slot back in the pool");
    let delivered = sent.iter().filter(|s| s.outcome.is_ok()).count();
    let stored = consume_at_least(cluster.bootstrap(), topic, partitions, delivered);
    let tally = check_outcomes(sent.iter().map(|s| &s.outcome), &stored, twice);
    check_key_order(&stored, sent, moves);
    eprintln!(
        "{topic}: {} sent, {} stored, {tally:?}",
        sent.len(),
        stored.len()
    );
    (tally, stored)
}

/// Each key's delivered records, in each partition, are in the order sent
/// (their index; a failed record said possibly persisted may be in the log
/// too, out of order, see `Twice`); and where a key's records are in two
/// partitions (`moves`), all of one partition's come before all of the
/// other's.
fn check_key_order(stored: &[Consumed], sent: &[Sent], moves: bool) {
    let mut by_key: HashMap<&[u8], Vec<(i32, i64, usize)>> = HashMap::new();
    for r in stored {
        if let Some(key) = r.key.as_deref() {
            let index: usize = std::str::from_utf8(r.payload.as_deref().expect("payload"))
                .unwrap()
                .parse()
                .unwrap();
            if sent[index].outcome.is_err() {
                continue;
            }
            by_key
                .entry(key)
                .or_default()
                .push((r.partition, r.offset, index));
        }
    }
    for (key, mut records) in by_key {
        let key = String::from_utf8_lossy(key);
        records.sort_unstable();
        let mut spans: Vec<(usize, usize, i32)> = Vec::new();
        for run in records.chunk_by(|a, b| a.0 == b.0) {
            let indexes: Vec<usize> = run.iter().map(|r| r.2).collect();
            assert!(
                indexes.windows(2).all(|w| w[0] <= w[1]),
                "key {key}: out of order in partition {}: {indexes:?}",
                run[0].0
            );
            spans.push((indexes[0], indexes[indexes.len() - 1], run[0].0));
        }
        assert!(
            spans.len() <= if moves { 2 } else { 1 },
            "key {key} is in partitions {spans:?}"
        );
        spans.sort_unstable();
        for pair in spans.windows(2) {
            assert!(
                pair[0].1 < pair[1].0,
                "key {key}: records of partition {} and {} interleave: {spans:?}",
                pair[0].2,
                pair[1].2
            );
        }
    }
}

/// Percentiles of `latencies` (sorted here): p50, p99, max.
fn percentiles(mut latencies: Vec<Duration>) -> (Duration, Duration, Duration) {
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99), latencies[latencies.len() - 1])
}

fn failures(tally: &Tally) -> usize {
    tally.failed.values().sum()
}

/// Produces `plan` to `topic` (made with `partitions` partitions) while
/// `fault` runs, then checks everything (`check_stream`, no record twice),
/// and that no record failed and some were queued after `fault` returned
/// (the fault hit a running stream). Returns the records' fates, the log,
/// and what `fault` returned.
fn produce_through<R>(
    cluster: &Cluster,
    topic: &str,
    partitions: i32,
    plan: Plan,
    moves: bool,
    fault: impl FnOnce(&AtomicUsize) -> R,
) -> (Vec<Sent>, Vec<Consumed>, R) {
    cluster.create_topic(topic, partitions);
    let producer = producer(cluster, Duration::from_secs(120));
    let (sent, (result, ended)) =
        stream(&producer, topic, plan, Duration::from_secs(300), |queued| {
            (fault(queued), Instant::now())
        });
    let after = sent.iter().filter(|s| s.queued > ended).count();
    eprintln!("{after} records queued after the fault");
    assert!(after > 0, "the stream ended before the fault did");
    // Every partition the topic has now (more than it had, if the fault
    // added some).
    let now = cluster.leaders(topic).len() as i32;
    let (tally, stored) = check_stream(&producer, cluster, topic, now, &sent, moves, Twice::Never);
    assert_eq!(failures(&tally), 0, "no record fails: {tally:?}");
    futures::executor::block_on(producer.close());
    (sent, stored, result)
}

#[test]
fn leader_killed_mid_stream_loses_nothing_duplicates_nothing_and_keeps_key_order() {
    let Some((_turn, cluster)) = cluster() else {
        return;
    };
    let topic = unique_topic("leader-killed");
    // 200,000 records or more: the kill comes after 100,000.
    let plan = Plan::keyed_until_after(Duration::from_millis(2_500), 50_000, 40_000.0);
    let (sent, _, killed) = produce_through(&cluster, &topic, PARTITIONS, plan, false, |queued| {
        await_queued(queued, 100_000);
        let leader = cluster.leaders(&topic)[0];
        cluster.kill(leader);
        eprintln!("killed node {leader}, the leader of partition 0");
        leader
    });
    assert_ne!(
        cluster.leaders(&topic)[0],
        killed,
        "partition 0 has a new leader"
    );
    assert!(sent.len() >= 200_000, "{} records", sent.len());
}

#[test]
fn a_hung_leader_holds_up_only_its_partitions_and_loses_nothing() {
    let Some((_turn, cluster)) = cluster() else {
        return;
    };
    let topic = unique_topic("leader-hung");
    const PAUSE: Duration = Duration::from_secs(20);
    // Records at 2,000 a second: 4 s before the pause, 6 s after it.
    let plan = Plan::keyed_until_after(Duration::from_secs(6), 20_000, 2_000.0);
    let (sent, _, (leaders, paused_at, resumed_at)) =
        produce_through(&cluster, &topic, PARTITIONS, plan, false, |queued| {
            let leaders = cluster.leaders(&topic);
            let hung = leaders[0];
            await_queued(queued, 8_000);
            cluster.pause(hung);
            let paused_at = Instant::now();
            eprintln!(
                "paused node {hung}, the leader of partitions {:?}",
                led_by(&leaders, hung)
            );
            thread::sleep(PAUSE);
            cluster.resume(hung);
            (leaders, paused_at, Instant::now())
        });
    // Records for partitions the hung node did not lead, queued while it
    // was hung: how long they took, and how many were delivered before it
    // came back.
    let hung = leaders[0];
    let others: Vec<&Sent> = sent
        .iter()
        .filter(|s| (paused_at..resumed_at).contains(&s.queued))
        .filter(|s| {
            s.outcome
                .as_ref()
                .is_ok_and(|d| leaders[d.partition as usize] != hung)
        })
        .collect();
    let (p50, p99, max) = percentiles(others.iter().map(|s| s.resolved - s.queued).collect());
    let flowing = others.iter().filter(|s| s.resolved < resumed_at).count();
    eprintln!(
        "during the {PAUSE:?} pause: {} records for the other nodes' partitions, \
         {flowing} delivered before the resume; latency p50 {p50:?}, p99 {p99:?}, max {max:?}",
        others.len()
    );
    assert!(
        flowing > others.len() / 2,
        "records for partitions the hung node does not lead keep flowing"
    );
}

/// The partitions `node` leads, by the `leaders` list.
fn led_by(leaders: &[i32], node: i32) -> Vec<usize> {
    (0..leaders.len()).filter(|&p| leaders[p] == node).collect()
}

#[test]
fn a_rolling_restart_of_every_node_fails_no_record() {
    let Some((_turn, cluster)) = cluster() else {
        return;
    };
    let topic = unique_topic("rolling");
    // The restarts took 60-90 s here; 5 s of records after them.
    let plan = Plan::keyed_until_after(Duration::from_secs(5), 40_000, 1_000.0);
    produce_through(&cluster, &topic, PARTITIONS, plan, false, |queued| {
        await_queued(queued, 4_000);
        for n in cluster.nodes() {
            let started = Instant::now();
            cluster.restart(n);
            cluster.await_in_sync(&topic, Duration::from_secs(60));
            eprintln!("node {n} restarted and in sync in {:?}", started.elapsed());
        }
    });
}

#[test]
fn below_min_insync_records_fail_in_time_with_their_verdict_and_flow_again_after() {
    let Some((_turn, cluster)) = cluster() else {
        return;
    };
    let topic = unique_topic("below-min-isr");
    cluster.create_topic(&topic, PARTITIONS);
    const TIMEOUT: Duration = Duration::from_secs(10);
    let producer = producer(&cluster, TIMEOUT);
    let before = Plan::keyed(500, 1_000.0);
    let (mut sent, ()) = stream(&producer, &topic, before, Duration::from_secs(60), |_| ());
    assert!(
        sent.iter().all(|s| s.outcome.is_ok()),
        "all delivered before"
    );

    // Two of three down: no partition can have two replicas in sync.
    let down: Vec<i32> = {
        let first = cluster.leaders(&topic)[0];
        let second = cluster.nodes().find(|&n| n != first).unwrap();
        vec![first, second]
    };
    for &n in &down {
        cluster.kill(n);
    }
    eprintln!("killed nodes {down:?}");
    let outage = Plan {
        first: before.records(),
        ..Plan::keyed(250, 500.0)
    };
    let (during, ()) = stream(&producer, &topic, outage, TIMEOUT * 4, |_| ());
    let mut verdicts: HashMap<String, usize> = HashMap::new();
    for s in &during {
        let failure = s
            .outcome
            .as_ref()
            .expect_err("no record is delivered below min.insync");
        let code = failure.error().kafka_code();
        assert!(
            matches!(
                code,
                Some(
                    RDKafkaErrorCode::NotEnoughReplicas
                        | RDKafkaErrorCode::NotEnoughReplicasAfterAppend
                        | RDKafkaErrorCode::MessageTimedOut
                )
            ),
            "failed with {failure}"
        );
        let took = s.resolved - s.queued;
        // librdkafka times records out in a scan once a second, and a
        // request in flight when it ends its first record's time.
        assert!(
            took <= TIMEOUT * 2,
            "a record failed after {took:?}: message.timeout.ms is {TIMEOUT:?}"
        );
        *verdicts
            .entry(format!(
                "{code:?}, possibly persisted: {}, after {}s",
                failure.possibly_persisted(),
                took.as_secs()
            ))
            .or_default() += 1;
    }
    eprintln!("while two nodes were down: {verdicts:?}");

    for &n in &down {
        cluster.restart(n);
    }
    cluster.await_in_sync(&topic, Duration::from_secs(90));
    eprintln!("nodes {down:?} back and in sync");
    let after = Plan {
        first: before.records() + outage.records(),
        ..Plan::keyed(500, 1_000.0)
    };
    let (back, ()) = stream(&producer, &topic, after, Duration::from_secs(120), |_| ());
    let delivered = back.iter().filter(|s| s.outcome.is_ok()).count();
    assert_eq!(delivered, back.len(), "the same producer delivers again");
    sent.extend(during);
    sent.extend(back);
    let (tally, _) = check_stream(
        &producer,
        &cluster,
        &topic,
        PARTITIONS,
        &sent,
        false,
        Twice::IfFailedPossiblyPersisted,
    );
    assert_eq!(tally.delivered, before.records() + after.records());
    futures::executor::block_on(producer.close());
}

#[test]
fn partitions_added_while_producing_are_used_and_each_key_moves_once_in_order() {
    let Some((_turn, cluster)) = cluster() else {
        return;
    };
    let topic = unique_topic("grown");
    // Records, half unkeyed, at 2,000 a second; the partitions are added
    // after 3 s, and the stream goes on for 15 s after that (the producer
    // re-reads partitions every 10 s).
    let plan = Plan {
        unkeyed: TASKS / 2,
        ..Plan::keyed_until_after(Duration::from_secs(15), 20_000, 2_000.0)
    };
    let (sent, stored, added_at) = produce_through(&cluster, &topic, 3, plan, true, |queued| {
        await_queued(queued, 6_000);
        cluster.add_partitions(&topic, PARTITIONS as usize);
        eprintln!("{topic} grown from 3 to {PARTITIONS} partitions");
        Instant::now()
    });
    let in_new = |keyed: bool| {
        stored
            .iter()
            .filter(|r| r.partition >= 3 && r.key.is_some() == keyed)
            .count()
    };
    let first_in_new = sent
        .iter()
        .filter(|s| s.outcome.as_ref().is_ok_and(|d| d.partition >= 3))
        .map(|s| s.resolved.saturating_duration_since(added_at))
        .min();
    eprintln!(
        "in the new partitions: {} unkeyed, {} keyed records; the first {first_in_new:?} after the growth",
        in_new(false),
        in_new(true)
    );
    assert!(
        in_new(false) > 0,
        "unkeyed records reach the new partitions"
    );
    assert!(in_new(true) > 0, "keys whose partition changed moved to it");
}

#[test]
fn producing_goes_on_when_the_active_controller_is_killed() {
    let Some((_turn, cluster)) = cluster() else {
        return;
    };
    let topic = unique_topic("controller-killed");
    let plan = Plan::keyed_until_after(Duration::from_secs(3), 20_000, 4_000.0);
    let (_, _, killed) = produce_through(&cluster, &topic, PARTITIONS, plan, false, |queued| {
        await_queued(queued, 10_000);
        let controller = cluster.controller();
        cluster.kill(controller);
        eprintln!("killed node {controller}, the active controller");
        controller
    });
    let new = cluster.controller();
    eprintln!("node {new} is the controller now");
    assert_ne!(new, killed, "another node took over as controller");
}

/// The order check itself, on made-up logs (no broker): it passes a key
/// that moved once and fails a late record and an interleaved move.
mod the_order_check {
    use super::*;

    fn delivered(n: usize) -> Vec<Sent> {
        let now = Instant::now();
        (0..n)
            .map(|_| Sent {
                outcome: Ok(Delivery {
                    topic: aioproducer::Topic::new("t"),
                    partition: 0,
                    offset: 0,
                    timestamp: aioproducer::Timestamp::NotAvailable,
                }),
                queued: now,
                resolved: now,
            })
            .collect()
    }

    fn log(places: &[(i32, i64, usize)]) -> Vec<Consumed> {
        places
            .iter()
            .map(|&(partition, offset, index)| Consumed {
                partition,
                offset,
                key: Some(b"k".to_vec()),
                payload: Some(index.to_string().into_bytes()),
                headers: Vec::new(),
                timestamp: None,
            })
            .collect()
    }

    #[test]
    fn passes_a_key_that_moved_once() {
        let stored = log(&[(0, 0, 0), (0, 1, 1), (4, 0, 2), (4, 1, 3)]);
        check_key_order(&stored, &delivered(4), true);
    }

    #[test]
    #[should_panic(expected = "out of order in partition 0")]
    fn fails_a_late_record() {
        let stored = log(&[(0, 0, 1), (0, 1, 0)]);
        check_key_order(&stored, &delivered(2), false);
    }

    #[test]
    #[should_panic(expected = "interleave")]
    fn fails_an_interleaved_move() {
        let stored = log(&[(0, 0, 0), (0, 1, 2), (4, 0, 1), (4, 1, 3)]);
        check_key_order(&stored, &delivered(4), true);
    }

    #[test]
    #[should_panic(expected = "is in partitions")]
    fn fails_a_move_where_none_may_be() {
        let stored = log(&[(0, 0, 0), (4, 0, 1)]);
        check_key_order(&stored, &delivered(2), false);
    }
}
