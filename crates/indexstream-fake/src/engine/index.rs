//! One index: its identity (name, uuid), settings, mappings, aliases and shards.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::mapping::Mappings;
use super::shard::Shard;
use crate::error::{ApiError, ApiResult};
use crate::rng::Rng;

/// An alias entry on an index.
#[derive(Debug, Clone, Default)]
pub struct AliasMeta {
    pub filter: Option<Value>,
    pub is_write_index: Option<bool>,
    pub index_routing: Option<String>,
    pub search_routing: Option<String>,
    pub is_hidden: Option<bool>,
}

impl AliasMeta {
    pub fn parse(body: Option<&Value>) -> ApiResult<Self> {
        let mut meta = AliasMeta::default();
        let Some(Value::Object(obj)) = body else {
            return Ok(meta);
        };
        // `routing` sets both, unless `index_routing`/`search_routing` says otherwise.
        let mut routing = None;
        for (k, v) in obj {
            match k.as_str() {
                "filter" => {
                    crate::engine::query::Query::parse(v)?;
                    meta.filter = Some(v.clone());
                }
                "is_write_index" => meta.is_write_index = v.as_bool(),
                "is_hidden" => meta.is_hidden = v.as_bool(),
                "routing" => routing = Some(value_text(v)),
                "index_routing" => meta.index_routing = Some(value_text(v)),
                "search_routing" => meta.search_routing = Some(value_text(v)),
                "index" | "alias" | "indices" | "aliases" | "must_exist" => {}
                other => {
                    return Err(ApiError::parsing(format!(
                        "[aliases] unknown field [{other}]"
                    )))
                }
            }
        }
        if let Some(r) = routing {
            meta.index_routing.get_or_insert_with(|| r.clone());
            meta.search_routing.get_or_insert(r);
        }
        Ok(meta)
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(f) = &self.filter {
            m.insert("filter".into(), f.clone());
        }
        if let Some(r) = &self.index_routing {
            m.insert("index_routing".into(), json!(r));
        }
        if let Some(r) = &self.search_routing {
            m.insert("search_routing".into(), json!(r));
        }
        if let Some(w) = self.is_write_index {
            m.insert("is_write_index".into(), json!(w));
        }
        if let Some(h) = self.is_hidden {
            m.insert("is_hidden".into(), json!(h));
        }
        Value::Object(m)
    }
}

pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parses an OpenSearch time value (`1s`, `500ms`, `2m`); `-1` means "never" (`None`).
/// A duration as OpenSearch writes a time value (`1s`, `200ms`).
pub fn time_value(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

pub fn parse_time_value(setting: &str, v: &str) -> ApiResult<Option<Duration>> {
    let v = v.trim();
    if v == "-1" {
        return Ok(None);
    }
    let err = || {
        ApiError::illegal_argument(format!("failed to parse setting [{setting}] with value [{v}] as a time value: unit is missing or unrecognized"))
    };
    let split = v
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(err)?;
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().map_err(|_| err())?;
    let secs = match unit {
        "nanos" => n / 1e9,
        "micros" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return Err(err()),
    };
    Ok(Some(Duration::from_secs_f64(secs)))
}

/// Flattens a settings body into `index.*` keys with string values, as OpenSearch stores them.
pub fn flatten_settings(body: &Value) -> ApiResult<BTreeMap<String, String>> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
        match v {
            Value::Object(obj) => {
                for (k, child) in obj {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, child, out);
                }
            }
            Value::Null => {}
            other => {
                let key = if prefix.starts_with("index.") {
                    prefix.to_string()
                } else {
                    format!("index.{prefix}")
                };
                out.insert(key, value_text(other));
            }
        }
    }
    if !body.is_object() {
        return Err(ApiError::illegal_argument("settings must be an object"));
    }
    let mut out = BTreeMap::new();
    walk("", body, &mut out);
    Ok(out)
}

