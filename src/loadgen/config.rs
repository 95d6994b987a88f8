//! What a load run does: the [`LoadConfig`], its scenarios, and the command line.
//!
//! A scenario is a named set of defaults (the benchmarks a–d and f); any
//! flag given on the command line overrides the scenario's value. Parsing is hand
//! written: a dozen flags do not justify another dependency, and the binary stays a
//! thin shell around [`parse_args`] and [`super::run`].

use std::{fmt, path::PathBuf, time::Duration};

/// A benchmark scenario: which measurement runs, and the defaults it starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Exactly the flags given (defaults as `fanout`, without the machine limits).
    Custom,
    /// (a) 1 list, 100 subscribers, 1 writer at 200 ops/s.
    Fanout,
    /// (b) 50 writers pushing batches as fast as they can.
    Ingest,
    /// (c) a client that missed 10,000 changes pulls and applies them.
    Catchup,
    /// (d) 5,000 idle live subscribers: memory per socket, time to reach them all.
    Connections,
    /// (f) only this machine's limits: bare WebSocket and bare SQLite.
    Limits,
    /// Reconnect storm: N live clients dropped at once come back with jittered
    /// backoff while a writer keeps writing.
    Storm,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::Custom,
        Scenario::Fanout,
        Scenario::Ingest,
        Scenario::Catchup,
        Scenario::Connections,
        Scenario::Limits,
        Scenario::Storm,
    ];

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

    fn parse(text: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == text)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What each measured op of a writer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Run(Box<LoadConfig>),
    Help,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("unknown flag `{0}` (see --help)")]
    UnknownFlag(String),
    #[error("flag `{0}` needs a value")]
    MissingValue(String),
    #[error("bad value `{value}` for `{flag}`: {problem}")]
    BadValue {
        flag: String,
        value: String,
        problem: String,
    },
}

pub const USAGE: &str = "\
tether-load: drive a running Tether server over HTTP and WebSocket and measure it.

USAGE:
  tether-load --url http://127.0.0.1:3000 [--scenario NAME] [flags]

SCENARIOS (each sets defaults; flags override them):
  custom       the flags as given (default; no machine limits)
  fanout       (a) 100 subscribers, 1 writer at 200 ops/s, 10 s
  ingest       (b) 50 writers pushing batches of 100 as fast as they can, 10 s
  catchup      (c) a client that missed 10,000 changes pulls and applies them
  connections  (d) 5,000 idle subscribers; memory per socket; time to reach all
  limits       (f) this machine's limits only: bare WebSocket echo and SQLite
  storm        1,000 live clients dropped at once reconnect with jittered backoff
               while a writer writes; reconnect times, convergence, server memory

