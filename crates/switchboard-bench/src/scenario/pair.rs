//! Two peers of one room relaying `#rtcio:message` envelopes to each other.
//!
//! One task owns both sockets, so it knows exactly which envelopes are in flight: a peer
//! sends only while fewer than `window` of its envelopes have not yet reached its partner.
//! At full speed each delivery releases the next envelope (a closed loop, so the offered load
//! is whatever the server sustains); paced, both peers send on a timer and a full window is a
//! counted stall. Each envelope's data carries a sequence number and its send time, so the
//! receiver checks order and the stamped `source`, and records latency, without a lookup.
//!
//! The task stays cheap next to the server it measures: every frame already readable on
//! either socket is handled in one wake-up, the envelopes that releases are queued, and each
//! socket is flushed once (one `write` call) at the end of the wake-up. Envelopes are written
//! from pre-built templates ([`wire::ProbeFrames`]) and read by a scan of the known fields
//! ([`wire::scan_probe`]), with the full JSON parser only for frames of another shape.
//!
//! The task also keeps each peer's view of the room's presence (`user-connected` adds,
//! `user-disconnected` removes), for the churn scenario's consistency check.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::FutureExt;
use hdrhistogram::Histogram;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::BenchError;
use crate::client::Conn;
use crate::clock;
use crate::report::{latency_histogram, record};
use crate::wire::{self, Frame, Probe, ProbeFrames, RELAY_EVENT};

/// Most rounds of frames handled in one wake-up before the queued envelopes are flushed (each
/// round reads at most one frame per socket), so a busy pair still writes regularly.
const BATCH_ROUNDS: usize = 64;

/// When and how fast a pair sends.
#[derive(Debug, Clone)]
pub struct PairPlan {
    /// Sending starts here (all pairs together).
    pub start: Instant,
    /// No new envelope is sent after this.
    pub send_until: Instant,
    /// The pair gives up waiting for envelopes in flight after this.
    pub drain_until: Instant,
    /// Envelopes one peer may have in flight.
    pub window: u64,
    /// Interval between sends per direction when paced; `None` for full speed.
    pub period: Option<Duration>,
    /// Filler that makes each envelope's data the configured size.
    pub pad: String,
}

/// One peer of the pair.
struct Peer {
    conn: Conn,
    /// Envelopes this peer sent.
    sent: u64,
    /// Of those, not yet received by the partner.
    in_flight: u64,
    /// Sequence number of the next envelope this peer expects from its partner.
    expected: u64,
    /// Who this peer believes is in the room with it (not counting itself).
    presence: BTreeSet<String>,
    alive: bool,
}

/// What one pair saw.
#[derive(Debug)]
pub struct PairOutcome {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub wrong_source: u64,
    pub out_of_order: u64,
    /// `error` events (refusals) the peers got.
    pub refused: u64,
    pub disconnected: u64,
    /// Paced sends skipped because the window was full.
    pub stalls: u64,
    pub latency: Histogram<u64>,
    /// Each peer's sid and presence view at the end.
    pub views: [(String, BTreeSet<String>); 2],
    pub first_problem: Option<String>,
    pub conns: Vec<Conn>,
}

/// What woke the pair up.
enum Wake {
    /// A frame (or an error) from peer 0 or 1.
    Frame(usize, Result<Utf8Bytes, BenchError>),
    /// The pacing timer: both peers send.
    Tick,
    /// The end of sending or of the drain.
    Deadline,
}

