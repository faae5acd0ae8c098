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
//! 4. with nothing drained and nothing due, yield twice and then, if still
//!    idle, park (see [`park`](crate::park)).
//!
//! A busy worker never sleeps; an idle one costs nothing until a producer's
//! push wakes it.

use std::thread::JoinHandle;
use std::time::Duration;

use crate::batch::{BatchKey, Batches};
use crate::error::Error;
use crate::loom::Arc;
use crate::mailbox::Mailbox;
use crate::native::client::NativeProducer;
use crate::native::handover::{Handover, UNASSIGNED};
use crate::native::topic::TopicCache;
use crate::shared::Shared;
use crate::slot::Outcome;

/// Times an idle worker yields before it parks.
const GRACE_YIELDS: usize = 2;

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
        let mailbox = &shared.workers[self.id];
        mailbox.register_worker();
        loop {
            if let Some(request) = mailbox.purge_pending() {
                self.purge(mailbox);
                mailbox.purge_served(request);
                shared.purge_acks.notify_all();
                continue;
            }
            let forced = mailbox.take_force();
            let stopping = mailbox.stopping();
            let drained = self.drain(mailbox);
            let due = match self.config.batch_size {
                None => true,
                Some(size) => forced || stopping || self.batches.held() >= size,
            };
            if self.batches.held() > 0 {
                if due {
                    self.hand_over(mailbox);
                } else {
                    let timer = &shared.timer;
                    let timeout = self.config.buffer_timeout.as_nanos() as u64;
                    mailbox.arm_deadline(timer.now().saturating_add(timeout), timer);
                }
            }
            if drained == 0 && (self.batches.held() == 0 || !due) {
                if stopping && self.batches.held() == 0 && mailbox.ring.is_empty() {
                    break;
                }
                // A brief grace period before sleeping: under load the next
                // ticket is usually a moment away, and a worker that parks
                // after every drain costs each producer a futex wake-up and
                // hands over tiny batches. Yielding (not spinning) gives the
                // CPU to the producers meanwhile.
                for _ in 0..GRACE_YIELDS {
                    if !mailbox.ring.is_empty() {
                        break;
                    }
                    std::thread::yield_now();
                }
                if mailbox.ring.is_empty() {
                    mailbox.park();
                }
            }
        }
    }

    /// Moves up to one ring's worth of tickets into batches.
    fn drain(&mut self, mailbox: &Mailbox) -> usize {
        let Worker {
            shared,
            native,
            batches,
            topics,
            ..
        } = self;
        mailbox.drain(mailbox.ring.capacity(), |ticket| {
            let slot = shared.pool.slot(ticket.index());
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
                Ok(key) => batches.push(key, ticket),
                Err(error) => shared.complete(ticket, Outcome::failed(error)),
            }
        })
    }

    /// Hands every batch to librdkafka.
    fn hand_over(&mut self, mailbox: &Mailbox) {
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
        mailbox.handed_over(records, calls);
    }

    /// Fails everything in the ring and in the batches with `Purged`.
    fn purge(&mut self, mailbox: &Mailbox) {
        let shared = &self.shared;
        let fail = |ticket| shared.complete(ticket, Outcome::failed(Error::Purged));
        mailbox.drain(usize::MAX, fail);
        self.batches.take_all(fail);
        mailbox.clear_deadline();
    }
}
