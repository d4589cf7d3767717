//! The conformance suite: the checks every store cairn coordinates through must pass, public
//! (with the `test-util` feature) so that an embedder can run them against its own
//! `ObjectStore`, as object_store's `integration` module serves its backends.
//!
//! Each check is an `async fn` that panics when the store breaks a rule cairn relies on:
//! call it from a test. It takes a [`Namespace`], a store and a prefix in it that nothing
//! else uses (each check writes fixed names, so give every check a fresh one), and, for the
//! checks that depend on it, the manifest [`Strategy`] to run: both where the store honours
//! `If-Match`, the version chain alone where it honours only create-if-absent.
//!
//! ```no_run
//! use std::sync::Arc;
//! use cairn::conformance::{self, Namespace};
//! use cairn::Strategy;
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! async fn my_store_has_one_winner_among_racing_creators() {
//!     let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
//!     for strategy in [Strategy::EtagCas, Strategy::VersionChain] {
//!         let ns = Namespace::fresh(Arc::clone(&store), "conformance");
//!         conformance::racing_creators_have_exactly_one_winner(ns, strategy).await;
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! [`strategy_checks`] runs every check that takes a strategy, each on a fresh namespace.
//! cairn's own `tests/conformance.rs` runs them all against memory, the local filesystem,
//! LocalStack, moto and Ceph RGW.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::manifest::{Change, Revalidated, Strategy, Write};
use crate::store::fault::{Fault, FaultStore, Op, Rule};
use crate::store::keys::{self, Family, Key};
use crate::store::IfMatchForm;
use crate::{Cairn, CairnBuilder, Error, ManifestOptions, Name, StoreOptions, StrategyChoice};

/// The manifest kind the checks write.
const KIND: &str = "test";

/// Where a check runs: an object store and a prefix inside it that nothing else uses.
#[derive(Debug, Clone)]
pub struct Namespace {
    /// The raw store. Checks plant objects in it directly, as a bug or an operator could.
    pub store: Arc<dyn ObjectStore>,
    /// The prefix every key of the check lives below.
    pub prefix: String,
}

impl Namespace {
    /// The namespace `prefix` of `store`. It must be empty.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: impl Into<String>) -> Self {
        Self {
            store,
            prefix: prefix.into(),
        }
    }

    /// A fresh namespace below `parent`: `parent/<random uuid>`.
    pub fn fresh(store: Arc<dyn ObjectStore>, parent: &str) -> Self {
        let id = uuid::Uuid::new_v4();
        let parent = parent.trim_matches('/');
        let prefix = if parent.is_empty() {
            format!("c-{id}")
        } else {
            format!("{parent}/c-{id}")
        };
        Self::new(store, prefix)
    }

    /// A handle for node `node` on this namespace, with a fixed strategy and a seed derived
    /// from the node id.
    pub async fn cairn(&self, node: &str, strategy: Strategy) -> Cairn {
        self.cairn_with(node, strategy, Arc::clone(&self.store), |b| b)
            .await
    }

    /// A handle for node `node` on `store` (this namespace's store, possibly wrapped) at this
    /// namespace's prefix, customised by `f`.
    pub async fn cairn_with(
        &self,
        node: &str,
        strategy: Strategy,
        store: Arc<dyn ObjectStore>,
        f: impl FnOnce(CairnBuilder) -> CairnBuilder,
    ) -> Cairn {
        let b = Cairn::builder(store)
            .prefix(self.prefix.clone())
            .node(node)
            .expect("a valid node id")
            .seed(seed_for(node))
            .strategy(StrategyChoice::Fixed(strategy))
            .store_options(StoreOptions::default())
            .manifest_options(ManifestOptions::default());
        f(b).build().await.expect("build cairn")
    }

    /// The raw path of `key` in the store.
    fn path(&self, key: &Key) -> Path {
        Path::from(format!("{}/{key}", self.prefix))
    }
}

