//! `indexstream dev-server`: the fake cluster as a standalone process.

use std::time::Duration;

use anyhow::Context;
use indexstream_fake::FakeConfig;

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

pub async fn run(args: Args) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    eprintln!(
        "indexstream dev-server: OpenSearch-compatible fake cluster listening on http://{addr}"
    );
    println!("http://{addr}");
    let config = FakeConfig {
        default_shards: args.shards,
        default_refresh_interval: args.refresh_interval.0,
        seed: args.seed,
        ..FakeConfig::default()
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    indexstream_fake::serve(listener, config, shutdown).await;
    Ok(())
}
