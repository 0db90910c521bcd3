//! Timestamp-mode state: the `(timestamp, tiebreaker)` cursor, the safety window with the keys
//! of the documents delivered inside it, and the bookkeeping that notices documents arriving
//! later than the window.
//!
//! # The rule
//! Each poll reads every document whose timestamp is at or after [`TimestampOffset::read_from`]
//! (`cursor - safety_window`, or the floor when that is higher), in `(timestamp, tiebreaker)`
//! order with `search_after`. A document whose key is in the window was delivered already and is
//! dropped. The window holds the key of every delivered document whose timestamp is at or after
//! `cursor - safety_window`: exactly the ones the next read can return again. It is committed
//! with the cursor, so a restart redelivers none of them.
//!
//! A key is a 64-bit FNV-1a hash of `(index, id, timestamp)`: an update that moves a document's
//! timestamp is a new event and is delivered again; an update that keeps it is not. Two different
//! events share a key with a probability of about `n / 2^64` for `n` keys in the window.
//!
//! # Bounded memory
//! The window holds at most `cap` keys. Past it, whole timestamps are evicted oldest first and
//! the floor moves up to the newest evicted timestamp: from then on, nothing at or before the
//! floor is read again, so a late document behind it is not delivered (the effective window is
//! shorter than configured until the cursor moves on). Nothing is delivered twice because of
//! the cap. A single timestamp holding more than `cap` documents is kept whole.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;

use serde_json::{json, Value};

/// The unit the cluster sorts the timestamp field in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// `date` fields and `long` epoch milliseconds.
    Millis,
    /// `date_nanos` fields.
    Nanos,
}

impl TimeUnit {
    /// The unit of a mapped field type, or `None` for a type that cannot be a timestamp.
    pub fn of_field_type(ty: &str) -> Option<TimeUnit> {
        match ty {
            "date" | "long" => Some(TimeUnit::Millis),
            "date_nanos" => Some(TimeUnit::Nanos),
            _ => None,
        }
    }

    /// A sort value as the cluster returned it, in nanoseconds since the epoch.
    pub fn to_nanos(self, sort_value: &Value) -> Option<i64> {
        let v = match sort_value {
            Value::Number(n) => n.as_i64()?,
            Value::String(s) => s.parse().ok()?,
            _ => return None,
        };
        match self {
            TimeUnit::Millis => v.checked_mul(1_000_000),
            TimeUnit::Nanos => Some(v),
        }
    }

    /// The `range` bound selecting timestamps at or after `ns` (rounded so that it never
    /// excludes one; the consumer filters exactly on its side).
    pub fn range_gte(self, ns: i64) -> Value {
        match self {
            TimeUnit::Millis => json!({ "gte": ns.div_euclid(1_000_000) }),
            TimeUnit::Nanos => json!({ "gte": iso_nanos(ns) }),
        }
    }

    /// The `range` bound selecting `[from_ns, to_ns)` (for counting).
    pub fn range_between(self, from_ns: i64, to_ns: i64) -> Value {
        match self {
            TimeUnit::Millis => json!({
                "gte": from_ns.div_euclid(1_000_000) + i64::from(from_ns.rem_euclid(1_000_000) != 0),
                "lt": to_ns.div_euclid(1_000_000) + i64::from(to_ns.rem_euclid(1_000_000) != 0),
            }),
            TimeUnit::Nanos => json!({ "gte": iso_nanos(from_ns), "lt": iso_nanos(to_ns) }),
        }
    }
}

/// RFC 3339 UTC with nanoseconds: the milliseconds form with six more digits.
pub fn iso_nanos(ns: i64) -> String {
    let mut out = String::with_capacity(30);
    crate::offset::push_iso_millis(ns.div_euclid(1_000_000), &mut out);
    out.pop(); // the 'Z'
    crate::offset::push_digits(&mut out, ns.rem_euclid(1_000_000), 6);
    out.push('Z');
    out
}

/// The newest timestamp (nanoseconds) among the documents of `expr` matching `filters` (which
/// should require the field to exist), or `None` when there is none.
pub async fn newest_timestamp(
    client: &crate::client::Client,
    expr: &str,
    field: &str,
    filters: Vec<Value>,
    unit: TimeUnit,
) -> Result<Option<i64>, crate::client::ClientError> {
    let body = json!({"size": 1, "_source": false, "track_total_hits": false,
        "sort": [{field: {"order": "desc", "unmapped_type": "date"}}],
        "query": {"bool": {"filter": filters}}});
    let resp = client.search(expr, &[], body).await?;
    Ok(resp
        .hits
        .hits
        .first()
        .and_then(|h| unit.to_nanos(&h.sort.as_ref()?.first()?)))
}

