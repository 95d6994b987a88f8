//! Merge laws: [`Node::merge`] is commutative, associative and idempotent, and
//! applying ops in any order, any number of times, gives the same state (nodes and
//! children order) on a replica.
//!
//! Stamps and values are drawn from tiny domains so that ties (equal stamps with
//! different values, which only a broken or forged history has) occur often: the
//! merge must be deterministic even then.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;

use super::support::{config, visible_tree};
use crate::model::clock::Stamp;
use crate::model::node::{Node, Position, Register};
use crate::model::op::{Action, Op};
use crate::model::order::OrderKey;
use crate::model::registry::Value;
use crate::model::replica::Replica;
use crate::model::uid::{ClientId, Uid};

fn uid(n: u8) -> Uid {
    Uid::from_random_bytes([n; 16])
}

fn client(n: u8) -> ClientId {
    ClientId::from_random_bytes([n; 16])
}

fn stamp() -> impl Strategy<Value = Stamp> {
    (0..3u64, 0..2u32, 0..2u8).prop_map(|(wall_ms, counter, c)| Stamp {
        wall_ms,
        counter,
        client: client(c),
    })
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("Milk")),
        Just(json!("Eggs")),
        Just(json!(true)),
        Just(json!(false)),
        Just(json!(null)),
        Just(json!({"b": 1, "a": [1, 2]})),
    ]
}

fn order_key() -> impl Strategy<Value = OrderKey> {
    prop_oneof![Just("a0"), Just("a0V"), Just("a1"), Just("Zz")]
        .prop_map(|k| OrderKey::parse(k).unwrap_or_else(|_| OrderKey::first()))
}

fn register<T: std::fmt::Debug + Clone>(
    value: impl Strategy<Value = T>,
) -> impl Strategy<Value = Register<T>> {
    (value, stamp(), proptest::option::of(stamp())).prop_map(|(value, stamp, replaces)| Register {
        value,
        stamp,
        replaces,
    })
}

fn position() -> impl Strategy<Value = Position> {
    (
        prop::option::of(prop_oneof![Just(uid(10)), Just(uid(11))]),
        order_key(),
    )
        .prop_map(|(parent, order)| Position { parent, order })
}

/// A state of node `uid(1)`.
fn node() -> impl Strategy<Value = Node> {
    let kind = prop::option::of(register(prop_oneof![
        Just("todo".to_string()),
        Just("section".to_string())
    ]));
    let fields = prop::collection::btree_map(
        prop_oneof![Just("title".to_string()), Just("completed".to_string())],
        register(value()),
        0..3,
    );
    (
        kind,
        prop::option::of(register(position())),
        fields,
        prop::option::of(stamp()),
    )
        .prop_map(|(kind, position, fields, deleted)| Node {
            uid: uid(1),
            kind,
            position,
            fields,
            deleted,
        })
}

fn merged(a: &Node, b: &Node) -> Node {
    let mut out = a.clone();
    out.merge(b);
    out
}

/// Ops on a handful of nodes of one list, with arbitrary (possibly tied) stamps.
fn op(list: Uid) -> impl Strategy<Value = Op> {
    let node = prop_oneof![Just(uid(1)), Just(uid(2)), Just(uid(3))];
    let parent = prop_oneof![Just(list), Just(uid(1)), Just(uid(2))];
    let action = prop_oneof![
        (node.clone(), parent.clone(), order_key(), value()).prop_map(
            |(node, parent, order, title)| Action::Create {
                node,
                kind: "todo".into(),
                parent: Some(parent),
                order,
                fields: [("title".to_string(), title)].into(),
            }
        ),
        (node.clone(), value(), proptest::option::of(stamp())).prop_map(
            |(node, value, replaces)| Action::Set {
                node,
                field: "title".into(),
                value,
                replaces,
            }
        ),
        node.clone().prop_map(|node| Action::Delete { node }),
        (node, parent, order_key()).prop_map(|(node, parent, order)| Action::Move {
            node,
            parent: Some(parent),
            order,
        }),
    ];
    (stamp(), 1..100u64, action).prop_map(|(stamp, seq, action)| Op {
        client: stamp.client,
        seq,
        stamp,
        action,
    })
}

/// Ops, and the same ops shuffled with some of them repeated.
fn ops_and_replay(list: Uid) -> impl Strategy<Value = (Vec<Op>, Vec<Op>)> {
    prop::collection::vec(op(list), 0..12).prop_flat_map(|ops| {
        let n = ops.len();
        let repeats = prop::collection::vec(0..n.max(1), 0..4);
        (Just(ops.clone()), Just(ops).prop_shuffle(), repeats).prop_map(
            |(ops, mut shuffled, repeats)| {
                for i in repeats {
                    if let Some(op) = ops.get(i) {
                        shuffled.push(op.clone());
                    }
                }
                (ops, shuffled)
            },
        )
    })
}

fn replay(list: Uid, ops: &[Op]) -> Replica {
    let mut replica = Replica::new(list, client(9));
    for op in ops {
        replica.apply_op(op);
    }
    replica
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn merge_is_commutative(a in node(), b in node()) {
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
    }

    #[test]
    fn merge_is_associative(a in node(), b in node(), c in node()) {
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
    }

    #[test]
    fn merge_is_idempotent(a in node(), b in node()) {
        prop_assert_eq!(merged(&a, &a), a.clone());
        let ab = merged(&a, &b);
        prop_assert_eq!(merged(&ab, &b), ab.clone());
        prop_assert_eq!(merged(&ab, &a), ab);
    }

    #[test]
    fn diff_is_empty_exactly_when_nothing_changed(a in node(), b in node()) {
        let mut out = a.clone();
        let diff = out.merge(&b);
        prop_assert_eq!(diff.is_empty(), out == a);
        // A deleted node stays deleted.
        if a.is_deleted() || b.is_deleted() {
            prop_assert!(out.is_deleted());
        }
    }

    #[test]
    fn ops_in_any_order_and_repeated_give_one_state(
        (ops, replayed) in ops_and_replay(uid(200))
    ) {
        let list = uid(200);
        let a = replay(list, &ops);
        let b = replay(list, &replayed);
        let nodes = |r: &Replica| -> BTreeMap<Uid, Node> {
            r.nodes().map(|n| (n.uid, n.clone())).collect()
        };
        prop_assert_eq!(nodes(&a), nodes(&b));
        // The incrementally kept children index agrees, and matches a tree built
        // from scratch.
        let tree = visible_tree(list, &nodes(&a));
        for (parent, children) in &tree {
            prop_assert_eq!(&a.children(*parent), children);
            prop_assert_eq!(&b.children(*parent), children);
        }
        // Plain merging of deltas agrees with the replica.
        let mut plain: BTreeMap<Uid, Node> = BTreeMap::new();
        for op in replayed.iter().rev() {
            plain.entry(op.node()).or_insert_with(|| Node::new(op.node())).merge(&op.to_delta());
        }
        prop_assert_eq!(plain, nodes(&a));
    }
}
