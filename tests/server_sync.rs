//! Push and pull over real HTTP: the round trip, idempotent resends, convergence of
//! concurrent writers to the model's own last-writer-wins merge, and paging that
//! never skips or repeats a change — neither over 5,000 changes stamped in one
//! millisecond nor while pushes race the puller.

#![cfg(feature = "ssr")]

mod common;

use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use common::{merge_ops, versions, within, Author, TestServer};
use serde_json::json;
use tether::model::{wall_clock_ms, Node, Op, PushRequest, Uid};

#[tokio::test]
async fn push_then_pull_round_trips_and_a_resend_is_applied_once() {
    let server = TestServer::start().await;
    let api = &server.api;
    let mut author = Author::new(Uid::new());
    let list = author.list();
    author.create_list("Groceries");
    let milk = author.add_todo("Milk");
    let eggs = author.add_todo("Eggs");
    author.set(milk, "completed", json!(true));
    author.add_todo("Bread");
    let req = author.request(100);
    assert_eq!(req.ops.len(), 5);

    let ack = api.push_ok(&req).await;
    assert_eq!((ack.list, ack.acked_seq), (list, 5));
    assert!(ack.server_time_ms.abs_diff(wall_clock_ms()) < 60_000);
    let changes = api.pull_all(list, 0, None).await;
    // Four nodes; the set merged into Milk's state rather than being a change of
    // its own.
    assert_eq!(changes.len(), 4);
    let versions = versions(&changes);
    assert_eq!(ack.version, *versions.last().unwrap());
    for change in &changes {
        let mine = author
            .replica
            .node(change.node.uid)
            .expect("a node I wrote");
        assert_eq!(
            &change.node, mine,
            "the server stores exactly the merged state"
        );
    }
    let stored = api.state(list).await;
    assert_eq!(stored[&milk].field("completed"), Some(&json!(true)));
    assert_eq!(stored[&eggs].field("title"), Some(&json!("Eggs")));

    // The ack was lost, say: the same batch again is acknowledged again and
    // changes nothing, not even a version.
    let dump = server.dump().await;
    for _ in 0..3 {
        let again = api.push_ok(&req).await;
        assert_eq!(
            (again.acked_seq, again.version),
            (ack.acked_seq, ack.version)
        );
    }
    assert_eq!(server.dump().await, dump);
    assert_eq!(api.pull_all(list, 0, None).await, changes);
    assert!(api
        .pull_ok(list, ack.version, None)
        .await
        .changes
        .is_empty());

    // A resend that overlaps new ops applies only the new one.
    author.set(eggs, "title", json!("Free-range eggs"));
    let overlapping = author.request(100);
    assert_eq!(overlapping.ops.len(), 6);
    let ack2 = api.push_ok(&overlapping).await;
    assert_eq!(ack2.acked_seq, 6);
    let page = api.pull_ok(list, ack.version, None).await;
    assert_eq!(page.changes.len(), 1, "only Eggs changed");
    assert_eq!(page.changes[0].node.uid, eggs);
    assert_eq!(page.changes[0].version, ack2.version);
    assert_eq!(page.cursor, ack2.version);
    assert!(!page.more);
    author.replica.ack(overlapping.client, ack2.acked_seq);
    assert_eq!(author.replica.pending(), 0);

    // An ack for a batch already fully applied, from a later seq's point of view.
    let stale = PushRequest {
        ops: req.ops[..2].to_vec(),
        ..req.clone()
    };
    let ack3 = api.push_ok(&stale).await;
    assert_eq!(ack3.acked_seq, 6, "acknowledges everything applied so far");
    server.stop().await;
}

#[tokio::test]
async fn a_list_never_written_pulls_empty() {
    let server = TestServer::start().await;
    let list = Uid::new();
    for after in [0, 42] {
        let page = server.api.pull_ok(list, after, None).await;
        assert_eq!(page.list, list);
        assert!(page.changes.is_empty());
        assert_eq!(page.cursor, after, "an empty page keeps the cursor");
        assert!(!page.more);
    }
    // Writing another list does not make this one exist.
    let mut other = Author::new(Uid::new());
    other.create_list("Other");
    other.flush(&server.api, 100).await;
    assert!(server.api.pull_ok(list, 0, None).await.changes.is_empty());
    // An empty push is acknowledged and creates nothing either.
    let before = server.dump().await;
    let empty = PushRequest {
        list,
        client: tether::model::ClientId::new(),
        ops: vec![],
    };
    let ack = server.api.push_ok(&empty).await;
    assert_eq!(ack.acked_seq, 0);
    assert_eq!(server.dump().await, before);
    server.stop().await;
}

#[tokio::test]
async fn a_cursor_at_or_past_the_end_pulls_nothing() {
    let server = TestServer::start().await;
    let mut author = Author::new(Uid::new());
    author.create_list("Ended");
    author.add_todo("Only");
    let ack = author.flush(&server.api, 10).await.pop().unwrap();
    // Including cursors beyond what a signed SQLite integer holds, which must not
    // wrap around into "everything again".
    for after in [
        ack.version,
        ack.version + 1,
        1 << 53,
        i64::MAX as u64,
        u64::MAX,
    ] {
        let page = server.api.pull_ok(author.list(), after, None).await;
        assert!(page.changes.is_empty(), "after {after}: {page:?}");
        assert_eq!(page.cursor, after);
        assert!(!page.more);
    }
    server.stop().await;
}

