//! The response body of a search, and `_source` filtering.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::execute::Outcome;
use super::request::{SearchRequest, SourceFilter};
use super::sort::{sort_value_json, After};
use crate::engine::shard::StoredDoc;

pub(super) fn filter_source(
    obj: &Map<String, Value>,
    prefix: &str,
    inc: &[String],
    exc: &[String],
) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in obj {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if exc.iter().any(|p| crate::engine::glob(p, &path)) {
            continue;
        }
        let included = inc.is_empty() || inc.iter().any(|p| crate::engine::glob(p, &path));
        match v {
            Value::Object(child) => {
                let sub_inc: &[String] = if included { &[] } else { inc };
                let could = included
                    || inc
                        .iter()
                        .any(|p| p.starts_with(&format!("{path}.")) || p.contains('*'));
                if could {
                    let filtered = filter_source(child, &path, sub_inc, exc);
                    if included || !filtered.is_empty() {
                        out.insert(k.clone(), Value::Object(filtered));
                    }
                }
            }
            _ if included => {
                out.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
    out
}

/// The `_source` of a document as the filter asks for it, as JSON text.
pub fn render_source(doc: &StoredDoc, filter: &SourceFilter) -> Option<String> {
    if filter.disabled {
        return None;
    }
    if filter.includes.is_empty() && filter.excludes.is_empty() {
        return Some(doc.source.to_string());
    }
    let parsed: Value = serde_json::from_str(&doc.source).ok()?;
    let obj = parsed.as_object()?;
    Some(Value::Object(filter_source(obj, "", &filter.includes, &filter.excludes)).to_string())
}

pub(super) fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&Value::String(s.to_string()).to_string());
    }
}

/// How the total appears: `{"value", "relation"}`, or an integer with `rest_total_hits_as_int`.
#[derive(Debug, Clone, Copy)]
pub struct RenderOpts {
    pub total_as_int: bool,
    pub took_ms: u64,
}

impl Outcome {
    /// Renders the response body. `extra` holds top-level fields such as `pit_id` or `_scroll_id`.
    pub fn render(&self, req: &SearchRequest, opts: RenderOpts, extra: &[(&str, Value)]) -> String {
        let mut out = String::with_capacity(256 + self.hits.len() * 512);
        out.push('{');
        for (k, v) in extra {
            push_json_str(&mut out, k);
            out.push(':');
            out.push_str(&v.to_string());
            out.push(',');
        }
        let failed = self.failed.len();
        let _ = write!(out, "\"took\":{},\"timed_out\":false,\"_shards\":{{\"total\":{},\"successful\":{},\"skipped\":0,\"failed\":{}", opts.took_ms, self.shards_total, self.shards_total - failed, failed);
        if failed > 0 {
            let failures: Vec<Value> = self.failed.iter().map(|(index, shard)| serde_json::json!({"shard": shard, "index": index, "node": "fake-node-0", "reason": {"type": "node_not_connected_exception", "reason": "[fake-node-0] disconnected (injected partial_shards fault)"}})).collect();
            out.push_str(",\"failures\":");
            out.push_str(&Value::Array(failures).to_string());
        }
        out.push_str("},\"hits\":{");
        match (self.total, opts.total_as_int) {
            (Some((n, _)), true) => {
                let _ = write!(out, "\"total\":{n},");
            }
            (None, true) => out.push_str("\"total\":-1,"),
            (Some((n, exact)), false) => {
                let _ = write!(
                    out,
                    "\"total\":{{\"value\":{n},\"relation\":\"{}\"}},",
                    if exact { "eq" } else { "gte" }
                );
            }
            (None, false) => {}
        }
        let show_scores = self.sorted_by_score || req.track_scores;
        match self.max_score {
            Some(m) if show_scores => {
                let _ = write!(out, "\"max_score\":{},", Value::from(m as f64));
            }
            _ => out.push_str("\"max_score\":null,"),
        }
        out.push_str("\"hits\":[");
        for (i, hit) in self.hits.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let ordinal = hit.tiebreak.0;
            out.push_str("{\"_index\":");
            push_json_str(&mut out, &self.indices[ordinal]);
            out.push_str(",\"_id\":");
            push_json_str(&mut out, &hit.doc.id);
            if req.version {
                let _ = write!(out, ",\"_version\":{}", hit.doc.version);
            }
            if req.seq_no_primary_term {
                let _ = write!(
                    out,
                    ",\"_seq_no\":{},\"_primary_term\":{}",
                    hit.doc.seq_no, hit.doc.primary_term
                );
            }
            if show_scores {
                let _ = write!(out, ",\"_score\":{}", Value::from(hit.score as f64));
            } else {
                out.push_str(",\"_score\":null");
            }
            if let Some(r) = &hit.doc.routing {
                out.push_str(",\"_routing\":");
                push_json_str(&mut out, r);
            }
            if let Some(src) = render_source(&hit.doc, &req.source) {
                out.push_str(",\"_source\":");
                out.push_str(&src);
            }
            if !req.sort.is_empty() {
                let clauses = &self.clauses[ordinal];
                let values: Vec<Value> = hit
                    .keys
                    .iter()
                    .zip(clauses)
                    .map(|(k, c)| sort_value_json(c, k))
                    .collect();
                out.push_str(",\"sort\":");
                out.push_str(&Value::Array(values).to_string());
            }
            out.push('}');
        }
        out.push_str("]}}");
        out
    }

    /// Where the next scroll page starts.
    pub fn last_position(&self) -> Option<After> {
        self.hits.last().map(|h| After {
            keys: h.keys.clone(),
            tiebreak: h.tiebreak,
        })
    }
}
