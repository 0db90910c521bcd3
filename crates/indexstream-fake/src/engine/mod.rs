//! The cluster's state: indices, aliases, open point-in-time and scroll contexts, and the
//! write path every document API shares.

pub mod date;
pub mod index;
pub mod mapping;
pub mod query;
pub mod routing;
pub mod search;
pub mod shard;
pub mod sortkey;
pub mod visibility;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::engine::search::SearchRequest;
use crate::error::{ApiError, ApiResult};
use crate::rng::Rng;
use index::{AliasMeta, Index};
use mapping::Mappings;
use shard::{Gen, Op, StoredDoc, VersionEntry};
use visibility::VisibilityRule;

pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Settings of the whole fake cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Shards of an index created without `number_of_shards` (OpenSearch's default is 1).
    pub default_shards: u32,
    /// Refresh interval of an index created without one (OpenSearch's default is 1 s).
    pub default_refresh: Option<Duration>,
    pub cluster_name: String,
    pub node_name: String,
    pub node_id: String,
    pub cluster_uuid: String,
}

/// A concrete index a request reads, with the alias filter and routing that led to it.
#[derive(Debug, Clone)]
pub struct Target {
    pub index: String,
    pub filter: Option<Value>,
    pub routing: Option<String>,
}

impl Target {
    /// An index named directly (not through an alias).
    fn plain(index: &str) -> Self {
        Target {
            index: index.to_string(),
            filter: None,
            routing: None,
        }
    }

    /// An index reached through an alias, with the alias's filter and search routing.
    fn via_alias(index: &str, meta: &AliasMeta) -> Self {
        Target {
            index: index.to_string(),
            filter: meta.filter.clone(),
            routing: meta.search_routing.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ResolveOpts {
    pub ignore_unavailable: bool,
    pub allow_no_indices: bool,
    pub aliases: bool,
    /// Wildcards (and `_all`) also match hidden indices (`expand_wildcards=hidden|all`).
    pub hidden: bool,
}

impl ResolveOpts {
    /// Concrete indices only: names and patterns, never aliases.
    pub fn concrete() -> Self {
        ResolveOpts {
            aliases: false,
            ..ResolveOpts::default()
        }
    }
}

impl Default for ResolveOpts {
    fn default() -> Self {
        ResolveOpts {
            ignore_unavailable: false,
            allow_no_indices: true,
            aliases: true,
            hidden: false,
        }
    }
}

/// A search context pinned to shard generations: a point in time, or a scroll's snapshot.
#[derive(Debug, Clone)]
pub struct Pinned {
    pub index: String,
    pub uuid: String,
    pub filter: Option<Value>,
    pub shards: Vec<(u32, Gen)>,
}

#[derive(Debug)]
pub struct Pit {
    pub id: String,
    pub pinned: Vec<Pinned>,
    pub created_ms: i64,
    pub keep_alive: Duration,
    pub expires: Instant,
}

#[derive(Debug)]
pub struct Scroll {
    pub pinned: Vec<Pinned>,
    pub request: SearchRequest,
    pub after: Option<crate::engine::search::After>,
    /// The total computed for the first page, repeated on every page.
    pub total: Option<(u64, bool)>,
    pub expires: Instant,
}

/// What a write does to one document.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// `parsed` is `None` when the caller has not parsed the source (the `_bulk` fast path).
    Index {
        source: Arc<str>,
        parsed: Option<Value>,
        create: bool,
    },
    Update {
        body: Value,
    },
    Delete,
}

/// An externally supplied document version (`version` with `version_type=external` or
/// `external_gte`): the write succeeds only above (or at) the current version, and the document
/// takes that version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExternalVersion {
    Gt(u64),
    Gte(u64),
}

impl ExternalVersion {
    /// From the `version` and `version_type` parameters; `Ok(None)` for internal versioning.
    pub fn parse(version: Option<i64>, version_type: Option<&str>) -> ApiResult<Option<Self>> {
        let Some(v) = version else {
            return Ok(None);
        };
        let kind = version_type.unwrap_or("internal");
        let make = match kind {
            "external" => ExternalVersion::Gt,
            "external_gte" => ExternalVersion::Gte,
            "internal" => return Err(ApiError::validation(&["internal versioning can not be used for optimistic concurrency control. Please use `if_seq_no` and `if_primary_term` instead".into()])),
            other => return Err(ApiError::illegal_argument(format!("No version type match [{other}]"))),
        };
        if v < 0 {
            return Err(ApiError::validation(&[format!(
                "illegal version value [{v}] for version type [{}]",
                kind.to_ascii_uppercase()
            )]));
        }
        Ok(Some(make(v as u64)))
    }