/// The key of one delivered event.
pub fn event_key(index: &str, id: &str, ts_ns: i64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(index.as_bytes());
    eat(&[0xff]);
    eat(id.as_bytes());
    eat(&[0xff]);
    eat(&ts_ns.to_le_bytes());
    h
}

/// The keys of the events delivered inside the safety window, by timestamp.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// The keys per timestamp, in order: sliding the window is one split.
    by_ts: BTreeMap<i64, Vec<u64>>,
    /// Every key held: a document is looked up once when read and once when handed out, and a
    /// hash look-up costs a fraction of a walk down the ordered map. A key already hashes the
    /// event's timestamp, so it is held alone (8 bytes, half the cache misses of a pair).
    held: HashSet<u64, BuildHasherDefault<KeyHasher>>,
}

/// Hashes a window key. The key is already a hash of the event; one multiply spreads its bits
/// to where the hash table looks.
#[derive(Debug, Default, Clone, Copy)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(29) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Window {
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    pub fn contains(&self, key: u64) -> bool {
        self.held.contains(&key)
    }

    fn insert(&mut self, key: u64, ts_ns: i64) -> bool {
        if !self.held.insert(key) {
            return false;
        }
        // Events mostly come in timestamp order: the newest group first.
        match self.by_ts.last_entry() {
            Some(mut last) if *last.key() == ts_ns => last.get_mut().push(key),
            _ => self.by_ts.entry(ts_ns).or_default().push(key),
        }
        true
    }

    /// Removes every key older than `ns`; returns `(timestamp, keys removed)` per timestamp.
    fn remove_before(&mut self, ns: i64) -> Vec<(i64, u64)> {
        let keep = self.by_ts.split_off(&ns);
        let gone = std::mem::replace(&mut self.by_ts, keep);
        gone.into_iter()
            .map(|(ts, keys)| {
                for k in &keys {
                    self.held.remove(k);
                }
                (ts, keys.len() as u64)
            })
            .collect()
    }

    /// The oldest timestamp, when more than one timestamp is held.
    fn oldest_evictable(&self) -> Option<i64> {
        let (first, last) = (
            *self.by_ts.first_key_value()?.0,
            *self.by_ts.last_key_value()?.0,
        );
        (first != last).then_some(first)
    }

    /// Packs the window: per key, the zigzag varint of its timestamp's difference from the
    /// previous one, then the 8 key bytes; base64 of all that.
    fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(self.held.len() * 10);
        let mut prev: i64 = 0;
        for (ts, keys) in &self.by_ts {
            for k in keys {
                let delta = ts.wrapping_sub(prev);
                put_varint(&mut bytes, ((delta << 1) ^ (delta >> 63)) as u64);
                bytes.extend_from_slice(&k.to_le_bytes());
                prev = *ts;
            }
        }
        base64_encode(&bytes)
    }

    fn decode(text: &str) -> Option<Window> {
        let bytes = base64_decode(text)?;
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

/// What handing out one event did to the offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// In timestamp order (at or after the cursor).
    InOrder,
    /// Behind the cursor, by this much: a late document, caught by the window.
    Late(Duration),
}

/// Keys that left the window, per timestamp, and whether the cap forced some of them out.
#[derive(Debug, Default)]
pub struct SlidOut {
    pub groups: Vec<(i64, u64)>,
    pub evicted_by_cap: u64,
}

/// The committed position of a timestamp-mode group.
#[derive(Debug, Clone)]
pub struct TimestampOffset {
    /// The newest timestamp delivered.
    pub cursor_ns: Option<i64>,
    /// Nothing at or before this timestamp is read (the `--start` position, or where the cap
    /// evicted keys).
    pub floor_ns: Option<i64>,
    pub window: Window,
    /// The fields it was written for; a different field makes the cursor meaningless.
    pub field: String,
    pub tiebreaker: String,
}

