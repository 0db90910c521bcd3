//! `indexstream dev-server`, exercised by the official Python client.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A dev-server child process, killed when dropped.
pub struct DevServer {
    child: Child,
    pub url: String,
}

impl DevServer {
    pub fn start(extra: &[&str]) -> DevServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_indexstream"))
            .args(["dev-server", "--port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn indexstream dev-server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the URL line");
        DevServer {
            child,
            url: line.trim().to_string(),
        }
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