FLAGS:
  --url URL              server base URL (default http://127.0.0.1:3000)
  --subscribers N        live subscribers on the list
  --writers N            writers (each its own replica and client id)
  --rate R               ops/s over all writers; 0 = as fast as they can
  --duration SECS        how long writers write
  --batch N              largest push, in ops
  --op set|create        what each op does (set: 1 field op; create: 2)
  --changes N            catch-up: changes the late client missed
  --repeat N             catch-up and limits: rounds (median reported)
  --connect-concurrency N  sockets opened at once
  --settle SECS          idle time after subscribing, before reading memory
  --drain SECS           longest wait for deliveries after writers stop
  --server-pid PID       report the server's memory (/proc/PID/status)
  --json FILE            also write the report as JSON
  --limits / --no-limits measure this machine's limits in the same run (or not)
  --quiet                no progress lines on stderr

STORM FLAGS (ops are always creates; --changes is the list's size beforehand):
  --drop kill|term|client  kill: SIGKILL the server and restart it (default);
                         term: graceful stop and restart; client: the server stays
                         up and every client drops its TCP connection at once
  --drop-after SECS      when, into the writing, the sockets drop (default 3)
  --down SECS            kill/term: how long the server stays down (default 0)
  --spawn-server PATH    start this server binary (with this environment) and
                         restart it for the drop; needed by kill and term
  --server-log FILE      append the spawned server's output to FILE
  --seed N               seed of the backoff jitter (replays the same waits)

The server's per-client push rate limit (TETHER_MAX_PUSHES_PER_SECOND, 50 by
default) must be raised for benchmark rates, e.g. TETHER_MAX_PUSHES_PER_SECOND=1000000.
";

/// Parses the command line (without the program name).
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, ArgsError> {
    let args: Vec<String> = args.into_iter().collect();
    // The scenario decides the defaults, so find it (and the URL) first.
    let mut scenario = Scenario::Custom;
    let mut url = "http://127.0.0.1:3000".to_string();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--scenario" => {
                let value = value_of(&args, i)?;
                scenario = Scenario::parse(value).ok_or_else(|| ArgsError::BadValue {
                    flag: "--scenario".into(),
                    value: value.into(),
                    problem: format!("one of {}", Scenario::ALL.map(Scenario::name).join(", ")),
                })?;
                i += 1;
            }
            "--url" => {
                url = value_of(&args, i)?.to_string();
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    let mut config = LoadConfig::scenario(scenario, &url);
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "--limits" => config.limits = true,
            "--no-limits" => config.limits = false,
            "--quiet" => config.progress = false,
            "--scenario" | "--url" => i += 1,
            "--subscribers" => config.subscribers = number(&args, i)?,
            "--writers" => config.writers = number(&args, i)?,
            "--batch" => config.batch = number::<usize>(&args, i)?.max(1),
            "--changes" => config.changes = number(&args, i)?,
            "--repeat" => config.repeat = number::<usize>(&args, i)?.max(1),
            "--connect-concurrency" => {
                config.connect_concurrency = number::<usize>(&args, i)?.max(1)
            }
            "--server-pid" => config.server_pid = Some(number(&args, i)?),
            "--rate" => config.rate = non_negative(&args, i)?,
            "--duration" => config.duration = Duration::from_secs_f64(non_negative(&args, i)?),
            "--settle" => config.settle = Duration::from_secs_f64(non_negative(&args, i)?),
            "--drain" => config.drain = Duration::from_secs_f64(non_negative(&args, i)?),
            "--json" => config.json = Some(PathBuf::from(value_of(&args, i)?)),
            "--spawn-server" => config.spawn_server = Some(PathBuf::from(value_of(&args, i)?)),
            "--server-log" => config.server_log = Some(PathBuf::from(value_of(&args, i)?)),
            "--seed" => config.seed = Some(number(&args, i)?),
            "--down" => config.down = Duration::from_secs_f64(non_negative(&args, i)?),
            "--drop-after" => config.drop_after = Duration::from_secs_f64(non_negative(&args, i)?),
            "--drop" => {
                config.drop = match value_of(&args, i)? {
                    "kill" => DropMode::Kill,
                    "term" => DropMode::Term,
                    "client" => DropMode::Client,
                    other => return Err(bad(flag, other, "`kill`, `term` or `client`")),
                }
            }
            "--op" => {
                config.op = match value_of(&args, i)? {
                    "set" => OpKind::Set,
                    "create" => OpKind::Create,
                    other => return Err(bad(flag, other, "`set` or `create`")),
                }
            }
            _ => return Err(ArgsError::UnknownFlag(flag.to_string())),
        }
        if takes_value(flag) {
            i += 1;
        }
        i += 1;
    }
    Ok(Command::Run(Box::new(config)))
}

fn takes_value(flag: &str) -> bool {
    !matches!(
        flag,
        "--limits" | "--no-limits" | "--quiet" | "--scenario" | "--url"
    )
}

fn value_of(args: &[String], i: usize) -> Result<&str, ArgsError> {
    args.get(i + 1)
        .map(String::as_str)
        .ok_or_else(|| ArgsError::MissingValue(args[i].clone()))
}

fn bad(flag: &str, value: &str, problem: &str) -> ArgsError {
    ArgsError::BadValue {
        flag: flag.into(),
        value: value.into(),
        problem: problem.into(),
    }
}

fn number<T: std::str::FromStr>(args: &[String], i: usize) -> Result<T, ArgsError> {
    let value = value_of(args, i)?;
    value
        .parse()
        .map_err(|_| bad(&args[i], value, "a whole number"))
}

fn non_negative(args: &[String], i: usize) -> Result<f64, ArgsError> {
    let value = value_of(args, i)?;
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(bad(&args[i], value, "a number ≥ 0")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<LoadConfig, ArgsError> {
        match parse_args(line.split_whitespace().map(String::from))? {
            Command::Run(config) => Ok(*config),
            Command::Help => panic!("help"),
        }
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
    }

    #[test]
    fn bad_input_is_named() {
        assert_eq!(
            parse("--frobnicate").unwrap_err(),
            ArgsError::UnknownFlag("--frobnicate".into())
        );
        assert_eq!(
            parse("--rate").unwrap_err(),
            ArgsError::MissingValue("--rate".into())
        );
        assert!(matches!(
            parse("--rate -3").unwrap_err(),
            ArgsError::BadValue { flag, .. } if flag == "--rate"
        ));
        assert!(matches!(
            parse("--scenario nope").unwrap_err(),
            ArgsError::BadValue { flag, .. } if flag == "--scenario"
        ));
        assert!(matches!(
            parse_args(["--help".to_string()]).unwrap(),
            Command::Help
        ));
        assert!(matches!(
            parse("--drop sideways").unwrap_err(),
            ArgsError::BadValue { flag, .. } if flag == "--drop"
        ));
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
