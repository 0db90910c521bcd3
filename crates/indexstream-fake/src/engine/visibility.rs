//! Delayed visibility (`POST /_fake/visibility`): a rule that holds back a fraction of the
//! writes of an index, invisible to searches and holding the global checkpoint, for a while.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A rule that holds back a fraction of writes (invisible, and holding the checkpoint) for a while.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisibilityRule {
    #[serde(default)]
    pub index: Option<String>,
    pub fraction: f64,
    #[serde(with = "millis", rename = "delay_ms")]
    pub delay: Duration,
    /// Hold at most this many writes, then stop.
    #[serde(default, rename = "count")]
    pub remaining: Option<u64>,
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
