//! Telemetry as named events: each method below is one thing that happened, and it updates the
//! Prometheus metrics, the state behind `/health` and the status report, and writes the log
//! line, in one place.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::error::Error;
use crate::partition::PartitionStatus;

mod health;
mod report;
mod sink;

pub use health::{Health, HealthConfig, HealthStatus};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    group: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    group: String,
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    group: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    group: String,
    reason: String,
}

/// Several members per group: what this member owns and how that changed.
#[derive(Debug)]
struct MembershipMetrics {
    assigned: Gauge,
    rebalances: Counter,
    gained: Counter,
    lost: Family<ReasonLabels, Counter>,
    renewals: Family<ResultLabels, Counter>,
}

impl MembershipMetrics {
    fn register(registry: &mut Registry) -> Self {
        let m = MembershipMetrics {
            assigned: Gauge::default(),
            rebalances: Counter::default(),
            gained: Counter::default(),
            lost: Family::default(),
            renewals: Family::default(),
        };
        registry.register(
            "assigned_partitions",
            "Exact mode: partitions this member of the group owns",
            m.assigned.clone(),
        );
        registry.register(
            "rebalances",
            "Exact mode: rebalances that changed this member's partitions",
            m.rebalances.clone(),
        );
        registry.register(
            "partitions_gained",
            "Exact mode: partitions this member claimed",
            m.gained.clone(),
        );
        registry.register(
            "partitions_lost",
            "Exact mode: partitions this member gave up, by reason (released, lost)",
            m.lost.clone(),
        );
        registry.register(
            "lease_renewals",
            "Renewals of the group membership (member document and claims), by result",
            m.renewals.clone(),
        );
        m
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BreakerLabels {
    group: String,
    breaker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    group: String,
    index: String,
    partition: String,
}

#[derive(Debug, Default)]
struct State {
    /// Standing warnings of the setup (TLS verification off), always in `/health` reasons.
    warnings: Vec<String>,
    delivered: u64,
    errors: u64,
    retries: u64,
    batches: u64,
    batch_records: u64,
    batch_time: Duration,
    batch_max: Duration,
    commits: u64,
    dead_letters: u64,
    failed_polls_in_a_row: u32,
    failed_commits_in_a_row: u32,
    polls: VecDeque<(Instant, bool)>,
    last_retry: Option<Instant>,
    lag_history: VecDeque<i64>,
    partitions: BTreeMap<String, PartitionStatus>,
    behind_since: BTreeMap<String, Instant>,
    timestamp: TimestampStats,
}

/// While the window stays at its cap (every batch evicts), its warning repeats this often.
const CAP_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Timestamp mode's counts, for the report.
#[derive(Debug, Default)]
struct TimestampStats {
    active: bool,
    late: u64,
    max_lateness: Duration,
    window_keys: usize,
    cap_evictions: u64,
    /// Evictions since the last cap warning, and when that was.
    cap_unreported: u64,
    cap_warned_at: Option<Instant>,
    missed_late: u64,
    missing_timestamp: u64,
}

/// The consumer's telemetry. Share it (`Arc`) with the metrics listener and the reporter.
#[derive(Debug)]
pub struct Telemetry {
    group: String,
    index: String,
    started: Instant,
    health: HealthConfig,
    registry: Registry,
    events: Counter,
    errors: Family<KindLabels, Counter>,
    retries: Family<OperationLabels, Counter>,
    batches: Counter,
    batch_size: Histogram,
    batch_seconds: Histogram,
    fetch_seconds: Histogram,
    commits: Family<ResultLabels, Counter>,
    lag_docs: Family<PartitionLabels, Gauge>,
    lag_seconds: Family<PartitionLabels, Gauge<f64, AtomicU64>>,
    uptime: Gauge<f64, AtomicU64>,
    breaker_state: Family<BreakerLabels, Gauge>,
    breaker_trips: Family<BreakerLabels, Counter>,
    dead_letters: Counter,
    late: Counter,
    lateness: Histogram,
    window_keys_gauge: Gauge,
    window_evictions: Counter,
    missed_late_total: Counter,
    missed_late_horizon: Gauge,
    missing_timestamp: Counter,
    primary_changes: Family<PartitionLabels, Counter>,
    membership: MembershipMetrics,
    sink: sink::SinkMetrics,
    breakers: Mutex<Vec<(std::sync::Arc<crate::breaker::CircuitBreaker>, u64)>>,
    state: Mutex<State>,
}

impl Telemetry {
    /// Fresh telemetry of `group` reading `index`, with its metrics registered (prefix
    /// `indexstream`) and `health` deciding what `/health` reports.
    pub fn new(group: &str, index: &str, health: HealthConfig) -> Self {
        let mut registry = Registry::with_prefix("indexstream");
        let events = Counter::default();
        let errors = Family::<KindLabels, Counter>::default();
        let retries = Family::<OperationLabels, Counter>::default();
        let batches = Counter::default();
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 15));
        let batch_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let fetch_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let commits = Family::<ResultLabels, Counter>::default();
        let lag_docs = Family::<PartitionLabels, Gauge>::default();
        let lag_seconds = Family::<PartitionLabels, Gauge<f64, AtomicU64>>::default();
        let uptime = Gauge::<f64, AtomicU64>::default();
        let breaker_state = Family::<BreakerLabels, Gauge>::default();
        let breaker_trips = Family::<BreakerLabels, Counter>::default();
        registry.register(
            "circuit_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open",
            breaker_state.clone(),
        );
        registry.register(
            "circuit_breaker_trips",
            "Times a circuit breaker opened",
            breaker_trips.clone(),
        );
        let dead_letters = Counter::default();
        registry.register(
            "dead_letters",
            "Documents set aside in the dead-letter destination",
            dead_letters.clone(),
        );
        registry.register(
            "events_processed",
            "Documents delivered to the sink",
            events.clone(),
        );
        registry.register("errors", "Errors, by kind", errors.clone());
        registry.register(
            "retries",
            "Retried operations, by operation",
            retries.clone(),
        );
        registry.register("batches", "Batches delivered to the sink", batches.clone());
        registry.register("batch_size", "Documents per batch", batch_size.clone());
        registry.register(
            "batch_duration_seconds",
            "Time to hand a batch to the sink",
            batch_seconds.clone(),
        );
        registry.register(
            "fetch_duration_seconds",
            "Time of polls that fetched documents",
            fetch_seconds.clone(),
        );
        registry.register(
            "offset_commits",
            "Offset commits, by result",
            commits.clone(),
        );
        registry.register(
            "consumer_lag_documents",
            "Global checkpoint minus committed offset, per partition",
            lag_docs.clone(),
        );
        registry.register(
            "consumer_lag_seconds",
            "How long the partition has had documents not yet committed",
            lag_seconds.clone(),
        );
        registry.register(
            "uptime_seconds",
            "Seconds since the consumer started",
            uptime.clone(),
        );
        let late = Counter::default();
        registry.register(
            "late_documents",
            "Timestamp mode: documents delivered behind the cursor, caught by the safety window",
            late.clone(),
        );
        let lateness = Histogram::new(exponential_buckets(0.01, 2.0, 16));
        registry.register(
            "lateness_seconds",
            "Timestamp mode: how far behind the cursor late documents were",
            lateness.clone(),
        );
        let window_keys_gauge = Gauge::default();
        registry.register(
            "window_keys",
            "Timestamp mode: keys of delivered documents held in the safety window",
            window_keys_gauge.clone(),
        );
        let window_evictions = Counter::default();
        registry.register(
            "window_cap_evictions",
            "Timestamp mode: keys evicted because the window reached its cap (the effective window shrank)",
            window_evictions.clone(),
        );
        let missed_late_total = Counter::default();
        registry.register(
            "missed_late_documents",
            "Timestamp mode: documents found in time that had slid out of the window without being delivered (later than the window)",
            missed_late_total.clone(),
        );
        let missed_late_horizon = Gauge::default();
        registry.register(
            "missed_late_documents_in_horizon",
            "Timestamp mode: missed late documents known within the detection horizon",
            missed_late_horizon.clone(),
        );
        let missing_timestamp = Counter::default();
        registry.register(
            "missing_timestamp_documents",
            "Timestamp mode: documents without a usable timestamp field, not delivered",
            missing_timestamp.clone(),
        );
        let primary_changes = Family::<PartitionLabels, Counter>::default();
        registry.register(
            "primary_changes",
            "Exact mode: times a partition's primary copy moved to another node (failover or relocation)",
            primary_changes.clone(),
        );
        let membership = MembershipMetrics::register(&mut registry);
        let sink = sink::SinkMetrics::register(&mut registry);
        Telemetry {
            membership,
            sink,
            group: group.to_string(),
            index: index.to_string(),
            started: Instant::now(),
            health,
            registry,
            events,
            errors,
            retries,
            batches,
            batch_size,
            batch_seconds,
            fetch_seconds,
            commits,
            lag_docs,
            lag_seconds,
            uptime,
            breaker_state,
            breaker_trips,
            dead_letters,
            late,
            lateness,
            window_keys_gauge,
            window_evictions,
            missed_late_total,
            missed_late_horizon,
            missing_timestamp,
            primary_changes,
            breakers: Mutex::new(Vec::new()),
            state: Mutex::new(State::default()),
        }
    }

