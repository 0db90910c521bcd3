//! The consumer: discovers partitions, reads them with the exact-mode protocol, hands batches
//! out, and commits offsets.
//!
//! # Delivery contract (at least once)
//! Every document is delivered at least once. [`Consumer::commit`] records, per partition, a
//! `_seq_no` up to which every document has been handed out by [`Consumer::poll`]; call it only
//! after the caller has processed (acknowledged) everything `poll` returned. After a restart,
//! delivery resumes after the committed offsets: what was handed out after the last commit is
//! delivered again, nothing else is. [`Consumer::run`] does this with a [`Sink`]: it flushes the
//! sink before every commit.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::client::types::{Hit, IndexShards};
use crate::client::{Client, ClientConfig, ClientError, ServerInfo};
use crate::error::{Error, Result};
use crate::group::{Lease, LeaseKeeper};
use crate::offset::{Mode, OffsetStore, DEFAULT_OFFSETS_INDEX};
use crate::partition::{PartitionId, PartitionStatus};
use crate::record::{Record, Source};
use crate::sink::Sink;
use crate::source::exact::ExactPartition;
use crate::telemetry::{HealthConfig, Telemetry};

mod timestamp_read;
use timestamp_read::TimestampReader;

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

/// Counters of what the consumer did (for reports and metrics).
#[derive(Debug, Clone, Default)]
pub struct ConsumerStats {
    /// Records handed out by [`Consumer::poll`].
    pub delivered: u64,
    /// Non-empty batches handed out by [`Consumer::poll`].
    pub batches: u64,
    /// Commits of offsets that succeeded.
    pub commits: u64,
    /// Read rounds started (in exact mode, each begins with a shard-stats request).
    pub rounds: u64,
    /// Exact mode: `_refresh` requests the consumer sent itself.
    pub explicit_refreshes: u64,
    /// Exact mode: partitions whose `_seq_no` gaps were read again, counted once per pass.
    pub gap_reads: u64,
}

#[derive(Debug)]
struct Pending {
    records: Vec<Record>,
    /// Exact mode: once these records are handed out, everything up to this `_seq_no` of the
    /// partition has been (the reader's safe point when it queued them).
    marks: Vec<(PartitionId, i64)>,
    /// Timestamp mode: each record's event key and timestamp, recorded when handed out.
    keys: Vec<(u64, i64)>,
}

/// One fast-path page read: where it was read from and up to, and what was confirmed
/// searchable when it was sent.
struct FastRead {
    pid: PartitionId,
    after: i64,
    upto: i64,
    confirmed_then: i64,
    result: std::result::Result<crate::client::types::SearchResponse, ClientError>,
}

type FastReads = JoinSet<FastRead>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Fast,
    Gaps,
}

/// A running consumer. It holds the group's lease: call [`Consumer::close`] to release it.
#[derive(Debug)]
#[must_use = "a consumer holds its group's lease until closed"]
pub struct Consumer {
    config: ConsumerConfig,
    client: Client,
    info: ServerInfo,
    offsets: OffsetStore,
    lease: Option<LeaseKeeper>,
    partitions: BTreeMap<PartitionId, ExactPartition>,
    uuid_of: HashMap<String, String>,
    confirm: BTreeMap<PartitionId, i64>,
    pending: VecDeque<Pending>,
    /// What has been handed out of each partition: what commits write.
    handed: HashMap<PartitionId, crate::source::exact::HandedOut>,
    phase: Phase,
    /// Page reads started ahead (see [`Consumer::fast_step`]).
    inflight: Option<FastReads>,
    /// `_seq_no`s handed out above each partition's committed offset: the uncommitted backlog.
    handed_out: HashMap<PartitionId, crate::source::intervals::IntervalSet>,
    last_round: Option<Instant>,
    more: bool,
    first_round: bool,
    stats: ConsumerStats,
    telemetry: std::sync::Arc<Telemetry>,
    /// Timestamp mode's state (`None` in exact mode).
    ts: Option<TimestampReader>,
}

fn shard_preference(info: &ServerInfo, shard: u32, node: &str) -> String {
    if info.supports_primary_preference() || node.is_empty() {
        format!("_shards:{shard}|_primary")
    } else {
        format!("_shards:{shard}|_only_nodes:{node}")
    }
}

fn record_of(hit: Hit, shard: u32) -> Record {
    Record {
        index: hit.index,
        id: hit.id,
        shard: Some(shard),
        seq_no: hit.seq_no,
        primary_term: hit.primary_term,
        timestamp: None,
        source: hit.source.unwrap_or_else(Source::null),
    }
}

impl Consumer {
    /// A builder for a consumer reading `index` as `group` (see [`ConsumerBuilder`]).
    pub fn builder(
        client: ClientConfig,
        index: impl Into<String>,
        group: impl Into<String>,
    ) -> ConsumerBuilder {
        ConsumerBuilder::new(client, index, group)
    }

