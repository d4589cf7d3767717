//! Injected time. Protocol code never reads the system clock directly: it asks a [`Clock`]
//! for the wall time it writes into manifests and for the monotonic instant its safety
//! rules are measured on.
//!
//! The monotonic side is `tokio::time::Instant`, so tests that run on a paused tokio clock
//! (`#[tokio::test(start_paused = true)]`) drive every timing rule without sleeping.
//!
//! # Time the monotonic clock does not see
//!
//! `CLOCK_MONOTONIC`, on which `Instant` runs, stops while the host is suspended or its VM
//! paused (for a snapshot, a live migration). Other nodes' clocks do not stop: a holder
//! resumed after a minute would count its lease live for that minute more. So every holder
//! deadline runs on [`Clock::boottime`], the monotonic instant moved on by the time the
//! system has spent suspended ([`Clock::suspended`]: on Linux, `CLOCK_BOOTTIME` minus
//! `CLOCK_MONOTONIC`; elsewhere nothing is known, and zero is assumed). A holder waits on
//! its deadline in slices of at most 250 ms, reading the clock again after each,
//! since a timer armed on the monotonic clock would wake only after the time it did not
//! see had passed once more. Takeover waits stay on the plain monotonic clock: counting
//! less time there only makes an observer wait longer.

use std::fmt::Debug;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// Source of wall-clock and monotonic time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// Wall-clock time, written into manifests (`written_at`, `expires_at`). Never trusted
    /// alone for safety: other nodes' clocks may be skewed.
    fn now(&self) -> DateTime<Utc>;
    /// Monotonic time on this node, on which holder deadlines and takeover waits run.
    #[allow(
        clippy::disallowed_methods,
        reason = "the clock itself: tokio's monotonic clock, which tests pause"
    )]
    fn monotonic(&self) -> Instant {
        Instant::now()
    }
    /// How long the system has been suspended (or its VM paused) since it started: time
    /// that passed for everyone else while [`Clock::monotonic`] stood still. Never goes
    /// down. The default reads the system's clocks (zero where they cannot tell).
    fn suspended(&self) -> Duration {
        system_suspended()
    }
    /// [`Clock::monotonic`] moved on by [`Clock::suspended`]: an instant on a timeline that
    /// does not stop while the system sleeps, on which holder deadlines are set and checked.
    /// Not meant to be overridden.
    fn boottime(&self) -> Instant {
        after(self.monotonic(), self.suspended())
    }
}

/// How long a holder waits on its deadline before reading the clock again: the longest a
/// deadline that passed during a suspension goes unnoticed after the system resumes.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const SUSPEND_CHECK: Duration = Duration::from_millis(250);

/// Sleeps until `deadline`, an instant on [`Clock::boottime`]'s timeline, or for ever when
/// there is none: in slices of at most [`SUSPEND_CHECK`], so that time spent suspended
/// meanwhile counts.
///
/// # Cancel safety
///
/// Cancel-safe.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) async fn sleep_until_boottime(clock: &dyn Clock, deadline: Option<Instant>) {
    let Some(deadline) = deadline else {
        return std::future::pending().await;
    };
    loop {
        let left = deadline.saturating_duration_since(clock.boottime());
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(SUSPEND_CHECK)).await;
    }
}

/// Time this system has spent suspended since boot: `CLOCK_BOOTTIME − CLOCK_MONOTONIC`,
/// in whole milliseconds (the two readings are a few nanoseconds apart; rounding down keeps
/// that out), and never less than an earlier answer.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn system_suspended() -> Duration {
    use nix::time::{clock_gettime, ClockId};
    use std::sync::atomic::{AtomicU64, Ordering};
    static MOST_MS: AtomicU64 = AtomicU64::new(0);
    let read = clock_gettime(ClockId::CLOCK_MONOTONIC).and_then(|mono| {
        clock_gettime(ClockId::CLOCK_BOOTTIME)
            .map(|boot| Duration::from(boot).saturating_sub(Duration::from(mono)))
    });
    let ms = read.map_or(0, millis);
    let most = MOST_MS.fetch_max(ms, Ordering::Relaxed).max(ms);
    Duration::from_millis(most)
}

/// Elsewhere nothing is known of suspended time: none is counted.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn system_suspended() -> Duration {
    Duration::ZERO
}

/// The real clocks: `Utc::now()` and tokio's monotonic clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods, reason = "the real wall clock")]
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

#[cfg(feature = "test-util")]
pub use test_clock::TestClock;

