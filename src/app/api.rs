//! The server functions: the HTTP API the browser's sync client calls.
//!
//! Declared here (compiled for both halves) so the browser gets typed client stubs;
//! their bodies run only on the server and stay thin: parse the names, then hand
//! over to `crate::server`. Each has a fixed path under `/api` (no hash suffix), JSON
//! in and out, and answers errors as a [`SyncError`] with its HTTP status — see
//! docs/PROTOCOL.md.

use leptos::prelude::*;
use leptos::server_fn::{
    codec::{Json, JsonEncoding},
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};

use crate::model::wire::{PullPage, PushAck, SyncError};

impl FromServerFnError for SyncError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            // The request could not be decoded (on the server).
            ServerFnErrorErr::Args(detail) | ServerFnErrorErr::MissingArg(detail) => {
                let error = SyncError::MalformedRequest { detail };
                set_status(&error);
                error
            }
            // On the server, server_fn reports a request body that does not decode
            // (malformed JSON, a missing field, a wrong type) as `Deserialization`,
            // and one that cannot be read as `Request`: the client's fault, a 400.
            // On the client the same variants mean the server could not be reached
            // or did not answer sensibly.
            ServerFnErrorErr::Request(detail) | ServerFnErrorErr::Deserialization(detail) => {
                if in_server_request() {
                    let error = SyncError::MalformedRequest { detail };
                    set_status(&error);
                    error
                } else {
                    SyncError::Unavailable { detail }
                }
            }
            _ => SyncError::Internal,
        }
    }

    /// Decodes an error answer as [`JsonEncoding`] would, but from text: the browser
    /// then decodes a `SyncError` with the same JSON reader as the socket's `error`
    /// message instead of a second copy for bytes (docs/BENCHMARKS.md, "bundle").
    fn de(data: leptos::server_fn::Bytes) -> Self {
        let decoded = std::str::from_utf8(&data)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str(text).map_err(|e| e.to_string()));
        decoded.unwrap_or_else(|detail| {
            Self::from_server_fn_error(ServerFnErrorErr::Deserialization(detail))
        })
    }
}

/// True while handling a request on the server (leptos_axum provides the response
/// options there), false in the browser.
fn in_server_request() -> bool {
    #[cfg(feature = "ssr")]
    return use_context::<leptos_axum::ResponseOptions>().is_some();
    #[cfg(not(feature = "ssr"))]
    false
}

/// Makes the HTTP status of this server function's response match `error`.
fn set_status(error: &SyncError) {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        if let Ok(status) = http::StatusCode::from_u16(error.http_status()) {
            response.set_status(status);
        }
    }
    #[cfg(not(feature = "ssr"))]
    let _ = error;
}

/// Passes a result through, setting the response status if it is an error.
#[cfg(feature = "ssr")]
fn answer<T>(result: Result<T, SyncError>) -> Result<T, SyncError> {
    if let Err(error) = &result {
        set_status(error);
    }
    result
}

#[cfg(feature = "ssr")]
fn state() -> Result<crate::server::AppState, SyncError> {
    use_context::<crate::server::AppState>().ok_or(SyncError::Internal)
}

#[cfg(feature = "ssr")]
fn parse_uid(value: &str) -> Result<crate::model::Uid, SyncError> {
    crate::model::Uid::parse(value).map_err(|_| SyncError::InvalidUid {
        value: value.chars().take(64).collect(),
    })
}

/// What `/api/ping` answers: proof that the browser can reach the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub name: String,
    pub version: String,
    pub server_time_ms: u64,
}

/// `POST /api/ping`: the server's name, version and clock.
#[server(prefix = "/api", endpoint = "ping", input = Json, output = Json)]
pub async fn ping() -> Result<ServerInfo, SyncError> {
    Ok(ServerInfo {
        name: "tether".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        server_time_ms: crate::model::clock::wall_clock_ms(),
    })
}

/// `POST /api/push`: one batch of ops for one list from one client, all-or-nothing.
///
/// The body is a `PushRequest`: `{"list": uid, "client": uid, "ops": [op, …]}`.
#[server(prefix = "/api", endpoint = "push", input = Json, output = Json)]
pub async fn push(
    list: String,
    client: String,
    ops: Vec<serde_json::Value>,
) -> Result<PushAck, SyncError> {
    answer(
        async {
            let state = state()?;
            let list = parse_uid(&list)?;
            let client =
                crate::model::ClientId::parse(&client).map_err(|_| SyncError::InvalidUid {
                    value: client.chars().take(64).collect(),
                })?;
            state.limiter.check_push(&client.to_string())?;
            let ops = crate::server::sync::decode_ops(ops, state.config.sync.max_ops_per_push)?;
            state
                .writer
                .push(crate::model::wire::PushRequest { list, client, ops })
                .await
        }
        .await,
    )
}

/// `POST /api/pull`: the changes of a list after cursor `after`, one page at a time.
///
/// The body is a `PullRequest`: `{"list": uid, "after": 0, "limit": null}`.
#[server(prefix = "/api", endpoint = "pull", input = Json, output = Json)]
pub async fn pull(list: String, after: u64, limit: Option<u32>) -> Result<PullPage, SyncError> {
    answer(
        async {
            let state = state()?;
            let list = parse_uid(&list)?;
            crate::server::sync::pull(&state.db, &state.config, list, after, limit).await
        }
        .await,
    )
}
