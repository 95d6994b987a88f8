//! Per-list fan-out of committed changes to this node's live subscribers.
//!
//! Each list with at least one subscriber has a bounded tokio broadcast channel and
//! the last version published to it (`seen`). Changes reach a channel in version
//! order, with nothing skipped, along two paths:
//!
//! * **Directly**, from this node's writer: a commit whose list stood at exactly
//!   `seen` before it is published as it is (the usual case, and always the case on
//!   SQLite, where this writer is the only one).
//! * **Through the feed** ([`Feed`]): when a commit does not follow `seen` (another
//!   node committed in between) or another node announces one (PostgreSQL's
//!   NOTIFY, see [`super::store::postgres`]), the channel is marked behind and the
//!   feed task reads the list's rows after `seen` from the store. The rows are the
//!   truth: a lost, late or merged announcement costs latency, never a change.
//!
//! A channel starts at the list's last version, read once when it is created and
//! before any of its subscribers reads its catch-up (see [`Subscription::ready`]),
//! so a change is either in a subscriber's catch-up or published after it. The
//! messages are serialised once (several if the commit is large, see
//! [`super::outgoing`]) and the same bytes go to every subscriber. A subscriber that
//! falls more than the channel's capacity behind gets `Lagged` from the channel and
//! is told to re-pull (see [`super::live`]) — it never silently misses a change.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{broadcast, watch, Notify, OnceCell};

use super::{
    metrics, outgoing,
    store::{Store, StoreError},
};
use crate::model::{
    wire::{Change, SyncError},
    Uid,
};

/// Changes the feed reads per query when a channel is behind.
const FEED_PAGE: u32 = 1000;
/// Pause before the feed tries a list again after the store failed.
const FEED_RETRY: Duration = Duration::from_millis(200);

/// One commit's changes to one list (or a run of commits read by the feed), ready
/// to send.
#[derive(Debug)]
pub struct Published {
    pub first_version: u64,
    pub last_version: u64,
    pub changes: Vec<Change>,
    /// The `changes` messages as JSON, serialised once; clones share the bytes.
    pub messages: Vec<Utf8Bytes>,
}

impl Published {
    fn new(list: Uid, changes: Vec<Change>) -> Option<Published> {
        let (first_version, last_version) = (changes.first()?.version, changes.last()?.version);
        let messages = outgoing::changes_messages(
            list,
            &changes,
            last_version,
            false,
            outgoing::MAX_MESSAGE_BYTES,
        );
        Some(Published {
            first_version,
            last_version,
            changes,
            messages,
        })
    }
}

#[derive(Clone, Debug)]
pub struct Hub {
    inner: Arc<Mutex<HashMap<Uid, ListChannel>>>,
    /// Subscriptions ended so far (see [`super::memory`]).
    departures: Arc<AtomicU64>,
    /// Wakes the feed task when a channel falls behind.
    wake: Arc<Notify>,
    /// Whether announcements from other nodes are arriving (always, on SQLite).
    feed_connected: Arc<AtomicBool>,
    capacity: usize,
    max_per_list: usize,
}

#[derive(Debug)]
struct ListChannel {
    tx: broadcast::Sender<Arc<Published>>,
    subscribers: usize,
    /// The last version published here; `None` until the channel's start is read.
    seen: Option<u64>,
    /// Whether changes after `seen` may be committed but not published.
    behind: bool,
    /// Reading the channel's start, once (see [`Subscription::ready`]).
    start: Arc<OnceCell<()>>,
    /// When the newest announced commit of the list was made (for the lag metric).
    announced_ms: Option<u64>,
}

/// A live subscription; dropping it unsubscribes.
pub struct Subscription {
    pub rx: broadcast::Receiver<Arc<Published>>,
    hub: Hub,
    list: Uid,
    start: Arc<OnceCell<()>>,
}

impl Hub {
    /// `capacity`: messages a subscriber may fall behind; `max_per_list`: subscribers.
    pub fn new(capacity: usize, max_per_list: usize) -> Hub {
        Hub {
            inner: Arc::default(),
            departures: Arc::default(),
            wake: Arc::default(),
            feed_connected: Arc::new(AtomicBool::new(true)),
            capacity: capacity.max(1),
            max_per_list,
        }
    }

    /// Follows `list` from now on. Call [`Subscription::ready`] before reading the
    /// subscriber's catch-up.
    pub fn subscribe(&self, list: Uid) -> Result<Subscription, SyncError> {
        let mut lists = self.lock();
        let channel = lists.entry(list).or_insert_with(|| ListChannel {
            tx: broadcast::channel(self.capacity).0,
            subscribers: 0,
            seen: None,
            behind: false,
            start: Arc::default(),
            announced_ms: None,
        });
        if channel.subscribers >= self.max_per_list {
            return Err(SyncError::TooManySubscribers {
                max: self.max_per_list,
            });
        }
        channel.subscribers += 1;
        metrics::live_subscribers(1);
        Ok(Subscription {
            rx: channel.tx.subscribe(),
            hub: self.clone(),
            list,
            start: channel.start.clone(),
        })
    }

    /// Hands this node's commit of `list` to its subscribers, if any: directly when
    /// the list stood at the channel's `seen` before it (`previous`), else through
    /// the feed.
    pub fn publish(&self, list: Uid, previous: u64, changes: Vec<Change>) {
        let Some(last) = changes.last().map(|c| c.version) else {
            return;
        };
        // Serialise outside the lock, and only if somebody listens.
        if !self.lock().contains_key(&list) {
            return;
        }
        let published = Published::new(list, changes);
        let mut lists = self.lock();
        let Some(channel) = lists.get_mut(&list) else {
            return;
        };
        match channel.seen {
            Some(seen) if seen == previous => {
                channel.seen = Some(last);
                metrics::fanout_lag(Duration::ZERO);
                if let Some(published) = published {
                    // Err only means nobody is listening right now.
                    let _ = channel.tx.send(Arc::new(published));
                }
            }
            Some(seen) if seen >= last => {}
            _ => {
                channel.behind = true;
                self.wake.notify_one();
            }
        }
    }

