//! Scenario (f): this machine's limits, measured in the same run as Tether.
//!
//! Each limit is the bare version of one thing Tether does, with Tether taken out:
//!
//! * WebSocket echo: one tokio-tungstenite client and a minimal axum echo route in
//!   this process, over loopback; the round trip of a message the size of a
//!   one-change `changes` message.
//! * WebSocket broadcast: N clients on a minimal axum route that forwards a tokio
//!   broadcast channel (Tether's hub without the database, JSON or protocol); the
//!   latency to each client and to the last one, and the memory of a socket pair.
//! * SQLite insert: rows of Tether's real node JSON into Tether's own schema, with
//!   Tether's own upsert, 500 rows per statement, through sqlx with the same
//!   pragmas (WAL, synchronous=FULL), in transactions of a given size.
//! * SQLite read: the pull query over a list of N such rows, page by page.
//!
//! Both sides of a socket run in this one process, so a pair's memory is the bare
//! cost of a client plus a server socket: an upper bound for the server half.

use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};

use axum::{
    extract::{
        ws::{Message as AxumMessage, Utf8Bytes, WebSocket, WebSocketUpgrade},
        State,
    },
    response::Response,
    routing::get,
    Router,
};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use sqlx::Acquire;
use tokio::{
    net::TcpListener,
    sync::{broadcast, watch},
    time::Instant,
};
use tokio_tungstenite::tungstenite::{self, Message};

use super::{
    cpu, rss, socket,
    stats::{median, Histogram, Summary},
};
use crate::{
    model::{
        clock::wall_clock_ms,
        wire::{Change, ServerMessage},
        ClientId, Placement, Replica, Todo, Uid,
    },
    server::{config::DatabaseConfig, store::sqlite::SqliteStore as Db},
};

/// Why a limit could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("the bare server cannot listen: {0}")]
    Listen(#[from] std::io::Error),
    #[error("bare WebSocket: {0}")]
    WebSocket(#[from] tungstenite::Error),
    #[error("the bare echo socket closed")]
    EchoClosed,
    #[error("bare broadcast: not every socket subscribed")]
    NotListening,
    #[error("bare broadcast: a message did not arrive")]
    NotDelivered,
    #[error("the scratch database: {0}")]
    Open(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("bare SQLite: {0}")]
    Sql(#[from] sqlx::Error),
}

/// What the broadcast limit measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BroadcastLimit {
    pub sockets: usize,
    pub rounds: usize,
    /// Sent → each client received.
    pub per_delivery: Summary,
    /// Sent → the last client received, per round.
    pub to_all: Summary,
    /// This process's memory growth per connected pair (client + server socket).
    pub pair_kb: Option<f64>,
    /// CPU this process (bare server and clients together) used per round.
    pub cpu_ms_per_round: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct InsertLimit {
    pub rows: usize,
    pub rows_per_tx: usize,
    pub seconds: f64,
    pub rows_per_s: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReadLimit {
    pub rows: usize,
    pub page: usize,
    /// Median of the rounds.
    pub ms: f64,
    pub bytes: u64,
}

/// Every limit a run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Limits {
    pub ws_echo_rtt: Option<Summary>,
    pub ws_broadcast: Option<BroadcastLimit>,
    /// One push per transaction (rows = the batch).
    pub sqlite_insert_per_push: Option<InsertLimit>,
    /// A full group commit per transaction.
    pub sqlite_insert_per_group: Option<InsertLimit>,
    pub sqlite_read: Option<ReadLimit>,
}

/// A `changes` message with one todo, as Tether sends it: the payload size of the
/// bare socket limits.
pub fn sample_changes_message() -> String {
    let list = Uid::new();
    let mut replica = Replica::new(list, ClientId::new());
    let todo = Todo {
        title: "w0-123456".into(),
        completed: false,
    };
    let (_, op) = replica
        .create(list, Placement::End, &todo, wall_clock_ms())
        .expect("a valid todo");
    serde_json::to_string(&ServerMessage::Changes {
        list,
        changes: vec![Change {
            version: 123_456,
            node: op.to_delta(),
        }],
        cursor: 123_456,
        more: false,
    })
    .expect("a message serialises")
}

// ----- the bare WebSocket server -----

#[derive(Clone)]
struct BareState {
    tx: broadcast::Sender<Utf8Bytes>,
    listening: Arc<AtomicUsize>,
}

/// A minimal axum WebSocket server in this process: `/echo` and `/broadcast`.
struct BareServer {
    addr: std::net::SocketAddr,
    state: BareState,
    stop: watch::Sender<bool>,
}

impl BareServer {
    async fn start() -> std::io::Result<BareServer> {
        let state = BareState {
            tx: broadcast::channel(1024).0,
            listening: Arc::default(),
        };
        let app = Router::new()
            .route("/echo", get(echo))
            .route("/broadcast", get(fan_out))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, mut stopped) = watch::channel(false);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
        });
        Ok(BareServer { addr, state, stop })
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }
}

