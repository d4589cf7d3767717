//! No stored value makes cairn panic (issue 11). Whatever sits at a cairn key — a bug's, an
//! operator's or an attacker's — every reader answers with a valid value or a typed error
//! that names what it read; it never panics, in the calling task or in a background one.
//!
//! Each property plants one document of one type with arbitrary *field values*, not only
//! arbitrary bytes: numbers at and past the ends of their ranges (0, −1, `u64::MAX`, `i64`
//! extremes, huge floats), timestamps at the ends of the calendar and of chrono's range,
//! odd strings, values of the wrong JSON type, missing fields and extra ones, in an envelope
//! whose header is perturbed the same way. Then it runs every reader of that type on it:
//! `get`/`show`/`list`, the cached views, followers, and the operations that read before
//! they write (acquire, claim, join, create, put, append). The CLI's printers run last, in
//! the `cairn` binary, on a planted directory, for a bounded number of cases.
//!
//! Every property runs on a paused clock, so a reader that sleeps on a stored duration does
//! so in virtual time.

mod common;

use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use cairn::cache::CacheOptions;
use cairn::lock::LockOptions;
use cairn::manifest::{Change, Strategy as ManifestStrategy};
use cairn::node::NodeOptions;
use cairn::store::keys::{self, Family, Key};
use cairn::stream::Cursor;
use cairn::turn::{Claim, TurnOptions};
use cairn::{Acquire, Cairn, Error, Name, StrategyChoice, TestClock};
use chrono::{DateTime, Utc};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------
// Arbitrary field values

fn origin() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap()
}

/// A `u64`: mostly plausible, often at an end of its range.
fn count() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => (0u64..200_000).prop_map(Value::from),
        1 => Just(json!(0)),
        1 => Just(json!(1)),
        1 => Just(json!(u64::MAX)),
        1 => Just(json!(u64::MAX - 1)),
        1 => Just(json!(i64::MAX)),
        1 => any::<u64>().prop_map(Value::from),
    ]
    .boxed()
}

/// A finite `f64`: plausible, negative, tiny or huge.
fn real() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => (0.0f64..10_000.0).prop_map(Value::from),
        1 => Just(json!(-0.0)),
        1 => Just(json!(-5.0)),
        1 => Just(json!(1e300)),
        1 => Just(json!(-1e300)),
        1 => Just(json!(f64::MIN_POSITIVE)),
        1 => any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
    ]
    .boxed()
}

/// A time: mostly near the test clock's, often at the ends of the calendar or of chrono's
/// range.
fn time() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => (-100_000i64..100_000)
            .prop_map(|s| json!(origin() + chrono::Duration::seconds(s))),
        1 => Just(json!("0001-01-01T00:00:00Z")),
        1 => Just(json!("9999-12-31T23:59:59.999999999Z")),
        1 => Just(json!(DateTime::<Utc>::MAX_UTC)),
        1 => Just(json!(DateTime::<Utc>::MIN_UTC)),
        1 => Just(json!("1970-01-01T00:00:00Z")),
        1 => Just(json!("2026-01-01T00:00:00+23:59")),
        1 => (DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp())
            .prop_map(|s| json!(DateTime::<Utc>::from_timestamp(s, 0))),
    ]
    .boxed()
}

/// A string: mostly a plain one, sometimes empty, huge or hostile.
fn text() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => "[a-z0-9-]{1,12}".prop_map(Value::from),
        1 => Just(json!("")),
        1 => Just(json!("../../etc/passwd")),
        1 => Just(json!("a/b\\c\u{0}\u{202e}\u{1F600}")),
        1 => Just(json!("x".repeat(10_000))),
        1 => "\\PC{0,40}".prop_map(Value::from),
    ]
    .boxed()
}

