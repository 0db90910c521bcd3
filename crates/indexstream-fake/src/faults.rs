//! Scriptable faults (`POST /_fake/faults`, `POST /_fake/visibility`) and the request log
//! (`GET /_fake/requests`), usable from Rust through [`crate::FakeCluster`] as well.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::rng::Rng;

/// The API family a request belongs to, as fault rules and the request log name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKind {
    Search,
    Bulk,
    Index,
    Get,
    Stats,
    Refresh,
    Pit,
    /// Everything else: index management, cluster info, aliases, mappings.
    Admin,
    /// The `/_fake` control API itself (never faulted).
    Fake,
}

impl ApiKind {
    pub fn name(self) -> &'static str {
        match self {
            ApiKind::Search => "search",
            ApiKind::Bulk => "bulk",
            ApiKind::Index => "index",
            ApiKind::Get => "get",
            ApiKind::Stats => "stats",
            ApiKind::Refresh => "refresh",
            ApiKind::Pit => "pit",
            ApiKind::Admin => "admin",
            ApiKind::Fake => "fake",
        }
    }
}

/// What a fault rule does to a matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer with `status` and an OpenSearch-shaped error body.
    Error,
    /// Wait `delay_ms`, then serve the request normally.
    Delay,
    /// Close the connection without answering.
    Drop,
    /// Serve the request (a write is applied), then close the connection without answering:
    /// the answer is lost, as when the node that took a write dies before replying.
    DropAnswer,
    /// Serve a search, but with one shard failed (`_shards.failed > 0`) and its hits missing.
    PartialShards,
    /// Serve a bulk request, but reject matching items with `status` (429 by default), each item
    /// counted against `count`/`probability` on its own.
    RejectItems,
}

/// A fault rule. Without `count` or `probability` it applies to every matching request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// `search|bulk|index|get|stats|refresh|pit|admin`, or `*` for every API.
    #[serde(default = "any_api")]
    pub api: String,
    /// An index name or pattern the request must target.
    #[serde(default)]
    pub index: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
    pub action: FaultAction,
    /// Apply to this many matching requests (or items), then expire.
    #[serde(default)]
    pub count: Option<u64>,
    /// Apply to each matching request with this probability.
    #[serde(default)]
    pub probability: Option<f64>,
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Sent as a `Retry-After` header with error answers.
    #[serde(default)]
    pub retry_after_s: Option<u64>,
    /// Seed of this rule's probability draws, for reproducible schedules.
    #[serde(default)]
    pub seed: Option<u64>,
}

fn any_api() -> String {
    "*".into()
}

impl FaultRule {
    pub fn new(api: &str, action: FaultAction) -> Self {
        FaultRule {
            api: api.into(),
            index: None,
            status: None,
            action,
            count: None,
            probability: None,
            delay_ms: None,
            retry_after_s: None,
            seed: None,
        }
    }

    pub fn status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn count(mut self, n: u64) -> Self {
        self.count = Some(n);
        self
    }

    pub fn probability(mut self, p: f64) -> Self {
        self.probability = Some(p);
        self
    }

    pub fn index(mut self, index: &str) -> Self {
        self.index = Some(index.into());
        self
    }

    pub fn delay(mut self, d: Duration) -> Self {
        self.delay_ms = Some(d.as_millis() as u64);
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    pub fn validate(&self) -> Result<(), String> {
        const APIS: &[&str] = &[
            "*", "search", "bulk", "index", "get", "stats", "refresh", "pit", "admin",
        ];
        if !APIS.contains(&self.api.as_str()) {
            return Err(format!(
                "unknown api [{}], expected one of {APIS:?}",
                self.api
            ));
        }
        if let Some(p) = self.probability {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("probability [{p}] must be between 0 and 1"));
            }
        }
        if let Some(s) = self.status {
            if !(400..=599).contains(&s) {
                return Err(format!("status [{s}] must be an HTTP error status"));
            }
        }
        if self.action == FaultAction::Delay && self.delay_ms.is_none() {
            return Err("action [delay] needs delay_ms".into());
        }
        Ok(())
    }
}

#[derive(Debug)]
struct ActiveRule {
    id: u64,
    rule: FaultRule,
    rng: Rng,
    applied: u64,
}

/// The effect of the fault rules on one request.
#[derive(Debug, Default, Clone)]
pub struct Verdict {
    pub delay: Option<Duration>,
    pub error: Option<(u16, Option<u64>)>,
    pub drop: bool,
    pub drop_answer: bool,
    pub partial_shards: bool,
    /// Rule ids whose item rejections apply to this bulk request.
    pub reject_items: Vec<u64>,
    pub fired: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<ActiveRule>,
    next_id: u64,
}

impl Faults {
    pub fn add(&mut self, rule: FaultRule) -> u64 {
        self.next_id += 1;
        let rng = Rng::new(
            rule.seed
                .unwrap_or(self.next_id.wrapping_mul(0x5851_F42D_4C95_7F2D)),
        );
        self.rules.push(ActiveRule {
            id: self.next_id,
            rule,
            rng,
            applied: 0,
        });
        self.next_id
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.rules.len();
        self.rules.retain(|r| r.id != id);
        before != self.rules.len()
    }

    pub fn list(&self) -> Value {
        Value::Array(
            self.rules
                .iter()
                .map(|r| json!({"id": r.id, "applied": r.applied, "rule": r.rule}))
                .collect(),
        )
    }

