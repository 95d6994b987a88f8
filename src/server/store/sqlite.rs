//! The SQLite store: the embedded default, one Tether process per database file.
//!
//! SQLite runs in WAL mode so pulls read a committed snapshot while the writer (see
//! [`crate::server::sync`]) commits. Writes go through one dedicated connection:
//! SQLite has one writer anyway, and one connection lets the writer commit without
//! ever waiting on a lock. Reads use a small pool.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    str::FromStr,
    time::Duration,
};

use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    Row, SqliteConnection, SqlitePool,
};

use super::{
    dump_lines, encode_state, parse_uid, ListRow, NodeRow, NodeRowText, PullRow, SeqKey, StoreError,
};
use crate::{
    model::Uid,
    server::config::{DatabaseConfig, Synchronous},
};

/// A read pool and a one-connection write pool.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub read: SqlitePool,
    pub write: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database, sets WAL, foreign keys and the
    /// synchronous level, and applies the migrations.
    pub async fn open(config: &DatabaseConfig) -> Result<SqliteStore, StoreError> {
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
        sqlx::migrate!("./migrations/sqlite").run(&write).await?;
        // An in-memory database is private to its connection: read through the writer.
        let read = if memory {
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await?
        };
        Ok(SqliteStore { read, write })
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    /// Up to `limit + 1` changes of `list` after `after`.
    pub async fn pull_rows(
        &self,
        list: Uid,
        after: i64,
        limit: u32,
    ) -> Result<Vec<PullRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT uid, version, state FROM nodes \
             WHERE list_uid = ?1 AND version > ?2 ORDER BY version LIMIT ?3",
        )
        .bind(list.to_string())
        .bind(after)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.read)
        .await?)
    }

    pub async fn list_version(&self, list: Uid) -> Result<u64, StoreError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT version FROM lists WHERE uid = ?1")
            .bind(list.to_string())
            .fetch_optional(&self.read)
            .await?;
        Ok(v.unwrap_or(0) as u64)
    }

    pub async fn dump(&self) -> Result<Vec<String>, StoreError> {
        let lists = sqlx::query_as("SELECT uid, created_at_ms, version FROM lists ORDER BY uid")
            .fetch_all(&self.read)
            .await?;
        let nodes =
            sqlx::query_as("SELECT uid, list_uid, kind, version, state FROM nodes ORDER BY uid")
                .fetch_all(&self.read)
                .await?;
        let seqs = sqlx::query_as(
            "SELECT list_uid, client, last_seq FROM client_seqs ORDER BY list_uid, client",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(dump_lines(lists, nodes, seqs))
    }
}

/// The writer's connection commits thousands of rows per transaction (a group of
/// pushes; see [`crate::server::sync`]). With SQLite's default 2 MB page cache those
/// dirty pages spilled to the WAL mid-transaction and were read back, and the
/// statement journal of each multi-row upsert spilled to a temporary file: most of
/// the writer's time went to `pwrite`/`pread` (docs/BENCHMARKS.md, "ingest"). A
/// larger cache (it only grows as pages are used) and in-memory temporary files keep
/// a group's work in memory until the commit writes it to the WAL once.
fn writer_tuning(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .pragma("cache_size", "-32768") // KiB: 32 MiB
        .pragma("temp_store", "memory")
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

/// The last version of each stored list among `lists` (the writer is the only one,
/// so no lock is needed beyond SQLite's own).
pub async fn list_versions(
    conn: &mut SqliteConnection,
    lists: &[Uid],
) -> Result<HashMap<Uid, u64>, StoreError> {
    let mut found = HashMap::with_capacity(lists.len());
    for chunk in lists.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT uid, version FROM lists WHERE uid IN ({})",
            vec!["?"; chunk.len()].join(",")
        );
        let mut query = sqlx::query_as::<_, (String, i64)>(&sql);
        for list in chunk {
            query = query.bind(list.to_string());
        }
        for (uid, version) in query.fetch_all(&mut *conn).await? {
            found.insert(parse_uid(&uid)?, version as u64);
        }
    }
    Ok(found)
}

