//! Giving one batch of records to librdkafka in as few calls as possible.
//!
//! Runs of plain records (no headers, no explicit timestamp) go in one
//! `rd_kafka_produce_batch` call on the worker's cached topic handle; a
//! record with headers or a timestamp goes alone through `rd_kafka_produceva`
//! (the batch call cannot carry either). Runs are cut at those records (and
//! every `MAX_RUN` records), so the batch keeps its order.
//!
//! Payloads are referenced, not copied (no `RD_KAFKA_MSG_F_COPY`): the slot
//! keeps the bytes alive until the delivery report.
//!
//! A batch goes to its one partition: `rd_kafka_produce_batch` is called
//! with the batch's partition (explicit, or `RD_KAFKA_PARTITION_UA` for the
//! partitioner's choice), never with `RD_KAFKA_MSG_F_PARTITION`. With that
//! flag, librdkafka creates each message before it looks up its partition,
//! and a partition that does not exist then leaves the message created and
//! counted against `queue.buffering.max.messages`/`kbytes` for ever
//! (`rd_kafka_produce_batch`, the `rd_kafka_toppar_get_avail` branch): after
//! enough such records every later one waits for room that never comes.
//! Called for one partition, librdkafka looks the partition up once, before
//! it creates any message, and refuses the whole call at no cost when it
//! does not exist; the partitioner's path and `rd_kafka_produceva` destroy
//! what they refuse.
//!
//! Nothing here waits: there is no `RD_KAFKA_MSG_F_BLOCK`. When librdkafka's
//! queue is full (`queue.buffering.max.kbytes`; its message count is kept
//! above our own bound, see `config.rs`) it refuses the record with
//! `QUEUE_FULL`, and the batch call every record after it too, so the
//! records from that one on are kept, in order, for the next hand-over.
//! The worker then waits for room itself, where a purge, a stop or a flush
//! can still reach it (`worker/mod.rs`); blocked inside librdkafka, it could be
//! reached by nothing but librdkafka's own wake-up, which comes only when
//! its counts cross a threshold.
//!
//! A batch may go to a partition the worker chose from its own metadata
//! (`topic.rs`), which can be older than librdkafka's: when librdkafka
//! refuses such a call because the partition does not exist (a topic
//! deleted and made again with fewer partitions), the records go again,
//! in the same order, to librdkafka's partitioner, and the hand-over says
//! so ([`Handed::fell_back`]); nothing fails for it.
//!
//! A record librdkafka refuses for any other reason (unknown partition,
//! fatal error, transactional state) is failed on the handing-over thread
//! with librdkafka's error; its neighbours are unaffected.

use std::ffi::{c_char, c_int, c_void};
use std::ptr;

use rdkafka::bindings as rd;
use rdkafka::types::RDKafkaErrorCode;

use crate::delivery::ticket::Ticket;
use crate::error::Error;
use crate::native::client::fatal_or;
use crate::native::reports::Reports;
use crate::native::topic::{NativeTopic, UNASSIGNED};
use crate::record::Record;

const QUEUE_FULL: rd::rd_kafka_resp_err_t = rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__QUEUE_FULL;
const UNKNOWN_PARTITION: rd::rd_kafka_resp_err_t =
    rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;

/// Where a batch goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    /// The partition, or [`UNASSIGNED`].
    pub(crate) partition: i32,
    /// Chosen by the worker from metadata that may be stale: a refusal
    /// because it does not exist sends the records to the partitioner.
    pub(crate) chosen: bool,
}

impl Target {
    /// The partition the caller gave (or `UNASSIGNED`).
    pub(crate) fn given(partition: i32) -> Self {
        Self {
            partition,
            chosen: false,
        }
    }

    /// Whether `err`, refusing a call to this target, asks for the
    /// partitioner instead; if so the target becomes `UNASSIGNED`.
    fn fall_back(&mut self, err: rd::rd_kafka_resp_err_t) -> bool {
        let falls = self.chosen && err == UNKNOWN_PARTITION;
        if falls {
            *self = Self::given(UNASSIGNED);
        }
        falls
    }
}

/// Records per batch call at most: large enough that the call's fixed cost
/// vanishes, small enough to preallocate the buffer once.
const MAX_RUN: usize = 1024;

/// A worker's reusable hand-over buffer.
#[derive(Debug)]
pub(crate) struct BatchCall {
    messages: Vec<rd::rd_kafka_message_t>,
}

impl Default for BatchCall {
    fn default() -> Self {
        Self {
            messages: Vec::with_capacity(MAX_RUN),
        }
    }
}

