//! Running a planned search over the shards of its targets, one refresh generation each.

use std::cmp::Ordering;
use std::ops::Bound;

use super::request::{SearchRequest, SortSpec, SortTarget, TrackTotal};
use super::sort::{
    after_key, cmp_clause, cmp_keys, doc_key, resolve_clauses, After, Clause, Hit, Kind, PlanTarget,
};
use crate::engine::date::Timestamp;
use crate::engine::index::Index;
use crate::engine::query::{Compiled, Context, Query};
use crate::engine::routing::murmur3_32;
use crate::engine::shard::{DocId, Gen, Shard, StoredDoc};
use crate::engine::sortkey::SortKey;
use crate::error::ApiResult;

pub(super) struct TargetRun<'a> {
    pub(super) ordinal: usize,
    pub(super) index: &'a Index,
    pub(super) query: Compiled,
    pub(super) post_filter: Option<Compiled>,
    pub(super) clauses: Vec<Clause>,
    pub(super) after: Option<Vec<SortKey>>,
}

/// The outcome of one search over its targets, before it is rendered.
#[derive(Debug)]
pub struct Outcome {
    pub hits: Vec<Hit>,
    pub total: Option<(u64, bool)>,
    pub shards_total: usize,
    pub failed: Vec<(String, u32)>,
    pub max_score: Option<f32>,
    pub(super) clauses: Vec<Vec<Clause>>,
    pub(super) indices: Vec<String>,
    pub(super) sorted_by_score: bool,
}

pub(super) fn slice_ok(slice: Option<(u32, u32)>, doc: &StoredDoc) -> bool {
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
pub(super) fn ordered_candidates<'a>(
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

pub(super) fn tighter_lo(a: Bound<u64>, b: Bound<u64>) -> Bound<u64> {
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

pub(super) fn tighter_hi(a: Bound<u64>, b: Bound<u64>) -> Bound<u64> {
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

pub(super) fn search_shard(
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
