//! The store layer: the only code that talks to `object_store`.
//!
//! It owns the root prefix, the key layout (`src/store/keys.rs`), name validation ([`Name`]), and the
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
//!
//! One answer is not a lost race: a replace refused with 412 while the read-back shows the
//! object still at the very etag that was sent. The store did not accept `If-Match` in the
//! form it was written ([`IfMatchForm`]), and sending the same again cannot help. `replace`
//! looks once (per store) for a form the store honours, checked on a scratch key as the probe
//! checks it, and sends the write again in that form; where there is none, it fails at once
//! with [`Error::Unsupported`]. The form found is kept in the prefix's protocol record
//! (the protocol record (`src/store/protocol.rs`)), so a handle that opens the prefix sends
//! `If-Match` in it from its first replace.

#[cfg(feature = "test-util")]
pub mod fault;
pub mod name;
pub mod probe;
#[cfg(feature = "test-util")]
pub mod quirks;
pub mod url;

internals! {
    mod cause;
    mod keys;
    mod protocol;
    mod time;
}

#[cfg(feature = "aws")]
mod aws;

use std::borrow::Cow;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    GetOptions, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    UpdateVersion,
};
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::error::{Error, Result};
pub use crate::offset::ClockOffset;
pub use keys::{Family, Key};
pub use name::Name;
pub use protocol::WatchOptions;

/// The largest object cairn reads or writes: 1 MiB.
///
/// Everything cairn stores is a small JSON manifest: a lock, turn or member record is a few
/// hundred bytes, a turn's result is capped at 4 KiB (4096 bytes),
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
pub struct WriteId(String);

impl WriteId {
    /// An id of the caller's choosing. It must be unique among the writers of a key: the
    /// read-back after an unclear outcome takes a stored object with this id as ours.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id, owned.
    pub(crate) fn into_string(self) -> String {
        self.0
    }

    /// A fresh random id drawn from `rng`.
    pub(crate) fn random(rng: &mut impl rand::Rng) -> Self {
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
    /// The store's version of the object, where it reports one (GCS's generation, an S3
    /// version id): a store that conditions a replace on it needs it with the etag.
    pub version: Option<String>,
    /// When the store last modified it.
    pub last_modified: DateTime<Utc>,
}

impl Object {
    /// Its etag and version, as a conditional replace of this state sends them.
    pub fn tag(&self) -> Tag {
        Tag {
            etag: self.etag.clone(),
            version: self.version.clone(),
        }
    }
}

/// How the store tells one state of an object from another: its etag and, where the store
/// reports one, its version (GCS's generation). A conditional replace sends both
/// ([`Store::replace`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tag {
    /// The entity tag.
    pub etag: Option<String>,
    /// The store's version of the object.
    pub version: Option<String>,
}

/// Outcome of create-if-absent.
#[derive(Debug)]
#[must_use]
pub enum CreateOutcome {
    /// Our write is stored (possibly found by read-back after an unclear answer).
    Created {
        /// The etag of our object, when the store reports one.
        etag: Option<String>,
        /// Its version, when the store reports one ([`Object::version`]).
        version: Option<String>,
    },
    /// Another writer's object is there; `current` is it, as read back (`None` when it was
    /// gone again by the time of the read-back).
    Exists {
        /// The object in the way.
        current: Option<Object>,
        /// An earlier answer to this write was unclear (lost, timed out, a server error), so
        /// it may have landed and been replaced since: `current` alone cannot say it did not.
        after_unclear: bool,
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
        /// Its version, when the store reports one ([`Object::version`]).
        version: Option<String>,
    },
    /// The object changed since the expected etag; `current` is what is there now (`None`
    /// when it is gone).
    Conflict {
        /// The object now stored.
        current: Option<Object>,
        /// An earlier answer to this write was unclear (lost, timed out, a server error), so
        /// it may have landed and been replaced since: `current` alone cannot say it did not.
        after_unclear: bool,
    },
}

/// How [`Store::replace`] writes the expected etag into `If-Match`.
///
/// RFC 9110 writes an entity tag in quotes, S3 reports etags that way (`"9b2c…"`), and
/// cairn sends the etag exactly as the store reported it. Some servers compare `If-Match`
/// with another form: Ceph RGW 16 answers 412 to the quoted form of the very etag it
/// reported, and accepts the bare value. The capability probe tries the other forms only
/// after the reported one was refused that way, and sets the one that works on the store
/// only once a stale etag in that form has been refused too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IfMatchForm {
    /// The etag exactly as the store reported it. Default.
    #[default]
    AsReported,
    /// Without its surrounding double quotes.
    Unquoted,
    /// In double quotes (added when the store reported it bare).
    Quoted,
}

impl IfMatchForm {
    const ALL: [IfMatchForm; 3] = [Self::AsReported, Self::Unquoted, Self::Quoted];

