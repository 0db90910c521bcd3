//! Consumer groups seen from outside a consumer: list, describe, reset and delete, over the
//! typed documents of the offsets index ([`StoreDoc`]). A group that a live member holds is
//! never reset, and deleted only when asked to force it.
//!
//! ```no_run
//! # async fn demo() -> indexstream::Result<()> {
//! use indexstream::{Admin, Reset, ResetTo};
//! use indexstream::{Client, ClientConfig};
//!
//! let client = Client::new(&ClientConfig::new("http://localhost:9200"))?;
//! let admin = Admin::new(client, indexstream::DEFAULT_OFFSETS_INDEX);
//! for g in admin.list().await? {
//!     println!("{} {:?} {} partitions", g.group, g.mode, g.partitions);
//! }
//! admin.reset("siem-forwarder", &Reset::new(ResetTo::Earliest)).await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::client::types::{Cas, IndexShards};
use crate::client::Client;
use crate::date::{iso_nanos, now_millis};
use crate::error::{Error, Result};
use crate::offset::{offset_doc, offsets_index_body, parse_offset_doc, DocKind, Mode, StoreDoc};
use crate::partition::PartitionId;
use crate::source::timestamp::{newest_timestamp, TimeUnit, TimestampOffset};

/// Who the documents written by an admin operation name as their writer.
const ADMIN_MEMBER: &str = "indexstream-groups-reset";

/// The groups of one offsets index.
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
    offsets_index: String,
}

/// One group, as [`Admin::list`] gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupSummary {
    /// The group's name.
    pub group: String,
    /// The mode of its offsets; `None` when it has none (only a lease).
    pub mode: Option<Mode>,
    /// Offset documents: one per partition in exact mode, one in timestamp mode.
    pub partitions: usize,
    /// The live members: of an exact-mode group, every member whose heartbeat has not
    /// expired; of a timestamp-mode group, the holder of its lease.
    pub members: Vec<String>,
}

/// A live member of an exact-mode group, as [`Admin::describe`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberInfo {
    /// Its member id.
    pub member: String,
    /// The host it runs on, and its process id there.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The partitions it owns (live claims).
    pub partitions: Vec<PartitionId>,
    /// Milliseconds since its last heartbeat; `None` when the document does not say.
    pub heartbeat_age_ms: Option<i64>,
}

/// What [`Admin::describe`] tells of a group.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Description {
    /// A group whose offsets are in exact mode (per partition).
    Exact {
        /// The group's name.
        group: String,
        /// The live members, by member id, with what they own.
        members: Vec<MemberInfo>,
        /// Each partition it has an offset for, with its lag and owner.
        partitions: Vec<PartitionLag>,
    },
    /// A group whose offset is in timestamp mode.
    Timestamp(TimestampDescription),
    /// A timestamp-mode group read by shard: a cursor per partition, shared by members.
    TimestampShards {
        /// The group's name.
        group: String,
        /// The live members, by member id, with what they own.
        members: Vec<MemberInfo>,
        /// Each partition it has an offset for, with its cursor and owner.
        partitions: Vec<TimestampPartitionLag>,
    },
}

/// A partition of a timestamp-mode group read by shard.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimestampPartitionLag {
    /// The partition (index, index uuid and shard).
    pub partition: PartitionId,
    /// The timestamp field the offset was written for.
    pub timestamp_field: String,
    /// The newest timestamp delivered, in nanoseconds; `None` before anything was.
    pub cursor_ns: Option<i64>,
    /// Nothing at or before it is read (set by a reset or `--start`); nanoseconds.
    pub floor_ns: Option<i64>,
    /// Documents of the shard newer than the cursor (or the floor); `None` when the count
    /// failed (the index is gone).
    pub newer: Option<u64>,
    /// The member owning it now (a live claim); `None` when no member does.
    pub owner: Option<String>,
    /// The ownership epoch of its live claim, or else of its last commit.
    pub epoch: Option<u64>,
}

