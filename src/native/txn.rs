//! librdkafka's transactional calls, and the consumer-group identity that
//! `send_offsets_to_transaction` takes.
//!
//! The calls block (they wait on the transaction coordinator), so the
//! producer runs them on a helper thread; see `src/transaction.rs`.

use std::ffi::CString;
use std::ptr;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::TopicPartitionList;

use crate::error::Error;
use crate::native::client::NativeProducer;
use crate::native::owned::Owned;
use crate::native::{c_str, millis};

/// An owned `rd_kafka_consumer_group_metadata_t`.
#[derive(Debug)]
pub(crate) struct NativeGroupMetadata(Owned<rd::rd_kafka_consumer_group_metadata_t>);

fn c_string(what: &'static str, value: &str) -> Result<CString, Error> {
    CString::new(value).map_err(|_| Error::Config {
        key: what.into(),
        value: value.escape_default().to_string(),
        reason: "contains a NUL byte".into(),
    })
}

impl NativeGroupMetadata {
    pub(crate) fn new(
        group_id: &str,
        generation: Option<(i32, &str, Option<&str>)>,
    ) -> Result<Self, Error> {
        let group = c_string("group_id", group_id)?;
        let ptr = match generation {
            // SAFETY: NUL-terminated string valid for the call.
            None => unsafe { rd::rd_kafka_consumer_group_metadata_new(group.as_ptr()) },
            Some((generation_id, member_id, instance_id)) => {
                let member = c_string("member_id", member_id)?;
                let instance = instance_id
                    .map(|i| c_string("group_instance_id", i))
                    .transpose()?;
                // SAFETY: NUL-terminated strings (or NULL for no instance id)
                // valid for the call; librdkafka copies them.
                unsafe {
                    rd::rd_kafka_consumer_group_metadata_new_with_genid(
                        group.as_ptr(),
                        generation_id,
                        member.as_ptr(),
                        instance.as_ref().map_or(ptr::null(), |i| i.as_ptr()),
                    )
                }
            }
        };
        // SAFETY: ours, from `rd_kafka_consumer_group_metadata_new*`.
        let owned = unsafe { Owned::from_raw(ptr) };
        owned.map(Self).ok_or_else(|| {
            Error::config(
                group_id,
                String::new(),
                "librdkafka refused the group metadata",
            )
        })
    }
}

/// Turns a returned `rd_kafka_error_t` (NULL for success) into our error,
/// keeping librdkafka's verdicts (retriable, abort needed, fatal).
///
/// # Safety
/// `error` is NULL or an error object we own.
unsafe fn check(error: *mut rd::rd_kafka_error_t) -> Result<(), Error> {
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: a valid error object we own (function contract), destroyed once.
    unsafe {
        let code = RDKafkaErrorCode::from(rd::rd_kafka_error_code(error));
        let result = Error::Transaction {
            code,
            message: c_str(rd::rd_kafka_error_string(error)),
            retriable: rd::rd_kafka_error_is_retriable(error) != 0,
            requires_abort: rd::rd_kafka_error_txn_requires_abort(error) != 0,
            fatal: rd::rd_kafka_error_is_fatal(error) != 0,
        };
        rd::rd_kafka_error_destroy(error);
        Err(result)
    }
}

impl NativeProducer {
    pub(crate) fn init_transactions(&self, timeout: Duration) -> Result<(), Error> {
        // SAFETY: live handle; the returned error (if any) is ours.
        unsafe { check(rd::rd_kafka_init_transactions(self.ptr(), millis(timeout))) }
    }

    pub(crate) fn begin_transaction(&self) -> Result<(), Error> {
        // SAFETY: as above.
        unsafe { check(rd::rd_kafka_begin_transaction(self.ptr())) }
    }

    pub(crate) fn send_offsets_to_transaction(
        &self,
        offsets: &TopicPartitionList,
        group: &NativeGroupMetadata,
        timeout: Duration,
    ) -> Result<(), Error> {
        // SAFETY: live handle; `offsets` and `group` are valid for the call
        // and only read.
        unsafe {
            check(rd::rd_kafka_send_offsets_to_transaction(
                self.ptr(),
                offsets.ptr(),
                group.0.ptr(),
                millis(timeout),
            ))
        }
    }

    pub(crate) fn commit_transaction(&self, timeout: Duration) -> Result<(), Error> {
        // SAFETY: live handle; the returned error (if any) is ours.
        unsafe { check(rd::rd_kafka_commit_transaction(self.ptr(), millis(timeout))) }
    }

    pub(crate) fn abort_transaction(&self, timeout: Duration) -> Result<(), Error> {
        // SAFETY: as above.
        unsafe { check(rd::rd_kafka_abort_transaction(self.ptr(), millis(timeout))) }
    }
}
