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

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::manifest::{Change, Manifest, Manifests};
use crate::store::{keys, Name};

/// The manifest kind of records.
pub const KIND: &str = "record";

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
pub enum Deleted {
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

/// The records client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Records {
    manifests: Arc<Manifests>,
}

impl Records {
    /// A records client.
    pub fn new(manifests: Arc<Manifests>) -> Self {
        Self { manifests }
    }

    fn manifest(&self, namespace: &Name, key: &Name) -> Manifest<Record> {
        self.manifests.open(KIND, keys::record(namespace, key))
    }

    /// Stores `value` at `version` only if `version` is strictly higher than the stored
    /// one. One read and one write when uncontended; on a race the compare-and-swap is
    /// retried against the newer record, so the highest version always ends up stored.
    /// `version` is only compared, never incremented, so any `u64` is valid; the record's
    /// manifest version is what cannot wrap ([`crate::Error::Exhausted`] at `u64::MAX`).
    pub async fn put_if_newer(
        &self,
        namespace: &Name,
        key: &Name,
        version: u64,
        value: serde_json::Value,
    ) -> Result<Put> {
        let node = self.manifests.node().to_string();
        let mut stale = None;
        let u = self
            .manifest(namespace, key)
            .update(|cur| match cur {
                Some(s) if s.body.version >= version => {
                    stale = Some(s.body.version);
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
        Ok(match (u.changed, stale) {
            (true, _) => Put::Applied { version },
            (false, Some(stored_version)) => Put::Stale { stored_version },
            (false, None) => Put::Stale {
                stored_version: version,
            },
        })
    }

    /// The stored record, or `None` (also when it was deleted).
    pub async fn get(&self, namespace: &Name, key: &Name) -> Result<Option<Record>> {
        Ok(self.get_any(namespace, key).await?.filter(|r| !r.deleted))
    }

    /// The stored record or its tombstone (`deleted`), or `None` when there never was one.
    pub async fn get_any(&self, namespace: &Name, key: &Name) -> Result<Option<Record>> {
        Ok(self.manifest(namespace, key).load().await?.map(|s| s.body))
    }

    /// Deletes a record by writing a tombstone at its version (see the module docs: the
    /// version is kept so that a stale put is still refused). One read and one write.
    pub async fn delete(&self, namespace: &Name, key: &Name) -> Result<Deleted> {
        let node = self.manifests.node().to_string();
        let mut outcome = Deleted::NotFound;
        self.manifest(namespace, key)
            .update(|cur| match cur {
                None => {
                    outcome = Deleted::NotFound;
                    Change::Keep
                }
                Some(s) if s.body.deleted => {
                    outcome = Deleted::AlreadyDeleted {
                        version: s.body.version,
                    };
                    Change::Keep
                }
                Some(s) => {
                    outcome = Deleted::Deleted {
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
        Ok(outcome)
    }

    /// The manifest handle of one record (for garbage collection).
    pub(crate) fn handle(&self, namespace: &Name, key: &Name) -> Manifest<Record> {
        self.manifest(namespace, key)
    }

    /// The namespaces that hold records. One listing.
    pub async fn namespaces(&self) -> Result<Vec<String>> {
        self.manifests
            .store()
            .list_folders(&keys::record_root())
            .await
    }

    /// The keys of a namespace that hold records.
    pub async fn keys(&self, namespace: &Name) -> Result<Vec<String>> {
        self.manifests
            .store()
            .list_folders(&keys::record_namespace(namespace))
            .await
    }
}
