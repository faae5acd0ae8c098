//! Everything that touches a raw librdkafka pointer lives here, behind small
//! owners that release what they hold when dropped.
//!
//! - [`client`]: the producer handle, its delivery-report route and its queues;
//! - [`callbacks`]: the `extern "C"` functions librdkafka calls;
//! - [`topic`]: cached `rd_kafka_topic_t` handles, with each topic's size
//!   limit and partitions, and the sticky choice of partition;
//! - [`admin`]: reading a topic's `max.message.bytes` and partitions;
//! - [`metadata`]: the thread that reads them, off the hand-over path;
//! - [`partitioner`]: librdkafka's key hashes, for keyed records;
//! - [`handover`]: giving a batch of records to librdkafka;
//! - [`reachability`]: failing records when every broker refuses us;
//! - [`oauth`]: the OAUTHBEARER token thread;
//! - [`txn`]: the transactional calls and consumer-group metadata.
//!
//! Here too, the configuration helpers `config.rs` checks with: reading a
//! topic-level property back, and asking librdkafka which properties it
//! lists and which it redacts.

pub(crate) mod admin;
pub(crate) mod callbacks;
pub(crate) mod client;
pub(crate) mod config;
pub(crate) mod handover;
pub(crate) mod metadata;
pub(crate) mod oauth;
pub(crate) mod owned;
pub(crate) mod partitioner;
pub(crate) mod reachability;
pub(crate) mod reports;
pub(crate) mod topic;
pub(crate) mod txn;

use std::ffi::{c_char, CStr, CString};

use rdkafka::bindings as rd;
use rdkafka::config::{ClientConfig, NativeClientConfig};

extern "C" {
    /// librdkafka's own redaction: overwrites the value of every string
    /// property it flags `_RK_SENSITIVE` in `conf` (`rdkafka_conf.c`).
    /// Declared only in the internal `rdkafka_conf.h`, not in `rdkafka.h`,
    /// but exported by the static library rdkafka-sys links. (A shared
    /// librdkafka built with its linker script exports only the public API;
    /// with rdkafka's `dynamic-linking` feature this may fail to link.)
    fn rd_kafka_conf_desensitize(conf: *mut rd::rd_kafka_conf_t);
}

#[cfg(unix)]
extern "C" {
    // POSIX 2008 (glibc, musl, macOS 10.13+, the BSDs); `FILE` is opaque.
    fn open_memstream(buffer: *mut *mut c_char, size: *mut usize) -> *mut std::ffi::c_void;
    fn fclose(stream: *mut std::ffi::c_void) -> std::ffi::c_int;
    fn free(pointer: *mut std::ffi::c_void);
}

/// A timeout as librdkafka's milliseconds (saturating at `c_int::MAX`).
pub(crate) fn millis(timeout: std::time::Duration) -> std::ffi::c_int {
    std::ffi::c_int::try_from(timeout.as_millis()).unwrap_or(std::ffi::c_int::MAX)
}

/// What a [`purge`] takes out of librdkafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purge {
    /// The records still queued.
    Queued,
    /// Those and the records in flight.
    QueuedAndInFlight,
}

/// Fails the records librdkafka holds (`what` of them) with a purge error,
/// each reported through the delivery-report path; does not wait.
///
/// # Safety
/// `rk` is a live producer handle.
pub(crate) unsafe fn purge(rk: *mut rd::rd_kafka_t, what: Purge) {
    let mut flags = rd::RD_KAFKA_PURGE_F_QUEUE | rd::RD_KAFKA_PURGE_F_NON_BLOCKING;
    if what == Purge::QueuedAndInFlight {
        flags |= rd::RD_KAFKA_PURGE_F_INFLIGHT;
    }
    // SAFETY: live handle (function contract); purge is thread-safe and,
    // non-blocking, waits for no other thread.
    let err = unsafe { rd::rd_kafka_purge(rk, flags) };
    if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        log::warn!("rd_kafka_purge failed: {err:?}");
    }
}

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

/// A fresh configuration holding only librdkafka's defaults, destroyed on
/// drop (rust-rdkafka's owner).
pub(crate) fn fresh_config() -> Option<NativeClientConfig> {
    // An empty `ClientConfig` sets nothing, so this cannot fail in practice.
    ClientConfig::new().create_native_config().ok()
}

