//! `cairn bench` end to end, briefly, on `memory://` and a `file://` store: the JSON report's
//! shape, the floors it measures, and that the scratch prefix is cleaned up.

mod common;

use common::cli::{cairn, Run};
use serde_json::Value;

fn bench(store: &str, dir: &std::path::Path) -> Value {
    let out = cairn(dir)
        .args([
            "--store",
            store,
            "bench",
            "--ops",
            "5",
            "--nodes",
            "1,3",
            "--contention-for",
            "300ms",
            "--json",
        ])
        .output()
        .unwrap();
    Run(out).ok().json()
}

fn row<'a>(report: &'a Value, strategy: &str, op: &str) -> &'a Value {
    report["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["strategy"] == strategy && r["operation"] == op)
        .unwrap_or_else(|| panic!("no row [{strategy}] {op} in {report:#}"))
}

/// Every row has its numbers; every floor names raw rows of the same run.
fn check_shape(report: &Value, strategies: &[&str]) {
    assert_eq!(report["ops"], 5);
    let raw: Vec<&str> = report["raw"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["operation"].as_str().unwrap())
        .collect();
    for must in [
        "raw create (If-None-Match)",
        "raw get",
        "raw get, absent (404)",
    ] {
        assert!(raw.contains(&must), "{raw:?}");
    }
    for r in report["raw"]
        .as_array()
        .unwrap()
        .iter()
        .chain(report["operations"].as_array().unwrap())
    {
        assert!(r["requests_per_op"].is_number(), "{r}");
        for p in ["p50_ms", "p90_ms", "p99_ms"] {
            assert!(r["latency"][p].as_f64().unwrap() >= 0.0, "{r}");
        }
        let floor = r["floor"].as_array().unwrap();
        assert_eq!(r["floor_requests"].as_u64().unwrap() as usize, floor.len());
        for f in floor {
            assert!(raw.contains(&f.as_str().unwrap()), "{f} is not a raw row");
        }
        if !floor.is_empty() && r["strategy"].is_string() {
            assert!(r["ratio"].as_f64().unwrap() > 0.0, "{r}");
        }
    }
    let contention = report["contention"].as_array().unwrap();
    assert_eq!(contention.len(), 2 * strategies.len());
    for s in strategies {
        for n in [1, 3] {
            let c = contention
                .iter()
                .find(|c| c["strategy"] == *s && c["nodes"] == n)
                .unwrap_or_else(|| panic!("no contention row {s} × {n}"));
            // Handovers happen (no livelock), and each is counted with its requests.
            assert!(c["acquisitions"].as_u64().unwrap() >= 1, "{c}");
            assert!(c["requests_per_handover"].as_f64().unwrap() >= 2.0, "{c}");
            assert_eq!(
                c["wasted_requests_per_waiter_per_s"].is_null(),
                n == 1,
                "{c}"
            );
        }
    }
}

#[test]
fn bench_on_memory_measures_both_strategies_at_their_floors() {
    let dir = tempfile::tempdir().unwrap();
    let report = bench("memory://", dir.path());
    check_shape(&report, &["etag-cas", "version-chain"]);
    for (s, start) in [("etag-cas", 1.0), ("version-chain", 2.0)] {
        // A write that starts something: on the chain, the create and its read of slot 1.
        let w = row(&report, s, "manifest write (known version)");
        assert_eq!(w["requests_per_op"], start, "{w}");
        let w = row(&report, s, "manifest renewal (continues a claim)");
        assert_eq!(w["requests_per_op"], 1.0, "{w}");
        assert_eq!(
            row(&report, s, "revalidate unchanged")["requests_per_op"],
            1.0
        );
        assert_eq!(
            row(&report, s, "cached view get, fresh")["requests_per_op"],
            0.0
        );
    }
    assert_eq!(
        row(&report, "etag-cas", "manifest write (known version)")["floor"][0],
        "raw replace (If-Match)"
    );
}

