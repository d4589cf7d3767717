//! The event log read in pages: finding the newest entry, reading the last K and following a
//! topic cost what is read, not the topic's size. Requests are counted by `FaultStore`
//! (LIST requests as S3 pages them: 1,000 keys a page), on the memory store, the filesystem
//! and LocalStack. The follower runs on a paused
//! tokio clock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cairn::log::EventLog;
use cairn::manifest::Strategy;
use cairn::store::fault::{Counts, FaultStore};
use cairn::store::keys;
use cairn::store::quirks::IgnoresOffset;
use cairn::Name;
use common::Backend;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStoreExt;

/// A topic of `n` entries in a fresh namespace, and a cold reader on it (a client that never
/// read the topic, as `cairn log tail` is), counted.
struct Topic {
    ns: common::Namespace,
    topic: Name,
    /// The first entry's sequence number; the last is `first + n - 1`.
    first: u64,
    n: u64,
    writer: EventLog,
    counted: Arc<FaultStore>,
}

impl Topic {
    /// Two entries appended by the library, the rest written next to them as the library
    /// writes them (an envelope with the next sequence number and its own write id),
    /// concurrently, so thousands of entries take seconds on LocalStack.
    async fn new(backend: Backend, n: u64) -> Option<Self> {
        Self::on(backend, n, false).await
    }

    /// As [`Topic::new`], read through a store that ignores listing offsets when
    /// `ignores_offset`.
    async fn on(backend: Backend, n: u64, ignores_offset: bool) -> Option<Self> {
        assert!(n >= 2);
        let ns = common::namespace(backend).await?;
        let writer = ns.cairn("writer", Strategy::VersionChain).await.event_log();
        let topic = Name::new("audit").unwrap();
        let first = writer
            .append(&topic, serde_json::json!({ "i": 0 }))
            .await
            .unwrap();
        let second = writer
            .append(&topic, serde_json::json!({ "i": 1 }))
            .await
            .unwrap();
        assert_eq!(second, first + 1);
        let path = |seq: u64| Path::from(format!("{}/{}", ns.prefix, keys::log_entry(&topic, seq)));
        let template: serde_json::Value = serde_json::from_slice(
            &ns.store
                .get(&path(second))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap(),
        )
        .unwrap();
        futures::stream::iter(2..n)
            .map(|i| {
                let mut v = template.clone();
                v["version"] = (first + i).into();
                v["write_id"] = uuid::Uuid::new_v4().to_string().into();
                v["body"] = serde_json::json!({ "i": i });
                let body = serde_json::to_vec(&v).unwrap();
                let store = Arc::clone(&ns.store);
                let p = path(first + i);
                async move { store.put(&p, body.into()).await.map(|_| ()) }
            })
            .buffer_unordered(64)
            .try_collect::<Vec<()>>()
            .await
            .unwrap();
        let inner = Arc::clone(&ns.store);
        let counted = Arc::new(if ignores_offset {
            FaultStore::with_hook(inner, 1, IgnoresOffset)
        } else {
            FaultStore::new(inner, 1)
        });
        Some(Self {
            ns,
            topic,
            first,
            n,
            writer,
            counted,
        })
    }

    fn newest(&self) -> u64 {
        self.first + self.n - 1
    }

    /// A reader that never read the topic.
    async fn cold_reader(&self) -> EventLog {
        self.ns
            .cairn_with(
                "reader",
                Strategy::VersionChain,
                self.counted.clone(),
                |b| b,
            )
            .await
            .event_log()
    }

    /// Requests from here on.
    fn mark(&self) -> Counts {
        self.counted.counts()
    }

    /// Requests since `mark`, and of them the LIST pages.
    fn since(&self, mark: Counts) -> (Counts, u64) {
        let c = self.mark().since(&mark);
        (c, c.lists)
    }
}

fn sequences(entries: &[cairn::log::Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.sequence).collect()
}

