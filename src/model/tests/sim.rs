//! Replicas syncing through a simulated server over a bad network.
//!
//! 3–5 replicas of one list make random creates, sets, deletes and moves, and
//! exchange them through an in-memory server that runs the real
//! [`plan_push`](crate::model::batch::plan_push) and numbers stored changes with a
//! version counter, as the real server does in its transaction. The network
//! delays, reorders, duplicates and drops pushes, loses acks (the push applied but
//! the client never hears it, so it resends), and replicas go offline, reload from
//! their JSON snapshot and merge each other's state (tabs sharing localStorage).
//!
//! At the end everyone goes online, flushes and pulls. Then every replica holds
//! exactly the server's node states (so the same live nodes, fields and children
//! order), every outbox is empty, and every op ever made is in the server's state.
//! Along the way, every push a replica sends must be accepted (local validation
//! matches the server's), and every op covered by an ack must be on the server
//! when the ack arrives.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use serde_json::json;

use super::support::{config, visible_tree};
use crate::model::batch::{nodes_to_load, plan_push, Limits, StoredNode};
use crate::model::kinds::{List, Section, Todo};
use crate::model::node::Node;
use crate::model::op::Op;
use crate::model::registry::registry;
use crate::model::replica::{Placement, Replica};
use crate::model::uid::{ClientId, Uid};
use crate::model::wire::{Change, PullPage, PushAck, PushRequest, SyncError};

const LIMITS: Limits = Limits {
    max_ops_per_push: 6,
    max_field_bytes: 4096,
    max_clock_skew_ms: 60_000,
};

const T0: u64 = 1_764_160_000_000;

const TITLES: [&str; 6] = ["Milk", "Eggs", "Bread", "Tea", "Jam", " not trimmed"];

/// The in-memory server: node states, a change log keyed by version (one entry per
/// node, its latest), and each client's last applied sequence number.
#[derive(Default)]
struct Server {
    nodes: HashMap<Uid, StoredNode>,
    log: BTreeMap<u64, Uid>,
    version_of: HashMap<Uid, u64>,
    version: u64,
    last_seq: HashMap<ClientId, u64>,
}

impl Server {
    fn push(&mut self, req: &PushRequest, now_ms: u64) -> Result<PushAck, SyncError> {
        // Load only what the real server would load.
        let stored: HashMap<Uid, StoredNode> = nodes_to_load(req)
            .into_iter()
            .filter_map(|uid| self.nodes.get(&uid).map(|s| (uid, s.clone())))
            .collect();
        let last = self.last_seq.get(&req.client).copied().unwrap_or(0);
        let plan = plan_push(registry(), &LIMITS, req, last, &stored, now_ms)?;
        for node in plan.changed {
            self.version += 1;
            if let Some(old) = self.version_of.insert(node.uid, self.version) {
                self.log.remove(&old);
            }
            self.log.insert(self.version, node.uid);
            let list = req.list;
            self.nodes.insert(node.uid, StoredNode { list, node });
        }
        self.last_seq.insert(req.client, plan.acked_seq);
        Ok(PushAck {
            list: req.list,
            acked_seq: plan.acked_seq,
            version: self.version,
            server_time_ms: now_ms,
        })
    }

    fn pull(&self, list: Uid, after: u64, limit: usize, now_ms: u64) -> PullPage {
        let changes: Vec<Change> = self
            .log
            .range(after + 1..)
            .take(limit.max(1))
            .filter_map(|(version, uid)| {
                let node = self.nodes.get(uid)?.node.clone();
                Some(Change {
                    version: *version,
                    node,
                })
            })
            .collect();
        let cursor = changes.last().map_or(after, |c| c.version);
        PullPage {
            list,
            more: self.log.range(cursor + 1..).next().is_some(),
            changes,
            cursor,
            server_time_ms: now_ms,
        }
    }

    fn state(&self) -> BTreeMap<Uid, Node> {
        self.nodes
            .iter()
            .map(|(uid, s)| (*uid, s.node.clone()))
            .collect()
    }

