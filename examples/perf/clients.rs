//! The clients the perf tool and the end-to-end bench drive with the same
//! loop: this crate, rust-rdkafka's `FutureProducer`, hand-written
//! rust-rdkafka `BaseProducer` loops (with a poll thread, and on one thread
//! with `poll(0)` inline), and librdkafka's own ceiling:
//! `rd_kafka_produce_batch` in batches of 1000, no futures, no copy.
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

use crate::probe::{nanos_since, Tally, Window, SAMPLE_EVERY, UNTIMED};

/// When each record is due: now (as fast as possible), or on a fixed
/// schedule (a rate), so that a stall delays every record behind it.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    pub start: Instant,
    /// Nanoseconds between records of one producing thread.
    pub interval: Option<f64>,
}

impl Job<'_> {
    /// Record `i`'s key, if the job has keys.
    pub fn key(&self, i: u64) -> Option<&Bytes> {
        (!self.keys.is_empty()).then(|| &self.keys[(i % self.keys.len() as u64) as usize])
    }
}

impl Pacing {
    /// Whether record `i` is timed (module docs of `probe.rs`).
    pub fn timed(&self, i: u64) -> bool {
        self.interval.is_some() || i % SAMPLE_EVERY == 0
    }

    /// Waits until record `i` is due; returns its due time, or [`UNTIMED`]
    /// for a record not timed (as fast as possible, all but one in
    /// [`SAMPLE_EVERY`]: no clock read).
    ///
    /// The wait sleeps while the record is far off and yields the CPU while
    /// it is near, so on a small machine the producing thread does not take
    /// a core away from the threads that deliver (the client's and, on the
    /// embedded cluster, the broker's).
    pub fn due(&self, i: u64) -> u64 {
        /// Far enough ahead to sleep: more than a sleep's usual overshoot.
        const SLEEP_ABOVE: u64 = 200_000;
        match self.interval {
            None if !self.timed(i) => UNTIMED,
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
    /// Keys used in turn (record `i` gets `keys[i % len]`); none when
    /// empty.
    pub keys: &'a [Bytes],
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
            // Built in one expression: a record reassigned after it is made
            // costs a move of its 152 bytes.
            let record = match job.key(i) {
                None => Record::new(&topic).with_payload(job.payload.clone()),
                Some(key) => Record::new(&topic)
                    .with_payload(job.payload.clone())
                    .with_key(key.clone()),
            };
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
        let mut record = FutureRecord::<[u8], [u8]>::to(job.topic).payload(&job.payload[..]);
        if let Some(key) = job.key(i) {
            record = record.key(&key[..]);
        }
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
            // Relaxed: set by `BaseClient::expect` before the send, which
            // librdkafka's queue locks order before this call.
            if done.load(Ordering::Relaxed) != UNTIMED {
                done.store(nanos_since(self.origin), Ordering::Relaxed);
            }
        }
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.reported.fetch_add(1, Ordering::Release);
    }
}

/// Who serves a `BaseProducer`'s delivery reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polling {
    /// A poll thread, as rust-rdkafka's documentation shows.
    Thread,
    /// The producing thread itself, `poll(0)` after each call: the
    /// strongest single-thread loop (no thread hop, no wake-up).
    Inline,
}

/// A `BaseProducer` with its reports served as `polling` says, for runs
/// of up to `capacity` records.
pub struct BaseClient {
    producer: Arc<BaseProducer<Stamps>>,
    polling: Polling,
    stop: Arc<std::sync::atomic::AtomicBool>,
    poller: Option<thread::JoinHandle<()>>,
}

