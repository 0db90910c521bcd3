//! The reader of the consumer's mode behind one small interface: the [`Consumer`] asks it to
//! read a step, tells it what was handed out, asks what a commit would write and has it
//! commit, and reads its position. Nothing outside this file matches on the mode's reader.
//!
//! [`Consumer`]: super::Consumer

use std::time::Duration;

use super::exact_read::ExactReader;
use super::timestamp_read::{TimestampCommit, TimestampReader};
use super::timestamp_shards::ShardTimestampReader;
use super::{Ctx, ReadMode, TimestampPartitions};
use crate::error::Result;
use crate::offset::StoredOffset;
use crate::partition::{PartitionId, PartitionStatus};
use crate::record::Record;

/// The reader of the consumer's mode.
#[derive(Debug)]
pub(super) enum Reader {
    Exact(Box<ExactReader>),
    Timestamp(Box<TimestampReader>),
    /// Timestamp mode by shard.
    TimestampShards(Box<ShardTimestampReader>),
}

/// What one commit writes, taken when the sink's flush for it starts.
#[derive(Debug)]
pub(super) enum CommitSnapshot {
    Nothing,
    /// The offsets, each with the version of its partition's handed-out state it covers.
    Exact(Vec<(StoredOffset, u64)>),
    Timestamp(Box<TimestampCommit>),
    TimestampShards(Vec<(PartitionId, TimestampCommit)>),
}

/// What was handed out of one queued read.
#[derive(Debug, Default)]
pub(super) struct HandedOut {
    pub(super) records: Vec<Record>,
    /// Timestamp mode: each record's event key and timestamp.
    pub(super) keys: Vec<(u64, i64)>,
    /// Exact mode: the partition the records came from.
    pub(super) partition: Option<PartitionId>,
    /// Exact mode: safe points reached once these records are handed out.
    pub(super) marks: Vec<(PartitionId, i64)>,
}

impl Reader {
    /// The reader of `mode`; `timestamp_field` is the field timestamp mode reads by.
    pub(super) fn new(mode: &ReadMode, timestamp_field: &str) -> Self {
        match mode {
            ReadMode::Exact(s) => Reader::Exact(Box::new(ExactReader::new(s.clone()))),
            ReadMode::Timestamp(s) if s.partitions == TimestampPartitions::Shards => {
                Reader::TimestampShards(Box::new(ShardTimestampReader::new(
                    timestamp_field,
                    s.clone(),
                )))
            }
            ReadMode::Timestamp(s) => {
                Reader::Timestamp(Box::new(TimestampReader::new(timestamp_field, s.clone())))
            }
        }
    }

    /// One step of reading; whether it queued anything or has more to do at once.
    pub(super) async fn step(&mut self, cx: &mut Ctx<'_>) -> Result<bool> {
        match self {
            Reader::Exact(r) => r.step(cx).await,
            Reader::Timestamp(r) => r.timestamp_step(cx).await,
            Reader::TimestampShards(r) => r.step(cx).await,
        }
    }

    /// Records what was handed out to the sink (what the next commit covers).
    pub(super) fn handed_out(&mut self, cx: &Ctx<'_>, out: &HandedOut) {
        match self {
            Reader::Exact(r) => {
                if let Some(pid) = &out.partition {
                    r.note_handed_out(pid, &out.records);
                }
            }
            Reader::Timestamp(r) => {
                if !out.keys.is_empty() {
                    r.timestamp_handed_out(cx, &out.keys)
                }
            }
            Reader::TimestampShards(r) => {
                if let (Some(pid), false) = (&out.partition, out.keys.is_empty()) {
                    r.handed_out(cx, pid, &out.keys);
                }
            }
        }
    }

    /// Safe points that apply once every record queued with them is handed out.
    pub(super) fn apply_marks(&mut self, marks: Vec<(PartitionId, i64)>) {
        if let Reader::Exact(r) = self {
            r.apply_marks(marks);
        }
    }

    /// Whether everything readable has been read and handed out.
    pub(super) fn caught_up(&self) -> bool {
        match self {
            Reader::Exact(r) => r.caught_up(),
            Reader::Timestamp(r) => !r.in_round() && r.last_round().is_some(),
            Reader::TimestampShards(r) => r.caught_up(),
        }
    }

    /// How long until a step can find something new.
    pub(super) fn next_poll_in(&self, poll_interval: Duration) -> Duration {
        match self {
            Reader::Exact(r) => r.next_poll_in(poll_interval),
            Reader::Timestamp(r) if r.in_round() => Duration::ZERO,
            Reader::Timestamp(r) => match r.last_round() {
                None => Duration::ZERO,
                Some(t) => poll_interval.saturating_sub(t.elapsed()),
            },
            Reader::TimestampShards(r) => r.next_poll_in(poll_interval),
        }
    }

