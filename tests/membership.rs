//! Membership and cached views on a paused tokio clock: health transitions, the adaptive
//! timeout under injected latency, duplicate node ids, and the cache's 304s, stale-if-error
//! and LRU bound (requests counted by the fault-injecting wrapper).

mod common;

use std::sync::Arc;
use std::time::Duration;

use cairn::cache::CacheOptions;
use cairn::manifest::Strategy;
use cairn::node::{Health, HeartbeatEnd, NodeOptions, NodeStatus, Nodes};
use cairn::store::fault::{Fault, FaultStore, Op, Rule};
use cairn::{Cairn, Error, Name, StrategyChoice, TestClock};
use chrono::{DateTime, Utc};
use object_store::memory::InMemory;
use object_store::ObjectStore;
use tokio::time::{sleep, Instant};

fn origin() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap()
}

/// A memory store whose clock (every object's `last_modified`) is the test's clock from now:
/// objects age as the paused clock advances, and nodes' clock checks find them in step.
fn memory() -> Arc<dyn ObjectStore> {
    let clock = Arc::new(TestClock::anchored(origin(), Instant::now()));
    Arc::new(FaultStore::stamped(Arc::new(InMemory::new()), 0, clock))
}

struct Node {
    cairn: Cairn,
    faults: Arc<FaultStore>,
}

async fn node(store: &Arc<dyn ObjectStore>, id: &str, seed: u64, start: Instant) -> Node {
    node_with(store, id, seed, start, Strategy::EtagCas).await
}

async fn node_with(
    store: &Arc<dyn ObjectStore>,
    id: &str,
    seed: u64,
    start: Instant,
    strategy: Strategy,
) -> Node {
    let faults = Arc::new(FaultStore::new(Arc::clone(store), seed));
    let cairn = Cairn::builder(faults.clone())
        .node(id)
        .unwrap()
        .clock(Arc::new(TestClock::anchored(origin(), start)))
        .seed(seed)
        .strategy(StrategyChoice::Fixed(strategy))
        .build()
        .await
        .unwrap();
    Node { cairn, faults }
}

fn members(n: &Node) -> Nodes {
    n.cairn.nodes(NodeOptions::default())
}

async fn status(viewer: &Nodes, id: &str) -> NodeStatus {
    viewer
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.node == id)
        .unwrap_or_else(|| panic!("{id} not listed"))
}

#[tokio::test(start_paused = true)]
async fn a_node_goes_online_suspect_offline_and_online_again() {
    let store = memory();
    let start = Instant::now();
    let a = node(&store, "a", 1, start).await;
    let viewer = members(&node(&store, "viewer", 2, start).await);

    let hb = members(&a).join().await.unwrap();
    sleep(Duration::from_millis(2_500)).await; // heartbeats at 1 s and 2 s
    let s = status(&viewer, "a").await;
    assert_eq!((s.health, s.record.beats), (Health::Online, 3));
    assert_eq!(s.timeout_ms, 2_000, "base: two 1 s intervals, no latency");
    drop(hb); // crashes: no more heartbeats, not marked left

    sleep(Duration::from_millis(1_000)).await; // last heartbeat 1.5 s ago
    assert_eq!(status(&viewer, "a").await.health, Health::Online);
    sleep(Duration::from_millis(1_000)).await; // 2.5 s ago
    assert_eq!(status(&viewer, "a").await.health, Health::Suspect);
    sleep(Duration::from_millis(2_000)).await; // 4.5 s ago
    let s = status(&viewer, "a").await;
    assert_eq!((s.health, s.left), (Health::Offline, false));

    // Restarted: the old record is offline, so it is taken over at once.
    let hb = members(&a).join().await.unwrap();
    assert_eq!(status(&viewer, "a").await.health, Health::Online);
    hb.leave().await.unwrap();
    let s = status(&viewer, "a").await;
    assert_eq!((s.health, s.left), (Health::Offline, true));
}

