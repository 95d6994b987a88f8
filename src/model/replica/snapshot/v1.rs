//! Snapshot version 1, read only (a browser that saved with an older build keeps
//! its copy; it is written again as version 2 at the next save):
//!
//! ```json
//! {"format":"tether.replica","version":1,"list":"<uuid>","client":"<uuid>",
//!  "clock":{…},"next_seq":3,"cursor":{"version":0,"synced_at_ms":null},
//!  "nodes":[<Node's JSON>, …],"outbox":[<Op's JSON>, …]}
//! ```
//!
//! `clock` and `cursor` are as in version 2; a node is `Node`'s JSON (every
//! register with its full stamp string), an op is `Op`'s JSON as on the wire.

use serde::Deserialize;

use super::{corrupt, Parts, SnapshotError};
use crate::model::clock::Hlc;
use crate::model::node::Node;
use crate::model::op::Op;
use crate::model::replica::Cursor;
use crate::model::uid::{ClientId, Uid};

#[derive(Deserialize)]
struct SnapshotV1 {
    list: Uid,
    client: ClientId,
    clock: Hlc,
    next_seq: u64,
    cursor: Cursor,
    nodes: Vec<Node>,
    outbox: Vec<Op>,
}

/// Decodes a version 1 snapshot (its header already checked).
pub(super) fn read(text: &str) -> Result<Parts, SnapshotError> {
    let s = serde_json::from_str::<SnapshotV1>(text).map_err(corrupt)?;
    Ok(Parts {
        list: s.list,
        client: s.client,
        clock: s.clock,
        next_seq: s.next_seq,
        cursor: s.cursor,
        nodes: s.nodes,
        outbox: s.outbox,
    })
}
