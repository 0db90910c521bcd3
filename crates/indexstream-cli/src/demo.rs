//! `indexstream demo`: the whole thing in one command. A fake cluster in-process (or `--url`),
//! a producer writing audit events (some late, some held invisible for a while), an exact-mode
//! consumer writing to a file, a live status line, and a verdict: produced N, delivered N,
//! missing 0, duplicates 0.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use indexstream::{AnySink, PendingFlush, SinkError};
use indexstream::{Client, ConsumerBuilder, RunOptions, Sink, SinkSpec};
use tokio::time::Instant;

use crate::common::{parse_duration, ConnArgs};
use crate::produce::{ensure_index, produce, Generator};

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// How long the producer writes.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Events per second.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Index to create and read.
    #[arg(long, default_value = "index_audit")]
    index: String,
    /// Where the consumer writes (JSON Lines) [default: a file in the temp directory]
    #[arg(long)]
    out: Option<PathBuf>,
    /// How often the status line is printed.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    report_interval: Duration,
}

/// Counts what passes through to the real sink.
struct Counting {
    inner: AnySink,
    delivered: Arc<AtomicU64>,
}

impl Sink for Counting {
    async fn write(&mut self, records: &[indexstream::Record]) -> Result<(), SinkError> {
        self.inner.write(records).await?;
        self.delivered
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.inner.flush().await
    }

    async fn start_flush(&mut self) -> Result<PendingFlush, SinkError> {
        self.inner.start_flush().await
    }
}

/// What the output file holds, against what was produced.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    pub produced: u64,
    pub delivered: u64,
    pub missing: u64,
    pub duplicates: u64,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "verdict: produced {}, delivered {}, missing {}, duplicates {}",
            self.produced, self.delivered, self.missing, self.duplicates
        )
    }
}

pub fn verdict(produced: u64, output: &str) -> Verdict {
    let mut seen = HashSet::new();
    let mut lines = 0u64;
    for line in output.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(id) = v["id"].as_str() {
            lines += 1;
            seen.insert(id.to_string());
        }
    }
    let missing = (0..produced)
        .filter(|i| !seen.contains(&format!("evt-{i}")))
        .count() as u64;
    Verdict {
        produced,
        delivered: seen.len() as u64,
        missing,
        duplicates: lines - seen.len() as u64,
    }
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let fake = match &args.conn.url {
        Some(_) => None,
        None => Some(
            indexstream_fake::FakeCluster::builder()
                .shards(3)
                .refresh_interval(Some(Duration::from_secs(1)))
                .start()
                .await
                .context("start the fake cluster")?,
        ),
    };
    let mut client_config = args.conn.client_config()?;
    if let Some(f) = &fake {
        client_config.url = f.url();
        eprintln!("demo: fake OpenSearch cluster on {} (3 shards, 1s refresh; 10% of writes held invisible for 1.5s)", f.url());
    }
    let client = Client::new(&client_config)?;
    if fake.is_none() && client.index_exists(&args.index).await? {
        anyhow::bail!(crate::UsageError(format!(
            "index {:?} already exists on {}; pass --index with a new name",
            args.index, client_config.url
        )));
    }
    ensure_index(&client, &args.index).await?;
    if let Some(f) = &fake {
        f.add_visibility_delay(indexstream_fake::VisibilityRule {
            index: Some(args.index.clone()),
            fraction: 0.1,
            delay: Duration::from_millis(1500),
            remaining: None,
        });
    }
    let out = args.out.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("indexstream-demo-{}.jsonl", std::process::id()))
    });
    let _ = std::fs::remove_file(&out);
    let count = (args.rate * args.duration.as_secs_f64()).round() as u64;
    let group = format!("demo-{}", crate::common::now_ms());
    eprintln!("demo: producing {count} audit events at {}/s (10% timestamped up to 20s late); consumer group {group} writes to {}", args.rate, out.display());
    let mut consumer = ConsumerBuilder::new(client_config.clone(), &args.index, &group)
        .with_page_size(500)
        .with_poll_interval(Duration::from_millis(200))
        .with_commit_every(2000, Duration::from_secs(1))
        .build()
        .await?;
    let produced = Arc::new(AtomicU64::new(0));
    let delivered = Arc::new(AtomicU64::new(0));
    let producer = {
        let (client, index, produced) = (client.clone(), args.index.clone(), produced.clone());
        let (rate, bulk) = (args.rate, ((args.rate / 4.0) as usize).clamp(1, 1000));
        tokio::spawn(async move {
            let mut generator = Generator::new(7, 0.1, Duration::from_secs(20));
            produce(
                &client,
                &index,
                count,
                rate,
                bulk,
                crate::produce::DEFAULT_WRITE_ATTEMPTS,
                &mut generator,
                &move |w| produced.store(w, Ordering::Relaxed),
            )
            .await
        })
    };
    let reporter = {
        let (produced, delivered) = (produced.clone(), delivered.clone());
        let every = args.report_interval;
        tokio::spawn(async move {
            let started = Instant::now();
            loop {
                tokio::time::sleep(every).await;
                let (p, d) = (
                    produced.load(Ordering::Relaxed),
                    delivered.load(Ordering::Relaxed),
                );
                eprintln!(
                    "[{:>5.1}s] produced {p:>8}  delivered {d:>8}  behind {:>6}",
                    started.elapsed().as_secs_f64(),
                    p.saturating_sub(d)
                );
            }
        })
    };
    let mut sink = Counting {
        inner: SinkSpec::File(out.clone()).open()?,
        delivered: delivered.clone(),
    };
    let deadline = Instant::now() + args.duration + Duration::from_secs(60);
    let done = {
        let (produced, delivered) = (produced.clone(), delivered.clone());
        async move {
            loop {
                let p = produced.load(Ordering::Relaxed);
                if (p >= count && delivered.load(Ordering::Relaxed) >= count)
                    || Instant::now() >= deadline
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let run = consumer.run(&mut sink, RunOptions::default(), done).await;
    reporter.abort();
    let stats = consumer.stats().clone();
    consumer.close().await?;
    run?;
    let written = producer.await.context("producer task")??.written;
    let text = std::fs::read_to_string(&out).with_context(|| format!("read {}", out.display()))?;
    let v = verdict(written, &text);
    eprintln!("demo: consumer made {} commits, {} explicit refreshes, {} gap reads (late-visible documents caught)", stats.commits, stats.explicit_refreshes, stats.gap_reads);
    println!("{v}");
    if v.missing > 0 || v.duplicates > 0 {
        anyhow::bail!("the demo lost or repeated events: {v}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_counts_missing_and_duplicates() {
        let out = "{\"id\":\"evt-0\"}\n{\"id\":\"evt-1\"}\n{\"id\":\"evt-1\"}\n";
        assert_eq!(
            verdict(3, out),
            Verdict {
                produced: 3,
                delivered: 2,
                missing: 1,
                duplicates: 1
            }
        );
    }
}