/// A value of the wrong type or out of any field's range: a negative or fractional number
/// where a count goes, a number beyond `u64`, a string that is not a time, `null`, a list.
fn wrong() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(json!(-1)),
        Just(json!(i64::MIN)),
        Just(json!(0.5)),
        Just(json!(1e20)),
        Just(json!("2026-02-30T00:00:00Z")),
        Just(json!("+262143-01-01T00:00:00Z")),
        Just(json!("not a time")),
        Just(json!("1")),
        Just(Value::Null),
        Just(json!(true)),
        Just(json!([1, 2])),
        Just(json!({"a": {}})),
    ]
    .boxed()
}

/// A field's value: of its type, however extreme, and now and then of another.
fn field(valid: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![60 => valid, 1 => wrong()].boxed()
}

/// One of `words` (the valid values of an enum field), or something else.
fn word(words: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop_oneof![
        60 => prop::sample::select(words).prop_map(Value::from),
        1 => Just(json!("HELD")),
        1 => Just(json!("")),
        1 => wrong(),
    ]
    .boxed()
}

/// Any JSON: leaves of every type, and shallow nesting.
fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        count(),
        real(),
        text(),
        wrong(),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// An object with these fields, each arbitrary, now and then missing, plus sometimes an
/// extra one; once in a while not an object at all.
fn doc(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let (names, values): (Vec<_>, Vec<_>) = fields
        .into_iter()
        .map(|(n, s)| (n, prop::option::weighted(0.99, s)))
        .unzip();
    let extras = prop::collection::vec(("[a-z_]{1,10}", any_json()), 0..2);
    let object = (values, extras).prop_map(move |(values, extras)| {
        let mut m = Map::new();
        for (name, v) in names.iter().zip(values) {
            if let Some(v) = v {
                m.insert((*name).to_string(), v);
            }
        }
        for (k, v) in extras {
            m.entry(k).or_insert(v);
        }
        Value::Object(m)
    });
    prop_oneof![80 => object, 1 => any_json()].boxed()
}

/// Sometimes absent (`null`), else `v`.
fn nullable(v: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![1 => Just(Value::Null), 3 => v].boxed()
}

/// The manifest envelope around `body`, its header perturbed like any document.
fn envelope(
    kind: &'static str,
    key_version: u64,
    body: BoxedStrategy<Value>,
) -> BoxedStrategy<Value> {
    let kinds = &[
        "lock", "turn", "stream", "record", "node", "member", "event", "protocol",
    ];
    doc(vec![
        (
            "format",
            prop_oneof![80 => Just(json!(1)), 1 => count(), 1 => wrong()].boxed(),
        ),
        (
            "kind",
            prop_oneof![80 => Just(json!(kind)), 1 => word(kinds)].boxed(),
        ),
        (
            "version",
            prop_oneof![20 => Just(json!(key_version)), 1 => field(count())].boxed(),
        ),
        ("write_id", field(text())),
        ("previous_write_id", nullable(field(text()))),
        ("written_by", field(text())),
        ("written_at", field(time())),
        ("body", body),
    ])
}

fn lock_body() -> BoxedStrategy<Value> {
    doc(vec![
        ("state", word(&["held", "released", "broken"])),
        ("holder", field(text())),
        ("session", field(text())),
        ("fencing_token", field(count())),
        ("ttl_ms", field(count())),
        ("acquired_at", field(time())),
        ("renewed_at", field(time())),
        ("expires_at", field(time())),
        ("broken_by", nullable(field(text()))),
        ("broken_at", nullable(field(time()))),
    ])
}

fn turn_outcome() -> BoxedStrategy<Value> {
    doc(vec![
        ("status", word(&["success", "failure"])),
        ("duration_ms", field(count())),
        ("result", nullable(any_json())),
        ("error", nullable(field(text()))),
    ])
}

