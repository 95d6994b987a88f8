//! One list on one client: its nodes, the outbox of unacknowledged ops, the cursor
//! into the server's changes, the clock, and the observers to tell about changes.
//!
//! A local write ([`Replica::apply_local`] and the helpers over it) is validated with
//! the same registry rules the server applies, stamped, numbered, merged into the
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
//! ([`Replica::to_json`]), which the browser keeps in localStorage so nothing queued
//! is lost on a reload.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::ops::Bound::{Excluded, Unbounded};

use serde::{Deserialize, Serialize};

use super::batch::{MAX_SEQ, ROOT_KIND};
use super::clock::Hlc;
use super::node::Node;
use super::op::{Action, Op};
use super::order::OrderKey;
use super::registry::{registry, Model, ModelError, Registry, Value};
use super::uid::{ClientId, Uid};
use super::wire::{Change, PushRequest};

/// The default largest clock skew a replica accepts from peers: 5 minutes.
pub const DEFAULT_MAX_SKEW_MS: u64 = 5 * 60 * 1000;

/// The `format` tag of a snapshot.
pub const SNAPSHOT_FORMAT: &str = "tether.replica";

/// The snapshot layout this code writes and reads.
pub const SNAPSHOT_VERSION: u64 = 1;

/// How far the replica has synced: the server version of the last change it has,
/// and the server's wall time when it got there (the "last synced" timestamp).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub version: u64,
    pub synced_at_ms: Option<u64>,
}

/// Where among its new siblings a created or moved node goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    End,
    Start,
    /// Right after this sibling.
    After(Uid),
    /// Right before this sibling.
    Before(Uid),
}

/// What visibly changed, for observers (views).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A node became live (created, or its create arrived).
    NodeAdded { node: Uid, parent: Option<Uid> },
    /// A live node was deleted.
    NodeRemoved { node: Uid, parent: Option<Uid> },
    /// A field of a live node changed.
    FieldChanged { node: Uid, field: String },
    /// The live children of `parent` or their order changed.
    ChildrenChanged { parent: Uid },
    /// Ops were queued or acknowledged.
    OutboxChanged,
    /// The cursor moved.
    CursorChanged,
}

/// Names a registered observer, to remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObserverId(u64);

/// Why a snapshot cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// JSON, but not a replica snapshot.
    #[error("not a tether replica snapshot")]
    Foreign,
    #[error("snapshot version {found} is older than {current} and cannot be read")]
    Older { found: u64, current: u64 },
    #[error("snapshot version {found} is newer than {current}; update the app")]
    Newer { found: u64, current: u64 },
    #[error("corrupt snapshot: {detail}")]
    Corrupt { detail: String },
}

type Observer = Box<dyn FnMut(&Event) + Send>;

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

/// The events that tell observers how node `uid` went from `before` to `after`.
fn describe_change(uid: Uid, before: &Node, after: &Node, events: &mut Vec<Event>) {
    let (old_parent, new_parent) = (before.parent(), after.parent());
    match (before.is_live(), after.is_live()) {
        (false, true) => {
            events.push(Event::NodeAdded {
                node: uid,
                parent: new_parent,
            });
            events.extend(new_parent.map(|parent| Event::ChildrenChanged { parent }));
        }
        (true, false) => {
            events.push(Event::NodeRemoved {
                node: uid,
                parent: old_parent,
            });
            events.extend(old_parent.map(|parent| Event::ChildrenChanged { parent }));
        }
        (true, true) => {
            if before.position.as_ref().map(|p| &p.value)
                != after.position.as_ref().map(|p| &p.value)
            {
                events.extend(old_parent.map(|parent| Event::ChildrenChanged { parent }));
                if new_parent != old_parent {
                    events.extend(new_parent.map(|parent| Event::ChildrenChanged { parent }));
                }
            }
            let names: BTreeSet<&String> =
                before.fields.keys().chain(after.fields.keys()).collect();
            for name in names {
                if before.field(name) != after.field(name) {
                    events.push(Event::FieldChanged {
                        node: uid,
                        field: name.clone(),
                    });
                }
            }
        }
        (false, false) => {}
    }
}

