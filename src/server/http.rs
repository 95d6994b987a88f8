//! The HTTP side: the router, its middleware, `/healthz`, start and graceful shutdown.
//!
//! Order of routes: `/healthz` and the live socket are plain axum routes; the Leptos
//! routes render the app and carry the server functions (`/api/*`); anything else is
//! a static file from the site root or the app's 404 page. Every response passes
//! through a per-request log line, security headers and compression; request bodies
//! to `/api/*` are capped in size and checked to be UTF-8 and not nested too deep
//! before any decoding.

use std::{
    net::SocketAddr,
    sync::{Arc, OnceLock},
    time::Duration,
};

use axum::{
    body::{Body, BodyDataStream, Bytes},
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    serve::ListenerExt,
    Json, Router,
};
use futures::StreamExt;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, AxumRouteListing, LeptosRoutes};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tower_http::{
    compression::CompressionLayer,
    trace::{DefaultOnFailure, TraceLayer},
};
use tracing::Level;

use super::{
    cluster,
    config::{Config, SyncLimits},
    hub::{Feed, Hub},
    limiter::{self, Limiter},
    live,
    memory::Trimmer,
    metrics,
    presence::Presences,
    shell::{self, BuildId},
    store::{Store, StoreError},
    sync::Writer,
    AppState,
};
use crate::{
    app::{shell, App},
    model::wire::SyncError,
};

/// A server that is running; [`RunningServer::shutdown`] stops it gracefully.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    serve: JoinHandle<std::io::Result<()>>,
    writer: JoinHandle<()>,
    /// The feed and (on PostgreSQL) the listener: they end with the shutdown signal.
    background: Vec<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the database: {0}")]
    Db(#[from] StoreError),
    #[error("cannot listen on {addr}: {detail}")]
    Bind { addr: SocketAddr, detail: String },
}

/// Opens the database, starts the writer, binds `config.addr` (port 0 picks a free
/// one) and serves until [`RunningServer::shutdown`].
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    let db = Store::open(&config.database).await?;
    let hub = Hub::new(
        config.sync.live_buffer,
        config.sync.max_subscribers_per_list,
    );
    metrics::handle();
    let (writer, writer_task) = Writer::start(db.clone(), hub.clone(), &config);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let presences = Presences::new(db.clone());
    let mut background = vec![
        Feed::spawn(hub.clone(), db.clone(), shutdown_rx.clone()),
        presences.spawn_upkeep(shutdown_rx.clone()),
    ];
    if let Store::Postgres(pg) = &db {
        let listener = cluster::start_listener(
            pg.clone(),
            hub.clone(),
            presences.clone(),
            shutdown_rx.clone(),
        );
        background.push(listener.await?);
    }
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|e| StartError::Bind {
            addr: config.addr,
            detail: e.to_string(),
        })?;
    let addr = listener.local_addr().map_err(|e| StartError::Bind {
        addr: config.addr,
        detail: e.to_string(),
    })?;

    let leptos_options = LeptosOptions::builder()
        .output_name(crate::app::boot::OUTPUT_NAME)
        .site_root(config.site_root.display().to_string())
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .reload_port(
            std::env::var("LEPTOS_RELOAD_PORT")
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or(3001),
        )
        .build();
    let state = AppState {
        leptos_options,
        build: BuildId::of_site(&config.site_root),
        limiter: Limiter::new(
            config.sync.max_pushes_per_second,
            config.sync.max_sockets_per_client,
        ),
        config: Arc::new(config),
        db,
        writer,
        trimmer: Trimmer::spawn(hub.clone(), shutdown_rx.clone()),
        hub,
        presences,
        shutdown: shutdown_rx.clone(),
    };

    let app = router(state.clone());
    let mut stop = shutdown_rx;
    // Live messages are small writes that must leave at once: with Nagle's algorithm
    // a write queued behind an unacknowledged one waits for the peer's delayed ACK
    // (up to 40 ms on Linux), which showed as 30-40 ms tails in fan-out
    // (docs/BENCHMARKS.md, "Several nodes").
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let serve = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
        })
        .await
    });
    tracing::info!(%addr, store = state.db.backend(), build = %state.build, "Tether is listening on http://{addr}");
    Ok(RunningServer {
        addr,
        state,
        shutdown: shutdown_tx,
        serve,
        writer: writer_task,
        background,
    })
}

