//! Several members per group (exact mode, and timestamp mode by shard): membership and partition
//! ownership kept in the offsets index, enforced by the cluster's compare-and-set.
//!
//! # The protocol
//! - **Members.** Each member writes a member document (`{group}|member|{member id}`: host,
//!   process, acquisition, expiry) and renews it on a timer of its own every third of the lease
//!   TTL. A member whose document has expired has left.
//! - **Assignment.** At every read round a member reads the group's member and claim documents
//!   and computes [`assign`] from them: every member computes the same sticky, balanced answer
//!   from the same view, so there is no leader. It claims the partitions the answer gives it
//!   that nobody holds, and hands over those it holds that the answer gives to another.
//! - **Claims.** A claim document (`{group}|claim|{index uuid}|{shard}`) names the owner and the
//!   ownership epoch, one above every epoch the partition had, and expires unless renewed with the
//!   member document. It is created, taken over (expired, or our own member id's from an earlier
//!   process) and renewed only with `if_seq_no`/`if_primary_term`: two members never both win.
//! - **Fencing.** The new owner then rewrites the partition's offset document with its epoch,
//!   conditionally ([`OffsetStore::fence`]), before it reads anything. From that write on, a
//!   commit by the previous owner, which still holds the old version, is refused by the cluster:
//!   a paused or cut-off member ("zombie") cannot move the offsets of a partition it lost.
//! - **Losing a partition.** A member stops delivering a partition as soon as a renewal finds its
//!   claim taken, a commit is refused, or the claim went a whole TTL without a renewal (the clock
//!   is monotonic, so a member resumed after `SIGSTOP` knows at once, before its next delivery).
//!   It settles what it lost before it claims anything again (the reader defers its rebalance
//!   until the commit of the lost and handed-over partitions is out): that commit is refused if a
//!   new owner fenced the partition, written if nobody took it; so a member back from a pause
//!   neither reads again what it delivered and could still commit, nor makes a commit of its old
//!   epoch under a new claim.
//! - **Handing over.** A partition given to another member is no longer read; once what was
//!   delivered of it is committed its claim is expired (kept, so that the next epoch counts
//!   from it), and the new owner claims it in its next round (within a poll interval). A member
//!   leaving gracefully commits and expires its claims, and deletes its member document; one
//!   killed loses its partitions when its claims expire (the TTL).
//! - **Static membership.** A member restarted under the same member id within the TTL finds the
//!   group unchanged (its member document never expired) and takes its own claims back, with a
//!   new epoch.
//!
//! [`assign`]: super::assign::assign

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::{lease_doc_id, Holder};
use crate::client::types::Cas;
use crate::client::{Client, ClientError};
use crate::date::now_millis as now_ms;
use crate::error::{Error, Result};
use crate::offset::{DocKind, Fence, OffsetStore, StoreDoc};
use crate::partition::PartitionId;
use crate::telemetry::Telemetry;

/// The id of a member's document.
pub fn member_doc_id(group: &str, member: &str) -> String {
    format!("{group}|member|{member}")
}

/// The id of a partition's claim document.
pub fn claim_doc_id(group: &str, p: &PartitionId) -> String {
    format!("{group}|claim|{}|{}", p.uuid, p.shard)
}

/// Our claim on one partition.
#[derive(Debug, Clone)]
struct Claim {
    epoch: u64,
    version: (i64, i64),
    /// When the last successful write of the claim was sent.
    renewed_at: Instant,
    /// Its offset document carries our epoch (see [`OffsetStore::fence`]).
    fenced: bool,
}

#[derive(Debug)]
struct State {
    member_version: (i64, i64),
    claims: BTreeMap<PartitionId, Claim>,
    /// Partitions lost since the consumer last asked, with why.
    lost: Vec<(PartitionId, String)>,
    /// The membership itself is lost (another process took our member id).
    gone: Option<String>,
}

#[derive(Debug)]
struct Shared {
    client: Client,
    index: String,
    group: String,
    me: Holder,
    ttl: Duration,
    state: Mutex<State>,
    /// Serialises the writes of claim and member documents (renewals, claims, releases), so
    /// that none of them works from a version another has just replaced.
    writes: tokio::sync::Mutex<()>,
    telemetry: Arc<Telemetry>,
}

/// What a rebalance changed for this member.
#[derive(Debug, Default)]
pub struct Change {
    /// Partitions now ours (claimed and fenced), with their epochs.
    pub gained: Vec<(PartitionId, u64)>,
    /// Partitions ours that the assignment gives to another member: hand them over.
    pub revoke: Vec<PartitionId>,
}

