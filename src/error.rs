//! The crate's one error type. Every variant says what happened and what the caller can do.
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
    /// Nothing was changed as far as cairn could verify. Retry later.
    #[error("store unavailable during {operation} of {key}: {source}")]
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
    #[error("store refused {operation} of {key}: {source}")]
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
    #[error("this prefix coordinates with the {recorded} protocol (recorded in {key} by {recorded_by} at {recorded_at}); this node is configured for {configured}: use --strategy auto or {recorded}")]
    ProtocolMismatch {
        /// The protocol record's key.
        key: String,
        /// The strategy the prefix uses.
        recorded: crate::store::protocol::Strategy,
        /// The strategy this node was configured with.
        configured: crate::store::protocol::Strategy,
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

    /// A manifest was written by a newer cairn in a format this one does not read. It is left
    /// untouched; upgrade this node.
    #[error("{key} has manifest format {found}, this cairn reads up to {supported}: upgrade")]
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
    LeaseLost {
        /// The lock's name.
        lock: String,
        /// Why.
        reason: crate::lease::LossReason,
    },

    /// A turn's window and jitter are stored with the turn; this client asked for others.
    /// It claimed nothing. Use the stored values, or change them for every node with
    /// `cairn turn configure` / [`crate::turn::Turns::reconfigure`].
    #[error("turn {turn} runs every {stored_window:?} ± {stored_jitter:?} (stored with the turn); this node asked for {asked_window:?} ± {asked_jitter:?}: drop --every/--jitter, or change the turn for every node with `cairn turn configure {turn} --every … --jitter …`")]
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
}

/// Shorthand for `Result<T, cairn::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
