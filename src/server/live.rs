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
//!
//! Every close the server starts is a closing handshake ([`Peer::finish`]): after its
//! close frame it keeps reading, and ignoring, what the client still sends until the
//! client answers the close. Closing a connection with unread data in it makes the
//! kernel reset it, and a reset throws away what was still on its way to the client
//! — the `resync` and the close frame a slow reader has not read yet.

use std::time::Duration;

use axum::{
    extract::{
        ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade},
        State,
    },
    response::Response,
};
use tokio::{
    sync::broadcast::error::RecvError,
    time::{timeout, timeout_at, Instant},
};

use super::{hub::Published, hub::Subscription, outgoing, presence::Member, sync, AppState};
use crate::model::{
    wire::{ClientMessage, ServerMessage, SyncError},
    ClientId, Uid,
};

/// How long a client has to say which list it follows.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one send may block before the peer counts as a slow reader.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing socket waits for the client to read its last messages and
/// answer its close.
const CLOSE_TIMEOUT: Duration = SEND_TIMEOUT;
/// Largest message a client may send (its messages are tiny).
pub const MAX_CLIENT_MESSAGE: usize = 16 * 1024;

pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    // A message over MAX_CLIENT_MESSAGE but within the request limit is read whole
    // and refused here, which leaves the socket able to finish its closing
    // handshake; past the request limit the WebSocket layer stops reading it.
    let read_limit = state.config.sync.max_request_bytes.max(MAX_CLIENT_MESSAGE);
    ws.max_message_size(read_limit)
        .max_frame_size(read_limit)
        // Small buffers: an idle subscriber should cost a few KB, not hundreds. A
        // client only sends tiny messages, and tungstenite zero-fills the whole read
        // buffer before every read attempt — once per message sent, since the loop
        // polls the socket each time — so 1 KiB rather than 4 KiB also saves the
        // fan-out 3 KiB of memset per subscriber per message (docs/BENCHMARKS.md,
        // "connections"). Larger messages still arrive, in more reads.
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            let mut peer = Peer {
                ws: socket,
                max_depth: state.config.sync.max_json_depth,
            };
            // `follow` owns the state, so a closing socket holds no part of the
            // server (the writer, the database) while it waits for its client.
            let end = follow(&mut peer, state).await;
            peer.finish(end).await;
        })
}

/// Why and how a socket ends.
#[derive(Debug)]
enum End {
    /// Send `last` (if any) and a close frame, then wait for the client's close.
    Close {
        last: Option<ServerMessage>,
        code: u16,
        reason: &'static str,
    },
    /// The client closed: answer its close.
    ClosedByClient,
    /// Nothing more can be sent: the connection failed or a send timed out.
    Lost(String),
}

/// A refused subscription: the error, then a close 1008.
fn refuse(error: SyncError) -> End {
    End::Close {
        last: Some(ServerMessage::Error { error }),
        code: 1008,
        reason: "refused",
    }
}

fn malformed(detail: &str) -> SyncError {
    SyncError::MalformedRequest {
        detail: detail.into(),
    }
}

/// What the client sent next.
enum Incoming {
    Message(ClientMessage),
    /// Not a message the protocol knows: answered with this error.
    Bad(SyncError),
    /// A WebSocket ping or pong: a sign of life, nothing to answer.
    Alive,
    /// The socket cannot go on.
    End(End),
}

/// One client's socket.
struct Peer {
    ws: WebSocket,
    max_depth: usize,
}

impl Peer {
    async fn send(&mut self, message: Message) -> Result<(), End> {
        match timeout(SEND_TIMEOUT, self.ws.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(End::Lost(format!("send failed: {e}"))),
            Err(_) => Err(End::Lost("slow reader: send timed out".into())),
        }
    }

    async fn send_json(&mut self, message: &ServerMessage) -> Result<(), End> {
        let json = serde_json::to_string(message).map_err(|e| End::Lost(e.to_string()))?;
        self.send(Message::Text(json.into())).await
    }

