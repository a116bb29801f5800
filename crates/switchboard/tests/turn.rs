//! Short-lived TURN credentials against a real coturn (Debian's `coturn` package) on loopback:
//! `GET /ice-servers` mints a credential a TURN allocation succeeds with; a forged or expired
//! one is refused by coturn; with JWT auth on, only clients with a valid token get one.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use switchboard_testkit::{Node, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");
const SECRET: &str = "turn-s3cret";

/// A `turnserver` with `use-auth-secret`, killed (by its PID) on drop.
struct Coturn {
    child: Child,
    port: u16,
}

impl Coturn {
    fn start() -> Coturn {
        let port = free_port();
        let relay_from = free_port().max(20_000);
        let child = Command::new("turnserver")
            .args([
                "-n",
                "--listening-ip=127.0.0.1",
                &format!("--listening-port={port}"),
                "--use-auth-secret",
                &format!("--static-auth-secret={SECRET}"),
                "--realm=switchboard.test",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--allow-loopback-peers",
                &format!("--min-port={relay_from}"),
                &format!("--max-port={}", relay_from + 50),
                "--log-file=stdout",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnserver (Debian package coturn) must be installed");
        let coturn = Coturn { child, port };
        std::thread::sleep(Duration::from_millis(500));
        coturn
    }

    /// Whether a TURN allocation (and one relayed message) succeeds with these credentials.
    fn allocates(&self, username: &str, password: &str) -> bool {
        let status = Command::new("timeout")
            .args(["20", "turnutils_uclient", "-u", username, "-w", password])
            .args([
                "-p",
                &self.port.to_string(),
                "-n",
                "1",
                "-m",
                "1",
                "-y",
                "127.0.0.1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("turnutils_uclient (Debian package coturn) must be installed");
        status.success()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(node: &Node, path: &str, bearer: Option<&str>) -> (u16, String) {
    let mut request = ureq::get(&format!("{}{path}", node.url()))
        .config()
        .http_status_as_error(false)
        .build();
    if let Some(token) = bearer {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let mut response = request.call().expect("GET");
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().expect("body"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[test]
fn minted_turn_credentials_work_and_forged_or_expired_ones_do_not() {
    let coturn = Coturn::start();
    let turn_url = format!("turn:127.0.0.1:{}", coturn.port);
    let node = Node::spawn(
        BIN,
        &[
            "--turn-secret",
            SECRET,
            "--turn-urls",
            &turn_url,
            "--turn-ttl",
            "600",
            "--ice-servers",
            r#"[{"urls":"stun:127.0.0.1:3478"}]"#,
        ],
    );
    let (status, body) = get(&node, "/ice-servers", None);
    assert_eq!(status, 200, "{body}");
    let list: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(list[0], json!({"urls": "stun:127.0.0.1:3478"}));
    let turn = &list[1];
    assert_eq!(turn["urls"], json!([turn_url]));
    let username = turn["username"].as_str().expect("username");
    let credential = turn["credential"].as_str().expect("credential");
    let expiry: u64 = username
        .split(':')
        .next()
        .and_then(|e| e.parse().ok())
        .expect("expiry");
    assert!((now() + 590..=now() + 610).contains(&expiry), "{username}");
    // Each request gets its own credential.
    let (_, again) = get(&node, "/ice-servers", None);
    assert_ne!(again, body);

    assert!(
        coturn.allocates(username, credential),
        "minted credential refused"
    );
    assert!(
        !coturn.allocates(username, "Zm9yZ2Vk"),
        "forged password accepted"
    );
    let forged_user = format!("{}:someone-else", now() + 600);
    assert!(
        !coturn.allocates(&forged_user, credential),
        "password reused for another username"
    );
    let expired = format!("{}:late", now() - 60);
    let expired_password = switchboard::turn::password(SECRET, &expired);
    assert!(
        !coturn.allocates(&expired, &expired_password),
        "expired credential accepted"
    );
}

#[test]
fn with_jwt_auth_only_authenticated_clients_get_turn_credentials() {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let node = Node::spawn(
        BIN,
        &[
            "--jwt-secret",
            "jwt",
            "--turn-secret",
            SECRET,
            "--turn-urls",
            "turn:127.0.0.1:3478",
        ],
    );
    assert_eq!(get(&node, "/ice-servers", None).0, 401);
    assert_eq!(get(&node, "/ice-servers", Some("not-a-token")).0, 401);
    let token = encode(
        &Header::default(),
        &json!({"exp": now() + 600}),
        &EncodingKey::from_secret(b"jwt"),
    )
    .expect("token");
    let (status, body) = get(&node, "/ice-servers", Some(&token));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"username\""), "{body}");
}
