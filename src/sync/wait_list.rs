//! Wait lists for the slow paths: a producer waiting for ring or pool space,
//! `flush` waiting for records to complete, `purge` waiting for workers.
//!
//! A [`WaitList`] is an event in the sense of the `event-listener` crate
//! (listen, re-check, then wait; a notification reaches listeners
//! registered before it), not tokio's `Notify`, which stores a permit for a
//! later waiter: a notification with nobody listening is simply dropped
//! here, so every waiter must re-check its condition after registering.
//!
//! The fast path never takes the lock: a notifier reads one counter and
//! returns when nobody waits. Only a thread that must wait, or one that must
//! wake a waiter, touches the mutex-protected list.
//!
//! # Protocol
//!
//! The waiter and the notifier each change one thing and then look at the
//! other's, with a `SeqCst` fence in between (the store-buffering pattern):
//!
//! ```text
//! waiter:   waiting += 1 (in listen)   fence(SeqCst)   re-check condition
//! notifier: make condition true        fence(SeqCst)   if waiting > 0 { wake }
//! ```
//!
//! The two fences are ordered one way or the other, so either the waiter's
//! re-check sees the condition, or the notifier sees the waiter and wakes it.
//! A wake-up therefore cannot be lost between "check" and "sleep". Callers use
//! it as
//!
//! ```text
//! loop {
//!     if try_op() { break }
//!     let listener = notify.listen();
//!     if try_op() { break }          // drops the listener
//!     listener.await;
//! }
//! ```
//!
//! A listener notified by `notify_one` that is dropped without being awaited
//! (its owner succeeded on the re-check, or its future was cancelled) passes
//! the notification on to the next waiter, so `notify_one` never strands one.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::task::{Context, Poll, Waker};

use crate::sync::{fence, AtomicUsize, Mutex};

/// A list of tasks or threads waiting for one condition.
#[derive(Debug)]
pub struct WaitList {
    /// Listeners registered and not yet notified. Written only under the
    /// lock; read without it by notifiers to skip the lock when zero.
    waiting: AtomicUsize,
    list: Mutex<List>,
}

#[derive(Debug, Default)]
struct List {
    entries: Vec<Entry>,
    vacant: Vec<usize>,
    /// Keys of `Waiting` entries in the order they registered.
    queue: VecDeque<usize>,
}

#[derive(Debug)]
enum Entry {
    Vacant,
    Waiting(Option<Waker>),
    /// Notified; `one` when by `notify_one`, which must be passed on if the
    /// listener goes away without consuming it.
    Notified {
        one: bool,
    },
}

impl List {
    fn insert(&mut self) -> usize {
        let key = match self.vacant.pop() {
            Some(key) => {
                self.entries[key] = Entry::Waiting(None);
                key
            }
            None => {
                self.entries.push(Entry::Waiting(None));
                self.entries.len() - 1
            }
        };
        self.queue.push_back(key);
        key
    }

    fn remove(&mut self, key: usize) -> Entry {
        self.vacant.push(key);
        std::mem::replace(&mut self.entries[key], Entry::Vacant)
    }

    /// Notifies up to `n` waiters in registration order; returns how many.
    fn notify(&mut self, n: usize, one: bool, waiting: &AtomicUsize) -> usize {
        let mut woken = 0;
        while woken < n {
            let Some(key) = self.queue.pop_front() else {
                break;
            };
            let entry = std::mem::replace(&mut self.entries[key], Entry::Notified { one });
            // Relaxed: `waiting` is only written under the lock we hold.
            waiting.store(waiting.load(Relaxed) - 1, Relaxed);
            if let Entry::Waiting(Some(waker)) = entry {
                waker.wake();
            }
            woken += 1;
        }
        woken
    }
}

impl WaitList {
    /// An empty wait list.
    pub fn new() -> Self {
        // Room for a few waiters up front, so that waiting for space does
        // not allocate in the common case.
        const WAITERS: usize = 8;
        Self {
            waiting: AtomicUsize::new(0),
            list: Mutex::new(List {
                entries: Vec::with_capacity(WAITERS),
                vacant: Vec::with_capacity(WAITERS),
                queue: VecDeque::with_capacity(WAITERS),
            }),
        }
    }

