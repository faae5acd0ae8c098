//! The delivery side of a record's life: its ticket, its slot in the pool,
//! the ledger that counts it in and out, and the [`DeliveryFuture`] that
//! resolves to its report.

pub(crate) mod latency;
pub(crate) mod ledger;
pub(crate) mod pool;
pub(crate) mod slot;
pub(crate) mod ticket;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::delivery::pool::Pool;
use crate::report::{Delivery, DeliveryError};
use crate::sync::block_on::block_on;
use crate::sync::Arc;

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
