//! The query DSL: parsed once from JSON, compiled per index against its mappings (field ids and
//! typed bounds), and evaluated per document.

use std::collections::{BTreeSet, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::engine::date::{parse_math, parse_time_zone, DateFormat, Rounding, Timestamp};
use crate::engine::mapping::{round_to, FieldId, FieldType, Mappings};
use crate::engine::shard::StoredDoc;
use crate::engine::sortkey::SortKey;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    MatchAll,
    MatchNone,
    Term {
        field: String,
        value: Value,
    },
    Terms {
        field: String,
        values: Vec<Value>,
    },
    Range {
        field: String,
        gt: Option<Value>,
        gte: Option<Value>,
        lt: Option<Value>,
        lte: Option<Value>,
        format: Option<String>,
        time_zone: Option<String>,
    },
    Exists {
        field: String,
    },
    Ids {
        values: Vec<String>,
    },
    Match {
        field: String,
        query: Value,
        all_terms: bool,
        minimum_should_match: Option<Value>,
    },
    Prefix {
        field: String,
        value: String,
    },
    Bool {
        must: Vec<Query>,
        filter: Vec<Query>,
        should: Vec<Query>,
        must_not: Vec<Query>,
        minimum_should_match: Option<Value>,
    },
    ConstantScore(Box<Query>),
}

fn malformed(name: &str, why: &str) -> ApiError {
    ApiError::parsing(format!("[{name}] {why}"))
}

/// Splits `{"field": {...}}` or `{"field": value}` (the one-field form most leaf queries take).
fn single_field<'a>(name: &str, body: &'a Value) -> ApiResult<(&'a String, &'a Value)> {
    let obj = body
        .as_object()
        .ok_or_else(|| malformed(name, "query malformed, no start_object after query name"))?;
    let mut fields = obj
        .iter()
        .filter(|(k, _)| k.as_str() != "boost" && k.as_str() != "_name");
    let first = fields
        .next()
        .ok_or_else(|| malformed(name, "query doesn't support multiple fields, found none"))?;
    if let Some((second, _)) = fields.next() {
        return Err(ApiError::parsing(format!(
            "[{name}] query doesn't support multiple fields, found [{}] and [{second}]",
            first.0
        )));
    }
    Ok(first)
}

fn clauses(name: &str, v: &Value) -> ApiResult<Vec<Query>> {
    match v {
        Value::Array(items) => items.iter().map(Query::parse).collect(),
        Value::Object(_) => Ok(vec![Query::parse(v)?]),
        _ => Err(malformed(
            name,
            "query malformed, expected an object or an array of queries",
        )),
    }
}

