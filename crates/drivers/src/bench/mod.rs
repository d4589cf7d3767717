//! The benchmark behind `cairn bench` (and `cargo bench --bench ops`): what each operation
//! costs on a given store, next to the raw `object_store` calls that make its floor, and how
//! one lock behaves when 1, 4, 16 and 64 nodes compete for it. `cairn bench --membership`
//! measures membership at its defaults instead ([`membership`]).
//!
//! Everything runs under a scratch prefix (`<prefix>/cairn-bench-<uuid>`) that is deleted at
//! the end, so it can be pointed at a bucket in use: it never touches the prefix's own
//! protocol record or manifests.
//!
//! **Per operation**: requests per operation (counted by [`FaultStore`]), latency p50, p90
//! and p99, and the *floor*: the raw object_store calls the protocol needs for it (an etag-CAS
//! write: one `If-Match` PUT; a version-chain revalidation: one GET answered 404), timed
//! right before each iteration of the operation, with the ratio of the medians.
//!
//! **Contention**: N nodes (each its own [`Cairn`] handle and request counter, at the
//! default [`LockOptions`]) take turns on one lock until the time is up. A node acquires
//! (waiting, with the lock's own polling), holds the lock for [`BenchOptions::hold`],
//! releases it, and then stays out (in the harness, making no request) until another node
//! has acquired, so with more than one node every acquisition after the first is a handover
//! to a node that was waiting. Reported: handovers per second, requests per handover,
//! wasted requests (every request but one write to acquire and one to release) per waiting
//! node per second, and the latency from a release being sent to the next acquisition.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::Serialize;
use tokio::time::Instant;

use cairn::cache::CacheOptions;
use cairn::clock::{Clock, SystemClock};
use cairn::lock::{Acquire, HeldLock, LockOptions};
use cairn::manifest::{Change, Strategy, Write};
use cairn::store::fault::{Counts, FaultStore};
use cairn::store::keys::{self, Family};
use cairn::turn::{Claim, ClaimedTurn, TurnOptions};
use cairn::{Cairn, Name, StrategyChoice};

pub mod membership;
pub mod scale;

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Iterations of each operation. Default 50: on an S3-like store at a few ms a request
    /// the operations (each timed with its floor) take about 10 s a strategy.
    pub ops: usize,
    /// How many nodes compete for one lock, one run each. Default 1, 4, 16, 64.
    pub nodes: Vec<usize>,
    /// How long each contention run lasts. Default 3 s: at a handover every 100 ms or so,
    /// a run sees dozens, and the waiters' polling (pauses of 125 ms to 1 s, see
    /// [`LockOptions::poll_max`]).
    pub contention_for: Duration,
    /// How long a contending node holds the lock. Default 100 ms: longer than a few
    /// requests, so the nodes that were out see it held and wait by polling.
    pub hold: Duration,
    /// The strategies to measure; empty: every one the store supports.
    pub strategies: Vec<Strategy>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            ops: 50,
            nodes: vec![1, 4, 16, 64],
            contention_for: Duration::from_secs(3),
            hold: Duration::from_millis(100),
            strategies: Vec::new(),
        }
    }
}

/// Told how far the benchmark has got (the CLI draws a progress bar).
pub trait Progress: Send + Sync {
    /// A phase begins: `steps` steps (iterations, or milliseconds of a timed run).
    fn phase(&self, _name: &str, _steps: u64) {}
    /// `n` more steps are done.
    fn advance(&self, _n: u64) {}
}

/// No progress reports.
impl Progress for () {}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

impl Latency {
    fn of(mut times: Vec<Duration>) -> Option<Self> {
        if times.is_empty() {
            return None;
        }
        times.sort();
        let pct = |p: f64| {
            let i = ((times.len() as f64 * p) as usize).min(times.len() - 1);
            times[i].as_secs_f64() * 1e3
        };
        Some(Self {
            p50_ms: pct(0.5),
            p90_ms: pct(0.9),
            p99_ms: pct(0.99),
        })
    }
}

/// One measured operation.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What was measured.
    pub operation: String,
    /// The manifest strategy (`None` for raw object_store calls).
    pub strategy: Option<String>,
    /// Requests per operation, averaged over the iterations.
    pub requests_per_op: f64,
    /// Latency.
    pub latency: Latency,
    /// The raw calls (rows of [`Report::raw`]) that make this operation's floor.
    pub floor: Vec<String>,
    /// How many requests the floor is.
    pub floor_requests: usize,
    /// The median of the floor calls, timed together right before each iteration of the
    /// operation, in milliseconds.
    pub floor_p50_ms: Option<f64>,
    /// This operation's median over the floor's.
    pub ratio: Option<f64>,
}

