//! `tether-load`: a load generator that drives a running Tether server through the
//! documented protocol — `POST /api/push`, `POST /api/pull` and the `GET /api/live`
//! WebSocket — and measures what a user would feel.
//!
//! N live subscribers follow one list while W writers (each a real [`Replica`] with
//! its own client id) make ops at R ops/s, or as fast as the server acknowledges,
//! for D seconds. Every op writes a unique token as a todo's title, so each
//! subscriber can tell which op reached it and when; writers and subscribers share
//! one process and one monotonic clock. The report gives fan-out latency
//! percentiles, acknowledged ops/s, errors by code, bytes, the server's memory
//! (given its pid), this machine's bare limits measured in the same run, the ratios
//! to them and the targets — as a table and as JSON. Delivery is verified:
//! every acknowledged op must reach every subscriber exactly once.
//!
//! * [`config`] — the run's settings, scenarios and command line.
//! * [`api`] — the HTTP calls, with byte counts and typed errors.
//! * [`writers`] — replicas that make ops and push their outboxes.
//! * [`socket`] — opening a live socket and subscribing, for every client here.
//! * [`subscribers`] — live sockets that report what they receive.
//! * [`ledger`] — which op was made when and who received it.
//! * [`live`] — a run of writers and subscribers together (scenarios a, b, d).
//! * [`catchup`] — scenario c: a late client pulls and applies what it missed.
//! * [`limits`] — scenario f: bare WebSocket and bare SQLite on this machine.
//! * [`storm`] — the reconnect storm: N clients dropped at once come back with
//!   the browser's jittered backoff ([`backoff`]), each a [`reconnecting`] client
//!   with its own replica, while [`control`] restarts the server under them.
//! * [`scenarios`] — which limits each scenario needs; ratios and targets.
//! * [`stats`], [`rss`], [`cpu`], [`progress`], [`report`] — measuring and telling.
//!
//! [`Replica`]: crate::model::Replica

pub mod api;
pub mod backoff;
pub mod catchup;
pub mod config;
pub mod control;
pub mod cpu;
pub mod ledger;
pub mod limits;
pub mod live;
pub mod progress;
pub mod reconnecting;
pub mod report;
pub mod rss;
pub mod scenarios;
pub mod socket;
pub mod stats;
pub mod storm;
pub mod subscribers;
pub mod writers;

use std::sync::Arc;

pub use config::{parse_args, Args, DropMode, LoadConfig, OpKind, Scenario};
pub use control::{ControlError, Restart, ServerControl};
pub use report::Report;

use report::{Machine, ServerMemory};
use stats::{Errors, Traffic};

/// Why a run could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the server at {url} does not answer /healthz: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("the server at {url} answers /healthz with HTTP {status}")]
    Unhealthy {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("seeding the list failed: {0}")]
    Seeding(#[source] api::CallError),
    #[error("the catch-up failed: {0}")]
    Catchup(#[source] api::CallError),
    #[error("only {connected} of {wanted} clients subscribed within {within:?}")]
    NotSubscribed {
        connected: usize,
        wanted: usize,
        within: std::time::Duration,
    },
    #[error("the reference pull failed: {0}")]
    ReferencePull(#[source] api::CallError),
    #[error(transparent)]
    Control(#[from] ControlError),
}

fn empty_report(config: &LoadConfig) -> Report {
    Report {
        scenario: config.scenario,
        machine: Machine::detect(),
        config: config.clone(),
        run: None,
        catchup: None,
        storm: None,
        limits: Default::default(),
        errors: Default::default(),
        error_total: 0,
        traffic: Default::default(),
        server: None,
        ratios: Vec::new(),
        targets: Vec::new(),
    }
}

/// Runs the configured scenario against the server and reports.
pub async fn run(config: &LoadConfig) -> Result<Report, LoadError> {
    if config.scenario == Scenario::Storm {
        return storm_against_configured(config).await;
    }
    let traffic = Arc::new(Traffic::default());
    let errors = Arc::new(Errors::default());
    let mut server = config.server_pid.map(|pid| ServerMemory {
        pid,
        start: rss::read(pid),
        ..ServerMemory::default()
    });
    let mut report = empty_report(config);
    match config.scenario {
        Scenario::Limits | Scenario::Storm => {}
        Scenario::Catchup => {
            check_health(&config.url).await?;
            let c = catchup::run(config, traffic.clone(), &errors)
                .await
                .map_err(LoadError::Catchup)?;
            report.catchup = Some(c);
        }
        Scenario::Custom | Scenario::Fanout | Scenario::Ingest | Scenario::Connections => {
            check_health(&config.url).await?;
            let run = live::run(config, traffic.clone(), errors.clone(), &mut server).await?;
            report.run = Some(run);
        }
    }
    if let Some(server) = server.as_mut() {
        server.end = rss::read(server.pid);
    }
    report.server = server;
    if config.limits {
        report.limits = scenarios::measure_limits(config, &errors).await;
    }
    report.ratios = scenarios::ratios(&report);
    report.targets = scenarios::targets(&report);
    report.errors = errors.snapshot();
    report.error_total = errors.total();
    report.traffic = traffic.snapshot();
    Ok(report)
}

/// The storm against the server the command line names: one `tether-load` starts
/// itself (`--spawn-server`, so it can restart it), or a running one (then only
/// the clients can drop their sockets: `--drop client`).
async fn storm_against_configured(config: &LoadConfig) -> Result<Report, LoadError> {
    match &config.spawn_server {
        Some(bin) => {
            let mut server =
                control::SpawnedServer::start(bin, config.server_log.as_deref(), &config.url)
                    .await?;
            let report = run_storm(config, &mut server).await;
            server.stop().await;
            report
        }
        None if config.drop.restarts() => Err(ControlError::CannotRestart(config.drop).into()),
        None => {
            check_health(&config.url).await?;
            let mut attached = control::Attached {
                pid: config.server_pid,
            };
            run_storm(config, &mut attached).await
        }
    }
}

/// Runs the reconnect storm against the server `control` drives (also how a test
/// runs it against an in-process server) and reports.
pub async fn run_storm<C: ServerControl>(
    config: &LoadConfig,
    control: &mut C,
) -> Result<Report, LoadError> {
    let traffic = Arc::new(Traffic::default());
    let errors = Arc::new(Errors::default());
    let mut report = empty_report(config);
    let storm = storm::run(config, control, traffic.clone(), errors.clone()).await?;
    report.storm = Some(storm);
    report.targets = scenarios::targets(&report);
    report.errors = errors.snapshot();
    report.error_total = errors.total();
    report.traffic = traffic.snapshot();
    Ok(report)
}

async fn check_health(url: &str) -> Result<(), LoadError> {
    let response = reqwest::get(format!("{url}/healthz"))
        .await
        .map_err(|source| LoadError::Unreachable {
            url: url.to_string(),
            source,
        })?;
    match response.status() {
        status if status.is_success() => Ok(()),
        status => Err(LoadError::Unhealthy {
            url: url.to_string(),
            status,
        }),
    }
}
