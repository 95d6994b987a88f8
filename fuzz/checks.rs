//! What the fuzz targets check, shared by the cargo-fuzz targets (`fuzz_targets/`)
//! and the normal test suite (`tests/fuzz_regressions.rs` replays every input a
//! fuzzer ever found, plus a few thousand seeded ones, on each `cargo test`).
//!
//! * [`wire_decode`] — every wire type, and the other decoders of untrusted text
//!   (stamps, order keys, uids, a replica snapshot from localStorage), from raw
//!   bytes: never a panic, and whatever decodes re-encodes to something that decodes
//!   to the same value.
//! * [`registry_validate`] — the registry's checks on arbitrary kinds, fields and
//!   values: never a panic, `validate_fields` agrees with `validate_field`, and what
//!   validates decodes into the kind's Rust type and encodes back to the same fields.
//! * [`push_handler`] — pushes built from the input (mostly well-formed, so they get
//!   past decoding; sometimes raw bytes) through the server's real path on an
//!   in-memory database: the decoding the `/api/push` server function does, then
//!   `server::sync::Writer`. Never a panic, never a 5xx, a refused push changes
//!   nothing at all (the whole store is compared), an accepted one is acknowledged
//!   up to its last seq and, resent, is acknowledged the same and changes nothing;
//!   pulls name each node once in increasing versions.
//!
//! The input is read by [`Input`], a tiny byte reader (no `arbitrary` dependency, so
//! the main test suite can include this file as it is).

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{json, Value};
use tether::{
    model::{
        registry,
        wire::{PullRequest, PushAck},
        Action, Change, ClientId, ClientMessage, Cursor, List, Node, Op, OrderKey, PullPage,
        PushRequest, Register, Replica, Section, ServerMessage, Stamp, SyncError, Todo, Uid,
    },
    server::{
        config::{Config, DatabaseConfig},
        hub::Hub,
        store::Store as Db,
        sync::{decode_ops, Writer},
    },
};

