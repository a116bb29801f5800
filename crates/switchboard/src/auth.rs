//! Optional client authentication with JSON Web Tokens: HS256 with a shared secret, or
//! RS256/ES256 with a public key.
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
    /// The token's subject: a resumable session resumes only with a token of the same one.
    #[serde(default)]
    pub sub: Option<String>,
}

impl Grant {
    /// A grant for unauthenticated mode: everything is allowed.
    pub fn anyone() -> Self {
        Grant {
            rooms: None,
            exp: None,
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

/// A `--jwt-public-key` that is neither an RSA nor a P-256 public key in PEM.
#[derive(Debug, thiserror::Error)]
#[error("not an RSA or P-256 (EC) public key in PEM format")]
pub struct InvalidKey;

/// Verifies client tokens against one shared secret, or one public key.
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

    /// Verifies tokens signed with the private half of a PEM public key: RS256 for an RSA
    /// key, ES256 for a P-256 key (`--jwt-public-key`), so the app backend that mints tokens
    /// holds the only secret.
    pub fn from_public_key_pem(pem: &[u8]) -> Result<Self, InvalidKey> {
        let (key, algorithm) = match DecodingKey::from_rsa_pem(pem) {
            Ok(key) => (key, Algorithm::RS256),
            Err(_) => (
                DecodingKey::from_ec_pem(pem).map_err(|_| InvalidKey)?,
                Algorithm::ES256,
            ),
        };
        let mut verifier = Self::new("");
        verifier.key = key;
        verifier.validation.algorithms = vec![algorithm];
        Ok(verifier)
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

    const RSA_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQDOdg2+/7lHUjkA\nYhB6l1rzDACJE1VA2wpr+UxPN8eJHIy3P3KKcmyfrB6oQB3RebBlZUDAAqvpoTDL\n71deFtw1pg98aWwjHE1UfuFq4SwAaYUiHUHzBj/3DTwE30JhvEc8SfsS5qMcJEY9\nGLXjl0BuLG8iHeQ47AjCM6hWzRblYOnN9BMuCaTGMAzriHO59jtKYOVRMWMrQ876\nDxaAXHfvWLCwHj21ulhYR5sI6DW1xVVNdDr7dsuJyi/682ZkkWhkvk1ArSoU+Xnh\nsgkhGOIJ0JEeizNrmiDg/6/c0UU5UTUX6ybyB/rHR3oTAiy2CNIygEbmCReSSAyc\noTBEMZZHAgMBAAECggEAGLyWmgn7/M/HqkRASDKRQD9HDdAQrglwfrkAYRoZoKkY\nh64k6ZybEih7sISkw0qKuCNWYOBmZkLHXMUrmRzbu9vOeDAODPOLpQeMt5MMrsH1\nzxK6qkUB7fZFI3+ibaEILJuKkbGrh6glouquhFBvdPktmY9Y9E78ylPeeVlE7dd5\nyieOCUvHt2q1iCZx44egFxZs5oaSta64l8DwqqtsuVnyL5v1UU15fUA7qPExlslX\npncozMSrIPr0/20ctaehFkwnWarcQo72b5UT2gMZyr9nmiLsaEtax5CNblf5gz0H\nGXYXiL0zBOP9kXf57T09dtnkRfNtWlFjGr2TB8bkdQKBgQDsNv9rzkNMgD1wNOh9\nQFBgSQv219HqoKr9upH0shAYHbKlhHz/j9xTJnv2K2XCbWxzoH+HIrTnD152aMnt\nvN9YpG1s7Yk91E7JUs5bHwNkc0O/YxqIzPR+ASCfUd1Aaj70hc0L7zdIhPXs8jQ2\nHRsxONTUwoUU0rYmFvo7NZQOXQKBgQDfwREcCp4hF7K2hzuEzVUfWAmamxneJ6rB\njP09mIt1RfJp5+0W4AuEtM6Cr85BZsdFJuletS2i2Zs40npHDBFHruMyXoiQSKAY\nFJSuP+6wbPsfrYuRSTLCT7QKVdz31OJTkqvI/RuMcVS8ntKO5fDRNShY53SUcjk+\n/BXuwkCE8wKBgEIpFVloqEjhElQ/PW73eIu/ae51fIIvBjWS8BaNWRyoFMVvWmNq\nM9fGS6ojdZkDdQDdz1pWSjz9fQPFTemcoSH+y/dagLokoPyaiNnU0epsrmkIpQH0\nBfbU8gItt763A3MRluDk26MgOpFnNWCCvn8G3/XHlebDLel1PhkfZJyxAoGAZU4c\nWP3VqlX4a/u+TtpId/B8KKuggpyjCw6yeXjfazFIF/sRtRGrJWJXPYQrdiD6h6ye\nbGrLRrgPNyLUieZEzJe59cwnOGwpT73Bs0Lu5qHw8N66GgVyHdfIRAWsDeksr3nw\nnQc7udJ18xBVdK1W4uGWauogNjWhBYtMwtTgMVECgYAbyS0mR64/H2c6eQ5smacf\n9TFlLK7IeeGvSd+mhSOEEqgVmIVYNxDoP5pZDWhH3E5HFvmgfOTG2eDg1+fLki3I\n2ErgmWfpcxsRiPat5aRo1JfNPtM6rm1HTZid3d/B6INDm61Es63G9cgtmduNnDi+\nfDHz0v1SimAhCUV7D7BmLQ==\n-----END PRIVATE KEY-----";
    const RSA_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAznYNvv+5R1I5AGIQepda\n8wwAiRNVQNsKa/lMTzfHiRyMtz9yinJsn6weqEAd0XmwZWVAwAKr6aEwy+9XXhbc\nNaYPfGlsIxxNVH7hauEsAGmFIh1B8wY/9w08BN9CYbxHPEn7EuajHCRGPRi145dA\nbixvIh3kOOwIwjOoVs0W5WDpzfQTLgmkxjAM64hzufY7SmDlUTFjK0PO+g8WgFx3\n71iwsB49tbpYWEebCOg1tcVVTXQ6+3bLicov+vNmZJFoZL5NQK0qFPl54bIJIRji\nCdCRHosza5og4P+v3NFFOVE1F+sm8gf6x0d6EwIstgjSMoBG5gkXkkgMnKEwRDGW\nRwIDAQAB\n-----END PUBLIC KEY-----";
    const EC_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgQa/8dOu6JhnZFa+U\nbfkaQPSYVX+8yLvfcnJxvlpUqsShRANCAAQLo7+dzJrk3RWz6nErA0KsCK6h2F6K\nkNJ/tmgryooD9lZaIiOW/CDM5PKIl+31KWqMa0oDLPNGjTH4FPP5s1cu\n-----END PRIVATE KEY-----";
    const EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEC6O/ncya5N0Vs+pxKwNCrAiuodhe\nipDSf7ZoK8qKA/ZWWiIjlvwgzOTyiJft9SlqjGtKAyzzRo0x+BTz+bNXLg==\n-----END PUBLIC KEY-----";

    /// RS256 and ES256 tokens verify against their public key, and nothing else does: not a
    /// token of the other key, not an HS256 token "signed" with the public key's text.
    #[test]
    fn public_keys_verify_rs256_and_es256() {
        let claims = json!({"exp": far_future(), "rooms": ["r1"]});
        let rs = encode(
            &Header::new(Algorithm::RS256),
            &claims,
            &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
        )
        .unwrap();
        let es = encode(
            &Header::new(Algorithm::ES256),
            &claims,
            &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
        )
        .unwrap();
        let rsa = TokenVerifier::from_public_key_pem(RSA_PUBLIC.as_bytes()).unwrap();
        let ec = TokenVerifier::from_public_key_pem(EC_PUBLIC.as_bytes()).unwrap();
        assert!(rsa.verify(&rs).is_ok());
        assert!(ec.verify(&es).is_ok());
        assert!(rsa.verify(&es).is_err());
        assert!(ec.verify(&rs).is_err());
        assert!(
            rsa.verify(&token(RSA_PUBLIC, json!({"exp": far_future()})))
                .is_err()
        );
        assert!(TokenVerifier::from_public_key_pem(b"not a key").is_err());
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
