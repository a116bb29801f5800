//! `storm`: P peers join rooms of K at a fixed rate and negotiate like rtc.io clients.
//!
//! Peer `i` is member `i % K` of room `i / K`; the members of a room connect to consecutive
//! nodes (see [`crate::target`]), so with at least K nodes every pair of roommates is across
//! nodes, and the report says how many pairs were. Everyone connects first; then peers join in index order
//! at `join_rate` per second. On `#rtcio:init-offer` an existing member sends the newcomer a
//! 5 KiB offer and 8 ICE candidates; on the offer the newcomer answers with a 5 KiB answer and
//! 8 candidates. Every ordered pair of roommates must therefore carry one description and
//! eight candidates, candidates after the description: anything missing is lost, anything
//! more (or from a non-roommate, or both sides offering) is unexpected.
//!
//! Per peer, *join→last message* runs from its `join-room` to the last of the 18 messages of
//! the pairs it opened by joining (those with the members that were already there). Server
//! CPU from the first join until everything arrived is also given per 1,000 signaling
//! messages delivered (joins included in the cost).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Target, connect_all, split_failures};
use crate::client::Conn;
use crate::clock;
use crate::procstat::Snapshot;
use crate::report::{Report, latency_histogram, record};
use crate::wire::{self, Frame, RELAY_EVENT};

#[derive(Debug, Clone)]
pub struct StormOptions {
    pub peers: usize,
    pub room_size: usize,
    /// Joins per second over all nodes.
    pub join_rate: f64,
    /// Size of the SDP of offers and answers, in bytes.
    pub sdp_bytes: usize,
    pub candidates: usize,
    /// Longest time from the first join until every expected message has arrived.
    pub deadline: Duration,
}

/// Kinds of signaling message a peer receives.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Offer,
    Answer,
    Candidate,
}

/// One message a peer received: from whom, what, when (µs on the run clock).
#[derive(Debug, Clone)]
struct Arrival {
    from: String,
    kind: Kind,
    at: u64,
}

/// What one peer saw.
#[derive(Debug, Default)]
struct PeerLog {
    sid: String,
    joined_at: Option<u64>,
    join_ack_micros: Option<u64>,
    join_refused: bool,
    arrivals: Vec<Arrival>,
    /// Candidates that arrived before the description of the same sender.
    early_candidates: u64,
    introductions: u64,
    refused: u64,
    unreadable: u64,
    disconnected: bool,
}

#[derive(Deserialize)]
struct Signal<'a> {
    #[serde(borrow, default)]
    description: Option<Description<'a>>,
    #[serde(borrow, default)]
    candidate: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Description<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
}

/// Signaling payloads of the configured sizes, built once.
struct Payloads {
    sdp: String,
    candidate: String,
}

impl Payloads {
    fn new(sdp_bytes: usize) -> Payloads {
        let mut sdp = String::from("v=0\\r\\no=- 4611731400430051336 2 IN IP4 127.0.0.1\\r\\n");
        while sdp.len() < sdp_bytes {
            sdp.push_str("a=rtcp-fb:111 transport-cc\\r\\n");
        }
        let candidate = format!(
            "{{\"candidate\":{{\"candidate\":\"candidate:842163049 1 udp 1677729535 {} 50000 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag sXQ3 network-cost 999\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0}}}}",
            "127.0.0.1"
        );
        Payloads { sdp, candidate }
    }

    fn description(&self, kind: &str) -> String {
        format!(
            "{{\"description\":{{\"type\":\"{kind}\",\"sdp\":\"{}\"}}}}",
            self.sdp
        )
    }
}

/// Sends a description of `kind` and then the candidates to `to`.
async fn negotiate(
    conn: &mut Conn,
    to: &str,
    kind: &str,
    payloads: &Payloads,
    candidates: usize,
) -> Result<(), crate::BenchError> {
    let sid = conn.sid.clone();
    conn.feed(wire::relay(&sid, to, &payloads.description(kind)))
        .await?;
    for _ in 0..candidates {
        conn.feed(wire::relay(&sid, to, &payloads.candidate))
            .await?;
    }
    conn.flush().await
}

struct PeerPlan {
    room: String,
    join_at: Instant,
    payloads: Arc<Payloads>,
    candidates: usize,
    received: Arc<AtomicU64>,
}

