//! Objects that vanish do not rewind the numbers (issue 18, item 2). A foreign client (plain
//! `object_store`, as a lifecycle rule or an operator's `aws s3 rm` would) deletes every
//! object of a held lock, a turn, a log topic or a record; the next writer creates it afresh
//! and must number above what the earlier incarnation reached: a fencing token above the live
//! holder's, a later turn, a later sequence; a handle that saw a record's version refuses to
//! store a lower one. Both strategies on the in-memory store, the version chain on the local
//! filesystem (which has no `If-Match`).
//!
//! Wall time comes from one shared `TestClock`, moved forward by setting its skew (no sleep);
//! the leases' renewals run on the real monotonic clock, seconds away, and never fire here.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use cairn::error::Error;
use cairn::lock::{Acquire, HeldLock, LockOptions, Locks};
use cairn::manifest::{Change, Strategy, Write};
use cairn::record::Put;
use cairn::turn::{Claim, TurnOptions};
use cairn::{Cairn, ManifestOptions, Name, StrategyChoice, TestClock};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::json;

const PREFIX: &str = "p";

fn origin() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

/// A store, one wall clock for every node on it, and the strategy they use.
struct World {
    store: Arc<dyn ObjectStore>,
    clock: Arc<TestClock>,
    strategy: Strategy,
    label: &'static str,
    /// How far `later` has moved the clock.
    skew_ms: AtomicI64,
    _dir: Option<tempfile::TempDir>,
}

impl World {
    /// `store` with the world's clock as the store's clock too (nodes check theirs against
    /// it before a rule that reads time, as claiming a turn).
    fn stamped(store: Arc<dyn ObjectStore>, clock: &Arc<TestClock>) -> Arc<dyn ObjectStore> {
        Arc::new(cairn::store::fault::FaultStore::stamped(
            store,
            0,
            clock.clone(),
        ))
    }

    fn memory(strategy: Strategy, label: &'static str) -> Self {
        let clock = Arc::new(TestClock::new(origin()));
        Self {
            store: Self::stamped(Arc::new(InMemory::new()), &clock),
            clock,
            strategy,
            label,
            skew_ms: AtomicI64::new(0),
            _dir: None,
        }
    }

