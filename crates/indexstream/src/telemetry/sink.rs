//! The sink's side of the telemetry: records it took, failed writes by kind, retries and write
//! latency, labelled with the sink's kind (`http`, `index`, `exec`, ...), in metrics and the
//! report. Its circuit breaker is watched like the others (metrics, `/health`).

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::Telemetry;
use crate::sink::{SinkError, SinkRetry};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    group: String,
    sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkFailureLabels {
    group: String,
    sink: String,
    /// `retriable`, `refused` (the document) or `stop` (the destination).
    failure: String,
}

fn write_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

/// The sink's metrics and the counts the report shows.
#[derive(Debug)]
pub(super) struct SinkMetrics {
    sent: Family<SinkLabels, Counter>,
    failures: Family<SinkFailureLabels, Counter>,
    retries: Family<SinkLabels, Counter>,
    write_seconds: Family<SinkLabels, Histogram, fn() -> Histogram>,
    stats: Mutex<SinkStats>,
}

#[derive(Debug, Default, Clone)]
struct SinkStats {
    kind: Option<&'static str>,
    sent: u64,
    failed_writes: u64,
    retries: u64,
    writes: u64,
    write_time: Duration,
}

impl SinkMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = SinkMetrics {
            sent: Family::default(),
            failures: Family::default(),
            retries: Family::default(),
            write_seconds: Family::new_with_constructor(write_histogram),
            stats: Mutex::new(SinkStats::default()),
        };
        registry.register(
            "sink_records",
            "Records the sink took (a write that returned without an error)",
            m.sent.clone(),
        );
        registry.register(
            "sink_write_failures",
            "Failed sink writes, by failure: retriable, refused (the document), stop (the destination)",
            m.failures.clone(),
        );
        registry.register(
            "sink_retries",
            "Sink writes tried again by the consumer",
            m.retries.clone(),
        );
        registry.register(
            "sink_write_duration_seconds",
            "Time of one sink write (a batch, or one record tried again)",
            m.write_seconds.clone(),
        );
        m
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, SinkStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Telemetry {
    fn sink_labels(&self, kind: &str) -> SinkLabels {
        SinkLabels {
            group: self.group.clone(),
            sink: kind.to_string(),
        }
    }

    /// One write to the `kind` sink took `took`: `taken` records went through, then `failure`
    /// (if any) stopped it.
    pub fn sink_wrote(
        &self,
        kind: &'static str,
        took: Duration,
        taken: usize,
        failure: Option<&SinkError>,
    ) {
        let labels = self.sink_labels(kind);
        self.sink.sent.get_or_create(&labels).inc_by(taken as u64);
        self.sink
            .write_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if let Some(e) = failure {
            let failure = match e.retry() {
                SinkRetry::MayHelp => "retriable",
                SinkRetry::Stop => "stop",
                _ => "refused",
            };
            self.sink
                .failures
                .get_or_create(&SinkFailureLabels {
                    group: self.group.clone(),
                    sink: kind.to_string(),
                    failure: failure.into(),
                })
                .inc();
        }
        let mut s = self.sink.stats();
        s.kind = Some(kind);
        s.sent += taken as u64;
        s.writes += 1;
        s.write_time += took;
        s.failed_writes += failure.is_some() as u64;
    }

    /// A record the `kind` sink failed on is tried again after `delay` (retry `retry`).
    pub fn sink_retried(&self, kind: &'static str, retry: u32, delay: Duration, error: &SinkError) {
        tracing::warn!(sink = kind, retry, delay = ?delay, error = %error, "the sink failed; trying the record again");
        self.sink
            .retries
            .get_or_create(&self.sink_labels(kind))
            .inc();
        self.sink.stats().retries += 1;
        let mut s = self.state();
        s.retries += 1;
        s.errors += 1;
        s.last_retry = Some(std::time::Instant::now());
    }

    /// The `kind` sink failed so many writes in a row that its breaker opened: delivery waits
    /// for it, and nothing is dead-lettered meanwhile.
    pub fn sink_down(&self, kind: &'static str, error: &SinkError) {
        tracing::error!(sink = kind, error = %error, "the sink keeps failing: its circuit breaker is open, delivery waits for it and nothing is dead-lettered meanwhile");
    }

    /// The `kind` sink took a write again after its breaker had opened.
    pub fn sink_back(&self, kind: &'static str) {
        tracing::info!(
            sink = kind,
            "the sink took a write again: its circuit breaker closed"
        );
    }

    /// The report's sink section (nothing before the first write).
    pub(super) fn sink_report(&self, out: &mut String) {
        use std::fmt::Write as _;
        let s = self.sink.stats().clone();
        let Some(kind) = s.kind else { return };
        let _ = writeln!(out, "\n--- Sink ---");
        let _ = writeln!(out, "Sink: {kind}");
        let _ = writeln!(out, "Records Sent: {}", s.sent);
        let _ = writeln!(out, "Failed Writes: {}", s.failed_writes);
        let _ = writeln!(out, "Sink Retries: {}", s.retries);
        let _ = writeln!(
            out,
            "Average Write Time: {:.2} ms",
            if s.writes > 0 {
                s.write_time.as_secs_f64() * 1000.0 / s.writes as f64
            } else {
                0.0
            }
        );
    }

    /// The report's sink section as JSON (`null` before the first write).
    pub(super) fn sink_report_json(&self) -> serde_json::Value {
        let s = self.sink.stats().clone();
        match s.kind {
            None => serde_json::Value::Null,
            Some(kind) => serde_json::json!({
                "sink": kind,
                "sent": s.sent,
                "failed_writes": s.failed_writes,
                "retries": s.retries,
                "average_write_ms": if s.writes > 0 { s.write_time.as_secs_f64() * 1000.0 / s.writes as f64 } else { 0.0 },
            }),
        }
    }
}
