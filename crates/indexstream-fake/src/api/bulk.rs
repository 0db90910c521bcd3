//! `_bulk`: newline-delimited actions, each answered on its own in `items`.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::document::check_unsupported;
use super::{apply_refresh, RefreshPolicy, Reply, Request};
use crate::engine::{WriteOp, WriteRequest};
use crate::error::{ApiError, ApiResult};
use crate::state::Shared;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Index,
    Create,
    Update,
    Delete,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Index => "index",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

#[derive(Debug)]
struct Item {
    action: Action,
    index: String,
    id: Option<String>,
    routing: Option<String>,
    if_seq_no: Option<i64>,
    if_primary_term: Option<i64>,
    version: Option<crate::engine::ExternalVersion>,
    require_alias: bool,
    /// The raw source line; parsed only where needed (updates), indexing reads it directly.
    source: Option<Arc<str>>,
}

fn token(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "START_OBJECT",
        Value::Array(_) => "START_ARRAY",
        Value::String(_) => "VALUE_STRING",
        Value::Number(_) => "VALUE_NUMBER",
        Value::Bool(_) => "VALUE_BOOLEAN",
        Value::Null => "VALUE_NULL",
    }
}

fn int_meta(meta: &Map<String, Value>, key: &str) -> Option<i64> {
    meta.get(key).and_then(|v| {
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    })
}

