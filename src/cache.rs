//! A read-through cache of manifests for views that are read often (membership, stream
//! lists).
//!
//! An entry is served from memory while *fresh*; after that it is revalidated with a
//! conditional GET, and a 304 keeps it (no body transferred). A whole family
//! ([`CachedCollection::entries`]) is revalidated from one listing instead: an entry whose
//! listed etag (version chain: newest version key) is as when it was read costs no request,
//! a changed or new one one GET, and one no longer listed drops out. When the store cannot be
//! reached, an entry is served *stale* for a while longer, and the answer says so. The cache
//! holds at most `capacity` entries and evicts the least recently used.
//!
//! Folder listings (the names of streams or nodes) are cached the same way, except that a
//! listing has no conditional form: once stale it is listed again.
//!
//! Two guards keep a busy view cheap when many tasks read it and when the store is down:
//!
//! - **Single flight.** Concurrent readers of one expired or absent entry send one request:
//!   the first reader fetches, the others wait for it and are served its answer.
//! - **Circuit breaker.** After [`CacheOptions::breaker_after`] requests in a row failed
//!   because the store could not be reached, the cache stops asking for
//!   [`CacheOptions::cool_off`]: an expired entry still within its stale-if-error bound is
//!   served stale at once instead of paying a timeout per read. After the cool-off one
//!   request goes through; a success closes the breaker. An entry that cannot be served
//!   stale (absent, or too old) is always requested.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use lru::LruCache;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::manifest::envelope::StoredAt;
use crate::manifest::listing::{Entry as ListEntry, Found};
use crate::manifest::{Collection, Manifest, Revalidated, Snapshot};
use crate::store::{Key, Name, Store};

/// How long entries stay fresh, how long they may be served stale, and how many are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheOptions {
    /// Served from memory with no request for this long after being read or revalidated.
    pub fresh: Duration,
    /// Beyond `fresh`, served (flagged stale) for this much longer when the store is
    /// unreachable.
    pub stale_if_error: Duration,
    /// Most entries kept; the least recently used is evicted beyond this.
    pub capacity: usize,
    /// Requests failing in a row (store unreachable) after which the breaker opens. 0 never
    /// opens it.
    pub breaker_after: u32,
    /// How long an open breaker serves stale entries without asking the store.
    pub cool_off: Duration,
}

impl CacheOptions {
    /// For stream lists: fresh 30 s (a querier learns a new stream within half a minute, and
    /// 100 unchanged streams revalidated every 30 s cost one listing each time, about 86,000
    /// LISTs, ≈ $0.43, a month),
    /// stale-if-error 5 minutes (rides out a short outage), 65,536 entries (a refresh costs
    /// what changed only while the whole family fits; an entry is its small manifest, well
    /// under a kilobyte, so at most some tens of megabytes), the breaker open for 10 s after
    /// 3 failures in a row.
    pub fn for_streams() -> Self {
        Self {
            fresh: Duration::from_secs(30),
            stale_if_error: Duration::from_secs(300),
            capacity: 65_536,
            breaker_after: 3,
            cool_off: Duration::from_secs(10),
        }
    }

    /// For membership views: fresh for no longer than the heartbeat interval, so a view
    /// never shows a heartbeat more than one interval older than the store has it (and a
    /// [`crate::node::NodeView`] reads a node's record again before calling it suspect
    /// or offline); stale-if-error 5 minutes; 65,536 entries; the breaker as for streams.
    pub fn for_nodes(heartbeat_interval: Duration) -> Self {
        Self {
            fresh: heartbeat_interval,
            stale_if_error: Duration::from_secs(300),
            capacity: 65_536,
            breaker_after: 3,
            cool_off: Duration::from_secs(10),
        }
    }
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self::for_streams()
    }
}

/// What the cache did, since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Served fresh from memory, no request.
    pub hits: u64,
    /// Revalidated and unchanged (a 304, or the same etag or newest version key in a
    /// listing; for membership, a heartbeat taken from the listing): kept.
    pub revalidated: u64,
    /// Fetched in full: first reads, changed entries, listings.
    pub fetched: u64,
    /// Served stale because the store was unreachable.
    pub stale: u64,
    /// Evicted to stay within capacity.
    pub evicted: u64,
    /// Served by another reader's request for the same entry (single flight).
    pub coalesced: u64,
    /// Served stale with no request because the breaker was open.
    pub short_circuited: u64,
    /// Times the breaker opened.
    pub breaker_opened: u64,
}

