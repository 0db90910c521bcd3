//! `indexstream dev-server`, exercised by the official Python client.

use std::process::Command;

use super::support::DevServer;

/// Needs the official Python client: `.ci/run` installs it and runs this test with `--ignored`;
/// elsewhere `pip install opensearch-py==3.2.0`, then
/// `cargo test -p indexstream-cli --test tests -- --ignored opensearch_py`.
#[test]
#[ignore = "needs opensearch-py (pip install opensearch-py==3.2.0); .ci/run runs it"]
fn opensearch_py_bulk_indexes_and_scans_10k_documents() {
    let available = Command::new("python3")
        .args(["-c", "import opensearchpy"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        available,
        "opensearch-py is not installed: pip install opensearch-py==3.2.0"
    );
    let server = DevServer::start(&[]);
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "unexpected first line {:?}",
        server.url
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/opensearch_py_scan.py"
    );
    let out = Command::new("python3")
        .args([script, &server.url, "10000"])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "opensearch-py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("scanned 10000 documents"));
}
