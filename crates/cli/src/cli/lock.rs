//! `cairn lock run|hold|ls|show|break`.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitStatus;
use std::time::Duration;

use serde::Serialize;

use super::child::{self, Signals};
use super::output::say;
use super::Result;
use super::{exit, output};
use cairn::lock::{Acquire, Break, FencingToken, HeldLock, LockInfo, LockState, Locks, LossReason};
use cairn::{Cairn, Name};

/// The grace `lock run` uses: the one given, else 10 s, or `ttl / 3` when that is shorter
/// (so that the default always fits in the ttl).
pub fn grace(ttl: Duration, given: Option<Duration>) -> Duration {
    given.unwrap_or_else(|| Duration::from_secs(10).min(ttl / 3))
}

/// One line of `lock run --json` / `lock hold --json`: the lock acquired, or found busy.
#[derive(Serialize)]
struct LockEvent<'a> {
    /// `acquired` or `busy`.
    event: &'a str,
    lock: &'a LockInfo,
}

/// The last line of `lock run --json` / `lock hold --json`: how it ended.
#[derive(Serialize)]
struct Finished<'a> {
    event: &'a str,
    name: &'a Name,
    fencing_token: FencingToken,
    /// COMMAND's exit status (128+N when killed by signal N, 127 when it could not be
    /// started); absent for `lock hold`, and when the lease was past its give-up time
    /// before COMMAND was started (it is not started then).
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    lease_lost: bool,
    /// Why, when the lease was lost.
    loss: Option<LossReason>,
    /// Whether the release was written (a lost lease is not released: it is no longer ours).
    released: bool,
    /// What cairn exits with.
    cairn_exit_code: i32,
}

/// Acquires `name` for `lock run` and `lock hold`: the lease, or the exit code to leave
/// with (busy: `conflict_code`; interrupted: 128+N), having said why.
async fn acquire(
    locks: &Locks,
    name: &Name,
    wait: Option<Duration>,
    conflict_code: i32,
    signals: &mut Signals,
    json: bool,
) -> Result<std::result::Result<HeldLock, i32>> {
    let acquired = tokio::select! {
        r = locks.acquire(name, wait) => r?,
        sig = signals.recv() => return Ok(Err(128 + sig)),
    };
    match acquired {
        Acquire::Held(l) => {
            if json {
                let said = output::json(&LockEvent {
                    event: "acquired",
                    lock: &l.info(),
                });
                if let Err(e) = said {
                    // Nobody reads what happens next: give the lock back, start nothing.
                    release_unread(name, l).await;
                    return Err(e);
                }
            }
            Ok(Ok(l))
        }
        Acquire::Busy(b) => {
            if json {
                output::json(&LockEvent {
                    event: "busy",
                    lock: &b,
                })?;
            }
            say!(
                "cairn: lock {name} is held by {} (fencing token {}, expires {})",
                output::name(&b.holder),
                b.fencing_token,
                output::time(b.expires_at)
            );
            Ok(Err(conflict_code))
        }
    }
}

/// Releases a lease just acquired whose acquisition could not be reported (stdout closed).
async fn release_unread(name: &Name, lease: HeldLock) {
    match lease.release().await {
        Ok(()) => say!("cairn: stdout is closed; released lock {name} without running anything"),
        Err(e) => say!("cairn: stdout is closed; releasing lock {name} failed ({e})"),
    }
}

/// The last line of `lock run --json` / `lock hold --json`, printed if stdout is still
/// open: the outcome it reports stands either way (COMMAND's status is passed through).
fn print_finished(f: &Finished<'_>) {
    if let Err(e) = output::json(f) {
        say!("cairn: {e}");
    }
}

/// What `lock run` needs beyond the lock client.
pub struct RunArgs<'a> {
    /// The lock's name.
    pub name: &'a str,
    /// `--wait` / `-n`.
    pub wait: Option<Duration>,
    /// The SIGTERM→SIGKILL grace.
    pub grace: Duration,
    /// The exit code when the lock could not be had (`-E`).
    pub conflict_code: i32,
    /// COMMAND and its arguments (already `sh -c STRING` for `-c`).
    pub command: &'a [String],
    /// `--json`.
    pub json: bool,
}

