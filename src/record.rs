//! Versioned records: a value that only ever moves to a higher version, whatever order
//! updates arrive in (the status race where "disconnected at version 6" must not overwrite
//! "connected at version 7").
//!
//! A record is a manifest of kind `record` at `records/<namespace>/<key>/`. Its body holds
//! the caller's version and value; [`Records::put_if_newer`] writes by compare-and-swap
//! only when the given version is strictly higher than the stored one.
//!
//! # Deleting keeps the version
//!
//! [`Records::delete`] writes a tombstone: the record marked deleted, *at the version it
//! had*. Removing the record's objects instead would let the next `put_if_newer` apply
//! whatever version it carries, so a stale update (version 6 arriving after version 7 was
//! deleted) would come back to life. With the tombstone it is still refused; a higher
//! version stores the record again. `cairn gc` trims a tombstone's history to the tombstone
//! alone (version chain) but never deletes it: one small object per deleted key is the
//! price of never accepting a stale version.
//!
//! # When the objects vanish
//!
//! The tombstone protects against cairn's own deletes; a lifecycle rule, a restore from
//! backup or an operator's `rm` removes it with the record. A record's version is the
//! caller's, so unlike a fencing token it cannot be floored (`src/clock.rs` (`floor`)): a
//! client cannot know the version of a record it never saw. What is enforced:
//!
//! - A [`Records`] handle remembers the highest version it saw stored for each key (read,
//!   written, or refused as stale; the 4096 most recent keys). A put at or below
//!   that version onto a record that is gone, or stored below it, is refused with
//!   [`crate::Error::RecordVanished`] naming the record, instead of being applied: a
//!   long-running process that saw version 7 never stores 3 after the record vanished. A
//!   put above what it saw applies as usual.
//! - The record's manifest version is drawn from a floor when the record is created, so a
//!   record created again after it vanished carries a manifest version above its earlier
//!   incarnation's (a generation, in the envelope's `version`), and a restore from backup
//!   shows as a manifest version that went down.
//!
//! What is not: **a client that never saw the record** (a fresh process, every CLI command)
//! applies whatever version comes first after the record vanished, as it would to a key
//! never written. Keep records out of reach of lifecycle rules and restores (see
//! docs/STORES.md), or have the caller's versions drawn from time, so that a late stale update
//! carries a lower number than any update issued after it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::manifest::{Change, Manifest, Manifests};
use crate::store::{keys, Key, Name};

/// How many keys a [`Records`] handle remembers the highest seen version of; past it, the
/// memory starts afresh (a forgotten key is treated as never seen).
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const MAX_REMEMBERED: usize = 4096;

/// The manifest kind of records.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const KIND: &str = "record";

/// The stored body of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The caller's version of the value.
    pub version: u64,
    /// The value.
    pub value: serde_json::Value,
    /// The node that wrote it.
    #[serde(default)]
    pub written_by: String,
    /// A tombstone: the record was deleted at `version` (and `value` is null). A put must
    /// still carry a higher version to apply.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// The outcome of [`Records::delete`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
#[must_use]
pub enum Delete {
    /// A tombstone now holds the record's version.
    Deleted {
        /// The version the tombstone keeps.
        version: u64,
    },
    /// It was deleted already.
    AlreadyDeleted {
        /// The version the tombstone keeps.
        version: u64,
    },
    /// There is no such record.
    NotFound,
}

/// The outcome of [`Records::put_if_newer`]. A stale update is an outcome, not an error.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
#[must_use]
pub enum Put {
    /// The value was stored at this version.
    Applied {
        /// The version now stored.
        version: u64,
    },
    /// The stored version is equal or higher; nothing was written.
    Stale {
        /// The version stored.
        stored_version: u64,
    },
}

/// The records client. Cheap to clone; clones share what they have seen.
#[derive(Debug, Clone)]
pub struct Records {
    manifests: Arc<Manifests>,
    /// The highest version seen stored, per record key (module docs: vanished records).
    seen: Arc<Mutex<HashMap<Key, u64>>>,
}

impl Records {
    /// A records client.
    pub fn new(manifests: Arc<Manifests>) -> Self {
        Self {
            manifests,
            seen: Arc::default(),
        }
    }