/// This process's membership of an exact-mode group. Renews its documents on a task of its own
/// (give it a client of its own: no breaker, connections no other task holds up).
#[derive(Debug)]
#[must_use = "the member stays in the group until it leaves or its documents expire"]
pub struct Membership {
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

fn member_doc(group: &str, me: &Holder, ttl: Duration) -> Value {
    StoreDoc {
        host: Some(me.host.clone()),
        pid: Some(me.pid),
        process: me.process.clone(),
        instance: Some(me.instance.clone()),
        expires_at_ms: Some(now_ms() + ttl.as_millis() as i64),
        ..StoreDoc::new(group, DocKind::Member, &me.member)
    }
    .to_value()
}

fn claim_doc(group: &str, me: &Holder, p: &PartitionId, epoch: u64, ttl: Duration) -> Value {
    StoreDoc {
        index: Some(p.index.clone()),
        index_uuid: Some(p.uuid.clone()),
        shard: Some(p.shard),
        host: Some(me.host.clone()),
        pid: Some(me.pid),
        instance: Some(me.instance.clone()),
        epoch: Some(epoch),
        expires_at_ms: Some(now_ms() + ttl.as_millis() as i64),
        ..StoreDoc::new(group, DocKind::Claim, &me.member)
    }
    .to_value()
}

/// A claim or member document as read, with its version.
#[derive(Debug, Clone)]
struct Read {
    doc: StoreDoc,
    version: (i64, i64),
}

/// The partition a claim document is for.
fn claim_partition(d: &StoreDoc) -> Option<PartitionId> {
    Some(PartitionId {
        index: d.index.clone()?,
        uuid: d.index_uuid.clone()?,
        shard: d.shard?,
    })
}

impl Membership {
    /// Joins `group`: writes this member's document (taking over one of our member id whose
    /// process is gone, or that another host holds: static membership) and starts renewing it.
    /// Refused with [`Error::GroupHeld`] while a single-member lease (timestamp mode, or an
    /// older version) holds the group, and with [`Error::MemberIdInUse`] while a live process
    /// on this host is a member under our id.
    pub async fn join(
        client: Client,
        index: &str,
        group: &str,
        member: &str,
        ttl: Duration,
        telemetry: Arc<Telemetry>,
    ) -> Result<Membership> {
        let me = Holder::this(member);
        if let Some(lease) = client.get_doc(index, &lease_doc_id(group)).await? {
            if let Some(d) = StoreDoc::from_value(&lease.source) {
                let now = now_ms();
                if d.is_live_lease(now) && d.member.as_deref() != Some(member) {
                    return Err(Error::GroupHeld {
                        group: group.to_string(),
                        holder: d.member.unwrap_or_default(),
                        expires_in_ms: d.expires_at_ms.unwrap_or(now) - now,
                    });
                }
                // Ours (an earlier process of this member id, of an older version): given up.
                let cas = Cas::Match {
                    seq_no: lease.seq_no,
                    primary_term: lease.primary_term,
                };
                if let Err(e) = client.delete_doc(index, &lease_doc_id(group), cas).await {
                    tracing::debug!(error = %e, "cannot delete the group's old lease");
                }
            }
        }
        let id = member_doc_id(group, member);
        let mut version = None;
        for _ in 0..5 {
            let cas = match client.get_doc(index, &id).await? {
                None => Cas::Create,
                Some(current) => {
                    let holder = Holder::from_doc(&current.source);
                    let live =
                        StoreDoc::from_value(&current.source).is_some_and(|d| d.is_live(now_ms()));
                    if live && holder.alive_here() == Some(true) && holder.instance != me.instance {
                        return Err(Error::MemberIdInUse {
                            group: group.to_string(),
                            member: member.to_string(),
                            pid: holder.pid,
                        });
                    }
                    if live {
                        tracing::info!(group, member, previous_pid = holder.pid, previous_host = %holder.host, "rejoining as an earlier process of this member id (static membership)");
                    }
                    Cas::Match {
                        seq_no: current.seq_no,
                        primary_term: current.primary_term,
                    }
                }
            };
            match client
                .put_doc(index, &id, &member_doc(group, &me, ttl), cas, false)
                .await
            {
                Ok(w) => {
                    version = Some((w.seq_no, w.primary_term));
                    break;
                }
                Err(ClientError::Status { status: 409, .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let Some(member_version) = version else {
            return Err(Error::MemberIdInUse {
                group: group.to_string(),
                member: member.to_string(),
                pid: 0,
            });
        };
        tracing::info!(group, member, "joined the group as a member");
        let shared = Arc::new(Shared {
            client,
            index: index.to_string(),
            group: group.to_string(),
            me,
            ttl,
            state: Mutex::new(State {
                member_version,
                claims: BTreeMap::new(),
                lost: Vec::new(),
                gone: None,
            }),
            writes: tokio::sync::Mutex::new(()),
            telemetry,
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(renew_loop(shared.clone(), stopped));
        Ok(Membership {
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Fails with [`Error::Fenced`] once the membership is lost (another process took our
    /// member id).
    pub fn check(&self) -> Result<()> {
        match &self.shared.state().gone {
            Some(detail) => Err(Error::Fenced {
                group: self.shared.group.clone(),
                detail: detail.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Whether we own `p` now: claimed, fenced, not lost, renewed within the TTL.
    pub fn owns(&self, p: &PartitionId) -> bool {
        let s = self.shared.state();
        s.gone.is_none()
            && s.claims
                .get(p)
                .is_some_and(|c| c.fenced && c.renewed_at.elapsed() < self.shared.ttl)
    }

    /// The partitions we own, with their epochs.
    pub fn owned(&self) -> BTreeMap<PartitionId, u64> {
        let s = self.shared.state();
        s.claims
            .iter()
            .filter(|(_, c)| c.fenced)
            .map(|(p, c)| (p.clone(), c.epoch))
            .collect()
    }

    /// Partitions lost since the last call (taken by another member, refused at a commit, or
    /// not renewed within the TTL), with why; they are no longer ours.
    pub fn take_lost(&self) -> Vec<(PartitionId, String)> {
        let ttl = self.shared.ttl;
        let mut s = self.shared.state();
        let lapsed: Vec<PartitionId> = s
            .claims
            .iter()
            .filter(|(_, c)| c.renewed_at.elapsed() >= ttl)
            .map(|(p, _)| p.clone())
            .collect();
        for p in lapsed {
            s.claims.remove(&p);
            s.lost
                .push((p, "its claim was not renewed within the lease TTL".into()));
        }
        let lost = std::mem::take(&mut s.lost);
        if !lost.is_empty() {
            self.shared.telemetry.partitions_lost(lost.len(), "lost");
            self.shared.telemetry.assigned_partitions(s.claims.len());
        }
        lost
    }

    /// A commit of `p` was refused by the cluster: it is no longer ours (the caller drops it).
    pub fn refused(&self, p: &PartitionId) {
        let mut s = self.shared.state();
        if s.claims.remove(p).is_some() {
            self.shared.telemetry.partitions_lost(1, "lost");
            self.shared.telemetry.assigned_partitions(s.claims.len());
        }
    }

    /// Reads the group, computes the assignment for `partitions` (all the group reads now),
    /// claims and fences what it gives us that is free, and says what to hand over.
    pub async fn rebalance(
        &self,
        partitions: &BTreeSet<PartitionId>,
        offsets: &mut OffsetStore,
    ) -> Result<Change> {
        let sh = &self.shared;
        let (members, claims) = self.read_group().await?;
        let now = now_ms();
        let me = &sh.me.member;
        let mut live: BTreeSet<String> = members
            .iter()
            .filter(|m| m.doc.is_live(now))
            .filter_map(|m| m.doc.member.clone())
            .collect();
        live.insert(me.clone());
        let owners: BTreeMap<PartitionId, String> = claims
            .iter()
            .filter(|(_, c)| c.doc.is_live(now))
            .filter_map(|(p, c)| Some((p.clone(), c.doc.member.clone()?)))
            .collect();
        let target = super::assign::assign(partitions, &live, &owners);
        // Ours in our state but not in the cluster's view: taken or deleted meanwhile.
        {
            let mut s = sh.state();
            let gone: Vec<PartitionId> = s
                .claims
                .keys()
                .filter(|p| {
                    claims
                        .get(*p)
                        .is_some_and(|c| c.doc.instance.as_deref() != Some(&sh.me.instance))
                })
                .cloned()
                .collect();
            for p in gone {
                s.claims.remove(&p);
                s.lost
                    .push((p, "another member claimed it (seen at a rebalance)".into()));
            }
        }
        let mine: BTreeSet<PartitionId> = sh.state().claims.keys().cloned().collect();
        for (p, owner) in &target {
            if owner != me || mine.contains(p) {
                continue;
            }
            let existing = claims.get(p);
            if existing.is_some_and(|c| c.doc.is_live(now) && c.doc.member.as_ref() != Some(me)) {
                // Still held by a member handing it over (or about to expire): next round.
                continue;
            }
            self.claim(p, existing, offsets).await?;
        }
        let mut change = Change::default();
        let unfenced: Vec<(PartitionId, u64)> = sh
            .state()
            .claims
            .iter()
            .filter(|(_, c)| !c.fenced)
            .map(|(p, c)| (p.clone(), c.epoch))
            .collect();
        for (p, epoch) in unfenced {
            match offsets.fence(&p, epoch).await? {
                Fence::Ours => {
                    if let Some(c) = sh.state().claims.get_mut(&p) {
                        c.fenced = true;
                    }
                    tracing::info!(group = %sh.group, member = %me, partition = %p, epoch, "partition claimed");
                    change.gained.push((p, epoch));
                }
                Fence::Newer(newer) => {
                    tracing::info!(partition = %p, epoch, newer, "a newer owner fenced the partition first");
                    self.release(std::slice::from_ref(&p)).await?;
                }
            }
        }
        change.revoke = sh
            .state()
            .claims
            .iter()
            .filter(|(p, c)| c.fenced && target.get(*p) != Some(me))
            .map(|(p, _)| p.clone())
            .collect();
        if !change.gained.is_empty() || !change.revoke.is_empty() {
            sh.telemetry.rebalanced(change.gained.len());
            tracing::info!(group = %sh.group, member = %me, members = live.len(), partitions = partitions.len(), gained = change.gained.len(), handing_over = change.revoke.len(), "rebalanced");
        }
        sh.telemetry.assigned_partitions(sh.state().claims.len());
        Ok(change)
    }

    /// Claims `p` with an epoch above every epoch it had (its claim's, its offset's).
    async fn claim(
        &self,
        p: &PartitionId,
        existing: Option<&Read>,
        offsets: &OffsetStore,
    ) -> Result<()> {
        let sh = &self.shared;
        let before = existing
            .and_then(|c| c.doc.epoch)
            .unwrap_or(0)
            .max(offsets.stored_epoch(p).await?);
        let epoch = before + 1;
        let cas = match existing {
            Some(c) => Cas::Match {
                seq_no: c.version.0,
                primary_term: c.version.1,
            },
            None => Cas::Create,
        };
        let _w = sh.writes.lock().await;
        let sent = Instant::now();
        let doc = claim_doc(&sh.group, &sh.me, p, epoch, sh.ttl);
        match sh
            .client
            .put_doc(&sh.index, &claim_doc_id(&sh.group, p), &doc, cas, false)
            .await
        {
            Ok(w) => {
                sh.state().claims.insert(
                    p.clone(),
                    Claim {
                        epoch,
                        version: (w.seq_no, w.primary_term),
                        renewed_at: sent,
                        fenced: false,
                    },
                );
                Ok(())
            }
            // Another member claimed it first.
            Err(ClientError::Status { status: 409, .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives partitions up: expires their claims (only where still ours).
    pub async fn release(&self, partitions: &[PartitionId]) -> Result<()> {
        let sh = &self.shared;
        let _w = sh.writes.lock().await;
        let mut body = String::new();
        let mut released = 0;
        {
            let mut s = sh.state();
            for p in partitions {
                if let Some(c) = s.claims.remove(p) {
                    // Logged before the claim goes: from here on another member may own it.
                    tracing::info!(group = %sh.group, member = %sh.me.member, partition = %p, epoch = c.epoch, "releasing partition");
                    // Kept, expired, rather than deleted: the next owner's epoch is counted
                    // from it.
                    let mut doc = claim_doc(&sh.group, &sh.me, p, c.epoch, sh.ttl);
                    doc["expires_at_ms"] = 0.into();
                    body.push_str(&json!({"index": {"_index": sh.index, "_id": claim_doc_id(&sh.group, p), "if_seq_no": c.version.0, "if_primary_term": c.version.1}}).to_string());
                    body.push('\n');
                    body.push_str(&doc.to_string());
                    body.push('\n');
                    released += 1;
                }
            }
            sh.telemetry.assigned_partitions(s.claims.len());
        }
        if released == 0 {
            return Ok(());
        }
        sh.telemetry.partitions_lost(released, "released");
        // A conflict: the claim is not ours any more anyway.
        sh.client.bulk_to(Some(&sh.index), body, false).await?;
        Ok(())
    }

    /// Leaves the group: stops renewing, deletes our claims and our member document.
    pub async fn leave(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let owned: Vec<PartitionId> = self.shared.state().claims.keys().cloned().collect();
        self.release(&owned).await?;
        let sh = &self.shared;
        let (seq_no, primary_term) = sh.state().member_version;
        if sh.state().gone.is_none() {
            sh.client
                .delete_doc(
                    &sh.index,
                    &member_doc_id(&sh.group, &sh.me.member),
                    Cas::Match {
                        seq_no,
                        primary_term,
                    },
                )
                .await
                .or_else(|e| {
                    if e.status() == Some(409) {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })?;
        }
        tracing::info!(group = %sh.group, member = %sh.me.member, "left the group");
        Ok(())
    }

    /// The group's member documents and claim documents (by partition), read after a refresh.
    async fn read_group(&self) -> Result<(Vec<Read>, BTreeMap<PartitionId, Read>)> {
        let sh = &self.shared;
        sh.client.refresh(&sh.index).await?;
        let body = json!({"size": 10000, "seq_no_primary_term": true, "track_total_hits": false,
            "query": {"bool": {"filter": [{"term": {"group": sh.group}}, {"terms": {"kind": ["member", "claim"]}}]}}});
        let resp = sh.client.search(&sh.index, &[], body).await?;
        let mut members = Vec::new();
        let mut claims = BTreeMap::new();
        for h in resp.hits.hits {
            let Some(doc) = h
                .source
                .as_ref()
                .and_then(|s| s.to_value().ok())
                .and_then(|v| StoreDoc::from_value(&v))
            else {
                continue;
            };
            let version = (h.seq_no.unwrap_or(0), h.primary_term.unwrap_or(1));
            match doc.kind {
                DocKind::Member => members.push(Read { doc, version }),
                DocKind::Claim => {
                    if let Some(p) = claim_partition(&doc) {
                        claims.insert(p, Read { doc, version });
                    }
                }
                _ => {}
            }
        }
        Ok((members, claims))
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Renews the member document and every claim in one conditional `_bulk`.
    async fn renew(&self) -> std::result::Result<(), ClientError> {
        let _w = self.writes.lock().await;
        let (member_version, claims) = {
            let s = self.state();
            (s.member_version, s.claims.clone())
        };
        let mut body = String::new();
        let mut push = |id: String, version: (i64, i64), doc: Value| {
            body.push_str(&json!({"index": {"_index": self.index, "_id": id, "if_seq_no": version.0, "if_primary_term": version.1}}).to_string());
            body.push('\n');
            body.push_str(&doc.to_string());
            body.push('\n');
        };
        push(
            member_doc_id(&self.group, &self.me.member),
            member_version,
            member_doc(&self.group, &self.me, self.ttl),
        );
        for (p, c) in &claims {
            push(
                claim_doc_id(&self.group, p),
                c.version,
                claim_doc(&self.group, &self.me, p, c.epoch, self.ttl),
            );
        }
        let sent = Instant::now();
        let resp = self.client.bulk_to(Some(&self.index), body, false).await?;
        let mut items = resp.results();
        let mut s = self.state();
        if let Some(item) = items.next() {
            match (item.status, item.seq_no, item.primary_term) {
                (200 | 201, Some(a), Some(b)) => s.member_version = (a, b),
                (409, _, _) => {
                    s.gone = Some(format!(
                        "another process took over member id {:?} of the group",
                        self.me.member
                    ))
                }
                (status, _, _) => {
                    tracing::warn!(status, error = ?item.error, "renewing the member document failed")
                }
            }
        }
        for ((p, _), item) in claims.iter().zip(items) {
            match (item.status, item.seq_no, item.primary_term) {
                (200 | 201, Some(a), Some(b)) => {
                    if let Some(c) = s.claims.get_mut(p) {
                        c.version = (a, b);
                        c.renewed_at = sent;
                    }
                }
                (409, _, _) => {
                    if s.claims.remove(p).is_some() {
                        s.lost.push((p.clone(), "another member claimed it".into()));
                    }
                }
                (status, _, _) => {
                    tracing::warn!(partition = %p, status, error = ?item.error, "renewing a claim failed")
                }
            }
        }
        Ok(())
    }
}

/// Renews every third of the TTL; after a failure, sooner.
async fn renew_loop(shared: Arc<Shared>, mut stopped: tokio::sync::oneshot::Receiver<()>) {
    let every = shared.ttl / 3;
    let mut wait = every;
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match shared.renew().await {
            Ok(()) => {
                shared.telemetry.lease_renewed(true);
                wait = every;
            }
            Err(e) => {
                shared.telemetry.lease_renewed(false);
                tracing::warn!(group = %shared.group, error = %e, "renewing the group membership failed; trying again");
                wait = (every / 4).max(Duration::from_millis(100));
            }
        }
        if shared.state().gone.is_some() {
            return;
        }
    }
}
