//! Hostile clients cannot starve the others: a client flooding pushes is told to back
//! off (429 `rate_limited` with `retry_after_ms`) while a calm client's pushes all go
//! through with their usual latency; a subscriber that stops reading its live socket
//! (even one that keeps pinging) is dropped once its bounded buffer is full (`resync`
//! and a close) while a normal subscriber of the same list keeps getting every
//! change; and bodies nested absurdly deep get a typed 400 over HTTP and on the
//! socket, never a crash.

#![cfg(feature = "ssr")]

mod common;

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::{within, Author, Failure, Frame, Live, TestServer};
use serde_json::json;
use tether::model::{ClientId, ClientMessage, ServerMessage, SyncError, Uid};
use tokio_tungstenite::tungstenite::{protocol::frame::coding::CloseCode, Message};

/// The median of some durations.
fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// `n` pushes of one todo each, one every `every`, timed one by one; every one must
/// be accepted.
async fn calm_pushes(
    api: &common::Api,
    author: &mut Author,
    n: usize,
    every: Duration,
) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(n);
    let mut tick = tokio::time::interval(every);
    for i in 0..n {
        tick.tick().await;
        author.add_todo(&format!("calm {i}"));
        let req = author.request(100);
        let started = Instant::now();
        let ack = match api.try_push(&req).await {
            Ok(ack) => ack,
            Err(e) => panic!("the calm client's push {i} was refused: {e:?}"),
        };
        latencies.push(started.elapsed());
        author.replica.ack(req.client, ack.acked_seq);
    }
    latencies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_is_limited_and_a_calm_one_keeps_its_latency() {
    const RATE: u32 = 20;
    let server = TestServer::start_with(|c| c.sync.max_pushes_per_second = RATE).await;
    let api = server.api.clone();
    let mut calm = Author::new(Uid::new());
    calm.create_list("Calm");
    calm.flush(&api, 100).await;

    // The flood: one client id, four connections pushing as fast as they can
    // while `flooding` is set.
    let (stop, flooding) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(true)),
    );
    let (accepted, limited) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let flood_client = ClientId::new();
    let flood_list = Uid::new();
    let flood_started = Instant::now();
    let mut flooders = Vec::new();
    for f in 0..4 {
        let (api, stop, flooding) = (api.clone(), stop.clone(), flooding.clone());
        let (accepted, limited) = (accepted.clone(), limited.clone());
        flooders.push(tokio::spawn(async move {
            let mut retry_after = None;
            let mut seq = f * 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                if !flooding.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                seq += 1;
                let stamp = format!("{}:0:{flood_client}", tether::model::wall_clock_ms());
                let body = json!({"list": flood_list, "client": flood_client, "ops": [{
                    "client": flood_client, "seq": seq, "stamp": stamp, "op": "create",
                    "node": Uid::new(), "kind": "todo", "parent": flood_list, "order": "a0",
                    "fields": {"title": "flood"}}]});
                match api
                    .try_call::<serde_json::Value>("/api/push", body.to_string())
                    .await
                {
                    Ok(_) => {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(Failure::Refused(r)) => {
                        r.assert("rate_limited", 429);
                        let SyncError::RateLimited { retry_after_ms } = r.error else {
                            unreachable!()
                        };
                        retry_after = Some(retry_after_ms);
                        limited.fetch_add(1, Ordering::Relaxed);
                    }
                    // A connection the client side gave up on is the flood's problem;
                    // whether the server still serves is what the calm client shows.
                    Err(Failure::Network(_)) => {}
                }
            }
            retry_after
        }));
    }
    within("the flood is limited", async {
        while limited.load(Ordering::Relaxed) < 50 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;

    // The calm client pushes 10 times a second (half its own limit), in windows
    // that alternate between no flood and the flood, so that whatever else loads
    // the machine weighs on both sets of samples alike.
    let every = Duration::from_millis(100);
    let (mut alone, mut flooded) = (Vec::new(), Vec::new());
    for window in 0..6 {
        let on = window % 2 == 1;
        flooding.store(on, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let samples = calm_pushes(&api, &mut calm, 5, every).await;
        if on { &mut flooded } else { &mut alone }.extend(samples);
    }
    stop.store(true, Ordering::Relaxed);
    let flood_for = flood_started.elapsed();
    for flooder in flooders {
        let retry_after = within("a flooder", flooder).await.unwrap();
        let retry_after = retry_after.expect("every flooder was told to wait");
        assert!(
            (1..=1000).contains(&retry_after),
            "retry_after_ms {retry_after}"
        );
    }

    let (accepted, limited) = (
        accepted.load(Ordering::Relaxed),
        limited.load(Ordering::Relaxed),
    );
    // The flood got its burst and its rate, and not more (slack for timing).
    let rate = f64::from(RATE);
    let allowed = 2.0 * rate + rate * (flood_for.as_secs_f64() + 1.0);
    assert!(
        (accepted as f64) <= allowed,
        "{accepted} flood pushes accepted, at most {allowed:.0} allowed"
    );
    assert!(
        limited > accepted,
        "{limited} refused vs {accepted} accepted"
    );
    let (alone, flooded) = (median(alone), median(flooded));
    eprintln!(
        "calm push median {alone:?} alone, {flooded:?} during the flood; the flood: \
         {} requests ({accepted} accepted, {limited} rate-limited) in {flood_for:?}",
        accepted + limited
    );
    // Generous: the median with the flood within 10× the median without it (the
    // baseline floored at 2 ms so that noise on a tiny number cannot fail it).
    let baseline = alone.max(Duration::from_millis(2));
    assert!(
        flooded < baseline * 10,
        "the calm client's median push took {flooded:?} during the flood, {alone:?} without"
    );
    // All of the calm client's writes are there.
    assert_eq!(server.api.state(calm.list()).await.len(), 1 + 30);
    server.stop().await;
}

/// A live socket whose kernel receive buffer is tiny, so that a client that stops
/// reading pushes back on the server after a few kilobytes.
async fn tight_socket(addr: SocketAddr) -> Live {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let url = format!("ws://{addr}/api/live");
    let (ws, _) = within(
        "websocket handshake",
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream)),
    )
    .await
    .unwrap();
    Live { ws }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_dropped_after_its_buffer_without_hurting_a_normal_subscriber() {
    const BUFFER: usize = 16;
    const COMMITS: usize = 60;
    const TODOS: usize = 100;
    let server = TestServer::start_with(|c| c.sync.live_buffer = BUFFER).await;
    let (api, addr) = (server.api.clone(), server.addr());
    let mut writer = Author::new(Uid::new());
    let list = writer.list();
    writer.create_list("Busy");
    writer.flush(&api, 100).await;

    let mut slow = tight_socket(addr).await;
    slow.send(&ClientMessage::Subscribe {
        list,
        after: 0,
        client: None,
    })
    .await;
    let (normal, _, _) = Live::subscribe(addr, list, 0).await;
    // The normal subscriber reads everything as it comes.
    let normal = tokio::spawn(async move {
        let mut normal = normal;
        let mut cursor = 0;
        let mut commits = 0;
        let target = loop {
            match normal.next().await {
                ServerMessage::Changes {
                    cursor: c, more, ..
                } => {
                    assert!(c > cursor);
                    cursor = c;
                    // A commit this large comes in several messages; the last
                    // says `more: false`.
                    commits += usize::from(!more);
                    if commits == COMMITS {
                        break cursor;
                    }
                }
                other => panic!("the normal subscriber got {other:?}"),
            }
        };
        (normal, target)
    });

    // Commits of ~110 KB each (todos of 1000-byte titles), 6.6 MB in all: far more
    // than the socket buffers (the server's send buffer grows to 4 MB) and the
    // subscriber's BUFFER-commit queue hold together.
    for c in 0..COMMITS {
        for i in 0..TODOS {
            writer.add_todo(&format!("{c}.{i} {}", "x".repeat(1000)));
        }
        writer.flush(&api, TODOS).await;
    }
    eprintln!("{COMMITS} commits pushed");
    let last = api.pull_all(list, 0, None).await.last().unwrap().version;
    let (mut normal, reached) = within("the normal subscriber gets every commit", normal)
        .await
        .unwrap();
    assert_eq!(reached, last, "the normal subscriber has everything");

    // Now the slow one reads: what fit in the buffers, then `resync` naming the
    // last version it was sent, then a close. Never a silent skip.
    let mut at = 0;
    let mut delivered = 0;
    let after = loop {
        match slow.frame().await {
            Frame::Message(ServerMessage::Subscribed { cursor, .. }) => at = cursor,
            Frame::Message(ServerMessage::Changes {
                changes, cursor, ..
            }) => {
                assert!(changes.first().is_some_and(|c| c.version > at), "a gap");
                at = cursor;
                delivered += 1;
            }
            Frame::Message(ServerMessage::Resync { after, .. }) => break after,
            other => panic!("expected changes then resync, got {other:?} after {delivered}"),
        }
    };
    assert_eq!(after, at, "resync names the last version delivered");
    assert!(at < last, "the slow reader really fell behind");
    let close = slow.expect_close().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Normal);
    eprintln!("slow reader: {delivered} messages delivered, then resync after {after}");
    within("the server lets go of the slow reader", async {
        while server.server.state.hub.subscribers(list) != 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;

    // The normal subscriber is still live.
    writer.add_todo("one more");
    writer.flush(&api, 100).await;
    assert!(matches!(normal.next().await, ServerMessage::Changes { .. }));
    server.stop().await;
}

#[tokio::test]
async fn json_nested_too_deep_is_a_typed_400_over_http_and_on_the_socket() {
    let server = TestServer::start_with(|c| c.sync.max_json_depth = 8).await;
    let api = &server.api;
    let mut author = Author::new(Uid::new());
    author.create_list("Deep");
    author.flush(api, 100).await;
    let before = server.dump().await;
    let list = author.list();
    let client = ClientId::new();
    let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));

    // 400,000 levels: within the body limit, and refused without any recursion.
    let deep = nested(400_000);
    let bodies = [
        deep.clone(),
        format!(r#"{{"list": "{list}", "client": "{client}", "ops": {deep}}}"#),
        format!(
            r#"{{"list": "{list}", "client": "{client}", "ops": [{{"client": "{client}", "seq": 1,
                "stamp": "1:0:{client}", "op": "set", "node": "{list}", "field": "title",
                "value": {}}}]}}"#,
            nested(6)
        ),
    ];
    for path in ["/api/push", "/api/pull"] {
        for body in &bodies {
            let refused = api
                .call::<serde_json::Value>(path, body.clone())
                .await
                .unwrap_err();
            refused.assert("malformed_request", 400);
            assert!(
                refused.error.to_string().contains("deeper than 8"),
                "{:?}",
                refused.error
            );
        }
    }
    // Exactly at the limit is not refused for its depth.
    let at_limit = format!(
        r#"{{"list": "{list}", "client": "{client}", "ops": [{{"client": "{client}", "seq": 1,
            "stamp": "1:0:{client}", "op": "set", "node": "{list}", "field": "title",
            "value": {}}}]}}"#,
        nested(5)
    );
    let refused = api
        .call::<serde_json::Value>("/api/push", at_limit)
        .await
        .unwrap_err();
    refused.assert("wrong_type", 422);
    assert_eq!(server.dump().await, before, "nothing stored");

    // On the live socket: as the first message, refused and closed; after
    // subscribing, an error and the socket stays.
    let mut refused = Live::connect(server.addr()).await;
    within(
        "send",
        futures::SinkExt::send(&mut refused.ws, Message::text(nested(5000))),
    )
    .await
    .unwrap();
    match refused.next().await {
        ServerMessage::Error { error } => assert_eq!(error.code(), "malformed_request"),
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(
        refused.expect_close().await.unwrap().code,
        CloseCode::Policy
    );
    let (mut live, _, _) = Live::subscribe(server.addr(), list, 0).await;
    within(
        "send",
        futures::SinkExt::send(&mut live.ws, Message::text(nested(5000))),
    )
    .await
    .unwrap();
    match live.next().await {
        ServerMessage::Error { error } => {
            assert!(error.to_string().contains("deeper than 8"), "{error:?}")
        }
        other => panic!("expected an error, got {other:?}"),
    }
    live.send(&ClientMessage::Ping { nonce: 3 }).await;
    assert_eq!(live.next().await, ServerMessage::Pong { nonce: 3 });
    assert_eq!(api.get_status("/healthz").await, 200);
    server.stop().await;
}

