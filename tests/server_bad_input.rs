//! The bad-input catalogue: every way a push or pull can be wrong gets its own typed
//! error with the documented code and HTTP status, and changes nothing in the store
//! (the whole database is dumped before and after each refusal and compared). A
//! body too large gets its 413 even when sent at once, one that cannot be read or
//! is not UTF-8 its 400. A flooding client is rate-limited without slowing anybody
//! else, and the server stays up through all of it.

#![cfg(feature = "ssr")]

mod common;

use common::{Api, Author, Refused, TestServer};
use serde_json::{json, Value};
use tether::model::{wall_clock_ms, ClientId, PushAck, Uid};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MAX_OPS: usize = 10;
const MAX_FIELD: usize = 4096;
const MAX_BODY: usize = 64 * 1024;
const MAX_SKEW_MS: u64 = 60_000;

/// One op as JSON, stamped now by `client`, with `action`'s keys beside the
/// envelope's (the wire shape of `Op`).
fn op(client: ClientId, seq: Value, action: Value) -> Value {
    let stamp = format!("{}:0:{client}", wall_clock_ms());
    let mut op = json!({"client": client, "seq": seq, "stamp": stamp});
    for (key, value) in action.as_object().expect("an action object") {
        op[key] = value.clone();
    }
    op
}

fn push_body(list: impl serde::Serialize, client: impl serde::Serialize, ops: Vec<Value>) -> Value {
    json!({"list": list, "client": client, "ops": ops})
}

fn create_todo(node: impl serde::Serialize, parent: impl serde::Serialize, fields: Value) -> Value {
    json!({"op": "create", "node": node, "kind": "todo", "parent": parent, "order": "a0", "fields": fields})
}

/// Two lists with a list node and one todo each, written through the API.
struct World {
    server: TestServer,
    a: Uid,
    a_todo: Uid,
    b: Uid,
    b_todo: Uid,
}

async fn world() -> World {
    let server = TestServer::start_with(|c| {
        c.sync.max_ops_per_push = MAX_OPS;
        c.sync.max_field_bytes = MAX_FIELD;
        c.sync.max_request_bytes = MAX_BODY;
        c.sync.max_clock_skew_ms = MAX_SKEW_MS;
    })
    .await;
    let mut a = Author::new(Uid::new());
    a.create_list("A");
    let a_todo = a.add_todo("Milk");
    a.flush(&server.api, MAX_OPS).await;
    let mut b = Author::new(Uid::new());
    b.create_list("B");
    let b_todo = b.add_todo("Bread");
    b.flush(&server.api, MAX_OPS).await;
    World {
        a: a.list(),
        a_todo,
        b: b.list(),
        b_todo,
        server,
    }
}

impl World {
    /// Sends `body` to `path`, expects the error `code` with `status`, and checks
    /// that the whole database is exactly as before.
    async fn refused(
        &self,
        path: &str,
        body: impl Into<String>,
        code: &str,
        status: u16,
    ) -> Refused {
        let before = self.server.dump().await;
        let body = body.into();
        let refused = match self.server.api.call::<Value>(path, body.clone()).await {
            Ok(answer) => panic!("{path} accepted {body}: {answer}"),
            Err(refused) => refused,
        };
        refused.assert(code, status);
        assert_eq!(
            self.server.dump().await,
            before,
            "{code}: the store changed"
        );
        refused
    }

    async fn push_refused(&self, body: Value, code: &str, status: u16) -> Refused {
        self.refused("/api/push", body.to_string(), code, status)
            .await
    }
}