    fn fs() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(TestClock::new(origin()));
        Self {
            store: Self::stamped(
                Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap()),
                &clock,
            ),
            clock,
            strategy: Strategy::VersionChain,
            label: "fs/chain",
            skew_ms: AtomicI64::new(0),
            _dir: Some(dir),
        }
    }

    /// Every world a test runs in.
    fn all() -> Vec<Self> {
        vec![
            Self::memory(Strategy::EtagCas, "memory/etag"),
            Self::memory(Strategy::VersionChain, "memory/chain"),
            Self::fs(),
        ]
    }

    async fn node(&self, name: &str) -> Cairn {
        self.node_with(name, ManifestOptions::default()).await
    }

    async fn node_with(&self, name: &str, options: ManifestOptions) -> Cairn {
        self.node_on(name, options, self.clock.clone()).await
    }

    /// A node whose wall clock runs `behind_ms` behind everyone else's (and the store's).
    async fn node_behind(&self, name: &str, behind_ms: i64) -> Cairn {
        let clock = Arc::new(TestClock::new(origin()));
        let skew = self.skew_ms.load(Ordering::SeqCst) - behind_ms;
        clock.set_skew(chrono::Duration::milliseconds(skew));
        self.node_on(name, ManifestOptions::default(), clock).await
    }

    async fn node_on(&self, name: &str, options: ManifestOptions, clock: Arc<TestClock>) -> Cairn {
        Cairn::builder(Arc::clone(&self.store))
            .prefix(PREFIX)
            .node(name)
            .unwrap()
            .seed(name.len() as u64)
            .clock(clock)
            .strategy(StrategyChoice::Fixed(self.strategy))
            .manifest_options(options)
            .build()
            .await
            .expect("build")
    }

    /// Moves every node's wall clock `ms` milliseconds on.
    fn later(&self, ms: i64) {
        let skew = self.skew_ms.fetch_add(ms, Ordering::SeqCst) + ms;
        self.clock.set_skew(chrono::Duration::milliseconds(skew));
    }

    /// Lock `db`, which must be free (`why` it is, else the test fails).
    async fn take(&self, locks: &Locks, why: &str) -> HeldLock {
        match locks.try_acquire(&name("db")).await.unwrap() {
            Acquire::Held(l) => l,
            Acquire::Busy(b) => panic!("{}: {why}; busy: {b:?}", self.label),
        }
    }

    /// Every object under `folder` (below the prefix), as a foreign client lists them.
    async fn listed(&self, folder: &str) -> Vec<object_store::ObjectMeta> {
        let under = Path::from(format!("{PREFIX}/{folder}"));
        self.store
            .list(Some(&under))
            .try_collect()
            .await
            .expect("list")
    }

    /// Deletes every object under `folder` (below the prefix) as a foreign client would,
    /// and returns how many there were (at least one, or the test proves nothing).
    async fn vanish(&self, folder: &str) -> usize {
        let listed = self.listed(folder).await;
        for o in &listed {
            self.store.delete(&o.location).await.expect("delete");
        }
        assert!(
            !listed.is_empty(),
            "{}: nothing under {PREFIX}/{folder}",
            self.label
        );
        listed.len()
    }

    /// Every object under `folder` (below the prefix) with its bytes, as a backup keeps them.
    async fn backup(&self, folder: &str) -> Vec<(Path, bytes::Bytes)> {
        let mut kept = Vec::new();
        for o in self.listed(folder).await {
            let bytes = self.store.get(&o.location).await.expect("get");
            kept.push((o.location, bytes.bytes().await.expect("bytes")));
        }
        kept
    }

    /// Puts `folder` back as `backup` had it, as a restore from backup does: what was written
    /// since is deleted (on the version chain, the newest versions vanish while older ones
    /// stay) and what differs is written back (under etag CAS, an older lock object). Returns
    /// how many objects it changed (at least one, or the test proves nothing).
    async fn restore(&self, folder: &str, backup: &[(Path, bytes::Bytes)]) -> usize {
        let now = self.backup(folder).await;
        let mut changed = 0;
        for (path, _) in &now {
            if !backup.iter().any(|(p, _)| p == path) {
                self.store.delete(path).await.expect("delete");
                changed += 1;
            }
        }
        for (path, bytes) in backup {
            if !now.iter().any(|(p, b)| p == path && b == bytes) {
                self.store
                    .put(path, bytes.clone().into())
                    .await
                    .expect("put");
                changed += 1;
            }
        }
        assert!(
            changed > 0,
            "{}: nothing to restore under {folder}",
            self.label
        );
        changed
    }
}

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

#[tokio::test]
async fn should_give_a_higher_fencing_token_than_the_live_holder_after_the_lock_vanished() {
    for w in World::all() {
        let a = w.node("a").await.locks(LockOptions::default()).unwrap();
        // A few acquire/release rounds, so that the live holder's token is not the first.
        for _ in 0..2 {
            let l = w.take(&a, "a free lock").await;
            l.release().await.unwrap();
        }
        let held = w.take(&a, "a free lock").await;
        let live = held.fencing_token();

        w.later(1_000);
        w.vanish("locks/db").await;

        let b = w.node("b").await.locks(LockOptions::default()).unwrap();
        let theirs = w
            .take(&b, "the lock's objects are gone, so it is free")
            .await;
        assert!(
            theirs.fencing_token() > live,
            "{}: the lock created again gave token {} to b while a holds {live}",
            w.label,
            theirs.fencing_token()
        );
        theirs.release().await.unwrap();
        drop(held);
    }
}

