//! A cached librdkafka topic handle (`rd_kafka_topic_t`).
//!
//! `rd_kafka_produce_batch` takes a topic handle; creating one per batch
//! would cost a lookup and a refcount each time, so every worker keeps one
//! per topic for its lifetime.

use std::collections::HashMap;
use std::ffi::CString;
use std::time::{Duration, Instant};

use rdkafka::bindings as rd;

use crate::error::Error;
use crate::native::client::NativeProducer;
use crate::record::Topic;

/// An owned reference to a librdkafka topic object.
#[derive(Debug)]
pub(crate) struct NativeTopic {
    ptr: *mut rd::rd_kafka_topic_t,
}

// SAFETY: librdkafka topic handles are thread-safe reference-counted objects.
unsafe impl Send for NativeTopic {}

impl NativeTopic {
    /// Creates a handle for `name` (already validated as a topic name).
    pub(crate) fn new(producer: &NativeProducer, name: &str) -> Result<Self, Error> {
        let c_name = CString::new(name).map_err(|_| Error::InvalidTopic {
            topic: name.into(),
            reason: "a topic name cannot contain NUL",
        })?;
        // SAFETY: the client pointer is valid while `producer` lives, the name
        // is NUL-terminated, and a NULL conf means the default topic conf.
        let ptr = unsafe {
            rd::rd_kafka_topic_new(producer.ptr(), c_name.as_ptr(), std::ptr::null_mut())
        };
        if ptr.is_null() {
            return Err(Error::InvalidTopic {
                topic: name.into(),
                reason: "librdkafka refused to create a handle for it",
            });
        }
        Ok(Self { ptr })
    }

    pub(crate) fn ptr(&self) -> *mut rd::rd_kafka_topic_t {
        self.ptr
    }
}

impl Drop for NativeTopic {
    fn drop(&mut self) {
        // SAFETY: we own one reference, created by `rd_kafka_topic_new`, and
        // the client outlives every worker that holds topic handles.
        unsafe { rd::rd_kafka_topic_destroy(self.ptr) };
    }
}

/// How long a topic's `max.message.bytes` is trusted before it is read
/// again, and how long to wait before retrying a failed read.
const LIMIT_FRESH_FOR: Duration = Duration::from_secs(300);
const LIMIT_RETRY_AFTER: Duration = Duration::from_secs(30);
const LIMIT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// A topic handle with the topic's `max.message.bytes`, when known.
#[derive(Debug)]
struct Entry {
    handle: NativeTopic,
    limit: Option<usize>,
    /// When to read the limit again.
    refresh_at: Instant,
}

/// A topic as a worker sees it: its handle's index and its batch-size limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TopicInfo {
    pub(crate) index: u32,
    /// The topic's `max.message.bytes`, if known and checked.
    pub(crate) limit: Option<usize>,
}

/// A worker's topic handles, looked up by name.
#[derive(Debug, Default)]
pub(crate) struct TopicCache {
    entries: Vec<Entry>,
    index: HashMap<Topic, u32>,
    /// The last topic looked up: consecutive records usually share it.
    last: Option<(Topic, TopicInfo)>,
    /// Whether to read topic limits (off when batches are compressed: the
    /// broker checks the compressed size, which we cannot know).
    check_limits: bool,
}

impl TopicCache {
    pub(crate) fn new(check_limits: bool) -> Self {
        Self {
            check_limits,
            ..Self::default()
        }
    }

    /// The handle index and limit of `topic`, created (and the limit read)
    /// on first use.
    pub(crate) fn get(
        &mut self,
        producer: &NativeProducer,
        topic: &Topic,
    ) -> Result<TopicInfo, Error> {
        if let Some(info) = self.get_ready(topic) {
            return Ok(info);
        }
        let index = match self.index.get(topic) {
            Some(&index) => index,
            None => {
                self.entries.push(Entry {
                    handle: NativeTopic::new(producer, topic)?,
                    limit: None,
                    refresh_at: Instant::now(),
                });
                let index = (self.entries.len() - 1) as u32;
                self.index.insert(topic.clone(), index);
                index
            }
        };
        let entry = &mut self.entries[index as usize];
        if self.check_limits && entry.refresh_at <= Instant::now() {
            match producer.topic_max_message_bytes(topic, LIMIT_LOOKUP_TIMEOUT) {
                Ok(limit) => {
                    entry.limit = Some(limit);
                    entry.refresh_at = Instant::now() + LIMIT_FRESH_FOR;
                }
                Err(reason) => {
                    log::debug!("max.message.bytes of topic {topic:?} unknown: {reason}");
                    entry.refresh_at = Instant::now() + LIMIT_RETRY_AFTER;
                }
            }
        }
        Ok(self.remember(topic, index))
    }

    /// The handle index and limit of `topic` if its handle exists and its
    /// limit needs no reading now: what a round that must not wait may use.
    pub(crate) fn get_ready(&mut self, topic: &Topic) -> Option<TopicInfo> {
        if let Some((last, info)) = &self.last {
            if last == topic {
                return Some(*info);
            }
        }
        let index = *self.index.get(topic)?;
        if self.check_limits && self.entries[index as usize].refresh_at <= Instant::now() {
            return None;
        }
        Some(self.remember(topic, index))
    }

    /// `topic`'s info from its entry, kept as the last topic looked up.
    fn remember(&mut self, topic: &Topic, index: u32) -> TopicInfo {
        let info = TopicInfo {
            index,
            limit: self.entries[index as usize].limit,
        };
        self.last = Some((topic.clone(), info));
        info
    }

    /// The handle at `index` (from [`TopicCache::get`]).
    pub(crate) fn handle(&self, index: u32) -> &NativeTopic {
        &self.entries[index as usize].handle
    }
}