async fn peer(mut conn: Conn, plan: PeerPlan, mut stop: watch::Receiver<bool>) -> PeerLog {
    let mut log = PeerLog {
        sid: conn.sid.clone(),
        ..PeerLog::default()
    };
    let mut described: Vec<String> = Vec::new();
    tokio::select! {
        _ = tokio::time::sleep_until(plan.join_at) => {}
        _ = stop.changed() => return log,
    }
    let sent_at = clock::now_micros();
    log.joined_at = Some(sent_at);
    let join = wire::event(
        "join-room",
        &wire::join_payload(&plan.room, "storm"),
        Some(1),
    );
    if conn.send(join).await.is_err() {
        log.disconnected = true;
        return log;
    }
    loop {
        let text = tokio::select! {
            r = conn.recv() => match r {
                Ok(text) => text,
                Err(_) => { log.disconnected = true; return log; }
            },
            _ = stop.changed() => return log,
        };
        let now = clock::now_micros();
        let reply = match wire::parse(&text) {
            Frame::Ack { id: 1, args } => {
                log.join_ack_micros = Some(now.saturating_sub(sent_at));
                log.join_refused = wire::join_ack_peers(args).is_none();
                None
            }
            Frame::Event { name, payload } if name == RELAY_EVENT => {
                let signal = wire::envelope(payload).and_then(|e| {
                    let s: Signal<'_> = serde_json::from_str(e.data.get()).ok()?;
                    let kind = match (s.description.map(|d| d.kind), s.candidate) {
                        (Some("offer"), _) => Kind::Offer,
                        (Some("answer"), _) => Kind::Answer,
                        (None, Some(_)) => Kind::Candidate,
                        _ => return None,
                    };
                    Some((e.source.to_string(), kind))
                });
                let Some((from, kind)) = signal else {
                    log.unreadable += 1;
                    continue;
                };
                plan.received.fetch_add(1, Ordering::Relaxed);
                match kind {
                    Kind::Candidate if !described.contains(&from) => log.early_candidates += 1,
                    Kind::Offer | Kind::Answer => described.push(from.clone()),
                    Kind::Candidate => {}
                }
                let reply = (kind == Kind::Offer).then(|| (from.clone(), "answer"));
                log.arrivals.push(Arrival {
                    from,
                    kind,
                    at: now,
                });
                reply
            }
            Frame::Event { name, payload } => match name {
                "#rtcio:init-offer" => wire::Someone::read(payload).map(|n| (n, "offer")),
                "user-connected" => {
                    log.introductions += 1;
                    None
                }
                "error" => {
                    log.refused += 1;
                    None
                }
                _ => None,
            },
            _ => None,
        };
        if let Some((to, kind)) = reply
            && negotiate(&mut conn, &to, kind, &plan.payloads, plan.candidates)
                .await
                .is_err()
        {
            log.disconnected = true;
            return log;
        }
    }
}

