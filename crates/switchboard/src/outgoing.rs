//! The bytes waiting to be written to one TCP connection, bounded in bytes.
//!
//! Why: engineioxide queues a socket's outgoing packets in a channel bounded in *packets*
//! (`--max-buffered-packets`), and its writer stops taking packets from that channel while the
//! connection cannot be written to. A client that never reads its socket (while answering
//! pings, so it stays connected) therefore pins up to 4096 × `--max-payload` bytes: a roommate
//! sending 60 KB relays pinned 228 MiB per victim. socketioxide offers no byte limit and no
//! view into that channel.
//!
//! So the connection itself never makes the writer wait: [`Outgoing::write`] hands what the
//! kernel takes to the kernel and keeps the rest here, where it is counted. The writer then
//! keeps emptying engineioxide's channel, so every byte a slow client has not read yet is in
//! this buffer (or in the kernel's socket buffer, which is not the process's memory). A
//! connection whose buffer would exceed `--max-outgoing-bytes` is cut: the WebSocket library
//! sees the connection end, the socket is disconnected as on any transport close (its rooms
//! hear the departure) and its buffer is freed. A small task writes the buffer out as the
//! client reads; it exists only while bytes wait, and gives up (cutting the connection) when
//! the client has read nothing for [`STALL_LIMIT`].
//!
//! A healthy client never has anything here: the kernel's socket buffer absorbs every burst
//! of signaling.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpStream;

use crate::connections::Cut;
use crate::metrics::{self, CutReason};

/// How long bytes may wait without the client reading any of them before the connection is
/// cut. Longer than a ping interval plus timeout, so a client that is merely slow (a phone
/// on a bad link) is not cut for it; a client that reads nothing is cut by the byte budget
/// long before this when anyone sends it much.
pub const STALL_LIMIT: Duration = Duration::from_secs(60);

/// A connection's unsent bytes and its budget.
#[derive(Debug)]
pub struct Outgoing {
    stream: Arc<TcpStream>,
    cut: Arc<Cut>,
    peer: SocketAddr,
    budget: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Bytes not yet taken by the kernel, from `start` on.
    pending: Vec<u8>,
    start: usize,
    /// A drain task runs.
    draining: bool,
    /// The writer asked for a shutdown while bytes were pending: the drain task does it.
    shutdown: bool,
}

impl State {
    fn waiting(&self) -> usize {
        self.pending.len() - self.start
    }

    /// Hands pending bytes to the kernel until it takes no more. Errors are the
    /// connection's (reset, broken pipe).
    fn write_out(&mut self, stream: &TcpStream) -> io::Result<()> {
        while self.waiting() > 0 {
            match stream.try_write(&self.pending[self.start..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.start += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if self.waiting() == 0 {
            self.forget();
        } else if self.start > self.pending.len() / 2 {
            self.pending.drain(..self.start);
            self.start = 0;
        }
        Ok(())
    }

    /// Drops what waits and frees its memory.
    fn forget(&mut self) {
        self.pending = Vec::new();
        self.start = 0;
    }
}

impl Outgoing {
    pub fn new(stream: Arc<TcpStream>, cut: Arc<Cut>, peer: SocketAddr, budget: usize) -> Self {
        Self {
            stream,
            cut,
            peer,
            budget,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes waiting for the client to read them.
    pub fn waiting(&self) -> usize {
        self.state().waiting()
    }

    /// Takes all of `buf`, never waiting: what the kernel does not take now waits here. Fails
    /// (and cuts the connection) when that would put the connection over its budget.
    pub fn write(self: &Arc<Self>, buf: &[u8]) -> io::Result<usize> {
        if self.cut.is_cut() {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let mut state = self.state();
        state.write_out(&self.stream)?;
        let mut taken = 0;
        if state.waiting() == 0 {
            match self.stream.try_write(buf) {
                Ok(n) => taken = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        let rest = &buf[taken..];
        if rest.is_empty() {
            return Ok(buf.len());
        }
        if state.waiting() + rest.len() > self.budget {
            state.forget();
            drop(state);
            self.give_up(CutReason::OutgoingBudget);
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        state.pending.extend_from_slice(rest);
        if !state.draining {
            state.draining = true;
            tokio::spawn(self.clone().drain());
        }
        Ok(buf.len())
    }

    /// Shuts the write side down once every pending byte is written (at once if none waits).
    pub fn shutdown(&self) {
        let mut state = self.state();
        if state.draining && !self.cut.is_cut() {
            state.shutdown = true;
        } else {
            drop(state);
            self.shut_now();
        }
    }

    fn shut_now(&self) {
        let _ = socket2::SockRef::from(&*self.stream).shutdown(std::net::Shutdown::Write);
    }

    fn give_up(&self, reason: CutReason) {
        metrics::connection_cut(reason);
        tracing::warn!(peer = %self.peer, reason = reason.name(), budget = self.budget, "connection cut");
        self.cut.cut();
    }

    /// Writes the pending bytes as the client reads them; ends when none waits, the
    /// connection is cut or broken, or the client read nothing for [`STALL_LIMIT`].
    async fn drain(self: Arc<Self>) {
        loop {
            let writable = tokio::time::timeout(STALL_LIMIT, self.stream.writable()).await;
            let mut state = self.state();
            let stalled = writable.is_err();
            let failed = matches!(writable, Ok(Err(_))) || state.write_out(&self.stream).is_err();
            if stalled || failed || self.cut.is_cut() {
                state.forget();
                state.draining = false;
                drop(state);
                if stalled {
                    self.give_up(CutReason::Stalled);
                }
                self.shut_now();
                return;
            }
            if state.waiting() == 0 {
                state.draining = false;
                let shutdown = std::mem::take(&mut state.shutdown);
                drop(state);
                if shutdown {
                    self.shut_now();
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    async fn pair(budget: usize) -> (Arc<Outgoing>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        let cut = Arc::new(Cut::default());
        let outgoing = Arc::new(Outgoing::new(Arc::new(server), cut, peer, budget));
        (outgoing, client)
    }

    /// Writes never wait; a client that does not read costs at most the budget, and then its
    /// connection is cut.
    #[tokio::test]
    async fn a_client_that_does_not_read_is_cut_at_the_budget() {
        let (outgoing, _client) = pair(1 << 20).await;
        let chunk = vec![7u8; 64 * 1024];
        let mut written = 0usize;
        let result = loop {
            match outgoing.write(&chunk) {
                Ok(n) => written += n,
                Err(e) => break e,
            }
            assert!(outgoing.waiting() <= 1 << 20);
            assert!(written < 1 << 30, "never cut");
        };
        assert_eq!(result.kind(), io::ErrorKind::BrokenPipe);
        assert!(outgoing.cut.is_cut());
        assert_eq!(outgoing.waiting(), 0, "the buffer is freed");
    }

    /// Bytes that waited reach a client that reads late, in order.
    #[tokio::test]
    async fn pending_bytes_reach_a_late_reader_in_order() {
        let (outgoing, mut client) = pair(64 << 20).await;
        let total: usize = 16 << 20;
        let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        for chunk in data.chunks(100_000) {
            assert_eq!(outgoing.write(chunk).unwrap(), chunk.len());
        }
        outgoing.shutdown();
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert!(got == data, "{} of {total} bytes, or reordered", got.len());
    }
}
