//! Real broker killed with `kill -9` mid-stream and restarted a few seconds
//! later: every record reported delivered is in the log exactly once, no
//! record is in the log twice (idempotence), every other future fails
//! within `message.timeout.ms` (none hangs), a failure that says "never
//! persisted" is really absent, and the pool drains to zero.
//!
//! The test starts a broker of its own (`scripts/kafka` with a private
//! state directory), so killing it disturbs no other test.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use aioproducer::{AioProducer, Record};
use common::kafka::{bootstrap, create_topic, unique_topic, Broker};
use common::records::{check_outcomes, Twice};
use common::{consume_at_least, run};

const RECORDS: usize = 60_000;
const RATE_PER_SEC: usize = 15_000;
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn acknowledged_records_survive_a_broker_killed_and_restarted_mid_stream() {
    if bootstrap().is_none() {
        return; // broker tests are off (said on stderr)
    }
    let (broker, bootstrap) = Broker::start();
    let topic = unique_topic("restart");
    create_topic(&bootstrap, &topic, 6, &[]);
    let producer = AioProducer::builder()
        .bootstrap_servers(&bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set(
            "message.timeout.ms",
            MESSAGE_TIMEOUT.as_millis().to_string(),
        )
        .build()
        .unwrap();
    // Connected and warmed up before the stream starts.
    futures::executor::block_on(producer.send(Record::new(topic.clone()).with_payload("warm-up")))
        .unwrap();

    let started = Instant::now();
    let outcomes = thread::scope(|s| {
        let stream = s.spawn(|| {
            let mut futures = Vec::with_capacity(RECORDS);
            for i in 0..RECORDS {
                let due = started + Duration::from_secs_f64(i as f64 / RATE_PER_SEC as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
                let record = Record::new(topic.clone())
                    .with_key((i % 97).to_string())
                    .with_payload(i.to_string());
                futures
                    .push(futures::executor::block_on(producer.produce(record)).expect("accepted"));
            }
            futures
        });
        thread::sleep(Duration::from_secs(1));
        broker.kill();
        let killed_at = Instant::now();
        thread::sleep(Duration::from_secs(3));
        broker.restart();
        eprintln!("broker down for {:?}", killed_at.elapsed());
        let futures = stream.join().unwrap();
        run(MESSAGE_TIMEOUT + Duration::from_secs(60), async move {
            let mut outcomes = Vec::with_capacity(RECORDS);
            for f in futures {
                outcomes.push(f.await);
            }
            outcomes
        })
    });

    let stats = producer.stats();
    assert_eq!(stats.in_flight, 0);
    assert_eq!(stats.pool.in_use, 0, "every slot back in the pool");
    let delivered = outcomes.iter().filter(|o| o.is_ok()).count();
    assert!(
        delivered > RECORDS / 2,
        "most records survive a short outage"
    );
    let stored = consume_at_least(&bootstrap, &topic, 6, delivered + 1);
    let tally = check_outcomes(&outcomes, &stored, Twice::Never);
    eprintln!("{tally:?}");
    futures::executor::block_on(producer.close());
}