/// Runs the pair until everything sent has arrived after `send_until`, or `drain_until`.
pub async fn run(a: Conn, b: Conn, plan: PairPlan) -> PairOutcome {
    let peer = |conn: Conn| Peer {
        conn,
        sent: 0,
        in_flight: 0,
        expected: 0,
        presence: BTreeSet::new(),
        alive: true,
    };
    let mut peers = [peer(a), peer(b)];
    let mut out = PairOutcome {
        sent: 0,
        received: 0,
        lost: 0,
        wrong_source: 0,
        out_of_order: 0,
        refused: 0,
        disconnected: 0,
        stalls: 0,
        latency: latency_histogram(),
        views: Default::default(),
        first_problem: None,
        conns: Vec::new(),
    };
    // Both peers know each other from the join; the partner is in each view from the start.
    let sids = [peers[0].conn.sid.clone(), peers[1].conn.sid.clone()];
    peers[0].presence.insert(sids[1].clone());
    peers[1].presence.insert(sids[0].clone());

    let frames = [
        ProbeFrames::new(&sids[0], &sids[1], &plan.pad),
        ProbeFrames::new(&sids[1], &sids[0], &plan.pad),
    ];
    let pair = Pair {
        sids: &sids,
        frames: &frames,
        plan: &plan,
    };

    tokio::time::sleep_until(plan.start).await;
    let mut ticker = plan.period.map(|p| {
        let mut t = tokio::time::interval_at(plan.start, p);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        t
    });
    if plan.period.is_none() {
        for from in 0..2 {
            for _ in 0..plan.window {
                pair.send(&mut peers, from, &mut out).await;
            }
        }
        pair.flush(&mut peers, &mut out).await;
    }
    loop {
        let now = Instant::now();
        let sending = now < plan.send_until;
        let idle = peers.iter().all(|p| p.in_flight == 0 || !p.alive);
        if (!sending && idle) || now >= plan.drain_until || peers.iter().all(|p| !p.alive) {
            break;
        }
        let deadline = if sending {
            plan.send_until
        } else {
            plan.drain_until
        };
        let [p0, p1] = &mut peers;
        let wake = tokio::select! {
            r = p0.conn.recv(), if p0.alive => Wake::Frame(0, r),
            r = p1.conn.recv(), if p1.alive => Wake::Frame(1, r),
            _ = async {
                match ticker.as_mut() {
                    Some(t) => { t.tick().await; }
                    None => std::future::pending::<()>().await,
                }
            }, if sending => Wake::Tick,
            _ = tokio::time::sleep_until(deadline) => Wake::Deadline,
        };
        match wake {
            Wake::Frame(at, text) => {
                pair.handle(&mut peers, at, text, &mut out).await;
                // Everything else already readable is handled in this wake-up too.
                for _ in 0..BATCH_ROUNDS {
                    let mut handled = false;
                    for at in 0..2 {
                        if !peers[at].alive {
                            continue;
                        }
                        if let Some(text) = peers[at].conn.recv().now_or_never() {
                            pair.handle(&mut peers, at, text, &mut out).await;
                            handled = true;
                        }
                    }
                    if !handled {
                        break;
                    }
                }
            }
            Wake::Tick => {
                for from in 0..2 {
                    if peers[from].in_flight < plan.window {
                        pair.send(&mut peers, from, &mut out).await;
                    } else {
                        out.stalls += 1;
                    }
                }
            }
            Wake::Deadline => {}
        }
        pair.flush(&mut peers, &mut out).await;
    }
    out.sent = peers.iter().map(|p| p.sent).sum();
    out.lost = peers.iter().map(|p| p.in_flight).sum();
    let [p0, p1] = peers;
    out.views = [
        (sids[0].clone(), p0.presence),
        (sids[1].clone(), p1.presence),
    ];
    out.conns = vec![p0.conn, p1.conn];
    out
}

/// What every step of one pair needs besides its peers and its outcome.
struct Pair<'a> {
    sids: &'a [String; 2],
    /// Envelope templates from peer 0 to 1 and from 1 to 0.
    frames: &'a [ProbeFrames; 2],
    plan: &'a PairPlan,
}

