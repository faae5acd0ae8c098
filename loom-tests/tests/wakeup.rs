//! Model 3: waking an idle worker. Two producers push tickets while the
//! worker drains and decides to park; the worker must never sleep with
//! tickets in its ring (a lost wake-up leaves it parked forever, which loom
//! reports as a deadlock).
#![cfg(aioproducer_loom)]

use loom::sync::Arc;
use loom::thread;
use loom_tests::*;

fn model() {
    let remote = Arc::new(Remote::new(2));
    let worker = {
        let remote = Arc::clone(&remote);
        thread::spawn(move || {
            remote.register_worker();
            let mut seen = 0;
            loop {
                seen += remote.drain(2, |_| true);
                if seen == 2 {
                    return;
                }
                remote.park();
            }
        })
    };
    let producers: Vec<_> = (0..2)
        .map(|i| {
            let remote = Arc::clone(&remote);
            thread::spawn(move || remote.push(Ticket::new(i, 0)).expect("room"))
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    worker.join().unwrap();
}

#[test]
fn worker_never_sleeps_with_tickets_in_its_ring() {
    check(model);
}

#[test]
#[ignore = "a seeded-bug twin, run by the test below in a child process"]
fn twin_skipped_park_recheck() {
    check_with_bug(Bug::SkipParkRecheck, model);
}

#[test]
fn wakeup_model_catches_a_worker_that_parks_without_looking() {
    assert_twin_fails("twin_skipped_park_recheck", "deadlock");
}
