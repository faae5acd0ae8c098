//! Model 9: producers handing over on a sleeping worker's behalf. Two
//! producers push a ticket each with `Remote::push_or_run_round`; finding
//! the worker asleep, a producer takes the worker's baton and drains the
//! ring itself, or, the baton being held, wakes the worker. The worker
//! drains under the baton too, then parks.
//!
//! Checked: the baton gives the core to one thread at a time (every round
//! counts into a cell loom tracks, so two overlapping rounds are reported),
//! and no ticket is left in the ring with the worker asleep (the worker
//! only finishes once both are counted; a ticket left behind leaves it
//! parked forever, which loom reports as a deadlock).
//!
//! `leaving_model`: the producers' rounds hand nothing over and leave what
//! they drained in the core for the worker, as a round does with a record
//! it cannot hand over without waiting; the ring is then empty, so only
//! the wake-up after the round keeps the worker from sleeping past it.
#![cfg(aioproducer_loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use loom_tests::*;

const TICKETS: usize = 2;

/// What the rounds have done: tickets counted (handed over) and tickets
/// left in the core for the worker. Only baton holders touch it.
#[derive(Default)]
struct Work {
    counted: usize,
    left: usize,
}

/// Drains the ring, then counts what it drained (`leave`: leaves it for the
/// worker instead) and returns the count so far; the caller holds the baton.
fn round(remote: &Remote, work: &UnsafeCell<Work>, leave: bool) -> usize {
    let drained = remote.drain(TICKETS, |_| true);
    work.with_mut(|work| {
        // SAFETY: only baton holders touch the cell; loom checks it.
        let work = unsafe { &mut *work };
        if leave {
            work.left += drained;
        } else {
            work.counted += drained + std::mem::take(&mut work.left);
        }
        work.counted
    })
}

/// Whether a producer's round left work in the core.
fn left(work: &UnsafeCell<Work>) -> bool {
    // SAFETY: as in `round`.
    work.with(|work| unsafe { (*work).left > 0 })
}

/// Two producers and a worker; `leave`: the producers' rounds leave what
/// they drain to the worker.
fn run(leave: bool) {
    let remote = Arc::new(Remote::new(TICKETS));
    let work = Arc::new(UnsafeCell::new(Work::default()));
    let worker = {
        let (remote, work) = (Arc::clone(&remote), Arc::clone(&work));
        thread::spawn(move || {
            remote.register_worker();
            loop {
                remote.take_force();
                let seen = remote.baton().take().with(|_| round(&remote, &work, false));
                if seen == TICKETS {
                    return;
                }
                remote.park();
            }
        })
    };
    let producers: Vec<_> = (0..TICKETS as u32)
        .map(|i| {
            let (remote, work) = (Arc::clone(&remote), Arc::clone(&work));
            thread::spawn(move || {
                remote
                    .push_or_run_round(
                        Ticket::new(i, 0),
                        || {},
                        |_| {
                            // Once everything is counted, the worker is woken
                            // so that it can finish (a harness need: the real
                            // worker just sleeps on).
                            round(&remote, &work, leave) == TICKETS || left(&work)
                        },
                    )
                    .expect("room");
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    worker.join().unwrap();
}

fn model() {
    run(false);
}

fn leaving_model() {
    run(true);
}

#[test]
fn producers_hand_over_for_a_sleeping_worker_and_leave_nothing_behind() {
    check(model);
}

#[test]
fn work_a_producer_leaves_in_the_stage_wakes_the_worker() {
    check(leaving_model);
}

#[test]
#[ignore = "a seeded-bug twin, run by the test below in a child process"]
fn twin_skipped_left_work_wake() {
    check_with_bug(Bug::SkipLeftWorkWake, leaving_model);
}

#[test]
fn baton_model_catches_work_left_without_a_wake_up() {
    assert_twin_fails("twin_skipped_left_work_wake", "deadlock");
}

#[test]
#[ignore = "a seeded-bug twin, run by the test below in a child process"]
fn twin_skipped_busy_baton_wake() {
    check_with_bug(Bug::SkipBusyBatonWake, model);
}

#[test]
fn baton_model_catches_a_producer_that_neither_hands_over_nor_wakes() {
    assert_twin_fails("twin_skipped_busy_baton_wake", "deadlock");
}

#[test]
#[ignore = "a seeded-bug twin, run by the test below in a child process"]
fn twin_relaxed_baton() {
    check_with_bug(Bug::RelaxedBaton, model);
}

#[test]
fn baton_model_catches_a_baton_taken_without_acquire() {
    assert_twin_fails("twin_relaxed_baton", "Causality violation");
}
