//! What workers learn of their topics from the cluster, read off the
//! hand-over path: each topic's `max.message.bytes` (when records are
//! checked against it) and which of its partitions have a leader (when the
//! worker chooses the partition of unkeyed records, `topic.rs`).
//!
//! Reading either blocks for a round trip (`DescribeConfigs`, `Metadata`;
//! see [`admin`](super::admin)), and for seconds when the cluster is slow
//! or down. A worker that did it itself would hold up every other topic's
//! records meanwhile. So one thread per producer, `aioproducer-metadata`,
//! does every lookup, and workers never wait for one:
//!
//! - a worker that makes a topic handle asks for the topic
//!   ([`TopicMetadata::request`], a channel send); while the first read of
//!   its limit is under way ([`Limit::Pending`]) it holds that topic's
//!   records, for at most [`FIRST_READ_WAIT`], and hands every other
//!   topic's over as usual; once the read is done, or failed, or took too
//!   long, the records go, checked when the limit is known and unchecked
//!   otherwise (the broker is then the judge, as without these checks);
//! - until a topic's partitions are known, its unkeyed records go to
//!   librdkafka's partitioner: nothing waits for them;
//! - the thread publishes what it read in a map and bumps `version`; each
//!   worker compares `version` with the one it last saw (one load per
//!   record) and takes the new facts when it moved;
//! - a known limit is read again every [`FRESH_FOR`], partitions every
//!   [`PARTITIONS_FRESH_FOR`] (a leader may have moved, partitions may have
//!   been added) and at once when a worker found its list stale
//!   ([`TopicMetadata::refresh`]); a failed read is retried after
//!   [`RETRY_AFTER`], doubling up to [`RETRY_AT_MOST`] for limits; while no
//!   controller or no broker is known (the cluster is down or not reached
//!   yet) every topic is retried each [`RETRY_AFTER`], so both are known
//!   within about a second of the cluster answering;
//! - on a cluster that answers no admin requests (librdkafka's mock
//!   cluster) the thread gives up reading limits for good (partitions are
//!   still read: every broker answers `Metadata`);
//! - each worker counts as one holder of each topic it has a handle for
//!   and lets go ([`TopicMetadata::release`]) when it evicts the handle: a
//!   topic nobody holds is forgotten, so the map and the re-reads stay
//!   bounded by the topics in use.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;

use crate::native::admin::{PartitionsUnknown, TopicPartitions};
use crate::native::client::{LimitUnknown, NativeProducer};
use crate::record::Topic;
use crate::sync::Arc;

/// How long a topic's limit is trusted before it is read again.
const FRESH_FOR: Duration = Duration::from_secs(300);
/// How long a topic's partitions are trusted before they are read again.
pub(crate) const PARTITIONS_FRESH_FOR: Duration = Duration::from_secs(10);
/// The first wait before a failed read is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// The longest wait between attempts for a topic whose limit reads keep
/// failing.
const RETRY_AT_MOST: Duration = Duration::from_secs(30);
/// How long one read may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a worker holds a new topic's records for its first read.
pub(crate) const FIRST_READ_WAIT: Duration = Duration::from_secs(1);

/// What is known of a topic's `max.message.bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// The first read is under way.
    Pending,
    /// Read from the cluster.
    Known(usize),
    /// Not read (records are not checked), or could not be read: records
    /// go unchecked.
    Unknown,
}

/// A topic's partition count and the partitions that have a leader.
/// (`std`'s `Arc`, also under loom: plain data shared under the map's lock,
/// no protocol to model.)
pub(crate) type Partitions = std::sync::Arc<TopicPartitions>;

/// What the thread reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reads {
    /// Topic limits (batches go uncompressed: the broker checks the size
    /// we can know).
    pub(crate) limits: bool,
    /// Topic partitions (workers choose the partition of unkeyed and
    /// keyed records).
    pub(crate) partitions: bool,
}

enum Request {
    /// A worker holds (made a handle for) the topic.
    Hold(Topic),
    /// A worker let go of the topic.
    Release(Topic),
    /// A worker found the topic's partitions stale.
    Refresh(Topic),
    Stop,
}

/// What has been read, under one lock.
#[derive(Debug, Default)]
struct Published {
    /// Topics whose limit was read at least once; a topic absent is
    /// [`Limit::Pending`].
    limits: HashMap<Topic, Limit>,
    /// Topics whose partitions are known.
    partitions: HashMap<Topic, Partitions>,
}

/// The producer's known topic metadata, and the way to ask for more.
#[derive(Debug)]
pub(crate) struct TopicMetadata {
    known: Mutex<Published>,
    /// The cluster answers no admin requests: every limit is unknown.
    never: AtomicBool,
    /// Bumped whenever `known` changes.
    version: AtomicU64,
    requests: Sender<Request>,
}

