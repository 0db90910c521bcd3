//! Near-real-time visibility, per-shard refresh, checkpoints and refresh counters, CAS.

use std::time::Duration;

use indexstream_fake::{FakeCluster, VisibilityRule};
use serde_json::json;

use super::client::Http;

async fn start() -> (FakeCluster, Http) {
    let cluster = FakeCluster::builder().seed(7).start().await.unwrap();
    let http = Http::new(cluster.url());
    (cluster, http)
}

#[tokio::test]
async fn a_write_is_searchable_only_after_its_shard_refreshes_but_get_is_realtime() {
    let (_c, http) = start().await;
    http.ok(
        "PUT",
        "/nrt",
        Some(json!({"settings": {"number_of_shards": 1, "refresh_interval": -1}})),
    )
    .await;
    http.ok("PUT", "/nrt/_doc/1", Some(json!({"a": 1}))).await;
    assert_eq!(
        http.count("nrt", json!({"match_all": {}})).await,
        0,
        "visible before refresh"
    );
    let got = http.ok("GET", "/nrt/_doc/1", None).await;
    assert_eq!(got["found"], true, "realtime get must see the write");
    let (status, _) = http.call("GET", "/nrt/_doc/1?realtime=false", None).await;
    assert_eq!(status, 404, "a non-realtime get reads the searcher");
    http.ok("POST", "/nrt/_refresh", None).await;
    assert_eq!(http.count("nrt", json!({"match_all": {}})).await, 1);
}

#[tokio::test]
async fn realtime_get_of_an_unrefreshed_doc_counts_an_internal_refresh_only() {
    let (_c, http) = start().await;
    http.ok(
        "PUT",
        "/rt",
        Some(json!({"settings": {"refresh_interval": -1}})),
    )
    .await;
    http.ok("PUT", "/rt/_doc/1", Some(json!({"a": 1}))).await;
    let before =
        http.ok("GET", "/rt/_stats/refresh", None).await["_all"]["primaries"]["refresh"].clone();
    http.ok("GET", "/rt/_doc/1", None).await;
    let after =
        http.ok("GET", "/rt/_stats/refresh", None).await["_all"]["primaries"]["refresh"].clone();
    assert_eq!(
        after["total"].as_u64().unwrap(),
        before["total"].as_u64().unwrap() + 1
    );
    assert_eq!(after["external_total"], before["external_total"]);
    assert_eq!(http.count("rt", json!({"match_all": {}})).await, 0);
}

#[tokio::test]
async fn shards_refresh_on_their_own_timers() {
    let (_c, http) = start().await;
    http.ok(
        "PUT",
        "/timers",
        Some(json!({"settings": {"number_of_shards": 2, "refresh_interval": "400ms"}})),
    )
    .await;
    // One document on each shard, written together.
    let mut ids = (0, 0);
    let mut i = 0;
    while ids.0 == 0 || ids.1 == 0 {
        i += 1;
        let r = http
            .ok("PUT", &format!("/timers/_doc/{i}"), Some(json!({"n": i})))
            .await;
        let _ = r;
        let stats = http.shard_stats("timers").await;
        ids = (stats[0].1 + 1, stats[1].1 + 1);
    }
    // Sample the per-shard refresh counters: with independent phases they differ at times,
    // and one shard's documents become visible while the other's are not yet.
    let mut counters_differed = false;
    let mut visibility_differed = false;
    for _ in 0..120 {
        let s = http.shard_stats("timers").await;
        counters_differed |= s[0].2 != s[1].2;
        let visible = (
            http.ok("POST", "/timers/_search?preference=_shards:0&size=0", None)
                .await["hits"]["total"]["value"]
                .as_u64()
                .unwrap(),
            http.ok("POST", "/timers/_search?preference=_shards:1&size=0", None)
                .await["hits"]["total"]["value"]
                .as_u64()
                .unwrap(),
        );
        visibility_differed |= (visible.0 == 0) != (visible.1 == 0);
        if counters_differed && visibility_differed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        counters_differed,
        "the two shards' refresh counters never differed"
    );
    assert!(
        visibility_differed,
        "the two shards' documents always became visible together"
    );
}