/// `cairn lock run`: acquire, run the command under the lease, release. The command's
/// whole process group is gone before the lock is released or cairn exits 76 (see
/// [`child`]).
pub async fn run(cairn: &Cairn, locks: &Locks, a: RunArgs<'_>) -> Result<i32> {
    let name = Name::new(a.name)?;
    let (grace, command, json) = (a.grace, a.command, a.json);
    let mut signals = Signals::install()?;
    // The guard starts (an exec of this binary) while the lock is being acquired, not
    // between acquiring and running COMMAND. Until it is handed COMMAND's group it guards
    // nothing: when no COMMAND runs, it is simply sent away.
    let guard = tokio::task::spawn_blocking(child::Guard::spawn);
    let acquired = acquire(locks, &name, a.wait, a.conflict_code, &mut signals, json).await;
    let guard = guard
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    let lease = match acquired {
        Ok(Ok(l)) => l,
        Ok(Err(code)) => {
            dismiss(guard).await;
            return Ok(code);
        }
        Err(e) => {
            dismiss(guard).await;
            return Err(e);
        }
    };
    let token = lease.fencing_token();
    let finished = |exit_code: i32, loss: Option<LossReason>, released: bool, code: i32| {
        if json {
            print_finished(&Finished {
                event: "finished",
                name: &name,
                fencing_token: token,
                exit_code: Some(exit_code),
                lease_lost: loss.is_some(),
                loss,
                released,
                cairn_exit_code: code,
            });
        }
        code
    };
    let env = [
        ("CAIRN_LOCK", name.to_string()),
        ("CAIRN_NODE", cairn.node().to_string()),
        ("CAIRN_FENCING_TOKEN", token.to_string()),
    ];
    // The acquire's answer may have come back after the lease's give-up time (a slow store,
    // a --timeout longer than the ttl, a suspended host): COMMAND would start on a lease that
    // may be another node's by now. It is not started.
    if !lease.is_held() {
        dismiss(guard).await;
        let reason = lease.loss_reason().unwrap_or(LossReason::Unavailable {
            error: "the acquire was answered after the lease's give-up time".into(),
        });
        say!(
            "cairn: lock {name} was acquired too late to use ({}); the command was not started",
            output::text(&reason.to_string())
        );
        // Nobody may have written over it: then the tombstone frees the lock at once.
        let released = lease.release().await.is_ok();
        if json {
            output::json(&Finished {
                event: "finished",
                name: &name,
                fencing_token: token,
                exit_code: None,
                lease_lost: true,
                loss: Some(reason),
                released,
                cairn_exit_code: exit::LEASE_LOST,
            })?;
        }
        return Ok(exit::LEASE_LOST);
    }
    let left = lease
        .deadline()
        .saturating_duration_since(tokio::time::Instant::now());
    let spawned = guard.and_then(|g| {
        child::spawn_guarded(
            g,
            command,
            &env,
            child::Terminal::Share,
            Some((left, grace)),
        )
    });
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            say!("cairn: cannot run {:?}: {e}", command[0]);
            return match lease.release().await {
                Ok(()) => Ok(finished(exit::CANNOT_RUN, None, true, exit::CANNOT_RUN)),
                Err(cairn::Error::LockLost { reason, .. }) => Ok(finished(
                    exit::CANNOT_RUN,
                    Some(reason),
                    false,
                    exit::LEASE_LOST,
                )),
                Err(e) => Err(e.into()),
            };
        }
    };
    enum End {
        Exited(std::io::Result<ExitStatus>),
        Lost(LossReason),
    }
    // The guard stops the group at the lease's give-up time should this process be paused
    // and unable to; pushed on every second while all is well.
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let end = loop {
        tokio::select! {
            s = child.wait() => break End::Exited(s),
            r = lease.lost() => break End::Lost(r),
            sig = signals.recv() => child.signal(child::forwarded(sig)),
            _ = tick.tick() => {
                let left = lease.deadline().saturating_duration_since(tokio::time::Instant::now());
                child.arm(left, grace);
            }
        }
    };
    child.unarm();
    match end {
        End::Exited(status) => {
            // Whatever COMMAND left running stops before the lock goes (within the grace,
            // which the lease's give-up time already leaves room for).
            child.finish(grace).await;
            let code = match status {
                Ok(s) => child::status_code(s),
                Err(e) => {
                    say!("cairn: waiting for the command failed: {e}");
                    exit::FAILURE
                }
            };
            // The command ended after the lease's give-up time (renewals failed, and the
            // guard may well have stopped it): the lease is lost, whatever a release during
            // the outage would answer, and the command's status is not the outcome.
            if !lease.is_held() {
                let reason = lease.loss_reason().unwrap_or(LossReason::Unavailable {
                    error: "the lease's give-up time passed before the command ended".into(),
                });
                say!(
                    "cairn: lost lock {name}: {}; the command was stopped",
                    output::text(&reason.to_string())
                );
                child.reap_guard().await;
                return Ok(finished(code, Some(reason), false, exit::LEASE_LOST));
            }
            // The release first: the guard, dismissed now that the group is gone, is reaped
            // after it.
            let released = lease.release().await;
            child.reap_guard().await;
            match released {
                Ok(()) => Ok(finished(code, None, true, code)),
                // The command finished, but not under the lock: say so, and fail as a lost
                // lease does, whatever the command's own status.
                Err(cairn::Error::LockLost { lock, reason }) => {
                    say!(
                        "cairn: lock {lock} was lost ({}); the command's work may have \
                         overlapped another holder's",
                        output::text(&reason.to_string())
                    );
                    Ok(finished(code, Some(reason), false, exit::LEASE_LOST))
                }
                Err(e) => {
                    say!("cairn: releasing lock {name} failed ({e}); it will expire");
                    Ok(finished(code, None, false, code))
                }
            }
        }
        End::Lost(reason) => {
            say!(
                "cairn: lost lock {name}: {}; stopping the command",
                output::text(&reason.to_string())
            );
            child.stop(grace).await;
            child.reap_guard().await;
            let code = child
                .exit_status()
                .map_or(exit::FAILURE, child::status_code);
            Ok(finished(code, Some(reason), false, exit::LEASE_LOST))
        }
    }
}

