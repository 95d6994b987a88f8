//! The protocol between a client and the server: messages and errors, as JSON.
//!
//! * Push: the client sends a [`PushRequest`] (its unacknowledged ops, oldest
//!   first); the server applies them all or none in one transaction and answers a
//!   [`PushAck`] (every op up to `acked_seq` is stored) or a [`SyncError`].
//! * Pull: the client sends a [`PullRequest`] with its cursor; the server answers a
//!   [`PullPage`] of node states changed after it. `more` says another page follows.
//! * Live: over a socket the client sends [`ClientMessage`]s and the server
//!   [`ServerMessage`]s; after `subscribe` the server streams `changes` as they are
//!   committed. A `resync` tells the client to pull from `after` instead (it fell
//!   too far behind).
//!
//! Every error is one [`SyncError`]: a `code`, the facts that explain it and an HTTP
//! status ([`SyncError::http_status`]), declared once in [`super::errors`].
//!
//! # JSON of each message
//!
//! Ids are shortened here; on the wire they are full hyphenated UUIDs. `stamp`s are
//! `"<wall_ms>:<counter>:<client>"` and node states are as in [`super::node`].
//!
//! `PushRequest` (ops as in [`super::op`]):
//! ```json
//! {"list": "5d1e…", "client": "6f1c…", "ops": [
//!   {"client": "6f1c…", "seq": 1, "stamp": "1764160000000:0:6f1c…", "op": "create",
//!    "node": "0b7f…", "kind": "todo", "parent": "5d1e…", "order": "a0",
//!    "fields": {"title": "Milk", "completed": false}}]}
//! ```
//! `PushAck`:
//! ```json
//! {"list": "5d1e…", "acked_seq": 1, "version": 42, "server_time_ms": 1764160000123}
//! ```
//! `PullRequest` (`limit` may be omitted or null):
//! ```json
//! {"list": "5d1e…", "after": 40, "limit": 500}
//! ```
//! `PullPage` (`cursor` is the last change's version, or `after` if none):
//! ```json
//! {"list": "5d1e…", "changes": [{"version": 42, "node": {"uid": "0b7f…",
//!   "kind": {"v": "todo", "s": "1764160000000:0:6f1c…"},
//!   "pos": {"v": {"parent": "5d1e…", "order": "a0"}, "s": "1764160000000:0:6f1c…"},
//!   "fields": {"title": {"v": "Milk", "s": "1764160000000:0:6f1c…"}}, "deleted": null}}],
//!  "cursor": 42, "more": false, "server_time_ms": 1764160000123}
//! ```
//! `ClientMessage`:
//! ```json
//! {"type": "subscribe", "list": "5d1e…", "after": 42}
//! {"type": "ping", "nonce": 7}
//! {"type": "pong", "nonce": 7}
//! {"type": "presence", "name": "Guest 4821", "color": "#3b82f6", "editing": "0b7f…"}
//! ```
//! `ServerMessage`:
//! ```json
//! {"type": "subscribed", "list": "5d1e…", "cursor": 42, "peer": "9c2e…"}
//! {"type": "presence", "list": "5d1e…", "count": 1, "peers": [{"id": "9c2e…", "client": "6f1c…", "name": "Guest 4821", "color": "#3b82f6", "editing": null}]}
//! {"type": "changes", "list": "5d1e…", "changes": [{"version": 43, "node": {…}}], "cursor": 43, "more": false}
//! {"type": "resync", "list": "5d1e…", "after": 43, "reason": "fell behind"}
//! {"type": "ping", "nonce": 8}
//! {"type": "pong", "nonce": 8}
//! {"type": "error", "error": {"code": "too_many_subscribers", "max": 1000}}
//! ```
//! `SyncError`, for example:
//! ```json
//! {"code": "invalid_field", "kind": "todo", "field": "title", "rule": "must not be empty"}
//! {"code": "clock_skew", "stamp_ms": 1764160900000, "server_ms": 1764160000000, "max_skew_ms": 300000}
//! {"code": "client_mismatch"}
//! {"code": "internal"}
//! ```

