//! Latency histograms, error tallies and byte counters, shared by many tasks.
//!
//! A [`Histogram`] records nanoseconds into log-linear buckets (128 per power of
//! two, so any percentile is within 0.8 % of the true value) made of atomics: five
//! thousand subscribers record into one histogram without a lock, and its memory
//! (30 KB) does not grow with the number of samples, however long the run.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Mutex,
    },
    time::Duration,
};

use serde::Serialize;

/// Significant bits kept per value: relative error ≤ 2^-7.
const SIG_BITS: u32 = 7;
const LINEAR: u64 = 1 << SIG_BITS;
const HALF: u64 = LINEAR / 2;
const BUCKETS: usize = (LINEAR + (64 - SIG_BITS as u64) * HALF) as usize;

/// Where `value` goes: exact below 128, then 64 buckets per power of two.
fn bucket_of(value: u64) -> usize {
    if value < LINEAR {
        return value as usize;
    }
    let exp = 63 - value.leading_zeros() - (SIG_BITS - 1);
    (LINEAR + u64::from(exp - 1) * HALF + ((value >> exp) - HALF)) as usize
}

/// The middle of bucket `index`'s range.
fn value_of(index: usize) -> u64 {
    let index = index as u64;
    if index < LINEAR {
        return index;
    }
    let exp = (index - LINEAR) / HALF + 1;
    let mantissa = (index - LINEAR) % HALF + HALF;
    (mantissa << exp) + ((1 << exp) >> 1)
}

/// A lock-free latency histogram in nanoseconds.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn record(&self, value: Duration) {
        self.record_ns(u64::try_from(value.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn record_ns(&self, ns: u64) {
        self.buckets[bucket_of(ns)].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum.fetch_add(ns, Relaxed);
        self.min.fetch_min(ns, Relaxed);
        self.max.fetch_max(ns, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// The value below which a fraction `q` of the samples lie (0 if empty).
    pub fn quantile_ns(&self, q: f64) -> u64 {
        let count = self.count();
        if count == 0 {
            return 0;
        }
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (index, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Relaxed);
            if seen >= rank {
                // A bucket's middle may lie past the largest sample seen.
                let (min, max) = (self.min.load(Relaxed), self.max.load(Relaxed));
                return value_of(index).clamp(min, max);
            }
        }
        self.max.load(Relaxed)
    }

    /// Count, mean and percentiles, in milliseconds.
    pub fn summary(&self) -> Summary {
        let count = self.count();
        let ms = |ns: u64| ns as f64 / 1e6;
        Summary {
            count,
            min_ms: if count == 0 {
                0.0
            } else {
                ms(self.min.load(Relaxed))
            },
            mean_ms: if count == 0 {
                0.0
            } else {
                ms(self.sum.load(Relaxed)) / count as f64
            },
            p50_ms: ms(self.quantile_ns(0.50)),
            p90_ms: ms(self.quantile_ns(0.90)),
            p99_ms: ms(self.quantile_ns(0.99)),
            p999_ms: ms(self.quantile_ns(0.999)),
            max_ms: ms(self.max.load(Relaxed)),
        }
    }
}

/// A latency distribution as reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// Errors by code (a `SyncError` code, or the loadgen's own, e.g. `ws_closed`).
#[derive(Debug, Default)]
pub struct Errors {
    by_code: Mutex<BTreeMap<String, u64>>,
}

impl Errors {
    pub fn add(&self, code: &str) {
        self.add_n(code, 1);
    }

    pub fn add_n(&self, code: &str, n: u64) {
        if n == 0 {
            return;
        }
        let mut map = self.by_code.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(code.to_string()).or_default() += n;
    }

    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.by_code
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Payload bytes: HTTP bodies and WebSocket message payloads (headers and framing
/// are not counted).
#[derive(Debug, Default)]
pub struct Traffic {
    pub http_sent: AtomicU64,
    pub http_received: AtomicU64,
    pub ws_sent: AtomicU64,
    pub ws_received: AtomicU64,
}

impl Traffic {
    pub fn add(counter: &AtomicU64, bytes: usize) {
        counter.fetch_add(bytes as u64, Relaxed);
    }

    pub fn snapshot(&self) -> TrafficReport {
        TrafficReport {
            http_sent: self.http_sent.load(Relaxed),
            http_received: self.http_received.load(Relaxed),
            ws_sent: self.ws_sent.load(Relaxed),
            ws_received: self.ws_received.load(Relaxed),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct TrafficReport {
    pub http_sent: u64,
    pub http_received: u64,
    pub ws_sent: u64,
    pub ws_received: u64,
}

/// The median of some durations (the upper one of an even count).
pub fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order_and_within_one_percent() {
        let mut last = 0;
        for v in (0..5_000).chain([1 << 20, 123_456_789, u64::MAX / 3, u64::MAX]) {
            let b = bucket_of(v);
            assert!(b < BUCKETS && b >= last, "{v}");
            last = b;
            let mid = value_of(b) as f64;
            assert!(
                (mid - v as f64).abs() <= v as f64 / 128.0 + 0.5,
                "{v} → {mid}"
            );
        }
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let h = Histogram::default();
        assert_eq!(h.summary(), Summary::default());
        for v in 1..=1000u64 {
            h.record_ns(v * 1000);
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        let close = |got: f64, want: f64| (got - want).abs() <= want / 100.0;
        assert!(close(s.p50_ms, 0.5), "{s:?}");
        assert!(close(s.p99_ms, 0.99), "{s:?}");
        assert_eq!((s.min_ms, s.max_ms), (0.001, 1.0));
        assert!(close(s.mean_ms, 0.5005));
    }

    #[test]
    fn errors_tally_by_code() {
        let e = Errors::default();
        e.add("rate_limited");
        e.add_n("missing_delivery", 3);
        e.add_n("never", 0);
        assert_eq!(e.total(), 4);
        assert_eq!(e.snapshot().len(), 2);
    }
}
