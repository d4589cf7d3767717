//! Leases: locks with fencing tokens, background renewal, loss notification and safe
//! takeover, on a plain bucket.
//!
//! A lock is a manifest of kind `lock` at `locks/<name>/`. Acquiring writes a version
//! marked held by this node; renewing writes the next version; releasing writes a version
//! marked released (a tombstone: nothing is ever deleted, so versions and fencing tokens
//! never go backwards). An operator's break writes a version marked broken.
//!
//! # Fencing
//!
//! A lease's [`FencingToken`] is the manifest version it was acquired at. Every transition
//! raises the version, so a later holder's token is always higher than any earlier
//! holder's. Pass the token to whatever the lease protects and have it refuse lower ones.
//!
//! # Timing rules (see [`LeaseOptions`] for the defaults and their reasons)
//!
//! - **Holder stops first.** The holder treats its lease as lost at
//!   `last successful renewal sent + ttl − safety_margin − stop_grace`, measured on its own
//!   monotonic clock, even if it cannot reach the store to find out. `stop_grace` is the
//!   time its work needs to stop once told (for `cairn lock run`, the SIGTERM→SIGKILL
//!   grace), so the work has stopped by `sent + ttl − safety_margin`: before either takeover
//!   rule below can fire, since an observer's first sight of a version comes after it was
//!   sent, and the store wrote it (its `Last-Modified`, which the expiry rule reads) after it
//!   was sent too.
//!   Options that leave no room for a renewal in that budget are refused
//!   ([`LeaseOptions::validate`]).
//! - **A break is a revocation, not a takeover.** [`Locks::break_lock`] writes a version
//!   marked broken that keeps the holder, session and expiry. The holder learns at its next
//!   renewal ([`LossReason::Broken`]) and stops; other nodes treat a broken lease like a held
//!   one, so they acquire only once it can no longer be in use.
//! - **Takeover without trusting clocks.** Another node takes over an unreleased lease only
//!   when it has itself observed the same version unchanged for `ttl + takeover_margin` on
//!   its monotonic clock, or when the store's own timeline shows the lease expired: the
//!   store wrote its newest version ([`Snapshot::stored_at`], the store's `Last-Modified`)
//!   more than `ttl + takeover_margin + RESOLUTION` before a point the store's clock has
//!   certainly reached (`src/store/time.rs`). No node's wall clock enters either rule:
//!   not the holder's (`expires_at` is informational) and not the observer's. A node whose
//!   wall clock is measured beyond the bound
//!   ([`crate::manifest::ManifestOptions::max_clock_offset`]) from the store's does not take
//!   over by expiry at all, and says so.
//!
//! Both takeover paths happen after the holder's deadline as long as clock *rates* agree
//! (the holder's monotonic clock, the observer's and the store's): the holder sent its
//! newest version before the store wrote it, so its deadline falls before
//! `stored_at + RESOLUTION + ttl − safety_margin`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock;
use crate::error::{Error, Result};
use crate::log::{Acquisition, Audit, AuditEvent};
use crate::manifest::held::{self, ClaimBody, Held, HeldState, Keep, Released, Renewal};
use crate::manifest::listing::Entry;
use crate::manifest::{Change, Collection, Manifest, Manifests, Revalidated, Snapshot, Written};
use crate::retry::{jittered, Backoff};
use crate::store::keys::{self, Family};
use crate::store::{Name, WriteId};
use futures::StreamExt;

/// The manifest kind of locks.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const KIND: &str = "lock";

/// A lease's fencing token: the manifest version it was acquired at. Strictly increasing
/// across holders, never reused, but not consecutive: renewals and releases write versions
/// too, so the next holder's token is usually several above the last. Guard a resource with
/// it by comparing (refuse a write whose token is below the highest seen), never by
/// expecting the next number; [`crate::fenced`] does this for objects in the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FencingToken(pub u64);

impl std::fmt::Display for FencingToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What the stored lock says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoredState {
    /// Held by `holder` until released, broken or expired.
    Held,
    /// Released by its holder.
    Released,
    /// Ended by an operator's break.
    Broken,
}

