//! The localStorage mirror of a list: its replica, each tab's outbox, and the lists
//! this browser knows.
//!
//! Keys (all under `tether:`):
//! * `tether:state:<list>` — the replica (nodes and cursor) as
//!   [`Replica::to_json`] writes it (snapshot version 2, the compact layout;
//!   version 1, written by older builds, is still read), saved by whichever tab made
//!   or received a change, when the page is idle, twice a second at most, and when
//!   the page is hidden (`super::save`);
//! * `tether:outbox:<list>:<client>` — the ops one tab wrote and the server has not
//!   acknowledged yet, saved synchronously on every write, so closing the tab loses
//!   nothing; a tab that finds another tab's outbox with no live owner adopts it;
//! * `tether:alive:<client>` — a tab's heartbeat, so others can tell it is gone
//!   where the browser has no Web Locks (see `tabs::live_tabs`);
//! * `tether:lists` — "your lists": each list's title and open count, for the home
//!   page; a list in it counts as seen on this device (it opens offline).
//!
//! Pending writes come first: if an outbox cannot be saved for lack of room, the
//! cached copy of its list (which the server also has) is dropped to make room.
//!
//! Every failure is a [`MirrorError`] the UI can show: storage full (quota
//! exceeded), or a stored value that cannot be read (foreign or older format).

use gloo_storage::{LocalStorage, Storage};
use serde::{Deserialize, Serialize};

use crate::model::{ClientId, Op, Replica, Uid};

/// How long a tab's heartbeat stays fresh; a tab silent for longer is gone.
pub const ALIVE_MS: u64 = 15_000;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MirrorError {
    #[error(
        "this browser's storage is full; changes are kept in memory and still sent to the server"
    )]
    Full,
    #[error("the local copy of this list could not be read ({detail}); it was set aside and the list reloaded from the server")]
    Unreadable { key: String, detail: String },
    #[error("this browser's storage is unavailable: {0}")]
    Unavailable(String),
}

/// What the home page shows of a list this browser has opened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListSummary {
    pub uid: Uid,
    pub title: String,
    pub open: usize,
    pub opened_ms: u64,
}

pub fn state_key(list: Uid) -> String {
    format!("tether:state:{list}")
}

fn outbox_prefix(list: Uid) -> String {
    format!("tether:outbox:{list}:")
}

pub fn outbox_key(list: Uid, client: ClientId) -> String {
    format!("{}{client}", outbox_prefix(list))
}

fn alive_key(client: ClientId) -> String {
    format!("tether:alive:{client}")
}

const LISTS_KEY: &str = "tether:lists";

fn set_raw(key: &str, value: &str) -> Result<(), MirrorError> {
    let storage = LocalStorage::raw();
    storage.set_item(key, value).map_err(|e| {
        let name = js_sys::Reflect::get(&e, &"name".into())
            .ok()
            .and_then(|n| n.as_string())
            .unwrap_or_default();
        if name.contains("Quota") {
            MirrorError::Full
        } else {
            MirrorError::Unavailable(name)
        }
    })
}

fn get_raw(key: &str) -> Option<String> {
    LocalStorage::raw().get_item(key).ok().flatten()
}

/// Saves the whole replica of a list.
pub fn save_state(replica: &Replica) -> Result<(), MirrorError> {
    set_raw(&state_key(replica.list()), &replica.to_json())
}

/// Loads the stored replica of `list`, without its outbox (outboxes live in their
/// own keys). An unreadable value is removed, so the next save starts clean.
pub fn load_state(list: Uid) -> Result<Option<Replica>, MirrorError> {
    let key = state_key(list);
    let Some(text) = get_raw(&key) else {
        return Ok(None);
    };
    match Replica::from_json(&text) {
        Ok(mut replica) if replica.list() == list => {
            let owners: Vec<ClientId> = replica.outbox().iter().map(|op| op.client).collect();
            for owner in owners {
                replica.ack(owner, u64::MAX);
            }
            Ok(Some(replica))
        }
        Ok(_) => {
            LocalStorage::delete(&key);
            Err(MirrorError::Unreadable {
                key,
                detail: "it belongs to another list".into(),
            })
        }
        Err(e) => {
            LocalStorage::delete(&key);
            Err(MirrorError::Unreadable {
                key,
                detail: e.to_string(),
            })
        }
    }
}