    async fn connect(config: ConsumerConfig) -> Result<Consumer> {
        config.validate()?;
        let telemetry = std::sync::Arc::new(Telemetry::new(
            &config.group,
            &config.index,
            config.health.clone(),
        ));
        let base = Client::new(&config.client)?.with_retry(config.retry.clone());
        let info = base.info().await?;
        let observer = {
            let t = telemetry.clone();
            crate::client::RetryObserver(std::sync::Arc::new(move |op, n, d, e| {
                t.retried(op, n, d, e)
            }))
        };
        let fetch_breaker = std::sync::Arc::new(crate::breaker::CircuitBreaker::new(
            "fetch",
            config.breaker.clone(),
        ));
        let offsets_breaker = std::sync::Arc::new(crate::breaker::CircuitBreaker::new(
            "offsets",
            config.breaker.clone(),
        ));
        telemetry.watch_breaker(fetch_breaker.clone());
        telemetry.watch_breaker(offsets_breaker.clone());
        let client = base
            .clone()
            .with_breaker(fetch_breaker)
            .with_retry_observer(observer.clone());
        let observer_for_lease = observer.clone();
        let offsets_client = base
            .with_breaker(offsets_breaker)
            .with_retry_observer(observer);
        let offsets = OffsetStore::new(
            offsets_client.clone(),
            &config.offsets_index,
            &config.group,
            &config.member_id,
        );
        offsets.ensure_index().await?;
        // The lease has a client of its own: no breaker (an open one must not stop renewals)
        // and connections no other task holds up.
        let lease_client = Client::new(&config.client)?
            .with_retry(config.retry.clone())
            .with_retry_observer(observer_for_lease);
        let lease = Lease::acquire(
            lease_client,
            &config.offsets_index,
            &config.group,
            &config.member_id,
            config.lease_ttl,
        )
        .await?;
        tracing::info!(group = %config.group, member = %config.member_id, index = %config.index, "joined group");
        let ts = (config.mode == Mode::Timestamp)
            .then(|| TimestampReader::new(&config.timestamp_field, &config.tiebreaker_field));
        Ok(Consumer {
            telemetry,
            config,
            client,
            info,
            offsets,
            lease: Some(LeaseKeeper::start(lease)),
            partitions: BTreeMap::new(),
            uuid_of: HashMap::new(),
            confirm: BTreeMap::new(),
            pending: VecDeque::new(),
            handed: HashMap::new(),
            phase: Phase::Idle,
            inflight: None,
            handed_out: HashMap::new(),
            last_round: None,
            more: false,
            first_round: true,
            stats: ConsumerStats::default(),
            ts,
        })
    }

    /// The settings it runs with.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// What it did so far.
    pub fn stats(&self) -> &ConsumerStats {
        &self.stats
    }

    /// Metrics, health and the status report, shareable with a listener or a reporter task.
    pub fn telemetry(&self) -> std::sync::Arc<Telemetry> {
        self.telemetry.clone()
    }

    /// The cluster it reads, as `GET /` described it at connect time.
    pub fn server(&self) -> &ServerInfo {
        &self.info
    }

    /// Timestamp mode: the newest timestamp handed out (nanoseconds since the epoch) and the
    /// number of keys the safety window holds. `None` in exact mode.
    pub fn timestamp_position(&self) -> Option<(Option<i64>, usize)> {
        self.ts.as_ref().map(|t| t.position())
    }

    /// Position and lag of every partition (exact mode; empty in timestamp mode).
    pub fn status(&self) -> Vec<PartitionStatus> {
        self.partitions
            .values()
            .map(|p| PartitionStatus {
                partition: p.id.clone(),
                committed: p.committed,
                checkpoint: p.checkpoint,
                lag: p.lag(),
            })
            .collect()
    }

    /// Whether everything up to every partition's checkpoint has been handed out and confirmed.
    pub fn caught_up(&self) -> bool {
        if let Some(ts) = &self.ts {
            return self.pending.is_empty() && !ts.in_round() && ts.last_round().is_some();
        }
        self.pending.is_empty()
            && !self.more
            && self.partitions.values().all(|p| p.safe >= p.checkpoint)
    }

    /// When the next poll can find something new, if it would wait.
    pub fn next_poll_in(&self) -> Duration {
        if let Some(ts) = &self.ts {
            if !self.pending.is_empty() || ts.in_round() {
                return Duration::ZERO;
            }
            return match ts.last_round() {
                None => Duration::ZERO,
                Some(t) => self.config.poll_interval.saturating_sub(t.elapsed()),
            };
        }
        if !self.pending.is_empty() || self.phase != Phase::Idle || self.more {
            return Duration::ZERO;
        }
        match self.last_round {
            None => Duration::ZERO,
            Some(t) => self.config.poll_interval.saturating_sub(t.elapsed()),
        }
    }

    /// Returns the next batch (at most `max` records), or an empty one when there is nothing to
    /// read yet (see [`Consumer::next_poll_in`]). Not cancellation-safe: do not drop the future
    /// half-way (the records it read would be lost to this process, though never committed).
    pub async fn poll(&mut self, max: usize) -> Result<Vec<Record>> {
        loop {
            if !self.pending.is_empty() {
                match self.hand_out(max) {
                    Some(batch) => return Ok(batch),
                    None => continue,
                }
            }
            if self.ts.is_some() {
                if !self.timestamp_step().await? && self.pending.is_empty() {
                    return Ok(Vec::new());
                }
                continue;
            }
            match self.phase {
                Phase::Idle => {
                    if self.next_poll_in() > Duration::ZERO && !self.first_round {
                        return Ok(Vec::new());
                    }
                    self.start_round().await?;
                    self.phase = Phase::Fast;
                }
                Phase::Fast => {
                    if !self.fast_step().await? {
                        self.phase = Phase::Gaps;
                    }
                }
                Phase::Gaps => {
                    self.fill_gaps().await?;
                    self.phase = Phase::Idle;
                    if self.pending.is_empty() && !self.more {
                        return Ok(Vec::new());
                    }
                }
            }
        }
    }

    /// Hands out up to `max` records of the first pending read (`None` when it held none).
    fn hand_out(&mut self, max: usize) -> Option<Vec<Record>> {
        let front = self.pending.front_mut()?;
        let (records, keys, marks) = if front.records.len() > max && max > 0 {
            let rest = front.records.split_off(max);
            let keys_rest = front.keys.split_off(max.min(front.keys.len()));
            (
                std::mem::replace(&mut front.records, rest),
                std::mem::replace(&mut front.keys, keys_rest),
                Vec::new(),
            )
        } else {
            let p = self.pending.pop_front()?;
            (p.records, p.keys, p.marks)
        };
        if !records.is_empty() {
            self.stats.batches += 1;
            self.stats.delivered += records.len() as u64;
            if self.ts.is_some() {
                self.timestamp_handed_out(&keys);
            } else {
                self.note_handed_out(&records);
            }
        }
        // The marks apply once every record queued with them is handed out.
        for (pid, seq) in marks {
            if let Some(h) = self.handed.get_mut(&pid) {
                h.advance(seq);
            }
        }
        (!records.is_empty()).then_some(records)
    }