    /// True if the op's write is part of the stored state.
    fn holds(&self, op: &Op) -> bool {
        self.nodes.get(&op.node()).is_some_and(|stored| {
            let mut node = stored.node.clone();
            node.merge(&op.to_delta()).is_empty()
        })
    }
}

#[derive(Debug, Clone)]
enum Step {
    Create {
        r: usize,
        kind: u8,
        title: usize,
        place: u8,
        anchor: usize,
    },
    CreateRoot {
        r: usize,
        title: usize,
    },
    SetTitle {
        r: usize,
        pick: usize,
        title: usize,
    },
    Toggle {
        r: usize,
        pick: usize,
    },
    Delete {
        r: usize,
        pick: usize,
    },
    Move {
        r: usize,
        pick: usize,
        place: u8,
        anchor: usize,
    },
    /// Put the replica's next push on the wire.
    Send {
        r: usize,
        max_ops: usize,
    },
    /// Deliver an in-flight push (`pick`: which, so in any order); `lose_ack`: the
    /// server applies it but the ack never arrives; `duplicate`: it stays on the
    /// wire and arrives again later.
    Deliver {
        pick: usize,
        lose_ack: bool,
        duplicate: bool,
    },
    /// A push lost on the way to the server.
    DropPush {
        pick: usize,
    },
    DeliverAck {
        pick: usize,
    },
    Pull {
        r: usize,
        limit: usize,
    },
    ToggleOnline {
        r: usize,
    },
    /// The replica's wall clock jumps (possibly backwards).
    ClockJump {
        r: usize,
        delta_ms: i64,
    },
    /// The tab reloads from its snapshot.
    Reload {
        r: usize,
    },
    /// A tab merges another tab's copy (shared localStorage).
    MergeTabs {
        r: usize,
        from: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let r = 0..5usize;
    prop_oneof![
        6 => (r.clone(), 0..3u8, 0..6usize, 0..4u8, any::<usize>())
            .prop_map(|(r, kind, title, place, anchor)| Step::Create { r, kind, title, place, anchor }),
        1 => (r.clone(), 0..6usize).prop_map(|(r, title)| Step::CreateRoot { r, title }),
        4 => (r.clone(), any::<usize>(), 0..6usize)
            .prop_map(|(r, pick, title)| Step::SetTitle { r, pick, title }),
        3 => (r.clone(), any::<usize>()).prop_map(|(r, pick)| Step::Toggle { r, pick }),
        2 => (r.clone(), any::<usize>()).prop_map(|(r, pick)| Step::Delete { r, pick }),
        3 => (r.clone(), any::<usize>(), 0..4u8, any::<usize>())
            .prop_map(|(r, pick, place, anchor)| Step::Move { r, pick, place, anchor }),
        10 => (r.clone(), 1..=LIMITS.max_ops_per_push).prop_map(|(r, max_ops)| Step::Send { r, max_ops }),
        10 => (any::<usize>(), prop::bool::weighted(0.2), prop::bool::weighted(0.2))
            .prop_map(|(pick, lose_ack, duplicate)| Step::Deliver { pick, lose_ack, duplicate }),
        1 => any::<usize>().prop_map(|pick| Step::DropPush { pick }),
        6 => any::<usize>().prop_map(|pick| Step::DeliverAck { pick }),
        6 => (r.clone(), 1..6usize).prop_map(|(r, limit)| Step::Pull { r, limit }),
        1 => r.clone().prop_map(|r| Step::ToggleOnline { r }),
        1 => (r.clone(), -3_000..3_000i64).prop_map(|(r, delta_ms)| Step::ClockJump { r, delta_ms }),
        1 => r.clone().prop_map(|r| Step::Reload { r }),
        1 => (r.clone(), r).prop_map(|(r, from)| Step::MergeTabs { r, from }),
    ]
}

struct Tab {
    replica: Replica,
    online: bool,
    /// Added to the global time to make this tab's wall clock.
    offset_ms: i64,
}

/// An acknowledgement on its way back: to which tab, for which client, and the
/// ops of the push it covers.
struct Ack {
    tab: usize,
    client: ClientId,
    acked_seq: u64,
    ops: Vec<Op>,
}

struct World {
    list: Uid,
    now: u64,
    server: Server,
    tabs: Vec<Tab>,
    wire: Vec<PushRequest>,
    /// Which tab sent each push on `wire`.
    senders: Vec<usize>,
    acks: Vec<Ack>,
    /// Every op any tab made.
    made: Vec<Op>,
}

impl World {
    fn new(tabs: usize, offsets: &[i64]) -> World {
        let list = Uid::new();
        let tabs = (0..tabs)
            .map(|i| Tab {
                replica: Replica::new(list, ClientId::new()),
                online: true,
                offset_ms: offsets.get(i).copied().unwrap_or(0),
            })
            .collect();
        World {
            list,
            now: T0,
            server: Server::default(),
            tabs,
            wire: Vec::new(),
            senders: Vec::new(),
            acks: Vec::new(),
            made: Vec::new(),
        }
    }

