//! Undo and redo of one replica's own writes.
//!
//! Every user action (an add, an edit, a toggle, a delete, a move, or a whole
//! "clear completed" or "toggle all") is recorded as an [`Entry`] of [`Step`]s, each
//! holding what is needed to take one write back. Undoing an entry turns each step
//! into its inverse *against the current replica* and writes it as a new, ordinary
//! local write (stamped, queued in the outbox, synced like any other); the inverse
//! writes are recorded in turn as the entry that redo takes back. So undo followed
//! by redo returns the state, and both work offline.
//!
//! Undo never overwrites someone else's later change. A step is taken back only if
//! what it wrote is still there as this replica wrote it; otherwise it is skipped
//! and reported ([`Skip`]):
//!
//! * an edit (`set`): the field's current register was written by this replica and
//!   holds the value the step wrote;
//! * a move: likewise for the position;
//! * an add: the node is live and every part of it (fields, position) was written
//!   by this replica; taking it back deletes it;
//! * a delete: a deleted node stays deleted (tombstones are final), so taking it
//!   back creates a *new* node with the old one's kind, fields (as last known) and
//!   position, provided its parent is still there. Later steps that name the old
//!   node then name the new one ([`History`] keeps the renames).
//!
//! The list node itself (its create) is never recorded.

use std::collections::BTreeMap;

use super::node::{Node, Position};
use super::op::{Action, Op};
use super::registry::{Registry, Value};
use super::replica::{ModelError, Replica};
use super::uid::{ClientId, Uid};

/// How many entries the undo stack keeps; older ones are forgotten.
pub const MAX_ENTRIES: usize = 200;

/// What it takes to take back one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The node was created.
    Created { node: Uid },
    /// A field went from `before` to `after`.
    Set {
        node: Uid,
        field: String,
        before: Value,
        after: Value,
    },
    /// The node was deleted; `state` is what it was just before.
    Deleted { node: Uid, state: Box<Node> },
    /// The node moved from `before` to `after`.
    Moved {
        node: Uid,
        before: Position,
        after: Position,
    },
}

impl Step {
    /// The step that takes back `op`, given the state of its node just before it
    /// (`None` for a node the replica did not have). `None` for a create of the
    /// list node itself, which is never taken back.
    pub fn of(op: &Op, before: Option<&Node>, registry: &Registry) -> Option<Step> {
        let node = op.node();
        match &op.action {
            Action::Create { parent: None, .. } => None,
            Action::Create { .. } => Some(Step::Created { node }),
            Action::Set { field, value, .. } => {
                let old = before.and_then(|n| n.fields_with_defaults(registry).remove(field));
                Some(Step::Set {
                    node,
                    field: field.clone(),
                    before: old.unwrap_or(Value::Null),
                    after: value.clone(),
                })
            }
            Action::Delete { .. } => Some(Step::Deleted {
                node,
                state: Box::new(before.cloned().unwrap_or_else(|| Node::new(node))),
            }),
            Action::Move { parent, order, .. } => {
                let before = before.and_then(|n| n.position.as_ref())?.value.clone();
                Some(Step::Moved {
                    node,
                    before,
                    after: Position {
                        parent: *parent,
                        order: order.clone(),
                    },
                })
            }
        }
    }

    /// The node the step is about (as recorded).
    pub fn node(&self) -> Uid {
        match self {
            Step::Created { node }
            | Step::Set { node, .. }
            | Step::Deleted { node, .. }
            | Step::Moved { node, .. } => *node,
        }
    }
}

/// One user action: its steps, in the order they were written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub steps: Vec<Step>,
}

/// Why a step was not taken back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Someone else changed it since: `field` of `node`, or the node's position
    /// (`field` is `None`) or, for an add, any part of it.
    ChangedByOthers { node: Uid, field: Option<String> },
    /// The node (or, for a delete, its parent) is gone.
    Gone { node: Uid },
    /// The replica refused the inverse write.
    Refused { node: Uid, error: ModelError },
}

impl Skip {
    pub fn node(&self) -> Uid {
        match self {
            Skip::ChangedByOthers { node, .. }
            | Skip::Gone { node }
            | Skip::Refused { node, .. } => *node,
        }
    }
}

/// What an undo or a redo did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The writes made, in order (already applied and queued in the outbox).
    pub ops: Vec<Op>,
    /// The steps that were not taken back, and why.
    pub skipped: Vec<Skip>,
}

/// One replica's undo and redo stacks. Lives as long as the replica's writer (a
/// browser tab): its steps are this replica's own writes.
#[derive(Debug, Clone, Default)]
pub struct History {
    undo: Vec<Entry>,
    redo: Vec<Entry>,
    /// Deleted nodes brought back as new nodes: old uid → new uid.
    renamed: BTreeMap<Uid, Uid>,
}

impl History {
    pub fn new() -> History {
        History::default()
    }

