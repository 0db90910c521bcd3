//! `indexstream groups list | describe | reset | delete`.

use std::collections::BTreeMap;

use anyhow::Context;
use indexstream::client::types::Cas;
use indexstream::date::iso_nanos;
use indexstream::offset::{offset_doc, parse_offset_doc, Mode, DEFAULT_OFFSETS_INDEX};
use indexstream::source::timestamp::{newest_timestamp, TimeUnit, TimestampOffset};
use indexstream::{Client, PartitionId};
use serde_json::{json, Value};

use crate::common::{now_ms, parse_time, ConnArgs};
use crate::UsageError;

#[derive(Debug, clap::Args)]
pub struct GroupsArgs {
    #[command(subcommand)]
    command: GroupsCommand,
    #[command(flatten)]
    conn: ConnArgs,
    /// Index holding offsets and leases.
    #[arg(long, global = true, env = "INDEXSTREAM_OFFSETS_INDEX", default_value = DEFAULT_OFFSETS_INDEX)]
    offsets_index: String,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Subcommand)]
enum GroupsCommand {
    /// Every group with committed offsets.
    List,
    /// Per partition: committed offset, global checkpoint and lag.
    Describe { group: String },
    /// Move a group's offsets. The group must not be running.
    Reset {
        group: String,
        /// earliest, latest, or an RFC 3339 time (the first document at or after it, by the timestamp field).
        #[arg(long)]
        to: String,
        /// Also set offsets for partitions of these indices (pattern/alias), not only those the group has.
        #[arg(long)]
        index: Option<String>,
        /// Timestamp field for --to <time> (exact mode) and for a new timestamp-mode offset.
        #[arg(long, default_value = "@timestamp")]
        timestamp_field: String,
        /// The mode of a group that has no offsets yet (with --index); a group's existing
        /// offsets keep their mode.
        #[arg(long, value_enum, default_value = "exact")]
        mode: crate::consume::ModeArg,
    },
    /// Delete a group's offsets and lease. The group must not be running.
    Delete {
        group: String,
        /// Delete even while a member holds the lease.
        #[arg(long)]
        force: bool,
    },
}

/// One stored document of the offsets index.
struct Stored {
    id: String,
    seq_no: i64,
    primary_term: i64,
    source: Value,
}

async fn all_docs(
    client: &Client,
    index: &str,
    group: Option<&str>,
) -> anyhow::Result<Vec<Stored>> {
    if !client.index_exists(index).await? {
        return Ok(Vec::new());
    }
    client.refresh(index).await?;
    let query = match group {
        Some(g) => json!({"term": {"group": g}}),
        None => json!({"match_all": {}}),
    };
    let mut out = Vec::new();
    let mut after: Option<Value> = None;
    loop {
        let mut body = json!({"size": 1000, "query": query, "sort": [{"_id": "asc"}], "seq_no_primary_term": true});
        if let Some(a) = &after {
            body["search_after"] = a.clone();
        }
        let resp = client.search(index, &[], body).await?;
        let n = resp.hits.hits.len();
        for h in resp.hits.hits {
            after = h.sort.as_ref().map(|s| Value::from(s.values()));
            let source: Value = h
                .source
                .as_ref()
                .map(|s| serde_json::from_str(s.get()))
                .transpose()?
                .unwrap_or(Value::Null);
            out.push(Stored {
                id: h.id,
                seq_no: h.seq_no.unwrap_or(0),
                primary_term: h.primary_term.unwrap_or(1),
                source,
            });
        }
        if n < 1000 {
            return Ok(out);
        }
    }
}

fn lease_holder(docs: &[Stored]) -> Option<(String, i64)> {
    docs.iter().find(|d| d.source["kind"] == "lease").map(|d| {
        (
            d.source["member"].as_str().unwrap_or_default().to_string(),
            d.source["expires_at_ms"].as_i64().unwrap_or(0),
        )
    })
}

fn live_holder(docs: &[Stored]) -> Option<String> {
    lease_holder(docs)
        .filter(|(_, exp)| *exp > now_ms())
        .map(|(m, _)| m)
}

