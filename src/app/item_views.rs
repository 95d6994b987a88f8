//! The registry from a node's kind to the component that shows it, beside the
//! model registry that decodes it.
//!
//! The list view asks this registry for each child, for the ways to add an item, and
//! for which children are tasks; it never names a kind. Adding a kind is one type in
//! `src/model/kinds/`, one component, and one line in the model registry and one here
//! (docs/KINDS.md walks through it with `section`).

use std::{collections::HashMap, sync::OnceLock};

use leptos::prelude::*;

use super::{item, sync_client::SyncClient};
use crate::model::{
    kinds::{Section, Todo},
    registry, FieldType, Model, ModelError, Placement, Uid,
};

/// A component for one node: it gets the list's client and the node's UID.
pub type ItemView = fn(SyncClient, Uid) -> AnyView;

/// The field that makes a kind a task (TodoMVC's done flag): a kind with this bool
/// field is counted in "items left", filtered by Active and Completed, set by
/// "toggle all" and removed by "clear completed". Other kinds (a section heading)
/// show under every filter and are never counted.
pub const DONE_FIELD: &str = "completed";

/// The field an item is created with from the text typed in the list's header.
pub const TITLE_FIELD: &str = "title";

/// True if nodes of `kind` are tasks (see [`DONE_FIELD`]).
pub fn is_task(kind: &str) -> bool {
    registry()
        .kind(kind)
        .ok()
        .and_then(|info| info.field(DONE_FIELD))
        .is_some_and(|spec| spec.ty == FieldType::Bool)
}

/// The most UTF-8 bytes the text field `field` of `kind` takes, if it is limited.
pub fn text_limit(kind: &str, field: &str) -> Option<usize> {
    match registry().kind(kind).ok()?.field(field)?.ty {
        FieldType::Text { max_bytes, .. } => Some(max_bytes),
        FieldType::Bool => None,
    }
}

/// A kind that can be made from one line of text (its title).
pub trait FromTitle: Model {
    fn from_title(title: String) -> Self;
}

impl FromTitle for Todo {
    fn from_title(title: String) -> Todo {
        Todo {
            title,
            completed: false,
        }
    }
}

impl FromTitle for Section {
    fn from_title(title: String) -> Section {
        Section { title }
    }
}

/// One way to add an item from the list's header.
#[derive(Clone, Copy, Debug)]
pub struct AddItem {
    pub kind: &'static str,
    /// The button's text; `None` for the kind that Enter adds (TodoMVC's todo).
    pub button: Option<(&'static str, &'static str)>,
    /// The title's limit in UTF-8 bytes, from the model registry.
    pub limit: Option<usize>,
    create: fn(&SyncClient, Uid, String) -> Result<Uid, ModelError>,
}

impl AddItem {
    /// Creates the item at the end of `parent`; on refusal nothing is written.
    pub fn create(
        &self,
        client: &SyncClient,
        parent: Uid,
        title: String,
    ) -> Result<Uid, ModelError> {
        (self.create)(client, parent, title)
    }
}

fn create_titled<M: FromTitle>(
    client: &SyncClient,
    parent: Uid,
    title: String,
) -> Result<Uid, ModelError> {
    client.create(parent, Placement::End, &M::from_title(title))
}

pub struct ItemViews {
    views: HashMap<&'static str, ItemView>,
    adds: Vec<AddItem>,
}

impl ItemViews {
    pub fn new() -> Self {
        ItemViews {
            views: HashMap::new(),
            adds: Vec::new(),
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

    /// Enter in the header's field adds a `M` with the typed title.
    pub fn on_enter<M: FromTitle>(self) -> Self {
        self.add::<M>(None)
    }

    /// A header button `label` (with tooltip `hint`) adds a `M` with the typed title.
    pub fn button<M: FromTitle>(self, label: &'static str, hint: &'static str) -> Self {
        self.add::<M>(Some((label, hint)))
    }

    fn add<M: FromTitle>(mut self, button: Option<(&'static str, &'static str)>) -> Self {
        self.adds.push(AddItem {
            kind: M::KIND,
            button,
            limit: text_limit(M::KIND, TITLE_FIELD),
            create: create_titled::<M>,
        });
        self
    }

    /// The kind Enter adds, if any.
    pub fn enter_add(&self) -> Option<AddItem> {
        self.adds.iter().find(|a| a.button.is_none()).copied()
    }

    /// The kinds added by a button, in registration order.
    pub fn button_adds(&self) -> Vec<AddItem> {
        self.adds
            .iter()
            .filter(|a| a.button.is_some())
            .copied()
            .collect()
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

/// The app's item views: one line per kind.
pub fn item_views() -> &'static ItemViews {
    static VIEWS: OnceLock<ItemViews> = OnceLock::new();
    VIEWS.get_or_init(|| {
        ItemViews::new()
            .register::<Todo>(item::todo_item)
            .on_enter::<Todo>()
            .register::<Section>(item::section_item)
            .button::<Section>("+ heading", "Add the text as a section heading")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_and_limits_come_from_the_model_registry() {
        assert!(is_task(Todo::KIND));
        assert!(!is_task(Section::KIND));
        assert!(!is_task("no such kind"));
        assert_eq!(text_limit(Todo::KIND, TITLE_FIELD), Some(1024));
        assert_eq!(text_limit(Todo::KIND, DONE_FIELD), None);
        let views = item_views();
        assert_eq!(views.enter_add().map(|a| a.kind), Some(Todo::KIND));
        let buttons: Vec<_> = views.button_adds().iter().map(|a| a.kind).collect();
        assert_eq!(buttons, [Section::KIND]);
    }
}
