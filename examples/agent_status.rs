//! Status updates that arrive out of order (the Wazuh agent-status race).
//!
//! Agent `a1` moves from worker-1 to worker-2. Worker-1 sends "disconnected" (the agent's
//! event 6), but it is stuck in a queue; worker-2's "connected" (event 7) reaches the store
//! first, and worker-1's arrives after. With last-writer-wins the agent ends up
//! "disconnected" while it is connected. With `put_if_newer` the stale update is refused,
//! whatever order the updates arrive in.
//!
//! Runs on an in-memory store: `cargo run --example agent_status`.

use std::sync::Arc;

use cairn::record::Put;
use cairn::{Cairn, Name};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// Stores two updates from two tasks, in the order they reach the store: worker-2's event 7
/// first, then worker-1's event 6, held in its queue until 7 has landed.
async fn race<F, Fut, T>(write: F) -> [(&'static str, u64, T); 2]
where
    F: Fn(&'static str, u64, &'static str) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let (landed, queue) = oneshot::channel::<()>();
    let (stuck, first) = (
        write("worker-1", 6, "disconnected"),
        write("worker-2", 7, "connected"),
    );
    let worker_1 = tokio::spawn(async move {
        let _ = queue.await;
        ("worker-1", 6, stuck.await)
    });
    let first = first.await;
    let _ = landed.send(());
    [("worker-2", 7, first), worker_1.await.expect("worker-1")]
}

#[tokio::main]
async fn main() -> cairn::Result<()> {
    let bucket: Arc<dyn ObjectStore> = Arc::new(InMemory::new());

    // Without cairn: each worker overwrites the status object. The last write wins.
    let key = Path::from("naive/agents/a1.json");
    race(|worker, event, status| {
        let (bucket, key) = (Arc::clone(&bucket), key.clone());
        let body = json!({ "event": event, "status": status, "by": worker }).to_string();
        async move {
            bucket
                .put(&key, PutPayload::from(body))
                .await
                .expect("a plain PUT")
        }
    })
    .await;
    let stored = bucket
        .get(&key)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("read");
    let naive: Value = serde_json::from_slice(&stored).expect("JSON");
    println!(
        "last writer wins: a1 is {} (event {}): wrong",
        naive["status"], naive["event"]
    );
    assert_eq!(naive["status"], "disconnected");

    // With cairn: an update is stored only if its event is newer than the stored one.
    let node = |id: &'static str| Cairn::builder(Arc::clone(&bucket)).prefix("cairn").node(id);
    let (w1, w2) = (
        node("worker-1")?.build().await?,
        node("worker-2")?.build().await?,
    );
    let (agents, a1) = (Name::new("agents")?, Name::new("a1")?);
    let outcomes = race(|worker, event, status| {
        let records = if worker == "worker-1" {
            w1.records()
        } else {
            w2.records()
        };
        let (agents, a1) = (agents.clone(), a1.clone());
        async move {
            records
                .put_if_newer(&agents, &a1, event, json!(status))
                .await
        }
    })
    .await;
    for (worker, event, put) in outcomes {
        match put? {
            Put::Applied { version } => {
                println!("{worker}: event {event} applied (version {version})")
            }
            Put::Stale { stored_version } => {
                println!("{worker}: event {event} refused: event {stored_version} is stored")
            }
        }
    }
    let dashboard = node("dashboard")?.build().await?;
    let record = dashboard
        .records()
        .get(&agents, &a1)
        .await?
        .expect("a1 has a status");
    println!(
        "put_if_newer: a1 is {} (event {}, by {})",
        record.value, record.version, record.written_by
    );
    assert_eq!((record.version, record.value), (7, json!("connected")));

    // Redelivering the stale update (a retry, a replayed queue) changes nothing either.
    let replay = dashboard
        .records()
        .put_if_newer(&agents, &a1, 6, json!("disconnected"))
        .await?;
    assert_eq!(replay, Put::Stale { stored_version: 7 });
    println!("event 6 delivered again: {replay:?}");
    Ok(())
}