    /// Adds a standing warning: `/health` lists it among its reasons for the whole run,
    /// without changing its status.
    pub fn add_warning(&self, warning: impl Into<String>) {
        self.state().warnings.push(warning.into());
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The consumer group it reports on.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The index expression the group reads.
    pub fn index(&self) -> &str {
        &self.index
    }

    fn note_poll(s: &mut State, ok: bool) {
        let now = Instant::now();
        s.polls.push_back((now, ok));
        while s
            .polls
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(60))
        {
            s.polls.pop_front();
        }
    }

    /// Reports this breaker's state and trips in metrics, health and the report. It replaces
    /// a breaker of the same name watched before (the sink's, from an earlier run).
    pub fn watch_breaker(&self, breaker: std::sync::Arc<crate::breaker::CircuitBreaker>) {
        let mut breakers = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        breakers.retain(|(b, _)| b.name() != breaker.name());
        breakers.push((breaker, 0));
    }

    fn sync_breakers(&self) -> Vec<(String, crate::breaker::BreakerState, u64)> {
        let mut breakers = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (b, seen) in breakers.iter_mut() {
            let labels = BreakerLabels {
                group: self.group.clone(),
                breaker: b.name().to_string(),
            };
            let (state, trips) = (b.state(), b.trips());
            self.breaker_state
                .get_or_create(&labels)
                .set(state.as_gauge());
            self.breaker_trips
                .get_or_create(&labels)
                .inc_by(trips.saturating_sub(*seen));
            *seen = trips;
            out.push((b.name().to_string(), state, trips));
        }
        out
    }

