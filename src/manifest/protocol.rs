//! The interface both strategies implement: how versions of one manifest are stored, found
//! and deleted. [`super::Manifests`] picks the implementation once, from the [`Strategy`] in
//! force (`for_strategy` in `manifest/mod.rs`, which uses both implementations; they use
//! this file, which uses neither); every [`super::Manifest`] calls through it.
//!
//! A strategy works on stored documents, not on their body types: it reads envelopes
//! ([`Snapshot<RawBody>`], decoded up to the body, which stays JSON), and writes a version
//! the manifest layer has already encoded ([`Draft`]). The manifest layer decodes each body
//! it hands back, once, to its type ([`Snapshot::typed`]); that is the step decoding took
//! anyway, so going through this interface costs one boxed future a call.

use bytes::Bytes;
use futures::future::BoxFuture;

use super::envelope::{RawBody, Seen};
use super::listing::Found;
use super::{RawManifest, Revalidated, Snapshot, Strategy};
use crate::error::Result;
use crate::store::Key;

/// What a strategy's method returns: a boxed future, so that the trait is dyn-compatible.
pub(crate) type Call<'a, T> = BoxFuture<'a, Result<T>>;

/// One strategy's compare-and-swap protocol. `load`, `write`, `revalidate` and `history` are
/// the strategy's side of the [`super::Manifest`] methods of the same names, whose contracts
/// are documented there; `collect` serves [`super::Manifest::trim`] and
/// [`super::Manifest::collect_garbage`]; `keys_up_to` and `forget` serve
/// [`super::Manifest::remove`].
pub(crate) trait Protocol: Send + Sync + std::fmt::Debug {
    /// The strategy this implements.
    fn strategy(&self) -> Strategy;

    /// The newest version, or `None` if the manifest was never written.
    fn load<'a>(&'a self, m: &'a RawManifest) -> Call<'a, Option<Snapshot<RawBody>>>;

    /// Stores `next` as the version after [`Draft::after`], only if that is still the
    /// newest, with write-then-verify.
    fn write<'a>(&'a self, m: &'a RawManifest, next: Draft<'a>) -> Call<'a, Wrote>;

    /// Whether a version newer than `known` exists, transferring it only when it does.
    fn revalidate<'a>(
        &'a self,
        m: &'a RawManifest,
        known: Header<'a>,
    ) -> Call<'a, Revalidated<RawBody>>;

    /// Deletes old versions but the newest `keep` (at least 1) and those younger than
    /// `gc_min_age`: the keys deleted (or, with `dry_run`, that would be), oldest first.
    /// Nothing for a strategy that keeps only the newest version.
    fn collect<'a>(&'a self, m: &'a RawManifest, keep: usize, dry_run: bool) -> Call<'a, Vec<Key>>;

    /// The key of every stored object of the manifest, up to and including version `head`,
    /// oldest first (the manifest's whole content, for [`super::Manifest::remove`]), or
    /// `None` when a version above `head` exists.
    fn keys_up_to<'a>(&'a self, m: &'a RawManifest, head: u64) -> Call<'a, Option<Vec<Key>>>;

    /// Forgets whatever this client remembers of the manifest (after removing it).
    fn forget(&self, m: &RawManifest);

    /// Every stored version still kept, oldest first.
    fn history<'a>(&'a self, m: &'a RawManifest) -> Call<'a, Vec<Snapshot<RawBody>>>;

    /// The newest version of the manifest a family listing made at `listed_at` showed as
    /// `found` (`None`: it is gone), read from the keys the listing names: one GET (two on a
    /// chain whose slot 1 is listed beside higher slots, unless `first_at_most`, a version
    /// slot 1 is known to hold at most, is below the listed head). A listed head that is gone,
    /// or below what this client knows, is loaded as [`Protocol::load`] does.
    fn read_listed<'a>(
        &'a self,
        m: &'a RawManifest,
        found: &'a Found,
        listed_at: tokio::time::Instant,
        first_at_most: Option<u64>,
    ) -> Call<'a, Option<Snapshot<RawBody>>>;

    /// Version `version`, when it can still be read on its own (`None`: it cannot, which
    /// says nothing about whether it was ever written). The chain reads its key; etag CAS
    /// keeps only the newest version, so it has version `version` only while that is newest.
    fn version<'a>(
        &'a self,
        m: &'a RawManifest,
        version: u64,
    ) -> Call<'a, Option<Snapshot<RawBody>>>;
}

/// What a strategy needs of a version it builds on or revalidates: never its body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header<'a> {
    /// [`Snapshot::version`].
    pub(crate) version: u64,
    /// [`Snapshot::write_id`].
    pub(crate) write_id: &'a str,
    /// The etag it was read with (etag CAS).
    pub(crate) etag: Option<&'a str>,
    /// The store's version of it, where the store reports one (etag CAS).
    pub(crate) object_version: Option<&'a str>,
    /// When this client last knew it to be the newest (version chain).
    pub(crate) seen: Seen,
}

impl<T> Snapshot<T> {
    /// What a strategy needs of this version.
    pub(crate) fn header(&self) -> Header<'_> {
        Header {
            version: self.version,
            write_id: &self.write_id,
            etag: self.etag.as_deref(),
            object_version: self.object_version.as_deref(),
            seen: self.seen,
        }
    }
}

/// The next version, encoded by the manifest layer.
#[derive(Debug)]
pub(crate) struct Draft<'a> {
    /// The version it replaces (`None`: it is the first).
    pub(crate) after: Option<Header<'a>>,
    /// Its version.
    pub(crate) version: u64,
    /// Its `write_id`, by which write-then-verify recognises it.
    pub(crate) write_id: &'a str,
    /// The whole document ([`super::envelope::encode`]).
    pub(crate) bytes: Bytes,
    /// The write continues a claim this client holds on `after` (a renewal, a heartbeat, a
    /// release), rather than starting something: it hands out no new number. The version
    /// chain skips its check for a chain created again under the write for these (see
    /// `chain`'s module docs, "When objects vanish").
    pub(crate) continues: bool,
}

/// What a strategy's write did.
#[derive(Debug)]
pub(crate) enum Wrote {
    /// The draft is stored (or was, and has been built upon).
    Written {
        /// The store's etag of it, while it is the newest (etag CAS).
        etag: Option<String>,
        /// The store's version of it, where the store reports one (etag CAS).
        object_version: Option<String>,
        /// When this client knew it to be the newest (version chain).
        seen: Seen,
    },
    /// Another writer got there first; the newest version seen (`None`: the manifest is
    /// gone).
    Conflict(Option<Snapshot<RawBody>>),
}
