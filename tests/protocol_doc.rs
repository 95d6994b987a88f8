//! Keeps docs/PROTOCOL.md honest.
//!
//! Every example in the document is a fenced block tagged with the wire type it
//! shows, e.g. ```` ```json wire:PushRequest ```` or, for an error, ```` ```json
//! wire:SyncError status:413 ````. The test parses each one as that type, checks that
//! serialising it back gives exactly the same JSON (so no field is misspelt, missing
//! or extra), that an error's status is the one the server sends for it, and that
//! every error code and every live message type has an example.
//!
//! The examples were produced by a real session against a real server:
//! `cargo test --features ssr --test protocol_doc -- --ignored --nocapture` prints
//! a fresh set (`print_examples_from_a_real_session` below).

#![cfg(feature = "ssr")]

mod common;

use std::collections::BTreeSet;

use common::{Author, Live, TestServer};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};
use tether::{
    app::api::ServerInfo,
    model::{
        Change, ClientId, ClientMessage, Node, Op, PullPage, PullRequest, PushAck, PushRequest,
        ServerMessage, SyncError, Uid,
    },
};

const DOC: &str = include_str!("../docs/PROTOCOL.md");

/// One tagged example: its type, the status it claims (errors), its JSON.
struct Example {
    line: usize,
    wire: String,
    status: Option<u16>,
    json: Value,
}

fn examples() -> Vec<Example> {
    let mut out = Vec::new();
    let mut lines = DOC.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let Some(info) = line.trim().strip_prefix("```json") else {
            continue;
        };
        let mut wire = None;
        let mut status = None;
        for word in info.split_whitespace() {
            if let Some(w) = word.strip_prefix("wire:") {
                wire = Some(w.to_string());
            } else if let Some(s) = word.strip_prefix("status:") {
                status = Some(s.parse().expect("a numeric status"));
            }
        }
        let body: Vec<&str> = lines
            .by_ref()
            .map(|(_, l)| l)
            .take_while(|l| l.trim() != "```")
            .collect();
        let Some(wire) = wire else { continue };
        let json = serde_json::from_str(&body.join("\n"))
            .unwrap_or_else(|e| panic!("PROTOCOL.md line {}: not JSON: {e}", n + 1));
        out.push(Example {
            line: n + 1,
            wire,
            status,
            json,
        });
    }
    out
}

/// Parses `json` as `T` and checks that it serialises back to the same JSON.
fn exact<T: Serialize + DeserializeOwned>(example: &Example) -> T {
    let value: T = serde_json::from_value(example.json.clone()).unwrap_or_else(|e| {
        panic!(
            "PROTOCOL.md line {}: not a {}: {e}",
            example.line, example.wire
        )
    });
    assert_eq!(
        serde_json::to_value(&value).unwrap(),
        example.json,
        "PROTOCOL.md line {}: {} does not round-trip exactly",
        example.line,
        example.wire
    );
    value
}

/// The `code` strings of every `SyncError` variant.
fn every_error_code() -> BTreeSet<String> {
    SyncError::CODES
        .iter()
        .map(|code| code.to_string())
        .collect()
}

