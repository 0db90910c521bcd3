//! Sinks that deliver elsewhere, through the binary: an index copy that survives SIGKILLs, and
//! the sink options.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::support::{call, cluster, fill_numbered, http, run_killed, run_ok, seeded, unique, BIN};

/// `n → (id, _seq_no or _version)` of the documents of `index` with `n` in `from..to`.
fn by_n(
    url: &str,
    index: &str,
    from: usize,
    to: usize,
    field: &str,
) -> HashMap<u64, (String, i64)> {
    let v = call(
        url,
        "POST",
        &format!("/{index}/_search"),
        Some(
            json!({"size": to - from, "seq_no_primary_term": true, "version": true,
            "query": {"range": {"n": {"gte": from, "lt": to}}}}),
        ),
    );
    v["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h: &Value| {
            (
                h["_source"]["n"].as_u64().unwrap(),
                (
                    h["_id"].as_str().unwrap().to_string(),
                    h[field].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

/// 100,000 documents copied to another index by a consumer killed three times (SIGKILL) and
/// run to the end: the target holds every source id once (its count is the source's), each at
/// the version of its source `_seq_no`, redeliveries after the kills having been version
/// conflicts counted as applied.
#[test]
fn an_index_copy_survives_three_sigkills_with_each_document_once_at_its_seq_no() {
    let c = cluster(&[]);
    let url = c.url.as_str();
    let src = unique("copy-src");
    let dst = unique("copy-dst");
    const TOTAL: usize = 100_000;
    fill_numbered(url, &src, "c", TOTAL, "a copied document");
    let group = unique("copy-g");
    let offsets = unique("copy-offsets");
    let sink = format!("index:{dst}");
    let args = [
        "consume",
        &src,
        &group,
        "--url",
        url,
        "--offsets-index",
        &offsets,
        "--sink",
        &sink,
        "--batch-size",
        "1000",
        "--commit-interval",
        "5000",
    ];
    let mut next = seeded("index copy test");
    let nowhere = std::env::temp_dir().join(unique("no-output"));
    // What the target holds (0 before its first batch created it).
    let copied = || {
        let _ = http().post(format!("{url}/{dst}/_refresh")).send();
        http()
            .get(format!("{url}/{dst}/_count"))
            .send()
            .ok()
            .and_then(|r| r.json::<Value>().ok())
            .and_then(|v| v["count"].as_u64())
            .unwrap_or(0)
    };
    let mut at_kills = Vec::new();
    for _ in 0..3 {
        let after = Duration::from_millis(700 + next(1000));
        run_killed(&args, after, &nowhere);
        at_kills.push(copied());
    }
    eprintln!("copied when killed: {at_kills:?} of {TOTAL}");
    assert!(
        at_kills[0] < TOTAL as u64,
        "the first kill came before the copy was done: {at_kills:?}"
    );
    let mut last: Vec<&str> = args.to_vec();
    last.extend(["--until-idle", "3s"]);
    run_ok(&last);
    call(url, "POST", &format!("/{dst}/_refresh"), None);
    let count = call(url, "GET", &format!("/{dst}/_count"), None)["count"]
        .as_u64()
        .unwrap();
    assert_eq!(count, TOTAL as u64, "the target holds each document once");
    for from in (0..TOTAL).step_by(10_000) {
        let source = by_n(url, &src, from, from + 10_000, "_seq_no");
        let target = by_n(url, &dst, from, from + 10_000, "_version");
        assert_eq!(source.len(), 10_000);
        for (n, (id, seq)) in &source {
            let (tid, version) = target
                .get(n)
                .unwrap_or_else(|| panic!("{id} missing from the target"));
            assert_eq!(tid, id);
            assert_eq!(
                version, seq,
                "{id}: the target's version is the source _seq_no"
            );
        }
    }
}

/// Bad sinks, sink options and dead-letter destinations are refused before anything is read,
/// naming what is wrong.
#[test]
fn a_bad_sink_or_sink_option_is_refused_naming_it() {
    for (args, expected) in [
        (
            vec!["--sink", "exec:true", "--sink-option", "timeout=soon"],
            "timeout=\"soon\"",
        ),
        (
            vec!["--sink", "exec:true", "--sink-option", "retries=3"],
            "takes no option \"retries\"",
        ),
        (
            vec!["--sink", "file:/tmp/x", "--sink-option", "timeout=3s"],
            "the file sink takes no option",
        ),
        (
            vec!["--sink", "exec:true", "--sink-option", "timeout"],
            "expected KEY=VALUE",
        ),
        (vec!["--sink", "index:Bad"], "not a valid index name"),
        (vec!["--sink", "index:http://h:9200/"], "no index name"),
        (vec!["--sink", "mqtt:x"], "unknown sink"),
        (
            vec!["--sink", "kafka:audit", "--sink-option", "compression=zstd"],
            "zstd is not built in",
        ),
        (
            vec![
                "--sink",
                "kafka:audit",
                "--sink-option",
                "sasl-username=svc",
            ],
            "both sasl-username and sasl-password",
        ),
        (vec!["--sink", "kafka:a b"], "not a valid Kafka topic name"),
        (vec!["--sink", "index:some-index"], "its own writes"),
        (
            vec!["--sink", "index:copy", "--sink-option", "versioning=maybe"],
            "expected external or overwrite",
        ),
        (
            vec!["--sink", "http://h/x", "--sink-option", "max-records=0"],
            "max-records=\"0\"",
        ),
        (
            vec!["--sink", "https://h/x", "--sink-option", "brokers=b:9092"],
            "the http sink takes no option \"brokers\" (its options: format,",
        ),
        (vec!["--sink", "http://u:secret@h/x"], "holds credentials"),
        (
            vec!["--dead-letter", "/tmp/dl"],
            "expected file:PATH, index:NAME",
        ),
        (vec!["--dead-letter", "index:DLQ"], "not a valid index name"),
        (
            vec!["--dead-letter", "index:some-*"],
            "not a valid index name",
        ),
        (vec!["--dead-letter", "index:some-index"], "its own writes"),
        (
            vec!["--sink", "index:copy", "--dead-letter", "index:copy"],
            "the sink's index",
        ),
    ] {
        let o = std::process::Command::new(BIN)
            .args(["consume", "some-index", "g", "--url", "http://127.0.0.1:9"])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

/// A `[sink]` table in the config file: `to` is the sink, every other key one of its options
/// (a list repeats it). The options reach the sink (here exec's `timeout`, refused when bad,
/// and a command that delivers every document), and `sink-option` beside it is refused.
#[test]
fn a_sink_table_in_the_config_file_sets_the_sink_and_its_options() {
    let c = cluster(&[]);
    let url = c.url.as_str();
    let index = unique("sink-table");
    fill_numbered(url, &index, "t", 50, "x");
    let tmp = super::support::TempDir::new("sink-table");
    let out = tmp.path().join("out.jsonl");
    let cfg = tmp.path().join("c.toml");
    let file = |sink: &str| {
        std::fs::write(
            &cfg,
            format!(
                "url = \"{url}\"\nindex = \"{index}\"\ngroup = \"{}\"\noffsets-index = \"{}\"\nuntil-idle = \"1s\"\n{sink}",
                unique("g"),
                unique("offsets")
            ),
        )
        .unwrap();
    };
    let run = || {
        std::process::Command::new(BIN)
            .args(["consume", "--config", cfg.to_str().unwrap()])
            .env("INDEXSTREAM_LOG", "warn")
            .output()
            .unwrap()
    };
    file(&format!(
        "[sink]\nto = \"exec:cat >> '{}'\"\ntimeout = \"5s\"\n",
        out.display()
    ));
    let o = run();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let lines = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        lines.lines().count(),
        50,
        "every document reached the command"
    );
    for (table, expected) in [
        (
            "[sink]\nto = \"exec:true\"\ntimeout = \"soon\"\n",
            "timeout=\"soon\"",
        ),
        (
            "[sink]\nto = \"exec:true\"\nretries = 3\n",
            "takes no option \"retries\"",
        ),
        ("[sink]\ntimeout = \"5s\"\n", "needs `to`"),
        (
            "sink-option = [\"timeout=5s\"]\n[sink]\nto = \"exec:true\"\n",
            "not also in `sink-option`",
        ),
    ] {
        file(table);
        let o = run();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{table}: {err}");
        assert!(err.contains(expected), "{table}: {err}");
    }
}
