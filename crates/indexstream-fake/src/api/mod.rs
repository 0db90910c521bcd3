//! The REST API: routes an OpenSearch request path to its handler, validates URL parameters,
//! and turns results and errors into responses.

mod bulk;
mod cluster;
mod document;
mod fake;
mod indices;
mod search;

use std::collections::HashSet;

use serde_json::Value;

use crate::engine::ResolveOpts;
use crate::error::{ApiError, ApiResult};
use crate::faults::ApiKind;
use crate::server::Shared;

/// A response before it is written to the wire.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn json(status: u16, v: &Value) -> Self {
        Reply {
            status,
            body: v.to_string(),
            content_type: "application/json; charset=UTF-8",
            headers: vec![],
        }
    }

    pub fn raw_json(status: u16, body: String) -> Self {
        Reply {
            status,
            body,
            content_type: "application/json; charset=UTF-8",
            headers: vec![],
        }
    }

    pub fn text(status: u16, body: String) -> Self {
        Reply {
            status,
            body,
            content_type: "text/plain; charset=UTF-8",
            headers: vec![],
        }
    }

    pub fn empty(status: u16) -> Self {
        Reply {
            status,
            body: String::new(),
            content_type: "application/json; charset=UTF-8",
            headers: vec![],
        }
    }

    pub fn error(e: &ApiError) -> Self {
        Reply::json(e.status, &e.body())
    }
}

/// One parsed request.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub segments: Vec<String>,
    pub params: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn flag(&self, name: &str) -> ApiResult<bool> {
        match self.param(name) {
            None => Ok(false),
            Some("" | "true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(ApiError::illegal_argument(format!(
                "Failed to parse value [{other}] as only [true] or [false] are allowed."
            ))),
        }
    }

    pub fn flag_or(&self, name: &str, default: bool) -> ApiResult<bool> {
        if self.param(name).is_none() {
            return Ok(default);
        }
        self.flag(name)
    }

    /// How an index expression in this request resolves: `ignore_unavailable`,
    /// `allow_no_indices` (default given per API) and `expand_wildcards` (`open`, `closed`,
    /// `hidden`, `all`, `none`; the fake has no closed indices).
    pub fn resolve_opts(&self, allow_no_indices: bool) -> ApiResult<ResolveOpts> {
        let mut hidden = false;
        if let Some(v) = self.param("expand_wildcards") {
            for w in v.split(',').map(str::trim) {
                match w {
                    "all" | "hidden" => hidden = true,
                    "open" | "closed" | "none" | "" => {}
                    other => {
                        return Err(ApiError::illegal_argument(format!(
                            "No enum constant org.opensearch.action.support.IndicesOptions.WildcardStates.{}",
                            other.to_ascii_uppercase()
                        )))
                    }
                }
            }
        }
        Ok(ResolveOpts {
            ignore_unavailable: self.flag("ignore_unavailable")?,
            allow_no_indices: self.flag_or("allow_no_indices", allow_no_indices)?,
            aliases: true,
            hidden,
        })
    }

    pub fn int_param(&self, name: &str) -> ApiResult<Option<i64>> {
        match self.param(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::illegal_argument(format!(
                    "Failed to parse int parameter [{name}] with value [{v}]"
                ))
            }),
        }
    }

    /// The JSON body, `None` when empty.
    pub fn json_body(&self) -> ApiResult<Option<Value>> {
        if self.body.iter().all(|b| b.is_ascii_whitespace()) {
            if let Some(source) = self.param("source") {
                return serde_json::from_str(source)
                    .map(Some)
                    .map_err(|e| json_error(&e));
            }
            return Ok(None);
        }
        serde_json::from_slice(&self.body)
            .map(Some)
            .map_err(|e| json_error(&e))
    }

    pub fn body_text(&self) -> ApiResult<&str> {
        std::str::from_utf8(&self.body)
            .map_err(|_| ApiError::parsing("request body is not valid UTF-8"))
    }
}

