//! The capability probe concludes: on a store that refuses `If-Match` in the form the etag
//! was reported, it finds a form the store honours or falls back to the version chain, says
//! why, and still refuses a store that ignores a precondition. A handle that did not probe
//! (a fixed strategy) finds the form at its first replace, under the same checks.
//!
//! Most checks run on an in-memory store behind a wrapper that reports quoted etags but
//! compares `If-Match` with the bare value, as Ceph RGW 16 does. The last ones run on the
//! real RGW that `localstack/start.sh` starts.

mod common;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cairn::lock::{Acquire, LockOptions};
use cairn::manifest::{Change, Strategy, Write};
use cairn::store::fault::FaultStore;
use cairn::store::keys::{self, Family};
use cairn::store::{CreateOutcome, IfMatchForm, ReplaceOutcome, Store, WriteId};
use cairn::{Cairn, Error, Name, StoreOptions};
use common::{s3_skipped, Backend};
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
    UpdateVersion,
};

/// How [`PickyEtags`] treats `If-Match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Picky {
    /// 412 to the quoted etag it reported; the bare value is compared (Ceph RGW 16).
    BareOnly,
    /// 412 to the quoted etag; the bare value makes the write unconditional.
    BareIgnored,
    /// 412 to `If-Match` in any form.
    NoForm,
}

/// An in-memory store (which reports its etags in quotes, as S3 does) that is picky about
/// `If-Match`.
#[derive(Debug)]
struct PickyEtags {
    inner: InMemory,
    mode: Picky,
}

impl PickyEtags {
    fn new(mode: Picky) -> Arc<Self> {
        Arc::new(Self {
            inner: InMemory::new(),
            mode,
        })
    }
}

impl fmt::Display for PickyEtags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PickyEtags({:?})", self.mode)
    }
}

fn precondition(location: &Path) -> object_store::Error {
    object_store::Error::Precondition {
        path: location.to_string(),
        source: "412 Precondition Failed".into(),
    }
}

