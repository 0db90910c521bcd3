//! Failover without loss, on a real three-node OpenSearch cluster (`scripts/real-cluster start
//! --nodes 3 --http-port P`, then `INDEXSTREAM_FAILOVER_PORT=P cargo test -p indexstream-cli
//! --test tests -- --ignored failover`; `.ci/run` does this).
//!
//! A producer writes continuously into 3 shards with a replica each while an exact-mode
//! consumer with all three URLs reads them. The JVM holding the primary of a shard is killed
//! with SIGKILL, later restarted, then the node holding another primary is killed. At the end:
//! every document the cluster holds was delivered, in the version it holds; nothing was
//! delivered that the cluster does not hold (an operation above a global checkpoint that the
//! failover rolled back would show as a delivered `(shard, _seq_no)` the cluster holds under
//! another id or primary term, or not at all); duplicates stay within the commit bound; the
//! consumer never exited, and it logged and counted each primary change.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::support::{call, free_port, metric_sum, unique, TempDir, BIN};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/real-cluster");
const COMMIT_INTERVAL: usize = 200;
const BATCH: usize = 200;

fn script(args: &[&str]) -> String {
    let out = Command::new(SCRIPT).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "scripts/real-cluster {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The highest `primary_term` delivered per shard, read from the output as it grows.
#[derive(Default)]
struct Terms {
    read: usize,
    max: HashMap<u32, i64>,
}

impl Terms {
    fn update(&mut self, path: &std::path::Path) -> &HashMap<u32, i64> {
        let bytes = std::fs::read(path).unwrap_or_default();
        let end = bytes[self.read.min(bytes.len())..]
            .iter()
            .rposition(|b| *b == b'\n')
            .map(|p| self.read + p + 1)
            .unwrap_or(self.read);
        for line in bytes[self.read..end].split(|b| *b == b'\n') {
            if let Ok(v) = serde_json::from_slice::<Value>(line) {
                let (shard, term) = (
                    v["shard"].as_u64().unwrap_or(0) as u32,
                    v["primary_term"].as_i64().unwrap_or(0),
                );
                let e = self.max.entry(shard).or_insert(term);
                *e = (*e).max(term);
            }
        }
        self.read = end;
        &self.max
    }
}

fn lines(path: &std::path::Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|c| **c == b'\n').count())
        .unwrap_or(0)
}

/// The node (by number) holding the primary of `shard`, from `_cat/shards`.
fn primary_node(url: &str, index: &str, shard: u32) -> Option<usize> {
    let v = call(
        url,
        "GET",
        &format!("/_cat/shards/{index}?format=json&h=shard,prirep,state,node"),
        None,
    );
    v.as_array()?.iter().find_map(|s| {
        (s["shard"].as_str() == Some(&shard.to_string())
            && s["prirep"] == "p"
            && s["state"] == "STARTED")
            .then(|| s["node"].as_str()?.strip_prefix("node-")?.parse().ok())
            .flatten()
    })
}

