//! Unit tests of the replica: local writes, merging, the outbox, events, snapshots.

use super::*;
use crate::model::kinds::{List, Section, Todo};
use crate::model::op::Action;
use crate::model::registry::Value;
use crate::model::wire::{Change, SyncError};
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
        Err(ModelError::Rule(SyncError::InvalidField { .. }))
    ));
    let (milk, _) = r.create(list, Placement::End, &todo("Milk"), T).unwrap();
    assert!(matches!(
        r.create(milk, Placement::End, &todo("x"), T),
        Err(ModelError::Rule(SyncError::BadParent { .. }))
    ));
    assert!(matches!(
        r.set(milk, "completed", json!("yes"), T),
        Err(ModelError::Rule(SyncError::WrongType { .. }))
    ));
    let ghost = Uid::new();
    assert_eq!(
        r.set(ghost, "completed", json!(true), T),
        Err(ModelError::Rule(SyncError::NodeNotFound { node: ghost }))
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
    assert!(matches!(
        err,
        Err(ModelError::Rule(SyncError::ForeignNode { .. }))
    ));
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
fn last_synced_never_goes_backwards_when_a_server_clock_is_behind() {
    let list = Uid::new();
    let mut writer = Replica::new(list, ClientId::new());
    let (_, op) = writer
        .create(list, Placement::End, &todo("Milk"), T)
        .unwrap();
    let mut reader = Replica::new(list, ClientId::new());
    let change = |version| Change {
        version,
        node: op.to_delta(),
    };
    reader.apply_remote(&[change(3)], T + 5_000);
    // Another node, whose clock is two seconds behind, brings version 4.
    reader.apply_remote(&[change(4)], T + 3_000);
    assert_eq!(
        reader.cursor(),
        Cursor {
            version: 4,
            synced_at_ms: Some(T + 5_000)
        }
    );
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
    assert_eq!(value["version"], 2);
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
            current: 2
        })
    );
    value["version"] = json!(3);
    value["nodes"] = json!("a new layout");
    assert_eq!(
        load(&value),
        Err(SnapshotError::Newer {
            found: 3,
            current: 2
        })
    );
    value["version"] = json!(2);
    assert!(matches!(load(&value), Err(SnapshotError::Corrupt { .. })));
    value["nodes"] = json!([]);
    assert!(load(&value).is_ok());
    value["next_seq"] = json!(0);
    assert!(matches!(load(&value), Err(SnapshotError::Corrupt { .. })));
    value["next_seq"] = json!(1);
    value["client"] = json!(ClientId::new());
    assert!(matches!(load(&value), Err(SnapshotError::Corrupt { .. })));
}

#[test]
fn concurrent_moves_converge_to_one_order() {
    let list = Uid::new();
    let mut one = Replica::new(list, ClientId::new());
    let mut two = Replica::new(list, ClientId::new());
    let mut uids = Vec::new();
    for t in ["a", "b", "c", "d"] {
        let (uid, op) = one.create(list, Placement::End, &todo(t), T).unwrap();
        two.apply_op(&op);
        uids.push(uid);
    }
    let [a, b, c, d] = uids[..] else {
        unreachable!()
    };
    // Apart: one moves a to the end and c to the start; two moves d to the start
    // and the same c after a.
    let ops_one = [
        one.move_to(a, list, Placement::End, T + 1).unwrap(),
        one.move_to(c, list, Placement::Start, T + 2).unwrap(),
    ];
    let ops_two = [
        two.move_to(d, list, Placement::Start, T + 1).unwrap(),
        two.move_to(c, list, Placement::After(a), T + 3).unwrap(),
    ];
    assert_eq!(titles(&one), ["c", "b", "d", "a"]);
    assert_eq!(titles(&two), ["d", "a", "c", "b"]);
    // Together, in either order: one order, every move of a different node kept,
    // and of c the later one (two's key, which was just after a's old place).
    for op in &ops_two {
        one.apply_op(op);
    }
    for op in ops_one.iter().rev() {
        two.apply_op(op);
    }
    assert_eq!(one.children(list), two.children(list));
    assert_eq!(titles(&one), ["d", "c", "b", "a"]);
    assert_eq!(one.children(list), [d, c, b, a]);
}
