//! One list on one client: its nodes, the outbox of unacknowledged ops, the cursor
//! into the server's changes, the clock, and the observers to tell about changes.
//!
//! A local write ([`Replica::apply_local`] and the helpers over it) is validated with
//! the same rules the server applies ([`super::rules`]), stamped, numbered, merged into the
//! local state at once and queued in the outbox. It leaves the outbox only when the
//! server acknowledges it ([`Replica::ack`]). Changes from the server
//! ([`Replica::apply_remote`]) and ops from other tabs ([`Replica::apply_op`]) merge
//! into the same state; since every merge is a join, the order in which these
//! arrive does not matter, and a server state older than a pending local write
//! simply loses to it (last writer wins) until the server has the write too.
//!
//! Live children of each parent are kept in an index ordered by `(order key, uid)`
//! and updated on every merge, so listing a parent's children costs no scan.
//!
//! The whole replica (without observers) round-trips through JSON
//! ([`Replica::to_json`], a compact layout that writes each stamp, client id and
//! name once where it repeats; see `snapshot`), which the browser keeps in
//! localStorage so nothing queued is lost on a reload; copies in the previous
//! layout are still read.
//!
//! One file per part: `local` (local writes), `merge` (what others wrote),
//! `outbox`, `cursor`, `events` (observers), `snapshot` and `error` (why a local
//! write is refused); this file holds the state itself and reading it.

mod cursor;
mod error;
mod events;
mod local;
mod merge;
mod outbox;
mod snapshot;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;

use super::batch::Limits;
use super::clock::Hlc;
use super::node::Node;
use super::op::Op;
use super::order::OrderKey;
use super::registry::{registry, Model, Registry};
use super::uid::{ClientId, Uid};

pub use cursor::Cursor;
pub use error::ModelError;
pub use events::{Event, ObserverId};
pub use local::Placement;
pub use snapshot::{SnapshotError, OLDEST_READABLE_VERSION, SNAPSHOT_FORMAT, SNAPSHOT_VERSION};

use events::Observer;

/// The default largest clock skew a replica accepts from peers: the server's
/// default ([`Limits::DEFAULT`]).
pub const DEFAULT_MAX_SKEW_MS: u64 = Limits::DEFAULT.max_clock_skew_ms;

/// One list's state on one client.
pub struct Replica {
    list: Uid,
    registry: &'static Registry,
    clock: Hlc,
    /// The sequence number of the next local op.
    next_seq: u64,
    nodes: BTreeMap<Uid, Node>,
    /// Live, positioned nodes by parent, in sibling order.
    children: HashMap<Uid, BTreeSet<(OrderKey, Uid)>>,
    /// Unacknowledged ops in stamp order (see `sort_outbox`).
    outbox: VecDeque<Op>,
    cursor: Cursor,
    observers: Vec<(ObserverId, Observer)>,
    next_observer: u64,
}

impl Replica {
    /// An empty replica of `list` for `client`, with the standard registry.
    pub fn new(list: Uid, client: ClientId) -> Replica {
        Replica::with_registry(list, client, registry(), DEFAULT_MAX_SKEW_MS)
    }

    /// An empty replica with a given registry and clock skew limit.
    pub fn with_registry(
        list: Uid,
        client: ClientId,
        registry: &'static Registry,
        max_skew_ms: u64,
    ) -> Replica {
        Replica {
            list,
            registry,
            clock: Hlc::new(client, max_skew_ms),
            next_seq: 1,
            nodes: BTreeMap::new(),
            children: HashMap::new(),
            outbox: VecDeque::new(),
            cursor: Cursor::default(),
            observers: Vec::new(),
            next_observer: 0,
        }
    }

    pub fn list(&self) -> Uid {
        self.list
    }

    pub fn client(&self) -> ClientId {
        self.clock.client()
    }

    pub fn registry(&self) -> &'static Registry {
        self.registry
    }

    /// The clock (its `last()` is the newest stamp known).
    pub fn clock(&self) -> &Hlc {
        &self.clock
    }

    /// The sequence number the next local op will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// A node's state as known, tombstones and partial states included.
    pub fn node(&self, uid: Uid) -> Option<&Node> {
        self.nodes.get(&uid)
    }

    /// The live node `uid` decoded as `M`: `None` if missing, not live or of
    /// another kind.
    pub fn get<M: Model>(&self, uid: Uid) -> Option<Result<M, ModelError>> {
        let node = self.nodes.get(&uid).filter(|n| n.is_live())?;
        if node.kind_name() != Some(M::KIND) {
            return None;
        }
        Some(
            self.registry
                .decode::<M>(&node.values())
                .map_err(ModelError::from),
        )
    }

    /// True if `uid` is shown: it and all its ancestors are live, up to the list
    /// (the list's uid itself is visible unless the list node is deleted).
    pub fn is_visible(&self, uid: Uid) -> bool {
        for current in self.ancestors(uid) {
            let state = self.nodes.get(&current);
            if current == self.list {
                return !state.is_some_and(Node::is_deleted);
            }
            if !state.is_some_and(Node::is_live) {
                return false;
            }
        }
        // Ran out of ancestors without reaching the list: a detached node or a
        // cycle made by concurrent moves.
        false
    }

    /// The live children of `parent` in `(order, uid)` order; empty if `parent`
    /// is not visible.
    pub fn children(&self, parent: Uid) -> Vec<Uid> {
        if !self.is_visible(parent) {
            return Vec::new();
        }
        self.children
            .get(&parent)
            .map(|set| set.iter().map(|(_, uid)| *uid).collect())
            .unwrap_or_default()
    }

    /// Every known node state, by uid.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    /// `start` and its ancestors, nearest first; stops at a cycle.
    fn ancestors(&self, start: Uid) -> impl Iterator<Item = Uid> + '_ {
        let mut next = Some(start);
        let mut steps = 0;
        std::iter::from_fn(move || {
            let current = next?;
            steps += 1;
            next = if steps > self.nodes.len() {
                None
            } else {
                self.nodes.get(&current).and_then(Node::parent)
            };
            Some(current)
        })
    }
}

impl fmt::Debug for Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replica")
            .field("list", &self.list)
            .field("client", &self.client())
            .field("nodes", &self.nodes.len())
            .field("outbox", &self.outbox.len())
            .field("next_seq", &self.next_seq)
            .field("cursor", &self.cursor)
            .field("observers", &self.observers.len())
            .finish()
    }
}
