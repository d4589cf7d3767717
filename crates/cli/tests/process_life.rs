//! What the world around a cairn process does to it (issue 18, items 6–9, 11 and 12): a
//! stdout whose reader is gone, a hangup, a script that exits without releasing its hold, a
//! store that goes away while a turn's COMMAND runs, a result file someone else could
//! plant, and stored strings written to reach a terminal. Real processes, real pipes, real
//! signals, on a `file://` store; nothing sleeps to synchronise.

mod common;

use std::io::{BufRead, BufReader};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{Env, Run, DEADLINE};
use serde_json::Value;

/// The write end of a pipe whose read end is already closed: every write fails (`EPIPE`).
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills `fds` with two new descriptors, both close-on-exec.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors are new and owned by nothing else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

/// Runs `c` to its end with `stdout`, collecting stderr; bounded by [`DEADLINE`].
fn run_with_stdout(mut c: Command, stdout: Stdio) -> Run {
    let child = c.stdout(stdout).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(out) => Run(out.unwrap()),
        Err(_) => {
            // SAFETY: kill(2) on our own child, which did not exit in time.
            unsafe { libc::kill(i32::try_from(pid).unwrap(), libc::SIGKILL) };
            panic!("cairn did not exit within {DEADLINE:?}");
        }
    }
}

