//! Consumer groups with several members, as separate processes: partitions spread over the
//! members, taken over when one is killed or leaves, and never read by two at once. Ownership is
//! checked from what the members log (when each claimed and gave up each partition) and, on
//! the fake, from its request log (which member searched which shard, against who held the
//! shard's latest claim).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::support::{call, cluster, free_port, metric_sum, unique, write, TempDir, BIN};

/// One member process: its output file and its JSON log.
struct Member {
    name: String,
    child: Option<Child>,
    out: PathBuf,
    log: PathBuf,
    /// When it was killed (`SIGKILL`): its ownership ends there.
    killed_at_ms: Option<i64>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig}");
}

impl Member {
    fn start(dir: &Path, name: &str, common: &[String], extra: &[&str]) -> Member {
        let out = dir.join(format!("{name}.jsonl"));
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(BIN)
            .args(common)
            .args(["--member-id", name, "--sink"])
            .arg(format!("file:{}", out.display()))
            .args(extra)
            .args(["--log-format", "json"])
            .env("INDEXSTREAM_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Member {
            name: name.to_string(),
            child: Some(child),
            out,
            log,
            killed_at_ms: None,
        }
    }

    fn kill(&mut self) {
        let mut c = self.child.take().unwrap();
        self.killed_at_ms = Some(now_ms());
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(&mut self) {
        let mut c = self.child.take().unwrap();
        signal(&c, "TERM");
        let status = c.wait().unwrap();
        assert!(
            status.success(),
            "{} exited with {status}: {}",
            self.name,
            self.log_text()
        );
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log's JSON lines.
    fn events(&self) -> Vec<Value> {
        self.log_text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// `(id, shard)` of every line delivered.
    fn delivered(&self) -> Vec<(String, u64)> {
        self.lines().into_iter().map(|(id, s, _)| (id, s)).collect()
    }

    /// `(id, shard, seq_no)` of every line delivered, in order. A line the member is writing
    /// (no newline yet) is left for the next read.
    fn lines(&self) -> Vec<(String, u64, i64)> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    v["id"].as_str().unwrap().to_string(),
                    v["shard"].as_u64().unwrap(),
                    v["seq_no"].as_i64().unwrap(),
                )
            })
            .collect()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn event_ms(e: &Value) -> i64 {
    e["timestamp"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_millisecond())
        .unwrap_or(0)
}

/// The shard of a partition as logged (`index/shard`).
fn shard_of(e: &Value) -> Option<u64> {
    e["fields"]["partition"]
        .as_str()?
        .rsplit('/')
        .next()?
        .parse()
        .ok()
}

fn message(e: &Value) -> &str {
    e["fields"]["message"].as_str().unwrap_or("")
}

/// Each member's ownership intervals per shard, from its log: from "partition claimed" to
/// the first of "partition released", "partition lost", a refused commit, its kill, or its
/// last log line.
fn intervals(members: &[&Member]) -> BTreeMap<u64, Vec<(i64, i64, String, u64)>> {
    let mut out: BTreeMap<u64, Vec<(i64, i64, String, u64)>> = BTreeMap::new();
    for m in members {
        let events = m.events();
        let end_of_life = m
            .killed_at_ms
            .unwrap_or_else(|| events.last().map(event_ms).unwrap_or(i64::MAX));
        let mut open: HashMap<u64, (i64, u64)> = HashMap::new();
        for e in &events {
            let Some(shard) = shard_of(e) else { continue };
            let msg = message(e);
            if msg == "partition claimed" {
                let epoch = e["fields"]["epoch"].as_u64().unwrap_or(0);
                open.insert(shard, (event_ms(e), epoch));
            } else if msg.starts_with("releasing partition")
                || msg.starts_with("partition lost")
                || msg.starts_with("commit refused")
            {
                if let Some((start, epoch)) = open.remove(&shard) {
                    out.entry(shard)
                        .or_default()
                        .push((start, event_ms(e), m.name.clone(), epoch));
                }
            }
        }
        for (shard, (start, epoch)) in open {
            out.entry(shard)
                .or_default()
                .push((start, end_of_life, m.name.clone(), epoch));
        }
    }
    for list in out.values_mut() {
        list.sort();
    }
    out
}

/// No two members' ownership of a shard overlaps, and epochs grow with time.
fn assert_no_overlap(members: &[&Member]) {
    for (shard, list) in intervals(members) {
        for pair in list.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert!(
                b.0 >= a.1,
                "shard {shard}: {} claimed it (epoch {}) at {} before {} gave it up (epoch {}) at {}",
                b.2,
                b.3,
                b.0,
                a.2,
                a.3,
                a.1
            );
            assert!(b.3 > a.3, "shard {shard}: epochs {} then {}", a.3, b.3);
        }
    }
}

