//! Scenario (c): a client that missed `changes` changes pulls and applies them.
//!
//! A writer seeds a fresh list with that many todos (one change each). Then, in
//! each round, a fresh [`Replica`] pulls every page after cursor 0 through
//! `POST /api/pull` and applies it with [`Replica::apply_remote`], as the browser's
//! sync client does. Each page's time is split into the server side (request sent →
//! last body byte received) and the client side (JSON decode, then apply). The same
//! pages are fetched again with `Accept-Encoding: gzip` and `br` only to count the
//! bytes a browser would receive. Finally the same catch-up runs over the live
//! socket (`subscribe` after 0), which is what a reconnecting tab actually does.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use serde::Serialize;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{protocol::WebSocketConfig, Message};

use super::{
    api::{Api, CallError},
    config::{LoadConfig, OpKind},
    socket::{self, SocketError},
    stats::{median, Errors, Traffic},
    writers::{Writer, WriterPlan},
};
use crate::model::{
    wire::{ClientMessage, PullPage, ServerMessage},
    ClientId, Replica, Uid,
};

/// One round of catching up, split by side.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Round {
    pub total_ms: f64,
    /// Request sent → last byte of the answer, summed over pages.
    pub server_ms: f64,
    /// JSON → `PullPage`, summed over pages.
    pub decode_ms: f64,
    /// `Replica::apply_remote`, summed over pages.
    pub apply_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CatchupReport {
    pub changes: usize,
    pub pages: usize,
    /// Seeding the list: one writer pushing `changes` creates in batches of 1,000.
    pub seed_ms: f64,
    /// The round with the median total.
    pub median: Round,
    pub fastest_total_ms: f64,
    pub rounds: usize,
    /// Body bytes of all pages: as sent to this client (identity), and as a browser
    /// asking for gzip or brotli would receive them.
    pub bytes_identity: u64,
    pub bytes_gzip: u64,
    pub bytes_br: u64,
    /// The same catch-up over the live socket: subscribe after 0 → `subscribed`,
    /// every page decoded and applied (median of the rounds).
    pub live_total_ms: f64,
    pub live_bytes: u64,
}

/// Runs the scenario.
pub async fn run(
    config: &LoadConfig,
    traffic: Arc<Traffic>,
    errors: &Errors,
) -> Result<CatchupReport, CallError> {
    let api = Api::new(&config.url, traffic.clone());
    let list = Uid::new();
    let mut writer = Writer::new(
        WriterPlan {
            index: 0,
            list,
            op: OpKind::Create,
            batch: 1000,
            interval: None,
        },
        api.clone(),
    );
    let seed_start = Instant::now();
    writer.seed(config.changes, errors).await?;
    let seed_ms = ms(seed_start.elapsed());

    let mut rounds = Vec::with_capacity(config.repeat);
    let mut pages = 0;
    let mut bytes_identity = 0;
    for _ in 0..config.repeat {
        let (round, count, bytes) = pull_round(&api, list, config.changes).await?;
        rounds.push(round);
        pages = count;
        bytes_identity = bytes;
    }
    rounds.sort_by(|a, b| a.total_ms.total_cmp(&b.total_ms));

    let mut live = Vec::with_capacity(config.repeat);
    let mut live_bytes = 0;
    for _ in 0..config.repeat {
        match live_round(&config.ws_url(), list, config.changes, &traffic).await {
            Ok((time, bytes)) => {
                live.push(time);
                live_bytes = bytes;
            }
            Err(e) => errors.add(e.code()),
        }
    }

    Ok(CatchupReport {
        changes: config.changes,
        pages,
        seed_ms,
        median: rounds[rounds.len() / 2],
        fastest_total_ms: rounds[0].total_ms,
        rounds: rounds.len(),
        bytes_identity,
        bytes_gzip: compressed_bytes(&api, list, "gzip").await?,
        bytes_br: compressed_bytes(&api, list, "br").await?,
        live_total_ms: ms(median(live)),
        live_bytes,
    })
}

/// A fresh replica pulls and applies every page; returns the timings, the page
/// count and the body bytes.
async fn pull_round(api: &Api, list: Uid, expect: usize) -> Result<(Round, usize, u64), CallError> {
    let mut replica = Replica::new(list, ClientId::new());
    let mut round = Round::default();
    let (mut pages, mut bytes) = (0, 0);
    let start = Instant::now();
    let mut after = 0;
    loop {
        let answer = api.pull_raw(list, after, None).await?;
        round.server_ms += ms(answer.elapsed);
        bytes += answer.body.len() as u64;
        let decode = Instant::now();
        let page: PullPage =
            serde_json::from_slice(&answer.body).map_err(|e| CallError::Unexpected {
                status: answer.status,
                detail: e.to_string(),
            })?;
        round.decode_ms += ms(decode.elapsed());
        let apply = Instant::now();
        replica.apply_remote(&page.changes, page.server_time_ms);
        round.apply_ms += ms(apply.elapsed());
        pages += 1;
        after = page.cursor;
        if !page.more {
            break;
        }
    }
    round.total_ms = ms(start.elapsed());
    let got = replica.children(list).len();
    if got != expect {
        return Err(CallError::Unexpected {
            status: 200,
            detail: format!("caught up {got} todos, expected {expect}"),
        });
    }
    Ok((round, pages, bytes))
}

/// The body bytes of every page when the server compresses with `encoding`.
async fn compressed_bytes(api: &Api, list: Uid, encoding: &'static str) -> Result<u64, CallError> {
    // The cursors of the plain pages: compressed bodies are not decoded here.
    let mut after = 0;
    let mut total = 0;
    loop {
        let (page, _) = api.pull(list, after).await?;
        let answer = api.pull_raw(list, after, Some(encoding)).await?;
        total += answer.body.len() as u64;
        after = page.cursor;
        if !page.more {
            return Ok(total);
        }
    }
}

/// Catches up over the live socket; returns the time to `subscribed` and the bytes.
async fn live_round(
    ws_url: &str,
    list: Uid,
    expect: usize,
    traffic: &Traffic,
) -> Result<(Duration, u64), SocketError> {
    let start = Instant::now();
    let subscribe = ClientMessage::Subscribe {
        list,
        after: 0,
        client: None,
    };
    let config = WebSocketConfig::default();
    let mut socket = socket::subscribe(ws_url, config, &subscribe, traffic).await?;
    let mut replica = Replica::new(list, ClientId::new());
    let mut bytes = 0;
    while let Some(message) = socket.next().await {
        let Ok(Message::Text(text)) = message else {
            continue;
        };
        bytes += text.len() as u64;
        match serde_json::from_str::<ServerMessage>(&text) {
            Ok(ServerMessage::Changes { changes, .. }) => {
                replica.apply_remote(&changes, crate::model::clock::wall_clock_ms());
            }
            Ok(ServerMessage::Subscribed { .. }) => break,
            _ => return Err(SocketError::BadMessage),
        }
    }
    let elapsed = start.elapsed();
    let _ = socket.close(None).await;
    let got = replica.children(list).len();
    if got != expect {
        return Err(SocketError::Incomplete { got, want: expect });
    }
    Ok((elapsed, bytes))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
