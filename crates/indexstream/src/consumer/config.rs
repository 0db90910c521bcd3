//! What a consumer is told: [`ConsumerConfig`], built with [`ConsumerBuilder`], and checked
//! before anything in the cluster is touched.

use std::time::Duration;

use serde_json::Value;

use super::Consumer;
use crate::client::ClientConfig;
use crate::error::{Error, Result};
use crate::offset::Mode;
use crate::telemetry::HealthConfig;

/// What timestamp mode does with a document that has no usable timestamp (the field is absent,
/// or its value was not indexed as a date). Such a document cannot be placed in time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum OnMissingTimestamp {
    /// Count it, log its id, and go on without delivering it (the default).
    #[default]
    Skip,
    /// Stop with [`Error::MissingTimestamp`] naming it.
    Fail,
}

/// Where a group starts reading a partition it has no committed offset for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(try_from = "String")]
#[non_exhaustive]
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

impl std::str::FromStr for StartFrom {
    type Err = String;

    /// `earliest`, `latest`, or an RFC 3339 time (`2024-05-01T10:00:00Z`; without an offset it
    /// is taken as UTC).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "earliest" => Ok(StartFrom::Earliest),
            "latest" => Ok(StartFrom::Latest),
            t => crate::date::parse_rfc3339_millis(t)
                .map(StartFrom::Time)
                .map_err(|_| {
                    format!("{t:?} is not earliest, latest, or an RFC 3339 time such as 2024-05-01T10:00:00Z")
                }),
        }
    }
}

impl TryFrom<String> for StartFrom {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse()
    }
}

/// How the consumer proves that documents up to a checkpoint are searchable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RefreshPolicy {
    /// Wait for the primary's `refresh.external_total` to advance by 2 (free); fall back to an
    /// explicit refresh when the counter stalls (for example with `refresh_interval: -1`).
    #[default]
    Counter,
    /// Send `POST <index>/_refresh` every round (costly for the cluster; lowest latency).
    Force,
}

/// Exact mode's own settings (see [`ReadMode::Exact`]).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct ExactSettings {
    /// How documents up to a checkpoint are proven searchable (default: the refresh counter).
    pub refresh_policy: RefreshPolicy,
    /// How long the refresh counter may stand still, with checkpoints waiting, before the
    /// consumer refreshes explicitly. `None` (the default): one and a half of the index's refresh
    /// intervals (1.5 s for the default 1 s), or 5 s for an index whose refreshes are disabled.
    /// A scheduled refresh happens only when something changed, so once writes stop the counter
    /// stops with them and the last checkpoint is proven by one explicit refresh; while writes
    /// go on the counter moves every interval and no explicit refresh is made.
    #[serde(with = "crate::serde_duration::option")]
    pub stall_after: Option<Duration>,
    /// Search pages per partition between two stats rounds while catching up (default 16).
    pub pages_per_round: u32,
}

impl Default for ExactSettings {
    fn default() -> Self {
        ExactSettings {
            refresh_policy: RefreshPolicy::Counter,
            stall_after: None,
            pages_per_round: 16,
        }
    }
}

impl ExactSettings {
    /// How documents up to a checkpoint are proven searchable.
    pub fn with_refresh_policy(mut self, p: RefreshPolicy) -> Self {
        self.refresh_policy = p;
        self
    }

    /// How long the refresh counter may stand still before an explicit refresh (see
    /// [`ExactSettings::stall_after`]).
    pub fn with_stall_after(mut self, after: Option<Duration>) -> Self {
        self.stall_after = after;
        self
    }

    /// Search pages per partition between two stats rounds while catching up.
    pub fn with_pages_per_round(mut self, pages: u32) -> Self {
        self.pages_per_round = pages;
        self
    }
}

