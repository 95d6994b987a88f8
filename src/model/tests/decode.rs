//! Decoders never panic: arbitrary bytes, arbitrary JSON values and valid
//! documents with one part replaced by arbitrary JSON go into every wire type,
//! [`Replica::from_json`] and the registry's validators; every failure is a typed
//! error. Whatever decodes and loads must also survive being used.

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::support::{config, v1_text};
use crate::model::clock::Stamp;
use crate::model::kinds::Todo;
use crate::model::node::Node;
use crate::model::op::Op;
use crate::model::order::OrderKey;
use crate::model::registry::{registry, Fields, Value};
use crate::model::replica::{Placement, Replica};
use crate::model::uid::{ClientId, Uid};
use crate::model::wire::{
    ClientMessage, PullPage, PullRequest, PushRequest, ServerMessage, SyncError,
};

/// Feeds one JSON text to every decoder; returns how many accepted it.
fn decode_all(text: &str) -> usize {
    fn ok<T: DeserializeOwned>(text: &str) -> usize {
        usize::from(serde_json::from_str::<T>(text).is_ok())
    }
    let accepted = ok::<PushRequest>(text)
        + ok::<PullRequest>(text)
        + ok::<PullPage>(text)
        + ok::<ClientMessage>(text)
        + ok::<ServerMessage>(text)
        + ok::<SyncError>(text)
        + ok::<Op>(text)
        + ok::<Node>(text)
        + ok::<Stamp>(text)
        + ok::<Uid>(text)
        + ok::<ClientId>(text)
        + ok::<OrderKey>(text);
    if let Ok(mut replica) = Replica::from_json(text) {
        exercise(&mut replica);
    }
    accepted
}

/// Uses a loaded replica the way an app would.
fn exercise(replica: &mut Replica) {
    let list = replica.list();
    for parent in std::iter::once(list).chain(replica.nodes().map(|n| n.uid).collect::<Vec<_>>()) {
        let _ = replica.children(parent);
        let _ = replica.get::<Todo>(parent);
    }
    let todo = Todo {
        title: "x".into(),
        completed: false,
    };
    let _ = replica.create(list, Placement::Start, &todo, 1);
    let _ = replica.push_request(10);
    let _ = replica.to_json();
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("a0"),
            Just("todo"),
            Just("create"),
            Just("changes"),
            Just("tether.replica"),
            Just("6f1c2a3e-0d4b-4aef-9a6b-0242ac120002"),
            Just("1:0:6f1c2a3e-0d4b-4aef-9a6b-0242ac120002"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Object keys: mostly ones the decoders look for.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "list", "client", "ops", "seq", "stamp", "op", "node", "kind", "parent", "order",
            "fields", "field", "value", "type", "after", "limit", "changes", "cursor", "more",
            "version", "uid", "pos", "v", "s", "deleted", "code", "error", "format", "clock",
            "next_seq", "outbox", "nodes", "nonce", "server_time_ms", "clients", "names", "u",
            "k", "km", "o", "p", "om", "f", "d", "q", "a", "n", "r",
        ])
        .prop_map(str::to_string),
        1 => "[a-z_]{0,8}",
    ]
}

/// Valid documents of each type, to mutate.
fn samples() -> Vec<Value> {
    let list = Uid::from_random_bytes([1; 16]);
    let mut replica = Replica::new(list, ClientId::from_random_bytes([2; 16]));
    let todo = Todo {
        title: "Milk".into(),
        completed: false,
    };
    let mut ops = Vec::new();
    if let Ok((uid, op)) = replica.create(list, Placement::End, &todo, 5) {
        ops.push(op);
        ops.extend(replica.set(uid, "completed", json!(true), 6));
        ops.extend(replica.move_to(uid, list, Placement::Start, 7));
        ops.extend(replica.delete(uid, 8));
    }
    let node = ops.first().map(|op| op.to_delta());
    let mut out = vec![
        json!({"list": list, "client": replica.client(), "ops": ops}),
        json!({"list": list, "after": 3, "limit": 10}),
        json!({"list": list, "changes": [{"version": 1, "node": node}], "cursor": 1, "more": false, "server_time_ms": 9}),
        json!({"type": "subscribe", "list": list, "after": 1}),
        json!({"type": "changes", "list": list, "changes": [{"version": 1, "node": node}], "cursor": 1, "more": true}),
        json!({"type": "error", "error": {"code": "field_too_large", "node": list, "field": "title", "bytes": 3, "max": 2}}),
        json!(node),
    ];
    out.extend(ops.iter().map(|op| json!(op)));
    out.extend(serde_json::from_str::<Value>(&replica.to_json()));
    out.extend(serde_json::from_str::<Value>(&v1_text(&replica)));
    out
}

/// Replaces the `pick`-th part (in pre-order) of `doc` by `with`.
fn replace(doc: &mut Value, pick: &mut usize, with: &Value) -> bool {
    if *pick == 0 {
        *doc = with.clone();
        return true;
    }
    *pick -= 1;
    match doc {
        Value::Array(items) => items.iter_mut().any(|item| replace(item, pick, with)),
        Value::Object(map) => map.values_mut().any(|item| replace(item, pick, with)),
        _ => false,
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let text = String::from_utf8_lossy(&bytes);
        decode_all(&text);
        fn ok<T: DeserializeOwned>(b: &[u8]) -> bool {
            serde_json::from_slice::<T>(b).is_ok()
        }
        let _ = ok::<PushRequest>(&bytes) | ok::<ServerMessage>(&bytes) | ok::<Node>(&bytes);
        let _ = Uid::parse(&text);
        let _ = OrderKey::parse(&text);
        let _ = text.parse::<Stamp>();
    }

    #[test]
    fn arbitrary_json(value in json_value()) {
        decode_all(&value.to_string());
    }

    #[test]
    fn mutated_valid_documents(which in any::<prop::sample::Index>(), pick in 0..400usize, with in json_value()) {
        let docs = samples();
        let mut doc = which.get(&docs).clone();
        let mut left = pick;
        replace(&mut doc, &mut left, &with);
        decode_all(&doc.to_string());
    }

    #[test]
    fn truncated_valid_documents(which in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>()) {
        let docs = samples();
        let text = which.get(&docs).to_string();
        let end = cut.index(text.len() + 1);
        if let Some(prefix) = text.get(..end) {
            decode_all(prefix);
        }
    }

    #[test]
    fn validators(
        kind in prop_oneof![Just("todo".to_string()), Just("list".to_string()), Just("section".to_string()), "\\PC{0,6}"],
        parent in prop::option::of(prop_oneof![Just("list".to_string()), Just("todo".to_string()), "\\PC{0,6}"]),
        field in prop_oneof![Just("title".to_string()), Just("completed".to_string()), "\\PC{0,6}"],
        value in json_value(),
        fields in prop::collection::btree_map(
            prop_oneof![Just("title".to_string()), Just("completed".to_string()), "[a-z]{0,4}"],
            json_value(),
            0..3,
        ),
    ) {
        let r = registry();
        let _ = r.validate_field(&kind, &field, &value);
        let fields: Fields = fields;
        let _ = r.validate_create(&kind, parent.as_deref(), &fields);
        // What validates must decode.
        if kind == "todo" && r.validate_create(&kind, Some("list"), &fields).is_ok() {
            prop_assert!(r.decode::<Todo>(&fields).is_ok());
        }
    }
}