/// Exit 1 for the closed stdout, said on stderr: no panic (101), no death by signal.
fn ended_cleanly_on_closed_stdout(out: &Run) {
    let err = out.stderr();
    assert_eq!(out.code(), Some(1), "stderr: {err}");
    assert!(err.contains("cannot write to stdout"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// The lock's state, as `lock show --json` says.
fn lock_state(env: &Env, name: &str) -> String {
    let shown = env.run("viewer", &["--json", "lock", "show", name]).ok();
    shown.json()["state"].as_str().unwrap().to_string()
}

/// Waits (bounded) until lock `name` is released: by its holder, not by expiring.
fn wait_released(env: &Env, name: &str) {
    let start = Instant::now();
    loop {
        let state = lock_state(env, name);
        if state == "released" {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "lock {name} still {state} after {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Another node gets lock `name` at once (`-n`): it is free, not held until its ttl.
fn free_at_once(env: &Env, name: &str) {
    env.run("next", &["lock", "run", name, "-n", "--", "true"])
        .ok();
}

/// SIGKILLs a process on drop (a hold that a broken cairn would leave running).
struct KillOnDrop(libc::pid_t);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill(2) on a process this test started.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

// ---------------------------------------------------------------------------------------
// Item 6: a closed stdout

#[test]
fn a_listing_into_a_closed_pipe_ends_cleanly_without_a_panic() {
    let env = Env::new();
    env.run("n1", &["lock", "run", "x", "--", "true"]).ok();
    for args in [
        &["lock", "ls"][..],
        &["--json", "lock", "ls"],
        &["lock", "show", "x"],
    ] {
        let out = run_with_stdout(env.cairn("viewer", args), closed_pipe());
        ended_cleanly_on_closed_stdout(&out);
    }
}

#[test]
fn lock_run_json_into_a_closed_stdout_releases_the_lock_and_starts_nothing() {
    let env = Env::new();
    let ran = env.dir.path().join("ran");
    let mut c = env.cairn(
        "holder",
        &["--json", "lock", "run", "L", "--ttl", "60s", "--", "touch"],
    );
    c.arg(&ran);
    let out = run_with_stdout(c, closed_pipe());
    ended_cleanly_on_closed_stdout(&out);
    assert!(!ran.exists(), "COMMAND must not start once nobody reads");
    assert_eq!(lock_state(&env, "L"), "released");
    free_at_once(&env, "L");
}

#[test]
fn lock_hold_into_a_closed_stdout_releases_the_lock() {
    let env = Env::new();
    for args in [
        &["lock", "hold", "H", "--ttl", "60s"][..],
        &["--json", "lock", "hold", "J", "--ttl", "60s"],
    ] {
        let out = run_with_stdout(env.cairn("holder", args), closed_pipe());
        ended_cleanly_on_closed_stdout(&out);
    }
    assert_eq!(lock_state(&env, "H"), "released");
    assert_eq!(lock_state(&env, "J"), "released");
    free_at_once(&env, "H");
}

#[test]
fn lock_run_whose_last_line_cannot_be_written_passes_the_commands_status_through() {
    let env = Env::new();
    let go = env.dir.path().join("go");
    let script = format!(
        "while [ ! -e '{}' ]; do sleep 0.05; done; exit 7",
        go.display()
    );
    let mut child = env
        .cairn(
            "holder",
            &[
                "--json", "lock", "run", "L", "--ttl", "60s", "--", "sh", "-c",
            ],
        )
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _kill = KillOnDrop(i32::try_from(child.id()).unwrap());
    let mut first = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    reader.read_line(&mut first).unwrap();
    assert!(first.contains("\"acquired\""), "{first}");
    // Nobody reads any more; then COMMAND ends, with its own status.
    drop(reader);
    std::fs::write(&go, "").unwrap();
    let out = Run(child.wait_with_output().unwrap());
    assert_eq!(out.code(), Some(7), "stderr: {}", out.stderr());
    assert!(
        out.stderr().contains("cannot write to stdout"),
        "{}",
        out.stderr()
    );
    assert!(!out.stderr().contains("panicked"), "{}", out.stderr());
    assert_eq!(lock_state(&env, "L"), "released");
}

// ---------------------------------------------------------------------------------------
// Item 7: SIGHUP

#[test]
fn sighup_ends_lock_hold_as_sigterm_does_and_releases_the_lock() {
    let env = Env::new();
    let mut hold = env.spawn("maint", &["lock", "hold", "schema", "--ttl", "60s"]);
    assert!(is_token(&hold.line()));
    hold.signal(libc::SIGHUP);
    assert_eq!(hold.wait(), Some(0), "stderr: {}", hold.stderr());
    assert_eq!(lock_state(&env, "schema"), "released");
    free_at_once(&env, "schema");
}

#[test]
fn sighup_ends_lock_run_with_the_command_terminated_and_the_lock_released() {
    let env = Env::new();
    let mut run = env.spawn(
        "holder",
        &[
            "lock",
            "run",
            "job",
            "--ttl",
            "60s",
            "--",
            "sh",
            "-c",
            "echo started; exec sleep 60",
        ],
    );
    assert_eq!(run.line(), "started");
    run.signal(libc::SIGHUP);
    // COMMAND got SIGTERM (143), as for a SIGTERM to cairn; the lock was released after.
    assert_eq!(run.wait(), Some(143), "stderr: {}", run.stderr());
    assert_eq!(lock_state(&env, "job"), "released");
    free_at_once(&env, "job");
}

// ---------------------------------------------------------------------------------------
// Item 8: a hold outliving whoever asked for it

/// Runs `script` with bash, `$CAIRN` and `$STORE` set, stdout and stderr to files (a
/// process it leaves running must not hold the test's pipes); returns its stdout.
fn bash(env: &Env, script: &str) -> String {
    let out = env.dir.path().join("script.out");
    let status = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(env.dir.path())
        .env("CAIRN", env!("CARGO_BIN_EXE_cairn"))
        .env("STORE", env.store())
        .env_remove("CAIRN_LOG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(env.dir.path().join("script.err")).unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "{status:?}");
    std::fs::read_to_string(out).unwrap()
}

/// The pid a script printed as `pid=N`.
fn printed_pid(out: &str) -> libc::pid_t {
    out.split_whitespace()
        .find_map(|w| w.strip_prefix("pid="))
        .unwrap_or_else(|| panic!("no pid in {out:?}"))
        .parse()
        .unwrap()
}

#[test]
fn a_coproc_lock_hold_is_released_when_its_script_exits() {
    let env = Env::new();
    // The idiom of docs/CLI.md, in a script that ends without `kill $COPROC_PID`.
    let out = bash(
        &env,
        r#"coproc "$CAIRN" --store "$STORE" --node script lock hold deploy --ttl 60s
read -r token <&"${COPROC[0]}"
echo "token=$token pid=$COPROC_PID""#,
    );
    let _kill = KillOnDrop(printed_pid(&out));
    let token = out
        .strip_prefix("token=")
        .and_then(|r| r.split_whitespace().next());
    assert!(token.is_some_and(is_token), "{out}");
    // Released by its holder (not expired: the ttl is a minute, the deadline the same).
    wait_released(&env, "deploy");
    free_at_once(&env, "deploy");
}

#[test]
fn lock_hold_is_released_when_the_process_that_started_it_exits() {
    let env = Env::new();
    // stdout is a file: only the parent's exit tells that the hold is no longer wanted.
    let out = bash(
        &env,
        r#""$CAIRN" --store "$STORE" --node script lock hold held --ttl 60s > token &
echo "pid=$!"
while [ ! -s token ]; do sleep 0.05; done"#,
    );
    let _kill = KillOnDrop(printed_pid(&out));
    wait_released(&env, "held");
    free_at_once(&env, "held");
}

#[test]
fn lock_hold_is_released_when_nobody_reads_its_stdout() {
    let env = Env::new();
    let mut child = env
        .cairn("holder", &["lock", "hold", "piped", "--ttl", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _kill = KillOnDrop(i32::try_from(child.id()).unwrap());
    let mut token = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    reader.read_line(&mut token).unwrap();
    assert!(is_token(&token), "{token}");
    // The parent (this test) lives on; the reader of stdout is gone.
    drop(reader);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < DEADLINE, "lock hold did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(lock_state(&env, "piped"), "released");
}

// ---------------------------------------------------------------------------------------
// Item 9: turn run when the store goes away while COMMAND runs

#[test]
fn turn_run_passes_the_commands_status_through_when_the_store_goes_away() {
    let env = Env::new();
    // COMMAND replaces the store's turns directory with a file: recording the outcome
    // fails (the store is unusable), after COMMAND ended with status 7.
    let breaks = |status: u8| {
        format!(
            "rm -rf '{0}/turns' && echo gone > '{0}/turns'; exit {status}",
            env.root().display()
        )
    };
    let out = env.run(
        "n1",
        &[
            "turn",
            "run",
            "nightly",
            "--every",
            "1h",
            "--",
            "sh",
            "-c",
            &breaks(7),
        ],
    );
    assert_eq!(out.code(), Some(7), "stderr: {}", out.stderr());
    assert!(
        out.stderr()
            .contains("COMMAND exited 7, but its outcome could not be recorded"),
        "{}",
        out.stderr()
    );
    std::fs::remove_file(env.root().join("turns")).unwrap();
    let out = env.run(
        "n1",
        &[
            "--json",
            "turn",
            "run",
            "other",
            "--every",
            "1h",
            "--",
            "sh",
            "-c",
            &breaks(0),
        ],
    );
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr());
    let line = out.json();
    assert_eq!(line["outcome"], "ran");
    assert_eq!(line["exit_code"], 0);
    assert_eq!(line["recorded"], false);
    assert!(line["record_error"].is_string(), "{line}");
}

// ---------------------------------------------------------------------------------------
// Item 11: CAIRN_TURN_RESULT

/// The turn's stored outcome, as `turn show --json` says.
fn turn_outcome(env: &Env, name: &str) -> Value {
    env.run("viewer", &["--json", "turn", "show", name])
        .ok()
        .json()["outcome"]
        .clone()
}

#[test]
fn the_turn_result_file_is_alone_in_a_private_directory_removed_afterwards() {
    let env = Env::new();
    let seen = env.dir.path().join("seen");
    let script = format!(
        r#"d=$(dirname "$CAIRN_TURN_RESULT"); stat -c '%a %u' "$d" > '{0}'; echo "$d" >> '{0}'; ls -A "$d" >> '{0}'; echo '{{"expired": 3}}' > "$CAIRN_TURN_RESULT""#,
        seen.display()
    );
    env.run(
        "n1",
        &[
            "turn", "run", "t", "--every", "1h", "--", "sh", "-c", &script,
        ],
    )
    .ok();
    let seen = std::fs::read_to_string(seen).unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    // SAFETY: getuid never fails.
    let uid = unsafe { libc::getuid() };
    assert_eq!(lines[0], format!("700 {uid}"), "{seen}");
    assert_eq!(
        lines.get(2),
        Some(&"result.json"),
        "only the result file: {seen}"
    );
    assert!(
        !Path::new(lines[1]).exists(),
        "the directory is removed: {seen}"
    );
    assert_eq!(turn_outcome(&env, "t")["result"]["expired"], 3);
}

#[test]
fn a_symlink_at_the_result_path_is_not_followed() {
    let env = Env::new();
    let secret = env.dir.path().join("secret.json");
    std::fs::write(&secret, r#"{"private_key": "s3cr3t"}"#).unwrap();
    let script = format!(r#"ln -sf '{}' "$CAIRN_TURN_RESULT""#, secret.display());
    let out = env
        .run(
            "n1",
            &[
                "turn", "run", "t", "--every", "1h", "--", "sh", "-c", &script,
            ],
        )
        .ok();
    assert!(out.stderr().contains("symbolic link"), "{}", out.stderr());
    let outcome = turn_outcome(&env, "t");
    assert!(outcome["result"].is_null(), "{outcome}");
    assert!(secret.exists(), "the link's target is left alone");
}

#[test]
fn an_oversized_result_is_refused_with_a_clear_error() {
    let env = Env::new();
    // 70 000 bytes of valid JSON (an empty object behind a lot of blanks).
    let script = r#"head -c 70000 /dev/zero | tr '\0' ' ' > "$CAIRN_TURN_RESULT"; echo '{}' >> "$CAIRN_TURN_RESULT""#;
    let out = env
        .run(
            "n1",
            &[
                "turn", "run", "t", "--every", "1h", "--", "sh", "-c", script,
            ],
        )
        .ok();
    assert!(
        out.stderr()
            .contains("CAIRN_TURN_RESULT refused: it is larger than 65536 bytes"),
        "{}",
        out.stderr()
    );
    assert!(turn_outcome(&env, "t")["result"].is_null());
}

// ---------------------------------------------------------------------------------------
// Item 12: stored strings never reach the terminal raw

/// A holder name that sets the clipboard (OSC 52), rings, and forges a line of its own.
const EVIL: &str = "\u{1b}]52;c;ZXZpbA==\u{7}\n released\u{9b}2J";

/// Plants version 1 of a held lock `name` whose holder is [`EVIL`], as any node that may
/// write under the prefix could (the version chain of a `file://` store).
fn plant_evil_lock(env: &Env, name: &str) {
    let now = chrono::Utc::now();
    let later = now + chrono::Duration::hours(1);
    let doc = serde_json::json!({
        "format": 1, "kind": "lock", "version": 1,
        "write_id": uuid::Uuid::new_v4().to_string(),
        "written_by": EVIL, "written_at": now,
        "body": {
            "state": "held", "holder": EVIL, "session": uuid::Uuid::new_v4().to_string(),
            "fencing_token": 1, "ttl_ms": 3_600_000u64,
            "acquired_at": now, "renewed_at": now, "expires_at": later,
        },
    });
    let dir = env.root().join("locks").join(name).join("v");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("00000000000000000001.json"),
        serde_json::to_vec(&doc).unwrap(),
    )
    .unwrap();
}

#[test]
fn a_planted_holder_name_reaches_the_terminal_escaped_and_marked() {
    let env = Env::new();
    // A store with its protocol recorded, then the planted lock.
    env.run("n1", &["lock", "run", "fine", "--", "true"]).ok();
    plant_evil_lock(&env, "evil");
    for args in [&["lock", "ls"][..], &["lock", "show", "evil"], &["status"]] {
        let out = env.run("viewer", args).ok();
        let text = out.stdout();
        for raw in ['\u{1b}', '\u{7}', '\u{9b}'] {
            assert!(!text.contains(raw), "{args:?}: raw {raw:?} in {text:?}");
        }
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with("released")),
            "{args:?}: a forged line in {text:?}"
        );
        let shown = text
            .lines()
            .find(|l| l.contains("\\u{1b}]52;c;"))
            .unwrap_or_else(|| panic!("{args:?}: the holder is not shown escaped: {text:?}"));
        assert!(
            shown.contains("(invalid name)") || args == ["status"],
            "{args:?}: not marked: {shown:?}"
        );
    }
    // Messages on stderr quote the holder too (a busy lock).
    let busy = env
        .run("other", &["lock", "run", "evil", "-n", "--", "true"])
        .exits(75);
    let err = busy.stderr();
    assert!(
        !err.contains('\u{1b}') && !err.contains('\u{9b}'),
        "{err:?}"
    );
    assert!(err.contains("(invalid name)"), "{err:?}");
    assert!(
        !err.lines().any(|l| l.trim_start().starts_with("released")),
        "a forged line in {err:?}"
    );
    // JSON keeps the value as stored (escaped by JSON itself).
    let shown = env.run("viewer", &["--json", "lock", "show", "evil"]).ok();
    assert_eq!(shown.json()["holder"], EVIL);
}

/// A fencing token as `lock hold` prints it: a fresh lock's first token is a floor drawn
/// from time (`cairn::clock::floor`), far above 1.
fn is_token(line: &str) -> bool {
    line.trim().parse::<u64>().is_ok_and(|t| t > 1 << 40)
}
