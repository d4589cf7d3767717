//! The whole process tree: a command run by `lock run` or `turn run` lives in its own
//! process group; cairn's signals reach the whole group, the group is gone before the lock
//! is released or cairn exits, and the group dies when cairn dies, even by SIGKILL.
//!
//! Real processes on a `file://` store. Every wait is a poll with a generous deadline. A
//! failing test kills what it started, so that no `sleep 1000` holds the output pipe open.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use common::cli::Pty;

/// Generous: CI runs this on two busy cores.
const DEADLINE: Duration = Duration::from_secs(30);

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `cairn --store file://… --node NODE ARGS…`.
    fn cairn(&self, node: &str, args: &[&str]) -> Command {
        let mut c = common::cli::cairn(self.dir.path());
        c.env("CAIRN_BIN", env!("CARGO_BIN_EXE_cairn"))
            .env("STORE", self.store())
            .args(["--store", &self.store(), "--node", node])
            .args(args);
        c
    }

    fn store(&self) -> String {
        format!("file://{}", self.path("store").display())
    }

    /// Writes a shell script into the temp dir and returns its path.
    fn script(&self, name: &str, body: &str) -> String {
        let p = self.path(name);
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    }

    fn lock_json(&self, name: &str) -> serde_json::Value {
        let out = self
            .cairn("operator", &["--json", "lock", "show", name])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// A grandchild for the tests: records its pid in `$1` (atomically, once its trap is set),
/// and on SIGTERM writes `$1.term` and exits.
const GRANDCHILD: &str = r#"trap 'echo TERM > "$1.term"; exit 0' TERM
echo $$ > "$1.tmp" && mv "$1.tmp" "$1"
while :; do sleep 1; done
"#;

/// A process seen once, identified by pid and start time so pid reuse cannot fool us.
#[derive(Debug)]
struct Proc {
    pid: i32,
    start: String,
}

impl Proc {
    /// The process whose pid is in `pid_file`, once the file is there.
    fn from_pid_file(pid_file: &Path, cairn: &mut Cairn) -> Proc {
        let since = Instant::now();
        loop {
            if let Some(pid) = std::fs::read_to_string(pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                let (_, start) = stat(pid).expect("the process is running");
                return Proc { pid, start };
            }
            if let Some(status) = cairn.0.try_wait().unwrap() {
                panic!(
                    "cairn exited ({status}) before {} appeared",
                    pid_file.display()
                );
            }
            assert!(
                since.elapsed() < DEADLINE,
                "{} never appeared",
                pid_file.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Gone: no such process, a zombie (dead, waiting for a parent that does not reap), or
    /// another process with the same pid.
    fn is_gone(&self) -> bool {
        match stat(self.pid) {
            None => true,
            Some((state, start)) => state == "Z" || state == "X" || start != self.start,
        }
    }

    fn wait_gone(&self, within: Duration) {
        let since = Instant::now();
        while !self.is_gone() {
            assert!(
                since.elapsed() < within,
                "process {} still runs {within:?} later",
                self.pid
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.is_gone() {
            kill(self.pid, libc::SIGKILL);
        }
    }
}

/// A cairn process, killed if the test ends while it runs.
struct Cairn(Child);

impl Cairn {
    fn spawn(mut c: Command) -> Cairn {
        Cairn(c.spawn().unwrap())
    }

    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let since = Instant::now();
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return s;
            }
            assert!(
                since.elapsed() < DEADLINE * 2,
                "cairn did not exit within {:?}",
                DEADLINE * 2
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Cairn {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A process's state letter and start time, from /proc/PID/stat.
fn stat(pid: i32) -> Option<(String, String)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After "pid (comm) ": state is field 3, starttime field 22.
    let rest = &s[s.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.first()?.to_string(), fields.get(19)?.to_string()))
}

fn kill(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) on a process this test started.
    unsafe { libc::kill(pid, sig) };
}

/// Starts cairn with `args` and a COMMAND that starts `sleep 1000` in the background and
/// waits; SIGKILLs cairn once the sleep runs; the sleep must then die.
fn sigkill_of_cairn_kills_the_grandchild(args: &[&str]) {
    let env = Env::new();
    let pid_file = env.path("pid");
    let job = format!(
        "sleep 1000 & echo $! > {}.tmp && mv {0}.tmp {0}; wait",
        pid_file.display()
    );
    let mut all = args.to_vec();
    all.extend_from_slice(&["--", "sh", "-c", &job]);
    let mut cairn = Cairn::spawn(env.cairn("holder", &all));
    let grandchild = Proc::from_pid_file(&pid_file, &mut cairn);
    kill(cairn.pid(), libc::SIGKILL);
    assert_eq!(cairn.wait_exit().code(), None, "cairn died of SIGKILL");
    grandchild.wait_gone(DEADLINE);
}

#[test]
fn sigkill_of_lock_run_kills_the_commands_grandchild() {
    sigkill_of_cairn_kills_the_grandchild(&["lock", "run", "L"]);
}

#[test]
fn sigkill_of_turn_run_kills_the_commands_grandchild() {
    sigkill_of_cairn_kills_the_grandchild(&["turn", "run", "T", "--every", "10s"]);
}

#[test]
fn sigkill_of_turn_run_loop_kills_the_commands_grandchild() {
    sigkill_of_cairn_kills_the_grandchild(&["turn", "run", "T", "--every", "10s", "--loop"]);
}

#[test]
fn sigkill_of_cairns_whole_process_group_still_kills_the_commands_group() {
    // As `kill -9 %1` in a shell does: the guard has a group of its own, so it survives.
    let env = Env::new();
    let pid_file = env.path("pid");
    let job = format!(
        "sleep 1000 & echo $! > {}.tmp && mv {0}.tmp {0}; wait",
        pid_file.display()
    );
    let mut command = env.cairn("holder", &["lock", "run", "L", "--", "sh", "-c", &job]);
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut cairn = Cairn::spawn(command);
    let grandchild = Proc::from_pid_file(&pid_file, &mut cairn);
    kill(-cairn.pid(), libc::SIGKILL);
    assert_eq!(cairn.wait_exit().code(), None, "cairn died of SIGKILL");
    grandchild.wait_gone(DEADLINE);
}

#[test]
fn sigterm_to_lock_run_reaches_the_whole_group_and_exits_143() {
    let env = Env::new();
    let pid_file = env.path("pid");
    let grandchild = env.script("grandchild.sh", GRANDCHILD);
    let job = format!("sh {grandchild} {} & wait", pid_file.display());
    let mut cairn =
        Cairn::spawn(env.cairn("holder", &["lock", "run", "L", "--", "sh", "-c", &job]));
    let g = Proc::from_pid_file(&pid_file, &mut cairn);
    kill(cairn.pid(), libc::SIGTERM);
    // The shell in `wait` dies of the SIGTERM: 128 + 15.
    assert_eq!(cairn.wait_exit().code(), Some(143));
    assert!(
        env.path("pid.term").exists(),
        "the grandchild never got SIGTERM"
    );
    assert!(g.is_gone(), "the grandchild outlived cairn");
    assert_eq!(env.lock_json("L")["state"], "released");
}

#[test]
fn sigterm_to_turn_run_loop_reaches_the_whole_group_and_records_the_outcome() {
    let env = Env::new();
    let pid_file = env.path("pid");
    let grandchild = env.script("grandchild.sh", GRANDCHILD);
    let job = format!("sh {grandchild} {} & wait", pid_file.display());
    let args = [
        "turn", "run", "T", "--every", "1h", "--loop", "--", "sh", "-c", &job,
    ];
    let mut cairn = Cairn::spawn(env.cairn("looper", &args));
    let g = Proc::from_pid_file(&pid_file, &mut cairn);
    kill(cairn.pid(), libc::SIGTERM);
    assert_eq!(cairn.wait_exit().code(), Some(0));
    assert!(
        env.path("pid.term").exists(),
        "the grandchild never got SIGTERM"
    );
    assert!(g.is_gone(), "the grandchild outlived cairn");
    let out = env
        .cairn("operator", &["--json", "turn", "show", "T"])
        .output()
        .unwrap();
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The first turn's number is a floor drawn from time (`clock::floor`).
    assert!(t["number"].as_u64().unwrap() > 1_000_000, "{t}");
    assert_eq!(t["outcome"]["status"], "failure", "{t}");
}

#[test]
fn lease_loss_kills_a_grandchild_that_ignores_sigterm_before_exiting_76() {
    let env = Env::new();
    let pid_file = env.path("pid");
    // The ignored SIGTERM is inherited by the sleep; only SIGKILL ends either.
    let job = format!(
        "trap '' TERM; sleep 1000 & echo $! > {}.tmp && mv {0}.tmp {0}; wait",
        pid_file.display()
    );
    let args = [
        "lock", "run", "L", "--ttl", "3s", "--grace", "1s", "--", "sh", "-c", &job,
    ];
    let mut cairn = Cairn::spawn(env.cairn("holder", &args));
    let g = Proc::from_pid_file(&pid_file, &mut cairn);
    let token = env.lock_json("L")["fencing_token"].to_string();
    let out = env
        .cairn(
            "operator",
            &["lock", "break", "L", "--token", &token, "--force"],
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // The holder learns at its next renewal (every ttl/3).
    assert_eq!(cairn.wait_exit().code(), Some(76));
    assert!(g.is_gone(), "the grandchild outlived the lease");
    assert_eq!(env.lock_json("L")["state"], "broken");
}

#[test]
fn what_the_command_leaves_running_is_stopped_while_the_lock_is_still_held() {
    let env = Env::new();
    let pid_file = env.path("pid");
    // On SIGTERM the leftover records the lock's state as it is at that moment.
    let leftover = env.script(
        "leftover.sh",
        r#"trap '"$CAIRN_BIN" --store "$STORE" --json lock show L > "$1.state"; exit 0' TERM
echo $$ > "$1.tmp" && mv "$1.tmp" "$1"
while :; do sleep 1; done
"#,
    );
    // COMMAND starts the leftover, waits until its trap is set, and exits 0.
    let job = format!(
        "sh {leftover} {p} & while [ ! -e {p} ]; do sleep 0.05; done",
        p = pid_file.display()
    );
    let args = [
        "lock", "run", "L", "--ttl", "60s", "--grace", "30s", "--", "sh", "-c", &job,
    ];
    let mut cairn = Cairn::spawn(env.cairn("holder", &args));
    let g = Proc::from_pid_file(&pid_file, &mut cairn);
    assert_eq!(cairn.wait_exit().code(), Some(0));
    assert!(g.is_gone(), "the leftover outlived cairn");
    let state = std::fs::read_to_string(env.path("pid.state")).expect("the leftover got SIGTERM");
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(
        state["state"], "held",
        "stopped only after the release: {state}"
    );
    assert_eq!(env.lock_json("L")["state"], "released");
}

#[test]
fn a_command_run_from_a_terminal_can_read_from_it() {
    // COMMAND's group has the terminal, as a shell's job would; a background group that
    // reads from it would be stopped by SIGTTIN.
    let env = Env::new();
    let got = env.path("got");
    let job = format!("read x; echo \"got $x\" > {}", got.display());
    let mut command = env.cairn("holder", &["lock", "run", "L", "--", "sh", "-c", &job]);
    let mut pty = Pty::attach_controlling(&mut command);
    let mut cairn = Cairn::spawn(command);
    pty.type_in(b"hello\n");
    let status = cairn.wait_exit();
    assert_eq!(status.code(), Some(0), "terminal:\n{}", pty.output());
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "got hello\n");
    assert_eq!(env.lock_json("L")["state"], "released");
}

#[test]
fn ctrl_c_on_the_terminal_ends_the_whole_group() {
    // A non-interactive shell's background job ignores SIGINT: it is the SIGTERM cairn
    // sends what COMMAND left running that ends it.
    let env = Env::new();
    let pid_file = env.path("pid");
    let grandchild = env.script("grandchild.sh", GRANDCHILD);
    let job = format!("sh {grandchild} {} & wait", pid_file.display());
    let mut command = env.cairn("holder", &["lock", "run", "L", "--", "sh", "-c", &job]);
    let mut pty = Pty::attach_controlling(&mut command);
    let mut cairn = Cairn::spawn(command);
    let g = Proc::from_pid_file(&pid_file, &mut cairn);
    pty.type_in(&[0x03]);
    let status = cairn.wait_exit();
    assert_eq!(status.code(), Some(130), "terminal:\n{}", pty.output());
    assert!(g.is_gone(), "the grandchild outlived cairn");
    assert!(env.path("pid.term").exists(), "no SIGTERM for the leftover");
    assert_eq!(env.lock_json("L")["state"], "released");
}
