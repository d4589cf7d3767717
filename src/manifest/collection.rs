//! A typed collection: every manifest of one family (the locks, the turns, the streams, the
//! nodes), with the one body type and kind they share.
//!
//! The feature clients hold one instead of each opening keys, listing folders and loading
//! names in a loop of its own.

use std::marker::PhantomData;
use std::sync::Arc;

use futures::{Stream, StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;

use super::listing::{Entry, Found, Unreadable};
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
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn names(&self) -> Result<Vec<Name>> {
        self.manifests.names(self.family).await
    }
}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync> Collection<T> {
    /// The newest version of `name`, or `None` if it was never written. See [`Manifest::load`]
    /// for its requests.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn load(&self, name: &Name) -> Result<Option<Snapshot<T>>> {
        self.open(name).load().await
    }

    /// Every manifest of the family that exists, in name order, at its newest version, as
    /// [`Collection::entries`] reads them, failing on the first that cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn list(&self) -> Result<Vec<(Name, Snapshot<T>)>> {
        self.entries()
            .await?
            .map_err(crate::Error::from)
            .try_collect()
            .await
    }

    /// Every manifest of the family that exists, in name order, at its newest version, each as
    /// it is read: one recursive listing of the family (one LIST per 1,000 objects) and one GET
    /// per manifest, [`super::ManifestOptions::list_concurrency`] of them in flight (costs and
    /// races: `listing.rs`). A manifest that cannot be read is an [`Unreadable`] entry in its
    /// place, and the rest are still read; only a listing that fails is an error. Nothing is
    /// held but the listing and the reads in flight: consume the stream as it comes.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn entries(
        &self,
    ) -> Result<impl Stream<Item = Entry<(Name, Snapshot<T>)>> + Send + '_> {
        let (listed_at, found) = self.manifests.scan(self.family).await?;
        let n = self.manifests.options().list_concurrency.max(1);
        Ok(futures::stream::iter(found)
            .map(move |f| async move {
                let f = f?;
                let read = self.read_found(&f, listed_at, None).await?;
                Ok(read.map(|s| (f.name, s)))
            })
            .buffered(n)
            .filter_map(|e: Entry<Option<(Name, Snapshot<T>)>>| std::future::ready(e.transpose())))
    }

    /// The newest version of the manifest a listing made at `listed_at` showed as `found`
    /// (`None`: gone since), or why it cannot be read. `first_at_most`: see
    /// `Protocol::read_listed`.
    pub(crate) async fn read_found(
        &self,
        found: &Found,
        listed_at: Instant,
        first_at_most: Option<u64>,
    ) -> Entry<Option<Snapshot<T>>> {
        let m = self.open(&found.name);
        let read = m
            .protocol()
            .read_listed(&m.raw, found, listed_at, first_at_most)
            .await
            .and_then(|s| s.map(|s| m.typed(s)).transpose());
        read.map_err(|error| Unreadable::new(&found.name, &found.head.key, error))
    }

    /// `name` could not be read, for `error` found after its manifest was read (a body that
    /// does not make sense as a whole): at the key the error names, else the manifest's.
    pub fn unreadable(&self, name: &Name, error: crate::Error) -> Unreadable {
        Unreadable::new(name, self.open(name).key(), error)
    }

    /// A recursive listing of the family, grouped by name (see `listing.rs`).
    pub(crate) async fn scan(&self) -> Result<(Instant, Vec<Entry<Found>>)> {
        self.manifests.scan(self.family).await
    }
}
