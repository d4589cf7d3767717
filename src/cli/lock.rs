//! `cairn lock run|ls|show|break`.

use std::process::ExitStatus;
use std::time::Duration;

use super::child::{self, Signals};
use super::exit;
use crate::lease::{Acquired, LockInfo, Locks};
use crate::{Cairn, Name, Result};

/// The grace `lock run` uses: the one given, else 10 s, or `ttl / 3` when that is shorter
/// (so that the default always fits in the ttl).
pub fn grace(ttl: Duration, given: Option<Duration>) -> Duration {
    given.unwrap_or_else(|| Duration::from_secs(10).min(ttl / 3))
}

/// `cairn lock run`: acquire, run the command under the lease, release. The command's
/// whole process group is gone before the lock is released or cairn exits 76 (see
/// [`child`]).
pub async fn run(
    cairn: &Cairn,
    locks: &Locks,
    name: &str,
    wait: Option<Duration>,
    grace: Duration,
    command: &[String],
    json: bool,
) -> Result<i32> {
    let name = Name::new(name)?;
    let mut signals = Signals::install()?;
    // The guard starts (an exec of this binary) while the lock is being acquired, not
    // between acquiring and running COMMAND. Until it is handed COMMAND's group it guards
    // nothing: when no COMMAND runs, it is simply sent away.
    let guard = tokio::task::spawn_blocking(child::Guard::spawn);
    let acquired = tokio::select! {
        r = locks.acquire(&name, wait) => Ok(r),
        sig = signals.recv() => Err(sig),
    };
    let guard = guard
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    let lease = match acquired {
        Ok(Ok(Acquired::Acquired(l))) => l,
        Ok(Ok(Acquired::Busy(b))) => {
            dismiss(guard).await;
            if json {
                println!("{}", serde_json::json!({ "lock": name, "busy": b }));
            }
            eprintln!(
                "cairn: lock {name} is held by {} (fencing token {}, expires {})",
                b.holder, b.fencing_token, b.expires_at
            );
            return Ok(exit::LOCK_BUSY);
        }
        Ok(Err(e)) => {
            dismiss(guard).await;
            return Err(e);
        }
        Err(sig) => {
            dismiss(guard).await;
            return Ok(128 + sig);
        }
    };
    let env = [
        ("CAIRN_LOCK", name.to_string()),
        ("CAIRN_NODE", cairn.node().to_string()),
        ("CAIRN_FENCING_TOKEN", lease.fencing_token().to_string()),
    ];
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
            eprintln!("cairn: cannot run {:?}: {e}", command[0]);
            lease.release().await?;
            return Ok(exit::CANNOT_RUN);
        }
    };
    enum End {
        Exited(std::io::Result<ExitStatus>),
        Lost(crate::lease::LossReason),
    }
    // The guard stops the group at the lease's give-up time should this process be paused
    // and unable to; pushed on every second while all is well.
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let end = loop {
        tokio::select! {
            s = child.wait() => break End::Exited(s),
            r = lease.lost() => break End::Lost(r),
            sig = signals.recv() => child.signal(sig),
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
            // The release first: the guard, dismissed now that the group is gone, is reaped
            // after it.
            let released = lease.release().await;
            child.reap_guard().await;
            match released {
                Ok(()) => {}
                // The command finished, but not under the lock: say so, and fail as a lost
                // lease does, whatever the command's own status.
                Err(e @ crate::Error::LeaseLost { .. }) => {
                    eprintln!(
                        "cairn: {e}; the command's work may have overlapped another holder's"
                    );
                    return Ok(exit::LEASE_LOST);
                }
                Err(e) => eprintln!("cairn: releasing lock {name} failed ({e}); it will expire"),
            }
            Ok(match status {
                Ok(s) => child::status_code(s),
                Err(e) => {
                    eprintln!("cairn: waiting for the command failed: {e}");
                    exit::FAILURE
                }
            })
        }
        End::Lost(reason) => {
            eprintln!("cairn: lost lock {name}: {reason}; stopping the command");
            child.stop(grace).await;
            child.reap_guard().await;
            Ok(exit::LEASE_LOST)
        }
    }
}

/// Sends away a guard that no COMMAND was given to.
async fn dismiss(guard: std::io::Result<child::Guard>) {
    if let Ok(g) = guard {
        g.dismiss().await;
    }
}

/// `cairn lock ls`.
pub async fn ls(locks: &Locks, json: bool) -> Result<i32> {
    let all = locks.list().await?;
    if json {
        println!("{}", serde_json::to_string(&all).unwrap_or_default());
    } else {
        println!(
            "{:<24} {:<9} {:<24} {:>6} {:>8}  EXPIRES",
            "NAME", "STATE", "HOLDER", "TOKEN", "VERSION"
        );
        for l in &all {
            print_row(l);
        }
    }
    Ok(exit::OK)
}

/// `cairn lock show NAME`.
pub async fn show(locks: &Locks, name: &str, json: bool) -> Result<i32> {
    match locks.show(&Name::new(name)?).await? {
        Some(l) => {
            print_one(&l, json);
            Ok(exit::OK)
        }
        None => {
            eprintln!("cairn: no lock named {name}");
            Ok(exit::NOT_FOUND)
        }
    }
}

/// `cairn lock break NAME`.
pub async fn break_lock(locks: &Locks, name: &str, json: bool) -> Result<i32> {
    match locks.break_lock(&Name::new(name)?).await? {
        Some(l) => {
            print_one(&l, json);
            Ok(exit::OK)
        }
        None => {
            eprintln!("cairn: no lock named {name}");
            Ok(exit::NOT_FOUND)
        }
    }
}

fn print_one(l: &LockInfo, json: bool) {
    if json {
        println!("{}", serde_json::to_string(l).unwrap_or_default());
    } else {
        println!("name:          {}", l.name);
        println!("state:         {:?}", l.state);
        println!("holder:        {}", l.holder);
        println!("fencing token: {}", l.fencing_token);
        println!("version:       {}", l.version);
        println!("acquired at:   {}", l.acquired_at);
        println!("renewed at:    {}", l.renewed_at);
        println!("expires at:    {}", l.expires_at);
        if let Some(by) = &l.broken_by {
            println!("broken by:     {by}");
        }
    }
}

fn print_row(l: &LockInfo) {
    println!(
        "{:<24} {:<9} {:<24} {:>6} {:>8}  {}",
        l.name,
        format!("{:?}", l.state).to_lowercase(),
        l.holder,
        l.fencing_token,
        l.version,
        l.expires_at
    );
}
