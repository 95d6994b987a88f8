//! Push and pull: the writer that turns pushed batches into committed changes.
//!
//! Every push goes to this node's writer task over a channel. The writer takes
//! whatever batches are waiting (group commit) and commits them in one transaction:
//! it locks the lists they write and reads their last versions, loads every node and
//! sequence number the group touches, lets the sync module check and merge each
//! batch in order ([`crate::model::batch::plan_push`]) on that state in memory, and
//! stores the changed nodes under the lists' next versions with a few multi-row
//! statements. Planning is pure, so a bad batch changes nothing and takes no version
//! while its neighbours in the same group still commit. Only after the commit does a
//! batch get its acknowledgement and do its changes go to the hub.
//!
//! Versions count per list and are assigned while the list's lock is held (see
//! [`super::store`]), so they are strictly increasing in commit order on every node:
//! a pull of "after V" can never miss a change that commits later with a smaller
//! version, whichever node commits it. With several nodes the lock is what limits a
//! list's writes, so a writer reads the nodes before taking it and, under it, reads
//! again only what the list committed meanwhile.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::{
    config::Config,
    hub::Hub,
    metrics,
    store::{ListRow, NodeRow, SeqKey, Store, StoreError, WriteConn, WriteTx},
};
use crate::model::{
    batch::{nodes_to_load, plan_push, Limits, StoredNode},
    clock::wall_clock_ms,
    registry,
    wire::{Change, PullPage, PushAck, PushRequest, SyncError},
    Op, Uid,
};

/// Batches the writer commits together at most.
const GROUP_MAX: usize = 64;
/// Node states in one generation of the writer's cache (see [`NodeCache`]): at most
/// twice this many are kept, a few megabytes.
const NODE_CACHE_GENERATION: usize = 8192;
/// Times a group is run again after losing a race with another node.
const RETRIES: usize = 3;

/// A handle to the writer task.
#[derive(Clone, Debug)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

struct Job {
    req: PushRequest,
    reply: oneshot::Sender<Result<PushAck, SyncError>>,
    queued: Instant,
}

/// What one batch did inside the group's transaction.
struct Applied {
    ack: PushAck,
    /// The list's last version before this batch's changes.
    previous: u64,
    changes: Vec<Change>,
}

/// Each batch's outcome, in the group's order.
type GroupResult = Vec<Result<Applied, SyncError>>;

impl Writer {
    /// Starts the writer task. It ends when every `Writer` handle is dropped, after
    /// finishing the batches already queued.
    pub fn start(store: Store, hub: Hub, config: &Config) -> (Writer, tokio::task::JoinHandle<()>) {
        let (jobs, rx) = mpsc::channel(1024);
        let task = WriterTask {
            cache: store.sole_writer().then(NodeCache::default),
            store,
            hub,
            limits: config.batch_limits(),
            held: None,
        };
        (Writer { jobs }, tokio::spawn(task.run(rx)))
    }

    /// Pushes one batch and waits for it to be committed (or rejected).
    pub async fn push(&self, req: PushRequest) -> Result<PushAck, SyncError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            req,
            reply,
            queued: Instant::now(),
        };
        self.jobs
            .send(job)
            .await
            .map_err(|_| unavailable("the server is shutting down"))?;
        answer
            .await
            .map_err(|_| unavailable("the writer stopped before answering"))?
    }
}

/// Decodes the ops of a push one by one, after checking their number (cheap, and
/// before any decoding work): an op that does not decode is named (`ops[3]: …`), and
/// an id that is not a hyphenated v4 UUID gets `invalid_uid`, as the request's own
/// `list` and `client` do, rather than a generic decode error.
pub fn decode_ops(ops: Vec<Value>, max_ops: usize) -> Result<Vec<Op>, SyncError> {
    if ops.len() > max_ops {
        return Err(SyncError::TooManyOps {
            count: ops.len(),
            max: max_ops,
        });
    }
    ops.into_iter()
        .enumerate()
        .map(|(i, op)| {
            for key in ["client", "node", "parent"] {
                if let Some(Value::String(id)) = op.get(key) {
                    if Uid::parse(id).is_err() {
                        return Err(SyncError::InvalidUid {
                            value: id.chars().take(64).collect(),
                        });
                    }
                }
            }
            serde_json::from_value(op).map_err(|e| SyncError::MalformedRequest {
                detail: format!("ops[{i}]: {e}"),
            })
        })
        .collect()
}

