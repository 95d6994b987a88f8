//! The `section` kind: a heading inside a list. It exists to prove the registry:
//! adding it changed no sync code, only this file and one `register` line.

use serde_json::Value;

use super::todo::ITEM_TITLE;
use crate::model::registry::{read_text, FieldSpec, Fields, Model};
use crate::model::wire::SyncError;

/// A heading that groups the items after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub title: String,
}

const FIELDS: &[FieldSpec] = &[FieldSpec {
    name: "title",
    ty: ITEM_TITLE,
    default: None,
}];

impl Model for Section {
    const KIND: &'static str = "section";
    const PARENTS: &'static [&'static str] = &["list"];

    fn fields() -> &'static [FieldSpec] {
        FIELDS
    }

    fn decode(fields: &Fields) -> Result<Section, SyncError> {
        Ok(Section {
            title: read_text(Self::KIND, fields, "title")?,
        })
    }

    fn encode(&self) -> Fields {
        Fields::from([("title".to_string(), Value::String(self.title.clone()))])
    }
}
