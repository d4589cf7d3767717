//! What runs cairn rather than embeds it: the fleet simulator with its torture checker
//! ([`fleet`]), and the benchmark engine behind `cairn bench` ([`bench`](mod@bench)). Both drive the
//! library through its public API, with the fault-injecting store and the skewable clock of
//! its `test-util` feature; an embedder can run the torture against their own store:
//!
//! ```no_run
//! # async fn torture(store: std::sync::Arc<dyn cairn::object_store::ObjectStore>) -> cairn::Result<()> {
//! use cairn_drivers::fleet::{self, history::History, FleetOptions};
//! let history = std::sync::Arc::new(History::default());
//! let report = fleet::run(store, "torture", FleetOptions::torture(), history).await?;
//! assert_eq!(report.violations, 0, "{:?}", report.invariants);
//! # Ok(()) }
//! ```

pub mod bench;
pub mod fleet;
