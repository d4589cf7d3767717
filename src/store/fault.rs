//! `FaultStore`: an `ObjectStore` wrapper that counts every request and injects faults,
//! filtered by operation and key, for reliability tests and request-count benchmarks.
//!
//! Faults model what a real network does to a conditional write: the server commits and the
//! response is lost ([`Fault::CommitThenFail`]), the request never arrives
//! ([`Fault::FailBeforeCommit`]), a synthetic status ([`Fault::Status`]: 409, 412, 500, 503),
//! or a request that never answers ([`Fault::Hang`]). Probabilistic rules draw from a seeded
//! generator, so a failing run is reproducible from its seed.
//!
//! A [`Hook`] changes what the forwarded requests do, for a store that misbehaves in a way no
//! fault describes: one that ignores preconditions, one whose object is overwritten between
//! a put's commit and its answer, one whose `last_modified` follows a test clock. The known
//! quirks of real stores are hooks in [`super::quirks`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Keys in one page of a listing (S3's `max-keys` default).
const PAGE: u64 = 1000;

/// The kind of request a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `put_opts` (create, replace, overwrite).
    Put,
    /// `get_opts`, including conditional GETs and HEADs.
    Get,
    /// Listing.
    List,
    /// Deleting.
    Delete,
}

/// What to do to a matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward the request (it takes effect), then fail as if the response was lost.
    CommitThenFail,
    /// Forward the request (it takes effect), then answer with this HTTP status, as when a
    /// client retries a request whose first attempt landed (a retried conditional PUT gets
    /// 412 from the server).
    CommitThenStatus(u16),
    /// Fail without forwarding: the request never reached the server.
    FailBeforeCommit,
    /// Answer with this HTTP status without forwarding (409, 412, 500, 503, …).
    Status(u16),
    /// Never answer (the caller's timeout must fire). The request is not forwarded.
    Hang,
    /// Forward the request (it takes effect), then never answer: a timeout after commit.
    CommitThenHang,
    /// Forward the request after this delay.
    Delay(Duration),
    /// Forward the request after a delay drawn uniformly from `[min, max]` (the wrapper's
    /// seeded random source): latency that varies from request to request.
    DelayBetween(Duration, Duration),
}

/// A fault and the requests it applies to.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Which requests.
    pub op: Op,
    /// Only keys whose path contains this (empty: all keys).
    pub key_contains: String,
    /// What to do.
    pub fault: Fault,
    /// How many more times it fires (`None`: every time).
    pub remaining: Option<u64>,
    /// Probability that a matching request is hit, in `[0, 1]`.
    pub probability: f64,
}

impl Rule {
    /// A rule that fires on every matching request until removed.
    pub fn always(op: Op, key_contains: impl Into<String>, fault: Fault) -> Self {
        Self {
            op,
            key_contains: key_contains.into(),
            fault,
            remaining: None,
            probability: 1.0,
        }
    }

    /// A rule that fires on the next `n` matching requests.
    pub fn times(op: Op, key_contains: impl Into<String>, fault: Fault, n: u64) -> Self {
        Self {
            remaining: Some(n),
            ..Self::always(op, key_contains, fault)
        }
    }

    /// The same rule, firing only with probability `p` (drawn from the store's seed).
    pub fn with_probability(mut self, p: f64) -> Self {
        self.probability = p;
        self
    }
}

/// Request counters. Read them with [`FaultStore::counts`].
#[derive(Debug, Default)]
struct Counters {
    puts: AtomicU64,
    gets: AtomicU64,
    not_modified: AtomicU64,
    body_bytes: AtomicU64,
    lists: AtomicU64,
    deletes: AtomicU64,
    faults: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// PUT requests (every `put_opts`, including ones that failed).
    pub puts: u64,
    /// GET/HEAD requests.
    pub gets: u64,
    /// GETs answered 304 Not Modified.
    pub not_modified: u64,
    /// Body bytes returned by GETs.
    pub body_bytes: u64,
    /// LIST requests: one per page of up to 1,000 keys (or folders), as S3 answers them, so a
    /// listing of 2,500 objects counts 3 on every backend.
    pub lists: u64,
    /// DELETE requests.
    pub deletes: u64,
    /// Requests a fault was injected into.
    pub faults: u64,
}

impl Counts {
    /// All requests.
    pub fn requests(&self) -> u64 {
        self.puts
            .saturating_add(self.gets)
            .saturating_add(self.lists)
            .saturating_add(self.deletes)
    }