#[test]
fn bench_on_a_directory_measures_the_version_chain_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let report = bench(&format!("file://{}", store.display()), dir.path());
    check_shape(&report, &["version-chain"]);
    let w = row(&report, "version-chain", "manifest write (known version)");
    assert_eq!(w["requests_per_op"], 2.0, "{w}");
    assert_eq!(w["floor"][0], "raw create (If-None-Match)");
    let w = row(
        &report,
        "version-chain",
        "manifest renewal (continues a claim)",
    );
    assert_eq!(w["requests_per_op"], 1.0, "{w}");
    assert_eq!(w["floor"][0], "raw create (If-None-Match)");
    assert_eq!(
        row(&report, "version-chain", "revalidate unchanged")["requests_per_op"],
        1.0
    );
    // Nothing is left behind but empty directories.
    let files = walk(&store);
    assert!(files.is_empty(), "left behind: {files:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `cairn bench --membership`, briefly, on a directory: real `cairn node heartbeat`
/// processes are killed and seen go, live nodes are judged, and nothing is left behind.
/// (The figures themselves are a measurement, not asserted.)
#[test]
fn bench_membership_on_a_directory_kills_heartbeat_processes_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = cairn(dir.path())
        .args([
            "--store",
            &format!("file://{}", store.display()),
            "bench",
            "--membership",
            "--kills",
            "1",
            "--live-nodes",
            "2",
            "--membership-for",
            "2s",
            "--json",
        ])
        .output()
        .unwrap();
    let report = Run(out).ok().json();
    assert_eq!(report["interval_ms"], 1000, "{report:#}");
    assert_eq!(report["base_timeout_ms"], 2000, "{report:#}");
    let d = &report["detection"];
    assert_eq!(d["kills"], 1, "{report:#}");
    assert!(d["how"].as_str().unwrap().contains("SIGKILL"), "{report:#}");
    assert_eq!(d["samples_ms"].as_array().unwrap().len(), 1, "{report:#}");
    // The slowest kill → offline, after the same kill's not-online, and its only sample.
    let offline_max = d["offline_max_ms"].as_f64().unwrap();
    assert!(
        offline_max >= d["not_online_max_ms"].as_f64().unwrap(),
        "{report:#}"
    );
    assert_eq!(
        offline_max,
        d["offline"]["p50_ms"].as_f64().unwrap(),
        "{report:#}"
    );
    let l = &report["liveness"];
    assert_eq!(l["live_nodes"], 2, "{report:#}");
    assert!(l["verdicts"].as_u64().unwrap() >= 2, "{report:#}");
    assert!(
        l["puts_per_node_per_hour"].as_f64().unwrap() > 0.0,
        "{report:#}"
    );
    let files = walk(&store);
    assert!(files.is_empty(), "left behind: {files:?}");
}

/// `cairn bench --scale`, at small N: every listing and refresh has its row with cairn's
/// requests and the raw calls of the same objects; the raw floors are what a LIST paged by
/// 1,000 and a GET per (changed) object cost; and the scratch prefix is cleaned up.
fn scale(store: &str, dir: &std::path::Path, sizes: &str) -> Value {
    let out = cairn(dir)
        .args(["--store", store, "bench", "--scale", sizes, "--json"])
        .output()
        .unwrap();
    Run(out).ok().json()
}

fn check_scale(report: &Value, sizes: &[u64]) {
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 11 * sizes.len(), "{report:#}");
    for &n in sizes {
        let pages = n.div_ceil(1000);
        let row = |op: &str| {
            rows.iter()
                .find(|r| r["objects"] == n && r["operation"] == op)
                .unwrap_or_else(|| panic!("no row {op} at {n} in {report:#}"))
        };
        for op in [
            "lock ls (Locks::list)",
            "stream ls (Streams::list)",
            "node ls (Nodes::list)",
            "stream view, first list",
            "node view, first list",
        ] {
            let r = row(op);
            assert!(r["lists"].as_u64().unwrap() >= 1, "{r}");
            assert!(r["requests"].as_u64().unwrap() >= pages + n, "{r}");
            assert!(r["raw_requests"].as_u64().unwrap() >= pages + n, "{r}");
            assert!(r["ratio"].as_f64().unwrap() > 0.0, "{r}");
        }
        for view in ["stream", "node"] {
            for (pct, changed) in [(0, 0), (1, n.div_ceil(100)), (100, n)] {
                let r = row(&format!("{view} view refresh, {pct}% changed"));
                assert_eq!(r["changed"], changed, "{r}");
                let requests = r["requests"].as_u64().unwrap();
                if report["strategy"] == "etag-cas" {
                    // One object a name: the floor is the LIST and a GET a changed one.
                    assert_eq!(r["raw_requests"], pages + changed, "{r}");
                }
                if view == "stream" {
                    // A refresh reads what changed, and nothing else under etag CAS.
                    assert!(requests >= pages + changed, "{r}");
                    if report["strategy"] == "etag-cas" {
                        assert_eq!(requests, pages + changed, "{r}");
                    }
                } else {
                    // A node view takes heartbeats from the listing: it reads a body
                    // only now and then (member.rs, "Views at fleet scale").
                    assert!(requests >= pages && requests <= pages + changed, "{r}");
                }
            }
        }
    }
}

#[test]
fn bench_scale_on_memory_reports_each_view_next_to_its_raw_floor() {
    let dir = tempfile::tempdir().unwrap();
    let report = scale("memory://", dir.path(), "30,1200");
    assert_eq!(report["strategy"], "etag-cas", "{report:#}");
    check_scale(&report, &[30, 1200]);
}

#[test]
fn bench_scale_on_a_directory_measures_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let report = scale(&format!("file://{}", store.display()), dir.path(), "20");
    assert_eq!(report["strategy"], "version-chain", "{report:#}");
    check_scale(&report, &[20]);
    let files = walk(&store);
    assert!(files.is_empty(), "left behind: {files:?}");
}
