//! Timestamp mode: a keyset read of the whole index expression on `(timestamp, tiebreaker)`,
//! from `cursor - safety_window` every round, dropping what the window says was delivered.
//! The state and its rules are in [`crate::source::timestamp`].

use crate::date::iso_nanos;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::timestamp_pages::{is_missing, PageSpec, Round, PAGES_AHEAD};
use super::{Batch, Ctx, OnMissingTimestamp, Pending, StartFrom, TimestampSettings};
use crate::client::types::{Hit, SortValues};
use crate::client::ClientError;
use crate::error::{Error, Result};
use crate::partition::PartitionId;
use crate::record::{Record, Source};
use crate::source::timestamp::{
    event_key, newest_timestamp, window_part_json, Accepted, MissedLate, TimeUnit, TimestampOffset,
    WindowParts,
};

/// How often the timestamp field's mapping is read again.
const MAPPING_REFRESH: Duration = Duration::from_secs(10);

/// Ids of documents without a usable timestamp already reported, at most this many.
const MISSING_REMEMBERED: usize = 10_000;

/// One commit of the timestamp offset: the offset (`head`), the window part it writes, and
/// what it then stands for.
#[derive(Debug)]
pub(super) struct TimestampCommit {
    pub(super) head: Value,
    pub(super) part_name: String,
    pub(super) part: Value,
    pub(super) parts: WindowParts,
    /// Parts of the previous base that a compaction replaces (deleted once it succeeded).
    pub(super) replaced: Vec<String>,
    pub(super) handed: u64,
    pub(super) version: u64,
}

/// What a reader of one partition (timestamp partitions by shard) reads: one shard of one
/// concrete index, through a shard preference.
#[derive(Debug, Clone)]
pub(super) struct Scope {
    pub(super) pid: PartitionId,
    pub(super) preference: String,
}

/// The timestamp-mode part of a consumer: of the whole expression, or of one partition.
#[derive(Debug)]
pub(super) struct TimestampReader {
    /// `None`: the whole index expression, committed as the group's one offset.
    scope: Option<Scope>,
    /// Timestamp mode's own settings.
    settings: TimestampSettings,
    /// What has been handed out (committed as it is when the caller commits).
    offset: TimestampOffset,
    loaded: bool,
    /// Whether the offset changed since the last commit.
    dirty: bool,
    /// Counts changes of the offset, to tell whether a commit covered all of them.
    version: u64,
    uncommitted: u64,
    /// Where the stored window's parts are; `None` until this process has compacted (the
    /// first commit after loading starts a base of its own, so no part name is shared with
    /// another process of the group).
    parts: Option<WindowParts>,
    /// `(timestamp, key)` of what was handed out since the last commit's snapshot: the next
    /// delta part.
    added: Vec<(i64, u64)>,
    /// A commit failed: its delta is lost, so the next commit writes the whole window.
    must_compact: bool,
    /// Names the parts of this process's compactions.
    part_prefix: String,
    compactions: u64,
    unit: Option<TimeUnit>,
    round: Option<Round>,
    last_round: Option<Instant>,
    missed: Option<MissedLate>,
    last_missed_check: Option<Instant>,
    missing_seen: HashSet<(String, String)>,
    missing_counted: u64,
    last_missing_check: Option<Instant>,
    mapping_read: Option<Instant>,
    /// No round has started yet (the first checks the offsets' mode).
    first_round: bool,
}

impl TimestampReader {
    pub(super) fn new(field: &str, settings: TimestampSettings) -> Self {
        Self::with_scope(field, settings, None)
    }

    /// A reader of one partition only.
    pub(super) fn of_partition(field: &str, settings: TimestampSettings, scope: Scope) -> Self {
        Self::with_scope(field, settings, Some(scope))
    }

    fn with_scope(field: &str, settings: TimestampSettings, scope: Option<Scope>) -> Self {
        let unique = format!(
            "{:x}",
            crate::date::now_nanos().unsigned_abs() ^ u128::from(std::process::id()) << 64
        );
        // Part names are unique in the group: a partition's carry its uuid and shard.
        let part_prefix = match &scope {
            Some(s) => format!("{}.{}.{unique}", s.pid.uuid, s.pid.shard),
            None => unique,
        };
        TimestampReader {
            scope,
            offset: TimestampOffset::new(field, settings.tiebreaker()),
            settings,
            loaded: false,
            dirty: false,
            version: 0,
            uncommitted: 0,
            parts: None,
            added: Vec::new(),
            must_compact: false,
            part_prefix,
            compactions: 0,
            unit: None,
            round: None,
            last_round: None,
            missed: None,
            last_missed_check: None,
            missing_seen: HashSet::new(),
            missing_counted: 0,
            last_missing_check: None,
            mapping_read: None,
            first_round: true,
        }
    }

