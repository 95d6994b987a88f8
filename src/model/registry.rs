//! The registry of model kinds: one definition of every model, shared by client and
//! server.
//!
//! A node stores its kind as a string and its fields as JSON values. A [`Model`] is
//! the Rust type of one kind: it names the kind, the kinds it may live under and its
//! fields (with types, rules and defaults), and converts between typed values and
//! field maps. The [`Registry`] collects the kinds; the client validates a write with
//! it before sending, the server validates every incoming op with the same registry,
//! and readers decode stored fields back into the right type. Adding a kind is one
//! `register` line and touches no sync code.
//!
//! Its errors are the protocol's own ([`SyncError`]: `unknown_kind`,
//! `unknown_field`, `wrong_type`, `invalid_field`, `bad_parent`, ...), so the server
//! answers exactly what the registry says. One rule for `null`: it is no field's
//! value. A `null` value is `wrong_type` for every field of every kind, in a create
//! or a set; `invalid_field` with the rule `is required` is only for a field
//! without a default that a create leaves out.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::rules::ROOT_KIND;
use super::uid::Uid;
use super::wire::SyncError;

/// A field's value: any JSON value, checked against the field's [`FieldType`].
pub type Value = serde_json::Value;

/// A node's fields by name.
pub type Fields = BTreeMap<String, Value>;

/// The type of a field and the rules its values must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A JSON string.
    Text {
        /// At most this many UTF-8 bytes.
        max_bytes: usize,
        /// No leading or trailing whitespace.
        trimmed: bool,
        /// Not the empty string.
        non_empty: bool,
    },
    /// A JSON bool.
    Bool,
}

/// One field of a kind.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    pub ty: FieldType,
    /// The value of the field when a node does not carry it; `None` for a field
    /// that a create must give (it is "required").
    pub default: Option<fn() -> Value>,
}

/// Default `""`.
pub fn empty_text() -> Value {
    Value::String(String::new())
}

/// Default `false`.
pub fn false_value() -> Value {
    Value::Bool(false)
}

/// The Rust type of one kind of node.
pub trait Model: Sized + Clone + std::fmt::Debug + 'static {
    /// The kind's name as stored in nodes, e.g. `"todo"`.
    const KIND: &'static str;
    /// The kinds this kind may live under; empty for a root kind (the list itself).
    const PARENTS: &'static [&'static str];
    /// The kind's fields.
    fn fields() -> &'static [FieldSpec];
    /// Stored fields (with defaults filled in) to a typed value.
    fn decode(fields: &Fields) -> Result<Self, SyncError>;
    /// A typed value to the fields of a create.
    fn encode(&self) -> Fields;
}

/// What the registry knows about one kind.
#[derive(Debug, Clone, Copy)]
pub struct KindInfo {
    pub name: &'static str,
    pub parents: &'static [&'static str],
    pub fields: &'static [FieldSpec],
}

impl KindInfo {
    /// True for a kind that lives at the root (the list node itself).
    pub fn is_root(&self) -> bool {
        self.parents.is_empty()
    }

    /// The spec of one field.
    pub fn field(&self, name: &str) -> Option<&'static FieldSpec> {
        self.fields.iter().find(|spec| spec.name == name)
    }
}

