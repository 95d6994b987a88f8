//! The app wing: the page shell, routes and components, and the browser's sync layer.
//!
//! Knows components and the browser, never SQL. The same components render on the
//! server (feature `ssr`) and hydrate in the browser (feature `hydrate`); anything
//! that reads browser state runs in effects, after hydration, so both sides render
//! the same first frame.
//!
//! * [`api`] — the server functions (push, pull, ping);
//! * [`boot`] — what starts the app in a page (this build's files, hydrate or
//!   mount) and the offline shell page;
//! * [`offline`] — the app started from the offline shell (no server page);
//! * [`sync_client`] — one list's replica held in signals;
//! * `browser` — localStorage mirror, other tabs, transport (hydrate only);
//! * [`view_tree`] — views with UIDs, parents and children;
//! * [`item_views`] — the registry from a node's kind to the component that shows it;
//! * [`home`], [`list`], [`item`], [`status`], [`inspector`], [`errors`] — the pages
//!   and their parts; [`text_field`] — a text field's limit and refusals;
//! * [`undo`] — this tab's undo and redo (stacks, keys, buttons); [`replaced`] — the
//!   "your change was replaced" notices; [`reorder`] — moving items by drag or keys;
//! * [`rows`] — a list's children as counts and filters need them; [`row_window`] —
//!   long lists render only the rows near the viewport.

pub mod api;
pub mod boot;
#[cfg(feature = "hydrate")]
pub mod browser;
pub mod errors;
pub mod home;
pub mod inspector;
pub mod item;
pub mod item_views;
pub mod list;
pub mod offline;
pub mod presence;
pub mod reorder;
pub mod replaced;
pub mod row_window;
pub mod rows;
pub mod status;
pub mod sync_client;
pub mod text_field;
pub mod undo;
pub mod view_tree;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    OptionalParamSegment, ParamSegment, SsrMode, StaticSegment,
};

/// The HTML document around the app (server side only renders it). The boot
/// script names this build's files ([`boot`]).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    set_security_policy();
    #[cfg(feature = "ssr")]
    let build = boot::current_build();
    #[cfg(not(feature = "ssr"))]
    let build = String::new();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <AutoReload options />
                <boot::BootHead build_id=build entry=boot::Entry::Hydrate />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The page's Content-Security-Policy: scripts only from here or with this
/// response's nonce (the boot script), wasm allowed, nothing framed.
#[cfg(feature = "ssr")]
fn set_security_policy() {
    use http::{header::CONTENT_SECURITY_POLICY, HeaderValue};
    let nonce = leptos::nonce::use_nonce();
    if let (Some(response), Ok(value)) = (
        use_context::<leptos_axum::ResponseOptions>(),
        HeaderValue::from_str(&security_policy(nonce.as_deref())),
    ) {
        response.insert_header(CONTENT_SECURITY_POLICY, value);
    }
}

/// The Content-Security-Policy of a page whose inline script carries `nonce`
/// (the server-rendered pages and the offline shell page).
#[cfg(feature = "ssr")]
pub fn security_policy(nonce: Option<&str>) -> String {
    let nonce = nonce.map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{nonce}; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self' ws: wss:; \
         object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )
}

/// The app: routes to the home page and to a list (with its filter).
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title text="Tether" />
        <Router>
            <Routes fallback=|| view! { <errors::NotFound /> }>
                <Route path=StaticSegment("") view=home::HomePage />
                <Route
                    path=(StaticSegment("l"), ParamSegment("uid"), OptionalParamSegment("filter"))
                    view=list::ListPage
                    ssr=SsrMode::Async
                />
            </Routes>
        </Router>
    }
}
