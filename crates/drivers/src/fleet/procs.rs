//! Real `cairn` processes beside the in-process nodes ([`Processes`]).
//!
//! Each process node `proc-K` runs, again and again, the `cairn` executable it was given:
//!
//! ```text
//! cairn --store URL --node proc-K --strategy S lock run proc-lock --ttl 3s --grace 1s \
//!       --wait 30s -- sh -c SCRIPT
//! ```
//!
//! where SCRIPT appends `start TOKEN proc-K#RUN NANOS`, a `tick` line every 100 ms while it
//! works (a random 0.5 to 3 s), and `end …` to a work file the harness owns, with
//! `$CAIRN_FENCING_TOKEN` and `date +%s%N`. The harness tails that file into the history
//! ([`What::Work`], the wall-clock nanoseconds mapped onto the run's milliseconds), and the
//! checker judges the process lock on those lines alone.
//!
//! Meanwhile the harness sends random process nodes SIGKILL (cairn's guard then kills the
//! command's group) and restarts them after up to a ttl, and once per run it SIGSTOPs a
//! process node that has just started work under the lock, for longer than the lease's ttl,
//! then SIGCONTs it: the guard must stop the paused holder's command at the lease's give-up
//! time, before another node takes over. When the run ends each cairn gets SIGTERM (it
//! stops its command and releases), SIGKILL if it has not exited within 5 s.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::history::What;
use super::{random_between, Ctx};
use cairn::{Error, Result};

/// The lock the process nodes take.
pub const PROC_LOCK: &str = "proc-lock";
/// Their lease's ttl.
pub const PROC_TTL: Duration = Duration::from_secs(3);
/// Their grace period.
pub const PROC_GRACE: Duration = Duration::from_secs(1);
/// How long the paused holder stays stopped: well past its ttl.
pub const PAUSE: Duration = Duration::from_secs(5);

/// Real `cairn` processes in the fleet.
#[derive(Debug, Clone)]
pub struct Processes {
    /// How many process nodes (`proc-1` …).
    pub count: usize,
    /// The `cairn` executable to run (the CLI passes its own, tests `CARGO_BIN_EXE_cairn`).
    pub exe: PathBuf,
    /// A store URL (`file://` or `s3://`) that names, for a child process, the same root as
    /// the fleet's store and prefix.
    pub store_url: String,
    /// Where the work file (`work.log`) and the processes' stderr (`cairn.log`) go.
    pub dir: PathBuf,
}

impl Processes {
    pub(super) fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.count > 16 {
            return bad("--processes must be at most 16".into());
        }
        if !["file://", "s3://", "az://"]
            .iter()
            .any(|s| self.store_url.starts_with(s))
        {
            return bad(format!(
                "--processes needs a store a child process can open (file://, s3:// or az://), \
                 not {}",
                self.store_url
            ));
        }
        Ok(())
    }
}

enum Cmd {
    Kill { down: Duration },
    Pause,
}

/// What the process nodes, the tailer and the chaos share.
struct Shared {
    work: PathBuf,
    /// Node → (token, first line's ms, last line's ms) of the work seen last.
    holding: Mutex<HashMap<String, (u64, f64, f64)>>,
    /// Per node: whether a cairn of it is running and may be signalled.
    running: Vec<Mutex<bool>>,
    /// Per node: how long the current run's command works, if it gets the lock.
    work_for: Vec<Mutex<Duration>>,
    kills: AtomicU64,
    pauses: AtomicU64,
    wall0_ns: i128,
    mono0_ms: f64,
}

/// The process nodes of a run.
pub(super) struct ProcRun {
    shared: Arc<Shared>,
    nodes: Vec<JoinHandle<()>>,
    chaos: JoinHandle<()>,
    tailer: JoinHandle<u64>,
    tail_stop: CancellationToken,
}