    /// A request is retried after `delay` (retry number `retry` of operation `op`).
    pub fn retried(
        &self,
        op: &'static str,
        retry: u32,
        delay: Duration,
        error: &crate::client::ClientError,
    ) {
        tracing::warn!(operation = op, retry, delay = ?delay, error = %error, "retrying a request");
        self.retries
            .get_or_create(&OperationLabels {
                group: self.group.clone(),
                operation: op.into(),
            })
            .inc();
        self.errors
            .get_or_create(&KindLabels {
                group: self.group.clone(),
                kind: error.kind().into(),
            })
            .inc();
        let mut s = self.state();
        s.retries += 1;
        s.errors += 1;
        s.last_retry = Some(Instant::now());
    }

    /// A poll finished; `fetched` documents came back after `took`.
    pub fn poll_succeeded(&self, fetched: usize, took: Duration) {
        if fetched > 0 {
            self.fetch_seconds.observe(took.as_secs_f64());
        }
        let mut s = self.state();
        s.failed_polls_in_a_row = 0;
        Self::note_poll(&mut s, true);
    }

    /// A poll failed and will be retried after `backoff`.
    pub fn poll_failed(&self, error: &Error, attempt: u32, backoff: Duration) {
        tracing::warn!(error = %error, attempt, backoff = ?backoff, "poll failed; retrying");
        self.errors
            .get_or_create(&KindLabels {
                group: self.group.clone(),
                kind: error_kind(error),
            })
            .inc();
        self.retries
            .get_or_create(&OperationLabels {
                group: self.group.clone(),
                operation: "poll".into(),
            })
            .inc();
        let mut s = self.state();
        s.errors += 1;
        s.retries += 1;
        s.failed_polls_in_a_row += 1;
        s.last_retry = Some(Instant::now());
        Self::note_poll(&mut s, false);
    }

