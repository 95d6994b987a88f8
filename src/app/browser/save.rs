//! Saving the list's local copy (its replica, `mirror::save_state`) off the typing
//! path.
//!
//! Serialising a big list and writing it to localStorage takes tens of
//! milliseconds, so it never runs inside the change that asks for it: a save waits
//! until at least [`SAVE_EVERY_MS`] after the previous one (a burst of changes, such
//! as typing or a catch-up, is saved twice a second at most), then until the page is
//! idle (`requestIdleCallback`, at most [`IDLE_TIMEOUT_MS`] later, which a timer
//! makes sure of; a browser without it saves when the first timer fires). The
//! page being hidden saves at once (`save_now`, from `pagehide`).
//!
//! Pending writes do not wait for any of this: each tab's outbox is saved
//! synchronously on every write (`super::persist_outbox`), so a copy saved a
//! second late loses nothing that was not already sent.

use std::sync::atomic::Ordering;

use leptos::prelude::{GetUntracked, Set};

use super::{mirror, now, report, summary, transport};
use crate::app::sync_client::SyncClient;

/// The shortest time from one save of the local copy to the next.
pub const SAVE_EVERY_MS: u64 = 500;

/// The shortest wait before a save, so the changes of one burst are saved together.
const SAVE_AFTER_MS: u64 = 250;

/// The longest a due save waits for the page to be idle.
pub const IDLE_TIMEOUT_MS: u32 = 300;

/// Saves the replica and the list's summary soon, when the page is idle
/// (coalescing bursts of changes).
pub(crate) fn schedule_save(client: &SyncClient) {
    let session = client.session();
    if session.save_scheduled.swap(true, Ordering::SeqCst) {
        return;
    }
    let since_last = now().saturating_sub(session.last_saved_ms.load(Ordering::SeqCst));
    let wait = SAVE_EVERY_MS.saturating_sub(since_last).max(SAVE_AFTER_MS);
    let client = client.clone();
    leptos::task::spawn_local(async move {
        transport::sleep(wait).await;
        idle(IDLE_TIMEOUT_MS).await;
        // `save_now` may have run meanwhile (the page was hidden).
        if client.session().save_scheduled.load(Ordering::SeqCst) {
            save_now(&client);
        }
    });
}

/// Resolves when the page is idle, `timeout_ms` at the latest (a timer races the
/// idle callback, which some pages never get); at once where the browser has no
/// `requestIdleCallback`.
async fn idle(timeout_ms: u32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let Some(window) = web_sys::window() else {
            let _ = resolve.call0(&wasm_bindgen::JsValue::NULL);
            return;
        };
        let options = web_sys::IdleRequestOptions::new();
        options.set_timeout(timeout_ms);
        if window
            .request_idle_callback_with_options(&resolve, &options)
            .is_err()
        {
            let _ = resolve.call0(&wasm_bindgen::JsValue::NULL);
            return;
        }
        let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
            &resolve,
            i32::try_from(timeout_ms).unwrap_or(i32::MAX),
        );
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// Saves the replica and the list's summary now.
pub(crate) fn save_now(client: &SyncClient) {
    let session = client.session();
    session.save_scheduled.store(false, Ordering::SeqCst);
    session.last_saved_ms.store(now(), Ordering::SeqCst);
    let saved = client.with_replica(mirror::save_state);
    match saved {
        Ok(()) => {
            // Storage works again: clear a "storage full" notice.
            let problem = client.status().problem.clone();
            if problem
                .get_untracked()
                .is_some_and(|p| p.contains("storage is full"))
            {
                problem.set(None);
            }
        }
        Err(e) => report(client, &e),
    }
    let _ = mirror::remember_list(summary(client));
}
