//! Model 2: completing a delivery slot. librdkafka's thread completes the
//! record while the future is polled to the end, or dropped. The outcome is
//! observed exactly once and is fully written before it is read (loom tracks
//! the slot's cells), the waker is never lost (a lost wake-up leaves
//! `block_on` parked forever, which loom reports as a deadlock), and the
//! slot returns to the pool exactly once. Model 2b: a run of reports (one
//! delivery-report event) frees its room before any outcome is visible.
//! Model 2c: a timed record's enqueue time (every record is timed under
//! loom) reaches its completer through the slot's own publication.
#![cfg(aioproducer_loom)]

use loom::sync::atomic::{AtomicU32, Ordering::Relaxed};
use loom::sync::Arc;
use loom::thread;
use loom_tests::*;

/// A producer state with one record in flight; returns it and the record's
/// ticket.
fn one_record() -> (Arc<Shared>, Ticket) {
    let shared = one_worker(1, 1);
    let index = shared.pool().acquire();
    let parity = shared.ledger().admit().unwrap();
    // SAFETY: just acquired, never published.
    let generation = unsafe { shared.pool().slot(index).occupy(record("r"), None, parity) };
    (shared, Ticket::new(index, generation))
}

fn delivered() -> Outcome {
    Outcome::Delivered {
        partition: 3,
        offset: 42,
        timestamp: aioproducer::Timestamp::CreateTime(7),
    }
}

/// The slot is back exactly once, and so is the record's room under the
/// bound of one: the next two acquisitions are it and a fresh one.
fn assert_released_once(shared: &Shared, index: u32) {
    assert_eq!(shared.ledger().in_flight(), 0);
    assert!(shared.ledger().admit().is_ok(), "the room was not freed");
    assert_eq!(shared.pool().acquire(), index);
    assert_ne!(
        shared.pool().acquire(),
        index,
        "the slot was released twice"
    );
    assert_eq!(shared.pool().created(), 2);
}

fn complete_vs_poll() {
    let (shared, ticket) = one_record();
    // SAFETY: the one future of the record.
    let future = unsafe { delivery_future(Arc::clone(shared.pool()), ticket.index()) };
    let completer = {
        let shared = Arc::clone(&shared);
        // SAFETY: `one_record` gave the ticket away: no intake owns the record.
        thread::spawn(move || unsafe { shared.complete(ticket, delivered()) })
    };
    let delivery = loom::future::block_on(future).expect("delivered");
    assert_eq!((delivery.partition, delivery.offset), (3, 42));
    completer.join().unwrap();
    assert_released_once(&shared, ticket.index());
}

fn complete_vs_drop() {
    let (shared, ticket) = one_record();
    // SAFETY: the one future of the record.
    let future = unsafe { delivery_future(Arc::clone(shared.pool()), ticket.index()) };
    let completer = {
        let shared = Arc::clone(&shared);
        // SAFETY: `one_record` gave the ticket away: no intake owns the record.
        thread::spawn(move || unsafe { shared.complete(ticket, delivered()) })
    };
    drop(future);
    completer.join().unwrap();
    assert_released_once(&shared, ticket.index());
}

#[test]
fn slot_outcome_reaches_a_polled_future_exactly_once() {
    check(complete_vs_poll);
}

#[test]
fn slot_is_released_once_when_the_future_is_dropped() {
    check(complete_vs_drop);
}

#[test]
#[ignore = "a seeded-bug twin, run by the test below in a child process"]
fn twin_relaxed_complete() {
    check_with_bug(Bug::RelaxedComplete, complete_vs_poll);
}

#[test]
fn slot_model_catches_an_outcome_published_with_relaxed_ordering() {
    assert_twin_fails("twin_relaxed_complete", "Causality violation");
}

#[test]
#[ignore = "a seeded-bug twin, run by the test below in a child process"]
fn twin_skipped_poll_recheck() {
    check_with_bug(Bug::SkipPollRecheck, complete_vs_poll);
}

#[test]
fn slot_model_catches_a_lost_wake_up() {
    assert_twin_fails("twin_skipped_poll_recheck", "deadlock");
}

