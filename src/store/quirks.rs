//! The known quirks of real object stores, each as a [`Hook`] on a
//! [`FaultStore`](super::fault::FaultStore), so a test can put cairn in front of one and
//! prove what the probe concludes there and that no quirk yields two holders or a lost
//! write (`crates/cli/tests/quirks.rs`). Each plays the behaviour as it reaches cairn through an
//! `ObjectStore`:
//!
//! | hook | stores | what it does | what cairn does |
//! |---|---|---|---|
//! | [`Gcs`] | Google Cloud Storage | conditions a replace on the object's generation, not its etag; a replace without one fails in the client | keeps the version it read with the etag and sends both |
//! | [`MissingIsNotFound`] | AWS S3 through a client that passes its answer on | 404 to `If-Match` on a missing key (Ceph answers 412; object_store's own S3 client turns the 404 into `Precondition`) | takes it as the refusal it is: a conflict with nothing there |
//! | [`BareEtagOnly`] | Ceph RGW, Hetzner | honours `If-Match` only with the etag unquoted | the probe finds the form and records it in the protocol record |
//! | [`IgnoresConditions`] | Garage | ignores `If-None-Match` and `If-Match` on PUT | the probe refuses the store |
//! | [`IgnoresOffset`] | Azurite | ignores a listing's `startFrom` (unless the client is in emulator mode) and lists from the start | filters a listing after an offset again on the client |
//! | [`CreateRefusedAs412`] | Azure Blob Storage through object_store 0.13.2 to 0.14.1 | a create that finds the blob answers 412, reported as `Precondition`, not `AlreadyExists` (object_store's S3 client maps R2's 412 itself) | a refusal either way: the object read back decides |
//!
//! Two more belong to the safety issue and are tested with it: AWS's 409
//! `ConditionalRequestConflict` to concurrent conditional writes
//! ([`Fault::Status`](super::fault::Fault::Status) 409, in the conformance suite), and stores
//! that honour conditions one request at a time but not under concurrency (SeaweedFS; the
//! probe races, `crates/cli/tests/probe.rs`). MinIO and Hetzner ignore `If-Match` on DELETE: object_store
//! sends no conditional DELETE and cairn relies on none (coordination sends no DELETE at all;
//! `crates/cli/tests/safety.rs` counts them).

use async_trait::async_trait;
use object_store::path::Path;
use object_store::{
    GetOptions, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutResult, Result,
    UpdateVersion,
};

use super::fault::Hook;

/// Google Cloud Storage as object_store's client meets it: a replace (`PutMode::Update`) is
/// conditioned on the object's generation (`x-goog-if-generation-match`), taken from
/// `UpdateVersion::version`; the etag is not sent, and a replace without a version fails in
/// the client before any request ("Version required for conditional update"). A read reports
/// the generation as the object's version; a listing reports none (the XML listing carries
/// no generation). Etags differ from generations.
///
/// Played on an in-memory store, whose etag (a counter bumped by every write) stands for the
/// generation. No GCS emulator available here honours generation preconditions
/// (`gcp-storage-emulator` 2026.7.19 ignores them on every upload path), so this model is
/// what cairn's GCS support is tested against.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gcs;

impl Gcs {
    /// The etag the model reports for the in-memory store's etag `inner` (quoted, as S3 and
    /// GCS report them).
    fn etag(inner: &str) -> String {
        format!("\"md5-{}\"", inner.trim_matches('"'))
    }

    /// The generation the model reports for the in-memory store's etag `inner`.
    fn generation(inner: &str) -> String {
        inner.trim_matches('"').to_string()
    }

    /// The in-memory store's etag for an etag the model reported; anything else as it is.
    fn inner_etag(reported: &str) -> String {
        match reported
            .strip_prefix("\"md5-")
            .and_then(|r| r.strip_suffix('"'))
        {
            Some(n) => format!("\"{n}\""),
            None => reported.to_string(),
        }
    }
}

#[async_trait]
impl Hook for Gcs {
    fn put_options(&self, path: &Path, mut opts: PutOptions) -> Result<PutOptions> {
        if let PutMode::Update(v) = &opts.mode {
            let Some(generation) = v.version.as_deref() else {
                return Err(object_store::Error::Generic {
                    store: "GCS",
                    source: format!("Version required for conditional update of {path}").into(),
                });
            };
            // The in-memory store compares its quoted etag: the generation stands for it.
            opts.mode = PutMode::Update(UpdateVersion {
                e_tag: Some(format!("\"{generation}\"")),
                version: None,
            });
        }
        Ok(opts)
    }

    async fn committed(&self, _path: &Path, result: PutResult) -> Result<PutResult> {
        let inner = result.e_tag.unwrap_or_default();
        Ok(PutResult {
            e_tag: Some(Self::etag(&inner)),
            version: Some(Self::generation(&inner)),
            ..result
        })
    }

