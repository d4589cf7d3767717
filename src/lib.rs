//! # cairn
//!
//! Coordinate a fleet of nodes through nothing but an S3-compatible bucket: no coordinator
//! service, no leader, no extra database. Every decision is a conditional write
//! (`If-None-Match: *` to create, `If-Match: <etag>` to replace) of a small JSON manifest,
//! and every write is verified.
//!
//! ## Embedding
//!
//! An ingestor that already holds an `Arc<dyn ObjectStore>` hands it to cairn with a prefix
//! and a node id, takes a lock, and guards what the lock protects with the lock's fencing
//! token: a fenced object in the same bucket takes a write only from a token no lower than
//! any that wrote it, so a holder that stalled past its lease cannot overwrite its
//! successor's work.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> cairn::Result<()> {
//! use std::sync::Arc;
//! use cairn::fenced::FencedWrite;
//! use cairn::{Acquire, Cairn, LockOptions, Name};
//!
//! let store = Arc::new(object_store::memory::InMemory::new());
//! let cairn = Cairn::builder(store).prefix("fleet").node("ingestor-1")?.build().await?;
//!
//! let locks = cairn.locks(LockOptions::default())?;
//! let Acquire::Held(lease) = locks.try_acquire(&Name::new("compaction")?).await? else {
//!     return Ok(()); // another node holds it
//! };
//! let token = lease.fencing_token();
//! let segments = cairn.fenced::<Vec<String>>(&Name::new("compacted-segments")?);
//! let wrote = segments
//!     .update(token, |current| {
//!         let mut all = current.cloned().unwrap_or_default();
//!         all.push("segment-1".to_string());
//!         all
//!     })
//!     .await?;
//! assert!(matches!(wrote, FencedWrite::Written(_)));
//! lease.release().await?;
//! # Ok(()) }
//! ```
//!
//! The crates whose types appear in cairn's API are re-exported, so an embedder adds none of
//! them for cairn's sake: [`object_store`] (the store handed in), [`serde_json`] (stored
//! values as `Value`), [`chrono`] (timestamps) and [`tokio_util`] (`CancellationToken`, the
//! loss signal).
//!
//! ## Guarantees
//!
//! - **One winner.** Of racing writers of the same manifest version, exactly one succeeds;
//!   the others get a conflict carrying the winner's version.
//! - **Write-then-verify.** A write whose answer was lost, refused after a retry, or timed
//!   out is resolved by reading the object back and comparing its unique `write_id`; when
//!   that read fails too, the caller gets [`Error::Ambiguous`], never a guess.
//! - **Bad data never spreads.** A manifest that does not parse, is of another kind, or has
//!   a newer format is a typed error and is never overwritten.
//! - **Probed, not assumed.** A store is probed before use; one that ignores preconditions
//!   is refused ([`Error::StoreRefused`]), as is one that lets concurrent conditional
//!   creates of one key all win (the probe races them); a store without `If-Match` (the
//!   local filesystem), or whose concurrent `If-Match` replaces all win, runs on the version
//!   chain.
//! - **One protocol per prefix.** The first node records the strategy in the prefix's
//!   protocol record (`src/store/protocol.rs`); every other node obeys it, and one configured
//!   otherwise is refused ([`Error::ProtocolMismatch`]). A prefix in use whose record was
//!   deleted is refused, not decided afresh ([`Error::ProtocolRecordMissing`]); running
//!   nodes re-create a vanished record and stop on a changed one ([`Error::ProtocolChanged`]).
//! - **Holder stops first.** A holder gives its lease up early enough for its work to stop
//!   ([`LockOptions::stop_grace`]) before any other node may take over; an operator's break
//!   keeps the lock blocked until then.
//! - **Numbers never wrap; stored data never panics.** Counters at the end of their range
//!   fail with [`Error::Exhausted`]; stored durations and timestamps are range-checked
//!   ([`Error::Corrupt`]); reads are bounded ([`store::MAX_OBJECT_BYTES`]).
//!
//! ## Timing assumptions
//!
//! Safety rules run on each node's monotonic clock and on the store's own clock (objects'
//! `Last-Modified`); wall-clock times written into manifests are informational. A node
//! measures its wall clock against the store's before any rule that reads time and refuses
//! those rules when it is further off than a bound (`src/store/time.rs`). What is assumed is
//! that clock *rates* agree (monotonic clocks and the store's run at the same speed, to
//! parts per million).
//!
//! ## Features
//!
//! With `default-features = false` cairn is the whole coordination API on object_store,
//! tokio, serde and tracing: locks, turns, streams, records, membership, cached views,
//! manifests, the store over any `Arc<dyn ObjectStore>`, `file://` and `memory://` URLs.
//!
//! - `aws` (default): `s3://` store URLs, with credentials from aws-config's provider chain.
//! - `azure` (default): `az://` store URLs, configured from the `AZURE_*` environment.
//! - `gcp` (default): `gs://` store URLs, configured from the `GOOGLE_*` environment.
//! - `test-util`: the fault-injecting `store::fault::FaultStore`, `TestClock`, and the
//!   conformance suite `conformance`, to run against any `ObjectStore`; it also makes public
//!   the internals the drivers and tests reach into (key layout, protocol record, clock check).
//! - `object-store-0-14`: object_store 0.14's client options (a plain-HTTP `s3://` endpoint
//!   loads no root certificates); requires object_store 0.14.
//!
//! The `cairn` binary (package `cairn-coord-cli`) and the fleet simulator, torture checker and
//! benchmark engine (package `cairn-coord-drivers`) are packages of their own, beside this one.
//! The repository's `examples/` show each feature on a seed problem.