#[test]
fn every_example_is_exactly_a_wire_value() {
    let examples = examples();
    assert!(examples.len() > 20, "examples found: {}", examples.len());
    let mut codes = BTreeSet::new();
    let mut client_types = BTreeSet::new();
    let mut server_types = BTreeSet::new();
    for example in &examples {
        match example.wire.as_str() {
            "PushRequest" => drop(exact::<PushRequest>(example)),
            "PushAck" => drop(exact::<PushAck>(example)),
            "PullRequest" => drop(exact::<PullRequest>(example)),
            "PullPage" => drop(exact::<PullPage>(example)),
            "Change" => drop(exact::<Change>(example)),
            "Node" => drop(exact::<Node>(example)),
            "Op" => drop(exact::<Op>(example)),
            "ServerInfo" => drop(exact::<ServerInfo>(example)),
            "Health" => assert!(example.json["status"].is_string()),
            "ClientMessage" => {
                exact::<ClientMessage>(example);
                client_types.insert(example.json["type"].as_str().unwrap().to_string());
            }
            "ServerMessage" => {
                exact::<ServerMessage>(example);
                server_types.insert(example.json["type"].as_str().unwrap().to_string());
            }
            "SyncError" => {
                let error = exact::<SyncError>(example);
                let status = example.status.unwrap_or_else(|| {
                    panic!("PROTOCOL.md line {}: an error needs status:", example.line)
                });
                assert_eq!(
                    error.http_status(),
                    status,
                    "PROTOCOL.md line {}: {} is sent with {}",
                    example.line,
                    error.code(),
                    error.http_status()
                );
                codes.insert(error.code().to_string());
            }
            other => panic!(
                "PROTOCOL.md line {}: unknown wire type {other}",
                example.line
            ),
        }
    }
    assert_eq!(codes, every_error_code(), "every error code has an example");
    assert_eq!(
        client_types,
        ["ping", "pong", "presence", "subscribe"]
            .map(String::from)
            .into(),
    );
    assert_eq!(
        server_types,
        [
            "changes",
            "error",
            "ping",
            "pong",
            "presence",
            "resync",
            "subscribed"
        ]
        .map(String::from)
        .into(),
    );
}

#[test]
fn the_error_table_matches_the_server() {
    // Rows look like: | `code` | 413 | … |
    let mut rows = BTreeSet::new();
    for line in DOC.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let status = cells.get(2).and_then(|c| c.parse::<u16>().ok());
        // (The limits table has numbers in that column too, never HTTP statuses.)
        if let Some(status) = status.filter(|s| (400..600).contains(s)) {
            if cells[1].starts_with('`') {
                rows.insert((cells[1].trim_matches('`').to_string(), status));
            }
        }
    }
    let documented: BTreeSet<String> = rows.iter().map(|(c, _)| c.clone()).collect();
    assert_eq!(documented, every_error_code(), "the table lists every code");
    // The status of each row equals that of the code's example.
    for example in examples().iter().filter(|e| e.wire == "SyncError") {
        let code = example.json["code"].as_str().unwrap().to_string();
        assert!(
            rows.contains(&(code.clone(), example.status.unwrap())),
            "table row for {code}"
        );
    }
}

fn show(title: &str, wire: &str, value: &impl Serialize) {
    println!("{title}\n```json wire:{wire}");
    println!("{}", serde_json::to_string_pretty(value).unwrap());
    println!("```\n");
}