impl Drop for BareServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The same socket settings as Tether's live route, so only Tether's work differs.
fn small(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.read_buffer_size(1024).write_buffer_size(0)
}

async fn echo(ws: WebSocketUpgrade) -> Response {
    small(ws).on_upgrade(|mut socket: WebSocket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            let echoed = match message {
                AxumMessage::Text(_) | AxumMessage::Binary(_) => socket.send(message).await,
                AxumMessage::Close(_) => return,
                _ => Ok(()),
            };
            if echoed.is_err() {
                return;
            }
        }
    })
}

async fn fan_out(ws: WebSocketUpgrade, State(state): State<BareState>) -> Response {
    small(ws).on_upgrade(move |socket: WebSocket| async move {
        let mut rx = state.tx.subscribe();
        state.listening.fetch_add(1, Relaxed);
        let (mut tx, mut incoming) = socket.split();
        loop {
            tokio::select! {
                message = rx.recv() => match message {
                    Ok(text) => if tx.send(AxumMessage::Text(text)).await.is_err() { break },
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                message = incoming.next() => match message {
                    Some(Ok(AxumMessage::Close(_))) | Some(Err(_)) | None => break,
                    _ => {}
                },
            }
        }
        state.listening.fetch_sub(1, Relaxed);
    })
}

// ----- the measurements -----

/// Round trips of `payload` through a bare echo socket: `rounds` after a warm-up.
pub async fn ws_echo(payload: &str, rounds: usize) -> Result<Summary, LimitError> {
    let server = BareServer::start().await?;
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(
        server.url("/echo"),
        Some(socket::small_buffers()),
        true,
    )
    .await?;
    let histogram = Histogram::default();
    for i in 0..rounds + rounds / 10 {
        let start = Instant::now();
        socket.send(Message::Text(payload.into())).await?;
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(_))) => break,
                Some(Ok(_)) => {}
                _ => return Err(LimitError::EchoClosed),
            }
        }
        if i >= rounds / 10 {
            histogram.record(start.elapsed());
        }
    }
    let _ = socket.close(None).await;
    Ok(histogram.summary())
}

