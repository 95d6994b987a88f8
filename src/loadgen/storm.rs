//! Scenario `storm`: N live clients dropped at once come back with jittered backoff
//! while a writer keeps writing (issue 7, item 6).
//!
//! In order (each phase one step of [`run`]):
//!
//! 1. A writer seeds the list with `changes` todos; after `settle` of quiet the
//!    server's memory is read (*idle*).
//! 2. N [`reconnecting`](super::reconnecting) clients, each with its own client id
//!    and [`Replica`], subscribe from cursor 0 (`connect_concurrency` at a time);
//!    after `settle` the memory is read again (*connected*).
//! 3. The writers create todos at `rate` for `duration`, pushing as the browser
//!    does and retrying every failed push (through the outage) until acknowledged.
//! 4. `drop_after` into the writing, every socket is dropped at once
//!    ([`DropMode`]): by restarting the server (`kill`, `term`), or with the server
//!    up by every client closing its TCP connection (`client`). Each client then
//!    reconnects with the browser's backoff and subscribes from its cursor. The
//!    server's memory is sampled every 20 ms until every client is subscribed
//!    again (*storm peak*).
//! 5. When the writers are done and every acknowledged op has reached every
//!    client, a fresh pull is the reference; after `settle` of quiet the memory is
//!    read (*settled*, N clients still connected); then every client closes, and
//!    after `settle` more the memory is read (*after leave*).
//!
//! The run is judged by: the time from the drop to each client's `subscribed`
//! (percentiles and maximum), the connection attempts per 100 ms (the jitter at
//! work), whether every client's replica equals the fresh pull and received every
//! version exactly once, and whether the server's memory came back.
//!
//! Every op creates a todo whose title is its ledger token, so no change ever
//! supersedes another: a client must receive every version of the list, live or
//! in catch-up, and every acknowledged op exactly once.

use std::{
    collections::{BTreeMap, BTreeSet},
    hash::BuildHasher,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};

use serde::Serialize;
use tokio::{
    sync::{watch, Semaphore},
    task::JoinHandle,
    time::Instant,
};

use super::{
    api::{Api, CallError},
    config::{DropMode, LoadConfig, OpKind},
    control::ServerControl,
    ledger::{Delivery, Ledger},
    reconnecting::{Client, ClientLog, Order, Shared},
    rss::{self, Memory},
    stats::{Errors, Histogram, Summary, Traffic},
    writers::{Window, Writer, WriterPlan, WriterShared},
    LoadError,
};
use crate::model::{ClientId, Replica, Uid};

/// Width of one bar of the attempts-over-time histogram.
pub const BUCKET_MS: u64 = 100;
/// Longest wait for every client's first `subscribed`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait for every client to be subscribed again after the drop.
const STORM_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait for the server's own subscriber count to reach a value.
const COUNT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the server's memory is read during the storm.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// One bar of the histogram: what happened in `[from_ms, from_ms + 100)` after
/// the drop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Bucket {
    pub from_ms: u64,
    /// Connection attempts started.
    pub attempts: u64,
    /// `subscribed` received (an attempt that succeeded).
    pub subscribed: u64,
}

/// A count per client, summed and spread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub total: u64,
    pub min: u64,
    pub median: u64,
    pub max: u64,
}

/// Did every client end where a fresh pull is?
#[derive(Debug, Clone, Default, Serialize)]
pub struct Convergence {
    pub clients: usize,
    /// Clients whose replica holds exactly the fresh pull's nodes, at its cursor.
    pub converged: usize,
    pub final_version: u64,
    /// Nodes of the list (the seeded todos and every op's todo).
    pub nodes: usize,
    /// Versions of the list each client must have received.
    pub versions: usize,
    /// Over all clients: versions of the list never received (gaps).
    pub missing_versions: u64,
    /// Over all clients: versions received that were not above the previous one
    /// (duplicates or reordering).
    pub repeated_versions: u64,
    /// Over all clients: versions received that the list does not have.
    pub unexpected_versions: u64,
    /// Every acknowledged op to every client exactly once (the ledger's account).
    pub delivery: Delivery,
    /// Ops made but never acknowledged (a writer gave up).
    pub unacknowledged: u64,
}

