//! A typed collection: every manifest of one family (the locks, the turns, the streams, the
//! members), with the one body type and kind they share.
//!
//! The feature clients hold one instead of each opening keys, listing folders and loading
//! names in a loop of its own.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Manifest, Manifests, Snapshot};
use crate::error::Result;
use crate::store::keys::{self, Family};
use crate::store::Name;

/// The manifests of one family, each of kind `kind` with a body of type `T`. Cheap to clone.
pub struct Collection<T> {
    manifests: Arc<Manifests>,
    family: Family,
    kind: &'static str,
    _body: PhantomData<fn() -> T>,
}

// By hand: the body type is only a marker, so neither needs `T: Clone` or `T: Debug`.
impl<T> Clone for Collection<T> {
    fn clone(&self) -> Self {
        Self::new(Arc::clone(&self.manifests), self.family, self.kind)
    }
}

impl<T> std::fmt::Debug for Collection<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection")
            .field("family", &self.family)
            .field("kind", &self.kind)
            .finish()
    }
}

impl<T> Collection<T> {
    /// The manifests of `family`, read and written as `kind`.
    pub fn new(manifests: Arc<Manifests>, family: Family, kind: &'static str) -> Self {
        Self {
            manifests,
            family,
            kind,
            _body: PhantomData,
        }
    }

    /// The manifest layer underneath: the store, the node id, the clock, the randomness.
    pub fn manifests(&self) -> &Arc<Manifests> {
        &self.manifests
    }

    /// The family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// A handle on the manifest `name`. No request.
    pub fn open(&self, name: &Name) -> Manifest<T> {
        self.manifests
            .open(self.kind, keys::manifest(self.family, name))
    }

    /// The names of every manifest of the family, in name order: one listing. Folders whose
    /// names cairn would not accept are skipped.
    pub async fn names(&self) -> Result<Vec<Name>> {
        self.manifests.names(self.family).await
    }
}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync> Collection<T> {
    /// The newest version of `name`, or `None` if it was never written. See
    /// [`Manifest::load`] for its requests. Cancel-safe.
    pub async fn load(&self, name: &Name) -> Result<Option<Snapshot<T>>> {
        self.open(name).load().await
    }

    /// Every manifest of the family that exists, in name order, at its newest version: one
    /// listing and one load per name. A manifest that cannot be read fails the whole list
    /// (it is reported, not skipped). Cancel-safe.
    pub async fn list(&self) -> Result<Vec<(Name, Snapshot<T>)>> {
        let mut out = Vec::new();
        for name in self.names().await? {
            if let Some(s) = self.load(&name).await? {
                out.push((name, s));
            }
        }
        Ok(out)
    }
}