/// The body of a lock manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockRecord {
    /// Held, released or broken.
    pub state: StoredState,
    /// The node that holds (or last held, or broke) the lock.
    pub holder: String,
    /// Unique id of one acquisition, so a node can tell its own writes from a restarted
    /// copy of itself.
    pub session: String,
    /// The fencing token of the current acquisition.
    pub fencing_token: FencingToken,
    /// The holder's ttl, in milliseconds; observers wait this long (plus their margin).
    pub ttl_ms: u64,
    /// When this acquisition began (holder's wall clock).
    pub acquired_at: DateTime<Utc>,
    /// When it was last renewed (holder's wall clock).
    pub renewed_at: DateTime<Utc>,
    /// `renewed_at + ttl` (holder's wall clock). A break keeps the broken lease's value:
    /// the lock stays blocked until that lease can no longer be in use.
    pub expires_at: DateTime<Utc>,
    /// The operator (node id) who broke this lease, when `state` is broken. `holder` and
    /// `session` still name the broken holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken_by: Option<String>,
    /// When the lease was broken (the breaker's wall clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken_at: Option<DateTime<Utc>>,
}

/// The longest ttl a lease may have (one day), and the largest stored `ttl_ms` a reader
/// accepts: a lease that outlives a day is a configuration error, and a larger stored value
/// is corrupt data, never a reason to wait forever or to overflow.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// Lease timing. Every value is configurable; the defaults and their reasons:
#[derive(Debug, Clone)]
pub struct LeaseOptions {
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
    /// once when [`Lease::lost`] fires).
    pub stop_grace: Duration,
}

impl Default for LeaseOptions {
    fn default() -> Self {
        Self::with_ttl(Duration::from_secs(30))
    }
}

impl LeaseOptions {
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

    /// These options with [`LeaseOptions::stop_grace`] set.
    pub fn with_stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// How long after a renewal is sent the holder keeps counting the lease as its own:
    /// `ttl − safety_margin − stop_grace` (validated positive).
    fn hold_for(&self) -> Duration {
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

pub use crate::loss::LossReason;

/// Another node holds the lock.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Busy {
    /// The holder.
    pub holder: String,
    /// The holder's fencing token.
    pub fencing_token: FencingToken,
    /// When the holder's lease expires by its own clock, unless renewed.
    pub expires_at: DateTime<Utc>,
    /// The lock's current version.
    pub version: u64,
    /// The lock as read, in the shape `show` and `list` give it.
    pub lock: LockInfo,
}

/// The outcome of an acquire: a lease, or who holds the lock. Losing is not an error.
#[derive(Debug)]
#[must_use]
pub enum Acquired {
    /// The lock is ours.
    Acquired(Lease),
    /// Another node holds it.
    Busy(Busy),
}

/// A lock as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LockInfo {
    /// The lock's name.
    pub name: String,
    /// Held, expired, released or broken.
    pub state: LockState,
    /// Current or last holder (or the operator who broke it).
    pub holder: String,
    /// The fencing token of the last acquisition.
    pub fencing_token: FencingToken,
    /// The lock's manifest version.
    pub version: u64,
    /// When the last acquisition began.
    pub acquired_at: DateTime<Utc>,
    /// When it was last renewed.
    pub renewed_at: DateTime<Utc>,
    /// When it expires unless renewed.
    pub expires_at: DateTime<Utc>,
    /// Who broke the lease, when it was broken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_by: Option<String>,
    /// When it was broken (the breaker's wall clock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_at: Option<DateTime<Utc>>,
}

/// What [`Locks::break_lease`] did.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Break {
    /// The named lease was held (or had expired unreleased) and is broken now; the lock as
    /// written.
    Broken(LockInfo),
    /// The named lease is the lock's current one but is not held: released, or broken
    /// already. Nothing was written.
    NotHeld(LockInfo),
    /// The lock's current lease has another fencing token (a newer acquisition than the one
    /// the operator inspected, or a token that never was). Nothing was written.
    OtherLease(LockInfo),
}

/// The state of a listed lock, as this node's wall clock sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LockState {
    /// Held and not past `expires_at`.
    Held,
    /// Marked held but past `expires_at`: its holder has stopped renewing.
    Expired,
    /// Released by its holder.
    Released,
    /// Broken by an operator.
    Broken,
}

/// When this node first saw a version of a lock, on its monotonic clock.
#[derive(Debug, Clone)]
struct Observation {
    version: u64,
    write_id: String,
    since: Instant,
}

/// The lock client: acquire, list, show and break locks. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Locks {
    collection: Collection<LockRecord>,
    options: LeaseOptions,
    observations: Arc<Mutex<HashMap<String, Observation>>>,
    /// The last version of each lock this client saw released or broken, so the next
    /// acquire can write over it at once (one request) instead of reading it first.
    free: Arc<Mutex<HashMap<String, Snapshot<LockRecord>>>>,
    /// Where lock transitions are recorded, when switched on.
    audit: Option<Audit>,
}

type FreeCache = Arc<Mutex<HashMap<String, Snapshot<LockRecord>>>>;

