//! One protocol per prefix: the record that fixes, once and for every node, how a prefix
//! coordinates.
//!
//! # Why
//!
//! The two manifest strategies keep a manifest under different keys (`…/manifest.json`
//! under etag CAS, `…/v/<version>.json` under the version chain). Two nodes on one prefix
//! with different strategies would each see the other's lock as absent and both acquire
//! it. So the strategy is not a per-node setting: it is a property of the prefix, written
//! once into `<root>/_cairn/protocol.json` with create-if-absent (the first node decides for
//! all, from its capability probe) and read by every node before it coordinates.
//!
//! # Rules
//!
//! - No record: the node probes the store, picks the strategy (or checks that the one it
//!   was configured with is one the store supports), and creates the record. Of racing
//!   creators exactly one wins; the others read the winner's record and obey it.
//! - A record: the node adopts its strategy without probing (one GET). A node configured
//!   with another strategy refuses with [`Error::ProtocolMismatch`]; a node whose own probe
//!   (when it made one) shows the store cannot do what the record says refuses with
//!   [`Error::StoreRefused`].
//! - A record of a newer format is [`Error::UnsupportedFormat`]; one that does not parse is
//!   [`Error::Corrupt`]. Neither is ever overwritten: an operator must look.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::probe::Capabilities;
use super::{keys, CreateOutcome, Key, Store, WriteId};
use crate::error::{Error, Result};

/// cairn's on-storage format version: written into the protocol record and into every
/// manifest envelope. A node refuses a prefix or a manifest of a newer format.
pub const FORMAT: u32 = 1;

/// The `kind` of the protocol record.
const KIND: &str = "protocol";

/// How manifests are stored and replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// One object replaced with `If-Match`.
    EtagCas,
    /// One immutable object a version, created with `If-None-Match: *`.
    VersionChain,
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl Strategy {
    /// Its name where cairn writes one: the protocol record, the CLI, telemetry labels.
    pub fn label(self) -> &'static str {
        match self {
            Strategy::EtagCas => "etag-cas",
            Strategy::VersionChain => "version-chain",
        }
    }

    /// The other strategy.
    pub fn other(self) -> Strategy {
        match self {
            Strategy::EtagCas => Strategy::VersionChain,
            Strategy::VersionChain => Strategy::EtagCas,
        }
    }

    /// The strategy a store with these capabilities runs best: etag CAS where `If-Match`
    /// is honoured, else the version chain.
    pub fn for_capabilities(caps: &Capabilities) -> Strategy {
        if caps.replace_if_match {
            Strategy::EtagCas
        } else {
            Strategy::VersionChain
        }
    }

    /// Whether a store with these capabilities can run this strategy.
    pub fn supported_by(self, caps: &Capabilities) -> bool {
        match self {
            Strategy::EtagCas => caps.create_if_absent && caps.replace_if_match,
            Strategy::VersionChain => caps.create_if_absent,
        }
    }
}

/// The prefix's protocol record (`<root>/_cairn/protocol.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolRecord {
    /// cairn's format version ([`FORMAT`]) when the record was written.
    pub format: u32,
    /// Always `"protocol"`.
    pub kind: String,
    /// The manifest strategy every node on this prefix uses.
    pub strategy: Strategy,
    /// The unique id of the write that created the record.
    pub write_id: String,
    /// The node that created it.
    pub created_by: String,
    /// When (that node's wall clock).
    pub created_at: DateTime<Utc>,
    /// The cairn version that created it.
    pub cairn_version: String,
    /// What that node's capability probe found (informational).
    #[serde(default)]
    pub capabilities: Option<serde_json::Value>,
    /// The version chain's `gc_min_age` on this prefix, in milliseconds: no node collects a
    /// version younger than this, and every node trusts what it knows of a chain's head
    /// without a listing for at most half of it. A setting of the prefix, not of one node
    /// (see `manifest::chain`), so every node adopts it. Absent from records of earlier
    /// builds: each node then uses its own configured value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_min_age_ms: Option<u64>,
}

/// The range a recorded `gc_min_age` must fall in: a stored value outside it is
/// [`Error::Corrupt`], never a shorter collection age.
pub const GC_MIN_AGE_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::ZERO..=Duration::from_secs(30 * 24 * 3600);

impl ProtocolRecord {
    /// A record fixing `strategy`, written by `node` at `now` after a probe found `caps`.
    pub fn new(
        strategy: Strategy,
        node: &str,
        now: DateTime<Utc>,
        caps: Option<&Capabilities>,
        write_id: WriteId,
    ) -> Self {
        Self {
            format: FORMAT,
            kind: KIND.into(),
            strategy,
            write_id: write_id.0,
            created_by: node.into(),
            created_at: now,
            cairn_version: env!("CARGO_PKG_VERSION").into(),
            capabilities: caps.and_then(|c| serde_json::to_value(c).ok()),
            gc_min_age_ms: None,
        }
    }