/// Timestamp mode's own settings (see [`ReadMode::Timestamp`]).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct TimestampSettings {
    /// How far behind the cursor every poll reads again, for late documents (default 30 s, at
    /// most 7 days).
    #[serde(with = "crate::serde_duration")]
    pub safety_window: Duration,
    /// How the expression is split into partitions (default: one partition, held by one member).
    pub partitions: TimestampPartitions,
    /// The unique field that orders documents sharing a timestamp; empty (the default): `_id`,
    /// or `_seq_no` with [`TimestampPartitions::Shards`], where it is unique within each
    /// partition and needs no `_id` field data, which Elasticsearch 8 refuses to sort on. See
    /// [`TimestampSettings::tiebreaker`].
    pub tiebreaker_field: String,
    /// An extra filter (query DSL, a JSON object) for every read.
    pub query: Option<Value>,
    /// Documents without a usable timestamp (default: skipped, counted and logged).
    pub on_missing_timestamp: OnMissingTimestamp,
    /// The most keys the window holds (default 100,000; see
    /// [`TimestampOffset`](crate::TimestampOffset)).
    pub window_cap: usize,
    /// How long the time that slid out of the window is watched for missed late documents
    /// (default 10 min)...
    #[serde(with = "crate::serde_duration")]
    pub missed_late_horizon: Duration,
    /// ...and how often it is counted (default 10 s); documents without a usable timestamp are
    /// counted as often (and on the first read).
    #[serde(with = "crate::serde_duration")]
    pub missed_late_check_every: Duration,
}

impl Default for TimestampSettings {
    fn default() -> Self {
        TimestampSettings {
            safety_window: Duration::from_secs(30),
            partitions: TimestampPartitions::One,
            tiebreaker_field: String::new(),
            query: None,
            on_missing_timestamp: OnMissingTimestamp::Skip,
            window_cap: 100_000,
            missed_late_horizon: Duration::from_secs(600),
            missed_late_check_every: Duration::from_secs(10),
        }
    }
}

impl TimestampSettings {
    /// How far behind the cursor every poll reads again.
    pub fn with_safety_window(mut self, window: Duration) -> Self {
        self.safety_window = window;
        self
    }

    /// How the expression is split into partitions.
    pub fn with_partitions(mut self, partitions: TimestampPartitions) -> Self {
        self.partitions = partitions;
        self
    }

    /// The tiebreaker it reads by: the one set, or else the partitioning's default (`_id` for
    /// one partition, `_seq_no` by shard).
    pub fn tiebreaker(&self) -> &str {
        match (self.tiebreaker_field.trim(), self.partitions) {
            ("", TimestampPartitions::One) => "_id",
            ("", TimestampPartitions::Shards) => "_seq_no",
            (field, _) => field,
        }
    }

    /// The unique field ordering documents that share a timestamp.
    pub fn with_tiebreaker_field(mut self, field: impl Into<String>) -> Self {
        self.tiebreaker_field = field.into();
        self
    }

    /// An extra filter (query DSL) for every read.
    pub fn with_query(mut self, query: Option<Value>) -> Self {
        self.query = query;
        self
    }

    /// What to do with documents without a usable timestamp.
    pub fn with_on_missing_timestamp(mut self, what: OnMissingTimestamp) -> Self {
        self.on_missing_timestamp = what;
        self
    }

    /// The most keys the window holds.
    pub fn with_window_cap(mut self, cap: usize) -> Self {
        self.window_cap = cap;
        self
    }

    /// How long the time that slid out of the window is watched for missed late documents.
    pub fn with_missed_late_horizon(mut self, horizon: Duration) -> Self {
        self.missed_late_horizon = horizon;
        self
    }

    /// How often the time that slid out of the window is counted for missed late documents.
    pub fn with_missed_late_check_every(mut self, every: Duration) -> Self {
        self.missed_late_check_every = every;
        self
    }
}

/// How timestamp mode splits the index expression into partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TimestampPartitions {
    /// The whole expression is one partition with one cursor: the group's lease lets one
    /// member read it (the default).
    #[default]
    One,
    /// Every shard of every index is a partition `(index uuid, shard)` with its own cursor and
    /// window, read with a shard preference: the group's members share them like in exact mode.
    Shards,
}

