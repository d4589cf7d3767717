//! A held lock ([`HeldLock`]): its renewal in the background, its loss, and its release
//! (also on drop).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock;
use crate::error::{Error, Result};
use crate::log::{Audit, AuditEvent};
use crate::manifest::held::{self, Held, HeldState, Keep, Released, Renewal};
use crate::manifest::{Manifest, Manifests, Snapshot};
use crate::retry::jittered;
use crate::store::Name;

use crate::loss::LossReason;

use super::info::{info_of, LockInfo};
use super::options::LockOptions;
use super::record::{FencingToken, LockRecord, StoredState};

/// The claim a lease holds: the newest lock version of ours, its deadline and its loss.
type HeldClaim = Held<LockRecord, LossReason, ()>;

/// A held lock. Renews itself in the background at [`LockOptions::renew_interval`] and
/// signals loss through [`HeldLock::lost`] / [`HeldLock::loss_token`]. Release it with
/// [`HeldLock::release`]; dropping it releases it in the background when a tokio runtime is
/// available.
#[derive(Debug)]
pub struct HeldLock {
    token: FencingToken,
    held: HeldClaim,
    /// What a release needs, shared with the release a dropped lease sends off.
    release: Arc<Release>,
}

/// The one state a release reads: the lock, its manifest and claim, and where a release is
/// reported. [`HeldLock::release`] runs it; a dropped lease hands it to a background task.
#[derive(Debug)]
struct Release {
    name: Name,
    manifest: Manifest<LockRecord>,
    shared: Arc<Mutex<HeldState<LockRecord, LossReason, ()>>>,
    manifests: Arc<Manifests>,
    free: FreeCache,
    audit: Option<Audit>,
}

/// The last version of each lock a client saw released or broken, so its next acquire can
/// write over it at once (one request) instead of reading it first. A release adds to it.
pub(super) type FreeCache = Arc<Mutex<HashMap<String, Snapshot<LockRecord>>>>;

/// What a held lock takes over from the lock client that acquired it.
pub(super) struct Handover<'a> {
    pub(super) options: &'a LockOptions,
    pub(super) manifests: &'a Arc<Manifests>,
    pub(super) free: &'a FreeCache,
    pub(super) audit: Option<&'a Audit>,
}

impl HeldLock {
    pub(super) fn start(
        from: Handover<'_>,
        name: Name,
        manifest: Manifest<LockRecord>,
        snapshot: Snapshot<LockRecord>,
        sent: Instant,
        sent_boot: Instant,
    ) -> Self {
        let options = from.options.clone();
        let manifests = Arc::clone(from.manifests);
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
            free: Arc::clone(from.free),
            audit: from.audit.cloned(),
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

    /// The lock as this lease last wrote it, in the shape [`Locks::show`](super::Locks::show) gives
    /// it.
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
    /// [`Error::LockLost`] with the reason and writes nothing: the caller's work may have
    /// overlapped another holder's, and it must know. That takes proof: a version of another
    /// node's written over ours while it was live. A tombstone answered with a refusal after it
    /// landed (a retried request), and overtaken by later holders before it could be read back,
    /// is a release; when the store can no longer show which version followed ours (etag CAS
    /// keeps only the newest), the outcome is [`Error::Ambiguous`], never a loss.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: dropped while the renewals stop, the lease is released in the
    /// background, as a dropped [`HeldLock`] is; dropped during its closing write, the tombstone
    /// may or may not have landed, and if not the lease expires after its ttl.
    pub async fn release(mut self) -> Result<()> {
        self.held.stop().await;
        self.release.run().await
    }
}

impl Drop for HeldLock {
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
        Err(Error::LockLost {
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
    options: LockOptions,
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

    /// The protocol record changed under this node: no renewal can be written any more, so
    /// the lease is lost now rather than at its deadline (its command stops at once).
    fn fatal(&self, e: &Error) -> Option<LossReason> {
        match e {
            Error::ProtocolChanged { .. } => Some(self.lost(LossReason::Unavailable {
                error: e.to_string(),
            })),
            _ => None,
        }
    }
}
