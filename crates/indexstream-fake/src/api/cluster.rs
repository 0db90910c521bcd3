//! `GET /`, `_cluster/health` and `_cat/indices`.

use std::time::Duration;

use serde_json::{json, Value};

use super::{Reply, Request};
use crate::engine::index::parse_time_value;
use crate::engine::ResolveOpts;
use crate::error::{ApiError, ApiResult};
use crate::state::Shared;

/// The version the fake reports: the newest 2.x line, so no version-gated test is skipped.
pub const VERSION: &str = "2.19.0";

pub fn root(shared: &Shared) -> ApiResult<Reply> {
    let c = shared.lock();
    Ok(Reply::json(
        200,
        &json!({
            "name": c.config.node_name,
            "cluster_name": c.config.cluster_name,
            "cluster_uuid": c.config.cluster_uuid,
            "version": {
                "distribution": "opensearch",
                "number": VERSION,
                "build_type": "fake",
                "build_hash": "indexstream-fake",
                "build_date": "2025-02-01T00:00:00.000000Z",
                "build_snapshot": false,
                "lucene_version": "9.12.1",
                "minimum_wire_compatibility_version": "7.10.0",
                "minimum_index_compatibility_version": "7.0.0"
            },
            "tagline": "The OpenSearch Project: https://opensearch.org/"
        }),
    ))
}

fn rank(status: &str) -> u8 {
    match status {
        "green" => 2,
        "yellow" => 1,
        _ => 0,
    }
}

fn health_body(shared: &Shared, index: Option<&str>, level: &str) -> (Value, &'static str) {
    let c = shared.lock();
    let targets = match index {
        Some(expr) => match c.resolve(expr, ResolveOpts::default()) {
            Ok(t) => Some(t.into_iter().map(|t| t.index).collect::<Vec<_>>()),
            Err(_) => None,
        },
        None => Some(c.indices.keys().cloned().collect()),
    };
    let (mut primaries, mut unassigned) = (0usize, 0usize);
    let mut per_index = serde_json::Map::new();
    let status = match &targets {
        None => "red",
        Some(names) => {
            for name in names {
                if let Some(i) = c.indices.get(name) {
                    let n = i.shards.len();
                    let missing = n * i.replicas as usize;
                    primaries += n;
                    unassigned += missing;
                    let color = if missing > 0 { "yellow" } else { "green" };
                    let mut entry = json!({
                        "status": color,
                        "number_of_shards": n,
                        "number_of_replicas": i.replicas,
                        "active_primary_shards": n,
                        "active_shards": n,
                        "relocating_shards": 0,
                        "initializing_shards": 0,
                        "unassigned_shards": missing,
                    });
                    if level == "shards" {
                        let shards: serde_json::Map<String, Value> = i
                            .shards
                            .iter()
                            .map(|s| {
                                (
                                    s.num.to_string(),
                                    json!({"status": color, "primary_active": true, "active_shards": 1, "relocating_shards": 0, "initializing_shards": 0, "unassigned_shards": i.replicas}),
                                )
                            })
                            .collect();
                        entry["shards"] = Value::Object(shards);
                    }
                    per_index.insert(name.clone(), entry);
                }
            }
            if unassigned > 0 {
                "yellow"
            } else {
                "green"
            }
        }
    };
    let total = primaries + unassigned;
    let pct = if total == 0 {
        100.0
    } else {
        primaries as f64 * 100.0 / total as f64
    };
    let mut body = json!({
            "cluster_name": c.config.cluster_name,
            "status": status,
            "timed_out": false,
            "number_of_nodes": 1,
            "number_of_data_nodes": 1,
            "discovered_master": true,
            "discovered_cluster_manager": true,
            "active_primary_shards": primaries,
            "active_shards": primaries,
            "relocating_shards": 0,
            "initializing_shards": 0,
            "unassigned_shards": unassigned,
            "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0,
            "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": pct
    });
    // `level=indices|shards` adds the per-index (and per-shard) health.
    if level != "cluster" {
        body["indices"] = Value::Object(per_index);
    }
    (body, status)
}

