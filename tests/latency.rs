//! `stats().latency`: the enqueue-to-report latency of one record in 64,
//! against a cluster whose broker answers after 5 ms.

mod common;

use std::time::Duration;

use aioproducer::Record;
use common::{builder, cluster};

#[test]
fn one_record_in_64_is_timed_from_its_call_to_its_report() {
    let cluster = cluster("latency", 3);
    cluster
        .mock()
        .broker_round_trip_time(1, Duration::from_millis(5))
        .unwrap();
    let producer = builder(&cluster).build().unwrap();
    assert_eq!(producer.stats().latency.samples, 0);
    const RECORDS: usize = 6_400;
    for round in 0..RECORDS / 640 {
        let futures: Vec<_> = (0..640)
            .map(|i| {
                producer
                    .try_produce(Record::new("latency").with_payload(format!("{round}-{i}")))
                    .unwrap()
            })
            .collect();
        for f in futures {
            f.wait().unwrap();
        }
    }
    let latency = producer.stats().latency;
    // One in 64 of the uses of each slot, whatever slots the pool hands out.
    assert!(
        (RECORDS as u64 / 64 / 2..=RECORDS as u64 / 64 * 2).contains(&latency.samples),
        "{latency:?}"
    );
    // Every report waited for the broker's 5 ms; none for seconds.
    assert!(latency.p50 >= Duration::from_millis(5), "{latency:?}");
    assert!(
        latency.p50 <= latency.p99 && latency.p99 <= latency.p999,
        "{latency:?}"
    );
    assert!(
        latency.p999.as_nanos() <= latency.max.as_nanos() * 5 / 4,
        "{latency:?}"
    );
    assert!(latency.max < Duration::from_secs(5), "{latency:?}");
}
