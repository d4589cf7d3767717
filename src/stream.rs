//! Streams that any ingestor can create, with no central node.
//!
//! A stream is a manifest of kind `stream` at `streams/<name>/` whose body carries the
//! stream's metadata. Creating it is a create-if-absent: of racing creators exactly one
//! writes, and every other reads back the winner's manifest, so all of them end holding the
//! same one. A creator whose metadata differs gets [`Create::Conflict`] carrying the stored
//! manifest; nothing is overwritten. Metadata evolves by compare-and-swap; delete is a
//! tombstone, and creating a deleted name again starts a new incarnation at a higher version.
//!
//! Queriers follow streams with a [`Follower`]: one listing a poll shows every stream's etag
//! (version chain: newest version key), so an unchanged stream costs nothing beyond it and a
//! changed one one GET.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cache::{CacheOptions, CachedCollection, ManifestCache, View};
use crate::clock::next_number;
use crate::error::{Error, Result};
use crate::manifest::listing::{Entry, Found, Unreadable};
use crate::manifest::{Change, Collection, Manifests, Snapshot, Write};
use crate::store::keys::Family;
use crate::store::Name;
use futures::StreamExt;

/// The manifest kind of streams.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const KIND: &str = "stream";

/// Whether a stream exists or was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamState {
    /// The stream exists.
    Active,
    /// The stream was deleted (a tombstone).
    Deleted,
}

/// The stored body of a stream manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamRecord {
    /// Active or deleted.
    pub state: StreamState,
    /// 1 for the first creation, +1 each time a deleted name is created again; never wraps.
    pub incarnation: u64,
    /// The stream's metadata (schema, partitioning, retention, …): opaque JSON to cairn.
    pub metadata: serde_json::Value,
    /// The node that created this incarnation.
    pub created_by: String,
    /// When (creator's wall clock).
    pub created_at: DateTime<Utc>,
}

/// A stream as read: its name, manifest version and record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamInfo {
    /// The stream's name.
    pub name: String,
    /// The manifest version: raised by every change.
    pub version: u64,
    /// The node that wrote this version.
    pub updated_by: String,
    /// When it was written.
    pub updated_at: DateTime<Utc>,
    /// The record.
    #[serde(flatten)]
    pub record: StreamRecord,
}

impl StreamInfo {
    fn of(name: &Name, s: &Snapshot<StreamRecord>) -> Self {
        Self {
            name: name.to_string(),
            version: s.version,
            updated_by: s.written_by.clone(),
            updated_at: s.written_at,
            record: s.body.clone(),
        }
    }
}

/// The outcome of [`Streams::create`].
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Create {
    /// This call created the stream.
    Created(StreamInfo),
    /// The stream exists with equal metadata: the same outcome as creating it.
    Exists(StreamInfo),
    /// The stream exists with different metadata, shown here. Nothing was changed.
    Conflict(StreamInfo),
}

impl Create {
    /// The stream as stored, whichever the outcome.
    pub fn info(&self) -> &StreamInfo {
        match self {
            Create::Created(m) | Create::Exists(m) | Create::Conflict(m) => m,
        }
    }
}

/// The streams client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Streams {
    collection: Collection<StreamRecord>,
}

impl Streams {
    /// A streams client.
    pub fn new(manifests: Arc<Manifests>) -> Self {
        Self {
            collection: Collection::new(manifests, Family::Stream, KIND),
        }
    }

    fn record(&self, metadata: serde_json::Value, incarnation: u64) -> StreamRecord {
        StreamRecord {
            state: StreamState::Active,
            incarnation,
            metadata,
            created_by: self.collection.manifests().node().to_string(),
            created_at: self.collection.manifests().clock().now(),
        }
    }