    /// Another node announced that `list` has versions up to `version`, committed
    /// at `commit_ms`.
    pub fn announced(&self, list: Uid, version: u64, commit_ms: u64) {
        let mut lists = self.lock();
        if let Some(channel) = lists.get_mut(&list) {
            if channel.seen.is_none_or(|seen| seen < version) {
                channel.behind = true;
                channel.announced_ms = Some(commit_ms);
                self.wake.notify_one();
            }
        }
    }

    /// Announcements may have been missed (the listening connection dropped): every
    /// channel re-reads from its `seen`.
    pub fn all_behind(&self) {
        for channel in self.lock().values_mut() {
            channel.behind = true;
        }
        self.wake.notify_one();
    }

    /// Whether announcements from the other nodes arrive (for `/healthz`).
    pub fn feed_connected(&self) -> bool {
        self.feed_connected.load(Relaxed)
    }

    pub fn set_feed_connected(&self, connected: bool) {
        self.feed_connected.store(connected, Relaxed);
        metrics::feed_connected(connected);
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

    /// Sets a new channel's start; a channel marked behind meanwhile is read from it.
    fn start_at(&self, list: Uid, version: u64) {
        if let Some(channel) = self.lock().get_mut(&list) {
            if channel.seen.is_none() {
                channel.seen = Some(version);
            }
            if channel.behind {
                self.wake.notify_one();
            }
        }
    }

    /// The channels marked behind (with a known start), each with its `seen`; the
    /// marks are cleared.
    fn take_behind(&self) -> Vec<(Uid, u64)> {
        let mut lists = self.lock();
        let mut behind = Vec::new();
        for (list, channel) in lists.iter_mut() {
            if let (true, Some(seen)) = (channel.behind, channel.seen) {
                channel.behind = false;
                behind.push((*list, seen));
            }
        }
        behind
    }

    /// Publishes what the feed read after `from`: the part after the channel's
    /// `seen` (it may have moved on meanwhile), in order.
    fn deliver(&self, list: Uid, from: u64, changes: Vec<Change>) {
        let Some(last) = changes.last().map(|c| c.version) else {
            return;
        };
        let mut published = Published::new(list, changes);
        let mut lists = self.lock();
        let Some(channel) = lists.get_mut(&list) else {
            return;
        };
        // A channel made again since the read starts from its own read instead.
        let Some(seen) = channel.seen else {
            return;
        };
        if seen >= last {
            return;
        }
        if seen != from {
            // Rare: the writer published part of this run meanwhile.
            published = published.and_then(|p| {
                let unsent = p.changes.partition_point(|c| c.version <= seen);
                Published::new(list, p.changes[unsent..].to_vec())
            });
        }
        channel.seen = Some(last);
        if let Some(ms) = channel.announced_ms.take() {
            let now = crate::model::clock::wall_clock_ms();
            metrics::fanout_lag(Duration::from_millis(now.saturating_sub(ms)));
        }
        if let Some(published) = published {
            let _ = channel.tx.send(Arc::new(published));
        }
    }

    /// Marks `list` behind again (the feed could not read it).
    fn retry_later(&self, list: Uid) {
        if let Some(channel) = self.lock().get_mut(&list) {
            channel.behind = true;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uid, ListChannel>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Subscription {
    /// Waits until the channel knows where it starts: the list's last version, read
    /// from the store once per channel, before any subscriber reads its catch-up.
    /// Every change is then either in the catch-up or published after it.
    pub async fn ready(&self, store: &Store) -> Result<(), StoreError> {
        self.start
            .get_or_try_init(|| async {
                let version = store.list_version(self.list).await?;
                self.hub.start_at(self.list, version);
                Ok::<(), StoreError>(())
            })
            .await?;
        Ok(())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.departures.fetch_add(1, Relaxed);
        metrics::live_subscribers(-1);
        let mut lists = self.hub.lock();
        if let Some(channel) = lists.get_mut(&self.list) {
            channel.subscribers = channel.subscribers.saturating_sub(1);
            if channel.subscribers == 0 {
                lists.remove(&self.list);
            }
        }
    }
}

/// The task that brings channels marked behind up to date from the store.
pub struct Feed;

impl Feed {
    /// Runs until `shutdown` turns true.
    pub fn spawn(
        hub: Hub,
        store: Store,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = hub.wake.notified() => {}
                    _ = shutdown.wait_for(|stopping| *stopping) => return,
                }
                for (list, seen) in hub.take_behind() {
                    if let Err(e) = Feed::read(&hub, &store, list, seen).await {
                        tracing::warn!(error = %e, %list, "the feed could not read a list");
                        hub.retry_later(list);
                        tokio::time::sleep(FEED_RETRY).await;
                        hub.wake.notify_one();
                    }
                }
            }
        })
    }

    /// Reads and publishes `list`'s changes after `from`, page by page.
    async fn read(hub: &Hub, store: &Store, list: Uid, mut from: u64) -> Result<(), StoreError> {
        loop {
            let page = store.pull(list, from, FEED_PAGE).await?;
            let (cursor, more) = (page.cursor, page.more);
            hub.deliver(list, from, page.changes);
            if !more {
                return Ok(());
            }
            from = cursor;
        }
    }
}
