//! The manifest envelope: the JSON document every manifest version is stored as.
//!
//! ```json
//! {"format":1,"kind":"lock","version":7,"write_id":"…","previous_write_id":"…",
//!  "written_by":"node-a","written_at":"2026-11-22T10:00:00Z","body":{…}}
//! ```
//!
//! Decoding checks, in this order: the bytes are JSON with a numeric `format` (else
//! `Corrupt`); the format is one this build reads (else `UnsupportedFormat`); the `kind` is
//! the one expected (else `WrongKind`); the header and body have the expected shapes (else
//! `Corrupt`). A document that fails any check is reported and never overwritten.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::{Key, Object, MAX_OBJECT_BYTES};

/// The newest envelope format this build writes and reads: cairn's one format version,
/// also written into the prefix's protocol record.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const FORMAT: u32 = crate::store::protocol::FORMAT;

/// One version of a manifest, as read or as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot<T> {
    /// The manifest version: for the first write a floor drawn from time
    /// (`src/clock.rs` (`floor`); 1 in manifests written before floors), +1 for every
    /// transition. Never reused.
    pub version: u64,
    /// The unique id of the write that stored this version.
    pub write_id: String,
    /// The write id of the version this one replaced (`None` for the first version).
    pub previous_write_id: Option<String>,
    /// The node that wrote it.
    pub written_by: String,
    /// The writer's wall-clock time when it wrote it (informational: clocks may be skewed).
    pub written_at: DateTime<Utc>,
    /// The document.
    pub body: T,
    /// The store's etag of the object (etag CAS strategy), if known.
    pub(crate) etag: Option<String>,
    /// The store's version of the object, where it reports one (GCS's generation): etag CAS
    /// sends it with the etag.
    pub(crate) object_version: Option<String>,
    /// When this client last knew this version to be the newest (version chain strategy).
    pub(crate) seen: Seen,
    /// The store's `Last-Modified` of the object this version was read from.
    pub(crate) stored_at: StoredAt,
}

impl<T> Snapshot<T> {
    /// When the store wrote this version, by the store's own clock (its `Last-Modified`,
    /// usually whole seconds), if this snapshot was read from the store; `None` for a
    /// version this client wrote and has not read back. Unlike [`Snapshot::written_at`],
    /// no node's wall clock is involved: cairn judges ages (a lease's expiry, a heartbeat's
    /// age) on this timeline.
    pub fn stored_at(&self) -> Option<DateTime<Utc>> {
        self.stored_at.0
    }
}

/// The store's `Last-Modified` of the object a snapshot was read from. It describes where
/// the snapshot came from, not the version, so it never affects equality.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StoredAt(pub(crate) Option<DateTime<Utc>>);

