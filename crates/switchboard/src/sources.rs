//! Where a connection comes from, and how many sockets each source has.
//!
//! One address must not hold thousands of sockets (3,000 WebSockets from one address were
//! accepted before this existed). The source of a request is its TCP peer, except behind a
//! proxy: when the peer is one of `--trusted-proxies`, the source is the last address of
//! `X-Forwarded-For` that is not a trusted proxy itself (each proxy appends the address it saw,
//! so the entries to the left of the first untrusted one are the client's own claims, and
//! worthless). A peer that is not trusted cannot make itself look like anyone else.
//!
//! Sockets are counted from CONNECT until the socket is gone (a guard in the socket's
//! extensions); a new Engine.IO session from a source at `--max-connections-per-address` is
//! refused with 429 by `http::gate`. Sessions that never send CONNECT are not counted: they are
//! closed after `--handshake-timeout`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Sockets by source address, and the rules to find a request's source.
#[derive(Debug, Default)]
pub struct Sources {
    trusted: Vec<IpNet>,
    /// Most sockets per source; 0: no limit (nothing is counted).
    max: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// Holds one socket's place in its source's count until dropped.
#[derive(Debug)]
pub struct Counted {
    sources: Arc<Sources>,
    source: IpAddr,
}

impl Sources {
    pub fn new(trusted: Vec<IpNet>, max: usize) -> Self {
        Self {
            trusted,
            max,
            counts: Mutex::default(),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The source of a request from `peer` with these headers.
    pub fn source(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.is_trusted(peer) {
            return peer;
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else {
                // Garbage where an address should be: nothing left of it can be believed.
                return peer;
            };
            if !self.is_trusted(ip) {
                return ip.to_canonical();
            }
        }
        peer
    }

    /// Whether `source` may open another socket.
    pub fn has_room(&self, source: IpAddr) -> bool {
        self.max == 0 || self.counts().get(&source).copied().unwrap_or(0) < self.max
    }

    /// Counts a socket of `source` until the returned guard is dropped.
    pub fn enter(self: &Arc<Self>, source: IpAddr) -> Option<Counted> {
        if self.max == 0 {
            return None;
        }
        *self.counts().entry(source).or_default() += 1;
        Some(Counted {
            sources: self.clone(),
            source,
        })
    }

    /// Sockets counted for `source` now.
    pub fn count(&self, source: IpAddr) -> usize {
        self.counts().get(&source).copied().unwrap_or(0)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut counts = self.sources.counts();
        if let Some(count) = counts.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let sources = Sources::new(vec!["10.0.0.0/8".parse().unwrap()], 2);
        // An untrusted peer's header is ignored.
        assert_eq!(
            sources.source(ip("1.2.3.4"), &headers("9.9.9.9")),
            ip("1.2.3.4")
        );
        // Behind a trusted proxy, the last untrusted hop is the source; the client's own
        // claims to the left of it are not.
        let h = headers("6.6.6.6, 5.5.5.5, 10.0.0.2");
        assert_eq!(sources.source(ip("10.0.0.1"), &h), ip("5.5.5.5"));
        assert_eq!(
            sources.source(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
        assert_eq!(
            sources.source(ip("10.0.0.1"), &headers("junk")),
            ip("10.0.0.1")
        );
        // IPv4-mapped IPv6 peers are their IPv4 address.
        assert_eq!(
            sources.source(ip("::ffff:1.2.3.4"), &HeaderMap::new()),
            ip("1.2.3.4")
        );
    }

    #[test]
    fn counts_sockets_until_their_guards_drop() {
        let sources = Arc::new(Sources::new(vec![], 2));
        let a: IpAddr = "1.2.3.4".parse().unwrap();
        let first = sources.enter(a);
        assert!(sources.has_room(a));
        let second = sources.enter(a);
        assert!(!sources.has_room(a));
        drop(first);
        assert!(sources.has_room(a));
        drop(second);
        assert_eq!(sources.count(a), 0);
        let unlimited = Arc::new(Sources::new(vec![], 0));
        assert!(unlimited.enter(a).is_none() && unlimited.has_room(a));
    }
}