impl TopicMetadata {
    /// Starts the metadata thread on `native`, reading what `reads` says;
    /// join the handle after [`TopicMetadata::stop`], before the client is
    /// destroyed.
    pub(crate) fn start(
        native: Arc<NativeProducer>,
        reads: Reads,
    ) -> std::io::Result<(Arc<Self>, JoinHandle<()>)> {
        let (requests, incoming) = channel::unbounded();
        let metadata = Arc::new(Self {
            known: Mutex::new(Published::default()),
            never: AtomicBool::new(!reads.limits),
            version: AtomicU64::new(0),
            requests,
        });
        let published = Arc::clone(&metadata);
        let lookups = Lookups {
            topics: HashMap::new(),
            reads,
        };
        let thread = std::thread::Builder::new()
            .name("aioproducer-metadata".into())
            .spawn(move || lookups.run(&native, &published, &incoming))?;
        Ok((metadata, thread))
    }

    /// Counts the calling worker as a holder of `topic`, whose metadata is
    /// then read (unless known) and kept fresh.
    pub(crate) fn request(&self, topic: &Topic) {
        // The thread outlives every worker: the send cannot fail before stop.
        let _ = self.requests.send(Request::Hold(topic.clone()));
    }

    /// The calling worker no longer holds `topic`.
    pub(crate) fn release(&self, topic: &Topic) {
        let _ = self.requests.send(Request::Release(topic.clone()));
    }

    /// Asks for `topic`'s partitions to be read again now.
    pub(crate) fn refresh(&self, topic: &Topic) {
        let _ = self.requests.send(Request::Refresh(topic.clone()));
    }

    /// Bumped whenever what is known changes.
    pub(crate) fn version(&self) -> u64 {
        // Relaxed: the map's lock publishes the metadata itself.
        self.version.load(Relaxed)
    }

    /// What is known of `topic`'s limit.
    pub(crate) fn limit(&self, topic: &Topic) -> Limit {
        self.known().limit(topic)
    }

    /// What is known, locked once for several look-ups.
    pub(crate) fn known(&self) -> Known<'_> {
        Known {
            // Relaxed: set once, before a version bump that workers look at.
            never: self.never.load(Relaxed),
            published: self.known.lock(),
        }
    }

    /// Asks the thread to exit.
    pub(crate) fn stop(&self) {
        let _ = self.requests.send(Request::Stop);
    }

    fn publish(&self, change: impl FnOnce(&mut Published)) {
        change(&mut self.known.lock());
        // Relaxed: see `version`.
        self.version.fetch_add(1, Relaxed);
    }
}

/// What is known, under its lock ([`TopicMetadata::known`]).
pub(crate) struct Known<'a> {
    never: bool,
    published: parking_lot::MutexGuard<'a, Published>,
}

impl Known<'_> {
    /// What is known of `topic`'s limit.
    pub(crate) fn limit(&self, topic: &Topic) -> Limit {
        if self.never {
            return Limit::Unknown;
        }
        let limit = self.published.limits.get(topic).copied();
        limit.unwrap_or(Limit::Pending)
    }

    /// `topic`'s partitions, if known.
    pub(crate) fn partitions(&self, topic: &Topic) -> Option<Partitions> {
        self.published.partitions.get(topic).cloned()
    }
}

/// One topic, as the lookup thread tracks it.
#[derive(Debug)]
struct Tracked {
    holders: usize,
    /// When the limit is read next.
    due: Instant,
    /// The wait before the next limit read after a failure.
    backoff: Duration,
    /// When the partitions are read next.
    partitions_due: Instant,
}

/// The lookup thread's state.
#[derive(Debug)]
struct Lookups {
    topics: HashMap<Topic, Tracked>,
    /// What is still read (limits stop on a cluster that answers no admin
    /// requests).
    reads: Reads,
}

