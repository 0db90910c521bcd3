//! A search request as parsed from its body and URL parameters.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::engine::index::parse_time_value;
use crate::engine::mapping::FieldType;
use crate::engine::query::Query;
use crate::error::{ApiError, ApiResult};

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

pub(super) fn token_name(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "START_OBJECT",
        Value::Array(_) => "START_ARRAY",
        Value::String(_) => "VALUE_STRING",
        Value::Number(_) => "VALUE_NUMBER",
        Value::Bool(_) => "VALUE_BOOLEAN",
        Value::Null => "VALUE_NULL",
    }
}

pub(super) fn as_usize(key: &str, v: &Value) -> ApiResult<usize> {
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

pub(super) fn parse_bool(key: &str, v: &Value) -> ApiResult<bool> {
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

pub(super) fn parse_sort_entry(v: &Value, out: &mut Vec<SortSpec>) -> ApiResult<()> {
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

pub(super) fn parse_order(order: &str) -> ApiResult<bool> {
    match order.to_ascii_lowercase().as_str() {
        "asc" => Ok(false),
        "desc" => Ok(true),
        other => Err(ApiError::illegal_argument(format!(
            "Unknown SortOrder [{other}]"
        ))),
    }
}

pub(super) fn parse_source_filter(v: &Value) -> ApiResult<SourceFilter> {
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

pub(super) fn parse_track_total(v: &Value) -> ApiResult<TrackTotal> {
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
                    | "profile" | "terminate_after" | "ext" | "indices_boost" | "stats" => {}
                    "aggs" | "aggregations" | "collapse" | "rescore" | "suggest"
                    | "script_fields" | "knn" | "highlight" => {
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
                "q" => req.query = query_string(v)?,
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
/// `q=`: only `*` and `field:value` (a match query); the rest of the query-string syntax is
/// refused by name rather than read as a match.
pub(super) fn query_string(q: &str) -> Result<Query, ApiError> {
    if q == "*" || q == "*:*" {
        return Ok(Query::MatchAll);
    }
    let beyond = [
        ("[", "ranges"),
        ("{", "ranges"),
        (" TO ", "ranges"),
        (" AND ", "boolean operators"),
        (" OR ", "boolean operators"),
        ("NOT ", "boolean operators"),
        ("(", "groups"),
        ("\"", "phrases"),
        ("*", "wildcards"),
        ("?", "wildcards"),
        ("~", "fuzzy and proximity searches"),
        (">", "ranges"),
        ("<", "ranges"),
        ("^", "boosts"),
    ];
    if let Some((_, what)) = beyond.iter().find(|(t, _)| q.contains(t)) {
        return Err(ApiError::illegal_argument(format!(
            "q={q:?} uses query-string {what}, which the indexstream fake cluster does not support (only q=* and q=field:value; send a query DSL body instead)"
        )));
    }
    Ok(match q.split_once(':') {
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
    })
}
