//! Free TCP ports on loopback.

use std::net::TcpListener;

/// A port that was free on 127.0.0.1 a moment ago. The caller binds it soon after; the
/// kernel does not hand out the same ephemeral port again right away.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("loopback has a free port")
}
