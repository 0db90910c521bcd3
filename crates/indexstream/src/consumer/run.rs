//! [`Consumer::run`]: the loop that polls, hands batches to the sink and commits what the sink
//! acknowledged, with its state in one [`Runner`].
//!
//! A commit starts the sink's flush with a snapshot of the offsets it will cover and goes out
//! once that flush has finished; fetching and delivering go on meanwhile. A crash repeats at most
//! `commit_every_events` plus one batch: a batch that would leave more uncommitted waits for the
//! commit under way.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::Instant;

use super::{CommitSnapshot, Consumer};
use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::record::Record;
use crate::sink::{
    dead_letter_entry, DeadLetter, DeadLetterSink, PendingFlush, Sink, SinkError, SinkRetry,
};

/// The run loop's waits: before a record the sink refused is tried again (from 100 ms)...
const SINK_RETRY: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(3200));
/// ...before a failed commit is tried again while delivery goes on (from 200 ms, at most 5 s)...
const COMMIT_RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
/// ...and between the attempts of the final commit at shutdown (200 ms, 400 ms, 800 ms, 1 s).
const FINAL_COMMIT_RETRY: Backoff =
    Backoff::new(Duration::from_millis(200), Duration::from_secs(1));

/// Limits of [`Consumer::run`]; read with serde like [`ConsumerConfig`](crate::ConsumerConfig).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct RunOptions {
    /// Stop (after the final commit) once caught up and nothing new arrived for this long.
    #[serde(with = "crate::serde_duration::option")]
    pub until_idle: Option<Duration>,
    /// Stop after delivering this many documents.
    pub max_events: Option<u64>,
    /// Give up after this many failed polls in a row.
    pub max_consecutive_failures: u32,
    /// Delivered-but-uncommitted events allowed while commits fail; past it, fetching pauses.
    pub max_uncommitted: u64,
    /// How long the final flush and commit may take at shutdown.
    #[serde(with = "crate::serde_duration")]
    pub shutdown_timeout: Duration,
    /// Attempts the sink gets on one document before it is poison.
    pub sink_attempts: u32,
    /// Where poison documents go (a file or an index); `None` stops the consumer on the first
    /// one.
    pub dead_letter: Option<DeadLetter>,
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

impl RunOptions {
    /// Sets [`RunOptions::until_idle`].
    pub fn with_until_idle(mut self, idle: Duration) -> Self {
        self.until_idle = Some(idle);
        self
    }

    /// Sets [`RunOptions::max_events`].
    pub fn with_max_events(mut self, n: u64) -> Self {
        self.max_events = Some(n);
        self
    }

    /// Sets [`RunOptions::max_consecutive_failures`].
    pub fn with_max_consecutive_failures(mut self, n: u32) -> Self {
        self.max_consecutive_failures = n;
        self
    }

    /// Sets [`RunOptions::max_uncommitted`].
    pub fn with_max_uncommitted(mut self, n: u64) -> Self {
        self.max_uncommitted = n;
        self
    }

    /// Sets [`RunOptions::shutdown_timeout`].
    pub fn with_shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Sets [`RunOptions::sink_attempts`].
    pub fn with_sink_attempts(mut self, attempts: u32) -> Self {
        self.sink_attempts = attempts;
        self
    }

    /// Sets [`RunOptions::dead_letter`].
    pub fn with_dead_letter(mut self, to: impl Into<DeadLetter>) -> Self {
        self.dead_letter = Some(to.into());
        self
    }
}

/// Why [`Consumer::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The `shutdown` future resolved.
    Shutdown,
    /// [`RunOptions::until_idle`]: caught up, and nothing new arrived for that long.
    Idle,
    /// [`RunOptions::max_events`] documents were delivered.
    MaxEvents,
}

/// In words: `shutdown signal`, `idle`, `max events reached`.
impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopReason::Shutdown => "shutdown signal",
            StopReason::Idle => "idle",
            StopReason::MaxEvents => "max events reached",
        })
    }
}

/// What a [`Consumer::run`] that ended without an error did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunSummary {
    /// Documents handed to the sink during this run (dead-lettered ones included).
    pub delivered: u64,
    /// How long the run took, the final commit included.
    pub elapsed: Duration,
    /// Why it stopped.
    pub stop: StopReason,
}

