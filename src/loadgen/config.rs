//! What a load run does: the [`LoadConfig`], its scenarios, and the command line.
//!
//! A scenario is a named set of defaults (the benchmarks a–d and f); any
//! flag given on the command line overrides the scenario's value. The command line
//! is [`Args`] (clap's derive), so the binary stays a thin shell around
//! [`parse_args`] and [`super::run`].

use std::{fmt, path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};

/// A benchmark scenario: which measurement runs, and the defaults it starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Exactly the flags given (defaults as `fanout`, without the machine limits).
    Custom,
    /// (a) 1 list, 100 subscribers, 1 writer at 200 ops/s for 10 s.
    Fanout,
    /// (b) 50 writers pushing batches of 100 as fast as they can, 10 s.
    Ingest,
    /// (c) a client that missed 10,000 changes pulls and applies them.
    Catchup,
    /// (d) 5,000 idle live subscribers: memory per socket, time to reach them all.
    Connections,
    /// (f) only this machine's limits: bare WebSocket and bare SQLite.
    Limits,
    /// Reconnect storm: 1,000 live clients dropped at once come back with jittered
    /// backoff while a writer keeps writing; reconnect times, convergence, server
    /// memory.
    Storm,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Custom => "custom",
            Scenario::Fanout => "fanout",
            Scenario::Ingest => "ingest",
            Scenario::Catchup => "catchup",
            Scenario::Connections => "connections",
            Scenario::Limits => "limits",
            Scenario::Storm => "storm",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What each measured op of a writer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Sets the title of one of the writer's own todos (one field op, one stored row).
    Set,
    /// Creates a new todo (two field ops: title and completed; one stored row).
    Create,
}

impl OpKind {
    /// Field values one op writes: the unit of "field ops/s".
    pub fn field_ops(self) -> u64 {
        match self {
            OpKind::Set => 1,
            OpKind::Create => 2,
        }
    }
}

/// How the storm drops every live socket at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DropMode {
    /// SIGKILL the server and start it again on the same database and port: the
    /// kernel ends every connection at once, without close frames (a crash, the
    /// OOM killer). Needs `--spawn-server`.
    Kill,
    /// Stop the server gracefully (SIGTERM: every socket gets close 1001, "server
    /// shutting down") and start it again (a deploy). Needs `--spawn-server`, or
    /// an in-process server.
    Term,
    /// Keep the server up; every client drops its TCP connection at the same
    /// moment without a close frame (the clients' network went away).
    Client,
}

impl DropMode {
    pub fn name(self) -> &'static str {
        match self {
            DropMode::Kill => "kill",
            DropMode::Term => "term",
            DropMode::Client => "client",
        }
    }

    /// Whether the server process is stopped and started again.
    pub fn restarts(self) -> bool {
        !matches!(self, DropMode::Client)
    }
}

/// Everything a load run needs to know.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadConfig {
    /// The server's base URL, e.g. `http://127.0.0.1:3000`.
    pub url: String,
    pub scenario: Scenario,
    /// Live subscribers on the list.
    pub subscribers: usize,
    pub writers: usize,
    /// Ops per second over all writers together; 0 = as fast as they can.
    pub rate: f64,
    #[serde(serialize_with = "as_secs")]
    pub duration: Duration,
    /// Largest number of ops in one push.
    pub batch: usize,
    pub op: OpKind,
    /// The server's process id, to report its memory.
    pub server_pid: Option<u32>,
    #[serde(skip)]
    pub json: Option<PathBuf>,
    /// Catch-up: how many changes the late client missed.
    pub changes: usize,
    /// Catch-up and limits: measured rounds (the median is reported).
    pub repeat: usize,
    /// Sockets opened at once while connecting subscribers.
    pub connect_concurrency: usize,
    /// How long subscribers sit idle after connecting, before memory is read.
    #[serde(serialize_with = "as_secs")]
    pub settle: Duration,
    /// Longest wait for deliveries after the writers stopped.
    #[serde(serialize_with = "as_secs")]
    pub drain: Duration,
    /// Also measure this machine's limits (scenario f) and print the ratios.
    pub limits: bool,
    /// Print a progress line per second on stderr.
    #[serde(skip)]
    pub progress: bool,
    /// Storm: how every socket is dropped.
    pub drop: DropMode,
    /// Storm: seconds into the writing when the sockets are dropped.
    #[serde(serialize_with = "as_secs")]
    pub drop_after: Duration,
    /// Storm, restart modes: how long the server stays down before it is started
    /// again (0: at once, as a supervisor would).
    #[serde(serialize_with = "as_secs")]
    pub down: Duration,
    /// Storm: start (and restart) this server binary, with this process's
    /// environment, instead of using a running server.
    pub spawn_server: Option<PathBuf>,
    /// Where the spawned server's output goes (appended); discarded without it.
    #[serde(skip)]
    pub server_log: Option<PathBuf>,
    /// Storm: the seed of the clients' backoff jitter (random when absent; the
    /// report gives the one used).
    pub seed: Option<u64>,
}

fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl LoadConfig {
    /// The defaults of a scenario, against `url`.
    pub fn scenario(scenario: Scenario, url: &str) -> LoadConfig {
        let base = LoadConfig {
            url: url.trim_end_matches('/').to_string(),
            scenario,
            subscribers: 100,
            writers: 1,
            rate: 200.0,
            duration: Duration::from_secs(10),
            batch: 1,
            op: OpKind::Set,
            server_pid: None,
            json: None,
            changes: 10_000,
            repeat: 5,
            connect_concurrency: 64,
            settle: Duration::from_secs(1),
            drain: Duration::from_secs(10),
            limits: true,
            progress: true,
            drop: DropMode::Kill,
            drop_after: Duration::from_secs(3),
            down: Duration::ZERO,
            spawn_server: None,
            server_log: None,
            seed: None,
        };
        match scenario {
            Scenario::Custom => LoadConfig {
                limits: false,
                ..base
            },
            Scenario::Fanout | Scenario::Catchup => base,
            // No load runs; the SQLite insert limit is taken at ingest's shape
            // (batches of 100, groups of 50 of them).
            Scenario::Limits => LoadConfig {
                writers: 50,
                batch: 100,
                ..base
            },
            Scenario::Ingest => LoadConfig {
                subscribers: 0,
                writers: 50,
                rate: 0.0,
                batch: 100,
                ..base
            },
            Scenario::Connections => LoadConfig {
                subscribers: 5_000,
                writers: 1,
                rate: 2.0,
                duration: Duration::from_secs(5),
                settle: Duration::from_secs(3),
                ..base
            },
            // Every op creates a todo, so no change ever supersedes another and
            // every client must receive every version, live or in catch-up. 20 ops/s
            // to 1,000 clients that each decode and merge every message keeps the
            // load generator well inside one core. `changes`: todos in the list
            // before the clients connect. `settle`: the quiet before each memory
            // reading.
            Scenario::Storm => LoadConfig {
                subscribers: 1_000,
                writers: 1,
                rate: 20.0,
                duration: Duration::from_secs(10),
                batch: 10,
                op: OpKind::Create,
                changes: 100,
                settle: Duration::from_secs(3),
                limits: false,
                ..base
            },
        }
    }

    /// The live-socket URL derived from [`LoadConfig::url`].
    pub fn ws_url(&self) -> String {
        let rest = self
            .url
            .strip_prefix("http://")
            .map(|r| format!("ws://{r}"))
            .or_else(|| {
                self.url
                    .strip_prefix("https://")
                    .map(|r| format!("wss://{r}"))
            })
            .unwrap_or_else(|| self.url.clone());
        format!("{rest}/api/live")
    }
}