    /// The highest version this handle saw stored for `key`.
    fn seen(&self, key: &Key) -> Option<u64> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
    }

    /// Remembers that `version` was stored for `key` (never lowers what is remembered).
    fn saw(&self, key: &Key, version: u64) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= MAX_REMEMBERED && !seen.contains_key(key) {
            seen.clear();
        }
        let v = seen.entry(key.clone()).or_insert(version);
        *v = (*v).max(version);
    }

    fn manifest(&self, namespace: &Name, key: &Name) -> Manifest<Record> {
        self.manifests.open(KIND, keys::record(namespace, key))
    }

    /// Stores `value` at `version` only if `version` is strictly higher than the stored
    /// one. One read and one write when uncontended; on a race the compare-and-swap is
    /// retried against the newer record, so the highest version always ends up stored.
    /// `version` is only compared, never incremented, so any `u64` is valid; the record's
    /// manifest version is what cannot wrap ([`crate::Error::Exhausted`] at `u64::MAX`).
    ///
    /// When this handle saw a version ≥ `version` stored and the record is now gone or
    /// stored lower, nothing is written: [`crate::Error::RecordVanished`] (module docs).
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: dropped between attempts it has written nothing more; dropped during a
    /// write, that write may or may not have landed, as when an answer is lost. Read again to
    /// learn which.
    pub async fn put_if_newer(
        &self,
        namespace: &Name,
        key: &Name,
        version: u64,
        value: serde_json::Value,
    ) -> Result<Put> {
        let node = self.manifests.node().to_string();
        let m = self.manifest(namespace, key);
        let seen = self.seen(m.key());
        let mut stale = None;
        let mut vanished = None;
        let u = m
            .update(|cur| match cur {
                Some(s) if s.body.version >= version => {
                    stale = Some(s.body.version);
                    Change::Keep
                }
                // Below what this handle saw stored: the record vanished (or was restored
                // from an older copy), and `version` is not above what it held.
                _ if seen.is_some_and(|seen| version <= seen) => {
                    vanished = Some(cur.map(|s| s.body.version));
                    Change::Keep
                }
                _ => Change::Write(Record {
                    version,
                    value: value.clone(),
                    written_by: node.clone(),
                    deleted: false,
                }),
            })
            .await?;
        if let (false, Some(stored), Some(seen)) = (u.changed, vanished, seen) {
            return Err(Error::RecordVanished {
                key: m.key().to_string(),
                seen,
                stored,
            });
        }
        if let Some(s) = &u.snapshot {
            self.saw(m.key(), s.body.version);
        }
        Ok(match (u.changed, stale) {
            (true, _) => Put::Applied { version },
            (false, Some(stored_version)) => Put::Stale { stored_version },
            (false, None) => Put::Stale {
                stored_version: version,
            },
        })
    }

    /// The stored record, or `None` (also when it was deleted).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn get(&self, namespace: &Name, key: &Name) -> Result<Option<Record>> {
        Ok(self.get_any(namespace, key).await?.filter(|r| !r.deleted))
    }

    /// The stored record or its tombstone (`deleted`), or `None` when there never was one.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn get_any(&self, namespace: &Name, key: &Name) -> Result<Option<Record>> {
        let m = self.manifest(namespace, key);
        let got = m.load().await?.map(|s| s.body);
        if let Some(r) = &got {
            self.saw(m.key(), r.version);
        }
        Ok(got)
    }

    /// Deletes a record by writing a tombstone at its version (see the module docs: the
    /// version is kept so that a stale put is still refused). One read and one write.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: dropped between attempts it has written nothing more; dropped during a
    /// write, that write may or may not have landed, as when an answer is lost. Read again to
    /// learn which.
    pub async fn delete(&self, namespace: &Name, key: &Name) -> Result<Delete> {
        let node = self.manifests.node().to_string();
        let mut outcome = Delete::NotFound;
        let m = self.manifest(namespace, key);
        let u = m
            .update(|cur| match cur {
                None => {
                    outcome = Delete::NotFound;
                    Change::Keep
                }
                Some(s) if s.body.deleted => {
                    outcome = Delete::AlreadyDeleted {
                        version: s.body.version,
                    };
                    Change::Keep
                }
                Some(s) => {
                    outcome = Delete::Deleted {
                        version: s.body.version,
                    };
                    Change::Write(Record {
                        version: s.body.version,
                        value: serde_json::Value::Null,
                        written_by: node.clone(),
                        deleted: true,
                    })
                }
            })
            .await?;
        if let Some(s) = &u.snapshot {
            self.saw(m.key(), s.body.version);
        }
        Ok(outcome)
    }

    /// The manifest handle of one record (for garbage collection).
    pub(crate) fn handle(&self, namespace: &Name, key: &Name) -> Manifest<Record> {
        self.manifest(namespace, key)
    }

    /// The namespaces that hold records. One listing.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn namespaces(&self) -> Result<Vec<String>> {
        self.manifests
            .store()
            .list_folders(&keys::record_root())
            .await
    }

    /// The keys of a namespace that hold records.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn keys(&self, namespace: &Name) -> Result<Vec<String>> {
        self.manifests
            .store()
            .list_folders(&keys::record_namespace(namespace))
            .await
    }
}
