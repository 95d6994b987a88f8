//! Crash durability: the real server binary is killed with SIGKILL at random moments
//! while several writers push continuously, and nothing it acknowledged is lost.
//!
//! Each writer is a [`Replica`] with an outbox, driven the way the browser client
//! drives one: it writes locally, pushes its oldest ops over HTTP, drops them from
//! the outbox only on a 200 acknowledgement, and after a failure (connection refused
//! or reset while the server is dead, a 503) waits with jittered backoff and resends
//! what is still unacknowledged. Meanwhile the test kills the server `N` times,
//! each time at a random moment after it acknowledged something, and restarts it on
//! the same database file. Right after each kill, a copy of the files on disk must
//! already hold every acknowledged sequence number. At the end the writers stop
//! writing and drain their outboxes, and:
//!
//! * every acknowledged op has its effect in the server's state (its registers hold
//!   its stamp or a later one), and `client_seqs` records it;
//! * the state is exactly the merge of every op ever made: nothing lost, nothing
//!   invented; a full pull names each node once, versions strictly increase;
//! * resending every acknowledged batch again changes nothing (exactly once);
//! * every writer's replica, caught up, equals a fresh pull.
//!
//! `TETHER_CRASH_KILLS` (default 3) sets the number of kills, `TETHER_CRASH_SEED`
//! replays a run, `TETHER_CRASH_SYNCHRONOUS` (`full`, the default, or `normal`) the
//! SQLite level the server runs with. The figures of a run are printed (see them
//! with `--nocapture`); docs/RELIABILITY.md records the 20-kill run. With
//! `TETHER_TEST_STORE=postgres` (`make test`'s second pass) the binary stores on
//! PostgreSQL, and right after each kill the database itself must hold every
//! acknowledged seq (there are no files of the server's to copy).

#![cfg(feature = "ssr")]

mod common;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, RwLock,
    },
    time::{Duration, Instant},
};

use common::{binary, merge_ops, within, Api, Failure, Rng, TempDir, TIMEOUT};
use serde_json::json;
use sqlx::{sqlite::SqliteConnectOptions, ConnectOptions, Connection, Row};
use tether::model::{
    wall_clock_ms, Action, ClientId, List, Node, Op, Placement, PushRequest, Replica, Todo, Uid,
};

/// Writers pushing at once.
const WRITERS: usize = 4;
/// Ops in one push, at most (the browser's batches are small too).
const MAX_BATCH: usize = 20;
/// A writer stops writing while this many ops wait (the server is down for long).
const MAX_PENDING: usize = 200;
/// How long the outboxes may take to drain once the last server is up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// What the test and the writers share.
struct Shared {
    /// The address of the server now running (a new port after each restart).
    addr: RwLock<SocketAddr>,
    /// Set once the kills are over: make no new ops, drain the outbox, stop.
    stop: AtomicBool,
    /// Acknowledged pushes so far, over all writers.
    acked_pushes: AtomicUsize,
    /// The highest acknowledged seq of each writer.
    acked_seq: Vec<AtomicU64>,
}

impl Shared {
    fn api(&self) -> Api {
        Api::new(*self.addr.read().unwrap())
    }
}

/// What a writer did, for the checks and the figures.
struct Writer {
    replica: Replica,
    /// Every op it made, in order.
    made: Vec<Op>,
    /// Every op the server acknowledged, when it did.
    acked: Vec<Op>,
    /// Every batch that was acknowledged, to send again at the end.
    batches: Vec<PushRequest>,
    pushes: usize,
    failures: usize,
    /// Ops that had to be sent more than once (their first answer never came).
    resent: HashSet<u64>,
}

