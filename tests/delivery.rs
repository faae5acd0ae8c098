//! Every record is delivered, every future and callback resolves exactly
//! once, and the records in the cluster are the ones produced.

mod common;

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};
use std::time::Duration;

use aioproducer::{AioProducer, DeliveryFuture, Record, Topic};
use common::{builder, by_payload, cluster, consume_all, run};

const N: usize = 100_000;

#[test]
fn producer_and_futures_are_send_sync_and_cheap_to_share() {
    fn send_sync<T: Send + Sync + Clone>() {}
    fn send<T: Send>() {}
    send_sync::<AioProducer>();
    send::<DeliveryFuture>();
}

#[test]
fn every_record_of_100k_over_6_partitions_is_delivered_once_and_stored_intact() {
    let cluster = cluster("delivery", 6);
    let producer = builder(&cluster).workers(2).build().unwrap();
    let topic = Topic::from("delivery");
    let reports = run(Duration::from_secs(120), async {
        let mut futures = Vec::with_capacity(N);
        for i in 0..N {
            let record = Record::new(&topic)
                .with_key(format!("key-{}", i % 1000))
                .with_payload(format!("record-{i}"));
            futures.push(producer.produce(record).await.expect("accepted"));
        }
        let mut reports = Vec::with_capacity(N);
        for f in futures {
            reports.push(f.await.expect("delivered"));
        }
        reports
    });

    let places: HashSet<(i32, i64)> = reports.iter().map(|d| (d.partition, d.offset)).collect();
    assert_eq!(
        places.len(),
        N,
        "each report names a distinct partition/offset"
    );
    let partitions: HashSet<i32> = reports.iter().map(|d| d.partition).collect();
    assert_eq!(
        partitions.len(),
        6,
        "unkeyed records spread over all partitions"
    );
    assert!(reports.iter().all(|d| d.topic == topic));

    let stats = producer.stats();
    assert_eq!(
        (stats.produced, stats.delivered, stats.failed),
        (N as u64, N as u64, 0)
    );
    assert_eq!(stats.in_flight, 0);
    assert_eq!(stats.pool.in_use, 0, "every slot returned to the pool");
    assert_eq!(stats.pool.reused + stats.pool.created as u64, N as u64);
    assert_eq!(producer.len(), 0);

    let stored = consume_all(&cluster.bootstrap_servers(), "delivery", 6, N);
    let counts = by_payload(&stored);
    assert_eq!(counts.len(), N);
    assert!(counts.values().all(|&c| c == 1), "no record stored twice");
    for i in [0, 1, N / 2, N - 1] {
        assert_eq!(counts.get(format!("record-{i}").as_bytes()), Some(&1));
    }
    let stored_places: HashSet<(i32, i64)> =
        stored.iter().map(|r| (r.partition, r.offset)).collect();
    assert_eq!(
        stored_places, places,
        "reported partition/offset match the log"
    );
}