/// An exact-mode partition: its committed offset against the shard's global checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionLag {
    /// The partition (index, index uuid and shard).
    pub partition: PartitionId,
    /// The committed `_seq_no`: every operation up to it was delivered (`-1`: none yet).
    pub committed: i64,
    /// `None` when the index is gone or was recreated (another uuid).
    pub checkpoint: Option<i64>,
    /// Operations up to the checkpoint not yet delivered (the committed ranges above the offset
    /// left out); `None` with the checkpoint.
    pub lag: Option<i64>,
    /// The member owning it now (a live claim); `None` when no member does.
    pub owner: Option<String>,
    /// The ownership epoch of its live claim, or else of its last commit.
    pub epoch: Option<u64>,
}

/// A timestamp-mode group: where its cursor stands and how much is newer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimestampDescription {
    /// The group's name.
    pub group: String,
    /// The member holding a live lease, if one does.
    pub member: Option<String>,
    /// The index expression the offset reads (empty when the offset document names none).
    pub index: String,
    /// The timestamp field the offset was written for.
    pub timestamp_field: String,
    /// The tiebreaker field the offset was written for.
    pub tiebreaker_field: String,
    /// Nanoseconds since the epoch; `None` before anything was delivered.
    pub cursor_ns: Option<i64>,
    /// Nothing at or before it is read (set by a reset); nanoseconds.
    pub floor_ns: Option<i64>,
    /// How many keys of delivered events the committed window holds (0 when the document
    /// does not say).
    pub window_keys: u64,
    /// Documents newer than the cursor (or the floor); `None` when the count failed.
    pub newer: Option<u64>,
}

/// Where [`Admin::reset`] moves a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetTo {
    /// Everything is read again.
    Earliest,
    /// Only what is written from now on is read.
    Latest,
    /// From the first document at or after this time (epoch milliseconds), by the timestamp
    /// field.
    Time {
        /// The time, in milliseconds since the epoch.
        epoch_ms: i64,
    },
}

/// A reset: where to, and what to set for a group without offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reset {
    /// Where the offsets move.
    pub to: ResetTo,
    /// Also set offsets for the partitions of this index (pattern or alias), not only those the
    /// group has; required for a group without offsets. In timestamp mode it replaces the
    /// expression the offset reads.
    pub index: Option<String>,
    /// The timestamp field for [`ResetTo::Time`] in exact mode, and of a new timestamp offset.
    pub timestamp_field: String,
    /// The mode of a group that has no offsets yet; existing offsets keep theirs.
    pub new_group_mode: Mode,
}

impl Reset {
    /// A reset to `to` of the partitions the group has offsets for, with `@timestamp` as the
    /// timestamp field and exact mode for a group without offsets.
    pub fn new(to: ResetTo) -> Self {
        Reset {
            to,
            index: None,
            timestamp_field: "@timestamp".into(),
            new_group_mode: Mode::Exact,
        }
    }

    /// The same reset, also setting offsets for the partitions of `index` (see [`Reset::index`]).
    pub fn with_index(mut self, index: impl Into<String>) -> Self {
        self.index = Some(index.into());
        self
    }

    /// The same reset with another timestamp field (see [`Reset::timestamp_field`]).
    pub fn with_timestamp_field(mut self, field: impl Into<String>) -> Self {
        self.timestamp_field = field.into();
        self
    }

    /// The same reset with another mode for a group without offsets (see
    /// [`Reset::new_group_mode`]).
    pub fn with_new_group_mode(mut self, mode: Mode) -> Self {
        self.new_group_mode = mode;
        self
    }
}

/// What a reset set.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetDone {
    /// Each partition's new offset (`-1`: from its first operation).
    Exact(Vec<(PartitionId, i64)>),
    /// The expression and the new floor (`None`: from the earliest document).
    Timestamp {
        /// The index expression the offset reads.
        index: String,
        /// The new floor, in nanoseconds since the epoch: nothing at or before it is read.
        floor_ns: Option<i64>,
    },
}

/// Whether [`Admin::delete`] may delete a group a live member holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenHeld {
    /// Fail with [`Error::GroupRunning`] and delete nothing.
    Refuse,
    /// Delete the group's documents anyway, its live lease included.
    Delete,
}

/// One stored document with the version to change it conditionally.
#[derive(Debug)]
struct Stored {
    id: String,
    seq_no: i64,
    primary_term: i64,
    source: Value,
    doc: Option<StoreDoc>,
}

impl Stored {
    fn kind(&self) -> Option<DocKind> {
        self.doc.as_ref().map(|d| d.kind)
    }