    pub fn value(self) -> u64 {
        match self {
            ExternalVersion::Gt(v) | ExternalVersion::Gte(v) => v,
        }
    }
}

#[derive(Debug, Clone)]
pub struct WriteRequest {
    pub index: String,
    pub id: Option<String>,
    pub routing: Option<String>,
    pub op: WriteOp,
    pub if_seq_no: Option<i64>,
    pub if_primary_term: Option<i64>,
    pub version: Option<ExternalVersion>,
}

#[derive(Debug, Clone)]
pub struct WriteResult {
    pub index: String,
    pub id: String,
    pub version: u64,
    pub result: &'static str,
    pub seq_no: u64,
    pub primary_term: u64,
    pub shard: u32,
    pub status: u16,
    pub copies: u32,
    pub doc: Option<Arc<StoredDoc>>,
}

impl WriteResult {
    /// The result as JSON text (the hot path of `_bulk`), fields in OpenSearch's order.
    /// `extra` is inserted before the closing brace (`"status":201`, ...).
    pub fn write_json(&self, out: &mut String, extra: &str) {
        use std::fmt::Write;
        let noop = self.result == "noop";
        out.push_str("{\"_index\":");
        out.push_str(&Value::from(self.index.as_str()).to_string());
        out.push_str(",\"_id\":");
        out.push_str(&Value::from(self.id.as_str()).to_string());
        let _ = write!(
            out,
            ",\"_version\":{},\"result\":\"{}\",\"_shards\":{{\"total\":{},\"successful\":{},\"failed\":0}},\"_seq_no\":{},\"_primary_term\":{}{extra}}}",
            self.version,
            self.result,
            if noop { 0 } else { self.copies },
            if noop { 0 } else { 1 },
            self.seq_no,
            self.primary_term
        );
    }

    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("_index".into(), Value::from(self.index.clone()));
        m.insert("_id".into(), Value::from(self.id.clone()));
        m.insert("_version".into(), Value::from(self.version));
        m.insert("result".into(), Value::from(self.result));
        let noop = self.result == "noop";
        m.insert("_shards".into(), serde_json::json!({"total": if noop { 0 } else { self.copies }, "successful": if noop { 0 } else { 1 }, "failed": 0}));
        m.insert("_seq_no".into(), Value::from(self.seq_no));
        m.insert("_primary_term".into(), Value::from(self.primary_term));
        m
    }
}

#[derive(Debug)]
pub struct Cluster {
    pub indices: BTreeMap<String, Index>,
    pub pits: BTreeMap<String, Pit>,
    pub scrolls: HashMap<String, Scroll>,
    pub config: ClusterConfig,
    pub rng: Rng,
    pub visibility: Vec<VisibilityRule>,
}

/// Glob match with `*` wildcards, as index expressions use.
pub fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

pub fn validate_index_name(name: &str) -> ApiResult<()> {
    let invalid = |why: &str| {
        Err(ApiError::new(
            400,
            "invalid_index_name_exception",
            format!("Invalid index name [{name}], {why}"),
        )
        .with("index", name)
        .with("index_uuid", "_na_"))
    };
    if name.is_empty() {
        return invalid("must not be empty");
    }
    if name.chars().any(|c| c.is_uppercase()) {
        return invalid("must be lowercase");
    }
    if let Some(c) = name.chars().find(|c| "\\/*?\"<>| ,#:".contains(*c)) {
        return invalid(&format!("must not contain the following characters [ , \", *, \\, <, |, ,, >, /, ?, #, :] (found [{c}])"));
    }
    if name.starts_with(['_', '-', '+']) {
        return invalid("must not start with '_', '-', or '+'");
    }
    if name == "." || name == ".." {
        return invalid("must not be '.' or '..'");
    }
    if name.len() > 255 {
        return invalid("index name is too long, (".to_string().as_str());
    }
    Ok(())
}

fn deep_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        deep_merge(existing, v)
                    }
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn index_parsed(
    mappings: &mut Mappings,
    id: &str,
    parsed: &Value,
) -> ApiResult<Vec<(mapping::FieldId, mapping::FieldVal)>> {
    if !parsed.is_object() {
        return Err(ApiError::mapper_parsing("failed to parse").with("caused_by", serde_json::json!({"type": "not_x_content_exception", "reason": "Compressor detection can only be called on some xcontent bytes or compressed xcontent bytes"})));
    }
    mappings.index_document(id, parsed)
}

