//! Reads an index into stdout as JSON Lines until idle, committing as it goes.
//!
//! `cargo run -p indexstream --example consume_to_stdout -- [URL] [INDEX] [GROUP]`
//! (defaults: http://localhost:9200, index_audit, example-group; start a cluster with
//! `indexstream dev-server` and fill it with `indexstream produce`).

use std::time::Duration;

use indexstream::{ClientConfig, Consumer, RunOptions, StdoutSink};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://localhost:9200".into());
    let index = args.next().unwrap_or_else(|| "index_audit".into());
    let group = args.next().unwrap_or_else(|| "example-group".into());
    let mut consumer = Consumer::builder(ClientConfig::new(url), index, group)
        .with_page_size(500)
        .with_commit_every(1000, Duration::from_secs(1))
        .build()
        .await?;
    let mut sink = StdoutSink::default();
    // At least once: `run` flushes the sink before every commit, so a crash repeats at most
    // what was printed after the last commit.
    let summary = consumer
        .run(
            &mut sink,
            RunOptions::default().with_until_idle(Duration::from_secs(3)),
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
        )
        .await?;
    eprintln!("delivered {} documents", summary.delivered);
    consumer.close().await?;
    Ok(())
}
