//! Stored values are never trusted (issue 9, items 6 and 7): numbers read from storage never
//! wrap (versions, incarnations, log sequences fail with `Exhausted` at `u64::MAX`), stored
//! durations are range-checked, and reads are bounded (an oversize object is `Corrupt`, and
//! its body is not read whole).
//!
//! Every scenario plants objects with the raw `object_store` under the namespace prefix, as
//! a bug, an operator or an attacker could, then drives the public API. Memory and the local
//! filesystem always; LocalStack too (unless `CAIRN_SKIP_S3=1`).

mod common;

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cairn::log::EventLog;
use cairn::manifest::{Change, Strategy};
use cairn::node::{Health, NodeOptions};
use cairn::record::Put;
use cairn::store::fault::FaultStore;
use cairn::store::keys::{self, Family};
use cairn::store::MAX_OBJECT_BYTES;
use cairn::stream::Create;
use cairn::{Acquire, Error, FencingToken, LockOptions, Name, TestClock};
use chrono::{DateTime, Utc};
use common::{namespace, Backend, Namespace};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use serde_json::{json, Value};

const MAX: u64 = u64::MAX;

fn n(s: &str) -> Name {
    Name::new(s).unwrap()
}

fn origin() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap()
}

/// Every backend with every strategy it supports; S3 skipped only when explicitly opted out.
async fn each_backend() -> Vec<(Namespace, Strategy)> {
    let mut out = Vec::new();
    for backend in [Backend::Memory, Backend::Fs, Backend::LocalStack] {
        for &strategy in backend.strategies() {
            if let Some(ns) = namespace(backend).await {
                record_protocol(Arc::clone(&ns.store), &ns.prefix, strategy).await;
                out.push((ns, strategy));
            }
        }
    }
    out
}

/// Records `strategy` as the prefix's protocol, as the first node on a prefix does: the
/// planted objects are then those of a prefix in use (one with coordination objects and no
/// record is refused: `Error::ProtocolRecordMissing`).
async fn record_protocol(store: Arc<dyn ObjectStore>, prefix: &str, strategy: Strategy) {
    let store = cairn::store::Store::new(store, prefix, cairn::StoreOptions::default()).unwrap();
    let record = cairn::store::protocol::ProtocolRecord::new(
        strategy,
        "planted",
        origin(),
        None,
        cairn::store::WriteId::new(uuid::Uuid::new_v4().to_string()),
    );
    store.create_protocol(&record).await.unwrap();
}

fn raw_path(ns: &cairn::conformance::Namespace, key: &str) -> Path {
    Path::from(format!("{}/{key}", ns.prefix))
}

async fn put_raw(ns: &cairn::conformance::Namespace, key: &str, bytes: impl Into<Bytes>) {
    ns.store
        .put(&raw_path(ns, key), PutPayload::from(bytes.into()))
        .await
        .unwrap();
}

/// The stored form of one manifest version, as cairn writes it.
fn envelope(kind: &str, version: u64, body: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "format": 1, "kind": kind, "version": version,
        "write_id": uuid::Uuid::new_v4().to_string(),
        "written_by": "planted", "written_at": origin(), "body": body,
    }))
    .unwrap()
}

/// The key of version `version` of the manifest at `base` under `strategy`.
fn manifest_key(strategy: Strategy, base: &keys::Key, version: u64) -> String {
    match strategy {
        Strategy::EtagCas => keys::etag_object(base).to_string(),
        Strategy::VersionChain => keys::chain_version(base, version).to_string(),
    }
}

async fn plant(
    ns: &cairn::conformance::Namespace,
    strategy: Strategy,
    base: &keys::Key,
    kind: &str,
    version: u64,
    body: Value,
) {
    let key = manifest_key(strategy, base, version);
    put_raw(ns, &key, envelope(kind, version, body)).await;
}

