//! Topic size limits, read off the hand-over path.
//!
//! Reading a topic's `max.message.bytes` (`DescribeConfigs`, see
//! [`admin`](super::admin)) blocks for a round trip, and for seconds when
//! the cluster is slow or down. A worker that did it itself would hold up
//! every other topic's records meanwhile. So one thread per producer,
//! `aioproducer-limits`, does every lookup, and workers never wait for one:
//!
//! - a worker that makes a topic handle asks for the topic
//!   ([`TopicLimits::request`], a channel send); while the first read is
//!   under way ([`Limit::Pending`]) it holds that topic's records, for at
//!   most [`FIRST_READ_WAIT`], and hands every other topic's over as
//!   usual; once the read is done, or failed, or took too long, the
//!   records go, checked when the limit is known and unchecked otherwise
//!   (the broker is then the judge, as without these checks);
//! - the thread reads the limit, publishes it in a map and bumps
//!   `version`; each worker compares `version` with the one it last saw
//!   (one load per record) and takes the new limits when it moved;
//! - a known limit is read again every [`FRESH_FOR`]; a failed read is
//!   retried after [`RETRY_AFTER`], doubling up to [`RETRY_AT_MOST`]; while
//!   no controller is known (the cluster is down or not reached yet) every
//!   topic is retried each [`RETRY_AFTER`], so limits are known within
//!   about a second of the cluster answering;
//! - on a cluster that answers no admin requests (librdkafka's mock
//!   cluster) the thread gives up for good;
//! - each worker counts as one holder of each topic it has a handle for
//!   and lets go ([`TopicLimits::release`]) when it evicts the handle: a
//!   topic nobody holds is forgotten, so the map and the re-reads stay
//!   bounded by the topics in use.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;

use crate::native::client::{LimitUnknown, NativeProducer};
use crate::record::Topic;
use crate::sync::Arc;

/// How long a topic's limit is trusted before it is read again.
const FRESH_FOR: Duration = Duration::from_secs(300);
/// The first wait before a failed read is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// The longest wait between attempts for a topic whose reads keep failing.
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
    /// Could not be read: records go unchecked.
    Unknown,
}

enum Request {
    /// A worker holds (made a handle for) the topic.
    Hold(Topic),
    /// A worker let go of the topic.
    Release(Topic),
    Stop,
}

/// The producer's known topic limits, and the way to ask for more.
#[derive(Debug)]
pub(crate) struct TopicLimits {
    /// Topics read at least once; a topic absent is [`Limit::Pending`].
    known: Mutex<HashMap<Topic, Limit>>,
    /// The cluster answers no admin requests: every limit is unknown.
    never: AtomicBool,
    /// Bumped whenever `known` changes.
    version: AtomicU64,
    requests: Sender<Request>,
}

impl TopicLimits {
    /// Starts the lookup thread on `native`; join the handle after
    /// [`TopicLimits::stop`], before the client is destroyed.
    pub(crate) fn start(
        native: Arc<NativeProducer>,
    ) -> std::io::Result<(Arc<Self>, JoinHandle<()>)> {
        let (requests, incoming) = channel::unbounded();
        let limits = Arc::new(Self {
            known: Mutex::new(HashMap::new()),
            never: AtomicBool::new(false),
            version: AtomicU64::new(0),
            requests,
        });
        let published = Arc::clone(&limits);
        let thread = std::thread::Builder::new()
            .name("aioproducer-limits".into())
            .spawn(move || Lookups::default().run(&native, &published, &incoming))?;
        Ok((limits, thread))
    }

    /// Counts the calling worker as a holder of `topic`, whose limit is then
    /// read (unless known) and kept fresh.
    pub(crate) fn request(&self, topic: &Topic) {
        // The thread outlives every worker: the send cannot fail before stop.
        let _ = self.requests.send(Request::Hold(topic.clone()));
    }

    /// The calling worker no longer holds `topic`.
    pub(crate) fn release(&self, topic: &Topic) {
        let _ = self.requests.send(Request::Release(topic.clone()));
    }

    /// Bumped whenever a limit changes.
    pub(crate) fn version(&self) -> u64 {
        // Relaxed: the map's lock publishes the limits themselves.
        self.version.load(Relaxed)
    }

    /// What is known of `topic`'s limit.
    pub(crate) fn get(&self, topic: &Topic) -> Limit {
        self.known().get(topic)
    }