#[tokio::test]
async fn malformed_json_and_wrong_request_types_are_malformed_requests() {
    let w = world().await;
    let (list, client) = (w.b, ClientId::new());
    for body in [
        "{\"list\": ",
        "not json",
        "",
        "[]",
        "null",
        // A field missing, or of the wrong type.
        r#"{"list": "5d1e0b7f-8a0d-4c36-9a59-3f1f7e0c6b21", "ops": []}"#,
    ] {
        w.refused("/api/push", body, "malformed_request", 400).await;
    }
    for body in [
        json!({"list": 5, "client": client, "ops": []}),
        json!({"list": list, "client": client, "ops": {}}),
        json!({"list": list, "client": client, "ops": "none"}),
        // An op that is not an op: an unknown action, a missing field, a string seq.
        push_body(
            list,
            client,
            vec![op(
                client,
                json!(1),
                json!({"op": "explode", "node": Uid::new()}),
            )],
        ),
        push_body(
            list,
            client,
            vec![op(client, json!(1), json!({"op": "set", "node": w.b_todo}))],
        ),
        push_body(
            list,
            client,
            vec![op(
                client,
                json!("1"),
                json!({"op": "delete", "node": w.b_todo}),
            )],
        ),
        push_body(
            list,
            client,
            vec![json!({"op": "delete", "node": w.b_todo})],
        ),
        // A stamp that is not `<wall_ms>:<counter>:<client>`.
        push_body(
            list,
            client,
            vec![{
                let mut o = op(client, json!(1), json!({"op": "delete", "node": w.b_todo}));
                o["stamp"] = json!("yesterday");
                o
            }],
        ),
        // An order key that is not one.
        push_body(
            list,
            client,
            vec![op(
                client,
                json!(1),
                json!({"op": "move", "node": w.b_todo, "parent": list, "order": ""}),
            )],
        ),
    ] {
        w.push_refused(body, "malformed_request", 400).await;
    }
    for body in [
        r#"{"list": "5d1e0b7f-8a0d-4c36-9a59-3f1f7e0c6b21", "after": "x"}"#,
        r#"{"list": "5d1e0b7f-8a0d-4c36-9a59-3f1f7e0c6b21", "after": -1}"#,
        r#"{"list": "5d1e0b7f-8a0d-4c36-9a59-3f1f7e0c6b21"}"#,
        r#"{"list": "5d1e0b7f-8a0d-4c36-9a59-3f1f7e0c6b21", "after": 0, "limit": -5}"#,
        "{",
    ] {
        w.refused("/api/pull", body, "malformed_request", 400).await;
    }
    w.server.stop().await;
}

#[tokio::test]
async fn invalid_uids_are_named() {
    let w = world().await;
    let client = ClientId::new();
    // A version-1 UUID, a simple (unhyphenated) one, and not a UUID at all.
    for bad in [
        "5d1e0b7f-8a0d-1c36-9a59-3f1f7e0c6b21",
        "5d1e0b7f8a0d4c369a593f1f7e0c6b21",
        "nope",
    ] {
        let r = w
            .push_refused(push_body(bad, client, vec![]), "invalid_uid", 400)
            .await;
        assert_eq!(
            r.error,
            tether::model::SyncError::InvalidUid { value: bad.into() }
        );
        w.push_refused(push_body(w.b, bad, vec![]), "invalid_uid", 400)
            .await;
        let node = push_body(
            w.b,
            client,
            vec![op(client, json!(1), json!({"op": "delete", "node": bad}))],
        );
        w.push_refused(node, "invalid_uid", 400).await;
        let parent = push_body(
            w.b,
            client,
            vec![op(
                client,
                json!(1),
                create_todo(Uid::new(), bad, json!({"title": "x"})),
            )],
        );
        w.push_refused(parent, "invalid_uid", 400).await;
        let mut forged = op(client, json!(1), json!({"op": "delete", "node": w.b_todo}));
        forged["client"] = json!(bad);
        w.push_refused(push_body(w.b, client, vec![forged]), "invalid_uid", 400)
            .await;
        let pull = json!({"list": bad, "after": 0});
        w.refused("/api/pull", pull.to_string(), "invalid_uid", 400)
            .await;
    }
    w.server.stop().await;
}

