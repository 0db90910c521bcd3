//! A new user's first hour: every error one line that names the cause and exits 2 when the
//! input is wrong, JSON logs that stay JSON, words rather than debug formats, help with headings.

use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::consume::{run, run_out};
use super::support::{cluster, unique, write, TempDir, BIN};

/// The whole of stderr is one line, `error: ...`, containing `needle`.
fn only_an_error_line(stderr: &str, needle: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "stderr should be one error line:\n{stderr}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "the error line should name {needle:?}: {}",
        lines[0]
    );
}

/// `consume INDEX GROUP` to the null sink until idle, polling fast.
fn until_idle<'a>(index: &'a str, group: &'a str, url: &'a str) -> Vec<&'a str> {
    vec![
        "consume",
        index,
        group,
        "--url",
        url,
        "--sink",
        "null",
        "--until-idle",
        "300ms",
        "--poll-interval",
        "50ms",
    ]
}

/// Documents with an `@timestamp`, refreshed.
fn audit_docs(url: &str, index: &str, n: usize) {
    let docs: Vec<(String, Value)> = (0..n)
        .map(|i| {
            (
                format!("e{i}"),
                json!({"@timestamp": format!("2024-05-01T10:00:{:02}Z", i % 60), "event": {"ingested": "2024-05-01T10:01:00Z"}, "outcome": "success"}),
            )
        })
        .collect();
    write(url, index, &docs);
    super::support::call(url, "POST", &format!("/{index}/_refresh"), None);
}

