//! Running COMMAND for `lock run` and `turn run`: in a process group of its own, with a
//! guard that kills the group if cairn dies, signals sent to the whole group, and its exit
//! status turned into ours.
//!
//! # The whole process tree
//!
//! COMMAND runs in its own process group, whose id is COMMAND's pid. Every signal cairn
//! sends (a forwarded SIGINT or SIGTERM, SIGTERM when the lease is lost, SIGKILL after the
//! grace period) goes to the group, so the processes a shell script starts get it too.
//! When COMMAND's own process exits, whatever it left running in the group gets SIGTERM,
//! then SIGKILL after the grace period, and [`Child::finish`] returns only once the group
//! is gone: the lock is released, or the turn's outcome recorded, after that.
//!
//! If cairn dies, even by SIGKILL, the group dies too. Before COMMAND starts, [`spawn`]
//! starts a guard: cairn's own binary again (`/proc/self/exe __guard`, so an upgrade of
//! the file meanwhile does not matter), in a process group of its own and ignoring the
//! signals a terminal or a shell sends a job. Its stdin is a pipe whose write end only
//! cairn holds (close-on-exec, so neither the guard nor COMMAND inherits it). COMMAND,
//! between fork and exec, writes its process group id into that pipe, so the guard knows
//! the group before COMMAND can start anything. When cairn is done with the group it
//! writes `done`. When the pipe reaches end of file (cairn exited or was killed, and the
//! kernel closed its descriptors) without `done`, the guard sends SIGKILL to the group and
//! exits. It has a group of its own so that killing cairn's whole group (`kill -9 %1` in a
//! shell) does not take the guard along. COMMAND's own process also gets
//! `PR_SET_PDEATHSIG`, a second line should the guard itself be killed.
//!
//! cairn makes itself a child subreaper (`PR_SET_CHILD_SUBREAPER`): a process of the group
//! whose parent exits is re-parented to cairn rather than to PID 1, and cairn reaps it. So
//! cairn knows when the group is gone even where PID 1 reaps nothing (many containers),
//! and leaves no zombies behind.
//!
//! # The terminal
//!
//! A background group that reads from its terminal is stopped (SIGTTIN). So when cairn's
//! stdin is a terminal whose foreground group is cairn's, a one-shot run
//! ([`Terminal::Share`]) hands the terminal to COMMAND's group, as a shell does for a job:
//! COMMAND can read from it, and Ctrl-C goes straight to the group. When COMMAND is stopped
//! by Ctrl-Z (or SIGTTIN, SIGTTOU), cairn takes the terminal back and stops itself, so the
//! shell sees its job stopped; continued in the foreground (`fg`), it hands the terminal
//! back and continues the group. Where nobody does job control, the kernel ignores the stop
//! and COMMAND simply continues. Once the group is gone, cairn takes the terminal back.
//! cairn ignores SIGTTOU meanwhile, so it can still print; COMMAND gets the disposition
//! cairn started with. `turn run --loop` keeps the terminal ([`Terminal::Keep`]): there,
//! Ctrl-C must reach cairn, to stop the loop.
//!
//! # A paused cairn
//!
//! A cairn that is stopped (SIGSTOP, a debugger, a frozen VM's scheduler) stops renewing,
//! but COMMAND would run on while another node takes the lock over. So `lock run` also
//! arms the guard with the lease's give-up time ([`Child::arm`], refreshed every second):
//! if cairn has not pushed it further by then, the guard itself sends the group SIGTERM,
//! and SIGKILL after the grace period, exactly what cairn would have done. A live cairn
//! always pushes the deadline on long before it comes (it is ttl − margin − grace after the
//! last renewal), so the guard only acts for a cairn that cannot. The guard counts that
//! time on `CLOCK_BOOTTIME`, as the lease counts its deadline: a host suspended past the
//! give-up time stops COMMAND as soon as it wakes.
//!
//! # Limits
//!
//! A process that leaves the group itself (`setsid`, `setpgid`, a daemon's double fork) no
//! longer gets cairn's signals and is not killed when cairn dies.

