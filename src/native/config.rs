//! The native (librdkafka) configuration: building it from the builder's
//! properties, reading back what librdkafka parsed and refusing values that
//! break the producer's invariants (`check_native`), and knowing which
//! properties hold secrets, from librdkafka's own sensitive flag.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use rdkafka::config::{ClientConfig, NativeClientConfig};
use rdkafka::error::KafkaError;

use crate::error::Error;
use crate::native::partitioner::KeyHash;
use crate::native::{self, default_topic_property};

/// Shown instead of a secret's value.
pub(crate) const REDACTED: &str = "[redacted]";

/// Whether a property holds a secret that must never be printed.
///
/// For a property librdkafka knows, librdkafka decides (see
/// [`librdkafka_properties`]). For a name it does not know (misspelt, or
/// from another client), the value is treated as secret when the name
/// looks like one ([`looks_secret`]).
pub(crate) fn is_secret(key: &str) -> bool {
    librdkafka_properties()
        .get(key)
        .copied()
        .unwrap_or_else(|| looks_secret(key))
}

/// Fragments of names that suggest a secret (`sasl.pasword`, `ssl.key.pme`,
/// `sasl.jaas.config`, ...), matched without case.
const SECRET_HINTS: &[&str] = &[
    "pass",
    "pwd",
    "word",
    "secret",
    "token",
    "jaas",
    "credential",
    "assertion",
    "private",
    "pem",
    "key",
    "cert",
    "sasl",
    "auth",
    "bearer",
    "jwt",
    "user",
    "login",
];

/// Whether a name unknown to librdkafka looks like it holds a secret.
fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_HINTS.iter().any(|hint| key.contains(hint))
}

/// Every property librdkafka knows, and whether its value is secret;
/// worked out once, from librdkafka itself.
///
/// librdkafka flags sensitive properties (`_RK_SENSITIVE`) but exposes the
/// flag only through `rd_kafka_conf_desensitize`, which overwrites their
/// string values. So each string property is set, on a scratch
/// configuration, to a probe value, desensitized and read back: a changed
/// value means sensitive. The names come from librdkafka's property table
/// (`rd_kafka_conf_properties_show`) and, for hidden properties, from
/// `rd_kafka_conf_dump` (which alone would miss every sensitive property:
/// it lists only properties that have a value).
///
/// Some properties cannot be probed, and are treated as secret:
///
/// - internal and pointer properties (`ssl_key`, `ssl_ca`, `interceptors`,
///   the callbacks; "see dedicated API" in the table) are set only through
///   their own functions, never from a string, and librdkafka's redaction
///   skips them (`ssl_key` is flagged all the same). A string given for one
///   is refused; its value carries no information worth printing.
/// - string properties this build refuses (`ssl.*` and OAuth without
///   OpenSSL, `plugin.library.paths` when the probe cannot be loaded) take
///   no value to probe, and may be flagged in builds that do.
///
/// No other type can be flagged: librdkafka's redaction handles only string
/// and internal properties (`rd_kafka_anyconf_prop_desensitize`).
fn librdkafka_properties() -> &'static HashMap<String, bool> {
    static PROPERTIES: OnceLock<HashMap<String, bool>> = OnceLock::new();
    PROPERTIES.get_or_init(|| {
        let table = native::properties_table().unwrap_or_default();
        let listed = table.lines().filter_map(|line| {
            let (name, rest) = line.split_once('|')?;
            let kind = rest
                .rsplit_once("*Type: ")?
                .1
                .trim_end()
                .strip_suffix('*')?;
            Some((name.trim().to_owned(), Some(kind)))
        });
        // Hidden properties have a value but no line in the table.
        let dumped = native::dumped_names().into_iter().map(|name| (name, None));
        let mut properties = HashMap::new();
        for (name, kind) in listed.chain(dumped) {
            properties
                .entry(name)
                .or_insert_with_key(|name| probe_secret(name, kind));
        }
        properties
    })
}

