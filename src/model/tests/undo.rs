//! Undo and redo ([`crate::model::undo`]) and the "your change was replaced" rule
//! ([`crate::model::replaced`]): unit tests of each inverse and of concurrent versus
//! following writes, and two properties: undo then redo returns the state, and undo
//! after another replica's changes touches only what this replica wrote.

use proptest::prelude::*;
use serde_json::json;

use super::support::config;
use crate::model::kinds::{Section, Todo};
use crate::model::node::Node;
use crate::model::op::Op;
use crate::model::registry::{Fields, Value};
use crate::model::replica::{Event, Placement, Replica};
use crate::model::uid::{ClientId, Uid};
use crate::model::undo::{History, Outcome, Skip, Step};
use crate::model::wire::Change;

const T: u64 = 1_764_160_000_000;

/// A tab: a replica and its history, written to the way the app writes.
struct Tab {
    r: Replica,
    h: History,
    /// Steps of the action being recorded (`None`: each write is its own action).
    group: Option<Vec<Step>>,
    now: u64,
}

impl Tab {
    fn new(list: Uid) -> Tab {
        Tab {
            r: Replica::new(list, ClientId::new()),
            h: History::new(),
            group: None,
            now: T,
        }
    }

    fn tick(&mut self) -> u64 {
        self.now += 1;
        self.now
    }

    /// One write of `node` (`None` for a create), recorded.
    fn write(&mut self, node: Option<Uid>, f: impl FnOnce(&mut Replica, u64) -> Op) -> Op {
        let now = self.tick();
        let before = node.and_then(|n| self.r.node(n).cloned());
        let op = f(&mut self.r, now);
        let step = Step::of(&op, before.as_ref(), self.r.registry());
        match &mut self.group {
            Some(steps) => steps.extend(step),
            None => self.h.record(step.into_iter().collect()),
        }
        op
    }

    fn add(&mut self, title: &str) -> Uid {
        let todo = Todo {
            title: title.into(),
            completed: false,
        };
        let list = self.r.list();
        self.write(None, |r, now| {
            r.create(list, Placement::End, &todo, now).unwrap().1
        })
        .node()
    }

    fn add_section(&mut self, title: &str) -> Uid {
        let section = Section {
            title: title.into(),
        };
        let list = self.r.list();
        self.write(None, |r, now| {
            r.create(list, Placement::End, &section, now).unwrap().1
        })
        .node()
    }

    fn set(&mut self, node: Uid, field: &str, value: Value) -> Op {
        self.write(Some(node), |r, now| r.set(node, field, value, now).unwrap())
    }

    fn delete(&mut self, node: Uid) -> Op {
        self.write(Some(node), |r, now| r.delete(node, now).unwrap())
    }

    fn move_to(&mut self, node: Uid, at: Placement) -> Op {
        let list = self.r.list();
        self.write(Some(node), |r, now| r.move_to(node, list, at, now).unwrap())
    }

    /// Several writes recorded as one action.
    fn action(&mut self, f: impl FnOnce(&mut Tab)) {
        self.group = Some(Vec::new());
        f(self);
        let steps = self.group.take().unwrap_or_default();
        self.h.record(steps);
    }

    fn toggle_all(&mut self) {
        let items = self.items();
        let all_done = items.iter().all(|uid| self.done(*uid));
        self.action(|tab| {
            for uid in items {
                if tab.r.node(uid).and_then(|n| n.field("completed")).is_some() {
                    tab.set(uid, "completed", json!(!all_done));
                }
            }
        });
    }

    fn clear_completed(&mut self) {
        let done: Vec<Uid> = self
            .items()
            .into_iter()
            .filter(|uid| self.done(*uid))
            .collect();
        self.action(|tab| {
            for uid in done {
                tab.delete(uid);
            }
        });
    }

    fn undo(&mut self) -> Option<Outcome> {
        let now = self.tick();
        self.h.undo(&mut self.r, now)
    }

    fn redo(&mut self) -> Option<Outcome> {
        let now = self.tick();
        self.h.redo(&mut self.r, now)
    }

    fn items(&self) -> Vec<Uid> {
        self.r.children(self.r.list())
    }

    fn done(&self, uid: Uid) -> bool {
        self.r.node(uid).and_then(|n| n.field("completed")) == Some(&json!(true))
    }

