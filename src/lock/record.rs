//! What a lock stores: its versions' body ([`LockRecord`]) and the fencing token.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::manifest::held::ClaimBody;

/// A lease's fencing token: above the last holder's, drawn from time on a prefix of format
/// 3 (the manifest version it was acquired at on older ones). Strictly increasing across
/// holders, never reused, but not consecutive. Guard a resource with
/// it by comparing (refuse a write whose token is below the highest seen), never by
/// expecting the next number; [`crate::fenced`] does this for objects in the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FencingToken(pub u64);

impl std::fmt::Display for FencingToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What the stored lock says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoredState {
    /// Held by `holder` until released, broken or expired.
    Held,
    /// Released by its holder.
    Released,
    /// Ended by an operator's break.
    Broken,
}

/// The body of a lock manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockRecord {
    /// Held, released or broken.
    pub state: StoredState,
    /// The node that holds (or last held, or broke) the lock.
    pub holder: String,
    /// Unique id of one acquisition, so a node can tell its own writes from a restarted
    /// copy of itself.
    pub session: String,
    /// The fencing token of the current acquisition.
    pub fencing_token: FencingToken,
    /// The holder's ttl, in milliseconds; observers wait this long (plus their margin).
    pub ttl_ms: u64,
    /// When this acquisition began (holder's wall clock).
    pub acquired_at: DateTime<Utc>,
    /// When it was last renewed (holder's wall clock).
    pub renewed_at: DateTime<Utc>,
    /// `renewed_at + ttl` (holder's wall clock). A break keeps the broken lease's value:
    /// the lock stays blocked until that lease can no longer be in use.
    pub expires_at: DateTime<Utc>,
    /// The operator (node id) who broke this lease, when `state` is broken. `holder` and
    /// `session` still name the broken holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken_by: Option<String>,
    /// When the lease was broken (the breaker's wall clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken_at: Option<DateTime<Utc>>,
}

impl ClaimBody for LockRecord {
    fn session(&self) -> &str {
        &self.session
    }

    fn is_open(&self) -> bool {
        self.state == StoredState::Held
    }
}