use std::fs::File;
use std::io::{BufRead, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::Instant;

use super::exit;
use super::output::say;

/// The hidden first argument that makes `cairn` run as a guard (see the module docs).
pub const GUARD_ARG: &str = "__guard";

/// What the guard is started from: cairn's own binary, even if its file was replaced.
const GUARD_EXE: &str = "/proc/self/exe";

/// How often [`Child::finish`] and [`Child::stop`] look whether the group is gone.
const POLL: Duration = Duration::from_millis(20);

/// How long to wait for the group to go after SIGKILL. Only a process stuck in the kernel
/// (an unresponsive NFS mount) takes longer; it can no longer run any code of its own.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Whether COMMAND may have cairn's terminal (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    /// When cairn is in the terminal's foreground, hand the terminal to COMMAND's group.
    Share,
    /// Keep it: Ctrl-C reaches cairn, which forwards it to the group.
    Keep,
}

/// A running COMMAND and its process group.
#[derive(Debug)]
pub struct Child {
    leader: tokio::process::Child,
    group: Group,
    /// COMMAND's group was handed the terminal on stdin.
    tty: bool,
    /// The leader's status, once reaped.
    status: Option<ExitStatus>,
    /// The leader was reaped (with or without a status).
    reaped: bool,
    guard: Guard,
    sigchld: Signal,
}

/// COMMAND's process group, to signal from another task (`turn run --loop`'s signal
/// watcher) while the [`Child`] waits.
#[derive(Debug, Clone)]
pub struct Group {
    /// The group's id: COMMAND's pid.
    pgid: libc::pid_t,
    /// The group has been sent SIGTERM.
    terminated: Arc<AtomicBool>,
    /// The group is known to be gone (and its id free for reuse): no more signals.
    gone: Arc<AtomicBool>,
}

impl Group {
    /// Sends `sig` to every process of the group, then SIGCONT unless `sig` is SIGKILL, so
    /// that a stopped process acts on it (as systemd does). Nothing once the group is gone.
    pub fn signal(&self, sig: libc::c_int) {
        if self.gone.load(Ordering::Acquire) {
            return;
        }
        signal_group(self.pgid, sig);
        if sig == libc::SIGTERM {
            self.terminated.store(true, Ordering::Release);
        }
    }
}

/// Starts `command` with `env` added to cairn's environment, in a process group of its
/// own, watched by a guard that kills the group if cairn dies (see the module docs).
/// Fails, and starts nothing, if the guard cannot be started.
pub fn spawn(
    command: &[String],
    env: &[(&str, String)],
    terminal: Terminal,
) -> std::io::Result<Child> {
    spawn_armed(command, env, terminal, None)
}

/// [`spawn`], with the guard armed ([`Child::arm`]) with `deadline` (`within`, `grace`)
/// before COMMAND starts, so that no moment passes in which a paused cairn would leave
/// COMMAND running unwatched.
pub fn spawn_armed(
    command: &[String],
    env: &[(&str, String)],
    terminal: Terminal,
    deadline: Option<(Duration, Duration)>,
) -> std::io::Result<Child> {
    spawn_guarded(Guard::spawn()?, command, env, terminal, deadline)
}

