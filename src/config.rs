//! The builder: librdkafka properties plus the producer's own settings, and
//! the checks that turn bad configuration into an error that names it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rdkafka::config::{ClientConfig, NativeClientConfig};
use rdkafka::error::KafkaError;

use crate::error::Error;
use crate::native::default_topic_property;
use crate::producer::AioProducer;

/// librdkafka's `queue.buffering.max.messages` default, which is also our
/// default bound on records in flight.
const DEFAULT_MAX_IN_FLIGHT: usize = 100_000;

/// The largest bound on records in flight: librdkafka's own limit, which we
/// set one higher, stops at `i32::MAX`.
const LIMIT_MAX: usize = i32::MAX as usize - 1;

/// Shown instead of a secret's value.
const REDACTED: &str = "[redacted]";

/// Whether a property holds a secret that must never be printed.
pub(crate) fn is_secret(key: &str) -> bool {
    key.contains("password")
        || key.contains("secret")
        || key.contains("jaas")
        || key == "ssl.key.pem"
        || key == "sasl.oauthbearer.config"
}

/// The settings a producer is built from; see [`AioProducer::builder`].
///
/// ```
/// use std::time::Duration;
/// let builder = aioproducer::AioProducer::builder()
///     .bootstrap_servers("127.0.0.1:9092")
///     .set("acks", "all")
///     .set("sasl.password", "hunter2")
///     .workers(2)
///     .batch_size(1000)
///     .buffer_timeout(Duration::from_millis(50));
/// // Secrets never appear in Debug output.
/// assert!(!format!("{builder:?}").contains("hunter2"));
/// ```
#[derive(Clone)]
pub struct AioProducerBuilder {
    pub(crate) properties: BTreeMap<String, String>,
    pub(crate) workers: usize,
    pub(crate) ring_capacity: usize,
    pub(crate) batch_size: Option<usize>,
    pub(crate) buffer_timeout: Duration,
    pub(crate) drop_timeout: Duration,
}

impl Default for AioProducerBuilder {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            properties: BTreeMap::new(),
            workers: (cores / 2).clamp(1, 4),
            ring_capacity: 8192,
            batch_size: None,
            buffer_timeout: Duration::from_millis(100),
            drop_timeout: Duration::from_secs(5),
        }
    }
}

impl fmt::Debug for AioProducerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), if is_secret(k) { REDACTED } else { v.as_str() }))
            .collect();
        f.debug_struct("AioProducerBuilder")
            .field("properties", &properties)
            .field("workers", &self.workers)
            .field("ring_capacity", &self.ring_capacity)
            .field("batch_size", &self.batch_size)
            .field("buffer_timeout", &self.buffer_timeout)
            .field("drop_timeout", &self.drop_timeout)
            .finish()
    }
}

impl AioProducerBuilder {
    /// The brokers to bootstrap from (`bootstrap.servers`).
    pub fn bootstrap_servers(self, servers: impl Into<String>) -> Self {
        self.set("bootstrap.servers", servers)
    }

    /// Sets any librdkafka producer property (see librdkafka's
    /// `CONFIGURATION.md`). Checked by [`build`](Self::build).
    ///
    /// `queue.buffering.max.messages` also sets the producer's bound on
    /// records in flight. `enable.idempotence` defaults to `true` here (as
    /// in the Java client), unlike librdkafka's `false`.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// Number of worker threads that hand records to librdkafka (default:
    /// half the cores, 1 to 4).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Capacity of each worker's ring (default 8192). A full ring is
    /// backpressure: `produce` waits, `try_produce` hands the record back.
    pub fn ring_capacity(mut self, capacity: usize) -> Self {
        self.ring_capacity = capacity;
        self
    }

    /// Hold records in the worker until it has `records` of them or
    /// [`buffer_timeout`](Self::buffer_timeout) passes (the Python
    /// AIOProducer's batching). Unset (the default), a worker hands records
    /// over as soon as its ring is drained: no added latency at low load,
    /// large batches at high load.
    pub fn batch_size(mut self, records: usize) -> Self {
        self.batch_size = Some(records);
        self
    }

    /// The longest a record waits in the worker's batch before it is handed
    /// to librdkafka, when [`batch_size`](Self::batch_size) is set
    /// (default 100 ms). Enforced by the timer thread.
    pub fn buffer_timeout(mut self, timeout: Duration) -> Self {
        self.buffer_timeout = timeout;
        self
    }