impl PartialEq for StoredAt {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The local monotonic instant, taken just before the request that showed it, at which this
/// client knew a version to be the newest of its manifest: a listing with nothing above it,
/// a GET of the next version answered 404, or its own create on a fresh predecessor. The
/// version chain skips its listings while this is recent (see `chain.rs`). It describes
/// this client's knowledge, not the version, so it never affects equality.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Seen(pub(crate) Option<tokio::time::Instant>);

impl PartialEq for Seen {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

#[derive(Serialize)]
struct Out<'a, T> {
    format: u32,
    kind: &'a str,
    version: u64,
    write_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_write_id: Option<&'a str>,
    written_by: &'a str,
    written_at: DateTime<Utc>,
    body: &'a T,
}

#[derive(Deserialize)]
struct In {
    version: u64,
    write_id: String,
    #[serde(default)]
    previous_write_id: Option<String>,
    written_by: String,
    written_at: DateTime<Utc>,
    body: serde_json::Value,
}

/// Refuses `body` with [`Error::Encode`] when it alone is larger than [`MAX_OBJECT_BYTES`],
/// without keeping its encoding: what a first write checks before the clock check its floor
/// may take ([`crate::manifest::Manifests::floor_time`]), so that an oversized value is still
/// refused before any request. The envelope around it is checked by [`encode`].
pub(crate) fn check_body_size<T: Serialize>(kind: &str, body: &T) -> Result<()> {
    /// Counts bytes, and stops the encoding once past the limit.
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = u64::try_from(buf.len()).unwrap_or(u64::MAX);
            self.0 = self.0.saturating_add(n);
            if self.0 > MAX_OBJECT_BYTES {
                return Err(std::io::Error::other("over the limit"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, body) {
        Ok(()) => Ok(()),
        Err(_) if count.0 > MAX_OBJECT_BYTES => Err(Error::Encode {
            what: "manifest",
            source: serde::ser::Error::custom(format!(
                "{kind} of more than {MAX_OBJECT_BYTES} bytes exceeds the 1 MiB limit for a \
                 cairn manifest (MAX_OBJECT_BYTES = {MAX_OBJECT_BYTES})"
            )),
        }),
        Err(source) => Err(Error::Encode {
            what: "manifest",
            source,
        }),
    }
}

/// Encodes one version. A document larger than [`MAX_OBJECT_BYTES`] (a caller's oversized
/// value: stream metadata, a record value, a log event) is refused with [`Error::Encode`]
/// before any request: no reader would accept it.
pub(crate) fn encode<T: Serialize>(kind: &str, s: &Snapshot<T>) -> Result<bytes::Bytes> {
    let out = Out {
        format: FORMAT,
        kind,
        version: s.version,
        write_id: &s.write_id,
        previous_write_id: s.previous_write_id.as_deref(),
        written_by: &s.written_by,
        written_at: s.written_at,
        body: &s.body,
    };
    let bytes = serde_json::to_vec(&out).map_err(|source| Error::Encode {
        what: "manifest",
        source,
    })?;
    if u64::try_from(bytes.len()).map_or(true, |n| n > MAX_OBJECT_BYTES) {
        return Err(Error::Encode {
            what: "manifest",
            source: serde::ser::Error::custom(format!(
                "{kind} of {} bytes exceeds the 1 MiB limit for a cairn manifest \
                 (MAX_OBJECT_BYTES = {MAX_OBJECT_BYTES})",
                bytes.len()
            )),
        });
    }
    Ok(bytes::Bytes::from(bytes))
}

/// A body as read, not yet decoded to its type: what a strategy hands back
/// ([`super::protocol::Protocol`] works on every manifest whatever its body), with the key it
/// was read from, which a body of the wrong shape is reported at.
#[derive(Debug)]
pub(crate) struct RawBody {
    key: Key,
    value: serde_json::Value,
}

impl Snapshot<RawBody> {
    /// The version with its body decoded to `T`: [`Error::Corrupt`] (at the key it was read
    /// from) when the body has another shape.
    pub(crate) fn typed<T: DeserializeOwned>(self, kind: &str) -> Result<Snapshot<T>> {
        let body = serde_json::from_value(self.body.value).map_err(|e| Error::Corrupt {
            key: self.body.key.to_string(),
            reason: format!("bad {kind} body: {e}"),
        })?;
        Ok(Snapshot {
            version: self.version,
            write_id: self.write_id,
            previous_write_id: self.previous_write_id,
            written_by: self.written_by,
            written_at: self.written_at,
            body,
            etag: self.etag,
            object_version: self.object_version,
            seen: self.seen,
            stored_at: self.stored_at,
        })
    }
}

/// Decodes one stored version, checking format, kind and shape.
pub(crate) fn decode<T: DeserializeOwned>(kind: &'static str, obj: &Object) -> Result<Snapshot<T>> {
    decode_raw(kind, obj)?.typed(kind)
}

/// Decodes one stored version's envelope, checking format, kind and the header's shape; the
/// body's shape is checked by [`Snapshot::typed`].
pub(crate) fn decode_raw(kind: &'static str, obj: &Object) -> Result<Snapshot<RawBody>> {
    decode_raw_bytes(kind, &obj.key, &obj.bytes).map(|mut s| {
        s.etag = obj.etag.clone();
        s.object_version = obj.version.clone();
        s.stored_at = StoredAt(Some(obj.last_modified));
        s
    })
}

fn decode_raw_bytes(kind: &'static str, key: &Key, bytes: &[u8]) -> Result<Snapshot<RawBody>> {
    let value = crate::store::protocol::parse_document(key, bytes, kind, FORMAT)?;
    let header: In = serde_json::from_value(value).map_err(|e| Error::Corrupt {
        key: key.to_string(),
        reason: format!("bad envelope: {e}"),
    })?;
    Ok(Snapshot {
        version: header.version,
        write_id: header.write_id,
        previous_write_id: header.previous_write_id,
        written_by: header.written_by,
        written_at: header.written_at,
        body: RawBody {
            key: key.clone(),
            value: header.body,
        },
        etag: None,
        object_version: None,
        seen: Seen::default(),
        stored_at: StoredAt::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::keys;
    use proptest::prelude::*;

    fn key() -> Key {
        keys::probe("t")
    }

    fn decode_bytes<T: DeserializeOwned>(
        kind: &'static str,
        key: &Key,
        bytes: &[u8],
    ) -> Result<Snapshot<T>> {
        decode_raw_bytes(kind, key, bytes)?.typed(kind)
    }

    #[test]
    fn round_trips() {
        let s = Snapshot {
            version: 3,
            write_id: "w".into(),
            previous_write_id: Some("p".into()),
            written_by: "n".into(),
            written_at: DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap(),
            body: serde_json::json!({"a": 1}),
            etag: None,
            object_version: None,
            seen: Seen::default(),
            stored_at: StoredAt::default(),
        };
        let b = encode("k", &s).unwrap();
        let back: Snapshot<serde_json::Value> = decode_bytes("k", &key(), &b).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn newer_format_and_other_kind_are_typed_errors() {
        let newer = br#"{"format":2,"kind":"k","version":1}"#;
        assert!(matches!(
            decode_bytes::<serde_json::Value>("k", &key(), newer),
            Err(Error::UnsupportedFormat { found: 2, .. })
        ));
        let other = br#"{"format":1,"kind":"stream","version":1}"#;
        assert!(matches!(
            decode_bytes::<serde_json::Value>("lock", &key(), other),
            Err(Error::WrongKind { .. })
        ));
    }

    #[test]
    fn a_document_over_the_limit_is_refused() {
        let s = |len: usize| Snapshot {
            version: 1,
            write_id: "w".into(),
            previous_write_id: None,
            written_by: "n".into(),
            written_at: DateTime::<Utc>::from_timestamp(0, 0).unwrap(),
            body: "x".repeat(len),
            etag: None,
            object_version: None,
            seen: Seen::default(),
            stored_at: StoredAt::default(),
        };
        let limit = usize::try_from(MAX_OBJECT_BYTES).unwrap();
        assert!(encode("k", &s(limit - 1024)).is_ok());
        match encode("k", &s(limit)) {
            Err(Error::Encode { source, .. }) => {
                assert!(source.to_string().contains("exceeds the 1 MiB limit"))
            }
            other => panic!("expected Encode, got {other:?}"),
        }
    }

    proptest! {
        // Whatever bytes storage hands back, decoding returns a value or a typed error and
        // never panics.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_bytes::<serde_json::Value>("k", &key(), &bytes);
        }

        #[test]
        fn decoding_mutated_manifests_never_panics(cut in 0usize..200, flip in 0usize..200, byte in any::<u8>()) {
            let s = Snapshot { version: 9, write_id: "w".into(), previous_write_id: None,
                written_by: "n".into(), written_at: DateTime::<Utc>::from_timestamp(0, 0).unwrap(),
                body: serde_json::json!({"holder": "x", "n": [1, 2]}), etag: None, object_version: None, seen: Seen::default(), stored_at: StoredAt::default() };
            let mut b = encode("k", &s).unwrap().to_vec();
            if flip < b.len() { b[flip] = byte; }
            b.truncate(cut.min(b.len()));
            let _ = decode_bytes::<serde_json::Value>("k", &key(), &b);
        }
    }
}