use serde::{Deserialize, Serialize};

use super::node::Node;
use super::op::Op;
use super::presence::{Peer, Presence};
use super::uid::{ClientId, Uid};

pub use super::errors::SyncError;

/// A batch of one client's ops for one list, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRequest {
    pub list: Uid,
    pub client: ClientId,
    pub ops: Vec<Op>,
}

/// The server committed every op of the client up to `acked_seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushAck {
    pub list: Uid,
    pub acked_seq: u64,
    /// The list's latest version after the commit.
    pub version: u64,
    pub server_time_ms: u64,
}

/// Asks for the changes of a list after version `after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    pub list: Uid,
    pub after: u64,
    /// At most this many changes; the server caps it and picks a default.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One stored change: a node's whole state at `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub version: u64,
    pub node: Node,
}

/// A page of changes, in version order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullPage {
    pub list: Uid,
    pub changes: Vec<Change>,
    /// The version of the last change in the page, or the request's `after`.
    pub cursor: u64,
    /// More changes follow: pull again from `cursor`.
    pub more: bool,
    pub server_time_ms: u64,
}

/// What a client sends over the live socket. Decoded in one pass (`super::tagged`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Stream the list's changes after version `after`. `client` (optional) is the
    /// subscriber's replica id, which the server uses to cap sockets per client.
    Subscribe {
        list: Uid,
        after: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<ClientId>,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    /// Who this client is and what it is editing (after `subscribe`; see
    /// [`super::presence`]).
    Presence(Presence),
}

/// What the server sends over the live socket. Decoded in one pass (`super::tagged`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The subscription is live from `cursor` on. `peer` is this socket's id in
    /// the list's presence.
    Subscribed {
        list: Uid,
        cursor: u64,
        peer: Uid,
    },
    /// Everyone following the list right now (this socket too), the first
    /// [`MAX_LISTED_PEERS`](super::presence::MAX_LISTED_PEERS) of `count`.
    Presence {
        list: Uid,
        peers: Vec<Peer>,
        count: u32,
    },
    /// Changes committed after the previous message's cursor.
    Changes {
        list: Uid,
        changes: Vec<Change>,
        cursor: u64,
        more: bool,
    },
    /// The stream cannot continue (the client fell behind): pull from `after`.
    Resync {
        list: Uid,
        after: u64,
        reason: String,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    Error {
        error: SyncError,
    },
}

super::tagged::tagged_deserialize! {
    ClientMessage, tag = "type", expecting = "a client message",
    required { list: Uid, after: u64, nonce: u64, name: String, color: String }
    optional { client: ClientId, editing: Uid }
    build |tag, slots| match tag {
        "subscribe" => Ok(ClientMessage::Subscribe {
            list: slots.list()?,
            after: slots.after()?,
            client: slots.client()?,
        }),
        "ping" => Ok(ClientMessage::Ping { nonce: slots.nonce()? }),
        "pong" => Ok(ClientMessage::Pong { nonce: slots.nonce()? }),
        "presence" => Ok(ClientMessage::Presence(Presence {
            name: slots.name()?,
            color: slots.color()?,
            editing: slots.editing()?,
        })),
        other => slots.unknown(other, &["subscribe", "ping", "pong", "presence"]),
    }
}

