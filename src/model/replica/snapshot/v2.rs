//! Snapshot version 2: the compact layout [`Replica::to_json`] writes.
//!
//! ```json
//! {"format":"tether.replica","version":2,"list":"<uuid>","client":"<uuid>",
//!  "clock":{"client":"<uuid>","max_skew_ms":60000,"last":"1764160000000:4:<uuid>"},
//!  "next_seq":3,"cursor":{"version":12,"synced_at_ms":1764160000123},
//!  "clients":["<uuid>", …],
//!  "names":["list","title","todo","completed", …],
//!  "nodes":[{"u":"<uuid>","s":[1764160000000,1,0],"k":2,"o":"a0","f":[[3,false],[1,"Milk"]]}, …],
//!  "outbox":[{"q":2,"s":[1764160000000,1,0],"a":"create","u":"<uuid>","k":2,"o":"a0","f":[[3,false],[1,"Milk"]]}, …]}
//! ```
//!
//! * `clock` is the replica's clock (`Hlc`'s JSON), `cursor` its cursor, as in
//!   version 1.
//! * `clients`: the client ids of the stamps below, each once; `names`: the kinds'
//!   and fields' names, each once. Both are referred to by index (from 0), in the
//!   order they are first used.
//! * A **stamp** is `[wall_ms, counter, client]`, `client` an index into `clients`.
//! * A **node** is an object with short keys; a key whose value would be the
//!   default is left out:
//!   * `u`: its uid;
//!   * `s`: the node's stamp: the stamp written most often in it (on a tie, the
//!     earliest); absent if the node has none;
//!   * a **stamp reference** is `0` for the node's stamp `s`, or a stamp;
//!   * `k`: the kind, an index into `names`; `km`: the kind's meta;
//!   * `o`: the order key; `p`: the parent (absent: the list; `null`: none, which
//!     only the list node itself has; else a uid); `om`: the position's meta;
//!     `p` and `om` only with `o`;
//!   * a register's **meta** is `[stamp reference]` or `[stamp reference, replaces]`
//!     (`replaces` another stamp reference: the stamp of the value a `set`
//!     replaced); absent, it is `[0]`: written at the node's stamp, replacing
//!     nothing named;
//!   * `f`: the fields, by name: `[name, value]`, `[name, value, stamp
//!     reference]` or `[name, value, stamp reference, replaces]`, `name` an index
//!     into `names`; absent: no fields;
//!   * `d`: the tombstone, a stamp reference; absent: not deleted.
//! * An **op** in the outbox is an object too: `q` its sequence number, `s` its
//!   stamp, `c` its client (an index into `clients`; absent: the stamp's client),
//!   `a` its action (`create`, `set`, `delete` or `move`), `u` its node, and the
//!   action's parts: `k` (kind, an index into `names`), `p` (parent, as in a
//!   node), `o` (order key) and `f` (`[[name, value], …]`) for a create; `p` and
//!   `o` for a move; `n` (field, an index into `names`), `v` (value) and `r`
//!   (replaces, a stamp, optional) for a set.
//!
//! Anything out of place (an index past its table, a `0` reference in a node with
//! no `s`, a field named twice, a part its action lacks) is
//! [`SnapshotError::Corrupt`].

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use super::{corrupt, Parts, SnapshotError, SNAPSHOT_FORMAT};
use crate::model::clock::{Hlc, Stamp};
use crate::model::node::{Node, Position, Register};
use crate::model::op::{Action, Op};
use crate::model::order::OrderKey;
use crate::model::registry::{Fields, Value};
use crate::model::replica::{Cursor, Replica};
use crate::model::uid::{ClientId, Uid};

/// This layout's version.
const VERSION: u64 = 2;

/// A stamp as written: `(wall_ms, counter, index into clients)`.
type Packed = (u64, u32, usize);

// ---------------------------------------------------------------------------------
// Writing

#[derive(Serialize)]
struct SnapshotOut<'a> {
    format: &'static str,
    version: u64,
    list: Uid,
    client: ClientId,
    clock: &'a Hlc,
    next_seq: u64,
    cursor: Cursor,
    clients: Vec<ClientId>,
    names: Vec<&'a str>,
    nodes: Vec<NodeOut<'a>>,
    outbox: Vec<OpOut<'a>>,
}

