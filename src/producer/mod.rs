//! The public producer: intake (validate, take a slot, count, queue), and the
//! control calls (flush, purge, close, stats) over the shared state.

pub(crate) mod hooks;
pub(crate) mod intake;
pub(crate) mod shared;
pub(crate) mod transaction;

use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cluster::{ClusterMetadata, PartitionInfo, TopicInfo};
use crate::config::AioProducerBuilder;
use crate::delivery::slot::Callback;
use crate::delivery::ticket::Ticket;
use crate::delivery::DeliveryFuture;
use crate::error::Error;
use crate::native::client::NativeProducer;
use crate::native::config::{check_native, native_config};
use crate::native::metadata::{Reads, TopicMetadata};
use crate::producer::hooks::Hooks;
use crate::producer::intake::{Intake, WhenFull};
use crate::producer::shared::{Shared, SharedConfig};
use crate::record::{Record, SizeLimits, Topic};
use crate::report::Delivery;
use crate::report::DeliveryError;
use crate::stats::Stats;
use crate::sync::block_on::{block_on, may_block};
use crate::sync::wait_list::WaitList;
use crate::sync::{Arc, AtomicBool, Mutex};

use crate::worker::{take_core, Worker, WorkerConfig};
use futures::channel::oneshot;
use futures::FutureExt;
use rdkafka::types::RDKafkaErrorCode;

/// An asynchronous Kafka producer: lock-free intake from any thread or
/// runtime, a future per record, delivery reports completed on librdkafka's
/// own thread.
///
/// Cheap to clone; all clones share one producer. See the [crate
/// documentation](crate) for the design and an example.
///
/// Call [`close`](Self::close) when done. Dropping the last handle without
/// it blocks the dropping thread for up to the builder's `drop_timeout`
/// while outstanding records are delivered, then fails the rest with
/// [`Error::Purged`] (purging and destroying the handle take a moment
/// more): nothing is forgotten, but an async caller should not rely on
/// `Drop`. Dropped inside a delivery callback (a callback that owns a
/// clone), the last handle does not block: the shutdown moves to a thread
/// of its own.
#[derive(Clone)]
pub struct AioProducer {
    inner: std::sync::Arc<Inner>,
}

/// The threads and the librdkafka handle, until shutdown takes them.
struct Threads {
    workers: Vec<JoinHandle<()>>,
    timer: JoinHandle<()>,
    native: Arc<NativeProducer>,
    /// The metadata thread, when topic limits or partitions are read
    /// (`native/metadata.rs`).
    metadata: Option<(Arc<TopicMetadata>, JoinHandle<()>)>,
    /// The latest transactional call's helper thread (each joins the one
    /// before it: `transaction.rs`).
    transactional: Option<JoinHandle<()>>,
    /// The hooks thread, when the application set hooks (`hooks.rs`).
    hooks: Option<JoinHandle<()>>,
}

struct Inner {
    shared: Arc<Shared>,
    threads: Mutex<Option<Threads>>,
    /// Set once the threads are joined and the handle destroyed.
    finished: AtomicBool,
    finished_notify: WaitList,
    drop_timeout: Duration,
}

impl fmt::Debug for AioProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AioProducer")
            .field("workers", &self.inner.shared.workers.len())
            .field("in_flight", &self.len())
            .field("closed", &self.inner.shared.ledger.is_closed())
            .finish()
    }
}

impl AioProducerBuilder {
    /// Checks the configuration and starts the producer's threads.
    ///
    /// Fails with [`Error::Config`] naming the first property librdkafka or
    /// the producer refuses.
    pub fn build(self) -> Result<AioProducer, Error> {
        AioProducer::start(self)
    }
}

impl AioProducer {
    /// A builder with default settings.
    ///
    /// ```
    /// let producer = aioproducer::AioProducer::builder()
    ///     .bootstrap_servers("127.0.0.1:9092")
    ///     .build()?;
    /// # Ok::<(), aioproducer::Error>(())
    /// ```
    pub fn builder() -> AioProducerBuilder {
        AioProducerBuilder::default()
    }

