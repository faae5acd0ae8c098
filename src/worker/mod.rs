//! The worker threads: each drains its ring into per-partition batches and
//! hands them to librdkafka.
//!
//! A worker loops:
//!
//! 1. serve a purge request if there is one (fail everything it holds);
//! 2. drain its ring (at most one ring's worth per round) into [`Batches`],
//!    and let producers waiting for room know;
//! 3. hand the batches over when due: at once by default; with `batch_size`,
//!    when that many records are held, when the timer or a flush forces it,
//!    or when stopping;
//! 4. with nothing drained and nothing due, sweep idle topic handles if
//!    that is due (`native/topic.rs`), yield twice and then, if still
//!    idle, park (see [`park`](crate::sync::park)), until the next idle
//!    sweep at most.
//!
//! A busy worker never sleeps; an idle one costs nothing until a producer's
//! push wakes it, but for one wake-up every 5 s while it holds topic
//! handles (two after its last record, then none).
//!
//! # Producers hand over while the worker sleeps
//!
//! Everything a round needs (batches, topic handles, the hand-over buffer,
//! the client) is the worker's [`Core`], held in a
//! [`Baton`](crate::sync::baton::Baton) in its
//! remote. The worker holds the baton for each round. By default (no
//! `batch_size`), a producer that pushed a ticket and finds the worker
//! asleep takes the baton itself, if it is free, and runs a round on the
//! worker's behalf ([`producer_round`]): no wake-up, no thread hop,
//! the record reaches librdkafka on the producer's thread, as with a plain
//! librdkafka loop. Such a round never waits: it uses only topic handles
//! the worker already made, hands over without `RD_KAFKA_MSG_F_BLOCK`, and
//! leaves what it could not finish (a new topic, a full librdkafka queue,
//! records already waiting on the worker) to the worker, which it then
//! wakes. Pushes that find the worker asleep at a high rate wake it too
//! (`BUSY_GAP_NANOS`): then batches form, and one batch call per batch
//! costs less than one call per record. One baton, one ring: records still reach librdkafka in ring
//! order, whoever hands them over. (See `Remote::push_or_run_round` for
//! why no ticket is left behind, and `loom-tests/tests/baton.rs`.)
//!
//! The names are tokio's (its multi-threaded scheduler): a worker's `Core`
//! is what one thread at a time runs rounds with, its `Remote` what every
//! other thread reaches it through.

pub(crate) mod batch;
pub(crate) mod remote;
pub(crate) mod ring;
pub(crate) mod route;
pub(crate) mod timer;

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::delivery::ticket::Ticket;
use crate::error::Error;
use crate::native::client::NativeProducer;
use crate::native::handover::{BatchCall, Target};
use crate::native::metadata::TopicMetadata;
use crate::native::partitioner::KeyHash;
use crate::native::reports::Reports;
use crate::native::topic::{Clock, TopicCache, TopicInfo, STICKY, UNASSIGNED};
use crate::record::Record;
use crate::sync::Arc;
use crate::worker::batch::{BatchKey, Batches};
use crate::worker::remote::HandOverCounts;
use crate::worker::timer::Timer;

/// A worker's remote (`remote.rs`): what other threads use to reach it,
/// around its [`Core`].
pub(crate) type Remote = remote::Remote<Core>;

/// What a worker needs of the producer it serves, beyond what librdkafka's
/// side needs ([`Reports`]); `producer/shared.rs` implements it.
pub(crate) trait Host: Reports {
    /// Worker `id`'s remote.
    fn remote(&self, id: usize) -> &Remote;

    /// The timer: its clock, and the buffer timeouts it enforces.
    fn timer(&self) -> &Timer;

    /// Whether a purge under way takes the record of `ticket` instead of
    /// its hand-over.
    ///
    /// # Safety
    /// The caller holds the ticket, popped and not yet handed over.
    unsafe fn purged_at_hand_over(&self, ticket: Ticket) -> bool;

    /// Tells those waiting that a worker served a purge request.
    fn purge_served(&self);
}

/// Runs `f` on the record behind `ticket`.
///
/// # Safety
/// As for [`Reports::record`].
unsafe fn with_record<C: Host + ?Sized, R>(
    host: &C,
    ticket: Ticket,
    f: impl FnOnce(&Record) -> R,
) -> R {
    // SAFETY: forwarded contract.
    f(unsafe { host.record(ticket) })
}

/// Times an idle worker yields before it parks.
const GRACE_YIELDS: usize = 2;

