//! Writers: each one a [`Replica`] of the list with its own client id, making real
//! ops (HLC stamps, sequence numbers) and pushing its outbox as the browser does:
//! one push in flight, up to `batch` ops in it, dropped from the outbox on the ack.
//!
//! With a rate, ops are made on a schedule (op `n` is due at `start + n/rate`); when
//! the server is slow the writer falls behind its schedule rather than piling up
//! requests, and that lag is reported, so a slow server cannot hide its latency by
//! slowing the writer (coordinated omission). With rate 0 the writer makes a full
//! batch whenever its outbox is empty: as fast as the server acknowledges.

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;

use super::{
    api::{Api, CallError},
    config::OpKind,
    ledger::Ledger,
    stats::{Errors, Histogram},
};
use crate::model::{clock::wall_clock_ms, ClientId, Placement, Replica, Todo, Uid, Value};

/// Ops a single push carries at most while seeding (the server's default limit).
const SEED_BATCH: usize = 1000;
/// Outbox size past which a writer on a schedule stops making ops until acks come.
const MAX_BACKLOG_BATCHES: usize = 10;

/// What one writer does.
#[derive(Debug, Clone, Copy)]
pub struct WriterPlan {
    pub index: u32,
    pub list: Uid,
    pub op: OpKind,
    pub batch: usize,
    /// Time between two ops of this writer; `None` = as fast as it can.
    pub interval: Option<Duration>,
}

/// Measurements every writer adds to.
#[derive(Default)]
pub struct WriterShared {
    /// Push sent → acknowledgement received.
    pub push_latency: Histogram,
    /// How late ops were made behind their schedule (rate mode only).
    pub lag: Histogram,
    pub pushes: std::sync::atomic::AtomicU64,
}

/// The window a writer works in.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Instant,
    /// No op is made from here on.
    pub deadline: Instant,
    /// The outbox must be acknowledged by here.
    pub flush_by: Instant,
}

impl Window {
    /// Writing for `duration` from a moment from now (so every writer task is
    /// spawned before the first op), then `drain` more to empty the outboxes.
    pub fn from_now(duration: Duration, drain: Duration) -> Window {
        let start = Instant::now() + Duration::from_millis(20);
        Window {
            start,
            deadline: start + duration,
            flush_by: start + duration + drain,
        }
    }
}

pub struct Writer {
    plan: WriterPlan,
    api: Api,
    replica: Replica,
    /// The todos whose titles `set` ops write.
    pool: Vec<Uid>,
}

impl Writer {
    pub fn new(plan: WriterPlan, api: Api) -> Writer {
        Writer {
            plan,
            api,
            replica: Replica::new(plan.list, ClientId::new()),
            pool: Vec::new(),
        }
    }

    /// Creates `count` todos (not measured) and pushes them; returns the server's
    /// version after the last ack.
    pub async fn seed(&mut self, count: usize, errors: &Errors) -> Result<u64, CallError> {
        let list = self.plan.list;
        for i in 0..count {
            let todo = Todo {
                title: format!("seed {}.{i}", self.plan.index),
                completed: false,
            };
            let (uid, _) = self
                .replica
                .create(list, Placement::End, &todo, wall_clock_ms())
                .expect("a valid todo");
            self.pool.push(uid);
        }
        let mut version = 0;
        let mut failures = 0;
        while let Some(req) = self.replica.push_request(SEED_BATCH) {
            match self.api.push(&req).await {
                Ok(ack) => {
                    self.replica.ack(req.client, ack.acked_seq);
                    version = ack.version;
                }
                Err(e) if e.is_retryable() && failures < 100 => {
                    failures += 1;
                    errors.add(&e.code());
                    tokio::time::sleep(e.backoff()).await;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(version)
    }

    /// A pool for `set` ops: one todo per op of a full batch, so the ops of one
    /// push touch distinct todos and each becomes its own change.
    pub async fn prepare(&mut self, errors: &Errors) -> Result<u64, CallError> {
        match self.plan.op {
            OpKind::Set => self.seed(self.plan.batch, errors).await,
            OpKind::Create => Ok(0),
        }
    }

    /// Writes for the window, then flushes; returns when the outbox is empty (or
    /// the flush time is up, or a push fails for good).
    pub async fn run(
        mut self,
        window: Window,
        ledger: Arc<Ledger>,
        shared: Arc<WriterShared>,
        errors: Arc<Errors>,
    ) {
        let plan = self.plan;
        let first_seq = self.replica.next_seq();
        let max_backlog = plan.batch * MAX_BACKLOG_BATCHES;
        let mut made: u64 = 0;
        loop {
            let now = Instant::now();
            let making = now < window.deadline;
            if making {
                let pending = self.replica.pending();
                let due = match plan.interval {
                    None => plan.batch.saturating_sub(pending) as u64,
                    Some(interval) => {
                        let elapsed = now.duration_since(window.start).as_secs_f64();
                        ((elapsed / interval.as_secs_f64()) as u64 + 1).saturating_sub(made)
                    }
                };
                let room = max_backlog.saturating_sub(pending) as u64;
                for _ in 0..due.min(room) {
                    if let Some(interval) = plan.interval {
                        let scheduled = window.start + interval.mul_f64(made as f64);
                        shared
                            .lag
                            .record(Instant::now().saturating_duration_since(scheduled));
                    }
                    self.make_op(&ledger);
                    made += 1;
                }
            }
            if self.replica.pending() == 0 {
                match plan.interval {
                    Some(interval) if making => {
                        let next = window.start + interval.mul_f64(made as f64);
                        tokio::time::sleep_until(next.min(window.deadline)).await;
                        continue;
                    }
                    None if making => continue,
                    _ => break,
                }
            }
            if now >= window.flush_by {
                errors.add_n("unacknowledged_at_end", self.replica.pending() as u64);
                break;
            }
            let req = self
                .replica
                .push_request(plan.batch)
                .expect("the outbox is not empty");
            let sent = Instant::now();
            match self.api.push(&req).await {
                Ok(ack) => {
                    shared.push_latency.record(sent.elapsed());
                    shared
                        .pushes
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.replica.ack(req.client, ack.acked_seq);
                    ledger.acked(plan.index, (ack.acked_seq + 1).saturating_sub(first_seq));
                }
                Err(e) => {
                    errors.add(&e.code());
                    if !e.is_retryable() {
                        eprintln!("writer {}: giving up: {e}", plan.index);
                        break;
                    }
                    tokio::time::sleep(e.backoff()).await;
                }
            }
        }
    }

    /// Makes the next measured op: its title is its token.
    fn make_op(&mut self, ledger: &Ledger) {
        let token = ledger.made(self.plan.index, ledger.now_ns());
        let title = token.title();
        let wall_ms = wall_clock_ms();
        let result = match self.plan.op {
            OpKind::Set => {
                let node = self.pool[(token.n % self.pool.len() as u64) as usize];
                self.replica
                    .set(node, "title", Value::String(title), wall_ms)
                    .map(|_| ())
            }
            OpKind::Create => {
                let todo = Todo {
                    title,
                    completed: false,
                };
                self.replica
                    .create(self.plan.list, Placement::End, &todo, wall_ms)
                    .map(|_| ())
            }
        };
        result.expect("a valid local write");
    }
}
