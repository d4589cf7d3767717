//! Fenced data: the embedder's own small objects in the bucket, written only under a fencing
//! token no lower than any that has written them.
//!
//! A lock exists to guard something. [`Fenced`] is that something when it lives in the same
//! bucket: a named, typed value under `app/<name>/` whose every write carries the writer's
//! [`FencingToken`]. A write is a fenced compare-and-swap: it is applied only if no higher
//! token has written the object, and it replaces exactly the version it was checked
//! against (the manifest layer's conditional write, verified), so two writers can never
//! both pass the check on one version. A holder that lost its lease (paused, partitioned,
//! overtaken by a takeover) and writes late carries a lower token than its successor and is
//! refused with [`FencedWrite::Refused`], naming the token that fenced it off: the
//! successor's work is never overwritten. Equal tokens pass, so a holder writes as often as
//! it likes under one lease.
//!
//! ```no_run
//! # async fn demo(cairn: cairn::Cairn, lease: cairn::HeldLock) -> cairn::Result<()> {
//! use cairn::fenced::FencedWrite;
//! let offsets = cairn.fenced::<Vec<u64>>(&cairn::Name::new("compaction-offsets")?);
//! match offsets.write(lease.fencing_token(), vec![1, 2, 3]).await? {
//!     FencedWrite::Written(v) => println!("stored at version {}", v.version),
//!     FencedWrite::Refused { token } => println!("fenced off by token {token}"),
//! }
//! # Ok(()) }
//! ```
//!
//! # Requests
//!
//! A write is a load and a conditional write (2 requests under etag CAS when uncontended;
//! the version chain's reads of a recently known manifest are one GET), plus one more load
//! per lost race; a read is one load. Values are small: the manifest layer refuses objects
//! over 1 MiB.
//!
//! # When the object vanishes
//!
//! A lifecycle rule or an operator's `rm` that deletes the object deletes the highest token
//! it had seen with it. A [`Fenced`] handle remembers the highest token it has seen stored
//! (read, written, or refused by), and refuses a write below it onto an object that is
//! gone or stored below it ([`Error::RecordVanished`]) instead of applying it. A process that
//! never saw the object cannot know; keep `app/` out of reach of lifecycle rules (docs/STORES.md,
//! "Lifecycle rules").

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lock::FencingToken;
use crate::manifest::{Change, Manifest, Manifests, Snapshot};
use crate::store::keys::{self, Family};
use crate::store::Name;

/// The stored `kind` of a fenced object's manifest.
pub(crate) const KIND: &str = "fenced";

/// The stored body of a fenced object: the value and the token that wrote it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FencedBody<T> {
    token: FencingToken,
    value: T,
}

/// A fenced object as read or written.
#[derive(Debug, Clone, PartialEq)]
pub struct FencedValue<T> {
    /// The value.
    pub value: T,
    /// The fencing token of the write that stored it.
    pub token: FencingToken,
    /// The object's version (its manifest version: increases with every write).
    pub version: u64,
    /// The node that wrote it.
    pub written_by: String,
    /// When, by the writer's clock.
    pub written_at: DateTime<Utc>,
}

/// What a fenced write did.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum FencedWrite<T> {
    /// The value is stored under our token.
    Written(FencedValue<T>),
    /// A higher token has written the object: nothing was written.
    Refused {
        /// The highest token that has written it.
        token: FencingToken,
    },
}

/// A handle on one fenced object, `app/<name>/`. Cheap to clone; clones share what the
/// handle has seen.
#[derive(Clone)]
pub struct Fenced<T> {
    name: Name,
    manifest: Manifest<FencedBody<T>>,
    /// The highest token this handle has seen stored.
    seen: Arc<Mutex<Option<FencingToken>>>,
}