fn turn_body() -> BoxedStrategy<Value> {
    let previous = doc(vec![
        ("turn", field(count())),
        ("holder", field(text())),
        ("started_at", field(time())),
        ("finished_at", nullable(field(time()))),
        ("outcome", nullable(turn_outcome())),
    ]);
    doc(vec![
        ("turn", field(count())),
        ("holder", field(text())),
        ("session", field(text())),
        ("window_ms", field(count())),
        (
            "jitter_ms",
            field(prop_oneof![3 => (0u64..60_000).prop_map(Value::from), 1 => count()].boxed()),
        ),
        ("started_at", field(time())),
        ("finished_at", nullable(field(time()))),
        ("outcome", nullable(turn_outcome())),
        ("previous", nullable(previous)),
    ])
}

fn stream_body() -> BoxedStrategy<Value> {
    doc(vec![
        ("state", word(&["active", "deleted"])),
        ("incarnation", field(count())),
        ("metadata", any_json()),
        ("created_by", field(text())),
        ("created_at", field(time())),
    ])
}

fn record_body() -> BoxedStrategy<Value> {
    doc(vec![
        ("version", field(count())),
        ("value", any_json()),
        ("written_by", field(text())),
    ])
}

fn member_body() -> BoxedStrategy<Value> {
    doc(vec![
        ("state", word(&["alive", "left"])),
        ("session", field(text())),
        ("interval_ms", field(count())),
        ("started_at", field(time())),
        ("heartbeat_at", field(time())),
        ("beats", field(count())),
        ("write_latency_ms", field(real())),
    ])
}

fn protocol_record() -> BoxedStrategy<Value> {
    doc(vec![
        (
            "format",
            prop_oneof![20 => Just(json!(1)), 1 => field(count())].boxed(),
        ),
        ("kind", word(&["protocol"])),
        ("strategy", word(&["etag-cas", "version-chain"])),
        ("write_id", field(text())),
        ("created_by", field(text())),
        ("created_at", field(time())),
        ("cairn_version", field(text())),
        ("capabilities", nullable(any_json())),
        ("gc_min_age_ms", nullable(field(count()))),
    ])
}

/// The version in a chain key: the first, the last two, or any.
fn key_version() -> BoxedStrategy<u64> {
    prop_oneof![
        3 => Just(1u64),
        1 => Just(2u64),
        1 => Just(u64::MAX - 1),
        1 => Just(u64::MAX),
        1 => any::<u64>(),
    ]
    .boxed()
}

fn any_strategy() -> BoxedStrategy<ManifestStrategy> {
    prop_oneof![
        Just(ManifestStrategy::EtagCas),
        Just(ManifestStrategy::VersionChain)
    ]
    .boxed()
}

/// A planted manifest of `kind`: the strategy, the version in its key, and the document.
fn planted(
    kind: &'static str,
    body: fn() -> BoxedStrategy<Value>,
) -> BoxedStrategy<(ManifestStrategy, u64, Value)> {
    (any_strategy(), key_version())
        .prop_flat_map(move |(s, v)| (Just(s), Just(v), envelope(kind, v, body())))
        .boxed()
}

// ---------------------------------------------------------------------------------------
// Planting and judging

fn n(s: &str) -> Name {
    Name::new(s).unwrap()
}

fn manifest_key(strategy: ManifestStrategy, base: &Key, version: u64) -> Key {
    match strategy {
        ManifestStrategy::EtagCas => keys::etag_object(base),
        ManifestStrategy::VersionChain => keys::chain_version(base, version),
    }
}

async fn put(store: &Arc<dyn ObjectStore>, key: &Key, doc: &Value) {
    store
        .put(
            &Path::from(key.as_str()),
            PutPayload::from(serde_json::to_vec(doc).unwrap()),
        )
        .await
        .unwrap();
}

/// A memory store whose clock is the handles' (`origin()` from now): their clock checks
/// find them in step, so what is judged is what the stored documents say.
fn memory() -> Arc<dyn ObjectStore> {
    let clock = Arc::new(TestClock::new(origin()));
    Arc::new(cairn::store::fault::FaultStore::stamped(
        Arc::new(InMemory::new()),
        0,
        clock,
    ))
}

