//! The state every connection of a fake cluster shares: the cluster, the fault rules, the
//! request log.

use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::engine::Cluster;
use crate::faults::{Faults, RequestLog};

/// State shared by every connection.
#[derive(Debug)]
pub struct Shared {
    pub cluster: Mutex<Cluster>,
    pub faults: Mutex<Faults>,
    pub log: Mutex<RequestLog>,
    /// Woken after every refresh, for `?refresh=wait_for` and `wait_for_status`.
    pub refreshed: Notify,
    pub started: Instant,
    /// The SigV4 check and the credentials issued, when requests must be signed.
    pub sigv4: Option<crate::sigv4::SigV4State>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.cluster.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn log(&self) -> MutexGuard<'_, RequestLog> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }
}
