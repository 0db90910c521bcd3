//! `indexstream bench`: one small run, against the cluster the suite runs on (its own
//! dev-server without `OPENSEARCH_URL`). It reports every figure, names what it measured, and
//! writes Markdown only when asked.

use std::process::Command;

use serde_json::Value;

use super::support::{TempDir, BIN};

#[test]
fn a_small_bench_reports_every_figure_and_writes_only_when_asked() {
    let dir = TempDir::new("bench");
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir.path()).args([
        "bench",
        "--docs",
        "3000",
        "--latency-duration",
        "2s",
        "--latency-rate",
        "500",
        "--json",
    ]);
    if let Ok(url) = std::env::var("OPENSEARCH_URL") {
        cmd.args(["--url", &url]);
    }
    let out = cmd.env("INDEXSTREAM_LOG", "warn").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["docs"], 3000);
    for key in [
        "raw_paging_seq_no_docs_per_s",
        "raw_paging_timestamp_docs_per_s",
        "exact_file_sink_docs_per_s",
        "timestamp_file_sink_docs_per_s",
        "consumer_cpu_seconds_per_million",
        "consumer_peak_rss_mb",
        "latency_p99_ms",
    ] {
        assert!(
            v[key].as_f64().is_some_and(|x| x > 0.0),
            "{key}: {}",
            v[key]
        );
    }
    let target = v["target"].as_str().unwrap();
    match std::env::var("OPENSEARCH_URL") {
        Ok(_) => assert!(target.contains("OpenSearch"), "{target}"),
        Err(_) => assert!(target.contains("fake"), "{target}"),
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "bench wrote a file without --write"
    );
}
