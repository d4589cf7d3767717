//! The store's `If-Match` form is recorded once, in the prefix's protocol record (issue #21,
//! first item). On a store that compares `If-Match` with the bare etag (Ceph RGW), a process
//! that opens a known prefix replaces at the request floor at once — no 412, no search on a
//! `_probe/` scratch key, no DELETE — and a record of an earlier build, which lacks the form,
//! is read as before and completed once, by one of the nodes that find the form.
//!
//! In-process on an in-memory store behind a hook that refuses the quoted etag (as RGW 16
//! does) with requests counted by `FaultStore`; then real `cairn` processes on the real RGW,
//! their requests counted on the wire by a proxy.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cairn::lock::{Acquire, LockOptions};
use cairn::store::fault::{FaultStore, Hook};
use cairn::store::quirks::BareEtagOnly;
use cairn::{Cairn, Name};
use common::cli::{cairn, Run};
use common::{s3_skipped, Backend};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutOptions, PutResult};

const PREFIX: &str = "p";

/// Compares `If-Match` with the bare etag, as Ceph RGW 16 does: the quoted etag it reported
/// is refused (412, the object unchanged), the bare one honoured. Records the keys of the
/// PUTs that landed.
#[derive(Debug, Default)]
struct BareEtags {
    landed: Mutex<Vec<String>>,
}

impl BareEtags {
    fn landed(&self, part: &str) -> usize {
        let landed = self.landed.lock().unwrap();
        landed.iter().filter(|p| p.contains(part)).count()
    }
}

#[async_trait]
impl Hook for BareEtags {
    fn put_options(&self, path: &Path, opts: PutOptions) -> object_store::Result<PutOptions> {
        BareEtagOnly.put_options(path, opts)
    }

    async fn committed(&self, path: &Path, landed: PutResult) -> object_store::Result<PutResult> {
        self.landed.lock().unwrap().push(path.to_string());
        Ok(landed)
    }
}

struct World {
    inner: Arc<InMemory>,
    hook: Arc<BareEtags>,
}

/// A hook handle the `FaultStore` owns, sharing the world's record of landed PUTs.
#[derive(Debug)]
struct Shared(Arc<BareEtags>);

#[async_trait]
impl Hook for Shared {
    fn put_options(&self, path: &Path, opts: PutOptions) -> object_store::Result<PutOptions> {
        self.0.put_options(path, opts)
    }

    async fn committed(&self, path: &Path, landed: PutResult) -> object_store::Result<PutResult> {
        self.0.committed(path, landed).await
    }
}

impl World {
    fn new() -> Self {
        Self {
            inner: Arc::new(InMemory::new()),
            hook: Arc::default(),
        }
    }

    /// A process's view of the store: its own request counter.
    fn counted(&self) -> Arc<FaultStore> {
        Arc::new(FaultStore::with_hook(
            self.inner.clone(),
            1,
            Shared(Arc::clone(&self.hook)),
        ))
    }

    async fn node(&self, store: Arc<FaultStore>, name: &str) -> Cairn {
        Cairn::builder(store)
            .prefix(PREFIX)
            .node(name)
            .unwrap()
            .seed(name.len() as u64)
            .build()
            .await
            .expect("build")
    }

