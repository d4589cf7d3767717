//! Requests per operation and latency of cairn's operations, next to the raw object_store
//! calls they are built from, measured in the same run on the same store.
//!
//! ```sh
//! cargo bench --bench ops                        # memory and local filesystem
//! localstack/start.sh && cargo bench --bench ops -- localstack moto
//! cargo bench --bench ops -- memory --iterations 1000
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn::cache::CacheOptions;
use cairn::lease::{Acquired, LeaseOptions};
use cairn::manifest::{Change, Strategy, Written};
use cairn::store::fault::{Counts, FaultStore};
use cairn::store::keys::{self, Family};
use cairn::turn::{Claim, ClaimedTurn, TurnOptions};
use cairn::{Cairn, Name, StrategyChoice};
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path;
use object_store::{
    ClientOptions, GetOptions, ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion,
};

struct Row {
    op: String,
    requests: f64,
    p50: Duration,
    p99: Duration,
    baseline: Option<Duration>,
}

struct Bench {
    counted: Arc<FaultStore>,
    rows: Vec<Row>,
    iterations: usize,
}

impl Bench {
    /// Runs `f` `iterations` times, recording latency and requests per call.
    async fn measure<F, Fut>(&mut self, op: &str, baseline: Option<&str>, f: F)
    where
        F: FnMut(usize) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        self.measure_after(op, baseline, |_| async {}, f).await
    }

    /// Like `measure`, running `setup` before each call, outside the timer and the count.
    async fn measure_after<S, SFut, F, Fut>(
        &mut self,
        op: &str,
        baseline: Option<&str>,
        mut setup: S,
        mut f: F,
    ) where
        S: FnMut(usize) -> SFut,
        SFut: std::future::Future<Output = ()>,
        F: FnMut(usize) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut requests = 0;
        let mut times = Vec::with_capacity(self.iterations);
        for i in 0..self.iterations {
            setup(i).await;
            let before: Counts = self.counted.counts();
            let t = Instant::now();
            f(i).await;
            times.push(t.elapsed());
            requests += self.counted.counts().since(&before).requests();
        }
        times.sort();
        let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
        let baseline = baseline.and_then(|b| self.rows.iter().find(|r| r.op == b).map(|r| r.p50));
        self.rows.push(Row {
            op: op.to_string(),
            requests: requests as f64 / self.iterations as f64,
            p50: pct(0.5),
            p99: pct(0.99),
            baseline,
        });
    }

    fn print(&self, title: &str) {
        println!("\n### {title} ({} iterations)\n", self.iterations);
        println!("| operation | requests/op | p50 | p99 | p50 vs raw |");
        println!("| --- | ---: | ---: | ---: | ---: |");
        for r in &self.rows {
            let vs = r
                .baseline
                .map(|b| format!("{:.2}×", r.p50.as_secs_f64() / b.as_secs_f64().max(1e-9)))
                .unwrap_or_else(|| "—".into());
            println!(
                "| {} | {:.2} | {:.3} ms | {:.3} ms | {} |",
                r.op,
                r.requests,
                r.p50.as_secs_f64() * 1e3,
                r.p99.as_secs_f64() * 1e3,
                vs
            );
        }
    }
}

