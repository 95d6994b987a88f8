//! The SQLite store: opening it, and the few queries sync needs.
//!
//! SQLite runs in WAL mode so pulls read a committed snapshot while the single writer
//! (see [`super::sync`]) commits. Writes go through one dedicated connection: SQLite
//! has one writer anyway, and one connection lets the writer assign versions in
//! commit order without ever waiting on a lock. Reads use a small pool.
//!
//! Node states are stored as the sync module's JSON; SQL only stores, indexes and
//! orders them. All queries are runtime `sqlx::query` (no compile-time database).

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    str::FromStr,
    time::Duration,
};

use sqlx::{
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
    },
    Row, SqliteConnection, SqlitePool,
};

use super::config::{DatabaseConfig, Synchronous};
use crate::model::{
    batch::StoredNode,
    wire::{Change, PullPage},
    Node, Uid,
};

/// The store: a read pool and a one-connection write pool.
#[derive(Clone, Debug)]
pub struct Db {
    pub read: SqlitePool,
    pub write: SqlitePool,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create the database directory {dir}: {detail}")]
    CreateDir { dir: String, detail: String },
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored node {uid} is corrupt: {detail}")]
    Corrupt { uid: String, detail: String },
}

impl Db {
    /// Opens (creating if missing) the database, sets WAL, foreign keys and the
    /// synchronous level, and applies the migrations.
    pub async fn open(config: &DatabaseConfig) -> Result<Db, DbError> {
        let memory = config.url.contains(":memory:") || config.url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(&config.url)?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .synchronous(match config.synchronous {
                Synchronous::Full => SqliteSynchronous::Full,
                Synchronous::Normal => SqliteSynchronous::Normal,
            });
        let options = if memory {
            options
        } else {
            create_parent_dir(options.get_filename())?;
            options.journal_mode(SqliteJournalMode::Wal)
        };

        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // An in-memory database lives as long as its one connection.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(writer_tuning(options.clone()))
            .await?;
        sqlx::migrate!("./migrations").run(&write).await?;
        // An in-memory database is private to its connection: read through the writer.
        let read = if memory {
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await?
        };
        Ok(Db { read, write })
    }

    /// Whether the database answers (for `/healthz`).
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// Closes both pools, waiting for their connections to finish.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    /// The changes of `list` after version `after`, at most `limit` of them.
    pub async fn pull(&self, list: Uid, after: u64, limit: u32) -> Result<PullPage, DbError> {
        // Fetch one more than asked to learn whether more remain.
        let rows = sqlx::query(
            "SELECT uid, version, state FROM nodes \
             WHERE list_uid = ?1 AND version > ?2 ORDER BY version LIMIT ?3",
        )
        .bind(list.to_string())
        // SQLite integers are signed: a cursor past i64::MAX (no version ever gets
        // there) must not wrap around to a negative one and pull everything again.
        .bind(after.min(i64::MAX as u64) as i64)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.read)
        .await?;
        let more = rows.len() > limit as usize;
        let mut changes = Vec::with_capacity(rows.len().min(limit as usize));
        for row in rows.iter().take(limit as usize) {
            let version: i64 = row.try_get("version")?;
            changes.push(Change {
                version: version as u64,
                node: decode_state(row)?,
            });
        }
        let cursor = changes.last().map_or(after, |c| c.version);
        Ok(PullPage {
            list,
            changes,
            cursor,
            more,
            server_time_ms: crate::model::clock::wall_clock_ms(),
        })
    }

    /// Every stored row of every table as a line of text, in a stable order: a
    /// fingerprint of the whole store, so tests (and an operator) can tell that a
    /// refused request changed nothing at all, not just nothing in one list.
    pub async fn dump(&self) -> Result<Vec<String>, DbError> {
        let mut lines = Vec::new();
        for row in sqlx::query("SELECT uid, created_at_ms FROM lists ORDER BY uid")
            .fetch_all(&self.read)
            .await?
        {
            let (uid, at): (String, i64) = (row.try_get(0)?, row.try_get(1)?);
            lines.push(format!("list {uid} {at}"));
        }
        for row in sqlx::query("SELECT uid, list_uid, kind, version, state FROM nodes ORDER BY uid")
            .fetch_all(&self.read)
            .await?
        {
            let (uid, list, kind, version, state): (String, String, Option<String>, i64, String) = (
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
            );
            lines.push(format!("node {uid} {list} {kind:?} {version} {state}"));
        }
        for row in sqlx::query(
            "SELECT list_uid, client, last_seq FROM client_seqs ORDER BY list_uid, client",
        )
        .fetch_all(&self.read)
        .await?
        {
            let (list, client, seq): (String, String, i64) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            lines.push(format!("seq {list} {client} {seq}"));
        }
        Ok(lines)
    }

    /// The highest version stored, where a fresh writer continues from.
    pub async fn max_version(&self) -> Result<u64, DbError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM nodes")
            .fetch_one(&self.write)
            .await?;
        Ok(v.unwrap_or(0) as u64)
    }
}

