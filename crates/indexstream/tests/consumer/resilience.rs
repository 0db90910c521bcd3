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