/// How long a worker whose hand-over found librdkafka's queue full sleeps
/// before it tries again (unless a purge, a stop or a flush wakes it). The
/// queue frees up as reports come in, but librdkafka uncounts a message
/// only after its report's callback has returned, so no report can tell
/// the worker that room is there; a short sleep can. It only happens while
/// librdkafka holds `queue.buffering.max.kbytes` of payloads.
const FULL_RETRY: Duration = Duration::from_millis(1);

/// Pushes that find the worker asleep less than this far apart (faster
/// than 500k records/s) wake it instead of handing over themselves: at
/// that rate the worker stays awake between records and hands them over in
/// batches, which costs less per record than one call each.
const BUSY_GAP_NANOS: u64 = 2_000;

/// How often a worker holding records for a topic's first limit read looks
/// whether the read is done (it is woken sooner by new records).
const WAITING_RECHECK: Duration = Duration::from_millis(2);

/// Batch keys (topic/partition pairs) a worker keeps at most between
/// hand-overs that leave nothing held.
const MAX_BATCH_KEYS: usize = 4096;

/// The settings every worker runs with.
#[derive(Debug, Clone)]
pub(crate) struct WorkerConfig {
    pub(crate) batch_size: Option<usize>,
    pub(crate) buffer_timeout: Duration,
    /// Where topic limits (when records larger than their topic's
    /// `max.message.bytes` are refused) and partitions come from.
    pub(crate) metadata: Option<Arc<TopicMetadata>>,
    /// How long a sticky partition for unkeyed records is kept; `None` when
    /// librdkafka's partitioner places them (`native/topic.rs`).
    pub(crate) sticky_for: Option<Duration>,
    /// The configured `partitioner`'s key hash; `None` when librdkafka's
    /// partitioner places keyed records (`native/partitioner.rs`).
    pub(crate) key_hash: Option<KeyHash>,
}

/// What a round needs, whoever runs it: the worker, or a producer on its
/// behalf while it sleeps (module docs). Lives in the worker's remote,
/// behind its baton, from the worker's start to its exit.
#[derive(Debug)]
pub struct Core {
    native: Arc<NativeProducer>,
    batches: Batches,
    topics: TopicCache,
    batch_call: BatchCall,
    /// A ticket a producer's round popped but could not place (its topic
    /// had no handle yet, or records waiting for its limit): the worker
    /// places it before anything else in the ring, which came after it.
    unplaced: Option<Ticket>,
    /// Records (with their topic's handle index) held while their topic's
    /// first limit read is under way, in ring order (`metadata.rs`); every
    /// other topic's records go on meanwhile.
    waiting: VecDeque<(u32, Ticket)>,
    /// The topics of `waiting`: a later record of one of them waits too,
    /// behind the earlier ones.
    waiting_topics: Vec<u32>,
    /// A request to hand over now (flush, timer) that came while records
    /// waited: it holds for them too, once they go into their batches.
    forced: bool,
}

/// Where a record goes.
enum Placing {
    Batch(BatchKey),
    /// With the records waiting for its topic's first limit read (the
    /// topic's handle index).
    Wait(u32),
    /// Left for the worker (a producer's round).
    NotReady,
}

/// How a round may treat a record whose topic needs work that can wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    /// Create the topic handle, read the size limit (the worker).
    Full,
    /// Only what is ready; stop at anything else (a producer).
    Ready,
}

impl Core {
    /// Places one popped ticket in its batch (or, for a topic whose first
    /// limit read is under way, with the records waiting for it), or fails
    /// its record; returns `false` (placing nothing) when the topic is not
    /// ready for `lookup`.
    fn place(&mut self, shared: &impl Host, ticket: Ticket, lookup: Lookup) -> bool {
        let Core {
            native,
            batches,
            topics,
            waiting,
            waiting_topics,
            ..
        } = self;
        // SAFETY: the ticket was popped under the baton and not handed over.
        if unsafe { shared.purged_at_hand_over(ticket) } {
            // SAFETY: the ticket was published (popped from the ring).
            unsafe { shared.refuse(ticket, Error::Purged) };
            return true;
        }
        // SAFETY: the ticket was popped under the baton and not handed
        // over yet; nobody else touches the record.
        let placed = unsafe {
            with_record(shared, ticket, |record| {
                let topic = match lookup {
                    Lookup::Full => topics.get(native, record.topic())?,
                    Lookup::Ready => match topics.get_ready(record.topic()) {
                        Some(topic) => topic,
                        None => return Ok(Placing::NotReady),
                    },
                };
                if topic.pending || waiting_topics.contains(&topic.index) {
                    return Ok(match lookup {
                        Lookup::Full => Placing::Wait(topic.index),
                        Lookup::Ready => Placing::NotReady,
                    });
                }
                check_limit(record, topic)?;
                Ok(Placing::Batch(batch_key(record, topic.index, topics)))
            })
        };
        match placed {
            Ok(Placing::Batch(key)) => batches.push(key, ticket),
            Ok(Placing::Wait(topic)) => {
                if !waiting_topics.contains(&topic) {
                    waiting_topics.push(topic);
                }
                waiting.push_back((topic, ticket));
            }
            Ok(Placing::NotReady) => return false,
            // SAFETY: the ticket was published (popped from the ring).
            Err(error) => unsafe { shared.refuse(ticket, error) },
        }
        true
    }

