//! The home page: start a new list, open one from a pasted link, and "your lists" —
//! the lists this browser has opened, newest first, each with its title, open items
//! and writes not sent yet, and a way to forget one.
//!
//! "Your lists" lives in this browser's localStorage, so it is read after hydration
//! (and again every few seconds, as other tabs send their writes); the server renders
//! the page without it. It works the same offline. A new list needs no server round
//! trip: its UID is made here, it counts as this device's at once (so it opens
//! offline too), and it comes into being on the server with its first write.
//! Forgetting a list with unsent writes asks first: they would be lost.

use leptos::{html::Input, prelude::*};
use leptos_meta::Title;
use leptos_router::hooks::use_navigate;

use super::api::ping;
use crate::model::Uid;

/// Finds a list UID in whatever was pasted: a full link, a path or a bare UID.
pub fn uid_in(text: &str) -> Option<Uid> {
    let text = text.trim();
    if let Ok(uid) = Uid::parse(text) {
        return Some(uid);
    }
    text.split(['/', '?', '#'])
        .filter(|part| part.len() == 36)
        .find_map(|part| Uid::parse(part).ok())
}

#[derive(Clone, Debug, PartialEq)]
struct KnownList {
    uid: Uid,
    title: String,
    open: usize,
    /// Writes made in this browser the server has not acknowledged yet.
    pending: usize,
}

/// How often "your lists" is read again from localStorage.
const REFRESH_MS: u64 = 2_000;

/// This browser's lists, newest first (browser only; none on the server).
fn read_lists() -> Vec<KnownList> {
    #[cfg(feature = "hydrate")]
    {
        use super::browser::mirror;
        mirror::known_lists()
            .into_iter()
            .map(|l| KnownList {
                uid: l.uid,
                title: l.title,
                open: l.open,
                pending: mirror::pending_count(l.uid),
            })
            .collect()
    }
    #[cfg(not(feature = "hydrate"))]
    Vec::new()
}

