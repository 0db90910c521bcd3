//! `_search` and `_count`: request parsing, per-shard execution over one refresh generation,
//! sorting, `search_after`, and the response body.
//!
//! A sorted page does not scan the shard when it can avoid it: when the first sort clause is
//! `_seq_no`, `_doc` or a single-valued field, the shard walks its ordered index from the
//! `search_after` position (clamped by any range the query puts on that key) and stops as soon
//! as the page is full and the next document no longer ties with the last one.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::engine::date::{DateFormat, Rounding, Timestamp};
use crate::engine::index::{parse_time_value, Index};
use crate::engine::mapping::{FieldId, FieldType, Mappings};
use crate::engine::routing::murmur3_32;
use crate::engine::shard::{DocId, Gen, Shard, StoredDoc};
use crate::engine::sortkey::SortKey;
use crate::error::{ApiError, ApiResult};
use crate::query::{field_key, Compiled, Context, Query};

#[derive(Debug, Clone, PartialEq)]
pub enum SortTarget {
    Score,
    Doc,
    SeqNo,
    Id,
    Index,
    Field(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Missing {
    Last,
    First,
    Value(Value),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SortSpec {
    pub target: SortTarget,
    pub desc: bool,
    pub missing: Missing,
    pub unmapped_type: Option<FieldType>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TrackTotal {
    Off,
    UpTo(u64),
    Exact,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceFilter {
    pub disabled: bool,
    pub includes: Vec<String>,
    pub excludes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PitRef {
    pub id: String,
    pub keep_alive: Option<Duration>,
}

/// A parsed search request.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    pub query: Query,
    pub post_filter: Option<Query>,
    pub size: usize,
    pub from: usize,
    pub sort: Vec<SortSpec>,
    pub search_after: Option<Vec<Value>>,
    pub source: SourceFilter,
    pub seq_no_primary_term: bool,
    pub version: bool,
    pub track_total_hits: TrackTotal,
    pub track_scores: bool,
    pub pit: Option<PitRef>,
    pub slice: Option<(u32, u32)>,
    pub min_score: Option<f32>,
}

impl Default for SearchRequest {
    fn default() -> Self {
        SearchRequest {
            query: Query::MatchAll,
            post_filter: None,
            size: 10,
            from: 0,
            sort: Vec::new(),
            search_after: None,
            source: SourceFilter::default(),
            seq_no_primary_term: false,
            version: false,
            track_total_hits: TrackTotal::UpTo(10_000),
            track_scores: false,
            pit: None,
            slice: None,
            min_score: None,
        }
    }
}

fn token_name(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "START_OBJECT",
        Value::Array(_) => "START_ARRAY",
        Value::String(_) => "VALUE_STRING",
        Value::Number(_) => "VALUE_NUMBER",
        Value::Bool(_) => "VALUE_BOOLEAN",
        Value::Null => "VALUE_NULL",
    }
}

fn as_usize(key: &str, v: &Value) -> ApiResult<usize> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    match n {
        Some(n) if n >= 0 => Ok(n as usize),
        Some(n) => Err(ApiError::illegal_argument(format!(
            "[{key}] parameter cannot be negative, found [{n}]"
        ))),
        None => Err(ApiError::parsing(format!(
            "[{key}] failed to parse field [{key}]"
        ))),
    }
}

fn parse_bool(key: &str, v: &Value) -> ApiResult<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" || s.is_empty() => Ok(true),
        Value::String(s) if s == "false" => Ok(false),
        other => Err(ApiError::illegal_argument(format!(
            "Failed to parse value [{}] as only [true] or [false] are allowed.",
            crate::engine::index::value_text(other)
        ))
        .with("param", key)),
    }
}

fn parse_sort_entry(v: &Value, out: &mut Vec<SortSpec>) -> ApiResult<()> {
    let spec = |name: &str| -> SortSpec {
        let target = match name {
            "_score" => SortTarget::Score,
            "_doc" | "_shard_doc" => SortTarget::Doc,
            "_seq_no" => SortTarget::SeqNo,
            "_id" => SortTarget::Id,
            "_index" => SortTarget::Index,
            f => SortTarget::Field(f.to_string()),
        };
        SortSpec {
            desc: target == SortTarget::Score,
            target,
            missing: Missing::Last,
            unmapped_type: None,
        }
    };
    match v {
        Value::String(s) => out.push(spec(s)),
        Value::Array(items) => {
            for item in items {
                parse_sort_entry(item, out)?;
            }
        }
        Value::Object(obj) => {
            for (name, opts) in obj {
                let mut s = spec(name);
                match opts {
                    Value::String(order) => s.desc = parse_order(order)?,
                    Value::Object(o) => {
                        for (k, ov) in o {
                            match k.as_str() {
                                "order" => s.desc = parse_order(ov.as_str().unwrap_or_default())?,
                                "missing" => {
                                    s.missing = match ov.as_str() {
                                        Some("_last") => Missing::Last,
                                        Some("_first") => Missing::First,
                                        _ => Missing::Value(ov.clone()),
                                    }
                                }
                                "unmapped_type" => {
                                    s.unmapped_type = Some(
                                        FieldType::parse(ov.as_str().unwrap_or_default())
                                            .unwrap_or(FieldType::Keyword),
                                    );
                                }
                                "mode" | "format" | "numeric_type" | "nested" => {}
                                other => {
                                    return Err(ApiError::parsing(format!(
                                        "[field_sort] unknown field [{other}]"
                                    )))
                                }
                            }
                        }
                    }
                    other => {
                        return Err(ApiError::parsing(format!(
                            "[sort] unexpected token {} for sort order",
                            token_name(other)
                        )))
                    }
                }
                out.push(s);
            }
        }
        other => {
            return Err(ApiError::parsing(format!(
                "[sort] unexpected token [{}]",
                token_name(other)
            )))
        }
    }
    Ok(())
}

fn parse_order(order: &str) -> ApiResult<bool> {
    match order.to_ascii_lowercase().as_str() {
        "asc" => Ok(false),
        "desc" => Ok(true),
        other => Err(ApiError::illegal_argument(format!(
            "Unknown SortOrder [{other}]"
        ))),
    }
}

fn parse_source_filter(v: &Value) -> ApiResult<SourceFilter> {
    let list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => s
                .split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            _ => vec![],
        }
    };
    Ok(match v {
        Value::Bool(b) => SourceFilter {
            disabled: !b,
            ..SourceFilter::default()
        },
        Value::String(s) if s == "false" => SourceFilter {
            disabled: true,
            ..SourceFilter::default()
        },
        Value::String(s) if s == "true" => SourceFilter::default(),
        Value::String(_) | Value::Array(_) => SourceFilter {
            includes: list(v),
            ..SourceFilter::default()
        },
        Value::Object(o) => SourceFilter {
            disabled: false,
            includes: o
                .get("includes")
                .or_else(|| o.get("include"))
                .map(list)
                .unwrap_or_default(),
            excludes: o
                .get("excludes")
                .or_else(|| o.get("exclude"))
                .map(list)
                .unwrap_or_default(),
        },
        _ => return Err(ApiError::parsing("[_source] unexpected value")),
    })
}

