//! Observability of `indexstream consume`: metrics against what was delivered, health through
//! an outage, the report at shutdown, and no secret in any output.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::support::{cluster, http, unique, write_n as write, BIN};

/// Starts `consume` with a metrics listener; returns the child, the listener's base URL and
/// a channel of the remaining stderr lines.
pub(super) fn start(args: &[&str]) -> (Child, String, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--metrics-addr", "127.0.0.1:0"])
        .env("INDEXSTREAM_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the consumer never printed its metrics address");
        };
        if let Some(rest) = line.strip_prefix("indexstream: metrics on http://") {
            let addr = rest.split('/').next().unwrap().to_string();
            return (child, format!("http://{addr}"), rx);
        }
    }
}

fn metric(text: &str, name: &str, labels_contain: &str) -> Vec<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(labels_contain))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
        .collect()
}

#[test]
fn metrics_match_what_was_delivered_and_lag_reaches_zero() {
    let c = cluster(&["--refresh-interval", "100ms"]);
    let index = unique("metrics");
    http()
        .put(format!("{}/{index}", c.url))
        .json(&json!({"settings": {"number_of_shards": 3}}))
        .send()
        .unwrap();
    write(&c.url, &index, 300);
    let dir = std::env::temp_dir().join(unique("metrics"));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.jsonl");
    let sink = format!("file:{}", out.display());
    let (mut child, base, _rx) = start(&[
        "consume",
        &index,
        "mgroup",
        "--url",
        &c.url,
        "--sink",
        &sink,
        "--poll-interval",
        "50ms",
        "--commit-every",
        "200ms",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = http()
            .get(format!("{base}/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let lags = metric(&text, "indexstream_consumer_lag_documents", "mgroup");
        let processed = metric(&text, "indexstream_events_processed_total", "");
        if processed == vec![300.0] && lags.len() == 3 && lags.iter().all(|l| *l == 0.0) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed 300 processed and lag 0:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        metric(&text, "indexstream_offset_commits_total", "result=\"ok\"")
            .iter()
            .sum::<f64>()
            >= 1.0,
        "{text}"
    );
    assert!(
        metric(&text, "indexstream_batches_total", "")
            .iter()
            .sum::<f64>()
            >= 1.0
    );
    assert!(text.contains("indexstream_uptime_seconds"));
    let health: Value = http()
        .get(format!("{base}/health"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["status"], "HEALTHY", "{health}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().lines().count(),
        300,
        "the metric counted what the sink received"
    );
}

#[test]
fn no_secret_appears_in_logs_errors_or_reports_and_the_report_counts_what_was_delivered() {
    let c = cluster(&["--refresh-interval", "100ms"]);
    let index = unique("secret");
    write(&c.url, &index, 40);
    let dir = std::env::temp_dir().join(unique("secret"));
    std::fs::create_dir_all(&dir).unwrap();
    let password = "pw-Zq8v1LmT93";
    let api_key = "key-Hx72PaQe55";
    let out = dir.join("out.jsonl");
    let sink = format!("file:{}", out.display());
    let run = |extra: &[&str], envs: &[(&str, &str)]| -> (i32, String) {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "--log",
            "debug",
            "consume",
            &index,
            &unique("g"),
            "--url",
            &c.url,
            "--until-idle",
            "800ms",
            "--poll-interval",
            "50ms",
            "--report-interval",
            "200ms",
        ])
        .args(extra);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let o = cmd.output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    };
    let (code, text) = run(
        &[
            "--username",
            "indexer",
            "--password",
            password,
            "--sink",
            &sink,
        ],
        &[],
    );
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains(password), "the password leaked:\n{text}");
    let processed: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("Total Processed: "))
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    assert_eq!(
        processed.last().copied(),
        Some(40),
        "the report at shutdown counts what was delivered"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 40);
    let (code, text) = run(&["--sink", "null"], &[("INDEXSTREAM_API_KEY", api_key)]);
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains(api_key), "the API key leaked:\n{text}");
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!("username = \"indexer\"\npassword = \"{password}\"\nsink = \"null\"\n"),
    )
    .unwrap();
    let (code, text) = run(&["--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{text}");
    assert!(
        !text.contains(password),
        "the password from the config file leaked:\n{text}"
    );
}
