//! Exact mode's reader: every shard of the index expression is a partition, read in `_seq_no`
//! order up to its global checkpoint once that is proven searchable. It owns the partitions'
//! state ([`ExactPartition`]), what has been handed out of each ([`HandedOut`]), and the phases
//! of a round: the shard stats (new, gone and recreated indices, checkpoints, refreshes), the
//! fast path (one page of every partition with something new, the next pages asked for before
//! these are handed out), and the gap reads below confirmed checkpoints.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Batch, Ctx, ExactSettings, Pending, RefreshPolicy, StartFrom};
use crate::client::types::{Hit, IndexShards};
use crate::client::{ClientError, ServerInfo};
use crate::error::Result;
use crate::offset::StoredOffset;
use crate::partition::{PartitionId, PartitionStatus};
use crate::record::{Record, Source};
use crate::source::exact::{ExactPartition, HandedOut};
use crate::source::intervals::IntervalSet;

/// The preference that sends a search of `shard` to its primary copy (on `node`).
pub(super) fn shard_preference(info: &ServerInfo, shard: u32, node: &str) -> String {
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

/// Exact mode's state.
#[derive(Debug)]
pub(super) struct ExactReader {
    /// Exact mode's own settings.
    settings: ExactSettings,
    partitions: BTreeMap<PartitionId, ExactPartition>,
    uuid_of: HashMap<String, String>,
    /// Checkpoints confirmed searchable, waiting for their gap reads.
    confirm: BTreeMap<PartitionId, i64>,
    /// What has been handed out of each partition: what commits write.
    handed: HashMap<PartitionId, HandedOut>,
    phase: Phase,
    /// Page reads started ahead (see [`ExactReader::fast_step`]).
    inflight: Option<FastReads>,
    /// `_seq_no`s handed out above each partition's committed offset: the uncommitted backlog.
    handed_out: HashMap<PartitionId, IntervalSet>,
    last_round: Option<Instant>,
    /// A partition had more to read than one round's pages.
    more: bool,
    first_round: bool,
    /// Partitions the group's assignment gave to another member: no longer read, released
    /// once what was delivered of them is committed.
    revoking: std::collections::BTreeSet<PartitionId>,
}

impl ExactReader {
    pub(super) fn new(settings: ExactSettings) -> Self {
        ExactReader {
            settings,
            partitions: BTreeMap::new(),
            uuid_of: HashMap::new(),
            confirm: BTreeMap::new(),
            handed: HashMap::new(),
            phase: Phase::Idle,
            inflight: None,
            handed_out: HashMap::new(),
            last_round: None,
            more: false,
            first_round: true,
            revoking: Default::default(),
        }
    }

    /// Forgets a partition (lost to another member, or handed over): its state, its queued
    /// reads, the page reads under way (started from a state that no longer holds).
    pub(super) fn drop_partition(&mut self, cx: &mut Ctx<'_>, pid: &PartitionId) {
        self.stop_reading(cx, pid);
        self.handed.remove(pid);
        self.handed_out.remove(pid);
        self.revoking.remove(pid);
        cx.offsets.forget(pid);
    }

    /// A partition the membership lost (taken by another member, or its claim lapsed): nothing
    /// more of it is read or handed out; what was handed out is committed if the cluster still
    /// lets us (its CAS refuses it once a new owner has fenced the partition), then forgotten.
    pub(super) fn lose_partition(&mut self, cx: &mut Ctx<'_>, pid: &PartitionId) {
        self.stop_reading(cx, pid);
        self.revoking.insert(pid.clone());
    }

    /// Stops reading a partition: drops its read state and what of it is queued but not yet
    /// handed out (the next owner reads it from the committed offset). What was handed out
    /// stays, for a commit.
    fn stop_reading(&mut self, cx: &mut Ctx<'_>, pid: &PartitionId) {
        self.partitions.remove(pid);
        self.confirm.remove(pid);
        self.inflight = None;
        super::drop_queued(cx.pending, pid);
    }

    /// Whether partitions handed over wait for a commit.
    pub(super) fn handover_pending(&self) -> bool {
        !self.revoking.is_empty()
    }

    /// Whether something handed out of a partition is not committed yet.
    fn has_uncommitted(&self, pid: &PartitionId) -> bool {
        self.handed
            .get(pid)
            .is_some_and(|h| h.to_commit().is_some())
    }

    /// The handed-over partitions with nothing left to commit, forgotten.
    pub(super) fn handed_over(&mut self) -> Vec<PartitionId> {
        let done: Vec<PartitionId> = self
            .revoking
            .iter()
            .filter(|p| !self.has_uncommitted(p))
            .cloned()
            .collect();
        for p in &done {
            self.revoking.remove(p);
            self.handed.remove(p);
            self.handed_out.remove(p);
        }
        done
    }

    /// One step of a round: the shard stats, a fast-path page of every partition, or the gap
    /// reads. `false` when the round has ended with nothing queued, or the next round is not
    /// due before the poll interval.
    pub(super) async fn step(&mut self, cx: &mut Ctx<'_>) -> Result<bool> {
        match self.phase {
            Phase::Idle => {
                if self.next_poll_in(cx.config.poll_interval) > Duration::ZERO && !self.first_round
                {
                    return Ok(false);
                }
                self.start_round(cx).await?;
                self.phase = Phase::Fast;
            }
            Phase::Fast => {
                if !self.fast_step(cx).await? {
                    self.phase = Phase::Gaps;
                }
            }
            Phase::Gaps => {
                self.fill_gaps(cx).await?;
                self.phase = Phase::Idle;
                if cx.pending.is_empty() && !self.more {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Position and lag of every partition.
    pub(super) fn status(&self) -> Vec<PartitionStatus> {
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

    /// Whether everything up to every partition's checkpoint has been read and confirmed.
    pub(super) fn caught_up(&self) -> bool {
        !self.more && self.partitions.values().all(|p| p.safe >= p.checkpoint)
    }

    /// When the next round is due, with nothing queued.
    pub(super) fn next_poll_in(&self, poll_interval: Duration) -> Duration {
        if self.phase != Phase::Idle || self.more {
            return Duration::ZERO;
        }
        match self.last_round {
            None => Duration::ZERO,
            Some(t) => poll_interval.saturating_sub(t.elapsed()),
        }
    }

    /// Applies the marks of a fully handed-out read: everything up to each `_seq_no` of its
    /// partition has been handed out.
    pub(super) fn apply_marks(&mut self, marks: Vec<(PartitionId, i64)>) {
        for (pid, seq) in marks {
            if let Some(h) = self.handed.get_mut(&pid) {
                h.advance(seq);
            }
        }
    }

    /// Documents handed out whose offsets are not committed yet.
    pub(super) fn uncommitted(&self) -> u64 {
        self.handed_out.values().map(|s| s.len()).sum()
    }

    /// Whether a commit now would write anything.
    pub(super) fn has_committable(&self) -> bool {
        self.handed.values().any(|h| h.to_commit().is_some())
    }

    /// What a commit would write now: per partition, the offset and the ranges above it, each
    /// with the version of its handed-out state it covers.
    pub(super) fn snapshot(&self) -> Vec<(StoredOffset, u64)> {
        self.handed
            .iter()
            .filter(|(pid, _)| self.partitions.contains_key(*pid) || self.revoking.contains(*pid))
            .filter_map(|(pid, h)| {
                let c = h.to_commit()?;
                Some((
                    StoredOffset {
                        partition: pid.clone(),
                        seq_no: c.safe,
                        delivered: c.delivered,
                    },
                    c.version,
                ))
            })
            .collect()
    }

    /// Takes note of offsets written by a commit.
    pub(super) fn committed(&mut self, entries: &[(StoredOffset, u64)]) {
        for (o, version) in entries {
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
    }

    async fn start_round(&mut self, cx: &mut Ctx<'_>) -> Result<()> {
        let stats = super::assignment::group_stats(cx, self.first_round).await?;
        self.more = false;
        cx.stats.rounds += 1;
        let stats = super::assignment::rebalance(self, cx, stats).await?;
        self.reconcile(cx, &stats).await?;
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
                let obs = p.observe(s, stall, now, self.settings.pages_per_round);
                if let Some(from) = &obs.moved_from {
                    cx.telemetry.primary_moved(&pid, from, &s.node);
                }
                if let Some(cp) = obs.confirmed {
                    let e = self.confirm.entry(pid.clone()).or_insert(cp);
                    *e = (*e).max(cp);
                }
                let waiting = p.checkpoint > p.safe;
                let fresh = std::mem::take(&mut p.fresh) && waiting;
                if (self.settings.refresh_policy == RefreshPolicy::Force && waiting)
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
        cx.telemetry.positions(&self.status());
        for (index, pids) in needs_refresh {
            if self.settings.refresh_policy == RefreshPolicy::Counter {
                tracing::debug!(index = %index, "refresh counter stalled with checkpoints waiting: refreshing explicitly");
            }
            cx.client.refresh(&index).await?;
            cx.stats.explicit_refreshes += 1;
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
    async fn reconcile(&mut self, cx: &mut Ctx<'_>, stats: &[IndexShards]) -> Result<()> {
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
                    tracing::warn!(index = %index.index, old_uuid = %old, new_uuid = %index.uuid, start = ?cx.config.start, "index was recreated: reading the new index according to the start setting, never from the old index's offsets");
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
        let committed = cx.offsets.load(&ids, cx.config.mode.kind()).await?;
        let stall_after = Self::stall_after_of(cx, self.settings.stall_after, &ids).await;
        for (pid, stat) in new {
            let now = Instant::now();
            let state = match committed.get(&pid) {
                Some(stored) => {
                    self.handed.insert(
                        pid.clone(),
                        HandedOut::new(stored.seq_no, &stored.delivered, true),
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
                    let safe = match cx.config.start {
                        StartFrom::Earliest => -1,
                        StartFrom::Latest => stat.global_checkpoint,
                        StartFrom::Time(ms) => {
                            Self::first_seq_at_or_after(cx, &pid, &stat.node, ms)
                                .await?
                                .map(|s| s - 1)
                                .unwrap_or(stat.global_checkpoint)
                        }
                    };
                    // A start position is written by the next commit (even before anything is
                    // delivered), so a restart starts there too.
                    self.handed
                        .insert(pid.clone(), HandedOut::new(safe, &[], safe < 0));
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

    /// The stall timeout of each index of `partitions` (see [`ExactSettings::stall_after`]).
    /// When the settings cannot be read, the timeout for disabled refreshes applies.
    async fn stall_after_of(
        cx: &Ctx<'_>,
        fixed: Option<Duration>,
        partitions: &[PartitionId],
    ) -> HashMap<String, Duration> {
        let names: std::collections::BTreeSet<&str> =
            partitions.iter().map(|p| p.index.as_str()).collect();
        let names: Vec<&str> = names.into_iter().collect();
        let mut out = HashMap::new();
        for chunk in names.chunks(100) {
            let intervals = match fixed {
                Some(fixed) => chunk.iter().map(|n| (n.to_string(), Some(fixed))).collect(),
                None => match cx.client.refresh_intervals(&chunk.join(",")).await {
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
        cx: &Ctx<'_>,
        pid: &PartitionId,
        node: &str,
        ms: i64,
    ) -> Result<Option<i64>> {
        let body = json!({"size": 1, "sort": [{"_seq_no": "asc"}], "seq_no_primary_term": true, "track_total_hits": false, "_source": false, "query": {"range": {cx.config.timestamp_field.clone(): {"gte": ms, "format": "epoch_millis"}}}});
        let q = [("preference", shard_preference(cx.info, pid.shard, node))];
        let resp = cx.client.search(&pid.index, &q, body).await?;
        Ok(resp.hits.hits.first().and_then(|h| h.seq_no))
    }

    /// Starts one page read for every partition with something new.
    fn spawn_fast_reads(&self, cx: &Ctx<'_>) -> FastReads {
        let mut set = JoinSet::new();
        for p in self.partitions.values() {
            if !super::assignment::still_ours(cx, &p.id) {
                continue;
            }
            let Some((after, upto)) = p.fast_range() else {
                continue;
            };
            let client = cx.client.clone();
            let body = json!({"size": cx.config.page_size, "sort": [{"_seq_no": "asc"}], "seq_no_primary_term": true, "track_total_hits": false, "query": {"range": {"_seq_no": {"gt": after, "lte": upto}}}});
            let q = vec![("preference", shard_preference(cx.info, p.id.shard, &p.node))];
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
    async fn fast_step(&mut self, cx: &mut Ctx<'_>) -> Result<bool> {
        let mut set = match self.inflight.take() {
            Some(set) => set,
            None => self.spawn_fast_reads(cx),
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
            let full = resp.hits.hits.len() >= cx.config.page_size;
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
            cx.pending.push_back(Pending::Batch(Batch {
                records,
                partition: Some(pid.clone()),
                marks,
                keys: Vec::new(),
            }));
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
    async fn fill_gaps(&mut self, cx: &mut Ctx<'_>) -> Result<()> {
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
            // Not read after an error, nor once the claim lapsed or was taken (the poll loses
            // the partition next): its checkpoint is confirmed again another time.
            if outcome.is_err() || !super::assignment::still_ours(cx, &pid) {
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
                self.read_gaps(cx, &pid, &node, safe, upto, &gaps).await
            };
            cx.stats.gap_reads += (!gaps.is_empty()) as u64;
            match (result, confirmed) {
                (Ok(()), Some(cp)) => {
                    if let Some(p) = self.partitions.get_mut(&pid) {
                        p.advance_safe(cp);
                    }
                    // Handed out once the gap reads queued before it are.
                    cx.pending.push_back(Pending::Marks(vec![(pid, cp)]));
                }
                // The gap reads queued their own pages.
                (Ok(()), None) => {}
                (Err(e), cp) => {
                    // What was read is handed out; the checkpoint is confirmed again next time.
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
        cx: &mut Ctx<'_>,
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
            let mut body = json!({"size": cx.config.page_size, "sort": [{"_seq_no": "asc"}], "seq_no_primary_term": true, "track_total_hits": false, "query": {"bool": {"filter": filter}}});
            if let Some(a) = after {
                body["search_after"] = json!([a]);
            }
            let q = [("preference", shard_preference(cx.info, pid.shard, node))];
            let resp = cx.client.search(&pid.index, &q, body).await?;
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
            cx.pending.push_back(Pending::Batch(Batch {
                records,
                partition: Some(pid.clone()),
                marks: Vec::new(),
                keys: Vec::new(),
            }));
            if n < cx.config.page_size {
                return Ok(());
            }
        }
    }

    /// Records what a batch handed out: what the next commit covers and the uncommitted backlog.
    pub(super) fn note_handed_out(&mut self, pid: &PartitionId, records: &[Record]) {
        let handed = self.handed.get_mut(pid);
        let set = self.handed_out.entry(pid.clone()).or_default();
        for seq in records.iter().filter_map(|r| r.seq_no) {
            set.insert(seq);
        }
        if let Some(h) = handed {
            for seq in records.iter().filter_map(|r| r.seq_no) {
                h.record(seq);
            }
        }
    }

    /// Writes `entries` (a [`ExactReader::snapshot`]) to the offsets index.
    pub(super) async fn commit(
        &mut self,
        cx: &mut Ctx<'_>,
        entries: Vec<(StoredOffset, u64)>,
    ) -> Result<usize> {
        let offsets: Vec<StoredOffset> = entries.iter().map(|(o, _)| o.clone()).collect();
        let refused = cx.offsets.commit(cx.config.mode.kind(), &offsets).await?;
        let mut entries = entries;
        if !refused.is_empty() {
            let members = cx.hold.and_then(|h| h.members());
            for pid in &refused {
                tracing::warn!(partition = %pid, "commit refused by the cluster: another member owns the partition in a newer epoch; delivering nothing more of it");
                if let Some(m) = members {
                    m.refused(pid);
                }
                self.drop_partition(cx, pid);
            }
            entries.retain(|(o, _)| !refused.contains(&o.partition));
        }
        self.committed(&entries);
        cx.stats.commits += 1;
        tracing::debug!(group = %cx.config.group, partitions = entries.len(), offsets = ?offsets.iter().map(|o| (o.partition.to_string(), o.seq_no)).collect::<Vec<_>>(), "committed offsets");
        Ok(entries.len())
    }
}

impl super::assignment::Assigned for ExactReader {
    fn lose_partition(&mut self, cx: &mut Ctx<'_>, pid: &PartitionId) {
        ExactReader::lose_partition(self, cx, pid);
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
        ExactReader::has_uncommitted(self, pid)
    }

    fn handed_over(&mut self) -> Vec<PartitionId> {
        ExactReader::handed_over(self)
    }

    fn reading(&self) -> Vec<PartitionId> {
        self.partitions.keys().cloned().collect()
    }

    fn drop_partition(&mut self, cx: &mut Ctx<'_>, pid: &PartitionId) {
        ExactReader::drop_partition(self, cx, pid);
    }
}

/// The stall timeout for an index whose refreshes are disabled (`refresh_interval: -1`).
const DISABLED_REFRESH_STALL: Duration = Duration::from_secs(5);

/// The shortest derived stall timeout (for indices refreshing every few milliseconds).
const MIN_STALL: Duration = Duration::from_millis(300);

/// Gap ranges read every round before their checkpoint is confirmed; more than this many waits
/// for the confirmation (one read instead of many).
const MAX_EAGER_GAP_RANGES: usize = 16;
