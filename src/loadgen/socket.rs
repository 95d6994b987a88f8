//! The live socket as every load-generator client opens it: connect to
//! `GET /api/live` with small buffers and send one `subscribe`. What follows the
//! `subscribe` (a lean tally, a full replica, a timed catch-up) is each client's own.

use std::time::Duration;

use futures::SinkExt;
use tokio::net::TcpStream;
use tokio_tungstenite::{
    tungstenite::{self, protocol::WebSocketConfig, Message},
    MaybeTlsStream, WebSocketStream,
};

use super::stats::Traffic;
use crate::model::wire::ClientMessage;

/// A client's end of a live socket.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a live socket gave no `subscribed`. [`SocketError::code`] is the name the
/// report tallies it under.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("cannot open the live socket: {0}")]
    Connect(#[source] tungstenite::Error),
    #[error("cannot send on the live socket: {0}")]
    Send(#[source] tungstenite::Error),
    #[error("no `subscribed` within {0:?}")]
    Timeout(Duration),
    #[error("the server said `resync` before `subscribed`")]
    Resync,
    #[error("the live socket closed before `subscribed`")]
    Closed,
    #[error("a message that is not the protocol's")]
    BadMessage,
    #[error("the live catch-up holds {got} of the list's {want} todos")]
    Incomplete { got: usize, want: usize },
}

impl SocketError {
    /// The error's name in the report's tally of errors.
    pub fn code(&self) -> &'static str {
        match self {
            SocketError::Connect(_) => "ws_connect",
            SocketError::Send(_) => "ws_send",
            SocketError::Timeout(_) => "subscribe_timeout",
            SocketError::Resync => "resync",
            SocketError::Closed => "ws_closed",
            SocketError::BadMessage => "bad_message",
            SocketError::Incomplete { .. } => "live_catchup_incomplete",
        }
    }
}

/// Small buffers, like the server's, for the many sockets of one process (a single
/// timed socket keeps tungstenite's defaults: [`WebSocketConfig::default`]).
pub fn small_buffers() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
}

/// Opens a live socket to `ws_url` with `config` and sends `subscribe` on it,
/// counting the bytes sent in `traffic`.
pub async fn subscribe(
    ws_url: &str,
    config: WebSocketConfig,
    subscribe: &ClientMessage,
    traffic: &Traffic,
) -> Result<Socket, SocketError> {
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(ws_url, Some(config), true)
        .await
        .map_err(SocketError::Connect)?;
    let text = serde_json::to_string(subscribe).expect("a subscribe message serialises");
    Traffic::add(&traffic.ws_sent, text.len());
    socket
        .send(Message::Text(text.into()))
        .await
        .map_err(SocketError::Send)?;
    Ok(socket)
}
