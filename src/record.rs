//! The record a caller hands to the producer, and the checks it must pass.
//!
//! Key, payload and header values are [`Bytes`]: the producer never copies
//! them. librdkafka references the payload in place (no `RD_KAFKA_MSG_F_COPY`)
//! while the delivery slot keeps the `Bytes` alive until the delivery report,
//! and hands the record back intact when delivery fails.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::Error;

/// A topic name, cheap to clone.
///
/// Made from a `&'static str` it costs nothing; from a `String` it allocates
/// once (the caller's allocation). Clone a `Topic` and reuse it to produce
/// many records to a dynamic topic without allocating per record.
///
/// ```
/// use aioproducer::Topic;
/// let orders = Topic::from("orders");
/// let dynamic = Topic::from(format!("tenant-{}", 7));
/// assert_eq!(&*orders, "orders");
/// assert_eq!(dynamic.clone(), dynamic);
/// ```
#[derive(Clone)]
pub struct Topic {
    name: Repr,
    /// The name checked against Kafka's rules once, when the `Topic` was
    /// made: a record reuses the verdict instead of checking the name again.
    rule_broken: Option<&'static str>,
}

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Topic {
    /// Copies a borrowed name into a new `Topic`.
    pub fn new(name: &str) -> Self {
        Self::checked(Repr::Shared(Arc::from(name)))
    }

    fn checked(name: Repr) -> Self {
        let rule_broken = match &name {
            Repr::Static(s) => broken_rule(s),
            Repr::Shared(s) => broken_rule(s),
        };
        Topic { name, rule_broken }
    }

    /// Whether the name is a valid Kafka topic name (checked when made).
    pub(crate) fn check(&self) -> Result<(), Error> {
        match self.rule_broken {
            None => Ok(()),
            Some(reason) => Err(invalid_topic(self.as_str(), reason)),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        match &self.name {
            Repr::Static(s) => s,
            Repr::Shared(s) => s,
        }
    }

    /// Whether both names share one allocation (a cheap equality hint).
    pub(crate) fn same_allocation(&self, other: &Topic) -> bool {
        std::ptr::eq(self.as_str(), other.as_str())
    }
}

impl From<&'static str> for Topic {
    fn from(name: &'static str) -> Self {
        Self::checked(Repr::Static(name))
    }
}

impl From<String> for Topic {
    fn from(name: String) -> Self {
        Self::checked(Repr::Shared(Arc::from(name)))
    }
}

impl From<Arc<str>> for Topic {
    fn from(name: Arc<str>) -> Self {
        Self::checked(Repr::Shared(name))
    }
}

impl From<&Topic> for Topic {
    fn from(topic: &Topic) -> Self {
        topic.clone()
    }
}

impl Deref for Topic {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Topic {
    fn eq(&self, other: &Self) -> bool {
        self.same_allocation(other) || self.as_str() == other.as_str()
    }
}

impl Eq for Topic {}

impl Hash for Topic {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record header: a string key and an optional (null) value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The header key.
    pub key: Cow<'static, str>,
    /// The header value; `None` is a Kafka null header value.
    pub value: Option<Bytes>,
}

/// A record to produce: topic, optional key, payload, partition, timestamp and
/// headers.
///
/// ```
/// use aioproducer::Record;
/// let record = Record::new("orders")
///     .with_key("customer-42")
///     .with_payload(r#"{"total": 12.5}"#)
///     .with_header("trace-id", "abc123")
///     .with_timestamp(1_700_000_000_000);
/// assert_eq!(record.key().unwrap().as_ref(), b"customer-42");
/// assert_eq!(record.headers().len(), 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
// `repr(C)`, topic first: a delivery slot keeps the topic, which the future
// reads with the outcome, on the lines its completer writes (`slot.rs`).
#[repr(C)]
pub struct Record {
    topic: Topic,
    key: Option<Bytes>,
    payload: Option<Bytes>,
    partition: Option<i32>,
    timestamp: Option<i64>,
    headers: Vec<Header>,
}

impl Record {
    /// A record for `topic` with no key, a null payload, librdkafka's
    /// partitioner, the current time and no headers.
    pub fn new(topic: impl Into<Topic>) -> Self {
        Self {
            topic: topic.into(),
            key: None,
            payload: None,
            partition: None,
            timestamp: None,
            headers: Vec::new(),
        }
    }

    /// Sets the key. Records with the same key go to the same partition (with
    /// librdkafka's default partitioner) and keep their order.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the payload.
    pub fn with_payload(mut self, payload: impl Into<Bytes>) -> Self {
        self.payload = Some(payload.into());
        self
    }

    /// Sends the record to this partition instead of the partitioner's choice.
    pub fn with_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the record's CreateTime, in milliseconds since the Unix epoch.
    pub fn with_timestamp(mut self, millis: i64) -> Self {
        self.timestamp = Some(millis);
        self
    }

    /// Appends a header.
    pub fn with_header(
        mut self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<Bytes>,
    ) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }

    /// Appends a header with a null value.
    pub fn with_null_header(mut self, key: impl Into<Cow<'static, str>>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: None,
        });
        self
    }

    /// Replaces all headers.
    pub fn with_headers(mut self, headers: Vec<Header>) -> Self {
        self.headers = headers;
        self
    }

    /// The topic.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// Moves the topic out, leaving an empty static name in its place: for
    /// a delivered record, whose topic goes into its `Delivery` and which
    /// is dropped next. Cloning instead would add two atomic updates per
    /// record to the topic's reference count, a line every producer of the
    /// topic writes.
    pub(crate) fn take_topic(&mut self) -> Topic {
        /// What `Topic::from("")` makes, without checking it again.
        const EMPTY: Topic = Topic {
            name: Repr::Static(""),
            rule_broken: Some(EMPTY_NAME),
        };
        std::mem::replace(&mut self.topic, EMPTY)
    }

    /// The key, if any.
    pub fn key(&self) -> Option<&Bytes> {
        self.key.as_ref()
    }

    /// The payload, if any.
    pub fn payload(&self) -> Option<&Bytes> {
        self.payload.as_ref()
    }

    /// The explicit partition, if any.
    pub fn partition(&self) -> Option<i32> {
        self.partition
    }

    /// The explicit timestamp, if any.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The headers, in order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// Whether librdkafka's batch call can carry this record (it cannot carry
    /// headers or an explicit timestamp; those go one by one).
    pub(crate) fn is_plain(&self) -> bool {
        self.headers.is_empty() && self.timestamp.is_none()
    }

    /// The record's size as librdkafka counts it against `message.max.bytes`
    /// (`rd_kafka_msg_max_wire_size`): the worst-case v2 record framing, key,
    /// payload, and each header's key, value and their zig-zag varint lengths.
    pub(crate) fn wire_size(&self) -> usize {
        const V2_MAX_OVERHEAD: usize = 5 + 1 + 10 + 5 + 5 + 5 + 5;
        let len = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
        let headers: usize = self
            .headers
            .iter()
            .map(|h| {
                let value = len(&h.value);
                h.key.len() + value + varint_len(h.key.len()) + varint_len(value)
            })
            .sum();
        V2_MAX_OVERHEAD + len(&self.key) + len(&self.payload) + headers
    }

    /// The size of a Kafka v2 record batch holding only this record, as a
    /// broker compares it with a topic's `max.message.bytes` (uncompressed):
    /// the 61-byte batch header plus the record's exact encoding.
    pub(crate) fn batch_size_alone(&self) -> usize {
        const BATCH_HEADER: usize = 61;
        let field =
            |b: Option<&Bytes>| b.map_or(varint_len_signed(-1), |b| varint_len(b.len()) + b.len());
        let headers: usize = self
            .headers
            .iter()
            .map(|h| varint_len(h.key.len()) + h.key.len() + field(h.value.as_ref()))
            .sum();
        // attributes, timestamp delta 0, offset delta 0: one byte each.
        let body = 3
            + field(self.key.as_ref())
            + field(self.payload.as_ref())
            + varint_len(self.headers.len())
            + headers;
        BATCH_HEADER + varint_len(body) + body
    }

    /// Checks everything that can be checked before the record is queued, so
    /// bad input fails at the call instead of in a delivery report.
    pub(crate) fn validate(&self, limits: SizeLimits) -> Result<(), Error> {
        self.topic.check()?;
        if let Some(p) = self.partition {
            if p < 0 {
                return Err(Error::InvalidPartition(p));
            }
        }
        if let Some(ts) = self.timestamp {
            if ts <= 0 {
                return Err(Error::InvalidTimestamp(ts));
            }
        }
        let size = self.wire_size();
        if size > limits.message_max {
            return Err(Error::RecordTooLarge {
                size,
                max: limits.message_max,
            });
        }
        // librdkafka counts a message's payload (not its key or headers)
        // against its byte limit, and waits for room only below it: a
        // payload over the whole limit could never enter.
        let payload = self.payload.as_ref().map_or(0, Bytes::len);
        if payload > limits.queue_max {
            return Err(Error::RecordTooLargeForQueue {
                size: payload,
                queue_max: limits.queue_max,
                message_max: limits.message_max,
            });
        }
        Ok(())
    }
}

/// The producer-wide size limits a record is checked against at the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeLimits {
    /// librdkafka's `message.max.bytes`.
    pub message_max: usize,
    /// librdkafka's `queue.buffering.max.kbytes`, in bytes.
    pub queue_max: usize,
}

impl SizeLimits {
    /// No limits (for tests and models that do not reach librdkafka).
    #[cfg(any(test, aioproducer_loom))]
    pub const NONE: Self = Self {
        message_max: usize::MAX,
        queue_max: usize::MAX,
    };
}

/// Length of `n` as a zig-zag varint (librdkafka's `rd_uvarint_enc_i64`).
fn varint_len(n: usize) -> usize {
    varint_len_signed(n as i64)
}

fn varint_len_signed(n: i64) -> usize {
    let zigzag = ((n << 1) ^ (n >> 63)) as u64;
    (64 - (zigzag | 1).leading_zeros() as usize).div_ceil(7)
}

