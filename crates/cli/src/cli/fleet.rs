//! `cairn fleet`: runs the fleet ([`cairn_drivers::fleet`]) on the store, shows it live (a
//! terminal view, or one line per event when stdout is not a terminal or with `--json`), then
//! prints each invariant and whether it held. Exit 0 only with zero violations.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use super::args::{FleetArgs, SkewArg};
use super::exit;
use super::fleet_view;
use super::Result;
use cairn::store::url::{self, Location};
use cairn::StrategyChoice;
use cairn_drivers::fleet::check::Verdict;
use cairn_drivers::fleet::faults::KINDS;
use cairn_drivers::fleet::history::{Event, History, What};
use cairn_drivers::fleet::{FleetOptions, Report, Skew};

/// Runs `cairn fleet`.
pub async fn run(
    store_url: &str,
    strategy: StrategyChoice,
    a: &FleetArgs,
    json: bool,
) -> Result<i32> {
    let mut o = if a.torture {
        FleetOptions::torture()
    } else {
        FleetOptions::demo()
    };
    o.nodes = a.nodes as usize;
    o.duration = a.duration;
    o.seed = a.seed;
    o.turn_window = a.turn_window;
    o.turn_jitter = a.turn_jitter;
    o.lock_ttl = a.lock_ttl;
    o.heartbeat = a.heartbeat;
    o.strategy = strategy;
    o.planted_defect = a.plant_defect;
    if let Some(s) = a.skew {
        o.skew = match s {
            SkewArg::None => Skew::None,
            SkewArg::Within => Skew::WithinBound,
            SkewArg::Beyond => Skew::BeyondBound,
        };
    }
    if a.no_break {
        o.operator_break = false;
    }
    if a.no_misconfigured {
        o.misconfigured = false;
    }
    let location = url::parse(store_url)?;
    if a.processes > 0 && location == Location::Memory {
        return Err(unreachable_by_children(store_url).into());
    }
    // Asked to run here: a missing directory is created, as by the writing commands.
    let create = url::OpenOptions {
        create: true,
        ..Default::default()
    };
    let opened = url::open_with(store_url, &create).await?;
    // A fresh prefix per run: a run's checks judge only what it did itself.
    let run_id = format!(
        "{}-s{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f"),
        o.seed
    );
    let prefix = match opened.prefix.trim_matches('/') {
        "" => format!("fleet/{run_id}"),
        p => format!("{p}/fleet/{run_id}"),
    };
    if a.processes > 0 {
        o.processes = Some(processes(
            store_url,
            &location,
            &prefix,
            &run_id,
            a.processes as usize,
        )?);
    }
    let proc_dir = o.processes.as_ref().map(|p| p.dir.clone());
    let where_ = format!("{store_url} (prefix {prefix})");
    let history = Arc::new(History::new());
    let tui = !json && !a.lines && std::io::stdout().is_terminal();
    let duration = o.duration;
    let nodes = o.nodes;
    let torture = a.torture;
    let task = {
        let (prefix, history) = (prefix.clone(), Arc::clone(&history));
        tokio::spawn(
            async move { cairn_drivers::fleet::run(opened.store, &prefix, o, history).await },
        )
    };
    let header = format!(
        "cairn fleet{}: {nodes} nodes{} for {:.0} s on {where_}, seed {}",
        if torture { " --torture" } else { "" },
        if a.processes > 0 {
            format!(" and {} cairn processes", a.processes)
        } else {
            String::new()
        },
        duration.as_secs_f64(),
        a.seed
    );
    let report = if tui {
        let short = format!("{nodes} nodes, seed {} · {where_}", a.seed);
        match fleet_view::show(&short, &history, duration, task).await? {
            Some(r) => r,
            None => return Ok(exit::INTERRUPTED),
        }
    } else {
        if !json {
            super::output::line(&header)?;
        }
        lines(&history, task, json).await?
    };
    if json {
        super::output::json(&serde_json::json!({ "report": report }))?;
    } else {
        super::output::print(&summary(&report, &header))?;
        if let Some(d) = proc_dir {
            super::output::line(&format!(
                "the cairn processes' work lines: {}; their stderr: {}",
                d.join("work.log").display(),
                d.join("cairn.log").display()
            ))?;
        }
    }
    Ok(if report.violations == 0 {
        exit::OK
    } else {
        exit::FAILURE
    })
}

/// The URL of a cloud location's bucket or container, without its prefix (`s3://bucket`,
/// `az://container`, `gs://bucket`); `None` for a directory or memory.
fn bucket_url(location: &Location) -> Option<String> {
    match location {
        Location::S3 { bucket, .. } => Some(format!("s3://{bucket}")),
        Location::Azure { container, .. } => Some(format!("az://{container}")),
        Location::Gcs { bucket, .. } => Some(format!("gs://{bucket}")),
        Location::Directory(_) | Location::Memory => None,
    }
}

/// The process nodes: this very executable, on a store URL naming the run's prefix (for
/// `file://` the URL's path is the root and the prefix a directory under it; for `s3://`,
/// `az://` and `gs://` the prefix, which includes the URL's own, goes after the bucket or
/// container). Their work file and stderr
/// go to a directory under the system's temporary directory, shown in the summary.
fn processes(
    store_url: &str,
    location: &Location,
    prefix: &str,
    run_id: &str,
    count: usize,
) -> Result<cairn_drivers::fleet::procs::Processes> {
    let child_url = match location {
        // `parse` made the root absolute, which is all `from_file_path` asks.
        Location::Directory(root) => ::url::Url::from_file_path(root.join(prefix))
            .map_err(|()| unreachable_by_children(store_url))?
            .to_string(),
        Location::Memory => return Err(unreachable_by_children(store_url).into()),
        // Percent-encoded: the child's parse decodes the prefix again.
        cloud => {
            let root = bucket_url(cloud).ok_or_else(|| unreachable_by_children(store_url))?;
            let mut u = ::url::Url::parse(&root).map_err(|_| unreachable_by_children(store_url))?;
            u.set_path(prefix);
            u.to_string()
        }
    };
    let exe = std::env::current_exe()
        .map_err(|e| cairn::Error::Config(format!("cannot find this executable: {e}")))?;
    Ok(cairn_drivers::fleet::procs::Processes {
        count,
        exe,
        store_url: child_url,
        dir: std::env::temp_dir().join(format!("cairn-fleet-{run_id}-{}", std::process::id())),
    })
}

