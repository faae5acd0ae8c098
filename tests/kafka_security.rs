//! Real broker, secured listeners (`scripts/kafka`): records round trip
//! over TLS, SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 (over TLS) and
//! OAUTHBEARER, and with every codec; a wrong password, an untrusted CA and
//! a host-name mismatch fail each record promptly with an error that says
//! which (authentication or TLS), and no password appears in any error, log
//! line or `Debug` output.

mod common;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aioproducer::rdkafka::types::RDKafkaErrorCode;
use aioproducer::{AioProducer, AioProducerBuilder, DeliveryError, Record, Topic};
use common::kafka::{bootstrap, create_topic, security, unique_topic};
use common::records::check_reports_match_log;
use common::{by_payload, consume_all, run};

const RECORDS: usize = 2_000;
const PARTITIONS: i32 = 3;

/// Every log line any producer of this test binary wrote.
fn logged() -> &'static Mutex<Vec<String>> {
    struct Capture;
    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            let line = format!("{} {}: {}", record.level(), record.target(), record.args());
            logged().lock().unwrap().push(line);
        }
        fn flush(&self) {}
    }
    static LINES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        static CAPTURE: Capture = Capture;
        log::set_logger(&CAPTURE).expect("the only logger");
        log::set_max_level(log::LevelFilter::Trace);
    });
    LINES.get_or_init(|| Mutex::new(Vec::new()))
}

/// A producer's builder for `listener`, with librdkafka's configuration,
/// security and broker debug lines on (all checked for passwords too).
fn over(facts: &HashMap<String, String>, listener: &str) -> AioProducerBuilder {
    logged();
    AioProducer::builder()
        .bootstrap_servers(&facts[listener])
        .set("acks", "all")
        .set("debug", "conf,security,broker")
}

fn tls(facts: &HashMap<String, String>, listener: &str, ca: &str) -> AioProducerBuilder {
    over(facts, listener)
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", &facts[ca])
}

fn sasl_ssl(
    facts: &HashMap<String, String>,
    mechanism: &str,
    user: &str,
    password: &str,
) -> AioProducerBuilder {
    over(facts, "SASL_SSL")
        .set("security.protocol", "sasl_ssl")
        .set("ssl.ca.location", &facts["CA"])
        .set("sasl.mechanisms", mechanism)
        .set("sasl.username", user)
        .set("sasl.password", password)
}

/// The user and password for `mechanism` (`PLAIN`, `SCRAM-SHA-256`, ...,
/// or `ROTATE`, the rotation test's user), as `security.env` names them.
fn user<'a>(facts: &'a HashMap<String, String>, mechanism: &str) -> (&'a str, &'a str) {
    let key = mechanism.replace('-', "_");
    (
        &facts[&format!("{key}_USER")],
        &facts[&format!("{key}_PASSWORD")],
    )
}

/// Produces `RECORDS` keyed records through `builder`'s producer, awaits
/// every report, and reads the topic back over PLAINTEXT: each record is
/// stored once, intact, where its report said.
fn round_trip(builder: AioProducerBuilder, label: &str) {
    let plaintext = bootstrap().expect("broker tests are on");
    let name = unique_topic(label);
    create_topic(&plaintext, &name, PARTITIONS, &[]);
    let producer = builder
        .build()
        .unwrap_or_else(|e| panic!("{label}: build: {e}"));
    let topic = Topic::from(name.clone());
    let reports = run(Duration::from_secs(120), async {
        let mut futures = Vec::with_capacity(RECORDS);
        for i in 0..RECORDS {
            let record = Record::new(topic.clone())
                .with_key(format!("key-{}", i % 10))
                .with_payload(format!("{label}-{i}"));
            futures.push(producer.produce(record).await.expect("queued"));
        }
        let mut reports = Vec::with_capacity(RECORDS);
        for future in futures {
            reports.push(future.await.unwrap_or_else(|e| panic!("{label}: {e}")));
        }
        reports
    });
    futures::executor::block_on(producer.close());
    let stored = consume_all(&plaintext, &name, PARTITIONS, RECORDS);
    let seen = by_payload(&stored);
    for i in 0..RECORDS {
        let payload = format!("{label}-{i}");
        assert_eq!(seen.get(payload.as_bytes()), Some(&1), "{label}: {payload}");
    }
    check_reports_match_log(&reports, &stored);
}

#[test]
fn records_round_trip_over_tls() {
    let Some(facts) = security() else { return };
    round_trip(tls(&facts, "SSL", "CA"), "tls");
}

/// A round trip over SASL_SSL as `mechanism`'s user.
fn sasl_round_trip(mechanism: &str, label: &str) {
    let Some(facts) = security() else { return };
    let (name, password) = user(&facts, mechanism);
    round_trip(sasl_ssl(&facts, mechanism, name, password), label);
}