#[async_trait]
impl ObjectStore for PickyEtags {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        mut opts: PutOptions,
    ) -> Result<PutResult> {
        if let PutMode::Update(UpdateVersion {
            e_tag: Some(sent), ..
        }) = &opts.mode
        {
            let is_quoted = sent.starts_with('"');
            opts.mode = match (self.mode, is_quoted) {
                (_, true) | (Picky::NoForm, false) => return Err(precondition(location)),
                (Picky::BareOnly, false) => PutMode::Update(UpdateVersion {
                    e_tag: Some(format!("\"{sent}\"")),
                    version: None,
                }),
                (Picky::BareIgnored, false) => PutMode::Overwrite,
            };
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

async fn probed(store: Arc<dyn ObjectStore>) -> cairn::Result<Cairn> {
    Cairn::builder(store)
        .prefix("p")
        .node("prober")
        .unwrap()
        .seed(7)
        .build()
        .await
}

fn body(id: &WriteId, n: u32) -> Bytes {
    Bytes::from(format!(r#"{{"n":{n},"write_id":"{}"}}"#, id.as_str()))
}

fn scratch(name: &str) -> keys::Key {
    keys::manifest(Family::Scratch, &Name::new(name).unwrap())
}

/// A fresh object on `store`, and its etag as reported.
async fn created(store: &Store, key: &keys::Key) -> String {
    let id = WriteId::new(uuid::Uuid::new_v4().to_string());
    match store.create(key, body(&id, 0), &id).await.unwrap() {
        CreateOutcome::Created { etag, .. } => etag.expect("an etag"),
        other => panic!("expected a create, got {other:?}"),
    }
}

#[test]
fn if_match_forms_write_the_etag_quoted_or_bare() {
    assert_eq!(IfMatchForm::AsReported.apply("\"ab\""), "\"ab\"");
    assert_eq!(IfMatchForm::Unquoted.apply("\"ab\""), "ab");
    assert_eq!(IfMatchForm::Unquoted.apply("ab"), "ab");
    assert_eq!(IfMatchForm::Quoted.apply("ab"), "\"ab\"");
    assert_eq!(IfMatchForm::Quoted.apply("\"ab\""), "\"ab\"");
    assert_eq!(IfMatchForm::Unquoted.apply("\""), "\"");
    let others = |e| IfMatchForm::alternatives(e).collect::<Vec<_>>();
    assert_eq!(others("\"ab\""), [IfMatchForm::Unquoted]);
    assert_eq!(others("ab"), [IfMatchForm::Quoted]);
}

#[tokio::test]
async fn a_replace_refused_in_every_form_is_unsupported_at_once_and_searched_once() {
    let counted = Arc::new(FaultStore::new(PickyEtags::new(Picky::NoForm), 1));
    let store = Store::new(counted.clone(), "p", StoreOptions::default()).unwrap();
    let key = scratch("refused");
    let etag = created(&store, &key).await;
    for round in 0..2 {
        let before = counted.counts();
        let id = WriteId::new(uuid::Uuid::new_v4().to_string());
        match store.replace(&key, body(&id, 1), &id, &etag, None).await {
            Err(Error::Unsupported { operation, .. }) => {
                assert!(operation.contains("412"), "{operation}");
                assert!(operation.contains(&etag), "{operation}");
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
        let cost = counted.counts().since(&before);
        let expected = if round == 0 {
            // The refused PUT and its read-back; then, on a scratch key, a create, the etag
            // as reported and bare, each refused and read back, and the scratch deleted.
            (4, 3, 1)
        } else {
            // Searched once already: the refused PUT and its read-back only.
            (1, 1, 0)
        };
        assert_eq!(
            (cost.puts, cost.gets, cost.deletes),
            expected,
            "round {round}"
        );
    }
    assert_eq!(store.if_match_form(), IfMatchForm::AsReported);
    let stored = store.read(&key).await.unwrap().unwrap();
    assert_eq!(
        stored.etag.as_deref(),
        Some(etag.as_str()),
        "nothing written"
    );
}

#[tokio::test]
async fn a_replace_refused_in_its_form_finds_the_honoured_one_and_keeps_it() {
    let counted = Arc::new(FaultStore::new(PickyEtags::new(Picky::BareOnly), 1));
    let store = Store::new(counted.clone(), "p", StoreOptions::default()).unwrap();
    let key = scratch("found");
    let mut etag = created(&store, &key).await;
    for round in 0..2 {
        let before = counted.counts();
        let id = WriteId::new(uuid::Uuid::new_v4().to_string());
        match store
            .replace(&key, body(&id, 1), &id, &etag, None)
            .await
            .unwrap()
        {
            ReplaceOutcome::Replaced { etag: Some(e), .. } => etag = e,
            other => panic!("round {round}: expected a replace, got {other:?}"),
        }
        let cost = counted.counts().since(&before);
        let puts = if round == 0 {
            // Refused; on a scratch key: create, the current etag as reported (refused) and
            // bare, the stale etag bare; then again, bare.
            6
        } else {
            1
        };
        assert_eq!(cost.puts, puts, "round {round}: {cost:?}");
        assert_eq!(store.if_match_form(), IfMatchForm::Unquoted);
    }
}

#[tokio::test]
async fn a_replace_refuses_a_store_that_ignores_if_match_in_the_form_it_accepts() {
    let store = Store::new(
        PickyEtags::new(Picky::BareIgnored),
        "p",
        StoreOptions::default(),
    )
    .unwrap();
    let key = scratch("ignored");
    let etag = created(&store, &key).await;
    let id = WriteId::new(uuid::Uuid::new_v4().to_string());
    match store.replace(&key, body(&id, 1), &id, &etag, None).await {
        Err(Error::StoreRefused { check, .. }) => assert_eq!(check, "replace with stale etag"),
        other => panic!("expected StoreRefused, got {other:?}"),
    }
    let stored = store.read(&key).await.unwrap().unwrap();
    assert_eq!(
        stored.etag.as_deref(),
        Some(etag.as_str()),
        "nothing written"
    );
}

#[tokio::test]
async fn a_stale_etag_is_a_conflict_in_every_form() {
    let store = Store::new(
        PickyEtags::new(Picky::BareOnly),
        "p",
        StoreOptions::default(),
    )
    .unwrap();
    store.set_if_match_form(IfMatchForm::Unquoted).await;
    let key = scratch("stale");
    let stale = created(&store, &key).await;
    let id = WriteId::new(uuid::Uuid::new_v4().to_string());
    let ReplaceOutcome::Replaced {
        etag: Some(current),
        ..
    } = store
        .replace(&key, body(&id, 1), &id, &stale, None)
        .await
        .unwrap()
    else {
        panic!("the current etag, unquoted, replaces")
    };
    for form in [IfMatchForm::Unquoted, IfMatchForm::AsReported] {
        store.set_if_match_form(form).await;
        let late = WriteId::new(uuid::Uuid::new_v4().to_string());
        match store
            .replace(&key, body(&late, 2), &late, &stale, None)
            .await
        {
            Ok(ReplaceOutcome::Conflict {
                current: Some(obj), ..
            }) => {
                assert_eq!(obj.etag.as_deref(), Some(current.as_str()), "{form:?}");
            }
            other => panic!("{form:?}: a stale etag must conflict, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_probe_finds_the_bare_etag_form_and_etag_cas_works_with_it() {
    let floor_before = cairn::clock::floor(&"test", chrono::Utc::now()).unwrap();
    let c = probed(PickyEtags::new(Picky::BareOnly)).await.unwrap();
    let caps = c.capabilities().unwrap();
    assert!(caps.replace_if_match, "{caps:?}");
    assert_eq!(caps.if_match_form, Some(IfMatchForm::Unquoted));
    assert_eq!(c.strategy(), Strategy::EtagCas);
    assert_eq!(c.store().if_match_form(), IfMatchForm::Unquoted);
    assert!(caps.reason().contains("unquoted"), "{}", caps.reason());
    let replace = caps
        .checks
        .iter()
        .find(|ch| ch.name == "replace with current etag")
        .unwrap();
    assert!(
        replace.passed && replace.detail.contains("412"),
        "{replace:?}"
    );

    // The handle coordinates: 4 writers × 25 increments end at exactly 100.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let m = c.manifest::<u64>("test", scratch("counter"));
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                m.update(|cur| Change::Write(cur.map_or(0, |s| s.body) + 1))
                    .await
                    .expect("update");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let m = c.manifest::<u64>("test", scratch("counter"));
    let head = m.load().await.unwrap().unwrap();
    // 100 writes, the first at a floor drawn from time (`clock::floor`), + 1 each after.
    assert_eq!(head.body, 100);
    let first = head.version - 99;
    assert!(
        first >= floor_before,
        "first version {first} < {floor_before}"
    );
    // And a write based on an old version is a conflict.
    let stale = {
        let n = c.manifest::<u64>("test", scratch("stale"));
        let Write::Written(v1) = n.create(1).await.unwrap() else {
            panic!()
        };
        let Write::Written(_) = n.write(Some(&v1), 2).await.unwrap() else {
            panic!()
        };
        n.write(Some(&v1), 3).await.unwrap()
    };
    assert!(
        matches!(stale, Write::Conflict(Some(ref s)) if s.body == 2),
        "{stale:?}"
    );
}

#[tokio::test]
async fn the_probe_picks_the_version_chain_when_no_form_is_honoured_and_says_why() {
    let c = probed(PickyEtags::new(Picky::NoForm)).await.unwrap();
    let caps = c.capabilities().unwrap();
    assert!(!caps.replace_if_match);
    assert_eq!(caps.if_match_form, None);
    assert_eq!(c.strategy(), Strategy::VersionChain);
    let replace = caps
        .checks
        .iter()
        .find(|ch| ch.name == "replace with current etag")
        .unwrap();
    assert!(!replace.passed);
    assert!(
        replace.detail.contains("412") && replace.detail.contains("If-Match"),
        "{replace:?}"
    );
    let reason = caps.reason();
    assert!(
        reason.contains("412") && reason.contains("version chain"),
        "{reason}"
    );
    // The chain coordinates on it.
    let m = c.manifest::<u64>("test", scratch("chain"));
    for _ in 0..3 {
        m.update(|cur| Change::Write(cur.map_or(0, |s| s.body) + 1))
            .await
            .unwrap();
    }
    assert_eq!(m.load().await.unwrap().unwrap().body, 3);
}

#[tokio::test]
async fn the_probe_refuses_a_store_that_ignores_if_match_in_the_form_it_accepts() {
    match probed(PickyEtags::new(Picky::BareIgnored)).await {
        Err(Error::StoreRefused { check, detail }) => {
            assert_eq!(check, "replace with stale etag", "{detail}");
        }
        other => panic!("expected StoreRefused, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// A store that races: each conditional PUT is checked on arrival and committed a moment
// later, unconditionally, so requests that overlap all pass (a check-then-write race inside
// the server). One request at a time, it honours every precondition.
// ---------------------------------------------------------------------------------------

/// Which preconditions [`Racy`] applies non-atomically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Races {
    /// `If-None-Match: *` and `If-Match`.
    Both,
    /// Only `If-Match`; creates are atomic.
    IfMatchOnly,
}

#[derive(Debug)]
struct Racy {
    inner: InMemory,
    races: Races,
}

impl Racy {
    fn new(races: Races) -> Arc<Self> {
        Arc::new(Self {
            inner: InMemory::new(),
            races,
        })
    }
}

impl fmt::Display for Racy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Racy({:?})", self.races)
    }
}

#[async_trait]
impl ObjectStore for Racy {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let current = self.inner.head(location).await;
        match &opts.mode {
            PutMode::Create if self.races == Races::Both => {
                if current.is_ok() {
                    return Err(object_store::Error::AlreadyExists {
                        path: location.to_string(),
                        source: "exists".into(),
                    });
                }
            }
            PutMode::Update(v) => {
                let current = current?;
                let sent = v.e_tag.as_deref().unwrap_or_default();
                if current.e_tag.as_deref() != Some(sent) {
                    return Err(precondition(location));
                }
            }
            // Atomic: the inner store checks it.
            _ => return self.inner.put_opts(location, payload, opts).await,
        }
        // Checked; the write lands a moment later, whatever landed meanwhile.
        tokio::task::yield_now().await;
        self.inner
            .put_opts(location, payload, PutOptions::from(PutMode::Overwrite))
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// Six handles on `store`, each its own node, built one after the other.
async fn six_nodes(store: &Arc<Racy>) -> cairn::Result<Vec<Cairn>> {
    let mut nodes = Vec::new();
    for i in 0..6 {
        let c = Cairn::builder(store.clone() as Arc<dyn ObjectStore>)
            .prefix("p")
            .node(format!("n{i}"))?
            .seed(i)
            .build()
            .await?;
        nodes.push(c);
    }
    Ok(nodes)
}

/// Six nodes race for `lock` at once: the fencing tokens of those that got it (their
/// leases are kept, never released).
async fn race_for(nodes: &[Cairn], lock: &str) -> Vec<u64> {
    let held = common::race_for(nodes, lock).await;
    let tokens = held.iter().map(|l| l.fencing_token().0).collect();
    held.into_iter().for_each(std::mem::forget);
    tokens
}

#[tokio::test]
async fn the_racy_store_honours_each_precondition_one_request_at_a_time() {
    // The wrapper is what the issue describes: the probe's sequential checks pass on it.
    let store = Store::new(Racy::new(Races::Both), "p", StoreOptions::default()).unwrap();
    let key = scratch("seq");
    let etag = created(&store, &key).await;
    let id = WriteId::new(uuid::Uuid::new_v4().to_string());
    assert!(matches!(
        store.create(&key, body(&id, 1), &id).await.unwrap(),
        CreateOutcome::Exists { .. }
    ));
    let id = WriteId::new(uuid::Uuid::new_v4().to_string());
    assert!(matches!(
        store
            .replace(&key, body(&id, 2), &id, &etag, None)
            .await
            .unwrap(),
        ReplaceOutcome::Replaced { .. }
    ));
    let id = WriteId::new(uuid::Uuid::new_v4().to_string());
    assert!(matches!(
        store
            .replace(&key, body(&id, 3), &id, &etag, None)
            .await
            .unwrap(),
        ReplaceOutcome::Conflict { .. }
    ));
}

#[tokio::test]
async fn the_probe_races_and_refuses_a_store_whose_concurrent_creates_all_win() {
    let store = Racy::new(Races::Both);
    match six_nodes(&store).await {
        Err(Error::StoreRefused { check, detail }) => {
            assert_eq!(check, "concurrent create-if-absent", "{detail}");
            assert!(detail.contains("8 of 8"), "{detail}");
        }
        Ok(nodes) => panic!(
            "the probe passed a racing store; six nodes racing for a fresh lock got tokens {:?}",
            race_for(&nodes, "fresh").await
        ),
        Err(other) => panic!("expected StoreRefused, got {other:?}"),
    }
    // Nothing was recorded: no node may coordinate through it.
    let s = Store::new(store, "p", StoreOptions::default()).unwrap();
    assert!(s.read_protocol().await.unwrap().is_none());
}

#[tokio::test]
async fn a_store_whose_concurrent_replaces_all_win_gets_the_version_chain_and_one_holder() {
    let store = Racy::new(Races::IfMatchOnly);
    let nodes = six_nodes(&store).await.unwrap();
    // A lock released at version 2: six nodes replace it at once, where etag CAS on this
    // store would let every one of them through with token 3.
    let name = Name::new("shared").unwrap();
    let l = nodes[0]
        .locks(LockOptions::with_ttl(Duration::from_secs(30)))
        .unwrap();
    match l.try_acquire(&name).await.unwrap() {
        Acquire::Held(lease) => lease.release().await.unwrap(),
        Acquire::Busy(b) => panic!("busy: {b:?}"),
    }
    let tokens = race_for(&nodes, "shared").await;
    assert_eq!(tokens.len(), 1, "one holder: {tokens:?}");
    let caps = nodes[0].capabilities().expect("the first node probed");
    let race = caps
        .checks
        .iter()
        .find(|c| c.name == "concurrent replace (If-Match)")
        .expect("the probe lists the concurrent replace check");
    assert!(!race.passed, "{race:?}");
    assert!(race.detail.contains("8 of 8"), "{race:?}");
    assert!(caps
        .checks
        .iter()
        .any(|c| c.name == "concurrent create-if-absent" && c.passed));
    assert!(!caps.replace_if_match);
    assert!(caps.reason().contains("version chain"), "{}", caps.reason());
    for c in &nodes {
        assert_eq!(c.strategy(), Strategy::VersionChain);
    }
}

// ---------------------------------------------------------------------------------------
// On the real Ceph RGW.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn on_rgw_a_store_that_did_not_probe_finds_the_bare_etag_at_its_first_replace() {
    let Some(ns) = common::namespace(Backend::Rgw).await else {
        return;
    };
    let counted = Arc::new(FaultStore::new(Arc::clone(&ns.store), 1));
    let store = Store::new(counted.clone(), &ns.prefix, StoreOptions::default()).unwrap();
    assert_eq!(store.if_match_form(), IfMatchForm::AsReported);
    let key = scratch("first-replace");
    let stale = created(&store, &key).await;
    assert!(stale.starts_with('"'), "RGW reports quoted etags: {stale}");
    let before = counted.counts();
    let id = WriteId::new(uuid::Uuid::new_v4().to_string());
    let r = store
        .replace(&key, body(&id, 1), &id, &stale, None)
        .await
        .unwrap();
    assert!(matches!(r, ReplaceOutcome::Replaced { .. }), "{r:?}");
    let cost = counted.counts().since(&before);
    assert_eq!(
        cost.puts, 6,
        "refused; scratch create, quoted and bare current, bare stale; again"
    );
    assert_eq!(store.if_match_form(), IfMatchForm::Unquoted);
    // The stale etag conflicts, in the form found and as reported.
    for form in [IfMatchForm::Unquoted, IfMatchForm::AsReported] {
        store.set_if_match_form(form).await;
        let late = WriteId::new(uuid::Uuid::new_v4().to_string());
        let r = store
            .replace(&key, body(&late, 2), &late, &stale, None)
            .await;
        assert!(
            matches!(r, Ok(ReplaceOutcome::Conflict { .. })),
            "{form:?}: {r:?}"
        );
    }
}

fn cairn_on_rgw(args: &[&str]) -> std::process::Output {
    common::cli::cairn(&std::env::temp_dir())
        .args(args)
        .env("AWS_ENDPOINT_URL", Backend::Rgw.endpoint().unwrap())
        .output()
        .unwrap()
}

#[test]
fn doctor_on_rgw_concludes_names_the_strategy_and_says_why() {
    if s3_skipped() {
        return;
    }
    let store = format!("s3://{}/doctor-{}", common::BUCKET, uuid::Uuid::new_v4());
    let out = cairn_on_rgw(&["doctor", "--json", "--store", &store]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "doctor failed on RGW (is it running? localstack/start.sh): {stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Debian's RGW 16 compares If-Match with the bare etag: etag CAS, with that form.
    assert_eq!(report["strategy"], "etag-cas", "{report:#}");
    assert_eq!(report["capabilities"]["if_match_form"], "unquoted");
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains("unquoted"), "{reason}");
    let checks = report["capabilities"]["checks"].as_array().unwrap();
    assert!(checks.iter().all(|c| c["passed"] == true), "{checks:#?}");

    let out = cairn_on_rgw(&["doctor", "--store", &store]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("strategy:   etag-cas"), "{text}");
    assert!(
        text.contains("because:    If-Match is honoured with the etag unquoted"),
        "{text}"
    );
}

#[test]
fn on_rgw_lock_run_with_etag_cas_fixed_acquires_and_releases() {
    if s3_skipped() {
        return;
    }
    // No probe runs: the first replace (the release) finds the bare form by itself.
    let store = format!("s3://{}/fixed-{}", common::BUCKET, uuid::Uuid::new_v4());
    for round in 0..2 {
        let out = cairn_on_rgw(&[
            "--strategy",
            "etag-cas",
            "--store",
            &store,
            "lock",
            "run",
            "fixed",
            "--wait",
            "0s",
            "--",
            "true",
        ]);
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "round {round}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
