//! Runtime configuration of the server: `Leptos.toml`, overridden by `TETHER_*`
//! environment variables.
//!
//! cargo-leptos reads its build metadata from `Cargo.toml`; this file is only what the
//! running server needs. Every key has a default, so a missing `Leptos.toml` is fine;
//! an unknown key or a bad value stops the server at start with a message naming the
//! key and the problem, rather than running with a setting nobody meant.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, str::FromStr};

/// The whole configuration, after the file and the environment were applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub addr: SocketAddr,
    /// A tracing filter directive, e.g. `info` or `tether=debug,tower_http=info`.
    pub log: String,
    /// Where the built site (the `pkg/` bundle, styles) lives.
    pub site_root: PathBuf,
    pub database: DatabaseConfig,
    pub sync: SyncLimits,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DatabaseConfig {
    /// Which store, by scheme: a SQLite URL (`sqlite://data/tether.db`,
    /// `sqlite::memory:`) or a PostgreSQL one (`postgres://user@host:port/db`).
    pub url: String,
    /// SQLite's `synchronous` pragma: `full` (an acknowledged write survives power
    /// loss) or `normal` (it survives a crash of the process, not of the machine).
    /// PostgreSQL's durability is the server's own setting (`synchronous_commit`).
    pub synchronous: Synchronous,
    /// PostgreSQL: connections this node may open (the writer holds one, pulls and
    /// catch-ups share the rest; the change listener has one more of its own).
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://data/tether.db".into(),
            synchronous: Synchronous::Full,
            max_connections: 10,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synchronous {
    Full,
    Normal,
}

/// Limits the sync endpoints enforce; each violation is a typed error.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncLimits {
    pub max_ops_per_push: usize,
    pub max_field_bytes: usize,
    pub max_request_bytes: usize,
    pub max_clock_skew_ms: u64,
    pub pull_page_size: u32,
    pub max_subscribers_per_list: usize,
    /// Pushes one client may make per second (a token bucket; bursts of twice this).
    pub max_pushes_per_second: u32,
    /// Live sockets one client id may hold open at once.
    pub max_sockets_per_client: usize,
    /// Messages a live subscriber may fall behind before it is told to re-pull.
    pub live_buffer: usize,
    /// Seconds between heartbeats on a live socket; two missed ones close it.
    pub heartbeat_secs: u64,
    /// Deepest nesting of arrays and objects accepted in a request body or a live
    /// message, checked on the raw bytes before anything is decoded.
    pub max_json_depth: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            log: "info".into(),
            site_root: PathBuf::from("target/site"),
            database: DatabaseConfig::default(),
            sync: SyncLimits::default(),
        }
    }
}

impl Default for SyncLimits {
    fn default() -> Self {
        let batch = crate::model::batch::Limits::DEFAULT;
        SyncLimits {
            max_ops_per_push: batch.max_ops_per_push,
            max_field_bytes: batch.max_field_bytes,
            max_request_bytes: 1 << 20,
            max_clock_skew_ms: batch.max_clock_skew_ms,
            pull_page_size: 1000,
            max_subscribers_per_list: 10_000,
            max_pushes_per_second: 50,
            max_sockets_per_client: 8,
            live_buffer: 1024,
            heartbeat_secs: 20,
            max_json_depth: 32,
        }
    }
}

/// Why the configuration could not be loaded. The message always names the key.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("config file {path} is not valid TOML: {detail}")]
    Syntax { path: String, detail: String },
    #[error("unknown config key `{key}` (known keys: {known})")]
    UnknownKey { key: String, known: String },
    #[error("unknown environment variable {var} (known: {known})")]
    UnknownEnv { var: String, known: String },
    #[error("bad value for `{key}`: {problem}")]
    BadValue { key: String, problem: String },
}