/// A value served by the cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct View<T> {
    /// The value.
    pub items: T,
    /// True when some of it could not be revalidated because the store was unreachable, and
    /// was served from memory past its fresh time.
    pub stale: bool,
}

impl<T> View<T> {
    /// The same view of `f(items)`: as stale as this one.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> View<U> {
        View {
            items: f(self.items),
            stale: self.stale,
        }
    }
}

enum Value<T> {
    Manifest(Option<Snapshot<T>>),
    Listing(Vec<String>),
    /// A family's recursive listing, grouped by name (`manifest/listing.rs`), and the instant
    /// taken just before it.
    Scan(Arc<(Instant, Vec<ListEntry<Found>>)>),
}

impl<T> Clone for Value<T>
where
    T: Clone,
{
    fn clone(&self) -> Self {
        match self {
            Value::Manifest(m) => Value::Manifest(m.clone()),
            Value::Listing(l) => Value::Listing(l.clone()),
            Value::Scan(s) => Value::Scan(Arc::clone(s)),
        }
    }
}

/// What an entry caches: one manifest, or the listing of one folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Slot {
    /// The manifest at this base key.
    Manifest(Key),
    /// The names of the folders under this one.
    Listing(Key),
    /// The recursive listing of this family folder.
    Scan(Key),
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Slot::Manifest(k) => write!(f, "manifest {k}"),
            Slot::Listing(k) => write!(f, "listing of {k}"),
            Slot::Scan(k) => write!(f, "recursive listing of {k}"),
        }
    }
}

struct Entry<T> {
    value: Value<T>,
    /// When it was last read or revalidated.
    validated: Instant,
    /// What the family listing showed of the manifest when it was read or last found
    /// unchanged: a later listing that shows the same [`Found::mark`] means it is unchanged.
    /// `None` when it was read without a listing.
    found: Option<Found>,
    /// The value is older than the object `found` names: the listing showed a change that
    /// was taken without reading it (only its store time, see
    /// [`CachedCollection::entries_with`]).
    behind: bool,
}

struct State<T> {
    /// The entries, least recently used first out.
    entries: LruCache<Slot, Entry<T>>,
    stats: CacheStats,
    /// The request in flight per slot: a reader holds its lock while it fetches.
    flights: HashMap<Slot, Arc<tokio::sync::Mutex<()>>>,
    /// Requests that failed in a row because the store was unreachable.
    failures: u32,
    /// While the breaker is open: until when.
    open_until: Option<Instant>,
}

/// A read-through cache of manifests of one type `T`, and of folder listings.
pub struct ManifestCache<T> {
    options: CacheOptions,
    clock: Arc<dyn Clock>,
    state: Mutex<State<T>>,
}

impl<T> std::fmt::Debug for ManifestCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManifestCache")
            .field("options", &self.options)
            .field("len", &self.state.lock().map_or(0, |s| s.entries.len()))
            .finish()
    }
}

/// Counts one more (a statistic: saturating, never wrapping).
fn bump(n: &mut u64) {
    *n = n.saturating_add(1);
}

/// Whether an error means "the store cannot be reached", the case stale-if-error covers.
fn unreachable(e: &Error) -> bool {
    matches!(e, Error::Unavailable { .. } | Error::Ambiguous { .. })
}

enum Lookup<T> {
    Fresh(Value<T>),
    Expired(Value<T>, Instant),
    Absent,
}

/// A reader's turn to fetch one entry: while it is held, other readers of the entry wait,
/// then find the entry fresh. Dropping it (also by cancellation) lets the next one go.
struct Flight<'a, T> {
    cache: &'a ManifestCache<T>,
    held: Option<(
        Slot,
        Arc<tokio::sync::Mutex<()>>,
        tokio::sync::OwnedMutexGuard<()>,
    )>,
}