    /// `etag` written in this form.
    pub fn apply(self, etag: &str) -> Cow<'_, str> {
        // The etag inside its quotes, when it has them.
        let bare = etag.strip_prefix('"').and_then(|e| e.strip_suffix('"'));
        match (self, bare) {
            (Self::AsReported, _) | (Self::Unquoted, None) | (Self::Quoted, Some(_)) => {
                Cow::Borrowed(etag)
            }
            (Self::Unquoted, Some(bare)) => Cow::Borrowed(bare),
            (Self::Quoted, None) => Cow::Owned(format!("\"{etag}\"")),
        }
    }

    /// The forms other than the reported one that write `etag` differently, in the order
    /// worth trying.
    pub fn alternatives(etag: &str) -> impl Iterator<Item = IfMatchForm> + '_ {
        Self::ALL[1..]
            .iter()
            .copied()
            .filter(move |f| f.apply(etag) != etag)
    }

    /// A few words for reports: "as reported", "unquoted", "quoted".
    pub fn describe(self) -> &'static str {
        match self {
            Self::AsReported => "as reported",
            Self::Unquoted => "unquoted",
            Self::Quoted => "quoted",
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::AsReported => 0,
            Self::Unquoted => 1,
            Self::Quoted => 2,
        }
    }

    fn from_u8(v: u8) -> Self {
        Self::ALL
            .get(usize::from(v))
            .copied()
            .unwrap_or(Self::AsReported)
    }
}

/// Outcome of one replace sent with a given [`IfMatchForm`].
#[derive(Debug)]
pub(crate) enum ReplaceAttempt {
    /// The store decided: replaced, or a conflict with another writer.
    Decided(ReplaceOutcome),
    /// 412, yet the object is still at the etag that was sent: the store does not accept
    /// `If-Match` in this form. Nothing was written.
    FormRefused {
        /// The `If-Match` value that was refused.
        sent: String,
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
    /// The store's entity tag, when the listing reports one (S3, the filesystem and memory
    /// do): what a view compares to tell an unchanged object without reading it.
    pub etag: Option<String>,
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
    /// Where the store's requests go (`http://127.0.0.1:4566`), named in the error when a
    /// request gets no answer in time. [`url::open`] reports it for `s3://` URLs
    /// ([`url::Opened::endpoint`]). Default: none (the error says "the store").
    pub endpoint: Option<String>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            write_attempts: 3,
            endpoint: None,
        }
    }
}

/// A bucket (or directory) with a root prefix, and cairn's conditional operations on it.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    root: Path,
    options: StoreOptions,
    /// The [`IfMatchForm`] in force, shared by clones: the probe sets it on the store that
    /// the manifest layer then uses.
    if_match: Arc<AtomicU8>,
    /// What is known of that form, shared by clones; held while `replace` looks for one.
    form_check: Arc<tokio::sync::Mutex<FormCheck>>,
    /// The watch on the protocol record the handle obeys, shared by clones
    /// ([`protocol::ProtocolWatch`]); unset for an observer.
    watch: Arc<std::sync::OnceLock<Arc<protocol::ProtocolWatch>>>,
    /// Times requests (latency metrics, the probe's report): the handle's injected clock.
    clock: Arc<dyn crate::clock::Clock>,
    /// Whether the inner store lists keys in ascending order ([`Store::lists_in_order`]).
    ordered: bool,
}

/// What a [`Store`] knows of its [`IfMatchForm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FormCheck {
    /// Nothing yet: a handle that did not probe.
    Unchecked,
    /// The probe, or a search on a scratch key, saw the store honour it and refuse a stale
    /// etag in it. A later 412 with the object unchanged is taken as transient.
    Verified,
    /// The store honours `If-Match` in no form.
    NoneHonoured,
}

/// How [`Store::put_verified`] ended: the write landed (its etag, if the store gave one),
/// or its caller settled it otherwise.
enum Put<T> {
    Landed {
        etag: Option<String>,
        version: Option<String>,
    },
    Settled(T),
}

/// The state a conditional replace expects the object in: the etag it was read or written
/// with and, where the store reported one, its version.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expected<'a> {
    pub(crate) etag: &'a str,
    pub(crate) version: Option<&'a str>,
}

