//! Identities: [`Uid`] names a model or a view, [`ClientId`] names one replica (a tab).
//!
//! Both are random UUID v4s, made where the thing is born (on the client), so no
//! round trip to the server is ever needed to name something. They are separate types
//! so a node's id can never be passed where a replica's id is meant.
//!
//! On the wire and in storage both are the canonical lowercase hyphenated string.
//! Parsing is strict: only the hyphenated form of an RFC 4122 version-4 UUID is
//! accepted (in any letter case), because every id is produced by [`Uid::new`] /
//! [`ClientId::new`] and anything else is a sign of a bug or of forged input.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use uuid::{Uuid, Variant};

/// Why a string is not a valid id. Names the offending input (cut to a readable
/// length, so a huge forged input does not end up whole in logs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid id `{input}`: {reason}")]
pub struct UidError {
    /// The rejected input, at most 64 characters of it.
    pub input: String,
    /// Which rule it broke.
    pub reason: &'static str,
}

impl UidError {
    fn new(input: &str, reason: &'static str) -> UidError {
        UidError {
            input: input.chars().take(64).collect(),
            reason,
        }
    }
}

/// Parses the canonical hyphenated form of a version-4 RFC 4122 UUID.
fn parse_v4(input: &str) -> Result<Uuid, UidError> {
    let bytes = input.as_bytes();
    // `Uuid::try_parse` also accepts the simple, braced and URN forms; the wire
    // format allows exactly one spelling, so check the shape first.
    if bytes.len() != 36 {
        return Err(UidError::new(input, "expected 36 characters (8-4-4-4-12)"));
    }
    for (i, b) in bytes.iter().enumerate() {
        let hyphen_slot = matches!(i, 8 | 13 | 18 | 23);
        let ok = if hyphen_slot {
            *b == b'-'
        } else {
            b.is_ascii_hexdigit()
        };
        if !ok {
            return Err(UidError::new(
                input,
                "expected hex digits in the hyphenated form 8-4-4-4-12",
            ));
        }
    }
    let uuid = Uuid::try_parse(input).map_err(|_| UidError::new(input, "not a UUID"))?;
    if uuid.get_version_num() != 4 {
        return Err(UidError::new(input, "not a version-4 UUID"));
    }
    if uuid.get_variant() != Variant::RFC4122 {
        return Err(UidError::new(input, "not an RFC 4122 UUID"));
    }
    Ok(uuid)
}

/// Serde visitor shared by both id types: accepts a string, parses it strictly.
struct V4Visitor;

impl<'de> Visitor<'de> for V4Visitor {
    type Value = Uuid;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a hyphenated version-4 UUID string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Uuid, E> {
        parse_v4(v).map_err(E::custom)
    }
}

/// Defines a v4 UUID newtype with the same API for [`Uid`] and [`ClientId`].
macro_rules! v4_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random id.
            #[allow(clippy::new_without_default)]
            pub fn new() -> $name {
                $name(Uuid::new_v4())
            }

            /// A version-4 id made from 16 given random bytes (the version and
            /// variant bits are overwritten). For deterministic tests and
            /// simulations; real ids come from [`Self::new`].
            pub fn from_random_bytes(bytes: [u8; 16]) -> $name {
                $name(uuid::Builder::from_random_bytes(bytes).into_uuid())
            }

            /// Parses the canonical hyphenated form (any letter case).
            pub fn parse(input: &str) -> Result<$name, UidError> {
                parse_v4(input).map($name)
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = UidError;

            fn from_str(s: &str) -> Result<$name, UidError> {
                $name::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // `hyphenated()` is lowercase, the one canonical spelling.
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut buf = Uuid::encode_buffer();
                s.serialize_str(self.0.hyphenated().encode_lower(&mut buf))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                d.deserialize_str(V4Visitor).map($name)
            }
        }
    };
}

v4_newtype!(
    /// The identity of a model (a node of a list) or of a view.
    Uid
);

v4_newtype!(
    /// The identity of one replica: one browser tab's copy of a list. Every op
    /// carries it together with a per-client sequence number, which is what makes a
    /// resent op recognisable to the server.
    ClientId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_is_v4_and_round_trips() {
        let uid = Uid::new();
        assert_eq!(uid.as_uuid().get_version_num(), 4);
        let text = uid.to_string();
        assert_eq!(text, text.to_lowercase());
        assert_eq!(Uid::parse(&text), Ok(uid));
        assert_eq!(text.parse::<Uid>(), Ok(uid));
    }

    #[test]
    fn parse_is_case_insensitive() {
        let uid = Uid::new();
        assert_eq!(Uid::parse(&uid.to_string().to_uppercase()), Ok(uid));
    }

    #[test]
    fn parse_rejects_other_forms_and_versions() {
        let uid = Uid::new();
        let simple = uid.as_uuid().simple().to_string();
        let braced = format!("{{{uid}}}");
        let urn = format!("urn:uuid:{uid}");
        let bad = [
            "",
            "not a uuid",
            simple.as_str(),
            braced.as_str(),
            urn.as_str(),
            "00000000-0000-0000-0000-000000000000",
            // version 1
            "6f1c2a3e-0d4b-11ef-9a6b-0242ac120002",
            // version 4 but NCS variant
            "6f1c2a3e-0d4b-4aef-1a6b-0242ac120002",
            "6f1c2a3e-0d4b-4aef-9a6b-0242ac12000g",
            "6f1c2a3e+0d4b-4aef-9a6b-0242ac120002",
            "6f1c2a3é-0d4b-4aef-9a6b-0242ac12000",
        ];
        for input in bad {
            let err = Uid::parse(input).unwrap_err();
            assert!(err
                .to_string()
                .contains(&input.chars().take(64).collect::<String>()));
        }
        assert!(Uid::parse("6f1c2a3e-0d4b-4aef-9a6b-0242ac120002").is_ok());
    }

    #[test]
    fn serde_is_the_string() {
        let id = ClientId::new();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<ClientId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<ClientId>("\"nope\"").is_err());
        assert!(serde_json::from_str::<ClientId>("42").is_err());
    }

    #[test]
    fn from_random_bytes_is_deterministic_v4() {
        let a = Uid::from_random_bytes([7; 16]);
        assert_eq!(a, Uid::from_random_bytes([7; 16]));
        assert_eq!(Uid::parse(&a.to_string()), Ok(a));
    }
}