impl TimestampOffset {
    pub fn new(field: &str, tiebreaker: &str) -> Self {
        TimestampOffset {
            cursor_ns: None,
            floor_ns: None,
            window: Window::default(),
            field: field.to_string(),
            tiebreaker: tiebreaker.to_string(),
        }
    }

    /// The oldest timestamp the next read covers (inclusive), or `None` for everything.
    pub fn read_from(&self, safety_window: Duration) -> Option<i64> {
        let by_cursor = self
            .cursor_ns
            .map(|c| c.saturating_sub(safety_window.as_nanos().min(i64::MAX as u128) as i64));
        let by_floor = self.floor_ns.map(|f| f.saturating_add(1));
        match (by_cursor, by_floor) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether this event was handed out already.
    pub fn seen(&self, key: u64, ts_ns: i64) -> bool {
        // The window holds nothing newer than the cursor.
        self.cursor_ns.is_some_and(|c| ts_ns <= c) && self.window.contains(key)
    }

    /// Records a handed-out event. Returns `None` when it was handed out already.
    pub fn accept(&mut self, key: u64, ts_ns: i64) -> Option<Accepted> {
        if !self.window.insert(key, ts_ns) {
            return None;
        }
        Some(match self.cursor_ns {
            Some(c) if ts_ns < c => Accepted::Late(Duration::from_nanos((c - ts_ns) as u64)),
            _ => {
                self.cursor_ns = Some(ts_ns);
                Accepted::InOrder
            }
        })
    }

    /// Drops the keys the next read cannot return any more, and enforces the cap.
    pub fn slide(&mut self, safety_window: Duration, cap: usize) -> SlidOut {
        let mut out = SlidOut::default();
        if let Some(from) = self.read_from(safety_window) {
            out.groups = self.window.remove_before(from);
        }
        while self.window.len() > cap {
            let Some(oldest) = self.window.oldest_evictable() else {
                break;
            };
            let gone = self.window.remove_before(oldest + 1);
            out.evicted_by_cap += gone.iter().map(|(_, n)| n).sum::<u64>();
            out.groups.extend(gone);
            self.floor_ns = Some(self.floor_ns.map_or(oldest, |f| f.max(oldest)));
        }
        out
    }

    /// The form stored in the offset document's `cursor` object.
    pub fn to_json(&self) -> Value {
        json!({
            "v": 1,
            "field": self.field,
            "tiebreaker": self.tiebreaker,
            "cursor_ns": self.cursor_ns,
            "cursor": self.cursor_ns.map(iso_nanos),
            "floor_ns": self.floor_ns,
            "window_keys": self.window.len(),
            "window": self.window.encode(),
        })
    }

    /// Parses the stored form; the error says what is wrong with it.
    pub fn from_json(v: &Value) -> std::result::Result<TimestampOffset, String> {
        if v["v"].as_u64() != Some(1) {
            return Err(format!("unknown cursor version {}", v["v"]));
        }
        let opt_i64 = |name: &str| -> std::result::Result<Option<i64>, String> {
            match &v[name] {
                Value::Null => Ok(None),
                x => x
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| format!("{name} is not an integer: {x}")),
            }
        };
        let text = |name: &str| -> std::result::Result<String, String> {
            v[name]
                .as_str()
                .map(String::from)
                .ok_or_else(|| format!("no {name}"))
        };
        let window = Window::decode(&text("window")?).ok_or("the window is not valid")?;
        if v["window_keys"].as_u64() != Some(window.len() as u64) {
            return Err(format!(
                "the window holds {} keys where window_keys says {}",
                window.len(),
                v["window_keys"]
            ));
        }
        Ok(TimestampOffset {
            cursor_ns: opt_i64("cursor_ns")?,
            floor_ns: opt_i64("floor_ns")?,
            window,
            field: text("field")?,
            tiebreaker: text("tiebreaker")?,
        })
    }
}

/// Per time bucket that has slid out of the window: how many documents were delivered there,
/// and how many the cluster was found to hold beyond those (missed late documents).
#[derive(Debug, Clone, Default)]
struct Bucket {
    delivered: u64,
    missed: u64,
}

/// Notices documents that arrived later than the safety window: counts what was delivered per
/// bucket of time that slid out of the window, for a horizon, to compare with `_count`.
#[derive(Debug, Clone)]
pub struct MissedLate {
    width_ns: i64,
    horizon_ns: i64,
    /// Buckets start at or after this (what was delivered before it, in an earlier process, is
    /// not known here).
    origin_ns: i64,
    buckets: BTreeMap<i64, Bucket>,
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

