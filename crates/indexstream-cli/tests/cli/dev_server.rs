//! `indexstream dev-server`, exercised by the official Python client.

use std::process::Command;

use super::support::DevServer;

fn python_client_available() -> bool {
    Command::new("python3")
        .args(["-c", "import opensearchpy"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn opensearch_py_bulk_indexes_and_scans_10k_documents() {
    if !python_client_available() {
        // .ci/run installs opensearch-py; elsewhere the test says why it did nothing.
        assert!(
            std::env::var_os("CI").is_none(),
            "opensearch-py is not installed but CI is set: .ci/run must install it"
        );
        eprintln!("skipped: `pip install opensearch-py` to run this test");
        return;
    }
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