/// The writer's connection commits thousands of rows per transaction (a group of
/// pushes; see [`super::sync`]). With SQLite's default 2 MB page cache those dirty
/// pages spilled to the WAL mid-transaction and were read back, and the statement
/// journal of each multi-row upsert spilled to a temporary file: most of the
/// writer's time went to `pwrite`/`pread` (docs/BENCHMARKS.md, "ingest"). A larger
/// cache (it only grows as pages are used) and in-memory temporary files keep a
/// group's work in memory until the commit writes it to the WAL once.
fn writer_tuning(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .pragma("cache_size", "-32768") // KiB: 32 MiB
        .pragma("temp_store", "memory")
}

/// Loads the given nodes (any list) inside the writer's transaction.
pub async fn load_nodes(
    conn: &mut SqliteConnection,
    uids: &[Uid],
) -> Result<HashMap<Uid, StoredNode>, DbError> {
    let mut found = HashMap::with_capacity(uids.len());
    // SQLite allows 32766 parameters; chunk well below that.
    for chunk in uids.chunks(500) {
        let placeholders = vec!["?"; chunk.len()].join(",");
        let sql = format!("SELECT uid, list_uid, state FROM nodes WHERE uid IN ({placeholders})");
        let mut query = sqlx::query(&sql);
        for uid in chunk {
            query = query.bind(uid.to_string());
        }
        for row in query.fetch_all(&mut *conn).await? {
            let node = decode_state(&row)?;
            let list: String = row.try_get("list_uid")?;
            let list = Uid::parse(&list).map_err(|e| DbError::Corrupt {
                uid: node.uid.to_string(),
                detail: e.to_string(),
            })?;
            found.insert(node.uid, StoredNode { list, node });
        }
    }
    Ok(found)
}

/// Rows per multi-row statement. The writer thread of sqlx's SQLite driver costs a
/// round trip (two thread switches) per statement, which dominated a batch stored
/// row by row; 500 rows of 5 values stay far below SQLite's 32,766 bound values.
const ROWS_PER_STATEMENT: usize = 500;

/// `(?,?,…),(?,?,…)…`: `rows` groups of `columns` placeholders.
fn placeholders(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(","));
    vec![row; rows].join(",")
}

/// A list and a client id: whose sequence numbers `client_seqs` records.
pub type SeqKey = (Uid, String);

/// The last sequence number applied for each `(list, client)` that has one.
///
/// The query names the lists and the clients separately (`list_uid IN (…) AND
/// client IN (…)`), which SQLite answers with primary-key lookups; a row-value
/// `(list_uid, client) IN (VALUES …)` would scan the whole table. Pairs of the
/// cross product that were not asked for are dropped here.
pub async fn last_seqs(
    conn: &mut SqliteConnection,
    keys: &[SeqKey],
) -> Result<HashMap<SeqKey, u64>, DbError> {
    let mut found = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let wanted: HashSet<&SeqKey> = chunk.iter().collect();
        let mut lists: Vec<String> = chunk.iter().map(|(list, _)| list.to_string()).collect();
        lists.sort_unstable();
        lists.dedup();
        let mut clients: Vec<&str> = chunk.iter().map(|(_, client)| client.as_str()).collect();
        clients.sort_unstable();
        clients.dedup();
        let sql = format!(
            "SELECT list_uid, client, last_seq FROM client_seqs \
             WHERE list_uid IN ({}) AND client IN ({})",
            vec!["?"; lists.len()].join(","),
            vec!["?"; clients.len()].join(",")
        );
        let mut query = sqlx::query(&sql);
        for list in &lists {
            query = query.bind(list.as_str());
        }
        for client in &clients {
            query = query.bind(*client);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let list: String = row.try_get("list_uid")?;
            let list = Uid::parse(&list).map_err(|e| DbError::Corrupt {
                uid: list.clone(),
                detail: e.to_string(),
            })?;
            let key = (list, row.try_get("client")?);
            if wanted.contains(&key) {
                let seq: i64 = row.try_get("last_seq")?;
                found.insert(key, seq as u64);
            }
        }
    }
    Ok(found)
}

/// Records the lists' existence (idempotent).
pub async fn ensure_lists(
    conn: &mut SqliteConnection,
    lists: &[Uid],
    now_ms: u64,
) -> Result<(), DbError> {
    for chunk in lists.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO lists (uid, created_at_ms) VALUES {} ON CONFLICT DO NOTHING",
            placeholders(chunk.len(), 2)
        );
        let mut query = sqlx::query(&sql);
        for list in chunk {
            query = query.bind(list.to_string()).bind(now_ms as i64);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A node's merged state to store under a new version.
pub struct NodeRow<'a> {
    pub list: Uid,
    pub node: &'a Node,
    pub version: u64,
}

