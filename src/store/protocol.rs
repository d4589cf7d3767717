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
//!
//! # A record that vanishes
//!
//! The record is written once and never rewritten, so it is the first object an age-based
//! lifecycle rule expires (no rule may touch `_cairn/`; see docs/STORES.md). A node that then
//! decided afresh could pick the other strategy, and from then on every node would follow
//! it and see the locks held under the old one as free. So:
//!
//! - **No record, but coordination objects.** A node that finds no record looks at the
//!   prefix (one LIST, its first page: [`Store::survey`], on this path only, so opening a
//!   prefix with a record stays one GET). Anything in cairn's folders (`locks/`, `streams/`,
//!   …; probe scratch objects do not count) means nodes have coordinated here: it refuses
//!   with [`Error::ProtocolRecordMissing`] naming one, and decides nothing. An observer
//!   reads with the strategy the objects' key shapes show, and says the record is missing.
//! - **The operator re-creates it**, explicitly: [`crate::CairnBuilder::recreate_protocol`]
//!   (`cairn protocol recreate`). It lists the whole prefix and infers the strategy in use
//!   from the key shapes (`…/manifest.json`: etag CAS; `…/v/<n>.json`: the version chain);
//!   a strategy they contradict is refused ([`Error::ProtocolContradicted`]).
//! - **Running nodes notice** ([`ProtocolWatch`]): a handle remembers the record it obeys
//!   and its etag, and revalidates it with one conditional GET (a 304 when unchanged),
//!   piggybacked on its writes: before a write that creates a manifest where none existed
//!   (the write that decides a lock is free because nothing is there) when the record was
//!   last confirmed more than [`WatchOptions::before_create`] ago, and before any other
//!   write when more than [`WatchOptions::every`] ago. No task of its own, and in the
//!   steady state no extra request: a lock acquire over a cached free version stays one
//!   request, a stream create one request (within `before_create` of the last check, such
//!   as the open's GET). The cost is one conditional GET per `every` on a busy handle, and
//!   one before the first fresh create after `before_create` of quiet.
//!   A record found **gone** is re-created by the running node exactly as it knows it
//!   (create-if-absent, the same document: it knows the prefix's strategy), with a warning.
//!   A record found **changed** (another strategy or chain `gc_min_age`, or unreadable) is
//!   [`Error::ProtocolChanged`], for that write and every later one: the handle stops
//!   coordinating, and a held lease, whose renewals now fail, is lost at its deadline.
//!
//! # What the store needs, recorded once
//!
//! Beside the strategy the record keeps what the probe found that every request depends on:
//! the form in which the store honours `If-Match` ([`ProtocolRecord::if_match_form`]; Ceph
//! RGW compares the bare etag). A node that opens the prefix sends `If-Match` in that form
//! at once, instead of discovering it at its first replace (a 412, then a search on a
//! `_probe/` scratch key: three PUTs, two GETs and a DELETE), which a short-lived CLI call
//! would otherwise pay every time. A record of an earlier build lacks the field: it is read
//! as before (the first replace searches), and the first node that finds the form completes
//! the record once, with a conditional replace of the etag it read ([`ProtocolWatch`]): of
//! two completers one wins, the other sees the record completed; nothing else in the record
//! changes, so no node sees another protocol.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{info, warn};

use super::keys::Family;
use super::probe::Capabilities;
use super::{
    keys, CreateOutcome, Expected, IfMatchForm, Key, ReadIfChanged, ReplaceAttempt, ReplaceOutcome,
    Store, Tag, WriteId,
};
use crate::clock::Clock;
use crate::error::{Error, Result};

/// cairn's on-storage format version of a manifest envelope. A node refuses a manifest of
/// a newer format.
pub const FORMAT: u32 = 1;