/// [`spawn_armed`] with a guard started earlier ([`Guard::spawn`]): `lock run` starts it
/// while the lock is being acquired, so that its start (an exec of cairn's binary) costs
/// no time between acquiring and running COMMAND.
pub fn spawn_guarded(
    mut guard: Guard,
    command: &[String],
    env: &[(&str, String)],
    terminal: Terminal,
    deadline: Option<(Duration, Duration)>,
) -> std::io::Result<Child> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| std::io::Error::other("no command given"))?;
    // SAFETY: only changes which process adopts cairn's orphaned descendants.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let sigchld = signal(SignalKind::child())?;
    if let Some((within, grace)) = deadline {
        guard.arm(within, grace);
    }
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let guard_fd = guard.pipe.as_ref().map_or(-1, |p| p.as_raw_fd());
    let cairn_pid = std::process::id() as libc::pid_t;
    let tty = terminal == Terminal::Share && in_foreground();
    if tty {
        ignore_ttou();
    }
    let ttou = TTOU_BEFORE.get().copied();
    // SAFETY: `enter_group` makes only async-signal-safe calls and does not allocate.
    unsafe {
        cmd.pre_exec(move || enter_group(guard_fd, cairn_pid, tty, ttou));
    }
    let leader = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            // std has reaped the child that failed to exec; its group is gone.
            guard.disarm();
            if tty {
                take_terminal_from(None);
            }
            return Err(e);
        }
    };
    let pgid = leader
        .id()
        .map(|p| p as libc::pid_t)
        .ok_or_else(|| std::io::Error::other("COMMAND has no pid"))?;
    Ok(Child {
        leader,
        group: Group {
            pgid,
            terminated: Arc::default(),
            gone: Arc::default(),
        },
        tty,
        status: None,
        reaped: false,
        guard,
        sigchld,
    })
}

/// Runs in COMMAND's process between fork and exec: its own group, the group id to the
/// guard, death with cairn, the terminal if `tty`, and SIGTTOU's disposition from before
/// cairn changed it (`ttou`). Only async-signal-safe calls, no allocation.
fn enter_group(
    guard_fd: RawFd,
    cairn_pid: libc::pid_t,
    tty: bool,
    ttou: Option<libc::sighandler_t>,
) -> std::io::Result<()> {
    // SAFETY: plain syscalls on this process and on the inherited pipe.
    unsafe {
        if libc::setpgid(0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut buf = [0u8; 24];
        let line = pid_line(libc::getpid(), &mut buf);
        // Were the guard gone, the write fails with EPIPE instead of killing us.
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        let written = libc::write(guard_fd, line.as_ptr().cast(), line.len());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        if written != line.len() as isize {
            return Err(std::io::Error::last_os_error());
        }
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // cairn died before the prctl: the death signal will never come.
        if libc::getppid() != cairn_pid {
            return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
        }
        if tty {
            // Before exec, so COMMAND never reads from a terminal it does not have. Should
            // it fail, COMMAND runs without the terminal.
            libc::signal(libc::SIGTTOU, libc::SIG_IGN);
            libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpid());
        }
        if let Some(h) = ttou {
            libc::signal(libc::SIGTTOU, h);
        }
    }
    Ok(())
}

/// SIGTTOU's disposition before cairn first ignored it.
static TTOU_BEFORE: OnceLock<libc::sighandler_t> = OnceLock::new();

/// Ignores SIGTTOU from now on, so that cairn, once its terminal belongs to COMMAND's
/// group, can still write to it and take it back.
fn ignore_ttou() {
    // SAFETY: sets a disposition; cairn has no SIGTTOU handler to lose.
    TTOU_BEFORE.get_or_init(|| unsafe { libc::signal(libc::SIGTTOU, libc::SIG_IGN) });
}

/// Whether stdin is a terminal whose foreground process group is cairn's.
fn in_foreground() -> bool {
    // SAFETY: queries only.
    unsafe {
        libc::isatty(libc::STDIN_FILENO) == 1
            && libc::tcgetpgrp(libc::STDIN_FILENO) == libc::getpgrp()
    }
}

/// Makes cairn's group the foreground group of the terminal on stdin again, if group
/// `from` has it (any group, for `None`): never takes it from a shell that took it first.
fn take_terminal_from(from: Option<libc::pid_t>) {
    // SAFETY: terminal ioctls on stdin; SIGTTOU is ignored (see `ignore_ttou`).
    unsafe {
        let fg = libc::tcgetpgrp(libc::STDIN_FILENO);
        if fg > 0 && from.is_none_or(|g| g == fg) {
            libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpgrp());
        }
    }
}