fn parse_track_total(v: &Value) -> ApiResult<TrackTotal> {
    Ok(match v {
        Value::Bool(true) => TrackTotal::Exact,
        Value::Bool(false) => TrackTotal::Off,
        Value::String(s) if s == "true" => TrackTotal::Exact,
        Value::String(s) if s == "false" => TrackTotal::Off,
        other => {
            let n = match other {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }
            .ok_or_else(|| {
                ApiError::parsing("[track_total_hits] must be a boolean or an integer")
            })?;
            if n == i32::MAX as i64 {
                TrackTotal::Exact
            } else if n < 0 {
                return Err(ApiError::illegal_argument(format!(
                    "[track_total_hits] parameter must be positive or equals to -1, got {n}"
                )));
            } else {
                TrackTotal::UpTo(n as u64)
            }
        }
    })
}

impl SearchRequest {
    /// Parses a search body and the URL parameters that mirror body fields.
    pub fn parse(body: Option<&Value>, params: &[(String, String)]) -> ApiResult<Self> {
        let mut req = SearchRequest::default();
        if let Some(body) = body {
            let obj = match body {
                Value::Object(o) => o,
                Value::Null => &Map::new(),
                other => {
                    return Err(ApiError::parsing(format!(
                        "Unexpected token {} in search body",
                        token_name(other)
                    )))
                }
            };
            for (key, v) in obj {
                match key.as_str() {
                    "query" => req.query = Query::parse(v)?,
                    "post_filter" => req.post_filter = Some(Query::parse(v)?),
                    "size" => req.size = as_usize("size", v)?,
                    "from" => req.from = as_usize("from", v)?,
                    "sort" => parse_sort_entry(v, &mut req.sort)?,
                    "search_after" => {
                        req.search_after =
                            Some(v.as_array().cloned().ok_or_else(|| {
                                ApiError::parsing("[search_after] must be an array")
                            })?)
                    }
                    "_source" => req.source = parse_source_filter(v)?,
                    "seq_no_primary_term" => req.seq_no_primary_term = parse_bool(key, v)?,
                    "version" => req.version = parse_bool(key, v)?,
                    "track_total_hits" => req.track_total_hits = parse_track_total(v)?,
                    "track_scores" => req.track_scores = parse_bool(key, v)?,
                    "min_score" => req.min_score = v.as_f64().map(|f| f as f32),
                    "pit" => {
                        let id = v
                            .get("id")
                            .and_then(|i| i.as_str())
                            .ok_or_else(|| ApiError::parsing("[pit] requires an [id]"))?;
                        let keep_alive = match v.get("keep_alive").and_then(|k| k.as_str()) {
                            Some(k) => parse_time_value("keep_alive", k)?,
                            None => None,
                        };
                        req.pit = Some(PitRef {
                            id: id.to_string(),
                            keep_alive,
                        });
                    }
                    "slice" => {
                        let id = v
                            .get("id")
                            .and_then(|i| i.as_u64())
                            .ok_or_else(|| ApiError::parsing("[slice] requires an [id]"))?
                            as u32;
                        let max = v
                            .get("max")
                            .and_then(|i| i.as_u64())
                            .ok_or_else(|| ApiError::parsing("[slice] requires [max]"))?
                            as u32;
                        if max < 2 || id >= max {
                            return Err(ApiError::illegal_argument(format!("max must be greater than 1 and id must be lower than max, got id [{id}] max [{max}]")));
                        }
                        req.slice = Some((id, max));
                    }
                    "timeout" | "stored_fields" | "docvalue_fields" | "fields" | "explain"
                    | "highlight" | "profile" | "terminate_after" | "ext" | "indices_boost"
                    | "stats" => {}
                    "aggs" | "aggregations" | "collapse" | "rescore" | "suggest"
                    | "script_fields" | "knn" => {
                        return Err(ApiError::illegal_argument(format!("[{key}] is not supported by the indexstream fake cluster (see the fake crate's README)")));
                    }
                    other => {
                        return Err(ApiError::parsing(format!(
                            "Unknown key for a {} in [{other}].",
                            token_name(v)
                        ))
                        .with("line", 1)
                        .with("col", 1))
                    }
                }
            }
        }
        let mut source_param: Option<SourceFilter> = None;
        for (k, v) in params {
            let sv = Value::String(v.clone());
            match k.as_str() {
                "size" => req.size = as_usize("size", &sv)?,
                "from" => req.from = as_usize("from", &sv)?,
                "sort" => {
                    for part in v.split(',').filter(|p| !p.is_empty()) {
                        let (field, order) = part
                            .rsplit_once(':')
                            .map(|(f, o)| (f, Some(o)))
                            .unwrap_or((part, None));
                        let mut specs = Vec::new();
                        parse_sort_entry(&Value::String(field.to_string()), &mut specs)?;
                        if let Some(o) = order {
                            specs[0].desc = parse_order(o)?;
                        }
                        req.sort.extend(specs);
                    }
                }
                "_source" => source_param = Some(parse_source_filter(&sv)?),
                "_source_includes" | "_source_include" => {
                    source_param
                        .get_or_insert_with(SourceFilter::default)
                        .includes = v.split(',').map(String::from).collect()
                }
                "_source_excludes" | "_source_exclude" => {
                    source_param
                        .get_or_insert_with(SourceFilter::default)
                        .excludes = v.split(',').map(String::from).collect()
                }
                "seq_no_primary_term" => req.seq_no_primary_term = parse_bool(k, &sv)?,
                "version" => req.version = parse_bool(k, &sv)?,
                "track_total_hits" => req.track_total_hits = parse_track_total(&sv)?,
                "track_scores" => req.track_scores = parse_bool(k, &sv)?,
                "q" => req.query = query_string(v),
                _ => {}
            }
        }
        if let Some(s) = source_param {
            req.source = s;
        }
        if req.from + req.size > 10_000
            && req.pit.is_none()
            && !params.iter().any(|(k, _)| k == "scroll")
        {
            return Err(ApiError::illegal_argument(format!("Result window is too large, from + size must be less than or equal to: [10000] but was [{}]. See the scroll api for a more efficient way to request large data sets. This limit can be set by changing the [index.max_result_window] index level setting.", req.from + req.size)));
        }
        if let Some(after) = &req.search_after {
            let n = if req.sort.is_empty() {
                1
            } else {
                req.sort.len()
            };
            if after.len() != n {
                return Err(ApiError::illegal_argument(format!(
                    "search_after has {} value(s) but sort has {n}.",
                    after.len()
                )));
            }
            if req.from > 0 {
                return Err(ApiError::illegal_argument(
                    "[from] parameter must be set to 0 when [search_after] is used.",
                ));
            }
        }
        Ok(req)
    }
}