/// What librdkafka's redaction does to `key` set to `value` on a fresh
/// configuration: the value read back before and after
/// `rd_kafka_conf_desensitize`. `None` if librdkafka refuses the value
/// (or cannot read it back).
pub(crate) fn desensitized(key: &str, value: &str) -> Option<(String, String)> {
    let scratch = fresh_config()?;
    let (c_key, c_value) = (CString::new(key).ok()?, CString::new(value).ok()?);
    let mut errstr = [0 as c_char; 512];
    // SAFETY: `scratch` owns a live configuration; `c_key` and `c_value`
    // are NUL-terminated; `errstr` is a buffer of the length passed.
    let set = unsafe {
        rd::rd_kafka_conf_set(
            scratch.ptr(),
            c_key.as_ptr(),
            c_value.as_ptr(),
            errstr.as_mut_ptr(),
            errstr.len(),
        )
    };
    if set != rd::rd_kafka_conf_res_t::RD_KAFKA_CONF_OK {
        return None;
    }
    let before = scratch.get(key).ok()?;
    // SAFETY: `scratch` owns a live configuration that nothing else uses;
    // desensitizing only overwrites string values in place.
    unsafe { rd_kafka_conf_desensitize(scratch.ptr()) };
    let after = scratch.get(key).ok()?;
    Some((before, after))
}

/// The names of the global properties `rd_kafka_conf_dump` lists for a
/// fresh configuration: every one that has a value, hidden ones included.
/// A string property without a default (every sensitive one) is left out;
/// [`properties_table`] lists those.
pub(crate) fn dumped_names() -> Vec<String> {
    let Some(fresh) = fresh_config() else {
        return Vec::new();
    };
    let mut count = 0;
    // SAFETY: `fresh` owns a live configuration; librdkafka returns an
    // array of `count` C strings (name, value, name, value, ...) that we
    // free below with `rd_kafka_conf_dump_free`.
    let dump = unsafe { rd::rd_kafka_conf_dump(fresh.ptr(), &mut count) };
    let names = (0..count)
        .step_by(2)
        // SAFETY: `dump` holds `count` NUL-terminated strings, alive until
        // the free below.
        .map(|i| unsafe { c_str(*dump.add(i)) })
        .collect();
    // SAFETY: the array and count `rd_kafka_conf_dump` returned, freed once.
    unsafe { rd::rd_kafka_conf_dump_free(dump, count) };
    names
}

/// librdkafka's table of every property that is not hidden, global and
/// topic, as `rd_kafka_conf_properties_show` prints it (the text of
/// `CONFIGURATION.md`: one line per property, `name | ... *Type: type*`).
/// `None` where no in-memory stream is available.
#[cfg(unix)]
pub(crate) fn properties_table() -> Option<String> {
    let mut buffer: *mut c_char = std::ptr::null_mut();
    let mut size = 0;
    // SAFETY: both out-pointers are valid; once the stream is closed they
    // describe a `malloc`ed buffer that we own.
    let stream = unsafe { open_memstream(&mut buffer, &mut size) };
    if stream.is_null() {
        return None;
    }
    // SAFETY: `stream` is an open stream (`FILE *`, whose type the
    // `cast` takes from the binding); librdkafka only writes to it.
    unsafe { rd::rd_kafka_conf_properties_show(stream.cast()) };
    // SAFETY: closes the stream we opened, once; this sets `buffer` and
    // `size` to the text written.
    let closed = unsafe { fclose(stream) } == 0;
    let table = (closed && !buffer.is_null()).then(|| {
        // SAFETY: after a successful `fclose`, `buffer` holds `size` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(buffer.cast::<u8>(), size) };
        String::from_utf8_lossy(bytes).into_owned()
    });
    // SAFETY: `buffer` is NULL or was allocated by `open_memstream`, and is
    // freed once, after its last use above.
    unsafe { free(buffer.cast()) };
    table
}

/// See the `unix` version: without `open_memstream`, no table.
#[cfg(not(unix))]
pub(crate) fn properties_table() -> Option<String> {
    None
}
