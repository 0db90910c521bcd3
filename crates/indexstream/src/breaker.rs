//! A circuit breaker per dependency (fetching, the offset store): CLOSED until
//! `failure_threshold` transient failures in a row, then OPEN (calls fail fast without touching
//! the network) for `open_timeout`, then HALF_OPEN: one probe goes through; its success closes
//! the breaker, its failure opens it again. Time is `tokio::time::Instant`, so tests can run
//! on paused time.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Where a circuit breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; counting consecutive transient failures.
    Closed,
    /// Calls fail fast without touching the network until the open timeout passes.
    Open,
    /// The open timeout passed: one probe call goes through, and its outcome closes or reopens
    /// the breaker.
    HalfOpen,
}

impl BreakerState {
    /// The metric value: 0 closed, 1 half-open, 2 open.
    pub fn as_gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

/// When a circuit breaker opens and how long it stays open.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct BreakerConfig {
    /// Consecutive transient failures that open the breaker (the original system's default: 5).
    pub failure_threshold: u32,
    /// How long it stays open before a probe (the original's default: 1 minute).
    #[serde(with = "crate::serde_duration")]
    pub open_timeout: Duration,
}

impl BreakerConfig {
    /// Opens after `failure_threshold` transient failures in a row, for `open_timeout`.
    pub fn new(failure_threshold: u32, open_timeout: Duration) -> Self {
        BreakerConfig {
            failure_threshold,
            open_timeout,
        }
    }
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            open_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// A circuit breaker around one dependency, shared by the clients that call it (see the
/// module docs for its states).
#[derive(Debug)]
pub struct CircuitBreaker {
    name: String,
    config: BreakerConfig,
    inner: Mutex<(Inner, u64)>,
    /// The latest failure's description, for the error of a call it refuses.
    last_failure: Mutex<Option<String>>,
}

impl CircuitBreaker {
    /// A closed breaker; `name` names the dependency in logs, metrics and errors.
    pub fn new(name: impl Into<String>, config: BreakerConfig) -> Self {
        CircuitBreaker {
            name: name.into(),
            config,
            inner: Mutex::new((Inner::Closed { failures: 0 }, 0)),
            last_failure: Mutex::new(None),
        }
    }

    /// The name of the dependency it guards.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Inner, u64)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a call may go to the network now (in HALF_OPEN, only the one probe may).
    pub fn allow(&self) -> bool {
        let mut g = self.lock();
        match g.0 {
            Inner::Closed { .. } => true,
            Inner::Open { until } if Instant::now() >= until => {
                g.0 = Inner::HalfOpen { probing: true };
                true
            }
            Inner::Open { .. } => false,
            Inner::HalfOpen { probing: true } => false,
            Inner::HalfOpen { probing: false } => {
                g.0 = Inner::HalfOpen { probing: true };
                true
            }
        }
    }

    /// A call that went through succeeded (or failed in a way a retry cannot help): closes the
    /// breaker and clears its failure count.
    pub fn on_success(&self) {
        self.lock().0 = Inner::Closed { failures: 0 };
    }

    /// A transient failure (the cluster did not answer usefully).
    pub fn on_failure(&self) {
        let mut g = self.lock();
        let open = match g.0 {
            Inner::Closed { failures } if failures + 1 >= self.config.failure_threshold => true,
            Inner::Closed { failures } => {
                g.0 = Inner::Closed {
                    failures: failures + 1,
                };
                false
            }
            Inner::HalfOpen { .. } => true,
            Inner::Open { .. } => false,
        };
        if open {
            g.0 = Inner::Open {
                until: Instant::now() + self.config.open_timeout,
            };
            g.1 += 1;
            tracing::warn!(breaker = %self.name, open_for = ?self.config.open_timeout, "circuit breaker opened");
        }
    }

    /// A transient failure, described (the description is what [`CircuitBreaker::last_failure`]
    /// returns while the breaker refuses calls).
    pub fn on_failure_because(&self, cause: &dyn std::fmt::Display) {
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(cause.to_string());
        self.on_failure();
    }

    /// The latest failure given to [`CircuitBreaker::on_failure_because`].
    pub fn last_failure(&self) -> Option<String> {
        self.last_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The current state. An open breaker whose timeout has passed still reports
    /// [`BreakerState::Open`] until the next [`CircuitBreaker::allow`] lets the probe through.
    pub fn state(&self) -> BreakerState {
        match self.lock().0 {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// How many times it opened.
    pub fn trips(&self) -> u64 {
        self.lock().1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(
            "fetch",
            BreakerConfig {
                failure_threshold: 3,
                open_timeout: Duration::from_secs(10),
            },
        )
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_threshold_and_fails_fast_until_the_timeout() {
        let b = breaker();
        for _ in 0..2 {
            assert!(b.allow());
            b.on_failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.on_failure();
        assert_eq!((b.state(), b.trips()), (BreakerState::Open, 1));
        assert!(!b.allow());
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(!b.allow(), "still open before the timeout");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(b.allow(), "the probe goes through");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(!b.allow(), "only one probe at a time");
        b.on_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_it_again() {
        let b = breaker();
        for _ in 0..3 {
            b.on_failure();
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(b.allow());
        b.on_failure();
        assert_eq!((b.state(), b.trips()), (BreakerState::Open, 2));
        assert!(!b.allow());
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let b = breaker();
        b.on_failure();
        b.on_failure();
        b.on_success();
        b.on_failure();
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