impl TimestampPartitions {
    /// As `--timestamp-partitions` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            TimestampPartitions::One => "one",
            TimestampPartitions::Shards => "shards",
        }
    }
}

/// How the consumer reads, with the settings that only that way of reading has. In a config
/// file: a `[mode]` table with `kind = "exact"` or `kind = "timestamp"` and that mode's keys.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ReadMode {
    /// Shards and `_seq_no` up to each shard's global checkpoint (the default).
    Exact(ExactSettings),
    /// A timestamp cursor with a safety window read again every poll.
    Timestamp(TimestampSettings),
}

impl Default for ReadMode {
    fn default() -> Self {
        ReadMode::Exact(ExactSettings::default())
    }
}

impl From<Mode> for ReadMode {
    /// The mode with every one of its settings at its default.
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Exact => ReadMode::default(),
            Mode::Timestamp => ReadMode::timestamp(),
        }
    }
}

impl ReadMode {
    /// Timestamp mode with every setting at its default.
    pub fn timestamp() -> Self {
        ReadMode::Timestamp(TimestampSettings::default())
    }

    /// Whether the group's partitions are shared by members (exact mode, and timestamp mode by
    /// shard) rather than held whole under one lease.
    pub fn has_members(&self) -> bool {
        match self {
            ReadMode::Exact(_) => true,
            ReadMode::Timestamp(t) => t.partitions == TimestampPartitions::Shards,
        }
    }

    /// Which mode it is, as offsets record it.
    pub fn kind(&self) -> Mode {
        match self {
            ReadMode::Exact(_) => Mode::Exact,
            ReadMode::Timestamp(_) => Mode::Timestamp,
        }
    }
}

/// Consumer settings. Defaults follow the original system's (page 100, poll 1 s, commit every
/// 50 events, 30 s safety window) where it had one.
///
/// It can be read from a file with serde (keys in kebab-case, durations as `"30s"`):
///
/// ```
/// let config: indexstream::ConsumerConfig = serde_json::from_value(serde_json::json!({
///     "client": {"url": "http://localhost:9200"},
///     "index": "audit-*",
///     "group": "siem-forwarder",
///     "page-size": 500,
///     "mode": {"kind": "timestamp", "safety-window": "1m"},
/// })).unwrap();
/// assert_eq!(config.mode.kind(), indexstream::Mode::Timestamp);
/// ```
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct ConsumerConfig {
    /// How to reach the cluster.
    pub client: ClientConfig,
    /// Index name, comma list, wildcard pattern, alias or data stream.
    pub index: String,
    /// The consumer group: the name its lease and offsets are stored under (non-empty, without
    /// `|`).
    pub group: String,
    /// Exact (shards and `_seq_no`, the default) or timestamp mode, each with its own settings.
    #[serde(default)]
    pub mode: ReadMode,
    /// Documents per search page (1 to 10000, default 100). A delivered batch is at most one
    /// page: this is the only size setting.
    #[serde(default = "defaults::page_size", alias = "batch-size")]
    pub page_size: usize,
    /// Pause between polls once caught up (default 1 s).
    #[serde(default = "defaults::poll_interval", with = "crate::serde_duration")]
    pub poll_interval: Duration,
    /// Commit after this many delivered documents (default 50)...
    #[serde(default = "defaults::commit_every_events")]
    pub commit_every_events: u64,
    /// ...or after this long, whichever comes first (default 5 s).
    #[serde(default = "defaults::commit_every", with = "crate::serde_duration")]
    pub commit_every: Duration,
    /// Where the group starts reading what it has no committed offset for (default: the
    /// earliest document).
    #[serde(default)]
    pub start: StartFrom,
    /// The index that holds the group's offsets and lease (default [`DEFAULT_OFFSETS_INDEX`]);
    /// one concrete index name, created if missing.
    #[serde(default = "defaults::offsets_index")]
    pub offsets_index: String,
    /// This member's name in the group's lease (default: the host name); a restart with the same
    /// id takes over at once.
    #[serde(default = "default_member_id")]
    pub member_id: String,
    /// How long the group's lease lasts unrenewed (default 30 s, at least 1 s); it is renewed
    /// every third of it, and a crashed member's lease can be taken once it expires.
    #[serde(default = "defaults::lease_ttl", with = "crate::serde_duration")]
    pub lease_ttl: Duration,
    /// The timestamp field (default `@timestamp`): timestamp mode reads in its order; exact mode
    /// uses it for a [`StartFrom::Time`].
    #[serde(default = "defaults::timestamp_field")]
    pub timestamp_field: String,
    /// When `/health` reports DEGRADED or UNHEALTHY.
    #[serde(default)]
    pub health: HealthConfig,
    /// How every request to the cluster is retried.
    #[serde(default)]
    pub retry: crate::client::RetryPolicy,
    /// The circuit breakers around fetching and around the offset store.
    #[serde(default)]
    pub breaker: crate::breaker::BreakerConfig,
}

