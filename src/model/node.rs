//! A node's state, and how two states of the same node merge.
//!
//! A [`Node`] is a join-semilattice: [`Node::merge`] is commutative, associative and
//! idempotent, so replicas that have seen the same writes hold the same state, in
//! whatever order and however often the writes arrived. Ops are applied by merging
//! the partial state they write (see [`super::op::Op::to_delta`]), and the server
//! stores and sends whole node states, which merge the same way.
//!
//! * Every field, and the position, is a last-writer-wins [`Register`]: the greater
//!   stamp wins.
//! * The kind is set once by the create; should two creates disagree, the earlier
//!   stamp wins on every replica.
//! * `deleted` is a tombstone: once set it stays set. Writes stamped after a delete
//!   still merge into the fields (so merges stay order-independent) but never bring
//!   the node back.
//!
//! # JSON (stable: the server stores it)
//!
//! ```json
//! {
//!   "uid": "0b7f3c1e-8a0d-4c36-9a59-3f1f7e0c6b21",
//!   "kind": {"v": "todo", "s": "1764160000000:0:6f1c2a3e-0d4b-4aef-9a6b-0242ac120002"},
//!   "pos": {"v": {"parent": "5d1e…", "order": "a0"}, "s": "1764160000000:0:6f1c…"},
//!   "fields": {"title": {"v": "Milk", "s": "1764160000000:0:6f1c…"}},
//!   "deleted": null
//! }
//! ```
//!
//! `kind` and `pos` are `null` while unknown, `deleted` is `null` or the delete's
//! stamp; a register is `{"v": value, "s": stamp}`, and a field written by a `set`
//! that named the value it replaced also has `"r": stamp` (that value's stamp). `parent` is `null` for the list
//! node itself.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::clock::Stamp;
use super::order::OrderKey;
use super::registry::{Fields, Registry, Value};
use super::uid::Uid;

/// A last-writer-wins register: a value, the stamp of the write that set it and,
/// for a field written by a `set`, the stamp of the value that write replaced as
/// its writer saw it (`replaces`; see [`super::replaced`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Register<T> {
    #[serde(rename = "v")]
    pub value: T,
    #[serde(rename = "s")]
    pub stamp: Stamp,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<Stamp>,
}

impl<T> Register<T> {
    /// A register written by a write that names no value it replaced.
    pub fn new(value: T, stamp: Stamp) -> Register<T> {
        Register {
            value,
            stamp,
            replaces: None,
        }
    }
}

/// Where a node sits: under which parent, at which order key among its siblings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    pub parent: Option<Uid>,
    pub order: OrderKey,
}

/// The state of one node as far as it is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub uid: Uid,
    /// The kind, stamped with its create; `None` while only later writes are known.
    #[serde(default)]
    pub kind: Option<Register<String>>,
    #[serde(rename = "pos", default)]
    pub position: Option<Register<Position>>,
    #[serde(default)]
    pub fields: BTreeMap<String, Register<Value>>,
    /// The tombstone: the stamp of the (latest) delete. Never cleared.
    #[serde(default)]
    pub deleted: Option<Stamp>,
}

/// What one merge changed in a node's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeDiff {
    /// The kind appeared (or, in a broken history, changed).
    pub kind: bool,
    /// The position (parent or order key) changed.
    pub position: bool,
    /// Fields whose value or stamp changed, by name.
    pub fields: Vec<String>,
    /// The node became deleted.
    pub deleted: bool,
    /// The tombstone's stamp moved forward on a node that was already deleted.
    pub tombstone: bool,
}

impl NodeDiff {
    /// True if the merge changed nothing at all.
    pub fn is_empty(&self) -> bool {
        !self.kind && !self.position && self.fields.is_empty() && !self.deleted && !self.tombstone
    }
}

/// Orders two values deterministically, for the tie of two writes with one stamp
/// (which a valid history never has, but a forged or broken one may).
fn value_order(a: &Value, b: &Value) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    // `serde_json` sorts object keys, so this text is canonical.
    let text = |v: &Value| serde_json::to_string(v).unwrap_or_default();
    text(a).cmp(&text(b))
}

