//! The list page: `/l/{uid}`, `/l/{uid}/active`, `/l/{uid}/completed` — the TodoMVC
//! app on the sync layer.
//!
//! The server renders the list's current data into the HTML (the route is
//! `SsrMode::Async`, so the page is complete without JavaScript) and serialises it
//! for hydration; the browser hydrates from exactly that, then starts the sync client
//! (localStorage, other tabs, live socket). A list that was never written is simply
//! empty: the first write creates it. Started from the offline shell (no server),
//! the page shows this device's copy of the list, or says it has none.

use leptos::{html::Input, prelude::*};
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use serde_json::json;

use super::{
    errors::{BadListLink, NotFound},
    inspector::Inspector,
    item_views::{item_views, text_limit, AddItem, DONE_FIELD, TITLE_FIELD},
    offline::{self, NotOnThisDevice},
    presence::PresenceBar,
    reorder::Reorder,
    row_window::RowWindow,
    rows::{Counts, Rows},
    status::StatusBadge,
    sync_client::SyncClient,
    text_field::TypedText,
    undo::UndoBar,
    view_tree::{use_view, View},
};
use crate::model::{
    kinds::List,
    wire::{PullPage, SyncError},
    Model, Uid, Value,
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

/// Loads and shows the list; offline, a list this device has never opened gets a
/// page saying so instead ([`super::offline`]).
#[component]
fn ListLoader(list: Uid, filter: Signal<Filter>) -> impl IntoView {
    if offline::started_offline() && !offline::seen_here(list) {
        return view! { <NotOnThisDevice list /> }.into_any();
    }
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
    .into_any()
}

/// The TodoMVC list view: the header (title, new item), the items, the footer
/// (count, filters, clear completed), and below it the status and the inspector.
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
    let items = Items::new(&client, filter);
    // Reference-counted, not an arena signal: the server renders the page's <title>
    // after the body, outside the request's arena, where reading an arena signal
    // panicked ("no Arena is active") and dropped the response.
    let list_title = client.field(list, TITLE_FIELD);
    view! {
        <Title text=move || format!("{} · Tether", shown_title(&list_title.get())) />
        <section class="todoapp" data-view=view.dom_uid() data-list=list.to_string()>
            <header class="header">
                <ListTitle client=client.clone() />
                <NewItem client=client.clone() />
            </header>
            <ItemList items />
            <ListFooter items filter list />
        </section>
        <BelowList client view />
    }
}

/// The list's children as the view needs them: their rows (task or not, done or
/// not; which kinds are tasks comes from the registry, see
/// [`super::item_views::DONE_FIELD`]), the counts, and those the filter shows.
/// All are plain passes over one signal of rows ([`super::rows`]).
#[derive(Clone, Copy)]
struct Items {
    client: StoredValue<SyncClient>,
    rows: RwSignal<Rows>,
    counts: Memo<Counts>,
    visible: Memo<Vec<Uid>>,
}

impl Items {
    fn new(client: &SyncClient, filter: Signal<Filter>) -> Items {
        let rows: RwSignal<Rows> = client.rows(client.list()).into();
        let visible = Memo::new(move |_| {
            let filter = filter.get();
            rows.with(|rows| {
                rows.iter()
                    .filter(|row| !row.task || filter.shows(row.done))
                    .map(|row| row.uid)
                    .collect::<Vec<_>>()
            })
        });
        Items {
            client: StoredValue::new(client.clone()),
            rows,
            counts: Memo::new(move |_| rows.with(|rows| Counts::of(rows))),
            visible,
        }
    }

    fn remaining(&self) -> usize {
        self.counts.get().remaining()
    }

    fn all_done(&self) -> bool {
        let counts = self.counts.get();
        counts.tasks > 0 && counts.done == counts.tasks
    }

    fn is_empty(&self) -> bool {
        self.rows.with(|rows| rows.is_empty())
    }

    /// The tasks whose done flag is `done`.
    fn tasks(&self, done: bool) -> Vec<Uid> {
        self.rows.with_untracked(|rows| {
            rows.iter()
                .filter(|row| row.task && row.done == done)
                .map(|row| row.uid)
                .collect()
        })
    }

    /// Marks every task done, or every task not done if all are.
    fn toggle_all(&self) {
        let counts = self.counts.get_untracked();
        let target = counts.done < counts.tasks;
        let tasks = self.tasks(!target);
        self.client.with_value(|c| {
            c.as_one_action(|| {
                for uid in tasks {
                    let _ = c.set(uid, DONE_FIELD, json!(target));
                }
            })
        });
    }

    fn clear_completed(&self) {
        let done = self.tasks(true);
        self.client.with_value(|c| {
            c.as_one_action(|| {
                for uid in done {
                    c.delete(uid);
                }
            })
        });
    }
}

