//! Streams, versioned records and the event log under real concurrency, on in-memory,
//! local filesystem (version chain) and LocalStack.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cairn::manifest::Strategy;
use cairn::record::Put;
use cairn::store::fault::FaultStore;
use cairn::stream::{Create, Cursor, StreamEvent};
use cairn::Name;
use common::{namespace, Backend, Namespace};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::json;

fn n(s: &str) -> Name {
    Name::new(s).unwrap()
}

/// `creators` nodes each create all `names` streams, in their own random order: every
/// name is created exactly once and every creator ends holding the identical manifest. A
/// creator with different metadata then gets a conflict, and nothing is overwritten.
async fn racing_stream_creators(ns: Namespace, strategy: Strategy, creators: usize, names: usize) {
    let mut tasks = Vec::new();
    for c in 0..creators {
        let streams = ns.cairn(&format!("ingestor-{c}"), strategy).await.streams();
        tasks.push(tokio::spawn(async move {
            let mut order: Vec<usize> = (0..names).collect();
            order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(c as u64));
            let mut held = BTreeMap::new();
            let mut created = 0;
            for i in order {
                let name = n(&format!("stream-{i}"));
                let out = streams
                    .create(&name, json!({"schema": i, "retention": "7d"}))
                    .await
                    .unwrap();
                match &out {
                    Create::Created(_) => created += 1,
                    Create::Exists(_) => {}
                    Create::Conflict(m) => panic!("equal metadata reported as a conflict: {m:?}"),
                }
                held.insert(i, out.info().clone());
            }
            (created, held)
        }));
    }
    let mut total_created = 0;
    let mut views: Vec<BTreeMap<usize, _>> = Vec::new();
    for t in tasks {
        let (created, held) = t.await.unwrap();
        total_created += created;
        views.push(held);
    }
    assert_eq!(total_created, names, "every name created exactly once");
    for v in &views[1..] {
        assert_eq!(v, &views[0], "every creator holds the identical manifest");
    }
    let other = ns.cairn("late-ingestor", strategy).await.streams();
    for i in (0..names).step_by((names / 5).max(1)) {
        let name = n(&format!("stream-{i}"));
        match other
            .create(&name, json!({"schema": "different"}))
            .await
            .unwrap()
        {
            Create::Conflict(stored) => assert_eq!(stored, views[0][&i]),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(
            other.get(&name).await.unwrap().unwrap(),
            views[0][&i],
            "not overwritten"
        );
    }
    assert_eq!(other.list().await.unwrap().len(), names);
}