    /// Moves the records waiting for their topic's first limit read whose
    /// topic no longer waits into their batches, in order, while there is
    /// room; returns how many.
    fn release_waiting(&mut self, shared: &impl Host) -> usize {
        if self.waiting.is_empty() {
            return 0;
        }
        let mut released = 0;
        let mut kept = std::mem::take(&mut self.waiting);
        let mut still = Vec::new();
        for _ in 0..kept.len() {
            let (topic, ticket) = kept.pop_front().expect("counted");
            let info = self.topics.info(topic);
            if info.pending || still.contains(&topic) || self.batches.room() == 0 {
                if !still.contains(&topic) {
                    still.push(topic);
                }
                kept.push_back((topic, ticket));
                continue;
            }
            // SAFETY: the ticket was popped under the baton and not handed
            // over yet; nobody else touches the record.
            let checked = unsafe {
                with_record(shared, ticket, |record| {
                    check_limit(record, info).map(|()| batch_key(record, topic, &self.topics))
                })
            };
            match checked {
                Ok(key) => self.batches.push(key, ticket),
                // SAFETY: the ticket was published (popped from the ring).
                Err(error) => unsafe { shared.refuse(ticket, error) },
            }
            released += 1;
        }
        self.waiting = kept;
        self.waiting_topics = still;
        released
    }

    /// Hands every batch to librdkafka; stops at a full queue and keeps the
    /// rest held, in order; then bounds the tables, looking at the clock as
    /// `clock` says ([`Core::bound_tables`]). `now`: the timer clock, if the caller read
    /// it (else it is read if a sticky partition needs it); `by_producer`:
    /// a producer's round, for the statistics.
    fn hand_over(
        &mut self,
        shared: &impl Host,
        remote: &Remote,
        now: Option<u64>,
        by_producer: bool,
        clock: Clock,
    ) {
        let Core {
            native,
            batches,
            topics,
            batch_call,
            ..
        } = self;
        let mut now = now;
        let mut counts = HandOverCounts {
            records: 0,
            calls: 0,
            by_producers: 0,
            partitioned: 0,
        };
        batches.take_each(|key, tickets| {
            let target = if key.partition == STICKY {
                let now = *now.get_or_insert_with(|| shared.timer().now());
                match topics.sticky(key.topic, now) {
                    Some(partition) => Target {
                        partition,
                        chosen: true,
                    },
                    None => Target::given(UNASSIGNED),
                }
            } else {
                Target {
                    partition: key.partition,
                    chosen: key.hashed,
                }
            };
            let topic = topics.handle(key.topic);
            let handed = batch_call.send(shared, native.ptr(), topic, target, tickets);
            if handed.fell_back {
                topics.stale_partitions(key.topic);
            } else if target.chosen {
                counts.partitioned += handed.done as u64;
            }
            counts.records += handed.done as u64;
            counts.calls += handed.calls;
            handed.done
        });
        if by_producer {
            counts.by_producers = counts.records;
        }
        if counts.records > 0 {
            // A cluster that shuts the producer out fails them at once.
            native.purge_if_shut_out();
        }
        remote.count_hand_over(counts);
        self.bound_tables(remote, clock);
    }

    /// Sweeps the topic handles ([`TopicCache::sweep`], looking at the
    /// clock as `clock` says) and forgets the batch keys after a sweep or
    /// when there are many, if nothing is held: nothing refers to a topic
    /// index or a batch key then.
    fn bound_tables(&mut self, remote: &Remote, clock: Clock) {
        let nothing_held = self.batches.held() == 0 && self.waiting.is_empty();
        if nothing_held && (self.topics.sweep(clock) || self.batches.keys() > MAX_BATCH_KEYS) {
            self.batches.forget_keys();
        }
        remote.held_topics(self.topics.len());
    }
}

