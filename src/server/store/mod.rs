//! The store: where lists, nodes and clients' sequence numbers live, on SQLite or on
//! PostgreSQL, chosen by the database URL's scheme at start.
//!
//! Everything above this module — the writer ([`super::sync`]), the fan-out
//! ([`super::hub`]), the live sockets — talks to [`Store`] and [`WriteTx`] and does
//! not know which database is underneath. The two back ends differ only in SQL and
//! in who else may write:
//!
//! * [`sqlite`]: the embedded default, one Tether process per file; this node's
//!   writer is the only writer, so it may cache node states between commits.
//! * [`postgres`]: any number of Tether nodes on one database. A writer takes each
//!   list's lock for its transaction, so a list's versions become visible in order
//!   on every node, and the commit sends a notification that wakes the other
//!   nodes' fan-out ([`postgres::listen`]).
//!
//! Node states are stored as the sync module's JSON; SQL only stores, indexes and
//! orders them. All queries are runtime `sqlx::query` (no compile-time database).

pub mod postgres;
pub mod sqlite;

use std::collections::{HashMap, HashSet};

use sqlx::{pool::PoolConnection, Postgres, Sqlite, Transaction};

use super::config::DatabaseConfig;
use crate::model::{batch::StoredNode, wire::PullPage, Node, Uid};

/// The store a server runs on.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the database directory {dir}: {detail}")]
    CreateDir { dir: String, detail: String },
    #[error("{0:?} is neither a SQLite URL (sqlite://…) nor a PostgreSQL URL (postgres://…)")]
    UnknownScheme(String),
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored node {uid} is corrupt: {detail}")]
    Corrupt { uid: String, detail: String },
}

impl StoreError {
    /// Whether the database cannot be reached right now (retry later), as opposed to
    /// a fault of the data or the code.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlx(
                sqlx::Error::PoolClosed
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::WorkerCrashed
            )
        ) || self.database_code().is_some_and(|code| {
            // PostgreSQL shutting down, starting up, or out of connections.
            code.starts_with("57") || code.starts_with("08") || code == "53300"
        })
    }

    /// Whether running the same transaction again may succeed: a race with another
    /// node (a uid created in two lists at once breaks the uniqueness of node uids;
    /// run again, the transaction sees the other list's node and refuses the batch),
    /// a serialization failure or a deadlock.
    pub fn is_retryable(&self) -> bool {
        self.database_code().is_some_and(|code| {
            // PostgreSQL's codes, then SQLite's extended code for a unique index.
            matches!(code.as_str(), "40001" | "40P01" | "23505" | "2067")
        })
    }

    fn database_code(&self) -> Option<String> {
        match self {
            StoreError::Sqlx(sqlx::Error::Database(e)) => e.code().map(|c| c.into_owned()),
            _ => None,
        }
    }
}

/// A list and a client id: whose sequence numbers `client_seqs` records.
pub type SeqKey = (Uid, String);

/// A node's merged state to store under a new version.
pub struct NodeRow<'a> {
    pub list: Uid,
    pub node: &'a Node,
    pub version: u64,
}

/// A list's last version after a commit, and when it first came to be.
#[derive(Clone, Copy, Debug)]
pub struct ListRow {
    pub uid: Uid,
    pub version: u64,
}

impl Store {
    /// Opens the database the URL names (SQLite: the file and its directory are
    /// created if missing; PostgreSQL: the database is created if missing) and
    /// applies its migrations.
    pub async fn open(config: &DatabaseConfig) -> Result<Store, StoreError> {
        if config.url.starts_with("sqlite:") {
            Ok(Store::Sqlite(sqlite::SqliteStore::open(config).await?))
        } else if is_postgres_url(&config.url) {
            Ok(Store::Postgres(postgres::PgStore::open(config).await?))
        } else {
            Err(StoreError::UnknownScheme(config.url.clone()))
        }
    }

    /// `"sqlite"` or `"postgres"`, for logs and `/healthz`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Whether this node's writer is the only one (it may then cache what it wrote).
    pub fn sole_writer(&self) -> bool {
        matches!(self, Store::Sqlite(_))
    }

