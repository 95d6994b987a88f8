//! A live run: W writers and N subscribers on one fresh list (scenarios a, b, d).
//!
//! In order: the writers seed their todos; the subscribers connect and subscribe
//! from the seeded version (so catch-up is not measured here) and sit idle for
//! `settle` while the server's memory is read; then the writers write for
//! `duration`, flush, and the run waits (at most `drain`) until every acknowledged
//! op has reached every subscriber. Only then do the subscribers close, and the
//! ledger tells what arrived.
//!
//! Against several nodes, `TETHER_LOAD_SUBSCRIBE_URLS` and `TETHER_LOAD_WRITE_URLS`
//! (comma-separated base URLs) spread subscribers and writers over them in turn.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use tokio::{sync::watch, task::JoinHandle, time::Instant};

use super::{
    api::Api,
    config::LoadConfig,
    cpu,
    ledger::Ledger,
    progress::{self, Watch},
    report::{RunReport, ServerMemory},
    rss,
    stats::{Errors, Traffic},
    subscribers::{Follow, Subscriber},
    writers::{Window, Writer, WriterPlan, WriterShared},
    LoadError,
};
use crate::model::Uid;

/// Runs writers and subscribers; fills in the server's memory as it goes. The
/// steps are those of the module documentation, in order.
pub async fn run(
    config: &LoadConfig,
    traffic: Arc<Traffic>,
    errors: Arc<Errors>,
    server: &mut Option<ServerMemory>,
) -> Result<RunReport, LoadError> {
    let apis: Vec<Api> = spread_over(config, WRITE_URLS)
        .iter()
        .map(|url| Api::new(url, traffic.clone()))
        .collect();
    let list = Uid::new();
    let ledger = Arc::new(Ledger::new(config.writers));
    let interval = writer_interval(config);
    let (writers, after) = seed_writers(config, &apis, list, interval, &errors).await?;
    let follow = Follow {
        ws_url: config.ws_url(),
        list,
        ledger: ledger.clone(),
        errors: errors.clone(),
        traffic,
    };
    let following = subscribe(config, &follow, after, server).await;
    let (connected, subscribe_seconds) = (following.connected, following.subscribe_seconds);
    let written = write(config, writers, &follow, &following).await;
    drain_then_close(config, &ledger, following, written.progress).await;
    let delivery = ledger.verify(connected);
    errors.add_n("missing_delivery", delivery.missing);
    let acked_ops = delivery.acked_ops;
    let ops_per_s = acked_ops as f64 / written.seconds;
    let shared = &written.shared;
    Ok(RunReport {
        subscribers: connected,
        writers: config.writers,
        subscribe_seconds,
        seconds: written.seconds,
        acked_ops,
        ops_per_s,
        field_ops_per_s: ops_per_s * config.op.field_ops() as f64,
        pushes: shared.pushes.load(std::sync::atomic::Ordering::Relaxed),
        push_latency: shared.push_latency.summary(),
        writer_lag: interval.map(|_| shared.lag.summary()),
        fanout: ledger.fanout.summary(),
        server_cpu_us_per_op: written
            .server_cpu_seconds
            .filter(|_| acked_ops > 0)
            .map(|s| s * 1e6 / acked_ops as f64),
        server_cpu_seconds: written.server_cpu_seconds,
        loadgen_cpu_seconds: written.loadgen_cpu_seconds,
        delivery,
    })
}

/// Each writer's time between ops, when the run has a rate.
fn writer_interval(config: &LoadConfig) -> Option<Duration> {
    let per_writer_rate = config.rate / config.writers.max(1) as f64;
    (config.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / per_writer_rate))
}

/// The writers, with their todos seeded; returns them and the version the seeding
/// left (where the subscribers start).
async fn seed_writers(
    config: &LoadConfig,
    apis: &[Api],
    list: Uid,
    interval: Option<Duration>,
    errors: &Errors,
) -> Result<(Vec<Writer>, u64), LoadError> {
    let mut writers: Vec<Writer> = (0..config.writers)
        .map(|index| {
            let plan = WriterPlan {
                index: index as u32,
                list,
                op: config.op,
                batch: config.batch,
                interval,
            };
            Writer::new(plan, apis[index % apis.len()].clone())
        })
        .collect();
    let seeded = futures::future::join_all(writers.iter_mut().map(|w| w.prepare(errors))).await;
    let mut after = 0;
    for result in seeded {
        after = after.max(result.map_err(LoadError::Seeding)?);
    }
    Ok((writers, after))
}