    /// The requests made since `earlier` (an earlier snapshot of the same counters).
    pub fn since(&self, earlier: &Counts) -> Counts {
        Counts {
            puts: self.puts.saturating_sub(earlier.puts),
            gets: self.gets.saturating_sub(earlier.gets),
            not_modified: self.not_modified.saturating_sub(earlier.not_modified),
            body_bytes: self.body_bytes.saturating_sub(earlier.body_bytes),
            lists: self.lists.saturating_sub(earlier.lists),
            deletes: self.deletes.saturating_sub(earlier.deletes),
            faults: self.faults.saturating_sub(earlier.faults),
        }
    }
}

/// What a test changes about the requests a [`FaultStore`] forwards to its inner store,
/// beyond the faults it injects (see [`FaultStore::with_hook`]). Every method's default
/// changes nothing. Faults apply around the hooked request: a put that
/// [`Fault::CommitThenFail`] hits still runs [`Hook::committed`] before failing.
#[async_trait]
pub trait Hook: Send + Sync {
    /// The options a put is forwarded with, or the error the put answers without being
    /// forwarded (a client that refuses the request before sending it).
    fn put_options(&self, _path: &Path, opts: PutOptions) -> Result<PutOptions> {
        Ok(opts)
    }

    /// The answer to a forwarded put that failed with `error`; `mode` is the mode the caller
    /// asked for, and `inner` the store behind the hook (to look at the object; not counted).
    async fn put_failed(
        &self,
        _path: &Path,
        _mode: &PutMode,
        error: object_store::Error,
        _inner: &dyn ObjectStore,
    ) -> object_store::Error {
        error
    }

    /// The options a read is forwarded with.
    fn get_options(&self, _path: &Path, opts: GetOptions) -> GetOptions {
        opts
    }

    /// Runs once a put has committed, before it answers; what it returns is the answer.
    async fn committed(&self, _path: &Path, result: PutResult) -> Result<PutResult> {
        Ok(result)
    }

    /// The metadata a read (and, unless [`Hook::listed`] says otherwise, a listing) reports
    /// for an object.
    fn meta(&self, meta: ObjectMeta) -> ObjectMeta {
        meta
    }

    /// The metadata a listing reports for an object.
    fn listed(&self, meta: ObjectMeta) -> ObjectMeta {
        self.meta(meta)
    }

    /// Runs before a delete is forwarded.
    fn deleting(&self, _path: &Path) {}

    /// Whether a listing after an offset is forwarded with its offset. `false` plays a
    /// server that ignores the offset parameter and answers with the whole listing (Azurite
    /// ignores Azure's `startFrom` unless the client is in emulator mode; see
    /// [`super::quirks::IgnoresOffset`]).
    fn honours_list_offset(&self) -> bool {
        true
    }
}

/// A hook that makes the store's clock a given [`crate::Clock`]: every object's `last_modified` is
/// that clock's time when it was last written. A store on a paused tokio clock then ages its
/// objects as the test's time passes (an in-memory store stamps the system clock), and a
/// test can give the store a clock of its own that nodes' clocks are skewed against.
#[derive(Debug)]
pub struct Stamped {
    clock: Arc<dyn crate::Clock>,
    stamps: Mutex<std::collections::HashMap<Path, chrono::DateTime<chrono::Utc>>>,
}

impl Stamped {
    /// Stamps writes with `clock`'s wall time.
    pub fn new(clock: Arc<dyn crate::Clock>) -> Self {
        Self {
            clock,
            stamps: Mutex::default(),
        }
    }
}

#[async_trait]
impl Hook for Stamped {
    async fn committed(&self, path: &Path, result: PutResult) -> Result<PutResult> {
        let now = self.clock.now();
        self.stamps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.clone(), now);
        Ok(result)
    }

    fn meta(&self, mut meta: ObjectMeta) -> ObjectMeta {
        if let Some(t) = self
            .stamps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&meta.location)
        {
            meta.last_modified = *t;
        }
        meta
    }
}

/// The hook of a store built without one.
struct NoHook;

impl Hook for NoHook {}

/// The counting, fault-injecting wrapper.
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    shared: Arc<Shared>,
}

/// Rules, randomness, counters and the hook, shared with the streams the wrapper hands out.
struct Shared {
    rules: Mutex<Vec<Rule>>,
    rng: Mutex<StdRng>,
    counters: Arc<Counters>,
    hook: Arc<dyn Hook>,
}

impl fmt::Debug for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({:?})", self.inner)
    }
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

impl FaultStore {
    /// Wraps `inner`; probabilistic rules draw from `seed`.
    pub fn new(inner: Arc<dyn ObjectStore>, seed: u64) -> Self {
        Self::with_hook(inner, seed, NoHook)
    }

