//! Paging: `search_after` on `_seq_no` and on a timestamp with ties, scroll, and point in time
//! with slices, each checked against a brute-force expectation.

use std::collections::{BTreeMap, HashSet};

use indexstream_fake::FakeCluster;
use serde_json::{json, Value};

use super::client::Http;

async fn loaded(n: usize, shards: u32) -> (FakeCluster, Http, BTreeMap<String, i64>) {
    let cluster = FakeCluster::builder().seed(5).start().await.unwrap();
    let http = Http::new(cluster.url());
    http.ok("PUT", "/p", Some(json!({"settings": {"number_of_shards": shards, "refresh_interval": -1}, "mappings": {"properties": {"ts": {"type": "date"}}}}))).await;
    let mut expected = BTreeMap::new();
    let mut body = String::new();
    for i in 0..n {
        // Many documents share a timestamp: the tiebreaker must keep paging exact.
        let ts = 1_700_000_000_000i64 + (i as i64 / 7) * 1000;
        expected.insert(format!("doc-{i:05}"), ts);
        body.push_str(&format!(
            "{{\"index\":{{\"_id\":\"doc-{i:05}\"}}}}\n{{\"ts\":{ts},\"i\":{i}}}\n"
        ));
    }
    http.bulk("/p/_bulk?refresh=true", body).await;
    (cluster, http, expected)
}

fn ids(page: &Value) -> Vec<String> {
    page["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn search_after_on_timestamp_and_id_visits_every_document_once_in_order() {
    let (_c, http, expected) = loaded(700, 3).await;
    let mut seen = Vec::new();
    let mut after: Option<Value> = None;
    loop {
        let mut body =
            json!({"size": 50, "sort": [{"ts": "asc"}, {"_id": "asc"}], "track_total_hits": false});
        if let Some(a) = &after {
            body["search_after"] = a.clone();
        }
        let page = http.ok("POST", "/p/_search", Some(body)).await;
        let hits = page["hits"]["hits"].as_array().unwrap();
        if hits.is_empty() {
            break;
        }
        after = Some(hits.last().unwrap()["sort"].clone());
        seen.extend(ids(&page));
    }
    let mut want: Vec<(i64, String)> = expected.iter().map(|(id, ts)| (*ts, id.clone())).collect();
    want.sort();
    assert_eq!(seen, want.into_iter().map(|(_, id)| id).collect::<Vec<_>>());
}

#[tokio::test]
async fn search_after_on_seq_no_per_shard_visits_every_document_once() {
    let (_c, http, expected) = loaded(500, 3).await;
    let mut seen = HashSet::new();
    for shard in 0..3 {
        let mut after = -1i64;
        let mut last_seq = -1i64;
        loop {
            let body = json!({"size": 40, "sort": ["_seq_no"], "seq_no_primary_term": true, "track_total_hits": false, "query": {"range": {"_seq_no": {"gt": after}}}});
            let page = http
                .ok(
                    "POST",
                    &format!("/p/_search?preference=_shards:{shard}|_primary"),
                    Some(body),
                )
                .await;
            let hits = page["hits"]["hits"].as_array().unwrap();
            if hits.is_empty() {
                break;
            }
            for h in hits {
                let seq = h["_seq_no"].as_i64().unwrap();
                assert!(seq > last_seq, "seq_no order");
                last_seq = seq;
                assert!(
                    seen.insert(h["_id"].as_str().unwrap().to_string()),
                    "a document came twice"
                );
            }
            after = last_seq;
        }
    }
    assert_eq!(seen.len(), expected.len());
}

#[tokio::test]
async fn desc_sort_with_a_range_filter_matches_brute_force() {
    let (_c, http, expected) = loaded(300, 2).await;
    let (lo, hi) = (1_700_000_005_000i64, 1_700_000_030_000i64);
    let page = http.ok("POST", "/p/_search", Some(json!({"size": 1000, "sort": [{"ts": "desc"}, {"_id": "desc"}], "query": {"bool": {"filter": [{"range": {"ts": {"gte": lo, "lt": hi}}}]}}}))).await;
    let mut want: Vec<(i64, String)> = expected
        .iter()
        .filter(|(_, ts)| **ts >= lo && **ts < hi)
        .map(|(id, ts)| (*ts, id.clone()))
        .collect();
    want.sort();
    want.reverse();
    assert_eq!(
        ids(&page),
        want.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>()
    );
    assert_eq!(
        page["hits"]["total"]["value"].as_u64().unwrap() as usize,
        want.len()
    );
}

#[tokio::test]
async fn scroll_returns_every_document_once_and_ignores_later_writes() {
    let (_c, http, expected) = loaded(260, 3).await;
    let first = http
        .ok(
            "POST",
            "/p/_search?scroll=1m",
            Some(json!({"size": 25, "sort": ["_doc"]})),
        )
        .await;
    let scroll_id = first["_scroll_id"].as_str().unwrap().to_string();
    http.ok("PUT", "/p/_doc/late?refresh=true", Some(json!({"ts": 1})))
        .await;
    let mut seen: Vec<String> = ids(&first);
    loop {
        let page = http
            .ok(
                "POST",
                "/_search/scroll",
                Some(json!({"scroll": "1m", "scroll_id": scroll_id})),
            )
            .await;
        let batch = ids(&page);
        if batch.is_empty() {
            break;
        }
        assert_eq!(page["hits"]["total"]["value"], 260);
        seen.extend(batch);
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), expected.len());
    assert_eq!(unique.len(), expected.len());
    let cleared = http
        .ok(
            "DELETE",
            "/_search/scroll",
            Some(json!({"scroll_id": [scroll_id.clone()]})),
        )
        .await;
    assert_eq!(cleared["num_freed"], 1);
    let (status, _) = http
        .call(
            "POST",
            "/_search/scroll",
            Some(json!({"scroll_id": scroll_id})),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn point_in_time_slices_partition_the_documents() {
    let (_c, http, expected) = loaded(200, 2).await;
    let pit = http
        .ok("POST", "/p/_search/point_in_time?keep_alive=1m", None)
        .await["pit_id"]
        .as_str()
        .unwrap()
        .to_string();
    http.ok("DELETE", "/p/_doc/doc-00000?refresh=true", None)
        .await;
    let mut seen = Vec::new();
    for slice in 0..3 {
        let page = http.ok("POST", "/_search", Some(json!({"size": 1000, "pit": {"id": pit, "keep_alive": "1m"}, "slice": {"id": slice, "max": 3}, "sort": ["_id"]}))).await;
        let batch = ids(&page);
        assert!(!batch.is_empty());
        seen.extend(batch);
    }
    seen.sort();
    assert_eq!(
        seen,
        expected.keys().cloned().collect::<Vec<_>>(),
        "the PIT still holds the deleted document, and slices are disjoint"
    );
}