// SAFETY: the buffer only holds pointers between the calls of one hand-over,
// on one thread; it is empty whenever the worker could be moved.
unsafe impl Send for BatchCall {}

/// What one batch's hand-over came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Handed {
    /// librdkafka calls made.
    pub(crate) calls: u64,
    /// Records from the front of the batch that librdkafka took or that
    /// failed; the rest (librdkafka's queue was full) are the caller's to
    /// keep.
    pub(crate) done: usize,
    /// The chosen partition did not exist: the records went to the
    /// partitioner instead (module docs).
    pub(crate) fell_back: bool,
}

impl BatchCall {
    /// Hands `tickets` (one topic and target, in order) to librdkafka:
    /// runs of plain records in one batch call each, any other record alone
    /// after the run before it.
    pub(crate) fn send<R: Reports>(
        &mut self,
        shared: &R,
        rk: *mut rd::rd_kafka_t,
        topic: &NativeTopic,
        mut target: Target,
        tickets: &[Ticket],
    ) -> Handed {
        let (mut calls, mut i) = (0, 0);
        let chosen = target.chosen;
        let handed = |calls, done, target: Target| Handed {
            calls,
            done,
            fell_back: chosen && !target.chosen,
        };
        loop {
            let run_start = i;
            let mut alone = false;
            while i < tickets.len() && self.messages.len() < MAX_RUN {
                if !self.queue_if_plain(shared, target.partition, tickets[i]) {
                    alone = true;
                    break;
                }
                i += 1;
            }
            if !self.messages.is_empty() {
                calls += 1;
                if let Some(kept) = self.flush(shared, rk, topic, &mut target) {
                    return handed(calls, run_start + kept, target);
                }
            }
            if !alone {
                if i == tickets.len() {
                    return handed(calls, i, target);
                }
                continue; // the run was cut at `MAX_RUN`
            }
            // `tickets[i]` has headers or a timestamp: it goes alone.
            let ticket = tickets[i];
            calls += 1;
            // SAFETY: the caller popped this ticket and has not handed it
            // over yet, so nobody else touches the record.
            let record = unsafe { shared.record(ticket) };
            let mut sent = produce_one(rk, topic, target.partition, record, ticket);
            if let Err(code) = sent {
                if target.fall_back(code) {
                    sent = produce_one(rk, topic, target.partition, record, ticket);
                }
            }
            match sent {
                Ok(()) => {}
                Err(QUEUE_FULL) => return handed(calls, i, target),
                Err(code) => {
                    let error = fatal_or(shared, rk, Error::kafka(RDKafkaErrorCode::from(code)));
                    // SAFETY: the caller hands over published tickets.
                    unsafe { shared.refuse(ticket, error) }
                }
            }
            i += 1;
        }
    }

    /// Adds `ticket`'s record to the pending run if it is plain; returns
    /// whether it was.
    fn queue_if_plain<R: Reports>(&mut self, shared: &R, partition: i32, ticket: Ticket) -> bool {
        // SAFETY: the caller popped this ticket and has not handed it over
        // yet, so nobody else touches the record.
        let record = unsafe { shared.record(ticket) };
        let plain = record.is_plain();
        if plain {
            self.messages.push(message(record, partition, ticket));
        }
        plain
    }

    /// Sends the pending run of plain records to `target` in one batch
    /// call (or, when librdkafka refuses a chosen partition that does not
    /// exist, to the partitioner; module docs). Returns `None` when every
    /// record was taken or failed, or, when a full queue stopped the call,
    /// how many at the front were.
    fn flush<R: Reports>(
        &mut self,
        shared: &R,
        rk: *mut rd::rd_kafka_t,
        topic: &NativeTopic,
        target: &mut Target,
    ) -> Option<usize> {
        let count = c_int::try_from(self.messages.len()).expect("a run fits in a c_int");
        let produce = |messages: &mut Vec<rd::rd_kafka_message_t>, partition| {
            // SAFETY: `messages` holds `count` initialised entries whose
            // payload and key pointers stay valid until their delivery
            // reports (slots own the bytes); the topic handle is live. No
            // flags: one partition for the whole call, no blocking (module
            // docs).
            unsafe {
                rd::rd_kafka_produce_batch(topic.ptr(), partition, 0, messages.as_mut_ptr(), count)
            }
        };
        let mut accepted = produce(&mut self.messages, target.partition);
        // A partition that does not exist refuses the whole call before
        // librdkafka creates any message.
        if accepted == 0 && target.fall_back(self.messages[0].err) {
            for m in &mut self.messages {
                m.err = rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
                m.partition = target.partition;
            }
            accepted = produce(&mut self.messages, target.partition);
        }
        let mut stopped = None;
        if accepted < count {
            for (i, m) in self.messages.iter().enumerate() {
                match m.err {
                    rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => {}
                    // librdkafka refuses every record after the first
                    // that found the queue full.
                    QUEUE_FULL => {
                        stopped = Some(i);
                        break;
                    }
                    err => {
                        let error = fatal_or(shared, rk, Error::kafka(RDKafkaErrorCode::from(err)));
                        let ticket = Ticket::from_opaque(m._private);
                        // SAFETY: the caller hands over published tickets.
                        unsafe { shared.refuse(ticket, error) };
                    }
                }
            }
        }
        self.messages.clear();
        stopped
    }
}

