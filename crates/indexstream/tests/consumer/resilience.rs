//! The sink's failures: poison documents and dead letters.

use std::time::Duration;

use indexstream::{Consumer, MemorySink, RunOptions};
use indexstream::{SinkError, SinkRetry};

use super::harness::{counts, target};

/// A sink that always fails on one document id, counting the attempts at it.
struct Picky {
    inner: MemorySink,
    poison: String,
    refusal: SinkRetry,
    attempts: u32,
}

impl Picky {
    fn new(poison: &str, refusal: SinkRetry) -> Self {
        Picky {
            inner: MemorySink::default(),
            poison: poison.into(),
            refusal,
            attempts: 0,
        }
    }
}

impl indexstream::Sink for Picky {
    async fn write(&mut self, records: &[indexstream::Record]) -> Result<(), SinkError> {
        self.write_each(records).await.map_err(|(_, e)| e)
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.inner.flush().await
    }

    async fn write_each(
        &mut self,
        records: &[indexstream::Record],
    ) -> Result<(), (usize, SinkError)> {
        for (i, r) in records.iter().enumerate() {
            if r.id == self.poison {
                self.attempts += 1;
                let why = format!("cannot forward {}: rejected by the downstream", r.id);
                return Err((
                    i,
                    match self.refusal {
                        SinkRetry::MayHelp => SinkError::transient(why),
                        SinkRetry::Stop => SinkError::stop(why),
                        _ => SinkError::permanent(why),
                    },
                ));
            }
            self.inner
                .write(std::slice::from_ref(r))
                .await
                .map_err(|e| (i, e))?;
        }
        Ok(())
    }
}

/// Consumes `index` into `sink` with a dead-letter file until idle; returns the file's path and
/// the consumer's telemetry.
async fn run_with_dead_letter(
    t: &super::harness::Target,
    index: &str,
    sink: &mut Picky,
) -> (std::path::PathBuf, std::sync::Arc<indexstream::Telemetry>) {
    let dir = std::env::temp_dir().join(t.name("dlq"));
    std::fs::create_dir_all(&dir).unwrap();
    let dlq = dir.join("dead.jsonl");
    let mut consumer = Consumer::builder(t.client_config(), index, t.name("g"))
        .with_poll_interval(Duration::from_millis(50))
        .with_offsets_index(t.name("offsets"))
        .build()
        .await
        .unwrap();
    let opts = RunOptions::default()
        .with_until_idle(Duration::from_millis(600))
        .with_dead_letter(dlq.clone());
    consumer
        .run(sink, opts, std::future::pending())
        .await
        .unwrap();
    let telemetry = consumer.telemetry();
    consumer.close().await.unwrap();
    (dlq, telemetry)
}

/// A poison document lands in the dead-letter file with its error and the rest are delivered;
/// without a dead-letter file the consumer stops naming the document.
#[tokio::test]
async fn a_poison_document_goes_to_the_dead_letter_file_and_the_rest_are_delivered() {
    let t = target("poison").await;
    let index = t.name("p");
    t.create_index(&index, 1, "100ms").await;
    t.write_n(&index, "d", 50).await;
    let mut sink = Picky::new("d7", SinkRetry::MayHelp);
    let (dlq, telemetry) = run_with_dead_letter(&t, &index, &mut sink).await;
    let c = counts(&sink.inner.records.lock().unwrap());
    assert_eq!(c.len(), 49);
    assert!(!c.contains_key("d7"));
    let dead: Vec<serde_json::Value> = std::fs::read_to_string(&dlq)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["record"]["id"], "d7");
    assert!(dead[0]["error"]
        .as_str()
        .unwrap()
        .contains("rejected by the downstream"));
    assert!(telemetry
        .encode_metrics()
        .contains("indexstream_dead_letters_total 1"));
    // A failure that may pass is tried the configured number of times.
    assert_eq!(sink.attempts, RunOptions::default().sink_attempts);
    // Without a dead-letter file: a clear error naming the document, nothing skipped silently.
    let mut consumer = Consumer::builder(t.client_config(), &index, t.name("g2"))
        .with_poll_interval(Duration::from_millis(50))
        .with_offsets_index(t.name("offsets"))
        .build()
        .await
        .unwrap();
    let mut sink = Picky::new("d7", SinkRetry::MayHelp);
    let r = consumer
        .run(
            &mut sink,
            RunOptions::default().with_until_idle(Duration::from_millis(600)),
            std::future::pending(),
        )
        .await;
    consumer.close().await.unwrap();
    match r {
        Err(indexstream::Error::Poison { id, .. }) => assert_eq!(id, "d7"),
        other => panic!("expected a poison error, got {other:?}"),
    }
    // Nothing was committed past it: a run with a sink that takes it delivers d7 again.
    let again = t
        .consume(&index, &t.name("g2"), Duration::from_millis(600), |b| b)
        .await;
    assert!(
        counts(&again).contains_key("d7"),
        "d7 delivered after the stop"
    );
}

