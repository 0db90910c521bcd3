//! Index management: create, delete, exists, get, settings, mappings, aliases, refresh, stats.

use serde_json::{json, Map, Value};

use super::{Reply, Request};
use crate::engine::index::{flatten_settings, AliasMeta};
use crate::engine::{glob, ResolveOpts};
use crate::error::{ApiError, ApiResult};
use crate::state::Shared;

pub fn create(shared: &Shared, name: &str, req: &Request) -> ApiResult<Reply> {
    let body = req.json_body()?.unwrap_or(Value::Null);
    let mut c = shared.lock();
    c.create_index(name, &body)?;
    Ok(Reply::json(
        200,
        &json!({"acknowledged": true, "shards_acknowledged": true, "index": name}),
    ))
}

pub fn delete(shared: &Shared, expr: &str, req: &Request) -> ApiResult<Reply> {
    let mut c = shared.lock();
    for part in expr.split(',') {
        if !part.contains('*')
            && part != "_all"
            && !c.indices.contains_key(part)
            && c.is_alias(part)
        {
            return Err(ApiError::illegal_argument(format!("The provided expression [{part}] matches an alias, specify the corresponding concrete indices instead.")));
        }
    }
    let targets = c.resolve(
        expr,
        ResolveOpts {
            aliases: false,
            ..req.resolve_opts(true)?
        },
    )?;
    for t in targets {
        c.delete_index(&t.index);
    }
    Ok(Reply::json(200, &json!({"acknowledged": true})))
}

pub fn exists(shared: &Shared, expr: &str, req: &Request) -> ApiResult<Reply> {
    let c = shared.lock();
    let found = match c.resolve(expr, req.resolve_opts(false)?) {
        Ok(t) => !t.is_empty(),
        Err(_) => false,
    };
    Ok(Reply::empty(if found { 200 } else { 404 }))
}

pub fn get(shared: &Shared, expr: &str, req: &Request) -> ApiResult<Reply> {
    let c = shared.lock();
    let targets = c.resolve(expr, req.resolve_opts(false)?)?;
    let mut out = Map::new();
    for t in targets {
        let Some(i) = c.indices.get(&t.index) else {
            continue;
        };
        let aliases: Map<String, Value> = i
            .aliases
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        out.insert(i.name.clone(), json!({"aliases": aliases, "mappings": i.mappings.to_json(), "settings": i.settings_json()}));
    }
    Ok(Reply::json(200, &Value::Object(out)))
}

pub fn refresh(shared: &Shared, expr: Option<&str>, req: &Request) -> ApiResult<Reply> {
    let (mut total, mut ok) = (0usize, 0usize);
    {
        let mut c = shared.lock();
        let targets = c.resolve(expr.unwrap_or("_all"), req.resolve_opts(true)?)?;
        for t in targets {
            if let Some(i) = c.indices.get_mut(&t.index) {
                total += i.shards.len() * (1 + i.replicas as usize);
                for s in &mut i.shards {
                    s.refresh();
                    ok += 1;
                }
            }
        }
    }
    shared.refreshed.notify_waiters();
    Ok(Reply::json(
        200,
        &json!({"_shards": {"total": total, "successful": ok, "failed": 0}}),
    ))
}

const METRICS: &[&str] = &[
    "docs",
    "store",
    "indexing",
    "get",
    "search",
    "refresh",
    "flush",
    "merge",
    "query_cache",
    "fielddata",
    "completion",
    "segments",
    "translog",
    "request_cache",
    "recovery",
    "warmer",
];

/// The response section of a requested metric (`merge` is reported as `merges`).
fn section(metric: &str) -> &str {
    if metric == "merge" {
        "merges"
    } else {
        metric
    }
}

