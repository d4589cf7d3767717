//! Streams that any ingestor may create, with no central node (the Parseable problem).
//!
//! Data for a stream nobody has created yet reaches four ingestors at once. Each calls
//! `create`: one writes the manifest, the others read back the winner's, so every one of
//! them ends up holding the same manifest. A querier follows the streams by polling: a
//! listing finds new names, and each known stream is revalidated with a conditional GET.
//!
//! Runs on an in-memory store: `cargo run --example stream_from_any_ingestor`.

use std::sync::Arc;

use cairn::stream::{Create, Cursor, StreamEvent};
use cairn::{Cairn, Name};
use object_store::memory::InMemory;
use object_store::ObjectStore;
use serde_json::json;

#[tokio::main]
async fn main() -> cairn::Result<()> {
    // The bucket every node shares. An ingestor passes in the store it already holds.
    let bucket: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let node = |id: &str| {
        Cairn::builder(Arc::clone(&bucket))
            .prefix("fleet")
            .node(id)
            .map(|b| b.build())
    };

    // Four ingestors race to create `clicks` with the same metadata.
    let clicks = Name::new("clicks")?;
    let schema = json!({"schema": {"user": "string", "at": "timestamp"}, "retention_days": 30});
    let mut racers = Vec::new();
    for i in 1..=4 {
        let ingestor = node(&format!("ingestor-{i}"))?.await?;
        let (name, metadata) = (clicks.clone(), schema.clone());
        racers.push(tokio::spawn(async move {
            let outcome = ingestor.streams().create(&name, metadata).await;
            (ingestor.node().to_string(), outcome)
        }));
    }
    let mut held = Vec::new();
    for racer in racers {
        let (who, outcome) = racer.await.expect("the ingestor task");
        let outcome = outcome?;
        let verdict = match &outcome {
            Create::Created(_) => "created it",
            Create::Exists(_) => "found it created (same metadata)",
            Create::Conflict(_) => "found it with other metadata",
        };
        let m = outcome.info();
        println!(
            "{who}: {verdict}: version {} by {}",
            m.version, m.record.created_by
        );
        held.push(m.clone());
    }
    assert!(
        held.windows(2).all(|w| w[0] == w[1]),
        "one manifest for all"
    );
    println!("every ingestor holds the same manifest\n");

    // Another ingestor with other metadata is told so, and shown what is stored.
    let late = node("ingestor-5")?.await?;
    if let Create::Conflict(stored) = late.streams().create(&clicks, json!({"schema": 2})).await? {
        println!(
            "ingestor-5 asked for other metadata: conflict, stored is {}",
            stored.record.metadata
        );
    }

    // A querier follows every stream incrementally.
    let querier = node("querier")?.await?;
    let mut follower = querier.streams().follow(Cursor::default());
    let show = |events: Vec<StreamEvent>| {
        for e in events {
            let (change, m) = match &e {
                StreamEvent::Created(m) => ("created", m),
                StreamEvent::Changed(m) => ("changed", m),
                StreamEvent::Deleted(m) => ("deleted", m),
            };
            println!(
                "querier: {} {change} (version {}): {}",
                m.name, m.version, m.record.metadata
            );
        }
    };
    show(follower.poll().await?);

    // Metadata evolves by compare-and-swap; a second stream appears elsewhere.
    late.streams()
        .update(&clicks, |m| {
            let mut m = m.clone();
            m["retention_days"] = json!(90);
            Some(m)
        })
        .await?;
    let streams = late.streams();
    let errors = streams
        .create(&Name::new("errors")?, json!({"schema": 1}))
        .await?;
    assert!(matches!(errors, Create::Created(_)));
    show(follower.poll().await?);
    // Nothing changed since: the poll reports nothing (unchanged streams cost a 304 each).
    assert!(follower.poll().await?.is_empty());
    println!(
        "querier: nothing new; its cursor: {}",
        serde_json::to_string(follower.cursor()).unwrap_or_default()
    );
    Ok(())
}
