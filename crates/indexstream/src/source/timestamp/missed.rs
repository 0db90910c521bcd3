//! Noticing documents that arrived later than the safety window: what was delivered per bucket
//! of time that slid out of it, to compare with what the cluster holds there.

use std::collections::BTreeMap;
use std::time::Duration;

/// Per time bucket that has slid out of the window: how many documents were delivered there,
/// and how many the cluster was found to hold beyond those (missed late documents).
#[derive(Debug, Clone, Default)]
pub(crate) struct Bucket {
    pub(crate) delivered: u64,
    pub(crate) missed: u64,
}

/// Notices documents that arrived later than the safety window: counts what was delivered per
/// bucket of time that slid out of the window, for a horizon, to compare with `_count`.
#[derive(Debug, Clone)]
pub struct MissedLate {
    pub(crate) width_ns: i64,
    pub(crate) horizon_ns: i64,
    /// Buckets start at or after this (what was delivered before it, in an earlier process, is
    /// not known here).
    pub(crate) origin_ns: i64,
    pub(crate) buckets: BTreeMap<i64, Bucket>,
}

/// One range to count: `[from_ns, to_ns)`, with what was delivered there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckRange {
    pub bucket: i64,
    pub from_ns: i64,
    pub to_ns: i64,
    pub delivered: u64,
    pub missed: u64,
}

impl MissedLate {
    pub fn new(width: Duration, horizon: Duration, origin_ns: Option<i64>) -> Self {
        let width_ns = (width.as_nanos() as i64).max(1_000_000);
        let origin_ns = origin_ns.unwrap_or(i64::MIN);
        MissedLate {
            width_ns,
            horizon_ns: horizon.as_nanos().min(i64::MAX as u128) as i64,
            origin_ns,
            buckets: BTreeMap::new(),
        }
    }

    pub(crate) fn start_of(&self, ts: i64) -> i64 {
        ts - ts.rem_euclid(self.width_ns)
    }

    /// Documents that left the window, per timestamp (in timestamp order: consecutive
    /// timestamps of one bucket are added up before the bucket is looked up).
    pub fn slid_out(&mut self, groups: &[(i64, u64)]) {
        let mut run: Option<(i64, u64)> = None;
        for (ts, n) in groups.iter().filter(|(ts, _)| *ts >= self.origin_ns) {
            let start = self.start_of(*ts);
            match run.as_mut() {
                Some((s, total)) if *s == start => *total += n,
                _ => {
                    if let Some((s, total)) = run.replace((start, *n)) {
                        self.buckets.entry(s).or_default().delivered += total;
                    }
                }
            }
        }
        if let Some((s, total)) = run {
            self.buckets.entry(s).or_default().delivered += total;
        }
    }

    /// Every bucket of the horizon wholly behind `read_from` (so every document delivered in it
    /// has left the window and is counted), empty ones included: a document can be missed
    /// where nothing was delivered. Counting starts at the origin and above `floor`.
    pub fn due(&mut self, read_from: i64, floor: Option<i64>) -> Vec<CheckRange> {
        let oldest = self.start_of(read_from.saturating_sub(self.horizon_ns));
        self.buckets.retain(|start, _| *start >= oldest);
        let lo = oldest
            .max(self.origin_ns)
            .max(floor.map_or(i64::MIN, |f| f.saturating_add(1)));
        let mut out = Vec::new();
        let mut start = self.start_of(lo);
        while start.saturating_add(self.width_ns) <= read_from {
            let b = self.buckets.get(&start).cloned().unwrap_or_default();
            out.push(CheckRange {
                bucket: start,
                from_ns: start.max(lo),
                to_ns: start + self.width_ns,
                delivered: b.delivered,
                missed: b.missed,
            });
            start += self.width_ns;
        }
        out
    }

    /// The cluster holds `count` documents in a range from [`MissedLate::due`]: returns how many
    /// more are now known to be missed.
    pub fn counted(&mut self, range: &CheckRange, count: u64) -> u64 {
        let b = self.buckets.entry(range.bucket).or_default();
        let missed = count.saturating_sub(b.delivered);
        let new = missed.saturating_sub(b.missed);
        b.missed = b.missed.max(missed);
        new
    }

    /// Missed documents known within the horizon.
    pub fn missed_in_horizon(&self) -> u64 {
        self.buckets.values().map(|b| b.missed).sum()
    }
}
