//! `indexstream groups list | describe | reset | delete`.

use anyhow::Context;
use indexstream::iso_nanos;
use indexstream::Client;
use indexstream::{
    Admin, Description, GroupSummary, MemberInfo, PartitionLag, Reset, ResetDone, ResetTo,
    TimestampDescription, TimestampPartitionLag, WhenHeld,
};
use indexstream::{Mode, StartFrom, DEFAULT_OFFSETS_INDEX};
use serde_json::json;

use crate::common::ConnArgs;
use crate::UsageError;

#[derive(Debug, clap::Args)]
pub struct GroupsArgs {
    #[command(subcommand)]
    command: GroupsCommand,
    #[command(flatten)]
    conn: ConnArgs,
    /// TOML config file of `consume`: its connection keys and `offsets-index` are used, flags
    /// and environment win over it.
    #[arg(long, global = true, env = "INDEXSTREAM_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Index holding offsets and leases [default: indexstream-offsets]
    #[arg(long, global = true, env = "INDEXSTREAM_OFFSETS_INDEX")]
    offsets_index: Option<String>,
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
    /// Every group with committed offsets, with its live members.
    List,
    /// The live members (host, pid, heartbeat, partitions), and per partition: committed
    /// offset, global checkpoint, lag, owner and ownership epoch.
    Describe { group: String },
    /// Move a group's offsets. No member of the group may be running.
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

/// What `groups` takes from a config file.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct GroupsFileKeys {
    #[serde(flatten)]
    conn: ConnArgs,
    #[serde(skip_serializing_if = "Option::is_none")]
    offsets_index: Option<String>,
}

impl GroupsFileKeys {
    fn with_config_file(self, path: Option<&std::path::Path>) -> anyhow::Result<Self> {
        match path {
            None => Ok(self),
            Some(path) => {
                let mut file = crate::config_file::ConfigFile::load(path)?;
                file.check_keys(&crate::consume::config_keys())?;
                file.merge(&self)
            }
        }
    }
}

pub async fn run(args: GroupsArgs) -> anyhow::Result<()> {
    let settings = GroupsFileKeys {
        conn: args.conn.clone(),
        offsets_index: args.offsets_index.clone(),
    }
    .with_config_file(args.config.as_deref())?;
    let client = Client::new(&settings.conn.client_config()?)?;
    let oi = settings
        .offsets_index
        .as_deref()
        .unwrap_or(DEFAULT_OFFSETS_INDEX);
    let admin = Admin::new(client, oi);
    match &args.command {
        GroupsCommand::List => {
            let groups = admin.list().await?;
            let mode = |g: &GroupSummary| g.mode.map(Mode::as_str).unwrap_or_default();
            match args.format {
                Format::Json => println!("{}", json!(groups.iter().map(|g| json!({"group": g.group, "partitions": g.partitions, "mode": mode(g), "member_count": g.members.len(), "members": g.members})).collect::<Vec<_>>())),
                Format::Text => {
                    println!(
                        "{:<30} {:<10} {:>10} {:>8}  LIVE",
                        "GROUP", "MODE", "PARTITIONS", "MEMBERS"
                    );
                    for g in &groups {
                        println!(
                            "{:<30} {:<10} {:>10} {:>8}  {}",
                            g.group,
                            mode(g),
                            g.partitions,
                            g.members.len(),
                            if g.members.is_empty() {
                                "-".to_string()
                            } else {
                                g.members.join(",")
                            }
                        );
                    }
                }
            }
        }
        GroupsCommand::Describe { group } => match admin.describe(group).await {
            Ok(Description::Timestamp(d)) => print_timestamp(&d, args.format),
            Ok(Description::Exact {
                members,
                partitions,
                ..
            }) => print_exact(group, &members, &partitions, args.format),
            Ok(Description::TimestampShards {
                members,
                partitions,
                ..
            }) => print_timestamp_shards(group, &members, &partitions, args.format),
            Ok(other) => println!("{other:?}"),
            Err(e @ indexstream::Error::NoOffsets { .. }) => {
                return Err(UsageError(e.to_string()).into())
            }
            Err(e) => return Err(e.into()),
        },
        GroupsCommand::Reset {
            group,
            to,
            index,
            timestamp_field,
            mode,
        } => {
            // The same positions as `consume --start`, parsed by the library.
            let target = match to
                .parse::<StartFrom>()
                .map_err(|e| UsageError(format!("invalid --to: {e}")))?
            {
                StartFrom::Earliest => ResetTo::Earliest,
                StartFrom::Latest => ResetTo::Latest,
                StartFrom::Time(epoch_ms) => ResetTo::Time { epoch_ms },
                other => return Err(UsageError(format!("invalid --to: {other:?}")).into()),
            };
            let mut reset = Reset::new(target)
                .with_timestamp_field(timestamp_field)
                .with_new_group_mode(match mode {
                    crate::consume::ModeArg::Exact => Mode::Exact,
                    crate::consume::ModeArg::Timestamp => Mode::Timestamp,
                });
            if let Some(i) = index {
                reset = reset.with_index(i);
            }
            match admin.reset(group, &reset).await {
                Ok(ResetDone::Exact(set)) => {
                    for (p, seq) in &set {
                        if *seq < 0 {
                            println!("{p}: from the start");
                        } else {
                            println!("{p}: after _seq_no {seq}");
                        }
                    }
                    eprintln!(
                        "group {group}: {} set to {to}",
                        crate::consume::plural(set.len() as u64, "partition offset")
                    );
                }
                Ok(ResetDone::Timestamp { index, floor_ns }) => {
                    println!(
                        "{index}: floor {}",
                        floor_ns
                            .map(iso_nanos)
                            .unwrap_or_else(|| "- (from the earliest document)".into())
                    );
                    eprintln!("group {group}: timestamp offset set to {to}");
                }
                Ok(other) => println!("{other:?}"),
                Err(e @ indexstream::Error::NoOffsets { .. }) => {
                    return Err(UsageError(format!(
                        "{e}; give --index to say which indices it reads"
                    ))
                    .into())
                }
                Err(e @ indexstream::Error::ModeMismatch { .. }) => {
                    return Err(UsageError(e.to_string()).into())
                }
                Err(e) => return Err(e.into()),
            }
        }
        GroupsCommand::Delete { group, force } => {
            let when_held = if *force {
                WhenHeld::Delete
            } else {
                WhenHeld::Refuse
            };
            let n = match admin.delete(group, when_held).await {
                Ok(n) => n,
                Err(e @ indexstream::Error::GroupRunning { .. }) => {
                    anyhow::bail!("{e}, or pass --force")
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("deleting group {group:?} in {oi:?}"))
                }
            };
            if n == 0 {
                return Err(UsageError(format!(
                    "no group {group:?} in {oi:?}: it has no offsets or lease to delete (`indexstream groups list` shows the groups)"
                ))
                .into());
            }
            eprintln!(
                "group {group}: deleted {}",
                crate::consume::plural(n as u64, "document")
            );
        }
    }
    Ok(())
}

