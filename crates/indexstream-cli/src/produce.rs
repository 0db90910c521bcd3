//! `indexstream produce`: synthetic audit events written with `_bulk` at a given rate, a
//! fraction of them timestamped in the past (late events).

use std::io::IsTerminal;
use std::time::Duration;

use indexstream::{Client, ClientConfig};
use serde_json::json;
use tokio::time::Instant;

use crate::common::{now_ms, parse_duration, ConnArgs};

#[derive(Debug, Clone, clap::Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Index to write to (created with 3 shards and a 1 s refresh if it does not exist).
    #[arg(long, default_value = "index_audit")]
    pub index: String,
    /// Number of events to write.
    #[arg(long, default_value_t = 10_000)]
    pub count: u64,
    /// Events per second; 0 writes as fast as the cluster takes them.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Fraction of events (0..1) whose timestamps are in the past.
    #[arg(long, default_value_t = 0.0)]
    pub late_fraction: f64,
    /// How far in the past a late event's timestamp may be.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub max_lateness: Duration,
    /// Events per `_bulk` request.
    #[arg(long, default_value_t = 500)]
    pub bulk_size: usize,
    /// Seed of the generated values (same seed, same events).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Attempts per event before giving up on it (through failovers and overload: a whole
    /// `_bulk` that fails, or single items rejected with 429 or 5xx, are sent again with backoff).
    #[arg(long, default_value_t = DEFAULT_WRITE_ATTEMPTS)]
    pub write_attempts: u32,
}

/// Generates the events: deterministic from a seed, about 300 bytes each.
#[derive(Debug, Clone)]
pub struct Generator {
    state: u64,
    pub late_fraction: f64,
    pub max_lateness_ms: i64,
}

const USERS: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
];
const ACTIONS: &[&str] = &[
    "login", "logout", "read", "write", "delete", "grant", "revoke", "export",
];
const OUTCOMES: &[&str] = &["success", "success", "success", "failure"];

impl Generator {
    pub fn new(seed: u64, late_fraction: f64, max_lateness: Duration) -> Self {
        Generator {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            late_fraction,
            max_lateness_ms: max_lateness.as_millis() as i64,
        }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// One event as JSON text appended to `out` (the same document as [`Generator::event`],
    /// written without building a value: the producer's hot path).
    pub fn write_event(&mut self, id: u64, now: i64, out: &mut String) {
        use std::fmt::Write;
        let late = (self.next() % 10_000) as f64 / 10_000.0 < self.late_fraction;
        let ts = if late && self.max_lateness_ms > 0 {
            now - (self.next() % self.max_lateness_ms as u64) as i64
        } else {
            now
        };
        let r = self.next();
        let _ = write!(
            out,
            "{{\"@timestamp\":\"{}\",\"event\":{{\"ingested\":\"{}\",\"id\":{id},\"sent_at_ms\":{now}}},\"user\":{{\"name\":\"{}\"}},\"action\":\"{}\",\"resource\":\"/projects/{}/documents/{}\",\"outcome\":\"{}\",\"source\":{{\"ip\":\"10.{}.{}.{}\"}},\"message\":\"audit event recorded by the synthetic producer\"}}",
            indexstream::iso_millis(ts),
            indexstream::iso_millis(now),
            USERS[(r % 10) as usize],
            ACTIONS[(r / 10 % 8) as usize],
            r % 97,
            r % 100_003,
            OUTCOMES[(r / 80 % 4) as usize],
            r % 251,
            r / 251 % 251,
            r / 63_001 % 251
        );
    }

    /// One event with id `id`, ingested at `now` (epoch ms), as a value.
    #[cfg(test)]
    pub fn event(&mut self, id: u64, now: i64) -> serde_json::Value {
        let mut s = String::with_capacity(400);
        self.write_event(id, now, &mut s);
        serde_json::from_str(&s).unwrap_or_default()
    }
}

pub async fn ensure_index(client: &Client, index: &str) -> anyhow::Result<()> {
    if !client.index_exists(index).await? {
        client
            .create_index(index, &json!({"settings": {"number_of_shards": 3, "refresh_interval": "1s"}, "mappings": {"properties": {"@timestamp": {"type": "date"}, "event": {"properties": {"ingested": {"type": "date"}, "id": {"type": "long"}, "sent_at_ms": {"type": "long"}}}, "user": {"properties": {"name": {"type": "keyword"}}}, "action": {"type": "keyword"}, "outcome": {"type": "keyword"}, "resource": {"type": "keyword"}, "source": {"properties": {"ip": {"type": "keyword"}}}}}}))
            .await?;
    }
    Ok(())
}

/// Attempts per event in the producer of the demo and the bench.
pub const DEFAULT_WRITE_ATTEMPTS: u32 = 10;

/// What [`produce`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    /// Events the cluster acknowledged.
    pub written: u64,
    /// Events still failing after every attempt (not known to be written; they may or may not
    /// be in the index, if the last failure was a dropped connection).
    pub gave_up: u64,
}