/// The server's resident memory over the storm (KiB, `/proc/<pid>/status`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StormMemory {
    /// After seeding, before any client: the idle level.
    pub idle: Option<Memory>,
    /// N clients following, after `settle`.
    pub connected: Option<Memory>,
    /// (connected − idle) ÷ N.
    pub per_client_kb: Option<f64>,
    /// The restarted server as soon as it answered (restart modes only).
    pub restarted: Option<Memory>,
    /// Highest `VmRSS` sampled every 20 ms from the drop until all were back.
    pub storm_peak_kb: Option<u64>,
    /// `VmHWM` when all were back: the process's own peak (in restart modes the
    /// new process has lived only through the storm, so this is the storm's peak).
    pub storm_hwm_kb: Option<u64>,
    /// Writers done, every delivery in, N clients still connected, after `settle`.
    pub settled: Option<Memory>,
    /// Every client gone, after `settle`.
    pub after_leave: Option<Memory>,
}

/// The server's own live-subscriber count (in-process servers only).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LiveCounts {
    pub connected: Option<usize>,
    pub after_storm: Option<usize>,
    pub after_leave: Option<usize>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StormReport {
    pub clients: usize,
    pub drop: Option<DropMode>,
    /// The jitter's seed (`--seed` replays the same waits).
    pub seed: u64,
    /// Seconds to connect and subscribe every client the first time.
    pub connect_seconds: f64,
    /// From the drop until the old server was gone / the new one answered.
    pub server_down_ms: Option<f64>,
    pub server_up_ms: Option<f64>,
    /// Clients subscribed again after the drop (all of them, when it worked).
    pub back: usize,
    /// Drop → the client noticed its socket was gone.
    pub detected: Summary,
    /// Drop → the client's first connection attempt.
    pub first_attempt: Summary,
    /// Drop → `subscribed` again: the reconnect time of each client.
    pub reconnect: Summary,
    /// Connection attempts after the drop, over all clients.
    pub attempts: u64,
    /// Of those, attempts that failed (server not up yet, refused, cut off).
    pub failed_attempts: u64,
    /// Most attempts any one client needed.
    pub max_attempts_per_client: u64,
    /// The most attempts started in any 100 ms.
    pub busiest_bucket_attempts: u64,
    /// Attempts and successes per 100 ms after the drop.
    pub timeline: Vec<Bucket>,
    /// Changes received in the catch-up of the first subscription after the drop,
    /// per client (what each missed while away).
    pub caught_up: Counts,
    pub resyncs: u64,
    /// Acknowledged ops over the run and pushes made.
    pub acked_ops: u64,
    pub pushes: u64,
    /// Failed pushes by code; each was retried (the outage's transport errors).
    pub push_failures: BTreeMap<String, u64>,
    pub convergence: Convergence,
    pub memory: StormMemory,
    pub live: LiveCounts,
}

impl StormReport {
    /// Every client came back and converged; every version and every acknowledged
    /// op reached every client exactly once; nothing was left unacknowledged.
    pub fn verified(&self) -> bool {
        let c = &self.convergence;
        self.back == self.clients
            && c.clients == self.clients
            && c.converged == c.clients
            && c.missing_versions == 0
            && c.repeated_versions == 0
            && c.unexpected_versions == 0
            && c.delivery.missing == 0
            && c.delivery.duplicates == 0
            && c.delivery.unknown == 0
            && c.unacknowledged == 0
    }
}