/// A handle as node `node-a`, on a clock at `origin()`, with a fixed strategy.
async fn handle(store: &Arc<dyn ObjectStore>, strategy: ManifestStrategy) -> Cairn {
    Cairn::builder(Arc::clone(store))
        .node("node-a")
        .unwrap()
        .seed(7)
        .clock(Arc::new(TestClock::new(origin())))
        .strategy(StrategyChoice::Fixed(strategy))
        // The planted objects are in use, and no protocol record is planted: an open would
        // refuse the prefix (`ProtocolRecordMissing`), so the handle records it, as an
        // operator's repair does (the planted keys have the strategy's shape).
        .recreate_protocol()
        .build()
        .await
        .expect("the handle records the protocol of the planted objects")
}

/// Panics anywhere in the process since it started: in a reader, or in a task it spawned
/// (a renewal, a heartbeat), which would otherwise die unseen.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
}

/// Runs `body` on a fresh current-thread runtime with a paused clock; fails the case if
/// anything panicked meanwhile.
fn on_paused_clock<F>(body: F) -> Result<(), TestCaseError>
where
    F: std::future::Future<Output = Result<(), TestCaseError>>,
{
    count_panics();
    let before = PANICS.load(Ordering::SeqCst);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let result = rt.block_on(body);
    drop(rt);
    prop_assert_eq!(
        PANICS.load(Ordering::SeqCst),
        before,
        "something panicked (see the output above)"
    );
    result
}

/// What readers found: whether any reported the planted document as bad.
#[derive(Default)]
struct Verdicts {
    bad: Vec<String>,
}

impl Verdicts {
    /// A reader's answer must be a value, or a typed error about stored data that names
    /// `name` (the key it read is built from it).
    fn judge<T: Debug>(
        &mut self,
        what: &str,
        name: &str,
        r: Result<T, Error>,
    ) -> Result<Option<T>, TestCaseError> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                let typed = matches!(
                    e,
                    Error::Corrupt { .. }
                        | Error::UnsupportedFormat { .. }
                        | Error::WrongKind { .. }
                        | Error::Exhausted { .. }
                        | Error::TurnMismatch { .. }
                        | Error::DuplicateNode { .. }
                );
                prop_assert!(
                    typed,
                    "{}: not a typed error about stored data: {:?}",
                    what,
                    e
                );
                if let Error::Corrupt { key, .. } = &e {
                    prop_assert!(
                        key.contains(name),
                        "{}: Corrupt names {:?}, not {:?}",
                        what,
                        key,
                        name
                    );
                }
                prop_assert!(
                    e.to_string().contains(name),
                    "{}: the error does not name {:?}: {}",
                    what,
                    name,
                    e
                );
                self.bad.push(format!("{what}: {e}"));
                Ok(None)
            }
        }
    }
}

