//! Registers the service worker once the app has started: `/sw.js`, which the
//! server serves with its build's id, keeps the app's shell so the lists of this
//! device open with no network (`src/server/service_worker.js`). Where the browser
//! has no service workers (or the page is not a secure context), nothing changes:
//! the app works as before, online, and offline while its tab stays open.

use wasm_bindgen::JsValue;

/// The service worker's address; its scope is the whole site.
const SCRIPT: &str = "/sw.js";

pub fn register() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let navigator = window.navigator();
    let supported =
        js_sys::Reflect::has(&navigator, &JsValue::from_str("serviceWorker")).unwrap_or(false);
    if !supported || !window.is_secure_context() {
        return;
    }
    let registration = navigator.service_worker().register(SCRIPT);
    leptos::task::spawn_local(async move {
        if let Err(e) = wasm_bindgen_futures::JsFuture::from(registration).await {
            leptos::logging::warn!("tether: the offline shell is unavailable: {e:?}");
        }
    });
}