/// Whether librdkafka treats `name`'s value as secret; `kind` is its type
/// as librdkafka's table names it, if listed (see [`librdkafka_properties`]).
fn probe_secret(name: &str, kind: Option<&str>) -> bool {
    /// Long enough that redaction writes "(REDACTED)" over it, and a path
    /// that cannot exist (under a device), so that a property that loads
    /// what it names (`plugin.library.paths`) loads nothing.
    const PROBE: &str = "/dev/null/aioproducer-sensitivity-probe";
    match kind {
        Some("see dedicated API") => return true,
        Some("string") | None => {}
        Some(_) => return false,
    }
    // A string checked against a list of values (`partitioner`) refuses the
    // probe but takes its own default.
    let default = || {
        let fresh = native::fresh_config()?;
        let value = fresh
            .get(name)
            .ok()
            .or_else(|| native::default_topic_property(&fresh, name))?;
        (!value.is_empty()).then_some(value)
    };
    match native::desensitized(name, PROBE).or_else(|| native::desensitized(name, &default()?)) {
        Some((before, after)) => before != after,
        // Refused: flagged or not, this build cannot tell (doc above).
        None => kind.is_some(),
    }
}

/// librdkafka's reason for refusing a secret's value, with the value taken
/// out: where librdkafka quotes it whole, trimmed, or cut short by its
/// error buffer (then the rest of the reason goes too).
fn redact(reason: &str, value: &str) -> String {
    let trimmed = value.trim();
    let mut reason = reason.to_owned();
    for shown in [value, trimmed] {
        if !shown.is_empty() {
            reason = reason.replace(shown, REDACTED);
        }
    }
    // A value shorter than this was taken out whole above.
    let head: String = trimmed.chars().take(8).collect();
    if head.chars().count() == 8 {
        if let Some(at) = reason.find(&head) {
            reason.truncate(at);
            reason.push_str(REDACTED);
        }
    }
    reason
}

/// What the producer needs to know of librdkafka's parsed configuration;
/// see [`check_native`].
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
    /// How long librdkafka's sticky partitioner keeps a partition for
    /// records with no key (`sticky.partitioning.linger.ms`, by default
    /// twice `linger.ms`); `None` when it is not sticky (the interval is 0,
    /// or the `partitioner` hashes a missing key: `consistent`, `murmur2`,
    /// `fnv1a`).
    pub(crate) sticky_linger: Option<Duration>,
    /// The `partitioner`'s key hash (`None` for `random`).
    pub(crate) key_hash: Option<KeyHash>,
}

