//! The librdkafka producer handle and the route its delivery reports take.
//!
//! rust-rdkafka's `BaseProducer` reads delivery reports as events that a
//! thread must poll. We want the opposite: librdkafka's own thread completes
//! each record's future the moment its report exists, and no thread of ours
//! polls. The route:
//!
//! 1. build the native configuration from rust-rdkafka's `ClientConfig` and
//!    register our `extern "C"` delivery-report, log, error and statistics
//!    callbacks on it ([`callbacks`](super::callbacks));
//! 2. create the handle with rust-rdkafka's `Client::new`, which makes our
//!    [`ProducerContext`] the configuration's opaque (so callbacks find it);
//! 3. forward the main queue (where delivery reports, logs, errors and
//!    statistics are queued) to librdkafka's background queue, which its
//!    `rdk:bg` thread serves by calling those callbacks.
//!
//! On drop, the forwarding is undone and both queue references released
//! *before* the client is destroyed, as librdkafka requires.

use std::ffi::{c_void, CString};
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::client::Client;
use rdkafka::config::ClientConfig;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaType};
use rdkafka::ClientContext;

use crate::cluster::ClusterMetadata;
use crate::error::Error;
use crate::native::config::{native_config, REDACTED};
use crate::native::oauth::{token_channel, TokenRequests, TokenThread};
use crate::native::owned::Owned;
use crate::native::reachability::Reachability;
use crate::native::reports::Reports;
use crate::native::{admin, callbacks, purge, Purge};
use crate::oauth::OAuthTokenProvider;

/// Why a topic's `max.message.bytes` could not be read.
#[derive(Debug)]
pub(crate) enum LimitUnknown {
    /// The cluster names no reachable controller (librdkafka's mock
    /// cluster): no limit can ever be read.
    Never,
    /// No controller is known yet: the cluster is down or not reached.
    NoController,
    /// The read failed (timeout, unknown topic, ...).
    Failed(String),
}

/// What librdkafka's callbacks reach through the configuration opaque.
pub(crate) struct ProducerContext {
    pub(crate) reports: Box<dyn Reports>,
    /// Whether the cluster refuses us (`reachability.rs`).
    pub(crate) reachability: std::sync::Arc<Reachability>,
    /// The way to the OAUTHBEARER token thread, when the application gives
    /// tokens (`oauth.rs`).
    pub(crate) tokens: Option<std::sync::Arc<TokenRequests>>,
}

impl ClientContext for ProducerContext {}

/// An owned queue reference.
type Queue = Owned<rd::rd_kafka_queue_t>;

/// The producer handle with its delivery-report route installed.
pub(crate) struct NativeProducer {
    /// Main queue forwarded to `background`; un-forwarded on drop.
    main: Queue,
    _background: Queue,
    /// Whether the cluster answers admin requests: `ADMIN_UNKNOWN`, `_YES`
    /// or `_NO`.
    admin: AtomicU8,
    /// The OAUTHBEARER token thread, stopped before the handle is destroyed.
    tokens: Option<TokenThread>,
    client: Client<ProducerContext>,
}

const ADMIN_UNKNOWN: u8 = 0;
const ADMIN_YES: u8 = 1;
const ADMIN_NO: u8 = 2;

// SAFETY: librdkafka handles are thread-safe; the queue pointers are only
// used at construction and drop.
unsafe impl Send for NativeProducer {}
// SAFETY: as above.
unsafe impl Sync for NativeProducer {}

impl fmt::Debug for NativeProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeProducer")
            .field("rk", &self.client.native_ptr())
            .finish()
    }
}

