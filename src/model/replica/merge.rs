//! Merging what others wrote: ops from other tabs, node states from the server,
//! another copy of the same list, and a reset to only what is pending. Every merge
//! is a join, so arrival order does not matter; each keeps the children index in
//! step and reports what visibly changed.

use std::collections::BTreeSet;

use super::events::describe_change;
use super::{Cursor, Event, Replica};
use crate::model::node::Node;
use crate::model::op::Op;
use crate::model::order::OrderKey;
use crate::model::replaced::replaced_fields;
use crate::model::uid::Uid;
use crate::model::wire::Change;

impl Replica {
    /// Merges an op made by another tab. It is not queued: that tab pushes it.
    pub fn apply_op(&mut self, op: &Op) -> Vec<Event> {
        self.clock.observe(&op.stamp);
        let mut events = Vec::new();
        self.merge_node(&op.to_delta(), &mut events);
        self.emit(&events);
        events
    }

    /// Merges node states from the server and moves the cursor to the highest
    /// version seen, reached at `server_time_ms` (or at the time already stored, if
    /// that is later: "last synced" never goes backwards).
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
        // Nodes' clocks differ a little: a page from a node whose clock is behind
        // never makes "last synced" earlier.
        let cursor = Cursor {
            version,
            synced_at_ms: Some(server_time_ms).max(self.cursor.synced_at_ms),
        };
        self.move_cursor(cursor, &mut events);
        self.emit(&events);
        events
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
        self.move_cursor(self.cursor.join(other.cursor), &mut events);
        if self.enqueue(&other.outbox) {
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
        self.move_cursor(Cursor::default(), &mut events);
        self.emit(&events);
        events
    }

    /// Merges one node state and updates the children index and `events`.
    pub(super) fn merge_node(&mut self, state: &Node, events: &mut Vec<Event>) {
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
        let replaced = replaced_fields(self.clock.client(), &before, node);
        events.extend(replaced.into_iter().map(Event::Replaced));
    }
}

/// A node's entry in the children index, if it has one.
pub(super) fn index_entry(node: &Node) -> Option<(Uid, OrderKey)> {
    if !node.is_live() {
        return None;
    }
    let position = &node.position.as_ref()?.value;
    Some((position.parent?, position.order.clone()))
}