pub fn json_error(e: &serde_json::Error) -> ApiError {
    ApiError::new(
        400,
        "json_parse_exception",
        format!("Unexpected character or end-of-input: {e}"),
    )
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

pub fn parse_query_string(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

pub fn split_path(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect()
}

/// Where a request is routed, with the API family and indices that fault rules match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handler {
    Root,
    Health,
    Bulk,
    Refresh,
    Search,
    Count,
    Scroll,
    ClearScroll,
    CreatePit,
    DeletePits,
    DeleteAllPits,
    GetAllPits,
    Stats,
    Mget,
    GetAliases,
    HeadAlias,
    PutAlias,
    DeleteAlias,
    UpdateAliases,
    GetSettings,
    PutSettings,
    GetMapping,
    PutMapping,
    CatIndices,
    IndexDoc,
    CreateDoc,
    GetDoc,
    GetSource,
    DeleteDoc,
    UpdateDoc,
    CreateIndex,
    DeleteIndex,
    IndexExists,
    GetIndex,
    Fake,
}

impl Handler {
    fn kind(self) -> ApiKind {
        use Handler::*;
        match self {
            Search | Count | Scroll | ClearScroll => ApiKind::Search,
            CreatePit | DeletePits | DeleteAllPits | GetAllPits => ApiKind::Pit,
            Bulk => ApiKind::Bulk,
            IndexDoc | CreateDoc | DeleteDoc | UpdateDoc => ApiKind::Index,
            GetDoc | GetSource | Mget => ApiKind::Get,
            Stats => ApiKind::Stats,
            Refresh => ApiKind::Refresh,
            Fake => ApiKind::Fake,
            _ => ApiKind::Admin,
        }
    }

    /// URL parameters each API accepts (besides the ones every API accepts).
    fn params(self) -> &'static [&'static str] {
        use Handler::*;
        match self {
            Root | Fake | CatIndices => &["*"],
            Health => &[
                "level",
                "local",
                "master_timeout",
                "cluster_manager_timeout",
                "timeout",
                "wait_for_active_shards",
                "wait_for_nodes",
                "wait_for_events",
                "wait_for_no_relocating_shards",
                "wait_for_no_initializing_shards",
                "wait_for_status",
                "expand_wildcards",
                "awareness_attribute",
            ],
            Bulk => &[
                "wait_for_active_shards",
                "refresh",
                "routing",
                "timeout",
                "type",
                "_source",
                "_source_excludes",
                "_source_includes",
                "pipeline",
                "require_alias",
                "batch_size",
            ],
            Refresh => &["ignore_unavailable", "allow_no_indices", "expand_wildcards"],
            Search => &[
                "analyzer",
                "analyze_wildcard",
                "ccs_minimize_roundtrips",
                "default_operator",
                "df",
                "explain",
                "stored_fields",
                "docvalue_fields",
                "from",
                "ignore_unavailable",
                "ignore_throttled",
                "allow_no_indices",
                "expand_wildcards",
                "lenient",
                "preference",
                "q",
                "routing",
                "scroll",
                "search_type",
                "size",
                "sort",
                "_source",
                "_source_excludes",
                "_source_includes",
                "terminate_after",
                "stats",
                "suggest_field",
                "suggest_mode",
                "suggest_size",
                "suggest_text",
                "timeout",
                "track_scores",
                "track_total_hits",
                "allow_partial_search_results",
                "typed_keys",
                "version",
                "seq_no_primary_term",
                "request_cache",
                "batched_reduce_size",
                "max_concurrent_shard_requests",
                "pre_filter_shard_size",
                "rest_total_hits_as_int",
                "search_pipeline",
                "include_named_queries_score",
                "phase_took",
                "cancel_after_time_interval",
            ],
            Count => &[
                "ignore_unavailable",
                "ignore_throttled",
                "allow_no_indices",
                "expand_wildcards",
                "min_score",
                "preference",
                "routing",
                "q",
                "analyzer",
                "analyze_wildcard",
                "default_operator",
                "df",
                "lenient",
                "terminate_after",
            ],
            Scroll => &["scroll", "scroll_id", "rest_total_hits_as_int"],
            ClearScroll => &["scroll_id"],
            CreatePit => &[
                "keep_alive",
                "preference",
                "routing",
                "expand_wildcards",
                "allow_partial_pit_creation",
            ],
            DeletePits | DeleteAllPits | GetAllPits => &[],
            Stats => &[
                "completion_fields",
                "fielddata_fields",
                "fields",
                "groups",
                "level",
                "types",
                "include_segment_file_sizes",
                "include_unloaded_segments",
                "expand_wildcards",
                "forbid_closed_indices",
            ],
            Mget => &[
                "stored_fields",
                "preference",
                "realtime",
                "refresh",
                "routing",
                "_source",
                "_source_excludes",
                "_source_includes",
            ],
            GetAliases | HeadAlias => &[
                "ignore_unavailable",
                "allow_no_indices",
                "expand_wildcards",
                "local",
            ],
            PutAlias | DeleteAlias | UpdateAliases => {
                &["timeout", "master_timeout", "cluster_manager_timeout"]
            }
            GetSettings => &[
                "master_timeout",
                "cluster_manager_timeout",
                "ignore_unavailable",
                "allow_no_indices",
                "expand_wildcards",
                "flat_settings",
                "local",
                "include_defaults",
            ],
            PutSettings => &[
                "master_timeout",
                "cluster_manager_timeout",
                "timeout",
                "preserve_existing",
                "ignore_unavailable",
                "allow_no_indices",
                "expand_wildcards",
                "flat_settings",
            ],
            GetMapping => &[
                "ignore_unavailable",
                "allow_no_indices",
                "expand_wildcards",
                "master_timeout",
                "cluster_manager_timeout",
                "local",
            ],
            PutMapping => &[
                "timeout",
                "master_timeout",
                "cluster_manager_timeout",
                "ignore_unavailable",
                "allow_no_indices",
                "expand_wildcards",
                "write_index_only",
            ],
            IndexDoc | CreateDoc => &[
                "wait_for_active_shards",
                "op_type",
                "refresh",
                "routing",
                "timeout",
                "version",
                "version_type",
                "if_seq_no",
                "if_primary_term",
                "pipeline",
                "require_alias",
            ],
            GetDoc | GetSource => &[
                "stored_fields",
                "preference",
                "realtime",
                "refresh",
                "routing",
                "_source",
                "_source_excludes",
                "_source_includes",
                "version",
                "version_type",
            ],
            DeleteDoc => &[
                "wait_for_active_shards",
                "refresh",
                "routing",
                "timeout",
                "if_seq_no",
                "if_primary_term",
                "version",
                "version_type",
            ],
            UpdateDoc => &[
                "wait_for_active_shards",
                "_source",
                "_source_excludes",
                "_source_includes",
                "lang",
                "refresh",
                "retry_on_conflict",
                "routing",
                "timeout",
                "if_seq_no",
                "if_primary_term",
                "require_alias",
            ],
            CreateIndex => &[
                "wait_for_active_shards",
                "timeout",
                "master_timeout",
                "cluster_manager_timeout",
            ],
            DeleteIndex => &[
                "timeout",
                "master_timeout",
                "cluster_manager_timeout",
                "ignore_unavailable",
                "allow_no_indices",
                "expand_wildcards",
            ],
            IndexExists | GetIndex => &[
                "local",
                "ignore_unavailable",
                "allow_no_indices",
                "expand_wildcards",
                "flat_settings",
                "include_defaults",
                "master_timeout",
                "cluster_manager_timeout",
            ],
        }
    }
}