    fn title(&self, uid: Uid) -> String {
        let n = self.r.node(uid).unwrap();
        n.field("title").unwrap().as_str().unwrap().to_string()
    }

    /// What a person sees: each item's kind and fields, in order.
    fn shown(&self) -> Vec<(String, Fields)> {
        shown(&self.r)
    }
}

fn shown(r: &Replica) -> Vec<(String, Fields)> {
    r.children(r.list())
        .into_iter()
        .map(|uid| {
            let n = r.node(uid).unwrap();
            (
                n.kind_name().unwrap().to_string(),
                n.fields_with_defaults(r.registry()),
            )
        })
        .collect()
}

/// Sends every op of `from`'s outbox not yet seen to `to` (as another tab would).
fn send(from: &Replica, to: &mut Replica) {
    for op in from.outbox() {
        to.apply_op(op);
    }
}

fn titles(tab: &Tab) -> Vec<String> {
    tab.items().into_iter().map(|u| tab.title(u)).collect()
}

// ---- each inverse ---------------------------------------------------------------

#[test]
fn undo_and_redo_of_an_add_an_edit_a_toggle_and_a_move() {
    let mut tab = Tab::new(Uid::new());
    let milk = tab.add("Milk");
    let eggs = tab.add("Eggs");
    tab.set(milk, "title", json!("Oat milk"));
    tab.set(eggs, "completed", json!(true));
    tab.move_to(eggs, Placement::Start);
    assert_eq!(titles(&tab), ["Eggs", "Oat milk"]);

    tab.undo().unwrap();
    assert_eq!(titles(&tab), ["Oat milk", "Eggs"]);
    tab.undo().unwrap();
    assert!(!tab.done(eggs));
    tab.undo().unwrap();
    assert_eq!(titles(&tab), ["Milk", "Eggs"]);
    tab.undo().unwrap();
    assert_eq!(titles(&tab), ["Milk"]);
    assert!(tab.r.node(eggs).unwrap().is_deleted());
    tab.undo().unwrap();
    assert!(tab.items().is_empty());
    assert!(tab.undo().is_none());

    for _ in 0..5 {
        let outcome = tab.redo().unwrap();
        assert!(outcome.skipped.is_empty());
    }
    assert!(tab.redo().is_none());
    assert_eq!(titles(&tab), ["Eggs", "Oat milk"]);
    // Added items came back as new nodes (tombstones are final), done as before.
    let items = tab.items();
    assert!(!items.contains(&milk) && !items.contains(&eggs));
    assert!(tab.done(items[0]));
}

#[test]
fn undo_of_a_delete_brings_the_item_back_as_a_new_node_in_its_place() {
    let mut tab = Tab::new(Uid::new());
    let a = tab.add("a");
    let b = tab.add("b");
    tab.add("c");
    tab.set(b, "completed", json!(true));
    tab.delete(b);
    assert_eq!(titles(&tab), ["a", "c"]);
    let outcome = tab.undo().unwrap();
    assert_eq!(outcome.ops.len(), 1);
    assert_eq!(outcome.ops[0].action.name(), "create");
    assert_eq!(titles(&tab), ["a", "b", "c"]);
    let back = tab.items()[1];
    assert_ne!(back, b);
    assert!(tab.done(back), "fields come back too");
    // Earlier steps about `b` now name the new node: undo the toggle, then (after
    // the add of `c`) the add of `b`.
    tab.undo().unwrap();
    assert!(!tab.done(back));
    tab.undo().unwrap();
    tab.undo().unwrap();
    assert_eq!(titles(&tab), ["a"]);
    assert_eq!(tab.items()[0], a);
}

#[test]
fn clear_completed_and_toggle_all_are_undone_at_once() {
    let mut tab = Tab::new(Uid::new());
    for t in ["a", "b", "c"] {
        tab.add(t);
    }
    tab.toggle_all();
    assert!(tab.items().iter().all(|u| tab.done(*u)));
    let before = tab.shown();
    tab.clear_completed();
    assert!(tab.items().is_empty());
    let outcome = tab.undo().unwrap();
    assert_eq!(outcome.ops.len(), 3);
    assert_eq!(tab.shown(), before);
    tab.undo().unwrap();
    assert!(tab.items().iter().all(|u| !tab.done(*u)));
    tab.redo().unwrap();
    tab.redo().unwrap();
    assert!(tab.items().is_empty());
}