/// The command line of `tether-load`. Every flag but `--url` and `--scenario`
/// overrides the scenario's default when given.
#[derive(Debug, Parser)]
#[command(
    name = "tether-load",
    about = "Drive a running Tether server over HTTP and WebSocket and measure it.",
    after_help = AFTER_HELP,
    // A flag given twice takes its last value (benches/run-scenario.sh passes extra
    // flags after its own).
    args_override_self = true
)]
pub struct Args {
    /// Server base URL.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:3000")]
    pub url: String,
    /// Which measurement runs; it sets the defaults of every other flag.
    #[arg(long, value_name = "NAME", value_enum, default_value_t = Scenario::Custom)]
    pub scenario: Scenario,
    /// Live subscribers on the list.
    #[arg(long, value_name = "N")]
    pub subscribers: Option<usize>,
    /// Writers (each its own replica and client id).
    #[arg(long, value_name = "N")]
    pub writers: Option<usize>,
    /// Ops/s over all writers; 0 = as fast as they can.
    #[arg(long, value_name = "R", value_parser = non_negative, allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// How long writers write.
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    pub duration: Option<Duration>,
    /// Largest push, in ops (at least 1).
    #[arg(long, value_name = "N")]
    pub batch: Option<usize>,
    /// What each op does (set: 1 field op; create: 2).
    #[arg(long, value_enum)]
    pub op: Option<OpKind>,
    /// Catch-up: changes the late client missed (storm: the list's size beforehand).
    #[arg(long, value_name = "N")]
    pub changes: Option<usize>,
    /// Catch-up and limits: rounds (the median is reported).
    #[arg(long, value_name = "N")]
    pub repeat: Option<usize>,
    /// Sockets opened at once.
    #[arg(long, value_name = "N")]
    pub connect_concurrency: Option<usize>,
    /// Idle time after subscribing, before reading memory.
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    pub settle: Option<Duration>,
    /// Longest wait for deliveries after writers stop.
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    pub drain: Option<Duration>,
    /// Report the server's memory (/proc/PID/status).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Also write the report as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Measure this machine's limits in the same run.
    #[arg(long, overrides_with = "no_limits")]
    pub limits: bool,
    /// Do not measure this machine's limits.
    #[arg(long, overrides_with = "limits")]
    pub no_limits: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Storm: how every socket drops (kill and term restart the server).
    #[arg(long, value_enum, help_heading = "Storm")]
    pub drop: Option<DropMode>,
    /// Storm: when, into the writing, the sockets drop (default 3).
    #[arg(long, value_name = "SECS", value_parser = seconds, help_heading = "Storm")]
    pub drop_after: Option<Duration>,
    /// Storm, kill and term: how long the server stays down (default 0).
    #[arg(long, value_name = "SECS", value_parser = seconds, help_heading = "Storm")]
    pub down: Option<Duration>,
    /// Storm: start this server binary (with this environment) and restart it for
    /// the drop; needed by kill and term.
    #[arg(long, value_name = "PATH", help_heading = "Storm")]
    pub spawn_server: Option<PathBuf>,
    /// Storm: append the spawned server's output to FILE.
    #[arg(long, value_name = "FILE", help_heading = "Storm")]
    pub server_log: Option<PathBuf>,
    /// Storm: seed of the backoff jitter (replays the same waits).
    #[arg(long, value_name = "N", help_heading = "Storm")]
    pub seed: Option<u64>,
}

const AFTER_HELP: &str = "\
Storm ops are always creates. The server's per-client push rate limit
(TETHER_MAX_PUSHES_PER_SECOND, 50 by default) must be raised for benchmark rates,
e.g. TETHER_MAX_PUSHES_PER_SECOND=1000000. `--help` describes every scenario.";

impl Args {
    /// The scenario's defaults with every given flag applied.
    pub fn into_config(self) -> LoadConfig {
        let mut c = LoadConfig::scenario(self.scenario, &self.url);
        let set = |slot: &mut usize, value: Option<usize>| *slot = value.unwrap_or(*slot);
        set(&mut c.subscribers, self.subscribers);
        set(&mut c.writers, self.writers);
        set(&mut c.batch, self.batch.map(|n| n.max(1)));
        set(&mut c.changes, self.changes);
        set(&mut c.repeat, self.repeat.map(|n| n.max(1)));
        set(
            &mut c.connect_concurrency,
            self.connect_concurrency.map(|n| n.max(1)),
        );
        let set = |slot: &mut Duration, value: Option<Duration>| *slot = value.unwrap_or(*slot);
        set(&mut c.duration, self.duration);
        set(&mut c.settle, self.settle);
        set(&mut c.drain, self.drain);
        set(&mut c.drop_after, self.drop_after);
        set(&mut c.down, self.down);
        c.rate = self.rate.unwrap_or(c.rate);
        c.op = self.op.unwrap_or(c.op);
        c.drop = self.drop.unwrap_or(c.drop);
        c.limits = (c.limits || self.limits) && !self.no_limits;
        c.progress = !self.quiet;
        c.server_pid = self.server_pid.or(c.server_pid);
        c.json = self.json;
        c.spawn_server = self.spawn_server;
        c.server_log = self.server_log;
        c.seed = self.seed;
        c
    }
}

/// Parses the command line (without the program name). `--help` and bad input are
/// both clap errors: `Error::exit` prints either and exits with 0 or 2.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<LoadConfig, clap::Error> {
    let argv = std::iter::once("tether-load".to_string()).chain(args);
    Ok(Args::try_parse_from(argv)?.into_config())
}

/// A flag's value that is not a finite number ≥ 0.
#[derive(Debug, thiserror::Error)]
#[error("expected a number ≥ 0")]
pub struct NotNonNegative;

fn non_negative(text: &str) -> Result<f64, NotNonNegative> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(NotNonNegative),
    }
}

