//! A held claim: one manifest version owned by one node's session, kept alive by a
//! background task, and lost when a foreign write replaces it.
//!
//! Leases ([`crate::lock::HeldLock`]) and heartbeats ([`crate::node::Heartbeater`]) both hold
//! a claim this way. The core here owns what they share: the newest version known to be
//! ours, the local deadline after which the claim counts as lost, the loss reason once it is
//! lost (published through a [`CancellationToken`]), the release flag, and the task, stopped
//! when the handle is dropped — and the renewal loop, [`keep`]: renew when due with the
//! holder's next body, adopt our own late writes, lose the claim to a foreign write or at the
//! deadline — and the release by tombstone, [`release`]: one conditional write of the
//! holder's closing version over our newest one, on top of our own late writes, never a
//! delete. A turn, claimed once and never renewed, closes its claim with the same write
//! ([`close`]) when it records its outcome. What differs — how a renewal body is made, when
//! to renew, what a loss is called, what is logged and counted — is the holder's [`Keep`];
//! what the tombstone says, and what a beaten release means, is the holder's own.
//!
//! [`own_late_write`] answers the question every holder asks on a conflict: is the version
//! that beat our write an earlier write of ours that landed late? A closing write that was
//! refused is beaten only when the store shows another node's version right after ours;
//! when it no longer can, the outcome is [`Error::Ambiguous`], never a loss that may not
//! have happened (see [`close`]). Deadlines count time the system spent suspended
//! ([`Clock::boottime`]).

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Manifest, Snapshot, Write};
use crate::clock::{sleep_until_boottime, Clock};
use crate::error::Error;

/// A manifest body written by one session of a claim (a lease, a heartbeat, a turn).
pub(crate) trait ClaimBody {
    /// The session that wrote this version: unique to one acquisition, join or turn.
    fn session(&self) -> &str;
    /// Whether this version still holds the claim open (held, alive, unfinished). A
    /// version of ours that closed the claim is not a late write to carry on from.
    fn is_open(&self) -> bool;
}

/// Whether `latest`, the version that beat our conditional write on top of `ours`, is an
/// earlier write of our own session that landed after we gave up on it (a cut-short request
/// that took effect after all), and still holds the claim open. Such a version is adopted
/// and written over; any other is a foreign write.
pub(crate) fn own_late_write<T: ClaimBody>(ours: &Snapshot<T>, latest: &Snapshot<T>) -> bool {
    latest.body.session() == ours.body.session() && latest.body.is_open()
}

/// What a held claim's handle and its task share.
#[derive(Debug)]
pub(crate) struct HeldState<T, R, X> {
    /// The newest version of our claim known to be stored.
    pub snapshot: Snapshot<T>,
    /// When this holder must consider the claim lost (`None`: never by time alone), on
    /// [`Clock::boottime`]'s timeline: time the system spent suspended counts.
    pub deadline: Option<Instant>,
    /// Why the claim was lost, once it was.
    pub lost: Option<R>,
    /// Set once released (explicitly or on drop).
    pub released: bool,
    /// What else the user keeps with the claim (a latency average, …).
    pub extra: X,
}

/// What a release found in the shared state.
#[derive(Debug)]
enum Release<T, R> {
    /// Released before: nothing to do.
    Already,
    /// The claim was lost first, for this reason: nothing of ours to release.
    Lost(R),
    /// Ours: write the tombstone over this version.
    Ours(Snapshot<T>),
}

/// What [`release`] came to.
#[derive(Debug)]
pub(crate) enum Released<T, R> {
    /// Released before: nothing written.
    Already,
    /// The claim was lost before the release, for this reason: nothing written.
    Lost(R),
    /// Our tombstone is stored; here it is.
    Written(Snapshot<T>),
    /// A foreign version beat the tombstone: `latest` (`None`: the manifest is gone) came
    /// after `ours`, our newest version. Nothing of ours was written over it.
    Beaten {
        /// Our newest version, the one the tombstone was to follow.
        ours: Snapshot<T>,
        /// The version that beat it.
        latest: Option<Snapshot<T>>,
    },
}