/// The set of known kinds.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, KindInfo>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds the kind `M` (builder style). Registering a kind twice keeps the last.
    pub fn register<M: Model>(mut self) -> Registry {
        self.kinds.insert(
            M::KIND,
            KindInfo {
                name: M::KIND,
                parents: M::PARENTS,
                fields: M::fields(),
            },
        );
        self
    }

    /// The kind called `name`.
    pub fn kind(&self, name: &str) -> Result<&KindInfo, SyncError> {
        self.kinds.get(name).ok_or_else(|| SyncError::UnknownKind {
            kind: name.to_string(),
        })
    }

    /// Every registered kind, by name.
    pub fn kinds(&self) -> impl Iterator<Item = &KindInfo> {
        self.kinds.values()
    }

    /// Checks one value for one field of one kind.
    pub fn validate_field(&self, kind: &str, field: &str, value: &Value) -> Result<(), SyncError> {
        let info = self.kind(kind)?;
        let spec = info.field(field).ok_or_else(|| SyncError::UnknownField {
            kind: kind.to_string(),
            field: field.to_string(),
        })?;
        check_value(info.name, spec, value)
    }

    /// Checks the fields of a create: every given field is known and valid, and
    /// every field without a default is given.
    pub fn validate_fields(&self, kind: &str, fields: &Fields) -> Result<(), SyncError> {
        let info = self.kind(kind)?;
        for (name, value) in fields {
            self.validate_field(kind, name, value)?;
        }
        match info
            .fields
            .iter()
            .find(|spec| spec.default.is_none() && !fields.contains_key(spec.name))
        {
            Some(missing) => Err(SyncError::InvalidField {
                kind: info.name.to_string(),
                field: missing.name.to_string(),
                rule: "is required".to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Checks the identity rule of a create in `list`: a root kind is the list node
    /// itself, so its uid must be the list's, and the list's uid is reserved for it.
    pub fn check_create_identity(&self, list: Uid, node: Uid, kind: &str) -> Result<(), SyncError> {
        let is_root = self.kind(kind)?.is_root();
        if is_root && node != list {
            return Err(SyncError::ForeignNode { node });
        }
        if !is_root && node == list {
            return Err(SyncError::KindConflict {
                node,
                existing: ROOT_KIND.to_string(),
                requested: kind.to_string(),
            });
        }
        Ok(())
    }

    /// Checks that a `kind` may live under a node of `parent_kind` (`None`: no
    /// parent, which only a root kind may have).
    pub fn validate_parent(&self, kind: &str, parent_kind: Option<&str>) -> Result<(), SyncError> {
        let info = self.kind(kind)?;
        let allowed = match parent_kind {
            None => info.is_root(),
            Some(parent) => info.parents.contains(&parent),
        };
        if allowed {
            Ok(())
        } else {
            Err(SyncError::BadParent {
                kind: kind.to_string(),
                parent_kind: parent_kind.map(str::to_string),
            })
        }
    }

    /// Checks a create: the kind is known, the parent kind allowed and the fields
    /// valid ([`Registry::validate_fields`]).
    pub fn validate_create(
        &self,
        kind: &str,
        parent_kind: Option<&str>,
        fields: &Fields,
    ) -> Result<(), SyncError> {
        self.validate_parent(kind, parent_kind)?;
        self.validate_fields(kind, fields)
    }

    /// `fields` with every missing field of `kind` that has a default set to it.
    /// Unknown fields are kept (a newer client may know them).
    pub fn with_defaults(&self, kind: &str, fields: &Fields) -> Result<Fields, SyncError> {
        let info = self.kind(kind)?;
        Ok(fill_defaults(info.fields, fields))
    }

    /// Decodes stored fields into `M`, filling defaults first.
    pub fn decode<M: Model>(&self, fields: &Fields) -> Result<M, SyncError> {
        M::decode(&fill_defaults(M::fields(), fields))
    }
}

fn fill_defaults(specs: &[FieldSpec], fields: &Fields) -> Fields {
    let mut out = fields.clone();
    for spec in specs {
        if let Some(default) = spec.default {
            out.entry(spec.name.to_string()).or_insert_with(default);
        }
    }
    out
}

fn check_value(kind: &str, spec: &FieldSpec, value: &Value) -> Result<(), SyncError> {
    let invalid = |rule: String| SyncError::InvalidField {
        kind: kind.to_string(),
        field: spec.name.to_string(),
        rule,
    };
    let wrong_type = |expected: &str| SyncError::WrongType {
        kind: kind.to_string(),
        field: spec.name.to_string(),
        expected: expected.to_string(),
    };
    match spec.ty {
        FieldType::Text {
            max_bytes,
            trimmed,
            non_empty,
        } => {
            let Value::String(text) = value else {
                return Err(wrong_type("string"));
            };
            if trimmed && text.trim() != text {
                return Err(invalid("must be trimmed".to_string()));
            }
            if non_empty && text.is_empty() {
                return Err(invalid("must not be empty".to_string()));
            }
            if text.len() > max_bytes {
                return Err(invalid(format!("at most {max_bytes} bytes")));
            }
            Ok(())
        }
        FieldType::Bool => match value {
            Value::Bool(_) => Ok(()),
            _ => Err(wrong_type("bool")),
        },
    }
}

/// Reads a text field for [`Model::decode`].
pub fn read_text(kind: &str, fields: &Fields, name: &str) -> Result<String, SyncError> {
    match fields.get(name) {
        Some(Value::String(text)) => Ok(text.clone()),
        _ => Err(SyncError::WrongType {
            kind: kind.to_string(),
            field: name.to_string(),
            expected: "string".to_string(),
        }),
    }
}

/// Reads a bool field for [`Model::decode`].
pub fn read_bool(kind: &str, fields: &Fields, name: &str) -> Result<bool, SyncError> {
    match fields.get(name) {
        Some(Value::Bool(flag)) => Ok(*flag),
        _ => Err(SyncError::WrongType {
            kind: kind.to_string(),
            field: name.to_string(),
            expected: "bool".to_string(),
        }),
    }
}

/// The standard registry (every kind in [`super::kinds`]), built once.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(super::kinds::standard_registry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: Value) -> Fields {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn standard_kinds_are_registered() {
        let names: Vec<_> = registry().kinds().map(|k| k.name).collect();
        assert_eq!(names, ["list", "section", "todo"]);
        assert!(registry().kind("list").unwrap().is_root());
        assert_eq!(
            registry().kind("nope").unwrap_err(),
            SyncError::UnknownKind {
                kind: "nope".into()
            }
        );
    }

    #[test]
    fn text_rules() {
        let r = registry();
        assert!(r.validate_field("todo", "title", &json!("Milk")).is_ok());
        let rule = |v: Value| match r.validate_field("todo", "title", &v) {
            Err(SyncError::InvalidField { rule, .. }) => rule,
            other => panic!("{other:?}"),
        };
        assert_eq!(rule(json!(" Milk")), "must be trimmed");
        assert_eq!(rule(json!("")), "must not be empty");
        assert_eq!(rule(json!("x".repeat(1025))), "at most 1024 bytes");
        assert!(r
            .validate_field("todo", "title", &json!("é".repeat(512)))
            .is_ok());
        assert_eq!(rule(json!("é".repeat(513))), "at most 1024 bytes");
        assert_eq!(
            r.validate_field("todo", "title", &json!(3)),
            Err(SyncError::WrongType {
                kind: "todo".into(),
                field: "title".into(),
                expected: "string".into()
            })
        );
        // A list's title may be empty.
        assert!(r.validate_field("list", "title", &json!("")).is_ok());
    }

    #[test]
    fn null_is_the_wrong_type_for_every_field_of_every_kind() {
        let r = registry();
        for kind in r.kinds() {
            for spec in kind.fields {
                let expected = match spec.ty {
                    FieldType::Text { .. } => "string",
                    FieldType::Bool => "bool",
                };
                let wrong_type = SyncError::WrongType {
                    kind: kind.name.into(),
                    field: spec.name.into(),
                    expected: expected.into(),
                };
                let null = Fields::from([(spec.name.to_string(), Value::Null)]);
                assert_eq!(
                    r.validate_field(kind.name, spec.name, &Value::Null),
                    Err(wrong_type.clone())
                );
                assert_eq!(r.validate_fields(kind.name, &null), Err(wrong_type));
            }
        }
    }

    #[test]
    fn bool_rules_and_unknown_field() {
        let r = registry();
        assert!(r.validate_field("todo", "completed", &json!(true)).is_ok());
        assert!(matches!(
            r.validate_field("todo", "completed", &json!("yes")),
            Err(SyncError::WrongType { .. })
        ));
        assert_eq!(
            r.validate_field("todo", "colour", &json!(1)),
            Err(SyncError::UnknownField {
                kind: "todo".into(),
                field: "colour".into()
            })
        );
    }

    #[test]
    fn create_checks_parents_and_required_fields() {
        let r = registry();
        let todo = fields(json!({"title": "Milk"}));
        assert!(r.validate_create("todo", Some("list"), &todo).is_ok());
        assert_eq!(
            r.validate_create("todo", None, &todo),
            Err(SyncError::BadParent {
                kind: "todo".into(),
                parent_kind: None
            })
        );
        assert!(matches!(
            r.validate_create("todo", Some("todo"), &todo),
            Err(SyncError::BadParent { .. })
        ));
        assert!(r.validate_create("list", None, &Fields::new()).is_ok());
        assert!(matches!(
            r.validate_create("list", Some("list"), &Fields::new()),
            Err(SyncError::BadParent { .. })
        ));
        assert!(matches!(
            r.validate_create("todo", Some("list"), &Fields::new()),
            Err(SyncError::InvalidField { rule, .. }) if rule == "is required"
        ));
    }
}