    /// Creates stream `name` with `metadata` unless it exists. One request for a new stream.
    /// Re-creating a deleted stream whose version or incarnation is at `u64::MAX` fails with
    /// [`Error::Exhausted`]; metadata too large to store fails with [`Error::Encode`] before
    /// any request.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a cancelled create may have created the stream.
    pub async fn create(&self, name: &Name, metadata: serde_json::Value) -> Result<Create> {
        let m = self.collection.open(name);
        let mut current = match m.create(self.record(metadata.clone(), 1)).await? {
            Write::Written(s) => return Ok(Create::Created(StreamInfo::of(name, &s))),
            Write::Conflict(c) => c,
        };
        for _ in 0..self.collection.manifests().options().max_attempts.max(1) {
            let Some(s) = current else {
                // Gone between the conflict and the read-back: try the create again.
                match m.create(self.record(metadata.clone(), 1)).await? {
                    Write::Written(s) => return Ok(Create::Created(StreamInfo::of(name, &s))),
                    Write::Conflict(c) => {
                        current = c;
                        continue;
                    }
                }
            };
            if s.body.state == StreamState::Active {
                let found = StreamInfo::of(name, &s);
                return Ok(if s.body.metadata == metadata {
                    Create::Exists(found)
                } else {
                    Create::Conflict(found)
                });
            }
            // Deleted: a new incarnation, at a higher version. Neither number wraps.
            let incarnation = next_number(m.key(), "incarnation", s.body.incarnation)?;
            let next = self.record(metadata.clone(), incarnation);
            match m.write(Some(&s), next).await? {
                Write::Written(w) => return Ok(Create::Created(StreamInfo::of(name, &w))),
                Write::Conflict(c) => current = c,
            }
        }
        Err(Error::Contention {
            key: m.key().to_string(),
            attempts: self.collection.manifests().options().max_attempts,
        })
    }

    /// Changes an active stream's metadata by compare-and-swap: `f` gets the current
    /// metadata and returns the new one (`None`: no change). Returns the stream as it is now,
    /// or `None` if it does not exist (or was deleted).
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: dropped between attempts it has written nothing more; dropped during a
    /// write, that write may or may not have landed, as when an answer is lost. Read again to
    /// learn which.
    pub async fn update(
        &self,
        name: &Name,
        mut f: impl FnMut(&serde_json::Value) -> Option<serde_json::Value>,
    ) -> Result<Option<StreamInfo>> {
        let updated = self
            .collection
            .open(name)
            .update(|cur| match cur {
                Some(s) if s.body.state == StreamState::Active => match f(&s.body.metadata) {
                    Some(metadata) if metadata != s.body.metadata => Change::Write(StreamRecord {
                        metadata,
                        ..s.body.clone()
                    }),
                    _ => Change::Keep,
                },
                _ => Change::Keep,
            })
            .await?;
        Ok(updated
            .snapshot
            .filter(|s| s.body.state == StreamState::Active)
            .map(|s| StreamInfo::of(name, &s)))
    }

    /// Deletes a stream by writing a tombstone. Returns the tombstone, or `None` if the
    /// stream did not exist or was already deleted.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: dropped between attempts it has written nothing more; dropped during a
    /// write, that write may or may not have landed, as when an answer is lost. Read again to
    /// learn which.
    pub async fn delete(&self, name: &Name) -> Result<Option<StreamInfo>> {
        let updated = self
            .collection
            .open(name)
            .update(|cur| match cur {
                Some(s) if s.body.state == StreamState::Active => Change::Write(StreamRecord {
                    state: StreamState::Deleted,
                    ..s.body.clone()
                }),
                _ => Change::Keep,
            })
            .await?;
        Ok(updated
            .changed
            .then_some(updated.snapshot)
            .flatten()
            .map(|s| StreamInfo::of(name, &s)))
    }

