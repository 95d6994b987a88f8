//! Views as a tree: every component that shows a model is a [`View`] with its own UID,
//! a handle to its parent view and the list of its children.
//!
//! A component calls [`use_view`] once: the new view registers with the view found in
//! context (`add_child`) when mounted, provides itself as the context of its own
//! children, and removes itself (`remove_child`) when the component is cleaned up. So
//! the live view tree can be listed at any time, which the inspector does.
//!
//! A view's UID is made where the view is born. The server and the browser each make
//! their own, so a view's UID reaches the DOM only after hydration (see
//! [`View::dom_uid`]); the first frame stays identical on both sides.

use std::sync::{Arc, Mutex, Weak};

use leptos::prelude::*;

use crate::model::Uid;

/// One live view.
#[derive(Clone)]
pub struct View(Arc<ViewInner>);

struct ViewInner {
    uid: Uid,
    name: &'static str,
    model: Option<(Uid, String)>,
    parent: Option<Weak<ViewInner>>,
    children: Mutex<Vec<View>>,
    /// Bumped when the children change, so the inspector re-renders.
    changed: ArcTrigger,
    /// Becomes true once mounted in the browser.
    mounted: ArcRwSignal<bool>,
}

/// A plain snapshot of a view and its descendants, for listing and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewNode {
    pub uid: Uid,
    pub name: &'static str,
    pub model: Option<(Uid, String)>,
    pub parent: Option<Uid>,
    pub children: Vec<ViewNode>,
}

impl View {
    /// A view with no parent: the root of a page's tree.
    pub fn root(name: &'static str) -> View {
        View::new(name, None, None)
    }

    fn new(name: &'static str, model: Option<(Uid, String)>, parent: Option<&View>) -> View {
        View(Arc::new(ViewInner {
            uid: Uid::new(),
            name,
            model,
            parent: parent.map(|p| Arc::downgrade(&p.0)),
            children: Mutex::new(Vec::new()),
            changed: ArcTrigger::new(),
            mounted: ArcRwSignal::new(false),
        }))
    }

    pub fn uid(&self) -> Uid {
        self.0.uid
    }

    pub fn name(&self) -> &'static str {
        self.0.name
    }

    /// The model this view shows, with its kind.
    pub fn model(&self) -> Option<(Uid, String)> {
        self.0.model.clone()
    }

    pub fn parent(&self) -> Option<View> {
        self.0.parent.as_ref()?.upgrade().map(View)
    }

    /// The current children, tracked: a reactive reader re-runs when they change.
    pub fn children(&self) -> Vec<View> {
        self.0.changed.track();
        self.lock().clone()
    }

    pub fn add_child(&self, child: &View) {
        let mut children = self.lock();
        if !children.iter().any(|c| c.uid() == child.uid()) {
            children.push(child.clone());
        }
        drop(children);
        self.0.changed.notify();
    }

    pub fn remove_child(&self, uid: Uid) {
        self.lock().retain(|c| c.uid() != uid);
        self.0.changed.notify();
    }

    /// The UID to put in the DOM: `None` until hydrated, so the server's HTML and the
    /// browser's first frame agree.
    pub fn dom_uid(&self) -> impl Fn() -> Option<String> + Send + Sync + 'static {
        let mounted = self.0.mounted.clone();
        let uid = self.0.uid.to_string();
        move || mounted.get().then(|| uid.clone())
    }

    /// This view and its descendants as plain data.
    pub fn snapshot(&self) -> ViewNode {
        ViewNode {
            uid: self.uid(),
            name: self.name(),
            model: self.model(),
            parent: self.parent().map(|p| p.uid()),
            children: self.children().iter().map(View::snapshot).collect(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<View>> {
        self.0.children.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Makes this component a view: a child of the view in context (if any), the
/// context of its own children, registered on mount and removed on cleanup.
pub fn use_view(name: &'static str, model: Option<(Uid, String)>) -> View {
    let parent = use_context::<View>();
    let view = View::new(name, model, parent.as_ref());
    provide_context(view.clone());
    if let Some(parent) = parent {
        parent.add_child(&view);
        let uid = view.uid();
        on_cleanup(move || parent.remove_child(uid));
    }
    let mounted = view.0.mounted.clone();
    Effect::new(move |_| mounted.set(true));
    view
}

/// Provides `view` as the root of a page's tree.
pub fn provide_root(view: &View) {
    provide_context(view.clone());
    let mounted = view.0.mounted.clone();
    Effect::new(move |_| mounted.set(true));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_register_and_unregister() {
        let owner = Owner::new();
        owner.with(|| {
            let root = View::root("list");
            provide_root(&root);
            let item_owner = Owner::new();
            let item = item_owner.with(|| use_view("item", Some((Uid::new(), "todo".into()))));
            assert_eq!(root.children().len(), 1);
            assert_eq!(item.parent().map(|p| p.uid()), Some(root.uid()));
            let snap = root.snapshot();
            assert_eq!(snap.children[0].parent, Some(root.uid()));
            item_owner.cleanup();
            assert!(root.children().is_empty());
        });
    }
}
