//! `indexstream consume`: flags, environment (`INDEXSTREAM_*`) and a TOML config file, merged
//! in that order of precedence, then the library's consumer.
//!
//! One struct, [`ConsumeArgs`], is both the flags (clap) and the config file's keys (serde, the
//! flags' long names): the file is read into the same type, the flags that were given are laid
//! over it, and the result is turned into the library's config in one place.

use std::path::PathBuf;
use std::time::Duration;

use indexstream::{
    ConsumerConfig, DeadLetter, ExactSettings, OnMissingTimestamp, ReadMode, RefreshPolicy,
    RunOptions, SinkSpec, StartFrom, TimestampPartitions, TimestampSettings,
};
use serde::{Deserialize, Serialize};

use crate::common::{parse_duration, shutdown_signal, ConnArgs};
use crate::config_file::{self, ConfigFile};
use crate::UsageError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModeArg {
    Exact,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionsArg {
    /// The whole expression is one partition, read by one member of the group at a time.
    One,
    /// Every shard is a partition with its own cursor: the group's members share them.
    Shards,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissingArg {
    /// Count it, log its id, do not deliver it.
    Skip,
    /// Stop with an error naming it (exit 1).
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefreshArg {
    /// Wait for the refresh counter; refresh explicitly only when it stalls.
    Counter,
    /// Refresh explicitly every round.
    Force,
}

const READING: &str = "Reading";
const TIMESTAMP: &str = "Timestamp mode";
const COMMITS: &str = "Commits and the group";
const RESILIENCE: &str = "Resilience";
const OUTPUT: &str = "Output";
const OBSERVE: &str = "Observability";

/// Every setting of `consume`: as flags (clap), and as config-file keys (serde; the key is the
/// flag's long name).
#[derive(Debug, Clone, Default, clap::Args, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct ConsumeArgs {
    /// Index, comma list, pattern, alias or data stream to read (same as --index).
    #[arg(value_name = "INDEX")]
    #[serde(skip)]
    index_pos: Option<String>,
    /// Consumer group (same as --group).
    #[arg(value_name = "GROUP")]
    #[serde(skip)]
    group_pos: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    conn: ConnArgs,
    /// TOML config file; every flag has a key (its long name), flags and environment win over it.
    #[arg(long, env = "INDEXSTREAM_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,

    /// Index, comma list, pattern, alias or data stream to read.
    #[arg(long, env = "INDEXSTREAM_INDEX", help_heading = READING)]
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<String>,
    /// Consumer group: its offsets are shared by restarts of the consumer.
    #[arg(long, visible_alias = "consumer-id", env = "INDEXSTREAM_GROUP", help_heading = READING)]
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    /// exact: shards and _seq_no up to the global checkpoint (default). timestamp: a timestamp cursor with a safety window.
    #[arg(long, env = "INDEXSTREAM_MODE", value_enum, help_heading = READING)]
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<ModeArg>,
    /// Where a group without a committed offset starts: earliest, latest, or an RFC 3339 time [default: earliest]
    #[arg(long, env = "INDEXSTREAM_START", help_heading = READING)]
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "config_file::text_or_datetime"
    )]
    start: Option<String>,
    /// Timestamp field (timestamp mode; --start <time> in exact mode) [default: @timestamp]
    #[arg(long, env = "INDEXSTREAM_TIMESTAMP_FIELD", help_heading = READING)]
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp_field: Option<String>,
    /// Documents per search page, 1..=10000; a delivered batch is at most one page [default: 100]
    #[arg(long, visible_alias = "batch-size", env = "INDEXSTREAM_PAGE_SIZE", help_heading = READING)]
    #[serde(skip_serializing_if = "Option::is_none")]
    page_size: Option<usize>,
    /// Pause between polls once caught up [default: 1s]
    #[arg(long, env = "INDEXSTREAM_POLL_INTERVAL", value_parser = parse_duration, help_heading = READING)]
    #[serde(
        with = "config_file::duration",
        skip_serializing_if = "Option::is_none"
    )]
    poll_interval: Option<Duration>,
    /// Exact mode: how checkpoints are proven searchable: counter (default) or force (explicit _refresh)
    #[arg(long, env = "INDEXSTREAM_REFRESH_POLICY", value_enum, help_heading = READING)]
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_policy: Option<RefreshArg>,

    /// Timestamp mode: how far behind the cursor each poll re-reads [default: 30s]
    #[arg(long, env = "INDEXSTREAM_SAFETY_WINDOW", value_parser = parse_duration, help_heading = TIMESTAMP)]
    #[serde(
        with = "config_file::duration",
        skip_serializing_if = "Option::is_none"
    )]
    safety_window: Option<Duration>,
    /// Timestamp mode: one partition for the whole expression (one member reads it), or one per shard (several members share them; `_seq_no` breaks ties) [default: one]
    #[arg(long, env = "INDEXSTREAM_TIMESTAMP_PARTITIONS", value_enum, help_heading = TIMESTAMP)]
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp_partitions: Option<PartitionsArg>,
    /// Timestamp mode: unique tiebreaker field [default: _id; _seq_no with --timestamp-partitions shards]
    #[arg(long, env = "INDEXSTREAM_TIEBREAKER_FIELD", help_heading = TIMESTAMP)]
    #[serde(skip_serializing_if = "Option::is_none")]
    tiebreaker_field: Option<String>,
    /// Timestamp mode: an extra filter for every read, as JSON query DSL, e.g. '{"term":{"outcome":"failure"}}'
    #[arg(long, env = "INDEXSTREAM_QUERY", help_heading = TIMESTAMP)]
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<String>,
    /// Timestamp mode: documents without a usable timestamp are counted, logged and skipped, or stop the consumer [default: skip]
    #[arg(long, env = "INDEXSTREAM_ON_MISSING_TIMESTAMP", value_enum, help_heading = TIMESTAMP)]
    #[serde(skip_serializing_if = "Option::is_none")]
    on_missing_timestamp: Option<MissingArg>,
    /// Timestamp mode: the most delivered-document keys the safety window holds; past it the oldest timestamps leave the window early (a warning and a metric say so) [default: 100000]
    #[arg(long, env = "INDEXSTREAM_WINDOW_CAP", help_heading = TIMESTAMP)]
    #[serde(skip_serializing_if = "Option::is_none")]
    window_cap: Option<usize>,
    /// Timestamp mode: how long time behind the window is watched for documents that arrived too late [default: 10m]
    #[arg(long, env = "INDEXSTREAM_MISSED_LATE_HORIZON", value_parser = parse_duration, help_heading = TIMESTAMP)]
    #[serde(
        with = "config_file::duration",
        skip_serializing_if = "Option::is_none"
    )]
    missed_late_horizon: Option<Duration>,
    /// Timestamp mode: how often that time is counted (one _count per window-wide bucket), and documents without a usable timestamp [default: 10s]
    #[arg(long, env = "INDEXSTREAM_MISSED_LATE_CHECK", value_parser = parse_duration, help_heading = TIMESTAMP)]
    #[serde(
        with = "config_file::duration",
        skip_serializing_if = "Option::is_none"
    )]
    missed_late_check: Option<Duration>,

    /// Commit offsets after this many delivered events [default: 50]
    #[arg(long, env = "INDEXSTREAM_COMMIT_INTERVAL", help_heading = COMMITS)]
    #[serde(skip_serializing_if = "Option::is_none")]
    commit_interval: Option<u64>,
    /// Commit offsets at least this often while delivering [default: 5s]
    #[arg(long, env = "INDEXSTREAM_COMMIT_EVERY", value_parser = parse_duration, help_heading = COMMITS)]
    #[serde(
        with = "config_file::duration",
        skip_serializing_if = "Option::is_none"
    )]
    commit_every: Option<Duration>,
    /// Index holding offsets and leases [default: indexstream-offsets]
    #[arg(long, env = "INDEXSTREAM_OFFSETS_INDEX", help_heading = COMMITS)]
    #[serde(skip_serializing_if = "Option::is_none")]
    offsets_index: Option<String>,
    /// This member's name in the group lease (a restart with the same id takes over at once) [default: HOSTNAME-PID]
    #[arg(long, env = "INDEXSTREAM_MEMBER_ID", help_heading = COMMITS)]
    #[serde(skip_serializing_if = "Option::is_none")]
    member_id: Option<String>,
    /// How long a member's claims (timestamp mode: the group lease) live without a heartbeat; renewed every third of it [default: 30s]
    #[arg(long, env = "INDEXSTREAM_LEASE_TTL", value_parser = parse_duration, help_heading = COMMITS)]
    #[serde(
        with = "config_file::duration",
        skip_serializing_if = "Option::is_none"
    )]
    lease_ttl: Option<Duration>,
    /// Delivered-but-uncommitted events allowed while commits fail; past it, fetching pauses [default: 100000]
    #[arg(long, env = "INDEXSTREAM_MAX_UNCOMMITTED", help_heading = COMMITS)]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_uncommitted: Option<u64>,

    /// Attempts per request to the cluster, the first included [default: 3]
    #[arg(long, env = "INDEXSTREAM_RETRY_ATTEMPTS", help_heading = RESILIENCE)]
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_attempts: Option<u32>,
    /// Upper bound of the first retry's delay (full jitter, doubling) [default: 100ms]
    #[arg(long, env = "INDEXSTREAM_RETRY_BASE_DELAY", value_parser = parse_duration, help_heading = RESILIENCE)]
    #[serde(
        with = "config_file::duration",
        skip_serializing_if = "Option::is_none"
    )]
    retry_base_delay: Option<Duration>,
    /// No retry waits longer, nor longer than a Retry-After asks [default: 30s]
    #[arg(long, env = "INDEXSTREAM_RETRY_MAX_DELAY", value_parser = parse_duration, help_heading = RESILIENCE)]
    #[serde(
        with = "config_file::duration",
        skip_serializing_if = "Option::is_none"
    )]
    retry_max_delay: Option<Duration>,
    /// Consecutive failures that open a circuit breaker [default: 5]
    #[arg(long, env = "INDEXSTREAM_BREAKER_THRESHOLD", help_heading = RESILIENCE)]
    #[serde(skip_serializing_if = "Option::is_none")]
    breaker_threshold: Option<u32>,
    /// How long an open breaker fails fast before it lets one probe through [default: 60s]
    #[arg(long, env = "INDEXSTREAM_BREAKER_OPEN_TIMEOUT", value_parser = parse_duration, help_heading = RESILIENCE)]
    #[serde(
        with = "config_file::duration",
        skip_serializing_if = "Option::is_none"
    )]
    breaker_open_timeout: Option<Duration>,
    /// How long the final flush and commit may take at shutdown [default: 30s]
    #[arg(long, env = "INDEXSTREAM_SHUTDOWN_TIMEOUT", value_parser = parse_duration, help_heading = RESILIENCE)]
    #[serde(
        with = "config_file::duration",
        skip_serializing_if = "Option::is_none"
    )]
    shutdown_timeout: Option<Duration>,

    /// Where documents go: stdout, file:PATH, null, exec:COMMAND (run once per batch, the
    /// batch as JSON Lines on stdin, exit 0 acknowledges), index:NAME (an index of this
    /// cluster), index:URL/NAME (of another), kafka:TOPIC (idempotent producer, key
    /// index/id), or an http:// or https:// webhook URL (batches POSTed as JSON Lines, a 2xx
    /// acknowledges) [default: stdout]
    #[arg(long, env = "INDEXSTREAM_SINK", help_heading = OUTPUT)]
    #[serde(skip_serializing_if = "Option::is_none")]
    sink: Option<String>,
    /// An option of the sink, KEY=VALUE (repeatable): exec takes timeout (default 30s); index
    /// takes versioning=external|overwrite, and index:URL/NAME how to reach the other cluster:
    /// api-key, bearer-token or basic-auth=USER:PASSWORD, ca-cert, ca-cert-only=true,
    /// client-cert, client-key, ca-fingerprint; a webhook takes format=lines|array, max-records
    /// (500), max-bytes (4MiB), timeout (10s), header="Name: value", bearer-token,
    /// basic-auth=USER:PASSWORD; kafka takes brokers (localhost:9092), compression, linger,
    /// batch-size, timeout, sasl-username, sasl-password, sasl-mechanism
    /// (plain|scram-sha-256|scram-sha-512), tls=true, tls-ca-cert, tls-client-cert,
    /// tls-client-key. In a config file: sink-option =
    /// ["timeout=10s"], or a [sink] table (to = "kafka:audit", brokers = "k1:9092")
    #[arg(long = "sink-option", value_name = "KEY=VALUE", action = clap::ArgAction::Append, help_heading = OUTPUT)]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sink_option: Vec<String>,
    /// Where documents the sink keeps failing on go: file:PATH (JSON Lines with the error),
    /// index:NAME or index:URL/NAME (a document each, with the error and the time). Without it
    /// the consumer stops on such a document rather than skip it.
    #[arg(long, env = "INDEXSTREAM_DEAD_LETTER", help_heading = OUTPUT)]
    #[serde(skip_serializing_if = "Option::is_none")]
    dead_letter: Option<String>,
    /// Exit 0 after the final commit once caught up and nothing new arrived for this long.
    #[arg(long, env = "INDEXSTREAM_UNTIL_IDLE", value_parser = parse_duration, help_heading = OUTPUT)]
    #[serde(
        with = "config_file::duration",
        skip_serializing_if = "Option::is_none"
    )]
    until_idle: Option<Duration>,
    /// Exit 0 after delivering this many events.
    #[arg(long, env = "INDEXSTREAM_MAX_EVENTS", help_heading = OUTPUT)]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_events: Option<u64>,

    /// Address of the Prometheus metrics and health listener, e.g. 127.0.0.1:9464.
    #[arg(long, env = "INDEXSTREAM_METRICS_ADDR", help_heading = OBSERVE)]
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics_addr: Option<String>,
    /// How often to print the status report to stderr (also printed once at exit when set).
    #[arg(long, env = "INDEXSTREAM_REPORT_INTERVAL", value_parser = parse_duration, help_heading = OBSERVE)]
    #[serde(
        with = "config_file::duration",
        skip_serializing_if = "Option::is_none"
    )]
    report_interval: Option<Duration>,
}

