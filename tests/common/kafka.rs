//! The real broker: found through `KAFKA_BOOTSTRAP` (set by `scripts/test`,
//! which starts it), or started privately for tests that kill it.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aioproducer::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use aioproducer::rdkafka::client::DefaultClientContext;
use aioproducer::rdkafka::types::RDKafkaErrorCode;
use aioproducer::rdkafka::ClientConfig;

/// The broker to test against, or `None` when broker tests are off
/// ([`broker_tests_on`]). Fails the test when `KAFKA_BOOTSTRAP` names a
/// broker that does not answer.
pub fn bootstrap() -> Option<String> {
    if !broker_tests_on() {
        return None;
    }
    let address = std::env::var("KAFKA_BOOTSTRAP").expect("set");
    wait_reachable(&address, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("KAFKA_BOOTSTRAP={address} is set but unreachable: {e}"));
    Some(address)
}

/// Whether the tests that need Kafka (a broker, or a cluster they start)
/// run: when `KAFKA_BOOTSTRAP` is set. When it is not, says so on stderr,
/// and fails the test in CI: broker tests may never be skipped silently.
pub fn broker_tests_on() -> bool {
    if std::env::var_os("KAFKA_BOOTSTRAP").is_some() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "KAFKA_BOOTSTRAP is not set in CI: run the tests through scripts/test"
    );
    eprintln!(
        "SKIPPED: KAFKA_BOOTSTRAP is not set; scripts/test starts a broker and sets it \
         (or: scripts/kafka start, then KAFKA_BOOTSTRAP=$(scripts/kafka bootstrap))"
    );
    false
}

fn wait_reachable(address: &str, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let first = address.split(',').next().unwrap_or(address);
    loop {
        let addrs = first.to_socket_addrs().map_err(|e| e.to_string())?;
        let mut last = String::from("no address");
        for a in addrs {
            match TcpStream::connect_timeout(&a, Duration::from_secs(2)) {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
        }
        if Instant::now() >= deadline {
            return Err(last);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A topic name no other test (or earlier run on the same broker) uses.
pub fn unique_topic(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a topic with topic-level `configs`.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results =
        futures::executor::block_on(admin.create_topics([&new], &options)).expect("create topics");
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => panic!("creating topic {name}: {code}"),
        }
    }
}

/// Deletes `topic` and makes it again with `partitions` partitions (the
/// creation is retried while the broker still finishes the deletion).
pub fn remake_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let deleted =
        futures::executor::block_on(admin.delete_topics(&[topic], &options)).expect("delete");
    for result in deleted {
        result.unwrap_or_else(|(name, code)| panic!("deleting topic {name}: {code}"));
    }
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let created = futures::executor::block_on(admin.create_topics([&new], &options))
            .expect("create topics");
        match created.into_iter().next().expect("one result") {
            Ok(_) => return,
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err((name, code)) => panic!("making topic {name} again: {code}"),
        }
    }
}

/// A broker of this test's own, started with `scripts/kafka` in a private
/// state directory, so it can be killed without disturbing other tests.
pub struct Broker {
    state: PathBuf,
}

impl Broker {
    fn script(&self, command: &str) -> String {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka");
        let output = Command::new(script)
            .arg(command)
            .env("KAFKA_STATE", &self.state)
            .env("KAFKA_HEAP_OPTS", "-Xms256m -Xmx512m")
            .output()
            .expect("run scripts/kafka");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "scripts/kafka {command} failed:\n{stderr}"
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Starts a fresh broker; returns it and its bootstrap address.
    pub fn start() -> (Self, String) {
        let state = std::env::temp_dir().join(unique_topic("aioproducer-broker"));
        let broker = Broker { state };
        let bootstrap = broker.script("start");
        (broker, bootstrap)
    }

    /// kill -9.
    pub fn kill(&self) {
        self.script("kill");
    }

    /// Starts it again on the same data and ports.
    pub fn restart(&self) {
        self.script("start");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| self.script("clean"));
    }
}

/// Produces five records to `topic`, the third of 20,000 bytes (under the
/// client's `message.max.bytes`, over a topic `max.message.bytes` of 10,000),
/// and asserts that it alone fails, with `RecordTooLargeForTopic` and its
/// record handed back, while its batch neighbours are delivered.
pub fn only_the_oversized_record_fails(producer: &aioproducer::AioProducer, topic: &str) {
    use aioproducer::{Error, Record};
    let outcomes = super::run(Duration::from_secs(60), async {
        let mut futures = Vec::new();
        for i in 0..5 {
            let record = if i == 2 {
                Record::new(topic.to_string()).with_payload(vec![b'x'; 20_000])
            } else {
                Record::new(topic.to_string()).with_payload(format!("neighbour-{i}"))
            };
            futures.push(producer.produce(record).await.unwrap());
        }
        let mut outcomes = Vec::new();
        for f in futures {
            outcomes.push(f.await);
        }
        outcomes
    });
    for (i, outcome) in outcomes.iter().enumerate() {
        if i == 2 {
            let failure = outcome.as_ref().expect_err("too large for the topic");
            assert!(
                matches!(
                    failure.error(),
                    Error::RecordTooLargeForTopic { max: 10_000, .. }
                ),
                "{failure}"
            );
            assert_eq!(
                failure.record().payload().unwrap().len(),
                20_000,
                "the record comes back"
            );
        } else {
            assert!(outcome.is_ok(), "neighbour {i}: {outcome:?}");
        }
    }
}

/// The secured listeners of the broker `scripts/kafka` runs (its
/// `security.env`: addresses, CA files, users and passwords), found through
/// `KAFKA_STATE` (set by `scripts/test`; `scripts/kafka`'s default state
/// directory otherwise). `None` when broker tests are off; fails the test
/// when the broker has no secured listeners (one not started by
/// `scripts/kafka`, or formatted by an older one).
pub fn security() -> Option<std::collections::HashMap<String, String>> {
    bootstrap()?;
    let state = std::env::var_os("KAFKA_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/aioproducer/kafka-run")
        });
    let file = state.join("security.env");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "{}: {e}. The secured-listener tests need the broker scripts/kafka starts \
             (scripts/test does; else set KAFKA_STATE to its state directory)",
            file.display()
        )
    });
    Some(
        text.lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}
