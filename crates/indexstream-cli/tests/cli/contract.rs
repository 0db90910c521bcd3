//! The commit contract, as a user sees it: after a crash the consumer repeats no more than the
//! commit interval plus one batch, a graceful stop repeats nothing, and a crashed member's
//! restart takes its lease back at once.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::support::{call, cluster, rng, run_killed, unique, write, TempDir, BIN};

/// The ids of the complete lines of `text`, in order.
fn ids(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}"));
            v["id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// How many ids of `after` were delivered before (in `before`): what a restart repeated.
fn repeated(before: &[String], after: &[String]) -> usize {
    let seen: HashSet<&String> = before.iter().collect();
    after.iter().filter(|id| seen.contains(id)).count()
}

fn create(url: &str, index: &str, shards: u32) {
    call(
        url,
        "PUT",
        &format!("/{index}"),
        Some(
            json!({"settings": {"number_of_shards": shards, "number_of_replicas": 0, "refresh_interval": "1s"}, "mappings": {"properties": {"@timestamp": {"type": "date"}}}}),
        ),
    );
}

fn now_iso_ms(offset_ms: i64) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + offset_ms;
    indexstream::iso_millis(ms)
}

/// Catching up 200,000 documents (batch 200, commit interval 500), killed with SIGKILL at 10
/// random moments and restarted after each: nothing is missing, and each restart repeats at
/// most `commit-interval + batch-size` documents.
#[test]
fn sigkill_while_catching_up_repeats_at_most_the_commit_interval_and_a_batch() {
    let c = cluster(&["--shards", "3", "--refresh-interval", "1s"]);
    let url = c.url.as_str();
    let index = unique("catchup");
    create(url, &index, 3);
    const TOTAL: usize = 200_000;
    for chunk in 0..(TOTAL / 5000) {
        let docs: Vec<_> = (0..5000)
            .map(|i| (format!("c{}", chunk * 5000 + i), json!({"n": i})))
            .collect();
        write(url, &index, &docs);
    }
    call(url, "POST", &format!("/{index}/_refresh"), None);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("catch-up kill test seed {seed}");
    let mut next = rng(seed);
    let tmp = TempDir::new("catchup");
    let out = tmp.path().join("out.jsonl");
    let sink = format!("file:{}", out.display());
    let group = unique("g");
    let args = [
        "consume",
        &index,
        &group,
        "--url",
        url,
        "--sink",
        &sink,
        "--batch-size",
        "200",
        "--commit-interval",
        "500",
    ];
    // Each run gets going (connect, first stats) before it is killed somewhere in its catch-up.
    let mut cuts = Vec::new();
    for _ in 0..10 {
        cuts.push(run_killed(
            &args,
            Duration::from_millis(700 + next(1300)),
            &out,
        ));
    }
    let done = Command::new(BIN)
        .args(args)
        .args(["--until-idle", "2s"])
        .env("INDEXSTREAM_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(
        done.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let all = ids(&text);
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), TOTAL, "every document (seed {seed})");
    let mut worst = 0;
    for (k, cut) in cuts.iter().enumerate() {
        let end = cuts.get(k + 1).copied().unwrap_or(text.len());
        let before = ids(&text[..*cut]);
        let after = ids(&text[*cut..end.max(*cut)]);
        let r = repeated(&before, &after);
        worst = worst.max(r);
        assert!(
            r <= 500 + 200,
            "restart {k} repeated {r} documents, more than commit interval 500 + batch 200 (seed {seed})"
        );
    }
    eprintln!(
        "catch-up kill test: {} lines for {TOTAL} documents, at most {worst} repeated by a restart",
        all.len()
    );
}