enum Attempt {
    Acquired(Lease),
    Busy(Box<(Busy, Snapshot<LockRecord>)>),
}

impl Locks {
    /// A lock client with these options.
    pub fn new(manifests: Arc<Manifests>, options: LeaseOptions) -> Result<Self> {
        options.validate()?;
        Ok(Self {
            collection: Collection::new(manifests, Family::Lock, KIND),
            options,
            observations: Arc::new(Mutex::new(HashMap::new())),
            free: Arc::new(Mutex::new(HashMap::new())),
            audit: None,
        })
    }

    /// Records every acquire, takeover, release and break in an event log topic. The events
    /// are appended in the background ([`Audit::record`]), so a lease is handed over without
    /// waiting for them; keep a clone of `audit` and [`Audit::flush`] it before the process
    /// ends, or the last events may be lost with it.
    pub fn with_audit(mut self, audit: Audit) -> Self {
        self.audit = Some(audit);
        self
    }

    /// The options in force.
    pub fn options(&self) -> &LeaseOptions {
        &self.options
    }

    /// One attempt to acquire `name`. Returns [`Acquired::Busy`] with the holder when the lock
    /// is held and may not be taken over yet.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe (a cancelled attempt may hold the lock in the store until its ttl runs
    /// out).
    pub async fn try_acquire(&self, name: &Name) -> Result<Acquired> {
        let m = self.collection.open(name);
        let current = self.current(name, &m).await?;
        Ok(match self.attempt(name, &m, current).await? {
            Attempt::Acquired(l) => Acquired::Acquired(l),
            Attempt::Busy(b) => Acquired::Busy(b.0),
        })
    }

    /// Acquires `name`, waiting up to `wait` (`None`: without limit). Polls with jittered
    /// backoff, never sleeping past the moment a takeover becomes allowed, and revalidates
    /// cheaply (a 304 when nothing changed).
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe, as [`Locks::try_acquire`].
    pub async fn acquire(&self, name: &Name, wait: Option<Duration>) -> Result<Acquired> {
        let clock = self.collection.manifests().clock();
        let start = clock.monotonic();
        let m = self.collection.open(name);
        let mut current = self.current(name, &m).await?;
        let mut backoff = Backoff::new(self.options.poll_min, self.options.poll_max);
        loop {
            let (busy, seen) = match self.attempt(name, &m, current).await? {
                Attempt::Acquired(l) => return Ok(Acquired::Acquired(l)),
                Attempt::Busy(b) => *b,
            };
            let now = clock.monotonic();
            let waited = now.saturating_duration_since(start);
            let left = match wait {
                Some(w) if waited >= w => return Ok(Acquired::Busy(busy)),
                Some(w) => w.saturating_sub(waited),
                None => Duration::MAX,
            };
            let until_takeover = self.until_takeover(name, &seen);
            let delay = self
                .collection
                .manifests()
                .with_rng(|r| backoff.next_delay(r))
                .max(clock::divide(self.options.poll_min, 2))
                .min(until_takeover.max(Duration::from_millis(1)))
                .min(left);
            debug!(lock = %name, holder = %busy.holder, ?delay, "lock busy; waiting");
            tokio::time::sleep(delay).await;
            current = match m.revalidate(&seen).await? {
                Revalidated::Unchanged => Some(seen),
                Revalidated::Changed(s) => Some(s),
                Revalidated::Missing => None,
            };
        }
    }

