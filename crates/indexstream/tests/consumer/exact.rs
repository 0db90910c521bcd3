//! Exact mode: nothing missed, nothing twice, across late visibility, updates, recreated
//! indices, stalled refreshes and partial shard failures.

use std::collections::HashSet;
use std::time::Duration;

use indexstream::{Consumer, Error, ExactSettings, MemorySink, Record, RunOptions, StartFrom};
use indexstream_fake::VisibilityRule;
use serde_json::json;

use super::harness::{counts, target, Running};

/// 100k documents from 4 concurrent producers into 3 shards while the consumer runs, 10% of
/// the writes held invisible (and holding the checkpoint back) for a while: every id once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producers_with_late_visibility_every_id_once() {
    let t = target("concurrent").await;
    let index = t.name("audit");
    t.create_index(&index, 3, "200ms").await;
    if let Some(fake) = &t.fake {
        fake.add_visibility_delay(VisibilityRule {
            index: Some(index.clone()),
            fraction: 0.1,
            delay: Duration::from_millis(400),
            remaining: None,
        });
    }
    const PRODUCERS: usize = 4;
    const PER_PRODUCER: usize = 25_000;
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let t2 = super::harness::Target {
            url: t.url.clone(),
            fake: None,
            http: t.http.clone(),
            prefix: t.prefix.clone(),
        };
        let index = index.clone();
        producers.push(tokio::spawn(async move {
            for chunk in 0..(PER_PRODUCER / 500) {
                let docs: Vec<_> = (0..500).map(|i| (format!("p{p}-{}", chunk * 500 + i), json!({"producer": p, "n": chunk * 500 + i, "@timestamp": "2024-01-01T00:00:00Z"}))).collect();
                t2.write(&index, &docs).await;
            }
        }));
    }
    let records = t
        .consume(&index, &t.name("g"), Duration::from_secs(3), |b| {
            b.with_page_size(1000)
        })
        .await;
    for p in producers {
        p.await.unwrap();
    }
    let c = counts(&records);
    let twice: Vec<_> = c.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
    let expected = PRODUCERS * PER_PRODUCER;
    if c.len() < expected {
        // The consumer may have gone idle between producer bursts; finish reading and check the union.
        let more = t
            .consume(&index, &t.name("g"), Duration::from_secs(3), |b| b)
            .await;
        let mut all = records.clone();
        all.extend(more);
        let c = counts(&all);
        assert_eq!(c.len(), expected, "missing ids");
        assert!(
            c.values().all(|n| *n == 1),
            "an id came twice across the restart"
        );
    } else {
        assert_eq!(c.len(), expected);
    }
}

#[tokio::test]
async fn an_updated_document_is_delivered_again_with_its_new_seq_no() {
    let t = target("update").await;
    let index = t.name("u");
    t.create_index(&index, 1, "100ms").await;
    t.write(
        &index,
        &[("a".into(), json!({"v": 1})), ("b".into(), json!({"v": 1}))],
    )
    .await;
    let group = t.name("g");
    let first = t
        .consume(&index, &group, Duration::from_millis(800), |b| b)
        .await;
    assert_eq!(first.len(), 2);
    let old_seq = first.iter().find(|r| r.id == "a").unwrap().seq_no.unwrap();
    t.write(&index, &[("a".into(), json!({"v": 2}))]).await;
    let second = t
        .consume(&index, &group, Duration::from_millis(800), |b| b)
        .await;
    assert_eq!(
        second.len(),
        1,
        "only the update, nothing already committed: {second:?}"
    );
    assert_eq!(second[0].id, "a");
    assert!(second[0].seq_no.unwrap() > old_seq);
    assert!(second[0].source.get().contains("\"v\":2"));
}

/// A deleted and recreated index has a new uuid: its documents are read from --start
/// (earliest here), never from the old index's committed offset, which would skip them.
#[tokio::test]
async fn a_recreated_index_is_read_from_start_not_from_the_stale_offset() {
    let t = target("recreate").await;
    let index = t.name("r");
    t.create_index(&index, 1, "100ms").await;
    let docs: Vec<_> = (0..40)
        .map(|i| (format!("old-{i}"), json!({"i": i})))
        .collect();
    t.write(&index, &docs).await;
    let group = t.name("g");
    assert_eq!(
        t.consume(&index, &group, Duration::from_millis(800), |b| b)
            .await
            .len(),
        40
    );
    t.call("DELETE", &format!("/{index}"), None).await;
    t.create_index(&index, 1, "100ms").await;
    let docs: Vec<_> = (0..10)
        .map(|i| (format!("new-{i}"), json!({"i": i})))
        .collect();
    t.write(&index, &docs).await;
    let again = t
        .consume(&index, &group, Duration::from_millis(800), |b| b)
        .await;
    let ids: HashSet<String> = again.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 10, "{ids:?}");
    assert!(ids.iter().all(|id| id.starts_with("new-")));
    assert_eq!(again.iter().map(|r| r.seq_no.unwrap()).min(), Some(0));
}

