//! Live clients that keep a real [`Replica`] and reconnect the way the browser does
//! (scenario `storm`).
//!
//! Unlike the lean [`super::subscribers`], each client here decodes every message
//! fully and merges it into its own replica, because the storm must show that
//! every client ends in the same state as a fresh pull, not only that tokens
//! arrived. It also logs what a storm is judged by: when each connection attempt
//! was made, when the socket was lost, when `subscribed` came back, and every
//! version it received (they must strictly increase: a version seen twice is a
//! duplicate, one never seen is a gap).
//!
//! The policy is the browser's (`src/app/browser/transport.rs`): when the socket
//! ends, wait [`Jitter::backoff_ms`] of the failures so far, open a new socket and
//! `subscribe` after the replica's cursor; a failed attempt counts one more
//! failure, a `subscribed` resets the count. On `resync` the client pulls from its
//! cursor over HTTP first, as the browser does.

use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};

use futures::StreamExt;
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use super::{
    api::Api,
    backoff::Jitter,
    ledger::{Ledger, Receipt, Seen, Token},
    socket::{self, Socket},
    stats::{Errors, Traffic},
};
use crate::model::{
    clock::wall_clock_ms,
    wire::{Change, ClientMessage, ServerMessage},
    ClientId, Replica, Uid,
};

/// Longest one attempt may take, from opening the socket to `subscribed`. The
/// browser has no such limit of its own, but a client stuck forever would hang the
/// run; an attempt cut off here counts as failed and is retried with backoff.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the driver tells every client. Clients watch it while following and while
/// waiting to reconnect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Order {
    /// Drop the socket (client side, no close frame) whenever this grows.
    pub drops: u32,
    /// Close cleanly and end.
    pub stop: bool,
}

/// Shared by every client of a run.
pub struct Shared {
    pub ws_url: String,
    pub list: Uid,
    pub api: Api,
    pub ledger: Arc<Ledger>,
    /// Faults only (duplicates, bad messages, refusals); failed attempts during an
    /// outage are expected and logged per client instead.
    pub errors: Arc<Errors>,
    pub traffic: Arc<Traffic>,
    /// Caps the sockets opened at once for the first connection only; reconnects
    /// are spread by their jitter, as in a browser, not by the load generator.
    pub first_connect: Semaphore,
    /// Clients that have received their first `subscribed`.
    pub subscribed: AtomicUsize,
    /// Ledger time of the drop (0 until then).
    pub drop_ns: AtomicU64,
    /// Clients subscribed again after the drop.
    pub resubscribed: AtomicUsize,
}

/// Everything one client did, returned when it stops.
pub struct ClientLog {
    pub replica: Replica,
    /// Every version received, in order of receipt.
    pub versions: Vec<u64>,
    /// Versions received that were not above the previous one.
    pub repeated_versions: u64,
    /// Ledger times of every attempt to open a socket, the first one included
    /// (an attempt that succeeded has its `subscribed` in `subscribed_ns`).
    pub attempts_ns: Vec<u64>,
    /// Ledger times at which a following socket ended: lost (the server went, or
    /// closed it) or dropped on the driver's order; never a clean stop.
    pub lost_ns: Vec<u64>,
    /// Ledger times of every `subscribed`.
    pub subscribed_ns: Vec<u64>,
    /// Changes received in catch-up (between `subscribe` and `subscribed`),
    /// per successful subscription, in order.
    pub catch_up_changes: Vec<u64>,
    pub resyncs: u32,
}

/// One reconnecting client.
pub struct Client {
    shared: Arc<Shared>,
    client: ClientId,
    jitter: Jitter,
    drops_seen: u32,
    log: ClientLog,
    seen: Seen,
    /// Changes received on the current socket before its `subscribed`.
    catching_up: u64,
}

/// Why following stopped.
enum End {
    Stop,
    /// The socket ended (server gone, closed, or dropped here on order).
    Lost,
    /// The server said `resync`: pull, then reconnect.
    Resync,
}

/// What one message was.
enum Handled {
    Subscribed,
    Resync,
    Other,
}

