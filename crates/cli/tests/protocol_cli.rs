//! Real processes: a protocol record deleted under a held lock (issue #18, item 3). A node
//! that then opens the prefix refuses instead of deciding the protocol afresh (on S3, a
//! `--strategy version-chain` node would otherwise record the chain over etag-CAS locks and
//! run beside the holder), `doctor` says the record is missing, and `cairn protocol
//! recreate` repairs it, refusing a strategy the objects present contradict.

mod common;

use std::process::Command;

use common::cli::{Env, Run, Spawned};
use common::{s3_skipped, Backend};
use object_store::path::Path;
use object_store::ObjectStoreExt;

/// Starts `lock hold L` and waits for its fencing token.
fn hold(c: Command) -> Spawned {
    let h = Spawned::start(c);
    let token: u64 = h.line().trim().parse().expect("the fencing token alone");
    // A fresh lock's first token is a floor drawn from time (`cairn::clock::floor`).
    assert!(token > 1 << 40, "{token}");
    h
}

#[test]
fn on_a_directory_a_deleted_record_is_refused_reported_and_recreated() {
    let env = Env::new();
    let mut holder = hold(env.cairn("holder", &["lock", "hold", "L"]));
    std::fs::remove_file(env.root().join("_cairn/protocol.json")).unwrap();

    let err = env
        .run("b", &["lock", "run", "L", "-n", "--", "true"])
        .exits(2)
        .stderr();
    assert!(
        err.contains("_cairn/protocol.json is missing") && err.contains("locks/L/v/"),
        "{err}"
    );
    assert!(err.contains("cairn protocol recreate"), "{err}");
    assert!(!env.root().join("_cairn/protocol.json").exists());

    let doctor = env.run("ops", &["doctor"]).ok().stdout();
    assert!(
        doctor.contains("MISSING") && doctor.contains("locks/L/v/"),
        "{doctor}"
    );
    // One line each, and no escaped newline between them.
    assert!(
        doctor
            .lines()
            .any(|l| l.starts_with("warning:    the protocol record is MISSING")),
        "{doctor}"
    );
    assert!(!doctor.contains("\\n"), "{doctor}");
    assert!(
        doctor.contains("format:     none recorded (nodes are read under nodes/)"),
        "{doctor}"
    );
    let json = env.run("ops", &["doctor", "--json"]).ok().json();
    assert!(json["protocol_missing"]
        .as_str()
        .unwrap()
        .starts_with("locks/L/v/"));
    let checks: Vec<&str> = json["capabilities"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        checks.contains(&"concurrent create-if-absent"),
        "{checks:?}"
    );

    // The operator's repair: a strategy the objects contradict is refused ...
    let err = env
        .run("ops", &["--strategy", "etag-cas", "protocol", "recreate"])
        .exits(2)
        .stderr();
    assert!(err.contains("cannot record the etag-cas protocol"), "{err}");
    // ... the one they show is recorded.
    let out = env.run("ops", &["protocol", "recreate"]).ok().stdout();
    assert!(
        out.contains("recreated:  version-chain, format 3 (nodes under nodes/;"),
        "{out}"
    );
    let doctor = env.run("ops", &["doctor"]).ok().stdout();
    assert!(
        doctor.contains("format:     3 (nodes heartbeat under nodes/;"),
        "{doctor}"
    );
    let again = env.run("ops", &["protocol", "recreate"]).ok().stdout();
    assert!(again.contains("nothing to re-create"), "{again}");

    // The lock is seen held again; the holder held it throughout.
    env.run("b", &["lock", "run", "L", "-n", "--", "true"])
        .exits(75);
    holder.signal(libc::SIGTERM);
    assert_eq!(holder.wait(), Some(0), "{}", holder.stderr());
}

/// A running `node heartbeat` whose prefix's record is rewritten at another format stops
/// with the error (exit 1, `protocol-changed`) instead of failing every beat quietly while
/// views lose the node. On a directory every heartbeat is a create, which confirms the record
/// first (at most 1 s old), so it stops within seconds.
#[test]
fn on_a_directory_a_heartbeating_node_stops_when_the_record_changes() {
    let env = Env::new();
    let mut beat = Spawned::start(env.cairn(
        "beater",
        &["--json", "node", "heartbeat", "--interval", "200ms"],
    ));
    let joined = beat.line();
    assert!(joined.contains("joined"), "{joined}");
    let path = env.root().join("_cairn/protocol.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(record["format"], cairn::store::protocol::PROTOCOL_FORMAT);
    record["format"] = 2.into();
    std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
    assert_eq!(beat.wait(), Some(1), "stderr: {}", beat.stderr());
    let err = beat.stderr();
    assert!(
        err.contains("protocol record") && err.contains("format 2"),
        "{err}"
    );
}

fn on_localstack(prefix: &str, node: &str, args: &[&str]) -> Run {
    let store = format!("s3://{}/{prefix}", common::BUCKET);
    Run(localstack_cmd(&store, node, args).output().unwrap())
}

fn localstack_cmd(store: &str, node: &str, args: &[&str]) -> Command {
    let mut c = common::cli::cairn(&std::env::temp_dir());
    c.stdin(std::process::Stdio::null())
        .env("AWS_ENDPOINT_URL", Backend::LocalStack.endpoint().unwrap())
        .args(["--store", store, "--node", node])
        .args(args);
    c
}

#[tokio::test]
async fn on_localstack_a_version_chain_node_does_not_split_a_prefix_that_lost_its_record() {
    if s3_skipped() {
        return;
    }
    let prefix = format!("t-{}", uuid::Uuid::new_v4());
    let store = format!("s3://{}/{prefix}", common::BUCKET);
    let mut holder = hold(localstack_cmd(
        &store,
        "holder",
        &["--strategy", "etag-cas", "lock", "hold", "L"],
    ));
    // A lifecycle rule, or `aws s3 rm`, deletes the record.
    let s3 = common::s3_store(&Backend::LocalStack.endpoint().unwrap());
    s3.delete(&Path::from(format!("{prefix}/_cairn/protocol.json")))
        .await
        .unwrap();

    // Today's main records the chain here and runs beside the holder (exit 0).
    let r = on_localstack(
        &prefix,
        "b",
        &[
            "--strategy",
            "version-chain",
            "lock",
            "run",
            "L",
            "-n",
            "--",
            "true",
        ],
    );
    let err = r.stderr();
    assert_eq!(r.code(), Some(2), "{err}");
    assert!(err.contains("locks/L/manifest.json"), "{err}");

    let err = on_localstack(
        &prefix,
        "ops",
        &["--strategy", "version-chain", "protocol", "recreate"],
    )
    .exits(2)
    .stderr();
    assert!(
        err.contains("cannot record the version-chain protocol"),
        "{err}"
    );
    let out = on_localstack(&prefix, "ops", &["protocol", "recreate"])
        .ok()
        .stdout();
    assert!(out.contains("recreated:  etag-cas"), "{out}");
    on_localstack(
        &prefix,
        "b",
        &[
            "--strategy",
            "version-chain",
            "lock",
            "run",
            "L",
            "-n",
            "--",
            "true",
        ],
    )
    .exits(2);
    on_localstack(&prefix, "b", &["lock", "run", "L", "-n", "--", "true"]).exits(75);
    holder.signal(libc::SIGTERM);
    assert_eq!(holder.wait(), Some(0), "{}", holder.stderr());
}
