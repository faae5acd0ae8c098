//! What the cluster says about itself: its id, brokers, controller and
//! topics, as [`AioProducer::metadata`](crate::AioProducer::metadata) and
//! its shortcuts return it.

use rdkafka::types::RDKafkaErrorCode;

use crate::error::Error;

/// One read of the cluster's metadata.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cluster = aioproducer::EmbeddedCluster::new(1)?;
/// cluster.create_topic("orders", 3)?;
/// let producer = aioproducer::AioProducer::builder()
///     .bootstrap_servers(cluster.bootstrap_servers())
///     .build()?;
/// let metadata = futures::executor::block_on(
///     producer.metadata(Some("orders"), std::time::Duration::from_secs(10)),
/// )?;
/// assert_eq!(metadata.topics[0].partitions.len(), 3);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMetadata {
    /// The cluster id, when the cluster gave one.
    pub cluster_id: Option<String>,
    /// The broker id of the active controller, when one is known.
    pub controller_id: Option<i32>,
    /// Every broker of the cluster.
    pub brokers: Vec<BrokerInfo>,
    /// Every topic asked for (or all of them), in the cluster's order.
    pub topics: Vec<TopicInfo>,
}

impl ClusterMetadata {
    /// The partitions of `topic` in this answer (by id), or the error the
    /// cluster gave for it (`UnknownTopicOrPartition` when the answer does
    /// not name it).
    pub(crate) fn partitions_of(&self, topic: &str) -> Result<&[PartitionInfo], Error> {
        match self.topics.iter().find(|t| t.name == topic) {
            Some(TopicInfo {
                error: Some(error), ..
            }) => Err(error.clone()),
            Some(info) => Ok(&info.partitions),
            None => Err(Error::kafka(RDKafkaErrorCode::UnknownTopicOrPartition)),
        }
    }
}

/// A broker, as the cluster advertises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// Its id (`node.id`).
    pub id: i32,
    /// The host it advertises on the listener we reached it through.
    pub host: String,
    /// The port of that listener.
    pub port: i32,
}

/// A topic and its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Its name.
    pub name: String,
    /// Its partitions, by id.
    pub partitions: Vec<PartitionInfo>,
    /// What the cluster said was wrong with it (an unknown topic says
    /// `UnknownTopicOrPartition` here), if anything.
    pub error: Option<Error>,
}

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Its id, from 0.
    pub id: i32,
    /// The broker leading it, when it has a leader.
    pub leader: Option<i32>,
    /// The brokers holding a replica.
    pub replicas: Vec<i32>,
    /// The replicas in sync with the leader.
    pub in_sync: Vec<i32>,
    /// What the cluster said was wrong with it (no leader, say), if
    /// anything.
    pub error: Option<Error>,
}