impl Expected<'_> {
    /// Whether `obj` is another state than the one expected: another etag, or another
    /// version where both are known.
    fn changed_in(&self, obj: &Object) -> bool {
        obj.etag.as_deref() != Some(self.etag)
            || matches!((self.version, obj.version.as_deref()), (Some(a), Some(b)) if a != b)
    }
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
        let ordered = lists_in_order(inner_name(&inner).as_str());
        Ok(Self {
            inner,
            root,
            options,
            if_match: Arc::new(AtomicU8::new(IfMatchForm::AsReported.to_u8())),
            form_check: Arc::new(tokio::sync::Mutex::new(FormCheck::Unchecked)),
            watch: Arc::new(std::sync::OnceLock::new()),
            clock: Arc::new(crate::clock::SystemClock),
            ordered,
        })
    }

    /// This store timing its requests on `clock` (the handle's, so that tests can pause it).
    pub fn with_clock(mut self, clock: Arc<dyn crate::clock::Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The clock requests are timed on.
    pub(crate) fn clock(&self) -> &Arc<dyn crate::clock::Clock> {
        &self.clock
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

    /// The form in which [`Store::replace`] sends the expected etag in `If-Match`.
    pub fn if_match_form(&self) -> IfMatchForm {
        IfMatchForm::from_u8(self.if_match.load(Ordering::Relaxed))
    }

    /// Sets the form in which [`Store::replace`] sends the expected etag, for this store and
    /// its clones, as one the store was seen to honour. The probe sets it when it finds one;
    /// set it by hand only to the form a probe of the same store found.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped call leaves the form as it was or as set; nothing is written.
    pub async fn set_if_match_form(&self, form: IfMatchForm) {
        self.record_form_check(Some(form)).await;
    }

    /// Sends `If-Match` in `form` from now on, as the prefix's protocol record says the
    /// store honours it ([`protocol::ProtocolRecord::if_match_form`]), without the search a
    /// first replace would make. Taken on the record's word only: a 412 in it with the object
    /// unchanged still searches, as on a store never checked.
    pub(crate) fn adopt_if_match_form(&self, form: IfMatchForm) {
        self.if_match.store(form.to_u8(), Ordering::Relaxed);
    }

    /// Records what the probe or a search found: the form honoured, or none.
    async fn record_form_check(&self, found: Option<IfMatchForm>) {
        let mut check = self.form_check.lock().await;
        match found {
            Some(form) => {
                self.if_match.store(form.to_u8(), Ordering::Relaxed);
                *check = FormCheck::Verified;
            }
            None => *check = FormCheck::NoneHonoured,
        }
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

    /// Runs one request under the request timeout. A request without an answer in time, by
    /// this guard or by the HTTP client's own timeout, fails with [`cause::NoAnswer`], which
    /// names the endpoint and the time allowed.
    async fn timed<T>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = object_store::Result<T>>,
    ) -> object_store::Result<T> {
        let no_answer = |endpoint: Option<String>| object_store::Error::Generic {
            store: "cairn",
            source: Box::new(cause::NoAnswer {
                endpoint: endpoint.or_else(|| self.options.endpoint.clone()),
                after: self.options.request_timeout,
            }),
        };
        let started = self.clock.monotonic();
        let (r, timed_out) = match tokio::time::timeout(self.options.request_timeout, fut).await {
            Ok(Err(e)) => match cause::diagnose(&e) {
                cause::Diagnosis::Timeout { endpoint, .. } => {
                    debug!(error = %e, "request timed out");
                    (Err(no_answer(endpoint)), true)
                }
                _ => (Err(e), false),
            },
            Ok(r) => (r, false),
            Err(_) => (Err(no_answer(None)), true),
        };
        crate::telemetry::request(
            op,
            crate::telemetry::outcome(&r, timed_out),
            self.clock.monotonic().saturating_duration_since(started),
        );
        r
    }

    /// Reads an object; `None` when absent. An object larger than [`MAX_OBJECT_BYTES`] is
    /// [`Error::Corrupt`], and its body is not read.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn read(&self, key: &Key) -> Result<Option<Object>> {
        match self.get(key, GetOptions::default()).await {
            Ok(Got::Object(obj)) => Ok(Some(obj)),
            Ok(Got::TooLarge(size)) => Err(too_large(key, size)),
            Err(e) if absent(&e) => Ok(None),
            Err(e) => Err(classify("read", key, e)),
        }
    }

    /// Reads an object only if its etag is no longer `etag` (conditional GET,
    /// `If-None-Match`). An unchanged object costs a 304 and no body. An object larger than
    /// [`MAX_OBJECT_BYTES`] is [`Error::Corrupt`], and its body is not read.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn read_if_changed(&self, key: &Key, etag: &str) -> Result<ReadIfChanged> {
        let opts = GetOptions::new().with_if_none_match(Some(etag));
        match self.get(key, opts).await {
            Ok(Got::Object(obj)) if obj.etag.as_deref() == Some(etag) => {
                Ok(ReadIfChanged::Unchanged)
            }
            Ok(Got::Object(obj)) => Ok(ReadIfChanged::Changed(obj)),
            Ok(Got::TooLarge(size)) => Err(too_large(key, size)),
            Err(object_store::Error::NotModified { .. }) => Ok(ReadIfChanged::Unchanged),
            Err(e) if absent(&e) => Ok(ReadIfChanged::Missing),
            Err(e) => Err(classify("read", key, e)),
        }
    }

    /// One GET, reading at most [`MAX_OBJECT_BYTES`] of body: a response whose metadata says
    /// more is dropped unread, and a body that turns out longer than the metadata said is
    /// abandoned as soon as it passes the limit.
    async fn get(&self, key: &Key, opts: GetOptions) -> object_store::Result<Got> {
        let path = self.path(key);
        self.timed("get", async {
            let r = self.inner.get_opts(&path, opts).await?;
            let claimed = r.meta.size.max(r.range.end.saturating_sub(r.range.start));
            if claimed > MAX_OBJECT_BYTES {
                return Ok(Got::TooLarge(Size::Exactly(claimed)));
            }
            let etag = r.meta.e_tag.clone();
            let version = r.meta.version.clone();
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
                version,
                last_modified,
            }))
        })
        .await
    }

    /// Creates `key` with `body` only if it does not exist (`If-None-Match: *`).
    /// `write_id` must be the one inside `body`; see the module docs for how an unclear
    /// answer is resolved.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a dropped call may or may not have written, as when an answer is lost;
    /// the stored object is whole either way (each write is one conditional PUT of a whole
    /// object). Read again to learn which.
    pub async fn create(
        &self,
        key: &Key,
        body: Bytes,
        write_id: &WriteId,
    ) -> Result<CreateOutcome> {
        let settle = |current, err: &_, attempt, after_unclear| {
            match current {
                Some(obj) => Some(CreateOutcome::Exists {
                    current: Some(obj),
                    after_unclear,
                }),
                None if is_refusal(err) => {
                    // "exists" yet nothing is there: it was removed in between. Try again.
                    debug!(%key, attempt, "create refused but the object is gone; retrying");
                    None
                }
                None => {
                    debug!(%key, attempt, error = %err, "create did not land; sending again");
                    None
                }
            }
        };
        let put = self.put_verified("create", key, body, write_id, PutMode::Create, settle);
        Ok(match put.await? {
            Put::Landed { etag, version } => CreateOutcome::Created { etag, version },
            Put::Settled(outcome) => outcome,
        })
    }

    /// Replaces `key` with `body` only if its etag is still `etag` (`If-Match`, in the
    /// store's [`IfMatchForm`]). `version` is the object's version as read or written
    /// ([`Object::version`]), sent with the etag: a store that conditions writes on its
    /// version rather than its etag (GCS, on the generation) compares that instead.
    ///
    /// A store that answers 412 while the object is still at `etag` may not accept
    /// `If-Match` in that form. Unless the probe saw it honour that form, `replace` checks
    /// once (per store) on a scratch key, as the probe does, which form the store honours
    /// (create, replace with the current etag, replace with a stale one: a few requests), and
    /// sends the write again in it; a store that ignores a stale etag in that form is
    /// [`Error::StoreRefused`]. Where no form is honoured: [`Error::Unsupported`], at once,
    /// not retried. In a form already seen to work, such a 412 is taken as transient and the
    /// write is sent again, like any other unclear answer.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a dropped call may or may not have written, as when an answer is lost;
    /// the stored object is whole either way (each write is one conditional PUT of a whole
    /// object). Read again to learn which. A dropped search for the `If-Match` form may leave a
    /// scratch object under `_probe/`.
    pub async fn replace(
        &self,
        key: &Key,
        body: Bytes,
        write_id: &WriteId,
        etag: &str,
        version: Option<&str>,
    ) -> Result<ReplaceOutcome> {
        let form = self.if_match_form();
        let verified = *self.form_check.lock().await == FormCheck::Verified;
        let expected = Expected { etag, version };
        let mut refused = match self
            .replace_as(key, body.clone(), write_id, expected, form, verified)
            .await?
        {
            ReplaceAttempt::Decided(outcome) => return Ok(outcome),
            ReplaceAttempt::FormRefused { sent } => vec![sent],
        };
        // Nothing was written, so the same write can go again in a form the store honours.
        if let Some(honoured) = self.find_if_match_form(write_id).await? {
            match self
                .replace_as(key, body, write_id, expected, honoured, true)
                .await?
            {
                ReplaceAttempt::Decided(outcome) => return Ok(outcome),
                ReplaceAttempt::FormRefused { sent } => refused.push(sent),
            }
        }
        Err(Error::Unsupported {
            operation: format!(
                "If-Match with the etag the store reported ({etag}): it answered 412 \
                 Precondition Failed to {} while the object was still at that etag",
                quoted_list(&refused)
            ),
            store: self.inner.to_string(),
        })
    }

    /// The form in which the store honours `If-Match`: as already verified (by the probe,
    /// or by another task meanwhile), or as a search on a scratch key finds it (only once
    /// for this store and its clones). Sets it on the store.
    /// Once found, the form is written into the prefix's protocol record when the record
    /// does not say it yet (a record of an earlier build), so that no later process searches
    /// again ([`protocol::ProtocolWatch`]).
    async fn find_if_match_form(&self, write_id: &WriteId) -> Result<Option<IfMatchForm>> {
        let found = {
            let mut check = self.form_check.lock().await;
            match *check {
                FormCheck::Verified => return Ok(Some(self.if_match_form())),
                FormCheck::NoneHonoured => return Ok(None),
                FormCheck::Unchecked => {}
            }
            debug!("412 with the object unchanged; checking which If-Match form the store honours");
            let found = self.search_if_match_form(write_id).await?;
            match found {
                Some(form) => {
                    debug!(
                        form = form.describe(),
                        "the store honours If-Match in this form"
                    );
                    self.if_match.store(form.to_u8(), Ordering::Relaxed);
                    *check = FormCheck::Verified;
                }
                None => *check = FormCheck::NoneHonoured,
            }
            found
        };
        if let Some(form) = found {
            self.complete_protocol(form, write_id).await;
        }
        Ok(found)
    }

    /// [`Store::replace`] with the expected etag written in `form`. With `verified`, the
    /// store was seen to honour that form, and a 412 with the object unchanged is sent again
    /// like any unclear answer; without, it is [`ReplaceAttempt::FormRefused`].
    pub(crate) async fn replace_as(
        &self,
        key: &Key,
        body: Bytes,
        write_id: &WriteId,
        expected: Expected<'_>,
        form: IfMatchForm,
        verified: bool,
    ) -> Result<ReplaceAttempt> {
        let Expected { etag, version } = expected;
        let sent = form.apply(etag).into_owned();
        let mode = PutMode::Update(UpdateVersion {
            e_tag: Some(sent.clone()),
            version: version.map(str::to_string),
        });
        let settle = |current: Option<Object>, err: &_, attempt, after_unclear| {
            let conflict = |current| {
                Some(ReplaceAttempt::Decided(ReplaceOutcome::Conflict {
                    current,
                    after_unclear,
                }))
            };
            match current {
                Some(obj) if expected.changed_in(&obj) => conflict(Some(obj)),
                None => conflict(None),
                Some(_) if !verified && matches!(err, object_store::Error::Precondition { .. }) => {
                    // The precondition failed, yet the object is at the etag we sent: the
                    // store did not match our `If-Match` value to its own etag. Sending the
                    // same again gets the same answer.
                    debug!(%key, %sent, "412 while the object is still at the etag sent");
                    Some(ReplaceAttempt::FormRefused { sent: sent.clone() })
                }
                Some(_) => {
                    debug!(%key, attempt, error = %err, "replace did not land; sending again");
                    None
                }
            }
        };
        let put = self.put_verified("replace", key, body, write_id, mode, settle);
        Ok(match put.await? {
            Put::Landed { etag, version } => {
                ReplaceAttempt::Decided(ReplaceOutcome::Replaced { etag, version })
            }
            Put::Settled(attempt) => attempt,
        })
    }

    /// The write loop [`Store::create`] and [`Store::replace_as`] share: sends `body` as
    /// `mode` says, at most [`StoreOptions::write_attempts`] times. An answer that is
    /// neither success nor permanent is resolved by reading the object back: our `write_id`
    /// there means the write landed; anything else (`Some` object or `None`) goes to
    /// `settle`, with the error, the attempt and whether any answer so far was unclear
    /// rather than a refusal, and `settle` returns the outcome or `None` to send again.
    async fn put_verified<T>(
        &self,
        operation: &'static str,
        key: &Key,
        body: Bytes,
        write_id: &WriteId,
        mode: PutMode,
        mut settle: impl FnMut(Option<Object>, &object_store::Error, u32, bool) -> Option<T>,
    ) -> Result<Put<T>> {
        let path = self.path(key);
        let mut last_err = None;
        let mut after_unclear = false;
        for attempt in 1..=self.options.write_attempts.max(1) {
            let opts = PutOptions::from(mode.clone());
            let err = match self
                .timed(
                    "put",
                    self.inner
                        .put_opts(&path, PutPayload::from(body.clone()), opts),
                )
                .await
            {
                Ok(r) => {
                    return Ok(Put::Landed {
                        etag: r.e_tag,
                        version: r.version,
                    })
                }
                Err(e) if is_permanent(&e) => return Err(classify(operation, key, e)),
                Err(e) if missing_version(&e) => {
                    // The client refused before sending: nothing was written.
                    return Err(Error::Unsupported {
                        operation: format!(
                            "{operation} of {key} without the object's version: the store \
                             conditions a replace on its version (GCS: the generation), and \
                             none was read with the etag"
                        ),
                        store: self.inner.to_string(),
                    });
                }
                Err(e) => e,
            };
            let unclear = !is_refusal_of(&mode, &err);
            after_unclear |= unclear;
            let current = match self.verify(key, write_id, &err, unclear).await? {
                Verified::Ours(obj) => {
                    debug!(%key, attempt, error = %err, "{operation} landed despite an unclear answer");
                    return Ok(Put::Landed {
                        etag: obj.etag,
                        version: obj.version,
                    });
                }
                Verified::Theirs(obj) => Some(obj),
                Verified::Absent => None,
            };
            if let Some(outcome) = settle(current, &err, attempt, after_unclear) {
                return Ok(Put::Settled(outcome));
            }
            last_err = Some(err);
        }
        Err(exhausted(operation, key, last_err))
    }

    /// Reads `key` back after a write answered `err` (`unclear`: not a refusal), and says
    /// whose object is there.
    async fn verify(
        &self,
        key: &Key,
        write_id: &WriteId,
        err: &object_store::Error,
        unclear: bool,
    ) -> Result<Verified> {
        let not_landed = || {
            if unclear {
                crate::telemetry::ambiguous("not_landed");
            }
        };
        match self.read(key).await {
            Ok(Some(obj)) if carries_write_id(&obj.bytes, write_id) => {
                crate::telemetry::ambiguous("landed");
                Ok(Verified::Ours(obj))
            }
            Ok(Some(obj)) => {
                not_landed();
                Ok(Verified::Theirs(obj))
            }
            Ok(None) => {
                not_landed();
                Ok(Verified::Absent)
            }
            // Something is there that is not a cairn object (too large to read): not an
            // unknown outcome, a corrupt key.
            Err(e @ Error::Corrupt { .. }) => Err(e),
            // The store's configuration is wrong (no bucket, no credentials): the write
            // cannot have landed, and the read-back's error says why.
            Err(read_err) if read_err.is_configuration() => Err(read_err),
            Err(read_err) => {
                crate::telemetry::ambiguous("unknown");
                // Reported once, by whoever handles the error; here only for debugging.
                debug!(%key, write_error = %err, read_error = %read_err, "write outcome unknown");
                let write_cause = cause::summary(err);
                let read_cause = match &read_err {
                    Error::Unavailable { source, .. } | Error::Store { source, .. } => {
                        cause::summary(source)
                    }
                    e => e.to_string(),
                };
                let reason = if write_cause == read_cause {
                    format!("{write_cause} (the write and the read-back both failed)")
                } else {
                    format!(
                        "the write failed ({write_cause}) and reading it back failed \
                         ({read_cause})"
                    )
                };
                Err(Error::Ambiguous {
                    key: key.to_string(),
                    reason,
                })
            }
        }
    }

    /// Every object below `prefix` (recursive), in key order.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn list(&self, prefix: &Key) -> Result<Vec<Listed>> {
        self.list_inner(prefix, None).await
    }

    /// Objects below `prefix` whose key sorts after `offset`, in key order.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn list_after(&self, prefix: &Key, offset: &Key) -> Result<Vec<Listed>> {
        self.list_inner(prefix, Some(offset)).await
    }

    /// Whether the store lists keys in ascending order, so that a listing can stop early
    /// ([`Store::list_first`]): S3 and every S3-compatible server, Google Cloud Storage,
    /// Azure and object_store's in-memory store do. A local directory does not (it lists in
    /// directory order), and neither, as far as cairn can tell, does a store it does not
    /// recognise (a wrapper that does not name its inner store in its `Display`).
    pub fn lists_in_order(&self) -> bool {
        self.ordered
    }

    /// The first `max` objects below `prefix` (after `offset`, when given), in key order,
    /// and whether that is all of them. On a store that lists in order
    /// ([`Store::lists_in_order`]) it reads the listing only as far as `max` objects: at
    /// most ⌈`max`/1000⌉ LIST requests on S3 (one, for `max` ≤ 1000), whatever the folder
    /// holds. Elsewhere it lists everything and keeps the first `max`. When it stopped at
    /// `max` objects, it cannot tell whether more follow and says `false`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn list_first(
        &self,
        prefix: &Key,
        offset: Option<&Key>,
        max: usize,
    ) -> Result<(Vec<Listed>, bool)> {
        if !self.ordered {
            let mut all = self.list_inner(prefix, offset).await?;
            let complete = all.len() <= max;
            all.truncate(max);
            return Ok((all, complete));
        }
        let mut stream = self.listing(self.path(prefix), offset.map(|o| self.path(o)));
        let read = async {
            let mut metas = Vec::new();
            while metas.len() < max {
                match stream.try_next().await? {
                    Some(m) => metas.push(m),
                    None => return Ok((metas, true)),
                }
            }
            Ok((metas, false))
        };
        let (metas, mut complete) = self
            .timed("list", read)
            .await
            .map_err(|e| classify("list", prefix, e))?;
        let mut out = self.listed(metas);
        // A store taken to list in order that does not: what was read is not the first
        // `max`, and nothing after it can be said to be complete.
        if !out.windows(2).all(|w| matches!(w, [a, b] if a.key < b.key)) {
            let mut all = self.list_inner(prefix, offset).await?;
            complete = all.len() <= max;
            all.truncate(max);
            out = all;
        }
        Ok((out, complete))
    }

    /// The listing of `prefix`, after `offset` when given. Keys at or before `offset` are
    /// dropped here too: a server that ignores the offset parameter (Azurite ignores Azure's
    /// `startFrom` unless the client is in emulator mode, and other S3-compatible servers
    /// have ignored `start-after`) would otherwise hand back entries a reader already has or
    /// must not see, and a search for a log's newest entry would take them for newer ones.
    fn listing(
        &self,
        prefix: Path,
        offset: Option<Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<ObjectMeta>> {
        match offset {
            Some(after) => self
                .inner
                .list_with_offset(Some(&prefix), &after)
                .try_filter(move |m| std::future::ready(m.location > after))
                .boxed(),
            None => self.inner.list(Some(&prefix)),
        }
    }

    /// Listed objects as cairn's keys (objects outside the root are left out).
    fn listed(&self, metas: Vec<ObjectMeta>) -> Vec<Listed> {
        metas
            .into_iter()
            .filter_map(|m| {
                Some(Listed {
                    key: self.relative(&m.location)?,
                    last_modified: m.last_modified,
                    size: m.size,
                    etag: m.e_tag,
                })
            })
            .collect()
    }

    async fn list_inner(&self, prefix: &Key, offset: Option<&Key>) -> Result<Vec<Listed>> {
        let stream = self.listing(self.path(prefix), offset.map(|o| self.path(o)));
        let metas: Vec<_> = self
            .timed("list", stream.try_collect::<Vec<_>>())
            .await
            .map_err(|e| classify("list", prefix, e))?;
        let mut out = self.listed(metas);
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The names of the folders directly below `prefix` (one level, sorted).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn list_folders(&self, prefix: &Key) -> Result<Vec<String>> {
        let p = self.path(prefix);
        let r = self
            .timed("list", self.inner.list_with_delimiter(Some(&p)))
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

    /// Overwrites the clock check's scratch object and reads back when the store says it
    /// wrote it (its `Last-Modified`, by the store's clock): two requests, a PUT and a HEAD.
    /// Neither is conditional: every node may overwrite the object, and any version the HEAD
    /// finds was written no earlier than ours began (see `src/store/time.rs`).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: its only write is the clock check's scratch object (`_cairn/clock.json`),
    /// which holds no state; a dropped check leaves the last one in use.
    pub async fn clock_check(&self, body: Bytes) -> Result<DateTime<Utc>> {
        let key = keys::clock();
        let path = self.path(&key);
        self.timed("put", self.inner.put(&path, body.into()))
            .await
            .map_err(|e| classify("put", &key, e))?;
        let meta = self
            .timed("head", self.inner.head(&path))
            .await
            .map_err(|e| classify("read", &key, e))?;
        Ok(meta.last_modified)
    }

    /// Deletes `key`. Used only off the safety path: garbage collection of old versions and
    /// probe scratch objects. An absent key is not an error.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a dropped call may or may not have deleted the object.
    pub async fn delete(&self, key: &Key) -> Result<()> {
        match self
            .timed("delete", self.inner.delete(&self.path(key)))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if absent(&e) => Ok(()),
            Err(e) => Err(classify("delete", key, e)),
        }
    }
}

/// The `Display` of an object store, which names it (and, for object_store's own wrappers,
/// what it wraps).
fn inner_name(inner: &Arc<dyn ObjectStore>) -> String {
    inner.to_string()
}

/// Whether a store of this `Display` lists keys in ascending order: only the stores known
/// to (see [`Store::lists_in_order`]).
fn lists_in_order(name: &str) -> bool {
    const ORDERED: [&str; 4] = [
        "AmazonS3",
        "InMemory",
        "GoogleCloudStorage",
        "MicrosoftAzure",
    ];
    !name.contains("LocalFileSystem") && ORDERED.iter().any(|o| name.contains(o))
}

/// `If-Match: a`, `If-Match: b` and `If-Match: c`.
fn quoted_list(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| format!("`If-Match: {v}`")).collect();
    match items.as_slice() {
        [] => "no If-Match".into(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
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

/// object_store's GCS client refusing a replace that carries no version (it conditions the
/// write on the generation, `UpdateVersion::version`), before any request.
fn missing_version(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::Generic { store: "GCS", source }
        if source.to_string().starts_with("Version required for conditional update"))
}

/// The server's clear "no" to a conditional write of `mode`: 412, 409 or 304, and for a
/// replace also 404, AWS S3's answer to `If-Match` on a key that does not exist (where
/// Ceph answers 412).
fn is_refusal_of(mode: &PutMode, e: &object_store::Error) -> bool {
    is_refusal(e) || (matches!(mode, PutMode::Update(_)) && absent(e))
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

/// Errors that retrying or reading back cannot change: the operation is unsupported or
/// refused, or the store's configuration is wrong (no such bucket, no credentials).
fn is_permanent(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::NotImplemented { .. }
            | object_store::Error::NotSupported { .. }
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
            | object_store::Error::InvalidPath { .. }
            | object_store::Error::UnknownConfigurationKey { .. }
    ) || cause::diagnose(e).is_configuration()
}

/// A "not found" that means the key is absent, not that the bucket is.
fn absent(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. }) && !cause::diagnose(e).is_configuration()
}

