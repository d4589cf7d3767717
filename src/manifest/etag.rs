//! The etag CAS strategy: one object, replaced with `If-Match`.

use tracing::debug;

use super::envelope::{decode_raw, RawBody, Seen};
use super::listing::Found;
use super::protocol::{Call, Draft, Header, Protocol, Wrote};
use super::{RawManifest, Revalidated, Snapshot, Strategy};
use crate::error::{Error, Result};
use crate::store::{keys, CreateOutcome, Key, ReadIfChanged, ReplaceOutcome, WriteId};

/// The etag CAS strategy. It keeps nothing between calls.
#[derive(Debug)]
pub(super) struct EtagCas;

impl Protocol for EtagCas {
    fn strategy(&self) -> Strategy {
        Strategy::EtagCas
    }

    fn load<'a>(&'a self, m: &'a RawManifest) -> Call<'a, Option<Snapshot<RawBody>>> {
        Box::pin(load(m))
    }

    fn write<'a>(&'a self, m: &'a RawManifest, next: Draft<'a>) -> Call<'a, Wrote> {
        Box::pin(write(m, next))
    }

    fn revalidate<'a>(
        &'a self,
        m: &'a RawManifest,
        known: Header<'a>,
    ) -> Call<'a, Revalidated<RawBody>> {
        Box::pin(revalidate(m, known))
    }

    /// One object, which is the newest version: nothing to collect.
    fn collect<'a>(&'a self, _: &'a RawManifest, _: usize, _: bool) -> Call<'a, Vec<Key>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// The one object, whatever version it holds (the caller has just read it).
    fn keys_up_to<'a>(&'a self, m: &'a RawManifest, _: u64) -> Call<'a, Option<Vec<Key>>> {
        Box::pin(async { Ok(Some(vec![keys::etag_object(&m.base)])) })
    }

    fn forget(&self, _: &RawManifest) {}

    /// A GET of the listed object (the manifest's one object).
    fn read_listed<'a>(
        &'a self,
        m: &'a RawManifest,
        found: &'a Found,
        _: tokio::time::Instant,
        _: Option<u64>,
    ) -> Call<'a, Option<Snapshot<RawBody>>> {
        Box::pin(async move {
            match m.ctx.store.read(&found.head.key).await? {
                Some(obj) => decode_raw(m.kind, &obj).map(Some),
                None => Ok(None),
            }
        })
    }

    /// The current version.
    fn history<'a>(&'a self, m: &'a RawManifest) -> Call<'a, Vec<Snapshot<RawBody>>> {
        Box::pin(async { Ok(load(m).await?.into_iter().collect()) })
    }

    /// The one object, if it is at `version`: older versions are overwritten.
    fn version<'a>(
        &'a self,
        m: &'a RawManifest,
        version: u64,
    ) -> Call<'a, Option<Snapshot<RawBody>>> {
        Box::pin(async move { Ok(load(m).await?.filter(|s| s.version == version)) })
    }
}

async fn load(m: &RawManifest) -> Result<Option<Snapshot<RawBody>>> {
    let key = keys::etag_object(&m.base);
    match m.ctx.store.read(&key).await? {
        Some(obj) => decode_raw(m.kind, &obj).map(Some),
        None => Ok(None),
    }
}

async fn write(m: &RawManifest, next: Draft<'_>) -> Result<Wrote> {
    let key = keys::etag_object(&m.base);
    let id = WriteId::new(next.write_id.to_string());
    let store = &m.ctx.store;
    let stored = match next.after {
        None => match store.create(&key, next.bytes.clone(), &id).await? {
            CreateOutcome::Created { etag, version } => Ok((etag, version)),
            CreateOutcome::Exists {
                current,
                after_unclear,
            } => Err((current, after_unclear)),
        },
        Some(c) => {
            let etag = c.etag.ok_or_else(|| Error::Unsupported {
                operation: "etag CAS on a manifest read without an etag".into(),
                store: store.object_store().to_string(),
            })?;
            let version = c.object_version;
            match store
                .replace(&key, next.bytes.clone(), &id, etag, version)
                .await?
            {
                ReplaceOutcome::Replaced { etag, version } => Ok((etag, version)),
                ReplaceOutcome::Conflict {
                    current,
                    after_unclear,
                } => Err((current, after_unclear)),
            }
        }
    };
    match stored {
        Ok((etag, object_version)) => Ok(Wrote::Written {
            etag,
            object_version,
            seen: Seen::default(),
        }),
        Err((None, false)) => Ok(Wrote::Conflict(None)),
        Err((None, true)) => Err(unknown(&key, &next, "the object is gone")),
        Err((Some(obj), after_unclear)) => {
            let theirs = decode_raw(m.kind, &obj)?;
            if theirs.previous_write_id.as_deref() == Some(next.write_id) {
                // Our write landed and another writer already replaced it: the transition
                // happened. Report it, without an etag (it is no longer current).
                debug!(key = %key, "our write landed and was superseded before the read-back");
                return Ok(Wrote::Written {
                    etag: None,
                    object_version: None,
                    seen: Seen::default(),
                });
            }
            // Versions replace their predecessor by etag, so they form one line: a stored
            // version at most ours that is not ours, or ours + 1 that does not follow ours,
            // means ours never landed. Further on, ours may have landed and been replaced
            // twice while an unclear answer was read back; only a clean refusal says no.
            let ours_could_be_under = theirs.version > next.version.saturating_add(1);
            if after_unclear && ours_could_be_under {
                return Err(unknown(
                    &key,
                    &next,
                    &format!("version {} is stored now", theirs.version),
                ));
            }
            Ok(Wrote::Conflict(Some(theirs)))
        }
    }
}

/// A write whose answer was unclear and whose read-back cannot tell whether it landed.
fn unknown(key: &Key, next: &Draft<'_>, found: &str) -> Error {
    Error::Ambiguous {
        key: key.to_string(),
        reason: format!(
            "an answer to the write of version {} was unclear, and reading it back cannot say              whether it landed: {found}",
            next.version
        ),
    }
}

async fn revalidate(m: &RawManifest, known: Header<'_>) -> Result<Revalidated<RawBody>> {
    let key = keys::etag_object(&m.base);
    let Some(etag) = known.etag else {
        return Ok(match load(m).await? {
            Some(s) if s.version == known.version && s.write_id == known.write_id => {
                Revalidated::Unchanged
            }
            Some(s) => Revalidated::Changed(s),
            None => Revalidated::Missing,
        });
    };
    Ok(match m.ctx.store.read_if_changed(&key, etag).await? {
        ReadIfChanged::Unchanged => Revalidated::Unchanged,
        ReadIfChanged::Changed(obj) => Revalidated::Changed(decode_raw(m.kind, &obj)?),
        ReadIfChanged::Missing => Revalidated::Missing,
    })
}
