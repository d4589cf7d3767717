//! The store layer: the only code that talks to `object_store`.
//!
//! It owns the root prefix, the key layout ([`keys`]), name validation ([`Name`]), and the
//! typed outcome of each conditional operation. It resolves ambiguous outcomes by reading
//! the object back (write-then-verify, below) and probes a store's capabilities ([`probe`]).
//!
//! # Write-then-verify
//!
//! Every object cairn writes is a JSON document with a top-level `write_id` unique to that
//! write. When a conditional write answers "exists" or "conflict", times out, or fails
//! mid-flight, the store reads the object back:
//!
//! - our `write_id` is there: the write landed (a conditional PUT that object_store retried
//!   after its first attempt landed gets 412 from the server; that is a success);
//! - another writer's object is there: the write lost (`Exists` / `Conflict`);
//! - the object is as before: the write did not land, and is sent again, with the same
//!   `write_id`, up to [`StoreOptions::write_attempts`] times;
//! - the read-back fails too: [`Error::Ambiguous`], never a guess.

pub mod fault;
pub mod keys;
pub mod name;
pub mod probe;
pub mod protocol;
pub mod url;

mod aws;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{
    GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
};
use serde::Deserialize;
use tracing::{debug, warn};

use crate::error::{Error, Result};
pub use keys::Key;
pub use name::Name;

/// The largest object cairn reads or writes: 1 MiB.
///
/// Everything cairn stores is a small JSON manifest: a lock, turn or member record is a few
/// hundred bytes, a turn's result is capped at 4 KiB ([`crate::turn::MAX_RESULT_BYTES`]),
/// and stream metadata, record values and log events are descriptions, not payloads. 1 MiB
/// leaves three orders of magnitude of room for those, and bounds what one read can cost in
/// memory and transfer whatever sits at a key.
///
/// A larger object at a cairn key is [`Error::Corrupt`]: its size is checked against the
/// GET response's metadata before any of the body is read (the body is dropped unread), and
/// again while reading, in case a server understates it. It is never overwritten. A larger
/// value is refused before any request ([`Error::Encode`]).
pub const MAX_OBJECT_BYTES: u64 = 1 << 20;

/// A unique id written into every object cairn writes; the read-back after an unclear
/// outcome compares it to decide whose write is stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WriteId(pub String);

impl WriteId {
    /// A fresh random id drawn from `rng`.
    pub fn random(rng: &mut impl rand::Rng) -> Self {
        Self(
            uuid::Builder::from_random_bytes(rng.random())
                .into_uuid()
                .to_string(),
        )
    }
}

/// One object as read: its bytes and the etag the store gave it.
#[derive(Debug, Clone)]
pub struct Object {
    /// Key relative to the root prefix.
    pub key: Key,
    /// The body.
    pub bytes: Bytes,
    /// The store's entity tag, if it reports one.
    pub etag: Option<String>,
    /// When the store last modified it.
    pub last_modified: DateTime<Utc>,
}

/// Outcome of create-if-absent.
#[derive(Debug)]
#[must_use]
pub enum CreateOutcome {
    /// Our write is stored (possibly found by read-back after an unclear answer).
    Created {
        /// The etag of our object, when the store reports one.
        etag: Option<String>,
    },
    /// Another writer's object is there; `current` is it, as read back (`None` when it was
    /// gone again by the time of the read-back).
    Exists {
        /// The object in the way.
        current: Option<Object>,
    },
}

/// Outcome of replace-if-match.
#[derive(Debug)]
#[must_use]
pub enum ReplaceOutcome {
    /// Our write replaced the expected version.
    Replaced {
        /// The etag of our object.
        etag: Option<String>,
    },
    /// The object changed since the expected etag; `current` is what is there now (`None`
    /// when it is gone).
    Conflict {
        /// The object now stored.
        current: Option<Object>,
    },
}

/// Outcome of a conditional GET.
#[derive(Debug)]
pub enum ReadIfChanged {
    /// The object still has the given etag; no body was transferred (HTTP 304).
    Unchanged,
    /// The object changed; here it is.
    Changed(Object),
    /// The object is gone.
    Missing,
}

/// One listed object.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Key relative to the root prefix.
    pub key: Key,
    /// When the store last modified it.
    pub last_modified: DateTime<Utc>,
    /// Size in bytes.
    pub size: u64,
}

/// Tuning of the store layer.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Longest a single request may take before it counts as failed mid-flight (and, for a
    /// write, is resolved by read-back). Default 10 s: S3 answers small PUTs in tens of ms,
    /// and a lease renewed every 10 s must learn of a hung request well within its ttl.
    pub request_timeout: Duration,
    /// How many times a conditional write that verifiably did not land is sent again.
    /// Default 3.
    pub write_attempts: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            write_attempts: 3,
        }
    }
}

