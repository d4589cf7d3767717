//! The prefix's format (`PROTOCOL_FORMAT`, docs/GUARANTEES.md "Formats"): a prefix created
//! by this build keeps its nodes under `nodes/` as the kind `node` (format 2); a prefix
//! created by a build of format 1 keeps them under `members/` as the kind `member`, and this
//! build reads and writes them there, so old and new builds on one prefix see the same nodes.
//! A newer format is refused at open, the operator's re-creation of a deleted record keeps the
//! format the objects show, and a running node stops when the record moves its nodes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cairn::node::{Health, HeartbeatEnd, NodeOptions};
use cairn::store::keys::Family;
use cairn::store::protocol::{ProtocolRecord, WatchOptions, PROTOCOL_FORMAT};
use cairn::store::WriteId;
use cairn::{Cairn, Error, Strategy, StrategyChoice};
use common::{namespace, Backend};
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::Value;

/// The protocol record and a node's record exactly as a build of format 1 wrote them (the
/// `cairn` binary of 5367879, `node heartbeat` for 2.5 s on a `file://` prefix, so the
/// version chain; the node joined, beat twice, and left).
const FORMAT_1_PROTOCOL: &str = include_str!("fixtures/format1/protocol.json");
const FORMAT_1_MEMBER: [(&str, &str); 4] = [
    (
        "00000000000000000001.json",
        include_str!("fixtures/format1/members/old-build/v/00000000000000000001.json"),
    ),
    (
        "00001839668776094721.json",
        include_str!("fixtures/format1/members/old-build/v/00001839668776094721.json"),
    ),
    (
        "00001839668776094722.json",
        include_str!("fixtures/format1/members/old-build/v/00001839668776094722.json"),
    ),
    (
        "00001839668776094723.json",
        include_str!("fixtures/format1/members/old-build/v/00001839668776094723.json"),
    ),
];

/// The old build's prefix, as it left it, at `prefix`.
async fn plant_format_1(store: &Arc<dyn ObjectStore>, prefix: &str) {
    put(
        store,
        &format!("{prefix}/_cairn/protocol.json"),
        FORMAT_1_PROTOCOL,
    )
    .await;
    for (name, body) in FORMAT_1_MEMBER {
        put(store, &format!("{prefix}/members/old-build/v/{name}"), body).await;
    }
}

/// Every object key under `prefix`, relative to it.
async fn keys_under(store: &Arc<dyn ObjectStore>, prefix: &str) -> Vec<String> {
    let listed: Vec<_> = store
        .list(Some(&Path::from(prefix)))
        .try_collect()
        .await
        .unwrap();
    let mut keys: Vec<String> = listed
        .into_iter()
        .map(|m| {
            m.location.as_ref()[prefix.len()..]
                .trim_start_matches('/')
                .to_string()
        })
        .collect();
    keys.sort();
    keys
}