/// Waits for `done`; on a timeout, fails with the tails of the logs in `dir`.
fn wait_until(
    dir: &std::path::Path,
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    while !done() {
        if start.elapsed() >= limit {
            let tail = |name: &str| {
                let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(25)..].join("\n")
            };
            panic!(
                "timed out waiting for {what}\n--- consumer.log\n{}\n--- producer.log\n{}",
                tail("consumer.log"),
                tail("producer.log")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// Waits until every shard of every index (the offsets index too) has all its copies: a
/// node killed before a recovering replica is in sync would take the only in-sync copy away.
fn wait_green(url: &str) {
    let v = call(
        url,
        "GET",
        "/_cluster/health?wait_for_status=green&wait_for_no_initializing_shards=true&timeout=120s",
        None,
    );
    assert_eq!(v["status"], "green", "{v}");
}

/// Kills the JVM holding the primary of one of `shards` (the first that has a live primary);
/// returns the node number and the shard.
fn kill_a_primary(port: u16, url: &str, index: &str, shards: &[u32]) -> (usize, u32) {
    for &shard in shards {
        if let Some(node) = primary_node(url, index, shard) {
            let pid = script(&[
                "pid",
                "--http-port",
                &port.to_string(),
                "--node",
                &node.to_string(),
            ]);
            let status = Command::new("kill").args(["-9", &pid]).status().unwrap();
            assert!(status.success());
            eprintln!("failover: killed node-{node} (pid {pid}), primary of shard {shard}");
            return (node, shard);
        }
    }
    panic!("no live primary for shards {shards:?}");
}

/// Every document the cluster holds: `(shard, seq_no) -> (id, primary_term)`.
fn held(url: &str, index: &str) -> HashMap<(u32, i64), (String, i64)> {
    call(url, "POST", &format!("/{index}/_refresh"), None);
    let mut out = HashMap::new();
    for shard in 0..3u32 {
        let mut after: Option<i64> = None;
        loop {
            let mut body = json!({"size": 5000, "sort": [{"_seq_no": "asc"}], "seq_no_primary_term": true, "_source": false, "track_total_hits": false});
            if let Some(a) = after {
                body["search_after"] = json!([a]);
            }
            let v = call(
                url,
                "POST",
                &format!("/{index}/_search?preference=_shards:{shard}|_primary"),
                Some(body),
            );
            assert_eq!(v["_shards"]["failed"], 0, "{v}");
            let hits = v["hits"]["hits"].as_array().unwrap().clone();
            for h in &hits {
                let seq = h["_seq_no"].as_i64().unwrap();
                out.insert(
                    (shard, seq),
                    (
                        h["_id"].as_str().unwrap().to_string(),
                        h["_primary_term"].as_i64().unwrap(),
                    ),
                );
                after = Some(seq);
            }
            if hits.len() < 5000 {
                break;
            }
        }
    }
    out
}

/// Kills the test's processes and starts again any node that is down, also when the test
/// fails: the cluster is left with its three nodes for the next run.
struct Cleanup {
    port: u16,
    pids: Vec<u32>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for pid in &self.pids {
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        for node in 0..3 {
            let _ = Command::new(SCRIPT)
                .args([
                    "restart-node",
                    "--http-port",
                    &self.port.to_string(),
                    "--node",
                    &node.to_string(),
                ])
                .stdout(Stdio::null())
                .status();
        }
    }
}

fn spawn(args: &[&str], stderr: &std::path::Path) -> Child {
    Command::new(BIN)
        .args(args)
        .env("INDEXSTREAM_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap()
}

#[test]
#[ignore = "needs a three-node real cluster: scripts/real-cluster start --nodes 3 --http-port P, then INDEXSTREAM_FAILOVER_PORT=P cargo test -p indexstream-cli --test tests -- --ignored failover"]
fn killing_the_nodes_of_two_primaries_loses_nothing_and_delivers_nothing_rolled_back() {
    let port: u16 = std::env::var("INDEXSTREAM_FAILOVER_PORT")
        .expect("INDEXSTREAM_FAILOVER_PORT: the HTTP port of a three-node cluster started by scripts/real-cluster")
        .parse()
        .unwrap();
    let urls: Vec<String> = (0..3)
        .map(|i| format!("http://127.0.0.1:{}", port + i))
        .collect();
    let url_list = urls.join(",");
    let url = urls[0].as_str();
    let mut cleanup = Cleanup {
        port,
        pids: Vec::new(),
    };
    // All three nodes up (a no-op when they are), whatever an earlier run left behind.
    drop(Cleanup {
        port,
        pids: Vec::new(),
    });
    let dir = TempDir::new("failover");
    let index = unique("failover");
    let out = dir.path().join("out.jsonl");
    call(
        url,
        "PUT",
        &format!("/{index}"),
        Some(
            json!({"settings": {"number_of_shards": 3, "number_of_replicas": 1, "refresh_interval": "500ms", "index.unassigned.node_left.delayed_timeout": "5s"}}),
        ),
    );
    wait_green(url);

    let producer_log = dir.path().join("producer.log");
    let mut producer = spawn(
        &[
            "produce",
            "--url",
            &url_list,
            "--index",
            &index,
            "--count",
            "40000",
            "--rate",
            "1000",
            "--bulk-size",
            "100",
        ],
        &producer_log,
    );
    cleanup.pids.push(producer.id());
    let metrics_port = free_port();
    let consumer_log = dir.path().join("consumer.log");
    let group = unique("g");
    let mut consumer = spawn(
        &[
            "consume",
            &index,
            &group,
            "--url",
            &url_list,
            "--sink",
            &format!("file:{}", out.display()),
            "--commit-interval",
            &COMMIT_INTERVAL.to_string(),
            "--batch-size",
            &BATCH.to_string(),
            "--poll-interval",
            "200ms",
            "--metrics-addr",
            &format!("127.0.0.1:{metrics_port}"),
        ],
        &consumer_log,
    );
    cleanup.pids.push(consumer.id());
    let metrics = format!("http://127.0.0.1:{metrics_port}");
    wait_until(
        dir.path(),
        "the first 5000 deliveries",
        Duration::from_secs(60),
        || lines(&out) >= 5000,
    );

    // Time to resume after a kill: until the failed-over shard delivers a document written
    // under its new primary term.
    let mut terms = Terms::default();
    let mut resumed = Vec::new();
    let (first, first_shard) = kill_a_primary(port, url, &index, &[0, 1, 2]);
    let at_kill = lines(&out);
    let old_term = terms.update(&out).get(&first_shard).copied().unwrap_or(0);
    resumed.push(wait_until(
        dir.path(),
        "the failed-over shard to deliver under its new primary",
        Duration::from_secs(60),
        || terms.update(&out).get(&first_shard).copied().unwrap_or(0) > old_term,
    ));
    wait_until(
        dir.path(),
        "5000 more deliveries",
        Duration::from_secs(60),
        || lines(&out) >= at_kill + 5000,
    );
    script(&[
        "restart-node",
        "--http-port",
        &port.to_string(),
        "--node",
        &first.to_string(),
    ]);
    wait_green(url);
    let others: Vec<u32> = (0..3).filter(|s| *s != first_shard).collect();
    let (second, second_shard) = kill_a_primary(port, url, &index, &others);
    let old_term = terms.update(&out).get(&second_shard).copied().unwrap_or(0);
    resumed.push(wait_until(
        dir.path(),
        "the second failed-over shard to deliver under its new primary",
        Duration::from_secs(60),
        || terms.update(&out).get(&second_shard).copied().unwrap_or(0) > old_term,
    ));
    let produced = producer.wait().unwrap();
    let producer_text = std::fs::read_to_string(&producer_log).unwrap();
    let summary = producer_text
        .lines()
        .find(|l| l.starts_with("produced "))
        .unwrap_or_default()
        .to_string();
    eprintln!("failover: producer: {summary} (exit {produced:?})");

    let live = urls
        .iter()
        .enumerate()
        .find(|(i, _)| *i != second)
        .map(|(_, u)| u.clone())
        .unwrap();
    let cluster = held(&live, &index);
    wait_until(
        dir.path(),
        "the consumer to deliver everything the cluster holds",
        Duration::from_secs(120),
        || lines(&out) >= cluster.len(),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        consumer.try_wait().unwrap().is_none(),
        "the consumer exited during the failovers: {}",
        std::fs::read_to_string(&consumer_log).unwrap()
    );
    let primary_changes = metric_sum(&metrics, "indexstream_primary_changes_total");
    Command::new("kill")
        .args(["-TERM", &consumer.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(consumer.wait().unwrap().code(), Some(0));
    script(&[
        "restart-node",
        "--http-port",
        &port.to_string(),
        "--node",
        &second.to_string(),
    ]);

    call(&live, "DELETE", &format!("/{index}"), None);
    let text = std::fs::read_to_string(&out).unwrap();
    let delivered: Vec<(String, u32, i64, i64)> = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().unwrap().to_string(),
                v["shard"].as_u64().unwrap() as u32,
                v["seq_no"].as_i64().unwrap(),
                v["primary_term"].as_i64().unwrap(),
            )
        })
        .collect();
    let distinct: HashSet<&(String, u32, i64, i64)> = delivered.iter().collect();
    let duplicates = delivered.len() - distinct.len();
    let missing: Vec<_> = cluster
        .iter()
        .filter(|((shard, seq), (id, term))| !distinct.contains(&(id.clone(), *shard, *seq, *term)))
        .take(10)
        .collect();
    let where_held: HashMap<&str, (u32, i64, i64)> = cluster
        .iter()
        .map(|((shard, seq), (id, term))| (id.as_str(), (*shard, *seq, *term)))
        .collect();
    // A delivered version the cluster no longer holds at its position is either superseded (the
    // same id written again later in the shard: a producer's retry of a write whose answer was
    // lost) or rolled back by a failover: then its `_seq_no` went to another operation of the
    // new primary term, or the id is gone, or it is held further back than it was delivered.
    let mut superseded = 0;
    let phantom: Vec<String> = distinct
        .iter()
        .filter(|(id, shard, seq, term)| {
            match (cluster.get(&(*shard, *seq)), where_held.get(id.as_str())) {
                (Some(at), _) if *at == (id.clone(), *term) => false,
                (None, Some((s, later, _))) if s == shard && later > seq => {
                    superseded += 1;
                    false
                }
                _ => true,
            }
        })
        .take(10)
        .map(|d| {
            format!(
                "{d:?}: the cluster holds {:?} at that position and the id at {:?}",
                cluster.get(&(d.1, d.2)),
                where_held.get(d.0.as_str())
            )
        })
        .collect();
    let log = std::fs::read_to_string(&consumer_log).unwrap();
    let moved_lines = log
        .lines()
        .filter(|l| l.contains("primary moved to another node"))
        .count();
    if moved_lines < 2 {
        // What the member saw of its partitions, to explain a move not seen (CI keeps no log).
        for l in log.lines().filter(|l| {
            ["partition", "primary", "lease", "renew", "rebalance"]
                .iter()
                .any(|w| l.contains(w))
        }) {
            eprintln!(
                "failover: consumer log: {}",
                l.chars().take(400).collect::<String>()
            );
        }
    }
    eprintln!(
        "failover: cluster holds {} documents; delivered {} lines, {} distinct, {} duplicates, {superseded} versions superseded by a rewrite of the same id; a failed-over shard delivered again after {:?}; primary changes counted {primary_changes}, logged {moved_lines}",
        cluster.len(),
        delivered.len(),
        distinct.len(),
        duplicates,
        resumed
    );
    assert!(missing.is_empty(), "held but not delivered: {missing:?}");
    assert!(
        phantom.is_empty(),
        "delivered but not held (rolled back or never written): {phantom:?}"
    );
    assert!(
        duplicates <= 2 * (COMMIT_INTERVAL + BATCH),
        "{duplicates} duplicates"
    );
    assert!(
        primary_changes >= 2.0,
        "primary changes counted: {primary_changes}"
    );
    assert!(moved_lines >= 2, "primary changes logged: {moved_lines}");
}
