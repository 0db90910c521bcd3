//! `indexstream consume`: flags, environment (`INDEXSTREAM_*`) and a TOML config file, merged
//! in that order of precedence, then the library's consumer.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use indexstream::{
    ConsumerConfig, Mode, OnMissingTimestamp, RefreshPolicy, RunOptions, SinkSpec, StartFrom,
};
use serde::Deserialize;

use crate::common::{parse_duration, parse_time, shutdown_signal, ConnArgs};
use crate::UsageError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    Exact,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MissingArg {
    /// Count it, log its id, do not deliver it.
    Skip,
    /// Stop with an error naming it (exit 1).
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RefreshArg {
    /// Wait for the refresh counter; refresh explicitly only when it stalls.
    Counter,
    /// Refresh explicitly every round.
    Force,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ConsumeArgs {
    /// Index, comma list, pattern, alias or data stream to read (same as --index).
    #[arg(value_name = "INDEX")]
    index_pos: Option<String>,
    /// Consumer group (same as --group).
    #[arg(value_name = "GROUP")]
    group_pos: Option<String>,
    #[command(flatten)]
    conn: ConnArgs,
    /// Index, comma list, pattern, alias or data stream to read.
    #[arg(long, env = "INDEXSTREAM_INDEX")]
    index: Option<String>,
    /// Consumer group: its offsets are shared by restarts of the consumer.
    #[arg(long, visible_alias = "consumer-id", env = "INDEXSTREAM_GROUP")]
    group: Option<String>,
    /// exact: shards and _seq_no up to the global checkpoint (default). timestamp: a timestamp cursor with a safety window.
    #[arg(long, env = "INDEXSTREAM_MODE", value_enum)]
    mode: Option<ModeArg>,
    /// Timestamp field (timestamp mode; --start <time> in exact mode) [default: @timestamp]
    #[arg(long, env = "INDEXSTREAM_TIMESTAMP_FIELD")]
    timestamp_field: Option<String>,
    /// Unique tiebreaker field for timestamp mode [default: _id]
    #[arg(long, env = "INDEXSTREAM_TIEBREAKER_FIELD")]
    tiebreaker_field: Option<String>,
    /// Documents per search page and per batch, 1..=10000 [default: 100]
    #[arg(long, env = "INDEXSTREAM_BATCH_SIZE")]
    batch_size: Option<usize>,
    /// Pause between polls once caught up [default: 1s]
    #[arg(long, env = "INDEXSTREAM_POLL_INTERVAL", value_parser = parse_duration)]
    poll_interval: Option<Duration>,
    /// Commit offsets after this many delivered events [default: 50]
    #[arg(long, env = "INDEXSTREAM_COMMIT_INTERVAL")]
    commit_interval: Option<u64>,
    /// Commit offsets at least this often while delivering [default: 5s]
    #[arg(long, env = "INDEXSTREAM_COMMIT_EVERY", value_parser = parse_duration)]
    commit_every: Option<Duration>,
    /// Timestamp mode: how far behind the cursor each poll re-reads [default: 30s]
    #[arg(long, env = "INDEXSTREAM_SAFETY_WINDOW", value_parser = parse_duration)]
    safety_window: Option<Duration>,
    /// Timestamp mode: an extra filter for every read, as JSON query DSL, e.g. '{"term":{"outcome":"failure"}}'
    #[arg(long, env = "INDEXSTREAM_QUERY")]
    query: Option<String>,
    /// Timestamp mode: documents without a usable timestamp are counted, logged and skipped, or stop the consumer [default: skip]
    #[arg(long, env = "INDEXSTREAM_ON_MISSING_TIMESTAMP", value_enum)]
    on_missing_timestamp: Option<MissingArg>,
    /// Timestamp mode: the most delivered-document keys the safety window holds; past it the oldest timestamps leave the window early (a warning and a metric say so) [default: 100000]
    #[arg(long, env = "INDEXSTREAM_WINDOW_CAP")]
    window_cap: Option<usize>,
    /// Timestamp mode: how long time behind the window is watched for documents that arrived too late [default: 10m]
    #[arg(long, env = "INDEXSTREAM_MISSED_LATE_HORIZON", value_parser = parse_duration)]
    missed_late_horizon: Option<Duration>,
    /// Timestamp mode: how often that time is counted (one _count per window-wide bucket), and documents without a usable timestamp [default: 10s]
    #[arg(long, env = "INDEXSTREAM_MISSED_LATE_CHECK", value_parser = parse_duration)]
    missed_late_check: Option<Duration>,
    /// Where a group without a committed offset starts: earliest, latest, or an RFC 3339 time [default: earliest]
    #[arg(long, env = "INDEXSTREAM_START")]
    start: Option<String>,
    /// Where documents go: stdout, file:PATH or null [default: stdout]
    #[arg(long, env = "INDEXSTREAM_SINK")]
    sink: Option<String>,
    /// Exit 0 after the final commit once caught up and nothing new arrived for this long.
    #[arg(long, env = "INDEXSTREAM_UNTIL_IDLE", value_parser = parse_duration)]
    until_idle: Option<Duration>,
    /// Exit 0 after delivering this many events.
    #[arg(long, env = "INDEXSTREAM_MAX_EVENTS")]
    max_events: Option<u64>,
    /// How checkpoints are proven searchable: counter (default) or force (explicit _refresh)
    #[arg(long, env = "INDEXSTREAM_REFRESH_POLICY", value_enum)]
    refresh_policy: Option<RefreshArg>,
    /// Index holding offsets and leases [default: indexstream-offsets]
    #[arg(long, env = "INDEXSTREAM_OFFSETS_INDEX")]
    offsets_index: Option<String>,
    /// This member's name in the group lease (a restart with the same id takes over at once) [default: HOSTNAME-PID]
    #[arg(long, env = "INDEXSTREAM_MEMBER_ID")]
    member_id: Option<String>,
    /// How long the group lease lives without a heartbeat [default: 30s]
    #[arg(long, env = "INDEXSTREAM_LEASE_TTL", value_parser = parse_duration)]
    lease_ttl: Option<Duration>,
    /// Address of the Prometheus metrics and health listener, e.g. 127.0.0.1:9464.
    #[arg(long, env = "INDEXSTREAM_METRICS_ADDR")]
    metrics_addr: Option<String>,
    /// How often to print the status report to stderr.
    #[arg(long, env = "INDEXSTREAM_REPORT_INTERVAL", value_parser = parse_duration)]
    report_interval: Option<Duration>,
    /// Where documents the sink keeps failing on go: file:PATH (JSON Lines with the error).
    /// Without it the consumer stops on such a document rather than skip it.
    #[arg(long, env = "INDEXSTREAM_DEAD_LETTER")]
    dead_letter: Option<String>,
    /// Delivered-but-uncommitted events allowed while commits fail; past it, fetching pauses [default: 100000]
    #[arg(long, env = "INDEXSTREAM_MAX_UNCOMMITTED")]
    max_uncommitted: Option<u64>,
    /// How long the final flush and commit may take at shutdown [default: 30s]
    #[arg(long, env = "INDEXSTREAM_SHUTDOWN_TIMEOUT", value_parser = parse_duration)]
    shutdown_timeout: Option<Duration>,
    /// Attempts per request to the cluster, the first included [default: 3]
    #[arg(long, env = "INDEXSTREAM_RETRY_ATTEMPTS")]
    retry_attempts: Option<u32>,
    /// Upper bound of the first retry's delay (full jitter, doubling) [default: 100ms]
    #[arg(long, env = "INDEXSTREAM_RETRY_BASE_DELAY", value_parser = parse_duration)]
    retry_base_delay: Option<Duration>,
    /// No retry waits longer, nor longer than a Retry-After asks [default: 30s]
    #[arg(long, env = "INDEXSTREAM_RETRY_MAX_DELAY", value_parser = parse_duration)]
    retry_max_delay: Option<Duration>,
    /// Consecutive failures that open a circuit breaker [default: 5]
    #[arg(long, env = "INDEXSTREAM_BREAKER_THRESHOLD")]
    breaker_threshold: Option<u32>,
    /// How long an open breaker fails fast before it lets one probe through [default: 60s]
    #[arg(long, env = "INDEXSTREAM_BREAKER_OPEN_TIMEOUT", value_parser = parse_duration)]
    breaker_open_timeout: Option<Duration>,
    /// TOML config file; every flag has a key (kebab-case), flags and environment win over it.
    #[arg(long, env = "INDEXSTREAM_CONFIG")]
    config: Option<PathBuf>,
}

/// The config file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub url: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub api_key: Option<String>,
    pub request_timeout: Option<String>,
    pub index: Option<String>,
    pub group: Option<String>,
    pub mode: Option<String>,
    pub timestamp_field: Option<String>,
    pub tiebreaker_field: Option<String>,
    pub batch_size: Option<usize>,
    pub poll_interval: Option<String>,
    pub commit_interval: Option<u64>,
    pub commit_every: Option<String>,
    pub safety_window: Option<String>,
    pub query: Option<String>,
    pub on_missing_timestamp: Option<String>,
    pub window_cap: Option<usize>,
    pub missed_late_horizon: Option<String>,
    pub missed_late_check: Option<String>,
    pub start: Option<String>,
    pub sink: Option<String>,
    pub until_idle: Option<String>,
    pub max_events: Option<u64>,
    pub refresh_policy: Option<String>,
    pub offsets_index: Option<String>,
    pub member_id: Option<String>,
    pub lease_ttl: Option<String>,
    pub metrics_addr: Option<String>,
    pub report_interval: Option<String>,
    pub dead_letter: Option<String>,
    pub max_uncommitted: Option<u64>,
    pub shutdown_timeout: Option<String>,
    pub retry_attempts: Option<u32>,
    pub retry_base_delay: Option<String>,
    pub retry_max_delay: Option<String>,
    pub breaker_threshold: Option<u32>,
    pub breaker_open_timeout: Option<String>,
}

impl FileConfig {
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| UsageError(format!("cannot read config file {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| {
            UsageError(format!("config file {}: {}", path.display(), e.message())).into()
        })
    }
}