    async fn record(&self) -> serde_json::Value {
        let path = Path::from(format!("{PREFIX}/_cairn/protocol.json"));
        let bytes = self.inner.get(&path).await.unwrap().bytes().await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Writes the record back as a build before this one wrote it: without the form.
    async fn forget_the_form(&self) -> serde_json::Value {
        let mut record = self.record().await;
        record.as_object_mut().unwrap().remove("if_match_form");
        let path = Path::from(format!("{PREFIX}/_cairn/protocol.json"));
        self.inner
            .put(&path, serde_json::to_vec(&record).unwrap().into())
            .await
            .unwrap();
        record
    }
}

fn lock() -> Name {
    Name::new("L").unwrap()
}

/// Takes and releases `name`: a replace of the existing lock, then another.
async fn take_and_release(c: &Cairn, name: &Name) {
    let locks = c.locks(LockOptions::default()).unwrap();
    let Acquire::Held(l) = locks.try_acquire(name).await.unwrap() else {
        panic!("{name} is free")
    };
    l.release().await.unwrap();
}

#[tokio::test]
async fn a_process_on_a_known_prefix_replaces_at_the_floor_on_a_bare_etag_store() {
    let w = World::new();
    let first = w.node(w.counted(), "first").await;
    assert_eq!(w.record().await["if_match_form"], "unquoted");
    take_and_release(&first, &lock()).await;

    // A new process (a CLI call): open, take the existing lock, release it.
    let counted = w.counted();
    let probes = w.hook.landed("_probe/");
    let c = w.node(Arc::clone(&counted), "cli").await;
    take_and_release(&c, &lock()).await;
    let d = counted.counts();
    assert_eq!(
        (d.requests(), d.gets, d.puts, d.deletes),
        (6, 3, 3, 0),
        "GET record, GET lock, the clock check a drawn token takes (PUT and HEAD of \
         _cairn/clock.json, once a process in 15 minutes), PUT acquire, PUT release: {d:?}"
    );
    assert_eq!(
        w.hook.landed("_probe/"),
        probes,
        "no search on a scratch key"
    );
}

#[tokio::test]
async fn a_record_of_an_earlier_build_is_read_as_before_and_completed_once() {
    let w = World::new();
    let first = w.node(w.counted(), "first").await;
    let (a, b) = (Name::new("a").unwrap(), Name::new("b").unwrap());
    take_and_release(&first, &a).await;
    take_and_release(&first, &b).await;
    let old = w.forget_the_form().await;
    let records = w.hook.landed("_cairn/protocol.json");

    // Two processes open the prefix on the old record and replace at once: each finds the
    // form by a search, as before; one of them records it.
    let (x, y) = (w.counted(), w.counted());
    let nx = w.node(Arc::clone(&x), "x").await;
    let ny = w.node(Arc::clone(&y), "y").await;
    tokio::join!(take_and_release(&nx, &a), take_and_release(&ny, &b));
    assert!(
        x.counts().deletes + y.counts().deletes >= 1,
        "a search was made"
    );
    assert_eq!(
        w.hook.landed("_cairn/protocol.json") - records,
        1,
        "the record was completed exactly once"
    );
    let now = w.record().await;
    assert_eq!(now["if_match_form"], "unquoted");
    for field in [
        "strategy",
        "created_by",
        "created_at",
        "gc_min_age_ms",
        "format",
    ] {
        assert_eq!(now[field], old[field], "{field} is as it was");
    }
    // Both keep coordinating on it (their watches follow the completed record).
    take_and_release(&nx, &b).await;
    take_and_release(&ny, &a).await;

    // The next process replaces at the floor.
    let counted = w.counted();
    let c = w.node(Arc::clone(&counted), "cli").await;
    take_and_release(&c, &a).await;
    let d = counted.counts();
    // As above: 4, and the clock check of the drawn token.
    assert_eq!((d.requests(), d.deletes), (6, 0), "{d:?}");
    assert_eq!(
        w.hook.landed("_cairn/protocol.json") - records,
        1,
        "and nobody completes it again"
    );
}

// ---------------------------------------------------------------------------------------
// Real processes on the real Ceph RGW, counted on the wire.
// ---------------------------------------------------------------------------------------

/// A TCP proxy to `target` that logs the request line of every request that goes through
/// it (`PUT /bucket/key HTTP/1.1`). HTTP/1.1 clients do not pipeline, so a request starts a
/// chunk of its own.
fn counting_proxy(target: &str) -> (String, Arc<Mutex<Vec<String>>>) {
    let target = target.trim_start_matches("http://").to_string();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let requests = Arc::clone(&log);
    std::thread::spawn(move || {
        while let Ok((client, _)) = listener.accept() {
            let Ok(upstream) = TcpStream::connect(&target) else {
                continue;
            };
            let (mut from, mut to) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            let log = Arc::clone(&requests);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n) = from.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let chunk = &buf[..n];
                    let methods: [&[u8]; 5] =
                        [b"GET /", b"PUT /", b"HEAD /", b"DELETE /", b"POST /"];
                    if methods.iter().any(|m| chunk.starts_with(m)) {
                        let line = chunk.split(|&b| b == b'\r').next().unwrap_or_default();
                        log.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(line).into_owned());
                    }
                    if to.write_all(chunk).is_err() {
                        break;
                    }
                }
                let _ = to.shutdown(std::net::Shutdown::Write);
            });
            let (mut from, mut to) = (upstream, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from, &mut to);
                let _ = to.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (addr, log)
}

