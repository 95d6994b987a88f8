//! Helpers shared by the property tests: the case count and a reference
//! computation of the visible tree, written independently of the replica's index.

use std::collections::BTreeMap;

use proptest::test_runner::Config;

use crate::model::node::Node;
use crate::model::order::OrderKey;
use crate::model::replica::Replica;
use crate::model::uid::Uid;

/// `PROPTEST_CASES` from the environment, else 1,000.
pub fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    Config {
        // Shrinking a long simulation can take very long; a failing case is
        // already small enough to read.
        max_shrink_iters: 2_000,
        // Failures are printed with their minimal input; no regression files are
        // written into the source tree.
        failure_persistence: None,
        ..Config::with_cases(cases)
    }
}

/// Every visible node of `list` with its live children in `(order, uid)` order,
/// found by walking down from the list (so unreachable nodes never show).
pub fn visible_tree(list: Uid, nodes: &BTreeMap<Uid, Node>) -> BTreeMap<Uid, Vec<Uid>> {
    let mut by_parent: BTreeMap<Uid, Vec<(OrderKey, Uid)>> = BTreeMap::new();
    for node in nodes.values().filter(|n| n.is_live()) {
        if let (Some(parent), Some(order)) = (node.parent(), node.order()) {
            by_parent
                .entry(parent)
                .or_default()
                .push((order.clone(), node.uid));
        }
    }
    let mut tree = BTreeMap::new();
    if nodes.get(&list).is_some_and(Node::is_deleted) {
        return tree;
    }
    let mut stack = vec![list];
    while let Some(parent) = stack.pop() {
        if tree.contains_key(&parent) {
            continue;
        }
        let mut children = by_parent.remove(&parent).unwrap_or_default();
        children.sort();
        let uids: Vec<Uid> = children.into_iter().map(|(_, uid)| uid).collect();
        stack.extend(uids.iter().copied());
        tree.insert(parent, uids);
    }
    tree
}

/// The same snapshot as the previous code wrote it (version 1), written here
/// independently of the code that reads it.
pub fn v1_text(r: &Replica) -> String {
    serde_json::json!({
        "format": "tether.replica",
        "version": 1,
        "list": r.list(),
        "client": r.client(),
        "clock": r.clock(),
        "next_seq": r.next_seq(),
        "cursor": r.cursor(),
        "nodes": r.nodes().collect::<Vec<_>>(),
        "outbox": r.outbox(),
    })
    .to_string()
}
