//! The clients the perf tool and the end-to-end bench drive with the same
//! loop: this crate, rust-rdkafka's `FutureProducer`, and a hand-written
//! rust-rdkafka `BaseProducer` loop with a poll thread.
//!
//! Every client gets the same librdkafka properties, the same payload (one
//! shared buffer) and the same pacing; each runs with its documented or
//! best honest usage.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use aioproducer::rdkafka::error::KafkaError;
use aioproducer::rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, FutureProducer, FutureRecord, Producer,
    ProducerContext,
};
use aioproducer::rdkafka::types::RDKafkaErrorCode;
use aioproducer::rdkafka::{ClientConfig, ClientContext};
use aioproducer::{AioProducer, Record, Topic};
use bytes::Bytes;

use crate::probe::{nanos_since, Tally, Window};

/// When each record is due: now (as fast as possible), or on a fixed
/// schedule (a rate), so that a stall delays every record behind it.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    pub start: Instant,
    /// Nanoseconds between records of one producing thread.
    pub interval: Option<f64>,
}

impl Pacing {
    /// Waits until record `i` is due; returns its due time.
    ///
    /// The wait sleeps while the record is far off and yields the CPU while
    /// it is near, so on a small machine the producing thread does not take
    /// a core away from the threads that deliver (the client's and, on the
    /// embedded cluster, the broker's).
    pub fn due(&self, i: u64) -> u64 {
        /// Far enough ahead to sleep: more than a sleep's usual overshoot.
        const SLEEP_ABOVE: u64 = 200_000;
        match self.interval {
            None => nanos_since(self.start),
            Some(ns) => {
                let due = (i as f64 * ns) as u64;
                loop {
                    let ahead = due.saturating_sub(nanos_since(self.start));
                    match ahead {
                        0 => return due,
                        a if a > SLEEP_ABOVE => {
                            thread::sleep(Duration::from_nanos(a - SLEEP_ABOVE / 2))
                        }
                        _ => thread::yield_now(),
                    }
                }
            }
        }
    }
}

/// One run's shared settings.
pub struct Job<'a> {
    pub topic: &'a str,
    pub payload: Bytes,
    pub count: u64,
    pub pacing: Pacing,
    /// Records produced so far (for a progress display).
    pub progress: &'a AtomicU64,
}

/// This crate: `produce(record).await` per record in one task (run by a
/// blocking executor on this thread, as a plain-thread application would),
/// and the futures kept in a window. The window's waits block the thread,
/// which is the task's only job.
pub fn run_ours(
    producer: &AioProducer,
    job: &Job<'_>,
    window: &mut Window<aioproducer::DeliveryFuture>,
) -> Tally {
    let topic = Topic::new(job.topic);
    let mut tally = Tally::with_capacity(job.count as usize);
    window.begin(job.pacing.start);
    futures::executor::block_on(async {
        for i in 0..job.count {
            window.make_room(i, &mut tally);
            let due = job.pacing.due(i);
            let record = Record::new(&topic).with_payload(job.payload.clone());
            match producer.produce(record).await {
                Ok(future) => window.insert(i, future, due, &mut tally),
                Err(refused) => {
                    tally.record(due, nanos_since(job.pacing.start), Err::<(), _>(refused))
                }
            }
            if i % 4096 == 0 {
                job.progress.fetch_add(4096, Ordering::Relaxed);
            }
        }
    });
    window.drain(&mut tally);
    tally
}

/// rust-rdkafka's delivery future, with failures flattened into one error.
pub struct FutureDelivery(aioproducer::rdkafka::producer::DeliveryFuture);

impl std::future::Future for FutureDelivery {
    type Output = Result<(), String>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|outcome| match outcome {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => Err(e.to_string()),
                Err(canceled) => Err(canceled.to_string()),
            })
    }
}

/// rust-rdkafka's `FutureProducer`: `send_result`, the futures kept in a
/// window (10k in flight by default). With librdkafka's queue larger than the
/// window the queue is never full, so this is `send` without its sleep.
pub fn run_future(
    producer: &FutureProducer,
    job: &Job<'_>,
    window: &mut Window<FutureDelivery>,
) -> Tally {
    let mut tally = Tally::with_capacity(job.count as usize);
    window.begin(job.pacing.start);
    for i in 0..job.count {
        window.make_room(i, &mut tally);
        let due = job.pacing.due(i);
        let mut record = FutureRecord::<(), [u8]>::to(job.topic).payload(&job.payload[..]);
        loop {
            match producer.send_result(record) {
                Ok(future) => {
                    window.insert(i, FutureDelivery(future), due, &mut tally);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    thread::yield_now();
                }
                Err((e, _)) => {
                    tally.record(due, nanos_since(job.pacing.start), Err::<(), _>(e));
                    break;
                }
            }
        }
        if i % 4096 == 0 {
            job.progress.fetch_add(4096, Ordering::Relaxed);
        }
    }
    window.drain(&mut tally);
    let _ = producer.flush(Duration::from_secs(60));
    tally
}

