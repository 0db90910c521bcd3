//! Timestamp mode by shard ([`TimestampPartitions::Shards`]): every shard of every index behind
//! the expression is a partition `(index uuid, shard)` with its own cursor and window (a
//! [`TimestampReader`] scoped to it), read through a shard preference with `_seq_no` as the
//! tiebreaker, so the group's members share the partitions as in exact mode, with the same
//! claims, epochs and fencing.
//!
//! A pass starts with one shard-stats request. Only the partitions whose shard changed since
//! their last search are searched (see [`ShardWatch`]): a write changes its primary's max
//! `_seq_no`, and the refresh that makes it visible comes after; an idle shard changes neither.
//! So an idle pattern of hundreds of daily indices costs one `_stats` request per poll, not
//! hundreds of searches.
//!
//! [`TimestampPartitions::Shards`]: super::TimestampPartitions::Shards

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::assignment::{self, Assigned};
use super::exact_read::shard_preference;
use super::timestamp_read::{Scope, TimestampCommit, TimestampReader};
use super::{drop_queued, Ctx, TimestampSettings};
use crate::client::types::ShardStat;
use crate::error::Result;
use crate::offset::TimestampPartitionCommit;
use crate::partition::PartitionId;

/// What decides whether a partition's shard has something new to search: its primary's max
/// `_seq_no` at the last search, and the refresh count when that changed. A shard is searched
/// when its max `_seq_no` moved (a write), and once more after the next refresh following it
/// (what that write made visible). An explicit `_refresh` of the whole index, which moves every
/// shard's refresh count, searches none of the unchanged ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ShardWatch {
    max_seq_no: Option<i64>,
    /// The refresh count seen with a new max `_seq_no`, until a search after a later refresh.
    awaiting_refresh: Option<u64>,
}

impl ShardWatch {
    /// Whether the shard, as its stats say now, needs a search; records that it gets one.
    fn search_due(&mut self, s: &ShardStat) -> bool {
        if self.max_seq_no != Some(s.max_seq_no) {
            self.max_seq_no = Some(s.max_seq_no);
            self.awaiting_refresh = Some(s.external_refresh_total);
            return true;
        }
        match self.awaiting_refresh {
            Some(r) if r != s.external_refresh_total => {
                self.awaiting_refresh = None;
                true
            }
            _ => false,
        }
    }
}

/// One partition: its reader, and when it was last searched.
#[derive(Debug)]
struct ShardPartition {
    reader: TimestampReader,
    /// Whether its shard changed since its last search.
    watch: ShardWatch,
    /// Its shard changed since: a round of it is due.
    wanted: bool,
    /// Its shard changed while a round was under way: another round follows that one (what
    /// the change made visible may sort before where the round is).
    again: bool,
}

/// The reader of timestamp mode by shard.
#[derive(Debug)]
pub(super) struct ShardTimestampReader {
    field: String,
    settings: TimestampSettings,
    partitions: BTreeMap<PartitionId, ShardPartition>,
    /// Partitions the assignment gave to another member (or that were lost): not read, released
    /// once what was handed out of them is committed.
    revoking: BTreeSet<PartitionId>,
    /// The partition read last (the next turn goes to the one after it).
    current: Option<PartitionId>,
    last_pass: Option<Instant>,
    first_pass: bool,
}

impl ShardTimestampReader {
    pub(super) fn new(field: &str, settings: TimestampSettings) -> Self {
        ShardTimestampReader {
            field: field.to_string(),
            settings,
            partitions: BTreeMap::new(),
            revoking: BTreeSet::new(),
            current: None,
            last_pass: None,
            first_pass: true,
        }
    }

