//! `indexstream consume` and `indexstream groups` as scripts use them: exit statuses, SIGKILL
//! restarts, and moving offsets.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::support::{call, cluster, http, rng, run_killed, unique, write, TempDir, BIN};

/// Runs the binary; returns (exit status, stderr).
pub(super) fn run(args: &[&str]) -> (i32, String) {
    let (code, _, stderr) = run_out(args);
    (code, stderr)
}

/// Runs the binary; returns (exit status, stdout, stderr).
pub(super) fn run_out(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("INDEXSTREAM_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

pub(super) fn assert_one_error_line(stderr: &str, needle: &str) {
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors.len(),
        1,
        "exactly one error line expected:\n{stderr}"
    );
    assert!(
        errors[0].contains(needle),
        "the error line should name {needle:?}: {}",
        errors[0]
    );
}

#[test]
fn bad_input_exits_2_or_1_with_one_line_naming_the_problem() {
    let c = cluster(&[]);
    let url = c.url.as_str();
    let missing = unique("nosuch");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["consume", &missing, "g", "--url", url], 2, &missing),
        (
            vec!["consume", "idx", "g", "--url", "not a url"],
            2,
            "invalid cluster URL",
        ),
        (
            vec!["consume", "idx", "g", "--url", "http://127.0.0.1:1"],
            1,
            "cannot connect",
        ),
        (
            vec!["consume", "idx", "g", "--url", url, "--batch-size", "0"],
            2,
            "invalid --page-size (`page-size` in a config file): 0 must be between 1 and 10000",
        ),
        (
            vec![
                "consume",
                "idx",
                "g",
                "--url",
                url,
                "--poll-interval",
                "soon",
            ],
            2,
            "soon",
        ),
        (
            vec!["consume", "idx", "g", "--url", url, "--start", "yesterday"],
            2,
            "yesterday",
        ),
        (
            vec!["consume", "idx", "g", "--url", url, "--sink", "kafka:x"],
            2,
            "kafka:x",
        ),
        (
            vec![
                "consume",
                "idx",
                "g",
                "--url",
                url,
                "--config",
                "/nonexistent/indexstream.toml",
            ],
            2,
            "/nonexistent/indexstream.toml",
        ),
    ];
    for (args, status, needle) in cases {
        let (code, stderr) = run(&args);
        assert_eq!(code, status, "{args:?}: {stderr}");
        assert_one_error_line(&stderr, needle);
    }
    let (code, stderr) = run(&["consume", "idx", "g", "--no-such-flag"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--no-such-flag"));
    let tmp = TempDir::new("cfg");
    let dir = tmp.path().to_path_buf();
    let cfg = dir.join("bad.toml");
    for (content, needle) in [
        (
            "page-size = \"many\"\n",
            "bad.toml line 1: `page-size`: invalid type: string \"many\", expected a whole number",
        ),
        ("unknown-key = 1\n", "`unknown-key`: unknown key"),
        (
            "batch_size = 5\n",
            "`batch_size`: unknown key; keys are kebab-case: did you mean `batch-size`?",
        ),
        (
            "url = \"x\"\nbatch-sise = 5\n",
            "line 2: `batch-sise`: unknown key; did you mean `batch-size`?",
        ),
        ("index = \"i\"\nurl = \"x\n", "bad.toml line 2, column"),
        (
            "batch-size = 5\npage-size = 6\n",
            "given twice, also as `page-size`",
        ),
        (
            "poll-interval = \"soon\"\n",
            "line 1: `poll-interval`: invalid duration \"soon\"",
        ),
        (
            "safety-window = \"5s\"\n",
            "--safety-window applies to --mode timestamp only",
        ),
    ] {
        std::fs::write(&cfg, content).unwrap();
        let (code, stderr) = run(&[
            "consume",
            "idx",
            "g",
            "--url",
            url,
            "--config",
            cfg.to_str().unwrap(),
        ]);
        assert_eq!(code, 2, "{content}: {stderr}");
        assert_one_error_line(&stderr, needle);
    }
}

#[test]
fn the_config_file_sets_every_flag_and_flags_win() {
    let c = cluster(&["--refresh-interval", "100ms"]);
    let index = unique("cfgidx");
    write(
        &c.url,
        &index,
        &(0..5)
            .map(|i| (format!("d{i}"), json!({"i": i})))
            .collect::<Vec<_>>(),
    );
    let tmp = TempDir::new("cfgok");
    let dir = tmp.path().to_path_buf();
    let out = dir.join("out.jsonl");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, format!("url = \"{}\"\nindex = \"{index}\"\ngroup = \"g\"\nsink = \"file:{}\"\nuntil-idle = \"1s\"\npoll-interval = \"50ms\"\nbatch-size = 2\nmax-events = 100\n", c.url, out.display())).unwrap();
    let (code, stderr) = run(&[
        "consume",
        "--config",
        cfg.to_str().unwrap(),
        "--max-events",
        "3",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().lines().count(),
        3,
        "--max-events on the command line wins over the file"
    );
    // The environment wins over the file too.
    let env_run = Command::new(BIN)
        .args([
            "consume",
            "--config",
            cfg.to_str().unwrap(),
            "--group",
            "g-env",
        ])
        .env("INDEXSTREAM_LOG", "error")
        .env("INDEXSTREAM_MAX_EVENTS", "2")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(env_run.status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().lines().count(),
        3 + 2,
        "INDEXSTREAM_MAX_EVENTS wins over the file's max-events"
    );
    // `groups` reads the same file: its URL is the one used.
    let (code, stdout, stderr) = run_out(&["groups", "list", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("g "), "the group is listed: {stdout}");
    // A bad key in it is refused by `groups` too.
    std::fs::write(
        &cfg,
        "url = \"http://127.0.0.1:1\"\npoll-intervall = \"1s\"\n",
    )
    .unwrap();
    let (code, _, stderr) = run_out(&["groups", "list", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert_one_error_line(&stderr, "did you mean `poll-interval`?");
}

struct Killed {
    /// Bytes of complete lines in the output when the consumer was killed.
    file_len: usize,
    /// Committed `_seq_no` per shard at that moment.
    committed: HashMap<u32, i64>,
}

fn committed(url: &str, index: &str, group: &str) -> HashMap<u32, i64> {
    let uuid = call(url, "GET", &format!("/{index}/_settings"), None)[index]["settings"]["index"]
        ["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let shards: u32 = call(url, "GET", &format!("/{index}/_settings"), None)[index]["settings"]
        ["index"]["number_of_shards"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut out = HashMap::new();
    for s in 0..shards {
        let id = format!("{group}%7C{uuid}%7C{s}");
        let resp = http()
            .get(format!("{url}/indexstream-offsets/_doc/{id}"))
            .send()
            .unwrap();
        let v: Value = resp.json().unwrap();
        out.insert(s, v["_source"]["seq_no"].as_i64().unwrap_or(-1));
    }
    out
}

fn lines_of(text: &str) -> Vec<(String, u32, i64)> {
    text.lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}"));
            (
                v["id"].as_str().unwrap().to_string(),
                v["shard"].as_u64().unwrap() as u32,
                v["seq_no"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The consumer killed with SIGKILL at 10 random moments while a producer writes: the union of
/// its output holds every id, and what a restart repeats is only what was delivered after the
/// last commit before the kill.
#[test]
fn sigkill_at_random_moments_loses_nothing_and_repeats_only_uncommitted_events() {
    sigkill_restarts(false);
}

pub(super) fn sigkill_restarts(with_faults: bool) {
    let c = cluster(&["--shards", "3", "--refresh-interval", "200ms"]);
    assert!(
        !with_faults || c.server.is_some(),
        "the fault mix needs the fake's fault API: run the real-node tier with `-- --skip faults::`"
    );
    let url = c.url.clone();
    let index = unique("killed");
    call(
        &url,
        "PUT",
        &format!("/{index}"),
        Some(
            json!({"settings": {"number_of_shards": 3, "number_of_replicas": 0, "refresh_interval": "200ms"}}),
        ),
    );
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("sigkill test seed {seed}");
    let mut next = rng(seed);
    const TOTAL: usize = 20_000;
    let producer = {
        let url = url.clone();
        let index = index.clone();
        std::thread::spawn(move || {
            for chunk in 0..(TOTAL / 200) {
                let docs: Vec<_> = (0..200)
                    .map(|i| {
                        (
                            format!("e{}", chunk * 200 + i),
                            json!({"n": chunk * 200 + i, "@timestamp": "2024-01-01T00:00:00Z"}),
                        )
                    })
                    .collect();
                write(&url, &index, &docs);
                std::thread::sleep(Duration::from_millis(40));
            }
        })
    };
    if with_faults {
        let offsets = "indexstream-offsets";
        for (i, rule) in [
            json!({"api": "search", "index": index, "status": 429, "action": "error", "probability": 0.05}),
            json!({"api": "search", "index": index, "status": 503, "action": "error", "probability": 0.05}),
            json!({"api": "search", "index": index, "action": "drop", "probability": 0.03}),
            json!({"api": "search", "index": index, "action": "partial_shards", "probability": 0.05}),
            json!({"api": "stats", "index": index, "status": 503, "action": "error", "probability": 0.05}),
            json!({"api": "*", "index": index, "action": "delay", "delay_ms": 30, "probability": 0.1}),
            json!({"api": "bulk", "index": offsets, "status": 429, "action": "reject_items", "probability": 0.1}),
            json!({"api": "bulk", "index": offsets, "status": 503, "action": "error", "probability": 0.05}),
        ]
        .into_iter()
        .enumerate()
        {
            let mut rule = rule;
            rule["seed"] = json!(seed.wrapping_add(i as u64));
            call(&url, "POST", "/_fake/faults", Some(rule));
        }
    }
    let tmp = TempDir::new("kill");
    let dir = tmp.path().to_path_buf();
    let out = dir.join("out.jsonl");
    let group = unique("killgroup");
    let group = group.as_str();
    let sink = format!("file:{}", out.display());
    let common = [
        "consume",
        &index,
        group,
        "--url",
        &url,
        "--sink",
        &sink,
        "--batch-size",
        "300",
        "--commit-interval",
        "700",
        "--commit-every",
        "300ms",
        "--poll-interval",
        "100ms",
        "--member-id",
        "the-member",
    ];
    let mut kills = Vec::new();
    for _ in 0..10 {
        let file_len = run_killed(&common, Duration::from_millis(300 + next(1200)), &out);
        kills.push(Killed {
            file_len,
            committed: committed(&url, &index, group),
        });
    }
    producer.join().unwrap();
    if with_faults {
        call(&url, "DELETE", "/_fake/faults", None);
    }
    let (code, stderr) = {
        let o = Command::new(BIN)
            .args(common)
            .args(["--until-idle", "2s"])
            .env("INDEXSTREAM_LOG", "warn")
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    assert_eq!(code, Some(0), "{stderr}");
    let text = std::fs::read_to_string(&out).unwrap();
    let all = lines_of(&text);
    let ids: HashSet<&String> = all.iter().map(|(id, _, _)| id).collect();
    assert_eq!(ids.len(), TOTAL, "every id must be delivered (seed {seed})");
    let mut allowed_repeats = 0usize;
    for k in &kills {
        let before = lines_of(&text[..k.file_len]);
        let after = lines_of(&text[k.file_len..]);
        for (id, shard, seq) in &after {
            let c = k.committed.get(shard).copied().unwrap_or(-1);
            assert!(*seq > c, "{id} (shard {shard}, seq_no {seq}) was delivered again although offset {c} was committed (seed {seed})");
        }
        allowed_repeats += before
            .iter()
            .filter(|(_, shard, seq)| *seq > k.committed.get(shard).copied().unwrap_or(-1))
            .count();
    }
    let mut seen: BTreeMap<&String, usize> = BTreeMap::new();
    for (id, _, _) in &all {
        *seen.entry(id).or_default() += 1;
    }
    let repeats: usize = seen.values().map(|n| n - 1).sum();
    assert!(repeats <= allowed_repeats, "{repeats} repeats > {allowed_repeats} events delivered after the last commit before each kill (seed {seed})");
    eprintln!(
        "sigkill test: {} lines, {repeats} repeats (bound {allowed_repeats})",
        all.len()
    );
}

#[test]
fn groups_reset_moves_offsets_and_describe_shows_lag_zero_once_caught_up() {
    let c = cluster(&["--refresh-interval", "100ms"]);
    let url = c.url.as_str();
    let index = unique("reset");
    call(
        url,
        "PUT",
        &format!("/{index}"),
        Some(json!({"settings": {"number_of_shards": 2, "number_of_replicas": 0}})),
    );
    let base = 1_700_000_000_000i64;
    write(
        url,
        &index,
        &(0..40)
            .map(|i| {
                (
                    format!("d{i:02}"),
                    json!({"n": i, "@timestamp": base + i * 1000}),
                )
            })
            .collect::<Vec<_>>(),
    );
    let group = unique("g");
    let tmp = TempDir::new("reset");
    let dir = tmp.path().to_path_buf();
    let consume = |name: &str| -> Vec<String> {
        let out = dir.join(name);
        let sink = format!("file:{}", out.display());
        let (code, stderr) = run(&[
            "consume",
            &index,
            &group,
            "--url",
            url,
            "--sink",
            &sink,
            "--until-idle",
            "800ms",
            "--poll-interval",
            "50ms",
        ]);
        assert_eq!(code, 0, "{stderr}");
        let text = std::fs::read_to_string(out).unwrap_or_default();
        let mut ids: Vec<String> = lines_of(&text).into_iter().map(|(id, _, _)| id).collect();
        ids.sort();
        ids
    };
    let describe = || -> Value {
        let o = Command::new(BIN)
            .args([
                "groups", "describe", &group, "--url", url, "--format", "json",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    assert_eq!(consume("1.jsonl").len(), 40);
    let d = describe();
    assert!(
        d["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["lag"] == 0),
        "{d}"
    );
    let (code, stderr) = run(&["groups", "reset", &group, "--to", "earliest", "--url", url]);
    assert_eq!(code, 0, "{stderr}");
    assert!(describe()["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["committed"] == -1));
    assert_eq!(consume("2.jsonl").len(), 40, "earliest re-reads everything");
    let cut = "2023-11-14T22:13:50Z"; // base + 30 s: documents d30..d39 are at or after it
    let (code, stderr) = run(&["groups", "reset", &group, "--to", cut, "--url", url]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        consume("3.jsonl"),
        (30..40).map(|i| format!("d{i}")).collect::<Vec<_>>()
    );
    let (code, stderr) = run(&["groups", "reset", &group, "--to", "latest", "--url", url]);
    assert_eq!(code, 0, "{stderr}");
    assert!(describe()["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["lag"] == 0));
    write(
        url,
        &index,
        &[("late".to_string(), json!({"n": 99, "@timestamp": base}))],
    );
    assert_eq!(consume("4.jsonl"), vec!["late".to_string()]);
    let list = Command::new(BIN)
        .args(["groups", "list", "--url", url, "--format", "json"])
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["group"] == group.as_str()));
    let (code, stderr) = run(&["groups", "delete", &group, "--url", url]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _) = run(&["groups", "describe", &group, "--url", url]);
    assert_eq!(code, 2, "a deleted group has nothing to describe");
}

/// SIGTERM: stop fetching, flush, commit, release the lease, exit 0; a restart repeats nothing.
#[test]
fn sigterm_flushes_commits_and_exits_0() {
    let c = cluster(&["--refresh-interval", "100ms"]);
    let url = c.url.as_str();
    let index = unique("term");
    write(
        url,
        &index,
        &(0..500)
            .map(|i| (format!("d{i}"), json!({"i": i})))
            .collect::<Vec<_>>(),
    );
    let tmp = TempDir::new("term");
    let dir = tmp.path().to_path_buf();
    let out = dir.join("out.jsonl");
    let sink = format!("file:{}", out.display());
    let args = [
        "consume",
        &index,
        "termgroup",
        "--url",
        url,
        "--sink",
        &sink,
        "--poll-interval",
        "50ms",
        "--commit-every",
        "10s",
        "--commit-interval",
        "100000",
    ];
    let child = Command::new(BIN)
        .args(args)
        .env("INDEXSTREAM_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&out)
        .map(|t| t.lines().count())
        .unwrap_or(0)
        < 500
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the consumer did not deliver"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Its lease is released, so another member may start at once; and nothing is repeated.
    let (code, stderr) = run(&[
        "consume",
        &index,
        "termgroup",
        "--url",
        url,
        "--sink",
        &sink,
        "--until-idle",
        "800ms",
        "--member-id",
        "someone-else",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().lines().count(),
        500,
        "a restart after SIGTERM repeated documents"
    );
}