/// The format of the prefix, written into its protocol record: what builds may coordinate
/// on it. A node refuses a prefix of a newer format, so a build that does not know where
/// this one keeps a thing never coordinates beside it.
///
/// - **1**: nodes heartbeat under `members/` as the kind `member` ([`Family::Member`]).
/// - **2**: nodes heartbeat under `nodes/` as the kind `node` ([`Family::Node`]).
/// - **3**: as 2, and a number that starts something (a fencing token, a turn number) is
///   drawn from time when that is above the stored number + 1, so that it never repeats or
///   goes back when stored versions vanish (see `Manifests::next_start`, crate-internal).
///
/// A new prefix is created at the newest format. A prefix keeps the format it was created
/// with for its life, and this build coordinates on either, exactly as the format says: on a
/// prefix of format 1 it reads and writes `members/` as builds of format 1 do, so a fleet
/// upgrades one node at a time; on a prefix of format 2 it numbers as builds of format 2 do.
/// Builds of an older format refuse a prefix of a newer one ([`Error::UnsupportedFormat`])
/// instead of heartbeating where no node of theirs looks, or numbering below this build's.
pub const PROTOCOL_FORMAT: u32 = 3;

/// The `kind` of the protocol record.
const KIND: &str = "protocol";

pub use crate::strategy::Strategy;

/// What a store's capabilities allow (the rest of [`Strategy`] lives in `src/strategy.rs`, below
/// the error type).
impl Strategy {
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
    /// The prefix's format ([`PROTOCOL_FORMAT`] when this build creates it).
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
    /// The form in which the store honours `If-Match`, as the probe (or a node's search at
    /// its first replace) found it: every node sends `If-Match` in it without looking again
    /// (see the module docs). Absent from records of earlier builds, which the first node
    /// that finds the form completes, and where the store honours `If-Match` in no form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_match_form: Option<IfMatchForm>,
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
            format: PROTOCOL_FORMAT,
            kind: KIND.into(),
            strategy,
            write_id: write_id.0,
            created_by: node.into(),
            created_at: now,
            cairn_version: env!("CARGO_PKG_VERSION").into(),
            capabilities: caps.and_then(|c| serde_json::to_value(c).ok()),
            if_match_form: caps
                .filter(|c| c.replace_if_match)
                .and_then(|c| c.if_match_form),
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

    /// The record at `format`: 1 for the operator's re-creation of a prefix whose nodes
    /// heartbeat under `members/` (see [`PROTOCOL_FORMAT`]).
    pub fn with_format(mut self, format: u32) -> Self {
        self.format = format;
        self
    }