    fn mode(&self) -> Option<Mode> {
        self.doc.as_ref().and_then(|d| d.mode)
    }

    fn is_offset(&self) -> bool {
        self.kind() == Some(DocKind::Offset)
    }

    /// A timestamp-mode offset of one partition (timestamp partitions by shard).
    fn is_timestamp_partition(&self) -> bool {
        self.is_offset()
            && self.mode() == Some(Mode::Timestamp)
            && self.doc.as_ref().is_some_and(|d| d.shard.is_some())
    }

    /// The bulk action that replaces it only if nobody changed it since it was read.
    fn replace_action(&self, offsets_index: &str) -> Value {
        json!({"index": {"_index": offsets_index, "_id": self.id, "if_seq_no": self.seq_no, "if_primary_term": self.primary_term}})
    }
}

/// The live members among a group's documents: the holder of a live lease, and every member
/// document whose heartbeat has not expired, by member id.
fn live_members(docs: &[Stored]) -> Vec<String> {
    let now = now_millis();
    let names: std::collections::BTreeSet<String> = docs
        .iter()
        .filter_map(|d| d.doc.as_ref())
        .filter(|d| matches!(d.kind, DocKind::Lease | DocKind::Member) && d.is_live(now))
        .map(|d| d.member.clone().unwrap_or_default())
        .collect();
    names.into_iter().collect()
}

/// [`Error::GroupRunning`] when a member is alive.
fn refuse_if_running(group: &str, docs: &[Stored]) -> Result<()> {
    let members = live_members(docs);
    if members.is_empty() {
        return Ok(());
    }
    Err(Error::GroupRunning {
        group: group.to_string(),
        members,
    })
}

/// The live members of an exact-mode group with their claims, and each partition's owner.
fn members_and_owners(docs: &[Stored]) -> (Vec<MemberInfo>, BTreeMap<PartitionId, (String, u64)>) {
    let now = now_millis();
    let mut owners = BTreeMap::new();
    for d in docs.iter().filter_map(|d| d.doc.as_ref()) {
        if d.kind == DocKind::Claim && d.is_live(now) {
            if let (Some(index), Some(uuid), Some(shard)) = (&d.index, &d.index_uuid, d.shard) {
                let p = PartitionId {
                    index: index.clone(),
                    uuid: uuid.clone(),
                    shard,
                };
                owners.insert(
                    p,
                    (d.member.clone().unwrap_or_default(), d.epoch.unwrap_or(0)),
                );
            }
        }
    }
    let members = docs
        .iter()
        .filter_map(|d| d.doc.as_ref())
        .filter(|d| d.kind == DocKind::Member && d.is_live(now))
        .map(|d| {
            let member = d.member.clone().unwrap_or_default();
            MemberInfo {
                partitions: owners
                    .iter()
                    .filter(|(_, (m, _))| *m == member)
                    .map(|(p, _)| p.clone())
                    .collect(),
                member,
                host: d.host.clone().unwrap_or_default(),
                pid: d.pid.unwrap_or(0),
                heartbeat_age_ms: d
                    .updated_at
                    .as_deref()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                    .map(|t| (now - t.as_millisecond()).max(0)),
            }
        })
        .collect();
    (members, owners)
}

impl Admin {
    /// The groups whose documents `offsets_index` holds, read and written through `client`.
    pub fn new(client: Client, offsets_index: impl Into<String>) -> Self {
        Admin {
            client,
            offsets_index: offsets_index.into(),
        }
    }

    /// The offsets index it works on.
    pub fn offsets_index(&self) -> &str {
        &self.offsets_index
    }

