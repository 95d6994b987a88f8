//! The server's checks and merge of one pushed batch, as a pure function.
//!
//! [`plan_push`] takes a [`PushRequest`], the client's last applied sequence number
//! and the stored states of the nodes the batch touches ([`nodes_to_load`] says
//! which), and returns either a [`PushPlan`] (the node states to store, the sequence
//! number to acknowledge) or the first [`SyncError`]. It never half-applies: any
//! error rejects the whole batch. The server wraps it in one transaction; the
//! property tests run the very same function as their simulated server, so what
//! they prove is what the server does.
//!
//! Each op not yet applied is checked with the rules replicas apply too
//! ([`super::rules::check_action`]), after the server's own: the clock skew of its
//! stamp and the size of its field values ([`Limits`]).
//!
//! Ops with `seq <= last_seq` were applied by an earlier push whose ack was lost:
//! they are checked for shape (client, sequence) and skipped, which is what makes
//! resending safe.
//!
//! Deleted nodes still accept writes (they merge under the tombstone and stay
//! invisible): a client that edited offline must be able to flush its outbox
//! whatever happened meanwhile.

use std::collections::{HashMap, HashSet};
use std::io;

use super::clock::Hlc;
use super::node::Node;
use super::op::{Action, Op};
use super::registry::{Registry, Value};
use super::rules::{check_action, ListNodes};
use super::uid::Uid;
use super::wire::{PushRequest, SyncError};

pub use super::rules::ROOT_KIND;

/// The largest sequence number: 2^53, the largest integer a JavaScript number
/// holds exactly.
pub const MAX_SEQ: u64 = 1 << 53;

/// The server's limits on one push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_ops_per_push: usize,
    /// Largest serialised JSON of one field value, in bytes.
    pub max_field_bytes: usize,
    /// How far an op's stamp may be ahead of the server's clock.
    pub max_clock_skew_ms: u64,
}

impl Limits {
    /// The defaults, the server's configuration's too (`sync.max_ops_per_push`,
    /// `sync.max_field_bytes`, `sync.max_clock_skew_ms`): 1000 ops, 4096 bytes per
    /// field, 5 minutes of skew.
    pub const DEFAULT: Limits = Limits {
        max_ops_per_push: 1000,
        max_field_bytes: 4096,
        max_clock_skew_ms: 5 * 60 * 1000,
    };
}

impl Default for Limits {
    /// [`Limits::DEFAULT`].
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// A stored node and the list it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredNode {
    pub list: Uid,
    pub node: Node,
}

/// The outcome of a valid push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushPlan {
    /// Acknowledge every op of the client up to here.
    pub acked_seq: u64,
    /// The new states of the nodes that changed, in the order first touched. Each
    /// gets a new version when stored.
    pub changed: Vec<Node>,
    /// Ops merged by this push.
    pub applied: usize,
    /// Ops skipped as already applied.
    pub skipped: usize,
}

/// Every uid the batch touches or names as a parent: what the server loads
/// before calling [`plan_push`]. In first-named order, without repeats.
pub fn nodes_to_load(req: &PushRequest) -> Vec<Uid> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for op in &req.ops {
        for uid in [Some(op.node()), op.action.parent()].into_iter().flatten() {
            if seen.insert(uid) {
                out.push(uid);
            }
        }
    }
    out
}

/// Checks a batch and computes its effect; see the module docs.
///
/// `stored` must hold every node of [`nodes_to_load`] that exists (in any list);
/// others may be present and are ignored.
pub fn plan_push(
    registry: &Registry,
    limits: &Limits,
    req: &PushRequest,
    last_seq: u64,
    stored: &HashMap<Uid, StoredNode>,
    now_ms: u64,
) -> Result<PushPlan, SyncError> {
    if req.ops.len() > limits.max_ops_per_push {
        return Err(SyncError::TooManyOps {
            count: req.ops.len(),
            max: limits.max_ops_per_push,
        });
    }
    let highest_seq = check_envelopes(req)?;
    let mut batch = Batch {
        registry,
        limits,
        list: req.list,
        stored,
        nodes: HashMap::new(),
        touched: Vec::new(),
        changed: HashSet::new(),
    };
    let mut skipped = 0;
    for op in &req.ops {
        if op.seq <= last_seq {
            skipped += 1;
            continue;
        }
        batch.check(op, now_ms)?;
        batch.apply(op);
    }
    let changed = batch
        .touched
        .iter()
        .filter(|uid| batch.changed.contains(uid))
        .filter_map(|uid| batch.nodes.get(uid).cloned())
        .collect();
    Ok(PushPlan {
        acked_seq: last_seq.max(highest_seq),
        changed,
        applied: req.ops.len() - skipped,
        skipped,
    })
}