    fn start_of(&self, ts: i64) -> i64 {
        ts - ts.rem_euclid(self.width_ns)
    }

    /// Documents that left the window, per timestamp.
    pub fn slid_out(&mut self, groups: &[(i64, u64)]) {
        for (ts, n) in groups {
            if *ts >= self.origin_ns {
                let start = self.start_of(*ts);
                self.buckets.entry(start).or_default().delivered += n;
            }
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

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
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

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.len();
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=n {
            out.push(B64[((v >> (18 - 6 * i)) & 63) as usize]);
        }
    }
    // Every byte comes from the ASCII alphabet.
    String::from_utf8(out).unwrap_or_default()
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut lookup: HashMap<u8, u32> = HashMap::with_capacity(64);
    for (i, c) in B64.iter().enumerate() {
        lookup.insert(*c, i as u32);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3 + 2);
    for chunk in bytes.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut v: u32 = 0;
        for (i, c) in chunk.iter().enumerate() {
            v |= lookup.get(c)? << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            out.push((v >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn same_timestamp_events_are_told_apart_and_remembered() {
        let mut o = TimestampOffset::new("@timestamp", "_id");
        let w = Duration::from_secs(30);
        for i in 0..1000 {
            let k = event_key("i", &format!("d{i}"), 100 * S);
            assert_eq!(o.accept(k, 100 * S), Some(Accepted::InOrder));
        }
        assert_eq!(o.accept(event_key("i", "d7", 100 * S), 100 * S), None);
        o.slide(w, 100_000);
        assert_eq!(o.window.len(), 1000);
        assert_eq!(o.read_from(w), Some(70 * S));
    }

    #[test]
    fn late_events_inside_the_window_are_late_and_the_window_slides() {
        let mut o = TimestampOffset::new("@timestamp", "_id");
        let w = Duration::from_secs(30);
        o.accept(1, 100 * S);
        assert_eq!(
            o.accept(2, 80 * S),
            Some(Accepted::Late(Duration::from_secs(20)))
        );
        o.accept(3, 120 * S);
        let out = o.slide(w, 100);
        assert_eq!(out.groups, vec![(80 * S, 1)]);
        assert_eq!(out.evicted_by_cap, 0);
        assert!(o.seen(1, 100 * S) && o.seen(3, 120 * S) && !o.seen(2, 80 * S));
        assert_eq!(o.read_from(w), Some(90 * S));
    }

    #[test]
    fn the_cap_evicts_whole_timestamps_and_raises_the_floor() {
        let mut o = TimestampOffset::new("@timestamp", "_id");
        let w = Duration::from_secs(3600);
        for i in 0..10u64 {
            o.accept(i, (i as i64 / 2) * S);
        }
        let out = o.slide(w, 5);
        assert_eq!(o.window.len(), 4);
        assert_eq!(out.evicted_by_cap, 6);
        assert_eq!(o.floor_ns, Some(2 * S));
        assert_eq!(o.read_from(w), Some(2 * S + 1));
        // One timestamp larger than the cap is kept whole.
        let mut big = TimestampOffset::new("@timestamp", "_id");
        for i in 0..10u64 {
            big.accept(i, S);
        }
        big.slide(w, 5);
        assert_eq!(big.window.len(), 10);
        assert_eq!(big.floor_ns, None);
    }

    #[test]
    fn a_stored_offset_round_trips_and_corruption_is_reported() {
        let mut o = TimestampOffset::new("event.ingested", "_id");
        o.accept(event_key("i", "a", -5 * S), -5 * S);
        o.accept(event_key("i", "b", 7 * S + 3), 7 * S + 3);
        o.accept(event_key("j", "b", 7 * S + 3), 7 * S + 3);
        o.floor_ns = Some(-10 * S);
        let back = TimestampOffset::from_json(&o.to_json()).unwrap();
        assert_eq!(back.cursor_ns, o.cursor_ns);
        assert_eq!(back.floor_ns, o.floor_ns);
        assert_eq!(back.field, "event.ingested");
        assert!(back.seen(event_key("j", "b", 7 * S + 3), 7 * S + 3));
        assert_eq!(back.window.len(), 3);
        let mut bad = o.to_json();
        bad["window"] = json!("!!!!");
        assert!(TimestampOffset::from_json(&bad).is_err());
        let mut bad = o.to_json();
        bad["window_keys"] = json!(2);
        assert!(TimestampOffset::from_json(&bad).is_err());
    }

    #[test]
    fn nanosecond_iso_and_units() {
        assert_eq!(iso_nanos(1_500_000_123), "1970-01-01T00:00:01.500000123Z");
        assert_eq!(TimeUnit::Millis.to_nanos(&json!(1500)), Some(1_500_000_000));
        assert_eq!(TimeUnit::Nanos.to_nanos(&json!(7)), Some(7));
        assert_eq!(
            TimeUnit::Millis.range_gte(1_500_000_001),
            json!({"gte": 1500})
        );
        assert_eq!(
            TimeUnit::Millis.range_between(1_000_000, 3_000_001),
            json!({"gte": 1, "lt": 4})
        );
    }

    #[test]
    fn missed_late_documents_are_the_difference_per_bucket() {
        let mut m = MissedLate::new(Duration::from_secs(10), Duration::from_secs(60), None);
        m.slid_out(&[(S, 3), (5 * S, 2), (12 * S, 4)]);
        // read_from = 21 s, horizon 60 s: buckets from -40 s to 20 s are wholly behind it,
        // the empty ones included.
        let due = m.due(21 * S, None);
        assert_eq!(due.len(), 6);
        assert_eq!(due[0].from_ns, -40 * S);
        assert_eq!(due[0].delivered, 0);
        let due = &due[4..];
        assert_eq!(
            (due[0].from_ns, due[0].to_ns, due[0].delivered),
            (0, 10 * S, 5)
        );
        assert_eq!(m.counted(&due[0], 7), 2);
        assert_eq!(m.counted(&due[0], 7), 0, "reported once");
        assert_eq!(m.counted(&due[1], 4), 0);
        assert_eq!(m.missed_in_horizon(), 2);
        // Past the horizon the bucket is forgotten.
        assert!(m.due(200 * S, None).iter().all(|r| r.from_ns >= 140 * S));
        assert_eq!(m.missed_in_horizon(), 0);
        // Counting starts at the origin and above the floor.
        let mut m = MissedLate::new(
            Duration::from_secs(10),
            Duration::from_secs(60),
            Some(10 * S),
        );
        m.slid_out(&[(5 * S, 1), (15 * S, 1)]);
        let due = m.due(30 * S, Some(12 * S));
        assert_eq!(due.len(), 2);
        assert_eq!((due[0].from_ns, due[0].delivered), (12 * S + 1, 1));
    }

    proptest! {
        #[test]
        fn window_encoding_round_trips(entries in proptest::collection::vec((any::<u64>(), -1_000_000i64..1_000_000), 0..200)) {
            let mut w = Window::default();
            for (k, ts) in &entries {
                w.insert(*k, ts * 1_000_003);
            }
            let back = Window::decode(&w.encode()).unwrap();
            prop_assert_eq!(back.len(), w.len());
            prop_assert_eq!(&back.by_ts, &w.by_ts);
            prop_assert_eq!(&back.held, &w.held);
        }

        /// However events arrive, replaying the reads a consumer would do never hands one out
        /// twice, and every event at or after the read position is handed out.
        #[test]
        fn rereading_the_window_never_duplicates(ts in proptest::collection::vec(0i64..50, 1..120), window_s in 0u64..20) {
            let w = Duration::from_secs(window_s);
            let mut o = TimestampOffset::new("t", "_id");
            let mut arrived: Vec<(u64, i64)> = Vec::new();
            let mut handed = std::collections::HashSet::new();
            for (i, t) in ts.iter().enumerate() {
                arrived.push((i as u64, t * S));
                // A poll: everything at or after read_from, in timestamp order.
                let from = o.read_from(w).unwrap_or(i64::MIN);
                let mut visible: Vec<_> = arrived.iter().filter(|(_, t)| *t >= from).copied().collect();
                visible.sort_by_key(|(k, t)| (*t, *k));
                for (k, t) in visible {
                    if !o.seen(k, t) {
                        prop_assert!(handed.insert(k), "event {} handed out twice", k);
                        o.accept(k, t);
                    }
                }
                o.slide(w, 1_000_000);
            }
        }
    }
}
