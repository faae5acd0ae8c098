//! Shared harness for the loom models in `tests/`.
//!
//! Each protocol's model runs as is, where loom must find no failure in any
//! interleaving it explores; and as a *twin* with one seeded bug switched on
//! (`aioproducer::__internals::Bug`), where loom must find one. A twin is an
//! `#[ignore]`d test that a visible test runs in a child process of the same
//! test binary, asserting that it fails with loom's (or the model's) report:
//! loom may abort the process while unwinding from a detected bug, which an
//! in-process `#[should_panic]` could not observe.
#![cfg(aioproducer_loom)]

use std::process::Command;

pub use aioproducer::__internals::*;

/// Runs `model` under loom. loom reads `LOOM_MAX_PREEMPTIONS`,
/// `LOOM_CHECKPOINT_FILE`, `LOOM_LOG` and friends from the environment.
pub fn check<F>(model: F)
where
    F: Fn() + Sync + Send + 'static,
{
    activate(None);
    loom::model(model);
}

/// Runs `model` under loom with `bug` switched on (for twins).
pub fn check_with_bug<F>(bug: Bug, model: F)
where
    F: Fn() + Sync + Send + 'static,
{
    activate(Some(bug));
    loom::model(model);
}

/// Runs the `#[ignore]`d test `twin` of the calling test binary in a child
/// process and asserts that it failed, saying `expected`.
pub fn assert_twin_fails(twin: &str, expected: &str) {
    let exe = std::env::current_exe().expect("the test binary");
    let output = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            twin,
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .expect("run the twin");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("running 1 test"),
        "no twin named {twin} ran:\n{text}"
    );
    assert!(
        !output.status.success(),
        "loom found nothing with the bug of {twin} in place:\n{text}"
    );
    assert!(
        text.contains(expected),
        "{twin} failed, but without {expected:?}:\n{text}"
    );
}

/// A producer's shared state with one worker (which the model plays, or
/// leaves out), no size limits and no producer hand-over: `max_in_flight`
/// records under the bound, rings of `ring_capacity`.
pub fn one_worker(max_in_flight: usize, ring_capacity: usize) -> loom::sync::Arc<Shared> {
    loom::sync::Arc::new(Shared::new(SharedConfig {
        max_in_flight,
        workers: 1,
        ring_capacity,
        limits: SizeLimits::NONE,
        producers_hand_over: false,
    }))
}

/// A record for the models (its content does not matter to them).
pub fn record(tag: &'static str) -> aioproducer::Record {
    aioproducer::Record::new("loom").with_payload(tag)
}

/// Counts one delivered record's report, admitted under `parity`, as the
/// completion path does (its room freed, then the report counted).
pub fn report_one(ledger: &Ledger, parity: Parity) {
    ledger.free_room(1);
    let mut reported = Reported::default();
    reported.add(parity, true);
    ledger.complete(&reported);
}