fn wall_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// Starts the process nodes, the tailer and the chaos. They stop with `ctx.stop`.
pub(super) fn start(ctx: &Arc<Ctx>, p: &Processes) -> Result<ProcRun> {
    std::fs::create_dir_all(&p.dir)
        .map_err(|e| Error::Config(format!("cannot create {}: {e}", p.dir.display())))?;
    let work = p.dir.join("work.log");
    std::fs::write(&work, b"")
        .map_err(|e| Error::Config(format!("cannot write {}: {e}", work.display())))?;
    let shared = Arc::new(Shared {
        work,
        holding: Mutex::new(HashMap::new()),
        running: (0..=p.count).map(|_| Mutex::new(false)).collect(),
        work_for: (0..=p.count).map(|_| Mutex::new(Duration::ZERO)).collect(),
        kills: AtomicU64::new(0),
        pauses: AtomicU64::new(0),
        wall0_ns: wall_ns(),
        mono0_ms: ctx.history.now_ms(),
    });
    let mut senders = Vec::new();
    let mut nodes = Vec::new();
    for k in 1..=p.count {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        nodes.push(tokio::spawn(node(
            Arc::clone(ctx),
            Arc::clone(&shared),
            p.clone(),
            k,
            rx,
        )));
    }
    let tail_stop = CancellationToken::new();
    let tailer = tokio::spawn(tail(
        Arc::clone(ctx),
        Arc::clone(&shared),
        tail_stop.clone(),
    ));
    let chaos = tokio::spawn(chaos(Arc::clone(ctx), Arc::clone(&shared), senders));
    Ok(ProcRun {
        shared,
        nodes,
        chaos,
        tailer,
        tail_stop,
    })
}

impl ProcRun {
    /// Waits for every process node to stop (call after `ctx.stop` is cancelled), reads the
    /// work file a last time, and returns (SIGKILLs sent, pauses).
    pub(super) async fn finish(self) -> (u64, u64) {
        let _ = self.chaos.await;
        for n in self.nodes {
            let _ = n.await;
        }
        self.tail_stop.cancel();
        let _ = self.tailer.await;
        (
            self.shared.kills.load(Ordering::SeqCst),
            self.shared.pauses.load(Ordering::SeqCst),
        )
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The command a process node runs under the lock.
fn script(work: &Path, who: &str, ticks: u32) -> String {
    format!(
        "f={f}; n={who}; t=\"$CAIRN_FENCING_TOKEN\"\n\
         echo \"start $t $n $(date +%s%N)\" >> \"$f\"\n\
         i=0\n\
         while [ \"$i\" -lt {ticks} ]; do sleep 0.1; echo \"tick $t $n $(date +%s%N)\" >> \"$f\"; i=$((i+1)); done\n\
         echo \"end $t $n $(date +%s%N)\" >> \"$f\"\n",
        f = quote(&work.display().to_string()),
        who = quote(who),
    )
}

fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: signalling a child this harness spawned and has not yet reaped.
        unsafe { libc::kill(pid, sig) };
    }
}