/// A node's entry in the children index, if it has one.
fn index_entry(node: &Node) -> Option<(Uid, OrderKey)> {
    if !node.is_live() {
        return None;
    }
    let position = &node.position.as_ref()?.value;
    Some((position.parent?, position.order.clone()))
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

    // ----- local writes -----

    /// Creates a node of kind `M` under `parent`; its uid is born here.
    pub fn create<M: Model>(
        &mut self,
        parent: Uid,
        at: Placement,
        value: &M,
        wall_ms: u64,
    ) -> Result<(Uid, Op), ModelError> {
        let node = Uid::new();
        let order = self.order_for(parent, at, None)?;
        let action = Action::Create {
            node,
            kind: M::KIND.to_string(),
            parent: Some(parent),
            order,
            fields: value.encode(),
        };
        let op = self.apply_local(action, wall_ms)?;
        Ok((node, op))
    }

    /// Creates the list node itself (uid = the list's uid, no parent).
    pub fn create_root<M: Model>(&mut self, value: &M, wall_ms: u64) -> Result<Op, ModelError> {
        let action = Action::Create {
            node: self.list,
            kind: M::KIND.to_string(),
            parent: None,
            order: OrderKey::first(),
            fields: value.encode(),
        };
        self.apply_local(action, wall_ms)
    }

    /// Sets one field of a live node.
    pub fn set(
        &mut self,
        node: Uid,
        field: &str,
        value: Value,
        wall_ms: u64,
    ) -> Result<Op, ModelError> {
        let field = field.to_string();
        self.apply_local(Action::Set { node, field, value }, wall_ms)
    }

    /// Deletes a live node (and so hides everything under it).
    pub fn delete(&mut self, node: Uid, wall_ms: u64) -> Result<Op, ModelError> {
        self.apply_local(Action::Delete { node }, wall_ms)
    }

    /// Moves a live node under `parent` at `at`.
    pub fn move_to(
        &mut self,
        node: Uid,
        parent: Uid,
        at: Placement,
        wall_ms: u64,
    ) -> Result<Op, ModelError> {
        let order = self.order_for(parent, at, Some(node))?;
        let action = Action::Move {
            node,
            parent: Some(parent),
            order,
        };
        self.apply_local(action, wall_ms)
    }

    /// Validates a local write, stamps and numbers it, merges it, queues it in the
    /// outbox and tells observers. The returned op is what other tabs may be sent.
    pub fn apply_local(&mut self, action: Action, wall_ms: u64) -> Result<Op, ModelError> {
        self.check_local(&action)?;
        let op = Op {
            client: self.client(),
            seq: self.next_seq,
            stamp: self.clock.now(wall_ms),
            action,
        };
        self.next_seq += 1;
        let mut events = Vec::new();
        self.merge_node(&op.to_delta(), &mut events);
        self.outbox.push_back(op.clone());
        events.push(Event::OutboxChanged);
        self.emit(&events);
        Ok(op)
    }

    /// The same rules the server applies ([`super::batch::plan_push`]), so a write
    /// accepted here is accepted there, plus the rule that local writes only touch
    /// live nodes.
    fn check_local(&self, action: &Action) -> Result<(), ModelError> {
        let registry = self.registry;
        match action {
            Action::Create {
                node,
                kind,
                parent,
                fields,
                ..
            } => {
                registry.validate_fields(kind, fields)?;
                if let Some(existing) = self.nodes.get(node).and_then(Node::kind_name) {
                    if existing != kind {
                        return Err(ModelError::KindConflict {
                            node: *node,
                            existing: existing.to_string(),
                            requested: kind.clone(),
                        });
                    }
                    return Err(ModelError::NodeExists { node: *node });
                }
                registry.check_create_identity(self.list, *node, kind)?;
                let parent_kind = self.parent_kind(*node, *parent)?;
                registry.validate_parent(kind, parent_kind)
            }
            Action::Set { node, field, value } => {
                let kind = self.live_kind(*node)?;
                registry.validate_field(kind, field, value)
            }
            Action::Delete { node } => self.live_kind(*node).map(|_| ()),
            Action::Move { node, parent, .. } => {
                let kind = self.live_kind(*node)?;
                let parent_kind = self.parent_kind(*node, *parent)?;
                registry.validate_parent(kind, parent_kind)?;
                if let Some(parent) = parent {
                    if self.ancestors(*parent).any(|a| a == *node) {
                        return Err(ModelError::Cycle {
                            node: *node,
                            parent: *parent,
                        });
                    }
                }
                Ok(())
            }
        }
    }

    /// The kind of a node that is known and not deleted.
    fn live_kind(&self, node: Uid) -> Result<&str, ModelError> {
        let state = self.nodes.get(&node);
        let kind = state
            .and_then(Node::kind_name)
            .ok_or(ModelError::NodeNotFound { node })?;
        if state.is_some_and(Node::is_deleted) {
            return Err(ModelError::NodeDeleted { node });
        }
        Ok(kind)
    }

    /// The kind of a parent that may take a new child (the list's uid is the
    /// implicit root, of kind `list`, even before the list node arrives).
    fn parent_kind(&self, node: Uid, parent: Option<Uid>) -> Result<Option<&str>, ModelError> {
        let Some(parent) = parent else {
            return Ok(None);
        };
        if parent == node {
            return Err(ModelError::Cycle { node, parent });
        }
        if parent == self.list {
            if self.nodes.get(&parent).is_some_and(Node::is_deleted) {
                return Err(ModelError::NodeDeleted { node: parent });
            }
            return Ok(Some(ROOT_KIND));
        }
        self.live_kind(parent).map(Some)
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

    /// An order key for a node placed under `parent` at `at`, ignoring `moving`
    /// (the node being moved) among the siblings.
    ///
    /// When neighbours share an order key (two replicas picked the same one), a key
    /// strictly between them does not exist; the new node then goes just after
    /// (`After`) or before (`Before`) the whole run of equal keys.
    fn order_for(
        &self,
        parent: Uid,
        at: Placement,
        moving: Option<Uid>,
    ) -> Result<OrderKey, ModelError> {
        let empty = BTreeSet::new();
        let siblings = self.children.get(&parent).unwrap_or(&empty);
        let other = |entry: &&(OrderKey, Uid)| Some(entry.1) != moving;
        // The anchor's entry, looked up through its node: O(log n), no scan.
        let anchor_key = |anchor: Uid| {
            self.nodes
                .get(&anchor)
                .and_then(index_entry)
                .filter(|(p, _)| *p == parent && Some(anchor) != moving)
                .map(|(_, key)| key)
                .ok_or(ModelError::NotASibling { anchor, parent })
        };
        let (low, high) = match at {
            Placement::End => (siblings.iter().rev().find(other).map(|e| e.0.clone()), None),
            Placement::Start => (None, siblings.iter().find(other).map(|e| e.0.clone())),
            Placement::After(anchor) => {
                let key = anchor_key(anchor)?;
                let next = siblings
                    .range((Excluded((key.clone(), anchor)), Unbounded))
                    .filter(other)
                    .find(|(k, _)| *k > key)
                    .map(|e| e.0.clone());
                (Some(key), next)
            }
            Placement::Before(anchor) => {
                let key = anchor_key(anchor)?;
                let previous = siblings
                    .range((Unbounded, Excluded((key.clone(), anchor))))
                    .rev()
                    .filter(other)
                    .find(|(k, _)| *k < key)
                    .map(|e| e.0.clone());
                (previous, Some(key))
            }
        };
        OrderKey::between(low.as_ref(), high.as_ref()).map_err(|e| ModelError::Order {
            detail: e.to_string(),
        })
    }

    // ----- merging what others wrote -----

    /// Merges an op made by another tab. It is not queued: that tab pushes it.
    pub fn apply_op(&mut self, op: &Op) -> Vec<Event> {
        self.clock.observe(&op.stamp);
        let mut events = Vec::new();
        self.merge_node(&op.to_delta(), &mut events);
        self.emit(&events);
        events
    }

    /// Merges node states from the server and moves the cursor to the highest
    /// version seen, reached at `server_time_ms`.
    ///
    /// The clock moves past every stamp received without the skew check: the server
    /// already checked them against its clock, and refusing them here would only
    /// make this replica's next writes lose to older ones.
    pub fn apply_remote(&mut self, changes: &[Change], server_time_ms: u64) -> Vec<Event> {
        let mut events = Vec::new();
        let mut version = self.cursor.version;
        for change in changes {
            self.merge_node(&change.node, &mut events);
            if let Some(stamp) = change.node.max_stamp() {
                self.clock.observe(&stamp);
            }
            version = version.max(change.version);
        }
        let cursor = Cursor {
            version,
            synced_at_ms: Some(server_time_ms),
        };
        if cursor != self.cursor {
            self.cursor = cursor;
            events.push(Event::CursorChanged);
        }
        self.emit(&events);
        events
    }

    /// Drops the queued ops of `client` up to `through_seq` (the server stored them)
    /// and returns how many were dropped.
    ///
    /// `through_seq = u64::MAX` drops every queued op of `client`.
    ///
    /// If the server acknowledges more of this replica's own sequence than it has
    /// issued (the replica was restored from an older snapshot), the next sequence
    /// number moves past it so new ops are not mistaken for old ones. Only a real
    /// acknowledgement (at most [`MAX_SEQ`]) does that.
    pub fn ack(&mut self, client: ClientId, through_seq: u64) -> usize {
        let before = self.outbox.len();
        self.outbox
            .retain(|op| op.client != client || op.seq > through_seq);
        let dropped = before - self.outbox.len();
        if client == self.client() && through_seq >= self.next_seq && through_seq <= MAX_SEQ {
            self.next_seq = through_seq + 1;
        }
        if dropped > 0 {
            self.emit(&[Event::OutboxChanged]);
        }
        dropped
    }

    /// Unacknowledged ops, oldest (by stamp) first. It may hold other tabs' ops
    /// (adopted or merged), each client's in sequence order; push them with
    /// [`Replica::push_request`], which keeps the order safe.
    pub fn outbox(&self) -> &VecDeque<Op> {
        &self.outbox
    }

    /// How many ops wait for an ack.
    pub fn pending(&self) -> usize {
        self.outbox.len()
    }

    /// The next push: the oldest queued op and up to `max_ops - 1` more that
    /// follow it directly from the same client (a push carries one client's ops).
    /// Stopping at another client's op keeps causal order when the outbox holds
    /// another tab's ops too: the next push is sent once this one is acknowledged.
    /// `None` if nothing is queued.
    pub fn push_request(&self, max_ops: usize) -> Option<PushRequest> {
        let client = self.outbox.front()?.client;
        let ops = self
            .outbox
            .iter()
            .take_while(|op| op.client == client)
            .take(max_ops.max(1))
            .cloned()
            .collect();
        Some(PushRequest {
            list: self.list,
            client,
            ops,
        })
    }

    /// Takes over ops queued by another (closed) tab: merges them and queues them
    /// for pushing under their own client id (the server dedups by client and
    /// sequence, so a tab that pushes them too does no harm).
    pub fn adopt_outbox(&mut self, ops: Vec<Op>) {
        let mut events = Vec::new();
        let mut queued: HashSet<(ClientId, u64)> =
            self.outbox.iter().map(|op| (op.client, op.seq)).collect();
        let mut added = false;
        for op in ops {
            self.clock.observe(&op.stamp);
            self.merge_node(&op.to_delta(), &mut events);
            if queued.insert((op.client, op.seq)) {
                self.note_own_seq(&op);
                self.outbox.push_back(op);
                added = true;
            }
        }
        if added {
            self.sort_outbox();
            events.push(Event::OutboxChanged);
        }
        self.emit(&events);
    }

    /// A queued op of this replica's own client from elsewhere (an older copy of
    /// itself) must not have its sequence number reused.
    fn note_own_seq(&mut self, op: &Op) {
        if op.client == self.client() && op.seq >= self.next_seq {
            self.next_seq = op.seq.saturating_add(1);
        }
    }

    /// Orders the outbox by stamp. Stamps follow causality (a replica's clock moves
    /// past everything it merged), so an op never precedes one it depends on, such
    /// as another tab's create of the node it edits; and within one client, stamp
    /// order is sequence order.
    fn sort_outbox(&mut self) {
        self.outbox
            .make_contiguous()
            .sort_by_key(|op| (op.stamp, op.client, op.seq));
    }

    /// Joins another copy of the same list (another tab, or what localStorage
    /// holds): nodes merge, the cursor is the further one, the outboxes are united
    /// by (client, seq). A copy of another list is ignored.
    pub fn merge_replica(&mut self, other: &Replica) -> Vec<Event> {
        let mut events = Vec::new();
        if other.list != self.list {
            return events;
        }
        for node in other.nodes.values() {
            self.merge_node(node, &mut events);
        }
        if let Some(stamp) = other.clock.last() {
            self.clock.observe(&stamp);
        }
        let cursor = if other.cursor.version != self.cursor.version {
            std::cmp::max_by_key(self.cursor, other.cursor, |c| c.version)
        } else {
            Cursor {
                version: self.cursor.version,
                synced_at_ms: self.cursor.synced_at_ms.max(other.cursor.synced_at_ms),
            }
        };
        if cursor != self.cursor {
            self.cursor = cursor;
            events.push(Event::CursorChanged);
        }
        let mut queued: HashSet<(ClientId, u64)> =
            self.outbox.iter().map(|op| (op.client, op.seq)).collect();
        let mut outbox_changed = false;
        for op in &other.outbox {
            if queued.insert((op.client, op.seq)) {
                self.note_own_seq(op);
                self.outbox.push_back(op.clone());
                outbox_changed = true;
            }
        }
        if outbox_changed {
            self.sort_outbox();
            events.push(Event::OutboxChanged);
        }
        if other.client() == self.client() {
            self.next_seq = self.next_seq.max(other.next_seq);
        }
        self.emit(&events);
        events
    }

    /// Forgets everything learnt from the server (nodes, cursor) and keeps only
    /// what is pending: the outbox's ops are merged again into an empty state, so
    /// local writes stay visible until the server's state is pulled anew from
    /// version 0. The clock and sequence numbers are kept. For a client told to
    /// resync, or whose state is suspect.
    pub fn reset_server_state(&mut self) -> Vec<Event> {
        let old = std::mem::take(&mut self.nodes);
        self.children.clear();
        let mut ignored = Vec::new();
        let pending: Vec<Node> = self.outbox.iter().map(Op::to_delta).collect();
        for delta in &pending {
            self.merge_node(delta, &mut ignored);
        }
        let mut events = Vec::new();
        let empty = Node::new(self.list);
        let uids: BTreeSet<Uid> = old.keys().chain(self.nodes.keys()).copied().collect();
        for uid in uids {
            let before = old.get(&uid).unwrap_or(&empty);
            let after = self.nodes.get(&uid).unwrap_or(&empty);
            describe_change(uid, before, after, &mut events);
        }
        if self.cursor != Cursor::default() {
            self.cursor = Cursor::default();
            events.push(Event::CursorChanged);
        }
        self.emit(&events);
        events
    }

    /// Merges one node state and updates the children index and `events`.
    fn merge_node(&mut self, state: &Node, events: &mut Vec<Event>) {
        let uid = state.uid;
        let node = self.nodes.entry(uid).or_insert_with(|| Node::new(uid));
        let before = node.clone();
        if node.merge(state).is_empty() {
            return;
        }
        let (old_entry, new_entry) = (index_entry(&before), index_entry(node));
        if old_entry != new_entry {
            if let Some((parent, key)) = old_entry {
                if let Some(set) = self.children.get_mut(&parent) {
                    set.remove(&(key, uid));
                    if set.is_empty() {
                        self.children.remove(&parent);
                    }
                }
            }
            if let Some((parent, key)) = new_entry {
                self.children.entry(parent).or_default().insert((key, uid));
            }
        }
        describe_change(uid, &before, node, events);
    }

    // ----- reading -----

    /// The cursor (last-sync point).
    pub fn cursor(&self) -> Cursor {
        self.cursor
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
        Some(self.registry.decode::<M>(&node.values()))
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

    // ----- observers -----

    /// Calls `f` with every event from now on.
    pub fn observe(&mut self, f: Box<dyn FnMut(&Event) + Send>) -> ObserverId {
        let id = ObserverId(self.next_observer);
        self.next_observer += 1;
        self.observers.push((id, f));
        id
    }

    /// Stops calling the observer `id`.
    pub fn unobserve(&mut self, id: ObserverId) {
        self.observers.retain(|(other, _)| *other != id);
    }

    fn emit(&mut self, events: &[Event]) {
        for (_, observer) in &mut self.observers {
            for event in events {
                observer(event);
            }
        }
    }

    // ----- snapshots -----

    /// The whole state as JSON (observers excluded):
    /// `{"format":"tether.replica","version":1,"list":…,"client":…,"clock":{…},
    /// "next_seq":…,"cursor":{…},"nodes":[…],"outbox":[…]}`.
    pub fn to_json(&self) -> String {
        let snapshot = SnapshotOut {
            format: SNAPSHOT_FORMAT,
            version: SNAPSHOT_VERSION,
            list: self.list,
            client: self.client(),
            clock: &self.clock,
            next_seq: self.next_seq,
            cursor: self.cursor,
            nodes: self.nodes.values().collect(),
            outbox: &self.outbox,
        };
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string(&snapshot).unwrap_or_default()
    }

    /// Restores a replica from [`Replica::to_json`]'s output, with the standard
    /// registry.
    pub fn from_json(text: &str) -> Result<Replica, SnapshotError> {
        let snapshot = match serde_json::from_str::<SnapshotIn>(text) {
            Ok(snapshot) => snapshot,
            Err(e) => return Err(classify(text, e)),
        };
        check_header(snapshot.format.as_deref(), Some(snapshot.version))?;
        let corrupt = |detail: &str| SnapshotError::Corrupt {
            detail: detail.to_string(),
        };
        if snapshot.clock.client() != snapshot.client {
            return Err(corrupt("clock belongs to another client"));
        }
        if snapshot.next_seq == 0 {
            return Err(corrupt("next_seq must be at least 1"));
        }
        let mut replica = Replica::with_registry(
            snapshot.list,
            snapshot.client,
            registry(),
            snapshot.clock.max_skew_ms(),
        );
        replica.clock = snapshot.clock;
        replica.next_seq = snapshot.next_seq;
        replica.cursor = snapshot.cursor;
        let mut ignored = Vec::new();
        for node in &snapshot.nodes {
            if replica.nodes.contains_key(&node.uid) {
                return Err(corrupt("a node appears twice"));
            }
            replica.merge_node(node, &mut ignored);
        }
        let mut queued = HashSet::new();
        for op in snapshot.outbox {
            if !queued.insert((op.client, op.seq)) {
                return Err(corrupt("an op appears twice in the outbox"));
            }
            if op.client == replica.client() && op.seq >= replica.next_seq {
                return Err(corrupt("an outbox op is numbered past next_seq"));
            }
            replica.outbox.push_back(op);
        }
        replica.sort_outbox();
        Ok(replica)
    }
}

#[derive(Serialize)]
struct SnapshotOut<'a> {
    format: &'static str,
    version: u64,
    list: Uid,
    client: ClientId,
    clock: &'a Hlc,
    next_seq: u64,
    cursor: Cursor,
    nodes: Vec<&'a Node>,
    outbox: &'a VecDeque<Op>,
}

#[derive(Deserialize)]
struct SnapshotIn {
    format: Option<String>,
    version: u64,
    list: Uid,
    client: ClientId,
    clock: Hlc,
    next_seq: u64,
    cursor: Cursor,
    nodes: Vec<Node>,
    outbox: Vec<Op>,
}

/// Just the header, to explain why a full parse failed.
#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    format: Option<Value>,
    #[serde(default)]
    version: Option<Value>,
}

