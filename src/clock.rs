//! Injected time. Protocol code never reads the system clock directly: it asks a [`Clock`]
//! for the wall time it writes into manifests and for the monotonic instant its safety
//! rules are measured on.
//!
//! The monotonic side is `tokio::time::Instant`, so tests that run on a paused tokio clock
//! (`#[tokio::test(start_paused = true)]`) drive every timing rule without sleeping.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// Source of wall-clock and monotonic time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// Wall-clock time, written into manifests (`written_at`, `expires_at`). Never trusted
    /// alone for safety: other nodes' clocks may be skewed.
    fn now(&self) -> DateTime<Utc>;
    /// Monotonic time on this node, on which holder deadlines and takeover waits run.
    fn monotonic(&self) -> Instant {
        Instant::now()
    }
}

/// The real clocks: `Utc::now()` and tokio's monotonic clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock for tests whose wall time advances with tokio's (possibly paused) clock, plus an
/// adjustable skew, so a test can model a node whose wall clock is wrong.
#[derive(Debug)]
pub struct TestClock {
    wall_origin: DateTime<Utc>,
    mono_origin: Instant,
    skew_ms: AtomicI64,
}

impl TestClock {
    /// A clock whose wall time starts at `wall_origin` now.
    pub fn new(wall_origin: DateTime<Utc>) -> Self {
        Self {
            wall_origin,
            mono_origin: Instant::now(),
            skew_ms: AtomicI64::new(0),
        }
    }

    /// A clock whose wall time was `wall_origin` at the monotonic instant `mono_origin`, so
    /// that clocks made at different times share one timeline.
    pub fn anchored(wall_origin: DateTime<Utc>, mono_origin: Instant) -> Self {
        Self {
            wall_origin,
            mono_origin,
            skew_ms: AtomicI64::new(0),
        }
    }

    /// Sets how far this clock's wall time is ahead (positive) or behind (negative).
    pub fn set_skew(&self, skew: chrono::Duration) {
        self.skew_ms
            .store(skew.num_milliseconds(), Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = Instant::now().saturating_duration_since(self.mono_origin);
        self.wall_origin
            + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
            + chrono::Duration::milliseconds(self.skew_ms.load(Ordering::SeqCst))
    }
}

/// Converts a std duration to chrono's, saturating instead of failing.
pub(crate) fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