/// A node that knows a released lock's chain from moments ago (so it writes without
/// listing) acquires it after the chain vanished and another node created it again at a
/// higher floor. Its create lands in an empty slot of the old incarnation, below the new
/// head: it must not come back holding a token below the one already handed out.
#[tokio::test]
async fn should_not_hand_a_stale_chain_writer_a_token_below_a_chain_created_again() {
    for w in World::all() {
        let a = w.node("a").await.locks(LockOptions::default()).unwrap();
        for _ in 0..2 {
            let l = w.take(&a, "a free lock").await;
            l.release().await.unwrap();
        }
        w.later(1_000);
        w.vanish("locks/db").await;
        let b = w.node("b").await.locks(LockOptions::default()).unwrap();
        let theirs = w
            .take(&b, "the lock's objects are gone, so it is free")
            .await;
        // a's knowledge of the released head is fresh: it acquires without a listing.
        match a.try_acquire(&name("db")).await.unwrap() {
            Acquire::Held(ours) => panic!(
                "{}: a acquired with token {} while b holds {} (the chain created again)",
                w.label,
                ours.fencing_token(),
                theirs.fencing_token()
            ),
            Acquire::Busy(busy) => assert_eq!(
                (busy.holder.as_str(), busy.fencing_token),
                ("b", theirs.fencing_token()),
                "{}: busy with b's lease",
                w.label
            ),
        }
        theirs.release().await.unwrap();
    }
}

/// A fresh process whose wall clock runs a minute behind creates the vanished lock, and a
/// vanished log topic, afresh: it floors on the store's clock (a clock check first, two
/// requests), not on its own, so its token is above the live holder's and its sequence above
/// the vanished ones.
#[tokio::test]
async fn should_floor_above_the_vanished_numbers_from_a_node_whose_clock_runs_behind() {
    for w in World::all() {
        let a = w.node("a").await;
        let locks = a.locks(LockOptions::default()).unwrap();
        let held = w.take(&locks, "a free lock").await;
        let live = held.fencing_token();
        let topic = name("deploys");
        let last = a
            .event_log()
            .append(&topic, json!({ "i": 0 }))
            .await
            .unwrap();

        // Past the store's time resolution, which real stores truncate to.
        w.later(2_000);
        w.vanish("locks/db").await;
        w.vanish("log/deploys").await;

        let b = w.node_behind("b", 60_000).await;
        let theirs = w
            .take(
                &b.locks(LockOptions::default()).unwrap(),
                "the lock's objects are gone, so it is free",
            )
            .await;
        assert!(
            theirs.fencing_token() > live,
            "{}: a node a minute behind created the lock again with token {} while a holds {live}",
            w.label,
            theirs.fencing_token()
        );
        let next = b
            .event_log()
            .append(&topic, json!({ "i": 1 }))
            .await
            .unwrap();
        assert!(
            next > last,
            "{}: a node a minute behind appended {next} after {last} vanished",
            w.label
        );
        theirs.release().await.unwrap();
        drop(held);
    }
}

/// A fresh create that cannot make its clock check (here the store refuses the clock object's
/// PUT, as read-only or narrower credentials would) is refused with the store's error and
/// writes nothing: flooring on the wall clock instead could rewind the lock's tokens.
#[tokio::test]
async fn should_refuse_a_fresh_create_without_a_clock_check() {
    use cairn::store::fault::{Fault, FaultStore, Op, Rule};
    let w = World::memory(Strategy::EtagCas, "memory/etag");
    let faults = Arc::new(FaultStore::new(Arc::clone(&w.store), 0));
    faults.add(Rule::always(
        Op::Put,
        "_cairn/clock.json",
        Fault::Status(403),
    ));
    let node = Cairn::builder(faults.clone())
        .prefix(PREFIX)
        .node("ro")
        .unwrap()
        .clock(w.clock.clone())
        .strategy(StrategyChoice::Fixed(w.strategy))
        .build()
        .await
        .expect("build");
    let locks = node.locks(LockOptions::default()).unwrap();
    let before = faults.counts();
    match locks.try_acquire(&name("db")).await {
        Err(e) => assert!(e.to_string().contains("clock.json"), "{e}"),
        Ok(other) => panic!("created on the wall clock: {other:?}"),
    }
    let d = faults.counts().since(&before);
    assert_eq!(d.puts, 1, "only the clock object's PUT was tried: {d:?}");
    assert!(
        w.store
            .list(Some(&Path::from(format!("{PREFIX}/locks"))))
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .is_empty(),
        "nothing was written"
    );
}