impl Cluster {
    pub fn new(config: ClusterConfig, seed: Option<u64>) -> Self {
        Cluster {
            indices: BTreeMap::new(),
            pits: BTreeMap::new(),
            scrolls: HashMap::new(),
            config,
            rng: seed.map(Rng::new).unwrap_or_else(Rng::from_time),
            visibility: Vec::new(),
        }
    }

    pub fn create_index(&mut self, name: &str, body: &Value) -> ApiResult<&Index> {
        validate_index_name(name)?;
        if let Some(existing) = self.indices.get(name) {
            return Err(ApiError::new(
                400,
                "resource_already_exists_exception",
                format!("index [{}/{}] already exists", name, existing.uuid),
            )
            .with("index", name)
            .with("index_uuid", existing.uuid.clone()));
        }
        if self.is_alias(name) {
            return Err(ApiError::new(
                400,
                "invalid_index_name_exception",
                format!("Invalid index name [{name}], an alias with the same name already exists"),
            )
            .with("index", name));
        }
        let obj = match body {
            Value::Null => Map::new(),
            Value::Object(o) => o.clone(),
            _ => return Err(ApiError::parsing("request body must be an object")),
        };
        let mut settings = BTreeMap::new();
        let mut mappings = Mappings::default();
        let mut aliases = BTreeMap::new();
        for (k, v) in &obj {
            match k.as_str() {
                "settings" => settings = index::flatten_settings(v)?,
                "mappings" => mappings = Mappings::from_json(v)?,
                "aliases" => {
                    for (alias, def) in v
                        .as_object()
                        .ok_or_else(|| ApiError::parsing("[aliases] must be an object"))?
                    {
                        aliases.insert(alias.clone(), AliasMeta::parse(Some(def))?);
                    }
                }
                other => {
                    return Err(ApiError::parsing(format!(
                        "unknown key [{other}] for create index"
                    )))
                }
            }
        }
        let uuid = self.rng.base64_id(22);
        let mut index = Index::new(
            name,
            uuid,
            now_millis(),
            settings,
            mappings,
            self.config.default_shards,
            self.config.default_refresh,
            &mut self.rng,
        )?;
        index.aliases = aliases;
        self.indices.insert(name.to_string(), index);
        Ok(&self.indices[name])
    }

    pub fn is_alias(&self, name: &str) -> bool {
        self.indices.values().any(|i| i.aliases.contains_key(name))
    }

    /// Expands an index expression (names, comma lists, wildcards, aliases, `_all`, `-excluded`).
    pub fn resolve(&self, expr: &str, opts: ResolveOpts) -> ApiResult<Vec<Target>> {
        let mut out: Vec<Target> = Vec::new();
        let push = |out: &mut Vec<Target>, t: Target| {
            if !out.iter().any(|o| o.index == t.index) {
                out.push(t);
            }
        };
        let parts: Vec<&str> = expr
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        let all = parts.is_empty() || parts == ["_all"] || parts == ["*"];
        if all {
            for (name, index) in &self.indices {
                if opts.hidden || !index.is_hidden() {
                    push(&mut out, Target::plain(name));
                }
            }
            return Ok(out);
        }
        for (i, part) in parts.iter().enumerate() {
            if let Some(excluded) = part.strip_prefix('-') {
                if i > 0 {
                    out.retain(|t| !glob(excluded, &t.index));
                    continue;
                }
            }
            if part.contains('*') {
                for (name, index) in &self.indices {
                    if glob(part, name) && (opts.hidden || !index.is_hidden()) {
                        push(&mut out, Target::plain(name));
                    }
                }
                if opts.aliases {
                    for (name, index) in &self.indices {
                        for (alias, meta) in &index.aliases {
                            if glob(part, alias) {
                                push(&mut out, Target::via_alias(name, meta));
                            }
                        }
                    }
                }
                continue;
            }
            if self.indices.contains_key(*part) {
                push(&mut out, Target::plain(part));
                continue;
            }
            let mut found = false;
            if opts.aliases {
                for (name, index) in &self.indices {
                    if let Some(meta) = index.aliases.get(*part) {
                        found = true;
                        push(&mut out, Target::via_alias(name, meta));
                    }
                }
            }
            if !found && !opts.ignore_unavailable {
                return Err(ApiError::index_not_found(part));
            }
        }
        if out.is_empty() && !opts.allow_no_indices {
            return Err(ApiError::index_not_found(expr));
        }
        Ok(out)
    }

