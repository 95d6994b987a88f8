//! Local writes: a replica's own creates, sets, deletes and moves, checked with
//! the server's rules ([`check_action`]) and the replica's own, stamped, numbered,
//! merged at once and queued in the outbox; and where a placed node's order key
//! falls among its siblings.

use std::collections::BTreeSet;
use std::ops::Bound::{Excluded, Unbounded};

use super::merge::index_entry;
use super::{Event, ModelError, Replica};
use crate::model::node::Node;
use crate::model::op::{Action, Op};
use crate::model::order::OrderKey;
use crate::model::registry::{Model, Value};
use crate::model::rules::{check_action, ListNodes};
use crate::model::uid::Uid;

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

impl Replica {
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
        let replaces = None; // filled in by `apply_local`
        let action = Action::Set {
            node,
            field,
            value,
            replaces,
        };
        self.apply_local(action, wall_ms)
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
    ///
    /// A `set` names the stamp of the value it replaces here (`replaces`), whatever
    /// the caller gave: only this replica knows what it saw.
    pub fn apply_local(&mut self, mut action: Action, wall_ms: u64) -> Result<Op, ModelError> {
        self.check_local(&action)?;
        if let Action::Set {
            node,
            field,
            replaces,
            ..
        } = &mut action
        {
            *replaces = self
                .nodes
                .get(node)
                .and_then(|n| n.fields.get(field.as_str()))
                .map(|r| r.stamp);
        }
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

    /// The rules the server applies ([`check_action`], so a write accepted here
    /// is accepted there), plus the replica's own: a move makes no cycle, and local
    /// writes touch live nodes only (a create a new one, under a live parent).
    fn check_local(&self, action: &Action) -> Result<(), ModelError> {
        self.check_no_cycle(action)?;
        check_action(self.registry, self, action)?;
        self.check_live(action)
    }

    /// A move under the node itself or one of its descendants is a cycle.
    fn check_no_cycle(&self, action: &Action) -> Result<(), ModelError> {
        if let Action::Move {
            node,
            parent: Some(parent),
            ..
        } = action
        {
            if self.ancestors(*parent).any(|a| a == *node) {
                return Err(ModelError::Cycle {
                    node: *node,
                    parent: *parent,
                });
            }
        }
        Ok(())
    }

    /// The node a create names is new; the node any other write names, and the
    /// parent named, are not deleted (the list's uid included).
    fn check_live(&self, action: &Action) -> Result<(), ModelError> {
        let deleted = |uid: &Uid| self.nodes.get(uid).is_some_and(Node::is_deleted);
        if let Action::Create { node, .. } = action {
            if self.nodes.get(node).and_then(Node::kind_name).is_some() {
                return Err(ModelError::NodeExists { node: *node });
            }
        } else if deleted(&action.node()) {
            return Err(ModelError::NodeDeleted {
                node: action.node(),
            });
        }
        match action.parent().filter(deleted) {
            Some(parent) => Err(ModelError::NodeDeleted { node: parent }),
            None => Ok(()),
        }
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
}

/// The rules see the nodes this replica knows, all of its one list.
impl ListNodes for Replica {
    fn list(&self) -> Uid {
        self.list
    }

    fn kind_of(&self, node: Uid) -> Option<&str> {
        self.nodes.get(&node).and_then(Node::kind_name)
    }
}