#[tokio::test]
async fn should_number_a_turn_above_the_vanished_one() {
    for w in World::all() {
        let turns = w.node("a").await.turns(TurnOptions::default());
        let Claim::Won(first) = turns.try_claim(&name("compact")).await.unwrap() else {
            panic!("{}: a new turn is due", w.label)
        };
        let before = first.number();
        drop(first);

        w.later(1_000);
        w.vanish("turns/compact").await;

        let turns = w.node("b").await.turns(TurnOptions::default());
        let Claim::Won(again) = turns.try_claim(&name("compact")).await.unwrap() else {
            panic!("{}: the turn's objects are gone, so a turn is due", w.label)
        };
        assert!(
            again.number() > before,
            "{}: turn {} after turn {before} vanished",
            w.label,
            again.number()
        );
    }
}

/// A restore from a backup taken before the live holder acquired: on the version chain the
/// holder's newest versions vanish while the older ones stay, under etag CAS the lock object
/// goes back to the released one. A node that knew the lock as released (fresh knowledge:
/// no listing) acquires it again, a second later. No object is left to show the holder's
/// number, so the stored number + 1 would be the live holder's token again; the token is
/// drawn from time too (`Manifests::next_start`), and the later holder's is the higher one.
#[tokio::test]
async fn should_give_a_higher_token_than_a_holder_whose_versions_a_restore_took_away() {
    for w in World::all() {
        let a = w.node("a").await.locks(LockOptions::default()).unwrap();
        let b = w.node("b").await.locks(LockOptions::default()).unwrap();
        for l in [&a, &b] {
            let held = w.take(l, "a free lock").await;
            held.release().await.unwrap();
        }
        // Past the 5 s after the lock's creation during which drawn numbers are still its
        // first + 1 (docs/GUARANTEES.md, "Numbers never go backwards").
        w.later(10_000);
        let backup = w.backup("locks/db").await;
        let live = w.take(&a, "a free lock").await;

        w.later(1_000);
        w.restore("locks/db", &backup).await;

        let theirs = w
            .take(&b, "the lock is released again, so it is free")
            .await;
        assert!(
            theirs.fencing_token() > live.fencing_token(),
            "{}: b acquired with token {} while a holds {}",
            w.label,
            theirs.fencing_token(),
            live.fencing_token()
        );
        theirs.release().await.unwrap();
        drop(live);
    }
}

/// The same for a turn: a restore takes away the claim of the newest turn, and a node that
/// knew the turn before claims it again (the window has passed). It runs early, as after any
/// deletion, but under a number above the vanished turn's, never the same one again.
#[tokio::test]
async fn should_number_a_turn_above_one_whose_claim_a_restore_took_away() {
    for w in World::all() {
        let a = w.node("a").await.turns(TurnOptions::default());
        let b = w.node("b").await.turns(TurnOptions::default());
        let Claim::Won(first) = a.try_claim(&name("compact")).await.unwrap() else {
            panic!("{}: a new turn is due", w.label)
        };
        first.finish(Ok(None)).await.unwrap();
        let Claim::NotDue { .. } = b.try_claim(&name("compact")).await.unwrap() else {
            panic!("{}: the first turn just ran", w.label)
        };
        let backup = w.backup("turns/compact").await;

        w.later(400_000);
        let Claim::Won(second) = a.try_claim(&name("compact")).await.unwrap() else {
            panic!("{}: the window has passed", w.label)
        };
        let vanished = second.number();
        drop(second);

        w.later(1_000);
        w.restore("turns/compact", &backup).await;

        let Claim::Won(again) = b.try_claim(&name("compact")).await.unwrap() else {
            panic!(
                "{}: the second turn's claim is gone, so a turn is due",
                w.label
            )
        };
        assert!(
            again.number() > vanished,
            "{}: turn {} claimed again after turn {vanished} vanished",
            w.label,
            again.number()
        );
    }
}

