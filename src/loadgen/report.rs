//! The report of a run: every figure, the ratios to this machine's limits and the
//! issue's targets, as a table for people and as JSON for tools.
//!
//! A ratio is always Tether's figure divided by the limit's, whichever way is
//! better: for a time, 3.0 means three times the bare latency; for a rate, 0.4
//! means 40 % of what bare SQLite does.

use std::{collections::BTreeMap, fmt::Write};

use serde::Serialize;

use super::{
    catchup::CatchupReport,
    config::{DropMode, LoadConfig, Scenario},
    ledger::Delivery,
    limits::Limits,
    rss::Memory,
    stats::{Summary, TrafficReport},
    storm::{StormReport, BUCKET_MS},
};

/// The machine a run was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: Option<String>,
    pub kernel: Option<String>,
    pub rustc: Option<String>,
    pub date: String,
}

impl Machine {
    pub fn detect() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu: read("/proc/cpuinfo").and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
            }),
            kernel: read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()),
            rustc: std::process::Command::new("rustc")
                .arg("-V")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()),
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }
}

/// A live run: writers and subscribers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    pub subscribers: usize,
    pub writers: usize,
    /// Seconds to connect and subscribe every subscriber.
    pub subscribe_seconds: f64,
    /// From the writers' start to the last acknowledgement.
    pub seconds: f64,
    pub acked_ops: u64,
    pub ops_per_s: f64,
    pub field_ops_per_s: f64,
    pub pushes: u64,
    pub push_latency: Summary,
    /// How late writers made ops behind their schedule (rate mode).
    pub writer_lag: Option<Summary>,
    /// Writer made the op → a subscriber received it, every delivery.
    pub fanout: Summary,
    pub delivery: Delivery,
    /// CPU seconds the server (given its pid) and this load generator used while
    /// the writers wrote, and the server's per acknowledged op.
    pub server_cpu_seconds: Option<f64>,
    pub server_cpu_us_per_op: Option<f64>,
    pub loadgen_cpu_seconds: Option<f64>,
}

/// The server's memory over the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerMemory {
    pub pid: u32,
    pub start: Option<Memory>,
    pub before_subscribers: Option<Memory>,
    pub after_subscribers: Option<Memory>,
    /// (after − before) ÷ subscribers, in KiB.
    pub per_subscriber_kb: Option<f64>,
    pub end: Option<Memory>,
}

impl ServerMemory {
    /// The highest resident memory the kernel saw.
    pub fn peak_kb(&self) -> Option<u64> {
        self.end.map(|m| m.peak_kb)
    }
}

/// One Tether figure next to its bare limit.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub name: String,
    pub tether: f64,
    pub limit: f64,
    pub unit: &'static str,
    /// Tether ÷ limit.
    pub ratio: f64,
    /// Whether a higher figure is better (rates) or a lower one (times, sizes).
    pub higher_is_better: bool,
}

impl Ratio {
    pub fn new(name: &str, tether: f64, limit: f64, unit: &'static str, higher: bool) -> Ratio {
        Ratio {
            name: name.to_string(),
            tether,
            limit,
            unit,
            ratio: if limit > 0.0 {
                tether / limit
            } else {
                f64::NAN
            },
            higher_is_better: higher,
        }
    }
}

/// One of the issue's targets and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub goal: String,
    pub measured: f64,
    pub unit: &'static str,
    pub met: bool,
}

impl Target {
    /// A target of at most `max`.
    pub fn at_most(name: &str, measured: f64, max: f64, unit: &'static str) -> Target {
        Target {
            name: name.into(),
            goal: format!("≤ {} {unit}", number(max)),
            measured,
            unit,
            met: measured <= max,
        }
    }

    /// A target of at least `min`.
    pub fn at_least(name: &str, measured: f64, min: f64, unit: &'static str) -> Target {
        Target {
            name: name.into(),
            goal: format!("≥ {} {unit}", number(min)),
            measured,
            unit,
            met: measured >= min,
        }
    }
}

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: Scenario,
    pub machine: Machine,
    pub config: LoadConfig,
    pub run: Option<RunReport>,
    pub catchup: Option<CatchupReport>,
    pub storm: Option<StormReport>,
    pub limits: Limits,
    pub errors: BTreeMap<String, u64>,
    pub error_total: u64,
    pub traffic: TrafficReport,
    pub server: Option<ServerMemory>,
    pub ratios: Vec<Ratio>,
    pub targets: Vec<Target>,
}

