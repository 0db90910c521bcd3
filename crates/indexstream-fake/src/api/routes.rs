//! Which handler serves a method and path, and the API family fault rules match it by.

use crate::faults::ApiKind;

/// Where a request is routed, with the API family and indices that fault rules match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Handler {
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
    pub(super) fn params(self) -> &'static [&'static str] {
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

pub(super) fn route(
    method: &str,
    seg: &[String],
) -> Result<(Handler, Option<String>), Vec<&'static str>> {
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

pub(super) const COMMON_PARAMS: &[&str] = &[
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