impl Lookups {
    fn run(mut self, native: &NativeProducer, known: &TopicMetadata, incoming: &Receiver<Request>) {
        loop {
            let request = match self.next_due() {
                Some(due) => incoming.recv_timeout(due.saturating_duration_since(Instant::now())),
                None => incoming.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match request {
                Ok(Request::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Request::Hold(topic)) => self.hold(topic),
                Ok(Request::Release(topic)) => self.release(&topic, known),
                Ok(Request::Refresh(topic)) => {
                    if let Some(tracked) = self.topics.get_mut(&topic) {
                        tracked.partitions_due = Instant::now();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if self.reads.limits {
                self.read_limits(native, known, incoming);
            }
            if self.reads.partitions {
                self.read_partitions(native, known, incoming);
            }
        }
    }

    /// When the next read is due, if any is.
    fn next_due(&self) -> Option<Instant> {
        let Reads { limits, partitions } = self.reads;
        let due = |t: &Tracked| match (limits, partitions) {
            (true, true) => Some(t.due.min(t.partitions_due)),
            (true, false) => Some(t.due),
            (false, true) => Some(t.partitions_due),
            (false, false) => None,
        };
        self.topics.values().filter_map(due).min()
    }

    fn hold(&mut self, topic: Topic) {
        let now = Instant::now();
        let tracked = self.topics.entry(topic).or_insert_with(|| Tracked {
            holders: 0,
            due: now,
            backoff: RETRY_AFTER,
            partitions_due: now,
        });
        tracked.holders += 1;
    }

    fn release(&mut self, topic: &Topic, known: &TopicMetadata) {
        let Some(tracked) = self.topics.get_mut(topic) else {
            return;
        };
        tracked.holders -= 1;
        if tracked.holders == 0 {
            self.topics.remove(topic);
            known.publish(|published| {
                published.limits.remove(topic);
                published.partitions.remove(topic);
            });
        }
    }

    /// The topics whose `due` (a field of theirs) has come.
    fn due(&self, due: impl Fn(&Tracked) -> Instant) -> Vec<Topic> {
        let now = Instant::now();
        let is_due = |(_, t): &(&Topic, &Tracked)| due(t) <= now;
        self.topics
            .iter()
            .filter(is_due)
            .map(|(topic, _)| topic.clone())
            .collect()
    }

    /// Reads every limit that is due, stopping early when the cluster
    /// cannot answer (all are retried together) or a request arrives.
    fn read_limits(
        &mut self,
        native: &NativeProducer,
        known: &TopicMetadata,
        incoming: &Receiver<Request>,
    ) {
        for topic in self.due(|t| t.due) {
            if !incoming.is_empty() {
                return; // serve it first (a stop, most urgently)
            }
            let read = native.topic_max_message_bytes(&topic, LOOKUP_TIMEOUT);
            let Some(tracked) = self.topics.get_mut(&topic) else {
                continue;
            };
            match read {
                Ok(limit) => {
                    tracked.due = Instant::now() + FRESH_FOR;
                    tracked.backoff = RETRY_AFTER;
                    if known.limit(&topic) != Limit::Known(limit) {
                        known.publish(|published| {
                            published.limits.insert(topic, Limit::Known(limit));
                        });
                    }
                }
                Err(LimitUnknown::Never) => {
                    self.reads.limits = false;
                    // Relaxed: the version bump below publishes it.
                    known.never.store(true, Relaxed);
                    known.publish(|_| {});
                    return;
                }
                Err(LimitUnknown::NoController) => {
                    let retry = Instant::now() + RETRY_AFTER;
                    for tracked in self.topics.values_mut() {
                        tracked.due = tracked.due.max(retry);
                    }
                    // Records held for a first read go on, unchecked.
                    let pending: Vec<Topic> = {
                        let known = known.known();
                        let pending = |topic: &&Topic| known.limit(topic) == Limit::Pending;
                        self.topics.keys().filter(pending).cloned().collect()
                    };
                    if !pending.is_empty() {
                        known.publish(|published| {
                            let unknown = pending.into_iter().map(|t| (t, Limit::Unknown));
                            published.limits.extend(unknown);
                        });
                    }
                    return;
                }
                Err(LimitUnknown::Failed(reason)) => {
                    log::debug!("max.message.bytes of topic {topic:?} unknown: {reason}");
                    tracked.due = Instant::now() + tracked.backoff;
                    tracked.backoff = (tracked.backoff * 2).min(RETRY_AT_MOST);
                    // A known limit stays trusted; a first read that failed
                    // lets the records go.
                    if known.limit(&topic) == Limit::Pending {
                        known.publish(|published| {
                            published.limits.insert(topic, Limit::Unknown);
                        });
                    }
                }
            }
        }
    }

    /// Reads the partitions of every topic that is due, stopping early when
    /// no broker answers (all are retried together) or a request arrives.
    fn read_partitions(
        &mut self,
        native: &NativeProducer,
        known: &TopicMetadata,
        incoming: &Receiver<Request>,
    ) {
        for topic in self.due(|t| t.partitions_due) {
            if !incoming.is_empty() {
                return;
            }
            let read = native.topic_partitions(&topic, LOOKUP_TIMEOUT);
            let Some(tracked) = self.topics.get_mut(&topic) else {
                continue;
            };
            match read {
                Ok(partitions) => {
                    tracked.partitions_due = Instant::now() + PARTITIONS_FRESH_FOR;
                    let fresh = known.known().partitions(&topic);
                    if fresh.as_deref() != Some(&partitions) {
                        known.publish(|published| {
                            published
                                .partitions
                                .insert(topic, Partitions::new(partitions));
                        });
                    }
                }
                Err(PartitionsUnknown::Unreachable(reason)) => {
                    log::debug!("partitions of topic {topic:?} unknown: {reason}");
                    let retry = Instant::now() + RETRY_AFTER;
                    for tracked in self.topics.values_mut() {
                        tracked.partitions_due = tracked.partitions_due.max(retry);
                    }
                    return;
                }
                Err(PartitionsUnknown::Topic(reason)) => {
                    log::debug!("partitions of topic {topic:?} unknown: {reason}");
                    tracked.partitions_due = Instant::now() + RETRY_AFTER;
                    // librdkafka's partitioner takes its records meanwhile.
                    if known.known().partitions(&topic).is_some() {
                        known.publish(|published| {
                            published.partitions.remove(&topic);
                        });
                    }
                }
            }
        }
    }
}
