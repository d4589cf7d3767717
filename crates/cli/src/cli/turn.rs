//! `cairn turn run|ls|show|configure`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::child::{self, Signals};
use super::output::say;
use super::turn_result::ResultFile;
use super::Result;
use super::{exit, output};
use cairn::turn::{Claim, Finish, JobResult, TurnInfo, TurnOptions, Turns};
use cairn::Name;

/// How long what COMMAND left running in its process group has between SIGTERM and
/// SIGKILL once COMMAND has exited; the same as `lock run`'s default `--grace`.
const GRACE: Duration = Duration::from_secs(10);

/// `cairn turn run`: one-shot, or `--loop`. COMMAND's whole process group is gone before
/// the turn's outcome is recorded (see [`child`]).
pub async fn run(
    turns: &Turns,
    node: &Name,
    name: &str,
    keep_running: bool,
    command: &[String],
    json: bool,
) -> Result<i32> {
    let name = Name::new(name)?;
    if keep_running {
        return run_loop(turns, node, &name, command).await;
    }
    let mut signals = Signals::install()?;
    // Made before claiming: a run that cannot give COMMAND its result file claims nothing.
    let result_file = ResultFile::create(&name).map_err(|e| cairn::Error::Config(e.to_string()))?;
    let claim = tokio::select! {
        c = turns.try_claim(&name) => c?,
        sig = signals.recv() => return Ok(128 + sig),
    };
    let turn = match claim {
        Claim::Won(t) => t,
        Claim::NotDue {
            current,
            claimable_at,
        } => {
            report_skip(&current, Some(claimable_at), json)?;
            return Ok(exit::OK);
        }
        Claim::Lost { current } => {
            report_skip(&current, None, json)?;
            return Ok(exit::OK);
        }
    };
    let number = turn.number();
    let env = job_env(&name, node, number, result_file.path());
    let mut job = match child::spawn(command, &env, child::Terminal::Share) {
        Ok(c) => c,
        Err(e) => {
            say!("cairn: cannot run {:?}: {e}", command[0]);
            if let Err(e) = turn.finish(Err(format!("cannot run: {e}"))).await {
                say!("cairn: turn {name} {number}: the outcome could not be recorded: {e}");
            }
            return Ok(exit::CANNOT_RUN);
        }
    };
    let status = loop {
        tokio::select! {
            s = job.wait() => break s,
            sig = signals.recv() => job.signal(child::forwarded(sig)),
        }
    };
    job.finish(GRACE).await;
    job.reap_guard().await;
    let code = match status {
        Ok(s) => child::status_code(s),
        Err(e) => {
            say!("cairn: waiting for the command failed: {e}");
            exit::FAILURE
        }
    };
    // COMMAND's status is the outcome whatever becomes of recording it: a store that went
    // away while COMMAND ran is said on stderr, not turned into cairn's own failure, so that
    // cron tells a failed job from an outage.
    let recorded = turn.finish(verdict(code, &result_file)).await;
    if let Err(e) = &recorded {
        say!(
            "cairn: turn {name} {number}: COMMAND exited {code}, but its outcome could not be \
             recorded: {}",
            output::text(&e.to_string())
        );
    }
    report_finish(&name, number, code, recorded.as_ref(), json);
    Ok(code)
}