#[test]
fn records_round_trip_over_sasl_plain_on_tls() {
    sasl_round_trip("PLAIN", "sasl-plain");
}

#[test]
fn records_round_trip_over_scram_sha_256_on_tls() {
    sasl_round_trip("SCRAM-SHA-256", "scram-256");
}

#[test]
fn records_round_trip_over_scram_sha_512_on_tls() {
    sasl_round_trip("SCRAM-SHA-512", "scram-512");
}

#[test]
fn records_round_trip_over_oauthbearer() {
    let Some(facts) = security() else { return };
    let builder = over(&facts, "SASL_PLAINTEXT")
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanisms", "OAUTHBEARER")
        // librdkafka's unsecured token ("alg": "none"), which the broker's
        // unsecured validator accepts: for tests only.
        .set("enable.sasl.oauthbearer.unsecure.jwt", "true")
        .set(
            "sasl.oauthbearer.config",
            format!("principal={}", facts["OAUTHBEARER_PRINCIPAL"]),
        );
    round_trip(builder, "oauthbearer");
}

#[test]
fn records_round_trip_with_every_codec() {
    let Some(facts) = security() else { return };
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let builder = over(&facts, "PLAINTEXT")
            .set("compression.type", codec)
            .set("linger.ms", "20");
        round_trip(builder, &format!("codec-{codec}"));
    }
}

/// Produces three records through `builder`'s producer (which the cluster
/// refuses) and returns their failures: each must come within 30 s, long
/// before `message.timeout.ms` (five minutes).
fn refused(builder: AioProducerBuilder, label: &str) -> Vec<DeliveryError> {
    let plaintext = bootstrap().expect("broker tests are on");
    let name = unique_topic(label);
    create_topic(&plaintext, &name, 1, &[]);
    let producer = builder
        .build()
        .unwrap_or_else(|e| panic!("{label}: build: {e}"));
    let topic = Topic::from(name);
    let started = Instant::now();
    let failures = run(Duration::from_secs(30), async {
        let mut futures = Vec::new();
        for i in 0..3 {
            let record = Record::new(topic.clone()).with_payload(format!("{label}-{i}"));
            futures.push(producer.produce(record).await.expect("queued"));
        }
        let mut failures = Vec::new();
        for future in futures {
            failures.push(future.await.expect_err("the cluster refuses us"));
        }
        failures
    });
    eprintln!(
        "{label}: refused after {:?}: {}",
        started.elapsed(),
        failures[0]
    );
    let stats = producer.stats();
    assert_eq!((stats.delivered, stats.failed), (0, 3), "{label}");
    futures::executor::block_on(producer.close());
    failures
}

/// Each failure has `code`, says `says` (case-insensitive), hands its
/// record back, and shows none of `secrets` (nor does the log).
fn check_refusals(
    failures: &[DeliveryError],
    code: RDKafkaErrorCode,
    says: &str,
    secrets: &[&str],
) {
    for failure in failures {
        let error = failure.error();
        assert_eq!(error.kafka_code(), Some(code), "{error}");
        let shown = format!("{error} / {error:?} / {failure} / {failure:?}");
        assert!(
            shown.to_lowercase().contains(&says.to_lowercase()),
            "the error should say {says:?}: {shown}"
        );
        assert!(
            failure.record().payload().is_some(),
            "the record comes back"
        );
        for secret in secrets {
            assert!(!shown.contains(secret), "a password in an error: {shown}");
        }
    }
    let lines = logged().lock().unwrap();
    assert!(!lines.is_empty(), "librdkafka's debug lines were captured");
    for line in lines.iter() {
        for secret in secrets {
            assert!(!line.contains(secret), "a password in a log line: {line}");
        }
    }
}

#[test]
fn a_wrong_password_fails_each_record_promptly_as_an_authentication_error() {
    let Some(facts) = security() else { return };
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let (name, right) = user(&facts, mechanism);
        let wrong = format!("not-{right}");
        let builder = sasl_ssl(&facts, mechanism, name, &wrong);
        let shown = format!("{builder:?}");
        assert!(!shown.contains(&wrong), "a password in Debug: {shown}");
        let failures = refused(builder, &format!("wrong-password-{mechanism}"));
        check_refusals(
            &failures,
            RDKafkaErrorCode::Authentication,
            "authentication",
            &[&wrong, right],
        );
    }
}

/// A TLS producer for `listener` that trusts `ca` is refused: each record
/// fails promptly with librdkafka's TLS error.
fn tls_refused(facts: &HashMap<String, String>, listener: &str, ca: &str, label: &str) {
    let failures = refused(tls(facts, listener, ca), label);
    check_refusals(
        &failures,
        RDKafkaErrorCode::SSL,
        "certificate verify failed",
        &[],
    );
}