/// A document a reader refused is never overwritten: under etag CAS its one object is still
/// as planted (under the version chain the planted object is immutable anyway).
async fn untouched_if_refused(
    store: &Arc<dyn ObjectStore>,
    key: &Key,
    planted: &Value,
    first_read_refused: bool,
) -> Result<(), TestCaseError> {
    if !first_read_refused {
        return Ok(());
    }
    let now = store
        .get(&Path::from(key.as_str()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    prop_assert_eq!(
        &now[..],
        &serde_json::to_vec(planted).unwrap()[..],
        "overwritten"
    );
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// The library's readers

proptest! {
    #![proptest_config(config())]

    #[test]
    fn no_stored_lock_makes_a_reader_panic((strategy, version, doc) in planted("lock", lock_body)) {
        on_paused_clock(async move {
            let store = memory();
            let key = manifest_key(strategy, &keys::manifest(Family::Lock, &n("job")), version);
            put(&store, &key, &doc).await;
            let c = handle(&store, strategy).await;
            let locks = c.locks(LockOptions::default()).unwrap();
            let mut v = Verdicts::default();
            let refused = v.judge("show", "job", locks.show(&n("job")).await)?.is_none();
            v.judge("list", "job", locks.list().await)?;
            v.judge("manifest history", "job", c.manifest::<Value>("lock", keys::manifest(Family::Lock, &n("job"))).history().await)?;
            if let Some(Acquire::Held(lease)) = v.judge("try_acquire", "job", locks.try_acquire(&n("job")).await)? {
                let _ = lease.fencing_token();
                v.judge("release", "job", lease.release().await)?;
            }
            v.judge("acquire (waits)", "job", tokio::time::timeout(Duration::from_secs(3600), locks.acquire(&n("job"), Some(Duration::from_secs(120)))).await.expect("bounded by its own wait"))?;
            v.judge("break", "job", locks.break_lock(&n("job")).await)?;
            untouched_if_refused(&store, &key, &doc, refused).await
        })?;
    }

    #[test]
    fn no_stored_turn_makes_a_reader_panic((strategy, version, doc) in planted("turn", turn_body)) {
        on_paused_clock(async move {
            let store = memory();
            let key = manifest_key(strategy, &keys::manifest(Family::Turn, &n("expiry")), version);
            put(&store, &key, &doc).await;
            let c = handle(&store, strategy).await;
            let mut v = Verdicts::default();
            let strict = c.turns(TurnOptions::default());
            let adopting = c.turns(TurnOptions { adopt_stored: true, ..TurnOptions::default() });
            let refused = v.judge("get", "expiry", strict.get(&n("expiry")).await)?.is_none();
            v.judge("list", "expiry", strict.list().await)?;
            v.judge("try_claim", "expiry", strict.try_claim(&n("expiry")).await)?;
            if let Some(Claim::Won(t)) = v.judge("try_claim (adopting)", "expiry", adopting.try_claim(&n("expiry")).await)? {
                v.judge("finish", "expiry", t.finish(Ok(Some(json!({"expired": 3})))).await)?;
            }
            // The loop sleeps on stored times and claims on stored windows: a virtual minute.
            let stop = CancellationToken::new();
            let looped = tokio::time::timeout(
                Duration::from_secs(60),
                adopting.run_loop(&n("expiry"), |_| async { Ok(None) }, stop),
            )
            .await;
            if let Ok(r) = looped {
                v.judge("run_loop", "expiry", r)?;
            }
            untouched_if_refused(&store, &key, &doc, refused).await?;
            // Reconfiguring is the operator's way to repair a turn's stored timing: it may
            // write over a turn whose window or jitter was refused.
            v.judge("reconfigure", "expiry", adopting.reconfigure(&n("expiry"), Duration::from_secs(60), Duration::from_secs(5)).await)?;
            Ok(())
        })?;
    }

    #[test]
    fn no_stored_stream_makes_a_reader_panic((strategy, version, doc) in planted("stream", stream_body)) {
        on_paused_clock(async move {
            let store = memory();
            let key = manifest_key(strategy, &keys::manifest(Family::Stream, &n("clicks")), version);
            put(&store, &key, &doc).await;
            let c = handle(&store, strategy).await;
            let s = c.streams();
            let mut v = Verdicts::default();
            let refused = v.judge("get", "clicks", s.get(&n("clicks")).await)?.is_none();
            v.judge("list", "clicks", s.list().await)?;
            let view = s.view(CacheOptions { fresh: Duration::ZERO, ..CacheOptions::for_streams() });
            v.judge("view list", "clicks", view.list().await)?;
            v.judge("view list again", "clicks", view.list().await)?;
            v.judge("view get", "clicks", view.get(&n("clicks")).await)?;
            let mut follower = s.follow(Cursor::default());
            v.judge("follow", "clicks", follower.poll().await)?;
            v.judge("follow again", "clicks", follower.poll().await)?;
            v.judge("create", "clicks", s.create(&n("clicks"), json!({"schema": 1})).await)?;
            v.judge("update", "clicks", s.update(&n("clicks"), |_| Some(json!({"schema": 2}))).await)?;
            v.judge("delete", "clicks", s.delete(&n("clicks")).await)?;
            untouched_if_refused(&store, &key, &doc, refused).await
        })?;
    }

    #[test]
    fn no_stored_record_makes_a_reader_panic((strategy, version, doc) in planted("record", record_body)) {
        on_paused_clock(async move {
            let store = memory();
            let key = manifest_key(strategy, &keys::record(&n("agents"), &n("a1")), version);
            put(&store, &key, &doc).await;
            let c = handle(&store, strategy).await;
            let r = c.records();
            let mut v = Verdicts::default();
            let refused = v.judge("get", "a1", r.get(&n("agents"), &n("a1")).await)?.is_none();
            v.judge("keys", "agents", r.keys(&n("agents")).await)?;
            for version in [0, 5, u64::MAX] {
                v.judge("put_if_newer", "a1", r.put_if_newer(&n("agents"), &n("a1"), version, json!("connected")).await)?;
            }
            untouched_if_refused(&store, &key, &doc, refused).await
        })?;
    }

    #[test]
    fn no_stored_heartbeat_makes_a_reader_panic((strategy, version, doc) in planted("node", member_body)) {
        on_paused_clock(async move {
            let store = memory();
            // The handle's own node id: joining reads this record.
            let key = manifest_key(strategy, &keys::manifest(Family::Node, &n("node-a")), version);
            put(&store, &key, &doc).await;
            let c = handle(&store, strategy).await;
            let members = c.nodes(NodeOptions::default());
            let mut v = Verdicts::default();
            let refused = v.judge("list", "node-a", members.list().await)?.is_none();
            let view = members.view(CacheOptions { fresh: Duration::ZERO, ..CacheOptions::for_nodes(Duration::from_secs(2)) });
            v.judge("view list", "node-a", view.list().await)?;
            v.judge("view list again", "node-a", view.list().await)?;
            // Joining may watch another session's record for its timeout (virtual time).
            let joined = tokio::time::timeout(Duration::from_secs(24 * 3600), members.join()).await.expect("join waits at most its checked timeout");
            if let Some(beats) = v.judge("join", "node-a", joined)? {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let _ = beats.last();
                v.judge("leave", "node-a", beats.leave().await)?;
            }
            untouched_if_refused(&store, &key, &doc, refused).await
        })?;
    }

    #[test]
    fn no_stored_log_entry_makes_a_reader_panic(
        (sequence, doc) in key_version().prop_flat_map(|s| (Just(s), envelope("event", s, any_json())))
    ) {
        on_paused_clock(async move {
            let store = memory();
            let key = keys::log_entry(&n("audit"), sequence);
            put(&store, &key, &doc).await;
            let c = handle(&store, ManifestStrategy::VersionChain).await;
            let log = c.event_log();
            let mut v = Verdicts::default();
            let refused = v.judge("read", "audit", log.read(&n("audit"), 0, usize::MAX).await)?.is_none();
            v.judge("read from 2", "audit", log.read(&n("audit"), 2, 10).await)?;
            v.judge("read from the end", "audit", log.read(&n("audit"), u64::MAX, 10).await)?;
            if let Ok(r) = tokio::time::timeout(Duration::from_secs(1), log.wait_for(&n("audit"), 1, Duration::from_millis(100))).await {
                v.judge("wait_for", "audit", r)?;
            }
            v.judge("append", "audit", log.append(&n("audit"), json!({"event": "x"})).await)?;
            untouched_if_refused(&store, &key, &doc, refused).await
        })?;
    }

    #[test]
    fn no_protocol_record_makes_a_node_panic(doc in protocol_record(), strategy in any_strategy()) {
        on_paused_clock(async move {
            let store = memory();
            put(&store, &keys::protocol(), &doc).await;
            let mut v = Verdicts::default();
            let read = cairn::store::Store::new(Arc::clone(&store), "", Default::default()).unwrap();
            v.judge("read_protocol", "protocol", read.read_protocol().await)?;
            let build = |choice| {
                Cairn::builder(Arc::clone(&store))
                    .node("node-a")
                    .unwrap()
                    .clock(Arc::new(TestClock::new(origin())))
                    .strategy(choice)
            };
            // A record naming another strategy than a fixed one is refused as such.
            for (what, built) in [
                ("observe", build(StrategyChoice::Fixed(strategy)).observer().build().await),
                ("build (fixed)", build(StrategyChoice::Fixed(strategy)).build().await),
            ] {
                match built {
                    Err(Error::ProtocolMismatch { key, .. }) => prop_assert!(key.contains("protocol")),
                    other => {
                        v.judge(what, "protocol", other)?;
                    }
                }
            }
            if let Some(c) = v.judge("build (probe)", "protocol", build(StrategyChoice::Probe).build().await)? {
                // The recorded collection age and strategy at work.
                let m = c.manifest::<u64>("counter", keys::manifest(Family::Scratch, &n("hits")));
                for _ in 0..3 {
                    v.judge("update", "protocol", m.update(|cur| Change::Write(cur.map_or(0, |s| s.body) + 1)).await)?;
                }
                v.judge("collect", "protocol", m.collect_garbage().await)?;
            }
            Ok(())
        })?;
    }

    #[test]
    fn no_envelope_makes_the_manifest_layer_panic((strategy, version, doc) in planted("test", any_json)) {
        on_paused_clock(async move {
            let store = memory();
            let base = keys::manifest(Family::Scratch, &n("doc"));
            let key = manifest_key(strategy, &base, version);
            put(&store, &key, &doc).await;
            let c = handle(&store, strategy).await;
            let m = c.manifest::<Value>("test", base);
            let mut v = Verdicts::default();
            let loaded = v.judge("load", "doc", m.load().await)?;
            if let Some(Some(known)) = &loaded {
                v.judge("revalidate", "doc", m.revalidate(known).await)?;
            }
            v.judge("history", "doc", m.history().await)?;
            v.judge("update (keep)", "doc", m.update(|_| Change::Keep).await)?;
            v.judge("update", "doc", m.update(|_| Change::Write(json!(1))).await)?;
            v.judge("collect", "doc", m.collect_garbage().await)?;
            untouched_if_refused(&store, &key, &doc, loaded.is_none()).await
        })?;
    }
}

// ---------------------------------------------------------------------------------------
// The CLI's printers

mod cli {
    use super::*;

    /// One manifest of `kind` at version `v` of a version chain, and its document.
    fn chained(
        kind: &'static str,
        body: fn() -> BoxedStrategy<Value>,
    ) -> BoxedStrategy<(u64, Value)> {
        key_version()
            .prop_flat_map(move |v| (Just(v), envelope(kind, v, body())))
            .boxed()
    }

    fn valid_protocol() -> Value {
        json!({
            "format": 1, "kind": "protocol", "strategy": "version-chain", "write_id": "w",
            "created_by": "planted", "created_at": origin(), "cairn_version": "0.1.0",
        })
    }

    /// Every document type, planted together in one directory.
    #[derive(Debug, Clone)]
    struct Planted {
        protocol: Value,
        lock: (u64, Value),
        turn: (u64, Value),
        stream: (u64, Value),
        record: (u64, Value),
        member: (u64, Value),
        event: (u64, Value),
    }

    fn planted_everything() -> BoxedStrategy<Planted> {
        (
            prop_oneof![4 => Just(valid_protocol()), 1 => protocol_record()],
            chained("lock", lock_body),
            chained("turn", turn_body),
            chained("stream", stream_body),
            chained("record", record_body),
            chained("node", member_body),
            chained("event", any_json),
        )
            .prop_map(
                |(protocol, lock, turn, stream, record, member, event)| Planted {
                    protocol,
                    lock,
                    turn,
                    stream,
                    record,
                    member,
                    event,
                },
            )
            .boxed()
    }

    fn write(dir: &std::path::Path, key: &Key, doc: &Value) {
        let path = dir.join(key.as_str());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, serde_json::to_vec(doc).unwrap()).unwrap();
    }

    /// The names a failing command may blame: every planted key is built from one of them.
    const NAMES: [&str; 7] = [
        "protocol", "job", "expiry", "clicks", "a1", "audit", "node-a",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..config() })]

        /// `ls`, `show`, `get`, `tail` and `watch --once`, as tables and as JSON, on a
        /// directory holding one arbitrary document of every type: each exits with a
        /// documented code, and a failure names what it could not read.
        #[test]
        fn no_stored_value_makes_a_cli_printer_panic(p in planted_everything()) {
            let dir = tempfile::tempdir().unwrap();
            let chain = |family, name: &str, v| keys::chain_version(&keys::manifest(family, &n(name)), v);
            write(dir.path(), &keys::protocol(), &p.protocol);
            write(dir.path(), &chain(Family::Lock, "job", p.lock.0), &p.lock.1);
            write(dir.path(), &chain(Family::Turn, "expiry", p.turn.0), &p.turn.1);
            write(dir.path(), &chain(Family::Stream, "clicks", p.stream.0), &p.stream.1);
            write(dir.path(), &keys::chain_version(&keys::record(&n("agents"), &n("a1")), p.record.0), &p.record.1);
            write(dir.path(), &chain(Family::Node, "node-a", p.member.0), &p.member.1);
            write(dir.path(), &keys::log_entry(&n("audit"), p.event.0), &p.event.1);
            let commands: &[&[&str]] = &[
                &["lock", "ls"],
                &["--json", "lock", "ls"],
                &["lock", "show", "job"],
                &["--json", "lock", "show", "job"],
                &["turn", "ls"],
                &["--json", "turn", "ls"],
                &["turn", "show", "expiry"],
                &["stream", "ls"],
                &["--json", "stream", "ls"],
                &["--json", "stream", "show", "clicks"],
                &["stream", "watch", "--once"],
                &["record", "get", "agents", "a1"],
                &["--json", "record", "get", "agents", "a1"],
                &["log", "tail", "audit"],
                &["node", "ls"],
                &["--json", "node", "ls"],
            ];
            for args in commands {
                let out = crate::common::cli::cairn(dir.path())
                    .arg("--store")
                    .arg(format!("file://{}", dir.path().display()))
                    .args(["--strategy", "version-chain", "--node", "viewer"])
                    .args(*args)
                    .output()
                    .unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr);
                let code = out.status.code();
                prop_assert!(!stderr.contains("panicked"), "{:?} panicked: {}", args, stderr);
                // 0 shown, 1 a failure, 2 a stored window or strategy this command refuses,
                // 3 not found, 65 listed with some entries unreadable (each in its row); a
                // panic is 101, a signal no code.
                prop_assert!(matches!(code, Some(0..=3 | 65)), "{:?} exited {:?}: {}", args, code, stderr);
                if code == Some(65) {
                    let stdout = String::from_utf8_lossy(&out.stdout);
                    prop_assert!(stdout.contains("unreadable"), "{:?}: {}", args, stdout);
                    prop_assert!(NAMES.iter().any(|n| stdout.contains(n)), "{:?} names nothing planted: {}", args, stdout);
                }
                if matches!(code, Some(0 | 65)) && args[0] == "--json" {
                    prop_assert!(
                        serde_json::from_slice::<Value>(&out.stdout).is_ok(),
                        "{:?} printed no JSON: {}", args, String::from_utf8_lossy(&out.stdout)
                    );
                }
                if matches!(code, Some(1 | 2)) {
                    prop_assert!(
                        stderr.lines().any(|l| l.starts_with("cairn: ")),
                        "{:?}: {}",
                        args,
                        stderr
                    );
                    prop_assert!(NAMES.iter().any(|n| stderr.contains(n)), "{:?} names nothing planted: {}", args, stderr);
                }
            }
        }
    }
}
