//! The browser half of a list's sync: started after hydration, never on the server.
//!
//! [`start`] loads the localStorage mirror into the replica, adopts outboxes left by
//! tabs that are gone, joins the other tabs of this list, opens the live socket and
//! flushes the outbox; it also watches the browser's online/offline events and keeps
//! a heartbeat so other tabs know this one is alive.
//!
//! * [`mirror`] — localStorage keys, load and save;
//! * [`tabs`] — other tabs of the same list (BroadcastChannel);
//! * [`presence`] — this tab's name and what it edits, said on the live socket;
//! * `save` — saving the local copy when the page is idle, twice a second at most;
//! * [`transport`] — push, pull and the live socket, with backoff;
//! * [`service_worker`] — registers the worker that keeps the offline shell.
//!
//! Browser objects (sockets, channels, JS closures) are not `Send`, so they live in a
//! thread-local table keyed by list; the [`Session`] inside the client holds only
//! plain flags and counters.

pub mod mirror;
pub mod presence;
mod save;
pub mod service_worker;
pub mod tabs;
pub mod transport;

use std::{
    cell::RefCell,
    collections::HashMap,
    sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
};

use wasm_bindgen::{prelude::Closure, JsCast};
use web_sys::{BroadcastChannel, MessageEvent, WebSocket};

use super::rows::Counts;
use super::sync_client::{Connection, SyncClient};
use crate::model::{ClientId, Op, Uid};
use save::save_now;
pub(crate) use save::schedule_save;

/// Flags and counters of one list's browser session.
#[derive(Default)]
pub struct Session {
    started: AtomicBool,
    pub(crate) stopping: AtomicBool,
    pub(crate) flushing: AtomicBool,
    pub(crate) flush_again: AtomicBool,
    pub(crate) push_failures: AtomicU32,
    pub(crate) socket_failures: AtomicU32,
    pub(crate) socket_wanted: AtomicBool,
    pub(crate) socket_open: AtomicBool,
    pub(crate) catching_up: AtomicBool,
    /// Catch-ups by pulling started so far; a running one stops when a newer starts.
    pub(crate) catch_ups: AtomicU32,
    pub(crate) last_heard_ms: AtomicU64,
    /// When the next retry (push or socket) is due, 0 if none is waiting.
    pub(crate) retry_at_ms: AtomicU64,
    /// The last push failed with an answer (5xx, timeout) rather than no connection.
    pub(crate) server_trouble: AtomicBool,
    save_scheduled: AtomicBool,
    /// When the local copy was last saved (0: not yet).
    last_saved_ms: AtomicU64,
}

pub(crate) struct SocketHandles {
    pub ws: WebSocket,
    pub _on_open: Closure<dyn FnMut()>,
    pub _on_message: Closure<dyn FnMut(MessageEvent)>,
    pub _on_close: Closure<dyn FnMut(web_sys::CloseEvent)>,
    /// Changes of a run of messages not applied yet (see `transport::gather`).
    pub incoming: Vec<crate::model::wire::Change>,
}

pub(crate) struct ChannelHandles {
    pub channel: BroadcastChannel,
    pub _on_message: Closure<dyn FnMut(MessageEvent)>,
}

/// The browser objects of one list.
#[derive(Default)]
pub(crate) struct Handles {
    pub socket: Option<SocketHandles>,
    pub channel: Option<ChannelHandles>,
    /// Live changes held back while a catch-up pulls (`Some` while it runs); see
    /// `transport::start_catch_up`.
    pub held: Option<Vec<crate::model::wire::Change>>,
    /// This socket's id in the list's presence, while subscribed.
    pub me: Option<Uid>,
}

thread_local! {
    static HANDLES: RefCell<HashMap<Uid, Handles>> = RefCell::new(HashMap::new());
    /// This tab's identity: new on every page load, so two tabs never share seqs.
    static TAB: ClientId = ClientId::new();
}

pub(crate) fn with_handles<R>(list: Uid, f: impl FnOnce(&mut Handles) -> R) -> R {
    HANDLES.with(|h| f(h.borrow_mut().entry(list).or_default()))
}

/// This tab's client id.
pub fn tab_client() -> ClientId {
    TAB.with(|t| *t)
}

pub(crate) fn now() -> u64 {
    js_sys::Date::now() as u64
}

/// Starts the browser session of `client` (once): what this browser already has,
/// then the other tabs and the server, then timers and browser events.
pub fn start(client: &SyncClient) {
    if client.session().started.swap(true, Ordering::SeqCst) {
        return;
    }
    let me = tab_client();
    tabs::hold_life_lock(me);
    load_local(client, me);
    transport::measure_server_clock(client);
    tabs::join(client);
    transport::connect(client);
    transport::schedule_flush(client);
    schedule_save(client);
    keep_time(client, me);
    follow_browser(client, me);
    presence::load_name(client);
    presence::keep_saying(client);
}

/// Merges the mirrored replica, then the outboxes of tabs that are gone (their ops
/// are applied here and pushed under their own ids).
fn load_local(client: &SyncClient, me: ClientId) {
    match mirror::load_state(client.list()) {
        Ok(Some(stored)) => {
            client.update_replica(|r| r.merge_replica(&stored));
        }
        Ok(None) => {}
        Err(e) => report(client, &e),
    }
    adopt_orphans(client, me);
    mirror::heartbeat(me, now());
}