    async fn send_error(&mut self, error: SyncError) -> Result<(), End> {
        self.send_json(&ServerMessage::Error { error }).await
    }

    async fn recv(&mut self) -> Incoming {
        match self.ws.recv().await {
            Some(Ok(Message::Text(text))) => self.decode(&text),
            Some(Ok(Message::Binary(_))) => Incoming::Bad(malformed(
                "messages are JSON text frames; a binary frame is not read",
            )),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Incoming::Alive,
            Some(Ok(Message::Close(_))) => Incoming::End(End::ClosedByClient),
            None => Incoming::End(End::Lost("connection closed".into())),
            Some(Err(e)) => Incoming::End(receive_failed(e)),
        }
    }

    /// A text message: its size and nesting checked first, then decoded.
    fn decode(&self, text: &str) -> Incoming {
        if text.len() > MAX_CLIENT_MESSAGE {
            return Incoming::End(too_big(text.len()));
        }
        let decoded = super::limiter::check_json_depth(text.as_bytes(), self.max_depth)
            .and_then(|()| serde_json::from_str(text).map_err(|e| malformed(&e.to_string())));
        match decoded {
            Ok(message) => Incoming::Message(message),
            Err(error) => Incoming::Bad(error),
        }
    }

    /// Ends the socket as `end` says. A close frame is followed by reading (and
    /// dropping) whatever the client still sends until it answers the close, or
    /// [`CLOSE_TIMEOUT`] passes; the connection is closed after that.
    async fn finish(mut self, end: End) {
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        match end {
            End::Close { last, code, reason } => {
                let closed = timeout_at(deadline, self.say_last(last, code, reason)).await;
                if matches!(closed, Ok(Ok(()))) {
                    self.drain_until(deadline).await;
                }
                tracing::debug!(code, reason, "live socket closed");
            }
            End::ClosedByClient => self.drain_until(deadline).await,
            End::Lost(reason) => tracing::debug!(%reason, "live socket lost"),
        }
    }

    async fn say_last(
        &mut self,
        last: Option<ServerMessage>,
        code: u16,
        reason: &'static str,
    ) -> Result<(), End> {
        if let Some(message) = last {
            self.send_json(&message).await?;
        }
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        self.send(Message::Close(Some(frame))).await
    }

    /// Reads until the client's close arrives (answering a close the client started),
    /// the connection ends, or `deadline`.
    async fn drain_until(&mut self, deadline: Instant) {
        while let Ok(Some(Ok(_))) = timeout_at(deadline, self.ws.recv()).await {}
    }
}

/// A message over [`MAX_CLIENT_MESSAGE`]: an error, then the standard close 1009.
fn too_big(bytes: usize) -> End {
    End::Close {
        last: Some(ServerMessage::Error {
            error: malformed(&format!(
                "a message of {bytes} bytes; at most {MAX_CLIENT_MESSAGE} are read"
            )),
        }),
        code: 1009,
        reason: "message too big",
    }
}

/// A frame the WebSocket layer could not read. Text that is not UTF-8 gets the
/// standard close 1007, a message past the read limit 1009; anything else (a
/// protocol violation, a network error) leaves nothing to answer.
fn receive_failed(error: axum::Error) -> End {
    use tungstenite::Error;
    match error.into_inner().downcast::<Error>().map(|e| *e) {
        Ok(Error::Utf8(_)) => End::Close {
            last: Some(ServerMessage::Error {
                error: malformed("a text message that is not UTF-8"),
            }),
            code: 1007,
            reason: "invalid UTF-8",
        },
        Ok(Error::Capacity(tungstenite::error::CapacityError::MessageTooLong { size, .. })) => {
            too_big(size)
        }
        Ok(other) => End::Lost(format!("receive failed: {other}")),
        Err(other) => End::Lost(format!("receive failed: {other}")),
    }
}

