//! Every error of the protocol, declared once.
//!
//! [`SyncError`] is one table (the `sync_errors!` call below): each row is a
//! variant with its facts, its message, its `code` on the wire and the HTTP status
//! that carries it. Everything else is derived from the rows: the enum and its
//! `Display`, [`SyncError::code`], [`SyncError::http_status`], the list of codes
//! [`SyncError::CODES`], and the one-pass decoder (`super::tagged`), whose only
//! other input is the list of keys an error object may have with their types (the
//! compiler checks it against the rows).

use serde::Serialize;

use super::uid::Uid;

/// Declares [`SyncError`] from its table; see the module docs.
macro_rules! sync_errors {
    (
        keys {
            required { $($req:ident : $req_ty:ty),* $(,)? }
            optional { $($opt:ident : $opt_ty:ty),* $(,)? }
        }
        $(
            $(#[$attr:meta])*
            $variant:ident $({ $($field:ident : $field_ty:ty),* $(,)? })? => $code:literal, $status:literal;
        )*
    ) => {
        /// Every error of the protocol. Decoded in one pass (`super::tagged`).
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
        #[serde(tag = "code")]
        pub enum SyncError {
            $(
                $(#[$attr])*
                #[serde(rename = $code)]
                $variant $({ $($field: $field_ty),* })?,
            )*
        }

        impl SyncError {
            /// Every `code`, in the table's order.
            pub const CODES: &'static [&'static str] = &[$($code),*];

            /// The `code` of the JSON form.
            pub fn code(&self) -> &'static str {
                match self {
                    $(SyncError::$variant { .. } => $code,)*
                }
            }

            /// The HTTP status that carries this error.
            pub fn http_status(&self) -> u16 {
                match self {
                    $(SyncError::$variant { .. } => $status,)*
                }
            }
        }

        super::tagged::tagged_deserialize! {
            SyncError, tag = "code", expecting = "a sync error",
            required { $($req: $req_ty),* }
            optional { $($opt: $opt_ty),* }
            build |tag, slots| match tag {
                $($code => Ok(SyncError::$variant $({ $($field: slots.$field()?),* })?),)*
                other => slots.unknown(other, SyncError::CODES),
            }
        }
    };
}