/// Makes one random local write: mostly new todos and edits of todos (its own or
/// other writers', learnt from pulls, so the same fields are written concurrently),
/// sometimes a move, a delete or the list's title.
fn write_something(replica: &mut Replica, rng: &mut Rng, index: usize) -> Op {
    let list = replica.list();
    let now = wall_clock_ms();
    let todos = replica.children(list);
    let roll = rng.range(0, 99);
    let target = rng.pick(&todos).copied();
    let op = match (roll, target) {
        (0..=34, _) | (_, None) => {
            let todo = Todo {
                title: format!("w{index} #{}", replica.next_seq()),
                completed: false,
            };
            replica
                .create(list, Placement::End, &todo, now)
                .map(|(_, op)| op)
        }
        (35..=64, Some(node)) => replica.set(
            node,
            "title",
            json!(format!("w{index} edit {}", rng.next_u64() % 1000)),
            now,
        ),
        (65..=84, Some(node)) => replica.set(node, "completed", json!(rng.chance(50)), now),
        (85..=91, Some(node)) => {
            let at = if rng.chance(50) {
                Placement::Start
            } else {
                Placement::End
            };
            replica.move_to(node, list, at, now)
        }
        (92..=96, Some(node)) if todos.len() > 5 => replica.delete(node, now),
        _ if replica.node(list).is_some_and(Node::is_live) => {
            replica.set(list, "title", json!(format!("Crash list {index}")), now)
        }
        _ => {
            let todo = Todo {
                title: format!("w{index} #{}", replica.next_seq()),
                completed: false,
            };
            replica
                .create(list, Placement::Start, &todo, now)
                .map(|(_, op)| op)
        }
    };
    op.expect("a valid local write")
}

/// One writer: writes and pushes until told to stop, then drains its outbox.
async fn writer(index: usize, replica: Replica, shared: Arc<Shared>, seed: u64) -> Writer {
    let mut rng = Rng::new(seed);
    let list = replica.list();
    let mut w = Writer {
        replica,
        made: Vec::new(),
        acked: Vec::new(),
        batches: Vec::new(),
        pushes: 0,
        failures: 0,
        resent: HashSet::new(),
    };
    if index == 0 {
        let op = w
            .replica
            .create_root(
                &List {
                    title: "Crash".into(),
                },
                wall_clock_ms(),
            )
            .unwrap();
        w.made.push(op);
    }
    let mut sent: HashSet<u64> = HashSet::new();
    let mut failures_in_a_row = 0u32;
    let mut stopped_at: Option<Instant> = None;
    for round in 0u64.. {
        let stopping = shared.stop.load(Ordering::SeqCst);
        if stopping {
            let since = *stopped_at.get_or_insert_with(Instant::now);
            if w.replica.pending() == 0 {
                break;
            }
            assert!(
                since.elapsed() < DRAIN_TIMEOUT,
                "writer {index}: {} ops still unacknowledged after {DRAIN_TIMEOUT:?}",
                w.replica.pending()
            );
        } else if w.replica.pending() < MAX_PENDING {
            for _ in 0..rng.range(1, 3) {
                let op = write_something(&mut w.replica, &mut rng, index);
                w.made.push(op);
            }
        }
        let api = shared.api();
        // Catch up now and then, to learn (and then edit) the others' todos. A pull
        // that fails is simply tried again later.
        if round % 8 == 0 {
            if let Ok(page) = api.try_pull(list, w.replica.cursor().version).await {
                w.replica.apply_remote(&page.changes, page.server_time_ms);
            }
        }
        let Some(req) = w.replica.push_request(MAX_BATCH) else {
            continue;
        };
        for op in &req.ops {
            if !sent.insert(op.seq) {
                w.resent.insert(op.seq);
            }
        }
        w.pushes += 1;
        match api.try_push(&req).await {
            Ok(ack) => {
                assert_eq!(ack.list, list);
                assert!(ack.acked_seq >= req.ops.last().unwrap().seq, "{ack:?}");
                w.acked
                    .extend(req.ops.iter().filter(|op| op.seq <= ack.acked_seq).cloned());
                w.replica.ack(req.client, ack.acked_seq);
                shared.acked_seq[index].store(ack.acked_seq, Ordering::SeqCst);
                shared.acked_pushes.fetch_add(1, Ordering::SeqCst);
                w.batches.push(req);
                failures_in_a_row = 0;
            }
            Err(Failure::Refused(r)) if r.error.code() == "rate_limited" => {
                w.failures += 1;
                if let tether::model::SyncError::RateLimited { retry_after_ms } = r.error {
                    tokio::time::sleep(Duration::from_millis(retry_after_ms)).await;
                }
            }
            // The server is dead, restarting, or could not commit: retry the same
            // ops after a short jittered backoff, as the browser does (on a scale
            // of milliseconds rather than seconds, to keep the test short).
            Err(Failure::Network(_)) => {
                w.failures += 1;
                failures_in_a_row += 1;
                backoff(&mut rng, failures_in_a_row).await;
            }
            Err(Failure::Refused(r)) if r.error.code() == "unavailable" => {
                w.failures += 1;
                failures_in_a_row += 1;
                backoff(&mut rng, failures_in_a_row).await;
            }
            Err(Failure::Refused(r)) => {
                panic!("writer {index}: the server refused a valid batch: {r:?}")
            }
        }
    }
    w
}