#[tokio::test]
async fn should_append_above_every_vanished_sequence() {
    for w in World::all() {
        let log = w.node("a").await.event_log();
        let topic = name("deploys");
        let mut last = 0;
        for i in 0..3 {
            last = log.append(&topic, json!({ "i": i })).await.unwrap();
        }

        w.later(1_000);
        w.vanish("log/deploys").await;

        // A fresh client (as every CLI command is) finds the topic empty.
        let fresh = w.node("b").await.event_log();
        let next = fresh.append(&topic, json!({ "i": 3 })).await.unwrap();
        assert!(
            next > last,
            "{}: sequence {next} after {last} vanished",
            w.label
        );
        // After the new first entry, numbering is + 1 again, for every client: also for the
        // one that knew the old tail (it finds its tail gone, and lists).
        assert_eq!(
            log.append(&topic, json!({ "i": 4 })).await.unwrap(),
            next + 1,
            "{}",
            w.label
        );
        let read = fresh.read(&topic, 0, 10).await.unwrap();
        let seqs: Vec<u64> = read.iter().map(|e| e.sequence).collect();
        assert_eq!(seqs, vec![next, next + 1], "{}", w.label);
    }
}

/// A stale appender that checked its tail just before the topic was deleted whole writes one
/// past it, below the first entry a fresh client created since (at the floor, in slot 1): a
/// cold client must not take that stale entry for the newest and number below the first.
/// The slot of sequence `seq` in topic `deploys`.
fn log_slot(seq: u64) -> Path {
    Path::from(format!("{PREFIX}/log/deploys/{seq:020}.json"))
}

/// A topic deleted whole under a stale appender.
struct Stale {
    /// The stale appender `a`, which appended up to `last`.
    log: cairn::log::EventLog,
    topic: Name,
    last: u64,
    /// The first entry `b` appended after the deletion.
    first: u64,
    /// The bytes of `a`'s tail entry, as they were before the deletion.
    tail: bytes::Bytes,
}

/// `a` appends three entries to `deploys`; the topic is deleted whole; `b` appends a first
/// entry again (at a floor above `last + 1`); and `a`'s create of `last + 1`, which raced the
/// deletion, lands below it.
async fn stale_appender(w: &World) -> Stale {
    let log = w.node("a").await.event_log();
    let topic = name("deploys");
    let mut last = 0;
    for i in 0..3 {
        last = log.append(&topic, json!({ "i": i })).await.unwrap();
    }
    let tail = w
        .store
        .get(&log_slot(last))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();

    w.later(1_000);
    w.vanish("log/deploys").await;
    let first = w
        .node("b")
        .await
        .event_log()
        .append(&topic, json!({ "i": 3 }))
        .await
        .unwrap();
    assert!(first > last + 1, "{}", w.label);
    let mut stale: serde_json::Value = serde_json::from_slice(&tail).unwrap();
    stale["version"] = (last + 1).into();
    stale["write_id"] = uuid::Uuid::new_v4().to_string().into();
    w.store
        .put(
            &log_slot(last + 1),
            serde_json::to_vec(&stale).unwrap().into(),
        )
        .await
        .unwrap();
    Stale {
        log,
        topic,
        last,
        first,
        tail,
    }
}

#[tokio::test]
async fn should_append_above_a_first_entry_created_again_when_a_stale_appender_wrote_below_it() {
    for w in World::all() {
        let Stale {
            log, topic, first, ..
        } = stale_appender(&w).await;

        let cold = w.node("c").await.event_log();
        assert_eq!(
            cold.newest_sequence(&topic).await.unwrap(),
            Some(first),
            "{}",
            w.label
        );
        let next = w
            .node("d")
            .await
            .event_log()
            .append(&topic, json!({ "i": 4 }))
            .await
            .unwrap();
        assert_eq!(
            next,
            first + 1,
            "{}: a cold appender after the stale entry",
            w.label
        );
        // A warm client that remembers the topic's old first entry (it appended it) finds
        // its tail gone, lists, and sees slot 1 changed (another etag): it reads it.
        assert_eq!(
            log.append(&topic, json!({ "i": 5 })).await.unwrap(),
            first + 2,
            "{}: the client that knew the old first entry",
            w.label
        );
        // The last entries, in order, the first entry created again among them.
        let (got, newest) = w.node("e").await.event_log().last(&topic, 3).await.unwrap();
        let seqs: Vec<u64> = got.iter().map(|e| e.sequence).collect();
        assert_eq!(seqs, vec![first, first + 1, first + 2], "{}", w.label);
        assert_eq!(newest, Some(first + 2), "{}", w.label);
    }
}

