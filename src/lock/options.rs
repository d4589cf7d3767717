//! The lock's timing ([`LockOptions`]) and the rules it checks before any request.

use std::time::Duration;

use crate::clock;
use crate::error::{Error, Result};

/// The longest ttl a lease may have (one day), and the largest stored `ttl_ms` a reader
/// accepts: a lease that outlives a day is a configuration error, and a larger stored value
/// is corrupt data, never a reason to wait forever or to overflow.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// Lease timing. Every value is configurable; the defaults and their reasons:
#[derive(Debug, Clone)]
pub struct LockOptions {
    /// How long a lease lasts without renewal. Default 30 s: long enough to ride out a
    /// few slow S3 requests, short enough that a dead holder blocks others for well under a
    /// minute. At one renewal per 10 s a lock costs about 260,000 PUTs, $1.30, a month.
    pub ttl: Duration,
    /// How often the holder renews. Default `ttl / 3` (10 s): two renewals can fail before
    /// the holder must give up.
    pub renew_interval: Duration,
    /// The holder gives its lease up this long before `ttl` runs out. Default 2 s: covers
    /// the time between sending a renewal and it taking effect, and clock-rate drift.
    pub safety_margin: Duration,
    /// Observers wait `ttl` plus this before taking over a lease they saw unchanged.
    /// Default 2 s: an observer's first sight of a version comes after its holder sent it,
    /// and this absorbs scheduling delays on the observer.
    pub takeover_margin: Duration,
    /// The first backoff envelope while waiting to acquire; no pause between polls is
    /// shorter than half of it. Default 250 ms.
    pub poll_min: Duration,
    /// Longest pause between polls while waiting to acquire. Default 1 s (or `ttl / 3` when
    /// that is shorter): a waiter learns of a release within about a second. Each pause is
    /// drawn from `[poll_min / 2, envelope]`, the envelope doubling from `poll_min` to this
    /// (about 0.5 s on average once it is reached), and each poll is a conditional GET (a
    /// 304 with no body while nothing changes): one waiter costs about 7,000 GETs an hour
    /// (6,700 measured on LocalStack, the holder's renewals included), about $0.003 an hour
    /// at S3 list prices, and at most 28,800.
    pub poll_max: Duration,
    /// Pause after a failed renewal before the next attempt. Default 1 s.
    pub retry_interval: Duration,
    /// How long the holder needs to stop its work once it gives the lease up (for `cairn
    /// lock run`, the grace between SIGTERM and SIGKILL). The holder gives up this much
    /// earlier, at `last renewal sent + ttl − safety_margin − stop_grace`, so its work has
    /// stopped before any other node may take over. Default 0 (an embedder that stops at
    /// once when [`HeldLock::lost`](super::HeldLock::lost) fires).
    pub stop_grace: Duration,
}

impl Default for LockOptions {
    fn default() -> Self {
        Self::with_ttl(Duration::from_secs(30))
    }
}

impl LockOptions {
    /// The defaults, scaled to `ttl`: renewal every `ttl / 3`, margins of 2 s or `ttl / 15`
    /// when that is smaller.
    pub fn with_ttl(ttl: Duration) -> Self {
        let margin = Duration::from_secs(2).min(clock::divide(ttl, 15));
        Self {
            ttl,
            renew_interval: clock::divide(ttl, 3),
            safety_margin: margin,
            takeover_margin: margin,
            poll_min: Duration::from_millis(250).min(clock::divide(ttl, 10)),
            poll_max: Duration::from_secs(1).min(clock::divide(ttl, 3)),
            retry_interval: Duration::from_secs(1).min(clock::divide(ttl, 10)),
            stop_grace: Duration::ZERO,
        }
    }

    /// These options with [`LockOptions::stop_grace`] set.
    pub fn with_stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// How long after a renewal is sent the holder keeps counting the lease as its own:
    /// `ttl − safety_margin − stop_grace` (validated positive).
    pub(super) fn hold_for(&self) -> Duration {
        self.ttl
            .saturating_sub(self.safety_margin)
            .saturating_sub(self.stop_grace)
    }

    /// Checks the options before any request: a ttl within (0, 24 h], and room in
    /// it for a renewal, the safety margin and the stop grace.
    pub fn validate(&self) -> Result<()> {
        if self.ttl.is_zero() || self.ttl > MAX_TTL {
            return Err(Error::Config(format!(
                "lease ttl {:?} is out of range: it must be above 0 and at most {}h",
                self.ttl,
                MAX_TTL.as_secs() / 3600
            )));
        }
        let hold = self.hold_for();
        if self.renew_interval.is_zero() || self.renew_interval >= hold {
            let need = clock::divide(
                self.safety_margin
                    .saturating_add(self.stop_grace)
                    .saturating_mul(3),
                2,
            );
            return Err(Error::Config(format!(
                "lease ttl {:.1?} leaves no room to renew: the holder renews every {:.1?} and \
                 must give up {:.1?} (safety margin) + {:.1?} (stop grace) before the ttl runs \
                 out; use a ttl above {}s or a shorter grace",
                self.ttl,
                self.renew_interval,
                self.safety_margin,
                self.stop_grace,
                need.as_secs().saturating_add(1)
            )));
        }
        if self.takeover_margin > MAX_TTL {
            return Err(Error::Config(
                "lease takeover margin must be at most a day".into(),
            ));
        }
        Ok(())
    }
}