/// Full jitter: a random wait up to 5 ms × 2^failures, capped at 200 ms.
async fn backoff(rng: &mut Rng, failures: u32) {
    let cap = (5u64 << failures.min(6)).min(200);
    tokio::time::sleep(Duration::from_millis(rng.range(1, cap))).await;
}

/// The server binary on `dir`'s database, on a fresh port, with its log appended
/// to `log`.
async fn start_server(dir: &Path, log: &Path, synchronous: &str) -> (binary::KillOnDrop, u16) {
    let port = binary::free_port();
    let mut command = binary::command(dir, port);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    command
        .env("TETHER_DATABASE_SYNCHRONOUS", synchronous)
        // The rate limit has its own tests; here every push should hit the store.
        .env("TETHER_MAX_PUSHES_PER_SECOND", "1000000")
        .stderr(log);
    (binary::KillOnDrop(binary::start(command, port).await), port)
}

/// Opens a SQLite file (read-only use) with a single connection.
async fn open_db(path: &Path) -> sqlx::SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// Each client's last applied seq as the database holds it right now: on
/// PostgreSQL (`TETHER_TEST_STORE=postgres`) read from the database the server used;
/// on SQLite, see [`disk_seqs`].
async fn stored_seqs(dir: &Path) -> HashMap<String, u64> {
    if !common::on_postgres() {
        return disk_seqs(&dir.join("bin.db"), &dir.join("scratch")).await;
    }
    let url = common::database_url(dir, "bin.db");
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT client, last_seq FROM client_seqs")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    rows.into_iter().map(|(c, s)| (c, s as u64)).collect()
}

/// What is on disk right now, read from a copy of the database and its WAL (so the
/// restarted server recovers from the very files the killed one left): the
/// integrity check and each client's last applied seq.
async fn disk_seqs(db: &Path, scratch: &Path) -> HashMap<String, u64> {
    std::fs::create_dir_all(scratch).unwrap();
    let copy = scratch.join("copy.db");
    for suffix in ["", "-wal"] {
        let from = PathBuf::from(format!("{}{suffix}", db.display()));
        let to = PathBuf::from(format!("{}{suffix}", copy.display()));
        let _ = std::fs::remove_file(&to);
        if from.exists() {
            std::fs::copy(&from, &to).unwrap();
        }
    }
    let _ = std::fs::remove_file(format!("{}-shm", copy.display()));
    let mut conn = open_db(&copy).await;
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, "ok", "the database survived the kill intact");
    let seqs = sqlx::query("SELECT client, last_seq FROM client_seqs")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.get::<String, _>(0), row.get::<i64, _>(1) as u64))
        .collect();
    drop(conn);
    seqs
}

