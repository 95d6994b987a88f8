//! List isolation: a list's UID is its capability. Without it nothing of the list
//! can be read or written, and nothing tells whether it exists.
//!
//! * Ops naming another list's nodes, or its nodes as parents, are refused (typed
//!   403) and change nothing; the errors name only ids the request itself carried,
//!   never the other list.
//! * Pulling or subscribing with a guessed UID answers exactly what a list never
//!   written answers, and the same as for a real list with nothing new: the answer
//!   has one shape whatever exists.
//! * Malformed UIDs are typed 400s, over HTTP and on the live socket.
//! * No endpoint enumerates lists: every likely path is probed, and none answers
//!   anything that names a stored list, node or client.

#![cfg(feature = "ssr")]

mod common;

use std::collections::HashSet;

use common::{Author, Frame, Live, TestServer};
use serde_json::{json, Value};
use tether::model::{
    wall_clock_ms, ClientId, ClientMessage, PullPage, ServerMessage, SyncError, Uid,
};

/// Two lists with a few nodes each, and every id the store holds.
struct World {
    server: TestServer,
    /// The victim's list, its nodes and its writer's client id.
    a: Uid,
    a_todo: Uid,
    a_section: Uid,
    a_client: ClientId,
    /// The list the outsider legitimately has.
    b: Uid,
    b_todo: Uid,
}

async fn world() -> World {
    let server = TestServer::start().await;
    let mut a = Author::new(Uid::new());
    a.create_list("Private");
    let a_todo = a.add_todo("Secret gift");
    let section = tether::model::Section {
        title: "Hidden".into(),
    };
    let (a_section, _) = a
        .replica
        .create(
            a.list(),
            tether::model::Placement::End,
            &section,
            wall_clock_ms(),
        )
        .unwrap();
    a.flush(&server.api, 100).await;
    let mut b = Author::new(Uid::new());
    b.create_list("Mine");
    let b_todo = b.add_todo("Bread");
    b.flush(&server.api, 100).await;
    World {
        a: a.list(),
        a_todo,
        a_section,
        a_client: a.client(),
        b: b.list(),
        b_todo,
        server,
    }
}

impl World {
    /// Every id of list A: what an outsider must never learn from an answer.
    fn secrets(&self) -> Vec<String> {
        [self.a, self.a_todo, self.a_section]
            .iter()
            .map(Uid::to_string)
            .chain([self.a_client.to_string()])
            .collect()
    }
}

/// Every hyphenated UUID in `text`, lowercased.
fn uuids_in(text: &str) -> HashSet<String> {
    let lower = text.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut found = HashSet::new();
    for start in 0..bytes.len().saturating_sub(35) {
        let candidate = &lower[start..start + 36];
        if Uid::parse(candidate).is_ok() {
            found.insert(candidate.to_string());
        }
    }
    found
}

/// One op of `client` as JSON, stamped now, with `action`'s keys.
fn op(client: ClientId, seq: u64, action: Value) -> Value {
    let mut op =
        json!({"client": client, "seq": seq, "stamp": format!("{}:0:{client}", wall_clock_ms())});
    for (key, value) in action.as_object().unwrap() {
        op[key] = value.clone();
    }
    op
}

