//! Timestamp mode by shard (`TimestampPartitions::Shards`): members share the shards of a
//! timestamp-mode group, late documents inside the window reach the partition's owner, an idle
//! shard is not searched again, and offsets of the other partitioning are refused.

use std::collections::BTreeSet;
use std::time::Duration;

use indexstream::{
    Admin, Client, Consumer, ConsumerBuilder, Description, Error, Record, RunOptions,
    TimestampPartitions,
};
use serde_json::{json, Value};

use super::harness::{counts, target, Running, Target};
use super::timestamp::{at, ts_settings, T0};

/// A member of a timestamp-mode group read by shard, with short intervals for tests.
fn member(t: &Target, index: &str, group: &str, id: &str) -> ConsumerBuilder {
    Consumer::builder(t.client_config(), index, group)
        .with_member_id(id)
        .with_poll_interval(Duration::from_millis(50))
        .with_commit_every(200, Duration::from_millis(100))
        .with_offsets_index(t.name("offsets"))
        .timestamp(
            ts_settings(Duration::from_secs(30)).with_partitions(TimestampPartitions::Shards),
        )
}

fn admin(t: &Target) -> Admin {
    Admin::new(Client::new(&t.client_config()).unwrap(), t.name("offsets"))
}

/// `(id, {"@timestamp": T0 + ms})` for `n` documents, `step` ms apart; every tenth pair shares
/// a timestamp with the next.
fn docs(prefix: &str, n: i64, from_ms: i64, step: i64) -> Vec<(String, Value)> {
    (0..n)
        .map(|i| {
            let ms = from_ms + (i - i % 2 * i64::from(i % 10 == 1)) * step;
            (format!("{prefix}{i}"), json!({"@timestamp": at(T0 + ms)}))
        })
        .collect()
}

