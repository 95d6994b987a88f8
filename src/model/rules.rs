//! The rules every write must follow, given the nodes its list has: one function,
//! [`check_action`], used both by the server on a pushed batch
//! ([`super::batch::plan_push`]) and by a replica on a local write
//! ([`super::Replica::apply_local`]), so a write a replica accepts is one the
//! server accepts. Each side adds only its own extra checks: the server the clock
//! skew and the size of field values, the replica that local writes touch live
//! nodes and make no cycles.
//!
//! The rules: the kind's registry rules for the fields and the parent's kind
//! ([`super::registry`]); a create does not change a node's kind, and only a root
//! kind takes the list's uid (and only there); a `set`, `delete` or `move` names a
//! node the list has; a parent is another node of the list (or the list's uid) and
//! never the node itself; no node of another list is written or named as parent.

use super::op::Action;
use super::registry::Registry;
use super::uid::Uid;
use super::wire::SyncError;

/// The kind of the list node. A list's uid is the implicit root of its tree, of
/// this kind, even before the list node itself is created.
pub const ROOT_KIND: &str = "list";

/// What the rules need to know about the nodes of the list written to.
pub trait ListNodes {
    /// The uid of the list written to.
    fn list(&self) -> Uid;

    /// The kind of a node of this list (`None` for a node it does not have, or has
    /// without a kind yet).
    fn kind_of(&self, node: Uid) -> Option<&str>;

    /// True for a node known to belong to another list. A replica holds one list
    /// only, hence the default.
    fn is_foreign(&self, _node: Uid) -> bool {
        false
    }
}

/// Checks one action against the rules (see the module docs); the first broken
/// rule is the error.
pub fn check_action(
    registry: &Registry,
    nodes: &impl ListNodes,
    action: &Action,
) -> Result<(), SyncError> {
    match action {
        Action::Create {
            node,
            kind,
            parent,
            fields,
            ..
        } => {
            registry.validate_fields(kind, fields)?;
            if nodes.is_foreign(*node) {
                return Err(SyncError::ForeignNode { node: *node });
            }
            if let Some(existing) = nodes.kind_of(*node).filter(|k| k != kind) {
                return Err(SyncError::KindConflict {
                    node: *node,
                    existing: existing.to_string(),
                    requested: kind.clone(),
                });
            }
            registry.check_create_identity(nodes.list(), *node, kind)?;
            registry.validate_parent(kind, parent_kind(nodes, *node, *parent)?)
        }
        Action::Set {
            node, field, value, ..
        } => registry.validate_field(existing_kind(nodes, *node)?, field, value),
        Action::Delete { node } => existing_kind(nodes, *node).map(drop),
        Action::Move { node, parent, .. } => {
            let kind = existing_kind(nodes, *node)?;
            registry.validate_parent(kind, parent_kind(nodes, *node, *parent)?)
        }
    }
}

/// The kind of a node the list must already have.
fn existing_kind(nodes: &impl ListNodes, node: Uid) -> Result<&str, SyncError> {
    if nodes.is_foreign(node) {
        return Err(SyncError::ForeignNode { node });
    }
    nodes.kind_of(node).ok_or(SyncError::NodeNotFound { node })
}

/// The kind of the parent named for `node` (`None` for no parent).
fn parent_kind(
    nodes: &impl ListNodes,
    node: Uid,
    parent: Option<Uid>,
) -> Result<Option<&str>, SyncError> {
    let Some(parent) = parent else {
        return Ok(None);
    };
    if parent == node {
        return Err(SyncError::MalformedRequest {
            detail: format!("node {node} cannot be its own parent"),
        });
    }
    if nodes.is_foreign(parent) {
        return Err(SyncError::ForeignParent { node, parent });
    }
    if parent == nodes.list() {
        return Ok(Some(ROOT_KIND));
    }
    match nodes.kind_of(parent) {
        Some(kind) => Ok(Some(kind)),
        None => Err(SyncError::ParentNotFound { node, parent }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use crate::model::batch::{plan_push, Limits, StoredNode};
    use crate::model::clock::Stamp;
    use crate::model::kinds::Todo;
    use crate::model::op::{Action, Op};
    use crate::model::order::OrderKey;
    use crate::model::registry::{registry, Fields};
    use crate::model::replica::{Placement, Replica};
    use crate::model::uid::{ClientId, Uid};
    use crate::model::wire::{PushRequest, SyncError};

    const T: u64 = 1_764_160_000_000;

    fn create(node: Uid, kind: &str, parent: Option<Uid>, fields: serde_json::Value) -> Action {
        Action::Create {
            node,
            kind: kind.into(),
            parent,
            order: OrderKey::first(),
            fields: serde_json::from_value::<Fields>(fields).unwrap(),
        }
    }

    /// What the server answers for `action` pushed after `stored`.
    fn server(
        list: Uid,
        client: ClientId,
        stored: &HashMap<Uid, StoredNode>,
        action: Action,
    ) -> SyncError {
        let op = Op {
            client,
            seq: 2,
            stamp: Stamp {
                wall_ms: T,
                counter: 9,
                client,
            },
            action,
        };
        let req = PushRequest {
            list,
            client,
            ops: vec![op],
        };
        plan_push(registry(), &Limits::DEFAULT, &req, 1, stored, T).unwrap_err()
    }

    #[test]
    fn a_replica_refuses_what_the_server_refuses_with_the_same_error() {
        let (list, client) = (Uid::new(), ClientId::new());
        let mut replica = Replica::new(list, client);
        let milk = Todo {
            title: "Milk".into(),
            completed: false,
        };
        let (milk, op) = replica.create(list, Placement::End, &milk, T).unwrap();
        let first = PushRequest {
            list,
            client,
            ops: vec![op],
        };
        let plan = plan_push(registry(), &Limits::DEFAULT, &first, 0, &HashMap::new(), T);
        let stored: HashMap<Uid, StoredNode> = (plan.unwrap().changed.into_iter())
            .map(|node| (node.uid, StoredNode { list, node }))
            .collect();
        let ghost = Uid::new();
        let set = |field: &str, value| Action::Set {
            node: milk,
            field: field.into(),
            value,
            replaces: None,
        };
        let refused = [
            create(Uid::new(), "todo", Some(ghost), json!({"title": "x"})),
            create(Uid::new(), "todo", Some(milk), json!({"title": "x"})),
            create(Uid::new(), "todo", Some(list), json!({"title": null})),
            create(Uid::new(), "todo", Some(list), json!({})),
            create(Uid::new(), "cake", Some(list), json!({})),
            create(Uid::new(), "list", None, json!({})),
            create(list, "todo", Some(list), json!({"title": "x"})),
            create(milk, "section", Some(list), json!({"title": "x"})),
            set("colour", json!("red")),
            set("completed", json!(null)),
            set("title", json!(" padded")),
            Action::Delete { node: ghost },
            Action::Move {
                node: ghost,
                parent: Some(list),
                order: OrderKey::first(),
            },
        ];
        for action in refused {
            let local = replica.apply_local(action.clone(), T).unwrap_err();
            assert_eq!(
                SyncError::from(local),
                server(list, client, &stored, action),
            );
        }
        assert_eq!(replica.pending(), 1);
    }
}
