//! Listings at the request floor (issue #20): a view of N manifests costs ⌈N/1000⌉ LISTs plus
//! one GET per manifest whose body it needs, the GETs in flight together; a cached view's
//! refresh costs the listing plus one GET per changed manifest; an unreadable manifest is
//! reported in its place and the rest is shown. Requests are counted by a `FaultStore`
//! (one LIST per page of 1,000 keys, as S3 pages), on memory, the filesystem and LocalStack.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn::cache::CacheOptions;
use cairn::lock::LockOptions;
use cairn::manifest::Strategy;
use cairn::store::fault::{Counts, Fault, FaultStore, Op, Rule};
use cairn::store::keys::{self, Family};
use cairn::{Cairn, Name};
use common::{namespace, Backend, Namespace};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

fn n(s: &str) -> Name {
    Name::new(s).unwrap()
}

/// A handle on `ns` whose every request is counted.
async fn counted(ns: &Namespace, node: &str, strategy: Strategy) -> (Cairn, Arc<FaultStore>) {
    let faults = Arc::new(FaultStore::new(Arc::clone(&ns.store), 7));
    let c = ns.cairn_with(node, strategy, faults.clone(), |b| b).await;
    (c, faults)
}

fn raw(ns: &Namespace, key: &keys::Key) -> Path {
    Path::from(format!("{}/{key}", ns.prefix))
}

/// The key of `name`'s only object after its first write, under `strategy`.
fn first_object(strategy: Strategy, family: Family, name: &str) -> keys::Key {
    let base = keys::manifest(family, &n(name));
    match strategy {
        Strategy::EtagCas => keys::etag_object(&base),
        _ => keys::chain_version(&base, 1),
    }
}

