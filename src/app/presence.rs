//! Who else has the list open: the presence bar (how many others, a badge with
//! initials per person, this browser's own name, changeable) and the marker on an
//! item someone else is editing.
//!
//! The state is a few signals on the [`SyncClient`] ([`PresenceState`]); the
//! browser fills them from the live socket and says this tab's presence
//! (`browser::presence`). On the server, and until the socket says otherwise, nobody
//! else is here and the name is empty, so the first frame is the same on both sides.

use leptos::{ev::KeyboardEvent, html::Input, prelude::*};

use super::sync_client::SyncClient;
use crate::model::{
    presence::{initials, Peer, Presence},
    Uid,
};

/// What this tab knows of the list's presence.
#[derive(Clone)]
pub struct PresenceState {
    /// The others following the list now (not this tab), as the server last said.
    pub others: ArcRwSignal<Vec<Peer>>,
    /// This browser's display name ("" until the browser has read it).
    pub name: ArcRwSignal<String>,
    /// The node this tab is editing, if any.
    pub editing: ArcRwSignal<Option<Uid>>,
}

impl Default for PresenceState {
    fn default() -> PresenceState {
        PresenceState {
            others: ArcRwSignal::new(Vec::new()),
            name: ArcRwSignal::new(String::new()),
            editing: ArcRwSignal::new(None),
        }
    }
}

impl PresenceState {
    /// What this tab says of itself, once it has a name.
    pub fn presence(&self) -> Option<Presence> {
        let name = self.name.get_untracked();
        (!name.is_empty()).then(|| Presence::of(name, self.editing.get_untracked()))
    }
}

/// "Only you here", "1 other here", "3 others here".
fn others_here(others: usize) -> String {
    match others {
        0 => "Only you here".to_string(),
        1 => "1 other here".to_string(),
        n => format!("{n} others here"),
    }
}

/// The presence bar: how many others, their badges, and "You: <name>" (click to
/// change it).
#[component]
pub fn PresenceBar(client: SyncClient) -> impl IntoView {
    let state = client.presence().clone();
    let others: RwSignal<Vec<Peer>> = state.others.into();
    let name: RwSignal<String> = state.name.into();
    let renaming = RwSignal::new(false);
    let client = StoredValue::new(client);
    view! {
        <div class="presence" aria-label="Who is here">
            <span class="presence-count">{move || others_here(others.get().len())}</span>
            <For
                each=move || others.get()
                key=|peer| (peer.id, peer.name.clone())
                children=move |peer| {
                    view! {
                        <span
                            class="peer"
                            title=peer.name.clone()
                            data-name=peer.name.clone()
                            style=format!("background-color: {}", peer.color)
                        >
                            {initials(&peer.name)}
                        </span>
                    }
                }
            />
            <span class="presence-me">
                <Show
                    when=move || renaming.get()
                    fallback=move || {
                        view! {
                            <button
                                class="rename"
                                title="Change the name others see"
                                on:click=move |_| renaming.set(true)
                            >
                                {move || format!("You: {}", name.get())}
                            </button>
                        }
                    }
                >
                    <NameField name renaming client />
                </Show>
            </span>
        </div>
    }
}

/// The field that changes this browser's name: Enter keeps a valid name, Escape or
/// leaving the field keeps the old one.
#[component]
fn NameField(
    name: RwSignal<String>,
    renaming: RwSignal<bool>,
    client: StoredValue<SyncClient>,
) -> impl IntoView {
    let input = NodeRef::<Input>::new();
    Effect::new(move |_| {
        if let Some(field) = input.get() {
            let _ = field.focus();
            field.select();
        }
    });
    let on_key = move |ev: KeyboardEvent| match ev.key().as_str() {
        "Enter" => {
            let Some(field) = input.get_untracked() else {
                return;
            };
            let typed = field.value().trim().to_string();
            if Presence::of(typed.clone(), None).check().is_ok() {
                client.with_value(|c| c.set_display_name(typed));
                renaming.set(false);
            }
        }
        "Escape" => renaming.set(false),
        _ => {}
    };
    view! {
        <input
            class="rename-field"
            aria-label="Your name"
            maxlength=crate::model::presence::MAX_NAME_CHARS.to_string()
            prop:value=move || name.get_untracked()
            node_ref=input
            on:keydown=on_key
            on:blur=move |_| renaming.set(false)
        />
    }
}

/// On an item: who else is editing it, in their colour.
#[component]
pub fn EditorMarker(client: SyncClient, uid: Uid) -> impl IntoView {
    let others: RwSignal<Vec<Peer>> = client.presence().others.clone().into();
    let editors = move || {
        others
            .get()
            .into_iter()
            .filter(|peer| peer.editing == Some(uid))
            .collect::<Vec<_>>()
    };
    view! {
        <For
            each=editors
            key=|peer| peer.id
            children=move |peer| {
                view! {
                    <span class="editor-marker" style=format!("background-color: {}", peer.color)>
                        {format!("{} is editing", peer.name)}
                    </span>
                }
            }
        />
    }
}
