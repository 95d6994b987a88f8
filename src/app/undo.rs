//! Undo and redo in the list view: this tab's stacks ([`UndoState`], over the
//! model's [`History`]), the two buttons, and the keys (Ctrl+Z, Ctrl+Shift+Z and
//! Ctrl+Y; Cmd on macOS) when the focus is not in a text field.
//!
//! Every synced write the view makes is recorded by [`SyncClient`] as one step;
//! [`SyncClient::as_one_action`] groups several ("clear completed", "toggle all")
//! into one entry. Undo and redo are ordinary synced writes: they go through the
//! outbox, work offline, and never overwrite someone else's later change (the
//! model skips such a step; the note under the buttons says which and why).

use std::sync::Mutex;

use leptos::prelude::*;

use super::item_views::TITLE_FIELD;
use super::sync_client::{lock, now_ms, SyncClient};
use crate::model::{History, Outcome, Replica, Skip, Step};

/// The stacks of one list in this tab, and what the buttons show.
#[derive(Default)]
pub struct UndoState {
    history: Mutex<History>,
    /// The steps of the action being recorded by [`SyncClient::as_one_action`].
    group: Mutex<Option<Vec<Step>>>,
    pub can_undo: ArcRwSignal<bool>,
    pub can_redo: ArcRwSignal<bool>,
    /// What the last undo or redo could not do, for the person who asked.
    pub note: ArcRwSignal<Option<String>>,
}

impl UndoState {
    /// Records one write's step: part of the action being grouped, or an action.
    pub fn record(&self, step: Step) {
        if let Some(group) = lock(&self.group).as_mut() {
            group.push(step);
            return;
        }
        lock(&self.history).record(vec![step]);
        self.refresh();
    }

    /// Shows the stacks' state; a note of an earlier undo goes once anything else
    /// happened.
    fn refresh(&self) {
        if self.note.get_untracked().is_some() {
            self.note.set(None);
        }
        let history = lock(&self.history);
        let (undo, redo) = (history.can_undo(), history.can_redo());
        drop(history);
        if self.can_undo.get_untracked() != undo {
            self.can_undo.set(undo);
        }
        if self.can_redo.get_untracked() != redo {
            self.can_redo.set(redo);
        }
    }
}

/// Undo or redo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Undo,
    Redo,
}

impl SyncClient {
    /// Runs `f`, recording every write it makes as one action (undone at once).
    pub fn as_one_action(&self, f: impl FnOnce()) {
        let state = self.undo_state();
        *lock(&state.group) = Some(Vec::new());
        self.batch(f);
        let steps = lock(&state.group).take().unwrap_or_default();
        lock(&state.history).record(steps);
        state.refresh();
    }

    /// Takes back this tab's last action.
    pub fn undo(&self) {
        self.replay(Direction::Undo);
    }

    /// Writes again the last action taken back.
    pub fn redo(&self) {
        self.replay(Direction::Redo);
    }

    fn replay(&self, direction: Direction) {
        let now = now_ms();
        let state = self.undo_state();
        let outcome = self.update_replica(|replica: &mut Replica| {
            let mut history = lock(&state.history);
            match direction {
                Direction::Undo => history.undo(replica, now),
                Direction::Redo => history.redo(replica, now),
            }
        });
        state.refresh();
        let Some(Outcome { ops, skipped }) = outcome else {
            return;
        };
        self.batch(|| ops.into_iter().for_each(|op| self.after_local_write(op)));
        let note = skipped.first().map(|skip| self.skip_note(direction, skip));
        state.note.set(note);
    }