impl RunningServer {
    /// Stops accepting connections, closes live sockets, lets in-flight requests
    /// finish (at most `grace`), commits what the writer has queued, and closes the
    /// database.
    pub async fn shutdown(self, grace: Duration) {
        tracing::info!("shutting down");
        let _ = self.shutdown.send(true);
        match tokio::time::timeout(grace, self.serve).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "server error during shutdown"),
            Ok(Err(e)) => tracing::error!(error = %e, "server task failed"),
            Err(_) => tracing::warn!("requests still running after {grace:?}; stopping anyway"),
        }
        let RunningServer {
            state,
            writer,
            background,
            ..
        } = self;
        for task in background {
            let _ = task.await;
        }
        let db = state.db.clone();
        // The writer ends once the last handle (in the state) is gone.
        drop(state);
        if tokio::time::timeout(grace, writer).await.is_err() {
            tracing::warn!("the writer did not finish in time");
        }
        db.close().await;
        tracing::info!("shut down");
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) {
        wait_for_signal().await;
        self.shutdown(Duration::from_secs(10)).await;
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("received SIGINT"),
        _ = term => tracing::info!("received SIGTERM"),
    }
}

/// The app's routes, found once per process.
///
/// Finding them renders the app with every resource load held back, and that hold
/// is one flag for the whole process (leptos_server's `IS_SUPPRESSING_RESOURCE_LOAD`):
/// a second server starting in the same process (as in the test suites) made pages
/// that other servers were rendering at that moment wait for their data forever.
fn routes() -> Vec<AxumRouteListing> {
    static ROUTES: OnceLock<Vec<AxumRouteListing>> = OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// The whole router, with its state applied.
pub fn router(state: AppState) -> Router {
    let routes = routes();
    let context = {
        let state = state.clone();
        move || provide_context(state.clone())
    };
    let options = state.leptos_options.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/new", get(new_list))
        .route("/api/live", get(live::upgrade))
        .route("/sw.js", get(shell::service_worker))
        .route(crate::app::boot::SHELL_PATH, get(shell::shell_page))
        .leptos_routes_with_context(&state, routes, context.clone(), move || {
            shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(context, shell))
        .layer(middleware::from_fn_with_state(state.clone(), limit_body))
        .layer(middleware::from_fn_with_state(state.clone(), shell::mark_build))
        .layer(middleware::from_fn(security_headers))
        .layer(CompressionLayer::new())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
                })
                .on_request(())
                .on_response(
                    |res: &Response, latency: Duration, _span: &tracing::Span| {
                        tracing::info!(
                            status = res.status().as_u16(),
                            ms = latency.as_secs_f64() * 1000.0,
                            "served"
                        );
                    },
                )
                .on_failure(DefaultOnFailure::new().level(Level::WARN)),
        )
        .with_state(state)
}

/// `GET /healthz`: 200 when the database answers and (on PostgreSQL) this node
/// hears the other nodes' changes; 503 otherwise, saying which part is down.
async fn healthz(State(state): State<AppState>) -> Response {
    let database = match state.db.ping().await {
        Ok(()) => "ok",
        Err(e) => {
            tracing::error!(error = %e, "health check: the database does not answer");
            "unavailable"
        }
    };
    let changes_feed = if state.hub.feed_connected() {
        "ok"
    } else {
        "disconnected"
    };
    let healthy = database == "ok" && changes_feed == "ok";
    let body = Json(serde_json::json!({
        "status": if healthy { "ok" } else { "unavailable" },
        "store": state.db.backend(),
        "database": database,
        "changes_feed": changes_feed,
    }));
    if healthy {
        body.into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

/// `GET /metrics`: this node's figures in the Prometheus text format.
async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        metrics::render(state.db.pool_connections()),
    )
        .into_response()
}

