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

/// The switch of one connection: once cut, the connection reads end-of-file and cannot write.
#[derive(Debug, Default)]
pub struct Cut {
    cut: AtomicBool,
    /// Set when a drain has chosen this connection and cuts it in a moment (see
    /// [`WebSockets::cut`]); it no longer counts as open.
    leaving: AtomicBool,
    /// The socket.io socket this connection's WebSocket carries, once known.
    socket: Mutex<Option<String>>,
    /// The task reading the connection, woken by [`Cut::cut`] so it sees end-of-file now
    /// rather than at the next byte from the client.
    reader: AtomicWaker,
}

impl Cut {
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        self.reader.wake();
    }

    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Acquire)
    }

    /// Cut, or chosen by a drain and about to be: no longer open for the drain to choose.
    fn is_chosen(&self) -> bool {
        self.is_cut() || self.leaving.load(Ordering::Acquire)
    }

    /// Records which socket.io socket this connection's WebSocket carries. A connection may
    /// have carried long-polling requests of other sockets before its upgrade request (a
    /// proxy reuses connections), so the WebSocket's socket replaces whatever was there.
    pub fn carries(&self, socket: &str) {
        *self.socket.lock().unwrap_or_else(|p| p.into_inner()) = Some(socket.to_owned());
    }

    fn socket(&self) -> Option<String> {
        self.socket
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// How long a connection whose socket asked for it gets between being chosen by a drain and
/// its cut: what was already queued for the client goes out first.
pub const FLUSH_BEFORE_CUT: Duration = Duration::from_millis(150);

/// A TCP listener whose connections can be cut, with TCP_NODELAY set on each.
pub struct TrackedListener(pub TcpListener);

impl Listener for TrackedListener {
    type Io = TrackedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TrackedStream, SocketAddr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => {
                    // Signaling is many small writes (a description, then candidates): without
                    // TCP_NODELAY, Nagle's algorithm holds each behind the peer's delayed ACK.
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!("cannot set TCP_NODELAY: {e}");
                    }
                    let cut = Arc::new(Cut::default());
                    return (
                        TrackedStream {
                            stream,
                            cut,
                            shut: false,
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
        self.0.local_addr()
    }
}

fn is_resource_error(e: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM on Linux.
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// An accepted connection with its [`Cut`] switch.
pub struct TrackedStream {
    stream: TcpStream,
    cut: Arc<Cut>,
    /// Whether the write side was shut down after the cut.
    shut: bool,
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
                let _ = Pin::new(&mut self.stream).poll_shutdown(cx);
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.cut.is_cut() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.cut.is_cut() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
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
            .filter(|c| !c.is_chosen())
            .count()
    }

    /// Cuts up to `n` open WebSocket connections; returns how many it cut. `leaving` is told
    /// the socket each carries first; when it answers true (a resumable session, which now
    /// keeps what is addressed to it), the cut waits [`FLUSH_BEFORE_CUT`] so that what was
    /// queued for the client reaches it.
    pub fn cut(&self, n: usize, leaving: impl Fn(&str) -> bool) -> usize {
        let chosen: Vec<Arc<Cut>> = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            let mut chosen = Vec::new();
            open.retain(|weak| {
                let Some(cut) = weak.upgrade() else {
                    return false;
                };
                if chosen.len() < n && !cut.is_chosen() {
                    chosen.push(cut);
                    return false;
                }
                true
            });
            chosen
        };
        for cut in &chosen {
            if cut.socket().is_some_and(|socket| leaving(&socket)) {
                cut.leaving.store(true, Ordering::Release);
                let cut = cut.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(FLUSH_BEFORE_CUT).await;
                    cut.cut();
                });
            } else {
                cut.cut();
            }
        }
        chosen.len()
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
        assert_eq!(sockets.cut(2, |_| false), 2);
        assert_eq!(sockets.open(), 3);
        assert_eq!(live.iter().filter(|c| c.is_cut()).count(), 2);
        assert_eq!(sockets.cut(10, |_| false), 3);
        assert_eq!(sockets.open(), 0);
        assert_eq!(sockets.cut(1, |_| false), 0);
    }

    /// A connection whose socket is leaving (a resumable session) is cut a moment later, so
    /// what was queued for its client goes out first; it stops counting as open at once.
    #[tokio::test]
    async fn leaving_sockets_are_cut_after_a_flush() {
        let sockets = WebSockets::default();
        let resumable = Arc::new(Cut::default());
        resumable.carries("s1");
        let stock = Arc::new(Cut::default());
        stock.carries("s2");
        sockets.register(&resumable);
        sockets.register(&stock);
        assert_eq!(sockets.cut(2, |socket| socket == "s1"), 2);
        assert!(stock.cut.load(Ordering::Acquire));
        assert!(!resumable.is_cut(), "a leaving connection still reads and writes");
        assert_eq!(sockets.open(), 0);
        tokio::time::sleep(FLUSH_BEFORE_CUT * 2).await;
        assert!(resumable.cut.load(Ordering::Acquire));
    }

    #[tokio::test]
    async fn a_cut_stream_reads_end_of_file_and_refuses_writes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tracked = TrackedListener(listener);
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
