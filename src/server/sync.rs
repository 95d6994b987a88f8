//! Push and pull: the single writer that turns pushed batches into committed changes.
//!
//! Every push goes to one writer task over a channel. The writer takes whatever
//! batches are waiting (group commit) and commits them in one SQLite transaction:
//! it loads every node and sequence number the group touches in one go, lets the
//! sync module check and merge each batch in order
//! ([`crate::model::batch::plan_push`]) on that state in memory, and stores the
//! changed nodes under new versions with a few multi-row statements. Planning is
//! pure, so a bad batch changes nothing and takes no version while its neighbours
//! in the same group still commit. Only after the commit does a batch get its
//! acknowledgement and do its changes go out to live subscribers.
//!
//! Versions come from a counter only this task touches, so they are strictly
//! increasing in commit order: a pull of "after V" can never miss a change that
//! commits later with a smaller version.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use serde_json::Value;
use sqlx::{pool::PoolConnection, Acquire, Sqlite, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::{config::Config, db, db::Db, hub::Hub};
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

/// A handle to the writer task.
#[derive(Clone, Debug)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

struct Job {
    req: PushRequest,
    reply: oneshot::Sender<Result<PushAck, SyncError>>,
}

/// What one batch did inside the group's transaction.
struct Applied {
    ack: PushAck,
    changes: Vec<Change>,
}

impl Writer {
    /// Starts the writer task. It ends when every `Writer` handle is dropped, after
    /// finishing the batches already queued.
    pub async fn start(
        db: Db,
        hub: Hub,
        config: &Config,
    ) -> Result<(Writer, tokio::task::JoinHandle<()>), db::DbError> {
        let next_version = db.max_version().await? + 1;
        let (jobs, rx) = mpsc::channel(1024);
        let limits = config.batch_limits();
        let task = tokio::spawn(run(db, hub, limits, next_version, rx));
        Ok((Writer { jobs }, task))
    }

    /// Pushes one batch and waits for it to be committed (or rejected).
    pub async fn push(&self, req: PushRequest) -> Result<PushAck, SyncError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { req, reply })
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
    db: &Db,
    config: &Config,
    list: Uid,
    after: u64,
    limit: Option<u32>,
) -> Result<PullPage, SyncError> {
    let limit = limit
        .unwrap_or(config.sync.pull_page_size)
        .clamp(1, config.sync.pull_page_size);
    db.pull(list, after, limit).await.map_err(db_failure)
}

/// Every change of a list, for rendering it: the whole current state in one page.
pub async fn snapshot(db: &Db, list: Uid) -> Result<PullPage, SyncError> {
    db.pull(list, 0, u32::MAX - 1).await.map_err(db_failure)
}

/// A read that failed: `unavailable` (retry later) if the database cannot be
/// reached right now, `internal` for anything else.
fn db_failure(e: db::DbError) -> SyncError {
    match e {
        db::DbError::Sqlx(
            sqlx::Error::PoolClosed | sqlx::Error::PoolTimedOut | sqlx::Error::Io(_),
        ) => {
            tracing::warn!(error = %e, "database unavailable for a read");
            unavailable("the database is not available")
        }
        other => internal(other),
    }
}

/// The node states the writer committed or read most recently, so that a group
/// need not read and decode them from SQLite again (reading and decoding was a
/// third of a group's time when the same todos are edited over and over).
///
/// The writer is the only one that writes nodes, so an entry is always exactly what
/// the database holds. A group takes the entries it needs out of the cache and puts
/// the final states back only after its commit, so a failed commit leaves nothing
/// stale behind. Two generations approximate least-recently-used cheaply: a hit in
/// the old one moves to the young one, and when the young one is full the old one
/// is dropped.
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