    /// One step: the next page of the partition whose round is under way, the start of the
    /// next changed partition's round, or a new pass when the poll interval has passed.
    /// `false` when there is nothing to do before the next pass.
    pub(super) async fn step(&mut self, cx: &mut Ctx<'_>) -> Result<bool> {
        // A pass is due every poll interval, also while partitions are still being read: the
        // assignment, new indices, lost claims and the primaries' nodes do not wait for a
        // backlog to drain.
        let due = self.first_pass
            || self
                .last_pass
                .is_none_or(|t| t.elapsed() >= cx.config.poll_interval);
        if due {
            self.start_pass(cx).await?;
            return Ok(self.partitions.values().any(|p| p.wanted));
        }
        // One page of each partition with something new in turn: fresh data in one shard does
        // not wait behind another's backlog.
        let next = {
            let wanted = |(pid, p): &(&PartitionId, &ShardPartition)| {
                p.wanted && !self.revoking.contains(*pid)
            };
            let after = self.current.as_ref().and_then(|c| {
                self.partitions
                    .range::<PartitionId, _>((
                        std::ops::Bound::Excluded(c),
                        std::ops::Bound::Unbounded,
                    ))
                    .find(wanted)
            });
            after
                .or_else(|| self.partitions.iter().find(wanted))
                .map(|(pid, _)| pid.clone())
        };
        let Some(pid) = next else {
            return Ok(false);
        };
        self.current = Some(pid.clone());
        let Some(p) = self.partitions.get_mut(&pid) else {
            return Ok(true);
        };
        if !assignment::still_ours(cx, &pid) {
            // Lapsed or taken: the poll loses it next (its commit still to make), unread.
            p.wanted = false;
            return Ok(true);
        }
        // Searched again at its next turn when this fails.
        p.reader.step_when(cx, true).await?;
        if !p.reader.in_round() {
            p.wanted = std::mem::take(&mut p.again);
        }
        Ok(true)
    }

    /// Reads the shard stats, agrees on the assignment, and marks the partitions whose shard
    /// changed since their last search.
    async fn start_pass(&mut self, cx: &mut Ctx<'_>) -> Result<()> {
        let stats = assignment::group_stats(cx, self.first_pass).await?;
        self.first_pass = false;
        self.last_pass = Some(Instant::now());
        let stats = assignment::rebalance(self, cx, stats).await?;
        let ours: BTreeSet<PartitionId> = assignment::partitions_of(&stats).collect();
        // Deleted or recreated indices: a recreated one is a new partition (a new uuid).
        let gone: Vec<PartitionId> = self
            .partitions
            .keys()
            .filter(|p| !ours.contains(*p) && !self.revoking.contains(*p))
            .cloned()
            .collect();
        for pid in gone {
            tracing::info!(partition = %pid, "partition no longer behind the expression: dropped");
            self.drop_partition(cx, &pid);
        }
        let mut searched = 0;
        for index in &stats {
            for s in &index.shards {
                let pid = PartitionId {
                    index: index.index.clone(),
                    uuid: index.uuid.clone(),
                    shard: s.shard,
                };
                let preference = shard_preference(cx.info, s.shard, &s.node);
                let p = self.partitions.entry(pid.clone()).or_insert_with(|| {
                    tracing::info!(partition = %pid, "partition assigned");
                    ShardPartition {
                        reader: TimestampReader::of_partition(
                            &self.field,
                            self.settings.clone(),
                            Scope {
                                pid: pid.clone(),
                                preference: preference.clone(),
                            },
                        ),
                        watch: ShardWatch::default(),
                        wanted: false,
                        again: false,
                    }
                });
                p.reader.set_preference(preference);
                if p.watch.search_due(s) {
                    p.again = p.reader.in_round();
                    p.wanted = true;
                }
                searched += usize::from(p.wanted);
            }
        }
        tracing::debug!(
            partitions = self.partitions.len(),
            to_search = searched,
            "shard stats read"
        );
        Ok(())
    }

    /// Whether every partition's changes have been read and handed out.
    pub(super) fn caught_up(&self) -> bool {
        self.last_pass.is_some() && !self.partitions.values().any(|p| p.wanted)
    }

    /// How long until a step can find something new.
    pub(super) fn next_poll_in(&self, poll_interval: Duration) -> Duration {
        if self.partitions.values().any(|p| p.wanted) {
            return Duration::ZERO;
        }
        match self.last_pass {
            None => Duration::ZERO,
            Some(t) => poll_interval.saturating_sub(t.elapsed()),
        }
    }

    /// Records handed-out events in their partition's window.
    pub(super) fn handed_out(&mut self, cx: &Ctx<'_>, pid: &PartitionId, keys: &[(u64, i64)]) {
        if let Some(p) = self.partitions.get_mut(pid) {
            p.reader.timestamp_handed_out(cx, keys);
        }
        // Each partition's reader sets the gauge to its own window; it is the sum.
        cx.telemetry.window_keys(
            self.partitions
                .values()
                .map(|p| p.reader.position().1)
                .sum(),
        );
    }

    pub(super) fn uncommitted(&self) -> u64 {
        self.partitions
            .values()
            .map(|p| p.reader.uncommitted())
            .sum()
    }

    pub(super) fn has_committable(&self) -> bool {
        self.partitions.values().any(|p| p.reader.dirty())
    }

    /// Whether partitions handed over wait for a commit.
    pub(super) fn handover_pending(&self) -> bool {
        !self.revoking.is_empty()
    }