/// Reads one page of a list's changes after `after`.
pub async fn pull(
    store: &Store,
    config: &Config,
    list: Uid,
    after: u64,
    limit: Option<u32>,
) -> Result<PullPage, SyncError> {
    let limit = limit
        .unwrap_or(config.sync.pull_page_size)
        .clamp(1, config.sync.pull_page_size);
    store.pull(list, after, limit).await.map_err(store_failure)
}

/// Every change of a list, for rendering it: the whole current state in one page.
pub async fn snapshot(store: &Store, list: Uid) -> Result<PullPage, SyncError> {
    store
        .pull(list, 0, u32::MAX - 1)
        .await
        .map_err(store_failure)
}

/// A store call that failed: `unavailable` (retry later) if the database cannot be
/// reached right now, `internal` for anything else.
pub fn store_failure(e: StoreError) -> SyncError {
    if e.is_unavailable() {
        tracing::warn!(error = %e, "database unavailable");
        unavailable("the database is not available")
    } else {
        internal(e)
    }
}

/// The node states the writer committed or read most recently, so that a group
/// need not read and decode them from SQLite again (reading and decoding was a
/// third of a group's time when the same todos are edited over and over).
///
/// Only where this writer is the only one (SQLite): an entry is then always exactly
/// what the database holds. A group takes the entries it needs out of the cache and
/// puts the final states back only after its commit, so a failed commit leaves
/// nothing stale behind. Two generations approximate least-recently-used cheaply: a
/// hit in the old one moves to the young one, and when the young one is full the old
/// one is dropped.
#[derive(Default)]
struct NodeCache {
    young: HashMap<Uid, StoredNode>,
    old: HashMap<Uid, StoredNode>,
}

impl NodeCache {
    fn take(&mut self, uid: &Uid) -> Option<StoredNode> {
        self.young.remove(uid).or_else(|| self.old.remove(uid))
    }

    fn put(&mut self, uid: Uid, node: StoredNode) {
        if self.young.len() >= NODE_CACHE_GENERATION {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(uid, node);
    }
}

/// The writer's own state.
struct WriterTask {
    store: Store,
    hub: Hub,
    limits: Limits,
    cache: Option<NodeCache>,
    /// The write connection, kept while pushes keep coming: giving it back to the
    /// pool and acquiring it again cost milliseconds per group under load. It goes
    /// back whenever the queue is empty (an in-memory database reads through it).
    held: Option<WriteConn>,
}

impl WriterTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        while let Some(first) = rx.recv().await {
            let mut group = vec![first];
            while group.len() < GROUP_MAX {
                match rx.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            let outcome = self.commit_with_retries(&group).await;
            if outcome.is_ok() && rx.is_empty() {
                self.held = None;
            }
            self.answer(group, outcome).await;
        }
    }