fn print_exact(group: &str, members: &[MemberInfo], rows: &[PartitionLag], format: Format) {
    let state = |r: &PartitionLag| {
        if r.checkpoint.is_some() {
            "ok"
        } else {
            "index deleted or recreated"
        }
    };
    match format {
        Format::Json => println!(
            "{}",
            json!({"group": group,
                "members": members_json(members),
                "partitions": rows.iter().map(|r| json!({"index": r.partition.index, "uuid": r.partition.uuid, "shard": r.partition.shard, "committed": r.committed, "checkpoint": r.checkpoint, "lag": r.lag, "owner": r.owner, "epoch": r.epoch, "state": state(r)})).collect::<Vec<_>>()})
        ),
        Format::Text => {
            print_members(group, members);
            println!(
                "{:<30} {:>5} {:>12} {:>12} {:>10}  {:<16} {:>5}  STATE",
                "INDEX", "SHARD", "COMMITTED", "CHECKPOINT", "LAG", "OWNER", "EPOCH"
            );
            let show = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
            // The uuid only tells apart an index and its recreation (`--format json` always
            // has it): shown beside the name when one name has two uuids.
            let uuids = |name: &str| {
                rows.iter()
                    .filter(|r| r.partition.index == name)
                    .map(|r| &r.partition.uuid)
                    .collect::<std::collections::HashSet<_>>()
                    .len()
            };
            for r in rows {
                let name = if uuids(&r.partition.index) > 1 {
                    format!("{}[{}]", r.partition.index, r.partition.uuid)
                } else {
                    r.partition.index.clone()
                };
                let committed = if r.committed < 0 {
                    "none".to_string()
                } else {
                    r.committed.to_string()
                };
                println!(
                    "{:<30} {:>5} {:>12} {:>12} {:>10}  {:<16} {:>5}  {}",
                    name,
                    r.partition.shard,
                    committed,
                    show(r.checkpoint),
                    show(r.lag),
                    r.owner.as_deref().unwrap_or("-"),
                    r.epoch.map(|e| e.to_string()).unwrap_or_else(|| "-".into()),
                    state(r)
                );
            }
        }
    }
}

