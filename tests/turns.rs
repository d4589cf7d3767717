//! Turns on a paused tokio clock: exactly one run per window among many nodes that are
//! killed and restarted at random, and the one-shot rules, counters and costs.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn::manifest::Strategy;
use cairn::store::fault::{Fault, FaultStore, Op, Rule};
use cairn::turn::{Claim, Finish, RunOnce, Status, TurnOptions, Turns};
use cairn::{Cairn, Clock, Name, StrategyChoice, TestClock};
use chrono::{DateTime, Utc};
use common::Backend;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use rand::{Rng, SeedableRng};
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

const WINDOW: Duration = Duration::from_secs(300);
const JITTER: Duration = Duration::from_secs(30);
const GET_DELAY: Duration = Duration::from_secs(1);
const PUT_DELAY: Duration = Duration::from_secs(3);
/// How much request latency can move a job's start against its turn's recorded start.
const SLACK: Duration = Duration::from_secs(6);

fn origin() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap()
}

/// A memory store whose clock (every object's `last_modified`) is the test's clock from now:
/// objects age as the paused clock advances, and nodes' clock checks find them in step.
fn memory() -> Arc<dyn ObjectStore> {
    let clock = Arc::new(TestClock::anchored(origin(), Instant::now()));
    Arc::new(FaultStore::stamped(Arc::new(InMemory::new()), 0, clock))
}

fn name() -> Name {
    Name::new("expiry").unwrap()
}

async fn turns_on(
    store: Arc<dyn ObjectStore>,
    node: &str,
    seed: u64,
    start: Instant,
    strategy: Strategy,
) -> (Turns, Arc<FaultStore>) {
    // The prefix's protocol record is written before the counting store sees a request.
    Cairn::builder(Arc::clone(&store))
        .strategy(StrategyChoice::Fixed(strategy))
        .build()
        .await
        .unwrap();
    let faults = Arc::new(FaultStore::new(store, seed));
    let cairn = Cairn::builder(faults.clone())
        .node(node)
        .unwrap()
        .clock(Arc::new(TestClock::anchored(origin(), start)))
        .seed(seed)
        .strategy(StrategyChoice::Fixed(strategy))
        .build()
        .await
        .unwrap();
    let turns = cairn.turns(TurnOptions {
        window: WINDOW,
        jitter: JITTER,
        adopt_stored: false,
    });
    (turns, faults)
}

#[derive(Debug, Clone)]
struct Run {
    turn: u64,
    node: String,
    at: Instant,
}

