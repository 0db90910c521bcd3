//! `indexstream consume --mode timestamp` as a process: killed with SIGKILL and restarted while
//! a producer writes late events; a short window's misses reported by the metric; `groups
//! describe` and `reset` of a timestamp-mode group.

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::Duration;

use indexstream::{event_key, TimestampOffset};
use serde_json::{json, Value};

use super::support::{
    call, cluster, free_port, http, rng, run_killed, run_ok, unique, write, TempDir, BIN,
};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A producer thread: `total` events over about `total / 500` seconds, `late_pct` percent of
/// them timestamped up to `max_late_ms` in the past, `@timestamp` as epoch milliseconds.
fn produce(
    url: &str,
    index: &str,
    total: usize,
    late_pct: u64,
    max_late_ms: u64,
    seed: u64,
) -> std::thread::JoinHandle<()> {
    produce_at(url, index, total, 500, late_pct, max_late_ms, seed)
}

/// The same at `rate` events per second (bulks every 100 ms).
pub(super) fn produce_at(
    url: &str,
    index: &str,
    total: usize,
    rate: usize,
    late_pct: u64,
    max_late_ms: u64,
    seed: u64,
) -> std::thread::JoinHandle<()> {
    let (url, index) = (url.to_string(), index.to_string());
    let per = (rate / 10).max(1);
    std::thread::spawn(move || {
        let mut next = rng(seed);
        for chunk in 0..total / per {
            let now = now_ms();
            let docs: Vec<(String, Value)> = (0..per)
                .map(|i| {
                    let n = chunk * per + i;
                    let late = if next(100) < late_pct {
                        next(max_late_ms) as i64
                    } else {
                        0
                    };
                    (format!("e{n}"), json!({"n": n, "@timestamp": now - late}))
                })
                .collect();
            write(&url, &index, &docs);
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

pub(super) fn create_events_index(url: &str, index: &str) {
    call(
        url,
        "PUT",
        &format!("/{index}"),
        Some(
            json!({"settings": {"number_of_shards": 3, "number_of_replicas": 0, "refresh_interval": "200ms"},
            "mappings": {"properties": {"@timestamp": {"type": "date"}}}}),
        ),
    );
}

/// `(id, event key, timestamp ns)` of each JSON line.
fn lines_of(text: &str) -> Vec<(String, u64, i64)> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let id = v["id"].as_str().unwrap().to_string();
            let ns = v["source"]["@timestamp"].as_i64().unwrap() * 1_000_000;
            let key = event_key(v["index"].as_str().unwrap(), &id, ns);
            (id, key, ns)
        })
        .collect()
}

fn committed(url: &str, group: &str) -> Option<TimestampOffset> {
    let resp = http()
        .get(format!(
            "{url}/indexstream-offsets/_doc/{}",
            format!("{group}|timestamp").replace('|', "%7C")
        ))
        .send()
        .unwrap();
    if resp.status() == 404 {
        return None;
    }
    let v: Value = resp.json().unwrap();
    let (mut offset, parts) = TimestampOffset::from_json(&v["_source"]["cursor"]).unwrap();
    // The window kept in parts (each a document of its own): folded in as the consumer does.
    for name in parts.map(|p| p.names()).unwrap_or_default() {
        let part: Value = http()
            .get(format!(
                "{url}/indexstream-offsets/_doc/{}",
                format!("{group}|timestamp|{name}").replace('|', "%7C")
            ))
            .send()
            .unwrap()
            .json()
            .unwrap();
        offset.merge_part(&part["_source"]["cursor"]).unwrap();
    }
    Some(offset)
}

#[test]
fn sigkill_five_times_with_late_events_inside_the_window_misses_none_and_repeats_only_uncommitted()
{
    let c = cluster(&["--shards", "3", "--refresh-interval", "200ms"]);
    let url = c.url.clone();
    let index = unique("tskill");
    create_events_index(&url, &index);
    let seed = now_ms() as u64;
    eprintln!("timestamp sigkill test seed {seed}");
    let mut next = rng(seed ^ 0x5eed);
    const TOTAL: usize = 5000;
    let producer = produce(&url, &index, TOTAL, 20, 20_000, seed);
    let tmp = TempDir::new("tskill");
    let dir = tmp.path().to_path_buf();
    let out = dir.join("out.jsonl");
    let group = unique("tsgroup");
    let sink = format!("file:{}", out.display());
    let window = Duration::from_secs(30);
    let common = [
        "consume",
        &index,
        &group,
        "--mode",
        "timestamp",
        "--safety-window",
        "30s",
        "--url",
        &url,
        "--sink",
        &sink,
        "--batch-size",
        "200",
        "--commit-interval",
        "300",
        "--commit-every",
        "300ms",
        "--poll-interval",
        "100ms",
        "--member-id",
        "the-member",
    ];
    // (bytes of the file at the kill, the offset committed then)
    let mut kills: Vec<(usize, Option<TimestampOffset>)> = Vec::new();
    for _ in 0..5 {
        let len = run_killed(&common, Duration::from_millis(600 + next(1500)), &out);
        kills.push((len, committed(&url, &group)));
    }
    producer.join().unwrap();
    let mut last = common.to_vec();
    last.extend(["--until-idle", "3s"]);
    run_ok(&last);
    let text = std::fs::read_to_string(&out).unwrap();
    let all = lines_of(&text);
    let ids: HashSet<&String> = all.iter().map(|(id, _, _)| id).collect();
    assert_eq!(ids.len(), TOTAL, "every id must be delivered (seed {seed})");
    // Nothing the committed offset covers is delivered again after a kill; what was delivered
    // before a kill and not covered is what may repeat.
    let covered = |o: &mut Option<TimestampOffset>, key: u64, ns: i64| {
        o.as_mut()
            .is_some_and(|o| o.seen(key, ns) || o.read_from(window).is_some_and(|from| ns < from))
    };
    let mut allowed = 0usize;
    for (len, offset) in &mut kills {
        for (id, key, ns) in lines_of(&text[*len..]) {
            assert!(
                !covered(offset, key, ns),
                "{id} was delivered again although the committed offset covered it (seed {seed})"
            );
        }
        allowed += lines_of(&text[..*len])
            .iter()
            .filter(|(_, key, ns)| !covered(offset, *key, *ns))
            .count();
    }
    let mut seen: HashMap<&String, usize> = HashMap::new();
    for (id, _, _) in &all {
        *seen.entry(id).or_default() += 1;
    }
    let repeats: usize = seen.values().map(|n| n - 1).sum();
    assert!(
        repeats <= allowed,
        "{repeats} repeats > {allowed} uncommitted deliveries before the kills (seed {seed})"
    );
    eprintln!(
        "timestamp sigkill test: {} lines, {repeats} repeats (bound {allowed})",
        all.len()
    );
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name).then(|| v.parse().ok())?
        })
        .unwrap_or(-1.0)
}