/// The batch of `record`, whose topic has handle index `topic`: its
/// explicit partition; for a keyed record, the partition librdkafka's
/// `partitioner` gives its key, once the topic's partition count is known
/// ([`TopicCache::keyed`], else `UNASSIGNED`: librdkafka hashes it);
/// else [`TopicCache::unkeyed`].
fn batch_key(record: &Record, topic: u32, topics: &TopicCache) -> BatchKey {
    let (partition, hashed) = match (record.partition(), record.key()) {
        (Some(partition), _) => (partition, false),
        (None, Some(key)) => match topics.keyed(topic, key) {
            Some(partition) => (partition, true),
            None => (UNASSIGNED, false),
        },
        (None, None) => (topics.unkeyed(), false),
    };
    BatchKey {
        topic,
        partition,
        hashed,
    }
}

/// Refuses a record larger than its topic's `max.message.bytes`, if known.
fn check_limit(record: &Record, topic: TopicInfo) -> Result<(), Error> {
    match topic.limit {
        Some(max) if record.batch_size_alone() > max => Err(Error::RecordTooLargeForTopic {
            topic: record.topic().to_string(),
            size: record.batch_size_alone(),
            max,
        }),
        _ => Ok(()),
    }
}

/// A producer's round on the worker's behalf, run under the baton when it
/// found the worker asleep (module docs): drains the ring and hands it over
/// without waiting. Returns `true` when it left work for the worker.
pub(crate) fn producer_round(core: &mut Option<Core>, shared: &impl Host, remote: &Remote) -> bool {
    let Some(core) = core else {
        // The worker has exited; only close's last steps get here.
        return true;
    };
    if core.unplaced.is_some() || core.batches.held() > 0 {
        // Earlier records wait on the worker: ours go after them.
        return true;
    }
    let now = shared.timer().now();
    // Relaxed: a hint about the rate of pushes; any value is safe.
    let previous = remote.asleep_push_at.swap(now, Relaxed);
    if now.saturating_sub(previous) < BUSY_GAP_NANOS {
        return true;
    }
    let max = core.batches.room();
    let mut unplaced = None;
    remote.drain(max, |ticket| {
        let placed = core.place(shared, ticket, Lookup::Ready);
        if !placed {
            unplaced = Some(ticket);
        }
        placed
    });
    core.hand_over(shared, remote, Some(now), true, Clock::Amortized);
    core.unplaced = unplaced;
    unplaced.is_some() || core.batches.held() > 0 || !remote.ring.is_empty()
}

/// Takes a worker's core out of its remote and drops it: its topic handles
/// and its reference to the client go before the client does. (The core
/// refers to the client, and the client, through its callbacks, to the
/// remote: left in place, it would keep the client alive.)
pub(crate) fn take_core(remote: &Remote) {
    drop(remote.baton().take().with(Option::take));
}

/// One worker thread.
pub(crate) struct Worker<C> {
    id: usize,
    shared: Arc<C>,
    config: WorkerConfig,
}

/// What the worker does after a round.
enum AfterRound {
    Again,
    /// Nothing to do; sleep, until the next idle sweep of the topic
    /// handles at most, if there is one ([`TopicCache::next_idle_sweep`]).
    Idle(Option<Instant>),
    /// librdkafka's queue is full: wait a moment for room, then again.
    Full,
    /// Records wait for a topic's first limit read: look again soon.
    Waiting,
    Exit,
}