#[test]
fn an_untrusted_ca_fails_each_record_promptly_as_a_tls_error() {
    let Some(facts) = security() else { return };
    tls_refused(&facts, "SSL", "UNTRUSTED_CA", "untrusted-ca");
}

#[test]
fn a_host_name_mismatch_fails_each_record_promptly_as_a_tls_error() {
    let Some(facts) = security() else { return };
    // The same CA signed the certificate, for another host name.
    tls_refused(&facts, "MISMATCH", "CA", "host-name-mismatch");
    // With host-name checks off (librdkafka's `none`), the same listener
    // takes records: the mismatch was the only fault.
    round_trip(
        tls(&facts, "MISMATCH", "CA").set("ssl.endpoint.identification.algorithm", "none"),
        "host-name-unchecked",
    );
}

#[test]
fn new_credentials_let_a_refused_producer_in() {
    let Some(facts) = security() else { return };
    let (name, right) = user(&facts, "SCRAM-SHA-256");
    let plaintext = bootstrap().expect("broker tests are on");
    let topic_name = unique_topic("new-credentials");
    create_topic(&plaintext, &topic_name, 1, &[]);
    let producer = sasl_ssl(&facts, "SCRAM-SHA-256", name, &format!("not-{right}"))
        .build()
        .unwrap();
    let topic = Topic::from(topic_name.clone());
    run(Duration::from_secs(90), async {
        let refused = producer
            .send(Record::new(topic.clone()).with_payload("refused"))
            .await
            .expect_err("a wrong password");
        assert_eq!(
            refused.error().kafka_code(),
            Some(RDKafkaErrorCode::Authentication),
            "{refused}"
        );
        producer.set_sasl_credentials(name, right).unwrap();
        let mut futures = Vec::new();
        for i in 0..100 {
            let record = Record::new(topic.clone()).with_payload(format!("let-in-{i}"));
            futures.push(producer.produce(record).await.unwrap());
        }
        for future in futures {
            future.await.expect("delivered with the new password");
        }
    });
    futures::executor::block_on(producer.close());
    assert_eq!(consume_all(&plaintext, &topic_name, 1, 100).len(), 100);
}

#[test]
fn a_scram_password_rotated_on_the_broker_and_in_the_producer_loses_nothing() {
    const RATE: usize = 2_000; // records/s
    const SECONDS: usize = 12;
    let Some(facts) = security() else { return };
    let (name, old) = user(&facts, "ROTATE");
    let new = format!("rotated-{}", unique_topic("password"));
    let plaintext = bootstrap().expect("broker tests are on");
    let topic_name = unique_topic("rotation");
    create_topic(&plaintext, &topic_name, PARTITIONS, &[]);
    // SCRAM-SHA-512 connections on this listener re-authenticate every 3 s
    // (scripts/kafka), so the producer's connection must prove the new
    // password several times after the rotation.
    let producer = sasl_ssl(&facts, "SCRAM-SHA-512", name, old)
        .set("message.timeout.ms", "60000")
        .build()
        .unwrap();
    let topic = Topic::from(topic_name.clone());
    let producer = &producer;
    run(Duration::from_secs(120), async {
        let rotate = async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka");
            let args = [
                "scram".to_string(),
                name.to_string(),
                "SCRAM-SHA-512".into(),
                new.clone(),
            ];
            let status = tokio::task::spawn_blocking(move || {
                std::process::Command::new(script).args(args).status()
            })
            .await
            .unwrap()
            .expect("run scripts/kafka scram");
            assert!(status.success(), "rotating the password on the broker");
            producer.set_sasl_credentials(name, &new).unwrap();
            Instant::now()
        };
        let produce = async {
            let failed = produce_paced(producer, &topic, "rotation", RATE, SECONDS).await;
            (Instant::now(), failed)
        };
        let (rotated, (finished, failed)) = tokio::join!(rotate, produce);
        assert!(
            failed.is_empty(),
            "{} records failed, the first: {:?}",
            failed.len(),
            failed.first()
        );
        assert!(
            finished.duration_since(rotated) > Duration::from_secs(6),
            "records flowed for two re-authentications after the rotation"
        );
    });
    futures::executor::block_on(producer.close());
    let stored = consume_all(&plaintext, &topic_name, PARTITIONS, RATE * SECONDS);
    let seen = by_payload(&stored);
    for i in 0..RATE * SECONDS {
        let payload = format!("rotation-{i}");
        assert_eq!(seen.get(payload.as_bytes()), Some(&1), "{payload}");
    }
}

