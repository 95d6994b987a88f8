//! Snapshots: the whole replica (observers excluded) as JSON, which the browser
//! keeps in localStorage so nothing queued is lost on a reload, and loading one
//! back with a telling error when it cannot be.

use std::collections::{HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::{Cursor, Replica};
use crate::model::clock::Hlc;
use crate::model::node::Node;
use crate::model::op::Op;
use crate::model::registry::{registry, Value};
use crate::model::uid::{ClientId, Uid};

/// The `format` tag of a snapshot.
pub const SNAPSHOT_FORMAT: &str = "tether.replica";

/// The snapshot layout this code writes and reads.
pub const SNAPSHOT_VERSION: u64 = 1;

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

impl Replica {
    /// The whole state as JSON (observers excluded):
    /// `{"format":"tether.replica","version":1,"list":…,"client":…,"clock":{…},
    /// "next_seq":…,"cursor":{…},"nodes":[…],"outbox":[…]}`.
    pub fn to_json(&self) -> String {
        let snapshot = SnapshotOut {
            format: SNAPSHOT_FORMAT,
            version: SNAPSHOT_VERSION,
            list: self.list,
            client: self.client(),
            clock: &self.clock,
            next_seq: self.next_seq,
            cursor: self.cursor,
            nodes: self.nodes.values().collect(),
            outbox: &self.outbox,
        };
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string(&snapshot).unwrap_or_default()
    }

    /// Restores a replica from [`Replica::to_json`]'s output, with the standard
    /// registry.
    pub fn from_json(text: &str) -> Result<Replica, SnapshotError> {
        let snapshot = match serde_json::from_str::<SnapshotIn>(text) {
            Ok(snapshot) => snapshot,
            Err(e) => return Err(classify(text, e)),
        };
        check_header(snapshot.format.as_deref(), Some(snapshot.version))?;
        let corrupt = |detail: &str| SnapshotError::Corrupt {
            detail: detail.to_string(),
        };
        if snapshot.clock.client() != snapshot.client {
            return Err(corrupt("clock belongs to another client"));
        }
        if snapshot.next_seq == 0 {
            return Err(corrupt("next_seq must be at least 1"));
        }
        let mut replica = Replica::with_registry(
            snapshot.list,
            snapshot.client,
            registry(),
            snapshot.clock.max_skew_ms(),
        );
        replica.clock = snapshot.clock;
        replica.next_seq = snapshot.next_seq;
        replica.cursor = snapshot.cursor;
        let mut ignored = Vec::new();
        for node in &snapshot.nodes {
            if replica.nodes.contains_key(&node.uid) {
                return Err(corrupt("a node appears twice"));
            }
            replica.merge_node(node, &mut ignored);
        }
        let mut queued = HashSet::new();
        for op in snapshot.outbox {
            if !queued.insert((op.client, op.seq)) {
                return Err(corrupt("an op appears twice in the outbox"));
            }
            if op.client == replica.client() && op.seq >= replica.next_seq {
                return Err(corrupt("an outbox op is numbered past next_seq"));
            }
            replica.outbox.push_back(op);
        }
        replica.sort_outbox();
        Ok(replica)
    }
}

#[derive(Serialize)]
struct SnapshotOut<'a> {
    format: &'static str,
    version: u64,
    list: Uid,
    client: ClientId,
    clock: &'a Hlc,
    next_seq: u64,
    cursor: Cursor,
    nodes: Vec<&'a Node>,
    outbox: &'a VecDeque<Op>,
}

#[derive(Deserialize)]
struct SnapshotIn {
    format: Option<String>,
    version: u64,
    list: Uid,
    client: ClientId,
    clock: Hlc,
    next_seq: u64,
    cursor: Cursor,
    nodes: Vec<Node>,
    outbox: Vec<Op>,
}

/// Just the header, to explain why a full parse failed.
#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    format: Option<Value>,
    #[serde(default)]
    version: Option<Value>,
}

fn check_header(format: Option<&str>, version: Option<u64>) -> Result<(), SnapshotError> {
    if format != Some(SNAPSHOT_FORMAT) {
        return Err(SnapshotError::Foreign);
    }
    match version {
        Some(found) if found < SNAPSHOT_VERSION => Err(SnapshotError::Older {
            found,
            current: SNAPSHOT_VERSION,
        }),
        Some(found) if found > SNAPSHOT_VERSION => Err(SnapshotError::Newer {
            found,
            current: SNAPSHOT_VERSION,
        }),
        Some(_) => Ok(()),
        None => Err(SnapshotError::Corrupt {
            detail: "version is missing or not a number".to_string(),
        }),
    }
}

/// Turns a failed full parse into the most telling error.
fn classify(text: &str, error: serde_json::Error) -> SnapshotError {
    let corrupt = SnapshotError::Corrupt {
        detail: error.to_string(),
    };
    match serde_json::from_str::<Header>(text) {
        Ok(header) => {
            let format = header.format.as_ref().and_then(Value::as_str);
            let version = header.version.as_ref().and_then(Value::as_u64);
            match check_header(format, version) {
                Ok(()) => corrupt,
                Err(e) => e,
            }
        }
        // Valid JSON that is not an object: somebody else's data.
        Err(_) if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => {
            SnapshotError::Foreign
        }
        Err(_) => corrupt,
    }
}