#[test]
fn a_five_second_window_misses_late_events_and_the_metric_says_how_many() {
    let c = cluster(&["--shards", "3", "--refresh-interval", "200ms"]);
    let url = c.url.clone();
    let index = unique("tsmiss");
    create_events_index(&url, &index);
    let seed = now_ms() as u64;
    eprintln!("timestamp miss test seed {seed}");
    const TOTAL: usize = 3000;
    let tmp = TempDir::new("tsmiss");
    let dir = tmp.path().to_path_buf();
    let out = dir.join("out.jsonl");
    let group = unique("tsmissgroup");
    let sink = format!("file:{}", out.display());
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(BIN)
        .args([
            "consume",
            &index,
            &group,
            "--mode",
            "timestamp",
            "--safety-window",
            "5s",
            "--missed-late-check",
            "200ms",
            "--url",
            &url,
            "--sink",
            &sink,
            "--poll-interval",
            "100ms",
            "--metrics-addr",
            &metrics_addr,
        ])
        .env("INDEXSTREAM_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    produce(&url, &index, TOTAL, 20, 20_000, seed)
        .join()
        .unwrap();
    // One more event, well ahead, moves the cursor so that all the produced time has slid out
    // of the window and is counted.
    write(
        &url,
        &index,
        &[("flush".into(), json!({"@timestamp": now_ms() + 60_000}))],
    );
    let scrape = || {
        http()
            .get(format!("http://{metrics_addr}/metrics"))
            .send()
            .ok()
            .and_then(|r| r.text().ok())
            .unwrap_or_default()
    };
    let delivered = || -> HashSet<String> {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| v["id"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (missed_metric, missed_truth) = loop {
        std::thread::sleep(Duration::from_millis(500));
        let ids = delivered();
        let truth = (0..TOTAL)
            .filter(|n| !ids.contains(&format!("e{n}")))
            .count();
        let m = metric(&scrape(), "indexstream_missed_late_documents_total");
        if (ids.contains("flush") && m == truth as f64) || std::time::Instant::now() > deadline {
            break (m, truth);
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        missed_truth > 0,
        "a 5 s window with events up to 20 s late should miss some (seed {seed})"
    );
    assert_eq!(
        missed_metric, missed_truth as f64,
        "the metric reports the missed events (seed {seed})"
    );
    eprintln!("5 s window: {missed_truth} of {TOTAL} events missed, metric {missed_metric}");
}

#[test]
fn groups_describe_and_reset_a_timestamp_mode_group() {
    let c = cluster(&["--refresh-interval", "100ms"]);
    let url = c.url.as_str();
    let index = unique("tsgroups");
    create_events_index(url, &index);
    let t0: i64 = 1_700_000_000_000;
    let docs: Vec<(String, Value)> = (0..10)
        .map(|i| (format!("d{i}"), json!({"@timestamp": t0 + i * 1000})))
        .collect();
    write(url, &index, &docs);
    call(url, "POST", &format!("/{index}/_refresh"), None);
    let group = unique("tsg");
    let consume = |extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            "consume",
            &index,
            &group,
            "--mode",
            "timestamp",
            "--url",
            url,
            "--until-idle",
            "500ms",
            "--poll-interval",
            "100ms",
        ];
        args.extend(extra);
        let o = run_ok(&args);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(consume(&[]).len(), 10);
    let groups = |args: &[&str]| -> (i32, String) {
        let o = Command::new(BIN)
            .args(["groups"])
            .args(args)
            .args(["--url", url])
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let (code, text) = groups(&["describe", &group, "--format", "json"]);
    assert_eq!(code, 0, "{text}");
    let d: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(d["mode"], "timestamp");
    assert_eq!(d["cursor"], "2023-11-14T22:13:29.000000000Z");
    assert_eq!(d["window_keys"], 10);
    assert_eq!(d["lag"], 0);
    // Reset to a time: the documents at or after it are read again, and only those.
    let (code, text) = groups(&["reset", &group, "--to", "2023-11-14T22:13:25Z"]);
    assert_eq!(code, 0, "{text}");
    let mut again = consume(&[]);
    again.sort();
    assert_eq!(again, ["d5", "d6", "d7", "d8", "d9"]);
    // Reset to latest: nothing until something new arrives.
    let (code, text) = groups(&["reset", &group, "--to", "latest"]);
    assert_eq!(code, 0, "{text}");
    assert!(consume(&[]).is_empty());
    // Reset to earliest: everything again.
    let (code, text) = groups(&["reset", &group, "--to", "earliest"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(consume(&[]).len(), 10);
    let (_, text) = groups(&["describe", &group]);
    assert!(text.contains("lag         0 documents newer"), "{text}");
}
