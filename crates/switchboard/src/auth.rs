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
    /// The token's subject: a resumable session resumes only with a token of the same one.
    #[serde(default)]
    pub sub: Option<String>,
}

impl Grant {
    /// A grant for unauthenticated mode: everything is allowed.
    pub fn anyone() -> Self {
        Grant {
            rooms: None,
            sub: None,
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

impl TokenVerifier {
    pub fn new(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims = ["exp"].into_iter().map(String::from).collect();
        Self {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
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
}
