//! `GET /api/live`: a WebSocket that follows one list.
//!
//! The client's first message is `subscribe` with the list and its cursor. The server
//! joins the list's fan-out *before* reading the catch-up, sends every change after
//! the cursor in pages, says `subscribed`, and then forwards each commit as it
//! happens, skipping what the catch-up already covered — so nothing is missed and
//! nothing is sent twice. A subscriber that falls more than `live_buffer` commits
//! behind gets `resync` and the socket closes; it re-pulls from its cursor and
//! subscribes again. The server pings every `heartbeat_secs` and drops a peer that
//! stays silent for two intervals; on shutdown every socket gets a clean close.

use std::time::Duration;

use axum::{
    extract::{
        ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade},
        State,
    },
    response::Response,
};
use futures::{SinkExt, StreamExt};
use tokio::{sync::broadcast::error::RecvError, time::Instant};

use super::{hub::Published, outgoing, sync, AppState};
use crate::model::{
    wire::{ClientMessage, ServerMessage, SyncError},
    Uid,
};

/// How long a client has to say which list it follows.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one send may block before the peer counts as a slow reader.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message a client may send (its messages are tiny).
const MAX_CLIENT_MESSAGE: usize = 16 * 1024;

pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        // Small buffers: an idle subscriber should cost a few KB, not hundreds. A
        // client only sends tiny messages, and tungstenite zero-fills the whole read
        // buffer before every read attempt — once per message sent, since the loop
        // polls the socket each time — so 1 KiB rather than 4 KiB also saves the
        // fan-out 3 KiB of memset per subscriber per message (docs/BENCHMARKS.md,
        // "connections"). Larger messages (up to MAX_CLIENT_MESSAGE) still arrive,
        // in more reads.
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            if let Err(reason) = follow(socket, state).await {
                tracing::debug!(%reason, "live socket ended");
            }
        })
}

type Sender = futures::stream::SplitSink<WebSocket, Message>;

async fn send(tx: &mut Sender, message: Message) -> Result<(), String> {
    match tokio::time::timeout(SEND_TIMEOUT, tx.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("send failed: {e}")),
        Err(_) => Err("slow reader: send timed out".into()),
    }
}

async fn send_json(tx: &mut Sender, message: &ServerMessage) -> Result<(), String> {
    let json = serde_json::to_string(message).map_err(|e| e.to_string())?;
    send(tx, Message::Text(json.into())).await
}

async fn close(tx: &mut Sender, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.to_string()),
    };
    let _ = send(tx, Message::Close(Some(frame))).await;
}

async fn refuse(tx: &mut Sender, error: SyncError) -> Result<(), String> {
    let reason = error.to_string();
    let _ = send_json(tx, &ServerMessage::Error { error }).await;
    close(tx, 1008, "refused").await;
    Err(reason)
}

