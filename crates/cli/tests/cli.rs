//! The `cairn` binary end to end.

mod common;

use common::cli::cairn;
use common::{s3_skipped, Backend};

#[test]
fn doctor_with_no_store_uses_a_local_directory_and_the_version_chain() {
    let dir = tempfile::tempdir().unwrap();
    let out = cairn(dir.path())
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["strategy"], "version-chain");
    assert_eq!(report["capabilities"]["create_if_absent"], true);
    assert!(report["store"].as_str().unwrap().ends_with("/.cairn"));
    assert!(dir.path().join(".cairn").is_dir());
}

#[test]
fn doctor_against_localstack_chooses_etag_cas() {
    if s3_skipped() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = cairn(dir.path())
        .args(["doctor", "--json", "--store", "s3://cairn-test/cli-doctor"])
        .env("AWS_ENDPOINT_URL", Backend::LocalStack.endpoint().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["strategy"], "etag-cas");
    assert_eq!(report["capabilities"]["replace_if_match"], true);
    assert_eq!(report["capabilities"]["conditional_get"], true);
}

/// `az://` on Azurite, its environment as object_store reads it: etag CAS, If-Match with
/// the etag as reported.
#[test]
fn doctor_against_azurite_chooses_etag_cas() {
    if s3_skipped() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = Backend::Azurite.store_url(&format!("cli-doctor-{}", uuid::Uuid::new_v4()));
    let out = cairn(dir.path())
        .args(["doctor", "--json", "--store", &url])
        .envs(Backend::Azurite.cli_env())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["strategy"], "etag-cas", "{report}");
    assert_eq!(report["capabilities"]["replace_if_match"], true);
    assert_eq!(report["capabilities"]["if_match_form"], "as-reported");
    assert_eq!(report["capabilities"]["conditional_get"], true);
}

#[test]
fn bad_store_url_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = cairn(dir.path())
        .args(["doctor", "--store", "ftp://nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected s3://"));
}

fn run_ok(dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = cairn(dir).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn stream_create_exits_0_when_equal_and_73_on_conflict_printing_the_stored_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(
        run_ok(d, &["stream", "create", "logs", "--metadata", r#"{"a":1}"#]).0,
        0
    );
    assert_eq!(
        run_ok(d, &["stream", "create", "logs", "--metadata", r#"{"a":1}"#]).0,
        0
    );
    let (code, out) = run_ok(
        d,
        &[
            "--json",
            "stream",
            "create",
            "logs",
            "--metadata",
            r#"{"a":2}"#,
        ],
    );
    assert_eq!(code, 73);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["outcome"], "conflict");
    assert_eq!(v["stream"]["metadata"], serde_json::json!({"a": 1}));
    let file = d.join("meta.json");
    std::fs::write(&file, r#"{"a":3}"#).unwrap();
    let at_file = format!("@{}", file.display());
    assert_eq!(
        run_ok(d, &["stream", "update", "logs", "--metadata", &at_file]).0,
        0
    );
    let (_, shown) = run_ok(d, &["--json", "stream", "show", "logs"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&shown).unwrap()["metadata"]["a"],
        3
    );
    assert_eq!(run_ok(d, &["stream", "show", "nope"]).0, 3);
}

#[test]
fn records_reject_stale_versions_and_the_log_records_lock_transitions() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, out) = run_ok(
        d,
        &[
            "--json",
            "record",
            "put",
            "agents",
            "a1",
            "--version",
            "7",
            "--value",
            r#""connected""#,
        ],
    );
    assert!(out.contains("applied"), "{out}");
    let (_, out) = run_ok(
        d,
        &[
            "--json",
            "record",
            "put",
            "agents",
            "a1",
            "--version",
            "6",
            "--value",
            r#""disconnected""#,
        ],
    );
    assert!(out.contains("stale"), "{out}");
    let (_, out) = run_ok(d, &["--json", "record", "get", "agents", "a1"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["value"],
        "connected"
    );
    assert_eq!(
        run_ok(
            d,
            &["--audit-topic", "locks", "lock", "run", "job", "--", "true"]
        )
        .0,
        0
    );
    let (_, out) = run_ok(d, &["--json", "log", "tail", "locks"]);
    let events: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event"]["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(events, ["acquire", "release"]);
}

#[test]
fn lock_run_passes_the_exit_status_and_reports_a_busy_lock_with_75() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, _) = run_ok(
        d,
        &[
            "lock",
            "run",
            "x",
            "--",
            "sh",
            "-c",
            // A new lock's first token is a floor drawn from time (`clock::floor`), far above 1.
            "test \"$CAIRN_LOCK\" = x && test \"$CAIRN_FENCING_TOKEN\" -gt 1000000 && exit 7",
        ],
    );
    assert_eq!(code, 7);
    let mut holder = cairn(d)
        .args(["--node", "holder", "lock", "run", "x", "--", "sleep", "3"])
        .spawn()
        .unwrap();
    // Wait until the holder has the lock, then try once.
    let mut busy = None;
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let out = cairn(d)
            .args([
                "--node", "other", "lock", "run", "x", "--wait", "0", "--", "true",
            ])
            .output()
            .unwrap();
        if out.status.code() == Some(75) {
            busy = Some(String::from_utf8_lossy(&out.stderr).into_owned());
            break;
        }
    }
    let msg = busy.expect("the lock was never reported busy");
    assert!(msg.contains("held by holder"), "{msg}");
    assert!(holder.wait().unwrap().success());
    assert_eq!(
        run_ok(d, &["lock", "run", "x", "--wait", "0", "--", "true"]).0,
        0
    );
}

