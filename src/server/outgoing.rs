//! `changes` messages of bounded size for the live socket.
//!
//! The WebSocket layer (tungstenite, under axum) formats each frame into a
//! per-socket write buffer and keeps that buffer's capacity for as long as the
//! socket lives. One big message — a catch-up page of 1,000 changes is about
//! 570 KB — would make an idle subscriber cost that much until it disconnects,
//! and a big commit would do it to every subscriber of the list at once. So every
//! run of changes goes out as `changes` messages of at most [`MAX_MESSAGE_BYTES`]
//! (a single change larger than that goes alone): `more: true` on all but the
//! last, each with `cursor` the version of its own last change, which is exactly
//! what a client resuming from it still needs. The protocol always allowed a run
//! to come in several messages (docs/PROTOCOL.md, "Subscribe").

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::model::{wire::Change, Uid};

/// Largest `changes` message sent on a live socket, unless one change is larger.
///
/// 16 KiB (about 30 todos) keeps what a socket holds after its largest message
/// near the few KiB an idle subscriber costs anyway (measured in the reconnect
/// storm: 54.6 KiB per client after a 57 KB catch-up in one message, 23.5 KiB
/// with this bound). Clients gather a run's messages and apply them together
/// (`app::browser::transport`), so the number of messages costs them little.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// `ServerMessage::Changes` over changes already encoded, so that each change is
/// serialised once however the run is cut. The tests hold it to the enum's own
/// JSON, byte for byte.
#[derive(Serialize)]
#[serde(tag = "type", rename = "changes")]
struct ChangesMessage<'a> {
    list: Uid,
    changes: &'a [Box<RawValue>],
    cursor: u64,
    more: bool,
}

impl ChangesMessage<'_> {
    fn to_json(&self) -> Utf8Bytes {
        // Serialising plain data to a string cannot fail.
        Utf8Bytes::from(serde_json::to_string(self).unwrap_or_default())
    }
}

/// The `changes` messages that carry `changes` (in version order) to a client,
/// ending at `cursor` with `more` (both as for one message), each at most
/// `max_bytes` long unless a single change is larger.
pub fn changes_messages(
    list: Uid,
    changes: &[Change],
    cursor: u64,
    more: bool,
    max_bytes: usize,
) -> Vec<Utf8Bytes> {
    let message = |changes, cursor, more| {
        ChangesMessage {
            list,
            changes,
            cursor,
            more,
        }
        .to_json()
    };
    // A change is plain data (string keys only), so encoding cannot fail; if it
    // ever did, the socket's task would end and its client resume from its cursor,
    // rather than a change being skipped.
    let encoded: Vec<Box<RawValue>> = changes
        .iter()
        .map(|change| serde_json::value::to_raw_value(change).expect("a change encodes"))
        .collect();
    if encoded.is_empty() {
        return Vec::new();
    }
    // The envelope around the changes: everything but their own JSON and commas.
    let envelope = message(&[], u64::MAX, false).len();
    let mut messages = Vec::new();
    let (mut start, mut bytes) = (0, envelope);
    for (i, change) in encoded.iter().enumerate() {
        let size = change.get().len() + 1;
        if i > start && bytes + size > max_bytes {
            messages.push(message(&encoded[start..i], changes[i - 1].version, true));
            (start, bytes) = (i, envelope);
        }
        bytes += size;
    }
    messages.push(message(&encoded[start..], cursor, more));
    messages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::wire::ServerMessage;
    use crate::model::{ClientId, Node, Register, Stamp, Value};

    fn change(version: u64, title_bytes: usize) -> Change {
        let mut node = Node::new(Uid::new());
        node.fields.insert(
            "title".to_string(),
            Register {
                value: Value::String("x".repeat(title_bytes)),
                stamp: Stamp {
                    wall_ms: 1_700_000_000_000,
                    counter: 0,
                    client: ClientId::new(),
                },
                replaces: None,
            },
        );
        Change { version, node }
    }

    fn decode(message: &Utf8Bytes) -> (Vec<u64>, u64, bool) {
        match serde_json::from_str(message.as_str()).unwrap() {
            ServerMessage::Changes {
                changes,
                cursor,
                more,
                ..
            } => (changes.iter().map(|c| c.version).collect(), cursor, more),
            other => panic!("not changes: {other:?}"),
        }
    }

    #[test]
    fn a_small_run_is_one_message_as_before() {
        let list = Uid::new();
        let changes: Vec<_> = (1..=3).map(|v| change(v, 10)).collect();
        let messages = changes_messages(list, &changes, 9, false, MAX_MESSAGE_BYTES);
        assert_eq!(messages.len(), 1);
        let expected = ServerMessage::Changes {
            list,
            changes,
            cursor: 9,
            more: false,
        };
        assert_eq!(
            messages[0].as_str(),
            serde_json::to_string(&expected).unwrap()
        );
    }

    #[test]
    fn a_large_run_is_split_in_order_within_the_bound_with_cursors_a_client_can_resume_from() {
        let list = Uid::new();
        let changes: Vec<_> = (1..=200).map(|v| change(v * 2, 300)).collect();
        for more in [false, true] {
            let messages = changes_messages(list, &changes, 500, more, 8 * 1024);
            assert!(messages.len() > 5, "{}", messages.len());
            let mut seen = Vec::new();
            for (i, message) in messages.iter().enumerate() {
                assert!(message.len() <= 8 * 1024, "message {i}: {}", message.len());
                let (versions, cursor, message_more) = decode(message);
                let last = i + 1 == messages.len();
                if last {
                    assert_eq!((cursor, message_more), (500, more));
                } else {
                    // Everything up to this cursor has been sent, and more follows.
                    assert_eq!((cursor, message_more), (*versions.last().unwrap(), true));
                }
                seen.extend(versions);
            }
            let all: Vec<u64> = changes.iter().map(|c| c.version).collect();
            assert_eq!(seen, all, "every change once, in order");
        }
    }

    #[test]
    fn a_change_larger_than_the_bound_goes_alone() {
        let list = Uid::new();
        let changes = vec![change(1, 10), change(2, 5_000), change(3, 10)];
        let messages = changes_messages(list, &changes, 3, false, 1_024);
        let runs: Vec<_> = messages.iter().map(decode).collect();
        assert_eq!(
            runs,
            vec![(vec![1], 1, true), (vec![2], 2, true), (vec![3], 3, false)]
        );
        assert!(changes_messages(list, &[], 3, false, 1_024).is_empty());
    }
}