async fn follow(socket: WebSocket, state: AppState) -> Result<(), String> {
    let (mut tx, mut rx) = socket.split();

    // 1. The subscribe message.
    let first = tokio::time::timeout(SUBSCRIBE_TIMEOUT, rx.next())
        .await
        .map_err(|_| "no subscribe in time".to_string())?;
    let max_depth = state.config.sync.max_json_depth;
    let (list, after, client) = match first {
        Some(Ok(Message::Text(text))) => match decode(&text, max_depth) {
            Ok(ClientMessage::Subscribe {
                list,
                after,
                client,
            }) => (list, after, client),
            Ok(_) => {
                return refuse(
                    &mut tx,
                    SyncError::MalformedRequest {
                        detail: "the first message must be `subscribe`".into(),
                    },
                )
                .await
            }
            Err(e) => return refuse(&mut tx, e).await,
        },
        _ => return Err("closed before subscribing".into()),
    };
    let _slot = match client {
        Some(client) => match state.limiter.open_socket(&client.to_string()) {
            Ok(slot) => Some(slot),
            Err(e) => return refuse(&mut tx, e).await,
        },
        None => None,
    };

    // 2. Join the fan-out first, then catch up: a commit racing the catch-up is then
    //    either in the pages or in the channel (and skipped if in both).
    let mut subscription = match state.hub.subscribe(list) {
        Ok(s) => s,
        Err(e) => return refuse(&mut tx, e).await,
    };
    if let Err(e) = subscription.ready(&state.db).await {
        return refuse(&mut tx, sync::store_failure(e)).await;
    }
    let mut sent = after;
    loop {
        let page = match sync::pull(&state.db, &state.config, list, sent, None).await {
            Ok(page) => page,
            Err(e) => return refuse(&mut tx, e).await,
        };
        sent = page.cursor;
        let more = page.more;
        for message in outgoing::changes_messages(
            list,
            &page.changes,
            page.cursor,
            more,
            outgoing::MAX_MESSAGE_BYTES,
        ) {
            send(&mut tx, Message::Text(message)).await?;
        }
        if !more {
            break;
        }
    }
    send_json(&mut tx, &ServerMessage::Subscribed { list, cursor: sent }).await?;

    // 3. Live.
    let heartbeat = Duration::from_secs(state.config.sync.heartbeat_secs);
    let mut ticker = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    let mut last_heard = Instant::now();
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            published = subscription.rx.recv() => match published {
                Ok(published) => {
                    for message in forward(list, &published, sent) {
                        send(&mut tx, Message::Text(message)).await?;
                    }
                    sent = sent.max(published.last_version);
                }
                Err(RecvError::Lagged(missed)) => {
                    let _ = send_json(&mut tx, &ServerMessage::Resync {
                        list,
                        after: sent,
                        reason: format!("fell {missed} commits behind; pull from the cursor and subscribe again"),
                    }).await;
                    close(&mut tx, 1000, "resync").await;
                    return Err("lagged".into());
                }
                Err(RecvError::Closed) => return Err("hub closed".into()),
            },
            incoming = rx.next() => {
                last_heard = Instant::now();
                match incoming {
                    Some(Ok(Message::Text(text))) => match decode(&text, max_depth) {
                        Ok(ClientMessage::Ping { nonce }) => {
                            send_json(&mut tx, &ServerMessage::Pong { nonce }).await?;
                        }
                        Ok(ClientMessage::Pong { .. }) => {}
                        Ok(ClientMessage::Subscribe { .. }) => {
                            send_json(&mut tx, &ServerMessage::Error { error: SyncError::MalformedRequest {
                                detail: "already subscribed; open another socket to follow another list".into(),
                            }}).await?;
                        }
                        Err(error) => {
                            send_json(&mut tx, &ServerMessage::Error { error }).await?;
                        }
                    },
                    Some(Ok(Message::Close(_))) | None => return Ok(()),
                    Some(Ok(_)) => {} // pongs to our pings, binary: ignored
                    Some(Err(e)) => return Err(format!("receive failed: {e}")),
                }
            }
            _ = ticker.tick() => {
                if last_heard.elapsed() > heartbeat * 2 {
                    close(&mut tx, 1001, "heartbeat timeout").await;
                    return Err("peer silent".into());
                }
                send(&mut tx, Message::Ping(Default::default())).await?;
            }
            _ = shutdown.changed() => {
                close(&mut tx, 1001, "server shutting down").await;
                return Ok(());
            }
        }
    }
}

/// A client message: its nesting checked first (as for HTTP bodies), then decoded.
fn decode(text: &str, max_depth: usize) -> Result<ClientMessage, SyncError> {
    super::limiter::check_json_depth(text.as_bytes(), max_depth)?;
    serde_json::from_str(text).map_err(|e| SyncError::MalformedRequest {
        detail: e.to_string(),
    })
}

/// The messages that bring a subscriber at `sent` up to date with `published`:
/// none if it already has all of it (from the catch-up).
fn forward(list: Uid, published: &Published, sent: u64) -> Vec<Utf8Bytes> {
    if published.last_version <= sent {
        Vec::new()
    } else if published.first_version > sent {
        published.messages.clone()
    } else {
        let unsent = published.changes.partition_point(|c| c.version <= sent);
        outgoing::changes_messages(
            list,
            &published.changes[unsent..],
            published.last_version,
            false,
            outgoing::MAX_MESSAGE_BYTES,
        )
    }
}