sync_errors! {
    keys {
        required {
            detail: String, value: String, count: usize, max: usize, bytes: usize, node: Uid,
            field: String, seq: u64, reason: String, stamp_ms: u64, server_ms: u64,
            max_skew_ms: u64, kind: String, expected: String, rule: String, parent: Uid,
            existing: String, requested: String, retry_after_ms: u64,
        }
        optional { parent_kind: String }
    }

    #[error("malformed request: {detail}")]
    MalformedRequest { detail: String } => "malformed_request", 400;

    #[error("invalid id `{value}`")]
    InvalidUid { value: String } => "invalid_uid", 400;

    #[error("{count} ops in one push; at most {max} allowed")]
    TooManyOps { count: usize, max: usize } => "too_many_ops", 413;

    #[error("request body of {bytes} bytes; at most {max} allowed")]
    BodyTooLarge { bytes: usize, max: usize } => "body_too_large", 413;

    #[error("field `{field}` of node {node} is {bytes} bytes as JSON; at most {max} allowed")]
    FieldTooLarge { node: Uid, field: String, bytes: usize, max: usize } => "field_too_large", 413;

    #[error("an op's client (or its stamp's client) differs from the request's client")]
    ClientMismatch => "client_mismatch", 400;

    #[error("invalid sequence number {seq}: {reason}")]
    InvalidSeq { seq: u64, reason: String } => "invalid_seq", 400;

    #[error("stamp at {stamp_ms} ms is more than {max_skew_ms} ms ahead of the server clock at {server_ms} ms")]
    ClockSkew { stamp_ms: u64, server_ms: u64, max_skew_ms: u64 } => "clock_skew", 400;

    #[error("unknown kind `{kind}`")]
    UnknownKind { kind: String } => "unknown_kind", 422;

    #[error("kind `{kind}` has no field `{field}`")]
    UnknownField { kind: String, field: String } => "unknown_field", 422;

    #[error("field `{field}` of kind `{kind}` must be a {expected}")]
    WrongType { kind: String, field: String, expected: String } => "wrong_type", 422;

    #[error("field `{field}` of kind `{kind}` {rule}")]
    InvalidField { kind: String, field: String, rule: String } => "invalid_field", 422;

    #[error("a `{kind}` cannot live under {}", parent_kind.as_deref().map_or("no parent".to_string(), |p| format!("a `{p}`")))]
    BadParent { kind: String, parent_kind: Option<String> } => "bad_parent", 422;

    #[error("node {node} belongs to another list")]
    ForeignNode { node: Uid } => "foreign_node", 403;

    #[error("parent {parent} of node {node} belongs to another list")]
    ForeignParent { node: Uid, parent: Uid } => "foreign_parent", 403;

    #[error("node {node} not found")]
    NodeNotFound { node: Uid } => "node_not_found", 404;

    #[error("parent {parent} of node {node} not found")]
    ParentNotFound { node: Uid, parent: Uid } => "parent_not_found", 404;

    #[error("node {node} is a `{existing}`, not a `{requested}`")]
    KindConflict { node: Uid, existing: String, requested: String } => "kind_conflict", 409;

    #[error("too many live subscribers; at most {max}")]
    TooManySubscribers { max: usize } => "too_many_subscribers", 429;

    #[error("too many requests; retry after {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 } => "rate_limited", 429;

    #[error("service unavailable: {detail}")]
    Unavailable { detail: String } => "unavailable", 503;

    /// Deliberately without details: internals never leak to clients.
    #[error("internal server error")]
    Internal => "internal", 500;
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    /// One error of each variant, in the table's order.
    pub(in crate::model) fn every_error() -> Vec<SyncError> {
        let node = Uid::from_random_bytes([1; 16]);
        let parent = Uid::from_random_bytes([2; 16]);
        let (kind, field) = (String::from("k"), String::from("f"));
        vec![
            SyncError::MalformedRequest { detail: "x".into() },
            SyncError::InvalidUid { value: "y".into() },
            SyncError::TooManyOps { count: 2, max: 1 },
            SyncError::BodyTooLarge { bytes: 9, max: 8 },
            SyncError::FieldTooLarge {
                node,
                field: field.clone(),
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
            SyncError::UnknownKind { kind: kind.clone() },
            SyncError::UnknownField {
                kind: kind.clone(),
                field: field.clone(),
            },
            SyncError::WrongType {
                kind: kind.clone(),
                field: field.clone(),
                expected: "bool".into(),
            },
            SyncError::InvalidField {
                kind: kind.clone(),
                field,
                rule: "must be trimmed".into(),
            },
            SyncError::BadParent {
                kind,
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
    fn every_error_round_trips_with_its_code_and_status() {
        let errors = every_error();
        let codes: Vec<&str> = errors.iter().map(SyncError::code).collect();
        assert_eq!(codes, SyncError::CODES);
        for err in errors {
            let json = serde_json::to_value(&err).unwrap();
            assert_eq!(json["code"], err.code(), "{json}");
            assert!((400..600).contains(&err.http_status()));
            let back: SyncError = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(back, err, "{json}");
        }
    }

    #[test]
    fn json_statuses_and_messages() {
        assert_eq!(
            serde_json::to_value(SyncError::Internal).unwrap(),
            json!({"code": "internal"})
        );
        let invalid = SyncError::InvalidField {
            kind: "todo".into(),
            field: "title".into(),
            rule: "must be trimmed".into(),
        };
        assert_eq!(
            serde_json::to_value(&invalid).unwrap(),
            json!({"code": "invalid_field", "kind": "todo", "field": "title", "rule": "must be trimmed"})
        );
        assert_eq!(
            invalid.to_string(),
            "field `title` of kind `todo` must be trimmed"
        );
        let orphan = SyncError::BadParent {
            kind: "todo".into(),
            parent_kind: None,
        };
        assert_eq!(
            serde_json::to_value(&orphan).unwrap(),
            json!({"code": "bad_parent", "kind": "todo", "parent_kind": null})
        );
        assert_eq!(orphan.to_string(), "a `todo` cannot live under no parent");
        assert_eq!(SyncError::Internal.http_status(), 500);
        assert_eq!(
            SyncError::TooManyOps { count: 1, max: 0 }.http_status(),
            413
        );
        let conflict = SyncError::KindConflict {
            node: Uid::new(),
            existing: "a".into(),
            requested: "b".into(),
        };
        assert_eq!(conflict.http_status(), 409);
        assert!(SyncError::CODES.contains(&"kind_conflict"));
        let unknown = serde_json::from_value::<SyncError>(json!({"code": "oops"})).unwrap_err();
        assert!(unknown.to_string().contains("unknown variant `oops`"));
    }
}
