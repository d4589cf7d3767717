//! `cairn bench --scale N,…`: what the listings and the cached views cost as the fleet grows.
//!
//! For each N, N locks, N streams and N member records are written through the library
//! (concurrently, [`ScaleOptions::concurrency`] at a time, not measured), and then measured,
//! each with a fresh handle, on the same store in the same run:
//!
//! - the listings: `Locks::list` (`lock ls`), `Streams::list` (`stream ls`) and
//!   `Nodes::list` (`node ls`);
//! - the cached views ([`cairn::stream::StreamView`], [`cairn::node::NodeView`], with
//!   `fresh` zero so that every list is a refresh): the first list, then a refresh after 0 %,
//!   1 % and 100 % of the entries changed (a stream's metadata updated, a member's heartbeat
//!   written).
//!
//! Next to each, the raw object_store calls of the same objects: for a listing, a LIST of the
//! folder and a GET of every listed object, [`ScaleOptions::concurrency`] in flight; for a
//! refresh, a LIST and a GET of each object whose etag changed since the previous raw
//! listing (the floor of a refresh). Requests are counted by [`FaultStore`], LIST requests
//! as S3 pages them (one, and one more every 1,000 keys read; a local directory has no
//! pages, but is counted the same way, to compare). The ratio is cairn's wall time over the
//! raw calls'.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use serde::Serialize;
use tokio::time::Instant;

use super::{unexpected, Progress, Result};
use cairn::cache::CacheOptions;
use cairn::lock::{Acquire, LockOptions};
use cairn::manifest::{Change, Strategy};
use cairn::node::{NodeOptions, NodeRecord, Presence};
use cairn::store::fault::{Counts, FaultStore};
use cairn::store::keys::Family;
use cairn::{Cairn, Name, StrategyChoice};

/// What to run.
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    /// The fleet sizes: N locks, N streams and N member records each.
    pub sizes: Vec<usize>,
    /// Requests in flight at once while seeding and in the raw GETs. Default 32.
    pub concurrency: usize,
    /// The strategy; `None`: the one the store's probe picks.
    pub strategy: Option<Strategy>,
}

impl Default for ScaleOptions {
    fn default() -> Self {
        Self {
            sizes: vec![1000],
            concurrency: 32,
            strategy: None,
        }
    }
}

/// One measured listing or refresh, and the raw calls of the same objects.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleRow {
    /// N: locks, streams or member records in the store.
    pub objects: usize,
    /// What was measured (`lock ls (Locks::list)`, `stream view refresh, 1% changed`, …).
    pub operation: String,
    /// Entries changed before a refresh (`None` for a listing or a first read).
    pub changed: Option<usize>,
    /// cairn's requests: LISTs (as pages) + GETs + PUTs + DELETEs.
    pub requests: u64,
    /// Of which LIST requests, as S3 pages them.
    pub lists: u64,
    /// Of which GETs (304s included).
    pub gets: u64,
    /// cairn's wall time, in milliseconds.
    pub ms: f64,
    /// The raw calls' requests.
    pub raw_requests: u64,
    /// The raw calls' wall time, in milliseconds.
    pub raw_ms: f64,
    /// `ms` over `raw_ms`.
    pub ratio: Option<f64>,
}

/// Everything one `--scale` run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleReport {
    /// The store, as given.
    pub store: String,
    /// The manifest strategy.
    pub strategy: String,
    /// Requests in flight at once in the raw GETs (and the seeding).
    pub concurrency: usize,
    /// The rows, by N, then in the order measured.
    pub rows: Vec<ScaleRow>,
}

impl ScaleReport {
    /// The report as a Markdown table.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "### {} ([{}], raw GETs {} at a time)\n",
            self.store, self.strategy, self.concurrency
        );
        let _ = writeln!(
            out,
            "| N | operation | requests | LISTs | GETs | wall | raw requests | raw wall | wall / raw |"
        );
        let _ = writeln!(
            out,
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {:.0} ms | {} | {:.0} ms | {} |",
                r.objects,
                r.operation,
                r.requests,
                r.lists,
                r.gets,
                r.ms,
                r.raw_requests,
                r.raw_ms,
                r.ratio.map_or("—".into(), |x| format!("{x:.1}×")),
            );
        }
        out
    }
}

/// The counted store: requests (with LISTs as pages) taken before and after a measurement.
struct Counter {
    store: Arc<FaultStore>,
}

