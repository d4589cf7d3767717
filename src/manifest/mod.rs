//! The manifest layer: a versioned JSON document with compare-and-swap.
//!
//! A [`Manifest`] is a handle on one named document (a lock, a stream, a turn, …). It loads
//! the newest version, writes the next one conditionally, and offers
//! [`Manifest::update`]: read, apply a closure, write, and on conflict try again with
//! jittered backoff, up to a bounded number of attempts.
//!
//! Two strategies sit behind the one interface, chosen from the store's probed capabilities
//! ([`Strategy`]) when [`Manifests`] is built; each implements the strategy trait in
//! `protocol.rs`, which works on stored documents whatever their body type:
//!
//! - **etag CAS**: one object, replaced with `If-Match: <etag>`. One request a transition.
//! - **version chain**: one immutable object a version, written with create-if-absent. It
//!   needs only create-if-absent, so it runs on the local filesystem. Old versions are
//!   history; garbage collection keeps the newest [`ManifestOptions::gc_keep`], never
//!   deletes one younger than [`ManifestOptions::gc_min_age`], and deletes oldest first.
//!   That bound lets a writer whose knowledge of the newest version is recent (under half
//!   of `gc_min_age`) skip the verifying listing: one request a transition, and one GET of
//!   the next version's key (a 404) to revalidate or reload. Older knowledge takes a
//!   listing, as does a cold load (with a read of slot 1, where a chain's first version is
//!   kept, while it is still there beside later ones). The proof is in `chain.rs`.
//!
//! Both strategies number a manifest created afresh from a floor drawn from time
//! (`src/clock.rs` (`floor`) of [`Manifests::floor_time`]), not from 1, and +1 a transition,
//! so that a manifest whose every object vanished (a lifecycle rule, a restore, an operator's
//! `rm`) and is created again numbers above everything its earlier incarnation reached: a
//! fencing token, a turn, never goes backwards. Manifests stored by earlier releases, numbered
//! from 1, keep counting from where they are (numbers are only ever compared within one
//! manifest). A version is never reused, and never wraps: a manifest at version `u64::MAX`
//! can be read but not written again ([`Error::Exhausted`]; retire it under a new name).

mod chain;
mod collection;
pub mod envelope;
mod etag;
pub(crate) mod held;
pub mod listing;
mod protocol;

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::debug;

use crate::clock::{next_number, Clock};
use crate::error::{Error, Result};
use crate::retry::Backoff;
use crate::store::keys::Family;
use crate::store::protocol::{draws_numbers, node_family, PROTOCOL_FORMAT};
use crate::store::time::{StoreTime, Witness};
use crate::store::{Key, Name, Store, WriteId};
pub use collection::Collection;
use envelope::RawBody;
pub use envelope::Snapshot;
use protocol::{Draft, Protocol, Wrote};

pub use crate::store::protocol::Strategy;

/// How far behind the floor of now a number that starts something is drawn
/// ([`Manifests::next_start`]): twice the default clock bound (2 s, two nodes each within it of
/// the store's) and the store's time resolution (1 s). A protocol constant, not an option: a
/// node that drew closer to now could draw above a manifest created afresh after it vanished.
const DRAW_BEHIND: Duration = Duration::from_secs(5);

/// The largest random step of a number that starts something when time does not lift it above
/// the last one ([`Manifests::next_start`]).
const DRAW_STEP: u64 = 1024;

