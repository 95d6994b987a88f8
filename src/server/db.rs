//! The SQLite store: opening it, and the few queries sync needs.
//!
//! SQLite runs in WAL mode so pulls read a committed snapshot while the single writer
//! (see [`super::sync`]) commits. Writes go through one dedicated connection: SQLite
//! has one writer anyway, and one connection lets the writer assign versions in
//! commit order without ever waiting on a lock. Reads use a small pool.
//!
//! Node states are stored as the sync module's JSON; SQL only stores, indexes and
//! orders them. All queries are runtime `sqlx::query` (no compile-time database).

use std::{collections::HashMap, path::Path, str::FromStr, time::Duration};

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
            .connect_with(options.clone())
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
        .bind(after as i64)
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

    /// The highest version stored, where a fresh writer continues from.
    pub async fn max_version(&self) -> Result<u64, DbError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM nodes")
            .fetch_one(&self.write)
            .await?;
        Ok(v.unwrap_or(0) as u64)
    }
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

/// The last sequence number applied for `client` on `list` (0 if none).
pub async fn last_seq(
    conn: &mut SqliteConnection,
    list: Uid,
    client: &str,
) -> Result<u64, DbError> {
    let seq: Option<i64> =
        sqlx::query_scalar("SELECT last_seq FROM client_seqs WHERE list_uid = ?1 AND client = ?2")
            .bind(list.to_string())
            .bind(client)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(seq.unwrap_or(0) as u64)
}

/// Records a list's existence (idempotent).
pub async fn ensure_list(
    conn: &mut SqliteConnection,
    list: Uid,
    now_ms: u64,
) -> Result<(), DbError> {
    sqlx::query("INSERT INTO lists (uid, created_at_ms) VALUES (?1, ?2) ON CONFLICT DO NOTHING")
        .bind(list.to_string())
        .bind(now_ms as i64)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Stores a node's merged state under a new version.
pub async fn store_node(
    conn: &mut SqliteConnection,
    list: Uid,
    node: &Node,
    version: u64,
) -> Result<(), DbError> {
    let state = serde_json::to_string(node).map_err(|e| DbError::Corrupt {
        uid: node.uid.to_string(),
        detail: e.to_string(),
    })?;
    sqlx::query(
        "INSERT INTO nodes (uid, list_uid, kind, version, state) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (uid) DO UPDATE SET kind = excluded.kind, version = excluded.version, \
         state = excluded.state",
    )
    .bind(node.uid.to_string())
    .bind(list.to_string())
    .bind(node.kind_name())
    .bind(version as i64)
    .bind(state)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records the highest sequence number applied for a client on a list.
pub async fn store_last_seq(
    conn: &mut SqliteConnection,
    list: Uid,
    client: &str,
    seq: u64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO client_seqs (list_uid, client, last_seq) VALUES (?1, ?2, ?3) \
         ON CONFLICT (list_uid, client) DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq)",
    )
    .bind(list.to_string())
    .bind(client)
    .bind(seq as i64)
    .execute(&mut *conn)
    .await?;
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
