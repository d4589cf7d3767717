//! The version chain at the request floor: an uncontended write is one request, revalidating
//! or reloading a recently known manifest is one GET answered 404, knowledge older than half
//! of `gc_min_age` takes the listing paths, and those still catch a stale writer whose
//! successor was collected. Requests are counted by `FaultStore`; time runs on a paused
//! tokio clock, and the store's `last_modified` on a test clock, so nothing depends on
//! scheduling or on the real time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cairn::manifest::{Revalidated, Strategy, Write};
use cairn::store::fault::{Counts, FaultStore, Hook, Stamped};
use cairn::store::keys::{self, Family};
use cairn::{Cairn, ManifestOptions, Name, StrategyChoice, TestClock};
use chrono::{DateTime, Utc};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutResult};

const KIND: &str = "test";
const MIN_AGE: Duration = Duration::from_secs(60);

fn base(name: &str) -> keys::Key {
    keys::manifest(Family::Scratch, &Name::new(name).unwrap())
}

fn origin() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

/// A [`FaultStore`] hook that makes `last_modified` the hook's own test clock's time at each
/// write (so a paused tokio clock ages objects: the library's [`Stamped`]), and records the
/// order of deletes.
#[derive(Debug, Clone)]
struct StoreClock {
    stamped: Arc<Stamped>,
    deleted: Arc<Mutex<Vec<Path>>>,
}

impl StoreClock {
    /// `inner` with a fresh store clock, and the hook, to read its deletes from.
    fn over(inner: Arc<dyn ObjectStore>) -> (Arc<FaultStore>, Self) {
        let hook = Self {
            stamped: Arc::new(Stamped::new(Arc::new(TestClock::new(origin())))),
            deleted: Arc::default(),
        };
        (
            Arc::new(FaultStore::with_hook(inner, 0, hook.clone())),
            hook,
        )
    }

    fn deleted_versions(&self) -> Vec<u64> {
        self.deleted
            .lock()
            .unwrap()
            .iter()
            .filter_map(|p| keys::parse_numbered(p.filename()?))
            .collect()
    }
}

#[async_trait]
impl Hook for StoreClock {
    async fn committed(&self, path: &Path, landed: PutResult) -> object_store::Result<PutResult> {
        self.stamped.committed(path, landed).await
    }

    fn meta(&self, meta: ObjectMeta) -> ObjectMeta {
        self.stamped.meta(meta)
    }

    fn deleting(&self, path: &Path) {
        self.deleted.lock().unwrap().push(path.clone());
    }
}

/// A node on the version chain over `store`, counting its requests.
struct Node {
    cairn: Cairn,
    counted: Arc<FaultStore>,
    clock: Arc<TestClock>,
}

impl Node {
    async fn new(store: Arc<dyn ObjectStore>, node: &str, options: ManifestOptions) -> Self {
        let counted = Arc::new(FaultStore::new(store, 7));
        let clock = Arc::new(TestClock::new(origin()));
        let cairn = Cairn::builder(counted.clone())
            .prefix("floor")
            .node(node)
            .unwrap()
            .seed(node.len() as u64)
            .clock(clock.clone())
            .strategy(StrategyChoice::Fixed(Strategy::VersionChain))
            .manifest_options(options)
            .build()
            .await
            .expect("build");
        Self {
            cairn,
            counted,
            clock,
        }
    }

    fn manifest(&self, name: &str) -> cairn::Manifest<u64> {
        self.cairn.manifest::<u64>(KIND, base(name))
    }

    fn counts(&self) -> Counts {
        self.counted.counts()
    }
}

fn options() -> ManifestOptions {
    ManifestOptions {
        gc_min_age: MIN_AGE,
        gc_every: u64::MAX,
        ..Default::default()
    }
}

async fn write_ok(
    m: &cairn::Manifest<u64>,
    current: Option<&cairn::Snapshot<u64>>,
    body: u64,
) -> cairn::Snapshot<u64> {
    match m.write(current, body).await.unwrap() {
        Write::Written(s) => s,
        other => panic!("uncontended write conflicted: {other:?}"),
    }
}