/// Reads choices from the fuzzer's bytes; past the end every read is 0, so any
/// input is a complete (if short) test case.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((first, rest)) => {
                self.data = rest;
                *first
            }
            None => 0,
        }
    }

    pub fn bool(&mut self) -> bool {
        self.byte() & 1 == 0
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        let wide = u16::from_le_bytes([self.byte(), self.byte()]);
        usize::from(wide) % n
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(std::array::from_fn(|_| self.byte()))
    }

    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }

    /// Up to `max` raw bytes.
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = self.below(max + 1).min(self.data.len());
        let (taken, rest) = self.data.split_at(n);
        self.data = rest;
        taken
    }

    /// A string: one of the interesting ones (limits, whitespace, markup), or
    /// bytes from the input.
    pub fn string(&mut self) -> String {
        match self.below(12) {
            0 => String::new(),
            1 => "Milk".into(),
            2 => " padded ".into(),
            3 => "x".repeat(1024),
            4 => "x".repeat(1025),
            5 => "é".repeat(512),
            6 => "\u{0}\t\n".into(),
            7 => "<img src=x onerror=alert(1)>".into(),
            8 => "x".repeat(300),
            _ => String::from_utf8_lossy(self.bytes(40)).into_owned(),
        }
    }

    /// A JSON value of any type, nested at most `depth` deep.
    pub fn value(&mut self, depth: usize) -> Value {
        match self.below(if depth == 0 { 7 } else { 9 }) {
            0 => Value::Null,
            1 => Value::Bool(self.bool()),
            2 => json!(self.u64() as i64),
            3 => json!(self.u64()),
            4 => json!(f64::from_bits(self.u64())),
            5 | 6 => Value::String(self.string()),
            7 => Value::Array((0..self.below(4)).map(|_| self.value(depth - 1)).collect()),
            _ => Value::Object(
                (0..self.below(4))
                    .map(|_| (self.string(), self.value(depth - 1)))
                    .collect(),
            ),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

// ---------------------------------------------------------------------------------
// wire_decode

/// Decodes `data` as `T`; if it decodes, its JSON must decode to the same value.
fn round_trip<T>(data: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(value) = serde_json::from_slice::<T>(data) {
        let text = serde_json::to_string(&value).expect("what decoded encodes");
        let back: T = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{value:?} encoded as {text} does not decode: {e}"));
        assert_eq!(back, value, "{text}");
    }
}

pub fn wire_decode(data: &[u8]) {
    round_trip::<PushRequest>(data);
    round_trip::<PushAck>(data);
    round_trip::<PullRequest>(data);
    round_trip::<PullPage>(data);
    round_trip::<Change>(data);
    round_trip::<Node>(data);
    round_trip::<Op>(data);
    round_trip::<Action>(data);
    round_trip::<ClientMessage>(data);
    round_trip::<ServerMessage>(data);
    round_trip::<SyncError>(data);
    round_trip::<Stamp>(data);
    round_trip::<OrderKey>(data);
    round_trip::<Uid>(data);
    round_trip::<ClientId>(data);
    round_trip::<Cursor>(data);
    round_trip::<Register<Value>>(data);

    // The server's own decoding of a push's ops, one by one.
    if let Ok(ops) = serde_json::from_slice::<Vec<Value>>(data) {
        if let Err(e) = decode_ops(ops, 1000) {
            assert_eq!(e.http_status() / 100, 4, "{e:?}");
        }
    }

    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(stamp) = text.parse::<Stamp>() {
            assert_eq!(stamp.to_string().parse::<Stamp>(), Ok(stamp));
        }
        if let Ok(key) = OrderKey::parse(text) {
            assert_eq!(OrderKey::parse(key.as_str()), Ok(key.clone()));
        }
        if let Ok(uid) = Uid::parse(text) {
            assert_eq!(Uid::parse(&uid.to_string()), Ok(uid));
        }
        // What a browser finds in localStorage may be anything.
        if let Ok(replica) = Replica::from_json(text) {
            let json = replica.to_json();
            let again = Replica::from_json(&json).expect("a saved snapshot loads");
            assert_eq!(again.to_json(), json);
        }
    }
}

// ---------------------------------------------------------------------------------
// registry_validate

const KINDS: [&str; 5] = ["todo", "section", "list", "cake", ""];
const FIELDS: [&str; 4] = ["title", "completed", "colour", ""];

pub fn registry_validate(data: &[u8]) {
    let mut input = Input::new(data);
    let registry = registry();
    let kind = if input.below(8) == 0 {
        input.string()
    } else {
        input.pick(&KINDS).to_string()
    };
    let parent_kind = match input.below(7) {
        0 => None,
        1 => Some(input.string()),
        _ => Some(input.pick(&KINDS).to_string()),
    };
    let mut fields = BTreeMap::new();
    for _ in 0..input.below(4) {
        let name = if input.below(8) == 0 {
            input.string()
        } else {
            input.pick(&FIELDS).to_string()
        };
        let value = match input.below(4) {
            0 => Value::Bool(input.bool()),
            1 => Value::String(input.string()),
            _ => input.value(3),
        };
        fields.insert(name, value);
    }

    let each: Result<(), SyncError> = fields
        .iter()
        .try_for_each(|(name, value)| registry.validate_field(&kind, name, value));
    let all = registry.validate_fields(&kind, &fields);
    if each.is_err() {
        assert!(
            all.is_err(),
            "a bad field passed validate_fields: {fields:?}"
        );
    }
    let parent = registry.validate_parent(&kind, parent_kind.as_deref());
    let create = registry.validate_create(&kind, parent_kind.as_deref(), &fields);
    assert_eq!(create.is_ok(), parent.is_ok() && all.is_ok());
    let errors = [&each, &all, &parent, &create].into_iter();
    for error in errors.filter_map(|r| r.as_ref().err()) {
        let status = error.http_status();
        assert!((400..500).contains(&status), "{error:?} -> {status}");
    }
    if all.is_ok() {
        // What validates decodes into the kind's type and encodes back the same.
        let full = registry
            .with_defaults(&kind, &fields)
            .expect("a known kind");
        let encoded = match kind.as_str() {
            "todo" => registry.decode::<Todo>(&fields).map(|m| encode(&m)),
            "section" => registry.decode::<Section>(&fields).map(|m| encode(&m)),
            "list" => registry.decode::<List>(&fields).map(|m| encode(&m)),
            other => panic!("kind {other} validated but is not registered"),
        };
        let encoded = encoded.unwrap_or_else(|e| panic!("{fields:?} validated: {e}"));
        assert_eq!(encoded, full);
        assert_eq!(registry.validate_fields(&kind, &encoded), Ok(()));
    }
}

fn encode<M: tether::model::Model>(model: &M) -> BTreeMap<String, Value> {
    model.encode()
}

// ---------------------------------------------------------------------------------
// push_handler

/// The limits of the fuzzed server: small, so the fuzzer reaches them.
fn fuzz_config() -> Config {
    let mut config = Config {
        database: DatabaseConfig {
            url: "sqlite::memory:".into(),
            ..DatabaseConfig::default()
        },
        ..Config::default()
    };
    config.sync.max_ops_per_push = 8;
    config.sync.max_field_bytes = 600;
    config.sync.max_clock_skew_ms = 60_000;
    config
}

/// The body of `/api/push` as the server function decodes it.
#[derive(Deserialize)]
struct PushBody {
    list: String,
    client: String,
    ops: Vec<Value>,
}

/// What `app::api::push` does with a body (less the rate limiter): parse the ids,
/// decode the ops, hand the batch to the writer.
async fn handle(writer: &Writer, config: &Config, body: &str) -> Result<PushAck, SyncError> {
    let body: PushBody = serde_json::from_str(body).map_err(|e| SyncError::MalformedRequest {
        detail: e.to_string(),
    })?;
    let invalid = |value: &str| SyncError::InvalidUid {
        value: value.chars().take(64).collect(),
    };
    let list = Uid::parse(&body.list).map_err(|_| invalid(&body.list))?;
    let client = ClientId::parse(&body.client).map_err(|_| invalid(&body.client))?;
    let ops = decode_ops(body.ops, config.sync.max_ops_per_push)?;
    writer.push(PushRequest { list, client, ops }).await
}

/// Fixed ids, so a crash input replays the same way.
fn uid(n: u8) -> Uid {
    Uid::from_random_bytes([n; 16])
}

fn client(n: u8) -> ClientId {
    ClientId::from_random_bytes([0x80 | n; 16])
}

/// The world every input starts from: lists A and B, each with a list node and a
/// todo, and A with a section.
struct World {
    a: Uid,
    b: Uid,
    nodes: Vec<Uid>,
    clients: Vec<ClientId>,
    /// The highest seq the generator used per (list, client), to make mostly
    /// in-order pushes.
    seqs: HashMap<(Uid, ClientId), u64>,
    now: u64,
}

async fn seed(writer: &Writer, now: u64) -> World {
    let (a, b) = (uid(1), uid(2));
    let (a_todo, a_section, b_todo) = (uid(3), uid(4), uid(5));
    let founder = client(1);
    let stamp = |n: u32| Stamp {
        wall_ms: now - 10_000,
        counter: n,
        client: founder,
    };
    let create = |seq: u64, node, kind: &str, parent: Option<Uid>, title: &str| Op {
        client: founder,
        seq,
        stamp: stamp(seq as u32),
        action: Action::Create {
            node,
            kind: kind.into(),
            parent,
            order: OrderKey::first(),
            fields: [("title".to_string(), json!(title))].into(),
        },
    };
    for (list, ops) in [
        (
            a,
            vec![
                create(1, a, "list", None, "A"),
                create(2, a_todo, "todo", Some(a), "Milk"),
                create(3, a_section, "section", Some(a), "Dairy"),
            ],
        ),
        (
            b,
            vec![
                create(4, b, "list", None, "B"),
                create(5, b_todo, "todo", Some(b), "Bread"),
            ],
        ),
    ] {
        let ack = writer
            .push(PushRequest {
                list,
                client: founder,
                ops,
            })
            .await
            .expect("the world is valid");
        assert!(ack.acked_seq > 0);
    }
    World {
        a,
        b,
        nodes: vec![a, b, a_todo, a_section, b_todo, uid(6), uid(7)],
        clients: vec![founder, client(2), client(3)],
        seqs: HashMap::new(),
        now,
    }
}

const ORDER_KEYS: [&str; 8] = [
    "a0",
    "a1",
    "Zz",
    "a0V",
    "",
    "a00",
    "zzzzzzzz",
    "A00000000000000000000000000",
];

impl World {
    /// A push body: mostly a well-formed batch of one client for one list, with the
    /// ids, seqs, stamps, kinds, fields and keys drawn from small pools so that ops
    /// meet existing nodes, other lists, limits and each other.
    fn push_body(&mut self, input: &mut Input) -> String {
        if input.below(10) == 0 {
            return String::from_utf8_lossy(input.bytes(200)).into_owned();
        }
        let list = match input.below(8) {
            0 => Uid::from_random_bytes(std::array::from_fn(|_| input.byte())),
            1 => input.pick(&self.nodes),
            2..=4 => self.a,
            _ => self.b,
        };
        let client = input.pick(&self.clients);
        let mut seq = self.seqs.get(&(list, client)).copied().unwrap_or(0);
        let mut ops = Vec::new();
        for _ in 0..input.below(5) {
            seq = match input.below(12) {
                0 => 0,
                1 => seq.saturating_sub(1),
                2 => (1 << 53) + 1,
                3 => input.u64(),
                _ => seq.saturating_add(1),
            };
            let op_client = if input.below(16) == 0 {
                input.pick(&self.clients)
            } else {
                client
            };
            let stamp_client = if input.below(16) == 0 {
                input.pick(&self.clients)
            } else {
                client
            };
            let wall = match input.below(10) {
                0 => 0,
                1 => self.now + 60_000 + 1 + input.below(1000) as u64,
                2 => u64::MAX,
                3 => self.now + 59_000,
                _ => self.now - input.below(5000) as u64,
            };
            let mut op = json!({
                "client": op_client,
                "seq": seq,
                "stamp": format!("{wall}:{}:{stamp_client}", input.byte()),
            });
            let node = if input.below(6) == 0 {
                let fresh = Uid::from_random_bytes(std::array::from_fn(|_| input.byte()));
                self.nodes.push(fresh);
                fresh
            } else {
                input.pick(&self.nodes)
            };
            let parent = match input.below(8) {
                0 => Value::Null,
                1 | 2 => json!(list),
                _ => json!(input.pick(&self.nodes)),
            };
            let order = if input.below(10) == 0 {
                input.string()
            } else {
                input.pick(&ORDER_KEYS).to_string()
            };
            let action = match input.below(4) {
                0 => {
                    let mut fields = serde_json::Map::new();
                    for _ in 0..input.below(3) {
                        let name = input.pick(&FIELDS).to_string();
                        let value = match input.below(3) {
                            0 => input.value(2),
                            _ => Value::String(input.string()),
                        };
                        fields.insert(name, value);
                    }
                    if input.below(3) != 0 {
                        fields.insert("title".into(), json!("Eggs"));
                    }
                    json!({"op": "create", "node": node, "kind": input.pick(&KINDS),
                           "parent": parent, "order": order, "fields": fields})
                }
                1 => {
                    let value = match input.below(3) {
                        0 => input.value(2),
                        1 => Value::Bool(input.bool()),
                        _ => Value::String(input.string()),
                    };
                    json!({"op": "set", "node": node, "field": input.pick(&FIELDS), "value": value})
                }
                2 => json!({"op": "delete", "node": node}),
                _ => json!({"op": "move", "node": node, "parent": parent, "order": order}),
            };
            for (key, value) in action.as_object().unwrap() {
                op[key] = value.clone();
            }
            if input.below(30) == 0 {
                let keys: Vec<String> = op.as_object().unwrap().keys().cloned().collect();
                op.as_object_mut().unwrap().remove(&input.pick(&keys));
            }
            ops.push(op);
        }
        self.seqs.insert((list, client), seq);
        json!({"list": list, "client": client, "ops": ops}).to_string()
    }
}

/// The list's changes after 0, page by page; checks each node comes once, in
/// increasing versions.
async fn check_pulls(db: &Db, list: Uid) {
    let mut after = 0;
    let mut seen = std::collections::HashSet::new();
    loop {
        let page = db.pull(list, after, 3).await.expect("pull");
        for change in &page.changes {
            assert!(change.version > after, "versions only increase");
            after = change.version;
            assert!(seen.insert(change.node.uid), "a node twice in one pull");
        }
        if !page.more {
            break;
        }
    }
}

thread_local! {
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

pub fn push_handler(data: &[u8]) {
    RUNTIME.with(|cell| {
        let mut runtime = cell.borrow_mut();
        let runtime = runtime.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
        });
        runtime.block_on(push_handler_async(data));
    });
}