#[derive(Debug)]
pub struct Index {
    pub name: String,
    pub uuid: String,
    pub settings: BTreeMap<String, String>,
    pub mappings: Mappings,
    pub aliases: BTreeMap<String, AliasMeta>,
    pub shards: Vec<Shard>,
    pub replicas: u32,
    pub refresh_interval: Option<Duration>,
    /// `index.search.idle.after` when search-idle applies (the index sets no explicit
    /// `refresh_interval`), `None` otherwise.
    pub search_idle_after: Option<Duration>,
}

impl Index {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        uuid: String,
        created_ms: i64,
        mut settings: BTreeMap<String, String>,
        mappings: Mappings,
        default_shards: u32,
        default_refresh: Option<Duration>,
        rng: &mut Rng,
    ) -> ApiResult<Self> {
        let shards = match settings.get("index.number_of_shards") {
            Some(s) => s.parse::<u32>().map_err(|_| {
                ApiError::illegal_argument(format!(
                    "Failed to parse value [{s}] for setting [index.number_of_shards]"
                ))
            })?,
            None => default_shards,
        };
        if !(1..=1024).contains(&shards) {
            return Err(ApiError::illegal_argument(format!("Failed to parse value [{shards}] for setting [index.number_of_shards] must be >= 1")));
        }
        let replicas = match settings.get("index.number_of_replicas") {
            Some(s) => s.parse::<u32>().map_err(|_| {
                ApiError::illegal_argument(format!(
                    "Failed to parse value [{s}] for setting [index.number_of_replicas]"
                ))
            })?,
            None => 1,
        };
        let refresh_interval = match settings.get("index.refresh_interval") {
            Some(v) => parse_time_value("index.refresh_interval", v)?,
            None => default_refresh,
        };
        for key in settings.keys() {
            if !KNOWN_SETTINGS
                .iter()
                .any(|k| key == k || key.starts_with(&format!("{k}.")))
            {
                return Err(ApiError::illegal_argument(format!("unknown setting [{key}] please check that any required plugins are installed, or check the breaking changes documentation for removed settings")));
            }
        }
        settings.insert("index.number_of_shards".into(), shards.to_string());
        settings.insert("index.number_of_replicas".into(), replicas.to_string());
        settings.insert("index.uuid".into(), uuid.clone());
        settings.insert("index.creation_date".into(), created_ms.to_string());
        settings.insert("index.provided_name".into(), name.to_string());
        settings.insert("index.version.created".into(), "136408127".into());
        let now = Instant::now();
        let shard_list = (0..shards)
            .map(|n| {
                let mut shard = Shard::new(n, rng.base64_id(22));
                // Each shard refreshes on its own timer, with its own phase.
                shard.next_refresh_at =
                    refresh_interval.map(|i| now + i.mul_f64(rng.next_f64().max(0.05)));
                shard
            })
            .collect();
        let mut index = Index {
            name: name.to_string(),
            uuid,
            settings,
            mappings,
            aliases: BTreeMap::new(),
            shards: shard_list,
            replicas,
            refresh_interval,
            search_idle_after: None,
        };
        index.search_idle_after = index.search_idle_after_setting()?;
        Ok(index)
    }

    /// Applies `PUT <index>/_settings`: only dynamic settings may change on an open index.
    pub fn update_settings(&mut self, changes: BTreeMap<String, String>) -> ApiResult<()> {
        for (key, value) in &changes {
            match key.as_str() {
                "index.refresh_interval" => {
                    parse_time_value(key, value)?;
                }
                "index.number_of_replicas" => {
                    value.parse::<u32>().map_err(|_| ApiError::illegal_argument(format!("Failed to parse value [{value}] for setting [{key}]")))?;
                }
                "index.number_of_shards" | "index.uuid" | "index.creation_date" | "index.provided_name" | "index.version.created" => {
                    return Err(ApiError::illegal_argument(format!("Can't update non dynamic settings [[{key}]] for open indices [[{}/{}]]", self.name, self.uuid)));
                }
                k if KNOWN_SETTINGS.iter().any(|known| k == *known || k.starts_with(&format!("{known}."))) => {}
                k => return Err(ApiError::illegal_argument(format!("unknown setting [{k}] please check that any required plugins are installed, or check the breaking changes documentation for removed settings"))),
            }
        }
        for (key, value) in changes {
            if key == "index.refresh_interval" {
                self.refresh_interval = parse_time_value(&key, &value)?;
                let now = Instant::now();
                for shard in &mut self.shards {
                    shard.next_refresh_at = self.refresh_interval.map(|i| now + i);
                }
            }
            if key == "index.number_of_replicas" {
                self.replicas = value.parse().unwrap_or(self.replicas);
            }
            self.settings.insert(key, value);
        }
        self.search_idle_after = self.search_idle_after_setting()?;
        Ok(())
    }

    /// Search-idle applies only to indices without an explicit `index.refresh_interval`
    /// (OpenSearch's `isExplicitRefresh`), after `index.search.idle.after` (30 s by default).
    fn search_idle_after_setting(&self) -> ApiResult<Option<Duration>> {
        if self.settings.contains_key("index.refresh_interval") {
            return Ok(None);
        }
        match self.settings.get("index.search.idle.after") {
            Some(v) => parse_time_value("index.search.idle.after", v),
            None => Ok(Some(Duration::from_secs(30))),
        }
    }

    /// The values of the settings the fake models that this index did not set
    /// (`include_defaults`): its effective refresh interval among them.
    pub fn defaults(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "index.refresh_interval",
                self.refresh_interval
                    .map(time_value)
                    .unwrap_or_else(|| "-1".into()),
            ),
            ("index.search.idle.after", "30s".into()),
            ("index.max_result_window", "10000".into()),
            ("index.hidden", "false".into()),
        ]
    }

    pub fn is_hidden(&self) -> bool {
        self.settings.get("index.hidden").map(String::as_str) == Some("true")
    }

    pub fn settings_json(&self) -> Value {
        let mut root = Map::new();
        for (key, value) in &self.settings {
            let mut node = &mut root;
            let parts: Vec<&str> = key.split('.').collect();
            for part in &parts[..parts.len() - 1] {
                node = node
                    .entry(part.to_string())
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
                    .expect("settings tree holds objects");
            }
            node.insert(
                parts[parts.len() - 1].to_string(),
                Value::String(value.clone()),
            );
        }
        Value::Object(root)
    }

    pub fn docs_count(&self) -> usize {
        self.shards.iter().map(|s| s.live_count()).sum()
    }
}

