//! Exponential backoff with jitter for transient sink errors.

use std::time::Duration;

/// Backoff state for one batch.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial_ms: u64,
    max_ms: u64,
    attempt: u32,
}

impl Backoff {
    /// Starts at `initial_ms`, doubling up to `max_ms`.
    pub fn new(initial_ms: u64, max_ms: u64) -> Self {
        Self {
            initial_ms,
            max_ms,
            attempt: 0,
        }
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The next delay: the capped exponential step, scaled by a random factor in
    /// [0.5, 1.0] so that lanes that failed together do not retry together.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling_ms();
        self.attempt = self.attempt.saturating_add(1);
        let factor = 0.5 + rand::random::<f64>() * 0.5;
        Duration::from_millis(((ceiling as f64) * factor) as u64)
    }

    fn ceiling_ms(&self) -> u64 {
        let shift = self.attempt.min(32);
        self.initial_ms
            .saturating_mul(1u64 << shift)
            .min(self.max_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter() {
        let mut b = Backoff::new(100, 1000);
        let delays: Vec<u64> = (0..8).map(|_| b.next_delay().as_millis() as u64).collect();
        assert!((50..=100).contains(&delays[0]), "{delays:?}");
        assert!((100..=200).contains(&delays[1]), "{delays:?}");
        assert!((200..=400).contains(&delays[2]), "{delays:?}");
        for d in &delays[4..] {
            assert!((500..=1000).contains(d), "{delays:?}");
        }
        assert_eq!(b.attempts(), 8);
    }
}