impl<C: Host + 'static> Worker<C> {
    /// Starts worker `id` on a thread named `aioproducer-worker-{id}`.
    pub(crate) fn spawn(
        id: usize,
        shared: Arc<C>,
        native: Arc<NativeProducer>,
        config: WorkerConfig,
    ) -> std::io::Result<JoinHandle<()>> {
        // Records held at most: a round drains at most one ring's worth, and
        // a round ends with a hand-over once `batch_size` are held.
        let ring_capacity = shared.remote(id).ring.capacity();
        let max_held = ring_capacity + config.batch_size.map_or(0, |size| size - 1);
        let core = Core {
            native,
            batches: Batches::with_capacity(max_held),
            topics: TopicCache::new(config.metadata.clone(), config.sticky_for, config.key_hash),
            batch_call: BatchCall::default(),
            unplaced: None,
            waiting: VecDeque::new(),
            waiting_topics: Vec::new(),
            forced: false,
        };
        shared
            .remote(id)
            .baton()
            .take()
            .with(|slot| *slot = Some(core));
        let worker = Worker {
            id,
            shared: Arc::clone(&shared),
            config,
        };
        let spawned = std::thread::Builder::new()
            .name(format!("aioproducer-worker-{id}"))
            .spawn(move || worker.run());
        if spawned.is_err() {
            take_core(shared.remote(id));
        }
        spawned
    }

    fn run(self) {
        let shared = Arc::clone(&self.shared);
        let remote = shared.remote(self.id);
        remote.register_worker();
        loop {
            let next = remote.baton().take().with(|core| {
                let core = core.as_mut().expect("the worker's core");
                self.round(remote, core)
            });
            match next {
                AfterRound::Again => {}
                AfterRound::Exit => break,
                AfterRound::Full => remote.park_until_retry(FULL_RETRY),
                AfterRound::Waiting => remote.park_at_most(WAITING_RECHECK),
                AfterRound::Idle(sweep_at) => {
                    // A brief grace period before sleeping: under load the
                    // next ticket is usually a moment away, and a worker that
                    // parks after every drain costs each producer a futex
                    // wake-up and hands over tiny batches. Yielding (not
                    // spinning) gives the CPU to the producers meanwhile.
                    for _ in 0..GRACE_YIELDS {
                        if !remote.ring.is_empty() {
                            break;
                        }
                        std::thread::yield_now();
                    }
                    if remote.ring.is_empty() {
                        match sweep_at {
                            Some(at) => {
                                remote.park_at_most(at.saturating_duration_since(Instant::now()))
                            }
                            None => remote.park(),
                        }
                    }
                }
            }
        }
        take_core(remote);
    }

    /// One round under the baton (module docs, steps 1–3).
    fn round(&self, remote: &Remote, core: &mut Core) -> AfterRound {
        let shared = &*self.shared;
        if let Some(request) = remote.purge_pending() {
            // SAFETY: every ticket failed here was published (popped from
            // the ring, or held since).
            let fail = |ticket| unsafe { shared.refuse(ticket, Error::Purged) };
            if let Some(ticket) = core.unplaced.take() {
                fail(ticket);
            }
            // At most a ring's worth: every ticket pushed before the request
            // is in it, and producers refilling the ring meanwhile cannot
            // keep the purge going (their records are not its business).
            remote.drain(remote.ring.capacity(), |ticket| {
                fail(ticket);
                true
            });
            core.batches.take_all(fail);
            for (_, ticket) in core.waiting.drain(..) {
                fail(ticket);
            }
            core.waiting_topics.clear();
            remote.clear_deadline();
            remote.purge_served(request);
            shared.purge_served();
            return AfterRound::Again;
        }
        let forced = remote.take_force() || core.forced;
        let stopping = remote.stopping();
        let mut drained = core.release_waiting(shared);
        if let Some(ticket) = core.unplaced.take() {
            core.place(shared, ticket, Lookup::Full);
            drained += 1;
        }
        let max = core.batches.room().min(remote.ring.capacity());
        drained += remote.drain_ahead(
            max,
            |ticket| shared.prefetch_record(ticket),
            |ticket| {
                let placed = core.place(shared, ticket, Lookup::Full);
                debug_assert!(placed, "a full lookup always places");
            },
        );
        let due = match self.config.batch_size {
            None => true,
            Some(size) => forced || stopping || core.batches.held() >= size,
        };
        core.forced = forced && !core.waiting.is_empty();
        if core.batches.held() > 0 {
            if due {
                // With `batch_size`, records are held between hand-overs, so
                // the idle round rarely may sweep: each hand-over (one per
                // batch at most) looks at the clock.
                let clock = match self.config.batch_size {
                    None => Clock::Amortized,
                    Some(_) => Clock::Now,
                };
                core.hand_over(shared, remote, None, false, clock);
                if core.batches.held() > 0 {
                    return AfterRound::Full;
                }
            } else {
                let timer = shared.timer();
                let timeout = self.config.buffer_timeout.as_nanos() as u64;
                remote.arm_deadline(timer.now().saturating_add(timeout), timer);
            }
        }
        let held = core.batches.held();
        if drained > 0 || (held > 0 && due) {
            return AfterRound::Again;
        }
        if !core.waiting.is_empty() {
            return AfterRound::Waiting;
        }
        if stopping && held == 0 && remote.ring.is_empty() {
            return AfterRound::Exit;
        }
        // Idle: no hand-over may come for a long time, so the idle sweep
        // is done here, and the worker wakes for the next one; but records
        // held for `batch_size` keep every handle (the timer wakes the
        // worker for their hand-over, which sweeps if one is due).
        core.bound_tables(remote, Clock::Now);
        AfterRound::Idle((held == 0).then(|| core.topics.next_idle_sweep()).flatten())
    }
}
