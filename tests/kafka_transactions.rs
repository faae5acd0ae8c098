//! Real broker transactions: committed records are visible to a
//! read_committed consumer; records aborted after the broker acknowledged
//! them are in the log but never visible.

mod common;

use std::time::Duration;

use aioproducer::{AioProducer, Record};
use common::kafka::{bootstrap, create_topic, unique_topic};
use common::{by_payload, consume_all, run};

const TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn commit_is_visible_and_abort_never_is() {
    let Some(bootstrap) = bootstrap() else { return };
    let topic = unique_topic("txn");
    create_topic(&bootstrap, &topic, 3, &[]);
    let producer = AioProducer::builder()
        .bootstrap_servers(&bootstrap)
        .set("transactional.id", unique_topic("txn-id"))
        .batch_size(10_000)
        .buffer_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    run(Duration::from_secs(120), async {
        let send_all = |tag: &'static str| {
            let (producer, topic) = (producer.clone(), topic.clone());
            async move {
                let mut futures = Vec::new();
                for i in 0..1000 {
                    let r = Record::new(topic.clone())
                        .with_key(i.to_string())
                        .with_payload(format!("{tag}-{i}"));
                    futures.push(producer.produce(r).await.unwrap());
                }
                futures
            }
        };
        producer.init_transactions(TIMEOUT).await.unwrap();

        producer.begin_transaction().await.unwrap();
        let committed = send_all("committed").await;
        producer.commit_transaction(TIMEOUT).await.unwrap(); // hands over the held batch
        for f in committed {
            f.await.expect("delivered");
        }

        producer.begin_transaction().await.unwrap();
        let aborted = send_all("aborted").await;
        producer.flush().await; // acknowledged by the broker...
        for f in aborted {
            f.await.expect("acknowledged");
        }
        producer.abort_transaction(TIMEOUT).await.unwrap(); // ...then aborted
        producer.close().await;
    });
    let visible = consume_all(&bootstrap, &topic, 3, 1000);
    let payloads = by_payload(&visible);
    assert!(
        payloads.keys().all(|p| p.starts_with(b"committed")),
        "aborted records are never visible"
    );
    assert_eq!(payloads.len(), 1000);
}