    /// The version to start from: the one this client last saw free, else a fresh read.
    async fn current(
        &self,
        name: &Name,
        m: &Manifest<LockRecord>,
    ) -> Result<Option<Snapshot<LockRecord>>> {
        let cached = self
            .free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name.as_str());
        match cached {
            Some(s) => Ok(Some(s)),
            None => m.load().await,
        }
    }

    /// How long until this node may take over the lease in `s`, by either rule.
    fn until_takeover(&self, name: &Name, s: &Snapshot<LockRecord>) -> Duration {
        let clock = self.collection.manifests().clock();
        let wait = self.takeover_wait(name, &s.body).unwrap_or(MAX_TTL);
        let by_observation = self
            .observed_since(name, s)
            .and_then(|since| since.checked_add(wait))
            .map_or(Duration::MAX, |at| {
                at.saturating_duration_since(clock.monotonic())
            });
        // When the store's timeline will show it expired: by the last clock check's witness
        // if there is one, else by this node's own clock (only a wake-up time: the rule
        // itself is checked on the store's timeline when it comes).
        let by_expiry = match (s.stored_at(), self.expiry_age(name, &s.body)) {
            (Some(stored), Ok(age)) => {
                let due = clock::add_saturating(stored, age);
                let now = match self.collection.manifests().store_time().cached() {
                    Some(w) => w.store_now(clock.monotonic()),
                    None => clock.now(),
                };
                clock::until(now, due)
            }
            _ => Duration::MAX,
        };
        by_observation.min(by_expiry)
    }

    /// How old, on the store's clock, the newest version of an unreleased lease must be for
    /// the expiry rule: its stored ttl, our takeover margin, and the store's time resolution
    /// (its `Last-Modified` may be up to that much earlier than the write).
    fn expiry_age(&self, name: &Name, r: &LockRecord) -> Result<Duration> {
        Ok(self
            .takeover_wait(name, r)?
            .saturating_add(crate::store::time::RESOLUTION))
    }

    /// Whether the lease in `s` has expired on the store's timeline (see the module docs,
    /// "Takeover without trusting clocks"). Makes a clock check (two requests) only when no
    /// recent one serves and the lease looks expired by this node's own clock: a lease that
    /// looks live costs nothing more. `false` while this node's clock is beyond the bound.
    async fn expired(&self, name: &Name, s: &Snapshot<LockRecord>) -> Result<bool> {
        let Some(stored) = s.stored_at() else {
            // Never read from the store (our own write): no store time to judge it by.
            return Ok(false);
        };
        let manifests = self.collection.manifests();
        let clock = manifests.clock();
        let time = manifests.store_time();
        let due = clock::add_saturating(stored, self.expiry_age(name, &s.body)?);
        if time.cached().is_none() && clock.now() < due {
            return Ok(false);
        }
        let w = match manifests.witness().await {
            Ok(w) => w,
            Err(e) => {
                // No clock check, no expiry: the observation rule still applies.
                debug!(lock = %name, error = %e, "no clock check: no takeover by expiry");
                return Ok(false);
            }
        };
        if time.beyond(&w) {
            debug!(lock = %name, "clock beyond the bound: no takeover by expiry");
            return Ok(false);
        }
        Ok(w.store_now(clock.monotonic()) >= due)
    }

    /// How long an observer must see a version unchanged before taking it over: the stored
    /// ttl (range-checked: above [`MAX_TTL`] is corrupt) plus our margin.
    fn takeover_wait(&self, name: &Name, r: &LockRecord) -> Result<Duration> {
        let key = keys::manifest(Family::Lock, name);
        let ttl = clock::stored_ms(&key, "ttl_ms", r.ttl_ms, MAX_TTL)?;
        Ok(ttl.saturating_add(self.options.takeover_margin))
    }

    fn observed_since(&self, name: &Name, s: &Snapshot<LockRecord>) -> Option<Instant> {
        let obs = self.observations.lock().unwrap_or_else(|e| e.into_inner());
        obs.get(name.as_str())
            .filter(|o| o.version == s.version && o.write_id == s.write_id)
            .map(|o| o.since)
    }

    /// Records that `s` is the version seen now; returns since when it has been seen.
    fn observe(&self, name: &Name, s: &Snapshot<LockRecord>) -> Instant {
        let now = self.collection.manifests().clock().monotonic();
        let mut obs = self.observations.lock().unwrap_or_else(|e| e.into_inner());
        let o = obs.entry(name.to_string()).or_insert_with(|| Observation {
            version: s.version,
            write_id: s.write_id.clone(),
            since: now,
        });
        if o.version != s.version || o.write_id != s.write_id {
            *o = Observation {
                version: s.version,
                write_id: s.write_id.clone(),
                since: now,
            };
        }
        o.since
    }

    async fn attempt(
        &self,
        name: &Name,
        m: &Manifest<LockRecord>,
        mut current: Option<Snapshot<LockRecord>>,
    ) -> Result<Attempt> {
        let clock = Arc::clone(self.collection.manifests().clock());
        // A conflict with a release or a takeover's loser is worth a second look; bounded.
        for _ in 0..3 {
            let mut taking_over_from = None;
            // A held lease, and a broken one (its holder may still be at work until it next
            // renews), block until one of the takeover rules allows it.
            if let Some(s) = current
                .as_ref()
                .filter(|s| s.body.state != StoredState::Released)
            {
                let since = self.observe(name, s);
                let wait = self.takeover_wait(name, &s.body)?;
                let observed = clock.monotonic().saturating_duration_since(since) >= wait;
                let expired = !observed && self.expired(name, s).await?;
                if !observed && !expired {
                    return Ok(Attempt::Busy(Box::new((
                        busy(name, s, clock.now()),
                        s.clone(),
                    ))));
                }
                warn!(
                    lock = %name, holder = %s.body.holder, version = s.version, observed, expired,
                    "taking over an unreleased lease"
                );
                taking_over_from = Some(s.body.holder.clone());
            }
            let session = self.collection.manifests().with_rng(WriteId::random).0;
            let token = FencingToken(match current.as_ref() {
                Some(c) => clock::next_number(m.key(), "fencing token", c.version)?,
                // A lock created afresh (also after its objects vanished) starts at the floor
                // of now, above every token its earlier incarnation gave (`clock::floor`).
                None => m.next_version(None).await?,
            });
            let now = clock.now();
            let record = LockRecord {
                state: StoredState::Held,
                holder: self.collection.manifests().node().to_string(),
                session: session.clone(),
                fencing_token: token,
                ttl_ms: clock::millis(self.options.ttl),
                acquired_at: now,
                renewed_at: now,
                expires_at: clock::add_saturating(now, self.options.ttl),
                broken_by: None,
                broken_at: None,
            };
            let sent = clock.monotonic();
            let sent_boot = clock::after(sent, clock.suspended());
            // The token is the manifest version: written at the number chosen above.
            match m.write_as(current.as_ref(), token.0, record).await? {
                Written::Written(s) => {
                    info!(lock = %name, fencing_token = %token, "acquired");
                    let how = match taking_over_from {
                        Some(_) => "takeover",
                        None => "free",
                    };
                    crate::telemetry::lock_acquired(name.as_str(), how);
                    if let Some(a) = &self.audit {
                        // Queued: the lease is handed over without waiting for the trail.
                        a.record(AuditEvent::acquired(Acquisition {
                            lock: name.to_string(),
                            holder: s.body.holder.clone(),
                            fencing_token: token.0,
                            previous_holder: taking_over_from.clone(),
                        }));
                    }
                    return Ok(Attempt::Acquired(Lease::start(
                        self,
                        name.clone(),
                        m.clone(),
                        s,
                        sent,
                        sent_boot,
                    )));
                }
                Written::Conflict(latest) => {
                    debug!(lock = %name, "lost the race to acquire; looking again");
                    current = latest;
                }
            }
        }
        match current {
            Some(s) => Ok(Attempt::Busy(Box::new((busy(name, &s, clock.now()), s)))),
            None => Err(Error::Contention {
                key: m.key().to_string(),
                attempts: 3,
            }),
        }
    }

    /// The lock `name`, or `None` if it was never taken.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn show(&self, name: &Name) -> Result<Option<LockInfo>> {
        let now = self.collection.manifests().clock().now();
        let s = self.collection.load(name).await?;
        Ok(s.map(|s| info_of(name.as_str(), &s, now)))
    }

    /// Every lock under the prefix, by name, failing on the first that cannot be read (see
    /// [`Locks::entries`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn list(&self) -> Result<Vec<LockInfo>> {
        self.entries()
            .await?
            .into_iter()
            .map(|e| e.map_err(Error::from))
            .collect()
    }

    /// Every lock under the prefix, by name; one that cannot be read is an
    /// [`Unreadable`](crate::manifest::listing::Unreadable) entry in its place. One LIST per
    /// 1,000 locks and one GET per lock, several in flight
    /// ([`crate::manifest::Collection::entries`]). Only a failed listing is an error.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn entries(&self) -> Result<Vec<Entry<LockInfo>>> {
        let now = self.collection.manifests().clock().now();
        Ok(self
            .collection
            .entries()
            .await?
            .map(|e| e.map(|(n, s)| info_of(n.as_str(), &s, now)))
            .collect()
            .await)
    }

    /// An operator's break: ends the current lease by writing a version marked broken,
    /// which keeps the broken holder, its session and its expiry, and names the operator.
    /// The holder learns at its next renewal ([`LossReason::Broken`]) and stops. Other
    /// nodes still wait as for a held lease (until the broken lease's expiry, or its ttl
    /// observed), so the broken holder has stopped before anyone else acquires: a break
    /// never makes two holders. Returns the lock as it is now, or `None` if it was never
    /// taken. Breaking a lock that is not held changes nothing.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a dropped call may or may not have written, as when an answer is lost;
    /// the stored object is whole either way (each write is one conditional PUT of a whole
    /// object). Read again to learn which.
    pub async fn break_lock(&self, name: &Name) -> Result<Option<LockInfo>> {
        Ok(self.break_if(name, None).await?.map(|(_, info)| info))
    }

    /// An operator's break of one lease, the one with fencing token `token`, as
    /// [`Locks::break_lock`] breaks the current one. The token is compared inside the
    /// compare-and-swap, so a lease acquired after the operator looked is never broken in
    /// its place ([`Break::OtherLease`]). Returns `None` if the lock was never taken.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a dropped call may or may not have written, as when an answer is lost;
    /// the stored object is whole either way (each write is one conditional PUT of a whole
    /// object). Read again to learn which.
    pub async fn break_lease(&self, name: &Name, token: FencingToken) -> Result<Option<Break>> {
        Ok(self.break_if(name, Some(token)).await?.map(|(b, _)| b))
    }

    /// Breaks the current lease of `name` if it is held and, when `token` is given, has that
    /// fencing token.
    async fn break_if(
        &self,
        name: &Name,
        token: Option<FencingToken>,
    ) -> Result<Option<(Break, LockInfo)>> {
        let clock = Arc::clone(self.collection.manifests().clock());
        let node = self.collection.manifests().node().to_string();
        let updated = self
            .collection
            .open(name)
            .update(|cur| match cur {
                Some(s)
                    if s.body.state == StoredState::Held
                        && token.is_none_or(|t| t == s.body.fencing_token) =>
                {
                    let now = clock.now();
                    Change::Write(LockRecord {
                        state: StoredState::Broken,
                        broken_by: Some(node.clone()),
                        broken_at: Some(now),
                        ..s.body.clone()
                    })
                }
                _ => Change::Keep,
            })
            .await?;
        if updated.changed {
            warn!(lock = %name, "lease broken by operator");
            if let (Some(a), Some(s)) = (&self.audit, &updated.snapshot) {
                a.record(AuditEvent::Break {
                    lock: name.to_string(),
                    by: s.body.broken_by.clone(),
                    holder: s.body.holder.clone(),
                    fencing_token: s.body.fencing_token.0,
                    version: s.version,
                });
            }
        }
        let now = clock.now();
        Ok(updated.snapshot.map(|s| {
            let info = info_of(name.as_str(), &s, now);
            let outcome = if updated.changed {
                Break::Broken(info.clone())
            } else if token.is_some_and(|t| t != s.body.fencing_token) {
                Break::OtherLease(info.clone())
            } else {
                Break::NotHeld(info.clone())
            };
            (outcome, info)
        }))
    }
}

