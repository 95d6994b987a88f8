//! Presence on this node: who follows each list right now, and what they edit.
//!
//! A live socket joins its list's presence when it first says who it is
//! (`presence`, see [`crate::model::presence`]; [`Presences::join`]) and leaves it
//! when it ends (dropping the [`Member`]); it is listed until it stops repeating
//! who it is for [`EXPIRY`] or its socket ends. Sockets that never say who they are
//! get no presence messages. Every change to a list's set is
//! sent to all of its sockets as one `presence` message with the whole set,
//! serialised once; changes are gathered for [`COALESCE`] first, so a burst costs
//! one message.
//!
//! With several nodes (PostgreSQL), each node announces its own members of a list
//! to the others (see [`Store::announce_presence`]) when they change and every
//! [`REANNOUNCE`], and lists what the others announced until it expires: a node
//! that dies takes its members with it within [`EXPIRY`]. Nothing of this is ever
//! stored.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::extract::ws::Utf8Bytes;
use serde::{Deserialize, Serialize};
use tokio::{sync::broadcast, sync::watch, task::JoinHandle, time::Instant};

use super::store::Store;
use crate::model::{
    presence::{Peer, Presence, MAX_LISTED_PEERS},
    wire::ServerMessage,
    ClientId, Uid,
};

/// How long changes are gathered before a list's set is sent.
pub const COALESCE: Duration = Duration::from_millis(50);
/// How long a presence counts without being said again (a client repeats it every
/// [`crate::model::presence::REPEAT_MS`]), and how long another node's announcement
/// counts.
pub const EXPIRY: Duration = Duration::from_secs(10);
/// How often a node announces its members of each list to the other nodes.
pub const REANNOUNCE: Duration = Duration::from_secs(3);
/// Messages a socket may fall behind on presence (only the newest set matters).
const CHANNEL_CAPACITY: usize = 4;
/// Members a node announces of one list at most (a notification holds 8,000 bytes;
/// `count` still counts them all).
const ANNOUNCED_PEERS: usize = 30;

/// This node's presence of every list someone follows here or elsewhere.
#[derive(Clone)]
pub struct Presences {
    inner: Arc<Mutex<HashMap<Uid, ListPresence>>>,
    /// This node's id in announcements (its own come back and are ignored).
    node: Uid,
    store: Store,
}

#[derive(Default)]
struct ListPresence {
    /// This node's sockets on the list; those that said who they are are listed.
    sockets: usize,
    /// Listed members of this node, in the order they first said who they are, and
    /// when each expires.
    local: Vec<(Peer, Instant)>,
    /// What each other node announced last, until it expires.
    remote: HashMap<Uid, (Announced, Instant)>,
    tx: Option<broadcast::Sender<Utf8Bytes>>,
    /// A send of the set is scheduled.
    pending: bool,
    /// Whether that send also announces this node's members to the others.
    announce: bool,
}

/// What one node tells the others of its members of one list.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Announced {
    pub node: Uid,
    pub list: Uid,
    pub count: u32,
    pub peers: Vec<Peer>,
}

/// A socket's place in its list's presence; leaves it when dropped.
pub struct Member {
    pub id: Uid,
    client: Option<ClientId>,
    pub rx: broadcast::Receiver<Utf8Bytes>,
    list: Uid,
    presences: Presences,
}

impl Presences {
    pub fn new(store: Store) -> Presences {
        Presences {
            inner: Arc::default(),
            node: Uid::new(),
            store,
        }
    }