    /// Whether the database answers (for `/healthz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.ping().await,
            Store::Postgres(s) => s.ping().await,
        }
    }

    /// Closes the pools, waiting for their connections to finish.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => s.close().await,
        }
    }

    /// The changes of `list` after version `after`, at most `limit` of them.
    pub async fn pull(&self, list: Uid, after: u64, limit: u32) -> Result<PullPage, StoreError> {
        // Integers are signed in both databases: a cursor past i64::MAX (no version
        // ever gets there) must not wrap around to a negative one and pull everything.
        let after_sql = after.min(i64::MAX as u64) as i64;
        let rows = match self {
            Store::Sqlite(s) => s.pull_rows(list, after_sql, limit).await?,
            Store::Postgres(s) => s.pull_rows(list, after_sql, limit).await?,
        };
        page_of(list, after, limit, rows)
    }

    /// Tells the other nodes who follows a list on this one (nothing on SQLite,
    /// which has no other nodes).
    pub async fn announce_presence(&self, payload: &str) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(_) => Ok(()),
            Store::Postgres(s) => s.announce_presence(payload).await,
        }
    }

    /// The last version `list` gave out (0 for a list never written).
    pub async fn list_version(&self, list: Uid) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.list_version(list).await,
            Store::Postgres(s) => s.list_version(list).await,
        }
    }

    /// Every stored row of every table as a line of text, in a stable order: a
    /// fingerprint of the whole store, so tests (and an operator) can tell that a
    /// refused request changed nothing at all, not just nothing in one list.
    pub async fn dump(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Sqlite(s) => s.dump().await,
            Store::Postgres(s) => s.dump().await,
        }
    }

    /// A connection for the writer, which it may hold across several commits.
    pub async fn writer_connection(&self) -> Result<WriteConn, StoreError> {
        Ok(match self {
            Store::Sqlite(s) => WriteConn::Sqlite(s.write.acquire().await?),
            Store::Postgres(s) => WriteConn::Postgres(s.pool.acquire().await?),
        })
    }

    /// Connections of the pools: (open, idle), for `/metrics`.
    pub fn pool_connections(&self) -> (u32, usize) {
        match self {
            Store::Sqlite(s) => (
                s.read.size() + s.write.size(),
                s.read.num_idle() + s.write.num_idle(),
            ),
            Store::Postgres(s) => (s.pool.size(), s.pool.num_idle()),
        }
    }
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// One raw row of a pull: uid, version, state JSON.
pub type PullRow = (String, i64, String);

/// One raw node row the writer loads: uid, list, state JSON.
pub type NodeRowText = (String, String, String);

