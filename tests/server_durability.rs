//! Durability: what the server acknowledged is on disk. Acknowledged ops survive a
//! graceful restart on the same database file, pushes racing a shutdown are either
//! acknowledged and kept or refused and (whole batches) absent, and the real binary
//! killed with SIGKILL loses nothing it acknowledged.

#![cfg(feature = "ssr")]

mod common;

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use common::{binary, config, within, Api, Author, TempDir, TestServer};
use serde_json::json;
use tether::model::Uid;

#[tokio::test]
async fn acknowledged_ops_survive_a_restart_on_the_same_file() {
    let dir = TempDir::new();
    let server = TestServer::start_config(config(dir.path())).await;
    let mut author = Author::new(Uid::new());
    let list = author.list();
    author.create_list("Kept");
    let milk = author.add_todo("Milk");
    let eggs = author.add_todo("Eggs");
    author.flush(&server.api, 100).await;
    author.set(milk, "completed", json!(true));
    author.delete(eggs);
    let resend = author.request(100);
    let acks = author.flush(&server.api, 100).await;
    let before = server.api.pull_all(list, 0, None).await;
    let dump = server.dump().await;
    server.stop().await;

    let server = TestServer::start_config(config(dir.path())).await;
    assert_eq!(server.dump().await, dump, "every row is back");
    assert_eq!(server.api.pull_all(list, 0, None).await, before);
    // The client's sequence survived too: the resend is still applied once.
    let again = server.api.push_ok(&resend).await;
    assert_eq!(again.acked_seq, acks.last().unwrap().acked_seq);
    assert_eq!(server.dump().await, dump);
    // Versions continue after the restart; they never start over.
    author.add_todo("Bread");
    let ack = author.flush(&server.api, 100).await.pop().unwrap();
    assert_eq!(ack.version, before.last().unwrap().version + 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_racing_a_shutdown_are_acknowledged_and_kept_or_refused() {
    let dir = TempDir::new();
    let server = TestServer::start_config(config(dir.path())).await;
    let list = Uid::new();
    let mut founder = Author::new(list);
    founder.create_list("Racing");
    founder.flush(&server.api, 100).await;

    let acked_total = Arc::new(AtomicUsize::new(0));
    let mut pushers = Vec::new();
    for _ in 0..4 {
        let api = server.api.clone();
        let acked_total = acked_total.clone();
        pushers.push(tokio::spawn(async move {
            let mut author = Author::new(list);
            let mut acked = Vec::new();
            // Two ops per batch: a todo and its completion. Until the server goes.
            loop {
                let todo = author.add_todo("racing");
                author.set(todo, "completed", json!(true));
                let req = author.request(100);
                let Ok(response) = api
                    .http
                    .post(format!("{}/api/push", api.base))
                    .body(serde_json::to_string(&req).unwrap())
                    .send()
                    .await
                else {
                    return acked; // the server stopped listening
                };
                if response.status() != 200 {
                    return acked; // refused while shutting down
                }
                let ack: tether::model::PushAck = response.json().await.unwrap();
                author.replica.ack(req.client, ack.acked_seq);
                acked.push(todo);
                acked_total.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    within("some pushes", async {
        while acked_total.load(Ordering::SeqCst) < 40 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    server.stop().await;
    let mut acked = HashSet::new();
    for pusher in pushers {
        acked.extend(within("a pusher", pusher).await.unwrap());
    }
    assert!(acked.len() >= 40);

    let server = TestServer::start_config(config(dir.path())).await;
    let state = server.api.state(list).await;
    for todo in &acked {
        assert!(state.contains_key(todo), "acknowledged todo {todo} lost");
    }
    for (uid, node) in &state {
        if *uid != list {
            // All or nothing: no todo without the completion pushed with it.
            assert_eq!(node.field("completed"), Some(&json!(true)), "half a batch");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn the_binary_killed_hard_keeps_what_it_acknowledged() {
    let dir = TempDir::new();
    let port = binary::free_port();
    let mut child = binary::start(binary::command(dir.path(), port), port).await;
    let api = Api::new(([127, 0, 0, 1], port).into());
    let mut author = Author::new(Uid::new());
    let list = author.list();
    author.create_list("Crash");
    for i in 0..20 {
        author.add_todo(&format!("item {i}"));
        author.flush(&api, 100).await;
    }
    let before = api.pull_all(list, 0, None).await;
    assert_eq!(before.len(), 21);

    // No shutdown at all: the process just dies.
    binary::signal(&child, "KILL");
    let (status, _) = binary::wait_exit(&mut child, Duration::from_secs(10)).await;
    assert!(!status.success());

    let port = binary::free_port();
    let mut child = binary::start(binary::command(dir.path(), port), port).await;
    let api = Api::new(([127, 0, 0, 1], port).into());
    assert_eq!(api.pull_all(list, 0, None).await, before);
    binary::signal(&child, "TERM");
    let (status, _) = binary::wait_exit(&mut child, Duration::from_secs(10)).await;
    assert!(status.success());
}