/// Settings the fake accepts on index creation (it honours the first four).
const KNOWN_SETTINGS: &[&str] = &[
    "index.number_of_shards",
    "index.number_of_replicas",
    "index.refresh_interval",
    "index.hidden",
    "index.number_of_routing_shards",
    "index.max_result_window",
    "index.auto_expand_replicas",
    "index.codec",
    "index.mapping",
    "index.search",
    "index.translog",
    "index.blocks",
    "index.max_refresh_listeners",
    "index.routing",
    "index.analysis",
    "index.sort",
    "index.query",
    "index.gc_deletes",
    "index.soft_deletes",
    "index.priority",
    "index.write",
    "index.replication",
    "index.merge",
    "index.store",
    "index.lifecycle",
    "index.plugins",
    "index.uuid",
    "index.creation_date",
    "index.provided_name",
    "index.version",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_values_parse_like_opensearch() {
        assert_eq!(parse_time_value("x", "-1").unwrap(), None);
        assert_eq!(
            parse_time_value("x", "500ms").unwrap(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_time_value("x", "2m").unwrap(),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_time_value("x", "5").unwrap_err().status, 400);
    }

    #[test]
    fn settings_flatten_with_index_prefix() {
        let s =
            flatten_settings(&json!({"index": {"refresh_interval": -1}, "number_of_replicas": 0}))
                .unwrap();
        assert_eq!(
            s.get("index.refresh_interval").map(String::as_str),
            Some("-1")
        );
        assert_eq!(
            s.get("index.number_of_replicas").map(String::as_str),
            Some("0")
        );
    }
}
