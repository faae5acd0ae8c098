//! Acquiring and releasing a delivery context (a slot that holds a record
//! and its outcome): this crate's lock-free pool against the usual ways:
//! `object-pool` 0.6 (a `Mutex<Vec>`), a `Box` per record, and a crossbeam
//! `SegQueue` of boxes. One thread, and two threads at once.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use aioproducer::__internals::{Parity, Pool};
use aioproducer::Record;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam::queue::SegQueue;

/// The baselines' delivery context, the size and shape of ours.
#[derive(Default)]
struct Context {
    record: Option<Record>,
    outcome: Option<(i32, i64, i64)>,
    waker: futures::task::AtomicWaker,
}

static PAYLOAD: &[u8] = b"payload";

impl Context {
    /// What a delivery does to a context: fill it, empty it (as ours does on
    /// occupy, complete and release).
    fn use_once(&mut self) {
        self.record = Some(record());
        self.outcome = Some((0, 42, 7));
        self.outcome = std::hint::black_box(None);
        drop(self.record.take());
        drop(self.waker.take());
    }
}

fn record() -> Record {
    Record::new("pool").with_payload(Bytes::from_static(PAYLOAD))
}

trait Contexts: Sync {
    /// Acquires a context, stores a record in it, takes it out, releases it.
    fn cycle(&self);
}

struct Ours(Pool);
impl Contexts for Ours {
    fn cycle(&self) {
        let index = self.0.acquire();
        let slot = self.0.slot(index);
        // SAFETY: acquired and never published; released below.
        unsafe {
            slot.occupy(record(), None, Parity::from_odd(false));
            drop(slot.unoccupy());
            self.0.release(index);
        }
    }
}

struct ObjectPool(object_pool::Pool<Context>);
impl Contexts for ObjectPool {
    fn cycle(&self) {
        self.0.pull(Context::default).use_once();
    }
}

struct BoxEach;
impl Contexts for BoxEach {
    fn cycle(&self) {
        // One allocation and one free per record, as a naive design does.
        let mut context = std::hint::black_box(Box::new(Context::default()));
        context.use_once();
    }
}

struct Segments(SegQueue<Box<Context>>);
impl Contexts for Segments {
    fn cycle(&self) {
        let mut context = self.0.pop().unwrap_or_default();
        context.use_once();
        self.0.push(context);
    }
}

fn timed(contexts: &dyn Contexts, threads: usize, iters: u64) -> Duration {
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters / threads as u64 {
                        contexts.cycle();
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap()
    })
}

fn pool(c: &mut Criterion) {
    let candidates: Vec<(&str, Arc<dyn Contexts + Send>)> = vec![
        ("aioproducer", Arc::new(Ours(Pool::new()))),
        (
            "object-pool",
            Arc::new(ObjectPool(object_pool::Pool::new(1024, Context::default))),
        ),
        ("box", Arc::new(BoxEach)),
        ("segqueue", Arc::new(Segments(SegQueue::new()))),
    ];
    let mut group = c.benchmark_group("pool");
    group.throughput(Throughput::Elements(1));
    for threads in [1usize, 2] {
        for (name, contexts) in &candidates {
            group.bench_with_input(BenchmarkId::new(*name, threads), &threads, |b, &threads| {
                b.iter_custom(|iters| timed(contexts.as_ref(), threads, iters))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, pool);
criterion_main!(benches);
