//! Running COMMAND for `lock run` and `turn run`: spawning it tied to cairn's life,
//! forwarding signals, and turning its exit status into ours.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use tokio::signal::unix::{signal, Signal, SignalKind};

use super::exit;

/// A running COMMAND.
#[derive(Debug)]
pub struct Child {
    inner: tokio::process::Child,
    pid: Option<libc::pid_t>,
}

/// Starts `command` with `env` added to cairn's environment. The kernel kills COMMAND if
/// cairn dies, so COMMAND never runs on with nobody renewing its lease or recording its
/// turn.
pub fn spawn(command: &[String], env: &[(&str, String)]) -> std::io::Result<Child> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| std::io::Error::other("no command given"))?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let inner = cmd.spawn()?;
    let pid = inner.id().map(|p| p as libc::pid_t);
    Ok(Child { inner, pid })
}

impl Child {
    /// COMMAND's process id, while it runs.
    pub fn pid(&self) -> Option<libc::pid_t> {
        self.pid
    }

    /// Sends `sig` to COMMAND.
    pub fn signal(&self, sig: libc::c_int) {
        send(self.pid, sig);
    }

    /// Waits for COMMAND to exit. Cancel-safe.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.inner.wait().await
    }
}

/// Sends `sig` to process `pid`, if there is one.
pub fn send(pid: Option<libc::pid_t>, sig: libc::c_int) {
    if let Some(pid) = pid {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(pid, sig) };
    }
}

/// SIGINT and SIGTERM, to forward to COMMAND or to stop on.
#[derive(Debug)]
pub struct Signals {
    int: Signal,
    term: Signal,
}

impl Signals {
    /// Installs the handlers.
    pub fn install() -> crate::Result<Self> {
        let err = |e: std::io::Error| {
            crate::Error::Config(format!("cannot install signal handlers: {e}"))
        };
        Ok(Self {
            int: signal(SignalKind::interrupt()).map_err(err)?,
            term: signal(SignalKind::terminate()).map_err(err)?,
        })
    }

    /// The next SIGINT or SIGTERM received. Cancel-safe.
    pub async fn recv(&mut self) -> libc::c_int {
        tokio::select! {
            _ = self.int.recv() => libc::SIGINT,
            _ = self.term.recv() => libc::SIGTERM,
        }
    }
}

/// A child's exit code, or 128 + the signal that killed it.
pub fn status_code(s: ExitStatus) -> i32 {
    s.code()
        .or_else(|| s.signal().map(|n| 128 + n))
        .unwrap_or(exit::FAILURE)
}