/// Tuning of compare-and-swap and of the version chain's garbage collection.
#[derive(Debug, Clone)]
pub struct ManifestOptions {
    /// Attempts [`Manifest::update`] makes before [`Error::Contention`]. Default 64: with
    /// jittered backoff, 16 writers hammering one manifest finish well within it.
    pub max_attempts: u32,
    /// First backoff envelope after a conflict. Default 10 ms (a few S3 round trips).
    pub backoff_initial: Duration,
    /// Largest backoff envelope. Default 1 s.
    pub backoff_max: Duration,
    /// Versions the chain keeps, newest first. Default 8.
    pub gc_keep: usize,
    /// The chain never deletes a version younger than this. Default 10 min: far longer than
    /// any writer can stay stale and still have a write accepted (a lease's ttl is 30 s).
    ///
    /// It also sets how long this client trusts what it knows of a chain's newest version
    /// without a listing: half of it (5 min by default; the other half is the margin for
    /// the store's clock, see `chain.rs`). It is a setting of the prefix, not of one node:
    /// the first node records its value in the prefix's protocol record,
    /// and every later node adopts
    /// the recorded one, whatever it was configured with.
    pub gc_min_age: Duration,
    /// The chain collects garbage after every this many versions. Default 16.
    pub gc_every: u64,
    /// The largest offset between this node's wall clock and the store's that it accepts
    /// for the rules that read time (takeover by expiry, claiming a turn, aging another
    /// node): beyond it, measured by a clock check (`src/store/time.rs`), the node
    /// refuses them and says so. Default 2 s.
    pub max_clock_offset: Duration,
    /// GETs a listing of a whole family keeps in flight at once
    /// ([`Collection::entries`], the cached views). Default 32; 0 counts as 1.
    pub list_concurrency: usize,
}

impl Default for ManifestOptions {
    fn default() -> Self {
        Self {
            max_attempts: 64,
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_secs(1),
            gc_keep: 8,
            gc_min_age: Duration::from_secs(600),
            gc_every: 16,
            max_clock_offset: crate::store::time::DEFAULT_MAX_OFFSET,
            list_concurrency: 32,
        }
    }
}

/// Everything a manifest handle needs: the store, who we are, time, randomness, strategy.
#[derive(Debug)]
pub struct Manifests {
    store: Store,
    node: String,
    clock: Arc<dyn Clock>,
    rng: Mutex<StdRng>,
    /// The strategy in force, with whatever it keeps between calls (the version chain's
    /// recent knowledge of each manifest's newest version).
    protocol: Box<dyn Protocol>,
    options: ManifestOptions,
    /// This node's measure of the store's clock.
    time: StoreTime,
    /// The prefix's format (its protocol record's): where nodes heartbeat, and whether a
    /// number that starts something is drawn from time ([`Manifests::next_start`]).
    format: u32,
}

/// The implementation of `strategy`: the one place the manifest layer looks at which
/// strategy is in force.
fn for_strategy(strategy: Strategy) -> Box<dyn Protocol> {
    match strategy {
        Strategy::EtagCas => Box::new(etag::EtagCas),
        Strategy::VersionChain => Box::new(chain::VersionChain::default()),
    }
}

impl Manifests {
    /// Bundles the manifest layer's dependencies ([`crate::CairnBuilder`] builds it).
    pub(crate) fn new(
        store: Store,
        node: String,
        clock: Arc<dyn Clock>,
        rng: StdRng,
        strategy: Strategy,
        options: ManifestOptions,
    ) -> Self {
        Self {
            time: StoreTime::new(Arc::clone(&clock), options.max_clock_offset),
            store,
            node,
            clock,
            rng: Mutex::new(rng),
            protocol: for_strategy(strategy),
            options,
            format: PROTOCOL_FORMAT,
        }
    }

    /// The layer on a prefix of `format` (its protocol record's; see
    /// [`crate::store::protocol::PROTOCOL_FORMAT`]).
    pub(crate) fn with_format(mut self, format: u32) -> Self {
        self.format = format;
        self
    }

    /// Where nodes heartbeat on this prefix: `nodes/`, or `members/` on a prefix of format 1.
    pub fn node_family(&self) -> Family {
        node_family(self.format)
    }

