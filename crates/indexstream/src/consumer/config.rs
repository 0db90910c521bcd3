//! What a consumer is told: [`ConsumerConfig`], built with [`ConsumerBuilder`], and checked
//! before anything in the cluster is touched.

use std::time::Duration;

use serde_json::Value;

use super::Consumer;
use crate::client::ClientConfig;
use crate::error::{Error, Result};
use crate::offset::{Mode, DEFAULT_OFFSETS_INDEX};
use crate::telemetry::HealthConfig;

/// What timestamp mode does with a document that has no usable timestamp (the field is absent,
/// or its value was not indexed as a date). Such a document cannot be placed in time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnMissingTimestamp {
    /// Count it, log its id, and go on without delivering it (the default).
    #[default]
    Skip,
    /// Stop with [`Error::MissingTimestamp`] naming it.
    Fail,
}

/// Where a group starts reading a partition it has no committed offset for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// From the first document (the default).
    #[default]
    Earliest,
    /// From documents written after the partition is first seen.
    Latest,
    /// From the first document (in `_seq_no` order) whose timestamp field is at or after this
    /// instant, in epoch milliseconds.
    Time(i64),
}

/// How the consumer proves that documents up to a checkpoint are searchable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefreshPolicy {
    /// Wait for the primary's `refresh.external_total` to advance by 2 (free); fall back to an
    /// explicit refresh when the counter stalls (for example with `refresh_interval: -1`).
    #[default]
    Counter,
    /// Send `POST <index>/_refresh` every round (costly for the cluster; lowest latency).
    Force,
}

/// Consumer settings. Defaults follow the original system's (batch 100, poll 1 s, commit every
/// 50 events, 30 s safety window) where it had one.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// How to reach the cluster.
    pub client: ClientConfig,
    /// Index name, comma list, wildcard pattern, alias or data stream.
    pub index: String,
    /// The consumer group: the name its lease and offsets are stored under (non-empty, without
    /// `|`).
    pub group: String,
    /// Exact (shards and `_seq_no`, the default) or timestamp mode.
    pub mode: Mode,
    /// Documents per search page and per batch.
    pub batch_size: usize,
    /// Pause between polls once caught up.
    pub poll_interval: Duration,
    /// Commit after this many delivered documents...
    pub commit_every_events: u64,
    /// ...or after this long, whichever comes first.
    pub commit_every: Duration,
    /// Where the group starts reading what it has no committed offset for (default: the
    /// earliest document).
    pub start: StartFrom,
    /// Exact mode: how documents up to a checkpoint are proven searchable (default: the refresh
    /// counter).
    pub refresh_policy: RefreshPolicy,
    /// The index that holds the group's offsets and lease (default [`DEFAULT_OFFSETS_INDEX`]);
    /// one concrete index name, created if missing.
    pub offsets_index: String,
    /// This member's name in the group's lease (default: the host name); a restart with the same
    /// id takes over at once.
    pub member_id: String,
    /// How long the group's lease lasts unrenewed (default 30 s, at least 1 s); it is renewed
    /// every third of it, and a crashed member's lease can be taken once it expires.
    pub lease_ttl: Duration,
    /// The timestamp field (`--start <time>` in exact mode).
    pub timestamp_field: String,
    /// How long the refresh counter may stand still, with checkpoints waiting, before the
    /// consumer refreshes explicitly. `None` (the default): one and a half of the index's refresh
    /// intervals (1.5 s for the default 1 s), or 5 s for an index whose refreshes are disabled.
    /// A scheduled refresh happens only when something changed, so once writes stop the counter
    /// stops with them and the last checkpoint is proven by one explicit refresh; while writes
    /// go on the counter moves every interval and no explicit refresh is made.
    pub stall_after: Option<Duration>,
    /// Search pages per partition between two stats rounds while catching up.
    pub pages_per_round: u32,
    /// When `/health` reports DEGRADED or UNHEALTHY.
    pub health: HealthConfig,
    /// How every request to the cluster is retried.
    pub retry: crate::client::RetryPolicy,
    /// The circuit breakers around fetching and around the offset store.
    pub breaker: crate::breaker::BreakerConfig,
    /// Timestamp mode: how far behind the cursor every poll reads again, for late documents.
    pub safety_window: Duration,
    /// Timestamp mode: the unique field that orders documents sharing a timestamp.
    pub tiebreaker_field: String,
    /// Timestamp mode: an extra filter (query DSL) for every read.
    pub query: Option<Value>,
    /// Timestamp mode: documents without a usable timestamp.
    pub on_missing_timestamp: OnMissingTimestamp,
    /// Timestamp mode: the most keys the window holds (see [`TimestampOffset`](crate::TimestampOffset)).
    pub window_cap: usize,
    /// Timestamp mode: how long the time that slid out of the window is watched for missed
    /// late documents...
    pub missed_late_horizon: Duration,
    /// ...and how often it is counted; documents without a usable timestamp are counted as
    /// often (and on the first read).
    pub missed_late_check_every: Duration,
}

