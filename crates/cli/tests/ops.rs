//! The operator's cleanup and live views: `cairn gc`, `node forget`, `record delete`,
//! `status`, and `--watch` on the listings.
//!
//! Real processes on a `file://` store (version chain) in a temp dir, asserting on stdout,
//! stderr and exit code. Nothing sleeps to synchronise: a test waits for the output a
//! process prints (with a generous deadline, so that a hang fails instead of blocking).
//!
//! Versions younger than the prefix's `gc_min_age` (10 minutes) are never collected, so the
//! tests that collect set it to 0 in the prefix's protocol record, as an operator could.

mod common;

use std::process::Stdio;
use std::time::Duration;

use cairn::manifest::{Remove, Strategy, Write};
use cairn::store::keys::{self, Family};
use cairn::Name;
use common::cli::{self, Env, Pty, Run, Spawned, DEADLINE};
use common::{s3_skipped, Backend};
use serde_json::Value;

/// What these tests ask of a store beyond running cairn.
trait Ops {
    fn collect_at_any_age(&self);
    fn versions(&self, manifest: &str) -> Vec<String>;
    fn token_of_a_run(&self, name: &str) -> u64;
}

impl Ops for Env {
    /// Sets the prefix's `gc_min_age` to 0 (the store must have its protocol record), so
    /// that versions are old enough to collect at once.
    fn collect_at_any_age(&self) {
        let path = self.root().join("_cairn/protocol.json");
        let mut p: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        p["gc_min_age_ms"] = 0.into();
        std::fs::write(&path, p.to_string()).unwrap();
    }

    /// The version files of a manifest (`locks/a`), in order.
    fn versions(&self, manifest: &str) -> Vec<String> {
        let dir = self.root().join(manifest).join("v");
        let mut v: Vec<String> = match std::fs::read_dir(dir) {
            Ok(d) => d
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }

    /// `lock run NAME -- sh -c 'echo $CAIRN_FENCING_TOKEN'`: the token it ran with.
    fn token_of_a_run(&self, name: &str) -> u64 {
        let out = self
            .run(
                "worker",
                &[
                    "lock",
                    "run",
                    name,
                    "--",
                    "sh",
                    "-c",
                    "echo $CAIRN_FENCING_TOKEN",
                ],
            )
            .ok()
            .stdout();
        out.trim().parse().unwrap()
    }
}

// ---------------------------------------------------------------------------------------
// gc and locks: the tombstone keeps the fencing token

#[test]
fn gc_trims_a_released_lock_to_its_tombstone_and_the_next_holder_gets_a_higher_token() {
    let env = Env::new();
    let mut last = 0;
    for _ in 0..4 {
        last = env.token_of_a_run("deploy");
    }
    env.collect_at_any_age();
    let before = env.versions("locks/deploy");
    assert_eq!(before.len(), 8, "4 acquisitions and 4 releases: {before:?}");
    let tombstone = before.last().unwrap().clone();

    // A dry run lists what would go and deletes nothing.
    let dry = env
        .run(
            "ops",
            &["--json", "gc", "--dry-run", "--released-older-than", "0s"],
        )
        .ok()
        .json();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["objects"], 7);
    assert_eq!(env.versions("locks/deploy"), before);

    // Without --released-older-than, the lock keeps its 8 newest versions.
    let plain = env.run("ops", &["gc"]).ok();
    assert_eq!(plain.stdout(), "nothing to delete\n");