/// Whether the one node and these active shards satisfy `wait_for_nodes` (`N`, `>=N`, `<=N`,
/// `>N`, `<N`) and `wait_for_active_shards` (`N` or `all`).
fn waits_satisfied(req: &Request, active: u64) -> ApiResult<bool> {
    let nodes: i64 = 1;
    if let Some(w) = req.param("wait_for_nodes") {
        let (op, n) = ["<=", ">=", "<", ">"]
            .iter()
            .find_map(|op| w.strip_prefix(op).map(|n| (*op, n)))
            .unwrap_or(("=", w));
        let n: i64 = n.trim().parse().map_err(|_| {
            ApiError::illegal_argument(format!("failed to parse [wait_for_nodes] value [{w}]"))
        })?;
        let ok = match op {
            "<=" => nodes <= n,
            ">=" => nodes >= n,
            "<" => nodes < n,
            ">" => nodes > n,
            _ => nodes == n,
        };
        if !ok {
            return Ok(false);
        }
    }
    if let Some(w) = req.param("wait_for_active_shards") {
        if w != "all" {
            let n: u64 = w.parse().map_err(|_| {
                ApiError::illegal_argument(format!(
                    "failed to parse [wait_for_active_shards] value [{w}]"
                ))
            })?;
            if active < n {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

pub async fn health(shared: &Shared, index: Option<&str>, req: &Request) -> ApiResult<Reply> {
    let wanted = req.param("wait_for_status").map(rank);
    let timeout = match req.param("timeout") {
        Some(t) => parse_time_value("timeout", t)?.unwrap_or(Duration::from_secs(30)),
        None => Duration::from_secs(30),
    };
    let level = req.param("level").unwrap_or("cluster");
    if !matches!(level, "cluster" | "indices" | "shards") {
        return Err(ApiError::illegal_argument(format!(
            "No enum constant org.opensearch.cluster.health.ClusterHealthRequest.Level.{}",
            level.to_ascii_uppercase()
        )));
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (mut body, status) = health_body(shared, index, level);
        let active = body["active_shards"].as_u64().unwrap_or(0);
        let satisfied = wanted.is_none_or(|w| rank(status) >= w) && waits_satisfied(req, active)?;
        if satisfied {
            return Ok(Reply::json(200, &body));
        }
        if tokio::time::Instant::now() >= deadline {
            body["timed_out"] = json!(true);
            return Ok(Reply::json(408, &body));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn cat_indices(shared: &Shared, index: Option<&str>, req: &Request) -> ApiResult<Reply> {
    let c = shared.lock();
    let targets = c.resolve(index.unwrap_or("_all"), ResolveOpts::default())?;
    let rows: Vec<Value> = targets
        .iter()
        .filter_map(|t| c.indices.get(&t.index))
        .map(|i| {
            json!({
                "health": if i.replicas > 0 { "yellow" } else { "green" },
                "status": "open",
                "index": i.name,
                "uuid": i.uuid,
                "pri": i.shards.len().to_string(),
                "rep": i.replicas.to_string(),
                "docs.count": i.docs_count().to_string(),
                "docs.deleted": "0",
            })
        })
        .collect();
    if req.param("format") == Some("json") {
        return Ok(Reply::json(200, &Value::Array(rows)));
    }
    let cols = [
        "health",
        "status",
        "index",
        "uuid",
        "pri",
        "rep",
        "docs.count",
        "docs.deleted",
    ];
    let mut out = String::new();
    if req.flag("v")? {
        out.push_str(&cols.join(" "));
        out.push('\n');
    }
    for r in rows {
        let line: Vec<String> = cols
            .iter()
            .map(|c| r[*c].as_str().unwrap_or_default().to_string())
            .collect();
        out.push_str(&line.join(" "));
        out.push('\n');
    }
    Ok(Reply::text(200, out))
}