async fn get_json(store: &Arc<dyn ObjectStore>, path: &str) -> Value {
    let bytes = store
        .get(&Path::from(path))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn put(store: &Arc<dyn ObjectStore>, path: &str, body: &str) {
    store
        .put(&Path::from(path), PutPayload::from(body.to_string()))
        .await
        .unwrap();
}

/// The backends each format is tried on: both local ones and two S3 servers.
const BACKENDS: [Backend; 4] = [
    Backend::Memory,
    Backend::Fs,
    Backend::LocalStack,
    Backend::Rgw,
];

/// Takes the lock `l` and releases it: objects under `locks/`, which sorts before the folders
/// nodes heartbeat in.
async fn take_a_lock(c: &Cairn) {
    let locks = c.locks(cairn::LockOptions::default()).unwrap();
    let name = cairn::Name::new("l").unwrap();
    match locks.try_acquire(&name).await.unwrap() {
        cairn::Acquire::Held(l) => l.release().await.unwrap(),
        cairn::Acquire::Busy(b) => panic!("busy: {b:?}"),
    }
}

/// `c` joins (its first heartbeat) and leaves.
async fn beat_once(c: &Cairn) {
    let beat = c.nodes(NodeOptions::default()).join().await.unwrap();
    beat.leave().await.unwrap();
}

/// The nodes `c` lists, by name.
async fn node_names(c: &Cairn) -> Vec<String> {
    let listed = c.nodes(NodeOptions::default()).list().await.unwrap();
    let mut names: Vec<String> = listed.into_iter().map(|s| s.node).collect();
    names.sort();
    names
}

/// Node `a` on prefix `p`, checking the record at most every 5 s (1 s before a create).
fn watching(store: &Arc<dyn ObjectStore>) -> cairn::CairnBuilder {
    Cairn::builder(Arc::clone(store))
        .prefix("p")
        .node("a")
        .unwrap()
        .protocol_watch(WatchOptions {
            every: Duration::from_secs(5),
            before_create: Duration::from_secs(1),
        })
}

/// Writes a protocol record for `strategy` at `format` over `prefix`'s, as another build (or
/// an intruder) would.
async fn plant_record(store: &Arc<dyn ObjectStore>, prefix: &str, strategy: Strategy, format: u32) {
    let record = ProtocolRecord::new(
        strategy,
        "intruder",
        chrono::Utc::now(),
        None,
        WriteId::new("intruder-1"),
    )
    .with_format(format);
    store
        .put(
            &Path::from(format!("{prefix}/_cairn/protocol.json")),
            PutPayload::from(serde_json::to_vec(&record).unwrap()),
        )
        .await
        .unwrap();
}

/// [`watching`], built on etag CAS: no field of the record but the one a test rewrites (not
/// the chain's `gc_min_age`) can differ.
async fn watching_etag(store: &Arc<dyn ObjectStore>) -> Cairn {
    watching(store)
        .strategy(StrategyChoice::Fixed(Strategy::EtagCas))
        .build()
        .await
        .unwrap()
}

/// The operator's `cairn protocol recreate` on `prefix`.
async fn recreate(store: &Arc<dyn ObjectStore>, prefix: &str) -> Cairn {
    Cairn::builder(Arc::clone(store))
        .prefix(prefix)
        .node("operator")
        .unwrap()
        .recreate_protocol()
        .build()
        .await
        .unwrap()
}

/// A lifecycle rule (or an operator) deletes the prefix's protocol record.
async fn delete_record(store: &Arc<dyn ObjectStore>, prefix: &str) {
    let path = Path::from(format!("{prefix}/_cairn/protocol.json"));
    store.delete(&path).await.unwrap();
}

async fn open(store: &Arc<dyn ObjectStore>, prefix: &str, node: &str) -> cairn::Result<Cairn> {
    Cairn::builder(Arc::clone(store))
        .prefix(prefix)
        .node(node)?
        .build()
        .await
}

/// That a node's records were written under `written` (a node's folder), each of kind `kind`,
/// and nothing under `never`.
async fn assert_kept(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    written: &str,
    kind: &str,
    never: &str,
    ctx: &str,
) {
    let keys = keys_under(store, prefix).await;
    let mine: Vec<&String> = keys.iter().filter(|k| k.starts_with(written)).collect();
    assert!(!mine.is_empty(), "{ctx}: nothing under {written}: {keys:?}");
    assert!(
        !keys.iter().any(|k| k.starts_with(never)),
        "{ctx}: {keys:?}"
    );
    for key in mine {
        let doc = get_json(store, &format!("{prefix}/{key}")).await;
        assert_eq!(doc["kind"], kind, "{ctx}: {key}");
    }
}

#[tokio::test]
async fn a_new_prefix_is_of_the_newest_format_and_keeps_its_nodes_under_nodes() {
    for backend in BACKENDS {
        let Some(ns) = namespace(backend).await else {
            continue;
        };
        for &strategy in backend.strategies() {
            let prefix = format!("{}/{strategy}", ns.prefix);
            let ctx = format!("{backend:?}/{strategy}");
            let c = Cairn::builder(Arc::clone(&ns.store))
                .prefix(&prefix)
                .node("a")
                .unwrap()
                .strategy(StrategyChoice::Fixed(strategy))
                .build()
                .await
                .unwrap();
            assert_eq!(c.protocol().unwrap().format, PROTOCOL_FORMAT, "{ctx}");
            assert_eq!(c.protocol().unwrap().node_family(), Family::Node, "{ctx}");
            let beat = c.nodes(NodeOptions::default()).join().await.unwrap();
            let listed = c.nodes(NodeOptions::default()).list().await.unwrap();
            assert_eq!(listed.len(), 1, "{ctx}: {listed:?}");
            assert_eq!(listed[0].node, "a", "{ctx}");
            beat.leave().await.unwrap();
            assert_kept(&ns.store, &prefix, "nodes/a/", "node", "members/", &ctx).await;
        }
    }
}

/// On a prefix of format 2 (builds before numbers were drawn from time) a fencing token is the
/// version it was acquired at, as those builds number it: one of them acquires next at the
/// version + 1, so a drawn token above that would make the tokens go back. On this build's
/// format the token after a release, 10 s later, is drawn from time, far above the version + 1.
/// Memory and the filesystem, each with the nodes' clock as the store's.
#[tokio::test]
async fn a_prefix_of_format_2_numbers_tokens_by_the_version_as_its_builds_do() {
    let dir = tempfile::tempdir().unwrap();
    let backends: [(&str, Arc<dyn ObjectStore>); 2] = [
        ("memory", Arc::new(InMemory::new())),
        (
            "fs",
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap()),
        ),
    ];
    for (backend, raw) in backends {
        for strategy in [Strategy::EtagCas, Strategy::VersionChain] {
            if backend == "fs" && strategy == Strategy::EtagCas {
                continue;
            }
            for format in [2, PROTOCOL_FORMAT] {
                let ctx = format!("{backend}/{strategy}/format {format}");
                let prefix = format!("{strategy}-{format}");
                let clock = Arc::new(cairn::TestClock::new(chrono::Utc::now()));
                let store: Arc<dyn ObjectStore> = Arc::new(
                    cairn::store::fault::FaultStore::stamped(Arc::clone(&raw), 0, clock.clone()),
                );
                plant_record(&store, &prefix, strategy, format).await;
                let c = Cairn::builder(Arc::clone(&store))
                    .prefix(&prefix)
                    .node("a")
                    .unwrap()
                    .clock(clock.clone())
                    .build()
                    .await
                    .unwrap();
                assert_eq!(c.protocol().unwrap().format, format, "{ctx}");
                let locks = c.locks(cairn::LockOptions::default()).unwrap();
                let name = cairn::Name::new("l").unwrap();
                let mut tokens = Vec::new();
                for round in 0..2 {
                    // Past the 5 s a drawn number stays behind the floor of now.
                    clock.set_skew(chrono::Duration::seconds(10 * round));
                    let cairn::Acquire::Held(l) = locks.try_acquire(&name).await.unwrap() else {
                        panic!("{ctx}: a free lock")
                    };
                    tokens.push((l.fencing_token().0, l.info().version));
                    l.release().await.unwrap();
                }
                let [(first, first_version), (second, second_version)] = tokens[..] else {
                    unreachable!()
                };
                // A new lock starts at a floor, its token the version, on every format.
                assert_eq!(first, first_version, "{ctx}");
                assert_eq!(second_version, first_version + 2, "{ctx}: acquire, release");
                if format == 2 {
                    assert_eq!(
                        second, second_version,
                        "{ctx}: the version it was acquired at"
                    );
                } else {
                    assert!(
                        second > second_version,
                        "{ctx}: {second} is not drawn from time"
                    );
                }
            }
        }
    }
}