/// The `q=` URL parameter, in its simplest forms: `*`, `field:value`, or a bare term.
fn query_string(q: &str) -> Query {
    if q == "*" || q == "*:*" {
        return Query::MatchAll;
    }
    match q.split_once(':') {
        Some((f, v)) => Query::Match {
            field: f.to_string(),
            query: Value::String(v.to_string()),
            all_terms: false,
            minimum_should_match: None,
        },
        None => Query::Match {
            field: "_id".into(),
            query: Value::String(q.to_string()),
            all_terms: false,
            minimum_should_match: None,
        },
    }
}

/// A page position inside a scroll: the last hit's keys and its place in the target list.
#[derive(Debug, Clone)]
pub struct After {
    pub keys: Vec<SortKey>,
    pub tiebreak: (usize, u32, DocId),
}

/// The shards of one index a search reads, at a generation.
#[derive(Debug, Clone)]
pub struct PlanTarget {
    pub index: String,
    pub filter: Option<Value>,
    pub shards: Vec<(u32, Gen)>,
}

#[derive(Debug, Clone)]
enum Kind {
    Score,
    Doc,
    SeqNo,
    Id,
    IndexName,
    Field { id: Option<FieldId>, ty: FieldType },
}

#[derive(Debug, Clone)]
struct Clause {
    kind: Kind,
    desc: bool,
    missing_first: bool,
    /// The value a document without the field sorts as (numbers only; strings use `Str(None)`).
    substitute: Option<SortKey>,
}

#[derive(Debug, Clone)]
pub struct Hit {
    pub keys: Vec<SortKey>,
    pub score: f32,
    pub doc: Arc<StoredDoc>,
    pub tiebreak: (usize, u32, DocId),
}