    /// The number a write that starts something takes after `previous` (a fencing token after
    /// the last holder's, a turn after the last turn), at `key`; `earlier_rule` is what builds
    /// of formats 1 and 2 number it at when that is more than `previous + 1` (a lock's token:
    /// the version it is acquired at; 0 where they number `previous + 1`).
    ///
    /// On a prefix of format 3 and later: the floor of now less [`DRAW_BEHIND`] (`src/clock.rs`
    /// (`floor`) of [`Self::floor_time`]) when that is above `previous`, else `previous` + a
    /// random step of 1 to [`DRAW_STEP`].
    ///
    /// **Why.** A number derived from the stored one alone repeats or goes back when stored
    /// versions vanish without the whole manifest going: on the version chain a lifecycle rule
    /// or an operator's `rm` of the newest version lets a node that knew the version before
    /// write the same slot again, and a restore from backup puts back an older object under
    /// etag CAS. No object is left to tell; time is the one thing nobody can delete. Every
    /// number handed out by `t1` is below the floor of `t1` + 2 s (a clock at most the bound
    /// ahead; the steps since stay within the floor's budget, below), so a number drawn at
    /// `t2` from a clock at most the bound behind is above it when `t2 − t1` is more than
    /// [`DRAW_BEHIND`] + 4 s: the later holder's token is the higher one, and a fenced
    /// resource refuses the earlier. With clocks in step (NTP: milliseconds) 5 s apart
    /// suffices. Closer than that the floor may be below `previous` (a number drawn afresh
    /// moments ago, or by a clock ahead); the random step then makes two drawers from one
    /// `previous` unlikely to draw the same number (1 in [`DRAW_STEP`]), though either may be
    /// the higher.
    ///
    /// **Why behind.** A manifest whose every object vanished is created afresh at the floor of
    /// now ([`Self::first_number`]), and must number above everything drawn before, whichever
    /// clocks drew it: [`DRAW_BEHIND`] is twice the default clock bound and the store's time
    /// resolution, and a node with a wider bound draws further behind. The random step keeps
    /// within the floor's budget: at most 1024 a start (512 on average), a millisecond's worth,
    /// and a start is at least one store round trip; to climb past the floor of now, one lock
    /// would need some 10,000 starts within the 5 s.
    ///
    /// On older formats `previous + 1`, or `earlier_rule` when that is higher: builds of those
    /// formats number so, and a drawn number above theirs would make their next number go
    /// back; and never at or below `previous`, should a prefix once of format 3 (whose tokens
    /// are above their versions) have been re-created at an earlier one. Drawing costs the clock check a
    /// floor takes when no recent one serves (two requests, once in 15 minutes); its error is
    /// returned and nothing is written.
    pub(crate) async fn next_start(
        &self,
        key: &(impl std::fmt::Display + Sync),
        what: &'static str,
        previous: u64,
        earlier_rule: u64,
    ) -> Result<u64> {
        let next = next_number(key, what, previous)?;
        if !draws_numbers(self.format) {
            return Ok(next.max(earlier_rule));
        }
        let behind =
            chrono::Duration::from_std(self.draw_behind()).unwrap_or(chrono::Duration::MAX);
        let t = self
            .floor_time()
            .await?
            .checked_sub_signed(behind)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let floor = crate::clock::floor(key, t)?;
        if floor > previous {
            return Ok(floor);
        }
        // `next` exists, so there is room for a step of 1 at least: the last number is handed
        // out once before `Exhausted`, never skipped over.
        let room = u64::MAX.saturating_sub(previous).max(1);
        let step = self.with_rng(|r| rand::Rng::random_range(r, 1..=DRAW_STEP.min(room)));
        Ok(previous.saturating_add(step).max(next))
    }

    /// How far behind the floor of now [`Self::next_start`] draws: [`DRAW_BEHIND`], or twice
    /// this node's clock bound and the store's resolution when that is more.
    fn draw_behind(&self) -> Duration {
        self.options
            .max_clock_offset
            .saturating_mul(2)
            .saturating_add(crate::store::time::RESOLUTION)
            .max(DRAW_BEHIND)
    }

    /// A handle on the manifest of `kind` at `base` (a key from `src/store/keys.rs`).
    pub fn open<T>(self: &Arc<Self>, kind: &'static str, base: Key) -> Manifest<T> {
        Manifest {
            raw: RawManifest {
                ctx: Arc::clone(self),
                kind,
                base,
            },
            _body: PhantomData,
        }
    }