    /// A document the sink kept failing on was set aside in the dead-letter destination.
    pub fn dead_lettered(&self, record: &crate::record::Record, error: &crate::sink::SinkError) {
        tracing::error!(index = %record.index, id = %record.id, error = %error, "the sink kept failing on a document: written to the dead-letter destination");
        self.dead_letters.inc();
        self.errors
            .get_or_create(&KindLabels {
                group: self.group.clone(),
                kind: "poison".into(),
            })
            .inc();
        let mut s = self.state();
        s.errors += 1;
        s.dead_letters += 1;
    }

    /// A batch was handed to the sink.
    pub fn batch_delivered(&self, size: usize, took: Duration) {
        self.events.inc_by(size as u64);
        self.batches.inc();
        self.batch_size.observe(size as f64);
        self.batch_seconds.observe(took.as_secs_f64());
        let mut s = self.state();
        s.delivered += size as u64;
        s.batches += 1;
        s.batch_records += size as u64;
        s.batch_time += took;
        s.batch_max = s.batch_max.max(took);
    }

    /// A commit of offsets succeeded: counts it and ends a run of failed commits.
    pub fn commit_succeeded(&self) {
        self.commits
            .get_or_create(&ResultLabels {
                group: self.group.clone(),
                result: "ok".into(),
            })
            .inc();
        let mut s = self.state();
        s.commits += 1;
        s.failed_commits_in_a_row = 0;
    }

    /// A commit failed; `retrying` says whether it will be tried again.
    pub fn commit_failed(&self, error: &Error, attempt: u32, retrying: bool) {
        if retrying {
            tracing::warn!(error = %error, attempt, "commit failed; retrying");
            self.retries
                .get_or_create(&OperationLabels {
                    group: self.group.clone(),
                    operation: "commit".into(),
                })
                .inc();
        } else {
            tracing::error!(error = %error, attempt, "commit failed");
        }
        self.commits
            .get_or_create(&ResultLabels {
                group: self.group.clone(),
                result: "error".into(),
            })
            .inc();
        self.errors
            .get_or_create(&KindLabels {
                group: self.group.clone(),
                kind: error_kind(error),
            })
            .inc();
        let mut s = self.state();
        s.errors += 1;
        s.retries += retrying as u64;
        s.failed_commits_in_a_row += 1;
        if retrying {
            s.last_retry = Some(Instant::now());
        }
    }

    /// Timestamp mode: a document behind the cursor by `by` was delivered.
    pub fn late_document(&self, by: Duration) {
        self.late.inc();
        self.lateness.observe(by.as_secs_f64());
        let mut s = self.state();
        s.timestamp.active = true;
        s.timestamp.late += 1;
        s.timestamp.max_lateness = s.timestamp.max_lateness.max(by);
    }

    /// Timestamp mode: the safety window now holds `n` keys.
    pub fn window_keys(&self, n: usize) {
        self.window_keys_gauge.set(n as i64);
        let mut s = self.state();
        s.timestamp.active = true;
        s.timestamp.window_keys = n;
    }

