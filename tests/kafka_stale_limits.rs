//! A producer that started while the broker was down learns its topics'
//! `max.message.bytes` once the broker is up (issue 8, item 15): a record
//! over the limit then fails alone, and its batch neighbours are delivered.

mod common;

use std::time::Duration;

use aioproducer::{AioProducer, Error, Record};
use common::kafka::{bootstrap, create_topic, unique_topic, Broker};
use common::{run, within};

#[test]
fn limits_are_learnt_after_the_broker_comes_up() {
    if bootstrap().is_none() {
        return; // broker tests are off (said on stderr)
    }
    within(
        Duration::from_secs(240),
        "limits after a late broker",
        || {
            let (broker, bootstrap) = Broker::start();
            let topic = unique_topic("late-limit");
            create_topic(&bootstrap, &topic, 1, &[("max.message.bytes", "10000")]);
            broker.kill();
            let producer = AioProducer::builder()
                .bootstrap_servers(&bootstrap)
                .batch_size(5)
                .buffer_timeout(Duration::from_millis(200))
                .set("reconnect.backoff.max.ms", "500")
                .build()
                .unwrap();
            let first = producer
                .try_produce(Record::new(topic.clone()).with_payload("while down"))
                .expect("room");
            std::thread::sleep(Duration::from_secs(2));
            broker.restart();
            first.wait().expect("delivered once the broker is up");
            // Give the lookup its moment (it runs off the hand-over path, and
            // retries each second while no controller is known).
            std::thread::sleep(Duration::from_secs(3));
            let outcomes = run(Duration::from_secs(60), async {
                let mut futures = Vec::new();
                for i in 0..5 {
                    let record = if i == 2 {
                        Record::new(topic.clone()).with_payload(vec![b'x'; 20_000])
                    } else {
                        Record::new(topic.clone()).with_payload(format!("neighbour-{i}"))
                    };
                    futures.push(producer.produce(record).await.unwrap());
                }
                let mut outcomes = Vec::new();
                for f in futures {
                    outcomes.push(f.await);
                }
                outcomes
            });
            for (i, outcome) in outcomes.iter().enumerate() {
                if i == 2 {
                    let failure = outcome.as_ref().expect_err("too large for the topic");
                    assert!(
                        matches!(
                            failure.error(),
                            Error::RecordTooLargeForTopic { max: 10_000, .. }
                        ),
                        "{failure}"
                    );
                } else {
                    assert!(outcome.is_ok(), "neighbour {i}: {outcome:?}");
                }
            }
            run(Duration::from_secs(30), producer.close());
        },
    );
}
