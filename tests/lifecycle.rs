//! flush, close, purge and drop with records pending; backpressure; records
//! handed back. In each: every future resolves exactly once, the pool and the
//! in-flight count return to zero, and the cluster holds exactly the records
//! reported delivered.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aioproducer::{AioProducer, DeliveryFuture, EmbeddedCluster, Error, Record, Topic};
use common::{builder, by_payload, cluster, consume_all, deliver_first, run};
use futures::FutureExt;

const PENDING: usize = 50_000;

/// `len()` counts a record until its report is counted, which is a moment
/// after its room under the bound was freed: by at most one record per
/// completing thread (here librdkafka's one).
const REPORTING: usize = 1;

async fn produce_pending(producer: &AioProducer, topic: &str, n: usize) -> Vec<DeliveryFuture> {
    let mut futures = Vec::with_capacity(n);
    for i in 0..n {
        let record = Record::new(topic.to_string()).with_payload(format!("{topic}-{i}"));
        futures.push(producer.produce(record).await.expect("accepted"));
    }
    futures
}

/// Resolves every future; returns (delivered, purged) and fails on any other
/// outcome.
async fn outcomes(futures: Vec<DeliveryFuture>) -> (usize, usize) {
    let (mut delivered, mut purged) = (0, 0);
    for f in futures {
        match f.await {
            Ok(_) => delivered += 1,
            Err(e) if *e.error() == Error::Purged => purged += 1,
            Err(e) => panic!("unexpected failure: {e}"),
        }
    }
    (delivered, purged)
}

/// Records of `topic` (6 partitions) in the cluster, `expected` of them.
fn stored(cluster: &EmbeddedCluster, topic: &str, expected: usize) -> usize {
    by_payload(&consume_all(
        &cluster.bootstrap_servers(),
        topic,
        6,
        expected,
    ))
    .len()
}

/// A cluster whose broker answers every request 200 ms late, so records
/// stay pending long enough to be flushed, closed or dropped on.
fn slow_cluster(topic: &str) -> EmbeddedCluster {
    let cluster = cluster(topic, 6);
    cluster
        .mock()
        .broker_round_trip_time(1, Duration::from_millis(200))
        .unwrap();
    cluster
}

fn assert_settled(producer: &AioProducer, produced: u64) {
    let stats = producer.stats();
    assert_eq!(stats.produced, produced);
    assert_eq!(
        stats.delivered + stats.failed,
        produced,
        "every record reported once"
    );
    assert_eq!(stats.in_flight, 0);
    assert_eq!(producer.len(), 0);
    assert_eq!(stats.pool.in_use, 0, "every slot back in the pool");
}

#[test]
fn flush_waits_for_every_pending_record() {
    let cluster = slow_cluster("flush");
    let producer = builder(&cluster).build().unwrap();
    run(Duration::from_secs(120), async {
        let futures = produce_pending(&producer, "flush", PENDING).await;
        assert!(!producer.is_empty(), "records are pending before the flush");
        producer.flush().await;
        assert_eq!(producer.len(), 0);
        for f in futures {
            let report = f.now_or_never().expect("resolved by the flush");
            report.expect("delivered");
        }
    });
    assert_settled(&producer, PENDING as u64);
    assert_eq!(stored(&cluster, "flush", PENDING), PENDING);
}

#[test]
fn flush_returns_while_other_tasks_keep_producing() {
    let cluster = cluster("flush-busy", 3);
    let producer = builder(&cluster).build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    run(Duration::from_secs(60), async {
        let busy = {
            let (producer, stop) = (producer.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let r = Record::new("flush-busy").with_payload(i.to_string());
                    drop(producer.produce(r).await.expect("accepted"));
                    i += 1;
                    if i % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                i
            })
        };
        for _ in 0..20 {
            let mine = producer
                .produce(Record::new("flush-busy").with_payload("mine"))
                .await
                .unwrap();
            producer.flush().await;
            assert!(
                mine.now_or_never().is_some(),
                "flush covered the record before it"
            );
        }
        stop.store(true, Ordering::Relaxed);
        assert!(busy.await.unwrap() > 0);
        producer.flush().await;
    });
    assert_settled(&producer, producer.stats().produced);
}