/// One contention run.
#[derive(Debug, Clone, Serialize)]
pub struct ContentionRow {
    /// The manifest strategy.
    pub strategy: String,
    /// Nodes competing for the lock.
    pub nodes: usize,
    /// How long the run lasted, in seconds.
    pub seconds: f64,
    /// Successful acquisitions.
    pub acquisitions: u64,
    /// Acquisitions per second.
    pub handovers_per_s: f64,
    /// Every request of every node.
    pub requests: u64,
    /// Requests per acquisition.
    pub requests_per_handover: f64,
    /// Requests beyond one write to acquire and one to release, per waiting node (nodes − 1)
    /// per second; `None` with a single node.
    pub wasted_requests_per_waiter_per_s: Option<f64>,
    /// From a release being sent to the next acquisition returning.
    pub release_to_acquire: Option<Latency>,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The store, as given.
    pub store: String,
    /// Iterations of each operation.
    pub ops: usize,
    /// The raw object_store calls.
    pub raw: Vec<Row>,
    /// cairn's operations.
    pub operations: Vec<Row>,
    /// The contention runs.
    pub contention: Vec<ContentionRow>,
}

impl Report {
    /// The report as Markdown tables.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "### {} ({} iterations)\n", self.store, self.ops);
        let _ = writeln!(
            out,
            "| operation | requests/op | p50 | p90 | p99 | floor | floor p50 | p50 / floor |"
        );
        let _ = writeln!(
            out,
            "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |"
        );
        for r in self.raw.iter().chain(&self.operations) {
            let name = match &r.strategy {
                Some(s) => format!("[{s}] {}", r.operation),
                None => r.operation.clone(),
            };
            let floor = if r.strategy.is_none() {
                "—".to_string()
            } else if r.floor.is_empty() {
                "none".to_string()
            } else {
                r.floor.join(" + ")
            };
            let _ = writeln!(
                out,
                "| {name} | {:.2} | {:.3} ms | {:.3} ms | {:.3} ms | {floor} | {} | {} |",
                r.requests_per_op,
                r.latency.p50_ms,
                r.latency.p90_ms,
                r.latency.p99_ms,
                r.floor_p50_ms.map_or("—".into(), |f| format!("{f:.3} ms")),
                r.ratio.map_or("—".into(), |x| format!("{x:.2}×")),
            );
        }
        if !self.contention.is_empty() {
            let _ = writeln!(out, "\n#### one lock, N competing nodes\n");
            let _ = writeln!(
                out,
                "| strategy | nodes | handovers/s | requests/handover | wasted req/waiter/s | release→acquire p50 | p90 | p99 |"
            );
            let _ = writeln!(
                out,
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
            );
            for c in &self.contention {
                let lat = |f: fn(&Latency) -> f64| {
                    c.release_to_acquire
                        .as_ref()
                        .map_or("—".into(), |l| format!("{:.1} ms", f(l)))
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.1} | {:.2} | {} | {} | {} | {} |",
                    c.strategy,
                    c.nodes,
                    c.handovers_per_s,
                    c.requests_per_handover,
                    c.wasted_requests_per_waiter_per_s
                        .map_or("—".into(), |w| format!("{w:.2}")),
                    lat(|l| l.p50_ms),
                    lat(|l| l.p90_ms),
                    lat(|l| l.p99_ms),
                );
            }
        }
        out
    }
}

