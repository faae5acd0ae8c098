//! The `extern "C"` functions librdkafka calls on its threads.
//!
//! Delivery reports, client errors and statistics come as events to
//! [`background_event`] on librdkafka's `rdk:bg` thread (the main queue is
//! forwarded there, see `client.rs`). A delivery-report event carries every
//! report of one produce response (one partition's batch), so a run of
//! records is completed with one update of the ledger
//! (`Reports::complete_run`), not one per record as with a `dr_msg_cb`.
//! Log lines come to [`log`] on whichever thread logs.
//!
//! Each function catches every panic: unwinding into C is undefined
//! behaviour. A panic in the delivery-report path means a broken invariant
//! of ours (user callbacks are contained one level down, in the slot), and
//! a future might then never resolve, so it aborts the process after
//! logging, as `async-task` does. Panics elsewhere are logged and dropped.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::types::RDKafkaErrorCode;

use crate::delivery::slot::Outcome;
use crate::delivery::ticket::Ticket;
use crate::error::Error;
use crate::events::{ClientError, Throttle};
use crate::native::client::{context, fatal_error, fatal_or, ProducerContext};
use crate::native::owned::Owned;
use crate::native::reachability::Reachability;
use crate::native::reports::Reports;
use crate::native::{c_str, purge, Purge};
use crate::report::Persistence;
use crate::report::Timestamp;
use crate::sync::block_on::Reporting;

/// Registers the callbacks on a native configuration.
///
/// # Safety
/// `conf` is a valid, not yet consumed librdkafka configuration.
pub(crate) unsafe fn install(conf: *mut rd::rd_kafka_conf_t, oauth: bool) {
    // SAFETY: valid configuration (function contract); signatures match.
    unsafe {
        // Delivery reports, client errors and statistics as events to one
        // callback, whatever `enabled_events` said. (librdkafka emits
        // statistics every `statistics.interval.ms` and queues errors
        // whatever the mask; the error bit also makes it log a fatal error
        // as it happens.)
        rd::rd_kafka_conf_set_events(
            conf,
            rd::RD_KAFKA_EVENT_DR | rd::RD_KAFKA_EVENT_ERROR | rd::RD_KAFKA_EVENT_STATS,
        );
        rd::rd_kafka_conf_set_background_event_cb(conf, Some(background_event));
        rd::rd_kafka_conf_set_log_cb(conf, Some(log));
        // Called on `rdk:bg` (the main queue is forwarded there).
        rd::rd_kafka_conf_set_throttle_cb(conf, Some(throttle));
        if oauth {
            // Setting it makes librdkafka raise its token refresh as an
            // event, which `background_event` sends to the token thread.
            rd::rd_kafka_conf_set_oauthbearer_token_refresh_cb(conf, Some(token_refresh));
        }
    }
}

/// A broker's throttle time, non-zero, or back to zero.
unsafe extern "C" fn throttle(
    _rk: *mut rd::rd_kafka_t,
    broker_name: *const c_char,
    broker_id: i32,
    throttle_time_ms: c_int,
    opaque: *mut c_void,
) {
    let _ = catch_unwind(|| {
        // SAFETY: our client's opaque, alive for the call; a NUL-terminated
        // name that lives as long.
        let (context, broker_name) = unsafe { (context(opaque), c_str(broker_name)) };
        context.reports.throttle(Throttle {
            broker_id,
            broker_name,
            time: Duration::from_millis(u64::try_from(throttle_time_ms).unwrap_or(0)),
        });
    });
}

/// librdkafka's token refresh callback, should it call it rather than
/// raise the refresh as an event: sends the request to the token thread.
unsafe extern "C" fn token_refresh(
    _rk: *mut rd::rd_kafka_t,
    _config: *const c_char,
    opaque: *mut c_void,
) {
    let _ = catch_unwind(|| {
        // SAFETY: our client's opaque, alive for the call.
        if let Some(tokens) = &unsafe { context(opaque) }.tokens {
            tokens.refresh();
        }
    });
}

