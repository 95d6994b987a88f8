//! "Your change was replaced": when a concurrent write of someone else wins over a
//! value this tab wrote in the last minute (the model tells which,
//! [`crate::model::replaced`]), the item shows a short notice with Restore (writes
//! our value again, as a new change) and Dismiss. A notice goes by itself after
//! [`NOTICE_SHOWN_MS`].

use std::sync::atomic::{AtomicU64, Ordering};

use leptos::prelude::*;
use serde_json::Value;

use super::sync_client::SyncClient;
use super::undo::field_name;
use crate::model::{ClientId, Replaced, Uid};

/// How long a notice stays unless dismissed.
pub const NOTICE_SHOWN_MS: u64 = 30_000;

/// One notice on an item.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub id: u64,
    pub replaced: Replaced,
}

/// The notices of one list in this tab.
#[derive(Default)]
pub struct Notices {
    pub shown: ArcRwSignal<Vec<Notice>>,
    next_id: AtomicU64,
}

impl Notices {
    /// Adds a notice for each replacement of a recent write of ours; a newer notice
    /// for the same field takes the place of the older.
    pub fn add(&self, replaced: Vec<Replaced>, now_ms: u64) {
        let recent: Vec<Replaced> = replaced
            .into_iter()
            .filter(|r| r.is_recent(now_ms))
            .collect();
        if recent.is_empty() {
            return;
        }
        let mut ids = Vec::new();
        self.shown.update(|shown| {
            for replaced in recent {
                shown.retain(|n| {
                    (n.replaced.node, &n.replaced.field) != (replaced.node, &replaced.field)
                });
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                ids.push(id);
                shown.push(Notice { id, replaced });
            }
        });
        for id in ids {
            self.expire_later(id);
        }
    }

    /// Removes a notice (dismissed, restored or expired).
    pub fn remove(&self, id: u64) {
        if self.shown.with_untracked(|s| s.iter().any(|n| n.id == id)) {
            self.shown.update(|s| s.retain(|n| n.id != id));
        }
    }

    fn expire_later(&self, id: u64) {
        #[cfg(feature = "hydrate")]
        {
            let shown = self.shown.clone();
            set_timeout(
                move || {
                    if shown.with_untracked(|s| s.iter().any(|n| n.id == id)) {
                        shown.update(|s| s.retain(|n| n.id != id));
                    }
                },
                std::time::Duration::from_millis(NOTICE_SHOWN_MS),
            );
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = id;
    }
}

/// Who wrote a value, as people should read it: the display name of the person
/// present on the list whose stamps carry `writer` (presence), or "someone else" for
/// a writer who is not here (gone, or another tab that never said who it is).
/// Tracked: a view using it follows presence.
pub fn writer_name(client: &SyncClient, writer: ClientId) -> String {
    client
        .presence()
        .others
        .get()
        .into_iter()
        .find(|peer| peer.client == Some(writer))
        .map_or_else(|| "someone else".to_string(), |peer| peer.name)
}

/// A field's value as shown in a notice.
fn shown_value(field: &str, value: &Value) -> String {
    match (field, value) {
        ("completed", Value::Bool(true)) => "done".to_string(),
        ("completed", Value::Bool(false)) => "not done".to_string(),
        (_, Value::String(text)) => format!("\u{2018}{text}\u{2019}"),
        (_, other) => other.to_string(),
    }
}

/// The notice's sentence, e.g. "Your title 'Buy oat milk' was replaced by someone
/// else's 'Buy milk'".
pub fn notice_text(replaced: &Replaced, writer: &str) -> String {
    let field = &replaced.field;
    format!(
        "Your {} {} was replaced by {}\u{2019}s {}",
        field_name(field),
        shown_value(field, &replaced.ours),
        writer,
        shown_value(field, &replaced.theirs),
    )
}

/// The notices of one item, with Restore and Dismiss.
#[component]
pub fn ReplacedNotices(client: SyncClient, uid: Uid) -> impl IntoView {
    let shown = client.notices().shown.clone();
    let mine = move || {
        shown
            .get()
            .into_iter()
            .filter(|n| n.replaced.node == uid)
            .collect::<Vec<_>>()
    };
    let client = StoredValue::new(client);
    view! {
        <For each=mine key=|n| n.id let:notice>
            {
                let id = notice.id;
                let r = notice.replaced.clone();
                let restore = move |_| {
                    client.with_value(|c| {
                        let _ = c.set(r.node, &r.field, r.ours.clone());
                        c.notices().remove(id);
                    })
                };
                let dismiss = move |_| client.with_value(|c| c.notices().remove(id));
                // Follows presence: the name shows once the writer's presence is here.
                let replaced = notice.replaced.clone();
                let text = move || {
                    let writer = client.with_value(|c| writer_name(c, replaced.by()));
                    notice_text(&replaced, &writer)
                };
                view! {
                    <p class="replaced" role="status">
                        <span class="replaced-text">{text}</span>
                        " \u{2014} "
                        <button class="restore" on:click=restore>"Restore"</button>
                        <button class="dismiss" aria-label="Dismiss" on:click=dismiss>"\u{00d7}"</button>
                    </p>
                }
            }
        </For>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Stamp;
    use serde_json::json;

    #[test]
    fn the_sentence_names_both_values() {
        let stamp = Stamp {
            wall_ms: 1,
            counter: 0,
            client: ClientId::new(),
        };
        let r = Replaced {
            node: Uid::new(),
            field: "title".into(),
            ours: json!("Buy oat milk"),
            our_stamp: stamp,
            theirs: json!("Buy milk"),
            their_stamp: stamp,
        };
        assert_eq!(
            notice_text(&r, "Ada"),
            "Your title \u{2018}Buy oat milk\u{2019} was replaced by Ada\u{2019}s \u{2018}Buy milk\u{2019}"
        );
    }
}
