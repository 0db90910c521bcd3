//! The exact-mode read protocol for one partition (one shard of one index).
//!
//! The offset is the shard's `_seq_no`. A write is assigned its `_seq_no` before it is visible,
//! and concurrent writes become visible out of order, so "the highest `_seq_no` I have seen" is
//! not a safe offset. The safe bound is the shard's global checkpoint G (every operation up to G
//! is complete on every in-sync copy and survives a failover), once a refresh that *started
//! after* G was read has made them all searchable. Refreshes are serialized, so the primary's
//! `refresh.external_total` advancing by 2 since G was read proves one such refresh happened;
//! an explicit `_refresh` after reading G proves it too.
//!
//! The reader delivers early and confirms late: each round it reads everything visible in
//! `(read_hi, G_now]` (the fast path), remembering what it delivered above its safe point; when
//! a checkpoint target is confirmed it reads the remaining gaps in `(safe, G]` once and moves
//! `safe` to G. Inside a confirmed range, where every operation is known to be searchable, a
//! page read in `_seq_no` order right from `safe` moves `safe` to its end at once (a catch-up
//! commits page by page). A commit stores `safe` and the ranges delivered above it, so a restart
//! repeats nothing a commit covered, and nothing below a confirmed checkpoint can be missed.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::intervals::IntervalSet;
use crate::client::types::ShardStat;
use crate::partition::PartitionId;

#[derive(Debug, Clone, Copy)]
struct Target {
    checkpoint: i64,
    external_refreshes: u64,
}

/// What a round's stats mean for a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// A checkpoint now proven searchable: its gaps can be filled and `safe` moved to it.
    pub confirmed: Option<i64>,
    /// Targets wait for refreshes but the refresh counter has not moved for the stall timeout
    /// (for example `refresh_interval: -1`): an explicit refresh is needed.
    pub stalled: bool,
    /// The primary copy moved to another node (a failover or a relocation) since the last
    /// round: the node it was on.
    pub moved_from: Option<String>,
}

#[derive(Debug)]
pub struct ExactPartition {
    pub id: PartitionId,
    /// The last committed offset (-1: nothing).
    pub committed: i64,
    /// Every operation up to here has been handed out.
    pub safe: i64,
    /// Highest `_seq_no` the fast path has covered.
    pub read_hi: i64,
    /// The global checkpoint of the latest round.
    pub checkpoint: i64,
    /// The primary's node (for Elasticsearch's `_only_nodes` preference).
    pub node: String,
    delivered: IntervalSet,
    targets: VecDeque<Target>,
    last_refresh_count: Option<u64>,
    refresh_count_changed_at: Instant,
    /// Pages the fast path may still read in this round.
    pub budget: u32,
    /// The highest checkpoint proven searchable (by the refresh counter or an explicit refresh).
    pub confirmed: i64,
    /// Seen for the first time in this round: its checkpoint is proven with an explicit
    /// refresh at once (cheap once, and a catch-up then commits from its first page).
    pub fresh: bool,
    /// The highest `_primary_term` seen on a hit (a higher one means a new primary wrote it).
    pub primary_term: i64,
    /// How long the refresh counter may stand still with targets waiting (from the index's
    /// refresh interval; see `ExactSettings::stall_after`).
    pub stall_after: Duration,
}

impl ExactPartition {
    /// A partition whose next document to deliver is the one after `safe`, skipping the
    /// `_seq_no` ranges in `delivered` (delivered before, as the committed offset records).
    pub fn new(
        id: PartitionId,
        committed: i64,
        safe: i64,
        delivered: &[(i64, i64)],
        now: Instant,
    ) -> Self {
        let mut set = IntervalSet::default();
        for (a, b) in delivered {
            set.insert_range(*a, *b);
        }
        let read_hi = delivered.last().map_or(safe, |r| r.1.max(safe));
        ExactPartition {
            id,
            committed,
            safe,
            read_hi,
            checkpoint: read_hi,
            confirmed: safe,
            fresh: true,
            node: String::new(),
            delivered: set,
            targets: VecDeque::new(),
            last_refresh_count: None,
            refresh_count_changed_at: now,
            budget: 0,
            primary_term: 0,
            stall_after: Duration::from_secs(5),
        }
    }

