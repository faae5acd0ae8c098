//! The builder: librdkafka properties plus the producer's own settings, and
//! the checks that turn bad configuration into an error that names it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rdkafka::config::ClientConfig;

use crate::error::Error;
use crate::events::{ClientError, HookSet, Statistics, Throttle};
use crate::native::config::{is_secret, REDACTED};
use crate::oauth::OAuthTokenProvider;

/// librdkafka's `queue.buffering.max.messages` default, which is also our
/// default bound on records in flight.
const DEFAULT_MAX_IN_FLIGHT: usize = 100_000;

/// The largest bound on records in flight: librdkafka's own limit, which we
/// set one higher, stops at `i32::MAX`.
const LIMIT_MAX: usize = i32::MAX as usize - 1;

/// The settings a producer is built from; see [`AioProducer::builder`](crate::AioProducer::builder).
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
    /// Where OAUTHBEARER tokens come from, if the application gives them.
    pub(crate) oauth: Option<std::sync::Arc<dyn OAuthTokenProvider>>,
    /// The application's hooks (`events.rs`).
    pub(crate) hooks: HookSet,
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
            oauth: None,
            hooks: HookSet::default(),
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
            .field("oauthbearer_token_provider", &self.oauth.is_some())
            .field("hooks", &self.hooks)
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

    /// Gets SASL OAUTHBEARER tokens from `provider`, an async function of
    /// the application's, run on a thread of the producer's own whenever
    /// librdkafka needs a token (at start, then before each token expires;
    /// see [`OAuthTokenProvider`] for where the future is polled). A failed
    /// provider is reported to librdkafka, which raises it as an
    /// authentication error and asks again 10 s later. Needs
    /// `sasl.mechanisms=OAUTHBEARER` (checked by [`build`](Self::build)).
    pub fn oauthbearer_token_provider(mut self, provider: impl OAuthTokenProvider) -> Self {
        self.oauth = Some(std::sync::Arc::new(provider));
        self
    }

    /// Calls `hook` with every client-wide error librdkafka raises (a
    /// broker down, every broker down, a refused login, a fatal error;
    /// [`ClientError::is_fatal`] says whether the producer can go on).
    /// Errors of one record go to its future instead.
    ///
    /// Every hook runs on a thread of the producer's own
    /// (`aioproducer-hooks`), one event after another, never on
    /// librdkafka's threads; a hook slower than the events makes the
    /// producer drop events rather than wait (`Stats::hook_events_dropped`).
    /// A panic in a hook is caught and logged.
    ///
    /// ```
    /// let producer = aioproducer::AioProducer::builder()
    ///     .bootstrap_servers("127.0.0.1:9092")
    ///     .on_error(|e| eprintln!("kafka: {} (fatal: {})", e.error, e.is_fatal()))
    ///     .on_statistics(|s| eprintln!("{} messages queued", s.librdkafka_queued_messages))
    ///     .on_throttle(|t| eprintln!("{} throttles us for {:?}", t.broker_name, t.time))
    ///     .set("statistics.interval.ms", "5000")
    ///     .build()?;
    /// # drop(producer);
    /// # Ok::<(), aioproducer::Error>(())
    /// ```
    pub fn on_error(mut self, hook: impl Fn(&ClientError) + Send + Sync + 'static) -> Self {
        self.hooks.error = Some(std::sync::Arc::new(hook));
        self
    }

    /// Calls `hook` with librdkafka's statistics (its JSON, and a typed
    /// subset: each broker's round trip and throttling, librdkafka's queue)
    /// and the producer's own counters, every `statistics.interval.ms`
    /// (which must be set: librdkafka's default, 0, sends none). On the
    /// hooks thread ([`on_error`](Self::on_error)).
    pub fn on_statistics(mut self, hook: impl Fn(&Statistics) + Send + Sync + 'static) -> Self {
        self.hooks.statistics = Some(std::sync::Arc::new(hook));
        self
    }

    /// Calls `hook` whenever a broker throttles the producer (a quota): which
    /// broker, for how long. On the hooks thread ([`on_error`](Self::on_error)).
    pub fn on_throttle(mut self, hook: impl Fn(&Throttle) + Send + Sync + 'static) -> Self {
        self.hooks.throttle = Some(std::sync::Arc::new(hook));
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

    /// How long dropping the producer without [`AioProducer::close`](crate::AioProducer::close) waits
    /// for outstanding records before failing them with
    /// [`Error::Purged`] (default 5 s). One deadline for the whole drop:
    /// after it, purging and destroying the handle take a moment more. Any
    /// `Duration` works; one past the end of time waits for every report
    /// (each bounded by `message.timeout.ms`).
    pub fn drop_timeout(mut self, timeout: Duration) -> Self {
        self.drop_timeout = timeout;
        self
    }

    /// Checks our own settings and assembles librdkafka's.
    pub(crate) fn client_config(&self) -> Result<(ClientConfig, usize), Error> {
        if self.workers == 0 || self.workers > 64 {
            return Err(Error::config(
                "workers",
                self.workers.to_string(),
                "must be 1 to 64",
            ));
        }
        if self.ring_capacity == 0 {
            return Err(Error::config(
                "ring_capacity",
                "0".into(),
                "must be at least 1",
            ));
        }
        if self.batch_size == Some(0) {
            return Err(Error::config(
                "batch_size",
                "0".into(),
                "must be at least 1",
            ));
        }
        for (key, value) in &self.properties {
            if key.contains('\0') || value.contains('\0') {
                let value = if is_secret(key) {
                    REDACTED.into()
                } else {
                    value.clone()
                };
                return Err(Error::config(key, value, "contains a NUL byte"));
            }
        }
        if self.oauth.is_some() {
            let mechanism = ["sasl.mechanisms", "sasl.mechanism"]
                .iter()
                .find_map(|key| self.properties.get(*key).map(|value| (*key, value)));
            match mechanism {
                Some((_, value)) if value.eq_ignore_ascii_case("OAUTHBEARER") => {}
                other => {
                    let (key, value) =
                        other.map_or(("sasl.mechanisms", String::new()), |(k, v)| (k, v.clone()));
                    return Err(Error::config(
                        key,
                        value,
                        "an OAUTHBEARER token provider is set: sasl.mechanisms must be OAUTHBEARER",
                    ));
                }
            }
        }
        let max_in_flight = match self.properties.get("queue.buffering.max.messages") {
            None => DEFAULT_MAX_IN_FLIGHT,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=LIMIT_MAX).contains(n))
                .ok_or_else(|| {
                    Error::config(
                        "queue.buffering.max.messages",
                        v.clone(),
                        "must be a whole number from 1 to 2147483646",
                    )
                })?,
        };

        let mut config = ClientConfig::new();
        config.set("enable.idempotence", "true");
        // librdkafka formats no line the application's logger would drop
        // (`debug=...` raises it to debug lines by itself).
        config.set("log_level", syslog_level(log::max_level()).to_string());
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