impl Report {
    /// No error of any kind and every acknowledged op delivered to every subscriber
    /// (and, for a storm, every client back and converged).
    pub fn verified(&self) -> bool {
        self.error_total == 0
            && self
                .run
                .as_ref()
                .is_none_or(|r| r.delivery.missing == 0 && r.delivery.duplicates == 0)
            && self.storm.as_ref().is_none_or(StormReport::verified)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serialises")
    }

    /// The report as an aligned text table: one section per part of the run.
    pub fn to_table(&self) -> String {
        let mut t = Table::default();
        self.header(&mut t);
        if let Some(run) = &self.run {
            load_section(&mut t, run, &self.config);
        }
        if let Some(c) = &self.catchup {
            catchup_section(&mut t, c);
        }
        if let Some(storm) = &self.storm {
            storm_section(&mut t, storm, &self.config);
        }
        if let Some(server) = &self.server {
            memory_section(&mut t, server);
        }
        limits_section(&mut t, &self.limits);
        ratios_section(&mut t, &self.ratios);
        targets_section(&mut t, &self.targets);
        self.errors_section(&mut t);
        t.0
    }

    fn header(&self, t: &mut Table) {
        let m = &self.machine;
        t.title(&format!("tether-load · scenario {}", self.scenario));
        t.row(
            "machine",
            format!(
                "{} CPUs{} · {} · {}",
                m.nproc,
                m.cpu
                    .as_deref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default(),
                m.rustc.as_deref().unwrap_or("rustc ?"),
                m.date
            ),
        );
        t.row("server", self.config.url.clone());
    }