#[derive(Serialize)]
struct NodeOut<'a> {
    u: Uid,
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<Packed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    k: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    km: Option<Vec<RefOut>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    o: Option<&'a OrderKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p: Option<Option<Uid>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    om: Option<Vec<RefOut>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    f: Vec<FieldOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    d: Option<RefOut>,
}

#[derive(Serialize)]
struct OpOut<'a> {
    q: u64,
    s: Packed,
    #[serde(skip_serializing_if = "Option::is_none")]
    c: Option<usize>,
    a: &'static str,
    u: Uid,
    #[serde(skip_serializing_if = "Option::is_none")]
    k: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p: Option<Option<Uid>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    o: Option<&'a OrderKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    f: Option<Vec<(usize, &'a Value)>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    v: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    r: Option<Packed>,
}

/// A stamp reference as written: `0` for the node's stamp, else the stamp.
#[derive(Clone, Copy, PartialEq)]
enum RefOut {
    Node,
    At(Packed),
}

impl Serialize for RefOut {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RefOut::Node => s.serialize_u8(0),
            RefOut::At(packed) => packed.serialize(s),
        }
    }
}

/// `[name, value]`, then the stamp reference and `replaces` where needed.
struct FieldOut<'a> {
    name: usize,
    value: &'a Value,
    meta: Option<Vec<RefOut>>,
}

impl Serialize for FieldOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let meta = self.meta.as_deref().unwrap_or_default();
        let mut seq = s.serialize_seq(Some(2 + meta.len()))?;
        seq.serialize_element(&self.name)?;
        seq.serialize_element(self.value)?;
        for reference in meta {
            seq.serialize_element(reference)?;
        }
        seq.end()
    }
}

/// Client ids and names, each written once and referred to by index.
#[derive(Default)]
struct Tables<'a> {
    clients: Vec<ClientId>,
    client_at: HashMap<ClientId, usize>,
    names: Vec<&'a str>,
    name_at: HashMap<&'a str, usize>,
}

impl<'a> Tables<'a> {
    fn client(&mut self, client: ClientId) -> usize {
        let clients = &mut self.clients;
        *self.client_at.entry(client).or_insert_with(|| {
            clients.push(client);
            clients.len() - 1
        })
    }

    fn stamp(&mut self, stamp: Stamp) -> Packed {
        (stamp.wall_ms, stamp.counter, self.client(stamp.client))
    }

    fn name(&mut self, name: &'a str) -> usize {
        let names = &mut self.names;
        *self.name_at.entry(name).or_insert_with(|| {
            names.push(name);
            names.len() - 1
        })
    }
}

/// The whole replica in this layout.
pub(super) fn write(replica: &Replica) -> String {
    let mut tables = Tables::default();
    let list = replica.list;
    let nodes = replica
        .nodes
        .values()
        .map(|node| node_out(node, list, &mut tables))
        .collect();
    let outbox = replica
        .outbox
        .iter()
        .map(|op| op_out(op, list, &mut tables))
        .collect();
    let snapshot = SnapshotOut {
        format: SNAPSHOT_FORMAT,
        version: VERSION,
        list,
        client: replica.client(),
        clock: &replica.clock,
        next_seq: replica.next_seq,
        cursor: replica.cursor,
        clients: tables.clients,
        names: tables.names,
        nodes,
        outbox,
    };
    // Serialising plain data with string keys cannot fail.
    serde_json::to_string(&snapshot).unwrap_or_default()
}

/// Every stamp written in a node, with repeats.
fn stamps_in(node: &Node) -> impl Iterator<Item = Stamp> + '_ {
    let kind = node.kind.iter().flat_map(|r| [Some(r.stamp), r.replaces]);
    let position = node
        .position
        .iter()
        .flat_map(|r| [Some(r.stamp), r.replaces]);
    let fields = node
        .fields
        .values()
        .flat_map(|r| [Some(r.stamp), r.replaces]);
    kind.chain(position)
        .chain(fields)
        .chain([node.deleted])
        .flatten()
}