impl Query {
    pub fn parse(v: &Value) -> ApiResult<Query> {
        let obj = v
            .as_object()
            .ok_or_else(|| ApiError::parsing("query malformed, must start with start_object"))?;
        let mut iter = obj.iter();
        let (name, body) = iter
            .next()
            .ok_or_else(|| ApiError::parsing("query malformed, empty clause found"))?;
        if let Some((next, _)) = iter.next() {
            return Err(ApiError::parsing(format!(
                "[{name}] malformed query, expected [END_OBJECT] but found [FIELD_NAME] ({next})"
            )));
        }
        Ok(match name.as_str() {
            "match_all" => Query::MatchAll,
            "match_none" => Query::MatchNone,
            "term" => {
                let (field, spec) = single_field(name, body)?;
                let value = match spec {
                    Value::Object(o) => o.get("value").cloned().ok_or_else(|| {
                        malformed("term", "query does not support [value] missing")
                    })?,
                    other => other.clone(),
                };
                Query::Term {
                    field: field.clone(),
                    value,
                }
            }
            "terms" => {
                let (field, spec) = single_field(name, body)?;
                let values = spec.as_array().cloned().ok_or_else(|| {
                    malformed(
                        "terms",
                        "query does not support [lookup]; expected an array of values",
                    )
                })?;
                Query::Terms {
                    field: field.clone(),
                    values,
                }
            }
            "range" => {
                let (field, spec) = single_field(name, body)?;
                let spec = spec.as_object().ok_or_else(|| {
                    malformed("range", "query malformed, no start_object after field name")
                })?;
                let (mut gt, mut gte, mut lt, mut lte, mut format, mut time_zone) =
                    (None, None, None, None, None, None);
                let (mut from, mut to, mut include_lower, mut include_upper) =
                    (None, None, true, true);
                for (k, val) in spec {
                    let val = if val.is_null() {
                        None
                    } else {
                        Some(val.clone())
                    };
                    match k.as_str() {
                        "gt" => gt = val,
                        "gte" => gte = val,
                        "lt" => lt = val,
                        "lte" => lte = val,
                        "from" => from = val,
                        "to" => to = val,
                        "include_lower" => {
                            include_lower = val.and_then(|v| v.as_bool()).unwrap_or(true)
                        }
                        "include_upper" => {
                            include_upper = val.and_then(|v| v.as_bool()).unwrap_or(true)
                        }
                        "format" => format = val.and_then(|v| v.as_str().map(String::from)),
                        "time_zone" => time_zone = val.and_then(|v| v.as_str().map(String::from)),
                        "boost" | "_name" | "relation" => {}
                        other => {
                            return Err(ApiError::parsing(format!(
                                "[range] query does not support [{other}]"
                            )))
                        }
                    }
                }
                if from.is_some() {
                    if include_lower {
                        gte = from
                    } else {
                        gt = from
                    }
                }
                if to.is_some() {
                    if include_upper {
                        lte = to
                    } else {
                        lt = to
                    }
                }
                Query::Range {
                    field: field.clone(),
                    gt,
                    gte,
                    lt,
                    lte,
                    format,
                    time_zone,
                }
            }
            "exists" => {
                let field = body
                    .get("field")
                    .and_then(|f| f.as_str())
                    .ok_or_else(|| malformed("exists", "must be provided with a [field]"))?;
                Query::Exists {
                    field: field.to_string(),
                }
            }
            "ids" => {
                let values = body
                    .get("values")
                    .and_then(|v| v.as_array())
                    .ok_or_else(|| malformed("ids", "query malformed, no [values]"))?;
                Query::Ids {
                    values: values.iter().map(value_string).collect(),
                }
            }
            "match" => {
                let (field, spec) = single_field(name, body)?;
                let (query, all_terms, msm) = match spec {
                    Value::Object(o) => {
                        let q = o
                            .get("query")
                            .cloned()
                            .ok_or_else(|| malformed("match", "requires query value"))?;
                        let and = o
                            .get("operator")
                            .and_then(|v| v.as_str())
                            .is_some_and(|op| op.eq_ignore_ascii_case("and"));
                        (q, and, o.get("minimum_should_match").cloned())
                    }
                    other => (other.clone(), false, None),
                };
                Query::Match {
                    field: field.clone(),
                    query,
                    all_terms,
                    minimum_should_match: msm,
                }
            }
            "prefix" => {
                let (field, spec) = single_field(name, body)?;
                let value = match spec {
                    Value::Object(o) => o
                        .get("value")
                        .map(value_string)
                        .ok_or_else(|| malformed("prefix", "requires a value"))?,
                    other => value_string(other),
                };
                Query::Prefix {
                    field: field.clone(),
                    value,
                }
            }
            "bool" => {
                let obj = body.as_object().ok_or_else(|| {
                    malformed("bool", "query malformed, no start_object after query name")
                })?;
                let (mut must, mut filter, mut should, mut must_not, mut msm) =
                    (vec![], vec![], vec![], vec![], None);
                for (k, val) in obj {
                    match k.as_str() {
                        "must" => must = clauses(k, val)?,
                        "filter" => filter = clauses(k, val)?,
                        "should" => should = clauses(k, val)?,
                        "must_not" | "mustNot" => must_not = clauses(k, val)?,
                        "minimum_should_match" => msm = Some(val.clone()),
                        "boost" | "_name" | "adjust_pure_negative" => {}
                        other => {
                            return Err(ApiError::parsing(format!(
                                "[bool] query does not support [{other}]"
                            )))
                        }
                    }
                }
                Query::Bool {
                    must,
                    filter,
                    should,
                    must_not,
                    minimum_should_match: msm,
                }
            }
            "constant_score" => {
                let inner = body
                    .get("filter")
                    .ok_or_else(|| malformed("constant_score", "requires a 'filter' element"))?;
                Query::ConstantScore(Box::new(Query::parse(inner)?))
            }
            other if NOT_MODELLED.contains(&other) => {
                return Err(ApiError::illegal_argument(format!(
                    "the [{other}] query is not supported by the indexstream fake cluster (see the fake crate's README)"
                )))
            }
            other => {
                return Err(ApiError::parsing(format!("unknown query [{other}]"))
                    .with("line", 1)
                    .with("col", 1))
            }
        })
    }
}