    fn errors_section(&self, t: &mut Table) {
        t.section("errors and traffic");
        t.row(
            "errors",
            if self.errors.is_empty() {
                "none".to_string()
            } else {
                self.errors
                    .iter()
                    .map(|(code, n)| format!("{code} × {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        );
        let tr = &self.traffic;
        t.row(
            "payload bytes",
            format!(
                "HTTP sent {} received {} · WebSocket sent {} received {}",
                kb(tr.http_sent),
                kb(tr.http_received),
                kb(tr.ws_sent),
                kb(tr.ws_received)
            ),
        );
        t.row(
            "verdict",
            if self.verified() {
                "verified: no errors, nothing missing".into()
            } else {
                "NOT verified: see errors and delivery".into()
            },
        );
    }
}

/// The load run: its shape, throughput, CPU, latencies and delivery.
fn load_section(t: &mut Table, run: &RunReport, c: &LoadConfig) {
    t.section("load");
    t.row(
        "shape",
        format!(
            "{} subscribers · {} writers · {} · batch ≤ {} · {:?} ops · {} s",
            run.subscribers,
            run.writers,
            if c.rate > 0.0 {
                format!("{} ops/s", number(c.rate))
            } else {
                "as fast as possible".into()
            },
            c.batch,
            c.op,
            number(c.duration.as_secs_f64())
        ),
    );
    t.row("subscribed in", format!("{:.2} s", run.subscribe_seconds));
    t.row(
        "acknowledged ops",
        format!(
            "{} in {:.2} s = {} ops/s = {} field ops/s ({} pushes)",
            run.acked_ops,
            run.seconds,
            number(run.ops_per_s),
            number(run.field_ops_per_s),
            run.pushes
        ),
    );
    if let Some(cpu) = run.server_cpu_seconds {
        t.row(
            "CPU while writing",
            format!(
                "server {cpu:.2} s ({} per acknowledged op) · load generator {}",
                run.server_cpu_us_per_op
                    .map_or("?".into(), |us| if us < 1000.0 {
                        format!("{us:.1} µs")
                    } else {
                        format!("{:.1} ms", us / 1000.0)
                    }),
                run.loadgen_cpu_seconds
                    .map_or("?".into(), |s| format!("{s:.2} s"))
            ),
        );
    }
    t.latency("push → ack", &run.push_latency);
    if let Some(lag) = &run.writer_lag {
        t.latency("writer behind schedule", lag);
    }
    if run.subscribers > 0 {
        t.latency("fan-out (made → each received)", &run.fanout);
        t.latency("fan-out (made → all received)", &run.delivery.to_all);
        let d = &run.delivery;
        t.row(
            "delivery",
            format!(
                "{} / {} delivered · {} missing · {} duplicate{}",
                d.delivered,
                d.expected,
                d.missing,
                d.duplicates,
                if d.missing == 0 && d.duplicates == 0 {
                    " · every acknowledged op reached every subscriber"
                } else {
                    ""
                }
            ),
        );
    }
}

/// The catch-up: pages, time by side, bytes.
fn catchup_section(t: &mut Table, c: &CatchupReport) {
    t.section("catch-up");
    t.row(
        "missed changes",
        format!(
            "{} in {} pages (seeded in {:.0} ms)",
            c.changes, c.pages, c.seed_ms
        ),
    );
    t.row(
            "pull + apply (median)",
            format!(
                "{:.1} ms = server {:.1} ms + decode {:.1} ms + apply {:.1} ms (fastest {:.1} ms, {} rounds)",
                c.median.total_ms,
                c.median.server_ms,
                c.median.decode_ms,
                c.median.apply_ms,
                c.fastest_total_ms,
                c.rounds
            ),
        );
    t.row(
        "bytes",
        format!(
            "{} identity · {} gzip · {} br",
            kb(c.bytes_identity),
            kb(c.bytes_gzip),
            kb(c.bytes_br)
        ),
    );
    t.row(
        "over the live socket",
        format!("{:.1} ms, {}", c.live_total_ms, kb(c.live_bytes)),
    );
}

/// The server's memory over a load run.
fn memory_section(t: &mut Table, server: &ServerMemory) {
    t.section("server memory");
    let show = |m: &Option<Memory>| m.map_or("?".into(), |m| kb(m.rss_kb * 1024));
    t.row("at start", show(&server.start));
    if server.after_subscribers.is_some() {
        t.row("before subscribers", show(&server.before_subscribers));
        t.row("after subscribers", show(&server.after_subscribers));
    }
    if let Some(per) = server.per_subscriber_kb {
        t.row("per subscriber", format!("{per:.1} KiB"));
    }
    t.row("at end", show(&server.end));
    if let Some(peak) = server.peak_kb() {
        t.row("peak (VmHWM)", kb(peak * 1024));
    }
}

/// This machine's bare limits, when measured.
fn limits_section(t: &mut Table, l: &Limits) {
    if l.ws_echo_rtt.is_some()
        || l.ws_broadcast.is_some()
        || l.sqlite_insert_per_push.is_some()
        || l.sqlite_read.is_some()
    {
        t.section("this machine's limits (same run)");
        if let Some(echo) = &l.ws_echo_rtt {
            t.latency("bare WebSocket echo round trip", echo);
        }
        if let Some(b) = &l.ws_broadcast {
            t.latency(
                &format!("bare broadcast to {} (each)", b.sockets),
                &b.per_delivery,
            );
            t.latency(&format!("bare broadcast to {} (all)", b.sockets), &b.to_all);
            if let Some(pair) = b.pair_kb {
                t.row("bare socket pair memory", format!("{pair:.1} KiB"));
            }
            if let Some(cpu) = b.cpu_ms_per_round {
                t.row(
                    "bare broadcast CPU per message",
                    format!("{cpu:.1} ms (server and clients)"),
                );
            }
        }
        for insert in [&l.sqlite_insert_per_push, &l.sqlite_insert_per_group]
            .into_iter()
            .flatten()
        {
            t.row(
                &format!("bare SQLite insert, {} rows/tx", insert.rows_per_tx),
                format!(
                    "{} rows/s ({} rows in {:.2} s)",
                    number(insert.rows_per_s),
                    insert.rows,
                    insert.seconds
                ),
            );
        }
        if let Some(read) = &l.sqlite_read {
            t.row(
                &format!("bare SQLite read, {} rows", read.rows),
                format!(
                    "{:.1} ms in pages of {} ({})",
                    read.ms,
                    read.page,
                    kb(read.bytes)
                ),
            );
        }
    }
}

/// Tether's figures over the bare limits.
fn ratios_section(t: &mut Table, ratios: &[Ratio]) {
    if !ratios.is_empty() {
        t.section("ratios (Tether ÷ bare limit)");
        for r in ratios {
            let verdict = if r.higher_is_better {
                format!("{:.1} % of the limit", r.ratio * 100.0)
            } else {
                format!("{:.2}× the limit", r.ratio)
            };
            t.row(
                &r.name,
                format!(
                    "{} vs {} {} → {verdict}",
                    number(r.tether),
                    number(r.limit),
                    r.unit
                ),
            );
        }
    }
}

/// The issue's targets, met or missed.
fn targets_section(t: &mut Table, targets: &[Target]) {
    if !targets.is_empty() {
        t.section("targets");
        for target in targets {
            t.row(
                &target.name,
                format!(
                    "{} {} (goal {}) {}",
                    number(target.measured),
                    target.unit,
                    target.goal,
                    if target.met { "MET" } else { "MISSED" }
                ),
            );
        }
    }
}

/// The storm's part of the table: reconnect times, the attempts over time,
/// convergence and the server's memory.
fn storm_section(t: &mut Table, s: &StormReport, c: &LoadConfig) {
    storm_reconnects(t, s, c);
    storm_convergence(t, s);
    storm_timeline(t, s);
    storm_memory(t, s);
}

/// The storm's shape, the restart, and how the clients came back.
fn storm_reconnects(t: &mut Table, s: &StormReport, c: &LoadConfig) {
    t.section("reconnect storm");
    let how = match s.drop {
        Some(DropMode::Kill) => "server SIGKILLed and restarted on the same database",
        Some(DropMode::Term) => "server stopped (close 1001) and restarted on the same database",
        Some(DropMode::Client) => "server up; every client dropped its TCP connection",
        None => "?",
    };
    t.row(
        "shape",
        format!(
            "{} clients · {how} · {} writer(s) at {} creates/s · seed {}",
            s.clients,
            c.writers,
            number(c.rate),
            s.seed
        ),
    );
    t.row("first subscribed in", format!("{:.2} s", s.connect_seconds));
    if let (Some(down), Some(up)) = (s.server_down_ms, s.server_up_ms) {
        t.row(
            "server restart",
            format!("old one gone {down:.0} ms, new one answering {up:.0} ms after the drop"),
        );
    }
    t.row(
        "back",
        format!(
            "{} / {} subscribed again{}",
            s.back,
            s.clients,
            if s.back == s.clients {
                format!(
                    ", the last {:.2} s after the drop",
                    s.reconnect.max_ms / 1000.0
                )
            } else {
                String::new()
            }
        ),
    );
    t.latency("drop → socket lost (noticed)", &s.detected);
    t.latency("drop → first reconnect attempt", &s.first_attempt);
    t.latency("drop → subscribed again (reconnect)", &s.reconnect);
    t.row(
        "attempts after the drop",
        format!(
            "{} ({} failed) · at most {} by one client · busiest 100 ms: {} ({:.0} % of clients)",
            s.attempts,
            s.failed_attempts,
            s.max_attempts_per_client,
            s.busiest_bucket_attempts,
            s.busiest_bucket_attempts as f64 * 100.0 / s.clients.max(1) as f64
        ),
    );
    t.row(
        "caught up on reconnect",
        format!(
            "median {} changes per client (min {}, max {}; {} in all) · resyncs {}",
            s.caught_up.median, s.caught_up.min, s.caught_up.max, s.caught_up.total, s.resyncs
        ),
    );
}

/// What the writer did, and whether every client ended where a fresh pull is.
fn storm_convergence(t: &mut Table, s: &StormReport) {
    t.row(
        "writer",
        format!(
            "{} ops acknowledged in {} pushes · failed pushes retried: {}",
            s.acked_ops,
            s.pushes,
            if s.push_failures.is_empty() {
                "none".to_string()
            } else {
                s.push_failures
                    .iter()
                    .map(|(code, n)| format!("{code} × {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
    );
    let v = &s.convergence;
    t.row(
        "converged",
        format!(
            "{} / {} clients equal a fresh pull ({} nodes, cursor {})",
            v.converged, v.clients, v.nodes, v.final_version
        ),
    );
    t.row(
        "versions",
        format!(
            "{} per client · {} missing · {} repeated · {} unexpected (over all clients)",
            v.versions, v.missing_versions, v.repeated_versions, v.unexpected_versions
        ),
    );
    let d = &v.delivery;
    t.row(
        "acknowledged ops",
        format!(
            "{} / {} deliveries · {} missing · {} duplicate · {} unacknowledged",
            d.delivered, d.expected, d.missing, d.duplicates, v.unacknowledged
        ),
    );
    let show = |n: Option<usize>| n.map_or("?".to_string(), |n| n.to_string());
    if s.live.connected.is_some() {
        t.row(
            "server's live subscribers",
            format!(
                "{} connected → {} after the storm → {} after leaving",
                show(s.live.connected),
                show(s.live.after_storm),
                show(s.live.after_leave)
            ),
        );
    }
}

/// Attempts and successes per slice of time after the drop, as bars.
fn storm_timeline(t: &mut Table, s: &StormReport) {
    if !s.timeline.is_empty() {
        t.section(&format!(
            "attempts (█) and subscribed (count) per {BUCKET_MS} ms after the drop"
        ));
        // At most 60 rows: long storms are shown in wider slices.
        let per_row = s.timeline.len().div_ceil(60);
        let rows: Vec<(u64, u64, u64)> = s
            .timeline
            .chunks(per_row)
            .map(|chunk| {
                (
                    chunk[0].from_ms,
                    chunk.iter().map(|b| b.attempts).sum(),
                    chunk.iter().map(|b| b.subscribed).sum(),
                )
            })
            .collect();
        let widest = rows.iter().map(|r| r.1).max().unwrap_or(1).max(1);
        for (from_ms, attempts, subscribed) in rows {
            let bar = "█".repeat(((attempts * 40).div_ceil(widest)) as usize);
            let _ = writeln!(
                t.0,
                "  {:>5.1} s {bar:<40} {attempts:>5} attempts {subscribed:>5} subscribed",
                from_ms as f64 / 1000.0
            );
        }
    }
}

/// The server's memory from idle through the storm to every client gone.
fn storm_memory(t: &mut Table, s: &StormReport) {
    let m = &s.memory;
    if m.idle.is_some() {
        t.section("server memory over the storm (VmRSS)");
        let mib = |kb: u64| format!("{:.1} MiB", kb as f64 / 1024.0);
        let show = |m: &Option<Memory>| m.map_or("?".into(), |m| mib(m.rss_kb));
        let idle = m.idle.map(|m| m.rss_kb);
        let versus = |m: &Option<Memory>| match (m, idle) {
            (Some(m), Some(idle)) => format!(
                "{} ({:+.1} MiB vs idle)",
                mib(m.rss_kb),
                (m.rss_kb as f64 - idle as f64) / 1024.0
            ),
            _ => show(m),
        };
        t.row("idle (before any client)", show(&m.idle));
        t.row(
            &format!("{} clients following", s.clients),
            format!(
                "{}{}",
                versus(&m.connected),
                m.per_client_kb
                    .map(|k| format!(", {k:.1} KiB per client"))
                    .unwrap_or_default()
            ),
        );
        if m.restarted.is_some() {
            t.row("restarted server, on answering", show(&m.restarted));
        }
        t.row(
            "storm peak (sampled / VmHWM)",
            format!(
                "{} / {}",
                m.storm_peak_kb.map_or("?".into(), mib),
                m.storm_hwm_kb.map_or("?".into(), mib)
            ),
        );
        t.row("settled, clients still following", versus(&m.settled));
        t.row("after every client left", versus(&m.after_leave));
    }
}

#[derive(Default)]
struct Table(String);

impl Table {
    fn title(&mut self, text: &str) {
        let _ = writeln!(self.0, "{text}");
    }

    fn section(&mut self, name: &str) {
        let _ = writeln!(self.0, "\n{name}");
    }

    fn row(&mut self, label: &str, value: String) {
        let _ = writeln!(self.0, "  {label:<42} {value}");
    }

    fn latency(&mut self, label: &str, s: &Summary) {
        self.row(
            label,
            format!(
                "p50 {} · p90 {} · p99 {} · max {} ms ({} samples)",
                ms(s.p50_ms),
                ms(s.p90_ms),
                ms(s.p99_ms),
                ms(s.max_ms),
                s.count
            ),
        );
    }
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.1}")
    }
}

/// A number with thousands separators, and decimals only when it is small.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    if v.abs() < 100.0 && v.fract() != 0.0 {
        return format!("{v:.2}");
    }
    let whole = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 {
        out.insert(0, '-');
    }
    out
}

fn kb(bytes: u64) -> String {
    if bytes >= 10 * 1024 * 1024 {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(number(1234567.0), "1,234,567");
        assert_eq!(number(200.0), "200");
        assert_eq!(number(12.345), "12.35");
        assert_eq!(number(-1000.0), "-1,000");
        assert_eq!(number(f64::NAN), "–");
    }

    #[test]
    fn ratios_and_targets() {
        let r = Ratio::new("x", 3.0, 1.5, "ms", false);
        assert_eq!(r.ratio, 2.0);
        assert!(Target::at_most("p99", 4.0, 5.0, "ms").met);
        assert!(!Target::at_least("rate", 40.0, 50.0, "ops/s").met);
    }
}
