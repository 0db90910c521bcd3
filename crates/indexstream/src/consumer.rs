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
use crate::group::members::Membership;
use crate::group::{Lease, LeaseKeeper};
use crate::offset::OffsetStore;
use crate::partition::{PartitionId, PartitionStatus};
use crate::record::Record;
use crate::telemetry::Telemetry;

mod assignment;
mod config;
mod exact_read;
mod reader;
mod run;
mod timestamp_pages;
mod timestamp_read;
mod timestamp_shards;
pub use config::{
    default_member_id, ConsumerBuilder, ConsumerConfig, ExactSettings, OnMissingTimestamp,
    ReadMode, RefreshPolicy, StartFrom, TimestampPartitions, TimestampSettings,
};
use reader::{CommitSnapshot, HandedOut, Reader};
pub use run::{RunOptions, RunSummary, StopReason};

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
    /// Exact mode: the partition they were read from (a batch holds one partition's records).
    partition: Option<PartitionId>,
    /// Exact mode: once these records are handed out, everything up to this `_seq_no` of the
    /// partition has been (the reader's safe point when it queued them).
    marks: Vec<(PartitionId, i64)>,
    /// Timestamp mode: each record's event key and timestamp, recorded when handed out.
    keys: Vec<(u64, i64)>,
}

/// Drops what of a partition is queued but not handed out (it was lost or handed over: the next
/// owner reads it from the committed offset).
fn drop_queued(pending: &mut VecDeque<Pending>, pid: &PartitionId) {
    pending.retain_mut(|p| match p {
        Pending::Batch(b) => b.partition.as_ref() != Some(pid),
        Pending::Marks(m) => {
            m.retain(|(q, _)| q != pid);
            !m.is_empty()
        }
    });
}

/// How a consumer holds its group.
#[derive(Debug)]
enum Hold {
    /// Timestamp mode with one partition: the group's one lease.
    Lease(LeaseKeeper),
    /// Exact mode, and timestamp mode by shard: a membership, owning some of the group's
    /// partitions.
    Members(Membership),
}

impl Hold {
    /// Fails with [`crate::Error::Fenced`] once the group (or the membership) is lost.
    fn check(&self) -> Result<()> {
        match self {
            Hold::Lease(l) => l.check(),
            Hold::Members(m) => m.check(),
        }
    }

    fn members(&self) -> Option<&Membership> {
        match self {
            Hold::Members(m) => Some(m),
            Hold::Lease(_) => None,
        }
    }

    async fn release(self) -> Result<()> {
        match self {
            Hold::Lease(l) => l.release().await,
            Hold::Members(m) => m.leave().await,
        }
    }
}

/// What a reader uses of its consumer while it reads: the settings, the clients, the offsets,
/// the counters, and the queue it hands its reads to.
struct Ctx<'a> {
    config: &'a ConsumerConfig,
    client: &'a Client,
    info: &'a ServerInfo,
    offsets: &'a mut OffsetStore,
    hold: Option<&'a Hold>,
    stats: &'a mut ConsumerStats,
    telemetry: &'a Telemetry,
    pending: &'a mut VecDeque<Pending>,
}