    pub(crate) fn start(builder: AioProducerBuilder) -> Result<Self, Error> {
        let (config, max_in_flight) = builder.client_config()?;
        let settings = check_native(&config, &native_config(&config)?)?;
        let limits = SizeLimits {
            message_max: settings.max_message_bytes,
            queue_max: settings.max_queue_bytes,
        };
        let shared = Arc::new(Shared::new(SharedConfig {
            max_in_flight,
            workers: builder.workers,
            ring_capacity: builder.ring_capacity,
            limits,
            producers_hand_over: builder.batch_size.is_none(),
        }));
        // Before the client: librdkafka may raise an error at once. On a
        // failed build the thread ends by itself (its queue's sender goes
        // with `shared`).
        let hooks = if builder.hooks.any() {
            let (hooks, thread) =
                Hooks::start(builder.hooks.clone()).map_err(Error::thread("aioproducer-hooks"))?;
            let _ = shared.hooks.set(hooks);
            Some(thread)
        } else {
            None
        };
        let native = Arc::new(NativeProducer::new(
            &config,
            Box::new(Arc::clone(&shared)),
            builder.oauth.clone(),
        )?);
        // Topic limits are read only for uncompressed batches: the broker
        // checks the compressed size, which we cannot know. Partitions are
        // read when unkeyed records are sticky (`native/topic.rs`).
        let reads = Reads {
            limits: settings.uncompressed,
            partitions: settings.sticky_linger.is_some() || settings.key_hash.is_some(),
        };
        let metadata = if reads.limits || reads.partitions {
            let started = TopicMetadata::start(Arc::clone(&native), reads);
            Some(started.map_err(Error::thread("aioproducer-metadata"))?)
        } else {
            None
        };
        let worker_config = WorkerConfig {
            batch_size: builder.batch_size,
            buffer_timeout: builder.buffer_timeout,
            metadata: metadata.as_ref().map(|(metadata, _)| Arc::clone(metadata)),
            sticky_for: settings.sticky_linger,
            key_hash: settings.key_hash,
        };
        let mut workers = Vec::with_capacity(builder.workers);
        let spawned = (0..builder.workers)
            .try_for_each(|id| {
                let native = Arc::clone(&native);
                let worker = Worker::spawn(id, Arc::clone(&shared), native, worker_config.clone())
                    .map_err(Error::thread("aioproducer-worker"))?;
                workers.push(worker);
                Ok(())
            })
            .and_then(|()| {
                spawn_timer(Arc::clone(&shared)).map_err(Error::thread("aioproducer-timer"))
            });
        let timer = match spawned {
            Ok(timer) => timer,
            Err(e) => {
                // Stop what did start, so that nothing keeps the client alive.
                for remote in shared.workers.iter() {
                    remote.stop();
                }
                for worker in workers {
                    let _ = worker.join();
                }
                stop_metadata(metadata);
                return Err(e);
            }
        };
        Ok(Self {
            inner: std::sync::Arc::new(Inner {
                shared,
                threads: Mutex::new(Some(Threads {
                    workers,
                    timer,
                    native,
                    metadata,
                    transactional: None,
                    hooks,
                })),
                finished: AtomicBool::new(false),
                finished_notify: WaitList::new(),
                drop_timeout: builder.drop_timeout,
            }),
        })
    }

