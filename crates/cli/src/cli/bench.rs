//! `cairn bench`: measure a store with [`cairn_drivers::bench`], with a progress bar on stderr, and
//! print the tables (or the report as JSON).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::args::{BenchArgs, StrategyArg};
use super::exit;
use super::output::say;
use super::Result;
use cairn::manifest::Strategy;
use cairn::store::url;
use cairn::Error;
use cairn_drivers::bench::membership::{HeartbeatProcess, MembershipOptions};
use cairn_drivers::bench::{self, BenchOptions, Progress};

/// The progress bar: one line on stderr, drawn only on a terminal.
struct Bar(ProgressBar);

impl Bar {
    fn new() -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} [{bar:30}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Self(bar)
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str, steps: u64) {
        self.0.set_length(steps);
        self.0.set_position(0);
        self.0.set_message(name.to_string());
    }

    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
}

/// Runs the benchmark against `store_url` and prints the result.
pub async fn run(store_url: &str, strategy: StrategyArg, a: &BenchArgs, json: bool) -> Result<i32> {
    // Asked to run here: a missing directory is created, as by the writing commands.
    let create = url::OpenOptions {
        create: true,
        ..Default::default()
    };
    let opened = url::open_with(store_url, &create).await?;
    if a.membership {
        return membership(store_url, opened, a, json).await;
    }
    if !a.scale.is_empty() {
        return scale(store_url, opened, strategy, a, json).await;
    }
    let options = BenchOptions {
        ops: usize::try_from(a.ops).unwrap_or(usize::MAX),
        nodes: a.nodes.iter().map(|&n| usize::from(n)).collect(),
        contention_for: a.contention_for,
        hold: a.hold,
        strategies: match strategy {
            StrategyArg::Auto => Vec::new(),
            StrategyArg::EtagCas => vec![Strategy::EtagCas],
            StrategyArg::VersionChain => vec![Strategy::VersionChain],
        },
    };
    let bar = Bar::new();
    let report = bench::run(opened.store, &opened.prefix, store_url, &options, &bar).await;
    bar.0.finish_and_clear();
    print_report(report, "benchmark report", json, bench::Report::table)
}

/// Prints a finished benchmark's report: its tables, or the report as JSON. A store error
/// is the command's error; another failure of the benchmark is exit 1.
fn print_report<R: serde::Serialize>(
    report: std::result::Result<R, bench::BenchError>,
    what: &'static str,
    json: bool,
    table: impl Fn(&R) -> String,
) -> Result<i32> {
    let report = match report {
        Ok(r) => r,
        Err(bench::BenchError::Cairn(e)) => return Err(e.into()),
        Err(e) => {
            say!("cairn: {e}");
            return Ok(exit::FAILURE);
        }
    };
    if json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|source| Error::Encode { what, source })?;
        super::output::line(&text)?;
    } else {
        super::output::print(&table(&report))?;
    }
    Ok(exit::OK)
}

/// `cairn bench --membership`: real `cairn node heartbeat` processes are killed where the
/// store is one a child process can open (`s3://`, `file://`).
async fn membership(
    store_url: &str,
    opened: url::Opened,
    a: &BenchArgs,
    json: bool,
) -> Result<i32> {
    if a.latency_min > a.latency_max {
        say!("cairn: --latency-min must not exceed --latency-max");
        return Ok(exit::USAGE);
    }
    let process = match (opened.kind, std::env::current_exe()) {
        (cairn::store::url::StoreKind::Memory, _) | (_, Err(_)) => None,
        (_, Ok(exe)) => Some(HeartbeatProcess {
            exe,
            store_url: store_url.to_string(),
        }),
    };
    let options = MembershipOptions {
        kills: usize::try_from(a.kills).unwrap_or(usize::MAX),
        live: usize::from(a.live_nodes),
        run_for: a.membership_for,
        latency: (a.latency_min, a.latency_max),
        process,
        ..MembershipOptions::default()
    };
    // A local directory's scratch folder is removed from the disk too (see `run_membership`).
    let local_root = match url::parse(store_url)? {
        url::Location::Directory(root) => Some(root),
        _ => None,
    };
    let bar = Bar::new();
    let report = bench::run_membership(
        opened.store,
        &opened.prefix,
        local_root.as_deref(),
        store_url,
        &options,
        &bar,
    )
    .await;
    bar.0.finish_and_clear();
    print_report(
        report,
        "membership benchmark report",
        json,
        bench::membership::MembershipReport::table,
    )
}

/// `cairn bench --scale N,…`: the listings and cached views at N locks, streams and member
/// records ([`bench::scale`]).
async fn scale(
    store_url: &str,
    opened: url::Opened,
    strategy: StrategyArg,
    a: &BenchArgs,
    json: bool,
) -> Result<i32> {
    let options = bench::scale::ScaleOptions {
        sizes: a
            .scale
            .iter()
            .map(|&n| usize::try_from(n).unwrap_or(usize::MAX))
            .collect(),
        concurrency: usize::from(a.concurrency),
        strategy: match strategy {
            StrategyArg::Auto => None,
            StrategyArg::EtagCas => Some(Strategy::EtagCas),
            StrategyArg::VersionChain => Some(Strategy::VersionChain),
        },
    };
    let bar = Bar::new();
    let report = bench::run_scale(opened.store, &opened.prefix, store_url, &options, &bar).await;
    bar.0.finish_and_clear();
    print_report(
        report,
        "scale benchmark report",
        json,
        bench::scale::ScaleReport::table,
    )
}