fn classify(operation: &'static str, key: &Key, e: object_store::Error) -> Error {
    match cause::diagnose(&e) {
        cause::Diagnosis::NoSuchBucket { bucket } => {
            debug!(%key, error = %e, "no such bucket");
            return Error::NoSuchBucket { bucket };
        }
        cause::Diagnosis::NoCredentials => {
            return Error::NoCredentials {
                detail: e.to_string(),
            }
        }
        _ => {}
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_403_is_a_refusal_of_kind_access_denied_not_an_outage() {
        let e = object_store::Error::Generic {
            store: "GCS",
            source: "Server returned non-2xx status code: 403 Forbidden: no permission".into(),
        };
        assert!(is_permanent(&e));
        let err = classify("read", &keys::protocol(), e);
        assert!(matches!(err, Error::Store { .. }), "{err:?}");
        assert_eq!(err.kind(), "access-denied");
        assert!(err.to_string().contains("403 Forbidden"), "{err}");
    }

    #[test]
    fn if_match_forms_add_and_strip_quotes_and_survive_the_shared_byte() {
        for (etag, unquoted, quoted) in [
            ("\"abc\"", "abc", "\"abc\""),
            ("abc", "abc", "\"abc\""),
            ("\"\"", "", "\"\""),
            ("\"", "\"", "\"\"\""),
            ("", "", "\"\""),
        ] {
            assert_eq!(IfMatchForm::AsReported.apply(etag), etag);
            assert_eq!(IfMatchForm::Unquoted.apply(etag), unquoted, "{etag:?}");
            assert_eq!(IfMatchForm::Quoted.apply(etag), quoted, "{etag:?}");
        }
        for form in IfMatchForm::ALL {
            assert_eq!(IfMatchForm::from_u8(form.to_u8()), form);
        }
        assert_eq!(IfMatchForm::from_u8(200), IfMatchForm::AsReported);
    }

    /// Azure answers a create whose key exists with 412 (Azurite with 409), and object_store
    /// up to 0.14.1 reports it as `Precondition`, not `AlreadyExists`: it is the same clear
    /// "exists" as a 409, with the other writer's object as read back, not an unclear answer.
    #[cfg(feature = "test-util")]
    #[tokio::test]
    async fn a_create_refused_with_precondition_is_exists_as_azure_answers_it() {
        use fault::{Fault, FaultStore, Op, Rule};
        let memory: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let faulty = Arc::new(FaultStore::new(Arc::clone(&memory), 1));
        let store = Store::new(faulty.clone(), "p", StoreOptions::default()).unwrap();
        let key = keys::probe("create-refused");
        let body = |id: &WriteId| Bytes::from(format!("{{\"write_id\":\"{}\"}}", id.0));
        let theirs = WriteId("theirs".into());
        let ours = WriteId("ours".into());
        let CreateOutcome::Created { .. } =
            store.create(&key, body(&theirs), &theirs).await.unwrap()
        else {
            panic!("the first create lands")
        };
        faulty.add(Rule::always(Op::Put, "create-refused", Fault::Status(412)));
        let before = faulty.counts();
        match store.create(&key, body(&ours), &ours).await.unwrap() {
            CreateOutcome::Exists {
                current: Some(current),
                after_unclear: false,
            } => assert!(carries_write_id(&current.bytes, &theirs)),
            other => panic!("expected Exists with their object, not after unclear: {other:?}"),
        }
        // One PUT and one read-back: a refusal is not sent again.
        let after = faulty.counts();
        assert_eq!((after.puts - before.puts, after.gets - before.gets), (1, 1));
    }
}
