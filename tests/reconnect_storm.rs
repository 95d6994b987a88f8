//! The reconnect storm in small (issue 7, item 6; the 1,000-client run is
//! `make bench-storm`, docs/BENCHMARKS.md).
//!
//! 100 live clients of one list, each with its own client id and replica, lose
//! their sockets at the same moment while a writer keeps creating todos; they come
//! back with the browser's jittered backoff and subscribe from their cursors. Two
//! ways to drop them:
//!
//! * from the server's side: the in-process server shuts down (every socket gets
//!   close 1001), stays down for a moment, and a new one starts on the same
//!   database file and port;
//! * from the clients' side: the server stays up and every client closes its TCP
//!   connection at once without a close frame, so the server must notice 100 dead
//!   sockets and forget them.
//!
//! Both assert that all 100 are back, that every client's replica equals a fresh
//! pull and received every version exactly once (no gap, no duplicate), that every
//! acknowledged op reached every client once, and that the server's own count of
//! live subscribers is 100 after the storm and 0 once the clients leave. Nothing
//! is timed except against generous timeouts: every wait is for a condition.

#![cfg(feature = "loadgen")]

mod common;

use std::time::Duration;

use common::TempDir;
use tether::{
    loadgen::{self, ControlError, DropMode, LoadConfig, Restart, Scenario, ServerControl},
    model::Uid,
    server::{config::Config, http, RunningServer},
};
use tokio::time::Instant;

/// An in-process server that the storm can restart on the same file and port.
struct InProcess {
    config: Config,
    running: Option<RunningServer>,
}

impl InProcess {
    async fn start(dir: &TempDir) -> InProcess {
        let config = common::config(dir.path());
        let running = http::start(config.clone())
            .await
            .expect("the server starts");
        // The restart must come back on the same port (clients reconnect to the
        // same address): bind it explicitly from now on.
        let config = Config {
            addr: running.addr,
            ..config
        };
        InProcess {
            config,
            running: Some(running),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.config.addr)
    }

    async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown(Duration::from_secs(5)).await;
        }
    }
}

impl ServerControl for InProcess {
    /// The server shares this process with the clients: its memory is not its own.
    fn pid(&self) -> Option<u32> {
        None
    }

    fn live_subscribers(&self, list: Uid) -> Option<usize> {
        self.running.as_ref().map(|r| r.state.hub.subscribers(list))
    }

    async fn restart(&mut self, mode: DropMode, down: Duration) -> Result<Restart, ControlError> {
        assert_eq!(
            mode,
            DropMode::Term,
            "in-process, a stop is a graceful shutdown"
        );
        let start = Instant::now();
        let running = self.running.take().ok_or(ControlError::NotRunning)?;
        running.shutdown(Duration::from_secs(5)).await;
        let gone = start.elapsed();
        tokio::time::sleep(down).await;
        // tokio's listener sets SO_REUSEADDR, so the port binds again at once even
        // with the old connections in TIME_WAIT.
        let running = http::start(self.config.clone())
            .await
            .map_err(|e| ControlError::Start(e.into()))?;
        self.running = Some(running);
        Ok(Restart {
            down: gone,
            up: start.elapsed(),
        })
    }
}

/// 100 clients, a writer at 50 creates/s for 3 s, the drop 1 s in.
fn storm_config(url: &str, drop: DropMode) -> LoadConfig {
    let mut config = LoadConfig::scenario(Scenario::Storm, url);
    config.subscribers = 100;
    config.rate = 50.0;
    config.duration = Duration::from_secs(3);
    config.drop_after = Duration::from_secs(1);
    config.drop = drop;
    // Down for 300 ms: the first attempts (250–500 ms after the drop) partly fail,
    // so the retries with a doubled backoff are exercised too.
    config.down = Duration::from_millis(300);
    config.changes = 20;
    config.progress = false;
    // Fixed, so a failure replays with the same waits.
    config.seed = Some(7);
    config
}