/// A subscriber that stops reading but keeps sending `ping`s (as a client checking
/// its connection does) falls behind like a silent one, and must end the same way:
/// everything that fit in the buffers, its pongs, `resync`, and a close 1000 — never
/// a bare reset. (Its unread pings once made the server's close a TCP reset, which
/// threw away the `resync` and the close still on their way to the client.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_that_keeps_pinging_still_gets_resync_and_a_close() {
    const BUFFER: usize = 4;
    let server = TestServer::start_with(|c| c.sync.live_buffer = BUFFER).await;
    let (api, addr) = (server.api.clone(), server.addr());
    for attempt in 0..2 {
        let mut founder = Author::new(Uid::new());
        let list = founder.list();
        founder.create_list("Busy");
        founder.flush(&api, 100).await;
        let mut slow = tight_socket(addr).await;
        slow.send(&ClientMessage::Subscribe {
            list,
            after: 0,
            client: None,
        })
        .await;
        // Commits go by, mostly large (~110 KB, 6.6 MB in all: more than the socket
        // buffers and the subscriber's queue hold) and some small, while the
        // subscriber reads nothing and pings every 400 ms.
        let pushing = tokio::spawn({
            let api = api.clone();
            let mut writer = Author::new(list);
            async move {
                for c in 0..80 {
                    let todos = if c % 4 == 3 { 1 } else { 100 };
                    for i in 0..todos {
                        writer.add_todo(&format!("{c}.{i} {}", "x".repeat(1000)));
                    }
                    writer.flush(&api, 100).await;
                }
            }
        });
        let mut nonce = 0;
        while !pushing.is_finished() {
            nonce += 1;
            slow.send(&ClientMessage::Ping { nonce }).await;
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        within("the pushes", pushing).await.unwrap();
        let last = api.pull_all(list, 0, None).await.last().unwrap().version;

        let mut at = 0;
        let after = loop {
            match slow.frame().await {
                Frame::Message(ServerMessage::Subscribed { cursor, .. }) => at = cursor,
                Frame::Message(ServerMessage::Changes {
                    changes, cursor, ..
                }) => {
                    assert!(changes.first().is_some_and(|c| c.version > at), "a gap");
                    at = cursor;
                }
                Frame::Message(ServerMessage::Pong { .. }) => {}
                Frame::Message(ServerMessage::Resync { after, .. }) => break after,
                other => panic!("attempt {attempt}: expected changes then resync, got {other:?}"),
            }
        };
        assert_eq!(after, at, "resync names the last version delivered");
        assert!(at < last, "the slow reader really fell behind");
        let close = slow.expect_close().await;
        let close = close.unwrap_or_else(|| panic!("attempt {attempt}: no close frame"));
        assert_eq!(close.code, CloseCode::Normal);
        assert_eq!(close.reason.as_str(), "resync");
    }
    assert_eq!(api.get_status("/healthz").await, 200);
    server.stop().await;
}
