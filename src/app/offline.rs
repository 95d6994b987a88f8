//! The app started from the offline shell.
//!
//! When the server cannot be reached as a page loads, the service worker answers
//! with the shell page (`app::boot::offline_shell`), and the app is mounted in the
//! browser (`crate::mount`) instead of hydrating the server's markup. It then shows
//! what this device has: a list opened here before opens from its local copy; a
//! list never opened here gets [`NotOnThisDevice`], which loads it by itself (a
//! reload, so the server renders it) once the server answers.
//!
//! Pages the server rendered never take these paths: there the flag is false on
//! both sides, so the server's first frame and the browser's stay the same.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::model::Uid;

#[cfg(feature = "hydrate")]
static STARTED_OFFLINE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How often the page for a list not on this device asks whether the server is back.
const SERVER_CHECK_MS: u64 = 2_000;

/// Records that this page is the offline shell (before the app is mounted).
#[cfg(feature = "hydrate")]
pub fn started_from_shell() {
    STARTED_OFFLINE.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Whether this page was started from the offline shell, not from the server.
pub fn started_offline() -> bool {
    #[cfg(feature = "hydrate")]
    return STARTED_OFFLINE.load(std::sync::atomic::Ordering::SeqCst);
    #[cfg(not(feature = "hydrate"))]
    false
}

/// Whether this device has list `list`: opened (or made) here before.
pub fn seen_here(list: Uid) -> bool {
    #[cfg(feature = "hydrate")]
    return super::browser::mirror::has_local_copy(list);
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = list;
        true
    }
}

/// Offline, a list this device has never opened: says so, and loads it by itself
/// once the server answers.
#[component]
pub fn NotOnThisDevice(list: Uid) -> impl IntoView {
    Effect::new(move |_| {
        let check = move || {
            leptos::task::spawn_local(async move {
                if super::api::ping().await.is_ok() {
                    reload();
                }
            })
        };
        if let Ok(handle) =
            set_interval_with_handle(check, std::time::Duration::from_millis(SERVER_CHECK_MS))
        {
            on_cleanup(move || handle.clear());
        }
    });
    view! {
        <Title text="Not on this device yet · Tether" />
        <section class="not-on-device" data-list=list.to_string()>
            <h1>"This list is not on this device yet"</h1>
            <p>
                "It has never been opened in this browser, so there is no copy of it here, "
                "and the server cannot be reached right now."
            </p>
            <p class="waiting">"It will open by itself as soon as this device is online."</p>
            <p>
                <a href="/">"Your lists on this device"</a>
            </p>
        </section>
    }
}

fn reload() {
    #[cfg(feature = "hydrate")]
    if let Some(window) = web_sys::window() {
        let _ = window.location().reload();
    }
}