/// A prefix a build of format 1 created, with a node record it wrote: this build lists that
/// node, and heartbeats beside it under `members/` as the kind `member`, never under
/// `nodes/`.
#[tokio::test]
async fn a_prefix_of_format_1_keeps_its_nodes_under_members() {
    for backend in BACKENDS {
        let Some(ns) = namespace(backend).await else {
            continue;
        };
        let prefix = ns.prefix.clone();
        plant_format_1(&ns.store, &prefix).await;
        let c = open(&ns.store, &prefix, "new-build").await.unwrap();
        let record = c.protocol().unwrap();
        assert_eq!(
            (record.format, record.strategy, record.node_family()),
            (1, Strategy::VersionChain, Family::Member),
            "{backend:?}"
        );
        let nodes = c.nodes(NodeOptions::default());
        let beat = nodes.join().await.unwrap();
        let listed = nodes.list().await.unwrap();
        let names: Vec<&str> = listed.iter().map(|s| s.node.as_str()).collect();
        assert_eq!(names, ["new-build", "old-build"], "{backend:?}: {listed:?}");
        // The old build's node left long ago; ours heartbeats.
        let old = &listed[1];
        assert!(
            old.left && old.health == Health::Offline,
            "{backend:?}: {old:?}"
        );
        beat.leave().await.unwrap();
        let ctx = format!("{backend:?}");
        assert_kept(
            &ns.store,
            &prefix,
            "members/new-build/v/",
            "member",
            "nodes/",
            &ctx,
        )
        .await;
        // The record is left as the old build wrote it.
        let stored = get_json(&ns.store, &format!("{prefix}/_cairn/protocol.json")).await;
        let planted: Value = serde_json::from_str(FORMAT_1_PROTOCOL).unwrap();
        assert_eq!(stored, planted, "{backend:?}");
    }
}