fn shard_metrics(
    s: &crate::engine::shard::Shard,
    wanted: &[&str],
    segment_file_sizes: bool,
) -> Map<String, Value> {
    let mut m = Map::new();
    let docs = s.live_count();
    for w in wanted {
        let v = match *w {
            "docs" => json!({"count": docs, "deleted": s.deleted_docs()}),
            "store" => json!({"size_in_bytes": docs * 300, "reserved_in_bytes": 0}),
            "indexing" => {
                json!({"index_total": s.max_seq_no() + 1, "index_time_in_millis": 0, "index_current": 0, "index_failed": 0, "delete_total": 0, "delete_time_in_millis": 0, "delete_current": 0, "noop_update_total": s.noop_updates, "is_throttled": false, "throttle_time_in_millis": 0})
            }
            "refresh" => {
                json!({"total": s.refresh_total, "total_time_in_millis": 0, "external_total": s.external_refresh_total, "external_total_time_in_millis": 0, "listeners": 0})
            }
            // Not measured by the fake: present, with zeros, as on an idle node.
            "get" => {
                json!({"total": 0, "time_in_millis": 0, "exists_total": 0, "exists_time_in_millis": 0, "missing_total": 0, "missing_time_in_millis": 0, "current": 0})
            }
            "search" => {
                json!({"open_contexts": 0, "query_total": 0, "query_time_in_millis": 0, "query_current": 0, "fetch_total": 0, "fetch_time_in_millis": 0, "fetch_current": 0, "scroll_total": 0, "scroll_time_in_millis": 0, "scroll_current": 0, "point_in_time_total": 0, "point_in_time_time_in_millis": 0, "point_in_time_current": 0, "suggest_total": 0, "suggest_time_in_millis": 0, "suggest_current": 0})
            }
            "merge" => {
                json!({"current": 0, "current_docs": 0, "current_size_in_bytes": 0, "total": 0, "total_time_in_millis": 0, "total_docs": 0, "total_size_in_bytes": 0, "total_stopped_time_in_millis": 0, "total_throttled_time_in_millis": 0, "total_auto_throttle_in_bytes": 0})
            }
            "flush" => json!({"total": 0, "periodic": 0, "total_time_in_millis": 0}),
            "warmer" => json!({"current": 0, "total": 0, "total_time_in_millis": 0}),
            "query_cache" => {
                json!({"memory_size_in_bytes": 0, "total_count": 0, "hit_count": 0, "miss_count": 0, "cache_size": 0, "cache_count": 0, "evictions": 0})
            }
            "fielddata" => json!({"memory_size_in_bytes": 0, "evictions": 0}),
            "completion" => json!({"size_in_bytes": 0}),
            "segments" => {
                let mut seg = json!({"count": 0, "memory_in_bytes": 0, "terms_memory_in_bytes": 0, "stored_fields_memory_in_bytes": 0, "term_vectors_memory_in_bytes": 0, "norms_memory_in_bytes": 0, "points_memory_in_bytes": 0, "doc_values_memory_in_bytes": 0, "index_writer_memory_in_bytes": 0, "version_map_memory_in_bytes": 0, "fixed_bit_set_memory_in_bytes": 0, "max_unsafe_auto_id_timestamp": -1});
                if segment_file_sizes {
                    seg["file_sizes"] = json!({});
                }
                seg
            }
            "translog" => {
                json!({"operations": 0, "size_in_bytes": 0, "uncommitted_operations": 0, "uncommitted_size_in_bytes": 0, "earliest_last_modified_age": 0})
            }
            "request_cache" => {
                json!({"memory_size_in_bytes": 0, "evictions": 0, "hit_count": 0, "miss_count": 0})
            }
            "recovery" => {
                json!({"current_as_source": 0, "current_as_target": 0, "throttle_time_in_millis": 0})
            }
            other => json!({"fake": format!("{other} statistics are not modelled by the fake")}),
        };
        m.insert(section(w).to_string(), v);
    }
    m
}

