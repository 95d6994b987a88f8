//! Talking to the server from the browser: flushing the outbox through the push
//! server function, following the list over the live WebSocket, and catching up with
//! the pull server function when told to re-pull.
//!
//! Failures are retried with exponential backoff and full jitter (so a thousand tabs
//! dropped at once do not come back at once), with no user action; the status badge
//! shows the wait. A batch the server finds too large (413) is split and its parts
//! pushed. A push the server refuses for good (another typed 4xx) is dropped from
//! the outbox, reported, and the list is reloaded from the server so this replica
//! does not keep a change nobody else will ever see; live changes are held back
//! while it reloads (see [`start_catch_up`]).

use std::sync::atomic::Ordering;

use leptos::{
    prelude::{GetUntracked, Set},
    task::spawn_local,
};
use wasm_bindgen::{prelude::Closure, JsCast};
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use super::{with_handles, Session};
use crate::{
    app::{api, sync_client::SyncClient},
    model::{
        batch::Limits,
        wire::{Change, ClientMessage, PushAck, ServerMessage, SyncError},
        ClientId, Op, Uid,
    },
};

/// Ops pushed in one request at most: the server's default limit (a server with a
/// lower one answers `too_many_ops` with its maximum, and the batch shrinks).
const MAX_BATCH: usize = Limits::DEFAULT.max_ops_per_push;
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

/// Measures the server's clock (`/api/ping`) unless an answer has already: a list
/// opened by moving inside the app has no seed from the server to measure it from.
pub fn measure_server_clock(client: &SyncClient) {
    if client.status().server_offset_ms.get_untracked().is_some() {
        return;
    }
    let client = client.clone();
    spawn_local(async move {
        if let Ok(info) = api::ping().await {
            client.note_server_time(info.server_time_ms);
        }
    });
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
    // Halved each time the server finds a batch too large, for this flush.
    let mut limit = MAX_BATCH;
    let mut acked = Acked::default();
    loop {
        session.flush_again.store(false, Ordering::SeqCst);
        while let Some((owner, ops)) = client.next_batch(limit) {
            super::refresh_connection(&client);
            let error = match push(&client, owner, &ops).await {
                Ok(ack) => {
                    acknowledged(&client, owner, &ack);
                    acked.note(owner);
                    continue;
                }
                Err(error) => error,
            };
            if let Some(smaller) = smaller_batch(&error, ops.len()) {
                limit = smaller;
            } else if worth_retrying(session, &error) {
                acked.persist(&client);
                retry_later(&client, &error);
                return;
            } else {
                refused(&client, owner, &ops, &error);
            }
        }
        if !session.flush_again.load(Ordering::SeqCst) {
            break;
        }
    }
    acked.persist(&client);
    session.flushing.store(false, Ordering::SeqCst);
    super::refresh_connection(&client);
}

/// Pushes one batch of `owner`'s ops, giving up after [`PUSH_TIMEOUT_MS`].
async fn push(client: &SyncClient, owner: ClientId, ops: &[Op]) -> Result<PushAck, SyncError> {
    let values = ops
        .iter()
        .filter_map(|op| serde_json::to_value(op).ok())
        .collect();
    let push = api::push(client.list().to_string(), owner.to_string(), values);
    with_timeout(PUSH_TIMEOUT_MS, push).await
}

fn acknowledged(client: &SyncClient, owner: ClientId, ack: &PushAck) {
    let session = client.session();
    session.push_failures.store(0, Ordering::SeqCst);
    session.server_trouble.store(false, Ordering::SeqCst);
    session.retry_at_ms.store(0, Ordering::SeqCst);
    client.note_server_time(ack.server_time_ms);
    client.update_replica(|r| r.ack(owner, ack.acked_seq));
}

/// Writers whose outboxes shrank by acknowledgements during a flush: saved once
/// when it ends, not after every batch (a stored outbox rewritten after each of a
/// hundred batches cost time quadratic in its length). Until then the stored outbox
/// still holds acknowledged ops; sent again after a reload, the server acknowledges
/// them without applying them twice (docs/PROTOCOL.md "Push").
#[derive(Default)]
struct Acked(Vec<ClientId>);

impl Acked {
    fn note(&mut self, owner: ClientId) {
        if !self.0.contains(&owner) {
            self.0.push(owner);
        }
    }

    fn persist(&mut self, client: &SyncClient) {
        for owner in self.0.drain(..) {
            super::persist_outbox(client, owner);
        }
    }
}

/// The batch size to try after the server found a batch of `len` ops too large:
/// half of it for a body over `max_request_bytes`, the server's maximum for too many
/// ops. `None` for other errors, and for a single op (it cannot be split: refused).
fn smaller_batch(error: &SyncError, len: usize) -> Option<usize> {
    let smaller = match error {
        SyncError::BodyTooLarge { .. } => len / 2,
        SyncError::TooManyOps { max, .. } => (*max).min(len.saturating_sub(1)),
        _ => return None,
    };
    (smaller >= 1).then_some(smaller)
}

/// Whether a failed push is tried again (later) rather than refused for good.
fn worth_retrying(session: &Session, error: &SyncError) -> bool {
    retryable(error)
        || (waits_for_other_writer(error)
            && session.push_failures.load(Ordering::SeqCst) < MISSING_NODE_ATTEMPTS)
}

