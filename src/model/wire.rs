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
//! status ([`SyncError::http_status`]).
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
//! ```
//! `ServerMessage`:
//! ```json
//! {"type": "subscribed", "list": "5d1e…", "cursor": 42}
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
use super::registry::ModelError;
use super::uid::{ClientId, Uid};

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
}

/// What the server sends over the live socket. Decoded in one pass (`super::tagged`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The subscription is live from `cursor` on.
    Subscribed {
        list: Uid,
        cursor: u64,
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

/// Every error of the protocol. Decoded in one pass (`super::tagged`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum SyncError {
    #[error("malformed request: {detail}")]
    MalformedRequest { detail: String },
    #[error("invalid id `{value}`")]
    InvalidUid { value: String },
    #[error("{count} ops in one push; at most {max} allowed")]
    TooManyOps { count: usize, max: usize },
    #[error("request body of {bytes} bytes; at most {max} allowed")]
    BodyTooLarge { bytes: usize, max: usize },
    #[error("field `{field}` of node {node} is {bytes} bytes as JSON; at most {max} allowed")]
    FieldTooLarge {
        node: Uid,
        field: String,
        bytes: usize,
        max: usize,
    },
    #[error("an op's client (or its stamp's client) differs from the request's client")]
    ClientMismatch,
    #[error("invalid sequence number {seq}: {reason}")]
    InvalidSeq { seq: u64, reason: String },
    #[error("stamp at {stamp_ms} ms is more than {max_skew_ms} ms ahead of the server clock at {server_ms} ms")]
    ClockSkew {
        stamp_ms: u64,
        server_ms: u64,
        max_skew_ms: u64,
    },
    #[error("unknown kind `{kind}`")]
    UnknownKind { kind: String },
    #[error("kind `{kind}` has no field `{field}`")]
    UnknownField { kind: String, field: String },
    #[error("field `{field}` of kind `{kind}` must be a {expected}")]
    WrongType {
        kind: String,
        field: String,
        expected: String,
    },
    #[error("field `{field}` of kind `{kind}` {rule}")]
    InvalidField {
        kind: String,
        field: String,
        rule: String,
    },
    #[error("a `{kind}` cannot live under {}", parent_kind.as_deref().map_or("no parent".to_string(), |p| format!("a `{p}`")))]
    BadParent {
        kind: String,
        parent_kind: Option<String>,
    },
    #[error("node {node} belongs to another list")]
    ForeignNode { node: Uid },
    #[error("parent {parent} of node {node} belongs to another list")]
    ForeignParent { node: Uid, parent: Uid },
    #[error("node {node} not found")]
    NodeNotFound { node: Uid },
    #[error("parent {parent} of node {node} not found")]
    ParentNotFound { node: Uid, parent: Uid },
    #[error("node {node} is a `{existing}`, not a `{requested}`")]
    KindConflict {
        node: Uid,
        existing: String,
        requested: String,
    },
    #[error("too many live subscribers; at most {max}")]
    TooManySubscribers { max: usize },
    #[error("too many requests; retry after {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 },
    #[error("service unavailable: {detail}")]
    Unavailable { detail: String },
    /// Deliberately without details: internals never leak to clients.
    #[error("internal server error")]
    Internal,
}

super::tagged::tagged_deserialize! {
    ClientMessage, tag = "type", expecting = "a client message",
    required { list: Uid, after: u64, nonce: u64 }
    optional { client: ClientId }
    build |tag, slots| match tag {
        "subscribe" => Ok(ClientMessage::Subscribe {
            list: slots.list()?,
            after: slots.after()?,
            client: slots.client()?,
        }),
        "ping" => Ok(ClientMessage::Ping { nonce: slots.nonce()? }),
        "pong" => Ok(ClientMessage::Pong { nonce: slots.nonce()? }),
        other => slots.unknown(other, &["subscribe", "ping", "pong"]),
    }
}

