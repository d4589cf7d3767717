//! Backoff schedules. This is the only module that uses the `backoff` crate (flagged
//! unmaintained by RUSTSEC-2025-0012, informational), so swapping it touches one file.
//!
//! `backoff` computes the exponential envelope; the jitter comes from cairn's injected random
//! source so that runs are reproducible from a seed.

use std::time::Duration;

use backoff::backoff::Backoff as _;
use rand::Rng;

/// An exponential backoff with full jitter: each delay is uniform in `[0, envelope]`, the
/// envelope doubling from `initial` up to `max`.
#[derive(Debug)]
pub struct Backoff {
    envelope: backoff::ExponentialBackoff,
}

impl Backoff {
    /// A schedule starting at `initial` and capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let envelope = backoff::ExponentialBackoff {
            current_interval: initial,
            initial_interval: initial,
            randomization_factor: 0.0,
            multiplier: 2.0,
            max_interval: max,
            max_elapsed_time: None,
            ..Default::default()
        };
        Self { envelope }
    }

    /// The next delay, jittered with `rng`.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let cap = self
            .envelope
            .next_backoff()
            .unwrap_or(self.envelope.max_interval);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(rng.random_range(0..=nanos))
    }
}

/// `base` moved by a uniformly random amount in `[-jitter, +jitter]`, never below zero.
pub fn jittered(base: Duration, jitter: Duration, rng: &mut impl Rng) -> Duration {
    if jitter.is_zero() {
        return base;
    }
    let j = i64::try_from(jitter.as_nanos()).unwrap_or(i64::MAX);
    let offset = rng.random_range(j.saturating_neg()..=j);
    let b = i64::try_from(base.as_nanos()).unwrap_or(i64::MAX);
    // Below zero (a negative sum) is zero.
    Duration::from_nanos(u64::try_from(b.saturating_add(offset)).unwrap_or(0))
}