    /// The names of every manifest of `family` (the locks, streams, turns, nodes), in
    /// name order: one listing. Folders whose names cairn would not accept are skipped.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn names(&self, family: Family) -> Result<Vec<Name>> {
        Ok(self
            .store
            .list_folders(&family.folder())
            .await?
            .into_iter()
            .filter_map(|n| Name::new(n).ok())
            .collect())
    }

    /// One recursive listing of `family` (one LIST per 1,000 objects), grouped by manifest
    /// name in name order, and the monotonic instant taken just before it.
    pub(crate) async fn scan(
        &self,
        family: Family,
    ) -> Result<(tokio::time::Instant, Vec<listing::Entry<listing::Found>>)> {
        let at = self.clock.monotonic();
        let folder = family.folder();
        let listed = self.store.list(&folder).await?;
        Ok((at, listing::group(self.strategy(), &folder, listed)))
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The node id written into every manifest.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The time a number created afresh is floored at (`src/clock.rs` (`floor`)), on the
    /// store's timeline as a clock check (`src/store/time.rs`) vouches for it: the check's
    /// witness moved along by this node's monotonic clock, or this node's wall clock when that
    /// is later and the check puts it within the bound
    /// ([`ManifestOptions::max_clock_offset`]). A node beyond the bound floors on the witness
    /// alone: a clock running behind would draw a floor below numbers handed out already, and
    /// one running ahead a floor that the next incarnation, drawn by a node in step, would
    /// fall below.
    ///
    /// **Why a check first.** Every creator floors on the one clock all nodes share, so a
    /// process whose wall clock runs behind, creating a lock afresh after its objects were
    /// deleted, still draws a token above every token handed out more than the store's time
    /// resolution (1 s) before. The last check serves while the clock check accepts it
    /// (15 min); else one is made here: two requests, the first fresh create of a process.
    ///
    /// **When no check can be made** (an error, credentials that may not write
    /// `_cairn/clock.json`), the error is returned and nothing is created. Flooring on the
    /// wall clock instead is the very rewind this guards against, and refusing costs only the
    /// create: the manifest does not exist, so no holder is stranded, and a retry succeeds
    /// once the store answers. A node that may not write the clock object may not take over
    /// by expiry or claim a turn either (see docs/STORES.md, "Permissions").
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: its only write is the clock check's scratch object (`_cairn/clock.json`),
    /// which holds no state; a dropped check leaves the last one in use.
    pub async fn floor_time(&self) -> Result<chrono::DateTime<chrono::Utc>> {
        let w = self.witness().await?;
        let store = w.store_now(self.clock.monotonic());
        if self.time.beyond(&w) {
            return Ok(store);
        }
        Ok(self.clock.now().max(store))
    }

    /// The first number of something created afresh at `key` now (a manifest version, a fencing
    /// token, a turn, a log sequence): `src/clock.rs` (`floor`) of [`Self::floor_time`], never
    /// below 1. A clock check (two requests) when no recent one serves; its error is returned
    /// and nothing may be created.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn first_number(&self, key: &(impl std::fmt::Display + Sync)) -> Result<u64> {
        crate::clock::floor(key, self.floor_time().await?)
    }

    /// The strategy in force.
    pub fn strategy(&self) -> Strategy {
        self.protocol.strategy()
    }

    /// This node's measure of the store's clock (`src/store/time.rs`).
    #[cfg_attr(feature = "test-util", visibility::make(pub))]
    pub(crate) fn store_time(&self) -> &StoreTime {
        &self.time
    }

    /// A point on the store's timeline for a rule that reads time: the last clock check while
    /// it serves, else a new one (two requests).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    #[cfg_attr(feature = "test-util", visibility::make(pub))]
    pub(crate) async fn witness(&self) -> Result<Witness> {
        self.time.witness(&self.store, &self.node).await
    }

    /// The options in force.
    pub fn options(&self) -> &ManifestOptions {
        &self.options
    }

    /// Runs `f` with the injected random source.
    pub(crate) fn with_rng<R>(&self, f: impl FnOnce(&mut StdRng) -> R) -> R {
        f(&mut self.rng.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A fresh random id from the injected source: a write's id, or a session's.
    pub(crate) fn write_id(&self) -> WriteId {
        self.with_rng(WriteId::random)
    }
}

/// The number in a listed `<number:020>.json` key (a chain version, a log sequence): `None`
/// for a key of another shape, [`Error::Corrupt`] for twenty digits above `u64::MAX`, which
/// cairn never writes and cannot order, so it is reported instead of skipped.
pub(crate) fn listed_number(key: &Key) -> Result<Option<u64>> {
    let name = key.file_name();
    if let Some(n) = crate::store::keys::parse_numbered(name) {
        return Ok(Some(n));
    }
    let digits = name.strip_suffix(".json").unwrap_or("");
    if digits.len() == crate::store::keys::NUMBER_WIDTH
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(Error::Corrupt {
            key: key.to_string(),
            reason: format!("number {digits} in the key is above u64::MAX"),
        });
    }
    Ok(None)
}