    /// The oldest cursor of the partitions, and the keys their windows hold.
    pub(super) fn position(&self) -> (Option<i64>, usize) {
        let cursor = self
            .partitions
            .values()
            .filter_map(|p| p.reader.position().0)
            .min();
        let keys = self
            .partitions
            .values()
            .map(|p| p.reader.position().1)
            .sum();
        (cursor, keys)
    }

    /// What a commit would write now: every partition with something new.
    pub(super) fn snapshot(&mut self) -> Vec<(PartitionId, TimestampCommit)> {
        self.partitions
            .iter_mut()
            .filter_map(|(pid, p)| Some((pid.clone(), p.reader.timestamp_snapshot()?)))
            .collect()
    }

    /// Writes a snapshot in one `_bulk`. A partition whose commit the cluster refuses (a member
    /// of a newer epoch owns it) is dropped: nothing more of it is delivered.
    pub(super) async fn commit(
        &mut self,
        cx: &mut Ctx<'_>,
        entries: Vec<(PartitionId, TimestampCommit)>,
    ) -> Result<usize> {
        let mut writes = Vec::with_capacity(entries.len());
        let mut done = Vec::with_capacity(entries.len());
        for (pid, c) in entries {
            writes.push(TimestampPartitionCommit {
                partition: pid.clone(),
                head: c.head,
                part_name: c.part_name,
                part: c.part,
            });
            done.push((pid, c.parts, c.handed, c.version, c.replaced));
        }
        let refused = cx.offsets.commit_timestamp_partitions(writes).await?;
        let members = cx.hold.and_then(|h| h.members());
        for pid in &refused {
            tracing::warn!(partition = %pid, "commit refused by the cluster: another member owns the partition in a newer epoch; delivering nothing more of it");
            if let Some(m) = members {
                m.refused(pid);
            }
            self.drop_partition(cx, pid);
        }
        let mut replaced = Vec::new();
        let mut n = 0;
        for (pid, parts, handed, version, old) in done {
            if refused.contains(&pid) {
                continue;
            }
            if let Some(p) = self.partitions.get_mut(&pid) {
                p.reader.committed(parts, handed, version);
            }
            replaced.extend(old);
            n += 1;
        }
        cx.offsets.delete_window_parts(&replaced).await;
        cx.stats.commits += 1;
        tracing::debug!(group = %cx.config.group, partitions = n, "committed timestamp offsets");
        Ok(n)
    }

    /// Stops reading a partition: its round, and what of it is queued but not handed out.
    fn stop_reading(&mut self, cx: &mut Ctx<'_>, pid: &PartitionId) {
        if let Some(p) = self.partitions.get_mut(pid) {
            p.reader.stop_round();
            p.wanted = false;
            p.again = false;
        }
        drop_queued(cx.pending, pid);
    }
}

impl Assigned for ShardTimestampReader {
    fn lose_partition(&mut self, cx: &mut Ctx<'_>, pid: &PartitionId) {
        self.stop_reading(cx, pid);
        if self.partitions.contains_key(pid) {
            self.revoking.insert(pid.clone());
        }
    }

    fn handing_over(&self) -> usize {
        self.revoking.len()
    }

    fn revoke(&mut self, cx: &mut Ctx<'_>, pid: &PartitionId) -> bool {
        if !self.revoking.insert(pid.clone()) {
            return false;
        }
        self.stop_reading(cx, pid);
        true
    }

    fn is_revoking(&self, pid: &PartitionId) -> bool {
        self.revoking.contains(pid)
    }

    fn has_uncommitted(&self, pid: &PartitionId) -> bool {
        self.partitions.get(pid).is_some_and(|s| s.reader.dirty())
    }

    fn handed_over(&mut self) -> Vec<PartitionId> {
        let done: Vec<PartitionId> = self
            .revoking
            .iter()
            .filter(|p| !self.has_uncommitted(p))
            .cloned()
            .collect();
        for pid in &done {
            self.revoking.remove(pid);
            self.partitions.remove(pid);
        }
        done
    }

    fn reading(&self) -> Vec<PartitionId> {
        self.partitions
            .keys()
            .filter(|p| !self.revoking.contains(*p))
            .cloned()
            .collect()
    }

    fn drop_partition(&mut self, cx: &mut Ctx<'_>, pid: &PartitionId) {
        self.stop_reading(cx, pid);
        self.partitions.remove(pid);
        self.revoking.remove(pid);
        cx.offsets.forget(pid);
    }
}
