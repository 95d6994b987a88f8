//! Shared helpers of the server's integration tests.
//!
//! Every test starts a real server in-process ([`TestServer::start`]) on a random
//! loopback port with a fresh SQLite file in its own temporary directory, and talks
//! to it the way a browser does: JSON over real HTTP ([`Api`], reqwest) and the live
//! WebSocket ([`Live`], tokio-tungstenite). Ops are made by the sync module's own
//! [`Replica`] ([`Author`]), so stamps, sequence numbers and order keys are the real
//! thing, not hand-written JSON (except where a test forges bad input on purpose).
//!
//! Every await on the network is wrapped in [`TIMEOUT`], so a server that stops
//! answering fails the test instead of hanging the suite.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tether::{
    model::{
        wall_clock_ms, Change, ClientId, ClientMessage, List, Node, Op, Placement, PullPage,
        PushAck, PushRequest, Replica, ServerMessage, SyncError, Todo, Uid,
    },
    server::{config::Config, http, RunningServer},
};
use tokio_tungstenite::{
    tungstenite::{protocol::CloseFrame, Message},
    MaybeTlsStream, WebSocketStream,
};

/// The state every replica must reach: each node's ops merged by the sync module
/// itself (the order does not matter; that is what the model's own tests prove).
pub fn merge_ops<'a>(ops: impl IntoIterator<Item = &'a Op>) -> BTreeMap<Uid, Node> {
    let mut nodes = BTreeMap::new();
    for op in ops {
        nodes
            .entry(op.node())
            .or_insert_with(|| Node::new(op.node()))
            .merge(&op.to_delta());
    }
    nodes
}

/// How long any single network step may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test with `what` if it takes longer than [`TIMEOUT`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(TIMEOUT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {TIMEOUT:?}: {what}"),
    }
}

/// A directory under the system temp dir, removed with everything in it on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("tether-it-{}", Uid::new()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The configuration every test starts from: the shipped defaults, a random port, a
/// database file in `dir`, and a push rate no test reaches by accident (the rate
/// limit has a test of its own that sets it low).
pub fn config(dir: &Path) -> Config {
    let mut config = Config {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        site_root: dir.join("site"),
        log: "warn".into(),
        ..Config::default()
    };
    config.database.url = database_url(dir, "t.db");
    config.sync.max_pushes_per_second = 1_000_000;
    config
}

/// The PostgreSQL server the tests may use, as a URL (`make test` starts a
/// throwaway one: `scripts/postgres.sh run`), if there is one.
pub fn postgres_server() -> Option<String> {
    std::env::var("TETHER_TEST_POSTGRES")
        .ok()
        .filter(|url| !url.is_empty())
}

/// Whether this run of the suite stores on PostgreSQL (`TETHER_TEST_STORE=postgres`,
/// set by `make test` for its second pass) rather than on SQLite files.
pub fn on_postgres() -> bool {
    std::env::var("TETHER_TEST_STORE").is_ok_and(|store| store == "postgres")
}

/// The database a test server in `dir` stores in: a SQLite file named `file` in
/// `dir`, or, when the suite runs on PostgreSQL, a database of its own named after
/// `dir` (created by the server at start; the same `dir` names the same database,
/// so a restarted server finds what it stored).
pub fn database_url(dir: &Path, file: &str) -> String {
    if !on_postgres() {
        return format!("sqlite://{}", dir.join(file).display());
    }
    let server = postgres_server().expect("TETHER_TEST_STORE=postgres needs TETHER_TEST_POSTGRES");
    postgres_database(
        &server,
        &format!("{}_{file}", dir.file_name().unwrap().to_string_lossy()),
    )
}

/// The URL of the database `name` (made a valid identifier) on the server `server`.
pub fn postgres_database(server: &str, name: &str) -> String {
    let base = server.rsplit_once('/').map_or(server, |(base, _)| base);
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let name = format!("t_{}", &name[name.len().saturating_sub(60)..]);
    format!("{base}/{name}")
}

/// A running server with its database directory and a client for its API.
pub struct TestServer {
    pub server: RunningServer,
    pub api: Api,
    /// Kept so the directory outlives the server; `None` when the caller owns it.
    dir: Option<TempDir>,
}