impl Client {
    pub fn new(shared: Arc<Shared>, seed: u64, index: u64) -> Client {
        let list = shared.list;
        let client = ClientId::new();
        Client {
            shared,
            client,
            jitter: Jitter::new(seed, index),
            drops_seen: 0,
            log: ClientLog {
                replica: Replica::new(list, client),
                versions: Vec::new(),
                repeated_versions: 0,
                attempts_ns: Vec::new(),
                lost_ns: Vec::new(),
                subscribed_ns: Vec::new(),
                catch_up_changes: Vec::new(),
                resyncs: 0,
            },
            seen: Seen::default(),
            catching_up: 0,
        }
    }

    /// Connects, follows, reconnects after every loss, until the stop order; then
    /// closes cleanly and hands back its log.
    pub async fn run(mut self, mut orders: watch::Receiver<Order>) -> ClientLog {
        self.drops_seen = orders.borrow().drops;
        let mut failures: u32 = 0;
        let mut first = true;
        loop {
            // The first connection goes at once; every later one waits its backoff.
            if !first {
                let wait = Duration::from_millis(self.jitter.backoff_ms(failures));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = orders.wait_for(|o| o.stop) => return self.log,
                }
            }
            let shared = self.shared.clone();
            let permit = if first {
                Some(shared.first_connect.acquire().await)
            } else {
                None
            };
            let attempt = self.attempt(&mut orders).await;
            drop(permit);
            first = false;
            let mut socket = match attempt {
                Ok(socket) => socket,
                Err(AttemptEnd::Stop) => return self.log,
                Err(AttemptEnd::Resync) => {
                    failures += 1;
                    self.pull_after_resync().await;
                    continue;
                }
                Err(AttemptEnd::Failed) => {
                    failures += 1;
                    continue;
                }
            };
            // `subscribed` resets the count: the wait before the first reconnect
            // after a loss is backoff(0), 250–500 ms, as in the browser.
            failures = 0;
            match self.follow(&mut socket, &mut orders).await {
                End::Stop => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), socket.close(None)).await;
                    return self.log;
                }
                End::Lost => {
                    // Dropped without a close frame (when ordered to, the server sees
                    // the TCP connection end, as when a network goes away).
                    drop(socket);
                    self.log.lost_ns.push(self.shared.ledger.now_ns());
                }
                End::Resync => {
                    drop(socket);
                    self.log.resyncs += 1;
                    self.pull_after_resync().await;
                }
            }
        }
    }

    /// Opens a socket, subscribes after the cursor and takes the catch-up until
    /// `subscribed`.
    async fn attempt(&mut self, orders: &mut watch::Receiver<Order>) -> Result<Socket, AttemptEnd> {
        self.log.attempts_ns.push(self.shared.ledger.now_ns());
        let work = async {
            let subscribe = ClientMessage::Subscribe {
                list: self.shared.list,
                after: self.log.replica.cursor().version,
                client: Some(self.client),
            };
            let (url, traffic) = (&self.shared.ws_url, &self.shared.traffic);
            let mut socket = socket::subscribe(url, socket::small_buffers(), &subscribe, traffic)
                .await
                .map_err(|_| AttemptEnd::Failed)?;
            self.catching_up = 0;
            loop {
                match socket.next().await {
                    Some(Ok(Message::Text(text))) => match self.handle(&text) {
                        Handled::Subscribed => return Ok(socket),
                        Handled::Resync => return Err(AttemptEnd::Resync),
                        Handled::Other => {}
                    },
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        return Err(AttemptEnd::Failed)
                    }
                    Some(Ok(_)) => {}
                }
            }
        };
        tokio::select! {
            result = tokio::time::timeout(ATTEMPT_TIMEOUT, work) => {
                result.unwrap_or(Err(AttemptEnd::Failed))
            }
            _ = orders.wait_for(|o| o.stop) => Err(AttemptEnd::Stop),
        }
    }

    async fn follow(&mut self, socket: &mut Socket, orders: &mut watch::Receiver<Order>) -> End {
        // A drop ordered while this socket was being opened counts for it too.
        let order = *orders.borrow();
        if order.stop {
            return End::Stop;
        }
        if order.drops > self.drops_seen {
            self.drops_seen = order.drops;
            return End::Lost;
        }
        loop {
            tokio::select! {
                next = socket.next() => match next {
                    Some(Ok(Message::Text(text))) => {
                        if let Handled::Resync = self.handle(&text) {
                            return End::Resync;
                        }
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return End::Lost,
                    // Ping frames are answered by tungstenite itself.
                    Some(Ok(_)) => {}
                },
                changed = orders.changed() => {
                    let order = *orders.borrow_and_update();
                    if changed.is_err() || order.stop {
                        return End::Stop;
                    }
                    if order.drops > self.drops_seen {
                        self.drops_seen = order.drops;
                        return End::Lost;
                    }
                }
            }
        }
    }

    /// Takes one server message into the replica and the log.
    fn handle(&mut self, text: &str) -> Handled {
        Traffic::add(&self.shared.traffic.ws_received, text.len());
        let message = match serde_json::from_str::<ServerMessage>(text) {
            Ok(message) => message,
            Err(_) => {
                self.shared.errors.add("bad_message");
                return Handled::Other;
            }
        };
        match message {
            ServerMessage::Changes { changes, .. } => {
                self.catching_up += changes.len() as u64;
                self.take(&changes);
                Handled::Other
            }
            ServerMessage::Subscribed { cursor, .. } => {
                if cursor != self.log.replica.cursor().version {
                    self.shared.errors.add("subscribed_cursor_mismatch");
                }
                let now = self.shared.ledger.now_ns();
                if self.log.subscribed_ns.is_empty() {
                    self.shared.subscribed.fetch_add(1, Relaxed);
                }
                let resubscribed = self.after_drop(now)
                    && !self.log.subscribed_ns.iter().any(|&at| self.after_drop(at));
                if resubscribed {
                    self.shared.resubscribed.fetch_add(1, Relaxed);
                }
                self.log.subscribed_ns.push(now);
                self.log.catch_up_changes.push(self.catching_up);
                Handled::Subscribed
            }
            ServerMessage::Resync { .. } => Handled::Resync,
            ServerMessage::Error { error } => {
                self.shared.errors.add(error.code());
                Handled::Other
            }
            // The server pings with WebSocket frames; a `ping` message would be a
            // protocol change this client does not need to follow. It never says
            // who it is, so it gets no presence.
            ServerMessage::Ping { .. } | ServerMessage::Pong { .. } => Handled::Other,
            ServerMessage::Presence { .. } => {
                self.shared.errors.add("unasked_presence");
                Handled::Other
            }
        }
    }

    /// Merges changes and logs their versions and tokens.
    fn take(&mut self, changes: &[Change]) {
        let at_ns = self.shared.ledger.now_ns();
        for change in changes {
            if self
                .log
                .versions
                .last()
                .is_some_and(|&last| change.version <= last)
            {
                self.log.repeated_versions += 1;
            }
            self.log.versions.push(change.version);
            let token = change
                .node
                .field("title")
                .and_then(|v| v.as_str())
                .and_then(Token::parse);
            if let Some(token) = token {
                match self.shared.ledger.receive(token, at_ns, &mut self.seen) {
                    Receipt::First => {}
                    Receipt::Duplicate => self.shared.errors.add("duplicate_delivery"),
                    Receipt::Unknown => self.shared.errors.add("unknown_token"),
                }
            }
        }
        self.log.replica.apply_remote(changes, wall_clock_ms());
    }

    /// After `resync`: pull from the cursor until nothing more, as the browser does.
    async fn pull_after_resync(&mut self) {
        for _ in 0..1000 {
            let after = self.log.replica.cursor().version;
            match self.shared.api.pull(self.shared.list, after).await {
                Ok((page, _)) => {
                    self.take(&page.changes);
                    if !page.more {
                        return;
                    }
                }
                // The next subscribe catches up from the cursor anyway.
                Err(_) => return,
            }
        }
    }

    fn after_drop(&self, at_ns: u64) -> bool {
        let drop_ns = self.shared.drop_ns.load(Relaxed);
        drop_ns != 0 && at_ns >= drop_ns
    }
}

/// Why an attempt gave no socket.
enum AttemptEnd {
    Stop,
    Failed,
    Resync,
}
