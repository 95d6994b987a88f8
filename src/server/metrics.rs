//! What an operator sees of a node: `/metrics` in the Prometheus text format.
//!
//! Built on the `metrics` facade and `metrics-exporter-prometheus`: the rest of the
//! server records through the small functions here (one place names every metric),
//! and `GET /metrics` renders them. The recorder is global to the process, so
//! several servers in one process (the tests) share one set of figures.
//!
//! | metric | type | what |
//! | --- | --- | --- |
//! | `tether_pushes_total{result}` | counter | pushes answered, by `ok` or error code |
//! | `tether_ops_total{result}` | counter | ops in those pushes, `accepted` or `refused` |
//! | `tether_push_duration_seconds` | histogram | a push from queued to answered |
//! | `tether_live_subscribers` | gauge | live sockets following a list on this node |
//! | `tether_fanout_lag_seconds` | histogram | commit → changes handed to this node's live channel |
//! | `tether_notification_lag_seconds` | histogram | another node's commit → its announcement here |
//! | `tether_changes_feed_connected` | gauge | 1 while announcements from other nodes arrive |
//! | `tether_db_pool_connections{state}` | gauge | the store's connections, `open` and `idle` |
//! | `tether_writer_reads_again_total` | counter | lists whose nodes, read before their lock, another node changed before it was taken (PostgreSQL) |

use std::{sync::OnceLock, time::Duration, time::Instant};

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::model::wire::{PushAck, PushRequest, SyncError};

/// Histogram buckets in seconds: 0.1 ms to 10 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Installs the process's recorder (once) and returns the handle that renders it.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .expect("the buckets are not empty")
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

/// The text `/metrics` answers, with the pool gauges read now.
pub fn render(pool: (u32, usize)) -> String {
    let handle = handle();
    gauge!("tether_db_pool_connections", "state" => "open").set(f64::from(pool.0));
    gauge!("tether_db_pool_connections", "state" => "idle").set(pool.1 as f64);
    handle.render()
}

/// A push answered: its result, its ops, and how long it took from being queued.
pub fn push_done(req: &PushRequest, result: &Result<&PushAck, &SyncError>, queued: Instant) {
    let (result, ops) = match result {
        Ok(_) => ("ok", "accepted"),
        Err(e) => (e.code(), "refused"),
    };
    counter!("tether_pushes_total", "result" => result).increment(1);
    counter!("tether_ops_total", "result" => ops).increment(req.ops.len() as u64);
    histogram!("tether_push_duration_seconds").record(queued.elapsed().as_secs_f64());
}

/// A whole group of pushes failed to commit.
pub fn pushes_failed(count: usize) {
    counter!("tether_pushes_total", "result" => "unavailable").increment(count as u64);
}

pub fn live_subscribers(delta: i32) {
    gauge!("tether_live_subscribers").increment(f64::from(delta));
}

pub fn fanout_lag(lag: Duration) {
    histogram!("tether_fanout_lag_seconds").record(lag.as_secs_f64());
}

pub fn notification_lag(lag: Duration) {
    histogram!("tether_notification_lag_seconds").record(lag.as_secs_f64());
}

pub fn feed_connected(connected: bool) {
    gauge!("tether_changes_feed_connected").set(if connected { 1.0 } else { 0.0 });
}

/// Another node committed to a list between this writer's read of its nodes and
/// taking its lock, so what changed was read again.
pub fn read_again() {
    counter!("tether_writer_reads_again_total").increment(1);
}