super::tagged::tagged_deserialize! {
    ServerMessage, tag = "type", expecting = "a server message",
    required {
        list: Uid, cursor: u64, changes: Vec<Change>, more: bool, after: u64, reason: String,
        nonce: u64, error: SyncError, peer: Uid, peers: Vec<Peer>, count: u32,
    }
    optional {}
    build |tag, slots| match tag {
        "subscribed" => Ok(ServerMessage::Subscribed {
            list: slots.list()?,
            cursor: slots.cursor()?,
            peer: slots.peer()?,
        }),
        "presence" => Ok(ServerMessage::Presence {
            list: slots.list()?,
            peers: slots.peers()?,
            count: slots.count()?,
        }),
        "changes" => Ok(ServerMessage::Changes {
            list: slots.list()?,
            changes: slots.changes()?,
            cursor: slots.cursor()?,
            more: slots.more()?,
        }),
        "resync" => Ok(ServerMessage::Resync {
            list: slots.list()?,
            after: slots.after()?,
            reason: slots.reason()?,
        }),
        "ping" => Ok(ServerMessage::Ping { nonce: slots.nonce()? }),
        "pong" => Ok(ServerMessage::Pong { nonce: slots.nonce()? }),
        "error" => Ok(ServerMessage::Error { error: slots.error()? }),
        other => slots.unknown(
            other,
            &["subscribed", "presence", "changes", "resync", "ping", "pong", "error"],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::clock::Stamp;
    use crate::model::errors::tests::every_error;
    use crate::model::node::Register;
    use crate::model::op::Action;
    use crate::model::order::OrderKey;
    use serde::de::DeserializeOwned;
    use serde_json::json;

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
        let text = serde_json::to_string(value).unwrap();
        let back: T = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, value, "{text}");
    }

    #[test]
    fn messages_round_trip() {
        let list = Uid::new();
        let client = ClientId::new();
        let stamp = Stamp {
            wall_ms: 1_764_160_000_000,
            counter: 0,
            client,
        };
        let op = Op {
            client,
            seq: 1,
            stamp,
            action: Action::Create {
                node: Uid::new(),
                kind: "todo".into(),
                parent: Some(list),
                order: OrderKey::first(),
                fields: [("title".to_string(), json!("Milk"))].into(),
            },
        };
        let mut node = op.to_delta();
        node.fields.insert(
            "completed".into(),
            Register {
                value: json!(true),
                stamp,
                replaces: None,
            },
        );
        let change = Change { version: 42, node };
        round_trip(&PushRequest {
            list,
            client,
            ops: vec![op],
        });
        round_trip(&PushAck {
            list,
            acked_seq: 1,
            version: 42,
            server_time_ms: 5,
        });
        round_trip(&PullRequest {
            list,
            after: 40,
            limit: Some(500),
        });
        let no_limit: PullRequest =
            serde_json::from_value(json!({"list": list, "after": 0})).unwrap();
        assert_eq!(no_limit.limit, None);
        round_trip(&PullPage {
            list,
            changes: vec![change.clone()],
            cursor: 42,
            more: false,
            server_time_ms: 5,
        });
        for msg in [
            ClientMessage::Subscribe {
                list,
                after: 42,
                client: None,
            },
            ClientMessage::Ping { nonce: 7 },
            ClientMessage::Pong { nonce: 7 },
            ClientMessage::Presence(Presence {
                name: "Guest 4821".into(),
                color: "#3b82f6".into(),
                editing: Some(list),
            }),
        ] {
            round_trip(&msg);
        }
        assert_eq!(
            serde_json::to_value(ClientMessage::Ping { nonce: 7 }).unwrap(),
            json!({"type": "ping", "nonce": 7})
        );
        let mut server = vec![
            ServerMessage::Subscribed {
                list,
                cursor: 42,
                peer: list,
            },
            ServerMessage::Presence {
                list,
                peers: vec![Peer {
                    id: list,
                    client: Some(client),
                    name: "Ada".into(),
                    color: "#000000".into(),
                    editing: None,
                }],
                count: 1,
            },
            ServerMessage::Changes {
                list,
                changes: vec![change],
                cursor: 42,
                more: true,
            },
            ServerMessage::Resync {
                list,
                after: 42,
                reason: "fell behind".into(),
            },
            ServerMessage::Ping { nonce: 8 },
            ServerMessage::Pong { nonce: 8 },
        ];
        server.extend(
            every_error()
                .into_iter()
                .map(|error| ServerMessage::Error { error }),
        );
        for msg in server {
            round_trip(&msg);
        }
        assert_eq!(
            serde_json::to_value(ServerMessage::Error {
                error: SyncError::TooManySubscribers { max: 1000 }
            })
            .unwrap(),
            json!({"type": "error", "error": {"code": "too_many_subscribers", "max": 1000}})
        );
    }
}