#[tokio::test]
async fn ops_cannot_touch_another_lists_nodes_and_errors_name_only_what_was_sent() {
    let w = world().await;
    let (b, outsider) = (w.b, ClientId::new());
    let create = |node: Uid, parent: Uid| {
        json!({"op": "create", "node": node, "kind": "todo", "parent": parent,
               "order": "a0", "fields": {"title": "x"}})
    };
    let cases = [
        // Writes to A's nodes, pushed under B.
        (
            json!({"op": "set", "node": w.a_todo, "field": "title", "value": "mine"}),
            "foreign_node",
        ),
        (
            json!({"op": "set", "node": w.a, "field": "title", "value": "mine"}),
            "foreign_node",
        ),
        (json!({"op": "delete", "node": w.a_section}), "foreign_node"),
        (
            json!({"op": "move", "node": w.a_todo, "parent": b, "order": "a0"}),
            "foreign_node",
        ),
        (create(w.a_todo, b), "foreign_node"),
        // B's nodes (new or old) put under A's nodes.
        (create(Uid::new(), w.a), "foreign_parent"),
        (create(Uid::new(), w.a_section), "foreign_parent"),
        (
            json!({"op": "move", "node": w.b_todo, "parent": w.a_section, "order": "a0"}),
            "foreign_parent",
        ),
        (
            json!({"op": "move", "node": w.b_todo, "parent": w.a, "order": "a0"}),
            "foreign_parent",
        ),
        // A's list node created again under B's name.
        (
            json!({"op": "create", "node": w.a, "kind": "list", "parent": null,
                   "order": "a0", "fields": {"title": "x"}}),
            "foreign_node",
        ),
    ];
    for (action, code) in cases {
        let body = json!({"list": b, "client": outsider, "ops": [op(outsider, 1, action)]});
        let before = w.server.dump().await;
        let (status, answer) = w.server.api.post_raw("/api/push", body.to_string()).await;
        assert_eq!(status, 403, "{body} -> {answer}");
        assert_eq!(answer["code"], code, "{body} -> {answer}");
        assert_eq!(w.server.dump().await, before, "{code}: the store changed");
        // The error names nothing the request did not carry: never list A (unless
        // the request named it), never A's client.
        let sent = uuids_in(&body.to_string());
        for id in uuids_in(&answer.to_string()) {
            assert!(
                sent.contains(&id),
                "{answer} names {id}, which {body} did not"
            );
        }
        let text = answer.to_string();
        assert!(!text.contains(&w.a_client.to_string()));
        if !sent.contains(&w.a.to_string()) {
            assert!(!text.contains(&w.a.to_string()), "{text} names list A");
        }
    }
    // A batch that mixes a valid op with a foreign one stores neither.
    let fresh = Uid::new();
    let body = json!({"list": b, "client": outsider, "ops": [
        op(outsider, 1, create(fresh, b)),
        op(outsider, 2, json!({"op": "delete", "node": w.a_todo})),
    ]});
    let (status, _) = w.server.api.post_raw("/api/push", body.to_string()).await;
    assert_eq!(status, 403);
    assert!(!w.server.api.state(b).await.contains_key(&fresh));
    // And A is untouched by all of it.
    let a = w.server.api.state(w.a).await;
    assert!(a[&w.a_todo].is_live() && a[&w.a_section].is_live());
    assert_eq!(a[&w.a_todo].field("title"), Some(&json!("Secret gift")));
    w.server.stop().await;
}

/// A pull page without what differs by nature between two requests: the list
/// asked for and the server's clock.
fn shape(page: &PullPage) -> Value {
    json!({"changes": page.changes, "cursor": page.cursor, "more": page.more})
}

#[tokio::test]
async fn a_guessed_uid_reads_exactly_like_a_list_never_written() {
    let w = world().await;
    let api = &w.server.api;
    let never_written = Uid::new();
    for after in [0, 1, 5, 1_000_000] {
        let reference = api.pull_ok(never_written, after, None).await;
        assert_eq!(
            shape(&reference),
            json!({"changes": [], "cursor": after, "more": false})
        );
        for _ in 0..20 {
            let guess = Uid::new();
            let page = api.pull_ok(guess, after, Some(10)).await;
            assert_eq!(page.list, guess);
            assert_eq!(shape(&page), shape(&reference));
        }
        // A real list with nothing newer answers the same shape too: an empty page
        // says nothing about whether the list exists.
        let newest = api.pull_all(w.a, 0, None).await.last().unwrap().version;
        let nothing_new = api.pull_ok(w.a, newest.max(after), None).await;
        assert_eq!(
            shape(&nothing_new),
            json!({"changes": [], "cursor": newest.max(after), "more": false})
        );
    }
    // The raw answers differ only in the list they echo and the clock.
    let guess = Uid::new();
    let (_, a) = api
        .post_raw("/api/pull", json!({"list": guess, "after": 0}).to_string())
        .await;
    let (_, b) = api
        .post_raw(
            "/api/pull",
            json!({"list": never_written, "after": 0}).to_string(),
        )
        .await;
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&a), keys(&b));

    // Subscribing: a guessed list and a never-written one get the same messages.
    for list in [guess, never_written] {
        let (mut live, changes, cursor) = Live::subscribe(w.server.addr(), list, 3).await;
        assert!(changes.is_empty());
        assert_eq!(cursor, 3);
        // ... and nothing of the other lists arrives when they change.
        let mut writer = Author::new(w.a);
        writer.add_todo("Another secret");
        writer.flush(api, 10).await;
        live.send(&ClientMessage::Ping { nonce: 1 }).await;
        assert_eq!(live.next().await, ServerMessage::Pong { nonce: 1 });
    }
    w.server.stop().await;
}

