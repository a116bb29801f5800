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
//!
//! The same switch enforces two deadlines on every connection, checked once a second by one
//! sweep over all of them (no timer per connection): a connection must carry a complete HTTP
//! request head within `--handshake-timeout` of being accepted (slowloris, and connections
//! that never send anything), and one that receives nothing for `--idle-timeout` is closed
//! (WebSocket clients answer a ping every `--ping-interval`, polling clients poll again at
//! once).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use std::time::Instant;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::metrics::{self, CutReason};
use crate::outgoing::Outgoing;

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
    /// When the connection was accepted, and when it last received bytes, in milliseconds
    /// of [`clock`].
    accepted_ms: AtomicU64,
    last_read_ms: AtomicU64,
    /// A complete HTTP request head arrived on it (see `http::gate`).
    request_seen: AtomicBool,
}

/// Milliseconds since the first call: the coarse clock of the connection deadlines.
fn clock() -> u64 {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    START.elapsed().as_millis() as u64
}

impl Cut {
    /// A complete request arrived: the handshake deadline no longer applies.
    pub fn request_seen(&self) {
        self.request_seen.store(true, Ordering::Relaxed);
    }

    /// Why the connection is past a deadline at `now`, if it is.
    fn overdue(&self, now: u64, deadlines: &Deadlines) -> Option<CutReason> {
        let handshake = deadlines.handshake.as_millis() as u64;
        let idle = deadlines.idle.as_millis() as u64;
        if !self.request_seen.load(Ordering::Relaxed)
            && now.saturating_sub(self.accepted_ms.load(Ordering::Relaxed)) > handshake
        {
            Some(CutReason::HandshakeTimeout)
        } else if now.saturating_sub(self.last_read_ms.load(Ordering::Relaxed)) > idle {
            Some(CutReason::IdleTimeout)
        } else {
            None
        }
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        self.reader.wake();
    }

    pub fn is_cut(&self) -> bool {
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

/// A TCP listener whose connections can be cut, with TCP_NODELAY set on each, whose unsent
/// bytes are bounded (see [`crate::outgoing`]) and which closes connections past their
/// handshake or idle deadline.
pub struct TrackedListener {
    listener: TcpListener,
    limits: ConnectionLimits,
    /// Every open connection, for the deadline sweep.
    open: Arc<Mutex<Vec<Weak<Cut>>>>,
    sweeping: bool,
}

/// The limits every connection of a [`TrackedListener`] gets.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// `--max-outgoing-bytes`: what one connection may have waiting for its client to read.
    pub outgoing_budget: usize,
    pub deadlines: Deadlines,
}

/// `--handshake-timeout` and `--idle-timeout`.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub handshake: Duration,
    pub idle: Duration,
}

impl TrackedListener {
    pub fn new(listener: TcpListener, limits: ConnectionLimits) -> Self {
        Self {
            listener,
            limits,
            open: Arc::default(),
            sweeping: false,
        }
    }

    /// Cuts the connections past a deadline, once a second, while the listener lives.
    fn sweep(&self) -> impl Future<Output = ()> + use<> {
        let open = Arc::downgrade(&self.open);
        let deadlines = self.limits.deadlines;
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(open) = open.upgrade() else { return };
                let now = clock();
                let mut open = open.lock().unwrap_or_else(|p| p.into_inner());
                open.retain(|weak| {
                    let Some(cut) = weak.upgrade() else {
                        return false;
                    };
                    if cut.is_cut() {
                        return false;
                    }
                    if let Some(reason) = cut.overdue(now, &deadlines) {
                        metrics::connection_cut(reason);
                        tracing::debug!(reason = reason.name(), "connection cut");
                        cut.cut();
                        return false;
                    }
                    true
                });
            }
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
                    if !self.sweeping {
                        self.sweeping = true;
                        tokio::spawn(self.sweep());
                    }
                    let now = clock();
                    let cut = Arc::new(Cut {
                        accepted_ms: AtomicU64::new(now),
                        last_read_ms: AtomicU64::new(now),
                        ..Cut::default()
                    });
                    self.open
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(Arc::downgrade(&cut));
                    let stream = Arc::new(stream);
                    let budget = self.limits.outgoing_budget;
                    let outgoing = Outgoing::new(stream.clone(), cut.clone(), addr, budget);
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
                    if n > 0 {
                        self.cut.last_read_ms.store(clock(), Ordering::Relaxed);
                    }
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
        assert!(
            !resumable.is_cut(),
            "a leaving connection still reads and writes"
        );
        assert_eq!(sockets.open(), 0);
        tokio::time::sleep(FLUSH_BEFORE_CUT * 2).await;
        assert!(resumable.cut.load(Ordering::Acquire));
    }

    #[tokio::test]
    async fn a_cut_stream_reads_end_of_file_and_refuses_writes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = ConnectionLimits {
            outgoing_budget: 1 << 20,
            deadlines: Deadlines {
                handshake: Duration::from_secs(10),
                idle: Duration::from_secs(60),
            },
        };
        let mut tracked = TrackedListener::new(listener, limits);
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