/// What [`close`] came to.
#[derive(Debug)]
pub(crate) enum Closed<T> {
    /// Our closing version is stored; here it is.
    Written(Snapshot<T>),
    /// A foreign version beat it: `latest` (`None`: the manifest is gone) came after `ours`,
    /// our newest version. Nothing of ours was written over it.
    Beaten {
        /// Our newest version, the one the closing version was to follow.
        ours: Snapshot<T>,
        /// The version that beat it.
        latest: Option<Snapshot<T>>,
    },
}

/// Conditional writes [`close`] makes before [`Error::Contention`]: one, plus one for each
/// version of our own session adopted on the way (a late renewal lands at most once; a
/// reconfiguration of a turn keeps its session).
const CLOSE_ATTEMPTS: u32 = 8;

/// Closes a claim of ours: writes `closing(our newest body)` as the version after `ours` (a
/// released lease, a node that left, a turn's outcome). A version that beats it and is a write
/// of our own session that still holds the claim open ([`own_late_write`]) is adopted and
/// written over; any other is [`Closed::Beaten`] when the store shows it came right after ours,
/// else [`Error::Ambiguous`] (see [`after_ours`]). Never a delete.
///
/// # Cancel safety
///
/// Not cancel-safe: a cancelled close may or may not have written.
pub(crate) async fn close<T>(
    m: &Manifest<T>,
    mut ours: Snapshot<T>,
    mut closing: impl FnMut(&T) -> T,
) -> crate::error::Result<Closed<T>>
where
    T: ClaimBody + Serialize + DeserializeOwned + Clone + Send + Sync,
{
    for _ in 0..CLOSE_ATTEMPTS {
        match m.continue_claim(&ours, closing(&ours.body)).await? {
            Write::Written(stored) => return Ok(Closed::Written(stored)),
            Write::Conflict(Some(latest)) if own_late_write(&ours, &latest) => ours = latest,
            Write::Conflict(None) => return Ok(Closed::Beaten { ours, latest: None }),
            Write::Conflict(Some(latest)) => return after_ours(m, ours, latest).await,
        }
    }
    Err(Error::Contention {
        key: m.key().to_string(),
        attempts: CLOSE_ATTEMPTS,
    })
}

/// What a closing write of ours over `ours` came to, given that `latest`, not an open
/// version of our session, is the newest version now.
///
/// A closing write can be answered with a refusal after it landed (a client that retries a
/// 5xx gets 412 for its own write, which took effect the first time). By the time it is
/// read back, later holders may have written over our closing version too: the newest
/// version then says nothing about which version came right after ours. So the claim counts
/// as taken from us only when the store shows it: the version right after ours is a
/// foreign one, built on ours (`latest` itself, when it is that version, or that version
/// read on its own: the version chain keeps it under its own key). When that version is
/// our closing version, the close happened ([`Closed::Written`], as read back). When it
/// cannot be read (etag CAS has overwritten it; the chain collected it), nothing proves
/// either outcome: [`Error::Ambiguous`], never a loss that may not have happened.
async fn after_ours<T>(
    m: &Manifest<T>,
    mut ours: Snapshot<T>,
    latest: Snapshot<T>,
) -> crate::error::Result<Closed<T>>
where
    T: ClaimBody + Serialize + DeserializeOwned + Clone + Send + Sync,
{
    let mut next = Some(latest);
    for _ in 0..CLOSE_ATTEMPTS {
        let number = crate::clock::next_number(m.key(), "version", ours.version)?;
        let after = match next.take().filter(|s| s.version == number) {
            Some(s) => Some(s),
            None => m.version(number).await?,
        };
        let Some(after) = after.filter(|s| s.previous_write_id.as_ref() == Some(&ours.write_id))
        else {
            break;
        };
        if after.body.session() != ours.body.session() {
            return Ok(Closed::Beaten {
                ours,
                latest: Some(after),
            });
        }
        if !after.body.is_open() {
            return Ok(Closed::Written(after));
        }
        // An open version of ours that landed late: what follows it is the question now.
        ours = after;
    }
    Err(Error::Ambiguous {
        key: m.key().to_string(),
        reason: format!(
            "the closing write after version {} was refused, and other writers have written \
             since; the version after ours cannot be read to tell whether ours landed or \
             another node wrote over it",
            ours.version
        ),
    })
}

