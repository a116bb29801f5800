//! `bench-ceiling`: the cheapest relay that still speaks enough socket.io over WebSocket for
//! `switchboard-bench relay` and `idle`. It is a ceiling to measure against, not a product:
//! no long-polling, no validation, no rooms, no pings, no source stamping; `join-room` is
//! acked with no peers and `#rtcio:message` frames are forwarded to their `target` as the
//! exact text received. What switchboard costs above this is the price of socket.io framing
//! in socketioxide, validation, state and ordering.
//!
//! Usage: `bench-ceiling [ADDR]` (default 127.0.0.1:3990). Loopback addresses only.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Frames that may wait for one slow receiver before more are dropped.
const QUEUE_FRAMES: usize = 4096;
/// Initial WebSocket read buffer per connection.
const READ_BUFFER_BYTES: usize = 4096;

/// Where each connected socket's outgoing frames go, by socket id.
type Registry = Arc<Mutex<HashMap<String, mpsc::Sender<Utf8Bytes>>>>;

#[derive(Deserialize)]
struct Target<'a> {
    #[serde(borrow)]
    target: &'a str,
}

fn main() -> ExitCode {
    let addr: SocketAddr = match std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3990".into())
        .parse()
    {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("bad address: {e}");
            return ExitCode::from(2);
        }
    };
    if !addr.ip().is_loopback() {
        eprintln!("bench-ceiling listens on loopback addresses only");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(serve(addr))
}

async fn serve(addr: SocketAddr) -> ExitCode {
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    eprintln!("bench-ceiling listening on {addr}");
    let registry: Registry = Arc::default();
    let ids = Arc::new(AtomicU64::new(1));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let id = format!("ceiling{:013}", ids.fetch_add(1, Ordering::Relaxed));
        tokio::spawn(connection(stream, id, registry.clone()));
    }
}

async fn connection(stream: TcpStream, id: String, registry: Registry) {
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let open = format!(
        "0{{\"sid\":\"{id}\",\"upgrades\":[],\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":1000000}}"
    );
    if ws.send(Message::text(open)).await.is_err() {
        return;
    }
    let (tx, mut rx) = mpsc::channel(QUEUE_FRAMES);
    if let Ok(mut map) = registry.lock() {
        map.insert(id.clone(), tx);
    }
    loop {
        tokio::select! {
            incoming = ws.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                if let Some(reply) = handle(&id, &text, &registry)
                    && ws.send(Message::text(reply)).await.is_err()
                {
                    break;
                }
            }
            outgoing = rx.recv() => match outgoing {
                Some(text) => if ws.send(Message::Text(text)).await.is_err() { break },
                None => break,
            }
        }
    }
    if let Ok(mut map) = registry.lock() {
        map.remove(&id);
    }
}

/// Handles one frame from `id`; returns a direct reply, if any.
fn handle(id: &str, text: &Utf8Bytes, registry: &Registry) -> Option<String> {
    let s = text.as_str();
    if s == "40" || s.starts_with("40{") {
        return Some(format!("40{{\"sid\":\"{id}\"}}"));
    }
    let body = s.strip_prefix("42")?;
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    let (ack, array) = body.split_at(digits);
    if array.starts_with("[\"#rtcio:message\",") {
        let envelope = &array["[\"#rtcio:message\",".len()..array.len().saturating_sub(1)];
        let target = serde_json::from_str::<Target<'_>>(envelope).ok()?;
        let sender = registry.lock().ok()?.get(target.target).cloned();
        if let Some(sender) = sender {
            // Forward the very frame received; a full queue drops it (this is a ceiling).
            let _ = sender.try_send(text.clone());
        }
        return None;
    }
    (!ack.is_empty()).then(|| format!("43{ack}[{{\"ok\":true,\"peers\":[]}}]"))
}