    fn wall(&self, tab: usize) -> u64 {
        self.now.saturating_add_signed(self.tabs[tab].offset_ms)
    }

    /// A node of the list (not the list itself) known to the tab, live or not.
    fn pick(&self, tab: usize, pick: usize) -> Option<Uid> {
        let items: Vec<Uid> = self.tabs[tab]
            .replica
            .nodes()
            .filter(|n| n.uid != self.list && n.kind.is_some())
            .map(|n| n.uid)
            .collect();
        items.get(pick % items.len().max(1)).copied()
    }

    fn placement(&self, tab: usize, place: u8, anchor: usize) -> Placement {
        let siblings = self.tabs[tab].replica.children(self.list);
        let anchor = siblings.get(anchor % siblings.len().max(1)).copied();
        match (place, anchor) {
            (1, _) => Placement::Start,
            (2, Some(a)) => Placement::After(a),
            (3, Some(a)) => Placement::Before(a),
            _ => Placement::End,
        }
    }

    fn made(&mut self, result: Result<Op, crate::model::ModelError>) {
        // Local refusals (deleted nodes, invalid titles, …) are part of the game.
        if let Ok(op) = result {
            self.made.push(op);
        }
    }

    fn run(&mut self, step: &Step) -> Result<(), TestCaseError> {
        self.now += 7;
        let n = self.tabs.len();
        let list = self.list;
        match *step {
            Step::Create {
                r,
                kind,
                title,
                place,
                anchor,
            } => {
                let r = r % n;
                let at = self.placement(r, place, anchor);
                let (wall, title) = (self.wall(r), TITLES[title].to_string());
                let replica = &mut self.tabs[r].replica;
                let result = if kind == 1 {
                    replica.create(list, at, &Section { title }, wall)
                } else {
                    let todo = Todo {
                        title,
                        completed: kind == 2,
                    };
                    replica.create(list, at, &todo, wall)
                };
                self.made(result.map(|(_, op)| op));
            }
            Step::CreateRoot { r, title } => {
                let r = r % n;
                let wall = self.wall(r);
                let list_value = List {
                    title: TITLES[title].to_string(),
                };
                let result = self.tabs[r].replica.create_root(&list_value, wall);
                self.made(result);
            }
            Step::SetTitle { r, pick, title } => {
                let r = r % n;
                if let Some(node) = self.pick(r, pick) {
                    let wall = self.wall(r);
                    let result =
                        self.tabs[r]
                            .replica
                            .set(node, "title", json!(TITLES[title]), wall);
                    self.made(result);
                }
            }
            Step::Toggle { r, pick } => {
                let r = r % n;
                if let Some(node) = self.pick(r, pick) {
                    let wall = self.wall(r);
                    let replica = &mut self.tabs[r].replica;
                    let done = replica
                        .get::<Todo>(node)
                        .and_then(Result::ok)
                        .is_some_and(|t| t.completed);
                    let result = replica.set(node, "completed", json!(!done), wall);
                    self.made(result);
                }
            }
            Step::Delete { r, pick } => {
                let r = r % n;
                if let Some(node) = self.pick(r, pick) {
                    let wall = self.wall(r);
                    let result = self.tabs[r].replica.delete(node, wall);
                    self.made(result);
                }
            }
            Step::Move {
                r,
                pick,
                place,
                anchor,
            } => {
                let r = r % n;
                if let Some(node) = self.pick(r, pick) {
                    let at = self.placement(r, place, anchor);
                    let wall = self.wall(r);
                    let result = self.tabs[r].replica.move_to(node, list, at, wall);
                    self.made(result);
                }
            }
            Step::Send { r, max_ops } => {
                let r = r % n;
                if self.tabs[r].online {
                    if let Some(req) = self.tabs[r].replica.push_request(max_ops) {
                        self.wire.push(req);
                        self.senders.push(r);
                    }
                }
            }
            Step::Deliver {
                pick,
                lose_ack,
                duplicate,
            } => {
                if !self.wire.is_empty() {
                    let i = pick % self.wire.len();
                    let (req, tab) = if duplicate {
                        (self.wire[i].clone(), self.senders[i])
                    } else {
                        (self.wire.remove(i), self.senders.remove(i))
                    };
                    self.deliver(&req, tab, lose_ack)?;
                }
            }
            Step::DropPush { pick } => {
                if !self.wire.is_empty() {
                    let i = pick % self.wire.len();
                    self.wire.remove(i);
                    self.senders.remove(i);
                }
            }
            Step::DeliverAck { pick } => {
                if !self.acks.is_empty() {
                    let ack = self.acks.remove(pick % self.acks.len());
                    self.receive_ack(ack)?;
                }
            }
            Step::Pull { r, limit } => {
                let r = r % n;
                if self.tabs[r].online {
                    self.pull(r, limit);
                }
            }
            Step::ToggleOnline { r } => {
                let tab = &mut self.tabs[r % n];
                tab.online = !tab.online;
            }
            Step::ClockJump { r, delta_ms } => {
                let tab = &mut self.tabs[r % n];
                tab.offset_ms = (tab.offset_ms + delta_ms).clamp(-20_000, 20_000);
            }
            Step::Reload { r } => {
                let r = r % n;
                let json = self.tabs[r].replica.to_json();
                let reloaded =
                    Replica::from_json(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(reloaded.to_json(), json);
                self.tabs[r].replica = reloaded;
            }
            Step::MergeTabs { r, from } => {
                let (r, from) = (r % n, from % n);
                if r != from {
                    let other = Replica::from_json(&self.tabs[from].replica.to_json())
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    self.tabs[r].replica.merge_replica(&other);
                }
            }
        }
        Ok(())
    }

    fn deliver(
        &mut self,
        req: &PushRequest,
        tab: usize,
        lose_ack: bool,
    ) -> Result<(), TestCaseError> {
        let ack = match self.server.push(req, self.now) {
            Ok(ack) => ack,
            Err(e) => return Err(TestCaseError::fail(format!("push refused: {e:?}\n{req:?}"))),
        };
        prop_assert!(ack.acked_seq >= req.ops.last().map_or(0, |op| op.seq));
        if !lose_ack {
            let ops = req
                .ops
                .iter()
                .filter(|op| op.seq <= ack.acked_seq)
                .cloned()
                .collect();
            self.acks.push(Ack {
                tab,
                client: req.client,
                acked_seq: ack.acked_seq,
                ops,
            });
        }
        Ok(())
    }

    fn receive_ack(&mut self, ack: Ack) -> Result<(), TestCaseError> {
        // The server acknowledges only what it holds.
        for op in &ack.ops {
            prop_assert!(self.server.holds(op), "acked op missing: {:?}", op);
        }
        if self.tabs[ack.tab].online {
            self.tabs[ack.tab].replica.ack(ack.client, ack.acked_seq);
        }
        Ok(())
    }

    fn pull(&mut self, r: usize, limit: usize) {
        let after = self.tabs[r].replica.cursor().version;
        let page = self.server.pull(self.list, after, limit, self.now);
        self.tabs[r]
            .replica
            .apply_remote(&page.changes, page.server_time_ms);
    }

    /// Everyone online: deliver what is on the wire, flush every outbox, pull all.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        while let Some(req) = self.wire.pop() {
            let tab = self.senders.pop().unwrap_or(0);
            self.deliver(&req, tab, false)?;
        }
        for ack in std::mem::take(&mut self.acks) {
            self.receive_ack(ack)?;
        }
        for tab in &mut self.tabs {
            tab.online = true;
        }
        for r in 0..self.tabs.len() {
            let mut rounds = 0;
            while let Some(req) = self.tabs[r].replica.push_request(LIMITS.max_ops_per_push) {
                rounds += 1;
                prop_assert!(rounds < 10_000, "outbox does not drain");
                self.now += 1;
                self.deliver(&req, r, false)?;
                let ack = self
                    .acks
                    .pop()
                    .ok_or_else(|| TestCaseError::fail("no ack"))?;
                self.receive_ack(ack)?;
            }
        }
        for r in 0..self.tabs.len() {
            loop {
                let after = self.tabs[r].replica.cursor().version;
                let page = self.server.pull(self.list, after, 4, self.now);
                self.tabs[r]
                    .replica
                    .apply_remote(&page.changes, page.server_time_ms);
                if !page.more {
                    break;
                }
            }
        }
        Ok(())
    }