/// The stale appender itself: its create of `tail + 1` raced the topic's deletion and landed
/// below a first entry created again since, and its own tail is still there (here, put back
/// as it was). Its next append must not continue below the new first entry: it reads slot 1
/// beside its tail, finds another first entry there, lists, and appends above it.
#[tokio::test]
async fn should_bring_a_stale_appender_above_a_first_entry_created_again() {
    for w in World::all() {
        let Stale {
            log,
            topic,
            last,
            first,
            tail,
        } = stale_appender(&w).await;
        // The stale appender's own tail, put back as it was.
        w.store.put(&log_slot(last), tail.into()).await.unwrap();

        let next = log.append(&topic, json!({ "i": 4 })).await.unwrap();
        assert_eq!(
            next,
            first + 1,
            "{}: the stale appender continued at {next}, below the first entry {first}",
            w.label
        );
    }
}

#[tokio::test]
async fn should_keep_appending_after_the_newest_when_only_older_entries_were_trimmed() {
    for w in World::all() {
        let log = w.node("a").await.event_log();
        let topic = name("audit");
        let mut seqs = Vec::new();
        for i in 0..4 {
            seqs.push(log.append(&topic, json!({ "i": i })).await.unwrap());
        }
        // An age-based rule takes the oldest entries, never all of them.
        let deleted = log.delete_before(&topic, seqs[3], false).await.unwrap();
        assert_eq!(deleted, seqs[..3].to_vec());
        w.later(1_000);
        let fresh = w.node("b").await.event_log();
        assert_eq!(
            fresh.append(&topic, json!({ "i": 4 })).await.unwrap(),
            seqs[3] + 1,
            "{}: a topic that still has entries continues after its newest",
            w.label
        );
    }
}

#[tokio::test]
async fn should_refuse_a_lower_record_version_once_the_record_vanished() {
    for w in World::all() {
        let (ns, key) = (name("agents"), name("agent-7"));
        let records = w.node("a").await.records();
        let stored = records.put_if_newer(&ns, &key, 7, json!("connected")).await;
        assert_eq!(stored.unwrap(), Put::Applied { version: 7 });
        let generation = record_generation(&w, "a").await;

        w.later(1_000);
        w.vanish("records/agents/agent-7").await;

        // The late "disconnected at 3" must not be stored over what was "connected at 7": a
        // typed refusal naming the record. (Under the version chain, a handle that knows the
        // head from moments ago still trusts it, and finds 3 stale: refused too.)
        match records
            .put_if_newer(&ns, &key, 3, json!("disconnected"))
            .await
        {
            Err(Error::RecordVanished {
                key: k,
                seen: 7,
                stored: None,
            }) => {
                assert!(k.contains("agent-7"), "{}: {k}", w.label)
            }
            Ok(Put::Stale { stored_version: 7 }) if w.strategy == Strategy::VersionChain => {}
            other => panic!(
                "{}: a stale version applied to a vanished record: {other:?}",
                w.label
            ),
        }
        assert!(
            w.store
                .list(Some(&Path::from(format!(
                    "{PREFIX}/records/agents/agent-7"
                ))))
                .try_collect::<Vec<_>>()
                .await
                .unwrap()
                .is_empty(),
            "{}: nothing was written",
            w.label
        );

        // A fresh client cannot know version 7 (the documented residue): it stores 3.
        let fresh = w.node("b").await.records();
        let put = fresh
            .put_if_newer(&ns, &key, 3, json!("disconnected"))
            .await;
        assert_eq!(put.unwrap(), Put::Applied { version: 3 }, "{}", w.label);
        // The record created again carries a higher generation (its manifest version).
        assert!(record_generation(&w, "b").await > generation, "{}", w.label);
        // The handle that saw 7 still refuses what is not above 7, naming what is stored...
        match records.put_if_newer(&ns, &key, 5, json!("stale")).await {
            Err(Error::RecordVanished {
                seen: 7,
                stored: Some(3),
                ..
            }) => {}
            Ok(Put::Stale { stored_version: 7 }) if w.strategy == Strategy::VersionChain => {}
            other => panic!("{}: {other:?}", w.label),
        }
        // ...and applies what is.
        let put = records.put_if_newer(&ns, &key, 8, json!("connected")).await;
        assert_eq!(put.unwrap(), Put::Applied { version: 8 }, "{}", w.label);
    }
}

