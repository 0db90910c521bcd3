//! Single-document APIs: index, create, update, delete, get (realtime or not), `_source`, mget.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::{apply_refresh, RefreshPolicy, Reply, Request};
use crate::engine::routing::shard_for;
use crate::engine::search::{render_source, SourceFilter};
use crate::engine::{Cluster, ExternalVersion, ResolveOpts, WriteOp, WriteRequest};
use crate::error::{ApiError, ApiResult};
use crate::state::Shared;

fn cas(req: &Request) -> ApiResult<(Option<i64>, Option<i64>)> {
    Ok((
        req.int_param("if_seq_no")?,
        req.int_param("if_primary_term")?,
    ))
}

/// The `version`/`version_type` parameters of a write.
fn external_version(req: &Request) -> ApiResult<Option<ExternalVersion>> {
    ExternalVersion::parse(req.int_param("version")?, req.param("version_type"))
}

/// Rejects parameters the fake does not model rather than ignoring them silently.
pub fn check_unsupported(req: &Request) -> ApiResult<()> {
    if let Some(p) = req.param("pipeline") {
        return Err(ApiError::illegal_argument(format!(
            "pipeline with id [{p}] does not exist"
        )));
    }
    Ok(())
}

fn doc_id(req: &Request) -> Option<String> {
    req.segments.get(2).cloned()
}

pub fn parse_source(text: &str) -> ApiResult<(Arc<str>, Value)> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ApiError::new(
            400,
            "parse_exception",
            "request body is required",
        ));
    }
    let parsed: Value = serde_json::from_str(trimmed).map_err(|e| {
        ApiError::mapper_parsing("failed to parse").with(
            "caused_by",
            json!({"type": "json_parse_exception", "reason": e.to_string()}),
        )
    })?;
    Ok((Arc::from(trimmed), parsed))
}

async fn finish_write(
    shared: &Shared,
    req: &Request,
    policy: RefreshPolicy,
    result: crate::engine::WriteResult,
) -> ApiResult<Reply> {
    let touched = vec![(result.index.clone(), result.shard, result.seq_no)];
    let forced = if result.result == "noop" {
        false
    } else {
        apply_refresh(shared, policy, &touched).await
    };
    let mut body = result.to_json();
    if forced {
        body.insert("forced_refresh".into(), json!(true));
    }
    if req.segments.get(1).map(String::as_str) == Some("_update") {
        if let (Some(doc), Some(_)) = (&result.doc, req.param("_source")) {
            let filter = SourceFilter::default();
            if let Some(src) = render_source(doc, &filter) {
                body.insert("get".into(), json!({"_seq_no": doc.seq_no, "_primary_term": doc.primary_term, "found": true, "_source": serde_json::from_str::<Value>(&src).unwrap_or(Value::Null)}));
            }
        }
    }
    Ok(Reply::json(result.status, &Value::Object(body)))
}

pub async fn index(
    shared: &Shared,
    name: &str,
    req: &Request,
    create_endpoint: bool,
) -> ApiResult<Reply> {
    check_unsupported(req)?;
    let policy = RefreshPolicy::from_request(req)?;
    let create = create_endpoint
        || match req.param("op_type") {
            None | Some("index") => false,
            Some("create") => true,
            Some(other) => {
                return Err(ApiError::illegal_argument(format!(
                    "opType must be 'create' or 'index', found: [{other}]"
                )))
            }
        };
    let (source, parsed) = parse_source(req.body_text()?)?;
    let (if_seq_no, if_primary_term) = cas(req)?;
    let result = {
        let mut c = shared.lock();
        let target = c.write_index(name, req.flag("require_alias")?)?;
        c.write(
            WriteRequest {
                index: target,
                id: doc_id(req),
                routing: req.param("routing").map(String::from),
                op: WriteOp::Index {
                    source,
                    parsed: Some(parsed),
                    create,
                },
                if_seq_no,
                if_primary_term,
                version: external_version(req)?,
            },
            Instant::now(),
        )?
    };
    finish_write(shared, req, policy, result).await
}