#![deny(missing_docs)]
// What is `pub` is reachable from outside: the public API is what the docs show.
#![warn(unreachable_pub, unnameable_types)]
// Stored data never makes cairn panic, and no number wraps ("Bad input never corrupts",
// "Numbers never wrap" in the design): the lints hold the rule in every module but the
// conformance suite, which opts out where it is declared (`drivers!` below; the CLI, the
// fleet simulator and the benchmark engine are packages of their own). Unit tests
// may unwrap, expect, panic and index (clippy.toml).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::as_conversions,
    clippy::arithmetic_side_effects
)]
// Time, sleep, threads and randomness come from what the library is given (clippy.toml lists
// what is denied and why); unit tests and the drivers may use them.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]
#![cfg_attr(test, allow(clippy::disallowed_methods, clippy::disallowed_types))]

/// The README's code blocks, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Declares modules of internals the drivers and the tests reach into: public with the
/// `test-util` feature, crate-private without it (so not in the embedder's API).
macro_rules! internals {
    ($(mod $name:ident;)*) => {
        $(
            #[cfg(feature = "test-util")]
            pub mod $name;
            #[cfg(not(feature = "test-util"))]
            #[allow(unreachable_pub)]
            pub(crate) mod $name;
        )*
    };
}

/// Declares the drivers inside the library: code that runs cairn (the conformance suite)
/// rather than reads the store for an embedder. They opt out of the stored-data lints the
/// crate denies above.
macro_rules! drivers {
    ($($(#[$attr:meta])* pub mod $name:ident;)*) => {
        $(
            $(#[$attr])*
            #[allow(
                clippy::unwrap_used,
                clippy::expect_used,
                clippy::panic,
                clippy::indexing_slicing,
                clippy::as_conversions,
                clippy::arithmetic_side_effects,
                clippy::disallowed_methods,
                clippy::disallowed_types
            )]
            pub mod $name;
        )*
    };
}

drivers! {
    #[cfg(feature = "test-util")]
    pub mod conformance;
}

pub mod cache;
mod cairn;
pub mod clock;
pub mod error;
pub mod fenced;
pub mod gc;
pub mod lock;
pub mod log;
mod loss;
pub mod manifest;
pub mod node;
mod offset;
pub mod record;
internals! {
    mod retry;
}
pub mod store;
mod strategy;
pub mod stream;
pub mod telemetry;
pub mod turn;

pub use chrono;
pub use object_store;
pub use serde_json;
pub use tokio_util;

pub use crate::cairn::{default_node_id, node_id_with_pid, Cairn, CairnBuilder, StrategyChoice};
#[cfg(feature = "test-util")]
pub use clock::TestClock;
pub use clock::{Clock, SystemClock};
pub use error::{Error, Result};
pub use fenced::{Fenced, FencedWrite};
pub use lock::{Acquire, FencingToken, HeldLock, LockOptions, Locks, LossReason};
pub use manifest::{Manifest, ManifestOptions, Snapshot, Strategy};
pub use store::probe::Capabilities;
pub use store::{Name, StoreOptions};

/// Serializes a `Duration` as whole milliseconds.
pub(crate) mod serde_duration_ms {
    use std::time::Duration;

    pub(crate) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(crate::clock::millis(*d))
    }
}
