//! How the cluster behaves where the consumer depends on it, checked against the fake and (with
//! `OPENSEARCH_URL`) the real node by the same tests: this is what keeps the fake like the real
//! node. Seen on OpenSearch 2.19.6: a scheduled refresh happens only when something changed, and
//! a search-idle shard does not refresh on schedule at all until a search arrives.

use std::time::Duration;

use serde_json::json;

use super::harness::{target, Target};

/// The primary copy's `refresh.external_total` of shard 0.
async fn external_refreshes(t: &Target, index: &str) -> u64 {
    let v = t
        .call(
            "GET",
            &format!("/{index}/_stats/refresh?level=shards"),
            None,
        )
        .await;
    v["indices"][index]["shards"]["0"]
        .as_array()
        .and_then(|copies| copies.iter().find(|c| c["routing"]["primary"] == true))
        .and_then(|c| c["refresh"]["external_total"].as_u64())
        .expect("the primary's refresh counter")
}

/// After a write, one scheduled refresh makes it searchable and the counter then stands still:
/// the "+2 refreshes since the checkpoint was read" proof never completes after a burst unless
/// the consumer refreshes itself. An explicit refresh always counts, even with nothing new.
#[tokio::test]
async fn a_scheduled_refresh_happens_only_when_something_changed() {
    let t = target("sched-refresh").await;
    let index = t.name("r");
    t.create_index(&index, 1, "200ms").await;
    let before = external_refreshes(&t, &index).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        external_refreshes(&t, &index).await,
        before,
        "five refresh intervals with nothing written"
    );
    t.write(&index, &[("a".into(), json!({"n": 1}))]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_write = external_refreshes(&t, &index).await;
    assert_eq!(
        after_write,
        before + 1,
        "one refresh for the write, none after"
    );
    t.call("POST", &format!("/{index}/_refresh"), None).await;
    assert_eq!(external_refreshes(&t, &index).await, after_write + 1);
}

/// An index without an explicit `refresh_interval` goes search-idle after
/// `index.search.idle.after` without searches: writes then stay invisible (no scheduled
/// refresh) until a search arrives, which refreshes the shard once and sees them.
#[tokio::test]
async fn a_search_idle_shard_refreshes_only_when_searched() {
    let t = target("search-idle").await;
    let index = t.name("i");
    t.call(
        "PUT",
        &format!("/{index}"),
        Some(json!({"settings": {"number_of_shards": 1, "number_of_replicas": 0, "index.search.idle.after": "1s"}})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let idle = external_refreshes(&t, &index).await;
    t.write(&index, &[("a".into(), json!({"n": 1}))]).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        external_refreshes(&t, &index).await,
        idle,
        "a search-idle shard skips its scheduled refreshes"
    );
    let count = t.call("GET", &format!("/{index}/_count"), None).await;
    assert_eq!(count["count"], 1, "the search refreshed the shard first");
    assert_eq!(external_refreshes(&t, &index).await, idle + 1);
}

/// An object field mapped with `enabled: false` takes any value, arrays and plain values too
/// (the offsets index keeps the delivered `_seq_no` ranges and the timestamp window that way,
/// under a `dynamic: strict` mapping).
#[tokio::test]
async fn a_disabled_object_field_takes_any_value() {
    let t = target("disabled-object").await;
    let index = t.name("d");
    t.call(
        "PUT",
        &format!("/{index}"),
        Some(json!({"settings": {"number_of_shards": 1, "number_of_replicas": 0}, "mappings": {"dynamic": "strict", "properties": {"d": {"type": "object", "enabled": false}}}})),
    )
    .await;
    for (id, value) in [
        ("1", json!([[1, 2], [4, 5]])),
        ("2", json!(7)),
        ("3", json!({"any": ["thing"]})),
    ] {
        t.call(
            "PUT",
            &format!("/{index}/_doc/{id}"),
            Some(json!({ "d": value })),
        )
        .await;
        let got = t.call("GET", &format!("/{index}/_doc/{id}"), None).await;
        assert_eq!(got["_source"]["d"], value);
    }
}
