//! A cached librdkafka topic handle (`rd_kafka_topic_t`), and the worker's
//! choice of partition for unkeyed and keyed records.
//!
//! `rd_kafka_produce_batch` takes a topic handle; creating one per batch
//! would cost a lookup and a refcount each time, so every worker keeps one
//! per topic while it uses the topic.
//!
//! # Sticky partitions, chosen by the worker
//!
//! A record with no key and no partition may go to any partition. Handed
//! over with `RD_KAFKA_PARTITION_UA`, librdkafka's sticky partitioner
//! places each one: per record, it checks that the sticky partition still
//! has a leader, reads the clock twice (the sticky interval, the enqueue
//! time) and looks the partition up, under the topic's lock. Once the
//! metadata thread has read the topic's partitions (`metadata.rs`), the
//! worker makes the same choice once per batch instead: the batch of a
//! topic's unkeyed records (partition [`STICKY`]) goes, at hand-over, to
//! the topic's sticky partition ([`TopicCache::sticky`]), which is kept
//! for `sticky.partitioning.linger.ms` (librdkafka's own interval, read at
//! start) and then replaced by another partition with a leader, picked at
//! random, as librdkafka does; librdkafka then looks the partition up once
//! per call and reads no clock per record.
//!
//! The worker's list may be older than librdkafka's view (partitions of a
//! topic deleted and made again; leaders change): a partition that lost
//! its leader is still a valid target (librdkafka holds its records until
//! a leader is elected, as for keyed records), and one that no longer
//! exists makes librdkafka refuse the whole call before it creates any
//! message; the batch then goes to librdkafka's partitioner, and the
//! topic's partitions are read again (`handover.rs`). Where librdkafka
//! would not be sticky (`sticky.partitioning.linger.ms=0`, or a partitioner
//! that hashes a missing key: `consistent`, `murmur2`, `fnv1a`), unkeyed
//! records go to its partitioner as before.
//!
//! # Keyed records
//!
//! A keyed record's partition is its key's hash modulo the topic's
//! partition count, by the configured `partitioner` (`partitioner.rs`):
//! once the count is known, the worker computes it ([`TopicCache::keyed`])
//! and batches the record for that partition, which it marks as computed
//! (`BatchKey::hashed`: a refusal of a partition that no longer exists
//! falls back to librdkafka's partitioner, as for sticky ones). A key
//! thus lands where librdkafka would put it, and all of a key's records
//! share a batch, in order. Until the count is known, and with
//! `partitioner=random`, librdkafka hashes (or places) them. When
//! partitions are added, librdkafka and the worker each learn the new
//! count on their own refresh (the worker's at most 10 s later): meanwhile
//! a key may go to its old partition, as it would with a librdkafka client
//! that refreshed later; a key's order holds within each partition, and,
//! as with every Kafka client, not across the change.

use std::collections::HashMap;
use std::ffi::CString;
use std::time::{Duration, Instant};

use rdkafka::bindings as rd;

use crate::error::Error;
use crate::native::client::NativeProducer;
use crate::native::metadata::{Limit, Partitions, TopicMetadata, FIRST_READ_WAIT};
use crate::native::owned::Owned;
use crate::native::partitioner::KeyHash;
use crate::record::Topic;
use crate::sync::Arc;

/// An owned reference to a librdkafka topic object.
#[derive(Debug)]
pub(crate) struct NativeTopic(Owned<rd::rd_kafka_topic_t>);

impl NativeTopic {
    /// Creates a handle for `name` (already validated as a topic name).
    pub(crate) fn new(producer: &NativeProducer, name: &str) -> Result<Self, Error> {
        let c_name = CString::new(name).map_err(|_| Error::InvalidTopic {
            topic: name.into(),
            reason: "a topic name cannot contain NUL",
        })?;
        // SAFETY: the client pointer is valid while `producer` lives, the name
        // is NUL-terminated, and a NULL conf means the default topic conf.
        // The reference is ours (`rd_kafka_topic_new`); the client outlives
        // every worker that holds topic handles.
        let owned = unsafe {
            Owned::from_raw(rd::rd_kafka_topic_new(
                producer.ptr(),
                c_name.as_ptr(),
                std::ptr::null_mut(),
            ))
        };
        owned.map(Self).ok_or_else(|| Error::InvalidTopic {
            topic: name.into(),
            reason: "librdkafka refused to create a handle for it",
        })
    }