impl Consumer {
    /// Reads into `sink` until `shutdown` resolves (or a [`RunOptions`] limit is reached), flushing
    /// the sink and committing every `commit_every_events` events or `commit_every`, and once
    /// more at the end. Transient errors are retried with backoff; the lease is released on exit.
    pub async fn run<S: Sink>(
        &mut self,
        sink: &mut S,
        opts: RunOptions,
        shutdown: impl Future<Output = ()>,
    ) -> Result<RunSummary> {
        let dead_letter = match &opts.dead_letter {
            Some(to) => {
                if let Err(why) = to.check_against(
                    &self.config.index,
                    &self.config.offsets_index,
                    &crate::sink::SinkSpec::Null,
                ) {
                    return Err(Error::Config {
                        field: "dead_letter",
                        reason: why,
                    });
                }
                Some(to.open(&self.config.client).await?)
            }
            None => None,
        };
        let sink_breaker = std::sync::Arc::new(crate::breaker::CircuitBreaker::new(
            "sink",
            self.config.breaker.clone(),
        ));
        self.telemetry.watch_breaker(sink_breaker.clone());
        let runner = Runner {
            consumer: self,
            sink: Delivery { sink, dead_letter },
            opts,
            started: Instant::now(),
            delivered: 0,
            since_commit: 0,
            last_commit: Instant::now(),
            last_delivery: Instant::now(),
            poll_failures: 0,
            commit_failures: 0,
            retry_commit_at: Instant::now(),
            paused: false,
            in_flight: None,
            undelivered: false,
            sink_breaker,
        };
        runner.run(shutdown).await
    }
}

/// The sink of a run with its dead letters: flushing one flushes both, so a commit never
/// covers a dead letter that is not durable.
struct Delivery<'a, S> {
    sink: &'a mut S,
    dead_letter: Option<DeadLetterSink>,
}

impl<S: Sink> Delivery<'_, S> {
    async fn flush(&mut self) -> Result<(), SinkError> {
        if let Some(dl) = self.dead_letter.as_mut() {
            dl.flush().await?;
        }
        self.sink.flush().await
    }

    async fn start_flush(&mut self) -> Result<PendingFlush, SinkError> {
        // Dead letters are rare: synced at once, before the sink's flush starts.
        if let Some(dl) = self.dead_letter.as_mut() {
            dl.flush().await?;
        }
        self.sink.start_flush().await
    }
}

/// A commit of the run loop waiting for its sink flush.
struct InFlightCommit {
    flush: PendingFlush,
    snapshot: CommitSnapshot,
    /// Delivered events it covers.
    covered: u64,
}

/// One run: the consumer, the sink, and the loop's counters and clocks.
struct Runner<'c, 's, S> {
    consumer: &'c mut Consumer,
    sink: Delivery<'s, S>,
    opts: RunOptions,
    started: Instant,
    /// Documents handed to the sink in this run.
    delivered: u64,
    /// Delivered since the last successful commit.
    since_commit: u64,
    last_commit: Instant,
    last_delivery: Instant,
    /// Failed polls in a row.
    poll_failures: u32,
    /// Failed commits in a row; the next attempt waits until `retry_commit_at`.
    commit_failures: u32,
    retry_commit_at: Instant,
    /// Fetching paused: the uncommitted backlog is full while commits fail.
    paused: bool,
    /// A commit whose sink flush is under way.
    in_flight: Option<InFlightCommit>,
    /// A batch handed out was not all delivered: no final commit.
    undelivered: bool,
    /// The sink's circuit breaker (see [`Runner::deliver`]).
    sink_breaker: std::sync::Arc<crate::breaker::CircuitBreaker>,
}

type Shutdown<'f, F> = Pin<&'f mut F>;

/// Whether `shutdown` has resolved, without waiting.
async fn stopping<F: Future<Output = ()>>(shutdown: &mut Shutdown<'_, F>) -> bool {
    tokio::select! { biased; _ = shutdown.as_mut() => true, _ = std::future::ready(()) => false }
}

/// Sleeps for `d`; `true` if `shutdown` resolved first.
async fn sleep_or_stop<F: Future<Output = ()>>(
    shutdown: &mut Shutdown<'_, F>,
    d: Duration,
) -> bool {
    tokio::select! { _ = shutdown.as_mut() => true, _ = tokio::time::sleep(d) => false }
}

