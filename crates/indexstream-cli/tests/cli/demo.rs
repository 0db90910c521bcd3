//! `indexstream demo`, short: it must end with a clean verdict, after its crash and restart
//! and without one.

use std::process::Command;

use super::support::{unique, BIN};

/// Runs a 2 s demo at 1000/s; returns its stdout.
fn demo(extra: &[&str]) -> String {
    demo_with_env(extra, &[])
}

/// The same with environment variables set for the demo.
fn demo_with_env(extra: &[&str], env: &[(&str, &str)]) -> String {
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
        .args(extra)
        .envs(env.iter().copied())
        .env("INDEXSTREAM_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The demo keeps its output for the user to look at; the test does not.
    assert!(file.exists(), "the demo wrote {}", file.display());
    std::fs::remove_file(&file).unwrap();
    stdout
}

#[test]
fn a_short_demo_survives_its_crash_and_ends_with_a_clean_verdict() {
    let stdout = demo(&[]);
    let verdict = stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("verdict: produced 2000, delivered 2000, missing 0, duplicates ")
        })
        .unwrap_or_else(|| panic!("no clean verdict: {stdout}"));
    let again: u64 = verdict.parse().unwrap();
    assert!(again <= 2500, "{stdout}");
    let crash = stdout
        .lines()
        .find(|l| l.starts_with("crash: killed after "))
        .unwrap_or_else(|| panic!("no crash line: {stdout}"));
    assert!(
        crash.contains(&format!("delivered again {again} ")),
        "{crash}"
    );
}

#[test]
fn without_the_crash_nothing_is_delivered_twice() {
    // The demo's own INDEXSTREAM_* settings must not reach its consumer.
    let stdout = demo_with_env(&["--no-crash"], &[("INDEXSTREAM_MAX_EVENTS", "1")]);
    assert!(
        stdout
            .lines()
            .any(|l| l == "verdict: produced 2000, delivered 2000, missing 0, duplicates 0"),
        "{stdout}"
    );
    assert!(!stdout.contains("crash:"), "{stdout}");
}
