//! The server under a storm: what the load generator may do to it and read from it.
//!
//! A reconnect storm has to end every live socket at one moment *from the server's
//! side*, which means stopping the server and starting it again on the same
//! database file and address. [`ServerControl`] is that ability, with the readings
//! a storm reports: the process id (for its memory) and, where the server shares
//! this process, its own count of live subscribers.
//!
//! * [`SpawnedServer`]: the `tether` binary started by `tether-load` itself
//!   (`--spawn-server`), with this process's environment (so `TETHER_*` settings
//!   pass through), killed with SIGKILL or stopped with SIGTERM and started again.
//! * [`Attached`]: a server started by someone else; it can only be read, so the
//!   storm drops the sockets from the clients' side.
//! * Tests implement the trait over an in-process `RunningServer`
//!   (`tests/reconnect_storm.rs`).

use std::{
    fs::OpenOptions,
    future::Future,
    io,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::Duration,
};

use tokio::{
    process::{Child, Command},
    time::Instant,
};

use super::config::DropMode;
use crate::model::Uid;

/// Longest a server may take to answer `/healthz` after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a graceful stop may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Why the server could not be started, stopped or restarted.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(
        "--drop {} restarts the server, so tether-load must start it: \
         give --spawn-server PATH, or use --drop client",
        .0.name()
    )]
    CannotRestart(DropMode),
    #[error("the server is not running")]
    NotRunning,
    #[error("cannot open the server log {path}: {source}")]
    Log { path: PathBuf, source: io::Error },
    #[error("cannot start {bin}: {source}")]
    Spawn { bin: PathBuf, source: io::Error },
    #[error("cannot stop the server ({signal}): {source}")]
    Stop {
        signal: &'static str,
        source: io::Error,
    },
    #[error("{bin} exited before serving ({status}){}", log_hint(.log))]
    Exited {
        bin: PathBuf,
        status: ExitStatus,
        log: Option<PathBuf>,
    },
    #[error("{url} did not answer within {START_TIMEOUT:?}")]
    NoAnswer { url: String },
    #[error("the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// A server started some other way (in process) did not start again.
    #[error("the server did not start again: {0}")]
    Start(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn log_hint(log: &Option<PathBuf>) -> String {
    log.as_ref()
        .map(|l| format!("; see {}", l.display()))
        .unwrap_or_default()
}

/// How long a restart took, from the moment it was asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Restart {
    /// The old server is gone (its process reaped, or its shutdown returned).
    pub down: Duration,
    /// The new server answers `/healthz`.
    pub up: Duration,
}

/// What a storm may do to the server and read from it.
pub trait ServerControl {
    /// The server's process id now (a restart changes it), to read its memory;
    /// `None` when its memory cannot be told apart (an in-process server).
    fn pid(&self) -> Option<u32>;

    /// The server's own count of live subscribers on `list`, when it can be
    /// asked (only an in-process server can).
    fn live_subscribers(&self, _list: Uid) -> Option<usize> {
        None
    }

    /// Stops the server as `mode` says (which ends every live socket at once),
    /// leaves it down for `down`, and starts it again on the same database and
    /// address; returns once the new one answers.
    fn restart(
        &mut self,
        mode: DropMode,
        down: Duration,
    ) -> impl Future<Output = Result<Restart, ControlError>>;
}

/// A running server that `tether-load` did not start: it can be read, not restarted.
pub struct Attached {
    pub pid: Option<u32>,
}

impl ServerControl for Attached {
    fn pid(&self) -> Option<u32> {
        self.pid
    }

    async fn restart(&mut self, mode: DropMode, _down: Duration) -> Result<Restart, ControlError> {
        Err(ControlError::CannotRestart(mode))
    }
}

/// The `tether` binary, started and restarted by the load generator.
pub struct SpawnedServer {
    bin: PathBuf,
    log: Option<PathBuf>,
    url: String,
    child: Child,
    http: reqwest::Client,
}

impl SpawnedServer {
    /// Starts `bin` (with this process's environment and working directory) and
    /// waits until `url` answers `/healthz`.
    pub async fn start(
        bin: &Path,
        log: Option<&Path>,
        url: &str,
    ) -> Result<SpawnedServer, ControlError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let mut server = SpawnedServer {
            bin: bin.to_path_buf(),
            log: log.map(Path::to_path_buf),
            url: url.trim_end_matches('/').to_string(),
            child: spawn(bin, log)?,
            http,
        };
        server.await_healthy().await?;
        Ok(server)
    }

    /// Stops the server gracefully (SIGTERM), killing it if it takes too long.
    pub async fn stop(mut self) {
        let _ = self.stop_child(DropMode::Term).await;
    }

    async fn stop_child(&mut self, mode: DropMode) -> Result<(), ControlError> {
        let failed = |signal| move |source| ControlError::Stop { signal, source };
        match mode {
            DropMode::Kill | DropMode::Client => {
                self.child.start_kill().map_err(failed("SIGKILL"))?;
            }
            DropMode::Term => {
                let Some(pid) = self.child.id() else {
                    return Ok(()); // already exited
                };
                Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status()
                    .await
                    .map_err(failed("SIGTERM"))?;
                if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
                    .await
                    .is_err()
                {
                    let _ = self.child.start_kill();
                }
            }
        }
        self.child
            .wait()
            .await
            .map_err(failed("waiting for it to exit"))?;
        Ok(())
    }

    async fn await_healthy(&mut self) -> Result<(), ControlError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let url = format!("{}/healthz", self.url);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(ControlError::Exited {
                    bin: self.bin.clone(),
                    status,
                    log: self.log.clone(),
                });
            }
            let healthy = self
                .http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ControlError::NoAnswer { url });
            }
            // Short: the clients are already retrying, the start is what is measured.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl ServerControl for SpawnedServer {
    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn restart(&mut self, mode: DropMode, down: Duration) -> Result<Restart, ControlError> {
        let start = Instant::now();
        self.stop_child(mode).await?;
        let gone = start.elapsed();
        tokio::time::sleep(down).await;
        self.child = spawn(&self.bin, self.log.as_deref())?;
        self.await_healthy().await?;
        Ok(Restart {
            down: gone,
            up: start.elapsed(),
        })
    }
}

/// Starts the binary with its output appended to `log` (or discarded). The child
/// is killed if this handle is dropped, so a failed run leaves no server behind.
fn spawn(bin: &Path, log: Option<&Path>) -> Result<Child, ControlError> {
    let (stdout, stderr) = match log {
        Some(path) => {
            let log_error = |source| ControlError::Log {
                path: path.to_path_buf(),
                source,
            };
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(log_error)?;
            let copy = file.try_clone().map_err(log_error)?;
            (Stdio::from(file), Stdio::from(copy))
        }
        None => (Stdio::null(), Stdio::null()),
    };
    Command::new(bin)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ControlError::Spawn {
            bin: bin.to_path_buf(),
            source,
        })
}
