//! Runs the JavaScript end-to-end tests (`tests/js`, the official socket.io client under
//! Node's built-in test runner) against servers this crate started.

use std::path::PathBuf;
use std::process::Command;

/// `tests/js` in the workspace.
pub fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/js")
}

/// Runs `node --test FILE` in `tests/js` with `env`, printing its report. Panics (failing the
/// calling test) if any JavaScript test fails or Node cannot run.
pub fn run_node_test(file: &str, env: &[(&str, String)]) {
    let dir = js_dir();
    assert!(
        dir.join("node_modules/socket.io-client").is_dir(),
        "tests/js/node_modules is missing: run `npm ci` in tests/js (./scripts/test does)"
    );
    let output = Command::new("node")
        .args(["--test", "--test-reporter=spec", file])
        .current_dir(&dir)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap_or_else(|e| panic!("cannot run node: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "JavaScript tests in {file} failed ({})",
        output.status
    );
}