#[tokio::test]
async fn malformed_uids_are_typed_400s_everywhere() {
    let w = world().await;
    let api = &w.server.api;
    let a = w.a.to_string();
    let malformed = [
        String::new(),
        "not-a-uid".into(),
        a[..35].to_string(),
        format!("{a}0"),
        a.replace('-', ""),
        format!("{{{a}}}"),
        // The right digits as a version-1 UUID.
        format!("{}1{}", &a[..14], &a[15..]),
        format!(" {a}"),
        "00000000-0000-0000-0000-000000000000".into(),
    ];
    for bad in &malformed {
        let pull = json!({"list": bad, "after": 0});
        let refused = api
            .call::<PullPage>("/api/pull", pull.to_string())
            .await
            .unwrap_err();
        refused.assert("invalid_uid", 400);
        let push = json!({"list": bad, "client": ClientId::new(), "ops": []});
        let refused = api
            .call::<Value>("/api/push", push.to_string())
            .await
            .unwrap_err();
        refused.assert("invalid_uid", 400);
        // The error echoes what was sent (cut to 64 characters), never a real id
        // that a truncated or altered one resembles.
        let echoed: String = bad.chars().take(64).collect();
        assert_eq!(refused.error, SyncError::InvalidUid { value: echoed });

        let mut live = Live::connect(w.server.addr()).await;
        let subscribe = json!({"type": "subscribe", "list": bad, "after": 0});
        futures::SinkExt::send(
            &mut live.ws,
            tokio_tungstenite::tungstenite::Message::text(subscribe.to_string()),
        )
        .await
        .unwrap();
        match live.next().await {
            ServerMessage::Error { error } => {
                assert_eq!(error.code(), "malformed_request");
                assert_eq!(error.http_status(), 400);
            }
            other => panic!("{bad:?}: expected an error, got {other:?}"),
        }
        assert!(matches!(live.frame().await, Frame::Close(_) | Frame::Ended));
    }
    // Letter case does not matter: the same list, not another one, not an error.
    let upper = api.pull_ok_text(&a.to_uppercase()).await;
    assert_eq!(upper.list, w.a);
    w.server.stop().await;
}

#[tokio::test]
async fn no_endpoint_enumerates_lists() {
    let w = world().await;
    let api = &w.server.api;
    let secrets = w.secrets();
    let probes = [
        "/api/lists",
        "/api/list",
        "/api/nodes",
        "/api/all",
        "/api/dump",
        "/api/debug",
        "/api/admin",
        "/api/export",
        "/api/pull",
        "/api/push",
        "/api/live",
        "/api/ping",
        "/lists",
        "/list",
        "/l",
        "/l/",
        "/admin",
        "/debug",
        "/export",
        "/data",
        "/data/tether.db",
        "/t.db",
        "/healthz",
        "/",
        "/new",
        "/pkg/",
        "/.env",
        "/Leptos.toml",
    ];
    let bodies = [
        String::new(),
        "{}".into(),
        json!({"after": 0}).to_string(),
        json!({"list": null, "after": 0}).to_string(),
        json!({"list": "*", "after": 0}).to_string(),
        json!({"list": "%", "after": 0}).to_string(),
        json!({"list": "' OR 1=1 --", "after": 0}).to_string(),
    ];
    let mut answered = 0;
    for path in probes {
        let url = format!("{}{path}", api.base);
        let get = api.http.get(&url).send().await.unwrap();
        let status = get.status().as_u16();
        let text = get.text().await.unwrap();
        check_no_secret(&secrets, "GET", path, status, &text);
        for body in &bodies {
            let post = api
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = post.status().as_u16();
            let text = post.text().await.unwrap();
            check_no_secret(&secrets, "POST", path, status, &text);
            if path.starts_with("/api/") && status == 200 {
                // Only the protocol's endpoints answer 200 under /api, and only to
                // a well-formed request; none of these is one (ping takes any).
                assert_eq!(path, "/api/ping", "POST {path} {body} answered 200: {text}");
            }
            answered += 1;
        }
    }
    assert!(answered > 100);
    // The only read is a pull, and it needs a list's uid.
    let refused = api.call::<PullPage>("/api/pull", "{}".to_string()).await;
    refused.unwrap_err().assert("malformed_request", 400);
    w.server.stop().await;
}

