//! Presence: who has a list open right now, and which item each of them is editing.
//!
//! Presence is ephemeral. A client following a list says who it is over its live
//! socket ([`Presence`]: a display name, a colour, the node it is editing if any);
//! the server keeps that only while the socket lives and sends every subscriber of
//! the list the whole set ([`Peer`]s, each under the id the server gave its socket)
//! whenever it changes. Nothing of it is stored or versioned. The rules for what a
//! client may say are here, once, for the server that checks them and the browser
//! that makes them.

use serde::{Deserialize, Serialize};

use super::{
    errors::SyncError,
    uid::{ClientId, Uid},
};

/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 32;
/// Peers listed in one presence message; `count` still counts them all.
pub const MAX_LISTED_PEERS: usize = 50;
/// How often a client says its presence again while nothing changes; the server
/// drops a presence not said again within 10 s.
pub const REPEAT_MS: u64 = 4_000;

/// What a client says about itself on a list's socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// Shown on its badge: 1 to [`MAX_NAME_CHARS`] characters, no control characters,
    /// not only spaces.
    pub name: String,
    /// `#rrggbb`.
    pub color: String,
    /// The node this client is editing right now, if any.
    #[serde(default)]
    pub editing: Option<Uid>,
}

/// One person on a list, as the server tells everyone following it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// The server's id for that person's socket (a client learns its own from
    /// `subscribed`, and leaves itself out).
    pub id: Uid,
    /// The client id the socket subscribed with, if it gave one: the `client` of
    /// that person's stamps, so a client can tell whose write replaced its own.
    #[serde(default)]
    pub client: Option<ClientId>,
    pub name: String,
    pub color: String,
    #[serde(default)]
    pub editing: Option<Uid>,
}

impl Presence {
    /// What a client named `name` says while editing `editing`: its colour is the
    /// name's ([`color_for`]), so every browser shows one person alike.
    pub fn of(name: String, editing: Option<Uid>) -> Presence {
        Presence {
            color: color_for(&name).to_string(),
            name,
            editing,
        }
    }

    /// Whether a server accepts it; `malformed_request` says why not.
    pub fn check(&self) -> Result<(), SyncError> {
        let refuse = |detail: String| Err(SyncError::MalformedRequest { detail });
        let chars = self.name.chars().count();
        if chars == 0 || chars > MAX_NAME_CHARS || self.name.trim().is_empty() {
            return refuse(format!(
                "presence name: 1 to {MAX_NAME_CHARS} characters, not only spaces"
            ));
        }
        if self.name.chars().any(char::is_control) {
            return refuse("presence name: no control characters".into());
        }
        if !is_color(&self.color) {
            return refuse("presence color: \"#rrggbb\"".into());
        }
        Ok(())
    }

    /// This presence as the peer `id` of `client`.
    pub fn as_peer(&self, id: Uid, client: Option<ClientId>) -> Peer {
        Peer {
            id,
            client,
            name: self.name.clone(),
            color: self.color.clone(),
            editing: self.editing,
        }
    }
}

/// `#` and six hexadecimal digits.
fn is_color(text: &str) -> bool {
    text.len() == 7 && text.starts_with('#') && text[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Initials for a badge: the first letter of the first two words ("Guest 4821" →
/// "G4", "ada" → "A").
pub fn initials(name: &str) -> String {
    name.split_whitespace()
        .take(2)
        .filter_map(|word| word.chars().next())
        .flat_map(char::to_uppercase)
        .collect()
}

/// Badge colours, dark enough for white initials.
const PALETTE: [&str; 8] = [
    "#b91c1c", "#c2410c", "#a16207", "#15803d", "#0e7490", "#1d4ed8", "#7e22ce", "#be185d",
];

/// The colour a name is shown in: the same for the same name in every browser.
pub fn color_for(name: &str) -> &'static str {
    // FNV-1a: small, stable across builds and platforms.
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    PALETTE[hash as usize % PALETTE.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presence(name: &str, color: &str) -> Presence {
        Presence {
            name: name.into(),
            color: color.into(),
            editing: None,
        }
    }

    #[test]
    fn names_and_colours_are_checked() {
        assert!(presence("Guest 4821", "#1a2B3c").check().is_ok());
        assert!(presence(&"é".repeat(MAX_NAME_CHARS), "#000000")
            .check()
            .is_ok());
        for bad in ["", "   ", "a\u{7}b", &"x".repeat(MAX_NAME_CHARS + 1)] {
            let refused = presence(bad, "#000000").check().unwrap_err();
            assert_eq!(refused.code(), "malformed_request", "{bad:?}");
        }
        for bad in ["", "#12345", "123456x", "#12345g", "#1234567", "red"] {
            assert!(presence("Ada", bad).check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_name_always_gets_the_same_valid_colour() {
        assert_eq!(color_for("Ada"), color_for("Ada"));
        assert!(presence("Ada", color_for("Ada")).check().is_ok());
        let names = ["Ada", "Bo", "Guest 1", "Guest 2", "Guest 3", "Cy"];
        let colours: std::collections::HashSet<_> = names.iter().map(|n| color_for(n)).collect();
        assert!(colours.len() > 1, "names spread over the palette");
    }

    #[test]
    fn initials_take_the_first_letters_of_two_words() {
        assert_eq!(initials("Guest 4821"), "G4");
        assert_eq!(initials("ada lovelace byron"), "AL");
        assert_eq!(initials("  émile "), "É");
        assert_eq!(initials(""), "");
    }
}