pub async fn run(args: GroupsArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.conn.client_config(None)?)?;
    let oi = args.offsets_index.as_str();
    match &args.command {
        GroupsCommand::List => {
            let docs = all_docs(&client, oi, None).await?;
            let mut groups: BTreeMap<String, (usize, String, Option<String>)> = BTreeMap::new();
            for d in &docs {
                let g = d.source["group"].as_str().unwrap_or_default().to_string();
                let e = groups.entry(g).or_insert((0, String::new(), None));
                if d.source["kind"] == "lease" {
                    if d.source["expires_at_ms"].as_i64().unwrap_or(0) > now_ms() {
                        e.2 = d.source["member"].as_str().map(String::from);
                    }
                } else if d.source["kind"] == "offset" {
                    e.0 += 1;
                    e.1 = d.source["mode"].as_str().unwrap_or_default().to_string();
                }
            }
            match args.format {
                Format::Json => println!("{}", json!(groups.iter().map(|(g, (n, mode, holder))| json!({"group": g, "partitions": n, "mode": mode, "member": holder})).collect::<Vec<_>>())),
                Format::Text => {
                    println!("{:<30} {:<10} {:>10}  MEMBER", "GROUP", "MODE", "PARTITIONS");
                    for (g, (n, mode, holder)) in &groups {
                        println!("{g:<30} {mode:<10} {n:>10}  {}", holder.as_deref().unwrap_or("-"));
                    }
                }
            }
        }
        GroupsCommand::Describe { group } => {
            let docs = all_docs(&client, oi, Some(group)).await?;
            if let Some(d) = docs
                .iter()
                .find(|d| d.source["kind"] == "offset" && d.source["mode"] == "timestamp")
            {
                return describe_timestamp(&client, oi, group, d, live_holder(&docs), args.format)
                    .await;
            }
            let offsets: Vec<indexstream::offset::StoredOffset> = docs
                .iter()
                .filter(|d| d.source["kind"] == "offset")
                .map(|d| {
                    parse_offset_doc(
                        oi,
                        &d.id,
                        &d.source,
                        Mode::parse(d.source["mode"].as_str().unwrap_or("exact"))
                            .unwrap_or(Mode::Exact),
                    )
                })
                .collect::<Result<_, _>>()?;
            if offsets.is_empty() && docs.is_empty() {
                return Err(UsageError(format!("group {group:?} has no offsets in {oi:?}")).into());
            }
            let mut rows = Vec::new();
            let mut stats_cache: BTreeMap<String, Vec<indexstream::client::types::IndexShards>> =
                BTreeMap::new();
            for stored in &offsets {
                let (p, committed, delivered) =
                    (&stored.partition, &stored.seq_no, &stored.delivered);
                if !stats_cache.contains_key(&p.index) {
                    let s = client.shard_stats(&p.index).await.unwrap_or_default();
                    stats_cache.insert(p.index.clone(), s);
                }
                let current = stats_cache[&p.index]
                    .iter()
                    .find(|i| i.uuid == p.uuid)
                    .and_then(|i| i.shards.iter().find(|s| s.shard == p.shard));
                // Behind: up to the checkpoint, less what the committed ranges above the
                // offset already delivered.
                let delivered_below = |cp: i64| -> i64 {
                    delivered
                        .iter()
                        .filter(|(a, _)| *a <= cp)
                        .map(|(a, b)| (*b).min(cp) - a + 1)
                        .sum()
                };
                let (checkpoint, lag, state) = match current {
                    Some(s) => (
                        Some(s.global_checkpoint),
                        Some(
                            (s.global_checkpoint
                                - committed
                                - delivered_below(s.global_checkpoint))
                            .max(0),
                        ),
                        "ok",
                    ),
                    None => (None, None, "index deleted or recreated"),
                };
                rows.push((p.clone(), *committed, checkpoint, lag, state));
            }
            let holder = live_holder(&docs);
            match args.format {
                Format::Json => println!(
                    "{}",
                    json!({"group": group, "member": holder, "partitions": rows.iter().map(|(p, c, cp, lag, state)| json!({"index": p.index, "uuid": p.uuid, "shard": p.shard, "committed": c, "checkpoint": cp, "lag": lag, "state": state})).collect::<Vec<_>>()})
                ),
                Format::Text => {
                    println!(
                        "group {group}: member {}",
                        holder.as_deref().unwrap_or("none (not running)")
                    );
                    println!(
                        "{:<30} {:<24} {:>5} {:>12} {:>12} {:>10}  STATE",
                        "INDEX", "UUID", "SHARD", "COMMITTED", "CHECKPOINT", "LAG"
                    );
                    for (p, c, cp, lag, state) in &rows {
                        let show = |v: &Option<i64>| {
                            v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
                        };
                        println!(
                            "{:<30} {:<24} {:>5} {:>12} {:>12} {:>10}  {state}",
                            p.index,
                            p.uuid,
                            p.shard,
                            c,
                            show(cp),
                            show(lag)
                        );
                    }
                }
            }
        }
        GroupsCommand::Reset {
            group,
            to,
            index,
            timestamp_field,
            mode,
        } => {
            let docs = all_docs(&client, oi, Some(group)).await?;
            if let Some(h) = live_holder(&docs) {
                anyhow::bail!(
                    "group {group:?} is running (member {h}); stop it before resetting its offsets"
                );
            }
            let target = match to.as_str() {
                "earliest" => Target::Earliest,
                "latest" => Target::Latest,
                t => Target::Time(
                    parse_time(t)
                        .map_err(|e| UsageError(format!("--to: {e}, or earliest, or latest")))?,
                ),
            };
            let ts_doc = docs
                .iter()
                .position(|d| d.source["kind"] == "offset" && d.source["mode"] == "timestamp");
            if ts_doc.is_some() || matches!(mode, crate::consume::ModeArg::Timestamp) {
                let existing = ts_doc.map(|i| &docs[i]);
                return reset_timestamp(
                    &client,
                    oi,
                    group,
                    existing,
                    index.as_deref(),
                    timestamp_field,
                    target,
                    to,
                )
                .await;
            }
            let mut existing: BTreeMap<String, (Stored, Option<PartitionId>)> = BTreeMap::new();
            let mut expressions: Vec<String> = index.iter().cloned().collect();
            for d in docs.into_iter().filter(|d| d.source["kind"] == "offset") {
                let mode = d.source["mode"].as_str().unwrap_or_default();
                if mode != "exact" {
                    anyhow::bail!(UsageError(format!(
                        "offset document {} is in {mode:?} mode; reset supports exact mode here",
                        d.id
                    )));
                }
                let p = parse_offset_doc(oi, &d.id, &d.source, Mode::Exact)?.partition;
                if !expressions.contains(&p.index) {
                    expressions.push(p.index.clone());
                }
                existing.insert(d.id.clone(), (d, Some(p)));
            }
            if expressions.is_empty() {
                return Err(UsageError(format!(
                    "group {group:?} has no offsets; give --index to say which indices to set"
                ))
                .into());
            }
            let mut body = String::new();
            let mut count = 0;
            for expr in &expressions {
                let stats = match client.shard_stats(expr).await {
                    Ok(s) => s,
                    Err(e) if e.status() == Some(404) => continue,
                    Err(e) => return Err(e.into()),
                };
                for idx in stats {
                    for s in &idx.shards {
                        let p = PartitionId {
                            index: idx.index.clone(),
                            uuid: idx.uuid.clone(),
                            shard: s.shard,
                        };
                        let seq = match target {
                            Target::Earliest => -1,
                            Target::Latest => s.global_checkpoint,
                            Target::Time(ms) => {
                                let q = json!({"size": 1, "sort": [{"_seq_no": "asc"}], "seq_no_primary_term": true, "track_total_hits": false, "_source": false, "query": {"range": {timestamp_field.clone(): {"gte": ms, "format": "epoch_millis"}}}});
                                let resp = client
                                    .search(
                                        &p.index,
                                        &[("preference", format!("_shards:{}|_primary", p.shard))],
                                        q,
                                    )
                                    .await?;
                                resp.hits
                                    .hits
                                    .first()
                                    .and_then(|h| h.seq_no)
                                    .map(|s| s - 1)
                                    .unwrap_or(s.global_checkpoint)
                            }
                        };
                        let id = p.offset_doc_id(group);
                        let meta = match existing.get(&id) {
                            Some((d, _)) => {
                                json!({"index": {"_index": oi, "_id": id, "if_seq_no": d.seq_no, "if_primary_term": d.primary_term}})
                            }
                            None => json!({"create": {"_index": oi, "_id": id}}),
                        };
                        body.push_str(&format!(
                            "{meta}\n{}\n",
                            offset_doc(
                                group,
                                Mode::Exact,
                                &p,
                                seq,
                                &[],
                                "indexstream-groups-reset"
                            )
                        ));
                        count += 1;
                        println!("{p}: offset {seq}");
                    }
                }
            }
            if count > 0 {
                if !client.index_exists(oi).await? {
                    client
                        .create_index(oi, &indexstream::offset::offsets_index_body())
                        .await?;
                }
                let resp = client.bulk(body, true).await?;
                if resp.errors {
                    anyhow::bail!(
                        "some offsets were not written (a consumer may have started meanwhile): {}",
                        resp.first_error().cloned().unwrap_or_default()
                    );
                }
            }
            eprintln!("group {group}: {count} partition offsets set to {to}");
        }
        GroupsCommand::Delete { group, force } => {
            let docs = all_docs(&client, oi, Some(group)).await?;
            if let Some(h) = live_holder(&docs) {
                if !force {
                    anyhow::bail!(
                        "group {group:?} is running (member {h}); stop it first or pass --force"
                    );
                }
            }
            for d in &docs {
                client
                    .delete_doc(
                        oi,
                        &d.id,
                        Cas::Match {
                            seq_no: d.seq_no,
                            primary_term: d.primary_term,
                        },
                    )
                    .await
                    .with_context(|| format!("deleting {}", d.id))?;
            }
            eprintln!("group {group}: deleted {} documents", docs.len());
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Earliest,
    Latest,
    Time(i64),
}

/// A timestamp-mode offset document's `cursor` (its window left empty when the window is kept
/// in parts); a corrupt one is an error, never reset.
fn stored_timestamp_offset(oi: &str, doc: &Stored) -> Result<TimestampOffset, indexstream::Error> {
    TimestampOffset::from_json(&doc.source["cursor"])
        .map(|(offset, _parts)| offset)
        .map_err(|reason| indexstream::Error::CorruptOffset {
            offsets_index: oi.to_string(),
            id: doc.id.clone(),
            reason,
        })
}

/// `describe` of a timestamp-mode group: its cursor, floor and window, and how many documents
/// are newer than the cursor.
async fn describe_timestamp(
    client: &Client,
    oi: &str,
    group: &str,
    doc: &Stored,
    holder: Option<String>,
    format: Format,
) -> anyhow::Result<()> {
    let offset = stored_timestamp_offset(oi, doc)?;
    let index = doc.source["index"].as_str().unwrap_or_default().to_string();
    let mut filter = vec![json!({"exists": {"field": offset.field}})];
    if let Some(c) = offset.cursor_ns {
        filter.push(json!({"range": {offset.field.clone(): {"gt": iso_nanos(c)}}}));
    } else if let Some(f) = offset.floor_ns {
        filter.push(json!({"range": {offset.field.clone(): {"gt": iso_nanos(f)}}}));
    }
    let newer = client
        .count(&index, json!({"bool": {"filter": filter}}))
        .await
        .ok();
    let cursor = offset.cursor_ns.map(iso_nanos);
    let floor = offset.floor_ns.map(iso_nanos);
    let window_keys = doc.source["cursor"]["window_keys"].as_u64().unwrap_or(0);
    match format {
        Format::Json => println!(
            "{}",
            json!({"group": group, "member": holder, "mode": "timestamp", "index": index, "timestamp_field": offset.field, "tiebreaker_field": offset.tiebreaker, "cursor": cursor, "floor": floor, "window_keys": window_keys, "lag": newer})
        ),
        Format::Text => {
            println!(
                "group {group}: member {}",
                holder.as_deref().unwrap_or("none (not running)")
            );
            println!(
                "mode timestamp, index {index}, sorted by ({}, {})",
                offset.field, offset.tiebreaker
            );
            println!(
                "cursor      {}",
                cursor.as_deref().unwrap_or("- (nothing delivered)")
            );
            println!("floor       {}", floor.as_deref().unwrap_or("-"));
            println!("window keys {}", window_keys);
            println!(
                "lag         {} documents newer than the cursor",
                newer.map(|n| n.to_string()).unwrap_or_else(|| "-".into())
            );
        }
    }
    Ok(())
}

/// `reset` of a timestamp-mode group: earliest clears the cursor, latest and a time set the
/// floor (nothing at or before it is read) and empty the window.
#[allow(clippy::too_many_arguments)]
async fn reset_timestamp(
    client: &Client,
    oi: &str,
    group: &str,
    existing: Option<&Stored>,
    index: Option<&str>,
    timestamp_field: &str,
    target: Target,
    to: &str,
) -> anyhow::Result<()> {
    let (expr, old) = match existing {
        Some(d) => {
            let old = stored_timestamp_offset(oi, d)?;
            let expr = index
                .map(String::from)
                .or_else(|| d.source["index"].as_str().map(String::from))
                .unwrap_or_default();
            (expr, Some(old))
        }
        None => match index {
            Some(i) => (i.to_string(), None),
            None => {
                return Err(UsageError(format!(
                    "group {group:?} has no offsets; give --index to say what it reads"
                ))
                .into())
            }
        },
    };
    let (field, tiebreaker) = match &old {
        Some(o) => (o.field.clone(), o.tiebreaker.clone()),
        None => (timestamp_field.to_string(), "_id".to_string()),
    };
    let mut offset = TimestampOffset::new(&field, &tiebreaker);
    offset.floor_ns = match target {
        Target::Earliest => None,
        Target::Time(ms) => Some(ms.saturating_mul(1_000_000) - 1),
        Target::Latest => {
            let types = client.field_types(&expr, &field).await?;
            let unit = types
                .iter()
                .find_map(|(_, t)| t.as_deref().and_then(TimeUnit::of_field_type))
                .unwrap_or(TimeUnit::Millis);
            let exists = vec![json!({"exists": {"field": field}})];
            newest_timestamp(client, &expr, &field, exists, unit).await?
        }
    };
    if !client.index_exists(oi).await? {
        client
            .create_index(oi, &indexstream::offset::offsets_index_body())
            .await?;
    }
    let id = indexstream::offset::OffsetStore::timestamp_doc_id(group);
    let meta = match existing {
        Some(d) => {
            json!({"index": {"_index": oi, "_id": id, "if_seq_no": d.seq_no, "if_primary_term": d.primary_term}})
        }
        None => json!({"create": {"_index": oi, "_id": id}}),
    };
    let doc = json!({"group": group, "kind": "offset", "mode": "timestamp", "index": expr, "cursor": offset.to_json(), "member": "indexstream-groups-reset", "updated_at": indexstream::date::iso_millis(now_ms())});
    let resp = client.bulk(format!("{meta}\n{doc}\n"), true).await?;
    if resp.errors {
        anyhow::bail!(
            "the offset was not written (a consumer may have started meanwhile): {}",
            resp.first_error().cloned().unwrap_or_default()
        );
    }
    println!(
        "{expr}: floor {}",
        offset
            .floor_ns
            .map(iso_nanos)
            .unwrap_or_else(|| "- (from the earliest document)".into())
    );
    eprintln!("group {group}: timestamp offset set to {to}");
    Ok(())
}