/// A value as it came: from the TOML file or from an environment variable.
enum Raw<'a> {
    Toml(&'a toml::Value),
    Env(&'a str),
}

impl Raw<'_> {
    fn string(&self) -> Result<String, String> {
        match self {
            Raw::Toml(toml::Value::String(s)) => Ok(s.clone()),
            Raw::Toml(other) => Err(format!("expected a string, got {}", other.type_str())),
            Raw::Env(s) => Ok((*s).to_string()),
        }
    }

    fn integer(&self, min: u64, max: u64) -> Result<u64, String> {
        let n: i128 = match self {
            Raw::Toml(toml::Value::Integer(n)) => i128::from(*n),
            Raw::Toml(other) => {
                return Err(format!("expected an integer, got {}", other.type_str()))
            }
            Raw::Env(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("expected an integer, got {s:?}"))?,
        };
        if n < i128::from(min) || n > i128::from(max) {
            return Err(format!("{n} is out of range {min}..={max}"));
        }
        Ok(n as u64)
    }
}

/// One configuration key: where it sits in the file, its environment variable, and
/// how a raw value is checked and stored.
struct Key {
    path: &'static str,
    env: &'static str,
    apply: Apply,
}

/// How a key's raw value is checked and stored.
enum Apply {
    /// Its own check.
    Custom(fn(&mut Config, &Raw) -> Result<(), String>),
    /// An integer within a range.
    Integer {
        range: std::ops::RangeInclusive<u64>,
        set: fn(&mut Config, u64),
    },
}

impl Key {
    const fn integer(
        path: &'static str,
        env: &'static str,
        range: std::ops::RangeInclusive<u64>,
        set: fn(&mut Config, u64),
    ) -> Key {
        Key {
            path,
            env,
            apply: Apply::Integer { range, set },
        }
    }

    fn apply(&self, config: &mut Config, raw: &Raw) -> Result<(), String> {
        match &self.apply {
            Apply::Custom(apply) => apply(config, raw),
            Apply::Integer { range, set } => {
                set(config, raw.integer(*range.start(), *range.end())?);
                Ok(())
            }
        }
    }
}

