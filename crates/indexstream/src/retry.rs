//! The retry policy every cluster request goes through: exponential backoff with full jitter
//! (a delay drawn uniformly from `[0, min(max_delay, base_delay * 2^attempt)]`), only for errors
//! the predicate accepts (by default [`ClientError::is_retriable`]), honouring `Retry-After`.
//! Scheduling is backon's; the jitter is ours.

use std::sync::Arc;
use std::time::Duration;

use crate::client::ClientError;

/// Decides which errors are retried.
pub type RetryPredicate = Arc<dyn Fn(&ClientError) -> bool + Send + Sync>;

#[derive(Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (the original system's default: 3).
    pub max_attempts: u32,
    /// The first retry waits up to this long (default 100 ms).
    pub base_delay: Duration,
    /// No retry waits longer (default 30 s, also the cap of a `Retry-After`).
    pub max_delay: Duration,
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

    /// The upper bound of the delay before retry number `retry` (0-based): `min(max, base * 2^retry)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// The delays of one operation's retries, for backon.
    pub fn backoff(&self, seed: u64) -> FullJitter {
        FullJitter {
            policy: self.clone(),
            retry: 0,
            state: seed | 1,
        }
    }
}

/// Builds a [`RetryPolicy`].
#[derive(Debug, Clone)]
pub struct RetryPolicyBuilder(RetryPolicy);

impl RetryPolicyBuilder {
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.0.max_attempts = n.max(1);
        self
    }

    pub fn base_delay(mut self, d: Duration) -> Self {
        self.0.base_delay = d;
        self
    }

    pub fn max_delay(mut self, d: Duration) -> Self {
        self.0.max_delay = d;
        self
    }

    pub fn retry_on(
        mut self,
        predicate: impl Fn(&ClientError) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.0.predicate = Arc::new(predicate);
        self
    }

    pub fn build(self) -> RetryPolicy {
        self.0
    }
}

/// Full-jitter exponential delays: the iterator backon draws retry delays from.
#[derive(Debug, Clone)]
pub struct FullJitter {
    policy: RetryPolicy,
    retry: u32,
    state: u64,
}

impl Iterator for FullJitter {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.retry + 1 >= self.policy.max_attempts {
            return None;
        }
        let ceiling = self.policy.ceiling(self.retry);
        self.retry += 1;
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let fraction = (self.state >> 11) as f64 / (1u64 << 53) as f64;
        Some(ceiling.mul_f64(fraction))
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