/// Makes list `uid` this device's: in "your lists", so it opens offline too.
fn adopt_new_list(uid: Uid) {
    #[cfg(feature = "hydrate")]
    {
        use super::browser::mirror;
        let _ = mirror::remember_list(mirror::ListSummary {
            uid,
            title: String::new(),
            open: 0,
            opened_ms: crate::app::sync_client::now_ms(),
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = uid;
}

fn forget(uid: Uid) {
    #[cfg(feature = "hydrate")]
    super::browser::mirror::forget_list(uid);
    #[cfg(not(feature = "hydrate"))]
    let _ = uid;
}

#[component]
pub fn HomePage() -> impl IntoView {
    let lists = RwSignal::new(Vec::<KnownList>::new());
    let server = RwSignal::new(String::from("checking the server…"));
    let server_ok = RwSignal::new(false);
    Effect::new(move |_| {
        let refresh = move || {
            let now = read_lists();
            if lists.with_untracked(|l| *l != now) {
                lists.set(now);
            }
        };
        refresh();
        if let Ok(handle) =
            set_interval_with_handle(refresh, std::time::Duration::from_millis(REFRESH_MS))
        {
            on_cleanup(move || handle.clear());
        }
        leptos::task::spawn_local(async move {
            match ping().await {
                Ok(info) => {
                    server_ok.set(true);
                    server.set(format!("Server online ({} {})", info.name, info.version));
                }
                Err(e) => server.set(format!("Server unreachable: {e}")),
            }
        });
    });

    let navigate = use_navigate();
    let open_input = NodeRef::<Input>::new();
    let open_error = RwSignal::new(None::<String>);
    let open = {
        let navigate = navigate.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let text = open_input
                .get_untracked()
                .map(|i| i.value())
                .unwrap_or_default();
            match uid_in(&text) {
                Some(uid) => {
                    open_error.set(None);
                    navigate(&format!("/l/{uid}"), Default::default());
                }
                None => open_error.set(Some(
                    "That is not a Tether list link: it should contain /l/ and a list id.".into(),
                )),
            }
        }
    };
    let new_list = move |ev: leptos::ev::MouseEvent| {
        ev.prevent_default();
        let uid = Uid::new();
        adopt_new_list(uid);
        navigate(&format!("/l/{uid}"), Default::default());
    };

    view! {
        <Title text="Tether · shared lists" />
        <section class="home">
            <h1>"Tether"</h1>
            <p class="tagline">"Shared lists that keep working offline."</p>
            <a class="new-list button" href="/new" rel="external" on:click=new_list>
                "New list"
            </a>
            <form class="open-list" on:submit=open>
                <label for="open-link">"Open a list by pasting its link"</label>
                <input id="open-link" name="link" node_ref=open_input placeholder="https://…/l/…" />
                <button type="submit">"Open"</button>
                <Show when=move || open_error.get().is_some()>
                    <p class="error-message">{move || open_error.get().unwrap_or_default()}</p>
                </Show>
            </form>
            <h2>"Your lists"</h2>
            <Show
                when=move || !lists.with(Vec::is_empty)
                fallback=|| view! { <p class="no-lists">"Lists you open in this browser appear here."</p> }
            >
                <ul class="your-lists">
                    <For
                        each=move || lists.get()
                        key=|l| (l.uid, l.title.clone(), l.open, l.pending)
                        children=move |l| view! { <YourList list=l lists /> }
                    />
                </ul>
            </Show>
            <p class="server-status" class:ok=move || server_ok.get()>{move || server.get()}</p>
        </section>
    }
}

/// One of "your lists": its link, counts, and "Forget" (which asks first when
/// writes would be lost).
#[component]
fn YourList(list: KnownList, lists: RwSignal<Vec<KnownList>>) -> impl IntoView {
    let KnownList {
        uid,
        title,
        open,
        pending,
    } = list;
    let title = if title.is_empty() {
        "Untitled list".to_string()
    } else {
        title
    };
    let confirming = RwSignal::new(false);
    let forget_now = move || {
        forget(uid);
        lists.update(|l| l.retain(|l| l.uid != uid));
    };
    view! {
        <li data-uid=uid.to_string()>
            <a href=format!("/l/{uid}")>{title}</a>
            " "
            <span class="open-count">
                {if open == 1 { "1 open item".to_string() } else { format!("{open} open items") }}
            </span>
            " "
            <span class="pending-count" data-count=pending.to_string()>
                {match pending {
                    0 => String::new(),
                    1 => "1 change not sent yet".to_string(),
                    n => format!("{n} changes not sent yet"),
                }}
            </span>
            " "
            <button
                class="forget"
                title="Remove this list from this device"
                on:click=move |_| if pending == 0 { forget_now() } else { confirming.set(true) }
            >
                "Forget"
            </button>
            <Show when=move || confirming.get()>
                <p class="forget-warning" role="alert">
                    {forget_warning(pending)}
                    " "
                    <button class="forget-anyway" on:click=move |_| forget_now()>"Forget anyway"</button>
                    " "
                    <button class="keep" on:click=move |_| confirming.set(false)>"Keep it"</button>
                </p>
            </Show>
        </li>
    }
}

/// What forgetting a list with `pending` unsent writes would cost.
fn forget_warning(pending: usize) -> String {
    let (changes, have, them) = if pending == 1 {
        ("change", "has", "it")
    } else {
        ("changes", "have", "them")
    };
    format!(
        "{pending} {changes} made here {have} not reached the server yet: forgetting the list \
         now deletes {them} for good. Open the list while online to send {them} first."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_uid_in_links_paths_and_bare_ids() {
        let uid = Uid::new();
        for text in [
            format!("{uid}"),
            format!("  /l/{uid}  "),
            format!("http://127.0.0.1:3000/l/{uid}"),
            format!("https://tether.example/l/{uid}/active?x=1"),
        ] {
            assert_eq!(uid_in(&text), Some(uid), "{text}");
        }
        assert_eq!(uid_in("http://x/l/not-a-uid"), None);
        assert_eq!(uid_in(""), None);
    }
}
