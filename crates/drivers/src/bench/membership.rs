//! `cairn bench --membership`: membership at its default settings, measured on a store.
//!
//! **Detection**: a node heartbeats (a real `cairn node heartbeat` process when the store
//! can be opened by one, else an in-process heartbeater), a view sees it online, and it is
//! killed (SIGKILL; in process, its task aborted) at a random point of its heartbeat cycle.
//! Measured: the time from the kill to a [`NodeView`] at the defaults, polled every
//! [`MembershipOptions::poll`], showing it not online (suspect), and offline.
//!
//! **Liveness**: [`MembershipOptions::live`] in-process nodes heartbeat for
//! [`MembershipOptions::run_for`] while every request of theirs and of the viewer is delayed
//! by a latency drawn from [`MembershipOptions::latency`] ([`Fault::DelayBetween`]). A
//! [`NodeView`] is polled every 100 ms and a plain listing ([`Nodes::list`], what
//! `cairn node ls` shows) every second; every verdict on a live node other than online is
//! a false suspect. Reported with the closest call (the smallest `timeout − age` seen) and
//! what the heartbeats cost.
//!
//! Each part runs under its own folder of the benchmark's scratch prefix.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::time::Instant;

use super::{unexpected, BenchError, Latency, Progress, Result};
use cairn::cache::CacheOptions;
use cairn::node::{Health, NodeOptions, NodeView, Nodes};
use cairn::store::fault::{Fault, FaultStore, Op, Rule};
use cairn::Cairn;

/// S3 list price of a PUT, in dollars.
const PUT_PRICE: f64 = 0.005 / 1000.0;

/// Hours in an average month.
const HOURS_PER_MONTH: f64 = 730.0;

/// How to start a heartbeating process: this executable, on a store URL that names the
/// prefix the benchmark was given.
#[derive(Debug, Clone)]
pub struct HeartbeatProcess {
    /// The `cairn` executable.
    pub exe: PathBuf,
    /// The URL of the store and prefix the benchmark runs below.
    pub store_url: String,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct MembershipOptions {
    /// Nodes killed, one at a time. Default 10.
    pub kills: usize,
    /// How often the detection view is polled. Default 50 ms.
    pub poll: Duration,
    /// Live nodes in the liveness run. Default 5.
    pub live: usize,
    /// How long the liveness run lasts. Default 10 minutes.
    pub run_for: Duration,
    /// The latency injected into every request of the liveness run, drawn uniformly from
    /// this range each time. Default 50 to 200 ms.
    pub latency: (Duration, Duration),
    /// Kill real `cairn node heartbeat` processes (`None`: in-process heartbeaters, e.g. on
    /// `memory://`).
    pub process: Option<HeartbeatProcess>,
    /// Seeds the kill phases and the latencies.
    pub seed: u64,
}

impl Default for MembershipOptions {
    fn default() -> Self {
        Self {
            kills: 10,
            poll: Duration::from_millis(50),
            live: 5,
            run_for: Duration::from_secs(600),
            latency: (Duration::from_millis(50), Duration::from_millis(200)),
            process: None,
            seed: 1,
        }
    }
}

/// Kill-to-verdict times.
#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    /// What was killed.
    pub how: String,
    /// Kills measured.
    pub kills: usize,
    /// From the kill to the view showing the node not online.
    pub not_online: Latency,
    /// The slowest of those, in milliseconds.
    pub not_online_max_ms: f64,
    /// From the kill to the view showing the node offline.
    pub offline: Latency,
    /// The slowest of those, in milliseconds.
    pub offline_max_ms: f64,
    /// Every kill-to-not-online time, in milliseconds, in kill order.
    pub samples_ms: Vec<f64>,
}

/// What the liveness run saw.
#[derive(Debug, Clone, Serialize)]
pub struct Liveness {
    /// How long it ran, in seconds.
    pub seconds: f64,
    /// Live nodes.
    pub live_nodes: usize,
    /// Injected latency per request, in milliseconds: least and most.
    pub latency_ms: (f64, f64),
    /// Polls of the cached view.
    pub view_polls: u64,
    /// Plain listings.
    pub list_polls: u64,
    /// Verdicts on live nodes (one per node per poll).
    pub verdicts: u64,
    /// Verdicts "suspect" on a live node.
    pub false_suspects: u64,
    /// Verdicts "offline" on a live node.
    pub false_offline: u64,
    /// The smallest `timeout − age` of any verdict, in milliseconds (negative: a false
    /// suspect).
    pub closest_margin_ms: i64,
    /// The largest timeout seen, in milliseconds (base + 2 × write latency).
    pub max_timeout_ms: u64,
    /// Heartbeat PUTs per node per hour, as counted.
    pub puts_per_node_per_hour: f64,
    /// Requests of the cached view per hour, as counted (polled every 100 ms).
    pub view_requests_per_hour: f64,
}