pub async fn update(shared: &Shared, name: &str, req: &Request) -> ApiResult<Reply> {
    let policy = RefreshPolicy::from_request(req)?;
    let body = req
        .json_body()?
        .ok_or_else(|| ApiError::validation(&["script or doc is missing".into()]))?;
    let (if_seq_no, if_primary_term) = cas(req)?;
    let result = {
        let mut c = shared.lock();
        let target = c.write_index(name, req.flag("require_alias")?)?;
        if !c.indices.contains_key(&target) {
            return Err(ApiError::index_not_found(name));
        }
        c.write(
            WriteRequest {
                index: target,
                id: doc_id(req),
                routing: req.param("routing").map(String::from),
                op: WriteOp::Update { body },
                if_seq_no,
                if_primary_term,
                version: external_version(req)?,
            },
            Instant::now(),
        )?
    };
    finish_write(shared, req, policy, result).await
}

pub async fn delete(shared: &Shared, name: &str, req: &Request) -> ApiResult<Reply> {
    check_unsupported(req)?;
    let policy = RefreshPolicy::from_request(req)?;
    let (if_seq_no, if_primary_term) = cas(req)?;
    let result = {
        let mut c = shared.lock();
        let target = single_index(&c, name)?;
        c.write(
            WriteRequest {
                index: target,
                id: doc_id(req),
                routing: req.param("routing").map(String::from),
                op: WriteOp::Delete,
                if_seq_no,
                if_primary_term,
                version: external_version(req)?,
            },
            Instant::now(),
        )?
    };
    finish_write(shared, req, policy, result).await
}

/// The one concrete index a single-document read or delete addresses.
fn single_index(c: &Cluster, name: &str) -> ApiResult<String> {
    let targets = c.resolve(
        name,
        ResolveOpts {
            allow_no_indices: false,
            ..ResolveOpts::default()
        },
    )?;
    match targets.as_slice() {
        [one] => Ok(one.index.clone()),
        [] => Err(ApiError::index_not_found(name)),
        many => Err(ApiError::illegal_argument(format!("alias [{name}] has more than one index associated with it [{}], can't execute a single index op", many.iter().map(|t| t.index.as_str()).collect::<Vec<_>>().join(", ")))),
    }
}