    /// Takes in a round's stats of this shard's primary.
    pub fn observe(
        &mut self,
        stat: &ShardStat,
        stall_after: Duration,
        now: Instant,
        pages_per_round: u32,
    ) -> Observation {
        let moved_from = (!self.node.is_empty() && self.node != stat.node)
            .then(|| std::mem::replace(&mut self.node, stat.node.clone()));
        self.node = stat.node.clone();
        if moved_from.is_some() {
            // The new primary's refresh counter is another copy's counter: what was counted on
            // the old one proves nothing about this one. Every waiting target starts again from
            // the new counter (ops up to a global checkpoint are on every in-sync copy, so the
            // new primary holds them; two of its refreshes make them searchable there).
            let highest = self.targets.back().map(|t| t.checkpoint);
            self.targets.clear();
            if let Some(cp) = highest {
                self.targets.push_back(Target {
                    checkpoint: cp,
                    external_refreshes: stat.external_refresh_total,
                });
            }
            self.last_refresh_count = None;
        }
        self.checkpoint = stat.global_checkpoint.max(self.checkpoint);
        if self.last_refresh_count != Some(stat.external_refresh_total) {
            self.last_refresh_count = Some(stat.external_refresh_total);
            self.refresh_count_changed_at = now;
        }
        let last_target = self
            .targets
            .back()
            .map(|t| t.checkpoint)
            .unwrap_or(self.safe);
        let mut confirmed = None;
        while let Some(t) = self.targets.front() {
            if stat.external_refresh_total >= t.external_refreshes + 2 {
                confirmed = Some(t.checkpoint);
                self.confirmed = self.confirmed.max(t.checkpoint);
                self.targets.pop_front();
            } else {
                break;
            }
        }
        if stat.global_checkpoint > last_target.max(self.safe) {
            self.targets.push_back(Target {
                checkpoint: stat.global_checkpoint,
                external_refreshes: stat.external_refresh_total,
            });
        }
        self.budget = pages_per_round;
        let stalled = !self.targets.is_empty()
            && now.duration_since(self.refresh_count_changed_at) >= stall_after;
        Observation {
            confirmed,
            stalled,
            moved_from,
        }
    }

    /// After an explicit refresh that started after this round's stats were read: every target
    /// read so far is searchable. Returns the checkpoint to confirm.
    pub fn refreshed_explicitly(&mut self) -> Option<i64> {
        let last = self.targets.back().map(|t| t.checkpoint);
        self.targets.clear();
        self.refresh_count_changed_at = Instant::now();
        if let Some(cp) = last {
            self.confirmed = self.confirmed.max(cp);
        }
        last
    }

    /// `(after, upto)`: the fast path's next range, if anything may be left to read.
    pub fn fast_range(&self) -> Option<(i64, i64)> {
        (self.read_hi < self.checkpoint && self.budget > 0)
            .then_some((self.read_hi, self.checkpoint))
    }

    /// Whether a hit with `seq_no` is new (not at or below `safe`, not delivered before); marks it delivered.
    pub fn take(&mut self, seq_no: i64) -> bool {
        if seq_no <= self.safe || self.delivered.contains(seq_no) {
            return false;
        }
        self.delivered.insert(seq_no);
        true
    }

    /// After a fast-path page that was read from `after` and covers up to `cover`, sent when
    /// everything up to `confirmed_then` was proven searchable: when the page started right at
    /// `safe`, every operation up to `min(cover, confirmed_then)` is in it, so `safe` moves
    /// there (nothing below it can still become visible). Returns the new `safe` if it moved.
    pub fn page_read(&mut self, after: i64, cover: i64, confirmed_then: i64) -> Option<i64> {
        let before = self.safe;
        if after == self.safe {
            self.advance_safe(cover.min(confirmed_then));
        }
        (self.safe > before).then_some(self.safe)
    }

    /// Notes a hit's primary term; returns the previous highest when this one is higher (a
    /// document written by a new primary: a failover happened), `None` otherwise or the first time.
    pub fn note_primary_term(&mut self, term: i64) -> Option<i64> {
        let previous = self.primary_term;
        if term <= previous {
            return None;
        }
        self.primary_term = term;
        (previous > 0).then_some(previous)
    }

    /// The ranges delivered above `safe`.
    #[cfg(test)]
    pub fn delivered_ranges(&self) -> Vec<(i64, i64)> {
        self.delivered.ranges().collect()
    }

    /// Records a fast-path page: a full page ends at its last hit; a short one covers the range.
    pub fn fast_page_done(&mut self, last_seq: Option<i64>, full: bool, upto: i64) {
        self.budget = self.budget.saturating_sub(1);
        self.read_hi = match (full, last_seq) {
            (true, Some(last)) => last,
            _ => upto,
        };
    }

    /// The ranges of `(safe, checkpoint]` not delivered yet.
    pub fn gaps(&self, checkpoint: i64) -> Vec<(i64, i64)> {
        self.delivered.gaps(self.safe, checkpoint)
    }

