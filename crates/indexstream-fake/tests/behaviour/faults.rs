//! Every fault kind, through the HTTP fault API and from Rust, and the request log.

use std::time::{Duration, Instant};

use indexstream_fake::{FakeCluster, FaultAction, FaultRule};
use serde_json::json;

use super::client::Http;

async fn start() -> (FakeCluster, Http) {
    let cluster = FakeCluster::builder().seed(11).start().await.unwrap();
    let http = Http::new(cluster.url());
    http.ok(
        "PUT",
        "/f",
        Some(json!({"settings": {"number_of_shards": 3, "refresh_interval": -1}})),
    )
    .await;
    let mut bulk = String::new();
    for i in 0..30 {
        bulk.push_str(&format!(
            "{{\"index\":{{\"_id\":\"{i}\"}}}}\n{{\"n\":{i}}}\n"
        ));
    }
    http.bulk("/f/_bulk?refresh=true", bulk).await;
    (cluster, http)
}

#[tokio::test]
async fn error_rules_answer_with_opensearch_shaped_bodies_for_count_requests() {
    let (_c, http) = start().await;
    http.ok("POST", "/_fake/faults", Some(json!({"api": "search", "status": 429, "action": "error", "count": 2, "retry_after_s": 3}))).await;
    for _ in 0..2 {
        let resp = http
            .client
            .post(format!("{}/f/_search", http.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 429);
        assert_eq!(resp.headers().get("retry-after").unwrap(), "3");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["type"], "es_rejected_execution_exception");
        assert_eq!(body["status"], 429);
    }
    let (status, _) = http.call("POST", "/f/_search", None).await;
    assert_eq!(status, 200, "the rule expired after its count");
    let (status, _) = http.call("GET", "/f/_doc/1", None).await;
    assert_eq!(status, 200, "rules scoped to search leave get alone");
}

#[tokio::test]
async fn status_503_and_500_rules() {
    let (_c, http) = start().await;
    http.ok(
        "POST",
        "/_fake/faults",
        Some(json!({"api": "get", "status": 503, "action": "error", "count": 1})),
    )
    .await;
    let (status, body) = http.call("GET", "/f/_doc/1", None).await;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (503, Some("unavailable_shards_exception"))
    );
    http.ok(
        "POST",
        "/_fake/faults",
        Some(json!({"api": "*", "status": 500, "action": "error", "count": 1})),
    )
    .await;
    let (status, _) = http.call("GET", "/f/_count", None).await;
    assert_eq!(status, 500);
}

