//! The crate's one error type. Every variant's message states what happened, in terms of
//! the library (no command-line flag or environment variable of the `cairn` binary: the CLI
//! adds its own hints, `cli::hint`); its docs say what the caller can do.
//!
//! Losing a race is never an error: it is an outcome (`Exists`, `Conflict`, `Busy`, …) of
//! the operation that lost. Errors are for what the caller must handle differently.

use std::time::Duration;

/// Errors returned by cairn. `#[non_exhaustive]`: match the variants you handle and keep a
/// catch-all arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A name (lock, stream, topic, node, …) is not 1–128 characters of `A–Z a–z 0–9 . _ -`,
    /// starts with a dot, or contains `..`. Nothing was sent to the store. Fix the name.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Which rule it broke.
        reason: &'static str,
    },

    /// A store URL or option could not be used. Nothing was sent to the store.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The bucket the store URL names does not exist. Nothing was written; retrying does not
    /// help. Create the bucket, or fix the URL.
    #[error("bucket {} does not exist", .bucket.as_deref().unwrap_or("named in the store URL"))]
    NoSuchBucket {
        /// The bucket's name, when known.
        bucket: Option<String>,
    },

    /// No credentials for the store could be found. Nothing was sent; retrying does not help.
    #[error("no AWS credentials found")]
    NoCredentials {
        /// What the credential provider chain tried.
        detail: String,
    },

    /// There is no store where one was looked for, and a command that only looks never
    /// creates one. Run it in (or below) a directory with a `.cairn` store, or name one with
    /// `--store` / `CAIRN_STORE`.
    #[error("{}", no_store(.named.as_deref(), .looked_in))]
    NoStore {
        /// The `file://` URL that was named, whose directory does not exist; `None` when no
        /// store was named and none was found.
        named: Option<String>,
        /// The directories searched for `.cairn`, nearest first (empty when one was named).
        looked_in: Vec<std::path::PathBuf>,
    },

    /// A conditional write failed in flight and reading the object back failed too, so
    /// cairn cannot say whether the write landed. Read the state again before acting on it.
    #[error("outcome of the write to {key} is unknown: {reason}")]
    Ambiguous {
        /// The key written.
        key: String,
        /// The write's error and the read-back's error.
        reason: String,
    },

    /// The store could not be reached or kept failing (timeouts, 5xx, connection errors).
    /// Nothing was changed as far as cairn could verify. Retry later. The message names the
    /// cause in one line (`src/store/cause.rs`); the full error is the `source`.
    #[error("{}", unavailable(.operation, .key, .source))]
    Unavailable {
        /// What cairn was doing: `read`, `create`, `replace`, `list`, `delete`.
        operation: &'static str,
        /// The key (or prefix) involved.
        key: String,
        /// The last error seen.
        #[source]
        source: object_store::Error,
    },

    /// The store refused the request for a reason retrying does not fix: permissions,
    /// credentials, an unsupported operation.
    #[error("store refused {operation} of {key}: {}", crate::store::cause::summary(.source))]
    Store {
        /// What cairn was doing.
        operation: &'static str,
        /// The key (or prefix) involved.
        key: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },

    /// The capability probe found that the store does not honour a precondition cairn
    /// relies on. cairn refuses to coordinate through it; `check` names what failed.
    #[error("store refused by the capability probe: {check} failed: {detail}")]
    StoreRefused {
        /// The probe step that failed, e.g. `create-if-absent twice`.
        check: &'static str,
        /// What the store did instead.
        detail: String,
    },

    /// The strategy asked for needs an operation this store lacks (for example etag CAS on
    /// the local filesystem). Use the version chain, or let the probe choose.
    #[error("{store} does not support {operation}")]
    Unsupported {
        /// The missing operation.
        operation: String,
        /// The store that lacks it.
        store: String,
    },

    /// This prefix coordinates with another manifest strategy than the one this node was
    /// configured with. Two strategies never serve one prefix (they keep manifests under
    /// different keys, so each would see the other's locks as free). Nothing was written.
    /// Drop the explicit strategy (`--strategy auto`) or use the recorded one.
    #[error("this prefix coordinates with the {recorded} protocol (recorded in {key} by {recorded_by} at {recorded_at}); this node is configured for {configured}")]
    ProtocolMismatch {
        /// The protocol record's key.
        key: String,
        /// The strategy the prefix uses.
        recorded: crate::strategy::Strategy,
        /// The strategy this node was configured with.
        configured: crate::strategy::Strategy,
        /// The node that created the record.
        recorded_by: String,
        /// When.
        recorded_at: chrono::DateTime<chrono::Utc>,
    },

    /// An object under cairn's prefix does not parse as a manifest. It is left untouched;
    /// an operator must repair or remove it.
    #[error("{key} is not a valid cairn manifest: {reason}")]
    Corrupt {
        /// The object's key.
        key: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A manifest, or the prefix's protocol record, was written by a newer cairn in a format
    /// this one does not read. It is left untouched; upgrade this node.
    #[error("{key} has format {found}, this cairn reads up to {supported}: upgrade")]
    UnsupportedFormat {
        /// The object's key.
        key: String,
        /// Format version found.
        found: u32,
        /// Newest format this build reads.
        supported: u32,
    },

    /// A manifest of another kind sits at this key (for example a stream where a lock was
    /// expected). It is left untouched.
    #[error("{key} holds a {found:?} manifest, expected {expected:?}")]
    WrongKind {
        /// The object's key.
        key: String,
        /// The kind the caller asked for.
        expected: &'static str,
        /// The kind stored.
        found: String,
    },

    /// Compare-and-swap lost to other writers on every one of its bounded attempts.
    #[error("{key}: gave up after {attempts} conflicting attempts")]
    Contention {
        /// The manifest's key.
        key: String,
        /// Attempts made.
        attempts: u32,
    },

    /// Another process heartbeats under this node id. Nothing was merged or overwritten; give
    /// one of the two processes another id (`--node`).
    #[error("node id {node} is in use by another process (session {other_session}, started {other_started_at})")]
    DuplicateNode {
        /// The contested node id.
        node: String,
        /// The other process's heartbeat session.
        other_session: String,
        /// When the other process joined.
        other_started_at: chrono::DateTime<chrono::Utc>,
    },

    /// A number (version, fencing token, turn number, log sequence) reached the end of its
    /// range. Numbers never wrap or go backwards, so the operation fails instead; an
    /// operator must retire the object (for example give the lock a new name).
    #[error("{key}: {what} is at the end of its range (u64::MAX); refusing to wrap")]
    Exhausted {
        /// The object's key.
        key: String,
        /// Which number: `version`, `turn`, `sequence`, ….
        what: &'static str,
    },

    /// A held lease was lost (taken over, broken by an operator, or given up when renewals
    /// failed until the holder's deadline). Work done under it may have overlapped another
    /// holder's; its fencing token is stale.
    #[error("lock {lock}: lease lost: {reason}")]
    LockLost {
        /// The lock's name.
        lock: String,
        /// Why.
        reason: crate::loss::LossReason,
    },

    /// A turn's window and jitter are stored with the turn; this client asked for others.
    /// It claimed nothing. Use the stored values, or change them for every node with
    /// `cairn turn configure` / [`crate::turn::Turns::reconfigure`].
    #[error("turn {turn} runs every {stored_window:?} ± {stored_jitter:?} (stored with the turn); this node asked for {asked_window:?} ± {asked_jitter:?}")]
    TurnMismatch {
        /// The turn's name.
        turn: String,
        /// The stored window.
        stored_window: Duration,
        /// The stored jitter.
        stored_jitter: Duration,
        /// The window this client asked for.
        asked_window: Duration,
        /// The jitter this client asked for.
        asked_jitter: Duration,
    },

    /// A wait ran out.
    #[error("timed out after {0:?}")]
    Timeout(Duration),

    /// A value could not be encoded as JSON (a caller's type, never stored data).
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },

    /// This node's wall clock was measured against the store's clock
    /// (`src/store/time.rs`) and is further from it than the bound, so a rule that reads
    /// time was refused: nothing was written. It succeeds once the clock is corrected.
    #[error("{offset}, beyond the {bound:?} bound: {refused} is refused until this node's clock is corrected")]
    ClockOffset {
        /// The measured offset.
        offset: crate::offset::ClockOffset,
        /// The bound ([`crate::manifest::ManifestOptions::max_clock_offset`]).
        bound: Duration,
        /// What was refused.
        refused: &'static str,
    },

    /// The prefix has no protocol record, yet it holds coordination objects (`found` is
    /// one): the record was deleted (a lifecycle rule, a restore, an `rm`). Deciding the
    /// protocol afresh could pick the other strategy and split the fleet (each side sees
    /// the other's locks as free), so the node refuses. Nothing was written. An operator
    /// re-creates the record: `cairn protocol recreate`
    /// ([`crate::CairnBuilder::recreate_protocol`]); running nodes re-create it too.
    #[error("{key} is missing, yet this prefix holds coordination objects (such as {found}): the protocol is not decided afresh over them")]
    ProtocolRecordMissing {
        /// The protocol record's key.
        key: String,
        /// A coordination object found under the prefix.
        found: String,
    },

    /// The prefix's protocol record changed under a running handle: it now names another
    /// strategy (or another version chain `gc_min_age`, or another format), or it no longer
    /// parses. This handle's manifests may no longer be the ones other nodes read, so it
    /// stops coordinating: every later write fails with this error, a heartbeater stops
    /// (`HeartbeatEnd::ProtocolChanged`), and a held lease is lost when its renewals have
    /// failed up to its deadline.
    #[error("the protocol record {key} changed under this running node: it coordinates with {known}, the record now says {now}; this node stops coordinating")]
    ProtocolChanged {
        /// The protocol record's key.
        key: String,
        /// The strategy this handle coordinates with.
        known: crate::strategy::Strategy,
        /// What the record says now.
        now: String,
    },

    /// Re-creating the protocol record with `wanted` is refused: an object present under
    /// the prefix (`found`) was written with the other strategy. Nothing was written.
    #[error("cannot record the {wanted} protocol for this prefix: {found} was written with {written_with}")]
    ProtocolContradicted {
        /// The strategy asked for.
        wanted: crate::strategy::Strategy,
        /// The strategy the object present was written with.
        written_with: crate::strategy::Strategy,
        /// The object.
        found: String,
    },

    /// A record is stored below a version this client saw stored for it, or is gone: its
    /// objects vanished (a lifecycle rule, a restore from backup, an operator's `rm`). The
    /// put was refused, since the version it carries is not above the one seen, and
    /// applying it could bring back a stale value. A put above `seen` still applies.
    #[error("record {key} vanished: this client saw version {seen} stored, and the store now holds {}; refusing to apply an update at or below {seen}", stored.map_or_else(|| "nothing".to_string(), |v| format!("version {v}")))]
    RecordVanished {
        /// The record's key.
        key: String,
        /// The highest version this client saw stored.
        seen: u64,
        /// The version stored now (`None`: the record is gone).
        stored: Option<u64>,
    },
}