/// The stamp written most often in a node (on a tie, the earliest).
fn node_stamp(node: &Node) -> Option<Stamp> {
    let mut counts: Vec<(Stamp, usize)> = Vec::new();
    for stamp in stamps_in(node) {
        match counts.iter_mut().find(|(s, _)| *s == stamp) {
            Some((_, n)) => *n += 1,
            None => counts.push((stamp, 1)),
        }
    }
    counts
        .into_iter()
        .max_by_key(|(stamp, n)| (*n, std::cmp::Reverse(*stamp)))
        .map(|(stamp, _)| stamp)
}

/// Writes one node's stamps relative to its own stamp.
struct NodeStamps {
    base: Option<Stamp>,
}

impl NodeStamps {
    fn reference(&self, tables: &mut Tables, stamp: Stamp) -> RefOut {
        if Some(stamp) == self.base {
            RefOut::Node
        } else {
            RefOut::At(tables.stamp(stamp))
        }
    }

    /// A register's meta; `None` for the default (the node's stamp, no replaces).
    fn meta<T>(&self, tables: &mut Tables, register: &Register<T>) -> Option<Vec<RefOut>> {
        let at = self.reference(tables, register.stamp);
        match register.replaces {
            None if at == RefOut::Node => None,
            None => Some(vec![at]),
            Some(replaces) => Some(vec![at, self.reference(tables, replaces)]),
        }
    }
}

/// The parent as written: left out when it is the list.
fn parent_out(parent: Option<Uid>, list: Uid) -> Option<Option<Uid>> {
    (parent != Some(list)).then_some(parent)
}

fn node_out<'a>(node: &'a Node, list: Uid, tables: &mut Tables<'a>) -> NodeOut<'a> {
    let stamps = NodeStamps {
        base: node_stamp(node),
    };
    let s = stamps.base.map(|base| tables.stamp(base));
    let kind = node.kind.as_ref();
    let position = node.position.as_ref();
    NodeOut {
        u: node.uid,
        s,
        k: kind.map(|r| tables.name(&r.value)),
        km: kind.and_then(|r| stamps.meta(tables, r)),
        o: position.map(|r| &r.value.order),
        p: position.and_then(|r| parent_out(r.value.parent, list)),
        om: position.and_then(|r| stamps.meta(tables, r)),
        f: node
            .fields
            .iter()
            .map(|(name, r)| FieldOut {
                name: tables.name(name),
                value: &r.value,
                meta: stamps.meta(tables, r),
            })
            .collect(),
        d: node.deleted.map(|d| stamps.reference(tables, d)),
    }
}

fn op_out<'a>(op: &'a Op, list: Uid, tables: &mut Tables<'a>) -> OpOut<'a> {
    let s = tables.stamp(op.stamp);
    let c = (op.client != op.stamp.client).then(|| tables.client(op.client));
    let mut out = OpOut {
        q: op.seq,
        s,
        c,
        a: op.action.name(),
        u: op.node(),
        k: None,
        p: None,
        o: None,
        f: None,
        n: None,
        v: None,
        r: None,
    };
    match &op.action {
        Action::Create {
            kind,
            parent,
            order,
            fields,
            ..
        } => {
            out.k = Some(tables.name(kind));
            out.p = parent_out(*parent, list);
            out.o = Some(order);
            out.f = Some(fields.iter().map(|(n, v)| (tables.name(n), v)).collect());
        }
        Action::Set {
            field,
            value,
            replaces,
            ..
        } => {
            out.n = Some(tables.name(field));
            out.v = Some(value);
            out.r = replaces.map(|r| tables.stamp(r));
        }
        Action::Delete { .. } => {}
        Action::Move { parent, order, .. } => {
            out.p = parent_out(*parent, list);
            out.o = Some(order);
        }
    }
    out
}

// ---------------------------------------------------------------------------------
// Reading

#[derive(Deserialize)]
struct SnapshotIn {
    list: Uid,
    client: ClientId,
    clock: Hlc,
    next_seq: u64,
    cursor: Cursor,
    clients: Vec<ClientId>,
    names: Vec<String>,
    nodes: Vec<NodeIn>,
    outbox: Vec<OpIn>,
}

