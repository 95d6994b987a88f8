//! The inspector: what the sync layer sees, live — the view tree (each view's UID,
//! its model and kind, its parent), the model tree of the replica, and the ops still
//! waiting for the server's acknowledgement. Toggled from the list's footer.

use leptos::prelude::*;

use super::{sync_client::SyncClient, view_tree::View};
use crate::model::Uid;

#[component]
pub fn Inspector(client: SyncClient, root: View) -> impl IntoView {
    let tracker = client.clone();
    let models = move || {
        tracker.track_all();
        model_tree(&tracker, tracker.list(), 0)
    };
    let pending = {
        let client = client.clone();
        move || {
            client.track_all();
            let ops = client.pending_ops();
            if ops.is_empty() {
                return view! { <li class="none">"none: every change is acknowledged"</li> }
                    .into_any();
            }
            ops.into_iter()
                .map(|op| {
                    let line = serde_json::to_string(&op).unwrap_or_default();
                    view! { <li class="pending-op">{line}</li> }
                })
                .collect_view()
                .into_any()
        }
    };
    view! {
        <aside class="inspector">
            <h2>"Views"</h2>
            <ul class="view-tree">{move || view_node(&root)}</ul>
            <h2>"Models"</h2>
            <ul class="model-tree">{models}</ul>
            <h2>"Pending ops"</h2>
            <ol class="pending-ops">{pending}</ol>
        </aside>
    }
}

/// One view and (recursively) its children.
fn view_node(view: &View) -> AnyView {
    let (model_uid, kind) = view
        .model()
        .map(|(uid, kind)| (uid.to_string(), kind))
        .unwrap_or_default();
    let parent = view
        .parent()
        .map(|p| p.uid().to_string())
        .unwrap_or_default();
    let children = view.children();
    let (model_attr, kind_attr) = (model_uid.clone(), kind.clone());
    view! {
        <li
            class="view-node"
            data-view-uid=view.uid().to_string()
            data-view-name=view.name()
            data-parent-uid=parent
            data-model-uid=model_attr
            data-kind=kind_attr
        >
            <span class="name">{view.name()}</span>
            " "
            <code>{view.uid().to_string()}</code>
            " → "
            <span class="kind">{kind}</span>
            " "
            <code>{model_uid}</code>
            <ul>{children.iter().map(view_node).collect_view()}</ul>
        </li>
    }
    .into_any()
}

/// One node of the replica and its live children.
fn model_tree(client: &SyncClient, uid: Uid, depth: usize) -> AnyView {
    let kind = client.kind(uid).unwrap_or_else(|| "list".to_string());
    let fields = client.with_replica(|r| {
        r.node(uid)
            .map(|n| {
                n.fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.value))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    });
    let children = client.with_replica(|r| r.children(uid));
    let nested = if depth < 8 {
        children
            .into_iter()
            .map(|c| model_tree(client, c, depth + 1))
            .collect_view()
            .into_any()
    } else {
        ().into_any()
    };
    let kind_attr = kind.clone();
    view! {
        <li class="model-node" data-model-uid=uid.to_string() data-kind=kind_attr>
            <span class="kind">{kind}</span>
            " "
            <code>{uid.to_string()}</code>
            " "
            <span class="fields">{fields}</span>
            <ul>{nested}</ul>
        </li>
    }
    .into_any()
}