/// A refusal the sink says no retry can help goes to the dead-letter file after one attempt.
#[tokio::test]
async fn a_permanent_refusal_is_dead_lettered_without_retries() {
    let t = target("poison-permanent").await;
    let index = t.name("p");
    t.create_index(&index, 1, "100ms").await;
    t.write_n(&index, "d", 20).await;
    let mut sink = Picky::new("d3", SinkRetry::WillNotHelp);
    let (dlq, _) = run_with_dead_letter(&t, &index, &mut sink).await;
    assert_eq!(sink.attempts, 1);
    assert_eq!(counts(&sink.inner.records.lock().unwrap()).len(), 19);
    let dead = std::fs::read_to_string(&dlq).unwrap();
    assert_eq!(dead.lines().count(), 1);
    assert!(dead.contains("\"id\":\"d3\""), "{dead}");
}

/// A refusal of the destination as a whole (`SinkRetry::Stop`: no permission, a write block)
/// stops the consumer with the sink's error: nothing goes to the dead letters, and the refused
/// document is not committed past (a restart delivers it again).
#[tokio::test]
async fn a_refusal_of_the_whole_destination_stops_the_consumer_instead_of_dead_lettering() {
    let t = target("sink-stop").await;
    let index = t.name("p");
    t.create_index(&index, 1, "100ms").await;
    t.write_n(&index, "d", 20).await;
    let mut sink = Picky::new("d3", SinkRetry::Stop);
    let dir = std::env::temp_dir().join(t.name("dlq"));
    std::fs::create_dir_all(&dir).unwrap();
    let dlq = dir.join("dead.jsonl");
    let group = t.name("g");
    let mut consumer = Consumer::builder(t.client_config(), &index, &group)
        .with_poll_interval(Duration::from_millis(50))
        .with_offsets_index(t.name("offsets"))
        .build()
        .await
        .unwrap();
    let opts = RunOptions::default()
        .with_until_idle(Duration::from_millis(600))
        .with_dead_letter(dlq.clone());
    let e = consumer
        .run(&mut sink, opts, std::future::pending())
        .await
        .unwrap_err();
    consumer.close().await.unwrap();
    assert!(matches!(e, indexstream::Error::Sink(_)), "{e}");
    assert!(e.to_string().contains("cannot forward d3"), "{e}");
    assert_eq!(sink.attempts, 1, "not retried");
    assert_eq!(std::fs::read_to_string(&dlq).unwrap_or_default(), "");
    // A restart delivers d3 (and whatever followed it) again.
    let again = t
        .consume(&index, &group, Duration::from_millis(600), |b| b)
        .await;
    assert!(counts(&again).contains_key("d3"));
}

/// Consumes `index` as `group` into `sink` until idle, its dead letters going to `to`.
async fn run_dead_lettering(
    t: &super::harness::Target,
    index: &str,
    group: &str,
    sink: &mut Picky,
    to: indexstream::DeadLetter,
) -> indexstream::Result<indexstream::RunSummary> {
    let mut consumer = Consumer::builder(t.client_config(), index, group)
        .with_poll_interval(Duration::from_millis(50))
        .with_offsets_index(t.name("offsets"))
        .build()
        .await
        .unwrap();
    let opts = RunOptions::default()
        .with_until_idle(Duration::from_millis(600))
        .with_dead_letter(to);
    let r = consumer.run(sink, opts, std::future::pending()).await;
    consumer.close().await.unwrap();
    r
}

