//! A node's measured clock offset from the store's clock, at the bottom of the crate: the
//! error type carries it ([`crate::Error::ClockOffset`]); [`crate::store::time`] measures it.

use std::time::Duration;

use serde::Serialize;

/// How far the store's clock is ahead of this node's wall clock (negative: this node's clock
/// is ahead), as an interval that certainly contains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ClockOffset {
    /// The offset is at least this many milliseconds.
    pub low_ms: i64,
    /// The offset is at most this many milliseconds.
    pub high_ms: i64,
}

impl ClockOffset {
    /// The middle of the interval, in milliseconds: the best single figure.
    pub fn estimate_ms(&self) -> i64 {
        (self.low_ms / 2).saturating_add(self.high_ms / 2)
    }

    /// How far this node's clock is certainly off: zero when the interval contains zero.
    pub fn at_least(&self) -> Duration {
        let ms = if self.low_ms > 0 {
            self.low_ms.unsigned_abs()
        } else if self.high_ms < 0 {
            self.high_ms.unsigned_abs()
        } else {
            0
        };
        Duration::from_millis(ms)
    }

    /// Whether this node's clock is certainly more than `bound` away from the store's.
    pub fn beyond(&self, bound: Duration) -> bool {
        self.at_least() > bound
    }
}

impl std::fmt::Display for ClockOffset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let est = self.estimate_ms();
        let half = self.high_ms.saturating_sub(self.low_ms).unsigned_abs() / 2;
        let secs = |ms: u64| {
            // Milliseconds as seconds with one decimal, without a float conversion.
            format!("{}.{}", ms / 1000, (ms % 1000) / 100)
        };
        let how = if est > 0 { "behind" } else { "ahead of" };
        write!(
            f,
            "this node's clock is {} s {how} the store's (±{} s)",
            secs(est.unsigned_abs()),
            secs(half)
        )
    }
}
