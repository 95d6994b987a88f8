//! The live WebSocket `/api/live`: fan-out of a commit to every subscriber of the
//! list, catch-up from a cursor (exactly what was missed, once), subscribing while
//! pushes race, `resync` for a subscriber that falls behind (never silent loss),
//! heartbeats, the per-list and per-client socket limits, and the answers to frames
//! that are not messages (binary, too long, not UTF-8).

#![cfg(feature = "ssr")]

mod common;

use std::{
    collections::{BTreeMap, HashSet},
    time::Duration,
};

use common::{versions, within, Author, Frame, Live, TestServer};
use futures::StreamExt;
use serde_json::json;
use tether::model::{Change, ClientId, ClientMessage, Node, ServerMessage, SyncError, Uid};
use tokio_tungstenite::tungstenite::{protocol::frame::coding::CloseCode, Message};

/// Folds changes into node states, checking that versions only go up.
fn fold(state: &mut BTreeMap<Uid, Node>, changes: &[Change]) {
    versions(changes);
    for change in changes {
        state.insert(change.node.uid, change.node.clone());
    }
}

/// Waits until the server counts `n` subscribers on `list` (a socket's end is
/// noticed asynchronously).
async fn subscribers(server: &TestServer, list: Uid, n: usize) {
    within("subscriber count", async {
        while server.server.state.hub.subscribers(list) != n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn two_subscribers_receive_a_third_clients_change() {
    let server = TestServer::start().await;
    let api = &server.api;
    let mut writer = Author::new(Uid::new());
    let list = writer.list();
    writer.create_list("Live");
    writer.add_todo("Before");
    writer.flush(api, 100).await;
    let before = api.pull_all(list, 0, None).await;

    let (mut a, a_catch_up, a_cursor) = Live::subscribe(server.addr(), list, 0).await;
    let (mut b, b_catch_up, b_cursor) = Live::subscribe(server.addr(), list, 0).await;
    assert_eq!(a_catch_up, before, "the catch-up is what a pull gives");
    assert_eq!(b_catch_up, before);
    assert_eq!(a_cursor, before.last().unwrap().version);
    assert_eq!(b_cursor, a_cursor);

    let milk = writer.add_todo("Milk");
    writer.set(milk, "completed", json!(true));
    let ack = writer.flush(api, 100).await.pop().unwrap();
    for live in [&mut a, &mut b] {
        match live.next().await {
            ServerMessage::Changes {
                list: l,
                changes,
                cursor,
                more,
            } => {
                assert_eq!(l, list);
                assert_eq!(cursor, ack.version);
                assert!(!more);
                assert_eq!(changes.len(), 1);
                assert_eq!(&changes[0].node, writer.replica.node(milk).unwrap());
            }
            other => panic!("expected the change, got {other:?}"),
        }
    }
    // Another list's commit reaches neither.
    let mut elsewhere = Author::new(Uid::new());
    elsewhere.create_list("Elsewhere");
    elsewhere.flush(api, 100).await;
    writer.add_todo("After");
    let ack = writer.flush(api, 100).await.pop().unwrap();
    for live in [&mut a, &mut b] {
        let changes = live.changes_until(ack.version).await;
        assert_eq!(changes.len(), 1, "only this list's change");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_reconnecting_subscriber_gets_exactly_what_it_missed_once() {
    // Tiny pages, so the catch-up itself comes in several `changes` messages.
    let server = TestServer::start_with(|c| c.sync.pull_page_size = 2).await;
    let api = &server.api;
    let mut writer = Author::new(Uid::new());
    let list = writer.list();
    writer.create_list("Away");
    let kept = writer.add_todo("Kept");
    let edited = writer.add_todo("Edited");
    writer.flush(api, 100).await;

    let (mut live, caught_up, cursor) = Live::subscribe(server.addr(), list, 0).await;
    let mut mine = BTreeMap::new();
    fold(&mut mine, &caught_up);
    assert_eq!(mine.len(), 3);
    within("close", live.ws.close(None)).await.unwrap();
    subscribers(&server, list, 0).await;

    // While away: new nodes, an old one edited, a new one edited twice.
    let fresh: Vec<Uid> = (0..4)
        .map(|i| writer.add_todo(&format!("new {i}")))
        .collect();
    writer.flush(api, 100).await;
    writer.set(edited, "title", json!("Edited while away"));
    writer.set(fresh[0], "completed", json!(true));
    writer.flush(api, 100).await;
    writer.set(fresh[0], "title", json!("Twice"));
    writer.flush(api, 100).await;
    let missed = api.pull_all(list, cursor, None).await;
    assert_eq!(missed.len(), 5, "four new nodes and the edited one");

    let (mut live, caught_up, new_cursor) = Live::subscribe(server.addr(), list, cursor).await;
    assert_eq!(
        caught_up, missed,
        "exactly the missed changes, in order, once"
    );
    assert_eq!(new_cursor, missed.last().unwrap().version);
    assert!(!caught_up.iter().any(|c| c.node.uid == kept));
    fold(&mut mine, &caught_up);
    assert_eq!(mine, api.state(list).await);

    // Live from there on, with nothing repeated.
    writer.set(kept, "completed", json!(true));
    let ack = writer.flush(api, 100).await.pop().unwrap();
    let live_changes = live.changes_until(ack.version).await;
    assert_eq!(live_changes.len(), 1);
    assert_eq!(live_changes[0].node.uid, kept);
    assert!(live_changes[0].version > new_cursor);

    // Reconnecting with the newest cursor catches up nothing.
    let (_live, caught_up, cursor) = Live::subscribe(server.addr(), list, ack.version).await;
    assert!(caught_up.is_empty());
    assert_eq!(cursor, ack.version);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_while_pushes_race_misses_nothing_and_repeats_nothing() {
    const PUSHES: usize = 60;
    const SUBSCRIBERS: usize = 6;
    let server = TestServer::start().await;
    let api = server.api.clone();
    let list = Uid::new();
    let pusher = {
        let api = api.clone();
        tokio::spawn(async move {
            let mut author = Author::new(list);
            author.create_list("Race");
            let mut todos = Vec::new();
            for i in 0..PUSHES {
                if i % 2 == 0 {
                    todos.push(author.add_todo(&format!("item {i}")));
                } else {
                    let todo = todos[i % todos.len()];
                    author.set(todo, "title", json!(format!("edit {i}")));
                }
                author.flush(&api, 100).await;
                tokio::task::yield_now().await;
            }
        })
    };
    // Subscribers join at staggered moments while the pusher runs.
    let mut lives = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let (live, caught_up, cursor) = Live::subscribe(server.addr(), list, 0).await;
        lives.push((live, caught_up, cursor));
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    within("the pusher", pusher).await.unwrap();
    let final_state = api.state(list).await;
    assert_eq!(final_state.len(), 1 + PUSHES / 2);
    let final_version = api.pull_all(list, 0, None).await.last().unwrap().version;

    for (mut live, caught_up, cursor) in lives {
        let mut state = BTreeMap::new();
        fold(&mut state, &caught_up);
        let mut seen: HashSet<u64> = caught_up.iter().map(|c| c.version).collect();
        let mut at = cursor;
        while at < final_version {
            match live.next().await {
                ServerMessage::Changes {
                    changes, cursor, ..
                } => {
                    assert!(changes.first().is_some_and(|c| c.version > at), "repeated");
                    for change in &changes {
                        assert!(
                            seen.insert(change.version),
                            "version {} twice",
                            change.version
                        );
                    }
                    fold(&mut state, &changes);
                    at = cursor;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(state, final_state, "catch-up plus live is the whole list");
    }
    server.stop().await;
}

// A current-thread runtime: the writer publishes a whole commit group without
// yielding, so a one-message buffer overflows as soon as a group holds two
// batches of the list, which concurrent pushers make happen at once.
#[tokio::test(flavor = "current_thread")]
async fn a_subscriber_that_falls_behind_is_told_to_resync_never_silently_dropped() {
    let server = TestServer::start_with(|c| c.sync.live_buffer = 1).await;
    let api = server.api.clone();
    let mut founder = Author::new(Uid::new());
    let list = founder.list();
    founder.create_list("Busy");
    founder.flush(&api, 100).await;
    let (mut slow, caught_up, subscribed_at) = Live::subscribe(server.addr(), list, 0).await;
    let mut state = BTreeMap::new();
    fold(&mut state, &caught_up);

    // The slow subscriber reads nothing while eight clients push.
    let mut tasks = Vec::new();
    for p in 0..8 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let mut author = Author::new(list);
            for i in 0..10 {
                author.add_todo(&format!("p{p} {i} {}", "x".repeat(500)));
                author.flush(&api, 100).await;
            }
        }));
    }
    for task in tasks {
        within("a pusher", task).await.unwrap();
    }

    let mut at = subscribed_at;
    let resync_after = loop {
        match slow.frame().await {
            Frame::Message(ServerMessage::Changes {
                changes, cursor, ..
            }) => {
                assert!(changes.first().is_some_and(|c| c.version > at));
                fold(&mut state, &changes);
                at = cursor;
            }
            Frame::Message(ServerMessage::Resync {
                list: l,
                after,
                reason,
            }) => {
                assert_eq!(l, list);
                assert!(!reason.is_empty());
                break after;
            }
            other => panic!("expected changes then a resync, got {other:?}"),
        }
    };
    assert_eq!(resync_after, at, "resync names the last version delivered");
    let close = slow.expect_close().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Normal);
    assert_eq!(close.reason.as_str(), "resync");
    // What the stream did not deliver, a pull from `after` does: nothing is lost.
    let rest = api.pull_all(list, resync_after, None).await;
    assert!(!rest.is_empty(), "the subscriber really fell behind");
    fold(&mut state, &rest);
    assert_eq!(state, api.state(list).await);
    assert_eq!(state.len(), 1 + 80);
    server.stop().await;
}

#[tokio::test]
async fn heartbeats_keep_a_live_peer_and_drop_a_silent_one() {
    let server = TestServer::start_with(|c| c.sync.heartbeat_secs = 1).await;
    let list = Uid::new();
    let (mut silent, _, _) = Live::subscribe(server.addr(), list, 0).await;
    let (alive, _, _) = Live::subscribe(server.addr(), list, 0).await;
    // The live peer reads all along (tungstenite answers each ping with a pong).
    let reader = tokio::spawn(async move {
        let mut ws = alive.ws;
        let mut pings = 0;
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_))) => pings += 1,
                Some(Ok(Message::Text(text))) => {
                    let message: ServerMessage = serde_json::from_str(text.as_str()).unwrap();
                    return (pings, message);
                }
                other => panic!("the live peer lost its socket: {other:?}"),
            }
        }
    });
    // The silent one reads nothing (so it answers no ping) and is dropped after
    // two intervals of silence: wait for the server to let go of it.
    let started = std::time::Instant::now();
    subscribers(&server, list, 1).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "dropped after {:?}, before two heartbeats",
        started.elapsed()
    );
    let close = silent.expect_close().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Away);
    assert_eq!(close.reason.as_str(), "heartbeat timeout");

    let mut writer = Author::new(list);
    writer.create_list("Still here");
    writer.flush(&server.api, 100).await;
    let (pings, message) = within("the live peer", reader).await.unwrap();
    assert!(pings >= 2, "pinged every second: {pings}");
    assert!(
        matches!(message, ServerMessage::Changes { .. }),
        "{message:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn protocol_pings_and_mistakes_on_an_open_socket() {
    let server = TestServer::start().await;
    let list = Uid::new();
    let (mut live, _, _) = Live::subscribe(server.addr(), list, 0).await;
    live.send(&ClientMessage::Ping { nonce: 7 }).await;
    assert_eq!(live.next().await, ServerMessage::Pong { nonce: 7 });
    // A second subscribe, or garbage, is answered with an error; the socket stays.
    live.send(&ClientMessage::Subscribe {
        list: Uid::new(),
        after: 0,
        client: None,
    })
    .await;
    let error = |m| match m {
        ServerMessage::Error { error } => error,
        other => panic!("expected an error, got {other:?}"),
    };
    assert_eq!(error(live.next().await).code(), "malformed_request");
    within(
        "send",
        futures::SinkExt::send(&mut live.ws, Message::text("{nope")),
    )
    .await
    .unwrap();
    assert_eq!(error(live.next().await).code(), "malformed_request");
    live.send(&ClientMessage::Ping { nonce: 8 }).await;
    assert_eq!(live.next().await, ServerMessage::Pong { nonce: 8 });

    // A socket whose first message is not `subscribe` is refused and closed.
    for first in [
        serde_json::to_string(&ClientMessage::Ping { nonce: 1 }).unwrap(),
        "{\"type\": \"subscribe\", \"list\": \"nope\", \"after\": 0}".to_string(),
        "[]".to_string(),
    ] {
        let mut refused = Live::connect(server.addr()).await;
        within(
            "send",
            futures::SinkExt::send(&mut refused.ws, Message::text(first)),
        )
        .await
        .unwrap();
        assert_eq!(error(refused.next().await).code(), "malformed_request");
        let close = refused.expect_close().await.expect("a close frame");
        assert_eq!(close.code, CloseCode::Policy);
    }
    server.stop().await;
}

