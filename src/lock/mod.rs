//! Leases: locks with fencing tokens, background renewal, loss notification and safe
//! takeover, on a plain bucket.
//!
//! A lock is a manifest of kind `lock` at `locks/<name>/`. Acquiring writes a version
//! marked held by this node; renewing writes the next version; releasing writes a version
//! marked released (a tombstone: nothing is ever deleted, so versions and fencing tokens
//! never go backwards). An operator's break writes a version marked broken.
//!
//! # Fencing
//!
//! A lease's [`FencingToken`] is the last holder's + 1, or on a prefix of format 3 a number
//! drawn from time when that is higher (`Manifests::next_start`, crate-internal; on older
//! formats the manifest version it was acquired at). Each acquisition reads the token it
//! follows, so a later holder's token is always higher than any earlier holder's, and the
//! drawn part keeps it so when stored versions vanish. Pass the token to whatever the lease
//! protects and have it refuse lower ones.
//!
//! # Timing rules (see [`LockOptions`] for the defaults and their reasons)
//!
//! - **Holder stops first.** The holder treats its lease as lost at
//!   `last successful renewal sent + ttl − safety_margin − stop_grace`, measured on its own
//!   monotonic clock, even if it cannot reach the store to find out. `stop_grace` is the
//!   time its work needs to stop once told (for `cairn lock run`, the SIGTERM→SIGKILL
//!   grace), so the work has stopped by `sent + ttl − safety_margin`: before either takeover
//!   rule below can fire, since an observer's first sight of a version comes after it was
//!   sent, and the store wrote it (its `Last-Modified`, which the expiry rule reads) after it
//!   was sent too.
//!   Options that leave no room for a renewal in that budget are refused
//!   ([`LockOptions::validate`]).
//! - **A break is a revocation, not a takeover.** [`Locks::break_lock`] writes a version
//!   marked broken that keeps the holder, session and expiry. The holder learns at its next
//!   renewal ([`LossReason::Broken`]) and stops; other nodes treat a broken lease like a held
//!   one, so they acquire only once it can no longer be in use.
//! - **Takeover without trusting clocks.** Another node takes over an unreleased lease only
//!   when it has itself observed the same version unchanged for `ttl + takeover_margin` on
//!   its monotonic clock, or when the store's own timeline shows the lease expired: the
//!   store wrote its newest version ([`Snapshot::stored_at`](crate::manifest::Snapshot::stored_at), the store's `Last-Modified`)
//!   more than `ttl + takeover_margin + RESOLUTION` before a point the store's clock has
//!   certainly reached (`src/store/time.rs`). No node's wall clock enters either rule:
//!   not the holder's (`expires_at` is informational) and not the observer's. A node whose
//!   wall clock is measured beyond the bound
//!   ([`crate::manifest::ManifestOptions::max_clock_offset`]) from the store's does not take
//!   over by expiry at all, and says so.
//!
//! Both takeover paths happen after the holder's deadline as long as clock *rates* agree
//! (the holder's monotonic clock, the observer's and the store's): the holder sent its
//! newest version before the store wrote it, so its deadline falls before
//! `stored_at + RESOLUTION + ttl − safety_margin`.

mod held;
mod info;
mod locks;
mod options;
mod record;

pub use crate::loss::LossReason;
pub use held::HeldLock;
pub use info::{Break, LockInfo, LockState};
pub use locks::{Acquire, Locks};
pub use options::LockOptions;
#[cfg(feature = "test-util")]
pub use options::MAX_TTL;
pub use record::{FencingToken, LockRecord, StoredState};

/// The manifest kind of locks.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const KIND: &str = "lock";
