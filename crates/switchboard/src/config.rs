//! Every option switchboard takes: one flag, one environment variable, one default and one
//! doc line each. `switchboard --help` is generated from this file, so it is also the
//! reference for operators; `README.md` repeats it as a table.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// A socket.io-compatible WebRTC signaling relay for rtc.io apps.
#[derive(Debug, Clone, Parser)]
#[command(name = "switchboard", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,

    /// Port to listen on (3001, like the Node rtc.io server).
    #[arg(long, env = "PORT", default_value_t = 3001)]
    pub port: u16,

    /// Origins allowed to use this server, comma-separated (e.g. `https://app.example.com`):
    /// CORS answers name only these, and a socket.io request (WebSocket upgrade or polling)
    /// whose `Origin` header is another one is refused with 403. Requests without `Origin`
    /// (not from a browser) and from the server's own origin (the demo page) pass. `*` allows
    /// any origin. Unset: any origin is allowed and a warning is printed at start-up.
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Log output: `pretty` for people, `json` for log pipelines. Filter with `RUST_LOG`.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Largest client event, in bytes. A larger event is refused with `payload-too-large`.
    #[arg(long, env = "MAX_PAYLOAD", default_value_t = 65_536, value_parser = clap::value_parser!(u32).range(1024..=16_777_216))]
    pub max_payload: u32,

    /// Largest HTTP long-polling request body and largest WebSocket message, in bytes; a
    /// larger one closes that connection before it is buffered whole. Defaults to
    /// 16 × --max-payload, so an oversized *event* gets a clear `payload-too-large` error
    /// instead of a disconnect.
    #[arg(long, env = "MAX_POLLING_BODY")]
    pub max_polling_body: Option<u32>,

    /// Packets that may wait to be written to one client (relays, events, acks). A client
    /// that falls this far behind loses what does not fit, so keep it well above a call
    /// set-up burst; memory is only used while packets actually wait.
    #[arg(long, env = "MAX_BUFFERED_PACKETS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(16..))]
    pub max_buffered_packets: u32,

    /// Engine.IO ping interval, in seconds.
    #[arg(long, env = "PING_INTERVAL", default_value_t = 25)]
    pub ping_interval: u64,

    /// Engine.IO ping timeout, in seconds: how long a silent client is kept.
    #[arg(long, env = "PING_TIMEOUT", default_value_t = 20)]
    pub ping_timeout: u64,

    /// Most members a room may hold; the next join gets `room-full`. 0 means no limit.
    #[arg(long, env = "MAX_ROOM_SIZE", default_value_t = 0)]
    pub max_room_size: usize,

    /// Events each socket may send per second, sustained; more get `rate-limited`. 0 turns
    /// rate limiting off.
    #[arg(long, env = "RATE_LIMIT", default_value_t = 200)]
    pub rate_limit: u32,

    /// Most events a socket may send at once before --rate-limit applies (the bucket size;
    /// call set-up sends ~20 at once). Raised to --rate-limit if lower.
    #[arg(long, env = "RATE_BURST", default_value_t = 400)]
    pub rate_burst: u32,

    /// HS256 secret for client tokens. When set, every connection must carry a valid JWT in
    /// the socket.io `auth` payload (`{ token }`); a token with a `rooms` claim may join only
    /// those rooms.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// A PEM file with an RSA or P-256 public key: like --jwt-secret, but client tokens are
    /// RS256 (RSA) or ES256 (P-256) signed by the matching private key, which only the app
    /// backend holds.
    #[arg(long, env = "JWT_PUBLIC_KEY", conflicts_with = "jwt_secret")]
    pub jwt_public_key: Option<std::path::PathBuf>,

    /// This node's id in logs, `/health`, `/cluster` and room state. Default: a random id.
    /// In a cluster every node needs its own id; a node restarted with the same id cleans up
    /// what its previous run left in Redis.
    #[arg(long, env = "NODE_ID", value_parser = parse_node_id)]
    pub node_id: Option<String>,

    /// Redis URL; setting it runs this node as part of a cluster (events fan out over Redis
    /// pub/sub, room state lives in Redis). `redis://[user:pass@]host:port[/db]`,
    /// `rediss://` for TLS, `redis-cluster://host:port?node=host2:port2` for Redis Cluster.
    /// Needs Redis 7 or later. Unset: a single process with in-memory room state.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Seconds without a heartbeat after which a node counts as dead and a surviving node
    /// removes its members from their rooms (nodes heartbeat every fifth of this). Ghosts of
    /// a crashed node are gone within about this plus one heartbeat (resumable sessions get
    /// their --resume-grace first).
    #[arg(long, env = "NODE_TTL", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub node_ttl: u64,

    /// Seconds a resumable session (a client that sent `resume` in its handshake auth) stays
    /// resumable after losing its connection, before its departure is announced.
    #[arg(long, env = "RESUME_GRACE", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub resume_grace: u64,

    /// The URL clients and operators reach this node at, as listed by `GET /cluster`.
    /// Default: `http://<host>:<port>`.
    #[arg(long, env = "ADVERTISE_URL")]
    pub advertise_url: Option<String>,

    /// A free-form region label for this node, listed by `GET /cluster`.
    #[arg(long, env = "REGION", default_value = "default")]
    pub region: String,

    /// Seconds a draining node lets existing sockets finish their calls and leave on their
    /// own before it starts moving them to other nodes (see docs/operations.md).
    #[arg(long, env = "DRAIN_WAIT", default_value_t = 10)]
    pub drain_wait: u64,

    /// Seconds over which a draining node disconnects its remaining sockets, in small
    /// batches, so they reconnect elsewhere without a thundering herd.
    #[arg(long, env = "DRAIN_SPREAD", default_value_t = 20)]
    pub drain_spread: u64,

    /// ICE servers handed to the demo page at `/` (`GET /ice-servers`), as a JSON array of
    /// RTCIceServer objects, e.g. `[{"urls":"stun:stun.example.com:3478"}]`. Default: none
    /// (host candidates only, enough on one machine or LAN). Checked at start-up: anything but
    /// a JSON array of objects with `urls` (`stun:`, `stuns:`, `turn:` or `turns:` URLs) is
    /// refused. The list is public: put only short-lived TURN credentials in it.
    #[arg(long, env = "ICE_SERVERS", default_value = "[]", value_parser = parse_ice_servers)]
    pub ice_servers: String,

    /// Bearer token for the admin endpoints (`POST /admin/drain`). Unset: they answer 404.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Bytes that may wait for one client to read them (all its outgoing packets together).
    /// A connection over it is cut (`outgoing-budget`); its rooms hear it leave. Must hold a
    /// few of the largest events (--max-payload).
    #[arg(long, env = "MAX_OUTGOING_BYTES", default_value_t = 1_048_576, value_parser = clap::value_parser!(u64).range(65_536..=1_073_741_824))]
    pub max_outgoing_bytes: u64,

    /// Seconds a new TCP connection has to send a complete HTTP request head, and a new
    /// Engine.IO session to send its socket.io CONNECT; slower ones are closed.
    #[arg(long, env = "HANDSHAKE_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub handshake_timeout: u64,

    /// Seconds a connection may stay open receiving nothing (no request, no frame, no pong)
    /// before it is closed. Must exceed --ping-interval, or healthy WebSockets are cut.
    #[arg(long, env = "IDLE_TIMEOUT", default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout: u64,

    /// Sockets one source address may have connected at once; the next handshake gets 429.
    /// The source is the TCP peer, or the last `X-Forwarded-For` address that is not a
    /// trusted proxy when the peer is one (--trusted-proxies). 0 means no limit.
    #[arg(long, env = "MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 100)]
    pub max_connections_per_address: u32,

    /// Proxies (IP addresses or CIDR ranges, comma-separated) whose `X-Forwarded-For` header
    /// is believed. Unset: the header is ignored and the TCP peer is the source address.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Rooms one socket may be in at once; the next `join-room` gets `too-many-rooms`.
    #[arg(long, env = "MAX_ROOMS_PER_SOCKET", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_rooms_per_socket: u32,

    /// Refused events a socket may cause in a burst; the allowance refills at a tenth of
    /// this per second. A socket that exceeds it is disconnected (`repeat-offender`). 0
    /// turns this off.
    #[arg(long, env = "MAX_REFUSALS", default_value_t = 1000)]
    pub max_refusals: u32,

    /// Bearer token for `GET /metrics` and `GET /cluster`. Unset: they answer anyone who
    /// reaches the port (they show counts and node URLs, never who is connected).
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Shared secret of a TURN server run with coturn's `use-auth-secret`. When set (with
    /// --turn-urls), `GET /ice-servers` adds a TURN entry with a credential minted for that
    /// request, valid for --turn-ttl; with --jwt-secret, only for a request that carries a
    /// valid client token (`Authorization: Bearer <JWT>`).
    #[arg(
        long,
        env = "TURN_SECRET",
        hide_env_values = true,
        requires = "turn_urls"
    )]
    pub turn_secret: Option<String>,

    /// The TURN server's URLs for the minted credentials, comma-separated
    /// (`turn:turn.example.com:3478?transport=udp,turns:turn.example.com:5349`).
    #[arg(long, env = "TURN_URLS", value_delimiter = ',', value_parser = parse_turn_url)]
    pub turn_urls: Vec<String>,

    /// Seconds a minted TURN credential stays valid (allocations are refreshed with it, so
    /// keep it longer than a call).
    #[arg(long, env = "TURN_TTL", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(60..=604_800))]
    pub turn_ttl: u64,

    /// Seconds of clock skew tolerated when checking a JWT's `exp` and `nbf`.
    #[arg(long, env = "JWT_LEEWAY", default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=300))]
    pub jwt_leeway: u64,
}

