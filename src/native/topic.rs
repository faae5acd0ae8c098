//! A cached librdkafka topic handle (`rd_kafka_topic_t`).
//!
//! `rd_kafka_produce_batch` takes a topic handle; creating one per batch
//! would cost a lookup and a refcount each time, so every worker keeps one
//! per topic for its lifetime.

use std::ffi::CString;

use rdkafka::bindings as rd;

use crate::error::Error;
use crate::native::client::NativeProducer;

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

/// A worker's topic handles, looked up by name.
#[derive(Debug, Default)]
pub(crate) struct TopicCache {
    handles: Vec<NativeTopic>,
    index: std::collections::HashMap<crate::record::Topic, u32>,
    /// The last topic looked up: consecutive records usually share it.
    last: Option<(crate::record::Topic, u32)>,
}

impl TopicCache {
    /// The index of `topic`'s handle, created on first use.
    pub(crate) fn get(
        &mut self,
        producer: &NativeProducer,
        topic: &crate::record::Topic,
    ) -> Result<u32, Error> {
        if let Some((last, index)) = &self.last {
            if last == topic {
                return Ok(*index);
            }
        }
        let index = match self.index.get(topic) {
            Some(&index) => index,
            None => {
                self.handles.push(NativeTopic::new(producer, topic)?);
                let index = (self.handles.len() - 1) as u32;
                self.index.insert(topic.clone(), index);
                index
            }
        };
        self.last = Some((topic.clone(), index));
        Ok(index)
    }

    /// The handle at `index` (from [`TopicCache::get`]).
    pub(crate) fn handle(&self, index: u32) -> &NativeTopic {
        &self.handles[index as usize]
    }
}