/// The `BaseProducer` peer's delivery callback: stamps each record's
/// completion time (its index travels as the delivery opaque; an index past
/// the end, the warm-up record's, is counted but not stamped).
pub struct Stamps {
    origin: Instant,
    done: Vec<AtomicU64>,
    failed: AtomicU64,
    reported: AtomicU64,
}

impl ClientContext for Stamps {}

impl ProducerContext for Stamps {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        if let Some(done) = self.done.get(index) {
            done.store(nanos_since(self.origin), Ordering::Relaxed);
        }
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.reported.fetch_add(1, Ordering::Release);
    }
}

/// A `BaseProducer` with its poll thread, as rust-rdkafka's documentation
/// shows, for runs of up to `capacity` records.
pub struct BaseClient {
    producer: Arc<BaseProducer<Stamps>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    poller: Option<thread::JoinHandle<()>>,
}

impl BaseClient {
    /// Creates the producer and its poll thread, and sends one warm-up
    /// record through them (connections, metadata, producer id) before any
    /// record is timed, as the other clients do.
    pub fn new(config: &ClientConfig, topic: &str, capacity: u64) -> Result<Self, KafkaError> {
        let stamps = Stamps {
            origin: Instant::now(),
            done: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            failed: AtomicU64::new(0),
            reported: AtomicU64::new(0),
        };
        let producer: Arc<BaseProducer<Stamps>> = Arc::new(config.create_with_context(stamps)?);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let poller = {
            let (producer, stop) = (Arc::clone(&producer), Arc::clone(&stop));
            thread::Builder::new()
                .name("base-producer-poll".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        producer.poll(Duration::from_millis(100));
                    }
                })
                .expect("poll thread")
        };
        let client = Self {
            producer,
            stop,
            poller: Some(poller),
        };
        client.warm_up(topic, capacity as usize)?;
        Ok(client)
    }

    fn warm_up(&self, topic: &str, index: usize) -> Result<(), KafkaError> {
        let context = self.producer.context();
        let record = BaseRecord::<(), str, usize>::with_opaque_to(topic, index).payload("warm-up");
        self.producer.send(record).map_err(|(e, _)| e)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while context.reported.load(Ordering::Acquire) == 0 {
            if Instant::now() > deadline {
                return Err(KafkaError::MessageProduction(
                    RDKafkaErrorCode::MessageTimedOut,
                ));
            }
            thread::sleep(Duration::from_millis(1));
        }
        match context.failed.load(Ordering::Relaxed) {
            0 => Ok(()),
            _ => Err(KafkaError::MessageProduction(RDKafkaErrorCode::Fail)),
        }
    }
}

impl Drop for BaseClient {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(poller) = self.poller.take() {
            let _ = poller.join();
        }
    }
}

/// A hand-written `BaseProducer` loop: `send` in a loop (yielding and
/// retrying when librdkafka's queue is full) while the poll thread serves
/// the delivery reports.
pub fn run_base(client: &BaseClient, job: &Job<'_>) -> Tally {
    let producer = &client.producer;
    let context = producer.context();
    let reported_before = context.reported.load(Ordering::Acquire);
    // The callback stamps from the client's origin, the schedule from the
    // job's start; either may come first.
    let origin_later = (context.origin)
        .saturating_duration_since(job.pacing.start)
        .as_nanos() as u64;
    let start_later = (job.pacing.start)
        .saturating_duration_since(context.origin)
        .as_nanos() as u64;
    let failed_before = context.failed.load(Ordering::Relaxed);
    let mut due = Vec::with_capacity(job.count as usize);
    for i in 0..job.count {
        due.push(job.pacing.due(i));
        let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(job.topic, i as usize)
            .payload(&job.payload[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    thread::yield_now();
                }
                Err((e, _)) => panic!("BaseProducer::send: {e}"),
            }
        }
        if i % 4096 == 0 {
            job.progress.fetch_add(4096, Ordering::Relaxed);
        }
    }
    while context.reported.load(Ordering::Acquire) - reported_before < job.count {
        thread::sleep(Duration::from_micros(200));
    }
    let mut tally = Tally::with_capacity(job.count as usize);
    tally.latencies = (0..job.count as usize)
        .map(|i| {
            (context.done[i].load(Ordering::Relaxed) + origin_later)
                .saturating_sub(start_later + due[i])
        })
        .collect();
    tally.failed = context.failed.load(Ordering::Relaxed) - failed_before;
    if tally.failed > 0 {
        tally.first_error = Some("delivery failed (see librdkafka's log)".into());
    }
    tally
}
