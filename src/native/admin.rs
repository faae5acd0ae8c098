//! Asking the cluster about a topic: its `max.message.bytes`, and which of
//! its partitions have a leader.
//!
//! The broker rejects a whole record batch when it is larger than the
//! topic's `max.message.bytes`, and librdkafka does not split the batch and
//! retry as the Java client does: one oversized record fails every record
//! batched with it. Knowing the limit, a worker fails the oversized record
//! alone before it reaches librdkafka, and its neighbours are delivered.
//!
//! The lookup is `DescribeConfigs` on the producer's own handle, with a
//! private result queue polled by the calling worker. Admin requests go to
//! the cluster's controller; librdkafka's mock cluster names a controller
//! that is none of its brokers, and a request would wait out its timeout
//! there, so the cluster is first checked for a reachable controller
//! ([`controller_reachable`]).
//!
//! Partitions come from a `Metadata` request for the one topic, which any
//! broker answers (the mock cluster too); librdkafka's own view of the
//! topic is updated from the same answer. The same request, for every topic
//! or one, answers [`AioProducer::metadata`](crate::AioProducer::metadata)
//! ([`cluster_metadata`]).

use std::ffi::CString;
use std::ptr;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::types::RDKafkaErrorCode;

use crate::cluster::{BrokerInfo, ClusterMetadata, PartitionInfo, TopicInfo};
use crate::error::Error;
use crate::native::owned::Owned;
use crate::native::{c_str, millis};

/// Whether the cluster names a controller that is one of its brokers;
/// `None` when librdkafka learnt no controller within `timeout`.
pub(crate) fn controller_reachable(rk: *mut rd::rd_kafka_t, timeout: Duration) -> Option<bool> {
    let millis = millis(timeout);
    // SAFETY: `rk` is a live handle; the metadata is destroyed before return
    // and its broker array read only within its bounds.
    unsafe {
        let controller = rd::rd_kafka_controllerid(rk, millis);
        if controller < 0 {
            return None;
        }
        let mut metadata = ptr::null();
        let err = rd::rd_kafka_metadata(rk, 0, ptr::null_mut(), &mut metadata, millis);
        if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || metadata.is_null() {
            return None;
        }
        let brokers = (*metadata).brokers;
        let count = usize::try_from((*metadata).broker_cnt).unwrap_or(0);
        let known = (0..count).any(|i| (*brokers.add(i)).id == controller);
        rd::rd_kafka_metadata_destroy(metadata);
        Some(known)
    }
}

/// The topic's `max.message.bytes`, or why it could not be read.
///
/// Blocks the calling thread for up to `timeout`.
pub(crate) fn topic_max_message_bytes(
    rk: *mut rd::rd_kafka_t,
    topic: &str,
    timeout: Duration,
) -> Result<usize, String> {
    let name = CString::new(topic).map_err(|_| "topic name contains NUL".to_string())?;
    let millis = millis(timeout);
    // SAFETY: `rk` is a live handle (caller holds the producer); every object
    // created here is owned by an `Owned` and destroyed before returning; the
    // resource array outlives the call that reads it.
    unsafe {
        let no_memory = || "librdkafka could not allocate the request".to_string();
        let queue = Owned::from_raw(rd::rd_kafka_queue_new(rk)).ok_or_else(no_memory)?;
        let resource = Owned::from_raw(rd::rd_kafka_ConfigResource_new(
            rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
            name.as_ptr(),
        ))
        .ok_or_else(no_memory)?;
        let options = Owned::from_raw(rd::rd_kafka_AdminOptions_new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS,
        ))
        .ok_or_else(no_memory)?;
        rd::rd_kafka_AdminOptions_set_request_timeout(options.ptr(), millis, ptr::null_mut(), 0);
        let mut resources = [resource.ptr()];
        rd::rd_kafka_DescribeConfigs(rk, resources.as_mut_ptr(), 1, options.ptr(), queue.ptr());
        drop((options, resource));

        let Some(event) = Owned::from_raw(rd::rd_kafka_queue_poll(
            queue.ptr(),
            millis.saturating_add(500),
        )) else {
            return Err("no answer in time".into());
        };
        let err = rd::rd_kafka_event_error(event.ptr());
        if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(c_str(rd::rd_kafka_event_error_string(event.ptr())));
        }
        let result = rd::rd_kafka_event_DescribeConfigs_result(event.ptr());
        if result.is_null() {
            return Err("not a DescribeConfigs result".into());
        }
        let mut count = 0;
        let resources = rd::rd_kafka_DescribeConfigs_result_resources(result, &mut count);
        for i in 0..count {
            let resource = *resources.add(i);
            let err = rd::rd_kafka_ConfigResource_error(resource);
            if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                return Err(c_str(rd::rd_kafka_ConfigResource_error_string(resource)));
            }
            let mut entries_count = 0;
            let entries = rd::rd_kafka_ConfigResource_configs(resource, &mut entries_count);
            for j in 0..entries_count {
                let entry = *entries.add(j);
                if c_str(rd::rd_kafka_ConfigEntry_name(entry)) == "max.message.bytes" {
                    let value = c_str(rd::rd_kafka_ConfigEntry_value(entry));
                    return value
                        .parse()
                        .map_err(|_| format!("unreadable value {value:?}"));
                }
            }
        }
        Err("max.message.bytes not in the answer".into())
    }
}

/// Why a topic's partitions could not be read.
#[derive(Debug)]
pub(crate) enum PartitionsUnknown {
    /// No broker answered: the cluster is down or not reached yet.
    Unreachable(String),
    /// The cluster answered for the topic with an error (no such topic, not
    /// authorised, ...).
    Topic(String),
}