    /// Wraps `inner` as [`FaultStore::new`] does, with `hook` changing the requests it
    /// forwards.
    pub fn with_hook(inner: Arc<dyn ObjectStore>, seed: u64, hook: impl Hook + 'static) -> Self {
        Self {
            inner,
            shared: Arc::new(Shared {
                rules: Mutex::new(Vec::new()),
                rng: Mutex::new(StdRng::seed_from_u64(seed)),
                counters: Arc::default(),
                hook: Arc::new(hook),
            }),
        }
    }

    /// Wraps `inner` as [`FaultStore::new`] does, with `clock` as the store's clock
    /// ([`Stamped`]).
    pub fn stamped(inner: Arc<dyn ObjectStore>, seed: u64, clock: Arc<dyn crate::Clock>) -> Self {
        Self::with_hook(inner, seed, Stamped::new(clock))
    }

    /// Adds a rule. The first matching rule that fires decides a request's fate.
    pub fn add(&self, rule: Rule) {
        self.shared
            .rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(rule);
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.shared
            .rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The counters now.
    pub fn counts(&self) -> Counts {
        let c = &self.shared.counters;
        let l = |a: &AtomicU64| a.load(Ordering::SeqCst);
        Counts {
            puts: l(&c.puts),
            gets: l(&c.gets),
            not_modified: l(&c.not_modified),
            body_bytes: l(&c.body_bytes),
            lists: l(&c.lists),
            deletes: l(&c.deletes),
            faults: l(&c.faults),
        }
    }
}

impl Shared {
    fn pick(&self, op: Op, path: &Path) -> Option<Fault> {
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        let path = path.as_ref();
        for rule in rules.iter_mut() {
            if rule.op != op || !path.contains(&rule.key_contains) || rule.remaining == Some(0) {
                continue;
            }
            if rule.probability < 1.0 {
                let roll: f64 = self.rng.lock().unwrap_or_else(|e| e.into_inner()).random();
                if roll >= rule.probability {
                    continue;
                }
            }
            // Not zero: rules with none left were skipped above.
            if let Some(n) = rule.remaining.as_mut() {
                *n = n.saturating_sub(1);
            }
            self.counters.faults.fetch_add(1, Ordering::SeqCst);
            return Some(rule.fault);
        }
        None
    }

    /// How long a delay fault holds its request (zero for other faults).
    fn delay_of(&self, fault: Fault) -> Duration {
        match fault {
            Fault::Delay(d) => d,
            Fault::DelayBetween(min, max) if max > min => self
                .rng
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .random_range(min..=max),
            Fault::DelayBetween(min, _) => min,
            _ => Duration::ZERO,
        }
    }

    /// A streamed listing `inner` after the fault chosen for it. It cannot sleep before it
    /// starts: a fault is an immediate error, a delay is ignored.
    fn list(
        &self,
        at: &Path,
        inner: impl FnOnce() -> BoxStream<'static, Result<ObjectMeta>>,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        match self.pick(Op::List, at) {
            None | Some(Fault::Delay(_) | Fault::DelayBetween(..)) => {
                let hook = Arc::clone(&self.hook);
                let counters = Arc::clone(&self.counters);
                let mut listed: u64 = 0;
                inner()
                    .map(move |m| {
                        // Every key past a page of 1,000 starts the next page's request.
                        if listed > 0 && listed % PAGE == 0 {
                            counters.lists.fetch_add(1, Ordering::SeqCst);
                        }
                        listed = listed.saturating_add(1);
                        m.map(|m| hook.listed(m))
                    })
                    .boxed()
            }
            Some(f) => {
                futures::stream::once(futures::future::ready(Err(fault_error(at, f)))).boxed()
            }
        }
    }

    /// Applies the fault chosen for a request around `forward`.
    async fn run<T>(
        &self,
        op: Op,
        path: &Path,
        forward: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match self.pick(op, path) {
            None => forward.await,
            Some(f @ (Fault::Delay(_) | Fault::DelayBetween(..))) => {
                tokio::time::sleep(self.delay_of(f)).await;
                forward.await
            }
            Some(Fault::CommitThenFail) => {
                let _ = forward.await;
                Err(injected(
                    path,
                    op,
                    "connection reset after the request was sent",
                ))
            }
            Some(Fault::CommitThenStatus(status)) => {
                let _ = forward.await;
                Err(status_error(path, op, status))
            }
            Some(Fault::FailBeforeCommit) => Err(injected(path, op, "connection refused")),
            Some(Fault::CommitThenHang) => {
                let _ = forward.await;
                tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
                Err(injected(path, op, "hung after commit, finally dropped"))
            }
            Some(Fault::Hang) => {
                tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
                Err(injected(path, op, "hung request finally dropped"))
            }
            Some(Fault::Status(status)) => Err(status_error(path, op, status)),
        }
    }
}