/// A member paused (`SIGSTOP`) while it held `lost`, which another member took meanwhile.
struct Paused<'a> {
    member: &'a str,
    lost: &'a BTreeSet<u64>,
}

/// From the fake's request log: every search of a shard of `index` was sent by the member
/// holding that shard's latest claim (a claim written with `PUT`, as the log records it).
/// With `paused`, that member may still search the shards it lost within 250 ms of its first
/// request after another member claimed one of them: reads it had started when it was
/// stopped, sent once it runs again (what they find is not delivered, as the caller checks);
/// a later search of them fails. `None` against a real node (no request
/// log); else the number of searches and of such reads.
fn check_request_log(
    url: &str,
    index: &str,
    group: &str,
    paused: Option<Paused<'_>>,
) -> Option<(usize, usize)> {
    let resp = super::support::http()
        .get(format!("{url}/_fake/requests"))
        .send()
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let log: Value = resp.json().ok()?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let mut holder: HashMap<u64, String> = HashMap::new();
    let mut claimed_at: HashMap<u64, f64> = HashMap::new();
    let mut searches = 0;
    // Whether one of the paused member's shards was taken; when its first request after that
    // arrived (it was stopped meanwhile: when it ran again).
    let mut taken = false;
    let mut resumed_at: Option<f64> = None;
    let mut in_flight = 0;
    let claim_prefix = format!("{group}|claim|");
    for r in log["requests"].as_array()? {
        let path = decode(r["path"].as_str().unwrap_or(""));
        let query = decode(r["query"].as_str().unwrap_or(""));
        let who = r["opaque_id"]
            .as_str()
            .and_then(|o| o.rsplit(':').next())
            .unwrap_or("")
            .to_string();
        let ok = matches!(r["status"].as_u64(), Some(200 | 201));
        let at_ms = r["at_ms"].as_f64().unwrap_or(0.0);
        if paused.as_ref().is_some_and(|p| who == p.member) && taken && resumed_at.is_none() {
            resumed_at = Some(at_ms);
        }
        if r["method"] == "PUT" && ok {
            if let Some(rest) = path.split_once(&claim_prefix).map(|(_, rest)| rest) {
                let shard: u64 = rest.rsplit('|').next().unwrap().parse().unwrap();
                if let Some(p) = &paused {
                    taken |= p.lost.contains(&shard)
                        && holder.get(&shard).is_some_and(|h| h == p.member)
                        && who != p.member;
                }
                holder.insert(shard, who.clone());
                claimed_at.insert(shard, at_ms);
            }
        }
        if path == format!("/{index}/_search") {
            if let Some(shard) = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("preference=_shards:"))
                .and_then(|p| p.split('|').next())
                .and_then(|s| s.parse::<u64>().ok())
            {
                searches += 1;
                let started_before_the_pause = paused.as_ref().is_some_and(|p| {
                    who == p.member
                        && p.lost.contains(&shard)
                        && resumed_at.is_some_and(|t| at_ms - t <= 250.0)
                });
                if started_before_the_pause && holder.get(&shard) != Some(&who) {
                    in_flight += 1;
                    continue;
                }
                assert_eq!(
                    holder.get(&shard),
                    Some(&who),
                    "{who} searched shard {shard} while the latest claim was {:?}'s, written {} ms before (request {}: {query})",
                    holder.get(&shard),
                    at_ms - claimed_at.get(&shard).copied().unwrap_or(0.0),
                    r["seq"]
                );
            }
        }
    }
    Some((searches, in_flight))
}

