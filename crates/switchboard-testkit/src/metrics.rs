//! What the server's source says about its metrics, for tests that check files naming them
//! (alert rules, dashboards, docs) against what switchboard really exports.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The metric names switchboard's source defines (string literals `"switchboard_…"`).
pub fn exported_metrics() -> BTreeSet<String> {
    let mut source = String::new();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../switchboard/src");
    collect_rust(&dir, &mut source);
    let names: BTreeSet<String> = source
        .match_indices("\"switchboard_")
        .filter_map(|(at, _)| source[at + 1..].split('"').next())
        .filter(|name| name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .map(str::to_owned)
        .collect();
    assert!(
        !names.is_empty(),
        "no metric names found in crates/switchboard/src"
    );
    names
}

fn collect_rust(dir: &Path, into: &mut String) {
    for entry in std::fs::read_dir(dir).expect("source directory") {
        let path = entry.expect("source entry").path();
        if path.is_dir() {
            collect_rust(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push_str(&std::fs::read_to_string(&path).expect("source file"));
        }
    }
}