/// The environment COMMAND sees.
fn job_env(
    name: &Name,
    node: &Name,
    number: u64,
    result_file: &std::path::Path,
) -> [(&'static str, String); 4] {
    [
        ("CAIRN_TURN", number.to_string()),
        ("CAIRN_TURN_NAME", name.to_string()),
        ("CAIRN_NODE", node.to_string()),
        ("CAIRN_TURN_RESULT", result_file.display().to_string()),
    ]
}

/// The job's verdict from COMMAND's exit code and the JSON it left in the result file
/// (see [`ResultFile`]; a refused one is said on stderr and not recorded).
fn verdict(code: i32, result_file: &ResultFile) -> JobResult {
    let result = match result_file.read() {
        Ok(v) => v,
        Err(why) => {
            say!("cairn: CAIRN_TURN_RESULT refused: {why}");
            None
        }
    };
    if code == 0 {
        Ok(result)
    } else {
        Err(format!("exit status {code}"))
    }
}

/// `--loop`: run COMMAND for every turn this node wins, until SIGINT or SIGTERM. A signal
/// while COMMAND runs is forwarded to its process group, and cairn stops once the group is
/// gone and the outcome is recorded.
async fn run_loop(turns: &Turns, node: &Name, name: &Name, command: &[String]) -> Result<i32> {
    let mut signals = Signals::install()?;
    let stop = CancellationToken::new();
    // COMMAND's process group while it runs, and whether a stop was asked for.
    let running: Arc<Mutex<(Option<child::Group>, bool)>> = Arc::default();
    let watcher = {
        let (stop, running) = (stop.clone(), Arc::clone(&running));
        tokio::spawn(async move {
            loop {
                let sig = signals.recv().await;
                let mut r = running.lock().unwrap_or_else(|e| e.into_inner());
                r.1 = true;
                match &r.0 {
                    Some(group) => group.signal(child::forwarded(sig)),
                    None => stop.cancel(),
                }
            }
        })
    };
    let job = |number: u64| {
        let (stop, running) = (stop.clone(), Arc::clone(&running));
        let result_file = ResultFile::create(name);
        async move {
            let set = |group| running.lock().unwrap_or_else(|e| e.into_inner()).0 = group;
            let result_file = match result_file {
                Ok(f) => f,
                Err(e) => {
                    say!("cairn: turn {name} {number}: {e}");
                    return Err(e.to_string());
                }
            };
            let env = job_env(name, node, number, result_file.path());
            // The terminal stays cairn's: Ctrl-C must reach it, to stop the loop.
            let outcome = match child::spawn(command, &env, child::Terminal::Keep) {
                Ok(mut c) => {
                    set(Some(c.group().clone()));
                    let code = match c.wait().await {
                        Ok(s) => child::status_code(s),
                        Err(_) => exit::FAILURE,
                    };
                    c.finish(GRACE).await;
                    c.reap_guard().await;
                    set(None);
                    say!("cairn: turn {name} {number}: COMMAND exited {code}");
                    verdict(code, &result_file)
                }
                Err(e) => {
                    say!("cairn: cannot run {:?}: {e}", command[0]);
                    Err(format!("cannot run: {e}"))
                }
            };
            if running.lock().unwrap_or_else(|e| e.into_inner()).1 {
                stop.cancel();
            }
            outcome
        }
    };
    let ended = turns.run_loop(name, job, stop.clone()).await;
    watcher.abort();
    ended?;
    let c = turns.counters(name);
    say!(
        "cairn: turn {name}: ran {}, skipped {}, lost {}, failed {}",
        c.run,
        c.skipped,
        c.lost,
        c.failed
    );
    Ok(exit::OK)
}

/// What `turn run --json` prints: one line, whether it ran or not.
#[derive(serde::Serialize)]
struct RunOutcome<'a> {
    /// `ran`, `not-due` or `lost` (another node won this turn).
    outcome: &'a str,
    /// The turn's name.
    name: &'a str,
    /// The number of the turn this invocation ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    number: Option<u64>,
    /// COMMAND's exit status, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    /// Whether the outcome was stored with the turn (not when a later turn started first,
    /// nor when the store failed: see `record_error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    recorded: Option<bool>,
    /// Why the outcome could not be recorded (the store failed while COMMAND ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    record_error: Option<String>,
    /// When not due: the earliest time this node may claim the next turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    claimable_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The turn as stored now (as `turn show` prints it); null when it could not be read.
    turn: Option<&'a TurnInfo>,
}

/// Reports a turn this invocation did not run: not due (`claimable_at` says from when), or
/// won by another node (`None`).
fn report_skip(
    current: &TurnInfo,
    claimable_at: Option<chrono::DateTime<chrono::Utc>>,
    json: bool,
) -> Result<()> {
    if json {
        return output::json(&RunOutcome {
            outcome: if claimable_at.is_some() {
                "not-due"
            } else {
                "lost"
            },
            name: &current.name,
            number: None,
            exit_code: None,
            recorded: None,
            record_error: None,
            claimable_at,
            turn: Some(current),
        });
    }
    let r = &current.record;
    let next_due = output::time(current.next_due_at);
    let text = match claimable_at {
        None => format!(
            "turn {}: {} won turn {}; next due at {next_due}",
            current.name,
            output::name(&r.holder),
            r.turn
        ),
        Some(c) => format!(
            "turn {}: not due; turn {} started at {} by {} ({}); next due at {next_due} \
             (claimable from {})",
            current.name,
            r.turn,
            output::time(r.started_at),
            output::name(&r.holder),
            current.state,
            output::time(c),
        ),
    };
    output::line(&output::text(&text))
}

