//! The sync module: everything two replicas of a list must agree on.
//!
//! Pure Rust (serde, uuid, chrono): no Leptos, axum, sqlx or web-sys, so it compiles
//! natively and for wasm32 and can be lifted into another project.
//!
//! * [`uid`] — identities of models, views and replicas.
//! * [`clock`] — the hybrid logical clock that stamps every write.
//! * [`registry`](mod@registry) and [`kinds`] — model kinds: decoding and validation of fields.
//! * [`order`] — fractional order keys for siblings.
//! * [`node`] — a node's state, a join-semilattice merged last-writer-wins per field.
//! * [`op`] — the four ops (create, set, delete, move) and what each writes.
//! * [`rules`] — the rules every write follows, shared by the server and replicas.
//! * [`batch`] — the server's checks and merge of one pushed batch, shared with tests.
//! * [`undo`] — undo and redo of a replica's own writes, as new writes.
//! * [`replaced`] — telling a replica that a concurrent write discarded its value.
//! * [`replica`] — the state of one list on a client: nodes, outbox, cursor, observers.
//! * [`presence`] — who has a list open: what a client may say of itself.
//! * [`wire`] — the protocol's messages; [`errors`] — its errors, declared once.
//!
//! The main types are re-exported here, so `use crate::model::{Replica, Uid, Todo}`
//! is enough for most users.

pub mod backoff;
pub mod batch;
pub mod clock;
pub mod errors;
pub mod kinds;
pub mod node;
pub mod op;
pub mod order;
pub mod presence;
pub mod registry;
pub mod replaced;
pub mod replica;
pub mod rules;
mod tagged;
pub mod uid;
pub mod undo;
pub mod wire;

#[cfg(test)]
mod tests;

pub use batch::{nodes_to_load, plan_push, Limits, PushPlan, StoredNode};
pub use clock::{wall_clock_ms, ClockError, Hlc, Stamp, StampError};
pub use kinds::{List, Section, Todo};
pub use node::{Node, NodeDiff, Position, Register};
pub use op::{Action, Op};
pub use order::{OrderKey, OrderKeyError};
pub use registry::{registry, FieldSpec, FieldType, Fields, KindInfo, Model, Registry, Value};
pub use replaced::Replaced;
pub use replica::{Cursor, Event, ModelError, ObserverId, Placement, Replica, SnapshotError};
pub use uid::{ClientId, Uid, UidError};
pub use undo::{History, Outcome, Skip, Step};
pub use wire::{
    Change, ClientMessage, PullPage, PullRequest, PushAck, PushRequest, ServerMessage, SyncError,
};
