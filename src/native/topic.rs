//! A cached librdkafka topic handle (`rd_kafka_topic_t`).
//!
//! `rd_kafka_produce_batch` takes a topic handle; creating one per batch
//! would cost a lookup and a refcount each time, so every worker keeps one
//! per topic while it uses the topic.

use std::collections::HashMap;
use std::ffi::CString;
use std::time::{Duration, Instant};

use rdkafka::bindings as rd;

use crate::error::Error;
use crate::native::client::NativeProducer;
use crate::native::limits::{Limit, TopicLimits, FIRST_READ_WAIT};
use crate::native::owned::Owned;
use crate::record::Topic;
use crate::sync::Arc;

/// An owned reference to a librdkafka topic object.
#[derive(Debug)]
pub(crate) struct NativeTopic(Owned<rd::rd_kafka_topic_t>);

impl NativeTopic {
    /// Creates a handle for `name` (already validated as a topic name).
    pub(crate) fn new(producer: &NativeProducer, name: &str) -> Result<Self, Error> {
        let c_name = CString::new(name).map_err(|_| Error::InvalidTopic {
            topic: name.into(),
            reason: "a topic name cannot contain NUL",
        })?;
        // SAFETY: the client pointer is valid while `producer` lives, the name
        // is NUL-terminated, and a NULL conf means the default topic conf.
        // The reference is ours (`rd_kafka_topic_new`); the client outlives
        // every worker that holds topic handles.
        let owned = unsafe {
            Owned::from_raw(rd::rd_kafka_topic_new(
                producer.ptr(),
                c_name.as_ptr(),
                std::ptr::null_mut(),
            ))
        };
        owned.map(Self).ok_or_else(|| Error::InvalidTopic {
            topic: name.into(),
            reason: "librdkafka refused to create a handle for it",
        })
    }

    pub(crate) fn ptr(&self) -> *mut rd::rd_kafka_topic_t {
        self.0.ptr()
    }
}

/// A worker keeps at least this many topic handles before it evicts idle
/// ones (see [`TopicCache::sweep`]).
const SWEEP_AT_LEAST: usize = 256;

/// Handles idle for about this long are evicted even when there are few.
const IDLE_SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Sweeps asked for between two looks at the clock for an idle sweep.
const SWEEP_CLOCK_EVERY: u32 = 64;

/// A topic handle with the topic's `max.message.bytes`, when known.
#[derive(Debug)]
struct Entry {
    topic: Topic,
    handle: NativeTopic,
    limit: Limit,
    /// When the handle was made (a pending first read is waited for up to
    /// `FIRST_READ_WAIT` from then).
    created: Instant,
    /// Looked up since the last sweep.
    used: bool,
}

/// A topic as a worker sees it: its handle's index and its batch-size limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TopicInfo {
    pub(crate) index: u32,
    /// The topic's `max.message.bytes`, if known and checked.
    pub(crate) limit: Option<usize>,
    /// The first read of the limit is under way: hold the topic's records
    /// (see `limits.rs`).
    pub(crate) pending: bool,
}

/// A worker's topic handles, looked up by name, with the limits the
/// producer's limits thread has read for them (`limits.rs`).
///
/// Bounded: once it holds [`SWEEP_AT_LEAST`] handles (or twice as many as
/// survived the last sweep), and in any case about every
/// [`IDLE_SWEEP_EVERY`], a sweep drops those not used since the one
/// before, so a producer that writes to ever new topics keeps only the
/// ones in use: at most about twice those used between two sweeps, and at
/// most [`SWEEP_AT_LEAST`] more.
#[derive(Debug)]
pub(crate) struct TopicCache {
    entries: Vec<Entry>,
    index: HashMap<Topic, u32>,
    /// The last topic looked up: consecutive records usually share it.
    last: Option<(Topic, TopicInfo)>,
    /// Where limits come from; `None` when they are not checked (batches
    /// are compressed: the broker checks the compressed size, which we
    /// cannot know).
    limits: Option<Arc<TopicLimits>>,
    /// The limits' version this cache last took.
    seen: u64,
    /// Entries at which the next sweep evicts.
    sweep_at: usize,
    /// Sweeps asked for since the clock was last read.
    asked: u32,
    /// When the next idle sweep is due.
    idle_sweep_at: Instant,
}

impl TopicCache {
    pub(crate) fn new(limits: Option<Arc<TopicLimits>>) -> Self {
        Self {
            entries: Vec::new(),
            index: HashMap::new(),
            last: None,
            limits,
            seen: 0,
            sweep_at: SWEEP_AT_LEAST,
            asked: 0,
            idle_sweep_at: Instant::now() + IDLE_SWEEP_EVERY,
        }
    }