    /// Records a new user action; the redo stack is cleared (as everywhere). An
    /// action without steps records nothing.
    pub fn record(&mut self, steps: Vec<Step>) {
        if steps.is_empty() {
            return;
        }
        self.undo.push(Entry { steps });
        if self.undo.len() > MAX_ENTRIES {
            self.undo.remove(0);
        }
        self.redo.clear();
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    /// Takes back the last action (see the module docs); `None` if there is none.
    pub fn undo(&mut self, replica: &mut Replica, wall_ms: u64) -> Option<Outcome> {
        let entry = self.undo.pop()?;
        let (outcome, inverse) = self.take_back(&entry, replica, wall_ms);
        if !inverse.steps.is_empty() {
            self.redo.push(inverse);
        }
        Some(outcome)
    }

    /// Writes again the last action taken back; `None` if there is none.
    pub fn redo(&mut self, replica: &mut Replica, wall_ms: u64) -> Option<Outcome> {
        let entry = self.redo.pop()?;
        let (outcome, inverse) = self.take_back(&entry, replica, wall_ms);
        if !inverse.steps.is_empty() {
            self.undo.push(inverse);
        }
        Some(outcome)
    }

    /// The node `uid` is now (after deletes were taken back as new nodes).
    pub fn current(&self, mut uid: Uid) -> Uid {
        // Each rename points to a node born later, so this ends.
        while let Some(next) = self.renamed.get(&uid) {
            uid = *next;
        }
        uid
    }

    /// Writes the inverse of every step of `entry`, last first, and returns what was
    /// done with the entry that takes those writes back.
    fn take_back(
        &mut self,
        entry: &Entry,
        replica: &mut Replica,
        wall_ms: u64,
    ) -> (Outcome, Entry) {
        let mut outcome = Outcome::default();
        let mut inverse = Entry::default();
        for step in entry.steps.iter().rev() {
            let node = self.current(step.node());
            let planned = match plan(step, node, replica) {
                Ok(action) => action,
                Err(skip) => {
                    outcome.skipped.push(skip);
                    continue;
                }
            };
            let written = planned.node();
            let before = replica.node(written).cloned();
            match replica.apply_local(planned, wall_ms) {
                Ok(op) => {
                    if written != node {
                        self.renamed.insert(node, written);
                    }
                    inverse
                        .steps
                        .extend(Step::of(&op, before.as_ref(), replica.registry()));
                    outcome.ops.push(op);
                }
                Err(error) => outcome.skipped.push(Skip::Refused { node, error }),
            }
        }
        (outcome, inverse)
    }
}

/// The write that takes `step` back, `node` being the node it is about now.
fn plan(step: &Step, node: Uid, replica: &Replica) -> Result<Action, Skip> {
    let me = replica.client();
    let current = replica.node(node);
    let live = current.filter(|n| n.is_live());
    match step {
        Step::Created { .. } => {
            let n = live.ok_or(Skip::Gone { node })?;
            if !all_mine(n, me) {
                return Err(Skip::ChangedByOthers { node, field: None });
            }
            Ok(Action::Delete { node })
        }
        Step::Set {
            field,
            before,
            after,
            ..
        } => {
            let n = live.ok_or(Skip::Gone { node })?;
            let register = n.fields.get(field);
            if !register.is_some_and(|r| r.stamp.client == me && r.value == *after) {
                let field = Some(field.clone());
                return Err(Skip::ChangedByOthers { node, field });
            }
            Ok(Action::Set {
                node,
                field: field.clone(),
                value: before.clone(),
                replaces: None,
            })
        }
        Step::Moved { before, after, .. } => {
            let n = live.ok_or(Skip::Gone { node })?;
            let position = n.position.as_ref();
            if !position.is_some_and(|p| p.stamp.client == me && p.value == *after) {
                return Err(Skip::ChangedByOthers { node, field: None });
            }
            Ok(Action::Move {
                node,
                parent: before.parent,
                order: before.order.clone(),
            })
        }
        Step::Deleted { state, .. } => recreate(state, current, node, replica),
    }
}

/// A create of a new node with the deleted node's kind, fields and position, the
/// recorded state joined with what the replica knows now (edits that reached the
/// tombstone since count).
fn recreate(
    recorded: &Node,
    current: Option<&Node>,
    node: Uid,
    replica: &Replica,
) -> Result<Action, Skip> {
    let mut state = recorded.clone();
    state.uid = node;
    if let Some(current) = current {
        state.merge(current);
    }
    let gone = Skip::Gone { node };
    let kind = state.kind_name().ok_or(gone.clone())?.to_string();
    let position = state.position.as_ref().ok_or(gone.clone())?.value.clone();
    let parent = position.parent.ok_or(gone.clone())?;
    if !replica.is_visible(parent) {
        return Err(gone);
    }
    Ok(Action::Create {
        node: Uid::new(),
        kind,
        parent: Some(parent),
        order: position.order,
        fields: state.values(),
    })
}

/// True if every part of `node` that others could change was written by `me`.
fn all_mine(node: &Node, me: ClientId) -> bool {
    let position = node.position.as_ref().is_none_or(|p| p.stamp.client == me);
    position && node.fields.values().all(|r| r.stamp.client == me)
}