/// `pid` in decimal followed by a newline, in `buf`, without allocating.
fn pid_line(pid: libc::pid_t, buf: &mut [u8; 24]) -> &[u8] {
    let mut n = pid.unsigned_abs();
    let mut i = buf.len() - 1;
    buf[i] = b'\n';
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

impl Child {
    /// COMMAND's process group.
    pub fn group(&self) -> &Group {
        &self.group
    }

    /// COMMAND's own exit status, once it has been reaped.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// Sends `sig` to COMMAND's whole group (see [`Group::signal`]).
    pub fn signal(&self, sig: libc::c_int) {
        self.group.signal(sig);
    }

    /// Waits for COMMAND's own process to exit, reaping meanwhile members of its group that
    /// were re-parented to cairn. Other members may still run: call [`Child::finish`] next.
    /// Cancel-safe.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        loop {
            tokio::select! {
                s = self.leader.wait() => {
                    self.reaped = true;
                    let s = s?;
                    self.status = Some(s);
                    return Ok(s);
                }
                Some(()) = self.sigchld.recv() => {
                    reap_orphans(self.group.pgid, Some(self.group.pgid));
                    self.follow_stop();
                }
            }
        }
    }

    /// With the terminal handed to COMMAND's group: if COMMAND was stopped by its terminal
    /// (Ctrl-Z, SIGTTIN, SIGTTOU), takes the terminal back and stops cairn too, so that the
    /// shell sees its job stopped; once continued, hands the terminal back if cairn is in
    /// the foreground again (`fg`) and continues the group.
    fn follow_stop(&mut self) {
        if !self.tty {
            return;
        }
        let pgid = self.group.pgid;
        // SAFETY: waitid fills `info`; WSTOPPED alone consumes only a stop report, which
        // tokio (waiting for exits) never asks for.
        let signal = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let flags = libc::WSTOPPED | libc::WNOHANG;
            if libc::waitid(libc::P_PID, pgid as libc::id_t, &mut info, flags) != 0
                || info.si_pid() != pgid
                || info.si_code != libc::CLD_STOPPED
            {
                return;
            }
            info.si_status()
        };
        if ![libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU].contains(&signal) {
            return; // Stopped on purpose (SIGSTOP): left stopped.
        }
        take_terminal_from(Some(pgid));
        // SAFETY: stops this thread's process until SIGCONT; the kernel discards the signal
        // when no shell could continue cairn (an orphaned process group).
        unsafe {
            libc::raise(libc::SIGTSTP);
            if in_foreground() {
                libc::tcsetpgrp(libc::STDIN_FILENO, pgid);
            }
        }
        signal_group(pgid, libc::SIGCONT);
    }

    /// Arms the guard: unless called again within `within`, the guard stops the group
    /// itself (SIGTERM, SIGKILL after `grace`). For a cairn that may be paused (see the
    /// module docs).
    pub fn arm(&mut self, within: Duration, grace: Duration) {
        self.guard.arm(within, grace);
    }

    /// Withdraws the guard's deadline (cairn is stopping the group itself, or the lease is
    /// no longer in play). Dying still makes the guard kill the group.
    pub fn unarm(&mut self) {
        self.guard.unarm();
    }

    /// Once COMMAND's own process has exited: stops what it left running in its group, as
    /// [`Child::stop`] does, and returns once the group is gone.
    pub async fn finish(&mut self, grace: Duration) {
        if self.wait_gone(Duration::ZERO).await {
            return;
        }
        if !self.group.terminated.load(Ordering::Acquire) {
            say!(
                "cairn: COMMAND exited and left processes running in its group; sending them \
             SIGTERM (SIGKILL after {grace:?})"
            );
        }
        self.stop(grace).await;
    }

    /// Stops COMMAND's whole group: SIGTERM (with SIGCONT, so a stopped process acts on
    /// it), SIGKILL after `grace`, and returns once the group is gone (or, should a process
    /// be stuck in the kernel, a few seconds after SIGKILL). Nothing is sent to a group that
    /// is already gone, and no second SIGTERM to one that had one (a forwarded SIGTERM): it
    /// could interrupt the cleanup the first one started.
    pub async fn stop(&mut self, grace: Duration) {
        if self.wait_gone(Duration::ZERO).await {
            return;
        }
        if !self.group.terminated.load(Ordering::Acquire) {
            self.signal(libc::SIGTERM);
        }
        if self.wait_gone(grace).await {
            return;
        }
        self.signal(libc::SIGKILL);
        if !self.wait_gone(KILL_WAIT).await {
            say!(
                "cairn: COMMAND's process group {} is still there {KILL_WAIT:?} after SIGKILL",
                self.group.pgid
            );
        }
    }

    /// Waits (briefly) for the guard, dismissed once the group is gone, to exit, so that
    /// it is reaped before cairn exits rather than left to a PID 1 that may not reap. Call
    /// it after [`Child::finish`] or [`Child::stop`], once what must follow the group's end
    /// without delay (releasing the lock) is done.
    pub async fn reap_guard(&mut self) {
        self.guard.reap().await;
    }

    /// Takes the terminal back from COMMAND's group, if it was handed one.
    fn give_back_terminal(&mut self) {
        if std::mem::take(&mut self.tty) {
            take_terminal_from(Some(self.group.pgid));
        }
    }

    /// Polls, for up to `within`, until the leader is reaped and no process of the group is
    /// left; then dismisses the guard. Returns whether the group is gone.
    async fn wait_gone(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if !self.reaped {
                match self.leader.try_wait() {
                    Ok(None) => {}
                    Ok(Some(s)) => {
                        self.reaped = true;
                        self.status = Some(s);
                    }
                    Err(_) => self.reaped = true,
                }
            }
            let pgid = self.group.pgid;
            reap_orphans(pgid, (!self.reaped).then_some(pgid));
            if self.reaped && !group_exists(pgid) {
                self.group.gone.store(true, Ordering::Release);
                self.guard.disarm();
                self.give_back_terminal();
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Child {
    /// Takes the terminal back; dropping the guard's pipe then kills the group unless it
    /// is known to be gone.
    fn drop(&mut self) {
        self.give_back_terminal();
    }
}

/// Sends `sig` to process group `pgid`, then SIGCONT unless `sig` is SIGKILL or SIGCONT.
fn signal_group(pgid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill(2) on a process group cairn started.
    unsafe {
        libc::kill(-pgid, sig);
        if sig != libc::SIGKILL && sig != libc::SIGCONT {
            libc::kill(-pgid, libc::SIGCONT);
        }
    }
}

/// Whether any process, a zombie included, is left in group `pgid`.
fn group_exists(pgid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let r = unsafe { libc::kill(-pgid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Reaps cairn's children in group `pgid` that have exited, except `leader` (tokio's to
/// reap): the group's processes that were re-parented to cairn, its subreaper.
fn reap_orphans(pgid: libc::pid_t, leader: Option<libc::pid_t>) {
    loop {
        // SAFETY: siginfo_t is plain data; waitid fills it, and WNOWAIT leaves the child
        // waitable, so the leader's status stays tokio's.
        let pid = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
            if libc::waitid(libc::P_PGID, pgid as libc::id_t, &mut info, flags) != 0 {
                return;
            }
            info.si_pid()
        };
        if pid == 0 || Some(pid) == leader {
            return;
        }
        // SAFETY: reaps one exited child that nothing else waits for.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
    }
}

/// The guard process and the write end of its stdin (see the module docs). Until a
/// COMMAND's group is handed to it, it guards nothing: dropped, or [dismissed]
/// (Guard::dismiss), it exits without killing anything.
#[derive(Debug)]
pub struct Guard {
    /// Closed once the guard is disarmed; dropping it otherwise makes the guard kill.
    pipe: Option<File>,
    /// Reaped by [`Guard::reap`]; if dropped first, tokio reaps it in the background.
    process: tokio::process::Child,
}

impl Guard {
    /// Starts a guard (`cairn __guard`), in a process group of its own.
    pub fn spawn() -> std::io::Result<Guard> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 fills `fds` with two new descriptors, both close-on-exec.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the descriptors are new and owned by nothing else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut cmd = tokio::process::Command::new(GUARD_EXE);
        cmd.arg0("cairn")
            .arg(GUARD_ARG)
            .stdin(Stdio::from(read))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // SAFETY: setpgid and signal are async-signal-safe. Ignoring the signals here,
        // before exec, leaves no moment at which they could kill the guard.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setpgid(0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                for sig in [
                    libc::SIGINT,
                    libc::SIGTERM,
                    libc::SIGHUP,
                    libc::SIGQUIT,
                    libc::SIGPIPE,
                    libc::SIGTTIN,
                    libc::SIGTTOU,
                    libc::SIGTSTP,
                ] {
                    libc::signal(sig, libc::SIG_IGN);
                }
                Ok(())
            });
        }
        let process = cmd
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start the guard: {e}")))?;
        Ok(Guard {
            pipe: Some(File::from(write)),
            process,
        })
    }

    /// Tells the guard to stop the group (SIGTERM, then SIGKILL after `grace`) unless it
    /// hears from cairn again within `within`.
    fn arm(&mut self, within: Duration, grace: Duration) {
        if let Some(p) = self.pipe.as_mut() {
            // Rounded up: the guard must never act before the lease's give-up time, or
            // COMMAND could end (143) while the lease still counts as held.
            let line = format!("deadline {} {}\n", ceil_millis(within), grace.as_millis());
            let _ = p.write_all(line.as_bytes());
        }
    }

    /// Withdraws the deadline: cairn itself is stopping the group now.
    fn unarm(&mut self) {
        if let Some(p) = self.pipe.as_mut() {
            let _ = p.write_all(b"deadline-off\n");
        }
    }

    /// Tells the guard the group is gone and closes the pipe: it exits without killing.
    fn disarm(&mut self) {
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(b"done\n");
        }
    }

    /// Waits (briefly) for a disarmed guard to exit, so that it is reaped before cairn
    /// exits rather than left to a PID 1 that may not reap.
    async fn reap(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.process.wait()).await;
    }

    /// Sends away a guard that was never given a group: closing its pipe ends it (it knows
    /// no group, so it kills nothing), and it is reaped.
    pub async fn dismiss(mut self) {
        self.pipe = None;
        self.reap().await;
    }
}