    /// The handle index and limit of `topic`, its handle created (and its
    /// limit asked for) on first use. Never waits for the limit.
    pub(crate) fn get(
        &mut self,
        producer: &NativeProducer,
        topic: &Topic,
    ) -> Result<TopicInfo, Error> {
        if let Some(info) = self.get_ready(topic) {
            return Ok(info);
        }
        let handle = NativeTopic::new(producer, topic)?;
        let limit = match &self.limits {
            Some(limits) => {
                limits.request(topic);
                limits.get(topic)
            }
            None => Limit::Unknown,
        };
        self.entries.push(Entry {
            topic: topic.clone(),
            handle,
            limit,
            created: Instant::now(),
            used: true,
        });
        let index = (self.entries.len() - 1) as u32;
        self.index.insert(topic.clone(), index);
        Ok(self.remember(topic, index))
    }

    /// The handle index and limit of `topic` if its handle exists: what a
    /// round that must not create handles may use.
    pub(crate) fn get_ready(&mut self, topic: &Topic) -> Option<TopicInfo> {
        self.take_new_limits();
        if let Some((last, info)) = &self.last {
            if last == topic {
                return Some(*info);
            }
        }
        let index = *self.index.get(topic)?;
        Some(self.remember(topic, index))
    }

    /// Takes the limits the limits thread published since the last look.
    fn take_new_limits(&mut self) {
        let Some(limits) = &self.limits else {
            return;
        };
        let version = limits.version();
        if version == self.seen {
            return;
        }
        self.seen = version;
        let known = limits.known();
        for entry in &mut self.entries {
            entry.limit = match known.get(&entry.topic) {
                // A pending read we stopped waiting for stays unchecked.
                Limit::Pending if entry.limit == Limit::Unknown => Limit::Unknown,
                limit => limit,
            };
        }
        self.last = None;
    }

    /// `topic`'s info from its entry, kept as the last topic looked up
    /// unless its first read is pending.
    fn remember(&mut self, topic: &Topic, index: u32) -> TopicInfo {
        let entry = &mut self.entries[index as usize];
        entry.used = true;
        if entry.limit == Limit::Pending && entry.created.elapsed() >= FIRST_READ_WAIT {
            entry.limit = Limit::Unknown; // waited long enough: unchecked
        }
        let info = TopicInfo {
            index,
            limit: match entry.limit {
                Limit::Known(limit) => Some(limit),
                Limit::Pending | Limit::Unknown => None,
            },
            pending: entry.limit == Limit::Pending,
        };
        self.last = (!info.pending).then(|| (topic.clone(), info));
        info
    }

    /// The info of the topic at `index`, now (for records held while its
    /// first read was pending).
    pub(crate) fn info(&mut self, index: u32) -> TopicInfo {
        self.take_new_limits();
        let topic = self.entries[index as usize].topic.clone();
        self.remember(&topic, index)
    }

    /// The handle at `index` (from [`TopicCache::get`]).
    pub(crate) fn handle(&self, index: u32) -> &NativeTopic {
        &self.entries[index as usize].handle
    }

    /// When there are many handles, drops those not used since the last
    /// sweep. Handle indices change: call it only while no batch refers to
    /// one. Returns whether it swept.
    pub(crate) fn sweep(&mut self) -> bool {
        if self.entries.len() < self.sweep_at && !self.idle_sweep_due() {
            return false;
        }
        self.idle_sweep_at = Instant::now() + IDLE_SWEEP_EVERY;
        let entries = std::mem::take(&mut self.entries);
        for mut entry in entries {
            if entry.used {
                entry.used = false;
                self.entries.push(entry);
            } else if let Some(limits) = &self.limits {
                limits.release(&entry.topic);
            }
        }
        self.index = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, entry)| (entry.topic.clone(), i as u32))
            .collect();
        self.last = None;
        self.sweep_at = (self.entries.len() * 2).max(SWEEP_AT_LEAST);
        true
    }

    /// Whether an idle sweep is due (the clock is read once per
    /// [`SWEEP_CLOCK_EVERY`] calls).
    fn idle_sweep_due(&mut self) -> bool {
        self.asked += 1;
        if self.asked < SWEEP_CLOCK_EVERY {
            return false;
        }
        self.asked = 0;
        Instant::now() >= self.idle_sweep_at
    }

    /// Topic handles held.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}