/// Sends away a guard that no COMMAND was given to.
async fn dismiss(guard: std::io::Result<child::Guard>) {
    if let Ok(g) = guard {
        g.dismiss().await;
    }
}

/// How often `lock hold` looks whether whoever asked for the hold is gone.
const ASKER_POLL: Duration = Duration::from_millis(250);

/// Resolves, saying why, once whoever asked for the hold is gone: the parent process
/// (`parent`, the one that started cairn) has exited, so cairn was re-parented; or stdout is
/// a pipe (or socket, or terminal) that nobody can read any more. `coproc cairn lock hold`
/// in a script that exits is both. Polled: a tokio program cannot use `PR_SET_PDEATHSIG`
/// (it fires when the parent *thread* exits). A closed stdin is not taken as a sign, as
/// `cmd &` in a script runs with stdin at end of file from the start.
async fn asker_gone(parent: libc::pid_t) -> &'static str {
    let mut tick = tokio::time::interval(ASKER_POLL);
    loop {
        tick.tick().await;
        // SAFETY: getppid never fails.
        if unsafe { libc::getppid() } != parent {
            return "the process that started it exited";
        }
        if stdout_unread() {
            return "nobody reads its stdout any more";
        }
    }
}

/// Whether stdout can no longer be read: a pipe whose read end is closed everywhere
/// (`POLLERR`), a socket whose peer is gone or a terminal that hung up (`POLLHUP`). A file
/// or `/dev/null` never is.
fn stdout_unread() -> bool {
    let mut pfd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting; the descriptor is only looked at.
    let r = unsafe { libc::poll(&mut pfd, 1, 0) };
    r > 0 && pfd.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// `cairn lock hold`: acquire, print the fencing token, renew until SIGINT, SIGTERM or
/// SIGHUP, or until whoever asked for the hold is gone ([`asker_gone`]), then release.
/// Exits 76 if the lease is lost meanwhile (or found lost at release).
pub async fn hold(
    locks: &Locks,
    name: &str,
    wait: Option<Duration>,
    conflict_code: i32,
    json: bool,
) -> Result<i32> {
    let name = Name::new(name)?;
    // SAFETY: getppid never fails. Taken first: a parent that exits while cairn waits for
    // the lock is gone too.
    let parent = unsafe { libc::getppid() };
    let mut signals = Signals::install()?;
    let lease = match acquire(locks, &name, wait, conflict_code, &mut signals, json).await? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let token = lease.fencing_token();
    if !json {
        // The token alone on stdout, for a script to read; the explanation for people.
        if let Err(e) = output::line(&token.to_string()) {
            release_unread(&name, lease).await;
            return Err(e);
        }
        say!(
            "cairn: holding lock {name} with fencing token {token} until Ctrl-C, SIGTERM or \
             SIGHUP, or until the process that started it exits (renewed every {})",
            output::duration(locks.options().renew_interval)
        );
    }
    let finished = |loss: Option<LossReason>, released: bool, code: i32| {
        if json {
            print_finished(&Finished {
                event: "finished",
                name: &name,
                fencing_token: token,
                exit_code: None,
                lease_lost: loss.is_some(),
                loss,
                released,
                cairn_exit_code: code,
            });
        }
        code
    };
    tokio::select! {
        _ = signals.recv() => {}
        why = asker_gone(parent) => say!("cairn: {why}; releasing lock {name}"),
        reason = lease.lost() => {
            say!("cairn: lost lock {name}: {}", output::text(&reason.to_string()));
            return Ok(finished(Some(reason), false, exit::LEASE_LOST));
        }
    }
    match lease.release().await {
        Ok(()) => {
            if !json {
                say!("cairn: released lock {name} (fencing token {token})");
            }
            Ok(finished(None, true, exit::OK))
        }
        Err(cairn::Error::LockLost { lock, reason }) => {
            say!(
                "cairn: lock {lock} was lost before its release: {}",
                output::text(&reason.to_string())
            );
            Ok(finished(Some(reason), false, exit::LEASE_LOST))
        }
        Err(e) => Err(e.into()),
    }
}

/// `cairn lock ls`.
pub async fn ls(locks: &Locks, json: bool) -> super::ops::Frame {
    let all = locks.entries().await?;
    Ok(output::entries(
        &all,
        json,
        &["NAME", "STATE", "HOLDER", "TOKEN", "VERSION", "EXPIRES"],
        &[3, 4],
        |l| {
            vec![
                output::name(&l.name).into_owned(),
                state(l).into(),
                output::name(&l.holder).into_owned(),
                l.fencing_token.to_string(),
                l.version.to_string(),
                output::time(l.expires_at),
            ]
        },
    ))
}

/// `cairn lock show NAME`.
pub async fn show(locks: &Locks, name: &str, json: bool) -> Result<i32> {
    match locks.show(&Name::new(name)?).await? {
        Some(l) => {
            if json {
                output::json(&l)?;
            } else {
                output::print(&lock_text(&l))?;
            }
            Ok(exit::OK)
        }
        None => {
            say!("cairn: no lock named {name}");
            Ok(exit::NOT_FOUND)
        }
    }
}

/// Checks, before any request, that `lock break` can be confirmed: by `--force`, or by a
/// person at the terminal on stdin.
pub fn check_break_confirmable(force: bool) -> cairn::Result<()> {
    if force || std::io::stdin().is_terminal() {
        return Ok(());
    }
    Err(cairn::Error::Config(
        "lock break: stdin is not a terminal, so nobody can confirm the break; pass --force \
         to break without asking"
            .into(),
    ))
}

/// What `lock break` did, as its JSON line says.
#[derive(Serialize)]
struct BreakOutcome<'a> {
    /// `broken`, `not-held`, `other-lease` or `declined`.
    outcome: &'a str,
    lock: &'a LockInfo,
}