async fn push_handler_async(data: &[u8]) {
    let config = fuzz_config();
    let db = Db::open(&config.database)
        .await
        .expect("an in-memory database");
    let (writer, task) = Writer::start(db.clone(), Hub::new(16, 16), &config);
    let mut world = seed(&writer, tether::model::wall_clock_ms()).await;
    let mut input = Input::new(data);
    for _ in 0..1 + input.below(6) {
        let body = world.push_body(&mut input);
        let before = db.dump().await.expect("dump");
        let result = handle(&writer, &config, &body).await;
        let after = db.dump().await.expect("dump");
        match result {
            Err(error) => {
                assert_eq!(
                    error.http_status() / 100,
                    4,
                    "{body} answered {error:?}: a client error must not be a server error"
                );
                assert_eq!(
                    before, after,
                    "{body} was refused ({error:?}) but changed the store"
                );
            }
            Ok(ack) => {
                let ops: Vec<Op> = serde_json::from_str::<PushRequest>(&body)
                    .map(|r| r.ops)
                    .unwrap_or_default();
                if let Some(last) = ops.last() {
                    assert!(ack.acked_seq >= last.seq, "{body} acknowledged as {ack:?}");
                }
                let again = handle(&writer, &config, &body).await.unwrap_or_else(|e| {
                    panic!("{body} was accepted, then its resend refused: {e:?}")
                });
                assert_eq!(again.acked_seq, ack.acked_seq, "{body}");
                assert_eq!(
                    db.dump().await.expect("dump"),
                    after,
                    "{body}: the resend changed the store"
                );
            }
        }
        check_pulls(&db, world.a).await;
        check_pulls(&db, world.b).await;
        if input.is_empty() {
            break;
        }
    }
    drop(writer);
    task.await.expect("the writer ends cleanly");
    db.close().await;
}