/// A topic of 500 entries: its newest is found with one LIST and one GET (a cold client reads
/// the first entry, in slot 1, which may have been created again above the others after the
/// topic was deleted whole), and its last five are read with at most two LISTs and five GETs
/// more, by the calls `log tail -n 5` made before (`newest_sequence`, then `read`) and by
/// `last`, which it makes now (and which places slot 1 too, one GET); a client that placed
/// slot 1 finds the newest again with the listing alone (slot 1's etag is unchanged).
async fn tail_costs_what_it_prints(backend: Backend) {
    let Some(t) = Topic::new(backend, 500).await else {
        return;
    };
    let want: Vec<u64> = (t.newest() - 4..=t.newest()).collect();

    let reader = t.cold_reader().await;
    let m = t.mark();
    assert_eq!(
        reader.newest_sequence(&t.topic).await.unwrap(),
        Some(t.newest())
    );
    let (c, pages) = t.since(m);
    assert_eq!((c.lists, c.gets, pages), (1, 1, 1), "newest: {c:?}");
    let got = reader.read(&t.topic, t.newest() - 4, 5).await.unwrap();
    assert_eq!(sequences(&got), want);
    let (c, pages) = t.since(m);
    assert!(
        c.lists <= 2 && pages <= 2,
        "tail -n 5: {c:?}, {pages} pages"
    );
    assert_eq!(
        c.gets, 6,
        "tail -n 5 reads slot 1 and the five it prints: {c:?}"
    );
    assert_eq!(c.puts + c.deletes, 0);

    let reader = t.cold_reader().await;
    let m = t.mark();
    let (got, newest) = reader.last(&t.topic, 5).await.unwrap();
    assert_eq!(sequences(&got), want);
    assert_eq!(newest, Some(t.newest()));
    let (c, pages) = t.since(m);
    assert!(c.lists <= 2 && pages <= 2, "last 5: {c:?}, {pages} pages");
    assert_eq!(c.gets, 6, "last 5 and slot 1, placed: {c:?}");

    // A client that placed slot 1 knows it while a listing shows its etag unchanged: the
    // newest again is the listing alone.
    let m = t.mark();
    assert_eq!(
        reader.newest_sequence(&t.topic).await.unwrap(),
        Some(t.newest())
    );
    let (c, _) = t.since(m);
    assert_eq!((c.lists, c.gets), (1, 0), "newest again: {c:?}");

    // The whole topic and more: the first entry (in slot 1) is among them, read once.
    let reader = t.cold_reader().await;
    let m = t.mark();
    let (got, _) = reader.last(&t.topic, 600).await.unwrap();
    assert_eq!(sequences(&got), (t.first..=t.newest()).collect::<Vec<_>>());
    let (c, _) = t.since(m);
    assert_eq!(c.gets, 500, "last 600 of 500: {c:?}");
    assert!(c.lists <= 2, "last 600 of 500: {c:?}");
}

#[tokio::test]
async fn memory_tail_costs_what_it_prints() {
    tail_costs_what_it_prints(Backend::Memory).await;
}

#[tokio::test]
async fn fs_tail_costs_what_it_prints() {
    tail_costs_what_it_prints(Backend::Fs).await;
}

#[tokio::test]
async fn localstack_tail_costs_what_it_prints() {
    tail_costs_what_it_prints(Backend::LocalStack).await;
}

/// A topic of `n` entries (several S3 pages): the newest is found, and the first five and
/// the last five read, in far fewer LIST pages than listing the topic takes.
async fn a_large_topic_is_not_listed_whole(backend: Backend, n: u64, newest_pages: u64) {
    let Some(t) = Topic::new(backend, n).await else {
        return;
    };
    let whole = n.div_ceil(1000);

    let reader = t.cold_reader().await;
    let m = t.mark();
    assert_eq!(
        reader.newest_sequence(&t.topic).await.unwrap(),
        Some(t.newest())
    );
    let (c, pages) = t.since(m);
    assert!(
        pages <= newest_pages && pages < whole,
        "newest of {n}: {pages} pages (the whole topic is {whole}), {c:?}"
    );
    assert_eq!(c.gets, 1, "a cold client reads slot 1: {c:?}");

    let m = t.mark();
    let got = reader.read(&t.topic, 1, 5).await.unwrap();
    assert_eq!(sequences(&got), (t.first..t.first + 5).collect::<Vec<_>>());
    let (c, pages) = t.since(m);
    assert_eq!(pages, 1, "the first five of {n}: {c:?}");

    let reader = t.cold_reader().await;
    let m = t.mark();
    let (got, _) = reader.last(&t.topic, 5).await.unwrap();
    assert_eq!(
        sequences(&got),
        (t.newest() - 4..=t.newest()).collect::<Vec<_>>()
    );
    let (c, pages) = t.since(m);
    assert!(
        pages <= newest_pages + 1,
        "last 5 of {n}: {pages} pages, {c:?}"
    );
    assert_eq!(c.gets, 6, "last 5 of {n} and slot 1, placed: {c:?}");
}

#[tokio::test]
async fn memory_a_large_topic_is_not_listed_whole() {
    // 20,001 keys are 21 pages; the search reads 1 + 6 doubling + 5 halving.
    a_large_topic_is_not_listed_whole(Backend::Memory, 20_000, 12).await;
}

#[tokio::test]
async fn localstack_a_large_topic_is_not_listed_whole() {
    // 5,001 keys are 6 pages; the search reads 1 + 2.
    a_large_topic_is_not_listed_whole(Backend::LocalStack, 5_000, 3).await;
}