#[test]
fn every_callback_runs_exactly_once_with_its_own_report() {
    let cluster = cluster("callbacks", 3);
    let producer = builder(&cluster).build().unwrap();
    let calls: Arc<Vec<AtomicU8>> = Arc::new((0..N).map(|_| AtomicU8::new(0)).collect());
    let mismatched = Arc::new(AtomicUsize::new(0));
    run(Duration::from_secs(120), async {
        for i in 0..N {
            let (calls, mismatched) = (Arc::clone(&calls), Arc::clone(&mismatched));
            let record = Record::new("callbacks")
                .with_key(i.to_string())
                .with_payload(i.to_string());
            producer
                .produce_with_callback(record, move |result| {
                    calls[i].fetch_add(1, Ordering::Relaxed);
                    if result
                        .map(|d| d.topic.as_str() != "callbacks")
                        .unwrap_or(true)
                    {
                        mismatched.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .await
                .expect("accepted");
        }
        producer.flush().await;
    });
    assert!(
        calls.iter().all(|c| c.load(Ordering::Relaxed) == 1),
        "each callback ran once"
    );
    assert_eq!(
        mismatched.load(Ordering::Relaxed),
        0,
        "every callback saw a delivery"
    );
    assert_eq!(producer.stats().pool.in_use, 0);
}

/// The name the kernel has for the current thread (librdkafka names its
/// threads with `pthread_setname_np`, which Rust's `thread::current()`
/// cannot see for threads it did not start).
fn os_thread_name() -> String {
    std::fs::read_to_string("/proc/thread-self/comm")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

struct RecordingWaker(Mutex<Vec<String>>);

impl Wake for RecordingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.lock().unwrap().push(os_thread_name());
    }
}

#[test]
fn futures_and_callbacks_are_completed_on_librdkafkas_background_thread() {
    let cluster = cluster("threads", 1);
    let producer = builder(&cluster).build().unwrap();
    // Connect first, so the records below are completed by delivery reports.
    futures::executor::block_on(producer.send(Record::new("threads").with_payload("warm-up")))
        .unwrap();

    let callback_threads = Arc::new(Mutex::new(Vec::new()));
    let waker = Arc::new(RecordingWaker(Mutex::new(Vec::new())));
    let mut pending = Vec::new();
    for i in 0..100 {
        let record = Record::new("threads").with_payload(format!("{i}"));
        let mut future = producer.try_produce(record).expect("room");
        // Register our waker before the report can arrive.
        let task_waker = Waker::from(Arc::clone(&waker));
        let mut cx = std::task::Context::from_waker(&task_waker);
        assert!(std::pin::Pin::new(&mut future).poll(&mut cx).is_pending());
        pending.push(future);
        let threads = Arc::clone(&callback_threads);
        producer
            .try_produce_with_callback(Record::new("threads").with_payload("cb"), move |r| {
                assert!(r.is_ok());
                threads.lock().unwrap().push(os_thread_name());
            })
            .expect("room");
    }
    futures::executor::block_on(producer.flush());
    for f in pending {
        f.wait().expect("delivered");
    }
    let wakes = waker.0.lock().unwrap().clone();
    let callbacks = callback_threads.lock().unwrap().clone();
    assert_eq!(wakes.len(), 100, "each future woken once");
    assert_eq!(callbacks.len(), 100, "each callback run once");
    for name in wakes.iter().chain(&callbacks) {
        assert_eq!(
            name, "rdk:bg",
            "completed on librdkafka's background thread"
        );
    }
}

#[test]
fn futures_resolve_under_any_runtime_or_none() {
    let cluster = cluster("runtimes", 2);
    let producer = builder(&cluster).build().unwrap();
    let record = |s: &str| Record::new("runtimes").with_payload(s.to_string());

    // A plain thread, blocking.
    let f = futures::executor::block_on(producer.produce(record("blocking"))).unwrap();
    assert!(f.wait().is_ok());
    // The futures executor.
    assert!(futures::executor::block_on(producer.send(record("futures"))).is_ok());
    // tokio, from several tasks at once.
    run(Duration::from_secs(30), async {
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let producer = producer.clone();
                tokio::spawn(async move {
                    for i in 0..100 {
                        let r = Record::new("runtimes").with_payload(format!("tokio-{t}-{i}"));
                        producer.send(r).await.expect("delivered");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    // Other OS threads sharing one producer.
    std::thread::scope(|s| {
        for t in 0..4 {
            let producer = &producer;
            s.spawn(move || {
                for i in 0..100 {
                    let r = Record::new("runtimes").with_payload(format!("thread-{t}-{i}"));
                    let f = futures::executor::block_on(producer.produce(r)).unwrap();
                    f.wait().expect("delivered");
                }
            });
        }
    });
    let stored = consume_all(&cluster.bootstrap_servers(), "runtimes", 2, 2 + 800 + 400);
    assert_eq!(by_payload(&stored).len(), 1202);
}

#[test]
fn stats_report_pool_workers_and_librdkafka_statistics() {
    let cluster = cluster("stats", 2);
    let producer = builder(&cluster)
        .workers(2)
        .set("statistics.interval.ms", "100")
        .build()
        .unwrap();
    run(Duration::from_secs(30), async {
        for i in 0..1000 {
            let r = Record::new("stats")
                .with_key(i.to_string())
                .with_payload("x");
            drop(producer.produce(r).await.unwrap());
        }
        producer.flush().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    let stats = producer.stats();
    assert_eq!(
        (stats.produced, stats.delivered, stats.failed),
        (1000, 1000, 0)
    );
    assert_eq!(stats.workers.len(), 2);
    let handed: u64 = stats.workers.iter().map(|w| w.records).sum();
    assert_eq!(handed, 1000);
    assert!(stats
        .workers
        .iter()
        .all(|w| w.batches > 0 && w.mean_batch_size() >= 1.0));
    assert!(stats.pool.created > 0 && stats.pool.created <= 1000);
    let json = stats.librdkafka.expect("librdkafka statistics arrived");
    assert!(json.contains("\"msg_cnt\""), "{json}");
}

/// Reports arrive in runs (one librdkafka event per partition batch), and a
/// caller woken by one of them finds it already counted: in the statistics,
/// in `len`, and in the room under the bound.
#[test]
fn a_caller_woken_by_its_report_finds_it_counted() {
    let cluster = cluster("counted", 1);
    let producer = builder(&cluster).build().unwrap();
    let topic = Topic::from("counted");
    run(Duration::from_secs(60), async {
        for round in 0..20u64 {
            let futures: Vec<DeliveryFuture> = (0..64)
                .map(|i| {
                    let record = Record::new(&topic).with_payload(format!("{round}-{i}"));
                    producer.try_produce(record).expect("room")
                })
                .collect();
            let before = producer.stats();
            for (i, future) in futures.into_iter().enumerate() {
                future.await.expect("delivered");
                let stats = producer.stats();
                let reported = stats.delivered + stats.failed - (before.delivered + before.failed);
                assert!(
                    reported > i as u64,
                    "round {round}: record {i} was read before it was counted ({reported} counted)"
                );
            }
            assert_eq!(producer.len(), 0, "round {round}: every report counted");
        }
    });
}