/// Checks the configuration librdkafka actually parsed, and reads back what
/// the producer needs.
///
/// Reading the values back, rather than matching the strings a caller set,
/// catches every spelling librdkafka accepts (`1`, `t`, `True` for a bool;
/// an alias; the `topic.` prefix) and its defaults.
///
/// Refused, because they break the invariant that every record gets
/// exactly one delivery report through our delivery-report events and `close()`
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
/// (deprecated, "no longer used" by librdkafka); `enabled_events` (we set
/// the event mask ourselves after every property, `callbacks.rs`);
/// `queue.buffering.max.messages` (we set it from our own bound); a long
/// `linger.ms` or `message.timeout.ms` (slow, but bounded).
pub(crate) fn check_native(
    config: &ClientConfig,
    native: &NativeClientConfig,
) -> Result<NativeSettings, Error> {
    if native_get(native, "delivery.report.only.error")? == "true" {
        return Err(Error::config(
            "delivery.report.only.error",
            "true".into(),
            "librdkafka would report only failed records: a delivered record's \
             future would never resolve, and flush and close would wait forever",
        ));
    }
    if topic_get(native, "message.timeout.ms")? == "0" {
        return Err(Error::config(
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
    let partitioner = topic_get(native, "partitioner")?;
    Ok(NativeSettings {
        max_message_bytes: native_number(native, "message.max.bytes")?,
        uncompressed: codec == "none",
        max_queue_bytes: native_number(native, "queue.buffering.max.kbytes")?.saturating_mul(1024),
        sticky_linger: sticky_linger(config, native, &partitioner)?,
        key_hash: KeyHash::of_partitioner(&partitioner),
    })
}

/// The interval librdkafka's sticky partitioner will use (see
/// [`NativeSettings::sticky_linger`]). The default is computed only when
/// the client is made, so it is computed here the same way: twice
/// `linger.ms`, in whole milliseconds, at most 900000. `partitioner` is the
/// topic's, as librdkafka parsed it.
fn sticky_linger(
    config: &ClientConfig,
    native: &NativeClientConfig,
    partitioner: &str,
) -> Result<Option<Duration>, Error> {
    const KEY: &str = "sticky.partitioning.linger.ms";
    let hashes_no_key = matches!(partitioner, "consistent" | "murmur2" | "fnv1a");
    let millis = if config.get(KEY).is_some() {
        native_number(native, KEY)? as u64
    } else {
        let linger = native_get(native, "linger.ms")?;
        let linger: f64 = linger
            .parse()
            .map_err(|_| Error::config("linger.ms", linger, "librdkafka holds no number here"))?;
        (2.0 * linger).min(900_000.0) as u64
    };
    Ok((millis > 0 && !hashes_no_key).then(|| Duration::from_millis(millis)))
}

/// A whole-number property as librdkafka parsed it.
fn native_number(native: &NativeClientConfig, key: &str) -> Result<usize, Error> {
    let value = native_get(native, key)?;
    value
        .parse()
        .map_err(|_| Error::config(key, value, "librdkafka holds no whole number here"))
}

/// A topic-level property as librdkafka parsed it (see
/// [`default_topic_property`]).
fn topic_get(native: &NativeClientConfig, key: &str) -> Result<String, Error> {
    default_topic_property(native, key).ok_or_else(|| {
        Error::config(
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
                (REDACTED.to_string(), redact(&reason, &value))
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
        .map_err(|e| Error::config(key, String::new(), &e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AioProducerBuilder;

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

    /// What `AioProducer::start` refuses of `builder` before it starts a
    /// thread, if anything.
    fn refusal(builder: AioProducerBuilder) -> Option<Error> {
        let (config, _) = match builder.client_config() {
            Ok(config) => config,
            Err(e) => return Some(e),
        };
        native_config(&config)
            .and_then(|native| check_native(&config, &native))
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
        check_native(&config, &native_config(&config).unwrap()).unwrap()
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
                sticky_linger: Some(Duration::from_millis(10)),
                key_hash: Some(KeyHash::Crc32UnlessEmpty),
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
    fn the_sticky_interval_is_librdkafkas_own() {
        let sticky = |builder: AioProducerBuilder| settings(builder).sticky_linger;
        let ms = |n| Some(Duration::from_millis(n));
        let set = |key, value| AioProducerBuilder::default().set(key, value);
        assert_eq!(
            sticky(AioProducerBuilder::default()),
            ms(10),
            "2 × linger.ms"
        );
        assert_eq!(sticky(set("linger.ms", "100")), ms(200));
        assert_eq!(sticky(set("queue.buffering.max.ms", "0.6")), ms(1));
        assert_eq!(sticky(set("linger.ms", "0")), None, "0: not sticky");
        assert_eq!(sticky(set("sticky.partitioning.linger.ms", "3")), ms(3));
        assert_eq!(sticky(set("sticky.partitioning.linger.ms", "0")), None);
        for (partitioner, sticky_too) in [
            ("consistent_random", true),
            ("murmur2_random", true),
            ("fnv1a_random", true),
            ("random", true),
            ("consistent", false),
            ("murmur2", false),
            ("fnv1a", false),
        ] {
            let interval = sticky(set("partitioner", partitioner));
            assert_eq!(interval.is_some(), sticky_too, "{partitioner}");
        }
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

    /// Properties librdkafka 2.12 marks `_RK_SENSITIVE` (rdkafka_conf.c).
    const KNOWN_SECRETS: &[&str] = &[
        "ssl.key.location",
        "ssl.key.password",
        "ssl.key.pem",
        "ssl_key",
        "ssl.ca.pem",
        "ssl.keystore.password",
        "sasl.username",
        "sasl.password",
        "sasl.oauthbearer.config",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.assertion.private.key.file",
        "sasl.oauthbearer.assertion.private.key.passphrase",
        "sasl.oauthbearer.assertion.private.key.pem",
    ];

    /// Misspelt keys (unknown to librdkafka) that look like secrets.
    const MISSPELT_SECRETS: &[&str] = &[
        "sasl.pasword",
        "ssl.key.pme",
        "SASL.PASSWORD",
        "sasl.oauthbearer.clientsecret",
        "ssl.keystore.passwd",
        "sasl.jaas.config",
        "topic.sasl.password",
    ];

    /// Asserts that `secret` appears nowhere in what the builder and its
    /// refusals print when `key` holds it.
    fn assert_never_shown(key: &str, secret: &str) {
        let builder = AioProducerBuilder::default().set(key, secret);
        let shown = format!("{builder:?}");
        assert!(!shown.contains(secret), "{key}: Debug shows {shown}");
        // Refused by us (a NUL byte), and by librdkafka where it refuses.
        let with_nul = builder.clone().set(key, format!("{secret}\0"));
        let mut errors = vec![with_nul.client_config().unwrap_err()];
        errors.extend(refusal(builder));
        for err in errors {
            let shown = format!("{err} {err:?}");
            assert!(shown.contains(key), "{shown}");
            assert!(!shown.contains(secret), "{key}: the error shows {shown}");
        }
    }

    /// A value no property holds by chance.
    const SECRET: &str = "hunter2-0a1b2c3d4e5f";

    #[test]
    fn secrets_never_appear_in_debug_or_errors() {
        let derived = librdkafka_properties()
            .iter()
            .filter_map(|(key, &secret)| secret.then_some(key.as_str()));
        for key in derived.chain(KNOWN_SECRETS.iter().copied()) {
            assert_never_shown(key, SECRET);
        }
        for key in MISSPELT_SECRETS {
            assert!(!librdkafka_properties().contains_key(*key), "{key}");
            assert_never_shown(key, SECRET);
        }
    }

    #[test]
    fn secrets_are_what_librdkafka_flags() {
        let properties = librdkafka_properties();
        // Every property, hidden ones included, not only the dump's.
        assert!(properties.len() > 150, "{} properties", properties.len());
        for key in KNOWN_SECRETS {
            assert_eq!(properties.get(*key), Some(&true), "{key}");
        }
        // Probed in every build (no OpenSSL needed), so the probe itself
        // is shown to work, not only the fallback for refused properties.
        for key in ["sasl.username", "sasl.password"] {
            assert!(
                native::desensitized(key, SECRET).is_some_and(|(before, after)| before != after)
            );
        }
        // Not secrets: printed in errors. `partitioner` refuses the probe
        // and is probed with its default; `test.mock.num.brokers` is hidden.
        for key in [
            "bootstrap.servers",
            "client.id",
            "acks",
            "message.timeout.ms",
            "compression.type",
            "partitioner",
            "sasl.mechanisms",
            "test.mock.num.brokers",
        ] {
            assert_eq!(properties.get(key), Some(&false), "{key}");
        }
        assert!(!is_secret("no.such.property"));
    }

    #[test]
    fn a_secret_that_librdkafka_quotes_cut_short_is_redacted() {
        // librdkafka quotes a plugin path it cannot load, in an error
        // buffer of 512 bytes; the path is treated as secret (it refuses
        // the probe).
        assert!(is_secret("plugin.library.paths"));
        let secret = format!("/dev/null/{}", "s3cr3t".repeat(200));
        assert_never_shown("plugin.library.paths", &secret);
        let cut = &secret[..100];
        let builder = AioProducerBuilder::default().set("plugin.library.paths", &secret);
        let err = refusal(builder).expect("librdkafka refuses a missing plugin");
        assert!(!format!("{err} {err:?}").contains(cut), "{err}");
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
