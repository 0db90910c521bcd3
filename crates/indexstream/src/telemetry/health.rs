//! `/health`: when it stops saying HEALTHY, and what it says.

use std::time::Duration;

use super::Telemetry;

/// When `/health` stops saying HEALTHY.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct HealthConfig {
    /// UNHEALTHY after this many polls in a row failed.
    pub unhealthy_after_failed_polls: u32,
    /// UNHEALTHY after this many commits in a row failed.
    pub unhealthy_after_failed_commits: u32,
    /// DEGRADED when more than this fraction of the last minute's polls failed.
    pub degraded_error_rate: f64,
    /// DEGRADED while a retry happened within this window.
    #[serde(with = "crate::serde_duration")]
    pub retry_window: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            unhealthy_after_failed_polls: 5,
            unhealthy_after_failed_commits: 3,
            degraded_error_rate: 0.05,
            retry_window: Duration::from_secs(10),
        }
    }
}

/// What `/health` reports, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    /// No condition of DEGRADED or UNHEALTHY holds.
    Healthy,
    /// Working, but too many of the last minute's polls failed, a retry happened recently, or
    /// the total lag rose steadily over its last five readings.
    Degraded,
    /// A circuit breaker is not closed, or polls or commits keep failing in a row.
    Unhealthy,
}

impl HealthStatus {
    /// Its name as `/health` writes it (`HEALTHY`, `DEGRADED`, `UNHEALTHY`).
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "HEALTHY",
            HealthStatus::Degraded => "DEGRADED",
            HealthStatus::Unhealthy => "UNHEALTHY",
        }
    }
}

/// The consumer's health at one moment, as `/health` reports it.
#[derive(Debug, Clone)]
pub struct Health {
    /// The overall verdict.
    pub status: HealthStatus,
    /// Why it is not HEALTHY, one sentence per condition that holds, then the setup's standing
    /// warnings (TLS verification off), which do not change the status (empty when healthy
    /// and warned of nothing).
    pub reasons: Vec<String>,
    /// Documents delivered to the sink since the consumer started.
    pub delivered: u64,
    /// Documents behind over every partition at the latest round (exact mode; 0 in timestamp
    /// mode).
    pub lag: i64,
    /// How long since the consumer's telemetry was created (at connect time).
    pub uptime: Duration,
}

impl Health {
    /// The `/health` response body, naming `group` and `index` (uptime in whole seconds).
    pub fn to_json(&self, group: &str, index: &str) -> serde_json::Value {
        serde_json::json!({"status": self.status.as_str(), "reasons": self.reasons, "group": group, "index": index, "delivered": self.delivered, "lag": self.lag, "uptime_seconds": self.uptime.as_secs()})
    }
}

impl Telemetry {
    /// The health now, by the [`HealthConfig`] it was created with.
    pub fn health(&self) -> Health {
        let breakers = self.sync_breakers();
        let s = self.state();
        let mut reasons = Vec::new();
        let mut status = HealthStatus::Healthy;
        for (name, state, _) in &breakers {
            if *state != crate::breaker::BreakerState::Closed {
                status = HealthStatus::Unhealthy;
                reasons.push(format!(
                    "the {name} circuit breaker is {}",
                    if *state == crate::breaker::BreakerState::Open {
                        "open"
                    } else {
                        "half-open"
                    }
                ));
            }
        }
        if s.failed_polls_in_a_row >= self.health.unhealthy_after_failed_polls {
            status = HealthStatus::Unhealthy;
            reasons.push(format!(
                "no poll has succeeded for {} polls",
                s.failed_polls_in_a_row
            ));
        }
        if s.failed_commits_in_a_row >= self.health.unhealthy_after_failed_commits {
            status = HealthStatus::Unhealthy;
            reasons.push(format!(
                "{} commits in a row failed",
                s.failed_commits_in_a_row
            ));
        }
        let mut degrade = |why: String| {
            if status == HealthStatus::Healthy {
                status = HealthStatus::Degraded;
            }
            reasons.push(why);
        };
        let failed = s.polls.iter().filter(|(_, ok)| !ok).count();
        if !s.polls.is_empty()
            && failed as f64 / s.polls.len() as f64 > self.health.degraded_error_rate
        {
            degrade(format!(
                "{failed} of the last minute's {} polls failed",
                s.polls.len()
            ));
        }
        if s.last_retry
            .is_some_and(|t| t.elapsed() < self.health.retry_window)
        {
            degrade("retries are happening".into());
        }
        let h = &s.lag_history;
        if h.len() >= 5 && h.iter().zip(h.iter().skip(1)).all(|(a, b)| b > a) {
            degrade(format!(
                "lag keeps growing ({} documents)",
                h.back().copied().unwrap_or(0)
            ));
        }
        reasons.extend(s.warnings.iter().cloned());
        Health {
            status,
            reasons,
            delivered: s.delivered,
            lag: s.partitions.values().map(|p| p.lag).sum(),
            uptime: self.started.elapsed(),
        }
    }
}