fn value_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Lowercased alphanumeric runs: close enough to the standard analyzer for `match` queries.
pub fn analyze(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| t.to_lowercase())
        .collect()
}

#[derive(Debug, Clone)]
pub enum Pred {
    Any,
    In(BTreeSet<SortKey>),
    Range(Bound<SortKey>, Bound<SortKey>),
    Prefix(String),
    /// A term on a text field: one of the value's tokens equals one of these.
    Token(HashSet<String>),
}

/// A query bound to one index's mappings.
#[derive(Debug, Clone)]
pub enum Compiled {
    All,
    Nothing,
    Ids(HashSet<String>),
    SeqNo(Bound<u64>, Bound<u64>),
    Field {
        fields: Vec<FieldId>,
        pred: Pred,
    },
    Text {
        field: FieldId,
        terms: Vec<String>,
        min_match: usize,
    },
    Bool {
        must: Vec<Compiled>,
        filter: Vec<Compiled>,
        should: Vec<Compiled>,
        must_not: Vec<Compiled>,
        min_should: usize,
    },
    Constant(Box<Compiled>),
}

/// What a query is compiled against: one index's name and mappings, and the time `now` means.
#[derive(Debug)]
pub struct Context<'a> {
    pub index: &'a str,
    pub mappings: &'a Mappings,
    pub now: Timestamp,
}

fn shard_error(reason: String) -> ApiError {
    ApiError::new(
        400,
        "query_shard_exception",
        format!("failed to create query: {reason}"),
    )
}

/// Converts a query value to the key the field stores, as the field type parses it.
pub fn field_key(
    ty: FieldType,
    format: &DateFormat,
    v: &Value,
    now: Timestamp,
    rounding: Rounding,
    offset: i32,
) -> Result<SortKey, String> {
    match ty {
        FieldType::Text | FieldType::Keyword | FieldType::Ip => {
            Ok(SortKey::Str(Some(Arc::from(value_string(v).as_str()))))
        }
        FieldType::Boolean => match v {
            Value::Bool(b) => Ok(SortKey::Int(*b as i128)),
            Value::String(s) if s == "true" => Ok(SortKey::Int(1)),
            Value::String(s) if s == "false" => Ok(SortKey::Int(0)),
            Value::Number(n) if n.as_i64() == Some(1) || n.as_i64() == Some(0) => {
                Ok(SortKey::Int(n.as_i64().unwrap_or(0) as i128))
            }
            other => Err(format!(
                "Failed to parse value [{}] as only [true] or [false] are allowed.",
                value_string(other)
            )),
        },
        FieldType::Date | FieldType::DateNanos => {
            let ts = match v {
                Value::Number(n) => match n.as_i64() {
                    Some(i) if ty == FieldType::DateNanos => return Ok(SortKey::Int(i as i128)),
                    Some(i) => Timestamp::from_millis(i),
                    None => format
                        .parse_value(v)
                        .ok_or_else(|| format!("failed to parse date field [{n}]"))?,
                },
                Value::String(s) => parse_math(s, format, now, rounding, offset)?,
                other => return Err(format!("failed to parse date field [{other}]")),
            };
            Ok(SortKey::Int(if ty == FieldType::DateNanos {
                ts.epoch_nanos().unwrap_or(0) as i128
            } else {
                ts.millis() as i128
            }))
        }
        FieldType::UnsignedLong => match v {
            Value::Number(n) => n
                .as_u64()
                .map(|u| SortKey::Int(u as i128))
                .or_else(|| n.as_f64().map(SortKey::Float))
                .ok_or_else(|| format!("Value [{n}] is out of range for an unsigned long")),
            Value::String(s) => s
                .parse::<u64>()
                .map(|u| SortKey::Int(u as i128))
                .map_err(|_| format!("For input string: \"{s}\"")),
            other => Err(format!("For input string: \"{other}\"")),
        },
        _ => {
            let f = match v {
                Value::Number(n) => {
                    if let Some(i) = n.as_i64() {
                        if !ty.is_float() {
                            return Ok(SortKey::Int(i as i128));
                        }
                    }
                    n.as_f64()
                        .ok_or_else(|| format!("For input string: \"{n}\""))?
                }
                Value::String(s) => match s.parse::<i64>() {
                    Ok(i) if !ty.is_float() => return Ok(SortKey::Int(i as i128)),
                    _ => s
                        .parse::<f64>()
                        .map_err(|_| format!("For input string: \"{s}\""))?,
                },
                other => return Err(format!("For input string: \"{}\"", value_string(other))),
            };
            Ok(SortKey::Float(round_to(ty, f)))
        }
    }
}

