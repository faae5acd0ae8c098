//! A producer that started while the broker was down learns its topics'
//! `max.message.bytes` once the broker is up (issue 8, item 15): a record
//! over the limit then fails alone, and its batch neighbours are delivered.

mod common;

use std::time::Duration;

use aioproducer::{AioProducer, Record};
use common::kafka::{
    bootstrap, create_topic, only_the_oversized_record_fails, unique_topic, Broker,
};
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
            only_the_oversized_record_fails(&producer, &topic);
            run(Duration::from_secs(30), producer.close());
        },
    );
}
