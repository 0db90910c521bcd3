//! Bad input gets what OpenSearch gives: statuses and error types for known mistakes, and a
//! property test throwing random paths, methods and bodies at the server, which must keep
//! answering (never a dropped connection, never a 5xx).

use indexstream_fake::FakeCluster;
use proptest::prelude::*;
use serde_json::json;

use super::client::Http;

#[tokio::test]
async fn known_mistakes_get_opensearch_statuses_and_types() {
    let cluster = FakeCluster::start().await.unwrap();
    let http = Http::new(cluster.url());
    http.ok(
        "PUT",
        "/bad",
        Some(json!({"mappings": {"properties": {"n": {"type": "long"}, "t": {"type": "date"}}}})),
    )
    .await;
    let cases: Vec<(&str, &str, Option<serde_json::Value>, u16, &str)> = vec![
        (
            "POST",
            "/bad/_search",
            Some(json!({"query": {"no_such_query": {}}})),
            400,
            "parsing_exception",
        ),
        (
            "POST",
            "/bad/_search",
            Some(json!({"query": {"range": {"n": {"gte": "abc"}}}})),
            400,
            "query_shard_exception",
        ),
        (
            "POST",
            "/bad/_search",
            Some(json!({"query": {"range": {"t": {"gte": "not a date"}}}})),
            400,
            "query_shard_exception",
        ),
        (
            "POST",
            "/nope/_search",
            None,
            404,
            "index_not_found_exception",
        ),
        (
            "GET",
            "/nope/_doc/1",
            None,
            404,
            "index_not_found_exception",
        ),
        (
            "PUT",
            "/bad/_doc/1",
            Some(json!({"n": "twelve"})),
            400,
            "mapper_parsing_exception",
        ),
        ("PUT", "/Bad", None, 400, "invalid_index_name_exception"),
        (
            "PUT",
            "/bad",
            None,
            400,
            "resource_already_exists_exception",
        ),
        (
            "POST",
            "/bad/_search?size=-1",
            None,
            400,
            "illegal_argument_exception",
        ),
        (
            "POST",
            "/bad/_search?bogus=1",
            None,
            400,
            "illegal_argument_exception",
        ),
        (
            "POST",
            "/bad/_search",
            Some(json!({"sort": [{"missing_field": "asc"}]})),
            400,
            "query_shard_exception",
        ),
    ];
    for (method, path, body, status, kind) in cases {
        let (s, v) = http.call(method, path, body.clone()).await;
        assert_eq!(s, status, "{method} {path} {body:?}: {v}");
        assert_eq!(v["error"]["type"], kind, "{method} {path}: {v}");
        assert_eq!(v["status"], status);
    }
    let resp = http
        .client
        .post(format!("{}/bad/_search", http.base))
        .header("content-type", "application/json")
        .body("{\"query\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400, "malformed JSON");
    let (s, v) = http.call("GET", "/_no/such/endpoint/here", None).await;
    assert_eq!(s, 400);
    assert!(v["error"]
        .as_str()
        .unwrap()
        .starts_with("no handler found for uri"));
    let (s, _) = http.call("GET", "/_bulk", None).await;
    assert_eq!(s, 405, "a known path with the wrong method");
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("_search".to_string()),
        Just("_doc".to_string()),
        Just("_bulk".to_string()),
        Just("_count".to_string()),
        Just("_stats".to_string()),
        Just("_refresh".to_string()),
        Just("_alias".to_string()),
        Just("_update".to_string()),
        Just("_create".to_string()),
        Just("_mapping".to_string()),
        Just("_settings".to_string()),
        Just("_mget".to_string()),
        Just("point_in_time".to_string()),
        Just("scroll".to_string()),
        Just("fuzz".to_string()),
        "[a-z0-9%*,_.-]{1,8}",
    ]
}

fn body() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("{}".to_string()),
        Just("{\"query\":{\"match_all\":{}}}".to_string()),
        Just("{\"index\":{}}\n{\"a\":1}\n".to_string()),
        Just("{\"query\":{\"range\":{\"a\":{\"gte\":[1]}}}}".to_string()),
        Just("{\"sort\":[{\"a\":{\"order\":\"sideways\"}}],\"search_after\":[{}]}".to_string()),
        Just("{\"doc\":{\"a\":{\"b\":[1,{\"c\":null}]}}}".to_string()),
        Just("[1,2,3]".to_string()),
        Just("null".to_string()),
        "\\PC{0,40}",
        "\\{\"[a-z_]{1,6}\":[0-9a-z\\[\\]{}\":,]{0,30}\\}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_requests_always_get_an_answer_below_500(
        method in prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("DELETE"), Just("HEAD")],
        segments in proptest::collection::vec(segment(), 0..4),
        query in prop_oneof![Just(String::new()), Just("?refresh=true".to_string()), Just("?size=abc".to_string()), Just("?scroll=1m&size=2".to_string()), "\\?[a-z_]{1,8}=[a-z0-9]{0,4}"],
        body in body(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            static CLUSTER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
            let url = CLUSTER.get_or_init(|| {
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
                    rt.block_on(async {
                        let c = FakeCluster::builder().refresh_interval(Some(std::time::Duration::from_millis(50))).start().await.unwrap();
                        let http = Http::new(c.url());
                        http.ok("PUT", "/fuzz/_doc/1?refresh=true", Some(json!({"a": 1, "b": "x"}))).await;
                        tx.send(c.url()).unwrap();
                        std::future::pending::<()>().await;
                        drop(c);
                    });
                });
                rx.recv().unwrap()
            }).clone();
            let path = format!("/{}{}", segments.join("/"), query);
            let resp = reqwest::Client::new()
                .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{url}{path}"))
                .header("content-type", "application/json")
                .body(body.clone())
                .timeout(std::time::Duration::from_secs(5))
                .send()
                .await;
            let resp = match resp {
                Ok(r) => r,
                Err(e) => panic!("{method} {path} with {body:?}: no answer: {e}"),
            };
            let status = resp.status().as_u16();
            prop_assert!(status < 500, "{} {} with {:?} -> {}: {}", method, path, body, status, resp.text().await.unwrap_or_default());
            Ok(())
        })?;
    }
}
