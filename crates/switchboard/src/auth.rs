//! Optional client authentication with HS256 JSON Web Tokens.
//!
//! The Node server admits anyone; teams that need more usually mint a short-lived token in
//! their app backend. When `--jwt-secret` is set, a client passes it in the socket.io
//! handshake (`io(url, { auth: { token } })`). A missing or invalid token refuses the
//! connection (the client sees `connect_error` with message `unauthorized`); a valid token
//! with a `rooms` claim limits which rooms that socket may join (`unauthorized` error event).

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;
use switchboard_protocol::RoomId;

/// What a verified token allows.
#[derive(Debug, Clone, Deserialize)]
pub struct Grant {
    /// Rooms this socket may join; absent means any room.
    #[serde(default)]
    pub rooms: Option<Vec<String>>,
    /// When the token expires (seconds since the Unix epoch): the connection is ended then
    /// (see `signaling::expiry`). Absent in unauthenticated mode.
    #[serde(default)]
    pub exp: Option<u64>,
}

impl Grant {
    /// A grant for unauthenticated mode: everything is allowed.
    pub fn anyone() -> Self {
        Grant {
            rooms: None,
            exp: None,
        }
    }

    pub fn may_join(&self, room: &RoomId) -> bool {
        self.rooms
            .as_ref()
            .is_none_or(|rooms| rooms.iter().any(|r| r == room.as_str()))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unauthorized")]
pub struct Unauthorized;

/// Verifies client tokens against one shared secret.
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

/// Clock skew tolerated on `exp` and `nbf` unless configured (`--jwt-leeway`). The JWT
/// library's own default is 60 s, which accepted tokens a minute after they expired.
pub const DEFAULT_LEEWAY_SECS: u64 = 5;

impl TokenVerifier {
    pub fn new(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims = ["exp"].into_iter().map(String::from).collect();
        validation.validate_nbf = true;
        validation.leeway = DEFAULT_LEEWAY_SECS;
        Self {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// Tolerates `seconds` of clock skew on `exp` and `nbf` instead of the default 5.
    pub fn with_leeway(mut self, seconds: u64) -> Self {
        self.validation.leeway = seconds;
        self
    }

    /// The tolerated clock skew, in seconds.
    pub fn leeway(&self) -> u64 {
        self.validation.leeway
    }

    pub fn verify(&self, token: &str) -> Result<Grant, Unauthorized> {
        decode::<Grant>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    fn token(secret: &str, claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn far_future() -> u64 {
        4_000_000_000
    }

    /// Good tokens pass; wrong secret, expiry or garbage do not.
    #[test]
    fn verifies_tokens() {
        let v = TokenVerifier::new("s3cret");
        let room = RoomId::try_from("r1".to_string()).unwrap();
        let other = RoomId::try_from("r2".to_string()).unwrap();

        let any = v
            .verify(&token("s3cret", json!({"exp": far_future()})))
            .unwrap();
        assert!(any.may_join(&room) && any.may_join(&other));

        let scoped = v
            .verify(&token(
                "s3cret",
                json!({"exp": far_future(), "rooms": ["r1"]}),
            ))
            .unwrap();
        assert!(scoped.may_join(&room));
        assert!(!scoped.may_join(&other));

        assert!(
            v.verify(&token("wrong", json!({"exp": far_future()})))
                .is_err()
        );
        assert!(v.verify(&token("s3cret", json!({"exp": 1}))).is_err());
        assert!(v.verify(&token("s3cret", json!({}))).is_err());
        assert!(v.verify("not-a-jwt").is_err());
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    /// Expiry allows only the configured skew (not the library's 60 s), and `nbf` is checked.
    #[test]
    fn expiry_and_not_before_hold() {
        let v = TokenVerifier::new("s3cret");
        let t = |claims| v.verify(&token("s3cret", claims));
        assert!(t(json!({"exp": now() - 30})).is_err(), "expired 30 s ago");
        assert!(t(json!({"exp": now() + 60})).is_ok());
        assert!(
            t(json!({"exp": now() + 600, "nbf": now() + 60})).is_err(),
            "not yet valid"
        );
        assert!(t(json!({"exp": now() + 600, "nbf": now() - 1})).is_ok());
        let grant = t(json!({"exp": now() + 60})).unwrap();
        assert!(grant.exp.is_some_and(|exp| exp >= now() + 59), "{grant:?}");
        let lenient = TokenVerifier::new("s3cret").with_leeway(120);
        assert!(
            lenient
                .verify(&token("s3cret", json!({"exp": now() - 30})))
                .is_ok()
        );
    }
}