/// An unsecured JWT (`"alg": "none"`) for `principal`, valid for
/// `lifetime`, as Kafka's unsecured validator takes it.
fn unsecured_jwt(principal: &str, lifetime: Duration) -> aioproducer::OAuthToken {
    fn base64url(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            }
        }
        out
    }
    let now = std::time::SystemTime::now();
    let expires_at = now + lifetime;
    let seconds = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let claims = format!(
        r#"{{"sub":"{principal}","iat":{:.3},"exp":{:.3}}}"#,
        seconds(now),
        seconds(expires_at)
    );
    aioproducer::OAuthToken {
        value: format!(
            "{}.{}.",
            base64url(br#"{"alg":"none"}"#),
            base64url(claims.as_bytes())
        ),
        principal: principal.to_string(),
        expires_at,
        extensions: Vec::new(),
    }
}

fn oauthbearer(facts: &HashMap<String, String>) -> AioProducerBuilder {
    over(facts, "SASL_PLAINTEXT")
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanisms", "OAUTHBEARER")
}

#[test]
fn short_lived_tokens_from_an_async_provider_are_refreshed_while_records_flow() {
    const RATE: usize = 1_000; // records/s
    const SECONDS: usize = 12;
    const LIFETIME: Duration = Duration::from_secs(4);
    let Some(facts) = security() else { return };
    let principal = facts["OAUTHBEARER_PRINCIPAL"].clone();
    let plaintext = bootstrap().expect("broker tests are on");
    let topic_name = unique_topic("oauth-refresh");
    create_topic(&plaintext, &topic_name, PARTITIONS, &[]);
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&calls);
    // The broker ends a session when its token expires (scripts/kafka), so
    // records flow for 12 s only if librdkafka gets new 4-second tokens.
    let producer = oauthbearer(&facts)
        .set("message.timeout.ms", "60000")
        .oauthbearer_token_provider(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let principal = principal.clone();
            async move {
                // An async provider that really waits (a token endpoint).
                futures_timer_free_sleep(Duration::from_millis(50)).await;
                Ok(unsecured_jwt(&principal, LIFETIME))
            }
        })
        .build()
        .unwrap();
    let topic = Topic::from(topic_name.clone());
    let failed = run(
        Duration::from_secs(120),
        produce_paced(&producer, &topic, "oauth", RATE, SECONDS),
    );
    assert!(
        failed.is_empty(),
        "{} records failed across token refreshes, the first: {:?}",
        failed.len(),
        failed.first()
    );
    futures::executor::block_on(producer.close());
    let calls = calls.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        calls >= 3,
        "the provider was asked {calls} times in {SECONDS} s"
    );
    let stored = consume_all(&plaintext, &topic_name, PARTITIONS, RATE * SECONDS);
    let seen = by_payload(&stored);
    for i in 0..RATE * SECONDS {
        let payload = format!("oauth-{i}");
        assert_eq!(seen.get(payload.as_bytes()), Some(&1), "{payload}");
    }
}

#[test]
fn a_failing_token_provider_fails_each_record_promptly_with_its_reason() {
    let Some(facts) = security() else { return };
    let builder = oauthbearer(&facts)
        .oauthbearer_token_provider(|| async { Err("the identity provider is down".to_string()) });
    let failures = refused(builder, "oauth-failing-provider");
    check_refusals(
        &failures,
        RDKafkaErrorCode::Authentication,
        "the identity provider is down",
        &[],
    );
}

#[test]
fn a_token_provider_needs_the_oauthbearer_mechanism() {
    let error = AioProducer::builder()
        .bootstrap_servers("127.0.0.1:9092")
        .set("sasl.mechanisms", "PLAIN")
        .oauthbearer_token_provider(|| async { Err("unused".to_string()) })
        .build()
        .expect_err("PLAIN with a token provider");
    assert!(
        matches!(&error, aioproducer::Error::Config { key, .. } if key == "sasl.mechanisms"),
        "{error}"
    );
}

/// Sleeps without a runtime's timer (the provider's future is polled
/// outside any runtime).
async fn futures_timer_free_sleep(duration: Duration) {
    let (sender, receiver) = futures::channel::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(duration);
        let _ = sender.send(());
    });
    let _ = receiver.await;
}

/// Produces `rate` records a second for `seconds` (payloads `label-i`) and
/// awaits every report; returns the failures.
async fn produce_paced(
    producer: &AioProducer,
    topic: &Topic,
    label: &str,
    rate: usize,
    seconds: usize,
) -> Vec<String> {
    let start = Instant::now();
    let mut futures = Vec::with_capacity(rate * seconds);
    for i in 0..rate * seconds {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let record = Record::new(topic.clone()).with_payload(format!("{label}-{i}"));
        futures.push(producer.produce(record).await.expect("queued"));
    }
    let mut failed = Vec::new();
    for future in futures {
        if let Err(e) = future.await {
            failed.push(e.to_string());
        }
    }
    failed
}
