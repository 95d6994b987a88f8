//! Property tests of the sync module as a whole: merge laws ([`laws`]), decoders
//! that never panic ([`decode`]) and replicas syncing through a simulated server
//! over a bad network ([`sim`]), snapshots that lose nothing ([`snapshot`]), undo
//! and replaced values ([`undo`]).
//!
//! Each property runs `PROPTEST_CASES` cases (1,000 by default). The long run:
//! `PROPTEST_CASES=100000 cargo test --release --lib sim`.

mod decode;
mod laws;
mod sim;
mod snapshot;
mod support;
mod undo;
