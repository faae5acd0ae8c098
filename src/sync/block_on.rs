//! Blocking on a future from a plain thread, with an optional deadline; and
//! knowing when the current thread must not block.
//!
//! [`block_on`] is used by [`DeliveryFuture::wait`](crate::DeliveryFuture::wait)
//! and by `Drop`, which cannot await. The waker unparks the blocked thread;
//! one per thread is built lazily and reused, so waiting allocates nothing
//! per call.
//!
//! A thread that completes records (librdkafka's background thread, a
//! worker, a producer handing over for a sleeping worker) must not block on
//! the producer: while it waits, no report it would deliver can arrive, and
//! librdkafka forbids destroying the handle from its own threads. User code
//! runs on such threads only inside delivery callbacks (and the `log`
//! crate's logger); [`Reporting`] marks those stretches, and `Drop` of the
//! last producer handle asks [`may_block`] before it waits.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

struct Unparker(Thread);

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

thread_local! {
    static WAKER: Waker = Waker::from(Arc::new(Unparker(thread::current())));
    /// How many [`Reporting`] stretches this thread is inside.
    static REPORTING: Cell<usize> = const { Cell::new(0) };
}

/// Polls `future` on this thread until it resolves, or until `deadline`
/// passes (`None`: no deadline).
pub fn block_on<F: Future>(future: F, deadline: Option<Instant>) -> Option<F::Output> {
    let mut future = pin!(future);
    WAKER.with(|waker| {
        let mut cx = Context::from_waker(waker);
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return Some(output);
            }
            match deadline {
                None => thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return None;
                    }
                    thread::park_timeout(deadline - now);
                }
            }
        }
    })
}

/// Marks the current thread, while alive, as one that reports records and
/// so must not block on the producer (module docs).
#[derive(Debug)]
pub(crate) struct Reporting(());

impl Reporting {
    pub(crate) fn enter() -> Self {
        REPORTING.with(|depth| depth.set(depth.get() + 1));
        Reporting(())
    }
}

impl Drop for Reporting {
    fn drop(&mut self) {
        REPORTING.with(|depth| depth.set(depth.get() - 1));
    }
}

/// Whether the current thread may block on the producer and destroy its
/// handle: it is not inside a [`Reporting`] stretch.
pub(crate) fn may_block() -> bool {
    REPORTING.with(|depth| depth.get() == 0)
}
