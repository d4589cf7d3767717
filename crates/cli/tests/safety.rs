//! Safety holes found from outside, each shown closed: one protocol per prefix (mixed
//! strategies never split the fleet), and a protocol record that is never trusted blindly
//! nor overwritten.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;

use cairn::lock::{Acquire, LockOptions};
use cairn::manifest::Strategy;
use cairn::store::keys;
use cairn::{Cairn, Error, Name, StrategyChoice};
use common::{namespace, s3_skipped, Backend, Namespace};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

async fn build(ns: &Namespace, node: &str, choice: StrategyChoice) -> cairn::Result<Cairn> {
    Cairn::builder(Arc::clone(&ns.store))
        .prefix(ns.prefix.clone())
        .node(node)?
        .strategy(choice)
        .build()
        .await
}

/// The issue's scenario: a node on the version chain holds `shared`; a node on `auto` and
/// one on `etag-cas` (on a store that supports both) must not also acquire it.
async fn mixed_strategies_never_make_two_holders(ns: Namespace) {
    let name = Name::new("shared").unwrap();
    let chain = build(&ns, "chain", StrategyChoice::Fixed(Strategy::VersionChain))
        .await
        .unwrap();
    let locks = chain.locks(LockOptions::default()).unwrap();
    let Acquire::Held(lease) = locks.try_acquire(&name).await.unwrap() else {
        panic!("the first node must acquire");
    };

    let auto = build(&ns, "auto", StrategyChoice::Probe).await.unwrap();
    assert_eq!(
        auto.strategy(),
        Strategy::VersionChain,
        "auto adopts the record"
    );
    assert!(
        auto.capabilities().is_none(),
        "no probe when the record exists"
    );
    match auto
        .locks(LockOptions::default())
        .unwrap()
        .try_acquire(&name)
        .await
        .unwrap()
    {
        Acquire::Busy(b) => assert_eq!(b.holder, "chain"),
        Acquire::Held(_) => panic!("two holders of one lock"),
    }

    match build(&ns, "etag", StrategyChoice::Fixed(Strategy::EtagCas)).await {
        Err(Error::ProtocolMismatch {
            recorded,
            configured,
            recorded_by,
            ..
        }) => {
            assert_eq!(recorded, Strategy::VersionChain);
            assert_eq!(configured, Strategy::EtagCas);
            assert_eq!(recorded_by, "chain");
        }
        other => panic!("expected a protocol mismatch, got {other:?}"),
    }
    lease.release().await.unwrap();
}

#[tokio::test]
async fn mixed_strategies_never_make_two_holders_on_memory() {
    mixed_strategies_never_make_two_holders(namespace(Backend::Memory).await.unwrap()).await;
}

#[tokio::test]
async fn mixed_strategies_never_make_two_holders_on_localstack() {
    if let Some(ns) = namespace(Backend::LocalStack).await {
        mixed_strategies_never_make_two_holders(ns).await;
    }
}

