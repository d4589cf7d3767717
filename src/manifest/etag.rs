//! The etag CAS strategy: one object, replaced with `If-Match`.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::debug;

use super::envelope::{decode, encode};
use super::{Manifest, Revalidated, Snapshot, Written};
use crate::error::{Error, Result};
use crate::store::{keys, CreateOutcome, ReadIfChanged, ReplaceOutcome, WriteId};

pub(super) async fn load<T: DeserializeOwned>(m: &Manifest<T>) -> Result<Option<Snapshot<T>>> {
    let key = keys::etag_object(&m.base);
    match m.ctx.store.read(&key).await? {
        Some(obj) => decode(m.kind, &obj).map(Some),
        None => Ok(None),
    }
}

pub(super) async fn write<T: Serialize + DeserializeOwned>(
    m: &Manifest<T>,
    current: Option<&Snapshot<T>>,
    mut next: Snapshot<T>,
) -> Result<Written<T>> {
    let key = keys::etag_object(&m.base);
    let bytes = encode(m.kind, &next)?;
    let id = WriteId(next.write_id.clone());
    let store = &m.ctx.store;
    let stored = match current {
        None => match store.create(&key, bytes, &id).await? {
            CreateOutcome::Created { etag } => Ok(etag),
            CreateOutcome::Exists {
                current,
                after_unclear,
            } => Err((current, after_unclear)),
        },
        Some(c) => {
            let etag = c.etag.as_deref().ok_or_else(|| Error::Unsupported {
                operation: "etag CAS on a manifest read without an etag".into(),
                store: store.object_store().to_string(),
            })?;
            match store.replace(&key, bytes, &id, etag).await? {
                ReplaceOutcome::Replaced { etag } => Ok(etag),
                ReplaceOutcome::Conflict {
                    current,
                    after_unclear,
                } => Err((current, after_unclear)),
            }
        }
    };
    match stored {
        Ok(etag) => {
            next.etag = etag;
            Ok(Written::Written(next))
        }
        Err((None, false)) => Ok(Written::Conflict(None)),
        Err((None, true)) => Err(unknown(&key, &next, "the object is gone")),
        Err((Some(obj), after_unclear)) => {
            let theirs: Snapshot<T> = decode(m.kind, &obj)?;
            if theirs.previous_write_id.as_deref() == Some(next.write_id.as_str()) {
                // Our write landed and another writer already replaced it: the transition
                // happened. Report it, without an etag (it is no longer current).
                debug!(key = %key, "our write landed and was superseded before the read-back");
                return Ok(Written::Written(next));
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
            Ok(Written::Conflict(Some(theirs)))
        }
    }
}

/// A write whose answer was unclear and whose read-back cannot tell whether it landed.
fn unknown<T>(key: &crate::store::Key, next: &Snapshot<T>, found: &str) -> Error {
    Error::Ambiguous {
        key: key.to_string(),
        reason: format!(
            "an answer to the write of version {} was unclear, and reading it back cannot say              whether it landed: {found}",
            next.version
        ),
    }
}

pub(super) async fn revalidate<T: DeserializeOwned>(
    m: &Manifest<T>,
    known: &Snapshot<T>,
) -> Result<Revalidated<T>> {
    let key = keys::etag_object(&m.base);
    let Some(etag) = known.etag.as_deref() else {
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
        ReadIfChanged::Changed(obj) => Revalidated::Changed(decode(m.kind, &obj)?),
        ReadIfChanged::Missing => Revalidated::Missing,
    })
}
