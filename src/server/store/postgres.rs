//! The PostgreSQL store: any number of Tether nodes on one database.
//!
//! Three things make several writers safe:
//!
//! * **Versions in order.** A writer takes an advisory transaction lock per list it
//!   writes (in uid order, so two writers never wait on each other in a circle),
//!   reads the list's last version, and stores the new one before it commits. The
//!   next writer of that list gets the lock only after that commit, so a reader can
//!   never see version v+1 of a list while v is still in flight.
//! * **One list per uid.** A uid created in two lists at once by two nodes: the
//!   second commit breaks the unique index on node uids and fails; the writer runs
//!   the group again, which now sees the node and refuses the batch
//!   (`foreign_node`) as it would on one node.
//! * **Wake-ups, not data.** The commit sends `NOTIFY tether_changes` with
//!   `list:version:commit_ms` per list; [`listen`] hands those to the hub, which reads
//!   the rows it has not seen by version. A lost or merged notification costs
//!   latency, never a change.

use std::{collections::HashMap, str::FromStr, time::Duration};

use sqlx::{
    migrate::MigrateDatabase,
    postgres::{PgConnectOptions, PgListener, PgPoolOptions},
    PgConnection, PgPool, Postgres,
};

use super::{
    dump_lines, encode_state, parse_uid, ListRow, NodeRow, NodeRowText, PullRow, SeqKey, StoreError,
};
use crate::{model::Uid, server::config::DatabaseConfig};

/// The channel every node listens on.
pub const CHANNEL: &str = "tether_changes";
/// The channel nodes tell each other who follows their lists on (see
/// [`crate::server::presence`]).
pub const PRESENCE_CHANNEL: &str = "tether_presence";

#[derive(Clone, Debug)]
pub struct PgStore {
    pub pool: PgPool,
    url: String,
}