/// Runs the storm against the server `control` drives: the phases of the module
/// documentation, in order.
pub async fn run<C: ServerControl>(
    config: &LoadConfig,
    control: &mut C,
    traffic: Arc<Traffic>,
    errors: Arc<Errors>,
) -> Result<StormReport, LoadError> {
    let mut storm = Storm::new(config, control, traffic, errors);
    let writers = storm.seed_list().await?;
    let clients = storm.connect_clients().await?;
    let writing = storm.start_writing(writers);
    let dropped = storm.drop_sockets(&clients, writing.start).await?;
    storm.await_return(&clients, dropped).await;
    storm.finish_writing(writing).await;
    let (fresh, logs) = storm.reference_then_leave(clients).await?;
    Ok(storm.account(&logs, &fresh, dropped.ns))
}

/// What the phases of one storm share.
struct Storm<'a, C> {
    config: &'a LoadConfig,
    control: &'a mut C,
    traffic: Arc<Traffic>,
    errors: Arc<Errors>,
    api: Api,
    list: Uid,
    ledger: Arc<Ledger>,
    report: StormReport,
}

/// The clients of a storm, and the channel that gives them orders.
struct Clients {
    shared: Arc<Shared>,
    orders: watch::Sender<Order>,
    tasks: Vec<JoinHandle<ClientLog>>,
}

/// When the sockets were dropped: the ledger's time and this clock's.
#[derive(Clone, Copy)]
struct Dropped {
    ns: u64,
    at: Instant,
}

/// The writers at work, and what they count.
struct Writing {
    start: Instant,
    tasks: Vec<JoinHandle<()>>,
    shared: Arc<WriterShared>,
    /// Failed pushes (the outage), tallied apart from the run's errors.
    push_errors: Arc<Errors>,
}

impl<'a, C: ServerControl> Storm<'a, C> {
    fn new(
        config: &'a LoadConfig,
        control: &'a mut C,
        traffic: Arc<Traffic>,
        errors: Arc<Errors>,
    ) -> Self {
        let seed = config
            .seed
            .unwrap_or_else(|| std::collections::hash_map::RandomState::new().hash_one(0u8));
        Storm {
            api: Api::new(&config.url, traffic.clone()),
            list: Uid::new(),
            ledger: Arc::new(Ledger::new(config.writers.max(1))),
            report: StormReport {
                clients: config.subscribers,
                drop: Some(config.drop),
                seed,
                ..StormReport::default()
            },
            config,
            control,
            traffic,
            errors,
        }
    }

