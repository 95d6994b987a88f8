//! Several Tether nodes on one PostgreSQL database (docs/DEPLOYMENT.md).
//!
//! Each test starts real servers in-process (and, for a hard kill, the real binary)
//! on a fresh database of the PostgreSQL server that `make test` starts
//! (`TETHER_TEST_POSTGRES`, see scripts/postgres.sh), and talks to them over real
//! HTTP and WebSocket:
//!
//! * writers on every node, subscribers on every node, one list: every subscriber
//!   receives every change once, in strictly increasing versions, and ends equal to
//!   a fresh pull;
//! * commits racing from three nodes: a reader that follows the list by cursor on
//!   each node never skips a version (versions become visible in order);
//! * edits of the same todos racing from three nodes lose no field (no edit is
//!   merged on a stale view of the todo);
//! * a batch acknowledged by one node and resent to another is applied once;
//! * presence crosses nodes, and a socket's leaving too;
//! * one uid created in two lists on two nodes at once is stored once;
//! * a node killed with SIGKILL loses nothing it acknowledged, and its writers carry
//!   on through another node;
//! * PostgreSQL restarted under writers: pushes fail as `unavailable` or unreachable,
//!   are retried, nothing acknowledged is lost or doubled, live streams resume
//!   without a gap, and `/healthz` says 503 while the node hears nothing.
//!
//! Without `TETHER_TEST_POSTGRES` each test says so and passes: `make test` always
//! sets it (and fails if it cannot).

#![cfg(feature = "ssr")]

mod common;

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Duration};

use sqlx::Connection;

use common::{
    binary, merge_ops, postgres_database, postgres_server, within, Api, Author, Failure, Live,
    TempDir, TestServer,
};
use tether::model::{Change, Node, PushAck, PushRequest, ServerMessage, Uid};

/// A fresh database on the test PostgreSQL server, or `None` (the test is skipped).
fn fresh_database() -> Option<String> {
    let Some(server) = postgres_server() else {
        eprintln!("skipped: TETHER_TEST_POSTGRES is not set (make test sets it)");
        return None;
    };
    Some(postgres_database(
        &server,
        &format!("cluster_{}", Uid::new()),
    ))
}

/// `n` in-process nodes on the database `url`.
async fn nodes(url: &str, n: usize) -> Vec<TestServer> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        let url = url.to_string();
        nodes.push(TestServer::start_with(move |c| c.database.url = url).await);
    }
    nodes
}

/// Reads a live socket until its cursor reaches `cursor`: every change, checking on
/// the way that versions strictly increase across messages (nothing repeated).
async fn follow_until(live: &mut Live, mut at: u64, cursor: u64) -> Vec<Change> {
    let mut changes = Vec::new();
    while at < cursor {
        match live.next().await {
            ServerMessage::Changes {
                changes: page,
                cursor: c,
                ..
            } => {
                for change in &page {
                    assert!(change.version > at, "version {} after {at}", change.version);
                    at = change.version;
                }
                assert_eq!(c, at, "a message's cursor is its last change");
                changes.extend(page);
            }
            other => panic!("expected changes up to {cursor}, got {other:?}"),
        }
    }
    changes
}

/// The latest state of each node named in `changes`.
fn latest(changes: impl IntoIterator<Item = Change>) -> BTreeMap<Uid, Node> {
    let mut nodes = BTreeMap::new();
    for change in changes {
        nodes.insert(change.node.uid, change.node);
    }
    nodes
}

