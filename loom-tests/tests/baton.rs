//! Model 9: producers handing over on a sleeping worker's behalf. Two
//! producers push a ticket each with `Mailbox::push_or_hand_over`; finding
//! the worker asleep, a producer takes the worker's baton and drains the
//! ring itself, or, the baton being held, wakes the worker. The worker
//! drains under the baton too, then parks.
//!
//! Checked: the baton gives the stage to one thread at a time (every round
//! counts into a cell loom tracks, so two overlapping rounds are reported),
//! and no ticket is left in the ring with the worker asleep (the worker
//! only finishes once both are counted; a ticket left behind leaves it
//! parked forever, which loom reports as a deadlock).
#![cfg(aioproducer_loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use loom_tests::*;

const TICKETS: usize = 2;

/// Drains the ring into `counted`; the caller holds the baton.
fn round(mailbox: &Mailbox, counted: &UnsafeCell<usize>) -> usize {
    let drained = mailbox.drain(TICKETS, |_| true);
    counted.with_mut(|n| {
        // SAFETY: only baton holders touch the cell; loom checks it.
        let n = unsafe { &mut *n };
        *n += drained;
        *n
    })
}

fn model() {
    let mailbox = Arc::new(Mailbox::new(TICKETS));
    let counted = Arc::new(UnsafeCell::new(0));
    let worker = {
        let (mailbox, counted) = (Arc::clone(&mailbox), Arc::clone(&counted));
        thread::spawn(move || {
            mailbox.register_worker();
            loop {
                mailbox.take_force();
                let seen = mailbox.baton().take().with(|_| round(&mailbox, &counted));
                if seen == TICKETS {
                    return;
                }
                mailbox.park();
            }
        })
    };
    let producers: Vec<_> = (0..TICKETS as u32)
        .map(|i| {
            let (mailbox, counted) = (Arc::clone(&mailbox), Arc::clone(&counted));
            thread::spawn(move || {
                mailbox
                    .push_or_hand_over(Ticket::new(i, 0), |_| {
                        // Left for the worker only so that it can finish
                        // once everything is counted (a harness need: the
                        // real worker just sleeps on).
                        round(&mailbox, &counted) == TICKETS
                    })
                    .expect("room");
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    worker.join().unwrap();
}

#[test]
fn producers_hand_over_for_a_sleeping_worker_and_leave_nothing_behind() {
    check(model);
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
