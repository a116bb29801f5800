//! Short-lived TURN credentials in coturn's `use-auth-secret` scheme (the "TURN REST API").
//!
//! Why: a static TURN username and password in `--ice-servers` is public (every visitor of the
//! demo page, every client, can read it) and valid forever, so anyone can relay their traffic
//! through your TURN server. With `--turn-secret`, `GET /ice-servers` mints a credential per
//! request instead: username `<expiry>:<peer>` (expiry in seconds since the Unix epoch,
//! `--turn-ttl` from now; peer a random id), password `base64(HMAC-SHA1(secret, username))`.
//! The TURN server, configured with the same secret (`use-auth-secret`,
//! `static-auth-secret=...`), recomputes the password and refuses expired usernames. Nothing
//! is stored on either side.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha1::Sha1;

/// `--turn-secret`, `--turn-urls`, `--turn-ttl`.
#[derive(Clone)]
pub struct TurnCredentials {
    secret: String,
    urls: Vec<String>,
    ttl: Duration,
}

/// One RTCIceServer entry with a minted credential.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

impl TurnCredentials {
    pub fn new(secret: String, urls: Vec<String>, ttl: Duration) -> Self {
        Self { secret, urls, ttl }
    }

    /// A credential valid until `ttl` from now.
    pub fn mint(&self) -> IceServer {
        let expiry = SystemTime::now()
            .checked_add(self.ttl)
            .unwrap_or(SystemTime::now())
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let username = format!("{expiry}:{}", peer_id());
        IceServer {
            urls: self.urls.clone(),
            credential: password(&self.secret, &username),
            username,
        }
    }
}

/// coturn's password for `username`: base64(HMAC-SHA1(secret, username)).
pub fn password(secret: &str, username: &str) -> String {
    // HMAC takes a key of any length.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A label for the credential's holder, unique per process: it only tells credentials apart
/// in the TURN server's logs, so it need not be secret.
fn peer_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}", RandomState::new().hash_one(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checked against an independent computation:
    /// `printf 1433895918506:my_username | openssl dgst -sha1 -hmac north -binary | base64`.
    #[test]
    fn password_is_base64_hmac_sha1() {
        assert_eq!(
            password("north", "1433895918506:my_username"),
            "Gx/rOncp1ZXBdeBo0S3RrYQnHDA="
        );
    }

    #[test]
    fn minted_usernames_expire_after_the_ttl() {
        let turn = TurnCredentials::new(
            "s".into(),
            vec!["turn:t:3478".into()],
            Duration::from_secs(600),
        );
        let a = turn.mint();
        let b = turn.mint();
        assert_ne!(a.username, b.username);
        let expiry: u64 = a.username.split(':').next().unwrap().parse().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!((now + 599..=now + 601).contains(&expiry));
        assert_eq!(a.credential, password("s", &a.username));
    }
}
