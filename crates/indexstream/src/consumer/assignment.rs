//! What a reader of partitions shared by the group's members does when the assignment changes,
//! the same in exact mode and in timestamp mode by shard: it stops reading what it lost, hands
//! over what the assignment gives to others once it is committed, and claims what it gives us.

use std::collections::BTreeSet;

use super::Ctx;
use crate::client::types::IndexShards;
use crate::client::ClientError;
use crate::error::{Error, Result};
use crate::group::members::Membership;
use crate::partition::PartitionId;

/// A reader whose partitions come and go with the group's assignment.
pub(super) trait Assigned {
    /// A partition the membership lost: nothing more of it is read or handed out; what was
    /// handed out stays for a commit (refused by the cluster once a new owner fenced it).
    fn lose_partition(&mut self, cx: &mut Ctx<'_>, pid: &PartitionId);
    /// How many partitions wait for their handover commit.
    fn handing_over(&self) -> usize;
    /// A partition the assignment gives another member: stops reading it, to hand it over
    /// after the next commit. `false` when it was being handed over already.
    fn revoke(&mut self, cx: &mut Ctx<'_>, pid: &PartitionId) -> bool;
    /// Whether a partition waits for its handover commit.
    fn is_revoking(&self, pid: &PartitionId) -> bool;
    /// Whether something handed out of a partition is not committed yet.
    fn has_uncommitted(&self, pid: &PartitionId) -> bool;
    /// The handed-over partitions with nothing left to commit, forgotten.
    fn handed_over(&mut self) -> Vec<PartitionId>;
    /// The partitions it reads.
    fn reading(&self) -> Vec<PartitionId>;
    /// Forgets a partition altogether (its index is gone from the assignment's view).
    fn drop_partition(&mut self, cx: &mut Ctx<'_>, pid: &PartitionId);
}

/// The hold's check, then the shard stats of the expression the group reads: on the `first`
/// round a missing expression is [`Error::NoSuchIndex`], later it holds no partitions now.
pub(super) async fn group_stats(cx: &Ctx<'_>, first: bool) -> Result<Vec<IndexShards>> {
    if let Some(hold) = cx.hold {
        hold.check()?;
    }
    match cx.client.shard_stats(&cx.config.index).await {
        Ok(s) => Ok(s),
        Err(ClientError::Status { status: 404, .. }) if first => Err(Error::NoSuchIndex {
            pattern: cx.config.index.clone(),
        }),
        Err(ClientError::Status { status: 404, .. }) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Whether a partition is still ours to read: always without a membership; with one, while
/// its claim is fenced and renewed within the TTL. Asked before each search, so that a member
/// back from a pause past its TTL sends no read of a partition it lost (what it read would not
/// be delivered, but it would load the shard another member now reads).
pub(super) fn still_ours(cx: &Ctx<'_>, pid: &PartitionId) -> bool {
    cx.hold
        .and_then(|h| h.members())
        .is_none_or(|m| m.owns(pid))
}

/// Stops reading the partitions the membership lost; what was handed out of them stays for a
/// commit (`uncommitted` in the log: the cluster refuses it if a new owner fenced them).
fn lose<R: Assigned>(reader: &mut R, cx: &mut Ctx<'_>, members: &Membership) {
    for (pid, why) in members.take_lost() {
        reader.lose_partition(cx, &pid);
        tracing::warn!(partition = %pid, reason = %why, uncommitted = reader.has_uncommitted(&pid), "partition lost: delivering nothing more of it");
    }
}

/// Every partition in a shard-stats answer.
pub(super) fn partitions_of(stats: &[IndexShards]) -> impl Iterator<Item = PartitionId> + '_ {
    stats.iter().flat_map(|i| {
        i.shards.iter().map(|s| PartitionId {
            index: i.index.clone(),
            uuid: i.uuid.clone(),
            shard: s.shard,
        })
    })
}

/// Agrees with the other members of the group on who reads what: hands over what the
/// assignment gives to others, claims what it gives us. Returns the shard stats of what we own
/// (every index kept, so that deleted and recreated ones are still told apart). Without a
/// membership (one member holds the group) everything is ours.
pub(super) async fn rebalance<R: Assigned>(
    reader: &mut R,
    cx: &mut Ctx<'_>,
    mut stats: Vec<IndexShards>,
) -> Result<Vec<IndexShards>> {
    let Some(members) = cx.hold.and_then(|h| h.members()) else {
        return Ok(stats);
    };
    lose(reader, cx, members);
    let all: BTreeSet<PartitionId> = partitions_of(&stats).collect();
    // What we lost or hand over is settled first: its commit goes out (or is refused by the
    // new owner's fence) before we claim anything again, so a member back from a pause never
    // claims back a partition with a commit of its old epoch still to make.
    let change = if reader.handing_over() == 0 {
        let change = members.rebalance(&all, cx.offsets).await?;
        // Claims this rebalance found taken (a member back from a pause learns it here): lost
        // like the others, kept for their commit, not dropped below as gone from the view.
        lose(reader, cx, members);
        change
    } else {
        tracing::debug!(
            handing_over = reader.handing_over(),
            "rebalance deferred until the handover commit"
        );
        Default::default()
    };
    for pid in change.revoke {
        if reader.revoke(cx, &pid) {
            tracing::info!(partition = %pid, "partition assigned to another member: handing it over after the next commit");
        }
    }
    // Handed over with nothing to commit: released at once.
    let done = reader.handed_over();
    if !done.is_empty() {
        for pid in &done {
            tracing::info!(partition = %pid, "partition released: all delivered of it is committed");
            cx.offsets.forget(pid);
        }
        members.release(&done).await?;
    }
    let owned = members.owned();
    for index in &mut stats {
        index.shards.retain(|s| {
            let pid = PartitionId {
                index: index.index.clone(),
                uuid: index.uuid.clone(),
                shard: s.shard,
            };
            owned.contains_key(&pid) && !reader.is_revoking(&pid)
        });
    }
    // Ours in our state but no longer in the assignment's view (an index deleted).
    for pid in reader.reading() {
        if !owned.contains_key(&pid) {
            reader.drop_partition(cx, &pid);
        }
    }
    Ok(stats)
}