/// Fails if an answer names any id of list A.
fn check_no_secret(secrets: &[String], method: &str, path: &str, status: u16, text: &str) {
    let lower = text.to_ascii_lowercase();
    for secret in secrets {
        assert!(
            !lower.contains(secret),
            "{method} {path} ({status}) answered with {secret}: {text:.300}"
        );
    }
}

/// A pull of the list named by `text` as it is (any letter case).
trait PullText {
    async fn pull_ok_text(&self, list: &str) -> PullPage;
}

impl PullText for common::Api {
    async fn pull_ok_text(&self, list: &str) -> PullPage {
        self.call("/api/pull", json!({"list": list, "after": 0}).to_string())
            .await
            .unwrap_or_else(|e| panic!("pull of {list} refused: {e:?}"))
    }
}

/// A push of one op by a fresh client to `list`; answers the status and the body.
async fn push_one(server: &TestServer, list: Uid, action: Value) -> (u16, Value) {
    let client = ClientId::new();
    let body = json!({"list": list, "client": client, "ops": [op(client, 1, action)]});
    server.api.post_raw("/api/push", body.to_string()).await
}

#[tokio::test]
async fn no_list_is_locked_out_of_its_own_uid() {
    let server = TestServer::start().await;
    let d = Uid::new();
    let todo = |node: Uid, parent: Uid| {
        json!({"op": "create", "node": node, "kind": "todo", "parent": parent,
               "order": "a0", "fields": {"title": "x"}})
    };

    // C never written: D may make a node with C's uid (nobody can know C yet)...
    let c = Uid::new();
    let (status, answer) = push_one(&server, d, todo(c, d)).await;
    assert_eq!(status, 200, "{answer}");
    // ...and C's own writes still work: its root, and items under it.
    let mut owner = Author::new(c);
    owner.create_list("Mine after all");
    let item = owner.add_todo("Milk");
    owner.flush(&server.api, 10).await;
    let state = server.api.state(c).await;
    assert!(state.contains_key(&c) && state.contains_key(&item));
    assert_eq!(state[&c].kind_name(), Some("list"));
    // D's early node stays D's; now that C is a list, D cannot touch that uid.
    assert!(server.api.state(d).await.contains_key(&c));
    let (status, answer) = push_one(&server, d, json!({"op": "delete", "node": c})).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (403, Some("foreign_node"))
    );

    // C written without its list node: its uid is refused as a node or a parent of D.
    let c = Uid::new();
    let mut owner = Author::new(c);
    owner.add_todo("No root yet");
    owner.flush(&server.api, 10).await;
    let before = server.dump().await;
    for (action, code) in [
        (todo(c, d), "foreign_node"),
        (todo(Uid::new(), c), "foreign_parent"),
        (
            json!({"op": "set", "node": c, "field": "title", "value": "taken"}),
            "foreign_node",
        ),
    ] {
        let (status, answer) = push_one(&server, d, action).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (403, Some(code)),
            "{answer}"
        );
    }
    assert_eq!(server.dump().await, before, "refused ops change nothing");
    owner.create_list("Root at last");
    owner.add_todo("Still mine");
    owner.flush(&server.api, 10).await;
    assert_eq!(server.api.state(c).await.len(), 3);
    server.stop().await;
}