#[test]
fn wrong_input_is_one_line_naming_the_cause_with_exit_2() {
    let c = cluster(&[]);
    let url = c.url.as_str();
    let index = unique("first");
    let group = unique("g");
    audit_docs(url, &index, 5);
    let host = url.trim_start_matches("http://");
    let https = format!("https://{host}");
    let https_upper = format!("HTTPS://{host}");
    let base_path = format!("{url}/opensearch");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["consume", "nosuchindex-first", &group, "--url", url],
            "no index matches \"nosuchindex-first\"",
        ),
        (
            vec!["consume", &index, &group, "--url", host],
            "no scheme: write http://",
        ),
        (
            vec!["consume", &index, &group, "--url", &https],
            "answered the TLS handshake in plain HTTP: use http://",
        ),
        (
            vec!["consume", &index, &group, "--url", &https_upper],
            "answered the TLS handshake in plain HTTP: use http://",
        ),
        (
            vec!["consume", &index, &group, "--url", &base_path],
            "base path",
        ),
        (
            vec![
                "consume",
                &index,
                &group,
                "--url",
                url,
                "--mode",
                "timestamp",
                "--timestamp-field",
                "@timestmap",
            ],
            "\"@timestmap\" is not mapped",
        ),
        (
            vec![
                "consume",
                &index,
                &group,
                "--url",
                url,
                "--sink",
                "file:/nonexistent/dir/out.jsonl",
            ],
            "cannot open the sink file:/nonexistent/dir/out.jsonl",
        ),
        (
            vec!["groups", "delete", "nosuchgroup-first", "--url", url],
            "no group \"nosuchgroup-first\"",
        ),
    ];
    for (args, needle) in cases {
        let (code, stderr) = run(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        only_an_error_line(&stderr, needle);
    }
    // With --report-interval, an error that stops a running consumer comes first, the report
    // after it.
    let (code, stderr) = run(&[
        "consume",
        &index,
        &group,
        "--url",
        url,
        "--mode",
        "timestamp",
        "--timestamp-field",
        "ts",
        "--report-interval",
        "1h",
    ]);
    assert_eq!(code, 2, "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: ") && first.contains("\"ts\" is not mapped"),
        "{stderr}"
    );
    assert!(stderr.contains("CONSUMER METRICS REPORT"), "{stderr}");
    // The date fields the index has are listed for a field that is not mapped.
    assert!(
        first.contains("@timestamp") && first.contains("event.ingested"),
        "{stderr}"
    );
    // A refused start leaves no lease behind: the group is free at once.
    let (code, stderr) = run(&until_idle(&index, &group, url));
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn json_logs_stay_json_with_the_report_the_summary_and_errors() {
    let c = cluster(&[]);
    let url = c.url.as_str();
    let index = unique("jsonlogs");
    let group = unique("g");
    audit_docs(url, &index, 7);
    let out = Command::new(BIN)
        .args([
            "consume",
            &index,
            &group,
            "--url",
            url,
            "--sink",
            "null",
            "--until-idle",
            "500ms",
            "--poll-interval",
            "50ms",
            "--log-format",
            "json",
            "--report-interval",
            "1h",
            "--log",
            "info,indexstream=debug",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let message = |v: &Value| {
        v["fields"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let report = lines
        .iter()
        .find(|v| message(v) == "status report")
        .unwrap_or_else(|| panic!("no status report in:\n{stderr}"));
    assert_eq!(report["fields"]["report"]["delivered"], 7);
    let parts = report["fields"]["report"]["partitions"].as_array().unwrap();
    assert!(!parts.is_empty() && parts.iter().all(|p| p["index"] == index.as_str()));
    let summary = lines
        .iter()
        .find(|v| message(v).starts_with("indexstream: delivered"))
        .unwrap_or_else(|| panic!("no summary in:\n{stderr}"));
    assert_eq!(
        (
            &summary["fields"]["delivered"],
            &summary["fields"]["stopped"]
        ),
        (&json!(7), &json!("idle"))
    );
    assert!(
        lines.iter().any(|v| message(v) == "committed offsets"),
        "a commit is logged at debug:\n{stderr}"
    );
    // An error is a JSON line too.
    let out = Command::new(BIN)
        .args([
            "consume",
            "nosuchindex-json",
            &group,
            "--url",
            url,
            "--log-format",
            "json",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last: Value = stderr
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .next_back()
        .unwrap();
    assert_eq!(
        (&last["level"], &last["fields"]["exit_status"]),
        (&json!("ERROR"), &json!(2))
    );
    assert!(message(&last).contains("nosuchindex-json"));
}

#[test]
fn text_output_speaks_words_and_shows_the_report_only_when_asked() {
    let c = cluster(&[]);
    let url = c.url.as_str();
    let index = unique("words");
    let group = unique("g");
    let group2 = unique("g2");
    audit_docs(url, &index, 3);
    let mut common = until_idle(&index, &group, url);
    common.extend(["--commit-interval", "1000"]);
    let (code, stderr) = run(&common);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("CONSUMER METRICS REPORT"), "{stderr}");
    assert!(
        stderr.contains("delivered 3 events") && stderr.contains("stopped: idle"),
        "{stderr}"
    );
    // `1 commit`, `2 commits`: the plural agrees with the number.
    let commits = stderr
        .split_once(" (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(c, _)| c.to_string())
        .unwrap_or_default();
    let (n, word) = commits
        .split_once(' ')
        .unwrap_or_else(|| panic!("{stderr}"));
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("{stderr}"));
    assert!(n >= 1, "{stderr}");
    assert_eq!(word, if n == 1 { "commit" } else { "commits" }, "{stderr}");
    // With --report-interval the report is printed at exit, its partitions without the uuid.
    let mut with_report = common.clone();
    with_report.extend(["--report-interval", "1h"]);
    with_report[2] = &group2;
    let (code, stderr) = run(&with_report);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("CONSUMER METRICS REPORT"), "{stderr}");
    let lag: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(": committed "))
        .collect();
    assert!(!lag.is_empty(), "{stderr}");
    for l in lag {
        let (name, _) = l.split_once(": committed ").unwrap();
        let (ix, shard) = name.rsplit_once('/').unwrap();
        assert!(ix == index && shard.parse::<u32>().is_ok(), "{l}");
    }
    // `groups describe` shows partitions by index name and shard, without the uuid.
    let (code, stdout, stderr) = run_out(&["groups", "describe", &group, "--url", url]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("UUID"), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with(&format!("{index} "))),
        "{stdout}"
    );
    // A reset to the start reads as that, not as offset -1.
    let (code, stdout, stderr) =
        run_out(&["groups", "reset", &group, "--to", "earliest", "--url", url]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("from the start") && !stdout.contains("offset -1"),
        "{stdout}"
    );
    assert!(stderr.contains("partition offset"), "{stderr}");
}

#[test]
fn help_is_grouped_and_the_demo_names_its_own_default() {
    let help = Command::new(BIN)
        .args(["consume", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for heading in [
        "Connection:",
        "Reading:",
        "Timestamp mode:",
        "Commits and the group:",
        "Resilience:",
        "Output:",
        "Observability:",
    ] {
        assert!(help.contains(heading), "no {heading} in consume --help");
    }
    let demo = Command::new(BIN).args(["demo", "--help"]).output().unwrap();
    let demo = String::from_utf8_lossy(&demo.stdout);
    assert!(
        !demo.contains("localhost:9200") && demo.contains("built-in fake cluster"),
        "{demo}"
    );
}

#[test]
fn the_example_config_file_loads_and_names_every_key() {
    // Every key of the shipped example is one `consume` knows, and the file parses: a
    // consume with it against a missing cluster fails on the connection, not on the file.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../indexstream.toml");
    let text = std::fs::read_to_string(example).unwrap();
    let tmp = TempDir::new("example");
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        text.replace("http://localhost:9200", "http://127.0.0.1:1"),
    )
    .unwrap();
    let (code, stderr) = run(&[
        "consume",
        "--config",
        cfg.to_str().unwrap(),
        "--retry-attempts",
        "1",
    ]);
    assert_eq!(code, 1, "{stderr}");
    only_an_error_line(&stderr, "cannot connect to http://127.0.0.1:1");
    // Every flag of `consume --help` but --config, --help and the positional ones has a key
    // in the example, commented out or not.
    let help = Command::new(BIN)
        .args(["consume", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let flags: Vec<&str> = help
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(flags.len() > 40, "{help}");
    for flag in flags {
        if [
            "config",
            "help",
            "log",
            "log-format",
            "batch-size",
            "consumer-id",
        ]
        .contains(&flag)
        {
            continue;
        }
        let present = text.lines().any(|l| {
            l.trim_start_matches(['#', ' '])
                .starts_with(&format!("{flag} ="))
        });
        assert!(present, "indexstream.toml has no key for --{flag}");
    }
}

#[test]
fn completions_man_page_and_the_systemd_unit_are_what_people_install() {
    let out = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let bash = String::from_utf8_lossy(&out.stdout);
    assert!(
        bash.contains("consume") && bash.contains("--safety-window"),
        "{bash}"
    );
    let out = Command::new(BIN).args(["manpage"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let man = String::from_utf8_lossy(&out.stdout);
    assert!(
        man.contains(".TH indexstream 1") && man.contains("consume"),
        "{man}"
    );
    // The unit's ExecStart is a command line this binary accepts: with the example config it
    // fails on the (absent) cluster, exit 1, not on its arguments.
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../packaging/indexstream.service"
    ))
    .unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let mut args: Vec<String> = exec.split_whitespace().skip(1).map(String::from).collect();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../indexstream.toml"
    ))
    .unwrap()
    .replace("http://localhost:9200", "http://127.0.0.1:1");
    let tmp = TempDir::new("unit");
    let cfg = tmp.path().join("indexstream.toml");
    std::fs::write(&cfg, example).unwrap();
    for a in args.iter_mut() {
        if a == "/etc/indexstream/indexstream.toml" {
            *a = cfg.to_str().unwrap().to_string();
        }
    }
    args.extend(["--retry-attempts".into(), "1".into()]);
    let out = Command::new(BIN)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(
        stderr.contains("cannot connect to http://127.0.0.1:1"),
        "{stderr}"
    );
}

#[test]
fn one_config_file_serves_both_modes_and_positional_arguments_win() {
    let c = cluster(&[]);
    let url = c.url.as_str();
    let index = unique("twomodes");
    audit_docs(url, &index, 4);
    let tmp = TempDir::new("twomodes");
    let cfg = tmp.path().join("c.toml");
    let group = unique("g");
    // A file written for timestamp mode, with an unquoted TOML date-time for `start`.
    std::fs::write(
        &cfg,
        format!(
            "url = \"{url}\"\nindex = \"{index}\"\ngroup = \"{group}\"\nmode = \"timestamp\"\nsafety-window = \"5s\"\nstart = 2024-05-01T00:00:00Z\nsink = \"null\"\nuntil-idle = \"300ms\"\npoll-interval = \"50ms\"\n"
        ),
    )
    .unwrap();
    let (code, stderr) = run(&["consume", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    // The same file for an exact-mode run: its timestamp-only key is left out, not an error.
    let exact_group = unique("g");
    let (code, stderr) = run(&[
        "consume",
        "--config",
        cfg.to_str().unwrap(),
        "--mode",
        "exact",
        "--group",
        &exact_group,
    ]);
    assert_eq!(code, 0, "{stderr}");
    // Given on the command line, it is refused.
    let (code, stderr) = run(&[
        "consume",
        "--config",
        cfg.to_str().unwrap(),
        "--mode",
        "exact",
        "--safety-window",
        "5s",
    ]);
    assert_eq!(code, 2, "{stderr}");
    only_an_error_line(&stderr, "--safety-window applies to --mode timestamp only");
    // A positional group wins over INDEXSTREAM_GROUP; with --index, one positional is the group.
    let (positional, with_index) = (unique("g"), unique("g"));
    let out = Command::new(BIN)
        .args(until_idle(&index, &positional, url))
        .env("INDEXSTREAM_GROUP", "not-this-one")
        .env("INDEXSTREAM_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut args = until_idle(&index, &with_index, url);
    args[1] = "--index";
    args.insert(2, &index);
    let (code, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}");
    for g in [&positional, &with_index] {
        let (code, _, stderr) = run_out(&["groups", "describe", g, "--url", url]);
        assert_eq!(code, 0, "group {g} was used: {stderr}");
    }
    let (code, _, _) = run_out(&["groups", "describe", "not-this-one", "--url", url]);
    assert_eq!(code, 2, "the environment's group was not used");
}
