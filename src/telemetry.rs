//! Metrics, through the [`metrics`] facade: cairn records, the application chooses the
//! exporter (the CLI's long-running commands serve Prometheus text with `--metrics-addr`).
//! With no recorder installed every call is a no-op.
//!
//! | metric | type | labels | what |
//! | --- | --- | --- | --- |
//! | `cairn_requests_total` | counter | `op`, `outcome` | object-store requests: `op` is `get`, `put`, `list`, `delete`; `outcome` is `ok`, `not_found`, `not_modified`, `precondition_failed`, `already_exists`, `timeout` or `error` |
//! | `cairn_request_duration_seconds` | histogram | `op` | each request's latency |
//! | `cairn_conflicts_total` | counter | `strategy` | conditional writes another writer beat |
//! | `cairn_ambiguous_writes_total` | counter | `resolved` | writes whose answer was unclear, resolved by read-back: `landed`, `not_landed`, or `unknown` (the read-back failed too) |
//! | `cairn_lock_acquired_total` | counter | `lock`, `how` | acquisitions: `free` (absent or released) or `takeover` |
//! | `cairn_lock_losses_total` | counter | `lock`, `reason` | leases lost: `taken_over`, `broken`, `unavailable` |
//! | `cairn_turns_total` | counter | `turn`, `outcome` | turn attempts: `run`, `failed` (ran, job failed), `skipped` (not due or already taken), `lost` |
//! | `cairn_heartbeats_total` | counter | `outcome` | heartbeats written (`ok`) or failed (`failed`) |
//! | `cairn_clock_offset_seconds` | gauge | | this node's wall clock measured against the store's (store − node: negative when this node's clock is ahead), at its last clock check |
//! | `cairn_cache_reads_total` | counter | `result` | cached view reads: `hit`, `revalidated` (a 304), `fetched`, `stale`, `short_circuited` (stale, breaker open), `coalesced` (single flight) |

use std::time::Duration;

/// Object-store requests by operation and outcome.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const REQUESTS: &str = "cairn_requests_total";
/// Request latency by operation.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const REQUEST_SECONDS: &str = "cairn_request_duration_seconds";
/// Conditional writes another writer beat.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const CONFLICTS: &str = "cairn_conflicts_total";
/// Unclear write answers, by how the read-back resolved them.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const AMBIGUOUS: &str = "cairn_ambiguous_writes_total";
/// Lock acquisitions.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const LOCK_ACQUIRED: &str = "cairn_lock_acquired_total";
/// Leases lost, by reason.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const LOCK_LOSSES: &str = "cairn_lock_losses_total";
/// Turn attempts, by outcome.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const TURNS: &str = "cairn_turns_total";
/// Heartbeats, by outcome.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const HEARTBEATS: &str = "cairn_heartbeats_total";
/// Cached view reads, by result.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const CACHE_READS: &str = "cairn_cache_reads_total";
/// This node's clock offset from the store's, at its last clock check.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const CLOCK_OFFSET: &str = "cairn_clock_offset_seconds";

/// Registers every metric's description and unit with the installed recorder (call once,
/// after installing it; exporters show the descriptions as `# HELP`).
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(REQUESTS, "Object-store requests by operation and outcome");
    describe_histogram!(
        REQUEST_SECONDS,
        Unit::Seconds,
        "Object-store request latency"
    );
    describe_counter!(CONFLICTS, "Conditional writes another writer beat");
    describe_counter!(
        AMBIGUOUS,
        "Writes with an unclear answer, by how the read-back resolved them"
    );
    describe_counter!(LOCK_ACQUIRED, "Lock acquisitions (free or by takeover)");
    describe_counter!(LOCK_LOSSES, "Leases lost, by reason");
    describe_counter!(TURNS, "Turn attempts, by outcome");
    describe_counter!(HEARTBEATS, "Heartbeats written or failed");
    describe_counter!(CACHE_READS, "Cached view reads, by result");
    describe_gauge!(
        CLOCK_OFFSET,
        Unit::Seconds,
        "Store clock minus this node's wall clock, at the last clock check"
    );
}

/// One object-store request: its operation, outcome and latency.
pub(crate) fn request(op: &'static str, outcome: &'static str, took: Duration) {
    metrics::counter!(REQUESTS, "op" => op, "outcome" => outcome).increment(1);
    metrics::histogram!(REQUEST_SECONDS, "op" => op).record(took.as_secs_f64());
}

/// The outcome label of an object-store answer.
pub(crate) fn outcome<T>(r: &object_store::Result<T>, timed_out: bool) -> &'static str {
    use object_store::Error as E;
    match r {
        Ok(_) => "ok",
        Err(_) if timed_out => "timeout",
        Err(E::NotFound { .. }) => "not_found",
        Err(E::NotModified { .. }) => "not_modified",
        Err(E::Precondition { .. }) => "precondition_failed",
        Err(E::AlreadyExists { .. }) => "already_exists",
        Err(_) => "error",
    }
}

/// A conditional write another writer beat.
pub(crate) fn conflict(strategy: &'static str) {
    metrics::counter!(CONFLICTS, "strategy" => strategy).increment(1);
}

/// An unclear write answer, resolved by read-back as `resolved`.
pub(crate) fn ambiguous(resolved: &'static str) {
    metrics::counter!(AMBIGUOUS, "resolved" => resolved).increment(1);
}

/// A lock acquired: `how` is `free` or `takeover`.
pub(crate) fn lock_acquired(lock: &str, how: &'static str) {
    metrics::counter!(LOCK_ACQUIRED, "lock" => lock.to_string(), "how" => how).increment(1);
}

/// A lease lost for `reason`.
pub(crate) fn lock_lost(lock: &str, reason: &'static str) {
    metrics::counter!(LOCK_LOSSES, "lock" => lock.to_string(), "reason" => reason).increment(1);
}

/// A turn attempt's outcome.
pub(crate) fn turn(turn: &str, outcome: &'static str) {
    metrics::counter!(TURNS, "turn" => turn.to_string(), "outcome" => outcome).increment(1);
}

/// A heartbeat's outcome.
pub(crate) fn heartbeat(outcome: &'static str) {
    metrics::counter!(HEARTBEATS, "outcome" => outcome).increment(1);
}

/// A cached view read's result.
pub(crate) fn cache_read(result: &'static str) {
    metrics::counter!(CACHE_READS, "result" => result).increment(1);
}

/// The offset measured by a clock check, in milliseconds (store − node).
pub(crate) fn clock_offset(ms: i64) {
    // Milliseconds to seconds for the gauge: a float by nature, exact to well below a
    // millisecond for any offset a clock check can measure.
    #[allow(clippy::as_conversions, clippy::cast_precision_loss)]
    let secs = ms as f64 / 1000.0;
    metrics::gauge!(CLOCK_OFFSET).set(secs);
}
