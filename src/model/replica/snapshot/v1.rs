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

use super::{corrupt, Parts, SnapshotError};

/// Decodes a version 1 snapshot (its header already checked).
pub(super) fn read(text: &str) -> Result<Parts, SnapshotError> {
    serde_json::from_str::<Parts>(text).map_err(corrupt)
}