/// If this process was started as cairn's guard (`cairn __guard`), runs the guard and
/// exits; otherwise returns. Call first thing in `main`, before any thread starts.
pub fn guard_if_asked() {
    let mut args = std::env::args_os().skip(1);
    if args.next().is_some_and(|a| a == GUARD_ARG) && args.next().is_none() {
        std::process::exit(guard());
    }
}

/// `d` in whole milliseconds, rounded up (a deadline kept in milliseconds is never early).
fn ceil_millis(d: Duration) -> u128 {
    d.as_nanos().div_ceil(1_000_000)
}

/// Now on `CLOCK_BOOTTIME`. Unlike `CLOCK_MONOTONIC` (std's `Instant`), it counts the time
/// the system spent suspended (or its VM paused), as the lease's deadline does
/// ([`cairn::clock`]): a give-up time that passed while the host slept has passed for the
/// guard too when it wakes.
fn boottime() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        // Not on this kernel (before 2.6.39): the monotonic clock, as before.
        // SAFETY: as above.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// Waits until stdin is readable or `deadline` (on [`boottime`]) passes; `true` when
/// readable (or closed).
fn readable_before(deadline: Option<Duration>) -> bool {
    readable_before_on(0, deadline, &boottime)
}

/// [`readable_before`] on `fd`, with `now` for the clock. A poll's timeout runs on the
/// monotonic clock, which stands still while the system is suspended: so the wait is cut
/// into slices of at most [`cairn::clock::SUSPEND_CHECK`], and `now` read after each.
fn readable_before_on(fd: RawFd, deadline: Option<Duration>, now: &dyn Fn() -> Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        let timeout = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_sub(now());
                if left.is_zero() {
                    return false;
                }
                // Rounded up, so that poll never wakes before the deadline.
                let slice = left.min(cairn::clock::SUSPEND_CHECK);
                i32::try_from(ceil_millis(slice)).unwrap_or(i32::MAX)
            }
        };
        // SAFETY: one valid pollfd on a descriptor of ours.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout) };
        if r > 0 {
            return true;
        }
        if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return true; // let the read report the error
        }
    }
}