/// Asserts that `op`'s write is in `node`: each register it wrote holds its stamp
/// or a later one (the kind: its stamp or an earlier create's).
fn assert_effect(op: &Op, node: Option<&Node>) {
    let node = node.unwrap_or_else(|| panic!("acknowledged op {op:?} lost: no node"));
    let field_at_least = |name: &str| {
        let register = node
            .fields
            .get(name)
            .unwrap_or_else(|| panic!("acknowledged op {op:?} lost: no field {name}"));
        assert!(register.stamp >= op.stamp, "acknowledged {op:?} lost");
    };
    match &op.action {
        Action::Create { kind, fields, .. } => {
            let k = node.kind.as_ref().expect("a created node has its kind");
            assert!(
                &k.value == kind && k.stamp <= op.stamp,
                "create {op:?} lost"
            );
            assert!(node.position.as_ref().unwrap().stamp >= op.stamp);
            fields.keys().for_each(|name| field_at_least(name));
        }
        Action::Set { field, .. } => field_at_least(field),
        Action::Delete { .. } => {
            assert!(
                node.deleted.is_some_and(|s| s >= op.stamp),
                "delete {op:?} lost"
            )
        }
        Action::Move { .. } => {
            let position = node.position.as_ref().expect("a moved node has a position");
            assert!(position.stamp >= op.stamp, "move {op:?} lost");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_at_random_moments() {
    let kills: usize = std::env::var("TETHER_CRASH_KILLS")
        .map(|k| k.parse().expect("TETHER_CRASH_KILLS is a number"))
        .unwrap_or(3);
    let synchronous =
        std::env::var("TETHER_CRASH_SYNCHRONOUS").unwrap_or_else(|_| "full".to_string());
    let (mut rng, seed) = Rng::from_env("TETHER_CRASH_SEED");
    eprintln!("crash run: {kills} kills, synchronous={synchronous}, TETHER_CRASH_SEED={seed}");
    let started = Instant::now();
    let dir = TempDir::new();
    let log = dir.path().join("server.log");

    let (mut server, port) = start_server(dir.path(), &log, &synchronous).await;
    let list = Uid::new();
    let clients: Vec<ClientId> = (0..WRITERS).map(|_| ClientId::new()).collect();
    let shared = Arc::new(Shared {
        addr: RwLock::new(SocketAddr::from(([127, 0, 0, 1], port))),
        stop: AtomicBool::new(false),
        acked_pushes: AtomicUsize::new(0),
        acked_seq: (0..WRITERS).map(|_| AtomicU64::new(0)).collect(),
    });
    let writers: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(i, client)| {
            let replica = Replica::new(list, *client);
            tokio::spawn(writer(i, replica, shared.clone(), rng.next_u64()))
        })
        .collect();

    // Ops committed whose acknowledgement the kill swallowed (resent later).
    let mut committed_unacked = 0;
    for kill in 1..=kills {
        // A random moment, once this server has acknowledged something (else the
        // kill would test nothing).
        let before = shared.acked_pushes.load(Ordering::SeqCst);
        within("an acknowledged push before the kill", async {
            while shared.acked_pushes.load(Ordering::SeqCst) == before {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        tokio::time::sleep(Duration::from_millis(rng.range(0, 500))).await;
        binary::signal(&server.0, "KILL");
        let (status, _) = binary::wait_exit(&mut server.0, TIMEOUT).await;
        assert!(!status.success(), "killed, not exited");

        // The server is dead: whatever it acknowledged must be in its files now.
        let acked: Vec<u64> = shared
            .acked_seq
            .iter()
            .map(|s| s.load(Ordering::SeqCst))
            .collect();
        let on_disk = stored_seqs(dir.path()).await;
        for (client, acked) in clients.iter().zip(&acked) {
            let stored = on_disk.get(&client.to_string()).copied().unwrap_or(0);
            assert!(
                stored >= *acked,
                "kill {kill}: client {client} was acknowledged up to seq {acked}, \
                 but the file holds only {stored}"
            );
            committed_unacked += stored - acked;
        }

        let (next, port) = start_server(dir.path(), &log, &synchronous).await;
        server = next;
        *shared.addr.write().unwrap() = SocketAddr::from(([127, 0, 0, 1], port));
        eprintln!(
            "kill {kill}/{kills} at {:.1}s: {} pushes acknowledged so far",
            started.elapsed().as_secs_f64(),
            shared.acked_pushes.load(Ordering::SeqCst)
        );
    }
    let crashed_for = started.elapsed();

    // Stop writing; every outbox drains into the last server.
    shared.stop.store(true, Ordering::SeqCst);
    let mut done = Vec::new();
    for w in writers {
        done.push(
            tokio::time::timeout(DRAIN_TIMEOUT + TIMEOUT, w)
                .await
                .expect("the writers drain in time")
                .expect("a writer failed"),
        );
    }
    let api = shared.api();

    // 1. The state: a full pull names each node once, in strictly increasing
    //    versions (`Api::state`/`pull_all` check both), also in small pages.
    let state = api.state(list).await;
    let paged = api.pull_all(list, 0, Some(50)).await;
    assert_eq!(paged.len(), state.len());
    assert!(paged.iter().all(|c| state[&c.node.uid] == c.node));

    // 2. Every acknowledged op has its effect; after the drain every op made was
    //    acknowledged, and the state is exactly their merge.
    let mut made = Vec::new();
    for w in &done {
        for op in &w.acked {
            assert_effect(op, state.get(&op.node()));
        }
        let acked: HashSet<u64> = w.acked.iter().map(|op| op.seq).collect();
        assert_eq!(acked.len(), w.acked.len(), "an op acknowledged twice");
        assert!(
            w.made.iter().all(|op| acked.contains(&op.seq)),
            "the outbox drained"
        );
        made.extend(w.made.iter().cloned());
    }
    assert_eq!(
        state,
        merge_ops(&made),
        "the server holds exactly the merge of every op made"
    );

    // 3. Exactly once: resending every acknowledged batch again changes nothing.
    let before = api.pull_all(list, 0, None).await;
    for w in &done {
        let last = w.made.last().map_or(0, |op| op.seq);
        for batch in &w.batches {
            let ack = api.push_ok(batch).await;
            assert_eq!(ack.acked_seq, last, "a resend is acknowledged as applied");
        }
    }
    assert_eq!(
        api.pull_all(list, 0, None).await,
        before,
        "resends changed nothing"
    );

    // 4. Every writer's replica, caught up, is the server's state.
    for (i, w) in done.iter_mut().enumerate() {
        let after = w.replica.cursor().version;
        let changes = api.pull_all(list, after, None).await;
        w.replica.apply_remote(&changes, wall_clock_ms());
        let replica: BTreeMap<Uid, Node> = w.replica.nodes().map(|n| (n.uid, n.clone())).collect();
        assert_eq!(replica, state, "writer {i} converged to the server's state");
        assert_eq!(w.replica.pending(), 0);
    }

    // 5. Stopped cleanly, the file records every client's last seq.
    binary::signal(&server.0, "TERM");
    let (status, _) = binary::wait_exit(&mut server.0, TIMEOUT).await;
    assert!(status.success(), "graceful stop");
    let on_disk = stored_seqs(dir.path()).await;
    for (client, w) in clients.iter().zip(&done) {
        let last = w.made.last().map_or(0, |op| op.seq);
        assert_eq!(on_disk.get(&client.to_string()).copied(), Some(last));
    }

    let pushes: usize = done.iter().map(|w| w.pushes).sum();
    let failures: usize = done.iter().map(|w| w.failures).sum();
    let resent: usize = done.iter().map(|w| w.resent.len()).sum();
    eprintln!(
        "crash run done in {:.1}s ({:.1}s of kills): {kills} SIGKILLs, synchronous={synchronous}, \
         {WRITERS} writers, {} ops made and acknowledged, {pushes} pushes \
         ({} acknowledged, {failures} failed and retried), {resent} ops sent more than once, \
         {committed_unacked} ops committed but not yet acknowledged when the server died, \
         {} nodes, last version {}; nothing lost, nothing applied twice",
        started.elapsed().as_secs_f64(),
        crashed_for.as_secs_f64(),
        made.len(),
        done.iter().map(|w| w.batches.len()).sum::<usize>(),
        state.len(),
        before.last().map_or(0, |c| c.version),
    );
}