/// Everything one membership run measured.
#[derive(Debug, Clone, Serialize)]
pub struct MembershipReport {
    /// The store, as given.
    pub store: String,
    /// The default heartbeat interval, in milliseconds.
    pub interval_ms: u64,
    /// The default base timeout, in milliseconds.
    pub base_timeout_ms: u64,
    /// How fast a dead node is seen.
    pub detection: Detection,
    /// Whether live nodes are ever called suspect.
    pub liveness: Liveness,
    /// What one node's heartbeats cost per hour at S3 list prices, in dollars.
    pub dollars_per_node_per_hour: f64,
    /// The same per month.
    pub dollars_per_node_per_month: f64,
}

impl MembershipReport {
    /// The report as Markdown tables.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let d = &self.detection;
        let l = &self.liveness;
        let _ = writeln!(
            out,
            "### Membership at the defaults: {} (heartbeat every {} ms, timeout {} ms + 2 × write latency)\n",
            self.store, self.interval_ms, self.base_timeout_ms
        );
        let _ = writeln!(
            out,
            "| detection: {} kills ({}), view polled every 50 ms | p50 | p90 | max |",
            d.kills, d.how
        );
        let _ = writeln!(out, "| --- | ---: | ---: | ---: |");
        let _ = writeln!(
            out,
            "| kill → not online (suspect) | {:.2} s | {:.2} s | {:.2} s |",
            d.not_online.p50_ms / 1e3,
            d.not_online.p90_ms / 1e3,
            d.not_online_max_ms / 1e3
        );
        let _ = writeln!(
            out,
            "| kill → offline | {:.2} s | {:.2} s | {:.2} s |",
            d.offline.p50_ms / 1e3,
            d.offline.p90_ms / 1e3,
            d.offline_max_ms / 1e3
        );
        let _ = writeln!(out, "\n| live nodes under latency | |");
        let _ = writeln!(out, "| --- | ---: |");
        let _ = writeln!(
            out,
            "| run | {:.0} s, {} nodes, {:.0}–{:.0} ms on every request |",
            l.seconds, l.live_nodes, l.latency_ms.0, l.latency_ms.1
        );
        let _ = writeln!(
            out,
            "| verdicts on live nodes (cached view every 100 ms: {} polls; listing every 1 s: {}) | {} |",
            l.view_polls, l.list_polls, l.verdicts
        );
        let _ = writeln!(
            out,
            "| false suspects / false offline | **{}** / **{}** |",
            l.false_suspects, l.false_offline
        );
        let _ = writeln!(
            out,
            "| closest call (timeout − heartbeat age), largest timeout | {} ms, {} ms |",
            l.closest_margin_ms, l.max_timeout_ms
        );
        let _ = writeln!(
            out,
            "| heartbeat PUTs per node per hour | {:.0} (${:.4} an hour, ${:.2} a month) |",
            l.puts_per_node_per_hour,
            self.dollars_per_node_per_hour,
            self.dollars_per_node_per_month
        );
        let _ = writeln!(
            out,
            "| requests of the view polled every 100 ms, per hour | {:.0} |",
            l.view_requests_per_hour
        );
        out
    }
}

