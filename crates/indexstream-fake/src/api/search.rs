//! `_search`, `_count`, scroll and point in time.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::{Reply, Request};
use crate::engine::index::parse_time_value;
use crate::engine::query::count_body_query;
use crate::engine::routing::shard_for;
use crate::engine::search::{execute, PlanTarget, RenderOpts, SearchRequest, TrackTotal};
use crate::engine::{now_millis, Cluster, Pinned, Pit, ResolveOpts, Scroll, Target};
use crate::error::{ApiError, ApiResult};
use crate::state::Shared;

/// The shards a `preference` restricts a search to (`_shards:0,2|_primary`), if any.
fn preference_shards(pref: Option<&str>) -> ApiResult<Option<BTreeSet<u32>>> {
    let Some(pref) = pref else { return Ok(None) };
    for part in pref.split('|') {
        if let Some(list) = part.strip_prefix("_shards:") {
            let mut set = BTreeSet::new();
            for n in list.split(',') {
                set.insert(n.trim().parse::<u32>().map_err(|_| {
                    ApiError::illegal_argument(format!("No shard id found in preference [{pref}]"))
                })?);
            }
            return Ok(Some(set));
        }
        let known = [
            "_primary",
            "_primary_first",
            "_replica",
            "_replica_first",
            "_local",
            "_only_local",
        ];
        if part.starts_with('_')
            && !known.contains(&part)
            && !part.starts_with("_only_nodes:")
            && !part.starts_with("_prefer_nodes:")
        {
            return Err(ApiError::illegal_argument(format!(
                "no Preference for [{part}]"
            )));
        }
    }
    Ok(None)
}

/// Plans a live search and tells its shards they are searched (a search-idle shard refreshes
/// first, and the plan then reads what that refresh made visible; `?refresh=wait_for` writers
/// waiting for it are woken).
fn plan_search(
    shared: &Shared,
    c: &mut Cluster,
    targets: &[Target],
    req: &Request,
) -> ApiResult<Vec<PlanTarget>> {
    let plan = plan_for(c, targets, req)?;
    let now = Instant::now();
    let mut refreshed = false;
    for t in &plan {
        if let Some(index) = c.indices.get_mut(&t.index) {
            let idle_after = index.search_idle_after;
            for (num, _) in &t.shards {
                refreshed |= index.shards[*num as usize].searched(now, idle_after);
            }
        }
    }
    if refreshed {
        shared.refreshed.notify_waiters();
        plan_for(c, targets, req)
    } else {
        Ok(plan)
    }
}

fn plan_for(c: &Cluster, targets: &[Target], req: &Request) -> ApiResult<Vec<PlanTarget>> {
    let pref = preference_shards(req.param("preference"))?;
    let routing = req.param("routing");
    let mut plan = Vec::new();
    for t in targets {
        let Some(index) = c.indices.get(&t.index) else {
            continue;
        };
        let n = index.shards.len() as u32;
        let routed: Option<BTreeSet<u32>> = routing
            .or(t.routing.as_deref())
            .map(|r| r.split(',').map(|v| shard_for(v, n)).collect());
        let shards = index
            .shards
            .iter()
            .filter(|s| pref.as_ref().is_none_or(|p| p.contains(&s.num)))
            .filter(|s| routed.as_ref().is_none_or(|r| r.contains(&s.num)))
            .map(|s| (s.num, s.gen))
            .collect();
        plan.push(PlanTarget {
            index: t.index.clone(),
            filter: t.filter.clone(),
            shards,
        });
    }
    Ok(plan)
}

fn plan_from_pinned(pinned: &[Pinned], c: &Cluster) -> Vec<PlanTarget> {
    pinned
        .iter()
        .filter(|p| c.indices.get(&p.index).is_some_and(|i| i.uuid == p.uuid))
        .map(|p| PlanTarget {
            index: p.index.clone(),
            filter: p.filter.clone(),
            shards: p.shards.clone(),
        })
        .collect()
}

fn context_missing(id: &str) -> ApiError {
    ApiError::new(
        404,
        "search_context_missing_exception",
        format!("No search context found for id [{id}]"),
    )
}