fn create(url: &str, index: &str, shards: u32) {
    call(
        url,
        "PUT",
        &format!("/{index}"),
        Some(
            json!({"settings": {"number_of_shards": shards, "number_of_replicas": 0, "refresh_interval": "200ms"}}),
        ),
    );
}

/// `groups describe --format json`.
fn describe(url: &str, group: &str, offsets: &str) -> Value {
    let o = Command::new(BIN)
        .args([
            "groups", "describe", group, "--url", url, "--format", "json",
        ])
        .args(["--offsets-index", offsets])
        .env("INDEXSTREAM_LOG", "warn")
        .output()
        .unwrap();
    serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
}

/// Waits until `describe` shows exactly `names` as live members, each with `floor(6/M)` or
/// `ceil(6/M)` partitions and every partition owned once; returns the description.
fn wait_for_split(
    url: &str,
    group: &str,
    offsets: &str,
    names: &[&str],
    within: Duration,
) -> Value {
    let started = Instant::now();
    let mut last = Value::Null;
    while started.elapsed() < within {
        last = describe(url, group, offsets);
        let members: BTreeSet<&str> = last["members"]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["member"].as_str()).collect())
            .unwrap_or_default();
        let want: BTreeSet<&str> = names.iter().copied().collect();
        let counts: Vec<usize> = last["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| m["partitions"].as_array().map_or(0, |p| p.len()))
                    .collect()
            })
            .unwrap_or_default();
        let (lo, hi) = (6 / names.len(), 6_usize.div_ceil(names.len()));
        let owned: HashSet<u64> = last["members"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|m| m["partitions"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p["shard"].as_u64())
            .collect();
        if members == want
            && counts.iter().all(|c| (lo..=hi).contains(c))
            && counts.iter().sum::<usize>() == 6
            && owned.len() == 6
        {
            return last;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("no balanced split over {names:?} within {within:?}: {last}");
}

/// The arguments every member of a test shares (`--commit-interval` apart).
fn common(url: &str, index: &str, group: &str, offsets: &str) -> Vec<String> {
    [
        "consume",
        index,
        group,
        "--url",
        url,
        "--offsets-index",
        offsets,
        "--batch-size",
        "200",
        "--commit-every",
        "1s",
        "--poll-interval",
        "200ms",
        "--lease-ttl",
        "3s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// How the members of a test read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    Exact,
    /// Timestamp mode by shard, with a 30 s window.
    TimestampByShard,
}

impl Reading {
    /// The flags of `consume` for it, with `--commit-interval 500` (and `--batch-size 200`
    /// from [`common`]).
    fn flags(self) -> Vec<&'static str> {
        self.with_commit_interval("500")
    }

    fn with_commit_interval(self, n: &'static str) -> Vec<&'static str> {
        let mut flags = vec!["--commit-interval", n];
        flags.extend_from_slice(match self {
            Reading::Exact => &[],
            Reading::TimestampByShard => &[
                "--mode",
                "timestamp",
                "--timestamp-partitions",
                "shards",
                "--safety-window",
                "30s",
            ],
        });
        flags
    }
}

/// A producer thread writing `total` documents `{prefix}N` in bulks over about `over`. In
/// timestamp mode every document has an `@timestamp`: now, or for one in five, 2 to 10 s ago
/// (late: older than what the members have delivered, inside their 30 s window).
fn produce(
    url: &str,
    index: &str,
    prefix: &str,
    total: usize,
    over: Duration,
    reading: Reading,
) -> std::thread::JoinHandle<usize> {
    let bulks = 50;
    let never = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    produce_until(
        url,
        index,
        prefix,
        bulks,
        total / bulks,
        over / bulks as u32,
        reading,
        never,
    )
}

/// As [`produce`]: at most `bulks` bulks of `per` documents, one every `every`, ending early
/// once `stop` is set. Returns how many documents it wrote.
#[allow(clippy::too_many_arguments)]
fn produce_until(
    url: &str,
    index: &str,
    prefix: &str,
    bulks: usize,
    per: usize,
    every: Duration,
    reading: Reading,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    let (url, index, prefix) = (url.to_string(), index.to_string(), prefix.to_string());
    std::thread::spawn(move || {
        let mut written = 0;
        for b in 0..bulks {
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            let now = now_ms();
            let docs: Vec<_> = (0..per)
                .map(|i| {
                    let n = b * per + i;
                    let doc = match reading {
                        Reading::Exact => json!({"n": i}),
                        Reading::TimestampByShard => {
                            let late = if n % 5 == 0 { 2000 + (n % 8000) as i64 } else { 0 };
                            json!({"n": i, "@timestamp": jiff::Timestamp::from_millisecond(now - late).unwrap().to_string()})
                        }
                    };
                    (format!("{prefix}{n}"), doc)
                })
                .collect();
            write(&url, &index, &docs);
            written += docs.len();
            std::thread::sleep(every);
        }
        written
    })
}

/// Waits until the members' outputs together hold `total` distinct ids.
fn wait_for_all(members: &[&Member], total: usize, within: Duration) {
    let started = Instant::now();
    loop {
        let ids: HashSet<String> = members
            .iter()
            .flat_map(|m| m.delivered())
            .map(|(id, _)| id)
            .collect();
        if ids.len() >= total {
            return;
        }
        if started.elapsed() >= within {
            let logs: Vec<String> = members
                .iter()
                .map(|m| {
                    let text = m.log_text();
                    let tail: Vec<&str> = text.lines().rev().take(40).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    format!(
                        "--- {} (last lines of its log)\n{}",
                        m.name,
                        tail.join("\n")
                    )
                })
                .collect();
            panic!(
                "only {} of {total} delivered within {within:?}\n{}",
                ids.len(),
                logs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// 6 shards, 100,000 documents written while three members consume; one is killed with
/// SIGKILL, a fourth joins, one leaves with SIGTERM. Nothing is missing; what is repeated is at
/// most what the killed member had not committed; every member delivered some; no shard was
/// owned (or, on the fake, searched) by two members at once.
#[test]
fn members_share_a_six_shard_index_through_a_kill_a_join_and_a_leave() {
    kill_join_leave(Reading::Exact);
}

/// The same in timestamp mode by shard, with one document in five written late (older than
/// what was delivered, inside the window): every one of them is delivered too.
#[test]
fn timestamp_members_share_a_six_shard_index_through_a_kill_a_join_and_a_leave() {
    kill_join_leave(Reading::TimestampByShard);
}

fn kill_join_leave(reading: Reading) {
    let c = cluster(&[]);
    let url = c.url.as_str();
    let index = unique("members");
    let group = unique("g");
    let offsets = unique("offsets");
    create(url, &index, 6);
    let tmp = TempDir::new("members");
    let args = common(url, &index, &group, &offsets);
    const TOTAL: usize = 100_000;
    let producer = produce(url, &index, "d", TOTAL, Duration::from_secs(20), reading);
    let mut m1 = Member::start(tmp.path(), "m1", &args, &reading.flags());
    let mut m2 = Member::start(tmp.path(), "m2", &args, &reading.flags());
    let mut m3 = Member::start(tmp.path(), "m3", &args, &reading.flags());
    let split = wait_for_split(
        url,
        &group,
        &offsets,
        &["m1", "m2", "m3"],
        Duration::from_secs(30),
    );
    eprintln!("three members: {split}");
    std::thread::sleep(Duration::from_secs(2));
    // The killed member's partitions, as the group last showed them.
    let held_by_m1 = describe(url, &group, &offsets)["members"]
        .as_array()
        .and_then(|a| a.iter().find(|m| m["member"] == "m1").cloned())
        .and_then(|m| m["partitions"].as_array().map(|p| p.len()))
        .unwrap_or(6);
    m1.kill();
    let two = wait_for_split(
        url,
        &group,
        &offsets,
        &["m2", "m3"],
        Duration::from_secs(30),
    );
    eprintln!("after the kill: {two}");
    let mut m4 = Member::start(tmp.path(), "m4", &args, &reading.flags());
    let three = wait_for_split(
        url,
        &group,
        &offsets,
        &["m2", "m3", "m4"],
        Duration::from_secs(30),
    );
    eprintln!("after the join: {three}");
    // Every live member and its partitions are named.
    for m in ["m2", "m3", "m4"] {
        assert!(three["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["member"] == m && !x["partitions"].as_array().unwrap().is_empty()));
    }
    std::thread::sleep(Duration::from_secs(1));
    m2.stop();
    let after_leave = wait_for_split(
        url,
        &group,
        &offsets,
        &["m3", "m4"],
        Duration::from_secs(10),
    );
    eprintln!("after the leave: {after_leave}");
    producer.join().unwrap();
    wait_for_all(&[&m1, &m2, &m3, &m4], TOTAL, Duration::from_secs(120));
    m3.stop();
    m4.stop();
    let all = [&m1, &m2, &m3, &m4];

    let mut count: HashMap<String, usize> = HashMap::new();
    for m in &all {
        let d = m.delivered();
        assert!(!d.is_empty(), "{} delivered nothing", m.name);
        eprintln!("{} delivered {}", m.name, d.len());
        for (id, _) in d {
            *count.entry(id).or_default() += 1;
        }
    }
    assert_eq!(count.len(), TOTAL, "every document delivered");
    let repeated: usize = count.values().map(|n| n - 1).sum();
    let bound = (500 + 200) * held_by_m1;
    eprintln!(
        "repeated {repeated} (bound: commit interval 500 + batch 200 for each of the {held_by_m1} partitions the killed member held)"
    );
    assert!(repeated <= bound, "repeated {repeated} > {bound}");
    assert_no_overlap(&all);
    match check_request_log(url, &index, &group, None) {
        Some((n, _)) => {
            eprintln!("request log: each of {n} shard searches came from the shard's owner")
        }
        None => eprintln!("request log: not available on a real node (ownership checked from the members' logs only)"),
    }
}

/// Two members; one is paused with SIGSTOP past its lease TTL while documents keep coming,
/// then resumed with SIGCONT: the other took its partitions over, it delivers nothing more of
/// them, its late commit is refused by the cluster, and nothing is lost.
#[test]
fn a_member_paused_past_its_lease_is_fenced_and_delivers_nothing_more_of_what_it_lost() {
    paused_past_its_lease(Reading::Exact);
}

/// The same in timestamp mode by shard.
#[test]
fn a_timestamp_member_paused_past_its_lease_is_fenced_and_delivers_nothing_more_of_what_it_lost() {
    paused_past_its_lease(Reading::TimestampByShard);
}

/// Each shard's global checkpoint, from the primaries' shard stats.
fn checkpoints(url: &str, index: &str) -> HashMap<u64, i64> {
    let stats = call(url, "GET", &format!("/{index}/_stats?level=shards"), None);
    let mut out = HashMap::new();
    for (shard, copies) in stats["indices"][index]["shards"].as_object().unwrap() {
        for copy in copies.as_array().unwrap() {
            if copy["routing"]["primary"] == true {
                out.insert(
                    shard.parse().unwrap(),
                    copy["seq_no"]["global_checkpoint"].as_i64().unwrap(),
                );
            }
        }
    }
    out
}

fn paused_past_its_lease(reading: Reading) {
    let c = cluster(&[]);
    let url = c.url.as_str();
    let index = unique("zombie");
    let group = unique("g");
    let offsets = unique("offsets");
    create(url, &index, 6);
    let tmp = TempDir::new("zombie");
    let args = common(url, &index, &group, &offsets);
    // Writes go on until a few seconds after the zombie resumed (about 2,500 documents a
    // second), so that it has delivered something uncommitted when it is paused, however long
    // the start took. (With a fixed amount, a slow start sometimes let it read and commit all
    // of it before the pause, and it had nothing to commit, so nothing was refused.)
    let stop_writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = produce_until(
        url,
        &index,
        "z",
        400,
        800,
        Duration::from_millis(320),
        reading,
        stop_writing.clone(),
    );
    // The zombie commits on its timer only (every 4 s), and is paused right after it delivered
    // something its last commit does not cover (seen on its metrics): it has a commit to make
    // when it resumes, and the new owner has an offset document to fence. (Paused a second
    // after a commit, it had sometimes delivered nothing meanwhile on a loaded node.) Its file
    // sink is flushed at each commit: the test reads what it delivered from there.
    let zombie_metrics = format!("127.0.0.1:{}", free_port());
    let zombie_args: Vec<String> = {
        let at = args.iter().position(|a| a == "--commit-every").unwrap() + 1;
        let mut a = args.clone();
        a[at] = "4s".into();
        a
    };
    let mut zombie = Member::start(
        tmp.path(),
        "zombie",
        &zombie_args,
        &[
            reading.with_commit_interval("1000000"),
            vec!["--metrics-addr", &zombie_metrics],
        ]
        .concat(),
    );
    let mut other = Member::start(tmp.path(), "other", &args, &reading.flags());
    let split = wait_for_split(
        url,
        &group,
        &offsets,
        &["other", "zombie"],
        Duration::from_secs(30),
    );
    let lost: BTreeSet<u64> = split["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["member"] == "zombie")
        .unwrap()["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["shard"].as_u64())
        .collect();
    // The zombie's committed positions (the `_seq_no` or the cursor) as `describe` shows them.
    let positions = || -> BTreeMap<u64, String> {
        describe(url, &group, &offsets)["partitions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["owner"] == "zombie")
            .filter(|p| !p["cursor"].is_null() || p["committed"].as_i64().unwrap_or(-1) >= 0)
            .filter_map(|p| {
                Some((
                    p["shard"].as_u64()?,
                    format!("{}{}", p["committed"], p["cursor"]),
                ))
            })
            .collect()
    };
    let before = positions();
    let started = Instant::now();
    loop {
        let now = positions();
        if now.keys().copied().collect::<BTreeSet<u64>>() == lost && now != before {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the zombie never committed its partitions {lost:?}: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let zombie_metrics = format!("http://{zombie_metrics}");
    let sample = || {
        (
            metric_sum(&zombie_metrics, "indexstream_offset_commits_total"),
            metric_sum(&zombie_metrics, "indexstream_events_processed_total"),
        )
    };
    let (mut commits, mut delivered) = sample();
    loop {
        let (c, d) = sample();
        if c != commits {
            (commits, delivered) = (c, d);
        } else if d > delivered {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the zombie delivered nothing after its commit {commits}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(zombie.child.as_ref().unwrap(), "STOP");
    // Past its TTL (3 s): the other member claims its partitions.
    wait_for_split(url, &group, &offsets, &["other"], Duration::from_secs(20));
    // Nothing the zombie read before its pause lies above each shard's checkpoint a second
    // later (writes go on, so the global checkpoint passes what existed at the pause).
    std::thread::sleep(Duration::from_secs(1));
    let at_pause = checkpoints(url, &index);
    let resumed_at = now_ms();
    signal(zombie.child.as_ref().unwrap(), "CONT");
    std::thread::sleep(Duration::from_secs(3));
    stop_writing.store(true, std::sync::atomic::Ordering::SeqCst);
    let total = producer.join().unwrap();
    wait_for_all(&[&zombie, &other], total, Duration::from_secs(90));
    std::thread::sleep(Duration::from_secs(2));
    zombie.stop();
    other.stop();

    let events = zombie.events();
    // Its late commit was refused by the cluster (the other member had fenced the offsets).
    let refused: BTreeSet<u64> = events
        .iter()
        .filter(|e| message(e).starts_with("commit refused"))
        .filter_map(shard_of)
        .collect();
    assert!(
        !refused.is_empty() && refused.is_subset(&lost),
        "the zombie's commit of the partitions it lost was refused: refused {refused:?}, lost {lost:?}\n{}",
        zombie.log_text()
    );
    // After it resumed it delivered nothing more of what it lost: every line of a lost shard
    // is either from before the pause (at most the shard's checkpoint then) or, for a shard it
    // claimed back after resuming, from after the offset it claimed it back at. (In timestamp
    // mode the offset is a cursor, not a `_seq_no`: a shard claimed back is not checked.)
    let reclaimed: HashMap<u64, i64> = events
        .iter()
        .filter(|e| message(e) == "partition assigned" && event_ms(e) >= resumed_at)
        .filter_map(|e| {
            let committed = match reading {
                Reading::Exact => e["fields"]["committed"].as_i64()?,
                Reading::TimestampByShard => -1,
            };
            Some((shard_of(e)?, committed))
        })
        .collect();
    eprintln!(
        "lost {lost:?}, checkpoints at the pause {at_pause:?}, claimed back at {reclaimed:?}"
    );
    for (id, shard, seq) in zombie.lines() {
        if !lost.contains(&shard) {
            continue;
        }
        let before_pause = seq <= at_pause[&shard];
        let after_reclaim = reclaimed.get(&shard).is_some_and(|c| seq > *c);
        assert!(
            before_pause || after_reclaim,
            "the zombie delivered {id} (shard {shard}, _seq_no {seq}) in the other member's epoch"
        );
    }
    let ids: HashSet<String> = zombie
        .delivered()
        .into_iter()
        .chain(other.delivered())
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids.len(), total, "nothing lost");
    assert_no_overlap_but_the_pause(&zombie, &other, resumed_at);
    // What the zombie did once resumed (shown when a check below fails).
    let after_resume: Vec<String> = events
        .iter()
        .filter(|e| event_ms(e) >= resumed_at)
        .take(30)
        .map(|e| e.to_string())
        .collect();
    eprintln!(
        "the zombie resumed at {resumed_at} ms; its log since:\n{}",
        after_resume.join("\n")
    );
    let paused = Paused {
        member: "zombie",
        lost: &lost,
    };
    match check_request_log(url, &index, &group, Some(paused)) {
        Some((n, in_flight)) => eprintln!("request log: each of {n} shard searches came from the shard's owner, but {in_flight} the zombie had started when it was paused"),
        None => eprintln!("request log: not available on a real node"),
    }
}

/// As [`assert_no_overlap`], with the zombie's ownership of what it lost ending when it was
/// paused in fact, not when it learned of it after resuming: its own log cannot show the
/// pause, the request log can (it sent nothing meanwhile), and it delivered nothing of them
/// after resuming (checked by the caller).
fn assert_no_overlap_but_the_pause(zombie: &Member, other: &Member, resumed_at: i64) {
    for (shard, list) in intervals(&[zombie, other]) {
        for pair in list.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let paused_through = a.2 == "zombie" && a.1 >= resumed_at && b.0 < resumed_at;
            assert!(
                b.0 >= a.1 || paused_through,
                "shard {shard}: {} claimed it at {} before {} gave it up at {}",
                b.2,
                b.0,
                a.2,
                a.1
            );
            assert!(b.3 > a.3, "shard {shard}: epochs {} then {}", a.3, b.3);
        }
    }
}
