//! Talking to the server from the browser: flushing the outbox through the push
//! server function, following the list over the live WebSocket, and catching up with
//! the pull server function when told to re-pull.
//!
//! Failures are retried with exponential backoff and full jitter (so a thousand tabs
//! dropped at once do not come back at once), with no user action; the status badge
//! shows the wait. A push the server refuses for good (a typed 4xx) is dropped from
//! the outbox, reported, and the list is reloaded from the server so this replica
//! does not keep a change nobody else will ever see.

use std::sync::atomic::Ordering;

use leptos::{prelude::Set, task::spawn_local};
use wasm_bindgen::{prelude::Closure, JsCast};
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use super::{with_handles, Session};
use crate::{
    app::{api, sync_client::SyncClient},
    model::{
        wire::{Change, ClientMessage, ServerMessage, SyncError},
        Uid,
    },
};

/// Ops pushed in one request at most.
const MAX_BATCH: usize = 200;
/// Attempts for a push refused because a node or parent is not on the server yet
/// (another tab's create not pushed yet) before it counts as refused for good.
const MISSING_NODE_ATTEMPTS: u32 = 8;
/// The client pings the server this often over the live socket.
const PING_MS: u64 = 15_000;
/// A socket that has said nothing for this long is considered dead.
const SILENT_MS: u64 = 40_000;

/// A push that has not answered in this long is given up on and retried (the server
/// may still commit it; the retry is then acknowledged without applying it twice).
const PUSH_TIMEOUT_MS: u64 = 5_000;

/// Runs a server call, turning "no answer in time" into `unavailable`.
async fn with_timeout<T>(
    ms: u64,
    call: impl std::future::Future<Output = Result<T, SyncError>>,
) -> Result<T, SyncError> {
    use futures::future::{select, Either};
    let call = std::pin::pin!(call);
    let timer = std::pin::pin!(sleep(ms));
    match select(call, timer).await {
        Either::Left((result, _)) => result,
        Either::Right(_) => Err(SyncError::Unavailable {
            detail: format!("no answer from the server in {ms} ms"),
        }),
    }
}

/// Delay before attempt `attempt` (0-based): [`crate::model::backoff`]'s formula
/// with `Math.random()`.
pub fn backoff_ms(attempt: u32) -> u64 {
    crate::model::backoff::backoff_ms(attempt, js_sys::Math::random())
}

pub fn browser_online() -> bool {
    web_sys::window().is_none_or(|w| w.navigator().on_line())
}

/// Sleeps `ms` milliseconds without blocking the page.
pub async fn sleep(ms: u64) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
                &resolve,
                ms.min(i32::MAX as u64) as i32,
            );
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// Pushes the outbox unless a flush is already running (which then goes again).
pub fn schedule_flush(client: &SyncClient) {
    let session = &client.session();
    if !browser_online() {
        return;
    }
    if session.flushing.swap(true, Ordering::SeqCst) {
        session.flush_again.store(true, Ordering::SeqCst);
        return;
    }
    let client = client.clone();
    spawn_local(async move { flush(client).await });
}

async fn flush(client: SyncClient) {
    let session = client.session();
    loop {
        session.flush_again.store(false, Ordering::SeqCst);
        while let Some((owner, ops)) = client.next_batch(MAX_BATCH) {
            super::refresh_connection(&client);
            let values = ops
                .iter()
                .filter_map(|op| serde_json::to_value(op).ok())
                .collect();
            let push = api::push(client.list().to_string(), owner.to_string(), values);
            match with_timeout(PUSH_TIMEOUT_MS, push).await {
                Ok(ack) => {
                    session.push_failures.store(0, Ordering::SeqCst);
                    session.server_trouble.store(false, Ordering::SeqCst);
                    session.retry_at_ms.store(0, Ordering::SeqCst);
                    client.update_replica(|r| r.ack(owner, ack.acked_seq));
                    super::persist_outbox(&client, owner);
                }
                Err(error)
                    if retryable(&error)
                        || (waits_for_other_writer(&error)
                            && session.push_failures.load(Ordering::SeqCst)
                                < MISSING_NODE_ATTEMPTS) =>
                {
                    let attempt = session.push_failures.fetch_add(1, Ordering::SeqCst);
                    let wait = match error {
                        SyncError::RateLimited { retry_after_ms } => retry_after_ms.max(100),
                        _ => backoff_ms(attempt),
                    };
                    session
                        .server_trouble
                        .store(server_trouble(&error), Ordering::SeqCst);
                    session
                        .retry_at_ms
                        .store(super::now() + wait, Ordering::SeqCst);
                    super::refresh_connection(&client);
                    session.flushing.store(false, Ordering::SeqCst);
                    let again = client.clone();
                    spawn_local(async move {
                        sleep(wait).await;
                        schedule_flush(&again);
                    });
                    return;
                }
                Err(error) => {
                    // Refused for good: drop the batch, say so, reload from the server.
                    let last = ops.iter().map(|op| op.seq).max().unwrap_or(0);
                    client.update_replica(|r| r.ack(owner, last));
                    super::persist_outbox(&client, owner);
                    client
                        .status()
                        .problem
                        .set(Some(format!("The server refused a change: {error}")));
                    resync_from_scratch(&client);
                }
            }
        }
        if !session.flush_again.load(Ordering::SeqCst) {
            break;
        }
    }
    session.flushing.store(false, Ordering::SeqCst);
    super::refresh_connection(&client);
}