    fn get_options(&self, _path: &Path, mut opts: GetOptions) -> GetOptions {
        opts.if_match = opts.if_match.as_deref().map(Self::inner_etag);
        opts.if_none_match = opts.if_none_match.as_deref().map(Self::inner_etag);
        opts
    }

    fn meta(&self, meta: ObjectMeta) -> ObjectMeta {
        let inner = meta.e_tag.clone().unwrap_or_default();
        ObjectMeta {
            e_tag: Some(Self::etag(&inner)),
            version: Some(Self::generation(&inner)),
            ..meta
        }
    }

    fn listed(&self, meta: ObjectMeta) -> ObjectMeta {
        ObjectMeta {
            version: None,
            ..self.meta(meta)
        }
    }
}

/// AWS S3 through a client that passes its answer on: `If-Match` on a key that does not
/// exist answers 404 `NoSuchKey` (`NotFound`), where Ceph and the in-memory store answer 412.
/// object_store's S3 client turns that 404 into `Precondition` itself; an embedder's own
/// `ObjectStore` over S3 may not.
#[derive(Debug, Clone, Copy, Default)]
pub struct MissingIsNotFound;

#[async_trait]
impl Hook for MissingIsNotFound {
    async fn put_failed(
        &self,
        path: &Path,
        mode: &PutMode,
        error: object_store::Error,
        inner: &dyn ObjectStore,
    ) -> object_store::Error {
        let refused = matches!(error, object_store::Error::Precondition { .. });
        if !(refused && matches!(mode, PutMode::Update(_))) {
            return error;
        }
        match inner.head(path).await {
            Err(object_store::Error::NotFound { .. }) => object_store::Error::NotFound {
                path: path.to_string(),
                source: "404 NoSuchKey: The specified key does not exist.".into(),
            },
            _ => error,
        }
    }
}

/// Ceph RGW 16 and Hetzner: `If-Match` on PUT is compared with the bare etag, so the quoted
/// etag they reported is refused (412, the object unchanged) and the bare one honoured.
/// (The in-memory store reports and compares quoted etags.)
#[derive(Debug, Clone, Copy, Default)]
pub struct BareEtagOnly;

impl Hook for BareEtagOnly {
    fn put_options(&self, _path: &Path, mut opts: PutOptions) -> Result<PutOptions> {
        if let PutMode::Update(UpdateVersion {
            e_tag: Some(sent),
            version,
        }) = &opts.mode
        {
            let compared = if sent.starts_with('"') {
                "\"never-matches\"".to_string()
            } else {
                format!("\"{sent}\"")
            };
            opts.mode = PutMode::Update(UpdateVersion {
                e_tag: Some(compared),
                version: version.clone(),
            });
        }
        Ok(opts)
    }
}

/// Garage: conditional PUTs are plain overwrites (`If-None-Match` and `If-Match` ignored).
/// The fleet's planted defect uses it behind a fixed strategy, which bypasses the probe that
/// refuses it.
#[derive(Debug, Clone, Copy, Default)]
pub struct IgnoresConditions;

impl Hook for IgnoresConditions {
    fn put_options(&self, _path: &Path, opts: PutOptions) -> Result<PutOptions> {
        Ok(PutOptions {
            mode: PutMode::Overwrite,
            ..opts
        })
    }
}

/// Azurite: a listing after an offset (Azure's `startFrom`) is answered from the start, as
/// Azurite does unless the client is in emulator mode ([`Hook::honours_list_offset`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct IgnoresOffset;

impl Hook for IgnoresOffset {
    fn honours_list_offset(&self) -> bool {
        false
    }
}

/// Azure Blob Storage through object_store 0.13.2 to 0.14.1: a create (`If-None-Match: *`)
/// that finds the blob answers 412, which those clients report as `Precondition`, not
/// `AlreadyExists` (0.14.2 maps it; cairn accepts object_store from 0.13.2). Cloudflare R2
/// answers 412 too, but object_store's S3 client maps it.
#[derive(Debug, Clone, Copy, Default)]
pub struct CreateRefusedAs412;

#[async_trait]
impl Hook for CreateRefusedAs412 {
    async fn put_failed(
        &self,
        path: &Path,
        mode: &PutMode,
        error: object_store::Error,
        _inner: &dyn ObjectStore,
    ) -> object_store::Error {
        match (mode, error) {
            (PutMode::Create, object_store::Error::AlreadyExists { .. }) => {
                object_store::Error::Precondition {
                    path: path.to_string(),
                    source: "412 Precondition Failed: At least one of the pre-conditions you \
                             specified did not hold"
                        .into(),
                }
            }
            (_, error) => error,
        }
    }
}
