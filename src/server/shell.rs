//! The offline shell, server side: the build id, the service worker script
//! (`/sw.js`), the shell page it keeps (`/shell`), and the `x-tether-build` header.
//!
//! The build id is a hash of the bundle the server serves (`<site_root>/pkg/
//! tether.{js,wasm,css}`), taken once at start: a new build is a new id, with nothing
//! to bump by hand, and nodes serving the same files agree on it. The page's files
//! carry it (`?v=<id>`, see `app::boot`), the service worker's cache is named after
//! it, and every response says which build answered it, so the service worker keeps
//! only files of its own build. A bundle file asked for with another build's id is
//! refused (404): a page never gets the js of one build and the wasm of another.

use std::{fmt, path::Path, sync::Arc};

use axum::{
    extract::{Request, State},
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use leptos::prelude::*;
use sha2::{Digest, Sha256};

use super::AppState;
use crate::app::{
    boot::{self, OUTPUT_NAME},
    security_policy,
};

/// The HTTP header carrying the build id on every response.
pub const BUILD_HEADER: &str = "x-tether-build";

/// The service worker, with its build's id and files filled in at `/sw.js`.
const SERVICE_WORKER: &str = include_str!("service_worker.js");

/// Which build of the browser bundle this server serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildId(Arc<str>);

impl BuildId {
    /// The build of the bundle under `site_root` (a missing file counts as empty):
    /// the first 16 hex digits of a SHA-256 over the js, wasm and css.
    pub fn of_site(site_root: &Path) -> BuildId {
        let mut hash = Sha256::new();
        for extension in ["js", "wasm", "css"] {
            let file = site_root
                .join("pkg")
                .join(format!("{OUTPUT_NAME}.{extension}"));
            let bytes = std::fs::read(&file).unwrap_or_default();
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(&bytes);
        }
        let digest = hash.finalize();
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        BuildId(hex.into())
    }
}

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `GET /sw.js`: the service worker of this build. Never cached by the browser's
/// HTTP cache, so a new build's worker is found on the next page load.
pub async fn service_worker(State(state): State<AppState>) -> Response {
    let build = state.build.to_string();
    let script = SERVICE_WORKER
        .replace("__BUILD__", &json(&build))
        .replace("__SHELL__", &json(&boot::shell_url(&build)))
        .replace("__KEPT__", &json(&boot::kept_files(&build)))
        .replace("__BUILD_HEADER__", &json(BUILD_HEADER));
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        script,
    )
        .into_response()
}

/// `GET /shell`: the offline shell page of this build, with a nonce of its own.
pub async fn shell_page(State(state): State<AppState>) -> Response {
    let build = state.build.to_string();
    let (html, nonce) = Owner::new().with(|| {
        leptos::nonce::provide_nonce();
        let nonce = leptos::nonce::use_nonce().map(|n| n.to_string());
        (boot::offline_shell(build).to_html(), nonce)
    });
    let policy = security_policy(nonce.as_deref());
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// Middleware: says which build answered (every response), and refuses a bundle
/// file asked for with another build's id.
pub async fn mark_build(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let build = state.build.to_string();
    let other_build = req.uri().path().starts_with("/pkg/")
        && asked_build(req.uri().query()).is_some_and(|asked| asked != build);
    let mut response = if other_build {
        (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, "no-store")],
            "this file belongs to another build of Tether; reload the page",
        )
            .into_response()
    } else {
        next.run(req).await
    };
    if let Ok(value) = HeaderValue::from_str(&build) {
        response.headers_mut().insert(BUILD_HEADER, value);
    }
    response
}

/// The build id a bundle file was asked for with (`?v=<id>`), if any.
fn asked_build(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|pair| pair.strip_prefix("v="))
}

/// A value written as JSON into the service worker's script.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_follows_the_bundles_contents() {
        let dir = std::env::temp_dir().join(format!("tether-build-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("pkg")).unwrap();
        std::fs::write(dir.join("pkg/tether.js"), "one").unwrap();
        let first = BuildId::of_site(&dir);
        assert_eq!(first, BuildId::of_site(&dir), "same files, same build");
        assert_eq!(first.to_string().len(), 16);
        std::fs::write(dir.join("pkg/tether.js"), "two").unwrap();
        assert_ne!(first, BuildId::of_site(&dir), "another js, another build");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_asked_build_is_the_v_parameter() {
        assert_eq!(asked_build(Some("v=abc")), Some("abc"));
        assert_eq!(asked_build(Some("x=1&v=abc")), Some("abc"));
        assert_eq!(asked_build(Some("x=1")), None);
        assert_eq!(asked_build(None), None);
    }
}