/// Copies `from` (a stored first version) to `count` more names `<stem>-<i>`, with raw PUTs
/// 32 at a time: a family of `count + 1` manifests without `count` library writes.
async fn clone_out(
    ns: &Namespace,
    strategy: Strategy,
    family: Family,
    from: &str,
    stem: &str,
    count: usize,
) {
    let bytes: Bytes = ns
        .store
        .get(&raw(ns, &first_object(strategy, family, from)))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    futures::stream::iter(0..count)
        .map(|i| {
            let key = raw(
                ns,
                &first_object(strategy, family, &format!("{stem}-{i:05}")),
            );
            let bytes = bytes.clone();
            async move { ns.store.put(&key, bytes.into()).await.unwrap() }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
}

/// `count` locks `job-00000`…, each taken once (by `planter`, one version each).
async fn locks(ns: &Namespace, strategy: Strategy, count: usize) {
    let c = ns.cairn("planter", strategy).await;
    let l = c.locks(LockOptions::default()).unwrap();
    let lease = match l.try_acquire(&n("job")).await.unwrap() {
        cairn::lock::Acquire::Held(lease) => lease,
        other => panic!("{other:?}"),
    };
    clone_out(ns, strategy, Family::Lock, "job", "job", count).await;
    lease.release().await.unwrap();
    remove(ns, Family::Lock, "job").await;
}

/// Deletes every object of `name`, as an operator's `rm` would.
async fn remove(ns: &Namespace, family: Family, name: &str) {
    let listed = ns
        .store
        .list(Some(&raw(ns, &keys::manifest(family, &n(name)))))
        .map(|m| m.unwrap().location)
        .collect::<Vec<_>>()
        .await;
    assert!(!listed.is_empty());
    for p in listed {
        ns.store.delete(&p).await.unwrap();
    }
}

fn pages(objects: usize) -> u64 {
    objects.div_ceil(1000) as u64
}

fn since(f: &FaultStore, before: &Counts) -> Counts {
    f.counts().since(before)
}

/// 2,500 locks (1,200 on LocalStack): ⌈N/1000⌉ LISTs and N GETs, nothing else.
async fn lock_listing_at_the_floor(backend: Backend, strategy: Strategy, count: usize) {
    let Some(ns) = namespace(backend).await else {
        return;
    };
    locks(&ns, strategy, count).await;
    let (c, f) = counted(&ns, "viewer", strategy).await;
    let l = c.locks(LockOptions::default()).unwrap();
    let before = f.counts();
    let all = l.entries().await.unwrap();
    let used = since(&f, &before);
    assert_eq!(all.len(), count, "{backend:?} {strategy:?}");
    assert!(all.iter().all(Result::is_ok));
    let names: Vec<&str> = all
        .iter()
        .map(|e| e.as_ref().unwrap().name.as_str())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "in name order");
    assert_eq!(
        (used.lists, used.gets, used.puts),
        (pages(count), count as u64, 0),
        "{backend:?} {strategy:?}: {used:?}"
    );
}

#[tokio::test]
async fn lock_listing_costs_one_list_per_1000_and_one_get_per_lock_memory() {
    for s in [Strategy::EtagCas, Strategy::VersionChain] {
        lock_listing_at_the_floor(Backend::Memory, s, 2500).await;
    }
}

#[tokio::test]
async fn lock_listing_costs_one_list_per_1000_and_one_get_per_lock_fs() {
    lock_listing_at_the_floor(Backend::Fs, Strategy::VersionChain, 2500).await;
}

#[tokio::test]
async fn lock_listing_costs_one_list_per_1000_and_one_get_per_lock_localstack() {
    for s in [Strategy::EtagCas, Strategy::VersionChain] {
        lock_listing_at_the_floor(Backend::LocalStack, s, 1200).await;
    }
}

/// The GETs of a listing are in flight together: with every GET taking 100 ms (virtual
/// time), 500 locks are listed in a fraction of the 50 s one after another would take.
#[tokio::test(start_paused = true)]
async fn a_listing_reads_its_manifests_concurrently() {
    for strategy in [Strategy::EtagCas, Strategy::VersionChain] {
        let ns = namespace(Backend::Memory).await.unwrap();
        locks(&ns, strategy, 500).await;
        let (c, f) = counted(&ns, "viewer", strategy).await;
        let l = c.locks(LockOptions::default()).unwrap();
        f.add(Rule::always(
            Op::Get,
            "",
            Fault::Delay(Duration::from_millis(100)),
        ));
        let started = tokio::time::Instant::now();
        assert_eq!(l.list().await.unwrap().len(), 500);
        let took = started.elapsed();
        // 32 in flight by default: 16 rounds of 100 ms.
        assert!(
            took < Duration::from_secs(5),
            "{strategy:?}: 500 GETs took {took:?}"
        );
    }
}

/// One corrupt lock among many: the others are listed, the bad one is in its place with its
/// key, and the strict `list` names it.
#[tokio::test]
async fn one_corrupt_manifest_is_reported_in_place_and_the_rest_listed() {
    for strategy in [Strategy::EtagCas, Strategy::VersionChain] {
        let ns = namespace(Backend::Memory).await.unwrap();
        locks(&ns, strategy, 60).await;
        let bad = first_object(strategy, Family::Lock, "job-00017");
        ns.store
            .put(&raw(&ns, &bad), Bytes::from_static(b"not json").into())
            .await
            .unwrap();
        let (c, _) = counted(&ns, "viewer", strategy).await;
        let l = c.locks(LockOptions::default()).unwrap();
        let all = l.entries().await.unwrap();
        assert_eq!(all.len(), 60);
        let errs: Vec<_> = all.iter().enumerate().filter(|(_, e)| e.is_err()).collect();
        assert_eq!(errs.len(), 1, "{strategy:?}");
        let (at, e) = errs[0];
        let u = e.as_ref().unwrap_err();
        assert_eq!(u.name, "job-00017");
        assert_eq!(u.key, bad.to_string());
        assert!(matches!(*u.error, cairn::Error::Corrupt { .. }), "{u:?}");
        assert_eq!(at, 17, "in name order");
        match l.list().await {
            Err(cairn::Error::Corrupt { key, .. }) => assert_eq!(key, bad.to_string()),
            other => panic!("{other:?}"),
        }
    }
}

/// A listed head that is gone when read (collected meanwhile) is loaded the ordinary way.
#[tokio::test]
async fn a_listed_head_gone_when_read_is_loaded_the_ordinary_way() {
    let ns = namespace(Backend::Memory).await.unwrap();
    locks(&ns, Strategy::VersionChain, 3).await;
    let (c, f) = counted(&ns, "viewer", Strategy::VersionChain).await;
    let l = c.locks(LockOptions::default()).unwrap();
    // The first read of job-00001's head answers 404, as if collection removed it.
    f.add(Rule::times(Op::Get, "job-00001/v/", Fault::Status(404), 1));
    let all = l.list().await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[1].name, "job-00001");
    assert_eq!(all[1].holder, "planter");
}

