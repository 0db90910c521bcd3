//! `indexstream bench`: loads documents into a fake cluster started as a separate process (or
//! `--url`), then measures raw `search_after` paging, exact-mode consumption to a null sink and
//! to a file (as a separate process, for its CPU time and peak memory), and write-to-delivery
//! latency at a fixed producer rate. Prints a table (or JSON); writes it as Markdown only when
//! asked (`--write FILE`). Against a real cluster (`--url`) the figures of raw paging and of
//! the consumer come from the same run on the same server, so they can be compared.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use indexstream::{Client, ClientConfig};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::common::{now_ms, ConnArgs};
use crate::produce::{produce, Generator};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Documents to load (about 300 bytes each).
    #[arg(long, default_value_t = 1_000_000)]
    docs: u64,
    /// Page size of every reader.
    #[arg(long, default_value_t = 1000)]
    page_size: usize,
    /// `--commit-interval` of the consumers measured (what a commit costs shows in their CPU
    /// time: compare 50 with 1000).
    #[arg(long, default_value_t = 10_000)]
    commit_interval: u64,
    /// Producer rate of the latency measurement (events/s) and its duration.
    #[arg(long, default_value_t = 2000.0)]
    latency_rate: f64,
    #[arg(long, default_value = "10s", value_parser = crate::common::parse_duration)]
    latency_duration: Duration,
    /// Also write the results as Markdown to this file (e.g. BENCHMARKS.md).
    #[arg(long)]
    write: Option<PathBuf>,
    /// Print the results as JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