/// Result of a conditional transition.
#[derive(Debug)]
#[must_use]
pub enum Write<T> {
    /// Our version is stored; here it is.
    Written(Snapshot<T>),
    /// Another writer got there first; here is the newest version seen (`None`: the
    /// manifest is gone).
    Conflict(Option<Snapshot<T>>),
}

/// Result of a conditional read.
#[derive(Debug)]
pub enum Revalidated<T> {
    /// No newer version; nothing was transferred but the answer (a 304, a 404 for the next
    /// version of a chain, or a listing).
    Unchanged,
    /// A newer version.
    Changed(Snapshot<T>),
    /// The manifest is gone.
    Missing,
}

/// Result of [`Manifest::remove`].
#[derive(Debug)]
#[must_use]
pub enum Remove {
    /// These objects were deleted (or, in a dry run, would be), oldest first.
    Removed(Vec<Key>),
    /// The manifest changed since it was inspected; nothing was deleted.
    Changed,
    /// The manifest is gone already.
    Gone,
}

/// What an [`Manifest::update`] closure decides.
#[derive(Debug)]
pub enum Change<T> {
    /// Write this as the next version.
    Write(T),
    /// Leave the manifest as it is.
    Keep,
}

/// Result of [`Manifest::update`].
#[derive(Debug)]
pub struct Updated<T> {
    /// The version now current: ours when `changed`, else the one the closure kept.
    pub snapshot: Option<Snapshot<T>>,
    /// Whether we wrote a version.
    pub changed: bool,
    /// Attempts taken (1 when uncontended).
    pub attempts: u32,
}

/// A handle on one named, versioned document of type `T`.
pub struct Manifest<T> {
    raw: RawManifest,
    _body: PhantomData<fn() -> T>,
}

/// A manifest whatever its body type: what a strategy works on.
#[derive(Clone)]
pub(crate) struct RawManifest {
    ctx: Arc<Manifests>,
    kind: &'static str,
    base: Key,
}

