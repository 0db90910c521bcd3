//! The periodic status report: what the consumer did, in plain text.

use std::fmt::Write as _;

use super::Telemetry;

impl Telemetry {
    /// The status report of the original system, with lag per partition.
    pub fn report(&self) -> String {
        let trips: u64 = self.sync_breakers().iter().map(|(_, _, t)| t).sum();
        let s = self.state();
        let up = self.started.elapsed().as_secs_f64();
        let mut out = String::new();
        let _ = writeln!(out, "=== CONSUMER METRICS REPORT ===");
        let _ = writeln!(out, "Consumer ID: {}", self.group);
        let _ = writeln!(out, "Source Index: {}", self.index);
        let _ = writeln!(out, "Uptime: {} seconds", up as u64);
        let _ = writeln!(out, "\n--- Processing Stats ---");
        let _ = writeln!(out, "Total Processed: {}", s.delivered);
        let _ = writeln!(out, "Total Errors: {}", s.errors);
        let _ = writeln!(
            out,
            "Processing Rate: {:.2} events/sec",
            if up > 0.0 {
                s.delivered as f64 / up
            } else {
                0.0
            }
        );
        let _ = writeln!(
            out,
            "Error Rate: {:.2}%",
            if s.delivered > 0 {
                s.errors as f64 * 100.0 / s.delivered as f64
            } else {
                0.0
            }
        );
        let _ = writeln!(out, "\n--- Batch Stats ---");
        let _ = writeln!(out, "Batches Processed: {}", s.batches);
        let _ = writeln!(
            out,
            "Average Batch Size: {:.2}",
            if s.batches > 0 {
                s.batch_records as f64 / s.batches as f64
            } else {
                0.0
            }
        );
        let _ = writeln!(
            out,
            "Average Processing Time: {:.2} ms/batch",
            if s.batches > 0 {
                s.batch_time.as_secs_f64() * 1000.0 / s.batches as f64
            } else {
                0.0
            }
        );
        let _ = writeln!(
            out,
            "Max Processing Time: {} ms/batch",
            s.batch_max.as_millis()
        );
        let _ = writeln!(out, "\n--- Resilience Stats ---");
        let _ = writeln!(out, "Circuit Breaker Trips: {trips}");
        let _ = writeln!(out, "Total Retries: {}", s.retries);
        let _ = writeln!(out, "Offset Commits: {}", s.commits);
        let _ = writeln!(out, "Dead Letters: {}", s.dead_letters);
        self.sink_report(&mut out);
        let t = &s.timestamp;
        if t.active {
            let _ = writeln!(out, "\n--- Timestamp Mode ---");
            let _ = writeln!(
                out,
                "Late Documents: {} (max lateness {} ms)",
                t.late,
                t.max_lateness.as_millis()
            );
            let _ = writeln!(out, "Window Keys: {}", t.window_keys);
            let _ = writeln!(out, "Window Cap Evictions: {}", t.cap_evictions);
            let _ = writeln!(out, "Missed Late Documents: {}", t.missed_late);
            let _ = writeln!(out, "Documents Without Timestamp: {}", t.missing_timestamp);
        }
        let _ = writeln!(out, "\n--- Lag ---");
        for p in s.partitions.values() {
            let _ = writeln!(
                out,
                "{}: committed {}, checkpoint {}, lag {}",
                p.partition,
                position(p.committed),
                position(p.checkpoint),
                p.lag
            );
        }
        let _ = writeln!(out, "=============================");
        out
    }

    /// The same report as one JSON object (for `--log-format json`).
    pub fn report_json(&self) -> serde_json::Value {
        let trips: u64 = self.sync_breakers().iter().map(|(_, _, t)| t).sum();
        let s = self.state();
        let up = self.started.elapsed().as_secs_f64();
        let per = |n: f64, d: f64| if d > 0.0 { n / d } else { 0.0 };
        let t = &s.timestamp;
        let timestamp = t.active.then(|| {
            serde_json::json!({
                "late": t.late,
                "max_lateness_ms": t.max_lateness.as_millis() as u64,
                "window_keys": t.window_keys,
                "window_cap_evictions": t.cap_evictions,
                "missed_late": t.missed_late,
                "without_timestamp": t.missing_timestamp,
            })
        });
        let partitions: Vec<serde_json::Value> = s
            .partitions
            .values()
            .map(|p| {
                serde_json::json!({
                    "index": p.partition.index,
                    "uuid": p.partition.uuid,
                    "shard": p.partition.shard,
                    "committed": p.committed,
                    "checkpoint": p.checkpoint,
                    "lag": p.lag,
                })
            })
            .collect();
        serde_json::json!({
            "group": self.group,
            "index": self.index,
            "uptime_seconds": up as u64,
            "delivered": s.delivered,
            "errors": s.errors,
            "events_per_second": per(s.delivered as f64, up),
            "batches": s.batches,
            "average_batch_size": per(s.batch_records as f64, s.batches as f64),
            "average_batch_ms": per(s.batch_time.as_secs_f64() * 1000.0, s.batches as f64),
            "max_batch_ms": s.batch_max.as_millis() as u64,
            "breaker_trips": trips,
            "retries": s.retries,
            "commits": s.commits,
            "dead_letters": s.dead_letters,
            "sink": self.sink_report_json(),
            "timestamp_mode": timestamp,
            "partitions": partitions,
        })
    }
}

/// An offset or checkpoint for people: `-1` is "none yet".
fn position(seq: i64) -> String {
    if seq < 0 {
        "none".into()
    } else {
        seq.to_string()
    }
}