fn busy(name: &Name, s: &Snapshot<LockRecord>, now: DateTime<Utc>) -> Busy {
    Busy {
        holder: s.body.holder.clone(),
        fencing_token: s.body.fencing_token,
        expires_at: s.body.expires_at,
        version: s.version,
        lock: info_of(name.as_str(), s, now),
    }
}

fn info_of(name: &str, s: &Snapshot<LockRecord>, now: DateTime<Utc>) -> LockInfo {
    let state = match s.body.state {
        StoredState::Held if s.body.expires_at < now => LockState::Expired,
        StoredState::Held => LockState::Held,
        StoredState::Released => LockState::Released,
        StoredState::Broken => LockState::Broken,
    };
    LockInfo {
        name: name.to_string(),
        state,
        holder: s.body.holder.clone(),
        fencing_token: s.body.fencing_token,
        version: s.version,
        acquired_at: s.body.acquired_at,
        renewed_at: s.body.renewed_at,
        expires_at: s.body.expires_at,
        broken_by: s.body.broken_by.clone(),
        broken_at: s.body.broken_at,
    }
}

/// The claim a lease holds: the newest lock version of ours, its deadline and its loss.
type HeldLock = Held<LockRecord, LossReason, ()>;

impl ClaimBody for LockRecord {
    fn session(&self) -> &str {
        &self.session
    }