/// One process node: runs cairn again and again until the run stops.
async fn node(
    ctx: Arc<Ctx>,
    shared: Arc<Shared>,
    p: Processes,
    k: usize,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
) {
    let name = format!("proc-{k}");
    let mut rng = StdRng::seed_from_u64(super::seed_for(ctx.opts.seed, 100 + k, 0));
    let stop = ctx.stop.clone();
    let secs = |d: Duration| format!("{}ms", d.as_millis());
    let mut inc = 0u32;
    let mut open = true;
    'runs: while !stop.is_cancelled() {
        inc += 1;
        // Mostly short jobs, one in three long enough to outlast a pause's give-up time.
        let ticks = if rng.random_bool(1.0 / 3.0) {
            rng.random_range(40..60u32)
        } else {
            rng.random_range(5..25u32)
        };
        *shared.work_for[k].lock().unwrap_or_else(|e| e.into_inner()) =
            Duration::from_millis(u64::from(ticks) * 100);
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p.dir.join("cairn.log"))
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        let spawned = tokio::process::Command::new(&p.exe)
            .args(["--store", &p.store_url, "--node", &name, "--strategy"])
            .arg(ctx.strategy.to_string())
            .args(["lock", "run", PROC_LOCK, "--ttl"])
            .arg(secs(PROC_TTL))
            .arg("--grace")
            .arg(secs(PROC_GRACE))
            .args(["--wait", "30s", "--", "sh", "-c"])
            .arg(script(&shared.work, &format!("{name}#{inc}"), ticks))
            .env_remove("CAIRN_AUDIT_TOPIC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                ctx.record(
                    &name,
                    inc,
                    What::StartFailed {
                        error: format!("cannot run {}: {e}", p.exe.display()),
                    },
                );
                if !ctx.sleep(Duration::from_secs(1)).await {
                    break;
                }
                continue;
            }
        };
        let pid = child.id().unwrap_or(0);
        ctx.record(&name, inc, What::Spawned { pid });
        *shared.running[k].lock().unwrap_or_else(|e| e.into_inner()) = true;
        let status = loop {
            tokio::select! {
                s = child.wait() => break s,
                cmd = rx.recv(), if open => match cmd {
                    Some(Cmd::Kill { down }) => {
                        signal(pid, libc::SIGKILL);
                        let _ = child.wait().await;
                        *shared.running[k].lock().unwrap_or_else(|e| e.into_inner()) = false;
                        shared.kills.fetch_add(1, Ordering::SeqCst);
                        ctx.record(&name, inc, What::Killed);
                        if !ctx.sleep(down).await {
                            break 'runs;
                        }
                        continue 'runs;
                    }
                    Some(Cmd::Pause) => {
                        signal(pid, libc::SIGSTOP);
                        shared.pauses.fetch_add(1, Ordering::SeqCst);
                        ctx.record(&name, inc, What::Paused);
                        // Resumed even if the run stops meanwhile, so that it can be stopped.
                        ctx.sleep(PAUSE).await;
                        signal(pid, libc::SIGCONT);
                        ctx.record(&name, inc, What::Resumed);
                    }
                    None => open = false,
                },
                _ = stop.cancelled() => {
                    signal(pid, libc::SIGTERM);
                    let s = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                        Ok(s) => s,
                        Err(_) => {
                            signal(pid, libc::SIGKILL);
                            child.wait().await
                        }
                    };
                    break s;
                }
            }
        };
        *shared.running[k].lock().unwrap_or_else(|e| e.into_inner()) = false;
        use std::os::unix::process::ExitStatusExt;
        let (code, sig) = match status {
            Ok(s) => (s.code(), s.signal()),
            Err(_) => (None, None),
        };
        ctx.record(&name, inc, What::Exited { code, signal: sig });
        let rest = random_between(&mut rng, Duration::ZERO, Duration::from_millis(300));
        if !ctx.sleep(rest).await {
            break;
        }
    }
}

/// Reads the work file's new complete lines into the history every 100 ms, and once more
/// after `stop`. Returns the lines read.
async fn tail(ctx: Arc<Ctx>, shared: Arc<Shared>, stop: CancellationToken) -> u64 {
    let mut offset = 0u64;
    let mut lines = 0u64;
    loop {
        let last = stop.is_cancelled();
        lines += read_new(&ctx, &shared, &mut offset);
        if last {
            return lines;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop.cancelled() => {}
        }
    }
}

fn read_new(ctx: &Ctx, shared: &Shared, offset: &mut u64) -> u64 {
    let Ok(mut f) = std::fs::File::open(&shared.work) else {
        return 0;
    };
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(*offset)).is_err() || f.read_to_end(&mut buf).is_err() {
        return 0;
    }
    // Only complete lines; a partial one is read again next time.
    let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
        return 0;
    };
    *offset += end as u64 + 1;
    let mut n = 0;
    for line in String::from_utf8_lossy(&buf[..end]).lines() {
        if let Some((node, inc, what)) = parse(line, shared) {
            if let What::Work {
                token,
                step,
                wrote_ms,
                ..
            } = &what
            {
                let mut h = shared.holding.lock().unwrap_or_else(|e| e.into_inner());
                if step == "end" {
                    h.remove(&node);
                } else {
                    let e = h
                        .entry(node.clone())
                        .or_insert((*token, *wrote_ms, *wrote_ms));
                    if e.0 != *token {
                        *e = (*token, *wrote_ms, *wrote_ms);
                    }
                    e.2 = *wrote_ms;
                }
            }
            ctx.record(&node, inc, what);
            n += 1;
        }
    }
    n
}