/// 32 nodes run the long-running loop over a store with slow requests; a chaos task kills
/// nodes (aborting them mid-job, mid-request or mid-sleep, like a crash) and restarts them,
/// always leaving one alive. The job logs each run. A checker proves every turn number ran
/// exactly once, in order, and that consecutive turns started `window ± jitter` apart
/// (within the request latency): never early, never a window missed.
#[tokio::test(start_paused = true)]
async fn thirty_two_nodes_run_exactly_one_job_per_window_through_kills_and_restarts() {
    const NODES: usize = 32;
    const WINDOWS: usize = 200;
    let store = memory();
    let start = Instant::now();
    let runs: Arc<Mutex<Vec<Run>>> = Arc::default();
    let spawn = |i: usize, generation: u64| {
        let store = Arc::clone(&store);
        let runs = Arc::clone(&runs);
        tokio::spawn(async move {
            let node = format!("node-{i}");
            let seed = (i as u64) << 20 | generation;
            let (turns, faults) = turns_on(store, &node, seed, start, Strategy::EtagCas).await;
            // Slow requests, so that nodes waking close together really race; and some
            // claims whose success answer is lost (the server's 412 to a retried PUT),
            // which write-then-verify must still count as won.
            faults.add(Rule::always(Op::Get, "", Fault::Delay(GET_DELAY)));
            faults.add(Rule::always(Op::Put, "", Fault::Delay(PUT_DELAY)));
            faults.add(
                Rule::always(Op::Put, "", Fault::CommitThenStatus(412)).with_probability(0.05),
            );
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            turns
                .run_loop(
                    &name(),
                    |turn| {
                        runs.lock().unwrap().push(Run {
                            turn,
                            node: node.clone(),
                            at: Instant::now(),
                        });
                        let work = Duration::from_secs(rng.random_range(1..120));
                        async move {
                            sleep(work).await;
                            Ok(Some(serde_json::json!({ "expired": turn })))
                        }
                    },
                    CancellationToken::new(),
                )
                .await
                .expect("the loop ends only on an error retrying cannot fix")
        })
    };
    let mut nodes: Vec<Option<tokio::task::JoinHandle<()>>> =
        (0..NODES).map(|i| Some(spawn(i, 0))).collect();
    let mut restart_at: Vec<Option<Instant>> = vec![None; NODES];
    let mut chaos = rand::rngs::StdRng::seed_from_u64(7);
    let mut kills = 0;
    let mut generation = 0;
    while runs.lock().unwrap().len() < WINDOWS {
        sleep(Duration::from_secs(chaos.random_range(20..400))).await;
        let now = Instant::now();
        for i in 0..NODES {
            if restart_at[i].is_some_and(|t| t <= now) {
                generation += 1;
                nodes[i] = Some(spawn(i, generation));
                restart_at[i] = None;
            }
        }
        // Kill a few at once, sometimes most of the fleet, but never the last one alive.
        let most = if chaos.random_bool(0.1) { 30 } else { 3 };
        let victims = chaos.random_range(1..=most);
        for _ in 0..victims {
            let alive: Vec<usize> = (0..NODES).filter(|i| nodes[*i].is_some()).collect();
            if alive.len() <= 1 {
                break;
            }
            let v = alive[chaos.random_range(0..alive.len())];
            nodes[v].take().unwrap().abort();
            restart_at[v] = Some(now + Duration::from_secs(chaos.random_range(10..1500)));
            kills += 1;
        }
        assert!(
            now - start < WINDOW * (WINDOWS as u32 + 20),
            "only {} runs after {:?}",
            runs.lock().unwrap().len(),
            now - start
        );
    }
    for n in nodes.into_iter().flatten() {
        n.abort();
    }
    let runs = runs.lock().unwrap().clone();
    assert!(kills > 100, "the chaos must kill often; killed {kills}");
    // Turn numbers are drawn from time (`Manifests::next_start`): each above the one before,
    // not consecutive. A missed window shows in the gaps checked below.
    for (i, w) in runs.windows(2).enumerate() {
        assert!(
            w[1].turn > w[0].turn,
            "turn numbers must run once each, in order: {:?}",
            &runs[i.saturating_sub(1)..(i + 2)]
        );
    }
    for w in runs.windows(2) {
        let gap = w[1].at - w[0].at;
        assert!(
            gap + SLACK >= WINDOW - JITTER,
            "turn {} started {gap:?} after turn {}: early",
            w[1].turn,
            w[0].turn
        );
        assert!(
            gap <= WINDOW + JITTER + SLACK,
            "turn {} started {gap:?} after turn {}: a window was missed",
            w[1].turn,
            w[0].turn
        );
    }
    let holders: std::collections::HashSet<&str> = runs.iter().map(|r| r.node.as_str()).collect();
    assert!(holders.len() > 10, "turns spread over nodes: {holders:?}");
}