/// Why a benchmark stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// cairn failed.
    #[error(transparent)]
    Cairn(#[from] cairn::Error),
    /// A raw object_store call failed.
    #[error("raw object_store call failed: {0}")]
    Store(#[from] object_store::Error),
    /// An operation did not do what an uncontended run must (another writer on the scratch
    /// prefix?).
    #[error("benchmark: {0}")]
    Unexpected(String),
    /// The scratch folder of a local directory could not be removed.
    #[error("cannot remove the benchmark's scratch folder: {0}")]
    Io(std::io::Error),
}

type Result<T> = std::result::Result<T, BenchError>;

fn unexpected<T>(what: impl Into<String>) -> Result<T> {
    Err(BenchError::Unexpected(what.into()))
}

// Names of the raw calls, shared by the floors.
const RAW_CREATE: &str = "raw create (If-None-Match)";
const RAW_REPLACE: &str = "raw replace (If-Match)";
const RAW_GET: &str = "raw get";
const RAW_GET_ABSENT: &str = "raw get, absent (404)";
const RAW_GET_304: &str = "raw conditional get (304)";
const RAW_LIST: &str = "raw list (small folder)";

/// Runs the benchmark on `store` below `prefix`, and deletes what it wrote.
pub async fn run(
    store: Arc<dyn ObjectStore>,
    prefix: &str,
    label: &str,
    options: &BenchOptions,
    progress: &dyn Progress,
) -> Result<Report> {
    let root = prefix.trim_matches('/');
    let scratch = if root.is_empty() {
        format!("cairn-bench-{}", uuid::Uuid::new_v4())
    } else {
        format!("{root}/cairn-bench-{}", uuid::Uuid::new_v4())
    };
    let result = run_in(Arc::clone(&store), &scratch, label, options, progress).await;
    progress.phase("cleaning up", 1);
    let cleanup = delete_below(&store, &scratch).await;
    progress.advance(1);
    let report = result?;
    cleanup?;
    Ok(report)
}

/// Runs the membership benchmark ([`membership`]) on `store` below `prefix`, and deletes
/// what it wrote. `local_root` is the directory `store` keeps its objects in, when it is a
/// local directory: a heartbeat process killed in the middle of a write leaves the local
/// store's staging file (`<object>#<n>`), which no listing shows, so the scratch folder is
/// also removed from the disk.
pub async fn run_membership(
    store: Arc<dyn ObjectStore>,
    prefix: &str,
    local_root: Option<&std::path::Path>,
    label: &str,
    options: &membership::MembershipOptions,
    progress: &dyn Progress,
) -> Result<membership::MembershipReport> {
    let relative = format!("cairn-bench-{}", uuid::Uuid::new_v4());
    let root = prefix.trim_matches('/');
    let scratch = if root.is_empty() {
        relative.clone()
    } else {
        format!("{root}/{relative}")
    };
    let result = membership::run(
        Arc::clone(&store),
        &scratch,
        &relative,
        label,
        options,
        progress,
    )
    .await;
    progress.phase("cleaning up", 1);
    let mut cleanup = delete_below(&store, &scratch).await;
    if let (Ok(()), Some(root)) = (&cleanup, local_root) {
        match std::fs::remove_dir_all(root.join(&scratch)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                cleanup = Err(BenchError::Io(e));
            }
            _ => {}
        }
    }
    progress.advance(1);
    let report = result?;
    cleanup?;
    Ok(report)
}

/// Runs `cairn bench --scale` ([`scale`]) on `store` below `prefix`, and deletes what it
/// wrote.
pub async fn run_scale(
    store: Arc<dyn ObjectStore>,
    prefix: &str,
    label: &str,
    options: &scale::ScaleOptions,
    progress: &dyn Progress,
) -> Result<scale::ScaleReport> {
    let root = prefix.trim_matches('/');
    let scratch = if root.is_empty() {
        format!("cairn-bench-{}", uuid::Uuid::new_v4())
    } else {
        format!("{root}/cairn-bench-{}", uuid::Uuid::new_v4())
    };
    let result = scale::run(Arc::clone(&store), &scratch, label, options, progress).await;
    progress.phase("cleaning up", 1);
    let cleanup = delete_below(&store, &scratch).await;
    progress.advance(1);
    let report = result?;
    cleanup?;
    Ok(report)
}

async fn run_in(
    store: Arc<dyn ObjectStore>,
    scratch: &str,
    label: &str,
    options: &BenchOptions,
    progress: &dyn Progress,
) -> Result<Report> {
    let mut b = Bench {
        counted: Arc::new(FaultStore::new(Arc::clone(&store), 0)),
        raw_calls: None,
        raw: Vec::new(),
        rows: Vec::new(),
        iterations: options.ops.max(1),
        progress,
    };
    // Which strategies: the probe's answer, unless the caller chose. A full node (an
    // observer never probes) on a scratch prefix of its own, removed with the rest.
    let probe = Cairn::builder(Arc::clone(&store))
        .prefix(format!("{scratch}/probe"))
        .node("bench")?
        .build()
        .await?;
    let strategies: Vec<Strategy> = if options.strategies.is_empty() {
        [Strategy::EtagCas, Strategy::VersionChain]
            .into_iter()
            .filter(|s| probe.capabilities().is_none_or(|c| s.supported_by(c)))
            .collect()
    } else {
        options.strategies.clone()
    };
    raw_ops(&mut b, scratch).await?;
    for &s in &strategies {
        cairn_ops(&mut b, &format!("{scratch}/{s}"), s).await?;
    }
    let mut contention = Vec::new();
    for &s in &strategies {
        for &n in &options.nodes {
            contention.push(
                contend(
                    &store,
                    &format!("{scratch}/{s}"),
                    s,
                    n.max(1),
                    options.contention_for,
                    options.hold,
                    progress,
                )
                .await?,
            );
        }
    }
    Ok(Report {
        store: label.to_string(),
        ops: b.iterations,
        raw: b.raw,
        operations: b.rows,
        contention,
    })
}

