//! The lock client ([`Locks`]): acquire, with takeover by observation or by the store's
//! timeline; list, show and break.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::clock;
use crate::error::{Error, Result};
use crate::log::{Acquisition, Audit, AuditEvent};
use crate::manifest::listing::Entry;
use crate::manifest::{Change, Collection, Manifest, Manifests, Revalidated, Snapshot, Write};
use crate::retry::Backoff;
use crate::store::keys::{self, Family};
use crate::store::Name;
use futures::StreamExt;

use super::held::{FreeCache, Handover, HeldLock};
use super::info::{info_of, Break, LockInfo};
use super::options::{LockOptions, MAX_TTL};
use super::record::{FencingToken, LockRecord, StoredState};
use super::KIND;

/// The outcome of an acquire: a lease, or who holds the lock. Losing is not an error.
#[derive(Debug)]
#[must_use]
pub enum Acquire {
    /// The lock is ours.
    Held(HeldLock),
    /// Another node holds it.
    Busy(LockInfo),
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
    options: LockOptions,
    observations: Arc<Mutex<HashMap<String, Observation>>>,
    /// The last version of each lock this client saw released or broken, so the next
    /// acquire can write over it at once (one request) instead of reading it first.
    free: FreeCache,
    /// Where lock transitions are recorded, when switched on.
    audit: Option<Audit>,
}

enum Attempt {
    Held(HeldLock),
    Busy(Box<(LockInfo, Snapshot<LockRecord>)>),
}

impl Locks {
    /// A lock client with these options.
    pub fn new(manifests: Arc<Manifests>, options: LockOptions) -> Result<Self> {
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
    pub fn options(&self) -> &LockOptions {
        &self.options
    }

    /// One attempt to acquire `name`. Returns [`Acquire::Busy`] with the holder when the lock
    /// is held and may not be taken over yet.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe (a cancelled attempt may hold the lock in the store until its ttl runs
    /// out).
    pub async fn try_acquire(&self, name: &Name) -> Result<Acquire> {
        let m = self.collection.open(name);
        let current = self.current(name, &m).await?;
        Ok(match self.attempt(name, &m, current).await? {
            Attempt::Held(l) => Acquire::Held(l),
            Attempt::Busy(b) => Acquire::Busy(b.0),
        })
    }

    /// Acquires `name`, waiting up to `wait` (`None`: without limit). Polls with jittered
    /// backoff, never sleeping past the moment a takeover becomes allowed, and revalidates
    /// cheaply (a 304 when nothing changed).
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe, as [`Locks::try_acquire`].
    pub async fn acquire(&self, name: &Name, wait: Option<Duration>) -> Result<Acquire> {
        let clock = self.collection.manifests().clock();
        let start = clock.monotonic();
        let m = self.collection.open(name);
        let mut current = self.current(name, &m).await?;
        let mut backoff = Backoff::new(self.options.poll_min, self.options.poll_max);
        loop {
            let (busy, seen) = match self.attempt(name, &m, current).await? {
                Attempt::Held(l) => return Ok(Acquire::Held(l)),
                Attempt::Busy(b) => *b,
            };
            let now = clock.monotonic();
            let waited = now.saturating_duration_since(start);
            let left = match wait {
                Some(w) if waited >= w => return Ok(Acquire::Busy(busy)),
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
                        info_of(name.as_str(), s, clock.now()),
                        s.clone(),
                    ))));
                }
                warn!(
                    lock = %name, holder = %s.body.holder, version = s.version, observed, expired,
                    "taking over an unreleased lease"
                );
                taking_over_from = Some(s.body.holder.clone());
            }
            let session = self.collection.manifests().write_id().into_string();
            // A lock created afresh (also after its objects vanished) starts at the floor of
            // now, above every token its earlier incarnation gave (`clock::floor`).
            let version = m.next_version(current.as_ref()).await?;
            let token = FencingToken(match current.as_ref() {
                // Above the last holder's token, and (format 3) drawn from time, so that a
                // holder whose versions vanished is below us; on earlier formats the version
                // it is acquired at, as their builds number it (`Manifests::next_start`).
                Some(c) => {
                    let last = c.body.fencing_token.0;
                    self.collection
                        .manifests()
                        .next_start(m.key(), "fencing token", last, version)
                        .await?
                }
                None => version,
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
            match m.write_as(current.as_ref(), version, record).await? {
                Write::Written(s) => {
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
                    return Ok(Attempt::Held(HeldLock::start(
                        Handover {
                            options: &self.options,
                            manifests: self.collection.manifests(),
                            free: &self.free,
                            audit: self.audit.as_ref(),
                        },
                        name.clone(),
                        m.clone(),
                        s,
                        sent,
                        sent_boot,
                    )));
                }
                Write::Conflict(latest) => {
                    debug!(lock = %name, "lost the race to acquire; looking again");
                    current = latest;
                }
            }
        }
        match current {
            Some(s) => Ok(Attempt::Busy(Box::new((
                info_of(name.as_str(), &s, clock.now()),
                s,
            )))),
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
    /// The holder learns at its next renewal ([`LossReason::Broken`](crate::LossReason::Broken)) and stops. Other
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
    /// its place ([`Break::OtherHolder`]). Returns `None` if the lock was never taken.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a dropped call may or may not have written, as when an answer is lost;
    /// the stored object is whole either way (each write is one conditional PUT of a whole
    /// object). Read again to learn which.
    pub async fn break_held(&self, name: &Name, token: FencingToken) -> Result<Option<Break>> {
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
                Break::OtherHolder(info.clone())
            } else {
                Break::NotHeld(info.clone())
            };
            (outcome, info)
        }))
    }
}