fn msm(spec: Option<&Value>, optional: usize, default: usize) -> usize {
    let Some(spec) = spec else { return default };
    let text = value_string(spec);
    let n: i64 = if let Some(pct) = text.strip_suffix('%') {
        let p: f64 = pct.parse().unwrap_or(0.0);
        let v = (optional as f64 * p.abs() / 100.0).floor() as i64;
        if p < 0.0 {
            optional as i64 - v
        } else {
            v
        }
    } else {
        let v: i64 = text.parse().unwrap_or(0);
        if v < 0 {
            optional as i64 + v
        } else {
            v
        }
    };
    n.clamp(0, optional as i64) as usize
}

impl Query {
    pub fn compile(&self, ctx: &Context) -> ApiResult<Compiled> {
        Ok(match self {
            Query::MatchAll => Compiled::All,
            Query::MatchNone => Compiled::Nothing,
            Query::Ids { values } => Compiled::Ids(values.iter().cloned().collect()),
            Query::Term { field, value } => {
                self.compile_terms(ctx, field, std::slice::from_ref(value))?
            }
            Query::Terms { field, values } => self.compile_terms(ctx, field, values)?,
            Query::Exists { field } => match field.as_str() {
                "_id" | "_index" | "_seq_no" => Compiled::All,
                _ => {
                    let fields = ctx.mappings.fields_under(field);
                    if fields.is_empty() {
                        Compiled::Nothing
                    } else {
                        Compiled::Field {
                            fields,
                            pred: Pred::Any,
                        }
                    }
                }
            },
            Query::Prefix { field, value } => match field.as_str() {
                "_id" => Compiled::Field {
                    fields: vec![],
                    pred: Pred::Prefix(value.clone()),
                },
                "_index" => {
                    if ctx.index.starts_with(value.as_str()) {
                        Compiled::All
                    } else {
                        Compiled::Nothing
                    }
                }
                _ => match ctx.mappings.field_id(field) {
                    Some(fid) => Compiled::Field {
                        fields: vec![fid],
                        pred: Pred::Prefix(value.clone()),
                    },
                    None => Compiled::Nothing,
                },
            },
            Query::Range {
                field,
                gt,
                gte,
                lt,
                lte,
                format,
                time_zone,
            } => {
                let offset = match time_zone {
                    Some(tz) => parse_time_zone(tz)
                        .ok_or_else(|| shard_error(format!("Unknown time-zone ID: {tz}")))?,
                    None => 0,
                };
                if field == "_seq_no" {
                    let b = |v: &Option<Value>, inclusive: bool| -> ApiResult<Bound<u64>> {
                        Ok(match v {
                            None => Bound::Unbounded,
                            Some(v) => {
                                let n = match v {
                                    Value::String(s) => s.parse::<i64>().ok(),
                                    other => other.as_i64(),
                                }
                                .ok_or_else(|| {
                                    shard_error(format!(
                                        "For input string: \"{}\"",
                                        value_string(v)
                                    ))
                                })?;
                                if n < 0 {
                                    if inclusive {
                                        Bound::Included(0)
                                    } else {
                                        Bound::Unbounded
                                    }
                                } else if inclusive {
                                    Bound::Included(n as u64)
                                } else {
                                    Bound::Excluded(n as u64)
                                }
                            }
                        })
                    };
                    let lo = if gt.is_some() {
                        b(gt, false)?
                    } else {
                        b(gte, true)?
                    };
                    let hi = match (lt, lte) {
                        (Some(v), _) => match b(&Some(v.clone()), false)? {
                            Bound::Unbounded => return Ok(Compiled::Nothing),
                            x => x,
                        },
                        (None, Some(v)) => {
                            let n = match v {
                                Value::String(s) => s.parse::<i64>().ok(),
                                other => other.as_i64(),
                            }
                            .ok_or_else(|| {
                                shard_error(format!("For input string: \"{}\"", value_string(v)))
                            })?;
                            if n < 0 {
                                return Ok(Compiled::Nothing);
                            } else {
                                Bound::Included(n as u64)
                            }
                        }
                        _ => Bound::Unbounded,
                    };
                    return Ok(Compiled::SeqNo(lo, hi));
                }
                let Some(fid) = ctx.mappings.field_id(field) else {
                    return Ok(Compiled::Nothing);
                };
                let info = ctx.mappings.field(fid);
                let fmt = match format {
                    Some(f) => DateFormat::parse(f).map_err(shard_error)?,
                    None => info.date_format().clone(),
                };
                let key = |v: &Value, r: Rounding| {
                    field_key(info.ty, &fmt, v, ctx.now, r, offset).map_err(shard_error)
                };
                let lo = match (gt, gte) {
                    (Some(v), _) => Bound::Excluded(key(v, Rounding::Up)?),
                    (None, Some(v)) => Bound::Included(key(v, Rounding::Down)?),
                    _ => Bound::Unbounded,
                };
                let hi = match (lt, lte) {
                    (Some(v), _) => Bound::Excluded(key(v, Rounding::Down)?),
                    (None, Some(v)) => Bound::Included(key(v, Rounding::Up)?),
                    _ => Bound::Unbounded,
                };
                Compiled::Field {
                    fields: vec![fid],
                    pred: Pred::Range(lo, hi),
                }
            }
            Query::Match {
                field,
                query,
                all_terms,
                minimum_should_match,
            } => {
                if field == "_id" || field == "_index" {
                    return self.compile_terms(ctx, field, std::slice::from_ref(query));
                }
                let Some(fid) = ctx.mappings.field_id(field) else {
                    return Ok(Compiled::Nothing);
                };
                if ctx.mappings.field(fid).ty != FieldType::Text {
                    return self.compile_terms(ctx, field, std::slice::from_ref(query));
                }
                let terms = analyze(&value_string(query));
                if terms.is_empty() {
                    return Ok(Compiled::Nothing);
                }
                let default = if *all_terms { terms.len() } else { 1 };
                let min_match = msm(minimum_should_match.as_ref(), terms.len(), default).max(1);
                Compiled::Text {
                    field: fid,
                    terms,
                    min_match,
                }
            }
            Query::Bool {
                must,
                filter,
                should,
                must_not,
                minimum_should_match,
            } => {
                let c = |qs: &Vec<Query>| {
                    qs.iter()
                        .map(|q| q.compile(ctx))
                        .collect::<ApiResult<Vec<_>>>()
                };
                let default = if must.is_empty() && filter.is_empty() && !should.is_empty() {
                    1
                } else {
                    0
                };
                let min_should = msm(minimum_should_match.as_ref(), should.len(), default);
                Compiled::Bool {
                    must: c(must)?,
                    filter: c(filter)?,
                    should: c(should)?,
                    must_not: c(must_not)?,
                    min_should,
                }
            }
            Query::ConstantScore(inner) => Compiled::Constant(Box::new(inner.compile(ctx)?)),
        })
    }

