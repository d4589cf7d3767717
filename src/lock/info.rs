//! What a lock looks like from outside: [`LockInfo`], its [`LockState`], and the outcome of
//! breaking it ([`Break`]).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::record::{FencingToken, LockRecord, StoredState};
use crate::manifest::Snapshot;

/// A lock as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LockInfo {
    /// The lock's name.
    pub name: String,
    /// Held, expired, released or broken.
    pub state: LockState,
    /// Current or last holder (or the operator who broke it).
    pub holder: String,
    /// The fencing token of the last acquisition.
    pub fencing_token: FencingToken,
    /// The lock's manifest version.
    pub version: u64,
    /// When the last acquisition began.
    pub acquired_at: DateTime<Utc>,
    /// When it was last renewed.
    pub renewed_at: DateTime<Utc>,
    /// When it expires unless renewed.
    pub expires_at: DateTime<Utc>,
    /// Who broke the lease, when it was broken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_by: Option<String>,
    /// When it was broken (the breaker's wall clock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_at: Option<DateTime<Utc>>,
}

/// What [`Locks::break_held`](super::Locks::break_held) did.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Break {
    /// The named lease was held (or had expired unreleased) and is broken now; the lock as
    /// written.
    Broken(LockInfo),
    /// The named lease is the lock's current one but is not held: released, or broken
    /// already. Nothing was written.
    NotHeld(LockInfo),
    /// The lock's current lease has another fencing token (a newer acquisition than the one
    /// the operator inspected, or a token that never was). Nothing was written.
    OtherHolder(LockInfo),
}

/// The state of a listed lock, as this node's wall clock sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LockState {
    /// Held and not past `expires_at`.
    Held,
    /// Marked held but past `expires_at`: its holder has stopped renewing.
    Expired,
    /// Released by its holder.
    Released,
    /// Broken by an operator.
    Broken,
}

pub(super) fn info_of(name: &str, s: &Snapshot<LockRecord>, now: DateTime<Utc>) -> LockInfo {
    let state = match s.body.state {
        StoredState::Held if s.body.expires_at < now => LockState::Expired,
        StoredState::Held => LockState::Held,
        StoredState::Released => LockState::Released,
        StoredState::Broken => LockState::Broken,
    };
    LockInfo {
        name: name.to_string(),
        state,
        holder: s.body.holder.clone(),
        fencing_token: s.body.fencing_token,
        version: s.version,
        acquired_at: s.body.acquired_at,
        renewed_at: s.body.renewed_at,
        expires_at: s.body.expires_at,
        broken_by: s.body.broken_by.clone(),
        broken_at: s.body.broken_at,
    }
}