/// A pull page from rows fetched with a limit of `limit + 1` (the extra row only
/// tells that more remain).
fn page_of(list: Uid, after: u64, limit: u32, rows: Vec<PullRow>) -> Result<PullPage, StoreError> {
    let more = rows.len() > limit as usize;
    let changes = rows
        .into_iter()
        .take(limit as usize)
        .map(|(uid, version, state)| {
            Ok(crate::model::wire::Change {
                version: version as u64,
                node: decode_state(uid, &state)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let cursor = changes.last().map_or(after, |c| c.version);
    Ok(PullPage {
        list,
        changes,
        cursor,
        more,
        server_time_ms: crate::model::clock::wall_clock_ms(),
    })
}

/// A connection the writer holds.
pub enum WriteConn {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl WriteConn {
    pub async fn begin(&mut self) -> Result<WriteTx<'_>, StoreError> {
        use sqlx::Acquire;
        Ok(match self {
            WriteConn::Sqlite(c) => WriteTx::Sqlite(c.begin().await?),
            WriteConn::Postgres(c) => WriteTx::Postgres(c.begin().await?),
        })
    }
}

/// The writer's transaction: the few statements a group commit needs.
pub enum WriteTx<'c> {
    Sqlite(Transaction<'c, Sqlite>),
    Postgres(Transaction<'c, Postgres>),
}

impl WriteTx<'_> {
    /// Takes the lists' locks until the commit (PostgreSQL; SQLite has one writer)
    /// and reads the last version each gave out (0 for a list not stored yet).
    pub async fn lock_lists(&mut self, lists: &[Uid]) -> Result<HashMap<Uid, u64>, StoreError> {
        match self {
            WriteTx::Sqlite(tx) => sqlite::list_versions(tx, lists).await,
            WriteTx::Postgres(tx) => postgres::lock_lists(tx, lists).await,
        }
    }

    /// The lists' last versions as committed now, without locking them (a list not
    /// stored yet is left out).
    pub async fn list_versions(&mut self, lists: &[Uid]) -> Result<HashMap<Uid, u64>, StoreError> {
        match self {
            WriteTx::Sqlite(tx) => sqlite::list_versions(tx, lists).await,
            WriteTx::Postgres(tx) => postgres::list_versions(tx, lists).await,
        }
    }

    /// Loads the given nodes (any list). Where a uid names both a list's root and
    /// a node another list made before that list existed, the root is answered.
    pub async fn load_nodes(
        &mut self,
        uids: &[Uid],
    ) -> Result<HashMap<Uid, StoredNode>, StoreError> {
        let rows = match self {
            WriteTx::Sqlite(tx) => sqlite::load_nodes(tx, uids).await?,
            WriteTx::Postgres(tx) => postgres::load_nodes(tx, uids).await?,
        };
        stored_nodes(rows)
    }

    /// Loads those of `uids` that `list` wrote after version `after` (PostgreSQL
    /// reads only those rows; SQLite, whose writer never needs it, reads them all).
    pub async fn load_nodes_changed(
        &mut self,
        list: Uid,
        after: u64,
        uids: &[Uid],
    ) -> Result<HashMap<Uid, StoredNode>, StoreError> {
        let rows = match self {
            WriteTx::Sqlite(tx) => sqlite::load_nodes(tx, uids).await?,
            WriteTx::Postgres(tx) => postgres::load_nodes_changed(tx, list, after, uids).await?,
        };
        let list_text = list.to_string();
        stored_nodes(
            rows.into_iter()
                .filter(|(_, l, _)| *l == list_text)
                .collect(),
        )
    }

    /// Which of `uids` name a list that has been written.
    pub async fn known_lists(&mut self, uids: &[Uid]) -> Result<HashSet<Uid>, StoreError> {
        let rows = match self {
            WriteTx::Sqlite(tx) => sqlite::known_lists(tx, uids).await?,
            WriteTx::Postgres(tx) => postgres::known_lists(tx, uids).await?,
        };
        rows.iter().map(|uid| parse_uid(uid)).collect()
    }

    /// The last sequence number applied for each `(list, client)` that has one.
    pub async fn last_seqs(&mut self, keys: &[SeqKey]) -> Result<HashMap<SeqKey, u64>, StoreError> {
        match self {
            WriteTx::Sqlite(tx) => sqlite::last_seqs(tx, keys).await,
            WriteTx::Postgres(tx) => postgres::last_seqs(tx, keys).await,
        }
    }

    /// Creates the lists that are new and records each list's last version.
    pub async fn store_lists(&mut self, lists: &[ListRow], now_ms: u64) -> Result<(), StoreError> {
        match self {
            WriteTx::Sqlite(tx) => sqlite::store_lists(tx, lists, now_ms).await,
            WriteTx::Postgres(tx) => postgres::store_lists(tx, lists, now_ms).await,
        }
    }

    /// Stores node states (at most one row per uid).
    pub async fn store_nodes(&mut self, rows: &[NodeRow<'_>]) -> Result<(), StoreError> {
        match self {
            WriteTx::Sqlite(tx) => sqlite::store_nodes(tx, rows).await,
            WriteTx::Postgres(tx) => postgres::store_nodes(tx, rows).await,
        }
    }

    /// Records the highest sequence number applied for each `(list, client)`.
    pub async fn store_last_seqs(&mut self, seqs: &[(SeqKey, u64)]) -> Result<(), StoreError> {
        match self {
            WriteTx::Sqlite(tx) => sqlite::store_last_seqs(tx, seqs).await,
            WriteTx::Postgres(tx) => postgres::store_last_seqs(tx, seqs).await,
        }
    }

    /// Tells the other nodes, at commit, that these lists have new versions
    /// (PostgreSQL's NOTIFY; nothing on SQLite, which has no other nodes).
    pub async fn announce(&mut self, lists: &[ListRow], now_ms: u64) -> Result<(), StoreError> {
        match self {
            WriteTx::Sqlite(_) => Ok(()),
            WriteTx::Postgres(tx) => postgres::announce(tx, lists, now_ms).await,
        }
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            WriteTx::Sqlite(tx) => tx.commit().await?,
            WriteTx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// Decoded node rows by uid. Where a uid names both a list's root and a node another
/// list made before that list existed, the root is kept.
fn stored_nodes(rows: Vec<NodeRowText>) -> Result<HashMap<Uid, StoredNode>, StoreError> {
    let mut found: HashMap<Uid, StoredNode> = HashMap::with_capacity(rows.len());
    for (uid, list, state) in rows {
        let node = StoredNode {
            list: parse_uid(&list)?,
            node: decode_state(uid, &state)?,
        };
        let is_root = node.list == node.node.uid;
        if is_root || !found.contains_key(&node.node.uid) {
            found.insert(node.node.uid, node);
        }
    }
    Ok(found)
}

/// The stored JSON of a node.
fn encode_state(node: &Node) -> Result<String, StoreError> {
    serde_json::to_string(node).map_err(|e| StoreError::Corrupt {
        uid: node.uid.to_string(),
        detail: e.to_string(),
    })
}

/// A node back from its stored JSON.
fn decode_state(uid: String, state: &str) -> Result<Node, StoreError> {
    serde_json::from_str(state).map_err(|e| StoreError::Corrupt {
        uid,
        detail: e.to_string(),
    })
}

/// A uid read back from a row.
fn parse_uid(text: &str) -> Result<Uid, StoreError> {
    Uid::parse(text).map_err(|e| StoreError::Corrupt {
        uid: text.to_string(),
        detail: e.to_string(),
    })
}

/// The dump's line for each table's row (shared by both back ends).
fn dump_lines(
    lists: Vec<(String, i64, i64)>,
    nodes: Vec<(String, String, Option<String>, i64, String)>,
    seqs: Vec<(String, String, i64)>,
) -> Vec<String> {
    let lists = lists
        .into_iter()
        .map(|(uid, at, version)| format!("list {uid} {at} v{version}"));
    let nodes = nodes.into_iter().map(|(uid, list, kind, version, state)| {
        format!("node {uid} {list} {kind:?} {version} {state}")
    });
    let seqs = seqs
        .into_iter()
        .map(|(list, client, seq)| format!("seq {list} {client} {seq}"));
    lists.chain(nodes).chain(seqs).collect()
}
