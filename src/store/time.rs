//! The store's clock, measured: how far this node's wall clock is from the store's, and a
//! point on the store's timeline that no node's wall clock can move.
//!
//! # Why
//!
//! Wall-clock times that nodes write into manifests (`expires_at`, `started_at`,
//! `heartbeat_at`) are only as good as the writer's clock, and comparing them with a
//! reader's clock is only as good as the reader's. A node whose clock runs a minute ahead
//! would see every live lease as expired. So cairn never takes a node's wall clock on trust
//! where safety depends on it: it measures the clock against the store's, the one clock
//! every node shares.
//!
//! # How
//!
//! A clock check overwrites one scratch object (`_cairn/clock.json`) and reads back its
//! `Last-Modified`, `L` ([`Store::clock_check`]: a PUT and a HEAD). Let `sent` and
//! `answered` be this node's readings just before the PUT and just after the HEAD. The version
//! the HEAD saw was written after our PUT began (ours, or one that overwrote it later), and
//! before the HEAD was answered; `Last-Modified` is that moment, truncated to the store's
//! resolution (whole seconds on S3, [`RESOLUTION`]). Hence, on the store's clock:
//!
//! - at `answered`, the store's time was at least `L` (a [`Witness`]);
//! - at `sent`, it was below `L + RESOLUTION`.
//!
//! From then on, the store's time at a later monotonic instant `t` is at least
//! `L + (t − answered)`: the monotonic clock does not run while the host is suspended, so
//! this only ever *under*-estimates the store's time, which is the safe side for every rule
//! built on it (a lease looks younger, a turn not yet due). No wall clock enters it.
//!
//! The node's wall-clock offset (store − wall) is bounded the same way at any later instant,
//! so a wall clock stepped after the check is seen at once, without another request:
//! `offset ∈ [L + (t − answered) − wall(t), L + RESOLUTION + (t − sent) − wall(t)]`.
//!
//! # What uses it
//!
//! - A lease is taken over by expiry only when the store's timeline shows its newest
//!   version ([`crate::manifest::Snapshot::stored_at`]) older than its ttl plus margins, and
//!   never while this node's offset is beyond the bound ([`crate::lock`]).
//! - A turn is claimed by time only while this node's offset is within the bound
//!   ([`crate::turn`]).
//! - Heartbeat ages are read on the store's timeline; a viewer whose offset is beyond the
//!   bound calls no node suspect or offline ([`crate::node`]).
//!
//! A check costs two requests; a node makes one only where a rule above needs it and its last
//! one is older than [`MAX_WITNESS_AGE`], or when its clock seems to have moved beyond the
//! bound since.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tracing::{info, warn};

use super::Store;
use crate::clock::{self, Clock};
use crate::error::Result;

/// The coarsest `Last-Modified` resolution cairn allows for: whole seconds (S3, RGW, HTTP
/// dates). A store with finer times only makes the bounds tighter than they need to be.
pub const RESOLUTION: Duration = Duration::from_secs(1);
const RESOLUTION_MS: i64 = 1000;

/// How long a clock check serves before the next rule that needs one makes another: the
/// monotonic clock's rate and the store's differ by parts per million, so in 15 minutes the
/// estimate drifts by milliseconds.
pub const MAX_WITNESS_AGE: Duration = Duration::from_secs(15 * 60);

/// How long a check that put this node beyond the bound stands before a rule that needs the
/// clock checks again (so a corrected clock is noticed, and a host resumed from suspension,
/// whose monotonic clock missed the time it slept, is re-measured).
const RECHECK_BEYOND: Duration = Duration::from_secs(30);

/// The default bound on a node's offset from the store's clock: 2 s. NTP keeps hosts within
/// milliseconds; the measurement itself is only good to [`RESOLUTION`].
pub const DEFAULT_MAX_OFFSET: Duration = Duration::from_secs(2);

pub use crate::offset::ClockOffset;

/// A point on the store's timeline: at the monotonic instant `at`, the store's clock read at
/// least `store_time`.
#[derive(Debug, Clone, Copy)]
pub struct Witness {
    store_time: DateTime<Utc>,
    sent: Instant,
    at: Instant,
    wall_sent: DateTime<Utc>,
    wall_at: DateTime<Utc>,
}