impl ConsumerConfig {
    /// The settings for reading `index` as `group`, every other setting at its default.
    pub fn new(client: ClientConfig, index: impl Into<String>, group: impl Into<String>) -> Self {
        ConsumerConfig {
            client,
            index: index.into(),
            group: group.into(),
            mode: Mode::Exact,
            batch_size: 100,
            poll_interval: Duration::from_secs(1),
            commit_every_events: 50,
            commit_every: Duration::from_secs(5),
            start: StartFrom::Earliest,
            refresh_policy: RefreshPolicy::Counter,
            offsets_index: DEFAULT_OFFSETS_INDEX.to_string(),
            member_id: default_member_id(),
            lease_ttl: Duration::from_secs(30),
            timestamp_field: "@timestamp".into(),
            stall_after: None,
            pages_per_round: 16,
            health: HealthConfig::default(),
            retry: crate::client::RetryPolicy::default(),
            breaker: crate::breaker::BreakerConfig::default(),
            safety_window: Duration::from_secs(30),
            tiebreaker_field: "_id".into(),
            query: None,
            on_missing_timestamp: OnMissingTimestamp::Skip,
            window_cap: 100_000,
            missed_late_horizon: Duration::from_secs(600),
            missed_late_check_every: Duration::from_secs(10),
        }
    }

    /// Checks every setting, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, reason: String| Err(Error::Config { field, reason });
        if self.index.trim().is_empty() {
            return bad(
                "index",
                "must name an index, pattern, alias or data stream".into(),
            );
        }
        if self.group.trim().is_empty() || self.group.contains('|') {
            return bad(
                "group",
                format!(
                    "{:?} must be non-empty and must not contain '|'",
                    self.group
                ),
            );
        }
        if self.batch_size == 0 || self.batch_size > 10_000 {
            return bad(
                "batch-size",
                format!("{} must be between 1 and 10000", self.batch_size),
            );
        }
        if self.poll_interval.is_zero() {
            return bad("poll-interval", "must be greater than 0".into());
        }
        if self.commit_every_events == 0 {
            return bad("commit-interval", "must be at least 1 event".into());
        }
        if self.commit_every.is_zero() {
            return bad("commit-every", "must be greater than 0".into());
        }
        if self.lease_ttl < Duration::from_secs(1) {
            return bad("lease-ttl", "must be at least 1s".into());
        }
        if self.offsets_index.is_empty() || self.offsets_index.contains(['*', ',']) {
            return bad(
                "offsets-index",
                format!("{:?} must be one concrete index name", self.offsets_index),
            );
        }
        match self.mode {
            Mode::Exact if self.query.is_some() => {
                return bad(
                    "query",
                    "a query filter needs --mode timestamp (in exact mode it would hide documents from the sequence-number check)".into(),
                )
            }
            Mode::Exact => {}
            Mode::Timestamp => {
                if self.timestamp_field.trim().is_empty() {
                    return bad("timestamp-field", "must name a field".into());
                }
                if self.tiebreaker_field.trim().is_empty() {
                    return bad("tiebreaker-field", "must name a unique field".into());
                }
                if self.safety_window > Duration::from_secs(7 * 86_400) {
                    return bad(
                        "safety-window",
                        format!("{:?} is more than 7 days", self.safety_window),
                    );
                }
                if self.window_cap == 0 {
                    return bad("window-cap", "must be at least 1".into());
                }
                if let Some(q) = &self.query {
                    if !q.is_object() {
                        return bad("query", format!("{q} is not a JSON object of query DSL"));
                    }
                }
                if self.missed_late_check_every.is_zero() {
                    return bad("missed-late-check", "must be greater than 0".into());
                }
            }
        }
        Ok(())
    }
}

/// The default member id: the host name, stable across restarts, so that a process restarted
/// after a crash takes its own lease back at once (a second live process with the same id on
/// the host is refused; give each its own member id).
pub fn default_member_id() -> String {
    crate::group::host_name()
}

/// Builds a [`Consumer`]: required arguments in `new`, options in `with_*`.
#[derive(Debug, Clone)]
pub struct ConsumerBuilder {
    config: ConsumerConfig,
}

impl ConsumerBuilder {
    /// A builder for reading `index` as `group`, every other setting at its default.
    pub fn new(client: ClientConfig, index: impl Into<String>, group: impl Into<String>) -> Self {
        ConsumerBuilder {
            config: ConsumerConfig::new(client, index, group),
        }
    }

