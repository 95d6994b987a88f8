//! Benchmarks of the sync module (`src/model`), without a framework: each figure is
//! the median of a few runs, printed as a table.
//!
//! Run with `cargo bench --bench model` (add `CARGO_TARGET_DIR=…` to keep it apart
//! from other builds). What it measures:
//!
//! * local ops per second: creates (with placement) and sets through
//!   `Replica::apply_local`, each validated, stamped, merged, indexed and queued;
//! * remote changes merged per second: `Replica::apply_remote` of a 10,000-node list
//!   in pages of 500;
//! * the server's `plan_push` of batches of 500 creates;
//! * `to_json` / `from_json` of a 10,000-node replica: time and size.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::json;
use tether::model::{
    plan_push, registry, Change, ClientId, Limits, Placement, PushRequest, Replica, Todo, Uid,
};

const NODES: usize = 10_000;
const RUNS: usize = 5;
const T0: u64 = 1_764_160_000_000;

/// Median duration of `RUNS` runs of `f` (after one warm-up run).
fn median(mut f: impl FnMut() -> Duration) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..RUNS).map(|_| f()).collect();
    times.sort();
    times[RUNS / 2]
}

fn todo(i: usize) -> Todo {
    Todo {
        title: format!("Item number {i}"),
        completed: i.is_multiple_of(3),
    }
}

/// A replica of one list with `n` items appended, and their uids.
fn filled(n: usize) -> (Replica, Vec<Uid>) {
    let list = Uid::new();
    let mut replica = Replica::new(list, ClientId::new());
    let uids = (0..n)
        .map(|i| {
            let (uid, _) = replica
                .create(list, Placement::End, &todo(i), T0 + i as u64)
                .expect("valid create");
            uid
        })
        .collect();
    (replica, uids)
}

fn per_second(count: usize, time: Duration) -> String {
    format!("{:>12.0}", count as f64 / time.as_secs_f64())
}

fn row(what: &str, time: Duration, rate: &str, size: &str) {
    println!(
        "| {what:<50} | {:>10.2} | {rate:>12} | {size:>10} |",
        time.as_secs_f64() * 1000.0
    );
}

fn main() {
    println!(
        "| {:<50} | {:>10} | {:>12} | {:>10} |",
        "benchmark", "ms", "per second", "bytes"
    );
    println!("|{:-<52}|{:-<12}|{:-<14}|{:-<12}|", "", "", "", "");

    let creates = median(|| {
        let start = Instant::now();
        black_box(filled(NODES));
        start.elapsed()
    });
    row(
        "local create, append (10,000)",
        creates,
        &per_second(NODES, creates),
        "",
    );

    let (base, uids) = filled(NODES);
    let inserts = median(|| {
        let list = base.list();
        let mut replica = Replica::new(list, ClientId::new());
        replica.merge_replica(&base);
        let start = Instant::now();
        for (i, anchor) in uids.iter().enumerate().take(NODES / 10) {
            let placed = replica.create(list, Placement::After(*anchor), &todo(i), T0);
            black_box(placed.expect("valid create"));
        }
        start.elapsed()
    });
    row(
        "local create, insert among 10,000 (1,000)",
        inserts,
        &per_second(NODES / 10, inserts),
        "",
    );

    let sets = median(|| {
        let mut replica = Replica::from_json(&base.to_json()).expect("own snapshot");
        let start = Instant::now();
        for (i, uid) in uids.iter().enumerate() {
            let op = replica.set(*uid, "title", json!(format!("Renamed {i}")), T0);
            black_box(op.expect("valid set"));
        }
        start.elapsed()
    });
    row("local set (10,000)", sets, &per_second(NODES, sets), "");

    let changes: Vec<Change> = base
        .nodes()
        .enumerate()
        .map(|(i, node)| Change {
            version: i as u64 + 1,
            node: node.clone(),
        })
        .collect();
    let remote = median(|| {
        let mut replica = Replica::new(base.list(), ClientId::new());
        let start = Instant::now();
        for page in changes.chunks(500) {
            black_box(replica.apply_remote(page, T0));
        }
        start.elapsed()
    });
    row(
        "remote changes merged (10,000, pages of 500)",
        remote,
        &per_second(NODES, remote),
        "",
    );

    let ops: Vec<_> = base.outbox().iter().cloned().collect();
    let limits = Limits {
        max_ops_per_push: 500,
        ..Limits::default()
    };
    let server = median(|| {
        let stored = HashMap::new();
        let start = Instant::now();
        for batch in ops.chunks(500) {
            let req = PushRequest {
                list: base.list(),
                client: base.client(),
                ops: batch.to_vec(),
            };
            let plan = plan_push(registry(), &limits, &req, 0, &stored, T0 + 60_000);
            black_box(plan.expect("valid batch"));
        }
        start.elapsed()
    });
    row(
        "server plan_push (10,000 creates, batches of 500)",
        server,
        &per_second(NODES, server),
        "",
    );

    let mut text = String::new();
    let to_json = median(|| {
        let start = Instant::now();
        text = black_box(base.to_json());
        start.elapsed()
    });
    row(
        "to_json, 10,000 nodes + 10,000 queued ops",
        to_json,
        "",
        &text.len().to_string(),
    );
    let from_json = median(|| {
        let start = Instant::now();
        black_box(Replica::from_json(&text).expect("own snapshot"));
        start.elapsed()
    });
    row(
        "from_json, 10,000 nodes + 10,000 queued ops",
        from_json,
        "",
        &text.len().to_string(),
    );

    let mut synced = Replica::new(base.list(), ClientId::new());
    synced.apply_remote(&changes, T0);
    let mut text = String::new();
    let to_json = median(|| {
        let start = Instant::now();
        text = black_box(synced.to_json());
        start.elapsed()
    });
    row(
        "to_json, 10,000 nodes, empty outbox",
        to_json,
        "",
        &text.len().to_string(),
    );
    let from_json = median(|| {
        let start = Instant::now();
        black_box(Replica::from_json(&text).expect("own snapshot"));
        start.elapsed()
    });
    row(
        "from_json, 10,000 nodes, empty outbox",
        from_json,
        "",
        &text.len().to_string(),
    );

    let children = median(|| {
        let start = Instant::now();
        for _ in 0..100 {
            black_box(synced.children(synced.list()));
        }
        start.elapsed()
    });
    row(
        "children() of a 10,000-item list (x100)",
        children,
        &per_second(100, children),
        "",
    );
}
