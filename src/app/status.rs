//! The status badge: the sync state, always visible — online / syncing / offline
//! (with the next retry), the number of pending writes, when the list was last in
//! sync with the server, and any problem worth knowing.

use leptos::prelude::*;

use super::sync_client::{Connection, SyncStatus};

/// Formats a wall-clock time as the browser's local time of day.
fn time_of_day(ms: u64) -> String {
    #[cfg(feature = "hydrate")]
    {
        let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
        format!(
            "{:02}:{:02}:{:02}",
            date.get_hours(),
            date.get_minutes(),
            date.get_seconds()
        )
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = ms;
        String::new()
    }
}

#[component]
pub fn StatusBadge(status: SyncStatus) -> impl IntoView {
    let SyncStatus {
        connection,
        pending,
        last_synced_ms,
        problem,
    } = status;
    let connection: RwSignal<Connection> = connection.into();
    let pending: RwSignal<usize> = pending.into();
    let last_synced_ms: RwSignal<Option<u64>> = last_synced_ms.into();
    let problem: RwSignal<Option<String>> = problem.into();
    // Times are shown in the browser's time zone, so only once hydrated: the server's
    // first frame and the browser's must be the same.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    let state = move || connection.get().label();
    let detail = move || match connection.get() {
        Connection::Offline { retry_in_ms } if retry_in_ms > 0 => {
            format!("retrying in {}s", retry_in_ms.div_ceil(1000))
        }
        Connection::Offline { .. } => "waiting for the network".to_string(),
        Connection::Retrying { retry_in_ms } => {
            format!(
                "server trouble; retrying in {}s",
                retry_in_ms.div_ceil(1000).max(1)
            )
        }
        _ => String::new(),
    };
    let synced = move || match (hydrated.get(), last_synced_ms.get()) {
        (true, Some(ms)) => format!("last synced {}", time_of_day(ms)),
        (true, None) => "not synced yet".to_string(),
        (false, _) => String::new(),
    };
    view! {
        <div class="status" data-state=state role="status" aria-live="polite">
            <span class="connection">{state}</span>
            <span class="retry">{detail}</span>
            <span class="pending" data-count=move || pending.get().to_string()>
                {move || match pending.get() {
                    0 => "all changes saved".to_string(),
                    1 => "1 change pending".to_string(),
                    n => format!("{n} changes pending"),
                }}
            </span>
            <span class="synced">{synced}</span>
            <Show when=move || problem.get().is_some()>
                <span class="problem">
                    {move || problem.get().unwrap_or_default()}
                    <button class="dismiss" on:click=move |_| problem.set(None)>"×"</button>
                </span>
            </Show>
        </div>
    }
}
