//! Per scenario: which of this machine's limits to measure, which Tether figure
//! each one is compared with, and the targets.

use super::{
    config::{LoadConfig, Scenario},
    limits::{self, Limits},
    report::{Ratio, Report, Target},
    stats::Errors,
};

/// Batches the server's writer commits together at most (`server::sync`): a full
/// group is the biggest transaction Tether makes.
const GROUP_MAX_BATCHES: usize = 64;
/// Echo round trips measured.
const ECHO_ROUNDS: usize = 10_000;
/// Rows inserted for a limit: at least this many…
const MIN_INSERT_ROWS: usize = 20_000;
/// …and at most this many (the rows are held in memory).
const MAX_INSERT_ROWS: usize = 100_000;

/// Measures the limits `config.scenario` is compared with. A failed measurement is
/// counted as an error and left out.
pub async fn measure_limits(config: &LoadConfig, errors: &Errors) -> Limits {
    let payload = limits::sample_changes_message();
    let mut out = Limits::default();
    let (echo, broadcast_to, insert, read) = match config.scenario {
        Scenario::Custom | Scenario::Fanout => {
            (true, Some((config.subscribers, 200)), false, false)
        }
        Scenario::Connections => (true, Some((config.subscribers, 10)), false, false),
        Scenario::Ingest => (false, None, true, false),
        Scenario::Catchup => (false, None, false, true),
        // The storm is judged by its own figures (reconnect times, convergence,
        // memory coming back), not against a bare limit.
        Scenario::Storm => (false, None, false, false),
        Scenario::Limits => (true, Some((config.subscribers, 200)), true, true),
    };
    let note = |what: &str, e: limits::LimitError| {
        eprintln!("limit `{what}` failed: {e}");
        errors.add("limit_failed");
    };
    if echo {
        eprintln!("measuring: bare WebSocket echo");
        match limits::ws_echo(&payload, ECHO_ROUNDS).await {
            Ok(s) => out.ws_echo_rtt = Some(s),
            Err(e) => note("ws_echo", e),
        }
    }
    if let Some((sockets, rounds)) = broadcast_to.filter(|(n, _)| *n > 0) {
        eprintln!("measuring: bare WebSocket broadcast to {sockets}");
        match limits::ws_broadcast(&payload, sockets, rounds, config.connect_concurrency).await {
            Ok(b) => out.ws_broadcast = Some(b),
            Err(e) => note("ws_broadcast", e),
        }
    }
    if insert {
        let per_push = config.batch;
        let per_group = config.batch * config.writers.clamp(1, GROUP_MAX_BATCHES);
        for (rows_per_tx, slot) in [
            (per_push, &mut out.sqlite_insert_per_push),
            (per_group, &mut out.sqlite_insert_per_group),
        ] {
            let rows = (rows_per_tx * 20).clamp(MIN_INSERT_ROWS, MAX_INSERT_ROWS);
            eprintln!("measuring: bare SQLite insert, {rows} rows, {rows_per_tx} per transaction");
            match limits::sqlite_insert(rows, rows_per_tx).await {
                Ok(l) => *slot = Some(l),
                Err(e) => note("sqlite_insert", e),
            }
        }
    }
    if read {
        eprintln!("measuring: bare SQLite read of {} rows", config.changes);
        match limits::sqlite_read(config.changes, 1000, config.repeat).await {
            Ok(l) => out.sqlite_read = Some(l),
            Err(e) => note("sqlite_read", e),
        }
    }
    out
}

/// Each Tether figure of the report next to its limit.
pub fn ratios(report: &Report) -> Vec<Ratio> {
    let mut out = Vec::new();
    let l = &report.limits;
    if let Some(run) = report.run.as_ref().filter(|r| r.subscribers > 0) {
        if let Some(b) = &l.ws_broadcast {
            out.push(Ratio::new(
                "fan-out p50 vs bare broadcast p50",
                run.fanout.p50_ms,
                b.per_delivery.p50_ms,
                "ms",
                false,
            ));
            out.push(Ratio::new(
                "fan-out p99 vs bare broadcast p99",
                run.fanout.p99_ms,
                b.per_delivery.p99_ms,
                "ms",
                false,
            ));
            out.push(Ratio::new(
                "to all, max vs bare to all, max",
                run.delivery.to_all.max_ms,
                b.to_all.max_ms,
                "ms",
                false,
            ));
        }
        if let Some(echo) = &l.ws_echo_rtt {
            out.push(Ratio::new(
                "fan-out p99 vs echo round trip p99",
                run.fanout.p99_ms,
                echo.p99_ms,
                "ms",
                false,
            ));
        }
    }
    if let Some(run) = report.run.as_ref().filter(|r| r.acked_ops > 0) {
        for (name, limit) in [
            (
                "field ops/s vs bare insert, rows/push",
                &l.sqlite_insert_per_push,
            ),
            (
                "field ops/s vs bare insert, rows/group",
                &l.sqlite_insert_per_group,
            ),
        ] {
            if let Some(limit) = limit {
                out.push(Ratio::new(
                    name,
                    run.field_ops_per_s,
                    limit.rows_per_s,
                    "/s",
                    true,
                ));
            }
        }
    }
    if let (Some(per), Some(pair)) = (
        report.server.as_ref().and_then(|s| s.per_subscriber_kb),
        l.ws_broadcast.as_ref().and_then(|b| b.pair_kb),
    ) {
        out.push(Ratio::new(
            "memory per subscriber vs bare socket pair",
            per,
            pair,
            "KiB",
            false,
        ));
    }
    if let (Some(c), Some(read)) = (&report.catchup, &l.sqlite_read) {
        out.push(Ratio::new(
            "catch-up vs bare SQLite read",
            c.median.total_ms,
            read.ms,
            "ms",
            false,
        ));
        out.push(Ratio::new(
            "catch-up, server side vs bare SQLite read",
            c.median.server_ms,
            read.ms,
            "ms",
            false,
        ));
    }
    out
}

/// The targets for this scenario (on a 2-core machine).
pub fn targets(report: &Report) -> Vec<Target> {
    let mut out = Vec::new();
    match (report.scenario, &report.run, &report.catchup) {
        (Scenario::Fanout, Some(run), _) => {
            out.push(Target::at_most("fan-out p99", run.fanout.p99_ms, 5.0, "ms"));
        }
        (Scenario::Ingest, Some(run), _) => {
            out.push(Target::at_least(
                "acknowledged field ops/s",
                run.field_ops_per_s,
                50_000.0,
                "/s",
            ));
        }
        (Scenario::Catchup, _, Some(c)) => {
            out.push(Target::at_most(
                "catch-up (pull + apply)",
                c.median.total_ms,
                500.0,
                "ms",
            ));
        }
        (Scenario::Connections, Some(run), _) => {
            if let Some(per) = report.server.as_ref().and_then(|s| s.per_subscriber_kb) {
                // /proc reports KiB; the target is in KB.
                out.push(Target::at_most(
                    "server memory per idle subscriber",
                    per * 1.024,
                    10.0,
                    "KB",
                ));
            }
            out.push(Target::at_most(
                "one change to all subscribers (max)",
                run.delivery.to_all.max_ms,
                100.0,
                "ms",
            ));
        }
        _ => {}
    }
    if let Some(storm) = &report.storm {
        // "Reconnect within seconds": every client subscribed again within 5 s of
        // the drop (the server's restart included).
        out.push(Target::at_most(
            "every client subscribed again after the drop (max)",
            storm.reconnect.max_ms,
            5_000.0,
            "ms",
        ));
    }
    out
}
