//! A periodic job on exactly one node per window, with no configured master (the Zeek
//! expiry problem).
//!
//! The defaults are a 300 s window with ±30 s of jitter; this demo shortens them to 1 s ±
//! 100 ms so that a few turns pass in seconds. Three nodes run the long-running loop: each
//! sleeps until its own jittered wake time (no polling in between), revalidates the turn,
//! and claims it if nobody has. Of all the claims for one turn number exactly one wins.
//! Then a cron-style one-shot invocation runs the turn only if it is due.
//!
//! Runs on a temporary directory: `cargo run --example expiry_turns`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn::turn::{RunOnce, TurnOptions};
use cairn::{Cairn, Name};
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> cairn::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let bucket: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).expect("a directory store"));
    let options = TurnOptions {
        window: Duration::from_secs(1),     // default 300 s
        jitter: Duration::from_millis(100), // default 30 s
        ..TurnOptions::default()
    };
    let expiry = Name::new("expiry")?;
    let start = Instant::now();
    // Turn number → the node that ran it, and when.
    let ran = Arc::new(Mutex::new(BTreeMap::<u64, (String, Duration)>::new()));

    let stop = CancellationToken::new();
    let mut nodes = Vec::new();
    for id in ["zeek-a", "zeek-b", "zeek-c"] {
        let node = Cairn::builder(Arc::clone(&bucket))
            .node(id)?
            .build()
            .await?;
        let turns = node.turns(options.clone());
        let (name, ran, stop) = (expiry.clone(), Arc::clone(&ran), stop.clone());
        nodes.push(tokio::spawn(async move {
            let job = |number: u64| {
                let ran = Arc::clone(&ran);
                async move {
                    let at = start.elapsed();
                    println!("{at:>8.2?}  turn {number} runs on {id}: expiring old logs");
                    let earlier = ran.lock().unwrap().insert(number, (id.to_string(), at));
                    assert!(earlier.is_none(), "turn {number} ran twice");
                    tokio::time::sleep(Duration::from_millis(50)).await; // the work
                    Ok(Some(serde_json::json!({ "expired": number * 10 })))
                }
            };
            turns.run_loop(&name, job, stop).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    stop.cancel();
    for n in nodes {
        n.await.expect("the node task")?;
    }

    let ran = ran.lock().unwrap().clone();
    let numbers: Vec<u64> = ran.keys().copied().collect();
    // Turn numbers are drawn from time (above the last, not consecutive), so that they stay
    // above any earlier claim's if the turn's objects are ever deleted or restored. No number
    // ran twice (asserted as each ran), and 4.5 s held a turn a window (at least 3, on a busy
    // machine).
    assert!(numbers.len() >= 3, "a turn a window: {numbers:?}");
    let starts: Vec<Duration> = ran.values().map(|(_, at)| *at).collect();
    let gaps: Vec<String> = starts
        .windows(2)
        .map(|w| format!("{:.2?}", w[1] - w[0]))
        .collect();
    println!(
        "{} turns, one node each; time between starts: {}",
        ran.len(),
        gaps.join(", ")
    );

    // A cron or serverless invocation: one shot, that runs the turn only if it is due.
    let cron = Cairn::builder(Arc::clone(&bucket))
        .node("cron")?
        .build()
        .await?;
    let turns = cron.turns(options);
    match turns.run_once(&expiry, |_| async { Ok(None) }).await? {
        RunOnce::NotDue {
            current,
            claimable_at,
        } => println!(
            "cron: not due (turn {} ran on {}); claimable from {claimable_at}",
            current.record.turn, current.record.holder
        ),
        RunOnce::Ran { number, .. } => println!("cron: ran turn {number}"),
        RunOnce::Lost { current } => println!("cron: {} got there first", current.record.holder),
    }
    let stored = turns.get(&expiry).await?.expect("the turn exists");
    println!(
        "stored: turn {} by {}, {}, next due {}",
        stored.record.turn, stored.record.holder, stored.state, stored.next_due_at
    );
    Ok(())
}