/// A follower sees each change exactly once and in version order, across a restart from
/// its saved cursor; an idle poll transfers no body.
async fn follower_sees_every_change_once_in_order(ns: Namespace, strategy: Strategy) {
    let c = ns.cairn("ingestor", strategy).await;
    let writer = c.streams();
    let counted = Arc::new(FaultStore::new(Arc::clone(&ns.store), 1));
    let reader = ns
        .cairn_with("querier", strategy, counted.clone(), |b| b)
        .await
        .streams();
    let mut follower = reader.follow(Cursor::default());
    let mut seen: Vec<(String, &'static str, u64)> = Vec::new();
    let mut expected: Vec<(String, &'static str, u64)> = Vec::new();
    let record = |events: Vec<StreamEvent>, seen: &mut Vec<_>| {
        for e in events {
            let kind = match e {
                StreamEvent::Created(_) => "created",
                StreamEvent::Changed(_) => "changed",
                StreamEvent::Deleted(_) => "deleted",
            };
            seen.push((e.info().name.clone(), kind, e.info().version));
        }
    };
    // (operation, stream) steps; the follower polls after each, and restarts halfway.
    let steps: Vec<(&str, &str)> = vec![
        ("create", "a"),
        ("create", "b"),
        ("update", "a"),
        ("update", "b"),
        ("update", "a"),
        ("delete", "b"),
        ("create", "c"),
        ("create", "b"),
        ("update", "c"),
        ("delete", "a"),
        ("update", "b"),
        ("create", "a"),
    ];
    // Each stream's versions: its first (a floor drawn from time, `clock::floor`), + 1 a change.
    let mut versions: BTreeMap<&str, u64> = BTreeMap::new();
    for (i, (op, s)) in steps.iter().enumerate() {
        let name = n(s);
        let (kind, version) = match *op {
            "create" => match writer.create(&name, json!({"v": i})).await.unwrap() {
                Create::Created(m) => ("created", m.version),
                other => panic!("{other:?}"),
            },
            "update" => {
                let m = writer
                    .update(&name, |_| Some(json!({"v": i})))
                    .await
                    .unwrap()
                    .unwrap();
                ("changed", m.version)
            }
            _ => {
                let m = writer.delete(&name).await.unwrap().unwrap();
                ("deleted", m.version)
            }
        };
        if let Some(before) = versions.insert(s, version) {
            assert_eq!(version, before + 1, "{s}: + 1 a change");
        }
        let v = &version;
        expected.push((s.to_string(), kind, *v));
        record(follower.poll().await.unwrap(), &mut seen);
        if i == steps.len() / 2 {
            // Restart: persist the cursor, drop the follower, resume from the cursor.
            let saved = serde_json::to_string(follower.cursor()).unwrap();
            drop(follower);
            follower = reader.follow(serde_json::from_str(&saved).unwrap());
            record(follower.poll().await.unwrap(), &mut seen);
        }
    }
    assert_eq!(seen, expected);
    // An idle poll: one listing, whose etags (chain: newest version keys) say nothing
    // changed; no GET (issue #20).
    let before = counted.counts();
    assert!(follower.poll().await.unwrap().is_empty());
    let cost = counted.counts().since(&before);
    assert_eq!(cost.body_bytes, 0, "{cost:?}");
    assert_eq!(cost.requests(), 1, "{cost:?}");
    // Changes between two polls coalesce into one event at the newest version.
    for i in 0..3 {
        writer
            .update(&n("c"), |_| Some(json!({"burst": i})))
            .await
            .unwrap();
    }
    let events = follower.poll().await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(matches!(&events[0], StreamEvent::Changed(m) if m.version == versions["c"] + 3));
}

/// Many tasks deliver every version of a record in random order: the highest wins.
async fn out_of_order_record_updates(
    ns: Namespace,
    strategy: Strategy,
    tasks: usize,
    versions: u64,
) {
    let mut all: Vec<u64> = (1..=versions).collect();
    all.shuffle(&mut rand::rngs::StdRng::seed_from_u64(42));
    let per = all.len().div_ceil(tasks);
    let mut handles = Vec::new();
    for (t, chunk) in all.chunks(per).enumerate() {
        let records = ns.cairn(&format!("worker-{t}"), strategy).await.records();
        let chunk = chunk.to_vec();
        handles.push(tokio::spawn(async move {
            let mut applied = 0;
            for v in chunk {
                let status = if v % 2 == 0 {
                    "connected"
                } else {
                    "disconnected"
                };
                match records
                    .put_if_newer(
                        &n("agents"),
                        &n("agent-1"),
                        v,
                        json!({"status": status, "v": v}),
                    )
                    .await
                    .unwrap()
                {
                    Put::Applied { version } => {
                        assert_eq!(version, v);
                        applied += 1;
                    }
                    Put::Stale { stored_version } => assert!(stored_version >= v),
                }
            }
            applied
        }));
    }
    let mut applied = 0;
    for h in handles {
        applied += h.await.unwrap();
    }
    assert!(applied >= 1);
    let records = ns.cairn("reader", strategy).await.records();
    let got = records
        .get(&n("agents"), &n("agent-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.version, versions);
    assert_eq!(got.value["v"], versions);
    // The seed problem: connected at 7 by one worker, disconnected at 6 by another, in that
    // order: ends connected.
    let a = ns.cairn("w1", strategy).await.records();
    let b = ns.cairn("w2", strategy).await.records();
    assert_eq!(
        a.put_if_newer(&n("agents"), &n("agent-2"), 7, json!("connected"))
            .await
            .unwrap(),
        Put::Applied { version: 7 }
    );
    assert_eq!(
        b.put_if_newer(&n("agents"), &n("agent-2"), 6, json!("disconnected"))
            .await
            .unwrap(),
        Put::Stale { stored_version: 7 }
    );
    assert_eq!(
        b.put_if_newer(&n("agents"), &n("agent-2"), 7, json!("again"))
            .await
            .unwrap(),
        Put::Stale { stored_version: 7 }
    );
    assert_eq!(
        b.get(&n("agents"), &n("agent-2"))
            .await
            .unwrap()
            .unwrap()
            .value,
        json!("connected")
    );
    assert_eq!(
        a.keys(&n("agents")).await.unwrap(),
        vec!["agent-1", "agent-2"]
    );
}

/// Many concurrent appenders: a gap-free sequence holding every event exactly once.
async fn concurrent_appenders(ns: Namespace, strategy: Strategy, appenders: usize, each: usize) {
    let topic = n("audit");
    let mut handles = Vec::new();
    for a in 0..appenders {
        let log = ns
            .cairn(&format!("appender-{a}"), strategy)
            .await
            .event_log();
        let topic = topic.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..each {
                let seq = log
                    .append(&topic, json!({"appender": a, "i": i}))
                    .await
                    .unwrap();
                mine.push((seq, a, i));
            }
            mine
        }));
    }
    let mut claimed = Vec::new();
    for h in handles {
        claimed.extend(h.await.unwrap());
    }
    let log = ns.cairn("reader", strategy).await.event_log();
    let entries = log.read(&topic, 1, usize::MAX).await.unwrap();
    let total = appenders * each;
    assert_eq!(entries.len(), total);
    let seqs: Vec<u64> = entries.iter().map(|e| e.sequence).collect();
    // The first entry is numbered from a floor drawn from time (`clock::floor`); the racing
    // first appends collided on its slot, so the rest follow it without a gap.
    let first = seqs[0];
    assert!(first > 1_000_000, "{first}");
    assert_eq!(
        seqs,
        (first..first + total as u64).collect::<Vec<_>>(),
        "gap-free and ordered"
    );
    let events: BTreeSet<(u64, u64)> = entries
        .iter()
        .map(|e| {
            (
                e.event["appender"].as_u64().unwrap(),
                e.event["i"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(events.len(), total, "every event exactly once");
    for (seq, a, i) in claimed {
        let e = &entries[(seq - first) as usize];
        assert_eq!(
            (e.event["appender"].as_u64(), e.event["i"].as_u64()),
            (Some(a as u64), Some(i as u64)),
            "append returned the wrong sequence"
        );
    }
    // Reading from the middle, and following from the tail.
    let last = first + total as u64 - 1;
    let tail = log.read(&topic, last - 2, usize::MAX).await.unwrap();
    assert_eq!(tail.len(), 3);
    // From the first entry's own sequence, and from between 1 and it (slot 1 placed by the
    // sequence it holds).
    assert_eq!(log.read(&topic, first, 2).await.unwrap()[0].sequence, first);
    assert_eq!(log.read(&topic, 2, 1).await.unwrap()[0].sequence, first);
    let next = log.append(&topic, json!({"late": true})).await.unwrap();
    assert_eq!(next, last + 1);
    let waited = log
        .wait_for(&topic, next, std::time::Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(waited[0].event, json!({"late": true}));
}

macro_rules! suite {
    ($mod:ident, $backend:ident, $strategy:ident, creators = $c:expr, names = $n:expr, tasks = $t:expr, versions = $v:expr, appenders = $a:expr, each = $e:expr) => {
        mod $mod {
            use super::*;
            const B: Backend = Backend::$backend;
            const S: Strategy = Strategy::$strategy;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn racing_stream_creators_all_hold_the_same_manifest() {
                let Some(ns) = namespace(B).await else { return };
                racing_stream_creators(ns, S, $c, $n).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn follower_sees_every_change_once_in_version_order_across_restarts() {
                let Some(ns) = namespace(B).await else { return };
                follower_sees_every_change_once_in_order(ns, S).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn out_of_order_record_updates_end_at_the_highest_version() {
                let Some(ns) = namespace(B).await else { return };
                out_of_order_record_updates(ns, S, $t, $v).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_appenders_make_a_gap_free_log() {
                let Some(ns) = namespace(B).await else { return };
                concurrent_appenders(ns, S, $a, $e).await;
            }
        }
    };
}

suite!(
    memory_etag_cas,
    Memory,
    EtagCas,
    creators = 16,
    names = 200,
    tasks = 16,
    versions = 400,
    appenders = 16,
    each = 25
);
suite!(
    memory_version_chain,
    Memory,
    VersionChain,
    creators = 16,
    names = 200,
    tasks = 16,
    versions = 200,
    appenders = 16,
    each = 25
);
suite!(
    fs_version_chain,
    Fs,
    VersionChain,
    creators = 16,
    names = 50,
    tasks = 8,
    versions = 100,
    appenders = 8,
    each = 20
);
suite!(
    localstack_etag_cas,
    LocalStack,
    EtagCas,
    creators = 8,
    names = 25,
    tasks = 8,
    versions = 80,
    appenders = 8,
    each = 10
);
suite!(
    localstack_version_chain,
    LocalStack,
    VersionChain,
    creators = 4,
    names = 15,
    tasks = 4,
    versions = 40,
    appenders = 4,
    each = 10
);
