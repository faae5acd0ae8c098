//! The cluster's metadata (`metadata`, `list_topics`, `partitions`,
//! `cluster_id`): what the embedded cluster and the real broker say, asked
//! without blocking the caller's executor; bad names and a closed producer
//! fail with typed errors.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aioproducer::rdkafka::types::RDKafkaErrorCode;
use aioproducer::{AioProducer, EmbeddedCluster, Error};
use common::kafka::{bootstrap, create_topic, unique_topic};

#[test]
fn the_embedded_clusters_brokers_topics_and_leaders_are_read() {
    let cluster = EmbeddedCluster::new(3).unwrap();
    cluster.create_topic("orders", 5).unwrap();
    cluster.create_topic("payments", 2).unwrap();
    let producer = common::builder(&cluster).build().unwrap();
    futures::executor::block_on(async {
        let metadata = producer
            .metadata(None, Duration::from_secs(10))
            .await
            .unwrap();
        let mut brokers: Vec<i32> = metadata.brokers.iter().map(|b| b.id).collect();
        brokers.sort_unstable();
        assert_eq!(brokers, [1, 2, 3]);
        let orders = metadata.topics.iter().find(|t| t.name == "orders").unwrap();
        assert_eq!(
            orders.partitions.iter().map(|p| p.id).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        for p in &orders.partitions {
            let leader = p.leader.expect("a leader");
            assert!(brokers.contains(&leader), "{p:?}");
            assert!(
                p.replicas.contains(&leader) && p.in_sync.contains(&leader),
                "{p:?}"
            );
            assert_eq!(p.error, None);
        }

        let mut names: Vec<String> = producer
            .list_topics()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        names.sort();
        assert_eq!(names, ["orders", "payments"]);
        assert_eq!(producer.partitions("payments").await.unwrap().len(), 2);
    });
}

#[test]
fn a_metadata_request_never_blocks_the_callers_executor() {
    // A listener that takes connections and never answers: the request
    // waits out its whole timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let producer = AioProducer::builder()
        .bootstrap_servers(silent.local_addr().unwrap().to_string())
        .build()
        .unwrap();
    let ticks = Arc::new(AtomicUsize::new(0));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let started = Instant::now();
    let result = runtime.block_on(async {
        let ticker = {
            let ticks = Arc::clone(&ticks);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let result = producer.metadata(None, Duration::from_secs(1)).await;
        ticker.abort();
        result
    });
    let waited = started.elapsed();
    let error = result.expect_err("nobody answers");
    // librdkafka's answer when no broker was usable within the timeout.
    assert_eq!(
        error.kafka_code(),
        Some(RDKafkaErrorCode::BrokerTransportFailure),
        "{error}"
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    // On one executor thread: the ticker ran while the request waited.
    let ticks = ticks.load(Ordering::Relaxed);
    assert!(
        ticks >= 50,
        "the executor ticked {ticks} times in {waited:?}"
    );
}

#[test]
fn bad_names_and_a_closed_producer_fail_with_typed_errors() {
    let cluster = common::cluster("orders", 1);
    let producer = common::builder(&cluster).build().unwrap();
    futures::executor::block_on(async {
        let error = producer.partitions("bad name!").await.unwrap_err();
        assert!(matches!(error, Error::InvalidTopic { .. }), "{error}");
        let error = producer
            .metadata(Some(""), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::InvalidTopic { .. }), "{error}");
        producer.close().await;
        let error = producer.list_topics().await.unwrap_err();
        assert_eq!(error, Error::Closed);
    });
}

#[test]
fn the_real_brokers_id_topics_and_unknown_topics_are_read() {
    let Some(bootstrap) = bootstrap() else { return };
    let name = unique_topic("metadata");
    create_topic(&bootstrap, &name, 4, &[]);
    let producer = AioProducer::builder()
        .bootstrap_servers(&bootstrap)
        .build()
        .unwrap();
    futures::executor::block_on(async {
        let partitions = producer.partitions(&name).await.unwrap();
        assert_eq!(
            partitions.iter().map(|p| p.id).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        let metadata = producer
            .metadata(None, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(metadata.brokers.len(), 1);
        let broker = metadata.brokers[0].id;
        for p in &partitions {
            assert_eq!(
                (p.leader, &p.replicas[..]),
                (Some(broker), &[broker][..]),
                "{p:?}"
            );
        }
        assert_eq!(metadata.controller_id, Some(broker));
        assert!(metadata.topics.iter().any(|t| t.name == name));

        let id = producer.cluster_id().await.unwrap();
        assert_eq!(Some(id.as_str()), metadata.cluster_id.as_deref());
        if let Some(state) = std::env::var_os("KAFKA_STATE") {
            // The id scripts/kafka formatted the storage with.
            let properties =
                std::fs::read_to_string(std::path::Path::new(&state).join("data/meta.properties"))
                    .unwrap();
            assert!(
                properties.contains(&format!("cluster.id={id}")),
                "{properties}"
            );
        }

        // The broker runs with auto.create.topics.enable=false.
        let missing = unique_topic("never-created");
        let error = producer.partitions(&missing).await.unwrap_err();
        assert_eq!(
            error.kafka_code(),
            Some(RDKafkaErrorCode::UnknownTopicOrPartition),
            "{error}"
        );
        producer.close().await;
    });
}