fn route(method: &str, seg: &[String]) -> Result<(Handler, Option<String>), Vec<&'static str>> {
    use Handler::*;
    let s: Vec<&str> = seg.iter().map(String::as_str).collect();
    let m = method;
    let pick = |allowed: &[(&'static str, Handler)],
                index: Option<String>|
     -> Result<(Handler, Option<String>), Vec<&'static str>> {
        allowed
            .iter()
            .find(|(am, _)| *am == m)
            .map(|(_, h)| (*h, index))
            .ok_or_else(|| allowed.iter().map(|(am, _)| *am).collect())
    };
    let idx = |i: usize| Some(seg[i].clone());
    match s.as_slice() {
        [] => pick(&[("GET", Root), ("HEAD", Root)], None),
        ["_fake", ..] => Ok((Fake, None)),
        ["_cluster", "health"] => pick(&[("GET", Health)], None),
        ["_cluster", "health", _] => pick(&[("GET", Health)], idx(2)),
        ["_bulk"] => pick(&[("POST", Bulk), ("PUT", Bulk)], None),
        ["_refresh"] => pick(&[("POST", Refresh), ("GET", Refresh)], None),
        ["_search"] => pick(&[("GET", Search), ("POST", Search)], None),
        ["_count"] => pick(&[("GET", Count), ("POST", Count)], None),
        ["_search", "scroll"] | ["_search", "scroll", _] => pick(
            &[("GET", Scroll), ("POST", Scroll), ("DELETE", ClearScroll)],
            seg.get(2).cloned(),
        ),
        ["_search", "point_in_time"] => pick(&[("DELETE", DeletePits)], None),
        ["_search", "point_in_time", "_all"] => {
            pick(&[("GET", GetAllPits), ("DELETE", DeleteAllPits)], None)
        }
        ["_stats"] => pick(&[("GET", Stats)], None),
        ["_stats", _] => pick(&[("GET", Stats)], None),
        ["_mget"] => pick(&[("GET", Mget), ("POST", Mget)], None),
        ["_alias"] | ["_aliases"] if m == "GET" => Ok((GetAliases, None)),
        ["_aliases"] => pick(&[("POST", UpdateAliases)], None),
        ["_alias", _] => pick(&[("GET", GetAliases), ("HEAD", HeadAlias)], None),
        ["_settings"] => pick(&[("GET", GetSettings), ("PUT", PutSettings)], None),
        ["_settings", _] => pick(&[("GET", GetSettings)], None),
        ["_mapping"] => pick(&[("GET", GetMapping)], None),
        ["_cat", "indices"] | ["_cat", "indices", _] => {
            pick(&[("GET", CatIndices)], seg.get(2).cloned())
        }
        [_, "_bulk"] => pick(&[("POST", Bulk), ("PUT", Bulk)], idx(0)),
        [_, "_refresh"] => pick(&[("POST", Refresh), ("GET", Refresh)], idx(0)),
        [_, "_search"] => pick(&[("GET", Search), ("POST", Search)], idx(0)),
        [_, "_count"] => pick(&[("GET", Count), ("POST", Count)], idx(0)),
        [_, "_search", "point_in_time"] => pick(&[("POST", CreatePit)], idx(0)),
        [_, "_stats"] | [_, "_stats", _] => pick(&[("GET", Stats)], idx(0)),
        [_, "_mget"] => pick(&[("GET", Mget), ("POST", Mget)], idx(0)),
        [_, "_alias"] | [_, "_aliases"] => pick(&[("GET", GetAliases)], idx(0)),
        [_, "_alias", _] | [_, "_aliases", _] => pick(
            &[
                ("GET", GetAliases),
                ("HEAD", HeadAlias),
                ("PUT", PutAlias),
                ("POST", PutAlias),
                ("DELETE", DeleteAlias),
            ],
            idx(0),
        ),
        [_, "_settings"] | [_, "_settings", _] => {
            pick(&[("GET", GetSettings), ("PUT", PutSettings)], idx(0))
        }
        [_, "_mapping"] => pick(
            &[
                ("GET", GetMapping),
                ("PUT", PutMapping),
                ("POST", PutMapping),
            ],
            idx(0),
        ),
        [_, "_doc"] => pick(&[("POST", IndexDoc)], idx(0)),
        [_, "_doc", _] => pick(
            &[
                ("GET", GetDoc),
                ("HEAD", GetDoc),
                ("PUT", IndexDoc),
                ("POST", IndexDoc),
                ("DELETE", DeleteDoc),
            ],
            idx(0),
        ),
        [_, "_create", _] => pick(&[("PUT", CreateDoc), ("POST", CreateDoc)], idx(0)),
        [_, "_update", _] => pick(&[("POST", UpdateDoc)], idx(0)),
        [_, "_source", _] => pick(&[("GET", GetSource), ("HEAD", GetSource)], idx(0)),
        [first] if !first.starts_with('_') || m == "PUT" => pick(
            &[
                ("PUT", CreateIndex),
                ("DELETE", DeleteIndex),
                ("HEAD", IndexExists),
                ("GET", GetIndex),
            ],
            idx(0),
        ),
        _ => Err(vec![]),
    }
}

const COMMON_PARAMS: &[&str] = &[
    "pretty",
    "human",
    "error_trace",
    "filter_path",
    "format",
    "source",
    "source_content_type",
];

/// The API family and target indices of a request, for fault rules and the request log.
pub fn classify(method: &str, segments: &[String]) -> (ApiKind, Vec<String>) {
    match route(method, segments) {
        Ok((h, index)) => (
            h.kind(),
            index
                .map(|i| i.split(',').map(String::from).collect())
                .unwrap_or_default(),
        ),
        Err(_) => (ApiKind::Admin, vec![]),
    }
}

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