/// The rows of the given nodes (any list) inside the writer's transaction.
pub async fn load_nodes(
    conn: &mut SqliteConnection,
    uids: &[Uid],
) -> Result<Vec<NodeRowText>, StoreError> {
    let mut rows = Vec::with_capacity(uids.len());
    // SQLite allows 32766 parameters; chunk well below that.
    for chunk in uids.chunks(ROWS_PER_STATEMENT) {
        let placeholders = vec!["?"; chunk.len()].join(",");
        let sql = format!("SELECT uid, list_uid, state FROM nodes WHERE uid IN ({placeholders})");
        let mut query = sqlx::query_as::<_, NodeRowText>(&sql);
        for uid in chunk {
            query = query.bind(uid.to_string());
        }
        rows.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}

/// Which of `uids` are stored lists.
pub async fn known_lists(
    conn: &mut SqliteConnection,
    uids: &[Uid],
) -> Result<Vec<String>, StoreError> {
    let mut found = Vec::new();
    for chunk in uids.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT uid FROM lists WHERE uid IN ({})",
            vec!["?"; chunk.len()].join(",")
        );
        let mut query = sqlx::query_scalar::<_, String>(&sql);
        for uid in chunk {
            query = query.bind(uid.to_string());
        }
        found.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(found)
}

/// The last sequence number applied for each `(list, client)` that has one.
///
/// The query names the lists and the clients separately (`list_uid IN (…) AND
/// client IN (…)`), which SQLite answers with primary-key lookups; a row-value
/// `(list_uid, client) IN (VALUES …)` would scan the whole table. Pairs of the
/// cross product that were not asked for are dropped here.
pub async fn last_seqs(
    conn: &mut SqliteConnection,
    keys: &[SeqKey],
) -> Result<HashMap<SeqKey, u64>, StoreError> {
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
            let key = (parse_uid(&list)?, row.try_get("client")?);
            if wanted.contains(&key) {
                let seq: i64 = row.try_get("last_seq")?;
                found.insert(key, seq as u64);
            }
        }
    }
    Ok(found)
}