impl NativeProducer {
    /// Creates the handle and routes its callbacks to librdkafka's thread.
    pub(crate) fn new(
        config: &ClientConfig,
        reports: Box<dyn Reports>,
        oauth: Option<std::sync::Arc<dyn OAuthTokenProvider>>,
    ) -> Result<Self, Error> {
        let native = native_config(config)?;
        // SAFETY: `native` is a valid configuration we own; the callbacks
        // match librdkafka's signatures and catch every panic.
        unsafe { callbacks::install(native.ptr(), oauth.is_some()) };
        let channel = oauth.as_ref().map(|_| token_channel());
        let reachability = std::sync::Arc::new(Reachability::default());
        if oauth.is_some() {
            reachability.expect_tokens();
        }
        let client = Client::new(
            config,
            native,
            RDKafkaType::RD_KAFKA_PRODUCER,
            ProducerContext {
                reports,
                reachability: std::sync::Arc::clone(&reachability),
                tokens: channel
                    .as_ref()
                    .map(|(requests, _)| std::sync::Arc::clone(requests)),
            },
        )
        .map_err(|e| Error::Client(e.to_string()))?;
        let rk = client.native_ptr();
        // SAFETY: `rk` is a live producer handle; both calls return new
        // references that `Queue` releases.
        let (main, background) = unsafe {
            (
                Queue::from_raw(rd::rd_kafka_queue_get_main(rk)),
                Queue::from_raw(rd::rd_kafka_queue_get_background(rk)),
            )
        };
        let (Some(main), Some(background)) = (main, background) else {
            return Err(Error::Client(
                "librdkafka could not start its background thread".into(),
            ));
        };
        // SAFETY: both queues belong to `rk` and stay referenced until drop.
        unsafe { rd::rd_kafka_queue_forward(main.ptr(), background.ptr()) };
        let tokens = match (oauth, channel) {
            // SAFETY: `Drop` stops the thread before the handle goes.
            (Some(provider), Some((requests, inbox))) => Some(
                unsafe { TokenThread::start(rk, provider, reachability, requests, inbox) }
                    .map_err(Error::thread("aioproducer-oauth"))?,
            ),
            _ => None,
        };
        Ok(Self {
            main,
            _background: background,
            admin: AtomicU8::new(ADMIN_UNKNOWN),
            tokens,
            client,
        })
    }

    /// The raw handle, valid while `self` lives.
    pub(crate) fn ptr(&self) -> *mut rd::rd_kafka_t {
        self.client.native_ptr()
    }