/// Waits until `describe` shows the members owning `split` partitions each (sorted).
async fn wait_for_split(a: &Admin, group: &str, split: &[usize]) -> Vec<indexstream::MemberInfo> {
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(Description::TimestampShards { members, .. }) = a.describe(group).await {
                let mut counts: Vec<usize> = members.iter().map(|m| m.partitions.len()).collect();
                counts.sort_unstable();
                if counts == split {
                    return members;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    match found {
        Ok(m) => m,
        Err(_) => panic!(
            "members never owned {split:?} partitions; describe: {:?}",
            a.describe(group).await
        ),
    }
}

fn shards_of(records: &[Record]) -> BTreeSet<u32> {
    records.iter().filter_map(|r| r.shard).collect()
}

/// Two members split a four-shard index two and two; documents written late (older than the
/// cursor, inside the window) reach the owner of their shard; when one member leaves, the other
/// takes its partitions over from their commits. Every document once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_share_the_shards_and_late_documents_inside_the_window_are_delivered_once() {
    let t = target("ts-shards").await;
    let index = t.name("x");
    t.create_index(&index, 4, "100ms").await;
    let first = docs("a", 400, 0, 10);
    t.write(&index, &first).await;
    t.call("POST", &format!("/{index}/_refresh"), None).await;
    let group = t.name("g");
    let (one, two) = (
        member(&t, &index, &group, "one").build().await.unwrap(),
        member(&t, &index, &group, "two").build().await.unwrap(),
    );
    let one = Running::start(one, RunOptions::default());
    let two = Running::start(two, RunOptions::default());
    let a = admin(&t);
    let split = wait_for_split(&a, &group, &[2, 2]).await;
    let owned: BTreeSet<_> = split.iter().flat_map(|m| m.partitions.clone()).collect();
    assert_eq!(owned.len(), 4, "no partition owned twice: {split:?}");
    // Caught up on the first 400: then documents 1..3 s older than the cursor (4 s), new ones.
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let n = one.records.lock().unwrap().len() + two.records.lock().unwrap().len();
            if n >= 400 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the first 400 delivered");
    let late = docs("late", 40, 1000, 50);
    t.write(&index, &late).await;
    t.write(&index, &docs("b", 100, 5000, 10)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let one_records = one.records.lock().unwrap().clone();
    one.stop().await.unwrap();
    wait_for_split(&a, &group, &[4]).await;
    t.write(&index, &docs("c", 100, 7000, 10)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let two_records = two.records.lock().unwrap().clone();
    two.stop().await.unwrap();
    let mut all = one_records.clone();
    all.extend(two_records.clone());
    let c = counts(&all);
    assert_eq!(c.len(), 640, "every document delivered, the late ones too");
    let twice: Vec<_> = c.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "none twice: {twice:?}");
    assert_eq!(
        shards_of(&one_records).len(),
        2,
        "member one read its two shards only"
    );
    assert_eq!(
        shards_of(&two_records).len(),
        4,
        "member two read all four after the takeover"
    );
    // Every partition's cursor is committed with its owner's epoch.
    let Description::TimestampShards { partitions, .. } = a.describe(&group).await.unwrap() else {
        panic!("not described as timestamp by shard")
    };
    assert_eq!(partitions.len(), 4, "{partitions:?}");
    assert!(
        partitions
            .iter()
            .all(|p| p.cursor_ns.is_some() && p.epoch.is_some()),
        "{partitions:?}"
    );
}

/// Once caught up, a pass over unchanged shards searches none of them (one shard-stats
/// request); a document written to one shard is found by the next passes, which then search
/// nothing again.
#[tokio::test]
async fn an_unchanged_shard_is_not_searched_again() {
    let t = target("ts-idle").await;
    let index = t.name("x");
    t.create_index(&index, 6, "100ms").await;
    t.write(&index, &docs("a", 60, 0, 10)).await;
    t.call("POST", &format!("/{index}/_refresh"), None).await;
    let group = t.name("g");
    let mut c = member(&t, &index, &group, "m").build().await.unwrap();
    let mut got = Vec::new();
    let mut empty = 0;
    while empty < 10 {
        let batch = c.poll(100).await.unwrap();
        if batch.is_empty() {
            empty += 1;
            tokio::time::sleep(Duration::from_millis(60)).await;
        } else {
            got.extend(batch);
        }
    }
    assert_eq!(counts(&got).len(), 60);
    let searched = c.stats().rounds;
    // Polls for a while: every poll interval a pass reads the stats, and searches nothing.
    for _ in 0..10 {
        assert!(c.poll(100).await.unwrap().is_empty());
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert_eq!(
        c.stats().rounds,
        searched,
        "idle shards were searched again"
    );
    t.write(&index, &docs("b", 1, 2000, 1)).await;
    t.call("POST", &format!("/{index}/_refresh"), None).await;
    let mut more = Vec::new();
    for _ in 0..40 {
        more.extend(c.poll(100).await.unwrap());
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert_eq!(more.len(), 1, "{more:?}");
    // The written shard is searched, and once more after the refresh that follows a search
    // (the refresh of the whole index also lets each of the others be searched once, since
    // none was searched after a refresh yet): 40 passes over 6 shards would be 240 searches.
    let after_write = c.stats().rounds;
    assert!(
        (searched + 1..=searched + 7).contains(&after_write),
        "{} searches for one document ({searched} before)",
        after_write - searched
    );
    for _ in 0..10 {
        assert!(c.poll(100).await.unwrap().is_empty());
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert_eq!(
        c.stats().rounds,
        after_write,
        "idle shards were searched again"
    );
    c.commit().await.unwrap();
    c.close().await.unwrap();
}

/// Offsets written by the other partitioning are refused before the group is joined, with a
/// message that says how to start over; nothing is changed.
#[tokio::test]
async fn offsets_of_the_other_partitioning_are_refused_with_how_to_start_over() {
    let t = target("ts-layout").await;
    let index = t.name("x");
    t.create_index(&index, 2, "100ms").await;
    t.write(&index, &docs("a", 10, 0, 10)).await;
    t.call("POST", &format!("/{index}/_refresh"), None).await;
    let (single, sharded) = (t.name("single"), t.name("sharded"));
    let whole = |group: &str| {
        Consumer::builder(t.client_config(), &index, group)
            .with_poll_interval(Duration::from_millis(50))
            .with_offsets_index(t.name("offsets"))
            .timestamp(ts_settings(Duration::from_secs(30)))
    };
    let got = t
        .consume(&index, &single, Duration::from_millis(400), |_| {
            whole(&single)
        })
        .await;
    assert_eq!(got.len(), 10);
    let got = t
        .consume(&index, &sharded, Duration::from_millis(400), |_| {
            member(&t, &index, &sharded, "m")
        })
        .await;
    assert_eq!(got.len(), 10);
    for (group, builder, found) in [
        (&single, member(&t, &index, &single, "m"), "one"),
        (&sharded, whole(&sharded), "shards"),
    ] {
        let err = builder.build().await.unwrap_err();
        assert!(matches!(err, Error::PartitionsMismatch { .. }), "{err:?}");
        assert!(err.is_usage());
        let text = err.to_string();
        assert!(
            text.contains(&format!("--timestamp-partitions {found}"))
                && text.contains(&format!("indexstream groups delete {group}"))
                && text.contains("cursor stood at"),
            "{text}"
        );
    }
    // Nothing was changed: each group still resumes where it was.
    let again = t
        .consume(&index, &single, Duration::from_millis(300), |_| {
            whole(&single)
        })
        .await;
    assert!(again.is_empty(), "{again:?}");
}

/// A zombie's commit of a timestamp partition is refused by the cluster: once a new owner has
/// taken the partition over (its claim and the fenced offset document written as a new owner
/// writes them), the old owner's commit of its cursor and window is refused, the offset stays
/// the new owner's, and the old owner delivers nothing more of the partition.
#[tokio::test]
async fn a_commit_by_a_member_that_lost_a_timestamp_partition_is_refused_by_the_cluster() {
    let t = target("ts-zombie").await;
    let index = t.name("x");
    t.create_index(&index, 1, "100ms").await;
    t.write(&index, &docs("d", 50, 0, 10)).await;
    t.call("POST", &format!("/{index}/_refresh"), None).await;
    let group = t.name("g");
    let mut old = member(&t, &index, &group, "old")
        .with_lease_ttl(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 20 {
        got.extend(old.poll(20 - got.len()).await.unwrap());
    }
    old.commit().await.unwrap();
    while got.len() < 30 {
        got.extend(old.poll(30 - got.len()).await.unwrap());
    }
    let Description::TimestampShards { partitions, .. } = admin(&t).describe(&group).await.unwrap()
    else {
        panic!("not described as timestamp by shard")
    };
    let p = partitions[0].clone();
    let epoch = p.epoch.expect("an epoch");
    let doc_path = format!(
        "/{}/_doc/{}%7C{}%7C0",
        t.name("offsets"),
        group,
        p.partition.uuid
    );
    // The new owner: a claim of a newer epoch, then the offset document fenced with it.
    let far = 4_000_000_000_000_i64; // 2096: the claim never lapses in this test
    t.call(
        "PUT",
        &format!(
            "/{}/_doc/{}%7Cclaim%7C{}%7C0?refresh=true",
            t.name("offsets"),
            group,
            p.partition.uuid
        ),
        Some(json!({"group": group, "kind": "claim", "member": "new", "index": p.partition.index, "index_uuid": p.partition.uuid, "shard": 0, "epoch": epoch + 1, "expires_at_ms": far})),
    )
    .await;
    let mut doc = t.call("GET", &doc_path, None).await["_source"].clone();
    doc["epoch"] = json!(epoch + 1);
    doc["member"] = json!("new");
    t.call(
        "PUT",
        &format!("{doc_path}?refresh=true"),
        Some(doc.clone()),
    )
    .await;
    old.commit()
        .await
        .expect("a refused partition is dropped, not an error");
    let now = t.call("GET", &doc_path, None).await["_source"].clone();
    assert_eq!(now, doc, "the zombie did not move the offset");
    t.write(&index, &docs("more", 5, 1000, 10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..5 {
        assert!(
            old.poll(100).await.unwrap().is_empty(),
            "nothing more delivered"
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    old.close().await.unwrap();
}

/// `reset` of a group read by shard moves every partition's offset: to the earliest document
/// (everything is delivered again, once), or to the latest (nothing is).
#[tokio::test]
async fn a_reset_moves_every_partition_of_a_group_read_by_shard() {
    let t = target("ts-reset").await;
    let index = t.name("x");
    t.create_index(&index, 3, "100ms").await;
    t.write(&index, &docs("d", 90, 0, 10)).await;
    t.call("POST", &format!("/{index}/_refresh"), None).await;
    let group = t.name("g");
    let consume = || {
        t.consume(&index, &group, Duration::from_millis(400), |_| {
            member(&t, &index, &group, "m")
        })
    };
    assert_eq!(counts(&consume().await).len(), 90);
    assert!(consume().await.is_empty(), "resumes after the commit");
    let a = admin(&t);
    let done = a
        .reset(
            &group,
            &indexstream::Reset::new(indexstream::ResetTo::Earliest),
        )
        .await
        .unwrap();
    assert!(
        matches!(&done, indexstream::ResetDone::Timestamp { index: i, floor_ns: None } if *i == index),
        "{done:?}"
    );
    let again = consume().await;
    let c = counts(&again);
    assert!(c.len() == 90 && c.values().all(|n| *n == 1), "{c:?}");
    a.reset(
        &group,
        &indexstream::Reset::new(indexstream::ResetTo::Latest),
    )
    .await
    .unwrap();
    t.write(&index, &docs("new", 6, 5000, 10)).await;
    t.call("POST", &format!("/{index}/_refresh"), None).await;
    let after = consume().await;
    assert_eq!(
        counts(&after).len(),
        6,
        "only what came after the reset: {after:?}"
    );
    let Description::TimestampShards { partitions, .. } = a.describe(&group).await.unwrap() else {
        panic!("not described as timestamp by shard")
    };
    assert_eq!(partitions.len(), 3);
}

/// An index of the pattern whose documents have no timestamp field is a partition with nothing
/// to read, not an error: the other indices are read (with one partition for the whole
/// expression, a field mapped nowhere is refused; here it is mapped in one index).
#[tokio::test]
async fn an_index_of_the_pattern_without_the_field_does_not_stop_the_others() {
    let t = target("ts-unmapped").await;
    let (with, without) = (t.name("p-with"), t.name("p-without"));
    t.create_index(&with, 2, "100ms").await;
    t.create_index(&without, 2, "100ms").await;
    t.write(&with, &docs("a", 20, 0, 10)).await;
    t.write_n(&without, "n", 10).await;
    t.call("POST", &format!("/{with},{without}/_refresh"), None)
        .await;
    let pattern = t.name("p-*");
    let group = t.name("g");
    let got = t
        .consume(&pattern, &group, Duration::from_millis(400), |_| {
            member(&t, &pattern, &group, "m")
        })
        .await;
    let c = counts(&got);
    assert!(
        c.len() == 20 && c.keys().all(|id| id.starts_with('a')),
        "{c:?}"
    );
}