    fn matches(rule: &FaultRule, api: ApiKind, indices: &[String]) -> bool {
        (rule.api == "*" || rule.api == api.name())
            && rule
                .index
                .as_deref()
                .is_none_or(|p| indices.iter().any(|i| crate::engine::glob(p, i)))
    }

    fn fire(r: &mut ActiveRule) -> bool {
        if r.rule.count.is_some_and(|c| r.applied >= c) {
            return false;
        }
        if let Some(p) = r.rule.probability {
            if r.rng.next_f64() >= p {
                return false;
            }
        }
        r.applied += 1;
        true
    }

    /// Decides what happens to a request of `api` on `indices`.
    pub fn judge(&mut self, api: ApiKind, indices: &[String]) -> Verdict {
        let mut v = Verdict::default();
        if api == ApiKind::Fake {
            return v;
        }
        for r in &mut self.rules {
            if !Self::matches(&r.rule, api, indices) {
                continue;
            }
            if r.rule.action == FaultAction::RejectItems {
                if api == ApiKind::Bulk {
                    v.reject_items.push(r.id);
                }
                continue;
            }
            if r.rule.action == FaultAction::PartialShards && !matches!(api, ApiKind::Search) {
                continue;
            }
            if !Self::fire(r) {
                continue;
            }
            v.fired.push(format!(
                "{}#{}",
                serde_json::to_value(r.rule.action)
                    .ok()
                    .and_then(|a| a.as_str().map(String::from))
                    .unwrap_or_default(),
                r.id
            ));
            match r.rule.action {
                FaultAction::Error => {
                    v.error = v
                        .error
                        .or(Some((r.rule.status.unwrap_or(503), r.rule.retry_after_s)))
                }
                FaultAction::Delay => {
                    v.delay = Some(
                        v.delay.unwrap_or_default()
                            + Duration::from_millis(r.rule.delay_ms.unwrap_or(0)),
                    )
                }
                FaultAction::Drop => v.drop = true,
                FaultAction::DropAnswer => v.drop_answer = true,
                FaultAction::PartialShards => v.partial_shards = true,
                FaultAction::RejectItems => {}
            }
        }
        v
    }

    /// Whether the bulk item on `index` is rejected by one of `rule_ids`, and with which status.
    pub fn reject_item(&mut self, rule_ids: &[u64], index: &str) -> Option<u16> {
        for r in &mut self.rules {
            if rule_ids.contains(&r.id)
                && r.rule
                    .index
                    .as_deref()
                    .is_none_or(|p| crate::engine::glob(p, index))
                && Self::fire(r)
            {
                return Some(r.rule.status.unwrap_or(429));
            }
        }
        None
    }
}

/// One request as the log records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestRecord {
    pub seq: u64,
    /// Milliseconds since the cluster started, when the request arrived.
    pub at_ms: f64,
    pub method: String,
    pub path: String,
    pub query: String,
    pub api: ApiKind,
    pub indices: Vec<String>,
    /// The answer's status; `None` for a dropped connection.
    pub status: Option<u16>,
    pub faults: Vec<String>,
    /// The request's `X-Opaque-Id` header (who sent it), when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opaque_id: Option<String>,
}

/// A bounded log of recent requests (the oldest are forgotten past `capacity`).
#[derive(Debug)]
pub struct RequestLog {
    records: VecDeque<RequestRecord>,
    capacity: usize,
    next_seq: u64,
}

impl RequestLog {
    pub fn new(capacity: usize) -> Self {
        RequestLog {
            records: VecDeque::new(),
            capacity,
            next_seq: 0,
        }
    }

    pub fn push(&mut self, mut record: RequestRecord) {
        record.seq = self.next_seq;
        self.next_seq += 1;
        if self.records.len() >= self.capacity {
            self.records.pop_front();
        }
        self.records.push_back(record);
    }

    pub fn since(&self, seq: u64) -> Vec<RequestRecord> {
        self.records
            .iter()
            .filter(|r| r.seq >= seq)
            .cloned()
            .collect()
    }

    pub fn clear(&mut self) {
        self.records.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_limited_rule_fires_exactly_count_times() {
        let mut f = Faults::default();
        f.add(
            FaultRule::new("search", FaultAction::Error)
                .status(429)
                .count(2),
        );
        let fired = (0..5)
            .filter(|_| f.judge(ApiKind::Search, &[]).error.is_some())
            .count();
        assert_eq!(fired, 2);
        assert!(f.judge(ApiKind::Bulk, &[]).error.is_none());
    }

    #[test]
    fn probability_rules_are_reproducible_from_a_seed() {
        let run = || {
            let mut f = Faults::default();
            f.add(
                FaultRule::new("*", FaultAction::Error)
                    .probability(0.3)
                    .seed(42),
            );
            (0..200)
                .map(|_| f.judge(ApiKind::Get, &[]).error.is_some())
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let hits = a.iter().filter(|x| **x).count();
        assert!((30..=90).contains(&hits), "{hits} of 200 at p=0.3");
    }

    #[test]
    fn index_scoped_rule_ignores_other_indices() {
        let mut f = Faults::default();
        f.add(FaultRule::new("*", FaultAction::Drop).index("logs-*"));
        assert!(f.judge(ApiKind::Search, &["logs-1".into()]).drop);
        assert!(!f.judge(ApiKind::Search, &["audit".into()]).drop);
    }
}