fn injected(path: &Path, op: Op, what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "FaultStore",
        source: format!("injected fault on {op:?} {path}: {what}").into(),
    }
}

/// The error object_store's S3 client reports for `status` on `op`.
fn status_error(path: &Path, op: Op, status: u16) -> object_store::Error {
    let p = path.to_string();
    let source = format!("injected HTTP {status}").into();
    match (op, status) {
        (Op::Put, 409) => object_store::Error::AlreadyExists { path: p, source },
        (_, 412) => object_store::Error::Precondition { path: p, source },
        (_, 404) => object_store::Error::NotFound { path: p, source },
        (_, 304) => object_store::Error::NotModified { path: p, source },
        _ => object_store::Error::Generic {
            store: "FaultStore",
            source,
        },
    }
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.shared.counters.puts.fetch_add(1, Ordering::SeqCst);
        let hook = &self.shared.hook;
        let forward = async {
            let mode = opts.mode.clone();
            let opts = hook.put_options(location, opts)?;
            let landed = match self.inner.put_opts(location, payload, opts).await {
                Ok(landed) => landed,
                Err(e) => return Err(hook.put_failed(location, &mode, e, &*self.inner).await),
            };
            hook.committed(location, landed).await
        };
        self.shared.run(Op::Put, location, forward).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.shared.counters.puts.fetch_add(1, Ordering::SeqCst);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.shared.counters.gets.fetch_add(1, Ordering::SeqCst);
        let head = options.head;
        let options = self.shared.hook.get_options(location, options);
        let forward = async {
            let mut r = self.inner.get_opts(location, options).await?;
            r.meta = self.shared.hook.meta(r.meta);
            Ok(r)
        };
        let r = self.shared.run(Op::Get, location, forward).await;
        match &r {
            Ok(g) if !head => {
                self.shared
                    .counters
                    .body_bytes
                    .fetch_add(g.range.end.saturating_sub(g.range.start), Ordering::SeqCst);
            }
            Err(object_store::Error::NotModified { .. }) => {
                self.shared
                    .counters
                    .not_modified
                    .fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
        r
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let shared = Arc::clone(&self.shared);
        let inner = Arc::clone(&self.inner);
        locations
            .then(move |p| {
                let shared = Arc::clone(&shared);
                let inner = Arc::clone(&inner);
                async move {
                    let p = p?;
                    shared.counters.deletes.fetch_add(1, Ordering::SeqCst);
                    let one = futures::stream::once(futures::future::ready(Ok(p.clone()))).boxed();
                    shared
                        .run(Op::Delete, &p, async {
                            shared.hook.deleting(&p);
                            match inner.delete_stream(one).next().await {
                                Some(r) => r,
                                None => Ok(p.clone()),
                            }
                        })
                        .await
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.shared.counters.lists.fetch_add(1, Ordering::SeqCst);
        let at = prefix.cloned().unwrap_or_default();
        self.shared.list(&at, || self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.shared.counters.lists.fetch_add(1, Ordering::SeqCst);
        let at = prefix.cloned().unwrap_or_default();
        if !self.shared.hook.honours_list_offset() {
            return self.shared.list(&at, || self.inner.list(prefix));
        }
        self.shared
            .list(&at, || self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.shared.counters.lists.fetch_add(1, Ordering::SeqCst);
        let at = prefix.cloned().unwrap_or_default();
        let forward = async {
            let mut r = self.inner.list_with_delimiter(prefix).await?;
            let entries = r.objects.len().saturating_add(r.common_prefixes.len());
            let more = u64::try_from(entries.saturating_sub(1)).unwrap_or(u64::MAX) / PAGE;
            self.shared.counters.lists.fetch_add(more, Ordering::SeqCst);
            r.objects = r
                .objects
                .into_iter()
                .map(|m| self.shared.hook.listed(m))
                .collect();
            Ok(r)
        };
        self.shared.run(Op::List, &at, forward).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.shared.counters.puts.fetch_add(1, Ordering::SeqCst);
        self.inner.copy_opts(from, to, options).await
    }
}

/// The error a faulty listing starts with.
fn fault_error(path: &Path, fault: Fault) -> object_store::Error {
    match fault {
        Fault::Status(s) => status_error(path, Op::List, s),
        _ => injected(path, Op::List, "list failed"),
    }
}