    /// Documents handed out and not committed yet.
    pub(super) fn uncommitted(&self) -> u64 {
        match self {
            Reader::Exact(r) => r.uncommitted(),
            Reader::Timestamp(r) => r.uncommitted(),
            Reader::TimestampShards(r) => r.uncommitted(),
        }
    }

    /// Whether a commit now would write anything.
    pub(super) fn has_committable(&self) -> bool {
        match self {
            Reader::Exact(r) => r.has_committable(),
            Reader::Timestamp(r) => r.dirty(),
            Reader::TimestampShards(r) => r.has_committable(),
        }
    }

    /// What a commit would write now.
    pub(super) fn snapshot(&mut self) -> CommitSnapshot {
        match self {
            Reader::Timestamp(r) => match r.timestamp_snapshot() {
                Some(c) => CommitSnapshot::Timestamp(Box::new(c)),
                None => CommitSnapshot::Nothing,
            },
            Reader::TimestampShards(r) => {
                let entries = r.snapshot();
                if entries.is_empty() {
                    CommitSnapshot::Nothing
                } else {
                    CommitSnapshot::TimestampShards(entries)
                }
            }
            Reader::Exact(r) => {
                let entries = r.snapshot();
                if entries.is_empty() {
                    CommitSnapshot::Nothing
                } else {
                    CommitSnapshot::Exact(entries)
                }
            }
        }
    }

    /// Writes a snapshot; returns how many offsets (partitions, or the one timestamp offset) it
    /// wrote.
    pub(super) async fn commit(
        &mut self,
        cx: &mut Ctx<'_>,
        snapshot: CommitSnapshot,
    ) -> Result<usize> {
        match (self, snapshot) {
            (_, CommitSnapshot::Nothing) => Ok(0),
            (Reader::Exact(r), CommitSnapshot::Exact(entries)) => r.commit(cx, entries).await,
            (Reader::Timestamp(r), CommitSnapshot::Timestamp(c)) => {
                let n = r.commit_timestamp(cx, *c).await?;
                tracing::debug!(group = %cx.config.group, "committed the timestamp offset");
                Ok(n)
            }
            (Reader::TimestampShards(r), CommitSnapshot::TimestampShards(entries)) => {
                r.commit(cx, entries).await
            }
            // A snapshot is always taken from the same reader.
            _ => Ok(0),
        }
    }

    /// Partitions shared by members: stops reading a partition the membership lost and drops
    /// its queued reads; what was handed out of it is committed if the cluster still lets us.
    /// Whether something of it waits for that commit.
    pub(super) fn lose_partition(&mut self, cx: &mut Ctx<'_>, pid: &PartitionId) -> bool {
        use super::assignment::Assigned;
        match self {
            Reader::Exact(r) => {
                Assigned::lose_partition(&mut **r, cx, pid);
                Assigned::has_uncommitted(&**r, pid)
            }
            Reader::TimestampShards(r) => {
                Assigned::lose_partition(&mut **r, cx, pid);
                Assigned::has_uncommitted(&**r, pid)
            }
            Reader::Timestamp(_) => false,
        }
    }

    /// Exact mode: whether partitions handed over to another member wait for a commit.
    pub(super) fn handover_pending(&self) -> bool {
        match self {
            Reader::Exact(r) => r.handover_pending(),
            Reader::TimestampShards(r) => r.handover_pending(),
            Reader::Timestamp(_) => false,
        }
    }

    /// Exact mode: the handed-over partitions whose deliveries are all committed, forgotten
    /// (release their claims).
    pub(super) fn handed_over(&mut self) -> Vec<PartitionId> {
        match self {
            Reader::Exact(r) => r.handed_over(),
            Reader::TimestampShards(r) => super::assignment::Assigned::handed_over(&mut **r),
            Reader::Timestamp(_) => Vec::new(),
        }
    }

    /// Position and lag of every partition (exact mode; empty in timestamp mode).
    pub(super) fn status(&self) -> Vec<PartitionStatus> {
        match self {
            Reader::Exact(r) => r.status(),
            Reader::Timestamp(_) | Reader::TimestampShards(_) => Vec::new(),
        }
    }

    /// Timestamp mode: the newest timestamp handed out and the keys the window holds.
    pub(super) fn timestamp_position(&self) -> Option<(Option<i64>, usize)> {
        match self {
            Reader::Timestamp(r) => Some(r.position()),
            Reader::TimestampShards(r) => Some(r.position()),
            Reader::Exact(_) => None,
        }
    }
}