impl Pair<'_> {
    /// Handles one frame (or a read error) that peer `at` received.
    async fn handle(
        &self,
        peers: &mut [Peer; 2],
        at: usize,
        text: Result<Utf8Bytes, BenchError>,
        out: &mut PairOutcome,
    ) {
        let sids = self.sids;
        let text = match text {
            Ok(text) => text,
            Err(e) => {
                peers[at].alive = false;
                out.disconnected += 1;
                out.first_problem
                    .get_or_insert_with(|| format!("peer {} lost its connection: {e}", sids[at]));
                return;
            }
        };
        let arrived = clock::now_micros();
        let from = 1 - at;
        // The common case, an envelope of this bench, is read by a scan of its known fields;
        // any other frame takes the full parser.
        let (source, probe) = match wire::scan_probe(&text, &self.plan.pad) {
            Some((source, probe)) => (std::borrow::Cow::Borrowed(source), Some(probe)),
            None => match wire::parse(&text) {
                Frame::Event { name, payload } if name == RELAY_EVENT => {
                    let Some(envelope) = wire::envelope(payload) else {
                        out.wrong_source += 1;
                        return;
                    };
                    let probe = serde_json::from_str::<Probe>(envelope.data.get()).ok();
                    (envelope.source, probe)
                }
                Frame::Event { name, payload } => {
                    self.other_event(peers, at, name, payload, out);
                    return;
                }
                _ => return,
            },
        };
        if source.as_ref() != sids[from] {
            out.wrong_source += 1;
            out.first_problem
                .get_or_insert_with(|| format!("source {:?}, expected {:?}", source, sids[from]));
        }
        match probe {
            Some(probe) => {
                record(&mut out.latency, arrived.saturating_sub(probe.t));
                if probe.seq != peers[at].expected {
                    out.out_of_order += 1;
                }
                peers[at].expected = probe.seq + 1;
            }
            None => out.out_of_order += 1,
        }
        out.received += 1;
        peers[from].in_flight = peers[from].in_flight.saturating_sub(1);
        if self.plan.period.is_none() && Instant::now() < self.plan.send_until {
            self.send(peers, from, out).await;
        }
    }

    /// Presence changes and refusals.
    fn other_event(
        &self,
        peers: &mut [Peer; 2],
        at: usize,
        name: &str,
        payload: &str,
        out: &mut PairOutcome,
    ) {
        match name {
            "user-connected" => {
                if let Some(id) = wire::Someone::read(payload) {
                    peers[at].presence.insert(id);
                }
            }
            "user-disconnected" => {
                if let Some(id) = wire::Someone::read(payload) {
                    peers[at].presence.remove(&id);
                }
            }
            "error" => {
                out.refused += 1;
                out.first_problem
                    .get_or_insert_with(|| format!("error event: {payload}"));
            }
            _ => {}
        }
    }

    /// Queues the next envelope from peer `from` to its partner; [`Pair::flush`] writes it.
    async fn send(&self, peers: &mut [Peer; 2], from: usize, out: &mut PairOutcome) {
        if !peers[from].alive {
            return;
        }
        let probe = Probe {
            seq: peers[from].sent,
            t: clock::now_micros(),
        };
        let frame = self.frames[from].frame(probe);
        match peers[from].conn.feed(frame).await {
            Ok(()) => {
                peers[from].sent += 1;
                peers[from].in_flight += 1;
            }
            Err(e) => {
                peers[from].alive = false;
                out.disconnected += 1;
                out.first_problem
                    .get_or_insert_with(|| format!("send failed: {e}"));
            }
        }
    }

    /// Writes what each peer queued (one `write` call per socket when it takes it all).
    async fn flush(&self, peers: &mut [Peer; 2], out: &mut PairOutcome) {
        for peer in peers.iter_mut() {
            if peer.alive
                && peer.conn.unflushed()
                && let Err(e) = peer.conn.flush().await
            {
                peer.alive = false;
                out.disconnected += 1;
                out.first_problem
                    .get_or_insert_with(|| format!("send failed: {e}"));
            }
        }
    }
}