    /// Moves the safe point to a confirmed checkpoint whose gaps have been read.
    pub fn advance_safe(&mut self, checkpoint: i64) {
        if checkpoint > self.safe {
            self.safe = checkpoint;
            self.delivered.remove_through(checkpoint);
            self.read_hi = self.read_hi.max(checkpoint);
        }
    }

    /// Documents behind: the checkpoint minus the committed offset.
    pub fn lag(&self) -> i64 {
        (self.checkpoint - self.committed).max(0)
    }

    /// Ranges held in memory for what was delivered above `safe`.
    #[cfg(test)]
    pub fn tracked_ranges(&self) -> usize {
        self.delivered.range_count()
    }
}

/// One commit of a partition's [`HandedOut`]: `safe`, the ranges above it, and the version it
/// stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandedCommit {
    pub safe: i64,
    pub delivered: Vec<(i64, i64)>,
    pub version: u64,
}

/// What has been handed out of a partition, as a commit records it: every operation up to
/// `safe`, and the `_seq_no` ranges above it. It follows the reader at a distance (records read
/// wait in a queue until the caller takes them; the reader's `safe` moves when they are read,
/// this one when they are handed out), so a commit never covers a record not handed out.
#[derive(Debug, Clone)]
pub struct HandedOut {
    pub safe: i64,
    above: IntervalSet,
    /// Counts changes, to tell whether a commit covered all of them.
    version: u64,
    committed_version: u64,
}

impl HandedOut {
    /// From a committed offset (`committed`: nothing to write yet) or a start position.
    pub fn new(safe: i64, delivered: &[(i64, i64)], committed: bool) -> Self {
        let mut above = IntervalSet::default();
        for (a, b) in delivered {
            above.insert_range(*a, *b);
        }
        HandedOut {
            safe,
            above,
            version: 1,
            committed_version: if committed { 1 } else { 0 },
        }
    }

    /// A record with this `_seq_no` was handed out.
    pub fn record(&mut self, seq_no: i64) {
        if seq_no > self.safe && !self.above.contains(seq_no) {
            self.above.insert(seq_no);
            self.version += 1;
        }
    }

    /// Everything up to `safe` has been handed out.
    pub fn advance(&mut self, safe: i64) {
        if safe > self.safe {
            self.safe = safe;
            self.above.remove_through(safe);
            self.version += 1;
        }
    }

    /// What a commit writes, when something changed since the last commit.
    pub fn to_commit(&self) -> Option<HandedCommit> {
        (self.version != self.committed_version).then(|| HandedCommit {
            safe: self.safe,
            delivered: self.above.ranges().collect(),
            version: self.version,
        })
    }

