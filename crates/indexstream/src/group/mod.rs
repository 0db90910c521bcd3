//! Group membership. Exact mode: several members share a group's partitions ([`members`]).
//! Timestamp mode: one live member holds a group at a time, through a lease document in the
//! offsets index that it renews (heartbeats) on a timer of its own ([`LeaseKeeper`]) and that
//! expires when it stops renewing.
//!
//! The lease records who holds it: the member id, and the host, process and a per-acquisition
//! instance id. A member restarted on the same host after a crash (`kill -9`, an OOM kill, a
//! unit restart) finds its own member id in a lease whose process is gone and takes it over at
//! once; a second live process with the same member id on the same host is refused. The default
//! member id is the host name, so a restarted process reclaims its lease with default settings.

pub(crate) mod assign;
pub(crate) mod members;

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::client::types::Cas;
use crate::client::{Client, ClientError};
use crate::date::now_millis as now_ms;
use crate::error::{Error, Result};
use crate::offset::{DocKind, StoreDoc};

pub fn lease_doc_id(group: &str) -> String {
    format!("{group}|lease")
}

/// This machine's host name (the default member id); `localhost` when it cannot be read.
pub fn host_name() -> String {
    #[cfg(target_os = "linux")]
    {
        let name = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        if !name.is_empty() {
            return name;
        }
    }
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Identifies a process across restarts and reboots of its host: the boot id and the process's
/// start time (Linux), so a recycled pid is never taken for the holder.
fn process_tag(pid: u32) -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Field 22 (starttime), counted after the parenthesised command name.
        let start = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?;
        Some(format!("{}:{start}", boot.trim()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

/// Who holds (or takes) a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Holder {
    member: String,
    host: String,
    pid: u32,
    /// [`process_tag`] of the holding process.
    process: Option<String>,
    /// Unique per acquisition: two consumers of one process are two holders.
    instance: String,
}

impl Holder {
    fn this(member: &str) -> Holder {
        let pid = std::process::id();
        Holder {
            member: member.to_string(),
            host: host_name(),
            pid,
            process: process_tag(pid),
            instance: format!("{pid}-{}", crate::date::now_nanos()),
        }
    }

    fn from_doc(doc: &Value) -> Holder {
        let doc = StoreDoc::from_value(doc);
        let doc = doc.as_ref();
        let text = |f: fn(&StoreDoc) -> &Option<String>| {
            doc.and_then(|d| f(d).clone()).unwrap_or_default()
        };
        Holder {
            member: text(|d| &d.member),
            host: text(|d| &d.host),
            pid: doc.and_then(|d| d.pid).unwrap_or(0),
            process: doc.and_then(|d| d.process.clone()),
            instance: text(|d| &d.instance),
        }
    }

    /// Whether this holder, on our host, is a process that is still running: `None` when that
    /// cannot be told (another host, an old lease without the fields, not Linux).
    fn alive_here(&self) -> Option<bool> {
        if self.host != host_name() || self.pid == 0 {
            return None;
        }
        let recorded = self.process.as_deref()?;
        Some(process_tag(self.pid).as_deref() == Some(recorded))
    }
}

fn lease_doc(group: &str, holder: &Holder, ttl: Duration) -> Value {
    StoreDoc {
        host: Some(holder.host.clone()),
        pid: Some(holder.pid),
        process: holder.process.clone(),
        instance: Some(holder.instance.clone()),
        expires_at_ms: Some(now_ms() + ttl.as_millis() as i64),
        ..StoreDoc::new(group, DocKind::Lease, &holder.member)
    }
    .to_value()
}

/// A held lease. Renew it more often than its time to live (a [`LeaseKeeper`] does), release
/// it on shutdown.
#[derive(Debug)]
#[must_use = "the group stays held until the lease is released or expires"]
pub struct Lease {
    client: Client,
    index: String,
    group: String,
    holder: Holder,
    ttl: Duration,
    version: (i64, i64),
    renewed_at: Instant,
}

impl Lease {
    /// Takes the group's lease: free, expired, or held under our member id by a process that is
    /// gone (a restart after a crash, on this host, or on another for an explicit member id).
    /// Fails with [`Error::GroupHeld`] naming a live holder with another member id, and with
    /// [`Error::MemberIdInUse`] when a live process on this host holds it under ours.
    pub async fn acquire(
        client: Client,
        index: &str,
        group: &str,
        member: &str,
        ttl: Duration,
    ) -> Result<Lease> {
        let id = lease_doc_id(group);
        let me = Holder::this(member);
        for _ in 0..5 {
            let doc = lease_doc(group, &me, ttl);
            let cas = match client.get_doc(index, &id).await? {
                None => Cas::Create,
                Some(current) => {
                    let holder = Holder::from_doc(&current.source);
                    let expires = StoreDoc::from_value(&current.source)
                        .and_then(|d| d.expires_at_ms)
                        .unwrap_or(0);
                    let live = expires > now_ms();
                    if live && holder.member != member {
                        return Err(Error::GroupHeld {
                            group: group.to_string(),
                            holder: holder.member,
                            expires_in_ms: expires - now_ms(),
                        });
                    }
                    if live && holder.alive_here() == Some(true) && holder.instance != me.instance {
                        return Err(Error::MemberIdInUse {
                            group: group.to_string(),
                            member: member.to_string(),
                            pid: holder.pid,
                        });
                    }
                    if live {
                        tracing::info!(
                            group,
                            member,
                            previous_pid = holder.pid,
                            "taking over the group's lease from an earlier process of this member"
                        );
                    }
                    Cas::Match {
                        seq_no: current.seq_no,
                        primary_term: current.primary_term,
                    }
                }
            };
            match client.put_doc(index, &id, &doc, cas, false).await {
                Ok(w) => {
                    return Ok(Lease {
                        client,
                        index: index.to_string(),
                        group: group.to_string(),
                        holder: me,
                        ttl,
                        version: (w.seq_no, w.primary_term),
                        renewed_at: Instant::now(),
                    });
                }
                Err(ClientError::Status { status: 409, .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::GroupHeld {
            group: group.to_string(),
            holder: "another member (the lease kept changing)".into(),
            expires_in_ms: ttl.as_millis() as i64,
        })
    }

    /// Renews the lease now. A conflict means another member took it ([`Error::Fenced`]).
    pub async fn renew(&mut self) -> Result<()> {
        let doc = lease_doc(&self.group, &self.holder, self.ttl);
        match self
            .client
            .put_doc(
                &self.index,
                &lease_doc_id(&self.group),
                &doc,
                Cas::Match {
                    seq_no: self.version.0,
                    primary_term: self.version.1,
                },
                false,
            )
            .await
        {
            Ok(w) => {
                self.version = (w.seq_no, w.primary_term);
                self.renewed_at = Instant::now();
                Ok(())
            }
            Err(ClientError::Status { status: 409, .. }) => {
                // An earlier attempt of this renewal may have landed with its answer lost (a node
                // died after the write): then the lease holds exactly what we wrote.
                match self
                    .client
                    .get_doc(&self.index, &lease_doc_id(&self.group))
                    .await?
                {
                    Some(current) if current.source == doc => {
                        self.version = (current.seq_no, current.primary_term);
                        self.renewed_at = Instant::now();
                        Ok(())
                    }
                    _ => Err(Error::Fenced {
                        group: self.group.clone(),
                        detail: "the group's lease was taken by another member".into(),
                    }),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Gives the group up (only if the lease is still ours).
    pub async fn release(self) -> Result<()> {
        self.client
            .delete_doc(
                &self.index,
                &lease_doc_id(&self.group),
                Cas::Match {
                    seq_no: self.version.0,
                    primary_term: self.version.1,
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
        Ok(())
    }
}

/// Renews a lease every third of its time to live on a task of its own, so that neither a slow
/// sink, a paused fetch nor an open breaker lets it lapse (give the lease a client of its own:
/// no breaker, and connections no other task holds up). When the lease is lost (taken by
/// another member, or not renewed before it expired), [`LeaseKeeper::check`] says so and the
/// consumer stops delivering.
#[derive(Debug)]
#[must_use = "the group stays held until the keeper is released"]
pub struct LeaseKeeper {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Lease>,
    lost: tokio::sync::watch::Receiver<Option<String>>,
    group: String,
}

impl LeaseKeeper {
    pub fn start(mut lease: Lease) -> LeaseKeeper {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (lost_tx, lost) = tokio::sync::watch::channel(None);
        let group = lease.group.clone();
        let task = tokio::spawn(async move {
            let every = lease.ttl / 3;
            let mut wait = every;
            loop {
                tokio::select! {
                    _ = &mut stopped => return lease,
                    _ = tokio::time::sleep(wait) => {}
                }
                match lease.renew().await {
                    Ok(()) => wait = every,
                    Err(Error::Fenced { detail, .. }) => {
                        let _ = lost_tx.send(Some(detail));
                        return lease;
                    }
                    Err(e) => {
                        if lease.renewed_at.elapsed() >= lease.ttl {
                            let _ = lost_tx.send(Some(format!(
                                "the lease could not be renewed before it expired ({e})"
                            )));
                            return lease;
                        }
                        tracing::warn!(group = %lease.group, error = %e, "renewing the group's lease failed; trying again");
                        wait = (every / 4).max(Duration::from_millis(100));
                    }
                }
            }
        });
        LeaseKeeper {
            stop,
            task,
            lost,
            group,
        }
    }

    /// Fails with [`Error::Fenced`] once the lease is lost.
    pub fn check(&self) -> Result<()> {
        match self.lost.borrow().as_ref() {
            Some(detail) => Err(Error::Fenced {
                group: self.group.clone(),
                detail: detail.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Stops renewing and gives the group up (if the lease is still ours).
    pub async fn release(self) -> Result<()> {
        let lost = self.lost.borrow().is_some();
        let _ = self.stop.send(());
        let lease = self.task.await.map_err(|e| Error::Fenced {
            group: self.group.clone(),
            detail: format!("the lease task stopped: {e}"),
        })?;
        if lost {
            return Ok(());
        }
        lease.release().await
    }
}