#[test]
fn undo_skips_a_field_someone_else_changed_since_and_says_so() {
    let list = Uid::new();
    let mut mine = Tab::new(list);
    let mut theirs = Tab::new(list);
    let milk = mine.add("Milk");
    mine.set(milk, "title", json!("Oat milk"));
    mine.set(milk, "completed", json!(true));
    send(&mine.r, &mut theirs.r);
    // They rename it after seeing ours.
    theirs.set(milk, "title", json!("Goat milk"));
    send(&theirs.r, &mut mine.r);

    // Undo of the toggle (only we touched it) works; of our rename is skipped.
    assert!(mine.undo().unwrap().skipped.is_empty());
    assert!(!mine.done(milk));
    let outcome = mine.undo().unwrap();
    assert!(outcome.ops.is_empty());
    assert_eq!(
        outcome.skipped,
        [Skip::ChangedByOthers {
            node: milk,
            field: Some("title".into())
        }]
    );
    assert_eq!(mine.title(milk), "Goat milk");
    // The add is not taken back either: they changed the item.
    let outcome = mine.undo().unwrap();
    assert_eq!(
        outcome.skipped,
        [Skip::ChangedByOthers {
            node: milk,
            field: None
        }]
    );
    assert!(mine.r.node(milk).unwrap().is_live());
}

#[test]
fn undo_of_a_move_someone_else_moved_since_is_skipped() {
    let list = Uid::new();
    let mut mine = Tab::new(list);
    let mut theirs = Tab::new(list);
    let a = mine.add("a");
    mine.add("b");
    mine.move_to(a, Placement::End);
    send(&mine.r, &mut theirs.r);
    theirs.move_to(a, Placement::Start);
    send(&theirs.r, &mut mine.r);
    let outcome = mine.undo().unwrap();
    assert_eq!(
        outcome.skipped,
        [Skip::ChangedByOthers {
            node: a,
            field: None
        }]
    );
    assert_eq!(titles(&mine), ["a", "b"]);
}

#[test]
fn undo_of_an_add_someone_else_deleted_is_gone() {
    let list = Uid::new();
    let mut mine = Tab::new(list);
    let mut theirs = Tab::new(list);
    let a = mine.add("a");
    send(&mine.r, &mut theirs.r);
    theirs.delete(a);
    send(&theirs.r, &mut mine.r);
    assert_eq!(mine.undo().unwrap().skipped, [Skip::Gone { node: a }]);
    assert!(!mine.h.can_redo(), "nothing was done, so nothing to redo");
}

#[test]
fn undo_of_a_heading_move_and_delete() {
    let mut tab = Tab::new(Uid::new());
    tab.add("a");
    let h = tab.add_section("Dairy");
    tab.move_to(h, Placement::Start);
    tab.delete(h);
    tab.undo().unwrap();
    tab.undo().unwrap();
    let items = tab.items();
    assert_eq!(items.len(), 2);
    assert_eq!(tab.r.node(items[1]).unwrap().kind_name(), Some("section"));
}

#[test]
fn a_new_action_clears_redo() {
    let mut tab = Tab::new(Uid::new());
    tab.add("a");
    tab.undo().unwrap();
    assert!(tab.h.can_redo());
    tab.add("b");
    assert!(!tab.h.can_redo());
}

// ---- replaced values: concurrent versus following ------------------------------

