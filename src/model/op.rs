//! Ops: the four writes a replica can make to a list (create, set, delete, move).
//!
//! An [`Op`] carries who made it (`client`), its place in that client's sequence
//! (`seq`, from 1, which the server uses to apply it once however often it is
//! resent) and its [`Stamp`]. What it writes is a partial [`Node`] state,
//! [`Op::to_delta`]; applying an op is merging that delta, so ops commute and
//! applying one twice changes nothing.
//!
//! # JSON
//!
//! The action's fields sit beside the envelope's, tagged by `"op"`:
//!
//! ```json
//! {"client": "6f1c…", "seq": 1, "stamp": "1764160000000:0:6f1c…",
//!  "op": "create", "node": "0b7f…", "kind": "todo", "parent": "5d1e…", "order": "a0",
//!  "fields": {"title": "Milk", "completed": false}}
//! {"client": "6f1c…", "seq": 2, "stamp": "…", "op": "set", "node": "0b7f…", "field": "completed", "value": true,
//!  "replaces": "1764160000000:0:6f1c…"}
//! {"client": "6f1c…", "seq": 3, "stamp": "…", "op": "move", "node": "0b7f…", "parent": "5d1e…", "order": "Zz"}
//! {"client": "6f1c…", "seq": 4, "stamp": "…", "op": "delete", "node": "0b7f…"}
//! ```

use serde::Serialize;

use super::clock::Stamp;
use super::node::{Node, Position, Register};
use super::order::OrderKey;
use super::registry::{Fields, Value};
use super::uid::{ClientId, Uid};

/// One write, with its envelope. Decoded in one pass (`super::tagged`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Op {
    pub client: ClientId,
    pub seq: u64,
    pub stamp: Stamp,
    #[serde(flatten)]
    pub action: Action,
}

/// What an op writes. Decoded in one pass (`super::tagged`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Action {
    /// A new node of `kind` under `parent` (`None` only for the list node itself),
    /// with its fields.
    Create {
        node: Uid,
        kind: String,
        parent: Option<Uid>,
        order: OrderKey,
        fields: Fields,
    },
    /// One field of an existing node. `replaces` is the stamp of the value the
    /// writer saw in the field when it wrote (optional: a writer may leave it out,
    /// and then no "your change was replaced" notice is ever drawn from this write;
    /// see [`super::replaced`]).
    Set {
        node: Uid,
        field: String,
        value: Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        replaces: Option<Stamp>,
    },
    /// A tombstone: the node and everything under it disappear for good.
    Delete { node: Uid },
    /// A new position for an existing node.
    Move {
        node: Uid,
        parent: Option<Uid>,
        order: OrderKey,
    },
}

/// The action a tag names, its fields taken from `slots` (of [`Op`] or [`Action`]).
macro_rules! action_from {
    ($tag:expr, $slots:ident) => {
        match $tag {
            "create" => Action::Create {
                node: $slots.node()?,
                kind: $slots.kind()?,
                parent: $slots.parent()?,
                order: $slots.order()?,
                fields: $slots.fields()?,
            },
            "set" => Action::Set {
                node: $slots.node()?,
                field: $slots.field()?,
                value: $slots.value()?,
                replaces: $slots.replaces()?,
            },
            "delete" => Action::Delete {
                node: $slots.node()?,
            },
            "move" => Action::Move {
                node: $slots.node()?,
                parent: $slots.parent()?,
                order: $slots.order()?,
            },
            other => return $slots.unknown(other, &["create", "set", "delete", "move"]),
        }
    };
}

super::tagged::tagged_deserialize! {
    Op, tag = "op", expecting = "an op",
    required {
        client: ClientId, seq: u64, stamp: Stamp,
        node: Uid, kind: String, order: OrderKey, fields: Fields, field: String, value: Value,
    }
    optional { parent: Uid, replaces: Stamp }
    build |tag, slots| {
        let action = action_from!(tag, slots);
        Ok(Op {
            client: slots.client()?,
            seq: slots.seq()?,
            stamp: slots.stamp()?,
            action,
        })
    }
}

super::tagged::tagged_deserialize! {
    Action, tag = "op", expecting = "an op's action",
    required { node: Uid, kind: String, order: OrderKey, fields: Fields, field: String, value: Value }
    optional { parent: Uid, replaces: Stamp }
    build |tag, slots| Ok(action_from!(tag, slots))
}