/// A cached view of N unchanged streams: a refresh is ⌈N/1000⌉ LISTs and nothing else; with
/// 1% changed, those GETs on top; a stream no longer listed drops out.
async fn refresh_at_the_floor(backend: Backend, strategy: Strategy, count: usize) {
    let Some(ns) = namespace(backend).await else {
        return;
    };
    let c = ns.cairn("planter", strategy).await;
    let _ = c
        .streams()
        .create(&n("clicks"), serde_json::json!({"schema": 1}))
        .await
        .unwrap();
    clone_out(&ns, strategy, Family::Stream, "clicks", "clicks", count - 1).await;
    let (v, f) = counted(&ns, "viewer", strategy).await;
    let view = v.streams().view(CacheOptions {
        fresh: Duration::ZERO,
        ..CacheOptions::for_streams()
    });
    let before = f.counts();
    let first = view.entries().await.unwrap();
    assert_eq!(first.items.len(), count);
    let used = since(&f, &before);
    assert_eq!(
        (used.lists, used.gets),
        (pages(count), count as u64),
        "{used:?}"
    );

    let before = f.counts();
    let again = view.entries().await.unwrap();
    let used = since(&f, &before);
    assert_eq!(again.items.len(), count);
    assert_eq!(
        used.requests(),
        pages(count),
        "{backend:?} {strategy:?}: an unchanged refresh is the listing alone: {used:?}"
    );

    // 1% changed.
    let changed = count / 100;
    for i in 0..changed {
        c.streams()
            .update(&n(&format!("clicks-{:05}", i * 7)), |_| {
                Some(serde_json::json!({"schema": 2}))
            })
            .await
            .unwrap();
    }
    let before = f.counts();
    let after = view.entries().await.unwrap();
    let used = since(&f, &before);
    assert_eq!(
        (used.lists, used.gets, used.puts),
        (pages(count), changed as u64, 0),
        "{backend:?} {strategy:?}: {used:?}"
    );
    let updated = after
        .items
        .iter()
        .filter(|e| e.as_ref().unwrap().record.metadata["schema"] == 2)
        .count();
    assert_eq!(updated, changed);

    // Gone from the store: gone from the view.
    remove(&ns, Family::Stream, "clicks-00001").await;
    let last = view.entries().await.unwrap();
    assert_eq!(last.items.len(), count - 1);
    assert!(last
        .items
        .iter()
        .all(|e| e.as_ref().unwrap().name != "clicks-00001"));
}

#[tokio::test]
async fn an_unchanged_refresh_costs_the_listing_alone_memory() {
    for s in [Strategy::EtagCas, Strategy::VersionChain] {
        refresh_at_the_floor(Backend::Memory, s, 2500).await;
    }
}

#[tokio::test]
async fn an_unchanged_refresh_costs_the_listing_alone_fs() {
    refresh_at_the_floor(Backend::Fs, Strategy::VersionChain, 2500).await;
}