    /// Every document of `group` (or of every group), refreshed first so the latest commits show.
    async fn docs(&self, group: Option<&str>) -> Result<Vec<Stored>> {
        let oi = &self.offsets_index;
        if !self.client.index_exists(oi).await? {
            return Ok(Vec::new());
        }
        self.client.refresh(oi).await?;
        let query = match group {
            Some(g) => json!({"term": {"group": g}}),
            None => json!({"match_all": {}}),
        };
        let mut out = Vec::new();
        let mut after: Option<Value> = None;
        loop {
            let mut body = json!({"size": 1000, "query": query, "sort": [{"_id": "asc"}], "seq_no_primary_term": true});
            if let Some(a) = &after {
                body["search_after"] = a.clone();
            }
            let resp = self.client.search(oi, &[], body).await?;
            let n = resp.hits.hits.len();
            for h in resp.hits.hits {
                after = h.sort.as_ref().map(|s| Value::from(s.values()));
                let source = match h.source.as_ref().map(|s| s.to_value()) {
                    Some(Ok(v)) => v,
                    Some(Err(e)) => {
                        return Err(Error::CorruptOffset {
                            offsets_index: oi.clone(),
                            id: h.id,
                            reason: format!("not JSON: {e}"),
                        })
                    }
                    None => Value::Null,
                };
                out.push(Stored {
                    doc: StoreDoc::from_value(&source),
                    id: h.id,
                    seq_no: h.seq_no.unwrap_or(0),
                    primary_term: h.primary_term.unwrap_or(1),
                    source,
                });
            }
            if n < 1000 {
                return Ok(out);
            }
        }
    }

    /// Every group with documents in the offsets index, by name.
    pub async fn list(&self) -> Result<Vec<GroupSummary>> {
        let now = now_millis();
        let mut groups: BTreeMap<String, GroupSummary> = BTreeMap::new();
        for d in self.docs(None).await?.iter().filter_map(|d| d.doc.as_ref()) {
            let g = groups
                .entry(d.group.clone())
                .or_insert_with(|| GroupSummary {
                    group: d.group.clone(),
                    mode: None,
                    partitions: 0,
                    members: Vec::new(),
                });
            match d.kind {
                DocKind::Lease | DocKind::Member if d.is_live(now) => {
                    g.members.extend(d.member.clone());
                    g.members.sort();
                }
                DocKind::Offset => {
                    g.partitions += 1;
                    g.mode = d.mode;
                }
                _ => {}
            }
        }
        Ok(groups.into_values().collect())
    }

    /// A group's offsets against the cluster: per partition in exact mode, the cursor in
    /// timestamp mode. [`Error::NoOffsets`] when the offsets index holds nothing of it.
    pub async fn describe(&self, group: &str) -> Result<Description> {
        let docs = self.docs(Some(group)).await?;
        if docs.is_empty() {
            return Err(self.no_offsets(group));
        }
        if docs.iter().any(Stored::is_timestamp_partition) {
            return self.describe_timestamp_shards(group, &docs).await;
        }
        if let Some(d) = docs
            .iter()
            .find(|d| d.is_offset() && d.mode() == Some(Mode::Timestamp))
        {
            let member = live_members(&docs).into_iter().next();
            return self.describe_timestamp(group, d, member).await;
        }
        let (members, owners) = members_and_owners(&docs);
        let mut partitions = Vec::new();
        let mut stats: BTreeMap<String, Vec<IndexShards>> = BTreeMap::new();
        for d in docs.iter().filter(|d| d.is_offset()) {
            let mode = d.mode().unwrap_or(Mode::Exact);
            let stored = parse_offset_doc(&self.offsets_index, &d.id, &d.source, mode)?;
            let p = &stored.partition;
            if !stats.contains_key(&p.index) {
                let s = self.client.shard_stats(&p.index).await.unwrap_or_default();
                stats.insert(p.index.clone(), s);
            }
            let current = stats[&p.index]
                .iter()
                .find(|i| i.uuid == p.uuid)
                .and_then(|i| i.shards.iter().find(|s| s.shard == p.shard));
            // Behind: up to the checkpoint, less what the committed ranges above the offset
            // already delivered.
            let delivered_below = |cp: i64| -> i64 {
                stored
                    .delivered
                    .iter()
                    .filter(|(a, _)| *a <= cp)
                    .map(|(a, b)| (*b).min(cp) - a + 1)
                    .sum()
            };
            let checkpoint = current.map(|s| s.global_checkpoint);
            let owner = owners.get(p);
            partitions.push(PartitionLag {
                partition: p.clone(),
                committed: stored.seq_no,
                checkpoint,
                lag: checkpoint.map(|cp| (cp - stored.seq_no - delivered_below(cp)).max(0)),
                owner: owner.map(|(m, _)| m.clone()),
                epoch: owner
                    .map(|(_, e)| *e)
                    .or_else(|| d.doc.as_ref().and_then(|d| d.epoch)),
            });
        }
        Ok(Description::Exact {
            group: group.to_string(),
            members,
            partitions,
        })
    }

