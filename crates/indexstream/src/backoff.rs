//! Exponential backoff, the one kind of delay between attempts in the library: the client's
//! retries (with full jitter, through [`crate::RetryPolicy`]) and the run loop's waits after a
//! failed poll, commit or sink write.

use std::time::Duration;

/// Delays that start at `base` and double with every attempt, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first retry.
    pub base: Duration,
    /// No delay is longer.
    pub max: Duration,
}

impl Backoff {
    /// From `base`, doubling, capped at `max`.
    pub const fn new(base: Duration, max: Duration) -> Self {
        Backoff { base, max }
    }

    /// The delay after `retry` failures (0-based): `min(max, base * 2^retry)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Full jitter: retry `n` waits a time drawn uniformly from `[0, ceiling(n)]`, so that many
    /// clients failing together do not retry together. Endless; take as many as needed.
    pub fn full_jitter(&self, seed: u64) -> FullJitter {
        FullJitter {
            backoff: *self,
            retry: 0,
            state: seed | 1,
        }
    }
}

/// The delays of [`Backoff::full_jitter`].
#[derive(Debug, Clone)]
pub struct FullJitter {
    backoff: Backoff,
    retry: u32,
    state: u64,
}

impl Iterator for FullJitter {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let ceiling = self.backoff.ceiling(self.retry);
        self.retry = self.retry.saturating_add(1);
        // xorshift64: cheap, and good enough to spread retries.
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

    #[test]
    fn it_doubles_then_caps_and_the_jitter_stays_below_the_ceiling() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(4), Duration::from_secs(1));
        assert_eq!(b.ceiling(40), Duration::from_secs(1));
        for (n, d) in b.full_jitter(7).take(20).enumerate() {
            assert!(d <= b.ceiling(n as u32));
        }
    }
}