    /// Phase 1: the writers, the list seeded with `changes` todos, the idle level.
    async fn seed_list(&mut self) -> Result<Vec<Writer>, LoadError> {
        let config = self.config;
        let writers_n = config.writers.max(1);
        let per_writer_rate = config.rate / writers_n as f64;
        let interval = (config.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / per_writer_rate));
        let mut writers: Vec<Writer> = (0..writers_n)
            .map(|index| {
                let plan = WriterPlan {
                    index: index as u32,
                    list: self.list,
                    op: OpKind::Create,
                    batch: config.batch,
                    interval,
                };
                Writer::new(plan, self.api.clone())
            })
            .collect();
        writers[0]
            .seed(config.changes, &self.errors)
            .await
            .map_err(LoadError::Seeding)?;
        self.report.memory.idle = quiet_then_read(config, self.control).await;
        Ok(writers)
    }

    /// Phase 2: every client subscribes from 0; the connected level.
    async fn connect_clients(&mut self) -> Result<Clients, LoadError> {
        let (config, n) = (self.config, self.config.subscribers);
        let shared = Arc::new(Shared {
            ws_url: config.ws_url(),
            list: self.list,
            api: self.api.clone(),
            ledger: self.ledger.clone(),
            errors: self.errors.clone(),
            traffic: self.traffic.clone(),
            first_connect: Semaphore::new(config.connect_concurrency.max(1)),
            subscribed: AtomicUsize::new(0),
            drop_ns: AtomicU64::new(0),
            resubscribed: AtomicUsize::new(0),
        });
        let (orders, orders_rx) = watch::channel(Order::default());
        let seed = self.report.seed;
        let connect_start = Instant::now();
        let tasks = (0..n)
            .map(|i| {
                tokio::spawn(Client::new(shared.clone(), seed, i as u64).run(orders_rx.clone()))
            })
            .collect();
        let label = config.progress.then_some("connecting");
        let subscribed = || shared.subscribed.load(Relaxed);
        let connected = wait_until(label, CONNECT_TIMEOUT, subscribed, n).await;
        if connected < n {
            orders.send_modify(|o| o.stop = true);
            return Err(LoadError::NotSubscribed {
                connected,
                wanted: n,
                within: CONNECT_TIMEOUT,
            });
        }
        self.report.connect_seconds = connect_start.elapsed().as_secs_f64();
        self.report.live.connected = await_count(self.control, self.list, n).await;
        let memory = &mut self.report.memory;
        memory.connected = quiet_then_read(config, self.control).await;
        if let (Some(idle), Some(connected)) = (memory.idle, memory.connected) {
            memory.per_client_kb =
                Some((connected.rss_kb as f64 - idle.rss_kb as f64) / n.max(1) as f64);
        }
        Ok(Clients {
            shared,
            orders,
            tasks,
        })
    }

    /// Phase 3: the writers, retrying every failed push until acknowledged.
    fn start_writing(&self, writers: Vec<Writer>) -> Writing {
        let push_errors = Arc::new(Errors::default());
        let shared = Arc::new(WriterShared::default());
        let window = Window::from_now(self.config.duration, self.config.drain);
        let tasks = writers
            .into_iter()
            .map(|w| {
                let (ledger, shared, errors) =
                    (self.ledger.clone(), shared.clone(), push_errors.clone());
                tokio::spawn(w.run(window, ledger, shared, errors))
            })
            .collect();
        Writing {
            start: window.start,
            tasks,
            shared,
            push_errors,
        }
    }

    /// Phase 4: `drop_after` into the writing, every socket drops at once (the
    /// server restarts, or every client drops its own).
    async fn drop_sockets(
        &mut self,
        clients: &Clients,
        start: Instant,
    ) -> Result<Dropped, LoadError> {
        let config = self.config;
        tokio::time::sleep_until(start + config.drop_after).await;
        if config.progress {
            eprintln!(
                "storm: dropping {} sockets ({})",
                config.subscribers,
                config.drop.name()
            );
        }
        let dropped = Dropped {
            ns: self.ledger.now_ns().max(1),
            at: Instant::now(),
        };
        clients.shared.drop_ns.store(dropped.ns, Relaxed);
        if config.drop.restarts() {
            let restart = self.control.restart(config.drop, config.down).await?;
            self.report.server_down_ms = Some(restart.down.as_secs_f64() * 1000.0);
            self.report.server_up_ms = Some(restart.up.as_secs_f64() * 1000.0);
            self.report.memory.restarted = self.control.pid().and_then(rss::read);
        } else {
            clients.orders.send_modify(|o| o.drops += 1);
        }
        Ok(dropped)
    }

    /// Phase 4, continued: waits until every client is subscribed again, sampling
    /// the server's memory meanwhile.
    async fn await_return(&mut self, clients: &Clients, dropped: Dropped) {
        let (config, n) = (self.config, self.config.subscribers);
        let (sampling, sampling_rx) = watch::channel(false);
        let sampler = self
            .control
            .pid()
            .map(|pid| tokio::spawn(sample_peak(pid, sampling_rx)));
        let label = config.progress.then_some("reconnecting");
        let resubscribed = || clients.shared.resubscribed.load(Relaxed);
        let remaining = STORM_TIMEOUT.saturating_sub(dropped.at.elapsed());
        let back = wait_until(label, remaining, resubscribed, n).await;
        let _ = sampling.send(true);
        if let Some(sampler) = sampler {
            self.report.memory.storm_peak_kb = sampler.await.ok().flatten();
        }
        self.report.memory.storm_hwm_kb = self.control.pid().and_then(rss::read).map(|m| m.peak_kb);
        if config.progress {
            eprintln!(
                "storm: {back} / {n} subscribed again {:.2} s after the drop",
                dropped.at.elapsed().as_secs_f64()
            );
        }
        self.report.live.after_storm = await_count(self.control, self.list, n).await;
    }

    /// Phase 5: the writers done, then every delivery in (or `drain` passed).
    async fn finish_writing(&mut self, writing: Writing) {
        for task in writing.tasks {
            let _ = task.await;
        }
        let (config, n) = (self.config, self.config.subscribers);
        let drain_until = Instant::now() + config.drain;
        while self.ledger.missing(n) > 0 && Instant::now() < drain_until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if config.progress {
            eprintln!(
                "storm: writers done ({} ops acknowledged), {} deliveries missing; \
                 quiet for {:.0} s, then every client leaves",
                self.ledger.acked_total(),
                self.ledger.missing(n),
                config.settle.as_secs_f64()
            );
        }
        self.report.pushes = writing.shared.pushes.load(Relaxed);
        self.report.push_failures = writing.push_errors.snapshot();
    }

    /// Phase 5, continued: the reference pull, the settled level, every client
    /// leaves, the level after.
    async fn reference_then_leave(
        &mut self,
        clients: Clients,
    ) -> Result<((Replica, Vec<u64>), Vec<ClientLog>), LoadError> {
        // Every version of the list is a seeded todo (received in the first
        // catch-up) or an acknowledged op (in the ledger), so once nothing is
        // missing the clients hold everything the reference pull will: any
        // difference is a fault.
        let fresh = pull_all(&self.api, self.list)
            .await
            .map_err(LoadError::ReferencePull)?;
        self.report.memory.settled = quiet_then_read(self.config, self.control).await;
        clients.orders.send_modify(|o| o.stop = true);
        let mut logs = Vec::with_capacity(clients.tasks.len());
        for client in clients.tasks {
            if let Ok(log) = client.await {
                logs.push(log);
            }
        }
        self.report.live.after_leave = await_count(self.control, self.list, 0).await;
        self.report.memory.after_leave = quiet_then_read(self.config, self.control).await;
        Ok((fresh, logs))
    }

    /// The account: reconnects, the timeline and convergence.
    fn account(
        mut self,
        logs: &[ClientLog],
        fresh: &(Replica, Vec<u64>),
        drop_ns: u64,
    ) -> StormReport {
        summarise_storm(&mut self.report, logs, drop_ns);
        let n = self.config.subscribers;
        self.report.convergence = converge(logs, fresh, &self.ledger, n);
        self.report.acked_ops = self.ledger.acked_total();
        self.report.resyncs = logs.iter().map(|l| u64::from(l.resyncs)).sum();
        self.report
    }
}