async fn storm(config: &LoadConfig, server: &mut InProcess) -> loadgen::Report {
    tokio::time::timeout(Duration::from_secs(60), loadgen::run_storm(config, server))
        .await
        .expect("the storm ends in time")
        .expect("the storm runs")
}

/// What both ways of dropping must show.
fn assert_everyone_back_and_converged(report: &loadgen::Report) {
    let table = report.to_table();
    // Shown with --nocapture (and by the harness when the test fails).
    println!("{table}");
    let s = report.storm.as_ref().expect("a storm report");
    assert!(report.verified(), "{table}");
    assert_eq!(report.error_total, 0, "{:?}\n{table}", report.errors);
    assert_eq!(s.back, 100, "{table}");
    assert_eq!(s.reconnect.count, 100, "{table}");
    let c = &s.convergence;
    assert_eq!((c.clients, c.converged), (100, 100), "{table}");
    assert_eq!(
        (
            c.missing_versions,
            c.repeated_versions,
            c.unexpected_versions
        ),
        (0, 0, 0),
        "{table}"
    );
    // The 20 seeded todos and every op, each a version every client received.
    assert_eq!(c.nodes as u64, 20 + s.acked_ops, "{table}");
    assert_eq!(c.versions, c.nodes, "{table}");
    assert!(s.acked_ops >= 100, "{table}");
    let d = &c.delivery;
    assert_eq!((d.missing, d.duplicates, d.unknown), (0, 0, 0), "{table}");
    assert_eq!(d.delivered, s.acked_ops * 100, "{table}");
    assert_eq!(c.unacknowledged, 0, "{table}");
    // The server's own count: 100 following before and after, none once they left.
    assert_eq!(s.live.connected, Some(100), "{table}");
    assert_eq!(s.live.after_storm, Some(100), "{table}");
    assert_eq!(s.live.after_leave, Some(0), "{table}");
    // Jitter: the 100 first attempts are spread over 250 ms, not one burst (the
    // busiest 100 ms holds about 40 of them; all 100 would mean no jitter).
    assert!(
        s.first_attempt.max_ms - s.first_attempt.min_ms >= 100.0,
        "{table}"
    );
    assert!(s.busiest_bucket_attempts <= 80, "{table}");
    // Each came back within its first few backoffs (the waits alone of four
    // attempts add up to at most 7.5 s).
    assert!(s.max_attempts_per_client <= 4, "{table}");
    // Every client caught up on what it missed while away.
    assert!(s.caught_up.total > 0, "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_clients_dropped_by_a_server_restart_come_back_and_converge() {
    let dir = TempDir::new();
    let mut server = InProcess::start(&dir).await;
    let config = storm_config(&server.url(), DropMode::Term);
    let report = storm(&config, &mut server).await;
    assert_everyone_back_and_converged(&report);
    let s = report.storm.as_ref().unwrap();
    let table = report.to_table();
    // Down 300 ms: the clients that tried before the new server was up failed
    // and tried again, and the writer's pushes of that moment were retried.
    assert!(s.server_up_ms.unwrap() >= 300.0, "{table}");
    assert!(s.reconnect.min_ms >= 300.0, "{table}");
    assert!(s.failed_attempts > 0, "{table}");
    assert_eq!(s.attempts, 100 + s.failed_attempts, "{table}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_clients_dropping_their_connections_at_once_come_back_and_converge() {
    let dir = TempDir::new();
    let mut server = InProcess::start(&dir).await;
    let config = storm_config(&server.url(), DropMode::Client);
    let report = storm(&config, &mut server).await;
    assert_everyone_back_and_converged(&report);
    let s = report.storm.as_ref().unwrap();
    let table = report.to_table();
    // The server stayed up: every first attempt succeeded, no push failed, and
    // the 100 dead sockets were forgotten (the count came back to exactly 100).
    assert_eq!(s.server_up_ms, None, "{table}");
    assert_eq!((s.attempts, s.failed_attempts), (100, 0), "{table}");
    assert!(s.push_failures.is_empty(), "{table}");
    server.stop().await;
}