impl Action {
    /// The node the action writes.
    pub fn node(&self) -> Uid {
        match self {
            Action::Create { node, .. }
            | Action::Set { node, .. }
            | Action::Delete { node }
            | Action::Move { node, .. } => *node,
        }
    }

    /// The parent the action names (create and move), if any.
    pub fn parent(&self) -> Option<Uid> {
        match self {
            Action::Create { parent, .. } | Action::Move { parent, .. } => *parent,
            Action::Set { .. } | Action::Delete { .. } => None,
        }
    }

    /// The action's name as in the JSON tag.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Create { .. } => "create",
            Action::Set { .. } => "set",
            Action::Delete { .. } => "delete",
            Action::Move { .. } => "move",
        }
    }
}

impl Op {
    /// The node the op writes.
    pub fn node(&self) -> Uid {
        self.action.node()
    }

    /// The partial node state the op writes, every part stamped with the op's stamp.
    pub fn to_delta(&self) -> Node {
        let stamp = self.stamp;
        let mut node = Node::new(self.node());
        match &self.action {
            Action::Create {
                kind,
                parent,
                order,
                fields,
                ..
            } => {
                node.kind = Some(Register::new(kind.clone(), stamp));
                let position = Position {
                    parent: *parent,
                    order: order.clone(),
                };
                node.position = Some(Register::new(position, stamp));
                node.fields = fields
                    .iter()
                    .map(|(name, value)| (name.clone(), Register::new(value.clone(), stamp)))
                    .collect();
            }
            Action::Set {
                field,
                value,
                replaces,
                ..
            } => {
                let register = Register {
                    value: value.clone(),
                    stamp,
                    replaces: *replaces,
                };
                node.fields.insert(field.clone(), register);
            }
            Action::Delete { .. } => node.deleted = Some(stamp),
            Action::Move { parent, order, .. } => {
                let position = Position {
                    parent: *parent,
                    order: order.clone(),
                };
                node.position = Some(Register::new(position, stamp));
            }
        }
        node
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(action: Action) -> Op {
        let client = ClientId::from_random_bytes([3; 16]);
        Op {
            client,
            seq: 1,
            stamp: Stamp {
                wall_ms: 10,
                counter: 0,
                client,
            },
            action,
        }
    }

    #[test]
    fn json_is_flat_and_round_trips() {
        let node = Uid::from_random_bytes([1; 16]);
        let parent = Uid::from_random_bytes([2; 16]);
        let create = op(Action::Create {
            node,
            kind: "todo".into(),
            parent: Some(parent),
            order: OrderKey::first(),
            fields: Fields::from([("title".to_string(), json!("Milk"))]),
        });
        let json = serde_json::to_value(&create).unwrap();
        assert_eq!(json["op"], "create");
        assert_eq!(json["seq"], 1);
        assert_eq!(json["node"], node.to_string());
        assert_eq!(json["stamp"], create.stamp.to_string());
        assert_eq!(serde_json::from_value::<Op>(json).unwrap(), create);
        for action in [
            Action::Set {
                node,
                field: "completed".into(),
                value: json!(true),
                replaces: None,
            },
            Action::Set {
                node,
                field: "title".into(),
                value: json!("Oat milk"),
                replaces: Some(Stamp {
                    wall_ms: 9,
                    counter: 2,
                    client: ClientId::from_random_bytes([4; 16]),
                }),
            },
            Action::Delete { node },
            Action::Move {
                node,
                parent: None,
                order: OrderKey::first(),
            },
        ] {
            let o = op(action);
            let text = serde_json::to_string(&o).unwrap();
            assert_eq!(serde_json::from_str::<Op>(&text).unwrap(), o);
        }
        assert!(serde_json::from_value::<Op>(json!({"op": "explode"})).is_err());
    }

    #[test]
    fn deltas_write_what_the_op_says() {
        let node = Uid::from_random_bytes([1; 16]);
        let create = op(Action::Create {
            node,
            kind: "todo".into(),
            parent: None,
            order: OrderKey::first(),
            fields: Fields::from([("title".to_string(), json!("Milk"))]),
        });
        let d = create.to_delta();
        assert_eq!(d.kind_name(), Some("todo"));
        assert_eq!(d.field("title"), Some(&json!("Milk")));
        assert_eq!(d.order(), Some(&OrderKey::first()));
        let del = op(Action::Delete { node }).to_delta();
        assert_eq!(del.deleted, Some(create.stamp));
        assert!(del.kind.is_none());
    }
}