impl<T> std::fmt::Debug for Fenced<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fenced")
            .field("name", &self.name)
            .field(
                "seen",
                &*self.seen.lock().unwrap_or_else(|e| e.into_inner()),
            )
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync> Fenced<T> {
    pub(crate) fn new(manifests: &Arc<Manifests>, name: &Name) -> Self {
        Self {
            name: name.clone(),
            manifest: manifests.open(KIND, keys::manifest(Family::App, name)),
            seen: Arc::new(Mutex::new(None)),
        }
    }

    /// The object's name.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The highest token this handle has seen stored, if any.
    pub fn seen(&self) -> Option<FencingToken> {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn saw(&self, token: FencingToken) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.is_none_or(|s| token > s) {
            *seen = Some(token);
        }
    }

    fn value(&self, s: Snapshot<FencedBody<T>>) -> FencedValue<T> {
        self.saw(s.body.token);
        FencedValue {
            value: s.body.value,
            token: s.body.token,
            version: s.version,
            written_by: s.written_by,
            written_at: s.written_at,
        }
    }

    /// The object as stored, or `None` if it was never written. One load ([`Manifest::load`]).
    /// A stored body that does not parse is [`Error::Corrupt`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn read(&self) -> Result<Option<FencedValue<T>>> {
        Ok(self.manifest.load().await?.map(|s| self.value(s)))
    }

    /// Writes `value` under `token`, unless a higher token has written the object
    /// ([`FencedWrite::Refused`], nothing written). Retries lost races with the newer version
    /// (bounded: [`Error::Contention`]); a newer version written under a higher token refuses
    /// ours.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a cancelled write may or may not have landed.
    pub async fn write(&self, token: FencingToken, value: T) -> Result<FencedWrite<T>> {
        self.update(token, |_| value.clone()).await
    }

    /// Read-modify-write under `token`: `f` gets the stored value (`None`: never written) and
    /// returns the new one; it may run once per attempt. Refused, without calling `f` again,
    /// once a higher token has written the object.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a dropped call may or may not have written, as when an answer is lost;
    /// the stored object is whole either way (each write is one conditional PUT of a whole
    /// object). Read again to learn which.
    pub async fn update(
        &self,
        token: FencingToken,
        mut f: impl FnMut(Option<&T>) -> T,
    ) -> Result<FencedWrite<T>> {
        let remembered = self.seen();
        let mut fenced_by = None;
        let mut vanished = None;
        let updated = self
            .manifest
            .update(|current| {
                let stored = current.map(|s| s.body.token);
                if let Some(higher) = stored.filter(|&t| t > token) {
                    fenced_by = Some(higher);
                    return Change::Keep;
                }
                // The object is gone or stored below a token this handle saw: it vanished
                // (a lifecycle rule, an operator) and took the higher token with it.
                if let Some(seen) = remembered.filter(|&s| s > token) {
                    if stored.is_none_or(|t| t < seen) {
                        vanished = Some((seen, stored));
                        return Change::Keep;
                    }
                }
                fenced_by = None;
                vanished = None;
                Change::Write(FencedBody {
                    token,
                    value: f(current.map(|s| &s.body.value)),
                })
            })
            .await?;
        if let (false, Some((seen, stored))) = (updated.changed, vanished) {
            return Err(Error::RecordVanished {
                key: self.manifest.key().to_string(),
                seen: seen.0,
                stored: stored.map(|t| t.0),
            });
        }
        match (updated.changed, updated.snapshot, fenced_by) {
            (true, Some(s), _) => Ok(FencedWrite::Written(self.value(s))),
            (false, _, Some(higher)) => {
                self.saw(higher);
                Ok(FencedWrite::Refused { token: higher })
            }
            // `update` keeps only when the closure says so, and it says so only above.
            (changed, snapshot, _) => Err(Error::Corrupt {
                key: self.manifest.key().to_string(),
                reason: format!(
                    "fenced write ended without a verdict (changed {changed}, stored {})",
                    snapshot.is_some()
                ),
            }),
        }
    }
}
