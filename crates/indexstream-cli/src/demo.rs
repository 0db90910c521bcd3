//! `indexstream demo`: the whole thing in one command. A fake cluster in-process (or `--url`),
//! a producer writing audit events (some late, some held invisible for a while), an exact-mode
//! consumer (`indexstream consume`, a child process) writing to a file and killed with SIGKILL
//! halfway, then started again, a live status line, and a verdict: produced N, delivered N,
//! missing 0, and how many the restart delivered again (at most what was not yet committed).

use std::collections::HashSet;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use indexstream::Client;
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
    /// Do not kill the consumer halfway (by default it is killed with SIGKILL once half the
    /// events are delivered, and started again).
    #[arg(long)]
    no_crash: bool,
}

/// The consumer's commit interval in the demo, and its page: a restart after a crash delivers
/// again at most their sum.
const COMMIT_INTERVAL: u64 = 2000;
const PAGE_SIZE: u64 = 500;

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
    let distinct = Arc::new(AtomicU64::new(0));
    let counter = {
        let (out, delivered, distinct) = (out.clone(), delivered.clone(), distinct.clone());
        tokio::spawn(async move {
            let mut lines = LineCounter::default();
            loop {
                lines.read(&out);
                delivered.store(lines.lines, Ordering::Relaxed);
                distinct.store(lines.ids.len() as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
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
                    "[{:>5.1}s] produced {p:>8}  output lines {d:>8}  behind {:>6}",
                    started.elapsed().as_secs_f64(),
                    p.saturating_sub(d)
                );
            }
        })
    };
    let consumer = ConsumerChild {
        conn: args.conn.clone(),
        url: client_config.url.clone(),
        index: args.index.clone(),
        group,
        out: out.clone(),
    };
    let deadline = Instant::now() + args.duration + Duration::from_secs(60);
    let mut child = consumer.spawn()?;
    let mut crashed_at = None;
    let mut last_full = Instant::now();
    // The consumer runs until everything produced is in the file (then SIGTERM: a graceful
    // stop), killed once with SIGKILL halfway (no flush, no commit, the lease left behind) and
    // started again.
    loop {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("the consumer stopped by itself: {status}");
        }
        let lines = delivered.load(Ordering::Relaxed);
        if !args.no_crash && crashed_at.is_none() && lines >= count / 2 {
            child.kill().await.context("kill the consumer")?;
            let at = LineCounter::default().read(&out).lines;
            eprintln!("demo: killed the consumer with SIGKILL after {at} events; starting it again (it resumes from its last commit)");
            crashed_at = Some(at);
            child = consumer.spawn()?;
            continue;
        }
        // The running count may have glued a line torn by the kill to the next one; a fresh
        // read of the whole file decides.
        if producer.is_finished()
            && distinct.load(Ordering::Relaxed) >= produced.load(Ordering::Relaxed)
            || producer.is_finished() && last_full.elapsed() >= Duration::from_secs(1)
        {
            last_full = Instant::now();
            let all = LineCounter::default().read(&out).ids.len() as u64;
            if all >= produced.load(Ordering::Relaxed) {
                break;
            }
        }
        if Instant::now() >= deadline {
            let _ = child.kill().await;
            anyhow::bail!("the consumer did not catch up within 60 s of the producer's end");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_gracefully(&mut child).await?;
    reporter.abort();
    counter.abort();
    let written = producer.await.context("producer task")??.written;
    let text = std::fs::read_to_string(&out).with_context(|| format!("read {}", out.display()))?;
    let v = verdict(written, &text);
    println!("{v}");
    let bound = if crashed_at.is_some() {
        COMMIT_INTERVAL + PAGE_SIZE
    } else {
        0
    };
    if let Some(at) = crashed_at {
        println!("crash: killed after {at} events and restarted; delivered again {} (what was delivered after the last commit; at most {bound}: the commit interval {COMMIT_INTERVAL} and a page of {PAGE_SIZE})", v.duplicates);
    }
    if v.missing > 0 || v.duplicates > bound {
        anyhow::bail!("the demo lost or repeated events: {v}");
    }
    Ok(())
}

/// SIGTERM, and the exit status it must then have: 0.
async fn stop_gracefully(child: &mut tokio::process::Child) -> anyhow::Result<()> {
    if let Some(pid) = child.id() {
        // tokio sends only SIGKILL; `kill` is in every Unix userland.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let status = tokio::time::timeout(Duration::from_secs(40), child.wait())
        .await
        .context("the consumer did not stop within 40 s of SIGTERM")??;
    if !status.success() {
        anyhow::bail!("the consumer failed: {status}");
    }
    Ok(())
}

/// `indexstream consume` of the demo's group, as a child process of this one.
struct ConsumerChild {
    /// Credentials and timeout go to the child in its environment, never on its command line.
    conn: ConnArgs,
    url: String,
    index: String,
    group: String,
    out: PathBuf,
}

impl ConsumerChild {
    fn spawn(&self) -> anyhow::Result<tokio::process::Child> {
        let exe = std::env::current_exe().context("find the indexstream executable")?;
        let mut cmd = tokio::process::Command::new(exe);
        // None of this process's INDEXSTREAM_* settings may change the child's.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("INDEXSTREAM_") {
                cmd.env_remove(&k);
            }
        }
        for (var, value) in self.conn.to_env() {
            cmd.env(var, value);
        }
        cmd.args(["consume", &self.index, &self.group, "--url", &self.url])
            .arg("--sink")
            .arg(format!("file:{}", self.out.display()))
            .args(["--page-size", &PAGE_SIZE.to_string()])
            .args(["--commit-interval", &COMMIT_INTERVAL.to_string()])
            .args(["--commit-every", "1s", "--poll-interval", "200ms"])
            .env("INDEXSTREAM_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("start the consumer")
    }
}

/// The complete lines of a growing JSON Lines file and the distinct ids in them, reading only
/// what was added since last time.
#[derive(Debug, Default)]
struct LineCounter {
    read: u64,
    partial: Vec<u8>,
    lines: u64,
    ids: HashSet<String>,
}

impl LineCounter {
    fn read(&mut self, path: &Path) -> &Self {
        let Ok(mut f) = std::fs::File::open(path) else {
            return self;
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.read {
            // Cut back (the file sink drops a torn last line when it opens): read it again.
            *self = LineCounter::default();
        }
        let mut buf = Vec::new();
        if f.seek(std::io::SeekFrom::Start(self.read)).is_err() || f.read_to_end(&mut buf).is_err()
        {
            return self;
        }
        self.read += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return self;
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        for line in complete.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            self.lines += 1;
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) {
                if let Some(id) = v["id"].as_str() {
                    self.ids.insert(id.to_string());
                }
            }
        }
        self
    }
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