impl<T> Clone for Manifest<T> {
    fn clone(&self) -> Self {
        Self {
            raw: self.raw.clone(),
            _body: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Manifest<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manifest")
            .field("kind", &self.raw.kind)
            .field("base", &self.raw.base)
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync> Manifest<T> {
    /// The manifest's base key.
    pub fn key(&self) -> &Key {
        &self.raw.base
    }

    fn protocol(&self) -> &dyn Protocol {
        &*self.raw.ctx.protocol
    }

    /// `s` with its body decoded.
    fn typed(&self, s: Snapshot<RawBody>) -> Result<Snapshot<T>> {
        s.typed(self.raw.kind)
    }

    /// The newest version, or `None` if the manifest was never written. One request (etag CAS).
    /// Version chain: one GET of the next version's key (a 404) when this client knows the
    /// newest version from recently; else, and when the manifest changed, a listing and a read.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn load(&self) -> Result<Option<Snapshot<T>>> {
        let loaded = self.protocol().load(&self.raw).await?;
        loaded.map(|s| self.typed(s)).transpose()
    }

    /// Writes `body` as the version after `current` (`None`: the first version), only if
    /// `current` is still the newest. Verified by write-then-verify; losing is
    /// [`Write::Conflict`], not an error. When `current` is at version `u64::MAX` there is no
    /// next version: [`Error::Exhausted`], before any request.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a cancelled call may or may not have written.
    pub async fn write(&self, current: Option<&Snapshot<T>>, body: T) -> Result<Write<T>> {
        if current.is_none() {
            // Before the clock check a first version's floor may take.
            envelope::check_body_size(self.raw.kind, &body)?;
        }
        let version = self.next_version(current).await?;
        self.write_as(current, version, body).await
    }

    /// [`Manifest::write`] of a version that continues a claim this client holds on
    /// `current` (a renewal, a heartbeat, a closing write): it starts nothing and hands out
    /// no new number, so the version chain writes it without checking for a chain created
    /// again under it (one request, as etag CAS). Crate-internal: only the held-claim core
    /// and membership continue claims.
    pub(crate) async fn continue_claim(&self, current: &Snapshot<T>, body: T) -> Result<Write<T>> {
        let version = self.next_version(Some(current)).await?;
        self.write_draft(Some(current), version, body, true).await
    }

    /// [`Manifest::continue_claim`] for the benchmark engine (`cairn_drivers::bench`), which
    /// measures what a renewal costs on a store. Not a way to hold anything: locks, turns and
    /// membership continue their own claims.
    ///
    /// # Cancel safety
    ///
    /// As [`Manifest::write`]'s.
    #[cfg(feature = "test-util")]
    #[doc(hidden)]
    pub async fn continue_claim_for_bench(
        &self,
        current: &Snapshot<T>,
        body: T,
    ) -> Result<Write<T>> {
        self.continue_claim(current, body).await
    }

    /// The version a write after `current` takes: `current`'s + 1, or for the first version
    /// (`None`) the floor of now ([`Manifests::first_number`]), so that a manifest created
    /// again after its objects vanished numbers above its earlier incarnation. A caller that
    /// writes the number into the body too (a fencing token) takes it from here and writes
    /// with `Manifest::write_as` (crate-internal). A first version takes a clock check when
    /// no recent one serves (two requests; see [`Manifests::floor_time`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: its only write is the clock check's scratch object (`_cairn/clock.json`),
    /// which holds no state; a dropped check leaves the last one in use.
    pub async fn next_version(&self, current: Option<&Snapshot<T>>) -> Result<u64> {
        match current {
            None => self.raw.ctx.first_number(&self.raw.base).await,
            Some(c) => next_number(&self.raw.base, "version", c.version),
        }
    }

    /// [`Manifest::write`] at `version`, taken from [`Manifest::next_version`] for the same
    /// `current`. A version that does not follow `current` (not its + 1, or 0 for a first
    /// version) is refused before any request, as [`Error::Corrupt`] of the key: writing it
    /// would break the manifest's order.
    pub(crate) async fn write_as(
        &self,
        current: Option<&Snapshot<T>>,
        version: u64,
        body: T,
    ) -> Result<Write<T>> {
        self.write_draft(current, version, body, false).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(key = %self.raw.base, version))]
    async fn write_draft(
        &self,
        current: Option<&Snapshot<T>>,
        version: u64,
        body: T,
        continues: bool,
    ) -> Result<Write<T>> {
        let ctx = &self.raw.ctx;
        let in_order = match current {
            None => version >= 1,
            Some(c) => c.version.checked_add(1) == Some(version),
        };
        if !in_order {
            return Err(Error::Corrupt {
                key: self.raw.base.to_string(),
                reason: format!(
                    "version {version} cannot follow {}",
                    current.map_or_else(|| "nothing".to_string(), |c| c.version.to_string())
                ),
            });
        }
        let mut next = Snapshot {
            version,
            write_id: ctx.write_id().into_string(),
            previous_write_id: current.map(|c| c.write_id.clone()),
            written_by: ctx.node.clone(),
            written_at: ctx.clock.now(),
            body,
            etag: None,
            object_version: None,
            seen: envelope::Seen::default(),
            stored_at: envelope::StoredAt::default(),
        };
        tracing::Span::current().record("version", next.version);
        let draft = Draft {
            after: current.map(Snapshot::header),
            version,
            write_id: &next.write_id,
            bytes: envelope::encode(self.raw.kind, &next)?,
            continues,
        };
        // The prefix's protocol record still says what this handle obeys (revalidated when
        // due; see `store::protocol::ProtocolWatch`).
        ctx.store.check_protocol(current.is_none()).await?;
        let wrote = self.protocol().write(&self.raw, draft).await?;
        Ok(match wrote {
            Wrote::Written {
                etag,
                object_version,
                seen,
            } => {
                next.etag = etag;
                next.object_version = object_version;
                next.seen = seen;
                Write::Written(next)
            }
            Wrote::Conflict(latest) => {
                let latest = latest.map(|s| self.typed(s)).transpose()?;
                crate::telemetry::conflict(self.protocol().strategy().label());
                Write::Conflict(latest)
            }
        })
    }

    /// Version `version` of this manifest, when it can still be read on its own: the version
    /// chain reads that version's key (`None` once collected); etag CAS stores only the newest
    /// version, so it has it only while it is the newest. `None` says nothing about whether the
    /// version was ever written.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn version(&self, version: u64) -> Result<Option<Snapshot<T>>> {
        let read = self.protocol().version(&self.raw, version).await?;
        read.map(|s| self.typed(s)).transpose()
    }

