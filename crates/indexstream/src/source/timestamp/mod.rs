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
//! A read returns each document once, so only documents at or before the cursor it started
//! from can have been delivered before: only those are looked up.
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

mod missed;
mod window;

use std::time::Duration;

pub use missed::MissedLate;
#[cfg(test)]
use window::encode_keys;
pub use window::{window_part_json, Window, WindowParts};

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
            TimeUnit::Nanos => json!({ "gte": crate::date::iso_nanos(ns) }),
        }
    }

    /// The `range` bound selecting `[from_ns, to_ns)` (for counting).
    pub fn range_between(self, from_ns: i64, to_ns: i64) -> Value {
        match self {
            TimeUnit::Millis => json!({
                "gte": from_ns.div_euclid(1_000_000) + i64::from(from_ns.rem_euclid(1_000_000) != 0),
                "lt": to_ns.div_euclid(1_000_000) + i64::from(to_ns.rem_euclid(1_000_000) != 0),
            }),
            TimeUnit::Nanos => {
                json!({ "gte": crate::date::iso_nanos(from_ns), "lt": crate::date::iso_nanos(to_ns) })
            }
        }
    }
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
    /// The keys of the delivered events whose timestamp is at or after `cursor - safety_window`
    /// (see the module docs), bounded by the window cap.
    pub(crate) window: Window,
    /// The fields it was written for; a different field makes the cursor meaningless.
    pub field: String,
    /// The tiebreaker field it was written for.
    pub tiebreaker: String,
    /// Which events the current read may have handed out before.
    round: Round,
}

/// Where the current read is, for look-ups (see [`TimestampOffset::start_round`]).
#[derive(Debug, Clone, Copy, Default)]
enum Round {
    /// Outside a read: any event up to the cursor may have been handed out.
    #[default]
    Unknown,
    /// A read that started at this cursor and has not passed it.
    From(Option<i64>),
    /// A read that has passed the cursor it started at: it meets only new events.
    Passed,
}