/// `GET /new`: a fresh list's address (the link works without JavaScript too).
async fn new_list() -> Response {
    axum::response::Redirect::to(&format!("/l/{}", crate::model::Uid::new())).into_response()
}

/// Checks request bodies to `/api/*` before anything decodes them: read whole within
/// `max_request_bytes` (413 `body_too_large`), UTF-8 text and JSON nested at most
/// `max_json_depth` deep (400 `malformed_request`).
async fn limit_body(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/api/") || req.method() == axum::http::Method::GET {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    match read_body(&parts.headers, body, &state.config.sync).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(refusal) => refusal,
    }
}

/// A body over the limit is still read, up to this many bytes in all, so that its
/// 413 reaches the client: a connection closed with unread data in it is reset,
/// and the reset throws the answer away (the client sees a network failure and
/// would resend the same body for ever instead of splitting it).
const MAX_DISCARDED_BYTES: usize = 32 * 1024 * 1024;
/// ... and for at most this long.
const DISCARD_TIMEOUT: Duration = Duration::from_secs(10);

/// The body of an `/api/` request, checked; or the error response.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limits: &SyncLimits,
) -> Result<Bytes, Response> {
    let max = limits.max_request_bytes;
    let mut stream = body.into_data_stream();
    if let Some(declared) = content_length(headers).filter(|&bytes| bytes > max) {
        // Refused by its declared length, without keeping any of it.
        let read_to_end = if declared > MAX_DISCARDED_BYTES || expects_continue(headers) {
            false
        } else {
            discard(&mut stream, 0).await.1
        };
        return Err(too_large(declared, max, read_to_end));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            malformed_response(format!("the body could not be read to its end: {e}"))
        })?;
        if bytes.len() + chunk.len() > max {
            let (seen, read_to_end) = discard(&mut stream, bytes.len() + chunk.len()).await;
            return Err(too_large(seen, max, read_to_end));
        }
        bytes.extend_from_slice(&chunk);
    }
    if let Err(e) = std::str::from_utf8(&bytes) {
        return Err(malformed_response(format!(
            "the body is not UTF-8 text: {e}"
        )));
    }
    limiter::check_json_depth(&bytes, limits.max_json_depth).map_err(|e| error_response(&e))?;
    Ok(Bytes::from(bytes))
}

fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The client waits for `100 Continue` before it sends the body: a refusal now
/// spares it sending the body at all.
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Reads and drops the rest of a body of which `seen` bytes were read, within
/// [`MAX_DISCARDED_BYTES`] and [`DISCARD_TIMEOUT`]; answers the bytes seen in all
/// and whether the body was read to its end.
async fn discard(stream: &mut BodyDataStream, mut seen: usize) -> (usize, bool) {
    let deadline = tokio::time::Instant::now() + DISCARD_TIMEOUT;
    while seen <= MAX_DISCARDED_BYTES {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(None) => return (seen, true),
            Ok(Some(Ok(chunk))) => seen += chunk.len(),
            Ok(Some(Err(_))) | Err(_) => break,
        }
    }
    (seen, false)
}

/// 413 `body_too_large` for a body of `bytes`. If the body was not read to its
/// end, the connection closes after the answer (its rest cannot be skipped).
fn too_large(bytes: usize, max: usize, read_to_end: bool) -> Response {
    let mut response = error_response(&SyncError::BodyTooLarge { bytes, max });
    if !read_to_end {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn malformed_response(detail: String) -> Response {
    error_response(&SyncError::MalformedRequest { detail })
}

/// A typed error as an HTTP response: its status and its JSON.
pub fn error_response(error: &SyncError) -> Response {
    let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(error)).into_response()
}

/// The usual security headers on every response. The page's scripts carry a nonce
/// (see `app::shell`), so the policy needs no `unsafe-inline` for scripts.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let headers = res.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    res
}