    async fn start_round(&mut self) -> Result<()> {
        if let Some(lease) = self.lease.as_ref() {
            lease.check()?;
        }
        if self.first_round {
            self.offsets.check_mode(self.config.mode).await?;
        }
        let stats = match self.client.shard_stats(&self.config.index).await {
            Ok(s) => s,
            Err(ClientError::Status { status: 404, .. }) if self.first_round => {
                return Err(Error::NoSuchIndex {
                    pattern: self.config.index.clone(),
                })
            }
            Err(ClientError::Status { status: 404, .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        self.more = false;
        self.stats.rounds += 1;
        self.reconcile(&stats).await?;
        self.first_round = false;
        self.last_round = Some(Instant::now());
        let now = Instant::now();
        let mut needs_refresh: BTreeMap<String, Vec<PartitionId>> = BTreeMap::new();
        for index in &stats {
            for s in &index.shards {
                let pid = PartitionId {
                    index: index.index.clone(),
                    uuid: index.uuid.clone(),
                    shard: s.shard,
                };
                let Some(p) = self.partitions.get_mut(&pid) else {
                    continue;
                };
                let stall = p.stall_after;
                let obs = p.observe(s, stall, now, self.config.pages_per_round);
                if let Some(from) = &obs.moved_from {
                    self.telemetry.primary_moved(&pid, from, &s.node);
                }
                if let Some(cp) = obs.confirmed {
                    let e = self.confirm.entry(pid.clone()).or_insert(cp);
                    *e = (*e).max(cp);
                }
                let waiting = p.checkpoint > p.safe;
                let fresh = std::mem::take(&mut p.fresh) && waiting;
                if (self.config.refresh_policy == RefreshPolicy::Force && waiting)
                    || obs.stalled
                    || fresh
                {
                    needs_refresh
                        .entry(index.index.clone())
                        .or_default()
                        .push(pid);
                }
            }
        }
        self.telemetry.positions(&self.status());
        for (index, pids) in needs_refresh {
            if self.config.refresh_policy == RefreshPolicy::Counter {
                tracing::debug!(index = %index, "refresh counter stalled with checkpoints waiting: refreshing explicitly");
            }
            self.client.refresh(&index).await?;
            self.stats.explicit_refreshes += 1;
            for pid in pids {
                if let Some(cp) = self
                    .partitions
                    .get_mut(&pid)
                    .and_then(|p| p.refreshed_explicitly())
                {
                    let e = self.confirm.entry(pid).or_insert(cp);
                    *e = (*e).max(cp);
                }
            }
        }
        Ok(())
    }

    /// Adds partitions of new indices, drops those of deleted ones, and reports recreated ones.
    async fn reconcile(&mut self, stats: &[IndexShards]) -> Result<()> {
        let seen: std::collections::HashSet<(String, String)> = stats
            .iter()
            .map(|i| (i.index.clone(), i.uuid.clone()))
            .collect();
        let gone: Vec<PartitionId> = self
            .partitions
            .keys()
            .filter(|p| !seen.contains(&(p.index.clone(), p.uuid.clone())))
            .cloned()
            .collect();
        let mut gone_indices = std::collections::BTreeSet::new();
        for pid in gone {
            self.partitions.remove(&pid);
            self.handed_out.remove(&pid);
            self.confirm.remove(&pid);
            self.handed.remove(&pid);
            gone_indices.insert((pid.index.clone(), pid.uuid.clone()));
        }
        for (index, uuid) in &gone_indices {
            if !stats.iter().any(|i| &i.index == index) {
                tracing::warn!(index = %index, uuid = %uuid, "index was deleted or no longer matches; dropping its partitions");
                self.uuid_of.remove(index);
            }
        }
        let mut new = Vec::new();
        for index in stats {
            if let Some(old) = self.uuid_of.get(&index.index) {
                if old != &index.uuid {
                    tracing::warn!(index = %index.index, old_uuid = %old, new_uuid = %index.uuid, start = ?self.config.start, "index was recreated: reading the new index according to --start, never from the old index's offsets");
                }
            }
            self.uuid_of.insert(index.index.clone(), index.uuid.clone());
            for s in &index.shards {
                let pid = PartitionId {
                    index: index.index.clone(),
                    uuid: index.uuid.clone(),
                    shard: s.shard,
                };
                if !self.partitions.contains_key(&pid) {
                    new.push((pid, s.clone()));
                }
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        let ids: Vec<PartitionId> = new.iter().map(|(p, _)| p.clone()).collect();
        let committed = self.offsets.load(&ids, self.config.mode).await?;
        let stall_after = self.stall_after_of(&ids).await;
        for (pid, stat) in new {
            let now = Instant::now();
            let state = match committed.get(&pid) {
                Some(stored) => {
                    self.handed.insert(
                        pid.clone(),
                        crate::source::exact::HandedOut::new(
                            stored.seq_no,
                            &stored.delivered,
                            true,
                        ),
                    );
                    ExactPartition::new(
                        pid.clone(),
                        stored.seq_no,
                        stored.seq_no,
                        &stored.delivered,
                        now,
                    )
                }
                None => {
                    let safe = match self.config.start {
                        StartFrom::Earliest => -1,
                        StartFrom::Latest => stat.global_checkpoint,
                        StartFrom::Time(ms) => self
                            .first_seq_at_or_after(&pid, &stat.node, ms)
                            .await?
                            .map(|s| s - 1)
                            .unwrap_or(stat.global_checkpoint),
                    };
                    // A start position is written by the next commit (even before anything is
                    // delivered), so a restart starts there too.
                    self.handed.insert(
                        pid.clone(),
                        crate::source::exact::HandedOut::new(safe, &[], safe < 0),
                    );
                    ExactPartition::new(pid.clone(), -1, safe, &[], now)
                }
            };
            let mut state = state;
            state.stall_after = stall_after
                .get(&pid.index)
                .copied()
                .unwrap_or(DISABLED_REFRESH_STALL);
            tracing::info!(partition = %pid, committed = state.committed, "partition assigned");
            self.partitions.insert(pid, state);
        }
        Ok(())
    }

    /// The stall timeout of each index of `partitions` (see [`ConsumerConfig::stall_after`]).
    /// When the settings cannot be read, the timeout for disabled refreshes applies.
    async fn stall_after_of(&self, partitions: &[PartitionId]) -> HashMap<String, Duration> {
        let names: std::collections::BTreeSet<&str> =
            partitions.iter().map(|p| p.index.as_str()).collect();
        let names: Vec<&str> = names.into_iter().collect();
        let mut out = HashMap::new();
        for chunk in names.chunks(100) {
            let intervals = match self.config.stall_after {
                Some(fixed) => chunk.iter().map(|n| (n.to_string(), Some(fixed))).collect(),
                None => match self.client.refresh_intervals(&chunk.join(",")).await {
                    Ok(list) => list
                        .into_iter()
                        .map(|(index, interval)| {
                            (index, interval.map(|i| (i + i / 2).max(MIN_STALL)))
                        })
                        .collect(),
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot read the indices' refresh intervals");
                        Vec::new()
                    }
                },
            };
            for (index, stall) in intervals {
                out.insert(index, stall.unwrap_or(DISABLED_REFRESH_STALL));
            }
        }
        out
    }

    async fn first_seq_at_or_after(
        &self,
        pid: &PartitionId,
        node: &str,
        ms: i64,
    ) -> Result<Option<i64>> {
        let body = json!({"size": 1, "sort": [{"_seq_no": "asc"}], "seq_no_primary_term": true, "track_total_hits": false, "_source": false, "query": {"range": {self.config.timestamp_field.clone(): {"gte": ms, "format": "epoch_millis"}}}});
        let q = [("preference", shard_preference(&self.info, pid.shard, node))];
        let resp = self.client.search(&pid.index, &q, body).await?;
        Ok(resp.hits.hits.first().and_then(|h| h.seq_no))
    }

    /// Starts one page read for every partition with something new.
    fn spawn_fast_reads(&self) -> FastReads {
        let mut set = JoinSet::new();
        for p in self.partitions.values() {
            let Some((after, upto)) = p.fast_range() else {
                continue;
            };
            let client = self.client.clone();
            let body = json!({"size": self.config.batch_size, "sort": [{"_seq_no": "asc"}], "seq_no_primary_term": true, "track_total_hits": false, "query": {"range": {"_seq_no": {"gt": after, "lte": upto}}}});
            let q = vec![(
                "preference",
                shard_preference(&self.info, p.id.shard, &p.node),
            )];
            let (pid, confirmed_then) = (p.id.clone(), p.confirmed);
            set.spawn(async move {
                let result = client.search(&pid.index, &q, body).await;
                FastRead {
                    pid,
                    after,
                    upto,
                    confirmed_then,
                    result,
                }
            });
        }
        set
    }

    /// Reads one page of every partition with something new, and starts the next pages before
    /// returning, so that the cluster works while the caller processes this batch. Returns
    /// whether it read anything.
    async fn fast_step(&mut self) -> Result<bool> {
        let mut set = match self.inflight.take() {
            Some(set) => set,
            None => self.spawn_fast_reads(),
        };
        if set.is_empty() {
            return Ok(false);
        }
        let mut results = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(r) = r {
                results.push(r);
            }
        }
        results.sort_by(|a, b| a.pid.cmp(&b.pid));
        let mut first_error = None;
        for FastRead {
            pid,
            after,
            upto,
            confirmed_then,
            result,
        } in results
        {
            let resp = match result {
                Ok(r) => r,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            let Some(p) = self.partitions.get_mut(&pid) else {
                continue;
            };
            let full = resp.hits.hits.len() >= self.config.batch_size;
            let last = resp.hits.hits.last().and_then(|h| h.seq_no);
            let mut records = Vec::with_capacity(resp.hits.hits.len());
            for hit in resp.hits.hits {
                if let Some(seq) = hit.seq_no {
                    if let Some(previous) = hit.primary_term.and_then(|t| p.note_primary_term(t)) {
                        tracing::info!(partition = %pid, primary_term = hit.primary_term, previous, "documents written under a new primary term");
                    }
                    if p.take(seq) {
                        records.push(record_of(hit, pid.shard));
                    }
                }
            }
            p.fast_page_done(last, full, upto);
            let cover = match (full, last) {
                (true, Some(l)) => l,
                _ => upto,
            };
            let marks = p
                .page_read(after, cover, confirmed_then)
                .map(|safe| vec![(pid.clone(), safe)])
                .unwrap_or_default();
            if full && p.budget == 0 {
                self.more = true;
            }
            // One queued page per partition: handing it out makes its mark committable.
            self.pending.push_back(Pending {
                records,
                marks,
                keys: Vec::new(),
            });
        }
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(true),
        }
    }

    /// Reads what the fast path missed: below each confirmed checkpoint (then moves `safe` there),
    /// and, for lower latency, the few gaps below what the fast path covered, every round (a
    /// write that was not yet visible when the fast path passed it is delivered as soon as a
    /// refresh shows it, not only when its checkpoint is confirmed).
    async fn fill_gaps(&mut self) -> Result<()> {
        let mut confirm = std::mem::take(&mut self.confirm);
        let pids: Vec<PartitionId> = self.partitions.keys().cloned().collect();
        let mut outcome = Ok(());
        for pid in pids {
            let mut confirmed = confirm.remove(&pid);
            // A checkpoint beyond what the fast path has covered waits until it gets there: the
            // gap read is for stragglers, not for catching up (which pages through the fast path).
            if let (Some(cp), Some(p)) = (confirmed, self.partitions.get(&pid)) {
                if p.read_hi < cp {
                    self.confirm.insert(pid.clone(), cp);
                    confirmed = None;
                }
            }
            if outcome.is_err() {
                if let Some(cp) = confirmed {
                    self.confirm.insert(pid, cp);
                }
                continue;
            }
            let Some(p) = self.partitions.get(&pid) else {
                continue;
            };
            let upto = confirmed.unwrap_or(p.read_hi.min(p.checkpoint));
            let gaps = p.gaps(upto);
            let (safe, node) = (p.safe, p.node.clone());
            if confirmed.is_none() && (gaps.is_empty() || gaps.len() > MAX_EAGER_GAP_RANGES) {
                continue;
            }
            let result = if gaps.is_empty() {
                Ok(())
            } else {
                self.read_gaps(&pid, &node, safe, upto, &gaps).await
            };
            let records = Vec::new();
            self.stats.gap_reads += (!gaps.is_empty()) as u64;
            match (result, confirmed) {
                (Ok(()), Some(cp)) => {
                    if let Some(p) = self.partitions.get_mut(&pid) {
                        p.advance_safe(cp);
                    }
                    self.pending.push_back(Pending {
                        records,
                        marks: vec![(pid, cp)],
                        keys: Vec::new(),
                    });
                }
                (Ok(()), None) => self.pending.push_back(Pending {
                    records,
                    marks: Vec::new(),
                    keys: Vec::new(),
                }),
                (Err(e), cp) => {
                    // What was read is handed out; the checkpoint is confirmed again next time.
                    self.pending.push_back(Pending {
                        records,
                        marks: Vec::new(),
                        keys: Vec::new(),
                    });
                    if let Some(cp) = cp {
                        self.confirm.insert(pid, cp);
                    }
                    outcome = Err(e);
                }
            }
        }
        outcome
    }

    /// Reads the gaps, handing each page's new documents out as it goes.
    async fn read_gaps(
        &mut self,
        pid: &PartitionId,
        node: &str,
        safe: i64,
        checkpoint: i64,
        gaps: &[(i64, i64)],
    ) -> Result<()> {
        let mut filter = vec![json!({"range": {"_seq_no": {"gt": safe, "lte": checkpoint}}})];
        if gaps.len() <= 64 {
            let should: Vec<Value> = gaps
                .iter()
                .map(|(a, b)| json!({"range": {"_seq_no": {"gte": a, "lte": b}}}))
                .collect();
            filter.push(json!({"bool": {"should": should, "minimum_should_match": 1}}));
        }
        let mut after: Option<i64> = None;
        loop {
            let mut body = json!({"size": self.config.batch_size, "sort": [{"_seq_no": "asc"}], "seq_no_primary_term": true, "track_total_hits": false, "query": {"bool": {"filter": filter}}});
            if let Some(a) = after {
                body["search_after"] = json!([a]);
            }
            let q = [("preference", shard_preference(&self.info, pid.shard, node))];
            let resp = self.client.search(&pid.index, &q, body).await?;
            let n = resp.hits.hits.len();
            let Some(p) = self.partitions.get_mut(pid) else {
                return Ok(());
            };
            let mut records = Vec::new();
            for hit in resp.hits.hits {
                if let Some(seq) = hit.seq_no {
                    after = Some(seq);
                    if p.take(seq) {
                        records.push(record_of(hit, pid.shard));
                    }
                }
            }
            self.pending.push_back(Pending {
                records,
                marks: Vec::new(),
                keys: Vec::new(),
            });
            if n < self.config.batch_size {
                return Ok(());
            }
        }
    }

    fn note_handed_out(&mut self, records: &[Record]) {
        // Batches come partition by partition: look the partition up once per run of records.
        for run in records.chunk_by(|a, b| a.index == b.index && a.shard == b.shard) {
            let (Some(shard), Some(uuid)) = (run[0].shard, self.uuid_of.get(&run[0].index)) else {
                continue;
            };
            let pid = PartitionId {
                index: run[0].index.clone(),
                uuid: uuid.clone(),
                shard,
            };
            let handed = self.handed.get_mut(&pid);
            let set = self.handed_out.entry(pid).or_default();
            for seq in run.iter().filter_map(|r| r.seq_no) {
                set.insert(seq);
            }
            if let Some(h) = handed {
                for seq in run.iter().filter_map(|r| r.seq_no) {
                    h.record(seq);
                }
            }
        }
    }

    /// Documents handed out whose offsets are not committed yet.
    pub fn uncommitted(&self) -> u64 {
        match &self.ts {
            Some(ts) => ts.uncommitted(),
            None => self.handed_out.values().map(|s| s.len()).sum(),
        }
    }

    /// Delivered events that make a commit due, in both modes (a timestamp-mode commit writes
    /// the keys since the last one, not the whole window).
    fn commit_threshold(&self) -> u64 {
        self.config.commit_every_events
    }

    /// Whether a commit now would write anything.
    fn has_committable(&self) -> bool {
        match &self.ts {
            Some(ts) => ts.dirty(),
            None => self.handed.values().any(|h| h.to_commit().is_some()),
        }
    }

    /// Commits, per partition, the offset up to which everything handed out so far is covered.
    /// Call only once the caller has acknowledged everything `poll` returned.
    pub async fn commit(&mut self) -> Result<usize> {
        let snapshot = self.commit_snapshot();
        self.commit_from(snapshot).await
    }

    /// What a commit would write now: take it when the sink's flush starts, commit it once the
    /// flush has finished (what is handed out meanwhile is not in it).
    fn commit_snapshot(&mut self) -> CommitSnapshot {
        if self.ts.is_some() {
            return match self.timestamp_snapshot() {
                Some(c) => CommitSnapshot::Timestamp(Box::new(c)),
                None => CommitSnapshot::Nothing,
            };
        }
        let entries: Vec<(crate::offset::StoredOffset, u64)> = self
            .handed
            .iter()
            .filter(|(pid, _)| self.partitions.contains_key(*pid))
            .filter_map(|(pid, h)| {
                let c = h.to_commit()?;
                Some((
                    crate::offset::StoredOffset {
                        partition: pid.clone(),
                        seq_no: c.safe,
                        delivered: c.delivered,
                    },
                    c.version,
                ))
            })
            .collect();
        if entries.is_empty() {
            CommitSnapshot::Nothing
        } else {
            CommitSnapshot::Exact(entries)
        }
    }

    async fn commit_from(&mut self, snapshot: CommitSnapshot) -> Result<usize> {
        // A member that lost its lease must not move offsets (the cluster's CAS refuses it too
        // once the new holder has written; this refuses it before that).
        if let Some(lease) = self.lease.as_ref() {
            lease.check()?;
        }
        let entries = match snapshot {
            CommitSnapshot::Nothing => return Ok(0),
            CommitSnapshot::Timestamp(c) => return self.commit_timestamp(*c).await,
            CommitSnapshot::Exact(entries) => entries,
        };
        let offsets: Vec<crate::offset::StoredOffset> =
            entries.iter().map(|(o, _)| o.clone()).collect();
        self.offsets.commit(self.config.mode, &offsets).await?;
        for (o, version) in &entries {
            let pid = &o.partition;
            if let Some(p) = self.partitions.get_mut(pid) {
                p.committed = p.committed.max(o.seq_no);
            }
            if let Some(h) = self.handed.get_mut(pid) {
                h.committed_at(*version);
            }
            if let Some(set) = self.handed_out.get_mut(pid) {
                set.remove_through(o.seq_no);
                for (a, b) in &o.delivered {
                    set.remove_range(*a, *b);
                }
            }
            tracing::debug!(partition = %pid, seq_no = o.seq_no, delivered_ranges = o.delivered.len(), "offset committed");
        }
        self.stats.commits += 1;
        Ok(entries.len())
    }

    /// Releases the group's lease.
    pub async fn close(mut self) -> Result<()> {
        if let Some(lease) = self.lease.take() {
            lease.release().await?;
        }
        Ok(())
    }

    /// Reads into `sink` until `shutdown` resolves (or a [`RunOptions`] limit is reached), flushing
    /// the sink and committing every `commit_every_events` events or `commit_every`, and once
    /// more at the end. Transient errors are retried with backoff; the lease is released on exit.
    pub async fn run<S: Sink>(
        &mut self,
        sink: &mut S,
        opts: RunOptions,
        shutdown: impl Future<Output = ()>,
    ) -> Result<RunSummary> {
        tokio::pin!(shutdown);
        let dead_letter = match &opts.dead_letter {
            Some(path) => Some(crate::sink::DeadLetterFile::open(path)?),
            None => None,
        };
        let mut sink = Delivery { sink, dead_letter };
        let sink = &mut sink;
        let started = Instant::now();
        let mut delivered: u64 = 0;
        let mut since_commit: u64 = 0;
        let mut last_commit = Instant::now();
        let mut last_delivery = Instant::now();
        let mut failures: u32 = 0;
        let mut commit_failures: u32 = 0;
        let mut retry_commit_at = Instant::now();
        let mut paused = false;
        let mut stop = StopReason::Shutdown;
        // A commit whose sink flush is under way: fetching and delivering go on meanwhile.
        let mut in_flight: Option<InFlightCommit> = None;
        let result: Result<()> = async {
            loop {
                let stopping = tokio::select! { biased; _ = &mut shutdown => true, _ = std::future::ready(()) => false };
                if stopping {
                    stop = StopReason::Shutdown;
                    return Ok(());
                }
                let room = opts.max_events.map(|m| m.saturating_sub(delivered) as usize).unwrap_or(usize::MAX);
                if room == 0 {
                    stop = StopReason::MaxEvents;
                    return Ok(());
                }
                // Delivered but not committed: past the bound, fetch nothing more until a commit
                // gets through (the offset store may be down), rather than grow without limit.
                if commit_failures > 0 && self.uncommitted() >= opts.max_uncommitted {
                    if !paused {
                        paused = true;
                        tracing::warn!(uncommitted = self.uncommitted(), bound = opts.max_uncommitted, "uncommitted backlog full while commits fail: fetching paused until they succeed");
                    }
                    let wait = retry_commit_at.saturating_duration_since(Instant::now()).max(Duration::from_millis(20));
                    tokio::select! { _ = &mut shutdown => { stop = StopReason::Shutdown; return Ok(()) }, _ = tokio::time::sleep(wait) => {} }
                    if let Some(f) = in_flight.take() {
                        f.flush.wait().await?;
                    }
                    self.try_commit(sink, &mut since_commit, &mut last_commit, &mut commit_failures, &mut retry_commit_at).await?;
                    continue;
                }
                let polled_at = Instant::now();
                let batch = match self.poll(room.min(self.config.batch_size)).await {
                    Ok(b) => {
                        failures = 0;
                        self.telemetry.poll_succeeded(b.len(), polled_at.elapsed());
                        b
                    }
                    Err(e) if e.is_retriable() && failures < opts.max_consecutive_failures => {
                        failures += 1;
                        // Capped below the breaker's open timeout: while a breaker is open the polls fail
                        // fast without touching the network, and the probe should not wait for us.
                        let cap = Duration::from_secs(5).min(self.config.breaker.open_timeout / 2).max(Duration::from_millis(100));
                        let backoff = Backoff::new(Duration::from_millis(100), cap).ceiling(failures);
                        self.telemetry.poll_failed(&e, failures, backoff);
                        tokio::select! { _ = &mut shutdown => { stop = StopReason::Shutdown; return Ok(()) }, _ = tokio::time::sleep(backoff) => {} }
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                // The commit contract: a crash repeats at most `commit_every_events` plus one
                // batch. A batch that would leave more than that uncommitted waits for the
                // commit under way (its snapshot was taken before this batch was handed out).
                if !batch.is_empty()
                    && self.uncommitted() > self.config.commit_every_events + self.config.batch_size as u64
                {
                    if let Some(f) = in_flight.take() {
                        let before = commit_failures;
                        f.flush.wait().await?;
                        let result = self.commit_from(f.snapshot).await;
                        self.commit_outcome(result, f.covered, &mut since_commit, &mut last_commit, &mut commit_failures, &mut retry_commit_at)?;
                        if paused && commit_failures == 0 && before > 0 {
                            paused = false;
                            tracing::info!("commits succeed again: fetching resumed");
                        }
                    }
                }
                if !batch.is_empty() {
                    let written_at = Instant::now();
                    self.deliver(sink, &batch, &opts).await?;
                    self.telemetry.batch_delivered(batch.len(), written_at.elapsed());
                    delivered += batch.len() as u64;
                    since_commit += batch.len() as u64;
                    last_delivery = Instant::now();
                }
                // When due and none is under way, a commit starts: the sink's flush, with a
                // snapshot of the offsets it will cover. It goes out once that flush has
                // finished (at once for sinks that flush synchronously); fetching and delivering
                // go on meanwhile.
                let due = since_commit >= self.commit_threshold() || (last_commit.elapsed() >= self.config.commit_every && (since_commit > 0 || self.has_committable()));
                if due && in_flight.is_none() && Instant::now() >= retry_commit_at {
                    let snapshot = self.commit_snapshot();
                    in_flight = Some(InFlightCommit { flush: sink.start_flush().await?, snapshot, covered: since_commit });
                }
                if in_flight.as_ref().is_some_and(|f| f.flush.is_finished()) {
                    if let Some(f) = in_flight.take() {
                        let before = commit_failures;
                        f.flush.wait().await?;
                        let result = self.commit_from(f.snapshot).await;
                        self.commit_outcome(result, f.covered, &mut since_commit, &mut last_commit, &mut commit_failures, &mut retry_commit_at)?;
                        if paused && commit_failures == 0 && before > 0 {
                            paused = false;
                            tracing::info!("commits succeed again: fetching resumed");
                        }
                    }
                }
                if batch.is_empty() {
                    if let Some(idle) = opts.until_idle {
                        if self.caught_up() && last_delivery.elapsed() >= idle {
                            stop = StopReason::Idle;
                            return Ok(());
                        }
                    }
                    let wait = self.next_poll_in().max(Duration::from_millis(5));
                    tokio::select! { _ = &mut shutdown => { stop = StopReason::Shutdown; return Ok(()) }, _ = tokio::time::sleep(wait) => {} }
                }
            }
        }
        .await;
        // Whatever stopped the loop, acknowledge and commit what was delivered, within the
        // shutdown timeout even when the cluster is failing.
        let final_commit = tokio::time::timeout(opts.shutdown_timeout, async {
            // The final flush and commit cover everything; an unfinished one is superseded.
            if let Some(f) = in_flight.take() {
                f.flush.wait().await?;
            }
            sink.flush().await?;
            self.commit_with_retry().await
        })
        .await;
        result?;
        match final_commit {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::ShutdownTimeout {
                    timeout: opts.shutdown_timeout,
                    uncommitted: self.uncommitted(),
                })
            }
        }
        Ok(RunSummary {
            delivered,
            elapsed: started.elapsed(),
            stop,
        })
    }

    /// One commit attempt of the run loop: on a transient failure it schedules the next attempt
    /// (exponential, capped at 5 s) instead of failing the run; fencing and other errors stop it.
    /// Hands a batch to the sink. A record the sink keeps failing on (after `sink_attempts`
    /// attempts on its own) goes to the dead-letter file and delivery moves on; without one,
    /// the consumer stops with [`Error::Poison`] rather than skip it silently.
    async fn deliver<S: Sink>(
        &mut self,
        out: &mut Delivery<'_, S>,
        batch: &[Record],
        opts: &RunOptions,
    ) -> Result<()> {
        let mut start = 0;
        while start < batch.len() {
            let Err((i, first)) = out.sink.write_each(&batch[start..]).await else {
                return Ok(());
            };
            let at = start + i;
            let mut last = first;
            let mut attempts = 1;
            let mut taken = false;
            // A failure the sink says a retry cannot help is not tried again.
            while last.is_retriable() && attempts < opts.sink_attempts.max(1) {
                tokio::time::sleep(SINK_RETRY.ceiling(attempts)).await;
                attempts += 1;
                match out.sink.write_each(&batch[at..at + 1]).await {
                    Ok(()) => {
                        taken = true;
                        break;
                    }
                    Err((_, e)) => last = e,
                }
            }
            if !taken {
                let record = &batch[at];
                match out.dead_letter.as_mut() {
                    Some(dl) => {
                        dl.write(&[crate::sink::dead_letter_entry(record, &last)])
                            .await?;
                        self.telemetry.dead_lettered(record, &last);
                    }
                    None => {
                        return Err(Error::Poison {
                            index: record.index.clone(),
                            id: record.id.clone(),
                            attempts,
                            reason: last.to_string(),
                        })
                    }
                }
            }
            start = at + 1;
        }
        Ok(())
    }

    async fn try_commit<S: Sink>(
        &mut self,
        sink: &mut Delivery<'_, S>,
        since_commit: &mut u64,
        last_commit: &mut Instant,
        failures: &mut u32,
        retry_at: &mut Instant,
    ) -> Result<()> {
        sink.flush().await?;
        let covered = *since_commit;
        let result = self.commit().await;
        self.commit_outcome(
            result,
            covered,
            since_commit,
            last_commit,
            failures,
            retry_at,
        )
    }

    /// Accounts for a commit attempt of the run loop that covered `covered` delivered events.
    fn commit_outcome(
        &mut self,
        result: Result<usize>,
        covered: u64,
        since_commit: &mut u64,
        last_commit: &mut Instant,
        failures: &mut u32,
        retry_at: &mut Instant,
    ) -> Result<()> {
        match result {
            Ok(n) => {
                if n > 0 {
                    self.telemetry.commit_succeeded();
                }
                self.telemetry.positions(&self.status());
                *since_commit = since_commit.saturating_sub(covered);
                *last_commit = Instant::now();
                *failures = 0;
                Ok(())
            }
            Err(e) if e.is_retriable() => {
                *failures += 1;
                self.telemetry.commit_failed(&e, *failures, true);
                *retry_at = Instant::now() + COMMIT_RETRY.ceiling(*failures);
                Ok(())
            }
            Err(e) => {
                self.telemetry.commit_failed(&e, *failures + 1, false);
                Err(e)
            }
        }
    }

    async fn commit_with_retry(&mut self) -> Result<()> {
        let mut attempt: u32 = 0;
        loop {
            match self.commit().await {
                Ok(n) => {
                    if n > 0 {
                        self.telemetry.commit_succeeded();
                    }
                    self.telemetry.positions(&self.status());
                    return Ok(());
                }
                Err(e) if e.is_retriable() && attempt < 5 => {
                    attempt += 1;
                    self.telemetry.commit_failed(&e, attempt, true);
                    tokio::time::sleep(FINAL_COMMIT_RETRY.ceiling(attempt - 1)).await;
                }
                Err(e) => {
                    self.telemetry.commit_failed(&e, attempt, false);
                    return Err(e);
                }
            }
        }
    }
}

/// The run loop's waits: before a record the sink refused is tried again (from 100 ms)...
const SINK_RETRY: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(3200));
/// ...before a failed commit is tried again while delivery goes on (from 200 ms, at most 5 s)...
const COMMIT_RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
/// ...and between the attempts of the final commit at shutdown (200 ms, 400 ms, 800 ms, 1 s).
const FINAL_COMMIT_RETRY: Backoff =
    Backoff::new(Duration::from_millis(200), Duration::from_secs(1));

/// A commit of the run loop waiting for its sink flush.
struct InFlightCommit {
    flush: crate::sink::PendingFlush,
    snapshot: CommitSnapshot,
    /// Delivered events it covers.
    covered: u64,
}

/// What one commit writes, taken when the sink's flush for it starts.
#[derive(Debug)]
enum CommitSnapshot {
    Nothing,
    /// The offsets, each with the version of its partition's handed-out state it covers.
    Exact(Vec<(crate::offset::StoredOffset, u64)>),
    Timestamp(Box<timestamp_read::TimestampCommit>),
}

/// The stall timeout for an index whose refreshes are disabled (`refresh_interval: -1`).
const DISABLED_REFRESH_STALL: Duration = Duration::from_secs(5);

/// The shortest derived stall timeout (for indices refreshing every few milliseconds).
const MIN_STALL: Duration = Duration::from_millis(300);

/// Gap ranges read every round before their checkpoint is confirmed; more than this many waits
/// for the confirmation (one read instead of many).
const MAX_EAGER_GAP_RANGES: usize = 16;

/// The sink of a run with its dead-letter file: flushing one flushes both, so a commit never
/// covers a dead letter that is not durable.
struct Delivery<'a, S> {
    sink: &'a mut S,
    dead_letter: Option<crate::sink::DeadLetterFile>,
}

impl<S: Sink> Delivery<'_, S> {
    async fn flush(&mut self) -> Result<(), crate::sink::SinkError> {
        if let Some(dl) = self.dead_letter.as_mut() {
            dl.flush().await?;
        }
        self.sink.flush().await
    }