/// Releases a held claim by tombstone, never by delete: marks it released (once) and,
/// unless it was lost first, [`close`]s it with `tombstone`.
///
/// # Cancel safety
///
/// Not cancel-safe: dropped before its closing write landed, the claim is marked released (no
/// renewal follows) but may stay stored as held until it expires.
pub(crate) async fn release<T, R, X>(
    shared: &Mutex<HeldState<T, R, X>>,
    m: &Manifest<T>,
    tombstone: impl FnMut(&T) -> T,
) -> crate::error::Result<Released<T, R>>
where
    T: ClaimBody + Serialize + DeserializeOwned + Clone + Send + Sync,
    R: Clone,
{
    let ours = match begin_release(shared) {
        Release::Already => return Ok(Released::Already),
        Release::Lost(reason) => return Ok(Released::Lost(reason)),
        Release::Ours(s) => s,
    };
    Ok(match close(m, ours, tombstone).await? {
        Closed::Written(stored) => Released::Written(stored),
        Closed::Beaten { ours, latest } => Released::Beaten { ours, latest },
    })
}

/// The task's side of a held claim: its shared state, its stop signal and its loss signal.
#[derive(Debug)]
pub(crate) struct Keeper<T, R, X> {
    shared: Arc<Mutex<HeldState<T, R, X>>>,
    stop: CancellationToken,
    loss: CancellationToken,
}

impl<T, R, X> Keeper<T, R, X> {
    /// The shared state, locked (a poisoned lock is used as it is: the state is plain data).
    pub(crate) fn state(&self) -> MutexGuard<'_, HeldState<T, R, X>> {
        lock(&self.shared)
    }

    /// Resolves once the handle stops the task (release, leave or drop).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub(crate) async fn stopped(&self) {
        self.stop.cancelled().await;
    }

    /// Records why the claim was lost and signals it to every waiter.
    pub(crate) fn lose(&self, reason: R) {
        self.state().lost = Some(reason);
        self.loss.cancel();
    }
}

/// The handle on a held claim: its shared state and its background task. Dropping it stops
/// the task.
#[derive(Debug)]
pub(crate) struct Held<T, R, X> {
    shared: Arc<Mutex<HeldState<T, R, X>>>,
    stop: CancellationToken,
    loss: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl<T, R, X> Held<T, R, X>
where
    T: Send + 'static,
    R: Clone + Send + 'static,
    X: Send + 'static,
{
    /// Holds `snapshot` and starts `task`, given the task's side of the claim, to keep it.
    pub(crate) fn spawn<F, Fut>(
        snapshot: Snapshot<T>,
        deadline: Option<Instant>,
        extra: X,
        task: F,
    ) -> Self
    where
        F: FnOnce(Keeper<T, R, X>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let shared = Arc::new(Mutex::new(HeldState {
            snapshot,
            deadline,
            lost: None,
            released: false,
            extra,
        }));
        let stop = CancellationToken::new();
        let loss = CancellationToken::new();
        let keeper = Keeper {
            shared: Arc::clone(&shared),
            stop: stop.clone(),
            loss: loss.clone(),
        };
        let task = tokio::spawn(task(keeper));
        Self {
            shared,
            stop,
            loss,
            task: Some(task),
        }
    }
}

impl<T, R: Clone, X> Held<T, R, X> {
    /// The shared state, locked.
    pub(crate) fn state(&self) -> MutexGuard<'_, HeldState<T, R, X>> {
        lock(&self.shared)
    }

    /// The shared state itself, for a release that outlives the handle (on drop).
    pub(crate) fn shared(&self) -> Arc<Mutex<HeldState<T, R, X>>> {
        Arc::clone(&self.shared)
    }

    /// A token cancelled when the claim is lost. Cancel-safe to wait on.
    pub(crate) fn loss_token(&self) -> CancellationToken {
        self.loss.clone()
    }

    /// Why the claim was lost, if it was.
    pub(crate) fn loss_reason(&self) -> Option<R> {
        self.state().lost.clone()
    }

