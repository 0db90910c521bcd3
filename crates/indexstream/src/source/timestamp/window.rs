//! The safety window's keys and how a committed window is stored: packed (zigzag varint
//! timestamp deltas and little-endian keys, base64), in a base part and delta parts.

use std::collections::{BTreeMap, VecDeque};

use base64::Engine as _;
use serde_json::{json, Value};

/// The keys of the events delivered inside the safety window, by timestamp.
///
/// Events are mostly handed out in timestamp order, so most keys are appended to one ordered
/// queue and leave it from the front when the window slides: no per-key node or allocation.
/// Keys handed out behind the newest timestamp (late documents) are kept apart, per timestamp.
///
/// Looking a key up needs a hash set of every key held. It is built when a look-up first needs
/// it and kept up to date while look-ups go on. Each key added costs it an insert now and a
/// removal later; once the keys added since the last look-up have cost more than building the
/// set again would (more than half as many as it holds), it is dropped. A consumer catching up
/// meets nothing it could have delivered before (see [`TimestampOffset::start_round`](super::TimestampOffset::start_round)), so it
/// pays for no hash set at all; one tailing the cluster looks keys up on every poll and keeps it.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// `(timestamp, key)` in timestamp order.
    pub(crate) in_order: VecDeque<(i64, u64)>,
    /// Keys older than the newest timestamp when they were added, per timestamp.
    pub(crate) late: BTreeMap<i64, Vec<u64>>,
    pub(crate) late_keys: usize,
    /// Every key held, while look-ups need it.
    pub(crate) index: Option<rustc_hash::FxHashSet<u64>>,
    /// Keys added since the last look-up.
    pub(crate) added_since_lookup: usize,
}

impl Window {
    pub fn len(&self) -> usize {
        self.in_order.len() + self.late_keys
    }

    /// Whether `key` is held (builds the look-up index if there is none).
    pub fn contains(&mut self, key: u64) -> bool {
        if self.index.is_none() {
            let mut index =
                rustc_hash::FxHashSet::with_capacity_and_hasher(self.len(), Default::default());
            index.extend(self.keys().map(|(_, k)| k));
            self.index = Some(index);
        }
        self.added_since_lookup = 0;
        self.index.as_ref().is_some_and(|i| i.contains(&key))
    }

    /// Every `(timestamp, key)` held, in timestamp order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        let mut late = self
            .late
            .iter()
            .flat_map(|(ts, keys)| keys.iter().map(move |k| (*ts, *k)))
            .peekable();
        let mut in_order = self.in_order.iter().copied().peekable();
        std::iter::from_fn(move || match (in_order.peek(), late.peek()) {
            (Some(a), Some(b)) if b.0 < a.0 => late.next(),
            (Some(_), _) => in_order.next(),
            (None, _) => late.next(),
        })
    }

    pub(crate) fn insert(&mut self, key: u64, ts_ns: i64) {
        if let Some(index) = self.index.as_mut() {
            index.insert(key);
            self.added_since_lookup += 1;
            if self.added_since_lookup > index.len() / 2 {
                self.index = None;
            }
        }
        match self.in_order.back() {
            Some((newest, _)) if ts_ns < *newest => {
                self.late.entry(ts_ns).or_default().push(key);
                self.late_keys += 1;
            }
            _ => self.in_order.push_back((ts_ns, key)),
        }
    }

    /// Removes every key older than `ns`; returns `(timestamp, keys removed)` per timestamp, in
    /// timestamp order.
    pub(crate) fn remove_before(&mut self, ns: i64) -> Vec<(i64, u64)> {
        let mut groups: Vec<(i64, u64)> = Vec::new();
        let count = |groups: &mut Vec<(i64, u64)>, ts: i64, n: u64| match groups.last_mut() {
            Some((last, total)) if *last == ts => *total += n,
            _ => groups.push((ts, n)),
        };
        let end = self.in_order.partition_point(|(ts, _)| *ts < ns);
        for (ts, key) in self.in_order.drain(..end) {
            if let Some(index) = self.index.as_mut() {
                index.remove(&key);
            }
            count(&mut groups, ts, 1);
        }
        if self.late.first_key_value().is_some_and(|(ts, _)| *ts < ns) {
            let keep = self.late.split_off(&ns);
            for (ts, keys) in std::mem::replace(&mut self.late, keep) {
                if let Some(index) = self.index.as_mut() {
                    for k in &keys {
                        index.remove(k);
                    }
                }
                self.late_keys -= keys.len();
                count(&mut groups, ts, keys.len() as u64);
            }
            groups.sort_by_key(|(ts, _)| *ts);
            let mut merged = Vec::with_capacity(groups.len());
            for (ts, n) in groups {
                count(&mut merged, ts, n);
            }
            groups = merged;
        }
        groups
    }

    /// The oldest timestamp, when more than one timestamp is held.
    pub(crate) fn oldest_evictable(&self) -> Option<i64> {
        let ends = |a: Option<i64>, b: Option<i64>, pick: fn(i64, i64) -> i64| match (a, b) {
            (Some(a), Some(b)) => Some(pick(a, b)),
            (a, b) => a.or(b),
        };
        let first = ends(
            self.in_order.front().map(|e| e.0),
            self.late.first_key_value().map(|e| *e.0),
            i64::min,
        )?;
        let last = ends(
            self.in_order.back().map(|e| e.0),
            self.late.last_key_value().map(|e| *e.0),
            i64::max,
        )?;
        (first != last).then_some(first)
    }

    /// Packs the window (see [`encode_keys`]).
    pub(crate) fn encode(&self) -> String {
        encode_keys(self.len(), self.keys())
    }

    pub(crate) fn decode(text: &str) -> Option<Window> {
        let bytes = BASE64.decode(text).ok()?;
        let mut w = Window::default();
        let mut pos = 0;
        let mut prev: i64 = 0;
        while pos < bytes.len() {
            let z = get_varint(&bytes, &mut pos)?;
            let delta = ((z >> 1) as i64) ^ -((z & 1) as i64);
            let ts = prev.wrapping_add(delta);
            let key = u64::from_le_bytes(bytes.get(pos..pos + 8)?.try_into().ok()?);
            pos += 8;
            w.insert(key, ts);
            prev = ts;
        }
        Some(w)
    }
}

