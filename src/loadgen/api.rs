//! The HTTP half of the protocol, as a client: `POST /api/push` and `POST /api/pull`.
//!
//! Bodies are serialised here (not by reqwest) so their bytes can be counted, and
//! an error answer is decoded into the server's own [`SyncError`], whose `code` is
//! what the report tallies.

use std::{sync::Arc, time::Duration};

use reqwest::header::{HeaderValue, ACCEPT_ENCODING, CONTENT_TYPE};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::stats::Traffic;
use crate::model::{
    wire::{PullPage, PullRequest, PushAck, PushRequest, SyncError},
    Uid,
};

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The server answered with a typed error.
    #[error("{0}")]
    Sync(SyncError),
    /// No answer: connection refused or reset, timeout.
    #[error("transport: {0}")]
    Transport(String),
    /// An answer that is not the protocol's.
    #[error("unexpected answer (HTTP {status}): {detail}")]
    Unexpected { status: u16, detail: String },
}

impl CallError {
    /// The code the report counts it under.
    pub fn code(&self) -> String {
        match self {
            CallError::Sync(e) => e.code().to_string(),
            CallError::Transport(_) => "transport".into(),
            CallError::Unexpected { status, .. } => format!("http_{status}"),
        }
    }

    /// Whether sending the same request again may succeed (pushes are idempotent).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            CallError::Transport(_)
                | CallError::Sync(SyncError::RateLimited { .. } | SyncError::Unavailable { .. })
        )
    }

    /// How long to wait before retrying.
    pub fn backoff(&self) -> Duration {
        match self {
            CallError::Sync(SyncError::RateLimited { retry_after_ms }) => {
                Duration::from_millis((*retry_after_ms).clamp(1, 1000))
            }
            _ => Duration::from_millis(50),
        }
    }
}

/// One answered request: the raw body, and how long the round trip took.
pub struct Answer {
    pub status: u16,
    pub body: axum::body::Bytes,
    pub elapsed: Duration,
}

/// A client of one server's HTTP API.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    traffic: Arc<Traffic>,
}

impl Api {
    pub fn new(base: &str, traffic: Arc<Traffic>) -> Api {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(60))
            .build()
            .expect("a plain HTTP client always builds");
        Api {
            http,
            base: base.trim_end_matches('/').to_string(),
            traffic,
        }
    }

    /// Pushes a batch; `Ok` only for an acknowledgement.
    pub async fn push(&self, req: &PushRequest) -> Result<PushAck, CallError> {
        let body = serde_json::to_vec(req).expect("a push request serialises");
        let answer = self.post("/api/push", body, None).await?;
        decode(&answer)
    }

    /// Pulls one page after `after`.
    pub async fn pull(&self, list: Uid, after: u64) -> Result<(PullPage, Answer), CallError> {
        let answer = self.pull_raw(list, after, None).await?;
        let page = decode(&answer)?;
        Ok((page, answer))
    }

    /// Pulls one page and returns its body undecoded; with `encoding` (e.g. `gzip`)
    /// the server compresses it, and the compressed bytes are what is returned.
    pub async fn pull_raw(
        &self,
        list: Uid,
        after: u64,
        encoding: Option<&'static str>,
    ) -> Result<Answer, CallError> {
        let req = PullRequest {
            list,
            after,
            limit: None,
        };
        let body = serde_json::to_vec(&req).expect("a pull request serialises");
        self.post("/api/pull", body, encoding).await
    }

    async fn post(
        &self,
        path: &str,
        body: Vec<u8>,
        encoding: Option<&'static str>,
    ) -> Result<Answer, CallError> {
        Traffic::add(&self.traffic.http_sent, body.len());
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body);
        if let Some(encoding) = encoding {
            request = request.header(ACCEPT_ENCODING, HeaderValue::from_static(encoding));
        }
        let start = Instant::now();
        let response = request
            .send()
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;
        let elapsed = start.elapsed();
        Traffic::add(&self.traffic.http_received, body.len());
        Ok(Answer {
            status,
            body,
            elapsed,
        })
    }
}

/// The answer as `T` if it is a success, else its typed error.
fn decode<T: DeserializeOwned>(answer: &Answer) -> Result<T, CallError> {
    if answer.status == 200 {
        return serde_json::from_slice(&answer.body).map_err(|e| CallError::Unexpected {
            status: answer.status,
            detail: e.to_string(),
        });
    }
    match serde_json::from_slice::<SyncError>(&answer.body) {
        Ok(error) => Err(CallError::Sync(error)),
        Err(_) => Err(CallError::Unexpected {
            status: answer.status,
            detail: String::from_utf8_lossy(&answer.body)
                .chars()
                .take(200)
                .collect(),
        }),
    }
}