    fn compile_terms(&self, ctx: &Context, field: &str, values: &[Value]) -> ApiResult<Compiled> {
        match field {
            "_id" => return Ok(Compiled::Ids(values.iter().map(value_string).collect())),
            "_index" => {
                return Ok(if values.iter().any(|v| value_string(v) == ctx.index) {
                    Compiled::All
                } else {
                    Compiled::Nothing
                })
            }
            "_seq_no" => {
                let mut keys = BTreeSet::new();
                for v in values {
                    keys.insert(
                        field_key(
                            FieldType::Long,
                            &DateFormat::default_date(),
                            v,
                            ctx.now,
                            Rounding::Down,
                            0,
                        )
                        .map_err(shard_error)?,
                    );
                }
                return Ok(Compiled::Field {
                    fields: vec![SEQ_NO_FIELD],
                    pred: Pred::In(keys),
                });
            }
            _ => {}
        }
        let Some(fid) = ctx.mappings.field_id(field) else {
            return Ok(Compiled::Nothing);
        };
        let info = ctx.mappings.field(fid);
        if info.ty == FieldType::Text {
            return Ok(Compiled::Field {
                fields: vec![fid],
                pred: Pred::Token(values.iter().map(value_string).collect()),
            });
        }
        let fmt = info.date_format().clone();
        let mut keys = BTreeSet::new();
        for v in values {
            if info.ty == FieldType::Boolean || !v.is_boolean() || info.ty.is_string() {
                keys.insert(
                    field_key(info.ty, &fmt, v, ctx.now, Rounding::Down, 0).map_err(shard_error)?,
                );
            }
        }
        Ok(Compiled::Field {
            fields: vec![fid],
            pred: Pred::In(keys),
        })
    }
}

