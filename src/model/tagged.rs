//! Decoding of internally tagged JSON objects in one pass.
//!
//! The protocol's enums put their tag beside their fields (`{"type": "changes",
//! "list": …}`, `{"op": "set", "node": …}`, `{"code": "clock_skew", …}`). serde's
//! derive reads such an object in two passes: it first buffers the whole object
//! in its private `Content` tree (to find the tag wherever it is), then decodes
//! the variant from that tree. That costs a copy of every message on the server
//! and, in the browser, a second decoder for every type inside a message: about
//! a tenth of the wasm bundle (docs/BENCHMARKS.md, "bundle").
//!
//! [`tagged_deserialize!`] writes the `Deserialize` impl by hand instead: one
//! pass over the object puts each known key into a typed slot (the tag into its
//! own), then the caller's `build` expression picks the variant by the tag and
//! takes its fields from the slots. What the JSON may look like does not change:
//! keys in any order, unknown keys ignored, `Option` fields (listed under
//! `optional`) may be missing or null, and a missing tag or field, a duplicate
//! key, an unknown tag or a wrong type is the same serde error as before. Two
//! things the derive accepted are refused, neither of which Tether ever sends: an
//! array instead of an object (`["ping", 7]`), and a key of *another* variant with
//! a value of the wrong type (`{"type": "pong", "nonce": 1, "list": 5}`; the
//! derive ignored `list` there, here every known key is read as its type). Only
//! `Deserialize` is hand-written; `Serialize` stays derived.

/// Implements `Deserialize` for `$ty` from one JSON object tagged by `$tag`.
///
/// Every key that any variant uses is listed once with its type: `required`
/// ones are an error when a variant needs them and they are missing, `optional`
/// ones (`Option<T>` fields, listed with `T`) are `None` then. `build` is an
/// expression of type `Result<$ty, E>` over the tag (`&str`) and the slots,
/// whose accessor methods (one per key, same name) take a field out.
macro_rules! tagged_deserialize {
    (
        $ty:ident, tag = $tag:literal, expecting = $expecting:literal,
        required { $($req:ident : $req_ty:ty),* $(,)? }
        optional { $($opt:ident : $opt_ty:ty),* $(,)? }
        build |$tag_var:ident, $slots:ident| $build:expr
    ) => {
        const _: () = {
            use ::serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

            /// The keys an object may have; anything else is ignored.
            #[allow(non_camel_case_types)]
            enum Key {
                Tag,
                $($req,)*
                $($opt,)*
                Other,
            }

            impl<'de> Deserialize<'de> for Key {
                fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
                    struct KeyVisitor;
                    impl Visitor<'_> for KeyVisitor {
                        type Value = Key;
                        fn expecting(&self, f: &mut ::std::fmt::Formatter) -> ::std::fmt::Result {
                            f.write_str("a field name")
                        }
                        fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                            Ok(match key {
                                $tag => Key::Tag,
                                $(stringify!($req) => Key::$req,)*
                                $(stringify!($opt) => Key::$opt,)*
                                _ => Key::Other,
                            })
                        }
                    }
                    d.deserialize_identifier(KeyVisitor)
                }
            }

            /// Each key's value once read; `None` until then. `E` is the
            /// decoder's error type, which the accessors return.
            struct Slots<E> {
                $($req: Option<$req_ty>,)*
                $($opt: Option<Option<$opt_ty>>,)*
                _error_type: ::std::marker::PhantomData<E>,
            }

            #[allow(dead_code)]
            impl<E: de::Error> Slots<E> {
                fn new() -> Self {
                    Slots {
                        $($req: None,)*
                        $($opt: None,)*
                        _error_type: ::std::marker::PhantomData,
                    }
                }
                $(
                    fn $req(&mut self) -> Result<$req_ty, E> {
                        self.$req.take().ok_or_else(|| E::missing_field(stringify!($req)))
                    }
                )*
                $(
                    fn $opt(&mut self) -> Result<Option<$opt_ty>, E> {
                        Ok(self.$opt.take().flatten())
                    }
                )*
                /// The error for a tag that names no variant.
                fn unknown<T>(&self, tag: &str, variants: &'static [&'static str]) -> Result<T, E> {
                    Err(E::unknown_variant(tag, variants))
                }
            }

            struct ObjectVisitor;

            impl<'de> Visitor<'de> for ObjectVisitor {
                type Value = $ty;

                fn expecting(&self, f: &mut ::std::fmt::Formatter) -> ::std::fmt::Result {
                    f.write_str($expecting)
                }

                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<$ty, A::Error> {
                    let mut tag: Option<String> = None;
                    let mut slots = Slots::<A::Error>::new();
                    while let Some(key) = map.next_key::<Key>()? {
                        match key {
                            Key::Tag => {
                                if tag.is_some() {
                                    return Err(de::Error::duplicate_field($tag));
                                }
                                tag = Some(map.next_value()?);
                            }
                            $(Key::$req => {
                                if slots.$req.is_some() {
                                    return Err(de::Error::duplicate_field(stringify!($req)));
                                }
                                slots.$req = Some(map.next_value()?);
                            })*
                            $(Key::$opt => {
                                if slots.$opt.is_some() {
                                    return Err(de::Error::duplicate_field(stringify!($opt)));
                                }
                                slots.$opt = Some(map.next_value()?);
                            })*
                            Key::Other => {
                                map.next_value::<de::IgnoredAny>()?;
                            }
                        }
                    }
                    let tag = tag.ok_or_else(|| de::Error::missing_field($tag))?;
                    let $tag_var: &str = &tag;
                    #[allow(unused_mut)]
                    let mut $slots = slots;
                    $build
                }
            }

            impl<'de> Deserialize<'de> for $ty {
                fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                    d.deserialize_map(ObjectVisitor)
                }
            }
        };
    };
}

