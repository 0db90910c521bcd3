//! Committed offsets, stored in the cluster: one document per (group, partition) in the offsets
//! index (default `indexstream-offsets`), written with `if_seq_no`/`if_primary_term` so that a
//! stale member can never overwrite a newer commit, all partitions of one commit in one `_bulk`.
//!
//! A commit means: every document of the partition up to and including the committed
//! `_seq_no` has been acknowledged by the sink. After a restart the consumer delivers what comes
//! after it, so it repeats at most what was delivered after the last commit.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::client::{Client, ClientError};
use crate::consumer::TimestampPartitions;
use crate::error::{Error, Result};
use crate::partition::PartitionId;
use crate::source::timestamp::{TimestampOffset, WindowParts};

/// The offsets index when none is configured.
pub const DEFAULT_OFFSETS_INDEX: &str = "indexstream-offsets";

mod doc;

pub use doc::{offsets_index_body, offsets_mapping_additions, DocKind, StoreDoc};

/// How a group reads its partitions; recorded in every offset document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Shards and `_seq_no`, up to the global checkpoint (the default).
    Exact,
    /// A `(timestamp, tiebreaker)` cursor with a safety window.
    Timestamp,
}

impl Mode {
    /// Its name as offset documents and `--mode` spell it (`exact`, `timestamp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Exact => "exact",
            Mode::Timestamp => "timestamp",
        }
    }

    /// The mode of a name as [`Mode::as_str`] spells it; `None` for any other text.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "exact" => Some(Mode::Exact),
            "timestamp" => Some(Mode::Timestamp),
            _ => None,
        }
    }
}

/// A committed exact-mode offset as stored: every operation up to `seq_no` was delivered, and
/// so were the `_seq_no` ranges in `delivered` above it (what was delivered before the
/// checkpoint covering it was confirmed: a restart skips those, so it repeats nothing the
/// commit covered, and reads whatever lies between them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOffset {
    pub partition: PartitionId,
    pub seq_no: i64,
    /// Inclusive `(start, end)` ranges above `seq_no`, in order, disjoint.
    pub delivered: Vec<(i64, i64)>,
}

/// The most `delivered` ranges one offset document holds; past it the highest are left out
/// (what they cover is delivered again after a restart, never skipped).
pub const MAX_DELIVERED_RANGES: usize = 1000;

/// Parses and validates an offset document; a corrupt one or one of the other mode is an error.
pub fn parse_offset_doc(
    offsets_index: &str,
    id: &str,
    doc: &Value,
    expected: Mode,
) -> Result<StoredOffset> {
    let corrupt = |reason: &str| Error::CorruptOffset {
        offsets_index: offsets_index.to_string(),
        id: id.to_string(),
        reason: reason.to_string(),
    };
    let mode = doc["mode"].as_str().ok_or_else(|| corrupt("no mode"))?;
    let mode = Mode::parse(mode).ok_or_else(|| corrupt(&format!("unknown mode {mode:?}")))?;
    if mode != expected {
        return Err(Error::ModeMismatch {
            id: id.to_string(),
            found: mode.as_str().into(),
            expected: expected.as_str().into(),
        });
    }
    let index = doc["index"].as_str().ok_or_else(|| corrupt("no index"))?;
    let uuid = doc["index_uuid"]
        .as_str()
        .ok_or_else(|| corrupt("no index_uuid"))?;
    let shard = doc["shard"].as_u64().ok_or_else(|| corrupt("no shard"))?;
    let seq_no = doc["seq_no"].as_i64().ok_or_else(|| corrupt("no seq_no"))?;
    if seq_no < -1 {
        return Err(corrupt(&format!("seq_no {seq_no} is below -1")));
    }
    let mut delivered = Vec::new();
    match &doc["delivered"] {
        Value::Null => {}
        Value::Array(items) => {
            let mut above = seq_no;
            for item in items {
                let pair = item.as_array().filter(|a| a.len() == 2);
                let (Some(a), Some(b)) = (
                    pair.and_then(|p| p[0].as_i64()),
                    pair.and_then(|p| p[1].as_i64()),
                ) else {
                    return Err(corrupt(&format!(
                        "delivered range {item} is not [start, end]"
                    )));
                };
                if a <= above || b < a {
                    return Err(corrupt(&format!(
                        "delivered range [{a}, {b}] is out of order or not above seq_no {seq_no}"
                    )));
                }
                delivered.push((a, b));
                above = b;
            }
        }
        other => {
            return Err(corrupt(&format!(
                "delivered is not a list of ranges: {other}"
            )))
        }
    }
    Ok(StoredOffset {
        partition: PartitionId {
            index: index.into(),
            uuid: uuid.into(),
            shard: shard as u32,
        },
        seq_no,
        delivered,
    })
}