/// A pseudo field id standing for `_seq_no` in term queries.
pub const SEQ_NO_FIELD: FieldId = FieldId::MAX;

fn bound_ok(key: &SortKey, lo: &Bound<SortKey>, hi: &Bound<SortKey>) -> bool {
    (match lo {
        Bound::Included(l) => key >= l,
        Bound::Excluded(l) => key > l,
        Bound::Unbounded => true,
    }) && (match hi {
        Bound::Included(h) => key <= h,
        Bound::Excluded(h) => key < h,
        Bound::Unbounded => true,
    })
}

impl Pred {
    fn matches_str(&self, s: &str) -> bool {
        match self {
            Pred::Prefix(p) => s.starts_with(p.as_str()),
            Pred::Token(terms) => analyze(s).iter().any(|t| terms.contains(t)) || terms.contains(s),
            _ => false,
        }
    }
}

impl Compiled {
    /// The score of `doc` when it matches.
    pub fn eval(&self, doc: &StoredDoc) -> Option<f32> {
        match self {
            Compiled::All => Some(1.0),
            Compiled::Nothing => None,
            Compiled::Ids(ids) => ids.contains(&*doc.id).then_some(1.0),
            Compiled::SeqNo(lo, hi) => bound_ok(
                &SortKey::Int(doc.seq_no as i128),
                &map_bound(lo),
                &map_bound(hi),
            )
            .then_some(1.0),
            Compiled::Field { fields, pred } => {
                if fields.is_empty() {
                    return pred.matches_str(&doc.id).then_some(1.0);
                }
                let hit = fields.iter().any(|f| {
                    if *f == SEQ_NO_FIELD {
                        return matches!(pred, Pred::In(keys) if keys.contains(&SortKey::Int(doc.seq_no as i128)));
                    }
                    doc.values(*f).any(|v| match pred {
                        Pred::Any => true,
                        Pred::In(keys) => keys.contains(&SortKey::from_val(v)),
                        Pred::Range(lo, hi) => bound_ok(&SortKey::from_val(v), lo, hi),
                        Pred::Prefix(_) | Pred::Token(_) => match v {
                            crate::engine::mapping::FieldVal::Str(s) => pred.matches_str(s),
                            _ => false,
                        },
                    })
                });
                hit.then_some(1.0)
            }
            Compiled::Text {
                field,
                terms,
                min_match,
            } => {
                let mut tokens: HashSet<String> = HashSet::new();
                for v in doc.values(*field) {
                    if let crate::engine::mapping::FieldVal::Str(s) = v {
                        tokens.extend(analyze(s));
                    }
                }
                let matched = terms.iter().filter(|t| tokens.contains(*t)).count();
                (matched >= *min_match).then_some(matched as f32)
            }
            Compiled::Bool {
                must,
                filter,
                should,
                must_not,
                min_should,
            } => {
                let mut score = 0.0;
                for q in must {
                    score += q.eval(doc)?;
                }
                for q in filter {
                    q.eval(doc)?;
                }
                for q in must_not {
                    if q.eval(doc).is_some() {
                        return None;
                    }
                }
                let mut matched = 0;
                for q in should {
                    if let Some(s) = q.eval(doc) {
                        matched += 1;
                        score += s;
                    }
                }
                if matched < *min_should {
                    return None;
                }
                Some(score)
            }
            Compiled::Constant(inner) => inner.eval(doc).map(|_| 1.0),
        }
    }

