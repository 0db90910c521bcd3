//! The REST API: routes an OpenSearch request path to its handler ([`routes`]), validates URL
//! parameters, and turns results and errors into responses ([`request`]).

mod bulk;
mod cluster;
mod document;
mod fake;
mod indices;
mod request;
mod routes;
mod search;

use std::collections::HashSet;

use crate::error::{ApiError, ApiResult};
use crate::state::Shared;
pub use request::{parse_query_string, split_path, Reply, Request};
pub use routes::classify;
use routes::{route, Handler, COMMON_PARAMS};

/// Serves one request. `partial_shards` comes from a fault rule that fails one shard of a search.
pub async fn handle(
    shared: &Shared,
    req: Request,
    partial_shards: bool,
    reject_rules: &[u64],
) -> Reply {
    let (handler, index) = match route(&req.method, &req.segments) {
        Ok(r) => r,
        Err(allowed) if !allowed.is_empty() => {
            let mut allowed: Vec<&str> = allowed;
            allowed.sort();
            return Reply::json(
                405,
                &serde_json::json!({"error": format!("Incorrect HTTP method for uri [{}] and method [{}], allowed: [{}]", req.path, req.method, allowed.join(", ")), "status": 405}),
            );
        }
        Err(_) if not_modelled_api(&req.segments).is_some() => {
            let api = not_modelled_api(&req.segments).unwrap_or_default();
            return Reply::error(&ApiError::illegal_argument(format!(
                "[{api}] is not supported by the indexstream fake cluster (see the fake crate's README)"
            )));
        }
        Err(_) => {
            return Reply::json(
                400,
                &serde_json::json!({"error": format!("no handler found for uri [{}] and method [{}]", req.path, req.method), "status": 400}),
            )
        }
    };
    let allowed = handler.params();
    if allowed != ["*"] {
        let known: HashSet<&str> = allowed.iter().chain(COMMON_PARAMS).copied().collect();
        let unknown: Vec<&str> = req
            .params
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !known.contains(k))
            .collect();
        if let Some(first) = unknown.first() {
            let reason = if unknown.len() == 1 {
                format!(
                    "request [{}] contains unrecognized parameter: [{first}]",
                    req.path
                )
            } else {
                format!(
                    "request [{}] contains unrecognized parameters: {}",
                    req.path,
                    unknown
                        .iter()
                        .map(|u| format!("[{u}]"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            return Reply::error(&ApiError::illegal_argument(reason));
        }
    }
    let head = req.method == "HEAD";
    let result = dispatch(shared, handler, index, &req, partial_shards, reject_rules).await;
    let mut reply = match result {
        Ok(r) => r,
        Err(e) => Reply::error(&e),
    };
    if head {
        reply.body.clear();
    }
    reply
}

async fn dispatch(
    shared: &Shared,
    handler: Handler,
    index: Option<String>,
    req: &Request,
    partial: bool,
    reject_rules: &[u64],
) -> ApiResult<Reply> {
    use Handler::*;
    let index_ref = index.as_deref();
    match handler {
        Root => cluster::root(shared),
        Health => cluster::health(shared, index_ref, req).await,
        CatIndices => cluster::cat_indices(shared, index_ref, req),
        Fake => fake::handle(shared, req),
        Bulk => bulk::bulk(shared, index_ref, req, reject_rules).await,
        Refresh => indices::refresh(shared, index_ref, req),
        Search => search::search(shared, index_ref, req, partial),
        Count => search::count(shared, index_ref, req, partial),
        Scroll => search::scroll(shared, index_ref, req, partial),
        ClearScroll => search::clear_scroll(shared, index_ref, req),
        CreatePit => search::create_pit(shared, index_ref.unwrap_or_default(), req),
        DeletePits => search::delete_pits(shared, req, false),
        DeleteAllPits => search::delete_pits(shared, req, true),
        GetAllPits => search::get_all_pits(shared),
        Stats => indices::stats(shared, index_ref, req),
        Mget => document::mget(shared, index_ref, req),
        GetAliases => indices::get_aliases(shared, index_ref, req, false),
        HeadAlias => indices::get_aliases(shared, index_ref, req, true),
        PutAlias => indices::put_alias(shared, index_ref.unwrap_or_default(), req),
        DeleteAlias => indices::delete_alias(shared, index_ref.unwrap_or_default(), req),
        UpdateAliases => indices::update_aliases(shared, req),
        GetSettings => indices::get_settings(shared, index_ref, req),
        PutSettings => indices::put_settings(shared, index_ref, req),
        GetMapping => indices::get_mapping(shared, index_ref, req),
        PutMapping => indices::put_mapping(shared, index_ref.unwrap_or_default(), req),
        IndexDoc => document::index(shared, index_ref.unwrap_or_default(), req, false).await,
        CreateDoc => document::index(shared, index_ref.unwrap_or_default(), req, true).await,
        UpdateDoc => document::update(shared, index_ref.unwrap_or_default(), req).await,
        DeleteDoc => document::delete(shared, index_ref.unwrap_or_default(), req).await,
        GetDoc => document::get(shared, index_ref.unwrap_or_default(), req, false),
        GetSource => document::get(shared, index_ref.unwrap_or_default(), req, true),
        CreateIndex => indices::create(shared, index_ref.unwrap_or_default(), req),
        DeleteIndex => indices::delete(shared, index_ref.unwrap_or_default(), req),
        IndexExists => indices::exists(shared, index_ref.unwrap_or_default(), req),
        GetIndex => indices::get(shared, index_ref.unwrap_or_default(), req),
    }
}

/// `?refresh=` on a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshPolicy {
    No,
    Immediate,
    WaitFor,
}

impl RefreshPolicy {
    pub fn from_request(req: &Request) -> ApiResult<Self> {
        match req.param("refresh") {
            None | Some("false") => Ok(RefreshPolicy::No),
            Some("" | "true") => Ok(RefreshPolicy::Immediate),
            Some("wait_for") => Ok(RefreshPolicy::WaitFor),
            Some(other) => Err(ApiError::illegal_argument(format!(
                "Unknown value for refresh: [{other}]."
            ))),
        }
    }
}

/// Applies a write's refresh policy to the shards it touched (`(index, shard, seq_no)`).
/// Returns whether a refresh was forced.
pub async fn apply_refresh(
    shared: &Shared,
    policy: RefreshPolicy,
    touched: &[(String, u32, u64)],
) -> bool {
    match policy {
        RefreshPolicy::No => false,
        RefreshPolicy::Immediate => {
            {
                let mut c = shared.lock();
                for (index, shard, _) in touched {
                    if let Some(s) = c
                        .indices
                        .get_mut(index)
                        .and_then(|i| i.shards.get_mut(*shard as usize))
                    {
                        s.refresh();
                    }
                }
            }
            shared.refreshed.notify_waiters();
            !touched.is_empty()
        }
        RefreshPolicy::WaitFor => {
            let listen = |c: &mut crate::engine::Cluster, delta: isize| {
                for (index, shard, _) in touched {
                    if let Some(s) = c
                        .indices
                        .get_mut(index)
                        .and_then(|i| i.shards.get_mut(*shard as usize))
                    {
                        s.refresh_listeners = s.refresh_listeners.saturating_add_signed(delta);
                    }
                }
            };
            listen(&mut shared.lock(), 1);
            loop {
                let notified = shared.refreshed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let done = {
                    let c = shared.lock();
                    touched.iter().all(|(index, shard, seq)| {
                        c.indices
                            .get(index)
                            .and_then(|i| i.shards.get(*shard as usize))
                            .is_none_or(|s| s.is_searchable(*seq))
                    })
                };
                if done {
                    listen(&mut shared.lock(), -1);
                    return false;
                }
                notified.await;
            }
        }
    }
}

/// APIs OpenSearch has and the fake does not model, named in the 400 that refuses them.
const NOT_MODELLED_APIS: &[&str] = &[
    "_delete_by_query",
    "_update_by_query",
    "_msearch",
    "_reindex",
    "_close",
    "_open",
    "_mtermvectors",
    "_termvectors",
    "_explain",
    "_validate",
    "_field_caps",
    "_rank_eval",
    "_search_shards",
    "_render",
    "_forcemerge",
    "_shrink",
    "_split",
    "_clone",
    "_rollover",
    "_template",
    "_index_template",
    "_component_template",
    "_data_stream",
    "_ingest",
    "_snapshot",
    "_tasks",
    "_nodes",
    "_plugins",
    "_security",
];

/// The API of a path the fake has no route for, when it is one OpenSearch has: `_cat/count`,
/// `_delete_by_query`.
fn not_modelled_api(segments: &[String]) -> Option<String> {
    if let [cat, what, ..] = segments {
        if cat == "_cat" {
            return Some(format!("_cat/{what}"));
        }
    }
    segments
        .iter()
        .find(|s| NOT_MODELLED_APIS.contains(&s.as_str()))
        .cloned()
}