impl PgStore {
    /// Connects (creating the database if it does not exist yet) and migrates.
    /// Several nodes starting at once are fine: creation races are ignored and
    /// sqlx's migrator holds an advisory lock while it migrates.
    pub async fn open(config: &DatabaseConfig) -> Result<PgStore, StoreError> {
        create_database_if_missing(&config.url).await?;
        let options = PgConnectOptions::from_str(&config.url)?;
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore {
            pool,
            url: config.url.clone(),
        })
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
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
             WHERE list_uid = $1 AND version > $2 ORDER BY version LIMIT $3",
        )
        .bind(list.to_string())
        .bind(after)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn list_version(&self, list: Uid) -> Result<u64, StoreError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT version FROM lists WHERE uid = $1")
            .bind(list.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(v.unwrap_or(0) as u64)
    }

    pub async fn dump(&self) -> Result<Vec<String>, StoreError> {
        let lists = sqlx::query_as(
            "SELECT uid, created_at_ms, version FROM lists ORDER BY uid COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await?;
        let nodes = sqlx::query_as(
            "SELECT uid, list_uid, kind, version, state FROM nodes ORDER BY uid COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await?;
        let seqs = sqlx::query_as(
            "SELECT list_uid, client, last_seq FROM client_seqs \
             ORDER BY list_uid COLLATE \"C\", client COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(dump_lines(lists, nodes, seqs))
    }

    /// A listener on [`CHANNEL`] and [`PRESENCE_CHANNEL`] on a connection of its own.
    pub async fn listener(&self) -> Result<PgListener, StoreError> {
        let mut listener = PgListener::connect(&self.url).await?;
        listener.listen_all([CHANNEL, PRESENCE_CHANNEL]).await?;
        Ok(listener)
    }

    /// Tells the other nodes who follows a list here (`payload`: at most 8,000 bytes).
    pub async fn announce_presence(&self, payload: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(PRESENCE_CHANNEL)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

async fn create_database_if_missing(url: &str) -> Result<(), StoreError> {
    if Postgres::database_exists(url).await? {
        return Ok(());
    }
    match Postgres::create_database(url).await {
        Ok(()) => Ok(()),
        // Another node created it a moment ago.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The advisory-lock key of a list: the first eight bytes of its (random) uid.
fn lock_key(list: &Uid) -> i64 {
    let bytes = list.as_uuid().as_bytes();
    i64::from_be_bytes(bytes[..8].try_into().expect("a uuid has 16 bytes"))
}

/// Takes each list's lock (in key order) until the transaction ends, then reads the
/// lists' last versions.
pub async fn lock_lists(
    conn: &mut PgConnection,
    lists: &[Uid],
) -> Result<HashMap<Uid, u64>, StoreError> {
    let mut keys: Vec<i64> = lists.iter().map(lock_key).collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(key)
            .execute(&mut *conn)
            .await?;
    }
    list_versions(conn, lists).await
}

/// The lists' last versions as committed now (lists never written are left out).
pub async fn list_versions(
    conn: &mut PgConnection,
    lists: &[Uid],
) -> Result<HashMap<Uid, u64>, StoreError> {
    let uids: Vec<String> = lists.iter().map(Uid::to_string).collect();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT uid, version FROM lists WHERE uid = ANY($1)")
            .bind(&uids)
            .fetch_all(&mut *conn)
            .await?;
    rows.into_iter()
        .map(|(uid, version)| Ok((parse_uid(&uid)?, version as u64)))
        .collect()
}

pub async fn load_nodes(
    conn: &mut PgConnection,
    uids: &[Uid],
) -> Result<Vec<NodeRowText>, StoreError> {
    let wanted: Vec<String> = uids.iter().map(Uid::to_string).collect();
    Ok(
        sqlx::query_as("SELECT uid, list_uid, state FROM nodes WHERE uid = ANY($1)")
            .bind(&wanted)
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// The rows of `list` among `uids` written after version `after`.
pub async fn load_nodes_changed(
    conn: &mut PgConnection,
    list: Uid,
    after: u64,
    uids: &[Uid],
) -> Result<Vec<NodeRowText>, StoreError> {
    let wanted: Vec<String> = uids.iter().map(Uid::to_string).collect();
    Ok(sqlx::query_as(
        "SELECT uid, list_uid, state FROM nodes \
         WHERE list_uid = $1 AND version > $2 AND uid = ANY($3)",
    )
    .bind(list.to_string())
    .bind(after.min(i64::MAX as u64) as i64)
    .bind(&wanted)
    .fetch_all(&mut *conn)
    .await?)
}

pub async fn known_lists(conn: &mut PgConnection, uids: &[Uid]) -> Result<Vec<String>, StoreError> {
    let wanted: Vec<String> = uids.iter().map(Uid::to_string).collect();
    Ok(
        sqlx::query_scalar("SELECT uid FROM lists WHERE uid = ANY($1)")
            .bind(&wanted)
            .fetch_all(&mut *conn)
            .await?,
    )
}

pub async fn last_seqs(
    conn: &mut PgConnection,
    keys: &[SeqKey],
) -> Result<HashMap<SeqKey, u64>, StoreError> {
    let lists: Vec<String> = keys.iter().map(|(list, _)| list.to_string()).collect();
    let clients: Vec<&str> = keys.iter().map(|(_, client)| client.as_str()).collect();
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT s.list_uid, s.client, s.last_seq FROM client_seqs s \
         JOIN UNNEST($1::text[], $2::text[]) AS k (list_uid, client) \
         ON s.list_uid = k.list_uid AND s.client = k.client",
    )
    .bind(&lists)
    .bind(&clients)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(list, client, seq)| Ok(((parse_uid(&list)?, client), seq as u64)))
        .collect()
}

pub async fn store_lists(
    conn: &mut PgConnection,
    lists: &[ListRow],
    now_ms: u64,
) -> Result<(), StoreError> {
    let uids: Vec<String> = lists.iter().map(|l| l.uid.to_string()).collect();
    let versions: Vec<i64> = lists.iter().map(|l| l.version as i64).collect();
    sqlx::query(
        "INSERT INTO lists (uid, created_at_ms, version) \
         SELECT uid, $3, version FROM UNNEST($1::text[], $2::bigint[]) AS t (uid, version) \
         ON CONFLICT (uid) DO UPDATE SET version = excluded.version",
    )
    .bind(&uids)
    .bind(&versions)
    .bind(now_ms as i64)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn store_nodes(conn: &mut PgConnection, rows: &[NodeRow<'_>]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let uids: Vec<String> = rows.iter().map(|r| r.node.uid.to_string()).collect();
    let lists: Vec<String> = rows.iter().map(|r| r.list.to_string()).collect();
    let kinds: Vec<Option<&str>> = rows.iter().map(|r| r.node.kind_name()).collect();
    let versions: Vec<i64> = rows.iter().map(|r| r.version as i64).collect();
    let states = rows
        .iter()
        .map(|r| encode_state(r.node))
        .collect::<Result<Vec<_>, _>>()?;
    sqlx::query(
        "INSERT INTO nodes (uid, list_uid, kind, version, state) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[]) \
         ON CONFLICT (uid, list_uid) DO UPDATE SET kind = excluded.kind, \
         version = excluded.version, state = excluded.state",
    )
    .bind(&uids)
    .bind(&lists)
    .bind(&kinds)
    .bind(&versions)
    .bind(&states)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn store_last_seqs(
    conn: &mut PgConnection,
    seqs: &[(SeqKey, u64)],
) -> Result<(), StoreError> {
    if seqs.is_empty() {
        return Ok(());
    }
    let lists: Vec<String> = seqs.iter().map(|((list, _), _)| list.to_string()).collect();
    let clients: Vec<&str> = seqs.iter().map(|((_, c), _)| c.as_str()).collect();
    let values: Vec<i64> = seqs.iter().map(|(_, seq)| *seq as i64).collect();
    sqlx::query(
        "INSERT INTO client_seqs (list_uid, client, last_seq) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[]) \
         ON CONFLICT (list_uid, client) DO UPDATE SET \
         last_seq = GREATEST(client_seqs.last_seq, excluded.last_seq)",
    )
    .bind(&lists)
    .bind(&clients)
    .bind(&values)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One notification per list, sent by PostgreSQL when the transaction commits.
pub async fn announce(
    conn: &mut PgConnection,
    lists: &[ListRow],
    now_ms: u64,
) -> Result<(), StoreError> {
    if lists.is_empty() {
        return Ok(());
    }
    let payloads: Vec<String> = lists
        .iter()
        .map(|l| Announcement::encode(l.uid, l.version, now_ms))
        .collect();
    sqlx::query("SELECT pg_notify($1, p) FROM UNNEST($2::text[]) AS p")
        .bind(CHANNEL)
        .bind(&payloads)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// What a notification says: list `list` has versions up to `version`, committed at
/// `commit_ms` by the sending node's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announcement {
    pub list: Uid,
    pub version: u64,
    pub commit_ms: u64,
}

impl Announcement {
    fn encode(list: Uid, version: u64, commit_ms: u64) -> String {
        format!("{list}:{version}:{commit_ms}")
    }

    /// `None` for a payload that is not ours (anything may NOTIFY this channel).
    pub fn decode(payload: &str) -> Option<Announcement> {
        let mut parts = payload.split(':');
        let list = Uid::parse(parts.next()?).ok()?;
        let version = parts.next()?.parse().ok()?;
        let commit_ms = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(Announcement {
            list,
            version,
            commit_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_round_trip_and_foreign_payloads_are_ignored() {
        let list = Uid::new();
        let text = Announcement::encode(list, 42, 1_700_000_000_000);
        assert_eq!(
            Announcement::decode(&text),
            Some(Announcement {
                list,
                version: 42,
                commit_ms: 1_700_000_000_000
            })
        );
        for junk in [
            "",
            "x",
            "not-a-uid:1:2",
            &format!("{list}:1"),
            &format!("{text}:9"),
        ] {
            assert_eq!(Announcement::decode(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn lock_keys_differ_for_different_lists() {
        let (a, b) = (Uid::new(), Uid::new());
        assert_eq!(lock_key(&a), lock_key(&a));
        assert_ne!(lock_key(&a), lock_key(&b));
    }
}