struct DevServer(Child);

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_dev_server() -> anyhow::Result<(DevServer, String)> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args([
            "dev-server",
            "--port",
            "0",
            "--shards",
            "3",
            "--refresh-interval",
            "1s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("start indexstream dev-server")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("dev-server stdout")?).read_line(&mut line)?;
    Ok((DevServer(child), line.trim().to_string()))
}

/// CPU seconds (user + system) of the children this process has waited for.
fn children_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    let Some(after) = stat.rsplit_once(')').map(|(_, a)| a) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 16 and 17 of /proc/PID/stat (cutime, cstime), counted after the comm field.
    let ticks: f64 = [13, 14]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

struct ChildRun {
    seconds: f64,
    cpu_seconds: f64,
    peak_rss_mb: f64,
}

/// Runs `indexstream consume` as a child until it has delivered `docs` events.
/// Runs a consumer of `setup`'s index into `sink` as a separate process.
fn run_consumer(
    setup: &Setup<'_>,
    group: &str,
    sink: &str,
    extra: &[&str],
) -> anyhow::Result<ChildRun> {
    let (url, index, docs, page) = (setup.url, setup.index, setup.docs, setup.page);
    let exe = std::env::current_exe()?;
    let cpu_before = children_cpu_seconds();
    let started = std::time::Instant::now();
    let mut child = Command::new(exe)
        .args([
            "consume",
            index,
            group,
            "--url",
            url,
            "--sink",
            sink,
            "--batch-size",
            &page.to_string(),
            "--max-events",
            &docs.to_string(),
            "--commit-interval",
            &setup.commit_interval.to_string(),
            "--commit-every",
            "2s",
            "--poll-interval",
            "100ms",
            "--log",
            "warn",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let mut peak: f64 = 0.0;
    loop {
        if let Some(rss) = peak_rss_mb(pid) {
            peak = peak.max(rss);
        }
        if let Some(status) = child.try_wait()? {
            anyhow::ensure!(status.success(), "the consumer failed: {status}");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(ChildRun {
        seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: children_cpu_seconds() - cpu_before,
        peak_rss_mb: peak,
    })
}

async fn load(client: &Client, index: &str, docs: u64) -> anyhow::Result<f64> {
    client.create_index(index, &json!({"settings": {"number_of_shards": 3, "number_of_replicas": 0, "refresh_interval": "1s"}, "mappings": {"properties": {"@timestamp": {"type": "date"}}}})).await?;
    let started = Instant::now();
    let writers = 2u64;
    let per = docs / writers;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let client = client.clone();
        let index = index.to_string();
        let n = if w == writers - 1 {
            docs - per * (writers - 1)
        } else {
            per
        };
        tasks.push(tokio::spawn(async move {
            let mut g = Generator::new(w + 1, 0.0, Duration::ZERO);
            let mut written = 0;
            let base = w * per;
            while written < n {
                let batch = 5000.min(n - written);
                let mut body = String::with_capacity(batch as usize * 400);
                let now = now_ms();
                for id in base + written..base + written + batch {
                    body.push_str(&format!(
                        "{{\"index\":{{\"_index\":\"{index}\",\"_id\":\"evt-{id}\"}}}}\n"
                    ));
                    g.write_event(id, now + id as i64, &mut body);
                    body.push('\n');
                }
                let resp = client.bulk(body, false).await?;
                anyhow::ensure!(!resp.errors, "bulk load had errors");
                written += batch;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(docs as f64 / started.elapsed().as_secs_f64())
}

async fn page_by_timestamp(
    client: &Client,
    index: &str,
    page: usize,
) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let mut after: Option<Value> = None;
    let mut n = 0u64;
    loop {
        let mut body = json!({"size": page, "sort": [{"@timestamp": "asc"}, {"_id": "asc"}], "track_total_hits": false});
        if let Some(a) = &after {
            body["search_after"] = a.clone();
        }
        let resp = client.search(index, &[], body).await?;
        let len = resp.hits.hits.len();
        n += len as u64;
        after = resp
            .hits
            .hits
            .last()
            .and_then(|h| h.sort.as_ref())
            .map(|s| Value::from(s.values()));
        if len < page {
            break;
        }
    }
    Ok((n, n as f64 / started.elapsed().as_secs_f64()))
}

async fn page_by_seq_no(client: &Client, index: &str, page: usize) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let mut n = 0u64;
    for shard in 0..3 {
        let mut after = -1i64;
        loop {
            let body = json!({"size": page, "sort": [{"_seq_no": "asc"}], "seq_no_primary_term": true, "track_total_hits": false, "query": {"range": {"_seq_no": {"gt": after}}}});
            let resp = client
                .search(
                    index,
                    &[("preference", format!("_shards:{shard}|_primary"))],
                    body,
                )
                .await?;
            let len = resp.hits.hits.len();
            n += len as u64;
            if let Some(s) = resp.hits.hits.last().and_then(|h| h.seq_no) {
                after = s;
            }
            if len < page {
                break;
            }
        }
    }
    Ok((n, n as f64 / started.elapsed().as_secs_f64()))
}

/// Write-to-delivery latency: a producer at a fixed rate, a consumer child writing to stdout,
/// each line timed as it arrives against the event's `sent_at_ms`.
async fn latency(
    client: &Client,
    url: &str,
    index: &str,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<(f64, f64, u64)> {
    crate::produce::ensure_index(client, index).await?;
    let exe = std::env::current_exe()?;
    let mut child = tokio::process::Command::new(exe)
        .args([
            "consume",
            index,
            index,
            "--url",
            url,
            "--sink",
            "stdout",
            "--batch-size",
            "1000",
            "--poll-interval",
            "100ms",
            "--commit-every",
            "1s",
            "--commit-interval",
            "5000",
            "--log",
            "warn",
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("consumer stdout")?;
    let count = (rate * duration.as_secs_f64()) as u64;
    let reader = tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut lat = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let now = now_ms();
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if let Some(sent) = v["source"]["event"]["sent_at_ms"].as_i64() {
                    lat.push((now - sent) as f64);
                }
            }
            if lat.len() as u64 >= count {
                break;
            }
        }
        lat
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut g = Generator::new(99, 0.0, Duration::ZERO);
    produce(
        client,
        index,
        count,
        rate,
        ((rate / 10.0) as usize).max(1),
        crate::produce::DEFAULT_WRITE_ATTEMPTS,
        &mut g,
        &|_| {},
    )
    .await?;
    let mut lat = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .context("latency reader timed out")??;
    let _ = child.kill().await;
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Ok((pct(0.5), pct(0.99), lat.len() as u64))
}

#[derive(Debug, Clone, Copy)]
enum Paging {
    SeqNo,
    Timestamp,
}

/// One mode's consumer runs, with raw paging measured right before, between and after them:
/// the machine's speed drifts, so each ratio compares runs made close together.
struct ModeRun {
    null: ChildRun,
    file: ChildRun,
    raw: [f64; 3],
}

impl ModeRun {
    fn raw_null(&self) -> f64 {
        (self.raw[0] + self.raw[1]) / 2.0
    }

    fn raw_file(&self) -> f64 {
        (self.raw[1] + self.raw[2]) / 2.0
    }
}

struct Setup<'a> {
    client: &'a Client,
    url: &'a str,
    index: &'a str,
    docs: u64,
    page: usize,
    commit_interval: u64,
    out: &'a std::path::Path,
}

impl Setup<'_> {
    async fn raw(&self, paging: Paging) -> anyhow::Result<f64> {
        let (n, rate) = match paging {
            Paging::SeqNo => page_by_seq_no(self.client, self.index, self.page).await?,
            Paging::Timestamp => page_by_timestamp(self.client, self.index, self.page).await?,
        };
        anyhow::ensure!(
            n == self.docs,
            "paging returned {n} of {} documents",
            self.docs
        );
        Ok(rate)
    }

    /// Consumes everything to the null sink, then to a file (checking it holds every id).
    async fn consume_mode(
        &self,
        group: &str,
        extra: &[&str],
        paging: Paging,
    ) -> anyhow::Result<ModeRun> {
        let r0 = self.raw(paging).await?;
        let null = run_consumer(self, &format!("{group}-null"), "null", extra)?;
        let r1 = self.raw(paging).await?;
        let _ = std::fs::remove_file(self.out);
        let file = run_consumer(
            self,
            &format!("{group}-file"),
            &format!("file:{}", self.out.display()),
            extra,
        )?;
        let r2 = self.raw(paging).await?;
        let ids: std::collections::HashSet<String> = std::fs::read_to_string(self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                Some(v["id"].as_str()?.to_string())
            })
            .collect();
        let _ = std::fs::remove_file(self.out);
        anyhow::ensure!(
            ids.len() as u64 == self.docs,
            "{group}: the file sink holds {} distinct of {} documents",
            ids.len(),
            self.docs
        );
        Ok(ModeRun {
            null,
            file,
            raw: [r0, r1, r2],
        })
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let (_server, url) = match &args.conn.url {
        Some(u) => (None, u.clone()),
        None => {
            let (s, u) = start_dev_server()?;
            (Some(s), u)
        }
    };
    let mut cfg: ClientConfig = args.conn.client_config()?;
    cfg.url = url.clone();
    cfg.request_timeout = Duration::from_secs(120);
    let client = Client::new(&cfg)?;
    let info = client.info().await?;
    let target = match &_server {
        Some(_) => "the fake cluster started as a separate process (`indexstream dev-server --shards 3 --refresh-interval 1s`)".to_string(),
        None => format!(
            "{:?} {}.{}.{} at {url} (the index: 3 shards, no replicas, refresh 1 s)",
            info.distribution, info.version.0, info.version.1, info.version.2
        ),
    };
    // Every index and group of a run is named after it, so runs against one cluster never
    // resume each other's offsets.
    let index = format!("bench-{}", now_ms());
    eprintln!(
        "bench: loading {} documents into {url}/{index} (3 shards)...",
        args.docs
    );
    let load_rate = load(&client, &index, args.docs).await?;
    client.refresh(&index).await?;
    eprintln!("bench: bulk load {load_rate:.0} docs/s; paging...");
    let out = std::env::temp_dir().join(format!("indexstream-bench-{}.jsonl", std::process::id()));
    let setup = Setup {
        client: &client,
        url: &url,
        index: &index,
        docs: args.docs,
        page: args.page_size,
        commit_interval: args.commit_interval,
        out: &out,
    };
    let ts_rate = setup.raw(Paging::Timestamp).await?;
    let seq_rate = setup.raw(Paging::SeqNo).await?;
    eprintln!("bench: raw paging @timestamp {ts_rate:.0} docs/s, _seq_no {seq_rate:.0} docs/s; consuming...");
    let exact = setup
        .consume_mode(&format!("{index}-exact"), &[], Paging::SeqNo)
        .await?;
    eprintln!("bench: exact mode done; timestamp mode...");
    let timestamp = setup
        .consume_mode(
            &format!("{index}-timestamp"),
            &["--mode", "timestamp", "--safety-window", "30s"],
            Paging::Timestamp,
        )
        .await?;
    let (null, file, ts_null, ts_file) =
        (&exact.null, &exact.file, &timestamp.null, &timestamp.file);
    eprintln!(
        "bench: latency at {}/s for {:?}...",
        args.latency_rate, args.latency_duration
    );
    let (p50, p99, samples) = latency(
        &client,
        &url,
        &format!("{index}-latency"),
        args.latency_rate,
        args.latency_duration,
    )
    .await?;
    let null_rate = args.docs as f64 / null.seconds;
    let file_rate = args.docs as f64 / file.seconds;
    let ts_null_rate = args.docs as f64 / ts_null.seconds;
    let ts_file_rate = args.docs as f64 / ts_file.seconds;
    let per_million = |r: &ChildRun| r.cpu_seconds / args.docs as f64 * 1e6;
    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(
                |c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_string())
            )
            .unwrap_or_default()
    );
    let results = json!({
        "machine": machine,
        "docs": args.docs,
        "page_size": args.page_size,
        "commit_interval": args.commit_interval,
        "target": target,
        "bulk_index_docs_per_s": load_rate.round(),
        "raw_paging_timestamp_docs_per_s": ts_rate.round(),
        "raw_paging_seq_no_docs_per_s": seq_rate.round(),
        "exact_null_sink_docs_per_s": null_rate.round(),
        "exact_file_sink_docs_per_s": file_rate.round(),
        "exact_null_vs_raw": (null_rate / exact.raw_null() * 100.0).round() / 100.0,
        "exact_file_vs_raw": (file_rate / exact.raw_file() * 100.0).round() / 100.0,
        "exact_adjacent_raw_paging_docs_per_s": exact.raw.map(f64::round),
        "timestamp_null_sink_docs_per_s": ts_null_rate.round(),
        "timestamp_file_sink_docs_per_s": ts_file_rate.round(),
        "timestamp_null_vs_raw": (ts_null_rate / timestamp.raw_null() * 100.0).round() / 100.0,
        "timestamp_file_vs_raw": (ts_file_rate / timestamp.raw_file() * 100.0).round() / 100.0,
        "timestamp_adjacent_raw_paging_docs_per_s": timestamp.raw.map(f64::round),
        "consumer_cpu_seconds_per_million": (per_million(file) * 100.0).round() / 100.0,
        "timestamp_consumer_cpu_seconds_per_million": (per_million(ts_file) * 100.0).round() / 100.0,
        "null_sink_consumer_cpu_seconds_per_million": (per_million(null) * 100.0).round() / 100.0,
        "timestamp_null_sink_consumer_cpu_seconds_per_million": (per_million(ts_null) * 100.0).round() / 100.0,
        "consumer_peak_rss_mb": (file.peak_rss_mb.max(null.peak_rss_mb) * 10.0).round() / 10.0,
        "timestamp_consumer_peak_rss_mb": (ts_file.peak_rss_mb.max(ts_null.peak_rss_mb) * 10.0).round() / 10.0,
        "latency_p50_ms": p50,
        "latency_p99_ms": p99,
        "latency_samples": samples,
        "latency_target_ms": 1000 + 100 + 250,
    });
    let table = format!(
        "| measure | result | target |\n|---|---|---|\n\
| bulk-index {docs} docs (~300 B, 3 shards) | {load:.0} docs/s | >= 100000 (fake) |\n\
| raw `search_after` paging by `@timestamp`, page {page} (first read: the fake builds its sort index) | {ts:.0} docs/s | >= 200000 |\n\
| raw `search_after` paging by `_seq_no` per shard, page {page} | {seq:.0} docs/s | >= 200000 |\n\
| exact mode -> null sink | {nr:.0} docs/s ({nq:.2} of raw `_seq_no` paging measured just before and after) | >= 0.9 |\n\
| exact mode -> file sink | {fr:.0} docs/s ({fq:.2} of raw `_seq_no` paging measured just before and after) | >= 0.9 |\n\
| timestamp mode (30 s window) -> null sink | {tnr:.0} docs/s ({tnq:.2} of raw `@timestamp` paging measured just before and after) | >= 0.9 |\n\
| timestamp mode (30 s window) -> file sink | {tfr:.0} docs/s ({tfq:.2} of raw `@timestamp` paging measured just before and after) | >= 0.9 |\n\
| consumer CPU per million events (file sink): exact / timestamp | {cpu:.2} s / {tcpu:.2} s | <= 2 |\n\
| consumer CPU per million events (null sink): exact / timestamp | {ncpu:.2} s / {tncpu:.2} s | (for comparison) |\n\
| consumer peak RSS catching up (batch {page}): exact / timestamp | {rss:.1} MB / {trss:.1} MB | <= 100 |\n\
| write-to-delivery latency at {rate}/s, refresh 1 s, poll 100 ms | p50 {p50:.0} ms, p99 {p99:.0} ms ({samples} samples) | p99 <= 1350 ms |\n",
        docs = args.docs, load = load_rate, page = args.page_size, ts = ts_rate, seq = seq_rate, nr = null_rate, nq = null_rate / exact.raw_null(), fr = file_rate, fq = file_rate / exact.raw_file(),
        tnr = ts_null_rate, tnq = ts_null_rate / timestamp.raw_null(), tfr = ts_file_rate, tfq = ts_file_rate / timestamp.raw_file(),
        cpu = per_million(file), tcpu = per_million(ts_file), ncpu = per_million(null), tncpu = per_million(ts_null), rss = file.peak_rss_mb.max(null.peak_rss_mb), trss = ts_file.peak_rss_mb.max(ts_null.peak_rss_mb), rate = args.latency_rate,
    );
    if args.json {
        println!("{results}");
    } else {
        println!("{table}");
    }
    if let Some(path) = &args.write {
        let md = format!("# Benchmarks\n\nMeasured with `indexstream bench --docs {} --commit-interval {}` (release build) on {machine}, against {target}.\n\n{table}\nRaw JSON:\n\n```json\n{}\n```\n", args.docs, args.commit_interval, serde_json::to_string_pretty(&results)?);
        std::fs::write(path, md).with_context(|| format!("write {}", path.display()))?;
        eprintln!("bench: wrote {}", path.display());
    }
    Ok(())
}