    pub(super) fn uncommitted(&self) -> u64 {
        self.uncommitted
    }

    pub(super) fn dirty(&self) -> bool {
        self.dirty
    }

    pub(super) fn in_round(&self) -> bool {
        self.round.is_some()
    }

    pub(super) fn last_round(&self) -> Option<Instant> {
        self.last_round
    }

    /// The handed-out position: the newest timestamp, and the keys held in the window.
    pub(super) fn position(&self) -> (Option<i64>, usize) {
        (self.offset.cursor_ns, self.offset.window.len())
    }

    /// Stops the round under way (its pages are not read; the next one starts again from the
    /// cursor).
    pub(super) fn stop_round(&mut self) {
        self.round = None;
    }

    /// What reads and counts go to: the partition's index, or the whole expression.
    fn target<'c>(&'c self, cx: &'c Ctx<'_>) -> &'c str {
        match &self.scope {
            Some(s) => &s.pid.index,
            None => &cx.config.index,
        }
    }

    /// Points the partition's reads at the shard's current primary copy.
    pub(super) fn set_preference(&mut self, preference: String) {
        if let Some(s) = self.scope.as_mut() {
            s.preference = preference;
        }
    }

    /// The query parameters of every read and count: the partition's shard preference.
    fn params(&self) -> Vec<(&'static str, String)> {
        match &self.scope {
            Some(s) => vec![("preference", s.preference.clone())],
            None => Vec::new(),
        }
    }
}

impl TimestampReader {
    /// One step of timestamp mode: starts a round when due, or reads its next page. Returns
    /// `false` when a round has just ended or there is nothing to do before the poll interval
    /// (counted from the end of the last round) has passed.
    pub(super) async fn timestamp_step(&mut self, cx: &mut Ctx<'_>) -> Result<bool> {
        let due = self
            .last_round()
            .is_none_or(|t| t.elapsed() >= cx.config.poll_interval);
        self.step_when(cx, due).await
    }

    /// [`TimestampReader::timestamp_step`] with the decision whether a new round is due made by
    /// the caller (a partition's round starts when its shard changed).
    pub(super) async fn step_when(&mut self, cx: &mut Ctx<'_>, due: bool) -> Result<bool> {
        let in_round = self.in_round();
        if !in_round {
            if !due {
                return Ok(false);
            }
            self.start_timestamp_round(cx).await?;
            if !self.in_round() {
                return Ok(false);
            }
        }
        self.read_timestamp_page(cx).await?;
        let ts = &mut *self;
        if ts.round.is_none() {
            ts.last_round = Some(Instant::now());
            return Ok(false);
        }
        Ok(true)
    }

    /// The query every read and count shares: the caller's `--query` and the field's presence.
    fn timestamp_filters(&self, cx: &Ctx<'_>, range: Option<Value>) -> Vec<Value> {
        let field = &cx.config.timestamp_field;
        let mut filter = vec![json!({"exists": {"field": field}})];
        if let Some(r) = range {
            filter.push(json!({"range": {field.clone(): r}}));
        }
        if let Some(q) = &self.settings.query {
            filter.push(q.clone());
        }
        filter
    }

