//! Group membership: one live member holds a group at a time, through a lease document in the
//! offsets index that it renews (heartbeats) and that expires when it stops renewing.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::client::types::Cas;
use crate::client::{Client, ClientError};
use crate::error::{Error, Result};
use crate::offset::now_iso;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn lease_doc_id(group: &str) -> String {
    format!("{group}|lease")
}

/// A held lease. Renew it more often than its time to live, release it on shutdown.
#[derive(Debug)]
#[must_use = "the group stays held until the lease is released or expires"]
pub struct Lease {
    client: Client,
    index: String,
    group: String,
    member: String,
    ttl: Duration,
    version: (i64, i64),
    renewed_at: Instant,
}

impl Lease {
    /// Takes the group's lease: free, expired, or already ours (same member id after a restart).
    /// Fails with [`Error::GroupHeld`] naming the live holder otherwise.
    pub async fn acquire(
        client: Client,
        index: &str,
        group: &str,
        member: &str,
        ttl: Duration,
    ) -> Result<Lease> {
        let id = lease_doc_id(group);
        for _ in 0..5 {
            let doc = json!({"group": group, "kind": "lease", "member": member, "expires_at_ms": now_ms() + ttl.as_millis() as i64, "updated_at": now_iso()});
            let cas = match client.get_doc(index, &id).await? {
                None => Cas::Create,
                Some(current) => {
                    let holder = current.source["member"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let expires = current.source["expires_at_ms"].as_i64().unwrap_or(0);
                    if holder != member && expires > now_ms() {
                        return Err(Error::GroupHeld {
                            group: group.to_string(),
                            holder,
                            expires_in_ms: expires - now_ms(),
                        });
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
                        member: member.to_string(),
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

    pub fn member(&self) -> &str {
        &self.member
    }

    /// Renews the lease when a third of its time to live has passed.
    pub async fn renew_if_due(&mut self) -> Result<()> {
        if self.renewed_at.elapsed() < self.ttl / 3 {
            return Ok(());
        }
        let doc = json!({"group": self.group, "kind": "lease", "member": self.member, "expires_at_ms": now_ms() + self.ttl.as_millis() as i64, "updated_at": now_iso()});
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
