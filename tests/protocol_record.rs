//! A deleted or changed protocol record (`_cairn/protocol.json`) never splits a prefix
//! (issue #18, item 3). A lifecycle rule expires the record first (it is written once): a
//! node that then finds no record on a prefix in use refuses instead of deciding afresh,
//! an operator re-creates it explicitly (refused when the objects present contradict the
//! strategy asked for), a running node re-creates the one it knows when it vanished, and
//! stops coordinating when it changed.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cairn::lock::{Acquire, LockOptions, LossReason};
use cairn::store::fault::FaultStore;
use cairn::store::protocol::{ProtocolRecord, WatchOptions};
use cairn::store::WriteId;
use cairn::{Cairn, Error, HeldLock, Name, Strategy, StrategyChoice};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

const PREFIX: &str = "p";

fn record_path() -> Path {
    Path::from(format!("{PREFIX}/_cairn/protocol.json"))
}

async fn node(
    store: &Arc<dyn ObjectStore>,
    id: &str,
    choice: StrategyChoice,
) -> cairn::Result<Cairn> {
    Cairn::builder(Arc::clone(store))
        .prefix(PREFIX)
        .node(id)?
        .strategy(choice)
        .build()
        .await
}

fn lock() -> Name {
    Name::new("schema-migration").unwrap()
}

async fn hold(c: &Cairn) -> HeldLock {
    let locks = c
        .locks(LockOptions::with_ttl(Duration::from_secs(30)))
        .unwrap();
    match locks.try_acquire(&lock()).await.unwrap() {
        Acquire::Held(l) => l,
        Acquire::Busy(b) => panic!("{} found the lock busy: {b:?}", c.node()),
    }
}

/// Whether `c` can take the lock now (and then holds it: the lease is leaked on purpose).
async fn takes_it(c: &Cairn) -> cairn::Result<bool> {
    let locks = c.locks(LockOptions::with_ttl(Duration::from_secs(30)))?;
    Ok(match locks.try_acquire(&lock()).await? {
        Acquire::Held(l) => {
            std::mem::forget(l);
            true
        }
        Acquire::Busy(_) => false,
    })
}

#[tokio::test(start_paused = true)]
async fn a_node_refuses_a_prefix_in_use_whose_record_was_deleted_and_the_operator_recreates_it() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let a = node(&store, "a", StrategyChoice::Probe).await.unwrap();
    assert_eq!(a.strategy(), Strategy::EtagCas);
    let lease = hold(&a).await;

    // A lifecycle rule (here: a foreign client) deletes the record.
    store.delete(&record_path()).await.unwrap();

    // A node configured for the version chain must not record it over the etag-CAS locks.
    match node(&store, "b", StrategyChoice::Fixed(Strategy::VersionChain)).await {
        Err(Error::ProtocolRecordMissing { key, found }) => {
            assert_eq!(key, "_cairn/protocol.json");
            assert_eq!(found, "locks/schema-migration/manifest.json");
        }
        Err(e) => panic!("expected ProtocolRecordMissing, got {e}"),
        Ok(b) => panic!(
            "b decided the protocol afresh ({}) and takes the held lock: {:?}",
            b.strategy(),
            takes_it(&b).await
        ),
    }
    // Nor does an auto node decide anything.
    assert!(matches!(
        node(&store, "c", StrategyChoice::Probe).await,
        Err(Error::ProtocolRecordMissing { .. })
    ));
    assert!(
        store.head(&record_path()).await.is_err(),
        "nothing recorded"
    );

    // The operator's repair refuses the strategy the objects contradict ...
    let repair = |choice| {
        Cairn::builder(Arc::clone(&store))
            .prefix(PREFIX)
            .node("operator")
            .unwrap()
            .strategy(choice)
            .recreate_protocol()
            .build()
    };
    match repair(StrategyChoice::Fixed(Strategy::VersionChain)).await {
        Err(Error::ProtocolContradicted {
            wanted,
            written_with,
            found,
        }) => {
            assert_eq!(wanted, Strategy::VersionChain);
            assert_eq!(written_with, Strategy::EtagCas);
            assert_eq!(found, "locks/schema-migration/manifest.json");
        }
        other => panic!("expected ProtocolContradicted, got {other:?}"),
    }
    assert!(
        store.head(&record_path()).await.is_err(),
        "nothing recorded"
    );
    // ... and with none asked for, records the one they show.
    let op = repair(StrategyChoice::Probe).await.unwrap();
    assert_eq!(op.strategy(), Strategy::EtagCas);
    assert_eq!(op.protocol().unwrap().created_by, "operator");

    // Now b is told the recorded protocol, and an auto node sees the lock held.
    assert!(matches!(
        node(&store, "b", StrategyChoice::Fixed(Strategy::VersionChain)).await,
        Err(Error::ProtocolMismatch { .. })
    ));
    let c = node(&store, "c", StrategyChoice::Probe).await.unwrap();
    assert!(!takes_it(&c).await.unwrap(), "c took a held lock");

    // The holder renews across the repair (same protocol, re-created): still held.
    tokio::time::sleep(Duration::from_secs(45)).await;
    assert!(lease.is_held(), "{:?}", lease.loss_reason());
    lease.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_observer_reads_a_prefix_without_record_with_the_strategy_its_objects_show() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let a = node(&store, "a", StrategyChoice::Fixed(Strategy::VersionChain))
        .await
        .unwrap();
    let lease = hold(&a).await;
    store.delete(&record_path()).await.unwrap();
    let o = Cairn::builder(Arc::clone(&store))
        .prefix(PREFIX)
        .observer()
        .build()
        .await
        .unwrap();
    assert_eq!(o.strategy(), Strategy::VersionChain);
    assert_eq!(
        o.protocol_missing().map(ToString::to_string).as_deref(),
        Some("locks/schema-migration/v/00000000000000000001.json")
    );
    let locks = o.locks(LockOptions::default()).unwrap();
    assert!(locks.show(&lock()).await.unwrap().is_some());
    assert!(
        store.head(&record_path()).await.is_err(),
        "an observer writes nothing"
    );
    drop(lease);
}