    /// Queues a record and returns the future of its delivery report.
    ///
    /// Waits (asynchronously) while the producer is at its bound on records
    /// in flight or the record's ring is full: backpressure keeps memory
    /// bounded. Fails at once, handing the record back, when the record is
    /// invalid (topic name, partition, timestamp, size) or the producer is
    /// closed.
    ///
    /// Cancel-safe: dropping the returned future before it resolves leaves
    /// nothing queued.
    pub fn produce(
        &self,
        record: Record,
    ) -> impl Future<Output = Result<DeliveryFuture, DeliveryError>> + Send + '_ {
        // A plain future (no `async fn` state machine around it): the record
        // moves once into the intake, and once more into its slot.
        Intake::new(&self.inner.shared, record, None, WhenFull::Wait)
            .map(|ticket| ticket.map(|ticket| self.future(ticket)))
    }

    /// Queues a record if there is room right now; never waits. A full
    /// producer or ring hands the record back with [`Error::QueueFull`].
    ///
    /// Like `produce`, it may hand queued records to librdkafka itself when
    /// the worker sleeps (no waiting, but up to a ring's worth of work; see
    /// the crate docs).
    pub fn try_produce(&self, record: Record) -> Result<DeliveryFuture, DeliveryError> {
        let ticket = self.try_intake(record, None)?;
        Ok(self.future(ticket))
    }

    /// Queues a record and waits for its delivery report: `produce` and the
    /// returned future in one call.
    pub async fn send(&self, record: Record) -> Result<Delivery, DeliveryError> {
        self.produce(record).await?.await
    }

    /// Queues a record whose report goes to `callback` instead of a future.
    ///
    /// The callback runs on the thread that completes the record:
    /// librdkafka's background thread, or, for a record refused while it
    /// was handed over, the thread that handed it over (a worker, or a
    /// producing thread, inside its `produce` call, when it handed over for
    /// a sleeping worker). It must not block, since it delays every other
    /// report; a panic in it is caught and logged. A capturing closure is boxed (one
    /// allocation per record); a zero-sized one is not.
    pub async fn produce_with_callback<F>(
        &self,
        record: Record,
        callback: F,
    ) -> Result<(), DeliveryError>
    where
        F: FnOnce(Result<Delivery, DeliveryError>) + Send + 'static,
    {
        let callback: Callback = Box::new(callback);
        Intake::new(&self.inner.shared, record, Some(callback), WhenFull::Wait)
            .await
            .map(drop)
    }

    /// [`produce_with_callback`](Self::produce_with_callback) without
    /// waiting: a full producer or ring hands the record back.
    pub fn try_produce_with_callback<F>(
        &self,
        record: Record,
        callback: F,
    ) -> Result<(), DeliveryError>
    where
        F: FnOnce(Result<Delivery, DeliveryError>) + Send + 'static,
    {
        self.try_intake(record, Some(Box::new(callback))).map(drop)
    }

    fn future(&self, ticket: Ticket) -> DeliveryFuture {
        DeliveryFuture::new(Arc::clone(&self.inner.shared.pool), ticket.index())
    }

    /// Intake that refuses (`QueueFull`) instead of waiting.
    fn try_intake(
        &self,
        record: Record,
        callback: Option<Callback>,
    ) -> Result<Ticket, DeliveryError> {
        Intake::new(&self.inner.shared, record, callback, WhenFull::Refuse)
            .now_or_never()
            .expect("an intake that may not wait resolves at once")
    }

    /// Resolves when every record produced before the call has its delivery
    /// report (delivered or failed). Records produced meanwhile do not delay
    /// it beyond their own reports. With `batch_size`, held batches are
    /// handed over at once.
    pub async fn flush(&self) {
        let shared = &self.inner.shared;
        let target = shared.ledger.flush_target();
        for worker in shared.workers.iter() {
            worker.force();
        }
        self.inner.shared.ledger.reported_up_to(target).await;
    }

    /// Fails every record not yet delivered with [`Error::Purged`]: those in
    /// our rings and batches, and those in librdkafka (queued or in flight;
    /// an in-flight record may still have reached the broker, see
    /// [`DeliveryError::possibly_persisted`]). Resolves when every record
    /// produced before the call has its report; records produced while it
    /// runs may be purged too, and do not delay it.
    pub async fn purge(&self) {
        let inner = &self.inner;
        let shared = &inner.shared;
        let target = shared.ledger.flush_target();
        // Move the epoch at once if it can, so records produced from now on
        // join the other parity, which the purge neither fails nor waits for.
        shared.ledger.advance(target);
        shared.begin_purge(target);
        inner.purge_everywhere().await;
        shared.ledger.reported_up_to(target).await;
        shared.end_purge(target);
    }

    /// Stops intake, waits for every outstanding report, stops the threads
    /// and destroys the librdkafka handle. Later calls to `produce` fail with
    /// [`Error::Closed`]; calling `close` again waits for the first.
    ///
    /// Each outstanding record is bounded by librdkafka's
    /// `message.timeout.ms` (default 300 s), so `close` always returns. The
    /// blocking work (joining threads, destroying the handle) runs on a
    /// helper thread, not on the caller's executor.
    pub async fn close(&self) {
        let inner = &self.inner;
        begin_close(&inner.shared);
        inner.shared.ledger.all_reported().await;
        if inner.threads.lock().is_some() {
            let finisher = std::sync::Arc::clone(inner);
            let spawned = std::thread::Builder::new()
                .name("aioproducer-close".into())
                .spawn(move || finisher.finish_once());
            if let Err(e) = spawned {
                log::warn!("no thread to close on ({e}); closing on the caller's thread");
                inner.finish_once();
            }
        }
        inner
            .finished_notify
            .wait_for(|| inner.finished.load(Acquire).then_some(()))
            .await;
    }

    /// Records not yet reported: in our rings and batches, and in librdkafka.
    pub fn len(&self) -> usize {
        self.inner.shared.ledger.in_flight() as usize
    }

    /// Whether every record produced so far has its report.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The state every thread of this producer shares.
    pub(crate) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Runs a blocking transactional `call` on a helper thread, after the
    /// previous call's thread has finished, and awaits its result
    /// (`transaction.rs`). `Closed` once `close` destroyed the handle.
    pub(crate) async fn transactional<T: Send + 'static>(
        &self,
        call: impl FnOnce(&NativeProducer) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let receiver = {
            let mut threads = self.inner.threads.lock();
            let threads = threads.as_mut().ok_or(Error::Closed)?;
            let previous = threads.transactional.take();
            // On failure the previous thread is no longer joined here, but
            // shutdown still waits for it to let go of the handle.
            let (helper, receiver) =
                spawn_call("aioproducer-txn", &threads.native, previous, call)?;
            threads.transactional = Some(helper);
            receiver
        };
        receiver
            .await
            .unwrap_or_else(|_| Err(Error::TransactionalCallPanicked))
    }

    /// Reads the cluster's metadata: its id, brokers and controller, and
    /// every topic (or only `topic`), waiting at most `timeout` for a broker
    /// to answer.
    ///
    /// The request runs on a short-lived thread of its own
    /// (`aioproducer-lookup`), never on the caller's executor; dropping the
    /// future lets it finish there. A topic the cluster does not have is in
    /// the answer with the error `UnknownTopicOrPartition` (unless the
    /// broker creates it on request: its `auto.create.topics.enable`, and
    /// librdkafka's `allow.auto.create.topics`). Fails with librdkafka's
    /// error when no broker answered in time (`BrokerTransportFailure` when
    /// none could be reached), with `InvalidTopic` for a name Kafka refuses,
    /// and with `Closed` once the producer is closed. Records keep flowing
    /// meanwhile. The example is in [`ClusterMetadata`].
    pub async fn metadata(
        &self,
        topic: Option<&str>,
        timeout: Duration,
    ) -> Result<ClusterMetadata, Error> {
        let topic = topic.map(Topic::new);
        if let Some(topic) = &topic {
            topic.check()?;
        }
        let receiver = {
            let threads = self.inner.threads.lock();
            let threads = threads.as_ref().ok_or(Error::Closed)?;
            let call = move |native: &NativeProducer| {
                native.metadata(topic.as_ref().map(Topic::as_str), timeout)
            };
            spawn_call("aioproducer-lookup", &threads.native, None, call)?.1
        };
        receiver.await.unwrap_or_else(|_| {
            Err(Error::Thread {
                name: "aioproducer-lookup",
                reason: "the metadata request panicked".into(),
            })
        })
    }

    /// Every topic of the cluster, with its partitions and their leaders
    /// ([`metadata`](Self::metadata) of every topic, waiting at most
    /// [`METADATA_TIMEOUT`](Self::METADATA_TIMEOUT)).
    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>, Error> {
        Ok(self.metadata(None, Self::METADATA_TIMEOUT).await?.topics)
    }

    /// The partitions of `topic` by id, with their leaders and replicas,
    /// or the error the cluster gave for the topic (`UnknownTopicOrPartition`
    /// for one it does not have). Waits at most
    /// [`METADATA_TIMEOUT`](Self::METADATA_TIMEOUT).
    pub async fn partitions(&self, topic: &str) -> Result<Vec<PartitionInfo>, Error> {
        let metadata = self.metadata(Some(topic), Self::METADATA_TIMEOUT).await?;
        metadata.partitions_of(topic).map(<[PartitionInfo]>::to_vec)
    }

    /// The cluster's id. Waits at most
    /// [`METADATA_TIMEOUT`](Self::METADATA_TIMEOUT).
    pub async fn cluster_id(&self) -> Result<String, Error> {
        let metadata = self.metadata(None, Self::METADATA_TIMEOUT).await?;
        metadata.cluster_id.ok_or(Error::Kafka {
            code: RDKafkaErrorCode::Unknown,
            detail: Some("the cluster gave no id".into()),
        })
    }

    /// Sets the SASL username and password (`sasl.username`,
    /// `sasl.password`) the producer uses from its next authentication on:
    /// the next connection to a broker, or the next re-authentication of a
    /// connection (when the broker sets `connections.max.reauth.ms`).
    /// Connections already authenticated stay up. The way to follow a
    /// credential rotation without restarting the producer: records keep
    /// flowing, and those that meet a broker refusing the old password wait
    /// in librdkafka until the new one lets the producer in (or their
    /// `message.timeout.ms`).
    ///
    /// Fails with `Closed` once the producer is closed, and with librdkafka's
    /// error when the producer does not use SASL. The password never
    /// appears in an error.
    pub fn set_sasl_credentials(&self, username: &str, password: &str) -> Result<(), Error> {
        let threads = self.inner.threads.lock();
        let threads = threads.as_ref().ok_or(Error::Closed)?;
        threads.native.set_sasl_credentials(username, password)
    }

    /// How long [`list_topics`](Self::list_topics),
    /// [`partitions`](Self::partitions) and [`cluster_id`](Self::cluster_id)
    /// wait for a broker to answer.
    pub const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

    /// A snapshot of the producer's counters.
    pub fn stats(&self) -> Stats {
        self.inner.shared.stats()
    }

    /// The fatal error librdkafka raised, if it did: the producer can no
    /// longer produce. Every record it could not deliver failed with this
    /// error ([`Error::is_fatal`]), and every later `produce` call fails with
    /// it at once. Build a new producer to go on.
    pub fn fatal_error(&self) -> Option<Error> {
        self.inner.shared.fatal().cloned()
    }
}