#[derive(Deserialize)]
struct NodeIn {
    u: Uid,
    #[serde(default)]
    s: Option<Packed>,
    #[serde(default)]
    k: Option<usize>,
    #[serde(default)]
    km: Option<Vec<RefIn>>,
    #[serde(default)]
    o: Option<OrderKey>,
    #[serde(default, deserialize_with = "present")]
    p: Option<Option<Uid>>,
    #[serde(default)]
    om: Option<Vec<RefIn>>,
    #[serde(default)]
    f: Vec<FieldIn>,
    #[serde(default)]
    d: Option<RefIn>,
}

#[derive(Deserialize)]
struct OpIn {
    q: u64,
    s: Packed,
    #[serde(default)]
    c: Option<usize>,
    a: String,
    u: Uid,
    #[serde(default)]
    k: Option<usize>,
    #[serde(default, deserialize_with = "present")]
    p: Option<Option<Uid>>,
    #[serde(default)]
    o: Option<OrderKey>,
    #[serde(default)]
    f: Option<Vec<(usize, Value)>>,
    #[serde(default)]
    n: Option<usize>,
    #[serde(default, deserialize_with = "present")]
    v: Option<Value>,
    #[serde(default)]
    r: Option<Packed>,
}

/// A key that is present, whatever its value (`null` included): tells an absent
/// `p` (the list) from `"p": null` (no parent), and a set's `"v": null` from none.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A stamp reference as read: `0` (anything else but a stamp is corrupt).
#[derive(Deserialize)]
#[serde(untagged)]
enum RefIn {
    Node(u64),
    At(Packed),
}

/// `[name, value]` with an optional stamp reference and `replaces`.
struct FieldIn {
    name: usize,
    value: Value,
    meta: Vec<RefIn>,
}

impl<'de> Deserialize<'de> for FieldIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FieldIn, D::Error> {
        d.deserialize_seq(FieldVisitor)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = FieldIn;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field: [name, value, stamp reference?, replaces?]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FieldIn, A::Error> {
        let missing = |what| de::Error::custom(format!("a field without its {what}"));
        let name = seq.next_element()?.ok_or_else(|| missing("name"))?;
        let value = seq.next_element()?.ok_or_else(|| missing("value"))?;
        let mut meta = Vec::new();
        while let Some(reference) = seq.next_element::<RefIn>()? {
            meta.push(reference);
            if meta.len() == 2 {
                break;
            }
        }
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("a field with more than four parts"));
        }
        Ok(FieldIn { name, value, meta })
    }
}

/// Decodes a version 2 snapshot (its header already checked).
pub(super) fn read(text: &str) -> Result<Parts, SnapshotError> {
    let s = serde_json::from_str::<SnapshotIn>(text).map_err(corrupt)?;
    let tables = TablesIn {
        clients: &s.clients,
        names: &s.names,
        list: s.list,
    };
    let nodes = s
        .nodes
        .into_iter()
        .map(|n| tables.node(n))
        .collect::<Result<_, _>>()?;
    let outbox = s
        .outbox
        .into_iter()
        .map(|o| tables.op(o))
        .collect::<Result<_, _>>()?;
    Ok(Parts {
        list: s.list,
        client: s.client,
        clock: s.clock,
        next_seq: s.next_seq,
        cursor: s.cursor,
        nodes,
        outbox,
    })
}

/// The tables of a snapshot being read, to resolve indices with.
struct TablesIn<'a> {
    clients: &'a [ClientId],
    names: &'a [String],
    list: Uid,
}

fn bad(detail: impl Into<String>) -> SnapshotError {
    SnapshotError::corrupt(detail)
}