#[tokio::test(start_paused = true)]
async fn the_timeout_grows_with_heartbeat_write_latency_and_shrinks_back() {
    let store = memory();
    let start = Instant::now();
    let slow = node(&store, "slow", 1, start).await;
    let fast = node(&store, "fast", 2, start).await;
    let viewer = members(&node(&store, "viewer", 3, start).await);
    slow.faults.add(Rule::always(
        Op::Put,
        "nodes/",
        Fault::Delay(Duration::from_millis(600)),
    ));
    let hb_slow = members(&slow).join().await.unwrap();
    let hb_fast = members(&fast).join().await.unwrap();
    sleep(Duration::from_secs(60)).await;
    let s = status(&viewer, "slow").await;
    let f = status(&viewer, "fast").await;
    assert!(
        s.timeout_ms > 3_100 && s.timeout_ms <= 3_200,
        "2 s + 2 × ~0.6 s: {}",
        s.timeout_ms
    );
    assert_eq!(f.timeout_ms, 2_000);

    // Both stop; 2.5 s after their last heartbeats the slow writer is still online (its
    // heartbeats are known to take 0.6 s to land), the fast one is suspect.
    let last_slow = hb_slow.last().body.heartbeat_at;
    let last_fast = hb_fast.last().body.heartbeat_at;
    drop(hb_slow);
    drop(hb_fast);
    let clock = TestClock::anchored(origin(), start);
    use cairn::Clock;
    let wait = |last: DateTime<Utc>| {
        (last + chrono::Duration::milliseconds(2_500) - clock.now())
            .to_std()
            .unwrap_or_default()
    };
    sleep(wait(last_slow)).await;
    assert_eq!(status(&viewer, "slow").await.health, Health::Online);
    sleep(wait(last_fast)).await;
    assert_eq!(status(&viewer, "fast").await.health, Health::Suspect);

    // Latency gone: the moving average, and the timeout, come back down.
    slow.faults.clear();
    let hb = members(&slow).join().await.unwrap();
    sleep(Duration::from_secs(60)).await;
    assert!(hb.write_latency() < Duration::from_millis(50));
    assert_eq!(status(&viewer, "slow").await.timeout_ms, 2_000);
    hb.leave().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn two_processes_claiming_one_node_id_are_reported_not_merged() {
    let store = memory();
    let start = Instant::now();
    let first = node(&store, "ingest-1", 1, start).await;
    let second = node(&store, "ingest-1", 2, start).await;
    let hb1 = members(&first).join().await.unwrap();
    sleep(Duration::from_secs(3)).await;

    // The second process watches the record for a timeout, sees it written, and refuses.
    match members(&second).join().await {
        Err(Error::DuplicateNode {
            node,
            other_session,
            ..
        }) => {
            assert_eq!(node, "ingest-1");
            assert_eq!(other_session, hb1.last().body.session);
        }
        other => panic!("must be a duplicate: {other:?}"),
    }

    // The first stalls (its writes fail) long enough to look dead; the second takes over.
    first
        .faults
        .add(Rule::always(Op::Put, "nodes/", Fault::Status(503)));
    sleep(Duration::from_secs(13)).await;
    let hb2 = members(&second).join().await.unwrap();
    first.faults.clear();
    // The first's next heartbeat conflicts with another session: it stops and says why.
    let end = tokio::time::timeout(Duration::from_secs(5), hb1.ended())
        .await
        .expect("the first must notice");
    match end {
        HeartbeatEnd::Duplicate { other_session, .. } => {
            assert_eq!(other_session, hb2.last().body.session)
        }
        other => panic!("{other:?}"),
    }
    // The record is the second's, untouched by the first.
    sleep(Duration::from_secs(4)).await;
    let viewer = members(&first);
    let s = status(&viewer, "ingest-1").await;
    assert_eq!(s.record.session, hb2.last().body.session);
    assert_eq!(s.health, Health::Online);
    hb1.leave().await.unwrap();
    hb2.leave().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_membership_view_is_fresh_for_one_interval_then_revalidates_with_304s() {
    let store = memory();
    let start = Instant::now();
    let a = node(&store, "a", 1, start).await;
    let v = node(&store, "viewer", 2, start).await;
    let hb = members(&a).join().await.unwrap();
    let options = CacheOptions::for_nodes(Duration::from_secs(1));
    assert_eq!(options.fresh, Duration::from_secs(1));
    let view = members(&v).view(options);
    let first = view.list().await.unwrap();
    assert_eq!(first.items[0].health, Health::Online);
    let before = v.faults.counts();
    sleep(Duration::from_millis(500)).await;
    let again = view.list().await.unwrap();
    assert_eq!(
        v.faults.counts().since(&before).requests(),
        0,
        "fresh: no request"
    );
    assert_eq!(again.items[0].record.beats, first.items[0].record.beats);
    sleep(Duration::from_millis(750)).await; // a heartbeat landed at 1 s
    let later = view.list().await.unwrap();
    // The heartbeat at 1 s is seen from the listing (its store time; the record's body,
    // beats included, is read only when it stops changing: member.rs, "Views at fleet
    // scale").
    assert!(later.items[0].age_ms <= 500, "{:?}", later.items[0]);
    assert!(!later.stale);
    hb.leave().await.unwrap();
}

/// Latency on every request of a node: 50 to 200 ms, drawn afresh each time.
fn add_latency(n: &Node) {
    for op in [Op::Put, Op::Get, Op::List] {
        n.faults.add(Rule::always(
            op,
            "",
            Fault::DelayBetween(Duration::from_millis(50), Duration::from_millis(200)),
        ));
    }
}

/// The short form of `cairn bench --membership`'s false-suspect run, on a paused clock: at
/// the defaults (1 s heartbeats, a 2 s base), five live nodes whose every request takes 50
/// to 200 ms are never called anything but online in ten minutes, by a cached view polled
/// every 100 ms nor by a plain listing every second, both under the same latency.
#[tokio::test(start_paused = true)]
async fn live_nodes_under_50_to_200_ms_of_latency_are_never_suspect_in_ten_minutes() {
    let store = memory();
    let start = Instant::now();
    let mut beats = Vec::new();
    for i in 0..5 {
        let n = node(&store, &format!("n{i}"), 10 + i, start).await;
        add_latency(&n);
        beats.push(members(&n).join().await.unwrap());
    }
    let v = node(&store, "viewer", 2, start).await;
    add_latency(&v);
    let viewer = members(&v);
    let view = viewer.view(CacheOptions::for_nodes(NodeOptions::default().interval));
    let (mut polls, mut suspects) = (0u64, Vec::new());
    while start.elapsed() < Duration::from_secs(600) {
        let listed = if polls % 10 == 0 {
            viewer.list().await.unwrap()
        } else {
            view.list().await.unwrap().items
        };
        assert_eq!(listed.len(), 5);
        suspects.extend(listed.into_iter().filter(|m| m.health != Health::Online));
        polls += 1;
        sleep(Duration::from_millis(100)).await;
    }
    assert!(polls > 1_000, "{polls} polls");
    assert!(suspects.is_empty(), "false suspects: {suspects:#?}");
    for b in beats {
        assert!(b.last().body.beats > 500);
        b.leave().await.unwrap();
    }
}

/// A node killed at any point of its heartbeat cycle (writes taking 50 to 200 ms) is seen
/// not online, by a view polled every 50 ms at the defaults, within 3 s, and offline after.
#[tokio::test(start_paused = true)]
async fn a_killed_node_is_seen_not_online_within_three_seconds_at_the_defaults() {
    let mut detected = Vec::new();
    for phase in 0..10u64 {
        let store = memory();
        let start = Instant::now();
        let a = node(&store, "a", 1 + phase, start).await;
        add_latency(&a);
        let v = node(&store, "viewer", 100 + phase, start).await;
        let view = members(&v).view(CacheOptions::for_nodes(Duration::from_secs(1)));
        let hb = members(&a).join().await.unwrap();
        sleep(Duration::from_millis(5_000 + phase * 100)).await;
        assert_eq!(view.list().await.unwrap().items[0].health, Health::Online);
        drop(hb); // killed: no goodbye, an in-flight heartbeat is lost
        let killed = Instant::now();
        let health = loop {
            let h = view.list().await.unwrap().items[0].health;
            if h != Health::Online {
                break h;
            }
            sleep(Duration::from_millis(50)).await;
        };
        detected.push(killed.elapsed());
        assert_eq!(health, Health::Suspect, "suspect before offline");
        while view.list().await.unwrap().items[0].health != Health::Offline {
            assert!(
                killed.elapsed() < Duration::from_secs(6),
                "offline by twice the timeout"
            );
            sleep(Duration::from_millis(50)).await;
        }
    }
    let slowest = detected.iter().max().unwrap();
    assert!(*slowest < Duration::from_secs(3), "{detected:?}");
    // The kills fell all over the heartbeat cycle: from 1 s to 2 s (plus latency) after.
    let fastest = detected.iter().min().unwrap();
    assert!(
        *slowest - *fastest > Duration::from_millis(500),
        "{detected:?}"
    );
}

/// A cached view reads a node's record again before calling it suspect: a live node whose
/// cached record looks older than the timeout is shown online (one GET), and a dead one is
/// called suspect after one conditional GET, then served from the cache.
#[tokio::test(start_paused = true)]
async fn a_cached_view_reads_a_record_again_before_calling_its_node_suspect() {
    let store = memory();
    let start = Instant::now();
    let a = node(&store, "a", 1, start).await;
    let v = node(&store, "viewer", 2, start).await;
    let hb = members(&a).join().await.unwrap();
    // Fresh for 10 s: far longer than the 2 s timeout.
    let view = members(&v).view(CacheOptions {
        fresh: Duration::from_secs(10),
        ..CacheOptions::for_nodes(Duration::from_secs(1))
    });
    assert_eq!(view.list().await.unwrap().items[0].health, Health::Online);
    sleep(Duration::from_millis(3_000)).await;
    let before = v.faults.counts();
    let s = view.list().await.unwrap().items[0].clone();
    let c = v.faults.counts().since(&before);
    assert_eq!(s.health, Health::Online, "read again, not suspect: {s:?}");
    assert_eq!(
        (c.lists, c.gets, c.not_modified),
        (0, 1, 0),
        "one GET, a new heartbeat"
    );

    drop(hb);
    sleep(Duration::from_millis(2_500)).await;
    let before = v.faults.counts();
    assert_eq!(view.list().await.unwrap().items[0].health, Health::Suspect);
    let c = v.faults.counts().since(&before);
    assert_eq!((c.gets, c.not_modified), (1, 1), "confirmed with a 304");
    let before = v.faults.counts();
    assert_eq!(view.list().await.unwrap().items[0].health, Health::Suspect);
    assert_eq!(
        v.faults.counts().since(&before).requests(),
        0,
        "read after the verdict became due: served from the cache"
    );
}

async fn create_streams(n: &Node, count: usize) -> Vec<Name> {
    let streams = n.cairn.streams();
    let mut names = Vec::new();
    for i in 0..count {
        let name = Name::new(format!("s{i:03}")).unwrap();
        let _ = streams
            .create(&name, serde_json::json!({ "i": i }))
            .await
            .unwrap();
        names.push(name);
    }
    names
}

#[tokio::test(start_paused = true)]
async fn a_revalidated_stream_list_transfers_no_body() {
    let store = memory();
    let start = Instant::now();
    let w = node(&store, "writer", 1, start).await;
    let q = node(&store, "querier", 2, start).await;
    create_streams(&w, 10).await;
    let view = q.cairn.streams().view(CacheOptions::for_streams());

    let before = q.faults.counts();
    let first = view.list().await.unwrap();
    assert_eq!(first.items.len(), 10);
    let c = q.faults.counts().since(&before);
    assert_eq!((c.lists, c.gets, c.not_modified), (1, 10, 0));

    sleep(Duration::from_secs(31)).await;
    let before = q.faults.counts();
    let second = view.list().await.unwrap();
    assert_eq!(second.items, first.items);
    let c = q.faults.counts().since(&before);
    // The listing's etags say nothing changed: no GET at all (issue #20).
    assert_eq!((c.lists, c.gets, c.not_modified), (1, 0, 0));
    assert_eq!(c.body_bytes, 0, "no body");
    assert_eq!(view.cache().stats().revalidated, 10);

    // One stream changes: only it is transferred.
    let changed = Name::new("s004").unwrap();
    w.cairn
        .streams()
        .update(&changed, |_| Some(serde_json::json!({ "i": 4, "v": 2 })))
        .await
        .unwrap();
    sleep(Duration::from_secs(31)).await;
    let before = q.faults.counts();
    let third = view.list().await.unwrap();
    let c = q.faults.counts().since(&before);
    assert_eq!((c.lists, c.gets, c.not_modified), (1, 1, 0));
    assert!(c.body_bytes > 0);
    assert_eq!(third.items[4].record.metadata["v"], 2);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_store_is_served_stale_and_flagged_until_the_stale_limit() {
    let store = memory();
    let start = Instant::now();
    let w = node(&store, "writer", 1, start).await;
    let q = node(&store, "querier", 2, start).await;
    create_streams(&w, 3).await;
    let view = q.cairn.streams().view(CacheOptions::for_streams());
    let fresh = view.list().await.unwrap();
    assert!(!fresh.stale);

    for op in [Op::Get, Op::List] {
        q.faults.add(Rule::always(op, "", Fault::Status(503)));
    }
    sleep(Duration::from_secs(60)).await;
    let stale = view.list().await.unwrap();
    assert!(stale.stale, "served from memory and flagged");
    assert_eq!(stale.items, fresh.items);
    assert!(view.cache().stats().stale > 0);

    // Past fresh + stale-if-error (30 s + 5 min): an error, not silently old data.
    sleep(Duration::from_secs(300)).await;
    match view.list().await {
        Err(Error::Unavailable { .. }) => {}
        other => panic!("too old to serve: {other:?}"),
    }

    // The store is back: fresh again.
    q.faults.clear();
    let back = view.list().await.unwrap();
    assert!(!back.stale);
    assert_eq!(back.items, fresh.items);
}

/// Sixteen readers of one expired entry at once send one request; the others are served its
/// answer (single flight). The store answers slowly, so every reader arrives while the first
/// one's request is in flight.
#[tokio::test(start_paused = true)]
async fn concurrent_readers_of_an_expired_entry_send_one_request() {
    let store = memory();
    let start = Instant::now();
    let w = node(&store, "writer", 1, start).await;
    let q = node(&store, "querier", 2, start).await;
    let names = create_streams(&w, 1).await;
    let view = q.cairn.streams().view(CacheOptions::for_streams());
    assert!(view.get(&names[0]).await.unwrap().items.is_some());

    sleep(Duration::from_secs(31)).await; // expired
    q.faults.add(Rule::always(
        Op::Get,
        "",
        Fault::Delay(Duration::from_millis(500)),
    ));
    let before = q.faults.counts();
    let all = futures::future::join_all((0..16).map(|_| view.get(&names[0]))).await;
    assert!(all.iter().all(|r| r.as_ref().unwrap().items.is_some()));
    let c = q.faults.counts().since(&before);
    assert_eq!(c.gets, 1, "one conditional GET for sixteen readers: {c:?}");
    let stats = view.cache().stats();
    assert_eq!((stats.revalidated, stats.coalesced), (1, 15), "{stats:?}");
}

/// After three failed requests in a row the breaker opens: expired entries are served stale
/// with no request for the cool-off, then one request probes the store; once it answers, the
/// view is fresh again.
#[tokio::test(start_paused = true)]
async fn an_open_breaker_serves_stale_without_asking_until_its_cool_off_ends() {
    let store = memory();
    let start = Instant::now();
    let w = node(&store, "writer", 1, start).await;
    let q = node(&store, "querier", 2, start).await;
    create_streams(&w, 3).await;
    let view = q.cairn.streams().view(CacheOptions::for_streams());
    let fresh = view.list().await.unwrap();

    for op in [Op::Get, Op::List] {
        q.faults.add(Rule::always(op, "", Fault::Status(503)));
    }
    sleep(Duration::from_secs(60)).await;
    // A refresh is one listing: three refreshes fail, three in a row, and the breaker opens;
    // each is served stale.
    for _ in 0..3 {
        let stale = view.list().await.unwrap();
        assert!(stale.stale);
        assert_eq!(stale.items, fresh.items);
    }
    let stats = view.cache().stats();
    assert_eq!(
        (stats.breaker_opened, stats.short_circuited),
        (1, 0),
        "{stats:?}"
    );

    // While it is open: served at once, no request at all.
    let before = q.faults.counts();
    for _ in 0..10 {
        assert!(view.list().await.unwrap().stale);
    }
    assert_eq!(q.faults.counts().since(&before).requests(), 0);

    // After the cool-off, one request tries the store; it fails and the breaker reopens.
    sleep(Duration::from_secs(10)).await;
    let before = q.faults.counts();
    assert!(view.list().await.unwrap().stale);
    let tried = q.faults.counts().since(&before);
    assert_eq!(tried.lists, 1, "{tried:?}");
    assert_eq!(
        tried.gets, 0,
        "reopened by the listing's failure: {tried:?}"
    );
    assert_eq!(view.cache().stats().breaker_opened, 2);

    // The store is back: after the cool-off the view asks, and is fresh again.
    q.faults.clear();
    sleep(Duration::from_secs(10)).await;
    let back = view.list().await.unwrap();
    assert!(!back.stale);
    assert_eq!(back.items, fresh.items);
    let before = q.faults.counts();
    assert!(!view.list().await.unwrap().stale);
    assert_eq!(
        q.faults.counts().since(&before).requests(),
        0,
        "fresh again"
    );
}

/// `warm` loads named entries so the first reads after start-up make no request.
#[tokio::test(start_paused = true)]
async fn a_warmed_cache_serves_its_first_reads_from_memory() {
    let store = memory();
    let start = Instant::now();
    let w = node(&store, "writer", 1, start).await;
    let q = node(&store, "querier", 2, start).await;
    let names = create_streams(&w, 4).await;
    let view = q.cairn.streams().view(CacheOptions::for_streams());
    let mut wanted = names.clone();
    wanted.push(Name::new("nosuch").unwrap());
    assert_eq!(view.warm(&wanted).await.unwrap(), 4);
    let before = q.faults.counts();
    for n in &wanted {
        view.get(n).await.unwrap();
    }
    assert_eq!(q.faults.counts().since(&before).requests(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_cache_holds_at_most_its_capacity_and_evicts_the_least_recently_used() {
    let store = memory();
    let start = Instant::now();
    let w = node(&store, "writer", 1, start).await;
    let q = node(&store, "querier", 2, start).await;
    let names = create_streams(&w, 50).await;
    let view = q.cairn.streams().view(CacheOptions {
        capacity: 8,
        ..CacheOptions::for_streams()
    });
    for n in &names {
        assert!(view.get(n).await.unwrap().items.is_some());
        assert!(view.cache().len() <= 8);
    }
    assert_eq!(view.cache().len(), 8);
    assert_eq!(view.cache().stats().evicted, 42);

    // Touch s042 so that s043 is now the least recently used, then add one more.
    let before = q.faults.counts();
    view.get(&names[42]).await.unwrap();
    assert_eq!(q.faults.counts().since(&before).requests(), 0, "a hit");
    view.get(&names[0]).await.unwrap(); // evicted earlier: fetched again, evicts s043
    assert_eq!(q.faults.counts().since(&before).gets, 1);
    let before = q.faults.counts();
    view.get(&names[42]).await.unwrap();
    assert_eq!(q.faults.counts().since(&before).requests(), 0, "kept");
    view.get(&names[43]).await.unwrap();
    assert_eq!(q.faults.counts().since(&before).gets, 1, "evicted");
}

#[tokio::test(start_paused = true)]
async fn a_cache_of_any_capacity_starts_empty_and_allocates_as_it_fills() {
    let store = memory();
    let start = Instant::now();
    let w = node(&store, "writer", 1, start).await;
    let q = node(&store, "querier", 2, start).await;
    let names = create_streams(&w, 3).await;
    // "No bound": nothing is allocated for it up front.
    let view = q.cairn.streams().view(CacheOptions {
        capacity: usize::MAX,
        ..CacheOptions::for_streams()
    });
    assert!(view.cache().is_empty());
    for n in &names {
        assert!(view.get(n).await.unwrap().items.is_some());
    }
    assert_eq!(view.cache().len(), 3);
    assert_eq!(view.cache().stats().evicted, 0);
}

/// The same protocol against a real S3 server, in real time: heartbeats, a leave, and a
/// cached stream view whose revalidation LocalStack answers with 304s and no body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_and_cached_views_work_against_localstack() {
    let Some(ns) = common::namespace(common::Backend::LocalStack).await else {
        return;
    };
    // Real time against a real server: how fast heartbeats land depends on the machine's
    // load, so the test waits for three of each instead of sleeping a fixed time, and gives
    // the timeout room (the adaptive timeout has its own tests on a paused clock).
    let options = NodeOptions {
        interval: Duration::from_millis(200),
        base_timeout: Some(Duration::from_secs(20)),
        ..Default::default()
    };
    let mut beats = Vec::new();
    for i in 0..3 {
        let c = ns.cairn(&format!("node-{i}"), Strategy::EtagCas).await;
        beats.push(c.nodes(options.clone()).join().await.unwrap());
    }
    tokio::time::timeout(Duration::from_secs(60), async {
        while beats.iter().any(|b| b.last().body.beats < 3) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("every node wrote three heartbeats within a minute");
    let faults = Arc::new(FaultStore::new(Arc::clone(&ns.store), 9));
    let viewer = ns
        .cairn_with("viewer", Strategy::EtagCas, faults.clone(), |b| b)
        .await;
    let all = viewer.nodes(options.clone()).list().await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|m| m.health == Health::Online), "{all:#?}");
    assert!(all.iter().all(|m| m.record.beats >= 3), "{all:#?}");
    let left = beats.pop().unwrap();
    left.leave().await.unwrap();
    let all = viewer.nodes(options).list().await.unwrap();
    let n2 = all.iter().find(|m| m.node == "node-2").unwrap();
    assert_eq!((n2.health, n2.left), (Health::Offline, true));
    for b in beats {
        b.leave().await.unwrap();
    }

    let writer = ns.cairn("writer", Strategy::EtagCas).await;
    for i in 0..5 {
        let _ = writer
            .streams()
            .create(
                &Name::new(format!("s{i}")).unwrap(),
                serde_json::json!({ "i": i }),
            )
            .await
            .unwrap();
    }
    let view = viewer.streams().view(CacheOptions {
        fresh: Duration::ZERO,
        ..CacheOptions::for_streams()
    });
    let first = view.list().await.unwrap();
    assert_eq!(first.items.len(), 5);
    let before = faults.counts();
    let again = view.list().await.unwrap();
    assert_eq!(again.items, first.items);
    let c = faults.counts().since(&before);
    // Unchanged etags in the listing: the listing alone (issue #20).
    assert_eq!(
        (c.lists, c.gets, c.not_modified, c.body_bytes),
        (1, 0, 0, 0)
    );
}

/// A node like `node`, whose wall clock is `skew` off the test's (and the store's) clock.
async fn skewed_node(store: &Arc<dyn ObjectStore>, id: &str, start: Instant, skew: i64) -> Node {
    let faults = Arc::new(FaultStore::new(Arc::clone(store), 7));
    let clock = TestClock::anchored(origin(), start);
    clock.set_skew(chrono::Duration::seconds(skew));
    let cairn = Cairn::builder(faults.clone())
        .node(id)
        .unwrap()
        .clock(Arc::new(clock))
        .strategy(StrategyChoice::Fixed(Strategy::EtagCas))
        .build()
        .await
        .unwrap();
    Node { cairn, faults }
}

/// Heartbeats are aged on the store's clock, whatever the writers' clocks say: a node five
/// minutes ahead that is killed goes suspect and offline on time (not five minutes late),
/// and a live node thirty seconds behind stays online.
#[tokio::test(start_paused = true)]
async fn skewed_writers_are_aged_on_the_store_clock() {
    let store = memory();
    let start = Instant::now();
    let ahead = skewed_node(&store, "ahead", start, 300).await;
    let behind = skewed_node(&store, "behind", start, -30).await;
    let viewer = members(&node(&store, "viewer", 2, start).await);
    let killed = members(&ahead).join().await.unwrap();
    let live = members(&behind).join().await.unwrap();
    sleep(Duration::from_millis(1_500)).await;
    assert_eq!(status(&viewer, "ahead").await.health, Health::Online);
    assert_eq!(status(&viewer, "behind").await.health, Health::Online);
    drop(killed);
    sleep(Duration::from_secs(5)).await;
    assert_eq!(status(&viewer, "ahead").await.health, Health::Offline);
    for _ in 0..10 {
        sleep(Duration::from_secs(3)).await;
        let s = status(&viewer, "behind").await;
        assert_eq!(s.health, Health::Online, "{s:?}");
    }
    live.leave().await.unwrap();
}

/// A viewer whose own clock is a minute ahead cannot tell a heartbeat's age: it measures its
/// clock, calls no node suspect or offline, and says so (`unknown`).
#[tokio::test(start_paused = true)]
async fn a_viewer_beyond_the_bound_ages_no_node() {
    let store = memory();
    let start = Instant::now();
    let a = node(&store, "a", 1, start).await;
    let viewer = members(&skewed_node(&store, "viewer", start, 60).await);
    let hb = members(&a).join().await.unwrap();
    sleep(Duration::from_millis(1_500)).await;
    let s = status(&viewer, "a").await;
    assert_eq!(s.health, Health::Unknown, "{s:?}");
    hb.leave().await.unwrap();
    assert_eq!(
        status(&viewer, "a").await.health,
        Health::Offline,
        "a node that left is offline"
    );
}

/// A view of live, heartbeating nodes refreshed every second costs one listing a refresh and
/// no GET (issue #20): each heartbeat's time comes from the listing (the store's
/// `last_modified`, the timestamp a GET would give). A node that leaves is read once when
/// its record stops changing, and shown as left at most one refresh late.
#[tokio::test(start_paused = true)]
async fn a_view_of_heartbeating_nodes_costs_one_listing_a_refresh() {
    for strategy in [Strategy::EtagCas, Strategy::VersionChain] {
        let store = memory();
        let start = Instant::now();
        let mut beats = Vec::new();
        for i in 0..20 {
            let n = node_with(&store, &format!("n{i:02}"), 10 + i, start, strategy).await;
            beats.push(members(&n).join().await.unwrap());
        }
        let v = node_with(&store, "viewer", 99, start, strategy).await;
        let view = members(&v).view(CacheOptions {
            fresh: Duration::ZERO,
            ..CacheOptions::for_nodes(Duration::from_secs(1))
        });
        assert_eq!(view.list().await.unwrap().items.len(), 20);
        for round in 0..5 {
            sleep(Duration::from_millis(1000)).await; // every node heartbeats once more
            let before = v.faults.counts();
            let all = view.list().await.unwrap().items;
            let c = v.faults.counts().since(&before);
            assert_eq!(
                (c.lists, c.gets, c.puts),
                (1, 0, 0),
                "{strategy:?} round {round}: {c:?}"
            );
            // Aged from the newest heartbeat the listing showed, not from the first read.
            for m in &all {
                assert_eq!(
                    m.health,
                    Health::Online,
                    "{strategy:?} round {round}: {m:?}"
                );
                assert!(m.age_ms <= 1000, "{strategy:?} round {round}: {m:?}");
            }
        }
        // n03 leaves: its record stops changing, is read once, and shows it left.
        beats.remove(3).leave().await.unwrap();
        let before = v.faults.counts();
        let mut left = false;
        for _ in 0..2 {
            sleep(Duration::from_millis(1000)).await;
            let all = view.list().await.unwrap().items;
            let n03 = all.iter().find(|m| m.node == "n03").unwrap();
            if n03.left {
                assert_eq!(n03.health, Health::Offline);
                left = true;
                break;
            }
        }
        assert!(left, "{strategy:?}: seen as left within two refreshes");
        let c = v.faults.counts().since(&before);
        assert_eq!(
            c.gets, 1,
            "{strategy:?}: one read, of the record that stopped: {c:?}"
        );
        for b in beats {
            b.leave().await.unwrap();
        }
    }
}
