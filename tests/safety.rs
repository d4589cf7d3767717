//! Safety holes found from outside, each shown closed: one protocol per prefix (mixed
//! strategies never split the fleet), and a protocol record that is never trusted blindly
//! nor overwritten.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;

use cairn::lease::{Acquired, LeaseOptions};
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
    let locks = chain.locks(LeaseOptions::default()).unwrap();
    let Acquired::Acquired(lease) = locks.try_acquire(&name).await.unwrap() else {
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
        .locks(LeaseOptions::default())
        .unwrap()
        .try_acquire(&name)
        .await
        .unwrap()
    {
        Acquired::Busy(b) => assert_eq!(b.holder, "chain"),
        Acquired::Acquired(_) => panic!("two holders of one lock"),
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
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.env("CAIRN_STORE", store)
        .env("CAIRN_NODE", node)
        .env_remove("CAIRN_STRATEGY")
        .env("AWS_ENDPOINT_URL", Backend::LocalStack.endpoint().unwrap())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
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
