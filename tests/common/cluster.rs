//! A real three-node Kafka cluster of a test's own (`scripts/kafka cluster`
//! in a private state directory), with the faults the failover tests inject:
//! a node killed, hung (SIGSTOP), restarted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aioproducer::rdkafka::admin::{
    AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication,
};
use aioproducer::rdkafka::client::DefaultClientContext;
use aioproducer::rdkafka::ClientConfig;

use super::kafka::unique_topic;

/// A running cluster; stopped and deleted when dropped, or kept (with the
/// end of each node's log printed) when the test failed.
pub struct Cluster {
    state: PathBuf,
    nodes: usize,
    bootstrap: String,
    admin: AdminClient<DefaultClientContext>,
}

impl Cluster {
    /// Starts `nodes` nodes (each a broker and a KRaft controller, one
    /// quorum, replication factor `nodes`, `min.insync.replicas` 2).
    pub fn start(nodes: usize) -> Self {
        let state = std::env::temp_dir().join(unique_topic("aioproducer-cluster"));
        let bootstrap = run_script(&state, &["start", &nodes.to_string()]).unwrap_or_else(|e| {
            // The nodes that did come up go; their logs stay.
            let _ = run_script(&state, &["stop"]);
            panic!("{e}\nthe cluster's logs are kept in {}", state.display())
        });
        let admin = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("admin client");
        Cluster {
            state,
            nodes,
            bootstrap,
            admin,
        }
    }

    /// Every node's address.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The node ids, 1 to N.
    pub fn nodes(&self) -> impl Iterator<Item = i32> {
        1..=self.nodes as i32
    }

    /// kill -9 of node `n`.
    pub fn kill(&self, n: i32) {
        script(&self.state, &["kill", &n.to_string()]);
    }

    /// SIGSTOP of node `n`: hung, not dead (its sockets stay open).
    pub fn pause(&self, n: i32) {
        script(&self.state, &["pause", &n.to_string()]);
    }

    /// SIGCONT of a paused node.
    pub fn resume(&self, n: i32) {
        script(&self.state, &["resume", &n.to_string()]);
    }

    /// A clean stop of node `n` (or none, when it is down), then a start;
    /// returns once it serves again.
    pub fn restart(&self, n: i32) {
        script(&self.state, &["restart", &n.to_string()]);
    }

    /// The active controller (the KRaft quorum's leader).
    pub fn controller(&self) -> i32 {
        let id = script(&self.state, &["controller"]);
        id.parse()
            .unwrap_or_else(|_| panic!("no quorum leader in {id:?}"))
    }

    /// Creates `topic` with `partitions` partitions, one replica on each
    /// node, and waits until every partition has a leader and all its
    /// replicas in sync.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let new = NewTopic::new(
            topic,
            partitions,
            TopicReplication::Fixed(self.nodes as i32),
        );
        let results = futures::executor::block_on(self.admin.create_topics([&new], &options()))
            .expect("create topics");
        for result in results {
            result.unwrap_or_else(|(name, code)| panic!("creating topic {name}: {code}"));
        }
        self.await_in_sync(topic, Duration::from_secs(60));
    }

    /// Grows `topic` to `total` partitions (the admin CreatePartitions
    /// call).
    pub fn add_partitions(&self, topic: &str, total: usize) {
        let new = NewPartitions::new(topic, total);
        let results = futures::executor::block_on(self.admin.create_partitions([&new], &options()))
            .expect("create partitions");
        for result in results {
            result.unwrap_or_else(|(name, code)| panic!("adding partitions to {name}: {code}"));
        }
    }

    /// The leader of each partition of `topic` (by partition id; -1 for
    /// none), as the cluster's metadata has it now.
    pub fn leaders(&self, topic: &str) -> Vec<i32> {
        self.partitions(topic)
            .into_iter()
            .map(|(leader, _, _)| leader)
            .collect()
    }

    /// Waits until every partition of `topic` has a leader and all its
    /// replicas in sync, failing the test after `limit`.
    pub fn await_in_sync(&self, topic: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let partitions = self.partitions(topic);
            if !partitions.is_empty()
                && partitions
                    .iter()
                    .all(|(leader, replicas, isr)| *leader >= 0 && replicas == isr)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{topic} not in sync after {limit:?}: (leader, replicas, in sync) {partitions:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// (leader, sorted replicas, sorted in-sync replicas) per partition.
    fn partitions(&self, topic: &str) -> Vec<(i32, Vec<i32>, Vec<i32>)> {
        let Ok(metadata) = self
            .admin
            .inner()
            .fetch_metadata(Some(topic), Duration::from_secs(5))
        else {
            return Vec::new();
        };
        let Some(info) = metadata.topics().first() else {
            return Vec::new();
        };
        let mut partitions: Vec<_> = info
            .partitions()
            .iter()
            .map(|p| {
                let (mut replicas, mut isr) = (p.replicas().to_vec(), p.isr().to_vec());
                replicas.sort_unstable();
                isr.sort_unstable();
                (p.id(), p.leader(), replicas, isr)
            })
            .collect();
        partitions.sort_unstable_by_key(|p| p.0);
        partitions
            .into_iter()
            .map(|(_, leader, replicas, isr)| (leader, replicas, isr))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for n in self.nodes() {
                let log = self.state.join(format!("node-{n}/broker.log"));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                eprintln!("--- the end of {}:", log.display());
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
            let _ = run_script(&self.state, &["stop"]);
            eprintln!(
                "the cluster's logs and data are kept in {}",
                self.state.display()
            );
        } else {
            let _ = run_script(&self.state, &["clean"]);
        }
    }
}

fn options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)))
}

/// Runs `scripts/kafka cluster ARGS` on the cluster in `state`; returns its
/// output, failing the test (with the script's stderr) when it fails.
fn script(state: &Path, args: &[&str]) -> String {
    run_script(state, args).unwrap_or_else(|e| panic!("{e}"))
}

/// `scripts/kafka cluster ARGS`: its output, or what it said on failure.
fn run_script(state: &Path, args: &[&str]) -> Result<String, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka");
    let output = Command::new(script)
        .arg("cluster")
        .args(args)
        .env("KAFKA_CLUSTER_STATE", state)
        .output()
        .expect("run scripts/kafka");
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(format!(
            "scripts/kafka cluster {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
