//! A cached view of the streams, for a querier that reads the list often: served from
//! memory while fresh, then revalidated with conditional GETs (a 304 and no body for each
//! unchanged stream), and served stale, flagged so, while the store is unreachable, for up
//! to the stale-if-error time.
//!
//! The defaults are fresh 30 s and stale-if-error 5 min; this demo uses 300 ms and 1 s. A
//! `FaultStore` (cairn's `test-util` feature) counts the requests and, to play an outage,
//! fails every one.
//!
//! Runs on an in-memory store: `cargo run --example cached_view`.

use std::sync::Arc;
use std::time::Duration;

use cairn::cache::CacheOptions;
use cairn::store::fault::{Counts, Fault, FaultStore, Op, Rule};
use cairn::stream::StreamView;
use cairn::{Cairn, Error, Name};
use object_store::memory::InMemory;
use object_store::ObjectStore;

async fn list(what: &str, view: &StreamView, link: &FaultStore) -> cairn::Result<bool> {
    let before = link.counts();
    let result = view.list().await;
    let Counts {
        lists,
        gets,
        not_modified,
        body_bytes,
        ..
    } = link.counts().since(&before);
    let cost = format!(
        "{lists} listing(s), {gets} GET(s) of which {not_modified} answered 304, {body_bytes} body bytes"
    );
    match result {
        Ok(v) => {
            let names: Vec<&str> = v.items.iter().map(|s| s.name.as_str()).collect();
            let stale = if v.stale { "STALE " } else { "" };
            println!("{what:<34} {stale}{names:?}: {cost}");
            Ok(v.stale)
        }
        Err(e @ Error::Unavailable { .. }) => {
            println!("{what:<34} error: {e}");
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

#[tokio::main]
async fn main() -> cairn::Result<()> {
    let bucket: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let writer = Cairn::builder(Arc::clone(&bucket))
        .node("ingestor")?
        .build()
        .await?;
    let streams = writer.streams();
    for name in ["clicks", "errors", "orders"] {
        let created = streams
            .create(&Name::new(name)?, serde_json::json!({"v": 1}))
            .await?;
        assert!(matches!(created, cairn::stream::Create::Created(_)));
    }

    // The querier's link to the store, counted, and faulty when we say so.
    let link = Arc::new(FaultStore::new(Arc::clone(&bucket), 1));
    let querier = Cairn::builder(link.clone())
        .node("querier")?
        .build()
        .await?;
    let options = CacheOptions {
        fresh: Duration::from_millis(300),
        stale_if_error: Duration::from_secs(1),
        ..CacheOptions::for_streams()
    };
    let view = querier.streams().view(options);

    list("first read", &view, &link).await?;
    list("again, while fresh", &view, &link).await?;
    tokio::time::sleep(Duration::from_millis(350)).await;
    list("past fresh, nothing changed", &view, &link).await?;

    // An outage: every request of the querier fails.
    link.add(Rule::always(Op::List, "", Fault::Status(503)));
    link.add(Rule::always(Op::Get, "", Fault::Status(503)));
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(list("store down", &view, &link).await?, "served stale");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let gave_up = view.list().await;
    assert!(matches!(gave_up, Err(Error::Unavailable { .. })));
    list("store down past stale-if-error", &view, &link).await?;

    // The store is back; a stream changed meanwhile.
    link.clear();
    let orders = Name::new("orders")?;
    streams
        .update(&orders, |_| Some(serde_json::json!({"v": 2})))
        .await?;
    assert!(!list("store back", &view, &link).await?);
    let stats = view.cache().stats();
    println!(
        "cache: {} hits, {} revalidated, {} fetched, {} served stale",
        stats.hits, stats.revalidated, stats.fetched, stats.stale
    );
    Ok(())
}
