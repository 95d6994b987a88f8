//! The registry from a node's kind to the component that shows it, beside the
//! model registry that decodes it.
//!
//! The list view asks this registry for each child; it never names a kind. Adding a
//! kind is one line in the model registry and one here.

use std::{collections::HashMap, sync::OnceLock};

use leptos::prelude::*;

use super::{item, sync_client::SyncClient};
use crate::model::{
    kinds::{Section, Todo},
    registry, Model, Uid,
};

/// A component for one node: it gets the list's client and the node's UID.
pub type ItemView = fn(SyncClient, Uid) -> AnyView;

pub struct ItemViews {
    views: HashMap<&'static str, ItemView>,
}

impl ItemViews {
    pub fn new() -> Self {
        ItemViews {
            views: HashMap::new(),
        }
    }

    /// Shows kind `M` with `view`. `M` must be in the model registry: a view for a
    /// kind nobody can decode is a programming error, caught at first use.
    pub fn register<M: Model>(mut self, view: ItemView) -> Self {
        assert!(
            registry().kind(M::KIND).is_ok(),
            "kind {} has a view but is not in the model registry",
            M::KIND
        );
        self.views.insert(M::KIND, view);
        self
    }

    /// The view for the node `uid`, chosen by its kind.
    pub fn render(&self, client: SyncClient, uid: Uid) -> AnyView {
        let kind = client.kind(uid).unwrap_or_default();
        match self.views.get(kind.as_str()) {
            Some(view) => view(client, uid),
            None => item::unknown_item(kind, uid),
        }
    }
}

impl Default for ItemViews {
    fn default() -> Self {
        Self::new()
    }
}

/// The app's item views.
pub fn item_views() -> &'static ItemViews {
    static VIEWS: OnceLock<ItemViews> = OnceLock::new();
    VIEWS.get_or_init(|| {
        ItemViews::new()
            .register::<Todo>(item::todo_item)
            .register::<Section>(item::section_item)
    })
}
