//! Running the binary and a cluster for it: `indexstream dev-server` in a child process, or
//! `OPENSEARCH_URL`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

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

/// A blocking HTTP client for the tests.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A port free on loopback now (for a listener a child process opens).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The sum of every series of the metric `name` on the listener at `base`.
pub fn metric_sum(base: &str, name: &str) -> f64 {
    let text = http()
        .get(format!("{base}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// One request; panics unless it succeeds.
pub fn call(url: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let mut req = http().request(
        reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        format!("{url}{path}"),
    );
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().unwrap();
    let status = resp.status();
    let v: Value = resp.json().unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {path}: {status} {v}");
    v
}

/// Bulk-writes `(id, source)` pairs.
pub fn write(url: &str, index: &str, docs: &[(String, Value)]) {
    let mut body = String::new();
    for (id, src) in docs {
        body.push_str(&format!(
            "{}\n{src}\n",
            json!({"index": {"_index": index, "_id": id}})
        ));
    }
    let v: Value = http()
        .post(format!("{url}/_bulk"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["errors"], false, "{v}");
}

/// Writes `n` documents `d0..` and refreshes.
pub fn write_n(url: &str, index: &str, n: usize) {
    let docs: Vec<(String, Value)> = (0..n)
        .map(|i| (format!("d{i}"), serde_json::json!({"i": i})))
        .collect();
    write(url, index, &docs);
    call(url, "POST", &format!("/{index}/_refresh"), None);
}

/// Runs `indexstream args` (logging at warn) and kills it with SIGKILL after `after`; returns
/// the length of `out` up to its last complete line at that moment.
pub fn run_killed(args: &[&str], after: std::time::Duration, out: &std::path::Path) -> usize {
    let mut child = Command::new(BIN)
        .args(args)
        .env("INDEXSTREAM_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::read(out)
        .unwrap_or_default()
        .iter()
        .rposition(|b| *b == b'\n')
        .map(|p| p + 1)
        .unwrap_or(0)
}

/// Runs `indexstream args` (logging at warn) to its end and asserts it exits 0.
pub fn run_ok(args: &[&str]) -> std::process::Output {
    let o = Command::new(BIN)
        .args(args)
        .env("INDEXSTREAM_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "indexstream {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A directory under the system temp dir, removed with everything in it when dropped.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(unique(name));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A xorshift generator for the test's random choices (the seed is printed).
pub fn rng(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut x = seed | 1;
    move |n| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    }
}

/// Creates `index` with 3 shards and no replicas and writes `total` documents
/// `{"n": n, "text": text}` with ids `{prefix}{n}`, in bulks of 5,000.
pub fn fill_numbered(url: &str, index: &str, prefix: &str, total: usize, text: &str) {
    call(
        url,
        "PUT",
        &format!("/{index}"),
        Some(serde_json::json!({"settings": {"number_of_shards": 3, "number_of_replicas": 0}})),
    );
    for b in 0..total.div_ceil(5000) {
        let docs: Vec<_> = (b * 5000..((b + 1) * 5000).min(total))
            .map(|n| {
                (
                    format!("{prefix}{n}"),
                    serde_json::json!({"n": n, "text": text}),
                )
            })
            .collect();
        write(url, index, &docs);
    }
}

/// A seeded generator for a test's random choices, its seed printed so a failure can be
/// replayed.
pub fn seeded(test: &str) -> impl FnMut(u64) -> u64 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("{test} seed {seed}");
    rng(seed)
}
