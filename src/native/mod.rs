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

use std::ffi::{c_char, CStr};

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
