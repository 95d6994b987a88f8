//! Other tabs of the same list, in this browser: every local write is announced on a
//! BroadcastChannel and merged by the others at once — also while offline, since it
//! never leaves the browser. The op stays in its writer's outbox; the others only
//! apply it (ops are idempotent, so seeing it again from the server changes nothing).
//!
//! Which tabs are alive: each tab holds a Web Lock named after it for as long as it
//! lives, and the browser releases it the moment the tab closes or crashes or the
//! browser quits. So the outbox of a tab that is gone — even one closed a second
//! before a browser restart — is adopted as soon as the next tab starts. Browsers
//! without Web Locks fall back on heartbeats (`mirror::is_alive`), which take up to
//! `mirror::ALIVE_MS` to go stale.

use std::collections::HashSet;

use js_sys::{Array, Function, Promise, Reflect};
use wasm_bindgen::{prelude::Closure, JsCast, JsValue};
use web_sys::{BroadcastChannel, MessageEvent};

use super::{schedule_save, with_handles, ChannelHandles};
use crate::{
    app::sync_client::SyncClient,
    model::{ClientId, Op},
};

const LIFE_LOCK_PREFIX: &str = "tether:tab:";

/// The browser's `navigator.locks`, if it has Web Locks.
fn lock_manager() -> Option<JsValue> {
    let navigator = web_sys::window()?.navigator();
    Reflect::get(&navigator, &"locks".into())
        .ok()
        .filter(|locks| !locks.is_undefined() && !locks.is_null())
}

fn method(target: &JsValue, name: &str) -> Option<Function> {
    Reflect::get(target, &name.into()).ok()?.dyn_into().ok()
}

/// Holds tab `me`'s life lock until the page goes away (once per page).
pub fn hold_life_lock(me: ClientId) {
    thread_local!(static HELD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    if HELD.with(|held| held.replace(true)) {
        return;
    }
    let Some(locks) = lock_manager() else { return };
    let Some(request) = method(&locks, "request") else {
        return;
    };
    // Resolves never: the lock is held for the page's life.
    let hold = Closure::once_into_js(|| JsValue::from(Promise::new(&mut |_, _| {})));
    let name = JsValue::from_str(&format!("{LIFE_LOCK_PREFIX}{me}"));
    let _ = request.call2(&locks, &name, &hold);
}

/// The tabs of this browser alive now, by their life locks (held, or asked for by
/// a tab just starting); `None` where the browser has no Web Locks.
pub async fn live_tabs() -> Option<HashSet<ClientId>> {
    let locks = lock_manager()?;
    let query = method(&locks, "query")?;
    let snapshot: Promise = query.call0(&locks).ok()?.dyn_into().ok()?;
    let snapshot = wasm_bindgen_futures::JsFuture::from(snapshot).await.ok()?;
    let mut live = HashSet::new();
    for part in ["held", "pending"] {
        let Some(locks) = Reflect::get(&snapshot, &part.into())
            .ok()
            .and_then(|l| l.dyn_into::<Array>().ok())
        else {
            continue;
        };
        live.extend(
            locks
                .iter()
                .filter_map(|lock| Reflect::get(&lock, &"name".into()).ok()?.as_string())
                .filter_map(|name| ClientId::parse(name.strip_prefix(LIFE_LOCK_PREFIX)?).ok()),
        );
    }
    Some(live)
}

fn channel_name(client: &SyncClient) -> String {
    format!("tether:list:{}", client.list())
}

/// Starts listening to the other tabs of this list.
pub fn join(client: &SyncClient) {
    let Ok(channel) = BroadcastChannel::new(&channel_name(client)) else {
        return; // Not supported: tabs then meet through the server only.
    };
    let on_message = {
        let client = client.clone();
        Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let Some(text) = event.data().as_string() else {
                return;
            };
            if let Ok(op) = serde_json::from_str::<Op>(&text) {
                client.apply_peer_op(&op);
                schedule_save(&client);
            }
        })
    };
    channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    with_handles(client.list(), |h| {
        h.channel = Some(ChannelHandles {
            channel,
            _on_message: on_message,
        })
    });
}

/// Tells the other tabs about a write made here.
pub fn announce(client: &SyncClient, op: &Op) {
    let Ok(json) = serde_json::to_string(op) else {
        return;
    };
    with_handles(client.list(), |h| {
        if let Some(handles) = &h.channel {
            let _ = handles.channel.post_message(&json.into());
        }
    });
}