    /// Commits the group, running it again when it lost a race with another node.
    async fn commit_with_retries(&mut self, group: &[Job]) -> Result<GroupResult, StoreError> {
        let mut attempt = 0;
        loop {
            let outcome = self.commit_once(group).await;
            match outcome {
                Err(e) if e.is_retryable() && attempt < RETRIES => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "commit raced another node; again");
                }
                other => return other,
            }
        }
    }

    async fn commit_once(&mut self, group: &[Job]) -> Result<GroupResult, StoreError> {
        let mut conn = match self.held.take() {
            Some(conn) => conn,
            None => self.store.writer_connection().await?,
        };
        let result = commit_group(&mut conn, &self.limits, self.cache.as_mut(), group).await;
        if result.is_ok() {
            self.held = Some(conn);
        }
        result
    }

    /// Replies to every pusher and hands what committed to the hub.
    async fn answer(&self, group: Vec<Job>, outcome: Result<GroupResult, StoreError>) {
        let results = match outcome {
            Ok(results) => results,
            Err(e) => {
                // Nothing of the group committed: every batch is told so.
                tracing::error!(error = %e, batches = group.len(), "commit failed");
                metrics::pushes_failed(group.len());
                for job in group {
                    let _ = job
                        .reply
                        .send(Err(unavailable("the database did not commit")));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                return;
            }
        };
        for (job, result) in group.into_iter().zip(results) {
            metrics::push_done(&job.req, &result.as_ref().map(|a| &a.ack), job.queued);
            let reply = result.map(|applied| {
                self.hub
                    .publish(job.req.list, applied.previous, applied.changes);
                applied.ack
            });
            // The pusher may have gone away; what committed stays committed.
            let _ = job.reply.send(reply);
        }
    }
}

/// What the group reads before planning: the lists' last versions, the nodes its
/// batches touch, which of the uids they name are lists, and the clients' last
/// sequence numbers.
struct GroupState {
    versions: HashMap<Uid, u64>,
    stored: HashMap<Uid, StoredNode>,
    lists: HashSet<Uid>,
    seqs: HashMap<SeqKey, u64>,
}

/// Commits a group of batches in one transaction, in few statements: read what
/// the group needs, plan each batch in order in memory (a refused batch writes
/// nothing and takes no version), write the accepted changes, commit.
///
/// The outer `Err` means the transaction failed: nothing was committed.
async fn commit_group(
    conn: &mut WriteConn,
    limits: &Limits,
    mut cache: Option<&mut NodeCache>,
    group: &[Job],
) -> Result<GroupResult, StoreError> {
    let started = Instant::now();
    let mut tx = conn.begin().await?;
    let now_ms = wall_clock_ms();
    let mut state = read_group(&mut tx, cache.as_deref_mut(), group).await?;
    let read = started.elapsed();
    let (results, lists, new_seqs) = plan_group(limits, &mut state, group, now_ms);
    let planned = started.elapsed();
    let rows = write_group(&mut tx, group, &results, &lists, &new_seqs, now_ms).await?;
    let written = started.elapsed();
    tx.commit().await?;
    if let Some(cache) = cache {
        for (uid, node) in state.stored {
            cache.put(uid, node);
        }
    }
    // Where a group's time goes, for profiling (docs/BENCHMARKS.md, "ingest"):
    // TETHER_LOG=warn,tether::server::sync=debug.
    tracing::debug!(
        batches = group.len(),
        rows,
        read_ms = read.as_secs_f64() * 1e3,
        plan_ms = (planned - read).as_secs_f64() * 1e3,
        write_ms = (written - planned).as_secs_f64() * 1e3,
        commit_ms = (started.elapsed() - written).as_secs_f64() * 1e3,
        "committed a group"
    );
    Ok(results)
}

/// What a group's batches name: their lists, the nodes they touch and their
/// clients' sequence keys, each once.
#[derive(Default)]
struct Wanted {
    lists: Vec<Uid>,
    uids: Vec<Uid>,
    keys: Vec<SeqKey>,
}

impl Wanted {
    fn of(group: &[Job]) -> Wanted {
        let mut wanted = Wanted::default();
        let (mut seen_uids, mut seen_keys) = (HashSet::new(), HashSet::new());
        for job in group {
            if !wanted.lists.contains(&job.req.list) {
                wanted.lists.push(job.req.list);
            }
            let new_uids = nodes_to_load(&job.req).into_iter();
            wanted
                .uids
                .extend(new_uids.filter(|uid| seen_uids.insert(*uid)));
            let key = (job.req.list, job.req.client.to_string());
            if seen_keys.insert(key.clone()) {
                wanted.keys.push(key);
            }
        }
        wanted
    }
}