/// Runs both parts below `scratch` of `store`; `relative` is `scratch` relative to the
/// prefix `options.process`'s URL names.
pub(super) async fn run(
    store: Arc<dyn ObjectStore>,
    scratch: &str,
    relative: &str,
    label: &str,
    options: &MembershipOptions,
    progress: &dyn Progress,
) -> Result<MembershipReport> {
    let defaults = NodeOptions::default();
    let mut rng = StdRng::seed_from_u64(options.seed);
    let detection = detect(
        &store,
        &format!("{scratch}/detect"),
        &format!("{relative}/detect"),
        options,
        &mut rng,
        progress,
    )
    .await?;
    let liveness = live(&store, &format!("{scratch}/live"), options, progress).await?;
    let per_hour = liveness.puts_per_node_per_hour * PUT_PRICE;
    Ok(MembershipReport {
        store: label.to_string(),
        interval_ms: millis(defaults.interval),
        base_timeout_ms: millis(
            defaults
                .base_timeout
                .unwrap_or(defaults.interval.saturating_mul(2)),
        ),
        detection,
        liveness,
        dollars_per_node_per_hour: per_hour,
        dollars_per_node_per_month: per_hour * HOURS_PER_MONTH,
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A heartbeating node that can be killed.
enum Victim {
    Process(tokio::process::Child),
    InProcess(cairn::node::Heartbeater),
}

async fn detect(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    relative: &str,
    options: &MembershipOptions,
    rng: &mut StdRng,
    progress: &dyn Progress,
) -> Result<Detection> {
    let interval = NodeOptions::default().interval;
    // Not an observer: it records the prefix's protocol before any process starts.
    let viewer = Cairn::builder(Arc::clone(store))
        .prefix(prefix)
        .node("bench-viewer")?
        .build()
        .await?;
    let view = viewer
        .nodes(NodeOptions::default())
        .view(CacheOptions::for_nodes(interval));
    let how = if options.process.is_some() {
        "SIGKILL of `cairn node heartbeat`"
    } else {
        "in-process heartbeater aborted"
    };
    progress.phase(
        &format!("membership: {} kills", options.kills),
        options.kills as u64,
    );
    let (mut not_online, mut offline) = (Vec::new(), Vec::new());
    for k in 0..options.kills.max(1) {
        let id = format!("killed-{k}");
        let victim = match &options.process {
            Some(p) => {
                let url = format!("{}/{relative}", p.store_url.trim_end_matches('/'));
                let child = tokio::process::Command::new(&p.exe)
                    .args(["--store", &url, "--node", &id, "node", "heartbeat"])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| {
                        BenchError::Unexpected(format!("cannot start {:?}: {e}", p.exe))
                    })?;
                Victim::Process(child)
            }
            None => {
                let c = Cairn::builder(Arc::clone(store))
                    .prefix(prefix)
                    .node(&id)?
                    .build()
                    .await?;
                Victim::InProcess(c.nodes(NodeOptions::default()).join().await?)
            }
        };
        wait_for(&view, &id, options.poll, |h| h == Health::Online).await?;
        // Somewhere in the heartbeat cycle, after a few heartbeats.
        let phase = interval.mul_f64(2.0 + rng.random::<f64>());
        tokio::time::sleep(phase).await;
        let killed = Instant::now();
        match victim {
            Victim::Process(mut child) => {
                child.start_kill().map_err(|e| {
                    BenchError::Unexpected(format!("cannot kill the heartbeat process: {e}"))
                })?;
                let _ = child.wait().await;
            }
            Victim::InProcess(hb) => drop(hb), // aborts its task: no goodbye
        }
        wait_for(&view, &id, options.poll, |h| h != Health::Online).await?;
        not_online.push(killed.elapsed());
        wait_for(&view, &id, options.poll, |h| h == Health::Offline).await?;
        offline.push(killed.elapsed());
        progress.advance(1);
    }
    let samples_ms = not_online
        .iter()
        .map(|d| d.as_secs_f64() * 1e3)
        .collect::<Vec<_>>();
    let max_ms = |times: &[Duration]| {
        times
            .iter()
            .map(|d| d.as_secs_f64() * 1e3)
            .fold(0.0, f64::max)
    };
    let (max, offline_max_ms) = (max_ms(&not_online), max_ms(&offline));
    let empty = Latency {
        p50_ms: 0.0,
        p90_ms: 0.0,
        p99_ms: 0.0,
    };
    Ok(Detection {
        how: how.into(),
        kills: not_online.len(),
        not_online: Latency::of(not_online).unwrap_or(empty),
        not_online_max_ms: max,
        offline: Latency::of(offline).unwrap_or(empty),
        offline_max_ms,
        samples_ms,
    })
}

/// Polls `view` every `poll` until `node`'s health satisfies `done` (at most a minute).
async fn wait_for(
    view: &NodeView,
    node: &str,
    poll: Duration,
    done: impl Fn(Health) -> bool,
) -> Result<()> {
    let start = Instant::now();
    loop {
        let listed = view.list().await?;
        if listed
            .items
            .iter()
            .any(|m| m.node == node && done(m.health))
        {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(60) {
            return unexpected(format!("{node}: no expected verdict within a minute"));
        }
        tokio::time::sleep(poll).await;
    }
}

/// A store whose every request waits a latency drawn from `latency` first.
fn slowed(
    store: &Arc<dyn ObjectStore>,
    latency: (Duration, Duration),
    seed: u64,
) -> Arc<FaultStore> {
    let s = Arc::new(FaultStore::new(Arc::clone(store), seed));
    for op in [Op::Put, Op::Get, Op::List] {
        s.add(Rule::always(
            op,
            "",
            Fault::DelayBetween(latency.0, latency.1),
        ));
    }
    s
}

async fn live(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    options: &MembershipOptions,
    progress: &dyn Progress,
) -> Result<Liveness> {
    let interval = NodeOptions::default().interval;
    let mut nodes = Vec::new();
    for i in 0..options.live.max(1) {
        let s = slowed(
            store,
            options.latency,
            options.seed.wrapping_add(i as u64 + 1),
        );
        let c = Cairn::builder(s.clone())
            .prefix(prefix)
            .node(format!("live-{i}"))?
            .build()
            .await?;
        nodes.push((c.nodes(NodeOptions::default()).join().await?, s));
    }
    let viewer_store = slowed(store, options.latency, options.seed.wrapping_add(1000));
    let viewer = Cairn::builder(viewer_store.clone())
        .prefix(prefix)
        .node("bench-viewer")?
        .build()
        .await?;
    let members: Nodes = viewer.nodes(NodeOptions::default());
    let view = members.view(CacheOptions::for_nodes(interval));
    progress.phase(
        &format!("membership: {} live nodes under latency", nodes.len()),
        millis(options.run_for),
    );
    let start = Instant::now();
    let counted: Vec<_> = nodes.iter().map(|(_, s)| s.counts()).collect();
    let l = std::sync::Mutex::new(Liveness {
        seconds: 0.0,
        live_nodes: nodes.len(),
        latency_ms: (
            options.latency.0.as_secs_f64() * 1e3,
            options.latency.1.as_secs_f64() * 1e3,
        ),
        view_polls: 0,
        list_polls: 0,
        verdicts: 0,
        false_suspects: 0,
        false_offline: 0,
        closest_margin_ms: i64::MAX,
        max_timeout_ms: 0,
        puts_per_node_per_hour: 0.0,
        view_requests_per_hour: 0.0,
    });
    let judge = |statuses: &[cairn::node::NodeStatus]| {
        let mut l = l.lock().unwrap_or_else(|e| e.into_inner());
        for m in statuses.iter().filter(|m| m.node.starts_with("live-")) {
            l.verdicts += 1;
            l.max_timeout_ms = l.max_timeout_ms.max(m.timeout_ms);
            let margin = i64::try_from(m.timeout_ms).unwrap_or(i64::MAX)
                - i64::try_from(m.age_ms).unwrap_or(i64::MAX);
            l.closest_margin_ms = l.closest_margin_ms.min(margin);
            match m.health {
                Health::Online | Health::Unknown => {}
                Health::Suspect => l.false_suspects += 1,
                Health::Offline => l.false_offline += 1,
            }
        }
    };
    // The cached view every 100 ms, and beside it a plain listing every second.
    let mut view_requests = 0u64;
    let viewing = async {
        let mut shown = 0;
        while start.elapsed() < options.run_for {
            let before = viewer_store.counts();
            let listed = view.list().await?;
            view_requests += viewer_store.counts().since(&before).requests();
            judge(&listed.items);
            l.lock().unwrap_or_else(|e| e.into_inner()).view_polls += 1;
            let ms = millis(start.elapsed().min(options.run_for));
            progress.advance(ms.saturating_sub(shown));
            shown = ms;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok::<(), BenchError>(())
    };
    let listing = async {
        let mut next = start;
        while start.elapsed() < options.run_for {
            judge(&members.list().await?);
            l.lock().unwrap_or_else(|e| e.into_inner()).list_polls += 1;
            next += Duration::from_secs(1);
            tokio::time::sleep_until(next).await;
        }
        Ok::<(), BenchError>(())
    };
    tokio::try_join!(viewing, listing)?;
    let mut l = l.into_inner().unwrap_or_else(|e| e.into_inner());
    let hours = start.elapsed().as_secs_f64() / 3600.0;
    l.seconds = start.elapsed().as_secs_f64();
    l.view_requests_per_hour = view_requests as f64 / hours;
    let mut puts = 0;
    for ((hb, s), before) in nodes.into_iter().zip(counted) {
        puts += s.counts().since(&before).puts;
        hb.leave().await?;
    }
    l.puts_per_node_per_hour = puts as f64 / l.live_nodes as f64 / hours;
    Ok(l)
}