    /// The record with `gc_min_age` fixed for the prefix (milliseconds, saturating).
    pub fn with_gc_min_age(mut self, gc_min_age: Duration) -> Self {
        self.gc_min_age_ms = Some(u64::try_from(gc_min_age.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// The prefix's `gc_min_age`, if recorded; [`Error::Corrupt`] when the stored value is
    /// outside [`GC_MIN_AGE_RANGE`].
    pub fn gc_min_age(&self) -> Result<Option<Duration>> {
        let Some(ms) = self.gc_min_age_ms else {
            return Ok(None);
        };
        let d = Duration::from_millis(ms);
        if !GC_MIN_AGE_RANGE.contains(&d) {
            return Err(Error::Corrupt {
                key: keys::protocol().to_string(),
                reason: format!(
                    "gc_min_age_ms {ms} is outside {}..={} ms",
                    GC_MIN_AGE_RANGE.start().as_millis(),
                    GC_MIN_AGE_RANGE.end().as_millis()
                ),
            });
        }
        Ok(Some(d))
    }

    /// Checks that a node configured with `configured` (`None`: adopt whatever is recorded)
    /// may coordinate on this prefix; returns the strategy to use.
    pub fn admit(&self, configured: Option<Strategy>) -> Result<Strategy> {
        match configured {
            Some(c) if c != self.strategy => Err(Error::ProtocolMismatch {
                key: keys::protocol().to_string(),
                recorded: self.strategy,
                configured: c,
                recorded_by: self.created_by.clone(),
                recorded_at: self.created_at,
            }),
            _ => Ok(self.strategy),
        }
    }
}

/// Decodes a stored protocol record: format first (a newer one is refused, not guessed at),
/// then kind, then shape. Never panics.
pub fn decode(key: &Key, bytes: &[u8]) -> Result<ProtocolRecord> {
    let value = parse_document(key, bytes, KIND)?;
    serde_json::from_value(value).map_err(|e| Error::Corrupt {
        key: key.to_string(),
        reason: format!("bad protocol record: {e}"),
    })
}

/// Parses a stored cairn document and checks its header, in this order: JSON with a numeric
/// `format` (else [`Error::Corrupt`]); a format this build reads (else
/// [`Error::UnsupportedFormat`]); the expected `kind` (else [`Error::WrongKind`]). Shared by
/// the protocol record and every manifest envelope. Never panics.
pub(crate) fn parse_document(
    key: &Key,
    bytes: &[u8],
    kind: &'static str,
) -> Result<serde_json::Value> {
    let corrupt = |reason: String| Error::Corrupt {
        key: key.to_string(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not JSON: {e}")))?;
    let format = value
        .get("format")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| corrupt("no numeric \"format\" field".into()))?;
    if format > u64::from(FORMAT) {
        return Err(Error::UnsupportedFormat {
            key: key.to_string(),
            found: u32::try_from(format).unwrap_or(u32::MAX),
            supported: FORMAT,
        });
    }
    if format == 0 {
        return Err(corrupt("format 0 is not a cairn format".into()));
    }
    match value.get("kind").and_then(serde_json::Value::as_str) {
        Some(k) if k == kind => Ok(value),
        Some(other) => Err(Error::WrongKind {
            key: key.to_string(),
            expected: kind,
            found: other.to_string(),
        }),
        None => Err(corrupt("no \"kind\" field".into())),
    }
}

impl Store {
    /// The prefix's protocol record, if one was written. One GET.
    pub async fn read_protocol(&self) -> Result<Option<ProtocolRecord>> {
        let key = keys::protocol();
        match self.read(&key).await? {
            Some(obj) => decode(&key, &obj.bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Creates the protocol record unless one exists, and returns the record in force:
    /// ours, or the one another node wrote first. One request when ours wins.
    pub async fn create_protocol(&self, record: &ProtocolRecord) -> Result<ProtocolRecord> {
        let key = keys::protocol();
        let bytes = serde_json::to_vec(record).map_err(|source| Error::Encode {
            what: "protocol record",
            source,
        })?;
        let id = WriteId(record.write_id.clone());
        match self.create(&key, Bytes::from(bytes), &id).await? {
            CreateOutcome::Created { .. } => Ok(record.clone()),
            CreateOutcome::Exists {
                current: Some(obj), ..
            } => decode(&key, &obj.bytes),
            CreateOutcome::Exists { current: None, .. } => match self.read_protocol().await? {
                Some(r) => Ok(r),
                None => Err(Error::Unavailable {
                    operation: "create",
                    key: key.to_string(),
                    source: object_store::Error::Generic {
                        store: "cairn",
                        source: "the protocol record was reported to exist but cannot be read"
                            .into(),
                    },
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_admits_its_own_strategy_and_auto_and_refuses_another() {
        let r = ProtocolRecord::new(
            Strategy::VersionChain,
            "a",
            DateTime::<Utc>::from_timestamp(0, 0).unwrap(),
            None,
            WriteId("w".into()),
        );
        assert_eq!(r.admit(None).unwrap(), Strategy::VersionChain);
        assert_eq!(
            r.admit(Some(Strategy::VersionChain)).unwrap(),
            Strategy::VersionChain
        );
        assert!(matches!(
            r.admit(Some(Strategy::EtagCas)),
            Err(Error::ProtocolMismatch { .. })
        ));
    }

    #[test]
    fn newer_foreign_and_garbage_records_are_typed_errors() {
        let k = keys::protocol();
        assert!(matches!(
            decode(&k, br#"{"format":99,"kind":"protocol"}"#),
            Err(Error::UnsupportedFormat { found: 99, .. })
        ));
        assert!(matches!(
            decode(&k, br#"{"format":1,"kind":"lock"}"#),
            Err(Error::WrongKind { .. })
        ));
        assert!(matches!(
            decode(&k, br#"{"format":1,"kind":"protocol","strategy":"paxos"}"#),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(decode(&k, b"\xff"), Err(Error::Corrupt { .. })));
    }
}