impl Inner {
    fn native(&self) -> Option<Arc<NativeProducer>> {
        self.threads.lock().as_ref().map(|t| Arc::clone(&t.native))
    }

    /// Has every worker fail what it holds, then purges librdkafka (whose
    /// records then fail through their reports). librdkafka is purged only
    /// once every worker has acknowledged, so whatever a hand-over gave it
    /// before then is purged too (see [`Shared::begin_purge`]).
    async fn purge_everywhere(&self) {
        let requests = self.shared.request_purges();
        self.shared
            .purges_served(&requests, || self.finished.load(Acquire))
            .await;
        if let Some(native) = self.native() {
            native.purge();
        }
    }

    /// Shuts down (for `close`) unless another caller took the threads,
    /// then tells those waiting for it.
    fn finish_once(&self) {
        let threads = self.threads.lock().take();
        if let Some(threads) = threads {
            shut_down(&self.shared, threads);
            self.finished.store(true, Release);
            self.finished_notify.notify_all();
            self.shared.purge_acks.notify_all();
        }
    }
}

/// Refuses new records and wakes everyone waiting for room, so they see
/// it; makes workers hand over what they hold.
fn begin_close(shared: &Shared) {
    shared.ledger.close();
    shared.ledger.room().notify_all();
    for worker in shared.workers.iter() {
        worker.space().notify_all();
        worker.force();
    }
}

