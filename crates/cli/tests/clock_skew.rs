//! Real `cairn` processes whose wall clocks are wrong (`faketime`), against a live holder:
//! a clock a minute ahead, a minute behind or an hour ahead never takes a live lease or an
//! early turn, on the local filesystem, LocalStack and Ceph RGW; `doctor` shows the offset.
//!
//! Each skewed command's work is `touch MARKER`: what must hold is that the marker never
//! appears while the honest holder holds.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::cli::{self, Spawned};
use common::{s3_skipped, Backend};

/// Skews that must all be refused: ahead by a minute, behind by a minute, ahead by an hour.
const SKEWS: [&str; 3] = ["+60s", "-60s", "+1h"];

/// A store for the test: a directory in `dir`, or a fresh prefix on an S3 server.
struct Store {
    url: String,
    endpoint: Option<String>,
}

impl Store {
    fn on(backend: Backend, dir: &Path) -> Option<Store> {
        match backend {
            Backend::Fs => Some(Store {
                url: format!("file://{}", dir.join("store").display()),
                endpoint: None,
            }),
            _ if s3_skipped() => None,
            _ => Some(Store {
                url: format!("s3://{}/skew-{}", common::BUCKET, uuid::Uuid::new_v4()),
                endpoint: backend.endpoint(),
            }),
        }
    }

    /// `cairn --store URL --node NODE ARGS…`, under `faketime -f SKEW` when given.
    fn cairn(&self, dir: &Path, skew: Option<&str>, node: &str, args: &[&str]) -> Command {
        let base = cli::cairn(dir);
        let mut c = match skew {
            Some(s) => {
                let mut c = Command::new("faketime");
                c.args(["-f", s]).arg(base.get_program());
                c
            }
            None => Command::new(base.get_program()),
        };
        for (k, v) in base.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(e) = &self.endpoint {
            c.env("AWS_ENDPOINT_URL", e);
        }
        c.current_dir(dir)
            .stdin(Stdio::null())
            .args(["--store", &self.url, "--node", node])
            .args(args);
        c
    }

    fn run(&self, dir: &Path, skew: Option<&str>, node: &str, args: &[&str]) -> Output {
        self.cairn(dir, skew, node, args).output().unwrap()
    }
}

fn faketime_works() {
    let out = Command::new("faketime")
        .args(["-f", "+1h", "date", "+%s"])
        .output()
        .expect("faketime is installed by localstack/install.sh (Debian's faketime package)");
    let faked: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        (faked - now - 3600).abs() < 60,
        "faketime does not skew: {faked} vs {now}"
    );
}

/// Waits until `lock show` says the lock is held.
fn wait_held(store: &Store, dir: &Path, lock: &str) {
    let deadline = Instant::now() + cli::DEADLINE;
    loop {
        let out = store.run(dir, None, "watcher", &["--json", "lock", "show", lock]);
        if out.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            if v["state"] == "held" {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the lock was never held");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn lease_is_never_taken_by_a_skewed_clock(backend: Backend) {
    faketime_works();
    let dir = tempfile::tempdir().unwrap();
    let Some(store) = Store::on(backend, dir.path()) else {
        return;
    };
    let marker = dir.path().join("taken");
    let holder = Spawned::start(store.cairn(
        dir.path(),
        None,
        "holder",
        &["lock", "run", "job", "--ttl", "6s", "--", "sleep", "60"],
    ));
    wait_held(&store, dir.path(), "job");
    // Past the holder's first renewal, so its newest version is a renewal.
    std::thread::sleep(Duration::from_millis(2500));
    for skew in SKEWS {
        let out = store.run(
            dir.path(),
            Some(skew),
            "skewed",
            &[
                "lock",
                "run",
                "job",
                "-n",
                "--",
                "touch",
                marker.to_str().unwrap(),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !marker.exists(),
            "a node with its clock {skew} took the live lease: {stderr}"
        );
        assert_ne!(out.status.code(), Some(0), "{skew}: {stderr}");
        if skew == "+60s" {
            assert_eq!(out.status.code(), Some(75), "busy: {stderr}");
            assert!(
                stderr.contains("ahead of the store's"),
                "the skew is said: {stderr}"
            );
        }
    }
    // doctor measures and shows it.
    let out = store.run(dir.path(), Some("+60s"), "skewed", &["doctor"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ahead of the store's") && stdout.contains("BEYOND"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = store.run(dir.path(), None, "honest", &["doctor"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("within the 2 s bound"), "{stdout}");
    holder.signal(libc::SIGTERM);
}

fn turn_is_never_claimed_early_by_a_clock_ahead(backend: Backend) {
    faketime_works();
    let dir = tempfile::tempdir().unwrap();
    let Some(store) = Store::on(backend, dir.path()) else {
        return;
    };
    let marker = dir.path().join("early");
    let started = dir.path().join("started");
    let first = Spawned::start(store.cairn(
        dir.path(),
        None,
        "first",
        &[
            "turn",
            "run",
            "expiry",
            "--",
            "sh",
            "-c",
            &format!("touch {}; sleep 60", started.display()),
        ],
    ));
    let deadline = Instant::now() + cli::DEADLINE;
    while !started.exists() {
        assert!(Instant::now() < deadline, "turn 1 never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Five minutes ahead: by its clock turn 2 is due (window 300 s, jitter 30 s).
    let out = store.run(
        dir.path(),
        Some("+5m"),
        "ahead",
        &[
            "turn",
            "run",
            "expiry",
            "--",
            "touch",
            marker.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !marker.exists(),
        "turn 2 claimed while turn 1 runs: {stderr}"
    );
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("ahead of the store's"), "{stderr}");
    first.signal(libc::SIGTERM);
}

#[test]
fn on_the_filesystem_a_skewed_clock_takes_no_live_lease() {
    lease_is_never_taken_by_a_skewed_clock(Backend::Fs);
}

#[test]
fn on_localstack_a_skewed_clock_takes_no_live_lease() {
    lease_is_never_taken_by_a_skewed_clock(Backend::LocalStack);
}

#[test]
fn on_rgw_a_skewed_clock_takes_no_live_lease() {
    lease_is_never_taken_by_a_skewed_clock(Backend::Rgw);
}

#[test]
fn on_the_filesystem_a_clock_ahead_claims_no_early_turn() {
    turn_is_never_claimed_early_by_a_clock_ahead(Backend::Fs);
}

#[test]
fn on_localstack_a_clock_ahead_claims_no_early_turn() {
    turn_is_never_claimed_early_by_a_clock_ahead(Backend::LocalStack);
}

#[test]
fn on_rgw_a_clock_ahead_claims_no_early_turn() {
    turn_is_never_claimed_early_by_a_clock_ahead(Backend::Rgw);
}