/// Whether a setting is given in a [`ConsumeArgs`].
type Given = fn(&ConsumeArgs) -> bool;

/// The flag of a [`ConsumerConfig`] field that [`ConsumerConfig::validate`] (or the consumer at
/// start) names in an error.
const FLAG_OF_FIELD: &[(&str, &str)] = &[
    ("index", "index"),
    ("group", "group"),
    ("page_size", "page-size"),
    ("poll_interval", "poll-interval"),
    ("commit_every_events", "commit-interval"),
    ("commit_every", "commit-every"),
    ("lease_ttl", "lease-ttl"),
    ("offsets_index", "offsets-index"),
    ("member_id", "member-id"),
    ("timestamp_field", "timestamp-field"),
    ("retry.max_attempts", "retry-attempts"),
    ("breaker.failure_threshold", "breaker-threshold"),
    ("mode.tiebreaker_field", "tiebreaker-field"),
    ("mode.partitions", "timestamp-partitions"),
    ("mode.safety_window", "safety-window"),
    ("mode.window_cap", "window-cap"),
    ("mode.query", "query"),
    ("mode.missed_late_check_every", "missed-late-check"),
];

/// A library config error in the flags' words: `invalid --page-size: ...`.
pub fn config_error_text(field: &str, reason: &str) -> String {
    match FLAG_OF_FIELD.iter().find(|(f, _)| *f == field) {
        Some((_, flag)) => format!("invalid --{flag} (`{flag}` in a config file): {reason}"),
        None => format!("invalid {field}: {reason}"),
    }
}