/// The closest known name to a misspelled one (edit distance at most 2), for "did you mean".
fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    known
        .iter()
        .map(|k| (distance(name, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn add_metrics(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (k, v) in from {
        match (into.get_mut(k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => add_metrics(a, b),
            (Some(Value::Number(a)), Value::Number(b)) => {
                if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
                    *a = (x + y).into();
                }
            }
            (None, _) => {
                into.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
}

pub fn stats(shared: &Shared, expr: Option<&str>, req: &Request) -> ApiResult<Reply> {
    // The metric is the last path segment after `_stats`, if any.
    let metric = req
        .segments
        .iter()
        .position(|s| s == "_stats")
        .and_then(|p| req.segments.get(p + 1))
        .cloned();
    let wanted: Vec<&str> = match metric.as_deref() {
        None | Some("_all") => METRICS.to_vec(),
        Some(m) => {
            let mut out = Vec::new();
            for part in m.split(',') {
                let known = METRICS.iter().find(|k| **k == part).ok_or_else(|| {
                    let hint = closest(part, METRICS)
                        .map(|k| format!(" -> did you mean [{k}]?"))
                        .unwrap_or_default();
                    ApiError::illegal_argument(format!(
                        "request [{}] contains unrecognized metric: [{part}]{hint}",
                        req.path
                    ))
                })?;
                out.push(*known);
            }
            out
        }
    };
    let segment_file_sizes = req.flag("include_segment_file_sizes")?;
    let level = req.param("level").unwrap_or("indices");
    if !["cluster", "indices", "shards"].contains(&level) {
        return Err(ApiError::illegal_argument(format!(
            "level parameter must be one of [cluster] or [indices] or [shards] but was [{level}]"
        )));
    }
    let c = shared.lock();
    let targets = c.resolve(expr.unwrap_or("_all"), ResolveOpts::default())?;
    let mut all = Map::new();
    let mut indices = Map::new();
    let (mut total_copies, mut ok) = (0, 0);
    for t in &targets {
        let Some(i) = c.indices.get(&t.index) else {
            continue;
        };
        let mut primaries = Map::new();
        let mut shards = Map::new();
        for s in &i.shards {
            let metrics = shard_metrics(s, &wanted, segment_file_sizes);
            add_metrics(&mut primaries, &metrics);
            let mut copy = Map::new();
            copy.insert("routing".into(), json!({"state": "STARTED", "primary": true, "node": c.config.node_id, "relocating_node": null}));
            copy.extend(metrics);
            copy.insert("commit".into(), json!({"id": s.commit_id, "generation": s.external_refresh_total + 1, "user_data": {"history_uuid": i.uuid, "max_seq_no": s.max_seq_no().to_string(), "local_checkpoint": s.local_checkpoint().to_string()}, "num_docs": s.live_count()}));
            copy.insert("seq_no".into(), json!({"max_seq_no": s.max_seq_no(), "local_checkpoint": s.local_checkpoint(), "global_checkpoint": s.global_checkpoint()}));
            copy.insert(
                "retention_leases".into(),
                json!({"primary_term": s.primary_term, "version": 1, "leases": []}),
            );
            copy.insert(
                "shard_path".into(),
                json!({"state_path": "/fake", "data_path": "/fake", "is_custom_data_path": false}),
            );
            shards.insert(s.num.to_string(), Value::Array(vec![Value::Object(copy)]));
            total_copies += 1 + i.replicas as usize;
            ok += 1;
        }
        let mut entry = Map::new();
        entry.insert("uuid".into(), json!(i.uuid));
        entry.insert("primaries".into(), Value::Object(primaries.clone()));
        entry.insert("total".into(), Value::Object(primaries.clone()));
        if level == "shards" {
            entry.insert("shards".into(), Value::Object(shards));
        }
        let mut combined = all
            .remove("primaries")
            .and_then(|v| {
                if let Value::Object(m) = v {
                    Some(m)
                } else {
                    None
                }
            })
            .unwrap_or_default();
        add_metrics(&mut combined, &primaries);
        all.insert("primaries".into(), Value::Object(combined));
        indices.insert(i.name.clone(), Value::Object(entry));
    }
    let prim = all.get("primaries").cloned().unwrap_or_else(|| json!({}));
    let mut out = json!({"_shards": {"total": total_copies, "successful": ok, "failed": 0}, "_all": {"primaries": prim, "total": prim}});
    if level != "cluster" {
        out["indices"] = Value::Object(indices);
    }
    Ok(Reply::json(200, &out))
}

pub fn get_aliases(
    shared: &Shared,
    expr: Option<&str>,
    req: &Request,
    head: bool,
) -> ApiResult<Reply> {
    let name_filter: Option<String> = match req
        .segments
        .iter()
        .position(|s| s == "_alias" || s == "_aliases")
    {
        Some(p) => req.segments.get(p + 1).cloned(),
        None => None,
    };
    let c = shared.lock();
    let targets = c.resolve(
        expr.unwrap_or("_all"),
        ResolveOpts {
            aliases: expr.is_some(),
            ..req.resolve_opts(true)?
        },
    )?;
    let mut out = Map::new();
    let mut any = false;
    for t in targets {
        let Some(i) = c.indices.get(&t.index) else {
            continue;
        };
        let aliases: Map<String, Value> = i
            .aliases
            .iter()
            .filter(|(a, _)| {
                name_filter
                    .as_deref()
                    .is_none_or(|f| f.split(',').any(|p| p == "_all" || glob(p, a)))
            })
            .map(|(a, m)| (a.clone(), m.to_json()))
            .collect();
        if name_filter.is_some() && aliases.is_empty() {
            continue;
        }
        any |= !aliases.is_empty();
        out.insert(i.name.clone(), json!({"aliases": aliases}));
    }
    if let Some(f) = &name_filter {
        // Names asked for literally (no wildcard, not an exclusion) that no index has: a 404
        // that still carries the aliases found, as OpenSearch answers.
        let found: std::collections::HashSet<&str> = out
            .values()
            .filter_map(|v| v["aliases"].as_object())
            .flat_map(|a| a.keys().map(String::as_str))
            .collect();
        let mut missing: Vec<&str> = f
            .split(',')
            .filter(|p| !p.contains('*') && !p.starts_with('-') && *p != "_all")
            .filter(|p| !found.contains(p))
            .collect();
        missing.sort_unstable();
        if !any || !missing.is_empty() {
            if head {
                return Ok(Reply::empty(404));
            }
            let error = match missing.as_slice() {
                [] => format!("alias [{f}] missing"),
                [one] => format!("alias [{one}] missing"),
                many => format!("aliases [{}] missing", many.join(",")),
            };
            out.insert("error".into(), json!(error));
            out.insert("status".into(), json!(404));
            return Ok(Reply::json(404, &Value::Object(out)));
        }
    }
    Ok(Reply::json(200, &Value::Object(out)))
}

fn alias_name(req: &Request) -> ApiResult<String> {
    req.segments
        .get(2)
        .cloned()
        .ok_or_else(|| ApiError::illegal_argument("alias name is missing"))
}

fn add_alias(
    c: &mut crate::engine::Cluster,
    index_expr: &str,
    alias: &str,
    meta: AliasMeta,
) -> ApiResult<()> {
    if c.indices.contains_key(alias) {
        return Err(ApiError::new(400, "invalid_alias_name_exception", format!("Invalid alias name [{alias}]: an index or data stream exists with the same name as the alias")));
    }
    let targets = c.resolve(index_expr, ResolveOpts::concrete())?;
    for t in targets {
        if let Some(i) = c.indices.get_mut(&t.index) {
            i.aliases.insert(alias.to_string(), meta.clone());
        }
    }
    Ok(())
}

fn aliases_missing(names: &str) -> ApiError {
    ApiError::new(
        404,
        "aliases_not_found_exception",
        format!("aliases [{names}] missing"),
    )
    .with("resource.id", names)
    .with("resource.type", "aliases")
}

/// Removes the aliases matching `alias` (a name, pattern or comma list) from the indices of
/// `index_expr`; returns whether any was there.
fn remove_alias(c: &mut crate::engine::Cluster, index_expr: &str, alias: &str) -> ApiResult<bool> {
    let targets = c.resolve(index_expr, ResolveOpts::concrete())?;
    let mut removed = false;
    for t in targets {
        if let Some(i) = c.indices.get_mut(&t.index) {
            let names: Vec<String> = i
                .aliases
                .keys()
                .filter(|a| alias.split(',').any(|p| glob(p, a)))
                .cloned()
                .collect();
            for n in names {
                i.aliases.remove(&n);
                removed = true;
            }
        }
    }
    Ok(removed)
}

pub fn put_alias(shared: &Shared, index: &str, req: &Request) -> ApiResult<Reply> {
    let alias = alias_name(req)?;
    let meta = AliasMeta::parse(req.json_body()?.as_ref())?;
    add_alias(&mut shared.lock(), index, &alias, meta)?;
    Ok(Reply::json(200, &json!({"acknowledged": true})))
}

pub fn delete_alias(shared: &Shared, index: &str, req: &Request) -> ApiResult<Reply> {
    let alias = alias_name(req)?;
    if !remove_alias(&mut shared.lock(), index, &alias)? {
        return Err(aliases_missing(&alias));
    }
    Ok(Reply::json(200, &json!({"acknowledged": true})))
}

pub fn update_aliases(shared: &Shared, req: &Request) -> ApiResult<Reply> {
    let body = req
        .json_body()?
        .ok_or_else(|| ApiError::validation(&["At least one action is required".into()]))?;
    let actions = body
        .get("actions")
        .and_then(|a| a.as_array())
        .ok_or_else(|| ApiError::parsing("[aliases] expects an [actions] array"))?;
    let mut c = shared.lock();
    for action in actions {
        let (kind, spec) = action
            .as_object()
            .and_then(|o| o.iter().next())
            .ok_or_else(|| ApiError::parsing("[aliases] action must be an object"))?;
        let names = |one: &str, many: &str| -> Vec<String> {
            match (spec.get(one), spec.get(many)) {
                (Some(Value::String(s)), _) => vec![s.clone()],
                (_, Some(Value::Array(a))) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect(),
                (_, Some(Value::String(s))) => vec![s.clone()],
                _ => vec![],
            }
        };
        let indices = names("index", "indices");
        match kind.as_str() {
            "add" => {
                let meta = AliasMeta::parse(Some(spec))?;
                for i in &indices {
                    for a in names("alias", "aliases") {
                        add_alias(&mut c, i, &a, meta.clone())?;
                    }
                }
            }
            "remove" => {
                // `must_exist`: true fails on any missing alias, false never; unset fails only
                // when none of them exists.
                let aliases = names("alias", "aliases");
                if aliases.is_empty() && spec.get("aliases").is_some() {
                    return Err(ApiError::illegal_argument("[aliases] can't be empty"));
                }
                let must_exist = spec.get("must_exist").and_then(|v| v.as_bool());
                let mut missing = Vec::new();
                for a in &aliases {
                    let mut found = false;
                    for i in &indices {
                        found |= remove_alias(&mut c, i, a)?;
                    }
                    if !found {
                        missing.push(a.clone());
                    }
                }
                let fail = match must_exist {
                    Some(true) => !missing.is_empty(),
                    Some(false) => false,
                    None => !aliases.is_empty() && missing.len() == aliases.len(),
                };
                if fail {
                    return Err(aliases_missing(&missing.join(",")));
                }
            }
            "remove_index" => {
                for i in &indices {
                    let targets = c.resolve(i, ResolveOpts::concrete())?;
                    for t in targets {
                        c.delete_index(&t.index);
                    }
                }
            }
            other => {
                return Err(ApiError::parsing(format!(
                    "[aliases] unknown action [{other}]"
                )))
            }
        }
    }
    Ok(Reply::json(200, &json!({"acknowledged": true})))
}

fn flat(v: &Value, prefix: &str, out: &mut Map<String, Value>) {
    match v {
        Value::Object(o) => {
            for (k, child) in o {
                flat(
                    child,
                    &if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    },
                    out,
                );
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

pub fn get_settings(shared: &Shared, expr: Option<&str>, req: &Request) -> ApiResult<Reply> {
    let name_filter = req
        .segments
        .iter()
        .position(|s| s == "_settings")
        .and_then(|p| req.segments.get(p + 1))
        .filter(|n| n.as_str() != "_all")
        .cloned();
    let wanted = |k: &str| {
        name_filter
            .as_deref()
            .is_none_or(|f| f.split(',').any(|p| glob(p, k)))
    };
    let flat_settings = req.flag("flat_settings")?;
    let include_defaults = req.flag("include_defaults")?;
    let shape = |flat_map: Map<String, Value>| {
        if flat_settings {
            return Value::Object(flat_map);
        }
        let mut tree = Map::new();
        for (k, v) in flat_map {
            let parts: Vec<&str> = k.split('.').collect();
            let mut node = &mut tree;
            for p in &parts[..parts.len() - 1] {
                node = node
                    .entry(p.to_string())
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .expect("settings tree holds objects");
            }
            node.insert(parts[parts.len() - 1].to_string(), v);
        }
        Value::Object(tree)
    };
    let c = shared.lock();
    let targets = c.resolve(expr.unwrap_or("_all"), req.resolve_opts(true)?)?;
    let mut out = Map::new();
    for t in targets {
        let Some(i) = c.indices.get(&t.index) else {
            continue;
        };
        let flat_map: Map<String, Value> = i
            .settings
            .iter()
            .filter(|(k, _)| wanted(k))
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut entry = json!({"settings": shape(flat_map)});
        if include_defaults {
            let defaults: Map<String, Value> = i
                .defaults()
                .into_iter()
                .filter(|(k, _)| !i.settings.contains_key(*k) && wanted(k))
                .map(|(k, v)| (k.to_string(), Value::String(v)))
                .collect();
            entry["defaults"] = shape(defaults);
        }
        out.insert(i.name.clone(), entry);
    }
    Ok(Reply::json(200, &Value::Object(out)))
}

pub fn put_settings(shared: &Shared, expr: Option<&str>, req: &Request) -> ApiResult<Reply> {
    let mut body = req
        .json_body()?
        .ok_or_else(|| ApiError::validation(&["no settings to update".into()]))?;
    if let Some(inner) = body.get("settings").cloned() {
        body = inner;
    }
    let mut flat_map = Map::new();
    flat(&body, "", &mut flat_map);
    let changes = flatten_settings(&Value::Object(flat_map))?;
    let mut c = shared.lock();
    let targets = c.resolve(expr.unwrap_or("_all"), req.resolve_opts(true)?)?;
    for t in targets {
        if let Some(i) = c.indices.get_mut(&t.index) {
            i.update_settings(changes.clone())?;
        }
    }
    Ok(Reply::json(200, &json!({"acknowledged": true})))
}

pub fn get_mapping(shared: &Shared, expr: Option<&str>, req: &Request) -> ApiResult<Reply> {
    let c = shared.lock();
    let targets = c.resolve(expr.unwrap_or("_all"), req.resolve_opts(true)?)?;
    let mut out = Map::new();
    for t in targets {
        if let Some(i) = c.indices.get(&t.index) {
            out.insert(i.name.clone(), json!({"mappings": i.mappings.to_json()}));
        }
    }
    Ok(Reply::json(200, &Value::Object(out)))
}

pub fn put_mapping(shared: &Shared, expr: &str, req: &Request) -> ApiResult<Reply> {
    let body = req
        .json_body()?
        .ok_or_else(|| ApiError::validation(&["mapping source is missing".into()]))?;
    let mut c = shared.lock();
    let targets = c.resolve(expr, req.resolve_opts(true)?)?;
    for t in &targets {
        if let Some(i) = c.indices.get(&t.index) {
            i.mappings.clone().merge_json(&body)?;
        }
    }
    for t in targets {
        if let Some(i) = c.indices.get_mut(&t.index) {
            i.mappings.merge_json(&body)?;
        }
    }
    Ok(Reply::json(200, &json!({"acknowledged": true})))
}