/// A node id is part of Redis keys (inside a hash tag) and of log lines: keep it plain.
fn parse_node_id(id: &str) -> Result<String, String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._:@-".contains(c);
    if (1..=64).contains(&id.len()) && id.chars().all(plain) {
        Ok(id.to_owned())
    } else {
        Err("use 1-64 characters from A-Z a-z 0-9 . _ : @ -".into())
    }
}

/// A TURN URL for minted credentials.
fn parse_turn_url(url: &str) -> Result<String, String> {
    let url = url.trim();
    if url.starts_with("turn:") || url.starts_with("turns:") {
        Ok(url.to_owned())
    } else {
        Err(format!("{url:?} is not a turn: or turns: URL"))
    }
}

/// A trusted proxy: one address (`10.0.0.1`) or a range (`10.0.0.0/8`).
fn parse_proxy(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is not an IP address or CIDR range"))
}

/// The `--ice-servers` list, checked the way a browser's `RTCPeerConnection` would read it, so
/// a typo fails at start-up rather than in every visitor's browser. Returned as compact JSON,
/// which is what `GET /ice-servers` serves.
fn parse_ice_servers(text: &str) -> Result<String, String> {
    use serde_json::Value;
    let list: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON ({e})"))?;
    let Value::Array(servers) = &list else {
        return Err(
            r#"expected a JSON array such as [{"urls":"stun:stun.example.com:3478"}]"#.into(),
        );
    };
    for (i, server) in servers.iter().enumerate() {
        let Value::Object(server) = server else {
            return Err(format!("entry {i} is not an object with \"urls\""));
        };
        let urls: Vec<&Value> = match server.get("urls") {
            Some(Value::Array(urls)) if !urls.is_empty() => urls.iter().collect(),
            Some(url @ Value::String(_)) => vec![url],
            _ => {
                return Err(format!(
                    "entry {i} needs \"urls\": a URL or a non-empty list of URLs"
                ));
            }
        };
        for url in urls {
            let known = ["stun:", "stuns:", "turn:", "turns:"];
            match url {
                Value::String(url) if known.iter().any(|scheme| url.starts_with(scheme)) => {}
                other => {
                    return Err(format!(
                        "entry {i}: {other} is not a stun:, stuns:, turn: or turns: URL"
                    ));
                }
            }
        }
        for field in ["username", "credential"] {
            if server.get(field).is_some_and(|v| !v.is_string()) {
                return Err(format!("entry {i}: \"{field}\" must be a string"));
            }
        }
    }
    Ok(list.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Config {
    pub fn max_polling_body(&self) -> u64 {
        self.max_polling_body
            .map(u64::from)
            .unwrap_or(u64::from(self.max_payload) * 16)
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval)
    }

    pub fn ping_timeout(&self) -> Duration {
        Duration::from_secs(self.ping_timeout)
    }

    pub fn room_capacity(&self) -> Option<usize> {
        (self.max_room_size > 0).then_some(self.max_room_size)
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout)
    }

    /// The TURN credentials to mint, when `--turn-secret` is set.
    pub fn turn(&self) -> Option<crate::turn::TurnCredentials> {
        let secret = self.turn_secret.clone().filter(|s| !s.is_empty())?;
        Some(crate::turn::TurnCredentials::new(
            secret,
            self.turn_urls.clone(),
            Duration::from_secs(self.turn_ttl),
        ))
    }

    pub fn node_ttl(&self) -> Duration {
        Duration::from_secs(self.node_ttl)
    }

    pub fn resume_grace(&self) -> Duration {
        Duration::from_secs(self.resume_grace)
    }

    pub fn drain_wait(&self) -> Duration {
        Duration::from_secs(self.drain_wait)
    }

    pub fn drain_spread(&self) -> Duration {
        Duration::from_secs(self.drain_spread)
    }

    pub fn advertise_url(&self) -> String {
        self.advertise_url
            .clone()
            .unwrap_or_else(|| format!("http://{}:{}", self.host, self.port))
    }

    /// Whether CORS admits any origin (unset or `*`).
    pub fn cors_allows_any(&self) -> bool {
        self.cors_origins.is_empty() || self.cors_origins.iter().any(|o| o.trim() == "*")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The clap definition is internally consistent (no duplicate flags, valid defaults).
    #[test]
    fn cli_is_valid() {
        Config::command().debug_assert();
    }

    fn default_of(flag: &str) -> String {
        let command = Config::command();
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(flag))
            .unwrap();
        arg.get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect()
    }

    /// Defaults match the documented ones (read from the definition, so the environment of
    /// the test run cannot change them).
    #[test]
    fn defaults() {
        assert_eq!(default_of("port"), "3001");
        assert_eq!(default_of("host"), "0.0.0.0");
        assert_eq!(default_of("max-payload"), "65536");
        assert_eq!(default_of("max-room-size"), "0");
        assert_eq!(default_of("rate-limit"), "200");
        assert_eq!(default_of("rate-burst"), "400");
        assert_eq!(default_of("ping-interval"), "25");
        assert_eq!(default_of("ping-timeout"), "20");
        assert_eq!(default_of("max-buffered-packets"), "4096");
        assert_eq!(default_of("node-ttl"), "4");
        assert_eq!(default_of("resume-grace"), "30");
        assert_eq!(default_of("region"), "default");
        assert_eq!(default_of("max-outgoing-bytes"), "1048576");
        assert_eq!(default_of("handshake-timeout"), "10");
        assert_eq!(default_of("idle-timeout"), "90");
        assert_eq!(default_of("max-connections-per-address"), "100");
        assert_eq!(default_of("max-rooms-per-socket"), "16");
        assert_eq!(default_of("max-refusals"), "1000");
        assert_eq!(default_of("jwt-leeway"), "5");
        let c = Config::try_parse_from(["switchboard", "--trusted-proxies", "10.0.0.1,fd00::/8"])
            .unwrap();
        assert_eq!(c.trusted_proxies.len(), 2);
        assert!(Config::try_parse_from(["switchboard", "--trusted-proxies", "nginx"]).is_err());
        let c = Config::try_parse_from(["switchboard", "--max-payload", "2048"]).unwrap();
        assert_eq!(c.max_polling_body(), 32_768);
        let c = Config::try_parse_from(["switchboard", "--cors-origins", "https://a,https://b"])
            .unwrap();
        assert_eq!(c.cors_origins, ["https://a", "https://b"]);
        assert!(!c.cors_allows_any());
        let c = Config::try_parse_from(["switchboard", "--cors-origins", "*"]).unwrap();
        assert!(c.cors_allows_any());
        assert!(Config::try_parse_from(["switchboard", "--node-id", "eu-1.a"]).is_ok());
        for bad in ["", "a{b}", "a b", &"x".repeat(65)] {
            assert!(Config::try_parse_from(["switchboard", "--node-id", bad]).is_err());
        }
    }

    /// `--ice-servers` takes a JSON array of RTCIceServer objects and refuses anything else
    /// with a message that says what is wrong.
    #[test]
    fn ice_servers_are_checked() {
        let parse = |v: &str| Config::try_parse_from(["switchboard", "--ice-servers", v]);
        assert_eq!(
            Config::try_parse_from(["switchboard"]).unwrap().ice_servers,
            "[]"
        );
        let good = r#"[ {"urls": "stun:stun.example.com:3478"},
            {"urls": ["turn:t.example.com", "turns:t.example.com:443"], "username": "u", "credential": "c"} ]"#;
        let served = parse(good).unwrap().ice_servers;
        assert!(!served.contains(' '), "not compact: {served}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&served).unwrap(),
            serde_json::from_str::<serde_json::Value>(good).unwrap()
        );
        for (bad, says) in [
            ("[", "not valid JSON"),
            ("{}", "expected a JSON array"),
            (r#"{"urls":"stun:a"}"#, "expected a JSON array"),
            ("[1]", "entry 0 is not an object"),
            ("[{}]", "needs \"urls\""),
            (r#"[{"urls":[]}]"#, "needs \"urls\""),
            (r#"[{"urls":"http://a"}]"#, "not a stun:"),
            (
                r#"[{"urls":"stun:a","username":1}]"#,
                "\"username\" must be a string",
            ),
        ] {
            let message = parse(bad).unwrap_err().to_string();
            assert!(message.contains(says), "{bad}: {message}");
            assert!(message.contains("--ice-servers"), "{bad}: {message}");
        }
    }

    /// Every option appears in the README's configuration table with its variable.
    #[test]
    fn readme_documents_every_option() {
        let readme = include_str!("../../../README.md");
        for arg in Config::command().get_arguments() {
            let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
                continue;
            };
            let row = format!("| `--{long}` | `{}` |", env.to_string_lossy());
            assert!(readme.contains(&row), "README.md lacks the row {row}");
        }
    }
}
