//! The application's hooks (`on_error`, `on_statistics`, `on_throttle`):
//! what reaches them, on which thread, and that a slow or panicking hook
//! never holds up a delivery.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aioproducer::rdkafka::types::{RDKafkaApiKey, RDKafkaErrorCode, RDKafkaRespErr};
use aioproducer::{AioProducer, ClientError, Record, Statistics, Throttle, Topic};
use common::kafka::{bootstrap, create_topic, unique_topic};
use common::{builder, cluster, run, within};

/// What a hook saw, with the name of the thread it ran on.
type Seen<T> = Arc<Mutex<Vec<(T, String)>>>;

fn recorder<T: Clone + Send + 'static>() -> (Seen<T>, impl Fn(&T) + Send + Sync + 'static) {
    let seen: Seen<T> = Arc::default();
    let sink = Arc::clone(&seen);
    let hook = move |event: &T| {
        let thread = std::thread::current().name().unwrap_or("").to_string();
        sink.lock().unwrap().push((event.clone(), thread));
    };
    (seen, hook)
}

/// Waits until `seen` holds at least `count` events, for at most `limit`.
fn wait_for<T>(seen: &Seen<T>, count: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while seen.lock().unwrap().len() < count {
        assert!(
            Instant::now() < deadline,
            "the hook saw fewer than {count} events in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Produces `count` records to `topic` and waits for every report.
fn deliver(producer: &AioProducer, topic: &str, count: usize) {
    let futures: Vec<_> = (0..count)
        .map(|i| {
            producer
                .try_produce(Record::new(topic.to_string()).with_payload(format!("{i}")))
                .unwrap()
        })
        .collect();
    for f in futures {
        f.wait().unwrap();
    }
}

#[test]
fn client_errors_reach_the_error_hook_on_the_hooks_thread() {
    let (seen, hook) = recorder::<ClientError>();
    // Nothing listens there: librdkafka raises connection errors.
    let producer = AioProducer::builder()
        .bootstrap_servers("127.0.0.1:1")
        .on_error(hook)
        .build()
        .unwrap();
    wait_for(&seen, 1, Duration::from_secs(20));
    for (error, thread) in seen.lock().unwrap().iter() {
        assert_eq!(thread, "aioproducer-hooks");
        assert!(!error.is_fatal() && error.producer_goes_on(), "{error:?}");
        assert!(
            matches!(
                error.error.kafka_code(),
                Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown)
            ),
            "{error:?}"
        );
    }
    drop(producer);
}

#[test]
fn a_fatal_error_reaches_the_error_hook_as_fatal() {
    within(Duration::from_secs(120), "a fatal error", || {
        let (seen, hook) = recorder::<ClientError>();
        let cluster = cluster("hook-fatal", 1);
        cluster.mock().request_errors(
            RDKafkaApiKey::InitProducerId,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED; 4],
        );
        let producer = builder(&cluster).on_error(hook).build().unwrap();
        let failed = producer
            .try_produce(Record::new("hook-fatal").with_payload("x"))
            .unwrap()
            .wait()
            .expect_err("fatal");
        assert!(failed.error().is_fatal());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let fatal = seen
                .lock()
                .unwrap()
                .iter()
                .find(|(e, _)| e.is_fatal())
                .cloned();
            if let Some((error, thread)) = fatal {
                assert!(!error.producer_goes_on());
                assert_eq!(Some(&error.error), producer.fatal_error().as_ref());
                assert_eq!(thread, "aioproducer-hooks");
                break;
            }
            assert!(Instant::now() < deadline, "no fatal error reached the hook");
            std::thread::sleep(Duration::from_millis(20));
        }
        run(Duration::from_secs(30), producer.close());
    });
}