pub fn search(
    shared: &Shared,
    index: Option<&str>,
    req: &Request,
    partial: bool,
) -> ApiResult<Reply> {
    let started = Instant::now();
    let body = req.json_body()?;
    let search = SearchRequest::parse(body.as_ref(), &req.params)?;
    let as_int = req.flag("rest_total_hits_as_int")?;
    let scroll = match req.param("scroll") {
        Some(s) => Some(parse_time_value("scroll", s)?.unwrap_or(Duration::from_secs(60))),
        None => None,
    };
    let mut c = shared.lock();
    let mut extra: Vec<(&str, Value)> = Vec::new();
    let plan = if let Some(pit) = &search.pit {
        if index.is_some() {
            return Err(ApiError::validation(&["[indices] cannot be used with point in time. Do not specify any index with point in time.".into()]));
        }
        let p = c
            .pits
            .get_mut(&pit.id)
            .ok_or_else(|| context_missing(&pit.id))?;
        // A search extends the context's life; listings keep showing the keep_alive it was created with.
        if let Some(k) = pit.keep_alive {
            p.expires = Instant::now() + k;
        }
        extra.push(("pit_id", json!(pit.id)));
        let pinned = p.pinned.clone();
        plan_from_pinned(&pinned, &c)
    } else {
        let targets = c.resolve(index.unwrap_or("_all"), req.resolve_opts(true)?)?;
        plan_search(shared, &mut c, &targets, req)?
    };
    let outcome = execute(&mut c.indices, &plan, &search, None, partial)?;
    if let Some(keep_alive) = scroll {
        let targets: Vec<Target> = plan
            .iter()
            .map(|p| Target {
                index: p.index.clone(),
                filter: p.filter.clone(),
                routing: None,
            })
            .collect();
        let mut pinned = c.pin(&targets);
        // The scroll reads exactly the shards (and generations) of the first page.
        for (pin, p) in pinned.iter_mut().zip(&plan) {
            pin.shards
                .retain(|(n, _)| p.shards.iter().any(|(m, _)| m == n));
        }
        let id = c.rng.base64_id(40);
        let mut scroll_req = search.clone();
        scroll_req.track_total_hits = TrackTotal::Off;
        c.scrolls.insert(
            id.clone(),
            Scroll {
                pinned,
                request: scroll_req,
                after: outcome.last_position(),
                total: outcome.total,
                expires: Instant::now() + keep_alive,
            },
        );
        extra.insert(0, ("_scroll_id", json!(id)));
    }
    drop(c);
    Ok(Reply::raw_json(
        200,
        outcome.render(
            &search,
            RenderOpts {
                total_as_int: as_int,
                took_ms: started.elapsed().as_millis() as u64,
            },
            &extra,
        ),
    ))
}

pub fn count(
    shared: &Shared,
    index: Option<&str>,
    req: &Request,
    partial: bool,
) -> ApiResult<Reply> {
    let body = req.json_body()?;
    let query = match &body {
        Some(Value::Object(o)) => count_body_query(o)?,
        Some(Value::Null) | None => crate::engine::query::Query::MatchAll,
        Some(_) => return Err(ApiError::parsing("request body must be an object")),
    };
    let mut search = SearchRequest {
        query,
        size: 0,
        track_total_hits: TrackTotal::Exact,
        ..SearchRequest::default()
    };
    if let Some(q) = req.param("q") {
        search = SearchRequest::parse(None, &[("q".into(), q.into())])?;
        search.size = 0;
        search.track_total_hits = TrackTotal::Exact;
    }
    if let Some(m) = req.param("min_score") {
        search.min_score = m.parse().ok();
    }
    let mut c = shared.lock();
    let targets = c.resolve(index.unwrap_or("_all"), req.resolve_opts(true)?)?;
    let plan = plan_search(shared, &mut c, &targets, req)?;
    let outcome = execute(&mut c.indices, &plan, &search, None, partial)?;
    let failed = outcome.failed.len();
    Ok(Reply::json(
        200,
        &json!({"count": outcome.total.map(|t| t.0).unwrap_or(0), "_shards": {"total": outcome.shards_total, "successful": outcome.shards_total - failed, "skipped": 0, "failed": failed}}),
    ))
}

fn scroll_ids(req: &Request, body: &Option<Value>) -> Vec<String> {
    let mut ids = Vec::new();
    if let Some(id) = req.segments.get(2) {
        ids.extend(id.split(',').map(String::from));
    }
    if let Some(id) = req.param("scroll_id") {
        ids.extend(id.split(',').map(String::from));
    }
    match body.as_ref().and_then(|b| b.get("scroll_id")) {
        Some(Value::String(s)) => ids.push(s.clone()),
        Some(Value::Array(a)) => ids.extend(a.iter().filter_map(|v| v.as_str().map(String::from))),
        _ => {}
    }
    ids
}