    async fn start_timestamp_round(&mut self, cx: &mut Ctx<'_>) -> Result<()> {
        if let Some(hold) = cx.hold {
            hold.check()?;
        }
        cx.stats.rounds += 1;
        let first = self.first_round;
        // The mapping is read again now and then, for indices that start matching the expression.
        let stale = self
            .mapping_read
            .is_none_or(|t| t.elapsed() >= MAPPING_REFRESH);
        let unit = if first || stale || self.unit.is_none() {
            let unit = self.learn_unit(cx, first).await?;
            self.mapping_read = Some(Instant::now());
            unit
        } else {
            self.unit
        };
        self.first_round = false;
        if !self.loaded {
            self.load_timestamp_offset(cx, unit).await?;
        }
        let window = self.settings.safety_window;
        let ts = &mut *self;
        ts.last_round = Some(Instant::now());
        if unit.is_some() {
            ts.offset.start_round();
            let from = ts.offset.read_from(window);
            let spec = PageSpec {
                index: self.target(cx).to_string(),
                params: self.params(),
                seq_no: self.scope.is_some(),
                field: cx.config.timestamp_field.clone(),
                tiebreaker: self.settings.tiebreaker().to_string(),
                query: self.settings.query.clone(),
                size: cx.config.page_size,
                unit: unit.unwrap_or(TimeUnit::Millis),
                from,
            };
            let (tx, rx) = tokio::sync::mpsc::channel(PAGES_AHEAD);
            let prefetcher = tokio::spawn(spec.prefetch(cx.client.clone(), tx));
            self.round = Some(Round {
                from,
                pages: rx,
                prefetcher,
            });
        }
        // The background counts run while the first pages are fetched: documents without a
        // timestamp are never read, so finding them needs no place in the read's order.
        let checked = match self.check_missing_timestamps(cx).await {
            Ok(()) => self.check_missed_late(cx).await,
            e => e,
        };
        if checked.is_err() {
            self.round = None;
        }
        checked
    }

