//! 100k records of 100 bytes to the embedded cluster, every delivery
//! awaited: this crate against rust-rdkafka's `FutureProducer` (10k in
//! flight), hand-written `BaseProducer` loops (a poll thread; one thread
//! with `poll(0)` inline), and librdkafka's ceiling with no futures
//! (`rd_kafka_produce_batch`, 1000 records per call, each call to one
//! partition), in one group so the ratios come from one run. The clients are the perf tool's
//! (`examples/perf/clients.rs`), with the same settings for all: acks=all,
//! idempotence, librdkafka's default linger.

#[path = "../examples/perf/clients.rs"]
mod clients;
#[path = "../examples/perf/probe.rs"]
mod probe;

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use aioproducer::rdkafka::producer::FutureProducer;
use aioproducer::rdkafka::ClientConfig;
use aioproducer::{AioProducer, EmbeddedCluster};
use bytes::Bytes;
use clients::{BaseClient, Job, Pacing, Polling};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const RECORDS: u64 = 100_000;

fn end_to_end(c: &mut Criterion) {
    let cluster = EmbeddedCluster::new(1).unwrap();
    cluster.create_topic("e2e", 6).unwrap();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("acks", "all")
        .set("enable.idempotence", "true");
    let start = Instant::now();
    let ours = AioProducer::builder()
        .bootstrap_servers(cluster.bootstrap_servers())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .build()
        .unwrap();
    let future: FutureProducer = config.create().unwrap();
    let base = BaseClient::new(&config, "e2e", RECORDS, Polling::Thread).unwrap();
    let inline = BaseClient::new(&config, "e2e", RECORDS, Polling::Inline).unwrap();
    let progress = AtomicU64::new(0);
    let job = Job {
        topic: "e2e",
        payload: Bytes::from_static(&[b'x'; 100]),
        keys: &[],
        count: RECORDS,
        pacing: Pacing {
            start,
            interval: None,
        },
        progress: &progress,
    };

    let mut group = c.benchmark_group("end_to_end");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15))
        .throughput(Throughput::Elements(RECORDS));
    let check = |tally: probe::Tally| assert_eq!((tally.reported, tally.failed), (RECORDS, 0));
    // Windows are made once, outside the timed runs (as the perf tool does).
    let mut ours_window = probe::Window::new(65_536);
    let mut future_window = probe::Window::new(10_000);
    group.bench_function(BenchmarkId::new("aioproducer", RECORDS), |b| {
        b.iter(|| check(clients::run_ours(&ours, &job, &mut ours_window)))
    });
    group.bench_function(BenchmarkId::new("future-producer", RECORDS), |b| {
        b.iter(|| check(clients::run_future(&future, &job, &mut future_window)))
    });
    group.bench_function(BenchmarkId::new("base-producer", RECORDS), |b| {
        b.iter(|| check(clients::run_base(&base, &job)))
    });
    group.bench_function(BenchmarkId::new("base-producer-inline", RECORDS), |b| {
        b.iter(|| check(clients::run_base(&inline, &job)))
    });
    group.bench_function(BenchmarkId::new("librdkafka-batch", RECORDS), |b| {
        b.iter(|| check(clients::run_batch(&base, &job, Some(6))))
    });
    group.finish();
    futures::executor::block_on(ours.close());
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);