/// A topic's partitions, as the cluster's metadata shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicPartitions {
    /// How many there are (what a key's hash is taken modulo).
    pub(crate) count: i32,
    /// Those that have a leader, in ascending order.
    pub(crate) available: Box<[i32]>,
}

/// The partitions of `topic`.
///
/// Blocks the calling thread for up to `timeout`.
pub(crate) fn topic_partitions(
    rk: *mut rd::rd_kafka_t,
    topic: &str,
    timeout: Duration,
) -> Result<TopicPartitions, PartitionsUnknown> {
    let metadata = cluster_metadata(rk, Some(topic), timeout).map_err(|e| match e {
        MetadataError::Unreachable(error) => PartitionsUnknown::Unreachable(error.to_string()),
        MetadataError::Topic(reason) => PartitionsUnknown::Topic(reason.into()),
    })?;
    let partitions = metadata
        .partitions_of(topic)
        .map_err(|e| PartitionsUnknown::Topic(e.to_string()))?;
    // In id order, as `cluster_metadata` sorts them.
    let available: Vec<i32> = partitions
        .iter()
        .filter(|p| p.leader.is_some())
        .map(|p| p.id)
        .collect();
    Ok(TopicPartitions {
        count: i32::try_from(partitions.len()).unwrap_or(i32::MAX),
        available: available.into(),
    })
}

/// Why [`cluster_metadata`] read nothing.
#[derive(Debug)]
pub(crate) enum MetadataError {
    /// No broker answered within the timeout (or librdkafka refused the
    /// request).
    Unreachable(Error),
    /// The topic asked for could not be asked for.
    Topic(&'static str),
}

/// The cluster's metadata: every topic, or only `topic`.
///
/// Blocks the calling thread for up to `timeout`.
pub(crate) fn cluster_metadata(
    rk: *mut rd::rd_kafka_t,
    topic: Option<&str>,
    timeout: Duration,
) -> Result<ClusterMetadata, MetadataError> {
    let name = topic
        .map(CString::new)
        .transpose()
        .map_err(|_| MetadataError::Topic("the topic name contains NUL"))?;
    // SAFETY: `rk` is a live handle (the caller holds the producer); the
    // topic handle is ours (`Owned`) until the end of the block and the
    // metadata is destroyed before it ends; arrays are read within the
    // counts librdkafka gives with them, and strings are NUL-terminated.
    unsafe {
        let handle = match &name {
            Some(name) => Some(
                Owned::from_raw(rd::rd_kafka_topic_new(rk, name.as_ptr(), ptr::null_mut()))
                    .ok_or(MetadataError::Topic("librdkafka refused a topic handle"))?,
            ),
            None => None,
        };
        let (all, only) = match &handle {
            Some(handle) => (0, handle.ptr()),
            None => (1, ptr::null_mut()),
        };
        let mut metadata = ptr::null();
        let err = rd::rd_kafka_metadata(rk, all, only, &mut metadata, millis(timeout));
        if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || metadata.is_null() {
            return Err(MetadataError::Unreachable(Error::Kafka {
                code: RDKafkaErrorCode::from(err),
                detail: Some(format!(
                    "metadata request: {}",
                    c_str(rd::rd_kafka_err2str(err))
                )),
            }));
        }
        let m = &*metadata;
        let brokers = slice(m.brokers, m.broker_cnt)
            .iter()
            .map(|b| BrokerInfo {
                id: b.id,
                host: c_str(b.host),
                port: b.port,
            })
            .collect();
        let topics = slice(m.topics, m.topic_cnt)
            .iter()
            .map(|t| {
                let mut partitions: Vec<PartitionInfo> = slice(t.partitions, t.partition_cnt)
                    .iter()
                    .map(|p| PartitionInfo {
                        id: p.id,
                        leader: (p.leader >= 0).then_some(p.leader),
                        replicas: slice(p.replicas, p.replica_cnt).to_vec(),
                        in_sync: slice(p.isrs, p.isr_cnt).to_vec(),
                        error: error_of(p.err),
                    })
                    .collect();
                partitions.sort_unstable_by_key(|p| p.id);
                TopicInfo {
                    name: c_str(t.topic),
                    partitions,
                    error: error_of(t.err),
                }
            })
            .collect();
        rd::rd_kafka_metadata_destroy(metadata);
        // Both read the metadata just cached: no wait.
        let controller = rd::rd_kafka_controllerid(rk, 0);
        let id = rd::rd_kafka_clusterid(rk, 0);
        let cluster_id = (!id.is_null()).then(|| c_str(id));
        if !id.is_null() {
            rd::rd_kafka_mem_free(rk, id.cast());
        }
        Ok(ClusterMetadata {
            cluster_id,
            controller_id: (controller >= 0).then_some(controller),
            brokers,
            topics,
        })
    }
}

/// The `count` elements at `items` (none when null).
///
/// # Safety
/// A non-null `items` points to `count` initialised elements that outlive
/// the returned slice.
unsafe fn slice<'a, T>(items: *const T, count: i32) -> &'a [T] {
    let count = usize::try_from(count).unwrap_or(0);
    if items.is_null() || count == 0 {
        return &[];
    }
    // SAFETY: function contract.
    unsafe { std::slice::from_raw_parts(items, count) }
}

/// A metadata error code as an error, or `None` for none.
fn error_of(err: rd::rd_kafka_resp_err_t) -> Option<Error> {
    (err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR)
        .then(|| Error::kafka(RDKafkaErrorCode::from(err)))
}
