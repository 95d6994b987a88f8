//! The fuzz targets' checks, run in the normal suite: every input a fuzzer ever
//! turned up (`fuzz/regressions/<target>/`) is replayed, and each target also runs
//! on a few thousand seeded inputs, mutations of real protocol messages among them,
//! so a change that breaks a decoder or the push handler fails `cargo test` even
//! where nobody runs cargo-fuzz. The long runs are `cargo fuzz run <target>` (see
//! docs/RELIABILITY.md).

#![cfg(feature = "ssr")]

#[path = "../fuzz/checks.rs"]
mod checks;
mod common;

use std::path::Path;

use common::{Author, Rng};
use serde_json::json;
use tether::model::{
    wall_clock_ms, Change, ClientMessage, PullPage, PushAck, ServerMessage, SyncError, Uid,
};

/// Replays every saved input of `target`; answers how many there were.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_file() && path.extension().is_none_or(|e| e != "md") {
            let data = std::fs::read(&path).unwrap();
            eprintln!("replaying {}", path.display());
            check(&data);
            n += 1;
        }
    }
    n
}

/// Random bytes of random length.
fn noise(rng: &mut Rng, max: u64) -> Vec<u8> {
    (0..rng.range(0, max))
        .map(|_| rng.next_u64() as u8)
        .collect()
}

/// `text` with a few bytes replaced, inserted or removed.
fn mutate(rng: &mut Rng, text: &[u8]) -> Vec<u8> {
    let mut bytes = text.to_vec();
    const PUNCTUATION: &[u8] = b"{}[]\":,0123456789-.eE \\";
    for _ in 0..rng.range(1, 4) {
        let at = rng.range(0, bytes.len() as u64) as usize;
        let byte = if rng.chance(70) {
            PUNCTUATION[rng.range(0, PUNCTUATION.len() as u64 - 1) as usize]
        } else {
            rng.next_u64() as u8
        };
        match rng.range(0, 2) {
            0 if at < bytes.len() => bytes[at] = byte,
            1 if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => bytes.insert(at, byte),
        }
    }
    bytes
}

/// Real messages of every wire type, as JSON text.
fn samples() -> Vec<String> {
    let mut author = Author::new(Uid::new());
    author.create_list("Groceries");
    let milk = author.add_todo("Milk");
    author.set(milk, "completed", json!(true));
    author.delete(milk);
    let req = author.request(10);
    let list = author.list();
    let changes: Vec<Change> = author
        .replica
        .nodes()
        .enumerate()
        .map(|(i, node)| Change {
            version: i as u64 + 1,
            node: node.clone(),
        })
        .collect();
    let page = PullPage {
        list,
        changes: changes.clone(),
        cursor: 2,
        more: false,
        server_time_ms: wall_clock_ms(),
    };
    let mut texts = vec![
        serde_json::to_string(&req).unwrap(),
        serde_json::to_string(&req.ops).unwrap(),
        serde_json::to_string(&page).unwrap(),
        serde_json::to_string(&PushAck {
            list,
            acked_seq: 4,
            version: 9,
            server_time_ms: 1,
        })
        .unwrap(),
        json!({"list": list, "after": 0, "limit": null}).to_string(),
        serde_json::to_string(&ClientMessage::Subscribe {
            list,
            after: 3,
            client: Some(author.client()),
        })
        .unwrap(),
        serde_json::to_string(&ServerMessage::Changes {
            list,
            changes,
            cursor: 2,
            more: true,
        })
        .unwrap(),
        serde_json::to_string(&SyncError::ClockSkew {
            stamp_ms: 5,
            server_ms: 1,
            max_skew_ms: 2,
        })
        .unwrap(),
        author.replica.to_json(),
    ];
    texts.extend(req.ops.iter().map(|op| serde_json::to_string(op).unwrap()));
    texts
}

#[test]
fn wire_decoders_survive_fuzzed_input() {
    let replayed = replay("wire_decode", checks::wire_decode);
    let mut rng = Rng::new(7);
    let samples = samples();
    for sample in &samples {
        checks::wire_decode(sample.as_bytes());
    }
    for _ in 0..3000 {
        let sample = rng.pick(&samples).unwrap().clone();
        checks::wire_decode(&mutate(&mut rng, sample.as_bytes()));
    }
    for _ in 0..2000 {
        checks::wire_decode(&noise(&mut rng, 64));
    }
    eprintln!("wire_decode: {replayed} saved inputs replayed");
}

#[test]
fn registry_validation_survives_fuzzed_input() {
    let replayed = replay("registry_validate", checks::registry_validate);
    let mut rng = Rng::new(11);
    for _ in 0..20_000 {
        checks::registry_validate(&noise(&mut rng, 256));
    }
    eprintln!("registry_validate: {replayed} saved inputs replayed");
}

#[test]
fn the_push_handler_survives_fuzzed_input() {
    let replayed = replay("push_handler", checks::push_handler);
    let mut rng = Rng::new(13);
    for _ in 0..300 {
        checks::push_handler(&noise(&mut rng, 512));
    }
    eprintln!("push_handler: {replayed} saved inputs replayed");
}