pub(crate) use tagged_deserialize;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::model::op::{Action, Op};
    use crate::model::wire::{ClientMessage, ServerMessage, SyncError};
    use crate::model::{ClientId, Uid};

    fn op_json() -> serde_json::Value {
        let client = ClientId::from_random_bytes([7; 16]);
        json!({
            "client": client, "seq": 3, "stamp": format!("1764160000000:0:{client}"),
            "op": "move", "node": Uid::from_random_bytes([1; 16]), "parent": null, "order": "a0",
        })
    }

    fn error_of<T: serde::de::DeserializeOwned + std::fmt::Debug>(text: &str) -> String {
        serde_json::from_str::<T>(text).unwrap_err().to_string()
    }

    #[test]
    fn keys_in_any_order_and_unknown_keys_ignored() {
        let op: Op = serde_json::from_value(op_json()).unwrap();
        assert!(matches!(op.action, Action::Move { parent: None, .. }));
        // The tag last, an unknown key first, another variant's key in between.
        let list = Uid::from_random_bytes([3; 16]);
        let text = format!(
            r#"{{"extra": [1, {{"a": 2}}], "list": "{list}", "nonce": 4, "type": "pong"}}"#
        );
        assert_eq!(
            serde_json::from_str::<ServerMessage>(&text).unwrap(),
            ServerMessage::Pong { nonce: 4 }
        );
        let text = r#"{"extra": [1, {"a": 2}], "nonce": 4, "type": "pong"}"#;
        assert_eq!(
            serde_json::from_str::<ServerMessage>(text).unwrap(),
            ServerMessage::Pong { nonce: 4 }
        );
        // An escaped key is the same key.
        let text = r#"{"n\u006fnce": 5, "typ\u0065": "ping"}"#;
        assert_eq!(
            serde_json::from_str::<ServerMessage>(text).unwrap(),
            ServerMessage::Ping { nonce: 5 }
        );
    }

    #[test]
    fn optional_fields_may_be_missing_or_null() {
        let list = Uid::from_random_bytes([2; 16]);
        let missing: ClientMessage =
            serde_json::from_value(json!({"type": "subscribe", "list": list, "after": 1})).unwrap();
        let null: ClientMessage = serde_json::from_value(
            json!({"type": "subscribe", "list": list, "after": 1, "client": null}),
        )
        .unwrap();
        let expected = ClientMessage::Subscribe {
            list,
            after: 1,
            client: None,
        };
        assert_eq!((missing, null), (expected.clone(), expected));
        let mut op = op_json();
        op.as_object_mut().unwrap().remove("parent");
        let op: Op = serde_json::from_value(op).unwrap();
        assert!(matches!(op.action, Action::Move { parent: None, .. }));
    }

    #[test]
    fn bad_objects_are_serde_errors_naming_what_is_wrong() {
        assert!(error_of::<ServerMessage>(r#"{"nonce": 1}"#).contains("missing field `type`"));
        let unknown = error_of::<ServerMessage>(r#"{"type": "shout", "nonce": 1}"#);
        assert!(unknown.contains("unknown variant `shout`"), "{unknown}");
        assert!(unknown.contains("subscribed"), "{unknown}");
        assert!(error_of::<ServerMessage>(r#"{"type": "ping"}"#).contains("missing field `nonce`"));
        assert!(
            error_of::<ServerMessage>(r#"{"type": "ping", "nonce": 1, "nonce": 2}"#)
                .contains("duplicate field `nonce`")
        );
        assert!(
            error_of::<ServerMessage>(r#"{"type": "ping", "type": "pong", "nonce": 1}"#)
                .contains("duplicate field `type`")
        );
        assert!(
            error_of::<ServerMessage>(r#"{"type": "ping", "nonce": "1"}"#)
                .contains("invalid type: string \"1\", expected u64")
        );
        assert!(error_of::<ServerMessage>(r#"{"type": 3}"#).contains("invalid type"));
        // Stricter than serde's derive (module docs): no array form, and another
        // variant's key must still have its type.
        assert!(error_of::<ServerMessage>(r#"["ping", 1]"#).contains("a server message"));
        assert!(
            error_of::<ServerMessage>(r#"{"type": "pong", "nonce": 1, "list": 5}"#)
                .contains("invalid type: integer `5`")
        );
        let mut op = op_json();
        op["op"] = json!("set");
        assert!(serde_json::from_value::<Op>(op)
            .unwrap_err()
            .to_string()
            .contains("missing field `field`"));
        assert!(
            error_of::<SyncError>(r#"{"code": "too_many_ops", "count": 2}"#)
                .contains("missing field `max`")
        );
    }

    #[test]
    fn nested_tagged_objects_decode() {
        let text = r#"{"error": {"max": 9, "code": "too_many_subscribers"}, "type": "error"}"#;
        assert_eq!(
            serde_json::from_str::<ServerMessage>(text).unwrap(),
            ServerMessage::Error {
                error: SyncError::TooManySubscribers { max: 9 }
            }
        );
        assert_eq!(
            serde_json::from_str::<SyncError>(r#"{"code": "bad_parent", "kind": "todo"}"#).unwrap(),
            SyncError::BadParent {
                kind: "todo".into(),
                parent_kind: None
            }
        );
    }
}