pub fn scroll(
    shared: &Shared,
    _index: Option<&str>,
    req: &Request,
    partial: bool,
) -> ApiResult<Reply> {
    let started = Instant::now();
    let body = req.json_body()?;
    let id = scroll_ids(req, &body)
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::validation(&["scrollId is missing".into()]))?;
    let keep_alive = match body
        .as_ref()
        .and_then(|b| b.get("scroll"))
        .and_then(|s| s.as_str())
        .or(req.param("scroll"))
    {
        Some(s) => parse_time_value("scroll", s)?,
        None => None,
    };
    let as_int = req.flag("rest_total_hits_as_int")?;
    let mut c = shared.lock();
    let ctx = c.scrolls.get(&id).ok_or_else(|| context_missing(&id))?;
    let plan = plan_from_pinned(&ctx.pinned, &c);
    let (request, after, total) = (ctx.request.clone(), ctx.after.clone(), ctx.total);
    let mut outcome = execute(&mut c.indices, &plan, &request, after.as_ref(), partial)?;
    outcome.total = total;
    if let Some(ctx) = c.scrolls.get_mut(&id) {
        if let Some(pos) = outcome.last_position() {
            ctx.after = Some(pos);
        }
        if let Some(k) = keep_alive {
            ctx.expires = Instant::now() + k;
        }
    }
    drop(c);
    Ok(Reply::raw_json(
        200,
        outcome.render(
            &request,
            RenderOpts {
                total_as_int: as_int,
                took_ms: started.elapsed().as_millis() as u64,
            },
            &[("_scroll_id", json!(id))],
        ),
    ))
}

pub fn clear_scroll(shared: &Shared, _index: Option<&str>, req: &Request) -> ApiResult<Reply> {
    let body = req.json_body()?;
    let ids = scroll_ids(req, &body);
    let mut c = shared.lock();
    let targets: Vec<String> = if ids.iter().any(|i| i == "_all") {
        c.scrolls.keys().cloned().collect()
    } else {
        ids
    };
    let mut freed = 0;
    for id in targets {
        if let Some(s) = c.scrolls.remove(&id) {
            c.unpin(&s.pinned);
            freed += 1;
        }
    }
    Ok(Reply::json(
        if freed == 0 { 404 } else { 200 },
        &json!({"succeeded": true, "num_freed": freed}),
    ))
}

pub fn create_pit(shared: &Shared, index: &str, req: &Request) -> ApiResult<Reply> {
    let keep_alive = req
        .param("keep_alive")
        .ok_or_else(|| ApiError::validation(&["keep alive not specified".into()]))?;
    let keep_alive = parse_time_value("keep_alive", keep_alive)?
        .ok_or_else(|| ApiError::illegal_argument("keep_alive must be positive"))?;
    let mut c = shared.lock();
    let targets = c.resolve(
        index,
        ResolveOpts {
            allow_no_indices: false,
            ..ResolveOpts::default()
        },
    )?;
    let pinned = c.pin(&targets);
    let shards: usize = pinned.iter().map(|p| p.shards.len()).sum();
    let id = c.rng.base64_id(48);
    let created_ms = now_millis();
    c.pits.insert(
        id.clone(),
        Pit {
            id: id.clone(),
            pinned,
            created_ms,
            keep_alive,
            expires: Instant::now() + keep_alive,
        },
    );
    Ok(Reply::json(
        200,
        &json!({"pit_id": id, "_shards": {"total": shards, "successful": shards, "skipped": 0, "failed": 0}, "creation_time": created_ms}),
    ))
}

pub fn delete_pits(shared: &Shared, req: &Request, all: bool) -> ApiResult<Reply> {
    let mut c = shared.lock();
    let ids: Vec<String> = if all {
        c.pits.keys().cloned().collect()
    } else {
        let body = req
            .json_body()?
            .ok_or_else(|| ApiError::validation(&["no pit ids specified".into()]))?;
        match body.get("pit_id") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => return Err(ApiError::validation(&["no pit ids specified".into()])),
        }
    };
    let mut out = Vec::new();
    for id in ids {
        let removed = c.pits.remove(&id);
        let ok = removed.is_some();
        if let Some(p) = removed {
            c.unpin(&p.pinned);
        }
        out.push(json!({"pit_id": id, "successful": ok}));
    }
    Ok(Reply::json(200, &json!({"pits": out})))
}

pub fn get_all_pits(shared: &Shared) -> ApiResult<Reply> {
    let c = shared.lock();
    let pits: Vec<Value> = c.pits.values().map(|p| json!({"pit_id": p.id, "creation_time": p.created_ms, "keep_alive": p.keep_alive.as_millis() as u64})).collect();
    Ok(Reply::json(200, &json!({"pits": pits})))
}