    pub(crate) fn ptr(&self) -> *mut rd::rd_kafka_topic_t {
        self.0.ptr()
    }
}

/// A worker keeps at least this many topic handles before it evicts idle
/// ones (see [`TopicCache::sweep`]).
const SWEEP_AT_LEAST: usize = 256;

/// A sweep comes at least this often, so handles idle for two of these are
/// evicted even when there are few.
const IDLE_SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Sweeps asked for between two looks at the clock for an idle sweep
/// ([`Clock::Amortized`]).
const SWEEP_CLOCK_EVERY: u32 = 64;

/// How [`TopicCache::sweep`] looks at the clock for an idle sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clock {
    /// Once per [`SWEEP_CLOCK_EVERY`] calls: after each hand-over of a
    /// worker that hands over often.
    Amortized,
    /// At every call: for a worker with nothing to do, or one whose
    /// hand-overs are few (`batch_size`).
    Now,
}

/// librdkafka's `RD_KAFKA_PARTITION_UA`: let the partitioner choose.
pub(crate) const UNASSIGNED: i32 = -1;

/// The partition of a batch of records whose partition the worker chooses
/// at hand-over ([`TopicCache::sticky`]; module docs). Never given to
/// librdkafka.
pub(crate) const STICKY: i32 = -2;

/// A topic handle with the topic's `max.message.bytes` and partitions, when
/// known.
#[derive(Debug)]
struct Entry {
    topic: Topic,
    handle: NativeTopic,
    limit: Limit,
    /// The partitions with a leader, when read.
    partitions: Option<Partitions>,
    /// The sticky partition and when it was chosen (timer clock).
    sticky: Option<(i32, u64)>,
    /// When the handle was made (a pending first read is waited for up to
    /// `FIRST_READ_WAIT` from then).
    created: Instant,
    /// Looked up since the last sweep.
    used: bool,
}

/// A topic as a worker sees it: its handle's index and its batch-size limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TopicInfo {
    pub(crate) index: u32,
    /// The topic's `max.message.bytes`, if known and checked.
    pub(crate) limit: Option<usize>,
    /// The first read of the limit is under way: hold the topic's records
    /// (see `metadata.rs`).
    pub(crate) pending: bool,
}

/// A worker's topic handles, looked up by name, with the limits and
/// partitions the producer's metadata thread has read for them
/// (`metadata.rs`), and their sticky partitions (module docs).
///
/// Bounded: once it holds [`SWEEP_AT_LEAST`] handles (or twice as many as
/// survived the last sweep), and in any case every [`IDLE_SWEEP_EVERY`], a
/// sweep drops those not used since the one before, so a producer that
/// writes to ever new topics keeps only the ones in use: at most about
/// twice those used between two sweeps, and at most [`SWEEP_AT_LEAST`]
/// more. A handle idle for two idle sweeps (5 to 10 s) is gone, whatever
/// the record rate: a busy worker looks at the clock every
/// [`SWEEP_CLOCK_EVERY`] hand-overs ([`Clock::Amortized`]), an idle one
/// each time it goes idle ([`Clock::Now`]) and at
/// [`TopicCache::next_idle_sweep`], which it sleeps no longer than. With
/// `batch_size`, records are held between hand-overs and no sweep may run
/// while any is: the worker then looks at the clock at each of its
/// hand-overs, so a handle goes within about two of the longer of 5 s and
/// `buffer_timeout`.
#[derive(Debug)]
pub(crate) struct TopicCache {
    entries: Vec<Entry>,
    index: HashMap<Topic, u32>,
    /// The last topic looked up: consecutive records usually share it.
    last: Option<(Topic, TopicInfo)>,
    /// Where limits and partitions come from; `None` when neither is read.
    metadata: Option<Arc<TopicMetadata>>,
    /// The metadata's version this cache last took.
    seen: u64,
    /// How long a sticky partition is kept, in nanoseconds; `None` when
    /// unkeyed records go to librdkafka's partitioner.
    sticky_for: Option<u64>,
    /// State of the random choice of the next sticky partition.
    random: u64,
    /// The hash of the configured `partitioner`, when the worker computes
    /// keyed records' partitions (`partitioner.rs`).
    key_hash: Option<KeyHash>,
    /// Entries at which the next sweep evicts.
    sweep_at: usize,
    /// Sweeps asked for since the clock was last read.
    asked: u32,
    /// When the next idle sweep is due.
    idle_sweep_at: Instant,
}