/// One event from librdkafka's background queue; destroyed on return.
unsafe extern "C" fn background_event(
    rk: *mut rd::rd_kafka_t,
    event: *mut rd::rd_kafka_event_t,
    opaque: *mut c_void,
) {
    // SAFETY: librdkafka hands the event over to us, to destroy.
    let Some(event) = (unsafe { Owned::from_raw(event) }) else {
        return;
    };
    // SAFETY: a live event; our client's opaque, alive for the call.
    let (kind, context) = unsafe { (rd::rd_kafka_event_type(event.ptr()), context(opaque)) };
    let reports = &*context.reports;
    match kind {
        rd::RD_KAFKA_EVENT_DR => {
            let result = catch_unwind(AssertUnwindSafe(|| {
                let mut run = DeliveryReports {
                    rk,
                    event: &event,
                    reports,
                    reachability: &context.reachability,
                    delivered: false,
                    chunk: [std::ptr::null(); REPORTS_AHEAD],
                    next: 0,
                    len: 0,
                };
                // SAFETY: librdkafka reports only records we handed over,
                // whose tickets were published.
                unsafe { reports.complete_run(&mut run) };
                if run.delivered {
                    context.reachability.on_delivered();
                }
            }));
            if result.is_err() {
                log::error!("panic in the delivery-report path; aborting to keep futures sound");
                std::process::abort();
            }
        }
        rd::RD_KAFKA_EVENT_ERROR => {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: a live error event; its string lives as long.
                let (code, fatal, reason) = unsafe {
                    (
                        rd::rd_kafka_event_error(event.ptr()),
                        rd::rd_kafka_event_error_is_fatal(event.ptr()) != 0,
                        c_str(rd::rd_kafka_event_error_string(event.ptr())),
                    )
                };
                client_error(rk, RDKafkaErrorCode::from(code), fatal, &reason, context);
            }));
        }
        rd::RD_KAFKA_EVENT_STATS => {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: a live statistics event: a NUL-terminated JSON
                // string that lives as long as the event.
                let json = unsafe { CStr::from_ptr(rd::rd_kafka_event_stats(event.ptr())) };
                reports.statistics(json.to_string_lossy().into_owned());
            }));
        }
        rd::RD_KAFKA_EVENT_OAUTHBEARER_TOKEN_REFRESH => {
            if let Some(tokens) = &context.tokens {
                tokens.refresh();
            }
        }
        // Nothing else is enabled; anything else is only destroyed.
        _ => {}
    }
}

/// How many messages of an event [`DeliveryReports`] takes out at a time:
/// their slots are prefetched together, before the first is completed.
const REPORTS_AHEAD: usize = 32;

/// The reports of one delivery-report event, as `(ticket, outcome)`.
///
/// It takes the event's messages out [`REPORTS_AHEAD`] at a time and hints
/// each one's slot to the producer ([`Reports::prefetch_report`]) before
/// yielding the first: completing a record reads its slot's state, which
/// its producer wrote last, so each completion would otherwise wait for a
/// cache miss of its own (the claim's atomic exchange keeps the next one
/// from starting early). Measured on the perf tool, the claim's read of
/// the state was half of `complete_run`'s samples.
struct DeliveryReports<'a> {
    rk: *mut rd::rd_kafka_t,
    event: &'a Owned<rd::rd_kafka_event_t>,
    reports: &'a dyn Reports,
    /// Whether the cluster refuses us: what purged records fail with.
    reachability: &'a Reachability,
    /// Whether a record of the event was delivered.
    delivered: bool,
    /// Messages taken out of the event, not yet yielded: `next..len`.
    chunk: [*const rd::rd_kafka_message_t; REPORTS_AHEAD],
    next: usize,
    len: usize,
}

impl DeliveryReports<'_> {
    /// Takes the next chunk of messages out of the event and hints their
    /// slots; `false` once the event has none left.
    fn refill(&mut self) -> bool {
        // SAFETY: a live delivery-report event; `chunk` has room for
        // `REPORTS_AHEAD` pointers. The messages stay valid until the event
        // is destroyed, after the run.
        self.len = unsafe {
            rd::rd_kafka_event_message_array(
                self.event.ptr(),
                self.chunk.as_mut_ptr(),
                REPORTS_AHEAD,
            )
        };
        self.next = 0;
        for &message in &self.chunk[..self.len] {
            // SAFETY: just taken out of the live event (above).
            let opaque = unsafe { (*message)._private };
            self.reports.prefetch_report(Ticket::from_opaque(opaque));
        }
        self.len > 0
    }
}