impl<T> Drop for Flight<'_, T> {
    fn drop(&mut self) {
        let Some((slot, gate, guard)) = self.held.take() else {
            return;
        };
        drop(guard);
        let mut st = self.cache.state.lock().unwrap_or_else(|e| e.into_inner());
        // Only the map and we hold the gate: nobody waits on it, so it goes.
        if Arc::strong_count(&gate) == 2 {
            st.flights.remove(&slot);
        }
    }
}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync> ManifestCache<T> {
    /// An empty cache. `clock` supplies the monotonic time freshness is measured on.
    pub fn new(options: CacheOptions, clock: Arc<dyn Clock>) -> Self {
        Self {
            options,
            clock,
            state: Mutex::new(State {
                // Bounded in `store`, not here: `LruCache::new` would allocate the whole
                // capacity up front (and abort on a huge one).
                entries: LruCache::unbounded(),
                stats: CacheStats::default(),
                flights: HashMap::new(),
                failures: 0,
                open_until: None,
            }),
        }
    }

    /// The options in force.
    pub fn options(&self) -> CacheOptions {
        self.options
    }

    /// How many entries are held (never more than the capacity).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the cache has done so far.
    pub fn stats(&self) -> CacheStats {
        self.lock().stats
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry at `slot`, now the most recently used: fresh while validated less than
    /// `fresh` ago.
    fn lookup(&self, slot: &Slot, fresh: Duration) -> Lookup<T> {
        let now = self.clock.monotonic();
        let mut st = self.lock();
        let Some(e) = st.entries.get(slot) else {
            return Lookup::Absent;
        };
        let fresh = now.saturating_duration_since(e.validated) < fresh;
        let (value, validated) = (e.value.clone(), e.validated);
        if fresh {
            bump(&mut st.stats.hits);
            crate::telemetry::cache_read("hit");
            Lookup::Fresh(value)
        } else {
            Lookup::Expired(value, validated)
        }
    }

    /// Keeps `value` at `slot`, as the most recently used entry, evicting the least
    /// recently used one beyond the capacity.
    fn store(&self, slot: &Slot, value: Value<T>) {
        self.store_listed(slot, value, self.clock.monotonic(), None, false);
    }

    /// [`Self::store`], validated at `validated` against what a family listing showed of it.
    fn store_listed(
        &self,
        slot: &Slot,
        value: Value<T>,
        validated: Instant,
        found: Option<Found>,
        behind: bool,
    ) {
        let entry = Entry {
            value,
            validated,
            found,
            behind,
        };
        let mut st = self.lock();
        st.entries.put(slot.clone(), entry);
        // Capacity 0 keeps one entry, as it always has.
        while st.entries.len() > self.options.capacity.max(1) {
            if st.entries.pop_lru().is_none() {
                break;
            }
            bump(&mut st.stats.evicted);
        }
    }

    /// Whether an entry validated at `validated` may still be served stale.
    fn servable_stale(&self, validated: Instant) -> bool {
        let age = self.clock.monotonic().saturating_duration_since(validated);
        age <= self
            .options
            .fresh
            .saturating_add(self.options.stale_if_error)
    }

    /// Serves `value` stale if it is within the stale-if-error bound, else returns `e`.
    fn stale_or(&self, e: Error, value: Value<T>, validated: Instant) -> Result<Value<T>> {
        if unreachable(&e) && self.servable_stale(validated) {
            tracing::warn!(error = %e, "store unreachable; serving a stale cache entry");
            bump(&mut self.lock().stats.stale);
            crate::telemetry::cache_read("stale");
            Ok(value)
        } else {
            Err(e)
        }
    }

    /// Notes a request's outcome for the breaker: a success closes it, an unreachable store
    /// counts towards opening it (and reopens a half-open one).
    fn note<R>(&self, r: &Result<R>) {
        let mut st = self.lock();
        match r {
            Ok(_) => {
                st.failures = 0;
                st.open_until = None;
            }
            Err(e) if unreachable(e) => {
                st.failures = st.failures.saturating_add(1);
                let after = self.options.breaker_after;
                if after > 0 && st.failures >= after {
                    let now = self.clock.monotonic();
                    if st.open_until.is_none_or(|t| t <= now) {
                        bump(&mut st.stats.breaker_opened);
                        tracing::warn!(
                            failures = st.failures,
                            cool_off = ?self.options.cool_off,
                            "store unreachable; serving cached entries stale without asking"
                        );
                    }
                    st.open_until = now.checked_add(self.options.cool_off);
                }
            }
            Err(_) => {}
        }
    }

    /// Whether an expired entry validated at `validated` is served stale without a request:
    /// the breaker is open and the entry is within its stale-if-error bound. Counts it.
    fn short_circuit(&self, validated: Instant) -> bool {
        let now = self.clock.monotonic();
        let servable = self.servable_stale(validated);
        let mut st = self.lock();
        if servable && st.open_until.is_some_and(|t| now < t) {
            bump(&mut st.stats.short_circuited);
            bump(&mut st.stats.stale);
            crate::telemetry::cache_read("short_circuited");
            true
        } else {
            false
        }
    }

    /// The single-flight gate for `slot`: hold its guard while fetching the entry.
    async fn flight(&self, slot: &Slot) -> Flight<'_, T> {
        let gate = Arc::clone(self.lock().flights.entry(slot.clone()).or_default());
        let guard = Arc::clone(&gate).lock_owned().await;
        Flight {
            cache: self,
            held: Some((slot.clone(), gate, guard)),
        }
    }

    /// The entry at `slot` as it is after waiting for any fetch in flight: a fresh value (now
    /// or from the reader just ahead of us), an expired one, or none; with the gate held.
    async fn lookup_in_flight(&self, slot: &Slot, fresh: Duration) -> (Lookup<T>, Flight<'_, T>) {
        if let found @ Lookup::Fresh(_) = self.lookup(slot, fresh) {
            return (found, self.no_flight());
        }
        let waited = self.lock().flights.contains_key(slot);
        let flight = self.flight(slot).await;
        let found = self.lookup(slot, fresh);
        if waited && matches!(found, Lookup::Fresh(_)) {
            bump(&mut self.lock().stats.coalesced);
            crate::telemetry::cache_read("coalesced");
        }
        (found, flight)
    }

    fn no_flight(&self) -> Flight<'_, T> {
        Flight {
            cache: self,
            held: None,
        }
    }

    /// Loads the named manifests into the cache (one request each), so that the first reads
    /// after start-up are served from memory. Returns how many exist.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads; a dropped call has loaded some of the names, or none.
    pub async fn warm(&self, manifests: &[Manifest<T>]) -> Result<usize> {
        let mut found: usize = 0;
        for m in manifests {
            found = found.saturating_add(usize::from(self.get(m).await?.items.is_some()));
        }
        Ok(found)
    }

    /// The newest version of `manifest` (`None`: it does not exist), and whether it is stale.
    /// No request while fresh; then a conditional GET (a 304 and no body when unchanged).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn get(&self, manifest: &Manifest<T>) -> Result<View<Option<Snapshot<T>>>> {
        self.get_within(manifest, self.options.fresh).await
    }

    /// [`ManifestCache::get`], counting the entry fresh only while it was validated less than
    /// `max_age` ago (at most the configured freshness): for a caller about to act on what the
    /// entry says, such as a membership view about to call a node suspect.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn get_within(
        &self,
        manifest: &Manifest<T>,
        max_age: Duration,
    ) -> Result<View<Option<Snapshot<T>>>> {
        let slot = Slot::Manifest(manifest.key().clone());
        let fresh = max_age.min(self.options.fresh);
        let (found, _flight) = self.lookup_in_flight(&slot, fresh).await;
        let (value, stale) = match found {
            Lookup::Fresh(v) => (v, false),
            Lookup::Absent => {
                let loaded = manifest.load().await;
                self.note(&loaded);
                let v = Value::Manifest(loaded?);
                bump(&mut self.lock().stats.fetched);
                crate::telemetry::cache_read("fetched");
                self.store(&slot, v.clone());
                (v, false)
            }
            Lookup::Expired(old, validated) if self.short_circuit(validated) => (old, true),
            Lookup::Expired(old, validated) => {
                let known = match &old {
                    Value::Manifest(m) => m.clone(),
                    Value::Listing(_) | Value::Scan(_) => None,
                };
                let fetched = match &known {
                    Some(k) => manifest.revalidate(k).await.map(|r| match r {
                        Revalidated::Unchanged => (known.clone(), true),
                        Revalidated::Changed(s) => (Some(s), false),
                        Revalidated::Missing => (None, false),
                    }),
                    None => manifest.load().await.map(|s| (s, false)),
                };
                self.note(&fetched);
                match fetched {
                    Ok((v, unchanged)) => {
                        let mut st = self.lock();
                        if unchanged {
                            bump(&mut st.stats.revalidated);
                            crate::telemetry::cache_read("revalidated");
                        } else {
                            bump(&mut st.stats.fetched);
                            crate::telemetry::cache_read("fetched");
                        }
                        drop(st);
                        let v = Value::Manifest(v);
                        self.store(&slot, v.clone());
                        (v, false)
                    }
                    Err(e) => (self.stale_or(e, old, validated)?, true),
                }
            }
        };
        match value {
            Value::Manifest(m) => Ok(View { items: m, stale }),
            Value::Listing(_) | Value::Scan(_) => Err(Error::Config(format!(
                "cache {slot} holds a listing, not a manifest"
            ))),
        }
    }

    /// The names of the folders under `folder` (the streams, the nodes, …), and whether the
    /// list is stale. No request while fresh; then one listing.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn list_folders(&self, store: &Store, folder: &Key) -> Result<View<Vec<String>>> {
        let slot = Slot::Listing(folder.clone());
        let (found, _flight) = self.lookup_in_flight(&slot, self.options.fresh).await;
        let (value, stale) = match found {
            Lookup::Fresh(v) => (v, false),
            Lookup::Expired(old, validated) if self.short_circuit(validated) => (old, true),
            other => {
                let listed = store.list_folders(folder).await;
                self.note(&listed);
                match listed {
                    Ok(names) => {
                        bump(&mut self.lock().stats.fetched);
                        crate::telemetry::cache_read("fetched");
                        let v = Value::Listing(names);
                        self.store(&slot, v.clone());
                        (v, false)
                    }
                    Err(e) => match other {
                        Lookup::Expired(old, validated) => {
                            (self.stale_or(e, old, validated)?, true)
                        }
                        _ => return Err(e),
                    },
                }
            }
        };
        match value {
            Value::Listing(l) => Ok(View { items: l, stale }),
            Value::Manifest(_) | Value::Scan(_) => Err(Error::Config(format!(
                "cache {slot} holds a manifest, not a listing"
            ))),
        }
    }
}