#[tokio::test]
async fn fields_are_checked_by_the_registry() {
    let w = world().await;
    let (list, client) = (w.b, ClientId::new());
    let create = |kind: &str, fields: Value| {
        let mut c = create_todo(Uid::new(), list, fields);
        c["kind"] = json!(kind);
        push_body(list, client, vec![op(client, json!(1), c)])
    };
    let set = |field: &str, value: Value| {
        push_body(
            list,
            client,
            vec![op(
                client,
                json!(1),
                json!({"op": "set", "node": w.b_todo, "field": field, "value": value}),
            )],
        )
    };
    w.push_refused(create("cake", json!({"title": "x"})), "unknown_kind", 422)
        .await;
    w.push_refused(
        create("todo", json!({"title": "x", "colour": "red"})),
        "unknown_field",
        422,
    )
    .await;
    w.push_refused(set("colour", json!("red")), "unknown_field", 422)
        .await;
    let r = w
        .push_refused(create("todo", json!({"title": 5})), "wrong_type", 422)
        .await;
    assert_eq!(
        r.error,
        tether::model::SyncError::WrongType {
            kind: "todo".into(),
            field: "title".into(),
            expected: "string".into()
        }
    );
    w.push_refused(set("completed", json!("yes")), "wrong_type", 422)
        .await;
    w.push_refused(
        create("todo", json!({"completed": true})),
        "invalid_field",
        422,
    )
    .await;
    w.push_refused(set("title", json!("")), "invalid_field", 422)
        .await;
    w.push_refused(set("title", json!("  padded  ")), "invalid_field", 422)
        .await;
    // Over the kind's own limit (1 KiB) but under the server's field limit.
    w.push_refused(set("title", json!("x".repeat(2000))), "invalid_field", 422)
        .await;
    // Over the server's field limit: refused before the registry looks at it.
    let r = w
        .push_refused(
            set("title", json!("x".repeat(MAX_FIELD))),
            "field_too_large",
            413,
        )
        .await;
    assert!(
        matches!(r.error, tether::model::SyncError::FieldTooLarge { bytes, max, .. } if bytes == MAX_FIELD + 2 && max == MAX_FIELD),
        "{r:?}"
    );
    w.push_refused(
        create("todo", json!({"title": "x".repeat(5000)})),
        "field_too_large",
        413,
    )
    .await;
    // A todo under a todo, a list node under the list.
    w.push_refused(
        push_body(
            list,
            client,
            vec![op(
                client,
                json!(1),
                create_todo(Uid::new(), w.b_todo, json!({"title": "x"})),
            )],
        ),
        "bad_parent",
        422,
    )
    .await;
    w.push_refused(
        create("section", json!({"title": "x"})).pipe(|mut b| {
            b["ops"][0]["parent"] = json!(null);
            b
        }),
        "bad_parent",
        422,
    )
    .await;
    w.server.stop().await;
}

/// Lets a value flow through a closure (keeps the cases above one expression each).
trait Pipe: Sized {
    fn pipe(self, f: impl FnOnce(Self) -> Self) -> Self {
        f(self)
    }
}
impl Pipe for Value {}

#[tokio::test]
async fn lists_are_capabilities_nothing_crosses_them() {
    let w = world().await;
    let (b, client) = (w.b, ClientId::new());
    let one = |action: Value| push_body(b, client, vec![op(client, json!(1), action)]);
    // Ops on a node of list A, pushed to list B.
    for action in [
        json!({"op": "set", "node": w.a_todo, "field": "title", "value": "mine now"}),
        json!({"op": "delete", "node": w.a_todo}),
        json!({"op": "move", "node": w.a_todo, "parent": b, "order": "a0"}),
        json!({"op": "delete", "node": w.a}),
        create_todo(w.a_todo, b, json!({"title": "stolen"})),
    ] {
        let r = w.push_refused(one(action), "foreign_node", 403).await;
        assert!(
            matches!(r.error, tether::model::SyncError::ForeignNode { node } if node == w.a_todo || node == w.a),
            "{r:?}"
        );
    }
    // A new node (or a moved one) under a parent of list A.
    for parent in [w.a, w.a_todo] {
        let r = w
            .push_refused(
                one(create_todo(Uid::new(), parent, json!({"title": "x"}))),
                "foreign_parent",
                403,
            )
            .await;
        assert!(
            matches!(r.error, tether::model::SyncError::ForeignParent { parent: p, .. } if p == parent)
        );
        w.push_refused(
            one(json!({"op": "move", "node": w.b_todo, "parent": parent, "order": "a0"})),
            "foreign_parent",
            403,
        )
        .await;
    }
    // The list node of another list cannot be created under this one's name.
    let mut root = create_todo(Uid::new(), Value::Null, json!({"title": "x"}));
    root["kind"] = json!("list");
    w.push_refused(one(root), "foreign_node", 403).await;
    // Nodes and parents that exist nowhere.
    w.push_refused(
        one(json!({"op": "delete", "node": Uid::new()})),
        "node_not_found",
        404,
    )
    .await;
    w.push_refused(
        one(create_todo(Uid::new(), Uid::new(), json!({"title": "x"}))),
        "parent_not_found",
        404,
    )
    .await;
    // Reading list A needs A's uid: B's pull shows nothing of A.
    let b_nodes = w.server.api.state(b).await;
    assert!(b_nodes.keys().all(|uid| *uid != w.a && *uid != w.a_todo));
    w.server.stop().await;
}

