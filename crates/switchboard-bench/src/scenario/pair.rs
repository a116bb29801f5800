//! Two peers of one room relaying `#rtcio:message` envelopes to each other.
//!
//! One task owns both sockets, so it knows exactly which envelopes are in flight: a peer
//! sends only while fewer than `window` of its envelopes have not yet reached its partner.
//! At full speed each delivery releases the next envelope (a closed loop, so the offered load
//! is whatever the server sustains); paced, both peers send on a timer and a full window is a
//! counted stall. Each envelope's data carries a sequence number and its send time, so the
//! receiver checks order and the stamped `source`, and records latency, without a lookup.
//!
//! The task also keeps each peer's view of the room's presence (`user-connected` adds,
//! `user-disconnected` removes), for the churn scenario's consistency check.

use std::collections::BTreeSet;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Deserialize;
use tokio::time::Instant;

use crate::client::Conn;
use crate::clock;
use crate::report::{latency_histogram, record};
use crate::wire::{self, Frame, RELAY_EVENT};

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

#[derive(Deserialize)]
struct Probe {
    seq: u64,
    t: u64,
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

    tokio::time::sleep_until(plan.start).await;
    let mut ticker = plan.period.map(|p| {
        let mut t = tokio::time::interval_at(plan.start, p);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        t
    });
    if plan.period.is_none() {
        for from in 0..2 {
            for _ in 0..plan.window {
                send(&mut peers, from, &sids, &plan, &mut out).await;
            }
        }
    }
    loop {
        let now = Instant::now();
        let sending = now < plan.send_until;
        let idle = peers.iter().all(|p| p.in_flight == 0 || !p.alive);
        if (!sending && idle) || now >= plan.drain_until || peers.iter().all(|p| !p.alive) {
            break;
        }
        let wake = if sending {
            plan.send_until
        } else {
            plan.drain_until
        };
        let [p0, p1] = &mut peers;
        let (at, text) = tokio::select! {
            r = p0.conn.recv(), if p0.alive => (0, r),
            r = p1.conn.recv(), if p1.alive => (1, r),
            _ = async {
                match ticker.as_mut() {
                    Some(t) => { t.tick().await; }
                    None => std::future::pending::<()>().await,
                }
            }, if sending => {
                for from in 0..2 {
                    if peers[from].in_flight < plan.window {
                        send(&mut peers, from, &sids, &plan, &mut out).await;
                    } else {
                        out.stalls += 1;
                    }
                }
                continue;
            }
            _ = tokio::time::sleep_until(wake) => continue,
        };
        let text = match text {
            Ok(text) => text,
            Err(e) => {
                peers[at].alive = false;
                out.disconnected += 1;
                out.first_problem
                    .get_or_insert_with(|| format!("peer {} lost its connection: {e}", sids[at]));
                continue;
            }
        };
        let from = 1 - at;
        match wire::parse(&text) {
            Frame::Event { name, payload } if name == RELAY_EVENT => {
                let arrived = clock::now_micros();
                let Some(envelope) = wire::envelope(payload) else {
                    out.wrong_source += 1;
                    continue;
                };
                if envelope.source.as_ref() != sids[from] {
                    out.wrong_source += 1;
                    out.first_problem.get_or_insert_with(|| {
                        format!("source {:?}, expected {:?}", envelope.source, sids[from])
                    });
                }
                match serde_json::from_str::<Probe>(envelope.data.get()) {
                    Ok(probe) => {
                        record(&mut out.latency, arrived.saturating_sub(probe.t));
                        if probe.seq != peers[at].expected {
                            out.out_of_order += 1;
                        }
                        peers[at].expected = probe.seq + 1;
                    }
                    Err(_) => out.out_of_order += 1,
                }
                out.received += 1;
                peers[from].in_flight = peers[from].in_flight.saturating_sub(1);
                if plan.period.is_none() && Instant::now() < plan.send_until {
                    send(&mut peers, from, &sids, &plan, &mut out).await;
                }
            }
            Frame::Event { name, payload } => match name {
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
            },
            _ => {}
        }
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

/// Sends the next envelope from peer `from` to its partner.
async fn send(
    peers: &mut [Peer; 2],
    from: usize,
    sids: &[String; 2],
    plan: &PairPlan,
    out: &mut PairOutcome,
) {
    if !peers[from].alive {
        return;
    }
    let seq = peers[from].sent;
    let data = format!(
        "{{\"seq\":{seq},\"t\":{},\"pad\":\"{}\"}}",
        clock::now_micros(),
        plan.pad
    );
    let frame = wire::relay(&sids[from], &sids[1 - from], &data);
    match peers[from].conn.send(frame).await {
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