    fn is_open(&self) -> bool {
        self.state == StoredState::Held
    }
}

/// A held lock. Renews itself in the background at [`LeaseOptions::renew_interval`] and
/// signals loss through [`Lease::lost`] / [`Lease::loss_token`]. Release it with
/// [`Lease::release`]; dropping it releases it in the background when a tokio runtime is
/// available.
#[derive(Debug)]
pub struct Lease {
    token: FencingToken,
    held: HeldLock,
    /// What a release needs, shared with the release a dropped lease sends off.
    release: Arc<Release>,
}

/// The one state a release reads: the lock, its manifest and claim, and where a release is
/// reported. [`Lease::release`] runs it; a dropped lease hands it to a background task.
#[derive(Debug)]
struct Release {
    name: Name,
    manifest: Manifest<LockRecord>,
    shared: Arc<Mutex<HeldState<LockRecord, LossReason, ()>>>,
    manifests: Arc<Manifests>,
    free: FreeCache,
    audit: Option<Audit>,
}

impl Lease {
    fn start(
        locks: &Locks,
        name: Name,
        manifest: Manifest<LockRecord>,
        snapshot: Snapshot<LockRecord>,
        sent: Instant,
        sent_boot: Instant,
    ) -> Self {
        let options = locks.options.clone();
        let manifests = Arc::clone(locks.collection.manifests());
        let token = snapshot.body.fencing_token;
        // Time the system spends suspended counts against the deadline (see `clock`).
        let deadline = clock::after(sent_boot, options.hold_for());
        let due = clock::after(sent, options.renew_interval);
        let renewer = Renewer {
            name: name.clone(),
            options,
            manifests: Arc::clone(&manifests),
        };
        let (m, c) = (manifest.clone(), Arc::clone(manifests.clock()));
        let held = Held::spawn(snapshot, Some(deadline), (), move |keeper| {
            held::keep(m, renewer, keeper, due, c)
        });
        let release = Arc::new(Release {
            name,
            manifest,
            shared: held.shared(),
            manifests,
            free: Arc::clone(&locks.free),
            audit: locks.audit.clone(),
        });
        Self {
            token,
            held,
            release,
        }
    }

