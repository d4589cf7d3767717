//! A lease whose fencing token guards writes to the resource it protects.
//!
//! Node A holds the compaction lock and starts a write, which then stalls (a GC pause, a
//! slow disk, a network partition: here A's link to the bucket is cut). A cannot renew: it
//! gives its lease up at its own deadline, and node B takes the lock over once A's lease
//! can no longer be in use, with a higher fencing token. B writes. Then A's stalled write
//! finally arrives, carrying A's old token: the resource refuses it, because it has seen a
//! higher one. Without the token it would have overwritten B's work.
//!
//! A 2 s ttl instead of the default 30 s keeps the demo short. A `FaultStore` (cairn's
//! `test-util` feature) plays the cut link.
//!
//! Runs on an in-memory store: `cargo run --example fenced_lease`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn::store::fault::{Fault, FaultStore, Op, Rule};
use cairn::{Acquired, Cairn, FencingToken, LeaseOptions, LossReason, Name};
use object_store::memory::InMemory;
use object_store::ObjectStore;

/// The protected resource: it remembers the highest token it has seen and refuses writes
/// carrying a lower one. (An object store can do the same with a conditional write of a
/// record holding the token; a database with `WHERE token <= $1`.)
#[derive(Default)]
struct Compacted {
    highest: Option<FencingToken>,
    segments: Vec<String>,
}

impl Compacted {
    fn write(&mut self, token: FencingToken, segment: &str) -> Result<(), String> {
        if self.highest.is_some_and(|h| token < h) {
            return Err(format!(
                "token {token} is older than {}",
                self.highest.unwrap_or(token)
            ));
        }
        self.highest = Some(token);
        self.segments.push(format!("{segment} (token {token})"));
        Ok(())
    }
}

#[tokio::main]
async fn main() -> cairn::Result<()> {
    let bucket: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let resource = Arc::new(Mutex::new(Compacted::default()));
    let lock = Name::new("compaction")?;
    let options = LeaseOptions::with_ttl(Duration::from_secs(2));

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

    let Acquired::Acquired(lease_a) = a_locks.try_acquire(&lock).await? else {
        panic!("nobody holds the lock yet")
    };
    let token_a = lease_a.fencing_token();
    println!("node-a holds the lock with token {token_a}");
    resource
        .lock()
        .unwrap()
        .write(token_a, "segment-1 by node-a")
        .expect("fresh token");

    // node-a starts its next write, and stalls; meanwhile its link to the bucket is cut.
    a_link.add(Rule::always(Op::Put, "", Fault::FailBeforeCommit));
    a_link.add(Rule::always(Op::Get, "", Fault::FailBeforeCommit));
    let (b_wrote, pause_ends) = tokio::sync::oneshot::channel::<()>();
    let stalled = tokio::spawn({
        let resource = Arc::clone(&resource);
        async move {
            let _ = pause_ends.await; // the pause lasts until node-b has written
            let late = resource
                .lock()
                .unwrap()
                .write(token_a, "segment-2 by node-a");
            println!("node-a's stalled write arrives with token {token_a}: {late:?}");
            late
        }
    });

    let reason = match lease_a.lost().await {
        LossReason::Unavailable { .. } => "its renewals failed until then".to_string(),
        other => other.to_string(),
    };
    println!("node-a gave its lease up at its own deadline: {reason}");
    let b_acquired = b_locks
        .acquire(&lock, Some(Duration::from_secs(10)))
        .await?;
    let Acquired::Acquired(lease_b) = b_acquired else {
        panic!("node-a's lease can no longer be in use")
    };
    let token_b = lease_b.fencing_token();
    println!("node-b took over with token {token_b}");
    assert!(token_b > token_a);
    let wrote = resource
        .lock()
        .unwrap()
        .write(token_b, "segment-2 by node-b");
    wrote.expect("the newest token");
    let _ = b_wrote.send(());

    let late = stalled.await.expect("node-a's task");
    assert!(late.is_err(), "the stale token was refused");
    lease_b.release().await?;
    // node-a learns, when it tries to release, that its work may have overlapped another's.
    let released = lease_a.release().await;
    assert!(matches!(released, Err(cairn::Error::LeaseLost { .. })));
    println!("node-a's release: refused, the lease was lost");
    println!(
        "the resource holds: {:?}",
        resource.lock().unwrap().segments
    );
    Ok(())
}