/// Borrows bytes as librdkafka's `(pointer, length)`; NULL for none.
fn raw(bytes: Option<&bytes::Bytes>) -> (*mut c_void, usize) {
    bytes.map_or((ptr::null_mut(), 0), |b| {
        (b.as_ptr() as *mut c_void, b.len())
    })
}

/// The batch-call entry for a plain record.
fn message(record: &Record, partition: i32, ticket: Ticket) -> rd::rd_kafka_message_t {
    let (payload, len) = raw(record.payload());
    let (key, key_len) = raw(record.key());
    rd::rd_kafka_message_t {
        err: rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR,
        rkt: ptr::null_mut(),
        partition,
        payload,
        len,
        key,
        key_len,
        offset: 0,
        _private: ticket.to_opaque(),
    }
}

/// Produces one record with headers and/or a timestamp.
fn produce_one(
    rk: *mut rd::rd_kafka_t,
    topic: &NativeTopic,
    partition: i32,
    record: &Record,
    ticket: Ticket,
) -> Result<(), rd::rd_kafka_resp_err_t> {
    use rd::rd_kafka_vtype_t as V;
    use rd::rd_kafka_vu_s__bindgen_ty_1 as U;
    let vu = |vtype, u| rd::rd_kafka_vu_t { vtype, u };
    let mem = |(ptr, size)| U {
        mem: rd::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1 { ptr, size },
    };

    let headers = if record.headers().is_empty() {
        ptr::null_mut()
    } else {
        // SAFETY: creates an empty list we own until librdkafka takes it.
        let list = unsafe { rd::rd_kafka_headers_new(record.headers().len()) };
        for header in record.headers() {
            let (value, size) = raw(header.value.as_ref());
            // SAFETY: `list` is ours; name and value are valid for the given
            // sizes and librdkafka copies them.
            unsafe {
                rd::rd_kafka_header_add(
                    list,
                    header.key.as_ptr().cast::<c_char>(),
                    header.key.len() as isize,
                    value,
                    size as isize,
                )
            };
        }
        list
    };

    let mut vus = [
        vu(V::RD_KAFKA_VTYPE_RKT, U { rkt: topic.ptr() }),
        vu(V::RD_KAFKA_VTYPE_PARTITION, U { i32_: partition }),
        vu(V::RD_KAFKA_VTYPE_VALUE, mem(raw(record.payload()))),
        vu(V::RD_KAFKA_VTYPE_KEY, mem(raw(record.key()))),
        vu(
            V::RD_KAFKA_VTYPE_OPAQUE,
            U {
                ptr: ticket.to_opaque(),
            },
        ),
        vu(V::RD_KAFKA_VTYPE_MSGFLAGS, U { i: 0 }),
        vu(V::RD_KAFKA_VTYPE_END, U { i: 0 }),
        vu(V::RD_KAFKA_VTYPE_END, U { i: 0 }),
    ];
    let mut count = 6;
    if let Some(millis) = record.timestamp() {
        vus[count] = vu(V::RD_KAFKA_VTYPE_TIMESTAMP, U { i64_: millis });
        count += 1;
    }
    if !headers.is_null() {
        vus[count] = vu(V::RD_KAFKA_VTYPE_HEADERS, U { headers });
        count += 1;
    }

    // SAFETY: `vus` holds `count` valid entries; the payload stays alive in
    // the slot until the delivery report; on success librdkafka owns
    // `headers`.
    let error = unsafe { rd::rd_kafka_produceva(rk, vus.as_ptr(), count) };
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: `error` is ours to read and destroy; on failure the headers
    // stay ours too.
    unsafe {
        let code = rd::rd_kafka_error_code(error);
        rd::rd_kafka_error_destroy(error);
        if !headers.is_null() {
            rd::rd_kafka_headers_destroy(headers);
        }
        Err(code)
    }
}
