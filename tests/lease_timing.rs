//! Every lease timing rule on a paused tokio clock: no test here sleeps in real time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn::lock::{Acquire, LockOptions, Locks, LossReason, StoredState};
use cairn::manifest::Strategy;
use cairn::store::fault::{Fault, FaultStore, Op, Rule};
use cairn::{Cairn, FencingToken, Name, StrategyChoice, TestClock};
use chrono::{DateTime, Utc};
use object_store::memory::InMemory;
use object_store::ObjectStore;
use rand::{Rng, SeedableRng};
use tokio::time::{sleep, Instant};

const TTL: Duration = Duration::from_secs(30);

fn origin() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap()
}

thread_local! {
    static START: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// The instant the test's first node was made: every node's wall clock counts from it.
fn test_start() -> Instant {
    START.with(|s| {
        let t = s.get().unwrap_or_else(Instant::now);
        s.set(Some(t));
        t
    })
}

struct Node {
    locks: Locks,
    clock: Arc<TestClock>,
    faults: Arc<FaultStore>,
}

async fn node(shared: &Arc<dyn ObjectStore>, id: &str, strategy: Strategy) -> Node {
    // The prefix's protocol record (and the probe that precedes it) is written before the
    // node's counting store sees a request, so counts below are the lease's alone.
    Cairn::builder(Arc::clone(shared))
        .strategy(StrategyChoice::Fixed(strategy))
        .build()
        .await
        .unwrap();
    let faults = Arc::new(FaultStore::new(Arc::clone(shared), id.len() as u64));
    let clock = Arc::new(TestClock::anchored(origin(), test_start()));
    let cairn = Cairn::builder(faults.clone())
        .node(id)
        .unwrap()
        .clock(clock.clone())
        .seed(id.bytes().map(u64::from).sum())
        .strategy(StrategyChoice::Fixed(strategy))
        .build()
        .await
        .unwrap();
    Node {
        locks: cairn.locks(LockOptions::default()).unwrap(),
        clock,
        faults,
    }
}

/// The shared store, whose clock (every object's `last_modified`) is the test's unskewed
/// clock: objects age as the paused clock advances.
fn store() -> Arc<dyn ObjectStore> {
    let clock = Arc::new(TestClock::anchored(origin(), test_start()));
    Arc::new(FaultStore::stamped(Arc::new(InMemory::new()), 0, clock))
}

fn lock() -> Name {
    Name::new("job").unwrap()
}

async fn acquire(n: &Node) -> cairn::HeldLock {
    match n.locks.try_acquire(&lock()).await.unwrap() {
        Acquire::Held(l) => l,
        Acquire::Busy(b) => panic!("busy: {b:?}"),
    }
}

async fn is_busy(n: &Node) -> bool {
    match n.locks.try_acquire(&lock()).await.unwrap() {
        Acquire::Held(l) => {
            std::mem::forget(l);
            false
        }
        Acquire::Busy(_) => true,
    }
}

/// Cuts a node off from the store: every request fails before reaching it.
fn partition(n: &Node) {
    for op in [Op::Put, Op::Get, Op::List, Op::Delete] {
        n.faults.add(Rule::always(op, "", Fault::FailBeforeCommit));
    }
}

#[tokio::test(start_paused = true)]
async fn holder_renews_every_third_of_the_ttl() {
    let s = store();
    let a = node(&s, "a", Strategy::EtagCas).await;
    let lease = acquire(&a).await;
    let puts = |n: &Node| n.faults.counts().puts;
    // The acquire's PUT, and the clock check's that floored the lock created afresh.
    assert_eq!(puts(&a), 2);
    sleep(Duration::from_millis(9_900)).await;
    assert_eq!(puts(&a), 2, "no renewal before ttl/3");
    sleep(Duration::from_millis(200)).await;
    assert_eq!(puts(&a), 3, "one renewal at ttl/3");
    sleep(Duration::from_secs(20)).await;
    assert_eq!(puts(&a), 5, "renewals at 10 s, 20 s, 30 s");
    assert!(lease.is_held());
    let info = a.locks.show(&lock()).await.unwrap().unwrap();
    // The first version is a floor drawn from time (`clock::floor`); three renewals since.
    assert_eq!(info.version, lease.fencing_token().0 + 3);
    assert_eq!(
        info.fencing_token,
        lease.fencing_token(),
        "renewals keep the token"
    );
    lease.release().await.unwrap();
}

/// On the version chain an acquisition reads slot 1 after its create (a chain created again
/// above it?), but a renewal hands out nothing new: one create, no read.
#[tokio::test(start_paused = true)]
async fn chain_renewals_are_one_create_and_an_acquisition_adds_one_read() {
    let s = store();
    let a = node(&s, "a", Strategy::VersionChain).await;
    // Two rounds, so that the chain has versions beyond its first slot. The acquisition
    // writes on what the release left known: its create and the read of slot 1.
    acquire(&a).await.release().await.unwrap();
    let before = a.faults.counts();
    let lease = acquire(&a).await;
    let d = a.faults.counts().since(&before);
    assert_eq!((d.puts, d.gets, d.lists), (1, 1, 0), "acquire: {d:?}");
    let before = a.faults.counts();
    sleep(Duration::from_millis(10_100)).await;
    let d = a.faults.counts().since(&before);
    assert_eq!((d.puts, d.gets, d.lists), (1, 0, 0), "a renewal: {d:?}");
    assert!(lease.is_held());
    lease.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn holder_gives_up_at_last_renewal_sent_plus_ttl_minus_margin() {
    let s = store();
    let a = node(&s, "a", Strategy::EtagCas).await;
    let t0 = Instant::now();
    let lease = acquire(&a).await;
    // The renewal at 10 s succeeds; every later one gets a 500.
    sleep(Duration::from_millis(10_500)).await;
    a.faults.add(Rule::always(Op::Put, "", Fault::Status(500)));
    let reason = lease.lost().await;
    let at = Instant::now() - t0;
    assert!(
        matches!(reason, LossReason::Unavailable { .. }),
        "{reason:?}"
    );
    // Deadline: 10 s (last successful renewal sent) + 30 s − 2 s.
    assert_eq!(at, Duration::from_secs(38), "lost at {at:?}");
    assert!(!lease.is_held());
}

#[tokio::test(start_paused = true)]
async fn holder_with_no_successful_renewal_gives_up_at_acquire_plus_ttl_minus_margin() {
    let s = store();
    let a = node(&s, "a", Strategy::VersionChain).await;
    let t0 = Instant::now();
    let lease = acquire(&a).await;
    a.faults.add(Rule::always(Op::Put, "", Fault::Hang));
    lease.lost().await;
    assert_eq!(Instant::now() - t0, Duration::from_secs(28));
}

#[tokio::test(start_paused = true)]
async fn observer_takes_over_only_after_seeing_the_same_version_for_ttl_plus_margin() {
    let s = store();
    let a = node(&s, "a", Strategy::EtagCas).await;
    let b = node(&s, "b", Strategy::EtagCas).await;
    // b's wall clock is an hour behind, so only the observation rule can let it in.
    b.clock.set_skew(chrono::Duration::hours(-1));
    let lease = acquire(&a).await;
    partition(&a);
    sleep(Duration::from_secs(1)).await;
    let first_seen = Instant::now();
    assert!(is_busy(&b).await);
    sleep(TTL + Duration::from_secs(2) - Duration::from_millis(1)).await;
    assert!(
        is_busy(&b).await,
        "taken over before ttl + margin of observation"
    );
    assert!(!lease.is_held(), "holder must have stopped first");
    assert!(matches!(
        lease.loss_reason(),
        Some(LossReason::Unavailable { .. })
    ));
    sleep(Duration::from_millis(1)).await;
    let taken = acquire(&b).await;
    assert_eq!(Instant::now() - first_seen, TTL + Duration::from_secs(2));
    assert!(taken.fencing_token() > lease.fencing_token());
}

#[tokio::test(start_paused = true)]
async fn observation_restarts_when_the_holder_renews() {
    let s = store();
    let a = node(&s, "a", Strategy::EtagCas).await;
    let b = node(&s, "b", Strategy::EtagCas).await;
    b.clock.set_skew(chrono::Duration::hours(-1));
    let lease = acquire(&a).await;
    // A healthy holder renews every 10 s, so b never sees one version for 32 s.
    for _ in 0..20 {
        assert!(is_busy(&b).await);
        sleep(Duration::from_secs(5)).await;
    }
    assert!(lease.is_held());
    lease.release().await.unwrap();
}

/// The expiry rule reads the store's clock: a lease whose newest version the store wrote
/// (`last_modified`, t = 0) more than ttl + takeover margin + the store's time resolution
/// (30 + 2 + 1 s) ago is taken over by a node that never saw it before, after one clock check.
#[tokio::test(start_paused = true)]
async fn expired_lease_is_taken_over_on_the_store_clock_only() {
    let s = store();
    let a = node(&s, "a", Strategy::EtagCas).await;
    let lease = acquire(&a).await;
    partition(&a);
    // Fresh observers (no observation history) at 32.9 s: not yet.
    sleep(Duration::from_millis(32_900)).await;
    let early = node(&s, "early", Strategy::EtagCas).await;
    assert!(
        is_busy(&early).await,
        "taken over before the store's clock allows"
    );
    // At 33.1 s: taken over at the first attempt.
    sleep(Duration::from_millis(200)).await;
    let late = node(&s, "late", Strategy::EtagCas).await;
    let before = late.faults.counts();
    let taken = acquire(&late).await;
    assert!(!lease.is_held());
    // Drawn from time, above the lease's (`Manifests::next_start`): no request more, the
    // expiry rule's clock check serves the floor.
    assert!(taken.fencing_token() > lease.fencing_token());
    let c = late.faults.counts();
    assert_eq!(
        (c.gets - before.gets, c.puts - before.puts),
        (2, 2),
        "a read, a clock check (PUT + HEAD), the takeover"
    );
}

/// A node whose wall clock runs a minute ahead sees every live lease as long expired by the
/// holder's `expires_at`. It measures its clock against the store's, finds it beyond the
/// bound, and takes over nothing by expiry.
#[tokio::test(start_paused = true)]
async fn a_node_a_minute_ahead_takes_over_no_live_lease() {
    let s = store();
    let a = node(&s, "a", Strategy::EtagCas).await;
    let ahead = node(&s, "ahead", Strategy::EtagCas).await;
    ahead.clock.set_skew(chrono::Duration::seconds(60));
    let lease = acquire(&a).await;
    sleep(Duration::from_secs(5)).await;
    assert!(
        is_busy(&ahead).await,
        "a live lease taken over by a clock a minute ahead"
    );
    sleep(Duration::from_secs(20)).await;
    assert!(is_busy(&ahead).await);
    assert!(lease.is_held());
    lease.release().await.unwrap();
}

/// A holder whose wall clock runs a minute behind writes an `expires_at` already in the past
/// for everyone else; its lease is judged by when the store wrote it, and stays its own.
#[tokio::test(start_paused = true)]
async fn a_holder_a_minute_behind_keeps_its_lease() {
    let s = store();
    let behind = node(&s, "behind", Strategy::VersionChain).await;
    behind.clock.set_skew(chrono::Duration::seconds(-60));
    let b = node(&s, "b", Strategy::VersionChain).await;
    let lease = acquire(&behind).await;
    for _ in 0..6 {
        sleep(Duration::from_secs(5)).await;
        assert!(
            is_busy(&b).await,
            "a live lease taken over because its holder's clock is behind"
        );
    }
    assert!(lease.is_held());
    lease.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn skewed_observer_clock_within_the_bound_cannot_take_over_early() {
    let s = store();
    let a = node(&s, "a", Strategy::EtagCas).await;
    let b = node(&s, "b", Strategy::EtagCas).await;
    // b runs 2 s fast: exactly the tolerated skew.
    b.clock.set_skew(chrono::Duration::seconds(2));
    let lease = acquire(&a).await;
    partition(&a);
    sleep(Duration::from_millis(29_900)).await;
    assert!(is_busy(&b).await);
    assert!(!lease.is_held(), "holder stopped at 28 s");
}

#[tokio::test(start_paused = true)]
async fn break_is_seen_by_the_holder_at_its_next_renewal_and_blocks_others_until_it_stopped() {
    let s = store();
    let a = node(&s, "a", Strategy::EtagCas).await;
    let op = node(&s, "operator", Strategy::EtagCas).await;
    let b = node(&s, "b", Strategy::EtagCas).await;
    let t0 = Instant::now();
    let lease = acquire(&a).await;
    sleep(Duration::from_secs(3)).await;
    let broken = op.locks.break_lock(&lock()).await.unwrap().unwrap();
    assert_eq!(broken.state, cairn::lock::LockState::Broken);
    // The record keeps the broken holder and names who broke it.
    assert_eq!(broken.holder, "a");
    assert_eq!(broken.broken_by.as_deref(), Some("operator"));
    // Nobody may acquire while the broken holder may still be at work.
    assert!(
        is_busy(&b).await,
        "a break must not let another node in at once"
    );
    let reason = lease.lost().await;
    assert_eq!(
        Instant::now() - t0,
        Duration::from_secs(10),
        "learned at the next renewal"
    );
    assert_eq!(
        reason,
        LossReason::Broken {
            by: "operator".into(),
            version: broken.version
        }
    );
    assert_eq!(broken.version, lease.fencing_token().0 + 1);
    // Its release reports the loss instead of pretending all went well.
    let token = lease.fencing_token();
    assert!(matches!(
        lease.release().await,
        Err(cairn::Error::LockLost {
            reason: LossReason::Broken { .. },
            ..
        })
    ));
    let next = match b.locks.acquire(&lock(), None).await.unwrap() {
        Acquire::Held(l) => l,
        Acquire::Busy(x) => panic!("busy: {x:?}"),
    };
    assert!(
        Instant::now() - t0 >= Duration::from_secs(28),
        "b acquired at {:?}, before the broken holder's deadline (28 s)",
        Instant::now() - t0
    );
    assert!(next.fencing_token() > token);
    // Breaking a lock nobody holds changes nothing.
    next.release().await.unwrap();
    let v = op.locks.show(&lock()).await.unwrap().unwrap().version;
    op.locks.break_lock(&lock()).await.unwrap();
    assert_eq!(op.locks.show(&lock()).await.unwrap().unwrap().version, v);
}

#[tokio::test(start_paused = true)]
async fn should_refuse_to_break_a_lease_whose_fencing_token_is_not_the_one_named() {
    use cairn::lock::{Break, LockState};
    let s = store();
    let a = node(&s, "a", Strategy::EtagCas).await;
    let op = node(&s, "operator", Strategy::EtagCas).await;
    assert_eq!(
        op.locks.break_held(&lock(), FencingToken(1)).await.unwrap(),
        None
    );
    let first = acquire(&a).await;
    let token = first.fencing_token();
    first.release().await.unwrap();
    // The operator inspected lease `token`; meanwhile a newer lease was acquired.
    let second = acquire(&a).await;
    assert!(second.fencing_token() > token);
    let v = op.locks.show(&lock()).await.unwrap().unwrap().version;
    match op.locks.break_held(&lock(), token).await.unwrap() {
        Some(Break::OtherHolder(info)) => {
            assert_eq!(info.fencing_token, second.fencing_token());
            assert_eq!(info.state, LockState::Held);
        }
        other => panic!("expected OtherHolder, got {other:?}"),
    }
    assert_eq!(
        op.locks.show(&lock()).await.unwrap().unwrap().version,
        v,
        "nothing written"
    );
    // The current token breaks it, keeping holder and expiry, naming operator and time.
    let Some(Break::Broken(info)) = op
        .locks
        .break_held(&lock(), second.fencing_token())
        .await
        .unwrap()
    else {
        panic!("expected Broken");
    };
    assert_eq!(info.state, LockState::Broken);
    assert_eq!(info.holder, "a");
    assert_eq!(info.broken_by.as_deref(), Some("operator"));
    assert!(info.broken_at.is_some());
    // Breaking it again changes nothing.
    assert!(matches!(
        op.locks
            .break_held(&lock(), second.fencing_token())
            .await
            .unwrap(),
        Some(Break::NotHeld(_))
    ));
    drop(second);
}

#[tokio::test(start_paused = true)]
async fn a_lease_with_a_stop_grace_gives_up_that_much_earlier() {
    let s = store();
    let c = Cairn::builder(Arc::clone(&s))
        .node("g")
        .unwrap()
        .build()
        .await
        .unwrap();
    let opts = LockOptions::default().with_stop_grace(Duration::from_secs(10));
    let locks = c.locks(opts).unwrap();
    let t0 = Instant::now();
    let lease = match locks.try_acquire(&lock()).await.unwrap() {
        Acquire::Held(l) => l,
        Acquire::Busy(b) => panic!("busy: {b:?}"),
    };
    assert_eq!(lease.deadline() - t0, Duration::from_secs(30 - 2 - 10));
    // A grace that leaves no room to renew is refused before any request.
    let bad =
        LockOptions::with_ttl(Duration::from_secs(12)).with_stop_grace(Duration::from_secs(10));
    let err = c.locks(bad).unwrap_err();
    assert!(err.to_string().contains("no room to renew"), "{err}");
    assert!(c.locks(LockOptions::with_ttl(Duration::ZERO)).is_err());
    assert!(c
        .locks(LockOptions::with_ttl(Duration::from_secs(
            3_000_000_000 * 3600
        )))
        .is_err());
    lease.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn release_writes_a_tombstone_and_never_deletes() {
    for strategy in [Strategy::EtagCas, Strategy::VersionChain] {
        let s = store();
        let a = node(&s, "a", strategy).await;
        let b = node(&s, "b", strategy).await;
        let lease = acquire(&a).await;
        let t1 = lease.fencing_token();
        lease.release().await.unwrap();
        let info = a.locks.show(&lock()).await.unwrap().unwrap();
        assert_eq!(info.state, cairn::lock::LockState::Released);
        let again = acquire(&b).await;
        assert!(again.fencing_token() > t1);
        again.release().await.unwrap();
        assert_eq!(a.faults.counts().deletes + b.faults.counts().deletes, 0);
    }
}

#[tokio::test(start_paused = true)]
async fn dropped_lease_is_released_in_the_background() {
    let s = store();
    let a = node(&s, "a", Strategy::EtagCas).await;
    let b = node(&s, "b", Strategy::EtagCas).await;
    drop(acquire(&a).await);
    sleep(Duration::from_millis(10)).await;
    let info = a.locks.show(&lock()).await.unwrap().unwrap();
    assert_eq!(info.state, cairn::lock::LockState::Released);
    acquire(&b).await.release().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn waiting_acquire_gets_the_lock_soon_after_release_and_gives_up_after_its_wait() {
    let s = store();
    let a = node(&s, "a", Strategy::EtagCas).await;
    let b = node(&s, "b", Strategy::EtagCas).await;
    let lease = acquire(&a).await;
    let t0 = Instant::now();
    match b
        .locks
        .acquire(&lock(), Some(Duration::from_secs(5)))
        .await
        .unwrap()
    {
        Acquire::Busy(busy) => {
            assert_eq!(busy.holder, "a");
            assert_eq!(busy.fencing_token, lease.fencing_token());
        }
        Acquire::Held(_) => panic!("acquired a held lock"),
    }
    assert_eq!(Instant::now() - t0, Duration::from_secs(5));
    let waiter = tokio::spawn(async move {
        let got = b.locks.acquire(&lock(), None).await.unwrap();
        (Instant::now(), got)
    });
    sleep(Duration::from_secs(7)).await;
    let released_at = Instant::now();
    let first = lease.fencing_token();
    lease.release().await.unwrap();
    let (at, got) = waiter.await.unwrap();
    let Acquire::Held(l) = got else {
        panic!("waiter did not acquire")
    };
    assert!(
        at - released_at <= Duration::from_secs(10),
        "polling must stay below the renew interval"
    );
    assert!(l.fencing_token() > first);
}

/// Holders whose renewals suffer random faults (lost answers, 500s, hangs) while two other
/// nodes keep trying to take the lock: at no instant do two nodes consider themselves
/// holders, and fencing tokens rise in acquisition order.
#[tokio::test(start_paused = true)]
async fn fault_injected_renewals_never_produce_two_holders() {
    for strategy in [Strategy::EtagCas, Strategy::VersionChain] {
        let s = store();
        #[derive(Debug)]
        struct Interval {
            node: String,
            token: FencingToken,
            start: Instant,
            end: Instant,
        }
        let log = Arc::new(Mutex::new(Vec::<Interval>::new()));
        let mut tasks = Vec::new();
        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            let n = node(&s, id, strategy).await;
            for (fault, p) in [
                (Fault::CommitThenFail, 0.15),
                (Fault::Status(500), 0.15),
                (Fault::Hang, 0.05),
            ] {
                n.faults
                    .add(Rule::always(Op::Put, "", fault).with_probability(p));
            }
            let log = Arc::clone(&log);
            tasks.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
                let end = Instant::now() + Duration::from_secs(1800);
                while Instant::now() < end {
                    let lease = match n
                        .locks
                        .acquire(&lock(), Some(Duration::from_secs(60)))
                        .await
                    {
                        Ok(Acquire::Held(l)) => l,
                        Ok(Acquire::Busy(_)) | Err(_) => continue,
                    };
                    let start = Instant::now();
                    let hold = Duration::from_secs(rng.random_range(1..90));
                    tokio::select! {
                        _ = lease.lost() => {}
                        _ = sleep(hold) => {}
                    }
                    // The critical section ends when the holder stops: at loss, or now.
                    let end = Instant::now();
                    log.lock().unwrap().push(Interval {
                        node: id.to_string(),
                        token: lease.fencing_token(),
                        start,
                        end,
                    });
                    let _ = lease.release().await;
                    sleep(Duration::from_secs(rng.random_range(0..5))).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut log = std::mem::take(&mut *log.lock().unwrap());
        log.sort_by_key(|i| i.start);
        assert!(
            log.len() > 20,
            "{strategy}: too few acquisitions ({})",
            log.len()
        );
        assert!(
            log.iter()
                .map(|i| i.node.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                == 3
        );
        for w in log.windows(2) {
            assert!(
                w[0].end <= w[1].start,
                "{strategy}: overlapping holders: {:?} and {:?}",
                w[0],
                w[1]
            );
            assert!(
                w[0].token < w[1].token,
                "{strategy}: tokens must rise: {:?} {:?}",
                w[0],
                w[1]
            );
        }
        // The stored lock is readable and sane at the end.
        let n = node(&s, "checker", strategy).await;
        let info = n.locks.show(&lock()).await.unwrap().unwrap();
        assert!(info.fencing_token >= log.last().unwrap().token);
        let _ = StoredState::Held;
    }
}

#[tokio::test(start_paused = true)]
async fn a_waiter_learns_of_a_release_within_about_a_second() {
    let s = store();
    let a = node(&s, "a", Strategy::EtagCas).await;
    let b = node(&s, "b", Strategy::EtagCas).await;
    let lease = acquire(&a).await;
    let waiter = tokio::spawn(async move {
        let got = b.locks.acquire(&lock(), None).await.unwrap();
        (Instant::now(), got, b)
    });
    sleep(Duration::from_secs(26)).await;
    lease.release().await.unwrap();
    let released = Instant::now();
    let (at, got, b) = waiter.await.unwrap();
    assert!(matches!(got, Acquire::Held(_)));
    assert!(
        at - released <= Duration::from_millis(1_100),
        "waited {:?} after the release",
        at - released
    );
    // About one request a second while waiting (26 s): no more than ~2 a second, no polling
    // storm.
    let c = b.faults.counts();
    assert!(c.requests() <= 2 * 27 + 4, "{c:?}");
}

/// A host suspended (or a VM paused) for longer than the lease had left: the monotonic clock
/// stood still, everyone else's did not. On wake the lease is no longer held, at once, and
/// its loss fires without waiting for a renewal to fail (none is even sent).
#[tokio::test(start_paused = true)]
async fn a_suspension_past_the_deadline_loses_the_lease_on_wake() {
    let s = store();
    let a = node(&s, "a", Strategy::EtagCas).await;
    let lease = acquire(&a).await;
    sleep(Duration::from_secs(5)).await;
    assert!(lease.is_held());
    a.clock.suspend(Duration::from_secs(60));
    assert!(
        !lease.is_held(),
        "a lease whose give-up time passed while the host slept is not held"
    );
    assert!(lease.deadline() <= Instant::now());
    let reason = tokio::time::timeout(cairn::clock::SUSPEND_CHECK, lease.lost())
        .await
        .expect("the loss fires as soon as the holder looks at its clock again");
    assert!(
        matches!(reason, LossReason::Unavailable { .. }),
        "{reason:?}"
    );
    assert_eq!(
        a.faults.counts().puts,
        2,
        "no renewal was sent after the wake (the acquire and its clock check only)"
    );
    assert!(matches!(
        lease.release().await,
        Err(cairn::Error::LockLost { .. })
    ));
}

/// A suspension shorter than what the lease had left counts against it all the same: cut
/// off from the store at 5 s and suspended for 20 s, the holder gives up at 8 s on its
/// monotonic clock (28 s after the acquire, counting the 20 s it slept).
#[tokio::test(start_paused = true)]
async fn time_spent_suspended_counts_against_the_deadline() {
    for strategy in [Strategy::EtagCas, Strategy::VersionChain] {
        let s = store();
        let a = node(&s, "a", strategy).await;
        let t0 = Instant::now();
        let lease = acquire(&a).await;
        sleep(Duration::from_secs(5)).await;
        partition(&a);
        a.clock.suspend(Duration::from_secs(20));
        assert!(lease.is_held(), "{strategy:?}");
        assert_eq!(
            lease.deadline() - t0,
            Duration::from_secs(8),
            "{strategy:?}"
        );
        let reason = lease.lost().await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(8), "{strategy:?}");
        assert!(
            matches!(reason, LossReason::Unavailable { .. }),
            "{strategy:?}: {reason:?}"
        );
        assert!(!lease.is_held());
    }
}
