//! The cursor: how far a replica has synced with the server.

use serde::{Deserialize, Serialize};

use super::{Event, Replica};

/// How far the replica has synced: the server version of the last change it has,
/// and the server's wall time when it got there (the "last synced" timestamp).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub version: u64,
    pub synced_at_ms: Option<u64>,
}

impl Cursor {
    /// The further of two cursors of one list: the higher version, or at the same
    /// version the later sync.
    pub(super) fn join(self, other: Cursor) -> Cursor {
        if self.version != other.version {
            return std::cmp::max_by_key(self, other, |c| c.version);
        }
        Cursor {
            version: self.version,
            synced_at_ms: self.synced_at_ms.max(other.synced_at_ms),
        }
    }
}

impl Replica {
    /// The cursor (last-sync point).
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// Sets the cursor; tells `events` if it moved.
    pub(super) fn move_cursor(&mut self, cursor: Cursor, events: &mut Vec<Event>) {
        if cursor != self.cursor {
            self.cursor = cursor;
            events.push(Event::CursorChanged);
        }
    }
}