/// Deletes every object below `prefix` (bulk deletes where the store has them).
async fn delete_below(store: &Arc<dyn ObjectStore>, prefix: &str) -> Result<()> {
    let p = Path::from(prefix);
    let locations = store.list(Some(&p)).map_ok(|m| m.location).boxed();
    store
        .delete_stream(locations)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

struct Bench<'a> {
    counted: Arc<FaultStore>,
    raw_calls: Option<Arc<Raw>>,
    raw: Vec<Row>,
    rows: Vec<Row>,
    iterations: usize,
    progress: &'a dyn Progress,
}

impl Bench<'_> {
    /// Runs `setup` (not timed, not counted), then the `floor` calls (timed together, not
    /// counted), then `f`, `iterations` times. Timing the floor right before the operation,
    /// iteration by iteration, keeps the ratio honest on a machine whose speed drifts.
    async fn measure<S, SFut, F, Fut>(
        &mut self,
        op: &str,
        strategy: Option<Strategy>,
        floor: &[&str],
        mut setup: S,
        mut f: F,
    ) -> Result<()>
    where
        S: FnMut(usize) -> SFut,
        SFut: std::future::Future<Output = Result<()>>,
        F: FnMut(usize) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let name = match strategy {
            Some(s) => format!("[{s}] {op}"),
            None => op.to_string(),
        };
        // A floor made of calls this store lacks (If-Match on the filesystem) has no figure.
        let raw = self
            .raw_calls
            .clone()
            .filter(|r| !floor.is_empty() && floor.iter().all(|f| r.has(f)));
        self.progress.phase(&name, self.iterations as u64);
        let mut requests = 0;
        let mut times = Vec::with_capacity(self.iterations);
        let mut floor_times = Vec::with_capacity(self.iterations);
        for i in 0..self.iterations {
            setup(i).await?;
            if let Some(raw) = &raw {
                let t = Instant::now();
                for call in floor {
                    raw.call(call).await?;
                }
                floor_times.push(t.elapsed());
            }
            let before: Counts = self.counted.counts();
            let t = Instant::now();
            f(i).await?;
            times.push(t.elapsed());
            requests += self.counted.counts().since(&before).requests();
            self.progress.advance(1);
        }
        let latency = Latency::of(times).unwrap_or(Latency {
            p50_ms: 0.0,
            p90_ms: 0.0,
            p99_ms: 0.0,
        });
        let floor_p50 = Latency::of(floor_times).map(|l| l.p50_ms);
        let row = Row {
            operation: op.to_string(),
            strategy: strategy.map(|s| s.to_string()),
            requests_per_op: requests as f64 / self.iterations as f64,
            latency,
            floor: floor.iter().map(|s| s.to_string()).collect(),
            floor_requests: floor.len(),
            floor_p50_ms: floor_p50,
            ratio: floor_p50.map(|f| latency.p50_ms / f.max(1e-6)),
        };
        match strategy {
            None => self.raw.push(row),
            Some(_) => self.rows.push(row),
        }
        Ok(())
    }
}

async fn none(_: usize) -> Result<()> {
    Ok(())
}

/// The raw object_store calls, on objects of their own below the scratch prefix.
struct Raw {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    body: PutPayload,
    /// The object replaced with If-Match, read, and read conditionally.
    one: Path,
    /// Its etag and version (a GCS replace is conditioned on the version).
    etag: Mutex<UpdateVersion>,
    supports_update: bool,
    next: AtomicU64,
}