mod defaults {
    use std::time::Duration;

    pub fn page_size() -> usize {
        100
    }
    pub fn poll_interval() -> Duration {
        Duration::from_secs(1)
    }
    pub fn commit_every_events() -> u64 {
        50
    }
    pub fn commit_every() -> Duration {
        Duration::from_secs(5)
    }
    pub fn offsets_index() -> String {
        crate::offset::DEFAULT_OFFSETS_INDEX.to_string()
    }
    pub fn lease_ttl() -> Duration {
        Duration::from_secs(30)
    }
    pub fn timestamp_field() -> String {
        "@timestamp".into()
    }
}

impl ConsumerConfig {
    /// The settings for reading `index` as `group`, every other setting at its default.
    pub fn new(client: ClientConfig, index: impl Into<String>, group: impl Into<String>) -> Self {
        ConsumerConfig {
            client,
            index: index.into(),
            group: group.into(),
            mode: ReadMode::default(),
            page_size: defaults::page_size(),
            poll_interval: defaults::poll_interval(),
            commit_every_events: defaults::commit_every_events(),
            commit_every: defaults::commit_every(),
            start: StartFrom::Earliest,
            offsets_index: defaults::offsets_index(),
            member_id: default_member_id(),
            lease_ttl: defaults::lease_ttl(),
            timestamp_field: defaults::timestamp_field(),
            health: HealthConfig::default(),
            retry: crate::client::RetryPolicy::default(),
            breaker: crate::breaker::BreakerConfig::default(),
        }
    }

