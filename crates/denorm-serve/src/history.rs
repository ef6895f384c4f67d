//! Each view's last hour, for the dashboard (`GET /ui`): per
//! [`BUCKET_SECONDS`] bucket, the freshness observations (commit → visible)
//! as a log-scaled histogram, and the output changes applied.
//!
//! A histogram bin is a factor of √2 wide ([`BINS`] of them from 100 µs to
//! about 20 minutes), so a percentile read from it is the upper bound of its
//! bin: within 41% above the true value, which is what a chart needs; the
//! exact distribution is `denorm_freshness_seconds` in `/metrics`. Memory is
//! bounded: at most [`BUCKETS`] buckets per view (an hour), older ones
//! dropped as time passes.

use std::collections::VecDeque;

/// Seconds per bucket.
pub const BUCKET_SECONDS: f64 = 10.0;
/// Buckets kept: one hour.
pub const BUCKETS: usize = 360;
/// Histogram bins per bucket.
pub const BINS: usize = 48;
/// The upper bound of the first bin (seconds).
const FIRST_BIN: f64 = 1e-4;

/// One bucket of a view's history.
#[derive(Debug, Clone, PartialEq)]
struct Bucket {
    /// `floor(unix seconds / BUCKET_SECONDS)`.
    index: i64,
    bins: [u32; BINS],
    changes: u64,
}

impl Bucket {
    fn new(index: i64) -> Self {
        Bucket { index, bins: [0; BINS], changes: 0 }
    }
}

/// One point of a view's freshness chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The bucket's start (unix seconds).
    pub at: f64,
    /// p50 and p99 freshness in seconds (bin upper bounds); `None` when no
    /// change reached the view in the bucket.
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub observations: u64,
    /// Output changes applied per second over the bucket.
    pub changes_per_second: f64,
}

/// A view's last hour.
#[derive(Debug, Clone, Default)]
pub struct ViewHistory {
    buckets: VecDeque<Bucket>,
}

/// The bin of an observation of `seconds`.
fn bin(seconds: f64) -> usize {
    if seconds.is_nan() || seconds <= FIRST_BIN {
        return 0;
    }
    let half_octaves = (2.0 * (seconds / FIRST_BIN).log2()).ceil();
    (half_octaves as usize).min(BINS - 1)
}

/// The upper bound of bin `i` (seconds).
pub fn bin_upper(i: usize) -> f64 {
    FIRST_BIN * 2f64.powf(i as f64 / 2.0)
}

impl ViewHistory {
    /// Records freshness observations and output changes at `now`.
    pub fn record(&mut self, now: f64, freshness: impl IntoIterator<Item = f64>, changes: u64) {
        let bucket = self.bucket(now);
        for seconds in freshness {
            bucket.bins[bin(seconds)] = bucket.bins[bin(seconds)].saturating_add(1);
        }
        bucket.changes += changes;
    }

    /// The bucket of `now`, created (and the hour's oldest dropped) as needed.
    fn bucket(&mut self, now: f64) -> &mut Bucket {
        let index = (now / BUCKET_SECONDS).floor() as i64;
        let newest = self.buckets.back().map(|b| b.index);
        if newest.is_none_or(|n| n < index) {
            self.buckets.push_back(Bucket::new(index));
        }
        while self.buckets.front().is_some_and(|b| b.index <= index - BUCKETS as i64) {
            self.buckets.pop_front();
        }
        // A clock that went back lands in the newest bucket.
        self.buckets.back_mut().expect("a bucket was just ensured")
    }

    /// The hour before `now`, one point per bucket that saw anything, oldest first.
    pub fn series(&self, now: f64) -> Vec<Point> {
        let current = (now / BUCKET_SECONDS).floor() as i64;
        self.buckets
            .iter()
            .filter(|b| b.index > current - BUCKETS as i64)
            .map(|b| {
                let observations: u64 = b.bins.iter().map(|&n| u64::from(n)).sum();
                Point {
                    at: b.index as f64 * BUCKET_SECONDS,
                    p50: quantile(&b.bins, observations, 0.50),
                    p99: quantile(&b.bins, observations, 0.99),
                    observations,
                    changes_per_second: b.changes as f64 / BUCKET_SECONDS,
                }
            })
            .collect()
    }
}

/// The upper bound of the bin holding the `q` quantile.
fn quantile(bins: &[u32; BINS], total: u64, q: f64) -> Option<f64> {
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, &n) in bins.iter().enumerate() {
        seen += u64::from(n);
        if seen >= rank {
            return Some(bin_upper(i));
        }
    }
    Some(bin_upper(BINS - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observation_lands_in_the_bin_whose_bound_covers_it_within_root_two() {
        for seconds in [0.00005, 0.0001, 0.00015, 0.003, 0.25, 1.0, 7.5, 300.0] {
            let upper = bin_upper(bin(seconds));
            assert!(upper >= seconds * 0.999_999, "{seconds} → {upper}");
            if seconds > FIRST_BIN {
                assert!(upper <= seconds * 2f64.sqrt() * 1.000_001, "{seconds} → {upper}");
            }
        }
        assert_eq!(bin(f64::NAN), 0);
        assert_eq!(bin(1e9), BINS - 1);
    }

    #[test]
    fn percentiles_per_bucket_and_changes_per_second() {
        let mut h = ViewHistory::default();
        let t = 1_000_000.0;
        h.record(t, (1..=99).map(|_| 0.002).chain([3.0]), 500);
        h.record(t + 5.0, [], 100);
        h.record(t + 12.0, [0.02], 10);
        let series = h.series(t + 12.0);
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].observations, 100);
        assert_eq!(series[0].p50, Some(bin_upper(bin(0.002))));
        assert_eq!(series[0].p99, Some(bin_upper(bin(0.002))), "the 99th of 100 is the last 2 ms one");
        assert_eq!(series[0].changes_per_second, 60.0);
        assert_eq!(series[1].p99, Some(bin_upper(bin(0.02))));
        assert!(ViewHistory::default().series(t).is_empty());
    }

    #[test]
    fn only_the_last_hour_is_kept() {
        let mut h = ViewHistory::default();
        let t = 10_000.0;
        for i in 0..(2 * BUCKETS) {
            h.record(t + i as f64 * BUCKET_SECONDS, [0.01], 1);
        }
        assert_eq!(h.buckets.len(), BUCKETS);
        let now = t + (2 * BUCKETS - 1) as f64 * BUCKET_SECONDS;
        assert_eq!(h.series(now).len(), BUCKETS);
        assert!(h.series(now + 3600.0).is_empty(), "an hour later nothing is recent");
        // A clock that goes back records into the newest bucket.
        h.record(t, [0.01], 1);
        assert_eq!(h.buckets.len(), BUCKETS);
    }
}
