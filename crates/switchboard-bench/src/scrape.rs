//! Cluster counters of switchboard nodes, read from each node's Prometheus `GET /metrics`
//! before and after a measured phase.
//!
//! The deltas show how a relay crossed the cluster: how many cluster messages each node
//! published and received per relay delivered (a relay sent only to the node that holds its
//! target is received exactly once, however many nodes there are), how many arrived at a node
//! that did not hold the target (misrouted), and which share of relays stayed on one node.
//!
//! A node that does not answer, or answers without a counter (an older build, or the Node
//! reference, which has no `/metrics`), leaves that counter unknown: reports then say "n/a"
//! instead of failing the run.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::target::NodeUrl;

pub const PUBLISHED: &str = "switchboard_cluster_messages_published_total";
pub const RECEIVED: &str = "switchboard_cluster_messages_received_total";
pub const MISROUTED: &str = "switchboard_cluster_messages_misrouted_total";
pub const ROUTES: &str = "switchboard_relay_routes_total";

/// Longest one scrape may take (connect, request, whole answer).
const SCRAPE_WAIT: Duration = Duration::from_secs(3);
/// Largest `/metrics` answer read; a node's is a few KiB.
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// The cluster counters of one node at one moment; `None` where the node exported no such
/// counter (or could not be read).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClusterCounters {
    pub published: Option<f64>,
    pub received: Option<f64>,
    pub misrouted: Option<f64>,
    /// Relays whose target was on the sender's node.
    pub routed_local: Option<f64>,
    /// Relays published to another node.
    pub routed_remote: Option<f64>,
}

impl ClusterCounters {
    /// Reads the counters from the Prometheus text format. Every series of a name is summed
    /// (a counter may carry labels); routes are told apart by their `route` label.
    pub fn parse(text: &str) -> ClusterCounters {
        let mut counters = ClusterCounters::default();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((series, value)) = line.split_once(|c: char| c.is_whitespace()) else {
                continue;
            };
            let Some(value) = value
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
            else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels),
                None => (series, ""),
            };
            let slot = match name {
                PUBLISHED => &mut counters.published,
                RECEIVED => &mut counters.received,
                MISROUTED => &mut counters.misrouted,
                ROUTES if labels.contains("route=\"local\"") => &mut counters.routed_local,
                ROUTES if labels.contains("route=\"remote\"") => &mut counters.routed_remote,
                _ => continue,
            };
            *slot = Some(slot.unwrap_or(0.0) + value);
        }
        counters
    }

    /// Per counter, `self - earlier`, where both moments have it.
    pub fn since(&self, earlier: &ClusterCounters) -> ClusterCounters {
        let delta = |now: Option<f64>, then: Option<f64>| Some(now? - then?);
        ClusterCounters {
            published: delta(self.published, earlier.published),
            received: delta(self.received, earlier.received),
            misrouted: delta(self.misrouted, earlier.misrouted),
            routed_local: delta(self.routed_local, earlier.routed_local),
            routed_remote: delta(self.routed_remote, earlier.routed_remote),
        }
    }
}

/// The text of `GET /metrics` on `node`, or `None` when it does not answer 200 in time.
pub async fn fetch(node: &NodeUrl) -> Option<String> {
    let read = async {
        let mut stream = TcpStream::connect(node.addr).await.ok()?;
        // HTTP/1.0, so the answer is never chunked: the body runs to the close.
        let request = format!(
            "GET /metrics HTTP/1.0\r\nHost: {}\r\nAccept: text/plain\r\n\r\n",
            node.authority
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        let mut limited = (&mut stream).take(MAX_ANSWER_BYTES as u64);
        limited.read_to_end(&mut answer).await.ok()?;
        let answer = String::from_utf8(answer).ok()?;
        let (head, body) = answer.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?;
        (status == "200").then(|| body.to_string())
    };
    tokio::time::timeout(SCRAPE_WAIT, read).await.ok().flatten()
}

/// The cluster counters of every node, in the order given.
pub async fn scrape(nodes: &[NodeUrl]) -> Vec<ClusterCounters> {
    let mut out = Vec::with_capacity(nodes.len());
    for node in nodes {
        let text = fetch(node).await.unwrap_or_default();
        out.push(ClusterCounters::parse(&text));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counters are summed over their series; routes are split by label; others are ignored.
    #[test]
    fn parses_prometheus_text() {
        let text = "\
# HELP switchboard_cluster_messages_received_total Cluster messages received.
# TYPE switchboard_cluster_messages_received_total counter
switchboard_cluster_messages_received_total 12
switchboard_cluster_messages_published_total{kind=\"relay\"} 3
switchboard_cluster_messages_published_total{kind=\"join\"} 4
switchboard_relay_routes_total{route=\"local\"} 5
switchboard_relay_routes_total{route=\"remote\"} 7 1700000000000
switchboard_relayed_messages_total{event=\"message\"} 99
";
        let c = ClusterCounters::parse(text);
        assert_eq!(c.received, Some(12.0));
        assert_eq!(c.published, Some(7.0));
        assert_eq!(c.routed_local, Some(5.0));
        assert_eq!(c.routed_remote, Some(7.0));
        assert_eq!(c.misrouted, None);
    }

    /// A delta is known only where both readings have the counter.
    #[test]
    fn deltas_need_both_readings() {
        let before = ClusterCounters {
            received: Some(10.0),
            published: None,
            ..Default::default()
        };
        let after = ClusterCounters {
            received: Some(25.0),
            published: Some(3.0),
            ..Default::default()
        };
        let d = after.since(&before);
        assert_eq!(d.received, Some(15.0));
        assert_eq!(d.published, None);
    }

    /// A node that is not listening gives no text, not an error.
    #[tokio::test]
    async fn unreachable_node_is_unknown() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let node = NodeUrl::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        assert_eq!(fetch(&node).await, None);
        assert_eq!(scrape(&[node]).await, vec![ClusterCounters::default()]);
    }
}