/// Kafka's topic-name rules (`org.apache.kafka.common.internals.Topic`).
pub(crate) fn validate_topic(name: &str) -> Result<(), Error> {
    match broken_rule(name) {
        None => Ok(()),
        Some(reason) => Err(invalid_topic(name, reason)),
    }
}

const MAX_TOPIC_LEN: usize = 249;

fn invalid_topic(name: &str, reason: &'static str) -> Error {
    Error::InvalidTopic {
        topic: name.chars().take(MAX_TOPIC_LEN + 16).collect(),
        reason,
    }
}

/// The first of Kafka's topic-name rules `name` breaks, if any.
/// Why an empty topic name is refused.
const EMPTY_NAME: &str = "a topic name cannot be empty";

fn broken_rule(name: &str) -> Option<&'static str> {
    const MAX_LEN: usize = MAX_TOPIC_LEN;
    if name.is_empty() {
        Some(EMPTY_NAME)
    } else if name.len() > MAX_LEN {
        Some("a topic name is at most 249 characters")
    } else if name == "." || name == ".." {
        Some("a topic name cannot be \".\" or \"..\"")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("a topic name may contain only ASCII letters, digits, '.', '_' and '-'")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topic_leads_the_record() {
        // A delivery slot relies on it (`slot.rs`).
        assert_eq!(std::mem::offset_of!(Record, topic), 0);
    }

    #[test]
    fn varint_len_matches_zigzag_encoding() {
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(63), 1); // zig-zag 126
        assert_eq!(varint_len(64), 2); // zig-zag 128
        assert_eq!(varint_len(8191), 2);
        assert_eq!(varint_len(8192), 3);
    }

    #[test]
    fn batch_size_alone_matches_the_v2_encoding() {
        // 61-byte batch header; record: length 1 + attributes 1 + deltas 2 +
        // null key 1 + value length 1 + 3 value bytes + header count 1.
        let r = Record::new("t").with_payload("abc");
        assert_eq!(r.batch_size_alone(), 61 + 1 + 1 + 2 + 1 + 1 + 3 + 1);
        // A header "h"="v": key length 1 + 1 + value length 1 + 1.
        let r = r.with_header("h", "v");
        assert_eq!(r.batch_size_alone(), 61 + 1 + 1 + 2 + 1 + 1 + 3 + 1 + 4);
        assert_eq!(varint_len_signed(-1), 1);
    }

    #[test]
    fn topic_rules_name_the_broken_rule() {
        assert!(validate_topic("orders.v1_EU-2").is_ok());
        for (bad, needle) in [
            ("", "empty"),
            (".", "\"..\""),
            ("a b", "only ASCII"),
            ("nul\0", "only ASCII"),
            ("ünïcode", "only ASCII"),
        ] {
            let err = validate_topic(bad).unwrap_err();
            assert!(err.to_string().contains(needle), "{bad:?}: {err}");
        }
        let long = "x".repeat(250);
        assert!(validate_topic(&long[..249]).is_ok());
        assert!(validate_topic(&long)
            .unwrap_err()
            .to_string()
            .contains("249"));
    }

    fn limits(message_max: usize) -> SizeLimits {
        SizeLimits {
            message_max,
            ..SizeLimits::NONE
        }
    }

    #[test]
    fn a_payload_over_librdkafkas_whole_queue_is_refused_naming_both_limits() {
        let r = Record::new("t").with_key("k").with_payload(vec![0u8; 2000]);
        let limits = SizeLimits {
            message_max: 1_000_000,
            queue_max: 1024,
        };
        let err = r.validate(limits).unwrap_err();
        assert_eq!(
            err,
            Error::RecordTooLargeForQueue {
                size: 2000,
                queue_max: 1024,
                message_max: 1_000_000
            }
        );
        let shown = err.to_string();
        assert!(shown.contains("queue.buffering.max.kbytes=1 "), "{shown}");
        assert!(shown.contains("message.max.bytes=1000000"), "{shown}");
        // The key does not count: librdkafka counts payload bytes.
        let fits = Record::new("t")
            .with_key(vec![0u8; 4000])
            .with_payload(vec![0u8; 1024]);
        assert!(fits.validate(limits).is_ok());
    }

    #[test]
    fn validate_rejects_negative_partition_and_non_positive_timestamp() {
        let r = Record::new("t").with_partition(-1);
        assert_eq!(r.validate(limits(1000)), Err(Error::InvalidPartition(-1)));
        let r = Record::new("t").with_timestamp(0);
        assert_eq!(r.validate(limits(1000)), Err(Error::InvalidTimestamp(0)));
    }

    #[test]
    fn wire_size_counts_key_payload_headers_and_framing() {
        let r = Record::new("t")
            .with_key("k")
            .with_payload(vec![0u8; 100])
            .with_header("h", "vv");
        assert_eq!(r.wire_size(), 36 + 1 + 100 + (1 + 2 + 1 + 1));
        assert_eq!(
            r.validate(limits(r.wire_size() - 1)),
            Err(Error::RecordTooLarge {
                size: r.wire_size(),
                max: r.wire_size() - 1
            })
        );
        assert!(r.validate(limits(r.wire_size())).is_ok());
    }
}