/// The keys a config file may hold: every long flag of `consume` but `--config`.
pub fn config_keys() -> config_file::Keys {
    use clap::Args;
    let cmd = ConsumeArgs::augment_args(clap::Command::new("consume"));
    config_file::Keys::of(&cmd, &["config"])
}

/// Everything `consume` runs with, after merging flags, environment and file.
#[derive(Debug)]
pub struct Settings {
    pub consumer: ConsumerConfig,
    pub run: RunOptions,
    pub sink: SinkSpec,
    pub metrics_addr: Option<String>,
    pub report_interval: Option<Duration>,
}

impl ConsumeArgs {
    /// Flags and environment over the config file, checked and turned into the library's
    /// settings. Nothing touches the cluster.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let mut flags = self.clone();
        // Positional arguments win over --index/--group and their environment variables; with
        // --index (or INDEXSTREAM_INDEX) and one positional argument, that one is the group.
        match (&self.index_pos, &self.group_pos) {
            (Some(one), None) if self.index.is_some() && self.group.is_none() => {
                flags.group = Some(one.clone());
            }
            (index, group) => {
                flags.index = index.clone().or(flags.index);
                flags.group = group.clone().or(flags.group);
            }
        }
        let a = match &self.config {
            Some(path) => {
                let mut file = ConfigFile::load(path)?;
                file.check_keys(&config_keys())?;
                file.merge(&flags)?
            }
            None => config_file::no_file(&flags)?,
        };
        a.resolve(&flags)
    }

    /// The merged settings as the library's. `flags` are the flags and environment alone: a
    /// setting of the other mode is refused when it was given there, or in the file with the
    /// mode; one in the file while the flags chose the mode is left out with a warning (a
    /// file written for one mode still serves a run of the other).
    fn resolve(&self, flags: &ConsumeArgs) -> anyhow::Result<Settings> {
        let usage = |m: String| -> anyhow::Error { UsageError(m).into() };
        let mode = self.mode.unwrap_or(ModeArg::Exact);
        let foreign = |flag: &str, given: Given| -> anyhow::Result<bool> {
            if !given(self) {
                return Ok(false);
            }
            let (this, other) = match mode {
                ModeArg::Exact => ("exact", "timestamp"),
                ModeArg::Timestamp => ("timestamp", "exact"),
            };
            if given(flags) || flags.mode.is_none() {
                return Err(usage(format!(
                    "--{flag} applies to --mode {other} only; this consumer runs in {this} mode"
                )));
            }
            tracing::warn!(
                key = flag,
                mode = this,
                "the config file's `{flag}` applies to {other} mode only; left out"
            );
            Ok(true)
        };
        let index = self.index.clone().ok_or_else(|| {
            usage("no index: give INDEX, --index or `index` in the config file".into())
        })?;
        let group = self.group.clone().ok_or_else(|| {
            usage("no group: give GROUP, --group or `group` in the config file".into())
        })?;
        let timestamp_only: [(&str, Given); 8] = [
            ("safety-window", |a| a.safety_window.is_some()),
            ("timestamp-partitions", |a| a.timestamp_partitions.is_some()),
            ("tiebreaker-field", |a| a.tiebreaker_field.is_some()),
            ("on-missing-timestamp", |a| a.on_missing_timestamp.is_some()),
            ("query", |a| a.query.is_some()),
            ("window-cap", |a| a.window_cap.is_some()),
            ("missed-late-horizon", |a| a.missed_late_horizon.is_some()),
            ("missed-late-check", |a| a.missed_late_check.is_some()),
        ];
        let mode = match mode {
            ModeArg::Exact => {
                for (flag, given) in timestamp_only {
                    foreign(flag, given)?;
                }
                let mut e = ExactSettings::default();
                if self.refresh_policy == Some(RefreshArg::Force) {
                    e = e.with_refresh_policy(RefreshPolicy::Force);
                }
                ReadMode::Exact(e)
            }
            ModeArg::Timestamp => {
                foreign("refresh-policy", |a| a.refresh_policy.is_some())?;
                let mut t = TimestampSettings::default();
                if let Some(v) = self.safety_window {
                    t = t.with_safety_window(v);
                }
                if self.timestamp_partitions == Some(PartitionsArg::Shards) {
                    t = t.with_partitions(TimestampPartitions::Shards);
                }
                if let Some(v) = &self.tiebreaker_field {
                    t = t.with_tiebreaker_field(v);
                }
                if let Some(q) = &self.query {
                    let v: serde_json::Value = serde_json::from_str(q)
                        .map_err(|e| usage(format!("--query is not JSON: {e}")))?;
                    t = t.with_query(Some(v));
                }
                if self.on_missing_timestamp == Some(MissingArg::Fail) {
                    t = t.with_on_missing_timestamp(OnMissingTimestamp::Fail);
                }
                if let Some(v) = self.window_cap {
                    t = t.with_window_cap(v);
                }
                if let Some(v) = self.missed_late_horizon {
                    t = t.with_missed_late_horizon(v);
                }
                if let Some(v) = self.missed_late_check {
                    t = t.with_missed_late_check_every(v);
                }
                ReadMode::Timestamp(t)
            }
        };
        let mut c = ConsumerConfig::new(self.conn.client_config()?, index, group);
        c.mode = mode;
        if let Some(v) = &self.timestamp_field {
            c.timestamp_field = v.clone();
        }
        if let Some(v) = self.page_size {
            c.page_size = v;
        }
        if let Some(v) = self.poll_interval {
            c.poll_interval = v;
        }
        if let Some(v) = self.commit_interval {
            c.commit_every_events = v;
        }
        if let Some(v) = self.commit_every {
            c.commit_every = v;
        }
        if let Some(s) = &self.start {
            c.start = s
                .parse::<StartFrom>()
                .map_err(|e| usage(format!("invalid --start: {e}")))?;
        }
        if let Some(v) = &self.offsets_index {
            c.offsets_index = v.clone();
        }
        if let Some(v) = &self.member_id {
            c.member_id = v.clone();
        }
        if let Some(v) = self.lease_ttl {
            c.lease_ttl = v;
        }
        let mut retry = indexstream::RetryPolicy::builder();
        if let Some(n) = self.retry_attempts {
            if n == 0 {
                return Err(usage(config_error_text(
                    "retry.max_attempts",
                    "must be at least 1",
                )));
            }
            retry = retry.max_attempts(n);
        }
        if let Some(d) = self.retry_base_delay {
            retry = retry.base_delay(d);
        }
        if let Some(d) = self.retry_max_delay {
            retry = retry.max_delay(d);
        }
        c.retry = retry.build();
        if let Some(n) = self.breaker_threshold {
            c.breaker.failure_threshold = n;
        }
        if let Some(d) = self.breaker_open_timeout {
            c.breaker.open_timeout = d;
        }
        c.validate().map_err(|e| match &e {
            indexstream::Error::Config { field, reason } => usage(config_error_text(field, reason)),
            other => usage(other.to_string()),
        })?;
        let mut options = Vec::with_capacity(self.sink_option.len());
        for o in &self.sink_option {
            match o.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => options.push((k.trim(), v.trim())),
                _ => {
                    return Err(usage(format!(
                        "invalid --sink-option {o:?}: expected KEY=VALUE, e.g. timeout=10s"
                    )))
                }
            }
        }
        let sink = SinkSpec::parse(self.sink.as_deref().unwrap_or("stdout"))
            .and_then(|s| s.with_options(options))
            .and_then(|s| s.check_against(&c.index, &c.offsets_index).map(|()| s))
            .map_err(|e| usage(format!("invalid --sink: {e}")))?;
        let mut run = RunOptions::default();
        run.until_idle = self.until_idle;
        run.max_events = self.max_events;
        if let Some(dl) = &self.dead_letter {
            let to = DeadLetter::parse(dl)
                .and_then(|to| {
                    to.check_against(&c.index, &c.offsets_index, &sink)
                        .map(|()| to)
                })
                .map_err(|e| usage(format!("invalid --dead-letter: {e}")))?;
            run.dead_letter = Some(to);
        }
        if let Some(n) = self.max_uncommitted {
            if n == 0 {
                return Err(usage(
                    "invalid --max-uncommitted: must be at least 1".into(),
                ));
            }
            run.max_uncommitted = n;
        }
        if let Some(d) = self.shutdown_timeout {
            run.shutdown_timeout = d;
        }
        Ok(Settings {
            consumer: c,
            run,
            sink,
            metrics_addr: self.metrics_addr.clone(),
            report_interval: self.report_interval,
        })
    }
}