impl Error {
    /// A short stable name for the kind of error, for machines: `no-such-bucket`,
    /// `no-credentials`, `unreachable`, `timeout`, … (the CLI prints it under `--json`; the
    /// docs/CLI.md lists them all).
    pub fn kind(&self) -> &'static str {
        use crate::store::cause::{diagnose, Diagnosis};
        match self {
            Error::InvalidName { .. } => "invalid-name",
            Error::Config(_) => "config",
            Error::NoSuchBucket { .. } => "no-such-bucket",
            Error::NoCredentials { .. } => "no-credentials",
            Error::NoStore { .. } => "no-store",
            Error::Ambiguous { .. } => "ambiguous",
            Error::Unavailable { source, .. } => match diagnose(source) {
                Diagnosis::Connect { .. } => "unreachable",
                Diagnosis::Timeout { .. } => "timeout",
                _ => "unavailable",
            },
            Error::Store { source, .. } => match source {
                object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. } => "access-denied",
                _ if diagnose(source).is_access_denied() => "access-denied",
                _ => "store",
            },
            Error::StoreRefused { .. } => "store-refused",
            Error::Unsupported { .. } => "unsupported",
            Error::ProtocolMismatch { .. } => "protocol-mismatch",
            Error::Corrupt { .. } => "corrupt",
            Error::UnsupportedFormat { .. } => "unsupported-format",
            Error::WrongKind { .. } => "wrong-kind",
            Error::Contention { .. } => "contention",
            Error::DuplicateNode { .. } => "duplicate-node",
            Error::Exhausted { .. } => "exhausted",
            Error::LockLost { .. } => "lease-lost",
            Error::TurnMismatch { .. } => "turn-mismatch",
            Error::Timeout(_) => "wait-timeout",
            Error::Encode { .. } => "encode",
            Error::ClockOffset { .. } => "clock-offset",
            Error::ProtocolRecordMissing { .. } => "protocol-record-missing",
            Error::ProtocolChanged { .. } => "protocol-changed",
            Error::ProtocolContradicted { .. } => "protocol-contradicted",
            Error::RecordVanished { .. } => "record-vanished",
        }
    }

    /// Whether the store's configuration is wrong (no such bucket, no credentials): no retry
    /// or read-back can change the outcome.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            Error::NoSuchBucket { .. } | Error::NoCredentials { .. } | Error::NoStore { .. }
        )
    }
}

/// `Unavailable`'s message: a connection or timeout problem names itself; anything else names
/// the operation, the key and the cause.
fn unavailable(operation: &str, key: &str, source: &object_store::Error) -> String {
    use crate::store::cause::{describe, diagnose, Diagnosis};
    let d = diagnose(source);
    match d {
        Diagnosis::Connect { endpoint, reason } => format!(
            "cannot connect to {} ({reason})",
            endpoint.as_deref().unwrap_or("the store")
        ),
        Diagnosis::Timeout { .. } => format!(
            "{} ({operation} of {key}): the store is slow or unreachable",
            describe(&d)
        ),
        _ => format!(
            "store unavailable during {operation} of {key}: {}",
            describe(&d)
        ),
    }
}

fn no_store(named: Option<&str>, looked_in: &[std::path::PathBuf]) -> String {
    match named {
        Some(url) => format!(
            "no cairn store at {url}: the directory does not exist, and nothing was created"
        ),
        None => {
            let shown: Vec<String> = looked_in.iter().map(|p| p.display().to_string()).collect();
            format!("no cairn store here (looked in {})", shown.join(", "))
        }
    }
}

/// Shorthand for `Result<T, cairn::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
