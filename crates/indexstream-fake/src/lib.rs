//! An OpenSearch-compatible fake cluster with real shard, refresh and sequence-number semantics
//! and scriptable faults, started in-process on `127.0.0.1:0` for tests or as
//! `indexstream dev-server`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let cluster = indexstream_fake::FakeCluster::builder().shards(3).start().await?;
//! let url = cluster.url(); // http://127.0.0.1:PORT, speaks the OpenSearch 2.x REST API
//! # Ok(()) }
//! ```
#![doc = include_str!("../README.md")]

mod api;
mod engine;
mod error;
mod faults;

mod rng;

mod server;
mod sigv4;
mod state;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use engine::visibility::VisibilityRule;
pub use faults::{ApiKind, FaultAction, FaultRule, RequestRecord};
pub use sigv4::FakeSigV4;
pub use tls::FakeTls;

/// Settings of a fake cluster.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// Shards of an index created without `number_of_shards` (OpenSearch's default: 1).
    pub default_shards: u32,
    /// Refresh interval of an index created without one (OpenSearch's default: 1 s);
    /// `None` means no scheduled refresh, as `refresh_interval: -1`.
    pub default_refresh_interval: Option<Duration>,
    /// Seed of ids, shard refresh phases and visibility draws; `None` seeds from the clock.
    pub seed: Option<u64>,
    /// How many recent requests `GET /_fake/requests` keeps.
    pub request_log_capacity: usize,
    /// Serve HTTPS (and require client certificates) instead of plain HTTP.
    pub tls: Option<FakeTls>,
    /// Require every request (but `/_fake/`) to be signed with AWS SigV4, and serve temporary
    /// credentials under `/_fake/aws/`.
    pub sigv4: Option<FakeSigV4>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            default_shards: 1,
            default_refresh_interval: Some(Duration::from_secs(1)),
            seed: None,
            request_log_capacity: 100_000,
            tls: None,
            sigv4: None,
        }
    }
}

fn shared_state(config: &FakeConfig) -> Arc<state::Shared> {
    let mut rng = match config.seed {
        Some(s) => rng::Rng::new(s ^ 0xA5A5),
        None => rng::Rng::from_time(),
    };
    let cluster_config = engine::ClusterConfig {
        default_shards: config.default_shards.max(1),
        default_refresh: config.default_refresh_interval,
        cluster_name: "indexstream-fake".into(),
        node_name: "fake-node-0".into(),
        node_id: rng.base64_id(22),
        cluster_uuid: rng.base64_id(22),
    };
    Arc::new(state::Shared {
        cluster: Mutex::new(engine::Cluster::new(cluster_config, config.seed)),
        faults: Mutex::new(faults::Faults::default()),
        log: Mutex::new(faults::RequestLog::new(config.request_log_capacity.max(1))),
        refreshed: tokio::sync::Notify::new(),
        started: tokio::time::Instant::now(),
        sigv4: config.sigv4.clone().map(sigv4::SigV4State::new),
    })
}

fn acceptor(config: &FakeConfig) -> std::io::Result<Option<tokio_rustls::TlsAcceptor>> {
    config
        .tls
        .as_ref()
        .map(|t| t.acceptor())
        .transpose()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

/// Serves a fake cluster on `listener` until `shutdown` resolves (what `indexstream dev-server`
/// runs); fails at once when the TLS settings cannot be used.
pub async fn serve(
    listener: TcpListener,
    config: FakeConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let tls = acceptor(&config)?;
    server::serve(listener, shared_state(&config), tls, shutdown).await;
    Ok(())
}

/// Builds a [`FakeCluster`].
#[derive(Debug, Default, Clone)]
pub struct FakeClusterBuilder {
    config: FakeConfig,
}

impl FakeClusterBuilder {
    pub fn shards(mut self, n: u32) -> Self {
        self.config.default_shards = n;
        self
    }

    pub fn refresh_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.default_refresh_interval = interval;
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = Some(seed);
        self
    }

    pub fn request_log_capacity(mut self, n: usize) -> Self {
        self.config.request_log_capacity = n;
        self
    }

    /// Serves HTTPS with these settings.
    pub fn tls(mut self, tls: FakeTls) -> Self {
        self.config.tls = Some(tls);
        self
    }

    /// Requires SigV4-signed requests.
    pub fn sigv4(mut self, sigv4: FakeSigV4) -> Self {
        self.config.sigv4 = Some(sigv4);
        self
    }

    /// Starts the cluster on `127.0.0.1:0`.
    pub async fn start(self) -> std::io::Result<FakeCluster> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = shared_state(&self.config);
        let tls = acceptor(&self.config)?;
        let https = tls.is_some();
        let task = tokio::spawn(server::serve(
            listener,
            shared.clone(),
            tls,
            std::future::pending(),
        ));
        Ok(FakeCluster {
            addr,
            shared,
            task,
            https,
        })
    }
}

/// A running in-process fake cluster. Dropping it stops the server.
#[derive(Debug)]
#[must_use = "the cluster stops when dropped"]
pub struct FakeCluster {
    addr: SocketAddr,
    shared: Arc<state::Shared>,
    task: JoinHandle<()>,
    https: bool,
}

impl FakeCluster {
    pub fn builder() -> FakeClusterBuilder {
        FakeClusterBuilder::default()
    }

    /// Starts a cluster with OpenSearch's defaults (1 shard, 1 s refresh).
    pub async fn start() -> std::io::Result<FakeCluster> {
        Self::builder().start().await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (`https://` when it serves TLS)
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// How many session tokens the SigV4 credential endpoints have issued.
    pub fn credentials_issued(&self) -> usize {
        self.shared.sigv4.as_ref().map_or(0, |s| s.issued())
    }

    /// Adds a fault rule; returns its id.
    pub fn add_fault(&self, rule: FaultRule) -> Result<u64, String> {
        rule.validate()?;
        Ok(self.shared.faults().add(rule))
    }

    pub fn remove_fault(&self, id: u64) -> bool {
        self.shared.faults().remove(id)
    }

    pub fn clear_faults(&self) {
        self.shared.faults().clear();
    }

    /// Holds back a fraction of later writes: invisible, and holding the checkpoint back.
    pub fn add_visibility_delay(&self, rule: VisibilityRule) {
        self.shared.lock().visibility.push(rule);
    }

    pub fn clear_visibility_delays(&self) {
        self.shared.lock().visibility.clear();
    }

    /// Requests received so far (the most recent `request_log_capacity`).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log().since(0)
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        self.task.abort();
    }
}