    /// Creates the first version; `Conflict` carries the existing one.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a dropped call may or may not have written, as when an answer is lost;
    /// the stored object is whole either way (each write is one conditional PUT of a whole
    /// object). Read again to learn which.
    pub async fn create(&self, body: T) -> Result<Write<T>> {
        self.write(None, body).await
    }

    /// Whether a version newer than `known` exists, without transferring it when not: a
    /// conditional GET (etag CAS); a GET of the next version's key answered 404 (version chain,
    /// when `known` was seen recently), else a listing.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn revalidate(&self, known: &Snapshot<T>) -> Result<Revalidated<T>> {
        Ok(
            match self
                .protocol()
                .revalidate(&self.raw, known.header())
                .await?
            {
                Revalidated::Unchanged => Revalidated::Unchanged,
                Revalidated::Changed(s) => Revalidated::Changed(self.typed(s)?),
                Revalidated::Missing => Revalidated::Missing,
            },
        )
    }

    /// Read-modify-write with bounded retries: loads the newest version, asks `f` what to
    /// write, writes it conditionally, and on conflict tries again with the newer version after
    /// a jittered backoff. `f` may run several times. Fails with [`Error::Contention`] after
    /// [`ManifestOptions::max_attempts`], and at once with [`Error::Exhausted`] when `f` asks
    /// to write after version `u64::MAX`.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a dropped call may or may not have written, as when an answer is lost;
    /// the stored object is whole either way (each write is one conditional PUT of a whole
    /// object). Read again to learn which.
    pub async fn update<F>(&self, mut f: F) -> Result<Updated<T>>
    where
        F: FnMut(Option<&Snapshot<T>>) -> Change<T>,
    {
        let opts = &self.raw.ctx.options;
        let mut backoff = Backoff::new(opts.backoff_initial, opts.backoff_max);
        let mut current = self.load().await?;
        for attempt in 1..=opts.max_attempts.max(1) {
            let body = match f(current.as_ref()) {
                Change::Keep => {
                    return Ok(Updated {
                        snapshot: current,
                        changed: false,
                        attempts: attempt,
                    })
                }
                Change::Write(b) => b,
            };
            match self.write(current.as_ref(), body).await? {
                Write::Written(s) => {
                    return Ok(Updated {
                        snapshot: Some(s),
                        changed: true,
                        attempts: attempt,
                    })
                }
                Write::Conflict(latest) => {
                    let delay = self.raw.ctx.with_rng(|r| backoff.next_delay(r));
                    debug!(key = %self.raw.base, attempt, ?delay, "conflict; retrying");
                    tokio::time::sleep(delay).await;
                    current = match latest {
                        Some(l) => Some(l),
                        None => self.load().await?,
                    };
                }
            }
        }
        Err(Error::Contention {
            key: self.raw.base.to_string(),
            attempts: opts.max_attempts,
        })
    }

    /// Deletes old versions of a version chain: keeps the newest
    /// [`ManifestOptions::gc_keep`] and every version younger than
    /// [`ManifestOptions::gc_min_age`]. A no-op under etag CAS. Returns how many were
    /// deleted. Never touches the newest version, so it is safe to run at any time.
    ///
    /// # Cancel safety
    ///
    /// Dropping it stops it between deletes: what was deleted stays deleted, nothing else
    /// changes, and running it again finishes the rest.
    pub async fn collect_garbage(&self) -> Result<usize> {
        let keep = self.raw.ctx.options.gc_keep;
        Ok(self.protocol().collect(&self.raw, keep, false).await?.len())
    }

    /// [`Manifest::collect_garbage`] keeping only the newest `keep` versions (at least 1),
    /// still never deleting a version younger than [`ManifestOptions::gc_min_age`]: the keys
    /// deleted, oldest first, or with `dry_run` the keys that would be. A no-op under etag
    /// CAS (one object, which is the newest version). Never touches the newest version, so
    /// a tombstone (a released lock, a deleted record) keeps its version number.
    ///
    /// # Cancel safety
    ///
    /// Dropping it stops it between deletes: what was deleted stays deleted, nothing else
    /// changes, and running it again finishes the rest.
    pub async fn trim(&self, keep: usize, dry_run: bool) -> Result<Vec<Key>> {
        self.protocol().collect(&self.raw, keep, dry_run).await
    }

    /// Deletes the whole manifest, every version, if its newest version is still
    /// `expected` (same version and `write_id`): it is read again first, and nothing is
    /// deleted when it changed ([`Remove::Changed`]). Version chain: versions go oldest
    /// first and the head last, and a version above `expected` found in the listing stops
    /// it before any delete.
    ///
    /// **Off the safety path only.** The next writer starts again, at a floor drawn from
    /// time (`src/clock.rs` (`floor`)), above this incarnation only as far as clocks agree; so
    /// this is for manifests whose version is not a fencing token or an order anyone compares
    /// with an earlier incarnation (a member record that left). Locks and records are never
    /// removed: they keep a tombstone ([`Manifest::trim`]).
    ///
    /// **The residual race.** Object stores (S3 included, through `object_store`) offer no
    /// conditional delete, so a write landing between the re-read and the delete is lost
    /// with the rest. The caller must only remove what nobody should be writing.
    ///
    /// # Cancel safety
    ///
    /// Dropping it stops it between deletes: what was deleted stays deleted, nothing else
    /// changes, and running it again finishes the rest.
    pub async fn remove(&self, expected: &Snapshot<T>, dry_run: bool) -> Result<Remove> {
        let same =
            |s: &Snapshot<T>| s.version == expected.version && s.write_id == expected.write_id;
        match self.load().await? {
            Some(now) if same(&now) => {}
            Some(_) => return Ok(Remove::Changed),
            None => return Ok(Remove::Gone),
        }
        let Some(keys) = self
            .protocol()
            .keys_up_to(&self.raw, expected.version)
            .await?
        else {
            return Ok(Remove::Changed);
        };
        if !dry_run {
            for k in &keys {
                self.raw.ctx.store.delete(k).await?;
            }
            self.protocol().forget(&self.raw);
            debug!(key = %self.raw.base, objects = keys.len(), "removed");
        }
        Ok(Remove::Removed(keys))
    }

    /// Every stored version still kept, oldest first (version chain); the current one
    /// (etag CAS).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn history(&self) -> Result<Vec<Snapshot<T>>> {
        let kept = self.protocol().history(&self.raw).await?;
        kept.into_iter().map(|s| self.typed(s)).collect()
    }
}