    /// The concrete index a write to `name` goes to, creating it when it does not exist.
    pub fn write_index(&mut self, name: &str, require_alias: bool) -> ApiResult<String> {
        let holders: Vec<(&String, &AliasMeta)> = self
            .indices
            .iter()
            .filter_map(|(n, i)| i.aliases.get(name).map(|m| (n, m)))
            .collect();
        if !holders.is_empty() {
            if let Some((n, _)) = holders.iter().find(|(_, m)| m.is_write_index == Some(true)) {
                return Ok((*n).clone());
            }
            if holders.len() == 1 && holders[0].1.is_write_index != Some(false) {
                return Ok(holders[0].0.clone());
            }
            return Err(ApiError::illegal_argument(format!("no write index is defined for alias [{name}]. The write index may be explicitly disabled using is_write_index=false or the alias points to multiple indices without one being designated as a write index")));
        }
        if require_alias {
            return Err(ApiError::index_not_found_with_reason(name, format!("no such index [{name}] and [require_alias] request flag is [true] and [{name}] is not an alias")));
        }
        if !self.indices.contains_key(name) {
            self.create_index(name, &Value::Null)?;
        }
        Ok(name.to_string())
    }

    fn held_until(&mut self, index: &str, now: Instant) -> Option<Instant> {
        let rng = &mut self.rng;
        for rule in &mut self.visibility {
            if rule.index.as_deref().is_none_or(|p| glob(p, index))
                && rule.remaining != Some(0)
                && rng.next_f64() < rule.fraction
            {
                if let Some(r) = rule.remaining.as_mut() {
                    *r -= 1;
                }
                return Some(now + rule.delay);
            }
        }
        None
    }