impl BaseClient {
    /// Creates the producer (and its poll thread, with [`Polling::Thread`]),
    /// and sends one warm-up record through it (connections, metadata,
    /// producer id) before any record is timed, as the other clients do.
    pub fn new(
        config: &ClientConfig,
        topic: &str,
        capacity: u64,
        polling: Polling,
    ) -> Result<Self, KafkaError> {
        let stamps = Stamps {
            origin: Instant::now(),
            done: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            failed: AtomicU64::new(0),
            reported: AtomicU64::new(0),
        };
        let producer: Arc<BaseProducer<Stamps>> = Arc::new(config.create_with_context(stamps)?);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let poller = (polling == Polling::Thread).then(|| {
            let (producer, stop) = (Arc::clone(&producer), Arc::clone(&stop));
            thread::Builder::new()
                .name("base-producer-poll".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        producer.poll(Duration::from_millis(100));
                    }
                })
                .expect("poll thread")
        });
        let client = Self {
            producer,
            polling,
            stop,
            poller,
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
            self.wait_a_moment();
        }
        match context.failed.load(Ordering::Relaxed) {
            0 => Ok(()),
            _ => Err(KafkaError::MessageProduction(RDKafkaErrorCode::Fail)),
        }
    }
}

impl BaseClient {
    /// Serves reports inline, if that is this client's way.
    fn poll_inline(&self) {
        if self.polling == Polling::Inline {
            self.producer.poll(Duration::ZERO);
        }
    }

    /// Waits briefly for reports: polling for them inline, else sleeping
    /// while the poll thread serves them.
    fn wait_a_moment(&self) {
        match self.polling {
            Polling::Inline => {
                self.producer.poll(Duration::from_millis(1));
            }
            Polling::Thread => thread::sleep(Duration::from_micros(200)),
        }
    }

    /// Waits until `count` reports after `before` are in; returns the
    /// tally of records `0..count`, whose due times are `due`.
    fn tally(&self, job: &Job<'_>, before: (u64, u64), due: &[u64]) -> Tally {
        let context = self.producer.context();
        let (reported_before, failed_before) = before;
        while context.reported.load(Ordering::Acquire) - reported_before < job.count {
            self.wait_a_moment();
        }
        // The callback stamps from the client's origin, the schedule from
        // the job's start; either may come first.
        let origin_later = (context.origin)
            .saturating_duration_since(job.pacing.start)
            .as_nanos() as u64;
        let start_later = (job.pacing.start)
            .saturating_duration_since(context.origin)
            .as_nanos() as u64;
        let mut tally = Tally::with_capacity(job.count as usize);
        tally.latencies = (0..job.count as usize)
            .filter(|&i| due[i] != UNTIMED)
            .map(|i| {
                (context.done[i].load(Ordering::Relaxed) + origin_later)
                    .saturating_sub(start_later + due[i])
            })
            .collect();
        tally.reported = job.count;
        tally.failed = context.failed.load(Ordering::Relaxed) - failed_before;
        if tally.failed > 0 {
            tally.first_error = Some("delivery failed (see librdkafka's log)".into());
        }
        tally
    }

    /// Readies record `i`'s stamp: the callback stamps it only if it is
    /// timed (`due` is not [`UNTIMED`]).
    fn expect(&self, i: u64, due: u64) {
        let stamp = if due == UNTIMED { UNTIMED } else { 0 };
        // Relaxed: the send that follows hands it to librdkafka's thread.
        self.producer.context().done[i as usize].store(stamp, Ordering::Relaxed);
    }

    /// The counts the next run's tally starts from.
    fn counts(&self) -> (u64, u64) {
        let context = self.producer.context();
        (
            context.reported.load(Ordering::Acquire),
            context.failed.load(Ordering::Relaxed),
        )
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

/// A hand-written `BaseProducer` loop: `send` in a loop (yielding, or
/// polling inline, and retrying when librdkafka's queue is full); the poll
/// thread serves the delivery reports, or the loop itself with `poll(0)`
/// after each `send`.
pub fn run_base(client: &BaseClient, job: &Job<'_>) -> Tally {
    let producer = &client.producer;
    let before = client.counts();
    let mut due = Vec::with_capacity(job.count as usize);
    for i in 0..job.count {
        let at = job.pacing.due(i);
        due.push(at);
        client.expect(i, at);
        let mut record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(job.topic, i as usize)
            .payload(&job.payload[..]);
        if let Some(key) = job.key(i) {
            record = record.key(&key[..]);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    match client.polling {
                        Polling::Inline => client.wait_a_moment(),
                        Polling::Thread => thread::yield_now(),
                    }
                }
                Err((e, _)) => panic!("BaseProducer::send: {e}"),
            }
        }
        client.poll_inline();
        if i % 4096 == 0 {
            job.progress.fetch_add(4096, Ordering::Relaxed);
        }
    }
    client.tally(job, before, &due)
}