impl Iterator for DeliveryReports<'_> {
    type Item = (Ticket, Outcome);

    fn next(&mut self) -> Option<Self::Item> {
        if self.next == self.len && !self.refill() {
            return None;
        }
        // SAFETY: taken out of the live event by `refill`, valid until the
        // event is destroyed, after the run.
        let message = unsafe { &*self.chunk[self.next] };
        self.next += 1;
        let ticket = Ticket::from_opaque(message._private);
        // SAFETY: a message of the event, valid meanwhile.
        let outcome = match unsafe { outcome(message) } {
            // A record failed by a fatal error (or by the purge librdkafka
            // runs after one) says so.
            // A record purged because the cluster refuses us says why.
            Outcome::Failed { error, persistence } => Outcome::Failed {
                error: Box::new(
                    self.reachability
                        .purged(fatal_or(self.reports, self.rk, *error)),
                ),
                persistence,
            },
            delivered => {
                self.delivered = true;
                delivered
            }
        };
        Some((ticket, outcome))
    }
}

/// A client-wide error (brokers down, refused credentials, fatal
/// idempotence errors): logged; a refusal by every broker fails the records
/// librdkafka holds (`reachability.rs`); a fatal one stops intake at once
/// (the first fatal error counts).
fn client_error(
    rk: *mut rd::rd_kafka_t,
    code: RDKafkaErrorCode,
    fatal: bool,
    reason: &str,
    context: &ProducerContext,
) {
    if !fatal {
        log::warn!(target: "librdkafka", "{code:?}: {reason}");
        if context.reachability.on_error(code, reason) {
            // SAFETY: `rk` is the live handle whose event this is.
            unsafe { purge(rk, Purge::Queued) };
        }
        let error = Error::Kafka {
            code,
            detail: Some(reason.to_owned()),
        };
        context.reports.client_error(ClientError::new(error, false));
        return;
    }
    log::error!(target: "librdkafka", "fatal error: {reason}");
    let error = match fatal_error(rk) {
        Some(fatal) => context.reports.set_fatal(fatal),
        None => Error::Fatal {
            code,
            reason: reason.to_owned(),
        },
    };
    context.reports.client_error(ClientError::new(error, true));
}

/// Reads the outcome out of a delivery report.
///
/// # Safety
/// `message` is a message librdkafka passed to the delivery-report callback.
unsafe fn outcome(message: &rd::rd_kafka_message_t) -> Outcome {
    if message.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: valid message (function contract), `kind` is writable.
        let millis = unsafe { rd::rd_kafka_message_timestamp(message, &mut kind) };
        let timestamp = match kind {
            rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_CREATE_TIME => {
                Timestamp::CreateTime(millis)
            }
            rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME => {
                Timestamp::LogAppendTime(millis)
            }
            rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE => {
                Timestamp::NotAvailable
            }
        };
        return Outcome::Delivered {
            partition: message.partition,
            offset: message.offset,
            timestamp,
        };
    }
    // SAFETY: valid message (function contract).
    let persistence = match unsafe { rd::rd_kafka_message_status(message) } {
        rd::rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_NOT_PERSISTED => Persistence::NotPersisted,
        rd::rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED => {
            Persistence::PossiblyPersisted
        }
        rd::rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_PERSISTED => Persistence::Persisted,
    };
    Outcome::Failed {
        error: Box::new(Error::kafka(RDKafkaErrorCode::from(message.err))),
        persistence,
    }
}

/// librdkafka's log lines, forwarded to the `log` crate (target `librdkafka`).
unsafe extern "C" fn log(
    _rk: *const rd::rd_kafka_t,
    level: c_int,
    facility: *const c_char,
    line: *const c_char,
) {
    let _ = catch_unwind(|| {
        // The application's logger runs here, on a librdkafka thread.
        let _reporting = Reporting::enter();
        let level = match level {
            0..=3 => log::Level::Error,
            4 => log::Level::Warn,
            5 | 6 => log::Level::Info,
            _ => log::Level::Debug,
        };
        if log::log_enabled!(target: "librdkafka", level) {
            // SAFETY: librdkafka passes NUL-terminated strings valid for the call.
            let (facility, line) = unsafe { (c_str(facility), c_str(line)) };
            log::log!(target: "librdkafka", level, "{facility}: {line}");
        }
    });
}