/// Stops and joins the threads, destroys the handle, fails anything never
/// reported.
fn shut_down(shared: &Shared, threads: Threads) {
    for worker in shared.workers.iter() {
        worker.stop();
    }
    shared.timer.stop();
    for handle in threads.workers.into_iter().chain([threads.timer]) {
        if handle.join().is_err() {
            log::error!("a producer thread panicked");
        }
    }
    // A worker takes its own core out when it exits; one that panicked
    // did not, and its core would keep the client alive.
    for remote in shared.workers.iter() {
        take_core(remote);
    }
    stop_metadata(threads.metadata);
    if let Some(helper) = threads.transactional {
        let _ = helper.join(); // and, through it, every earlier helper
    }
    // Only once the handle is destroyed may what it never reported be
    // failed: until then librdkafka may still read those records' bytes.
    // Every other holder is gone by now; a helper thread whose start
    // failed may not be, and is waited for.
    let mut native = threads.native;
    loop {
        match Arc::try_unwrap(native) {
            Ok(last) => break drop(last),
            Err(held) => {
                native = held;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    // No event can come any more: the hooks run what is queued, and stop.
    if let (Some(hooks), Some(thread)) = (shared.hooks.get(), threads.hooks) {
        hooks.stop();
        if thread.join().is_err() {
            log::error!("the hooks thread panicked");
        }
    }
    let failed = shared.fail_unreported();
    if failed > 0 {
        log::warn!("{failed} records were never reported by librdkafka; failed them as purged");
    }
}

/// Where a helper thread's call sends its result.
type CallResult<T> = oneshot::Receiver<Result<T, Error>>;

/// Runs a blocking `call` on the handle on a new thread named `name`,
/// after `previous` (if any) has finished; returns the thread and the
/// receiver of the call's result. The thread holds a reference to the
/// handle until the call returns, and shutdown waits for it.
fn spawn_call<T: Send + 'static>(
    name: &'static str,
    native: &Arc<NativeProducer>,
    previous: Option<JoinHandle<()>>,
    call: impl FnOnce(&NativeProducer) -> Result<T, Error> + Send + 'static,
) -> Result<(JoinHandle<()>, CallResult<T>), Error> {
    let (sender, receiver) = oneshot::channel();
    let native = Arc::clone(native);
    let helper = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if let Some(previous) = previous {
                let _ = previous.join();
            }
            let _ = sender.send(call(&native));
        })
        .map_err(Error::thread(name))?;
    Ok((helper, receiver))
}