    /// Why a step was left as it is, in words.
    fn skip_note(&self, direction: Direction, skip: &Skip) -> String {
        let verb = match direction {
            Direction::Undo => "Not undone",
            Direction::Redo => "Not redone",
        };
        let title = self.with_replica(|r| {
            r.node(skip.node())
                .and_then(|n| n.field(TITLE_FIELD))
                .and_then(|t| t.as_str().map(str::to_string))
                .unwrap_or_default()
        });
        match skip {
            Skip::ChangedByOthers {
                field: Some(field), ..
            } => format!(
                "{verb}: someone else changed the {} of \u{201c}{title}\u{201d} since.",
                field_name(field)
            ),
            Skip::ChangedByOthers { field: None, .. } => {
                format!("{verb}: someone else changed \u{201c}{title}\u{201d} since.")
            }
            Skip::Gone { .. } => format!("{verb}: \u{201c}{title}\u{201d} is gone."),
            Skip::Refused { error, .. } => format!("{verb}: {error}."),
        }
    }
}

/// A field as people call it.
pub fn field_name(field: &str) -> &str {
    match field {
        "completed" => "done mark",
        other => other,
    }
}

/// True if the keyboard event is undo or redo, and which.
fn shortcut(ev: &leptos::ev::KeyboardEvent, mac: bool) -> Option<Direction> {
    let command = if mac { ev.meta_key() } else { ev.ctrl_key() };
    if !command || ev.alt_key() {
        return None;
    }
    match (ev.key().to_lowercase().as_str(), ev.shift_key()) {
        ("z", false) => Some(Direction::Undo),
        ("z", true) | ("y", false) => Some(Direction::Redo),
        _ => None,
    }
}

/// The undo and redo buttons, the note of the last one, and the keys (installed
/// in the browser only, removed with the view).
#[component]
pub fn UndoBar(client: SyncClient) -> impl IntoView {
    let state = client.undo_state();
    let (can_undo, can_redo, note) = (
        state.can_undo.clone(),
        state.can_redo.clone(),
        state.note.clone(),
    );
    listen_for_keys(client.clone());
    let client = StoredValue::new(client);
    let shown_note = note.clone();
    view! {
        <span class="undo-bar">
            <button
                class="undo"
                title="Undo (Ctrl+Z)"
                disabled=move || !can_undo.get()
                on:click=move |_| client.with_value(SyncClient::undo)
            >
                "\u{21b6} Undo"
            </button>
            <button
                class="redo"
                title="Redo (Ctrl+Shift+Z)"
                disabled=move || !can_redo.get()
                on:click=move |_| client.with_value(SyncClient::redo)
            >
                "\u{21b7} Redo"
            </button>
            <Show when=move || shown_note.get().is_some()>
                <span class="undo-note" role="status">{
                    let note = note.clone();
                    move || note.get().unwrap_or_default()
                }</span>
            </Show>
        </span>
    }
}

fn listen_for_keys(client: SyncClient) {
    #[cfg(feature = "hydrate")]
    {
        let mac = is_mac();
        let handle = window_event_listener(leptos::ev::keydown, move |ev| {
            if in_text_field() {
                return;
            }
            if let Some(direction) = shortcut(&ev, mac) {
                ev.prevent_default();
                client.replay(direction);
            }
        });
        on_cleanup(move || handle.remove());
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (client, shortcut);
}

/// True on macOS (and iOS), where the command key is Cmd.
#[cfg(feature = "hydrate")]
fn is_mac() -> bool {
    web_sys::window()
        .and_then(|w| w.navigator().platform().ok())
        .is_some_and(|p| p.starts_with("Mac") || p.starts_with("iP"))
}

/// True if the focus is in a field that takes text (its own undo applies there).
#[cfg(feature = "hydrate")]
pub fn in_text_field() -> bool {
    let Some(el) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.active_element())
    else {
        return false;
    };
    match el.tag_name().to_ascii_lowercase().as_str() {
        "textarea" | "select" => true,
        "input" => {
            let kind = el.get_attribute("type").unwrap_or_default();
            !matches!(
                kind.to_ascii_lowercase().as_str(),
                "checkbox" | "radio" | "button" | "submit" | "reset" | "range" | "color"
            )
        }
        _ => el
            .get_attribute("contenteditable")
            .is_some_and(|v| v != "false"),
    }
}
