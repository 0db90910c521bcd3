//! Typed views of the responses the consumer reads.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;

pub use super::response::SortValues;
use crate::record::Source;

/// A conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cas {
    /// Only if the document does not exist.
    Create,
    /// Only if the document is still at this version.
    Match { seq_no: i64, primary_term: i64 },
}

/// The `_shards` part of a search response: how many shards answered.
#[derive(Debug, Deserialize)]
pub struct ShardsSummary {
    /// Shards the search went to.
    #[serde(default)]
    pub total: u64,
    /// Shards that failed (their documents are missing from the response).
    #[serde(default)]
    pub failed: u64,
    /// Why they failed, as the cluster said.
    #[serde(default)]
    pub failures: Vec<Value>,
}

/// A `_search` response, as [`super::Client::search`] reads it (see `response.rs`).
#[derive(Debug)]
pub struct SearchResponse {
    /// Whether the search timed out on the cluster ([`super::Client::search`] makes that an
    /// error, so it is `false` there).
    pub timed_out: bool,
    /// How many shards the search went to and how many failed (none, after
    /// [`super::Client::search`]).
    pub shards: ShardsSummary,
    /// The response's `hits` object.
    pub hits: Hits,
    /// The point-in-time id the cluster returned, when the search used one.
    pub pit_id: Option<String>,
}

/// The `hits` object of a search response.
#[derive(Debug)]
pub struct Hits {
    /// The `hits.hits` array: the page of hits, in the search's sort order.
    pub hits: Vec<Hit>,
}

/// One search hit; `_source` is a slice of the response text, not parsed.
#[derive(Debug)]
pub struct Hit {
    /// The concrete index it was found in (`_index`).
    pub index: String,
    /// The document's `_id`.
    pub id: String,
    /// Its `_seq_no`; `None` unless the search asked for sequence numbers.
    pub seq_no: Option<i64>,
    /// Its `_primary_term`; `None` unless the search asked for sequence numbers.
    pub primary_term: Option<i64>,
    /// Its `_source`; `None` when the response carries none (disabled or filtered out).
    pub source: Option<Source>,
    /// Its `sort` values; `None` when the search was not sorted.
    pub sort: Option<SortValues>,
}

#[derive(Debug, Deserialize)]
pub struct GetResponse {
    #[serde(rename = "_seq_no")]
    pub seq_no: i64,
    #[serde(rename = "_primary_term")]
    pub primary_term: i64,
    #[serde(rename = "_source")]
    pub source: Value,
}

#[derive(Debug, Deserialize)]
pub(crate) struct MgetResponse {
    pub docs: Vec<MgetDoc>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct MgetDoc {
    #[serde(default)]
    pub found: bool,
    #[serde(rename = "_seq_no", default)]
    pub seq_no: Option<i64>,
    #[serde(rename = "_primary_term", default)]
    pub primary_term: Option<i64>,
    #[serde(rename = "_source", default)]
    pub source: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct WriteResponse {
    #[serde(rename = "_seq_no")]
    pub seq_no: i64,
    #[serde(rename = "_primary_term")]
    pub primary_term: i64,
}

/// A `_bulk` response.
#[derive(Debug, Deserialize)]
pub struct BulkResponse {
    /// Whether any item failed; the request itself succeeded either way.
    pub errors: bool,
    /// One map per action in request order, keyed by the action (`index`, `create`, `delete`,
    /// ...); [`BulkResponse::results`] reads them.
    pub items: Vec<BTreeMap<String, BulkItem>>,
}

/// The result of one action of a `_bulk` request.
#[derive(Debug, Deserialize)]
pub struct BulkItem {
    /// The document's `_id`, when the response names it.
    #[serde(rename = "_id", default)]
    pub id: Option<String>,
    /// The HTTP status of this action (409 for a version conflict).
    pub status: u16,
    /// The `_seq_no` the write was given; `None` when it failed.
    #[serde(rename = "_seq_no", default)]
    pub seq_no: Option<i64>,
    /// The `_primary_term` the write was given; `None` when it failed.
    #[serde(rename = "_primary_term", default)]
    pub primary_term: Option<i64>,
    /// The error object of a failed action (`type`, `reason`, ...); `None` when it succeeded.
    #[serde(default)]
    pub error: Option<Value>,
}

impl BulkResponse {
    /// The per-item results in request order (each item has one action key).
    pub fn results(&self) -> impl Iterator<Item = &BulkItem> {
        self.items.iter().filter_map(|m| m.values().next())
    }

    /// The error of the first failed item, if any.
    pub fn first_error(&self) -> Option<&Value> {
        self.results().find_map(|i| i.error.as_ref())
    }
}

/// One primary shard of one concrete index, as `_stats?level=shards` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardStat {
    pub shard: u32,
    pub global_checkpoint: i64,
    pub max_seq_no: i64,
    pub external_refresh_total: u64,
    pub node: String,
    pub docs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexShards {
    pub index: String,
    pub uuid: String,
    pub shards: Vec<ShardStat>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct StatsResponse {
    #[serde(default)]
    indices: BTreeMap<String, StatsIndex>,
}

#[derive(Debug, Deserialize)]
struct StatsIndex {
    #[serde(default)]
    uuid: String,
    #[serde(default)]
    shards: BTreeMap<String, Vec<StatsCopy>>,
}

#[derive(Debug, Deserialize)]
struct StatsCopy {
    routing: StatsRouting,
    #[serde(default)]
    seq_no: Option<StatsSeqNo>,
    #[serde(default)]
    refresh: Option<StatsRefresh>,
    #[serde(default)]
    docs: Option<StatsDocs>,
}

#[derive(Debug, Deserialize)]
struct StatsRouting {
    primary: bool,
    #[serde(default)]
    node: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StatsSeqNo {
    max_seq_no: i64,
    global_checkpoint: i64,
}

#[derive(Debug, Deserialize)]
struct StatsRefresh {
    #[serde(default)]
    external_total: u64,
}

#[derive(Debug, Deserialize)]
struct StatsDocs {
    #[serde(default)]
    count: u64,
}

impl StatsResponse {
    pub(crate) fn into_index_shards(self) -> Vec<IndexShards> {
        let mut out = Vec::new();
        for (name, idx) in self.indices {
            let mut shards = Vec::new();
            for (num, copies) in idx.shards {
                let Ok(shard) = num.parse::<u32>() else {
                    continue;
                };
                // Only the primary copy's checkpoint and refresh counter are meaningful here.
                let Some(primary) = copies.into_iter().find(|c| c.routing.primary) else {
                    continue;
                };
                let Some(seq) = primary.seq_no else { continue };
                shards.push(ShardStat {
                    shard,
                    global_checkpoint: seq.global_checkpoint,
                    max_seq_no: seq.max_seq_no,
                    external_refresh_total: primary.refresh.map(|r| r.external_total).unwrap_or(0),
                    node: primary.routing.node.unwrap_or_default(),
                    docs: primary.docs.map(|d| d.count).unwrap_or(0),
                });
            }
            shards.sort_by_key(|s| s.shard);
            out.push(IndexShards {
                index: name,
                uuid: idx.uuid,
                shards,
            });
        }
        out
    }
}

impl fmt::Display for ShardStat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shard {} (checkpoint {}, max seq_no {})",
            self.shard, self.global_checkpoint, self.max_seq_no
        )
    }
}