#[tokio::test]
async fn an_unchanged_refresh_costs_the_listing_alone_localstack() {
    for s in [Strategy::EtagCas, Strategy::VersionChain] {
        refresh_at_the_floor(Backend::LocalStack, s, 1200).await;
    }
}

/// A corrupt stream among many in a cached view: reported in place, the rest shown, and the
/// strict `list` fails naming it.
#[tokio::test]
async fn a_cached_view_reports_a_corrupt_entry_in_place() {
    let strategy = Strategy::EtagCas;
    let ns = namespace(Backend::Memory).await.unwrap();
    let c = ns.cairn("planter", strategy).await;
    let _ = c
        .streams()
        .create(&n("clicks"), serde_json::json!({}))
        .await
        .unwrap();
    clone_out(&ns, strategy, Family::Stream, "clicks", "clicks", 20).await;
    let bad = first_object(strategy, Family::Stream, "clicks-00003");
    ns.store
        .put(&raw(&ns, &bad), Bytes::from_static(b"{}").into())
        .await
        .unwrap();
    let view = c.streams().view(CacheOptions {
        fresh: Duration::ZERO,
        ..CacheOptions::for_streams()
    });
    for _ in 0..2 {
        let all = view.entries().await.unwrap().items;
        assert_eq!(all.len(), 21);
        let bad_ones: Vec<_> = all.iter().filter_map(|e| e.as_ref().err()).collect();
        assert_eq!(bad_ones.len(), 1);
        assert_eq!(bad_ones[0].key, bad.to_string());
    }
    assert!(view.list().await.is_err());
}

mod cli {
    use super::common::cli::Env;

    /// `cairn lock ls` with one lock's newest version corrupt: the others are listed, the bad
    /// one has its row (and its JSON element) with the key and why, and the exit status is
    /// 65.
    #[test]
    fn lock_ls_shows_the_readable_locks_and_exits_65_for_a_corrupt_one() {
        let env = Env::new();
        for name in ["alpha", "bravo", "charlie"] {
            env.run("a", &["lock", "run", name, "--", "true"]).ok();
        }
        // bravo's newest version, overwritten with garbage.
        let dir = env.root().join("locks/bravo/v");
        let mut versions: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        versions.sort();
        let newest = versions.last().unwrap().clone();
        std::fs::write(&newest, b"garbage").unwrap();
        let key = format!(
            "locks/bravo/v/{}",
            newest.file_name().unwrap().to_str().unwrap()
        );

        let out = env.run("a", &["lock", "ls"]).exits(65);
        let text = out.stdout();
        assert!(text.contains("alpha"), "{text}");
        assert!(text.contains("charlie"), "{text}");
        let row = text.lines().find(|l| l.starts_with("bravo")).unwrap();
        assert!(row.contains("unreadable") && row.contains(&key), "{row}");
        assert!(
            out.stderr().contains("1 entry could not be read"),
            "{}",
            out.stderr()
        );

        let out = env.run("a", &["--json", "lock", "ls"]).exits(65);
        let all = out.json();
        let all = all.as_array().unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0]["name"], "alpha");
        assert_eq!(all[1]["name"], "bravo");
        assert_eq!(all[1]["unreadable"]["key"], key);
        assert!(all[1]["unreadable"]["error"]
            .as_str()
            .unwrap()
            .contains("not a valid cairn manifest"));
        assert_eq!(all[2]["state"], "released");

        // `status` shows the rest and names the unreadable lock, and exits 65 too.
        let out = env.run("a", &["status"]).exits(65);
        let text = out.stdout();
        assert!(text.contains("LOCKS  2"), "{text}");
        assert!(
            text.contains("UNREADABLE  1") && text.contains(&key),
            "{text}"
        );
        let out = env.run("a", &["--json", "status"]).exits(65);
        assert_eq!(out.json()["unreadable"][0]["key"], key);

        let help = env.run("a", &["lock", "ls", "--help"]).ok().stdout();
        assert!(
            help.contains("  65   listed, but some entries could not be read"),
            "{help}"
        );
    }
}

