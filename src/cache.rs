//! A read-through cache of manifests for views that are read often (membership, stream
//! lists).
//!
//! An entry is served from memory while *fresh*; after that it is revalidated with a
//! conditional GET, and a 304 keeps it (no body transferred). When the store cannot be
//! reached, an entry is served *stale* for a while longer, and the answer says so. The cache
//! holds at most `capacity` entries and evicts the least recently used.
//!
//! Folder listings (the names of streams or members) are cached the same way, except that a
//! listing has no conditional form: once stale it is listed again.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::manifest::{Manifest, Revalidated, Snapshot};
use crate::store::keys::Family;
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
}

impl CacheOptions {
    /// For stream lists: fresh 30 s (a querier learns a new stream within half a minute, and
    /// 100 streams revalidated every 30 s cost about 8.6 million 304s, ≈ $3.5, a month),
    /// stale-if-error 5 minutes (rides out a short outage), 4,096 entries.
    pub fn for_streams() -> Self {
        Self {
            fresh: Duration::from_secs(30),
            stale_if_error: Duration::from_secs(300),
            capacity: 4096,
        }
    }

    /// For membership views: fresh for no longer than the heartbeat interval, so a view
    /// never shows a heartbeat more than one interval older than the store has it (and a
    /// [`crate::member::MemberView`] reads a node's record again before calling it suspect
    /// or offline); stale-if-error 5 minutes; 4,096 entries.
    pub fn for_membership(heartbeat_interval: Duration) -> Self {
        Self {
            fresh: heartbeat_interval,
            stale_if_error: Duration::from_secs(300),
            capacity: 4096,
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
    /// Revalidated and unchanged (a 304): kept.
    pub revalidated: u64,
    /// Fetched in full: first reads, changed entries, listings.
    pub fetched: u64,
    /// Served stale because the store was unreachable.
    pub stale: u64,
    /// Evicted to stay within capacity.
    pub evicted: u64,
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

enum Value<T> {
    Manifest(Option<Snapshot<T>>),
    Listing(Vec<String>),
}

impl<T> Clone for Value<T>
where
    T: Clone,
{
    fn clone(&self) -> Self {
        match self {
            Value::Manifest(m) => Value::Manifest(m.clone()),
            Value::Listing(l) => Value::Listing(l.clone()),
        }
    }
}

struct Entry<T> {
    value: Value<T>,
    /// When it was last read or revalidated.
    validated: Instant,
    /// Its place in the recency order.
    used: u64,
}

struct State<T> {
    entries: HashMap<String, Entry<T>>,
    /// `used` tick → key, oldest first.
    order: BTreeMap<u64, String>,
    tick: u64,
    stats: CacheStats,
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

/// Whether an error means "the store cannot be reached", the case stale-if-error covers.
fn unreachable(e: &Error) -> bool {
    matches!(e, Error::Unavailable { .. } | Error::Ambiguous { .. })
}

enum Lookup<T> {
    Fresh(Value<T>),
    Expired(Value<T>, Instant),
    Absent,
}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync> ManifestCache<T> {
    /// An empty cache. `clock` supplies the monotonic time freshness is measured on.
    pub fn new(options: CacheOptions, clock: Arc<dyn Clock>) -> Self {
        Self {
            options,
            clock,
            state: Mutex::new(State {
                entries: HashMap::new(),
                order: BTreeMap::new(),
                tick: 0,
                stats: CacheStats::default(),
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

    /// The entry at `key`: fresh while validated less than `fresh` ago.
    fn lookup(&self, key: &str, fresh: Duration) -> Lookup<T> {
        let now = self.clock.monotonic();
        let mut st = self.lock();
        st.tick += 1;
        let tick = st.tick;
        let Some(e) = st.entries.get_mut(key) else {
            return Lookup::Absent;
        };
        let old = std::mem::replace(&mut e.used, tick);
        let fresh = now.saturating_duration_since(e.validated) < fresh;
        let (value, validated) = (e.value.clone(), e.validated);
        st.order.remove(&old);
        st.order.insert(tick, key.to_string());
        if fresh {
            st.stats.hits += 1;
            Lookup::Fresh(value)
        } else {
            Lookup::Expired(value, validated)
        }
    }

    fn store(&self, key: &str, value: Value<T>) {
        let now = self.clock.monotonic();
        let mut st = self.lock();
        st.tick += 1;
        let tick = st.tick;
        let entry = Entry {
            value,
            validated: now,
            used: tick,
        };
        if let Some(old) = st.entries.insert(key.to_string(), entry) {
            st.order.remove(&old.used);
        }
        st.order.insert(tick, key.to_string());
        while st.entries.len() > self.options.capacity.max(1) {
            let Some((_, victim)) = st.order.pop_first() else {
                break;
            };
            st.entries.remove(&victim);
            st.stats.evicted += 1;
        }
    }

    /// Serves `value` stale if it is within the stale-if-error bound, else returns `e`.
    fn stale_or(&self, e: Error, value: Value<T>, validated: Instant) -> Result<Value<T>> {
        let age = self.clock.monotonic().saturating_duration_since(validated);
        let limit = self
            .options
            .fresh
            .saturating_add(self.options.stale_if_error);
        if unreachable(&e) && age <= limit {
            tracing::warn!(error = %e, ?age, "store unreachable; serving a stale cache entry");
            self.lock().stats.stale += 1;
            Ok(value)
        } else {
            Err(e)
        }
    }

    /// The newest version of `manifest` (`None`: it does not exist), and whether it is
    /// stale. No request while fresh; then a conditional GET (a 304 and no body when
    /// unchanged). Cancel-safe.
    pub async fn get(&self, manifest: &Manifest<T>) -> Result<View<Option<Snapshot<T>>>> {
        self.get_within(manifest, self.options.fresh).await
    }

    /// [`ManifestCache::get`], counting the entry fresh only while it was validated less
    /// than `max_age` ago (at most the configured freshness): for a caller about to act on
    /// what the entry says, such as a membership view about to call a node suspect.
    /// Cancel-safe.
    pub async fn get_within(
        &self,
        manifest: &Manifest<T>,
        max_age: Duration,
    ) -> Result<View<Option<Snapshot<T>>>> {
        let key = format!("m:{}", manifest.key());
        let fresh = max_age.min(self.options.fresh);
        let (value, stale) = match self.lookup(&key, fresh) {
            Lookup::Fresh(v) => (v, false),
            Lookup::Absent => {
                let v = Value::Manifest(manifest.load().await?);
                self.lock().stats.fetched += 1;
                self.store(&key, v.clone());
                (v, false)
            }
            Lookup::Expired(old, validated) => {
                let known = match &old {
                    Value::Manifest(m) => m.clone(),
                    Value::Listing(_) => None,
                };
                let fetched = match &known {
                    Some(k) => manifest.revalidate(k).await.map(|r| match r {
                        Revalidated::Unchanged => (known.clone(), true),
                        Revalidated::Changed(s) => (Some(s), false),
                        Revalidated::Missing => (None, false),
                    }),
                    None => manifest.load().await.map(|s| (s, false)),
                };
                match fetched {
                    Ok((v, unchanged)) => {
                        let mut st = self.lock();
                        if unchanged {
                            st.stats.revalidated += 1;
                        } else {
                            st.stats.fetched += 1;
                        }
                        drop(st);
                        let v = Value::Manifest(v);
                        self.store(&key, v.clone());
                        (v, false)
                    }
                    Err(e) => (self.stale_or(e, old, validated)?, true),
                }
            }
        };
        match value {
            Value::Manifest(m) => Ok(View { items: m, stale }),
            Value::Listing(_) => Err(Error::Config(format!(
                "cache key {key} holds a listing, not a manifest"
            ))),
        }
    }

    /// Every existing manifest of `family`, in name order, each opened with `open`: the
    /// listing and each manifest read through the cache; `stale` when any part of it was
    /// served stale. Cancel-safe.
    pub async fn get_family(
        &self,
        store: &Store,
        family: Family,
        open: impl Fn(&Name) -> Manifest<T>,
    ) -> Result<View<Vec<(Name, Snapshot<T>)>>> {
        let names = self.list_folders(store, &family.folder()).await?;
        let mut stale = names.stale;
        let mut out = Vec::new();
        for name in names.items.into_iter().filter_map(|n| Name::new(n).ok()) {
            let got = self.get(&open(&name)).await?;
            stale |= got.stale;
            out.extend(got.items.map(|s| (name, s)));
        }
        Ok(View { items: out, stale })
    }

    /// The names of the folders under `folder` (the streams, the members, …), and whether
    /// the list is stale. No request while fresh; then one listing. Cancel-safe.
    pub async fn list_folders(&self, store: &Store, folder: &Key) -> Result<View<Vec<String>>> {
        let key = format!("l:{folder}");
        let (value, stale) = match self.lookup(&key, self.options.fresh) {
            Lookup::Fresh(v) => (v, false),
            other => match store.list_folders(folder).await {
                Ok(names) => {
                    self.lock().stats.fetched += 1;
                    let v = Value::Listing(names);
                    self.store(&key, v.clone());
                    (v, false)
                }
                Err(e) => match other {
                    Lookup::Expired(old, validated) => (self.stale_or(e, old, validated)?, true),
                    _ => return Err(e),
                },
            },
        };
        match value {
            Value::Listing(l) => Ok(View { items: l, stale }),
            Value::Manifest(_) => Err(Error::Config(format!(
                "cache key {key} holds a manifest, not a listing"
            ))),
        }
    }
}