impl TopicCache {
    /// A cache taking limits and partitions from `metadata`; `sticky_for`
    /// is how long a sticky partition is kept (`None`: unkeyed records go
    /// to librdkafka's partitioner); `key_hash` is the `partitioner`'s hash
    /// (`None`: keyed records go to librdkafka's partitioner).
    pub(crate) fn new(
        metadata: Option<Arc<TopicMetadata>>,
        sticky_for: Option<Duration>,
        key_hash: Option<KeyHash>,
    ) -> Self {
        Self {
            entries: Vec::new(),
            index: HashMap::new(),
            last: None,
            sticky_for: sticky_for
                .filter(|_| metadata.is_some())
                .map(|d| d.as_nanos() as u64),
            key_hash: key_hash.filter(|_| metadata.is_some()),
            metadata,
            seen: 0,
            // Any odd seed; xorshift never reaches 0 from it.
            random: 0x9e37_79b9_7f4a_7c15,
            sweep_at: SWEEP_AT_LEAST,
            asked: 0,
            idle_sweep_at: Instant::now() + IDLE_SWEEP_EVERY,
        }
    }

    /// The handle index and limit of `topic`, its handle created (and its
    /// limit asked for) on first use. Never waits for the limit.
    pub(crate) fn get(
        &mut self,
        producer: &NativeProducer,
        topic: &Topic,
    ) -> Result<TopicInfo, Error> {
        if let Some(info) = self.get_ready(topic) {
            return Ok(info);
        }
        let handle = NativeTopic::new(producer, topic)?;
        let (limit, partitions) = match &self.metadata {
            Some(metadata) => {
                metadata.request(topic);
                let known = metadata.known();
                (known.limit(topic), known.partitions(topic))
            }
            None => (Limit::Unknown, None),
        };
        self.entries.push(Entry {
            topic: topic.clone(),
            handle,
            limit,
            partitions,
            sticky: None,
            created: Instant::now(),
            used: true,
        });
        let index = (self.entries.len() - 1) as u32;
        self.index.insert(topic.clone(), index);
        Ok(self.remember(topic, index))
    }

    /// The handle index and limit of `topic` if its handle exists: what a
    /// round that must not create handles may use.
    pub(crate) fn get_ready(&mut self, topic: &Topic) -> Option<TopicInfo> {
        self.take_new_metadata();
        if let Some((last, info)) = &self.last {
            if last == topic {
                return Some(*info);
            }
        }
        let index = *self.index.get(topic)?;
        Some(self.remember(topic, index))
    }

    /// Takes what the metadata thread published since the last look.
    fn take_new_metadata(&mut self) {
        let Some(metadata) = &self.metadata else {
            return;
        };
        let version = metadata.version();
        if version == self.seen {
            return;
        }
        self.seen = version;
        let known = metadata.known();
        for entry in &mut self.entries {
            entry.limit = match known.limit(&entry.topic) {
                // A pending read we stopped waiting for stays unchecked.
                Limit::Pending if entry.limit == Limit::Unknown => Limit::Unknown,
                limit => limit,
            };
            let partitions = known.partitions(&entry.topic);
            if partitions != entry.partitions {
                entry.partitions = partitions;
                entry.sticky = None;
            }
        }
        self.last = None;
    }

    /// The batch partition of records with no key and no partition:
    /// [`STICKY`] when the worker chooses it, else `UNASSIGNED`.
    pub(crate) fn unkeyed(&self) -> i32 {
        if self.sticky_for.is_some() {
            STICKY
        } else {
            UNASSIGNED
        }
    }

    /// The sticky partition of the topic at `index` at `now` (timer clock),
    /// chosen anew when it has been kept long enough (module docs); `None`
    /// while its partitions are not known (librdkafka's partitioner then
    /// chooses).
    pub(crate) fn sticky(&mut self, index: u32, now: u64) -> Option<i32> {
        let keep = self.sticky_for?;
        let entry = &mut self.entries[index as usize];
        let partitions = entry.partitions.as_deref().map(|p| &p.available[..]);
        let partitions = partitions.filter(|p| !p.is_empty())?;
        if let Some((partition, since)) = entry.sticky {
            if now.saturating_sub(since) < keep {
                return Some(partition);
            }
        }
        // xorshift64: cheap, and uniform enough to spread partitions.
        let mut x = self.random;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random = x;
        let pick = (x % partitions.len() as u64) as usize;
        let mut partition = partitions[pick];
        if partitions.len() > 1 && entry.sticky.map(|(p, _)| p) == Some(partition) {
            // Another partition than the last, as the interval asks.
            partition = partitions[(pick + 1) % partitions.len()];
        }
        entry.sticky = Some((partition, now));
        Some(partition)
    }

