//! The load scenarios, and what they share: the nodes, the watched processes, connecting many
//! sockets at a bounded concurrency, and request/ack calls.
//!
//! - [`idle`]: hold N sockets; connect rate and server memory per socket.
//! - [`relay`]: pairs relaying envelopes; throughput, latency, loss, CPU per 1,000 messages.
//! - [`storm`]: peers joining rooms and negotiating; every offer, answer and candidate counted.
//! - [`churn`]: peers joining and leaving while others relay; loss and presence consistency.
//!
//! Every scenario is bounded: a fixed number of sockets and messages, and a deadline on every
//! phase, so a server that stops answering ends the run with its losses counted.

pub mod churn;
pub mod idle;
mod pair;
pub mod relay;
pub mod storm;

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::BenchError;
use crate::client::Conn;
use crate::procstat::Watched;
use crate::scrape::{self, ClusterCounters};
use crate::target::{NodeUrl, Sources, Topology, node_of_member};
use crate::wire::{self, Frame};

/// What every scenario needs to know about the system under test.
#[derive(Debug, Clone)]
pub struct Target {
    /// The nodes the load connects to (the busy ones).
    pub urls: Vec<NodeUrl>,
    /// Every node of the system, busy ones first: with more than one, their cluster counters
    /// are scraped around the measured phase (an idle node that receives cluster messages is
    /// as telling as a busy one).
    pub cluster: Vec<NodeUrl>,
    /// Server processes (and Redis) whose RSS and CPU are reported.
    pub watched: Vec<Watched>,
    /// Label of the server in reports (`switchboard`, `node`, ...).
    pub label: String,
    /// Explicit number of loopback source addresses; by default enough for the sockets.
    pub sources: Option<usize>,
    /// Connections being set up at once.
    pub concurrency: usize,
    pub progress: bool,
}

impl Target {
    pub fn url_texts(&self) -> Vec<String> {
        self.urls.iter().map(|u| u.text.clone()).collect()
    }

    /// The node socket number `index` connects to: sockets are spread round-robin.
    pub fn node_for(&self, index: usize) -> &NodeUrl {
        &self.urls[index % self.urls.len()]
    }

    /// The node member `member` of room `room` connects to (see [`crate::target`]).
    pub fn node_of_member(&self, room: usize, member: usize) -> &NodeUrl {
        &self.urls[node_of_member(room, member, self.urls.len())]
    }

    /// Where the pairs of `rooms` rooms of `room_size` sit, for a system of several nodes.
    pub fn topology(&self, rooms: usize, room_size: usize) -> Option<Topology> {
        (self.cluster.len() > 1)
            .then(|| Topology::of_rooms(rooms, room_size, self.urls.len(), self.cluster.len()))
    }

    /// The cluster counters of every node, for a system of several nodes.
    pub async fn cluster_counters(&self) -> Option<Vec<ClusterCounters>> {
        if self.cluster.len() > 1 {
            Some(scrape::scrape(&self.cluster).await)
        } else {
            None
        }
    }

    /// A progress bar of `len` steps (hidden with `--no-progress` or off a terminal).
    pub fn progress(&self, len: u64, what: &str) -> ProgressBar {
        let bar = if self.progress {
            ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {prefix:>10} [{bar:30}] {pos}/{len} ({per_sec}) {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(what.to_string());
        bar
    }
}

/// Advances `bar` by one step a second until the returned task is aborted: the progress of a
/// phase measured in seconds.
pub fn tick_each_second(bar: &ProgressBar) -> tokio::task::JoinHandle<()> {
    let bar = bar.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(1));
        loop {
            interval.tick().await;
            bar.inc(1);
        }
    })
}

/// Connects `count` sockets, socket `i` to `node(i)` from its source address, at most
/// `target.concurrency` at a time. Returns each socket (or why it failed) in index order.
pub async fn connect_all(
    target: &Target,
    count: usize,
    node: impl Fn(usize) -> NodeUrl,
    what: &str,
) -> Vec<Result<Conn, BenchError>> {
    let sources = Sources::for_connections(count, target.sources);
    let permits = Arc::new(Semaphore::new(target.concurrency.max(1)));
    let bar = target.progress(count as u64, what);
    let mut tasks = JoinSet::new();
    for index in 0..count {
        let node = node(index);
        let source = sources.for_index(index);
        let permits = permits.clone();
        let bar = bar.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let conn = Conn::connect(&node, source).await;
            bar.inc(1);
            (index, conn)
        });
    }
    let mut conns: Vec<Option<Result<Conn, BenchError>>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, conn)) = joined {
            conns[index] = Some(conn);
        }
    }
    bar.finish_and_clear();
    conns
        .into_iter()
        .map(|c| c.unwrap_or(Err(BenchError::Closed)))
        .collect()
}

/// Sends `name` with `payload` asking for ack `id`, and waits for that ack. Frames that arrive
/// in the meantime are returned too, in order, for the caller to handle.
pub async fn call(
    conn: &mut Conn,
    name: &str,
    payload: &str,
    id: u64,
    wait: Duration,
) -> Result<(String, Vec<String>), BenchError> {
    conn.send(wire::event(name, payload, Some(id))).await?;
    let mut others = Vec::new();
    let answer = async {
        loop {
            let text = conn.recv().await?;
            if let Frame::Ack { id: got, args } = wire::parse(&text)
                && got == id
            {
                return Ok::<_, BenchError>(args.to_string());
            }
            others.push(text.as_str().to_string());
        }
    };
    let args = tokio::time::timeout(wait, answer)
        .await
        .map_err(|_| BenchError::Timeout("waiting for an ack"))??;
    Ok((args, others))
}

/// A small deterministic generator (xorshift64*), so runs are repeatable without a crate.
#[derive(Debug, Clone)]
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Dice {
        Dice(seed.max(1))
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// Splits a list of connect results into the sockets and a count of failures, keeping the
/// first failure's reason.
pub fn split_failures(
    results: Vec<Result<Conn, BenchError>>,
) -> (Vec<Option<Conn>>, u64, Option<String>) {
    let mut failed = 0;
    let mut first = None;
    let conns = results
        .into_iter()
        .map(|r| match r {
            Ok(c) => Some(c),
            Err(e) => {
                failed += 1;
                first.get_or_insert_with(|| e.to_string());
                None
            }
        })
        .collect();
    (conns, failed, first)
}
