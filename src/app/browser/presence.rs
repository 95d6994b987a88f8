//! This tab's presence on the live socket: its display name (kept in localStorage,
//! "Guest 1234" until changed), said after `subscribed`, again whenever the name or
//! the item being edited changes, and every [`REPEAT_MS`] so the server keeps it;
//! and the others, as the server's `presence` sets say, without this socket's own
//! entry.

use gloo_storage::{LocalStorage, Storage};
use leptos::prelude::{GetUntracked, Set};

use super::{transport, with_handles};
use crate::{
    app::sync_client::SyncClient,
    model::{
        presence::{Peer, REPEAT_MS},
        wire::ClientMessage,
        Uid,
    },
};

/// Where this browser keeps its display name.
const NAME_KEY: &str = "tether.presence.name";

/// Reads this browser's name (making and keeping a guest name the first time).
pub fn load_name(client: &SyncClient) {
    let name = LocalStorage::get::<String>(NAME_KEY).unwrap_or_else(|_| {
        let guest = format!("Guest {}", 1000 + (js_sys::Math::random() * 9000.0) as u32);
        let _ = LocalStorage::set(NAME_KEY, &guest);
        guest
    });
    client.presence().name.set(name);
}

/// Keeps a new name and tells the list.
pub fn rename(client: &SyncClient, name: String) {
    let _ = LocalStorage::set(NAME_KEY, &name);
    client.presence().name.set(name);
    say(client);
}

/// Says this tab's presence on the socket, if it is subscribed.
pub fn say(client: &SyncClient) {
    if !client
        .session()
        .socket_open
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        return;
    }
    if let Some(presence) = client.presence().presence() {
        transport::send(client, &ClientMessage::Presence(presence));
    }
}

/// Repeats it so the server keeps it (see [`REPEAT_MS`]).
pub fn keep_saying(client: &SyncClient) {
    let client = client.clone();
    super::every(REPEAT_MS as i32, move || say(&client));
}

/// The socket subscribed as `me`: say who this tab is.
pub fn subscribed(client: &SyncClient, me: Uid) {
    with_handles(client.list(), |h| h.me = Some(me));
    say(client);
}

/// The list's presence set: everyone but this socket.
pub fn heard(client: &SyncClient, peers: Vec<Peer>) {
    let me = with_handles(client.list(), |h| h.me);
    let others: Vec<Peer> = peers.into_iter().filter(|p| Some(p.id) != me).collect();
    if client.presence().others.get_untracked() != others {
        client.presence().others.set(others);
    }
}

/// The socket closed: nobody is known to be here until it is back.
pub fn lost(client: &SyncClient) {
    with_handles(client.list(), |h| h.me = None);
    client.presence().others.set(Vec::new());
}
