//! The `todo` kind: one item of a list, as in TodoMVC (a title and a done flag).

use serde_json::Value;

use crate::model::registry::{
    false_value, read_bool, read_text, FieldSpec, FieldType, Fields, Model,
};
use crate::model::wire::SyncError;

/// An item of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Todo {
    pub title: String,
    pub completed: bool,
}

/// The title of an item: required, trimmed, at most 1 KiB. Sections share it.
pub(super) const ITEM_TITLE: FieldType = FieldType::Text {
    max_bytes: 1024,
    trimmed: true,
    non_empty: true,
};

const FIELDS: &[FieldSpec] = &[
    FieldSpec {
        name: "title",
        ty: ITEM_TITLE,
        // No sensible default: a create must give it.
        default: None,
    },
    FieldSpec {
        name: "completed",
        ty: FieldType::Bool,
        default: Some(false_value),
    },
];

impl Model for Todo {
    const KIND: &'static str = "todo";
    const PARENTS: &'static [&'static str] = &["list"];

    fn fields() -> &'static [FieldSpec] {
        FIELDS
    }

    fn decode(fields: &Fields) -> Result<Todo, SyncError> {
        Ok(Todo {
            title: read_text(Self::KIND, fields, "title")?,
            completed: read_bool(Self::KIND, fields, "completed")?,
        })
    }

    fn encode(&self) -> Fields {
        Fields::from([
            ("title".to_string(), Value::String(self.title.clone())),
            ("completed".to_string(), Value::Bool(self.completed)),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::registry::registry;

    #[test]
    fn round_trip_with_defaults() {
        let todo = Todo {
            title: "Milk".into(),
            completed: true,
        };
        assert_eq!(registry().decode::<Todo>(&todo.encode()), Ok(todo));
        let only_title = Fields::from([("title".to_string(), Value::from("Eggs"))]);
        assert_eq!(
            registry().decode::<Todo>(&only_title),
            Ok(Todo {
                title: "Eggs".into(),
                completed: false
            })
        );
        assert!(registry().decode::<Todo>(&Fields::new()).is_err());
    }
}