fn source_filter(req: &Request, doc_spec: Option<&Value>) -> SourceFilter {
    let mut f = SourceFilter::default();
    if let Some(v) = doc_spec.and_then(|d| d.get("_source")) {
        match v {
            Value::Bool(b) => f.disabled = !b,
            Value::String(s) => f.includes = s.split(',').map(String::from).collect(),
            Value::Array(a) => {
                f.includes = a
                    .iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            }
            Value::Object(o) => {
                let list = |k: &str| {
                    o.get(k)
                        .and_then(|v| v.as_array())
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                f.includes = list("includes");
                f.excludes = list("excludes");
            }
            _ => {}
        }
        return f;
    }
    match req.param("_source") {
        Some("false") => f.disabled = true,
        Some("true") | Some("") | None => {}
        Some(list) => f.includes = list.split(',').map(String::from).collect(),
    }
    if let Some(i) = req.param("_source_includes") {
        f.includes = i.split(',').map(String::from).collect();
    }
    if let Some(e) = req.param("_source_excludes") {
        f.excludes = e.split(',').map(String::from).collect();
    }
    f
}

/// Reads one document; `Ok((found, body))`.
fn get_one(
    c: &mut Cluster,
    name: &str,
    id: &str,
    routing: Option<&str>,
    realtime: bool,
    refresh: bool,
    filter: &SourceFilter,
) -> ApiResult<(bool, Map<String, Value>)> {
    let target = single_index(c, name)?;
    let index = c
        .indices
        .get_mut(&target)
        .ok_or_else(|| ApiError::index_not_found(name))?;
    let shard_num = shard_for(routing.unwrap_or(id), index.shards.len() as u32);
    let shard = &mut index.shards[shard_num as usize];
    if refresh {
        shard.refresh();
    }
    let doc = if realtime {
        let doc = shard.version_of(id).and_then(|e| e.doc.clone());
        if doc.is_some() && shard.has_unrefreshed(id) {
            shard.internal_refresh();
        }
        doc
    } else {
        shard.searchable_doc(id, shard.gen).cloned()
    };
    let mut body = Map::new();
    body.insert("_index".into(), json!(target));
    body.insert("_id".into(), json!(id));
    match doc {
        Some(doc) => {
            body.insert("_version".into(), json!(doc.version));
            body.insert("_seq_no".into(), json!(doc.seq_no));
            body.insert("_primary_term".into(), json!(doc.primary_term));
            body.insert("found".into(), json!(true));
            if let Some(r) = &doc.routing {
                body.insert("_routing".into(), json!(r.to_string()));
            }
            if let Some(src) = render_source(&doc, filter) {
                body.insert(
                    "_source".into(),
                    serde_json::from_str(&src).unwrap_or(Value::Null),
                );
            }
            Ok((true, body))
        }
        None => {
            body.insert("found".into(), json!(false));
            Ok((false, body))
        }
    }
}

pub fn get(shared: &Shared, name: &str, req: &Request, source_only: bool) -> ApiResult<Reply> {
    let id = doc_id(req).unwrap_or_default();
    let filter = source_filter(req, None);
    let (found, mut body) = get_one(
        &mut shared.lock(),
        name,
        &id,
        req.param("routing"),
        req.flag_or("realtime", true)?,
        req.flag("refresh")?,
        &filter,
    )?;
    if source_only {
        if !found {
            return Err(ApiError::new(
                404,
                "resource_not_found_exception",
                format!("Document not found [{name}]/[{id}]"),
            ));
        }
        return Ok(Reply::json(
            200,
            &body.remove("_source").unwrap_or(Value::Null),
        ));
    }
    Ok(Reply::json(
        if found { 200 } else { 404 },
        &Value::Object(body),
    ))
}

pub fn mget(shared: &Shared, default_index: Option<&str>, req: &Request) -> ApiResult<Reply> {
    let body = req
        .json_body()?
        .ok_or_else(|| ApiError::validation(&["no documents to get".into()]))?;
    let mut specs: Vec<Value> = Vec::new();
    if let Some(docs) = body.get("docs").and_then(|d| d.as_array()) {
        specs.extend(docs.iter().cloned());
    }
    if let Some(ids) = body.get("ids").and_then(|d| d.as_array()) {
        specs.extend(ids.iter().map(|id| json!({"_id": id})));
    }
    if specs.is_empty() {
        return Err(ApiError::validation(&["no documents to get".into()]));
    }
    let realtime = req.flag_or("realtime", true)?;
    let refresh = req.flag("refresh")?;
    let mut c = shared.lock();
    let mut out = Vec::new();
    for spec in &specs {
        let index = spec
            .get("_index")
            .and_then(|v| v.as_str())
            .or(default_index);
        let id = spec
            .get("_id")
            .map(crate::engine::index::value_text)
            .unwrap_or_default();
        let Some(index) = index else {
            return Err(ApiError::validation(&["index is missing for doc 0".into()]));
        };
        let routing = spec
            .get("routing")
            .and_then(|v| v.as_str())
            .or(req.param("routing"));
        let filter = source_filter(req, Some(spec));
        match get_one(&mut c, index, &id, routing, realtime, refresh, &filter) {
            Ok((_, doc)) => out.push(Value::Object(doc)),
            Err(e) => {
                out.push(json!({"_index": index, "_id": id, "error": e.body()["error"].clone()}))
            }
        }
    }
    Ok(Reply::json(200, &json!({"docs": out})))
}