impl<S: Sink> Runner<'_, '_, S> {
    async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<RunSummary> {
        tokio::pin!(shutdown);
        let result = self.run_loop(&mut shutdown).await;
        if self.undelivered && matches!(result, Ok(StopReason::Shutdown)) {
            tracing::warn!(uncommitted = self.consumer.uncommitted(), "stopped while the sink was down: no final commit; what was delivered since the last commit is delivered again by the next run");
            return Ok(RunSummary {
                delivered: self.delivered,
                elapsed: self.started.elapsed(),
                stop: StopReason::Shutdown,
            });
        }
        if self.undelivered {
            // A batch was handed out but not all of it reached the sink (a document it refused
            // with nowhere to dead-letter it, or a refusal of the destination as a whole): a
            // commit now would move past what was never delivered. What was delivered since
            // the last commit is delivered again by the next run instead.
            return Err(result
                .err()
                .unwrap_or_else(|| Error::Sink(SinkError::stop("delivery failed"))));
        }
        // Whatever else stopped the loop, acknowledge and commit what was delivered, within the
        // shutdown timeout even when the cluster is failing.
        let final_commit =
            tokio::time::timeout(self.opts.shutdown_timeout, self.final_commit()).await;
        let stop = result?;
        match final_commit {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::ShutdownTimeout {
                    timeout: self.opts.shutdown_timeout,
                    uncommitted: self.consumer.uncommitted(),
                })
            }
        }
        Ok(RunSummary {
            delivered: self.delivered,
            elapsed: self.started.elapsed(),
            stop,
        })
    }

    async fn run_loop<F: Future<Output = ()>>(
        &mut self,
        shutdown: &mut Shutdown<'_, F>,
    ) -> Result<StopReason> {
        loop {
            if stopping(shutdown).await {
                return Ok(StopReason::Shutdown);
            }
            let room = self
                .opts
                .max_events
                .map(|m| m.saturating_sub(self.delivered) as usize)
                .unwrap_or(usize::MAX);
            if room == 0 {
                return Ok(StopReason::MaxEvents);
            }
            // Delivered but not committed: past the bound, fetch nothing more until a commit
            // gets through (the offset store may be down), rather than grow without limit.
            if self.commit_failures > 0 && self.consumer.uncommitted() >= self.opts.max_uncommitted
            {
                if self.wait_for_commits(shutdown).await? {
                    return Ok(StopReason::Shutdown);
                }
                continue;
            }
            let polled_at = Instant::now();
            let batch = match self
                .consumer
                .poll(room.min(self.consumer.config.page_size))
                .await
            {
                Ok(b) => {
                    self.poll_failures = 0;
                    self.consumer
                        .telemetry
                        .poll_succeeded(b.len(), polled_at.elapsed());
                    b
                }
                Err(e)
                    if e.is_retriable()
                        && self.poll_failures < self.opts.max_consecutive_failures =>
                {
                    self.poll_failures += 1;
                    // Capped below the breaker's open timeout: while a breaker is open the polls
                    // fail fast without touching the network, and the probe should not wait for us.
                    let cap = Duration::from_secs(5)
                        .min(self.consumer.config.breaker.open_timeout / 2)
                        .max(Duration::from_millis(100));
                    let backoff =
                        Backoff::new(Duration::from_millis(100), cap).ceiling(self.poll_failures);
                    self.consumer
                        .telemetry
                        .poll_failed(&e, self.poll_failures, backoff);
                    if sleep_or_stop(shutdown, backoff).await {
                        return Ok(StopReason::Shutdown);
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            // The commit contract: a crash repeats at most `commit_every_events` plus one
            // batch. A batch that would leave more than that uncommitted waits for the
            // commit under way (its snapshot was taken before this batch was handed out).
            let bound =
                self.consumer.config.commit_every_events + self.consumer.config.page_size as u64;
            if !batch.is_empty() && self.consumer.uncommitted() > bound {
                if let Some(f) = self.in_flight.take() {
                    self.finish_commit(f).await?;
                }
            }
            // A member paused past its lease (or cut off) learns here that the partition is
            // no longer its own: the batch is not delivered.
            let batch = if !batch.is_empty() && !self.consumer.owns_last_batch() {
                Vec::new()
            } else {
                batch
            };
            if !batch.is_empty() {
                let written_at = Instant::now();
                match self.deliver(&batch, shutdown).await {
                    Ok(true) => {}
                    Ok(false) => {
                        // Stopped while waiting for the sink: what was delivered of the batch
                        // is delivered again by the next run.
                        self.undelivered = true;
                        return Ok(StopReason::Shutdown);
                    }
                    Err(e) => {
                        self.undelivered = true;
                        return Err(e);
                    }
                }
                self.consumer
                    .telemetry
                    .batch_delivered(batch.len(), written_at.elapsed());
                self.delivered += batch.len() as u64;
                self.since_commit += batch.len() as u64;
                self.last_delivery = Instant::now();
            }
            self.start_commit_if_due().await?;
            if self
                .in_flight
                .as_ref()
                .is_some_and(|f| f.flush.is_finished())
            {
                if let Some(f) = self.in_flight.take() {
                    self.finish_commit(f).await?;
                }
            }
            if batch.is_empty() {
                if let Some(idle) = self.opts.until_idle {
                    if self.consumer.caught_up() && self.last_delivery.elapsed() >= idle {
                        return Ok(StopReason::Idle);
                    }
                }
                let wait = self.consumer.next_poll_in().max(Duration::from_millis(5));
                if sleep_or_stop(shutdown, wait).await {
                    return Ok(StopReason::Shutdown);
                }
            }
        }
    }

    /// While fetching is paused (the backlog is full and commits fail): waits for the next
    /// commit attempt and makes it. `true` if `shutdown` resolved meanwhile.
    async fn wait_for_commits<F: Future<Output = ()>>(
        &mut self,
        shutdown: &mut Shutdown<'_, F>,
    ) -> Result<bool> {
        if !self.paused {
            self.paused = true;
            tracing::warn!(
                uncommitted = self.consumer.uncommitted(),
                bound = self.opts.max_uncommitted,
                "uncommitted backlog full while commits fail: fetching paused until they succeed"
            );
        }
        let wait = self
            .retry_commit_at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(20));
        if sleep_or_stop(shutdown, wait).await {
            return Ok(true);
        }
        if let Some(f) = self.in_flight.take() {
            f.flush.wait().await?;
        }
        self.sink.flush().await?;
        let covered = self.since_commit;
        let result = self.consumer.commit().await;
        self.commit_outcome(result, covered)?;
        Ok(false)
    }

    /// When a commit is due and none is under way, starts one: the sink's flush, with a
    /// snapshot of the offsets it will cover. It goes out once that flush has finished (at once
    /// for sinks that flush synchronously).
    async fn start_commit_if_due(&mut self) -> Result<()> {
        let c = &self.consumer;
        let due = self.since_commit >= c.commit_threshold()
            || c.handover_pending()
            || (self.last_commit.elapsed() >= c.config.commit_every
                && (self.since_commit > 0 || c.has_committable()));
        if due && self.in_flight.is_none() && Instant::now() >= self.retry_commit_at {
            let snapshot = self.consumer.commit_snapshot();
            self.in_flight = Some(InFlightCommit {
                flush: self.sink.start_flush().await?,
                snapshot,
                covered: self.since_commit,
            });
        }
        Ok(())
    }

    /// Waits for a started commit's flush, then writes its offsets.
    async fn finish_commit(&mut self, f: InFlightCommit) -> Result<()> {
        let before = self.commit_failures;
        f.flush.wait().await?;
        let result = self.consumer.commit_from(f.snapshot).await;
        self.commit_outcome(result, f.covered)?;
        if self.paused && self.commit_failures == 0 && before > 0 {
            self.paused = false;
            tracing::info!("commits succeed again: fetching resumed");
        }
        Ok(())
    }

    /// Accounts for a commit attempt that covered `covered` delivered events: on a transient
    /// failure it schedules the next attempt instead of failing the run; fencing and other
    /// errors stop it.
    fn commit_outcome(&mut self, result: Result<usize>, covered: u64) -> Result<()> {
        let telemetry = &self.consumer.telemetry;
        match result {
            Ok(n) => {
                if n > 0 {
                    telemetry.commit_succeeded();
                }
                telemetry.positions(&self.consumer.status());
                self.since_commit = self.since_commit.saturating_sub(covered);
                self.last_commit = Instant::now();
                self.commit_failures = 0;
                Ok(())
            }
            Err(e) if e.is_retriable() => {
                self.commit_failures += 1;
                telemetry.commit_failed(&e, self.commit_failures, true);
                self.retry_commit_at = Instant::now() + COMMIT_RETRY.ceiling(self.commit_failures);
                Ok(())
            }
            Err(e) => {
                telemetry.commit_failed(&e, self.commit_failures + 1, false);
                Err(e)
            }
        }
    }

    /// The final flush and commit: they cover everything; an unfinished commit is superseded.
    async fn final_commit(&mut self) -> Result<()> {
        if let Some(f) = self.in_flight.take() {
            f.flush.wait().await?;
        }
        self.sink.flush().await?;
        let mut attempt: u32 = 0;
        loop {
            match self.consumer.commit().await {
                Ok(n) => {
                    if n > 0 {
                        self.consumer.telemetry.commit_succeeded();
                    }
                    self.consumer.telemetry.positions(&self.consumer.status());
                    return Ok(());
                }
                Err(e) if e.is_retriable() && attempt < 5 => {
                    attempt += 1;
                    self.consumer.telemetry.commit_failed(&e, attempt, true);
                    tokio::time::sleep(FINAL_COMMIT_RETRY.ceiling(attempt - 1)).await;
                }
                Err(e) => {
                    self.consumer.telemetry.commit_failed(&e, attempt, false);
                    return Err(e);
                }
            }
        }
    }

    /// Hands a batch to the sink. A record the sink keeps failing on (after `sink_attempts`
    /// attempts on its own, or at once when it says a retry cannot help) goes to the
    /// dead letters and delivery moves on; without them, the consumer stops with
    /// [`Error::Poison`] rather than skip it silently. Failures that may pass count on the
    /// sink's circuit breaker: once it opens (that many failed writes in a row, whatever the
    /// record), the sink is down rather than the record bad, so the record is not dead-lettered:
    /// delivery waits for the breaker's probe and tries it again until the sink takes it (or
    /// `shutdown`: then `Ok(false)`, the batch not all delivered).
    async fn deliver<F: Future<Output = ()>>(
        &mut self,
        batch: &[Record],
        shutdown: &mut Shutdown<'_, F>,
    ) -> Result<bool> {
        let mut start = 0;
        while start < batch.len() {
            let Some(first) = self.write_or_stop(&batch[start..], shutdown).await else {
                return Ok(false);
            };
            let Err((i, first)) = first else {
                return Ok(true);
            };
            if first.retry() == SinkRetry::Stop {
                return Err(Error::Sink(first));
            }
            let at = start + i;
            let mut last = first;
            let mut attempts = 1;
            let mut taken = false;
            let mut down = false;
            while last.is_retriable()
                && (down || self.sink_down() || attempts < self.opts.sink_attempts.max(1))
            {
                let kind = self.sink.sink.kind();
                if self.sink_down() {
                    if !down {
                        self.consumer.telemetry.sink_down(kind, &last);
                        down = true;
                    }
                } else {
                    let delay = SINK_RETRY.ceiling(attempts);
                    self.consumer
                        .telemetry
                        .sink_retried(kind, attempts, delay, &last);
                    if sleep_or_stop(shutdown, delay).await {
                        return Ok(false);
                    }
                }
                attempts += 1;
                match self.write_or_stop(&batch[at..at + 1], shutdown).await {
                    None => return Ok(false),
                    Some(Ok(())) => {
                        taken = true;
                        if down {
                            self.consumer.telemetry.sink_back(kind);
                        }
                        break;
                    }
                    Some(Err((_, e))) if e.retry() == SinkRetry::Stop => {
                        return Err(Error::Sink(e))
                    }
                    Some(Err((_, e))) => last = e,
                }
            }
            if !taken {
                let record = &batch[at];
                match self.sink.dead_letter.as_mut() {
                    Some(dl) => {
                        dl.write(&[dead_letter_entry(record, &last)]).await?;
                        self.consumer.telemetry.dead_lettered(record, &last);
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
        Ok(true)
    }

    /// Whether the sink's breaker is open: the sink is down, not the record bad.
    fn sink_down(&self) -> bool {
        self.sink_breaker.state() == crate::breaker::BreakerState::Open
    }

    /// One write, once the sink's breaker lets it through (while it is open, only its probe
    /// goes, after the open timeout); `None` if `shutdown` resolved first, also in the middle
    /// of the write (a sink retrying within itself may take long): nothing is committed after.
    async fn write_or_stop<F: Future<Output = ()>>(
        &mut self,
        records: &[Record],
        shutdown: &mut Shutdown<'_, F>,
    ) -> Option<std::result::Result<(), (usize, SinkError)>> {
        while !self.sink_breaker.allow() {
            if sleep_or_stop(shutdown, Duration::from_millis(200)).await {
                return None;
            }
        }
        tokio::select! {
            r = self.write(records) => Some(r),
            _ = shutdown.as_mut() => None,
        }
    }

    /// One write to the sink, counted in its metrics and on its breaker.
    async fn write(&mut self, records: &[Record]) -> std::result::Result<(), (usize, SinkError)> {
        let began = Instant::now();
        let r = self.sink.sink.write_each(records).await;
        let (taken, failure) = match &r {
            Ok(()) => (records.len(), None),
            Err((i, e)) => (*i, Some(e)),
        };
        self.consumer
            .telemetry
            .sink_wrote(self.sink.sink.kind(), began.elapsed(), taken, failure);
        match failure {
            Some(e) if e.is_retriable() => {
                // What went through before the failure says the sink is up.
                if taken > 0 {
                    self.sink_breaker.on_success();
                }
                self.sink_breaker.on_failure_because(e);
            }
            _ => self.sink_breaker.on_success(),
        }
        r
    }
}