/// Merges `theirs` into `mine`, keeping the register that `wins` over the other.
/// Returns whether `mine` changed.
fn merge_register<T: Clone + PartialEq>(
    mine: &mut Option<Register<T>>,
    theirs: &Option<Register<T>>,
    wins: impl Fn(&Register<T>, &Register<T>) -> bool,
) -> bool {
    let Some(theirs) = theirs else {
        return false;
    };
    match mine {
        Some(current) if !wins(theirs, current) => false,
        _ => {
            let changed = mine.as_ref() != Some(theirs);
            *mine = Some(theirs.clone());
            changed
        }
    }
}

/// Last writer wins: the greater stamp, then the greater value, then the greater
/// `replaces` (the last two only for forged or broken histories with tied stamps).
fn later<T>(a: &Register<T>, b: &Register<T>, order: impl Fn(&T, &T) -> Ordering) -> bool {
    a.stamp
        .cmp(&b.stamp)
        .then_with(|| order(&a.value, &b.value))
        .then_with(|| a.replaces.cmp(&b.replaces))
        .is_gt()
}

impl Node {
    /// A node of which nothing is known yet.
    pub fn new(uid: Uid) -> Node {
        Node {
            uid,
            kind: None,
            position: None,
            fields: BTreeMap::new(),
            deleted: None,
        }
    }

    /// Joins `other` (a state of the same node) into `self` and says what changed.
    /// A state of another node is ignored.
    pub fn merge(&mut self, other: &Node) -> NodeDiff {
        let mut diff = NodeDiff::default();
        if other.uid != self.uid {
            return diff;
        }
        // The create with the smallest stamp names the kind.
        diff.kind = merge_register(&mut self.kind, &other.kind, |a, b| {
            later(b, a, |x: &String, y| x.cmp(y))
        });
        diff.position = merge_register(&mut self.position, &other.position, |a, b| {
            later(a, b, Position::cmp)
        });
        for (name, theirs) in &other.fields {
            let mine = self.fields.get(name);
            let take = match mine {
                None => true,
                Some(mine) => later(theirs, mine, value_order),
            };
            if take {
                self.fields.insert(name.clone(), theirs.clone());
                diff.fields.push(name.clone());
            }
        }
        match (self.deleted, other.deleted) {
            (None, Some(stamp)) => {
                self.deleted = Some(stamp);
                diff.deleted = true;
            }
            (Some(mine), Some(theirs)) if theirs > mine => {
                self.deleted = Some(theirs);
                diff.tombstone = true;
            }
            _ => {}
        }
        diff
    }

    /// True if the node was created (its kind is known) and is not deleted.
    pub fn is_live(&self) -> bool {
        self.kind.is_some() && self.deleted.is_none()
    }

