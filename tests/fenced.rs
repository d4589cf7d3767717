//! Fenced data (`cairn::fenced`): the embedder's objects, written only under a fencing
//! token no lower than any that has written them. On memory (both strategies), the local
//! filesystem and LocalStack, with racing writers checked by what the store ends with.

mod common;

use cairn::error::Error;
use cairn::fenced::{FencedValue, FencedWrite};
use cairn::manifest::Strategy;
use cairn::{Cairn, FencingToken, Name};
use common::Backend;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

fn t(n: u64) -> FencingToken {
    FencingToken(n)
}

async fn worlds() -> Vec<(common::Namespace, Strategy)> {
    let mut out = vec![
        (
            common::namespace(Backend::Memory).await.unwrap(),
            Strategy::EtagCas,
        ),
        (
            common::namespace(Backend::Memory).await.unwrap(),
            Strategy::VersionChain,
        ),
        (
            common::namespace(Backend::Fs).await.unwrap(),
            Strategy::VersionChain,
        ),
    ];
    if let Some(ns) = common::namespace(Backend::LocalStack).await {
        out.push((ns, Strategy::EtagCas));
    }
    out
}

fn written<T: std::fmt::Debug>(w: FencedWrite<T>) -> FencedValue<T> {
    match w {
        FencedWrite::Written(v) => v,
        other => panic!("expected a write, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lower_token_is_refused_once_a_higher_one_has_written() {
    for (ns, strategy) in worlds().await {
        let label = format!("{:?}/{strategy}", ns.backend);
        let a = ns
            .cairn("a", strategy)
            .await
            .fenced::<Vec<String>>(&name("segments"));
        let b = ns
            .cairn("b", strategy)
            .await
            .fenced::<Vec<String>>(&name("segments"));
        assert_eq!(a.read().await.unwrap(), None, "{label}");

        let v = written(a.write(t(5), vec!["a1".into()]).await.unwrap());
        assert_eq!((v.token, v.value.len()), (t(5), 1), "{label}");
        // The same token writes again (one holder, many writes).
        let v = written(
            a.update(t(5), |cur| {
                let mut s = cur.cloned().unwrap_or_default();
                s.push("a2".into());
                s
            })
            .await
            .unwrap(),
        );
        assert_eq!(v.value, vec!["a1", "a2"], "{label}");

        // A successor with a higher token writes; the old holder's late write is refused.
        written(b.write(t(7), vec!["b1".into()]).await.unwrap());
        let late = a.write(t(5), vec!["late".into()]).await.unwrap();
        assert_eq!(late, FencedWrite::Refused { token: t(7) }, "{label}");
        let stored = b.read().await.unwrap().unwrap();
        assert_eq!(
            (stored.token, stored.value),
            (t(7), vec!["b1".to_string()]),
            "{label}"
        );
        assert_eq!(stored.written_by, "b", "{label}");
    }
}

/// Many writers with different tokens race on one object, each writing once its token is
/// its own turn to try; whatever the interleaving, no write is accepted after a higher
/// token's, and the object ends under the highest token that wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_never_store_a_token_below_one_already_stored() {
    for (ns, strategy) in worlds().await {
        let label = format!("{:?}/{strategy}", ns.backend);
        let mut tasks = Vec::new();
        for i in 0..12u64 {
            let c: Cairn = ns.cairn(&format!("n{i}"), strategy).await;
            let token = t(100 + (i * 7) % 12);
            tasks.push(tokio::spawn(async move {
                let f = c.fenced::<u64>(&name("shared"));
                let mut accepted = Vec::new();
                for round in 0..3u64 {
                    match f.write(token, token.0 * 10 + round).await {
                        Ok(FencedWrite::Written(v)) => accepted.push((v.version, v.token)),
                        Ok(FencedWrite::Refused { token: higher }) => {
                            assert!(higher > token, "refused by {higher} <= {token}");
                            break;
                        }
                        // Heavy contention may exhaust the retries; that writes nothing.
                        Err(Error::Contention { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                accepted
            }));
        }
        let mut accepted: Vec<(u64, FencingToken)> = Vec::new();
        for t in tasks {
            accepted.extend(t.await.unwrap());
        }
        accepted.sort();
        // In version order, the tokens of accepted writes never go down.
        for w in accepted.windows(2) {
            assert!(w[1].1 >= w[0].1, "{label}: {w:?} in {accepted:?}");
        }
        let highest = accepted.iter().map(|a| a.1).max().unwrap();
        let c = ns.cairn("reader", strategy).await;
        let stored = c
            .fenced::<u64>(&name("shared"))
            .read()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.token, highest, "{label}");
        assert_eq!(stored.version, accepted.last().unwrap().0, "{label}");
    }
}

/// A lifecycle rule deletes the object: the handle that saw token 7 refuses to store token
/// 5 onto the empty key, naming the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_refuses_a_lower_token_after_the_object_vanished() {
    for (ns, strategy) in worlds().await {
        let label = format!("{:?}/{strategy}", ns.backend);
        let c = ns.cairn("a", strategy).await;
        let f = c.fenced::<u64>(&name("v"));
        written(f.write(t(7), 1).await.unwrap());
        let under = Path::from(format!("{}/app/v", ns.prefix));
        let listed: Vec<_> = ns.store.list(Some(&under)).try_collect().await.unwrap();
        assert!(!listed.is_empty(), "{label}");
        for o in listed {
            ns.store.delete(&o.location).await.unwrap();
        }
        match f.write(t(5), 2).await {
            Err(Error::RecordVanished { key, seen, stored }) => {
                assert!(key.contains("app/v"), "{label}: {key}");
                assert_eq!((seen, stored), (7, None), "{label}");
            }
            // The version chain may still serve the head it knew (fresh knowledge, see
            // `manifest::chain`): refused by the token it shows, which is as safe.
            Ok(FencedWrite::Refused { token }) if strategy == Strategy::VersionChain => {
                assert_eq!(token, t(7), "{label}")
            }
            other => panic!("{label}: {other:?}"),
        }
        // A token at least as high as what it saw writes again.
        written(f.write(t(7), 3).await.unwrap());
    }
}

/// An object at the key that is not a fenced value is reported, and never overwritten.
#[tokio::test]
async fn an_unreadable_object_is_reported_and_left_alone() {
    let ns = common::namespace(Backend::Memory).await.unwrap();
    // The prefix is in use first: an object under `app/` is a coordination object, and one
    // planted on a prefix without a protocol record makes it refuse to open.
    let c = ns.cairn("a", Strategy::EtagCas).await;
    let key = Path::from(format!("{}/app/bad/manifest.json", ns.prefix));
    ns.store
        .put(&key, PutPayload::from_static(b"{not json"))
        .await
        .unwrap();
    let f = c.fenced::<u64>(&name("bad"));
    let err = f.write(t(9), 1).await.unwrap_err();
    assert_eq!(err.kind(), "corrupt", "{err}");
    let after = ns.store.get(&key).await.unwrap().bytes().await.unwrap();
    assert_eq!(&after[..], b"{not json");
}
