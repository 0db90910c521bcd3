//! Timestamp mode (`Mode::Timestamp`): same-timestamp documents, late documents inside and
//! outside the safety window, the window carried across restarts, field types and formats,
//! documents without a timestamp, the window cap, the query filter and `--start`.

use std::collections::HashSet;
use std::time::Duration;

use indexstream::{
    Consumer, ConsumerBuilder, Error, MemorySink, OnMissingTimestamp, Record, RunOptions,
    StartFrom, TimestampSettings,
};
use serde_json::{json, Value};

use super::harness::{counts, target, Running, Target};

/// A timestamp-mode builder with short intervals for tests.
pub(super) fn ts_builder(
    t: &Target,
    index: &str,
    group: &str,
    window: Duration,
) -> ConsumerBuilder {
    Consumer::builder(t.client_config(), index, group)
        .with_poll_interval(Duration::from_millis(50))
        .with_commit_every(200, Duration::from_millis(200))
        .with_offsets_index(t.name("offsets"))
        .timestamp(ts_settings(window))
}

/// Timestamp settings with this window and a short missed-late check interval.
pub(super) fn ts_settings(window: Duration) -> TimestampSettings {
    TimestampSettings::default()
        .with_safety_window(window)
        .with_missed_late_check_every(Duration::from_millis(100))
}

/// Runs a builder until idle for `idle`; returns what it delivered.
async fn run_until_idle(
    builder: ConsumerBuilder,
    idle: Duration,
) -> indexstream::Result<Vec<Record>> {
    let mut consumer = builder.build().await?;
    let mut sink = MemorySink::default();
    let r = consumer
        .run(
            &mut sink,
            RunOptions::default()
                .with_until_idle(idle)
                .with_max_consecutive_failures(0),
            std::future::pending(),
        )
        .await;
    consumer.close().await?;
    r?;
    let records = sink.records.lock().unwrap().clone();
    Ok(records)
}

/// The value of one metric (without labels) in Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name).then(|| v.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
}

fn assert_each_once(records: &[Record], expected: impl IntoIterator<Item = String>) {
    let c = counts(records);
    let expected: HashSet<String> = expected.into_iter().collect();
    let missing: Vec<_> = expected
        .iter()
        .filter(|id| !c.contains_key(*id))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "not delivered (first 5): {missing:?}");
    let twice: Vec<_> = c.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "delivered twice (first 5): {twice:?}");
    let extra: Vec<_> = c
        .keys()
        .filter(|id| !expected.contains(*id))
        .take(5)
        .collect();
    assert!(extra.is_empty(), "not expected: {extra:?}");
}

pub(super) const T0: i64 = 1_700_000_000_000;

pub(super) fn at(ms: i64) -> Value {
    json!(indexstream::iso_millis(ms))
}

