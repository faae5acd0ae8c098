//! In steady state the producer allocates nothing per record: after a
//! warm-up, 100k records are produced and awaited while a counting global
//! allocator sees every Rust heap allocation in the process, on every thread
//! (ours, and librdkafka's background thread running our callbacks).
//!
//! Records are built from static bytes, so the caller allocates nothing
//! either. librdkafka's own C allocations (its message structs) do not go
//! through Rust's allocator and are not counted: they are librdkafka's cost
//! whichever Rust producer is used.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use aioproducer::{DeliveryFuture, Record, Topic};
use bytes::Bytes;
use common::{builder, cluster};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const WINDOW: usize = 10_000;
const MEASURED: usize = 100_000;

/// Produces `n` records keeping `WINDOW` in flight, awaiting each.
fn produce(
    producer: &aioproducer::AioProducer,
    topic: &Topic,
    window: &mut VecDeque<DeliveryFuture>,
    n: usize,
) {
    static PAYLOAD: [u8; 100] = [b'x'; 100];
    for _ in 0..n {
        if window.len() == WINDOW {
            window.pop_front().unwrap().wait().expect("delivered");
        }
        let record = Record::new(topic).with_payload(Bytes::from_static(&PAYLOAD));
        window.push_back(futures::executor::block_on(producer.produce(record)).expect("accepted"));
    }
    while let Some(f) = window.pop_front() {
        f.wait().expect("delivered");
    }
}

/// Counts the allocations `f` makes.
fn count(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    f();
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

// One test per binary: the counter is global, and parallel tests would
// count each other's allocations.
#[test]
fn steady_state_allocates_nothing_per_record() {
    // The counter works (or the zero below would prove nothing).
    assert!(count(|| drop(std::hint::black_box(vec![1u8; 64]))) > 0);

    let cluster = cluster("zero-alloc", 6);
    let producer = builder(&cluster).workers(2).build().unwrap();
    let topic = Topic::from("zero-alloc");
    let mut window = VecDeque::with_capacity(WINDOW);

    // Warm-up: connections, metadata, pool pages, batch and topic caches.
    produce(&producer, &topic, &mut window, 100_000);

    let allocations = count(|| produce(&producer, &topic, &mut window, MEASURED));
    assert_eq!(producer.stats().delivered, 200_000);
    assert_eq!(
        allocations, 0,
        "{allocations} heap allocations while producing {MEASURED} records"
    );
}