fn file_duration(key: &str, v: Option<&String>) -> anyhow::Result<Option<Duration>> {
    match v {
        None => Ok(None),
        Some(s) => parse_duration(s)
            .map(Some)
            .map_err(|e| UsageError(format!("{key} in the config file: {e}")).into()),
    }
}

fn parse_start(s: &str) -> Result<StartFrom, String> {
    match s {
        "earliest" => Ok(StartFrom::Earliest),
        "latest" => Ok(StartFrom::Latest),
        t => parse_time(t)
            .map(StartFrom::Time)
            .map_err(|e| format!("--start: {e}, or earliest, or latest")),
    }
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
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(p) => Some(FileConfig::load(p)?),
            None => None,
        };
        let f = file.as_ref();
        let usage = |m: String| -> anyhow::Error { UsageError(m).into() };
        if self.index_pos.is_some() && self.index.is_some() && self.index_pos != self.index {
            return Err(usage(
                "the index is given twice (positional and --index) with different values".into(),
            ));
        }
        let index = self
            .index_pos
            .clone()
            .or(self.index.clone())
            .or_else(|| f.and_then(|f| f.index.clone()))
            .ok_or_else(|| {
                usage("no index: give INDEX, --index or `index` in the config file".into())
            })?;
        let group = self
            .group_pos
            .clone()
            .or(self.group.clone())
            .or_else(|| f.and_then(|f| f.group.clone()))
            .ok_or_else(|| {
                usage("no group: give GROUP, --group or `group` in the config file".into())
            })?;
        let client = self.conn.client_config(f)?;
        let mut c = ConsumerConfig::new(client, index, group);
        c.mode = match (self.mode, f.and_then(|f| f.mode.as_deref())) {
            (Some(ModeArg::Exact), _) => Mode::Exact,
            (Some(ModeArg::Timestamp), _) => Mode::Timestamp,
            (None, Some(m)) => Mode::parse(m).ok_or_else(|| {
                usage(format!(
                    "mode {m:?} in the config file: expected exact or timestamp"
                ))
            })?,
            (None, None) => Mode::Exact,
        };
        if let Some(v) = self
            .timestamp_field
            .clone()
            .or_else(|| f.and_then(|f| f.timestamp_field.clone()))
        {
            c.timestamp_field = v;
        }
        if let Some(v) = self.batch_size.or_else(|| f.and_then(|f| f.batch_size)) {
            c.batch_size = v;
        }
        if let Some(v) = self.poll_interval.map(Some).unwrap_or(file_duration(
            "poll-interval",
            f.and_then(|f| f.poll_interval.as_ref()),
        )?) {
            c.poll_interval = v;
        }
        if let Some(v) = self
            .commit_interval
            .or_else(|| f.and_then(|f| f.commit_interval))
        {
            c.commit_every_events = v;
        }
        if let Some(v) = self.commit_every.map(Some).unwrap_or(file_duration(
            "commit-every",
            f.and_then(|f| f.commit_every.as_ref()),
        )?) {
            c.commit_every = v;
        }
        if let Some(s) = self
            .start
            .clone()
            .or_else(|| f.and_then(|f| f.start.clone()))
        {
            c.start = parse_start(&s).map_err(usage)?;
        }
        c.refresh_policy = match (
            self.refresh_policy,
            f.and_then(|f| f.refresh_policy.as_deref()),
        ) {
            (Some(RefreshArg::Force), _) | (None, Some("force")) => RefreshPolicy::Force,
            (Some(RefreshArg::Counter), _) | (None, Some("counter")) | (None, None) => {
                RefreshPolicy::Counter
            }
            (None, Some(other)) => {
                return Err(usage(format!(
                    "refresh-policy {other:?} in the config file: expected counter or force"
                )))
            }
        };
        if let Some(v) = self
            .offsets_index
            .clone()
            .or_else(|| f.and_then(|f| f.offsets_index.clone()))
        {
            c.offsets_index = v;
        }
        if let Some(v) = self
            .member_id
            .clone()
            .or_else(|| f.and_then(|f| f.member_id.clone()))
        {
            c.member_id = v;
        }
        if let Some(v) = self.lease_ttl.map(Some).unwrap_or(file_duration(
            "lease-ttl",
            f.and_then(|f| f.lease_ttl.as_ref()),
        )?) {
            c.lease_ttl = v;
        }
        let mut retry = indexstream::RetryPolicy::builder();
        if let Some(n) = self
            .retry_attempts
            .or_else(|| f.and_then(|f| f.retry_attempts))
        {
            if n == 0 {
                return Err(usage("--retry-attempts must be at least 1".into()));
            }
            retry = retry.max_attempts(n);
        }
        if let Some(d) = self.retry_base_delay.map(Some).unwrap_or(file_duration(
            "retry-base-delay",
            f.and_then(|f| f.retry_base_delay.as_ref()),
        )?) {
            retry = retry.base_delay(d);
        }
        if let Some(d) = self.retry_max_delay.map(Some).unwrap_or(file_duration(
            "retry-max-delay",
            f.and_then(|f| f.retry_max_delay.as_ref()),
        )?) {
            retry = retry.max_delay(d);
        }
        c.retry = retry.build();
        if let Some(n) = self
            .breaker_threshold
            .or_else(|| f.and_then(|f| f.breaker_threshold))
        {
            if n == 0 {
                return Err(usage("--breaker-threshold must be at least 1".into()));
            }
            c.breaker.failure_threshold = n;
        }
        if let Some(d) = self.breaker_open_timeout.map(Some).unwrap_or(file_duration(
            "breaker-open-timeout",
            f.and_then(|f| f.breaker_open_timeout.as_ref()),
        )?) {
            c.breaker.open_timeout = d;
        }
        if let Some(v) = self
            .tiebreaker_field
            .clone()
            .or_else(|| f.and_then(|f| f.tiebreaker_field.clone()))
        {
            c.tiebreaker_field = v;
        }
        if let Some(v) = self.safety_window.map(Some).unwrap_or(file_duration(
            "safety-window",
            f.and_then(|f| f.safety_window.as_ref()),
        )?) {
            c.safety_window = v;
        }
        if let Some(q) = self
            .query
            .clone()
            .or_else(|| f.and_then(|f| f.query.clone()))
        {
            let v: serde_json::Value =
                serde_json::from_str(&q).map_err(|e| usage(format!("--query is not JSON: {e}")))?;
            c.query = Some(v);
        }
        c.on_missing_timestamp = match (
            self.on_missing_timestamp,
            f.and_then(|f| f.on_missing_timestamp.as_deref()),
        ) {
            (Some(MissingArg::Fail), _) | (None, Some("fail")) => OnMissingTimestamp::Fail,
            (Some(MissingArg::Skip), _) | (None, Some("skip")) | (None, None) => {
                OnMissingTimestamp::Skip
            }
            (None, Some(other)) => {
                return Err(usage(format!(
                    "on-missing-timestamp {other:?} in the config file: expected skip or fail"
                )))
            }
        };
        if let Some(n) = self.window_cap.or_else(|| f.and_then(|f| f.window_cap)) {
            c.window_cap = n;
        }
        if let Some(d) = self.missed_late_horizon.map(Some).unwrap_or(file_duration(
            "missed-late-horizon",
            f.and_then(|f| f.missed_late_horizon.as_ref()),
        )?) {
            c.missed_late_horizon = d;
        }
        if let Some(d) = self.missed_late_check.map(Some).unwrap_or(file_duration(
            "missed-late-check",
            f.and_then(|f| f.missed_late_check.as_ref()),
        )?) {
            c.missed_late_check_every = d;
        }
        if c.mode == Mode::Exact {
            for (name, given) in [
                (
                    "--safety-window",
                    self.safety_window.is_some() || f.is_some_and(|f| f.safety_window.is_some()),
                ),
                (
                    "--tiebreaker-field",
                    self.tiebreaker_field.is_some()
                        || f.is_some_and(|f| f.tiebreaker_field.is_some()),
                ),
                (
                    "--on-missing-timestamp",
                    self.on_missing_timestamp.is_some()
                        || f.is_some_and(|f| f.on_missing_timestamp.is_some()),
                ),
            ] {
                if given {
                    return Err(usage(format!(
                        "{name} applies to --mode timestamp only; this consumer runs in exact mode"
                    )));
                }
            }
        }
        let sink = SinkSpec::parse(
            &self
                .sink
                .clone()
                .or_else(|| f.and_then(|f| f.sink.clone()))
                .unwrap_or_else(|| "stdout".into()),
        )
        .map_err(|e| usage(format!("--sink: {e}")))?;
        let run = RunOptions {
            until_idle: self.until_idle.map(Some).unwrap_or(file_duration(
                "until-idle",
                f.and_then(|f| f.until_idle.as_ref()),
            )?),
            max_events: self.max_events.or_else(|| f.and_then(|f| f.max_events)),
            ..RunOptions::default()
        };
        let mut run = run;
        if let Some(dl) = self
            .dead_letter
            .clone()
            .or_else(|| f.and_then(|f| f.dead_letter.clone()))
        {
            match dl.strip_prefix("file:") {
                Some(path) if !path.is_empty() => run.dead_letter = Some(path.into()),
                _ => return Err(usage(format!("--dead-letter {dl:?}: expected file:PATH"))),
            }
        }
        if let Some(n) = self
            .max_uncommitted
            .or_else(|| f.and_then(|f| f.max_uncommitted))
        {
            if n == 0 {
                return Err(usage("--max-uncommitted must be at least 1".into()));
            }
            run.max_uncommitted = n;
        }
        if let Some(d) = self.shutdown_timeout.map(Some).unwrap_or(file_duration(
            "shutdown-timeout",
            f.and_then(|f| f.shutdown_timeout.as_ref()),
        )?) {
            run.shutdown_timeout = d;
        }
        c.validate().map_err(|e| usage(e.to_string()))?;
        Ok(Settings {
            consumer: c,
            run,
            sink,
            metrics_addr: self
                .metrics_addr
                .clone()
                .or_else(|| f.and_then(|f| f.metrics_addr.clone())),
            report_interval: self.report_interval.map(Some).unwrap_or(file_duration(
                "report-interval",
                f.and_then(|f| f.report_interval.as_ref()),
            )?),
        })
    }
}

pub async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    // Every input is checked (the sink opened, the metrics address bound) before the group is
    // joined: a bad one must not leave the group's lease held for the next, corrected, run.
    let mut sink = settings
        .sink
        .open()
        .with_context(|| format!("cannot open sink {:?}", settings.sink))?;
    let listener = match &settings.metrics_addr {
        Some(addr) => Some(crate::observe::bind(addr).await?),
        None => None,
    };
    let mut consumer = connect_with_retry(settings.consumer.clone()).await?;
    let telemetry = consumer.telemetry();
    let mut tasks = Vec::new();
    if let Some(listener) = listener {
        let (local, task) = crate::observe::serve(listener, telemetry.clone())?;
        eprintln!(
            "indexstream: metrics on http://{local}/metrics, health on http://{local}/health"
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
    // The report once more at shutdown, whatever stopped the consumer.
    eprint!("{}", telemetry.report());
    let stats = consumer.stats().clone();
    let close = consumer.close().await;
    let summary = result?;
    close?;
    eprintln!(
        "indexstream: delivered {} events ({} commits) in {:.1}s; stopped: {:?}",
        summary.delivered,
        stats.commits,
        summary.elapsed.as_secs_f64(),
        summary.stop
    );
    Ok(())
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