    /// A builder starting from complete settings (checked only by [`ConsumerBuilder::build`]).
    pub fn from_config(config: ConsumerConfig) -> Self {
        ConsumerBuilder { config }
    }

    /// Documents per search page and per batch (1 to 10000).
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.config.batch_size = n;
        self
    }

    /// The pause between polls once caught up.
    pub fn with_poll_interval(mut self, d: Duration) -> Self {
        self.config.poll_interval = d;
        self
    }

    /// Commit after `events` delivered documents or after `every`, whichever comes first.
    pub fn with_commit_every(mut self, events: u64, every: Duration) -> Self {
        self.config.commit_every_events = events;
        self.config.commit_every = every;
        self
    }

    /// Where the group starts reading what it has no committed offset for.
    pub fn with_start(mut self, start: StartFrom) -> Self {
        self.config.start = start;
        self
    }

    /// Exact mode: how documents up to a checkpoint are proven searchable.
    pub fn with_refresh_policy(mut self, p: RefreshPolicy) -> Self {
        self.config.refresh_policy = p;
        self
    }

    /// This member's name in the group's lease (see [`ConsumerConfig::member_id`]).
    pub fn with_member_id(mut self, id: impl Into<String>) -> Self {
        self.config.member_id = id.into();
        self
    }

    /// How long the group's lease lasts unrenewed (at least 1 s).
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.config.lease_ttl = ttl;
        self
    }

    /// The index that holds the group's offsets and lease (one concrete index name).
    pub fn with_offsets_index(mut self, index: impl Into<String>) -> Self {
        self.config.offsets_index = index.into();
        self
    }

    /// Exact (shards and `_seq_no`, the default) or timestamp mode.
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.config.mode = mode;
        self
    }

    /// The timestamp field: timestamp mode reads in its order; exact mode uses it for a start time.
    pub fn with_timestamp_field(mut self, field: impl Into<String>) -> Self {
        self.config.timestamp_field = field.into();
        self
    }

    /// How long the refresh counter may stand still before an explicit refresh (see [`ConsumerConfig::stall_after`]).
    pub fn with_stall_after(mut self, after: Option<Duration>) -> Self {
        self.config.stall_after = after;
        self
    }

    /// Search pages per partition between two stats rounds while catching up.
    pub fn with_pages_per_round(mut self, pages: u32) -> Self {
        self.config.pages_per_round = pages;
        self
    }

    /// When `/health` reports DEGRADED or UNHEALTHY.
    pub fn with_health(mut self, health: HealthConfig) -> Self {
        self.config.health = health;
        self
    }

    /// How every request to the cluster is retried.
    pub fn with_retry(mut self, retry: crate::client::RetryPolicy) -> Self {
        self.config.retry = retry;
        self
    }

    /// The circuit breakers around fetching and around the offset store.
    pub fn with_breaker(mut self, breaker: crate::breaker::BreakerConfig) -> Self {
        self.config.breaker = breaker;
        self
    }

    /// Timestamp mode: how far behind the cursor every poll reads again.
    pub fn with_safety_window(mut self, window: Duration) -> Self {
        self.config.safety_window = window;
        self
    }

    /// Timestamp mode: the unique field ordering documents that share a timestamp.
    pub fn with_tiebreaker_field(mut self, field: impl Into<String>) -> Self {
        self.config.tiebreaker_field = field.into();
        self
    }

    /// Timestamp mode: an extra filter (query DSL) for every read.
    pub fn with_query(mut self, query: Option<Value>) -> Self {
        self.config.query = query;
        self
    }

    /// Timestamp mode: what to do with documents without a usable timestamp.
    pub fn with_on_missing_timestamp(mut self, what: OnMissingTimestamp) -> Self {
        self.config.on_missing_timestamp = what;
        self
    }

    /// Timestamp mode: the most keys the window holds.
    pub fn with_window_cap(mut self, cap: usize) -> Self {
        self.config.window_cap = cap;
        self
    }

    /// Timestamp mode: how long the time that slid out of the window is watched for missed
    /// late documents, and how often it is counted.
    pub fn with_missed_late_check(mut self, horizon: Duration, every: Duration) -> Self {
        self.config.missed_late_horizon = horizon;
        self.config.missed_late_check_every = every;
        self
    }

    /// The configuration built so far.
    pub fn build_config(self) -> ConsumerConfig {
        self.config
    }

    /// Validates, connects, creates the offsets index if needed and takes the group's lease.
    pub async fn build(self) -> Result<Consumer> {
        Consumer::connect(self.config).await
    }
}