    async fn describe_timestamp_shards(&self, group: &str, docs: &[Stored]) -> Result<Description> {
        let (members, owners) = members_and_owners(docs);
        let mut partitions = Vec::new();
        for d in docs.iter().filter(|d| d.is_timestamp_partition()) {
            let offset = self.stored_timestamp_offset(d)?;
            let Some(sd) = d.doc.as_ref() else { continue };
            let p = PartitionId {
                index: sd.index.clone().unwrap_or_default(),
                uuid: sd.index_uuid.clone().unwrap_or_default(),
                shard: sd.shard.unwrap_or_default(),
            };
            let mut filter = vec![json!({"exists": {"field": offset.field}})];
            if let Some(from) = offset.cursor_ns.or(offset.floor_ns) {
                filter.push(json!({"range": {offset.field.clone(): {"gt": iso_nanos(from)}}}));
            }
            let pref = [("preference", format!("_shards:{}", p.shard))];
            let newer = self
                .client
                .count_with(&p.index, &pref, json!({"bool": {"filter": filter}}))
                .await
                .ok();
            let owner = owners.get(&p);
            partitions.push(TimestampPartitionLag {
                timestamp_field: offset.field,
                cursor_ns: offset.cursor_ns,
                floor_ns: offset.floor_ns,
                newer,
                owner: owner.map(|(m, _)| m.clone()),
                epoch: owner.map(|(_, e)| *e).or(sd.epoch),
                partition: p,
            });
        }
        partitions.sort_by(|a, b| a.partition.cmp(&b.partition));
        Ok(Description::TimestampShards {
            group: group.to_string(),
            members,
            partitions,
        })
    }

    async fn describe_timestamp(
        &self,
        group: &str,
        doc: &Stored,
        member: Option<String>,
    ) -> Result<Description> {
        let offset = self.stored_timestamp_offset(doc)?;
        let index = doc
            .doc
            .as_ref()
            .and_then(|d| d.index.clone())
            .unwrap_or_default();
        let mut filter = vec![json!({"exists": {"field": offset.field}})];
        if let Some(from) = offset.cursor_ns.or(offset.floor_ns) {
            filter.push(json!({"range": {offset.field.clone(): {"gt": iso_nanos(from)}}}));
        }
        let newer = self
            .client
            .count(&index, json!({"bool": {"filter": filter}}))
            .await
            .ok();
        Ok(Description::Timestamp(TimestampDescription {
            group: group.to_string(),
            member,
            index,
            window_keys: doc.source["cursor"]["window_keys"].as_u64().unwrap_or(0),
            timestamp_field: offset.field,
            tiebreaker_field: offset.tiebreaker,
            cursor_ns: offset.cursor_ns,
            floor_ns: offset.floor_ns,
            newer,
        }))
    }

    /// Moves a group's offsets. Refused with [`Error::GroupRunning`] while a member holds it;
    /// every offset is written conditionally, so a consumer starting meanwhile makes the reset
    /// fail ([`Error::ResetConflict`]) rather than be overwritten.
    pub async fn reset(&self, group: &str, reset: &Reset) -> Result<ResetDone> {
        let docs = self.docs(Some(group)).await?;
        refuse_if_running(group, &docs)?;
        if docs.iter().any(Stored::is_timestamp_partition) {
            return self.reset_timestamp_shards(group, &docs, reset).await;
        }
        let ts_doc = docs
            .iter()
            .find(|d| d.is_offset() && d.mode() == Some(Mode::Timestamp));
        if ts_doc.is_some()
            || (reset.new_group_mode == Mode::Timestamp && !docs.iter().any(Stored::is_offset))
        {
            return self.reset_timestamp(group, ts_doc, reset).await;
        }
        self.reset_exact(group, docs, reset).await
    }