impl TimestampOffset {
    /// The offset of a group that delivered nothing yet, reading by `field` then `tiebreaker`:
    /// no cursor, no floor, an empty window.
    pub fn new(field: &str, tiebreaker: &str) -> Self {
        TimestampOffset {
            cursor_ns: None,
            floor_ns: None,
            window: Window::default(),
            field: field.to_string(),
            tiebreaker: tiebreaker.to_string(),
            round: Round::Unknown,
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

    /// Starts a read from [`TimestampOffset::read_from`]: one pass in strictly ascending
    /// `(timestamp, tiebreaker)` order that hands out each event it returns before it asks
    /// [`TimestampOffset::seen`] about the next page. Such a read cannot return twice what it
    /// handed out itself, so only events at or before the cursor it started from can have been
    /// handed out already. Once it has passed that cursor it needs no more look-ups.
    pub fn start_round(&mut self) {
        self.round = Round::From(self.cursor_ns);
    }

    /// Whether this event was handed out already.
    pub fn seen(&mut self, key: u64, ts_ns: i64) -> bool {
        // The window holds nothing newer than the cursor; within a read, nothing newer than
        // the cursor it started from can be met again.
        match self.round {
            Round::Unknown => {
                self.cursor_ns.is_some_and(|c| ts_ns <= c) && self.window.contains(key)
            }
            Round::From(Some(c)) if ts_ns <= c => self.window.contains(key),
            Round::From(_) => {
                self.round = Round::Passed;
                false
            }
            Round::Passed => false,
        }
    }

    /// Records a handed-out event, one [`TimestampOffset::seen`] said was new.
    pub fn accept(&mut self, key: u64, ts_ns: i64) -> Accepted {
        self.window.insert(key, ts_ns);
        match self.cursor_ns {
            Some(c) if ts_ns < c => Accepted::Late(Duration::from_nanos((c - ts_ns) as u64)),
            _ => {
                self.cursor_ns = Some(ts_ns);
                Accepted::InOrder
            }
        }
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

    /// The whole window as one stored part (a compaction's base).
    pub fn full_window_part(&self) -> Value {
        json!({"v": 2, "keys": self.window.len(), "window": self.window.encode()})
    }

    /// The offset document's `cursor` in format 2: the position, and where the window's parts
    /// are (the parts are documents of their own).
    pub fn head_json(&self, parts: &WindowParts) -> Value {
        json!({
            "v": 2,
            "field": self.field,
            "tiebreaker": self.tiebreaker,
            "cursor_ns": self.cursor_ns,
            "cursor": self.cursor_ns.map(crate::date::iso_nanos),
            "floor_ns": self.floor_ns,
            "window_keys": self.window.len(),
            "window_base": parts.base,
            "window_deltas": parts.deltas,
            "window_base_keys": parts.base_keys,
            "window_delta_keys": parts.delta_keys,
        })
    }

    /// Adds the keys of one stored part to the window (loading format 2).
    pub fn merge_part(&mut self, part: &Value) -> std::result::Result<(), String> {
        if part["v"].as_u64() != Some(2) {
            return Err(format!("unknown window part version {}", part["v"]));
        }
        let text = part["window"]
            .as_str()
            .ok_or("a window part without keys")?;
        let keys = Window::decode(text).ok_or("a window part is not valid")?;
        if part["keys"].as_u64() != Some(keys.len() as u64) {
            return Err(format!(
                "a window part holds {} keys where keys says {}",
                keys.len(),
                part["keys"]
            ));
        }
        for (ts, key) in keys.keys() {
            if !self.window.contains(key) {
                self.window.insert(key, ts);
            }
        }
        Ok(())
    }

    /// The form stored in the offset document's `cursor` object, with the window in it
    /// (format 1; `groups reset` writes it, and every version loads it).
    pub fn to_json(&self) -> Value {
        json!({
            "v": 1,
            "field": self.field,
            "tiebreaker": self.tiebreaker,
            "cursor_ns": self.cursor_ns,
            "cursor": self.cursor_ns.map(crate::date::iso_nanos),
            "floor_ns": self.floor_ns,
            "window_keys": self.window.len(),
            "window": self.window.encode(),
        })
    }

    /// Parses the stored form; the error says what is wrong with it. Format 1 holds the window
    /// itself; format 2 says where its parts are (merge them with [`Self::merge_part`]).
    pub fn from_json(
        v: &Value,
    ) -> std::result::Result<(TimestampOffset, Option<WindowParts>), String> {
        let format = v["v"].as_u64();
        if format != Some(1) && format != Some(2) {
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
        let offset = |window: Window| -> std::result::Result<TimestampOffset, String> {
            Ok(TimestampOffset {
                cursor_ns: opt_i64("cursor_ns")?,
                floor_ns: opt_i64("floor_ns")?,
                window,
                field: text("field")?,
                tiebreaker: text("tiebreaker")?,
                round: Round::Unknown,
            })
        };
        if format == Some(2) {
            let count = |name: &str| -> std::result::Result<u64, String> {
                v[name]
                    .as_u64()
                    .ok_or_else(|| format!("{name} is not a count: {}", v[name]))
            };
            let parts = WindowParts {
                base: text("window_base")?,
                deltas: count("window_deltas")? as u32,
                base_keys: count("window_base_keys")? as usize,
                delta_keys: count("window_delta_keys")? as usize,
            };
            return Ok((offset(Window::default())?, Some(parts)));
        }
        let window = Window::decode(&text("window")?).ok_or("the window is not valid")?;
        if v["window_keys"].as_u64() != Some(window.len() as u64) {
            return Err(format!(
                "the window holds {} keys where window_keys says {}",
                window.len(),
                v["window_keys"]
            ));
        }
        Ok((offset(window)?, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: i64 = 1_000_000_000;

    /// The event key is persisted (in every committed window), so it must never change: fixed
    /// vectors, computed once with FNV-1a 64 over `index 0xff id 0xff ts_le`.
    #[test]
    fn the_event_key_is_a_fixed_fnv1a_of_index_id_and_timestamp() {
        assert_eq!(
            event_key("audit-2024.05", "doc-1", 1_714_557_600_000_000_000),
            0x2ef5_442a_7b02_0fb4
        );
        assert_eq!(event_key("", "", 0), 0xfe1d_0b13_49ce_d1c3);
    }

    /// Packed windows are persisted too: a fixed vector of the encoding (zigzag varint deltas,
    /// little-endian keys, standard base64 without padding).
    #[test]
    fn the_packed_window_is_a_fixed_format() {
        let packed = encode_keys(2, [(1, 0x0102_0304_0506_0708_u64), (3, 0xff)].into_iter());
        assert_eq!(packed, "AggHBgUEAwIBBP8AAAAAAAAA");
        let w = Window::decode(&packed).expect("decodes");
        assert_eq!(w.len(), 2);
        assert!(Window::decode("not base64!").is_none());
    }

    #[test]
    fn same_timestamp_events_are_told_apart_and_remembered() {
        let mut o = TimestampOffset::new("@timestamp", "_id");
        let w = Duration::from_secs(30);
        for i in 0..1000 {
            let k = event_key("i", &format!("d{i}"), 100 * S);
            assert_eq!(o.accept(k, 100 * S), Accepted::InOrder);
        }
        assert!(o.seen(event_key("i", "d7", 100 * S), 100 * S));
        assert!(!o.seen(event_key("i", "d1000", 100 * S), 100 * S));
        o.slide(w, 100_000);
        assert_eq!(o.window.len(), 1000);
        assert_eq!(o.read_from(w), Some(70 * S));
    }

    #[test]
    fn late_events_inside_the_window_are_late_and_the_window_slides() {
        let mut o = TimestampOffset::new("@timestamp", "_id");
        let w = Duration::from_secs(30);
        o.accept(1, 100 * S);
        assert_eq!(o.accept(2, 80 * S), Accepted::Late(Duration::from_secs(20)));
        o.accept(3, 120 * S);
        let out = o.slide(w, 100);
        assert_eq!(out.groups, vec![(80 * S, 1)]);
        assert_eq!(out.evicted_by_cap, 0);
        assert!(o.seen(1, 100 * S) && o.seen(3, 120 * S) && !o.seen(2, 80 * S));
        assert_eq!(o.read_from(w), Some(90 * S));
        // Late keys and in-order keys of one timestamp leave as one group, in order.
        o.accept(4, 100 * S);
        o.accept(5, 95 * S);
        o.accept(6, 140 * S);
        let out = o.slide(w, 100);
        assert_eq!(out.groups, vec![(95 * S, 1), (100 * S, 2)]);
        assert_eq!(o.window.len(), 2);
        assert!(o.seen(3, 120 * S) && !o.seen(4, 100 * S));
    }

    #[test]
    fn a_read_past_its_starting_cursor_looks_nothing_up() {
        let mut o = TimestampOffset::new("@timestamp", "_id");
        for i in 0..10u64 {
            o.accept(i, i as i64 * S);
        }
        // A read from the cursor (9 s) back: keys are looked up until the read passes 9 s.
        o.start_round();
        assert!(o.seen(3, 3 * S));
        assert!(o.window.index.is_some());
        assert!(!o.seen(20, 10 * S));
        // Events handed out later in the same read are never met again by it: no look-ups,
        // and once the index has taken more keys than it is worth keeping up, it goes.
        for k in 20..31u64 {
            assert!(!o.seen(k, 10 * S));
            o.accept(k, 10 * S);
        }
        assert!(o.window.index.is_none());
        // The next read finds them all.
        o.start_round();
        assert!((20..31).all(|k| o.seen(k, 10 * S)) && o.seen(9, 9 * S));
        assert!(!o.seen(40, 10 * S));
        // A consumer tailing: every read looks up, and the index is kept.
        for k in 40..60u64 {
            o.start_round();
            assert!(o.seen(k - 20, 10 * S) == (k < 51));
            assert!(!o.seen(k, 11 * S));
            o.accept(k, 11 * S);
            assert!(o.window.index.is_some(), "dropped at key {k}");
        }
        // A consumer catching up with an empty window builds no index at all.
        let mut fresh = TimestampOffset::new("@timestamp", "_id");
        fresh.start_round();
        for k in 0..1000u64 {
            assert!(!fresh.seen(k, k as i64));
            fresh.accept(k, k as i64);
        }
        assert!(fresh.window.index.is_none());
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
        let (mut back, parts) = TimestampOffset::from_json(&o.to_json()).unwrap();
        assert_eq!(parts, None, "format 1 holds the window itself");
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

    /// Format 2: the head names a base part and delta parts; folding them together gives the
    /// window back, whatever order late keys came in.
    #[test]
    fn a_window_in_parts_folds_back_together() {
        let mut o = TimestampOffset::new("@timestamp", "_id");
        for i in 0..50u64 {
            o.accept(
                event_key("i", &i.to_string(), (i as i64) * S),
                (i as i64) * S,
            );
        }
        let base = o.full_window_part();
        let mut added = Vec::new();
        for i in 50..60u64 {
            let (k, ts) = (
                event_key("i", &i.to_string(), (i as i64) * S),
                (i as i64) * S,
            );
            o.accept(k, ts);
            added.push((ts, k));
        }
        // A late key in the second delta.
        let late = (3 * S + 1, event_key("i", "late", 3 * S + 1));
        o.accept(late.1, late.0);
        let d0 = window_part_json(&added);
        let d1 = window_part_json(&[late]);
        let parts = WindowParts {
            base: "b1".into(),
            deltas: 2,
            base_keys: 50,
            delta_keys: 11,
        };
        assert_eq!(parts.names(), ["b1", "b1.0", "b1.1"]);
        let (mut back, got) = TimestampOffset::from_json(&o.head_json(&parts)).unwrap();
        assert_eq!(got, Some(parts));
        assert_eq!(back.window.len(), 0, "the head holds no keys");
        for part in [&base, &d0, &d1] {
            back.merge_part(part).unwrap();
        }
        back.merge_part(&d0).unwrap();
        assert_eq!(back.window.len(), 61, "a part folded twice adds nothing");
        let mut want: Vec<(i64, u64)> = o.window.keys().collect();
        let mut have: Vec<(i64, u64)> = back.window.keys().collect();
        want.sort_unstable();
        have.sort_unstable();
        assert_eq!(have, want);
        assert_eq!(back.cursor_ns, o.cursor_ns);
        let mut broken = d0.clone();
        broken["keys"] = json!(3);
        assert!(back.merge_part(&broken).is_err());
    }

    #[test]
    fn a_compaction_is_due_once_the_deltas_outgrow_the_base() {
        let parts = WindowParts {
            base: "b".into(),
            deltas: 3,
            base_keys: 60_000,
            delta_keys: 59_000,
        };
        assert!(!parts.compaction_due(500));
        assert!(parts.compaction_due(1_500));
        let small = WindowParts {
            base_keys: 10,
            delta_keys: 0,
            ..parts.clone()
        };
        assert!(
            !small.compaction_due(900),
            "small windows compact at 1000 keys"
        );
        let many = WindowParts {
            deltas: 256,
            delta_keys: 0,
            ..parts
        };
        assert!(many.compaction_due(1));
    }

    #[test]
    fn nanosecond_iso_and_units() {
        assert_eq!(
            crate::date::iso_nanos(1_500_000_123),
            "1970-01-01T00:00:01.500000123Z"
        );
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
            let held: Vec<_> = w.keys().collect();
            prop_assert!(held.windows(2).all(|p| p[0].0 <= p[1].0), "not in timestamp order");
            prop_assert_eq!(back.keys().collect::<Vec<_>>(), held);
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
                o.start_round();
                let mut visible: Vec<_> = arrived.iter().filter(|(_, t)| *t >= from).copied().collect();
                visible.sort_by_key(|(k, t)| (*t, *k));
                for (k, t) in &visible {
                    if !o.seen(*k, *t) {
                        prop_assert!(handed.insert(*k), "event {} handed out twice", k);
                        o.accept(*k, *t);
                    }
                }
                for (k, _) in &visible {
                    prop_assert!(handed.contains(k), "event {} read but never handed out", k);
                }
                o.slide(w, 1_000_000);
            }
        }
    }
}