/// FNV-1a of the node id: runs are reproducible, and nodes differ.
fn seed_for(node: &str) -> u64 {
    node.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn base(name: &str) -> Key {
    keys::manifest(Family::Scratch, &Name::new(name).expect("a valid name"))
}

/// The key of the object holding the first version of `name` under `strategy`.
fn first_object(strategy: Strategy, name: &str) -> Key {
    match strategy {
        Strategy::EtagCas => keys::etag_object(&base(name)),
        Strategy::VersionChain => keys::chain_version(&base(name), 1),
    }
}

/// Every check that takes a strategy, each on a fresh namespace below `parent` of `store`
/// (the 16-writer counter among them). `request_timeout` is passed to
/// [`ambiguous_writes_resolve_by_write_id`].
pub async fn strategy_checks(
    store: Arc<dyn ObjectStore>,
    parent: &str,
    strategy: Strategy,
    request_timeout: Duration,
) {
    let fresh = || Namespace::fresh(Arc::clone(&store), parent);
    racing_creators_have_exactly_one_winner(fresh(), strategy).await;
    stale_write_is_a_conflict(fresh(), strategy).await;
    revalidation_of_unchanged_manifest_transfers_no_body(fresh(), strategy).await;
    bad_manifests_are_reported_and_never_overwritten(fresh(), strategy).await;
    ambiguous_writes_resolve_by_write_id(fresh(), strategy, request_timeout).await;
    a_landed_write_overtaken_twice_is_never_a_conflict(fresh(), strategy).await;
    unverifiable_write_is_ambiguous(fresh(), strategy).await;
    cas_counter_reaches_exact_total(fresh(), strategy, 16, 50).await;
}

/// The probe picks etag CAS where `If-Match` works and the version chain elsewhere: on this
/// store it must pick `expected`, with `If-Match` honoured in `form` (`None`: in none).
pub async fn probe_picks_the_right_strategy(
    ns: Namespace,
    expected: Strategy,
    form: Option<IfMatchForm>,
) {
    let c = Cairn::builder(Arc::clone(&ns.store))
        .prefix(ns.prefix.clone())
        .node("prober")
        .expect("a valid node id")
        .build()
        .await
        .expect("probe passes");
    let caps = c.capabilities().expect("a fresh prefix is probed");
    assert!(caps.create_if_absent);
    assert_eq!(c.strategy(), expected, "{caps:?}");
    assert_eq!(caps.if_match_form, form, "{caps:?}");
}

/// N creators race to create one manifest: exactly one wins, every loser sees the winner.
pub async fn racing_creators_have_exactly_one_winner(ns: Namespace, strategy: Strategy) {
    let floor_before = floor_now();
    let n = 16;
    let mut tasks = Vec::new();
    for i in 0..n {
        let c = ns.cairn(&format!("creator-{i}"), strategy).await;
        tasks.push(tokio::spawn(async move {
            let m = c.manifest::<String>(KIND, base("race"));
            (i, m.create(format!("body-{i}")).await.expect("create"))
        }));
    }
    let mut winners = Vec::new();
    let mut seen_by_losers = BTreeSet::new();
    for t in tasks {
        match t.await.expect("the creator task") {
            (i, Write::Written(s)) => {
                assert_eq!(s.body, format!("body-{i}"));
                winners.push(s.body);
            }
            (_, Write::Conflict(Some(s))) => {
                seen_by_losers.insert(s.body);
            }
            (i, Write::Conflict(None)) => panic!("creator {i} lost to nothing"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert!(
        seen_by_losers.iter().all(|b| b == &winners[0]),
        "{seen_by_losers:?}"
    );
    let c = ns.cairn("reader", strategy).await;
    let head = c
        .manifest::<String>(KIND, base("race"))
        .load()
        .await
        .expect("load")
        .expect("the manifest exists");
    assert_eq!(head.body, winners[0]);
    // A first version starts at the floor of its creation time (`clock::floor`).
    assert!(head.version >= floor_before, "{} < {floor_before}", head.version);
}

/// The floor of the real time now: every first version created later is at least this.
fn floor_now() -> u64 {
    crate::clock::floor(&"test", chrono::Utc::now()).expect("a floor")
}

/// `writers` tasks each add 1, `increments` times: the counter ends at exactly
/// `writers × increments`, and every value from 1 up was written exactly once (no lost
/// update, no duplicate). Run it only on stores whose conditional writes are atomic under
/// load (moto's are not).
pub async fn cas_counter_reaches_exact_total(
    ns: Namespace,
    strategy: Strategy,
    writers: u64,
    increments: u64,
) {
    let floor_before = floor_now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let c = ns
            .cairn_with(
                &format!("writer-{w}"),
                strategy,
                Arc::clone(&ns.store),
                |b| {
                    b.manifest_options(ManifestOptions {
                        max_attempts: 10_000,
                        ..Default::default()
                    })
                },
            )
            .await;
        tasks.push(tokio::spawn(async move {
            let m = c.manifest::<u64>(KIND, base("counter"));
            let mut mine = Vec::new();
            for _ in 0..increments {
                let mut wrote = 0;
                let u = m
                    .update(|cur| {
                        wrote = cur.map_or(0, |s| s.body) + 1;
                        Change::Write(wrote)
                    })
                    .await
                    .expect("update");
                assert!(u.changed);
                assert_eq!(u.snapshot.expect("written").body, wrote);
                mine.push(wrote);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("the writer task"));
    }
    all.sort_unstable();
    let expected: Vec<u64> = (1..=writers * increments).collect();
    assert_eq!(all, expected, "each value must be written exactly once");
    let c = ns.cairn("reader", strategy).await;
    let head = c
        .manifest::<u64>(KIND, base("counter"))
        .load()
        .await
        .expect("load")
        .expect("the counter exists");
    assert_eq!(head.body, writers * increments);
    // One version a write, the first at a floor.
    let first = head.version - (writers * increments - 1);
    assert!(first >= floor_before, "first version {first} < {floor_before}");
}

/// A write based on a version that is no longer the newest is a conflict carrying the newest.
pub async fn stale_write_is_a_conflict(ns: Namespace, strategy: Strategy) {
    let a = ns
        .cairn("a", strategy)
        .await
        .manifest::<u32>(KIND, base("stale"));
    let b = ns
        .cairn("b", strategy)
        .await
        .manifest::<u32>(KIND, base("stale"));
    let Write::Written(v1) = a.create(1).await.expect("create") else {
        panic!("create")
    };
    let Write::Written(v2) = a.write(Some(&v1), 2).await.expect("write") else {
        panic!("write")
    };
    match b.write(Some(&v1), 99).await.expect("the stale write") {
        Write::Conflict(Some(cur)) => {
            assert_eq!(cur.version, v2.version);
            assert_eq!(cur.version, v1.version + 1);
            assert_eq!(cur.body, 2);
            assert_eq!(cur.write_id, v2.write_id);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(b.load().await.expect("load").expect("exists").body, 2);
}

/// Revalidating an unchanged manifest transfers no body; a changed one is returned.
pub async fn revalidation_of_unchanged_manifest_transfers_no_body(
    ns: Namespace,
    strategy: Strategy,
) {
    let counted = Arc::new(FaultStore::new(Arc::clone(&ns.store), 1));
    let c = ns
        .cairn_with("watcher", strategy, counted.clone(), |b| b)
        .await;
    let m = c.manifest::<String>(KIND, base("watched"));
    let Write::Written(v1) = m.create("x".repeat(1000)).await.expect("create") else {
        panic!("create")
    };
    let known = m.load().await.expect("load").expect("exists");
    assert_eq!(known.version, v1.version);
    let before = counted.counts();
    assert!(matches!(
        m.revalidate(&known).await.expect("revalidate"),
        Revalidated::Unchanged
    ));
    let cost = counted.counts().since(&before);
    assert_eq!(cost.body_bytes, 0, "{cost:?}");
    assert_eq!(cost.requests(), 1, "{cost:?}");
    let other = ns
        .cairn("writer", strategy)
        .await
        .manifest::<String>(KIND, base("watched"));
    let Write::Written(_) = other.write(Some(&known), "y".into()).await.expect("write") else {
        panic!("the other writer writes")
    };
    match m.revalidate(&known).await.expect("revalidate") {
        Revalidated::Changed(s) => {
            assert_eq!((s.version, s.body.as_str()), (v1.version + 1, "y"))
        }
        other => panic!("expected a change, got {other:?}"),
    }
}

/// Unparsable, newer-format and other-kind objects are typed errors and stay untouched.
pub async fn bad_manifests_are_reported_and_never_overwritten(ns: Namespace, strategy: Strategy) {
    let c = ns.cairn("n", strategy).await;
    let cases: [(&str, &[u8]); 3] = [
        ("garbage", b"\x00not json{"),
        ("newer", br#"{"format":99,"kind":"test","version":1,"shiny":true}"#),
        ("otherkind", br#"{"format":1,"kind":"lock","version":1,"write_id":"w","written_by":"n","written_at":"2026-01-01T00:00:00Z","body":{}}"#),
    ];
    for (name, bytes) in cases {
        let path = ns.path(&first_object(strategy, name));
        ns.store
            .put(&path, PutPayload::from_static(bytes))
            .await
            .expect("plant");
        let m = c.manifest::<serde_json::Value>(KIND, base(name));
        let load = m.load().await;
        let update = m
            .update(|_| Change::Write(serde_json::json!({"clobbered": true})))
            .await;
        for r in [load.map(|_| ()), update.map(|_| ())] {
            match (name, r) {
                ("garbage", Err(Error::Corrupt { .. })) => {}
                ("newer", Err(Error::UnsupportedFormat { found: 99, .. })) => {}
                ("otherkind", Err(Error::WrongKind { .. })) => {}
                (name, r) => panic!("{name}: unexpected {r:?}"),
            }
        }
        let stored = ns
            .store
            .get(&path)
            .await
            .expect("still there")
            .bytes()
            .await
            .expect("readable");
        assert_eq!(&stored[..], bytes, "{name} was modified");
        assert_eq!(
            ns.store.list(Some(&ns.path(&base(name)))).count().await,
            1,
            "{name}: nothing else may be written beside it"
        );
    }
}

/// A write whose outcome was muddied by a fault: the author sees success exactly when its
/// write is what the store holds. `request_timeout` bounds the hanging cases: short, yet
/// above what the store takes under load (300 ms suits memory and a local disk; a server
/// on a loaded machine needs a second or two).
pub async fn ambiguous_writes_resolve_by_write_id(
    ns: Namespace,
    strategy: Strategy,
    request_timeout: Duration,
) {
    // (fault, how many times, must the write land?)
    let cases = [
        ("commit-then-fail", Fault::CommitThenFail, 1, true),
        (
            "retried-put-gets-412",
            Fault::CommitThenStatus(412),
            1,
            true,
        ),
        (
            "retried-create-gets-409",
            Fault::CommitThenStatus(409),
            1,
            true,
        ),
        ("fail-before-commit-once", Fault::FailBeforeCommit, 1, true),
        (
            "fail-before-commit-always",
            Fault::FailBeforeCommit,
            u64::MAX,
            false,
        ),
        ("409-once", Fault::Status(409), 1, true),
        ("409-always", Fault::Status(409), u64::MAX, false),
        ("500-once", Fault::Status(500), 1, true),
        ("500-always", Fault::Status(500), u64::MAX, false),
        ("timeout-once", Fault::Hang, 1, true),
        ("timeout-always", Fault::Hang, u64::MAX, false),
    ];
    for (label, fault, times, lands) in cases {
        for phase in ["create", "replace"] {
            let name = format!("amb-{label}-{phase}");
            let faulty = Arc::new(FaultStore::new(Arc::clone(&ns.store), 7));
            let c = ns
                .cairn_with("author", strategy, faulty.clone(), |b| {
                    b.store_options(StoreOptions {
                        request_timeout,
                        write_attempts: 3,
                        ..StoreOptions::default()
                    })
                })
                .await;
            let m = c.manifest::<String>(KIND, base(&name));
            let current = if phase == "replace" {
                let Write::Written(v1) = m.create("v1".into()).await.expect("create") else {
                    panic!("{label}: v1 must be created")
                };
                Some(m.load().await.expect("load").expect("exists"))
                    .filter(|s| s.version == v1.version)
            } else {
                None
            };
            // On the manifest's own keys: not on the clock check a first version's floor
            // takes (`Manifests::floor_time`), which fails on its own.
            let rule = if times == u64::MAX {
                Rule::always(Op::Put, &name, fault)
            } else {
                Rule::times(Op::Put, &name, fault, times)
            };
            faulty.add(rule);
            let result = m.write(current.as_ref(), format!("{label}-{phase}")).await;
            faulty.clear();
            let stored = m.load().await.expect("load");
            let ours_stored = stored
                .as_ref()
                .is_some_and(|s| s.body == format!("{label}-{phase}"));
            match result {
                Ok(Write::Written(s)) => {
                    assert!(
                        ours_stored,
                        "{label}/{phase}: success reported but not stored"
                    );
                    assert_eq!(stored.expect("stored").write_id, s.write_id);
                }
                Ok(Write::Conflict(_)) => {
                    panic!("{label}/{phase}: no other writer, yet a conflict")
                }
                Err(e) => assert!(
                    !ours_stored,
                    "{label}/{phase}: error {e} but the write is stored"
                ),
            }
            assert_eq!(ours_stored, lands, "{label}/{phase}");
        }
    }
}

/// A write that failed in flight, whose read-back fails too, is `Ambiguous`, not a guess.
pub async fn unverifiable_write_is_ambiguous(ns: Namespace, strategy: Strategy) {
    let faulty = Arc::new(FaultStore::new(Arc::clone(&ns.store), 3));
    let c = ns
        .cairn_with("author", strategy, faulty.clone(), |b| b)
        .await;
    let m = c.manifest::<u8>(KIND, base("unverifiable"));
    // On the manifest's keys, not on the clock check its floor takes first.
    faulty.add(Rule::always(Op::Put, "unverifiable", Fault::CommitThenFail));
    faulty.add(Rule::always(Op::Get, "unverifiable", Fault::Status(503)));
    match m.create(1).await {
        Err(Error::Ambiguous { .. }) => {}
        other => panic!("expected Ambiguous, got {other:?}"),
    }
}

/// A write that landed, lost its answer and was replaced twice by other writers before its
/// read-back is reported as written or as `Ambiguous`, never as a conflict: a caller told
/// "conflict" would believe its transition did not happen when it did (a turn claimed and
/// run, yet reported as lost). A write refused cleanly stays a conflict
/// ([`stale_write_is_a_conflict`]).
pub async fn a_landed_write_overtaken_twice_is_never_a_conflict(ns: Namespace, strategy: Strategy) {
    let other = ns.cairn("other", strategy).await;
    let theirs = other.manifest::<String>(KIND, base("overtaken"));
    let Write::Written(v1) = theirs.create("v1".into()).await.expect("create") else {
        panic!("v1 must be created")
    };
    let overtake: futures::future::BoxFuture<'static, ()> = Box::pin(async move {
        for body in ["theirs-1", "theirs-2"] {
            theirs
                .update(|_| Change::Write(body.to_string()))
                .await
                .expect("the other writer updates");
        }
    });
    let watched = match strategy {
        Strategy::EtagCas => "overtaken".to_string(),
        // In the chain, the key of the version after v1, the author's.
        Strategy::VersionChain => keys::chain_version(&base("overtaken"), v1.version + 1).to_string(),
    };
    let overtaken = overtaken::Overtaken {
        watched,
        overtake: tokio::sync::Mutex::new(Some(overtake)),
    };
    let store = Arc::new(FaultStore::with_hook(Arc::clone(&ns.store), 0, overtaken));
    let author = ns.cairn_with("author", strategy, store, |b| b).await;
    let m = author.manifest::<String>(KIND, base("overtaken"));
    let current = m.load().await.expect("load").expect("v1 is there");
    assert_eq!(current.version, v1.version);
    let result = m.write(Some(&current), "ours".into()).await;
    let history = other
        .manifest::<String>(KIND, base("overtaken"))
        .load()
        .await
        .expect("load")
        .expect("the manifest is there");
    assert_eq!(
        history.version,
        v1.version + 3,
        "ours (v1 + 1) and the other writer's two"
    );
    match result {
        Ok(Write::Written(s)) => assert_eq!(s.version, v1.version + 1),
        Err(Error::Ambiguous { .. }) => {}
        other => panic!("our write landed as version 2, yet the author was told {other:?}"),
    }
}

/// Collection keeps the newest versions and every young one; a stale writer whose slot was
/// collected does not become the head. Version chain only, on any store.
pub async fn chain_collection_keeps_newest_and_young_versions(ns: Namespace) {
    let strategy = Strategy::VersionChain;
    let opts = |min_age| ManifestOptions {
        gc_keep: 8,
        gc_min_age: min_age,
        gc_every: u64::MAX,
        ..Default::default()
    };
    let young = ns
        .cairn_with("young", strategy, Arc::clone(&ns.store), |b| {
            // This handle must keep its age after the record changes under it, which a
            // running handle otherwise refuses (`Error::ProtocolChanged`): no revalidation.
            b.manifest_options(opts(Duration::from_secs(3600)))
                .protocol_watch(crate::store::protocol::WatchOptions {
                    every: Duration::MAX,
                    before_create: Duration::MAX,
                })
        })
        .await
        .manifest::<u64>(KIND, base("gc"));
    // A prefix has one collection age, recorded by its first node; to see both ages at work
    // on one chain, the record is removed before the second handle records its own.
    ns.store
        .delete(&ns.path(&keys::protocol()))
        .await
        .expect("delete the protocol record");
    let old = ns
        .cairn_with("old", strategy, Arc::clone(&ns.store), |b| {
            b.manifest_options(opts(Duration::ZERO))
        })
        .await
        .manifest::<u64>(KIND, base("gc"));
    let mut stale = None;
    let mut first = 0;
    for i in 1..=20u64 {
        let u = young.update(|_| Change::Write(i)).await.expect("update");
        if i == 1 {
            first = u.snapshot.expect("written").version;
        }
        if i == 3 {
            stale = young.load().await.expect("load");
        }
    }
    // Write i is version first + i - 1.
    let v = |i: u64| first + i - 1;
    assert_eq!(
        young.collect_garbage().await.expect("collect"),
        0,
        "young versions must stay"
    );
    assert_eq!(old.collect_garbage().await.expect("collect"), 12);
    let kept: Vec<u64> = old
        .history()
        .await
        .expect("history")
        .iter()
        .map(|s| s.version)
        .collect();
    assert_eq!(kept, (v(13)..=v(20)).collect::<Vec<_>>());
    // The writer that read version 3 long ago re-creates the collected slot 4.
    match old
        .write(stale.as_ref(), 999)
        .await
        .expect("the stale write")
    {
        Write::Conflict(Some(head)) => assert_eq!(head.version, v(20)),
        other => panic!("a stale write below the head must be a conflict, got {other:?}"),
    }
    let head = old.load().await.expect("load").expect("exists");
    assert_eq!((head.version, head.body), (v(20), 20));
}

/// A store without `If-Match` (the probe finds none honoured) refuses a handle fixed to etag
/// CAS when it is built, with a typed error, before anything is recorded or written: a node
/// can never acquire on etag CAS and then fail to renew or release.
pub async fn a_store_without_if_match_refuses_etag_cas(ns: Namespace) {
    let built = Cairn::builder(Arc::clone(&ns.store))
        .prefix(ns.prefix.clone())
        .node("n")
        .expect("a valid node id")
        .strategy(StrategyChoice::Fixed(Strategy::EtagCas))
        .build()
        .await;
    assert!(
        matches!(built, Err(Error::StoreRefused { .. })),
        "{built:?}"
    );
}

mod overtaken {
    use futures::future::BoxFuture;
    use object_store::path::Path;
    use object_store::PutResult;

    use crate::store::fault::Hook;

    /// A [`FaultStore`](super::FaultStore) hook: the first put to a key containing `watched`
    /// lands, then `overtake` runs (other writers at work) and the put answers with a lost
    /// connection: the author's read-back finds the object replaced since.
    pub(super) struct Overtaken {
        pub(super) watched: String,
        pub(super) overtake: tokio::sync::Mutex<Option<BoxFuture<'static, ()>>>,
    }

    #[async_trait::async_trait]
    impl Hook for Overtaken {
        async fn committed(
            &self,
            path: &Path,
            landed: PutResult,
        ) -> object_store::Result<PutResult> {
            if !path.as_ref().contains(&self.watched) {
                return Ok(landed);
            }
            let Some(overtake) = self.overtake.lock().await.take() else {
                return Ok(landed);
            };
            overtake.await;
            Err(object_store::Error::Generic {
                store: "Overtaken",
                source: "connection reset after the request was sent".into(),
            })
        }
    }
}