    async fn start_flush(&mut self) -> Result<crate::sink::PendingFlush, crate::sink::SinkError> {
        // Dead letters are rare: synced at once, before the sink's flush starts.
        if let Some(dl) = self.dead_letter.as_mut() {
            dl.flush().await?;
        }
        self.sink.start_flush().await
    }
}

/// Limits of [`Consumer::run`].
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Stop (after the final commit) once caught up and nothing new arrived for this long.
    pub until_idle: Option<Duration>,
    /// Stop after delivering this many documents.
    pub max_events: Option<u64>,
    /// Give up after this many failed polls in a row.
    pub max_consecutive_failures: u32,
    /// Delivered-but-uncommitted events allowed while commits fail; past it, fetching pauses.
    pub max_uncommitted: u64,
    /// How long the final flush and commit may take at shutdown.
    pub shutdown_timeout: Duration,
    /// Attempts the sink gets on one document before it is poison.
    pub sink_attempts: u32,
    /// Where poison documents go; `None` stops the consumer on the first one.
    pub dead_letter: Option<std::path::PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            until_idle: None,
            max_events: None,
            max_consecutive_failures: 20,
            max_uncommitted: 100_000,
            shutdown_timeout: Duration::from_secs(30),
            sink_attempts: 3,
            dead_letter: None,
        }
    }
}

/// Why [`Consumer::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The `shutdown` future resolved.
    Shutdown,
    /// [`RunOptions::until_idle`]: caught up, and nothing new arrived for that long.
    Idle,
    /// [`RunOptions::max_events`] documents were delivered.
    MaxEvents,
}

/// What a [`Consumer::run`] that ended without an error did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Documents handed to the sink during this run (dead-lettered ones included).
    pub delivered: u64,
    /// How long the run took, the final commit included.
    pub elapsed: Duration,
    /// Why it stopped.
    pub stop: StopReason,
}