#[tokio::test]
async fn a_prefix_of_a_newer_format_is_refused_and_left_alone() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut newer: Value = serde_json::from_str(FORMAT_1_PROTOCOL).unwrap();
    newer["format"] = Value::from(PROTOCOL_FORMAT + 1);
    let body = newer.to_string();
    put(&store, "p/_cairn/protocol.json", &body).await;
    match open(&store, "p", "a").await {
        Err(Error::UnsupportedFormat {
            found, supported, ..
        }) => assert_eq!((found, supported), (PROTOCOL_FORMAT + 1, PROTOCOL_FORMAT)),
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
    let stored = store
        .get(&Path::from("p/_cairn/protocol.json"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(stored, body.as_bytes(), "never overwritten");
    assert_eq!(keys_under(&store, "p").await, ["_cairn/protocol.json"]);
}

/// `recreate_protocol` on a prefix whose record was deleted keeps the format its objects
/// show: 1 where nodes heartbeat under `members/`, else this build's.
#[tokio::test]
async fn recreating_a_deleted_record_keeps_the_format_the_objects_show() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    // Format 1: the old build's prefix, its record deleted (a lifecycle rule).
    plant_format_1(&store, "old").await;
    delete_record(&store, "old").await;
    match open(&store, "old", "a").await {
        Err(Error::ProtocolRecordMissing { found, .. }) => {
            assert!(found.starts_with("members/old-build/"), "{found}")
        }
        other => panic!("expected ProtocolRecordMissing, got {other:?}"),
    }
    let repaired = recreate(&store, "old").await;
    let record = repaired.protocol().unwrap();
    assert_eq!(
        (record.format, record.strategy),
        (1, Strategy::VersionChain)
    );
    assert_eq!(node_names(&repaired).await, ["old-build"]);

    // No node record left (none ever heartbeated, or gc forgot them all): the objects cannot
    // tell, and this build's format keeps its running nodes coordinating across the repair
    // (tests/protocol_record.rs holds a lock across it).
    let c = open(&store, "quiet", "a").await.unwrap();
    take_a_lock(&c).await;
    delete_record(&store, "quiet").await;
    let repaired = recreate(&store, "quiet").await;
    assert_eq!(repaired.protocol().unwrap().format, PROTOCOL_FORMAT);
    assert_eq!(repaired.protocol().unwrap().node_family(), Family::Node);

    // Format 2: this build's prefix, with a node under `nodes/`.
    let c = open(&store, "new", "a").await.unwrap();
    beat_once(&c).await;
    delete_record(&store, "new").await;
    let repaired = recreate(&store, "new").await;
    assert_eq!(repaired.protocol().unwrap().format, PROTOCOL_FORMAT);
    assert_eq!(
        repaired
            .nodes(NodeOptions::default())
            .list()
            .await
            .unwrap()
            .len(),
        1
    );
}

/// A record rewritten at another format (same strategy) moves the nodes: a running node
/// that kept heartbeating where it was would vanish from every new view, so it stops
/// coordinating (`ProtocolChanged`) as for another strategy.
#[tokio::test(start_paused = true)]
async fn a_running_node_stops_when_the_record_moves_its_nodes() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let a = watching_etag(&store).await;
    let strategy = a.strategy();
    assert_eq!(strategy, Strategy::EtagCas);
    plant_record(&store, "p", strategy, 1).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    match a.nodes(NodeOptions::default()).join().await {
        Err(Error::ProtocolChanged { known, now, .. }) => {
            assert_eq!(known, strategy);
            assert!(
                now.contains("format 1")
                    && now.contains("intruder")
                    && now.contains(&format!("at format {PROTOCOL_FORMAT}, under nodes/")),
                "{now}"
            );
        }
        other => panic!("expected ProtocolChanged, got {other:?}"),
    }
}