    async fn reset_exact(
        &self,
        group: &str,
        docs: Vec<Stored>,
        reset: &Reset,
    ) -> Result<ResetDone> {
        let oi = &self.offsets_index;
        let mut existing: BTreeMap<String, Stored> = BTreeMap::new();
        let mut expressions: Vec<String> = reset.index.iter().cloned().collect();
        for d in docs.into_iter().filter(Stored::is_offset) {
            let p = parse_offset_doc(oi, &d.id, &d.source, Mode::Exact)?.partition;
            if !expressions.contains(&p.index) {
                expressions.push(p.index.clone());
            }
            existing.insert(d.id.clone(), d);
        }
        if expressions.is_empty() {
            return Err(self.no_offsets(group));
        }
        let mut body = String::new();
        let mut set = Vec::new();
        for expr in &expressions {
            let stats = match self.client.shard_stats(expr).await {
                Ok(s) => s,
                Err(e) if e.status() == Some(404) => continue,
                Err(e) => return Err(e.into()),
            };
            for idx in stats {
                for s in &idx.shards {
                    let p = PartitionId {
                        index: idx.index.clone(),
                        uuid: idx.uuid.clone(),
                        shard: s.shard,
                    };
                    let seq = match reset.to {
                        ResetTo::Earliest => -1,
                        ResetTo::Latest => s.global_checkpoint,
                        ResetTo::Time { epoch_ms } => self
                            .first_seq_no_at(&p, &reset.timestamp_field, epoch_ms)
                            .await?
                            .map(|first| first - 1)
                            .unwrap_or(s.global_checkpoint),
                    };
                    let id = p.offset_doc_id(group);
                    let action = match existing.get(&id) {
                        Some(d) => d.replace_action(oi),
                        None => json!({"create": {"_index": oi, "_id": id}}),
                    };
                    let doc = offset_doc(group, Mode::Exact, &p, seq, &[], ADMIN_MEMBER, None);
                    body.push_str(&format!("{action}\n{doc}\n"));
                    set.push((p, seq));
                }
            }
        }
        if !set.is_empty() {
            self.write(group, body).await?;
        }
        Ok(ResetDone::Exact(set))
    }

    /// The `_seq_no` of the partition's first document at or after `epoch_ms`.
    async fn first_seq_no_at(
        &self,
        p: &PartitionId,
        field: &str,
        epoch_ms: i64,
    ) -> Result<Option<i64>> {
        let q = json!({"size": 1, "sort": [{"_seq_no": "asc"}], "seq_no_primary_term": true, "track_total_hits": false, "_source": false, "query": {"range": {field: {"gte": epoch_ms, "format": "epoch_millis"}}}});
        let preference = format!("_shards:{}|_primary", p.shard);
        let resp = self
            .client
            .search(&p.index, &[("preference", preference)], q)
            .await?;
        Ok(resp.hits.hits.first().and_then(|h| h.seq_no))
    }

    /// Earliest clears the cursor; latest and a time set the floor (nothing at or before it is
    /// read) and empty the window.
    async fn reset_timestamp(
        &self,
        group: &str,
        existing: Option<&Stored>,
        reset: &Reset,
    ) -> Result<ResetDone> {
        let old = existing
            .map(|d| self.stored_timestamp_offset(d))
            .transpose()?;
        let expr = reset
            .index
            .clone()
            .or_else(|| existing.and_then(|d| d.doc.as_ref()?.index.clone()))
            .ok_or_else(|| self.no_offsets(group))?;
        let (field, tiebreaker) = match &old {
            Some(o) => (o.field.clone(), o.tiebreaker.clone()),
            None => (reset.timestamp_field.clone(), "_id".to_string()),
        };
        let mut offset = TimestampOffset::new(&field, &tiebreaker);
        offset.floor_ns = match reset.to {
            ResetTo::Earliest => None,
            ResetTo::Time { epoch_ms } => Some(epoch_ms.saturating_mul(1_000_000) - 1),
            ResetTo::Latest => self.newest_of(&expr, &field).await?,
        };
        let oi = &self.offsets_index;
        let id = crate::offset::OffsetStore::timestamp_doc_id(group);
        let action = match existing {
            Some(d) => d.replace_action(oi),
            None => json!({"create": {"_index": oi, "_id": id}}),
        };
        let doc =
            StoreDoc::timestamp_offset(group, &expr, offset.to_json(), ADMIN_MEMBER).to_value();
        self.write(group, format!("{action}\n{doc}\n")).await?;
        Ok(ResetDone::Timestamp {
            index: expr,
            floor_ns: offset.floor_ns,
        })
    }