#[tokio::test]
async fn ten_thousand_documents_sharing_one_timestamp_in_batches_of_100_none_skipped_none_twice() {
    let t = target("same-ts").await;
    let index = t.name("same");
    t.create_index(&index, 3, "100ms").await;
    let docs: Vec<(String, Value)> = (0..10_000)
        .map(|i| (format!("s{i}"), json!({"i": i, "@timestamp": at(T0)})))
        .collect();
    for chunk in docs.chunks(2500) {
        t.write(&index, chunk).await;
    }
    t.call("POST", &format!("/{index}/_refresh"), None).await;
    let group = t.name("g");
    let builder = ts_builder(&t, &index, &group, Duration::from_secs(30)).with_page_size(100);
    let got = run_until_idle(builder, Duration::from_millis(500))
        .await
        .unwrap();
    assert_each_once(&got, docs.iter().map(|(id, _)| id.clone()));
    // The window (all 10,000 keys) was committed: a restart delivers none of them again.
    let builder = ts_builder(&t, &index, &group, Duration::from_secs(30)).with_page_size(100);
    let again = run_until_idle(builder, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(
        again.is_empty(),
        "{} delivered again after a restart",
        again.len()
    );
}

#[tokio::test]
async fn late_documents_inside_the_window_are_delivered_once_counted_and_survive_a_restart() {
    let t = target("late").await;
    let index = t.name("late");
    t.create_index(&index, 2, "100ms").await;
    let group = t.name("g");
    let window = Duration::from_secs(30);
    let first: Vec<(String, Value)> = (0..100)
        .map(|i| (format!("a{i}"), json!({"@timestamp": at(T0 + i * 1000)})))
        .collect();
    t.write(&index, &first).await;
    // Written all at once with old timestamps: a document made visible by a refresh after the
    // cursor passed it by more than the window would be missed (that is what the window is
    // for), so make them visible before reading.
    t.call("POST", &format!("/{index}/_refresh"), None).await;
    let got = run_until_idle(
        ts_builder(&t, &index, &group, window),
        Duration::from_millis(400),
    )
    .await
    .unwrap();
    assert_each_once(&got, first.iter().map(|(id, _)| id.clone()));
    // The cursor is at T0+99 s. Late documents 5..25 s behind it are inside the window; the
    // documents already delivered there are read again by the restarted consumer and dropped.
    let late: Vec<(String, Value)> = (0..10)
        .map(|i| {
            (
                format!("late{i}"),
                json!({"@timestamp": at(T0 + 99_000 - 5_000 - i * 2_000)}),
            )
        })
        .collect();
    t.write(&index, &late).await;
    let consumer = ts_builder(&t, &index, &group, window)
        .build()
        .await
        .unwrap();
    let telemetry = consumer.telemetry();
    let run = Running::start(
        consumer,
        RunOptions::default().with_until_idle(Duration::from_millis(400)),
    );
    wait_for(|| run.records.lock().unwrap().len() >= 10).await;
    let records = run.records.clone();
    run.stop().await.unwrap();
    let got = records.lock().unwrap().clone();
    assert_each_once(&got, late.iter().map(|(id, _)| id.clone()));
    let m = telemetry.encode_metrics();
    assert_eq!(metric(&m, "indexstream_late_documents_total"), 10.0);
    assert_eq!(metric(&m, "indexstream_lateness_seconds_count"), 10.0);
    // Lateness 5 s .. 23 s: the histogram's sum says so.
    let sum = metric(&m, "indexstream_lateness_seconds_sum");
    assert!(
        (sum - (5.0 + 7.0 + 9.0 + 11.0 + 13.0 + 15.0 + 17.0 + 19.0 + 21.0 + 23.0)).abs() < 0.01,
        "{sum}"
    );
    assert!(telemetry.report().contains("Late Documents: 10"));
}

#[tokio::test]
async fn a_window_shorter_than_the_lateness_misses_documents_and_the_metric_counts_them() {
    let t = target("missed").await;
    let index = t.name("missed");
    t.create_index(&index, 2, "100ms").await;
    let group = t.name("g");
    let in_order: Vec<(String, Value)> = (0..=60)
        .map(|i| (format!("o{i}"), json!({"@timestamp": at(T0 + i * 1000)})))
        .collect();
    t.write(&index, &in_order).await;
    t.call("POST", &format!("/{index}/_refresh"), None).await;
    let consumer = ts_builder(&t, &index, &group, Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    let telemetry = consumer.telemetry();
    let run = Running::start(consumer, RunOptions::default());
    wait_for(|| run.records.lock().unwrap().len() >= 61).await;
    // Cursor at T0+60 s, window 5 s: 7 documents 15..45 s late cannot be read any more, 3
    // documents 1..3 s late are.
    let too_late: Vec<(String, Value)> = (0..7)
        .map(|i| {
            (
                format!("miss{i}"),
                json!({"@timestamp": at(T0 + 15_000 + i * 5_000)}),
            )
        })
        .collect();
    let caught: Vec<(String, Value)> = (1..=3)
        .map(|i| {
            (
                format!("caught{i}"),
                json!({"@timestamp": at(T0 + 60_000 - i * 1_000)}),
            )
        })
        .collect();
    t.write(&index, &too_late).await;
    t.write(&index, &caught).await;
    let m = || telemetry.encode_metrics();
    wait_for(|| metric(&m(), "indexstream_missed_late_documents_total") >= 7.0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let records = run.records.clone();
    run.stop().await.unwrap();
    let got = records.lock().unwrap().clone();
    assert_each_once(
        &got,
        in_order.iter().chain(&caught).map(|(id, _)| id.clone()),
    );
    let text = m();
    assert_eq!(
        metric(&text, "indexstream_missed_late_documents_total"),
        7.0
    );
    assert_eq!(
        metric(&text, "indexstream_missed_late_documents_in_horizon"),
        7.0
    );
    assert_eq!(metric(&text, "indexstream_late_documents_total"), 3.0);
}

pub(super) async fn wait_for(mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn nested_and_dotted_fields_iso_offsets_epoch_millis_and_date_nanos_compare_in_utc() {
    let t = target("formats").await;
    let group = t.name("g");
    // event.ingested as a nested object and as a dotted key; ISO 8601 with offsets and
    // epoch_millis in one date field (format "strict_date_optional_time||epoch_millis").
    let idx = t.name("dotted");
    t.call(
        "PUT",
        &format!("/{idx}"),
        Some(
            json!({"settings": {"number_of_shards": 2, "number_of_replicas": 0},
        "mappings": {"properties": {"event": {"properties": {"ingested": {"type": "date"}}}}}}),
        ),
    )
    .await;
    let docs = vec![
        // 10:00+02:00 is 08:00 UTC: the earliest although its text sorts last.
        (
            "c".to_string(),
            json!({"event": {"ingested": "2024-01-01T10:00:00+02:00"}}),
        ),
        (
            "a".to_string(),
            json!({"event.ingested": "2024-01-01T08:00:01Z"}),
        ),
        (
            "b".to_string(),
            json!({"event": {"ingested": 1_704_096_002_000i64}}),
        ), // 08:00:02Z
        (
            "d".to_string(),
            json!({"event": {"ingested": "2024-01-01T03:00:03-05:00"}}),
        ), // 08:00:03Z
    ];
    t.write(&idx, &docs).await;
    // Order is only defined among visible documents: make them all visible first.
    t.call("POST", &format!("/{idx}/_refresh"), None).await;
    let mut b = ts_builder(&t, &idx, &group, Duration::from_secs(30)).build_config();
    b.timestamp_field = "event.ingested".into();
    let got = run_until_idle(ConsumerBuilder::from_config(b), Duration::from_millis(400))
        .await
        .unwrap();
    let order: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(order, ["c", "a", "b", "d"]);
    assert_eq!(got[0].timestamp, Some(json!("2024-01-01T08:00:00.000Z")));
    // date_nanos: documents a nanosecond apart are ordered and each delivered once.
    let nanos = t.name("nanos");
    t.call(
        "PUT",
        &format!("/{nanos}"),
        Some(
            json!({"settings": {"number_of_shards": 1, "number_of_replicas": 0},
        "mappings": {"properties": {"@timestamp": {"type": "date_nanos"}}}}),
        ),
    )
    .await;
    let docs: Vec<(String, Value)> = (0..5)
        .map(|i| {
            (
                format!("n{i}"),
                json!({"@timestamp": format!("2024-01-01T00:00:00.00000000{}Z", 5 - i)}),
            )
        })
        .collect();
    t.write(&nanos, &docs).await;
    // A document without the field sorts last with the sentinel Long.MAX_VALUE, which as
    // date_nanos would read as a date in 2262: it must not be delivered.
    t.write(&nanos, &[("untimed".into(), json!({"x": 1}))])
        .await;
    t.call("POST", &format!("/{nanos}/_refresh"), None).await;
    let got = run_until_idle(
        ts_builder(&t, &nanos, &t.name("g2"), Duration::from_secs(30)),
        Duration::from_millis(400),
    )
    .await
    .unwrap();
    let order: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(order, ["n4", "n3", "n2", "n1", "n0"]);
    assert_eq!(
        got[0].timestamp,
        Some(json!("2024-01-01T00:00:00.000000001Z"))
    );
    // A long field holding epoch milliseconds.
    let long = t.name("long");
    t.call(
        "PUT",
        &format!("/{long}"),
        Some(json!({"mappings": {"properties": {"ts": {"type": "long"}}}})),
    )
    .await;
    t.write(
        &long,
        &[
            ("x".into(), json!({"ts": T0 + 1})),
            ("y".into(), json!({"ts": T0})),
        ],
    )
    .await;
    t.call("POST", &format!("/{long}/_refresh"), None).await;
    let mut b = ts_builder(&t, &long, &t.name("g3"), Duration::from_secs(30)).build_config();
    b.timestamp_field = "ts".into();
    let got = run_until_idle(ConsumerBuilder::from_config(b), Duration::from_millis(400))
        .await
        .unwrap();
    let order: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(order, ["y", "x"]);
    // A keyword field is refused, naming the index and the type.
    let kw = t.name("kw");
    t.call(
        "PUT",
        &format!("/{kw}"),
        Some(json!({"mappings": {"properties": {"@timestamp": {"type": "keyword"}}}})),
    )
    .await;
    let r = run_until_idle(
        ts_builder(&t, &kw, &t.name("g4"), Duration::from_secs(30)),
        Duration::from_millis(200),
    )
    .await;
    match r {
        Err(Error::Config {
            field: "timestamp_field",
            reason,
        }) => {
            assert!(
                reason.contains("keyword") && reason.contains(&kw),
                "{reason}"
            )
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[tokio::test]
async fn documents_without_a_timestamp_are_counted_and_skipped_or_stop_the_consumer() {
    let t = target("missing").await;
    let index = t.name("m");
    // With ignore_malformed, an unparseable timestamp leaves the document in the index without
    // an indexed timestamp (without it, the cluster rejects the document at write time).
    t.call("PUT", &format!("/{index}"), Some(json!({"settings": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "100ms"},
        "mappings": {"properties": {"@timestamp": {"type": "date", "ignore_malformed": true}}}}))).await;
    t.write(
        &index,
        &[
            ("ok1".into(), json!({"@timestamp": at(T0)})),
            ("none".into(), json!({"other": 1})),
            ("nul".into(), json!({"@timestamp": null})),
            ("bad".into(), json!({"@timestamp": "yesterday-ish"})),
            ("ok2".into(), json!({"@timestamp": at(T0 + 1)})),
        ],
    )
    .await;
    let consumer = ts_builder(&t, &index, &t.name("skip"), Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let telemetry = consumer.telemetry();
    let run = Running::start(consumer, RunOptions::default());
    wait_for(|| run.records.lock().unwrap().len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let records = run.records.clone();
    run.stop().await.unwrap();
    assert_each_once(
        &records.lock().unwrap(),
        ["ok1".to_string(), "ok2".to_string()],
    );
    assert_eq!(
        metric(
            &telemetry.encode_metrics(),
            "indexstream_missing_timestamp_documents_total"
        ),
        3.0
    );
    let builder = ts_builder(&t, &index, &t.name("fail"), Duration::from_secs(30)).timestamp(
        ts_settings(Duration::from_secs(30)).with_on_missing_timestamp(OnMissingTimestamp::Fail),
    );
    let r = run_until_idle(builder, Duration::from_millis(300)).await;
    match r {
        Err(Error::MissingTimestamp { id, reason, .. }) => {
            assert!(["none", "nul", "bad"].contains(&id.as_str()), "{id}");
            if id == "bad" {
                assert!(reason.contains("yesterday-ish"), "{reason}");
            }
        }
        other => panic!("expected MissingTimestamp, got {other:?}"),
    }
}

#[tokio::test]
async fn the_window_cap_bounds_memory_without_delivering_twice() {
    let t = target("cap").await;
    let index = t.name("cap");
    t.create_index(&index, 1, "100ms").await;
    let group = t.name("g");
    let docs: Vec<(String, Value)> = (0..300)
        .map(|i| (format!("c{i}"), json!({"@timestamp": at(T0 + i * 10)})))
        .collect();
    t.write(&index, &docs).await;
    t.call("POST", &format!("/{index}/_refresh"), None).await;
    let cap_cfg = || {
        ts_builder(&t, &index, &group, Duration::from_secs(60))
            .with_page_size(40)
            .timestamp(ts_settings(Duration::from_secs(60)).with_window_cap(50))
    };
    let consumer = cap_cfg().build().await.unwrap();
    let telemetry = consumer.telemetry();
    let run = Running::start(consumer, RunOptions::default());
    wait_for(|| run.records.lock().unwrap().len() >= 300).await;
    // Rounds re-read the window many times meanwhile.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let records = run.records.clone();
    run.stop().await.unwrap();
    assert_each_once(
        &records.lock().unwrap(),
        docs.iter().map(|(id, _)| id.clone()),
    );
    let m = telemetry.encode_metrics();
    assert!(metric(&m, "indexstream_window_keys") <= 50.0);
    assert!(metric(&m, "indexstream_window_cap_evictions_total") >= 250.0);
    // After a restart, nothing again.
    let again = run_until_idle(cap_cfg(), Duration::from_millis(300))
        .await
        .unwrap();
    assert!(again.is_empty(), "{} delivered again", again.len());
}

#[tokio::test]
async fn a_query_filter_and_a_start_time_select_what_is_read() {
    let t = target("query").await;
    let index = t.name("q");
    t.create_index(&index, 2, "100ms").await;
    let docs: Vec<(String, Value)> = (0..40)
        .map(|i| {
            let outcome = if i % 2 == 0 { "failure" } else { "success" };
            (
                format!("q{i}"),
                json!({"@timestamp": at(T0 + i * 1000), "outcome": outcome}),
            )
        })
        .collect();
    t.write(&index, &docs).await;
    t.call("POST", &format!("/{index}/_refresh"), None).await;
    let builder = ts_builder(&t, &index, &t.name("g"), Duration::from_secs(30))
        .with_start(StartFrom::Time(T0 + 20_000))
        .timestamp(
            ts_settings(Duration::from_secs(30))
                .with_query(Some(json!({"term": {"outcome": "failure"}}))),
        );
    let got = run_until_idle(builder, Duration::from_millis(400))
        .await
        .unwrap();
    assert_each_once(&got, (20..40).step_by(2).map(|i| format!("q{i}")));
}

#[tokio::test]
async fn a_group_committed_in_one_mode_is_refused_in_the_other() {
    let t = target("ts-mode").await;
    let index = t.name("x");
    t.create_index(&index, 1, "100ms").await;
    t.write(&index, &[("a".into(), json!({"@timestamp": at(T0)}))])
        .await;
    let group = t.name("g");
    let got = t
        .consume(&index, &group, Duration::from_millis(300), |b| b)
        .await;
    assert_eq!(got.len(), 1);
    let r = run_until_idle(
        ts_builder(&t, &index, &group, Duration::from_secs(30)),
        Duration::from_millis(300),
    )
    .await;
    assert!(matches!(r, Err(Error::ModeMismatch { .. })), "{r:?}");
    // And the other way round.
    let g2 = t.name("g2");
    run_until_idle(
        ts_builder(&t, &index, &g2, Duration::from_secs(30)),
        Duration::from_millis(300),
    )
    .await
    .unwrap();
    let r = run_until_idle(
        Consumer::builder(t.client_config(), &index, &g2).with_offsets_index(t.name("offsets")),
        Duration::from_millis(300),
    )
    .await;
    assert!(matches!(r, Err(Error::ModeMismatch { .. })), "{r:?}");
}

#[tokio::test]
async fn a_pattern_and_an_alias_read_indices_that_start_matching_while_running() {
    let t = target("ts-pattern").await;
    let first = t.name("logs-1");
    t.create_index(&first, 2, "100ms").await;
    let a: Vec<(String, Value)> = (0..20)
        .map(|i| (format!("a{i}"), json!({"@timestamp": at(T0 + i * 100)})))
        .collect();
    t.write(&first, &a).await;
    t.call("POST", &format!("/{first}/_refresh"), None).await;
    let alias = t.name("logs-all");
    t.call(
        "POST",
        "/_aliases",
        Some(json!({"actions": [{"add": {"index": first, "alias": alias}}]})),
    )
    .await;
    let pattern = format!("{}-logs-*", t.prefix);
    let by_pattern = ts_builder(&t, &pattern, &t.name("gp"), Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let by_alias = ts_builder(&t, &alias, &t.name("ga"), Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let (p, al) = (
        Running::start(by_pattern, RunOptions::default()),
        Running::start(by_alias, RunOptions::default()),
    );
    wait_for(|| p.records.lock().unwrap().len() >= 20 && al.records.lock().unwrap().len() >= 20)
        .await;
    // A new index (rollover) with later events; the alias moves to it.
    let second = t.name("logs-2");
    t.create_index(&second, 1, "100ms").await;
    t.call(
        "POST",
        "/_aliases",
        Some(json!({"actions": [{"add": {"index": second, "alias": alias}}]})),
    )
    .await;
    let b: Vec<(String, Value)> = (0..20)
        .map(|i| {
            (
                format!("b{i}"),
                json!({"@timestamp": at(T0 + 5_000 + i * 100)}),
            )
        })
        .collect();
    t.write(&second, &b).await;
    wait_for(|| p.records.lock().unwrap().len() >= 40 && al.records.lock().unwrap().len() >= 40)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (pr, ar) = (p.records.clone(), al.records.clone());
    p.stop().await.unwrap();
    al.stop().await.unwrap();
    let all = || a.iter().chain(&b).map(|(id, _)| id.clone());
    assert_each_once(&pr.lock().unwrap(), all());
    assert_each_once(&ar.lock().unwrap(), all());
}

#[tokio::test]
async fn a_keyword_tiebreaker_orders_documents_sharing_a_timestamp() {
    let t = target("ts-tiebreak").await;
    let index = t.name("tb");
    t.call(
        "PUT",
        &format!("/{index}"),
        Some(json!({"settings": {"number_of_shards": 2, "number_of_replicas": 0},
            "mappings": {"properties": {"@timestamp": {"type": "date"}, "uid": {"type": "keyword"}}}})),
    )
    .await;
    // The ids sort in the opposite order of the tiebreaker, so paging on `_id` would not do.
    let docs: Vec<(String, Value)> = (0..500)
        .map(|i| {
            (
                format!("id{:03}", 499 - i),
                json!({"@timestamp": at(T0), "uid": format!("u{i:03}")}),
            )
        })
        .collect();
    t.write(&index, &docs).await;
    t.call("POST", &format!("/{index}/_refresh"), None).await;
    let builder = ts_builder(&t, &index, &t.name("g"), Duration::from_secs(30))
        .with_page_size(50)
        .timestamp(ts_settings(Duration::from_secs(30)).with_tiebreaker_field("uid"));
    let got = run_until_idle(builder, Duration::from_millis(400))
        .await
        .unwrap();
    assert_each_once(&got, docs.iter().map(|(id, _)| id.clone()));
    let order: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    let expected: Vec<String> = (0..500).map(|i| format!("id{:03}", 499 - i)).collect();
    assert_eq!(order, expected, "delivered in uid order");
}
