//! A parent's children as a list view counts and filters them: one [`Row`] per live
//! child, in order, saying whether it is a task and whether it is done.
//!
//! The list view used to ask each child's kind and done flag through a signal per
//! item, so a 10,000-item list tracked 10,000 signals in each of its counts and its
//! filter, and every keystroke recomputed them all. The sync client keeps one
//! signal of rows per parent instead ([`super::sync_client::SyncClient::rows`]),
//! recomputed once per batch of changes to that parent's children or to a child's
//! done flag; counts and filters are plain passes over it.

use std::sync::Arc;

use super::item_views::{is_task, DONE_FIELD};
use crate::model::{Replica, Uid, Value};

/// One child of a list, as counts and filters need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    pub uid: Uid,
    /// Its kind has a done flag ([`DONE_FIELD`]): it is counted.
    pub task: bool,
    /// Its done flag is set.
    pub done: bool,
}

/// A parent's rows, shared (a signal's value is cloned on every read).
pub type Rows = Arc<Vec<Row>>;

/// The live children of `parent` in `replica`, in order, as rows.
pub fn rows_of(replica: &Replica, parent: Uid) -> Rows {
    let rows = replica
        .children(parent)
        .into_iter()
        .map(|uid| row_of(replica, uid))
        .collect();
    Arc::new(rows)
}

/// [`rows_of`], reusing the rows of `before` whose node was not `touched` (its kind
/// or done flag did not change): a keystroke in a 10,000-item list reads one node,
/// not ten thousand. Walks the children and `before` side by side, so an added,
/// removed or moved row costs one fresh read; a row is only ever reused for the
/// same uid.
pub fn rows_after(
    replica: &Replica,
    parent: Uid,
    before: &[Row],
    touched: &impl Fn(Uid) -> bool,
) -> Rows {
    let mut next = 0;
    let rows = replica
        .children(parent)
        .into_iter()
        .map(|uid| {
            // A removed row is skipped once; anything else reads the node afresh.
            if before.get(next).is_some_and(|r| r.uid != uid)
                && before.get(next + 1).is_some_and(|r| r.uid == uid)
            {
                next += 1;
            }
            match before.get(next) {
                Some(row) if row.uid == uid => {
                    next += 1;
                    if touched(uid) {
                        row_of(replica, uid)
                    } else {
                        *row
                    }
                }
                _ => row_of(replica, uid),
            }
        })
        .collect();
    Arc::new(rows)
}

fn row_of(replica: &Replica, uid: Uid) -> Row {
    let node = replica.node(uid);
    let task = node.and_then(|n| n.kind_name()).is_some_and(is_task);
    let done = node.and_then(|n| n.field(DONE_FIELD)) == Some(&Value::Bool(true));
    Row { uid, task, done }
}

/// True if a change of `field` can change a row.
pub fn affects_rows(field: &str) -> bool {
    field == DONE_FIELD
}

/// The counts a list's footer shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Tasks among the rows.
    pub tasks: usize,
    /// Tasks done.
    pub done: usize,
}

impl Counts {
    pub fn of(rows: &[Row]) -> Counts {
        let tasks = rows.iter().filter(|r| r.task).count();
        let done = rows.iter().filter(|r| r.task && r.done).count();
        Counts { tasks, done }
    }

    pub fn remaining(&self) -> usize {
        self.tasks - self.done
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::model::{
        kinds::{List, Section, Todo},
        ClientId, Placement,
    };

    /// One edit of a list, by index into its current children.
    #[derive(Clone, Debug)]
    enum Edit {
        AddTodo(usize),
        AddSection(usize),
        Toggle(usize),
        Delete(usize),
        MoveToStart(usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (0..50usize).prop_map(Edit::AddTodo),
            (0..50usize).prop_map(Edit::AddSection),
            (0..50usize).prop_map(Edit::Toggle),
            (0..50usize).prop_map(Edit::Delete),
            (0..50usize).prop_map(Edit::MoveToStart),
        ]
    }

    /// Applies `edit`; returns the node it touched.
    fn apply(replica: &mut Replica, list: Uid, edit: &Edit) -> Option<Uid> {
        let children = replica.children(list);
        let pick = |i: usize| (!children.is_empty()).then(|| children[i % children.len()]);
        let after = |i: usize| pick(i).map_or(Placement::End, Placement::After);
        let todo = Todo {
            title: "t".into(),
            completed: false,
        };
        match *edit {
            Edit::AddTodo(i) => replica.create(list, after(i), &todo, 1).ok().map(|c| c.0),
            Edit::AddSection(i) => {
                let section = Section { title: "s".into() };
                replica
                    .create(list, after(i), &section, 1)
                    .ok()
                    .map(|c| c.0)
            }
            Edit::Toggle(i) => {
                let uid = pick(i)?;
                let done = replica.node(uid)?.field("completed") == Some(&json!(true));
                replica.set(uid, "completed", json!(!done), 1).ok()?;
                Some(uid)
            }
            Edit::Delete(i) => {
                let uid = pick(i)?;
                replica.delete(uid, 1).ok()?;
                Some(uid)
            }
            Edit::MoveToStart(i) => {
                let uid = pick(i)?;
                replica.move_to(uid, list, Placement::Start, 1).ok()?;
                Some(uid)
            }
        }
    }

    proptest! {
        /// Rows kept up to date edit by edit are the rows read afresh.
        #[test]
        fn rows_kept_after_each_edit_are_the_rows_read_afresh(
            edits in proptest::collection::vec(edit(), 1..60),
        ) {
            let list = Uid::new();
            let mut replica = Replica::new(list, ClientId::new());
            replica.create_root(&List::default(), 1).unwrap();
            let mut rows = rows_of(&replica, list);
            for edit in &edits {
                let touched = apply(&mut replica, list, edit);
                rows = rows_after(&replica, list, &rows, &|uid| Some(uid) == touched);
                prop_assert_eq!(&rows, &rows_of(&replica, list));
            }
        }
    }

    #[test]
    fn counts_count_tasks_and_those_done() {
        let row = |task, done| Row {
            uid: Uid::new(),
            task,
            done,
        };
        let counts = Counts::of(&[row(true, true), row(true, false), row(false, false)]);
        assert_eq!(counts, Counts { tasks: 2, done: 1 });
        assert_eq!(counts.remaining(), 1);
    }
}