/// Requests of one measurement.
#[derive(Debug, Clone, Copy)]
struct Cost {
    lists: u64,
    gets: u64,
    requests: u64,
}

impl Counter {
    fn mark(&self) -> Counts {
        self.store.counts()
    }

    /// `FaultStore` counts LIST requests as S3 pages them (one, and one more every 1,000
    /// keys read).
    fn since(&self, mark: Counts) -> Cost {
        let d = self.mark().since(&mark);
        Cost {
            lists: d.lists,
            gets: d.gets,
            requests: d.requests(),
        }
    }
}

/// The raw calls' view of a folder: each object's etag as last listed.
type Etags = HashMap<Path, Option<String>>;

/// Runs `--scale` on `store` below `scratch` (which the caller deletes).
pub(super) async fn run(
    store: Arc<dyn ObjectStore>,
    scratch: &str,
    label: &str,
    options: &ScaleOptions,
    progress: &dyn Progress,
) -> Result<ScaleReport> {
    let counter = Counter {
        store: Arc::new(FaultStore::new(Arc::clone(&store), 0)),
    };
    let concurrency = options.concurrency.max(1);
    let mut rows = Vec::new();
    let mut strategy_used = None;
    for (i, &n) in options.sizes.iter().enumerate() {
        let prefix = format!("{scratch}/n{i}-{n}");
        let mut builder = Cairn::builder(Arc::clone(&store))
            .prefix(prefix.clone())
            .node("bench-seed")?;
        if let Some(s) = options.strategy {
            builder = builder.strategy(StrategyChoice::Fixed(s));
        }
        let seed = builder.build().await?;
        let strategy = seed.strategy();
        strategy_used = Some(strategy);
        let m = Measure {
            counter: &counter,
            prefix: &prefix,
            strategy,
            n,
            concurrency,
        };
        let names: Vec<Name> = (0..n)
            .map(|i| Name::new(format!("n{i:06}")))
            .collect::<cairn::Result<_>>()?;
        progress.phase(&format!("N={n}: seeding"), 3 * n as u64);

        // Locks: acquired and released, as a fleet leaves them.
        let locks = seed.locks(LockOptions::default())?;
        each(&names, concurrency, |name| {
            let locks = locks.clone();
            async move {
                match locks.try_acquire(name).await? {
                    Acquire::Held(lease) => lease.release().await?,
                    Acquire::Busy(_) => return unexpected(format!("lock {name} was busy")),
                }
                progress.advance(1);
                Ok(())
            }
        })
        .await?;

        let streams = seed.streams();
        each(&names, concurrency, |name| {
            let streams = streams.clone();
            async move {
                let created = streams
                    .create(name, serde_json::json!({ "rev": 0 }))
                    .await?;
                if !matches!(created, cairn::stream::Create::Created(_)) {
                    return unexpected(format!("stream {name} existed"));
                }
                progress.advance(1);
                Ok(())
            }
        })
        .await?;

        let members = seed.nodes(NodeOptions::default());
        // Records of live nodes: a heartbeat interval long enough that every node is still
        // online when the views read it, however long seeding and the listings before take
        // (at 10,000 on LocalStack, minutes). A node past its timeout is read again before
        // its verdict when the view's `fresh` (zero here) is shorter than the time since its
        // listing, which would measure dead nodes, not a refresh.
        let interval_ms = SEED_INTERVAL_MS;
        each(&names, concurrency, |name| {
            let members = members.clone();
            let clock = Arc::clone(seed.manifests().clock());
            async move {
                let now = clock.now();
                let record = NodeRecord {
                    state: Presence::Alive,
                    session: uuid::Uuid::new_v4().to_string(),
                    interval_ms,
                    started_at: now,
                    heartbeat_at: now,
                    beats: 1,
                    write_latency_ms: 0.0,
                };
                let created = members.collection().open(name).create(record).await?;
                if !matches!(created, cairn::manifest::Write::Written(_)) {
                    return unexpected(format!("member record {name} existed"));
                }
                progress.advance(1);
                Ok(())
            }
        })
        .await?;

        progress.phase(&format!("N={n}: measuring"), 13);
        // The listings.
        let (raw, _) = m.raw_all(Family::Lock).await?;
        let viewer = m.viewer().await?;
        let locks = viewer.locks(LockOptions::default())?;
        let cost = m.time(|| async { locks.list().await.map(|_| ()) }).await?;
        rows.push(m.row("lock ls (Locks::list)", None, cost, raw));
        progress.advance(1);

        let (raw, mut stream_tags) = m.raw_all(Family::Stream).await?;
        let viewer = m.viewer().await?;
        let streams_v = viewer.streams();
        let cost = m
            .time(|| async { streams_v.list().await.map(|_| ()) })
            .await?;
        rows.push(m.row("stream ls (Streams::list)", None, cost, raw));
        progress.advance(1);

        // Where this prefix keeps its nodes (a fresh prefix: `nodes/`).
        let node_family = seed.manifests().node_family();
        let (raw, mut member_tags) = m.raw_all(node_family).await?;
        let viewer = m.viewer().await?;
        let members_v = viewer.nodes(NodeOptions::default());
        let cost = m
            .time(|| async { members_v.list().await.map(|_| ()) })
            .await?;
        rows.push(m.row("node ls (Nodes::list)", None, cost, raw));
        progress.advance(1);

        // The cached views: every list a refresh.
        let refresh = CacheOptions {
            fresh: Duration::ZERO,
            ..CacheOptions::for_streams()
        };
        let viewer = m.viewer().await?;
        let stream_view = viewer.streams().view(CacheOptions {
            // Room for every entry and the listing itself: an LRU cache one short of the
            // family evicts, in a pass in name order, each entry just before it is needed.
            capacity: n.saturating_add(64),
            ..refresh
        });
        let (raw_first, _) = m.raw_all(Family::Stream).await?;
        let cost = m
            .time(|| async { stream_view.list().await.map(|_| ()) })
            .await?;
        rows.push(m.row("stream view, first list", None, cost, raw_first));
        progress.advance(1);
        let viewer = m.viewer().await?;
        let member_view = viewer.nodes(NodeOptions::default()).view(CacheOptions {
            capacity: n.saturating_add(64),
            fresh: Duration::ZERO,
            ..CacheOptions::for_nodes(NodeOptions::default().interval)
        });
        let (raw_first, _) = m.raw_all(node_family).await?;
        let cost = m
            .time(|| async { member_view.list().await.map(|_| ()) })
            .await?;
        rows.push(m.row("node view, first list", None, cost, raw_first));
        progress.advance(1);

        for pct in [0usize, 1, 100] {
            let k = (n * pct).div_ceil(100);
            let changed = &names[..k.min(names.len())];
            // Streams: metadata updated.
            each(changed, concurrency, |name| {
                let streams = streams.clone();
                async move {
                    streams
                        .update(name, |_| Some(serde_json::json!({ "rev": pct + 1 })))
                        .await?;
                    Ok(())
                }
            })
            .await?;
            let raw = m.raw_refresh(Family::Stream, &mut stream_tags).await?;
            let cost = m
                .time(|| async { stream_view.list().await.map(|_| ()) })
                .await?;
            rows.push(m.row(
                &format!("stream view refresh, {pct}% changed"),
                Some(k),
                cost,
                raw,
            ));
            progress.advance(1);

            // Members: a heartbeat written.
            each(changed, concurrency, |name| {
                let members = members.clone();
                let clock = Arc::clone(seed.manifests().clock());
                async move {
                    members
                        .collection()
                        .open(name)
                        .update(|cur| match cur {
                            Some(s) => Change::Write(NodeRecord {
                                heartbeat_at: clock.now(),
                                beats: s.body.beats.saturating_add(1),
                                ..s.body.clone()
                            }),
                            None => Change::Keep,
                        })
                        .await?;
                    Ok(())
                }
            })
            .await?;
            let raw = m.raw_refresh(node_family, &mut member_tags).await?;
            let cost = m
                .time(|| async { member_view.list().await.map(|_| ()) })
                .await?;
            rows.push(m.row(
                &format!("node view refresh, {pct}% changed"),
                Some(k),
                cost,
                raw,
            ));
            progress.advance(1);
        }
    }
    Ok(ScaleReport {
        store: label.to_string(),
        strategy: strategy_used.map_or("—".into(), |s| s.to_string()),
        concurrency,
        rows,
    })
}