/// Waits until the node behind `api` answers `/healthz` with 200 again.
async fn healthy_again(api: &Api) {
    within("healthy again", async {
        while api.get_status("/healthz").await != 200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// The list's last version, as a full pull through `api` shows it.
async fn last_version(api: &Api, list: Uid) -> u64 {
    api.pull_all(list, 0, None)
        .await
        .last()
        .map_or(0, |c| c.version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_subscriber_on_every_node_gets_every_change_once_in_order() {
    let Some(url) = fresh_database() else { return };
    let nodes = nodes(&url, 3).await;
    let list = Uid::new();
    let mut subscribers = Vec::new();
    for node in &nodes {
        for _ in 0..2 {
            let (live, caught_up, cursor) = Live::subscribe(node.addr(), list, 0).await;
            assert!(caught_up.is_empty());
            subscribers.push((live, cursor));
        }
    }

    // A writer on each node, all at once: creates, and edits of their own todos.
    let mut writers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let api = node.api.clone();
        writers.push(tokio::spawn(async move {
            let mut author = Author::new(list);
            let mut acks = Vec::new();
            for round in 0..25 {
                let todo = author.add_todo(&format!("node {i} todo {round}"));
                author.add_todo(&format!("node {i} todo {round}b"));
                if round % 3 == 0 {
                    author.set(todo, "completed", serde_json::json!(true));
                }
                acks.extend(author.flush(&api, 10).await);
            }
            acks
        }));
    }
    let mut acks: Vec<PushAck> = Vec::new();
    for writer in writers {
        acks.extend(writer.await.unwrap());
    }

    let truth = nodes[0].api.state(list).await;
    let last = last_version(&nodes[1].api, list).await;
    assert_eq!(truth.len(), 3 * 25 * 2);
    assert!(acks.iter().all(|a| a.version <= last));
    for (live, cursor) in &mut subscribers {
        let changes = within("a subscriber catches up", follow_until(live, *cursor, last)).await;
        assert_eq!(
            latest(changes),
            truth,
            "a subscriber's replica equals a fresh pull"
        );
    }
    // Operators see the nodes hearing each other.
    let metrics = within(
        "GET /metrics",
        reqwest::get(format!("{}/metrics", nodes[1].api.base)),
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    for figure in [
        "tether_notification_lag_seconds_count",
        "tether_fanout_lag_seconds_count",
        "tether_changes_feed_connected 1",
    ] {
        assert!(metrics.contains(figure), "{figure} in:\n{metrics}");
    }
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_following_by_cursor_never_skips_a_version_while_commits_race() {
    let Some(url) = fresh_database() else { return };
    let nodes = nodes(&url, 3).await;
    let list = Uid::new();
    let done = Arc::new(tokio::sync::Notify::new());

    // Readers poll each node by cursor while the writers race: a version that became
    // visible before a smaller one would move a cursor past the smaller one for ever.
    let mut readers = Vec::new();
    for node in &nodes {
        let (api, done) = (node.api.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let (mut cursor, mut seen) = (0, BTreeMap::new());
            let mut finished = std::pin::pin!(done.notified());
            loop {
                let last_round = tokio::time::timeout(Duration::ZERO, &mut finished)
                    .await
                    .is_ok();
                for change in api.pull_all(list, cursor, Some(7)).await {
                    cursor = change.version;
                    seen.insert(change.node.uid, change.node);
                }
                if last_round {
                    return seen;
                }
            }
        }));
    }
    let mut writers = Vec::new();
    for node in &nodes {
        for _ in 0..4 {
            let api = node.api.clone();
            writers.push(tokio::spawn(async move {
                let mut author = Author::new(list);
                for i in 0..30 {
                    author.add_todo(&format!("race {i}"));
                    author.flush(&api, 1).await;
                }
            }));
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    done.notify_waiters();
    let truth = nodes[0].api.state(list).await;
    assert_eq!(truth.len(), 3 * 4 * 30);
    for reader in readers {
        let seen = within("a reader ends", reader).await.unwrap();
        assert_eq!(seen.len(), truth.len(), "the reader skipped a version");
        assert_eq!(seen, truth);
    }
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test]
async fn a_batch_acknowledged_by_one_node_and_resent_to_another_is_applied_once() {
    let Some(url) = fresh_database() else { return };
    let nodes = nodes(&url, 2).await;
    let mut author = Author::new(Uid::new());
    author.create_list("Shared");
    author.add_todo("Milk");
    author.add_todo("Bread");
    let req = author.request(100);
    let first = nodes[0].api.push_ok(&req).await;
    let before = nodes[0].dump().await;
    let again = nodes[1].api.push_ok(&req).await;
    assert_eq!(again.acked_seq, first.acked_seq);
    assert_eq!(again.version, first.version, "no new version");
    assert_eq!(nodes[1].dump().await, before, "nothing stored twice");
    assert_eq!(
        first.version, 3,
        "versions count per list: list node + 2 todos"
    );
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edits_of_the_same_todos_racing_from_three_nodes_lose_no_field() {
    let Some(url) = fresh_database() else { return };
    let nodes = nodes(&url, 3).await;
    let mut creator = Author::new(Uid::new());
    creator.create_list("Contended");
    let todos: Vec<Uid> = (0..12)
        .map(|i| creator.add_todo(&format!("todo {i}")))
        .collect();
    let mut made = creator.request(100).ops;
    creator.flush(&nodes[0].api, 100).await;

    // Nine writers (three per node) rename every todo, round after round, while one
    // writer per node ticks off its own four todos, once each. A rename is merged on
    // the node's view of the todo; if that view were read before another node's
    // tick committed, the rename would store the todo unticked again, for good.
    let mut writers = Vec::new();
    for i in 0..12 {
        let (api, todos) = (nodes[i % 3].api.clone(), todos.clone());
        let mut author = Author::new(creator.list());
        writers.push(tokio::spawn(async move {
            author.catch_up(&api).await;
            let mut sent = Vec::new();
            for round in 0..25 {
                if i < 9 {
                    for todo in &todos {
                        author.set(*todo, "title", serde_json::json!(format!("{i}:{round}")));
                    }
                } else if round % 6 == 1 {
                    let todo = todos[(i - 9) * 4 + round / 6];
                    author.set(todo, "completed", serde_json::json!(true));
                } else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                sent.extend(author.request(100).ops);
                author.flush(&api, 100).await;
            }
            sent
        }));
    }
    for writer in writers {
        made.extend(writer.await.unwrap());
    }

    // Every node stores, for every field, the value whose stamp is latest: the state
    // the sync module reaches merging every acknowledged op in any order.
    let expected = merge_ops(&made);
    for node in &nodes {
        let stored = latest(node.api.pull_all(creator.list(), 0, None).await);
        assert_eq!(
            stored, expected,
            "no field lost to a view read before the lock"
        );
    }
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn people_on_different_nodes_see_each_other_and_see_one_leave() {
    let Some(url) = fresh_database() else { return };
    let nodes = nodes(&url, 2).await;
    let list = Uid::new();
    let (mut ada, ..) = Live::subscribe(nodes[0].addr(), list, 0).await;
    let (mut bo, ..) = Live::subscribe(nodes[1].addr(), list, 0).await;
    ada.say("Ada", "#112233", None).await;
    bo.say("Bo", "#445566", None).await;
    let names = |peers: &[tether::model::presence::Peer]| {
        let mut names: Vec<String> = peers.iter().map(|p| p.name.clone()).collect();
        names.sort();
        names
    };
    let (peers, count) = ada.presence_until(|peers| peers.len() == 2).await;
    assert_eq!((names(&peers), count), (vec!["Ada".into(), "Bo".into()], 2));
    bo.presence_until(|peers| peers.len() == 2).await;

    // Bo's socket closes: its node tells the others at once, not on expiry.
    drop(bo);
    let started = std::time::Instant::now();
    let (peers, count) = ada.presence_until(|peers| peers.len() == 1).await;
    assert_eq!((names(&peers), count), (vec!["Ada".into()], 1));
    assert!(started.elapsed() < Duration::from_secs(2), "left at once");
    for node in nodes {
        node.stop().await;
    }
}

/// `req` moved to `list` with a new client id: the same node uids, in another list.
fn moved_to(req: &PushRequest, list: Uid) -> PushRequest {
    let client = tether::model::ClientId::new();
    let text = serde_json::to_string(req)
        .unwrap()
        .replace(&req.list.to_string(), &list.to_string())
        .replace(&req.client.to_string(), &client.to_string());
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_uid_created_in_two_lists_on_two_nodes_at_once_is_stored_once() {
    let Some(url) = fresh_database() else { return };
    let nodes = nodes(&url, 2).await;
    for _ in 0..10 {
        let mut author = Author::new(Uid::new());
        let todo = author.add_todo("Mine");
        let mine = author.request(10);
        let theirs = moved_to(&mine, Uid::new());
        let (a, b) = tokio::join!(nodes[0].api.push(&mine), nodes[1].api.push(&theirs));
        let winner = match (&a, &b) {
            (Ok(_), Err(refused)) => refused
                .error
                .code()
                .starts_with("foreign")
                .then_some(mine.list),
            (Err(refused), Ok(_)) => refused
                .error
                .code()
                .starts_with("foreign")
                .then_some(theirs.list),
            _ => None,
        };
        let winner = winner.unwrap_or_else(|| panic!("exactly one wins: {a:?} {b:?}"));
        let dump = nodes[0].dump().await;
        let rows: Vec<_> = dump
            .iter()
            .filter(|l| l.starts_with(&format!("node {todo}")))
            .collect();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert!(rows[0].contains(&winner.to_string()), "{rows:?}");
    }
    for node in nodes {
        node.stop().await;
    }
}

/// A writer that pushes through whichever node answers, retrying what was not
/// acknowledged, as the browser does.
async fn push_somewhere(author: &mut Author, apis: &[Api]) -> Vec<PushAck> {
    let mut acks = Vec::new();
    let mut attempt = 0usize;
    while let Some(req) = author.replica.push_request(5) {
        let api = &apis[attempt % apis.len()];
        match api.try_push(&req).await {
            Ok(ack) => {
                author.replica.ack(req.client, ack.acked_seq);
                acks.push(ack);
            }
            Err(Failure::Network(_)) => attempt += 1,
            Err(Failure::Refused(r)) if r.error.code() == "unavailable" => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                attempt += 1;
            }
            Err(Failure::Refused(r)) => panic!("refused: {r:?}"),
        }
        assert!(attempt < 400, "no node took the push");
    }
    acks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_with_sigkill_loses_nothing_it_acknowledged() {
    let Some(url) = fresh_database() else { return };
    let dir = TempDir::new();
    let ports = [binary::free_port(), binary::free_port()];
    let mut children = Vec::new();
    for port in ports {
        let mut command = binary::command(dir.path(), port);
        command.env("TETHER_DATABASE_URL", &url);
        children.push(binary::KillOnDrop(binary::start(command, port).await));
    }
    let apis: Vec<Api> = ports
        .iter()
        .map(|p| Api::new(SocketAddr::from(([127, 0, 0, 1], *p))))
        .collect();
    let list = Uid::new();
    let (mut author, mut acked) = (Author::new(list), 0);
    for round in 0..40 {
        author.add_todo(&format!("todo {round}"));
        // Through node 0 while it lives, then through whoever answers.
        acked += push_somewhere(&mut author, &apis).await.len();
        if round == 20 {
            binary::signal(&children[0].0, "KILL");
        }
    }
    assert!(acked > 0);
    let state = apis[1].state(list).await;
    let titles: Vec<_> = state.values().filter_map(|n| n.field("title")).collect();
    assert_eq!(titles.len(), 40, "every acknowledged todo is there, once");
    author.catch_up(&apis[1]).await;
    assert_eq!(author.replica.pending(), 0);
}

/// A PostgreSQL server of the test's own (so restarting it disturbs no other test),
/// stopped and removed when dropped.
struct OwnPostgres {
    dir: TempDir,
    url: String,
}

impl OwnPostgres {
    fn start() -> OwnPostgres {
        let dir = TempDir::new();
        let port = binary::free_port().to_string();
        let data = dir.path().join("pg");
        let out = std::process::Command::new("scripts/postgres.sh")
            .args(["start", data.to_str().unwrap(), &port])
            .output()
            .expect("run scripts/postgres.sh start");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let server = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let url = postgres_database(&server, "restarted");
        OwnPostgres { dir, url }
    }

    fn script(&self, command: &str) {
        let data = self.dir.path().join("pg");
        let status = std::process::Command::new("scripts/postgres.sh")
            .args([command, data.to_str().unwrap()])
            .status()
            .expect("run scripts/postgres.sh");
        assert!(status.success(), "scripts/postgres.sh {command}");
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.script("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarted_under_writers_loses_nothing_and_live_resumes_without_a_gap() {
    if fresh_database().is_none() {
        return;
    }
    let postgres = OwnPostgres::start();
    let nodes = nodes(&postgres.url, 2).await;
    let list = Uid::new();
    let (mut live, _, cursor) = Live::subscribe(nodes[1].addr(), list, 0).await;
    let apis = vec![nodes[0].api.clone()];
    let writer = tokio::spawn(async move {
        let mut author = Author::new(list);
        for i in 0..60 {
            author.add_todo(&format!("through a restart {i}"));
            push_somewhere(&mut author, &apis).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    postgres.script("restart");
    within("the writer finishes", writer).await.unwrap();

    // The node that follows the list heard nothing during the restart: it reads by
    // version once it listens again, so its subscriber misses nothing.
    let truth = nodes[0].api.state(list).await;
    assert_eq!(
        truth.len(),
        60,
        "nothing acknowledged lost, nothing doubled"
    );
    let last = last_version(&nodes[0].api, list).await;
    let changes = within("live resumes", follow_until(&mut live, cursor, last)).await;
    assert_eq!(latest(changes), truth);
    for node in &nodes {
        healthy_again(&node.api).await;
    }
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_stops_hearing_the_others_says_so_and_misses_nothing() {
    let Some(url) = fresh_database() else { return };
    let nodes = nodes(&url, 2).await;
    let list = Uid::new();
    let (mut live, _, cursor) = Live::subscribe(nodes[1].addr(), list, 0).await;

    // Cut every listening connection of this database (what a PostgreSQL restart,
    // a proxy or a network blip does to it), then commit through the other node
    // while the notification has nobody to reach.
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(cut.len(), 2, "each node listens on a connection of its own");
    let mut author = Author::new(list);
    author.add_todo("said while nobody listened");
    author.flush(&nodes[0].api, 10).await;

    // Meanwhile /healthz says the node cannot hear the others; then it can again.
    let body = within("503 while not listening", async {
        loop {
            let response = reqwest::get(format!("{}/healthz", nodes[1].api.base))
                .await
                .unwrap();
            if response.status() == 503 {
                return response.json::<serde_json::Value>().await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(body["changes_feed"], "disconnected", "{body}");
    assert_eq!(body["database"], "ok", "{body}");
    healthy_again(&nodes[1].api).await;

    // Back, the node reads by version: the change it was never told of arrives.
    let last = last_version(&nodes[0].api, list).await;
    let changes = within("the missed change", follow_until(&mut live, cursor, last)).await;
    assert_eq!(latest(changes), nodes[0].api.state(list).await);
    for node in nodes {
        node.stop().await;
    }
}
