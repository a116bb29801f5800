//! Runs the JavaScript end-to-end tests (`tests/js`, the official socket.io client under
//! Node's built-in test runner) against servers this crate started.
//!
//! A scenario that must act on processes half-way through (SIGKILL a node, restart Redis,
//! read a room hash) asks the Rust test to do it: [`run_node_test_with_steps`] serves
//! `POST /<step>` on a loopback port given to Node as `SWITCHBOARD_STEPS_URL`, and calls the
//! test's step handler for each request, in order, while the JavaScript waits for the answer.
//! The handler runs on the test's own thread, so it can own the processes it acts on.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest run of one JavaScript test file.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest wait for one step request to be read.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest step request body.
const MAX_STEP_BODY: usize = 64 * 1024;

/// The node options `limits.test.mjs` is written for (its expectations assume exactly these),
/// whether it runs against one node or a cluster.
pub const LIMITS_TEST_ARGS: [&str; 8] = [
    "--max-room-size",
    "3",
    "--rate-limit",
    "5",
    "--rate-burst",
    "10",
    "--max-payload",
    "4096",
];

/// `tests/js` in the workspace.
pub fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/js")
}

/// Runs `node --test FILE` in `tests/js` with `env`, printing its report. Panics (failing the
/// calling test) if any JavaScript test fails, Node cannot run, or the run exceeds five
/// minutes.
pub fn run_node_test(file: &str, env: &[(&str, String)]) {
    run_node_test_with_steps(file, env, |step, _| Err(format!("unknown step {step}")));
}

/// Like [`run_node_test`], and answers the file's step requests with `on_step(path, body)`:
/// `Ok(json)` is sent back with status 200, `Err(message)` with status 500. `path` is the
/// request path without its leading `/` (e.g. `kill-node/2`).
pub fn run_node_test_with_steps(
    file: &str,
    env: &[(&str, String)],
    mut on_step: impl FnMut(&str, &str) -> Result<String, String>,
) {
    let dir = js_dir();
    assert!(
        dir.join("node_modules/socket.io-client").is_dir(),
        "tests/js/node_modules is missing: run `npm ci` in tests/js (./scripts/test does)"
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the step server");
    listener
        .set_nonblocking(true)
        .expect("make the step server non-blocking");
    let steps_url = format!(
        "http://{}",
        listener.local_addr().expect("step server address")
    );

    let out_path = std::env::temp_dir().join(format!(
        "switchboard-js-{}-{}.out",
        std::process::id(),
        unique()
    ));
    let out = File::create(&out_path).expect("create node output file");
    let err = out.try_clone().expect("clone node output file");
    let mut child = Command::new("node")
        .args(["--test", "--test-reporter=spec", file])
        .current_dir(&dir)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("SWITCHBOARD_STEPS_URL", &steps_url)
        // Its own process group, so a timeout also ends the file's test process.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node: {e}"));

    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(e) => panic!("waiting for node: {e}"),
        }
        if Instant::now() > deadline {
            // The group id is the PID of the process we spawned.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        match listener.accept() {
            Ok((stream, _)) => serve_step(stream, &mut on_step),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("step server: {e}"),
        }
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    println!("{output}");
    match status {
        Some(status) => assert!(
            status.success(),
            "JavaScript tests in {file} failed ({status})"
        ),
        None => panic!("JavaScript tests in {file} ran longer than {RUN_TIMEOUT:?}"),
    }
}

/// A number that differs between calls in one process.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Reads one HTTP request, runs the step, writes the answer and closes the connection.
fn serve_step(stream: TcpStream, on_step: &mut impl FnMut(&str, &str) -> Result<String, String>) {
    let answer = read_request(&stream).and_then(|(path, body)| on_step(&path, &body));
    let (status, body) = match answer {
        Ok(json) => ("200 OK", json),
        Err(message) => ("500 Internal Server Error", message),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = stream;
    let _ = stream.write_all(response.as_bytes());
}

/// The path (without its leading `/`) and body of one HTTP/1.1 request.
fn read_request(stream: &TcpStream) -> Result<(String, String), String> {
    stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(REQUEST_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader
        .read_line(&mut request_line)
        .map_err(|e| e.to_string())?;
    let path = request_line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| format!("bad request line {request_line:?}"))?
        .trim_start_matches('/')
        .to_string();
    let mut content_length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).map_err(|e| e.to_string())?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            content_length = value
                .trim()
                .parse::<usize>()
                .map_err(|e| format!("bad content-length: {e}"))?;
        }
    }
    if content_length > MAX_STEP_BODY {
        return Err(format!("step body of {content_length} bytes is too large"));
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    Ok((path, String::from_utf8_lossy(&body).into_owned()))
}
