//! The admin module: list, describe, reset and delete a group, against what a consumer
//! committed, and a group a live member holds left alone.

use std::time::Duration;

use indexstream::{Admin, Description, Reset, ResetDone, ResetTo, WhenHeld};
use indexstream::{Client, Consumer, Error, Mode, RunOptions};

use super::harness::{counts, target, Running};

#[tokio::test]
async fn groups_are_listed_described_reset_and_deleted_and_a_held_group_is_left_alone() {
    let t = target("admin").await;
    let index = t.name("a");
    t.create_index(&index, 2, "100ms").await;
    t.write_n(&index, "d", 30).await;
    let group = t.name("g");
    let offsets = t.name("offsets");
    let got = t
        .consume(&index, &group, Duration::from_millis(800), |b| b)
        .await;
    assert_eq!(counts(&got).len(), 30);
    let admin = Admin::new(Client::new(&t.client_config()).unwrap(), &offsets);

    let listed = admin.list().await.unwrap();
    let mine = listed.iter().find(|g| g.group == group).expect("listed");
    assert_eq!(
        (mine.mode, mine.partitions, mine.members.clone()),
        (Some(Mode::Exact), 2, vec![])
    );

    let Description::Exact {
        partitions,
        members,
        ..
    } = admin.describe(&group).await.unwrap()
    else {
        panic!("an exact-mode group")
    };
    assert_eq!(members, vec![]);
    assert!(
        partitions.iter().all(|p| p.owner.is_none()),
        "{partitions:?}"
    );
    assert_eq!(partitions.len(), 2);
    assert!(
        partitions
            .iter()
            .all(|p| p.lag == Some(0) && p.checkpoint == Some(p.committed)),
        "{partitions:?}"
    );

    // Back to the start: every partition at -1, and a consumer reads everything again.
    let ResetDone::Exact(set) = admin
        .reset(&group, &Reset::new(ResetTo::Earliest))
        .await
        .unwrap()
    else {
        panic!("an exact reset")
    };
    assert_eq!(set.len(), 2);
    assert!(set.iter().all(|(_, seq)| *seq == -1));
    let Description::Exact { partitions, .. } = admin.describe(&group).await.unwrap() else {
        panic!()
    };
    assert_eq!(partitions.iter().map(|p| p.lag.unwrap()).sum::<i64>(), 30);
    let again = t
        .consume(&index, &group, Duration::from_millis(800), |b| b)
        .await;
    assert_eq!(counts(&again).len(), 30, "earliest re-reads everything");

    // To the latest: nothing is read until something new arrives.
    admin
        .reset(&group, &Reset::new(ResetTo::Latest))
        .await
        .unwrap();
    t.write_n(&index, "late", 3).await;
    let after = t
        .consume(&index, &group, Duration::from_millis(800), |b| b)
        .await;
    let mut ids: Vec<String> = counts(&after).into_keys().collect();
    ids.sort();
    assert_eq!(ids, ["late0", "late1", "late2"]);

    // A running member holds the group: no reset, no delete unless forced.
    let consumer = Consumer::builder(t.client_config(), &index, &group)
        .with_member_id("admin-test-member")
        .with_poll_interval(Duration::from_millis(50))
        .with_offsets_index(&offsets)
        .build()
        .await
        .unwrap();
    let running = Running::start(consumer, RunOptions::default());
    match admin.reset(&group, &Reset::new(ResetTo::Earliest)).await {
        Err(Error::GroupRunning { group: g, members }) => {
            assert_eq!(g, group);
            assert_eq!(
                members,
                ["admin-test-member"],
                "the refusal names the member"
            );
        }
        other => panic!("expected GroupRunning, got {other:?}"),
    }
    // Described while running: the member, and its claims on both partitions.
    let owned = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(Description::Exact {
                members,
                partitions,
                ..
            }) = admin.describe(&group).await
            {
                if members.len() == 1 && members[0].partitions.len() == 2 {
                    return (members, partitions);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the running member's claims are described");
    assert_eq!(owned.0[0].member, "admin-test-member");
    assert!(owned.0[0].heartbeat_age_ms.is_some_and(|a| a < 30_000));
    assert!(
        owned
            .1
            .iter()
            .all(|p| p.owner.as_deref() == Some("admin-test-member") && p.epoch >= Some(1)),
        "{:?}",
        owned.1
    );
    assert!(matches!(
        admin.delete(&group, WhenHeld::Refuse).await,
        Err(Error::GroupRunning { .. })
    ));
    let held = admin.list().await.unwrap();
    assert!(
        held.iter()
            .any(|g| g.group == group && g.members == ["admin-test-member"]),
        "{held:?}"
    );
    running.stop().await.unwrap();

    // Deleted: offsets and lease gone, nothing left to describe.
    let deleted = admin.delete(&group, WhenHeld::Refuse).await.unwrap();
    assert!(deleted >= 2, "{deleted}");
    assert!(matches!(
        admin.describe(&group).await,
        Err(Error::NoOffsets { .. })
    ));
    assert!(admin.list().await.unwrap().iter().all(|g| g.group != group));

    // A group without offsets needs its indices named.
    let fresh = t.name("fresh");
    assert!(matches!(
        admin.reset(&fresh, &Reset::new(ResetTo::Latest)).await,
        Err(Error::NoOffsets { .. })
    ));
    let ResetDone::Exact(set) = admin
        .reset(&fresh, &Reset::new(ResetTo::Latest).with_index(&index))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(set.len(), 2);
    assert_eq!(set.iter().map(|(_, s)| s + 1).sum::<i64>(), 33, "{set:?}");
}

#[tokio::test]
async fn a_timestamp_group_is_reset_to_a_floor_and_described_from_it() {
    let t = target("admin-ts").await;
    let index = t.name("t");
    t.create_index(&index, 1, "100ms").await;
    let docs: Vec<(String, serde_json::Value)> = (0..10)
        .map(|i| {
            (
                format!("e{i}"),
                serde_json::json!({"@timestamp": indexstream::iso_millis(1_700_000_000_000 + i * 1000)}),
            )
        })
        .collect();
    t.write(&index, &docs).await;
    // Visible before the count of `describe` (the index refreshes every 100 ms).
    t.call("POST", &format!("/{index}/_refresh"), None).await;
    let admin = Admin::new(Client::new(&t.client_config()).unwrap(), t.name("offsets"));
    let group = t.name("g");
    let reset = Reset::new(ResetTo::Time {
        epoch_ms: 1_700_000_005_000,
    })
    .with_index(&index)
    .with_new_group_mode(Mode::Timestamp);
    let ResetDone::Timestamp {
        index: expr,
        floor_ns,
    } = admin.reset(&group, &reset).await.unwrap()
    else {
        panic!("a timestamp reset")
    };
    assert_eq!(expr, index);
    assert_eq!(floor_ns, Some(1_700_000_005_000_000_000 - 1));
    let Description::Timestamp(d) = admin.describe(&group).await.unwrap() else {
        panic!("a timestamp group")
    };
    assert_eq!(
        (d.cursor_ns, d.floor_ns, d.newer),
        (None, floor_ns, Some(5))
    );
    let got = t
        .consume(&index, &group, Duration::from_millis(800), |b| {
            b.with_mode(Mode::Timestamp)
        })
        .await;
    let mut ids: Vec<String> = counts(&got).into_keys().collect();
    ids.sort();
    assert_eq!(ids, ["e5", "e6", "e7", "e8", "e9"]);
}