/// `sockets` bare clients; `rounds` times one message to all of them.
pub async fn ws_broadcast(
    payload: &str,
    sockets: usize,
    rounds: usize,
    concurrency: usize,
) -> Result<BroadcastLimit, LimitError> {
    let server = BareServer::start().await?;
    let origin = Instant::now();
    let per_delivery = Arc::new(Histogram::default());
    let received = Arc::new(AtomicU64::new(0));
    let last_ns = Arc::new(AtomicU64::new(0));
    let sent_ns = Arc::new(AtomicU64::new(0));
    let memory_before = rss::read_self();

    let url = server.url("/broadcast");
    let connected: Vec<_> = futures::stream::iter(0..sockets)
        .map(|_| {
            let url = url.clone();
            async move {
                tokio_tungstenite::connect_async_with_config(
                    url,
                    Some(socket::small_buffers()),
                    true,
                )
                .await
                .map(|(socket, _)| socket)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut clients = Vec::with_capacity(sockets);
    for socket in connected {
        let mut socket = socket?;
        let (per_delivery, received, last_ns, sent_ns) = (
            per_delivery.clone(),
            received.clone(),
            last_ns.clone(),
            sent_ns.clone(),
        );
        clients.push(tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                if let Message::Text(_) = message {
                    let at = origin.elapsed().as_nanos() as u64;
                    per_delivery.record_ns(at.saturating_sub(sent_ns.load(Relaxed)));
                    last_ns.fetch_max(at, Relaxed);
                    received.fetch_add(1, Relaxed);
                }
            }
        }));
    }
    let ready = Instant::now() + Duration::from_secs(30);
    while server.state.listening.load(Relaxed) < sockets {
        if Instant::now() > ready {
            return Err(LimitError::NotListening);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pair_kb = match (memory_before, rss::read_self()) {
        (Some(before), Some(after)) if sockets > 0 => {
            Some(after.rss_kb.saturating_sub(before.rss_kb) as f64 / sockets as f64)
        }
        _ => None,
    };

    let to_all = Histogram::default();
    let payload = Utf8Bytes::from(payload.to_string());
    let cpu_before = cpu::own_seconds();
    for round in 1..=rounds {
        let start = origin.elapsed().as_nanos() as u64;
        sent_ns.store(start, Relaxed);
        let _ = server.state.tx.send(payload.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        while received.load(Relaxed) < (round * sockets) as u64 {
            if Instant::now() > deadline {
                return Err(LimitError::NotDelivered);
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        to_all.record_ns(last_ns.load(Relaxed).saturating_sub(start));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu_ms_per_round = cpu_before
        .zip(cpu::own_seconds())
        .map(|(before, after)| (after - before) * 1000.0 / rounds.max(1) as f64);
    drop(server);
    for client in clients {
        client.abort();
    }
    Ok(BroadcastLimit {
        sockets,
        rounds,
        per_delivery: per_delivery.summary(),
        to_all: to_all.summary(),
        pair_kb,
        cpu_ms_per_round,
    })
}

/// A scratch database with Tether's schema and pragmas, removed when dropped.
struct Scratch {
    db: Db,
    dir: std::path::PathBuf,
}

impl Scratch {
    async fn open() -> Result<Scratch, LimitError> {
        let dir = std::env::temp_dir().join(format!("tether-limits-{}", Uid::new()));
        let url = format!("sqlite://{}", dir.join("bare.db").display());
        let db = Db::open(&DatabaseConfig {
            url,
            ..DatabaseConfig::default()
        })
        .await
        .map_err(|e| LimitError::Open(e.into()))?;
        Ok(Scratch { db, dir })
    }

    async fn close(self) {
        self.db.close().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `rows` node states of real todos, as stored JSON, with their uids. One todo is
/// made by a replica; the others are copies with their own uid and title (a
/// replica of 100,000 nodes would only cost memory and time here).
fn node_rows(list: Uid, rows: usize) -> Vec<(String, String)> {
    let mut replica = Replica::new(list, ClientId::new());
    let todo = Todo {
        title: "w0-0".into(),
        completed: false,
    };
    let (_, op) = replica
        .create(list, Placement::End, &todo, wall_clock_ms())
        .expect("a valid todo");
    let template = op.to_delta();
    (0..rows)
        .map(|i| {
            let mut node = template.clone();
            node.uid = Uid::new();
            if let Some(title) = node.fields.get_mut("title") {
                title.value = format!("w0-{i}").into();
            }
            let state = serde_json::to_string(&node).expect("a node serialises");
            (node.uid.to_string(), state)
        })
        .collect()
}

/// Rows per multi-row INSERT: SQLite's bound values (32,766) allow far more, and
/// past a few hundred rows a bigger statement gains nothing.
const ROWS_PER_STATEMENT: usize = 500;

/// Tether's upsert of node rows (as `server::store::sqlite::store_nodes` writes them), for
/// `rows` rows at once.
fn upsert(rows: usize) -> String {
    let values = vec!["(?,?,?,?,?)"; rows].join(",");
    format!(
        "INSERT INTO nodes (uid, list_uid, kind, version, state) VALUES {values} \
         ON CONFLICT (uid, list_uid) DO UPDATE SET kind = excluded.kind, \
         version = excluded.version, state = excluded.state"
    )
}

async fn insert_rows(
    db: &Db,
    list: Uid,
    rows: &[(String, String)],
    rows_per_tx: usize,
    first_version: i64,
) -> Result<Duration, sqlx::Error> {
    let mut conn = db.write.acquire().await?;
    let list = list.to_string();
    sqlx::query("INSERT INTO lists (uid, created_at_ms) VALUES (?1, 0) ON CONFLICT DO NOTHING")
        .bind(&list)
        .execute(&mut *conn)
        .await?;
    let start = Instant::now();
    let mut version = first_version;
    for chunk in rows.chunks(rows_per_tx.max(1)) {
        let mut tx = conn.begin().await?;
        for statement in chunk.chunks(ROWS_PER_STATEMENT) {
            let sql = upsert(statement.len());
            let mut query = sqlx::query(&sql);
            for (uid, state) in statement {
                query = query
                    .bind(uid)
                    .bind(&list)
                    .bind("todo")
                    .bind(version)
                    .bind(state);
                version += 1;
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    Ok(start.elapsed())
}

/// Inserts `rows` rows, `rows_per_tx` per transaction.
pub async fn sqlite_insert(rows: usize, rows_per_tx: usize) -> Result<InsertLimit, LimitError> {
    let scratch = Scratch::open().await?;
    let list = Uid::new();
    let data = node_rows(list, rows);
    let time = insert_rows(&scratch.db, list, &data, rows_per_tx, 1).await;
    scratch.close().await;
    let seconds = time?.as_secs_f64();
    Ok(InsertLimit {
        rows,
        rows_per_tx,
        seconds,
        rows_per_s: rows as f64 / seconds,
    })
}

/// Reads a list of `rows` rows with the pull query, `page` rows at a time.
pub async fn sqlite_read(rows: usize, page: usize, rounds: usize) -> Result<ReadLimit, LimitError> {
    let scratch = Scratch::open().await?;
    let list = Uid::new();
    let data = node_rows(list, rows);
    insert_rows(&scratch.db, list, &data, rows.max(1), 1).await?;
    let mut times = Vec::with_capacity(rounds);
    let mut bytes = 0;
    for _ in 0..rounds.max(1) {
        let start = Instant::now();
        let (mut after, mut total) = (0i64, 0u64);
        loop {
            let page_rows: Vec<(String, i64, String)> = sqlx::query_as(
                "SELECT uid, version, state FROM nodes \
                 WHERE list_uid = ?1 AND version > ?2 ORDER BY version LIMIT ?3",
            )
            .bind(list.to_string())
            .bind(after)
            .bind(page as i64)
            .fetch_all(&scratch.db.read)
            .await?;
            let Some(last) = page_rows.last() else { break };
            after = last.1;
            total += page_rows.iter().map(|r| r.2.len() as u64).sum::<u64>();
            if page_rows.len() < page {
                break;
            }
        }
        times.push(start.elapsed());
        bytes = total;
    }
    scratch.close().await;
    Ok(ReadLimit {
        rows,
        page,
        ms: median(times).as_secs_f64() * 1000.0,
        bytes,
    })
}