    /// The unit of the timestamp field across the indices behind the expression.
    async fn learn_unit(&mut self, cx: &mut Ctx<'_>, first: bool) -> Result<Option<TimeUnit>> {
        let field = cx.config.timestamp_field.clone();
        let target = self.target(cx).to_string();
        let types = match cx.client.field_types(&target, &field).await {
            Ok(t) => t,
            Err(ClientError::Status { status: 404, .. }) if first && self.scope.is_none() => {
                return Err(Error::NoSuchIndex {
                    pattern: cx.config.index.clone(),
                })
            }
            Err(ClientError::Status { status: 404, .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        // (Checked for the whole expression only: one index of a pattern without the field,
        // read by shard, is a partition with nothing to read, not a mistake.)
        if first
            && self.scope.is_none()
            && !types.is_empty()
            && types.iter().all(|(_, ty)| ty.is_none())
        {
            // Not mapped anywhere: fine for indices still empty (the mapping comes with the
            // first document), a mistake (a typo, another field name) once documents exist.
            let docs = cx.client.count(&target, json!({"match_all": {}})).await?;
            if docs > 0 {
                let dates = cx.client.date_fields(&target).await?;
                let dates = if dates.is_empty() {
                    "it maps no date field".to_string()
                } else {
                    format!("its date fields: {}", dates.join(", "))
                };
                return Err(Error::Config {
                    field: "timestamp_field",
                    reason: format!(
                        "{field:?} is not mapped in {target:?}, which holds {docs} documents, so none could be read by it; {dates}"
                    ),
                });
            }
        }
        let mut units: BTreeMap<&'static str, String> = BTreeMap::new();
        let mut unit = None;
        for (index, ty) in &types {
            let Some(ty) = ty else { continue };
            let u = TimeUnit::of_field_type(ty).ok_or_else(|| Error::Config {
                field: "timestamp_field",
                reason: format!("{field:?} is mapped as {ty} in index {index:?}; timestamp mode needs a date, date_nanos or long (epoch milliseconds) field"),
            })?;
            let name = if u == TimeUnit::Nanos {
                "date_nanos"
            } else {
                "date"
            };
            units.entry(name).or_insert_with(|| index.clone());
            unit = Some(u);
        }
        if units.len() > 1 {
            return Err(Error::Config {
                field: "timestamp_field",
                reason: format!(
                    "{field:?} is date_nanos in index {:?} but date or long in {:?}; one expression must use one of them",
                    units["date_nanos"], units["date"]
                ),
            });
        }
        let ts = &mut *self;
        if let (Some(old), Some(new)) = (ts.unit, unit) {
            if old != new {
                return Err(Error::Config {
                    field: "timestamp_field",
                    reason: format!("{field:?} changed between date and date_nanos while running"),
                });
            }
        }
        if unit.is_some() {
            ts.unit = unit;
        }
        Ok(ts.unit)
    }

    async fn load_timestamp_offset(
        &mut self,
        cx: &mut Ctx<'_>,
        unit: Option<TimeUnit>,
    ) -> Result<()> {
        let stored = match &self.scope {
            Some(s) => cx.offsets.load_timestamp_partition(&s.pid).await?,
            None => cx.offsets.load_timestamp(&cx.config.index).await?,
        };
        let (field, tiebreaker) = (
            cx.config.timestamp_field.clone(),
            self.settings.tiebreaker().to_string(),
        );
        let offset = match stored {
            Some((mut o, _parts)) => {
                if o.field != field || o.tiebreaker != tiebreaker {
                    return Err(Error::Config {
                        field: "timestamp_field",
                        reason: format!("group {:?} was committed reading by ({}, {}), not ({field}, {tiebreaker}); read by those fields, use another group, or reset the group's offsets", cx.config.group, o.field, o.tiebreaker),
                    });
                }
                // Keys of the stored parts that slid out of the window since they were written.
                o.slide(self.settings.safety_window, self.settings.window_cap);
                let partition = self.scope.as_ref().map(|s| s.pid.to_string());
                tracing::info!(group = %cx.config.group, partition = ?partition, cursor = ?o.cursor_ns.map(iso_nanos), window_keys = o.window.len(), "resuming from the committed timestamp offset");
                o
            }
            None => {
                let mut o = TimestampOffset::new(&field, &tiebreaker);
                o.floor_ns = match cx.config.start {
                    StartFrom::Earliest => None,
                    StartFrom::Time(ms) => Some(ms.saturating_mul(1_000_000) - 1),
                    StartFrom::Latest => match unit {
                        Some(unit) => {
                            newest_timestamp(
                                cx.client,
                                self.target(cx),
                                &cx.config.timestamp_field,
                                self.timestamp_filters(cx, None),
                                unit,
                            )
                            .await?
                        }
                        None => None,
                    },
                };
                self.dirty = o.floor_ns.is_some();
                self.version += 1;
                o
            }
        };
        let origin = offset.read_from(self.settings.safety_window);
        let missed = MissedLate::new(
            self.settings.safety_window.max(Duration::from_secs(1)),
            self.settings.missed_late_horizon,
            origin,
        );
        let ts = &mut *self;
        ts.offset = offset;
        ts.loaded = true;
        ts.missed = Some(missed);
        Ok(())
    }

    /// Takes the round's next page from its prefetcher and processes it.
    async fn read_timestamp_page(&mut self, cx: &mut Ctx<'_>) -> Result<()> {
        let Some(unit) = self.unit else {
            self.round = None;
            return Ok(());
        };
        let Some(round) = self.round.as_mut() else {
            return Ok(());
        };
        let from = round.from;
        let resp = match round.pages.recv().await {
            Some(Ok(r)) => r,
            // The prefetcher ended without a short page (it was stopped): the round is over.
            None => {
                self.round = None;
                return Ok(());
            }
            // The expression matches nothing right now (every index deleted): nothing to read.
            Some(Err(ClientError::Status { status: 404, .. })) => {
                self.round = None;
                return Ok(());
            }
            Some(Err(e)) => {
                // The round starts again from its beginning next time.
                self.round = None;
                return Err(e.into());
            }
        };
        let hits = resp.hits.hits;
        if hits.len() < cx.config.page_size {
            self.round = None;
        }
        let n = hits.len();
        let mut records = Vec::with_capacity(n);
        let mut keys = Vec::with_capacity(n);
        let mut iso = IsoFormatter::default();
        for hit in hits {
            let first = hit.sort.as_ref().and_then(SortValues::first);
            if is_missing(first.as_slice()) {
                // Documents without a timestamp sort last: the rest of the round is all such
                // documents (counted by `check_missing_timestamps`, never delivered).
                self.round = None;
                break;
            }
            let ts_ns = first.as_ref().and_then(|v| unit.to_nanos(v));
            let Some(ts_ns) = ts_ns else {
                continue;
            };
            if from.is_some_and(|f| ts_ns < f) {
                continue;
            }
            let key = event_key(&hit.index, &hit.id, ts_ns);
            if self.offset.seen(key, ts_ns) {
                continue;
            }
            keys.push((key, ts_ns));
            let mut record = timestamp_record(hit, ts_ns, unit, &mut iso);
            record.shard = self.scope.as_ref().map(|s| s.pid.shard);
            records.push(record);
        }
        if !records.is_empty() {
            cx.pending.push_back(Pending::Batch(Batch {
                records,
                partition: self.scope.as_ref().map(|s| s.pid.clone()),
                marks: Vec::new(),
                keys,
            }));
        }
        Ok(())
    }

    /// Records handed-out events in the offset: lateness, the window, the cap.
    pub(super) fn timestamp_handed_out(&mut self, cx: &Ctx<'_>, keys: &[(u64, i64)]) {
        let window = self.settings.safety_window;
        let cap = self.settings.window_cap;
        let telemetry = cx.telemetry;
        let ts = &mut *self;
        for (key, ts_ns) in keys {
            if let Accepted::Late(by) = ts.offset.accept(*key, *ts_ns) {
                telemetry.late_document(by);
            }
            ts.added.push((*ts_ns, *key));
            ts.uncommitted += 1;
            ts.dirty = true;
            ts.version += 1;
        }
        let out = ts.offset.slide(window, cap);
        if let Some(m) = ts.missed.as_mut() {
            m.slid_out(&out.groups);
        }
        if out.evicted_by_cap > 0 {
            telemetry.window_cap_hit(out.evicted_by_cap, cap, ts.offset.floor_ns.map(iso_nanos));
        }
        telemetry.window_keys(ts.offset.window.len());
    }

    /// What a commit of the timestamp offset would write now (`None` when nothing changed):
    /// the keys handed out since the last snapshot as a delta part, or the whole window as a
    /// new base when a compaction is due (the first commit of this process, after a failed
    /// commit, or once the deltas outgrow the base).
    pub(super) fn timestamp_snapshot(&mut self) -> Option<TimestampCommit> {
        let ts = &mut *self;
        if !ts.dirty {
            return None;
        }
        let added = std::mem::take(&mut ts.added);
        let compact = ts.must_compact
            || ts
                .parts
                .as_ref()
                .is_none_or(|p| p.compaction_due(added.len()));
        let (part_name, part, parts, replaced) = if compact {
            ts.compactions += 1;
            let base = format!("{}-{}", ts.part_prefix, ts.compactions);
            let parts = WindowParts {
                base: base.clone(),
                deltas: 0,
                base_keys: ts.offset.window.len(),
                delta_keys: 0,
            };
            let replaced = ts.parts.as_ref().map(|p| p.names()).unwrap_or_default();
            (base, ts.offset.full_window_part(), parts, replaced)
        } else {
            let current = ts.parts.as_ref()?;
            let name = format!("{}.{}", current.base, current.deltas);
            let parts = WindowParts {
                base: current.base.clone(),
                deltas: current.deltas + 1,
                base_keys: current.base_keys,
                delta_keys: current.delta_keys + added.len(),
            };
            (name, window_part_json(&added), parts, Vec::new())
        };
        // Until this commit succeeds the delta is only here: a failure makes the next one whole.
        ts.must_compact = true;
        Some(TimestampCommit {
            head: ts.offset.head_json(&parts),
            part_name,
            part,
            parts,
            replaced,
            handed: ts.uncommitted,
            version: ts.version,
        })
    }

    /// Commits a snapshot from [`Consumer::timestamp_snapshot`].
    pub(super) async fn commit_timestamp(
        &mut self,
        cx: &mut Ctx<'_>,
        c: TimestampCommit,
    ) -> Result<usize> {
        cx.offsets
            .commit_timestamp(&cx.config.index, c.head, &c.part_name, c.part)
            .await?;
        cx.offsets.delete_window_parts(&c.replaced).await;
        self.committed(c.parts, c.handed, c.version);
        cx.stats.commits += 1;
        Ok(1)
    }

    /// Takes note of a commit that was written: where its window's parts are now, what it
    /// covered.
    pub(super) fn committed(&mut self, parts: WindowParts, handed: u64, version: u64) {
        let ts = &mut *self;
        ts.parts = Some(parts);
        ts.must_compact = false;
        ts.uncommitted = ts.uncommitted.saturating_sub(handed);
        // Handed out since the snapshot: still to commit.
        ts.dirty = ts.version != version;
    }

    /// Counts documents without a usable timestamp (on the first read, then at most every
    /// `missed_late_check_every`); logs each one's id once and, with
    /// `--on-missing-timestamp fail`, stops on the first.
    async fn check_missing_timestamps(&mut self, cx: &mut Ctx<'_>) -> Result<()> {
        let every = self.settings.missed_late_check_every;
        let ts = &mut *self;
        if ts.last_missing_check.is_some_and(|t| t.elapsed() < every) {
            return Ok(());
        }
        ts.last_missing_check = Some(Instant::now());
        let field = cx.config.timestamp_field.clone();
        let mut filter = Vec::new();
        if let Some(q) = &self.settings.query {
            filter.push(q.clone());
        }
        let query = json!({"bool": {"filter": filter, "must_not": [{"exists": {"field": field}}]}});
        let target = self.target(cx).to_string();
        let params = self.params();
        let count = match cx.client.count_with(&target, &params, query.clone()).await {
            Ok(n) => n,
            Err(ClientError::Status { status: 404, .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if count <= self.missing_counted {
            self.missing_counted = count;
            return Ok(());
        }
        let new = count - self.missing_counted;
        self.missing_counted = count;
        cx.telemetry.missing_timestamps(new);
        let body = json!({"size": 100, "track_total_hits": false,
            "sort": [{self.settings.tiebreaker(): "desc"}], "query": query});
        let resp = cx.client.search(&target, &params, body).await?;
        for hit in resp.hits.hits {
            let reason = missing_reason(&hit, &field);
            if self.settings.on_missing_timestamp == OnMissingTimestamp::Fail {
                return Err(Error::MissingTimestamp {
                    index: hit.index,
                    id: hit.id,
                    field,
                    reason,
                });
            }
            let ts = &mut *self;
            if ts.missing_seen.len() < MISSING_REMEMBERED
                && ts.missing_seen.insert((hit.index.clone(), hit.id.clone()))
            {
                tracing::warn!(index = %hit.index, id = %hit.id, field = %field, reason = %reason, "document without a usable timestamp skipped (on_missing_timestamp = skip)");
            }
        }
        Ok(())
    }

    /// Compares what was delivered in the time that slid out of the window with what the
    /// cluster holds there now.
    async fn check_missed_late(&mut self, cx: &mut Ctx<'_>) -> Result<()> {
        let every = self.settings.missed_late_check_every;
        let window = self.settings.safety_window;
        let unit = self.unit;
        let ts = &mut *self;
        if ts.last_missed_check.is_some_and(|t| t.elapsed() < every) {
            return Ok(());
        }
        let (Some(unit), Some(from)) = (unit, ts.offset.read_from(window)) else {
            return Ok(());
        };
        let floor = ts.offset.floor_ns;
        let Some(due) = ts.missed.as_mut().map(|m| m.due(from, floor)) else {
            return Ok(());
        };
        ts.last_missed_check = Some(Instant::now());
        let (Some(first), Some(last)) = (due.first(), due.last()) else {
            return Ok(());
        };
        // One count over the whole horizon; per bucket only when it shows something new.
        let known: u64 = due.iter().map(|r| r.delivered + r.missed).sum();
        let query = json!({"bool": {"filter": self.timestamp_filters(cx, Some(unit.range_between(first.from_ns, last.to_ns)))}});
        let target = self.target(cx).to_string();
        let params = self.params();
        match cx.client.count_with(&target, &params, query).await {
            Ok(n) if n > known => {}
            Ok(_) => return Ok(()),
            Err(e) => {
                tracing::debug!(error = %e, "cannot count documents behind the window");
                return Ok(());
            }
        }
        for range in due {
            let query = json!({"bool": {"filter": self.timestamp_filters(cx, Some(unit.range_between(range.from_ns, range.to_ns)))}});
            let count = match cx.client.count_with(&target, &params, query).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot count documents behind the window");
                    return Ok(());
                }
            };
            let ts = &mut *self;
            let Some(m) = ts.missed.as_mut() else {
                return Ok(());
            };
            let new = m.counted(&range, count);
            let known = m.missed_in_horizon();
            if new > 0 {
                cx.telemetry.missed_late(
                    new,
                    known,
                    &iso_nanos(range.from_ns),
                    &iso_nanos(range.to_ns),
                    window,
                );
            }
        }
        Ok(())
    }
}

/// Formats timestamps as RFC 3339 UTC, reusing the date and time of day of the previous one
/// when it falls in the same second (consecutive documents mostly do).
#[derive(Debug, Default)]
struct IsoFormatter {
    second: Option<i64>,
    /// `YYYY-MM-DDTHH:MM:SS` of `second`.
    prefix: String,
}

impl IsoFormatter {
    fn format(&mut self, ts_ns: i64, unit: TimeUnit) -> String {
        let second = ts_ns.div_euclid(1_000_000_000);
        if self.second != Some(second) {
            self.prefix.clear();
            crate::date::push_second(second, &mut self.prefix);
            self.second = Some(second);
        }
        let mut out = String::with_capacity(self.prefix.len() + 11);
        out.push_str(&self.prefix);
        out.push('.');
        let sub = ts_ns.rem_euclid(1_000_000_000);
        match unit {
            TimeUnit::Millis => crate::date::push_padded(&mut out, (sub / 1_000_000) as u64, 3),
            TimeUnit::Nanos => crate::date::push_padded(&mut out, sub as u64, 9),
        }
        out.push('Z');
        out
    }
}

fn timestamp_record(hit: Hit, ts_ns: i64, unit: TimeUnit, iso: &mut IsoFormatter) -> Record {
    let iso = iso.format(ts_ns, unit);
    Record {
        index: hit.index,
        id: hit.id,
        shard: None,
        seq_no: hit.seq_no,
        primary_term: hit.primary_term,
        timestamp: Some(Value::String(iso)),
        source: hit.source.unwrap_or_else(Source::null),
    }
}

/// Why a document that does not match `exists` has no usable timestamp.
fn missing_reason(hit: &Hit, field: &str) -> String {
    let source: Value = hit
        .source
        .as_ref()
        .and_then(|s| serde_json::from_str(s.get()).ok())
        .unwrap_or(Value::Null);
    match lookup(&source, field) {
        None | Some(Value::Null) => format!("it has no {field}"),
        Some(v) => format!("its {field} {v} is not a value the field accepts (unparseable, ignored by ignore_malformed?)"),
    }
}

/// A dotted path in a document: nested objects, or a key that itself contains dots.
fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(x) = v.get(path) {
        return Some(x);
    }
    let mut rest = path;
    while let Some(i) = rest.find('.') {
        let (head, tail) = (&path[..path.len() - rest.len() + i], &rest[i + 1..]);
        if let Some(inner) = v.get(head) {
            if let Some(x) = lookup(inner, tail) {
                return Some(x);
            }
        }
        rest = tail;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_says_whether_the_field_is_absent_or_unparseable() {
        let hit = |src: &str| Hit {
            index: "i".into(),
            id: "x".into(),
            seq_no: None,
            primary_term: None,
            source: Some(Source::from_json(src).unwrap()),
            sort: None,
        };
        assert_eq!(
            missing_reason(&hit(r#"{"a": 1}"#), "event.ingested"),
            "it has no event.ingested"
        );
        let r = missing_reason(&hit(r#"{"event": {"ingested": "soon"}}"#), "event.ingested");
        assert!(r.contains("\"soon\"") && r.contains("not a value"), "{r}");
    }

    #[test]
    fn formatted_timestamps_match_the_plain_formatters() {
        let mut f = IsoFormatter::default();
        for ns in [
            0i64,
            1_700_000_000_123_456_789,
            1_700_000_000_999_999_999,
            1_700_000_001_000_000_000,
            -1,
            -1_500_000_000,
        ] {
            assert_eq!(f.format(ns, TimeUnit::Nanos), iso_nanos(ns));
            assert_eq!(
                f.format(ns, TimeUnit::Millis),
                crate::date::iso_millis(ns.div_euclid(1_000_000))
            );
        }
    }

    #[test]
    fn dotted_paths_are_found_nested_or_literal() {
        let v = json!({"event": {"ingested": 1}, "a.b": {"c": 2}, "x": {"y.z": 3}});
        assert_eq!(lookup(&v, "event.ingested"), Some(&json!(1)));
        assert_eq!(lookup(&v, "a.b.c"), Some(&json!(2)));
        assert_eq!(lookup(&v, "x.y.z"), Some(&json!(3)));
        assert_eq!(lookup(&v, "event.other"), None);
    }
}
