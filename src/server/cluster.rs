//! How a node hears of other nodes' commits and presence (PostgreSQL only).
//!
//! A task holds a `LISTEN tether_changes, tether_presence` connection and hands each
//! commit's announcement (`list:version:commit_ms`, sent by a writer's commit, see
//! [`super::store::postgres`]) to the hub, which reads the rows it has not seen, and
//! each presence announcement to [`super::presence`]. When
//! the connection drops, the node reports it (`/healthz`, `/metrics`), reconnects,
//! and marks every live channel behind, so whatever was announced meanwhile is read
//! by version: nothing is lost, only late.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::{sync::watch, task::JoinHandle};

use super::{
    hub::Hub,
    metrics,
    presence::Presences,
    store::{
        postgres::{Announcement, PgStore, PRESENCE_CHANNEL},
        StoreError,
    },
};

/// Pause between attempts to listen again.
const RECONNECT: Duration = Duration::from_millis(500);

/// Starts listening before the node serves, so a node that cannot hear the others
/// does not start; the task then keeps listening (reconnecting when the connection
/// drops) until `shutdown` turns true.
pub async fn start_listener(
    store: PgStore,
    hub: Hub,
    presences: Presences,
    mut shutdown: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, StoreError> {
    let first = store.listener().await?;
    hub.set_feed_connected(true);
    Ok(tokio::spawn(async move {
        let mut listener = Some(first);
        loop {
            tokio::select! {
                _ = listen(&store, &hub, &presences, listener.take()) => {}
                _ = shutdown.wait_for(|stopping| *stopping) => return,
            }
            hub.set_feed_connected(false);
            tokio::select! {
                _ = tokio::time::sleep(RECONNECT) => {}
                _ = shutdown.wait_for(|stopping| *stopping) => return,
            }
        }
    }))
}

/// Listens (on `listener`, or a new connection) until the connection fails.
async fn listen(store: &PgStore, hub: &Hub, presences: &Presences, listener: Option<PgListener>) {
    let mut listener = match listener {
        Some(listener) => listener,
        None => match store.listener().await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for other nodes' changes");
                return;
            }
        },
    };
    hub.set_feed_connected(true);
    // Anything announced before this connection listened is read by version.
    hub.all_behind();
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) if notification.channel() == PRESENCE_CHANNEL => {
                heard_presence(presences, notification.payload())
            }
            Ok(Some(notification)) => heard(hub, notification.payload()),
            Ok(None) => {
                tracing::warn!("lost the connection that listens for other nodes' changes");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "listening for other nodes' changes failed");
                return;
            }
        }
    }
}

fn heard(hub: &Hub, payload: &str) {
    let Some(announced) = Announcement::decode(payload) else {
        tracing::debug!(payload, "ignored a notification that is not Tether's");
        return;
    };
    let now = crate::model::clock::wall_clock_ms();
    metrics::notification_lag(Duration::from_millis(
        now.saturating_sub(announced.commit_ms),
    ));
    hub.announced(announced.list, announced.version, announced.commit_ms);
}

fn heard_presence(presences: &Presences, payload: &str) {
    match serde_json::from_str(payload) {
        Ok(announced) => presences.heard(announced),
        Err(e) => tracing::debug!(error = %e, "ignored a presence notification"),
    }
}