/// Serves one socket until it must end; answers how.
async fn follow(peer: &mut Peer, state: AppState) -> End {
    match subscribe(peer, &state).await {
        Ok(live) => live.run(peer, &state).await,
        Err(end) => end,
    }
}

/// A subscriber past its catch-up, following the list live.
struct Following {
    list: Uid,
    /// The cursor of the last change sent.
    sent: u64,
    subscription: Subscription,
    /// Its id in the list's presence, and its place there once it said who it is
    /// (only then does it get the list's presence).
    peer_id: Uid,
    client: Option<ClientId>,
    member: Option<Member>,
    /// The client's socket slot, freed when the socket ends.
    _slot: Option<super::limiter::SocketSlot>,
}

/// Reads the `subscribe`, takes the socket slot and the subscription, and sends
/// the catch-up and `subscribed`.
async fn subscribe(peer: &mut Peer, state: &AppState) -> Result<Following, End> {
    let (list, after, client) = first_message(peer).await?;
    let slot = match client {
        Some(client) => Some(
            state
                .limiter
                .open_socket(&client.to_string())
                .map_err(refuse)?,
        ),
        None => None,
    };
    // Join the fan-out first, then catch up: a commit racing the catch-up is then
    // either in the pages or in the channel (and skipped if in both).
    let subscription = state.hub.subscribe(list).map_err(refuse)?;
    subscription
        .ready(&state.db)
        .await
        .map_err(|e| refuse(sync::store_failure(e)))?;
    let sent = catch_up(peer, state, list, after).await?;
    let peer_id = Uid::new();
    let subscribed = ServerMessage::Subscribed {
        list,
        cursor: sent,
        peer: peer_id,
    };
    peer.send_json(&subscribed).await?;
    Ok(Following {
        list,
        sent,
        subscription,
        peer_id,
        client,
        member: None,
        _slot: slot,
    })
}

/// The first message, which must be `subscribe` (WebSocket pings before it are
/// fine); answers its list, cursor and client.
async fn first_message(peer: &mut Peer) -> Result<(Uid, u64, Option<ClientId>), End> {
    let deadline = Instant::now() + SUBSCRIBE_TIMEOUT;
    loop {
        let incoming = timeout_at(deadline, peer.recv())
            .await
            .map_err(|_| End::Lost("no subscribe in time".into()))?;
        return match incoming {
            Incoming::Message(ClientMessage::Subscribe {
                list,
                after,
                client,
            }) => Ok((list, after, client)),
            Incoming::Message(_) => Err(refuse(malformed("the first message must be `subscribe`"))),
            Incoming::Bad(error) => Err(refuse(error)),
            Incoming::Alive => continue,
            Incoming::End(end) => Err(end),
        };
    }
}

/// Sends every change of `list` after `after`, page by page; answers the cursor
/// reached.
async fn catch_up(peer: &mut Peer, state: &AppState, list: Uid, after: u64) -> Result<u64, End> {
    let mut sent = after;
    loop {
        let page = sync::pull(&state.db, &state.config, list, sent, None)
            .await
            .map_err(refuse)?;
        sent = page.cursor;
        for message in outgoing::changes_messages(
            list,
            &page.changes,
            page.cursor,
            page.more,
            outgoing::MAX_MESSAGE_BYTES,
        ) {
            peer.send(Message::Text(message)).await?;
        }
        if !page.more {
            return Ok(sent);
        }
    }
}