impl TestServer {
    /// A server on a fresh database with the default test configuration.
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// A server on a fresh database, after `tweak` adjusted the configuration.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = TempDir::new();
        let mut config = config(dir.path());
        tweak(&mut config);
        let mut server = TestServer::start_config(config).await;
        server.dir = Some(dir);
        server
    }

    /// A server with exactly this configuration (the caller owns the database).
    pub async fn start_config(config: Config) -> TestServer {
        let server = within("server start", http::start(config))
            .await
            .expect("server starts");
        let api = Api::new(server.addr);
        TestServer {
            server,
            api,
            dir: None,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The whole store, row by row (see `Db::dump`).
    pub async fn dump(&self) -> Vec<String> {
        self.server
            .state
            .db
            .dump()
            .await
            .expect("dump the database")
    }

    /// Shuts the server down gracefully; fails the test if that is not prompt.
    pub async fn stop(self) {
        let TestServer { server, dir, .. } = self;
        within("graceful shutdown", server.shutdown(Duration::from_secs(5))).await;
        drop(dir);
    }
}

/// An error answer: the HTTP status and the typed error in the body.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub status: u16,
    pub error: SyncError,
}

impl Refused {
    /// Asserts the error's code and status, and that the status is the one the
    /// protocol defines for that error (`SyncError::http_status`).
    pub fn assert(&self, code: &str, status: u16) {
        assert_eq!(self.error.code(), code, "{self:?}");
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.error.http_status(), status, "{self:?}");
    }
}

/// The HTTP API of one server, as a browser's sync client calls it.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(addr: SocketAddr) -> Api {
        Api {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
        }
    }

    /// POSTs `body` as JSON text to `path`; answers the status and the body (parsed
    /// as JSON if it is JSON, else as a JSON string of the text).
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = within(
            path,
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .header("accept", "application/json")
                .body(body)
                .send(),
        )
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = response.status().as_u16();
        let text = within(path, response.text()).await.expect("response body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    /// POSTs `body` and decodes a 200 as `T` or anything else as a [`Refused`].
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> Result<T, Refused> {
        let (status, json) = self.post_raw(path, body).await;
        if status == 200 {
            Ok(serde_json::from_value(json.clone())
                .unwrap_or_else(|e| panic!("{path} answered 200 with {json}: {e}")))
        } else {
            let error = serde_json::from_value(json.clone()).unwrap_or_else(|e| {
                panic!("{path} answered {status} with {json}, not a SyncError: {e}")
            });
            Err(Refused { status, error })
        }
    }

    pub async fn push(&self, req: &PushRequest) -> Result<PushAck, Refused> {
        self.call("/api/push", serde_json::to_string(req).unwrap())
            .await
    }

    /// Pushes a batch that must be accepted.
    pub async fn push_ok(&self, req: &PushRequest) -> PushAck {
        self.push(req)
            .await
            .unwrap_or_else(|e| panic!("push refused: {e:?}"))
    }

    /// Pushes a batch that must be refused; answers why.
    pub async fn push_err(&self, body: &Value) -> Refused {
        match self.call::<PushAck>("/api/push", body.to_string()).await {
            Ok(ack) => panic!("push of {body} was accepted: {ack:?}"),
            Err(refused) => refused,
        }
    }

    pub async fn pull(
        &self,
        list: Uid,
        after: u64,
        limit: Option<u32>,
    ) -> Result<PullPage, Refused> {
        let body = serde_json::json!({"list": list, "after": after, "limit": limit});
        self.call("/api/pull", body.to_string()).await
    }

    pub async fn pull_ok(&self, list: Uid, after: u64, limit: Option<u32>) -> PullPage {
        self.pull(list, after, limit)
            .await
            .unwrap_or_else(|e| panic!("pull refused: {e:?}"))
    }

    /// Every change of `list` after `after`, following the pages to the end, with
    /// the paging invariants checked on the way.
    pub async fn pull_all(&self, list: Uid, after: u64, limit: Option<u32>) -> Vec<Change> {
        let mut changes: Vec<Change> = Vec::new();
        let mut cursor = after;
        loop {
            let page = self.pull_ok(list, cursor, limit).await;
            assert_eq!(page.list, list);
            if let Some(limit) = limit {
                assert!(page.changes.len() <= limit as usize, "page over its limit");
            }
            for change in &page.changes {
                assert!(
                    change.version > cursor,
                    "version {} not after {cursor}",
                    change.version
                );
                cursor = change.version;
            }
            assert_eq!(
                page.cursor, cursor,
                "the cursor is the last change's version"
            );
            changes.extend(page.changes);
            if !page.more {
                return changes;
            }
        }
    }

    /// The list as the server has it: every node's latest state by uid.
    pub async fn state(&self, list: Uid) -> BTreeMap<Uid, Node> {
        let changes = self.pull_all(list, 0, None).await;
        let mut nodes = BTreeMap::new();
        for change in changes {
            assert!(
                nodes.insert(change.node.uid, change.node).is_none(),
                "a full pull names each node once"
            );
        }
        nodes
    }

    /// GET `path`; answers the status.
    pub async fn get_status(&self, path: &str) -> u16 {
        within(path, self.http.get(format!("{}{path}", self.base)).send())
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .status()
            .as_u16()
    }
}