#[tokio::test]
async fn ping_answers_name_version_and_clock() {
    let server = TestServer::start().await;
    let (status, body) = server.api.post_raw("/api/ping", "{}").await;
    assert_eq!(status, 200, "{body}");
    let info: tether::app::api::ServerInfo = serde_json::from_value(body).unwrap();
    assert_eq!(info.name, "tether");
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert!(info.server_time_ms.abs_diff(wall_clock_ms()) < 60_000);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_converge_to_last_writer_wins() {
    const WRITERS: usize = 4;
    const ROUNDS: u64 = 15;
    const TODOS: usize = 6;
    let server = TestServer::start().await;
    let api = server.api.clone();
    let mut founder = Author::new(Uid::new());
    let list = founder.list();
    founder.create_list("Shared");
    let todos: Vec<Uid> = (0..TODOS)
        .map(|i| founder.add_todo(&format!("todo {i}")))
        .collect();
    let mut all_ops: Vec<Op> = founder.replica.outbox().iter().cloned().collect();
    founder.flush(&api, 100).await;

    // Everyone starts from the same state. The straggler writes first (the oldest
    // stamps) and pushes last: its writes must lose wherever somebody else wrote
    // later, however late they arrive.
    let base = wall_clock_ms();
    let mut straggler = Author::new(list);
    straggler.catch_up(&api).await;
    for todo in &todos {
        straggler
            .replica
            .set(*todo, "title", json!("stale"), base)
            .unwrap();
    }
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let mut author = Author::new(list);
        author.catch_up(&api).await;
        writers.push(author);
    }

    let mut tasks = Vec::new();
    for (w, mut author) in writers.into_iter().enumerate() {
        let api = api.clone();
        let todos = todos.clone();
        tasks.push(tokio::spawn(async move {
            let mut ops = Vec::new();
            for round in 0..ROUNDS {
                // Stamps a little ahead of the straggler's, interleaved between
                // writers; the same millisecond for several writers is a tie the
                // counter and the client id break.
                let wall = base + 10 + round;
                let todo = todos[(w + round as usize) % TODOS];
                let r = &mut author.replica;
                if r.node(todo).is_some_and(|n| n.is_live()) {
                    r.set(todo, "title", json!(format!("w{w} r{round}")), wall)
                        .unwrap();
                    r.set(todo, "completed", json!(round % 2 == 0), wall)
                        .unwrap();
                }
                // Writer 0 deletes one todo mid-way; the others keep editing it,
                // with later stamps, without knowing.
                if w == 0 && round == ROUNDS / 2 {
                    r.delete(todos[1], wall).unwrap();
                }
                ops.extend(author.replica.outbox().iter().cloned());
                author.flush(&api, 100).await;
            }
            ops
        }));
    }
    for task in tasks {
        all_ops.extend(within("a writer", task).await.unwrap());
    }
    all_ops.extend(straggler.replica.outbox().iter().cloned());
    straggler.flush(&api, 100).await;

    let expected = merge_ops(&all_ops);
    let stored = api.state(list).await;
    assert_eq!(stored.len(), TODOS + 1);
    assert_eq!(stored, expected, "the server's state is the model's merge");
    assert!(stored[&todos[1]].is_deleted(), "the delete is never undone");
    assert!(
        stored[&todos[1]].fields.len() >= 2,
        "later writes still merge under the tombstone"
    );
    for todo in &todos {
        assert_ne!(
            stored[todo].field("title"),
            Some(&json!("stale")),
            "the oldest write lost, though it arrived last"
        );
    }
    // And every replica that catches up holds the same state.
    straggler.catch_up(&api).await;
    let mut late = Author::new(list);
    late.catch_up(&api).await;
    for replica in [&straggler.replica, &late.replica] {
        let nodes: BTreeMap<Uid, Node> = replica.nodes().map(|n| (n.uid, n.clone())).collect();
        assert_eq!(nodes, expected);
    }
    server.stop().await;
}

