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

/// Entry point of the browser bundle on a server-rendered page: hydrates it, then
/// registers the service worker that keeps the offline shell.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    app::browser::service_worker::register();
}

/// Entry point on the offline shell page (the service worker's answer when the
/// server cannot be reached): renders the app in the browser, from this device's
/// copies (`app::offline`).
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn mount() {
    console_error_panic_hook::set_once();
    app::offline::started_from_shell();
    if let Some(body) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.body())
    {
        body.set_inner_html("");
    }
    leptos::mount::mount_to_body(app::App);
    app::browser::service_worker::register();
}
