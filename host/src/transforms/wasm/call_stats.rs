//! What a transform counts about its plugin calls beyond plain totals:
//! how long they took, as a histogram of fixed buckets, and why failed
//! calls failed, one counter per [`PluginError::reason`] word. Relaxed
//! atomics only: recording is a few adds, never a lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::sandbox::PluginError;

/// Upper bounds of the call-time buckets, µs (and `+Inf` after them).
pub const CALL_TIME_BOUNDS_US: [u64; 14] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000,
];

/// Plugin call times: calls per bucket (not cumulative; the last is
/// `+Inf`), their count and sum.
#[derive(Debug, Default)]
pub struct CallTimes {
    buckets: [AtomicU64; CALL_TIME_BOUNDS_US.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl CallTimes {
    pub fn record(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let k = CALL_TIME_BOUNDS_US.partition_point(|&b| b < us);
        self.buckets[k].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Calls per bucket, cumulative (`le` each bound, then `+Inf`).
    pub fn cumulative(&self) -> [u64; CALL_TIME_BOUNDS_US.len() + 1] {
        let mut total = 0;
        std::array::from_fn(|k| {
            total += self.buckets[k].load(Ordering::Relaxed);
            total
        })
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn sum_us(&self) -> u64 {
        self.sum_us.load(Ordering::Relaxed)
    }
}

/// Failed calls by reason, in the order of [`PluginError::REASONS`].
#[derive(Debug, Default)]
pub struct FailureReasons([AtomicU64; PluginError::REASONS.len()]);

impl FailureReasons {
    pub fn add(&self, error: &PluginError) {
        let reason = error.reason();
        if let Some(k) = PluginError::REASONS.iter().position(|r| *r == reason) {
            self.0[k].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Each reason with its count.
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        (PluginError::REASONS.iter())
            .zip(&self.0)
            .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_times_fall_in_their_buckets() {
        let t = CallTimes::default();
        t.record(Duration::from_micros(100));
        t.record(Duration::from_micros(101));
        t.record(Duration::from_secs(10));
        let c = t.cumulative();
        assert_eq!((c[0], c[1], c[13], c[14]), (1, 2, 2, 3));
        assert_eq!((t.count(), t.sum_us()), (3, 10_000_201));
    }

    #[test]
    fn every_reason_has_a_counter() {
        let f = FailureReasons::default();
        f.add(&PluginError::Trap("x".into()));
        f.add(&PluginError::Trap("y".into()));
        f.add(&PluginError::Deadline(Duration::from_secs(1)));
        let got: Vec<_> = f.counts().filter(|(_, n)| *n > 0).collect();
        assert_eq!(got, [("deadline", 1), ("trap", 2)]);
    }
}