const KEYS: &[Key] = &[
    Key {
        path: "server.addr",
        env: "TETHER_ADDR",
        apply: Apply::Custom(|c, v| {
            let s = v.string()?;
            c.addr = SocketAddr::from_str(&s)
                .map_err(|_| format!("{s:?} is not a socket address like 127.0.0.1:3000"))?;
            Ok(())
        }),
    },
    Key {
        path: "server.log",
        env: "TETHER_LOG",
        apply: Apply::Custom(|c, v| {
            let s = v.string()?;
            tracing_subscriber::EnvFilter::try_new(&s)
                .map_err(|e| format!("{s:?} is not a log filter: {e}"))?;
            c.log = s;
            Ok(())
        }),
    },
    Key {
        path: "server.site_root",
        env: "TETHER_SITE_ROOT",
        apply: Apply::Custom(|c, v| {
            let s = v.string()?;
            if s.is_empty() {
                return Err("must not be empty".into());
            }
            c.site_root = PathBuf::from(s);
            Ok(())
        }),
    },
    Key {
        path: "database.url",
        env: "TETHER_DATABASE_URL",
        apply: Apply::Custom(|c, v| {
            let s = v.string()?;
            if !s.starts_with("sqlite:") && !crate::server::store::is_postgres_url(&s) {
                return Err(format!(
                    "{s:?} is neither a SQLite URL (sqlite://path or sqlite::memory:) \
                     nor a PostgreSQL URL (postgres://user@host:port/database)"
                ));
            }
            c.database.url = s;
            Ok(())
        }),
    },
    Key {
        path: "database.synchronous",
        env: "TETHER_DATABASE_SYNCHRONOUS",
        apply: Apply::Custom(|c, v| {
            let s = v.string()?;
            c.database.synchronous = match s.to_ascii_lowercase().as_str() {
                "full" => Synchronous::Full,
                "normal" => Synchronous::Normal,
                _ => return Err(format!("{s:?} is neither \"full\" nor \"normal\"")),
            };
            Ok(())
        }),
    },
    Key::integer(
        "database.max_connections",
        "TETHER_DATABASE_MAX_CONNECTIONS",
        2..=1000,
        |c, n| c.database.max_connections = n as u32,
    ),
    Key::integer(
        "sync.max_ops_per_push",
        "TETHER_MAX_OPS_PER_PUSH",
        1..=100_000,
        |c, n| c.sync.max_ops_per_push = n as usize,
    ),
    Key::integer(
        "sync.max_field_bytes",
        "TETHER_MAX_FIELD_BYTES",
        16..=1 << 20,
        |c, n| c.sync.max_field_bytes = n as usize,
    ),
    Key::integer(
        "sync.max_request_bytes",
        "TETHER_MAX_REQUEST_BYTES",
        1024..=64 << 20,
        |c, n| c.sync.max_request_bytes = n as usize,
    ),
    Key::integer(
        "sync.max_clock_skew_ms",
        "TETHER_MAX_CLOCK_SKEW_MS",
        0..=7 * 24 * 3600 * 1000,
        |c, n| c.sync.max_clock_skew_ms = n,
    ),
    Key::integer(
        "sync.pull_page_size",
        "TETHER_PULL_PAGE_SIZE",
        1..=100_000,
        |c, n| c.sync.pull_page_size = n as u32,
    ),
    Key::integer(
        "sync.max_subscribers_per_list",
        "TETHER_MAX_SUBSCRIBERS_PER_LIST",
        1..=1_000_000,
        |c, n| c.sync.max_subscribers_per_list = n as usize,
    ),
    Key::integer(
        "sync.max_pushes_per_second",
        "TETHER_MAX_PUSHES_PER_SECOND",
        1..=1_000_000,
        |c, n| c.sync.max_pushes_per_second = n as u32,
    ),
    Key::integer(
        "sync.max_sockets_per_client",
        "TETHER_MAX_SOCKETS_PER_CLIENT",
        1..=100_000,
        |c, n| c.sync.max_sockets_per_client = n as usize,
    ),
    Key::integer(
        "sync.live_buffer",
        "TETHER_LIVE_BUFFER",
        1..=1_000_000,
        |c, n| c.sync.live_buffer = n as usize,
    ),
    Key::integer(
        "sync.heartbeat_secs",
        "TETHER_HEARTBEAT_SECS",
        1..=3600,
        |c, n| c.sync.heartbeat_secs = n,
    ),
    // A push needs 4 levels (body, ops, op, fields); serde_json refuses more than 128
    // by itself, so a larger limit would never be reached.
    Key::integer(
        "sync.max_json_depth",
        "TETHER_MAX_JSON_DEPTH",
        4..=128,
        |c, n| c.sync.max_json_depth = n as usize,
    ),
];

/// The variable naming the config file; not a key itself.
pub const CONFIG_PATH_ENV: &str = "TETHER_CONFIG";
const DEFAULT_PATH: &str = "Leptos.toml";

/// Every key, for `tether --help`: its environment variable, its place in the file,
/// and the range of an integer.
pub fn keys_help() -> String {
    let mut help = format!(
        "Configuration: {DEFAULT_PATH} (or the file {CONFIG_PATH_ENV} names), then the \
         environment; every key has a default (docs/DEPLOYMENT.md):\n"
    );
    for key in KEYS {
        let range = match &key.apply {
            Apply::Integer { range, .. } => format!("{}..={}", range.start(), range.end()),
            Apply::Custom(_) => String::new(),
        };
        let line = format!("  {:<34}{:<32}{range}", key.env, key.path);
        help.push_str(line.trim_end());
        help.push('\n');
    }
    help
}

