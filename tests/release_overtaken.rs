//! A release whose tombstone landed but was answered with a refusal (a client that retries a
//! 5xx gets 412 for its own write), and that later holders wrote over before cairn read it
//! back, is a release, not a lost lease (issue #18, item 10): the command's work overlapped
//! nobody's, and cairn must not say it may have.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use cairn::lock::{Acquire, LockOptions, Locks};
use cairn::manifest::Strategy;
use cairn::store::fault::{Fault, FaultStore, Hook, Op, Rule};
use cairn::{Cairn, Error, Name, StrategyChoice};
use common::{namespace, Backend, Namespace};
use object_store::path::Path;
use object_store::PutResult;

/// Once armed, the next put that commits is overtaken before it is answered: node `b`
/// acquires the lock and releases it, then node `c` acquires it and holds it.
struct Overtake {
    armed: AtomicBool,
    others: OnceLock<(Locks, Locks)>,
    held: std::sync::Mutex<Vec<cairn::lock::HeldLock>>,
}

/// The hook the fault store runs: the shared [`Overtake`].
struct Hooked(Arc<Overtake>);

#[async_trait::async_trait]
impl Hook for Hooked {
    async fn committed(&self, _path: &Path, result: PutResult) -> object_store::Result<PutResult> {
        if self.0.armed.swap(false, Ordering::SeqCst) {
            let (b, c) = self.0.others.get().expect("set before arming");
            let name = Name::new("amb").unwrap();
            let Acquire::Held(lease) = b.try_acquire(&name).await.unwrap() else {
                panic!("our release landed: the lock is free for b");
            };
            lease.release().await.unwrap();
            let Acquire::Held(lease) = c.try_acquire(&name).await.unwrap() else {
                panic!("b released: the lock is free for c");
            };
            self.0.held.lock().unwrap().push(lease);
        }
        Ok(result)
    }
}

async fn node(
    ns: &Namespace,
    store: Arc<dyn object_store::ObjectStore>,
    id: &str,
    s: Strategy,
) -> Cairn {
    Cairn::builder(store)
        .prefix(ns.prefix.clone())
        .node(id)
        .unwrap()
        .strategy(StrategyChoice::Fixed(s))
        .build()
        .await
        .unwrap()
}

async fn release_overtaken_is_not_a_loss(backend: Backend, strategy: Strategy) {
    let Some(ns) = namespace(backend).await else {
        return;
    };
    let hook = Arc::new(Overtake {
        armed: AtomicBool::new(false),
        others: OnceLock::new(),
        held: std::sync::Mutex::new(Vec::new()),
    });
    let fault = Arc::new(FaultStore::with_hook(
        Arc::clone(&ns.store),
        1,
        Hooked(Arc::clone(&hook)),
    ));
    let a = node(&ns, fault.clone(), "a", strategy).await;
    let b = node(&ns, Arc::clone(&ns.store), "b", strategy).await;
    let c = node(&ns, Arc::clone(&ns.store), "c", strategy).await;
    let options = LockOptions::default();
    let _ = hook.others.set((
        b.locks(options.clone()).unwrap(),
        c.locks(options.clone()).unwrap(),
    ));
    let name = Name::new("amb").unwrap();
    let Acquire::Held(lease) = a.locks(options).unwrap().try_acquire(&name).await.unwrap() else {
        panic!("a acquires the free lock");
    };
    let token = lease.fencing_token();

    hook.armed.store(true, Ordering::SeqCst);
    fault.add(Rule::times(
        Op::Put,
        "locks/amb",
        Fault::CommitThenStatus(412),
        1,
    ));
    let released = lease.release().await;
    assert!(
        !hook.armed.load(Ordering::SeqCst),
        "{strategy:?}: the release was overtaken"
    );
    assert!(
        !matches!(released, Err(Error::LockLost { .. })),
        "{backend:?} {strategy:?}: a release that landed, then was overtaken by later \
         holders, was reported as a lost lease: {released:?}"
    );
    match strategy {
        // The version after ours is read under its own key: our tombstone.
        Strategy::VersionChain => assert!(released.is_ok(), "{strategy:?}: {released:?}"),
        // Only the newest version is visible: the outcome cannot be proven either way.
        _ => assert!(
            matches!(released, Err(Error::Ambiguous { .. })),
            "{strategy:?}: {released:?}"
        ),
    }
    let held = hook.held.lock().unwrap().pop().expect("c holds the lock");
    assert!(held.fencing_token() > token);
    held.release().await.unwrap();
}

#[tokio::test]
async fn release_overtaken_is_not_a_loss_on_memory_etag() {
    release_overtaken_is_not_a_loss(Backend::Memory, Strategy::EtagCas).await;
}

#[tokio::test]
async fn release_overtaken_is_not_a_loss_on_memory_chain() {
    release_overtaken_is_not_a_loss(Backend::Memory, Strategy::VersionChain).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_overtaken_is_not_a_loss_on_localstack_etag() {
    release_overtaken_is_not_a_loss(Backend::LocalStack, Strategy::EtagCas).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_overtaken_is_not_a_loss_on_localstack_chain() {
    release_overtaken_is_not_a_loss(Backend::LocalStack, Strategy::VersionChain).await;
}