/// A follower that is current pays one LIST a poll and no GET. It starts, as `log tail
/// --follow` does, from what it found newest.
async fn current_follower_polls(t: &Topic, polls: u64) {
    let reader = t.cold_reader().await;
    assert_eq!(
        reader.newest_sequence(&t.topic).await.unwrap(),
        Some(t.newest())
    );
    let m = t.mark();
    for _ in 0..polls {
        assert!(reader
            .read(&t.topic, t.newest() + 1, 1000)
            .await
            .unwrap()
            .is_empty());
    }
    let (c, pages) = t.since(m);
    assert_eq!((c.lists, c.gets, pages), (polls, 0, polls), "{c:?}");
}

#[tokio::test]
async fn fs_a_current_follower_lists_once_a_poll() {
    let t = Topic::new(Backend::Fs, 50).await.unwrap();
    current_follower_polls(&t, 5).await;
}

#[tokio::test]
async fn localstack_a_current_follower_lists_once_a_poll() {
    let Some(t) = Topic::new(Backend::LocalStack, 50).await else {
        return;
    };
    current_follower_polls(&t, 5).await;
}

/// A follower far behind reads a page of a thousand entries a poll with one LIST page, not
/// a listing of everything after it.
#[tokio::test]
async fn memory_a_follower_behind_lists_a_page_a_poll() {
    let t = Topic::new(Backend::Memory, 3_500).await.unwrap();
    let reader = t.cold_reader().await;
    let m = t.mark();
    let got = reader.read(&t.topic, t.first + 1, 1000).await.unwrap();
    assert_eq!(
        sequences(&got),
        (t.first + 1..t.first + 1001).collect::<Vec<_>>()
    );
    let (c, pages) = t.since(m);
    assert_eq!((c.lists, pages), (1, 1), "{c:?}");
    assert_eq!(c.gets, 1000, "{c:?}");
}

/// `wait_for`, as `log tail --follow` runs it, on a paused clock: ten polls while nothing is
/// appended are ten LISTs; the poll after an append lists once and reads the new entry.
#[tokio::test(start_paused = true)]
async fn memory_a_waiting_follower_lists_once_a_poll() {
    let t = Topic::new(Backend::Memory, 50).await.unwrap();
    let reader = t.cold_reader().await;
    let (got, newest) = reader.last(&t.topic, 3).await.unwrap();
    assert_eq!(got.len(), 3);
    let from = newest.unwrap() + 1;
    let m = t.mark();
    let topic = t.topic.clone();
    let waiting = {
        let reader = reader.clone();
        tokio::spawn(async move { reader.wait_for(&topic, from, Duration::from_secs(1)).await })
    };
    // Polls at 0 s, 1 s, …, 9 s.
    tokio::time::sleep(Duration::from_millis(9_500)).await;
    let (c, pages) = t.since(m);
    assert_eq!((c.lists, c.gets, pages), (10, 0, 10), "{c:?}");
    let seq = t
        .writer
        .append(&t.topic, serde_json::json!({ "new": true }))
        .await
        .unwrap();
    assert_eq!(seq, from);
    let got = waiting.await.unwrap().unwrap();
    assert_eq!(sequences(&got), vec![from]);
    let (c, _) = t.since(m);
    assert_eq!((c.lists, c.gets), (11, 1), "{c:?}");
}

/// Reads that start after an offset return what they should on a store whose server ignores
/// the offset (the listing is filtered again on the client), and on Azurite through
/// object_store's Azure client (which sends `startFrom`, that Azurite ignores): the newest
/// entry, a page from the middle, the last five and a current follower's empty poll.
async fn offsets_are_honoured(backend: Backend, ignores_offset: bool) {
    let Some(t) = Topic::on(backend, 2_500, ignores_offset).await else {
        return;
    };
    let reader = t.cold_reader().await;
    assert_eq!(
        reader.newest_sequence(&t.topic).await.unwrap(),
        Some(t.newest())
    );
    let from = t.first + 1_234;
    let got = reader.read(&t.topic, from, 5).await.unwrap();
    assert_eq!(sequences(&got), (from..from + 5).collect::<Vec<_>>());
    let (got, newest) = t.cold_reader().await.last(&t.topic, 5).await.unwrap();
    assert_eq!(
        sequences(&got),
        (t.newest() - 4..=t.newest()).collect::<Vec<_>>()
    );
    assert_eq!(newest, Some(t.newest()));
    assert!(reader
        .read(&t.topic, t.newest() + 1, 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn memory_a_server_that_ignores_the_listing_offset_is_read_right() {
    offsets_are_honoured(Backend::Memory, true).await;
}

#[tokio::test]
async fn azurite_reads_after_an_offset_are_right() {
    offsets_are_honoured(Backend::Azurite, false).await;
}
