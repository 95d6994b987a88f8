//! What visibly changed, told to observers (the views): the events, how a node's
//! change becomes events, and registering observers.

use std::collections::BTreeSet;

use super::Replica;
use crate::model::node::Node;
use crate::model::replaced::Replaced;
use crate::model::uid::Uid;

/// What visibly changed, for observers (views).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A node became live (created, or its create arrived).
    NodeAdded { node: Uid, parent: Option<Uid> },
    /// A live node was deleted.
    NodeRemoved { node: Uid, parent: Option<Uid> },
    /// A field of a live node changed.
    FieldChanged { node: Uid, field: String },
    /// The live children of `parent` or their order changed.
    ChildrenChanged { parent: Uid },
    /// Ops were queued or acknowledged.
    OutboxChanged,
    /// The cursor moved.
    CursorChanged,
    /// A value this replica wrote lost to a concurrent write of someone else
    /// (see [`crate::model::replaced`]).
    Replaced(Replaced),
}

/// Names a registered observer, to remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObserverId(u64);

pub(super) type Observer = Box<dyn FnMut(&Event) + Send>;

/// The events that tell observers how node `uid` went from `before` to `after`.
pub(super) fn describe_change(uid: Uid, before: &Node, after: &Node, events: &mut Vec<Event>) {
    let (old_parent, new_parent) = (before.parent(), after.parent());
    match (before.is_live(), after.is_live()) {
        (false, true) => {
            events.push(Event::NodeAdded {
                node: uid,
                parent: new_parent,
            });
            events.extend(new_parent.map(|parent| Event::ChildrenChanged { parent }));
        }
        (true, false) => {
            events.push(Event::NodeRemoved {
                node: uid,
                parent: old_parent,
            });
            events.extend(old_parent.map(|parent| Event::ChildrenChanged { parent }));
        }
        (true, true) => {
            if before.position.as_ref().map(|p| &p.value)
                != after.position.as_ref().map(|p| &p.value)
            {
                events.extend(old_parent.map(|parent| Event::ChildrenChanged { parent }));
                if new_parent != old_parent {
                    events.extend(new_parent.map(|parent| Event::ChildrenChanged { parent }));
                }
            }
            let names: BTreeSet<&String> =
                before.fields.keys().chain(after.fields.keys()).collect();
            for name in names {
                if before.field(name) != after.field(name) {
                    events.push(Event::FieldChanged {
                        node: uid,
                        field: name.clone(),
                    });
                }
            }
        }
        (false, false) => {}
    }
}

impl Replica {
    /// Calls `f` with every event from now on.
    pub fn observe(&mut self, f: Box<dyn FnMut(&Event) + Send>) -> ObserverId {
        let id = ObserverId(self.next_observer);
        self.next_observer += 1;
        self.observers.push((id, f));
        id
    }

    /// Stops calling the observer `id`.
    pub fn unobserve(&mut self, id: ObserverId) {
        self.observers.retain(|(other, _)| *other != id);
    }

    pub(super) fn emit(&mut self, events: &[Event]) {
        for (_, observer) in &mut self.observers {
            for event in events {
                observer(event);
            }
        }
    }
}
