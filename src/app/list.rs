//! The list page: `/l/{uid}`, `/l/{uid}/active`, `/l/{uid}/completed` — the TodoMVC
//! app on the sync layer.
//!
//! The server renders the list's current data into the HTML (the route is
//! `SsrMode::Async`, so the page is complete without JavaScript) and serialises it
//! for hydration; the browser hydrates from exactly that, then starts the sync client
//! (localStorage, other tabs, live socket). A list that was never written is simply
//! empty: the first write creates it.

use leptos::{html::Input, prelude::*};
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use serde_json::json;

use super::{
    errors::{BadListLink, NotFound},
    inspector::Inspector,
    item_views::item_views,
    status::StatusBadge,
    sync_client::SyncClient,
    view_tree::use_view,
};
use crate::model::{
    kinds::{List, Section, Todo},
    wire::{PullPage, SyncError},
    Placement, Uid, Value,
};

/// Which items the list shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    All,
    Active,
    Completed,
}

impl Filter {
    /// The filter named by the last path segment (`None` for an unknown one).
    pub fn from_segment(segment: Option<&str>) -> Option<Filter> {
        match segment {
            None | Some("") => Some(Filter::All),
            Some("active") => Some(Filter::Active),
            Some("completed") => Some(Filter::Completed),
            Some(_) => None,
        }
    }

    fn href(self, list: Uid) -> String {
        match self {
            Filter::All => format!("/l/{list}"),
            Filter::Active => format!("/l/{list}/active"),
            Filter::Completed => format!("/l/{list}/completed"),
        }
    }

    fn shows(self, completed: bool) -> bool {
        match self {
            Filter::All => true,
            Filter::Active => !completed,
            Filter::Completed => completed,
        }
    }
}

/// The route's component: checks the link, then loads and shows the list.
#[component]
pub fn ListPage() -> impl IntoView {
    let params = use_params_map();
    let uid = Memo::new(move |_| params.read().get("uid").unwrap_or_default());
    let filter = Memo::new(move |_| Filter::from_segment(params.read().get("filter").as_deref()));
    let known_filter = Memo::new(move |_| filter.get().is_some());
    move || {
        let raw = uid.get();
        match Uid::parse(&raw) {
            Err(_) => view! { <BadListLink uid=raw /> }.into_any(),
            Ok(_) if !known_filter.get() => view! { <NotFound /> }.into_any(),
            Ok(list) => {
                let filter = Signal::derive(move || filter.get().unwrap_or(Filter::All));
                view! { <ListLoader list filter /> }.into_any()
            }
        }
    }
}

/// What the server renders the page with. In the browser (moving here without a
/// page load) there is nothing to fetch first: the client starts from its local copy
/// and the live socket catches it up.
async fn load_seed(list: Uid) -> Result<PullPage, SyncError> {
    #[cfg(feature = "ssr")]
    {
        let state = use_context::<crate::server::AppState>().ok_or(SyncError::Internal)?;
        crate::server::sync::snapshot(&state.db, list).await
    }
    #[cfg(not(feature = "ssr"))]
    {
        Ok(PullPage {
            list,
            changes: Vec::new(),
            cursor: 0,
            more: false,
            server_time_ms: 0,
        })
    }
}