/// Two records in flight under a bound of two, both reported in one run
/// (one delivery-report event). The run frees both records' room before
/// either outcome is visible: a caller that has read the first report can
/// admit a record at once.
fn run_frees_room_before_publishing() {
    let shared = one_worker(2, 2);
    let tickets: Vec<Ticket> = (0..2)
        .map(|_| {
            let index = shared.pool().acquire();
            let parity = shared.ledger().admit().unwrap();
            // SAFETY: just acquired, never published.
            let generation = unsafe { shared.pool().slot(index).occupy(record("r"), None, parity) };
            Ticket::new(index, generation)
        })
        .collect();
    // SAFETY: the one future of the first record.
    let first = unsafe { delivery_future(Arc::clone(shared.pool()), tickets[0].index()) };
    let completer = {
        let (shared, tickets) = (Arc::clone(&shared), tickets.clone());
        thread::spawn(move || {
            let mut run = tickets.into_iter().map(|ticket| (ticket, delivered()));
            // SAFETY: no intake owns these records any more.
            unsafe { shared.complete_run(&mut run) }
        })
    };
    loom::future::block_on(first).expect("delivered");
    assert!(
        shared.ledger().admit().is_ok(),
        "a caller that read a report found no room"
    );
    completer.join().unwrap();
    // SAFETY: the one future of the second record, reported by now.
    let second = unsafe { delivery_future(Arc::clone(shared.pool()), tickets[1].index()) };
    loom::future::block_on(second).expect("delivered");
    assert_eq!(shared.ledger().completed(), 2);
}

#[test]
fn a_run_of_reports_frees_room_before_any_is_visible() {
    check(run_frees_room_before_publishing);
}

#[test]
#[ignore = "a seeded-bug twin, run by the test below in a child process"]
fn twin_room_freed_after_publishing() {
    check_with_bug(Bug::FreeRoomAfterPublish, run_frees_room_before_publishing);
}

#[test]
fn run_model_catches_room_freed_after_publishing() {
    assert_twin_fails(
        "twin_room_freed_after_publishing",
        "a caller that read a report found no room",
    );
}

/// One thread occupies a slot and passes its generation on with a Relaxed
/// store, which orders nothing (unlike librdkafka's hand-over in the real
/// producer): the completer's claim must see the record's enqueue time
/// through `occupy`'s Release store alone. The completer looks a few times;
/// an execution in which it never claims checks nothing.
fn timed_occupy_vs_claim() {
    let shared = one_worker(1, 1);
    let index = shared.pool().acquire();
    let parity = shared.ledger().admit().unwrap();
    let published = Arc::new(AtomicU32::new(u32::MAX));
    let occupier = {
        let (shared, published) = (Arc::clone(&shared), Arc::clone(&published));
        thread::spawn(move || {
            // SAFETY: acquired above and handed to this thread alone.
            let generation = unsafe { shared.pool().slot(index).occupy(record("r"), None, parity) };
            // Relaxed: on purpose (see above).
            published.store(generation, Relaxed);
        })
    };
    for _ in 0..3 {
        // Relaxed: on purpose (see above).
        let generation = published.load(Relaxed);
        if generation != u32::MAX {
            // SAFETY: the one report of the record.
            let claim = unsafe { shared.pool().slot(index).claim(generation, delivered()) };
            if let Some(claim) = claim {
                assert!(
                    claim.sampled_at().is_some(),
                    "every record is timed under loom"
                );
                break;
            }
        }
        thread::yield_now();
    }
    occupier.join().unwrap();
}

#[test]
fn a_timed_records_enqueue_time_reaches_its_completer() {
    check(timed_occupy_vs_claim);
}

#[test]
#[ignore = "a seeded-bug twin, run by the test below in a child process"]
fn twin_late_sample_time() {
    check_with_bug(Bug::LateSampleTime, timed_occupy_vs_claim);
}

#[test]
fn timed_model_catches_a_time_written_after_publishing() {
    assert_twin_fails("twin_late_sample_time", "Causality violation");
}