#[test]
fn lock_run_stops_the_command_and_exits_76_when_the_lease_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let marker = d.join("finished");
    let script = format!(
        "trap 'exit 0' TERM; sleep 30 & wait; touch {}",
        marker.display()
    );
    let start = std::time::Instant::now();
    let mut holder = cairn(d)
        .args([
            "--node", "holder", "lock", "run", "x", "--ttl", "6s", "--grace", "2s", "--", "sh",
            "-c", &script,
        ])
        .spawn()
        .unwrap();
    let token = wait_until_held(d, "x").to_string();
    let (code, _) = run_ok(
        d,
        &[
            "--node", "operator", "lock", "break", "x", "--token", &token, "--force",
        ],
    );
    assert_eq!(code, 0);
    let status = holder.wait().unwrap();
    assert_eq!(status.code(), Some(76));
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    assert!(!marker.exists(), "the command ran on after losing the lock");
    let (_, shown) = run_ok(d, &["--json", "lock", "show", "x"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&shown).unwrap()["state"],
        "broken"
    );
}

#[test]
fn turn_run_runs_once_per_window_records_the_outcome_and_skips_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let job = format!(
        r#"echo "$CAIRN_TURN" >> {m}; echo '{{"expired": 7}}' > "$CAIRN_TURN_RESULT""#,
        m = marker.display()
    );
    let run = |extra: &[&str]| {
        let mut args = vec!["turn", "run", "expiry", "--every", "1h", "--node", "n1"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "sh", "-c", &job]);
        run_ok(dir.path(), &args)
    };
    let (code, _) = run(&[]);
    assert_eq!(code, 0);
    // The turn's first number is a floor drawn from time (`clock::floor`).
    let ran = std::fs::read_to_string(&marker).unwrap();
    let first: u64 = ran.trim().parse().unwrap();
    assert!(first > 1_000_000, "{ran}");

    // Not due: nothing runs, exit 0, and the answer says when it is due.
    let (code, out) = run(&["--json"]);
    assert_eq!(code, 0);
    let skip: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(skip["outcome"], "not-due");
    assert_eq!(skip["name"], "expiry");
    assert!(skip["turn"]["next_due_at"].is_string());
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), ran);

    let (code, out) = run_ok(dir.path(), &["turn", "show", "expiry", "--json"]);
    assert_eq!(code, 0);
    let t: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(t["number"], first);
    assert_eq!(t["holder"], "n1");
    assert_eq!(t["outcome"]["status"], "success");
    assert_eq!(t["outcome"]["result"]["expired"], 7);

    // The window is the turn's: a node asking for another one is told so and runs nothing.
    let (code, _) = run_ok(
        dir.path(),
        &[
            "turn", "run", "expiry", "--every", "1s", "--", "sh", "-c", "exit 4",
        ],
    );
    assert_eq!(code, 2, "a caller with another window must not run");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), ran);
    // Zero and absurd windows are refused before any request, naming the range.
    let out = cairn(dir.path())
        .args(["turn", "run", "expiry", "--every", "0s", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("allowed from 1s to 366d"));
    // An explicit reconfiguration changes it for every node.
    let (code, out) = run_ok(
        dir.path(),
        &[
            "turn",
            "configure",
            "expiry",
            "--every",
            "1s",
            "--jitter",
            "0s",
            "--json",
        ],
    );
    assert_eq!(code, 0);
    let t: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(t["window_ms"], 1000);
    assert_eq!(t["number"], first);
    // Due a second after turn 1 started: a failing command's status is passed through and
    // recorded as a failure. (Polled: the turn becomes due on the wall clock.)
    let mut code = 0;
    for _ in 0..100 {
        code = run_ok(
            dir.path(),
            &["turn", "run", "expiry", "--", "sh", "-c", "exit 4"],
        )
        .0;
        if code != 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(code, 4);
    let (_, out) = run_ok(dir.path(), &["turn", "ls", "--json"]);
    let all: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    // Above the first, not consecutive (drawn from time); it names the turn it followed.
    assert!(all[0]["number"].as_u64().unwrap() > first, "{all}");
    assert_eq!(all[0]["previous"]["number"], first);
    assert_eq!(all[0]["outcome"]["status"], "failure");
    assert_eq!(all[0]["previous"]["outcome"]["status"], "success");
    assert_eq!(run_ok(dir.path(), &["turn", "show", "nope"]).0, 3);
}

#[test]
fn node_heartbeat_shows_online_leaves_on_sigterm_and_refuses_a_duplicate_id_with_78() {
    let dir = tempfile::tempdir().unwrap();
    let mut hb = cairn(dir.path())
        .args([
            "node",
            "heartbeat",
            "--node",
            "ingest-1",
            "--interval",
            "500ms",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let listed = |dir: &std::path::Path| -> serde_json::Value {
        let (code, out) = run_ok(dir, &["node", "ls", "--json"]);
        assert_eq!(code, 0);
        serde_json::from_str(out.trim()).unwrap()
    };
    let mut online = false;
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        // Until the heartbeat has created the store, there is none to list (exit 2).
        let (code, out) = run_ok(dir.path(), &["node", "ls", "--json"]);
        if code != 0 {
            continue;
        }
        let l: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        if l.get(0).is_some_and(|m| m["health"] == "online") {
            online = true;
            break;
        }
    }
    assert!(online, "the node must show online");

    // A second process under the same id watches the record, sees it written, refuses.
    let dup = cairn(dir.path())
        .args([
            "node",
            "heartbeat",
            "--node",
            "ingest-1",
            "--interval",
            "500ms",
        ])
        .output()
        .unwrap();
    assert_eq!(
        dup.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&dup.stderr)
    );
    assert!(String::from_utf8_lossy(&dup.stderr).contains("in use by another process"));

    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(hb.id() as libc::pid_t, libc::SIGTERM) };
    assert!(hb.wait().unwrap().success());
    let l = listed(dir.path());
    assert_eq!(l[0]["node"], "ingest-1");
    assert_eq!(l[0]["health"], "offline");
    assert_eq!(l[0]["left"], true);
}

/// Polls `lock show` until `name` is held (bounded: the holder is a process starting up).
/// Waits until `name` is held and returns its fencing token.
fn wait_until_held(d: &std::path::Path, name: &str) -> u64 {
    for _ in 0..200 {
        let out = cairn(d)
            .args(["--json", "lock", "show", name])
            .output()
            .unwrap();
        if out.status.success() {
            let shown = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap();
            if shown["state"] == "held" {
                return shown["fencing_token"].as_u64().unwrap();
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("lock {name} was never held");
}
