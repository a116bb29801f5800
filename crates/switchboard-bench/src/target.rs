//! The nodes under test and the loopback addresses the bench connects from.
//!
//! A node URL is `http://127.x.y.z:PORT` (or `ws://`): the bench only ever targets this
//! machine, so anything outside 127.0.0.0/8 is refused before a single packet is sent.
//!
//! One source address has about 28,000 ephemeral ports (Linux default range), so holding more
//! connections than that needs several source addresses. Connection `i` then binds to
//! `127.1.x.y` number `i % sources` before connecting; the whole 127/8 block is local on Linux.
//! When one address is enough (and none was asked for), the bench does not bind at all: a port
//! taken by an explicit bind is off limits to every other process's `connect` until its
//! TIME_WAIT ends (a minute), so a case of 20,000 sockets right after others would leave the
//! machine without ports for the next servers' Redis connections.
//!
//! With several nodes, member `m` of room `r` connects to node `(r + m) % n`: the members of a
//! room sit on consecutive nodes, so whenever a room has no more members than there are nodes
//! every pair of roommates is across nodes. [`Topology`] counts how many pairs really are.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

use serde::{Deserialize, Serialize};

use crate::BenchError;

/// Connections per source address the bench plans for (below the ~28k ephemeral ports).
pub const CONNECTIONS_PER_SOURCE: usize = 20_000;

/// One node under test.
#[derive(Debug, Clone)]
pub struct NodeUrl {
    /// As given on the command line, for reports.
    pub text: String,
    pub addr: SocketAddr,
    /// `host:port` for the HTTP Host header.
    pub authority: String,
}

impl NodeUrl {
    pub fn parse(text: &str) -> Result<NodeUrl, BenchError> {
        let bad = || BenchError::Url(text.to_string());
        let rest = ["http://", "ws://"]
            .iter()
            .find_map(|scheme| text.strip_prefix(scheme))
            .ok_or_else(bad)?;
        let authority = rest
            .split('/')
            .next()
            .filter(|a| !a.is_empty())
            .ok_or_else(bad)?;
        let addr = authority
            .to_socket_addrs()
            .map_err(|_| bad())?
            .find(SocketAddr::is_ipv4)
            .ok_or_else(bad)?;
        if !addr.ip().is_loopback() {
            return Err(BenchError::NotLoopback(text.to_string()));
        }
        Ok(NodeUrl {
            text: text.to_string(),
            addr,
            authority: authority.to_string(),
        })
    }

    /// Parses a comma-separated list.
    pub fn parse_list(list: &str) -> Result<Vec<NodeUrl>, BenchError> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(NodeUrl::parse)
            .collect()
    }

    /// The Engine.IO WebSocket endpoint of this node.
    pub fn websocket_url(&self) -> String {
        format!(
            "ws://{}/socket.io/?EIO=4&transport=websocket",
            self.authority
        )
    }
}

/// The node (an index into a list of `nodes`) of member `member` of room `room`.
pub fn node_of_member(room: usize, member: usize, nodes: usize) -> usize {
    (room + member) % nodes.max(1)
}

/// Where the load of a cluster case sat: recorded in reports, so a summary can state that
/// every pair of a cross-node case was across nodes rather than assume it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Nodes of the cluster, busy or idle (all connected to the same Redis).
    pub nodes: usize,
    /// Of those, the nodes that hold the load's sockets (the first ones listed).
    pub busy_nodes: usize,
    /// Pairs of roommates (unordered).
    pub pairs: u64,
    /// Of those, pairs whose two sockets are on different nodes.
    pub pairs_across_nodes: u64,
}

impl Topology {
    /// The pairs of `rooms` rooms of `room_size` members placed by [`node_of_member`] on
    /// `busy_nodes` of `nodes` nodes.
    pub fn of_rooms(rooms: usize, room_size: usize, busy_nodes: usize, nodes: usize) -> Topology {
        let (mut pairs, mut across) = (0, 0);
        for room in 0..rooms {
            for a in 0..room_size {
                for b in a + 1..room_size {
                    pairs += 1;
                    if node_of_member(room, a, busy_nodes) != node_of_member(room, b, busy_nodes) {
                        across += 1;
                    }
                }
            }
        }
        Topology {
            nodes,
            busy_nodes,
            pairs,
            pairs_across_nodes: across,
        }
    }

    /// Whether every pair has its two ends on different nodes.
    pub fn every_pair_across(&self) -> bool {
        self.pairs > 0 && self.pairs_across_nodes == self.pairs
    }
}

/// Loopback source addresses, handed out round-robin.
#[derive(Debug, Clone)]
pub struct Sources {
    count: usize,
    /// Bind to the source addresses (several are needed, or they were asked for).
    bind: bool,
}

impl Sources {
    /// Enough source addresses for `connections`, or exactly `explicit` when given.
    pub fn for_connections(connections: usize, explicit: Option<usize>) -> Sources {
        let needed = connections.div_ceil(CONNECTIONS_PER_SOURCE).max(1);
        Sources {
            count: explicit.unwrap_or(needed).clamp(1, 250 * 250),
            bind: explicit.is_some() || needed > 1,
        }
    }

    /// The source address of connection number `index`; `None`: let the kernel choose.
    pub fn for_index(&self, index: usize) -> Option<IpAddr> {
        let k = index % self.count;
        self.bind
            .then(|| IpAddr::V4(Ipv4Addr::new(127, 1, (k / 250) as u8, (k % 250) as u8 + 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loopback URLs parse; anything else is refused.
    #[test]
    fn urls() {
        let url = NodeUrl::parse("http://127.0.0.1:3001").unwrap();
        assert_eq!(url.addr, "127.0.0.1:3001".parse().unwrap());
        assert_eq!(
            url.websocket_url(),
            "ws://127.0.0.1:3001/socket.io/?EIO=4&transport=websocket"
        );
        assert!(NodeUrl::parse("ws://localhost:80/").is_ok());
        assert!(matches!(
            NodeUrl::parse("http://10.0.0.1:3001"),
            Err(BenchError::NotLoopback(_))
        ));
        assert!(NodeUrl::parse("127.0.0.1:3001").is_err());
        assert_eq!(
            NodeUrl::parse_list("http://127.0.0.1:1, http://127.0.0.2:2")
                .unwrap()
                .len(),
            2
        );
    }

    /// Rooms of two are across nodes for any node count from two, rooms of four from four.
    #[test]
    fn pairs_across_nodes() {
        for n in 2..=8 {
            let t = Topology::of_rooms(100, 2, n, n);
            assert!(t.every_pair_across(), "{n} nodes: {t:?}");
            assert_eq!(t.pairs, 100);
        }
        assert!(Topology::of_rooms(10, 4, 4, 8).every_pair_across());
        let two = Topology::of_rooms(10, 4, 2, 2);
        assert_eq!((two.pairs, two.pairs_across_nodes), (60, 40));
        assert_eq!(Topology::of_rooms(10, 2, 1, 1).pairs_across_nodes, 0);
    }

    /// Sources rotate and stay inside 127/8; one needed and none asked for: no bind.
    #[test]
    fn sources() {
        let s = Sources::for_connections(50_000, None);
        assert_eq!(s.count, 3);
        assert_eq!(s.for_index(0), s.for_index(3));
        assert_ne!(s.for_index(0), s.for_index(1));
        assert!(s.for_index(2).is_some_and(|ip| ip.is_loopback()));
        assert_eq!(Sources::for_connections(19_000, None).for_index(0), None);
        assert!(Sources::for_connections(10, Some(1)).for_index(0).is_some());
    }
}