impl Witness {
    /// A time the store's clock has certainly reached by the monotonic instant `now`.
    pub fn store_now(&self, now: Instant) -> DateTime<Utc> {
        clock::add_saturating(self.store_time, now.saturating_duration_since(self.at))
    }

    /// When the check behind this witness was answered (monotonic).
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    pub fn taken_at(&self) -> Instant {
        self.at
    }

    /// This node's offset from the store's clock at the monotonic instant `now`, when its
    /// wall clock reads `wall`: see the module docs.
    pub fn offset_at(&self, now: Instant, wall: DateTime<Utc>) -> ClockOffset {
        // Bounds at the check itself, moved along by the monotonic time since, compared
        // with the wall clock now: a wall clock stepped since the check shows at once.
        let low = self.store_now(now);
        let high = clock::add_saturating(
            clock::add_saturating(self.store_time, RESOLUTION),
            now.saturating_duration_since(self.sent),
        );
        let ms = |t: DateTime<Utc>| t.signed_duration_since(wall).num_milliseconds();
        ClockOffset {
            low_ms: ms(low),
            high_ms: ms(high),
        }
    }

    /// The offset as measured at the check, from the wall readings taken around it.
    fn measured(&self) -> ClockOffset {
        let ms = |t: DateTime<Utc>| self.store_time.signed_duration_since(t).num_milliseconds();
        ClockOffset {
            low_ms: ms(self.wall_at),
            high_ms: ms(self.wall_sent).saturating_add(RESOLUTION_MS),
        }
    }
}

/// This node's view of the store's clock: the last check, and whether the node is within
/// the bound. Shared by every feature of one [`crate::Cairn`] handle.
#[derive(Debug)]
pub struct StoreTime {
    clock: Arc<dyn Clock>,
    max_offset: Duration,
    last: Mutex<Option<Witness>>,
    /// One check at a time: concurrent callers wait for it and share its answer.
    checking: tokio::sync::Mutex<()>,
    /// Whether the last verdict was "beyond the bound" (to warn once per change).
    beyond: Mutex<bool>,
}

impl StoreTime {
    /// A view with no check yet, refusing offsets beyond `max_offset`.
    pub fn new(clock: Arc<dyn Clock>, max_offset: Duration) -> Self {
        Self {
            clock,
            max_offset,
            last: Mutex::new(None),
            checking: tokio::sync::Mutex::new(()),
            beyond: Mutex::new(false),
        }
    }

    /// The bound on this node's offset.
    pub fn max_offset(&self) -> Duration {
        self.max_offset
    }

    /// The last check's witness, if it is younger than [`MAX_WITNESS_AGE`]. No request.
    pub fn cached(&self) -> Option<Witness> {
        let now = self.clock.monotonic();
        let w = (*self.last.lock().unwrap_or_else(|e| e.into_inner()))?;
        (now.saturating_duration_since(w.at) < MAX_WITNESS_AGE).then_some(w)
    }

    /// This node's offset now, from the last check (`None` before any). No request.
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    pub fn offset(&self) -> Option<ClockOffset> {
        let w = (*self.last.lock().unwrap_or_else(|e| e.into_inner()))?;
        Some(w.offset_at(self.clock.monotonic(), self.clock.now()))
    }

    /// Checks the clock against the store's now (two requests), whatever the last check.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped check leaves the last one in use; its only write is the scratch
    /// object `_cairn/clock.json`, which holds no state.
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    pub async fn check(&self, store: &Store, node: &str) -> Result<Witness> {
        let _one = self.checking.lock().await;
        self.check_locked(store, node).await
    }