/// `cairn lock break NAME --token N`: breaks lease N of lock NAME, and only that lease,
/// after asking at the terminal unless `force`.
pub async fn break_lock(
    locks: &Locks,
    name: &str,
    token: u64,
    force: bool,
    json: bool,
) -> Result<i32> {
    let name = Name::new(name)?;
    let token = FencingToken(token);
    let report = |outcome: &str, l: &LockInfo| {
        if json {
            output::json(&BreakOutcome { outcome, lock: l })
        } else {
            output::print(&lock_text(l))
        }
    };
    let Some(current) = locks.show(&name).await? else {
        say!("cairn: no lock named {name}");
        return Ok(exit::NOT_FOUND);
    };
    if current.fencing_token != token {
        return other_lease(&name, token, &current, report);
    }
    if matches!(current.state, LockState::Released | LockState::Broken) {
        return not_held(&name, token, &current, report);
    }
    if !force {
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "{}Break lease {token} of lock {name}, held by {}? Its holder stops at its next \
             renewal; no other node gets the lock before {}. [y/N] ",
            lock_text(&current),
            output::name(&current.holder),
            output::time(current.expires_at)
        );
        let _ = err.flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            say!("cairn: not broken");
            if json {
                output::json(&BreakOutcome {
                    outcome: "declined",
                    lock: &current,
                })?;
            }
            return Ok(exit::FAILURE);
        }
    }
    match locks.break_held(&name, token).await? {
        None => {
            say!("cairn: no lock named {name}");
            Ok(exit::NOT_FOUND)
        }
        Some(Break::Broken(l)) => {
            report("broken", &l)?;
            Ok(exit::OK)
        }
        Some(Break::NotHeld(l)) => not_held(&name, token, &l, report),
        Some(Break::OtherHolder(l)) => other_lease(&name, token, &l, report),
    }
}