fn replaced_events(events: &[Event]) -> Vec<crate::model::Replaced> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Replaced(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_concurrent_write_that_wins_replaces_ours_and_says_so() {
    let list = Uid::new();
    let mut a = Tab::new(list);
    let mut b = Tab::new(list);
    let milk = a.add("Milk");
    send(&a.r, &mut b.r);
    // Both rename at once; B's write is later, so it wins everywhere.
    let ours = a.set(milk, "title", json!("Buy oat milk"));
    b.now = a.now + 10;
    let theirs = b.set(milk, "title", json!("Buy milk"));
    assert!(theirs.stamp > ours.stamp);
    let events = a.r.apply_op(&theirs);
    let replaced = replaced_events(&events);
    assert_eq!(replaced.len(), 1);
    let r = &replaced[0];
    assert_eq!((r.node, r.field.as_str()), (milk, "title"));
    assert_eq!(r.ours, json!("Buy oat milk"));
    assert_eq!(r.theirs, json!("Buy milk"));
    assert_eq!(r.by(), b.r.client());
    assert!(r.is_recent(a.now) && !r.is_recent(a.now + 61_000));
    // The winner is told nothing; the same state from the server says it again
    // only if it is news (a replay changes nothing).
    assert!(replaced_events(&b.r.apply_op(&ours)).is_empty());
    assert!(replaced_events(&a.r.apply_op(&theirs)).is_empty());
}

#[test]
fn a_write_that_follows_ours_is_not_a_replacement() {
    let list = Uid::new();
    let mut a = Tab::new(list);
    let mut b = Tab::new(list);
    let milk = a.add("Milk");
    a.set(milk, "title", json!("Buy oat milk"));
    send(&a.r, &mut b.r); // B has seen ours
    let theirs = b.set(milk, "title", json!("Buy milk"));
    // Through the server too: a node state, not an op.
    let change = Change {
        version: 3,
        node: b.r.node(milk).unwrap().clone(),
    };
    let events = a.r.apply_remote(&[change], T);
    assert!(replaced_events(&events).is_empty());
    assert_eq!(a.title(milk), "Buy milk");
    assert!(theirs.action.name() == "set");
}

#[test]
fn a_write_without_replaces_is_never_called_concurrent() {
    let list = Uid::new();
    let mut a = Tab::new(list);
    let mut b = Tab::new(list);
    let milk = a.add("Milk");
    send(&a.r, &mut b.r);
    a.set(milk, "title", json!("ours"));
    b.now = a.now + 10;
    let mut theirs = b.set(milk, "title", json!("theirs"));
    if let crate::model::op::Action::Set { replaces, .. } = &mut theirs.action {
        assert!(replaces.is_some(), "a replica names what it replaced");
        *replaces = None; // as a client that leaves it out
    }
    assert!(replaced_events(&a.r.apply_op(&theirs)).is_empty());
}

#[test]
fn restore_writes_ours_again_and_follows_theirs() {
    let list = Uid::new();
    let mut a = Tab::new(list);
    let mut b = Tab::new(list);
    let milk = a.add("Milk");
    send(&a.r, &mut b.r);
    a.set(milk, "title", json!("ours"));
    b.now = a.now + 10;
    let theirs = b.set(milk, "title", json!("theirs"));
    let r = replaced_events(&a.r.apply_op(&theirs)).remove(0);
    let restore = a.set(r.node, &r.field, r.ours.clone());
    // B sees ours again, and no notice: A had seen B's value.
    assert!(replaced_events(&b.r.apply_op(&restore)).is_empty());
    assert_eq!(b.title(milk), "ours");
}

// ---- properties -----------------------------------------------------------------

/// A user action, with indexes taken modulo the items there are.
#[derive(Debug, Clone)]
enum Act {
    Add(u8),
    Heading(u8),
    Rename(usize, u8),
    Toggle(usize),
    Delete(usize),
    Move(usize, usize),
    ToggleAll,
    ClearCompleted,
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        3 => any::<u8>().prop_map(Act::Add),
        1 => any::<u8>().prop_map(Act::Heading),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, t)| Act::Rename(i, t)),
        2 => any::<usize>().prop_map(Act::Toggle),
        1 => any::<usize>().prop_map(Act::Delete),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Act::Move(i, j)),
        1 => Just(Act::ToggleAll),
        1 => Just(Act::ClearCompleted),
    ]
}

impl Tab {
    fn perform(&mut self, act: &Act) {
        let items = self.items();
        let pick = |i: usize| (!items.is_empty()).then(|| items[i % items.len()]);
        match *act {
            Act::Add(t) => {
                self.add(&format!("item {t}"));
            }
            Act::Heading(t) => {
                self.add_section(&format!("heading {t}"));
            }
            Act::Rename(i, t) => {
                if let Some(uid) = pick(i) {
                    self.set(uid, "title", json!(format!("renamed {t}")));
                }
            }
            Act::Toggle(i) => {
                if let Some(uid) =
                    pick(i).filter(|u| self.r.node(*u).unwrap().field("completed").is_some())
                {
                    let done = self.done(uid);
                    self.set(uid, "completed", json!(!done));
                }
            }
            Act::Delete(i) => {
                if let Some(uid) = pick(i) {
                    self.delete(uid);
                }
            }
            Act::Move(i, j) => {
                if let (Some(uid), Some(to)) = (pick(i), pick(j)) {
                    if uid != to {
                        let at = if i % 2 == 0 {
                            Placement::Before(to)
                        } else {
                            Placement::After(to)
                        };
                        self.move_to(uid, at);
                    }
                }
            }
            Act::ToggleAll => self.toggle_all(),
            Act::ClearCompleted => self.clear_completed(),
        }
    }
}

