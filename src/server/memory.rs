//! Handing freed memory back to the kernel once live sockets have gone.
//!
//! glibc's malloc keeps freed memory in its per-thread arenas for reuse and, by
//! itself, only returns free space at the very top of a heap. When a crowd of live
//! sockets closes (a reconnect storm, the end of a busy hour) their freed buffers
//! lie spread through the tokio workers' arenas, and the process would stay at its
//! peak size for good. `malloc_trim(0)` returns every free page of every arena.
//! It walks the arenas, so it runs only after sockets have closed *and* the
//! closing has stopped for a tick (one call per crowd, not one per socket), on a
//! blocking thread. Other allocators and platforms: nothing to do here.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};

use tokio::{sync::watch, time::MissedTickBehavior};

use super::hub::Hub;

/// How often the trimmer looks, and how long departures must pause before it trims.
const TICK: Duration = Duration::from_secs(1);

/// The trimmer of one server: how many times it has handed memory back.
#[derive(Clone, Debug, Default)]
pub struct Trimmer {
    trims: Arc<AtomicU64>,
}

impl Trimmer {
    /// Watches `hub` until `shutdown` and trims after each wave of departures.
    pub fn spawn(hub: Hub, mut shutdown: watch::Receiver<bool>) -> Trimmer {
        let trimmer = Trimmer::default();
        let trims = trimmer.trims.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(TICK);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
            let mut wave = Wave::new(hub.departures());
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = shutdown.wait_for(|stopping| *stopping) => return,
                }
                if wave.should_trim(hub.departures()) {
                    let released = tokio::task::spawn_blocking(release_free_memory).await;
                    trims.fetch_add(1, Relaxed);
                    tracing::debug!(?released, "freed memory returned after sockets closed");
                }
            }
        });
        trimmer
    }

    /// Trims so far (for tests and metrics).
    pub fn trims(&self) -> u64 {
        self.trims.load(Relaxed)
    }
}

/// When to trim, from the count of departed subscribers seen at each tick.
#[derive(Debug)]
struct Wave {
    /// The count at the last trim.
    trimmed_at: u64,
    /// The count at the previous tick.
    seen: u64,
}

impl Wave {
    fn new(departures: u64) -> Wave {
        Wave {
            trimmed_at: departures,
            seen: departures,
        }
    }

    /// True once per wave: when somebody left since the last trim and nobody
    /// since the previous tick.
    fn should_trim(&mut self, departures: u64) -> bool {
        let quiet = departures == self.seen;
        self.seen = departures;
        if quiet && departures != self.trimmed_at {
            self.trimmed_at = departures;
            true
        } else {
            false
        }
    }
}

/// Returns free heap pages to the kernel; true if any were.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() -> bool {
    // SAFETY: malloc_trim only takes the allocator's own locks and has no
    // preconditions; any thread may call it at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_per_wave_of_departures_after_it_pauses() {
        let mut wave = Wave::new(0);
        assert!(!wave.should_trim(0), "nobody left");
        assert!(!wave.should_trim(400), "still leaving");
        assert!(!wave.should_trim(1_000), "still leaving");
        assert!(wave.should_trim(1_000), "quiet after the wave: trim");
        assert!(!wave.should_trim(1_000), "once per wave");
        assert!(!wave.should_trim(1_001), "a new departure");
        assert!(wave.should_trim(1_001), "and its pause");
    }
}
