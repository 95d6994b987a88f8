//! A seconds-long smoke run of the load generator (`tether::loadgen`, the library
//! behind `tether-load`; see docs/BENCHMARKS.md).
//!
//! It starts a server in-process on a temporary database and drives it for about
//! two seconds with a few live subscribers and two writers, then runs a tiny
//! catch-up and the machine-limit probes. It asserts that the generator works —
//! no errors, every acknowledged op reached every subscriber exactly once — never
//! how fast anything is: benchmarks are not timed tests.
#![cfg(feature = "loadgen")]

use std::{path::PathBuf, time::Duration};

use tether::{
    loadgen::{self, limits, LoadConfig, OpKind, Scenario},
    model::Uid,
    server::{config::Config, http, RunningServer},
};

/// A server on a fresh database in its own directory, removed when dropped.
struct Server {
    running: Option<RunningServer>,
    dir: PathBuf,
}

impl Server {
    async fn start() -> Server {
        let dir = std::env::temp_dir().join(format!("tether-load-smoke-{}", Uid::new()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = Config {
            addr: ([127, 0, 0, 1], 0).into(),
            log: "warn".into(),
            site_root: dir.join("site"),
            ..Config::default()
        };
        config.database.url = format!("sqlite://{}", dir.join("smoke.db").display());
        // The default 50 pushes per second per client is below what a writer sends.
        config.sync.max_pushes_per_second = 1_000_000;
        let running = http::start(config).await.expect("the server starts");
        Server {
            running: Some(running),
            dir,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.running.as_ref().unwrap().addr)
    }

    async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown(Duration::from_secs(5)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn quick(scenario: Scenario, url: &str) -> LoadConfig {
    let mut config = LoadConfig::scenario(scenario, url);
    config.progress = false;
    config.limits = false;
    config.settle = Duration::from_millis(100);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_seconds_of_load_reach_every_subscriber() {
    let server = Server::start().await;
    let mut config = quick(Scenario::Custom, &server.url());
    config.subscribers = 4;
    config.writers = 2;
    config.rate = 100.0;
    config.batch = 5;
    config.duration = Duration::from_secs(2);
    let report = tokio::time::timeout(Duration::from_secs(60), loadgen::run(&config))
        .await
        .expect("the run ends in time")
        .expect("the run completes");
    let run = report.run.as_ref().expect("a live run");
    assert!(report.verified(), "{}", report.to_table());
    assert_eq!(report.error_total, 0, "{:?}", report.errors);
    assert_eq!(run.subscribers, 4);
    assert!(run.acked_ops >= 100, "{} ops acknowledged", run.acked_ops);
    let d = &run.delivery;
    assert_eq!((d.missing, d.duplicates, d.unknown), (0, 0, 0));
    assert_eq!(
        d.delivered,
        run.acked_ops * 4,
        "every op reached every subscriber"
    );
    assert_eq!(run.fanout.count, d.delivered);
    assert_eq!(d.to_all.count, run.acked_ops);
    assert!(report.traffic.ws_received > 0 && report.traffic.http_sent > 0);
    // The table and the JSON carry the same run.
    assert!(report
        .to_table()
        .contains("every acknowledged op reached every subscriber"));
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["run"]["delivery"]["missing"], 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_creates_and_the_limit_probes_work() {
    let server = Server::start().await;

    // A late client pulls and applies 300 changes (in pages of the default size).
    let mut config = quick(Scenario::Catchup, &server.url());
    config.changes = 300;
    config.repeat = 1;
    let report = loadgen::run(&config).await.expect("catch-up completes");
    let catchup = report.catchup.as_ref().expect("a catch-up report");
    assert!(report.verified(), "{}", report.to_table());
    assert_eq!((catchup.changes, catchup.pages), (300, 1));
    assert!(catchup.bytes_gzip > 0 && catchup.bytes_gzip < catchup.bytes_identity);
    assert!(catchup.live_bytes > 0);

    // Creates: two field ops per op, one subscriber, as fast as acknowledged.
    let mut config = quick(Scenario::Custom, &server.url());
    config.subscribers = 1;
    config.rate = 0.0;
    config.batch = 20;
    config.op = OpKind::Create;
    config.duration = Duration::from_millis(500);
    let report = loadgen::run(&config).await.expect("the run completes");
    let run = report.run.as_ref().unwrap();
    assert!(report.verified(), "{}", report.to_table());
    assert!(run.acked_ops > 0);
    assert_eq!(run.field_ops_per_s, run.ops_per_s * 2.0);
    server.stop().await;

    // The bare limits, tiny.
    let payload = limits::sample_changes_message();
    assert!(limits::ws_echo(&payload, 20).await.unwrap().count > 0);
    let b = limits::ws_broadcast(&payload, 3, 2, 3).await.unwrap();
    assert_eq!((b.per_delivery.count, b.to_all.count), (6, 2));
    assert!(limits::sqlite_insert(300, 100).await.unwrap().rows_per_s > 0.0);
    let read = limits::sqlite_read(300, 100, 1).await.unwrap();
    assert!(read.bytes > 0);
}