/// `stream watch`'s follower: a poll of unchanged streams is the listing alone, a changed
/// stream one GET more, and it is reported once.
#[tokio::test]
async fn a_follower_poll_costs_the_listing_plus_what_changed() {
    for strategy in [Strategy::EtagCas, Strategy::VersionChain] {
        let ns = namespace(Backend::Memory).await.unwrap();
        let c = ns.cairn("planter", strategy).await;
        let _ = c
            .streams()
            .create(&n("clicks"), serde_json::json!({"schema": 1}))
            .await
            .unwrap();
        clone_out(&ns, strategy, Family::Stream, "clicks", "clicks", 1500).await;
        let (v, f) = counted(&ns, "viewer", strategy).await;
        let mut follower = v.streams().follow(cairn::stream::Cursor::default());
        assert_eq!(follower.poll().await.unwrap().len(), 1501);
        let before = f.counts();
        assert!(follower.poll().await.unwrap().is_empty());
        let used = since(&f, &before);
        assert_eq!((used.lists, used.gets), (2, 0), "{strategy:?}: {used:?}");
        c.streams()
            .update(&n("clicks-00042"), |_| {
                Some(serde_json::json!({"schema": 2}))
            })
            .await
            .unwrap();
        let before = f.counts();
        let events = follower.poll().await.unwrap();
        let used = since(&f, &before);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].info().name, "clicks-00042");
        assert_eq!((used.lists, used.gets), (2, 1), "{strategy:?}: {used:?}");
    }
}

/// A store whose recursive listings leave out keys containing `hide`: a listing that lags
/// behind what a reader already knows.
#[derive(Debug)]
struct Lagging {
    inner: Arc<dyn ObjectStore>,
    hide: std::sync::Mutex<Option<String>>,
}

impl std::fmt::Display for Lagging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lagging({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for Lagging {
    async fn put_opts(
        &self,
        location: &Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        let hide = self.hide.lock().unwrap().clone();
        self.inner
            .list(prefix)
            .filter(move |m| {
                let shown = match (m, &hide) {
                    (Ok(m), Some(h)) => !m.location.as_ref().contains(h.as_str()),
                    _ => true,
                };
                std::future::ready(shown)
            })
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// A family listing that lags behind a version the reader already knows (version chain:
/// the listing misses the newest version) never takes the reader back to the older one: the
/// name is loaded the ordinary way, in a plain listing and in a cached view.
#[tokio::test]
async fn a_lagging_listing_never_shows_a_version_older_than_one_already_known() {
    let strategy = Strategy::VersionChain;
    let ns = namespace(Backend::Memory).await.unwrap();
    let lagging = Arc::new(Lagging {
        inner: Arc::clone(&ns.store),
        hide: std::sync::Mutex::new(None),
    });
    let c = ns
        .cairn_with("viewer", strategy, lagging.clone(), |b| b)
        .await;
    let locks = c.locks(LockOptions::default()).unwrap();
    let lease = match locks.try_acquire(&n("job")).await.unwrap() {
        cairn::lock::Acquire::Held(lease) => lease,
        other => panic!("{other:?}"),
    };
    let held = locks.show(&n("job")).await.unwrap().unwrap();
    lease.release().await.unwrap();
    let released = locks.show(&n("job")).await.unwrap().unwrap();
    assert_eq!(released.version, held.version + 1);
    // From now on the listing misses the released version.
    let newest = keys::chain_version(&keys::manifest(Family::Lock, &n("job")), released.version);
    *lagging.hide.lock().unwrap() = Some(newest.file_name().to_string());
    let all = locks.list().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].version, all[0].state),
        (released.version, cairn::lock::LockState::Released)
    );
}