    /// Waits until the loss is signalled and returns the reason recorded with it (always `Some`
    /// from [`Keeper::lose`]). Never returns while the claim is held.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub(crate) async fn lost(&self) -> Option<R> {
        self.loss.cancelled().await;
        self.loss_reason()
    }
}

/// Marks the claim released (once) and says what there is to release.
fn begin_release<T: Clone, R: Clone, X>(shared: &Mutex<HeldState<T, R, X>>) -> Release<T, R> {
    let mut s = lock(shared);
    if s.released {
        return Release::Already;
    }
    s.released = true;
    match s.lost.clone() {
        Some(reason) => Release::Lost(reason),
        None => Release::Ours(s.snapshot.clone()),
    }
}

impl<T, R, X> Held<T, R, X> {
    /// Stops the task and waits for it to end.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe (a cancelled wait leaves the task stopping on its own).
    pub(crate) async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Stops the task without waiting.
    pub(crate) fn halt(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl<T, R, X> Drop for Held<T, R, X> {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Locks the shared state; a poisoned lock is used as it is (the state is plain data).
pub(crate) fn lock<S>(shared: &Mutex<S>) -> MutexGuard<'_, S> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a renewal's write came to, for [`Keep::next_due`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Renewal {
    /// Our version is stored; the write was sent at this instant.
    Written {
        /// When the renewal was sent.
        sent: Instant,
    },
    /// An earlier write of ours had landed late; it is adopted as our version.
    OwnLateWrite,
    /// The write failed (its outcome may be unknown).
    Failed,
}

/// How one kind of holder keeps its claim: the part of the renewal loop ([`keep`]) that
/// differs between a lease and a heartbeat.
pub(crate) trait Keep<T>: Send + 'static {
    /// Why the claim was lost.
    type Loss: Clone + Send + 'static;
    /// What else the holder keeps with the claim.
    type Extra: Send + 'static;

    /// Whether stopping the holder cuts a renewal in flight short. When not, a stop waits
    /// for it, so a write that follows the stop (a tombstone) goes on top of it.
    fn cut_short(&self) -> bool;

    /// The next version's body, made from the state (our newest version and the extra).
    fn next_body(&mut self, state: &HeldState<T, Self::Loss, Self::Extra>) -> T;

    /// A renewal's outcome came back `took` after it was sent, whatever it was.
    fn settled(&mut self, _state: &mut HeldState<T, Self::Loss, Self::Extra>, _took: Duration) {}

    /// Our renewal is stored as `s`, `took` after it was sent.
    fn renewed(&mut self, s: &Snapshot<T>, took: Duration);

    /// An earlier write of ours, `s`, had landed late and is adopted.
    fn adopted(&mut self, _s: &Snapshot<T>) {}

    /// The renewal failed with `e`.
    fn failed(&mut self, e: &Error);

    /// The local deadline after a renewal sent at `sent` (`None`: the claim has none), both
    /// on [`Clock::boottime`]'s timeline.
    fn hold_until(&self, sent: Instant) -> Option<Instant>;

    /// When to renew next, after `renewal`: `due` is when this renewal was due, `woke`
    /// when the loop woke for it.
    fn next_due(&mut self, renewal: Renewal, due: Instant, woke: Instant) -> Instant;

    /// Why the claim is lost to `latest`, a foreign version that beat our write over `ours`
    /// (`None`: the manifest is gone).
    fn foreign(&self, ours: &Snapshot<T>, latest: Option<Snapshot<T>>) -> Self::Loss;

    /// Why the claim is lost when its deadline passed, `error` saying how renewals went.
    /// `None` for a claim that has no deadline (never called then).
    fn expired(&self, error: String) -> Option<Self::Loss>;

    /// Why the claim ends at once on renewal error `e`, which no retry can mend (the
    /// prefix's protocol record changed under this node). `None` (the default): retry at the
    /// next renewal, until the deadline if the claim has one.
    fn fatal(&self, _e: &Error) -> Option<Self::Loss> {
        None
    }
}

/// The renewal loop of a held claim: renews `m` when due with `k`'s next body, adopts our
/// own late writes, and ends when stopped, when a foreign version beats a renewal, or when
/// the local deadline passes. The first renewal is due at `due`.
///
/// # Cancel safety
///
/// Dropping it ends the renewals, though a renewal in flight may still land: the claim stays
/// stored as it was last written and expires unless another caller renews it.
pub(crate) async fn keep<T, K>(
    m: Manifest<T>,
    mut k: K,
    keeper: Keeper<T, K::Loss, K::Extra>,
    mut due: Instant,
    clock: Arc<dyn Clock>,
) where
    T: ClaimBody + Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    K: Keep<T>,
{
    let lose = |reason: Option<K::Loss>| {
        if let Some(r) = reason {
            keeper.lose(r);
        }
    };
    let mut last_error = String::from("no renewal attempted");
    loop {
        let deadline = keeper.state().deadline;
        tokio::select! {
            _ = keeper.stopped() => return,
            _ = sleep_until_boottime(&*clock, deadline) => {
                lose(k.expired(last_error));
                return;
            }
            _ = tokio::time::sleep_until(due) => {}
        }
        // Woken to renew after the deadline passed (the system slept through both): the
        // claim is lost, whatever a renewal would answer now.
        if deadline.is_some_and(|d| clock.boottime() >= d) {
            lose(k.expired(last_error));
            return;
        }
        let woke = clock.monotonic();
        let (current, body) = {
            let s = keeper.state();
            (s.snapshot.clone(), k.next_body(&s))
        };
        let sent = clock.monotonic();
        let sent_boot = crate::clock::after(sent, clock.suspended());
        let write = m.continue_claim(&current, body);
        let cut_short = k.cut_short();
        let stop = async {
            if cut_short {
                keeper.stopped().await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let result = tokio::select! {
            _ = stop => return,
            _ = sleep_until_boottime(&*clock, deadline) => {
                lose(k.expired(format!("renewal still in flight ({last_error})")));
                return;
            }
            r = write => r,
        };
        let took = clock.monotonic().saturating_duration_since(sent);
        let foreign = {
            let mut s = keeper.state();
            k.settled(&mut s, took);
            match result {
                Ok(Write::Written(new)) => {
                    k.renewed(&new, took);
                    s.snapshot = new;
                    if let Some(d) = k.hold_until(sent_boot) {
                        s.deadline = Some(d);
                    }
                    due = k.next_due(Renewal::Written { sent }, due, woke);
                    None
                }
                Ok(Write::Conflict(Some(latest))) if own_late_write(&current, &latest) => {
                    k.adopted(&latest);
                    s.snapshot = latest;
                    due = k.next_due(Renewal::OwnLateWrite, due, woke);
                    None
                }
                // Unlike a close, a refused renewal that is overtaken cannot hide a clean
                // end: renewals keep the claim open, and nothing of ours closes it while a
                // renewal is in flight (a release stops this task first). So a foreign
                // version after ours wrote over an open version of ours (`current`, or our
                // renewal if it landed): the claim was taken, whichever it was.
                Ok(Write::Conflict(latest)) => Some(latest),
                Err(e) => {
                    if let Some(end) = k.fatal(&e) {
                        drop(s);
                        keeper.lose(end);
                        return;
                    }
                    k.failed(&e);
                    last_error = e.to_string();
                    due = k.next_due(Renewal::Failed, due, woke);
                    None
                }
            }
        };
        if let Some(latest) = foreign {
            keeper.lose(k.foreign(&current, latest));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::envelope::Seen;
    use chrono::{DateTime, Utc};

    #[derive(Debug, Clone, PartialEq)]
    struct Body {
        session: &'static str,
        open: bool,
    }

    impl ClaimBody for Body {
        fn session(&self) -> &str {
            self.session
        }
        fn is_open(&self) -> bool {
            self.open
        }
    }

    fn version(version: u64, session: &'static str, open: bool) -> Snapshot<Body> {
        Snapshot {
            version,
            write_id: format!("w{version}"),
            previous_write_id: None,
            written_by: "n".into(),
            written_at: DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap(),
            body: Body { session, open },
            etag: None,
            object_version: None,
            seen: Seen::default(),
            stored_at: Default::default(),
        }
    }

    #[test]
    fn should_adopt_only_an_open_version_of_our_own_session() {
        let ours = version(3, "a", true);
        assert!(own_late_write(&ours, &version(4, "a", true)));
        assert!(!own_late_write(&ours, &version(4, "a", false)));
        assert!(!own_late_write(&ours, &version(4, "b", true)));
    }

    #[tokio::test(start_paused = true)]
    async fn should_release_once_and_never_after_a_loss() {
        let held: Held<Body, &'static str, ()> =
            Held::spawn(version(1, "a", true), None, (), |_| async {});
        let shared = held.shared();
        assert!(matches!(begin_release(&shared), Release::Ours(s) if s.version == 1));
        assert!(matches!(begin_release(&shared), Release::Already));

        let held: Held<Body, &'static str, ()> =
            Held::spawn(version(1, "a", true), None, (), |k| async move {
                k.lose("taken");
            });
        assert_eq!(held.lost().await, Some("taken"));
        assert!(held.loss_token().is_cancelled());
        assert!(matches!(
            begin_release(&held.shared()),
            Release::Lost("taken")
        ));
    }

    /// A stored claim body, for releases through a real manifest.
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Claim {
        session: String,
        open: bool,
    }

    impl ClaimBody for Claim {
        fn session(&self) -> &str {
            &self.session
        }
        fn is_open(&self) -> bool {
            self.open
        }
    }

    fn claim(session: &str) -> Claim {
        Claim {
            session: session.into(),
            open: true,
        }
    }

    fn closed(c: &Claim) -> Claim {
        Claim {
            open: false,
            ..c.clone()
        }
    }

    fn manifest(strategy: crate::store::protocol::Strategy) -> Manifest<Claim> {
        manifest_on(
            Arc::new(object_store::memory::InMemory::new()),
            "n",
            strategy,
        )
    }

    /// The claim's manifest on `store`, as node `node` writes it.
    fn manifest_on(
        store: Arc<dyn object_store::ObjectStore>,
        node: &str,
        strategy: crate::store::protocol::Strategy,
    ) -> Manifest<Claim> {
        use rand::SeedableRng;
        let store =
            crate::store::Store::new(store, "", crate::store::StoreOptions::default()).unwrap();
        let manifests = Arc::new(super::super::Manifests::new(
            store,
            node.into(),
            Arc::new(crate::clock::SystemClock),
            // A seed of each node's own: write ids must differ between nodes.
            rand::rngs::StdRng::seed_from_u64(node.bytes().map(u64::from).sum()),
            strategy,
            super::super::ManifestOptions::default(),
        ));
        let name = crate::store::Name::new("c").unwrap();
        manifests.open(
            "claim",
            crate::store::keys::manifest(crate::store::keys::Family::Lock, &name),
        )
    }

    /// Writes an open claim of `session` after `current`, which must succeed.
    async fn stored(
        m: &Manifest<Claim>,
        current: Option<&Snapshot<Claim>>,
        session: &str,
    ) -> Snapshot<Claim> {
        match m.write(current, claim(session)).await.unwrap() {
            Write::Written(s) => s,
            Write::Conflict(c) => panic!("unexpected conflict with {c:?}"),
        }
    }

    /// A held claim on `ours` whose task does nothing.
    fn holding(ours: Snapshot<Claim>) -> Held<Claim, &'static str, ()> {
        Held::spawn(ours, None, (), |_| async {})
    }

    const STRATEGIES: [crate::store::protocol::Strategy; 2] = [
        crate::store::protocol::Strategy::EtagCas,
        crate::store::protocol::Strategy::VersionChain,
    ];

    #[tokio::test]
    async fn should_release_by_tombstone_once() {
        for strategy in STRATEGIES {
            let m = manifest(strategy);
            let ours = stored(&m, None, "a").await;
            // A first version starts at a floor (`clock::floor`); what matters is the + 1.
            let v2 = ours.version + 1;
            let held = holding(ours);
            let r = release(&held.shared(), &m, closed).await.unwrap();
            assert!(
                matches!(&r, Released::Written(t) if t.version == v2 && !t.body.open),
                "{strategy:?}: {r:?}"
            );
            let again = release(&held.shared(), &m, closed).await.unwrap();
            assert!(matches!(again, Released::Already), "{strategy:?}");
            assert_eq!(m.load().await.unwrap().unwrap().version, v2, "{strategy:?}");
        }
    }

    #[tokio::test]
    async fn should_release_on_top_of_our_own_late_write() {
        for strategy in STRATEGIES {
            let m = manifest(strategy);
            let ours = stored(&m, None, "a").await;
            // A renewal of ours that landed after we stopped waiting for it.
            stored(&m, Some(&ours), "a").await;
            let v3 = ours.version + 2;
            let held = holding(ours);
            let r = release(&held.shared(), &m, closed).await.unwrap();
            assert!(
                matches!(&r, Released::Written(t) if t.version == v3 && !t.body.open),
                "{strategy:?}: {r:?}"
            );
        }
    }

    #[tokio::test]
    async fn should_write_nothing_over_a_foreign_version_or_after_a_loss() {
        for strategy in STRATEGIES {
            let m = manifest(strategy);
            let ours = stored(&m, None, "a").await;
            stored(&m, Some(&ours), "b").await;
            let (v1, v2) = (ours.version, ours.version + 1);
            let held = holding(ours.clone());
            let r = release(&held.shared(), &m, closed).await.unwrap();
            assert!(
                matches!(&r, Released::Beaten { ours, latest: Some(l) }
                    if ours.version == v1 && l.version == v2 && l.body.session == "b"),
                "{strategy:?}: {r:?}"
            );
            let stored = m.load().await.unwrap().unwrap();
            assert_eq!(
                (stored.version, stored.body),
                (v2, claim("b")),
                "{strategy:?}"
            );

            let lost: Held<Claim, &'static str, ()> =
                Held::spawn(ours, None, (), |k| async move { k.lose("taken") });
            assert_eq!(lost.lost().await, Some("taken"));
            let r = release(&lost.shared(), &m, closed).await.unwrap();
            assert!(matches!(r, Released::Lost("taken")), "{strategy:?}");
            assert_eq!(m.load().await.unwrap().unwrap().version, v2, "{strategy:?}");
        }
    }

    /// Once armed, lets other nodes write `sessions` (each an open version, then its closed
    /// one for all but the last) after the next put commits and before it is answered: the
    /// store moved on past our write while its answer was on the way.
    #[cfg(feature = "test-util")]
    struct Overtake {
        armed: std::sync::atomic::AtomicBool,
        others: std::sync::OnceLock<Manifest<Claim>>,
        sessions: &'static [&'static str],
    }

    #[cfg(feature = "test-util")]
    #[async_trait::async_trait]
    impl crate::store::fault::Hook for Overtake {
        async fn committed(
            &self,
            _path: &object_store::path::Path,
            result: object_store::PutResult,
        ) -> object_store::Result<object_store::PutResult> {
            let armed = self.armed.swap(false, std::sync::atomic::Ordering::SeqCst);
            if let (true, Some(m)) = (armed, self.others.get()) {
                for (i, session) in self.sessions.iter().enumerate() {
                    let current = m.load().await.unwrap();
                    let open = stored(m, current.as_ref(), session).await;
                    if i < self.sessions.len().saturating_sub(1) {
                        let _ = m.write(Some(&open), closed(&open.body)).await.unwrap();
                    }
                }
            }
            Ok(result)
        }
    }

    /// Our manifest on a fault store over `inner`, and the hook that overtakes our writes.
    #[cfg(feature = "test-util")]
    fn overtaken(
        strategy: crate::store::protocol::Strategy,
        sessions: &'static [&'static str],
    ) -> (
        Manifest<Claim>,
        Arc<crate::store::fault::FaultStore>,
        Arc<Overtake>,
    ) {
        let inner: Arc<dyn object_store::ObjectStore> =
            Arc::new(object_store::memory::InMemory::new());
        let hook = Arc::new(Overtake {
            armed: std::sync::atomic::AtomicBool::new(false),
            others: std::sync::OnceLock::new(),
            sessions,
        });
        let _ = hook
            .others
            .set(manifest_on(Arc::clone(&inner), "other", strategy));
        struct Shared(Arc<Overtake>);
        #[async_trait::async_trait]
        impl crate::store::fault::Hook for Shared {
            async fn committed(
                &self,
                path: &object_store::path::Path,
                result: object_store::PutResult,
            ) -> object_store::Result<object_store::PutResult> {
                self.0.committed(path, result).await
            }
        }
        let fault = Arc::new(crate::store::fault::FaultStore::with_hook(
            inner,
            1,
            Shared(Arc::clone(&hook)),
        ));
        let through: Arc<dyn object_store::ObjectStore> = fault.clone();
        let ours = manifest_on(through, "n", strategy);
        (ours, fault, hook)
    }

    /// Our closing write lands, is answered 412 (a client's retry of a 5xx refused for our
    /// own write), and before it is read back two other holders have come and gone over it.
    /// That is a release, never a loss: the chain reads the version after ours (our
    /// tombstone); etag CAS cannot see it any more, and says it cannot tell.
    #[cfg(feature = "test-util")]
    #[tokio::test]
    async fn should_not_call_a_release_overtaken_by_later_holders_a_loss() {
        use crate::store::fault::{Fault, Op, Rule};
        for strategy in STRATEGIES {
            let (m, fault, hook) = overtaken(strategy, &["b", "c"]);
            let ours = stored(&m, None, "a").await;
            // The first version numbers from a floor (`clock::floor`); the rest follow it.
            let first = ours.version;
            let held = holding(ours);
            hook.armed.store(true, std::sync::atomic::Ordering::SeqCst);
            fault.add(Rule::times(Op::Put, "", Fault::CommitThenStatus(412), 1));
            let r = release(&held.shared(), &m, closed).await;
            assert!(
                !matches!(r, Ok(Released::Beaten { .. }) | Ok(Released::Lost(_))),
                "{strategy:?}: a release that landed was reported as beaten: {r:?}"
            );
            match strategy {
                crate::store::protocol::Strategy::VersionChain => assert!(
                    matches!(&r, Ok(Released::Written(t)) if t.version == first + 1 && !t.body.open),
                    "{strategy:?}: {r:?}"
                ),
                _ => assert!(
                    matches!(&r, Err(Error::Ambiguous { .. })),
                    "{strategy:?}: {r:?}"
                ),
            }
            let latest = m.load().await.unwrap().unwrap();
            assert_eq!(
                (latest.version, latest.body),
                (first + 4, claim("c")),
                "{strategy:?}"
            );
        }
    }

    /// Another node wrote over our live version, and then wrote again, before our release:
    /// where the store still shows the version after ours (the chain), the release is
    /// beaten by it, named; where it does not (etag CAS), the outcome cannot be told.
    #[tokio::test]
    async fn should_name_the_version_that_wrote_over_ours_only_when_it_can_be_read() {
        for strategy in STRATEGIES {
            let m = manifest(strategy);
            let ours = stored(&m, None, "a").await;
            let first = ours.version;
            let taken = stored(&m, Some(&ours), "b").await;
            stored(&m, Some(&taken), "b").await;
            let held = holding(ours);
            let r = release(&held.shared(), &m, closed).await;
            match strategy {
                crate::store::protocol::Strategy::VersionChain => assert!(
                    matches!(&r, Ok(Released::Beaten { ours, latest: Some(l) })
                        if ours.version == first && l.version == first + 1 && l.body.session == "b"),
                    "{strategy:?}: {r:?}"
                ),
                _ => assert!(
                    matches!(&r, Err(Error::Ambiguous { .. })),
                    "{strategy:?}: {r:?}"
                ),
            }
            assert_eq!(
                m.load().await.unwrap().unwrap().version,
                first + 2,
                "{strategy:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn should_stop_the_task_when_dropped() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let held: Held<Body, &'static str, ()> =
            Held::spawn(version(1, "a", true), None, (), |k| async move {
                k.stopped().await;
                let _ = tx.send(());
            });
        drop(held);
        // Aborted or stopped: either way the task ends and never holds on.
        let _ = rx.await;
    }
}