impl Following {
    /// Forwards commits, answers the client, pings it, until the socket must end.
    async fn run(mut self, peer: &mut Peer, state: &AppState) -> End {
        let heartbeat = Duration::from_secs(state.config.sync.heartbeat_secs);
        let mut ticker = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
        let mut last_heard = Instant::now();
        let mut shutdown = state.shutdown.clone();
        loop {
            let step = tokio::select! {
                published = self.subscription.rx.recv() => self.forward(peer, published).await,
                set = presence_set(&mut self.member) => {
                    self.forward_presence(peer, state, set).await
                }
                incoming = peer.recv() => {
                    last_heard = Instant::now();
                    self.answer(peer, state, incoming).await
                }
                _ = ticker.tick() => ping(peer, last_heard.elapsed(), heartbeat).await,
                _ = shutdown.changed() => Err(End::Close {
                    last: None,
                    code: 1001,
                    reason: "server shutting down",
                }),
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Sends a commit (what the catch-up did not already carry), or `resync` if
    /// the subscriber fell too far behind to get every commit.
    async fn forward(
        &mut self,
        peer: &mut Peer,
        published: Result<std::sync::Arc<Published>, RecvError>,
    ) -> Result<(), End> {
        match published {
            Ok(published) => {
                for message in unsent(self.list, &published, self.sent) {
                    peer.send(Message::Text(message)).await?;
                }
                self.sent = self.sent.max(published.last_version);
                Ok(())
            }
            Err(RecvError::Lagged(missed)) => Err(End::Close {
                last: Some(ServerMessage::Resync {
                    list: self.list,
                    after: self.sent,
                    reason: format!(
                        "fell {missed} commits behind; pull from the cursor and subscribe again"
                    ),
                }),
                code: 1000,
                reason: "resync",
            }),
            Err(RecvError::Closed) => Err(End::Lost("hub closed".into())),
        }
    }

    /// Sends the list's presence set; after missing some, the newest one.
    async fn forward_presence(
        &mut self,
        peer: &mut Peer,
        state: &AppState,
        set: Result<Utf8Bytes, RecvError>,
    ) -> Result<(), End> {
        match set {
            Ok(message) => peer.send(Message::Text(message)).await,
            Err(RecvError::Lagged(_)) => {
                let message = state.presences.message(self.list);
                peer.send(Message::Text(message)).await
            }
            Err(RecvError::Closed) => Err(End::Lost("presence closed".into())),
        }
    }

    /// Answers what a subscribed client sent.
    async fn answer(
        &mut self,
        peer: &mut Peer,
        state: &AppState,
        incoming: Incoming,
    ) -> Result<(), End> {
        match incoming {
            Incoming::Message(ClientMessage::Presence(presence)) => match presence.check() {
                Ok(()) => {
                    let (list, id, client) = (self.list, self.peer_id, self.client);
                    let member = self
                        .member
                        .get_or_insert_with(|| state.presences.join(list, id, client));
                    member.set(presence);
                    Ok(())
                }
                Err(error) => peer.send_error(error).await,
            },
            Incoming::Message(ClientMessage::Ping { nonce }) => {
                peer.send_json(&ServerMessage::Pong { nonce }).await
            }
            Incoming::Message(ClientMessage::Pong { .. }) | Incoming::Alive => Ok(()),
            Incoming::Message(ClientMessage::Subscribe { .. }) => {
                peer.send_error(malformed(
                    "already subscribed; open another socket to follow another list",
                ))
                .await
            }
            Incoming::Bad(error) => peer.send_error(error).await,
            Incoming::End(end) => Err(end),
        }
    }
}

/// The next presence set of a socket that takes part in presence; never, for one
/// that does not.
async fn presence_set(member: &mut Option<Member>) -> Result<Utf8Bytes, RecvError> {
    match member {
        Some(member) => member.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The heartbeat: a ping, or the end of a peer silent for two intervals.
async fn ping(peer: &mut Peer, silent: Duration, heartbeat: Duration) -> Result<(), End> {
    if silent > heartbeat * 2 {
        return Err(End::Close {
            last: None,
            code: 1001,
            reason: "heartbeat timeout",
        });
    }
    peer.send(Message::Ping(Default::default())).await
}

/// The messages that bring a subscriber at `sent` up to date with `published`:
/// none if it already has all of it (from the catch-up).
fn unsent(list: Uid, published: &Published, sent: u64) -> Vec<Utf8Bytes> {
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
