//! The sinks that deliver elsewhere: a command run per batch (`ExecSink`) and another index
//! (`IndexSink`), each with what redelivery, refusal and failure do.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexstream::{Consumer, ExecSink, IndexSink, RunOptions, Sink, Versioning};
use serde_json::{json, Value};

use super::harness::{target, Target};

/// A fresh directory under the system's temporary one, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let p = std::env::temp_dir().join(format!(
            "indexstream-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The ids in a JSON Lines file of records, with how often each appears.
fn ids_in(path: &Path, key: &str) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let id = match key {
            "id" => v["id"].as_str().unwrap().to_string(),
            _ => v["record"]["id"].as_str().unwrap().to_string(),
        };
        *m.entry(id).or_insert(0) += 1;
    }
    m
}

async fn consume_into<S: Sink>(t: &Target, index: &str, sink: &mut S, dead_letter: Option<&Path>) {
    let mut consumer = Consumer::builder(t.client_config(), index, t.name("g"))
        .with_page_size(50)
        .with_poll_interval(Duration::from_millis(50))
        .with_commit_every(200, Duration::from_millis(300))
        .with_offsets_index(t.name("offsets"))
        .build()
        .await
        .unwrap();
    let mut opts = RunOptions::default()
        .with_until_idle(Duration::from_millis(1500))
        .with_sink_attempts(3);
    if let Some(p) = dead_letter {
        opts = opts.with_dead_letter(p);
    }
    consumer
        .run(sink, opts, std::future::pending())
        .await
        .unwrap();
    consumer.close().await.unwrap();
}

/// A command that fails every tenth run (before it keeps anything) and always refuses a batch
/// holding the document `poison`: every other id reaches it once, the failed runs were tried
/// again, and `poison` is in the dead letters with the command's exit status.
#[tokio::test]
async fn a_command_failing_some_batches_gets_every_id_once_and_a_refused_one_is_dead_lettered() {
    let t = target("exec-sink").await;
    let index = t.name("src");
    t.create_index(&index, 2, "100ms").await;
    t.write_n(&index, "d", 600).await;
    t.write(&index, &[("poison".to_string(), json!({"bad": true}))])
        .await;
    let dir = Dir::new("exec");
    let script = format!(
        r#"d='{dir}'
n=$(cat "$d/runs" 2>/dev/null || echo 0); n=$((n+1)); echo "$n" > "$d/runs"
input=$(cat)
case "$input" in *'"id":"poison"'*) exit 3;; esac
[ $((n % 10)) -eq 0 ] && {{ echo "$n" >> "$d/failed"; exit 1; }}
printf '%s\n' "$input" >> "$d/out.jsonl""#,
        dir = dir.0.display()
    );
    let mut sink = ExecSink::new(script, Duration::from_secs(10));
    let dead = dir.0.join("dead.jsonl");
    consume_into(&t, &index, &mut sink, Some(&dead)).await;
    let got = ids_in(&dir.0.join("out.jsonl"), "id");
    assert_eq!(got.len(), 600, "every id but poison reached the command");
    assert!(got.keys().all(|id| id.starts_with('d')));
    let twice: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "none twice: {twice:?}");
    // Runs that failed (every tenth) held documents that arrived all the same: tried again.
    let failed = std::fs::read_to_string(dir.0.join("failed")).unwrap_or_default();
    assert!(
        failed.lines().count() >= 1,
        "some runs failed and were tried again"
    );
    let dead_ids = ids_in(&dead, "record");
    assert_eq!(dead_ids.keys().collect::<Vec<_>>(), ["poison"]);
    let entry = std::fs::read_to_string(&dead).unwrap();
    assert!(
        entry.contains("exit status: 3"),
        "the error names the status: {entry}"
    );
}

fn record(id: &str, source: &str) -> indexstream::Record {
    indexstream::Record {
        index: "i".into(),
        id: id.into(),
        shard: None,
        seq_no: None,
        primary_term: None,
        timestamp: None,
        source: indexstream::Source::from_json(source).unwrap(),
    }
}

