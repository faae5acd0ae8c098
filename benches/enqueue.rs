//! The cost of handing a record over, up to the returned future: `produce`
//! (awaited with a blocking executor) and `try_produce`, from one and from
//! two caller threads at once. The workers drain meanwhile, as in use; the
//! deliveries are awaited between timed chunks, outside the timing.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use aioproducer::{AioProducer, DeliveryFuture, EmbeddedCluster, Record, Topic};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Records timed per chunk, per thread (well under the rings and the pool).
const CHUNK: u64 = 4_000;

static PAYLOAD: [u8; 100] = [b'x'; 100];

fn record(topic: &Topic) -> Record {
    Record::new(topic).with_payload(Bytes::from_static(&PAYLOAD))
}

/// Times `iters` calls of `enqueue` spread over `threads` threads.
fn timed(
    producer: &AioProducer,
    topic: &Topic,
    threads: u64,
    iters: u64,
    enqueue: fn(&AioProducer, Record) -> DeliveryFuture,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let per_thread = left.div_ceil(threads).min(CHUNK);
        let barrier = Barrier::new(threads as usize);
        let elapsed: Vec<(Duration, Vec<DeliveryFuture>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        let mut futures = Vec::with_capacity(per_thread as usize);
                        barrier.wait();
                        let start = Instant::now();
                        for _ in 0..per_thread {
                            futures.push(enqueue(producer, record(topic)));
                        }
                        (start.elapsed(), futures)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        total += elapsed.iter().map(|(d, _)| *d).max().unwrap_or_default();
        for (_, futures) in elapsed {
            for f in futures {
                f.wait().expect("delivered");
            }
        }
        left = left.saturating_sub(per_thread * threads);
    }
    total
}

fn enqueue(c: &mut Criterion) {
    let cluster = EmbeddedCluster::new(1).unwrap();
    cluster.create_topic("enqueue", 6).unwrap();
    let producer = AioProducer::builder()
        .bootstrap_servers(cluster.bootstrap_servers())
        .ring_capacity(16_384)
        .build()
        .unwrap();
    let topic = Topic::from("enqueue");
    futures::executor::block_on(producer.send(record(&topic))).unwrap();

    let mut group = c.benchmark_group("enqueue");
    group.throughput(Throughput::Elements(1));
    for threads in [1u64, 2] {
        group.bench_with_input(
            BenchmarkId::new("produce", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| {
                    timed(&producer, &topic, threads, iters, |p, r| {
                        futures::executor::block_on(p.produce(r)).expect("accepted")
                    })
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("try_produce", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| {
                    timed(&producer, &topic, threads, iters, |p, mut r| loop {
                        match p.try_produce(r) {
                            Ok(future) => break future,
                            Err(full) => {
                                r = full.into_record();
                                std::thread::yield_now();
                            }
                        }
                    })
                })
            },
        );
    }
    group.finish();
    futures::executor::block_on(producer.close());
}

criterion_group!(benches, enqueue);
criterion_main!(benches);