fn parse_items(
    text: &str,
    default_index: Option<&str>,
    default_require_alias: bool,
    default_routing: Option<&str>,
) -> ApiResult<Vec<Item>> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(ApiError::illegal_argument(
            "The bulk request must be terminated by a newline [\\n]",
        ));
    }
    let mut items = Vec::new();
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.trim().is_empty());
    let mut problems = Vec::new();
    while let Some((n, line)) = lines.next() {
        let malformed = |why: String| {
            ApiError::illegal_argument(format!("Malformed action/metadata line [{n}], {why}"))
        };
        let v: Value = serde_json::from_str(line)
            .map_err(|e| malformed(format!("expected START_OBJECT but found invalid JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| malformed(format!("expected START_OBJECT but found [{}]", token(&v))))?;
        let (name, meta) = obj
            .iter()
            .next()
            .ok_or_else(|| malformed("expected FIELD_NAME but found [END_OBJECT]".into()))?;
        let action = match name.as_str() {
            "index" => Action::Index,
            "create" => Action::Create,
            "update" => Action::Update,
            "delete" => Action::Delete,
            other => {
                return Err(malformed(format!(
                    "expected field [create], [delete], [index] or [update] but found [{other}]"
                )))
            }
        };
        let meta = meta.as_object().ok_or_else(|| {
            malformed(format!("expected START_OBJECT but found [{}]", token(meta)))
        })?;
        for key in meta.keys() {
            if ![
                "_index",
                "_id",
                "routing",
                "if_seq_no",
                "if_primary_term",
                "op_type",
                "require_alias",
                "version",
                "version_type",
                "pipeline",
                "retry_on_conflict",
                "_source",
                "dynamic_templates",
            ]
            .contains(&key.as_str())
            {
                return Err(ApiError::illegal_argument(format!(
                    "Action/metadata line [{n}] contains an unknown parameter [{key}]"
                )));
            }
        }
        let action = if action == Action::Index
            && meta.get("op_type").and_then(|v| v.as_str()) == Some("create")
        {
            Action::Create
        } else {
            action
        };
        let index = meta
            .get("_index")
            .and_then(|v| v.as_str())
            .or(default_index);
        if index.is_none() {
            problems.push("index is missing".to_string());
        }
        let source = if action == Action::Delete {
            None
        } else {
            let (_, src) = lines.next().ok_or_else(|| ApiError::illegal_argument(format!("Malformed action/metadata line [{n}], the source of the [{}] action is missing", action.name())))?;
            Some(Arc::from(src.trim()))
        };
        items.push(Item {
            action,
            index: index.unwrap_or_default().to_string(),
            id: meta.get("_id").map(crate::engine::index::value_text),
            routing: meta
                .get("routing")
                .map(crate::engine::index::value_text)
                .or(default_routing.map(String::from)),
            if_seq_no: int_meta(meta, "if_seq_no"),
            if_primary_term: int_meta(meta, "if_primary_term"),
            version: match crate::engine::ExternalVersion::parse(
                int_meta(meta, "version"),
                meta.get("version_type").and_then(|v| v.as_str()),
            ) {
                Ok(v) => v,
                Err(e) => {
                    // One problem of the request's validation, as OpenSearch lists them.
                    let reason = e.reason.trim_start_matches("Validation Failed: 1: ");
                    problems.push(reason.trim_end_matches(';').to_string());
                    None
                }
            },
            require_alias: meta
                .get("require_alias")
                .and_then(|v| v.as_bool())
                .unwrap_or(default_require_alias),
            source,
        });
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(&problems));
    }
    if items.is_empty() {
        return Err(ApiError::validation(&["no requests added".into()]));
    }
    Ok(items)
}

pub async fn bulk(
    shared: &Shared,
    default_index: Option<&str>,
    req: &Request,
    reject_rules: &[u64],
) -> ApiResult<Reply> {
    check_unsupported(req)?;
    let started = Instant::now();
    let policy = RefreshPolicy::from_request(req)?;
    let items = parse_items(
        req.body_text()?,
        default_index,
        req.flag("require_alias")?,
        req.param("routing"),
    )?;
    let rejected: Vec<Option<u16>> = if reject_rules.is_empty() {
        vec![None; items.len()]
    } else {
        let mut faults = shared.faults();
        items
            .iter()
            .map(|i| faults.reject_item(reject_rules, &i.index))
            .collect()
    };
    let mut touched = Vec::new();
    let mut errors = false;
    // Each item's answer is rendered once the refresh policy is known, as JSON text: `_bulk`
    // answers are large and building them as values dominated its profile.
    type Answer = (
        Action,
        Result<crate::engine::WriteResult, ApiError>,
        Option<String>,
        String,
    );
    let mut answers: Vec<Answer> = Vec::with_capacity(items.len());
    {
        let mut c = shared.lock();
        let now = Instant::now();
        for (item, reject) in items.into_iter().zip(rejected) {
            let action = item.action;
            let outcome = (|| -> ApiResult<crate::engine::WriteResult> {
                if let Some(status) = reject {
                    return Err(ApiError::new(
                        status,
                        "es_rejected_execution_exception",
                        "rejected execution of bulk item (injected reject_items fault)",
                    ));
                }
                let target = c.write_index(&item.index, item.require_alias)?;
                let op = match (action, item.source) {
                    (Action::Delete, _) => WriteOp::Delete,
                    (Action::Update, Some(raw)) => WriteOp::Update {
                        body: serde_json::from_str(&raw).map_err(|e| {
                            ApiError::mapper_parsing("failed to parse").with(
                                "caused_by",
                                json!({"type": "json_parse_exception", "reason": e.to_string()}),
                            )
                        })?,
                    },
                    (_, Some(raw)) => WriteOp::Index {
                        source: raw,
                        parsed: None,
                        create: action == Action::Create,
                    },
                    (_, None) => return Err(ApiError::validation(&["source is missing".into()])),
                };
                c.write(
                    WriteRequest {
                        index: target,
                        id: item.id.clone(),
                        routing: item.routing.clone(),
                        op,
                        if_seq_no: item.if_seq_no,
                        if_primary_term: item.if_primary_term,
                        version: item.version,
                    },
                    now,
                )
            })();
            match &outcome {
                Ok(r) if r.result != "noop" => touched.push((r.index.clone(), r.shard, r.seq_no)),
                Ok(_) => {}
                Err(_) => errors = true,
            }
            answers.push((action, outcome, item.id, item.index));
        }
    }
    let forced = apply_refresh(shared, policy, &touched).await;
    let mut body = String::with_capacity(64 + answers.len() * 200);
    body.push_str(&format!(
        "{{\"took\":{},\"errors\":{errors},\"items\":[",
        started.elapsed().as_millis()
    ));
    for (i, (action, outcome, id, index)) in answers.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!("{{\"{}\":", action.name()));
        match outcome {
            Ok(r) => {
                let extra = format!(
                    "{},\"status\":{}",
                    if forced {
                        ",\"forced_refresh\":true"
                    } else {
                        ""
                    },
                    r.status
                );
                r.write_json(&mut body, &extra);
            }
            Err(e) => body.push_str(
                &json!({"_index": index, "_id": id, "status": e.status, "error": e.cause()})
                    .to_string(),
            ),
        }
        body.push('}');
    }
    body.push_str("]}");
    Ok(Reply::raw_json(200, body))
}