    /// Joins `list`'s presence as `id` (of `client`, if the socket named one): the
    /// member gets every later set of the list.
    pub fn join(&self, list: Uid, id: Uid, client: Option<ClientId>) -> Member {
        let mut lists = self.inner.lock().expect("presence lock");
        let entry = lists.entry(list).or_default();
        entry.sockets += 1;
        let tx = entry
            .tx
            .get_or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0);
        Member {
            id,
            client,
            rx: tx.subscribe(),
            list,
            presences: self.clone(),
        }
    }

    /// The list's current set, as the message sent to its sockets.
    pub fn message(&self, list: Uid) -> Utf8Bytes {
        let lists = self.inner.lock().expect("presence lock");
        let empty = ListPresence::default();
        message(list, lists.get(&list).unwrap_or(&empty))
    }

    /// Another node's announcement (its own are ignored).
    pub fn heard(&self, announced: Announced) {
        if announced.node == self.node {
            return;
        }
        let list = announced.list;
        let mut lists = self.inner.lock().expect("presence lock");
        let entry = lists.entry(list).or_default();
        let node = announced.node;
        let gone = announced.count == 0;
        let changed = match entry.remote.get(&node) {
            Some((before, _)) => before.peers != announced.peers || before.count != announced.count,
            None => !gone,
        };
        if gone {
            entry.remote.remove(&node);
        } else {
            entry
                .remote
                .insert(node, (announced, Instant::now() + EXPIRY));
        }
        if changed {
            self.schedule(&mut lists, list, false);
        }
    }

    /// Starts the task that drops expired presence and re-announces this node's
    /// members (only needed with several nodes, but harmless alone).
    pub fn spawn_upkeep(&self, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        let presences = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut last_announce = Instant::now();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.wait_for(|stopping| *stopping) => return,
                }
                let announce_all = last_announce.elapsed() >= REANNOUNCE;
                if announce_all {
                    last_announce = Instant::now();
                }
                presences.upkeep(announce_all);
            }
        })
    }

    fn upkeep(&self, announce_all: bool) {
        let now = Instant::now();
        let mut lists = self.inner.lock().expect("presence lock");
        let mut changed = Vec::new();
        lists.retain(|list, entry| {
            let before = (entry.local.len(), entry.remote.len());
            entry.local.retain(|(_, expires)| *expires > now);
            entry.remote.retain(|_, (_, expires)| *expires > now);
            let expired = before != (entry.local.len(), entry.remote.len());
            if expired || (announce_all && !entry.local.is_empty()) {
                changed.push((*list, before.0 != entry.local.len() || announce_all));
            }
            entry.sockets > 0 || !entry.remote.is_empty() || entry.pending
        });
        for (list, announce) in changed {
            self.schedule(&mut lists, list, announce);
        }
    }

    /// Sends the list's set after [`COALESCE`], unless a send is already scheduled.
    fn schedule(&self, lists: &mut HashMap<Uid, ListPresence>, list: Uid, announce: bool) {
        let Some(entry) = lists.get_mut(&list) else {
            return;
        };
        entry.announce |= announce;
        if entry.pending {
            return;
        }
        entry.pending = true;
        let presences = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(COALESCE).await;
            presences.send(list).await;
        });
    }

    /// Sends the list's set to its sockets and, if asked, to the other nodes.
    async fn send(&self, list: Uid) {
        let announced = {
            let mut lists = self.inner.lock().expect("presence lock");
            let Some(entry) = lists.get_mut(&list) else {
                return;
            };
            entry.pending = false;
            if let Some(tx) = &entry.tx {
                let _ = tx.send(message(list, entry));
            }
            std::mem::take(&mut entry.announce).then(|| self.announcement(list, entry))
        };
        if let Some(announced) = announced {
            let payload = serde_json::to_string(&announced).expect("an announcement serialises");
            if let Err(e) = self.store.announce_presence(&payload).await {
                tracing::debug!(error = %e, "cannot announce presence");
            }
        }
    }

    fn announcement(&self, list: Uid, entry: &ListPresence) -> Announced {
        Announced {
            node: self.node,
            list,
            count: entry.local.len() as u32,
            peers: entry
                .local
                .iter()
                .take(ANNOUNCED_PEERS)
                .map(|(peer, _)| peer.clone())
                .collect(),
        }
    }
}

impl Member {
    /// Lists this socket as `presence` (already checked), or updates it.
    pub fn set(&self, presence: Presence) {
        let presences = &self.presences;
        let mut lists = presences.inner.lock().expect("presence lock");
        let Some(entry) = lists.get_mut(&self.list) else {
            return;
        };
        let expires = Instant::now() + EXPIRY;
        let peer = presence.as_peer(self.id, self.client);
        let changed = match entry.local.iter_mut().find(|(p, _)| p.id == self.id) {
            Some((listed, at)) => {
                *at = expires;
                std::mem::replace(listed, peer.clone()) != peer
            }
            None => {
                entry.local.push((peer, expires));
                true
            }
        };
        if changed {
            presences.schedule(&mut lists, self.list, true);
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let presences = &self.presences;
        let mut lists = presences.inner.lock().expect("presence lock");
        let Some(entry) = lists.get_mut(&self.list) else {
            return;
        };
        entry.sockets -= 1;
        let listed = entry.local.len();
        entry.local.retain(|(peer, _)| peer.id != self.id);
        if entry.local.len() != listed {
            presences.schedule(&mut lists, self.list, true);
        } else if entry.sockets == 0 && entry.remote.is_empty() && !entry.pending {
            lists.remove(&self.list);
        }
    }
}

/// The `presence` message of a list's whole set: this node's members first, then
/// the other nodes', the first [`MAX_LISTED_PEERS`] of them listed.
fn message(list: Uid, entry: &ListPresence) -> Utf8Bytes {
    let local = entry.local.iter().map(|(peer, _)| peer.clone());
    let remote = entry
        .remote
        .values()
        .flat_map(|(announced, _)| announced.peers.iter().cloned());
    let count = entry.local.len() as u32
        + entry
            .remote
            .values()
            .map(|(announced, _)| announced.count)
            .sum::<u32>();
    let message = ServerMessage::Presence {
        list,
        peers: local.chain(remote).take(MAX_LISTED_PEERS).collect(),
        count,
    };
    serde_json::to_string(&message)
        .expect("a presence message serialises")
        .into()
}