    /// The lock's name.
    pub fn name(&self) -> &Name {
        &self.release.name
    }

    /// This lease's fencing token. Pass it to whatever the lock protects.
    pub fn fencing_token(&self) -> FencingToken {
        self.token
    }

    /// The lock as this lease last wrote it, in the shape [`Locks::show`] gives it.
    pub fn info(&self) -> LockInfo {
        let now = self.release.manifests.clock().now();
        info_of(self.name().as_str(), &self.held.state().snapshot, now)
    }

    /// The local deadline: after this instant (on the monotonic clock, as things stand
    /// now) the lease counts as lost unless renewed. Time the system spends suspended
    /// counts against the lease, so a suspension moves this instant earlier, by as long as
    /// it lasted.
    pub fn deadline(&self) -> Instant {
        let clock = self.release.manifests.clock();
        // A lease always has a deadline (set in `start`); `now` is never used.
        let deadline = self.held.state().deadline;
        let deadline = deadline.unwrap_or_else(|| clock.boottime());
        deadline
            .checked_sub(clock.suspended())
            .unwrap_or_else(|| clock.monotonic())
    }

    /// Whether the lease is still held: not lost, and the local deadline not passed (time
    /// the system spent suspended counted, so a holder that slept past it knows at once).
    pub fn is_held(&self) -> bool {
        let s = self.held.state();
        s.lost.is_none()
            && s.deadline
                .is_some_and(|d| self.release.manifests.clock().boottime() < d)
    }

    /// A token cancelled when the lease is lost. Cancel-safe to wait on.
    pub fn loss_token(&self) -> CancellationToken {
        self.held.loss_token()
    }

    /// Waits until the lease is lost and says why. Never returns for a lease that stays held.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn lost(&self) -> LossReason {
        self.held.lost().await.unwrap_or(LossReason::Unavailable {
            error: "lost".into(),
        })
    }

    /// Why the lease was lost, if it was.
    pub fn loss_reason(&self) -> Option<LossReason> {
        self.held.loss_reason()
    }

    /// Stops renewing and writes a released tombstone (never a delete). A lease that was lost
    /// (taken over, broken, or given up at its deadline), before or at the release, returns
    /// [`Error::LeaseLost`] with the reason and writes nothing: the caller's work may have
    /// overlapped another holder's, and it must know. That takes proof: a version of another
    /// node's written over ours while it was live. A tombstone answered with a refusal after it
    /// landed (a retried request), and overtaken by later holders before it could be read back,
    /// is a release; when the store can no longer show which version followed ours (etag CAS
    /// keeps only the newest), the outcome is [`Error::Ambiguous`], never a loss.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: dropped while the renewals stop, the lease is released in the
    /// background, as a dropped [`Lease`] is; dropped during its closing write, the tombstone
    /// may or may not have landed, and if not the lease expires after its ttl.
    pub async fn release(mut self) -> Result<()> {
        self.held.stop().await;
        self.release.run().await
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.held.halt();
        {
            // Released already, or lost: nothing of ours to release.
            let sh = self.held.state();
            if sh.released || sh.lost.is_some() {
                return;
            }
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let release = Arc::clone(&self.release);
            rt.spawn(async move {
                if let Err(e) = release.run().await {
                    warn!(lock = %release.name, error = %e, "release of a dropped lease failed; it will expire");
                }
            });
        }
    }
}