#[tokio::test]
async fn delay_rules_delay() {
    let (_c, http) = start().await;
    http.ok(
        "POST",
        "/_fake/faults",
        Some(json!({"api": "stats", "action": "delay", "delay_ms": 300, "count": 1})),
    )
    .await;
    let t = Instant::now();
    http.ok("GET", "/f/_stats", None).await;
    assert!(t.elapsed() >= Duration::from_millis(300));
    let t = Instant::now();
    http.ok("GET", "/f/_stats", None).await;
    assert!(t.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn drop_rules_close_the_connection_without_an_answer() {
    let (cluster, http) = start().await;
    cluster
        .add_fault(FaultRule::new("refresh", FaultAction::Drop).count(1))
        .unwrap();
    let err = http
        .client
        .post(format!("{}/f/_refresh", http.base))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.is_request() || err.is_connect() || err.to_string().contains("connection"),
        "{err}"
    );
    http.ok("POST", "/f/_refresh", None).await;
    let log = cluster.requests();
    let dropped = log.iter().find(|r| r.path == "/f/_refresh").unwrap();
    assert_eq!(
        dropped.status, None,
        "a dropped request is logged without a status"
    );
    assert_eq!(dropped.faults.len(), 1);
}

#[tokio::test]
async fn partial_shard_failures_fail_one_shard_and_hide_its_hits() {
    let (_c, http) = start().await;
    http.ok(
        "POST",
        "/_fake/faults",
        Some(json!({"api": "search", "action": "partial_shards", "index": "f", "count": 1})),
    )
    .await;
    let r = http
        .ok("POST", "/f/_search", Some(json!({"size": 100})))
        .await;
    assert_eq!(r["_shards"]["failed"], 1);
    assert_eq!(r["_shards"]["successful"], 2);
    assert!(r["_shards"]["failures"][0]["reason"]["type"].is_string());
    assert!(r["hits"]["hits"].as_array().unwrap().len() < 30);
    let r = http
        .ok("POST", "/f/_search", Some(json!({"size": 100})))
        .await;
    assert_eq!(r["_shards"]["failed"], 0);
    assert_eq!(r["hits"]["hits"].as_array().unwrap().len(), 30);
}

#[tokio::test]
async fn reject_items_fails_single_bulk_items() {
    let (_c, http) = start().await;
    http.ok(
        "POST",
        "/_fake/faults",
        Some(json!({"api": "bulk", "action": "reject_items", "count": 2})),
    )
    .await;
    let mut bulk = String::new();
    for i in 100..105 {
        bulk.push_str(&format!(
            "{{\"index\":{{\"_index\":\"f\",\"_id\":\"{i}\"}}}}\n{{\"n\":{i}}}\n"
        ));
    }
    let r = http.bulk("/_bulk", bulk).await;
    assert_eq!(r["errors"], true);
    let statuses: Vec<u64> = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["index"]["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![429, 429, 201, 201, 201]);
    assert_eq!(
        r["items"][0]["index"]["error"]["type"],
        "es_rejected_execution_exception"
    );
    let (status, _) = http.call("GET", "/f/_doc/100", None).await;
    assert_eq!(status, 404, "a rejected item is not written");
}

#[tokio::test]
async fn probability_rules_follow_their_seed_and_index_scope() {
    let (_c, http) = start().await;
    http.ok("PUT", "/other", None).await;
    http.ok("POST", "/_fake/faults", Some(json!({"api": "*", "index": "f", "status": 503, "action": "error", "probability": 0.5, "seed": 3}))).await;
    let mut failures = 0;
    for _ in 0..60 {
        let (s, _) = http.call("GET", "/f/_count", None).await;
        failures += (s == 503) as u32;
        let (s, _) = http.call("GET", "/other/_count", None).await;
        assert_eq!(s, 200, "another index is not affected");
    }
    assert!((15..=45).contains(&failures), "{failures} of 60 at p=0.5");
    http.ok("DELETE", "/_fake/faults", None).await;
    let (s, _) = http.call("GET", "/f/_count", None).await;
    assert_eq!(s, 200, "DELETE /_fake/faults clears every rule");
}

#[tokio::test]
async fn invalid_rules_are_refused_with_the_reason() {
    let (_c, http) = start().await;
    let (s, body) = http
        .call(
            "POST",
            "/_fake/faults",
            Some(json!({"api": "nope", "action": "error"})),
        )
        .await;
    assert_eq!(s, 400);
    assert!(body["error"]["reason"]
        .as_str()
        .unwrap()
        .contains("unknown api [nope]"));
    let (s, _) = http
        .call(
            "POST",
            "/_fake/faults",
            Some(json!({"api": "search", "action": "explode"})),
        )
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn the_request_log_records_method_path_status_and_time() {
    let (_c, http) = start().await;
    http.ok("DELETE", "/_fake/requests", None).await;
    http.ok("GET", "/f/_doc/1", None).await;
    let (s, _) = http.call("GET", "/missing/_doc/1", None).await;
    assert_eq!(s, 404);
    let log = http.ok("GET", "/_fake/requests", None).await;
    let entries: Vec<_> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["api"] == "get")
        .collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["status"], 200);
    assert_eq!(entries[1]["status"], 404);
    assert!(entries[1]["at_ms"].as_f64().unwrap() >= entries[0]["at_ms"].as_f64().unwrap());
    assert_eq!(entries[1]["indices"][0], "missing");
}