    /// The stream `name` (active or deleted), or `None` if it never existed.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn get(&self, name: &Name) -> Result<Option<StreamInfo>> {
        let s = self.collection.load(name).await?;
        Ok(s.map(|s| StreamInfo::of(name, &s)))
    }

    /// Every stream, active and deleted, by name, failing on the first that cannot be read
    /// (see [`Streams::entries`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn list(&self) -> Result<Vec<StreamInfo>> {
        self.entries()
            .await?
            .into_iter()
            .map(|e| e.map_err(crate::Error::from))
            .collect()
    }

    /// Every stream, active and deleted, by name; one that cannot be read is an
    /// [`Unreadable`] entry in its place. One LIST per
    /// 1,000 streams and one GET per stream, several in flight.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn entries(&self) -> Result<Vec<Entry<StreamInfo>>> {
        Ok(self
            .collection
            .entries()
            .await?
            .map(|e| e.map(|(n, s)| StreamInfo::of(&n, &s)))
            .collect()
            .await)
    }

    /// A cached view of the streams, for queriers that read the list often.
    pub fn view(&self, options: CacheOptions) -> StreamView {
        StreamView {
            cached: CachedCollection::new(self.collection.clone(), options),
        }
    }

    /// A follower starting from `cursor` (empty: report every stream as created).
    pub fn follow(&self, cursor: Cursor) -> Follower {
        Follower {
            streams: self.clone(),
            cursor,
            known: BTreeMap::new(),
            listed: BTreeMap::new(),
        }
    }
}

/// Streams read through a [`ManifestCache`]: while fresh, listing them costs nothing; then
/// one listing of the streams, plus one GET per stream changed since (an unchanged one costs
/// nothing). When the
/// store is unreachable the last known list is served, marked stale, for up to the cache's
/// stale-if-error time.
#[derive(Debug)]
pub struct StreamView {
    cached: CachedCollection<StreamRecord>,
}

impl StreamView {
    /// Every stream, active and deleted, by name, failing on the first that cannot be read (see
    /// [`StreamView::entries`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn list(&self) -> Result<View<Vec<StreamInfo>>> {
        let all = self.cached.list().await?;
        Ok(all.map(|all| all.iter().map(|(n, s)| StreamInfo::of(n, s)).collect()))
    }

    /// Every stream, active and deleted, by name; one that cannot be read is an [`Unreadable`]
    /// entry in its place. A refresh is one listing of the streams, plus one GET per stream
    /// changed since the last ([`CachedCollection::entries`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn entries(&self) -> Result<View<Vec<Entry<StreamInfo>>>> {
        let all = self.cached.entries().await?;
        Ok(all.map(|all| {
            all.into_iter()
                .map(|e| e.map(|(n, s)| StreamInfo::of(&n, &s)))
                .collect()
        }))
    }

    /// One stream (active or deleted); `None` if it never existed.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn get(&self, name: &Name) -> Result<View<Option<StreamInfo>>> {
        let got = self.cached.get(name).await?;
        Ok(got.map(|s| s.map(|s| StreamInfo::of(name, &s))))
    }

    /// Loads the named streams into the cache ahead of the first reads (one request each).
    /// Returns how many exist.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads; a dropped call has loaded some of the names, or none.
    pub async fn warm(&self, names: &[Name]) -> Result<usize> {
        self.cached.warm(names).await
    }

    /// The cache underneath (for its statistics).
    pub fn cache(&self) -> &ManifestCache<StreamRecord> {
        self.cached.cache()
    }
}

/// What a follower has reported, per stream. Serializable, so a querier can persist it and
/// resume after a restart without seeing a change twice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Stream name → what was last reported of it.
    pub streams: BTreeMap<String, Seen>,
}

/// The last reported state of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// Manifest version.
    pub version: u64,
    /// Incarnation.
    pub incarnation: u64,
    /// Whether it was deleted.
    pub deleted: bool,
}

/// A change a follower reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum StreamEvent {
    /// A stream (or a new incarnation of a deleted one) appeared.
    Created(StreamInfo),
    /// An active stream's metadata changed.
    Changed(StreamInfo),
    /// A stream was deleted.
    Deleted(StreamInfo),
}