/// An exact-mode offset document: `seq_no`, and the ranges delivered above it (at most
/// [`MAX_DELIVERED_RANGES`], the lowest), written by `member` owning the partition in `epoch`
/// (`None`: an admin's write).
pub fn offset_doc(
    group: &str,
    mode: Mode,
    p: &PartitionId,
    seq_no: i64,
    delivered: &[(i64, i64)],
    member: &str,
    epoch: Option<u64>,
) -> Value {
    StoreDoc {
        mode: Some(mode),
        index: Some(p.index.clone()),
        index_uuid: Some(p.uuid.clone()),
        shard: Some(p.shard),
        seq_no: Some(seq_no),
        delivered: (!delivered.is_empty()).then(|| {
            json!(delivered
                .iter()
                .take(MAX_DELIVERED_RANGES)
                .collect::<Vec<_>>())
        }),
        epoch,
        ..StoreDoc::new(group, DocKind::Offset, member)
    }
    .to_value()
}

/// One partition's part of [`OffsetStore::commit_timestamp_partitions`].
#[derive(Debug)]
pub struct TimestampPartitionCommit {
    pub partition: PartitionId,
    /// [`TimestampOffset::head_json`].
    pub head: Value,
    /// The window part's unique name, and the part.
    pub part_name: String,
    pub part: Value,
}

/// The offsets of one group, with the versions needed to write them conditionally.
#[derive(Debug)]
pub struct OffsetStore {
    client: Client,
    index: String,
    group: String,
    member: String,
    /// `(seq_no, primary_term)` of each offset document as last read or written by us.
    versions: HashMap<String, (i64, i64)>,
    /// The ownership epoch of each partition we own (by offset document id; see
    /// [`OffsetStore::fence`]).
    epochs: HashMap<String, u64>,
}

/// What [`OffsetStore::fence`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fence {
    /// The partition's offset document now carries our epoch (or there is none yet): a member
    /// of an older epoch can no longer write it.
    Ours,
    /// It carries a newer epoch than ours: another member claimed the partition after us.
    Newer(u64),
}

impl OffsetStore {
    pub fn new(client: Client, index: &str, group: &str, member: &str) -> Self {
        OffsetStore {
            client,
            index: index.to_string(),
            group: group.to_string(),
            member: member.to_string(),
            versions: HashMap::new(),
            epochs: HashMap::new(),
        }
    }

    /// The epoch stored in a partition's offset document (0 when it has none, or no document).
    pub async fn stored_epoch(&self, p: &PartitionId) -> Result<u64> {
        let id = p.offset_doc_id(&self.group);
        Ok(self
            .client
            .get_doc(&self.index, &id)
            .await?
            .and_then(|d| d.source["epoch"].as_u64())
            .unwrap_or(0))
    }

