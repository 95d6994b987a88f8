//! Tether keeps model data in sync between browser clients and a server.
//!
//! The crate has three wings (docs/ARCHITECTURE.md is the house plan):
//!
//! * [`model`] — the sync module: identities, clocks, the registry of model kinds,
//!   nodes, ops and their merge, the replica with its outbox and cursor, and the wire
//!   types. Pure Rust; compiles natively and for wasm32 with no features enabled.
//! * `server` (feature `ssr`) — axum, sqlx and sockets: stores ops in SQLite and fans
//!   them out live.
//! * `app` (features `ssr` and `hydrate`) — Leptos components and the browser's sync
//!   client.
//!
//! `app` and `server` both use `model`, which uses neither. Between the two, two
//! arrows only: the bodies of the server functions declared in `app` (compiled with
//! `ssr` alone) call into `server`, and `server` renders the app's shell.
//!
//! * `loadgen` (feature `loadgen`) — the load generator behind `tether-load`: drives
//!   a running server through the protocol and measures it, using `model`'s replicas
//!   and wire types.

pub mod model;

#[cfg(any(feature = "ssr", feature = "hydrate"))]
pub mod app;

#[cfg(feature = "ssr")]
pub mod server;

#[cfg(feature = "loadgen")]
pub mod loadgen;

/// Entry point of the browser bundle: hydrates the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
