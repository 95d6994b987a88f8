//! The reactive signal layer: one list's replica held in signals.
//!
//! A [`SyncClient`] owns the list's [`Replica`] and turns the replica's change events
//! into signal updates, one signal per (node, field) and one per parent's children,
//! so an item re-renders only when its own fields change. A local write goes
//! replica → localStorage mirror → outbox → push server function; acknowledgements
//! trim the outbox; the live socket applies other clients' changes as they come.
//!
//! Two ways of writing:
//! * [`SyncClient::set`] (and `create`, `delete`, `move_to`) — synced, the default;
//! * [`SyncClient::set_local`] — local-only state that must not leave the browser,
//!   such as which item is being edited.
//!
//! The same type runs on the server (seeded from the database, for rendering) and in
//! the browser; everything that touches the browser is in `browser` modules started by
//! [`SyncClient::start`] after hydration.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex, MutexGuard,
    },
};

use leptos::prelude::*;

use super::presence::PresenceState;
use super::rows::{affects_rows, rows_after, rows_of, Rows};

use crate::model::{
    registry,
    replica::Event,
    wire::{Change, PullPage},
    ClientId, Model, ModelError, Node, Op, Placement, Replica, Step, Uid, Value,
};

/// How the list is connected to the server, for the status badge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    /// Rendering on the server, or not started yet.
    Idle,
    /// Live socket open, catching up or pushing.
    Syncing,
    /// Live socket open and caught up, nothing pending in flight.
    Online,
    /// Server unreachable; the next attempt is in `retry_in_ms` (0: waiting for the
    /// browser to come back online).
    Offline { retry_in_ms: u64 },
    /// The server answered with an error (5xx) or timed out; the next attempt is in
    /// `retry_in_ms`. Writes stay queued meanwhile.
    Retrying { retry_in_ms: u64 },
}

impl Connection {
    pub fn label(&self) -> &'static str {
        match self {
            Connection::Idle => "connecting",
            Connection::Syncing => "syncing",
            Connection::Online => "online",
            Connection::Offline { .. } => "offline",
            Connection::Retrying { .. } => "retrying",
        }
    }
}

/// The sync state the UI always shows.
#[derive(Clone)]
pub struct SyncStatus {
    pub connection: ArcRwSignal<Connection>,
    /// Ops written here and not yet acknowledged.
    pub pending: ArcRwSignal<usize>,
    /// The server's time (ms) the replica was last known to be caught up to: the
    /// cursor's time. Every value is on the server's clock, never the browser's.
    pub synced_at_ms: ArcRwSignal<Option<u64>>,
    /// The server's clock minus this browser's (ms), as last measured from an answer
    /// carrying `server_time_ms`; `None` before the first.
    pub server_offset_ms: ArcRwSignal<Option<i64>>,
    /// A problem worth telling the user (storage full, a rejected write, …).
    pub problem: ArcRwSignal<Option<String>>,
}

/// One list, live. Cheap to clone; all clones share the replica.
#[derive(Clone)]
pub struct SyncClient(Arc<Inner>);

