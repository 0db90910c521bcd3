//! Tests that need the dev-server's fault API (`/_fake/faults`). Against a real cluster
//! (`OPENSEARCH_URL`) they cannot run: the real-node tier skips this module with
//! `-- --skip faults::`, and each one fails loudly if run there anyway.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::consume::{assert_one_error_line, run, sigkill_restarts};
use super::observe::start;
use super::support::{call, cluster, http, unique, write_n as write, Cluster};

/// A dev-server cluster; panics when `OPENSEARCH_URL` points at a real one.
fn fake_cluster(extra: &[&str]) -> Cluster {
    let c = cluster(extra);
    assert!(
        c.server.is_some(),
        "this test needs the fake's fault API, and OPENSEARCH_URL points at a real cluster: run the real-node tier with `-- --skip faults::`"
    );
    c
}

/// The consumer killed with SIGKILL at random moments while a producer writes, with every fault
/// kind mixed in at random (seeded; the seed is printed): errors (429, 503), delays, dropped
/// connections, partial shard failures, rejected commit items.
#[test]
fn sigkill_restarts_under_a_random_mix_of_every_fault_kind() {
    sigkill_restarts(true);
}

/// Credentials the cluster refuses (401) are a configuration problem: exit 2, one error line
/// naming the status, and the password in no output.
#[test]
fn refused_credentials_exit_2_with_one_line_and_no_secret() {
    let c = fake_cluster(&[]);
    let url = c.url.as_str();
    let password = "s3cr3t-pa55word-refused";
    call(
        url,
        "POST",
        "/_fake/faults",
        Some(json!({"api": "*", "status": 401, "action": "error"})),
    );
    let (code, stderr) = run(&[
        "consume",
        "idx",
        "g",
        "--url",
        url,
        "--username",
        "indexer",
        "--password",
        password,
        "--sink",
        "null",
    ]);
    call(url, "DELETE", "/_fake/faults", None);
    assert_eq!(code, 2, "{stderr}");
    assert_one_error_line(&stderr, "401");
    assert!(
        !stderr.contains(password),
        "the password leaked in an error:\n{stderr}"
    );
}

#[test]
fn health_goes_unhealthy_during_an_outage_and_healthy_after_it() {
    let c = fake_cluster(&["--refresh-interval", "100ms"]);
    let index = unique("health");
    write(&c.url, &index, 20);
    let (mut child, base, _rx) = start(&[
        "consume",
        &index,
        "hgroup",
        "--url",
        &c.url,
        "--sink",
        "null",
        "--poll-interval",
        "50ms",
        "--breaker-open-timeout",
        "2s",
        "--retry-base-delay",
        "10ms",
    ]);
    let status = |base: &str| -> (u16, Value) {
        let r = http().get(format!("{base}/health")).send().unwrap();
        (r.status().as_u16(), r.json().unwrap())
    };
    let wait_for = |want: &str, code: u16| {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let (s, v) = status(&base);
            if s == code && v["status"] == want {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "health never became {want}: {s} {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for("HEALTHY", 200);
    http()
        .post(format!("{}/_fake/faults", c.url))
        .json(&json!({"api": "*", "status": 503, "action": "error"}))
        .send()
        .unwrap();
    let v = wait_for("UNHEALTHY", 503);
    let reasons = v["reasons"].to_string();
    assert!(
        reasons.contains("circuit breaker is open") || reasons.contains("no poll has succeeded"),
        "{v}"
    );
    http()
        .delete(format!("{}/_fake/faults", c.url))
        .send()
        .unwrap();
    wait_for("HEALTHY", 200);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