#[tokio::test]
async fn paging_5000_changes_stamped_in_one_millisecond() {
    const ITEMS: usize = 5000;
    const PAGE: u32 = 50;
    let server = TestServer::start_with(|c| c.sync.pull_page_size = PAGE).await;
    let api = &server.api;
    let mut author = Author::new(Uid::new());
    let list = author.list();
    author.create_list("Big");
    let wall = wall_clock_ms();
    let mut created: HashSet<Uid> = (0..ITEMS)
        .map(|i| author.add_todo_at(&format!("item {i}"), wall))
        .collect();
    created.insert(list);
    author.flush(api, 1000).await;

    // The server's page size caps whatever the client asks for.
    for limit in [None, Some(PAGE * 10)] {
        let page = api.pull_ok(list, 0, limit).await;
        assert_eq!(page.changes.len(), PAGE as usize);
        assert!(page.more);
    }
    // Walk it all, in server-sized pages and in odd small ones.
    for limit in [None, Some(7)] {
        let mut cursor = 0;
        let mut seen = HashSet::new();
        let mut pages = 0;
        loop {
            let page = api.pull_ok(list, cursor, limit).await;
            pages += 1;
            let size = limit.unwrap_or(PAGE) as usize;
            if page.more {
                assert_eq!(page.changes.len(), size, "only the last page is short");
            }
            for change in &page.changes {
                assert!(change.version > cursor, "skipped back or repeated");
                cursor = change.version;
                assert!(seen.insert(change.node.uid), "a node came twice");
                let stamp = change.node.kind.as_ref().unwrap().stamp;
                assert!(change.node.uid == list || stamp.wall_ms == wall);
            }
            assert_eq!(page.cursor, cursor);
            if !page.more {
                break;
            }
        }
        assert_eq!(seen, created, "every change exactly once");
        assert_eq!(pages, (ITEMS + 1).div_ceil(limit.unwrap_or(PAGE) as usize));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_puller_racing_pushes_ends_with_exactly_the_final_state() {
    const PUSHERS: usize = 3;
    const PUSHES: usize = 40;
    let server = TestServer::start().await;
    let api = server.api.clone();
    let mut founder = Author::new(Uid::new());
    let list = founder.list();
    founder.create_list("Race");
    founder.flush(&api, 100).await;

    let done = Arc::new(AtomicBool::new(false));
    let puller = {
        let (api, done) = (api.clone(), done.clone());
        tokio::spawn(async move {
            let mut cursor = 0;
            let mut seen = HashSet::new();
            let mut state = BTreeMap::new();
            let mut pulls = 0;
            loop {
                // Read the flag before pulling: if the pushers had finished before
                // this pull began and it says nothing more, the puller has it all.
                let finished = done.load(Ordering::SeqCst);
                let page = api.pull_ok(list, cursor, Some(5)).await;
                pulls += 1;
                for change in page.changes {
                    assert!(change.version > cursor, "versions must increase");
                    assert!(seen.insert(change.version), "version seen twice");
                    cursor = change.version;
                    state.insert(change.node.uid, change.node);
                }
                assert_eq!(page.cursor, cursor);
                if finished && !page.more {
                    return (state, pulls);
                }
            }
        })
    };
    let mut pushers = Vec::new();
    for p in 0..PUSHERS {
        let api = api.clone();
        pushers.push(tokio::spawn(async move {
            let mut author = Author::new(list);
            let mut mine = Vec::new();
            for i in 0..PUSHES {
                if i % 3 == 0 || mine.is_empty() {
                    mine.push(author.add_todo(&format!("p{p} {i}")));
                } else {
                    let todo = mine[i % mine.len()];
                    author.set(todo, "title", json!(format!("p{p} edit {i}")));
                    author.set(todo, "completed", json!(i % 2 == 0));
                }
                author.flush(&api, 100).await;
            }
        }));
    }
    for pusher in pushers {
        within("a pusher", pusher).await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let (state, pulls) = within("the puller", puller).await.unwrap();
    assert!(pulls > 1);
    assert_eq!(
        state,
        api.state(list).await,
        "the follower ends at the final state"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_batch_in_a_commit_group_spoils_nothing() {
    let server = TestServer::start().await;
    let api = server.api.clone();
    let list = Uid::new();
    let mut founder = Author::new(list);
    founder.create_list("Group");
    founder.flush(&api, 100).await;
    // Many pushes at once, so the writer gets to commit several in one
    // transaction (each in its own savepoint); every third one is invalid (an
    // unknown kind) and must take none of its neighbours down with it.
    let mut tasks = Vec::new();
    for i in 0..30 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let mut author = Author::new(list);
            let todo = author.add_todo(&format!("item {i}"));
            let mut req = author.request(10);
            if i % 3 == 0 {
                let tether::model::Action::Create { kind, .. } = &mut req.ops[0].action else {
                    unreachable!()
                };
                *kind = "cake".into();
            }
            (i, todo, api.push(&req).await)
        }));
    }
    let mut good = HashSet::new();
    for task in tasks {
        let (i, todo, result) = within("a push", task).await.unwrap();
        match result {
            Ok(ack) => {
                assert!(i % 3 != 0, "push {i} should have been refused");
                assert_eq!(ack.acked_seq, 1);
                good.insert(todo);
            }
            Err(refused) => {
                assert!(i % 3 == 0, "push {i} refused: {refused:?}");
                refused.assert("unknown_kind", 422);
            }
        }
    }
    let changes = api.pull_all(list, 0, None).await;
    let uids: HashSet<Uid> = changes
        .iter()
        .map(|c| c.node.uid)
        .filter(|u| *u != list)
        .collect();
    assert_eq!(uids, good);
    // Only creates, so no version was overwritten: that the versions have no
    // gaps shows a refused batch took none.
    let versions = versions(&changes);
    assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>());
    server.stop().await;
}