impl Raw {
    async fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<Self> {
        let body = PutPayload::from_static(br#"{"write_id":"x","body":{"holder":"node-1"}}"#);
        let one = Path::from(format!("{prefix}/raw/replaced"));
        let created = store
            .put_opts(&one, body.clone(), PutMode::Create.into())
            .await?;
        let mut etag = UpdateVersion {
            e_tag: created.e_tag,
            version: created.version,
        };
        let supports_update = store
            .put_opts(&one, body.clone(), PutMode::Update(etag.clone()).into())
            .await
            .map(|r| {
                etag = UpdateVersion {
                    e_tag: r.e_tag,
                    version: r.version,
                }
            })
            .is_ok();
        for i in 0..3 {
            let p = Path::from(format!("{prefix}/raw/small/{i}"));
            store
                .put_opts(&p, body.clone(), PutOptions::default())
                .await?;
        }
        Ok(Self {
            store,
            prefix: prefix.to_string(),
            body,
            one,
            etag: Mutex::new(etag),
            supports_update,
            next: AtomicU64::new(0),
        })
    }

    fn has(&self, call: &str) -> bool {
        call != RAW_REPLACE || self.supports_update
    }

    fn etag(&self) -> UpdateVersion {
        self.etag.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn call(&self, call: &str) -> Result<()> {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let s = &self.store;
        match call {
            RAW_CREATE => {
                let p = Path::from(format!("{}/raw/created/{n}", self.prefix));
                s.put_opts(&p, self.body.clone(), PutMode::Create.into())
                    .await?;
            }
            RAW_REPLACE => {
                let mode = PutMode::Update(self.etag());
                let r = s
                    .put_opts(&self.one, self.body.clone(), mode.into())
                    .await?;
                *self.etag.lock().unwrap_or_else(|e| e.into_inner()) = UpdateVersion {
                    e_tag: r.e_tag,
                    version: r.version,
                };
            }
            RAW_GET => {
                s.get_opts(&self.one, GetOptions::default())
                    .await?
                    .bytes()
                    .await?;
            }
            RAW_GET_ABSENT => {
                let p = Path::from(format!("{}/raw/absent/{n}", self.prefix));
                match s.get_opts(&p, GetOptions::default()).await {
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                    Ok(_) => return unexpected("an absent key was found"),
                }
            }
            RAW_GET_304 => {
                let opts = GetOptions::new().with_if_none_match(self.etag().e_tag);
                match s.get_opts(&self.one, opts).await {
                    // A store without conditional GET answers 200: still one request.
                    Ok(_) | Err(object_store::Error::NotModified { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            RAW_LIST => {
                let p = Path::from(format!("{}/raw/small", self.prefix));
                s.list(Some(&p)).try_collect::<Vec<_>>().await?;
            }
            other => return unexpected(format!("no raw call {other:?}")),
        }
        Ok(())
    }
}

async fn raw_ops(b: &mut Bench<'_>, prefix: &str) -> Result<()> {
    let raw = Arc::new(Raw::new(b.counted.clone(), prefix).await?);
    b.raw_calls = Some(Arc::clone(&raw));
    for call in [
        RAW_CREATE,
        RAW_REPLACE,
        RAW_GET,
        RAW_GET_ABSENT,
        RAW_GET_304,
        RAW_LIST,
    ] {
        if raw.has(call) {
            let r = Arc::clone(&raw);
            b.measure(call, None, &[], none, |_| {
                let r = Arc::clone(&r);
                async move { r.call(call).await }
            })
            .await?;
        }
    }
    Ok(())
}

/// The floors: `write` is one conditional write (a renewal or a release continues a claim
/// with just that), `start` a write that starts something (an acquisition, a claim, an
/// update: on the version chain the create and its read of slot 1, for a chain created
/// again above it), `read_start` a read and such a write, `peek` one read that finds the
/// manifest unchanged.
struct Floors {
    write: &'static str,
    start: &'static [&'static str],
    read_start: &'static [&'static str],
    read: &'static str,
    peek: &'static str,
}

fn floors(strategy: Strategy) -> Floors {
    match strategy {
        Strategy::EtagCas => Floors {
            write: RAW_REPLACE,
            start: &[RAW_REPLACE],
            read_start: &[RAW_GET, RAW_REPLACE],
            read: RAW_GET,
            peek: RAW_GET_304,
        },
        // A chain reads a recently known manifest by finding its next version absent.
        Strategy::VersionChain => Floors {
            write: RAW_CREATE,
            start: &[RAW_CREATE, RAW_GET],
            read_start: &[RAW_GET_ABSENT, RAW_CREATE, RAW_GET],
            read: RAW_GET_ABSENT,
            peek: RAW_GET_ABSENT,
        },
    }
}

type Shared<T> = Arc<tokio::sync::Mutex<T>>;

async fn cairn_ops(b: &mut Bench<'_>, prefix: &str, strategy: Strategy) -> Result<()> {
    let c = Cairn::builder(b.counted.clone())
        .prefix(prefix)
        .node("bench")?
        .strategy(StrategyChoice::Fixed(strategy))
        .build()
        .await?;
    let f = floors(strategy);
    let s = Some(strategy);
    let name = |i: usize| Name::new(format!("m{i}"));
    let cc = c.clone();
    b.measure("manifest create", s, &[RAW_CREATE], none, |i| {
        let cc = cc.clone();
        async move {
            let m = cc.manifest::<u64>("bench", keys::manifest(Family::Scratch, &name(i)?));
            match m.create(1).await? {
                Write::Written(_) => Ok(()),
                Write::Conflict(_) => unexpected("a new manifest's create conflicted"),
            }
        }
    })
    .await?;
    let m = c.manifest::<u64>(
        "bench",
        keys::manifest(Family::Scratch, &Name::new("counter")?),
    );
    let Write::Written(first) = m.create(0).await? else {
        return unexpected("a new manifest's create conflicted");
    };
    let cur = Arc::new(Mutex::new(first));
    let (m2, cur2) = (m.clone(), cur.clone());
    b.measure("manifest write (known version)", s, f.start, none, |_| {
        let (m, cur) = (m2.clone(), cur2.clone());
        async move {
            let known = cur.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let Write::Written(s) = m.write(Some(&known), known.body + 1).await? else {
                return unexpected("an uncontended write conflicted");
            };
            *cur.lock().unwrap_or_else(|e| e.into_inner()) = s;
            Ok(())
        }
    })
    .await?;
    let (m2, cur2) = (m.clone(), cur.clone());
    b.measure(
        "manifest renewal (continues a claim)",
        s,
        &[f.write],
        none,
        |_| {
            let (m, cur) = (m2.clone(), cur2.clone());
            async move {
                let known = cur.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let Write::Written(s) = m.continue_claim_for_bench(&known, known.body + 1).await?
                else {
                    return unexpected("an uncontended renewal conflicted");
                };
                *cur.lock().unwrap_or_else(|e| e.into_inner()) = s;
                Ok(())
            }
        },
    )
    .await?;
    let m2 = m.clone();
    b.measure("manifest load", s, &[f.read], none, |_| {
        let m = m2.clone();
        async move {
            m.load().await?;
            Ok(())
        }
    })
    .await?;
    let m2 = m.clone();
    b.measure(
        "manifest update (load + write)",
        s,
        f.read_start,
        none,
        |_| {
            let m = m2.clone();
            async move {
                m.update(|c| Change::Write(c.map_or(0, |s| s.body) + 1))
                    .await?;
                Ok(())
            }
        },
    )
    .await?;
    let known = m
        .load()
        .await?
        .ok_or_else(|| BenchError::Unexpected("the counter vanished".into()))?;
    let m2 = m.clone();
    b.measure("revalidate unchanged", s, &[f.peek], none, |_| {
        let (m, k) = (m2.clone(), known.clone());
        async move {
            m.revalidate(&k).await?;
            Ok(())
        }
    })
    .await?;
    lock_ops(b, &c, strategy).await?;
    turn_and_view_ops(b, &c, strategy).await
}

async fn lock_ops(b: &mut Bench<'_>, c: &Cairn, strategy: Strategy) -> Result<()> {
    let (f, s) = (floors(strategy), Some(strategy));
    let locks = c.locks(LockOptions::default())?;
    let taken: Shared<Vec<HeldLock>> = Arc::default();
    let (l2, t2) = (locks.clone(), taken.clone());
    b.measure("lock acquire, new lock", s, &[RAW_CREATE], none, |i| {
        let (l, t) = (l2.clone(), t2.clone());
        async move {
            let Acquire::Held(lease) = l.try_acquire(&Name::new(format!("l{i}"))?).await? else {
                return unexpected("a new lock was busy");
            };
            t.lock().await.push(lease);
            Ok(())
        }
    })
    .await?;
    // Release them all before measuring on, so their renewals do not count against later ops.
    for l in std::mem::take(&mut *taken.lock().await) {
        l.release().await?;
    }
    // One lock acquired and released over and over: the client remembers the tombstone it
    // wrote, so a re-acquire is one conditional write.
    let hot = Name::new("hot")?;
    let held: Shared<Option<HeldLock>> = Arc::default();
    let acquire = |locks: cairn::Locks, held: Shared<Option<HeldLock>>, hot: Name| async move {
        let Acquire::Held(lease) = locks.try_acquire(&hot).await? else {
            return unexpected("an uncontended lock was busy");
        };
        *held.lock().await = Some(lease);
        Ok(())
    };
    let release = |held: Shared<Option<HeldLock>>| async move {
        if let Some(l) = held.lock().await.take() {
            l.release().await?;
        }
        Ok(())
    };
    acquire(locks.clone(), held.clone(), hot.clone()).await?;
    release(held.clone()).await?;
    b.measure(
        "lock re-acquire (released lock)",
        s,
        f.start,
        |_| release(held.clone()),
        |_| acquire(locks.clone(), held.clone(), hot.clone()),
    )
    .await?;
    b.measure(
        "lock release",
        s,
        &[f.write],
        |_| {
            let (l, h, n) = (locks.clone(), held.clone(), hot.clone());
            async move {
                if h.lock().await.is_none() {
                    acquire(l, h, n).await?;
                }
                Ok(())
            }
        },
        |_| release(held.clone()),
    )
    .await
}

/// Turns (one-shot claims, outcomes, the not-due check) and a cached view's revalidation.
async fn turn_and_view_ops(b: &mut Bench<'_>, c: &Cairn, strategy: Strategy) -> Result<()> {
    let (f, s) = (floors(strategy), Some(strategy));
    // A handle whose wall clock the harness moves a day on before each claim (outside the
    // timer and the count), over a store whose clock moves with it: every turn is due, and
    // the node's clock check (made in the same untimed step) finds its clock in step.
    let days = Arc::new(Leaping::new(SystemClock.now()));
    let leaping = Cairn::builder(Arc::new(FaultStore::stamped(
        Arc::clone(c.store().object_store()),
        0,
        days.clone(),
    )))
    .prefix(c.store().root().to_string())
    .node("bench")?
    .clock(days.clone())
    .build()
    .await?;
    let next_day = {
        let (days, leaping) = (days.clone(), leaping.clone());
        move || {
            let (days, leaping) = (days.clone(), leaping.clone());
            async move {
                days.leap();
                leaping.manifests().witness().await?;
                Ok::<(), cairn::Error>(())
            }
        }
    };
    let due = leaping.turns(TurnOptions {
        window: Duration::from_secs(1),
        jitter: Duration::ZERO,
        adopt_stored: false,
    });
    let turn = Name::new("sweep")?;
    let claimed: Shared<Option<ClaimedTurn>> = Arc::default();
    // Each claim's outcome is recorded before the next (outside the timer and the count).
    let finish = |c: Shared<Option<ClaimedTurn>>| async move {
        if let Some(w) = c.lock().await.take() {
            w.finish(Ok(None)).await?;
        }
        Ok::<(), BenchError>(())
    };
    let (t2, n2, c2, c4) = (due.clone(), turn.clone(), claimed.clone(), claimed.clone());
    let day = next_day.clone();
    b.measure(
        "turn claim, due (read + claim)",
        s,
        f.read_start,
        move |_| {
            let (c, day) = (c4.clone(), day.clone());
            async move {
                finish(c).await?;
                day().await?;
                Ok(())
            }
        },
        move |_| {
            let (t, n, c) = (t2.clone(), n2.clone(), c2.clone());
            async move {
                let Claim::Won(w) = t.try_claim(&n).await? else {
                    return unexpected("a leaping clock finds every turn due");
                };
                *c.lock().await = Some(*w);
                Ok(())
            }
        },
    )
    .await?;
    let (t2, n2, c2, c3) = (due.clone(), turn.clone(), claimed.clone(), claimed.clone());
    b.measure(
        "turn finish (record outcome)",
        s,
        &[f.write],
        move |_| {
            let (t, n, c, day) = (t2.clone(), n2.clone(), c2.clone(), next_day.clone());
            async move {
                if c.lock().await.is_none() {
                    day().await?;
                    if let Claim::Won(w) = t.try_claim(&n).await? {
                        *c.lock().await = Some(*w);
                    }
                }
                Ok(())
            }
        },
        move |_| {
            let c = c3.clone();
            async move {
                let Some(w) = c.lock().await.take() else {
                    return unexpected("no claimed turn to finish");
                };
                w.finish(Ok(None)).await?;
                Ok(())
            }
        },
    )
    .await?;
    let not_due = c.turns(TurnOptions {
        adopt_stored: true,
        ..TurnOptions::default()
    });
    let n2 = turn.clone();
    b.measure("turn check, not due", s, &[f.read], none, |_| {
        let (t, n) = (not_due.clone(), n2.clone());
        async move {
            match t.try_claim(&n).await? {
                Claim::NotDue { .. } => Ok(()),
                _ => unexpected("a turn started days ahead was due"),
            }
        }
    })
    .await?;
    let streams = c.streams();
    let stream = Name::new("clicks")?;
    let _ = streams.create(&stream, serde_json::json!({})).await?;
    let view = streams.view(CacheOptions {
        fresh: Duration::ZERO,
        ..CacheOptions::for_streams()
    });
    view.get(&stream).await?;
    let s2 = stream.clone();
    b.measure(
        "cached view get, expired (revalidate)",
        s,
        &[f.peek],
        none,
        |_| {
            let (v, n) = (&view, s2.clone());
            async move {
                v.get(&n).await?;
                Ok(())
            }
        },
    )
    .await?;
    let fresh = streams.view(CacheOptions::for_streams());
    fresh.get(&stream).await?;
    b.measure("cached view get, fresh", s, &[], none, |_| {
        let (v, n) = (&fresh, stream.clone());
        async move {
            v.get(&n).await?;
            Ok(())
        }
    })
    .await
}

/// A wall clock that stands still until [`Leaping::leap`] moves it a day on.
#[derive(Debug)]
struct Leaping(Mutex<chrono::DateTime<chrono::Utc>>);

impl Leaping {
    fn new(start: chrono::DateTime<chrono::Utc>) -> Self {
        Self(Mutex::new(start))
    }

    fn leap(&self) {
        let mut t = self.0.lock().unwrap();
        *t = t
            .checked_add_signed(chrono::Duration::days(1))
            .unwrap_or(*t);
    }
}

impl Clock for Leaping {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        *self.0.lock().unwrap()
    }
}

/// What the contending nodes share (harness-side, costing no request).
struct Race {
    /// Acquisitions so far; nodes that released wait on it for another node's turn.
    acquisitions: tokio::sync::watch::Sender<u64>,
    released_at: Mutex<Option<Instant>>,
    handover_times: Mutex<Vec<Duration>>,
}

/// `nodes` nodes take turns on one lock for `time`.
async fn contend(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    strategy: Strategy,
    nodes: usize,
    time: Duration,
    hold: Duration,
    progress: &dyn Progress,
) -> Result<ContentionRow> {
    progress.phase(
        &format!("[{strategy}] contention, {nodes} nodes"),
        u64::try_from(time.as_millis()).unwrap_or(u64::MAX),
    );
    let lock = Name::new(format!("contended-{nodes}"))?;
    let race = Arc::new(Race {
        acquisitions: tokio::sync::watch::Sender::new(0),
        released_at: Mutex::new(None),
        handover_times: Mutex::new(Vec::new()),
    });
    let mut counters = Vec::with_capacity(nodes);
    let mut handles = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let counted = Arc::new(FaultStore::new(Arc::clone(store), i as u64));
        let c = Cairn::builder(counted.clone())
            .prefix(prefix)
            .node(format!("node-{i}"))?
            .strategy(StrategyChoice::Fixed(strategy))
            .build()
            .await?;
        counters.push((counted.clone(), counted.counts()));
        handles.push(c.locks(LockOptions::default())?);
    }
    let start = Instant::now();
    let deadline = start + time;
    let mut tasks = Vec::with_capacity(nodes);
    for locks in handles {
        let (race, lock) = (Arc::clone(&race), lock.clone());
        tasks.push(tokio::spawn(async move {
            compete(locks, lock, race, nodes, hold, deadline).await
        }));
    }
    // Progress while the nodes compete.
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let mut shown = 0u64;
    while Instant::now() < deadline {
        ticker.tick().await;
        let ms = u64::try_from(start.elapsed().min(time).as_millis()).unwrap_or(0);
        progress.advance(ms.saturating_sub(shown));
        shown = ms;
    }
    for t in tasks {
        t.await
            .map_err(|e| BenchError::Unexpected(format!("a contending node failed: {e}")))??;
    }
    let seconds = start.elapsed().as_secs_f64();
    let requests: u64 = counters
        .iter()
        .map(|(c, before)| c.counts().since(before).requests())
        .sum();
    let acquisitions = *race.acquisitions.borrow();
    let useful = acquisitions.saturating_mul(2);
    let times = std::mem::take(
        &mut *race
            .handover_times
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    Ok(ContentionRow {
        strategy: strategy.to_string(),
        nodes,
        seconds,
        acquisitions,
        handovers_per_s: acquisitions as f64 / seconds,
        requests,
        requests_per_handover: requests as f64 / acquisitions.max(1) as f64,
        wasted_requests_per_waiter_per_s: (nodes > 1)
            .then(|| requests.saturating_sub(useful) as f64 / ((nodes - 1) as f64 * seconds)),
        release_to_acquire: Latency::of(times),
    })
}

/// One node: acquire (waiting until the deadline), hold, release, and then, with other
/// nodes about, stay out until one of them has acquired before competing again.
async fn compete(
    locks: cairn::Locks,
    lock: Name,
    race: Arc<Race>,
    nodes: usize,
    hold: Duration,
    deadline: Instant,
) -> Result<()> {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(());
        }
        let lease = match locks.acquire(&lock, Some(deadline - now)).await? {
            Acquire::Held(l) => l,
            Acquire::Busy(_) => return Ok(()),
        };
        let acquired_at = Instant::now();
        let mut mine = 0;
        race.acquisitions.send_modify(|n| {
            *n += 1;
            mine = *n;
        });
        if let Some(r) = race
            .released_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            race.handover_times
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(acquired_at.saturating_duration_since(r));
        }
        tokio::time::sleep(hold).await;
        *race.released_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        lease.release().await?;
        if nodes > 1 {
            let mut rx = race.acquisitions.subscribe();
            let _ = tokio::time::timeout_at(deadline, rx.wait_for(|&n| n != mine)).await;
        }
    }
}
