//! Snapshots ([`Replica::to_json`] / [`Replica::from_json`]): the compact layout
//! (version 2) gives back exactly the replica it was written from (every register
//! with its stamp and `replaces`, tombstones, positions, the outbox, clock, cursor
//! and next sequence number); a version 1 text of the same replica still loads to
//! it; a damaged version 2 text is `Corrupt`; and a 10,000-item list fits in the
//! size the browser can afford (issue 15: at most 1.5 MB).

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;

use super::support::{config, v1_text};
use crate::model::clock::Stamp;
use crate::model::kinds::{List, Todo};
use crate::model::node::{Node, Position, Register};
use crate::model::op::{Action, Op};
use crate::model::order::OrderKey;
use crate::model::registry::Value;
use crate::model::replica::{Placement, Replica, SnapshotError};
use crate::model::uid::{ClientId, Uid};
use crate::model::wire::Change;

const T: u64 = 1_764_160_000_000;

fn uid(n: u8) -> Uid {
    Uid::from_random_bytes([n; 16])
}

fn client(n: u8) -> ClientId {
    ClientId::from_random_bytes([n; 16])
}

/// The list of the generated replicas.
fn list() -> Uid {
    uid(200)
}

/// Everything a snapshot keeps, to compare two replicas by.
fn kept(r: &Replica) -> impl PartialEq + std::fmt::Debug {
    let nodes: BTreeMap<Uid, Node> = r.nodes().map(|n| (n.uid, n.clone())).collect();
    let outbox: Vec<Op> = r.outbox().iter().cloned().collect();
    (
        r.list(),
        r.client(),
        r.clock().clone(),
        r.next_seq(),
        r.cursor(),
        nodes,
        outbox,
    )
}

/// Asserts that `r` survives version 2 and version 1 unchanged.
fn assert_round_trips(r: &Replica) -> Result<(), TestCaseError> {
    let text = r.to_json();
    let back = Replica::from_json(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(kept(&back), kept(r));
    prop_assert_eq!(back.to_json(), text.clone());
    for parent in r.nodes().map(|n| n.uid).chain([r.list()]) {
        prop_assert_eq!(back.children(parent), r.children(parent));
    }
    let old = Replica::from_json(&v1_text(r)).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(kept(&old), kept(r));
    prop_assert_eq!(old.to_json(), text);
    Ok(())
}

// ---------------------------------------------------------------------------------
// Generated replicas

/// Stamps of three clients, from small domains so that one stamp often repeats
/// across a node's registers (and sometimes does not).
fn stamp() -> impl Strategy<Value = Stamp> {
    (0..3u64, 0..2u32, 0..3u8).prop_map(|(wall, counter, c)| Stamp {
        wall_ms: T + wall,
        counter,
        client: client(c),
    })
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("Milk")),
        Just(json!("")),
        Just(json!(true)),
        Just(json!(false)),
        Just(json!(null)),
        Just(json!(0)),
        Just(json!([0, "a"])),
        Just(json!({"v": 1, "s": [1, 2, 3]})),
    ]
}

fn register<T: std::fmt::Debug + Clone>(
    value: impl Strategy<Value = T>,
) -> impl Strategy<Value = Register<T>> {
    (value, stamp(), prop::option::of(stamp())).prop_map(|(value, stamp, replaces)| Register {
        value,
        stamp,
        replaces,
    })
}

fn parent() -> impl Strategy<Value = Option<Uid>> {
    prop_oneof![
        3 => Just(Some(list())),
        1 => Just(None),
        1 => Just(Some(uid(1))),
    ]
}

fn order_key() -> impl Strategy<Value = OrderKey> {
    prop_oneof![Just("a0"), Just("a0V"), Just("b0z"), Just("Zz")]
        .prop_map(|k| OrderKey::parse(k).unwrap_or_else(|_| OrderKey::first()))
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("title".to_string()),
        Just("completed".to_string()),
        Just("todo".to_string()),
        "[a-z]{0,3}",
    ]
}

