//! Who is online (the OpenZiti / Dragonfly2 status problem): every node heartbeats its own
//! record, and a view classifies each node by the age of its last heartbeat against a
//! timeout that adapts to how slow that node's writes have been:
//! `timeout = 2 × interval + 2 × average write latency` (`NodeOptions`). Online within it,
//! suspect up to twice it, offline beyond, and offline at once when a node leaves.
//!
//! The default interval is 1 s; this demo heartbeats every 200 ms. Node c crashes (its
//! heartbeats stop, no goodbye) and goes suspect, then offline; node b leaves cleanly.
//!
//! Runs on an in-memory store: `cargo run --example online_status`.

use std::sync::Arc;
use std::time::Duration;

use cairn::cache::CacheOptions;
use cairn::node::{Health, NodeOptions, NodeView};
use cairn::Cairn;
use object_store::memory::InMemory;
use object_store::ObjectStore;

async fn show(when: &str, view: &NodeView) -> cairn::Result<Vec<(String, Health)>> {
    let all = view.list().await?;
    println!("{when}");
    for m in &all.items {
        println!(
            "  {:<7} {:<8} last heartbeat {:>5} ms ago, timeout {} ms, {} beats",
            m.node,
            format!("{:?}", m.health).to_lowercase(),
            m.age_ms,
            m.timeout_ms,
            m.record.beats
        );
    }
    Ok(all.items.into_iter().map(|m| (m.node, m.health)).collect())
}

#[tokio::main]
async fn main() -> cairn::Result<()> {
    let bucket: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let interval = Duration::from_millis(200);
    let options = NodeOptions {
        interval,
        ..NodeOptions::default()
    };
    let mut beating = Vec::new();
    for id in ["node-a", "node-b", "node-c"] {
        let node = Cairn::builder(Arc::clone(&bucket))
            .node(id)?
            .build()
            .await?;
        beating.push(node.nodes(options.clone()).join().await?);
    }
    // A dashboard reads through a cache that stays fresh for one heartbeat interval.
    let dashboard = Cairn::builder(Arc::clone(&bucket))
        .node("dashboard")?
        .build()
        .await?;
    let view = dashboard
        .nodes(options.clone())
        .view(CacheOptions::for_nodes(interval));

    for id in ["node-a", "node-b", "node-c"] {
        wait_for(&view, id, Health::Online).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    show("a few heartbeats later", &view).await?;

    // node-c crashes: dropping its heartbeater stops the heartbeats without a goodbye.
    let c = beating.pop().expect("node-c");
    drop(c);
    println!("node-c crashed");
    let suspect = wait_for(&view, "node-c", Health::Suspect).await?;
    println!("node-c suspect after {suspect:?}");
    let offline = wait_for(&view, "node-c", Health::Offline).await?;
    println!("node-c offline after {offline:?}");

    // node-b leaves on purpose: offline at once, marked as left.
    let b = beating.pop().expect("node-b");
    b.leave().await?;
    tokio::time::sleep(interval).await; // let the cached view go stale
    wait_for(&view, "node-b", Health::Offline).await?;
    let now = show("node-b left", &view).await?;
    let left = |id: &str| now.iter().any(|(n, h)| n == id && *h == Health::Offline);
    assert!(left("node-b") && left("node-c"));
    let stats = view.cache().stats();
    println!(
        "view cache: {} served from memory, {} revalidated (304), {} fetched",
        stats.hits, stats.revalidated, stats.fetched
    );
    for node in beating {
        node.leave().await?;
    }
    Ok(())
}

/// Polls the view until `node` shows `health`; returns how long that took.
async fn wait_for(view: &NodeView, node: &str, health: Health) -> cairn::Result<Duration> {
    let start = tokio::time::Instant::now();
    loop {
        let all = view.list().await?.items;
        if all.iter().any(|m| m.node == node && m.health == health) {
            return Ok(start.elapsed());
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{node} never became {health:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