/// Why a request of a client that expects trouble did not succeed: the server was
/// not reachable (refused, reset, timed out: a crash or a restart), or it answered
/// with a typed error.
#[derive(Debug)]
pub enum Failure {
    Network(String),
    Refused(Refused),
}

impl Api {
    /// Like [`Api::call`], but a connection that fails or an answer that does not
    /// arrive within [`TIMEOUT`] is a [`Failure::Network`] instead of a failed
    /// test: for clients that keep going while the server crashes under them.
    pub async fn try_call<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: String,
    ) -> Result<T, Failure> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .timeout(TIMEOUT)
            .body(body)
            .send()
            .await
            .map_err(|e| Failure::Network(e.to_string()))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| Failure::Network(e.to_string()))?;
        if status == 200 {
            return serde_json::from_str(&text)
                .map_err(|e| panic!("{path} answered 200 with {text}: {e}"));
        }
        match serde_json::from_str::<SyncError>(&text) {
            Ok(error) => Err(Failure::Refused(Refused { status, error })),
            Err(e) => panic!("{path} answered {status} with {text}, not a SyncError: {e}"),
        }
    }

    pub async fn try_push(&self, req: &PushRequest) -> Result<PushAck, Failure> {
        self.try_call("/api/push", serde_json::to_string(req).unwrap())
            .await
    }

    pub async fn try_pull(&self, list: Uid, after: u64) -> Result<PullPage, Failure> {
        let body = serde_json::json!({"list": list, "after": after, "limit": null});
        self.try_call("/api/pull", body.to_string()).await
    }
}

/// A small deterministic random generator (SplitMix64), so a run that fails can be
/// repeated with the seed it printed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The seed from the environment variable `var` if set, else from the clock;
    /// answers the generator and the seed (to print).
    pub fn from_env(var: &str) -> (Rng, u64) {
        let seed = match std::env::var(var) {
            Ok(text) => text
                .parse()
                .unwrap_or_else(|_| panic!("{var}={text:?} is not a u64")),
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64,
        };
        (Rng::new(seed), seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// One of `items`, if there is any.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            Some(&items[self.next_u64() as usize % items.len()])
        }
    }
}

/// One writing client: a replica of one list that makes real ops.
pub struct Author {
    pub replica: Replica,
}

impl Author {
    pub fn new(list: Uid) -> Author {
        Author {
            replica: Replica::new(list, ClientId::new()),
        }
    }

    pub fn list(&self) -> Uid {
        self.replica.list()
    }

    pub fn client(&self) -> ClientId {
        self.replica.client()
    }

    /// Creates the list node itself.
    pub fn create_list(&mut self, title: &str) -> Op {
        let list = List {
            title: title.into(),
        };
        self.replica
            .create_root(&list, wall_clock_ms())
            .expect("create the list node")
    }

    /// Adds a todo at the end of the list.
    pub fn add_todo(&mut self, title: &str) -> Uid {
        self.add_todo_at(title, wall_clock_ms())
    }

    /// Adds a todo at the end of the list, stamped as if the wall clock read `wall_ms`.
    pub fn add_todo_at(&mut self, title: &str, wall_ms: u64) -> Uid {
        let todo = Todo {
            title: title.into(),
            completed: false,
        };
        let list = self.list();
        self.replica
            .create(list, Placement::End, &todo, wall_ms)
            .expect("create a todo")
            .0
    }

