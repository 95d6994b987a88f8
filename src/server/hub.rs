//! Per-list fan-out of committed changes to live subscribers.
//!
//! Each list with at least one subscriber has a bounded tokio broadcast channel. The
//! writer publishes a list's changes once per commit; the messages are serialised
//! once (several if the commit is large, see [`super::outgoing`]) and the same bytes
//! go to every subscriber. A subscriber that falls more than the
//! channel's capacity behind gets `Lagged` from the channel and is told to re-pull
//! (see [`super::live`]) — it never silently misses a change.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc, Mutex,
    },
};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;

use super::outgoing;
use crate::model::{
    wire::{Change, SyncError},
    Uid,
};

/// One commit's changes to one list, ready to send.
#[derive(Debug)]
pub struct Published {
    pub first_version: u64,
    pub last_version: u64,
    pub changes: Vec<Change>,
    /// The `changes` messages as JSON, serialised once; clones share the bytes.
    pub messages: Vec<Utf8Bytes>,
}

#[derive(Clone, Debug)]
pub struct Hub {
    inner: Arc<Mutex<HashMap<Uid, ListChannel>>>,
    /// Subscriptions ended so far (see [`super::memory`]).
    departures: Arc<AtomicU64>,
    capacity: usize,
    max_per_list: usize,
}

#[derive(Debug)]
struct ListChannel {
    tx: broadcast::Sender<Arc<Published>>,
    subscribers: usize,
}

/// A live subscription; dropping it unsubscribes.
pub struct Subscription {
    pub rx: broadcast::Receiver<Arc<Published>>,
    hub: Hub,
    list: Uid,
}

impl Hub {
    /// `capacity`: messages a subscriber may fall behind; `max_per_list`: subscribers.
    pub fn new(capacity: usize, max_per_list: usize) -> Hub {
        Hub {
            inner: Arc::default(),
            departures: Arc::default(),
            capacity: capacity.max(1),
            max_per_list,
        }
    }

    /// Follows `list` from now on.
    pub fn subscribe(&self, list: Uid) -> Result<Subscription, SyncError> {
        let mut lists = self.lock();
        let channel = lists.entry(list).or_insert_with(|| ListChannel {
            tx: broadcast::channel(self.capacity).0,
            subscribers: 0,
        });
        if channel.subscribers >= self.max_per_list {
            return Err(SyncError::TooManySubscribers {
                max: self.max_per_list,
            });
        }
        channel.subscribers += 1;
        Ok(Subscription {
            rx: channel.tx.subscribe(),
            hub: self.clone(),
            list,
        })
    }

    /// Sends one commit's changes of `list` to its subscribers, if any.
    pub fn publish(&self, list: Uid, changes: Vec<Change>) {
        let (Some(first), Some(last)) = (changes.first(), changes.last()) else {
            return;
        };
        let (first_version, last_version) = (first.version, last.version);
        // Serialise outside the lock, and only if somebody listens.
        let Some(tx) = self.lock().get(&list).map(|c| c.tx.clone()) else {
            return;
        };
        let messages = outgoing::changes_messages(
            list,
            &changes,
            last_version,
            false,
            outgoing::MAX_MESSAGE_BYTES,
        );
        // Err only means nobody is listening right now.
        let _ = tx.send(Arc::new(Published {
            first_version,
            last_version,
            changes,
            messages,
        }));
    }

    /// Live subscribers of `list` (for tests and metrics).
    pub fn subscribers(&self, list: Uid) -> usize {
        self.lock().get(&list).map_or(0, |c| c.subscribers)
    }

    /// Subscriptions ended since the hub began.
    pub fn departures(&self) -> u64 {
        self.departures.load(Relaxed)
    }

    /// Lists with at least one subscriber.
    pub fn lists(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uid, ListChannel>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.departures.fetch_add(1, Relaxed);
        let mut lists = self.hub.lock();
        if let Some(channel) = lists.get_mut(&self.list) {
            channel.subscribers = channel.subscribers.saturating_sub(1);
            if channel.subscribers == 0 {
                lists.remove(&self.list);
            }
        }
    }
}
