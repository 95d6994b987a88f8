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
    path::{Path, PathBuf},
    process::Stdio,
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
    ) -> impl Future<Output = Result<Restart, String>>;
}

/// A running server that `tether-load` did not start: it can be read, not restarted.
pub struct Attached {
    pub pid: Option<u32>,
}

impl ServerControl for Attached {
    fn pid(&self) -> Option<u32> {
        self.pid
    }

    async fn restart(&mut self, mode: DropMode, _down: Duration) -> Result<Restart, String> {
        Err(format!(
            "--drop {} restarts the server, so tether-load must start it (--spawn-server)",
            mode.name()
        ))
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
    pub async fn start(bin: &Path, log: Option<&Path>, url: &str) -> Result<SpawnedServer, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| e.to_string())?;
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

    async fn stop_child(&mut self, mode: DropMode) -> Result<(), String> {
        match mode {
            DropMode::Kill | DropMode::Client => {
                self.child
                    .start_kill()
                    .map_err(|e| format!("SIGKILL: {e}"))?;
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
                    .map_err(|e| format!("kill -TERM: {e}"))?;
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
            .map(|_| ())
            .map_err(|e| format!("waiting for the server to exit: {e}"))
    }

    async fn await_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let url = format!("{}/healthz", self.url);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited before serving ({status}){}",
                    self.bin.display(),
                    self.log
                        .as_ref()
                        .map(|l| format!("; see {}", l.display()))
                        .unwrap_or_default()
                ));
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
                return Err(format!("{url} did not answer within {START_TIMEOUT:?}"));
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

    async fn restart(&mut self, mode: DropMode, down: Duration) -> Result<Restart, String> {
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
fn spawn(bin: &Path, log: Option<&Path>) -> Result<Child, String> {
    let (stdout, stderr) = match log {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            let copy = file.try_clone().map_err(|e| e.to_string())?;
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
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))
}