/// The subscribers at work, and how to stop them.
struct Following {
    connected: usize,
    subscribe_seconds: f64,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Subscribes every subscriber after `after`, lets them settle, and reads the
/// server's memory before and after.
async fn subscribe(
    config: &LoadConfig,
    follow: &Follow,
    after: u64,
    server: &mut Option<ServerMemory>,
) -> Following {
    read_memory(server, |m, v| m.before_subscribers = v);
    let connect_start = Instant::now();
    let subscribers = connect_all(config, follow, after, &follow.errors).await;
    let subscribe_seconds = connect_start.elapsed().as_secs_f64();
    let connected = subscribers.len();
    let (stop, stop_rx) = watch::channel(false);
    let tasks = subscribers
        .into_iter()
        .map(|s| tokio::spawn(s.run(stop_rx.clone())))
        .collect();
    if connected > 0 {
        tokio::time::sleep(config.settle).await;
        read_memory(server, |m, v| m.after_subscribers = v);
        if let Some(m) = server.as_mut() {
            if let (Some(before), Some(after)) = (m.before_subscribers, m.after_subscribers) {
                let delta = after.rss_kb as f64 - before.rss_kb as f64;
                m.per_subscriber_kb = Some(delta / connected as f64);
            }
        }
    }
    Following {
        connected,
        subscribe_seconds,
        stop,
        tasks,
    }
}

/// What the writing took.
struct Written {
    seconds: f64,
    server_cpu_seconds: Option<f64>,
    loadgen_cpu_seconds: Option<f64>,
    shared: Arc<WriterShared>,
    /// The progress lines, which end when the subscribers are told to stop.
    progress: Option<JoinHandle<()>>,
}

/// The writers write for `duration` (with a progress line per second) and flush;
/// the CPU time both processes used meanwhile.
async fn write(
    config: &LoadConfig,
    writers: Vec<Writer>,
    follow: &Follow,
    following: &Following,
) -> Written {
    let shared = Arc::new(WriterShared::default());
    let (ledger, errors) = (&follow.ledger, &follow.errors);
    let progress = config.progress.then(|| {
        tokio::spawn(progress::report_every_second(
            Watch {
                ledger: ledger.clone(),
                writers: shared.clone(),
                errors: errors.clone(),
                subscribers: following.connected,
                field_ops_per_op: config.op.field_ops(),
                server_pid: config.server_pid,
            },
            following.stop.subscribe(),
        ))
    });
    let cpu_before = (config.server_pid.and_then(cpu::seconds), cpu::own_seconds());
    let window = Window::from_now(config.duration, config.drain);
    let tasks: Vec<_> = writers
        .into_iter()
        .map(|w| tokio::spawn(w.run(window, ledger.clone(), shared.clone(), errors.clone())))
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    let seconds = window.start.elapsed().as_secs_f64();
    let used = |before: Option<f64>, after: Option<f64>| before.zip(after).map(|(b, a)| a - b);
    Written {
        seconds,
        server_cpu_seconds: used(cpu_before.0, config.server_pid.and_then(cpu::seconds)),
        loadgen_cpu_seconds: used(cpu_before.1, cpu::own_seconds()),
        shared,
        progress,
    }
}

/// Lets deliveries arrive (at most `drain`), then closes the subscribers and
/// stops the progress lines.
async fn drain_then_close(
    config: &LoadConfig,
    ledger: &Ledger,
    following: Following,
    progress: Option<JoinHandle<()>>,
) {
    let connected = following.connected;
    let drain_until = Instant::now() + config.drain;
    while connected > 0 && ledger.missing(connected) > 0 && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = following.stop.send(true);
    for task in following.tasks {
        let _ = task.await;
    }
    if let Some(progress) = progress {
        let _ = progress.await;
    }
}

/// Opens every subscriber, `connect_concurrency` at a time, with a progress line
/// per second; failures are counted and left out.
async fn connect_all(
    config: &LoadConfig,
    follow: &Follow,
    after: u64,
    errors: &Errors,
) -> Vec<Subscriber> {
    let ws_urls: Vec<String> = spread_over(config, SUBSCRIBE_URLS)
        .into_iter()
        .map(|url| {
            LoadConfig {
                url,
                ..config.clone()
            }
            .ws_url()
        })
        .collect();
    let mut pending = futures::stream::iter(0..config.subscribers)
        .map(|i| {
            let ws_url = ws_urls[i % ws_urls.len()].clone();
            Subscriber::connect(
                Follow {
                    ws_url,
                    ..follow.clone()
                },
                after,
            )
        })
        .buffer_unordered(config.connect_concurrency);
    let mut connected = Vec::with_capacity(config.subscribers);
    let mut last_line = Instant::now();
    while let Some(result) = pending.next().await {
        match result {
            Ok(subscriber) => connected.push(subscriber),
            Err(e) => errors.add(e.code()),
        }
        if config.progress && last_line.elapsed() >= Duration::from_secs(1) {
            last_line = Instant::now();
            eprintln!(
                "subscribing: {} / {} connected",
                connected.len(),
                config.subscribers
            );
        }
    }
    connected
}

/// Base URLs (comma-separated) to spread subscribers over, in turn, instead of
/// `--url`: e.g. the nodes of a cluster (benches/cluster.sh).
const SUBSCRIBE_URLS: &str = "TETHER_LOAD_SUBSCRIBE_URLS";
/// The same for writers: writer *i* pushes to the *i*-th URL, in turn.
const WRITE_URLS: &str = "TETHER_LOAD_WRITE_URLS";

/// The base URLs in the environment variable `var`, or just `--url`.
fn spread_over(config: &LoadConfig, var: &str) -> Vec<String> {
    let urls: Vec<String> = std::env::var(var)
        .unwrap_or_default()
        .split(',')
        .map(|u| u.trim().trim_end_matches('/').to_string())
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() {
        vec![config.url.clone()]
    } else {
        urls
    }
}

fn read_memory(
    server: &mut Option<ServerMemory>,
    set: impl FnOnce(&mut ServerMemory, Option<rss::Memory>),
) {
    if let Some(m) = server.as_mut() {
        let value = rss::read(m.pid);
        set(m, value);
    }
}
