//! The worker threads: each drains its ring into per-partition batches and
//! hands them to librdkafka.
//!
//! A worker loops:
//!
//! 1. serve a purge request if there is one (fail everything it holds);
//! 2. drain its ring (at most one ring's worth per round) into [`Batches`],
//!    and let producers waiting for room know;
//! 3. hand the batches over when due: at once by default; with `batch_size`,
//!    when that many records are held, when the timer or a flush forces it,
//!    or when stopping;
//! 4. with nothing drained and nothing due, park (see [`park`](crate::park)).
//!
//! A busy worker never sleeps; an idle one costs nothing until a producer's
//! push wakes it.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::utils::CachePadded;

use crate::batch::{BatchKey, Batches};
use crate::error::Error;
use crate::loom::{Arc, AtomicBool, AtomicU64};
use crate::native::client::NativeProducer;
use crate::native::handover::{Handover, UNASSIGNED};
use crate::native::topic::TopicCache;
use crate::park::Parker;
use crate::ring::Ring;
use crate::shared::Shared;
use crate::slot::Outcome;

/// No deadline armed.
pub(crate) const NO_DEADLINE: u64 = u64::MAX;

/// What producers, the timer and control calls share with one worker.
#[derive(Debug)]
pub(crate) struct WorkerState {
    pub(crate) ring: Ring,
    pub(crate) parker: Parker,
    /// Hand over everything held now (timer or flush).
    force: AtomicBool,
    /// Exit once the ring is empty and nothing is held.
    stop: AtomicBool,
    purge_requested: AtomicU64,
    purge_done: AtomicU64,
    /// When the oldest held record must be handed over (timer clock), or
    /// `NO_DEADLINE`. Written by the worker, read and cleared by the timer.
    pub(crate) deadline: CachePadded<AtomicU64>,
    /// Records handed to librdkafka (single writer: the worker).
    records: AtomicU64,
    /// librdkafka calls made to hand them over (single writer).
    calls: AtomicU64,
}

impl WorkerState {
    pub(crate) fn new(ring_capacity: usize) -> Self {
        Self {
            ring: Ring::new(ring_capacity),
            parker: Parker::new(),
            force: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            purge_requested: AtomicU64::new(0),
            purge_done: AtomicU64::new(0),
            deadline: CachePadded::new(AtomicU64::new(NO_DEADLINE)),
            records: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }
    }

    /// Asks the worker to hand over everything it holds.
    pub(crate) fn force(&self) {
        // Release: nothing to publish but the flag; the parker's fence orders
        // it before the sleeping check.
        self.force.store(true, Release);
        self.parker.wake();
    }

    /// Asks the worker to exit once it holds nothing.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Release);
        self.parker.wake();
    }

    /// Asks the worker to fail everything it holds; returns the request
    /// number to wait for with [`WorkerState::purged`].
    pub(crate) fn request_purge(&self) -> u64 {
        let request = self.purge_requested.fetch_add(1, AcqRel) + 1;
        self.parker.wake();
        request
    }

    /// Whether purge request `request` has been served.
    pub(crate) fn purged(&self, request: u64) -> bool {
        self.purge_done.load(Acquire) >= request
    }

    fn has_work(&self) -> bool {
        // Relaxed: called after the parker's SeqCst fence.
        !self.ring.is_empty()
            || self.force.load(Relaxed)
            || self.stop.load(Relaxed)
            || self.purge_requested.load(Relaxed) > self.purge_done.load(Relaxed)
    }

    /// (records handed over, librdkafka calls).
    pub(crate) fn counters(&self) -> (u64, u64) {
        (self.records.load(Relaxed), self.calls.load(Relaxed))
    }
}

/// The settings every worker runs with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorkerConfig {
    pub(crate) batch_size: Option<usize>,
    pub(crate) buffer_timeout: Duration,
    /// Refuse records larger than their topic's `max.message.bytes`.
    pub(crate) check_topic_limits: bool,
}

/// One worker thread's private state.
pub(crate) struct Worker {
    id: usize,
    shared: Arc<Shared>,
    native: Arc<NativeProducer>,
    batches: Batches,
    topics: TopicCache,
    handover: Handover,
    config: WorkerConfig,
}

