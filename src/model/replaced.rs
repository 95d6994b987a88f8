//! "Your change was replaced": telling a replica that a value it wrote lost to a
//! concurrent write of someone else.
//!
//! Last writer wins per field ([`super::node`]), so of two concurrent writes to one
//! field one is discarded, silently. A later write that *follows* ours (its writer
//! had seen our value and changed it) is ordinary editing; a write that was made
//! *without* seeing ours, and still won, discarded our value: that is worth a
//! notice with a way to write ours again.
//!
//! Stamps alone cannot tell the two apart: a hybrid logical clock orders a write
//! after everything its writer had seen, but a concurrent write may carry a greater
//! stamp too. So a `set` names the stamp of the value it replaced, as its writer
//! saw it (`replaces`, filled in by [`super::Replica::apply_local`], carried in the
//! op and in the field's register). Registers only ever move to greater stamps, so
//! a writer that had seen our write saw a stamp at least ours:
//!
//! * `replaces >= ours` — the writer had seen our value (or a later one): follows;
//! * `replaces < ours` — the writer had not seen ours: concurrent, ours discarded.
//!
//! A write without `replaces` (a create, or a client that leaves it out) never
//! makes a notice: nothing proves it concurrent.

use super::clock::Stamp;
use super::node::{Node, Register};
use super::registry::Value;
use super::uid::{ClientId, Uid};

/// How long after our write a replacement is still told about.
pub const NOTICE_WINDOW_MS: u64 = 60_000;

/// A value this replica wrote that a concurrent write of another replica replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    pub node: Uid,
    pub field: String,
    /// Our value, discarded.
    pub ours: Value,
    /// The stamp of our write.
    pub our_stamp: Stamp,
    /// The value that won.
    pub theirs: Value,
    /// The stamp of the write that won; its client is who wrote it.
    pub their_stamp: Stamp,
}

impl Replaced {
    /// Who wrote the value that won.
    pub fn by(&self) -> ClientId {
        self.their_stamp.client
    }

    /// True while our write is at most [`NOTICE_WINDOW_MS`] old at `now_ms`.
    pub fn is_recent(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.our_stamp.wall_ms) <= NOTICE_WINDOW_MS
    }
}

/// True if `theirs` replaced `ours`, which `me` wrote, without its writer having
/// seen it (see the module docs), and with another value.
pub fn replaced_concurrently(
    me: ClientId,
    ours: &Register<Value>,
    theirs: &Register<Value>,
) -> bool {
    ours.stamp.client == me
        && theirs.stamp.client != me
        && theirs.stamp > ours.stamp
        && theirs.value != ours.value
        && theirs.replaces.is_some_and(|seen| seen < ours.stamp)
}

/// The fields of a live node that went from a value `me` wrote (`before`) to a
/// concurrent write of someone else (`after`).
pub fn replaced_fields(me: ClientId, before: &Node, after: &Node) -> Vec<Replaced> {
    if !after.is_live() {
        return Vec::new();
    }
    before
        .fields
        .iter()
        .filter_map(|(name, ours)| {
            let theirs = after.fields.get(name)?;
            replaced_concurrently(me, ours, theirs).then(|| Replaced {
                node: after.uid,
                field: name.clone(),
                ours: ours.value.clone(),
                our_stamp: ours.stamp,
                theirs: theirs.value.clone(),
                their_stamp: theirs.stamp,
            })
        })
        .collect()
}
