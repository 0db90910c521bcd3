//! What the fake claims to serve like OpenSearch, and the tests of those APIs it deliberately
//! fails (named, with the reason, in the fake's README).

use std::collections::BTreeMap;

/// Test folders (one per API) of the APIs the fake serves: document APIs, `_bulk`, `_search`
/// without aggregations, `_count`, scroll, point in time, the `indices.*` it routes, `_stats`,
/// `cluster.health`, `info` and `ping`.
const CLAIMED: &[&str] = &[
    "bulk",
    "count",
    "create",
    "delete",
    "exists",
    "get",
    "get_source",
    "index",
    "mget",
    "update",
    "search",
    "scroll",
    "pit",
    "indices.create",
    "indices.delete",
    "indices.exists",
    "indices.get",
    "indices.get_alias",
    "indices.put_alias",
    "indices.delete_alias",
    "indices.exists_alias",
    "indices.update_aliases",
    "indices.get_settings",
    "indices.put_settings",
    "indices.get_mapping",
    "indices.put_mapping",
    "indices.refresh",
    "indices.stats",
    "cluster.health",
    "info",
    "ping",
];

pub fn claimed(folder: &str) -> bool {
    CLAIMED.contains(&folder)
}

/// The deliberate gaps listed in the fake's README, under the heading
/// `## Deliberate gaps in OpenSearch's YAML corpus`: one line per test,
/// ``- `folder/file.yml :: test name`: why``, or per file, ``- `folder/file.yml`: why`` (every
/// test of it). Name to reason.
pub fn deliberate_gaps() -> BTreeMap<String, String> {
    let readme = include_str!("../../README.md");
    let mut out = BTreeMap::new();
    let mut inside = false;
    for line in readme.lines() {
        if line.starts_with("## ") {
            inside = line.starts_with("## Deliberate gaps in OpenSearch's YAML corpus");
            continue;
        }
        if !inside {
            continue;
        }
        let Some(rest) = line.strip_prefix("- `") else {
            continue;
        };
        if let Some((name, why)) = rest.split_once('`') {
            out.insert(
                name.to_string(),
                why.trim_start_matches(':').trim().to_string(),
            );
        }
    }
    out
}