    /// Takes a partition's offset document over for `epoch`, the epoch of our new claim on it:
    /// rewrites it, offsets unchanged, with our epoch, conditionally on its version, so that a
    /// commit by the previous owner (a paused or cut-off member still holding the old version)
    /// is refused by the cluster from now on. Commits of the partition then carry the epoch.
    pub async fn fence(&mut self, p: &PartitionId, epoch: u64) -> Result<Fence> {
        let id = p.offset_doc_id(&self.group);
        for _ in 0..5 {
            let Some(current) = self.client.get_doc(&self.index, &id).await? else {
                // Nothing committed yet: our first commit creates it; one of an older epoch
                // that gets there first is overwritten (see `write_docs`).
                self.versions.remove(&id);
                self.epochs.insert(id, epoch);
                return Ok(Fence::Ours);
            };
            let stored = current.source["epoch"].as_u64().unwrap_or(0);
            if stored > epoch {
                return Ok(Fence::Newer(stored));
            }
            let mut doc = current.source.clone();
            doc["epoch"] = epoch.into();
            doc["member"] = self.member.clone().into();
            let cas = crate::client::types::Cas::Match {
                seq_no: current.seq_no,
                primary_term: current.primary_term,
            };
            match self
                .client
                .put_doc(&self.index, &id, &doc, cas, false)
                .await
            {
                Ok(w) => {
                    self.versions.insert(id.clone(), (w.seq_no, w.primary_term));
                    self.epochs.insert(id, epoch);
                    return Ok(Fence::Ours);
                }
                // The old owner committed between our read and our write: read again.
                Err(ClientError::Status { status: 409, .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Fenced {
            group: self.group.clone(),
            detail: format!("offset document {id} kept changing while it was taken over"),
        })
    }

    /// Forgets a partition we no longer own (released or lost).
    pub fn forget(&mut self, p: &PartitionId) {
        let id = p.offset_doc_id(&self.group);
        self.versions.remove(&id);
        self.epochs.remove(&id);
    }

    /// Creates the offsets index with its mapping when it does not exist yet, and adds the
    /// fields of newer versions to the mapping of one that does.
    pub async fn ensure_index(&self) -> Result<()> {
        let created = !self.client.index_exists(&self.index).await?
            && self
                .client
                .create_index(&self.index, &offsets_index_body())
                .await?;
        if !created {
            self.client
                .put_mapping(&self.index, &offsets_mapping_additions())
                .await?;
        }
        Ok(())
    }

    /// Reads the committed offsets of `partitions` (realtime, so a commit just made is seen).
    pub async fn load(
        &mut self,
        partitions: &[PartitionId],
        mode: Mode,
    ) -> Result<HashMap<PartitionId, StoredOffset>> {
        let ids: Vec<String> = partitions
            .iter()
            .map(|p| p.offset_doc_id(&self.group))
            .collect();
        let docs = self.client.mget(&self.index, &ids).await?;
        let mut out = HashMap::new();
        for ((p, id), doc) in partitions.iter().zip(&ids).zip(docs) {
            if let Some(doc) = doc {
                let stored = parse_offset_doc(&self.index, id, &doc.source, mode)?;
                if stored.partition.uuid != p.uuid || stored.partition.shard != p.shard {
                    return Err(Error::CorruptOffset {
                        offsets_index: self.index.clone(),
                        id: id.clone(),
                        reason: "its index_uuid or shard does not match its id".into(),
                    });
                }
                self.versions
                    .insert(id.clone(), (doc.seq_no, doc.primary_term));
                out.insert(p.clone(), stored);
            }
        }
        Ok(out)
    }

    /// Commits offsets in one `_bulk`, each conditional on the version we last saw, and
    /// returns the partitions whose commit the cluster refused: a member of a newer ownership
    /// epoch took them over (we are fenced from them; the others are committed).
    pub async fn commit(
        &mut self,
        mode: Mode,
        entries: &[StoredOffset],
    ) -> Result<Vec<PartitionId>> {
        let docs = entries
            .iter()
            .map(|e| {
                let id = e.partition.offset_doc_id(&self.group);
                let epoch = self.epochs.get(&id).copied();
                (
                    id,
                    offset_doc(
                        &self.group,
                        mode,
                        &e.partition,
                        e.seq_no,
                        &e.delivered,
                        &self.member,
                        epoch,
                    ),
                )
            })
            .collect();
        let refused = self.write_docs(docs).await?;
        Ok(entries
            .iter()
            .filter(|e| refused.contains(&e.partition.offset_doc_id(&self.group)))
            .map(|e| e.partition.clone())
            .collect())
    }

    /// The id of a timestamp-mode group's one offset document.
    pub fn timestamp_doc_id(group: &str) -> String {
        format!("{group}|timestamp")
    }

    /// The id of a stored part of a timestamp-mode group's window (format 2).
    pub fn window_part_id(group: &str, name: &str) -> String {
        format!("{group}|timestamp|{name}")
    }

    /// Reads a timestamp-mode group's offset (realtime), its window folded together from its
    /// parts (format 2) or read from the offset itself (format 1), and where the parts are.
    /// `target` is the index expression it reads; an offset written for another expression or
    /// field is reported, never reset.
    pub async fn load_timestamp(
        &mut self,
        target: &str,
    ) -> Result<Option<(TimestampOffset, Option<WindowParts>)>> {
        let id = Self::timestamp_doc_id(&self.group);
        self.load_timestamp_doc(id, target, None).await
    }

    /// Reads the timestamp offset of one partition (timestamp partitions by shard), like
    /// [`OffsetStore::load_timestamp`]; its document is the partition's offset document.
    pub async fn load_timestamp_partition(
        &mut self,
        p: &PartitionId,
    ) -> Result<Option<(TimestampOffset, Option<WindowParts>)>> {
        let id = p.offset_doc_id(&self.group);
        self.load_timestamp_doc(id, &p.index, Some(p)).await
    }

    async fn load_timestamp_doc(
        &mut self,
        id: String,
        target: &str,
        partition: Option<&PartitionId>,
    ) -> Result<Option<(TimestampOffset, Option<WindowParts>)>> {
        let docs = self
            .client
            .mget(&self.index, std::slice::from_ref(&id))
            .await?;
        let Some(doc) = docs.into_iter().next().flatten() else {
            return Ok(None);
        };
        let corrupt = |id: &str, reason: String| Error::CorruptOffset {
            offsets_index: self.index.clone(),
            id: id.to_string(),
            reason,
        };
        let mode = doc.source["mode"].as_str().unwrap_or_default();
        if mode != Mode::Timestamp.as_str() {
            return Err(Error::ModeMismatch {
                id: id.clone(),
                found: mode.to_string(),
                expected: Mode::Timestamp.as_str().into(),
            });
        }
        let (mut stored, parts) =
            TimestampOffset::from_json(&doc.source["cursor"]).map_err(|r| corrupt(&id, r))?;
        if let Some(parts) = &parts {
            let ids: Vec<String> = parts
                .names()
                .iter()
                .map(|n| Self::window_part_id(&self.group, n))
                .collect();
            let found = self.client.mget(&self.index, &ids).await?;
            for (part_id, part) in ids.iter().zip(found) {
                let part = part.ok_or_else(|| {
                    corrupt(part_id, "a part of the window it names is missing".into())
                })?;
                stored
                    .merge_part(&part.source["cursor"])
                    .map_err(|r| corrupt(part_id, r))?;
            }
        }
        if let Some(p) = partition {
            if doc.source["index_uuid"].as_str() != Some(p.uuid.as_str())
                || doc.source["shard"].as_u64() != Some(u64::from(p.shard))
            {
                return Err(corrupt(
                    &id,
                    "its index_uuid or shard does not match its id".into(),
                ));
            }
        } else if doc.source["index"].as_str() != Some(target) {
            tracing::warn!(group = %self.group, stored = %doc.source["index"], target, "the group's offset was written while reading another index expression; continuing from it");
        }
        self.versions.insert(id, (doc.seq_no, doc.primary_term));
        Ok(Some((stored, parts)))
    }

    /// Commits a timestamp-mode group's offset: one part of its window (a new base, or the
    /// keys since the last commit), then the offset naming it, conditionally, in one `_bulk`.
    /// `head` is [`TimestampOffset::head_json`]; the part's name is unique, so it is created.
    pub async fn commit_timestamp(
        &mut self,
        target: &str,
        head: Value,
        part_name: &str,
        part: Value,
    ) -> Result<()> {
        let part_id = Self::window_part_id(&self.group, part_name);
        let part_doc = StoreDoc {
            mode: Some(Mode::Timestamp),
            cursor: Some(part),
            ..StoreDoc::new(&self.group, DocKind::Window, &self.member)
        }
        .to_value();
        let doc = StoreDoc::timestamp_offset(&self.group, target, head, &self.member).to_value();
        let result = self
            .write_docs(vec![
                (part_id.clone(), part_doc),
                (Self::timestamp_doc_id(&self.group), doc),
            ])
            .await;
        // Parts are written once: no version to keep for them.
        self.versions.remove(&part_id);
        match result?.first() {
            None => Ok(()),
            Some(id) => Err(Error::Fenced {
                group: self.group.clone(),
                detail: format!("offset document {id} changed under us"),
            }),
        }
    }

    /// Commits the timestamp offsets of several partitions (timestamp partitions by shard) in
    /// one `_bulk`: each one's window part, then its offset naming it, conditionally and with
    /// our ownership epoch. Returns the partitions whose commit the cluster refused (another
    /// member owns them in a newer epoch); the others are committed.
    pub async fn commit_timestamp_partitions(
        &mut self,
        entries: Vec<TimestampPartitionCommit>,
    ) -> Result<Vec<PartitionId>> {
        let mut docs = Vec::with_capacity(entries.len() * 2);
        let mut part_ids = Vec::with_capacity(entries.len());
        for e in &entries {
            let part_id = Self::window_part_id(&self.group, &e.part_name);
            let part_doc = StoreDoc {
                mode: Some(Mode::Timestamp),
                cursor: Some(e.part.clone()),
                ..StoreDoc::new(&self.group, DocKind::Window, &self.member)
            };
            let id = e.partition.offset_doc_id(&self.group);
            let head = StoreDoc {
                index_uuid: Some(e.partition.uuid.clone()),
                shard: Some(e.partition.shard),
                epoch: self.epochs.get(&id).copied(),
                ..StoreDoc::timestamp_offset(
                    &self.group,
                    &e.partition.index,
                    e.head.clone(),
                    &self.member,
                )
            };
            docs.push((part_id.clone(), part_doc.to_value()));
            docs.push((id, head.to_value()));
            part_ids.push(part_id);
        }
        let result = self.write_docs(docs).await;
        for id in &part_ids {
            self.versions.remove(id);
        }
        let refused = result?;
        Ok(entries
            .into_iter()
            .filter(|e| refused.contains(&e.partition.offset_doc_id(&self.group)))
            .map(|e| e.partition)
            .collect())
    }

    /// Whether the group has timestamp offsets of the other partitioning than `partitions`:
    /// the single offset of [`TimestampPartitions::One`], or offsets by shard. Fails with
    /// [`Error::PartitionsMismatch`], saying how to start over, when it has.
    pub async fn check_partitions(&self, partitions: TimestampPartitions) -> Result<()> {
        let (found, found_flag, expected, cursor) = match partitions {
            TimestampPartitions::Shards => {
                let id = Self::timestamp_doc_id(&self.group);
                let docs = self.client.mget(&self.index, &[id]).await?;
                let Some(doc) = docs.into_iter().next().flatten() else {
                    return Ok(());
                };
                (
                    "for the whole expression as one partition",
                    "one",
                    "by shard",
                    doc.source["cursor"]["cursor"].clone(),
                )
            }
            TimestampPartitions::One => {
                self.client.refresh(&self.index).await?;
                let body = json!({"size": 1000, "track_total_hits": false, "query": {"bool": {"filter": [
                    {"term": {"group": self.group}}, {"term": {"kind": "offset"}},
                    {"term": {"mode": Mode::Timestamp.as_str()}}, {"exists": {"field": "shard"}}
                ]}}});
                let resp = self.client.search(&self.index, &[], body).await?;
                if resp.hits.hits.is_empty() {
                    return Ok(());
                }
                // The oldest partition's cursor: starting there skips nothing any shard had
                // still to deliver (RFC 3339 UTC with nanoseconds sorts as text).
                let oldest = resp
                    .hits
                    .hits
                    .iter()
                    .filter_map(|h| {
                        let v: Value = serde_json::from_str(h.source.as_ref()?.get()).ok()?;
                        v["cursor"]["cursor"].as_str().map(str::to_string)
                    })
                    .min();
                (
                    "by shard",
                    "shards",
                    "the whole expression as one partition",
                    oldest.map(Value::String).unwrap_or(Value::Null),
                )
            }
        };
        let at = match cursor.as_str() {
            Some(c) => format!(" (the oldest cursor stood at {c})"),
            None => String::new(),
        };
        Err(Error::PartitionsMismatch {
            group: self.group.clone(),
            found: found.into(),
            expected: expected.into(),
            found_flag: found_flag.into(),
            how: format!(
                "`indexstream groups delete {}`, then consume with --timestamp-partitions {} and --start set to where it should resume{at}",
                self.group,
                partitions.as_str()
            ),
        })
    }

    /// Deletes parts of a window that a compaction replaced (best effort: a part left behind
    /// is never read, `groups delete` removes it).
    pub async fn delete_window_parts(&self, names: &[String]) {
        if names.is_empty() {
            return;
        }
        let mut body = String::new();
        for n in names {
            body.push_str(
                &json!({"delete": {"_index": self.index, "_id": Self::window_part_id(&self.group, n)}})
                    .to_string(),
            );
            body.push('\n');
        }
        if let Err(e) = self.client.bulk_to(Some(&self.index), body, false).await {
            tracing::debug!(group = %self.group, error = %e, "cannot delete replaced window parts");
        }
    }

    /// Fails with [`Error::ModeMismatch`] when the group has offsets of a mode other than `mode`.
    pub async fn check_mode(&self, mode: Mode) -> Result<()> {
        self.client.refresh(&self.index).await?;
        let body = json!({"size": 1, "_source": ["mode"], "track_total_hits": false, "query": {"bool": {
            "filter": [{"term": {"group": self.group}}, {"term": {"kind": "offset"}}],
            "must_not": [{"term": {"mode": mode.as_str()}}]
        }}});
        let resp = self.client.search(&self.index, &[], body).await?;
        if let Some(hit) = resp.hits.hits.first() {
            let found: Value = hit
                .source
                .as_ref()
                .and_then(|s| serde_json::from_str(s.get()).ok())
                .unwrap_or(Value::Null);
            return Err(Error::ModeMismatch {
                id: hit.id.clone(),
                found: found["mode"].as_str().unwrap_or("unknown").to_string(),
                expected: mode.as_str().into(),
            });
        }
        Ok(())
    }

    /// Writes offset documents in one `_bulk`, each conditional on the version we last saw, and
    /// returns the ids the cluster refused because another member wrote them. A version
    /// conflict is not a refusal when the document now holds exactly what we wrote (an earlier
    /// attempt of this same commit landed and only its answer was lost: a node died after the
    /// write), nor when it carries an older ownership epoch than ours (its previous owner
    /// committed before our takeover reached it): that one is overwritten.
    async fn write_docs(&mut self, docs: Vec<(String, Value)>) -> Result<Vec<String>> {
        let mut refused = Vec::new();
        let mut docs = docs;
        // Two passes at most: the second overwrites what an older epoch wrote.
        for _ in 0..2 {
            if docs.is_empty() {
                break;
            }
            let conflicts = self.write_once(&docs).await?;
            let mut again = Vec::new();
            if !conflicts.is_empty() {
                let current = self.client.mget(&self.index, &conflicts).await?;
                for (id, doc) in conflicts.iter().zip(current) {
                    let written = docs.iter().find(|(i, _)| i == id).map(|(_, d)| d);
                    let ours = self.epochs.get(id).copied();
                    match doc {
                        Some(doc) if Some(&doc.source) == written => {
                            tracing::debug!(id = %id, "a retried commit met its own earlier attempt");
                            self.versions
                                .insert(id.clone(), (doc.seq_no, doc.primary_term));
                        }
                        Some(doc)
                            if ours
                                .is_some_and(|e| doc.source["epoch"].as_u64().unwrap_or(0) < e) =>
                        {
                            self.versions
                                .insert(id.clone(), (doc.seq_no, doc.primary_term));
                            if let Some(w) = written {
                                again.push((id.clone(), w.clone()));
                            }
                        }
                        None if ours.is_some() => {
                            self.versions.remove(id);
                            if let Some(w) = written {
                                again.push((id.clone(), w.clone()));
                            }
                        }
                        _ => {
                            self.versions.remove(id);
                            refused.push(id.clone());
                        }
                    }
                }
            }
            docs = again;
        }
        // Still conflicting after the overwrite: someone keeps writing it.
        refused.extend(docs.into_iter().map(|(id, _)| id));
        Ok(refused)
    }

    /// One conditional `_bulk` of `docs`; returns the ids that met a version conflict.
    async fn write_once(&mut self, docs: &[(String, Value)]) -> Result<Vec<String>> {
        let mut body = String::new();
        for (id, doc) in docs {
            let meta = match self.versions.get(id) {
                Some((s, t)) => {
                    json!({"index": {"_index": self.index, "_id": id, "if_seq_no": s, "if_primary_term": t}})
                }
                None => json!({"create": {"_index": self.index, "_id": id}}),
            };
            body.push_str(&meta.to_string());
            body.push('\n');
            body.push_str(&doc.to_string());
            body.push('\n');
        }
        let resp = self.client.bulk_to(Some(&self.index), body, false).await?;
        let mut conflicts = Vec::new();
        let mut first_error = None;
        for ((id, _), item) in docs.iter().zip(resp.results()) {
            match (item.status, item.seq_no, item.primary_term) {
                (200 | 201, Some(s), Some(t)) => {
                    self.versions.insert(id.clone(), (s, t));
                }
                (409, _, _) => conflicts.push(id.clone()),
                (status, _, _) => {
                    first_error.get_or_insert(Error::Client(ClientError::Status {
                        op: "commit",
                        status,
                        error_type: item
                            .error
                            .as_ref()
                            .and_then(|e| e["type"].as_str())
                            .unwrap_or_default()
                            .to_string(),
                        reason: item
                            .error
                            .as_ref()
                            .map(|e| e.to_string())
                            .unwrap_or_default(),
                        retry_after: None,
                    }));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(conflicts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_docs_round_trip_and_mismatches_are_errors() {
        let p = PartitionId {
            index: "i".into(),
            uuid: "u".into(),
            shard: 2,
        };
        let doc = offset_doc(
            "g",
            Mode::Exact,
            &p,
            41,
            &[(43, 50), (52, 52)],
            "m",
            Some(2),
        );
        assert_eq!(
            parse_offset_doc("o", "id", &doc, Mode::Exact).unwrap(),
            StoredOffset {
                partition: p.clone(),
                seq_no: 41,
                delivered: vec![(43, 50), (52, 52)],
            }
        );
        let mut old = doc.clone();
        old.as_object_mut().unwrap().remove("delivered");
        assert_eq!(
            parse_offset_doc("o", "id", &old, Mode::Exact)
                .unwrap()
                .delivered,
            vec![],
            "offsets written before delivered ranges existed still load"
        );
        for bad in [
            json!([[40, 45]]),
            json!([[45, 44]]),
            json!([[43, 50], [49, 60]]),
            json!("x"),
        ] {
            let mut broken = doc.clone();
            broken["delivered"] = bad.clone();
            assert!(
                matches!(
                    parse_offset_doc("o", "id", &broken, Mode::Exact),
                    Err(Error::CorruptOffset { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_offset_doc("o", "id", &doc, Mode::Timestamp),
            Err(Error::ModeMismatch { .. })
        ));
        let mut broken = doc.clone();
        broken["seq_no"] = json!("forty");
        assert!(matches!(
            parse_offset_doc("o", "id", &broken, Mode::Exact),
            Err(Error::CorruptOffset { .. })
        ));
    }
}
