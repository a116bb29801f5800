//! One socket.io client connection over WebSocket, as lean as the protocol allows.
//!
//! A [`Conn`] is a bare WebSocket stream plus the socket id: no task of its own, no channels,
//! small buffers. The scenario task that owns it reads with [`Conn::recv`], which answers
//! Engine.IO pings itself, and writes with [`Conn::send`], or with [`Conn::feed`] and one
//! [`Conn::flush`] per wake-up so a burst of frames costs one `write` system call. That keeps
//! an idle connection at a few kilobytes in this process, so the bench can hold as many
//! sockets as the server.
//!
//! ```text
//! client                                   server
//!   TCP connect (from a 127.1.x.y source)
//!   GET /socket.io/?EIO=4&transport=websocket  ─►
//!                                          ◄─  0{"sid":…,"pingInterval":…}   Engine.IO open
//!   40                                     ─►                                 socket.io CONNECT /
//!                                          ◄─  40{"sid":"<socket id>"}
//!   42["event",{…}] / 42<ack>["event",{…}] ◄─► 42["event",{…}] / 43<ack>[…]
//!                                          ◄─  2   (ping)   ─►  3 (pong)
//! ```

use std::net::IpAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::BenchError;
use crate::target::NodeUrl;
use crate::wire::{self, Frame};

/// Longest a connection may take from TCP connect to socket.io CONNECT.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Initial read buffer per connection. Signaling frames are small; a larger one (5 KiB SDP)
/// grows the buffer as needed.
const READ_BUFFER_BYTES: usize = 4096;

/// Frames queued with [`Conn::feed`] are written once this many bytes wait (or on
/// [`Conn::flush`]). The buffer only grows as far as a burst needs, so idle sockets stay small;
/// with 0 (tungstenite writes every frame at once) each envelope cost its own `write` call,
/// which on loopback also pays for the server side's TCP receive.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// A connected socket.io client.
#[derive(Debug)]
pub struct Conn {
    ws: WebSocketStream<TcpStream>,
    /// The socket id the server gave this client in its CONNECT packet.
    pub sid: String,
    /// Frames were queued since the last flush.
    unflushed: bool,
}

impl Conn {
    /// Connects from `source` (or an address the kernel chooses) to `node` and completes the
    /// socket.io CONNECT of namespace `/`.
    pub async fn connect(node: &NodeUrl, source: Option<IpAddr>) -> Result<Conn, BenchError> {
        tokio::time::timeout(CONNECT_TIMEOUT, Self::connect_inner(node, source))
            .await
            .map_err(|_| BenchError::Timeout("connecting"))?
    }

    async fn connect_inner(node: &NodeUrl, source: Option<IpAddr>) -> Result<Conn, BenchError> {
        let socket = TcpSocket::new_v4()?;
        if let Some(source) = source {
            socket.bind(std::net::SocketAddr::new(source, 0))?;
        }
        let stream = socket.connect(node.addr).await?;
        stream.set_nodelay(true)?;
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .write_buffer_size(WRITE_BUFFER_BYTES);
        let (ws, _response) =
            tokio_tungstenite::client_async_with_config(node.websocket_url(), stream, Some(config))
                .await?;
        let mut conn = Conn {
            ws,
            sid: String::new(),
            unflushed: false,
        };
        match conn.next_text().await? {
            text if matches!(wire::parse(&text), Frame::Open) => {}
            text => {
                return Err(BenchError::Handshake(format!(
                    "expected open, got {text:?}"
                )));
            }
        }
        conn.send("40".to_string()).await?;
        loop {
            let text = conn.next_text().await?;
            match wire::parse(&text) {
                Frame::Connect { sid } => {
                    conn.sid = sid.to_string();
                    return Ok(conn);
                }
                Frame::ConnectError(reason) => {
                    return Err(BenchError::ConnectRefused(reason.to_string()));
                }
                Frame::Ping => conn.send("3".to_string()).await?,
                _ => {
                    return Err(BenchError::Handshake(format!(
                        "expected CONNECT, got {text:?}"
                    )));
                }
            }
        }
    }

    /// Sends one text frame (and whatever was queued before it).
    pub async fn send(&mut self, text: String) -> Result<(), BenchError> {
        self.feed(text).await?;
        self.flush().await
    }

    /// Queues one text frame without flushing; [`Conn::flush`] writes everything queued.
    /// Writes only when [`WRITE_BUFFER_BYTES`] are waiting.
    pub async fn feed(&mut self, text: String) -> Result<(), BenchError> {
        self.unflushed = true;
        self.ws.feed(Message::text(text)).await?;
        Ok(())
    }

    /// Frames were queued with [`Conn::feed`] and not flushed yet.
    pub fn unflushed(&self) -> bool {
        self.unflushed
    }

    /// Writes everything queued, in one `write` call when the socket takes it all.
    pub async fn flush(&mut self) -> Result<(), BenchError> {
        self.ws.flush().await?;
        self.unflushed = false;
        Ok(())
    }

    /// The next frame that is not an Engine.IO ping (pings are answered here). Cancel-safe:
    /// dropping the future loses no frame.
    pub async fn recv(&mut self) -> Result<Utf8Bytes, BenchError> {
        loop {
            let text = self.next_text().await?;
            if text.as_str() == "2" {
                self.send("3".to_string()).await?;
                continue;
            }
            return Ok(text);
        }
    }

    async fn next_text(&mut self) -> Result<Utf8Bytes, BenchError> {
        loop {
            match self.ws.next().await {
                None => return Err(BenchError::Closed),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(Message::Text(text))) => return Ok(text),
                Some(Ok(Message::Close(_))) => return Err(BenchError::Closed),
                // Binary, ping and pong frames carry nothing the protocol uses.
                Some(Ok(_)) => {}
            }
        }
    }

    /// Closes the WebSocket politely (the server sees an ordinary disconnect).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(None)).await;
    }
}