    /// How long dropping the producer without [`AioProducer::close`] waits
    /// for outstanding records before failing them with
    /// [`Error::Purged`] (default 5 s).
    pub fn drop_timeout(mut self, timeout: Duration) -> Self {
        self.drop_timeout = timeout;
        self
    }

    /// Checks the configuration and starts the producer's threads.
    ///
    /// Fails with [`Error::Config`] naming the first property librdkafka or
    /// the producer refuses.
    pub fn build(self) -> Result<AioProducer, Error> {
        AioProducer::start(self)
    }

    /// Checks our own settings and assembles librdkafka's.
    pub(crate) fn client_config(&self) -> Result<(ClientConfig, usize), Error> {
        if self.workers == 0 || self.workers > 64 {
            return Err(refused(
                "workers",
                self.workers.to_string(),
                "must be 1 to 64",
            ));
        }
        if self.ring_capacity == 0 {
            return Err(refused("ring_capacity", "0".into(), "must be at least 1"));
        }
        if self.batch_size == Some(0) {
            return Err(refused("batch_size", "0".into(), "must be at least 1"));
        }
        for (key, value) in &self.properties {
            if key.contains('\0') || value.contains('\0') {
                let value = if is_secret(key) {
                    REDACTED.into()
                } else {
                    value.clone()
                };
                return Err(refused(key, value, "contains a NUL byte"));
            }
        }
        let max_in_flight = match self.properties.get("queue.buffering.max.messages") {
            None => DEFAULT_MAX_IN_FLIGHT,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=LIMIT_MAX).contains(n))
                .ok_or_else(|| {
                    refused(
                        "queue.buffering.max.messages",
                        v.clone(),
                        "must be a whole number from 1 to 2147483646",
                    )
                })?,
        };

        let mut config = ClientConfig::new();
        config.set("enable.idempotence", "true");
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        // One more than our bound: a report frees its record's room in our
        // ledger inside librdkafka's delivery callback, a moment before
        // librdkafka uncounts the message, so one record may be admitted
        // into that gap (reports come from one thread: never two).
        config.set(
            "queue.buffering.max.messages",
            (max_in_flight + 1).to_string(),
        );
        Ok((config, max_in_flight))
    }
}

/// A configuration error naming the property, its value and why.
fn refused(key: &str, value: String, reason: &str) -> Error {
    Error::Config {
        key: key.into(),
        value,
        reason: reason.into(),
    }
}

/// What the producer needs to know of librdkafka's parsed configuration;
/// see [`check_native`].
// Read by `AioProducer::start` once its rewrite calls `check_native` (in
// place of `native_get`); until then only the tests do. Drop this line then.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NativeSettings {
    /// `message.max.bytes`.
    pub(crate) max_message_bytes: usize,
    /// Whether records go out uncompressed: the effective
    /// `compression.codec` (alias `compression.type`; the topic-level value
    /// unless it is `inherit`, else the global one) is `none`.
    pub(crate) uncompressed: bool,
    /// `queue.buffering.max.kbytes` in bytes (× 1024, saturating at
    /// `usize::MAX` as librdkafka does).
    pub(crate) max_queue_bytes: usize,
}