/// Starts the timer thread, named `aioproducer-timer`, over the workers'
/// remotes.
fn spawn_timer(shared: Arc<Shared>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("aioproducer-timer".into())
        .spawn(move || shared.timer.run(&shared.workers, || shared.timer.now()))
}

/// Stops and joins the metadata thread, if there is one.
fn stop_metadata(metadata: Option<(Arc<TopicMetadata>, JoinHandle<()>)>) {
    if let Some((metadata, thread)) = metadata {
        metadata.stop();
        if thread.join().is_err() {
            log::error!("the metadata thread panicked");
        }
    }
}

/// What `Drop` of the last handle does, on whichever thread may block:
/// close, waiting at most `timeout` for outstanding reports; then fail what
/// is left, stop the threads and destroy the handle.
fn shut_down_after_drop(shared: Arc<Shared>, threads: Threads, timeout: Duration) {
    begin_close(&shared);
    // No deadline for a timeout past the end of time: wait for every report
    // (each is bounded by `message.timeout.ms`).
    let deadline = Instant::now().checked_add(timeout);
    if block_on(shared.ledger.all_reported(), deadline).is_none() {
        log::warn!(
            "producer dropped without close() and {} records still pending after {:?}; purging them",
            shared.ledger.in_flight(),
            timeout
        );
        // The workers are woken and purge at once (none ever waits inside
        // librdkafka); one that panicked never answers, so the wait is
        // bounded. Whatever librdkafka has not reported when its handle is
        // destroyed is failed after.
        const PURGE_WAIT: Duration = Duration::from_secs(1);
        let requests = shared.request_purges();
        let answered = shared.purges_served(&requests, || false);
        if block_on(answered, Some(Instant::now() + PURGE_WAIT)).is_none() {
            log::warn!("a worker did not answer the purge within {PURGE_WAIT:?}");
        }
        threads.native.purge();
    }
    shut_down(&shared, threads);
}

impl Drop for Inner {
    fn drop(&mut self) {
        let Some(threads) = self.threads.lock().take() else {
            return; // `close` finished the work.
        };
        let (shared, timeout) = (Arc::clone(&self.shared), self.drop_timeout);
        if may_block() {
            shut_down_after_drop(shared, threads, timeout);
            return;
        }
        // The last handle was dropped inside a delivery callback, on a
        // thread that reports records (librdkafka's, a worker, or a producer
        // handing over): waiting here would hold up the reports we wait for,
        // and librdkafka aborts when its handle is destroyed from its own
        // thread. Another thread does it; this one returns at once.
        let closing = Arc::clone(&shared);
        let handed = std::thread::Builder::new()
            .name("aioproducer-drop".into())
            .spawn(move || shut_down_after_drop(shared, threads, timeout));
        if let Err(e) = handed {
            // Nothing can block or destroy here: refuse new records and let
            // the threads and the handle go with the process.
            log::error!("no thread to shut the dropped producer down on ({e}); leaking it");
            begin_close(&closing);
        }
    }
}