/// Every register of every node written by someone other than `me`.
fn others_parts(r: &Replica, me: ClientId) -> Vec<(Uid, String, String)> {
    let mut parts = Vec::new();
    for n in r.nodes() {
        if let Some(p) = n.position.as_ref().filter(|p| p.stamp.client != me) {
            parts.push((n.uid, "pos".into(), format!("{p:?}")));
        }
        for (name, f) in n.fields.iter().filter(|(_, f)| f.stamp.client != me) {
            parts.push((n.uid, name.clone(), format!("{f:?}")));
        }
    }
    parts
}

/// Live nodes with some part written by someone other than `me`.
fn live_with_others_parts(r: &Replica, me: ClientId) -> Vec<Uid> {
    r.nodes()
        .filter(|n| n.is_live() && !is_all(n, me))
        .map(|n| n.uid)
        .collect()
}

fn is_all(n: &Node, me: ClientId) -> bool {
    n.position.as_ref().is_none_or(|p| p.stamp.client == me)
        && n.fields.values().all(|f| f.stamp.client == me)
}

proptest! {
    #![proptest_config(config())]

    /// Undo of the last k actions then redo of them returns what was shown, and
    /// undo of everything returns what was shown before the first.
    #[test]
    fn undo_then_redo_returns_the_state(
        prefix in proptest::collection::vec(act(), 0..4),
        acts in proptest::collection::vec(act(), 1..12),
        k in 1usize..12,
    ) {
        let mut tab = Tab::new(Uid::new());
        for a in &prefix {
            tab.perform(a);
        }
        tab.h = History::new();
        let start = tab.shown();
        let mut states = vec![start.clone()];
        for a in &acts {
            tab.perform(a);
            if tab.h.can_undo() && states.last() != Some(&tab.shown()) {
                states.push(tab.shown());
            }
        }
        let end = tab.shown();
        let mut undone = 0;
        while undone < k && tab.undo().is_some() {
            undone += 1;
        }
        if !tab.h.can_undo() {
            prop_assert_eq!(tab.shown(), start.clone());
        }
        for _ in 0..undone {
            let outcome = tab.redo().unwrap();
            prop_assert!(outcome.skipped.is_empty(), "{:?}", outcome.skipped);
        }
        prop_assert!(!tab.h.can_redo());
        prop_assert_eq!(tab.shown(), end);
        // Everything undone: the start again.
        while let Some(outcome) = tab.undo() {
            prop_assert!(outcome.skipped.is_empty(), "{:?}", outcome.skipped);
        }
        prop_assert_eq!(tab.shown(), start);
    }

    /// With another replica writing and syncing in between, undo of every action
    /// leaves everything the other wrote as it was, never deletes a node the other
    /// changed, and both replicas agree afterwards.
    #[test]
    fn undo_after_remote_changes_touches_only_what_this_tab_wrote(
        script in proptest::collection::vec((any::<bool>(), act(), any::<bool>()), 1..16),
    ) {
        let list = Uid::new();
        let mut mine = Tab::new(list);
        let mut theirs = Tab::new(list);
        for (by_me, a, sync) in &script {
            if *by_me { mine.perform(a) } else { theirs.perform(a) }
            theirs.now = theirs.now.max(mine.now);
            mine.now = mine.now.max(theirs.now);
            if *sync {
                send(&mine.r, &mut theirs.r);
                send(&theirs.r, &mut mine.r);
            }
        }
        send(&mine.r, &mut theirs.r);
        send(&theirs.r, &mut mine.r);
        let me = mine.r.client();
        let before = others_parts(&mine.r, me);
        let kept = live_with_others_parts(&mine.r, me);
        while mine.undo().is_some() {}
        prop_assert_eq!(others_parts(&mine.r, me), before);
        for uid in kept {
            prop_assert!(mine.r.node(uid).unwrap().is_live());
        }
        send(&mine.r, &mut theirs.r);
        prop_assert_eq!(shown(&mine.r), shown(&theirs.r));
        prop_assert_eq!(mine.r.children(list), theirs.r.children(list));
    }
}
