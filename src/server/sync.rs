//! Push and pull: the single writer that turns pushed batches into committed changes.
//!
//! Every push goes to one writer task over a channel. The writer takes whatever
//! batches are waiting (group commit), and for each one, inside one SQLite
//! transaction: loads the nodes the batch touches, lets the sync module check and
//! merge it ([`crate::model::batch::plan_push`]), and stores the changed nodes under
//! new versions. Each batch runs in its own savepoint, so a bad batch changes nothing
//! while its neighbours in the same group still commit. Only after the commit does a
//! batch get its acknowledgement and do its changes go out to live subscribers.
//!
//! Versions come from a counter only this task touches, so they are strictly
//! increasing in commit order: a pull of "after V" can never miss a change that
//! commits later with a smaller version.

use std::time::Duration;

use sqlx::{Acquire, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::{config::Config, db, db::Db, hub::Hub};
use crate::model::{
    batch::{nodes_to_load, plan_push, Limits},
    clock::wall_clock_ms,
    registry,
    wire::{Change, PullPage, PushAck, PushRequest, SyncError},
    Uid,
};

/// Batches the writer commits together at most.
const GROUP_MAX: usize = 64;

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
    db.pull(list, after, limit).await.map_err(internal)
}

/// Every change of a list, for rendering it: the whole current state in one page.
pub async fn snapshot(db: &Db, list: Uid) -> Result<PullPage, SyncError> {
    db.pull(list, 0, u32::MAX - 1).await.map_err(internal)
}

async fn run(db: Db, hub: Hub, limits: Limits, mut next_version: u64, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let start_version = next_version;
        match commit_group(&db, &limits, &mut next_version, &group).await {
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

/// Applies every batch of the group in one transaction, each in its own savepoint.
/// The outer `Err` means the transaction itself failed (nothing committed).
async fn commit_group(
    db: &Db,
    limits: &Limits,
    next_version: &mut u64,
    group: &[Job],
) -> Result<Vec<Result<Applied, SyncError>>, sqlx::Error> {
    let mut conn = db.write.acquire().await?;
    let mut tx = conn.begin().await?;
    let mut results = Vec::with_capacity(group.len());
    for job in group {
        let before = *next_version;
        let mut savepoint = tx.begin().await?;
        match apply_batch(&mut savepoint, limits, next_version, &job.req).await {
            Ok(applied) => {
                savepoint.commit().await?;
                results.push(Ok(applied));
            }
            Err(e) => {
                savepoint.rollback().await?;
                *next_version = before;
                results.push(Err(e));
            }
        }
    }
    tx.commit().await?;
    Ok(results)
}

async fn apply_batch(
    conn: &mut SqliteConnection,
    limits: &Limits,
    next_version: &mut u64,
    req: &PushRequest,
) -> Result<Applied, SyncError> {
    let now_ms = wall_clock_ms();
    let client = req.client.to_string();
    let stored = db::load_nodes(conn, &nodes_to_load(req))
        .await
        .map_err(internal)?;
    let last_seq = db::last_seq(conn, req.list, &client)
        .await
        .map_err(internal)?;
    let plan = plan_push(registry(), limits, req, last_seq, &stored, now_ms)?;

    let mut changes = Vec::with_capacity(plan.changed.len());
    if !plan.changed.is_empty() || plan.acked_seq > last_seq {
        db::ensure_list(conn, req.list, now_ms)
            .await
            .map_err(internal)?;
    }
    for node in plan.changed {
        let version = *next_version;
        *next_version += 1;
        db::store_node(conn, req.list, &node, version)
            .await
            .map_err(internal)?;
        changes.push(Change { version, node });
    }
    if plan.acked_seq > last_seq {
        db::store_last_seq(conn, req.list, &client, plan.acked_seq)
            .await
            .map_err(internal)?;
    }
    Ok(Applied {
        ack: PushAck {
            list: req.list,
            acked_seq: plan.acked_seq,
            version: *next_version - 1,
            server_time_ms: now_ms,
        },
        changes,
    })
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