/// The per-backend body of the write, revalidate and reload floor checks.
async fn chain_operations_are_at_the_floor(store: Arc<dyn ObjectStore>) {
    let a = Node::new(store.clone(), "writer", options()).await;
    let m = a.manifest("floor");
    // A cold first write lists once to verify (nothing is known about the manifest).
    let mut cur = write_ok(&m, None, 0).await;
    // A first version is numbered from a floor (`clock::floor`); each write adds 1.
    let first = cur.version;
    for i in 1..=10 {
        let before = a.counts();
        cur = write_ok(&m, Some(&cur), i).await;
        let d = a.counts().since(&before);
        // The create, and a GET of slot 1: is there a chain created again above ours?
        assert_eq!(
            (d.requests(), d.puts, d.gets),
            (2, 1, 1),
            "uncontended write {i}: {d:?}"
        );
    }

    // Revalidating an unchanged manifest: one GET of the next version's key, a 404.
    let before = a.counts();
    assert!(matches!(
        m.revalidate(&cur).await.unwrap(),
        Revalidated::Unchanged
    ));
    let d = a.counts().since(&before);
    assert_eq!((d.requests(), d.gets, d.lists), (1, 1, 0), "{d:?}");

    // Reloading a recently known manifest: the same single GET.
    let before = a.counts();
    let head = m.load().await.unwrap().unwrap();
    assert_eq!((head.version, head.body), (first + 10, 10));
    let d = a.counts().since(&before);
    assert_eq!((d.requests(), d.gets, d.lists), (1, 1, 0), "{d:?}");

    // Another node: its cold load lists once, and then it is at the floor too.
    let b = Node::new(store.clone(), "reader", options()).await;
    let mb = b.manifest("floor");
    let before = b.counts();
    let seen = mb.load().await.unwrap().unwrap();
    assert_eq!(b.counts().since(&before).lists, 1);
    let before = b.counts();
    assert!(matches!(
        mb.revalidate(&seen).await.unwrap(),
        Revalidated::Unchanged
    ));
    assert_eq!(b.counts().since(&before).requests(), 1);

    // A change is seen: the GET finds the next version, a listing after it finds the head.
    cur = write_ok(&m, Some(&cur), 100).await;
    let cur = write_ok(&m, Some(&cur), 101).await;
    match mb.revalidate(&seen).await.unwrap() {
        Revalidated::Changed(s) => assert_eq!((s.version, s.body), (cur.version, 101)),
        other => panic!("expected a change, got {other:?}"),
    }
    // And the reader writes on what it now knows, at the floor.
    let before = b.counts();
    let mine = mb
        .update(|c| cairn::manifest::Change::Write(c.unwrap().body + 1))
        .await
        .unwrap();
    assert_eq!(mine.snapshot.unwrap().body, 102);
    assert_eq!(
        b.counts().since(&before).requests(),
        3,
        "a reload (1 GET), a write and its read of slot 1"
    );
    // The writer's stale-by-one snapshot loses, and learns the head.
    match m.write(Some(&cur), 999).await.unwrap() {
        Write::Conflict(Some(h)) => assert_eq!(h.body, 102),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn memory_chain_write_revalidate_and_reload_are_one_request() {
    chain_operations_are_at_the_floor(Arc::new(InMemory::new())).await;
}

#[tokio::test(start_paused = true)]
async fn fs_chain_write_revalidate_and_reload_are_one_request() {
    let dir = tempfile::tempdir().unwrap();
    chain_operations_are_at_the_floor(Arc::new(
        LocalFileSystem::new_with_prefix(dir.path()).unwrap(),
    ))
    .await;
}

#[tokio::test(start_paused = true)]
async fn should_create_a_manifest_known_absent_in_one_request() {
    let a = Node::new(Arc::new(InMemory::new()), "creator", options()).await;
    let m = a.manifest("fresh");
    assert!(m.load().await.unwrap().is_none());
    let before = a.counts();
    write_ok(&m, None, 1).await;
    // The process's first fresh create checks the clock first (a PUT and a HEAD of
    // `_cairn/clock.json`), to floor its first version on the store's time.
    let d = a.counts().since(&before);
    assert_eq!((d.requests(), d.puts, d.gets), (3, 2, 1), "{d:?}");
    // Later ones reuse that check: one request.
    let m = a.manifest("fresher");
    assert!(m.load().await.unwrap().is_none());
    let before = a.counts();
    write_ok(&m, None, 1).await;
    assert_eq!(a.counts().since(&before).requests(), 1);
}

#[tokio::test(start_paused = true)]
async fn should_take_the_listing_path_when_the_snapshot_is_stale() {
    let a = Node::new(Arc::new(InMemory::new()), "sleeper", options()).await;
    let m = a.manifest("stale");
    let mut cur = write_ok(&m, None, 0).await;
    cur = write_ok(&m, Some(&cur), 1).await;
    // Just under half of gc_min_age: still fresh.
    tokio::time::advance(MIN_AGE / 2 - Duration::from_millis(1)).await;
    let before = a.counts();
    assert!(matches!(
        m.revalidate(&cur).await.unwrap(),
        Revalidated::Unchanged
    ));
    assert_eq!(a.counts().since(&before).lists, 0);
    // The 404 renewed the knowledge: another almost-half later it is still fresh.
    tokio::time::advance(MIN_AGE / 2 - Duration::from_millis(1)).await;
    let before = a.counts();
    assert!(matches!(
        m.revalidate(&cur).await.unwrap(),
        Revalidated::Unchanged
    ));
    assert_eq!(a.counts().since(&before).lists, 0);
    // Past half of gc_min_age without a word from the store: revalidation lists, ...
    tokio::time::advance(MIN_AGE / 2 + Duration::from_millis(1)).await;
    let before = a.counts();
    assert!(matches!(
        m.revalidate(&cur).await.unwrap(),
        Revalidated::Unchanged
    ));
    let d = a.counts().since(&before);
    assert_eq!((d.lists, d.gets), (1, 0), "{d:?}");
    // ... a reload lists and reads (the head, and slot 1, where the chain's first version is
    // kept beside the later ones, to place it by its number), ...
    tokio::time::advance(MIN_AGE / 2 + Duration::from_millis(1)).await;
    let before = a.counts();
    let head = m.load().await.unwrap().unwrap();
    assert_eq!(head.version, cur.version);
    let d = a.counts().since(&before);
    assert_eq!((d.lists, d.gets), (1, 2), "{d:?}");
    // ... and a write verifies with a listing after its create.
    tokio::time::advance(MIN_AGE / 2 + Duration::from_millis(1)).await;
    let before = a.counts();
    write_ok(&m, Some(&head), 2).await;
    let d = a.counts().since(&before);
    assert_eq!((d.puts, d.lists), (1, 1), "{d:?}");
}

/// The reason for the verify: a writer that read version 3, then slept past half of
/// gc_min_age while others wrote on and collection deleted version 4, re-creates version 4
/// below the head. Its listing after the create catches it: a conflict, and the head stays.
#[tokio::test(start_paused = true)]
async fn should_detect_a_conflict_when_a_stale_writers_successor_was_collected() {
    let (store, clock) = StoreClock::over(Arc::new(InMemory::new()));
    let stale = Node::new(store.clone(), "stale", options()).await;
    let busy = Node::new(store.clone(), "busy", options()).await;
    let (ms, mb) = (stale.manifest("gc"), busy.manifest("gc"));
    let mut cur = write_ok(&mb, None, 1).await;
    // Write i is version v(i); the first is in slot 1 (`chain.rs`), the others in slot v(i).
    let first = cur.version;
    let v = |i: u64| first + i - 1;
    for i in 2..=3 {
        cur = write_ok(&mb, Some(&cur), i).await;
    }
    let seen = ms.load().await.unwrap().unwrap();
    assert_eq!(seen.version, v(3));
    for i in 4..=12 {
        cur = write_ok(&mb, Some(&cur), i).await;
    }
    tokio::time::advance(MIN_AGE + Duration::from_secs(1)).await;
    for i in 13..=20 {
        cur = write_ok(&mb, Some(&cur), i).await;
    }
    assert_eq!(mb.collect_garbage().await.unwrap(), 12);
    let slots: Vec<u64> = std::iter::once(1).chain((2..=12).map(v)).collect();
    assert_eq!(clock.deleted_versions(), slots);
    // The stale writer's create of version 4 succeeds (the slot is free again) ...
    let before = stale.counts();
    match ms.write(Some(&seen), 999).await.unwrap() {
        // ... and its verify listing finds version 13 above it, not built on it.
        Write::Conflict(Some(head)) => assert_eq!((head.version, head.body), (v(20), 20)),
        other => panic!("a stale write below the head must be a conflict, got {other:?}"),
    }
    assert!(stale.counts().since(&before).lists >= 1);
    let head = ms.load().await.unwrap().unwrap();
    assert_eq!((head.version, head.body), (v(20), 20));
}

/// Collection's age bound does not trust the collector's clock: one an hour ahead still
/// keeps every version younger than gc_min_age by the store's own timestamps. This is what
/// keeps a fresh snapshot's successor alive for the whole freshness window.
#[tokio::test(start_paused = true)]
async fn should_not_collect_young_versions_when_the_collectors_clock_runs_ahead() {
    let (store, clock) = StoreClock::over(Arc::new(InMemory::new()));
    let fast = Node::new(store.clone(), "fast", options()).await;
    fast.clock.set_skew(chrono::Duration::hours(1));
    let m = fast.manifest("skew");
    let mut cur = write_ok(&m, None, 1).await;
    for i in 2..=20 {
        cur = write_ok(&m, Some(&cur), i).await;
    }
    assert_eq!(m.collect_garbage().await.unwrap(), 0);
    assert!(clock.deleted_versions().is_empty());
    // Once the store's clock has moved past gc_min_age, they go.
    tokio::time::advance(MIN_AGE + Duration::from_secs(1)).await;
    write_ok(&m, Some(&cur), 21).await;
    assert_eq!(m.collect_garbage().await.unwrap(), 13);
}

/// Collection deletes oldest first and stops at the first version too young to go, so it
/// never leaves a hole below a version it kept.
#[tokio::test(start_paused = true)]
async fn should_collect_oldest_first_and_stop_at_the_first_young_version() {
    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let (store, clock) = StoreClock::over(inner.clone());
    let a = Node::new(store.clone(), "collector", options()).await;
    let m = a.manifest("order");
    let mut cur = write_ok(&m, None, 1).await;
    // Write i is version v(i); the first is in slot 1 (`chain.rs`), the others in slot v(i).
    let first = cur.version;
    let v = |i: u64| first + i - 1;
    for i in 2..=10 {
        cur = write_ok(&m, Some(&cur), i).await;
    }
    tokio::time::advance(MIN_AGE * 2).await;
    // A young object at version 5 (as a stale writer's orphan would be).
    let v5 = Path::from(format!(
        "floor/{}",
        keys::chain_version(&base("order"), v(5))
    ));
    let bytes = inner.get(&v5).await.unwrap().bytes().await.unwrap();
    store.put(&v5, bytes.into()).await.unwrap();
    for i in 11..=20 {
        cur = write_ok(&m, Some(&cur), i).await;
    }
    assert_eq!(m.collect_garbage().await.unwrap(), 4);
    assert_eq!(clock.deleted_versions(), vec![1, v(2), v(3), v(4)]);
    let kept: Vec<u64> = m
        .history()
        .await
        .unwrap()
        .iter()
        .map(|s| s.version)
        .collect();
    assert_eq!(kept, (v(5)..=v(20)).collect::<Vec<_>>());
}

/// A fast writer does not list its chain every `gc_every` versions while everything is too
/// young to collect: a pass that stopped at a young version waits until it is old enough.
#[tokio::test(start_paused = true)]
async fn should_not_list_for_collection_while_every_version_is_too_young() {
    let (store, _) = StoreClock::over(Arc::new(InMemory::new()));
    let a = Node::new(
        store.clone(),
        "fast",
        ManifestOptions {
            gc_every: 4,
            ..options()
        },
    )
    .await;
    let m = a.manifest("busy");
    let mut cur = write_ok(&m, None, 0).await;
    // Versions number from a floor (a multiple of 1024, so of `gc_every`): write i is
    // version first + i, and passes run on writes 4, 8, 12, ….
    let first = cur.version;
    for i in 1..=12 {
        cur = write_ok(&m, Some(&cur), i).await;
    }
    // Write 12's pass found the oldest versions too young and noted when they will not be.
    let before = a.counts();
    for i in 13..=40 {
        cur = write_ok(&m, Some(&cur), i).await;
    }
    let d = a.counts().since(&before);
    assert_eq!((d.puts, d.lists, d.deletes), (28, 0, 0), "{d:?}");
    tokio::time::advance(MIN_AGE + Duration::from_secs(1)).await;
    let before = a.counts();
    for i in 41..=44 {
        cur = write_ok(&m, Some(&cur), i).await;
    }
    let d = a.counts().since(&before);
    // The first write verifies (its knowledge is now older than half of gc_min_age);
    // write 44's pass lists once and deletes every version but the newest 8 (of 45).
    assert_eq!((d.lists, d.deletes), (2, 37), "{d:?}");
    assert_eq!(cur.version, first + 44);
}

/// The chain's collection age is the prefix's: the first node records its `gc_min_age` in the
/// protocol record, and a node configured with a shorter one collects and trusts its
/// knowledge by the recorded one (a shorter age on one node would let it collect a successor
/// another node's fresh knowledge assumes is there).
#[tokio::test]
async fn should_adopt_the_gc_min_age_the_prefix_recorded() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let build = |age: Duration| {
        Cairn::builder(store.clone())
            .prefix("p")
            .node("n")
            .unwrap()
            .strategy(StrategyChoice::Fixed(Strategy::VersionChain))
            .manifest_options(ManifestOptions {
                gc_min_age: age,
                ..Default::default()
            })
            .build()
    };
    let first = build(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(
        first.protocol().unwrap().gc_min_age().unwrap(),
        Some(Duration::from_secs(3600))
    );
    let second = build(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        second.manifests().options().gc_min_age,
        Duration::from_secs(3600)
    );
}

/// A recorded `gc_min_age` out of range (beyond 30 days) is a corrupt record: no
/// node builds on it, and nothing overwrites it.
#[tokio::test]
async fn should_refuse_a_recorded_gc_min_age_out_of_range() {
    for ms in [31 * 24 * 3600 * 1000 + 1, u64::MAX] {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let record = serde_json::json!({
            "format": 1, "kind": "protocol", "strategy": "version-chain", "write_id": "w",
            "created_by": "x", "created_at": "2026-01-01T00:00:00Z", "cairn_version": "0.1.0",
            "gc_min_age_ms": ms,
        });
        let path = Path::from("p/_cairn/protocol.json");
        let body = serde_json::to_vec(&record).unwrap();
        store.put(&path, body.clone().into()).await.unwrap();
        let r = Cairn::builder(store.clone())
            .prefix("p")
            .node("n")
            .unwrap()
            .build()
            .await;
        match r {
            Err(cairn::Error::Corrupt { key, reason }) => {
                assert!(key.contains("protocol"), "{key}");
                assert!(reason.contains("gc_min_age_ms"), "{reason}");
            }
            other => panic!("gc_min_age_ms {ms}: expected Corrupt, got {other:?}"),
        }
        let stored = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(stored.as_ref(), body.as_slice(), "the record is left alone");
    }
}