impl Worker {
    /// Starts worker `id` on a thread named `aioproducer-worker-{id}`.
    pub(crate) fn spawn(
        id: usize,
        shared: Arc<Shared>,
        native: Arc<NativeProducer>,
        config: WorkerConfig,
    ) -> std::io::Result<JoinHandle<()>> {
        // Records held at most: a round drains at most one ring's worth, and
        // a round ends with a hand-over once `batch_size` are held.
        let ring_capacity = shared.workers[id].ring.capacity();
        let max_held = ring_capacity + config.batch_size.map_or(0, |size| size - 1);
        let worker = Worker {
            id,
            shared,
            native,
            batches: Batches::with_capacity(max_held),
            topics: TopicCache::new(config.check_topic_limits),
            handover: Handover::default(),
            config,
        };
        std::thread::Builder::new()
            .name(format!("aioproducer-worker-{id}"))
            .spawn(move || worker.run())
    }

    fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        let state = &shared.workers[self.id];
        state.parker.register_current();
        loop {
            let purge = state.purge_requested.load(Acquire);
            if purge > state.purge_done.load(Relaxed) {
                self.purge(state);
                state.purge_done.store(purge, Release);
                shared.purge_acks.notify_all();
                continue;
            }
            let forced = state.force.swap(false, Acquire);
            let stopping = state.stop.load(Acquire);
            let drained = self.drain(state);
            if drained > 0 {
                state.ring.space.notify_many(drained);
            }
            let due = match self.config.batch_size {
                None => true,
                Some(size) => forced || stopping || self.batches.held() >= size,
            };
            if self.batches.held() > 0 {
                if due {
                    self.hand_over(state);
                } else {
                    self.arm_deadline(state);
                }
            }
            if drained == 0 && (self.batches.held() == 0 || !due) {
                if stopping && self.batches.held() == 0 && state.ring.is_empty() {
                    break;
                }
                state.parker.park_unless(None, || state.has_work());
            }
        }
    }

    /// Moves up to one ring's worth of tickets into batches.
    fn drain(&mut self, state: &WorkerState) -> usize {
        let mut drained = 0;
        while drained < state.ring.capacity() {
            let Some(ticket) = state.ring.pop() else {
                break;
            };
            drained += 1;
            let slot = self.shared.pool.slot(ticket.index());
            let (native, topics) = (&self.native, &mut self.topics);
            // SAFETY: we popped the ticket; nobody else touches the record
            // until we hand it over.
            let placed = unsafe {
                slot.with_record(|record| {
                    let topic = topics.get(native, record.topic())?;
                    if let Some(max) = topic.limit {
                        let size = record.batch_size_alone();
                        if size > max {
                            return Err(Error::RecordTooLargeForTopic {
                                topic: record.topic().to_string(),
                                size,
                                max,
                            });
                        }
                    }
                    Ok(BatchKey {
                        topic: topic.index,
                        partition: record.partition().unwrap_or(UNASSIGNED),
                    })
                })
            };
            match placed {
                Ok(key) => self.batches.push(key, ticket),
                Err(error) => self.shared.complete(ticket, Outcome::failed(error)),
            }
        }
        drained
    }

    /// Hands every batch to librdkafka.
    fn hand_over(&mut self, state: &WorkerState) {
        let Worker {
            shared,
            native,
            batches,
            topics,
            handover,
            ..
        } = self;
        let records = batches.held() as u64;
        let mut calls = 0;
        batches.drain(|key, tickets| {
            let topic = topics.handle(key.topic);
            calls += handover.hand_over(shared, native.ptr(), topic, key.partition, tickets);
        });
        // Relaxed: statistics with a single writer.
        state
            .records
            .store(state.records.load(Relaxed) + records, Relaxed);
        state
            .calls
            .store(state.calls.load(Relaxed) + calls, Relaxed);
        state.deadline.store(NO_DEADLINE, Relaxed);
    }

    /// Starts the buffer timeout for the records just held, if not running.
    fn arm_deadline(&self, state: &WorkerState) {
        if state.deadline.load(Relaxed) != NO_DEADLINE {
            return;
        }
        let timer = &self.shared.timer;
        let deadline = timer
            .now()
            .saturating_add(self.config.buffer_timeout.as_nanos() as u64);
        // SeqCst: pairs with the timer's store of its next wake-up (timer.rs).
        state.deadline.store(deadline, SeqCst);
        timer.schedule(deadline);
    }

    /// Fails everything in the ring and in the batches with `Purged`.
    fn purge(&mut self, state: &WorkerState) {
        while let Some(ticket) = state.ring.pop() {
            self.shared.complete(ticket, Outcome::failed(Error::Purged));
        }
        state.ring.space.notify_all();
        let shared = &self.shared;
        self.batches
            .take_all(|ticket| shared.complete(ticket, Outcome::failed(Error::Purged)));
        state.deadline.store(NO_DEADLINE, Relaxed);
    }
}