/// Prints every example of PROTOCOL.md from a real session (run it by hand).
#[tokio::test]
#[ignore = "prints the examples for docs/PROTOCOL.md"]
async fn print_examples_from_a_real_session() {
    let server = TestServer::start_with(|c| {
        c.sync.max_ops_per_push = 2;
        c.sync.pull_page_size = 1000;
    })
    .await;
    let api = &server.api;
    let mut author = Author::new(Uid::new());
    let list = author.list();
    author.create_list("Groceries");
    let milk = author.add_todo("Milk");
    let req = author.request(10);
    show("push", "PushRequest", &req);
    let ack = api.push_ok(&req).await;
    show("ack", "PushAck", &ack);
    author.replica.ack(req.client, ack.acked_seq);
    let eggs = author.add_todo("Eggs");
    author.set(milk, "completed", json!(true));
    author.flush(api, 2).await;
    let moved = author
        .replica
        .move_to(
            eggs,
            list,
            tether::model::Placement::Start,
            tether::model::wall_clock_ms(),
        )
        .unwrap();
    let deleted = author.delete(milk);
    show("op move", "Op", &moved);
    show("op delete", "Op", &deleted);
    author.flush(api, 2).await;
    let pull = PullRequest {
        list,
        after: 0,
        limit: None,
    };
    show("pull", "PullRequest", &pull);
    let page = api.pull_ok(list, 0, None).await;
    show("page", "PullPage", &page);
    let page = api.pull_ok(list, 1, Some(1)).await;
    show("page limited", "PullPage", &page);
    show(
        "subscribe",
        "ClientMessage",
        &ClientMessage::Subscribe {
            list,
            after: 2,
            client: Some(author.client()),
        },
    );
    let (mut live, caught_up, cursor) = Live::subscribe(server.addr(), list, 2).await;
    show(
        "catch-up",
        "ServerMessage",
        &ServerMessage::Changes {
            list,
            changes: caught_up,
            cursor,
            more: false,
        },
    );
    show(
        "subscribed",
        "ServerMessage",
        &ServerMessage::Subscribed {
            list,
            cursor,
            peer: Uid::new(),
        },
    );
    author.set(eggs, "title", json!("Free-range eggs"));
    author.flush(api, 2).await;
    show("live changes", "ServerMessage", &live.next().await);

    // Errors, as the server sends them.
    let client = ClientId::new();
    let stamp = format!("{}:0:{client}", tether::model::wall_clock_ms());
    let op = |seq: u64, action: Value| {
        let mut o = json!({"client": client, "seq": seq, "stamp": stamp});
        for (k, v) in action.as_object().unwrap() {
            o[k] = v.clone();
        }
        o
    };
    let body = |ops: Vec<Value>| json!({"list": list, "client": client, "ops": ops});
    let bodies = vec![
        json!("{\"list\": "),
        json!({"list": "not-a-uid", "client": client, "ops": []}),
        body(vec![op(1, json!({"op": "delete", "node": milk})); 3]),
        body(vec![op(
            1,
            json!({"op": "set", "node": eggs, "field": "title", "value": "x".repeat(5000)}),
        )]),
        body(vec![op(0, json!({"op": "delete", "node": milk}))]),
        body(vec![op(
            1,
            json!({"op": "create", "node": Uid::new(), "kind": "cake", "parent": list, "order": "a0", "fields": {}}),
        )]),
        body(vec![op(
            1,
            json!({"op": "set", "node": eggs, "field": "colour", "value": "red"}),
        )]),
        body(vec![op(
            1,
            json!({"op": "set", "node": eggs, "field": "completed", "value": "yes"}),
        )]),
        body(vec![op(
            1,
            json!({"op": "set", "node": eggs, "field": "title", "value": ""}),
        )]),
        body(vec![op(
            1,
            json!({"op": "create", "node": Uid::new(), "kind": "todo", "parent": eggs, "order": "a0", "fields": {"title": "x"}}),
        )]),
        body(vec![op(1, json!({"op": "delete", "node": Uid::new()}))]),
        body(vec![op(
            1,
            json!({"op": "create", "node": Uid::new(), "kind": "todo", "parent": Uid::new(), "order": "a0", "fields": {"title": "x"}}),
        )]),
        body(vec![op(
            1,
            json!({"op": "create", "node": eggs, "kind": "section", "parent": list, "order": "a0", "fields": {"title": "x"}}),
        )]),
    ];
    for b in bodies {
        let text = match &b {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let (status, answer) = api.post_raw("/api/push", text).await;
        println!(
            "status:{status}\n```json wire:SyncError status:{status}\n{}\n```\n",
            serde_json::to_string_pretty(&answer).unwrap()
        );
    }
    let (status, answer) = api.post_raw("/api/push", "x".repeat(2 << 20)).await;
    println!(
        "status:{status}\n```json wire:SyncError status:{status}\n{}\n```\n",
        serde_json::to_string_pretty(&answer).unwrap()
    );
    let (_, info) = api.post_raw("/api/ping", "{}").await;
    show("ping", "ServerInfo", &info);
    server.stop().await;
}