impl Release {
    /// Writes the released tombstone over our newest version, unless the lease was lost.
    async fn run(&self) -> Result<()> {
        let Self {
            name,
            manifest: m,
            shared,
            manifests,
            free,
            audit,
        } = self;
        let clock = manifests.clock();
        let released = held::release(shared, m, |ours| {
            let now = clock.now();
            LockRecord {
                state: StoredState::Released,
                renewed_at: now,
                expires_at: now,
                ..ours.clone()
            }
        })
        .await?;
        let reason = match released {
            Released::Already => return Ok(()),
            Released::Lost(reason) => reason,
            Released::Written(tombstone) => {
                info!(lock = %name, fencing_token = %tombstone.body.fencing_token, "released");
                if let Some(a) = audit.as_ref() {
                    a.record(AuditEvent::Release {
                        lock: name.to_string(),
                        holder: tombstone.body.holder.clone(),
                        fencing_token: tombstone.body.fencing_token.0,
                    });
                }
                free.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.to_string(), tombstone);
                return Ok(());
            }
            Released::Beaten { ours, latest } => {
                let reason = loss_by(latest.as_ref(), &ours.body.session);
                warn!(lock = %name, %reason, "lease was lost before its release");
                held::lock(shared).lost = Some(reason.clone());
                reason
            }
        };
        Err(Error::LeaseLost {
            lock: name.to_string(),
            reason,
        })
    }
}

/// Why our lease (session `ours`) ended, from the version that beat our write.
fn loss_by(cur: Option<&Snapshot<LockRecord>>, ours: &str) -> LossReason {
    match cur {
        Some(c) if c.body.state == StoredState::Broken && c.body.session == ours => {
            LossReason::Broken {
                by: c
                    .body
                    .broken_by
                    .clone()
                    .unwrap_or_else(|| "an operator".into()),
                version: c.version,
            }
        }
        Some(c) => LossReason::TakenOver {
            holder: c.body.holder.clone(),
            version: c.version,
        },
        None => LossReason::TakenOver {
            holder: "<deleted>".into(),
            version: 0,
        },
    }
}

/// How a lease renews: every `renew_interval` after the last successful renewal was sent,
/// retrying failures every `retry_interval` (jittered), cutting a renewal in flight short
/// on release; lost when taken over, broken, or when the local deadline passes.
struct Renewer {
    name: Name,
    options: LeaseOptions,
    manifests: Arc<Manifests>,
}

impl Renewer {
    fn lost(&self, reason: LossReason) -> LossReason {
        warn!(lock = %self.name, %reason, "lease lost");
        crate::telemetry::lock_lost(self.name.as_str(), reason.label());
        reason
    }
}

impl Keep<LockRecord> for Renewer {
    type Loss = LossReason;
    type Extra = ();

    fn cut_short(&self) -> bool {
        true
    }

    fn next_body(&mut self, state: &HeldState<LockRecord, LossReason, ()>) -> LockRecord {
        let now = self.manifests.clock().now();
        LockRecord {
            renewed_at: now,
            expires_at: clock::add_saturating(now, self.options.ttl),
            ..state.snapshot.body.clone()
        }
    }

    fn renewed(&mut self, s: &Snapshot<LockRecord>, _took: Duration) {
        debug!(lock = %self.name, version = s.version, "renewed");
    }

    fn adopted(&mut self, s: &Snapshot<LockRecord>) {
        // Adopted without extending the deadline (`next_due` renews again at once): we do
        // not know when it was sent.
        debug!(lock = %self.name, version = s.version, "found our own earlier renewal");
    }

    fn failed(&mut self, e: &Error) {
        warn!(lock = %self.name, error = %e, "renewal failed; retrying");
    }

    fn hold_until(&self, sent: Instant) -> Option<Instant> {
        Some(clock::after(sent, self.options.hold_for()))
    }

    fn next_due(&mut self, renewal: Renewal, _due: Instant, _woke: Instant) -> Instant {
        let clock = self.manifests.clock();
        match renewal {
            Renewal::Written { sent } => clock::after(sent, self.options.renew_interval),
            Renewal::OwnLateWrite => clock.monotonic(),
            Renewal::Failed => {
                let interval = self.options.retry_interval;
                let retry = self
                    .manifests
                    .with_rng(|r| jittered(interval, clock::divide(interval, 4), r));
                clock::after(clock.monotonic(), retry)
            }
        }
    }

    fn foreign(
        &self,
        ours: &Snapshot<LockRecord>,
        latest: Option<Snapshot<LockRecord>>,
    ) -> LossReason {
        self.lost(loss_by(latest.as_ref(), &ours.body.session))
    }

    fn expired(&self, error: String) -> Option<LossReason> {
        Some(self.lost(LossReason::Unavailable { error }))
    }
}