/// A running consumer. It is a member of its group (exact mode) or holds the group's lease
/// (timestamp mode): call [`Consumer::close`] to leave.
#[derive(Debug)]
#[must_use = "a consumer holds its group's lease until closed"]
pub struct Consumer {
    config: ConsumerConfig,
    client: Client,
    info: ServerInfo,
    offsets: OffsetStore,
    hold: Option<Hold>,
    /// The partition of the records the last poll returned (exact mode).
    last_partition: Option<PartitionId>,
    pending: VecDeque<Pending>,
    /// The mode's reader and its state.
    reader: Reader,
    stats: ConsumerStats,
    telemetry: std::sync::Arc<Telemetry>,
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
        if config.client.tls.verification == crate::client::Verification::Insecure {
            let warning = "TLS certificate verification is off (insecure): anyone between the consumer and the cluster can read and change the traffic";
            tracing::warn!("{warning}");
            telemetry.add_warning(warning);
        }
        let opaque_id = format!("indexstream:{}:{}", config.group, config.member_id);
        let base = Client::new(&config.client)?
            .with_retry(config.retry.clone())
            .with_opaque_id(&opaque_id);
        // OpenSearch Serverless has no shard-level stats and no shard preference: only a
        // timestamp read of the whole expression works there.
        if base.aws_service() == Some(crate::client::AwsService::Aoss) && config.mode.has_members()
        {
            return Err(crate::Error::Config {
                field: "mode",
                reason: "OpenSearch Serverless (aws-sigv4 aoss) has no shard-level stats or shard preference, so exact mode and timestamp mode by shard cannot read it: read it in timestamp mode with one partition (--mode timestamp --timestamp-partitions one)".into(),
            });
        }
        let info = base.info().await?;
        // Checked before the group is joined: a consumer refused for its input must leave no
        // lease behind (the offsets' mode is checked below, before the lease too).
        // (Exact mode and timestamp mode by shard read shard stats anyway; timestamp mode with
        // one partition, which needs no stats privilege, finds a missing index in its first
        // round.)
        if config.mode.has_members() {
            match base.shard_stats(&config.index).await {
                Err(crate::client::ClientError::Status { status: 404, .. }) => {
                    return Err(crate::Error::NoSuchIndex {
                        pattern: config.index.clone(),
                    })
                }
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
        }
        let observer: std::sync::Arc<dyn crate::client::ObserveRetries> = telemetry.clone();
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
        if let ReadMode::Timestamp(t) = &config.mode {
            offsets.check_partitions(t.partitions).await?;
        }
        // The lease has a client of its own: no breaker (an open one must not stop renewals)
        // and connections no other task holds up.
        let lease_client = Client::new(&config.client)?
            .with_retry(config.retry.clone())
            .with_opaque_id(&opaque_id)
            .with_retry_observer(observer_for_lease);
        let hold = match config.mode.has_members() {
            true => Hold::Members(
                Membership::join(
                    lease_client,
                    &config.offsets_index,
                    &config.group,
                    &config.member_id,
                    config.lease_ttl,
                    telemetry.clone(),
                )
                .await?,
            ),
            false => Hold::Lease(LeaseKeeper::start(
                Lease::acquire(
                    lease_client,
                    &config.offsets_index,
                    &config.group,
                    &config.member_id,
                    config.lease_ttl,
                )
                .await?,
            )),
        };
        tracing::info!(group = %config.group, member = %config.member_id, index = %config.index, "joined group");
        let reader = Reader::new(&config.mode, &config.timestamp_field);
        Ok(Consumer {
            telemetry,
            config,
            client,
            info,
            offsets,
            hold: Some(hold),
            last_partition: None,
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
        self.reader.timestamp_position()
    }

    /// Position and lag of every partition (exact mode; empty in timestamp mode).
    pub fn status(&self) -> Vec<PartitionStatus> {
        self.reader.status()
    }

    /// Whether everything up to every partition's checkpoint has been handed out and confirmed.
    pub fn caught_up(&self) -> bool {
        self.pending.is_empty() && self.reader.caught_up()
    }

    /// When the next poll can find something new, if it would wait.
    pub fn next_poll_in(&self) -> Duration {
        if !self.pending.is_empty() {
            return Duration::ZERO;
        }
        self.reader.next_poll_in(self.config.poll_interval)
    }

    /// Returns the next batch (at most `max` records), or an empty one when there is nothing to
    /// read yet (see [`Consumer::next_poll_in`]). Not cancellation-safe: do not drop the future
    /// half-way (the records it read would be lost to this process, though never committed).
    pub async fn poll(&mut self, max: usize) -> Result<Vec<Record>> {
        loop {
            self.drop_lost_partitions();
            if !self.pending.is_empty() {
                match self.hand_out(max) {
                    Some(batch) => return Ok(batch),
                    None => continue,
                }
            }
            let (reader, mut cx) = self.split();
            let read = reader.step(&mut cx).await?;
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
                hold: self.hold.as_ref(),
                stats: &mut self.stats,
                telemetry: &self.telemetry,
                pending: &mut self.pending,
            },
        )
    }

    /// Hands out up to `max` records of the first pending read (`None` when it held none).
    fn hand_out(&mut self, max: usize) -> Option<Vec<Record>> {
        let mut out = match self.pending.front_mut()? {
            Pending::Batch(front) if front.records.len() > max && max > 0 => {
                let rest = front.records.split_off(max);
                let keys_rest = front.keys.split_off(max.min(front.keys.len()));
                HandedOut {
                    records: std::mem::replace(&mut front.records, rest),
                    keys: std::mem::replace(&mut front.keys, keys_rest),
                    partition: front.partition.clone(),
                    marks: Vec::new(),
                }
            }
            _ => match self.pending.pop_front()? {
                Pending::Batch(b) => HandedOut {
                    records: b.records,
                    keys: b.keys,
                    partition: b.partition,
                    marks: b.marks,
                },
                Pending::Marks(marks) => HandedOut {
                    marks,
                    ..HandedOut::default()
                },
            },
        };
        if let (Some(pid), Some(m)) = (&out.partition, self.hold.as_ref().and_then(Hold::members)) {
            if !m.owns(pid) {
                // Lost since it was read: nothing more of it is delivered.
                self.drop_lost_partitions();
                return None;
            }
        }
        self.last_partition = out.partition.clone();
        if !out.records.is_empty() {
            self.stats.batches += 1;
            self.stats.delivered += out.records.len() as u64;
            let (reader, cx) = self.split();
            reader.handed_out(&cx, &out);
        }
        // The marks apply once every record queued with them is handed out.
        self.reader.apply_marks(std::mem::take(&mut out.marks));
        (!out.records.is_empty()).then_some(out.records)
    }

    /// Documents handed out whose offsets are not committed yet.
    pub fn uncommitted(&self) -> u64 {
        self.reader.uncommitted()
    }

    /// Delivered events that make a commit due, in both modes (a timestamp-mode commit writes
    /// the keys since the last one, not the whole window).
    fn commit_threshold(&self) -> u64 {
        self.config.commit_every_events
    }

    /// Whether a commit now would write anything.
    fn has_committable(&self) -> bool {
        self.reader.has_committable()
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
        self.reader.snapshot()
    }

    async fn commit_from(&mut self, snapshot: CommitSnapshot) -> Result<usize> {
        // A member that lost the group must not move offsets (the cluster's CAS refuses it too
        // once the new holder has written; this refuses it before that). Partitions lost one by
        // one are left to the CAS: their commit is refused and they are dropped.
        if let Some(hold) = self.hold.as_ref() {
            hold.check()?;
        }
        let (reader, mut cx) = self.split();
        let n = reader.commit(&mut cx, snapshot).await?;
        self.finish_handover().await?;
        Ok(n)
    }

    /// Exact mode: stops the partitions the membership lost (their queued reads dropped):
    /// nothing more of them is delivered; the next commit writes what was, if the cluster still
    /// lets it.
    fn drop_lost_partitions(&mut self) {
        let Some(m) = self.hold.as_ref().and_then(Hold::members) else {
            return;
        };
        let lost = m.take_lost();
        for (pid, why) in lost {
            let (reader, mut cx) = self.split();
            let uncommitted = reader.lose_partition(&mut cx, &pid);
            tracing::warn!(group = %self.config.group, member = %self.config.member_id, partition = %pid, reason = %why, uncommitted, "partition lost: delivering nothing more of it");
        }
    }

    /// Whether the records the last poll returned still belong to a partition we own (exact
    /// mode; always true in timestamp mode). Ask right before delivering them: a member that was
    /// paused past its TTL learns here that it lost them.
    pub fn owns_last_batch(&mut self) -> bool {
        let owned = match (
            &self.last_partition,
            self.hold.as_ref().and_then(Hold::members),
        ) {
            (Some(pid), Some(m)) => m.owns(pid),
            _ => true,
        };
        if !owned {
            self.drop_lost_partitions();
        }
        owned
    }

    /// Exact mode: partitions handed over to another member wait for a commit; whether some do.
    pub fn handover_pending(&self) -> bool {
        self.reader.handover_pending()
    }

    /// Releases the handed-over partitions whose deliveries are all committed.
    async fn finish_handover(&mut self) -> Result<()> {
        let done = self.reader.handed_over();
        if done.is_empty() {
            return Ok(());
        }
        for pid in &done {
            tracing::info!(partition = %pid, "partition released: all delivered of it is committed");
            self.offsets.forget(pid);
        }
        if let Some(m) = self.hold.as_ref().and_then(Hold::members) {
            m.release(&done).await?;
        }
        Ok(())
    }

    /// Leaves the group (exact mode: gives the partitions up at once, for the other members to
    /// take over) or releases its lease (timestamp mode).
    pub async fn close(mut self) -> Result<()> {
        if let Some(hold) = self.hold.take() {
            hold.release().await?;
        }
        Ok(())
    }
}
