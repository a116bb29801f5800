//! The node's TCP connections, and a way to cut the ones that carry a WebSocket.
//!
//! Draining has to move sockets to other nodes a few at a time. The stock socket.io client
//! reconnects by itself only after a *transport* close; a socket.io `disconnect` packet (the
//! only per-socket close socketioxide 0.18 offers) tells it the server wants it gone, and it
//! stays gone. So a move cuts the connection underneath instead: every accepted stream is a
//! [`TrackedStream`] with a [`Cut`] switch; requests that upgrade to a WebSocket register
//! their switch in [`WebSockets`]. Cutting ends the stream (reads see end-of-file, writes
//! fail, a FIN goes out), the WebSocket library sees the peer gone, socketioxide runs the
//! disconnect handler (peers hear the departure), and the client sees a transport close and
//! reconnects.
//!
//! Long-polling sockets have no connection of their own to cut; they move when the node
//! closes the rest at the end of the drain.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::outgoing::Outgoing;

/// The switch of one connection: once cut, the connection reads end-of-file and cannot write.
#[derive(Debug, Default)]
pub struct Cut {
    cut: AtomicBool,
    /// The task reading the connection, woken by [`Cut::cut`] so it sees end-of-file now
    /// rather than at the next byte from the client.
    reader: AtomicWaker,
}

impl Cut {
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        self.reader.wake();
    }

    pub fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Acquire)
    }
}

/// A TCP listener whose connections can be cut, with TCP_NODELAY set on each, and whose
/// unsent bytes are bounded (see [`crate::outgoing`]).
pub struct TrackedListener {
    listener: TcpListener,
    /// `--max-outgoing-bytes`: what one connection may have waiting for its client to read.
    outgoing_budget: usize,
}

impl TrackedListener {
    pub fn new(listener: TcpListener, outgoing_budget: usize) -> Self {
        Self {
            listener,
            outgoing_budget,
        }
    }
}

impl Listener for TrackedListener {
    type Io = TrackedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TrackedStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    // Signaling is many small writes (a description, then candidates): without
                    // TCP_NODELAY, Nagle's algorithm holds each behind the peer's delayed ACK.
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!("cannot set TCP_NODELAY: {e}");
                    }
                    let cut = Arc::new(Cut::default());
                    let stream = Arc::new(stream);
                    let outgoing =
                        Outgoing::new(stream.clone(), cut.clone(), addr, self.outgoing_budget);
                    return (
                        TrackedStream {
                            stream,
                            cut,
                            shut: false,
                            outgoing: Arc::new(outgoing),
                        },
                        addr,
                    );
                }
                // Out of file descriptors or memory: back off instead of spinning. Errors of
                // one connection (reset before accept) concern only that connection.
                Err(e) if is_resource_error(&e) => {
                    tracing::error!("cannot accept connections: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => tracing::debug!("accept failed: {e}"),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

fn is_resource_error(e: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM on Linux.
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// An accepted connection with its [`Cut`] switch. Writes never wait (see
/// [`crate::outgoing`]); reads wait for the client as usual.
pub struct TrackedStream {
    stream: Arc<TcpStream>,
    cut: Arc<Cut>,
    /// Whether the write side was shut down after the cut.
    shut: bool,
    outgoing: Arc<Outgoing>,
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.cut.reader.register(cx.waker());
        if self.cut.is_cut() {
            // Tell the other end now (FIN): the WebSocket library stops at end-of-file but
            // keeps the connection open until its writer side is dropped, which for an idle
            // socket is the next ping, 25 s later.
            if !self.shut {
                self.shut = true;
                self.outgoing.shutdown();
            }
            return Poll::Ready(Ok(()));
        }
        loop {
            std::task::ready!(self.stream.poll_read_ready(cx))?;
            match self.stream.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.outgoing.write(buf))
    }

    /// Written bytes are the kernel's or [`Outgoing`]'s, which writes them out by itself.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.outgoing.shutdown();
        Poll::Ready(Ok(()))
    }
}

/// What a request knows about the connection it came on (axum `ConnectInfo`).
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub cut: Arc<Cut>,
}

impl Connected<IncomingStream<'_, TrackedListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TrackedListener>) -> Self {
        Peer {
            addr: *stream.remote_addr(),
            cut: stream.io().cut.clone(),
        }
    }
}

/// The connections that carry a WebSocket, to cut a few at a time while draining.
#[derive(Debug, Default)]
pub struct WebSockets {
    /// Weak: a closed connection drops its switch, and is skipped (and pruned) here.
    open: Mutex<Vec<Weak<Cut>>>,
}

impl WebSockets {
    pub fn register(&self, cut: &Arc<Cut>) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        // Prune closed connections once the list has doubled, so it stays proportional to
        // the open ones at a constant cost per registration.
        if open.len() >= 64 && open.len() == open.capacity() {
            open.retain(|c| c.strong_count() > 0);
        }
        open.push(Arc::downgrade(cut));
    }

    /// Open WebSocket connections, not yet cut.
    pub fn open(&self) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.iter()
            .filter_map(Weak::upgrade)
            .filter(|c| !c.is_cut())
            .count()
    }

    /// Cuts up to `n` open WebSocket connections; returns how many it cut.
    pub fn cut(&self, n: usize) -> usize {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut done = 0;
        open.retain(|weak| {
            let Some(cut) = weak.upgrade() else {
                return false;
            };
            if done < n && !cut.is_cut() {
                cut.cut();
                done += 1;
                return false;
            }
            true
        });
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_only_open_connections_and_at_most_n() {
        let sockets = WebSockets::default();
        let live: Vec<Arc<Cut>> = (0..5).map(|_| Arc::new(Cut::default())).collect();
        for c in &live {
            sockets.register(c);
        }
        {
            let closed = Arc::new(Cut::default());
            sockets.register(&closed);
        }
        assert_eq!(sockets.open(), 5);
        assert_eq!(sockets.cut(2), 2);
        assert_eq!(sockets.open(), 3);
        assert_eq!(live.iter().filter(|c| c.is_cut()).count(), 2);
        assert_eq!(sockets.cut(10), 3);
        assert_eq!(sockets.open(), 0);
        assert_eq!(sockets.cut(1), 0);
    }

    #[tokio::test]
    async fn a_cut_stream_reads_end_of_file_and_refuses_writes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tracked = TrackedListener::new(listener, 1 << 20);
        let client = TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = tracked.accept().await;
        let cut = server.cut.clone();
        let reading = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            let n = server.read(&mut buf).await.unwrap();
            (n, server.write_all(b"x").await.is_err())
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        cut.cut();
        let (n, write_failed) = tokio::time::timeout(Duration::from_secs(2), reading)
            .await
            .expect("the cut woke the reader")
            .unwrap();
        assert_eq!(n, 0);
        assert!(write_failed);
        // The client sees the connection end without waiting for the server to drop it.
        let mut client = client;
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(2), client.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0))), "client saw {read:?}");
    }
}