/// The new-item field: Enter adds the registry's Enter kind (a todo), each button its
/// kind (a section heading), with the typed text as title. A refused text stays in
/// the field with the reason; the title's limit shows as it nears.
#[component]
fn NewItem(client: SyncClient) -> impl IntoView {
    let list = client.list();
    let client = StoredValue::new(client);
    let input = NodeRef::<Input>::new();
    let on_enter = item_views().enter_add();
    let typed = TypedText::new(on_enter.and_then(|a| a.limit));
    let add = move |adder: AddItem| {
        let Some(field) = input.get_untracked() else {
            return;
        };
        let title = field.value().trim().to_string();
        if title.is_empty() {
            return;
        }
        match client.with_value(|c| adder.create(c, list, title)) {
            Ok(_) => {
                field.set_value("");
                typed.clear();
            }
            Err(e) => typed.refuse(&e),
        }
    };
    let buttons = item_views()
        .button_adds()
        .into_iter()
        .map(|adder| {
            let (label, hint) = adder.button.unwrap_or_default();
            view! {
                <button class=format!("add-item add-{}", adder.kind) title=hint on:click=move |_| add(adder)>
                    {label}
                </button>
            }
        })
        .collect_view();
    view! {
        <input
            class="new-todo"
            placeholder="What needs to be done?"
            autofocus
            node_ref=input
            on:input=move |ev| typed.typed(&event_target_value(&ev))
            on:keydown=move |ev| {
                if let (Some(adder), "Enter") = (on_enter, ev.key().as_str()) {
                    add(adder);
                }
            }
        />
        {buttons}
        {typed.hints()}
    }
}

/// Toggle-all and the items, each shown by its kind's component.
#[component]
fn ItemList(items: Items) -> impl IntoView {
    let all_done = move || items.all_done();
    provide_context(Reorder::new(items.client.get_value(), items.visible));
    let window = RowWindow::new(items.visible);
    view! {
        <main class="main" class:hidden=move || items.is_empty()>
            <input
                id="toggle-all"
                class="toggle-all"
                type="checkbox"
                checked=all_done
                prop:checked=all_done
                on:change=move |_| items.toggle_all()
            />
            <label for="toggle-all">"Mark all as complete"</label>
            <ul
                class="todo-list"
                node_ref=window.list()
                style:padding-top=move || window.pad_top()
                style:padding-bottom=move || window.pad_bottom()
            >
                <For
                    each=move || window.rendered()
                    key=|uid| *uid
                    children=move |uid| item_views().render(items.client.get_value(), uid)
                />
            </ul>
        </main>
    }
}

/// The count of tasks left, the filters and "clear completed".
#[component]
fn ListFooter(items: Items, filter: Signal<Filter>, list: Uid) -> impl IntoView {
    let remaining = move || items.remaining();
    view! {
        <footer class="footer" class:hidden=move || items.is_empty()>
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
                class:hidden=move || items.counts.get().done == 0
                on:click=move |_| items.clear_completed()
            >
                "Clear completed"
            </button>
        </footer>
    }
}

/// Under the list: the status badge, the inspector's toggle and the share link.
#[component]
fn BelowList(client: SyncClient, view: View) -> impl IntoView {
    let list = client.list();
    let show_inspector = RwSignal::new(false);
    let status = client.status().clone();
    view! {
        <div class="below">
            <StatusBadge status />
            <PresenceBar client=client.clone() />
            <UndoBar client=client.clone() />
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
            <Inspector client=client.clone() root=view.clone() />
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

/// The list's title, shown as the page's `h1`; double-click to rename. A refused
/// title (too long) keeps the editor open with the typed text and the reason.
#[component]
fn ListTitle(client: SyncClient) -> impl IntoView {
    let list = client.list();
    let title: RwSignal<Value> = client.field(list, TITLE_FIELD).into();
    let editing = RwSignal::new(false);
    let input = NodeRef::<Input>::new();
    let typed = TypedText::new(text_limit(List::KIND, TITLE_FIELD));
    let client = StoredValue::new(client);
    let shown = move || shown_title(&title.get());
    let stop = move || {
        editing.set(false);
        typed.clear();
    };
    let save = move || {
        let Some(input) = input.get_untracked().filter(|_| editing.get_untracked()) else {
            return;
        };
        let value = input.value().trim().to_string();
        let saved = client.with_value(|c| {
            c.ensure_root(&List::default());
            c.set(list, TITLE_FIELD, json!(value))
        });
        match saved {
            Ok(()) => stop(),
            Err(e) => typed.refuse(&e),
        }
    };
    let start = move |_| {
        editing.set(true);
        let current = title
            .get_untracked()
            .as_str()
            .unwrap_or_default()
            .to_string();
        typed.typed(&current);
        request_animation_frame(move || {
            if let Some(el) = input.get_untracked() {
                el.set_value(&current);
                let _ = el.focus();
            }
        });
    };
    view! {
        <h1
            class="list-title"
            class:editing=move || editing.get()
            title="Double-click to rename"
            on:dblclick=start
        >
            {shown}
        </h1>
        <input
            class="edit-title"
            class:hidden=move || !editing.get()
            aria-label="List title"
            node_ref=input
            on:input=move |ev| typed.typed(&event_target_value(&ev))
            on:keydown=move |ev| match ev.key().as_str() {
                "Enter" => save(),
                "Escape" => stop(),
                _ => {}
            }
            on:blur=move |_| save()
        />
        <Show when=move || editing.get()>{typed.hints()}</Show>
    }
}