/// Locks the group's lists and reads everything its batches touch: nodes from the
/// cache where this writer has one, else read before the lock and brought up to
/// date under it.
async fn read_group(
    tx: &mut WriteTx<'_>,
    cache: Option<&mut NodeCache>,
    group: &[Job],
) -> Result<GroupState, StoreError> {
    let wanted = Wanted::of(group);
    let (versions, mut stored) = match cache {
        Some(cache) => read_through_cache(tx, cache, &wanted).await?,
        None => read_then_lock(tx, &wanted).await?,
    };
    // In its own list, a list's uid is its root, never a node another list made
    // before the list existed.
    for list in &wanted.lists {
        if stored.get(list).is_some_and(|node| node.list != *list) {
            stored.remove(list);
        }
    }
    let lists = tx.known_lists(&wanted.uids).await?;
    let seqs = tx.last_seqs(&wanted.keys).await?;
    Ok(GroupState {
        versions,
        stored,
        lists,
        seqs,
    })
}

type ListVersions = HashMap<Uid, u64>;
type StoredNodes = HashMap<Uid, StoredNode>;

/// The sole writer (SQLite): the lock first, then the nodes its cache lacks. What is
/// read after the lock is what the last group committed.
async fn read_through_cache(
    tx: &mut WriteTx<'_>,
    cache: &mut NodeCache,
    wanted: &Wanted,
) -> Result<(ListVersions, StoredNodes), StoreError> {
    let versions = tx.lock_lists(&wanted.lists).await?;
    let mut stored = HashMap::with_capacity(wanted.uids.len());
    let mut missing = wanted.uids.clone();
    missing.retain(|uid| match cache.take(uid) {
        Some(node) => {
            stored.insert(*uid, node);
            false
        }
        None => true,
    });
    stored.extend(tx.load_nodes(&missing).await?);
    Ok((versions, stored))
}

/// One of several writers (PostgreSQL): the nodes are read before the lock, so other
/// nodes' writers can commit meanwhile, and under the lock only what the lists
/// committed since is read again. The versions read before the nodes tell what
/// that is: rows of a list whose version has not moved are exactly as read.
async fn read_then_lock(
    tx: &mut WriteTx<'_>,
    wanted: &Wanted,
) -> Result<(ListVersions, StoredNodes), StoreError> {
    let before = tx.list_versions(&wanted.lists).await?;
    let mut stored = tx.load_nodes(&wanted.uids).await?;
    let versions = tx.lock_lists(&wanted.lists).await?;
    for list in &wanted.lists {
        let read_at = before.get(list).copied().unwrap_or(0);
        if versions.get(list).copied().unwrap_or(0) != read_at {
            let changed = tx.load_nodes_changed(*list, read_at, &wanted.uids).await?;
            metrics::read_again();
            stored.extend(changed);
        }
    }
    Ok((versions, stored))
}

/// A list's uid is never a node of another list: a new op (above `last_seq`; a
/// resend of an applied one stays acknowledged) that names a stored list other than
/// its own, as its node or as a parent, is refused as foreign.
fn refuse_list_uids(
    req: &PushRequest,
    last_seq: u64,
    lists: &HashSet<Uid>,
) -> Result<(), SyncError> {
    let foreign = |uid: &Uid| *uid != req.list && lists.contains(uid);
    for op in req.ops.iter().filter(|op| op.seq > last_seq) {
        let node = op.node();
        if foreign(&node) {
            return Err(SyncError::ForeignNode { node });
        }
        if let Some(parent) = op.action.parent().filter(foreign) {
            return Err(SyncError::ForeignParent { node, parent });
        }
    }
    Ok(())
}

