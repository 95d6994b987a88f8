//! The home page: start a new list, open one from a pasted link, and "your lists" —
//! the lists this browser has opened, each with its title and open items.
//!
//! "Your lists" lives in this browser's localStorage, so it is read after hydration;
//! the server renders the page without it. A new list needs no server round trip:
//! its UID is made here, and the list comes into being with its first write.

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
}

#[component]
pub fn HomePage() -> impl IntoView {
    let lists = RwSignal::new(Vec::<KnownList>::new());
    let server = RwSignal::new(String::from("checking the server…"));
    let server_ok = RwSignal::new(false);
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        lists.set(
            super::browser::mirror::known_lists()
                .into_iter()
                .map(|l| KnownList {
                    uid: l.uid,
                    title: l.title,
                    open: l.open,
                })
                .collect(),
        );
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
        navigate(&format!("/l/{}", Uid::new()), Default::default());
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
                        key=|l| (l.uid, l.title.clone(), l.open)
                        children=|l| {
                            let title = if l.title.is_empty() { "Untitled list".to_string() } else { l.title.clone() };
                            view! {
                                <li data-uid=l.uid.to_string()>
                                    <a href=format!("/l/{}", l.uid)>{title}</a>
                                    " "
                                    <span class="open-count">
                                        {if l.open == 1 { "1 open item".to_string() } else { format!("{} open items", l.open) }}
                                    </span>
                                </li>
                            }
                        }
                    />
                </ul>
            </Show>
            <p class="server-status" class:ok=move || server_ok.get()>{move || server.get()}</p>
        </section>
    }
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