/// Dead letters to an index: one document per refused record (its id names the record's
/// index, id and `_seq_no`), holding the record as it was, the error and the time. Records
/// whose sources would clash in one mapping both fit (the record is not indexed), and a
/// second group refused the same documents overwrites the entries rather than adding to them.
#[tokio::test]
async fn poison_documents_go_to_a_dead_letter_index_once_each() {
    let t = target("dlq-index").await;
    let index = t.name("p");
    // Not mapped dynamically: `n` is a number in d3 and an object in d7.
    t.call(
        "PUT",
        &format!("/{index}"),
        Some(serde_json::json!({
            "settings": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "100ms"},
            "mappings": {"dynamic": false}
        })),
    )
    .await;
    let docs: Vec<(String, serde_json::Value)> = (0..30)
        .map(|i| {
            let n = match i {
                7 => serde_json::json!({"deep": {"x": 1}}),
                _ => serde_json::json!(i),
            };
            (format!("d{i}"), serde_json::json!({"n": n, "i": i}))
        })
        .collect();
    t.write(&index, &docs).await;
    let dlq = t.name("dlq");
    let to = indexstream::DeadLetter::parse(&format!("index:{dlq}")).unwrap();
    // d3 is refused for good; d7 (whose `n` is an object where the others hold a number) and
    // d3 both land in one index.
    for group in ["g1", "g2"] {
        let mut sink = Picky::new("d3", SinkRetry::WillNotHelp);
        run_dead_lettering(&t, &index, &t.name(group), &mut sink, to.clone())
            .await
            .unwrap();
        let mut sink7 = Picky::new("d7", SinkRetry::MayHelp);
        run_dead_lettering(
            &t,
            &index,
            &t.name(&format!("{group}-7")),
            &mut sink7,
            to.clone(),
        )
        .await
        .unwrap();
        assert_eq!(counts(&sink7.inner.records.lock().unwrap()).len(), 29);
    }
    t.call("POST", &format!("/{dlq}/_refresh"), None).await;
    let found = t
        .call(
            "POST",
            &format!("/{dlq}/_search"),
            Some(serde_json::json!({"size": 100, "sort": [{"failed_at": "asc"}]})),
        )
        .await;
    let hits = found["hits"]["hits"].as_array().unwrap();
    let mut ids: Vec<&str> = hits.iter().map(|h| h["_id"].as_str().unwrap()).collect();
    ids.sort();
    let seq = |id: &str| {
        hits.iter()
            .find(|h| h["_source"]["record"]["id"] == id)
            .map(|h| h["_source"]["record"]["seq_no"].as_i64().unwrap())
            .unwrap()
    };
    assert_eq!(
        ids,
        vec![
            format!("{index}/d3/{}", seq("d3")),
            format!("{index}/d7/{}", seq("d7"))
        ],
        "one entry per refused document, whatever the number of groups refusing it"
    );
    for h in hits {
        let src = &h["_source"];
        let id = src["record"]["id"].as_str().unwrap();
        let i: usize = id[1..].parse().unwrap();
        assert_eq!(src["record"]["source"], docs[i].1, "the record as it was");
        assert!(src["error"]
            .as_str()
            .unwrap()
            .contains(&format!("cannot forward {id}")));
        assert!(src["failed_at"].as_str().unwrap().contains('T'));
    }
    // The dead-letter index is searchable by its error.
    let by_error = t
        .call(
            "POST",
            &format!("/{dlq}/_search"),
            Some(serde_json::json!({"query": {"match": {"error": "rejected"}}})),
        )
        .await;
    assert_eq!(by_error["hits"]["total"]["value"], 2);
}

/// A dead-letter index the consumer reads (or the offsets index) is refused before anything
/// is delivered.
#[tokio::test]
async fn a_dead_letter_index_the_consumer_would_read_is_refused() {
    let t = target("dlq-loop").await;
    let index = t.name("p");
    t.create_index(&index, 1, "100ms").await;
    t.write_n(&index, "d", 5).await;
    let mut sink = Picky::new("d3", SinkRetry::WillNotHelp);
    let to = indexstream::DeadLetter::parse(&format!("index:{index}")).unwrap();
    let e = run_dead_lettering(&t, &index, &t.name("g"), &mut sink, to)
        .await
        .unwrap_err();
    assert!(matches!(e, indexstream::Error::Config { .. }), "{e}");
    assert!(e.to_string().contains("would read its own writes"), "{e}");
    assert!(sink.inner.records.lock().unwrap().is_empty());
}