    /// A commit of `to_commit` at `version` succeeded.
    pub fn committed_at(&mut self, version: u64) {
        self.committed_version = self.committed_version.max(version);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(cp: i64, ext: u64) -> ShardStat {
        ShardStat {
            shard: 0,
            global_checkpoint: cp,
            max_seq_no: cp,
            external_refresh_total: ext,
            node: "n".into(),
            docs: 0,
        }
    }

    fn part() -> ExactPartition {
        ExactPartition::new(
            PartitionId {
                index: "i".into(),
                uuid: "u".into(),
                shard: 0,
            },
            -1,
            -1,
            &[],
            Instant::now(),
        )
    }

    #[test]
    fn a_checkpoint_is_confirmed_only_after_two_more_refreshes() {
        let mut p = part();
        let now = Instant::now();
        let stall = Duration::from_secs(60);
        assert_eq!(p.observe(&stat(10, 5), stall, now, 4).confirmed, None);
        assert_eq!(
            p.observe(&stat(12, 6), stall, now, 4).confirmed,
            None,
            "one refresh may have started before G was read"
        );
        assert_eq!(p.observe(&stat(12, 7), stall, now, 4).confirmed, Some(10));
        assert_eq!(p.observe(&stat(12, 8), stall, now, 4).confirmed, Some(12));
    }

    #[test]
    fn gaps_are_what_the_fast_path_did_not_see() {
        let mut p = part();
        p.observe(&stat(9, 0), Duration::from_secs(60), Instant::now(), 4);
        assert_eq!(p.fast_range(), Some((-1, 9)));
        for s in [0, 1, 2, 5, 6, 9] {
            assert!(p.take(s));
        }
        assert!(!p.take(5), "never twice");
        p.fast_page_done(Some(9), false, 9);
        assert_eq!(p.fast_range(), None);
        assert_eq!(p.gaps(9), vec![(3, 4), (7, 8)]);
        p.advance_safe(9);
        assert!(!p.take(4), "below safe");
        assert_eq!(p.tracked_ranges(), 0);
    }

    #[test]
    fn a_moved_primary_rebases_the_waiting_targets_on_its_own_counter() {
        let mut p = part();
        let now = Instant::now();
        let stall = Duration::from_secs(60);
        p.observe(&stat(10, 5), stall, now, 4);
        let mut moved = stat(12, 100);
        moved.node = "m".into();
        let obs = p.observe(&moved, stall, now, 4);
        assert_eq!(obs.moved_from.as_deref(), Some("n"));
        assert_eq!(
            obs.confirmed, None,
            "the new copy's counter is not comparable with the old one's"
        );
        moved.external_refresh_total = 101;
        assert_eq!(p.observe(&moved, stall, now, 4).confirmed, None);
        moved.external_refresh_total = 102;
        assert_eq!(
            p.observe(&moved, stall, now, 4).confirmed,
            Some(12),
            "two refreshes of the new primary confirm everything waiting"
        );
        assert_eq!(p.observe(&moved, stall, now, 4).moved_from, None);
    }

    #[test]
    fn a_higher_primary_term_is_reported_once() {
        let mut p = part();
        assert_eq!(p.note_primary_term(1), None, "the first term seen");
        assert_eq!(p.note_primary_term(1), None);
        assert_eq!(p.note_primary_term(2), Some(1));
        assert_eq!(p.note_primary_term(1), None, "an older document");
    }

    #[test]
    fn a_page_from_safe_inside_the_confirmed_range_moves_safe() {
        let mut p = part();
        let now = Instant::now();
        p.observe(&stat(999, 0), Duration::from_secs(60), now, 4);
        assert_eq!(p.refreshed_explicitly(), Some(999));
        for s in 0..200 {
            assert!(p.take(s));
        }
        p.fast_page_done(Some(199), true, 999);
        assert_eq!(p.page_read(-1, 199, 999), Some(199), "the whole page");
        assert_eq!(p.delivered_ranges(), vec![]);
        // A page read before the range was confirmed moves nothing.
        let mut q = part();
        q.observe(&stat(999, 0), Duration::from_secs(60), now, 4);
        for s in 0..200 {
            q.take(s);
        }
        assert_eq!(q.page_read(-1, 199, -1), None);
        assert_eq!(q.delivered_ranges(), vec![(0, 199)]);
        // Nor does a page that did not start at safe (a gap below it).
        assert_eq!(q.page_read(199, 399, 999), None);
    }

    #[test]
    fn a_committed_offset_with_ranges_skips_them_and_reads_between() {
        let mut p = ExactPartition::new(
            PartitionId {
                index: "i".into(),
                uuid: "u".into(),
                shard: 0,
            },
            9,
            9,
            &[(12, 20)],
            Instant::now(),
        );
        assert!(!p.take(15), "delivered before the restart");
        assert_eq!(p.read_hi, 20, "the fast path goes on after them");
        assert_eq!(p.gaps(20), vec![(10, 11)], "what lies between is read");
        assert!(p.take(10));
        assert_eq!(p.delivered_ranges(), vec![(10, 10), (12, 20)]);
    }

    #[test]
    fn handed_out_commits_what_changed_and_only_once() {
        let mut h = HandedOut::new(9, &[(12, 20)], true);
        assert!(h.to_commit().is_none(), "as committed");
        h.record(15);
        assert!(h.to_commit().is_none(), "handed out before");
        h.record(10);
        let c = h.to_commit().unwrap();
        assert_eq!((c.safe, c.delivered), (9, vec![(10, 10), (12, 20)]));
        h.advance(20);
        h.committed_at(c.version);
        assert_eq!(
            h.to_commit().unwrap().delivered,
            vec![],
            "the advance came after the snapshot"
        );
        let start = HandedOut::new(41, &[], false);
        assert_eq!(
            start.to_commit().unwrap().safe,
            41,
            "a start position is written"
        );
    }

    #[test]
    fn a_stalled_refresh_counter_asks_for_an_explicit_refresh() {
        let mut p = part();
        let t0 = Instant::now();
        let stall = Duration::from_millis(100);
        assert!(!p.observe(&stat(3, 1), stall, t0, 4).stalled);
        assert!(
            p.observe(&stat(3, 1), stall, t0 + Duration::from_millis(150), 4)
                .stalled
        );
        assert_eq!(p.refreshed_explicitly(), Some(3));
    }
}