#[test]
fn close_delivers_every_pending_record_then_refuses_new_ones() {
    let cluster = slow_cluster("close");
    let producer = builder(&cluster).build().unwrap();
    run(Duration::from_secs(120), async {
        let futures = produce_pending(&producer, "close", PENDING).await;
        producer.close().await;
        assert_eq!(producer.len(), 0);
        assert_eq!(outcomes(futures).await, (PENDING, 0));

        let refused = producer
            .produce(Record::new("close").with_payload("late"))
            .await
            .unwrap_err();
        assert_eq!(*refused.error(), Error::Closed);
        assert_eq!(refused.record().payload().unwrap().as_ref(), b"late");
        let refused = producer
            .try_produce(Record::new("close").with_payload("late"))
            .unwrap_err();
        assert_eq!(*refused.error(), Error::Closed);
        producer.close().await; // a second close returns at once
    });
    assert_settled(&producer, PENDING as u64);
    assert_eq!(stored(&cluster, "close", PENDING), PENDING);
}

#[test]
fn purge_fails_every_pending_record_and_nothing_else() {
    let cluster = cluster("purge", 6);
    let producer = builder(&cluster).build().unwrap();
    run(Duration::from_secs(120), async {
        producer
            .send(Record::new("purge").with_payload("before"))
            .await
            .unwrap();
        cluster.mock().broker_down(1).unwrap();
        let futures = produce_pending(&producer, "purge", PENDING).await;
        producer.purge().await;
        assert_eq!(producer.len(), 0);
        assert_eq!(outcomes(futures).await, (0, PENDING));
        cluster.mock().broker_up(1).unwrap();
        producer
            .send(Record::new("purge").with_payload("after"))
            .await
            .unwrap();
    });
    assert_settled(&producer, PENDING as u64 + 2);
    let stored = consume_all(&cluster.bootstrap_servers(), "purge", 6, 2);
    let payloads = by_payload(&stored);
    assert!(
        payloads.contains_key(b"before".as_slice()) && payloads.contains_key(b"after".as_slice())
    );
}

#[test]
fn drop_without_close_delivers_pending_records() {
    let cluster = slow_cluster("drop");
    let producer = builder(&cluster).build().unwrap();
    let futures = run(
        Duration::from_secs(60),
        produce_pending(&producer, "drop", PENDING),
    );
    drop(producer);
    let (delivered, purged) = run(Duration::from_secs(5), outcomes(futures));
    assert_eq!((delivered, purged), (PENDING, 0));
    assert_eq!(stored(&cluster, "drop", PENDING), PENDING);
}

#[test]
fn drop_without_close_fails_what_it_cannot_deliver_in_time() {
    let cluster = cluster("drop-down", 6);
    let producer = builder(&cluster)
        .drop_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let futures = run(Duration::from_secs(60), async {
        producer
            .send(Record::new("drop-down").with_payload("before"))
            .await
            .unwrap();
        cluster.mock().broker_down(1).unwrap();
        produce_pending(&producer, "drop-down", PENDING).await
    });
    let started = Instant::now();
    drop(producer);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "drop is bounded"
    );
    let (delivered, purged) = run(Duration::from_secs(5), outcomes(futures));
    assert_eq!((delivered, purged), (0, PENDING), "nothing forgotten");
    cluster.mock().broker_up(1).unwrap();
    assert_eq!(
        consume_all(&cluster.bootstrap_servers(), "drop-down", 6, 1).len(),
        1
    );
}

#[test]
fn backpressure_bounds_memory_and_loses_nothing() {
    const N: usize = 100_000;
    const MAX_IN_FLIGHT: usize = 1000;
    /// Futures the caller holds at most (queued for the reaper, in its hand,
    /// in ours).
    const HELD: usize = 256 + 2;
    let cluster = cluster("backpressure", 6);
    let producer = builder(&cluster)
        .ring_capacity(64)
        .set("queue.buffering.max.messages", MAX_IN_FLIGHT.to_string())
        .build()
        .unwrap();
    let delivered = run(Duration::from_secs(120), async {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<DeliveryFuture>(HELD - 2);
        let reaper = tokio::spawn(async move {
            let mut delivered = 0;
            while let Some(f) = rx.recv().await {
                f.await.expect("delivered");
                delivered += 1;
            }
            delivered
        });
        for i in 0..N {
            let record = Record::new("backpressure").with_payload(i.to_string());
            let future = producer.produce(record).await.expect("accepted");
            assert!(
                producer.len() <= MAX_IN_FLIGHT + REPORTING,
                "bound exceeded"
            );
            tx.send(future).await.unwrap();
        }
        drop(tx);
        reaper.await.unwrap()
    });
    assert_eq!(delivered, N);
    let stats = producer.stats();
    assert_eq!(stats.max_in_flight, MAX_IN_FLIGHT as u64);
    assert!(
        stats.pool.created <= MAX_IN_FLIGHT + HELD,
        "created {} slots",
        stats.pool.created
    );
    assert_settled(&producer, N as u64);
    let stored = consume_all(&cluster.bootstrap_servers(), "backpressure", 6, N);
    assert_eq!(by_payload(&stored).len(), N);
}