    fn check_converged(&self) -> Result<(), TestCaseError> {
        let server = self.server.state();
        let tree = visible_tree(self.list, &server);
        for op in &self.made {
            prop_assert!(self.server.holds(op), "op lost: {:?}", op);
        }
        for (i, tab) in self.tabs.iter().enumerate() {
            let replica = &tab.replica;
            prop_assert_eq!(replica.pending(), 0, "tab {} outbox not empty", i);
            prop_assert_eq!(replica.cursor().version, self.server.version);
            let nodes: BTreeMap<Uid, Node> = replica.nodes().map(|n| (n.uid, n.clone())).collect();
            prop_assert_eq!(&nodes, &server, "tab {} differs from the server", i);
            for (parent, children) in &tree {
                prop_assert_eq!(
                    &replica.children(*parent),
                    children,
                    "children of {} on tab {}",
                    parent,
                    i
                );
            }
        }
        Ok(())
    }
}

fn simulate(tabs: usize, offsets: &[i64], steps: &[Step]) -> Result<(), TestCaseError> {
    let mut world = World::new(tabs, offsets);
    for step in steps {
        world.run(step)?;
    }
    world.settle()?;
    world.check_converged()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn replicas_converge_through_a_bad_network(
        tabs in 3..=5usize,
        offsets in prop::collection::vec(-2_000..2_000i64, 5),
        steps in prop::collection::vec(step(), 0..120),
    ) {
        simulate(tabs, &offsets, &steps)?;
    }
}