pub async fn run(target: &Target, options: &StormOptions) -> Report {
    let k = options.room_size.max(2);
    let mut report = Report::new(
        "storm",
        &target.label,
        target.url_texts(),
        json!({
            "peers": options.peers,
            "room_size": k,
            "join_rate": options.join_rate,
            "sdp_bytes": options.sdp_bytes,
            "candidates": options.candidates,
        }),
    );
    report.set_topology(target.topology(options.peers / k, k));
    let results = connect_all(
        target,
        options.peers,
        |i| target.node_of_member(i / k, i % k).clone(),
        "connect",
    )
    .await;
    let (conns, failed, first) = split_failures(results);
    report.failure_count("connect failures", failed);
    if let Some(e) = first {
        report.note(format!("first connect failure: {e}"));
    }

    // Expected messages: each ordered pair of roommates carries 1 description + candidates.
    let per_pair = 1 + options.candidates as u64;
    let mut room_sizes: HashMap<usize, u64> = HashMap::new();
    for (i, c) in conns.iter().enumerate() {
        if c.is_some() {
            *room_sizes.entry(i / k).or_default() += 1;
        }
    }
    let expected: u64 = room_sizes.values().map(|m| m * (m - 1) * per_pair).sum();

    let run_id = clock::now_micros();
    let payloads = Arc::new(Payloads::new(options.sdp_bytes));
    let received = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = watch::channel(false);
    let start = Instant::now() + Duration::from_millis(200);
    let counters_before = target.cluster_counters().await;
    let before = Snapshot::take(&target.watched);
    let first_join = clock::now_micros() + 200_000;
    let mut tasks = JoinSet::new();
    let mut order = 0usize;
    for (i, conn) in conns.into_iter().enumerate() {
        let Some(conn) = conn else { continue };
        let plan = PeerPlan {
            room: format!("storm-{run_id}-{}", i / k),
            join_at: start + Duration::from_secs_f64(order as f64 / options.join_rate.max(0.001)),
            payloads: payloads.clone(),
            candidates: options.candidates,
            received: received.clone(),
        };
        order += 1;
        let stopped = stopped.clone();
        tasks.spawn(async move { (i, peer(conn, plan, stopped).await) });
    }
    let bar = target.progress(expected, "signals");
    let deadline = start
        + Duration::from_secs_f64(order as f64 / options.join_rate.max(0.001))
        + options.deadline;
    while Instant::now() < deadline && received.load(Ordering::Relaxed) < expected {
        bar.set_position(received.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_in = clock::now_micros();
    // A short grace period, so duplicates and strays show up in the counts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = Snapshot::take(&target.watched);
    let counters_after = target.cluster_counters().await;
    bar.finish_and_clear();
    let _ = stop.send(true);
    let mut logs: Vec<(usize, PeerLog)> = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok(log) = done {
            logs.push(log);
        }
    }
    logs.sort_by_key(|(i, _)| *i);
    analyse(&mut report, &logs, k, options.candidates as u64, expected);
    let last_arrival = logs
        .iter()
        .flat_map(|(_, l)| l.arrivals.iter().map(|a| a.at))
        .max()
        .unwrap_or(all_in);
    report.figure(
        "all delivered after",
        last_arrival.saturating_sub(first_join) as f64 / 1e6,
        "s",
    );
    let delivered = received.load(Ordering::Relaxed);
    report.server_usage(&before, &after, Some((delivered, "msgs")));
    if let (Some(before), Some(after)) = (counters_before, counters_after) {
        report.cluster_messages(&before, &after, delivered);
    }
    report
}

fn analyse(
    report: &mut Report,
    logs: &[(usize, PeerLog)],
    k: usize,
    candidates: u64,
    expected: u64,
) {
    let index_of: HashMap<&str, usize> = logs.iter().map(|(i, l)| (l.sid.as_str(), *i)).collect();
    let log_of: HashMap<usize, &PeerLog> = logs.iter().map(|(i, l)| (*i, l)).collect();
    let mut matched = 0u64;
    let mut unexpected = 0u64;
    let mut glare = 0u64;
    let mut join_ack = latency_histogram();
    let mut join_to_last = latency_histogram();
    // (receiver, sender) → (descriptions, offers, candidates, last arrival)
    let mut pairs: HashMap<(usize, usize), (u64, u64, u64, u64)> = HashMap::new();
    for (i, log) in logs {
        if let Some(micros) = log.join_ack_micros {
            record(&mut join_ack, micros);
        }
        for a in &log.arrivals {
            match index_of.get(a.from.as_str()) {
                Some(&from) if from / k == i / k && from != *i => {
                    let entry = pairs.entry((*i, from)).or_default();
                    match a.kind {
                        Kind::Offer => {
                            entry.0 += 1;
                            entry.1 += 1;
                        }
                        Kind::Answer => entry.0 += 1,
                        Kind::Candidate => entry.2 += 1,
                    }
                    entry.3 = entry.3.max(a.at);
                }
                _ => unexpected += 1,
            }
        }
    }
    for (&(to, from), &(descriptions, offers, cands, _)) in &pairs {
        matched += descriptions.min(1) + cands.min(candidates);
        unexpected += descriptions.saturating_sub(1) + cands.saturating_sub(candidates);
        // Both sides offering to each other is glare; count it once per pair.
        if offers > 0 && to < from && pairs.get(&(from, to)).is_some_and(|p| p.1 > 0) {
            glare += 1;
        }
    }
    // The newcomer of a pair is the one that received the offer.
    let mut completion: HashMap<usize, u64> = HashMap::new();
    for (&(to, from), &(_, offers, _, last)) in &pairs {
        if offers > 0 {
            let back = pairs.get(&(from, to)).map_or(0, |p| p.3);
            let entry = completion.entry(to).or_default();
            *entry = (*entry).max(last).max(back);
        }
    }
    for (peer, done) in &completion {
        if let Some(joined) = log_of.get(peer).and_then(|l| l.joined_at) {
            record(&mut join_to_last, done.saturating_sub(joined));
        }
    }
    let mut room_members: HashMap<usize, u64> = HashMap::new();
    for (i, _) in logs {
        *room_members.entry(i / k).or_default() += 1;
    }
    let introductions_expected: u64 = room_members.values().map(|m| m * (m - 1)).sum();
    let introductions: u64 = logs.iter().map(|(_, l)| l.introductions).sum();
    report.latency("join->last message", &join_to_last);
    report.latency("join ack", &join_ack);
    report.count("expected messages", expected);
    report.count("received messages", matched + unexpected);
    report.failure_count("lost messages", expected.saturating_sub(matched));
    report.failure_count("unexpected messages", unexpected + glare);
    report.failure_count(
        "candidates before description",
        logs.iter().map(|(_, l)| l.early_candidates).sum(),
    );
    report.failure_count(
        "missing introductions",
        introductions_expected.saturating_sub(introductions),
    );
    report.failure_count(
        "join refusals",
        logs.iter().filter(|(_, l)| l.join_refused).count() as u64,
    );
    report.failure_count(
        "unanswered joins",
        logs.iter()
            .filter(|(_, l)| l.joined_at.is_some() && l.join_ack_micros.is_none())
            .count() as u64,
    );
    report.failure_count("error events", logs.iter().map(|(_, l)| l.refused).sum());
    report.failure_count(
        "disconnected",
        logs.iter().filter(|(_, l)| l.disconnected).count() as u64,
    );
    report.failure_count("unreadable", logs.iter().map(|(_, l)| l.unreadable).sum());
}