/// Checks every op's client and sequence number; returns the highest seq (0 for
/// an empty batch).
fn check_envelopes(req: &PushRequest) -> Result<u64, SyncError> {
    let mut previous = 0;
    for op in &req.ops {
        if op.client != req.client || op.stamp.client != req.client {
            return Err(SyncError::ClientMismatch);
        }
        let invalid = |reason: &str| SyncError::InvalidSeq {
            seq: op.seq,
            reason: reason.to_string(),
        };
        if op.seq == 0 {
            return Err(invalid("must be at least 1"));
        }
        if op.seq > MAX_SEQ {
            return Err(invalid("must be at most 2^53"));
        }
        if op.seq <= previous {
            return Err(invalid("must increase within the batch"));
        }
        check_replaces(op)?;
        previous = op.seq;
    }
    Ok(previous)
}

/// A `set` replaces a value written before it: its `replaces` stamp, if given, is
/// below the op's own stamp.
fn check_replaces(op: &Op) -> Result<(), SyncError> {
    match &op.action {
        Action::Set {
            replaces: Some(replaces),
            ..
        } if *replaces >= op.stamp => Err(SyncError::MalformedRequest {
            detail: format!("op {}: `replaces` must be below the op's stamp", op.seq),
        }),
        _ => Ok(()),
    }
}

/// The working state of one batch: copies of the nodes it wrote so far.
struct Batch<'a> {
    registry: &'a Registry,
    limits: &'a Limits,
    list: Uid,
    stored: &'a HashMap<Uid, StoredNode>,
    nodes: HashMap<Uid, Node>,
    touched: Vec<Uid>,
    changed: HashSet<Uid>,
}

impl Batch<'_> {
    /// The node's state as of the ops checked so far.
    fn current(&self, uid: Uid) -> Option<&Node> {
        self.nodes
            .get(&uid)
            .or_else(|| self.stored.get(&uid).map(|s| &s.node))
    }

    fn check_size(&self, node: Uid, field: &str, value: &Value) -> Result<(), SyncError> {
        let bytes = json_len(value);
        if bytes > self.limits.max_field_bytes {
            return Err(SyncError::FieldTooLarge {
                node,
                field: field.to_string(),
                bytes,
                max: self.limits.max_field_bytes,
            });
        }
        Ok(())
    }

    /// Every rule for one op that is not yet applied: the server's own (clock
    /// skew, size of field values), then the shared ones ([`check_action`]).
    fn check(&self, op: &Op, now_ms: u64) -> Result<(), SyncError> {
        let max_skew_ms = self.limits.max_clock_skew_ms;
        Hlc::check_skew(&op.stamp, now_ms, max_skew_ms).map_err(|_| SyncError::ClockSkew {
            stamp_ms: op.stamp.wall_ms,
            server_ms: now_ms,
            max_skew_ms,
        })?;
        let node = op.node();
        match &op.action {
            Action::Create { fields, .. } => fields
                .iter()
                .try_for_each(|(name, value)| self.check_size(node, name, value))?,
            Action::Set { field, value, .. } => self.check_size(node, field, value)?,
            Action::Delete { .. } | Action::Move { .. } => {}
        }
        check_action(self.registry, self, &op.action)
    }

    /// Merges a checked op into the working copy of its node.
    fn apply(&mut self, op: &Op) {
        let uid = op.node();
        let stored = self.stored;
        let touched = &mut self.touched;
        let node = self.nodes.entry(uid).or_insert_with(|| {
            touched.push(uid);
            stored
                .get(&uid)
                .map(|s| s.node.clone())
                .unwrap_or_else(|| Node::new(uid))
        });
        if !node.merge(&op.to_delta()).is_empty() {
            self.changed.insert(uid);
        }
    }
}

