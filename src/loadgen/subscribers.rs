//! Live subscribers: WebSocket clients of `GET /api/live` that follow the list and
//! hand every token they receive to the [`Ledger`].
//!
//! A subscriber does what a browser tab does: `subscribe` with its cursor, take the
//! catch-up pages and `subscribed`, then `changes` as they are committed. On a
//! `resync` or an unexpected close it counts an error and subscribes again from its
//! cursor, so a delivery is only missing if the server really lost it.
//!
//! Messages are decoded into a lean view of the protocol ([`Frame`]) that keeps only
//! the type, the cursor and each change's title: with thousands of sockets in one
//! process, the client must cost far less than the server it measures.

use std::{borrow::Cow, sync::Arc, time::Duration};

use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use super::{
    ledger::{Ledger, Receipt, Seen, Token},
    socket::{self, Socket, SocketError},
    stats::{Errors, Traffic},
};
use crate::model::{wire::ClientMessage, ClientId, Uid};

/// Longest wait for `subscribed` after connecting.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);
/// Reconnections a subscriber tries before it gives up.
const MAX_RECONNECTS: u32 = 5;

/// A server message, as far as a subscriber needs it.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    changes: Vec<LeanChange<'a>>,
    #[serde(default)]
    cursor: Option<u64>,
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    error: Option<LeanError<'a>>,
}

#[derive(Deserialize)]
struct LeanChange<'a> {
    version: u64,
    #[serde(borrow)]
    node: LeanNode<'a>,
}

#[derive(Deserialize)]
struct LeanNode<'a> {
    #[serde(default, borrow)]
    fields: LeanFields<'a>,
}

#[derive(Deserialize, Default)]
struct LeanFields<'a> {
    #[serde(default, borrow)]
    title: Option<LeanTitle<'a>>,
}

#[derive(Deserialize)]
struct LeanTitle<'a> {
    #[serde(borrow)]
    v: Cow<'a, str>,
}

#[derive(Deserialize)]
struct LeanError<'a> {
    #[serde(borrow)]
    code: Cow<'a, str>,
}

/// Where and what a subscriber follows, and what it reports to.
#[derive(Clone)]
pub struct Follow {
    pub ws_url: String,
    pub list: Uid,
    pub ledger: Arc<Ledger>,
    pub errors: Arc<Errors>,
    pub traffic: Arc<Traffic>,
}

/// One live socket following the list.
pub struct Subscriber {
    follow: Follow,
    client: ClientId,
    socket: Socket,
    cursor: u64,
    seen: Seen,
}

/// Why a socket stopped following.
enum End {
    Stopped,
    /// Subscribe again from the cursor (after `resync` or a lost connection).
    Reconnect,
}

impl Subscriber {
    /// Connects, subscribes after `after` and waits for `subscribed`.
    pub async fn connect(follow: Follow, after: u64) -> Result<Subscriber, SocketError> {
        let client = ClientId::new();
        let socket = open(&follow, client, after).await?;
        let mut sub = Subscriber {
            follow,
            client,
            socket,
            cursor: after,
            seen: Seen::default(),
        };
        sub.await_subscribed().await?;
        Ok(sub)
    }

    /// Follows the list until `stop` flips, then closes the socket cleanly.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut reconnects = 0;
        loop {
            match self.follow_until(&mut stop).await {
                End::Stopped => {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(2), self.socket.close(None)).await;
                    return;
                }
                End::Reconnect if reconnects < MAX_RECONNECTS => {
                    reconnects += 1;
                    match open(&self.follow, self.client, self.cursor).await {
                        Ok(socket) => {
                            self.socket = socket;
                            if let Err(e) = self.await_subscribed().await {
                                self.follow.errors.add(e.code());
                            }
                        }
                        Err(e) => self.follow.errors.add(e.code()),
                    }
                }
                End::Reconnect => {
                    self.follow.errors.add("subscriber_gave_up");
                    return;
                }
            }
        }
    }

    async fn await_subscribed(&mut self) -> Result<(), SocketError> {
        let deadline = tokio::time::Instant::now() + SUBSCRIBE_TIMEOUT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .map_err(|_| SocketError::Timeout(SUBSCRIBE_TIMEOUT))?;
            match next {
                Some(Ok(Message::Text(text))) => {
                    if let Some(kind) = self.handle(&text) {
                        match kind {
                            Handled::Subscribed => return Ok(()),
                            Handled::Resync => return Err(SocketError::Resync),
                            Handled::Other => {}
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Err(SocketError::Closed),
            }
        }
    }

    async fn follow_until(&mut self, stop: &mut watch::Receiver<bool>) -> End {
        loop {
            let next = tokio::select! {
                next = self.socket.next() => next,
                _ = stop.wait_for(|stopping| *stopping) => return End::Stopped,
            };
            match next {
                Some(Ok(Message::Text(text))) => {
                    if let Some(Handled::Resync) = self.handle(&text) {
                        return End::Reconnect;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    if *stop.borrow() {
                        return End::Stopped;
                    }
                    self.follow.errors.add("ws_closed");
                    return End::Reconnect;
                }
                // Pings are answered by tungstenite itself.
                Some(Ok(_)) => {}
            }
        }
    }

    /// Takes one server message: tokens to the ledger, errors to the tally.
    fn handle(&mut self, text: &str) -> Option<Handled> {
        let at_ns = self.follow.ledger.now_ns();
        Traffic::add(&self.follow.traffic.ws_received, text.len());
        let Ok(frame) = serde_json::from_str::<Frame>(text) else {
            self.follow.errors.add("bad_message");
            return None;
        };
        match frame.kind.as_ref() {
            "changes" => {
                for change in &frame.changes {
                    self.cursor = self.cursor.max(change.version);
                    let Some(token) = change
                        .node
                        .fields
                        .title
                        .as_ref()
                        .and_then(|t| Token::parse(&t.v))
                    else {
                        continue;
                    };
                    match self.follow.ledger.receive(token, at_ns, &mut self.seen) {
                        Receipt::First => {}
                        Receipt::Duplicate => self.follow.errors.add("duplicate_delivery"),
                        Receipt::Unknown => self.follow.errors.add("unknown_token"),
                    }
                }
                if let Some(cursor) = frame.cursor {
                    self.cursor = self.cursor.max(cursor);
                }
                Some(Handled::Other)
            }
            "subscribed" => {
                if let Some(cursor) = frame.cursor {
                    self.cursor = self.cursor.max(cursor);
                }
                Some(Handled::Subscribed)
            }
            "resync" => {
                self.follow.errors.add("resync");
                if let Some(after) = frame.after {
                    self.cursor = after;
                }
                Some(Handled::Resync)
            }
            "error" => {
                let code = frame.error.map_or(Cow::Borrowed("error"), |e| e.code);
                self.follow.errors.add(&code);
                Some(Handled::Other)
            }
            _ => Some(Handled::Other),
        }
    }
}

enum Handled {
    Subscribed,
    Resync,
    Other,
}

/// Opens a socket and sends `subscribe`.
async fn open(follow: &Follow, client: ClientId, after: u64) -> Result<Socket, SocketError> {
    let subscribe = ClientMessage::Subscribe {
        list: follow.list,
        after,
        client: Some(client),
    };
    let config = socket::small_buffers();
    socket::subscribe(&follow.ws_url, config, &subscribe, &follow.traffic).await
}
