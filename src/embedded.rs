//! A Kafka cluster inside the process, for zero-setup runs and tests.
//!
//! A thin owner of librdkafka's mock cluster (`rdkafka::mocking::MockCluster`):
//! real Kafka protocol on loopback sockets, served by librdkafka's own mock
//! broker threads. It supports producing (idempotent and transactional),
//! consuming, metadata and fault injection (request errors, brokers down,
//! round-trip delays) through [`EmbeddedCluster::mock`].

use std::fmt;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::error::Error;
use crate::record::validate_topic;

/// librdkafka's mock Kafka cluster, owned.
///
/// ```
/// use aioproducer::{AioProducer, EmbeddedCluster, Record};
/// let cluster = EmbeddedCluster::new(1)?;
/// cluster.create_topic("events", 3)?;
/// let producer = AioProducer::builder()
///     .bootstrap_servers(cluster.bootstrap_servers())
///     .build()?;
/// let record = Record::new("events").with_payload("hi");
/// let delivery = futures::executor::block_on(producer.send(record)).expect("delivered");
/// assert_eq!(delivery.offset, 0);
/// # Ok::<(), aioproducer::Error>(())
/// ```
pub struct EmbeddedCluster {
    mock: MockCluster<'static, DefaultProducerContext>,
}

impl fmt::Debug for EmbeddedCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedCluster")
            .field("bootstrap_servers", &self.bootstrap_servers())
            .finish()
    }
}

impl EmbeddedCluster {
    /// Starts a cluster of `brokers` brokers on loopback ports.
    pub fn new(brokers: i32) -> Result<Self, Error> {
        let mock = MockCluster::new(brokers)
            .map_err(|e| Error::EmbeddedCluster(format!("could not start: {e}")))?;
        Ok(Self { mock })
    }

    /// The `bootstrap.servers` string for clients.
    pub fn bootstrap_servers(&self) -> String {
        self.mock.bootstrap_servers()
    }

    /// Creates `topic` with `partitions` partitions (replication factor 1).
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), Error> {
        validate_topic(topic)?;
        self.mock
            .create_topic(topic, partitions, 1)
            .map_err(|e| Error::EmbeddedCluster(format!("could not create topic {topic:?}: {e}")))
    }

    /// The underlying mock cluster, for fault injection.
    pub fn mock(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self.mock
    }
}