fn seconds(text: &str) -> Result<Duration, NotNonNegative> {
    non_negative(text).map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use clap::{error::ErrorKind, CommandFactory};

    use super::*;

    fn parse(line: &str) -> Result<LoadConfig, clap::Error> {
        parse_args(line.split_whitespace().map(String::from))
    }

    fn kind(line: &str) -> ErrorKind {
        parse(line).unwrap_err().kind()
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn flags_override_the_scenario() {
        let c = parse("--scenario ingest --writers 8 --url http://h:1/ --json o.json").unwrap();
        assert_eq!(c.scenario, Scenario::Ingest);
        assert_eq!((c.writers, c.batch, c.rate), (8, 100, 0.0));
        assert_eq!(c.url, "http://h:1");
        assert_eq!(c.ws_url(), "ws://h:1/api/live");
        assert_eq!(c.json, Some(PathBuf::from("o.json")));
        // The scenario may come after the flags it is overridden by.
        let c = parse("--duration 2.5 --scenario connections --no-limits").unwrap();
        assert_eq!(c.subscribers, 5_000);
        assert_eq!(c.duration, Duration::from_millis(2500));
        assert!(!c.limits);
        let c = parse("--scenario fanout --batch 0 --quiet --op create").unwrap();
        assert!(c.limits && !c.progress);
        assert_eq!((c.batch, c.op), (1, OpKind::Create));
        assert!(parse("--limits").unwrap().limits);
        assert!(!parse("--limits --no-limits").unwrap().limits);
        let c = parse("--scenario fanout --writers 2 --json a.json --writers 3 --json b.json");
        let c = c.unwrap();
        assert_eq!((c.writers, c.json), (3, Some(PathBuf::from("b.json"))));
    }

    #[test]
    fn bad_input_is_named() {
        assert_eq!(kind("--frobnicate"), ErrorKind::UnknownArgument);
        assert_eq!(kind("--rate"), ErrorKind::InvalidValue);
        assert_eq!(kind("--rate -3"), ErrorKind::ValueValidation);
        assert_eq!(kind("--duration nan"), ErrorKind::ValueValidation);
        assert_eq!(kind("--scenario nope"), ErrorKind::InvalidValue);
        assert_eq!(kind("--drop sideways"), ErrorKind::InvalidValue);
        assert_eq!(kind("--writers many"), ErrorKind::ValueValidation);
        let error = parse("--rate -3").unwrap_err().to_string();
        assert!(error.contains("--rate") && error.contains("≥ 0"), "{error}");
    }

    #[test]
    fn help_lists_every_flag_and_scenario() {
        assert_eq!(kind("--help"), ErrorKind::DisplayHelp);
        let help = Args::command().render_long_help().to_string();
        for word in [
            "--url",
            "--scenario",
            "--subscribers",
            "--writers",
            "--rate",
            "--duration",
            "--batch",
            "--op",
            "--changes",
            "--repeat",
            "--connect-concurrency",
            "--settle",
            "--drain",
            "--server-pid",
            "--json",
            "--limits",
            "--no-limits",
            "--quiet",
            "--drop",
            "--drop-after",
            "--down",
            "--spawn-server",
            "--server-log",
            "--seed",
            "custom",
            "fanout",
            "ingest",
            "catchup",
            "connections",
            "limits",
            "storm",
            "kill",
            "term",
            "client",
            "TETHER_MAX_PUSHES_PER_SECOND",
        ] {
            assert!(
                help.contains(word),
                "--help does not mention {word}:\n{help}"
            );
        }
    }

    #[test]
    fn storm_defaults_and_flags() {
        let c = parse("--scenario storm").unwrap();
        assert_eq!(
            (c.subscribers, c.op, c.drop),
            (1_000, OpKind::Create, DropMode::Kill)
        );
        assert!(!c.limits && c.spawn_server.is_none() && c.seed.is_none());
        let c = parse(
            "--scenario storm --subscribers 50 --drop client --drop-after 1.5 --seed 9 --down 2 \
             --spawn-server target/release/tether --server-log s.log",
        )
        .unwrap();
        assert_eq!(
            (c.subscribers, c.drop, c.seed),
            (50, DropMode::Client, Some(9))
        );
        assert_eq!(c.drop_after, Duration::from_millis(1500));
        assert_eq!(c.down, Duration::from_secs(2));
        assert_eq!(c.spawn_server, Some(PathBuf::from("target/release/tether")));
        assert_eq!(c.server_log, Some(PathBuf::from("s.log")));
        assert!(DropMode::Kill.restarts() && !DropMode::Client.restarts());
    }
}
