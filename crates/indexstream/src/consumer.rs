//! The consumer: discovers partitions, reads them with the exact-mode protocol, hands batches
//! out, and commits offsets.
//!
//! # Delivery contract (at least once)
//! Every document is delivered at least once. [`Consumer::commit`] records, per partition, a
//! `_seq_no` up to which every document has been handed out by [`Consumer::poll`]; call it only
//! after the caller has processed (acknowledged) everything `poll` returned. After a restart,
//! delivery resumes after the committed offsets: what was handed out after the last commit is
//! delivered again, nothing else is. [`Consumer::run`] does this with a [`Sink`](crate::Sink): it flushes the
//! sink before every commit.

use std::collections::VecDeque;
use std::time::Duration;

use crate::client::{Client, ClientConfig, ServerInfo};
use crate::error::Result;
use crate::group::{Lease, LeaseKeeper};
use crate::offset::OffsetStore;
use crate::partition::{PartitionId, PartitionStatus};
use crate::record::Record;
use crate::telemetry::Telemetry;

mod config;
mod exact_read;
mod run;
mod timestamp_pages;
mod timestamp_read;
pub use config::{
    default_member_id, ConsumerBuilder, ConsumerConfig, ExactSettings, OnMissingTimestamp,
    ReadMode, RefreshPolicy, StartFrom, TimestampSettings,
};
use exact_read::ExactReader;
pub use run::{RunOptions, RunSummary, StopReason};
use timestamp_read::TimestampReader;

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

/// What a reader queued for [`Consumer::poll`] to hand out, in order.
#[derive(Debug)]
enum Pending {
    /// Records read, with what applies once every one of them is handed out.
    Batch(Batch),
    /// Exact mode: commit marks alone (a checkpoint was confirmed with nothing left to read
    /// below it): everything up to each `_seq_no` of its partition has been handed out once the
    /// reads queued before it have.
    Marks(Vec<(PartitionId, i64)>),
}

/// One read's records.
#[derive(Debug)]
struct Batch {
    records: Vec<Record>,
    /// Exact mode: once these records are handed out, everything up to this `_seq_no` of the
    /// partition has been (the reader's safe point when it queued them).
    marks: Vec<(PartitionId, i64)>,
    /// Timestamp mode: each record's event key and timestamp, recorded when handed out.
    keys: Vec<(u64, i64)>,
}

/// What a reader uses of its consumer while it reads: the settings, the clients, the offsets,
/// the counters, and the queue it hands its reads to.
struct Ctx<'a> {
    config: &'a ConsumerConfig,
    client: &'a Client,
    info: &'a ServerInfo,
    offsets: &'a mut OffsetStore,
    lease: Option<&'a LeaseKeeper>,
    stats: &'a mut ConsumerStats,
    telemetry: &'a Telemetry,
    pending: &'a mut VecDeque<Pending>,
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
    pending: VecDeque<Pending>,
    /// The mode's reader and its state.
    reader: Reader,
    stats: ConsumerStats,
    telemetry: std::sync::Arc<Telemetry>,
}