    /// The partitions of `topic`, read from the cluster (blocks for up to
    /// `timeout`; only the metadata thread calls it, see `metadata.rs`).
    pub(crate) fn topic_partitions(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> Result<admin::TopicPartitions, admin::PartitionsUnknown> {
        admin::topic_partitions(self.ptr(), topic, timeout)
    }

    /// The topic's `max.message.bytes`, read from the cluster (blocks for
    /// up to about `timeout`; only the metadata thread calls it, see
    /// `metadata.rs`). Fails at once on a cluster found unable to answer
    /// admin requests, and within `CONTROLLER_WAIT` when no broker has
    /// answered yet.
    pub(crate) fn topic_max_message_bytes(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> Result<usize, LimitUnknown> {
        const CONTROLLER_WAIT: Duration = Duration::from_millis(500);
        // Relaxed: a memo, written by the metadata thread alone.
        match self.admin.load(Relaxed) {
            ADMIN_NO => return Err(LimitUnknown::Never),
            ADMIN_UNKNOWN => match admin::controller_reachable(self.ptr(), CONTROLLER_WAIT) {
                Some(true) => self.admin.store(ADMIN_YES, Relaxed),
                Some(false) => {
                    self.admin.store(ADMIN_NO, Relaxed);
                    return Err(LimitUnknown::Never);
                }
                None => return Err(LimitUnknown::NoController),
            },
            _ => {}
        }
        admin::topic_max_message_bytes(self.ptr(), topic, timeout).map_err(LimitUnknown::Failed)
    }

    /// The cluster's metadata (every topic, or `topic`), waiting up to
    /// `timeout` for an answer.
    pub(crate) fn metadata(
        &self,
        topic: Option<&str>,
        timeout: Duration,
    ) -> Result<ClusterMetadata, Error> {
        admin::cluster_metadata(self.ptr(), topic, timeout).map_err(|e| match e {
            admin::MetadataError::Unreachable(error) => error,
            admin::MetadataError::Topic(reason) => Error::Client(reason.into()),
        })
    }

    /// Purges the records librdkafka holds if the cluster shuts the
    /// producer out (`reachability.rs`): called after each hand-over.
    pub(crate) fn purge_if_shut_out(&self) {
        if self.client.context().reachability.shut_out() {
            // SAFETY: live handle.
            unsafe { purge(self.ptr(), Purge::Queued) };
        }
    }

    /// Sets the SASL username and password librdkafka uses from its next
    /// authentication on (`rd_kafka_sasl_set_credentials`), and lifts a
    /// refusal of the old ones.
    pub(crate) fn set_sasl_credentials(&self, username: &str, password: &str) -> Result<(), Error> {
        let nul = |key: &str, value: String| Error::config(key, value, "contains a NUL byte");
        let user = CString::new(username).map_err(|_| nul("sasl.username", username.into()))?;
        let secret = CString::new(password).map_err(|_| nul("sasl.password", REDACTED.into()))?;
        // SAFETY: live handle and NUL-terminated strings, which librdkafka
        // copies; the returned error, if any, is ours to destroy.
        let error = unsafe {
            Owned::from_raw(rd::rd_kafka_sasl_set_credentials(
                self.ptr(),
                user.as_ptr(),
                secret.as_ptr(),
            ))
        };
        match error {
            None => {
                self.client.context().reachability.credentials_changed();
                Ok(())
            }
            // SAFETY: a live error object; its string lives as long.
            Some(error) => Err(unsafe {
                Error::Kafka {
                    code: RDKafkaErrorCode::from(rd::rd_kafka_error_code(error.ptr())),
                    detail: Some(crate::native::c_str(rd::rd_kafka_error_string(error.ptr()))),
                }
            }),
        }
    }

    /// Fails every record librdkafka holds with a purge error (reported
    /// through the delivery-report callback). Does not wait.
    pub(crate) fn purge(&self) {
        // SAFETY: live handle.
        unsafe { purge(self.ptr(), Purge::QueuedAndInFlight) };
    }
}

impl Drop for NativeProducer {
    fn drop(&mut self) {
        // The token thread uses the raw handle: it goes first.
        if let Some(tokens) = &mut self.tokens {
            tokens.stop();
        }
        // SAFETY: undo the forwarding while both queues are still referenced;
        // the queue references are released before `client` (field order).
        unsafe { rd::rd_kafka_queue_forward(self.main.ptr(), std::ptr::null_mut()) };
    }
}

/// The fatal error librdkafka raised on `rk`, if any, with its underlying
/// code (a record that failed with librdkafka's generic `_FATAL`, or was
/// purged by the purge librdkafka runs on a fatal error, reports this).
pub(crate) fn fatal_error(rk: *mut rd::rd_kafka_t) -> Option<Error> {
    let mut reason = [0 as std::ffi::c_char; 512];
    // SAFETY: `rk` is a live handle (callers are inside its callbacks or
    // hand-overs); librdkafka writes a NUL-terminated string of at most
    // `reason.len()` bytes.
    let code = unsafe { rd::rd_kafka_fatal_error(rk, reason.as_mut_ptr(), reason.len()) };
    if code == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return None;
    }
    Some(Error::Fatal {
        code: RDKafkaErrorCode::from(code),
        // SAFETY: NUL-terminated by librdkafka (zeroed before).
        reason: unsafe { crate::native::c_str(reason.as_ptr()) },
    })
}

/// The error a record that failed with `error` reports: the producer's
/// fatal error when librdkafka raised one (remembered in `shared`), since
/// then every failure (librdkafka's generic `_FATAL`, or the purge it runs
/// after a fatal error) comes from it; else `error`.
pub(crate) fn fatal_or<R: Reports + ?Sized>(
    reports: &R,
    rk: *mut rd::rd_kafka_t,
    error: Error,
) -> Error {
    match reports.fatal() {
        Some(fatal) => fatal.clone(),
        None => match fatal_error(rk) {
            Some(fatal) => reports.set_fatal(fatal),
            None => error,
        },
    }
}

/// The context behind librdkafka's configuration opaque.
///
/// # Safety
/// `opaque` is the opaque of a client created by [`NativeProducer::new`],
/// which is alive for the duration of the callback.
pub(crate) unsafe fn context<'a>(opaque: *mut c_void) -> &'a ProducerContext {
    // SAFETY: `Client::new` set the opaque to its `Arc<ProducerContext>`
    // pointer, which lives as long as the client (function contract).
    unsafe { &*opaque.cast::<ProducerContext>() }
}