impl Config {
    /// Loads the configuration the way the server does at start: the file named by
    /// `TETHER_CONFIG` (which must then exist) or `./Leptos.toml` (optional), then
    /// every `TETHER_*` environment variable on top.
    pub fn load() -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("TETHER_"))
            .collect();
        let (path, required) = match env.get(CONFIG_PATH_ENV) {
            Some(p) => (PathBuf::from(p), true),
            None => (PathBuf::from(DEFAULT_PATH), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(ConfigError::Read {
                    path: path.display().to_string(),
                    detail: e.to_string(),
                })
            }
        };
        Config::from_sources(
            text.as_deref().map(|t| (path.display().to_string(), t)),
            &env,
        )
    }

    /// Builds a configuration from a file's text (with its name, for messages) and
    /// the `TETHER_*` variables. Pure, so tests need not touch the process env.
    pub fn from_sources(
        file: Option<(String, &str)>,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        if let Some((path, text)) = file {
            let table: toml::Table =
                text.parse()
                    .map_err(|e: toml::de::Error| ConfigError::Syntax {
                        path: path.clone(),
                        detail: e.message().to_string(),
                    })?;
            for (section, value) in &table {
                let Some(inner) = value.as_table() else {
                    return Err(unknown_key(section));
                };
                for (name, value) in inner {
                    let path = format!("{section}.{name}");
                    let key = KEYS
                        .iter()
                        .find(|k| k.path == path)
                        .ok_or_else(|| unknown_key(&path))?;
                    key.apply(&mut config, &Raw::Toml(value))
                        .map_err(|problem| ConfigError::BadValue {
                            key: path.clone(),
                            problem,
                        })?;
                }
            }
        }
        for (var, value) in env {
            if var == CONFIG_PATH_ENV {
                continue;
            }
            let key =
                KEYS.iter()
                    .find(|k| k.env == var)
                    .ok_or_else(|| ConfigError::UnknownEnv {
                        var: var.clone(),
                        known: KEYS
                            .iter()
                            .map(|k| k.env)
                            .chain([CONFIG_PATH_ENV])
                            .collect::<Vec<_>>()
                            .join(", "),
                    })?;
            key.apply(&mut config, &Raw::Env(value))
                .map_err(|problem| ConfigError::BadValue {
                    key: var.clone(),
                    problem,
                })?;
        }
        Ok(config)
    }

    /// The limits the pure batch check in the model needs.
    pub fn batch_limits(&self) -> crate::model::batch::Limits {
        crate::model::batch::Limits {
            max_ops_per_push: self.sync.max_ops_per_push,
            max_field_bytes: self.sync.max_field_bytes,
            max_clock_skew_ms: self.sync.max_clock_skew_ms,
        }
    }
}