#[tokio::test]
async fn subscriber_limits_per_list_and_per_client() {
    let server = TestServer::start_with(|c| {
        c.sync.max_subscribers_per_list = 2;
        c.sync.max_sockets_per_client = 1;
    })
    .await;
    let list = Uid::new();
    let (first, _, _) = Live::subscribe(server.addr(), list, 0).await;
    let (_second, _, _) = Live::subscribe(server.addr(), list, 0).await;
    let mut third = Live::connect(server.addr()).await;
    third
        .send(&ClientMessage::Subscribe {
            list,
            after: 0,
            client: None,
        })
        .await;
    assert_eq!(
        third.next().await,
        ServerMessage::Error {
            error: SyncError::TooManySubscribers { max: 2 }
        }
    );
    assert_eq!(third.expect_close().await.unwrap().code, CloseCode::Policy);
    // Another list is not affected, and a freed slot can be taken again.
    Live::subscribe(server.addr(), Uid::new(), 0).await;
    drop(first);
    subscribers(&server, list, 1).await;
    let (_again, _, _) = Live::subscribe(server.addr(), list, 0).await;

    // One client id may hold one socket here.
    let client = ClientId::new();
    let other_list = Uid::new();
    let mut mine = Live::connect(server.addr()).await;
    let subscribe = ClientMessage::Subscribe {
        list: other_list,
        after: 0,
        client: Some(client),
    };
    mine.send(&subscribe).await;
    assert!(matches!(
        mine.next().await,
        ServerMessage::Subscribed { .. }
    ));
    let mut twice = Live::connect(server.addr()).await;
    twice.send(&subscribe).await;
    assert_eq!(
        twice.next().await,
        ServerMessage::Error {
            error: SyncError::TooManySubscribers { max: 1 }
        }
    );
    server.stop().await;
}