    /// Timestamp mode: the window reached its cap and `evicted` keys left it early. Counted
    /// every time; warned about at most once a minute, with the evictions since the last
    /// warning, which this returns (`None` when the warning was held back).
    pub fn window_cap_hit(&self, evicted: u64, cap: usize, floor: Option<String>) -> Option<u64> {
        self.window_evictions.inc_by(evicted);
        let report = {
            let mut s = self.state();
            let t = &mut s.timestamp;
            t.cap_evictions += evicted;
            t.cap_unreported += evicted;
            let due = t
                .cap_warned_at
                .is_none_or(|at| at.elapsed() >= CAP_WARNING_EVERY);
            due.then(|| {
                t.cap_warned_at = Some(Instant::now());
                std::mem::take(&mut t.cap_unreported)
            })
        };
        if let Some(evicted) = report {
            tracing::warn!(evicted, cap, floor = ?floor, "the safety window reached its cap (the window_cap setting): its oldest timestamps were evicted, so late documents at or before the floor will not be delivered; raise window_cap or shorten safety_window (repeated at most once a minute while it lasts)");
        }
        report
    }

    /// Timestamp mode: `new` documents in `[from, to)` arrived later than the window and were
    /// not delivered; `known` are known within the horizon.
    pub fn missed_late(&self, new: u64, known: u64, from: &str, to: &str, window: Duration) {
        tracing::warn!(missed = new, from, to, safety_window = ?window, "documents arrived later than the safety window and were missed: raise safety_window above their lateness, read by an ingest-time field (event.ingested), or use exact mode");
        self.missed_late_total.inc_by(new);
        self.missed_late_horizon.set(known as i64);
        self.state().timestamp.missed_late += new;
    }

    /// Timestamp mode: `n` more documents without a usable timestamp were found.
    pub fn missing_timestamps(&self, n: u64) {
        self.missing_timestamp.inc_by(n);
        self.state().timestamp.missing_timestamp += n;
    }

    /// The number of partitions this member owns now.
    pub fn assigned_partitions(&self, n: usize) {
        self.membership.assigned.set(n as i64);
    }

    /// A rebalance changed this member's partitions; `gained` of them are new.
    pub fn rebalanced(&self, gained: usize) {
        self.membership.rebalances.inc();
        self.membership.gained.inc_by(gained as u64);
    }

    /// Partitions given up: `released` (handed over, or at shutdown) or `lost` (taken by
    /// another member, refused at a commit, or not renewed in time).
    pub fn partitions_lost(&self, n: usize, reason: &str) {
        self.membership
            .lost
            .get_or_create(&ReasonLabels {
                group: self.group.clone(),
                reason: reason.to_string(),
            })
            .inc_by(n as u64);
    }

    /// A renewal of the membership (member document and claims) succeeded or failed.
    pub fn lease_renewed(&self, ok: bool) {
        self.membership
            .renewals
            .get_or_create(&ResultLabels {
                group: self.group.clone(),
                result: if ok { "ok" } else { "error" }.into(),
            })
            .inc();
    }

    /// A partition's primary copy moved to another node: logged and counted.
    pub fn primary_moved(&self, partition: &crate::partition::PartitionId, from: &str, to: &str) {
        tracing::warn!(partition = %partition, from_node = %from, to_node = %to, "primary moved to another node (failover or relocation): confirming visibility on the new primary");
        self.primary_changes
            .get_or_create(&PartitionLabels {
                group: self.group.clone(),
                index: partition.index.clone(),
                partition: partition.shard.to_string(),
            })
            .inc();
    }

