//! Metrics through the `metrics` facade: every feature reports what it did, read back from a
//! debugging recorder installed for this test's thread (the runtime is current-thread, so
//! background tasks report to it too).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cairn::cache::CacheOptions;
use cairn::lock::{Acquire, LockOptions};
use cairn::manifest::{Strategy, Write};
use cairn::node::NodeOptions;
use cairn::store::fault::{Fault, FaultStore, Op, Rule};
use cairn::store::keys::{self, Family};
use cairn::telemetry;
use cairn::turn::TurnOptions;
use cairn::{Cairn, Name, StrategyChoice};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;
use object_store::memory::InMemory;
use object_store::ObjectStore;

/// Counter totals by (name, sorted labels).
type Counters = HashMap<(String, Vec<(String, String)>), u64>;

fn counters(recorder: &DebuggingRecorder) -> Counters {
    let mut out = HashMap::new();
    for (key, _, _, value) in recorder.snapshotter().snapshot().into_vec() {
        if key.kind() != MetricKind::Counter {
            continue;
        }
        let k = key.key();
        let mut labels: Vec<(String, String)> = k
            .labels()
            .map(|l| (l.key().to_string(), l.value().to_string()))
            .collect();
        labels.sort();
        if let DebugValue::Counter(n) = value {
            out.insert((k.name().to_string(), labels), n);
        }
    }
    out
}

fn get(c: &Counters, name: &str, labels: &[(&str, &str)]) -> u64 {
    let mut l: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    c.get(&(name.to_string(), l)).copied().unwrap_or(0)
}

async fn node(store: Arc<dyn ObjectStore>, id: &str) -> Cairn {
    Cairn::builder(store)
        .node(id)
        .unwrap()
        .seed(7)
        .strategy(StrategyChoice::Fixed(Strategy::EtagCas))
        .build()
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn every_feature_reports_its_metrics() {
    let recorder = DebuggingRecorder::new();
    let _installed = metrics::set_default_local_recorder(&recorder);
    telemetry::describe();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let faulty = Arc::new(FaultStore::new(Arc::clone(&store), 1));
    let a = node(faulty.clone(), "a").await;
    let counted_b = Arc::new(FaultStore::new(Arc::clone(&store), 2));
    let b = node(counted_b.clone(), "b").await;

    // Locks: acquired free, then broken by another node and lost by its holder.
    let lock = Name::new("compaction").unwrap();
    let Acquire::Held(lease) = a
        .locks(LockOptions::default())
        .unwrap()
        .try_acquire(&lock)
        .await
        .unwrap()
    else {
        panic!("free lock")
    };
    b.locks(LockOptions::default())
        .unwrap()
        .break_lock(&lock)
        .await
        .unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(60), lease.lost())
        .await
        .expect("the holder learns of the break");
    assert_eq!(reason.label(), "broken");

    // Turns: one run, then not due.
    let turns = a.turns(TurnOptions::default());
    let turn = Name::new("expiry").unwrap();
    for _ in 0..2 {
        let _ = turns.run_once(&turn, |_| async { Ok(None) }).await.unwrap();
    }

    // A conflict: a write on a stale snapshot.
    let m = a.manifest::<u8>(
        "test",
        keys::manifest(Family::Scratch, &Name::new("x").unwrap()),
    );
    let Write::Written(v1) = m.create(1).await.unwrap() else {
        panic!()
    };
    let _ = m.write(Some(&v1), 2).await.unwrap();
    assert!(matches!(
        m.write(Some(&v1), 3).await.unwrap(),
        Write::Conflict(_)
    ));

    // An ambiguous write that landed.
    faulty.add(Rule::times(Op::Put, "", Fault::CommitThenFail, 1));
    let current = m.load().await.unwrap().unwrap();
    assert!(matches!(
        m.write(Some(&current), 4).await.unwrap(),
        Write::Written(_)
    ));

    // Heartbeats.
    let hb = a.nodes(NodeOptions::default()).join().await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    hb.leave().await.unwrap();

    // A cached view: fetched, then a hit.
    let stream = Name::new("clicks").unwrap();
    let _ = b
        .streams()
        .create(&stream, serde_json::json!({}))
        .await
        .unwrap();
    let view = a.streams().view(CacheOptions::for_streams());
    for _ in 0..2 {
        view.get(&stream).await.unwrap();
    }

    let c = counters(&recorder);
    let requests: u64 = c
        .iter()
        .filter(|((n, _), _)| n == telemetry::REQUESTS)
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        requests,
        faulty.counts().requests() + counted_b.counts().requests(),
        "every request is counted"
    );
    assert!(get(&c, telemetry::REQUESTS, &[("op", "put"), ("outcome", "ok")]) > 0);
    assert!(
        get(
            &c,
            telemetry::REQUESTS,
            &[("op", "get"), ("outcome", "not_found")]
        ) > 0
    );
    assert_eq!(
        get(
            &c,
            telemetry::LOCK_ACQUIRED,
            &[("lock", "compaction"), ("how", "free")]
        ),
        1
    );
    assert_eq!(
        get(
            &c,
            telemetry::LOCK_LOSSES,
            &[("lock", "compaction"), ("reason", "broken")]
        ),
        1
    );
    assert_eq!(
        get(
            &c,
            telemetry::TURNS,
            &[("turn", "expiry"), ("outcome", "run")]
        ),
        1
    );
    assert_eq!(
        get(
            &c,
            telemetry::TURNS,
            &[("turn", "expiry"), ("outcome", "skipped")]
        ),
        1
    );
    assert!(get(&c, telemetry::CONFLICTS, &[("strategy", "etag-cas")]) >= 1);
    assert_eq!(get(&c, telemetry::AMBIGUOUS, &[("resolved", "landed")]), 1);
    assert!(get(&c, telemetry::HEARTBEATS, &[("outcome", "ok")]) >= 2);
    assert_eq!(get(&c, telemetry::CACHE_READS, &[("result", "fetched")]), 1);
    assert_eq!(get(&c, telemetry::CACHE_READS, &[("result", "hit")]), 1);
}

/// `--metrics-addr` serves Prometheus text while a long-running command runs: here `lock hold`,
/// scraped once it has printed its fencing token.
#[test]
fn a_long_running_command_serves_prometheus_metrics() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = common::cli::cairn(dir.path())
        .args(["--store", &format!("file://{}", dir.path().display())])
        .args(["--node", "metrics-test", "--metrics-addr", &addr])
        .args(["lock", "hold", "scraped"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut token = String::new();
    out.read_line(&mut token).unwrap();
    // A new lock's first token is a floor drawn from time (`clock::floor`).
    let token: u64 = token
        .trim()
        .parse()
        .expect("lock hold prints the fencing token");
    assert!(token > 1_000_000, "{token}");

    let mut http = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        http,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    http.read_to_string(&mut body).unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(
        body.contains("cairn_lock_acquired_total{lock=\"scraped\",how=\"free\"} 1"),
        "{body}"
    );
    assert!(body.contains("# HELP cairn_requests_total"), "{body}");
    assert!(body.contains("cairn_request_duration_seconds"), "{body}");
    assert_eq!(status.code(), Some(0));
}

/// An address that cannot be served is a configuration error before any request.
#[test]
fn a_metrics_address_in_use_is_a_usage_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = common::cli::cairn(dir.path())
        .args(["--store", &format!("file://{}", dir.path().display())])
        .args(["--metrics-addr", &addr, "lock", "ls"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot serve metrics on"), "{stderr}");
}
