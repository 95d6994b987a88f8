//! The `list` kind: the root node of a shared list. Its uid is the list's uid (the
//! capability that grants access), and everything else in the list lives under it.

use serde_json::Value;

use crate::model::registry::{empty_text, read_text, FieldSpec, FieldType, Fields, Model};
use crate::model::wire::SyncError;

/// A shared list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct List {
    pub title: String,
}

const FIELDS: &[FieldSpec] = &[FieldSpec {
    name: "title",
    // A list may be untitled; the view then shows a placeholder.
    ty: FieldType::Text {
        max_bytes: 256,
        trimmed: true,
        non_empty: false,
    },
    default: Some(empty_text),
}];

impl Model for List {
    const KIND: &'static str = "list";
    const PARENTS: &'static [&'static str] = &[];

    fn fields() -> &'static [FieldSpec] {
        FIELDS
    }

    fn decode(fields: &Fields) -> Result<List, SyncError> {
        Ok(List {
            title: read_text(Self::KIND, fields, "title")?,
        })
    }

    fn encode(&self) -> Fields {
        Fields::from([("title".to_string(), Value::String(self.title.clone()))])
    }
}
