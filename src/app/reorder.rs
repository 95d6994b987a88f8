//! Moving items within a list: by dragging an item's handle onto another item, or
//! with Alt+↑ / Alt+↓ on the focused item (one place among the items shown). Todos
//! and headings move the same way. A move is a synced `move` op with a fractional
//! order key (the model's [`crate::model::order`]): it writes only the moved item,
//! works offline, and concurrent moves converge (last writer wins per position).

use leptos::prelude::*;

use super::sync_client::SyncClient;
use crate::model::{Placement, Uid};

/// What the items need to move themselves: the client, the items shown in order,
/// and the item being dragged. Provided by the list as context.
#[derive(Clone, Copy)]
pub struct Reorder {
    client: StoredValue<SyncClient>,
    shown: Memo<Vec<Uid>>,
    dragging: RwSignal<Option<Uid>>,
}

impl Reorder {
    pub fn new(client: SyncClient, shown: Memo<Vec<Uid>>) -> Reorder {
        Reorder {
            client: StoredValue::new(client),
            shown,
            dragging: RwSignal::new(None),
        }
    }

    /// Moves `uid` one place up (`up`) or down among the items shown.
    pub fn step(&self, uid: Uid, up: bool) {
        let shown = self.shown.get_untracked();
        let Some(at) = shown.iter().position(|u| *u == uid) else {
            return;
        };
        let placement = if up {
            at.checked_sub(1).map(|i| Placement::Before(shown[i]))
        } else {
            shown.get(at + 1).map(|next| Placement::After(*next))
        };
        if let Some(placement) = placement {
            self.move_to(uid, placement);
        }
    }

    /// Drops the dragged item on `target`: after it when dragged down, before it
    /// when dragged up.
    pub fn drop_on(&self, target: Uid) {
        let Some(dragged) = self.dragging.get_untracked() else {
            return;
        };
        self.dragging.set(None);
        let shown = self.shown.get_untracked();
        let index = |uid| shown.iter().position(|u| *u == uid);
        let (Some(from), Some(to)) = (index(dragged), index(target)) else {
            return;
        };
        match from.cmp(&to) {
            std::cmp::Ordering::Less => self.move_to(dragged, Placement::After(target)),
            std::cmp::Ordering::Greater => self.move_to(dragged, Placement::Before(target)),
            std::cmp::Ordering::Equal => {}
        }
    }

    fn move_to(&self, uid: Uid, at: Placement) {
        self.client.with_value(|c| c.move_to(uid, c.list(), at));
    }

    pub fn start_drag(&self, uid: Uid) {
        self.dragging.set(Some(uid));
    }

    pub fn end_drag(&self) {
        self.dragging.set(None);
    }

    pub fn is_dragged(&self, uid: Uid) -> bool {
        self.dragging.get() == Some(uid)
    }
}

/// The handlers an item's `li` needs: Alt+↑/↓, and being a drop target.
pub fn on_item_key(uid: Uid, ev: &leptos::ev::KeyboardEvent) {
    if !ev.alt_key() || ev.ctrl_key() || ev.meta_key() {
        return;
    }
    let up = match ev.key().as_str() {
        "ArrowUp" => true,
        "ArrowDown" => false,
        _ => return,
    };
    #[cfg(feature = "hydrate")]
    if super::undo::in_text_field() {
        return;
    }
    let Some(reorder) = use_context::<Reorder>() else {
        return;
    };
    ev.prevent_default();
    keeping_focus(|| reorder.step(uid, up));
}

/// The drag handle of an item, and the drop handling of its `li`.
#[component]
pub fn DragHandle(uid: Uid) -> impl IntoView {
    let reorder = use_context::<Reorder>();
    view! {
        <button
            class="handle"
            draggable="true"
            aria-label="Move (drag, or Alt+\u{2191} / Alt+\u{2193})"
            title="Drag to move; or Alt+\u{2191} / Alt+\u{2193}"
            on:dragstart=move |ev| {
                mark_drag(&ev, uid);
                if let Some(r) = reorder {
                    r.start_drag(uid);
                }
            }
            on:dragend=move |_| {
                if let Some(r) = reorder {
                    r.end_drag();
                }
            }
        >
            "\u{2630}"
        </button>
    }
}

/// Drop-target handlers for an item's `li`: `(dragover, drop)`.
pub fn drop_target(
    uid: Uid,
) -> (
    impl Fn(leptos::ev::DragEvent) + Copy,
    impl Fn(leptos::ev::DragEvent) + Copy,
) {
    let reorder = use_context::<Reorder>();
    let over = move |ev: leptos::ev::DragEvent| {
        if reorder.is_some_and(|r| r.dragging.get_untracked().is_some()) {
            ev.prevent_default(); // allows the drop
        }
    };
    let drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        if let Some(r) = reorder {
            r.drop_on(uid);
        }
    };
    (over, drop)
}

/// Puts the item on the drag (some browsers drag nothing without data) as a move.
/// Through `Reflect`, which spares web-sys's `DataTransfer` binding.
fn mark_drag(ev: &leptos::ev::DragEvent, uid: Uid) {
    #[cfg(feature = "hydrate")]
    {
        use js_sys::{Function, Reflect};
        use wasm_bindgen::{JsCast, JsValue};
        let Ok(transfer) = Reflect::get(ev, &JsValue::from_str("dataTransfer")) else {
            return;
        };
        let set_data = Reflect::get(&transfer, &JsValue::from_str("setData"))
            .ok()
            .and_then(|f| f.dyn_into::<Function>().ok());
        if let Some(set_data) = set_data {
            let _ = set_data.call2(&transfer, &"text/plain".into(), &uid.to_string().into());
        }
        let _ = Reflect::set(&transfer, &"effectAllowed".into(), &"move".into());
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (ev, uid);
}

/// Runs `f` (which moves an item) and gives the focus back to what had it: the
/// browser drops the focus of an element that is moved in the document, and a key
/// pressed meanwhile would go nowhere. The list re-renders in tasks queued by the
/// move, so a task queued after them finds the element in its new place; the next
/// animation frame checks again.
fn keeping_focus(f: impl FnOnce()) {
    #[cfg(feature = "hydrate")]
    let focused = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.active_element());
    f();
    #[cfg(feature = "hydrate")]
    if let Some(el) = focused {
        let again = el.clone();
        leptos::task::spawn_local(async move { refocus(&el) });
        request_animation_frame(move || refocus(&again));
    }
}

/// Focuses `el` unless it has the focus.
#[cfg(feature = "hydrate")]
fn refocus(el: &web_sys::Element) {
    use wasm_bindgen::JsCast;
    let active = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.active_element());
    if active.as_ref() != Some(el) {
        if let Some(el) = el.dyn_ref::<web_sys::HtmlElement>() {
            let _ = el.focus();
        }
    }
}
