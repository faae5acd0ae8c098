//! No broker at all: every future fails within `message.timeout.ms` with a
//! clear, retriable error that hands the record back, and `close` returns.
//! (Needs no broker, so it always runs.)

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use aioproducer::rdkafka::types::RDKafkaErrorCode;
use aioproducer::{AioProducer, Record};
use common::run;

#[test]
fn futures_fail_after_message_timeout_when_no_broker_answers_and_close_returns() {
    // A loopback port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let timeout = Duration::from_secs(3);
    let producer = AioProducer::builder()
        .bootstrap_servers(format!("127.0.0.1:{port}"))
        .set("message.timeout.ms", timeout.as_millis().to_string())
        .build()
        .unwrap();
    let started = Instant::now();
    run(Duration::from_secs(60), async {
        let mut futures = Vec::new();
        for i in 0..100 {
            let record = Record::new("nowhere")
                .with_key(i.to_string())
                .with_payload("x");
            futures.push(producer.produce(record).await.expect("accepted"));
        }
        for f in futures {
            let failure = f.await.expect_err("no broker, no delivery");
            assert_eq!(
                failure.error().kafka_code(),
                Some(RDKafkaErrorCode::MessageTimedOut),
                "{failure}"
            );
            assert!(failure.error().is_retriable());
            assert!(
                !failure.possibly_persisted(),
                "never sent, so never persisted"
            );
            assert_eq!(failure.record().topic().as_str(), "nowhere");
            assert!(failure.to_string().contains("timed out"), "{failure}");
        }
        let waited = started.elapsed();
        assert!(
            waited >= timeout && waited < timeout * 4,
            "failed after {waited:?}"
        );
        producer.close().await;
    });
    let stats = producer.stats();
    assert_eq!(
        (stats.failed, stats.in_flight, stats.pool.in_use),
        (100, 0, 0)
    );
}