#[tokio::test(start_paused = true)]
async fn one_shot_claims_only_when_due_and_costs_one_or_two_requests() {
    let store = memory();
    let start = Instant::now();
    let (a, fa) = turns_on(Arc::clone(&store), "a", 1, start, Strategy::EtagCas).await;
    let (b, _) = turns_on(Arc::clone(&store), "b", 2, start, Strategy::EtagCas).await;

    // The first turn ever: a read that finds nothing, a clock check (a PUT and a HEAD: the
    // claim writes the `started_at` every later due time counts from) and one create.
    let before = fa.counts();
    let Claim::Won(t) = a.try_claim(&name()).await.unwrap() else {
        panic!("the first claim must win");
    };
    // The first turn is numbered from a floor drawn from time (`clock::floor`).
    let first = t.number();
    assert!(first > 1_000_000, "{first}");
    let c = fa.counts().since(&before);
    assert_eq!((c.gets, c.puts), (2, 2), "{c:?}");
    assert!(matches!(
        t.finish(Ok(Some(serde_json::json!({"expired": 12}))))
            .await
            .unwrap(),
        Finish::Recorded(_)
    ));

    // Not due: one read, no write.
    sleep(Duration::from_secs(100)).await;
    let before = fa.counts();
    match a.try_claim(&name()).await.unwrap() {
        Claim::NotDue {
            current,
            claimable_at,
        } => {
            assert_eq!(current.record.turn, first);
            assert_eq!(
                claimable_at,
                current.record.started_at + chrono::Duration::seconds(270)
            );
            let outcome = current.record.outcome.unwrap();
            assert_eq!(outcome.status, Status::Success);
            assert_eq!(outcome.result.unwrap()["expired"], 12);
        }
        other => panic!("not due yet: {other:?}"),
    }
    let c = fa.counts().since(&before);
    assert_eq!((c.gets, c.puts), (1, 0));

    // Due from window − jitter: a read and the claim, two requests.
    sleep(Duration::from_secs(170)).await;
    let before = fa.counts();
    let RunOnce::Ran { number: second, .. } =
        a.run_once(&name(), |_| async { Ok(None) }).await.unwrap()
    else {
        panic!("due at 270 s");
    };
    assert!(second > first, "{second} after {first}");
    let c = fa.counts().since(&before);
    // A read, the claim, the outcome, and, after more than 30 s without a write, one
    // revalidation of the prefix's protocol record before the claim (a 304;
    // `store::protocol::ProtocolWatch`). The clock check of the first claim still serves.
    assert_eq!(
        (c.gets, c.puts, c.not_modified),
        (2, 2, 1),
        "read, protocol 304, claim, record: {c:?}"
    );

    // b is not due either; counters say so.
    assert!(matches!(
        b.run_once(&name(), |_| async { Ok(None) }).await.unwrap(),
        RunOnce::NotDue { .. }
    ));
    let counters = a.counters(&name());
    assert_eq!((counters.run, counters.skipped, counters.lost), (2, 1, 0));
    assert_eq!(b.counters(&name()).skipped, 1);

    // The next turn: the clock check of ten minutes ago still serves.
    sleep(WINDOW).await;
    let before = fa.counts();
    let RunOnce::Ran { number, .. } = a.run_once(&name(), |_| async { Ok(None) }).await.unwrap()
    else {
        panic!("due again");
    };
    assert!(number > second, "{number} after {second}");
    let c = fa.counts().since(&before);
    assert_eq!(
        (c.gets, c.puts, c.not_modified),
        (2, 2, 1),
        "read, protocol 304, claim, record: {c:?}"
    );
}

/// A wall clock that moves only when the test moves it.
#[derive(Debug)]
struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap();
        *now += chrono::Duration::from_std(by).unwrap();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// Eight nodes race for each of four turns. What must hold, however the racers are