async fn run(db: Db, hub: Hub, limits: Limits, mut next_version: u64, mut rx: mpsc::Receiver<Job>) {
    let mut cache = NodeCache::default();
    // The write connection is kept while pushes keep coming: giving it back to the
    // pool and acquiring it again cost milliseconds per group under load. It goes
    // back whenever the queue is empty (an in-memory database reads through it).
    let mut held: Option<PoolConnection<Sqlite>> = None;
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let start_version = next_version;
        let committed = match held.take() {
            Some(conn) => Ok(conn),
            None => db.write.acquire().await.map_err(db::DbError::from),
        };
        let committed = match committed {
            Ok(mut conn) => {
                let result =
                    commit_group(&mut conn, &limits, &mut cache, &mut next_version, &group).await;
                if result.is_ok() && !rx.is_empty() {
                    held = Some(conn);
                }
                result
            }
            Err(e) => Err(e),
        };
        match committed {
            Ok(results) => {
                for (job, result) in group.into_iter().zip(results) {
                    let reply = match result {
                        Ok(applied) => {
                            if !applied.changes.is_empty() {
                                hub.publish(job.req.list, applied.changes);
                            }
                            Ok(applied.ack)
                        }
                        Err(e) => Err(e),
                    };
                    // The pusher may have gone away; what committed stays committed.
                    let _ = job.reply.send(reply);
                }
            }
            Err(e) => {
                // Nothing of the group committed: every batch is told so, and the
                // versions are given back so the sequence stays gap-free.
                next_version = start_version;
                tracing::error!(error = %e, batches = group.len(), "commit failed");
                for job in group {
                    let _ = job
                        .reply
                        .send(Err(unavailable("the database did not commit")));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Commits a group of batches in one transaction, in few statements.
///
/// First everything the group's batches touch is read at once: their nodes (from
/// the [`NodeCache`] if there, else from SQLite) and the clients' last sequence
/// numbers. Then each batch is planned in order, in
/// memory, on that state plus what the batches before it changed: a refused batch
/// writes nothing and takes no version. Last, the accepted batches' changes are
/// written with a handful of multi-row statements (a node changed by two batches
/// is written once, in its final state) and the transaction commits.
///
/// The outer `Err` means the transaction failed: nothing was committed.
async fn commit_group(
    conn: &mut SqliteConnection,
    limits: &Limits,
    cache: &mut NodeCache,
    next_version: &mut u64,
    group: &[Job],
) -> Result<Vec<Result<Applied, SyncError>>, db::DbError> {
    let started = std::time::Instant::now();
    let mut tx = conn.begin().await?;
    let now_ms = wall_clock_ms();

    // 1. Read what the group needs.
    let mut uids = Vec::new();
    let mut keys = Vec::new();
    {
        let (mut seen_uids, mut seen_keys) = (HashSet::new(), HashSet::new());
        for job in group {
            uids.extend(
                nodes_to_load(&job.req)
                    .into_iter()
                    .filter(|uid| seen_uids.insert(*uid)),
            );
            let key = (job.req.list, job.req.client.to_string());
            if seen_keys.insert(key.clone()) {
                keys.push(key);
            }
        }
    }
    let mut stored = HashMap::with_capacity(uids.len());
    uids.retain(|uid| match cache.take(uid) {
        Some(node) => {
            stored.insert(*uid, node);
            false
        }
        None => true,
    });
    let cached = stored.len();
    stored.extend(db::load_nodes(&mut tx, &uids).await?);
    let mut seqs = db::last_seqs(&mut tx, &keys).await?;
    let read = started.elapsed();

    // 2. Plan each batch on the state the batches before it left.
    let mut results = Vec::with_capacity(group.len());
    let mut lists = Vec::new();
    let mut new_seqs: HashMap<db::SeqKey, u64> = HashMap::new();
    for job in group {
        let req = &job.req;
        let key = (req.list, req.client.to_string());
        let last_seq = seqs.get(&key).copied().unwrap_or(0);
        let plan = match plan_push(registry(), limits, req, last_seq, &stored, now_ms) {
            Ok(plan) => plan,
            Err(e) => {
                results.push(Err(e));
                continue;
            }
        };
        if (!plan.changed.is_empty() || plan.acked_seq > last_seq) && !lists.contains(&req.list) {
            lists.push(req.list);
        }
        let mut changes = Vec::with_capacity(plan.changed.len());
        for node in plan.changed {
            let version = *next_version;
            *next_version += 1;
            stored.insert(
                node.uid,
                StoredNode {
                    list: req.list,
                    node: node.clone(),
                },
            );
            changes.push(Change { version, node });
        }
        if plan.acked_seq > last_seq {
            seqs.insert(key.clone(), plan.acked_seq);
            new_seqs.insert(key, plan.acked_seq);
        }
        results.push(Ok(Applied {
            ack: PushAck {
                list: req.list,
                acked_seq: plan.acked_seq,
                version: *next_version - 1,
                server_time_ms: now_ms,
            },
            changes,
        }));
    }

    let planned = started.elapsed();

    // 3. Write the accepted batches' changes: each node once, in its final state.
    let mut rows: HashMap<Uid, db::NodeRow<'_>> = HashMap::new();
    for (job, result) in group.iter().zip(&results) {
        let Ok(applied) = result else { continue };
        for change in &applied.changes {
            rows.insert(
                change.node.uid,
                db::NodeRow {
                    list: job.req.list,
                    node: &change.node,
                    version: change.version,
                },
            );
        }
    }
    db::ensure_lists(&mut tx, &lists, now_ms).await?;
    let rows: Vec<_> = rows.into_values().collect();
    db::store_nodes(&mut tx, &rows).await?;
    db::store_last_seqs(&mut tx, &new_seqs.into_iter().collect::<Vec<_>>()).await?;
    let written = started.elapsed();
    tx.commit().await?;
    for (uid, node) in stored {
        cache.put(uid, node);
    }
    // Where a group's time goes, for profiling (docs/BENCHMARKS.md, "ingest"):
    // TETHER_LOG=warn,tether::server::sync=debug.
    tracing::debug!(
        batches = group.len(),
        rows = rows.len(),
        cached,
        read_ms = read.as_secs_f64() * 1e3,
        plan_ms = (planned - read).as_secs_f64() * 1e3,
        write_ms = (written - planned).as_secs_f64() * 1e3,
        commit_ms = (started.elapsed() - written).as_secs_f64() * 1e3,
        "committed a group"
    );
    Ok(results)
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