fn unknown_key(key: &str) -> ConfigError {
    ConfigError::UnknownKey {
        key: key.to_string(),
        known: KEYS.iter().map(|k| k.path).collect::<Vec<_>>().join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(text: &str) -> Option<(String, &str)> {
        Some(("Leptos.toml".to_string(), text))
    }

    #[test]
    fn defaults_without_file_or_env() {
        let c = Config::from_sources(None, &env(&[])).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.database.url, "sqlite://data/tether.db");
        assert_eq!(c.database.synchronous, Synchronous::Full);
    }

    #[test]
    fn the_shipped_leptos_toml_parses_and_matches_defaults() {
        let text = include_str!("../../Leptos.toml");
        let c = Config::from_sources(file(text), &env(&[])).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn file_values_apply() {
        let c = Config::from_sources(
            file(
                "[server]\naddr = \"0.0.0.0:8080\"\nlog = \"debug\"\n\
                 [database]\nurl = \"sqlite::memory:\"\nsynchronous = \"normal\"\n\
                 [sync]\nmax_ops_per_push = 7\npull_page_size = 3\n",
            ),
            &env(&[]),
        )
        .unwrap();
        assert_eq!(c.addr.to_string(), "0.0.0.0:8080");
        assert_eq!(c.log, "debug");
        assert_eq!(c.database.url, "sqlite::memory:");
        assert_eq!(c.database.synchronous, Synchronous::Normal);
        assert_eq!(c.sync.max_ops_per_push, 7);
        assert_eq!(c.sync.pull_page_size, 3);
    }

    #[test]
    fn environment_overrides_file() {
        let c = Config::from_sources(
            file("[server]\naddr = \"0.0.0.0:8080\"\n[sync]\nmax_field_bytes = 100\n"),
            &env(&[
                ("TETHER_ADDR", "127.0.0.1:4000"),
                ("TETHER_MAX_FIELD_BYTES", "200"),
                ("TETHER_CONFIG", "ignored-here"),
            ]),
        )
        .unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:4000");
        assert_eq!(c.sync.max_field_bytes, 200);
    }

    #[test]
    fn unknown_file_key_is_named() {
        let err = Config::from_sources(file("[server]\nadr = \"x\"\n"), &env(&[])).unwrap_err();
        assert!(matches!(&err, ConfigError::UnknownKey { key, .. } if key == "server.adr"));
        assert!(err.to_string().contains("server.adr"));
        let err = Config::from_sources(file("top = 1\n"), &env(&[])).unwrap_err();
        assert!(matches!(&err, ConfigError::UnknownKey { key, .. } if key == "top"));
    }

    #[test]
    fn unknown_env_var_is_named() {
        let err = Config::from_sources(None, &env(&[("TETHER_ADRESS", "x")])).unwrap_err();
        assert!(err.to_string().contains("TETHER_ADRESS"));
    }

    #[test]
    fn bad_values_name_key_and_problem() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "[server]\naddr = \"nowhere\"\n",
                "server.addr",
                "socket address",
            ),
            (
                "[server]\naddr = 3000\n",
                "server.addr",
                "expected a string",
            ),
            ("[server]\nlog = \"=[\"\n", "server.log", "log filter"),
            (
                "[database]\nurl = \"mysql://x\"\n",
                "database.url",
                "SQLite URL",
            ),
            (
                "[database]\nsynchronous = \"off\"\n",
                "database.synchronous",
                "neither",
            ),
            (
                "[sync]\nmax_ops_per_push = 0\n",
                "sync.max_ops_per_push",
                "out of range",
            ),
            (
                "[sync]\nmax_ops_per_push = \"ten\"\n",
                "sync.max_ops_per_push",
                "integer",
            ),
            (
                "[sync]\npull_page_size = -1\n",
                "sync.pull_page_size",
                "out of range",
            ),
        ];
        for (text, key, problem) in cases {
            let err = Config::from_sources(file(text), &env(&[])).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(key), "{msg} should name {key}");
            assert!(msg.contains(problem), "{msg} should say {problem}");
        }
        let err =
            Config::from_sources(None, &env(&[("TETHER_PULL_PAGE_SIZE", "lots")])).unwrap_err();
        assert!(err.to_string().contains("TETHER_PULL_PAGE_SIZE"));
    }

    #[test]
    fn max_json_depth_from_file_and_env_within_its_range() {
        let c = Config::from_sources(file("[sync]\nmax_json_depth = 8\n"), &env(&[])).unwrap();
        assert_eq!(c.sync.max_json_depth, 8);
        let c = Config::from_sources(
            file("[sync]\nmax_json_depth = 8\n"),
            &env(&[("TETHER_MAX_JSON_DEPTH", "64")]),
        )
        .unwrap();
        assert_eq!(c.sync.max_json_depth, 64);
        for bad in ["3", "129", "deep"] {
            let err = Config::from_sources(None, &env(&[("TETHER_MAX_JSON_DEPTH", bad)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("TETHER_MAX_JSON_DEPTH"), "{err}");
        }
        let err = Config::from_sources(file("[sync]\nmax_json_depth = 200\n"), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sync.max_json_depth") && err.contains("out of range"),
            "{err}"
        );
    }

    #[test]
    fn syntax_error_names_file() {
        let err = Config::from_sources(file("[server\n"), &env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { ref path, .. } if path == "Leptos.toml"));
    }
}
