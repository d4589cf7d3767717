//! cairn in front of each known quirk of a real object store (`cairn::store::quirks`, played
//! on an in-memory store): what the probe concludes there, and that the quirk yields
//! neither two holders nor a lost write — the conformance suite's strategy checks (racing
//! creators, stale writes, the 16-writer counter) run on every store the probe accepts, and
//! the probe refuses the one that cannot be made safe; the fleet's torture runs on each
//! accepted store with 0 violations. Each test fails without cairn's handling of its quirk
//! (named in the test).

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn::conformance::{self as check, Namespace};

use cairn::manifest::Strategy;
use cairn::store::fault::{FaultStore, Hook};
use cairn::store::quirks::{
    BareEtagOnly, CreateRefusedAs412, Gcs, IgnoresConditions, MissingIsNotFound,
};
use cairn::store::{keys, CreateOutcome, IfMatchForm, ReplaceOutcome, Store, WriteId};
use cairn::turn::{RunOnce, TurnOptions};
use cairn::{Cairn, Error, Name, StoreOptions};
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

const TIMEOUT: Duration = Duration::from_millis(300);

fn quirky(hook: impl Hook + 'static) -> Arc<FaultStore> {
    Arc::new(FaultStore::with_hook(Arc::new(InMemory::new()), 7, hook))
}

fn ns(store: &Arc<FaultStore>) -> Namespace {
    Namespace::fresh(store.clone() as Arc<dyn ObjectStore>, "quirks")
}

async fn node(store: &Arc<FaultStore>, prefix: &str, name: &str) -> cairn::Result<Cairn> {
    Cairn::builder(store.clone() as Arc<dyn ObjectStore>)
        .prefix(prefix)
        .node(name)?
        .seed(name.len() as u64)
        .build()
        .await
}

/// Six nodes race for `lock` at once: the fencing tokens of those that got it (each lease
/// is released again).
async fn race_for(nodes: &[Cairn], lock: &str) -> Vec<u64> {
    let held = common::race_for(nodes, lock).await;
    let tokens = held.iter().map(|l| l.fencing_token().0).collect();
    for lease in held {
        lease.release().await.unwrap();
    }
    tokens
}

/// Six nodes on `store` race for one lock three times: one holder each round, and each
/// round's token above the last (a release and a takeover are replaces, conditional on what
/// was read).
async fn one_holder_at_a_time(store: &Arc<FaultStore>) {
    let mut nodes = Vec::new();
    for i in 0..6 {
        nodes.push(node(store, "locks", &format!("n{i}")).await.unwrap());
    }
    let mut last = 0;
    for round in 0..3 {
        let tokens = race_for(&nodes, "shared").await;
        assert_eq!(tokens.len(), 1, "round {round}: one holder, got {tokens:?}");
        assert!(
            tokens[0] > last,
            "round {round}: token {} after {last}",
            tokens[0]
        );
        last = tokens[0];
    }
}

// ---------------------------------------------------------------------------------------
// Google Cloud Storage: replaces conditional on the generation.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_gcs_model_conditions_replaces_on_the_generation_alone() {
    let gcs = quirky(Gcs);
    let path = Path::from("k");
    let first = gcs.put(&path, PutPayload::from("a")).await.unwrap();
    let (etag, generation) = (first.e_tag.unwrap(), first.version.unwrap());
    assert_ne!(
        etag.trim_matches('"'),
        generation,
        "etags are not generations"
    );
    let update = |e_tag: Option<&str>, version: Option<&str>| {
        PutOptions::from(PutMode::Update(UpdateVersion {
            e_tag: e_tag.map(str::to_string),
            version: version.map(str::to_string),
        }))
    };
    // The etag alone: refused by the client, before any request.
    let e = gcs
        .put_opts(&path, PutPayload::from("b"), update(Some(&etag), None))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Version required"), "{e}");
    // The generation: compared, the etag ignored.
    let second = gcs
        .put_opts(
            &path,
            PutPayload::from("b"),
            update(Some("\"junk\""), Some(&generation)),
        )
        .await
        .unwrap();
    let e = gcs
        .put_opts(
            &path,
            PutPayload::from("c"),
            update(Some(&etag), Some(&generation)),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, object_store::Error::Precondition { .. }), "{e}");
    // A read reports the generation; a listing does not.
    let read = gcs.head(&path).await.unwrap();
    assert_eq!(read.version, second.version);
    assert_eq!(read.e_tag, second.e_tag);
    let listed: Vec<_> = gcs.list(None).try_collect().await.unwrap();
    assert_eq!(
        (listed[0].version.as_deref(), listed[0].e_tag.clone()),
        (None, read.e_tag)
    );
}