#[tokio::test]
async fn etag_cas_on_a_store_without_if_match_is_refused_before_anything_is_recorded() {
    let ns = namespace(Backend::Fs).await.unwrap();
    match build(&ns, "n", StrategyChoice::Fixed(Strategy::EtagCas)).await {
        Err(Error::StoreRefused { detail, .. }) => {
            assert!(detail.contains("etag-cas"), "{detail}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The refused node recorded nothing: the next node decides, by its probe.
    let auto = build(&ns, "auto", StrategyChoice::Probe).await.unwrap();
    assert_eq!(auto.strategy(), Strategy::VersionChain);
}

#[tokio::test]
async fn racing_first_nodes_agree_on_one_protocol() {
    for round in 0..8u64 {
        let ns = namespace(Backend::Memory).await.unwrap();
        let ns = Arc::new(ns);
        let mut tasks = Vec::new();
        for i in 0..12u64 {
            let ns = Arc::clone(&ns);
            let choice = match (i + round) % 3 {
                0 => StrategyChoice::Probe,
                1 => StrategyChoice::Fixed(Strategy::EtagCas),
                _ => StrategyChoice::Fixed(Strategy::VersionChain),
            };
            tasks.push(tokio::spawn(async move {
                (choice, build(&ns, &format!("n{i}"), choice).await)
            }));
        }
        let mut strategies = std::collections::BTreeSet::new();
        for t in tasks {
            match t.await.unwrap() {
                (_, Ok(c)) => {
                    strategies.insert(c.strategy().to_string());
                }
                (StrategyChoice::Fixed(_), Err(Error::ProtocolMismatch { .. })) => {}
                (choice, Err(e)) => panic!("{choice:?}: {e}"),
            }
        }
        assert_eq!(
            strategies.len(),
            1,
            "one protocol per prefix: {strategies:?}"
        );
    }
}

/// Planted records: unparsable, foreign, and newer ones are typed errors and stay as they
/// were (never overwritten).
#[tokio::test]
async fn a_corrupt_or_newer_protocol_record_is_refused_and_left_alone() {
    for (bytes, want) in [
        (&b"{not json"[..], "Corrupt"),
        (
            &br#"{"format":7,"kind":"protocol","strategy":"quorum"}"#[..],
            "UnsupportedFormat",
        ),
        (&br#"{"format":1,"kind":"lock"}"#[..], "WrongKind"),
        (
            &br#"{"format":1,"kind":"protocol","strategy":"paxos"}"#[..],
            "Corrupt",
        ),
    ] {
        let ns = namespace(Backend::Memory).await.unwrap();
        let path = Path::from(format!("{}/{}", ns.prefix, keys::protocol()));
        ns.store
            .put(&path, PutPayload::from(bytes.to_vec()))
            .await
            .unwrap();
        let err = build(&ns, "n", StrategyChoice::Probe).await.unwrap_err();
        let got = format!("{err:?}");
        assert!(got.starts_with(want), "{want}: {got}");
        let kept = ns.store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(&kept[..], bytes, "the record must not be overwritten");
    }
}

fn cli(store: &str, node: &str) -> Command {
    let mut c = common::cli::cairn(&std::env::temp_dir());
    c.env("CAIRN_STORE", store)
        .env("CAIRN_NODE", node)
        .env("AWS_ENDPOINT_URL", Backend::LocalStack.endpoint().unwrap());
    c
}

/// The issue's reproduction with the release binary's commands, on LocalStack.
#[test]
fn cli_nodes_with_other_strategies_cannot_acquire_a_held_lock() {
    if s3_skipped() {
        return;
    }
    let store = format!("s3://{}/safety-{}", common::BUCKET, uuid::Uuid::new_v4());
    let mut holder = cli(&store, "chain")
        .args([
            "--strategy",
            "version-chain",
            "lock",
            "run",
            "shared",
            "--",
            "sleep",
            "30",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut held = false;
    for _ in 0..300 {
        let out = cli(&store, "viewer")
            .args(["--json", "lock", "show", "shared"])
            .output()
            .unwrap();
        if out.status.success()
            && serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["state"] == "held"
        {
            held = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(held, "the version-chain node never held the lock");

    let etag = cli(&store, "etag")
        .args([
            "--strategy",
            "etag-cas",
            "lock",
            "run",
            "shared",
            "--wait",
            "0",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&etag.stderr);
    assert_eq!(etag.status.code(), Some(2), "{err}");
    assert!(err.contains("version-chain protocol"), "{err}");

    let auto = cli(&store, "auto")
        .args(["lock", "run", "shared", "--wait", "0", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(
        auto.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&auto.stderr)
    );
    holder.kill().unwrap();
    let _ = holder.wait();
}

#[test]
fn cli_etag_cas_on_the_local_filesystem_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file://{}", dir.path().display());
    let out = cli(&store, "n")
        .args([
            "--strategy",
            "etag-cas",
            "lock",
            "run",
            "x",
            "--wait",
            "0",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(err.contains("does not support"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Numbers read from the bucket: planted turn and lock records never panic, wrap or hang.
// ---------------------------------------------------------------------------------------

/// Writes `body` as version `version` of the `kind` manifest at `base` (etag CAS layout),
/// as a foreign or corrupt writer would.
async fn plant(
    ns: &Namespace,
    kind: &str,
    base: &keys::Key,
    version: u64,
    body: serde_json::Value,
) {
    let doc = serde_json::json!({
        "format": 1, "kind": kind, "version": version, "write_id": "planted",
        "written_by": "planter", "written_at": "2026-01-01T00:00:00Z", "body": body,
    });
    let path = Path::from(format!("{}/{}", ns.prefix, keys::etag_object(base)));
    ns.store
        .put(&path, PutPayload::from(serde_json::to_vec(&doc).unwrap()))
        .await
        .unwrap();
}

fn turn_body(window_ms: u64, jitter_ms: u64, started_at: &str) -> serde_json::Value {
    serde_json::json!({
        "turn": 3, "holder": "planter", "session": "s", "window_ms": window_ms,
        "jitter_ms": jitter_ms, "started_at": started_at, "finished_at": null, "outcome": null,
    })
}

#[tokio::test]
async fn planted_turn_timings_are_corrupt_errors_not_panics_or_always_due() {
    let huge_start = "+262142-12-31T23:59:59Z";
    for (window_ms, jitter_ms, started_at) in [
        (u64::MAX, 0, "2026-01-01T00:00:00Z"), // wrapped to -1 ms: always due
        (i64::MAX as u64 - 1, 0, "2026-01-01T00:00:00Z"), // chrono's + panicked
        (300_000, 30_000, huge_start),         // started_at near chrono's maximum
        (1_000, 900, "2026-01-01T00:00:00Z"),  // jitter above half the window
        (0, 0, "2026-01-01T00:00:00Z"),        // zero window
    ] {
        let ns = namespace(Backend::Memory).await.unwrap();
        let c = build(&ns, "n", StrategyChoice::Probe).await.unwrap();
        let name = Name::new("expiry").unwrap();
        let base = keys::manifest(keys::Family::Turn, &name);
        plant(
            &ns,
            "turn",
            &base,
            5,
            turn_body(window_ms, jitter_ms, started_at),
        )
        .await;
        let turns = c.turns(cairn::turn::TurnOptions {
            adopt_stored: true,
            ..Default::default()
        });
        let what = format!("window {window_ms} jitter {jitter_ms} started {started_at}");
        assert!(
            matches!(turns.get(&name).await, Err(Error::Corrupt { .. })),
            "{what}"
        );
        assert!(
            matches!(turns.list().await, Err(Error::Corrupt { .. })),
            "{what}"
        );
        match turns.try_claim(&name).await {
            Err(Error::Corrupt { key, .. }) => assert!(key.contains("expiry"), "{key}"),
            other => panic!("{what}: expected Corrupt, got {other:?}"),
        }
        // Nothing was overwritten.
        let path = Path::from(format!("{}/{}", ns.prefix, keys::etag_object(&base)));
        let kept = ns.store.get(&path).await.unwrap().bytes().await.unwrap();
        assert!(String::from_utf8_lossy(&kept).contains("planted"));
    }
}

#[tokio::test]
async fn a_turn_at_the_last_number_fails_typed_instead_of_wrapping() {
    let ns = namespace(Backend::Memory).await.unwrap();
    let c = build(&ns, "n", StrategyChoice::Probe).await.unwrap();
    let name = Name::new("expiry").unwrap();
    let base = keys::manifest(keys::Family::Turn, &name);
    let mut body = turn_body(1_000, 0, "2026-01-01T00:00:00Z");
    body["turn"] = u64::MAX.into();
    plant(&ns, "turn", &base, 5, body).await;
    let turns = c.turns(cairn::turn::TurnOptions {
        adopt_stored: true,
        ..Default::default()
    });
    assert!(matches!(
        turns.try_claim(&name).await,
        Err(Error::Exhausted { .. })
    ));
}

fn lock_body(ttl_ms: u64, expires_at: &str) -> serde_json::Value {
    serde_json::json!({
        "state": "held", "holder": "planter", "session": "s", "fencing_token": 4,
        "ttl_ms": ttl_ms, "acquired_at": "2026-01-01T00:00:00Z",
        "renewed_at": "2026-01-01T00:00:00Z", "expires_at": expires_at,
    })
}

#[tokio::test(start_paused = true)]
async fn planted_lock_times_never_panic_and_far_future_leases_just_stay_busy() {
    let ns = namespace(Backend::Memory).await.unwrap();
    let c = build(&ns, "n", StrategyChoice::Probe).await.unwrap();
    let locks = c.locks(LockOptions::default()).unwrap();
    let name = Name::new("job").unwrap();
    let base = keys::manifest(keys::Family::Lock, &name);
    // An expiry near chrono's maximum: busy, and a bounded wait returns Busy, no panic.
    plant(
        &ns,
        "lock",
        &base,
        4,
        lock_body(30_000, "+262142-12-31T23:59:59Z"),
    )
    .await;
    assert!(matches!(
        locks.try_acquire(&name).await.unwrap(),
        Acquire::Busy(_)
    ));
    let waited = locks
        .acquire(&name, Some(std::time::Duration::from_secs(2)))
        .await
        .unwrap();
    assert!(matches!(waited, Acquire::Busy(_)));
    assert!(locks.list().await.is_ok());
    // A ttl no lease may have: corrupt, named, not a wait of 584 million years.
    plant(
        &ns,
        "lock",
        &base,
        4,
        lock_body(u64::MAX, "2026-01-01T00:00:00Z"),
    )
    .await;
    match locks
        .acquire(&name, Some(std::time::Duration::from_secs(2)))
        .await
    {
        Err(Error::Corrupt { reason, .. }) => assert!(reason.contains("ttl_ms"), "{reason}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn a_lock_at_the_last_version_refuses_instead_of_handing_out_token_0() {
    let ns = namespace(Backend::Memory).await.unwrap();
    let c = build(&ns, "n", StrategyChoice::Probe).await.unwrap();
    let locks = c.locks(LockOptions::default()).unwrap();
    let name = Name::new("job").unwrap();
    let base = keys::manifest(keys::Family::Lock, &name);
    let mut body = lock_body(30_000, "2026-01-01T00:00:00Z");
    body["state"] = "released".into();
    plant(&ns, "lock", &base, u64::MAX, body).await;
    assert!(matches!(
        locks.try_acquire(&name).await,
        Err(Error::Exhausted { .. })
    ));
}

#[test]
fn cli_turn_views_on_a_planted_window_exit_1_with_the_key_not_101() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file://{}", dir.path().display());
    // Create the turn through cairn, then corrupt its window as a foreign writer would.
    let ok = cli(&store, "n")
        .args(["turn", "run", "y", "--every", "1h", "--", "true"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // The turn's newest version: the highest slot (versions number from a floor).
    let folder = dir.path().join("turns/y/v");
    let mut slots: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    slots.sort();
    let v = slots.pop().unwrap();
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&v).unwrap()).unwrap();
    doc["body"]["window_ms"] = u64::MAX.into();
    std::fs::write(&v, serde_json::to_vec(&doc).unwrap()).unwrap();
    for args in [
        &["turn", "show", "y"][..],
        &["turn", "run", "y", "--", "true"],
    ] {
        let out = cli(&store, "n").args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("turns/y") && err.contains("window_ms"),
            "{args:?}: {err}"
        );
    }
    // A listing shows the turn's row as unreadable, with the key and why, and exits 65.
    let out = cli(&store, "n").args(["turn", "ls"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(65), "{text}");
    let row = text.lines().find(|l| l.starts_with('y')).unwrap();
    assert!(
        row.contains("unreadable") && row.contains("turns/y") && row.contains("window_ms"),
        "{row}"
    );
}

// ---------------------------------------------------------------------------------------
// The holder stops first: a broken holder whose COMMAND traps SIGTERM is dead before the
// next holder starts.
// ---------------------------------------------------------------------------------------

fn stamps(log: &std::path::Path, who: &str) -> Vec<u128> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix(who)?.trim().parse().ok())
        .collect()
}

#[test]
fn a_broken_holder_that_ignores_sigterm_is_dead_before_the_next_holder_starts() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file://{}/store", dir.path().display());
    let log = dir.path().join("log");
    let writer = |who: &str| {
        format!(
            "trap '' TERM; while true; do echo \"{who} $(date +%s%N)\" >> {log}; sleep 0.05; done",
            log = log.display()
        )
    };
    let mut a = cli(&store, "a")
        .args([
            "lock", "run", "job", "--ttl", "6s", "--grace", "2s", "--", "sh", "-c",
        ])
        .arg(writer("A"))
        .spawn()
        .unwrap();
    for _ in 0..400 {
        if !stamps(&log, "A").is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(!stamps(&log, "A").is_empty(), "A never ran");
    let mut b = cli(&store, "b")
        .args([
            "lock", "run", "job", "--ttl", "6s", "--grace", "2s", "--wait", "60s", "--",
        ])
        .args([
            "sh",
            "-c",
            &format!("echo \"B $(date +%s%N)\" >> {}", log.display()),
        ])
        .spawn()
        .unwrap();
    let shown = cli(&store, "operator")
        .args(["--json", "lock", "show", "job"])
        .output()
        .unwrap();
    let token = serde_json::from_slice::<serde_json::Value>(&shown.stdout).unwrap()
        ["fencing_token"]
        .to_string();
    let broke = cli(&store, "operator")
        .args(["lock", "break", "job", "--token", &token, "--force"])
        .output()
        .unwrap();
    assert!(
        broke.status.success(),
        "{}",
        String::from_utf8_lossy(&broke.stderr)
    );
    let a_status = a.wait().unwrap();
    assert_eq!(a_status.code(), Some(76), "the broken holder exits 76");
    assert!(b.wait().unwrap().success());
    let (last_a, first_b) = (
        *stamps(&log, "A").iter().max().unwrap(),
        *stamps(&log, "B").iter().min().expect("B ran"),
    );
    assert!(
        last_a < first_b,
        "A wrote {} ms after B started",
        (last_a - first_b) / 1_000_000
    );
    let shown = cli(&store, "viewer")
        .args(["--json", "lock", "show", "job"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(v["holder"], "b", "{v}");
}

#[test]
fn a_paused_holder_s_command_is_stopped_before_another_node_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file://{}/store", dir.path().display());
    let log = dir.path().join("log");
    let mut a = cli(&store, "a")
        .args([
            "lock", "run", "job", "--ttl", "6s", "--grace", "1s", "--", "sh", "-c",
        ])
        .arg(format!(
            "trap '' TERM; while true; do echo \"A $(date +%s%N)\" >> {}; sleep 0.05; done",
            log.display()
        ))
        .spawn()
        .unwrap();
    for _ in 0..400 {
        if !stamps(&log, "A").is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(!stamps(&log, "A").is_empty(), "A never ran");
    // Freeze the holder's cairn: no renewals, no signals from it. Its COMMAND keeps running.
    let pid = a.id() as libc::pid_t;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let b = cli(&store, "b")
        .args([
            "lock", "run", "job", "--ttl", "6s", "--grace", "1s", "--wait", "60s", "--",
        ])
        .args([
            "sh",
            "-c",
            &format!("echo \"B $(date +%s%N)\" >> {}", log.display()),
        ])
        .output()
        .unwrap();
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert_eq!(
        a.wait().unwrap().code(),
        Some(76),
        "the paused holder lost its lease"
    );
    let (last_a, first_b) = (
        *stamps(&log, "A").iter().max().unwrap(),
        *stamps(&log, "B").iter().min().expect("B ran"),
    );
    assert!(
        last_a < first_b,
        "A's command wrote {} ms after B started",
        (last_a - first_b) / 1_000_000
    );
}

/// Every coordination verb on a prefix that has its protocol record: acquire and release,
/// a turn, a stream, a record, a heartbeat.
async fn coordinate_once(c: &Cairn) {
    let name = Name::new("iam").unwrap();
    let locks = c.locks(LockOptions::default()).unwrap();
    let Acquire::Held(lease) = locks.try_acquire(&name).await.unwrap() else {
        panic!("nobody else holds it")
    };
    lease.release().await.unwrap();
    let turns = c.turns(cairn::turn::TurnOptions::default());
    let ran = turns.run_once(&name, |_| async { Ok(None) }).await.unwrap();
    assert!(
        matches!(
            ran,
            cairn::turn::RunOnce::Ran { .. } | cairn::turn::RunOnce::NotDue { .. }
        ),
        "{ran:?}"
    );
    let created = c
        .streams()
        .create(&name, serde_json::json!({}))
        .await
        .unwrap();
    assert!(!matches!(created, cairn::stream::Create::Conflict(_)));
    let _put = c
        .records()
        .put_if_newer(&name, &name, 1, serde_json::json!("v"))
        .await
        .unwrap();
    let member = c
        .nodes(cairn::node::NodeOptions::default())
        .join()
        .await
        .unwrap();
    member.leave().await.unwrap();
}

/// The coordination path never deletes: a node needs no `s3:DeleteObject` (docs/STORES.md, "Permissions").
/// Once the prefix has its record no node probes, and the first node's probe deletes its
/// scratch object only as a courtesy: a store that refuses every DELETE still gets its record
/// and coordinates.
async fn coordination_sends_no_delete(ns: Namespace) {
    use cairn::store::fault::{Fault, FaultStore, Op, Rule};
    let first = Arc::new(FaultStore::new(Arc::clone(&ns.store), 1));
    first.add(Rule::always(Op::Delete, "", Fault::Status(403)));
    let c = Cairn::builder(first.clone())
        .prefix(ns.prefix.clone())
        .node("first")
        .unwrap()
        .build()
        .await
        .expect("a store that refuses DELETE still gets its protocol record");
    assert!(c.protocol().is_some());
    assert!(
        first.counts().faults >= 1,
        "the probe's courtesy DELETE was refused"
    );
    coordinate_once(&c).await;

    let later = Arc::new(FaultStore::new(Arc::clone(&ns.store), 2));
    let c = Cairn::builder(later.clone())
        .prefix(ns.prefix.clone())
        .node("later")
        .unwrap()
        .build()
        .await
        .unwrap();
    assert!(
        c.capabilities().is_none(),
        "no probe once the record exists"
    );
    coordinate_once(&c).await;
    assert_eq!(later.counts().deletes, 0, "{:?}", later.counts());
    assert_eq!(later.counts().faults, 0);
}

#[tokio::test]
async fn coordination_sends_no_delete_on_memory() {
    let Some(ns) = namespace(Backend::Memory).await else {
        return;
    };
    coordination_sends_no_delete(ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordination_sends_no_delete_on_localstack() {
    let Some(ns) = namespace(Backend::LocalStack).await else {
        return;
    };
    coordination_sends_no_delete(ns).await;
}