    pub fn set(&mut self, node: Uid, field: &str, value: Value) -> Op {
        self.replica
            .set(node, field, value, wall_clock_ms())
            .expect("set a field")
    }

    pub fn delete(&mut self, node: Uid) -> Op {
        self.replica
            .delete(node, wall_clock_ms())
            .expect("delete a node")
    }

    /// The outbox as one batch (at most `max` ops), without taking it out.
    pub fn request(&self, max: usize) -> PushRequest {
        self.replica.push_request(max).expect("something to push")
    }

    /// Pushes the whole outbox in batches of at most `max` ops; answers the acks.
    pub async fn flush(&mut self, api: &Api, max: usize) -> Vec<PushAck> {
        let mut acks = Vec::new();
        while let Some(req) = self.replica.push_request(max) {
            let ack = api.push_ok(&req).await;
            assert_eq!(ack.acked_seq, req.ops.last().unwrap().seq);
            self.replica.ack(req.client, ack.acked_seq);
            acks.push(ack);
        }
        acks
    }

    /// Pulls everything new and merges it into the replica.
    pub async fn catch_up(&mut self, api: &Api) {
        let after = self.replica.cursor().version;
        let changes = api.pull_all(self.list(), after, None).await;
        self.replica.apply_remote(&changes, wall_clock_ms());
    }
}

/// What the live socket delivered next.
#[derive(Debug)]
pub enum Frame {
    Message(ServerMessage),
    Close(Option<CloseFrame>),
    /// The connection ended without a close frame.
    Ended,
}

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A live socket on `/api/live`.
pub struct Live {
    pub ws: Socket,
}

impl Live {
    pub async fn connect(addr: SocketAddr) -> Live {
        let url = format!("ws://{addr}/api/live");
        let (ws, _) = within("websocket connect", tokio_tungstenite::connect_async(url))
            .await
            .expect("websocket handshake");
        Live { ws }
    }

    pub async fn send(&mut self, message: &ClientMessage) {
        let text = serde_json::to_string(message).unwrap();
        within("websocket send", self.ws.send(Message::text(text)))
            .await
            .expect("send on the live socket");
    }

    /// Connects, subscribes to `list` after `after`, and reads the catch-up up to
    /// `subscribed`; answers the socket, the catch-up changes and the cursor.
    pub async fn subscribe(addr: SocketAddr, list: Uid, after: u64) -> (Live, Vec<Change>, u64) {
        let mut live = Live::connect(addr).await;
        live.send(&ClientMessage::Subscribe {
            list,
            after,
            client: None,
        })
        .await;
        let mut changes = Vec::new();
        loop {
            match live.next().await {
                ServerMessage::Changes {
                    list: l,
                    changes: page,
                    ..
                } => {
                    assert_eq!(l, list);
                    changes.extend(page);
                }
                ServerMessage::Subscribed {
                    list: l, cursor, ..
                } => {
                    assert_eq!(l, list);
                    return (live, changes, cursor);
                }
                other => panic!("unexpected {other:?} before `subscribed`"),
            }
        }
    }

    /// The next frame that matters: a message, a close, or the end. WebSocket pings
    /// are answered by tungstenite while reading and skipped here.
    pub async fn frame(&mut self) -> Frame {
        loop {
            let next = within("a live message", self.ws.next()).await;
            match next {
                Some(Ok(Message::Text(text))) => {
                    let message = serde_json::from_str(text.as_str())
                        .unwrap_or_else(|e| panic!("not a ServerMessage: {text}: {e}"));
                    return Frame::Message(message);
                }
                Some(Ok(Message::Close(frame))) => return Frame::Close(frame),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => panic!("unexpected frame {other:?}"),
                Some(Err(_)) | None => return Frame::Ended,
            }
        }
    }