/// Stores node states (at most one row per uid), a few hundred per statement.
///
/// While SQLite runs one statement on sqlx's worker thread, this task encodes the
/// next chunk's JSON, so the two threads work side by side instead of in turn.
pub async fn store_nodes(conn: &mut SqliteConnection, rows: &[NodeRow<'_>]) -> Result<(), DbError> {
    let mut chunks = rows.chunks(ROWS_PER_STATEMENT);
    let Some(mut chunk) = chunks.next() else {
        return Ok(());
    };
    let mut states = encode_states(chunk)?;
    loop {
        let next = chunks.next();
        let sql = format!(
            "INSERT INTO nodes (uid, list_uid, kind, version, state) VALUES {} \
             ON CONFLICT (uid) DO UPDATE SET kind = excluded.kind, \
             version = excluded.version, state = excluded.state",
            placeholders(chunk.len(), 5)
        );
        let mut query = sqlx::query(&sql);
        for (row, state) in chunk.iter().zip(states) {
            query = query
                .bind(row.node.uid.to_string())
                .bind(row.list.to_string())
                .bind(row.node.kind_name())
                .bind(row.version as i64)
                .bind(state);
        }
        // `join!` polls the statement first (handing it to the worker thread), then
        // encodes the next chunk here while the worker runs it.
        let (stored, encoded) = tokio::join!(query.execute(&mut *conn), async {
            next.map(encode_states).transpose()
        });
        stored?;
        match (next, encoded?) {
            (Some(next), Some(encoded)) => {
                chunk = next;
                states = encoded;
            }
            _ => return Ok(()),
        }
    }
}

/// The stored JSON of each row's node.
fn encode_states(rows: &[NodeRow<'_>]) -> Result<Vec<String>, DbError> {
    rows.iter()
        .map(|row| {
            serde_json::to_string(row.node).map_err(|e| DbError::Corrupt {
                uid: row.node.uid.to_string(),
                detail: e.to_string(),
            })
        })
        .collect()
}

/// Records the highest sequence number applied for each `(list, client)`.
pub async fn store_last_seqs(
    conn: &mut SqliteConnection,
    seqs: &[(SeqKey, u64)],
) -> Result<(), DbError> {
    for chunk in seqs.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO client_seqs (list_uid, client, last_seq) VALUES {} \
             ON CONFLICT (list_uid, client) DO UPDATE SET \
             last_seq = MAX(last_seq, excluded.last_seq)",
            placeholders(chunk.len(), 3)
        );
        let mut query = sqlx::query(&sql);
        for ((list, client), seq) in chunk {
            query = query
                .bind(list.to_string())
                .bind(client.as_str())
                .bind(*seq as i64);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

fn decode_state(row: &SqliteRow) -> Result<Node, DbError> {
    let uid: String = row.try_get("uid")?;
    let state: String = row.try_get("state")?;
    serde_json::from_str(&state).map_err(|e| DbError::Corrupt {
        uid,
        detail: e.to_string(),
    })
}

fn create_parent_dir(file: &Path) -> Result<(), DbError> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|e| DbError::CreateDir {
                dir: dir.display().to_string(),
                detail: e.to_string(),
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: String) -> DatabaseConfig {
        DatabaseConfig {
            url,
            synchronous: Synchronous::Full,
        }
    }

    #[tokio::test]
    async fn fresh_file_database_is_created_migrated_and_in_wal_mode() {
        let dir = tempdir();
        let path = dir.join("nested/dir/tether.db");
        let db = Db::open(&config(format!("sqlite://{}", path.display())))
            .await
            .unwrap();
        assert!(path.exists(), "the file and its directories are created");
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&db.write)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&db.write)
            .await
            .unwrap();
        assert_eq!(fk, 1);
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .fetch_all(&db.read)
                .await
                .unwrap();
        for t in ["client_seqs", "lists", "nodes"] {
            assert!(tables.iter().any(|n| n == t), "{t} in {tables:?}");
        }
        db.ping().await.unwrap();
        assert_eq!(db.max_version().await.unwrap(), 0);
        db.close().await;
        // Opening again applies no migration twice.
        let db = Db::open(&config(format!("sqlite://{}", path.display())))
            .await
            .unwrap();
        db.ping().await.unwrap();
        db.close().await;
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn in_memory_database_works() {
        let db = Db::open(&config("sqlite::memory:".into())).await.unwrap();
        db.ping().await.unwrap();
        let page = db.pull(Uid::new(), 0, 10).await.unwrap();
        assert!(page.changes.is_empty());
        assert!(!page.more);
        assert_eq!(page.cursor, 0);
    }

    pub(crate) fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tether-test-{}", Uid::new()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