/// Saves the pending ops of one tab (removes the key when there are none). With
/// storage full, the list's cached copy makes room for them.
pub fn save_outbox(list: Uid, owner: ClientId, ops: &[Op]) -> Result<(), MirrorError> {
    let key = outbox_key(list, owner);
    if ops.is_empty() {
        LocalStorage::delete(&key);
        return Ok(());
    }
    let json = serde_json::to_string(ops).map_err(|e| MirrorError::Unavailable(e.to_string()))?;
    match set_raw(&key, &json) {
        Err(MirrorError::Full) if get_raw(&state_key(list)).is_some() => {
            LocalStorage::delete(state_key(list));
            set_raw(&key, &json)
        }
        saved => saved,
    }
}

/// The stored outboxes of `list` by owner (unreadable ones are removed: nothing
/// can be recovered from them).
fn outboxes(list: Uid) -> Vec<(ClientId, Vec<Op>)> {
    let prefix = outbox_prefix(list);
    let mut found = Vec::new();
    for key in keys_starting(&prefix) {
        let owner = ClientId::parse(&key[prefix.len()..]).ok();
        let ops = get_raw(&key).and_then(|t| serde_json::from_str::<Vec<Op>>(&t).ok());
        match (owner, ops) {
            (Some(owner), Some(ops)) => found.push((owner, ops)),
            _ => LocalStorage::delete(&key),
        }
    }
    found
}

fn keys_starting(prefix: &str) -> Vec<String> {
    let storage = LocalStorage::raw();
    let len = storage.length().unwrap_or(0);
    (0..len)
        .filter_map(|i| storage.key(i).ok().flatten())
        .filter(|k| k.starts_with(prefix))
        .collect()
}

/// Every stored outbox of `list` whose owner is not `me` and not `alive`.
pub fn orphan_outboxes(
    list: Uid,
    me: ClientId,
    alive: impl Fn(ClientId) -> bool,
) -> Vec<(ClientId, Vec<Op>)> {
    outboxes(list)
        .into_iter()
        .filter(|(owner, _)| *owner != me && !alive(*owner))
        .collect()
}

/// Writes to `list` made in this browser and not yet acknowledged, in all its tabs.
pub fn pending_count(list: Uid) -> usize {
    outboxes(list).iter().map(|(_, ops)| ops.len()).sum()
}

/// Whether this browser has list `list`: in "your lists", or a copy or writes of it.
pub fn has_local_copy(list: Uid) -> bool {
    known_lists().iter().any(|l| l.uid == list)
        || get_raw(&state_key(list)).is_some()
        || !keys_starting(&outbox_prefix(list)).is_empty()
}

/// Records that tab `client` is alive now.
pub fn heartbeat(client: ClientId, now_ms: u64) {
    let _ = set_raw(&alive_key(client), &now_ms.to_string());
}

/// Says tab `client` is gone (on page hide), so its outbox can be adopted at once.
pub fn forget_alive(client: ClientId) {
    LocalStorage::delete(alive_key(client));
}

/// Whether tab `client` has beaten its heartbeat within [`ALIVE_MS`].
pub fn is_alive(client: ClientId, now_ms: u64) -> bool {
    get_raw(&alive_key(client))
        .and_then(|t| t.parse::<u64>().ok())
        .is_some_and(|at| now_ms.saturating_sub(at) < ALIVE_MS)
}

/// The lists this browser has opened, most recent first.
pub fn known_lists() -> Vec<ListSummary> {
    let mut lists: Vec<ListSummary> = LocalStorage::get(LISTS_KEY).unwrap_or_default();
    lists.sort_by_key(|l| std::cmp::Reverse(l.opened_ms));
    lists
}

/// Adds or updates a list in "your lists".
pub fn remember_list(summary: ListSummary) -> Result<(), MirrorError> {
    let mut lists: Vec<ListSummary> = LocalStorage::get(LISTS_KEY).unwrap_or_default();
    match lists.iter_mut().find(|l| l.uid == summary.uid) {
        Some(existing) if *existing == summary => return Ok(()),
        Some(existing) => *existing = summary,
        None => lists.push(summary),
    }
    let json =
        serde_json::to_string(&lists).map_err(|e| MirrorError::Unavailable(e.to_string()))?;
    set_raw(LISTS_KEY, &json)
}

/// Removes a list from "your lists" with its local copy and its unsent writes (the
/// home page asks first when there are any).
pub fn forget_list(list: Uid) {
    let mut lists: Vec<ListSummary> = LocalStorage::get(LISTS_KEY).unwrap_or_default();
    lists.retain(|l| l.uid != list);
    if let Ok(json) = serde_json::to_string(&lists) {
        let _ = set_raw(LISTS_KEY, &json);
    }
    LocalStorage::delete(state_key(list));
    for key in keys_starting(&outbox_prefix(list)) {
        LocalStorage::delete(key);
    }
}
