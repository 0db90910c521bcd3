//! Running the binary and a cluster for it: `indexstream dev-server` in a child process, or
//! `OPENSEARCH_URL`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_indexstream");

/// A dev-server child process, killed when dropped.
pub struct DevServer {
    child: Child,
    pub url: String,
}

impl DevServer {
    pub fn start(extra: &[&str]) -> DevServer {
        let mut child = Command::new(BIN)
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

/// The cluster a test runs against: `OPENSEARCH_URL`, or a fresh dev-server.
pub struct Cluster {
    pub url: String,
    pub server: Option<DevServer>,
}

pub fn cluster(extra: &[&str]) -> Cluster {
    match std::env::var("OPENSEARCH_URL") {
        Ok(url) => Cluster { url, server: None },
        Err(_) => {
            let s = DevServer::start(extra);
            Cluster {
                url: s.url.clone(),
                server: Some(s),
            }
        }
    }
}

/// A unique name prefix, so tests can share a real cluster.
pub fn unique(name: &str) -> String {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000;
    format!("cli-{name}-{nonce}")
}