    /// Where nodes heartbeat on this prefix: [`Family::Member`] on a prefix of format 1,
    /// [`Family::Node`] on any later one (see [`PROTOCOL_FORMAT`]).
    pub fn node_family(&self) -> Family {
        node_family(self.format)
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

/// Whether a number that starts something is drawn from time on a prefix of `format` (see
/// [`PROTOCOL_FORMAT`]).
pub(crate) fn draws_numbers(format: u32) -> bool {
    format >= 3
}

/// Where nodes heartbeat on a prefix of `format` (see [`PROTOCOL_FORMAT`]).
pub fn node_family(format: u32) -> Family {
    if format <= 1 {
        Family::Member
    } else {
        Family::Node
    }
}

/// Decodes a stored protocol record: format first (a newer one is refused, not guessed at),
/// then kind, then shape. Never panics.
pub fn decode(key: &Key, bytes: &[u8]) -> Result<ProtocolRecord> {
    let value = parse_document(key, bytes, KIND, PROTOCOL_FORMAT)?;
    serde_json::from_value(value).map_err(|e| Error::Corrupt {
        key: key.to_string(),
        reason: format!("bad protocol record: {e}"),
    })
}

/// Parses a stored cairn document and checks its header, in this order: JSON with a numeric
/// `format` (else [`Error::Corrupt`]); a format this build reads, at most `newest` (else
/// [`Error::UnsupportedFormat`]); the expected `kind` (else [`Error::WrongKind`]). Shared by
/// the protocol record and every manifest envelope. Never panics.
pub(crate) fn parse_document(
    key: &Key,
    bytes: &[u8],
    kind: &'static str,
    newest: u32,
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
    if format > u64::from(newest) {
        return Err(Error::UnsupportedFormat {
            key: key.to_string(),
            found: u32::try_from(format).unwrap_or(u32::MAX),
            supported: newest,
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

/// How many listed objects [`Store::survey`] looks at when bounded: S3's first page.
pub const SURVEY_PAGE: usize = 1000;

/// What a look at the prefix's objects found.
#[derive(Debug, Clone, Default)]
pub struct Survey {
    /// The first coordination object found (in cairn's folders, probe scratch excluded).
    pub first: Option<Key>,
    /// An object whose key shape only etag CAS writes (`…/manifest.json`).
    pub etag_cas: Option<Key>,
    /// An object whose key shape only the version chain writes (`…/v/<n>.json`).
    pub version_chain: Option<Key>,
    /// An object under `members/`, where only a prefix of format 1 keeps nodes (looked for
    /// with a listing of its own when a bounded survey stopped before it).
    pub members: Option<Key>,
    /// Whether the whole prefix was listed (else only its first [`SURVEY_PAGE`] objects).
    pub complete: bool,
}

impl Survey {
    /// The prefix format the objects show: 1 where nodes heartbeat under `members/`, else
    /// this build's ([`PROTOCOL_FORMAT`]). What a deleted record is re-created at, and where
    /// an observer of a prefix without a record reads nodes ([`node_family`]). Where no node
    /// has heartbeated (or every record was collected) the objects cannot tell; this build's
    /// format then keeps its own running nodes coordinating across a repair, and builds of
    /// format 1 refuse the prefix instead of coordinating beside them (docs/GUARANTEES.md,
    /// "Formats").
    pub fn format(&self) -> u32 {
        if self.members.is_some() {
            1
        } else {
            PROTOCOL_FORMAT
        }
    }

    /// The strategy the key shapes show (`None`: none shows one), or
    /// [`Error::ProtocolContradicted`] when `wanted` (or, without one, the first shape found)
    /// is contradicted by an object of the other shape.
    pub fn strategy(&self, wanted: Option<Strategy>) -> Result<Option<Strategy>> {
        let shown = match (&self.etag_cas, &self.version_chain) {
            (None, None) => None,
            (Some(_), None) => Some(Strategy::EtagCas),
            (None, Some(_)) => Some(Strategy::VersionChain),
            (Some(_), Some(_)) => {
                // Both shapes: the prefix is split already; whatever is asked, one contradicts.
                let w = wanted.unwrap_or(Strategy::EtagCas);
                return Err(self.contradiction(w));
            }
        };
        match (wanted, shown) {
            (Some(w), Some(s)) if w != s => Err(self.contradiction(w)),
            _ => Ok(shown),
        }
    }

    fn contradiction(&self, wanted: Strategy) -> Error {
        let written_with = wanted.other();
        let found = match written_with {
            Strategy::EtagCas => &self.etag_cas,
            Strategy::VersionChain => &self.version_chain,
        };
        Error::ProtocolContradicted {
            wanted,
            written_with,
            found: found.as_ref().map(Key::to_string).unwrap_or_default(),
        }
    }
}

/// The strategy a listed key's shape shows: `…/manifest.json` only etag CAS writes,
/// `…/v/<number:020>.json` only the version chain (see [`keys`]). Event log entries
/// (`log/…`) are written alike under both, and show none.
pub fn shape_of(key: &Key) -> Option<Strategy> {
    let mut parts = key.as_str().rsplit('/');
    let file = parts.next()?;
    let parent = parts.next()?;
    if key.as_str().starts_with("log/") {
        return None;
    }
    if file == "manifest.json" {
        Some(Strategy::EtagCas)
    } else if parent == "v" && keys::parse_numbered(file).is_some() {
        Some(Strategy::VersionChain)
    } else {
        None
    }
}

impl Store {
    /// The prefix's protocol record, if one was written. One GET.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    #[cfg_attr(feature = "test-util", visibility::make(pub))]
    pub(crate) async fn read_protocol(&self) -> Result<Option<ProtocolRecord>> {
        Ok(self.read_protocol_tagged().await?.map(|(r, _)| r))
    }

    /// The prefix's protocol record with its etag, if one was written. One GET.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    #[cfg_attr(feature = "test-util", visibility::make(pub))]
    pub(crate) async fn read_protocol_tagged(&self) -> Result<Option<(ProtocolRecord, Tag)>> {
        let key = keys::protocol();
        match self.read(&key).await? {
            Some(obj) => Ok(Some((decode(&key, &obj.bytes)?, obj.tag()))),
            None => Ok(None),
        }
    }

    /// Creates the protocol record unless one exists, and returns the record in force:
    /// ours, or the one another node wrote first. One request when ours wins.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a dropped call may or may not have written, as when an answer is lost;
    /// the stored object is whole either way (each write is one conditional PUT of a whole
    /// object). Read again to learn which.
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    #[cfg_attr(feature = "test-util", visibility::make(pub))]
    pub(crate) async fn create_protocol(&self, record: &ProtocolRecord) -> Result<ProtocolRecord> {
        Ok(self.create_protocol_tagged(record).await?.0)
    }

    /// [`Store::create_protocol`], with the etag and version of the record in force.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a dropped call may or may not have written, as when an answer is lost;
    /// the stored object is whole either way (each write is one conditional PUT of a whole
    /// object). Read again to learn which.
    #[cfg_attr(feature = "test-util", visibility::make(pub))]
    pub(crate) async fn create_protocol_tagged(
        &self,
        record: &ProtocolRecord,
    ) -> Result<(ProtocolRecord, Tag)> {
        let key = keys::protocol();
        let bytes = serde_json::to_vec(record).map_err(|source| Error::Encode {
            what: "protocol record",
            source,
        })?;
        let id = WriteId(record.write_id.clone());
        match self.create(&key, Bytes::from(bytes), &id).await? {
            CreateOutcome::Created { etag, version } => Ok((record.clone(), Tag { etag, version })),
            CreateOutcome::Exists {
                current: Some(obj), ..
            } => Ok((decode(&key, &obj.bytes)?, obj.tag())),
            CreateOutcome::Exists { current: None, .. } => match self.read_protocol_tagged().await?
            {
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

    /// Looks at the objects under the prefix for coordination objects and their key shapes:
    /// the first `limit` listed (one LIST on S3 for 1000, and one more of `members/` when it
    /// stopped before seeing all), or all of them (`None`: one LIST per thousand objects).
    /// Objects outside cairn's folders (probe scratch objects, the protocol record, anything
    /// foreign) are skipped; the listing starts after the probe's folder, so none of those
    /// before it is even listed.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    #[cfg_attr(feature = "test-util", visibility::make(pub))]
    pub(crate) async fn survey(&self, limit: Option<usize>) -> Result<Survey> {
        let root = keys::from_listed(String::new());
        // Every cairn folder sorts after `_probe/…` (`_` is below every lower-case letter).
        let offset = self.path(&keys::from_listed("_probe0".into()));
        let mut stream = self.listing(self.root.clone(), Some(offset));
        let collect = async {
            let mut survey = Survey {
                complete: true,
                ..Survey::default()
            };
            let mut listed = 0usize;
            while let Some(meta) = stream.try_next().await? {
                if limit.is_some_and(|l| listed >= l) {
                    survey.complete = false;
                    break;
                }
                listed = listed.saturating_add(1);
                let Some(key) = self.relative(&meta.location) else {
                    continue;
                };
                if !keys::is_coordination(&key) {
                    continue;
                }
                match shape_of(&key) {
                    Some(Strategy::EtagCas) if survey.etag_cas.is_none() => {
                        survey.etag_cas = Some(key.clone());
                    }
                    Some(Strategy::VersionChain) if survey.version_chain.is_none() => {
                        survey.version_chain = Some(key.clone());
                    }
                    _ => {}
                }
                if survey.members.is_none() && key.as_str().starts_with("members/") {
                    survey.members = Some(key.clone());
                }
                if survey.first.is_none() {
                    survey.first = Some(key);
                }
                // Bounded: enough once a coordination object and a shape are seen.
                let shaped = survey.etag_cas.is_some() || survey.version_chain.is_some();
                if limit.is_some() && shaped {
                    survey.complete = false;
                    break;
                }
            }
            // Stopped early, before `members/` perhaps (`locks/` and `log/` sort first): where
            // nodes heartbeat is looked for on its own, one LIST of `members/` for its first
            // object.
            if !survey.complete && survey.members.is_none() {
                let members = Family::Member.folder();
                let mut listed = self.listing(self.path(&members), None);
                if let Some(meta) = listed.try_next().await? {
                    survey.members = self.relative(&meta.location);
                }
            }
            Ok(survey)
        };
        self.timed("list", collect)
            .await
            .map_err(|e| super::classify("list", &root, e))
    }

    /// Sets the watch on the protocol record this store's handle obeys (see
    /// [`ProtocolWatch`]). Set once, by [`crate::CairnBuilder::build`].
    pub(crate) fn watch_protocol(&self, watch: ProtocolWatch) {
        let _ = self.watch.set(Arc::new(watch));
    }

    /// Revalidates the prefix's protocol record when due (see `src/store/protocol.rs`), before a
    /// write: `fresh` for a write that creates a manifest where none existed.
    /// [`Error::ProtocolChanged`] when the record changed. A store without a watch (an
    /// observer, or one used directly) checks nothing.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped check leaves the record's last confirmation as it was, so the
    /// next write checks again. (Where the record had vanished, the record it re-creates may or
    /// may not have been written; the next check reads it either way.)
    #[cfg_attr(feature = "test-util", visibility::make(pub))]
    pub(crate) async fn check_protocol(&self, fresh: bool) -> Result<()> {
        match self.watch.get() {
            Some(w) => w.check(self, fresh).await,
            None => Ok(()),
        }
    }

    /// Writes `form`, just found to be the one the store honours, into the protocol record
    /// this handle obeys, unless the record says one already ([`ProtocolWatch::complete`]).
    /// Best effort: a record left incomplete costs only another search, in a later process.
    pub(crate) async fn complete_protocol(&self, form: IfMatchForm, seed: &WriteId) {
        if let Some(w) = self.watch.get() {
            w.complete(self, form, seed).await;
        }
    }
}

/// When a running handle revalidates the protocol record it obeys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchOptions {
    /// Before any write, when the record was last confirmed longer ago than this.
    /// Default 30 s.
    pub every: Duration,
    /// Before a write that creates a manifest where none existed, when the record was last
    /// confirmed longer ago than this. Default 1 s.
    pub before_create: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(30),
            before_create: Duration::from_secs(1),
        }
    }
}

/// A running handle's watch on the protocol record it obeys: the record, its etag when last
/// confirmed, and when (on the injected clock's monotonic side). See the module docs.
#[derive(Debug)]
pub struct ProtocolWatch {
    record: ProtocolRecord,
    clock: Arc<dyn Clock>,
    options: WatchOptions,
    state: tokio::sync::Mutex<WatchState>,
}

#[derive(Debug)]
struct WatchState {
    /// The write id of the record as last confirmed (a completion changes it).
    write_id: String,
    /// The `If-Match` form the record says, as last confirmed.
    form: Option<IfMatchForm>,
    /// The record's etag and version, as last confirmed.
    tag: Tag,
    confirmed: Instant,
    /// What the record said when it was found changed: from then on every check fails.
    changed: Option<String>,
}

impl ProtocolWatch {
    /// A watch on `record`, read (or written) with `tag` just now.
    pub fn new(
        record: ProtocolRecord,
        tag: Tag,
        clock: Arc<dyn Clock>,
        options: WatchOptions,
    ) -> Self {
        let confirmed = clock.monotonic();
        Self {
            state: tokio::sync::Mutex::new(WatchState {
                write_id: record.write_id.clone(),
                form: record.if_match_form,
                tag,
                confirmed,
                changed: None,
            }),
            record,
            clock,
            options,
        }
    }

    /// Completes a record that does not say the store's `If-Match` form (one of an earlier
    /// build) with `form`, just found by a search (see the module docs): one conditional
    /// replace of the record, `If-Match` the etag this handle confirmed, in `form`, with a
    /// write id derived from `seed` (the write that led to the search, itself unique). Of
    /// two completers one wins; the other's replace conflicts, and it adopts the winner's
    /// record when it says the same protocol (else its next check reports the change).
    /// Nothing else in the record changes. Best effort: an error is logged, not returned.
    async fn complete(&self, store: &Store, form: IfMatchForm, seed: &WriteId) {
        let mut st = self.state.lock().await;
        if st.form.is_some() || st.changed.is_some() {
            return;
        }
        let Some(etag) = st.tag.etag.clone() else {
            return;
        };
        let expected = Expected {
            etag: &etag,
            version: st.tag.version.as_deref(),
        };
        let key = keys::protocol();
        let mut record = self.record.clone();
        record.if_match_form = Some(form);
        record.write_id = format!("{}-protocol", seed.0);
        let Ok(bytes) = serde_json::to_vec(&record) else {
            return;
        };
        let id = WriteId(record.write_id.clone());
        let started = self.clock.monotonic();
        match store
            .replace_as(&key, Bytes::from(bytes), &id, expected, form, true)
            .await
        {
            Ok(ReplaceAttempt::Decided(ReplaceOutcome::Replaced { etag, version })) => {
                info!(
                    key = %key,
                    form = form.describe(),
                    "recorded the store's If-Match form in the protocol record"
                );
                st.write_id = record.write_id;
                st.form = Some(form);
                st.tag = Tag { etag, version };
                st.confirmed = started;
            }
            Ok(ReplaceAttempt::Decided(ReplaceOutcome::Conflict {
                current: Some(obj), ..
            })) => match decode(&key, &obj.bytes) {
                // Completed by another node first: follow it.
                Ok(found) if self.agrees(&found) => {
                    st.write_id = found.write_id;
                    st.form = found.if_match_form;
                    st.tag = obj.tag();
                    st.confirmed = started;
                }
                // Changed or unreadable: the next check says so.
                _ => {}
            },
            Ok(_) => {}
            Err(e) => warn!(
                key = %key,
                error = %e,
                "could not record the store's If-Match form in the protocol record; \
                 a later process looks for it again"
            ),
        }
    }

    fn changed(&self, now: String) -> Error {
        Error::ProtocolChanged {
            key: keys::protocol().to_string(),
            known: self.record.strategy,
            now,
        }
    }

    /// Whether `other` says what this handle relies on: the same strategy, the same format
    /// (where nodes heartbeat, how numbers are drawn) and, on the version chain, the same
    /// `gc_min_age`.
    fn agrees(&self, other: &ProtocolRecord) -> bool {
        other.strategy == self.record.strategy
            && other.format == self.record.format
            && (self.record.strategy != Strategy::VersionChain
                || other.gc_min_age_ms == self.record.gc_min_age_ms)
    }

    fn describe(other: &ProtocolRecord) -> String {
        let gc = other
            .gc_min_age_ms
            .map(|ms| format!(", gc_min_age {ms} ms"))
            .unwrap_or_default();
        format!(
            "{}{gc}, format {} (recorded by {} at {})",
            other.strategy, other.format, other.created_by, other.created_at
        )
    }

    async fn check(&self, store: &Store, fresh: bool) -> Result<()> {
        let mut st = self.state.lock().await;
        if let Some(now) = &st.changed {
            return Err(self.changed(now.clone()));
        }
        let started = self.clock.monotonic();
        let due = if fresh {
            self.options.before_create
        } else {
            self.options.every
        };
        if started.saturating_duration_since(st.confirmed) < due {
            return Ok(());
        }
        let key = keys::protocol();
        let seen = match st.tag.etag.as_deref() {
            Some(etag) => store.read_if_changed(&key, etag).await?,
            None => match store.read(&key).await? {
                Some(obj) => ReadIfChanged::Changed(obj),
                None => ReadIfChanged::Missing,
            },
        };
        let (found, tag) = match seen {
            ReadIfChanged::Unchanged => {
                st.confirmed = started;
                return Ok(());
            }
            ReadIfChanged::Changed(obj) => match decode(&key, &obj.bytes) {
                Ok(r) => (r, obj.tag()),
                Err(e) => {
                    let now = format!("something unreadable ({e})");
                    st.changed = Some(now.clone());
                    return Err(self.changed(now));
                }
            },
            ReadIfChanged::Missing => {
                warn!(
                    key = %key,
                    strategy = %self.record.strategy,
                    "the protocol record is gone (a lifecycle rule or an operator deleted it); \
                     re-creating the record this node obeys"
                );
                let mut known = self.record.clone();
                known.if_match_form = st.form;
                store.create_protocol_tagged(&known).await?
            }
        };
        if !self.agrees(&found) {
            let mut now = Self::describe(&found);
            if found.format != self.record.format {
                // The strategy may be the same: say what moved.
                now.push_str(&format!(
                    "; this node keeps nodes at format {}, under {}/",
                    self.record.format,
                    self.record.node_family().folder()
                ));
            }
            st.changed = Some(now.clone());
            return Err(self.changed(now));
        }
        if found.write_id != st.write_id && found.if_match_form == st.form {
            info!(
                key = %key,
                "the protocol record was re-created with the same protocol; following it"
            );
        }
        st.write_id = found.write_id;
        st.form = found.if_match_form;
        st.tag = tag;
        st.confirmed = started;
        Ok(())
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
    fn key_shapes_show_the_strategy_and_a_contradicting_one_is_refused() {
        let k = |s: &str| keys::from_listed(s.into());
        assert_eq!(
            shape_of(&k("locks/a/manifest.json")),
            Some(Strategy::EtagCas)
        );
        assert_eq!(
            shape_of(&k("records/ns/v/v/00000000000000000003.json")),
            Some(Strategy::VersionChain)
        );
        // Log entries are written alike under both strategies, even in a topic named v.
        assert_eq!(shape_of(&k("log/v/00000000000000000003.json")), None);
        assert_eq!(shape_of(&k("locks/v/3.json")), None);
        assert!(keys::is_coordination(&k("log/t/00000000000000000001.json")));
        assert!(keys::is_coordination(&k("app/a/manifest.json")));
        assert!(keys::is_coordination(&k("nodes/n/manifest.json")));
        assert!(keys::is_coordination(&k("members/n/manifest.json")));
        assert!(!keys::is_coordination(&k("_probe/x.json")));
        assert!(!keys::is_coordination(&k("_cairn/protocol.json")));
        assert!(!keys::is_coordination(&k("backups/x")));

        let chain = Survey {
            first: Some(k("locks/a/v/00000000000000000001.json")),
            version_chain: Some(k("locks/a/v/00000000000000000001.json")),
            ..Survey::default()
        };
        assert_eq!(chain.strategy(None).unwrap(), Some(Strategy::VersionChain));
        assert!(matches!(
            chain.strategy(Some(Strategy::EtagCas)),
            Err(Error::ProtocolContradicted {
                written_with: Strategy::VersionChain,
                ..
            })
        ));
        let both = Survey {
            etag_cas: Some(k("locks/b/manifest.json")),
            ..chain.clone()
        };
        for wanted in [None, Some(Strategy::EtagCas), Some(Strategy::VersionChain)] {
            assert!(both.strategy(wanted).is_err(), "{wanted:?}");
        }
        assert_eq!(
            Survey::default().strategy(Some(Strategy::EtagCas)).unwrap(),
            None
        );
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