#[test]
fn statistics_reach_the_hook_with_brokers_and_the_producers_counters() {
    let (seen, hook) = recorder::<Statistics>();
    let cluster = cluster("hook-stats", 3);
    cluster
        .mock()
        .broker_round_trip_time(1, Duration::from_millis(5))
        .unwrap();
    let producer = builder(&cluster)
        .set("statistics.interval.ms", "100")
        .on_statistics(hook)
        .build()
        .unwrap();
    deliver(&producer, "hook-stats", 1000);
    let delivered_before = seen.lock().unwrap().len();
    wait_for(&seen, delivered_before + 2, Duration::from_secs(20));
    let seen = seen.lock().unwrap();
    let (last, thread) = seen.last().unwrap();
    assert_eq!(thread, "aioproducer-hooks");
    assert!(
        last.json.contains("\"brokers\""),
        "librdkafka's JSON, whole"
    );
    assert_eq!(
        last.producer.delivered, 1000,
        "the producer's counters at that moment"
    );
    assert!(
        last.brokers.iter().any(|b| b.state == "UP"),
        "{:?}",
        last.brokers
    );
    // Some round saw the 5 ms round trips the cluster adds (a round after
    // the last response has none to average).
    let rtt = seen
        .iter()
        .flat_map(|(s, _)| s.brokers.iter().map(|b| b.rtt_avg))
        .max()
        .unwrap_or_default();
    assert!(
        rtt >= Duration::from_millis(4),
        "the largest average round trip: {rtt:?}"
    );
    // Counters only grow from one round to the next.
    for pair in seen.windows(2) {
        assert!(pair[0].0.producer.delivered <= pair[1].0.producer.delivered);
    }
    drop(seen);
    run(Duration::from_secs(30), producer.close());
}

#[test]
fn a_blocked_or_panicking_hook_never_holds_up_a_delivery() {
    let cluster = cluster("hook-slow", 1);
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let producer = builder(&cluster)
        .set("statistics.interval.ms", "10")
        .on_statistics(move |_| {
            match counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed) {
                0 => panic!("a hook's bug"),
                // Blocks the hooks thread for 3 s.
                1 => std::thread::sleep(Duration::from_secs(3)),
                _ => {}
            }
        })
        .build()
        .unwrap();
    // The second call is under way: the hooks thread is blocked.
    let deadline = Instant::now() + Duration::from_secs(10);
    while calls.load(std::sync::atomic::Ordering::Relaxed) < 2 {
        assert!(Instant::now() < deadline, "the hook was not called twice");
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    deliver(&producer, "hook-slow", 1000);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "deliveries waited for the blocked hook: {took:?}"
    );
    // The panic was caught: the hooks ran on after it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while calls.load(std::sync::atomic::Ordering::Relaxed) < 3 {
        assert!(Instant::now() < deadline, "the hooks stopped after a panic");
        std::thread::sleep(Duration::from_millis(20));
    }
    run(Duration::from_secs(30), producer.close());
}

#[test]
fn a_broker_quota_reaches_the_throttle_hook() {
    let Some(bootstrap) = bootstrap() else { return };
    let client = unique_topic("aio-throttled");
    let topic_name = unique_topic("throttled");
    create_topic(&bootstrap, &topic_name, 1, &[]);
    // 16 KiB/s for this client id only.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka");
    let status = std::process::Command::new(script)
        .args([
            "java",
            "org.apache.kafka.tools.ConfigCommand",
            "--bootstrap-server",
            &bootstrap,
            "--alter",
            "--add-config",
            "producer_byte_rate=16384",
            "--entity-type",
            "clients",
            "--entity-name",
            &client,
        ])
        .status()
        .expect("run scripts/kafka java ConfigCommand");
    assert!(status.success(), "setting the quota");
    let (seen, hook) = recorder::<Throttle>();
    let producer = AioProducer::builder()
        .bootstrap_servers(&bootstrap)
        .set("client.id", &client)
        .on_throttle(hook)
        .build()
        .unwrap();
    let topic = Topic::from(topic_name);
    run(Duration::from_secs(120), async {
        let mut futures = Vec::new();
        // 256 KiB against a quota of 16 KiB/s.
        for i in 0..256u32 {
            let record = Record::new(topic.clone()).with_payload(vec![(i % 251) as u8; 1024]);
            futures.push(producer.produce(record).await.unwrap());
        }
        for f in futures {
            f.await.expect("throttled, not failed");
        }
    });
    wait_for(&seen, 1, Duration::from_secs(30));
    let seen = seen.lock().unwrap();
    let (throttle, thread) = seen
        .iter()
        .find(|(t, _)| t.time > Duration::ZERO)
        .expect("a non-zero throttle time");
    assert_eq!(thread, "aioproducer-hooks");
    assert!(throttle.broker_id >= 0, "{throttle:?}");
    assert!(throttle.broker_name.contains(&bootstrap), "{throttle:?}");
    drop(seen);
    futures::executor::block_on(producer.close());
}