/// The rules see the batch's working copies over the stored nodes.
impl ListNodes for Batch<'_> {
    fn list(&self) -> Uid {
        self.list
    }

    fn kind_of(&self, uid: Uid) -> Option<&str> {
        self.current(uid).and_then(Node::kind_name)
    }

    /// A stored node must be of the pushed list (nodes new in this batch are).
    fn is_foreign(&self, uid: Uid) -> bool {
        self.stored.get(&uid).is_some_and(|s| s.list != self.list)
    }
}

/// Length of a value's JSON without building the string.
fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` into a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::clock::Stamp;
    use crate::model::order::OrderKey;
    use crate::model::registry::{registry, Fields};
    use crate::model::uid::ClientId;
    use serde_json::json;

    const NOW: u64 = 1_764_160_000_000;

    struct Setup {
        list: Uid,
        client: ClientId,
        seq: u64,
        ops: Vec<Op>,
        stored: HashMap<Uid, StoredNode>,
    }

    impl Setup {
        fn new() -> Setup {
            Setup {
                list: Uid::new(),
                client: ClientId::new(),
                seq: 0,
                ops: Vec::new(),
                stored: HashMap::new(),
            }
        }

        fn op(&mut self, action: Action) -> &mut Setup {
            self.seq += 1;
            self.ops.push(Op {
                client: self.client,
                seq: self.seq,
                stamp: Stamp {
                    wall_ms: NOW,
                    counter: self.seq as u32,
                    client: self.client,
                },
                action,
            });
            self
        }

        fn create(
            &mut self,
            node: Uid,
            kind: &str,
            parent: Option<Uid>,
            title: &str,
        ) -> &mut Setup {
            let fields = Fields::from([("title".to_string(), json!(title))]);
            self.op(Action::Create {
                node,
                kind: kind.into(),
                parent,
                order: OrderKey::first(),
                fields,
            })
        }

        fn request(&self) -> PushRequest {
            PushRequest {
                list: self.list,
                client: self.client,
                ops: self.ops.clone(),
            }
        }

        fn plan(&self, last_seq: u64) -> Result<PushPlan, SyncError> {
            plan_push(
                registry(),
                &Limits::default(),
                &self.request(),
                last_seq,
                &self.stored,
                NOW,
            )
        }

        /// Stores the plan's nodes as the server would.
        fn commit(&mut self, plan: &PushPlan) {
            for node in &plan.changed {
                self.stored.insert(
                    node.uid,
                    StoredNode {
                        list: self.list,
                        node: node.clone(),
                    },
                );
            }
            self.ops.clear();
        }
    }

    #[test]
    fn a_set_replacing_a_value_not_older_than_itself_is_malformed() {
        let mut s = Setup::new();
        let (list, todo) = (s.list, Uid::new());
        s.create(todo, "todo", Some(list), "Milk");
        let at = |counter| Stamp {
            wall_ms: NOW,
            counter,
            client: s.client,
        };
        let (older, same) = (at(1), at(2));
        let set = |replaces| Action::Set {
            node: todo,
            field: "title".into(),
            value: json!("Oat milk"),
            replaces: Some(replaces),
        };
        s.op(set(older));
        assert!(s.plan(0).is_ok());
        s.ops.pop();
        s.seq -= 1;
        s.op(set(same));
        assert!(matches!(
            s.plan(0),
            Err(SyncError::MalformedRequest { detail }) if detail.contains("replaces")
        ));
    }

    #[test]
    fn a_fresh_list_with_items() {
        let mut s = Setup::new();
        let (list, todo) = (s.list, Uid::new());
        s.create(list, "list", None, "Shopping")
            .create(todo, "todo", Some(list), "Milk")
            .op(Action::Set {
                node: todo,
                field: "completed".into(),
                value: json!(true),
                replaces: None,
            });
        assert_eq!(nodes_to_load(&s.request()), [list, todo]);
        let plan = s.plan(0).unwrap();
        assert_eq!(plan.acked_seq, 3);
        assert_eq!((plan.applied, plan.skipped), (3, 0));
        let uids: Vec<_> = plan.changed.iter().map(|n| n.uid).collect();
        assert_eq!(uids, [list, todo]);
        assert_eq!(plan.changed[1].field("completed"), Some(&json!(true)));
    }

    #[test]
    fn items_may_live_under_a_list_not_created_yet() {
        let mut s = Setup::new();
        let list = s.list;
        s.create(Uid::new(), "todo", Some(list), "Milk");
        assert!(s.plan(0).is_ok());
    }

    #[test]
    fn resent_ops_are_skipped_and_change_nothing() {
        let mut s = Setup::new();
        let list = s.list;
        s.create(Uid::new(), "todo", Some(list), "Milk");
        let plan = s.plan(0).unwrap();
        let ops = s.ops.clone();
        s.commit(&plan);
        s.ops = ops;
        let again = s.plan(1).unwrap();
        assert_eq!((again.acked_seq, again.applied, again.skipped), (1, 0, 1));
        assert!(again.changed.is_empty());
        // Even replaying it as new changes nothing: merges are idempotent.
        assert!(s.plan(0).unwrap().changed.is_empty());
    }

    #[test]
    fn envelope_errors() {
        let mut s = Setup::new();
        let list = s.list;
        s.create(Uid::new(), "todo", Some(list), "Milk");
        let limits = Limits {
            max_ops_per_push: 0,
            ..Limits::default()
        };
        let err = plan_push(registry(), &limits, &s.request(), 0, &s.stored, NOW);
        assert_eq!(err, Err(SyncError::TooManyOps { count: 1, max: 0 }));

        let mut other = s.request();
        other.client = ClientId::new();
        let err = plan_push(registry(), &Limits::default(), &other, 0, &s.stored, NOW);
        assert_eq!(err, Err(SyncError::ClientMismatch));

        let mut forged = s.request();
        forged.ops[0].stamp.client = ClientId::new();
        let err = plan_push(registry(), &Limits::default(), &forged, 0, &s.stored, NOW);
        assert_eq!(err, Err(SyncError::ClientMismatch));

        for (seqs, bad) in [
            (vec![0], 0),
            (vec![MAX_SEQ + 1], MAX_SEQ + 1),
            (vec![2, 2], 2),
        ] {
            let mut req = s.request();
            req.ops = seqs
                .iter()
                .map(|seq| Op {
                    seq: *seq,
                    ..s.ops[0].clone()
                })
                .collect();
            let err = plan_push(registry(), &Limits::default(), &req, 0, &s.stored, NOW);
            assert!(matches!(err, Err(SyncError::InvalidSeq { seq, .. }) if seq == bad));
        }
    }

    #[test]
    fn clock_skew_and_field_size() {
        let mut s = Setup::new();
        let list = s.list;
        s.create(Uid::new(), "todo", Some(list), "Milk");
        s.ops[0].stamp.wall_ms = NOW + Limits::default().max_clock_skew_ms + 1;
        assert!(matches!(s.plan(0), Err(SyncError::ClockSkew { .. })));
        // An already-applied op is not re-checked for skew.
        assert!(s.plan(1).is_ok());

        let mut s = Setup::new();
        let list = s.list;
        s.create(Uid::new(), "todo", Some(list), &"x".repeat(20_000));
        assert!(matches!(
            s.plan(0),
            Err(SyncError::FieldTooLarge { bytes: 20_002, .. })
        ));
    }

    #[test]
    fn registry_errors() {
        let cases: [(&str, Value, &str); 4] = [
            ("gizmo", json!({"title": "x"}), "unknown_kind"),
            ("todo", json!({"title": "x", "colour": 1}), "unknown_field"),
            ("todo", json!({"title": 1}), "wrong_type"),
            ("todo", json!({"title": " x"}), "invalid_field"),
        ];
        for (kind, fields, code) in cases {
            let mut s = Setup::new();
            let list = s.list;
            s.op(Action::Create {
                node: Uid::new(),
                kind: kind.into(),
                parent: Some(list),
                order: OrderKey::first(),
                fields: serde_json::from_value(fields).unwrap(),
            });
            assert_eq!(s.plan(0).unwrap_err().code(), code);
        }
        let mut s = Setup::new();
        let (list, todo) = (s.list, Uid::new());
        s.create(todo, "todo", Some(list), "a")
            .create(Uid::new(), "todo", Some(todo), "b");
        assert!(matches!(s.plan(0), Err(SyncError::BadParent { .. })));
    }

    #[test]
    fn foreign_and_missing_nodes() {
        let mut s = Setup::new();
        let (list, elsewhere) = (s.list, Uid::new());
        let foreign = Uid::new();
        let mut node = Node::new(foreign);
        node.merge(
            &Op {
                client: s.client,
                seq: 1,
                stamp: Stamp {
                    wall_ms: 1,
                    counter: 0,
                    client: s.client,
                },
                action: Action::Create {
                    node: foreign,
                    kind: "todo".into(),
                    parent: Some(elsewhere),
                    order: OrderKey::first(),
                    fields: Fields::from([("title".to_string(), json!("x"))]),
                },
            }
            .to_delta(),
        );
        s.stored.insert(
            foreign,
            StoredNode {
                list: elsewhere,
                node,
            },
        );
        let set = |node| Action::Set {
            node,
            field: "completed".into(),
            value: json!(true),
            replaces: None,
        };
        s.op(set(foreign));
        assert_eq!(s.plan(0), Err(SyncError::ForeignNode { node: foreign }));

        s.ops.clear();
        let mine = Uid::new();
        s.create(mine, "todo", Some(foreign), "x");
        assert_eq!(
            s.plan(0),
            Err(SyncError::ForeignParent {
                node: mine,
                parent: foreign
            })
        );

        s.ops.clear();
        let ghost = Uid::new();
        s.create(mine, "todo", Some(ghost), "x");
        assert_eq!(
            s.plan(0),
            Err(SyncError::ParentNotFound {
                node: mine,
                parent: ghost
            })
        );

        s.ops.clear();
        s.op(Action::Delete { node: ghost });
        assert_eq!(s.plan(0), Err(SyncError::NodeNotFound { node: ghost }));

        s.ops.clear();
        s.create(Uid::new(), "list", None, "Other list");
        assert!(matches!(s.plan(0), Err(SyncError::ForeignNode { .. })));

        s.ops.clear();
        s.create(list, "todo", Some(list), "x");
        assert!(matches!(s.plan(0), Err(SyncError::KindConflict { .. })));
        s.ops.clear();
        s.create(mine, "todo", Some(list), "x").op(Action::Move {
            node: mine,
            parent: Some(mine),
            order: OrderKey::first(),
        });
        assert!(matches!(s.plan(0), Err(SyncError::MalformedRequest { .. })));
    }

    #[test]
    fn kind_conflict_and_all_or_nothing() {
        let mut s = Setup::new();
        let (list, todo) = (s.list, Uid::new());
        s.create(todo, "todo", Some(list), "Milk");
        let plan = s.plan(0).unwrap();
        s.commit(&plan);
        s.create(todo, "section", Some(list), "Dairy");
        assert_eq!(
            s.plan(1),
            Err(SyncError::KindConflict {
                node: todo,
                existing: "todo".into(),
                requested: "section".into()
            })
        );
        // A valid op before an invalid one is not applied either: the plan is Err.
        s.ops.clear();
        s.op(Action::Delete { node: todo }).op(Action::Set {
            node: todo,
            field: "title".into(),
            value: json!(""),
            replaces: None,
        });
        assert!(s.plan(1).is_err());
        assert!(!s.stored[&todo].node.is_deleted());
    }

    #[test]
    fn writes_to_deleted_nodes_are_accepted_and_stay_hidden() {
        let mut s = Setup::new();
        let (list, todo) = (s.list, Uid::new());
        s.create(todo, "todo", Some(list), "Milk")
            .op(Action::Delete { node: todo })
            .op(Action::Set {
                node: todo,
                field: "title".into(),
                value: json!("Oat milk"),
                replaces: None,
            })
            .op(Action::Move {
                node: todo,
                parent: Some(list),
                order: OrderKey::first(),
            });
        let plan = s.plan(0).unwrap();
        assert_eq!(plan.changed.len(), 1);
        assert!(!plan.changed[0].is_live());
    }
}