    async fn check_locked(&self, store: &Store, node: &str) -> Result<Witness> {
        let body = serde_json::json!({ "kind": "clock", "node": node });
        let wall_sent = self.clock.now();
        let sent = self.clock.monotonic();
        let store_time = store
            .clock_check(Bytes::from(body.to_string().into_bytes()))
            .await?;
        let w = Witness {
            store_time,
            sent,
            at: self.clock.monotonic(),
            wall_sent,
            wall_at: self.clock.now(),
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(w);
        let offset = w.measured();
        crate::telemetry::clock_offset(offset.estimate_ms());
        self.judge(offset);
        Ok(w)
    }

    /// A witness for a rule that needs the store's time: the last check while it is young
    /// enough and puts this node within the bound, else a new check (two requests).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn witness(&self, store: &Store, node: &str) -> Result<Witness> {
        if let Some(w) = self.usable() {
            return Ok(w);
        }
        let _one = self.checking.lock().await;
        // Another caller may have checked while we waited.
        if let Some(w) = self.usable() {
            return Ok(w);
        }
        self.check_locked(store, node).await
    }

    /// The last check's witness if a rule may use it without another check: it is young
    /// enough and puts this node within the bound now; or it is young, put the node beyond
    /// the bound when it was made, and still does (that verdict stands for
    /// [`RECHECK_BEYOND`]). A check that found the node within the bound while its clock now
    /// reads beyond it means the wall clock moved since: it is checked again.
    fn usable(&self) -> Option<Witness> {
        let w = self.cached()?;
        let now = self.clock.monotonic();
        if !w.offset_at(now, self.clock.now()).beyond(self.max_offset) {
            return Some(w);
        }
        let young = now.saturating_duration_since(w.at) < RECHECK_BEYOND;
        (young && w.measured().beyond(self.max_offset)).then_some(w)
    }

    /// Whether `w` puts this node's clock beyond the bound now; says so (a warning) when
    /// that verdict changes.
    pub fn beyond(&self, w: &Witness) -> bool {
        let offset = w.offset_at(self.clock.monotonic(), self.clock.now());
        self.judge(offset)
    }

    fn judge(&self, offset: ClockOffset) -> bool {
        let beyond = offset.beyond(self.max_offset);
        let mut was = self.beyond.lock().unwrap_or_else(|e| e.into_inner());
        if beyond != *was {
            if beyond {
                warn!(
                    offset_ms = offset.estimate_ms(),
                    bound_ms = clock::millis(self.max_offset),
                    "{offset}, beyond the {:?} bound: this node takes over no lease by expiry, \
                     claims no turn and calls no node suspect or offline until its clock is \
                     corrected",
                    self.max_offset
                );
            } else {
                info!(
                    offset_ms = offset.estimate_ms(),
                    "{offset}: within the bound again"
                );
            }
            *was = beyond;
        }
        beyond
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000_i64.checked_add(s).unwrap(), 0).unwrap()
    }

    fn witness(store: i64, wall: i64) -> Witness {
        let now = Instant::now();
        Witness {
            store_time: t(store),
            sent: now,
            at: now,
            wall_sent: t(wall),
            wall_at: t(wall),
        }
    }

    #[test]
    fn an_offset_interval_that_holds_zero_is_never_beyond() {
        let o = ClockOffset {
            low_ms: -900,
            high_ms: 100,
        };
        assert_eq!(o.at_least(), Duration::ZERO);
        assert!(!o.beyond(Duration::ZERO));
    }

    #[test]
    fn a_clock_a_minute_ahead_is_beyond_a_two_second_bound_and_says_ahead() {
        let w = witness(0, 60);
        let o = w.measured();
        assert_eq!((o.low_ms, o.high_ms), (-60_000, -59_000));
        assert!(o.beyond(Duration::from_secs(2)));
        assert!(o.to_string().contains("59.5 s ahead of"), "{o}");
        let behind = witness(60, 0).measured();
        assert!(behind.beyond(Duration::from_secs(2)));
        assert!(behind.to_string().contains("behind"), "{behind}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_store_time_moves_with_the_monotonic_clock_and_the_offset_with_the_wall() {
        let w = witness(0, 0);
        tokio::time::advance(Duration::from_secs(10)).await;
        let now = Instant::now();
        assert_eq!(w.store_now(now), t(10));
        // The wall clock was stepped an hour ahead since the check: seen without a request.
        let o = w.offset_at(now, t(10 + 3600));
        assert!(o.beyond(Duration::from_secs(2)));
        assert!(o.high_ms <= -3_599_000, "{o:?}");
        // In step: within the bound.
        assert!(!w.offset_at(now, t(10)).beyond(Duration::from_secs(2)));
    }
}