/// Checks the configuration librdkafka actually parsed, and reads back what
/// the producer needs.
///
/// Reading the values back, rather than matching the strings a caller set,
/// catches every spelling librdkafka accepts (`1`, `t`, `True` for a bool;
/// an alias; the `topic.` prefix) and its defaults.
///
/// Refused, because they break the invariant that every record gets
/// exactly one delivery report through our `dr_msg_cb` and `close()`
/// returns:
///
/// | property | refused value | why |
/// |---|---|---|
/// | `delivery.report.only.error` | true (`true`, `t`, `1`, any case) | successful records get no report: their futures never resolve, and `flush`/`close` wait for them forever |
/// | `message.timeout.ms` (alias `delivery.timeout.ms`, also with the `topic.` prefix) | `0` | no timeout: a record for an unreachable cluster is retried forever, so `close()`, which waits for every report, never returns; any finite value up to 2147483647 ms (24.8 days) is accepted |
///
/// Refused by librdkafka itself from a string, so never seen here: the
/// callbacks and opaques (`dr_cb`, `dr_msg_cb`, `background_event_cb`,
/// `error_cb`, `opaque`, ...) and internal properties (`interceptors`,
/// `ssl_key`, ...) can be set only through their dedicated functions.
///
/// Not refused, though they touch delivery reports: `produce.offset.report`
/// (deprecated, "no longer used" by librdkafka); `enabled_events` (with a
/// `dr_msg_cb` installed librdkafka reports through the callback whatever
/// the event mask); `queue.buffering.max.messages` (we set it from our own
/// bound); a long `linger.ms` or `message.timeout.ms` (slow, but bounded).
// See `NativeSettings`: called by `AioProducer::start` once it is wired.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn check_native(native: &NativeClientConfig) -> Result<NativeSettings, Error> {
    if native_get(native, "delivery.report.only.error")? == "true" {
        return Err(refused(
            "delivery.report.only.error",
            "true".into(),
            "librdkafka would report only failed records: a delivered record's \
             future would never resolve, and flush and close would wait forever",
        ));
    }
    if topic_get(native, "message.timeout.ms")? == "0" {
        return Err(refused(
            "message.timeout.ms",
            "0".into(),
            "0 is no timeout (also as delivery.timeout.ms): close waits for every \
             report and would never return while the cluster is unreachable; \
             set a finite timeout (at most 2147483647 ms)",
        ));
    }
    let codec = match topic_get(native, "compression.codec")?.as_str() {
        "inherit" => native_get(native, "compression.codec")?,
        codec => codec.to_owned(),
    };
    Ok(NativeSettings {
        max_message_bytes: native_number(native, "message.max.bytes")?,
        uncompressed: codec == "none",
        max_queue_bytes: native_number(native, "queue.buffering.max.kbytes")?.saturating_mul(1024),
    })
}

/// A whole-number property as librdkafka parsed it.
fn native_number(native: &NativeClientConfig, key: &str) -> Result<usize, Error> {
    let value = native_get(native, key)?;
    value
        .parse()
        .map_err(|_| refused(key, value, "librdkafka holds no whole number here"))
}

/// A topic-level property as librdkafka parsed it (see
/// [`default_topic_property`]).
fn topic_get(native: &NativeClientConfig, key: &str) -> Result<String, Error> {
    default_topic_property(native, key).ok_or_else(|| {
        refused(
            key,
            String::new(),
            "librdkafka knows no such topic property",
        )
    })
}

/// Builds librdkafka's native configuration, naming the refused property.
pub(crate) fn native_config(config: &ClientConfig) -> Result<NativeClientConfig, Error> {
    config.create_native_config().map_err(|e| match e {
        KafkaError::ClientConfig(_, reason, key, value) => {
            let (value, reason) = if is_secret(&key) {
                let reason = if value.is_empty() {
                    reason
                } else {
                    reason.replace(&value, REDACTED)
                };
                (REDACTED.to_string(), reason)
            } else {
                (value, reason)
            };
            Error::Config { key, value, reason }
        }
        other => Error::Client(other.to_string()),
    })
}