#[tokio::test(start_paused = true)]
async fn a_running_node_recreates_the_record_it_knows_when_it_vanished() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let a = node(&store, "a", StrategyChoice::Probe).await.unwrap();
    let known = a.protocol().unwrap().clone();
    let lease = hold(&a).await;
    store.delete(&record_path()).await.unwrap();
    // Renewals every 10 s; the record is revalidated on the first after 30 s.
    tokio::time::sleep(Duration::from_secs(35)).await;
    let back = store.get(&record_path()).await.expect("re-created");
    let back: ProtocolRecord = serde_json::from_slice(&back.bytes().await.unwrap()).unwrap();
    assert_eq!(back, known, "the identical record");
    assert!(lease.is_held());
    // Another node now opens the prefix as usual.
    let c = node(&store, "c", StrategyChoice::Probe).await.unwrap();
    assert!(!takes_it(&c).await.unwrap());
    lease.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_fresh_create_revalidates_a_record_older_than_a_second_and_costs_nothing_sooner() {
    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let counted = Arc::new(FaultStore::new(Arc::clone(&inner), 1));
    let store: Arc<dyn ObjectStore> = counted.clone();
    let a = node(&store, "a", StrategyChoice::Probe).await.unwrap();
    let s = a.streams();
    let create = |name: &str| {
        let s = s.clone();
        let name = Name::new(name).unwrap();
        async move { s.create(&name, serde_json::json!({})).await.unwrap() }
    };
    // Within a second of the open's read: the create alone, and the clock check (a PUT and
    // a HEAD) that the process's first fresh create floors its version on.
    let before = counted.counts();
    let _created = create("s0").await;
    assert_eq!(counted.counts().since(&before).requests(), 3);
    // Later, a create where nothing existed revalidates first: a 304.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = counted.counts();
    let _created = create("s1").await;
    let cost = counted.counts().since(&before);
    assert_eq!((cost.requests(), cost.not_modified), (2, 1), "{cost:?}");
    // And finds a vanished record, which it re-creates.
    inner.delete(&record_path()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _created = create("s2").await;
    assert!(inner.head(&record_path()).await.is_ok(), "re-created");
}

#[tokio::test(start_paused = true)]
async fn a_running_node_stops_coordinating_when_the_record_changed() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let a = Cairn::builder(Arc::clone(&store))
        .prefix(PREFIX)
        .node("a")
        .unwrap()
        .protocol_watch(WatchOptions {
            every: Duration::from_secs(5),
            before_create: Duration::from_secs(1),
        })
        .build()
        .await
        .unwrap();
    assert_eq!(a.strategy(), Strategy::EtagCas);
    let lease = hold(&a).await;
    // Someone records the other strategy (a node of an old build deciding afresh).
    let other = ProtocolRecord::new(
        Strategy::VersionChain,
        "intruder",
        chrono::Utc::now(),
        None,
        WriteId::new("intruder-1"),
    );
    store
        .put(
            &record_path(),
            PutPayload::from(serde_json::to_vec(&other).unwrap()),
        )
        .await
        .unwrap();
    // The next renewal finds it: renewals fail from then on, and the lease is lost at its
    // deadline.
    let reason = tokio::time::timeout(Duration::from_secs(60), lease.lost())
        .await
        .expect("the lease is reported lost");
    match reason {
        LossReason::Unavailable { error } => {
            assert!(error.contains("changed"), "{error}");
        }
        other => panic!("expected a loss by failed renewals, got {other:?}"),
    }
    // Every later write is refused, and names what the record says now.
    let locks = a.locks(LockOptions::default()).unwrap();
    match locks.try_acquire(&Name::new("other").unwrap()).await {
        Err(Error::ProtocolChanged { known, now, .. }) => {
            assert_eq!(known, Strategy::EtagCas);
            assert!(
                now.contains("version-chain") && now.contains("intruder"),
                "{now}"
            );
        }
        other => panic!("expected ProtocolChanged, got {other:?}"),
    }
}