#[component]
fn ListLoader(list: Uid, filter: Signal<Filter>) -> impl IntoView {
    let seed = Resource::new(move || list, load_seed);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading the list…"</p> }>
            {move || Suspend::new(async move {
                match seed.await {
                    Ok(seed) => {
                        let client = SyncClient::for_list(list, &seed);
                        view! { <ListView client filter /> }.into_any()
                    }
                    Err(e) => view! {
                        <section class="error-page">
                            <h1>"This list could not be loaded"</h1>
                            <p class="error-message">{e.to_string()}</p>
                        </section>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The TodoMVC list view.
#[component]
pub fn ListView(client: SyncClient, filter: Signal<Filter>) -> impl IntoView {
    let list = client.list();
    let view = use_view("list", Some((list, "list".into())));
    provide_context(client.clone());
    {
        // Browser only (effects never run on the server), after hydration.
        let client = client.clone();
        Effect::new(move |_| client.start());
    }

    let children: RwSignal<Vec<Uid>> = client.children(list).into();
    let list_title: RwSignal<Value> = client.field(list, "title").into();
    let client = StoredValue::new(client);
    let kind_of = move |uid: Uid| client.with_value(|c| c.kind(uid)).unwrap_or_default();
    let is_completed =
        move |uid: Uid| client.with_value(|c| c.field(uid, "completed")).get() == Value::Bool(true);
    let todos = Memo::new(move |_| {
        children
            .get()
            .into_iter()
            .filter(|uid| kind_of(*uid) == "todo")
            .collect::<Vec<_>>()
    });
    let completed_count =
        Memo::new(move |_| todos.get().into_iter().filter(|u| is_completed(*u)).count());
    let total = Memo::new(move |_| todos.with(Vec::len));
    let remaining = move || total.get() - completed_count.get();
    let empty = Memo::new(move |_| children.with(Vec::is_empty));
    let visible = Memo::new(move |_| {
        let filter = filter.get();
        children
            .get()
            .into_iter()
            .filter(|uid| kind_of(*uid) != "todo" || filter.shows(is_completed(*uid)))
            .collect::<Vec<_>>()
    });

    let new_todo = NodeRef::<Input>::new();
    let add = move |as_section: bool| {
        let Some(input) = new_todo.get_untracked() else {
            return;
        };
        let title = input.value().trim().to_string();
        if title.is_empty() {
            return;
        }
        client.with_value(|c| {
            if as_section {
                c.create(list, Placement::End, &Section { title });
            } else {
                c.create(
                    list,
                    Placement::End,
                    &Todo {
                        title,
                        completed: false,
                    },
                );
            }
        });
        input.set_value("");
    };
    let toggle_all = move |_| {
        let target = completed_count.get_untracked() < total.get_untracked();
        client.with_value(|c| {
            for uid in todos.get_untracked() {
                c.set(uid, "completed", json!(target));
            }
        });
    };
    let clear_completed = move |_| {
        client.with_value(|c| {
            for uid in todos.get_untracked() {
                if is_completed(uid) {
                    c.delete(uid);
                }
            }
        });
    };
    let show_inspector = RwSignal::new(false);
    let title_text = move || shown_title(&list_title.get());

    view! {
        <Title text=move || format!("{} · Tether", title_text()) />
        <section class="todoapp" data-view=view.dom_uid() data-list=list.to_string()>
            <header class="header">
                <ListTitle client=client.get_value() />
                <input
                    class="new-todo"
                    placeholder="What needs to be done?"
                    autofocus
                    node_ref=new_todo
                    on:keydown=move |ev| {
                        if ev.key() == "Enter" {
                            add(false);
                        }
                    }
                />
                <button class="add-section" title="Add the text as a section heading" on:click=move |_| add(true)>
                    "+ heading"
                </button>
            </header>
            <main class="main" class:hidden=empty>
                <input
                    id="toggle-all"
                    class="toggle-all"
                    type="checkbox"
                    checked=move || { total.get() > 0 && completed_count.get() == total.get() }
                    prop:checked=move || { total.get() > 0 && completed_count.get() == total.get() }
                    on:change=toggle_all
                />
                <label for="toggle-all">"Mark all as complete"</label>
                <ul class="todo-list">
                    <For
                        each=move || visible.get()
                        key=|uid| *uid
                        children=move |uid| item_views().render(client.get_value(), uid)
                    />
                </ul>
            </main>
            <footer class="footer" class:hidden=empty>
                <span class="todo-count">
                    <strong>{remaining}</strong>
                    {move || if remaining() == 1 { " item left" } else { " items left" }}
                </span>
                <ul class="filters">
                    {[(Filter::All, "All"), (Filter::Active, "Active"), (Filter::Completed, "Completed")]
                        .into_iter()
                        .map(|(f, label)| view! {
                            <li>
                                <a href=f.href(list) class:selected=move || filter.get() == f>{label}</a>
                            </li>
                        })
                        .collect_view()}
                </ul>
                <button
                    class="clear-completed"
                    class:hidden=move || completed_count.get() == 0
                    on:click=clear_completed
                >
                    "Clear completed"
                </button>
            </footer>
        </section>
        <div class="below">
            <StatusBadge status=client.with_value(|c| c.status().clone()) />
            <button
                class="toggle-inspector"
                aria-pressed=move || show_inspector.get().to_string()
                on:click=move |_| show_inspector.update(|s| *s = !*s)
            >
                {move || if show_inspector.get() { "Hide inspector" } else { "Inspector" }}
            </button>
            <p class="share">"Share this list: " <a href=format!("/l/{list}")>{format!("/l/{list}")}</a></p>
        </div>
        <Show when=move || show_inspector.get()>
            <Inspector client=client.get_value() root=view.clone() />
        </Show>
    }
}

/// A list's title as shown: TodoMVC's "todos" until it is given one.
fn shown_title(title: &Value) -> String {
    title
        .as_str()
        .filter(|t| !t.is_empty())
        .map_or_else(|| "todos".to_string(), str::to_string)
}

/// The list's title, shown as the page's `h1`; double-click to rename.
#[component]
fn ListTitle(client: SyncClient) -> impl IntoView {
    let list = client.list();
    let title: RwSignal<Value> = client.field(list, "title").into();
    let editing = RwSignal::new(false);
    let input = NodeRef::<Input>::new();
    let client = StoredValue::new(client);
    let shown = move || shown_title(&title.get());
    let save = move || {
        if !editing.get_untracked() {
            return;
        }
        editing.set(false);
        let Some(input) = input.get_untracked() else {
            return;
        };
        let value = input.value().trim().to_string();
        client.with_value(|c| {
            c.ensure_root(&List::default());
            c.set(list, "title", json!(value));
        });
    };
    view! {
        <h1
            class="list-title"
            class:editing=move || editing.get()
            title="Double-click to rename"
            on:dblclick=move |_| {
                editing.set(true);
                let current = title.get_untracked().as_str().unwrap_or_default().to_string();
                request_animation_frame(move || {
                    if let Some(el) = input.get_untracked() {
                        el.set_value(&current);
                        let _ = el.focus();
                    }
                });
            }
        >
            {shown}
        </h1>
        <input
            class="edit-title"
            class:hidden=move || !editing.get()
            aria-label="List title"
            node_ref=input
            on:keydown=move |ev| match ev.key().as_str() {
                "Enter" => save(),
                "Escape" => editing.set(false),
                _ => {}
            }
            on:blur=move |_| save()
        />
    }
}