/// A state of one of a handful of nodes, any part of it known or not.
fn node() -> impl Strategy<Value = Node> {
    let position = (parent(), order_key()).prop_map(|(parent, order)| Position { parent, order });
    (
        prop_oneof![Just(list()), (0..6u8).prop_map(uid)],
        prop::option::of(register(name())),
        prop::option::of(register(position)),
        prop::collection::btree_map(name(), register(value()), 0..4),
        prop::option::of(stamp()),
    )
        .prop_map(|(uid, kind, position, fields, deleted)| Node {
            uid,
            kind,
            position,
            fields,
            deleted,
        })
}

/// Ops of several clients for the outbox.
fn op() -> impl Strategy<Value = Op> {
    let node = (0..6u8).prop_map(uid);
    let fields = prop::collection::btree_map(name(), value(), 0..3);
    let action = prop_oneof![
        (node.clone(), name(), parent(), order_key(), fields).prop_map(
            |(node, kind, parent, order, fields)| Action::Create {
                node,
                kind,
                parent,
                order,
                fields,
            }
        ),
        (node.clone(), name(), value(), prop::option::of(stamp())).prop_map(
            |(node, field, value, replaces)| Action::Set {
                node,
                field,
                value,
                replaces,
            }
        ),
        node.clone().prop_map(|node| Action::Delete { node }),
        (node, parent(), order_key()).prop_map(|(node, parent, order)| Action::Move {
            node,
            parent,
            order,
        }),
    ];
    // Mostly the stamp's own client, sometimes another (a forged history).
    (
        stamp(),
        prop::option::weighted(0.2, 0..3u8),
        1..50u64,
        action,
    )
        .prop_map(|(stamp, other, seq, action)| Op {
            client: other.map(client).unwrap_or(stamp.client),
            seq,
            stamp,
            action,
        })
}