/// Reports a turn this invocation ran: its outcome `finished` as recorded, or the error
/// recording it. COMMAND's status stands either way, so a stdout that cannot be written is
/// only said on stderr.
fn report_finish(
    name: &Name,
    number: u64,
    code: i32,
    finished: std::result::Result<&Finish, &cairn::Error>,
    json: bool,
) {
    let (stored, current, record_error) = match finished {
        Ok(Finish::Recorded(t)) => (true, Some(t), None),
        Ok(Finish::Superseded(t)) => (false, t.as_ref(), None),
        Err(e) => (false, None, Some(e.to_string())),
    };
    if json {
        let said = output::json(&RunOutcome {
            outcome: "ran",
            name: name.as_str(),
            number: Some(number),
            exit_code: Some(code),
            recorded: Some(stored),
            record_error,
            claimable_at: None,
            turn: current,
        });
        if let Err(e) = said {
            say!("cairn: {e}");
        }
    } else if !stored && record_error.is_none() {
        say!(
            "cairn: turn {name} {number} ran past the window: a later turn started before it \
             finished, so its outcome is not stored with the turn"
        );
    }
}

/// `cairn turn ls`.
pub async fn ls(turns: &Turns, json: bool) -> super::ops::Frame {
    let all = turns.entries().await?;
    Ok(output::entries(
        &all,
        json,
        &[
            "NAME", "NUMBER", "STATE", "HOLDER", "OUTCOME", "WINDOW", "NEXT DUE",
        ],
        &[1],
        |t| {
            let outcome = t
                .record
                .outcome
                .as_ref()
                .map_or("-".to_string(), |o| o.status.to_string());
            vec![
                output::name(&t.name).into_owned(),
                t.record.turn.to_string(),
                t.state.to_string(),
                output::name(&t.record.holder).into_owned(),
                outcome,
                format!(
                    "{} ± {}",
                    output::millis(t.record.window_ms),
                    output::millis(t.record.jitter_ms)
                ),
                output::time(t.next_due_at),
            ]
        },
    ))
}

/// `cairn turn show NAME`.
pub async fn show(turns: &Turns, name: &str, json: bool) -> Result<i32> {
    let Some(t) = turns.get(&Name::new(name)?).await? else {
        say!("cairn: no turn named {name}");
        return Ok(exit::NOT_FOUND);
    };
    print_turn(&t, json)?;
    Ok(exit::OK)
}

/// Prints one turn, as JSON or as labelled lines (stored strings escaped, see
/// [`output::text`]).
fn print_turn(t: &TurnInfo, json: bool) -> Result<()> {
    if json {
        return output::json(t);
    }
    let r = &t.record;
    let mut out = output::Labelled::new(13);
    out.line("name:", output::name(&t.name));
    out.line("number:", r.turn);
    out.line("state:", t.state);
    out.line("holder:", output::name(&r.holder));
    out.line("started at:", output::time(r.started_at));
    if let Some(f) = r.finished_at {
        out.line("finished at:", output::time(f));
    }
    if let Some(o) = &r.outcome {
        out.line(
            "outcome:",
            format!("{} in {}", o.status, output::millis(o.duration_ms)),
        );
        if let Some(res) = &o.result {
            out.line("result:", res);
        }
        if let Some(e) = &o.error {
            out.line("error:", e);
        }
    }
    out.line(
        "window:",
        format!(
            "{} ± {}",
            output::millis(r.window_ms),
            output::millis(r.jitter_ms)
        ),
    );
    out.line("next due at:", output::time(t.next_due_at));
    if let Some(p) = &r.previous {
        let how = p
            .outcome
            .as_ref()
            .map_or("never finished".to_string(), |o| o.status.to_string());
        out.line(
            "previous:",
            format!("turn {} by {} ({how})", p.turn, output::name(&p.holder)),
        );
    }
    output::print(&out.finish())
}

/// The options `turn run` claims with: the turn's stored window and jitter unless
/// `--every` or `--jitter` was given; then those, and a mismatch with the turn is an error.
pub fn options(every: Option<Duration>, jitter: Option<Duration>) -> TurnOptions {
    let d = TurnOptions::default();
    let window = every.unwrap_or(d.window);
    TurnOptions {
        window,
        jitter: jitter.unwrap_or_else(|| default_jitter(window)),
        adopt_stored: every.is_none() && jitter.is_none(),
    }
}

/// min(30 s, window / 10): the default jitter for a window.
pub fn default_jitter(window: Duration) -> Duration {
    TurnOptions::default().jitter.min(window / 10)
}

/// `cairn turn configure NAME --every W [--jitter J]`.
pub async fn configure(
    turns: &Turns,
    name: &str,
    every: Duration,
    jitter: Option<Duration>,
    json: bool,
) -> Result<i32> {
    let jitter = jitter.unwrap_or_else(|| default_jitter(every));
    match turns.reconfigure(&Name::new(name)?, every, jitter).await? {
        Some(t) => {
            print_turn(&t, json)?;
            Ok(exit::OK)
        }
        None => {
            say!("cairn: no turn named {name}: `turn run {name} --every …` creates it");
            Ok(exit::NOT_FOUND)
        }
    }
}