fn check_header(format: Option<&str>, version: Option<u64>) -> Result<(), SnapshotError> {
    if format != Some(SNAPSHOT_FORMAT) {
        return Err(SnapshotError::Foreign);
    }
    match version {
        Some(found) if found < SNAPSHOT_VERSION => Err(SnapshotError::Older {
            found,
            current: SNAPSHOT_VERSION,
        }),
        Some(found) if found > SNAPSHOT_VERSION => Err(SnapshotError::Newer {
            found,
            current: SNAPSHOT_VERSION,
        }),
        Some(_) => Ok(()),
        None => Err(SnapshotError::Corrupt {
            detail: "version is missing or not a number".to_string(),
        }),
    }
}

/// Turns a failed full parse into the most telling error.
fn classify(text: &str, error: serde_json::Error) -> SnapshotError {
    let corrupt = SnapshotError::Corrupt {
        detail: error.to_string(),
    };
    match serde_json::from_str::<Header>(text) {
        Ok(header) => {
            let format = header.format.as_ref().and_then(Value::as_str);
            let version = header.version.as_ref().and_then(Value::as_u64);
            match check_header(format, version) {
                Ok(()) => corrupt,
                Err(e) => e,
            }
        }
        // Valid JSON that is not an object: somebody else's data.
        Err(_) if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => {
            SnapshotError::Foreign
        }
        Err(_) => corrupt,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kinds::{List, Section, Todo};
    use serde_json::json;
    use std::sync::{Arc, Mutex};

    const T: u64 = 1_764_160_000_000;

    fn todo(title: &str) -> Todo {
        Todo {
            title: title.into(),
            completed: false,
        }
    }

    fn replica() -> Replica {
        Replica::new(Uid::new(), ClientId::new())
    }

    fn titles(r: &Replica) -> Vec<String> {
        r.children(r.list())
            .into_iter()
            .map(|uid| match r.get::<Todo>(uid) {
                Some(Ok(t)) => t.title,
                _ => r.get::<Section>(uid).unwrap().unwrap().title,
            })
            .collect()
    }

    #[test]
    fn local_writes_queue_numbered_ops() {
        let mut r = replica();
        let list = r.list();
        let root = r
            .create_root(
                &List {
                    title: "Shopping".into(),
                },
                T,
            )
            .unwrap();
        assert_eq!(root.seq, 1);
        let (milk, op) = r.create(list, Placement::End, &todo("Milk"), T).unwrap();
        assert_eq!((op.seq, op.node()), (2, milk));
        r.set(milk, "completed", json!(true), T).unwrap();
        assert_eq!(r.pending(), 3);
        assert_eq!(
            r.get::<Todo>(milk),
            Some(Ok(Todo {
                title: "Milk".into(),
                completed: true
            }))
        );
        assert!(r.get::<Section>(milk).is_none());
        assert_eq!(r.get::<List>(list).unwrap().unwrap().title, "Shopping");
        let seqs: Vec<_> = r.outbox().iter().map(|o| o.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert!(r.outbox().iter().all(|o| o.client == r.client()));
        assert_eq!(r.ack(r.client(), 2), 2);
        assert_eq!(r.pending(), 1);
        assert_eq!(r.ack(r.client(), 2), 0);
    }

    #[test]
    fn invalid_writes_are_refused_and_change_nothing() {
        let mut r = replica();
        let list = r.list();
        assert!(matches!(
            r.create(list, Placement::End, &todo(" Milk"), T),
            Err(ModelError::Invalid { .. })
        ));
        let (milk, _) = r.create(list, Placement::End, &todo("Milk"), T).unwrap();
        assert!(matches!(
            r.create(milk, Placement::End, &todo("x"), T),
            Err(ModelError::BadParent { .. })
        ));
        assert!(matches!(
            r.set(milk, "completed", json!("yes"), T),
            Err(ModelError::WrongType { .. })
        ));
        let ghost = Uid::new();
        assert_eq!(
            r.set(ghost, "completed", json!(true), T),
            Err(ModelError::NodeNotFound { node: ghost })
        );
        assert!(matches!(
            r.create(list, Placement::After(ghost), &todo("x"), T),
            Err(ModelError::NotASibling { .. })
        ));
        r.delete(milk, T).unwrap();
        assert_eq!(
            r.set(milk, "completed", json!(true), T),
            Err(ModelError::NodeDeleted { node: milk })
        );
        assert_eq!(r.pending(), 2);
        assert_eq!(r.next_seq(), 3);
        // A root kind only as the list node itself.
        let err = r.apply_local(
            Action::Create {
                node: Uid::new(),
                kind: "list".into(),
                parent: None,
                order: OrderKey::first(),
                fields: Default::default(),
            },
            T,
        );
        assert!(matches!(err, Err(ModelError::ForeignNode { .. })));
    }

    #[test]
    fn placement_and_moves_keep_order() {
        let mut r = replica();
        let list = r.list();
        let (b, _) = r.create(list, Placement::End, &todo("b"), T).unwrap();
        let (d, _) = r.create(list, Placement::End, &todo("d"), T).unwrap();
        let (a, _) = r.create(list, Placement::Start, &todo("a"), T).unwrap();
        r.create(list, Placement::After(b), &todo("c"), T).unwrap();
        r.create(list, Placement::Before(a), &todo("0"), T).unwrap();
        assert_eq!(titles(&r), ["0", "a", "b", "c", "d"]);
        r.move_to(d, list, Placement::Start, T).unwrap();
        assert_eq!(titles(&r), ["d", "0", "a", "b", "c"]);
        r.move_to(d, list, Placement::After(a), T).unwrap();
        assert_eq!(titles(&r), ["0", "a", "d", "b", "c"]);
        r.move_to(a, list, Placement::End, T).unwrap();
        assert_eq!(titles(&r), ["0", "d", "b", "c", "a"]);
        r.delete(b, T).unwrap();
        assert_eq!(titles(&r), ["0", "d", "c", "a"]);
        // Moving under itself is refused.
        assert!(matches!(
            r.move_to(a, a, Placement::End, T),
            Err(ModelError::Cycle { .. })
        ));
    }

    #[test]
    fn equal_keys_from_two_clients_sort_by_uid_and_still_take_inserts() {
        let list = Uid::new();
        let mut one = Replica::new(list, ClientId::new());
        let mut two = Replica::new(list, ClientId::new());
        let (x, op_x) = one.create(list, Placement::End, &todo("x"), T).unwrap();
        let (y, op_y) = two.create(list, Placement::End, &todo("y"), T).unwrap();
        one.apply_op(&op_y);
        two.apply_op(&op_x);
        let order = one.children(list);
        assert_eq!(order, two.children(list));
        assert_eq!(order, if x < y { [x, y] } else { [y, x] });
        // After the first of two equal keys: goes after both.
        let (z, _) = one
            .create(list, Placement::After(order[0]), &todo("z"), T)
            .unwrap();
        assert_eq!(one.children(list)[2], z);
        let (w, _) = one
            .create(list, Placement::Before(order[1]), &todo("w"), T)
            .unwrap();
        assert_eq!(one.children(list)[0], w);
    }

    #[test]
    fn events_tell_exactly_what_changed() {
        let mut r = replica();
        let list = r.list();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let id = r.observe(Box::new(move |e| sink.lock().unwrap().push(e.clone())));
        let (milk, _) = r.create(list, Placement::End, &todo("Milk"), T).unwrap();
        r.set(milk, "title", json!("Oat milk"), T).unwrap();
        r.delete(milk, T).unwrap();
        let events = std::mem::take(&mut *seen.lock().unwrap());
        assert_eq!(
            events,
            [
                Event::NodeAdded {
                    node: milk,
                    parent: Some(list)
                },
                Event::ChildrenChanged { parent: list },
                Event::OutboxChanged,
                Event::FieldChanged {
                    node: milk,
                    field: "title".into()
                },
                Event::OutboxChanged,
                Event::NodeRemoved {
                    node: milk,
                    parent: Some(list)
                },
                Event::ChildrenChanged { parent: list },
                Event::OutboxChanged,
            ]
        );
        r.unobserve(id);
        r.create(list, Placement::End, &todo("Eggs"), T).unwrap();
        assert!(seen.lock().unwrap().is_empty());
    }

    #[test]
    fn remote_changes_merge_and_move_the_cursor() {
        let list = Uid::new();
        let mut writer = Replica::new(list, ClientId::new());
        let (milk, op) = writer
            .create(list, Placement::End, &todo("Milk"), T)
            .unwrap();
        let mut reader = Replica::new(list, ClientId::new());
        let change = Change {
            version: 7,
            node: op.to_delta(),
        };
        let events = reader.apply_remote(std::slice::from_ref(&change), T + 5);
        assert!(events.contains(&Event::NodeAdded {
            node: milk,
            parent: Some(list)
        }));
        assert!(events.contains(&Event::CursorChanged));
        assert_eq!(
            reader.cursor(),
            Cursor {
                version: 7,
                synced_at_ms: Some(T + 5)
            }
        );
        // The reader's next write to that node wins over the remote one, even with
        // a wall clock far behind.
        let set = reader.set(milk, "title", json!("Oat milk"), 0).unwrap();
        assert!(set.stamp > op.stamp);
        // A replayed old state changes nothing and says nothing.
        let again = reader.apply_remote(&[change], T + 5);
        assert!(again.is_empty());
        assert_eq!(reader.get::<Todo>(milk).unwrap().unwrap().title, "Oat milk");
    }

    #[test]
    fn reset_keeps_only_pending_writes() {
        let list = Uid::new();
        let mut writer = Replica::new(list, ClientId::new());
        let (milk, op) = writer
            .create(list, Placement::End, &todo("Milk"), T)
            .unwrap();
        let mut r = Replica::new(list, ClientId::new());
        r.apply_remote(
            &[Change {
                version: 3,
                node: op.to_delta(),
            }],
            T,
        );
        let (eggs, _) = r.create(list, Placement::End, &todo("Eggs"), T).unwrap();
        r.set(milk, "completed", json!(true), T).unwrap();
        let events = r.reset_server_state();
        assert!(events.contains(&Event::NodeRemoved {
            node: milk,
            parent: Some(list)
        }));
        assert!(events.contains(&Event::CursorChanged));
        assert!(!events.iter().any(|e| matches!(e, Event::NodeAdded { .. })));
        assert_eq!(r.children(list), [eggs]);
        assert_eq!(r.cursor(), Cursor::default());
        assert_eq!(r.pending(), 2);
        // The pending set on milk is kept as a partial state; the pull brings the rest.
        assert!(r.node(milk).is_some_and(|n| !n.is_live()));
        r.apply_remote(
            &[Change {
                version: 3,
                node: op.to_delta(),
            }],
            T,
        );
        assert!(r.get::<Todo>(milk).unwrap().unwrap().completed);
        assert_eq!(r.children(list).len(), 2);
    }

    #[test]
    fn an_ack_to_drop_everything_keeps_the_sequence() {
        let mut r = replica();
        let list = r.list();
        r.create(list, Placement::End, &todo("Milk"), T).unwrap();
        assert_eq!(r.ack(r.client(), u64::MAX), 1);
        assert_eq!(r.next_seq(), 2);
        // A real ack past what this copy issued moves the sequence on.
        r.ack(r.client(), 9);
        assert_eq!(r.next_seq(), 10);
    }

    #[test]
    fn deleting_a_parent_hides_its_subtree() {
        let mut r = replica();
        let list = r.list();
        r.create_root(&List::default(), T).unwrap();
        r.create(list, Placement::End, &todo("Milk"), T).unwrap();
        assert_eq!(r.children(list).len(), 1);
        r.delete(list, T).unwrap();
        assert!(r.children(list).is_empty());
        assert!(!r.is_visible(list));
        assert!(matches!(
            r.create(list, Placement::End, &todo("x"), T),
            Err(ModelError::NodeDeleted { .. })
        ));
    }

    #[test]
    fn merge_replica_joins_tabs() {
        let list = Uid::new();
        let mut a = Replica::new(list, ClientId::new());
        let mut b = Replica::new(list, ClientId::new());
        a.create(list, Placement::End, &todo("from a"), T).unwrap();
        b.create(list, Placement::End, &todo("from b"), T).unwrap();
        b.apply_remote(&[], T);
        let events = a.merge_replica(&b);
        assert!(events.contains(&Event::OutboxChanged));
        assert!(events.contains(&Event::CursorChanged));
        assert_eq!(a.children(list).len(), 2);
        assert_eq!(a.pending(), 2);
        // One client's run at a time, oldest first.
        let first = a.push_request(10).unwrap();
        assert_eq!(first.ops.len(), 1);
        assert_eq!(first.client, a.outbox()[0].client);
        // Idempotent.
        assert!(a.merge_replica(&b).is_empty());
        let mut b2 = Replica::new(list, ClientId::new());
        b2.adopt_outbox(b.outbox().iter().cloned().collect());
        assert_eq!(b2.pending(), 1);
        assert_eq!(b2.children(list).len(), 1);
    }

    #[test]
    fn snapshot_round_trip() {
        let mut r = replica();
        let list = r.list();
        r.create_root(&List { title: "L".into() }, T).unwrap();
        let (milk, _) = r.create(list, Placement::End, &todo("Milk"), T).unwrap();
        r.create(list, Placement::End, &todo("Eggs"), T).unwrap();
        r.delete(milk, T).unwrap();
        r.apply_remote(&[], T + 1);
        let json = r.to_json();
        let back = Replica::from_json(&json).unwrap();
        assert_eq!(back.to_json(), json);
        assert_eq!(back.children(list), r.children(list));
        assert_eq!(back.cursor(), r.cursor());
        assert_eq!(back.next_seq(), r.next_seq());
        assert_eq!(back.clock(), r.clock());
        assert!(back.outbox().iter().eq(r.outbox().iter()));
        let value: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["format"], "tether.replica");
        assert_eq!(value["version"], 1);
    }

    #[test]
    fn snapshot_errors() {
        let r = replica();
        let mut value: Value = serde_json::from_str(&r.to_json()).unwrap();
        let load = |v: &Value| Replica::from_json(&v.to_string()).map(|_| ());
        assert_eq!(
            Replica::from_json("{nope")
                .unwrap_err()
                .to_string()
                .split(':')
                .next(),
            Some("corrupt snapshot")
        );
        assert_eq!(load(&json!([1, 2])), Err(SnapshotError::Foreign));
        assert_eq!(
            load(&json!({"format": "other"})),
            Err(SnapshotError::Foreign)
        );
        assert_eq!(load(&json!({"hello": 1})), Err(SnapshotError::Foreign));
        value["version"] = json!(0);
        assert_eq!(
            load(&value),
            Err(SnapshotError::Older {
                found: 0,
                current: 1
            })
        );
        value["version"] = json!(2);
        value["nodes"] = json!("a new layout");
        assert_eq!(
            load(&value),
            Err(SnapshotError::Newer {
                found: 2,
                current: 1
            })
        );
        value["version"] = json!(1);
        assert!(matches!(load(&value), Err(SnapshotError::Corrupt { .. })));
        value["nodes"] = json!([]);
        assert!(load(&value).is_ok());
        value["next_seq"] = json!(0);
        assert!(matches!(load(&value), Err(SnapshotError::Corrupt { .. })));
        value["next_seq"] = json!(1);
        value["client"] = json!(ClientId::new());
        assert!(matches!(load(&value), Err(SnapshotError::Corrupt { .. })));
    }
}