/// Reconnect times, attempts and the timeline, from the clients' logs.
fn summarise_storm(report: &mut StormReport, logs: &[ClientLog], drop_ns: u64) {
    let detected = Histogram::default();
    let first_attempt = Histogram::default();
    let reconnect = Histogram::default();
    let mut caught_up = Vec::with_capacity(logs.len());
    let bucket_ns = BUCKET_MS * 1_000_000;
    let mut timeline: BTreeMap<u64, Bucket> = BTreeMap::new();
    for log in logs {
        let after = |at: &&u64| **at >= drop_ns;
        if let Some(&at) = log.lost_ns.iter().find(after) {
            detected.record_ns(at - drop_ns);
        }
        let attempts: Vec<u64> = log.attempts_ns.iter().filter(after).copied().collect();
        if let Some(&at) = attempts.first() {
            first_attempt.record_ns(at - drop_ns);
        }
        let subscribed: Vec<u64> = log.subscribed_ns.iter().filter(after).copied().collect();
        if let Some(&at) = subscribed.first() {
            reconnect.record_ns(at - drop_ns);
            report.back += 1;
            // The catch-up of that subscription: the log keeps one per subscription.
            let index = log.subscribed_ns.len() - subscribed.len();
            if let Some(&changes) = log.catch_up_changes.get(index) {
                caught_up.push(changes);
            }
        }
        report.attempts += attempts.len() as u64;
        report.failed_attempts += attempts.len().saturating_sub(subscribed.len()) as u64;
        report.max_attempts_per_client = report.max_attempts_per_client.max(attempts.len() as u64);
        let index = |at: u64| (at - drop_ns) / bucket_ns;
        for at in attempts {
            bucket(&mut timeline, index(at)).attempts += 1;
        }
        for at in subscribed {
            bucket(&mut timeline, index(at)).subscribed += 1;
        }
    }
    // Every 100 ms from the drop to the last event, empty ones included, so the
    // histogram reads as a time axis.
    let last = timeline.keys().next_back().copied().unwrap_or(0);
    report.timeline = (0..=last)
        .map(|index| {
            timeline.get(&index).copied().unwrap_or(Bucket {
                from_ms: index * BUCKET_MS,
                ..Bucket::default()
            })
        })
        .collect();
    report.busiest_bucket_attempts = report
        .timeline
        .iter()
        .map(|b| b.attempts)
        .max()
        .unwrap_or(0);
    report.detected = detected.summary();
    report.first_attempt = first_attempt.summary();
    report.reconnect = reconnect.summary();
    caught_up.sort_unstable();
    report.caught_up = Counts {
        total: caught_up.iter().sum(),
        min: caught_up.first().copied().unwrap_or(0),
        median: caught_up.get(caught_up.len() / 2).copied().unwrap_or(0),
        max: caught_up.last().copied().unwrap_or(0),
    };
}