/// The refusal of `--processes` on a store no other process can open.
fn unreachable_by_children(store_url: &str) -> cairn::Error {
    cairn::Error::Config(format!(
        "--processes needs a store a child process can open (file://, s3:// or az://), not \
         {store_url}"
    ))
}

/// Prints one line per event until the run ends.
async fn lines(
    history: &History,
    mut task: tokio::task::JoinHandle<cairn::Result<Report>>,
    json: bool,
) -> Result<Report> {
    let mut shown = 0;
    loop {
        let done = tokio::select! {
            r = &mut task => Some(r),
            _ = tokio::time::sleep(Duration::from_millis(100)) => None,
        };
        let new = history.since(shown);
        shown += new.len();
        let mut out = String::new();
        for e in &new {
            if json {
                out.push_str(&super::output::json_line(e));
                out.push('\n');
            } else if worth_a_line(e) {
                out.push_str(&line(e));
                out.push('\n');
            }
        }
        if !out.is_empty() {
            super::output::print(&out)?;
        }
        if let Some(r) = done {
            return Ok(r.map_err(|e| cairn::Error::Config(format!("the fleet task failed: {e}")))??);
        }
    }
}

/// The text lines leave out the bookkeeping events (claims, acquires and puts begun, accepted
/// fenced writes, repeated offline sightings); `--json` prints every event.
pub(super) fn worth_a_line(e: &Event) -> bool {
    !matches!(
        e.what,
        What::ClaimBegun { .. }
            | What::RecordPutBegun { .. }
            | What::AcquireBegun { .. }
            | What::Beat
            | What::Guarded { accepted: true, .. }
            | What::FinalLog { .. }
            | What::FinalRecord { .. }
            | What::FinalStreams { .. }
    ) && !matches!(&e.what, What::Work { step, .. } if step == "tick")
}

/// `  12.345s  node-2#1     acquired lock compaction, fencing token 7`
pub(super) fn line(e: &Event) -> String {
    format!(
        "{:>8.3}s  {:<16} {}",
        e.at_ms / 1000.0,
        e.who(),
        e.describe()
    )
}

/// The end-of-run summary: operations, faults, kills, and every invariant's verdict with
/// the history excerpt of each violation.
pub fn summary(r: &Report, header: &str) -> String {
    let mut s = String::new();
    s += &format!("\n{header}\n");
    s += &format!(
        "ran {:.1} s, strategy {}, {} events recorded, {} operations\n",
        r.elapsed_ms as f64 / 1000.0,
        r.strategy,
        r.events,
        r.ops.total()
    );
    s += "operations by feature:\n";
    for (feature, outcomes) in &r.ops.by_feature {
        let list: Vec<String> = outcomes.iter().map(|(o, n)| format!("{o} {n}")).collect();
        s += &format!("  {feature:<11} {}\n", list.join(", "));
    }
    let f = &r.faults;
    s += &format!(
        "faults injected: {} in {} requests\n",
        f.total(),
        f.requests
    );
    if f.total() > 0 {
        for (k, n) in KINDS.iter().zip(f.by_kind) {
            s += &format!("  {k:<40} {n}\n");
        }
    }
    s += &format!(
        "answers lost after the store committed: {}; operations that ended \"outcome unknown\": {}\n",
        f.lost_answers(),
        r.ambiguous
    );
    if r.process_kills > 0 || r.pauses > 0 {
        s += &format!(
            "nodes killed: {} ({} in process, {} cairn processes SIGKILLed); cairn processes paused past their lease: {}\n",
            r.kills,
            r.kills - r.process_kills,
            r.process_kills,
            r.pauses
        );
    } else {
        s += &format!("nodes killed: {}\n", r.kills);
    }
    if r.deleted_objects > 0 {
        s += &format!(
            "objects deleted under the nodes (a lifecycle rule): {}\n",
            r.deleted_objects
        );
    }
    if !r.clocks_beyond.is_empty() {
        s += &format!(
            "clocks measured beyond the bound (time-based rules refused): {}\n",
            r.clocks_beyond.join(", ")
        );
    }
    s += "invariants:\n";
    for i in &r.invariants {
        let mark = match i.verdict {
            Verdict::Held => "held    ",
            Verdict::Violated => "VIOLATED",
            Verdict::NotExercised => "n/a     ",
        };
        let note = if i.note.is_empty() {
            String::new()
        } else {
            format!("; {}", i.note)
        };
        s += &format!("  {mark} {} ({} checked{note})\n", i.name, i.checked);
        for v in &i.violations {
            s += &format!("      {}\n", v.what);
            for e in &v.excerpt {
                s += &format!("        {}\n", line(e));
            }
        }
        if i.violation_count > i.violations.len() {
            s += &format!(
                "      … and {} more\n",
                i.violation_count - i.violations.len()
            );
        }
    }
    s += &format!(
        "{}: {} violation{}\n",
        if r.violations == 0 { "PASS" } else { "FAIL" },
        r.violations,
        if r.violations == 1 { "" } else { "s" }
    );
    s
}