/// This tab's heartbeat, the socket's, the badge's state, and adopting orphans.
fn keep_time(client: &SyncClient, me: ClientId) {
    every(2_000, {
        let client = client.clone();
        move || {
            mirror::heartbeat(me, now());
            transport::heartbeat(&client);
            refresh_connection(&client);
        }
    });
    every(10_000, {
        let client = client.clone();
        move || adopt_orphans(&client, me)
    });
}

/// The browser going online or offline, and the page being hidden or shown again.
fn follow_browser(client: &SyncClient, me: ClientId) {
    on_window_event("online", {
        let client = client.clone();
        move || {
            client.session().retry_at_ms.store(0, Ordering::SeqCst);
            transport::connect(&client);
            transport::schedule_flush(&client);
        }
    });
    on_window_event("offline", {
        let client = client.clone();
        move || transport::disconnect(&client)
    });
    on_window_event("pagehide", {
        let client = client.clone();
        move || {
            client.session().stopping.store(true, Ordering::SeqCst);
            save_now(&client);
            mirror::forget_alive(me);
        }
    });
    on_window_event("pageshow", {
        let client = client.clone();
        move || {
            client.session().stopping.store(false, Ordering::SeqCst);
            mirror::heartbeat(me, now());
        }
    });
}

/// After local writes: save their writers' outboxes now, tell the other tabs, push.
pub fn after_local_writes(client: &SyncClient, ops: &[Op]) {
    let mut owners: Vec<ClientId> = Vec::new();
    for op in ops {
        if !owners.contains(&op.client) {
            owners.push(op.client);
        }
    }
    for owner in owners {
        persist_outbox(client, owner);
    }
    for op in ops {
        tabs::announce(client, op);
    }
    schedule_save(client);
    transport::schedule_flush(client);
    refresh_connection(client);
}

/// Saves what is pending for `owner` (this tab, or an adopted one).
pub(crate) fn persist_outbox(client: &SyncClient, owner: ClientId) {
    let ops: Vec<Op> = client.with_replica(|r| {
        r.outbox()
            .iter()
            .filter(|op| op.client == owner)
            .cloned()
            .collect()
    });
    if let Err(e) = mirror::save_outbox(client.list(), owner, &ops) {
        report(client, &e);
    }
}

/// Adopts the outboxes of this list's tabs that are gone (a few milliseconds after
/// the call: asking the browser which tabs live is asynchronous).
fn adopt_orphans(client: &SyncClient, me: ClientId) {
    let client = client.clone();
    leptos::task::spawn_local(async move {
        let live = tabs::live_tabs().await;
        let alive = |tab: ClientId| match &live {
            Some(live) => live.contains(&tab),
            None => mirror::is_alive(tab, now()),
        };
        let orphans = mirror::orphan_outboxes(client.list(), me, alive);
        if orphans.is_empty() {
            return;
        }
        for (_, ops) in orphans {
            client.update_replica(|r| r.adopt_outbox(ops));
        }
        schedule_save(&client);
        transport::schedule_flush(&client);
        refresh_connection(&client);
    });
}

/// What "your lists" shows of this list.
pub fn summary(client: &SyncClient) -> mirror::ListSummary {
    let list = client.list();
    let title = client
        .get::<crate::model::kinds::List>(list)
        .map(|l| l.title)
        .unwrap_or_default();
    let open = Counts::of(&client.rows(list).get_untracked()).remaining();
    mirror::ListSummary {
        uid: list,
        title,
        open,
        opened_ms: now(),
    }
}

fn report(client: &SyncClient, error: &mirror::MirrorError) {
    leptos::logging::warn!("tether: {error}");
    client.status().problem.set(Some(error.to_string()));
}

/// Recomputes the badge's connection state from the session's flags.
pub(crate) fn refresh_connection(client: &SyncClient) {
    let session = client.session();
    let retry_at = session.retry_at_ms.load(Ordering::SeqCst);
    let retry_in_ms = retry_at.saturating_sub(now());
    let state = if !transport::browser_online() {
        Connection::Offline { retry_in_ms: 0 }
    } else if retry_in_ms > 0 && session.server_trouble.load(Ordering::SeqCst) {
        Connection::Retrying { retry_in_ms }
    } else if retry_in_ms > 0 || !session.socket_wanted.load(Ordering::SeqCst) {
        Connection::Offline { retry_in_ms }
    } else if !session.socket_open.load(Ordering::SeqCst) // still connecting
        || session.catching_up.load(Ordering::SeqCst)
        || transport::holding(client.list())
        || session.flushing.load(Ordering::SeqCst)
        || client.with_replica(|r| r.pending()) > 0
    {
        Connection::Syncing
    } else {
        Connection::Online
    };
    let signal = &client.status().connection;
    if signal.get_untracked() != state {
        signal.set(state);
    }
}

pub(crate) fn every(ms: i32, f: impl FnMut() + 'static) {
    let callback = Closure::<dyn FnMut()>::new(f);
    if let Some(window) = web_sys::window() {
        let _ = window.set_interval_with_callback_and_timeout_and_arguments_0(
            callback.as_ref().unchecked_ref(),
            ms,
        );
    }
    // Lives as long as the page.
    callback.forget();
}

fn on_window_event(name: &str, mut f: impl FnMut() + 'static) {
    let callback = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| f());
    if let Some(window) = web_sys::window() {
        let _ = window.add_event_listener_with_callback(name, callback.as_ref().unchecked_ref());
    }
    callback.forget();
}

use leptos::prelude::{GetUntracked, Set};