/// Whether a change the listing shows of a manifest held as this value may be taken from the
/// listing without reading it (see [`CachedCollection::entries_with`]).
pub(crate) type FromListing<T> = dyn Fn(&Snapshot<T>) -> bool + Send + Sync;

/// One listed manifest after a refresh: its name and newest version (`None`: gone since the
/// listing), or why it cannot be read.
type Refreshed<T> = ListEntry<Option<(Name, Snapshot<T>)>>;

/// What a refresh knows of one listed manifest before reading it.
enum Known<T> {
    /// The listing shows it as the cache has it: no request.
    Unchanged(Option<Snapshot<T>>),
    /// Changed, and the caller takes the change from the listing: the value held, with the
    /// listed object's store time.
    Listed(Snapshot<T>),
    /// Changed or new: read it. The version held, if any, and the version slot 1 is known to
    /// hold at most (chain; see `Protocol::read_listed`).
    Read(Option<Snapshot<T>>, Option<u64>, Option<Instant>),
}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync> ManifestCache<T> {
    /// The family listing of `collection`, and whether it is stale: no request while
    /// fresh, then one recursive listing (one LIST per 1,000 objects). The bool says whether
    /// this call listed.
    async fn scan(
        &self,
        collection: &Collection<T>,
    ) -> Result<(Arc<(Instant, Vec<ListEntry<Found>>)>, bool, bool)> {
        let slot = Slot::Scan(collection.family().folder());
        let (found, _flight) = self.lookup_in_flight(&slot, self.options.fresh).await;
        let (value, stale, listed) = match found {
            Lookup::Fresh(v) => (v, false, false),
            Lookup::Expired(old, validated) if self.short_circuit(validated) => (old, true, false),
            other => {
                let scanned = collection.scan().await;
                self.note(&scanned);
                match scanned {
                    Ok(scan) => {
                        bump(&mut self.lock().stats.fetched);
                        crate::telemetry::cache_read("fetched");
                        let v = Value::Scan(Arc::new(scan));
                        self.store(&slot, v.clone());
                        (v, false, true)
                    }
                    Err(e) => match other {
                        Lookup::Expired(old, validated) => {
                            (self.stale_or(e, old, validated)?, true, false)
                        }
                        _ => return Err(e),
                    },
                }
            }
        };
        match value {
            Value::Scan(s) => Ok((s, stale, listed)),
            _ => Err(Error::Config(format!(
                "cache {slot} holds something else than a recursive listing"
            ))),
        }
    }

    /// What the cache holds of the manifest `found` names: unchanged when the listing was
    /// not made again (`listed` false: the entry is as fresh as the listing) or shows the same
    /// mark as when it was kept; else to be read.
    fn known(
        &self,
        slot: &Slot,
        found: &Found,
        listed: bool,
        from_listing: Option<&FromListing<T>>,
    ) -> Known<T> {
        let st = self.lock();
        let Some(e) = st.entries.peek(slot) else {
            return Known::Read(None, None, None);
        };
        let Value::Manifest(held) = &e.value else {
            return Known::Read(None, None, None);
        };
        let old = e.found.as_ref();
        let same = old.is_some_and(|old| found.unchanged_since(old));
        if !listed || (same && !e.behind) {
            return Known::Unchanged(held.clone());
        }
        // A change after one that was read or listed: the caller may take it from the
        // listing. (An object that stopped changing is read: `same` and behind.)
        if let (false, Some(h), Some(_), Some(take)) = (same, held, old, from_listing) {
            if take(h) {
                return Known::Listed(h.clone());
            }
        }
        let first_at_most = old
            .zip(held.as_ref())
            .and_then(|(old, h)| found.first_at_most(old, h.version));
        Known::Read(held.clone(), first_at_most, Some(e.validated))
    }

    /// Removes the manifests of `folder` that `keep` does not name (gone from the listing).
    fn drop_unlisted(&self, collection: &Collection<T>, keep: &std::collections::HashSet<Key>) {
        let folder = format!("{}/", collection.family().folder());
        let mut st = self.lock();
        let gone: Vec<Slot> = st
            .entries
            .iter()
            .filter_map(|(slot, _)| match slot {
                Slot::Manifest(k) if k.as_str().starts_with(&folder) && !keep.contains(k) => {
                    Some(slot.clone())
                }
                _ => None,
            })
            .collect();
        for slot in gone {
            st.entries.pop(&slot);
        }
    }

    /// Every manifest of `collection`, in name order, revalidated from one family listing
    /// (see [`CachedCollection::entries`]).
    async fn entries(
        &self,
        collection: &Collection<T>,
        from_listing: Option<&FromListing<T>>,
    ) -> Result<View<Vec<ListEntry<(Name, Snapshot<T>)>>>> {
        let (scan, mut stale, listed) = self.scan(collection).await?;
        let (listed_at, found) = (&scan.0, &scan.1);
        let listed_at = *listed_at;
        if listed {
            let keep = found
                .iter()
                .filter_map(|f| f.as_ref().ok())
                .map(|f| collection.open(&f.name).key().clone())
                .collect();
            self.drop_unlisted(collection, &keep);
        }
        let n = collection.manifests().options().list_concurrency.max(1);
        let owned: Vec<ListEntry<Found>> = found.iter().map(own).collect();
        let read = futures::stream::iter(owned)
            .map(|f| self.refresh_one(collection, f, listed, listed_at, from_listing))
            .buffered(n);
        let all: Vec<(Refreshed<T>, bool)> = read.collect().await;
        let mut items = Vec::with_capacity(all.len());
        for (e, was_stale) in all {
            stale |= was_stale;
            match e {
                Ok(Some(v)) => items.push(Ok(v)),
                Ok(None) => {}
                Err(u) => items.push(Err(u)),
            }
        }
        Ok(View { items, stale })
    }
    /// One listed manifest of a refresh (see [`Self::entries`]): from the cache when the
    /// listing shows it unchanged, else read. The bool: served stale.
    async fn refresh_one(
        &self,
        collection: &Collection<T>,
        f: ListEntry<Found>,
        listed: bool,
        listed_at: Instant,
        from_listing: Option<&FromListing<T>>,
    ) -> (Refreshed<T>, bool) {
        let f = match f {
            Ok(f) => f,
            Err(u) => return (Err(u), false),
        };
        let f = &f;
        let slot = Slot::Manifest(collection.open(&f.name).key().clone());
        match self.known(&slot, f, listed, from_listing) {
            Known::Listed(mut held) => {
                held.stored_at = StoredAt(Some(f.head.last_modified));
                bump(&mut self.lock().stats.revalidated);
                crate::telemetry::cache_read("revalidated");
                let v = Value::Manifest(Some(held.clone()));
                self.store_listed(&slot, v, listed_at, Some(f.clone()), true);
                (Ok(Some((f.name.clone(), held))), false)
            }
            Known::Unchanged(held) => {
                let mut st = self.lock();
                if listed {
                    bump(&mut st.stats.revalidated);
                    crate::telemetry::cache_read("revalidated");
                } else {
                    bump(&mut st.stats.hits);
                    crate::telemetry::cache_read("hit");
                }
                drop(st);
                if listed {
                    let v = Value::Manifest(held.clone());
                    self.store_listed(&slot, v, listed_at, Some(f.clone()), false);
                }
                (Ok(held.map(|s| (f.name.clone(), s))), false)
            }
            Known::Read(held, first_at_most, validated) => {
                let got = match collection.read_found(f, listed_at, first_at_most).await {
                    // Never back to a version older than the one held: load the
                    // ordinary way (see `listing.rs`).
                    Ok(Some(s)) if held.as_ref().is_some_and(|h| h.version > s.version) => {
                        collection
                            .load(&f.name)
                            .await
                            .map_err(|e| collection.unreadable(&f.name, e))
                    }
                    other => other,
                };
                self.note(&got.as_ref().map_err(|u| clone_kind(&u.error)));
                match got {
                    Ok(s) => {
                        bump(&mut self.lock().stats.fetched);
                        crate::telemetry::cache_read("fetched");
                        let v = Value::Manifest(s.clone());
                        self.store_listed(&slot, v, listed_at, Some(f.clone()), false);
                        (Ok(s.map(|s| (f.name.clone(), s))), false)
                    }
                    Err(u) => match (held, validated) {
                        (Some(h), Some(at)) if unreachable(&u.error) && self.servable_stale(at) => {
                            bump(&mut self.lock().stats.stale);
                            crate::telemetry::cache_read("stale");
                            (Ok(Some((f.name.clone(), h))), true)
                        }
                        _ => (Err(u), false),
                    },
                }
            }
        }
    }
}