    /// Registers a listener. Check the condition again after this call and
    /// before awaiting the listener (see the module docs).
    pub fn listen(&self) -> Listener<'_> {
        let key = {
            let mut list = self.list.lock();
            let key = list.insert();
            // Written under the lock; the fence below publishes it.
            self.waiting.store(self.waiting.load(Relaxed) + 1, Relaxed);
            key
        };
        // SeqCst: pairs with the fence in `notify` (module docs, protocol).
        fence(SeqCst);
        Listener {
            notify: self,
            key: Some(key),
        }
    }

    /// Waits until `attempt` succeeds, re-trying it after each notification
    /// (the loop of the module docs).
    pub async fn wait_for<T>(&self, mut attempt: impl FnMut() -> Option<T>) -> T {
        loop {
            if let Some(value) = attempt() {
                return value;
            }
            let listener = self.listen();
            if let Some(value) = attempt() {
                return value;
            }
            listener.await;
        }
    }

    /// Wakes the longest-waiting listener, if any.
    pub fn notify_one(&self) {
        self.notify(1, true);
    }

    /// Wakes up to `n` listeners.
    pub fn notify_many(&self, n: usize) {
        self.notify(n, true);
    }

    /// Wakes every listener registered before this call.
    pub fn notify_all(&self) {
        self.notify(usize::MAX, false);
    }

    /// Whether anyone is registered. Only meaningful after a `SeqCst`
    /// fence that follows the caller's change of condition (see
    /// `Ledger::settle`).
    pub fn has_waiters(&self) -> bool {
        // Relaxed: ordered by the caller's fence.
        self.waiting.load(Relaxed) != 0
    }

    fn notify(&self, n: usize, one: bool) {
        // SeqCst: pairs with the fence in `listen`; orders the caller's
        // condition change before the read of `waiting`.
        fence(SeqCst);
        if self.waiting.load(Relaxed) == 0 {
            return;
        }
        self.list.lock().notify(n, one, &self.waiting);
    }

    /// Listeners registered and not yet notified (for stats and tests).
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.waiting.load(Relaxed)
    }
}

impl Default for WaitList {
    fn default() -> Self {
        Self::new()
    }
}

/// One registration in a [`WaitList`]; a future that resolves once notified.
#[derive(Debug)]
#[must_use = "a listener does nothing unless awaited"]
pub struct Listener<'a> {
    notify: &'a WaitList,
    key: Option<usize>,
}

impl Listener<'_> {
    /// Whether this is a registration with `notify`.
    pub(crate) fn is_for(&self, notify: &WaitList) -> bool {
        std::ptr::eq(self.notify, notify)
    }
}

impl Future for Listener<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(key) = self.key else {
            return Poll::Ready(());
        };
        let mut list = self.notify.list.lock();
        match &mut list.entries[key] {
            Entry::Notified { .. } => {
                list.remove(key);
                drop(list);
                self.key = None;
                Poll::Ready(())
            }
            Entry::Waiting(waker) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Entry::Vacant => unreachable!("a live listener's entry is never vacant"),
        }
    }
}

impl Drop for Listener<'_> {
    fn drop(&mut self) {
        let Some(key) = self.key else {
            return;
        };
        let mut list = self.notify.list.lock();
        match list.remove(key) {
            Entry::Waiting(_) => {
                list.queue.retain(|&k| k != key);
                // Relaxed: written under the lock.
                let waiting = &self.notify.waiting;
                waiting.store(waiting.load(Relaxed) - 1, Relaxed);
            }
            Entry::Notified { one: true } => {
                // Pass an unconsumed `notify_one` on to the next waiter.
                list.notify(1, true, &self.notify.waiting);
            }
            Entry::Notified { one: false } | Entry::Vacant => {}
        }
    }
}

#[cfg(all(test, not(aioproducer_loom)))]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn notify_one_wakes_in_registration_order() {
        let notify = WaitList::new();
        let mut first = notify.listen();
        let mut second = notify.listen();
        notify.notify_one();
        assert!((&mut first).now_or_never().is_some());
        assert!((&mut second).now_or_never().is_none());
        assert_eq!(notify.waiting(), 1);
    }

    #[test]
    fn dropped_notified_listener_passes_notification_on() {
        let notify = WaitList::new();
        let first = notify.listen();
        let mut second = notify.listen();
        notify.notify_one();
        drop(first);
        assert!((&mut second).now_or_never().is_some());
        assert_eq!(notify.waiting(), 0);
    }

    #[test]
    fn notify_all_wakes_everyone_and_notify_without_waiters_is_a_no_op() {
        let notify = WaitList::new();
        notify.notify_all();
        let mut a = notify.listen();
        let mut b = notify.listen();
        notify.notify_all();
        assert!((&mut a).now_or_never().is_some());
        assert!((&mut b).now_or_never().is_some());
        assert_eq!(notify.waiting(), 0);
    }

    #[test]
    fn notify_many_wakes_at_most_n() {
        let notify = WaitList::new();
        let mut listeners: Vec<_> = (0..3).map(|_| notify.listen()).collect();
        notify.notify_many(2);
        let woken = listeners
            .iter_mut()
            .filter_map(|l| l.now_or_never())
            .count();
        assert_eq!(woken, 2);
    }
}