/// A producer writes 3,000 events/s; the consumer is stopped with SIGTERM and started again:
/// the restart repeats nothing, in either mode.
#[test]
fn sigterm_under_live_ingest_then_a_restart_repeats_nothing() {
    for mode in ["exact", "timestamp"] {
        let c = cluster(&["--shards", "3", "--refresh-interval", "1s"]);
        let url = c.url.clone();
        let index = unique(&format!("term-{mode}"));
        create(&url, &index, 3);
        let producer = {
            let (url, index) = (url.clone(), index.clone());
            std::thread::spawn(move || {
                // 3,000/s for 6 s, in bulks of 300 every 100 ms.
                for chunk in 0..60 {
                    let ts = now_iso_ms(0);
                    let docs: Vec<_> = (0..300)
                        .map(|i| {
                            (
                                format!("t{}", chunk * 300 + i),
                                json!({"@timestamp": ts, "n": i}),
                            )
                        })
                        .collect();
                    write(&url, &index, &docs);
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let tmp = TempDir::new("term");
        let out = tmp.path().join("out.jsonl");
        let sink = format!("file:{}", out.display());
        let group = unique("g");
        let mut args = vec![
            "consume",
            &index,
            &group,
            "--url",
            &url,
            "--sink",
            &sink,
            "--poll-interval",
            "200ms",
        ];
        if mode == "timestamp" {
            args.extend(["--mode", "timestamp", "--safety-window", "5s"]);
        }
        let mut child = Command::new(BIN)
            .args(&args)
            .env("INDEXSTREAM_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(3));
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{mode}: SIGTERM exits 0");
        let first = std::fs::read_to_string(&out).unwrap();
        let before = ids(&first);
        producer.join().unwrap();
        let rest = Command::new(BIN)
            .args(&args)
            .args(["--until-idle", "3s"])
            .env("INDEXSTREAM_LOG", "warn")
            .output()
            .unwrap();
        assert_eq!(
            rest.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&rest.stderr)
        );
        let text = std::fs::read_to_string(&out).unwrap();
        let after = ids(&text[first.len()..]);
        assert!(
            !before.is_empty() && !after.is_empty(),
            "{mode}: both runs delivered"
        );
        assert_eq!(
            repeated(&before, &after),
            0,
            "{mode}: the restart after SIGTERM repeated documents"
        );
        let distinct: HashSet<String> = ids(&text).into_iter().collect();
        assert_eq!(distinct.len(), 18_000, "{mode}: every document");
    }
}

/// `kill -9` with the default member id (the host name), then an immediate restart: it takes
/// its own lease back and delivers at once, not after the 30 s lease time to live; a second
/// live process with the same default id is refused, naming the member id.
#[test]
fn a_crashed_member_restarts_at_once_and_a_live_one_is_not_doubled() {
    let c = cluster(&["--refresh-interval", "200ms"]);
    let url = c.url.as_str();
    let index = unique("restart");
    create(url, &index, 1);
    write(
        url,
        &index,
        &(0..100)
            .map(|i| (format!("a{i}"), json!({"n": i})))
            .collect::<Vec<_>>(),
    );
    let tmp = TempDir::new("restart");
    let out = tmp.path().join("out.jsonl");
    let sink = format!("file:{}", out.display());
    let group = unique("g");
    let args = [
        "consume",
        &index,
        &group,
        "--url",
        url,
        "--sink",
        &sink,
        "--poll-interval",
        "200ms",
    ];
    let mut first = Command::new(BIN)
        .args(args)
        .env("INDEXSTREAM_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    // While it lives, a second process with the same (default) member id is refused.
    let second = Command::new(BIN)
        .args(args)
        .env("INDEXSTREAM_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("member id"), "{stderr}");
    first.kill().unwrap();
    first.wait().unwrap();
    write(
        url,
        &index,
        &(0..100)
            .map(|i| (format!("b{i}"), json!({"n": i})))
            .collect::<Vec<_>>(),
    );
    let started = Instant::now();
    let again = Command::new(BIN)
        .args(args)
        .args(["--until-idle", "1s"])
        .env("INDEXSTREAM_LOG", "warn")
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let all = ids(&std::fs::read_to_string(&out).unwrap());
    assert!(all.iter().any(|id| id == "b99"), "the restart delivered");
    assert!(
        took < Duration::from_secs(10),
        "the restart took {took:?}: it waited for the lease to expire"
    );
}

/// Timestamp mode, 30 s window, 2,000 events/s written meanwhile, 20% of them up to 20 s late,
/// killed with SIGKILL 5 times and restarted: nothing is missing, and each restart repeats at
/// most `commit-interval + batch-size` (the window is committed incrementally, so
/// `--commit-interval` holds in this mode too).
#[test]
fn timestamp_mode_sigkill_repeats_at_most_the_commit_interval_and_a_batch() {
    let c = cluster(&["--shards", "3", "--refresh-interval", "200ms"]);
    let url = c.url.clone();
    let index = unique("tscontract");
    super::timestamp::create_events_index(&url, &index);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("timestamp contract test seed {seed}");
    let mut next = rng(seed ^ 0x7e57);
    const TOTAL: usize = 20_000;
    let producer = super::timestamp::produce_at(&url, &index, TOTAL, 2000, 20, 20_000, seed);
    let tmp = TempDir::new("tscontract");
    let out = tmp.path().join("out.jsonl");
    let sink = format!("file:{}", out.display());
    let group = unique("g");
    let args = [
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
        "--poll-interval",
        "100ms",
    ];
    let mut cuts = Vec::new();
    for _ in 0..5 {
        cuts.push(run_killed(
            &args,
            Duration::from_millis(800 + next(1200)),
            &out,
        ));
    }
    producer.join().unwrap();
    let done = Command::new(BIN)
        .args(args)
        .args(["--until-idle", "3s"])
        .env("INDEXSTREAM_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(
        done.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let all = ids(&text);
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), TOTAL, "every event (seed {seed})");
    let mut worst = 0;
    for (k, cut) in cuts.iter().enumerate() {
        let end = cuts.get(k + 1).copied().unwrap_or(text.len());
        let r = repeated(&ids(&text[..*cut]), &ids(&text[*cut..end.max(*cut)]));
        worst = worst.max(r);
        assert!(
            r <= 300 + 200,
            "restart {k} repeated {r} events, more than commit interval 300 + batch 200 (seed {seed})"
        );
    }
    eprintln!(
        "timestamp contract test: {} lines for {TOTAL} events, at most {worst} repeated by a restart",
        all.len()
    );
}