    /// The tightest bounds this query puts on `_seq_no`, when every match must satisfy them.
    pub fn seq_bounds(&self) -> (Bound<u64>, Bound<u64>) {
        match self {
            Compiled::SeqNo(lo, hi) => (*lo, *hi),
            Compiled::Bool { must, filter, .. } => {
                let mut out = (Bound::Unbounded, Bound::Unbounded);
                for q in must.iter().chain(filter) {
                    let (lo, hi) = q.seq_bounds();
                    out = (tighter_lo(out.0, lo), tighter_hi(out.1, hi));
                }
                out
            }
            Compiled::Constant(inner) => inner.seq_bounds(),
            _ => (Bound::Unbounded, Bound::Unbounded),
        }
    }

    /// The tightest bounds this query puts on `field`, when every match must satisfy them.
    pub fn field_bounds(&self, field: FieldId) -> (Bound<SortKey>, Bound<SortKey>) {
        match self {
            Compiled::Field {
                fields,
                pred: Pred::Range(lo, hi),
            } if fields.as_slice() == [field] => (lo.clone(), hi.clone()),
            Compiled::Field {
                fields,
                pred: Pred::In(keys),
            } if fields.as_slice() == [field] && !keys.is_empty() => (
                Bound::Included(keys.first().cloned().unwrap_or(SortKey::Int(0))),
                Bound::Included(keys.last().cloned().unwrap_or(SortKey::Int(0))),
            ),
            Compiled::Bool { must, filter, .. } => {
                let mut out = (Bound::Unbounded, Bound::Unbounded);
                for q in must.iter().chain(filter) {
                    let (lo, hi) = q.field_bounds(field);
                    out = (tighter_key_lo(out.0, lo), tighter_key_hi(out.1, hi));
                }
                out
            }
            Compiled::Constant(inner) => inner.field_bounds(field),
            _ => (Bound::Unbounded, Bound::Unbounded),
        }
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Compiled::All)
    }
}