#[tokio::test]
async fn a_held_write_holds_the_checkpoint_back_and_stays_invisible() {
    let (cluster, http) = start().await;
    http.ok(
        "PUT",
        "/held",
        Some(json!({"settings": {"number_of_shards": 1, "refresh_interval": -1}})),
    )
    .await;
    http.ok("PUT", "/held/_doc/a", Some(json!({"n": 1}))).await;
    cluster.add_visibility_delay(VisibilityRule {
        index: Some("held".into()),
        fraction: 1.0,
        delay: Duration::from_millis(400),
        remaining: Some(1),
    });
    http.ok("PUT", "/held/_doc/b", Some(json!({"n": 2}))).await;
    http.ok("PUT", "/held/_doc/c", Some(json!({"n": 3}))).await;
    http.ok("POST", "/held/_refresh", None).await;
    let s = http.shard_stats("held").await[0];
    assert_eq!(
        (s.0, s.1),
        (0, 2),
        "global checkpoint must stay at 0 while seq_no 1 is in flight"
    );
    let seqs = http
        .ok(
            "POST",
            "/held/_search",
            Some(json!({"sort": ["_seq_no"], "seq_no_primary_term": true})),
        )
        .await;
    let visible: Vec<i64> = seqs["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["_seq_no"].as_i64().unwrap())
        .collect();
    assert_eq!(
        visible,
        vec![0, 2],
        "the held write is invisible, the later one visible"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    let s = http.shard_stats("held").await[0];
    assert_eq!(
        s.0, 2,
        "the checkpoint catches up once the held write completes"
    );
    assert_eq!(
        http.count("held", json!({"match_all": {}})).await,
        2,
        "completed but not yet refreshed"
    );
    http.ok("POST", "/held/_refresh", None).await;
    assert_eq!(http.count("held", json!({"match_all": {}})).await, 3);
}

/// The exact-mode read protocol relies on this: once `refresh.external_total` has advanced by
/// two since the global checkpoint G was read, every operation up to G is searchable.
#[tokio::test]
async fn two_refreshes_after_reading_the_checkpoint_make_everything_below_it_searchable() {
    let (cluster, http) = start().await;
    http.ok(
        "PUT",
        "/cp",
        Some(json!({"settings": {"number_of_shards": 1, "refresh_interval": "50ms"}})),
    )
    .await;
    cluster.add_visibility_delay(VisibilityRule {
        index: Some("cp".into()),
        fraction: 0.3,
        delay: Duration::from_millis(120),
        remaining: None,
    });
    let writer = {
        let http = Http::new(cluster.url());
        tokio::spawn(async move {
            for batch in 0..30 {
                let mut body = String::new();
                for i in 0..20 {
                    body.push_str(&format!(
                        "{{\"index\":{{\"_id\":\"{batch}-{i}\"}}}}\n{{\"n\":{i}}}\n"
                    ));
                }
                http.bulk("/cp/_bulk", body).await;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };
    let mut checks = 0;
    while !writer.is_finished() || checks < 5 {
        let (g, _, ext, _) = http.shard_stats("cp").await[0];
        loop {
            let (_, _, now_ext, _) = http.shard_stats("cp").await[0];
            if now_ext >= ext + 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let visible = http
            .count("cp", json!({"range": {"_seq_no": {"lte": g}}}))
            .await;
        assert_eq!(
            visible as i64,
            g + 1,
            "operations up to the checkpoint {g} must be searchable"
        );
        checks += 1;
    }
    writer.await.unwrap();
    assert!(checks >= 5);
}

#[tokio::test]
async fn compare_and_swap_rejects_stale_writers() {
    let (_c, http) = start().await;
    let first = http.ok("PUT", "/cas/_doc/1", Some(json!({"v": 1}))).await;
    let (seq, term) = (
        first["_seq_no"].as_i64().unwrap(),
        first["_primary_term"].as_i64().unwrap(),
    );
    http.ok(
        "PUT",
        &format!("/cas/_doc/1?if_seq_no={seq}&if_primary_term={term}"),
        Some(json!({"v": 2})),
    )
    .await;
    let (status, body) = http
        .call(
            "PUT",
            &format!("/cas/_doc/1?if_seq_no={seq}&if_primary_term={term}"),
            Some(json!({"v": 3})),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["type"], "version_conflict_engine_exception");
    let (status, _) = http
        .call("PUT", "/cas/_create/1", Some(json!({"v": 4})))
        .await;
    assert_eq!(status, 409, "create on an existing id");
    let (status, _) = http
        .call(
            "POST",
            &format!("/cas/_update/1?if_seq_no={seq}&if_primary_term={term}"),
            Some(json!({"doc": {"v": 5}})),
        )
        .await;
    assert_eq!(status, 409, "update with a stale seq_no");
    let (status, _) = http
        .call(
            "DELETE",
            &format!("/cas/_doc/1?if_seq_no={seq}&if_primary_term={term}"),
            None,
        )
        .await;
    assert_eq!(status, 409, "delete with a stale seq_no");
    assert_eq!(http.ok("GET", "/cas/_doc/1", None).await["_source"]["v"], 2);
}

#[tokio::test]
async fn every_index_creation_gets_a_fresh_uuid_and_seq_nos_restart() {
    let (_c, http) = start().await;
    http.ok("PUT", "/again/_doc/1", Some(json!({"a": 1}))).await;
    let first = http.ok("GET", "/again/_settings", None).await["again"]["settings"]["index"]
        ["uuid"]
        .clone();
    http.ok("DELETE", "/again", None).await;
    let r = http.ok("PUT", "/again/_doc/1", Some(json!({"a": 1}))).await;
    assert_eq!(r["_seq_no"], 0);
    let second = http.ok("GET", "/again/_settings", None).await["again"]["settings"]["index"]
        ["uuid"]
        .clone();
    assert_ne!(first, second);
}

#[tokio::test]
async fn documents_are_routed_by_murmur3_of_the_id() {
    let (_c, http) = start().await;
    http.ok(
        "PUT",
        "/routed",
        Some(json!({"settings": {"number_of_shards": 3, "refresh_interval": -1}})),
    )
    .await;
    let mut per_shard = [0u64; 3];
    for i in 0..300 {
        http.ok("PUT", &format!("/routed/_doc/{i}"), Some(json!({"i": i})))
            .await;
        per_shard[indexstream_shard(&i.to_string(), 3)] += 1;
    }
    http.ok("POST", "/routed/_refresh", None).await;
    let stats = http.shard_stats("routed").await;
    for (shard, expected) in per_shard.iter().enumerate() {
        assert_eq!(stats[shard].3, *expected, "shard {shard}");
        assert!(*expected > 50);
    }
    // A custom routing value sends every document to the same shard.
    for i in 0..10 {
        http.ok(
            "PUT",
            &format!("/routed/_doc/r{i}?routing=tenant-a&refresh=true"),
            Some(json!({"i": i})),
        )
        .await;
    }
    let with_routing = http
        .ok(
            "POST",
            "/routed/_search?routing=tenant-a&size=0",
            Some(json!({"query": {"prefix": {"_id": "r"}}})),
        )
        .await;
    assert_eq!(with_routing["hits"]["total"]["value"], 10);
}

/// OpenSearch's routing, written out independently of the fake's code: UTF-16LE bytes,
/// murmur3_x86_32, `floorMod(hash, routing_num_shards) / (routing_num_shards / shards)`.
fn indexstream_shard(id: &str, shards: u32) -> usize {
    fn murmur(data: &[u8]) -> u32 {
        let (c1, c2) = (0xcc9e2d51u32, 0x1b873593u32);
        let mut h = 0u32;
        let mut i = 0;
        while i + 4 <= data.len() {
            let mut k = u32::from_le_bytes(data[i..i + 4].try_into().unwrap());
            k = k.wrapping_mul(c1).rotate_left(15).wrapping_mul(c2);
            h = (h ^ k)
                .rotate_left(13)
                .wrapping_mul(5)
                .wrapping_add(0xe6546b64);
            i += 4;
        }
        let mut k = 0u32;
        for (j, b) in data[i..].iter().enumerate() {
            k |= (*b as u32) << (8 * j);
        }
        if data.len() % 4 != 0 {
            h ^= k.wrapping_mul(c1).rotate_left(15).wrapping_mul(c2);
        }
        h ^= data.len() as u32;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85ebca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2ae35);
        h ^ (h >> 16)
    }
    let bytes: Vec<u8> = id.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    let routing_shards = match shards {
        1 => 1024,
        3 => 768,
        5 => 640,
        n => n * 256,
    } as i64;
    ((murmur(&bytes) as i32 as i64).rem_euclid(routing_shards) / (routing_shards / shards as i64))
        as usize
}

/// OpenSearch docs (mapping parameter `ignore_malformed`): a value that does not parse is not
/// indexed, the rest of the document is, and "skipped values ... do not match queries and are
/// not counted in aggregations or sorting"; without the parameter the document is rejected.
#[tokio::test]
async fn ignore_malformed_keeps_the_document_but_not_the_value() {
    let (_fake, http) = start().await;
    http.ok(
        "PUT",
        "/lenient",
        Some(json!({"mappings": {"properties": {"@timestamp": {"type": "date", "ignore_malformed": true}}}})),
    )
    .await;
    http.ok(
        "PUT",
        "/strict",
        Some(json!({"mappings": {"properties": {"@timestamp": {"type": "date"}}}})),
    )
    .await;
    let bad = json!({"@timestamp": "not a date", "n": 1});
    http.ok("PUT", "/lenient/_doc/bad?refresh=true", Some(bad.clone()))
        .await;
    http.ok(
        "PUT",
        "/lenient/_doc/good?refresh=true",
        Some(json!({"@timestamp": "2024-01-01T00:00:00Z"})),
    )
    .await;
    let (status, err) = http.call("PUT", "/strict/_doc/bad", Some(bad)).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["type"], "mapper_parsing_exception");
    let ids = |v: serde_json::Value| -> Vec<String> {
        v["hits"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["_id"].as_str().unwrap().to_string())
            .collect()
    };
    let exists = http
        .ok(
            "POST",
            "/lenient/_search",
            Some(json!({"query": {"exists": {"field": "@timestamp"}}})),
        )
        .await;
    assert_eq!(ids(exists), ["good"]);
    let missing = http
        .ok(
            "POST",
            "/lenient/_search",
            Some(json!({"query": {"bool": {"must_not": {"exists": {"field": "@timestamp"}}}}})),
        )
        .await;
    assert_eq!(ids(missing), ["bad"]);
    let doc = http.ok("GET", "/lenient/_doc/bad", None).await;
    assert_eq!(doc["_source"]["@timestamp"], "not a date");
}

/// What OpenSearch has and the fake does not model is refused with a 400 that names it, never
/// answered as if it were something else (a match, an index name, an ignored option).
#[tokio::test]
async fn features_the_fake_does_not_model_are_refused_by_name() {
    let (_c, http) = start().await;
    http.ok("PUT", "/gaps", None).await;
    http.ok("PUT", "/gaps/_doc/1?refresh=true", Some(json!({"a": "x"})))
        .await;
    let cases: Vec<(&str, String, Option<serde_json::Value>, &str)> = vec![
        (
            "POST",
            "/gaps/_search".into(),
            Some(json!({"query": {"wildcard": {"a": "x*"}}})),
            "[wildcard]",
        ),
        (
            "POST",
            "/gaps/_search".into(),
            Some(json!({"query": {"match_phrase": {"a": "x"}}})),
            "[match_phrase]",
        ),
        (
            "POST",
            "/gaps/_search".into(),
            Some(json!({"query": {"multi_match": {"query": "x"}}})),
            "[multi_match]",
        ),
        (
            "POST",
            "/gaps/_search".into(),
            Some(json!({"query": {"query_string": {"query": "x"}}})),
            "[query_string]",
        ),
        (
            "POST",
            "/gaps/_search".into(),
            Some(json!({"highlight": {"fields": {"a": {}}}})),
            "[highlight]",
        ),
        (
            "GET",
            "/gaps/_search?q=a:[a%20TO%20z]".into(),
            None,
            "ranges",
        ),
        (
            "GET",
            "/gaps/_search?q=a:x%20AND%20a:y".into(),
            None,
            "boolean operators",
        ),
        (
            "POST",
            "/gaps/_delete_by_query".into(),
            Some(json!({"query": {"match_all": {}}})),
            "[_delete_by_query]",
        ),
        (
            "POST",
            "/gaps/_update_by_query".into(),
            None,
            "[_update_by_query]",
        ),
        ("POST", "/_msearch".into(), None, "[_msearch]"),
        ("POST", "/_reindex".into(), None, "[_reindex]"),
        ("POST", "/gaps/_close".into(), None, "[_close]"),
        ("GET", "/_cat/count".into(), None, "[_cat/count]"),
        ("GET", "/_cat/shards".into(), None, "[_cat/shards]"),
    ];
    for (method, path, body, needle) in cases {
        let (status, v) = http.call(method, &path, body).await;
        assert_eq!(status, 400, "{method} {path}: {v}");
        let reason = v["error"]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(needle) && reason.contains("indexstream fake cluster"),
            "{method} {path}: {reason}"
        );
    }
    // What it does model still works beside them.
    let (status, v) = http.call("GET", "/gaps/_search?q=a:x", None).await;
    assert_eq!(
        (status, v["hits"]["total"]["value"].as_u64()),
        (200, Some(1))
    );
}