/// A sink that refuses every write (as passing failures) while `down` is set.
struct Flaky {
    inner: MemorySink,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    refused: u32,
}

impl indexstream::Sink for Flaky {
    async fn write(&mut self, records: &[indexstream::Record]) -> Result<(), SinkError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            self.refused += 1;
            return Err(SinkError::transient("connection refused by the downstream"));
        }
        self.inner.write(records).await
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.inner.flush().await
    }

    fn kind(&self) -> &'static str {
        "flaky"
    }
}

/// The sink is down for the first 3 s of a run. Its circuit breaker opens after that many
/// failed writes in a row: from then on delivery waits for it instead of dead-lettering, and
/// `/health` says the sink's breaker is open. With 3 attempts per record, a threshold of 5
/// lets the first record's attempts run out before it opens (that one is dead-lettered); with
/// a threshold of 3 the breaker opens on its last attempt and nothing is. Every other id is
/// delivered once, and the sink's metrics count the failed writes.
#[tokio::test]
async fn a_sink_outage_opens_its_breaker_and_delivery_waits_instead_of_dead_lettering() {
    for (threshold, dead_lettered) in [(5, 1), (3, 0)] {
        sink_outage(threshold, dead_lettered).await;
    }
}

async fn sink_outage(threshold: u32, dead_lettered: usize) {
    let t = target(&format!("sink-outage-{threshold}")).await;
    let index = t.name("p");
    t.create_index(&index, 1, "100ms").await;
    t.write_n(&index, "d", 300).await;
    let dir = std::env::temp_dir().join(t.name("dlq"));
    std::fs::create_dir_all(&dir).unwrap();
    let dlq = dir.join("dead.jsonl");
    let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut sink = Flaky {
        inner: MemorySink::default(),
        down: down.clone(),
        refused: 0,
    };
    let mut consumer = Consumer::builder(t.client_config(), &index, t.name("g"))
        .with_page_size(50)
        .with_poll_interval(Duration::from_millis(50))
        .with_offsets_index(t.name("offsets"))
        .with_breaker(indexstream::BreakerConfig::new(
            threshold,
            Duration::from_millis(300),
        ))
        .build()
        .await
        .unwrap();
    let telemetry = consumer.telemetry();
    let opts = RunOptions::default()
        .with_until_idle(Duration::from_millis(800))
        .with_dead_letter(dlq.clone());
    let watch = tokio::spawn({
        let telemetry = telemetry.clone();
        async move {
            // Down for 3 s: the breaker opens and is probed several times meanwhile.
            let mut said_open = false;
            let until = tokio::time::Instant::now() + Duration::from_secs(3);
            while tokio::time::Instant::now() < until {
                let h = telemetry.health();
                said_open |= h
                    .reasons
                    .iter()
                    .any(|r| r == "the sink circuit breaker is open");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            down.store(false, std::sync::atomic::Ordering::SeqCst);
            said_open
        }
    });
    consumer
        .run(&mut sink, opts, std::future::pending())
        .await
        .unwrap();
    consumer.close().await.unwrap();
    assert!(watch.await.unwrap(), "/health named the open sink breaker");
    let dead = std::fs::read_to_string(&dlq).unwrap_or_default();
    let c = counts(&sink.inner.records.lock().unwrap());
    assert_eq!(
        dead.lines().count(),
        dead_lettered,
        "threshold {threshold}: {dead}"
    );
    assert_eq!(c.len() + dead.lines().count(), 300, "every id delivered");
    assert!(c.values().all(|n| *n == 1));
    assert!(
        sink.refused >= 7,
        "probed while down: {} refusals",
        sink.refused
    );
    let metrics = telemetry.encode_metrics();
    let failures = format!(
        "indexstream_sink_write_failures_total{{group=\"{}\",sink=\"flaky\",failure=\"retriable\"}} {}",
        t.name("g"),
        sink.refused
    );
    assert!(metrics.contains(&failures), "{failures} in\n{metrics}");
    assert!(metrics.contains(&format!(
        "indexstream_sink_records_total{{group=\"{}\",sink=\"flaky\"}} {}",
        t.name("g"),
        c.len()
    )));
    assert!(metrics.contains("indexstream_circuit_breaker_trips_total{group="));
    assert!(telemetry.report().contains("Sink: flaky"));
    let _ = std::fs::remove_dir_all(&dir);
}
