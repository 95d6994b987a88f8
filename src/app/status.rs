//! The status badge: the sync state, always visible — online / syncing / offline
//! (with the next retry), the number of pending writes, how long ago the list was
//! last in sync with the server, and any problem worth knowing.
//!
//! "Synced" uses one clock, the server's: the cursor's time is the server's time the
//! replica caught up to, and "ago" is measured against the server's clock as
//! estimated from its answers, so a browser clock that is off changes nothing.

use leptos::prelude::*;

use super::sync_client::{server_now, Connection, SyncStatus};

/// How long ago `synced_at_ms` was, both on the server's clock: "just now" under
/// 10 s, then seconds, minutes, hours, days.
pub fn ago(synced_at_ms: u64, server_now_ms: u64) -> String {
    let secs = server_now_ms.saturating_sub(synced_at_ms) / 1000;
    match secs {
        0..10 => "just now".to_string(),
        10..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => match secs / 86_400 {
            1 => "1 day ago".to_string(),
            days => format!("{days} days ago"),
        },
    }
}

/// A signal of the browser's clock that moves every few seconds, so relative times
/// stay true (browser only; on the server it stays 0 and nothing is shown).
fn ticking_clock() -> RwSignal<u64> {
    let now = RwSignal::new(0);
    Effect::new(move |_| {
        let tick = move || now.set(crate::app::sync_client::now_ms());
        tick();
        if let Ok(handle) = set_interval_with_handle(tick, std::time::Duration::from_secs(5)) {
            on_cleanup(move || handle.clear());
        }
    });
    now
}

#[component]
pub fn StatusBadge(status: SyncStatus) -> impl IntoView {
    let SyncStatus {
        connection,
        pending,
        synced_at_ms,
        server_offset_ms,
        problem,
    } = status;
    let connection: RwSignal<Connection> = connection.into();
    let pending: RwSignal<usize> = pending.into();
    let synced_at_ms: RwSignal<Option<u64>> = synced_at_ms.into();
    let server_offset_ms: RwSignal<Option<i64>> = server_offset_ms.into();
    let problem: RwSignal<Option<String>> = problem.into();
    // Times are shown relative to the browser's clock, so only once hydrated (the
    // clock has ticked): the server's first frame and the browser's must be the same.
    let now = ticking_clock();

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
    let synced = move || match (now.get(), synced_at_ms.get()) {
        (0, _) => String::new(),
        (now, Some(at)) => format!(
            "synced {}",
            ago(at, server_now(now, server_offset_ms.get()))
        ),
        (_, None) => "not synced yet".to_string(),
    };
    let synced_at = move || {
        (now.get() > 0)
            .then(|| synced_at_ms.get())
            .flatten()
            .map(|ms| ms.to_string())
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
            <span class="synced" data-synced-at=synced_at>{synced}</span>
            <Show when=move || problem.get().is_some()>
                <span class="problem">
                    {move || problem.get().unwrap_or_default()}
                    <button class="dismiss" on:click=move |_| problem.set(None)>"×"</button>
                </span>
            </Show>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ago_reads_like_a_person_would_say_it() {
        let t = 1_800_000_000_000;
        assert_eq!(ago(t, t), "just now");
        assert_eq!(ago(t, t - 5_000), "just now");
        assert_eq!(ago(t, t + 9_999), "just now");
        assert_eq!(ago(t, t + 42_000), "42 s ago");
        assert_eq!(ago(t, t + 125_000), "2 min ago");
        assert_eq!(ago(t, t + 3 * 3_600_000), "3 h ago");
        assert_eq!(ago(t, t + 86_400_000), "1 day ago");
        assert_eq!(ago(t, t + 3 * 86_400_000), "3 days ago");
    }
}