#[cfg(feature = "test-util")]
mod test_clock {
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

    use chrono::{DateTime, Utc};
    use tokio::time::Instant;

    use super::{add_saturating, Clock};

    /// A clock for tests whose wall time advances with tokio's (possibly paused) clock, plus
    /// an adjustable skew, so a test can model a node whose wall clock is wrong, and
    /// injected suspensions ([`TestClock::suspend`]), so a test can model a host that slept.
    #[derive(Debug)]
    pub struct TestClock {
        wall_origin: DateTime<Utc>,
        mono_origin: Instant,
        skew_ms: AtomicI64,
        suspended_ms: AtomicU64,
    }

    impl TestClock {
        /// A clock whose wall time starts at `wall_origin` now.
        #[allow(clippy::disallowed_methods, reason = "anchors on tokio's clock")]
        pub fn new(wall_origin: DateTime<Utc>) -> Self {
            Self::anchored(wall_origin, Instant::now())
        }

        /// A clock whose wall time was `wall_origin` at the monotonic instant `mono_origin`,
        /// so that clocks made at different times share one timeline.
        pub fn anchored(wall_origin: DateTime<Utc>, mono_origin: Instant) -> Self {
            Self {
                wall_origin,
                mono_origin,
                skew_ms: AtomicI64::new(0),
                suspended_ms: AtomicU64::new(0),
            }
        }

        /// Sets how far this clock's wall time is ahead (positive) or behind (negative).
        pub fn set_skew(&self, skew: chrono::Duration) {
            self.skew_ms
                .store(skew.num_milliseconds(), Ordering::SeqCst);
        }

        /// The system was suspended for `d` just now: wall time and [`Clock::boottime`] move
        /// on by `d`, the monotonic clock (tokio's) does not. Whole milliseconds.
        pub fn suspend(&self, d: std::time::Duration) {
            self.suspended_ms
                .fetch_add(super::millis(d), Ordering::SeqCst);
        }
    }

    impl Clock for TestClock {
        #[allow(
            clippy::disallowed_methods,
            reason = "runs on tokio's clock, which tests pause"
        )]
        fn now(&self) -> DateTime<Utc> {
            let elapsed = Instant::now()
                .saturating_duration_since(self.mono_origin)
                .saturating_add(self.suspended());
            let t = add_saturating(self.wall_origin, elapsed);
            chrono::Duration::try_milliseconds(self.skew_ms.load(Ordering::SeqCst))
                .and_then(|skew| t.checked_add_signed(skew))
                .unwrap_or(t)
        }

        fn suspended(&self) -> std::time::Duration {
            std::time::Duration::from_millis(self.suspended_ms.load(Ordering::SeqCst))
        }
    }
}

/// `t + d`, or `None` past the end of chrono's range. Never panics.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) fn add(t: DateTime<Utc>, d: Duration) -> Option<DateTime<Utc>> {
    t.checked_add_signed(chrono::Duration::from_std(d).ok()?)
}

/// `t - d`, or `None` before the start of chrono's range. Never panics.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) fn sub(t: DateTime<Utc>, d: Duration) -> Option<DateTime<Utc>> {
    t.checked_sub_signed(chrono::Duration::from_std(d).ok()?)
}

/// `t + d`, saturating at chrono's bounds: for comparisons ("is it past t + d?") where a
/// far-future result simply means "not yet". Never panics.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) fn add_saturating(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    add(t, d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `t - d`, saturating at chrono's bounds. Never panics.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) fn sub_saturating(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    sub(t, d).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// How long from `from` until `to` (zero when `to` is not later). Never panics.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) fn until(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    to.signed_duration_since(from)
        .to_std()
        .unwrap_or(Duration::ZERO)
}

/// `t + d` on the monotonic clock, or `t` itself past the end of its range (centuries away:
/// never in practice). For deadlines and wake-ups, where the earlier instant is the safe side:
/// a deadline that cannot be represented has passed. Never panics.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) fn after(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).unwrap_or(t)
}

/// `d / n`: a duration split into `n` parts (`n` is a nonzero constant at every call; zero
/// parts give zero). Never panics.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) fn divide(d: Duration, n: u32) -> Duration {
    d.checked_div(n).unwrap_or(Duration::ZERO)
}