/// A heartbeating node whose prefix's record is rewritten at another format (here format 2:
/// the same folder for nodes, another numbering) stops heartbeating and says why
/// (`HeartbeatEnd::ProtocolChanged`), instead of failing every beat quietly while views lose
/// it; and the end converts to the error the CLI reports.
#[tokio::test(start_paused = true)]
async fn a_heartbeating_node_stops_when_the_record_changes_and_says_why() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let a = watching_etag(&store).await;
    let hb = a.nodes(NodeOptions::default()).join().await.unwrap();
    plant_record(&store, "p", Strategy::EtagCas, 2).await;
    let end = tokio::time::timeout(Duration::from_secs(60), hb.ended())
        .await
        .expect("the heartbeater stops within a minute");
    match end.clone() {
        HeartbeatEnd::ProtocolChanged { known, now, .. } => {
            assert_eq!(known, Strategy::EtagCas);
            assert!(
                now.contains("format 2") && now.contains("intruder"),
                "{now}"
            );
        }
        other => panic!("expected ProtocolChanged, got {other:?}"),
    }
    assert!(matches!(
        end.into_error(hb.node()),
        Error::ProtocolChanged { .. }
    ));
}

/// A held lease whose prefix's record is rewritten at another format is lost at its next
/// renewal, not at its deadline: no renewal can be written any more, and its command should
/// stop at once (`LossReason::Unavailable`, naming the change).
#[tokio::test(start_paused = true)]
async fn a_held_lease_is_lost_at_once_when_the_record_changes() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let a = watching_etag(&store).await;
    let locks = a.locks(cairn::LockOptions::default()).unwrap();
    let cairn::Acquire::Held(lease) = locks
        .try_acquire(&cairn::Name::new("l").unwrap())
        .await
        .unwrap()
    else {
        panic!("a free lock")
    };
    let deadline = lease.deadline();
    plant_record(&store, "p", Strategy::EtagCas, 2).await;
    let reason = tokio::time::timeout(Duration::from_secs(60), lease.lost())
        .await
        .expect("the lease ends within a minute");
    assert!(
        tokio::time::Instant::now() < deadline,
        "lost at its deadline, not at the renewal that met the change"
    );
    match reason {
        cairn::LossReason::Unavailable { error } => {
            assert!(error.contains("protocol record"), "{error}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// An observer (the CLI's `status`, `node ls`, `doctor`) of a prefix whose record is gone
/// reads nodes where the objects show them, even when its bounded look at the prefix stopped
/// at an earlier folder (`locks/` sorts before `members/`).
#[tokio::test]
async fn an_observer_without_a_record_reads_nodes_where_the_objects_show_them() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    for (prefix, format) in [("old", 1), ("new", PROTOCOL_FORMAT)] {
        if format == 1 {
            plant_format_1(&store, prefix).await;
        }
        let c = open(&store, prefix, "worker").await.unwrap();
        assert_eq!(c.protocol().unwrap().format, format);
        take_a_lock(&c).await;
        beat_once(&c).await;
        delete_record(&store, prefix).await;
        let observer = Cairn::builder(Arc::clone(&store))
            .prefix(prefix)
            .node("observer")
            .unwrap()
            .observer()
            .build()
            .await
            .unwrap();
        assert!(observer.protocol().is_none(), "{prefix}");
        let names = node_names(&observer).await;
        let expected: &[&str] = if format == 1 {
            &["old-build", "worker"]
        } else {
            &["worker"]
        };
        assert_eq!(names, expected, "{prefix}");
    }
}

/// A running node that finds the record of a format-1 prefix gone re-creates it as it knew
/// it, at format 1: builds of format 1 keep coordinating beside it.
#[tokio::test(start_paused = true)]
async fn a_running_node_recreates_a_vanished_record_at_its_format() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    plant_format_1(&store, "p").await;
    let a = watching(&store).build().await.unwrap();
    delete_record(&store, "p").await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    beat_once(&a).await;
    let stored = get_json(&store, "p/_cairn/protocol.json").await;
    let planted: Value = serde_json::from_str(FORMAT_1_PROTOCOL).unwrap();
    assert_eq!(stored, planted, "re-created exactly as it was");
    assert_eq!(node_names(&a).await, ["a", "old-build"]);
}
