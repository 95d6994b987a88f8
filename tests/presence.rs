//! Presence over the live socket (docs/PROTOCOL.md, "Presence"), on a real server
//! and store (SQLite, or PostgreSQL with `TETHER_TEST_STORE=postgres`):
//!
//! * people who say who they are see each other (name, colour, what they edit) and
//!   see one leave as soon as its socket closes;
//! * a socket that never says who it is gets no presence and is not counted;
//! * a presence that breaks the rules is `malformed_request` and the socket stays;
//! * a presence not said again expires, though its socket stays open;
//! * presence is never stored.

#![cfg(feature = "ssr")]

mod common;

use std::time::Duration;

use common::{within, Author, Live, TestServer};
use tether::model::{ClientId, ServerMessage, SyncError, Uid};

/// A subscribed socket on `list` (of `client`, if given) and its presence id.
async fn join_as(server: &TestServer, list: Uid, client: Option<ClientId>) -> (Live, Uid) {
    let mut live = Live::connect(server.addr()).await;
    live.send(&tether::model::ClientMessage::Subscribe {
        list,
        after: 0,
        client,
    })
    .await;
    loop {
        if let ServerMessage::Subscribed { peer, .. } = live.next().await {
            return (live, peer);
        }
    }
}

async fn join(server: &TestServer, list: Uid) -> (Live, Uid) {
    join_as(server, list, None).await
}

#[tokio::test]
async fn people_on_a_list_see_each_other_and_see_one_leave() {
    let server = TestServer::start().await;
    let mut author = Author::new(Uid::new());
    author.create_list("Shared");
    let milk = author.add_todo("Milk");
    author.flush(&server.api, 100).await;
    let list = author.list();
    let before = server.dump().await;

    let (mut ada, ada_id) = join(&server, list).await;
    let bo_client = ClientId::new();
    let (mut bo, bo_id) = join_as(&server, list, Some(bo_client)).await;
    let (mut quiet, _) = join(&server, list).await;
    ada.say("Ada", "#112233", None).await;
    bo.say("Bo", "#445566", Some(milk)).await;

    let both = |peers: &[tether::model::presence::Peer]| peers.len() == 2;
    let (peers, count) = ada.presence_until(both).await;
    assert_eq!(count, 2, "the socket that said nothing is not counted");
    let seen_bo = peers.iter().find(|p| p.id == bo_id).expect("Ada sees Bo");
    assert_eq!(
        (seen_bo.name.as_str(), seen_bo.color.as_str()),
        ("Bo", "#445566")
    );
    assert_eq!(seen_bo.editing, Some(milk), "and what Bo is editing");
    assert_eq!(seen_bo.client, Some(bo_client), "and whose stamps are Bo's");
    let (peers, _) = bo.presence_until(both).await;
    assert!(peers.iter().any(|p| p.id == ada_id && p.name == "Ada"));

    // The quiet socket gets changes but no presence.
    author.set(milk, "completed", serde_json::json!(true));
    author.flush(&server.api, 100).await;
    assert!(
        matches!(quiet.next().await, ServerMessage::Changes { .. }),
        "a socket that never said who it is gets no presence"
    );

    // Bo stops editing, then leaves.
    bo.say("Bo", "#445566", None).await;
    ada.presence_until(|peers| peers.iter().any(|p| p.id == bo_id && p.editing.is_none()))
        .await;
    drop(bo);
    let (peers, count) = within("Bo gone", ada.presence_until(|peers| peers.len() == 1)).await;
    assert_eq!((peers[0].id, count), (ada_id, 1));

    // Nothing of it was stored (the todo's edit was).
    let after = server.dump().await;
    assert_eq!(after.len(), before.len(), "no row was added by presence");
    server.stop().await;
}

#[tokio::test]
async fn a_presence_that_breaks_the_rules_is_refused_and_the_socket_stays() {
    let server = TestServer::start().await;
    let (mut live, _) = join(&server, Uid::new()).await;
    for (name, color) in [
        ("", "#000000"),
        ("Ada", "red"),
        (&"x".repeat(33)[..], "#000000"),
    ] {
        live.say(name, color, None).await;
        match live.next().await {
            ServerMessage::Error {
                error: SyncError::MalformedRequest { detail },
            } => assert!(detail.starts_with("presence"), "{detail}"),
            other => panic!("expected malformed_request, got {other:?}"),
        }
    }
    live.send(&tether::model::ClientMessage::Ping { nonce: 3 })
        .await;
    assert_eq!(live.next().await, ServerMessage::Pong { nonce: 3 });
    server.stop().await;
}

#[tokio::test]
async fn a_presence_not_said_again_expires_though_its_socket_stays() {
    let server = TestServer::start().await;
    let list = Uid::new();
    let (mut gone, gone_id) = join(&server, list).await;
    let (mut stays, stays_id) = join(&server, list).await;
    gone.say("Gone", "#000000", None).await;
    stays.say("Stays", "#ffffff", None).await;
    stays.presence_until(|peers| peers.len() == 2).await;

    // `Stays` repeats its presence as a client does; `Gone` says nothing more.
    let started = std::time::Instant::now();
    let (peers, _) = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let repeat =
                tokio::time::sleep(Duration::from_millis(tether::model::presence::REPEAT_MS));
            tokio::select! {
                set = stays.presence_until(|peers| peers.len() == 1) => return set,
                _ = repeat => stays.say("Stays", "#ffffff", None).await,
            }
        }
    })
    .await
    .expect("an unrepeated presence expires");
    assert_eq!(peers[0].id, stays_id);
    assert!(
        started.elapsed() >= Duration::from_secs(8),
        "not before it expired"
    );
    // Its socket is still open.
    gone.send(&tether::model::ClientMessage::Ping { nonce: 9 })
        .await;
    loop {
        match gone.next().await {
            ServerMessage::Pong { nonce } => break assert_eq!(nonce, 9),
            ServerMessage::Presence { peers, .. } => {
                assert!(peers.iter().all(|p| p.id != gone_id) || peers.len() == 2)
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    server.stop().await;
}
