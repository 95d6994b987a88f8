//! Latency histograms, error tallies and byte counters, shared by many tasks.
//!
//! A [`Histogram`] is an HdrHistogram (the `hdrhistogram` crate) of nanoseconds
//! with two significant digits (any percentile within 1 % of the true value, in
//! under 40 KB whatever the number of samples), plus the exact smallest and largest
//! sample, behind a mutex: five thousand subscribers record into one histogram,
//! each holding the lock for a few counter updates.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Mutex, MutexGuard,
    },
    time::Duration,
};

use serde::Serialize;

/// The longest latency told apart from longer ones: an hour (longer ones count
/// as an hour in the percentiles; the maximum stays exact).
const HIGHEST_NS: u64 = 3_600_000_000_000;
/// Significant decimal digits kept per value.
const SIGNIFICANT_DIGITS: u8 = 2;

/// A latency histogram in nanoseconds that many tasks record into.
pub struct Histogram(Mutex<Recorded>);

struct Recorded {
    histogram: hdrhistogram::Histogram<u64>,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        let histogram = hdrhistogram::Histogram::new_with_bounds(1, HIGHEST_NS, SIGNIFICANT_DIGITS)
            .expect("the histogram's bounds are valid");
        Histogram(Mutex::new(Recorded {
            histogram,
            min: u64::MAX,
            max: 0,
        }))
    }
}

impl Histogram {
    pub fn record(&self, value: Duration) {
        self.record_ns(u64::try_from(value.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn record_ns(&self, ns: u64) {
        let mut r = self.lock();
        r.histogram.saturating_record(ns);
        r.min = r.min.min(ns);
        r.max = r.max.max(ns);
    }

    pub fn count(&self) -> u64 {
        self.lock().histogram.len()
    }

    fn lock(&self) -> MutexGuard<'_, Recorded> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count, mean and percentiles, in milliseconds (all 0 when empty).
    pub fn summary(&self) -> Summary {
        let r = self.lock();
        let h = &r.histogram;
        if h.is_empty() {
            return Summary::default();
        }
        let ms = |ns: u64| ns as f64 / 1e6;
        // A bucket's top may lie past the largest sample seen.
        let quantile = |q: f64| ms(h.value_at_quantile(q).clamp(r.min, r.max));
        Summary {
            count: h.len(),
            min_ms: ms(r.min),
            mean_ms: h.mean() / 1e6,
            p50_ms: quantile(0.50),
            p90_ms: quantile(0.90),
            p99_ms: quantile(0.99),
            p999_ms: quantile(0.999),
            max_ms: ms(r.max),
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
        assert!(close(s.p999_ms, 0.999), "{s:?}");
        assert_eq!((s.min_ms, s.max_ms), (0.001, 1.0));
        assert!(close(s.mean_ms, 0.5005), "{s:?}");
        // Longer than the histogram tells apart: counted, its maximum exact.
        h.record(Duration::from_secs(7_200));
        let s = h.summary();
        assert_eq!((s.count, s.max_ms), (1001, 7_200_000.0));
        assert!(close(s.p999_ms, 1.0), "{s:?}");
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