#[tokio::test]
async fn envelopes_stamps_and_sequence_numbers_are_checked() {
    let w = world().await;
    let (b, client) = (w.b, ClientId::new());
    let delete = json!({"op": "delete", "node": w.b_todo});
    let with_seq = |seq: Value| push_body(b, client, vec![op(client, seq, delete.clone())]);
    let r = w.push_refused(with_seq(json!(0)), "invalid_seq", 400).await;
    assert!(matches!(
        r.error,
        tether::model::SyncError::InvalidSeq { seq: 0, .. }
    ));
    w.push_refused(with_seq(json!((1u64 << 53) + 1)), "invalid_seq", 400)
        .await;
    w.push_refused(with_seq(json!(u64::MAX)), "invalid_seq", 400)
        .await;
    // Not a whole number from 0 to 2^64-1 at all: the op does not even decode.
    for seq in [json!(-1), json!(1.5), json!(1e30)] {
        w.push_refused(with_seq(seq), "malformed_request", 400)
            .await;
    }
    // Sequence numbers must increase within a batch.
    let twice = push_body(
        b,
        client,
        vec![
            op(client, json!(2), delete.clone()),
            op(client, json!(2), delete.clone()),
        ],
    );
    w.push_refused(twice, "invalid_seq", 400).await;
    let down = push_body(
        b,
        client,
        vec![
            op(client, json!(3), delete.clone()),
            op(client, json!(2), delete.clone()),
        ],
    );
    w.push_refused(down, "invalid_seq", 400).await;

    // Another client's op in the batch, or a stamp of another client.
    let other = ClientId::new();
    w.push_refused(
        push_body(b, client, vec![op(other, json!(1), delete.clone())]),
        "client_mismatch",
        400,
    )
    .await;
    let mut forged = op(client, json!(1), delete.clone());
    forged["stamp"] = json!(format!("{}:0:{other}", wall_clock_ms()));
    w.push_refused(push_body(b, client, vec![forged]), "client_mismatch", 400)
        .await;

    // A stamp from the far future would win every merge forever.
    let mut future = op(client, json!(1), delete.clone());
    let ahead = wall_clock_ms() + MAX_SKEW_MS + 60_000;
    future["stamp"] = json!(format!("{ahead}:0:{client}"));
    let r = w
        .push_refused(push_body(b, client, vec![future]), "clock_skew", 400)
        .await;
    assert!(
        matches!(r.error, tether::model::SyncError::ClockSkew { stamp_ms, max_skew_ms, .. } if stamp_ms == ahead && max_skew_ms == MAX_SKEW_MS),
        "{r:?}"
    );
    // A stamp in the past is merely an old write: accepted.
    let mut past = op(
        client,
        json!(1),
        json!({"op": "set", "node": w.b_todo, "field": "completed", "value": true}),
    );
    past["stamp"] = json!(format!("1000:0:{client}"));
    let ack: PushAck = w
        .server
        .api
        .call("/api/push", push_body(b, client, vec![past]).to_string())
        .await
        .expect("an old stamp is fine");
    assert_eq!(ack.acked_seq, 1);
    w.server.stop().await;
}