/// The manifest version of the record agents/agent-7, read by a new node `node`.
async fn record_generation(w: &World, node: &str) -> u64 {
    let c = w.node(node).await;
    let base = cairn::store::keys::record(&name("agents"), &name("agent-7"));
    c.manifest::<cairn::record::Record>(cairn::record::KIND, base)
        .load()
        .await
        .unwrap()
        .expect("the record is stored")
        .version
}

/// Manifests stored before floors, numbered from 1, keep counting from where they are: a
/// chain at version 3 (slots 1, 2, 3) or an etag object at version 3 updates to 4.
#[tokio::test]
async fn should_keep_counting_an_old_manifest_from_its_small_version() {
    for w in World::all() {
        // A clock before the epoch floors at 1: what every release before floors wrote.
        let epoch = Arc::new(TestClock::new(DateTime::UNIX_EPOCH));
        epoch.set_skew(chrono::Duration::hours(-1));
        // Its store's clock reads the same (floors are drawn on the store's timeline).
        let at_epoch: Arc<dyn ObjectStore> = Arc::new(cairn::store::fault::FaultStore::stamped(
            Arc::clone(&w.store),
            0,
            epoch.clone(),
        ));
        let old = Cairn::builder(at_epoch)
            .prefix(PREFIX)
            .node("old")
            .unwrap()
            .clock(epoch)
            .strategy(StrategyChoice::Fixed(w.strategy))
            .build()
            .await
            .expect("build");
        let base = cairn::store::keys::manifest(cairn::store::keys::Family::Scratch, &name("old"));
        let m = old.manifest::<u64>("test", base.clone());
        for i in 1..=3u64 {
            let u = m.update(|_| Change::Write(i)).await.unwrap();
            assert_eq!(u.snapshot.unwrap().version, i, "{}", w.label);
        }
        let now = w.node("new").await;
        let m = now.manifest::<u64>("test", base);
        let u = m.update(|_| Change::Write(4)).await.unwrap();
        assert_eq!(u.snapshot.unwrap().version, 4, "{}", w.label);
        let loaded = m.load().await.unwrap().unwrap();
        assert_eq!((loaded.version, loaded.body), (4, 4), "{}", w.label);
    }
}

/// Two nodes creating one chain at once draw different floors, yet collide on the first
/// version's slot: exactly one wins, and the loser sees the winner.
#[tokio::test]
async fn should_let_one_of_two_creators_with_different_floors_win() {
    for w in World::all() {
        let a = w.node("a").await;
        let b = w.node("b").await;
        let base = cairn::store::keys::manifest(cairn::store::keys::Family::Scratch, &name("c"));
        let ma = a.manifest::<String>("test", base.clone());
        let mb = b.manifest::<String>("test", base);
        // Both saw nothing.
        assert!(ma.load().await.unwrap().is_none());
        assert!(mb.load().await.unwrap().is_none());
        let Write::Written(first) = ma.create("a".into()).await.unwrap() else {
            panic!("{}: the first create wins", w.label)
        };
        w.later(1_000);
        match mb.create("b".into()).await.unwrap() {
            Write::Conflict(Some(winner)) => {
                assert_eq!((winner.version, winner.body), (first.version, "a".into()))
            }
            other => panic!("{}: a second first version was stored: {other:?}", w.label),
        }
        let head = mb.load().await.unwrap().unwrap();
        assert_eq!(head.body, "a", "{}", w.label);
    }
}