impl TablesIn<'_> {
    fn stamp(&self, (wall_ms, counter, client): Packed) -> Result<Stamp, SnapshotError> {
        Ok(Stamp {
            wall_ms,
            counter,
            client: self.client(client)?,
        })
    }

    fn client(&self, index: usize) -> Result<ClientId, SnapshotError> {
        self.clients.get(index).copied().ok_or_else(|| {
            bad(format!(
                "client {index} is past the {} in the table",
                self.clients.len()
            ))
        })
    }

    fn name(&self, index: usize) -> Result<String, SnapshotError> {
        self.names.get(index).cloned().ok_or_else(|| {
            bad(format!(
                "name {index} is past the {} in the table",
                self.names.len()
            ))
        })
    }

    fn reference(&self, r: &RefIn, base: Option<Stamp>) -> Result<Stamp, SnapshotError> {
        match r {
            RefIn::Node(0) => base.ok_or_else(|| bad("a node without `s` refers to it")),
            RefIn::Node(n) => Err(bad(format!("stamp reference {n} is neither 0 nor a stamp"))),
            RefIn::At(packed) => self.stamp(*packed),
        }
    }

    /// A register's stamp and `replaces` from its meta (absent: `[0]`).
    fn meta(
        &self,
        meta: Option<&[RefIn]>,
        base: Option<Stamp>,
    ) -> Result<(Stamp, Option<Stamp>), SnapshotError> {
        match meta.unwrap_or(&[RefIn::Node(0)]) {
            [at] => Ok((self.reference(at, base)?, None)),
            [at, replaces] => Ok((
                self.reference(at, base)?,
                Some(self.reference(replaces, base)?),
            )),
            _ => Err(bad("a register's meta has one or two stamp references")),
        }
    }

    fn register<T>(
        &self,
        value: T,
        meta: Option<&[RefIn]>,
        base: Option<Stamp>,
    ) -> Result<Register<T>, SnapshotError> {
        let (stamp, replaces) = self.meta(meta, base)?;
        Ok(Register {
            value,
            stamp,
            replaces,
        })
    }

    /// The parent as read: absent is the list.
    fn parent(&self, parent: Option<Option<Uid>>) -> Option<Uid> {
        parent.unwrap_or(Some(self.list))
    }

    fn node(&self, n: NodeIn) -> Result<Node, SnapshotError> {
        let base = n.s.map(|s| self.stamp(s)).transpose()?;
        let mut node = Node::new(n.u);
        node.kind = match (n.k, n.km) {
            (Some(k), meta) => Some(self.register(self.name(k)?, meta.as_deref(), base)?),
            (None, None) => None,
            (None, Some(_)) => return Err(bad("a node has `km` without `k`")),
        };
        node.position = match n.o {
            Some(order) => {
                let position = Position {
                    parent: self.parent(n.p),
                    order,
                };
                Some(self.register(position, n.om.as_deref(), base)?)
            }
            None if n.p.is_some() || n.om.is_some() => {
                return Err(bad("a node has `p` or `om` without `o`"))
            }
            None => None,
        };
        for field in n.f {
            let name = self.name(field.name)?;
            let meta = (!field.meta.is_empty()).then_some(&field.meta[..]);
            let register = self.register(field.value, meta, base)?;
            if node.fields.insert(name, register).is_some() {
                return Err(bad("a node has a field twice"));
            }
        }
        node.deleted = n.d.map(|d| self.reference(&d, base)).transpose()?;
        Ok(node)
    }

    fn op(&self, o: OpIn) -> Result<Op, SnapshotError> {
        let stamp = self.stamp(o.s)?;
        let client = match o.c {
            Some(c) => self.client(c)?,
            None => stamp.client,
        };
        let lacks = |part: &str| bad(format!("a queued {} lacks `{part}`", o.a));
        let node = o.u;
        let action = match o.a.as_str() {
            "create" => Action::Create {
                node,
                kind: self.name(o.k.ok_or_else(|| lacks("k"))?)?,
                parent: self.parent(o.p),
                order: o.o.ok_or_else(|| lacks("o"))?,
                fields: self.fields(o.f.ok_or_else(|| lacks("f"))?)?,
            },
            "set" => Action::Set {
                node,
                field: self.name(o.n.ok_or_else(|| lacks("n"))?)?,
                value: o.v.ok_or_else(|| lacks("v"))?,
                replaces: o.r.map(|r| self.stamp(r)).transpose()?,
            },
            "delete" => Action::Delete { node },
            "move" => Action::Move {
                node,
                parent: self.parent(o.p),
                order: o.o.ok_or_else(|| lacks("o"))?,
            },
            other => return Err(bad(format!("unknown action `{other}` in the outbox"))),
        };
        Ok(Op {
            client,
            seq: o.q,
            stamp,
            action,
        })
    }

    fn fields(&self, pairs: Vec<(usize, Value)>) -> Result<Fields, SnapshotError> {
        let mut fields = Fields::new();
        for (name, value) in pairs {
            if fields.insert(self.name(name)?, value).is_some() {
                return Err(bad("a queued create has a field twice"));
            }
        }
        Ok(fields)
    }
}