super::tagged::tagged_deserialize! {
    ServerMessage, tag = "type", expecting = "a server message",
    required {
        list: Uid, cursor: u64, changes: Vec<Change>, more: bool, after: u64, reason: String,
        nonce: u64, error: SyncError,
    }
    optional {}
    build |tag, slots| match tag {
        "subscribed" => Ok(ServerMessage::Subscribed {
            list: slots.list()?,
            cursor: slots.cursor()?,
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
        other => slots.unknown(other, &["subscribed", "changes", "resync", "ping", "pong", "error"]),
    }
}

super::tagged::tagged_deserialize! {
    SyncError, tag = "code", expecting = "a sync error",
    required {
        detail: String, value: String, count: usize, max: usize, bytes: usize, node: Uid,
        field: String, seq: u64, reason: String, stamp_ms: u64, server_ms: u64,
        max_skew_ms: u64, kind: String, expected: String, rule: String, parent: Uid,
        existing: String, requested: String, retry_after_ms: u64,
    }
    optional { parent_kind: String }
    build |tag, slots| {
        use SyncError::*;
        let s = &mut slots;
        Ok(match tag {
            "malformed_request" => MalformedRequest { detail: s.detail()? },
            "invalid_uid" => InvalidUid { value: s.value()? },
            "too_many_ops" => TooManyOps { count: s.count()?, max: s.max()? },
            "body_too_large" => BodyTooLarge { bytes: s.bytes()?, max: s.max()? },
            "field_too_large" => FieldTooLarge {
                node: s.node()?,
                field: s.field()?,
                bytes: s.bytes()?,
                max: s.max()?,
            },
            "client_mismatch" => ClientMismatch,
            "invalid_seq" => InvalidSeq { seq: s.seq()?, reason: s.reason()? },
            "clock_skew" => ClockSkew {
                stamp_ms: s.stamp_ms()?,
                server_ms: s.server_ms()?,
                max_skew_ms: s.max_skew_ms()?,
            },
            "unknown_kind" => UnknownKind { kind: s.kind()? },
            "unknown_field" => UnknownField { kind: s.kind()?, field: s.field()? },
            "wrong_type" => WrongType {
                kind: s.kind()?,
                field: s.field()?,
                expected: s.expected()?,
            },
            "invalid_field" => InvalidField {
                kind: s.kind()?,
                field: s.field()?,
                rule: s.rule()?,
            },
            "bad_parent" => BadParent { kind: s.kind()?, parent_kind: s.parent_kind()? },
            "foreign_node" => ForeignNode { node: s.node()? },
            "foreign_parent" => ForeignParent { node: s.node()?, parent: s.parent()? },
            "node_not_found" => NodeNotFound { node: s.node()? },
            "parent_not_found" => ParentNotFound { node: s.node()?, parent: s.parent()? },
            "kind_conflict" => KindConflict {
                node: s.node()?,
                existing: s.existing()?,
                requested: s.requested()?,
            },
            "too_many_subscribers" => TooManySubscribers { max: s.max()? },
            "rate_limited" => RateLimited { retry_after_ms: s.retry_after_ms()? },
            "unavailable" => Unavailable { detail: s.detail()? },
            "internal" => Internal,
            other => return s.unknown(other, SYNC_ERROR_CODES),
        })
    }
}

/// Every `code` a [`SyncError`] can have, as in its JSON.
const SYNC_ERROR_CODES: &[&str] = &[
    "malformed_request",
    "invalid_uid",
    "too_many_ops",
    "body_too_large",
    "field_too_large",
    "client_mismatch",
    "invalid_seq",
    "clock_skew",
    "unknown_kind",
    "unknown_field",
    "wrong_type",
    "invalid_field",
    "bad_parent",
    "foreign_node",
    "foreign_parent",
    "node_not_found",
    "parent_not_found",
    "kind_conflict",
    "too_many_subscribers",
    "rate_limited",
    "unavailable",
    "internal",
];

impl SyncError {
    /// The HTTP status that carries this error.
    pub fn http_status(&self) -> u16 {
        use SyncError::*;
        match self {
            MalformedRequest { .. } | InvalidUid { .. } | ClientMismatch | InvalidSeq { .. } => 400,
            ClockSkew { .. } => 400,
            ForeignNode { .. } | ForeignParent { .. } => 403,
            NodeNotFound { .. } | ParentNotFound { .. } => 404,
            KindConflict { .. } => 409,
            TooManyOps { .. } | BodyTooLarge { .. } | FieldTooLarge { .. } => 413,
            UnknownKind { .. }
            | UnknownField { .. }
            | WrongType { .. }
            | InvalidField { .. }
            | BadParent { .. } => 422,
            TooManySubscribers { .. } | RateLimited { .. } => 429,
            Internal => 500,
            Unavailable { .. } => 503,
        }
    }

    /// The `code` of the JSON form.
    pub fn code(&self) -> &'static str {
        use SyncError::*;
        match self {
            MalformedRequest { .. } => "malformed_request",
            InvalidUid { .. } => "invalid_uid",
            TooManyOps { .. } => "too_many_ops",
            BodyTooLarge { .. } => "body_too_large",
            FieldTooLarge { .. } => "field_too_large",
            ClientMismatch => "client_mismatch",
            InvalidSeq { .. } => "invalid_seq",
            ClockSkew { .. } => "clock_skew",
            UnknownKind { .. } => "unknown_kind",
            UnknownField { .. } => "unknown_field",
            WrongType { .. } => "wrong_type",
            InvalidField { .. } => "invalid_field",
            BadParent { .. } => "bad_parent",
            ForeignNode { .. } => "foreign_node",
            ForeignParent { .. } => "foreign_parent",
            NodeNotFound { .. } => "node_not_found",
            ParentNotFound { .. } => "parent_not_found",
            KindConflict { .. } => "kind_conflict",
            TooManySubscribers { .. } => "too_many_subscribers",
            RateLimited { .. } => "rate_limited",
            Unavailable { .. } => "unavailable",
            Internal => "internal",
        }
    }
}

impl From<ModelError> for SyncError {
    fn from(e: ModelError) -> SyncError {
        match e {
            ModelError::UnknownKind { kind } => SyncError::UnknownKind { kind },
            ModelError::UnknownField { kind, field } => SyncError::UnknownField { kind, field },
            ModelError::WrongType {
                kind,
                field,
                expected,
            } => SyncError::WrongType {
                kind,
                field,
                expected,
            },
            ModelError::Invalid { kind, field, rule } => {
                SyncError::InvalidField { kind, field, rule }
            }
            ModelError::BadParent { kind, parent_kind } => {
                SyncError::BadParent { kind, parent_kind }
            }
            ModelError::NodeNotFound { node } => SyncError::NodeNotFound { node },
            ModelError::ForeignNode { node } => SyncError::ForeignNode { node },
            ModelError::KindConflict {
                node,
                existing,
                requested,
            } => SyncError::KindConflict {
                node,
                existing,
                requested,
            },
            // The rest are replica-side rules with no code of their own.
            other @ (ModelError::NodeDeleted { .. }
            | ModelError::NodeExists { .. }
            | ModelError::NotASibling { .. }
            | ModelError::Cycle { .. }
            | ModelError::Order { .. }) => SyncError::MalformedRequest {
                detail: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::clock::Stamp;
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

    fn every_error() -> Vec<SyncError> {
        let node = Uid::from_random_bytes([1; 16]);
        let parent = Uid::from_random_bytes([2; 16]);
        vec![
            SyncError::MalformedRequest { detail: "x".into() },
            SyncError::InvalidUid { value: "y".into() },
            SyncError::TooManyOps { count: 2, max: 1 },
            SyncError::BodyTooLarge { bytes: 9, max: 8 },
            SyncError::FieldTooLarge {
                node,
                field: "title".into(),
                bytes: 9,
                max: 8,
            },
            SyncError::ClientMismatch,
            SyncError::InvalidSeq {
                seq: 0,
                reason: "must be at least 1".into(),
            },
            SyncError::ClockSkew {
                stamp_ms: 3,
                server_ms: 1,
                max_skew_ms: 1,
            },
            SyncError::UnknownKind { kind: "k".into() },
            SyncError::UnknownField {
                kind: "k".into(),
                field: "f".into(),
            },
            SyncError::WrongType {
                kind: "k".into(),
                field: "f".into(),
                expected: "bool".into(),
            },
            SyncError::InvalidField {
                kind: "k".into(),
                field: "f".into(),
                rule: "must be trimmed".into(),
            },
            SyncError::BadParent {
                kind: "k".into(),
                parent_kind: Some("todo".into()),
            },
            SyncError::ForeignNode { node },
            SyncError::ForeignParent { node, parent },
            SyncError::NodeNotFound { node },
            SyncError::ParentNotFound { node, parent },
            SyncError::KindConflict {
                node,
                existing: "todo".into(),
                requested: "section".into(),
            },
            SyncError::TooManySubscribers { max: 3 },
            SyncError::RateLimited { retry_after_ms: 10 },
            SyncError::Unavailable {
                detail: "db".into(),
            },
            SyncError::Internal,
        ]
    }

    #[test]
    fn the_decoders_list_of_codes_is_every_errors_code() {
        let codes: Vec<&str> = every_error().iter().map(SyncError::code).collect();
        assert_eq!(codes, SYNC_ERROR_CODES);
    }

    #[test]
    fn errors_round_trip_with_their_code_and_status() {
        for err in every_error() {
            let json = serde_json::to_value(&err).unwrap();
            assert_eq!(json["code"], err.code(), "{json}");
            assert!((400..600).contains(&err.http_status()));
            assert!(!err.to_string().is_empty());
            round_trip(&err);
        }
        assert_eq!(
            serde_json::to_value(SyncError::Internal).unwrap(),
            json!({"code": "internal"})
        );
        assert_eq!(SyncError::Internal.http_status(), 500);
        assert_eq!(
            SyncError::TooManyOps { count: 1, max: 0 }.http_status(),
            413
        );
        assert_eq!(
            SyncError::KindConflict {
                node: Uid::new(),
                existing: "a".into(),
                requested: "b".into()
            }
            .http_status(),
            409
        );
    }

    #[test]
    fn model_errors_convert() {
        let e: SyncError = ModelError::Invalid {
            kind: "todo".into(),
            field: "title".into(),
            rule: "must not be empty".into(),
        }
        .into();
        assert_eq!(e.code(), "invalid_field");
        let node = Uid::new();
        let e: SyncError = ModelError::NodeDeleted { node }.into();
        assert_eq!(e.code(), "malformed_request");
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
        ] {
            round_trip(&msg);
        }
        assert_eq!(
            serde_json::to_value(ClientMessage::Ping { nonce: 7 }).unwrap(),
            json!({"type": "ping", "nonce": 7})
        );
        let mut server = vec![
            ServerMessage::Subscribed { list, cursor: 42 },
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