/// Plans each batch on the state the batches before it left, giving its changes
/// their lists' next versions. Returns each batch's outcome, the lists' new last
/// versions, and the sequence numbers to record.
fn plan_group(
    limits: &Limits,
    state: &mut GroupState,
    group: &[Job],
    now_ms: u64,
) -> (GroupResult, Vec<ListRow>, HashMap<SeqKey, u64>) {
    let mut results = Vec::with_capacity(group.len());
    let mut lists: Vec<ListRow> = Vec::new();
    let mut new_seqs = HashMap::new();
    for job in group {
        let result = plan_batch(limits, state, &job.req, now_ms);
        if let Ok(applied) = &result {
            let key = (job.req.list, job.req.client.to_string());
            if applied.ack.acked_seq > state.seqs.get(&key).copied().unwrap_or(0) {
                state.seqs.insert(key.clone(), applied.ack.acked_seq);
                new_seqs.insert(key, applied.ack.acked_seq);
                note_list(&mut lists, job.req.list, applied.ack.version);
            }
            if !applied.changes.is_empty() {
                note_list(&mut lists, job.req.list, applied.ack.version);
            }
        }
        results.push(result);
    }
    (results, lists, new_seqs)
}

/// Records `list`'s last version after a batch that wrote to it.
fn note_list(lists: &mut Vec<ListRow>, uid: Uid, version: u64) {
    match lists.iter_mut().find(|l| l.uid == uid) {
        Some(row) => row.version = version,
        None => lists.push(ListRow { uid, version }),
    }
}

/// Plans one batch: on success its changes carry their new versions, and the
/// group's state holds the nodes as the batch left them.
fn plan_batch(
    limits: &Limits,
    state: &mut GroupState,
    req: &PushRequest,
    now_ms: u64,
) -> Result<Applied, SyncError> {
    let key = (req.list, req.client.to_string());
    let last_seq = state.seqs.get(&key).copied().unwrap_or(0);
    refuse_list_uids(req, last_seq, &state.lists)?;
    let plan = plan_push(registry(), limits, req, last_seq, &state.stored, now_ms)?;
    let version = state.versions.entry(req.list).or_insert(0);
    let previous = *version;
    let mut changes = Vec::with_capacity(plan.changed.len());
    for node in plan.changed {
        *version += 1;
        let stored = StoredNode {
            list: req.list,
            node: node.clone(),
        };
        state.stored.insert(node.uid, stored);
        changes.push(Change {
            version: *version,
            node,
        });
    }
    Ok(Applied {
        ack: PushAck {
            list: req.list,
            acked_seq: plan.acked_seq,
            version: *version,
            server_time_ms: now_ms,
        },
        previous,
        changes,
    })
}

/// Writes the accepted batches' changes (each node once, in its final state), the
/// lists' versions and the clients' sequence numbers, and announces the lists to
/// the other nodes. Returns the number of node rows written.
async fn write_group(
    tx: &mut WriteTx<'_>,
    group: &[Job],
    results: &GroupResult,
    lists: &[ListRow],
    new_seqs: &HashMap<SeqKey, u64>,
    now_ms: u64,
) -> Result<usize, StoreError> {
    let mut rows: HashMap<Uid, NodeRow<'_>> = HashMap::new();
    for (job, result) in group.iter().zip(results) {
        let Ok(applied) = result else { continue };
        for change in &applied.changes {
            let row = NodeRow {
                list: job.req.list,
                node: &change.node,
                version: change.version,
            };
            rows.insert(change.node.uid, row);
        }
    }
    tx.store_lists(lists, now_ms).await?;
    let rows: Vec<_> = rows.into_values().collect();
    tx.store_nodes(&rows).await?;
    let seqs: Vec<_> = new_seqs.iter().map(|(k, v)| (k.clone(), *v)).collect();
    tx.store_last_seqs(&seqs).await?;
    tx.announce(lists, now_ms).await?;
    Ok(rows.len())
}

fn unavailable(detail: &str) -> SyncError {
    SyncError::Unavailable {
        detail: detail.to_string(),
    }
}

/// Logs the cause and hides it: clients get `internal`, never SQL or paths.
fn internal(e: impl std::fmt::Display) -> SyncError {
    tracing::error!(error = %e, "internal error in sync");
    SyncError::Internal
}