#[tokio::test]
async fn start_latest_skips_what_exists_and_delivers_what_comes_after() {
    let t = target("latest").await;
    let index = t.name("l");
    t.create_index(&index, 2, "100ms").await;
    t.write(
        &index,
        &(0..20)
            .map(|i| (format!("before-{i}"), json!({"i": i})))
            .collect::<Vec<_>>(),
    )
    .await;
    let group = t.name("g");
    let mut consumer = Consumer::builder(t.client_config(), &index, &group)
        .with_poll_interval(Duration::from_millis(50))
        .with_start(StartFrom::Latest)
        .with_offsets_index(t.name("offsets"))
        .build()
        .await
        .unwrap();
    let mut sink = MemorySink::default();
    // First run only assigns partitions at "latest" and commits that position.
    consumer
        .run(
            &mut sink,
            RunOptions::default().with_until_idle(Duration::from_millis(500)),
            std::future::pending(),
        )
        .await
        .unwrap();
    consumer.close().await.unwrap();
    assert!(sink.records.lock().unwrap().is_empty());
    t.write(
        &index,
        &(0..5)
            .map(|i| (format!("after-{i}"), json!({"i": i})))
            .collect::<Vec<_>>(),
    )
    .await;
    let after = t
        .consume(&index, &group, Duration::from_millis(800), |b| b)
        .await;
    let mut ids: Vec<String> = after.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    assert_eq!(
        ids,
        (0..5).map(|i| format!("after-{i}")).collect::<Vec<_>>()
    );
}

/// With `refresh_interval: -1` the refresh counter never moves: the consumer notices the stall
/// and refreshes explicitly, so it still delivers everything.
#[tokio::test]
async fn a_stalled_refresh_counter_falls_back_to_explicit_refresh() {
    let t = target("stall").await;
    let index = t.name("s");
    t.create_index(&index, 2, "-1").await;
    t.write_n(&index, "d", 30).await;
    let got = t
        .consume(&index, &t.name("g"), Duration::from_millis(1500), |b| {
            b.with_poll_interval(Duration::from_millis(50))
                .exact(ExactSettings::default().with_stall_after(Some(Duration::from_millis(200))))
        })
        .await;
    assert_eq!(counts(&got).len(), 30);
}