/// Schedules the next flush after a backoff (or the server's `retry_after_ms`) and
/// ends this one.
fn retry_later(client: &SyncClient, error: &SyncError) {
    let session = client.session();
    let attempt = session.push_failures.fetch_add(1, Ordering::SeqCst);
    let wait = match error {
        SyncError::RateLimited { retry_after_ms } => (*retry_after_ms).max(100),
        _ => backoff_ms(attempt),
    };
    session
        .server_trouble
        .store(server_trouble(error), Ordering::SeqCst);
    session
        .retry_at_ms
        .store(super::now() + wait, Ordering::SeqCst);
    super::refresh_connection(client);
    session.flushing.store(false, Ordering::SeqCst);
    let again = client.clone();
    spawn_local(async move {
        sleep(wait).await;
        schedule_flush(&again);
    });
}

/// A batch refused for good: drop it, say so, reload the list from the server.
fn refused(client: &SyncClient, owner: ClientId, ops: &[Op], error: &SyncError) {
    let last = ops.iter().map(|op| op.seq).max().unwrap_or(0);
    client.update_replica(|r| r.ack(owner, last));
    super::persist_outbox(client, owner);
    client
        .status()
        .problem
        .set(Some(format!("The server refused a change: {error}")));
    start_catch_up(client, true);
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

/// Catches up by pulling, from the cursor or (`from_scratch`) from version 0 after
/// throwing away the replica's server state (pending ops are kept).
///
/// Live changes that arrive meanwhile are held back until the last page is in, then
/// applied: applied at once they would move the cursor past pages not pulled yet,
/// and those changes would never arrive. A newer catch-up replaces a running one.
pub fn start_catch_up(client: &SyncClient, from_scratch: bool) {
    let generation = client.session().catch_ups.fetch_add(1, Ordering::SeqCst) + 1;
    with_handles(client.list(), |h| {
        h.held.get_or_insert_with(Vec::new);
    });
    if from_scratch {
        client.update_replica(|r| r.reset_server_state());
    }
    let after = client.with_replica(|r| r.cursor().version);
    let client = client.clone();
    spawn_local(async move { catch_up(client, after, generation).await });
}

/// Pulls every page after `after`, retrying failed pulls with backoff, then lets the
/// held live changes through. Stops quietly if a newer catch-up has started.
async fn catch_up(client: SyncClient, mut after: u64, generation: u32) {
    let session = client.session();
    let current = || session.catch_ups.load(Ordering::SeqCst) == generation;
    let mut failures = 0;
    while current() {
        let page = match api::pull(client.list().to_string(), after, None).await {
            Ok(page) => page,
            Err(_) => {
                sleep(backoff_ms(failures)).await;
                failures += 1;
                continue;
            }
        };
        if !current() {
            return;
        }
        client.note_server_time(page.server_time_ms);
        client.apply_remote(&page.changes, page.server_time_ms);
        super::schedule_save(&client);
        after = page.cursor;
        if !page.more {
            release_held(&client);
            return;
        }
    }
}

/// Ends holding live changes back and applies those held.
fn release_held(client: &SyncClient) {
    let held = with_handles(client.list(), |h| h.held.take()).unwrap_or_default();
    if !held.is_empty() {
        client.apply_remote(&held, client.live_time_ms());
        super::schedule_save(client);
    }
    super::refresh_connection(client);
}

/// True while a catch-up by pulling holds live changes back.
pub fn holding(list: Uid) -> bool {
    with_handles(list, |h| h.held.is_some())
}

/// Keeps `changes` back while a catch-up runs (`None`), or gives them back to apply.
fn hold(list: Uid, changes: Vec<Change>) -> Option<Vec<Change>> {
    with_handles(list, |h| match h.held.as_mut() {
        Some(held) => {
            held.extend(changes);
            None
        }
        None => Some(changes),
    })
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
            super::presence::lost(&client);
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
            let Some(changes) = hold(client.list(), changes) else {
                return;
            };
            // Live changes carry no server time: they are current as of the server's
            // clock now, as far as this browser can tell.
            client.apply_remote(&changes, client.live_time_ms());
            super::schedule_save(client);
        }
        ServerMessage::Subscribed { peer, .. } => {
            session.socket_open.store(true, Ordering::SeqCst);
            session.catching_up.store(false, Ordering::SeqCst);
            session.socket_failures.store(0, Ordering::SeqCst);
            // Caught up with the server now (unless a pull is still catching up).
            if !holding(client.list()) {
                client.apply_remote(&[], client.live_time_ms());
            }
            super::refresh_connection(client);
            schedule_flush(client);
            super::presence::subscribed(client, peer);
        }
        ServerMessage::Resync { .. } => {
            // The server closes this socket; catch up by pulling, then follow again.
            start_catch_up(client, false);
        }
        ServerMessage::Ping { nonce } => send(client, &ClientMessage::Pong { nonce }),
        ServerMessage::Pong { .. } => {}
        ServerMessage::Presence { peers, .. } => super::presence::heard(client, peers),
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

pub(crate) fn send(client: &SyncClient, message: &ClientMessage) {
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