    /// The partition librdkafka's `partitioner` gives `key` in the topic at
    /// `index`, once its partition count is known (module docs); `None`
    /// leaves the record to librdkafka's partitioner.
    pub(crate) fn keyed(&self, index: u32, key: &[u8]) -> Option<i32> {
        let count = self.entries[index as usize].partitions.as_ref()?.count;
        self.key_hash?.partition(key, count)
    }

    /// The topic at `index` has fewer partitions than its list says
    /// (librdkafka refused a chosen one): its unkeyed records go to
    /// librdkafka's partitioner until its partitions are read again, which
    /// is asked for now.
    pub(crate) fn stale_partitions(&mut self, index: u32) {
        let entry = &mut self.entries[index as usize];
        entry.partitions = None;
        entry.sticky = None;
        if let Some(metadata) = &self.metadata {
            metadata.refresh(&entry.topic);
        }
    }

    /// `topic`'s info from its entry, kept as the last topic looked up
    /// unless its first read is pending.
    fn remember(&mut self, topic: &Topic, index: u32) -> TopicInfo {
        let entry = &mut self.entries[index as usize];
        entry.used = true;
        if entry.limit == Limit::Pending && entry.created.elapsed() >= FIRST_READ_WAIT {
            entry.limit = Limit::Unknown; // waited long enough: unchecked
        }
        let info = TopicInfo {
            index,
            limit: match entry.limit {
                Limit::Known(limit) => Some(limit),
                Limit::Pending | Limit::Unknown => None,
            },
            pending: entry.limit == Limit::Pending,
        };
        self.last = (!info.pending).then(|| (topic.clone(), info));
        info
    }

    /// The info of the topic at `index`, now (for records held while its
    /// first read was pending).
    pub(crate) fn info(&mut self, index: u32) -> TopicInfo {
        self.take_new_metadata();
        let topic = self.entries[index as usize].topic.clone();
        self.remember(&topic, index)
    }

    /// The handle at `index` (from [`TopicCache::get`]).
    pub(crate) fn handle(&self, index: u32) -> &NativeTopic {
        &self.entries[index as usize].handle
    }

    /// When there are many handles, or an idle sweep is due (the clock
    /// read as `clock` says), drops those not used since the last sweep.
    /// Handle indices change: call it only while no batch refers to one.
    /// Returns whether it swept.
    pub(crate) fn sweep(&mut self, clock: Clock) -> bool {
        if self.entries.len() < self.sweep_at && !self.idle_sweep_due(clock) {
            return false;
        }
        self.asked = 0;
        self.idle_sweep_at = Instant::now() + IDLE_SWEEP_EVERY;
        let entries = std::mem::take(&mut self.entries);
        for mut entry in entries {
            if entry.used {
                entry.used = false;
                self.entries.push(entry);
            } else if let Some(metadata) = &self.metadata {
                metadata.release(&entry.topic);
            }
        }
        self.index = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, entry)| (entry.topic.clone(), i as u32))
            .collect();
        self.last = None;
        self.sweep_at = (self.entries.len() * 2).max(SWEEP_AT_LEAST);
        true
    }

    /// When the next idle sweep is due, if a sweep could drop a handle (no
    /// handle, nothing to drop).
    pub(crate) fn next_idle_sweep(&self) -> Option<Instant> {
        (!self.entries.is_empty()).then_some(self.idle_sweep_at)
    }

    /// Whether an idle sweep is due, the clock read as `clock` says.
    fn idle_sweep_due(&mut self, clock: Clock) -> bool {
        if clock == Clock::Amortized {
            self.asked += 1;
            if self.asked < SWEEP_CLOCK_EVERY {
                return false;
            }
            self.asked = 0;
        }
        Instant::now() >= self.idle_sweep_at
    }

    /// Topic handles held.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}