    /// Checks every setting. An error names the bad one as its field here is named (nested
    /// ones as `mode.safety_window`, `retry.max_attempts`), for a front end to map to its own
    /// names.
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
        if self.page_size == 0 || self.page_size > 10_000 {
            return bad(
                "page_size",
                format!("{} must be between 1 and 10000", self.page_size),
            );
        }
        if self.poll_interval.is_zero() {
            return bad("poll_interval", "must be greater than 0".into());
        }
        if self.commit_every_events == 0 {
            return bad("commit_every_events", "must be at least 1 event".into());
        }
        if self.commit_every.is_zero() {
            return bad("commit_every", "must be greater than 0".into());
        }
        if self.lease_ttl < Duration::from_secs(1) {
            return bad("lease_ttl", "must be at least 1s".into());
        }
        if self.offsets_index.is_empty() || self.offsets_index.contains(['*', ',']) {
            return bad(
                "offsets_index",
                format!("{:?} must be one concrete index name", self.offsets_index),
            );
        }
        if self.retry.max_attempts == 0 {
            return bad("retry.max_attempts", "must be at least 1".into());
        }
        if self.breaker.failure_threshold == 0 {
            return bad("breaker.failure_threshold", "must be at least 1".into());
        }
        if self.timestamp_field.trim().is_empty() {
            return bad("timestamp_field", "must name a field".into());
        }
        match &self.mode {
            ReadMode::Exact(e) => {
                if e.pages_per_round == 0 {
                    return bad("mode.pages_per_round", "must be at least 1".into());
                }
            }
            ReadMode::Timestamp(t) => {
                if t.tiebreaker() == "_seq_no" && t.partitions == TimestampPartitions::One {
                    return bad(
                        "mode.tiebreaker_field",
                        "_seq_no is unique only within one shard; it can break ties with timestamp partitions by shard only".into(),
                    );
                }
                if t.safety_window > Duration::from_secs(7 * 86_400) {
                    return bad(
                        "mode.safety_window",
                        format!("{:?} is more than 7 days", t.safety_window),
                    );
                }
                if t.window_cap == 0 {
                    return bad("mode.window_cap", "must be at least 1".into());
                }
                if let Some(q) = &t.query {
                    if !q.is_object() {
                        return bad(
                            "mode.query",
                            format!("{q} is not a JSON object of query DSL"),
                        );
                    }
                }
                if t.missed_late_check_every.is_zero() {
                    return bad(
                        "mode.missed_late_check_every",
                        "must be greater than 0".into(),
                    );
                }
            }
        }
        Ok(())
    }

    /// Timestamp mode's settings, or `None` in exact mode.
    pub fn timestamp(&self) -> Option<&TimestampSettings> {
        match &self.mode {
            ReadMode::Timestamp(t) => Some(t),
            ReadMode::Exact(_) => None,
        }
    }

    /// Exact mode's settings, or `None` in timestamp mode.
    pub fn exact(&self) -> Option<&ExactSettings> {
        match &self.mode {
            ReadMode::Exact(e) => Some(e),
            ReadMode::Timestamp(_) => None,
        }
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

    /// Documents per search page, and so at most per delivered batch (1 to 10000).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.config.page_size = n;
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

    /// Exact or timestamp mode, with that mode's settings (a bare [`Mode`] gives its defaults).
    pub fn with_mode(mut self, mode: impl Into<ReadMode>) -> Self {
        self.config.mode = mode.into();
        self
    }

    /// Exact mode with these settings.
    pub fn exact(self, settings: ExactSettings) -> Self {
        self.with_mode(ReadMode::Exact(settings))
    }

    /// Timestamp mode with these settings.
    pub fn timestamp(self, settings: TimestampSettings) -> Self {
        self.with_mode(ReadMode::Timestamp(settings))
    }

    /// The timestamp field: timestamp mode reads in its order; exact mode uses it for a start time.
    pub fn with_timestamp_field(mut self, field: impl Into<String>) -> Self {
        self.config.timestamp_field = field.into();
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

    /// The configuration built so far.
    pub fn build_config(self) -> ConsumerConfig {
        self.config
    }

    /// Validates, connects, creates the offsets index if needed and takes the group's lease.
    pub async fn build(self) -> Result<Consumer> {
        Consumer::connect(self.config).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> std::result::Result<ConsumerConfig, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn a_config_reads_from_serde_with_each_modes_settings_in_its_own_table() {
        let c = read(json!({
            "client": {"url": "http://localhost:9200", "request-timeout": "5s"},
            "index": "audit-*",
            "group": "g",
            "batch-size": 250,
            "poll-interval": 500,
            "start": "2024-05-01T10:00:00Z",
            "mode": {"kind": "timestamp", "safety-window": "PT1M", "tiebreaker-field": "uid",
                     "on-missing-timestamp": "fail"},
        }))
        .unwrap();
        assert_eq!(c.page_size, 250, "batch-size is an alias of page-size");
        assert_eq!(c.poll_interval, Duration::from_millis(500));
        assert_eq!(c.start, StartFrom::Time(1_714_557_600_000));
        let t = c.timestamp().expect("timestamp mode");
        assert_eq!(t.safety_window, Duration::from_secs(60));
        assert_eq!(t.tiebreaker_field, "uid");
        assert_eq!(t.on_missing_timestamp, OnMissingTimestamp::Fail);
        assert_eq!(t.window_cap, TimestampSettings::default().window_cap);
        assert!(c.exact().is_none());
        // The tiebreaker follows the partitioning unless one is set.
        let by = |mode: Value| {
            let c = read(json!({"client": {"url": "http://x:9200"}, "index": "i", "group": "g", "mode": mode})).unwrap();
            (
                c.validate().map_err(|e| e.to_string()),
                c.timestamp().unwrap().tiebreaker().to_string(),
            )
        };
        assert_eq!(by(json!({"kind": "timestamp"})), (Ok(()), "_id".into()));
        assert_eq!(
            by(json!({"kind": "timestamp", "partitions": "shards"})),
            (Ok(()), "_seq_no".into())
        );
        assert_eq!(
            by(json!({"kind": "timestamp", "partitions": "shards", "tiebreaker-field": "_id"})),
            (Ok(()), "_id".into())
        );
        let (refused, _) = by(json!({"kind": "timestamp", "tiebreaker-field": "_seq_no"}));
        assert!(refused
            .unwrap_err()
            .contains("unique only within one shard"));
        // Defaults: exact mode with its own defaults.
        let d =
            read(json!({"client": {"url": "http://x:9200"}, "index": "i", "group": "g"})).unwrap();
        assert_eq!(d.mode, ReadMode::default());
        assert_eq!(d.exact(), Some(&ExactSettings::default()));
    }

    #[test]
    fn unknown_keys_and_keys_of_the_other_mode_are_refused_by_name() {
        let base = |extra: Value| {
            let mut v = json!({"client": {"url": "http://x:9200"}, "index": "i", "group": "g"});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            read(v)
        };
        let e = base(json!({"page-sise": 5})).unwrap_err();
        assert!(e.contains("page-sise"), "{e}");
        let e = base(json!({"mode": {"kind": "exact", "safety-window": "30s"}})).unwrap_err();
        assert!(e.contains("safety-window"), "{e}");
        let e = base(json!({"poll-interval": "soon"})).unwrap_err();
        assert!(e.contains("soon"), "{e}");
    }

    #[test]
    fn validation_names_the_field_as_the_struct_does() {
        let client = ClientConfig::new("http://x:9200");
        let bad = |b: ConsumerBuilder| match b.build_config().validate() {
            Err(Error::Config { field, .. }) => field,
            other => panic!("expected a config error, got {other:?}"),
        };
        let b = || ConsumerBuilder::new(client.clone(), "i", "g");
        assert_eq!(bad(b().with_page_size(0)), "page_size");
        assert_eq!(
            bad(b().timestamp(
                TimestampSettings::default().with_safety_window(Duration::from_secs(8 * 86_400))
            )),
            "mode.safety_window"
        );
        assert_eq!(
            bad(b().exact(ExactSettings::default().with_pages_per_round(0))),
            "mode.pages_per_round"
        );
        assert!(b().build_config().validate().is_ok());
    }

    #[test]
    fn start_positions_parse_from_text() {
        assert_eq!("earliest".parse::<StartFrom>(), Ok(StartFrom::Earliest));
        assert_eq!("latest".parse::<StartFrom>(), Ok(StartFrom::Latest));
        assert_eq!(
            "1970-01-01T00:00:01Z".parse::<StartFrom>(),
            Ok(StartFrom::Time(1000))
        );
        let e = "yesterday".parse::<StartFrom>().unwrap_err();
        assert!(e.contains("yesterday"), "{e}");
        // Offsets, fractions, before the epoch, and no offset (UTC) (the CLI's `groups reset
        // --to` parses with it too).
        let at = |s: &str| match s.parse::<StartFrom>() {
            Ok(StartFrom::Time(ms)) => ms,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(at("1970-01-01T01:00:01+01:00"), 1000);
        assert_eq!(at("2019-10-21T08:30:04.828Z"), 1_571_646_604_828);
        assert_eq!(at("1970-01-01 00:00:02"), 2000);
        assert_eq!(at("1969-12-31T23:59:59.999Z"), -1);
    }
}
