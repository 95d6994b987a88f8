//! Other tabs of the same list, in this browser: every local write is announced on a
//! BroadcastChannel and merged by the others at once — also while offline, since it
//! never leaves the browser. The op stays in its writer's outbox; the others only
//! apply it (ops are idempotent, so seeing it again from the server changes nothing).

use wasm_bindgen::{prelude::Closure, JsCast};
use web_sys::{BroadcastChannel, MessageEvent};

use super::{schedule_save, with_handles, ChannelHandles};
use crate::{app::sync_client::SyncClient, model::Op};

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