impl StreamEvent {
    /// The stream as the event found it.
    pub fn info(&self) -> &StreamInfo {
        match self {
            StreamEvent::Created(m) | StreamEvent::Changed(m) | StreamEvent::Deleted(m) => m,
        }
    }
}

/// Follows streams incrementally. Each [`Follower::poll`] lists the streams once (one LIST
/// per 1,000 objects), which shows every stream's etag (on the version chain, its newest
/// version's key): an unchanged stream costs nothing more, a new or changed one one GET
/// (several in flight). Several changes to one stream between two polls are
/// reported as one, at the newest version (as a Kubernetes informer coalesces); a stream's
/// reported versions only ever rise, and none is reported twice, across restarts from a
/// saved [`Cursor`].
#[derive(Debug)]
pub struct Follower {
    streams: Streams,
    cursor: Cursor,
    known: BTreeMap<String, Snapshot<StreamRecord>>,
    /// What the listing showed of each stream when it was last read.
    listed: BTreeMap<String, Found>,
}

impl Follower {
    /// The cursor to persist: everything reported so far.
    pub fn cursor(&self) -> &Cursor {
        &self.cursor
    }

    /// Reports what changed since the last poll (or since the cursor), in name order, each
    /// stream at most once.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a cancelled poll reports nothing and loses nothing.
    pub async fn poll(&mut self) -> Result<Vec<StreamEvent>> {
        let c = &self.streams.collection;
        let (listed_at, listed) = c.scan().await?;
        let mut changed = Vec::new();
        for f in listed {
            let f = f?;
            let old = self.listed.get(f.name.as_str());
            if old.is_some_and(|old| f.unchanged_since(old)) {
                continue;
            }
            let held = self.known.get(f.name.as_str()).map(|k| k.version);
            let hint = old.zip(held).and_then(|(old, h)| f.first_at_most(old, h));
            changed.push((f, hint));
        }
        let n = c.manifests().options().list_concurrency.max(1);
        let read: Vec<_> = futures::stream::iter(changed)
            .map(|(f, hint)| async move {
                let s = c.read_found(&f, listed_at, hint).await?;
                Ok::<_, Unreadable>((f, s))
            })
            .buffered(n)
            .collect()
            .await;
        let mut found = Vec::new();
        let mut seen = Vec::new();
        for r in read {
            let (f, latest) = r?;
            let Some(latest) = latest else { continue };
            let name = f.name.clone();
            seen.push((name.to_string(), f));
            let known = self.known.get(name.as_str());
            if known.is_some_and(|k| k.version >= latest.version) {
                continue;
            }
            found.push((name, latest));
        }
        // Only now, with every read done, change state: a cancelled poll changes nothing.
        self.listed.extend(seen);
        let mut events = Vec::new();
        for (name, latest) in found {
            let seen = self.cursor.streams.get(name.as_str()).copied();
            if seen.is_none_or(|s| latest.version > s.version) {
                let manifest = StreamInfo::of(&name, &latest);
                let deleted = latest.body.state == StreamState::Deleted;
                let was_live = seen.filter(|s| !s.deleted);
                let event = match (deleted, was_live) {
                    (true, None) => None, // created and deleted between polls
                    (true, Some(_)) => Some(StreamEvent::Deleted(manifest)),
                    (false, Some(s)) if s.incarnation == latest.body.incarnation => {
                        Some(StreamEvent::Changed(manifest))
                    }
                    (false, _) => Some(StreamEvent::Created(manifest)),
                };
                events.extend(event);
                self.cursor.streams.insert(
                    name.to_string(),
                    Seen {
                        version: latest.version,
                        incarnation: latest.body.incarnation,
                        deleted,
                    },
                );
            }
            self.known.insert(name.to_string(), latest);
        }
        Ok(events)
    }
}