/// `start 7 proc-2#3 1712345678901234567` → (proc-2, 3, Work).
fn parse(line: &str, shared: &Shared) -> Option<(String, u32, What)> {
    let mut it = line.split_whitespace();
    let step = it.next()?;
    if !matches!(step, "start" | "tick" | "end") {
        return None;
    }
    let token: u64 = it.next()?.parse().ok()?;
    let (node, inc) = it.next()?.split_once('#')?;
    let inc: u32 = inc.parse().ok()?;
    let ns: i128 = it.next()?.parse().ok()?;
    let wrote_ms = shared.mono0_ms + (ns - shared.wall0_ns) as f64 / 1e6;
    Some((
        node.to_string(),
        inc,
        What::Work {
            lock: PROC_LOCK.into(),
            token,
            step: step.into(),
            wrote_ms,
        },
    ))
}

/// SIGKILLs random process nodes (with random kills; else one, at 40 % of the run) and
/// restarts them after up to a ttl; pauses a holder at work once, from an eighth of the run
/// on (until then kills spare the holder, so that the lock keeps moving).
async fn chaos(ctx: Arc<Ctx>, shared: Arc<Shared>, senders: Vec<mpsc::UnboundedSender<Cmd>>) {
    let opts = &ctx.opts;
    let mut rng = StdRng::seed_from_u64(super::seed_for(opts.seed, 100, 1));
    let start = ctx.history.start();
    let end = start + opts.duration;
    let count = senders.len();
    // Node k (1-based) is left alone until then (paused, or just killed).
    let mut busy_until = vec![start; count + 1];
    let pause_from = start + opts.duration / 8;
    let mut paused = false;
    let mut next_kill = Some(if opts.random_kills {
        start + random_between(&mut rng, opts.duration / 8, opts.duration / 5)
    } else {
        start + opts.duration * 2 / 5
    });
    loop {
        if !ctx.sleep(Duration::from_millis(50)).await {
            return;
        }
        let now = tokio::time::Instant::now();
        let now_ms = ctx.history.now_ms();
        let running = |k: usize| *shared.running[k].lock().unwrap_or_else(|e| e.into_inner());
        let holding = shared
            .holding
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // The pause: a holder whose command wrote a line in the last 300 ms, so it is at work
        // when it is stopped; preferably one whose job lasts past the lease's give-up time
        // (so that the guard must stop it), any such holder once time runs short.
        let latest = end.checked_sub(PAUSE + Duration::from_secs(1));
        if !paused && now >= pause_from && latest.is_some_and(|l| now < l) {
            let short_of_time = latest.is_some_and(|l| now + Duration::from_secs(2) >= l);
            let fresh = (1..=count).find(|&k| {
                let work_for = *shared.work_for[k].lock().unwrap_or_else(|e| e.into_inner());
                busy_until[k] <= now
                    && running(k)
                    && holding
                        .get(&format!("proc-{k}"))
                        .is_some_and(|&(_, first, last)| {
                            let left = work_for.as_secs_f64() * 1000.0 - (now_ms - first);
                            now_ms - last < 300.0
                                && (short_of_time || left > PROC_TTL.as_secs_f64() * 1000.0)
                        })
            });
            if let Some(k) = fresh {
                paused = true;
                busy_until[k] = now + PAUSE + Duration::from_secs(1);
                let _ = senders[k - 1].send(Cmd::Pause);
            }
        }
        if next_kill.is_some_and(|t| now >= t) {
            let live: Vec<usize> = (1..=count)
                .filter(|&k| busy_until[k] <= now && running(k))
                .collect();
            if !live.is_empty() {
                // Half the time a node at work under the lock, if there is one; before the
                // pause, only nodes that are not, so the lock keeps moving until then.
                let (at_work, idle): (Vec<usize>, Vec<usize>) = live.iter().partition(|k| {
                    holding
                        .get(&format!("proc-{k}"))
                        .is_some_and(|&(_, _, last)| now_ms - last < 500.0)
                });
                let from = if !paused {
                    &idle
                } else if !at_work.is_empty() && rng.random_bool(0.5) {
                    &at_work
                } else {
                    &live
                };
                if from.is_empty() {
                    continue;
                }
                let k = from[rng.random_range(0..from.len())];
                let down = random_between(&mut rng, Duration::from_millis(300), PROC_TTL);
                busy_until[k] = now + down + Duration::from_secs(1);
                let _ = senders[k - 1].send(Cmd::Kill { down });
                next_kill = opts
                    .random_kills
                    .then(|| now + random_between(&mut rng, opts.duration / 8, opts.duration / 5));
            }
        }
    }
}