#[tokio::test]
async fn a_uid_cannot_change_kind() {
    let w = world().await;
    let (b, client) = (w.b, ClientId::new());
    // The stored todo, created again as a section.
    let mut again = create_todo(w.b_todo, b, json!({"title": "Dairy"}));
    again["kind"] = json!("section");
    let r = w
        .push_refused(
            push_body(b, client, vec![op(client, json!(1), again)]),
            "kind_conflict",
            409,
        )
        .await;
    assert_eq!(
        r.error,
        tether::model::SyncError::KindConflict {
            node: w.b_todo,
            existing: "todo".into(),
            requested: "section".into()
        }
    );
    // Twice in one batch, with different kinds.
    let fresh = Uid::new();
    let mut section = create_todo(fresh, b, json!({"title": "Dairy"}));
    section["kind"] = json!("section");
    let batch = vec![
        op(
            client,
            json!(1),
            create_todo(fresh, b, json!({"title": "Milk"})),
        ),
        op(client, json!(2), section),
    ];
    w.push_refused(push_body(b, client, batch), "kind_conflict", 409)
        .await;
    // A todo cannot take the list's own uid.
    w.push_refused(
        push_body(
            b,
            client,
            vec![op(
                client,
                json!(1),
                create_todo(b, b, json!({"title": "x"})),
            )],
        ),
        "kind_conflict",
        409,
    )
    .await;
    w.server.stop().await;
}

#[tokio::test]
async fn a_batch_is_all_or_nothing() {
    let w = world().await;
    let (b, client) = (w.b, ClientId::new());
    let good = Uid::new();
    // Three valid ops, then one invalid one: none of them may be stored, and the
    // client's sequence must not move (the same seqs are accepted afterwards).
    let ops = vec![
        op(
            client,
            json!(1),
            create_todo(good, b, json!({"title": "Eggs"})),
        ),
        op(
            client,
            json!(2),
            json!({"op": "set", "node": w.b_todo, "field": "completed", "value": true}),
        ),
        op(client, json!(3), json!({"op": "delete", "node": w.b_todo})),
        op(
            client,
            json!(4),
            json!({"op": "set", "node": good, "field": "title", "value": ""}),
        ),
    ];
    w.push_refused(push_body(b, client, ops.clone()), "invalid_field", 422)
        .await;
    let state = w.server.api.state(b).await;
    assert!(!state.contains_key(&good));
    assert!(!state[&w.b_todo].is_deleted());
    let ack: PushAck = w
        .server
        .api
        .call(
            "/api/push",
            push_body(b, client, ops[..3].to_vec()).to_string(),
        )
        .await
        .expect("the valid prefix alone is accepted");
    assert_eq!(ack.acked_seq, 3);
    let state = w.server.api.state(b).await;
    assert!(state[&good].is_live());
    assert!(state[&w.b_todo].is_deleted());
    w.server.stop().await;
}

#[tokio::test]
async fn limits_refuse_oversize_batches_and_bodies_before_decoding() {
    let w = world().await;
    let (b, client) = (w.b, ClientId::new());
    let ops: Vec<Value> = (1..=MAX_OPS as u64 + 1)
        .map(|seq| {
            op(
                client,
                json!(seq),
                json!({"op": "set", "node": w.b_todo, "field": "completed", "value": seq % 2 == 0}),
            )
        })
        .collect();
    let r = w
        .push_refused(push_body(b, client, ops.clone()), "too_many_ops", 413)
        .await;
    assert_eq!(
        r.error,
        tether::model::SyncError::TooManyOps {
            count: MAX_OPS + 1,
            max: MAX_OPS
        }
    );
    // The same ops, one fewer, are fine.
    let ack: PushAck = w
        .server
        .api
        .call(
            "/api/push",
            push_body(b, client, ops[..MAX_OPS].to_vec()).to_string(),
        )
        .await
        .expect("a full batch is accepted");
    assert_eq!(ack.acked_seq, MAX_OPS as u64);

    // A body over the limit is refused by its declared length, without decoding:
    // this one is not even JSON, and still gets the size error.
    let huge = "x".repeat(MAX_BODY + 1);
    let r = w
        .refused("/api/push", huge.clone(), "body_too_large", 413)
        .await;
    assert_eq!(
        r.error,
        tether::model::SyncError::BodyTooLarge {
            bytes: MAX_BODY + 1,
            max: MAX_BODY
        }
    );
    w.refused("/api/pull", huge, "body_too_large", 413).await;
    // A valid push of the same size is refused the same way.
    let padded = push_body(
        b,
        client,
        vec![op(
            client,
            json!(MAX_OPS + 1),
            json!({"op": "set", "node": w.b_todo, "field": "title", "value": "y".repeat(MAX_BODY)}),
        )],
    );
    w.push_refused(padded, "body_too_large", 413).await;

    // Without a declared length (chunked), the body is cut off at the limit.
    let before = w.server.dump().await;
    let (status, body) = post_chunked(&w.server.api, "/api/push", MAX_BODY * 2).await;
    assert_eq!(status, 413, "{body}");
    let error: tether::model::SyncError = serde_json::from_str(&body).expect("typed JSON");
    assert_eq!(error.code(), "body_too_large");
    assert_eq!(w.server.dump().await, before);
    w.server.stop().await;
}