    /// Applies one document write: the shared path of the index, create, update, delete and
    /// bulk APIs. Version conflicts and validation errors leave the shard untouched.
    pub fn write(&mut self, req: WriteRequest, now: Instant) -> ApiResult<WriteResult> {
        if req.if_seq_no.is_some() != req.if_primary_term.is_some()
            || req.if_primary_term == Some(0)
        {
            let p = if req.if_seq_no.is_some() {
                "ifSeqNo is set, but primary term is [0]"
            } else {
                "ifPrimaryTerm is set, but ifSeqNo is unassigned"
            };
            return Err(ApiError::validation(&[p.to_string()]));
        }
        let id = match (&req.id, &req.op) {
            (Some(id), _) => id.clone(),
            (None, WriteOp::Index { .. }) => self.rng.base64_id(20),
            (None, _) => return Err(ApiError::validation(&["id is missing".into()])),
        };
        if id.is_empty() {
            return Err(ApiError::illegal_argument(
                "if _id is specified it must not be empty",
            ));
        }
        if id.len() > 512 {
            return Err(ApiError::validation(&[format!(
                "id [{id}] is too long, must be no longer than 512 bytes but was: {}",
                id.len()
            )]));
        }
        let held = self.held_until(&req.index, now);
        let index = self
            .indices
            .get_mut(&req.index)
            .ok_or_else(|| ApiError::index_not_found(&req.index))?;
        let shard_num = routing::shard_for(
            req.routing.as_deref().unwrap_or(&id),
            index.shards.len() as u32,
        );
        let copies = 1 + index.replicas;
        let (name, uuid) = (index.name.clone(), index.uuid.clone());
        let shard = &index.shards[shard_num as usize];
        let existing = shard.version_of(&id).cloned();
        let live = existing.as_ref().and_then(|e| e.doc.clone());
        let conflict = |reason: String| ApiError::version_conflict(&name, &uuid, shard_num, reason);
        if let (Some(seq), Some(term)) = (req.if_seq_no, req.if_primary_term) {
            match &existing {
                Some(e) if e.doc.is_some() || matches!(req.op, WriteOp::Delete) => {
                    if e.seq_no as i64 != seq || e.primary_term as i64 != term || e.doc.is_none() {
                        return Err(conflict(format!("[{id}]: version conflict, required seqNo [{seq}], primary term [{term}]. current document has seqNo [{}] and primary term [{}]", e.seq_no, e.primary_term)));
                    }
                }
                _ if matches!(req.op, WriteOp::Update { .. }) => return Err(ApiError::document_missing(&name, &uuid, shard_num, &id)),
                _ => return Err(conflict(format!("[{id}]: version conflict, required seqNo [{seq}], primary term [{term}], but no document was found"))),
            }
        }
        if let Some(external) = req.version {
            let problem = match &req.op {
                _ if req.if_seq_no.is_some() => {
                    Some("compare and write operations can not use versioning")
                }
                WriteOp::Index { create: true, .. } => {
                    Some("create operations only support internal versioning. use index instead")
                }
                WriteOp::Update { .. } => {
                    Some("only internal versioning is supported by the update API")
                }
                _ => None,
            };
            if let Some(p) = problem {
                return Err(ApiError::validation(&[p.into()]));
            }
            if let Some(e) = &existing {
                match external {
                    ExternalVersion::Gt(v) if e.version >= v => return Err(conflict(format!("[{id}]: version conflict, current version [{}] is higher or equal to the one provided [{v}]", e.version))),
                    ExternalVersion::Gte(v) if e.version > v => return Err(conflict(format!("[{id}]: version conflict, current version [{}] is higher than the one provided [{v}]", e.version))),
                    _ => {}
                }
            }
        }
        let next_version = match req.version {
            Some(external) => external.value(),
            None => existing.as_ref().map(|e| e.version + 1).unwrap_or(1),
        };
        let (source, parsed, result) = match req.op {
            WriteOp::Delete => {
                let shard = &mut index.shards[shard_num as usize];
                let seq_no = shard.next_seq_no();
                let term = shard.primary_term;
                let id: Arc<str> = Arc::from(id.as_str());
                let entry = VersionEntry {
                    seq_no,
                    primary_term: term,
                    version: next_version,
                    doc: None,
                };
                shard.record(
                    id.clone(),
                    entry,
                    Op::Delete {
                        id: id.clone(),
                        seq_no,
                    },
                    held,
                );
                let found = live.is_some();
                return Ok(WriteResult {
                    index: name,
                    id: id.to_string(),
                    version: next_version,
                    result: if found { "deleted" } else { "not_found" },
                    seq_no,
                    primary_term: term,
                    shard: shard_num,
                    status: if found { 200 } else { 404 },
                    copies,
                    doc: None,
                });
            }
            WriteOp::Index {
                source,
                parsed,
                create,
            } => {
                if create {
                    if let Some(doc) = &live {
                        return Err(conflict(format!("[{id}]: version conflict, document already exists (current version [{}])", doc.version)));
                    }
                }
                (
                    source,
                    parsed,
                    if live.is_some() { "updated" } else { "created" },
                )
            }
            WriteOp::Update { body } => {
                let obj = body
                    .as_object()
                    .ok_or_else(|| ApiError::parsing("request body is required"))?;
                for key in obj.keys() {
                    if ![
                        "doc",
                        "upsert",
                        "doc_as_upsert",
                        "detect_noop",
                        "_source",
                        "scripted_upsert",
                        "script",
                    ]
                    .contains(&key.as_str())
                    {
                        return Err(ApiError::illegal_argument(format!(
                            "[UpdateRequest] unknown field [{key}]"
                        )));
                    }
                }
                if obj.contains_key("script") {
                    return Err(ApiError::illegal_argument(
                        "scripted updates are not supported by the indexstream fake cluster",
                    ));
                }
                let doc = obj.get("doc");
                let doc_as_upsert = obj
                    .get("doc_as_upsert")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false);
                let detect_noop = obj
                    .get("detect_noop")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(true);
                match &live {
                    Some(current) => {
                        let patch = doc.ok_or_else(|| {
                            ApiError::validation(&["script or doc is missing".into()])
                        })?;
                        let mut merged: Value = serde_json::from_str(&current.source)
                            .map_err(|e| ApiError::mapper_parsing(e.to_string()))?;
                        let before = merged.clone();
                        deep_merge(&mut merged, patch);
                        if detect_noop && merged == before {
                            index.shards[shard_num as usize].noop_updates += 1;
                            return Ok(WriteResult {
                                index: name,
                                id,
                                version: current.version,
                                result: "noop",
                                seq_no: current.seq_no,
                                primary_term: current.primary_term,
                                shard: shard_num,
                                status: 200,
                                copies,
                                doc: Some(current.clone()),
                            });
                        }
                        (
                            Arc::from(merged.to_string().as_str()),
                            Some(merged),
                            "updated",
                        )
                    }
                    None => {
                        let upsert = match (obj.get("upsert"), doc) {
                            (Some(u), _) => u.clone(),
                            (None, Some(d)) if doc_as_upsert => d.clone(),
                            _ => {
                                return Err(ApiError::document_missing(
                                    &name, &uuid, shard_num, &id,
                                ))
                            }
                        };
                        (
                            Arc::from(upsert.to_string().as_str()),
                            Some(upsert),
                            "created",
                        )
                    }
                }
            }
        };
        let fields = match parsed {
            None => match index.mappings.index_source_fast(&source) {
                Some(fields) => fields,
                None => {
                    let parsed: Value = serde_json::from_str(&source).map_err(|e| ApiError::mapper_parsing("failed to parse").with("caused_by", serde_json::json!({"type": "json_parse_exception", "reason": e.to_string()})))?;
                    index_parsed(&mut index.mappings, &id, &parsed)?
                }
            },
            Some(parsed) => index_parsed(&mut index.mappings, &id, &parsed)?,
        };
        let shard = &mut index.shards[shard_num as usize];
        let seq_no = shard.next_seq_no();
        let term = shard.primary_term;
        let id: Arc<str> = Arc::from(id.as_str());
        let doc = Arc::new(StoredDoc {
            id: id.clone(),
            routing: req.routing.map(|r| Arc::from(r.as_str())),
            seq_no,
            primary_term: term,
            version: next_version,
            source,
            fields: fields.into_boxed_slice(),
        });
        let entry = VersionEntry {
            seq_no,
            primary_term: term,
            version: next_version,
            doc: Some(doc.clone()),
        };
        shard.record(id.clone(), entry, Op::Index(doc.clone()), held);
        Ok(WriteResult {
            index: name,
            id: id.to_string(),
            version: next_version,
            result,
            seq_no,
            primary_term: term,
            shard: shard_num,
            status: if result == "created" { 201 } else { 200 },
            copies,
            doc: Some(doc),
        })
    }

    /// Pins the current generation of every shard of `targets` (for a point in time or scroll).
    pub fn pin(&mut self, targets: &[Target]) -> Vec<Pinned> {
        let mut out = Vec::new();
        for t in targets {
            let Some(index) = self.indices.get_mut(&t.index) else {
                continue;
            };
            let shards = index.shards.iter_mut().map(|s| {
                s.hold(s.gen);
                (s.num, s.gen)
            });
            out.push(Pinned {
                index: index.name.clone(),
                uuid: index.uuid.clone(),
                filter: t.filter.clone(),
                shards: shards.collect(),
            });
        }
        out
    }

    pub fn unpin(&mut self, pinned: &[Pinned]) {
        for p in pinned {
            let Some(index) = self.indices.get_mut(&p.index) else {
                continue;
            };
            if index.uuid != p.uuid {
                continue;
            }
            for (num, gen) in &p.shards {
                if let Some(s) = index.shards.get_mut(*num as usize) {
                    s.release(*gen);
                }
            }
        }
    }

    /// Periodic work: completes held writes whose time has come, runs due refreshes, and
    /// expires idle point-in-time and scroll contexts. Returns whether any shard refreshed.
    pub fn tick(&mut self, now: Instant) -> bool {
        let mut refreshed = false;
        for index in self.indices.values_mut() {
            for shard in &mut index.shards {
                shard.release_due(now);
                if let (Some(at), Some(interval)) = (shard.next_refresh_at, index.refresh_interval)
                {
                    if at <= now {
                        refreshed |= shard.scheduled_refresh(now, index.search_idle_after);
                        let next = at + interval;
                        shard.next_refresh_at =
                            Some(if next <= now { now + interval } else { next });
                    }
                }
            }
        }
        let expired: Vec<String> = self
            .pits
            .iter()
            .filter(|(_, p)| p.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            if let Some(p) = self.pits.remove(&k) {
                self.unpin(&p.pinned);
            }
        }
        let expired: Vec<String> = self
            .scrolls
            .iter()
            .filter(|(_, s)| s.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            if let Some(s) = self.scrolls.remove(&k) {
                self.unpin(&s.pinned);
            }
        }
        refreshed
    }

    pub fn delete_index(&mut self, name: &str) {
        if let Some(index) = self.indices.remove(name) {
            let uuid = index.uuid;
            for pit in self.pits.values_mut() {
                pit.pinned.retain(|p| p.uuid != uuid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_wildcards() {
        assert!(glob("logs-*", "logs-2024"));
        assert!(glob("*-2024", "logs-2024"));
        assert!(glob("l*s*4", "logs-2024"));
        assert!(!glob("logs-*", "metrics-2024"));
        assert!(glob("exact", "exact"));
    }
}