/// Records per `rd_kafka_produce_batch` call of the ceiling client.
pub const CEILING_BATCH: usize = 1000;

/// librdkafka's own ceiling, with no futures: `rd_kafka_produce_batch` on
/// one cached topic handle, batches of [`CEILING_BATCH`] records of the
/// shared payload (not copied), each batch to one partition in turn
/// (`partitions: Some(n)`) or to `RD_KAFKA_PARTITION_UA` (librdkafka's
/// partitioner places each record); reports through the client's poll
/// thread, counted and stamped by the same callback as `run_base`'s. With
/// a rate, each batch goes when its first record is due.
pub fn run_batch(client: &BaseClient, job: &Job<'_>, partitions: Option<i32>) -> Tally {
    use aioproducer::rdkafka::bindings as rd;
    use std::ffi::{c_void, CString};

    let rk = client.producer.client().native_ptr();
    let name = CString::new(job.topic).expect("a topic name without NUL");
    // SAFETY: `rk` lives as long as `client`; the handle is destroyed below.
    let rkt = unsafe { rd::rd_kafka_topic_new(rk, name.as_ptr(), std::ptr::null_mut()) };
    assert!(!rkt.is_null(), "rd_kafka_topic_new");
    let before = client.counts();
    let mut due = Vec::with_capacity(job.count as usize);
    let mut messages: Vec<rd::rd_kafka_message_t> = Vec::with_capacity(CEILING_BATCH);
    let mut next = 0u64;
    let mut batch = 0i32;
    while next < job.count {
        // One clock read per batch: when its first record is due.
        let at = match job.pacing.interval {
            Some(_) => job.pacing.due(next),
            None => nanos_since(job.pacing.start),
        };
        let end = (next + CEILING_BATCH as u64).min(job.count);
        let partition = partitions.map_or(-1, |n| batch % n);
        batch += 1;
        messages.clear();
        for i in next..end {
            let at = if job.pacing.timed(i) { at } else { UNTIMED };
            due.push(at);
            client.expect(i, at);
            let (key, key_len) = job.key(i).map_or((std::ptr::null_mut(), 0), |k| {
                (k.as_ptr() as *mut c_void, k.len())
            });
            messages.push(rd::rd_kafka_message_t {
                err: rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR,
                rkt: std::ptr::null_mut(),
                partition,
                payload: job.payload.as_ptr() as *mut c_void,
                len: job.payload.len(),
                key,
                key_len,
                offset: 0,
                // The index, as `Stamps` reads its opaque (a `usize`).
                _private: i as usize as *mut c_void,
            });
        }
        let mut from = 0;
        while from < messages.len() {
            let count = (messages.len() - from) as i32;
            // SAFETY: `messages[from..]` are initialised entries whose
            // payload (the job's, alive for the run) outlives the reports;
            // no flags: no copy, nothing freed by librdkafka.
            let accepted = unsafe {
                rd::rd_kafka_produce_batch(rkt, partition, 0, messages[from..].as_mut_ptr(), count)
            };
            if accepted == count {
                break;
            }
            // Queue full: librdkafka took the records before the first
            // refused one; the rest go again once there is room.
            let refused = messages[from..]
                .iter()
                .position(|m| m.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR)
                .expect("a refused record");
            assert_eq!(
                messages[from + refused].err,
                rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__QUEUE_FULL,
                "rd_kafka_produce_batch refused a record"
            );
            from += refused;
            for m in &mut messages[from..] {
                m.err = rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
            }
            thread::yield_now();
        }
        if next % 4096 < CEILING_BATCH as u64 {
            job.progress.fetch_add(4096, Ordering::Relaxed);
        }
        next = end;
    }
    let tally = client.tally(job, before, &due);
    // SAFETY: ours, and no call refers to it any more.
    unsafe { rd::rd_kafka_topic_destroy(rkt) };
    tally
}
