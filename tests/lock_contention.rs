//! Real concurrency: many tasks contend for one lock on in-memory and LocalStack, and a
//! checker proves that no two critical sections overlap and that fencing tokens rise in
//! the order holders entered.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn::lock::{Acquire, LockOptions};
use cairn::manifest::Strategy;
use cairn::{FencingToken, Name};
use common::{namespace, Backend};

async fn contend(backend: Backend, strategy: Strategy, tasks: usize, rounds: usize) {
    let Some(ns) = namespace(backend).await else {
        return;
    };
    let occupied = Arc::new(AtomicBool::new(false));
    let entered = Arc::new(Mutex::new(Vec::<(FencingToken, String)>::new()));
    let mut handles = Vec::new();
    for t in 0..tasks {
        let node = format!("task-{t}");
        let locks = ns
            .cairn(&node, strategy)
            .await
            .locks(LockOptions::with_ttl(Duration::from_secs(5)))
            .unwrap();
        let (occupied, entered) = (Arc::clone(&occupied), Arc::clone(&entered));
        handles.push(tokio::spawn(async move {
            let name = Name::new("contended").unwrap();
            for _ in 0..rounds {
                let lease = match locks
                    .acquire(&name, Some(Duration::from_secs(120)))
                    .await
                    .unwrap()
                {
                    Acquire::Held(l) => l,
                    Acquire::Busy(b) => panic!("{node}: waited 120 s behind {b:?}"),
                };
                assert!(
                    !occupied.swap(true, Ordering::SeqCst),
                    "{node} entered while another holder was inside"
                );
                entered
                    .lock()
                    .unwrap()
                    .push((lease.fencing_token(), node.clone()));
                tokio::time::sleep(Duration::from_millis(20)).await;
                assert!(
                    lease.is_held(),
                    "{node} lost its lease inside the critical section"
                );
                occupied.store(false, Ordering::SeqCst);
                lease.release().await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let entered = entered.lock().unwrap();
    assert_eq!(entered.len(), tasks * rounds);
    for w in entered.windows(2) {
        assert!(w[0].0 < w[1].0, "tokens must rise in enter order: {w:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_etag_cas_many_tasks_never_overlap() {
    contend(Backend::Memory, Strategy::EtagCas, 16, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_version_chain_many_tasks_never_overlap() {
    contend(Backend::Memory, Strategy::VersionChain, 16, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fs_version_chain_many_tasks_never_overlap() {
    contend(Backend::Fs, Strategy::VersionChain, 8, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn localstack_etag_cas_many_tasks_never_overlap() {
    contend(Backend::LocalStack, Strategy::EtagCas, 8, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn localstack_version_chain_many_tasks_never_overlap() {
    contend(Backend::LocalStack, Strategy::VersionChain, 8, 3).await;
}