/// The live members of a group as `describe --format json` shows them.
fn members_json(members: &[MemberInfo]) -> serde_json::Value {
    members.iter().map(|m| json!({"member": m.member, "host": m.host, "pid": m.pid, "heartbeat_age_ms": m.heartbeat_age_ms, "partitions": m.partitions.iter().map(|p| json!({"index": p.index, "uuid": p.uuid, "shard": p.shard})).collect::<Vec<_>>()})).collect()
}

/// The live members of a group, one line each, as `describe` shows them.
fn print_members(group: &str, members: &[MemberInfo]) {
    if members.is_empty() {
        println!("group {group}: no live members (not running)");
    } else {
        println!(
            "group {group}: {}",
            crate::consume::plural(members.len() as u64, "live member")
        );
        println!(
            "  {:<24} {:<24} {:>8} {:>10}  PARTITIONS",
            "MEMBER", "HOST", "PID", "HEARTBEAT"
        );
        for m in members {
            let parts: Vec<String> = m.partitions.iter().map(|p| p.to_string()).collect();
            println!(
                "  {:<24} {:<24} {:>8} {:>10}  {}",
                m.member,
                m.host,
                m.pid,
                m.heartbeat_age_ms
                    .map(|a| format!("{:.1}s ago", a as f64 / 1000.0))
                    .unwrap_or_else(|| "-".into()),
                if parts.is_empty() {
                    "-".into()
                } else {
                    parts.join(" ")
                }
            );
        }
    }
}

/// `describe` of a timestamp-mode group read by shard: its members, and each partition's
/// cursor, floor and owner.
fn print_timestamp_shards(
    group: &str,
    members: &[MemberInfo],
    rows: &[TimestampPartitionLag],
    format: Format,
) {
    let time = |v: Option<i64>| v.map(iso_nanos);
    match format {
        Format::Json => println!(
            "{}",
            json!({"group": group, "mode": "timestamp", "timestamp_partitions": "shards",
                "members": members_json(members),
                "partitions": rows.iter().map(|r| json!({"index": r.partition.index, "uuid": r.partition.uuid, "shard": r.partition.shard, "timestamp_field": r.timestamp_field, "cursor": time(r.cursor_ns), "floor": time(r.floor_ns), "lag": r.newer, "owner": r.owner, "epoch": r.epoch})).collect::<Vec<_>>()})
        ),
        Format::Text => {
            print_members(group, members);
            println!(
                "{:<30} {:>5} {:<32} {:>10}  {:<16} {:>5}",
                "INDEX", "SHARD", "CURSOR", "LAG", "OWNER", "EPOCH"
            );
            for r in rows {
                println!(
                    "{:<30} {:>5} {:<32} {:>10}  {:<16} {:>5}",
                    r.partition.index,
                    r.partition.shard,
                    time(r.cursor_ns).unwrap_or_else(|| "- (nothing delivered)".into()),
                    r.newer.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
                    r.owner.as_deref().unwrap_or("-"),
                    r.epoch.map(|e| e.to_string()).unwrap_or_else(|| "-".into()),
                );
            }
        }
    }
}

/// `describe` of a timestamp-mode group: its cursor, floor and window, and how many documents
/// are newer than the cursor.
fn print_timestamp(d: &TimestampDescription, format: Format) {
    let cursor = d.cursor_ns.map(iso_nanos);
    let floor = d.floor_ns.map(iso_nanos);
    match format {
        Format::Json => println!(
            "{}",
            json!({"group": d.group, "member": d.member, "mode": "timestamp", "index": d.index, "timestamp_field": d.timestamp_field, "tiebreaker_field": d.tiebreaker_field, "cursor": cursor, "floor": floor, "window_keys": d.window_keys, "lag": d.newer})
        ),
        Format::Text => {
            println!(
                "group {}: member {}",
                d.group,
                d.member.as_deref().unwrap_or("none (not running)")
            );
            println!(
                "mode timestamp, index {}, sorted by ({}, {})",
                d.index, d.timestamp_field, d.tiebreaker_field
            );
            println!(
                "cursor      {}",
                cursor.as_deref().unwrap_or("- (nothing delivered)")
            );
            println!("floor       {}", floor.as_deref().unwrap_or("-"));
            println!("window keys {}", d.window_keys);
            println!(
                "lag         {} documents newer than the cursor",
                d.newer.map(|n| n.to_string()).unwrap_or_else(|| "-".into())
            );
        }
    }
}
