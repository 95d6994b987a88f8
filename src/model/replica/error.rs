//! Why a local write is refused: a rule the server applies too (as the very
//! [`SyncError`] the server would answer), or one only a replica has.

use crate::model::uid::Uid;
use crate::model::wire::SyncError;

/// A refused local write, or a stored node that does not decode as its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A rule of the protocol ([`crate::model::rules`], the registry): the error
    /// the server would answer for the same write.
    #[error(transparent)]
    Rule(#[from] SyncError),
    #[error("node {node} is deleted")]
    NodeDeleted { node: Uid },
    #[error("node {node} already exists")]
    NodeExists { node: Uid },
    #[error("node {anchor} is not a child of {parent}")]
    NotASibling { anchor: Uid, parent: Uid },
    #[error("moving {node} under {parent} would make it its own ancestor")]
    Cycle { node: Uid, parent: Uid },
    #[error("no order key fits there: {detail}")]
    Order { detail: String },
}

impl From<ModelError> for SyncError {
    /// A rule's error as it is; the replica's own rules have no code of their own.
    fn from(e: ModelError) -> SyncError {
        match e {
            ModelError::Rule(e) => e,
            other => SyncError::MalformedRequest {
                detail: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_errors_convert() {
        let rule = SyncError::InvalidField {
            kind: "todo".into(),
            field: "title".into(),
            rule: "must not be empty".into(),
        };
        assert_eq!(SyncError::from(ModelError::from(rule.clone())), rule);
        let node = Uid::new();
        let e: SyncError = ModelError::NodeDeleted { node }.into();
        assert_eq!(e.code(), "malformed_request");
    }
}