/// librdkafka's `log_level` (a syslog level) for the `log` crate's
/// maximum level: librdkafka's lines go to `log` (target `librdkafka`), so
/// the application's own filter says which are worth making.
fn syslog_level(filter: log::LevelFilter) -> u8 {
    match filter {
        log::LevelFilter::Off => 0,
        log::LevelFilter::Error => 3,
        log::LevelFilter::Warn => 4,
        log::LevelFilter::Info => 6,
        log::LevelFilter::Debug | log::LevelFilter::Trace => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::syslog_level;
    use log::LevelFilter;

    #[test]
    fn librdkafka_logs_at_the_log_crates_level_unless_told_otherwise() {
        let levels = [
            (LevelFilter::Off, 0),
            (LevelFilter::Error, 3),
            (LevelFilter::Warn, 4),
            (LevelFilter::Info, 6),
            (LevelFilter::Debug, 7),
            (LevelFilter::Trace, 7),
        ];
        for (filter, syslog) in levels {
            assert_eq!(syslog_level(filter), syslog, "{filter}");
        }
        let (config, _) = crate::AioProducer::builder().client_config().unwrap();
        let expected = syslog_level(log::max_level()).to_string();
        assert_eq!(config.get("log_level"), Some(expected.as_str()));
        let (config, _) = crate::AioProducer::builder()
            .set("log_level", "7")
            .client_config()
            .unwrap();
        assert_eq!(config.get("log_level"), Some("7"), "the user's own wins");
    }
}