/// The reader of the consumer's mode.
#[derive(Debug)]
enum Reader {
    Exact(Box<ExactReader>),
    Timestamp(Box<TimestampReader>),
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
        // Checked before the group is joined: a consumer refused for its input must leave no
        // lease behind (the offsets' mode is checked below, before the lease too).
        match base.shard_stats(&config.index).await {
            Err(crate::client::ClientError::Status { status: 404, .. }) => {
                return Err(crate::Error::NoSuchIndex {
                    pattern: config.index.clone(),
                })
            }
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
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
        offsets.check_mode(config.mode.kind()).await?;
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
        let reader = match &config.mode {
            ReadMode::Exact(s) => Reader::Exact(Box::new(ExactReader::new(s.clone()))),
            ReadMode::Timestamp(s) => Reader::Timestamp(Box::new(TimestampReader::new(
                &config.timestamp_field,
                s.clone(),
            ))),
        };
        Ok(Consumer {
            telemetry,
            config,
            client,
            info,
            offsets,
            lease: Some(LeaseKeeper::start(lease)),
            pending: VecDeque::new(),
            stats: ConsumerStats::default(),
            reader,
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
        match &self.reader {
            Reader::Timestamp(t) => Some(t.position()),
            Reader::Exact(_) => None,
        }
    }

    /// Position and lag of every partition (exact mode; empty in timestamp mode).
    pub fn status(&self) -> Vec<PartitionStatus> {
        match &self.reader {
            Reader::Exact(r) => r.status(),
            Reader::Timestamp(_) => Vec::new(),
        }
    }

    /// Whether everything up to every partition's checkpoint has been handed out and confirmed.
    pub fn caught_up(&self) -> bool {
        self.pending.is_empty()
            && match &self.reader {
                Reader::Exact(r) => r.caught_up(),
                Reader::Timestamp(ts) => !ts.in_round() && ts.last_round().is_some(),
            }
    }

    /// When the next poll can find something new, if it would wait.
    pub fn next_poll_in(&self) -> Duration {
        if !self.pending.is_empty() {
            return Duration::ZERO;
        }
        match &self.reader {
            Reader::Exact(r) => r.next_poll_in(self.config.poll_interval),
            Reader::Timestamp(ts) => {
                if ts.in_round() {
                    return Duration::ZERO;
                }
                match ts.last_round() {
                    None => Duration::ZERO,
                    Some(t) => self.config.poll_interval.saturating_sub(t.elapsed()),
                }
            }
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
            let (reader, mut cx) = self.split();
            let read = match reader {
                Reader::Timestamp(ts) => ts.timestamp_step(&mut cx).await?,
                Reader::Exact(r) => r.step(&mut cx).await?,
            };
            if !read && self.pending.is_empty() {
                return Ok(Vec::new());
            }
        }
    }

    /// The reader, and what it uses of the rest of the consumer.
    fn split(&mut self) -> (&mut Reader, Ctx<'_>) {
        (
            &mut self.reader,
            Ctx {
                config: &self.config,
                client: &self.client,
                info: &self.info,
                offsets: &mut self.offsets,
                lease: self.lease.as_ref(),
                stats: &mut self.stats,
                telemetry: &self.telemetry,
                pending: &mut self.pending,
            },
        )
    }

    /// Hands out up to `max` records of the first pending read (`None` when it held none).
    fn hand_out(&mut self, max: usize) -> Option<Vec<Record>> {
        let (records, keys, marks) = match self.pending.front_mut()? {
            Pending::Batch(front) if front.records.len() > max && max > 0 => {
                let rest = front.records.split_off(max);
                let keys_rest = front.keys.split_off(max.min(front.keys.len()));
                (
                    std::mem::replace(&mut front.records, rest),
                    std::mem::replace(&mut front.keys, keys_rest),
                    Vec::new(),
                )
            }
            _ => match self.pending.pop_front()? {
                Pending::Batch(b) => (b.records, b.keys, b.marks),
                Pending::Marks(marks) => (Vec::new(), Vec::new(), marks),
            },
        };
        if !records.is_empty() {
            self.stats.batches += 1;
            self.stats.delivered += records.len() as u64;
            match self.split() {
                (Reader::Timestamp(ts), cx) => ts.timestamp_handed_out(&cx, &keys),
                (Reader::Exact(r), _) => r.note_handed_out(&records),
            }
        }
        // The marks apply once every record queued with them is handed out.
        if let Reader::Exact(r) = &mut self.reader {
            r.apply_marks(marks);
        }
        (!records.is_empty()).then_some(records)
    }

    /// Documents handed out whose offsets are not committed yet.
    pub fn uncommitted(&self) -> u64 {
        match &self.reader {
            Reader::Timestamp(ts) => ts.uncommitted(),
            Reader::Exact(r) => r.uncommitted(),
        }
    }

    /// Delivered events that make a commit due, in both modes (a timestamp-mode commit writes
    /// the keys since the last one, not the whole window).
    fn commit_threshold(&self) -> u64 {
        self.config.commit_every_events
    }

    /// Whether a commit now would write anything.
    fn has_committable(&self) -> bool {
        match &self.reader {
            Reader::Timestamp(ts) => ts.dirty(),
            Reader::Exact(r) => r.has_committable(),
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
        let entries = match &mut self.reader {
            Reader::Timestamp(ts) => {
                return match ts.timestamp_snapshot() {
                    Some(c) => CommitSnapshot::Timestamp(Box::new(c)),
                    None => CommitSnapshot::Nothing,
                }
            }
            Reader::Exact(r) => r.snapshot(),
        };
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
            CommitSnapshot::Timestamp(c) => {
                let done = match self.split() {
                    (Reader::Timestamp(ts), mut cx) => ts.commit_timestamp(&mut cx, *c).await,
                    (Reader::Exact(_), _) => Ok(0),
                };
                if let Ok(n) = &done {
                    tracing::debug!(group = %self.config.group, documents = n, "committed the timestamp offset");
                }
                return done;
            }
            CommitSnapshot::Exact(entries) => entries,
        };
        let offsets: Vec<crate::offset::StoredOffset> =
            entries.iter().map(|(o, _)| o.clone()).collect();
        self.offsets
            .commit(self.config.mode.kind(), &offsets)
            .await?;
        if let Reader::Exact(r) = &mut self.reader {
            r.committed(&entries);
        }
        self.stats.commits += 1;
        tracing::debug!(group = %self.config.group, partitions = entries.len(), offsets = ?offsets.iter().map(|o| (o.partition.to_string(), o.seq_no)).collect::<Vec<_>>(), "committed offsets");
        Ok(entries.len())
    }

    /// Releases the group's lease.
    pub async fn close(mut self) -> Result<()> {
        if let Some(lease) = self.lease.take() {
            lease.release().await?;
        }
        Ok(())
    }
}

/// What one commit writes, taken when the sink's flush for it starts.
#[derive(Debug)]
enum CommitSnapshot {
    Nothing,
    /// The offsets, each with the version of its partition's handed-out state it covers.
    Exact(Vec<(crate::offset::StoredOffset, u64)>),
    Timestamp(Box<timestamp_read::TimestampCommit>),
}
