//! A `redis-server` process under test, and a minimal RESP client to inspect it.
//!
//! The server keeps nothing on disk (`--save "" --appendonly no`), so [`Redis::restart`]
//! brings back an empty Redis on the same port: exactly what a crashed, non-persistent Redis
//! looks like to the nodes that were using it. The client speaks RESP2 over a plain
//! `TcpStream` (one connection per command), enough for tests to read room hashes and node
//! sets without a Redis crate.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::port::free_port;

/// How long `redis-server` may take to answer PING after it is spawned.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for one command's reply.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// A running `redis-server` on 127.0.0.1. Killed (SIGKILL) on drop.
pub struct Redis {
    /// `None` while the server is killed (between [`Redis::kill`] and [`Redis::restart`]).
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    /// Extra `redis-server` arguments (e.g. cluster mode), used on every (re)start.
    args: Vec<String>,
}

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Status(String),
    /// `-ERR ...`
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$...`; `None` is the null bulk string (a missing key or field).
    Bulk(Option<String>),
    /// `*...`; `None` is the null array.
    Array(Option<Vec<Reply>>),
}

impl Redis {
    /// Starts `redis-server` on a free loopback port and waits until it answers PING. Panics
    /// (failing the test) if it does not start.
    pub fn spawn() -> Redis {
        Redis::spawn_on(free_port())
    }

    /// Starts `redis-server` on `port` (e.g. a port a node was told about before Redis
    /// existed) and waits until it answers PING.
    pub fn spawn_on(port: u16) -> Redis {
        Redis::spawn_with(port, &[])
    }

    /// Starts `redis-server` on `port` with extra arguments and waits until it answers PING.
    pub fn spawn_with(port: u16, args: &[&str]) -> Redis {
        let log = std::env::temp_dir().join(format!("switchboard-test-redis-{port}.log"));
        let mut redis = Redis {
            child: None,
            port,
            log,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        redis.start();
        redis
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the server process is running.
    /// Stops (`SIGSTOP`) or continues (`SIGCONT`) the process: a hung Redis whose
    /// connections stay open and whose commands time out. Whether the signal was sent.
    pub fn freeze(&self, frozen: bool) -> bool {
        let Some(pid) = self.pid() else {
            return false;
        };
        let signal = if frozen { "-STOP" } else { "-CONT" };
        std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The server's log so far (of its latest start).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the server with SIGKILL (no shutdown, no save) and reaps it. Its clients see
    /// their connections reset.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a fresh, empty server on the same port (killing the running one first, if any)
    /// and waits until it answers PING.
    pub fn restart(&mut self) {
        self.kill();
        self.start();
    }

    /// Sends one command and returns its reply. An error reply is `Ok(Reply::Error(_))`;
    /// `Err` means no reply (connection refused, timeout, malformed reply).
    pub fn command(&self, args: &[&str]) -> Result<Reply, String> {
        command_on(self.port, args)
    }

    /// Every field and value of a hash, sorted by field.
    pub fn hgetall(&self, key: &str) -> Result<Vec<(String, String)>, String> {
        let items = self.command(&["HGETALL", key])?.into_strings()?;
        let mut pairs: Vec<(String, String)> = items
            .chunks(2)
            .filter_map(|pair| match pair {
                [field, value] => Some((field.clone(), value.clone())),
                _ => None,
            })
            .collect();
        pairs.sort();
        Ok(pairs)
    }

    /// The members of a set, sorted.
    pub fn smembers(&self, key: &str) -> Result<Vec<String>, String> {
        let mut members = self.command(&["SMEMBERS", key])?.into_strings()?;
        members.sort();
        Ok(members)
    }

    /// The keys matching a glob pattern, sorted.
    pub fn keys(&self, pattern: &str) -> Result<Vec<String>, String> {
        let mut keys = self.command(&["KEYS", pattern])?.into_strings()?;
        keys.sort();
        Ok(keys)
    }

    fn start(&mut self) {
        let log_file = File::create(&self.log).expect("create redis log file");
        let stderr = log_file.try_clone().expect("clone log file handle");
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn redis-server (is it installed?): {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if !self.is_running() {
                panic!("redis-server exited during start-up:\n{}", self.log());
            }
            if matches!(self.command(&["PING"]), Ok(Reply::Status(s)) if s == "PONG") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not answer PING:\n{}", self.log());
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Reply {
    /// The reply as a list of strings: an array of bulk strings (nulls skipped), or an empty
    /// list for a null array. Anything else is an error.
    pub fn into_strings(self) -> Result<Vec<String>, String> {
        match self {
            Reply::Array(None) => Ok(Vec::new()),
            Reply::Array(Some(items)) => items
                .into_iter()
                .filter(|item| *item != Reply::Bulk(None))
                .map(|item| match item {
                    Reply::Bulk(Some(s)) | Reply::Status(s) => Ok(s),
                    Reply::Integer(n) => Ok(n.to_string()),
                    other => Err(format!("not a string: {other:?}")),
                })
                .collect(),
            Reply::Error(e) => Err(e),
            other => Err(format!("not an array: {other:?}")),
        }
    }

    /// The reply as an integer (`HLEN`, `SCARD`, ...).
    pub fn as_integer(&self) -> Result<i64, String> {
        match self {
            Reply::Integer(n) => Ok(*n),
            other => Err(format!("not an integer: {other:?}")),
        }
    }

    /// The reply as JSON text: strings, numbers, arrays and `null`; an error reply becomes
    /// `{"error": "..."}`.
    pub fn to_json(&self) -> String {
        match self {
            Reply::Status(s) | Reply::Bulk(Some(s)) => json_string(s),
            Reply::Error(e) => format!("{{\"error\":{}}}", json_string(e)),
            Reply::Integer(n) => n.to_string(),
            Reply::Bulk(None) | Reply::Array(None) => "null".to_string(),
            Reply::Array(Some(items)) => {
                let items: Vec<String> = items.iter().map(Reply::to_json).collect();
                format!("[{}]", items.join(","))
            }
        }
    }
}

/// A JSON string literal.
pub(crate) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Sends one command to the Redis on `port` over a fresh connection.
fn command_on(port: u16, args: &[&str]) -> Result<Reply, String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream =
        TcpStream::connect_timeout(&addr, COMMAND_TIMEOUT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(COMMAND_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(COMMAND_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    stream.write_all(&request).map_err(|e| e.to_string())?;
    read_reply(&mut BufReader::new(stream))
}

fn read_reply(reader: &mut impl BufRead) -> Result<Reply, String> {
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let line = line
        .strip_suffix("\r\n")
        .ok_or_else(|| format!("truncated reply line {line:?}"))?;
    let (kind, rest) = line.split_at_checked(1).ok_or("empty reply line")?;
    let number = || {
        rest.parse::<i64>()
            .map_err(|e| format!("bad length {rest:?}: {e}"))
    };
    match kind {
        "+" => Ok(Reply::Status(rest.to_string())),
        "-" => Ok(Reply::Error(rest.to_string())),
        ":" => Ok(Reply::Integer(number()?)),
        "$" => {
            let Ok(len) = usize::try_from(number()?) else {
                return Ok(Reply::Bulk(None));
            };
            let mut data = vec![0; len + 2];
            reader.read_exact(&mut data).map_err(|e| e.to_string())?;
            data.truncate(len);
            Ok(Reply::Bulk(Some(
                String::from_utf8_lossy(&data).into_owned(),
            )))
        }
        "*" => {
            let Ok(len) = usize::try_from(number()?) else {
                return Ok(Reply::Array(None));
            };
            let items = (0..len)
                .map(|_| read_reply(reader))
                .collect::<Result<_, _>>()?;
            Ok(Reply::Array(Some(items)))
        }
        other => Err(format!("unknown reply type {other:?}")),
    }
}
