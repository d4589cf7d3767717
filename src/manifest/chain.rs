//! The version chain strategy: one immutable object a version, `…/v/<version:020>.json`,
//! written with create-if-absent, then verified.
//!
//! **Why the verify.** Create-if-absent makes each version number a single winner. But a
//! writer that stayed stale long enough for garbage collection to delete the version after
//! the one it read could re-create that number below newer versions. So after a create,
//! the writer lists the versions after its own: if there is a newer one, it reads the next
//! version; if that one names our write as its predecessor, another writer built on ours
//! and our transition stands, otherwise ours is an orphan below the head: a conflict.
//! Orphans are never the newest version, so readers never see them, and collection removes
//! them.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{debug, warn};

use super::envelope::{decode, encode};
use super::{listed_number, Manifest, Revalidated, Snapshot, Written};
use crate::clock::sub_saturating;
use crate::error::{Error, Result};
use crate::store::{keys, CreateOutcome, Listed, WriteId};

/// Version numbers stored, ascending, from a listing of the chain folder. A version key
/// whose number is above `u64::MAX` is [`Error::Corrupt`].
fn versions(listed: &[Listed]) -> Result<Vec<(u64, &Listed)>> {
    let mut v = Vec::with_capacity(listed.len());
    for l in listed {
        if let Some(n) = listed_number(&l.key)? {
            v.push((n, l));
        }
    }
    v.sort_by_key(|(n, _)| *n);
    Ok(v)
}

pub(super) async fn load<T: DeserializeOwned>(m: &Manifest<T>) -> Result<Option<Snapshot<T>>> {
    let folder = keys::chain_folder(&m.base);
    // The head can vanish between the listing and the read only if collection removed it,
    // which it does only to versions with newer ones: list again.
    for _ in 0..3 {
        let listed = m.ctx.store.list(&folder).await?;
        let Some(&(head, _)) = versions(&listed)?.last() else {
            return Ok(None);
        };
        if let Some(s) = read_version(m, head).await? {
            return Ok(Some(s));
        }
    }
    Err(Error::Unavailable {
        operation: "read",
        key: folder.to_string(),
        source: object_store::Error::Generic {
            store: "cairn",
            source: "the newest version kept disappearing between listing and reading".into(),
        },
    })
}

async fn read_version<T: DeserializeOwned>(
    m: &Manifest<T>,
    version: u64,
) -> Result<Option<Snapshot<T>>> {
    let key = keys::chain_version(&m.base, version);
    let Some(obj) = m.ctx.store.read(&key).await? else {
        return Ok(None);
    };
    let s: Snapshot<T> = decode(m.kind, &obj)?;
    if s.version != version {
        return Err(Error::Corrupt {
            key: key.to_string(),
            reason: format!(
                "holds version {} at the key of version {version}",
                s.version
            ),
        });
    }
    Ok(Some(s))
}

pub(super) async fn write<T: Serialize + DeserializeOwned + Clone>(
    m: &Manifest<T>,
    next: Snapshot<T>,
) -> Result<Written<T>> {
    let key = keys::chain_version(&m.base, next.version);
    let bytes = encode(m.kind, &next)?;
    let id = WriteId(next.write_id.clone());
    match m.ctx.store.create(&key, bytes, &id).await? {
        // The version that beat us may itself be far behind the head: a writer that walked
        // up one version per attempt would need as many attempts as it is behind. Load the
        // head instead (a listing and a read).
        CreateOutcome::Exists { current, .. } => {
            if let Some(obj) = current {
                // Still check it: a corrupt object in our slot is reported, not skipped.
                decode::<T>(m.kind, &obj)?;
            }
            return Ok(Written::Conflict(load(m).await?));
        }
        CreateOutcome::Created { .. } => {}
    }
    // Verify: is there a newer version, and was it built on ours?
    let newer = m
        .ctx
        .store
        .list_after(&keys::chain_folder(&m.base), &key)
        .await?;
    if let Some(&(after, _)) = versions(&newer)?.first() {
        let successor = read_version(m, after).await?;
        // `after` is above our version, so ours is below u64::MAX; checked all the same.
        let built_on_ours = next.version.checked_add(1) == Some(after)
            && successor
                .as_ref()
                .is_some_and(|s| s.previous_write_id.as_deref() == Some(next.write_id.as_str()));
        if !built_on_ours {
            warn!(key = %key, newer = after, "stale write landed below newer versions; treating as a conflict");
            return Ok(Written::Conflict(load(m).await?));
        }
        debug!(key = %key, "our version was already built upon");
    }
    let every = m.ctx.options.gc_every.max(1);
    if next.version % every == 0 {
        if let Err(e) = collect_garbage(m).await {
            debug!(key = %m.base, error = %e, "garbage collection failed; will try again later");
        }
    }
    Ok(Written::Written(next))
}

pub(super) async fn revalidate<T: DeserializeOwned>(
    m: &Manifest<T>,
    known: &Snapshot<T>,
) -> Result<Revalidated<T>> {
    let folder = keys::chain_folder(&m.base);
    let after = keys::chain_version(&m.base, known.version);
    let newer = m.ctx.store.list_after(&folder, &after).await?;
    if versions(&newer)?.is_empty() {
        return Ok(Revalidated::Unchanged);
    }
    Ok(match load(m).await? {
        Some(s) => Revalidated::Changed(s),
        None => Revalidated::Missing,
    })
}

pub(super) async fn collect_garbage<T>(m: &Manifest<T>) -> Result<usize> {
    let opts = &m.ctx.options;
    let listed = m.ctx.store.list(&keys::chain_folder(&m.base)).await?;
    let all = versions(&listed)?;
    let keep = opts.gc_keep.max(1);
    if all.len() <= keep {
        return Ok(0);
    }
    let cutoff = sub_saturating(m.ctx.clock.now(), opts.gc_min_age);
    let mut deleted = 0;
    for (_, l) in &all[..all.len() - keep] {
        if l.last_modified < cutoff {
            m.ctx.store.delete(&l.key).await?;
            deleted += 1;
        }
    }
    debug!(key = %m.base, deleted, "collected old versions");
    Ok(deleted)
}

pub(super) async fn history<T: DeserializeOwned>(m: &Manifest<T>) -> Result<Vec<Snapshot<T>>> {
    let listed = m.ctx.store.list(&keys::chain_folder(&m.base)).await?;
    let mut out = Vec::new();
    for (n, _) in versions(&listed)? {
        if let Some(s) = read_version(m, n).await? {
            out.push(s);
        }
    }
    Ok(out)
}
