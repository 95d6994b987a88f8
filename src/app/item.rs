//! The components that show one node of a list: a todo (TodoMVC's item) and a section
//! heading. Each is a view in the view tree, reads only its own fields' signals (so
//! it re-renders only when they change), and keeps "being edited" as local-only
//! state that never leaves this tab. Each has a drag handle and takes Alt+↑/↓
//! ([`super::reorder`]) and shows its "your change was replaced" notices
//! ([`super::replaced`]).

use leptos::{html::Input, prelude::*};
use serde_json::json;

use super::{
    item_views::{text_limit, DONE_FIELD, TITLE_FIELD},
    presence::EditorMarker,
    reorder::{drop_target, on_item_key, DragHandle},
    replaced::ReplacedNotices,
    sync_client::SyncClient,
    text_field::TypedText,
    view_tree::use_view,
};
use crate::model::{Uid, Value};

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

/// Editing a title in place: double-click to start; Enter or blur saves (trimmed;
/// empty deletes the node); Escape cancels, and the blur that follows it does not save.
/// A title the model refuses (too long) stays in the field with the reason under it.
#[derive(Clone, Copy)]
struct TitleEditor {
    uid: Uid,
    client: StoredValue<SyncClient>,
    title: RwSignal<Value>,
    editing: RwSignal<Value>,
    input: NodeRef<Input>,
    typed: TypedText,
}

impl TitleEditor {
    fn new(client: &SyncClient, uid: Uid) -> TitleEditor {
        let kind = client.kind(uid).unwrap_or_default();
        TitleEditor {
            uid,
            client: StoredValue::new(client.clone()),
            title: client.field(uid, TITLE_FIELD).into(),
            editing: client.local(uid, "editing").into(),
            input: NodeRef::new(),
            typed: TypedText::new(text_limit(&kind, TITLE_FIELD)),
        }
    }

    fn is_editing(&self) -> bool {
        self.editing.get() == Value::Bool(true)
    }

    fn start(&self) {
        self.client.with_value(|c| {
            c.set_local(self.uid, "editing", json!(true));
            c.set_editing(Some(self.uid));
        });
        let input = self.input;
        let title = text(&self.title.get_untracked());
        self.typed.typed(&title);
        request_animation_frame(move || {
            if let Some(input) = input.get_untracked() {
                input.set_value(&title);
                let _ = input.focus();
            }
        });
    }

    fn stop(&self) {
        self.typed.clear();
        self.client.with_value(|c| {
            c.set_local(self.uid, "editing", Value::Null);
            c.set_editing(None);
        });
    }

    fn save(&self) {
        if self.editing.get_untracked() != Value::Bool(true) {
            return; // already saved or cancelled: this is the blur that follows
        }
        let Some(input) = self.input.get_untracked() else {
            return;
        };
        let value = input.value().trim().to_string();
        if value.is_empty() {
            self.stop();
            self.client.with_value(|c| c.delete(self.uid));
            return;
        }
        match self
            .client
            .with_value(|c| c.set(self.uid, TITLE_FIELD, json!(value)))
        {
            Ok(()) => self.stop(),
            Err(e) => self.typed.refuse(&e),
        }
    }

    fn cancel(&self) {
        if let Some(input) = self.input.get_untracked() {
            input.set_value(&text(&self.title.get_untracked()));
        }
        self.stop();
    }

    /// The `input.edit` field, shown (by CSS) while the item is being edited, with
    /// the title's limit and any refusal under it.
    fn field(self) -> impl IntoView {
        let typed = self.typed;
        view! {
            <input
                class="edit"
                node_ref=self.input
                value=move || text(&self.title.get())
                prop:value=move || text(&self.title.get())
                on:input=move |ev| typed.typed(&event_target_value(&ev))
                on:keydown=move |ev| self.on_key(&ev)
                on:blur=move |_| self.save()
            />
            <Show when=move || self.is_editing()>{typed.hints()}</Show>
        }
    }

    fn on_key(&self, ev: &leptos::ev::KeyboardEvent) {
        match ev.key().as_str() {
            "Enter" => self.save(),
            "Escape" => self.cancel(),
            _ => {}
        }
    }
}

/// A todo: toggle, title, destroy button, and the edit field.
#[component]
pub fn TodoItem(client: SyncClient, uid: Uid) -> impl IntoView {
    let view = use_view("todo", Some((uid, "todo".into())));
    let completed: RwSignal<Value> = client.field(uid, DONE_FIELD).into();
    let done = move || completed.get() == Value::Bool(true);
    let editor = TitleEditor::new(&client, uid);
    let notices = client.clone();
    let client = StoredValue::new(client);
    let (drag_over, drop) = drop_target(uid);
    view! {
        <li
            class="todo"
            class:completed=done
            class:editing=move || editor.is_editing()
            data-uid=uid.to_string()
            data-view=view.dom_uid()
            tabindex="0"
            on:keydown=move |ev| on_item_key(uid, &ev)
            on:dragover=drag_over
            on:drop=drop
        >
            <div class="view">
                <input
                    class="toggle"
                    type="checkbox"
                    // The attribute is for the server's HTML (readable without
                    // JavaScript); the property is what the browser shows after.
                    checked=done
                    prop:checked=done
                    on:change=move |ev| {
                        let checked = event_target_checked(&ev);
                        let _ = client.with_value(|c| c.set(uid, DONE_FIELD, json!(checked)));
                    }
                />
                <label on:dblclick=move |_| editor.start()>
                    {move || text(&editor.title.get())}
                </label>
                <DragHandle uid />
                <button
                    class="destroy"
                    aria-label="Delete"
                    on:click=move |_| client.with_value(|c| c.delete(uid))
                ></button>
                <EditorMarker client=client.get_value() uid />
            </div>
            {editor.field()}
            <ReplacedNotices client=notices uid />
        </li>
    }
}

/// A section heading inside a list: not a todo, not counted, editable the same way.
#[component]
pub fn SectionItem(client: SyncClient, uid: Uid) -> impl IntoView {
    let view = use_view("section", Some((uid, "section".into())));
    let editor = TitleEditor::new(&client, uid);
    let notices = client.clone();
    let client = StoredValue::new(client);
    let (drag_over, drop) = drop_target(uid);
    view! {
        <li
            class="section"
            class:editing=move || editor.is_editing()
            data-uid=uid.to_string()
            data-view=view.dom_uid()
            tabindex="0"
            on:keydown=move |ev| on_item_key(uid, &ev)
            on:dragover=drag_over
            on:drop=drop
        >
            <div class="view">
                <h2 on:dblclick=move |_| editor.start()>{move || text(&editor.title.get())}</h2>
                <DragHandle uid />
                <button
                    class="destroy"
                    aria-label="Delete heading"
                    on:click=move |_| client.with_value(|c| c.delete(uid))
                ></button>
                <EditorMarker client=client.get_value() uid />
            </div>
            {editor.field()}
            <ReplacedNotices client=notices uid />
        </li>
    }
}

pub fn todo_item(client: SyncClient, uid: Uid) -> AnyView {
    view! { <TodoItem client uid /> }.into_any()
}

pub fn section_item(client: SyncClient, uid: Uid) -> AnyView {
    view! { <SectionItem client uid /> }.into_any()
}

/// A node whose kind this version of the app cannot show (e.g. written by a newer one).
pub fn unknown_item(kind: String, uid: Uid) -> AnyView {
    view! {
        <li class="unknown" data-uid=uid.to_string()>
            "An item of kind \u{201c}" {kind} "\u{201d} this version cannot show."
        </li>
    }
    .into_any()
}