struct Inner {
    list: Uid,
    replica: Mutex<Replica>,
    /// Filled by the replica's observer while it is locked; drained into signals once
    /// the lock is released.
    events: Arc<Mutex<Vec<Event>>>,
    fields: Mutex<HashMap<(Uid, String), ArcRwSignal<Value>>>,
    children: Mutex<HashMap<Uid, ArcRwSignal<Vec<Uid>>>>,
    rows: Mutex<HashMap<Uid, ArcRwSignal<Rows>>>,
    /// Open [`SyncClient::batch`]es: while above 0, views are told nothing and local
    /// writes wait in `batched` for the batch's end.
    batch_depth: AtomicU32,
    batched: Mutex<Vec<Op>>,
    local: Mutex<HashMap<(Uid, String), ArcRwSignal<Value>>>,
    /// Notified on every change: for views over the whole replica (inspector, counts).
    changed: ArcTrigger,
    status: SyncStatus,
    presence: PresenceState,
    /// This tab's undo and redo stacks.
    undo: super::undo::UndoState,
    /// Values of this tab that a concurrent write replaced, shown on their items.
    notices: super::replaced::Notices,
    #[cfg(feature = "hydrate")]
    pub(crate) browser: super::browser::Session,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SyncClient {
    /// A client for `list`, seeded with the server's changes (on the server and while
    /// hydrating: every change of the list, and the server's clock then) so the
    /// first frame is the server's.
    pub fn new(list: Uid, client: ClientId, seed: &PullPage) -> SyncClient {
        let mut replica = Replica::new(list, client);
        let events: Arc<Mutex<Vec<Event>>> = Arc::default();
        {
            let events = events.clone();
            replica.observe(Box::new(move |e: &Event| lock(&events).push(e.clone())));
        }
        if is_served(seed) {
            replica.apply_remote(&seed.changes, seed.server_time_ms);
        }
        lock(&events).clear();
        let synced_at = replica.cursor().synced_at_ms;
        SyncClient(Arc::new(Inner {
            list,
            replica: Mutex::new(replica),
            events,
            fields: Mutex::default(),
            children: Mutex::default(),
            rows: Mutex::default(),
            batch_depth: AtomicU32::new(0),
            batched: Mutex::default(),
            local: Mutex::default(),
            changed: ArcTrigger::new(),
            status: SyncStatus {
                connection: ArcRwSignal::new(Connection::Idle),
                pending: ArcRwSignal::new(0),
                synced_at_ms: ArcRwSignal::new(synced_at),
                server_offset_ms: ArcRwSignal::new(None),
                problem: ArcRwSignal::new(None),
            },
            presence: PresenceState::default(),
            undo: Default::default(),
            notices: Default::default(),
            #[cfg(feature = "hydrate")]
            browser: Default::default(),
        }))
        .with_server_time(seed)
    }

    /// Measures the server's clock from a seed the server made (hydration only: on
    /// the server it would compare the server's clock with itself).
    fn with_server_time(self, seed: &PullPage) -> SyncClient {
        #[cfg(feature = "hydrate")]
        if is_served(seed) {
            self.note_server_time(seed.server_time_ms);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = seed;
        self
    }

    /// The client of `list` for this page: in the browser one per list for the whole
    /// session (so moving between filters or pages keeps it); on the server a fresh
    /// one per render.
    pub fn for_list(list: Uid, seed: &PullPage) -> SyncClient {
        #[cfg(feature = "hydrate")]
        {
            use std::sync::OnceLock;
            static CLIENTS: OnceLock<Mutex<HashMap<Uid, SyncClient>>> = OnceLock::new();
            let clients = CLIENTS.get_or_init(Mutex::default);
            if let Some(client) = lock(clients).get(&list) {
                if is_served(seed) {
                    client.apply_remote(&seed.changes, seed.server_time_ms);
                }
                return client.clone();
            }
            let client = SyncClient::new(list, super::browser::tab_client(), seed);
            lock(clients).insert(list, client.clone());
            client
        }
        #[cfg(not(feature = "hydrate"))]
        SyncClient::new(list, ClientId::new(), seed)
    }

    pub fn list(&self) -> Uid {
        self.0.list
    }

    #[cfg(feature = "hydrate")]
    pub(crate) fn session(&self) -> &super::browser::Session {
        &self.0.browser
    }

    /// The next ops to push: the oldest pending op and those of the same writer
    /// directly after it (at most `max`), so causal order holds across writers.
    pub fn next_batch(&self, max: usize) -> Option<(ClientId, Vec<Op>)> {
        self.with_replica(|r| r.push_request(max).map(|req| (req.client, req.ops)))
    }

    pub fn status(&self) -> &SyncStatus {
        &self.0.status
    }

    /// Who else has the list open, and what this tab says of itself.
    pub fn presence(&self) -> &PresenceState {
        &self.0.presence
    }

    /// This tab starts (`Some`) or stops (`None`) editing a node: the others see it.
    pub fn set_editing(&self, uid: Option<Uid>) {
        self.0.presence.editing.set(uid);
        #[cfg(feature = "hydrate")]
        super::browser::presence::say(self);
    }

    /// Changes the name this browser shows to others (already checked).
    pub fn set_display_name(&self, name: String) {
        #[cfg(feature = "hydrate")]
        super::browser::presence::rename(self, name);
        #[cfg(not(feature = "hydrate"))]
        self.0.presence.name.set(name);
    }

    /// This tab's undo and redo stacks.
    pub fn undo_state(&self) -> &super::undo::UndoState {
        &self.0.undo
    }

    /// The "your change was replaced" notices of this tab.
    pub fn notices(&self) -> &super::replaced::Notices {
        &self.0.notices
    }

    /// Starts syncing in the browser: localStorage, other tabs, the server. Idempotent;
    /// a no-op on the server.
    pub fn start(&self) {
        #[cfg(feature = "hydrate")]
        super::browser::start(self);
    }

    // ---- reading -------------------------------------------------------------------

    /// Runs `f` with the replica (untracked).
    pub fn with_replica<R>(&self, f: impl FnOnce(&Replica) -> R) -> R {
        f(&lock(&self.0.replica))
    }

    /// Tracks every change of the replica (for whole-list views such as counts).
    pub fn track_all(&self) {
        self.0.changed.track();
    }

    /// The kind of a live node.
    pub fn kind(&self, uid: Uid) -> Option<String> {
        self.with_replica(|r| {
            r.node(uid)
                .filter(|n| n.is_live())
                .and_then(|n| n.kind_name().map(str::to_string))
        })
    }

    /// A typed read of a live node (untracked).
    pub fn get<M: Model>(&self, uid: Uid) -> Option<M> {
        self.with_replica(|r| r.get::<M>(uid)?.ok())
    }

    /// The current value of a field, its kind's default if never written.
    pub fn field_value(&self, uid: Uid, field: &str) -> Value {
        self.with_replica(|r| current_field(r, uid, field))
    }

    /// A signal of one field of one node; it changes only when that field does.
    pub fn field(&self, uid: Uid, field: &str) -> ArcRwSignal<Value> {
        let key = (uid, field.to_string());
        if let Some(signal) = lock(&self.0.fields).get(&key) {
            return signal.clone();
        }
        let signal = ArcRwSignal::new(self.field_value(uid, field));
        lock(&self.0.fields).entry(key).or_insert(signal).clone()
    }

    /// A signal of a node's live children, in order.
    pub fn children(&self, parent: Uid) -> ArcRwSignal<Vec<Uid>> {
        if let Some(signal) = lock(&self.0.children).get(&parent) {
            return signal.clone();
        }
        let signal = ArcRwSignal::new(self.with_replica(|r| r.children(parent)));
        lock(&self.0.children)
            .entry(parent)
            .or_insert(signal)
            .clone()
    }

    /// A signal of a node's live children as rows (task, done), for counts and
    /// filters over a long list ([`super::rows`]).
    pub fn rows(&self, parent: Uid) -> ArcRwSignal<Rows> {
        if let Some(signal) = lock(&self.0.rows).get(&parent) {
            return signal.clone();
        }
        let signal = ArcRwSignal::new(self.with_replica(|r| rows_of(r, parent)));
        lock(&self.0.rows).entry(parent).or_insert(signal).clone()
    }

    /// A local-only value (never leaves this browser tab).
    pub fn local(&self, uid: Uid, key: &str) -> ArcRwSignal<Value> {
        lock(&self.0.local)
            .entry((uid, key.to_string()))
            .or_insert_with(|| ArcRwSignal::new(Value::Null))
            .clone()
    }

    /// Sets a local-only value: it updates this tab's views and is never synced.
    pub fn set_local(&self, uid: Uid, key: &str, value: Value) {
        let signal = self.local(uid, key);
        if signal.get_untracked() != value {
            signal.set(value);
        }
    }

    /// The ops not yet acknowledged by the server.
    pub fn pending_ops(&self) -> Vec<Op> {
        self.with_replica(|r| r.outbox().iter().cloned().collect())
    }

    // ---- synced writes -------------------------------------------------------------

    /// Creates a node of kind `M` under `parent`; returns its new UID, or why it
    /// was refused (nothing is written then).
    pub fn create<M: Model>(
        &self,
        parent: Uid,
        at: Placement,
        value: &M,
    ) -> Result<Uid, ModelError> {
        let now = now_ms();
        let op = self.write_recorded(None, |r| r.create(parent, at, value, now).map(|c| c.1))?;
        let uid = op.node();
        self.after_local_write(op);
        Ok(uid)
    }

    /// Creates the list's own node (its title lives there) if it does not exist yet.
    pub fn ensure_root<M: Model>(&self, value: &M) {
        let list = self.0.list;
        if self.with_replica(|r| r.node(list).is_some_and(Node::is_live)) {
            return;
        }
        let now = now_ms();
        if let Ok(op) = self.write(|r| r.create_root(value, now)) {
            self.after_local_write(op);
        }
    }

    /// Sets one field (synced); an unchanged value writes nothing. On refusal
    /// nothing is written and the error says why.
    pub fn set(&self, uid: Uid, field: &str, value: Value) -> Result<(), ModelError> {
        if self.field_value(uid, field) == value {
            return Ok(());
        }
        let now = now_ms();
        let op = self.write_recorded(Some(uid), |r| r.set(uid, field, value, now))?;
        self.after_local_write(op);
        Ok(())
    }

    /// Deletes a node (a tombstone: a concurrent edit elsewhere does not bring it back).
    pub fn delete(&self, uid: Uid) {
        let now = now_ms();
        if let Ok(op) = self.write_recorded(Some(uid), |r| r.delete(uid, now)) {
            self.after_local_write(op);
        }
    }

    /// Moves a node under `parent` at `at`.
    pub fn move_to(&self, uid: Uid, parent: Uid, at: Placement) {
        let now = now_ms();
        if let Ok(op) = self.write_recorded(Some(uid), |r| r.move_to(uid, parent, at, now)) {
            self.after_local_write(op);
        }
    }

    /// Runs a local write; a refused write (invalid input) is reported in the
    /// status badge too, not panicked.
    fn write<R>(
        &self,
        f: impl FnOnce(&mut Replica) -> Result<R, ModelError>,
    ) -> Result<R, ModelError> {
        let result = f(&mut lock(&self.0.replica));
        self.dispatch();
        if let Err(e) = &result {
            self.0.status.problem.set(Some(format!("Not saved: {e}")));
        }
        result
    }

    /// A local write of `node` (`None` for a create) that undo can take back: the
    /// step that does is recorded in this tab's history.
    fn write_recorded(
        &self,
        node: Option<Uid>,
        f: impl FnOnce(&mut Replica) -> Result<Op, ModelError>,
    ) -> Result<Op, ModelError> {
        let mut step = None;
        let result = self.write(|r| {
            let before = node.and_then(|n| r.node(n).cloned());
            let op = f(r)?;
            step = Step::of(&op, before.as_ref(), r.registry());
            Ok(op)
        });
        if let Some(step) = step {
            self.0.undo.record(step);
        }
        result
    }

    pub(crate) fn after_local_write(&self, op: Op) {
        if self.0.batch_depth.load(Ordering::SeqCst) > 0 {
            lock(&self.0.batched).push(op);
            return;
        }
        self.after_local_writes(&[op]);
    }

    fn after_local_writes(&self, ops: &[Op]) {
        #[cfg(feature = "hydrate")]
        super::browser::after_local_writes(self, ops);
        #[cfg(not(feature = "hydrate"))]
        let _ = ops;
    }

    /// Runs `f`, whose writes reach the views, the local copy and the server
    /// together at its end: ten thousand writes (toggle all) then cost one update of
    /// the views and one save of the outbox, not ten thousand.
    pub fn batch<R>(&self, f: impl FnOnce() -> R) -> R {
        self.0.batch_depth.fetch_add(1, Ordering::SeqCst);
        let result = f();
        if self.0.batch_depth.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.dispatch();
            let ops = std::mem::take(&mut *lock(&self.0.batched));
            if !ops.is_empty() {
                self.after_local_writes(&ops);
            }
        }
        result
    }

    // ---- what arrives from elsewhere ----------------------------------------------

    /// Merges changes from the server (pull, live socket).
    pub fn apply_remote(&self, changes: &[Change], server_time_ms: u64) {
        lock(&self.0.replica).apply_remote(changes, server_time_ms);
        self.dispatch();
    }

    /// Merges an op another tab wrote (it stays in that tab's outbox).
    pub fn apply_peer_op(&self, op: &Op) {
        lock(&self.0.replica).apply_op(op);
        self.dispatch();
    }

    /// Runs `f` on the replica and then tells the views what changed.
    pub fn update_replica<R>(&self, f: impl FnOnce(&mut Replica) -> R) -> R {
        let r = f(&mut lock(&self.0.replica));
        self.dispatch();
        r
    }

    /// Records the server's clock from an answer that carries it (`server_time_ms`
    /// of a pull page or a push acknowledgement), received now.
    pub fn note_server_time(&self, server_time_ms: u64) {
        let offset = Some(server_time_ms as i64 - now_ms() as i64);
        let signal = &self.0.status.server_offset_ms;
        if signal.get_untracked() != offset {
            signal.set(offset);
        }
    }

    /// The time a live change (which carries none) is current as of: the server's
    /// clock now, as far as this browser can tell. Until the server's clock has been
    /// measured the cursor keeps its time (the browser's clock would be another one).
    pub fn live_time_ms(&self) -> u64 {
        match self.0.status.server_offset_ms.get_untracked() {
            Some(offset) => server_now(now_ms(), Some(offset)),
            None => self
                .with_replica(|r| r.cursor().synced_at_ms)
                .unwrap_or_else(now_ms),
        }
    }

    /// Turns the replica's queued events into signal updates, outside its lock.
    fn dispatch(&self) {
        if self.0.batch_depth.load(Ordering::SeqCst) > 0 {
            return;
        }
        let events = std::mem::take(&mut *lock(&self.0.events));
        if events.is_empty() {
            return;
        }
        let replica = lock(&self.0.replica);
        let fields = lock(&self.0.fields);
        let children = lock(&self.0.children);
        let rows = lock(&self.0.rows);
        let mut pending_changed = false;
        let mut cursor_changed = false;
        let mut replaced = Vec::new();
        // A page of 10,000 new items is 10,000 events under one parent: list each
        // parent's children once per dispatch, not once per event.
        let mut parents = std::collections::HashSet::new();
        let mut row_parents = std::collections::HashSet::new();
        // Nodes whose row (kind, done flag) may have changed.
        let mut touched = std::collections::HashSet::new();
        for event in &events {
            match event {
                Event::FieldChanged { node, field } => {
                    if affects_rows(field) {
                        row_parents.extend(replica.node(*node).and_then(Node::parent));
                        touched.insert(*node);
                    }
                    if let Some(signal) = fields.get(&(*node, field.clone())) {
                        let value = current_field(&replica, *node, field);
                        if signal.get_untracked() != value {
                            signal.set(value);
                        }
                    }
                }
                Event::NodeAdded { node, parent } | Event::NodeRemoved { node, parent } => {
                    parents.extend(*parent);
                    touched.insert(*node);
                }
                Event::ChildrenChanged { parent } => {
                    parents.insert(*parent);
                }
                Event::OutboxChanged => pending_changed = true,
                Event::CursorChanged => cursor_changed = true,
                Event::Replaced(r) => replaced.push(r.clone()),
            }
        }
        for parent in &parents {
            refresh_children(&replica, &children, *parent);
        }
        for parent in parents.union(&row_parents) {
            refresh_rows(&replica, &rows, *parent, &|uid| touched.contains(&uid));
        }
        let pending = replica.pending();
        let synced_at = replica.cursor().synced_at_ms;
        drop((replica, fields, children, rows));
        self.0.notices.add(replaced, now_ms());
        if pending_changed && self.0.status.pending.get_untracked() != pending {
            self.0.status.pending.set(pending);
        }
        let status = &self.0.status.synced_at_ms;
        if cursor_changed && status.get_untracked() != synced_at {
            status.set(synced_at);
        }
        self.0.changed.notify();
    }
}

fn refresh_children(
    replica: &Replica,
    children: &HashMap<Uid, ArcRwSignal<Vec<Uid>>>,
    parent: Uid,
) {
    if let Some(signal) = children.get(&parent) {
        let now = replica.children(parent);
        if signal.get_untracked() != now {
            signal.set(now);
        }
    }
}

fn refresh_rows(
    replica: &Replica,
    rows: &HashMap<Uid, ArcRwSignal<Rows>>,
    parent: Uid,
    touched: &impl Fn(Uid) -> bool,
) {
    if let Some(signal) = rows.get(&parent) {
        let now = rows_after(replica, parent, &signal.read_untracked(), touched);
        if *signal.read_untracked() != now {
            signal.set(now);
        }
    }
}

/// A field's value with the kind's default filled in.
fn current_field(replica: &Replica, uid: Uid, field: &str) -> Value {
    let Some(node) = replica.node(uid) else {
        return Value::Null;
    };
    if let Some(value) = node.field(field) {
        return value.clone();
    }
    node.kind_name()
        .and_then(|kind| registry().kind(kind).ok())
        .and_then(|info| info.field(field)?.default)
        .map_or(Value::Null, |default| default())
}

/// A seed the server made (on the server, or serialised for hydration), as opposed
/// to the empty one the browser starts from when it moves to a list by itself: that
/// one carries no time and must not move the cursor's time to 0.
fn is_served(seed: &PullPage) -> bool {
    seed.server_time_ms > 0
}

/// The server's clock at local time `local_ms`, given the measured offset.
pub fn server_now(local_ms: u64, offset_ms: Option<i64>) -> u64 {
    local_ms.saturating_add_signed(offset_ms.unwrap_or(0))
}

/// Wall-clock milliseconds, from the browser's clock in the browser.
pub fn now_ms() -> u64 {
    crate::model::clock::wall_clock_ms()
}