/// A version-chain writer that keeps writing on fresh knowledge (each create renews it) while
/// its chain vanishes and another node creates it again (in slot 1, at a higher floor) would
/// otherwise live on in the old incarnation for ever, its writes landing below the new head.
/// Knowledge derived without a listing is capped at half of `gc_min_age` after the last
/// listing, so within `gc_min_age` it lists, loses, and finds the new head.
#[tokio::test(start_paused = true)]
async fn should_bring_a_chain_writer_on_fresh_knowledge_to_the_new_incarnation() {
    const MIN_AGE: std::time::Duration = std::time::Duration::from_secs(60);
    let options = || ManifestOptions {
        gc_min_age: MIN_AGE,
        gc_every: u64::MAX,
        ..Default::default()
    };
    for w in World::all()
        .into_iter()
        .filter(|w| w.strategy == Strategy::VersionChain)
    {
        let base = cairn::store::keys::manifest(cairn::store::keys::Family::Scratch, &name("u"));
        let a = w.node_with("a", options()).await;
        let ma = a.manifest::<String>("test", base.clone());
        let mut cur = ma
            .update(|_| Change::Write("a0".into()))
            .await
            .unwrap()
            .snapshot
            .unwrap();
        let old = cur.version;

        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        w.vanish("scratch/u").await;
        let b = w.node_with("b", options()).await;
        let mb = b.manifest::<String>("test", base.clone());
        let theirs = mb.update(|_| Change::Write("b0".into())).await.unwrap();
        let theirs = mb
            .write(theirs.snapshot.as_ref(), "b1".into())
            .await
            .unwrap();
        let Write::Written(theirs) = theirs else {
            panic!("{}: b writes on its own chain", w.label)
        };
        assert!(
            theirs.version > old,
            "{}: the new incarnation numbers higher",
            w.label
        );

        // a writes every 10 s on what it knows; by gc_min_age (plus a step) it must have lost.
        let mut lost = None;
        for step in 0..8 {
            tokio::time::advance(std::time::Duration::from_secs(10)).await;
            match ma.write(Some(&cur), format!("a{step}")).await.unwrap() {
                Write::Written(s) => cur = s,
                Write::Conflict(head) => {
                    lost = Some((step, head));
                    break;
                }
            }
        }
        let Some((step, head)) = lost else {
            panic!("{}: a kept writing below the new head for 80 s", w.label)
        };
        assert!(step <= 6, "{}: a lost only at step {step}", w.label);
        let head = head.expect("the head");
        assert_eq!(
            (head.version, head.body.as_str()),
            (theirs.version, "b1"),
            "{}",
            w.label
        );
        // A cold reader sees the new incarnation throughout.
        let c = w.node_with("c", options()).await;
        let seen = c
            .manifest::<String>("test", base)
            .load()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(seen.version, theirs.version, "{}", w.label);
    }
}

/// A chain's first version is in slot 1, which collection empties under a living chain: a
/// create without knowledge of the chain (as `Streams::create` makes) must still find the
/// chain and conflict, not start a second incarnation in slot 1 above it.
#[tokio::test]
async fn should_conflict_when_creating_a_chain_whose_first_slot_was_collected() {
    let w = World::fs();
    let options = ManifestOptions {
        gc_keep: 2,
        gc_min_age: std::time::Duration::ZERO,
        gc_every: u64::MAX,
        ..Default::default()
    };
    let base = cairn::store::keys::manifest(cairn::store::keys::Family::Scratch, &name("gc"));
    let a = w.node_with("a", options.clone()).await;
    let ma = a.manifest::<u64>("test", base.clone());
    for i in 0..5 {
        ma.update(|_| Change::Write(i)).await.unwrap();
    }
    assert_eq!(ma.collect_garbage().await.unwrap(), 3);
    let slot1 = Path::from(format!(
        "{PREFIX}/{}",
        cairn::store::keys::chain_version(&base, 1)
    ));
    assert!(w.store.head(&slot1).await.is_err(), "slot 1 was collected");
    let head = ma.load().await.unwrap().unwrap();

    let b = w.node_with("b", options).await;
    match b.manifest::<u64>("test", base).create(99).await.unwrap() {
        Write::Conflict(Some(h)) => assert_eq!((h.version, h.body), (head.version, 4)),
        other => panic!("a second incarnation was created beside a living chain: {other:?}"),
    }
    assert_eq!(ma.load().await.unwrap().unwrap().version, head.version);
}