/// Compares every client with the reference pull.
fn converge(
    logs: &[ClientLog],
    fresh: &(Replica, Vec<u64>),
    ledger: &Ledger,
    n: usize,
) -> Convergence {
    let (reference, versions) = fresh;
    let expected: BTreeSet<u64> = versions.iter().copied().collect();
    let mut c = Convergence {
        clients: logs.len(),
        final_version: reference.cursor().version,
        nodes: reference.nodes().count(),
        versions: expected.len(),
        delivery: ledger.verify(n),
        unacknowledged: ledger.made_total().saturating_sub(ledger.acked_total()),
        ..Convergence::default()
    };
    for log in logs {
        let same = log.replica.cursor().version == reference.cursor().version
            && log.replica.nodes().eq(reference.nodes());
        if same {
            c.converged += 1;
        }
        let got: BTreeSet<u64> = log.versions.iter().copied().collect();
        c.missing_versions += expected.difference(&got).count() as u64;
        c.unexpected_versions += got.difference(&expected).count() as u64;
        c.repeated_versions += log.repeated_versions;
    }
    c
}

/// Pulls the whole list into a fresh replica; returns it and every version.
async fn pull_all(api: &Api, list: Uid) -> Result<(Replica, Vec<u64>), CallError> {
    let mut replica = Replica::new(list, ClientId::new());
    let mut versions = Vec::new();
    let mut after = 0;
    loop {
        let (page, _) = api.pull(list, after).await?;
        versions.extend(page.changes.iter().map(|c| c.version));
        replica.apply_remote(&page.changes, page.server_time_ms);
        after = page.cursor;
        if !page.more {
            return Ok((replica, versions));
        }
    }
}

