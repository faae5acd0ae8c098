//! Which worker takes a record.
//!
//! Records with an explicit partition go to the worker chosen by (topic,
//! partition); keyed records by (topic, key). One key or one partition is
//! therefore always drained by one worker, in the order its callers pushed,
//! which is what per-key ordering needs with many workers. Unkeyed records
//! are spread round-robin by a per-thread counter (no shared write).

use std::cell::Cell;

use crate::record::Record;

/// FNV-1a, 64-bit: short inputs, no allocation, no per-process seed (the
/// choice must only be stable within one producer).
fn fnv1a(state: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(state, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

thread_local! {
    static NEXT: Cell<usize> = const { Cell::new(0) };
}

/// The worker (of `workers`) that takes `record`.
pub(crate) fn worker_for(record: &Record, workers: usize) -> usize {
    if workers == 1 {
        return 0;
    }
    let topic = fnv1a(FNV_OFFSET, record.topic().as_bytes());
    let hash = match (record.partition(), record.key()) {
        (Some(partition), _) => fnv1a(topic, &partition.to_le_bytes()),
        (None, Some(key)) => fnv1a(topic, key),
        (None, None) => {
            return NEXT.with(|next| {
                let n = next.get().wrapping_add(1);
                next.set(n);
                n % workers
            })
        }
    };
    (hash % workers as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_always_maps_to_one_worker_and_keys_spread() {
        let pick = |key: String| worker_for(&Record::new("t").with_key(key), 4);
        for k in 0..100 {
            assert_eq!(pick(format!("k{k}")), pick(format!("k{k}")));
        }
        let mut used = [false; 4];
        for k in 0..100 {
            used[pick(format!("k{k}"))] = true;
        }
        assert!(used.iter().all(|&u| u), "100 keys reach every worker");
    }

    #[test]
    fn unkeyed_records_rotate() {
        let picks: Vec<usize> = (0..4).map(|_| worker_for(&Record::new("t"), 4)).collect();
        let mut sorted = picks.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2, 3], "{picks:?}");
    }
}