/// Says that lease `token` of `name` is no longer held: nothing to break.
fn not_held(
    name: &Name,
    token: FencingToken,
    l: &LockInfo,
    report: impl Fn(&str, &LockInfo) -> Result<()>,
) -> Result<i32> {
    say!(
        "cairn: lease {token} of lock {name} is not held ({}): nothing to break",
        state(l)
    );
    report("not-held", l)?;
    Ok(exit::OK)
}

/// Refuses to break lease `token` of `name` when `current` is another lease.
fn other_lease(
    name: &Name,
    token: FencingToken,
    current: &LockInfo,
    report: impl Fn(&str, &LockInfo) -> Result<()>,
) -> Result<i32> {
    say!(
        "cairn: refusing to break lock {name}: its current lease has fencing token {} ({} by \
         {}), not {token}; the lease you named is gone. Nothing was broken; check with \
         `cairn lock show {name}` and pass the token it shows",
        current.fencing_token,
        state(current),
        output::name(&current.holder)
    );
    report("other-lease", current)?;
    Ok(exit::NOT_FOUND)
}

/// The lock's state as a word (`held`, `expired`, `released`, `broken`).
fn state(l: &LockInfo) -> &'static str {
    match l.state {
        LockState::Held => "held",
        LockState::Expired => "expired",
        LockState::Released => "released",
        LockState::Broken => "broken",
    }
}

/// One lock as labelled lines, stored strings escaped and names checked (see
/// [`output::text`]).
fn lock_text(l: &LockInfo) -> String {
    let mut out = output::Labelled::new(15);
    out.line("name:", output::name(&l.name));
    out.line("state:", state(l));
    out.line("holder:", output::name(&l.holder));
    out.line("fencing token:", l.fencing_token);
    out.line("version:", l.version);
    out.line("acquired at:", output::time(l.acquired_at));
    out.line("renewed at:", output::time(l.renewed_at));
    out.line("expires at:", output::time(l.expires_at));
    if let Some(by) = &l.broken_by {
        out.line("broken by:", output::name(by));
    }
    if let Some(at) = l.broken_at {
        out.line("broken at:", output::time(at));
    }
    out.finish()
}