    /// True once the node is deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted.is_some()
    }

    /// The kind's name, once known.
    pub fn kind_name(&self) -> Option<&str> {
        self.kind.as_ref().map(|k| k.value.as_str())
    }

    /// A field's current value, if the node carries it (defaults not filled).
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.fields.get(name).map(|r| &r.value)
    }

    /// The parent, if the position is known and the node is not the list root.
    pub fn parent(&self) -> Option<Uid> {
        self.position.as_ref().and_then(|p| p.value.parent)
    }

    /// The order key among siblings, if the position is known.
    pub fn order(&self) -> Option<&OrderKey> {
        self.position.as_ref().map(|p| &p.value.order)
    }

    /// The field values the node carries, without stamps.
    pub fn values(&self) -> Fields {
        self.fields
            .iter()
            .map(|(name, r)| (name.clone(), r.value.clone()))
            .collect()
    }

    /// The field values with the kind's defaults filled in (just [`Node::values`]
    /// if the kind is unknown to `registry` or not known yet).
    pub fn fields_with_defaults(&self, registry: &Registry) -> Fields {
        let values = self.values();
        match self.kind_name() {
            Some(kind) => registry.with_defaults(kind, &values).unwrap_or(values),
            None => values,
        }
    }

    /// The greatest stamp anywhere in the state (what a clock must move past).
    pub fn max_stamp(&self) -> Option<Stamp> {
        let kind = self.kind.as_ref().map(|r| r.stamp);
        let position = self.position.as_ref().map(|r| r.stamp);
        let fields = self.fields.values().map(|r| r.stamp).max();
        [kind, position, fields, self.deleted]
            .into_iter()
            .flatten()
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::uid::ClientId;
    use serde_json::json;

    fn stamp(wall_ms: u64, client: u8) -> Stamp {
        Stamp {
            wall_ms,
            counter: 0,
            client: ClientId::from_random_bytes([client; 16]),
        }
    }

    fn uid() -> Uid {
        Uid::from_random_bytes([1; 16])
    }

    fn with_field(name: &str, value: Value, s: Stamp) -> Node {
        let mut n = Node::new(uid());
        n.fields.insert(name.into(), Register::new(value, s));
        n
    }

    #[test]
    fn later_write_wins_either_way() {
        let old = with_field("title", json!("Milk"), stamp(1, 1));
        let new = with_field("title", json!("Oat milk"), stamp(2, 1));
        let mut a = old.clone();
        assert_eq!(a.merge(&new).fields, ["title"]);
        let mut b = new.clone();
        assert!(b.merge(&old).is_empty());
        assert_eq!(a, b);
        assert_eq!(a.field("title"), Some(&json!("Oat milk")));
    }

    #[test]
    fn equal_stamps_break_ties_by_value() {
        let x = with_field("title", json!("a"), stamp(1, 1));
        let y = with_field("title", json!("b"), stamp(1, 1));
        let mut xy = x.clone();
        xy.merge(&y);
        let mut yx = y.clone();
        yx.merge(&x);
        assert_eq!(xy, yx);
    }

    #[test]
    fn delete_is_never_undone() {
        let mut n = Node::new(uid());
        n.kind = Some(Register {
            value: "todo".into(),
            stamp: stamp(1, 1),
            replaces: None,
        });
        assert!(n.is_live());
        let mut tomb = Node::new(uid());
        tomb.deleted = Some(stamp(2, 1));
        assert!(n.merge(&tomb).deleted);
        let later = with_field("title", json!("x"), stamp(3, 2));
        let diff = n.merge(&later);
        assert_eq!(diff.fields, ["title"]);
        assert!(!diff.deleted);
        assert!(!n.is_live());
        assert!(n.is_deleted());
    }

    #[test]
    fn earliest_kind_wins() {
        let mut a = Node::new(uid());
        a.kind = Some(Register {
            value: "todo".into(),
            stamp: stamp(5, 1),
            replaces: None,
        });
        let mut b = Node::new(uid());
        b.kind = Some(Register {
            value: "section".into(),
            stamp: stamp(3, 1),
            replaces: None,
        });
        let mut ab = a.clone();
        assert!(ab.merge(&b).kind);
        let mut ba = b.clone();
        assert!(!ba.merge(&a).kind);
        assert_eq!(ab, ba);
        assert_eq!(ab.kind_name(), Some("section"));
    }

    #[test]
    fn other_uid_is_ignored() {
        let mut a = with_field("title", json!("a"), stamp(1, 1));
        let mut b = Node::new(Uid::from_random_bytes([2; 16]));
        b.deleted = Some(stamp(9, 9));
        assert!(a.merge(&b).is_empty());
    }

    #[test]
    fn json_shape_is_stable() {
        let s = stamp(1_764_160_000_000, 1);
        let mut n = with_field("title", json!("Milk"), s);
        n.kind = Some(Register {
            value: "todo".into(),
            stamp: s,
            replaces: None,
        });
        n.position = Some(Register {
            value: Position {
                parent: None,
                order: OrderKey::first(),
            },
            stamp: s,
            replaces: None,
        });
        let json = serde_json::to_value(&n).unwrap();
        let st = s.to_string();
        assert_eq!(
            json,
            json!({
                "uid": uid().to_string(),
                "kind": {"v": "todo", "s": st},
                "pos": {"v": {"parent": null, "order": "a0"}, "s": st},
                "fields": {"title": {"v": "Milk", "s": st}},
                "deleted": null,
            })
        );
        assert_eq!(serde_json::from_value::<Node>(json).unwrap(), n);
        assert_eq!(n.max_stamp(), Some(s));
    }
}