/// scheduled: exactly one runs each turn, and every other either lost the claim or found
/// the turn already taken (which of the two is scheduling, so only their sum is asserted).
/// The racers share a wall clock that stands still while they race, so no turn can fall due
/// again within a round, however late a racer is scheduled; the test moves it past the
/// window between rounds.
async fn racing_one_shot_claims_have_one_winner(backend: Backend, strategy: Strategy) {
    let Some(ns) = common::namespace(backend).await else {
        return;
    };
    let window = Duration::from_millis(200);
    let clock = Arc::new(ManualClock(Mutex::new(origin())));
    // The store's clock is the racers' (every node checks its clock against the store's).
    let store: Arc<dyn ObjectStore> =
        Arc::new(FaultStore::stamped(Arc::clone(&ns.store), 0, clock.clone()));
    let mut clients = Vec::new();
    for i in 0..8 {
        let c = ns
            .cairn_with(&format!("n{i}"), strategy, Arc::clone(&store), |b| {
                b.clock(clock.clone())
            })
            .await;
        clients.push(c.turns(TurnOptions {
            window,
            jitter: Duration::ZERO,
            adopt_stored: false,
        }));
    }
    let mut seen = Vec::new();
    for round in 0..4 {
        let tasks: Vec<_> = clients
            .iter()
            .cloned()
            .map(|t| {
                tokio::spawn(async move {
                    t.run_once(&name(), |n| async move { Ok(Some(n.into())) })
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut won = Vec::new();
        for t in tasks {
            if let RunOnce::Ran { number, .. } = t.await.unwrap() {
                won.push(number);
            }
        }
        assert_eq!(
            won.len(),
            1,
            "round {round}: exactly one winner, got {won:?}"
        );
        seen.extend(won);
        clock.advance(window + Duration::from_millis(50));
    }
    assert!(
        seen.windows(2).all(|w| w[1] > w[0]),
        "each round's turn above the last: {seen:?}"
    );
    let others: u64 = clients
        .iter()
        .map(|t| {
            let c = t.counters(&name());
            c.lost + c.skipped
        })
        .sum();
    assert_eq!(others, 4 * 7, "every non-winner lost or skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_one_shot_claims_have_one_winner_on_memory() {
    for s in [Strategy::EtagCas, Strategy::VersionChain] {
        racing_one_shot_claims_have_one_winner(Backend::Memory, s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_one_shot_claims_have_one_winner_on_the_local_filesystem() {
    racing_one_shot_claims_have_one_winner(Backend::Fs, Strategy::VersionChain).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_one_shot_claims_have_one_winner_on_localstack() {
    racing_one_shot_claims_have_one_winner(Backend::LocalStack, Strategy::EtagCas).await;
}

#[tokio::test(start_paused = true)]
async fn a_holder_that_dies_mid_turn_blocks_nothing_and_a_late_finish_is_superseded() {
    let store = memory();
    let start = Instant::now();
    let (a, _) = turns_on(Arc::clone(&store), "a", 1, start, Strategy::EtagCas).await;
    let (b, _) = turns_on(Arc::clone(&store), "b", 2, start, Strategy::EtagCas).await;
    let Claim::Won(stuck) = a.try_claim(&name()).await.unwrap() else {
        panic!("first claim");
    };
    sleep(WINDOW - JITTER).await;
    let Claim::Won(next) = b.try_claim(&name()).await.unwrap() else {
        panic!("the dead holder's turn must not block the next window");
    };
    let stuck_number = stuck.number();
    let second = next.number();
    assert!(second > stuck_number, "{second} after {stuck_number}");
    // The stuck holder comes back and tries to record: a later turn exists.
    match stuck.finish(Err("took too long".into())).await.unwrap() {
        Finish::Superseded(Some(t)) => assert_eq!(t.record.turn, second),
        other => panic!("must be superseded: {other:?}"),
    }
    let Finish::Recorded(t) = next.finish(Err("disk full".into())).await.unwrap() else {
        panic!("b's outcome is stored");
    };
    let prev = t.record.previous.unwrap();
    assert_eq!((prev.turn, prev.holder.as_str()), (stuck_number, "a"));
    assert!(prev.outcome.is_none(), "turn 1 never recorded an outcome");
    assert_eq!(t.record.outcome.unwrap().status, Status::Failure);
    assert_eq!(b.counters(&name()).failed, 1);
    assert_eq!(a.counters(&name()).failed, 1, "a's own run still counts");
}

/// A looping node that is not due makes no request until its wake time.
#[tokio::test(start_paused = true)]
async fn a_looping_node_makes_no_request_until_the_turn_is_due() {
    let store = memory();
    let start = Instant::now();
    let (a, _) = turns_on(Arc::clone(&store), "a", 1, start, Strategy::EtagCas).await;
    let (b, fb) = turns_on(Arc::clone(&store), "b", 2, start, Strategy::EtagCas).await;
    let built = fb.counts(); // the protocol record's GET
    let RunOnce::Ran { number: first, .. } =
        a.run_once(&name(), |_| async { Ok(None) }).await.unwrap()
    else {
        panic!("the first turn runs")
    };
    let stop = CancellationToken::new();
    let ran: Arc<Mutex<Vec<u64>>> = Arc::default();
    let r = Arc::clone(&ran);
    let task = tokio::spawn({
        let stop = stop.clone();
        async move {
            b.run_loop(
                &name(),
                |n| {
                    r.lock().unwrap().push(n);
                    async { Ok(None) }
                },
                stop,
            )
            .await
        }
    });
    sleep(Duration::from_secs(1)).await;
    let after_load = fb.counts();
    assert_eq!(
        after_load.since(&built).requests(),
        1,
        "one load at start: {after_load:?}"
    );
    sleep(WINDOW - JITTER - Duration::from_secs(2)).await;
    assert_eq!(
        fb.counts().since(&built).requests(),
        1,
        "no polling before the wake time"
    );
    sleep(JITTER * 2 + Duration::from_secs(2)).await;
    let ran_now = ran.lock().unwrap().clone();
    assert!(
        ran_now.len() == 1 && ran_now[0] > first,
        "one turn after {first}: {ran_now:?}"
    );
    let c = fb.counts().since(&after_load);
    // A 304 revalidation, a clock check (a PUT and a HEAD), the claim and the outcome; and,
    // the handle's last write being more than 30 s ago, a 304 revalidation of the protocol
    // record before the claim.
    assert_eq!((c.not_modified, c.gets, c.puts), (2, 3, 3), "{c:?}");
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// A handle on `store`, node `auditor`, on etag CAS and the test's clock.
async fn auditor(store: Arc<dyn ObjectStore>) -> Cairn {
    Cairn::builder(store)
        .node("auditor")
        .unwrap()
        .clock(Arc::new(TestClock::anchored(origin(), Instant::now())))
        .strategy(StrategyChoice::Fixed(Strategy::EtagCas))
        .build()
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn turn_starts_and_outcomes_go_to_the_audit_log_when_switched_on() {
    let cairn = auditor(memory()).await;
    let topic = Name::new("audit").unwrap();
    let trail = cairn::log::Audit::new(cairn.event_log(), topic.clone());
    let turns = cairn
        .turns(TurnOptions::default())
        .with_audit(trail.clone());
    let ran = turns
        .run_once(&name(), |_| async {
            Ok(Some(serde_json::json!({"expired": 3})))
        })
        .await
        .unwrap();
    let RunOnce::Ran { number, .. } = ran else {
        panic!("{ran:?}")
    };
    trail.flush().await;
    let entries = cairn.event_log().read(&topic, 1, 10).await.unwrap();
    let events: Vec<(&str, u64)> = entries
        .iter()
        .map(|e| {
            (
                e.event["event"].as_str().unwrap(),
                e.event["number"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(events, [("start", number), ("finish", number)]);
    assert_eq!(entries[1].event["outcome"]["result"]["expired"], 3);
    assert_eq!(entries[1].event["stored"], true);
}

/// A node whose wall clock runs five minutes ahead finds turn 2 "due" while turn 1 has just
/// started. It measures its clock against the store's and refuses to claim, with a typed
/// error saying how far off it is; once its clock is right it claims in turn.
#[tokio::test(start_paused = true)]
async fn a_node_five_minutes_ahead_claims_no_turn_early() {
    let store = memory();
    let start = Instant::now();
    let (a, _) = turns_on(Arc::clone(&store), "a", 1, start, Strategy::EtagCas).await;
    let clock = Arc::new(TestClock::anchored(origin(), start));
    clock.set_skew(chrono::Duration::minutes(5));
    let ahead = Cairn::builder(Arc::clone(&store))
        .node("ahead")
        .unwrap()
        .clock(clock.clone())
        .strategy(StrategyChoice::Fixed(Strategy::EtagCas))
        .build()
        .await
        .unwrap()
        .turns(TurnOptions {
            window: WINDOW,
            jitter: JITTER,
            adopt_stored: false,
        });
    let Claim::Won(first) = a.try_claim(&name()).await.unwrap() else {
        panic!("first claim");
    };
    let number = first.number();
    sleep(Duration::from_secs(10)).await;
    match ahead.try_claim(&name()).await {
        Err(cairn::Error::ClockOffset {
            offset, refused, ..
        }) => {
            assert_eq!(refused, "claiming a turn");
            assert!(offset.high_ms <= -299_000, "{offset:?}");
            assert!(
                offset.to_string().contains("ahead of the store's"),
                "{offset}"
            );
        }
        other => panic!("a clock five minutes ahead must not claim turn 2 now: {other:?}"),
    }
    assert!(matches!(
        first.finish(Ok(None)).await.unwrap(),
        Finish::Recorded(_)
    ));
    // Corrected: due by the window, it claims.
    clock.set_skew(chrono::Duration::zero());
    sleep(WINDOW).await;
    let Claim::Won(second) = ahead.try_claim(&name()).await.unwrap() else {
        panic!("due, and the clock is right again");
    };
    assert!(second.number() > number);
}

/// The audit trail is written off the coordination path: with every append to the audit
/// topic hanging, a lock is still handed over at once and a turn's job still starts, and the
/// events follow, in order, once the store answers again.
#[tokio::test(start_paused = true)]
async fn a_hanging_audit_trail_delays_neither_a_lease_nor_a_turn() {
    let counted = Arc::new(FaultStore::new(memory(), 1));
    let cairn = auditor(counted.clone()).await;
    let topic = Name::new("audit").unwrap();
    let trail = cairn::log::Audit::new(cairn.event_log(), topic.clone());
    counted.add(Rule::always(Op::Put, "log/audit/", Fault::Hang));
    let locks = cairn
        .locks(cairn::LockOptions::with_ttl(Duration::from_secs(30)))
        .unwrap()
        .with_audit(trail.clone());
    let started = Instant::now();
    let lease = match tokio::time::timeout(
        Duration::from_secs(5),
        locks.try_acquire(&Name::new("deploy").unwrap()),
    )
    .await
    .expect("acquire waits for no audit append")
    .unwrap()
    {
        cairn::Acquire::Held(lease) => lease,
        other => panic!("{other:?}"),
    };
    assert!(lease.is_held());
    lease.release().await.unwrap();
    let turns = cairn
        .turns(TurnOptions::default())
        .with_audit(trail.clone());
    let ran = tokio::time::timeout(
        Duration::from_secs(5),
        turns.run_once(&name(), |_| async { Ok(None) }),
    )
    .await
    .expect("a turn waits for no audit append")
    .unwrap();
    assert!(matches!(ran, RunOnce::Ran { .. }), "{ran:?}");
    assert!(Instant::now().duration_since(started) < Duration::from_secs(5));
    // The trail is still waiting on the hung append; once the store answers (the append
    // is retried after its request timeout), it is written whole and in order.
    counted.clear();
    trail.flush().await;
    let events: Vec<String> = cairn
        .event_log()
        .read(&topic, 1, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events, ["acquire", "release", "start", "finish"]);
}

/// An audit trail whose appending task ended with its runtime (an embedder that runs one
/// runtime per call) is not wedged: the next flush, on another runtime, appends what was
/// left, in order.
#[test]
fn an_audit_trail_outlives_the_runtime_its_task_ran_on() {
    let counted = Arc::new(FaultStore::new(
        Arc::new(InMemory::new()) as Arc<dyn ObjectStore>,
        1,
    ));
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (cairn, trail, topic) = first.block_on(async {
        let cairn = Cairn::builder(counted.clone() as Arc<dyn ObjectStore>)
            .node("auditor")
            .unwrap()
            .strategy(StrategyChoice::Fixed(Strategy::EtagCas))
            .build()
            .await
            .unwrap();
        let topic = Name::new("audit").unwrap();
        let trail = cairn::log::Audit::new(cairn.event_log(), topic.clone());
        // Every append hangs: the task is still on the first event when its runtime goes.
        counted.add(Rule::always(Op::Put, "log/audit/", Fault::Hang));
        for number in 1..=3 {
            trail.record(cairn::log::AuditEvent::Start {
                turn: "expiry".into(),
                number,
                holder: "auditor".into(),
            });
        }
        tokio::task::yield_now().await;
        (cairn, trail, topic)
    });
    drop(first);
    counted.clear();
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let numbers: Vec<u64> = second.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), trail.flush())
            .await
            .expect("flush is not wedged by a task that ended with its runtime");
        cairn
            .event_log()
            .read(&topic, 1, 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.event["number"].as_u64().unwrap())
            .collect()
    });
    // The event the ended task was writing is lost with it; the rest follow in order.
    assert_eq!(numbers, [2, 3]);
}