    let out = env
        .run("ops", &["gc", "--released-older-than", "0s"])
        .ok()
        .stdout();
    assert!(out.starts_with("deleted 7 objects\n"), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("released-lock"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("locks/deploy"), "{row}");
    // The tombstone is the last release, which keeps the last holder's token.
    assert!(
        row.contains(&format!("tombstone kept: token {last}")),
        "{row}"
    );
    assert_eq!(env.versions("locks/deploy"), vec![tombstone]);

    // The fencing token carries on from the tombstone: strictly above every earlier one.
    let next = env.token_of_a_run("deploy");
    assert!(next > last, "token {next} after {last}");
}

#[test]
fn gc_never_trims_a_held_lock_to_its_head() {
    let env = Env::new();
    for _ in 0..5 {
        env.token_of_a_run("db");
    }
    let mut h = env.spawn("holder", &["lock", "hold", "db"]);
    let token: u64 = h.line().trim().parse().unwrap();
    env.collect_at_any_age();
    let r = env
        .run("ops", &["--json", "gc", "--released-older-than", "0s"])
        .ok()
        .json();
    let collected = r["collected"].as_array().unwrap();
    assert!(
        collected.iter().all(|c| c["what"] != "released-lock"),
        "{r}"
    );
    // The ordinary collection keeps the newest 8 versions.
    assert!(env.versions("locks/db").len() >= 8);
    let show = env
        .run("ops", &["--json", "lock", "show", "db"])
        .ok()
        .json();
    assert_eq!(show["state"], "held");
    assert_eq!(show["fencing_token"], token);
    h.signal(libc::SIGTERM);
    assert_eq!(h.wait(), Some(0), "{}", h.stderr());
}

#[test]
fn gc_leaves_a_manifest_it_cannot_read_alone_and_reports_it() {
    let env = Env::new();
    for _ in 0..3 {
        env.token_of_a_run("broken");
    }
    env.collect_at_any_age();
    let dir = env.root().join("locks/broken/v");
    // The version after the head (versions number from a floor: `clock::floor`).
    let head: u64 = env
        .versions("locks/broken")
        .last()
        .unwrap()
        .trim_end_matches(".json")
        .parse()
        .unwrap();
    std::fs::write(dir.join(format!("{:020}.json", head + 1)), b"{not json").unwrap();
    let before = env.versions("locks/broken");
    let r = env.run("ops", &["gc", "--released-older-than", "0s"]).ok();
    assert_eq!(r.stdout(), "nothing to delete\n");
    assert!(
        r.stderr()
            .starts_with("cairn: left alone (unreadable): locks/broken:"),
        "{}",
        r.stderr()
    );
    assert_eq!(env.versions("locks/broken"), before);
    let j = env
        .run("ops", &["--json", "gc", "--released-older-than", "0s"])
        .ok()
        .json();
    assert_eq!(j["skipped"][0]["key"], "locks/broken");
    assert_eq!(j["objects"], 0);
}

// ---------------------------------------------------------------------------------------
// records: deleting keeps the version

#[test]
fn record_delete_keeps_the_version_so_a_stale_put_stays_stale() {
    let env = Env::new();
    env.run(
        "a",
        &[
            "record",
            "put",
            "agents",
            "a7",
            "--version",
            "7",
            "--value",
            "\"up\"",
        ],
    )
    .ok();
    let d = env
        .run("ops", &["--json", "record", "delete", "agents", "a7"])
        .ok()
        .json();
    assert_eq!(d, serde_json::json!({"outcome": "deleted", "version": 7}));
    let again = env.run("ops", &["record", "delete", "agents", "a7"]).ok();
    assert_eq!(
        again.stdout(),
        "agents/a7 was deleted already (at version 7)\n"
    );
    let get = env.run("ops", &["record", "get", "agents", "a7"]).exits(3);
    assert_eq!(
        get.stderr(),
        "cairn: record agents/a7 was deleted (its tombstone keeps version 7)\n"
    );

    // gc trims the history to the tombstone, which still refuses version 6.
    env.collect_at_any_age();
    let r = env
        .run("ops", &["--json", "gc", "--released-older-than", "0s"])
        .ok()
        .json();
    assert_eq!(r["collected"][0]["what"], "deleted-record");
    assert_eq!(r["collected"][0]["name"], "records/agents/a7");
    assert_eq!(r["collected"][0]["version"], 7);
    assert_eq!(env.versions("records/agents/a7").len(), 1);
    let stale = env
        .run(
            "b",
            &[
                "--json",
                "record",
                "put",
                "agents",
                "a7",
                "--version",
                "6",
                "--value",
                "\"down\"",
            ],
        )
        .ok()
        .json();
    assert_eq!(
        stale,
        serde_json::json!({"outcome": "stale", "stored_version": 7})
    );
    env.run(
        "b",
        &[
            "record",
            "put",
            "agents",
            "a7",
            "--version",
            "8",
            "--value",
            "\"back\"",
        ],
    )
    .ok();
    let got = env
        .run("ops", &["--json", "record", "get", "agents", "a7"])
        .ok()
        .json();
    assert_eq!(got["version"], 8);
    assert_eq!(got["value"], "back");

    let missing = env
        .run("ops", &["--json", "record", "delete", "agents", "nope"])
        .exits(3);
    assert_eq!(missing.json(), serde_json::json!({"outcome": "not-found"}));
}

// ---------------------------------------------------------------------------------------
// nodes

#[test]
fn node_forget_refuses_an_online_node_and_removes_one_that_left() {
    let env = Env::new();
    let mut hb = env.spawn(
        "web-1",
        &["--json", "node", "heartbeat", "--interval", "1s"],
    );
    assert!(hb.line().contains("\"joined\""));
    let refused = env.run("ops", &["node", "forget", "web-1"]).exits(75);
    assert!(
        refused.stderr().starts_with("cairn: node web-1 is online"),
        "{}",
        refused.stderr()
    );
    assert!(refused.stderr().contains("--force"), "{}", refused.stderr());
    assert_eq!(refused.stdout(), "");

    hb.signal(libc::SIGTERM);
    assert_eq!(hb.wait(), Some(0), "{}", hb.stderr());
    let forgot = env
        .run("ops", &["--json", "node", "forget", "web-1"])
        .ok()
        .json();
    assert_eq!(forgot["outcome"], "forgotten");
    assert_eq!(forgot["left"], true);
    assert!(forgot["objects"].as_u64().unwrap() >= 2, "{forgot}");
    assert!(env.versions("nodes/web-1").is_empty());
    let ls = env.run("ops", &["--json", "node", "ls"]).ok().json();
    assert_eq!(ls, serde_json::json!([]));
    let gone = env.run("ops", &["node", "forget", "web-1"]).exits(3);
    assert_eq!(gone.stderr(), "cairn: no node web-1\n");

    // A node forgotten joins again from scratch.
    let mut hb = env.spawn("web-1", &["--json", "node", "heartbeat"]);
    assert!(hb.line().contains("\"joined\""));
    hb.signal(libc::SIGTERM);
    assert_eq!(hb.wait(), Some(0), "{}", hb.stderr());
}

#[test]
fn gc_removes_nodes_that_left_and_old_log_entries_but_never_the_newest_entry() {
    let env = Env::new();
    let mut hb = env.spawn("old", &["--json", "node", "heartbeat"]);
    assert!(hb.line().contains("\"joined\""));
    hb.signal(libc::SIGTERM);
    assert_eq!(hb.wait(), Some(0), "{}", hb.stderr());
    // The topic's first sequence is a floor drawn from time (`clock::floor`).
    let mut first = 0;
    for i in 1..=3 {
        let seq = env
            .run("a", &["log", "append", "audit", &format!("{{\"n\":{i}}}")])
            .ok()
            .stdout();
        if i == 1 {
            first = seq.trim().parse::<u64>().unwrap();
        }
    }
    let before = format!("audit:{}", first + 100);
    // A left node younger than the age stays.
    let r = env
        .run("ops", &["--json", "gc", "--left-older-than", "1d"])
        .ok()
        .json();
    assert_eq!(r["objects"], 0, "{r}");

    let r = env
        .run(
            "ops",
            &["gc", "--left-older-than", "0s", "--log-before", &before],
        )
        .ok()
        .stdout();
    let rows: Vec<&str> = r.lines().collect();
    assert!(rows[0].starts_with("deleted "), "{r}");
    assert!(
        rows.iter()
            .any(|l| l.starts_with("left-node") && l.contains("old")),
        "{r}"
    );
    let log = rows.iter().find(|l| l.starts_with("log")).unwrap();
    assert!(
        log.contains("audit") && log.contains(&format!("entries up to {}", first + 1)),
        "{log}"
    );
    assert!(env.versions("nodes/old").is_empty());

    // The newest entry stays, so the numbering carries on.
    let tail = env
        .run("v", &["--json", "log", "tail", "audit"])
        .ok()
        .stdout();
    let seqs: Vec<u64> = tail
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["sequence"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, vec![first + 2]);
    let next = env
        .run("a", &["log", "append", "audit", "{}"])
        .ok()
        .stdout();
    assert_eq!(next.trim(), (first + 3).to_string());
}

#[test]
fn gc_log_before_without_a_sequence_is_a_usage_error_before_any_request() {
    let env = Env::new();
    let r = env.run("ops", &["gc", "--log-before", "audit"]).exits(2);
    assert!(r.stderr().contains("expected TOPIC:SEQ"), "{}", r.stderr());
    assert!(!env.root().exists(), "no store was created");
}

// ---------------------------------------------------------------------------------------
// status

#[test]
fn status_fits_80_columns_and_its_json_is_one_document() {
    let env = Env::new();
    let long = "a-lock-name-long-enough-to-need-cutting-down-to-size-for-the-screen";
    env.token_of_a_run(long);
    env.run("a", &["stream", "create", "clicks"]).ok();
    env.run(
        "a-node-with-a-rather-long-identifier-too-for-the-holder-column",
        &["lock", "run", "other", "--", "true"],
    )
    .ok();
    let appended: u64 = env.run("a", &["log", "append", "audit", "{\"what\":\"a long event body that goes on and on past the edge of an eighty column terminal\"}"])
        .ok()
        .stdout()
        .trim()
        .parse()
        .unwrap();
    let text = env
        .run("ops", &["status", "--topic", "audit"])
        .ok()
        .stdout();
    for l in text.lines() {
        assert!(l.chars().count() <= 80, "wider than 80: {l:?}\n{text}");
    }
    for heading in [
        "LOCKS  2",
        "TURNS  0",
        "STREAMS  1 (1 active)",
        "NODES  0 online",
        "LOG  audit",
    ] {
        assert!(text.contains(heading), "no {heading:?}:\n{text}");
    }
    let j = env.run("ops", &["--json", "status"]).ok().json();
    for k in ["at", "locks", "turns", "streams", "nodes", "log"] {
        assert!(j.get(k).is_some(), "no {k}: {j}");
    }
    assert_eq!(j["streams"]["count"], 1);
    assert_eq!(j["streams"]["newest"]["name"], "clicks");
    assert_eq!(
        j["log"]["topics"][0],
        serde_json::json!({"topic": "audit", "newest": appended})
    );
}

// ---------------------------------------------------------------------------------------
// --watch

#[test]
fn watch_off_a_terminal_prints_snapshots_under_a_time_header_until_sigterm() {
    let env = Env::new();
    env.token_of_a_run("build");
    let mut w = env.spawn("ops", &["lock", "ls", "--watch", "--interval", "100ms"]);
    let first = w.lines_until(|l| l.is_empty());
    assert!(first[0].starts_with("# 20"), "{first:?}");
    assert!(first[1].starts_with("NAME"), "{first:?}");
    assert!(first[2].starts_with("build"), "{first:?}");
    let second = w.lines_until(|l| l.is_empty());
    assert!(second[0].starts_with("# 20"), "{second:?}");
    w.signal(libc::SIGTERM);
    assert_eq!(w.wait(), Some(0), "{}", w.stderr());
}

/// On a terminal (80 × 24, as tmux would give it) each refresh clears the screen and
/// redraws in place, and no line is wider than the terminal.
#[test]
fn watch_on_a_terminal_redraws_in_place_within_80_columns() {
    let env = Env::new();
    env.run(
        "a-node-with-a-rather-long-identifier-for-the-holder-column",
        &[
            "lock",
            "run",
            "a-lock-with-a-name-long-enough-to-push-the-table-wide",
            "--",
            "true",
        ],
    )
    .ok();
    let mut c = env.cairn("ops", &["lock", "ls", "--watch", "--interval", "100ms"]);
    let pty = Pty::attach(&mut c);
    let mut child = c.spawn().unwrap();
    const CLEAR: &str = "\x1b[H\x1b[2J";
    let text = || pty.output();
    // Wait for the third redraw to start, so that the second is complete.
    let start = std::time::Instant::now();
    while text().matches(CLEAR).count() < 3 {
        assert!(
            start.elapsed() < DEADLINE,
            "no redraws; terminal:\n{}",
            text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "did not exit; terminal:\n{}",
            text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{}", text());
    let screen = text();
    let second = screen.split(CLEAR).nth(2).unwrap();
    let lines: Vec<&str> = second.split("\r\n").collect();
    assert!(
        lines[0].starts_with("cairn lock ls  (every 100ms)"),
        "{second}"
    );
    assert!(lines[2].starts_with("NAME"), "{second}");
    assert!(lines[3].starts_with("a-lock-with-a-name"), "{second}");
    for l in &lines {
        assert!(l.chars().count() <= 80, "wider than 80: {l:?}");
    }
    assert!(
        lines[3].ends_with('…'),
        "the long row is cut, not wrapped: {second}"
    );
}

#[test]
fn watch_with_json_prints_one_document_per_refresh_and_ends_0_on_sigint() {
    let env = Env::new();
    env.run("a", &["stream", "create", "clicks"]).ok();
    for args in [
        &["--json", "stream", "ls", "--watch", "--interval", "100ms"][..],
        &["--json", "node", "ls", "--watch", "--interval", "100ms"][..],
        &["--json", "turn", "ls", "--watch", "--interval", "100ms"][..],
        &["--json", "status", "--watch", "--interval", "100ms"][..],
    ] {
        let mut w = env.spawn("ops", args);
        let a: Value = serde_json::from_str(&w.line()).unwrap();
        let b: Value = serde_json::from_str(&w.line()).unwrap();
        assert_eq!(a.is_array(), b.is_array(), "{args:?}");
        if args[1] == "stream" {
            assert_eq!(a[0]["name"], "clicks");
        }
        w.signal(libc::SIGINT);
        assert_eq!(w.wait(), Some(0), "{args:?}: {}", w.stderr());
    }
}

/// `stream watch` and `log tail --follow` end with exit 0 on SIGTERM as on SIGINT, also when
/// the signal lands while they read (the handlers are installed once, before the first read).
#[test]
fn stream_watch_and_log_tail_follow_end_0_on_sigterm() {
    let env = Env::new();
    env.run("a", &["stream", "create", "clicks"]).ok();
    env.run("a", &["log", "append", "audit", "{}"]).ok();
    for args in [
        &["stream", "watch", "--interval", "100ms"][..],
        &["log", "tail", "audit", "--follow", "--interval", "100ms"][..],
    ] {
        for sig in [libc::SIGTERM, libc::SIGINT] {
            let mut w = env.spawn("ops", args);
            w.line();
            w.signal(sig);
            assert_eq!(w.wait(), Some(0), "{args:?} {sig}: {}", w.stderr());
        }
    }
}

#[test]
fn interval_without_watch_is_a_usage_error() {
    let env = Env::new();
    let r = env.run("ops", &["lock", "ls", "--interval", "1s"]).exits(2);
    assert!(r.stderr().contains("--watch"), "{}", r.stderr());
}

// ---------------------------------------------------------------------------------------
// The library underneath, and S3

/// The race `node forget` and `gc --left-older-than` guard against: the manifest is read
/// again before anything is deleted, and a newer version than the one inspected stops it.
#[tokio::test]
async fn remove_leaves_a_manifest_alone_that_changed_after_it_was_inspected() {
    for strategy in [Strategy::EtagCas, Strategy::VersionChain] {
        let ns = common::namespace(Backend::Memory).await.unwrap();
        let c = ns.cairn("n", strategy).await;
        let base = keys::manifest(Family::Scratch, &Name::new("x").unwrap());
        let m = c.manifest::<Value>("test", base);
        let Write::Written(v1) = m.create(serde_json::json!(1)).await.unwrap() else {
            panic!("created")
        };
        let Write::Written(v2) = m.write(Some(&v1), serde_json::json!(2)).await.unwrap() else {
            panic!("written")
        };
        assert!(matches!(
            m.remove(&v1, false).await.unwrap(),
            Remove::Changed
        ));
        assert_eq!(m.load().await.unwrap().unwrap().version, v2.version);
        // A dry run names the objects and deletes none.
        let Remove::Removed(would) = m.remove(&v2, true).await.unwrap() else {
            panic!("{strategy:?}: a dry run finds it")
        };
        assert_eq!(m.load().await.unwrap().unwrap().version, v2.version);
        let Remove::Removed(gone) = m.remove(&v2, false).await.unwrap() else {
            panic!("{strategy:?}: removed")
        };
        assert_eq!(would, gone);
        let objects = if strategy == Strategy::EtagCas { 1 } else { 2 };
        assert_eq!(gone.len(), objects, "{strategy:?}: {gone:?}");
        assert!(m.load().await.unwrap().is_none());
        assert!(matches!(m.remove(&v2, false).await.unwrap(), Remove::Gone));
    }
}

/// On S3 with etag CAS a manifest is one object: gc has no history to trim, a released lock
/// keeps its one object (the token continues), and `node forget` deletes the record.
#[test]
fn on_s3_with_etag_cas_gc_keeps_the_lock_and_forget_deletes_the_record() {
    if s3_skipped() {
        return;
    }
    let env = Env::new();
    let store = format!("s3://{}/t-{}", common::BUCKET, uuid::Uuid::new_v4());
    let command = |node: &str, args: &[&str]| {
        let mut c = cli::cairn(env.dir.path());
        c.env("AWS_ENDPOINT_URL", Backend::LocalStack.endpoint().unwrap())
            .stdin(Stdio::null())
            .args(["--store", &store, "--node", node, "--strategy", "etag-cas"])
            .args(args);
        c
    };
    let s3 = |node: &str, args: &[&str]| Run(command(node, args).output().unwrap());
    let token = |r: Run| -> u64 { r.ok().stdout().trim().parse().unwrap() };
    let run = [
        "lock",
        "run",
        "deploy",
        "--",
        "sh",
        "-c",
        "echo $CAIRN_FENCING_TOKEN",
    ];
    let first = token(s3("w", &run));
    let g = s3("ops", &["--json", "gc", "--released-older-than", "0s"])
        .ok()
        .json();
    assert_eq!(g["objects"], 0, "{g}");
    assert!(token(s3("w", &run)) > first);

    let mut hb = Spawned::start(command("web-1", &["--json", "node", "heartbeat"]));
    assert!(hb.line().contains("\"joined\""));
    s3("ops", &["node", "forget", "web-1"]).exits(75);
    hb.signal(libc::SIGTERM);
    assert_eq!(hb.wait(), Some(0), "{}", hb.stderr());
    let f = s3("ops", &["--json", "node", "forget", "web-1"])
        .ok()
        .json();
    assert_eq!(f["outcome"], "forgotten");
    assert_eq!(f["objects"], 1);
    assert_eq!(
        s3("ops", &["--json", "node", "ls"]).ok().json(),
        serde_json::json!([])
    );

    let rec = "{\"n\":1}";
    s3(
        "w",
        &["record", "put", "ns", "k", "--version", "3", "--value", rec],
    )
    .ok();
    s3("w", &["record", "delete", "ns", "k"]).ok();
    let stale = s3(
        "w",
        &[
            "--json",
            "record",
            "put",
            "ns",
            "k",
            "--version",
            "2",
            "--value",
            rec,
        ],
    )
    .ok()
    .json();
    assert_eq!(stale["outcome"], "stale");
}