/// Packs `(timestamp, key)` pairs: per key, the zigzag varint of its timestamp's difference
/// from the previous one, then the 8 key bytes; base64 of all that.
pub(crate) fn encode_keys(n: usize, keys: impl Iterator<Item = (i64, u64)>) -> String {
    let mut bytes = Vec::with_capacity(n * 10);
    let mut prev: i64 = 0;
    for (ts, k) in keys {
        let delta = ts.wrapping_sub(prev);
        put_varint(&mut bytes, ((delta << 1) ^ (delta >> 63)) as u64);
        bytes.extend_from_slice(&k.to_le_bytes());
        prev = ts;
    }
    BASE64.encode(&bytes)
}

/// The alphabet of packed windows: standard, without padding (a persisted format).
pub(crate) const BASE64: base64::engine::GeneralPurpose =
    base64::engine::general_purpose::STANDARD_NO_PAD;

/// Where the window of a committed offset is kept (format 2): a base part written in full by
/// a compaction, and the delta parts written by the commits after it, each holding the keys
/// handed out since the commit before. A commit then writes the keys since the last commit,
/// not the whole window (its cost is proportional to the events since the last commit);
/// loading folds the parts together, and a compaction starts a new base once the deltas hold
/// more keys than the base did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowParts {
    /// The base part's name (unique per compaction; delta `i` is `{base}.{i}`).
    pub base: String,
    /// How many delta parts follow it.
    pub deltas: u32,
    /// Keys in the base, and in the deltas together.
    pub base_keys: usize,
    pub delta_keys: usize,
}

impl WindowParts {
    /// The names of the parts, base first.
    pub fn names(&self) -> Vec<String> {
        std::iter::once(self.base.clone())
            .chain((0..self.deltas).map(|i| format!("{}.{i}", self.base)))
            .collect()
    }

    /// Whether the next commit should start a new base rather than add `adding` keys as a
    /// delta: once the deltas would hold more keys than the base (amortised, every key is
    /// written about twice), or past 256 deltas (loading reads them all).
    pub fn compaction_due(&self, adding: usize) -> bool {
        self.deltas >= 256 || self.delta_keys + adding > self.base_keys.max(1000)
    }
}

/// One stored part of a window: its keys, packed.
pub fn window_part_json(keys: &[(i64, u64)]) -> Value {
    json!({"v": 2, "keys": keys.len(), "window": encode_keys(keys.len(), keys.iter().copied())})
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn get_varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}