    /// The known limits, locked once for several look-ups.
    pub(crate) fn known(&self) -> Known<'_> {
        Known {
            // Relaxed: set once, before a version bump that workers look at.
            never: self.never.load(Relaxed),
            map: self.known.lock(),
        }
    }

    /// Asks the thread to exit.
    pub(crate) fn stop(&self) {
        let _ = self.requests.send(Request::Stop);
    }

    fn publish(&self, change: impl FnOnce(&mut HashMap<Topic, Limit>)) {
        change(&mut self.known.lock());
        // Relaxed: see `version`.
        self.version.fetch_add(1, Relaxed);
    }
}

/// The known limits, under their lock ([`TopicLimits::known`]).
pub(crate) struct Known<'a> {
    never: bool,
    map: parking_lot::MutexGuard<'a, HashMap<Topic, Limit>>,
}

impl Known<'_> {
    /// What is known of `topic`'s limit.
    pub(crate) fn get(&self, topic: &Topic) -> Limit {
        if self.never {
            return Limit::Unknown;
        }
        self.map.get(topic).copied().unwrap_or(Limit::Pending)
    }
}

/// One topic, as the lookup thread tracks it.
#[derive(Debug)]
struct Tracked {
    holders: usize,
    due: Instant,
    /// The wait before the next attempt after a failure.
    backoff: Duration,
}

/// The lookup thread's state.
#[derive(Debug, Default)]
struct Lookups {
    topics: HashMap<Topic, Tracked>,
    /// The cluster answers no admin requests: nothing more to do.
    given_up: bool,
}

impl Lookups {
    fn run(mut self, native: &NativeProducer, limits: &TopicLimits, incoming: &Receiver<Request>) {
        loop {
            let next = self.topics.values().map(|t| t.due).min();
            let request = match next {
                Some(due) => incoming.recv_timeout(due.saturating_duration_since(Instant::now())),
                None => incoming.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match request {
                Ok(Request::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Request::Hold(topic)) => self.hold(topic),
                Ok(Request::Release(topic)) => self.release(&topic, limits),
                Err(RecvTimeoutError::Timeout) => {}
            }
            if self.given_up {
                self.topics.clear();
                continue;
            }
            self.look_up_due(native, limits, incoming);
        }
    }

    fn hold(&mut self, topic: Topic) {
        let tracked = self.topics.entry(topic).or_insert_with(|| Tracked {
            holders: 0,
            due: Instant::now(),
            backoff: RETRY_AFTER,
        });
        tracked.holders += 1;
    }

    fn release(&mut self, topic: &Topic, limits: &TopicLimits) {
        let Some(tracked) = self.topics.get_mut(topic) else {
            return;
        };
        tracked.holders -= 1;
        if tracked.holders == 0 {
            self.topics.remove(topic);
            limits.publish(|known| {
                known.remove(topic);
            });
        }
    }

    /// Reads every limit that is due, stopping early when the cluster
    /// cannot answer (all are retried together) or a request arrives.
    fn look_up_due(
        &mut self,
        native: &NativeProducer,
        limits: &TopicLimits,
        incoming: &Receiver<Request>,
    ) {
        let now = Instant::now();
        let due: Vec<Topic> = self
            .topics
            .iter()
            .filter(|(_, t)| t.due <= now)
            .map(|(topic, _)| topic.clone())
            .collect();
        for topic in due {
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
                    if limits.get(&topic) != Limit::Known(limit) {
                        limits.publish(|known| {
                            known.insert(topic, Limit::Known(limit));
                        });
                    }
                }
                Err(LimitUnknown::Never) => {
                    self.given_up = true;
                    // Relaxed: the version bump below publishes it.
                    limits.never.store(true, Relaxed);
                    limits.publish(|_| {});
                    return;
                }
                Err(LimitUnknown::NoController) => {
                    let retry = Instant::now() + RETRY_AFTER;
                    for tracked in self.topics.values_mut() {
                        tracked.due = tracked.due.max(retry);
                    }
                    // Records held for a first read go on, unchecked.
                    let pending: Vec<Topic> = {
                        let known = limits.known();
                        let pending = |topic: &&Topic| known.get(topic) == Limit::Pending;
                        self.topics.keys().filter(pending).cloned().collect()
                    };
                    if !pending.is_empty() {
                        limits.publish(|known| {
                            known.extend(pending.into_iter().map(|t| (t, Limit::Unknown)));
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
                    if limits.get(&topic) == Limit::Pending {
                        limits.publish(|known| {
                            known.insert(topic, Limit::Unknown);
                        });
                    }
                }
            }
        }
    }
}