#[test]
fn offline_edit_meets_a_concurrent_delete() {
    use Step::*;
    let steps = [
        Create {
            r: 0,
            kind: 0,
            title: 0,
            place: 0,
            anchor: 0,
        },
        Send { r: 0, max_ops: 5 },
        Deliver {
            pick: 0,
            lose_ack: false,
            duplicate: false,
        },
        DeliverAck { pick: 0 },
        Pull { r: 1, limit: 5 },
        ToggleOnline { r: 1 },
        // Tab 1 edits offline while tab 0 deletes the item.
        SetTitle {
            r: 1,
            pick: 0,
            title: 1,
        },
        Delete { r: 0, pick: 0 },
        Send { r: 0, max_ops: 5 },
        Deliver {
            pick: 0,
            lose_ack: true,
            duplicate: true,
        },
        Deliver {
            pick: 0,
            lose_ack: false,
            duplicate: false,
        },
        ToggleOnline { r: 1 },
        Send { r: 1, max_ops: 5 },
        Deliver {
            pick: 0,
            lose_ack: false,
            duplicate: false,
        },
    ];
    let mut world = World::new(3, &[0, -1_500, 1_500]);
    for step in &steps {
        world.run(step).unwrap();
    }
    world.settle().unwrap();
    world.check_converged().unwrap();
    // The delete won: nothing is visible.
    assert!(world.tabs[1].replica.children(world.list).is_empty());
    assert_eq!(world.made.len(), 3);
}
