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