    /// The next message; fails the test if the socket closes instead.
    pub async fn next(&mut self) -> ServerMessage {
        match self.frame().await {
            Frame::Message(message) => message,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// Reads `changes` messages until the cursor reaches `cursor`; answers every
    /// change they carried.
    pub async fn changes_until(&mut self, cursor: u64) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut at = 0;
        while at < cursor {
            match self.next().await {
                ServerMessage::Changes {
                    changes: page,
                    cursor: c,
                    ..
                } => {
                    changes.extend(page);
                    at = c;
                }
                other => panic!("expected changes up to {cursor}, got {other:?}"),
            }
        }
        changes
    }

    /// Says who this socket is (`presence`).
    pub async fn say(&mut self, name: &str, color: &str, editing: Option<Uid>) {
        let presence = tether::model::presence::Presence {
            name: name.into(),
            color: color.into(),
            editing,
        };
        self.send(&ClientMessage::Presence(presence)).await;
    }

    /// Reads until a `presence` set for which `done` holds; answers it (other
    /// messages on the way are skipped).
    pub async fn presence_until(
        &mut self,
        done: impl Fn(&[tether::model::presence::Peer]) -> bool,
    ) -> (Vec<tether::model::presence::Peer>, u32) {
        loop {
            if let ServerMessage::Presence { peers, count, .. } = self.next().await {
                if done(&peers) {
                    return (peers, count);
                }
            }
        }
    }

    /// Expects the server to close the socket next (pings skipped); answers the
    /// close frame, `None` if the connection just ended.
    pub async fn expect_close(&mut self) -> Option<CloseFrame> {
        match self.frame().await {
            Frame::Close(frame) => frame,
            Frame::Ended => None,
            Frame::Message(message) => panic!("expected a close, got {message:?}"),
        }
    }
}

/// Asserts that versions strictly increase and returns them.
pub fn versions(changes: &[Change]) -> Vec<u64> {
    let versions: Vec<u64> = changes.iter().map(|c| c.version).collect();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions must strictly increase: {versions:?}"
    );
    versions
}

/// The real `tether` binary, run as a separate process.
pub mod binary {
    use std::{
        net::{SocketAddr, TcpListener},
        path::Path,
        process::{Child, Command, ExitStatus, Stdio},
        time::{Duration, Instant},
    };

    /// A loopback port that was free a moment ago (the binary must be told its
    /// port in advance, so it cannot be 0).
    pub fn free_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        listener.local_addr().unwrap().port()
    }

    /// The binary with a clean environment of `TETHER_*` variables (none inherited
    /// from whoever runs the tests), run in `dir` (so no `Leptos.toml` is read
    /// unless the test puts one there), with a database in `dir`.
    pub fn command(dir: &Path, port: u16) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tether"));
        for (var, _) in std::env::vars().filter(|(k, _)| k.starts_with("TETHER_")) {
            command.env_remove(var);
        }
        command
            .current_dir(dir)
            .env("TETHER_ADDR", format!("127.0.0.1:{port}"))
            .env("TETHER_DATABASE_URL", super::database_url(dir, "bin.db"))
            .env("TETHER_SITE_ROOT", dir.join("site"))
            .env("TETHER_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    /// Starts the binary and waits until `/healthz` answers 200.
    pub async fn start(mut command: Command, port: u16) -> Child {
        let mut child = command.spawn().expect("spawn the tether binary");
        let api = super::Api::new(SocketAddr::from(([127, 0, 0, 1], port)));
        let deadline = Instant::now() + super::TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the binary exited before serving: {status}");
            }
            let healthy = api
                .http
                .get(format!("{}/healthz", api.base))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if healthy {
                return child;
            }
            assert!(Instant::now() < deadline, "the binary never became healthy");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sends `signal` (`TERM`, `KILL`, …) to the child with `kill`.
    pub fn signal(child: &Child, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the child to exit, at most `limit`; kills it and fails otherwise.
    /// Answers the exit status and how long it took.
    pub async fn wait_exit(child: &mut Child, limit: Duration) -> (ExitStatus, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status, start.elapsed());
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the binary did not exit within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A child process that is killed when dropped, so a test that fails midway
    /// leaves no server running behind it.
    pub struct KillOnDrop(pub Child);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if let Ok(None) = self.0.try_wait() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }

    /// Everything the child wrote to stderr (after it exited).
    pub fn stderr(child: &mut Child) -> String {
        read_all(child.stderr.take())
    }

    /// Everything the child wrote to stdout (after it exited; only when the command
    /// piped it: `command` sends it nowhere).
    pub fn stdout(child: &mut Child) -> String {
        read_all(child.stdout.take())
    }

    fn read_all(pipe: Option<impl std::io::Read>) -> String {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            pipe.read_to_string(&mut text).unwrap();
        }
        text
    }
}
