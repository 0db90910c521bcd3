//! The `/_fake` control API: fault rules, delayed visibility, the request log and a reset.

use serde_json::{json, Value};

use super::{Reply, Request};
use crate::engine::visibility::VisibilityRule;
use crate::error::{ApiError, ApiResult};
use crate::faults::FaultRule;
use crate::state::Shared;

fn parse<T: serde::de::DeserializeOwned>(req: &Request) -> ApiResult<T> {
    let body = req.json_body()?.unwrap_or(Value::Null);
    serde_json::from_value(body)
        .map_err(|e| ApiError::illegal_argument(format!("invalid rule: {e}")))
}

pub fn handle(shared: &Shared, req: &Request) -> ApiResult<Reply> {
    let seg: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    match (req.method.as_str(), &seg[1..]) {
        ("POST", ["faults"]) => {
            let rule: FaultRule = parse(req)?;
            rule.validate().map_err(ApiError::illegal_argument)?;
            let id = shared.faults().add(rule);
            Ok(Reply::json(200, &json!({"id": id})))
        }
        ("GET", ["faults"]) => Ok(Reply::json(200, &json!({"faults": shared.faults().list()}))),
        ("DELETE", ["faults"]) => {
            shared.faults().clear();
            Ok(Reply::json(200, &json!({"acknowledged": true})))
        }
        ("DELETE", ["faults", id]) => {
            let id: u64 = id.parse().map_err(|_| {
                ApiError::illegal_argument(format!("fault id [{id}] is not a number"))
            })?;
            let removed = shared.faults().remove(id);
            Ok(Reply::json(
                if removed { 200 } else { 404 },
                &json!({"acknowledged": removed}),
            ))
        }
        ("POST", ["visibility"]) => {
            let rule: VisibilityRule = parse(req)?;
            if !(0.0..=1.0).contains(&rule.fraction) {
                return Err(ApiError::illegal_argument(format!(
                    "fraction [{}] must be between 0 and 1",
                    rule.fraction
                )));
            }
            shared.lock().visibility.push(rule);
            Ok(Reply::json(200, &json!({"acknowledged": true})))
        }
        ("DELETE", ["visibility"]) => {
            shared.lock().visibility.clear();
            Ok(Reply::json(200, &json!({"acknowledged": true})))
        }
        ("GET", ["requests"]) => {
            let since = req.int_param("since")?.unwrap_or(0).max(0) as u64;
            let records = shared.log().since(since);
            Ok(Reply::json(200, &json!({"requests": records})))
        }
        ("DELETE", ["requests"]) => {
            shared.log().clear();
            Ok(Reply::json(200, &json!({"acknowledged": true})))
        }
        ("POST", ["reset"]) => {
            shared.faults().clear();
            let mut c = shared.lock();
            c.visibility.clear();
            c.indices.clear();
            c.pits.clear();
            c.scrolls.clear();
            Ok(Reply::json(200, &json!({"acknowledged": true})))
        }
        _ => Ok(Reply::json(
            400,
            &json!({"error": format!("no handler found for uri [{}] and method [{}]", req.path, req.method), "status": 400}),
        )),
    }
}
