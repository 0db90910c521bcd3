//! Sort clauses resolved against an index's mappings, the sort keys of documents and of
//! `search_after` values, and their order.

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::Value;

use super::request::{Missing, SortSpec, SortTarget};
use crate::engine::date::{DateFormat, Rounding, Timestamp};
use crate::engine::mapping::{FieldId, FieldType, Mappings};
use crate::engine::query::field_key;
use crate::engine::shard::{DocId, Gen, StoredDoc};
use crate::engine::sortkey::SortKey;
use crate::error::{ApiError, ApiResult};

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
pub(super) enum Kind {
    Score,
    Doc,
    SeqNo,
    Id,
    IndexName,
    Field { id: Option<FieldId>, ty: FieldType },
}

#[derive(Debug, Clone)]
pub(super) struct Clause {
    pub(super) kind: Kind,
    pub(super) desc: bool,
    pub(super) missing_first: bool,
    /// The value a document without the field sorts as (numbers only; strings use `Str(None)`).
    pub(super) substitute: Option<SortKey>,
}

#[derive(Debug, Clone)]
pub struct Hit {
    pub keys: Vec<SortKey>,
    pub score: f32,
    pub doc: Arc<StoredDoc>,
    pub tiebreak: (usize, u32, DocId),
}

pub(super) fn cmp_clause(a: &SortKey, b: &SortKey, c: &Clause) -> Ordering {
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

pub(super) fn cmp_keys(a: &[SortKey], b: &[SortKey], clauses: &[Clause]) -> Ordering {
    for ((x, y), c) in a.iter().zip(b).zip(clauses) {
        let o = cmp_clause(x, y, c);
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

pub(super) fn extreme(ty: FieldType, high: bool) -> SortKey {
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

pub(super) fn resolve_clauses(
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

pub(super) fn doc_key(
    c: &Clause,
    doc: &StoredDoc,
    doc_id: DocId,
    score: f32,
    index: &str,
) -> SortKey {
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

pub(super) fn after_key(
    c: &Clause,
    v: &Value,
    mappings: &Mappings,
    now: Timestamp,
) -> ApiResult<SortKey> {
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

pub(super) fn sort_value_json(c: &Clause, k: &SortKey) -> Value {
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