/// Item statuses worth another attempt: the cluster is busy or a shard has no primary for a
/// moment (a failover: `unavailable_shards_exception`, a closed node).
fn retriable_item(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// Writes `count` events with ids `evt-0..`, paced at `rate` per second (0: unpaced), telling
/// `progress` how many are written after every `_bulk`.
///
/// Writes go on through a failover: a `_bulk` that fails as a whole (connection dropped, no
/// node answering, 503) is sent again, and the items a response rejects with a transient status
/// are sent again alone, up to `attempts` times each with backoff. A repeated item is sent as a
/// `create`, so an item whose first write did land (the answer was lost) is not written twice:
/// its 409 means "already there". Items still failing after that are given up on and counted.
#[allow(clippy::too_many_arguments)]
pub async fn produce(
    client: &Client,
    index: &str,
    count: u64,
    rate: f64,
    bulk_size: usize,
    attempts: u32,
    generator: &mut Generator,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> anyhow::Result<Produced> {
    let started = Instant::now();
    let mut sent = 0u64;
    let mut out = Produced {
        written: 0,
        gave_up: 0,
    };
    let index_json = serde_json::Value::String(index.to_string());
    while sent < count {
        let n = (bulk_size as u64).min(count - sent);
        let now = now_ms();
        let mut pending: Vec<(u64, String)> = (sent..sent + n)
            .map(|id| {
                let mut doc = String::with_capacity(400);
                generator.write_event(id, now, &mut doc);
                (id, doc)
            })
            .collect();
        for attempt in 1..=attempts.max(1) {
            let action = if attempt == 1 { "index" } else { "create" };
            let mut body = String::with_capacity(pending.len() * 450);
            for (id, doc) in &pending {
                body.push_str(&format!(
                    "{{\"{action}\":{{\"_index\":{index_json},\"_id\":\"evt-{id}\"}}}}\n{doc}\n"
                ));
            }
            match client.bulk(body, false).await {
                Ok(resp) => {
                    let mut still = Vec::new();
                    for (item, result) in pending.into_iter().zip(resp.results()) {
                        match result.status {
                            200..=299 => out.written += 1,
                            409 if attempt > 1 => out.written += 1,
                            s if retriable_item(s) => still.push(item),
                            _ => anyhow::bail!(
                                "the cluster rejected event evt-{}: {}",
                                item.0,
                                result.error.clone().unwrap_or_default()
                            ),
                        }
                    }
                    pending = still;
                }
                Err(e) if e.is_retriable() => {
                    tracing::warn!(error = %e, events = pending.len(), attempt, "bulk write failed; sending it again");
                }
                Err(e) => return Err(anyhow::Error::new(e).context("bulk write")),
            }
            if pending.is_empty() {
                break;
            }
            if attempt < attempts {
                let backoff =
                    indexstream::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
                tokio::time::sleep(backoff.ceiling(attempt)).await;
            }
        }
        if !pending.is_empty() {
            tracing::warn!(events = pending.len(), attempts, first = %format!("evt-{}", pending[0].0), "giving up on events that kept failing");
            out.gave_up += pending.len() as u64;
        }
        sent += n;
        progress(out.written);
        if rate > 0.0 {
            tokio::time::sleep_until(started + Duration::from_secs_f64(sent as f64 / rate)).await;
        }
    }
    Ok(out)
}

pub async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.late_fraction) {
        anyhow::bail!(crate::UsageError(format!(
            "--late-fraction {} must be between 0 and 1",
            args.late_fraction
        )));
    }
    if args.bulk_size == 0 {
        anyhow::bail!(crate::UsageError("--bulk-size must be at least 1".into()));
    }
    let config: ClientConfig = args.conn.client_config()?;
    let client = Client::new(&config)?;
    ensure_index(&client, &args.index).await?;
    let progress = std::io::stderr().is_terminal().then(|| {
        let p = indicatif::ProgressBar::new(args.count);
        p.set_style(crate::observe::bar_style(
            "{bar:40} {pos}/{len} events ({rate}, eta {eta})",
        ));
        p
    });
    let mut generator = Generator::new(args.seed, args.late_fraction, args.max_lateness);
    let started = Instant::now();
    let n = produce(
        &client,
        &args.index,
        args.count,
        args.rate,
        args.bulk_size,
        args.write_attempts,
        &mut generator,
        &|w| {
            if let Some(p) = &progress {
                p.set_position(w);
            }
        },
    )
    .await?;
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    eprintln!(
        "produced {} events into {} in {:.1}s; gave up on {}",
        n.written,
        args.index,
        started.elapsed().as_secs_f64(),
        n.gave_up
    );
    if n.gave_up > 0 {
        anyhow::bail!(
            "gave up on {} of {} events after {} attempts each",
            n.gave_up,
            args.count,
            args.write_attempts
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_about_300_bytes_and_late_ones_are_in_the_past() {
        let mut g = Generator::new(3, 0.5, Duration::from_secs(20));
        let now = 1_700_000_000_000;
        let mut late = 0;
        for id in 0..1000 {
            let e = g.event(id, now);
            let len = e.to_string().len();
            assert!((250..=400).contains(&len), "{len} bytes");
            let ts = e["@timestamp"].as_str().unwrap();
            if ts != indexstream::iso_millis(now) {
                late += 1;
            }
        }
        assert!((350..650).contains(&late), "{late} late of 1000 at 0.5");
    }
}