    /// The position of every partition after a round or a commit: sets the lag gauges (documents
    /// behind, and for how long) and feeds the lag trend `/health` watches.
    pub fn positions(&self, partitions: &[PartitionStatus]) {
        let now = Instant::now();
        let mut s = self.state();
        s.partitions.clear();
        let mut total = 0;
        for p in partitions {
            let key = format!("{:#}", p.partition);
            let labels = PartitionLabels {
                group: self.group.clone(),
                index: p.partition.index.clone(),
                partition: p.partition.shard.to_string(),
            };
            self.lag_docs.get_or_create(&labels).set(p.lag);
            let since = if p.lag > 0 {
                *s.behind_since.entry(key.clone()).or_insert(now)
            } else {
                s.behind_since.remove(&key);
                now
            };
            self.lag_seconds
                .get_or_create(&labels)
                .set(now.duration_since(since).as_secs_f64());
            total += p.lag;
            s.partitions.insert(key, p.clone());
        }
        s.lag_history.push_back(total);
        if s.lag_history.len() > 5 {
            s.lag_history.pop_front();
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn encode_metrics(&self) -> String {
        self.uptime.set(self.started.elapsed().as_secs_f64());
        self.sync_breakers();
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn error_kind(e: &Error) -> String {
    match e {
        Error::Client(c) => c.kind().to_string(),
        Error::Sink(_) => "sink".into(),
        Error::Fenced { .. } => "fenced".into(),
        _ => "other".into(),
    }
}

impl crate::client::ObserveRetries for Telemetry {
    fn retried(
        &self,
        op: &'static str,
        retry: u32,
        delay: Duration,
        error: &crate::client::ClientError,
    ) {
        Telemetry::retried(self, op, retry, delay, error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::PartitionId;

    #[test]
    fn the_window_cap_warning_repeats_at_most_once_a_minute_and_every_eviction_is_counted() {
        let t = Telemetry::new("g", "i", HealthConfig::default());
        assert_eq!(t.window_cap_hit(10, 100, None), Some(10));
        assert_eq!(t.window_cap_hit(5, 100, None), None);
        assert_eq!(t.window_cap_hit(7, 100, None), None);
        assert_eq!(t.state().timestamp.cap_evictions, 22);
        assert_eq!(t.window_evictions.get(), 22);
        // A minute later the next warning reports what was held back with it.
        t.state().timestamp.cap_warned_at = Instant::now().checked_sub(CAP_WARNING_EVERY);
        assert_eq!(t.window_cap_hit(1, 100, None), Some(13));
    }

    #[test]
    fn health_goes_unhealthy_after_failed_polls_and_degraded_on_growing_lag() {
        let t = Telemetry::new(
            "g",
            "i",
            HealthConfig {
                retry_window: Duration::ZERO,
                ..HealthConfig::default()
            },
        );
        assert_eq!(t.health().status, HealthStatus::Healthy);
        let e = Error::Client(crate::client::ClientError::Timeout {
            op: "search",
            url: "http://x".into(),
            timeout: Duration::from_secs(1),
        });
        for i in 0..5 {
            t.poll_failed(&e, i, Duration::ZERO);
        }
        assert_eq!(t.health().status, HealthStatus::Unhealthy);
        t.poll_succeeded(0, Duration::ZERO);
        assert_ne!(t.health().status, HealthStatus::Unhealthy);
        let p = PartitionId {
            index: "i".into(),
            uuid: "u".into(),
            shard: 0,
        };
        let t = Telemetry::new("g", "i", HealthConfig::default());
        for lag in 1..=5 {
            t.positions(&[PartitionStatus {
                partition: p.clone(),
                committed: 0,
                checkpoint: lag,
                lag,
            }]);
        }
        assert_eq!(t.health().status, HealthStatus::Degraded);
        let metrics = t.encode_metrics();
        assert!(
            metrics.contains(
                "indexstream_consumer_lag_documents{group=\"g\",index=\"i\",partition=\"0\"} 5"
            ),
            "{metrics}"
        );
    }

    #[test]
    fn the_report_has_the_original_sections() {
        let t = Telemetry::new("prod-consumer-1", "index_audit", HealthConfig::default());
        t.batch_delivered(100, Duration::from_millis(5));
        let r = t.report();
        for needle in [
            "=== CONSUMER METRICS REPORT ===",
            "Consumer ID: prod-consumer-1",
            "Source Index: index_audit",
            "--- Processing Stats ---",
            "Total Processed: 100",
            "--- Batch Stats ---",
            "Average Batch Size: 100.00",
            "--- Resilience Stats ---",
        ] {
            assert!(r.contains(needle), "{needle} missing from\n{r}");
        }
    }
}