/// Two members of one group share its partitions (each reads only its own), and when one
/// leaves, the other takes its partitions over from their commits: every document once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_share_the_partitions_and_one_takes_over_when_the_other_leaves() {
    let t = target("members").await;
    let index = t.name("x");
    let offsets = t.name("offsets");
    t.create_index(&index, 4, "100ms").await;
    t.write_n(&index, "a", 200).await;
    let group = t.name("g");
    let member = |id: &str| {
        Consumer::builder(t.client_config(), &index, &group)
            .with_member_id(id)
            .with_poll_interval(Duration::from_millis(50))
            .with_commit_every(1000, Duration::from_millis(100))
            .with_offsets_index(&offsets)
            .build()
    };
    // Both join before either reads: the first round of each sees two members.
    let (first, second) = (member("one").await.unwrap(), member("two").await.unwrap());
    let metrics = second.telemetry();
    let one = Running::start(first, RunOptions::default());
    let two = Running::start(second, RunOptions::default());
    let admin = indexstream::Admin::new(
        indexstream::Client::new(&t.client_config()).unwrap(),
        &offsets,
    );
    // Balanced: two partitions each, every partition owned once.
    let split = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(indexstream::Description::Exact { members, .. }) =
                admin.describe(&group).await
            {
                let counts: Vec<usize> = members.iter().map(|m| m.partitions.len()).collect();
                if counts == [2, 2] {
                    return members;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the four partitions are split two and two");
    let mut all: Vec<_> = split.iter().flat_map(|m| m.partitions.clone()).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 4, "no partition owned twice: {split:?}");
    // The membership metrics of a member: what it owns, how it got there.
    let metric = |name: &str| -> f64 {
        let text = metrics.encode_metrics();
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    assert_eq!(metric("indexstream_assigned_partitions"), 2.0);
    assert!(metric("indexstream_partitions_gained_total") >= 2.0);
    assert!(metric("indexstream_rebalances_total") >= 1.0);
    t.write_n(&index, "b", 200).await;
    // Each member delivers only from its own partitions.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let one_records = one.records.lock().unwrap().clone();
    one.stop().await.unwrap();
    // The other takes over the leaver's partitions and reads what comes next.
    t.write_n(&index, "c", 200).await;
    let took_over = tokio::time::timeout(Duration::from_secs(20), async {
        // (The leaver's partitions reach the other member in one of its rounds.)
        loop {
            if let Ok(indexstream::Description::Exact { members, .. }) =
                admin.describe(&group).await
            {
                if members.len() == 1 && members[0].partitions.len() == 4 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        took_over.is_ok(),
        "the remaining member took every partition"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let two_records = two.records.lock().unwrap().clone();
    two.stop().await.unwrap();
    let mut both = one_records.clone();
    both.extend(two_records.clone());
    let c = counts(&both);
    assert_eq!(c.len(), 600, "every document delivered");
    assert!(
        c.values().all(|n| *n == 1),
        "none twice: {:?}",
        c.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    let shards = |r: &[Record]| {
        r.iter()
            .filter_map(|r| r.shard)
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        shards(&one_records).len(),
        2,
        "member one read its two partitions only"
    );
    assert_eq!(
        shards(&two_records).len(),
        4,
        "member two read all four after the takeover"
    );
}

/// A member of a group on a one-shard index of 50 documents that has delivered 30 of them and
/// committed the first 20: where the tests of a partition lost under a member's feet start.
struct HalfCommitted {
    t: super::harness::Target,
    index: String,
    group: String,
    offsets: String,
    member: Consumer,
    got: Vec<Record>,
    admin: indexstream::Admin,
    /// The partition as `describe` showed it once the 30 were delivered.
    at_start: indexstream::PartitionLag,
}

/// The one partition of an exact-mode group, as `groups describe` shows it.
async fn only_partition(admin: &indexstream::Admin, group: &str) -> indexstream::PartitionLag {
    let indexstream::Description::Exact { partitions, .. } = admin.describe(group).await.unwrap()
    else {
        panic!("an exact-mode group")
    };
    partitions[0].clone()
}

impl HalfCommitted {
    async fn start(name: &str, member_id: &str, lease_ttl: Duration) -> Self {
        let t = target(name).await;
        let index = t.name("x");
        let offsets = t.name("offsets");
        t.create_index(&index, 1, "100ms").await;
        t.write_n(&index, "d", 50).await;
        let group = t.name("g");
        let mut member = Consumer::builder(t.client_config(), &index, &group)
            .with_member_id(member_id)
            .with_poll_interval(Duration::from_millis(50))
            .with_lease_ttl(lease_ttl)
            .with_offsets_index(&offsets)
            .build()
            .await
            .unwrap();
        let mut got = Vec::new();
        while got.len() < 20 {
            got.extend(member.poll(20 - got.len()).await.unwrap());
        }
        member.commit().await.unwrap();
        while got.len() < 30 {
            got.extend(member.poll(30 - got.len()).await.unwrap());
        }
        let admin = indexstream::Admin::new(
            indexstream::Client::new(&t.client_config()).unwrap(),
            &offsets,
        );
        let at_start = only_partition(&admin, &group).await;
        HalfCommitted {
            t,
            index,
            group,
            offsets,
            member,
            got,
            admin,
            at_start,
        }
    }

    /// The partition as `groups describe` shows it now.
    async fn describe(&self) -> indexstream::PartitionLag {
        only_partition(&self.admin, &self.group).await
    }

    fn epoch(&self) -> u64 {
        self.at_start.epoch.expect("an epoch")
    }

    fn offset_doc_path(&self) -> String {
        format!(
            "/{}/_doc/{}%7C{}%7C0",
            self.offsets, self.group, self.at_start.partition.uuid
        )
    }

    async fn offset_doc(&self) -> serde_json::Value {
        self.t.call("GET", &self.offset_doc_path(), None).await["_source"].clone()
    }

    async fn put_offset_doc(&self, doc: &serde_json::Value) {
        self.t
            .call(
                "PUT",
                &format!("{}?refresh=true", self.offset_doc_path()),
                Some(doc.clone()),
            )
            .await;
    }

    /// Writes the partition's claim document as a member writes it.
    async fn put_claim(&self, member: &str, epoch: u64, expires_at_ms: i64) {
        let p = &self.at_start.partition;
        self.t
            .call(
                "PUT",
                &format!(
                    "/{}/_doc/{}%7Cclaim%7C{}%7C0?refresh=true",
                    self.offsets, self.group, p.uuid
                ),
                Some(json!({"group": self.group, "kind": "claim", "member": member, "index": p.index, "index_uuid": p.uuid, "shard": 0, "epoch": epoch, "expires_at_ms": expires_at_ms})),
            )
            .await;
    }
}

/// A zombie's commit is refused by the cluster: once a new owner has taken a partition over
/// (its claim and the fenced offset document written as a new owner writes them), the old
/// owner's commit, sent with the version it held, is refused, the offset stays the new owner's,
/// and the old owner delivers nothing more of the partition.
#[tokio::test]
async fn a_commit_by_a_member_that_lost_the_partition_is_refused_by_the_cluster() {
    let mut s = HalfCommitted::start("zombie-commit", "old", Duration::from_secs(30)).await;
    // A new owner takes the partition over: a claim of a newer epoch, then the offset
    // document rewritten with that epoch (what `fence` writes).
    let epoch = s.epoch();
    let mut doc = s.offset_doc().await;
    doc["epoch"] = json!(epoch + 1);
    doc["member"] = json!("new");
    let far = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 3_600_000;
    s.put_claim("new", epoch + 1, far).await;
    s.put_offset_doc(&doc).await;
    // The old owner commits what it delivered since: refused by the cluster's CAS.
    s.member
        .commit()
        .await
        .expect("a refused partition is dropped, not an error");
    let now = s.offset_doc().await;
    assert_eq!(now, doc, "the zombie did not move the offset");
    assert!(
        s.member.status().is_empty(),
        "the old owner dropped the partition: {:?}",
        s.member.status()
    );
    s.t.write_n(&s.index, "more", 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..5 {
        assert!(
            s.member.poll(100).await.unwrap().is_empty(),
            "nothing more delivered"
        );
    }
    s.member.close().await.unwrap();
}

/// A member whose claim lapsed (paused, cut off) settles what it delivered of the partition
/// before it claims anything again: nothing is delivered until its commit is out; when nobody
/// took the partition over meanwhile the commit goes through, and claiming the partition back
/// continues from it, so what was delivered and committed is not delivered again.
#[tokio::test]
async fn a_member_whose_claim_lapsed_commits_what_it_delivered_before_claiming_again() {
    let mut s = HalfCommitted::start("lapsed-claim", "m", Duration::from_secs(1)).await;
    // The claim lapses: rewritten, expired, under the member's feet (its next renewal meets a
    // conflict, as after a pause past the TTL). Nobody else takes the partition.
    let epoch = s.epoch();
    s.put_claim("m", epoch, 0).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    s.t.write_n(&s.index, "more", 5).await;
    // Lost, and not claimed back while what it delivered waits for a commit.
    for _ in 0..5 {
        let more = s.member.poll(100).await.unwrap();
        assert!(
            more.is_empty(),
            "nothing delivered before the handover commit: {:?}",
            more.iter().map(|r| &r.id).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert!(
        s.member.handover_pending(),
        "the lost partition waits for its commit"
    );
    s.member.commit().await.unwrap();
    assert!(!s.member.handover_pending());
    // Claimed back from the offset just committed: the rest, and nothing of the first 30.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while s.got.len() < 55 && std::time::Instant::now() < deadline {
        s.got.extend(s.member.poll(100).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.got.extend(s.member.poll(100).await.unwrap());
    let ids: Vec<&str> = s.got.iter().map(|r| r.id.as_str()).collect();
    let distinct: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), 55, "every document delivered: {ids:?}");
    assert_eq!(ids.len(), 55, "none delivered twice: {ids:?}");
    let now = s.describe().await;
    assert!(
        now.epoch.unwrap() > epoch,
        "claimed back in a newer epoch: {now:?}"
    );
    s.member.close().await.unwrap();
}

/// A member that learns from a rebalance (before its lease renewal does) that another member
/// claimed its partition keeps what it delivered for a commit, and makes it before it claims
/// anything again: here the new owner has not fenced the offset yet, so the cluster takes the
/// commit, and the new owner will continue from it. Nothing written after the takeover is
/// delivered. (A rebalance once dropped such a partition as if its index were gone: its
/// deliveries were forgotten, and no commit was tried.)
#[tokio::test]
async fn a_partition_found_taken_at_a_rebalance_commits_what_was_delivered_of_it() {
    // A 30 s lease is renewed every 10 s: the rebalance of the next poll sees the new claim first.
    let mut s = HalfCommitted::start("taken-at-rebalance", "old", Duration::from_secs(30)).await;
    let epoch = s.epoch();
    let far = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 3_600_000;
    s.put_claim("new", epoch + 1, far).await;
    s.t.write_n(&s.index, "more", 5).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut delivered: Vec<String> = s.got.iter().map(|r| r.id.clone()).collect();
    while !s.member.handover_pending() {
        assert!(
            std::time::Instant::now() < deadline,
            "the taken partition never waited for its commit: {:?}",
            s.member.status()
        );
        // What it had read before the takeover may still be handed out (it does not know
        // yet); nothing written after it is.
        let more = s.member.poll(100).await.unwrap();
        assert!(
            more.iter().all(|r| r.id.starts_with('d')),
            "nothing written after the takeover delivered: {:?}",
            more.iter().map(|r| &r.id).collect::<Vec<_>>()
        );
        delivered.extend(more.into_iter().map(|r| r.id));
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    s.member.commit().await.unwrap();
    assert!(!s.member.handover_pending(), "settled by the commit");
    // The offset document as the commit left it: the old epoch (nobody fenced it), and a
    // `_seq_no` that covers every document delivered (their `_seq_no`s are 0..).
    let now = s.offset_doc().await;
    let seq_no = now["seq_no"].as_i64().unwrap();
    assert!(
        seq_no + 1 >= delivered.len() as i64 && seq_no > s.at_start.committed,
        "the commit covers the {} delivered (the 20 committed before and what came after): {now}",
        delivered.len()
    );
    assert_eq!(
        now["epoch"],
        json!(epoch),
        "written in the old epoch: {now}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..5 {
        assert!(
            s.member.poll(100).await.unwrap().is_empty(),
            "nothing more delivered"
        );
    }
    s.member.close().await.unwrap();
}

/// A member whose claim lapsed while another took the partition over, read all of it,
/// committed and let it go: when the first one comes back its commit (of its old epoch) is
/// refused before it claims anything again, so the other's offset is not rewound, and claiming
/// the partition back continues from the other's offset.
#[tokio::test]
async fn a_member_back_from_a_lapse_does_not_rewind_the_offset_of_the_member_that_took_over() {
    let mut s = HalfCommitted::start("lapsed-takeover", "m", Duration::from_secs(1)).await;
    // Meanwhile another member claimed it in the next epoch, fenced the offset document, read
    // all 50, committed and released it (its claim kept, expired), all as members write them.
    let epoch = s.epoch();
    let last = s.at_start.checkpoint.expect("the shard's checkpoint");
    s.put_claim("new", epoch + 1, 0).await;
    let mut doc = s.offset_doc().await;
    doc["epoch"] = json!(epoch + 1);
    doc["member"] = json!("new");
    doc["seq_no"] = json!(last);
    doc.as_object_mut().unwrap().remove("delivered");
    s.put_offset_doc(&doc).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    s.t.write_n(&s.index, "more", 5).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut after: Vec<Record> = Vec::new();
    while after.len() < 5 && std::time::Instant::now() < deadline {
        after.extend(s.member.poll(100).await.unwrap());
        if s.member.handover_pending() {
            s.member.commit().await.unwrap();
        }
    }
    let now = s.describe().await;
    assert!(
        now.committed >= last,
        "the other member's offset {last} was not rewound: {now:?}"
    );
    assert!(
        now.epoch.unwrap() > epoch + 1,
        "claimed back in a newer epoch: {now:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    after.extend(s.member.poll(100).await.unwrap());
    let ids: Vec<&str> = after.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        ["more0", "more1", "more2", "more3", "more4"],
        "claimed back from the other's offset: only what came after it"
    );
    s.member.close().await.unwrap();
}

#[tokio::test]
async fn an_offset_document_of_the_other_mode_or_corrupt_is_an_error_not_a_reset() {
    let t = target("corrupt").await;
    let index = t.name("c");
    t.create_index(&index, 1, "100ms").await;
    t.write(&index, &[("a".into(), json!({"i": 1}))]).await;
    let group = t.name("g");
    let offsets = t.name("offsets");
    assert_eq!(
        t.consume(&index, &group, Duration::from_millis(600), |b| b)
            .await
            .len(),
        1
    );
    let uuid = t.call("GET", &format!("/{index}/_settings"), None).await[&index]["settings"]
        ["index"]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let id = format!("{group}|{uuid}|0");
    let path = format!("/{offsets}/_doc/{}", id.replace('|', "%7C"));
    let mut doc = t.call("GET", &path, None).await["_source"].clone();
    doc["seq_no"] = json!(-5);
    t.call("PUT", &format!("{path}?refresh=true"), Some(doc.clone()))
        .await;
    // Both runs share the sink's records (a clone of a MemorySink shares them).
    let sink = MemorySink::default();
    let run_once = || {
        let (cfg, index, group, offsets, mut sink) = (
            t.client_config(),
            index.clone(),
            group.clone(),
            offsets.clone(),
            sink.clone(),
        );
        async move {
            // The offsets' mode is checked before the group is joined, so a mismatch is an
            // error of `build`; a corrupt offset one of the first round.
            let mut c = Consumer::builder(cfg, &index, &group)
                .with_offsets_index(&offsets)
                .build()
                .await?;
            let opts = RunOptions::default()
                .with_until_idle(Duration::from_millis(300))
                .with_max_consecutive_failures(0);
            let r = c.run(&mut sink, opts, std::future::pending()).await;
            c.close().await.unwrap();
            r
        }
    };
    let r = run_once().await;
    assert!(matches!(r, Err(Error::CorruptOffset { .. })), "{r:?}");
    doc["seq_no"] = json!(0);
    doc["mode"] = json!("timestamp");
    t.call("PUT", &format!("{path}?refresh=true"), Some(doc))
        .await;
    let r = run_once().await;
    assert!(matches!(r, Err(Error::ModeMismatch { .. })), "{r:?}");
    assert!(
        sink.records.lock().unwrap().is_empty(),
        "nothing may be delivered from a reset offset"
    );
}

/// Stopping right after the last document (here `--max-events`) still commits up to the
/// checkpoint when nothing more can be below it, so a restart repeats nothing.
#[tokio::test]
async fn a_graceful_stop_commits_everything_delivered_when_it_can_prove_it() {
    let t = target("settle").await;
    let index = t.name("s");
    t.create_index(&index, 2, "1s").await;
    t.write_n(&index, "d", 50).await;
    t.call("POST", &format!("/{index}/_refresh"), None).await;
    let group = t.name("g");
    let mut consumer = Consumer::builder(t.client_config(), &index, &group)
        .with_poll_interval(Duration::from_millis(50))
        .with_offsets_index(t.name("offsets"))
        .build()
        .await
        .unwrap();
    let mut sink = MemorySink::default();
    let summary = consumer
        .run(
            &mut sink,
            RunOptions::default().with_max_events(50),
            std::future::pending(),
        )
        .await
        .unwrap();
    consumer.close().await.unwrap();
    assert_eq!(summary.delivered, 50);
    let again = t
        .consume(&index, &group, Duration::from_millis(600), |b| b)
        .await;
    assert!(
        again.is_empty(),
        "{} documents repeated after a graceful stop",
        again.len()
    );
}

/// Indices that start matching the pattern while the consumer runs are read without a restart.
/// The run ends once everything arrived (or after 20 s), not after an idle spell: on a loaded
/// real node creating the second index can take longer than any idle limit short enough for a
/// test, and the consumer then stopped before it existed.
#[tokio::test]
async fn indices_that_start_matching_are_picked_up_while_running() {
    let t = target("rollover").await;
    let first = t.name("logs-000001");
    t.create_index(&first, 1, "100ms").await;
    t.write_n(&first, "a", 10).await;
    let pattern = format!("{}-logs-*", t.prefix);
    let consumer = Consumer::builder(t.client_config(), &pattern, t.name("g"))
        .with_poll_interval(Duration::from_millis(50))
        .with_offsets_index(t.name("offsets"))
        .build()
        .await
        .unwrap();
    let running = super::harness::Running::start(consumer, RunOptions::default());
    super::timestamp::wait_for(|| running.records.lock().unwrap().len() >= 10).await;
    let second = t.name("logs-000002");
    t.create_index(&second, 2, "100ms").await;
    t.write_n(&second, "b", 10).await;
    super::timestamp::wait_for(|| running.records.lock().unwrap().len() >= 20).await;
    // A moment more, so that a repeat would be seen.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let records = running.records.clone();
    running.stop().await.unwrap();
    let c = counts(&records.lock().unwrap());
    assert_eq!(c.len(), 20, "{c:?}");
    assert!(c.values().all(|&n| n == 1), "repeated: {c:?}");
}

/// `RefreshPolicy::Force` proves visibility by refreshing explicitly: with scheduled refreshes
/// disabled it still delivers everything at once.
#[tokio::test]
async fn the_force_refresh_policy_delivers_without_scheduled_refreshes() {
    let t = target("force").await;
    let index = t.name("f");
    t.create_index(&index, 2, "-1").await;
    t.write_n(&index, "d", 25).await;
    let got = t
        .consume(&index, &t.name("g"), Duration::from_millis(500), |b| {
            b.exact(ExactSettings::default().with_refresh_policy(indexstream::RefreshPolicy::Force))
        })
        .await;
    assert_eq!(counts(&got).len(), 25);
}

/// A sink whose flushes finish only when the test opens the gate.
struct GatedSink {
    records: std::sync::Arc<std::sync::Mutex<Vec<indexstream::Record>>>,
    gate: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
}

impl indexstream::Sink for GatedSink {
    async fn write(
        &mut self,
        records: &[indexstream::Record],
    ) -> Result<(), indexstream::SinkError> {
        self.records.lock().unwrap().extend_from_slice(records);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), indexstream::SinkError> {
        Ok(())
    }

    async fn start_flush(&mut self) -> Result<indexstream::PendingFlush, indexstream::SinkError> {
        let gate = self.gate.clone();
        Ok(indexstream::PendingFlush::spawn_blocking(move || {
            let (open, cv) = &*gate;
            let mut open = open.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            Ok(())
        }))
    }
}

struct OpenOnDrop(std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        let (open, cv) = &*self.0;
        *open.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
    }
}

#[tokio::test]
async fn offsets_are_committed_only_once_the_sink_flush_finishes_and_reading_goes_on_meanwhile() {
    let t = target("gated").await;
    let index = t.name("g");
    t.create_index(&index, 1, "100ms").await;
    t.write_n(&index, "a", 300).await;
    t.call("POST", &format!("/{index}/_refresh"), None).await;
    let group = t.name("grp");
    let offsets = t.name("offsets");
    let uuid = t.call("GET", &format!("/{index}/_settings"), None).await[&index]["settings"]
        ["index"]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let committed = || {
        let t = &t;
        let path = format!(
            "/{offsets}/_doc/{}",
            format!("{group}|{uuid}|0").replace('|', "%7C")
        );
        async move {
            let resp = t.http.get(format!("{}{path}", t.url)).send().await.unwrap();
            let v: serde_json::Value = resp.json().await.unwrap();
            v["_source"]["seq_no"].as_i64()
        }
    };
    let mut consumer = Consumer::builder(t.client_config(), &index, &group)
        .with_page_size(50)
        .with_poll_interval(Duration::from_millis(50))
        .with_commit_every(50, Duration::from_millis(100))
        .with_offsets_index(&offsets)
        .build()
        .await
        .unwrap();
    let records = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let gate = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    // Opens the gate however the test ends, so a failing assertion fails instead of leaving
    // blocked flushes behind for the runtime to wait for.
    let _open_on_exit = OpenOnDrop(gate.clone());
    let mut sink = GatedSink {
        records: records.clone(),
        gate: gate.clone(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let r = consumer
            .run(&mut sink, RunOptions::default(), async {
                let _ = stopped.await;
            })
            .await;
        consumer.close().await.unwrap();
        r
    });
    // The first commit's flush hangs: delivery goes on past the first batch meanwhile, up to
    // the commit contract's bound (commit interval + one batch uncommitted: 100 here)...
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while records.lock().unwrap().len() < 100 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivery stalled behind the flush"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...no further, and nothing is committed while it has not finished.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        records.lock().unwrap().len(),
        100,
        "more than the commit interval and a batch delivered while the commit waited"
    );
    assert_eq!(
        committed().await,
        None,
        "committed before the sink's flush finished"
    );
    {
        let (open, cv) = &*gate;
        *open.lock().unwrap() = true;
        cv.notify_all();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while committed().await != Some(299) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never committed after the flush"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    assert_eq!(counts(&records.lock().unwrap()).len(), 300);
}

/// `--url` with several nodes, two of them dead (nothing listens there): every request that
/// meets a dead node goes on to the live one at once, so everything is delivered once and no
/// poll, commit or request counts as failed or retried.
#[tokio::test]
async fn dead_nodes_in_the_url_list_cost_no_failed_poll_and_no_retry() {
    let t = target("nodes").await;
    let index = t.name("n");
    t.create_index(&index, 2, "100ms").await;
    t.write_n(&index, "d", 300).await;
    let dead = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let url = format!("{},{},{}", dead(), t.url, dead());
    let mut consumer = Consumer::builder(indexstream::ClientConfig::new(url), &index, t.name("g"))
        .with_poll_interval(Duration::from_millis(50))
        .with_commit_every(100, Duration::from_millis(200))
        .with_offsets_index(t.name("offsets"))
        .build()
        .await
        .unwrap();
    let mut sink = MemorySink::default();
    consumer
        .run(
            &mut sink,
            RunOptions::default().with_until_idle(Duration::from_millis(800)),
            std::future::pending(),
        )
        .await
        .unwrap();
    let metrics = consumer.telemetry().encode_metrics();
    consumer.close().await.unwrap();
    let c = counts(&sink.records.lock().unwrap());
    assert_eq!(c.len(), 300);
    assert!(c.values().all(|n| *n == 1));
    let failures: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            (l.starts_with("indexstream_errors_total")
                || l.starts_with("indexstream_retries_total")
                || l.starts_with("indexstream_offset_commits_total{result=\"failed\""))
                && !l.ends_with(" 0")
        })
        .collect();
    assert!(failures.is_empty(), "failures counted: {failures:?}");
}

/// A burst with nothing written after it, at the default poll interval (1 s) and a 1 s refresh
/// interval: every document is delivered soon after the burst's last write. On a real node the
/// refresh counter moves once after the burst and then stands still, so nothing may wait for
/// refreshes that never come. The bound asserted is twice the target `refresh interval + poll
/// interval + 250 ms` (the figure is printed); a 5 s stall breaks it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_delivered_within_a_refresh_and_a_poll_of_its_last_write() {
    let t = target("burst").await;
    let index = t.name("b");
    t.create_index(&index, 3, "1s").await;
    let consumer = Consumer::builder(t.client_config(), &index, t.name("g"))
        .with_page_size(500)
        .with_offsets_index(t.name("offsets"))
        .build()
        .await
        .unwrap();
    let running = super::harness::Running::start(consumer, RunOptions::default());
    let records = running.records.clone();
    tokio::time::sleep(Duration::from_secs(2)).await;
    const N: usize = 20_000;
    for chunk in 0..(N / 1000) {
        let docs: Vec<_> = (0..1000)
            .map(|i| (format!("b{}", chunk * 1000 + i), json!({"n": i})))
            .collect();
        t.write(&index, &docs).await;
    }
    let last_write = std::time::Instant::now();
    while records.lock().unwrap().len() < N {
        assert!(
            last_write.elapsed() < Duration::from_secs(30),
            "only {} of {N} delivered 30 s after the burst",
            records.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let latency = last_write.elapsed();
    eprintln!("burst of {N}: the last document was delivered {latency:?} after the last write");
    running.stop().await.unwrap();
    let c = counts(&records.lock().unwrap());
    assert_eq!(c.len(), N);
    assert!(c.values().all(|n| *n == 1));
    let target = Duration::from_millis(1000 + 1000 + 250);
    assert!(
        latency <= target * 2,
        "{latency:?} after the burst (target {target:?})"
    );
}

/// The same member id twice in one process (two consumers): the second is refused, naming the
/// member id, while the first lives.
#[tokio::test]
async fn a_live_holder_of_the_same_member_id_is_refused() {
    let t = target("same-member").await;
    let index = t.name("x");
    t.create_index(&index, 1, "100ms").await;
    let group = t.name("g");
    let first = Consumer::builder(t.client_config(), &index, &group)
        .with_member_id("worker")
        .with_offsets_index(t.name("offsets"))
        .build()
        .await
        .unwrap();
    let second = Consumer::builder(t.client_config(), &index, &group)
        .with_member_id("worker")
        .with_offsets_index(t.name("offsets"))
        .build()
        .await;
    match second {
        Err(Error::MemberIdInUse { member, pid, .. }) => {
            assert_eq!(member, "worker");
            assert_eq!(pid, std::process::id());
        }
        other => panic!("expected MemberIdInUse, got {other:?}"),
    }
    first.close().await.unwrap();
}

/// A lease held under our member id by a process of this host that is gone (a crash, `kill
/// -9`) is taken over at once, not after its time to live.
#[tokio::test]
async fn a_lease_left_by_a_dead_process_of_this_member_is_taken_over_at_once() {
    let t = target("dead-holder").await;
    let index = t.name("x");
    let offsets = t.name("offsets");
    t.create_index(&index, 1, "100ms").await;
    let group = t.name("g");
    // Create the offsets index, then leave a lease as a crashed process would: ours to the
    // member id and host, with a process that no longer runs, expiring in an hour.
    Consumer::builder(t.client_config(), &index, &group)
        .with_offsets_index(&offsets)
        .build()
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    let member = indexstream::default_member_id();
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 3_600_000;
    t.call(
        "PUT",
        &format!("/{offsets}/_doc/{group}%7Clease?refresh=true"),
        Some(json!({"group": group, "kind": "lease", "member": member, "host": member, "pid": 1, "process": "gone:0", "instance": "crashed", "expires_at_ms": expires, "updated_at": "2026-01-01T00:00:00Z"})),
    )
    .await;
    // And its member document and claim on the one partition (what a member of this
    // version leaves behind when killed).
    let uuid = t.call("GET", &format!("/{index}/_settings"), None).await[&index]["settings"]
        ["index"]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    t.call(
        "PUT",
        &format!("/{offsets}/_doc/{group}%7Cmember%7C{member}?refresh=true"),
        Some(json!({"group": group, "kind": "member", "member": member, "host": member, "pid": 1, "process": "gone:0", "instance": "crashed", "expires_at_ms": expires, "updated_at": "2026-01-01T00:00:00Z"})),
    )
    .await;
    t.call(
        "PUT",
        &format!("/{offsets}/_doc/{group}%7Cclaim%7C{uuid}%7C0?refresh=true"),
        Some(json!({"group": group, "kind": "claim", "member": member, "index": index, "index_uuid": uuid, "shard": 0, "epoch": 4, "instance": "crashed", "expires_at_ms": expires})),
    )
    .await;
    t.write_n(&index, "d", 3).await;
    let started = std::time::Instant::now();
    let mut consumer = Consumer::builder(t.client_config(), &index, &group)
        .with_offsets_index(&offsets)
        .build()
        .await
        .expect("the dead process's lease is taken over");
    // Static membership: the partition the dead process claimed is taken back at once, with a
    // newer epoch, not after the hour its claim had left.
    let mut got = Vec::new();
    while got.len() < 3 && started.elapsed() < Duration::from_secs(5) {
        got.extend(consumer.poll(10).await.unwrap());
    }
    assert_eq!(got.len(), 3, "read at once");
    assert!(started.elapsed() < Duration::from_secs(5));
    consumer.commit().await.unwrap();
    let admin = indexstream::Admin::new(
        indexstream::Client::new(&t.client_config()).unwrap(),
        &offsets,
    );
    let indexstream::Description::Exact { partitions, .. } = admin.describe(&group).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(partitions[0].epoch, Some(5), "{partitions:?}");
    consumer.close().await.unwrap();
}

/// A sink that blocks for three lease TTLs: the membership and its claims are renewed meanwhile
/// on their own timer, so another member joining the whole time gets none of the partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_is_renewed_while_the_sink_blocks() {
    let t = target("renew").await;
    let index = t.name("x");
    let offsets = t.name("offsets");
    t.create_index(&index, 1, "100ms").await;
    t.write_n(&index, "d", 10).await;
    let group = t.name("g");
    let consumer = Consumer::builder(t.client_config(), &index, &group)
        .with_member_id("slow")
        .with_lease_ttl(Duration::from_secs(1))
        .with_poll_interval(Duration::from_millis(50))
        .with_offsets_index(&offsets)
        .build()
        .await
        .unwrap();
    struct Blocking(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl indexstream::Sink for Blocking {
        async fn write(
            &mut self,
            _records: &[indexstream::Record],
        ) -> Result<(), indexstream::SinkError> {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(3));
            Ok(())
        }
        async fn flush(&mut self) -> Result<(), indexstream::SinkError> {
            Ok(())
        }
    }
    let blocked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sink_flag = blocked.clone();
    let task = tokio::spawn(async move {
        let mut consumer = consumer;
        let mut sink = Blocking(sink_flag);
        let r = consumer
            .run(
                &mut sink,
                RunOptions::default().with_max_events(10),
                std::future::pending(),
            )
            .await;
        consumer.close().await.unwrap();
        r
    });
    while !blocked.load(std::sync::atomic::Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut other = Consumer::builder(t.client_config(), &index, &group)
        .with_member_id("other")
        .with_poll_interval(Duration::from_millis(50))
        .with_offsets_index(&offsets)
        .build()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        assert!(
            other.poll(10).await.unwrap().is_empty(),
            "the claim lapsed while the sink blocked"
        );
        assert!(other.status().is_empty());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    other.close().await.unwrap();
    task.await.unwrap().unwrap();
}