/// Creates the lists that are new and records each one's last version.
pub async fn store_lists(
    conn: &mut SqliteConnection,
    lists: &[ListRow],
    now_ms: u64,
) -> Result<(), StoreError> {
    for chunk in lists.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO lists (uid, created_at_ms, version) VALUES {} \
             ON CONFLICT (uid) DO UPDATE SET version = excluded.version",
            placeholders(chunk.len(), 3)
        );
        let mut query = sqlx::query(&sql);
        for list in chunk {
            query = query
                .bind(list.uid.to_string())
                .bind(now_ms as i64)
                .bind(list.version as i64);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Stores node states (at most one row per uid), a few hundred per statement.
///
/// While SQLite runs one statement on sqlx's worker thread, this task encodes the
/// next chunk's JSON, so the two threads work side by side instead of in turn.
pub async fn store_nodes(
    conn: &mut SqliteConnection,
    rows: &[NodeRow<'_>],
) -> Result<(), StoreError> {
    let mut chunks = rows.chunks(ROWS_PER_STATEMENT);
    let Some(mut chunk) = chunks.next() else {
        return Ok(());
    };
    let mut states = encode_states(chunk)?;
    loop {
        let next = chunks.next();
        let query_sql = upsert_nodes_sql(chunk.len());
        let mut query = sqlx::query(&query_sql);
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

/// The upsert of `rows` node rows. A uid another list holds (not as its root)
/// breaks the `nodes_uid_in_one_list` index: the transaction fails.
fn upsert_nodes_sql(rows: usize) -> String {
    format!(
        "INSERT INTO nodes (uid, list_uid, kind, version, state) VALUES {} \
         ON CONFLICT (uid, list_uid) DO UPDATE SET kind = excluded.kind, \
         version = excluded.version, state = excluded.state",
        placeholders(rows, 5)
    )
}

/// The stored JSON of each row's node.
fn encode_states(rows: &[NodeRow<'_>]) -> Result<Vec<String>, StoreError> {
    rows.iter().map(|row| encode_state(row.node)).collect()
}

/// Records the highest sequence number applied for each `(list, client)`.
pub async fn store_last_seqs(
    conn: &mut SqliteConnection,
    seqs: &[(SeqKey, u64)],
) -> Result<(), StoreError> {
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

fn create_parent_dir(file: &Path) -> Result<(), StoreError> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::CreateDir {
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
            ..DatabaseConfig::default()
        }
    }

    #[tokio::test]
    async fn fresh_file_database_is_created_migrated_and_in_wal_mode() {
        let dir = tempdir();
        let path = dir.join("nested/dir/tether.db");
        let db = SqliteStore::open(&config(format!("sqlite://{}", path.display())))
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
        assert_eq!(db.list_version(Uid::new()).await.unwrap(), 0);
        db.close().await;
        // Opening again applies no migration twice.
        let db = SqliteStore::open(&config(format!("sqlite://{}", path.display())))
            .await
            .unwrap();
        db.ping().await.unwrap();
        db.close().await;
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn in_memory_database_works() {
        let store = crate::server::store::Store::open(&config("sqlite::memory:".into()))
            .await
            .unwrap();
        store.ping().await.unwrap();
        let page = store.pull(Uid::new(), 0, 10).await.unwrap();
        assert!(page.changes.is_empty());
        assert!(!page.more);
        assert_eq!(page.cursor, 0);
    }

    /// A database written before versions counted per list (migrations 0001 and
    /// 0002 only, one server-wide counter) opens with each list continuing from its
    /// own highest version, so every cursor a client holds stays valid.
    #[tokio::test]
    async fn a_database_from_before_per_list_versions_keeps_every_cursor() {
        let dir = tempdir();
        let old = dir.join("old-migrations");
        std::fs::create_dir_all(&old).unwrap();
        for file in ["0001_sync.sql", "0002_nodes_rowid.sql"] {
            std::fs::copy(format!("migrations/sqlite/{file}"), old.join(file)).unwrap();
        }
        let url = format!("sqlite://{}", dir.join("old.db").display());
        let pool = SqlitePool::connect_with(
            SqliteConnectOptions::from_str(&url)
                .unwrap()
                .create_if_missing(true),
        )
        .await
        .unwrap();
        sqlx::migrate::Migrator::new(old.as_path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        let (a, b) = (Uid::new(), Uid::new());
        // One counter over both lists: a has 1, 3, 5 and b has 2, 4.
        for (list, version) in [(a, 1), (b, 2), (a, 3), (b, 4), (a, 5)] {
            sqlx::query("INSERT OR IGNORE INTO lists (uid, created_at_ms) VALUES (?1, 0)")
                .bind(list.to_string())
                .execute(&pool)
                .await
                .unwrap();
            let node = crate::model::Node::new(Uid::new());
            sqlx::query("INSERT INTO nodes (uid, list_uid, kind, version, state) VALUES (?1, ?2, NULL, ?3, ?4)")
                .bind(node.uid.to_string())
                .bind(list.to_string())
                .bind(version)
                .bind(serde_json::to_string(&node).unwrap())
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;

        let store = crate::server::store::Store::open(&config(url))
            .await
            .unwrap();
        assert_eq!(store.list_version(a).await.unwrap(), 5);
        assert_eq!(store.list_version(b).await.unwrap(), 4);
        let after_3 = store.pull(a, 3, 10).await.unwrap();
        assert_eq!(
            after_3
                .changes
                .iter()
                .map(|c| c.version)
                .collect::<Vec<_>>(),
            [5]
        );
        assert_eq!(store.pull(b, 0, 10).await.unwrap().cursor, 4);
        store.close().await;
        std::fs::remove_dir_all(dir).ok();
    }

    pub(crate) fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tether-test-{}", Uid::new()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
