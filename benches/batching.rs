//! A worker's drain: popping tickets from its ring and laying them out as
//! per-(topic, partition) batches, for rounds of 1k and 64k records over six
//! partitions (the hand-over to librdkafka is not included).

use aioproducer::__internals::{BatchKey, Batches, Remote, Ticket};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

fn batching(c: &mut Criterion) {
    let mut group = c.benchmark_group("batching");
    for records in [1_024usize, 65_536] {
        let remote = Remote::new(records);
        let mut batches = Batches::with_capacity(records);
        group.throughput(Throughput::Elements(records as u64));
        group.bench_with_input(
            BenchmarkId::new("drain", records),
            &records,
            |b, &records| {
                b.iter_batched(
                    || {
                        for i in 0..records as u32 {
                            remote.push(Ticket::new(i, 0)).expect("room");
                        }
                    },
                    |()| {
                        let mut handed = 0;
                        remote.drain(records, |ticket| {
                            let key = BatchKey {
                                topic: 0,
                                partition: (ticket.index() % 6) as i32,
                                hashed: false,
                            };
                            batches.push(key, ticket);
                            true
                        });
                        batches.take_each(|_, tickets| {
                            handed += tickets.len();
                            tickets.len()
                        });
                        assert_eq!(handed, records);
                    },
                    BatchSize::PerIteration,
                )
            },
        );
    }
    group.finish();
}

criterion_group!(benches, batching);
criterion_main!(benches);