pub async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    // Every input is checked (the sink opened, the metrics address bound) before the group is
    // joined: a bad one must not leave the group's lease held for the next, corrected, run.
    let mut sink = settings
        .sink
        .open(&settings.consumer.client, settings.consumer.mode.kind())
        .map_err(|e| {
            UsageError(format!(
                "cannot open the sink {}: {e}",
                args.sink.as_deref().unwrap_or("stdout")
            ))
        })?;
    let listener = match &settings.metrics_addr {
        Some(addr) => Some(crate::observe::bind(addr).await?),
        None => None,
    };
    let mut consumer = connect_with_retry(settings.consumer.clone()).await?;
    let telemetry = consumer.telemetry();
    let mut tasks = Vec::new();
    if let Some(listener) = listener {
        let (local, task) = crate::observe::serve(listener, telemetry.clone())?;
        crate::observe::say(
            &format!(
                "indexstream: metrics on http://{local}/metrics, health on http://{local}/health"
            ),
            serde_json::json!({"metrics": format!("http://{local}/metrics"), "health": format!("http://{local}/health")}),
        );
        tasks.push(task);
    }
    if let Some(every) = settings.report_interval {
        tasks.push(crate::observe::reporter(every, telemetry.clone()));
    }
    let progress = crate::observe::progress(telemetry.clone());
    let result = consumer
        .run(&mut sink, settings.run.clone(), shutdown_signal())
        .await;
    if let Some((task, bar)) = progress {
        task.abort();
        bar.finish_and_clear();
    }
    for t in tasks {
        t.abort();
    }
    // The report once more at shutdown when it was asked for, whatever stopped the consumer;
    // after the error line when an error stopped it.
    if settings.report_interval.is_some() {
        if result.is_ok() {
            crate::observe::print_report(&telemetry);
        } else {
            crate::observe::report_after_error(&telemetry);
        }
    }
    let stats = consumer.stats().clone();
    let close = consumer.close().await;
    let summary = result?;
    close?;
    let elapsed = summary.elapsed.as_secs_f64();
    crate::observe::say(
        &format!(
            "indexstream: delivered {} in {elapsed:.1}s ({}); stopped: {}",
            plural(summary.delivered, "event"),
            plural(stats.commits, "commit"),
            summary.stop
        ),
        serde_json::json!({"delivered": summary.delivered, "commits": stats.commits, "elapsed_seconds": elapsed, "stopped": summary.stop.to_string()}),
    );
    Ok(())
}

/// `1 event`, `2 events`.
pub fn plural(n: u64, word: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{n} {word}{s}")
}

/// Connects, retrying transient failures (an unreachable cluster) a few times first.
pub async fn connect_with_retry(config: ConsumerConfig) -> anyhow::Result<indexstream::Consumer> {
    let mut attempt = 0u32;
    loop {
        match indexstream::ConsumerBuilder::from_config(config.clone())
            .build()
            .await
        {
            Ok(c) => return Ok(c),
            Err(e) if e.is_retriable() && attempt < 3 => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "cannot start the consumer yet; retrying");
                let wait =
                    indexstream::Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
                tokio::time::sleep(wait.ceiling(attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