/// Whether a failed push reached a server that answered badly (a 5xx, a timeout,
/// a refusal to take more) — shown as "retrying" — rather than no server at all
/// ("offline": the fetch itself failed).
fn server_trouble(error: &SyncError) -> bool {
    match error {
        SyncError::Unavailable { detail } => browser_online() && !detail.contains("fetch"),
        _ => true,
    }
}

/// A node or parent the server does not have yet: usually another tab's create that
/// is still on its way, so worth waiting for.
fn waits_for_other_writer(error: &SyncError) -> bool {
    matches!(
        error,
        SyncError::NodeNotFound { .. } | SyncError::ParentNotFound { .. }
    )
}

fn retryable(error: &SyncError) -> bool {
    matches!(
        error,
        SyncError::Unavailable { .. }
            | SyncError::Internal
            | SyncError::RateLimited { .. }
            | SyncError::TooManySubscribers { .. }
    )
}

/// Throws away the replica's server state and reloads it (keeping pending ops).
fn resync_from_scratch(client: &SyncClient) {
    client.update_replica(|r| r.reset_server_state());
    let client = client.clone();
    spawn_local(async move {
        let _ = catch_up(&client).await;
    });
}

/// Pulls every page after the replica's cursor.
pub async fn catch_up(client: &SyncClient) -> Result<(), SyncError> {
    loop {
        let after = client.with_replica(|r| r.cursor().version);
        let page = api::pull(client.list().to_string(), after, None).await?;
        client.apply_remote(&page.changes, page.server_time_ms);
        super::schedule_save(client);
        if !page.more {
            client.mark_synced();
            return Ok(());
        }
    }
}

/// The live socket's address on this page's host.
fn live_url() -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    Some(format!("{scheme}://{}/api/live", location.host().ok()?))
}

/// Opens the live socket (if the browser is online and none is open).
pub fn connect(client: &SyncClient) {
    let session = client.session();
    if !browser_online() {
        super::refresh_connection(client);
        return;
    }
    if session.socket_wanted.swap(true, Ordering::SeqCst) {
        return; // already open or opening
    }
    let Some(url) = live_url() else { return };
    let Ok(ws) = WebSocket::new(&url) else {
        session.socket_wanted.store(false, Ordering::SeqCst);
        reconnect_later(client);
        return;
    };
    let list = client.list();

    let on_open = {
        let client = client.clone();
        Closure::<dyn FnMut()>::new(move || {
            let after = client.with_replica(|r| r.cursor().version);
            let me = client.with_replica(|r| r.client());
            send(
                &client,
                &ClientMessage::Subscribe {
                    list: client.list(),
                    after,
                    client: Some(me),
                },
            );
            client.session().catching_up.store(true, Ordering::SeqCst);
            super::refresh_connection(&client);
        })
    };
    let on_message = {
        let client = client.clone();
        Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let session = client.session();
            session.last_heard_ms.store(super::now(), Ordering::SeqCst);
            let Some(text) = event.data().as_string() else {
                return;
            };
            match serde_json::from_str::<ServerMessage>(&text) {
                Ok(message) => on_server_message(&client, message),
                Err(e) => leptos::logging::warn!("tether: unreadable live message: {e}"),
            }
        })
    };
    let on_close = {
        let client = client.clone();
        Closure::<dyn FnMut(CloseEvent)>::new(move |_event: CloseEvent| {
            let session = client.session();
            session.socket_open.store(false, Ordering::SeqCst);
            session.socket_wanted.store(false, Ordering::SeqCst);
            with_handles(client.list(), |h| h.socket = None);
            super::refresh_connection(&client);
            if !session.stopping.load(Ordering::SeqCst) {
                reconnect_later(&client);
            }
        })
    };
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    with_handles(list, move |h| {
        h.socket = Some(super::SocketHandles {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
            incoming: Vec::new(),
        });
    });
}

