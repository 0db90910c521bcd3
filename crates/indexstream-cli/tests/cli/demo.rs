//! `indexstream demo`, short: it must end with a clean verdict.

use std::process::Command;

use super::support::{unique, BIN};

#[test]
fn a_short_demo_ends_with_a_clean_verdict() {
    let file = std::env::temp_dir().join(format!("{}.jsonl", unique("demo")));
    let out = Command::new(BIN)
        .args([
            "demo",
            "--duration",
            "2s",
            "--rate",
            "1000",
            "--report-interval",
            "1s",
            "--out",
            file.to_str().unwrap(),
        ])
        .env("INDEXSTREAM_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l == "verdict: produced 2000, delivered 2000, missing 0, duplicates 0"),
        "{stdout}"
    );
    // The demo keeps its output for the user to look at; the test does not.
    assert!(file.exists(), "the demo wrote {}", file.display());
    std::fs::remove_file(&file).unwrap();
}