/// The guard: reads COMMAND's process group id, `deadline MS GRACE_MS` lines, then
/// `done`, from stdin. At end of file without `done`, cairn has died: SIGKILL to the group.
/// When a deadline passes with no newer line, cairn is alive but not acting (paused): the
/// guard stops the group itself, SIGTERM and SIGKILL after the grace. Its signal
/// dispositions were set before exec (see [`Guard::spawn`]).
fn guard() -> i32 {
    // SAFETY: names this thread "cairn-guard" (for ps and top instead of "exe").
    unsafe { libc::prctl(libc::PR_SET_NAME, c"cairn-guard".as_ptr()) };
    let mut pgid: Option<libc::pid_t> = None;
    let mut done = false;
    // On `boottime`: time the system spends suspended counts.
    let mut deadline: Option<(Duration, Duration)> = None;
    let mut terminated_at: Option<(Duration, Duration)> = None;
    let mut stdin = std::io::stdin().lock();
    let mut line = Vec::new();
    loop {
        // A deadline passed: SIGTERM now, SIGKILL once the grace has run out.
        let wake = match (terminated_at, deadline) {
            (Some((t, grace)), _) => Some(t.saturating_add(grace)),
            (None, Some((d, _))) => Some(d),
            (None, None) => None,
        };
        if pgid.is_some() && !readable_before(wake) {
            let p = pgid.unwrap_or_default();
            match (terminated_at, deadline) {
                (None, Some((_, grace))) => {
                    say!("cairn: the lease was not renewed by its give-up time (the store unreachable, or cairn paused); stopping COMMAND's process group {p}");
                    signal_group(p, libc::SIGTERM);
                    terminated_at = Some((boottime(), grace));
                }
                _ => {
                    signal_group(p, libc::SIGKILL);
                    deadline = None;
                    terminated_at = None;
                }
            }
            continue;
        }
        line.clear();
        match stdin.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => match line.strip_suffix(b"\n") {
                Some(b"done") => done = true,
                Some(b"deadline-off") => deadline = None,
                Some(l) if l.starts_with(b"deadline ") => {
                    let mut f = std::str::from_utf8(&l[9..])
                        .unwrap_or("")
                        .split(' ')
                        .map(|n| n.parse::<u64>().ok());
                    if let (Some(Some(within)), Some(Some(grace))) = (f.next(), f.next()) {
                        deadline = Some((
                            boottime().saturating_add(Duration::from_millis(within)),
                            Duration::from_millis(grace),
                        ));
                    }
                }
                Some(n) => {
                    if let Some(p) = std::str::from_utf8(n)
                        .ok()
                        .and_then(|s| s.parse::<libc::pid_t>().ok())
                        .filter(|p| *p > 1)
                    {
                        pgid = Some(p);
                    }
                }
                // A partial line: the writer died mid-line (writes are atomic, so never).
                None => break,
            },
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if let (false, Some(p)) = (done, pgid) {
        signal_group(p, libc::SIGKILL);
        say!("cairn: the cairn running COMMAND died; killed COMMAND's process group {p}");
    }
    exit::OK
}

/// SIGINT, SIGTERM and SIGHUP, to forward to COMMAND or to stop on. SIGHUP (the terminal
/// or ssh session closed) ends cairn as SIGTERM does: a held lock is released, and COMMAND's
/// group gets SIGTERM ([`forwarded`]), never a death that strands the lock.
#[derive(Debug)]
pub struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Signals {
    /// Installs the handlers.
    pub fn install() -> cairn::Result<Self> {
        let err = |e: std::io::Error| {
            cairn::Error::Config(format!("cannot install signal handlers: {e}"))
        };
        Ok(Self {
            int: signal(SignalKind::interrupt()).map_err(err)?,
            term: signal(SignalKind::terminate()).map_err(err)?,
            hup: signal(SignalKind::hangup()).map_err(err)?,
        })
    }

    /// The next SIGINT, SIGTERM or SIGHUP received. Cancel-safe.
    pub async fn recv(&mut self) -> libc::c_int {
        tokio::select! {
            _ = self.int.recv() => libc::SIGINT,
            _ = self.term.recv() => libc::SIGTERM,
            _ = self.hup.recv() => libc::SIGHUP,
        }
    }
}

/// The signal COMMAND's group gets for `sig` received by cairn: SIGTERM for SIGHUP (many
/// programs take SIGHUP as "reload", and cairn is ending), `sig` itself otherwise.
pub fn forwarded(sig: libc::c_int) -> libc::c_int {
    if sig == libc::SIGHUP {
        libc::SIGTERM
    } else {
        sig
    }
}

/// A child's exit code, or 128 + the signal that killed it.
pub fn status_code(s: ExitStatus) -> i32 {
    s.code()
        .or_else(|| s.signal().map(|n| 128 + n))
        .unwrap_or(exit::FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_line_is_the_decimal_pid_and_a_newline() {
        let mut buf = [0u8; 24];
        assert_eq!(pid_line(1, &mut buf), b"1\n");
        assert_eq!(pid_line(4_194_304, &mut buf), b"4194304\n");
        assert_eq!(pid_line(i32::MAX, &mut buf), b"2147483647\n");
    }

    /// The guard's clock jumps a minute ahead while it waits (the host was suspended): its
    /// wait ends at the next slice, not a minute of monotonic time later.
    #[test]
    fn the_guard_counts_time_spent_suspended() {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 fills `fds` with two new descriptors.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: new descriptors owned by nothing else; the writer stays open, so the
        // reader is never readable.
        let (read, _write) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let start = std::time::Instant::now();
        let reads = std::cell::Cell::new(0u32);
        // The first reading is at the start; every later one a minute on (and what really
        // passed), as after a suspension of a minute.
        let now = || {
            reads.set(reads.get() + 1);
            let slept = if reads.get() > 1 { 60 } else { 0 };
            Duration::from_secs(slept) + start.elapsed()
        };
        let deadline = Some(Duration::from_secs(30));
        assert!(!readable_before_on(read.as_raw_fd(), deadline, &now));
        assert_eq!(reads.get(), 2, "woke once, to read the clock again");
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the wait ran on the monotonic clock: {:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_deadline_in_milliseconds_is_rounded_up_never_early() {
        assert_eq!(ceil_millis(Duration::ZERO), 0);
        assert_eq!(ceil_millis(Duration::from_nanos(1)), 1);
        assert_eq!(ceil_millis(Duration::from_micros(999)), 1);
        assert_eq!(ceil_millis(Duration::from_millis(5)), 5);
        assert_eq!(ceil_millis(Duration::from_micros(5_001)), 6);
        assert_eq!(ceil_millis(Duration::from_micros(11_999_400)), 12_000);
        assert_eq!(ceil_millis(Duration::from_nanos(1_000_500)), 2);
    }
}