/// The bound counts records not yet reported, not futures not yet read: a
/// caller that produces far more than the bound before awaiting anything
/// (one task, or many tasks each keeping its own futures) does not block
/// itself.
#[test]
fn futures_kept_unread_never_block_produce() {
    const MAX_IN_FLIGHT: usize = 500;
    const TASKS: usize = 4;
    const PER_TASK: usize = 3 * MAX_IN_FLIGHT;
    let cluster = cluster("kept", 6);
    let producer = builder(&cluster)
        .set("queue.buffering.max.messages", MAX_IN_FLIGHT.to_string())
        .build()
        .unwrap();
    run(Duration::from_secs(60), async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let producer = producer.clone();
                tokio::spawn(async move {
                    let mut futures = Vec::with_capacity(PER_TASK);
                    for i in 0..PER_TASK {
                        let record = Record::new("kept").with_payload(format!("{t}:{i}"));
                        futures.push(producer.produce(record).await.expect("accepted"));
                        let len = producer.len();
                        assert!(len <= MAX_IN_FLIGHT + REPORTING, "bound exceeded");
                    }
                    for f in futures {
                        f.await.expect("delivered");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("a producing task panicked");
        }
    });
    let stats = producer.stats();
    assert!(
        stats.pool.created >= PER_TASK,
        "each kept future holds a slot"
    );
    assert_settled(&producer, (TASKS * PER_TASK) as u64);
    let stored = consume_all(&cluster.bootstrap_servers(), "kept", 6, TASKS * PER_TASK);
    assert_eq!(by_payload(&stored).len(), TASKS * PER_TASK);
}

#[test]
fn try_produce_hands_the_record_back_when_full_or_closed() {
    let cluster = cluster("try", 1);
    let producer = builder(&cluster)
        .set("queue.buffering.max.messages", "1")
        .build()
        .unwrap();
    let first = producer
        .try_produce(Record::new("try").with_payload("first"))
        .unwrap();
    let record = Record::new("try")
        .with_key("k")
        .with_payload("second")
        .with_header("h", "v");
    let refused = producer.try_produce(record.clone()).unwrap_err();
    assert_eq!(*refused.error(), Error::QueueFull);
    assert!(refused.error().is_retriable());
    assert_eq!(
        refused.into_record(),
        record,
        "the very same record comes back"
    );

    first.wait().expect("delivered"); // its report freed the only room
    let second = producer.try_produce(record.clone()).expect("room again");
    second.wait().expect("delivered");
    futures::executor::block_on(producer.close());
    let refused = producer.try_produce(record.clone()).unwrap_err();
    assert_eq!(
        (*refused.error() == Error::Closed, refused.into_record()),
        (true, record)
    );
    assert_settled(&producer, 2);
}

#[test]
fn a_cancelled_produce_leaves_nothing_queued() {
    let cluster = cluster("cancel", 1);
    let producer = builder(&cluster)
        .set("queue.buffering.max.messages", "1")
        .build()
        .unwrap();
    let held = producer
        .try_produce(Record::new("cancel").with_payload("held"))
        .unwrap();
    {
        let mut waiting =
            Box::pin(producer.produce(Record::new("cancel").with_payload("cancelled")));
        assert!(
            (&mut waiting).now_or_never().is_none(),
            "waits for a free slot"
        );
    } // dropped while waiting
    held.wait().unwrap();
    let after =
        futures::executor::block_on(producer.send(Record::new("cancel").with_payload("after")));
    after.expect("delivered");
    assert_settled(&producer, 2);
    let stored = consume_all(&cluster.bootstrap_servers(), "cancel", 1, 2);
    assert!(!by_payload(&stored).contains_key(b"cancelled".as_slice()));
}

#[test]
fn the_timer_hands_over_a_held_batch_at_buffer_timeout() {
    let cluster = cluster("timer", 1);
    let timeout = Duration::from_millis(300);
    let producer = builder(&cluster)
        .batch_size(1000)
        .buffer_timeout(timeout)
        .build()
        .unwrap();
    futures::executor::block_on(producer.send(Record::new("timer").with_payload("warm-up")))
        .unwrap();
    for _ in 0..3 {
        let started = Instant::now();
        let delivery = producer
            .try_produce(Record::new("timer").with_payload("held"))
            .unwrap();
        delivery.wait().expect("delivered");
        let waited = started.elapsed();
        assert!(
            waited >= timeout,
            "held for the buffer timeout, not {waited:?}"
        );
        assert!(
            waited < timeout * 5,
            "handed over soon after the timeout, not {waited:?}"
        );
    }
    // A flush does not wait for the timer.
    let started = Instant::now();
    let delivery = producer
        .try_produce(Record::new("timer").with_payload("flushed"))
        .unwrap();
    futures::executor::block_on(producer.flush());
    assert!(
        started.elapsed() < timeout,
        "flush handed the batch over at once"
    );
    delivery.wait().unwrap();
}

/// Produces `topic` records one at a time, a little apart (so that the
/// worker sleeps between them and the producer hands each over itself),
/// until the producer refuses one; returns the futures of those accepted
/// and the error of the refusal.
fn produce_slowly_until_refused(
    producer: &AioProducer,
    topic: &str,
) -> (Vec<DeliveryFuture>, Error) {
    let topic = Topic::new(topic);
    let mut futures = Vec::new();
    for i in 0.. {
        match producer.try_produce(Record::new(&topic).with_payload(format!("{i}"))) {
            Ok(future) => futures.push(future),
            Err(refused) => return (futures, refused.error().clone()),
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    unreachable!("the loop ends with a refusal")
}

/// `close` on one thread while another produces slowly, handing records
/// over for the sleeping worker: every accepted record is delivered, the
/// first refused one is refused with `Closed`, nothing hangs.
#[test]
fn close_while_a_producer_hands_over_for_the_sleeping_worker() {
    let cluster = cluster("close-slow", 6);
    let producer = builder(&cluster).workers(2).build().unwrap();
    deliver_first(&producer, "close-slow");
    let (futures, refusal) = std::thread::scope(|s| {
        let producing = s.spawn(|| produce_slowly_until_refused(&producer, "close-slow"));
        std::thread::sleep(Duration::from_millis(200));
        futures::executor::block_on(producer.close());
        producing.join().unwrap()
    });
    assert_eq!(refusal, Error::Closed);
    let accepted = futures.len();
    assert!(accepted > 100, "only {accepted} records before close");
    let (delivered, failed) = run(Duration::from_secs(30), outcomes(futures));
    assert_eq!((delivered, failed), (accepted, 0));
    let stats = producer.stats();
    assert!(
        stats
            .workers
            .iter()
            .map(|w| w.handed_over_by_producers)
            .sum::<u64>()
            > 0
    );
    assert_settled(&producer, accepted as u64 + 1);
    assert_eq!(stored(&cluster, "close-slow", accepted + 1), accepted + 1);
}

/// `purge` while another thread produces slowly against a broker that is
/// down: each record is either failed by the purge or, produced after it,
/// still pending until the broker is back; none is lost or hangs.
#[test]
fn purge_while_a_producer_hands_over_for_the_sleeping_worker() {
    let cluster = cluster("purge-slow", 6);
    let producer = builder(&cluster).build().unwrap();
    deliver_first(&producer, "purge-slow");
    cluster.mock().broker_down(1).unwrap();
    let (futures, refusal) = std::thread::scope(|s| {
        let producing = s.spawn(|| produce_slowly_until_refused(&producer, "purge-slow"));
        std::thread::sleep(Duration::from_millis(100));
        futures::executor::block_on(producer.purge());
        std::thread::sleep(Duration::from_millis(100));
        cluster.mock().broker_up(1).unwrap();
        futures::executor::block_on(producer.close());
        producing.join().unwrap()
    });
    assert_eq!(refusal, Error::Closed);
    let accepted = futures.len();
    let (delivered, purged) = run(Duration::from_secs(60), outcomes(futures));
    assert_eq!(delivered + purged, accepted, "every record reported once");
    assert!(purged > 0, "the purge failed nothing");
    assert!(
        delivered > 0,
        "nothing produced after the purge was delivered"
    );
    assert_settled(&producer, accepted as u64 + 1);
    assert_eq!(
        stored(&cluster, "purge-slow", delivered + 1),
        delivered + 1,
        "exactly the records reported delivered are stored"
    );
}
