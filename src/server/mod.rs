//! The server wing: configuration, the store, push/pull, and live fan-out.
//!
//! It knows SQL and sockets, never views: the pages it serves are the app's
//! components rendered by leptos_axum. Server functions (declared in `app::api`, so
//! the browser gets their client half) are thin: they decode, then call [`sync`].
//!
//! * [`config`] — `Leptos.toml` and `TETHER_*` overrides.
//! * [`store`] — the database, SQLite or PostgreSQL by the URL's scheme, and its queries.
//! * [`sync`] — the writer: validates, merges and commits pushed batches.
//! * [`hub`] — per-list fan-out of committed changes, fed by this node's commits and
//!   (on PostgreSQL) by the rows other nodes committed.
//! * [`cluster`] — hearing of other nodes' commits (PostgreSQL's LISTEN/NOTIFY).
//! * [`metrics`] — `/metrics` for operators.
//! * [`live`] — the WebSocket route that follows a list.
//! * [`presence`] — who follows each list right now (never stored).
//! * [`outgoing`] — `changes` messages of bounded size for it.
//! * [`memory`] — freed memory back to the kernel after sockets close.
//! * [`http`] — the router, middleware, `/healthz`, start and graceful shutdown.
//! * [`shell`] — the build id, the service worker (`/sw.js`) and the offline shell
//!   page (`/shell`) it keeps.

pub mod cluster;
pub mod config;
pub mod http;
pub mod hub;
pub mod limiter;
pub mod live;
pub mod memory;
pub mod metrics;
pub mod outgoing;
pub mod presence;
pub mod shell;
pub mod store;
pub mod sync;

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

pub use config::Config;
pub use http::RunningServer;

/// Everything a request handler or server function may need, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    /// Which build of the browser bundle this server serves.
    pub build: shell::BuildId,
    pub config: Arc<Config>,
    pub db: store::Store,
    pub writer: sync::Writer,
    pub hub: hub::Hub,
    pub presences: presence::Presences,
    pub limiter: limiter::Limiter,
    /// Hands freed memory back to the kernel after sockets close.
    pub trimmer: memory::Trimmer,
    /// Flips to `true` when the server starts shutting down; live sockets watch it.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
