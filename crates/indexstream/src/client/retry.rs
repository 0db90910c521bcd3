//! The retry policy every cluster request goes through: exponential backoff with full jitter
//! (a delay drawn uniformly from `[0, min(max_delay, base_delay * 2^attempt)]`), only for errors
//! the predicate accepts (by default [`ClientError::is_retriable`]), honouring `Retry-After`.
//! Scheduling is backon's; the delays are a [`Backoff`]'s.

use std::sync::Arc;
use std::time::Duration;

use super::ClientError;
use crate::backoff::{Backoff, FullJitter};

/// Decides which errors are retried.
pub type RetryPredicate = Arc<dyn Fn(&ClientError) -> bool + Send + Sync>;

/// How a failed cluster request is retried: how many attempts, how long between them, and
/// which errors qualify. Read with serde as `max-attempts`, `base-delay`, `max-delay` (the
/// predicate is the default one).
#[derive(Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (the original system's default: 3).
    pub max_attempts: u32,
    /// The first retry waits up to this long (default 100 ms).
    #[serde(with = "crate::serde_duration")]
    pub base_delay: Duration,
    /// No retry waits longer (default 30 s, also the cap of a `Retry-After`).
    #[serde(with = "crate::serde_duration")]
    pub max_delay: Duration,
    /// Which errors are retried (default: [`ClientError::is_retriable`]); a circuit breaker's
    /// refusal never is.
    #[serde(skip)]
    pub predicate: RetryPredicate,
}

impl std::fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("base_delay", &self.base_delay)
            .field("max_delay", &self.max_delay)
            .finish_non_exhaustive()
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            predicate: Arc::new(ClientError::is_retriable),
        }
    }
}

impl RetryPolicy {
    /// A builder starting from the default policy.
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder(RetryPolicy::default())
    }

    /// Never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The delays between attempts: from `base_delay`, doubling, capped at `max_delay`.
    pub fn delays(&self) -> Backoff {
        Backoff::new(self.base_delay, self.max_delay)
    }

    /// The upper bound of the delay before retry number `retry` (0-based): `min(max, base * 2^retry)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        self.delays().ceiling(retry)
    }

    /// The delays of one operation's retries, for backon: `max_attempts - 1` of them.
    pub(crate) fn backoff(&self, seed: u64) -> std::iter::Take<FullJitter> {
        self.delays()
            .full_jitter(seed)
            .take(self.max_attempts.saturating_sub(1) as usize)
    }
}

/// Builds a [`RetryPolicy`].
#[derive(Debug, Clone)]
pub struct RetryPolicyBuilder(RetryPolicy);

impl RetryPolicyBuilder {
    /// Attempts in all, the first included (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.0.max_attempts = n.max(1);
        self
    }

    /// The upper bound of the first retry's delay; it doubles with each retry.
    pub fn base_delay(mut self, d: Duration) -> Self {
        self.0.base_delay = d;
        self
    }

    /// No retry waits longer (also the cap of a `Retry-After`).
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.0.max_delay = d;
        self
    }

    /// Which errors are retried (default: [`ClientError::is_retriable`]).
    pub fn retry_on(
        mut self,
        predicate: impl Fn(&ClientError) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.0.predicate = Arc::new(predicate);
        self
    }

    /// The policy.
    pub fn build(self) -> RetryPolicy {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every delay lies in [0, min(max, base * 2^n)], and there are max_attempts - 1 of them.
        #[test]
        fn delays_are_bounded_and_capped(base_ms in 1u64..500, max_ms in 1u64..10_000, attempts in 1u32..12, seed in any::<u64>()) {
            let p = RetryPolicy::builder().base_delay(Duration::from_millis(base_ms)).max_delay(Duration::from_millis(max_ms)).max_attempts(attempts).build();
            let delays: Vec<Duration> = p.backoff(seed).collect();
            prop_assert_eq!(delays.len() as u32, attempts - 1);
            for (n, d) in delays.iter().enumerate() {
                prop_assert!(*d <= p.ceiling(n as u32));
                prop_assert!(*d <= Duration::from_millis(max_ms));
            }
        }
    }

    #[test]
    fn the_ceiling_doubles_then_caps() {
        let p = RetryPolicy::builder()
            .base_delay(Duration::from_millis(100))
            .max_delay(Duration::from_secs(1))
            .build();
        assert_eq!(p.ceiling(0), Duration::from_millis(100));
        assert_eq!(p.ceiling(3), Duration::from_millis(800));
        assert_eq!(p.ceiling(4), Duration::from_secs(1));
        assert_eq!(p.ceiling(40), Duration::from_secs(1));
    }
}