async fn raw_ops(b: &mut Bench, prefix: &str) {
    let store: Arc<dyn ObjectStore> = b.counted.clone();
    let body = PutPayload::from_static(br#"{"write_id":"x","body":{"holder":"node-1"}}"#);
    let p = |i: usize| Path::from(format!("{prefix}/raw/{i}"));
    let (s, bd) = (store.clone(), body.clone());
    b.measure("raw create (If-None-Match)", None, |i| {
        let (s, bd) = (s.clone(), bd.clone());
        async move {
            s.put_opts(&p(i), bd, PutOptions::from(PutMode::Create))
                .await
                .unwrap();
        }
    })
    .await;
    let one = Path::from(format!("{prefix}/raw/replaced"));
    let mut etag = store
        .put_opts(&one, body.clone(), PutMode::Create.into())
        .await
        .unwrap()
        .e_tag;
    let supports_update = store
        .put_opts(
            &one,
            body.clone(),
            PutMode::Update(UpdateVersion {
                e_tag: etag.clone(),
                version: None,
            })
            .into(),
        )
        .await
        .map(|r| etag = r.e_tag)
        .is_ok();
    if supports_update {
        let etag = Arc::new(std::sync::Mutex::new(etag));
        let (s, one2) = (store.clone(), one.clone());
        b.measure("raw replace (If-Match)", None, |_| {
            let (s, one, bd, etag) = (s.clone(), one2.clone(), bd.clone(), etag.clone());
            async move {
                let cur = etag.lock().unwrap().clone();
                let r = s
                    .put_opts(
                        &one,
                        bd,
                        PutMode::Update(UpdateVersion {
                            e_tag: cur,
                            version: None,
                        })
                        .into(),
                    )
                    .await
                    .unwrap();
                *etag.lock().unwrap() = r.e_tag;
            }
        })
        .await;
    }
    let (s, one2) = (store.clone(), one.clone());
    b.measure("raw get", None, |_| {
        let (s, one) = (s.clone(), one2.clone());
        async move {
            s.get_opts(&one, GetOptions::default())
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
        }
    })
    .await;
    let etag = store
        .get_opts(&one, GetOptions::default())
        .await
        .unwrap()
        .meta
        .e_tag;
    let (s, one2) = (store.clone(), one.clone());
    b.measure("raw conditional get (304)", None, |_| {
        let (s, one, etag) = (s.clone(), one2.clone(), etag.clone());
        async move {
            let r = s
                .get_opts(&one, GetOptions::new().with_if_none_match(etag))
                .await;
            assert!(
                matches!(r, Err(object_store::Error::NotModified { .. })),
                "{r:?}"
            );
        }
    })
    .await;
    let (s, pre) = (store.clone(), Path::from(format!("{prefix}/raw")));
    b.measure("raw list (small folder)", None, |_| {
        let (s, pre) = (s.clone(), pre.clone());
        async move {
            use futures::StreamExt;
            let _ = s.list(Some(&pre)).take(1).collect::<Vec<_>>().await;
        }
    })
    .await;
}

async fn cairn_ops(b: &mut Bench, prefix: &str, strategy: Strategy) {
    let c = Cairn::builder(b.counted.clone())
        .prefix(prefix)
        .node("bench")
        .unwrap()
        .strategy(StrategyChoice::Fixed(strategy))
        .build()
        .await
        .unwrap();
    let name = |i: usize| Name::new(format!("m{i}")).unwrap();
    let raw_write = match strategy {
        Strategy::EtagCas => "raw replace (If-Match)",
        Strategy::VersionChain => "raw create (If-None-Match)",
    };
    let cc = c.clone();
    b.measure(
        &format!("[{strategy}] manifest create"),
        Some("raw create (If-None-Match)"),
        |i| {
            let m = cc.manifest::<u64>("bench", keys::manifest(Family::Scratch, &name(i)));
            async move {
                assert!(matches!(m.create(1).await.unwrap(), Written::Written(_)));
            }
        },
    )
    .await;
    let m = c.manifest::<u64>("bench", keys::manifest(Family::Scratch, &name(usize::MAX)));
    let Written::Written(first) = m.create(0).await.unwrap() else {
        panic!()
    };
    let cur = Arc::new(std::sync::Mutex::new(first));
    let (m2, cur2) = (m.clone(), cur.clone());
    b.measure(
        &format!("[{strategy}] manifest write (known version)"),
        Some(raw_write),
        |_| {
            let (m, cur) = (m2.clone(), cur2.clone());
            async move {
                let known = cur.lock().unwrap().clone();
                let Written::Written(s) = m.write(Some(&known), known.body + 1).await.unwrap()
                else {
                    panic!("uncontended write conflicted")
                };
                *cur.lock().unwrap() = s;
            }
        },
    )
    .await;
    let m2 = m.clone();
    b.measure(
        &format!("[{strategy}] manifest update (load + write)"),
        Some(raw_write),
        |_| {
            let m = m2.clone();
            async move {
                m.update(|c| Change::Write(c.map_or(0, |s| s.body) + 1))
                    .await
                    .unwrap();
            }
        },
    )
    .await;
    let known = m.load().await.unwrap().unwrap();
    let m2 = m.clone();
    b.measure(
        &format!("[{strategy}] revalidate unchanged"),
        Some("raw conditional get (304)"),
        |_| {
            let (m, k) = (m2.clone(), known.clone());
            async move {
                m.revalidate(&k).await.unwrap();
            }
        },
    )
    .await;
    let locks = c.locks(LeaseOptions::default()).unwrap();
    let (l2, lock_name) = (locks.clone(), |i: usize| {
        Name::new(format!("l{i}")).unwrap()
    });
    let taken: Arc<std::sync::Mutex<Vec<cairn::Lease>>> = Arc::default();
    let t2 = taken.clone();
    b.measure(
        &format!("[{strategy}] lock acquire, new lock"),
        Some("raw create (If-None-Match)"),
        |i| {
            let (l, t) = (l2.clone(), t2.clone());
            async move {
                let Acquired::Acquired(lease) = l.try_acquire(&lock_name(i)).await.unwrap() else {
                    panic!()
                };
                t.lock().unwrap().push(lease);
            }
        },
    )
    .await;
    // Release them all before measuring on, so their renewals do not count against later ops.
    let all = std::mem::take(&mut *taken.lock().unwrap());
    for l in all {
        l.release().await.unwrap();
    }
    // One lock acquired and released over and over: the client remembers the tombstone it
    // wrote, so a re-acquire is one conditional write.
    let hot = Name::new("hot").unwrap();
    let held: Arc<tokio::sync::Mutex<Option<cairn::Lease>>> = Arc::default();
    let acquire = |locks: cairn::Locks,
                   held: Arc<tokio::sync::Mutex<Option<cairn::Lease>>>,
                   hot: Name| async move {
        let Acquired::Acquired(lease) = locks.try_acquire(&hot).await.unwrap() else {
            panic!("busy")
        };
        *held.lock().await = Some(lease);
    };
    let release = |held: Arc<tokio::sync::Mutex<Option<cairn::Lease>>>| async move {
        if let Some(l) = held.lock().await.take() {
            l.release().await.unwrap();
        }
    };
    acquire(locks.clone(), held.clone(), hot.clone()).await;
    release(held.clone()).await;
    b.measure_after(
        &format!("[{strategy}] lock re-acquire (released lock)"),
        Some(raw_write),
        |_| release(held.clone()),
        |_| acquire(locks.clone(), held.clone(), hot.clone()),
    )
    .await;
    b.measure_after(
        &format!("[{strategy}] lock release"),
        Some(raw_write),
        |_| {
            let (l, h, n) = (locks.clone(), held.clone(), hot.clone());
            async move {
                if h.lock().await.is_none() {
                    acquire(l, h, n).await;
                }
            }
        },
        |_| release(held.clone()),
    )
    .await;
    turn_and_view_ops(b, &c, strategy, raw_write).await;
}

/// Turns (one-shot claims, outcomes, the not-due check) and a cached view's revalidation.
async fn turn_and_view_ops(b: &mut Bench, c: &Cairn, strategy: Strategy, raw_write: &str) {
    // A handle whose wall clock leaps a day at every reading: every turn is due at once.
    let leaping = Cairn::builder(Arc::clone(c.store().object_store()))
        .prefix(c.store().root().to_string())
        .node("bench")
        .unwrap()
        .clock(Arc::new(Leaping::default()))
        .build()
        .await
        .unwrap();
    let due = leaping.turns(TurnOptions {
        window: Duration::from_secs(1),
        jitter: Duration::ZERO,
        adopt_stored: false,
    });
    let turn = Name::new("sweep").unwrap();
    let claimed: Arc<tokio::sync::Mutex<Option<ClaimedTurn>>> = Arc::default();
    let (t2, n2, c2) = (due.clone(), turn.clone(), claimed.clone());
    b.measure(
        &format!("[{strategy}] turn claim, due (read + claim)"),
        Some(raw_write),
        move |_| {
            let (t, n, c) = (t2.clone(), n2.clone(), c2.clone());
            async move {
                let Claim::Won(w) = t.try_claim(&n).await.unwrap() else {
                    panic!("a leaping clock finds every turn due")
                };
                *c.lock().await = Some(*w);
            }
        },
    )
    .await;
    let (t2, n2, c2, c3) = (due.clone(), turn.clone(), claimed.clone(), claimed.clone());
    b.measure_after(
        &format!("[{strategy}] turn finish (record outcome)"),
        Some(raw_write),
        move |_| {
            let (t, n, c) = (t2.clone(), n2.clone(), c2.clone());
            async move {
                if let Claim::Won(w) = t.try_claim(&n).await.unwrap() {
                    *c.lock().await = Some(*w);
                }
            }
        },
        move |_| {
            let c = c3.clone();
            async move {
                let w = c.lock().await.take().expect("claimed in setup");
                w.finish(Ok(None)).await.unwrap();
            }
        },
    )
    .await;
    let not_due = c.turns(TurnOptions {
        adopt_stored: true,
        ..TurnOptions::default()
    });
    b.measure(
        &format!("[{strategy}] turn check, not due"),
        Some("raw get"),
        |_| {
            let (t, n) = (not_due.clone(), turn.clone());
            async move {
                assert!(matches!(
                    t.try_claim(&n).await.unwrap(),
                    Claim::NotDue { .. }
                ));
            }
        },
    )
    .await;
    let streams = c.streams();
    let s = Name::new("clicks").unwrap();
    let _ = streams.create(&s, serde_json::json!({})).await.unwrap();
    let view = streams.view(CacheOptions {
        fresh: Duration::ZERO,
        ..CacheOptions::for_streams()
    });
    view.get(&s).await.unwrap();
    b.measure(
        &format!("[{strategy}] cached view get, expired (revalidate)"),
        Some("raw conditional get (304)"),
        |_| {
            let (v, s) = (&view, s.clone());
            async move {
                assert!(v.get(&s).await.unwrap().items.is_some());
            }
        },
    )
    .await;
    let fresh = streams.view(CacheOptions::for_streams());
    fresh.get(&s).await.unwrap();
    b.measure(
        &format!("[{strategy}] cached view get, fresh"),
        None,
        |_| {
            let (v, s) = (&fresh, s.clone());
            async move {
                assert!(v.get(&s).await.unwrap().items.is_some());
            }
        },
    )
    .await;
}

fn s3(endpoint: &str) -> Arc<dyn ObjectStore> {
    Arc::new(
        AmazonS3Builder::new()
            .with_bucket_name("cairn-test")
            .with_region("us-east-1")
            .with_endpoint(endpoint)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_virtual_hosted_style_request(false)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_client_options(ClientOptions::new().with_allow_http(true))
            .build()
            .unwrap(),
    )
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut iterations = None;
    let mut backends = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--iterations" => iterations = it.next().and_then(|n| n.parse().ok()),
            b => backends.push(b.to_string()),
        }
    }
    if backends.is_empty() {
        backends = vec!["memory".into(), "fs".into()];
    }
    let tmp = tempfile::tempdir().unwrap();
    for backend in backends {
        let (store, strategies, default_iters): (Arc<dyn ObjectStore>, Vec<Strategy>, usize) =
            match backend.as_str() {
                "memory" => (
                    Arc::new(object_store::memory::InMemory::new()),
                    vec![Strategy::EtagCas, Strategy::VersionChain],
                    2000,
                ),
                "fs" => (
                    Arc::new(
                        object_store::local::LocalFileSystem::new_with_prefix(tmp.path()).unwrap(),
                    ),
                    vec![Strategy::VersionChain],
                    500,
                ),
                "localstack" => (
                    s3("http://127.0.0.1:4566"),
                    vec![Strategy::EtagCas, Strategy::VersionChain],
                    100,
                ),
                "moto" => (
                    s3("http://127.0.0.1:5000"),
                    vec![Strategy::EtagCas, Strategy::VersionChain],
                    50,
                ),
                other => panic!("unknown backend {other:?}: memory, fs, localstack or moto"),
            };
        let mut b = Bench {
            counted: Arc::new(FaultStore::new(store, 0)),
            rows: Vec::new(),
            iterations: iterations.unwrap_or(default_iters),
        };
        let prefix = format!("bench-{}", uuid::Uuid::new_v4());
        raw_ops(&mut b, &prefix).await;
        for s in strategies {
            cairn_ops(&mut b, &format!("{prefix}/{s}"), s).await;
        }
        b.print(&backend);
    }
}

/// A wall clock a day further on at every reading.
#[derive(Debug, Default)]
struct Leaping(std::sync::atomic::AtomicI64);

impl cairn::Clock for Leaping {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        chrono::Utc::now() + chrono::Duration::days(n + 1)
    }
}