/// Waits until `count()` reaches `want` (or `limit` passes); returns the last
/// count. With a label, prints it once a second.
async fn wait_until(
    label: Option<&str>,
    limit: Duration,
    count: impl Fn() -> usize,
    want: usize,
) -> usize {
    let start = Instant::now();
    let mut last_line = start;
    loop {
        let now = count();
        if now >= want || start.elapsed() > limit {
            return now;
        }
        if let Some(label) = label {
            if last_line.elapsed() >= Duration::from_secs(1) {
                last_line = Instant::now();
                eprintln!(
                    "{label}: {now} / {want} subscribed after {:.1} s",
                    start.elapsed().as_secs_f64()
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The server's memory after `settle` of quiet (no waiting when it cannot be
/// read: nothing else here depends on the quiet).
async fn quiet_then_read<C: ServerControl>(config: &LoadConfig, control: &C) -> Option<Memory> {
    control.pid()?;
    tokio::time::sleep(config.settle).await;
    control.pid().and_then(rss::read)
}

/// Waits (bounded) until the server's own count of `list`'s subscribers is `want`;
/// `None` if the server cannot be asked.
async fn await_count<C: ServerControl>(control: &C, list: Uid, want: usize) -> Option<usize> {
    let deadline = Instant::now() + COUNT_TIMEOUT;
    loop {
        let now = control.live_subscribers(list)?;
        if now == want || Instant::now() > deadline {
            return Some(now);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The highest `VmRSS` of `pid` until `stop` flips.
async fn sample_peak(pid: u32, mut stop: watch::Receiver<bool>) -> Option<u64> {
    let mut peak = None;
    let mut ticker = tokio::time::interval(SAMPLE_EVERY);
    loop {
        if let Some(m) = rss::read(pid) {
            peak = peak.max(Some(m.rss_kb));
        }
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => return peak,
        }
    }
}

/// The histogram's bar number `index`, made empty the first time it is touched.
fn bucket(timeline: &mut BTreeMap<u64, Bucket>, index: u64) -> &mut Bucket {
    timeline.entry(index).or_insert(Bucket {
        from_ms: index * BUCKET_MS,
        ..Bucket::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn log(attempts: &[u64], lost: &[u64], subscribed: &[u64], catch_up: &[u64]) -> ClientLog {
        ClientLog {
            replica: Replica::new(Uid::new(), ClientId::new()),
            versions: Vec::new(),
            repeated_versions: 0,
            attempts_ns: attempts.iter().map(|ms| ms * MS).collect(),
            lost_ns: lost.iter().map(|ms| ms * MS).collect(),
            subscribed_ns: subscribed.iter().map(|ms| ms * MS).collect(),
            catch_up_changes: catch_up.to_vec(),
            resyncs: 0,
        }
    }

    #[test]
    fn reconnects_attempts_and_the_timeline_count_from_the_drop() {
        // The drop at 1,000 ms. One client came back at its first attempt; one
        // failed once (the server not up yet) and came back at its second; one
        // never came back. Events before the drop (the first connection) are not
        // the storm's.
        let logs = [
            log(&[10, 1_300], &[1_005], &[20, 1_360], &[100, 7]),
            log(&[12, 1_260, 1_910], &[1_006], &[30, 1_990], &[100, 12]),
            log(&[14, 1_450], &[1_004], &[40], &[100]),
        ];
        let mut report = StormReport {
            clients: 3,
            ..StormReport::default()
        };
        summarise_storm(&mut report, &logs, 1_000 * MS);
        assert_eq!(report.back, 2);
        assert_eq!((report.attempts, report.failed_attempts), (4, 2));
        assert_eq!(report.max_attempts_per_client, 2);
        assert_eq!(report.detected.count, 3);
        assert_eq!(report.first_attempt.count, 3);
        assert_eq!(report.reconnect.count, 2);
        assert!(
            (report.reconnect.max_ms - 990.0).abs() < 10.0,
            "{:?}",
            report.reconnect
        );
        // What each one caught up on its first subscription after the drop.
        assert_eq!(
            report.caught_up,
            Counts {
                total: 19,
                min: 7,
                median: 12,
                max: 12
            }
        );
        // Every 100 ms from the drop to the last event, empty slices included.
        assert_eq!(report.timeline.len(), 10);
        let at = |ms: u64| report.timeline[(ms / BUCKET_MS) as usize];
        assert_eq!((at(200).attempts, at(200).subscribed), (1, 0));
        assert_eq!((at(300).attempts, at(300).subscribed), (1, 1));
        assert_eq!((at(400).attempts, at(400).subscribed), (1, 0));
        assert_eq!((at(900).attempts, at(900).subscribed), (1, 1));
        assert_eq!(
            at(500),
            Bucket {
                from_ms: 500,
                attempts: 0,
                subscribed: 0
            }
        );
        assert_eq!(report.busiest_bucket_attempts, 1);
    }
}