/// Reads a property back from the native configuration (librdkafka's value,
/// default included).
pub(crate) fn native_get(native: &NativeClientConfig, key: &str) -> Result<String, Error> {
    native
        .get(key)
        .map_err(|e| refused(key, String::new(), &e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_property_is_named() {
        let builder = AioProducerBuilder::default().set("no.such.property", "1");
        let (config, _) = builder.client_config().unwrap();
        let Err(err) = native_config(&config) else {
            panic!("an unknown property must be refused")
        };
        match &err {
            Error::Config { key, value, .. } => {
                assert_eq!(key, "no.such.property");
                assert_eq!(value, "1");
            }
            other => panic!("expected a config error, got {other:?}"),
        }
        assert!(err.to_string().contains("no.such.property"), "{err}");
    }

    #[test]
    fn secret_values_are_redacted_in_errors_and_debug() {
        let builder = AioProducerBuilder::default().set("sasl.password", "hunter2\0");
        assert!(!format!("{builder:?}").contains("hunter2"));
        let err = builder.client_config().unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(shown.contains("sasl.password"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    /// What `AioProducer::start` refuses of `builder` before it starts a
    /// thread, if anything.
    fn refusal(builder: AioProducerBuilder) -> Option<Error> {
        let (config, _) = match builder.client_config() {
            Ok(config) => config,
            Err(e) => return Some(e),
        };
        native_config(&config)
            .and_then(|native| check_native(&native))
            .err()
    }

    #[test]
    fn every_spelling_of_true_for_delivery_report_only_error_is_refused() {
        // librdkafka's bool parser (rdkafka_conf.c, `_RK_C_BOOL`) takes
        // `true` and `t` in any case, and `1`.
        for value in ["true", "TRUE", "True", "tRuE", "t", "T", "1"] {
            let builder = AioProducerBuilder::default().set("delivery.report.only.error", value);
            match refusal(builder) {
                Some(Error::Config { key, .. }) => assert_eq!(key, "delivery.report.only.error"),
                other => panic!("delivery.report.only.error={value} was not refused: {other:?}"),
            }
        }
        // Not bools to librdkafka: refused as such.
        for value in ["yes", "on", "y", "2", ""] {
            let builder = AioProducerBuilder::default().set("delivery.report.only.error", value);
            assert!(
                matches!(refusal(builder), Some(Error::Config { .. })),
                "{value:?}"
            );
        }
        for value in ["false", "FALSE", "f", "F", "0"] {
            let builder = AioProducerBuilder::default().set("delivery.report.only.error", value);
            assert!(refusal(builder).is_none(), "{value:?} must be accepted");
        }
    }

    #[test]
    fn an_infinite_message_timeout_is_refused_under_each_name() {
        for key in [
            "message.timeout.ms",
            "delivery.timeout.ms",
            "topic.message.timeout.ms",
        ] {
            let builder = AioProducerBuilder::default().set(key, "0");
            match refusal(builder) {
                Some(Error::Config { key, value, .. }) => {
                    assert_eq!((key.as_str(), value.as_str()), ("message.timeout.ms", "0"));
                }
                other => panic!("{key}=0 was not refused: {other:?}"),
            }
            let builder = AioProducerBuilder::default().set(key, "2147483647");
            assert!(refusal(builder).is_none(), "a long finite timeout is fine");
        }
    }

    /// The settings `check_native` reads back from `builder`'s configuration.
    fn settings(builder: AioProducerBuilder) -> NativeSettings {
        let (config, _) = builder.client_config().unwrap();
        check_native(&native_config(&config).unwrap()).unwrap()
    }

    #[test]
    fn settings_are_read_back_as_librdkafka_parsed_them() {
        let defaults = settings(AioProducerBuilder::default());
        assert_eq!(
            defaults,
            NativeSettings {
                max_message_bytes: 1_000_000,
                uncompressed: true,
                max_queue_bytes: 0x100000 * 1024,
            }
        );
        let set = settings(
            AioProducerBuilder::default()
                .set("message.max.bytes", "0x4000")
                .set("queue.buffering.max.kbytes", "1"),
        );
        assert_eq!((set.max_message_bytes, set.max_queue_bytes), (0x4000, 1024));
        for (key, codec, uncompressed) in [
            ("compression.type", "lz4", false),
            ("compression.codec", "LZ4", false),
            ("topic.compression.codec", "lz4", false),
            ("topic.compression.type", "none", true),
        ] {
            let builder = AioProducerBuilder::default().set(key, codec);
            assert_eq!(
                settings(builder).uncompressed,
                uncompressed,
                "{key}={codec}"
            );
        }
        // The topic level overrides the global one, unless it inherits it.
        let builder = AioProducerBuilder::default()
            .set("compression.codec", "lz4")
            .set("topic.compression.codec", "none");
        assert!(settings(builder).uncompressed);
        let builder = AioProducerBuilder::default()
            .set("compression.codec", "lz4")
            .set("topic.compression.codec", "inherit");
        assert!(!settings(builder).uncompressed);
    }

    #[test]
    fn callbacks_cannot_be_set_from_strings() {
        for key in [
            "dr_cb",
            "dr_msg_cb",
            "background_event_cb",
            "opaque",
            "error_cb",
        ] {
            let builder = AioProducerBuilder::default().set(key, "0x1");
            assert!(
                matches!(refusal(builder), Some(Error::Config { .. })),
                "{key} must be refused"
            );
        }
    }

    #[test]
    fn own_settings_are_checked() {
        for builder in [
            AioProducerBuilder::default().workers(0),
            AioProducerBuilder::default().ring_capacity(0),
            AioProducerBuilder::default().batch_size(0),
            AioProducerBuilder::default().set("queue.buffering.max.messages", "lots"),
        ] {
            assert!(matches!(builder.client_config(), Err(Error::Config { .. })));
        }
    }
}
