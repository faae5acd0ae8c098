//! Everything that touches a raw librdkafka pointer lives here, behind small
//! owners that release what they hold when dropped.
//!
//! - [`client`]: the producer handle, its delivery-report route and its queues;
//! - [`callbacks`]: the `extern "C"` functions librdkafka calls;
//! - [`topic`]: cached `rd_kafka_topic_t` handles and topic size limits;
//! - [`admin`]: reading a topic's `max.message.bytes`;
//! - [`handover`]: giving a batch of records to librdkafka;
//! - [`txn`]: the transactional calls and consumer-group metadata.

pub(crate) mod admin;
pub(crate) mod callbacks;
pub(crate) mod client;
pub(crate) mod handover;
pub(crate) mod topic;
pub(crate) mod txn;

use std::ffi::{c_char, CStr, CString};

use rdkafka::bindings as rd;
use rdkafka::config::NativeClientConfig;

/// Copies a C string librdkafka gave us (NULL reads as empty).
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string valid for this call.
pub(crate) unsafe fn c_str(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: non-null and NUL-terminated (function contract).
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// Runs librdkafka's two-call `*_conf_get` protocol (ask the size, then
/// fill a buffer of it) through `get`; `None` if librdkafka refuses.
fn read_property(
    get: impl Fn(*mut c_char, &mut usize) -> rd::rd_kafka_conf_res_t,
) -> Option<String> {
    let mut size = 0;
    if get(std::ptr::null_mut(), &mut size) != rd::rd_kafka_conf_res_t::RD_KAFKA_CONF_OK {
        return None;
    }
    let mut buf = vec![0u8; size];
    if get(buf.as_mut_ptr().cast(), &mut size) != rd::rd_kafka_conf_res_t::RD_KAFKA_CONF_OK {
        return None;
    }
    // The value is NUL-terminated within `buf`.
    Some(
        CStr::from_bytes_until_nul(&buf)
            .ok()?
            .to_string_lossy()
            .into_owned(),
    )
}

/// An owned topic configuration, destroyed on drop.
struct TopicConf(*mut rd::rd_kafka_topic_conf_t);

impl Drop for TopicConf {
    fn drop(&mut self) {
        // SAFETY: we own this configuration, from `rd_kafka_topic_conf_new`,
        // and nothing else refers to it.
        unsafe { rd::rd_kafka_topic_conf_destroy(self.0) };
    }
}

/// A topic-level property of `conf` as librdkafka parsed it: from `conf`'s
/// default topic configuration, which every topic handle of ours uses
/// (`rd_kafka_topic_new` with a NULL configuration), or librdkafka's
/// default when no topic-level property was set. `None` for a name that is
/// not a topic property.
///
/// `NativeClientConfig::get` cannot tell these: for a name that is also a
/// global property (`compression.codec`) it reads the global one, and for a
/// topic-only name it fails while `conf` has no default topic configuration.
pub(crate) fn default_topic_property(conf: &NativeClientConfig, key: &str) -> Option<String> {
    let key = CString::new(key).ok()?;
    // SAFETY: `conf` owns a live configuration; the result is NULL or a
    // topic configuration that `conf` owns and keeps while it lives.
    let borrowed = unsafe { rd::rd_kafka_conf_get_default_topic_conf(conf.ptr()) };
    let fresh = borrowed.is_null().then(|| {
        // SAFETY: no precondition; `TopicConf` destroys the result.
        TopicConf(unsafe { rd::rd_kafka_topic_conf_new() })
    });
    let topic_conf = fresh.as_ref().map_or(borrowed, |fresh| fresh.0);
    read_property(|dest, size| {
        // SAFETY: `topic_conf` is live (owned by `conf` or by `fresh`, both
        // outlive this call), `key` is NUL-terminated, and `dest` is NULL or
        // a buffer of `*size` bytes (`read_property`).
        unsafe { rd::rd_kafka_topic_conf_get(topic_conf, key.as_ptr(), dest, size) }
    })
}