fn map_bound(b: &Bound<u64>) -> Bound<SortKey> {
    match b {
        Bound::Included(v) => Bound::Included(SortKey::Int(*v as i128)),
        Bound::Excluded(v) => Bound::Excluded(SortKey::Int(*v as i128)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn lo_key<T: Ord + Clone>(b: &Bound<T>) -> Option<(T, bool)> {
    match b {
        Bound::Included(v) => Some((v.clone(), false)),
        Bound::Excluded(v) => Some((v.clone(), true)),
        Bound::Unbounded => None,
    }
}

fn tighter_lo(a: Bound<u64>, b: Bound<u64>) -> Bound<u64> {
    match (lo_key(&a), lo_key(&b)) {
        (None, _) => b,
        (_, None) => a,
        (Some(x), Some(y)) => {
            if y > x {
                b
            } else {
                a
            }
        }
    }
}

fn tighter_hi(a: Bound<u64>, b: Bound<u64>) -> Bound<u64> {
    match (lo_key(&a), lo_key(&b)) {
        (None, _) => b,
        (_, None) => a,
        (Some((x, xe)), Some((y, ye))) => {
            if (y, !ye) < (x, !xe) {
                b
            } else {
                a
            }
        }
    }
}

fn tighter_key_lo(a: Bound<SortKey>, b: Bound<SortKey>) -> Bound<SortKey> {
    match (lo_key(&a), lo_key(&b)) {
        (None, _) => b,
        (_, None) => a,
        (Some(x), Some(y)) => {
            if y > x {
                b
            } else {
                a
            }
        }
    }
}

fn tighter_key_hi(a: Bound<SortKey>, b: Bound<SortKey>) -> Bound<SortKey> {
    match (lo_key(&a), lo_key(&b)) {
        (None, _) => b,
        (_, None) => a,
        (Some((x, xe)), Some((y, ye))) => {
            if (y, !ye) < (x, !xe) {
                b
            } else {
                a
            }
        }
    }
}

/// Validates the keys of a request body that must hold only a `query` (the `_count` API).
pub fn count_body_query(body: &Map<String, Value>) -> ApiResult<Query> {
    for key in body.keys() {
        if key != "query" {
            return Err(ApiError::parsing(format!(
                "request does not support [{key}]"
            )));
        }
    }
    match body.get("query") {
        Some(q) => Query::parse(q),
        None => Ok(Query::MatchAll),
    }
}

/// Queries OpenSearch has and the fake does not model: refused by name, not as unknown.
const NOT_MODELLED: &[&str] = &[
    "wildcard",
    "regexp",
    "fuzzy",
    "match_phrase",
    "match_phrase_prefix",
    "match_bool_prefix",
    "multi_match",
    "query_string",
    "simple_query_string",
    "combined_fields",
    "nested",
    "has_child",
    "has_parent",
    "parent_id",
    "geo_distance",
    "geo_bounding_box",
    "geo_polygon",
    "geo_shape",
    "script",
    "script_score",
    "function_score",
    "more_like_this",
    "dis_max",
    "boosting",
    "intervals",
    "terms_set",
    "distance_feature",
    "rank_feature",
    "percolate",
    "span_term",
    "span_near",
    "span_or",
    "span_not",
    "span_first",
    "span_multi",
    "span_containing",
    "span_within",
    "neural",
    "knn",
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queries_of_opensearch_it_does_not_model_are_refused_by_name() {
        for q in ["wildcard", "match_phrase", "multi_match", "query_string"] {
            let e = Query::parse(&json!({q: {}})).unwrap_err();
            assert_eq!(
                (e.status, e.kind.as_str()),
                (400, "illegal_argument_exception")
            );
            assert!(e.reason.contains(&format!("[{q}]")), "{}", e.reason);
        }
    }

    #[test]
    fn unknown_query_is_a_parsing_error() {
        let e = Query::parse(&json!({"fuzzy_wuzzy": {}})).unwrap_err();
        assert_eq!((e.status, e.kind.as_str()), (400, "parsing_exception"));
    }

    #[test]
    fn seq_bounds_come_from_filters() {
        let q = Query::parse(
            &json!({"bool": {"filter": [{"range": {"_seq_no": {"gt": 5, "lte": 9}}}]}}),
        )
        .unwrap();
        let m = Mappings::default();
        let c = q
            .compile(&Context {
                index: "i",
                mappings: &m,
                now: Timestamp::from_millis(0),
            })
            .unwrap();
        assert_eq!(c.seq_bounds(), (Bound::Excluded(5), Bound::Included(9)));
    }

    #[test]
    fn minimum_should_match_forms() {
        assert_eq!(msm(Some(&json!(2)), 3, 1), 2);
        assert_eq!(msm(Some(&json!("-1")), 3, 1), 2);
        assert_eq!(msm(Some(&json!("50%")), 4, 1), 2);
        assert_eq!(msm(None, 4, 1), 1);
    }
}