/// Reads `changes` messages as sent (their size too) until one reaches `cursor`,
/// or until `subscribed`; answers (bytes, versions, cursor, more) per message.
async fn raw_changes(live: &mut Live, cursor: Option<u64>) -> Vec<(usize, Vec<u64>, u64, bool)> {
    let mut messages = Vec::new();
    loop {
        let text = match within("a live message", live.ws.next()).await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("unexpected {other:?}"),
        };
        match serde_json::from_str(text.as_str()).unwrap() {
            ServerMessage::Changes {
                changes,
                cursor: at,
                more,
                ..
            } => {
                messages.push((text.len(), versions(&changes), at, more));
                if Some(at) == cursor {
                    return messages;
                }
            }
            ServerMessage::Subscribed { .. } if cursor.is_none() => return messages,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Checks the messages of one run: each within the bound, `more` on all but the
/// last, each cursor its own last version except the last's; answers the versions.
fn bounded_run(messages: &[(usize, Vec<u64>, u64, bool)], last_cursor: u64) -> Vec<u64> {
    let bound = tether::server::outgoing::MAX_MESSAGE_BYTES;
    assert!(messages.len() > 1, "a large run comes in several messages");
    let mut all = Vec::new();
    for (i, (bytes, versions, cursor, more)) in messages.iter().enumerate() {
        assert!(
            *bytes <= bound,
            "message {i} is {bytes} bytes, over {bound}"
        );
        if i + 1 == messages.len() {
            assert_eq!((*cursor, *more), (last_cursor, false));
        } else {
            assert_eq!((*cursor, *more), (*versions.last().unwrap(), true));
        }
        all.extend(versions);
    }
    all
}

#[tokio::test]
async fn large_catch_ups_and_large_commits_come_in_bounded_messages() {
    // A socket keeps a buffer as large as the largest message it was sent, so a
    // subscriber must never be sent one message of a whole page or a whole batch.
    let server = TestServer::start().await;
    let api = &server.api;
    let mut writer = Author::new(Uid::new());
    let list = writer.list();
    writer.create_list("Long");
    let long_title = "a long title ".repeat(70).trim_end().to_string(); // about 900 bytes
    for i in 0..300 {
        writer.add_todo(&format!("{i} {long_title}"));
    }
    writer.flush(api, 1000).await;
    let stored = api.pull_all(list, 0, None).await;
    let stored_versions: Vec<u64> = stored.iter().map(|c| c.version).collect();

    let mut live = Live::connect(server.addr()).await;
    live.send(&ClientMessage::Subscribe {
        list,
        after: 0,
        client: None,
    })
    .await;
    let catch_up = raw_changes(&mut live, None).await;
    assert_eq!(
        bounded_run(&catch_up, *stored_versions.last().unwrap()),
        stored_versions,
        "the catch-up: every change once, in order"
    );

    // One commit of 200 long todos, live.
    let fresh: Vec<Uid> = (0..200)
        .map(|i| writer.add_todo(&format!("live {i} {long_title}")))
        .collect();
    let ack = writer.flush(api, 1000).await.pop().unwrap();
    let commit = raw_changes(&mut live, Some(ack.version)).await;
    let live_versions = bounded_run(&commit, ack.version);
    let pulled = api
        .pull_all(list, *stored_versions.last().unwrap(), None)
        .await;
    assert_eq!(
        live_versions,
        versions(&pulled),
        "the commit: every change once"
    );
    assert_eq!(pulled.len(), fresh.len());
    server.stop().await;
}

#[tokio::test]
async fn freed_memory_is_handed_back_once_after_a_wave_of_sockets_closes() {
    // glibc keeps freed memory for reuse; after a crowd of sockets has gone, the
    // server trims once the closing pauses (docs/BENCHMARKS.md (g) measures the
    // effect on the server's size: 21.3 -> 14.7 MiB after 1,000 clients left).
    let server = TestServer::start().await;
    let trims = || server.server.state.trimmer.trims();
    let list = Uid::new();
    let mut sockets = Vec::new();
    for _ in 0..20 {
        sockets.push(Live::subscribe(server.addr(), list, 0).await.0);
    }
    subscribers(&server, list, 20).await;
    assert_eq!(trims(), 0, "nobody has left yet");
    for mut live in sockets {
        within("close", live.ws.close(None)).await.unwrap();
    }
    subscribers(&server, list, 0).await;
    within("a trim after the wave", async {
        while trims() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // One wave, one trim: two more ticks without departures change nothing.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    assert_eq!(trims(), 1);
    server.stop().await;
}

/// Sends one frame as it is.
async fn send_frame(live: &mut Live, message: Message) {
    within("send", futures::SinkExt::send(&mut live.ws, message))
        .await
        .expect("send on the live socket");
}

/// The error the server sends next.
async fn next_error(live: &mut Live) -> SyncError {
    match live.next().await {
        ServerMessage::Error { error } => error,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn binary_frames_get_malformed_request_before_and_after_subscribing() {
    let server = TestServer::start().await;
    let list = Uid::new();
    let subscribe = serde_json::to_vec(&ClientMessage::Subscribe {
        list,
        after: 0,
        client: None,
    })
    .unwrap();
    // First: refused and closed, even when it holds a valid `subscribe`.
    let mut first = Live::connect(server.addr()).await;
    send_frame(&mut first, Message::binary(subscribe.clone())).await;
    assert_eq!(next_error(&mut first).await.code(), "malformed_request");
    let close = first.expect_close().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Policy);
    assert_eq!(server.server.state.hub.subscribers(list), 0);

    // After subscribing: an error, and the socket stays open.
    let (mut live, _, _) = Live::subscribe(server.addr(), list, 0).await;
    send_frame(&mut live, Message::binary(subscribe)).await;
    let error = next_error(&mut live).await;
    assert_eq!(error.code(), "malformed_request");
    assert!(error.to_string().contains("binary"), "{error:?}");
    live.send(&ClientMessage::Ping { nonce: 4 }).await;
    assert_eq!(live.next().await, ServerMessage::Pong { nonce: 4 });
    server.stop().await;
}

/// A `ping` padded with spaces to exactly `bytes` bytes (valid JSON).
fn ping_of(bytes: usize) -> String {
    let ping = serde_json::to_string(&ClientMessage::Ping { nonce: 9 }).unwrap();
    format!("{ping}{}", " ".repeat(bytes - ping.len()))
}

#[tokio::test]
async fn a_message_over_16_kib_closes_with_1009_and_invalid_utf8_with_1007() {
    use tokio_tungstenite::tungstenite::protocol::frame::{
        coding::{Data, OpCode},
        Frame as RawFrame,
    };
    const MAX: usize = tether::server::live::MAX_CLIENT_MESSAGE;
    let server = TestServer::start().await;
    let list = Uid::new();
    // Exactly at the limit is a message like any other.
    let (mut live, _, _) = Live::subscribe(server.addr(), list, 0).await;
    send_frame(&mut live, Message::text(ping_of(MAX))).await;
    assert_eq!(live.next().await, ServerMessage::Pong { nonce: 9 });

    let invalid_utf8 = || {
        let bytes = b"{\"type\": \"ping\", \"nonce\": 1, \"x\": \"\xff\xfe\"}".to_vec();
        Message::Frame(RawFrame::message(bytes, OpCode::Data(Data::Text), true))
    };
    let cases = [
        (Message::text(ping_of(MAX + 1)), CloseCode::Size),
        (Message::text(ping_of(200 * 1024)), CloseCode::Size),
        (invalid_utf8(), CloseCode::Invalid),
    ];
    for (message, code) in cases {
        for subscribed in [false, true] {
            let mut live = if subscribed {
                Live::subscribe(server.addr(), list, 0).await.0
            } else {
                Live::connect(server.addr()).await
            };
            send_frame(&mut live, message.clone()).await;
            assert_eq!(next_error(&mut live).await.code(), "malformed_request");
            let close = live.expect_close().await;
            let close = close.unwrap_or_else(|| panic!("no close frame ({code:?})"));
            assert_eq!(close.code, code);
        }
    }
    subscribers(&server, list, 1).await;
    server.stop().await;
}
