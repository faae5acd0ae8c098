//! What the caller gets back: the delivery report, and the future that
//! resolves to it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::DeliveryError;
use crate::loom::Arc;
use crate::pool::Pool;
use crate::record::Topic;
use crate::wait::block_on;

/// A record's timestamp as the broker stored it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timestamp {
    /// No timestamp (old message formats).
    NotAvailable,
    /// Set by the producer (the record's, or the time of `produce`).
    CreateTime(i64),
    /// Set by the broker on append (topic `message.timestamp.type=LogAppendTime`).
    LogAppendTime(i64),
}

impl Timestamp {
    /// Milliseconds since the Unix epoch, if available.
    pub fn millis(&self) -> Option<i64> {
        match *self {
            Timestamp::NotAvailable => None,
            Timestamp::CreateTime(ms) | Timestamp::LogAppendTime(ms) => Some(ms),
        }
    }
}

/// Where a record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The topic.
    pub topic: Topic,
    /// The partition.
    pub partition: i32,
    /// The record's offset in the partition.
    pub offset: i64,
    /// The record's timestamp.
    pub timestamp: Timestamp,
}

/// Resolves to a record's delivery report.
///
/// Runtime-agnostic: poll it from any executor, or call
/// [`wait`](DeliveryFuture::wait) from a thread that may block. Dropping it
/// before it resolves is safe: the record is still delivered (or fails), and
/// its delivery slot returns to the pool when the report arrives.
///
/// A `DeliveryFuture` holds one of the producer's delivery slots (a few
/// hundred bytes, reused) until it has read its report or is dropped. The
/// bound on records in flight counts records not yet reported, not
/// futures: a caller may keep any number of futures and await them later
/// without blocking its own `produce`; each one it keeps costs a slot.
#[must_use = "a DeliveryFuture tells whether the record was delivered"]
pub struct DeliveryFuture {
    pool: Arc<Pool>,
    index: u32,
    done: bool,
}

impl DeliveryFuture {
    pub(crate) fn new(pool: Arc<Pool>, index: u32) -> Self {
        Self {
            pool,
            index,
            done: false,
        }
    }

    /// Blocks the current thread until the report arrives.
    ///
    /// Do not call this from an async task: await the future instead.
    pub fn wait(self) -> Result<Delivery, DeliveryError> {
        block_on(self, None).expect("waiting without a timeout always finishes")
    }
}

impl Future for DeliveryFuture {
    type Output = Result<Delivery, DeliveryError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        assert!(!self.done, "DeliveryFuture polled after it resolved");
        let slot = self.pool.slot(self.index);
        // SAFETY: this future is the one future of the slot's record (made
        // once per published ticket) and has not seen `Ready` (`done`).
        match unsafe { slot.poll_result(cx) } {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                self.done = true;
                // SAFETY: `poll_result` returned Ready: this future owns the
                // completed slot.
                unsafe { self.pool.release(self.index) };
                Poll::Ready(result)
            }
        }
    }
}

impl Drop for DeliveryFuture {
    fn drop(&mut self) {
        if !self.done && self.pool.slot(self.index).detach() {
            // SAFETY: `detach` returned true: the report is in and nobody
            // else will touch the slot.
            unsafe { self.pool.release(self.index) };
        }
    }
}

impl fmt::Debug for DeliveryFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryFuture")
            .field("slot", &self.index)
            .field("done", &self.done)
            .finish()
    }
}