/// A replace that has no version to send (an etag alone) is refused at once as unsupported,
/// naming what is missing: the client refused it before any request, so retrying and reading
/// back cannot help.
#[tokio::test]
async fn on_gcs_a_replace_without_the_version_is_unsupported_at_once() {
    let gcs = quirky(Gcs);
    let store = Store::new(gcs.clone(), "p", StoreOptions::default()).unwrap();
    let key = keys::probe("versionless");
    let id = WriteId::new(uuid::Uuid::new_v4().to_string());
    let body = |id: &WriteId| Bytes::from(format!(r#"{{"write_id":"{}"}}"#, id.as_str()));
    let CreateOutcome::Created { etag, version } =
        store.create(&key, body(&id), &id).await.unwrap()
    else {
        panic!("a fresh key")
    };
    assert!(version.is_some(), "a GCS write reports its generation");
    let before = gcs.counts();
    let id = WriteId::new(uuid::Uuid::new_v4().to_string());
    match store
        .replace(&key, body(&id), &id, &etag.unwrap(), None)
        .await
    {
        Err(Error::Unsupported { operation, .. }) => {
            assert!(operation.contains("version"), "{operation}")
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    let used = gcs.counts().since(&before);
    assert_eq!(
        (used.puts, used.gets),
        (1, 0),
        "one refused attempt, no read-back: {used:?}"
    );
}

/// Fails without the version kept beside the etag: every replace on GCS would be refused
/// by the client ("Version required for conditional update").
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_gcs_the_probe_picks_etag_cas_and_every_strategy_check_passes() {
    let gcs = quirky(Gcs);
    check::probe_picks_the_right_strategy(
        ns(&gcs),
        Strategy::EtagCas,
        Some(IfMatchForm::AsReported),
    )
    .await;
    for strategy in [Strategy::EtagCas, Strategy::VersionChain] {
        check::strategy_checks(gcs.clone(), "quirks", strategy, TIMEOUT).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_gcs_locks_turns_and_records_work_with_one_holder_at_a_time() {
    let gcs = quirky(Gcs);
    one_holder_at_a_time(&gcs).await;
    let c = node(&gcs, "locks", "turner").await.unwrap();
    assert_eq!(c.strategy(), Strategy::EtagCas);
    let turns = c.turns(TurnOptions::default());
    let turn = Name::new("expiry").unwrap();
    assert!(matches!(
        turns.run_once(&turn, |_| async { Ok(None) }).await.unwrap(),
        RunOnce::Ran { .. }
    ));
    assert!(matches!(
        turns.run_once(&turn, |_| async { Ok(None) }).await.unwrap(),
        RunOnce::NotDue { .. }
    ));
    let records = c.records();
    let (ns_, key) = (Name::new("status").unwrap(), Name::new("job").unwrap());
    for v in [3, 7, 5] {
        let _ = records
            .put_if_newer(&ns_, &key, v, serde_json::json!({ "v": v }))
            .await
            .unwrap();
    }
    let stored = records.get(&ns_, &key).await.unwrap().expect("stored");
    assert_eq!(stored.version, 7);
}

// ---------------------------------------------------------------------------------------
// AWS S3, through a client that passes its 404 to If-Match on a missing key on.
// ---------------------------------------------------------------------------------------

/// Fails without taking the 404 as a refusal (`is_refusal_of`): the replace of a deleted
/// object would be an unclear answer, so the manifest layer could only call its write
/// ambiguous. (object_store's own S3 client turns the 404 into a 412 before cairn sees it.)
#[tokio::test]
async fn on_aws_a_replace_of_a_deleted_object_is_a_clean_conflict() {
    let aws = quirky(MissingIsNotFound);
    let store = Store::new(aws.clone(), "p", StoreOptions::default()).unwrap();
    let key = keys::probe("gone");
    let id = WriteId::new(uuid::Uuid::new_v4().to_string());
    let body = |id: &WriteId| Bytes::from(format!(r#"{{"write_id":"{}"}}"#, id.as_str()));
    let etag = match store.create(&key, body(&id), &id).await.unwrap() {
        CreateOutcome::Created { etag, .. } => etag.unwrap(),
        other => panic!("{other:?}"),
    };
    store.delete(&key).await.unwrap();
    let id = WriteId::new(uuid::Uuid::new_v4().to_string());
    match store
        .replace(&key, body(&id), &id, &etag, None)
        .await
        .unwrap()
    {
        ReplaceOutcome::Conflict {
            current: None,
            after_unclear: false,
        } => {}
        other => panic!("expected a clean conflict with nothing there, got {other:?}"),
    }
    // The hook answers as such a client does: a 404 on the PUT.
    let path = Path::from("p/raw");
    aws.put(&path, PutPayload::from("x")).await.unwrap();
    aws.delete(&path).await.unwrap();
    let e = aws
        .put_opts(
            &path,
            PutPayload::from("y"),
            PutOptions::from(PutMode::Update(UpdateVersion {
                e_tag: Some(etag),
                version: None,
            })),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, object_store::Error::NotFound { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_aws_the_probe_picks_etag_cas_and_every_strategy_check_passes() {
    let aws = quirky(MissingIsNotFound);
    check::probe_picks_the_right_strategy(
        ns(&aws),
        Strategy::EtagCas,
        Some(IfMatchForm::AsReported),
    )
    .await;
    check::strategy_checks(aws.clone(), "quirks", Strategy::EtagCas, TIMEOUT).await;
    one_holder_at_a_time(&aws).await;
}

// ---------------------------------------------------------------------------------------
// Ceph RGW and Hetzner: If-Match only with the bare etag.
// ---------------------------------------------------------------------------------------

/// Fails without the probe's search for the form: every replace would be refused (412)
/// and etag CAS unusable.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_bare_etag_store_the_probe_finds_the_form_and_etag_cas_is_safe() {
    let rgw = quirky(BareEtagOnly);
    check::probe_picks_the_right_strategy(ns(&rgw), Strategy::EtagCas, Some(IfMatchForm::Unquoted))
        .await;
    check::strategy_checks(rgw.clone(), "quirks", Strategy::EtagCas, TIMEOUT).await;
    one_holder_at_a_time(&rgw).await;
}

// ---------------------------------------------------------------------------------------
// Garage: conditions on PUT ignored.
// ---------------------------------------------------------------------------------------

/// Fails without the probe's second create: six nodes would all hold one lock.
#[tokio::test]
async fn a_store_that_ignores_put_conditions_is_refused_and_nothing_is_recorded() {
    let garage = quirky(IgnoresConditions);
    match node(&garage, "p", "n0").await {
        Err(Error::StoreRefused { check, detail }) => {
            assert_eq!(check, "create-if-absent twice", "{detail}");
            assert!(detail.contains("ignores If-None-Match"), "{detail}");
        }
        Ok(c) => panic!(
            "the probe passed a store that ignores conditions: {:?}",
            c.capabilities()
        ),
        Err(other) => panic!("expected StoreRefused, got {other:?}"),
    }
    let s = Store::new(garage, "p", StoreOptions::default()).unwrap();
    assert!(s.read_protocol().await.unwrap().is_none());
}

// ---------------------------------------------------------------------------------------
// Azure through object_store 0.13.2 to 0.14.1: a failed create reported as a 412.
// ---------------------------------------------------------------------------------------

/// A failed create reported as `Precondition` is the same refusal as `AlreadyExists`: the
/// object read back decides, and racing creators have one winner.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_create_refused_with_412_loses_cleanly_to_the_winner() {
    let azure = quirky(CreateRefusedAs412);
    check::probe_picks_the_right_strategy(
        ns(&azure),
        Strategy::EtagCas,
        Some(IfMatchForm::AsReported),
    )
    .await;
    check::strategy_checks(azure.clone(), "quirks", Strategy::EtagCas, TIMEOUT).await;
    one_holder_at_a_time(&azure).await;
    // The hook answers as those clients do.
    let path = Path::from("raw");
    azure.put(&path, PutPayload::from("x")).await.unwrap();
    let e = azure
        .put_opts(
            &path,
            PutPayload::from("y"),
            PutOptions::from(PutMode::Create),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, object_store::Error::Precondition { .. }), "{e}");
}

// ---------------------------------------------------------------------------------------
// The torture on every quirky store the probe accepts.
// ---------------------------------------------------------------------------------------

/// The fleet's torture (kills, injected faults, partitions, lifecycle deletions) with every
/// invariant checked, on a store that plays `hook`: 0 violations.
async fn torture_on(hook: impl Hook + 'static) {
    use cairn_drivers::fleet::history::History;
    use cairn_drivers::fleet::FleetOptions;
    let mut o = common::torture::short(FleetOptions::torture());
    o.operator_break = false;
    o.misconfigured = false;
    let r = cairn_drivers::fleet::run(quirky(hook), "fleet", o, Arc::new(History::new()))
        .await
        .unwrap();
    let failed: Vec<_> = r
        .invariants
        .iter()
        .filter(|i| !i.violations.is_empty())
        .map(|i| (&i.name, i.violations.len()))
        .collect();
    assert_eq!(r.violations, 0, "{failed:?}");
    // Exercised, not vacuously true: locks were taken, turns run, records written.
    for name in [
        "lock: at most one holder",
        "turn: exactly one run",
        "record:",
    ] {
        let i = r
            .invariants
            .iter()
            .find(|i| i.name.starts_with(name))
            .unwrap_or_else(|| panic!("no invariant {name}"));
        assert!(i.checked > 0, "{name}: nothing checked");
    }
    println!("{:?}", r.ops.by_feature);
}

#[tokio::test(start_paused = true)]
async fn torture_on_gcs_holds_every_invariant() {
    torture_on(Gcs).await;
}

#[tokio::test(start_paused = true)]
async fn torture_on_aws_404s_holds_every_invariant() {
    torture_on(MissingIsNotFound).await;
}

#[tokio::test(start_paused = true)]
async fn torture_on_bare_etags_holds_every_invariant() {
    torture_on(BareEtagOnly).await;
}

#[tokio::test(start_paused = true)]
async fn torture_on_creates_refused_with_412_holds_every_invariant() {
    torture_on(CreateRefusedAs412).await;
}