/// Runs `write` for every name, `concurrency` at a time; the first error ends the run.
async fn each<'n, F, Fut>(names: &'n [Name], concurrency: usize, write: F) -> Result<()>
where
    F: FnMut(&'n Name) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    futures::stream::iter(names.iter().map(write))
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// The heartbeat interval written into the seeded member records: the longest a record may
/// hold ([`cairn::node::MAX_INTERVAL`], an hour).
const SEED_INTERVAL_MS: u64 = 3_600_000;
const _: () = assert!(cairn::node::MAX_INTERVAL.as_secs() * 1000 == SEED_INTERVAL_MS);

/// The raw calls' cost: requests and wall time.
#[derive(Debug, Clone, Copy)]
struct Raw {
    requests: u64,
    elapsed: Duration,
}

/// One size's measurements.
struct Measure<'a> {
    counter: &'a Counter,
    prefix: &'a str,
    strategy: Strategy,
    n: usize,
    concurrency: usize,
}

impl Measure<'_> {
    /// A fresh handle on the counted store, made before anything is counted.
    async fn viewer(&self) -> Result<Cairn> {
        Ok(
            Cairn::builder(Arc::clone(&self.counter.store) as Arc<dyn ObjectStore>)
                .prefix(self.prefix.to_string())
                .node("bench-viewer")?
                .strategy(StrategyChoice::Fixed(self.strategy))
                .build()
                .await?,
        )
    }

    /// Runs `f` once, counted and timed.
    async fn time<F, Fut>(&self, f: F) -> Result<(Cost, Duration)>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = cairn::Result<()>>,
    {
        let mark = self.counter.mark();
        let start = Instant::now();
        f().await?;
        let elapsed = start.elapsed();
        Ok((self.counter.since(mark), elapsed))
    }

    fn row(
        &self,
        operation: &str,
        changed: Option<usize>,
        (cost, elapsed): (Cost, Duration),
        raw: Raw,
    ) -> ScaleRow {
        let ms = elapsed.as_secs_f64() * 1e3;
        let raw_ms = raw.elapsed.as_secs_f64() * 1e3;
        ScaleRow {
            objects: self.n,
            operation: operation.to_string(),
            changed,
            requests: cost.requests,
            lists: cost.lists,
            gets: cost.gets,
            ms,
            raw_requests: raw.requests,
            raw_ms,
            ratio: (raw_ms > 0.0).then(|| ms / raw_ms),
        }
    }

    fn folder(&self, family: Family) -> Path {
        Path::from(format!("{}/{}", self.prefix, family.folder()))
    }

    /// A LIST of the family's folder and a GET of every object listed, `concurrency` at a
    /// time; and each object's etag.
    async fn raw_all(&self, family: Family) -> Result<(Raw, Etags)> {
        let store = Arc::clone(&self.counter.store);
        let mark = self.counter.mark();
        let start = Instant::now();
        let listed: Vec<ObjectMeta> = store.list(Some(&self.folder(family))).try_collect().await?;
        futures::stream::iter(listed.iter().map(|m| {
            let store = Arc::clone(&store);
            async move { store.get(&m.location).await?.bytes().await.map(|_| ()) }
        }))
        .buffer_unordered(self.concurrency)
        .try_collect::<Vec<()>>()
        .await?;
        let elapsed = start.elapsed();
        let cost = self.counter.since(mark);
        let tags = listed.into_iter().map(|m| (m.location, m.e_tag)).collect();
        Ok((
            Raw {
                requests: cost.requests,
                elapsed,
            },
            tags,
        ))
    }

    /// A LIST of the family's folder and a GET of each object that is new or whose etag
    /// changed since `tags` (which it updates), `concurrency` at a time.
    async fn raw_refresh(&self, family: Family, tags: &mut Etags) -> Result<Raw> {
        let store = Arc::clone(&self.counter.store);
        let mark = self.counter.mark();
        let start = Instant::now();
        let listed: Vec<ObjectMeta> = store.list(Some(&self.folder(family))).try_collect().await?;
        let changed: Vec<&ObjectMeta> = listed
            .iter()
            .filter(|m| tags.get(&m.location) != Some(&m.e_tag) || m.e_tag.is_none())
            .collect();
        futures::stream::iter(changed.into_iter().map(|m| {
            let store = Arc::clone(&store);
            async move { store.get(&m.location).await?.bytes().await.map(|_| ()) }
        }))
        .buffer_unordered(self.concurrency)
        .try_collect::<Vec<()>>()
        .await?;
        let elapsed = start.elapsed();
        let cost = self.counter.since(mark);
        *tags = listed.into_iter().map(|m| (m.location, m.e_tag)).collect();
        Ok(Raw {
            requests: cost.requests,
            elapsed,
        })
    }
}
