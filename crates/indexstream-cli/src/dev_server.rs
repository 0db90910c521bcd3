//! `indexstream dev-server`: the fake cluster as a standalone process.

use std::time::Duration;

use std::path::{Path, PathBuf};

use anyhow::Context;
use indexstream_fake::{FakeConfig, FakeSigV4, FakeTls};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Port to listen on (on 127.0.0.1 unless --host says otherwise); 0 picks a free one.
    #[arg(long, default_value_t = 9200)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Shards of an index created without `number_of_shards`.
    #[arg(long, default_value_t = 1)]
    shards: u32,
    /// Refresh interval of an index created without one (`-1` disables scheduled refreshes).
    #[arg(long, default_value = "1s", value_parser = parse_refresh)]
    refresh_interval: RefreshInterval,
    /// Seed for ids, refresh phases and visibility draws (reproducible runs).
    #[arg(long)]
    seed: Option<u64>,
    /// Serve HTTPS with this PEM certificate (chain); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require clients to present a certificate issued by a CA in this PEM file (mutual TLS).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Require AWS SigV4-signed requests scoped to this region (as Amazon OpenSearch Service
    /// does); needs the two keys below. Temporary credentials for the same identity are served
    /// under /_fake/aws/ (container credentials, instance metadata, STS web identity).
    #[arg(long, requires_all = ["sigv4_access_key_id", "sigv4_secret_access_key"])]
    sigv4_region: Option<String>,
    /// The access key id the signatures must be made with.
    #[arg(long, requires = "sigv4_region")]
    sigv4_access_key_id: Option<String>,
    /// Its secret access key.
    #[arg(
        long,
        requires = "sigv4_region",
        env = "INDEXSTREAM_FAKE_SIGV4_SECRET",
        hide_env_values = true
    )]
    sigv4_secret_access_key: Option<String>,
    /// How long the temporary credentials served under /_fake/aws/ stay valid.
    #[arg(long, default_value = "15m", value_parser = crate::common::parse_duration)]
    sigv4_credential_lifetime: Duration,
    /// The lifetime the credential endpoints state, when it should differ from the real one
    /// (tokens that expire before they say: the consumer must learn it from the 403).
    #[arg(long, value_parser = crate::common::parse_duration)]
    sigv4_claimed_lifetime: Option<Duration>,
}

/// A refresh interval; `None` is OpenSearch's `-1` (no scheduled refresh).
#[derive(Debug, Clone, Copy)]
pub struct RefreshInterval(pub Option<Duration>);

pub fn parse_refresh(s: &str) -> Result<RefreshInterval, String> {
    if s == "-1" {
        return Ok(RefreshInterval(None));
    }
    humantime::parse_duration(s)
        .map(|d| RefreshInterval(Some(d)))
        .map_err(|e| format!("invalid duration [{s}]: {e} (use e.g. 1s, 500ms, or -1)"))
}

fn read(flag: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        anyhow::Error::new(crate::UsageError(format!(
            "{flag} {}: cannot read it: {e}",
            path.display()
        )))
    })
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(FakeTls {
            cert_pem: read("--tls-cert", cert)?,
            key_pem: read("--tls-key", key)?,
            client_ca_pem: args
                .tls_client_ca
                .as_deref()
                .map(|p| read("--tls-client-ca", p))
                .transpose()?,
        }),
        _ => None,
    };
    let sigv4 = match (
        &args.sigv4_region,
        &args.sigv4_access_key_id,
        &args.sigv4_secret_access_key,
    ) {
        (Some(region), Some(id), Some(secret)) => Some(FakeSigV4 {
            region: region.clone(),
            access_key_id: id.clone(),
            secret_access_key: secret.clone(),
            credential_lifetime: args.sigv4_credential_lifetime,
            claimed_lifetime: args.sigv4_claimed_lifetime,
        }),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    eprintln!(
        "indexstream dev-server: OpenSearch-compatible fake cluster listening on {scheme}://{addr}{}{}",
        if tls.as_ref().is_some_and(|t| t.client_ca_pem.is_some()) { " (client certificates required)" } else { "" },
        if sigv4.is_some() { " (SigV4-signed requests required)" } else { "" },
    );
    println!("{scheme}://{addr}");
    let config = FakeConfig {
        default_shards: args.shards,
        default_refresh_interval: args.refresh_interval.0,
        seed: args.seed,
        tls,
        sigv4,
        ..FakeConfig::default()
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    indexstream_fake::serve(listener, config, shutdown)
        .await
        .map_err(|e| anyhow::Error::new(crate::UsageError(format!("--tls-cert/--tls-key: {e}"))))
}