/// A replica of client 9 with server states, adopted ops, its own writes and a
/// cursor.
fn replica() -> impl Strategy<Value = Replica> {
    (
        prop::collection::vec(node(), 0..8),
        prop::collection::vec(op(), 0..6),
        0..4usize,
        prop::option::of(0..1000u64),
    )
        .prop_map(|(nodes, ops, own, synced)| {
            let mut r = Replica::new(list(), client(9));
            let changes: Vec<Change> = nodes
                .into_iter()
                .enumerate()
                .map(|(i, node)| Change {
                    version: i as u64 + 1,
                    node,
                })
                .collect();
            if let Some(at) = synced {
                r.apply_remote(&changes, T + at);
            }
            r.adopt_outbox(ops);
            for i in 0..own {
                let todo = Todo {
                    title: format!("own {i}"),
                    completed: i % 2 == 0,
                };
                let _ = r.create(list(), Placement::Start, &todo, T + 5);
            }
            r
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn generated_replicas_round_trip(r in replica()) {
        assert_round_trips(&r)?;
    }
}

// ---------------------------------------------------------------------------------
// Replicas made by hand

fn todo(title: &str) -> Todo {
    Todo {
        title: title.into(),
        completed: false,
    }
}

#[test]
fn edits_moves_deletes_of_several_clients_round_trip() {
    let list = Uid::new();
    let mut a = Replica::new(list, ClientId::new());
    let mut b = Replica::new(list, ClientId::new());
    a.create_root(
        &List {
            title: "Shop".into(),
        },
        T,
    )
    .unwrap();
    let mut uids = Vec::new();
    for title in ["Milk", "Eggs", "Bread", "Tea"] {
        let (uid, op) = a.create(list, Placement::End, &todo(title), T).unwrap();
        b.apply_op(&op);
        uids.push(uid);
    }
    // Apart, each edits and moves; then b's writes reach a, not acknowledged.
    a.set(uids[0], "completed", json!(true), T + 1).unwrap();
    a.set(uids[1], "title", json!("Brown eggs"), T + 2).unwrap();
    a.move_to(uids[3], list, Placement::Start, T + 3).unwrap();
    a.delete(uids[2], T + 4).unwrap();
    let b_ops = [
        b.set(uids[1], "title", json!("Six eggs"), T + 9).unwrap(),
        b.move_to(uids[0], list, Placement::End, T + 9).unwrap(),
        b.set(uids[3], "completed", json!(true), T + 9).unwrap(),
    ];
    a.adopt_outbox(b_ops.to_vec());
    a.apply_remote(&[], T + 20);
    assert_eq!(a.pending(), 1 + 4 + 4 + 3);
    assert_round_trips(&a).unwrap();
    // Acknowledged: nodes only, as the browser keeps a synced list.
    a.ack(a.client(), u64::MAX);
    a.ack(b.client(), u64::MAX);
    assert_eq!(a.pending(), 0);
    assert_round_trips(&a).unwrap();
    // The whole thing comes back as the user saw it.
    let back = Replica::from_json(&a.to_json()).unwrap();
    let titles: Vec<String> = back
        .children(list)
        .into_iter()
        .map(|uid| back.get::<Todo>(uid).unwrap().unwrap().title)
        .collect();
    assert_eq!(titles, ["Tea", "Six eggs", "Milk"]);
}

/// A copy saved by the previous build (version 1, as that code wrote it) loads as
/// the same replica, with its queued write, and is written back as version 2.
#[test]
fn a_version_1_text_still_loads() {
    let mut r = Replica::new(Uid::new(), ClientId::new());
    let list = r.list();
    let (milk, _) = r.create(list, Placement::End, &todo("Milk"), T).unwrap();
    r.set(milk, "completed", json!(true), T + 1).unwrap();
    let old = v1_text(&r);
    assert!(old.contains("\"version\":1"));
    let back = Replica::from_json(&old).unwrap();
    assert_eq!(kept(&back), kept(&r));
    assert_eq!(back.pending(), 2);
    assert_eq!(back.get::<Todo>(milk).unwrap().unwrap().title, "Milk");
    let value: Value = serde_json::from_str(&back.to_json()).unwrap();
    assert_eq!(value["version"], 2);
}

// ---------------------------------------------------------------------------------
// Damaged version 2 texts

/// A small valid version 2 document to damage.
fn sample() -> Value {
    let mut r = Replica::new(uid(200), client(9));
    let (milk, _) = r.create(list(), Placement::End, &todo("Milk"), T).unwrap();
    r.set(milk, "completed", json!(true), T + 1).unwrap();
    r.move_to(milk, list(), Placement::Start, T + 2).unwrap();
    serde_json::from_str(&r.to_json()).unwrap()
}

#[test]
fn the_sample_looks_as_documented() {
    let doc = sample();
    assert_eq!(doc["version"], 2);
    assert_eq!(doc["clients"], json!([client(9)]));
    let node = &doc["nodes"][0];
    // Created at T, then set and moved: the node's stamp is the create's, and the
    // field and position written later carry their own.
    assert_eq!(node["s"], json!([T, 0, 0]));
    assert!(node.get("p").is_none(), "the list as parent is left out");
    assert!(node.get("km").is_none());
    assert_eq!(node["om"], json!([[T + 2, 0, 0]]));
    let fields = node["f"].as_array().unwrap();
    assert_eq!(fields.len(), 2);
    assert_eq!(doc["outbox"].as_array().unwrap().len(), 3);
    assert_eq!(doc["outbox"][0]["a"], "create");
}

fn load(doc: &Value) -> Result<Replica, SnapshotError> {
    Replica::from_json(&doc.to_string())
}

#[test]
fn damaged_version_2_texts_are_corrupt() {
    assert!(load(&sample()).is_ok());
    type Damage = fn(&mut Value);
    let damages: [(&str, Damage); 21] = [
        ("client index past the table", |d| {
            d["nodes"][0]["s"] = json!([T, 0, 7])
        }),
        ("name index past the table", |d| {
            d["nodes"][0]["k"] = json!(99)
        }),
        ("0 without s", |d| {
            d["nodes"][0].as_object_mut().unwrap().remove("s");
        }),
        ("reference neither 0 nor a stamp", |d| {
            d["nodes"][0]["d"] = json!(3)
        }),
        ("stamp of two parts", |d| d["nodes"][0]["s"] = json!([T, 0])),
        ("negative wall", |d| d["nodes"][0]["s"] = json!([-1, 0, 0])),
        ("field named twice", |d| {
            let f = d["nodes"][0]["f"][0].clone();
            d["nodes"][0]["f"].as_array_mut().unwrap().push(f);
        }),
        ("field of five parts", |d| {
            d["nodes"][0]["f"][0] = json!([0, true, 0, 0, 0])
        }),
        ("field of one part", |d| d["nodes"][0]["f"][0] = json!([0])),
        ("meta of three", |d| d["nodes"][0]["om"] = json!([0, 0, 0])),
        ("meta empty", |d| d["nodes"][0]["om"] = json!([])),
        ("p without o", |d| {
            let node = d["nodes"][0].as_object_mut().unwrap();
            node.remove("o");
            node.insert("p".into(), json!(null));
        }),
        ("km without k", |d| {
            d["nodes"][0].as_object_mut().unwrap().remove("k");
            d["nodes"][0]["km"] = json!([0]);
        }),
        ("bad order key", |d| d["nodes"][0]["o"] = json!("a0-")),
        ("bad uid", |d| d["nodes"][0]["u"] = json!("nope")),
        ("node twice", |d| {
            let n = d["nodes"][0].clone();
            d["nodes"].as_array_mut().unwrap().push(n);
        }),
        ("unknown action", |d| d["outbox"][0]["a"] = json!("explode")),
        ("create without its kind", |d| {
            d["outbox"][0].as_object_mut().unwrap().remove("k");
        }),
        ("set without its value", |d| {
            d["outbox"][1].as_object_mut().unwrap().remove("v");
        }),
        ("op client past the table", |d| {
            d["outbox"][0]["c"] = json!(5)
        }),
        ("op numbered past next_seq", |d| {
            d["outbox"][2]["q"] = json!(99)
        }),
    ];
    for (what, damage) in damages {
        let mut doc = sample();
        damage(&mut doc);
        assert!(
            matches!(load(&doc), Err(SnapshotError::Corrupt { .. })),
            "{what}: {:?}",
            load(&doc).map(|_| ())
        );
    }
    // Cut short anywhere: corrupt, never a panic.
    let text = sample().to_string();
    for end in 1..text.len() {
        assert!(
            matches!(
                Replica::from_json(&text[..end]),
                Err(SnapshotError::Corrupt { .. })
            ),
            "cut at {end}"
        );
    }
}

#[test]
fn a_set_to_null_keeps_its_value() {
    let mut r = Replica::new(list(), client(9));
    let stamp = Stamp {
        wall_ms: T,
        counter: 0,
        client: client(9),
    };
    let set = Op {
        client: client(9),
        seq: 1,
        stamp,
        action: Action::Set {
            node: uid(1),
            field: "note".into(),
            value: Value::Null,
            replaces: None,
        },
    };
    r.adopt_outbox(vec![set]);
    let text = r.to_json();
    assert!(text.contains("\"v\":null"), "{text}");
    assert_eq!(kept(&Replica::from_json(&text).unwrap()), kept(&r));
}

// ---------------------------------------------------------------------------------
// Size

/// 10,000 todos ("item N", not completed) made by one client, one create each,
/// as another tab keeps them once synced (nothing queued).
fn ten_thousand_items() -> Replica {
    let list = Uid::new();
    let mut author = Replica::new(list, ClientId::new());
    author
        .create_root(
            &List {
                title: "Big".into(),
            },
            T,
        )
        .unwrap();
    for i in 0..10_000u64 {
        author
            .create(list, Placement::End, &todo(&format!("item {i}")), T + i)
            .unwrap();
    }
    let changes: Vec<Change> = author
        .nodes()
        .enumerate()
        .map(|(i, node)| Change {
            version: i as u64 + 1,
            node: node.clone(),
        })
        .collect();
    let mut synced = Replica::new(list, ClientId::new());
    synced.apply_remote(&changes, T + 20_000);
    synced
}

/// Issue 15: the local copy of a 10,000-item list is at most 1.5 MB (it was
/// 4.6 MB in version 1). Prints both sizes (`--nocapture`).
#[test]
fn ten_thousand_items_take_at_most_one_and_a_half_megabytes() {
    let r = ten_thousand_items();
    let (v1, v2) = (v1_text(&r).len(), r.to_json().len());
    println!("10,000-item list, local copy: version 1 {v1} bytes, version 2 {v2} bytes");
    assert!(v2 <= 1_500_000, "{v2} bytes");
    assert!(v2 * 3 <= v1, "a third of version 1 or less: {v2} of {v1}");
    assert_eq!(
        Replica::from_json(&r.to_json())
            .unwrap()
            .children(r.list())
            .len(),
        10_000
    );
}