/// An owned copy of a listed entry.
fn own(f: &ListEntry<Found>) -> ListEntry<Found> {
    match f {
        Ok(f) => Ok(f.clone()),
        Err(u) => Err(u.copy()),
    }
}

/// An error of the same kind as `e`, for the breaker's count (it only looks at the kind).
fn clone_kind(e: &Error) -> Error {
    if unreachable(e) {
        Error::Unavailable {
            operation: "read",
            key: String::new(),
            source: object_store::Error::Generic {
                store: "cairn",
                source: e.to_string().into(),
            },
        }
    } else {
        Error::Config(e.to_string())
    }
}

/// A [`Collection`] read through a [`ManifestCache`]: the family's listing and each of its
/// manifests served from memory while fresh, revalidated after, and served stale while the
/// store is unreachable. The typed views ([`crate::stream::StreamView`],
/// [`crate::node::NodeView`]) are built on it.
#[derive(Debug)]
pub struct CachedCollection<T> {
    collection: Collection<T>,
    cache: ManifestCache<T>,
}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync> CachedCollection<T> {
    /// `collection` read through a new cache with `options`, timed on the collection's clock.
    pub fn new(collection: Collection<T>, options: CacheOptions) -> Self {
        let clock = Arc::clone(collection.manifests().clock());
        Self {
            collection,
            cache: ManifestCache::new(options, clock),
        }
    }

    /// The names in the collection, in name order, and whether the listing is stale. No request
    /// while fresh; then one listing.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn names(&self) -> Result<View<Vec<Name>>> {
        let folder = self.collection.family().folder();
        let store = self.collection.manifests().store();
        Ok(self.cache.list_folders(store, &folder).await?.map(|names| {
            names
                .into_iter()
                .filter_map(|n| Name::new(n).ok())
                .collect()
        }))
    }

    /// Every existing manifest of the collection, in name order, failing on the first that
    /// cannot be read (see [`CachedCollection::entries`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn list(&self) -> Result<View<Vec<(Name, Snapshot<T>)>>> {
        let all = self.entries().await?;
        let stale = all.stale;
        let items = all
            .items
            .into_iter()
            .map(|e| e.map_err(Error::from))
            .collect::<Result<_>>()?;
        Ok(View { items, stale })
    }

    /// Every existing manifest of the collection, in name order; one that cannot be read is
    /// an [`Unreadable`](crate::manifest::listing::Unreadable) entry in its place. `stale` when any part was served stale.
    ///
    /// **Cost.** No request while the family listing is fresh. Then one recursive listing of
    /// the family (one LIST per 1,000 objects) revalidates every entry: one whose listed etag
    /// (on the version chain: newest version key) is as when it was read costs no request; only
    /// changed and new ones are read (one GET each, several in flight; `manifest/listing.rs`),
    /// and those no longer listed drop out. Under etag CAS, a view of N unchanged manifests
    /// costs ⌈N/1000⌉ requests a refresh, as long as N fits the cache's
    /// [`CacheOptions::capacity`] (an evicted entry is read again).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn entries(&self) -> Result<View<Vec<ListEntry<(Name, Snapshot<T>)>>>> {
        self.cache.entries(&self.collection, None).await
    }

    /// [`CachedCollection::entries`], except that a manifest the listing shows changed since
    /// it was read (or last taken this way) is not read when `from_listing` says its held
    /// value may stand: the value is kept, with the listed object's `last_modified` as its
    /// [`Snapshot::stored_at`], and marked behind. A manifest that then stops changing (the
    /// next listing shows it as the last) is read once, so its last word is never missed
    /// for longer than one refresh. For nodes (`node.rs`): a heartbeat is a change of
    /// the record's object, and its time is all a view needs of it.
    pub(crate) async fn entries_with(
        &self,
        from_listing: &FromListing<T>,
    ) -> Result<View<Vec<ListEntry<(Name, Snapshot<T>)>>>> {
        self.cache
            .entries(&self.collection, Some(from_listing))
            .await
    }

    /// Whether the value held for `name` was last taken from the listing without a read
    /// (its body is older than the object).
    pub(crate) fn is_behind(&self, name: &Name) -> bool {
        let slot = Slot::Manifest(self.collection.open(name).key().clone());
        self.cache
            .lock()
            .entries
            .peek(&slot)
            .is_some_and(|e| e.behind)
    }

    /// The newest version of `name` (`None`: it does not exist), as [`ManifestCache::get`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn get(&self, name: &Name) -> Result<View<Option<Snapshot<T>>>> {
        self.cache.get(&self.collection.open(name)).await
    }

    /// The newest version of `name`, fresh only if validated less than `max_age` ago, as
    /// [`ManifestCache::get_within`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn get_within(
        &self,
        name: &Name,
        max_age: Duration,
    ) -> Result<View<Option<Snapshot<T>>>> {
        self.cache
            .get_within(&self.collection.open(name), max_age)
            .await
    }

    /// Loads the named manifests into the cache ahead of the first reads (one request each).
    /// Returns how many exist.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads; a dropped call has loaded some of the names, or none.
    pub async fn warm(&self, names: &[Name]) -> Result<usize> {
        let manifests: Vec<_> = names.iter().map(|n| self.collection.open(n)).collect();
        self.cache.warm(&manifests).await
    }

    /// The collection read.
    pub fn collection(&self) -> &Collection<T> {
        &self.collection
    }

    /// The cache underneath (for its statistics).
    pub fn cache(&self) -> &ManifestCache<T> {
        &self.cache
    }
}