/// Runs `cairn --store STORE ARGS` through the proxy; returns the requests it sent.
fn counted_run(
    proxy: &(String, Arc<Mutex<Vec<String>>>),
    store: &str,
    args: &[&str],
) -> Vec<String> {
    proxy.1.lock().unwrap().clear();
    let dir = tempfile::tempdir().unwrap();
    let out = Run(cairn(dir.path())
        .env("AWS_ENDPOINT_URL", &proxy.0)
        .args(["--store", store, "--node", "counted"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap());
    assert_eq!(out.code(), Some(0), "{args:?}: {}", out.stderr());
    std::mem::take(&mut *proxy.1.lock().unwrap())
}

#[test]
fn on_rgw_a_cli_call_costs_the_floor_and_sends_no_delete_and_an_old_record_is_completed_once() {
    if s3_skipped() {
        return;
    }
    let endpoint = Backend::Rgw.endpoint().unwrap();
    let proxy = counting_proxy(&endpoint);
    let prefix = format!("form-{}", uuid::Uuid::new_v4());
    let store = format!("s3://{}/{prefix}", common::BUCKET);
    let lock_run = ["lock", "run", "L", "--", "true"];
    let turn_run = ["turn", "run", "T", "--every", "1h", "--", "true"];

    // The first command probes the prefix and records its protocol; the turn's first run is
    // due.
    counted_run(&proxy, &store, &lock_run);
    counted_run(&proxy, &store, &turn_run);

    let floor = |what: &str, sent: &[String], n: usize| {
        assert_eq!(sent.len(), n, "{what}: {sent:#?}");
        assert!(
            sent.iter().all(|r| !r.starts_with("DELETE")
                && !r.starts_with("POST")
                && !r.contains("_probe")),
            "{what}: {sent:#?}"
        );
    };
    // The record, the lock, the clock check its drawn token takes (a PUT and a HEAD of
    // `_cairn/clock.json`; a prefix of format 3), acquire, release.
    floor("lock run", &counted_run(&proxy, &store, &lock_run), 6);
    floor(
        "turn run, not due",
        &counted_run(&proxy, &store, &turn_run),
        2,
    );

    // A record of an earlier build, without the form: read as before (the first replace
    // searches) and completed once; then the floor again.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = common::s3_store(&endpoint);
    let path = Path::from(format!("{prefix}/_cairn/protocol.json"));
    let mut record: serde_json::Value = rt.block_on(async {
        let bytes = s3.get(&path).await.unwrap().bytes().await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    });
    assert_eq!(record["if_match_form"], "unquoted", "{record:#}");
    record.as_object_mut().unwrap().remove("if_match_form");
    rt.block_on(s3.put(&path, serde_json::to_vec(&record).unwrap().into()))
        .unwrap();

    let sent = counted_run(&proxy, &store, &lock_run);
    assert!(sent.iter().any(|r| r.contains("_probe")), "{sent:#?}");
    let completions = sent
        .iter()
        .filter(|r| r.starts_with("PUT") && r.contains("_cairn/protocol.json"))
        .count();
    assert_eq!(completions, 1, "{sent:#?}");
    let completed: serde_json::Value = rt.block_on(async {
        let bytes = s3.get(&path).await.unwrap().bytes().await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    });
    assert_eq!(completed["if_match_form"], "unquoted", "{completed:#}");
    assert_eq!(completed["strategy"], record["strategy"]);

    floor("lock run", &counted_run(&proxy, &store, &lock_run), 6);
    floor(
        "turn run, not due",
        &counted_run(&proxy, &store, &turn_run),
        2,
    );
}