/// A bucket (or directory) with a root prefix, and cairn's conditional operations on it.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    root: Path,
    options: StoreOptions,
}

/// What a read-back found, relative to the write it verifies.
enum Verified {
    Ours(Object),
    Theirs(Object),
    Absent,
}

impl Store {
    /// Wraps `inner`; every key lives below `prefix` (which may be empty).
    pub fn new(inner: Arc<dyn ObjectStore>, prefix: &str, options: StoreOptions) -> Result<Self> {
        let trimmed = prefix.trim_matches('/');
        let root = if trimmed.is_empty() {
            Path::default()
        } else {
            for segment in trimmed.split('/') {
                if segment.is_empty() || segment == "." || segment == ".." {
                    return Err(Error::Config(format!(
                        "prefix {prefix:?} has an empty, '.' or '..' segment"
                    )));
                }
            }
            Path::parse(trimmed).map_err(|e| Error::Config(format!("prefix {prefix:?}: {e}")))?
        };
        Ok(Self {
            inner,
            root,
            options,
        })
    }

    /// The underlying object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// The root prefix.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The options in force.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    fn path(&self, key: &Key) -> Path {
        let mut p = self.root.clone();
        for part in key.as_str().split('/') {
            p = p.join(part);
        }
        p
    }

    fn relative(&self, path: &Path) -> Option<Key> {
        let parts: Vec<_> = path.prefix_match(&self.root)?.collect();
        let rel = parts
            .iter()
            .map(|p| p.as_ref())
            .collect::<Vec<_>>()
            .join("/");
        Some(keys::from_listed(rel))
    }

    /// Runs one request under the request timeout.
    async fn timed<T>(
        &self,
        fut: impl std::future::Future<Output = object_store::Result<T>>,
    ) -> object_store::Result<T> {
        match tokio::time::timeout(self.options.request_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(object_store::Error::Generic {
                store: "cairn",
                source: format!("request timed out after {:?}", self.options.request_timeout)
                    .into(),
            }),
        }
    }

    /// Reads an object; `None` when absent. An object larger than [`MAX_OBJECT_BYTES`] is
    /// [`Error::Corrupt`], and its body is not read.
    pub async fn read(&self, key: &Key) -> Result<Option<Object>> {
        match self.get(key, GetOptions::default()).await {
            Ok(Got::Object(obj)) => Ok(Some(obj)),
            Ok(Got::TooLarge(size)) => Err(too_large(key, size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(classify("read", key, e)),
        }
    }

    /// Reads an object only if its etag is no longer `etag` (conditional GET,
    /// `If-None-Match`). An unchanged object costs a 304 and no body. An object larger than
    /// [`MAX_OBJECT_BYTES`] is [`Error::Corrupt`], and its body is not read.
    pub async fn read_if_changed(&self, key: &Key, etag: &str) -> Result<ReadIfChanged> {
        let opts = GetOptions::new().with_if_none_match(Some(etag));
        match self.get(key, opts).await {
            Ok(Got::Object(obj)) if obj.etag.as_deref() == Some(etag) => {
                Ok(ReadIfChanged::Unchanged)
            }
            Ok(Got::Object(obj)) => Ok(ReadIfChanged::Changed(obj)),
            Ok(Got::TooLarge(size)) => Err(too_large(key, size)),
            Err(object_store::Error::NotModified { .. }) => Ok(ReadIfChanged::Unchanged),
            Err(object_store::Error::NotFound { .. }) => Ok(ReadIfChanged::Missing),
            Err(e) => Err(classify("read", key, e)),
        }
    }

    /// One GET, reading at most [`MAX_OBJECT_BYTES`] of body: a response whose metadata says
    /// more is dropped unread, and a body that turns out longer than the metadata said is
    /// abandoned as soon as it passes the limit.
    async fn get(&self, key: &Key, opts: GetOptions) -> object_store::Result<Got> {
        let path = self.path(key);
        self.timed(async {
            let r = self.inner.get_opts(&path, opts).await?;
            let claimed = r.meta.size.max(r.range.end.saturating_sub(r.range.start));
            if claimed > MAX_OBJECT_BYTES {
                return Ok(Got::TooLarge(Size::Exactly(claimed)));
            }
            let etag = r.meta.e_tag.clone();
            let last_modified = r.meta.last_modified;
            let bytes = match r.payload {
                // A local file reads exactly the range its own metadata gave, checked above.
                #[cfg(not(target_arch = "wasm32"))]
                object_store::GetResultPayload::File(..) => r.bytes().await?,
                object_store::GetResultPayload::Stream(_) => {
                    let mut body = Vec::with_capacity(usize::try_from(claimed).unwrap_or(0));
                    let mut stream = r.into_stream();
                    while let Some(chunk) = stream.try_next().await? {
                        let len = body.len().saturating_add(chunk.len());
                        if u64::try_from(len).map_or(true, |l| l > MAX_OBJECT_BYTES) {
                            return Ok(Got::TooLarge(Size::AtLeast(len)));
                        }
                        body.extend_from_slice(&chunk);
                    }
                    Bytes::from(body)
                }
            };
            Ok(Got::Object(Object {
                key: key.clone(),
                bytes,
                etag,
                last_modified,
            }))
        })
        .await
    }

    /// Creates `key` with `body` only if it does not exist (`If-None-Match: *`).
    /// `write_id` must be the one inside `body`; see the module docs for how an unclear
    /// answer is resolved.
    pub async fn create(
        &self,
        key: &Key,
        body: Bytes,
        write_id: &WriteId,
    ) -> Result<CreateOutcome> {
        let path = self.path(key);
        let mut last_err = None;
        for attempt in 1..=self.options.write_attempts.max(1) {
            let opts = PutOptions::from(PutMode::Create);
            let err = match self
                .timed(
                    self.inner
                        .put_opts(&path, PutPayload::from(body.clone()), opts),
                )
                .await
            {
                Ok(r) => return Ok(CreateOutcome::Created { etag: r.e_tag }),
                Err(e) if is_permanent(&e) => return Err(classify("create", key, e)),
                Err(e) => e,
            };
            match self.verify(key, write_id, &err).await? {
                Verified::Ours(obj) => {
                    debug!(%key, attempt, error = %err, "create landed despite an unclear answer");
                    return Ok(CreateOutcome::Created { etag: obj.etag });
                }
                Verified::Theirs(obj) => return Ok(CreateOutcome::Exists { current: Some(obj) }),
                Verified::Absent if is_refusal(&err) => {
                    // "exists" yet nothing is there: it was removed in between. Try again.
                    debug!(%key, attempt, "create refused but the object is gone; retrying");
                }
                Verified::Absent => {
                    debug!(%key, attempt, error = %err, "create did not land; sending again");
                }
            }
            last_err = Some(err);
        }
        Err(exhausted("create", key, last_err))
    }

    /// Replaces `key` with `body` only if its etag is still `etag` (`If-Match`).
    pub async fn replace(
        &self,
        key: &Key,
        body: Bytes,
        write_id: &WriteId,
        etag: &str,
    ) -> Result<ReplaceOutcome> {
        let path = self.path(key);
        let mut last_err = None;
        for attempt in 1..=self.options.write_attempts.max(1) {
            let opts = PutOptions::from(PutMode::Update(UpdateVersion {
                e_tag: Some(etag.to_string()),
                version: None,
            }));
            let err = match self
                .timed(
                    self.inner
                        .put_opts(&path, PutPayload::from(body.clone()), opts),
                )
                .await
            {
                Ok(r) => return Ok(ReplaceOutcome::Replaced { etag: r.e_tag }),
                Err(e) if is_permanent(&e) => return Err(classify("replace", key, e)),
                Err(e) => e,
            };
            match self.verify(key, write_id, &err).await? {
                Verified::Ours(obj) => {
                    debug!(%key, attempt, error = %err, "replace landed despite an unclear answer");
                    return Ok(ReplaceOutcome::Replaced { etag: obj.etag });
                }
                Verified::Theirs(obj) if obj.etag.as_deref() != Some(etag) => {
                    return Ok(ReplaceOutcome::Conflict { current: Some(obj) })
                }
                Verified::Absent => return Ok(ReplaceOutcome::Conflict { current: None }),
                Verified::Theirs(_) => {
                    debug!(%key, attempt, error = %err, "replace did not land; sending again");
                }
            }
            last_err = Some(err);
        }
        Err(exhausted("replace", key, last_err))
    }

    /// Reads `key` back after a write answered `err`, and says whose object is there.
    async fn verify(
        &self,
        key: &Key,
        write_id: &WriteId,
        err: &object_store::Error,
    ) -> Result<Verified> {
        match self.read(key).await {
            Ok(Some(obj)) if carries_write_id(&obj.bytes, write_id) => Ok(Verified::Ours(obj)),
            Ok(Some(obj)) => Ok(Verified::Theirs(obj)),
            Ok(None) => Ok(Verified::Absent),
            // Something is there that is not a cairn object (too large to read): not an
            // unknown outcome, a corrupt key.
            Err(e @ Error::Corrupt { .. }) => Err(e),
            Err(read_err) => {
                warn!(%key, write_error = %err, read_error = %read_err, "write outcome unknown");
                Err(Error::Ambiguous {
                    key: key.to_string(),
                    reason: format!(
                        "the write failed ({err}) and reading it back failed ({read_err})"
                    ),
                })
            }
        }
    }

    /// Every object below `prefix` (recursive), in key order.
    pub async fn list(&self, prefix: &Key) -> Result<Vec<Listed>> {
        self.list_inner(prefix, None).await
    }

    /// Objects below `prefix` whose key sorts after `offset`, in key order.
    pub async fn list_after(&self, prefix: &Key, offset: &Key) -> Result<Vec<Listed>> {
        self.list_inner(prefix, Some(offset)).await
    }

    async fn list_inner(&self, prefix: &Key, offset: Option<&Key>) -> Result<Vec<Listed>> {
        let p = self.path(prefix);
        let stream = match offset {
            Some(o) => self.inner.list_with_offset(Some(&p), &self.path(o)),
            None => self.inner.list(Some(&p)),
        };
        let metas: Vec<_> = self
            .timed(stream.try_collect::<Vec<_>>())
            .await
            .map_err(|e| classify("list", prefix, e))?;
        let mut out: Vec<Listed> = metas
            .into_iter()
            .filter_map(|m| {
                Some(Listed {
                    key: self.relative(&m.location)?,
                    last_modified: m.last_modified,
                    size: m.size,
                })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The names of the folders directly below `prefix` (one level, sorted).
    pub async fn list_folders(&self, prefix: &Key) -> Result<Vec<String>> {
        let p = self.path(prefix);
        let r = self
            .timed(self.inner.list_with_delimiter(Some(&p)))
            .await
            .map_err(|e| classify("list", prefix, e))?;
        let mut names: Vec<String> = r
            .common_prefixes
            .iter()
            .filter_map(|cp| cp.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Deletes `key`. Used only off the safety path: garbage collection of old versions and
    /// probe scratch objects. An absent key is not an error.
    pub async fn delete(&self, key: &Key) -> Result<()> {
        match self.timed(self.inner.delete(&self.path(key))).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(classify("delete", key, e)),
        }
    }
}

/// What a bounded GET found.
enum Got {
    Object(Object),
    TooLarge(Size),
}

/// How large an oversize object is: as its metadata said, or as far as it was read.
enum Size {
    Exactly(u64),
    AtLeast(usize),
}

fn too_large(key: &Key, size: Size) -> Error {
    let reason = match size {
        Size::Exactly(n) => {
            format!("object of {n} bytes exceeds the 1 MiB limit for a cairn manifest; not read")
        }
        Size::AtLeast(n) => format!(
            "object of at least {n} bytes (its metadata said less) exceeds the 1 MiB limit for \
             a cairn manifest; reading stopped there"
        ),
    };
    Error::Corrupt {
        key: key.to_string(),
        reason,
    }
}

/// Does `bytes` hold a JSON object whose `write_id` is `id`? Anything unparsable is not ours.
fn carries_write_id(bytes: &[u8], id: &WriteId) -> bool {
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        write_id: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Probe<'_>>(bytes)
        .ok()
        .and_then(|p| p.write_id)
        .is_some_and(|w| w == id.0)
}

/// The server's clear "no" to a conditional write (412, 409, 304).
fn is_refusal(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::NotModified { .. }
    )
}

/// Errors that retrying or reading back cannot change.
fn is_permanent(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::NotImplemented { .. }
            | object_store::Error::NotSupported { .. }
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
            | object_store::Error::InvalidPath { .. }
            | object_store::Error::UnknownConfigurationKey { .. }
    )
}

fn classify(operation: &'static str, key: &Key, e: object_store::Error) -> Error {
    let key = key.to_string();
    match e {
        object_store::Error::NotImplemented {
            operation: op,
            implementer,
        } => Error::Unsupported {
            operation: op,
            store: implementer,
        },
        e if is_permanent(&e) => Error::Store {
            operation,
            key,
            source: e,
        },
        e => Error::Unavailable {
            operation,
            key,
            source: e,
        },
    }
}

fn exhausted(operation: &'static str, key: &Key, last: Option<object_store::Error>) -> Error {
    let source = last.unwrap_or_else(|| object_store::Error::Generic {
        store: "cairn",
        source: "no attempt was made".into(),
    });
    Error::Unavailable {
        operation,
        key: key.to_string(),
        source,
    }
}