    /// Resets every partition of a timestamp-mode group read by shard that has an offset: its
    /// window emptied, its floor at `reset.to` (for `latest`, the newest timestamp of its
    /// index). Partitions without an offset start by the consumer's `--start`.
    async fn reset_timestamp_shards(
        &self,
        group: &str,
        docs: &[Stored],
        reset: &Reset,
    ) -> Result<ResetDone> {
        let oi = &self.offsets_index;
        let mut body = String::new();
        let mut indices = std::collections::BTreeSet::new();
        let mut floors = Vec::new();
        let mut newest: BTreeMap<String, Option<i64>> = BTreeMap::new();
        for d in docs.iter().filter(|d| d.is_timestamp_partition()) {
            let old = self.stored_timestamp_offset(d)?;
            let Some(sd) = d.doc.clone() else { continue };
            let index = sd.index.clone().unwrap_or_default();
            let mut offset = TimestampOffset::new(&old.field, &old.tiebreaker);
            offset.floor_ns = match reset.to {
                ResetTo::Earliest => None,
                ResetTo::Time { epoch_ms } => Some(epoch_ms.saturating_mul(1_000_000) - 1),
                ResetTo::Latest => match newest.get(&index) {
                    Some(n) => *n,
                    None => {
                        let n = self.newest_of(&index, &old.field).await?;
                        newest.insert(index.clone(), n);
                        n
                    }
                },
            };
            floors.push(offset.floor_ns);
            let doc = StoreDoc {
                cursor: Some(offset.to_json()),
                member: Some(ADMIN_MEMBER.to_string()),
                updated_at: Some(crate::date::now_iso()),
                ..sd
            };
            body.push_str(&format!("{}\n{}\n", d.replace_action(oi), doc.to_value()));
            indices.insert(index);
        }
        self.write(group, body).await?;
        Ok(ResetDone::Timestamp {
            index: indices.into_iter().collect::<Vec<_>>().join(","),
            floor_ns: floors.into_iter().flatten().min(),
        })
    }

    /// The newest timestamp in `index` by `field` (nanoseconds), `None` when it holds none.
    async fn newest_of(&self, index: &str, field: &str) -> Result<Option<i64>> {
        let types = self.client.field_types(index, field).await?;
        let unit = types
            .iter()
            .find_map(|(_, t)| t.as_deref().and_then(TimeUnit::of_field_type))
            .unwrap_or(TimeUnit::Millis);
        let exists = vec![json!({"exists": {"field": field}})];
        Ok(newest_timestamp(&self.client, index, field, exists, unit).await?)
    }

    /// Deletes every document of a group (offsets, window parts, lease, members and claims);
    /// returns how many.
    /// Each is deleted only if unchanged since it was read.
    pub async fn delete(&self, group: &str, when_held: WhenHeld) -> Result<usize> {
        let docs = self.docs(Some(group)).await?;
        if when_held == WhenHeld::Refuse {
            refuse_if_running(group, &docs)?;
        }
        for d in &docs {
            let cas = Cas::Match {
                seq_no: d.seq_no,
                primary_term: d.primary_term,
            };
            self.client
                .delete_doc(&self.offsets_index, &d.id, cas)
                .await?;
        }
        Ok(docs.len())
    }

    /// Writes the bulk `body`, creating the offsets index first if need be.
    async fn write(&self, group: &str, body: String) -> Result<()> {
        let oi = &self.offsets_index;
        if !self.client.index_exists(oi).await? {
            self.client.create_index(oi, &offsets_index_body()).await?;
        }
        let resp = self.client.bulk(body, true).await?;
        if resp.errors {
            return Err(Error::ResetConflict {
                group: group.to_string(),
                reason: resp
                    .first_error()
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
            });
        }
        Ok(())
    }

    /// A timestamp-mode offset document's cursor (its window left empty when the window is
    /// kept in parts); a corrupt one is an error, never reset.
    fn stored_timestamp_offset(&self, doc: &Stored) -> Result<TimestampOffset> {
        TimestampOffset::from_json(&doc.source["cursor"])
            .map(|(offset, _parts)| offset)
            .map_err(|reason| Error::CorruptOffset {
                offsets_index: self.offsets_index.clone(),
                id: doc.id.clone(),
                reason,
            })
    }

    fn no_offsets(&self, group: &str) -> Error {
        Error::NoOffsets {
            group: group.to_string(),
            offsets_index: self.offsets_index.clone(),
        }
    }
}