/// Changes applied (and rendered) together at most, from a run of `changes`
/// messages.
const APPLY_AT_ONCE: usize = 1_000;

/// Gathers the messages of a run (a catch-up, a large commit: `more: true` on all
/// but the last) so they are applied together, [`APPLY_AT_ONCE`] at a time. The
/// server sends runs in messages of at most 16 KiB, about 30 changes, and applying
/// and rendering each alone made a 10,000-change catch-up three times slower
/// (docs/BENCHMARKS.md). Gathered changes live with their socket: if it closes
/// first they are dropped unapplied, the cursor has not moved past them, and the
/// server sends them again on the next subscribe.
fn gather(list: Uid, changes: Vec<Change>, more: bool) -> Option<Vec<Change>> {
    with_handles(list, |h| match h.socket.as_mut() {
        Some(socket) => {
            socket.incoming.extend(changes);
            (!more || socket.incoming.len() >= APPLY_AT_ONCE)
                .then(|| std::mem::take(&mut socket.incoming))
        }
        None => Some(changes),
    })
}

fn on_server_message(client: &SyncClient, message: ServerMessage) {
    let session = client.session();
    match message {
        ServerMessage::Changes { changes, more, .. } => {
            let Some(changes) = gather(client.list(), changes, more) else {
                return;
            };
            client.apply_remote(&changes, super::now());
            super::schedule_save(client);
            if !more && session.socket_open.load(Ordering::SeqCst) {
                client.mark_synced();
            }
        }
        ServerMessage::Subscribed { .. } => {
            session.socket_open.store(true, Ordering::SeqCst);
            session.catching_up.store(false, Ordering::SeqCst);
            session.socket_failures.store(0, Ordering::SeqCst);
            client.mark_synced();
            super::refresh_connection(client);
            schedule_flush(client);
        }
        ServerMessage::Resync { .. } => {
            // The server closes this socket; catch up by pulling, then follow again.
            let client = client.clone();
            spawn_local(async move {
                let _ = catch_up(&client).await;
            });
        }
        ServerMessage::Ping { nonce } => send(client, &ClientMessage::Pong { nonce }),
        ServerMessage::Pong { .. } => {}
        ServerMessage::Error { error } => {
            if !retryable(&error) {
                client
                    .status()
                    .problem
                    .set(Some(format!("Live updates refused: {error}")));
            }
        }
    }
}

fn send(client: &SyncClient, message: &ClientMessage) {
    let Ok(json) = serde_json::to_string(message) else {
        return;
    };
    with_handles(client.list(), |h| {
        if let Some(socket) = &h.socket {
            let _ = socket.ws.send_with_str(&json);
        }
    });
}

/// Closes the live socket on purpose (going offline); it is not retried.
pub fn disconnect(client: &SyncClient) {
    with_handles(client.list(), |h| {
        if let Some(socket) = h.socket.take() {
            socket.ws.set_onclose(None);
            let _ = socket.ws.close();
        }
    });
    let session = client.session();
    session.socket_open.store(false, Ordering::SeqCst);
    session.socket_wanted.store(false, Ordering::SeqCst);
    super::refresh_connection(client);
}

fn reconnect_later(client: &SyncClient) {
    let session = client.session();
    let attempt = session.socket_failures.fetch_add(1, Ordering::SeqCst);
    let wait = backoff_ms(attempt);
    session
        .retry_at_ms
        .store(super::now() + wait, Ordering::SeqCst);
    super::refresh_connection(client);
    let client = client.clone();
    spawn_local(async move {
        sleep(wait).await;
        connect(&client);
    });
}

/// Pings over the live socket and drops it if the server has gone silent.
pub fn heartbeat(client: &SyncClient) {
    let session: &Session = client.session();
    if !session.socket_open.load(Ordering::SeqCst) {
        return;
    }
    let silent = super::now().saturating_sub(session.last_heard_ms.load(Ordering::SeqCst));
    if silent > SILENT_MS {
        // Dead peer: close; the close handler reconnects.
        with_handles(client.list(), |h| {
            if let Some(socket) = &h.socket {
                let _ = socket.ws.close();
            }
        });
    } else if silent > PING_MS {
        send(
            client,
            &ClientMessage::Ping {
                nonce: super::now(),
            },
        );
    }
}