fn cmp_clause(a: &SortKey, b: &SortKey, c: &Clause) -> Ordering {
    match (a, b) {
        (SortKey::Str(None), SortKey::Str(None)) => Ordering::Equal,
        (SortKey::Str(None), _) => {
            if c.missing_first {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
        (_, SortKey::Str(None)) => {
            if c.missing_first {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        _ => {
            let o = a.cmp(b);
            if c.desc {
                o.reverse()
            } else {
                o
            }
        }
    }
}

fn cmp_keys(a: &[SortKey], b: &[SortKey], clauses: &[Clause]) -> Ordering {
    for ((x, y), c) in a.iter().zip(b).zip(clauses) {
        let o = cmp_clause(x, y, c);
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

fn extreme(ty: FieldType, high: bool) -> SortKey {
    match ty {
        FieldType::UnsignedLong => SortKey::Int(if high { u64::MAX as i128 } else { 0 }),
        t if t.is_float() => SortKey::Float(if high {
            f64::INFINITY
        } else {
            f64::NEG_INFINITY
        }),
        t if t.is_string() => SortKey::Str(None),
        _ => SortKey::Int(if high {
            i64::MAX as i128
        } else {
            i64::MIN as i128
        }),
    }
}

fn resolve_clauses(
    specs: &[SortSpec],
    mappings: &Mappings,
    now: Timestamp,
) -> ApiResult<Vec<Clause>> {
    let mut out = Vec::new();
    let specs: Vec<SortSpec> = if specs.is_empty() {
        vec![SortSpec {
            target: SortTarget::Score,
            desc: true,
            missing: Missing::Last,
            unmapped_type: None,
        }]
    } else {
        specs.to_vec()
    };
    for s in &specs {
        let kind = match &s.target {
            SortTarget::Score => Kind::Score,
            SortTarget::Doc => Kind::Doc,
            SortTarget::SeqNo => Kind::SeqNo,
            SortTarget::Id => Kind::Id,
            SortTarget::Index => Kind::IndexName,
            SortTarget::Field(name) => match mappings.field_id(name) {
                Some(id) => {
                    let ty = mappings.field(id).ty;
                    if ty == FieldType::Text {
                        return Err(ApiError::illegal_argument(format!("Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead. Alternatively, set fielddata=true on [{name}] in order to load field data by uninverting the inverted index. Note that this can use significant memory.")));
                    }
                    Kind::Field { id: Some(id), ty }
                }
                None => match s.unmapped_type {
                    Some(ty) => Kind::Field { id: None, ty },
                    None => {
                        return Err(ApiError::new(
                            400,
                            "query_shard_exception",
                            format!("No mapping found for [{name}] in order to sort on"),
                        ))
                    }
                },
            },
        };
        let missing_first = matches!(s.missing, Missing::First);
        let substitute = match (&kind, &s.missing) {
            (Kind::Field { id, ty }, Missing::Value(v)) => {
                let fmt = id
                    .map(|i| mappings.field(i).date_format().clone())
                    .unwrap_or_else(DateFormat::default_date);
                Some(
                    field_key(*ty, &fmt, v, now, Rounding::Down, 0)
                        .map_err(ApiError::illegal_argument)?,
                )
            }
            (Kind::Field { ty, .. }, _) if !ty.is_string() => {
                Some(extreme(*ty, s.desc == missing_first))
            }
            _ => None,
        };
        out.push(Clause {
            kind,
            desc: s.desc,
            missing_first,
            substitute,
        });
    }
    Ok(out)
}

fn doc_key(c: &Clause, doc: &StoredDoc, doc_id: DocId, score: f32, index: &str) -> SortKey {
    match &c.kind {
        Kind::Score => SortKey::Float(score as f64),
        Kind::Doc => SortKey::Int(doc_id as i128),
        Kind::SeqNo => SortKey::Int(doc.seq_no as i128),
        Kind::Id => SortKey::Str(Some(doc.id.clone())),
        Kind::IndexName => SortKey::Str(Some(Arc::from(index))),
        Kind::Field { id, .. } => {
            let mut best: Option<SortKey> = None;
            if let Some(id) = id {
                for v in doc.values(*id) {
                    let k = SortKey::from_val(v);
                    best = Some(match best {
                        None => k,
                        Some(b) => {
                            if (k < b) != c.desc {
                                k
                            } else {
                                b
                            }
                        }
                    });
                }
            }
            best.or_else(|| c.substitute.clone())
                .unwrap_or(SortKey::Str(None))
        }
    }
}

fn after_key(c: &Clause, v: &Value, mappings: &Mappings, now: Timestamp) -> ApiResult<SortKey> {
    let bad = |why: String| {
        ApiError::illegal_argument(format!(
            "Failed to parse search_after value for field: {why}"
        ))
    };
    Ok(match &c.kind {
        Kind::Score => SortKey::Float(v.as_f64().ok_or_else(|| bad(format!("[_score] {v}")))?),
        Kind::Doc | Kind::SeqNo => SortKey::Int(
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| bad(format!("{v}")))? as i128,
        ),
        Kind::Id | Kind::IndexName => match v {
            Value::Null => SortKey::Str(None),
            other => SortKey::Str(Some(Arc::from(
                crate::engine::index::value_text(other).as_str(),
            ))),
        },
        Kind::Field { id, ty } => {
            if v.is_null() {
                return Ok(c.substitute.clone().unwrap_or(SortKey::Str(None)));
            }
            let fmt = id
                .map(|i| mappings.field(i).date_format().clone())
                .unwrap_or_else(DateFormat::default_date);
            field_key(*ty, &fmt, v, now, Rounding::Down, 0).map_err(bad)?
        }
    })
}

fn sort_value_json(c: &Clause, k: &SortKey) -> Value {
    match k {
        SortKey::Str(None) => Value::Null,
        SortKey::Str(Some(s)) => Value::String(s.to_string()),
        SortKey::Int(i) => {
            if let Ok(v) = i64::try_from(*i) {
                Value::from(v)
            } else if let Ok(v) = u64::try_from(*i) {
                Value::from(v)
            } else {
                Value::Null
            }
        }
        SortKey::Float(f) => {
            if f.is_infinite() {
                return Value::String(if *f > 0.0 {
                    "Infinity".into()
                } else {
                    "-Infinity".into()
                });
            }
            let single = matches!(
                c.kind,
                Kind::Score
                    | Kind::Field {
                        ty: FieldType::Float | FieldType::HalfFloat,
                        ..
                    }
            );
            let shown = if single {
                format!("{}", *f as f32).parse::<f64>().unwrap_or(*f)
            } else {
                *f
            };
            serde_json::Number::from_f64(shown)
                .map(Value::Number)
                .unwrap_or(Value::Null)
        }
    }
}

struct TargetRun<'a> {
    ordinal: usize,
    index: &'a Index,
    query: Compiled,
    post_filter: Option<Compiled>,
    clauses: Vec<Clause>,
    after: Option<Vec<SortKey>>,
}

/// The outcome of one search over its targets, before it is rendered.
#[derive(Debug)]
pub struct Outcome {
    pub hits: Vec<Hit>,
    pub total: Option<(u64, bool)>,
    pub shards_total: usize,
    pub failed: Vec<(String, u32)>,
    pub max_score: Option<f32>,
    clauses: Vec<Vec<Clause>>,
    indices: Vec<String>,
    sorted_by_score: bool,
}

fn slice_ok(slice: Option<(u32, u32)>, doc: &StoredDoc) -> bool {
    match slice {
        None => true,
        Some((id, max)) => (murmur3_32(doc.id.as_bytes()) as u32) % max == id,
    }
}

/// Runs a search. `partial_failure` fails the first shard, as the `partial_shards` fault does.
pub fn execute(
    indices: &mut std::collections::BTreeMap<String, Index>,
    plan: &[PlanTarget],
    req: &SearchRequest,
    internal_after: Option<&After>,
    partial_failure: bool,
) -> ApiResult<Outcome> {
    let now = Timestamp::from_millis(crate::engine::now_millis());
    // Build the ordered indexes the sort needs before borrowing the shards immutably.
    for t in plan {
        if let Some(index) = indices.get_mut(&t.index) {
            if let Some(SortSpec {
                target: SortTarget::Field(name),
                ..
            }) = req.sort.first()
            {
                if let Some(fid) = index.mappings.field_id(name) {
                    for (num, _) in &t.shards {
                        index.shards[*num as usize].field_index(fid);
                    }
                }
            }
        }
    }
    let mut runs = Vec::new();
    for (ordinal, t) in plan.iter().enumerate() {
        let Some(index) = indices.get(&t.index) else {
            continue;
        };
        let ctx = Context {
            index: &index.name,
            mappings: &index.mappings,
            now,
        };
        let mut query = req.query.compile(&ctx)?;
        if let Some(filter) = &t.filter {
            let f = Query::parse(filter)?.compile(&ctx)?;
            query = Compiled::Bool {
                must: vec![query],
                filter: vec![f],
                should: vec![],
                must_not: vec![],
                min_should: 0,
            };
        }
        let post_filter = match &req.post_filter {
            Some(q) => Some(q.compile(&ctx)?),
            None => None,
        };
        let clauses = resolve_clauses(&req.sort, &index.mappings, now)?;
        let after = match &req.search_after {
            Some(values) => Some(
                values
                    .iter()
                    .zip(&clauses)
                    .map(|(v, c)| after_key(c, v, &index.mappings, now))
                    .collect::<ApiResult<Vec<_>>>()?,
            ),
            None => None,
        };
        runs.push(TargetRun {
            ordinal,
            index,
            query,
            post_filter,
            clauses,
            after,
        });
    }
    let need = req.from + req.size;
    let mut hits: Vec<Hit> = Vec::new();
    let mut total: u64 = 0;
    let mut shards_total = 0;
    let mut failed = Vec::new();
    let count_limit = match req.track_total_hits {
        TrackTotal::Off => None,
        TrackTotal::UpTo(n) => Some(n),
        TrackTotal::Exact => Some(u64::MAX),
    };
    for run in &runs {
        for (num, gen) in &plan[run.ordinal].shards {
            shards_total += 1;
            if partial_failure && failed.is_empty() {
                failed.push((run.index.name.clone(), *num));
                continue;
            }
            let shard = &run.index.shards[*num as usize];
            let (shard_hits, count) =
                search_shard(run, shard, *gen, req, internal_after, need, count_limit);
            total += count;
            hits.extend(shard_hits);
        }
    }
    let clauses_of: Vec<Vec<Clause>> = runs.iter().map(|r| r.clauses.clone()).collect();
    let reference = clauses_of.first().cloned().unwrap_or_default();
    hits.sort_by(|a, b| cmp_keys(&a.keys, &b.keys, &reference).then(a.tiebreak.cmp(&b.tiebreak)));
    let max_score = hits
        .iter()
        .map(|h| h.score)
        .fold(None, |m: Option<f32>, s| Some(m.map_or(s, |m| m.max(s))));
    let hits: Vec<Hit> = hits.into_iter().skip(req.from).take(req.size).collect();
    let total = count_limit.map(|limit| {
        if total > limit {
            (limit, false)
        } else {
            (total, true)
        }
    });
    let sorted_by_score = matches!(reference.first().map(|c| &c.kind), Some(Kind::Score));
    Ok(Outcome {
        hits,
        total,
        shards_total,
        failed,
        max_score,
        clauses: clauses_of,
        indices: plan.iter().map(|p| p.index.clone()).collect(),
        sorted_by_score,
    })
}

/// Candidate documents of a shard in the order of the first sort clause, when an ordered index
/// can provide them; `None` when the shard must be scanned.
fn ordered_candidates<'a>(
    run: &TargetRun,
    shard: &'a Shard,
    start: Option<&SortKey>,
) -> Option<Box<dyn Iterator<Item = DocId> + 'a>> {
    let first = run.clauses.first()?;
    match &first.kind {
        Kind::SeqNo => {
            let (mut lo, mut hi) = run.query.seq_bounds();
            if let Some(SortKey::Int(s)) = start {
                let s = (*s).clamp(0, u64::MAX as i128) as u64;
                if first.desc {
                    hi = tighter_hi(hi, Bound::Included(s));
                } else {
                    lo = tighter_lo(lo, Bound::Included(s));
                }
            }
            Some(Box::new(
                shard.seq_range(lo, hi, first.desc).map(|(_, d)| d),
            ))
        }
        Kind::Doc if !first.desc => {
            let from = match start {
                Some(SortKey::Int(s)) => (*s).clamp(0, u32::MAX as i128) as DocId,
                _ => 0,
            };
            Some(Box::new(from..shard.doc_ids().end))
        }
        Kind::Field { id: Some(fid), .. } => {
            let index = shard.existing_field_index(*fid)?;
            if index.irregular > 0 {
                return None;
            }
            let (mut lo, mut hi) = run.query.field_bounds(*fid);
            if let Some(s) = start {
                if first.desc {
                    hi = match hi {
                        Bound::Included(h) | Bound::Excluded(h) if h < *s => Bound::Excluded(h),
                        _ => Bound::Included(s.clone()),
                    };
                } else {
                    lo = match lo {
                        Bound::Included(l) | Bound::Excluded(l) if l > *s => Bound::Included(l),
                        _ => Bound::Included(s.clone()),
                    };
                }
            }
            let lo_t = match lo {
                Bound::Included(k) => Bound::Included((k, DocId::MIN)),
                Bound::Excluded(k) => Bound::Excluded((k, DocId::MAX)),
                Bound::Unbounded => Bound::Unbounded,
            };
            let hi_t = match hi {
                Bound::Included(k) => Bound::Included((k, DocId::MAX)),
                Bound::Excluded(k) => Bound::Excluded((k, DocId::MIN)),
                Bound::Unbounded => Bound::Unbounded,
            };
            if let (
                Bound::Included(a) | Bound::Excluded(a),
                Bound::Included(b) | Bound::Excluded(b),
            ) = (&lo_t, &hi_t)
            {
                if a > b {
                    return Some(Box::new(std::iter::empty()));
                }
            }
            let range = index.entries.range((lo_t, hi_t)).map(|(_, d)| *d);
            Some(if first.desc {
                Box::new(range.rev())
            } else {
                Box::new(range)
            })
        }
        _ => None,
    }
}

fn tighter_lo(a: Bound<u64>, b: Bound<u64>) -> Bound<u64> {
    match (a, b) {
        (Bound::Unbounded, x) | (x, Bound::Unbounded) => x,
        (Bound::Included(x), Bound::Included(y)) => Bound::Included(x.max(y)),
        (Bound::Excluded(x), Bound::Included(y)) | (Bound::Included(y), Bound::Excluded(x)) => {
            if x >= y {
                Bound::Excluded(x)
            } else {
                Bound::Included(y)
            }
        }
        (Bound::Excluded(x), Bound::Excluded(y)) => Bound::Excluded(x.max(y)),
    }
}

fn tighter_hi(a: Bound<u64>, b: Bound<u64>) -> Bound<u64> {
    match (a, b) {
        (Bound::Unbounded, x) | (x, Bound::Unbounded) => x,
        (Bound::Included(x), Bound::Included(y)) => Bound::Included(x.min(y)),
        (Bound::Excluded(x), Bound::Included(y)) | (Bound::Included(y), Bound::Excluded(x)) => {
            if x <= y {
                Bound::Excluded(x)
            } else {
                Bound::Included(y)
            }
        }
        (Bound::Excluded(x), Bound::Excluded(y)) => Bound::Excluded(x.min(y)),
    }
}

fn search_shard(
    run: &TargetRun,
    shard: &Shard,
    gen: Gen,
    req: &SearchRequest,
    internal_after: Option<&After>,
    need: usize,
    count_limit: Option<u64>,
) -> (Vec<Hit>, u64) {
    let tb = |doc_id: DocId| (run.ordinal, shard.num, doc_id);
    let after_keys: Option<&[SortKey]> = internal_after
        .map(|a| a.keys.as_slice())
        .or(run.after.as_deref());
    let is_after = |keys: &[SortKey], doc_id: DocId| -> bool {
        match after_keys {
            None => true,
            Some(after) => match cmp_keys(keys, after, &run.clauses) {
                Ordering::Greater => true,
                Ordering::Less => false,
                Ordering::Equal => internal_after.is_some_and(|a| tb(doc_id) > a.tiebreak),
            },
        }
    };
    let matches = |doc: &StoredDoc| -> Option<f32> {
        if !slice_ok(req.slice, doc) {
            return None;
        }
        let score = run.query.eval(doc)?;
        if let Some(pf) = &run.post_filter {
            pf.eval(doc)?;
        }
        if req.min_score.is_some_and(|m| score < m) {
            return None;
        }
        Some(score)
    };
    let plain_count = run.query.is_all()
        && run.post_filter.is_none()
        && req.slice.is_none()
        && req.min_score.is_none();
    let mut hits = Vec::new();
    let mut counted: Option<u64> = None;
    if let Some(candidates) = ordered_candidates(run, shard, after_keys.and_then(|a| a.first())) {
        if need > 0 {
            for doc_id in candidates {
                let Some(doc) = shard.doc_at(doc_id, gen) else {
                    continue;
                };
                let Some(score) = matches(doc) else { continue };
                let keys: Vec<SortKey> = run
                    .clauses
                    .iter()
                    .map(|c| doc_key(c, doc, doc_id, score, &run.index.name))
                    .collect();
                if !is_after(&keys, doc_id) {
                    continue;
                }
                if hits.len() >= need {
                    let last: &Hit = &hits[hits.len() - 1];
                    if cmp_clause(&keys[0], &last.keys[0], &run.clauses[0]) != Ordering::Equal {
                        break;
                    }
                }
                hits.push(Hit {
                    keys,
                    score,
                    doc: doc.clone(),
                    tiebreak: tb(doc_id),
                });
            }
        }
        if let Some(limit) = count_limit {
            counted = Some(if plain_count {
                shard.doc_count_at(gen) as u64
            } else {
                let mut n = 0u64;
                if let Some(all) = ordered_candidates(run, shard, None) {
                    for doc_id in all {
                        if n > limit {
                            break;
                        }
                        if let Some(doc) = shard.doc_at(doc_id, gen) {
                            if matches(doc).is_some() {
                                n += 1;
                            }
                        }
                    }
                }
                n
            });
        }
    } else {
        let mut n = 0u64;
        for doc_id in shard.doc_ids() {
            let Some(doc) = shard.doc_at(doc_id, gen) else {
                continue;
            };
            let Some(score) = matches(doc) else { continue };
            n += 1;
            if need == 0 {
                if count_limit.is_none_or(|l| n > l) {
                    break;
                }
                continue;
            }
            let keys: Vec<SortKey> = run
                .clauses
                .iter()
                .map(|c| doc_key(c, doc, doc_id, score, &run.index.name))
                .collect();
            if is_after(&keys, doc_id) {
                hits.push(Hit {
                    keys,
                    score,
                    doc: doc.clone(),
                    tiebreak: tb(doc_id),
                });
                if hits.len() > need.max(1024) * 4 {
                    hits.sort_by(|a, b| {
                        cmp_keys(&a.keys, &b.keys, &run.clauses).then(a.tiebreak.cmp(&b.tiebreak))
                    });
                    hits.truncate(need);
                }
            }
        }
        counted = count_limit.map(|_| n);
    }
    hits.sort_by(|a, b| cmp_keys(&a.keys, &b.keys, &run.clauses).then(a.tiebreak.cmp(&b.tiebreak)));
    hits.truncate(need);
    (hits, counted.unwrap_or(0))
}

fn filter_source(
    obj: &Map<String, Value>,
    prefix: &str,
    inc: &[String],
    exc: &[String],
) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in obj {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if exc.iter().any(|p| crate::engine::glob(p, &path)) {
            continue;
        }
        let included = inc.is_empty() || inc.iter().any(|p| crate::engine::glob(p, &path));
        match v {
            Value::Object(child) => {
                let sub_inc: &[String] = if included { &[] } else { inc };
                let could = included
                    || inc
                        .iter()
                        .any(|p| p.starts_with(&format!("{path}.")) || p.contains('*'));
                if could {
                    let filtered = filter_source(child, &path, sub_inc, exc);
                    if included || !filtered.is_empty() {
                        out.insert(k.clone(), Value::Object(filtered));
                    }
                }
            }
            _ if included => {
                out.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
    out
}

/// The `_source` of a document as the filter asks for it, as JSON text.
pub fn render_source(doc: &StoredDoc, filter: &SourceFilter) -> Option<String> {
    if filter.disabled {
        return None;
    }
    if filter.includes.is_empty() && filter.excludes.is_empty() {
        return Some(doc.source.to_string());
    }
    let parsed: Value = serde_json::from_str(&doc.source).ok()?;
    let obj = parsed.as_object()?;
    Some(Value::Object(filter_source(obj, "", &filter.includes, &filter.excludes)).to_string())
}

fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&Value::String(s.to_string()).to_string());
    }
}

/// How the total appears: `{"value", "relation"}`, or an integer with `rest_total_hits_as_int`.
#[derive(Debug, Clone, Copy)]
pub struct RenderOpts {
    pub total_as_int: bool,
    pub took_ms: u64,
}

impl Outcome {
    /// Renders the response body. `extra` holds top-level fields such as `pit_id` or `_scroll_id`.
    pub fn render(&self, req: &SearchRequest, opts: RenderOpts, extra: &[(&str, Value)]) -> String {
        let mut out = String::with_capacity(256 + self.hits.len() * 512);
        out.push('{');
        for (k, v) in extra {
            push_json_str(&mut out, k);
            out.push(':');
            out.push_str(&v.to_string());
            out.push(',');
        }
        let failed = self.failed.len();
        let _ = write!(out, "\"took\":{},\"timed_out\":false,\"_shards\":{{\"total\":{},\"successful\":{},\"skipped\":0,\"failed\":{}", opts.took_ms, self.shards_total, self.shards_total - failed, failed);
        if failed > 0 {
            let failures: Vec<Value> = self.failed.iter().map(|(index, shard)| serde_json::json!({"shard": shard, "index": index, "node": "fake-node-0", "reason": {"type": "node_not_connected_exception", "reason": "[fake-node-0] disconnected (injected partial_shards fault)"}})).collect();
            out.push_str(",\"failures\":");
            out.push_str(&Value::Array(failures).to_string());
        }
        out.push_str("},\"hits\":{");
        match (self.total, opts.total_as_int) {
            (Some((n, _)), true) => {
                let _ = write!(out, "\"total\":{n},");
            }
            (None, true) => out.push_str("\"total\":-1,"),
            (Some((n, exact)), false) => {
                let _ = write!(
                    out,
                    "\"total\":{{\"value\":{n},\"relation\":\"{}\"}},",
                    if exact { "eq" } else { "gte" }
                );
            }
            (None, false) => {}
        }
        let show_scores = self.sorted_by_score || req.track_scores;
        match self.max_score {
            Some(m) if show_scores => {
                let _ = write!(out, "\"max_score\":{},", Value::from(m as f64));
            }
            _ => out.push_str("\"max_score\":null,"),
        }
        out.push_str("\"hits\":[");
        for (i, hit) in self.hits.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let ordinal = hit.tiebreak.0;
            out.push_str("{\"_index\":");
            push_json_str(&mut out, &self.indices[ordinal]);
            out.push_str(",\"_id\":");
            push_json_str(&mut out, &hit.doc.id);
            if req.version {
                let _ = write!(out, ",\"_version\":{}", hit.doc.version);
            }
            if req.seq_no_primary_term {
                let _ = write!(
                    out,
                    ",\"_seq_no\":{},\"_primary_term\":{}",
                    hit.doc.seq_no, hit.doc.primary_term
                );
            }
            if show_scores {
                let _ = write!(out, ",\"_score\":{}", Value::from(hit.score as f64));
            } else {
                out.push_str(",\"_score\":null");
            }
            if let Some(r) = &hit.doc.routing {
                out.push_str(",\"_routing\":");
                push_json_str(&mut out, r);
            }
            if let Some(src) = render_source(&hit.doc, &req.source) {
                out.push_str(",\"_source\":");
                out.push_str(&src);
            }
            if !req.sort.is_empty() {
                let clauses = &self.clauses[ordinal];
                let values: Vec<Value> = hit
                    .keys
                    .iter()
                    .zip(clauses)
                    .map(|(k, c)| sort_value_json(c, k))
                    .collect();
                out.push_str(",\"sort\":");
                out.push_str(&Value::Array(values).to_string());
            }
            out.push('}');
        }
        out.push_str("]}}");
        out
    }

    /// Where the next scroll page starts.
    pub fn last_position(&self) -> Option<After> {
        self.hits.last().map(|h| After {
            keys: h.keys.clone(),
            tiebreak: h.tiebreak,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn search_after_must_match_sort_length() {
        let e = SearchRequest::parse(Some(&json!({"sort": ["a", "b"], "search_after": [1]})), &[])
            .unwrap_err();
        assert_eq!(e.kind, "illegal_argument_exception");
    }

    #[test]
    fn unknown_body_key_names_its_token() {
        let e = SearchRequest::parse(Some(&json!({"match": {"foo": "bar"}})), &[]).unwrap_err();
        assert_eq!(e.reason, "Unknown key for a START_OBJECT in [match].");
    }

    #[test]
    fn url_sort_parses_orders() {
        let r = SearchRequest::parse(None, &[("sort".into(), "a:desc,b".into())]).unwrap();
        assert_eq!(r.sort.len(), 2);
        assert!(r.sort[0].desc);
        assert!(!r.sort[1].desc);
    }
}