/// A duration stored in milliseconds, range-checked before use: values above `max` are
/// reported as [`crate::Error::Corrupt`] naming `key` and `field`, never wrapped or trusted.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) fn stored_ms(
    key: &impl std::fmt::Display,
    field: &str,
    ms: u64,
    max: Duration,
) -> crate::Result<Duration> {
    let d = Duration::from_millis(ms);
    if d > max {
        return Err(crate::Error::Corrupt {
            key: key.to_string(),
            reason: format!(
                "{field} of {ms} ms exceeds the largest allowed, {} ms",
                max.as_millis()
            ),
        });
    }
    Ok(d)
}

/// The number after `n` (a version, fencing token, turn number, sequence number), or
/// [`crate::Error::Exhausted`] at the end of the range: numbers never wrap.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) fn next_number(
    key: &impl std::fmt::Display,
    what: &'static str,
    n: u64,
) -> crate::Result<u64> {
    n.checked_add(1).ok_or_else(|| crate::Error::Exhausted {
        key: key.to_string(),
        what,
    })
}

/// Whole milliseconds of `d`, saturating at `u64::MAX`. Never panics.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Numbers allotted per millisecond of [`floor`]: the rate of transitions a number may sustain
/// for ever without its successors catching up with a floor drawn later.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const FLOOR_PER_MS: u64 = 1024;

/// The floor a number starts at when its object is created afresh (a fencing token, a
/// manifest version, a turn number, a log sequence): `ms since the epoch of t × 1024`, and
/// never below 1 (a time before the epoch gives 1).
///
/// **Why.** Numbers are compared only within one object, and each transition adds 1 to the
/// number it replaces. When every object of a name vanishes (a lifecycle rule, a restore, an
/// operator's `rm`), the next writer cannot read the number it must exceed; it starts from
/// the clock instead. A number created afresh at `t1` and advanced `k` times since is
/// `floor(t1) + k`, which is below `floor(t2)` whenever
/// `k < (t2 − t1) × 1024/ms`: fewer than about one transition a microsecond on average over
/// the object's life. Every cairn transition is a store round trip (a millisecond at the very
/// least), so a number drawn afresh at `t2` is above every number of an earlier incarnation,
/// as long as the two creators' clocks agree to better than the time between them, which is
/// what the clock-skew bound states (see [`crate::manifest::Manifests::floor_time`]). Today's
/// floor is ≈ 1.8 × 10¹⁵, below 2⁵³ until about the year 2245, so JSON consumers that read
/// numbers as doubles stay exact.
///
/// Checked: [`crate::Error::Exhausted`], naming `key`, if the product did not fit a `u64`
/// (chrono's range ends near 8.3 × 10¹⁸ after the multiplication, so it fits; the check is
/// what keeps that a fact rather than an assumption).
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) fn floor(key: &impl std::fmt::Display, t: DateTime<Utc>) -> crate::Result<u64> {
    let ms = u64::try_from(t.timestamp_millis()).unwrap_or(0);
    ms.checked_mul(FLOOR_PER_MS)
        .map(|n| n.max(1))
        .ok_or_else(|| crate::Error::Exhausted {
            key: key.to_string(),
            what: "floor",
        })
}

#[cfg(test)]
mod floor_tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    #[test]
    fn floor_is_ms_times_1024() {
        assert_eq!(floor(&"k", at(1_000)).unwrap(), 1_024_000);
        // Today's floors stay below 2^53 (exact as JSON doubles) for two centuries.
        let y2245 = DateTime::parse_from_rfc3339("2245-01-01T00:00:00Z").unwrap();
        assert!(floor(&"k", y2245.with_timezone(&Utc)).unwrap() < 1 << 53);
    }

    #[test]
    fn floor_is_monotone_in_time() {
        let mut last = 0;
        for ms in [0, 1, 2, 999, 1_000, 1_800_000_000_000, 1_800_000_000_001] {
            let f = floor(&"k", at(ms)).unwrap();
            assert!(f >= last, "floor({ms}) = {f} went below {last}");
            last = f;
        }
        // One millisecond leaves room for 1024 transitions.
        let a = floor(&"k", at(1_800_000_000_000)).unwrap();
        let b = floor(&"k", at(1_800_000_000_001)).unwrap();
        assert_eq!(b - a, FLOOR_PER_MS);
    }

    #[test]
    fn floor_is_never_below_one() {
        assert_eq!(floor(&"k", at(0)).unwrap(), 1);
        assert_eq!(floor(&"k", at(-5_000)).unwrap(), 1);
    }

    #[test]
    fn floor_does_not_overflow_at_the_end_of_time() {
        let end = floor(&"k", DateTime::<Utc>::MAX_UTC).unwrap();
        assert!(end > floor(&"k", at(1_800_000_000_000)).unwrap());
    }
}
