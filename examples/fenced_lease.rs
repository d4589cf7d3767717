//! A lease whose fencing token guards writes to the resource it protects.
//!
//! Node A holds the compaction lock and starts a write, which then stalls (a GC pause, a
//! slow disk, a network partition: here A's link to the bucket is cut). A cannot renew: it
//! gives its lease up at its own deadline, and node B takes the lock over once A's lease
//! can no longer be in use, with a higher fencing token. B writes. Then A's link comes back
//! and its stalled write finally arrives, carrying A's old token: the resource refuses it,
//! because a higher token has written it. Without the token it would have overwritten B's
//! work.
//!
//! The resource is a fenced object in the same bucket (`cairn::fenced`): every write
//! carries the writer's token and is a compare-and-swap refused once a higher token has
//! written. (A database does the same with `WHERE token <= $1`.)
//!
//! A 2 s ttl instead of the default 30 s keeps the demo short. A `FaultStore` (cairn's
//! `test-util` feature) plays the cut link.
//!
//! Runs on an in-memory store: `cargo run --example fenced_lease`.

use std::sync::Arc;
use std::time::Duration;

use cairn::fenced::FencedWrite;
use cairn::store::fault::{Fault, FaultStore, Op, Rule};
use cairn::{Acquire, Cairn, LockOptions, LossReason, Name};
use object_store::memory::InMemory;
use object_store::ObjectStore;

#[tokio::main]
async fn main() -> cairn::Result<()> {
    let bucket: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let lock = Name::new("compaction")?;
    let segments = Name::new("compacted-segments")?;
    let options = LockOptions::with_ttl(Duration::from_secs(2));

    let a_link = Arc::new(FaultStore::new(Arc::clone(&bucket), 1));
    let a = Cairn::builder(a_link.clone())
        .node("node-a")?
        .build()
        .await?;
    let b = Cairn::builder(Arc::clone(&bucket))
        .node("node-b")?
        .build()
        .await?;
    let (a_locks, b_locks) = (a.locks(options.clone())?, b.locks(options)?);
    let (a_segments, b_segments) = (
        a.fenced::<Vec<String>>(&segments),
        b.fenced::<Vec<String>>(&segments),
    );
    let append = |token, segment: &str| {
        let segment = format!("{segment} (token {token})");
        move |current: Option<&Vec<String>>| {
            let mut all = current.cloned().unwrap_or_default();
            all.push(segment.clone());
            all
        }
    };

    let Acquire::Held(lease_a) = a_locks.try_acquire(&lock).await? else {
        panic!("nobody holds the lock yet")
    };
    let token_a = lease_a.fencing_token();
    println!("node-a holds the lock with token {token_a}");
    let wrote = a_segments
        .update(token_a, append(token_a, "segment-1 by node-a"))
        .await?;
    assert!(matches!(wrote, FencedWrite::Written(_)), "a fresh token");

    // node-a starts its next write, and stalls; meanwhile its link to the bucket is cut.
    a_link.add(Rule::always(Op::Put, "", Fault::FailBeforeCommit));
    a_link.add(Rule::always(Op::Get, "", Fault::FailBeforeCommit));

    let reason = match lease_a.lost().await {
        LossReason::Unavailable { .. } => "its renewals failed until then".to_string(),
        other => other.to_string(),
    };
    println!("node-a gave its lease up at its own deadline: {reason}");
    let b_acquired = b_locks
        .acquire(&lock, Some(Duration::from_secs(10)))
        .await?;
    let Acquire::Held(lease_b) = b_acquired else {
        panic!("node-a's lease can no longer be in use")
    };
    let token_b = lease_b.fencing_token();
    println!("node-b took over with token {token_b}");
    assert!(token_b > token_a);
    let wrote = b_segments
        .update(token_b, append(token_b, "segment-2 by node-b"))
        .await?;
    assert!(matches!(wrote, FencedWrite::Written(_)), "the newest token");

    // node-a's link comes back, and its stalled write arrives with its old token.
    a_link.clear();
    let late = a_segments
        .update(token_a, append(token_a, "segment-2 by node-a"))
        .await?;
    println!("node-a's stalled write arrives with token {token_a}: {late:?}");
    assert_eq!(late, FencedWrite::Refused { token: token_b });

    lease_b.release().await?;
    // node-a learns, when it tries to release, that its work may have overlapped another's.
    let released = lease_a.release().await;
    assert!(matches!(released, Err(cairn::Error::LockLost { .. })));
    println!("node-a's release: refused, the lease was lost");
    let stored = b_segments.read().await?.expect("written");
    println!(
        "the bucket holds, under token {}: {:?}",
        stored.token, stored.value
    );
    assert_eq!(stored.value.len(), 2);
    Ok(())
}