/// POSTs `bytes` of JSON-ish text with `Transfer-Encoding: chunked` over a raw
/// socket (reqwest always declares a length); answers the status and the body.
async fn post_chunked(api: &Api, path: &str, bytes: usize) -> (u16, String) {
    let addr = api.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = "y".repeat(8 * 1024);
    let mut sent = 0;
    while sent < bytes {
        let frame = format!("{:x}\r\n{chunk}\r\n", chunk.len());
        // The server may answer and stop reading once the limit is passed.
        if stream.write_all(frame.as_bytes()).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = common::within("chunked response", stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    // The body may itself be chunked: keep the JSON object.
    let json = match (body.find('{'), body.rfind('}')) {
        (Some(start), Some(end)) => body[start..=end].to_string(),
        _ => body,
    };
    (status, json)
}

#[tokio::test]
async fn a_flooding_client_is_rate_limited_while_others_push() {
    let server = TestServer::start_with(|c| c.sync.max_pushes_per_second = 2).await;
    let api = &server.api;
    let mut flood = Author::new(Uid::new());
    flood.create_list("Flood");
    // The bucket holds a burst of twice the rate: 4 pushes pass, then 429 (a
    // slow machine may earn back a token meanwhile, hence "at least 4").
    let req = flood.request(100);
    let mut refused = None;
    for attempt in 1..=50 {
        let before = server.dump().await;
        if let Err(r) = api.push(&req).await {
            assert!(
                attempt > 4,
                "push {attempt} refused within the burst: {r:?}"
            );
            assert_eq!(server.dump().await, before);
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("the flood is limited");
    refused.assert("rate_limited", 429);
    let tether::model::SyncError::RateLimited { retry_after_ms } = refused.error else {
        unreachable!()
    };
    assert!((1..=1000).contains(&retry_after_ms), "{retry_after_ms}");
    // Somebody else is not held up by it.
    let mut calm = Author::new(Uid::new());
    calm.create_list("Calm");
    calm.add_todo("Tea");
    calm.flush(api, 100).await;
    assert_eq!(api.state(calm.list()).await.len(), 2);
    assert_eq!(api.get_status("/healthz").await, 200);
    server.stop().await;
}

#[tokio::test]
async fn the_server_stays_up_through_all_of_it() {
    let w = world().await;
    let api = &w.server.api;
    // A burst of garbage of every sort, interleaved with valid work.
    let mut author = Author::new(w.b);
    for i in 0..20 {
        let garbage = [
            "{".to_string(),
            "\u{0}\u{1}".to_string(),
            json!({"list": w.b, "client": "x", "ops": [1, 2, 3]}).to_string(),
            json!({"list": w.b, "client": ClientId::new(), "ops": [{"op": "set"}]}).to_string(),
        ];
        let (status, _) = api
            .post_raw("/api/push", garbage[i % garbage.len()].clone())
            .await;
        assert!((400..500).contains(&status), "{status}");
        author.add_todo(&format!("item {i}"));
    }
    author.flush(api, MAX_OPS).await;
    assert_eq!(api.get_status("/healthz").await, 200);
    assert_eq!(api.state(w.b).await.len(), 2 + 20);
    w.server.stop().await;
}

/// `null` is no field's value: for every field of every kind, in a `create` and in
/// a `set`, it is `wrong_type` naming the JSON type the field takes (a field left
/// out of a `create` is what `invalid_field` "is required" is for).
#[tokio::test]
async fn null_is_the_wrong_type_for_every_field() {
    let w = world().await;
    let (list, client) = (w.b, ClientId::new());
    let push = |action: Value| push_body(list, client, vec![op(client, json!(1), action)]);
    let create = |node: Uid, kind: &str, parent: Value, fields: Value| {
        push(
            json!({"op": "create", "node": node, "kind": kind, "parent": parent, "order": "a0", "fields": fields}),
        )
    };
    let set = |node: Uid, field: &str| {
        push(json!({"op": "set", "node": node, "field": field, "value": null}))
    };
    let item = json!(list);
    let cases = [
        (
            create(list, "list", Value::Null, json!({"title": null})),
            "list",
            "title",
            "string",
        ),
        (set(list, "title"), "list", "title", "string"),
        (
            create(Uid::new(), "todo", item.clone(), json!({"title": null})),
            "todo",
            "title",
            "string",
        ),
        (set(w.b_todo, "title"), "todo", "title", "string"),
        (
            create(
                Uid::new(),
                "todo",
                item.clone(),
                json!({"title": "x", "completed": null}),
            ),
            "todo",
            "completed",
            "bool",
        ),
        (set(w.b_todo, "completed"), "todo", "completed", "bool"),
        (
            create(Uid::new(), "section", item, json!({"title": null})),
            "section",
            "title",
            "string",
        ),
    ];
    for (body, kind, field, expected) in cases {
        let r = w.push_refused(body, "wrong_type", 422).await;
        assert_eq!(
            r.error,
            tether::model::SyncError::WrongType {
                kind: kind.into(),
                field: field.into(),
                expected: expected.into()
            }
        );
    }
    w.server.stop().await;
}

/// Sends `request` (head and body, as bytes) over a raw connection, all of it
/// before reading anything, as a simple client does, then closes the sending side
/// if `close_write`; answers the status, the JSON body, and whether the exchange
/// went without a network error (the request was taken whole and the connection
/// ended cleanly, not with a reset). The answer is read to the end of the
/// connection (the request should say `connection: close`); what arrived before a
/// reset counts.
async fn raw_exchange(addr: &str, request: Vec<u8>, close_write: bool) -> (u16, Value, bool) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // A server that stops reading makes this fail: not the test's verdict.
    let written = common::within("raw request", stream.write_all(&request)).await;
    if close_write {
        let _ = stream.shutdown().await;
    }
    let mut response = Vec::new();
    let read_result = common::within("raw response", stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            panic!("no status line in {text:?} (write: {written:?}, read: {read_result:?})")
        });
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let json = match (body.find('{'), body.rfind('}')) {
        (Some(start), Some(end)) => serde_json::from_str(&body[start..=end]).unwrap(),
        _ => Value::String(body.to_string()),
    };
    (status, json, written.is_ok() && read_result.is_ok())
}

fn request_head(addr: &str, path: &str, headers: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         connection: close\r\n{headers}\r\n"
    )
    .into_bytes()
}

/// A body several times the limit, sent at once as a client that does not wait
/// does, must still get its 413: the server reads (and drops) the rest before it
/// answers, rather than closing on unread data, which resets the connection and
/// loses the answer (a client then sees a network failure and resends for ever).
#[tokio::test]
async fn a_body_far_over_the_limit_sent_at_once_still_gets_its_413() {
    const MIB: usize = 1024 * 1024;
    let server = TestServer::start().await;
    let max = server.server.state.config.sync.max_request_bytes;
    let addr = server.addr().to_string();
    for bytes in [2 * MIB, 4 * MIB, 8 * MIB] {
        let mut request = request_head(&addr, "/api/push", &format!("content-length: {bytes}\r\n"));
        request.extend(std::iter::repeat_n(b'x', bytes));
        let (status, body, clean) = raw_exchange(&addr, request, false).await;
        assert_eq!(status, 413, "{bytes} bytes: {body}");
        // On Linux the answer can still be read after a reset; elsewhere, and
        // through proxies, the reset loses it.
        assert!(
            clean,
            "{bytes} bytes: the body was not read, the connection reset"
        );
        let error: tether::model::SyncError = serde_json::from_value(body).unwrap();
        assert_eq!(error, tether::model::SyncError::BodyTooLarge { bytes, max });
        // And as an HTTP library sends it.
        let refused = server
            .api
            .call::<PushAck>("/api/push", vec![b'x'; bytes])
            .await
            .unwrap_err();
        assert_eq!(
            refused.error,
            tether::model::SyncError::BodyTooLarge { bytes, max }
        );
    }
    // A client that waits for `100 Continue` is answered at once, without it.
    let head = format!("content-length: {}\r\nexpect: 100-continue\r\n", 4 * MIB);
    let started = std::time::Instant::now();
    let (status, body, _) =
        raw_exchange(&addr, request_head(&addr, "/api/push", &head), false).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["bytes"], 4 * MIB);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // Without a declared length, the size is what the server counted.
    let bytes = 3 * MIB;
    let mut request = request_head(&addr, "/api/pull", "transfer-encoding: chunked\r\n");
    let chunk = vec![b'y'; 64 * 1024];
    for _ in 0..bytes / chunk.len() {
        request.extend(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend(&chunk);
        request.extend(b"\r\n");
    }
    request.extend(b"0\r\n\r\n");
    let (status, body, clean) = raw_exchange(&addr, request, false).await;
    assert_eq!(status, 413, "{body}");
    assert!(clean, "the body was not read, the connection reset");
    let error: tether::model::SyncError = serde_json::from_value(body).unwrap();
    assert_eq!(error, tether::model::SyncError::BodyTooLarge { bytes, max });
    assert_eq!(server.api.get_status("/healthz").await, 200);
    server.stop().await;
}

/// A body that cannot be read to its end — broken chunked framing, or shorter than
/// its declared length when the client stops sending — is a malformed request,
/// not a body too large with a size nobody sent.
#[tokio::test]
async fn a_body_that_cannot_be_read_is_malformed_not_too_large() {
    let w = world().await;
    let addr = w.server.addr().to_string();
    let before = w.server.dump().await;
    let mut author = Author::new(w.b);
    author.add_todo("Never stored");
    let valid = serde_json::to_vec(&author.request(MAX_OPS)).unwrap();

    let mut broken_chunks = request_head(&addr, "/api/push", "transfer-encoding: chunked\r\n");
    broken_chunks.extend(b"zz\r\n{}\r\n0\r\n\r\n");
    let mut short = request_head(
        &addr,
        "/api/push",
        &format!("content-length: {}\r\n", valid.len() + 100),
    );
    short.extend(&valid);
    for (what, request) in [("chunk size zz", broken_chunks), ("short body", short)] {
        let (status, body, _) = raw_exchange(&addr, request, true).await;
        assert_eq!(status, 400, "{what}: {body}");
        let error: tether::model::SyncError = serde_json::from_value(body).unwrap();
        assert_eq!(error.code(), "malformed_request", "{what}: {error:?}");
    }
    assert_eq!(w.server.dump().await, before, "nothing stored");
    // The same batch, whole, is fine.
    w.server
        .api
        .call::<PushAck>("/api/push", valid)
        .await
        .expect("the whole body is accepted");
    w.server.stop().await;
}

/// JSON text is UTF-8: a body with invalid bytes is malformed wherever they are,
/// even in a string under a key the server ignores.
#[tokio::test]
async fn invalid_utf8_anywhere_in_a_body_is_a_malformed_request() {
    let w = world().await;
    let api = &w.server.api;
    let before = w.server.dump().await;
    let mut author = Author::new(w.b);
    author.add_todo("Only if valid");
    let push = serde_json::to_vec(&author.request(MAX_OPS)).unwrap();
    let pull = serde_json::to_vec(&json!({"list": w.b, "after": 0, "limit": null})).unwrap();
    // `{"note": "<note>", ...the rest of the request...}`
    let with_note = |request: &[u8], note: &[u8]| {
        let mut body = b"{\"note\": \"".to_vec();
        body.extend(note);
        body.extend(b"\", ");
        body.extend(&request[1..]);
        body
    };
    for (path, request) in [("/api/push", &push), ("/api/pull", &pull)] {
        let (status, body) = api
            .post_raw(path, with_note(request, b"bad \xff\xfe bytes"))
            .await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["code"], "malformed_request", "{path}: {body}");
    }
    assert_eq!(w.server.dump().await, before, "nothing stored");
    // The same bodies with a valid note are accepted.
    for (path, request) in [("/api/push", &push), ("/api/pull", &pull)] {
        let (status, body) = api.post_raw(path, with_note(request, b"fine")).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    w.server.stop().await;
}