/// A command that outlives the timeout is killed, all of it (a subshell it started too), and
/// the run counts as failed.
#[tokio::test]
async fn a_command_past_its_timeout_is_killed_with_all_it_started_and_fails() {
    let dir = Dir::new("exec-timeout");
    let survived = dir.0.join("survived");
    let command = format!("(sleep 2; echo survived > '{}'); true", survived.display());
    let mut sink = ExecSink::new(command, Duration::from_millis(300));
    let started = std::time::Instant::now();
    let e = sink.write(&[record("x", "{}")]).await.unwrap_err();
    assert!(e.is_retriable());
    assert!(e.to_string().contains("did not finish within"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "killed, not waited for"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!survived.exists(), "the subshell was killed with the shell");
}

/// Exit 0 acknowledges only a batch the command read to its end.
#[tokio::test]
async fn a_command_that_exits_0_without_reading_its_batch_fails() {
    let big = format!("{{\"text\":\"{}\"}}", "x".repeat(100_000));
    let batch: Vec<_> = (0..5).map(|i| record(&format!("r{i}"), &big)).collect();
    let mut sink = ExecSink::new("head -c 10 > /dev/null", Duration::from_secs(10));
    let e = sink.write(&batch).await.unwrap_err();
    assert!(e.to_string().contains("without reading all"), "{e}");
    let mut sink = ExecSink::new("cat > /dev/null", Duration::from_secs(10));
    sink.write(&batch).await.unwrap();
}

/// Copies into another index with external versions: every source document once in the
/// target, each at the version of its source `_seq_no`; an update of the source after the copy
/// replaces the older copy, and a second copy of everything (another group, from the start)
/// changes nothing: each redelivery is a version conflict counted as applied.
#[tokio::test]
async fn an_index_copy_holds_each_source_document_once_at_its_seq_no() {
    let t = target("index-sink").await;
    let src = t.name("src");
    let dst = t.name("dst");
    t.create_index(&src, 3, "100ms").await;
    t.write_n(&src, "d", 300).await;
    let client = indexstream::Client::new(&t.client_config()).unwrap();
    let mut sink = IndexSink::new(client.clone(), &dst, Versioning::External);
    consume_into(&t, &src, &mut sink, None).await;
    let before = t.call("GET", &format!("/{dst}/_doc/d7"), None).await;
    // Updated after the copy: delivered again with a higher `_seq_no`, it replaces the copy.
    t.write(
        &src,
        &[("d7".to_string(), json!({"i": 7, "updated": true}))],
    )
    .await;
    consume_into(&t, &src, &mut sink, None).await;
    // Again from the start, as a crash before any commit would: nothing changes.
    let mut again = Consumer::builder(t.client_config(), &src, t.name("g2"))
        .with_poll_interval(Duration::from_millis(50))
        .with_offsets_index(t.name("offsets"))
        .build()
        .await
        .unwrap();
    let mut sink2 = IndexSink::new(client, &dst, Versioning::External);
    again
        .run(
            &mut sink2,
            RunOptions::default().with_until_idle(Duration::from_millis(1000)),
            std::future::pending(),
        )
        .await
        .unwrap();
    again.close().await.unwrap();
    assert_copy_matches(&t, &src, &dst, 300).await;
    let d7 = t.call("GET", &format!("/{dst}/_doc/d7"), None).await;
    assert_eq!(before["_source"]["updated"], Value::Null, "{before}");
    assert_eq!(
        d7["_source"]["updated"],
        json!(true),
        "the update arrived: {d7}"
    );
    assert!(
        d7["_version"].as_i64() > before["_version"].as_i64(),
        "a newer version: {before} then {d7}"
    );
}

/// The target holds the source's ids, `expected` of them, each at the version of its source
/// `_seq_no` (the source read with `seq_no_primary_term`).
pub(super) async fn assert_copy_matches(t: &Target, src: &str, dst: &str, expected: usize) {
    t.call("POST", &format!("/{src},{dst}/_refresh"), None)
        .await;
    let seq_nos = |index: String| async move {
        let body = json!({"size": 10_000, "seq_no_primary_term": true, "version": true, "query": {"match_all": {}}});
        let v = t
            .call("POST", &format!("/{index}/_search"), Some(body))
            .await;
        v["hits"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["_id"].as_str().unwrap().to_string(),
                    (
                        h["_seq_no"].as_i64().unwrap(),
                        h["_version"].as_i64().unwrap(),
                    ),
                )
            })
            .collect::<HashMap<String, (i64, i64)>>()
    };
    let source = seq_nos(src.to_string()).await;
    let target = seq_nos(dst.to_string()).await;
    assert_eq!(source.len(), expected);
    assert_eq!(
        target.len(),
        source.len(),
        "as many documents in the target"
    );
    for (id, (seq, _)) in &source {
        let (_, version) = target.get(id).unwrap_or_else(|| panic!("{id} missing"));
        assert_eq!(
            version, seq,
            "{id}: the target's version is the source _seq_no"
        );
    }
}
