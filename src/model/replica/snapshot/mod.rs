//! Snapshots: the whole replica (observers excluded) as JSON, which the browser
//! keeps in localStorage so nothing queued is lost on a reload, and loading one
//! back with a telling error when it cannot be.
//!
//! Every snapshot is a JSON object that starts with the same header,
//! `{"format":"tether.replica","version":N,…}`; the header is read first, and the
//! version says how the rest is laid out:
//!
//! * version 2 ([`v2`], written by [`Replica::to_json`]): the compact layout, in
//!   which a stamp repeated across a node's kind, position and fields is written
//!   once, client ids and names are written once in tables, and keys are short
//!   (about 120 bytes for a todo made by one create, against 460 in version 1);
//! * version 1 ([`v1`], still read, no longer written): every node as the server
//!   stores it (`Node`'s JSON) and every queued op as on the wire (`Op`'s JSON).
//!
//! Whatever the version, the same checks apply before a replica is made of it:
//! the clock belongs to the snapshot's client, `next_seq` is at least 1, no node
//! appears twice, no op is queued twice, and no queued op of the client is
//! numbered past `next_seq`.

mod v1;
mod v2;

use std::collections::HashSet;

use serde::Deserialize;

use super::{Cursor, Replica};
use crate::model::clock::Hlc;
use crate::model::node::Node;
use crate::model::op::Op;
use crate::model::registry::{registry, Value};
use crate::model::uid::{ClientId, Uid};

/// The `format` tag of a snapshot.
pub const SNAPSHOT_FORMAT: &str = "tether.replica";

/// The snapshot layout this code writes (it also reads every version from
/// [`OLDEST_READABLE_VERSION`] up to this one).
pub const SNAPSHOT_VERSION: u64 = 2;

/// The oldest snapshot layout this code still reads.
pub const OLDEST_READABLE_VERSION: u64 = 1;

/// Why a snapshot cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// JSON, but not a replica snapshot.
    #[error("not a tether replica snapshot")]
    Foreign,
    #[error("snapshot version {found} is older than {current} and cannot be read")]
    Older { found: u64, current: u64 },
    #[error("snapshot version {found} is newer than {current}; update the app")]
    Newer { found: u64, current: u64 },
    #[error("corrupt snapshot: {detail}")]
    Corrupt { detail: String },
}

impl SnapshotError {
    pub(crate) fn corrupt(detail: impl Into<String>) -> SnapshotError {
        SnapshotError::Corrupt {
            detail: detail.into(),
        }
    }
}

impl Replica {
    /// The whole state as JSON (observers excluded), in the compact layout of
    /// snapshot version 2 (see [`v2`]).
    pub fn to_json(&self) -> String {
        v2::write(self)
    }

    /// Restores a replica from [`Replica::to_json`]'s output, or from a snapshot
    /// of an older version still read, with the standard registry.
    pub fn from_json(text: &str) -> Result<Replica, SnapshotError> {
        let parts = match read_header(text)? {
            1 => v1::read(text)?,
            _ => v2::read(text)?,
        };
        parts.into_replica()
    }
}

/// What every snapshot version holds, decoded but not yet checked. Version 1 is
/// exactly these fields in JSON (beside its header), so it decodes straight into
/// them ([`v1`]).
#[derive(Deserialize)]
struct Parts {
    list: Uid,
    client: ClientId,
    clock: Hlc,
    next_seq: u64,
    cursor: Cursor,
    nodes: Vec<Node>,
    outbox: Vec<Op>,
}

impl Parts {
    /// The replica these parts describe, if they hold together.
    fn into_replica(self) -> Result<Replica, SnapshotError> {
        if self.clock.client() != self.client {
            return Err(SnapshotError::corrupt("clock belongs to another client"));
        }
        if self.next_seq == 0 {
            return Err(SnapshotError::corrupt("next_seq must be at least 1"));
        }
        let mut replica =
            Replica::with_registry(self.list, self.client, registry(), self.clock.max_skew_ms());
        replica.clock = self.clock;
        replica.next_seq = self.next_seq;
        replica.cursor = self.cursor;
        let mut ignored = Vec::new();
        for node in &self.nodes {
            if replica.nodes.contains_key(&node.uid) {
                return Err(SnapshotError::corrupt("a node appears twice"));
            }
            replica.merge_node(node, &mut ignored);
        }
        let mut queued = HashSet::new();
        for op in self.outbox {
            if !queued.insert((op.client, op.seq)) {
                return Err(SnapshotError::corrupt("an op appears twice in the outbox"));
            }
            if op.client == replica.client() && op.seq >= replica.next_seq {
                return Err(SnapshotError::corrupt(
                    "an outbox op is numbered past next_seq",
                ));
            }
            replica.outbox.push_back(op);
        }
        replica.sort_outbox();
        Ok(replica)
    }
}

/// Just the header (the rest is skipped).
#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    format: Option<Value>,
    #[serde(default)]
    version: Option<Value>,
}

/// The version of the snapshot in `text`, if this code reads it.
fn read_header(text: &str) -> Result<u64, SnapshotError> {
    let header = match serde_json::from_str::<Header>(text) {
        Ok(header) => header,
        // Valid JSON that is not an object: somebody else's data.
        Err(_) if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => {
            return Err(SnapshotError::Foreign)
        }
        Err(e) => return Err(SnapshotError::corrupt(e.to_string())),
    };
    if header.format.as_ref().and_then(Value::as_str) != Some(SNAPSHOT_FORMAT) {
        return Err(SnapshotError::Foreign);
    }
    match header.version.as_ref().and_then(Value::as_u64) {
        Some(found) if found < OLDEST_READABLE_VERSION => Err(SnapshotError::Older {
            found,
            current: SNAPSHOT_VERSION,
        }),
        Some(found) if found > SNAPSHOT_VERSION => Err(SnapshotError::Newer {
            found,
            current: SNAPSHOT_VERSION,
        }),
        Some(found) => Ok(found),
        None => Err(SnapshotError::corrupt("version is missing or not a number")),
    }
}

/// A full parse's error as [`SnapshotError::Corrupt`] (the header was fine).
fn corrupt(error: serde_json::Error) -> SnapshotError {
    SnapshotError::corrupt(error.to_string())
}
