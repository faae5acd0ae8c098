//! Enqueue-to-report latency, sampled: one record in [`SAMPLE_EVERY`]
//! carries the time it entered its slot, and its completer adds the time
//! since to a histogram ([`LatencyStats`] in `Stats::latency`).
//!
//! Which record: the slot decides at `occupy` from its index and
//! generation, so a sampled record costs one clock read at each end and an
//! unsampled one costs nothing but the test of a bit (`SAMPLED` in the
//! slot's state, so the completer reads the time's line only for sampled
//! records). The histogram has four buckets per power of two of
//! nanoseconds; a percentile is its bucket's upper bound, at most 25% above
//! the true value.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::stats::LatencyStats;

/// One record in this many is timed (every one under loom, below).
#[cfg(not(aioproducer_loom))]
pub(crate) const SAMPLE_EVERY: u32 = 64;

/// Whether the use `generation` of slot number `slot` is timed.
#[cfg(not(aioproducer_loom))]
pub(crate) fn sampled(slot: u32, generation: u32) -> bool {
    slot.wrapping_add(generation) % SAMPLE_EVERY == 0
}

/// Under loom every use is timed: every slot model then takes the timed
/// path, whose enqueue time rides on the slot's occupy/claim pair (the
/// model `a_timed_records_enqueue_time_reaches_its_completer` and its twin).
#[cfg(aioproducer_loom)]
pub(crate) fn sampled(_slot: u32, _generation: u32) -> bool {
    true
}

/// Nanoseconds on a monotonic clock shared by every thread, never 0.
pub(crate) fn now_nanos() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
}

/// Buckets per power of two.
const SUB: u32 = 4;
/// Powers of two covered: up to 2^42 ns (73 minutes); longer goes in the
/// last bucket.
const POWERS: u32 = 42;
const BUCKETS: usize = (SUB * POWERS) as usize;

/// The histogram. Written by completers (`rdk:bg`, and a thread refusing a
/// record at hand-over), read by `stats()`.
#[derive(Debug)]
pub(crate) struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
    max: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
        }
    }
}

/// The bucket of `nanos`: four per power of two.
fn bucket(nanos: u64) -> usize {
    if nanos < u64::from(SUB) {
        return nanos as usize;
    }
    let power = 63 - nanos.leading_zeros(); // >= 2
    let sub = (nanos >> (power - 2)) & 3;
    ((power * SUB) as usize + sub as usize - 4).min(BUCKETS - 1)
}

/// The largest value of bucket `index`.
fn upper_bound(index: usize) -> u64 {
    if index < SUB as usize {
        return index as u64;
    }
    let (power, sub) = (
        (index + 4) as u32 / SUB,
        (index + 4) as u64 % u64::from(SUB),
    );
    ((4 + sub + 1) << (power - 2)) - 1
}

impl LatencyHistogram {
    /// Adds one latency.
    pub(crate) fn record(&self, nanos: u64) {
        // Relaxed: counters, read only for statistics.
        self.buckets[bucket(nanos)].fetch_add(1, Relaxed);
        self.max.fetch_max(nanos, Relaxed);
    }

    /// The percentiles of what was recorded so far.
    pub(crate) fn snapshot(&self) -> LatencyStats {
        // Relaxed: as above; a snapshot taken while records complete is
        // only roughly consistent, as every statistic here.
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let samples: u64 = counts.iter().sum();
        let at = |fraction: f64| {
            let rank = ((samples as f64 * fraction).ceil() as u64).max(1);
            let mut seen = 0;
            for (index, count) in counts.iter().enumerate() {
                seen += count;
                if seen >= rank {
                    return Duration::from_nanos(upper_bound(index));
                }
            }
            Duration::ZERO
        };
        if samples == 0 {
            return LatencyStats::default();
        }
        LatencyStats {
            samples,
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: Duration::from_nanos(self.max.load(Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lies_in_its_bucket_within_a_fifth() {
        for nanos in (0..100_000u64).chain([1 << 20, 3 << 30, 12_345_678_901]) {
            let index = bucket(nanos);
            let upper = upper_bound(index);
            assert!(upper >= nanos, "{nanos} in bucket {index} up to {upper}");
            assert!(
                upper as f64 <= (nanos as f64 * 1.25).max(3.0),
                "{nanos}: {upper}"
            );
            if index > 0 {
                assert!(
                    upper_bound(index - 1) < nanos,
                    "{nanos}: bucket {index} is the first"
                );
            }
        }
    }

    #[test]
    fn percentiles_come_from_the_recorded_values() {
        let histogram = LatencyHistogram::default();
        assert_eq!(histogram.snapshot(), LatencyStats::default());
        for micros in 1..=1000u64 {
            histogram.record(micros * 1000);
        }
        let stats = histogram.snapshot();
        assert_eq!(stats.samples, 1000);
        let within = |d: Duration, micros: u64| {
            let n = d.as_nanos() as f64;
            n >= micros as f64 * 1000.0 && n <= micros as f64 * 1000.0 * 1.25
        };
        assert!(within(stats.p50, 500), "{stats:?}");
        assert!(within(stats.p99, 990), "{stats:?}");
        assert!(within(stats.p999, 999), "{stats:?}");
        assert_eq!(stats.max, Duration::from_micros(1000));
    }

    #[test]
    fn one_use_in_sample_every_is_timed() {
        let timed = (0..64 * 100u32).filter(|&g| sampled(7, g)).count();
        assert_eq!(timed, 100);
        let fresh = (0..64 * 100u32).filter(|&i| sampled(i, 0)).count();
        assert_eq!(fresh, 100);
    }
}
