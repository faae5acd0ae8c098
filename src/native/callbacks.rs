//! The `extern "C"` functions librdkafka calls on its background thread.
//!
//! Each catches every panic: unwinding into C is undefined behaviour. A panic
//! in the delivery-report path means a broken invariant of ours (user
//! callbacks are contained one level down, in the slot), and a future might
//! then never resolve, so it aborts the process after logging, as
//! `async-task` does. Panics in the log, error and statistics callbacks are
//! logged and dropped.

use std::ffi::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use rdkafka::bindings as rd;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};

use crate::delivery::slot::Outcome;
use crate::delivery::ticket::Ticket;
use crate::error::Error;
use crate::native::c_str;
use crate::native::client::{context, fatal_error, fatal_or};
use crate::report::Persistence;
use crate::report::Timestamp;
use crate::sync::block_on::Reporting;

/// Registers the callbacks on a native configuration.
///
/// # Safety
/// `conf` is a valid, not yet consumed librdkafka configuration.
pub(crate) unsafe fn install(conf: *mut rd::rd_kafka_conf_t) {
    // SAFETY: valid configuration (function contract); signatures match.
    unsafe {
        rd::rd_kafka_conf_set_dr_msg_cb(conf, Some(delivery_report));
        rd::rd_kafka_conf_set_log_cb(conf, Some(log));
        rd::rd_kafka_conf_set_error_cb(conf, Some(error));
        rd::rd_kafka_conf_set_stats_cb(conf, Some(statistics));
    }
}

/// The delivery report of one record: complete its slot.
unsafe extern "C" fn delivery_report(
    rk: *mut rd::rd_kafka_t,
    message: *const rd::rd_kafka_message_t,
    opaque: *mut c_void,
) {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: librdkafka passes a valid message and our client's opaque
        // for the duration of the call.
        let (context, message) = unsafe { (context(opaque), &*message) };
        let ticket = Ticket::from_opaque(message._private);
        // SAFETY: `message` is valid for this call.
        let outcome = match unsafe { outcome(message) } {
            // A record failed by a fatal error (or by the purge librdkafka
            // runs after one) says so.
            Outcome::Failed { error, persistence } => Outcome::Failed {
                error: fatal_or(&*context.reports, rk, error),
                persistence,
            },
            delivered => delivered,
        };
        // SAFETY: librdkafka reports only records we handed over, whose
        // tickets were published.
        unsafe { context.reports.complete(ticket, outcome) };
    }));
    if result.is_err() {
        log::error!("panic in the delivery-report path; aborting to keep futures sound");
        std::process::abort();
    }
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
        error: Error::kafka(RDKafkaErrorCode::from(message.err)),
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

/// Client-wide errors (brokers down, fatal idempotence errors).
unsafe extern "C" fn error(
    rk: *mut rd::rd_kafka_t,
    code: c_int,
    reason: *const c_char,
    opaque: *mut c_void,
) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let code = RDKafkaRespErr::try_from(code).map(RDKafkaErrorCode::from);
        // SAFETY: NUL-terminated string valid for the call.
        let reason = unsafe { c_str(reason) };
        match code {
            Ok(RDKafkaErrorCode::Fatal) => {
                log::error!(target: "librdkafka", "fatal error: {reason}");
                if let Some(fatal) = fatal_error(rk) {
                    // SAFETY: our client's opaque, alive for the call.
                    let context = unsafe { context(opaque) };
                    // Intake stops at once (the first fatal error counts).
                    let _ = context.reports.set_fatal(fatal);
                }
            }
            Ok(code) => log::warn!(target: "librdkafka", "{code:?}: {reason}"),
            Err(_) => log::warn!(target: "librdkafka", "error {reason}"),
        }
    }));
}

/// librdkafka's statistics JSON (`statistics.interval.ms`): kept for
/// [`AioProducer::stats`](crate::AioProducer::stats).
unsafe extern "C" fn statistics(
    _rk: *mut rd::rd_kafka_t,
    json: *mut c_char,
    len: usize,
    opaque: *mut c_void,
) -> c_int {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: librdkafka passes `len` readable bytes and our opaque.
        let (context, bytes) = unsafe {
            (
                context(opaque),
                std::slice::from_raw_parts(json.cast::<u8>(), len),
            )
        };
        context
            .reports
            .statistics(String::from_utf8_lossy(bytes).into_owned());
    }));
    0 // librdkafka frees the JSON.
}