fn exhausted(r: Result<impl std::fmt::Debug, Error>, what: &str, context: &str) {
    match r {
        // A lock's next version is its next fencing token: either name is the same number.
        Err(Error::Exhausted { what: w, .. })
            if w == what || (what == "version" && w == "fencing token") => {}
        other => panic!("{context}: expected Exhausted {{ what: {what:?} }}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Manifest versions

#[tokio::test]
async fn should_fail_exhausted_when_updating_a_manifest_at_the_last_version() {
    for (ns, strategy) in each_backend().await {
        let c = ns.cairn("writer", strategy).await;
        let ctx = format!("{:?}/{strategy}", ns.backend);
        // One version short of the end: the last version is written once, then no more.
        let base = keys::manifest(Family::Scratch, &n("almost"));
        plant(&ns, strategy, &base, "counter", MAX - 1, json!(7)).await;
        let m = c.manifest::<u64>("counter", base);
        let u = m.update(|cur| Change::Write(cur.unwrap().body + 1)).await;
        let s = u.unwrap().snapshot.unwrap();
        assert_eq!((s.version, s.body), (MAX, 8), "{ctx}");
        exhausted(
            m.update(|cur| Change::Write(cur.unwrap().body + 1)).await,
            "version",
            &ctx,
        );
        exhausted(m.write(Some(&s), 9).await, "version", &ctx);
        let now = m.load().await.unwrap().unwrap();
        assert_eq!((now.version, now.body), (MAX, 8), "{ctx}: unchanged");

        // Planted at the end: never version 0, never version 1 again.
        let base = keys::manifest(Family::Scratch, &n("at-end"));
        plant(&ns, strategy, &base, "counter", MAX, json!(1)).await;
        let m = c.manifest::<u64>("counter", base);
        exhausted(m.update(|_| Change::Write(2)).await, "version", &ctx);
        let now = m.load().await.unwrap().unwrap();
        assert_eq!((now.version, now.body), (MAX, 1), "{ctx}: unchanged");
        // Keeping the manifest as it is does no arithmetic and still works.
        assert!(!m.update(|_| Change::Keep).await.unwrap().changed);
    }
}

#[tokio::test]
async fn should_report_corrupt_when_a_chain_version_name_exceeds_u64() {
    for (ns, strategy) in each_backend().await {
        if strategy != Strategy::VersionChain {
            continue;
        }
        let c = ns.cairn("reader", strategy).await;
        let base = keys::manifest(Family::Scratch, &n("beyond"));
        plant(&ns, strategy, &base, "counter", 1, json!(1)).await;
        // 20 digits, as cairn names versions, but above u64::MAX (18446744073709551615).
        let beyond = format!("{}/99999999999999999999.json", keys::chain_folder(&base));
        put_raw(&ns, &beyond, envelope("counter", 1, json!(2))).await;
        let m = c.manifest::<u64>("counter", base);
        match m.load().await {
            Err(Error::Corrupt { key, .. }) => assert!(key.ends_with("99999999999999999999.json")),
            other => panic!("{:?}: expected Corrupt, got {other:?}", ns.backend),
        }
        assert!(m.update(|_| Change::Write(3)).await.is_err());
    }
}

// ---------------------------------------------------------------------------------------
// Locks (through the public `Locks` API; src/lock/ itself is another change's)

fn lock_body(state: &str, token: u64) -> Value {
    json!({
        "state": state, "holder": "old-holder", "session": "s-old",
        "fencing_token": token, "ttl_ms": 30_000,
        "acquired_at": origin(), "renewed_at": origin(), "expires_at": origin(),
    })
}

#[tokio::test]
async fn should_hand_out_the_last_fencing_token_once_then_refuse_to_wrap() {
    for (ns, strategy) in each_backend().await {
        let ctx = format!("{:?}/{strategy}", ns.backend);
        let base = keys::manifest(Family::Lock, &n("job"));
        plant(
            &ns,
            strategy,
            &base,
            "lock",
            MAX - 1,
            // The token is the last holder's + 1 (or drawn from time, far below MAX).
            lock_body("released", MAX - 1),
        )
        .await;
        let a = ns
            .cairn("a", strategy)
            .await
            .locks(LockOptions::default())
            .unwrap();
        let lease = match a.try_acquire(&n("job")).await.unwrap() {
            Acquire::Held(l) => l,
            Acquire::Busy(b) => panic!("{ctx}: busy {b:?}"),
        };
        assert_eq!(lease.fencing_token(), FencingToken(MAX), "{ctx}");
        // Releasing would need version MAX + 1: refused, never a tombstone at version 0.
        exhausted(lease.release().await, "version", &ctx);
        let info = a.show(&n("job")).await.unwrap().unwrap();
        assert_eq!(
            (info.version, info.fencing_token),
            (MAX, FencingToken(MAX)),
            "{ctx}"
        );
        exhausted(a.break_lock(&n("job")).await, "version", &ctx);
        // Another node sees it held at the last token.
        let b = ns
            .cairn("b", strategy)
            .await
            .locks(LockOptions::default())
            .unwrap();
        match b.try_acquire(&n("job")).await.unwrap() {
            Acquire::Busy(busy) => assert_eq!(busy.fencing_token, FencingToken(MAX), "{ctx}"),
            Acquire::Held(l) => panic!("{ctx}: acquired a held lock at {l:?}"),
        }
    }
}

/// The exact symptom: a lock at version `u64::MAX` handed out token 0. The manifest
/// layer now refuses version MAX + 1, which fixes it in release builds; in debug builds
/// src/lock/ computes the token itself (`c.version + 1` in `Locks::attempt`) and overflows
/// before the manifest layer is reached, so this needs the lease change too.
#[tokio::test]
async fn should_fail_exhausted_not_hand_out_token_zero_when_acquiring_a_lock_at_the_last_version() {
    for (ns, strategy) in each_backend().await {
        let ctx = format!("{:?}/{strategy}", ns.backend);
        let base = keys::manifest(Family::Lock, &n("job"));
        plant(
            &ns,
            strategy,
            &base,
            "lock",
            MAX,
            lock_body("released", MAX),
        )
        .await;
        let locks = ns
            .cairn("a", strategy)
            .await
            .locks(LockOptions::default())
            .unwrap();
        exhausted(locks.try_acquire(&n("job")).await, "version", &ctx);
    }
}

// ---------------------------------------------------------------------------------------
// Streams and records

fn stream_body(state: &str, incarnation: u64) -> Value {
    json!({
        "state": state, "incarnation": incarnation, "metadata": {"schema": 1},
        "created_by": "planted", "created_at": origin(),
    })
}

#[tokio::test]
async fn should_fail_exhausted_when_changing_a_stream_at_the_last_version() {
    for (ns, strategy) in each_backend().await {
        let ctx = format!("{:?}/{strategy}", ns.backend);
        let s = ns.cairn("ingestor", strategy).await.streams();
        let base = keys::manifest(Family::Stream, &n("active"));
        plant(
            &ns,
            strategy,
            &base,
            "stream",
            MAX,
            stream_body("active", 2),
        )
        .await;
        let stored = s.get(&n("active")).await.unwrap().unwrap();
        assert_eq!(stored.version, MAX, "{ctx}");
        // Same metadata: the same outcome as creating it, no write needed.
        assert!(matches!(
            s.create(&n("active"), json!({"schema": 1})).await.unwrap(),
            Create::Exists(_)
        ));
        exhausted(
            s.update(&n("active"), |_| Some(json!({"schema": 2}))).await,
            "version",
            &ctx,
        );
        exhausted(s.delete(&n("active")).await, "version", &ctx);
        assert_eq!(s.get(&n("active")).await.unwrap().unwrap(), stored, "{ctx}");

        // Deleted at the last version: creating it again would need version MAX + 1.
        let base = keys::manifest(Family::Stream, &n("gone"));
        plant(
            &ns,
            strategy,
            &base,
            "stream",
            MAX,
            stream_body("deleted", 2),
        )
        .await;
        exhausted(s.create(&n("gone"), json!({})).await, "version", &ctx);

        // Deleted at the last incarnation: a new incarnation would wrap to 0.
        let base = keys::manifest(Family::Stream, &n("reborn"));
        plant(
            &ns,
            strategy,
            &base,
            "stream",
            9,
            stream_body("deleted", MAX),
        )
        .await;
        exhausted(s.create(&n("reborn"), json!({})).await, "incarnation", &ctx);
        let still = s.get(&n("reborn")).await.unwrap().unwrap();
        assert_eq!((still.version, still.record.incarnation), (9, MAX), "{ctx}");
    }
}

#[tokio::test]
async fn should_fail_exhausted_when_a_record_manifest_is_at_the_last_version() {
    for (ns, strategy) in each_backend().await {
        let ctx = format!("{:?}/{strategy}", ns.backend);
        let r = ns.cairn("agent", strategy).await.records();
        let base = keys::record(&n("agents"), &n("a1"));
        let body = json!({"version": 5, "value": "connected", "written_by": "x"});
        plant(&ns, strategy, &base, "record", MAX, body).await;
        exhausted(
            r.put_if_newer(&n("agents"), &n("a1"), 6, json!("newer"))
                .await,
            "version",
            &ctx,
        );
        assert_eq!(
            r.put_if_newer(&n("agents"), &n("a1"), 5, json!("same"))
                .await
                .unwrap(),
            Put::Stale { stored_version: 5 },
            "{ctx}"
        );
        assert_eq!(
            r.get(&n("agents"), &n("a1")).await.unwrap().unwrap().value,
            json!("connected")
        );
    }
}

// ---------------------------------------------------------------------------------------
// Event log

fn log_key(topic: &str, seq: u64) -> String {
    keys::log_entry(&n(topic), seq).to_string()
}

fn entry(seq: u64) -> Vec<u8> {
    envelope("event", seq, json!({"n": seq.to_string()}))
}

async fn counted_log(
    ns: &Namespace,
    strategy: Strategy,
    node: &str,
) -> (EventLog, Arc<FaultStore>) {
    let faults = Arc::new(FaultStore::new(Arc::clone(&ns.store), 7));
    let c = ns.cairn_with(node, strategy, faults.clone(), |b| b).await;
    (c.event_log(), faults)
}

#[tokio::test]
async fn should_fail_exhausted_at_once_when_appending_after_the_last_sequence() {
    for (ns, strategy) in each_backend().await {
        let ctx = format!("{:?}/{strategy}", ns.backend);
        put_raw(&ns, &log_key("audit", 1), entry(1)).await;
        put_raw(&ns, &log_key("audit", MAX), entry(MAX)).await;
        let (log, faults) = counted_log(&ns, strategy, "appender").await;
        let before = faults.counts();
        exhausted(log.append(&n("audit"), json!("x")).await, "sequence", &ctx);
        let spent = faults.counts().since(&before);
        assert_eq!(spent.puts, 0, "{ctx}: no create attempted, let alone 64");
        assert_eq!(spent.lists, 1, "{ctx}: one listing found the end");
        // Again, now that the client knows the tail: still no request.
        let before = faults.counts();
        exhausted(log.append(&n("audit"), json!("x")).await, "sequence", &ctx);
        assert_eq!(faults.counts().since(&before).requests(), 0, "{ctx}");
        // Nothing was written at sequence 0 (or anywhere).
        let all = log.read(&n("audit"), 0, usize::MAX).await.unwrap();
        let seqs: Vec<u64> = all.iter().map(|e| e.sequence).collect();
        assert_eq!(seqs, vec![1, MAX], "{ctx}");
    }
}

#[tokio::test]
async fn should_append_the_last_sequence_once_then_fail_exhausted() {
    for (ns, strategy) in each_backend().await {
        let ctx = format!("{:?}/{strategy}", ns.backend);
        put_raw(&ns, &log_key("audit", MAX - 1), entry(MAX - 1)).await;
        let (log, faults) = counted_log(&ns, strategy, "appender").await;
        assert_eq!(
            log.append(&n("audit"), json!("last")).await.unwrap(),
            MAX,
            "{ctx}"
        );
        let before = faults.counts();
        exhausted(log.append(&n("audit"), json!("x")).await, "sequence", &ctx);
        assert_eq!(faults.counts().since(&before).puts, 0, "{ctx}");
        // Another client, which has not seen the tail, is told so too.
        let (other, _) = counted_log(&ns, strategy, "other").await;
        exhausted(
            other.append(&n("audit"), json!("y")).await,
            "sequence",
            &ctx,
        );
        let tail = log.read(&n("audit"), MAX, 10).await.unwrap();
        assert_eq!(tail.len(), 1, "{ctx}");
        assert_eq!(
            (tail[0].sequence, &tail[0].event),
            (MAX, &json!("last")),
            "{ctx}"
        );
    }
}

#[tokio::test]
async fn should_report_corrupt_when_a_log_entry_name_exceeds_u64() {
    for (ns, strategy) in each_backend().await {
        put_raw(&ns, &log_key("audit", 1), entry(1)).await;
        let beyond = format!("{}/99999999999999999999.json", keys::log_topic(&n("audit")));
        put_raw(&ns, &beyond, entry(1)).await;
        let (log, _) = counted_log(&ns, strategy, "appender").await;
        assert!(
            matches!(
                log.append(&n("audit"), json!("x")).await,
                Err(Error::Corrupt { .. })
            ),
            "{:?}",
            ns.backend
        );
        assert!(matches!(
            log.read(&n("audit"), 1, 10).await,
            Err(Error::Corrupt { .. })
        ));
    }
}

// ---------------------------------------------------------------------------------------
// Membership: stored durations

fn member_body(interval_ms: u64, latency_ms: f64, heartbeat_at: DateTime<Utc>) -> Value {
    json!({
        "state": "alive", "session": "s-planted", "interval_ms": interval_ms,
        "started_at": heartbeat_at, "heartbeat_at": heartbeat_at, "beats": MAX,
        "write_latency_ms": latency_ms,
    })
}

async fn plant_member(
    ns: &cairn::conformance::Namespace,
    strategy: Strategy,
    name: &str,
    body: Value,
) {
    let base = keys::manifest(Family::Node, &n(name));
    plant(ns, strategy, &base, "node", 1, body).await;
}

async fn paused_cairn(ns: &Namespace, node: &str, strategy: Strategy) -> cairn::Cairn {
    let clock = Arc::new(TestClock::new(origin()));
    ns.cairn_with(node, strategy, Arc::clone(&ns.store), |b| b.clock(clock))
        .await
}

#[tokio::test(start_paused = true)]
async fn should_refuse_at_once_to_join_over_a_record_with_an_endless_interval() {
    for backend in [Backend::Memory, Backend::Fs] {
        for &strategy in backend.strategies() {
            let ns = namespace(backend).await.unwrap();
            record_protocol(Arc::clone(&ns.store), &ns.prefix, strategy).await;
            let ctx = format!("{backend:?}/{strategy}");
            let base = keys::manifest(Family::Node, &n("a"));
            plant(
                &ns,
                strategy,
                &base,
                "node",
                1,
                member_body(MAX, 0.0, origin()),
            )
            .await;
            let c = paused_cairn(&ns, "a", strategy).await;
            let members = c.nodes(NodeOptions::default());
            let start = tokio::time::Instant::now();
            // Bounded: before the fix this slept for the planted interval (forever).
            let joined = tokio::time::timeout(Duration::from_secs(3600), members.join()).await;
            match joined {
                Ok(Err(Error::Corrupt { key, reason })) => {
                    assert!(key.starts_with("nodes/a"), "{ctx}: {key}");
                    assert!(reason.contains("interval_ms"), "{ctx}: {reason}");
                }
                Ok(other) => panic!("{ctx}: expected Corrupt, got {other:?}"),
                Err(_) => panic!("{ctx}: join waited an hour on a planted interval"),
            }
            assert_eq!(
                start.elapsed(),
                Duration::ZERO,
                "{ctx}: refused without waiting"
            );
            // Never overwritten.
            let stored = c
                .manifest::<Value>("node", base)
                .load()
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (stored.version, stored.body["session"].as_str()),
                (1, Some("s-planted"))
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn should_clamp_stored_durations_in_views_and_never_panic() {
    for backend in [Backend::Memory, Backend::Fs] {
        for &strategy in backend.strategies() {
            let ns = namespace(backend).await.unwrap();
            record_protocol(Arc::clone(&ns.store), &ns.prefix, strategy).await;
            // The store's clock is the viewer's: planted records age as the paused clock
            // moves (ages are read on the store's clock, from each record's Last-Modified).
            let clock = Arc::new(TestClock::new(origin()));
            let ns = cairn::conformance::Namespace::new(
                Arc::new(cairn::store::fault::FaultStore::stamped(
                    Arc::clone(&ns.store),
                    0,
                    clock.clone(),
                )),
                ns.prefix.clone(),
            );
            let ctx = format!("{backend:?}/{strategy}");
            let hour = chrono::Duration::hours(1);
            let far = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
            // Heartbeat 7 h ago with an endless interval: offline, not online forever.
            let forever = member_body(MAX, 0.0, origin() - hour * 7);
            plant_member(&ns, strategy, "forever", forever).await;
            // Absurd latency averages: clamped, not trusted.
            plant_member(&ns, strategy, "slow", member_body(2_000, 1e300, origin())).await;
            plant_member(
                &ns,
                strategy,
                "negative",
                member_body(2_000, -5.0, origin()),
            )
            .await;
            // Heartbeats at the ends of the calendar.
            let future = member_body(2_000, 0.0, far("9999-12-31T23:59:59Z"));
            plant_member(&ns, strategy, "future", future).await;
            let past = member_body(2_000, 0.0, far("0001-01-01T00:00:00Z"));
            plant_member(&ns, strategy, "past", past).await;

            // Seven hours on, by the store's clock and the viewer's.
            tokio::time::advance(Duration::from_secs(7 * 3600)).await;
            let c = ns
                .cairn_with("viewer", strategy, Arc::clone(&ns.store), |b| {
                    b.clock(clock)
                })
                .await;
            let members = c.nodes(NodeOptions::default());
            let views = [
                members.list().await.unwrap(),
                members
                    .view(cairn::cache::CacheOptions::for_nodes(Duration::from_secs(
                        2,
                    )))
                    .list()
                    .await
                    .unwrap()
                    .items,
            ];
            for all in views {
                let get = |id: &str| all.iter().find(|m| m.node == id).unwrap().clone();
                let hour_ms = 3_600_000;
                let forever = get("forever");
                assert_eq!(
                    forever.timeout_ms,
                    2 * hour_ms,
                    "{ctx}: interval clamped to 1 h, base two intervals"
                );
                assert_eq!(forever.health, Health::Offline, "{ctx}");
                assert_eq!(get("slow").timeout_ms, 4_000 + 2 * hour_ms, "{ctx}");
                assert_eq!(get("negative").timeout_ms, 4_000, "{ctx}");
                // A stored heartbeat time says nothing: ages are the store's.
                assert_eq!(get("future").age_ms, 7 * hour_ms, "{ctx}");
                assert_eq!(get("past").health, Health::Offline, "{ctx}");
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn should_refuse_to_heartbeat_at_an_interval_others_would_reject() {
    let ns = namespace(Backend::Memory).await.unwrap();
    let c = paused_cairn(&ns, "a", Strategy::EtagCas).await;
    let members = c.nodes(NodeOptions {
        interval: Duration::from_secs(2 * 3600),
        ..Default::default()
    });
    assert!(matches!(members.join().await, Err(Error::Config(_))));
}

// ---------------------------------------------------------------------------------------
// Bounded reads

/// Wraps a store and counts the body bytes callers actually pull from GET streams. With
/// `understate`, it reports every object as 100 bytes long (a server lying about size).
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn ObjectStore>,
    pulled: Arc<AtomicU64>,
    understate: bool,
}

impl std::fmt::Display for Counting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

/// A stream that counts what is pulled through it.
struct Pulled {
    inner: BoxStream<'static, object_store::Result<Bytes>>,
    pulled: Arc<AtomicU64>,
}

impl Stream for Pulled {
    type Item = object_store::Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let r = self.inner.poll_next_unpin(cx);
        if let Poll::Ready(Some(Ok(b))) = &r {
            self.pulled.fetch_add(b.len() as u64, Ordering::SeqCst);
        }
        r
    }
}

const CHUNK: usize = 64 * 1024;

#[async_trait]
impl ObjectStore for Counting {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let r = self.inner.get_opts(location, options).await?;
        let (mut meta, mut range, attributes, extensions) = (
            r.meta.clone(),
            r.range.clone(),
            r.attributes.clone(),
            r.extensions.clone(),
        );
        // Re-chunk into 64 KiB pieces, as bytes arrive from a network.
        let chunks = r
            .into_stream()
            .map(|b| match b {
                Ok(b) => {
                    let pieces: Vec<_> = (0..b.len())
                        .step_by(CHUNK)
                        .map(|i| Ok(b.slice(i..(i + CHUNK).min(b.len()))))
                        .collect();
                    futures::stream::iter(pieces)
                }
                Err(e) => futures::stream::iter(vec![Err(e)]),
            })
            .flatten()
            .boxed();
        if self.understate {
            meta.size = 100;
            range = 0..100;
        }
        Ok(GetResult {
            payload: GetResultPayload::Stream(
                Pulled {
                    inner: chunks,
                    pulled: Arc::clone(&self.pulled),
                }
                .boxed(),
            ),
            meta,
            range,
            attributes,
            extensions,
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

const OVERSIZE: usize = 8 << 20; // 8 MiB

/// A JSON-looking manifest padded to `len` bytes.
fn oversize_manifest(kind: &str, version: u64, len: usize) -> Vec<u8> {
    let mut b = envelope(kind, version, stream_body("active", 1));
    b.pop(); // the closing brace
    b.extend_from_slice(b",\"pad\":\"");
    b.resize(len - 2, b'x');
    b.extend_from_slice(b"\"}");
    b
}

fn assert_oversize(r: Result<impl std::fmt::Debug, Error>, ctx: &str) {
    match r {
        Err(e @ (Error::Corrupt { .. } | Error::Ambiguous { .. })) => {
            assert!(
                e.to_string().contains("exceeds the 1 MiB limit"),
                "{ctx}: {e}"
            )
        }
        other => panic!("{ctx}: expected an oversize error, got {other:?}"),
    }
}

#[tokio::test]
async fn should_report_corrupt_and_not_read_the_body_of_an_oversize_manifest() {
    assert_eq!(MAX_OBJECT_BYTES, 1 << 20);
    for (ns, strategy) in each_backend().await {
        let ctx = format!("{:?}/{strategy}", ns.backend);
        let base = keys::manifest(Family::Stream, &n("huge"));
        let key = manifest_key(strategy, &base, 1);
        put_raw(&ns, &key, oversize_manifest("stream", 1, OVERSIZE)).await;
        let pulled = Arc::new(AtomicU64::new(0));
        let counting = Arc::new(Counting {
            inner: Arc::clone(&ns.store),
            pulled: Arc::clone(&pulled),
            understate: false,
        });
        let c = ns.cairn_with("querier", strategy, counting, |b| b).await;
        // Building read the prefix's protocol record through the counting store.
        pulled.store(0, Ordering::SeqCst);
        let s = c.streams();
        match s.get(&n("huge")).await {
            Err(Error::Corrupt { key: k, reason }) => {
                assert!(k.ends_with(".json"), "{ctx}: {k}");
                assert!(
                    reason.contains(&format!(
                        "object of {OVERSIZE} bytes exceeds the 1 MiB limit"
                    )),
                    "{ctx}: {reason}"
                );
            }
            other => panic!("{ctx}: expected Corrupt, got {other:?}"),
        }
        assert_eq!(
            pulled.load(Ordering::SeqCst),
            0,
            "{ctx}: the body was not read"
        );
        assert_oversize(s.list().await, &ctx);
        // Never overwritten: every write path refuses.
        assert_oversize(s.create(&n("huge"), json!({})).await, &ctx);
        assert!(s
            .update(&n("huge"), |_| Some(json!({"a": 1})))
            .await
            .is_err());
        let meta = ns.store.head(&raw_path(&ns, &key)).await.unwrap();
        assert_eq!(meta.size, OVERSIZE as u64, "{ctx}: untouched");
        assert!(
            pulled.load(Ordering::SeqCst) <= MAX_OBJECT_BYTES,
            "{ctx}: never more than the limit pulled"
        );
    }
}

#[tokio::test]
async fn should_stop_reading_at_the_limit_when_a_store_understates_the_size() {
    for (ns, strategy) in each_backend().await {
        let ctx = format!("{:?}/{strategy}", ns.backend);
        put_raw(
            &ns,
            &log_key("audit", 1),
            oversize_manifest("event", 1, OVERSIZE),
        )
        .await;
        let pulled = Arc::new(AtomicU64::new(0));
        let lying = Arc::new(Counting {
            inner: Arc::clone(&ns.store),
            pulled: Arc::clone(&pulled),
            understate: true,
        });
        let log = ns
            .cairn_with("reader", strategy, lying, |b| b)
            .await
            .event_log();
        // Building read the prefix's protocol record through the lying store.
        pulled.store(0, Ordering::SeqCst);
        match log.read(&n("audit"), 1, 10).await {
            Err(Error::Corrupt { reason, .. }) => {
                assert!(
                    reason.contains("exceeds the 1 MiB limit"),
                    "{ctx}: {reason}"
                )
            }
            other => panic!("{ctx}: expected Corrupt, got {other:?}"),
        }
        let got = pulled.load(Ordering::SeqCst);
        assert!(
            got > 0 && got <= MAX_OBJECT_BYTES + CHUNK as u64,
            "{ctx}: pulled {got} bytes; reading must stop just past the limit"
        );
    }
}

#[tokio::test]
async fn should_refuse_a_value_over_the_limit_before_any_request() {
    for &strategy in Backend::Memory.strategies() {
        let ns = namespace(Backend::Memory).await.unwrap();
        let faults = Arc::new(FaultStore::new(Arc::clone(&ns.store), 1));
        let c = ns
            .cairn_with("writer", strategy, faults.clone(), |b| b)
            .await;
        let big = json!({ "blob": "x".repeat(2 << 20) });
        let before = faults.counts();
        assert!(matches!(
            c.streams().create(&n("big"), big.clone()).await,
            Err(Error::Encode { .. })
        ));
        assert!(matches!(
            c.event_log().append(&n("audit"), big.clone()).await,
            Err(Error::Encode { .. })
        ));
        assert_eq!(
            faults.counts().since(&before).puts,
            0,
            "{strategy}: nothing sent"
        );
        // Just under the limit is fine.
        let fits = json!({ "blob": "x".repeat(512 << 10) });
        assert!(matches!(
            c.streams().create(&n("fits"), fits).await.unwrap(),
            Create::Created(_)
        ));
    }
}

// ---------------------------------------------------------------------------------------
// The CLI symptoms

fn cli(dir: &std::path::Path, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.arg("--store")
        .arg(format!("file://{}", dir.display()))
        .args(["--strategy", "version-chain"])
        .args(args)
        .env_remove("CAIRN_STORE")
        .env_remove("CAIRN_NODE")
        .env_remove("CAIRN_STRATEGY")
        .kill_on_drop(true);
    c
}

/// Runs to completion, or fails the test if it is still running after a generous bound (it
/// should exit at once; the bound only turns a hang into a failure).
async fn run_bounded(mut c: tokio::process::Command) -> std::process::Output {
    let out = tokio::time::timeout(Duration::from_secs(60), c.output()).await;
    out.expect("the command hung").expect("the command ran")
}

async fn plant_fs(dir: &std::path::Path, key: &str, bytes: Vec<u8>) {
    let fs = object_store::local::LocalFileSystem::new_with_prefix(dir).unwrap();
    if fs.head(&Path::from("_cairn/protocol.json")).await.is_err() {
        record_protocol(Arc::new(fs), "", Strategy::VersionChain).await;
    }
    let fs = object_store::local::LocalFileSystem::new_with_prefix(dir).unwrap();
    fs.put(&Path::from(key), PutPayload::from(bytes))
        .await
        .unwrap();
}

#[tokio::test]
async fn cli_log_tail_follow_stops_at_the_end_of_the_sequence_range_instead_of_spinning() {
    let dir = tempfile::tempdir().unwrap();
    plant_fs(dir.path(), &log_key("audit", 1), entry(1)).await;
    plant_fs(dir.path(), &log_key("audit", MAX), entry(MAX)).await;
    let out = run_bounded(cli(
        dir.path(),
        &[
            "--json",
            "log",
            "tail",
            "audit",
            "--follow",
            "--interval",
            "100ms",
        ],
    ))
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect();
    // The entries, then the error as one JSON object (`--json`).
    let (error, entries) = lines.split_last().expect("output");
    let seqs: Vec<u64> = entries
        .iter()
        .map(|v| v["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, MAX], "each entry printed once: {stdout}");
    assert_eq!(error["error"]["exit"], 1, "{stdout}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("end of its range"), "{stderr}");

    // Without --follow: prints to the end and exits 0.
    let out = run_bounded(cli(dir.path(), &["log", "tail", "audit"])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
}

#[tokio::test]
async fn cli_node_heartbeat_refuses_a_record_with_an_endless_interval_instead_of_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let base = keys::manifest(Family::Node, &n("a"));
    // Heartbeat "now", so the record looks alive to the joining process.
    let body = member_body(MAX, 0.0, Utc::now());
    plant_fs(
        dir.path(),
        &keys::chain_version(&base, 1).to_string(),
        envelope("node", 1, body),
    )
    .await;
    let out = run_bounded(cli(dir.path(), &["--node", "a", "node", "heartbeat"])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interval_ms"), "{stderr}");

    let out = run_bounded(cli(dir.path(), &["--json", "node", "ls"])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(all[0]["node"], "a");
    assert_eq!(
        all[0]["timeout_ms"],
        2 * 3_600_000,
        "interval clamped to 1 h, base two"
    );
}
