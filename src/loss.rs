//! Why a held lease was lost, at the bottom of the crate: the error type carries it
//! ([`crate::Error::LockLost`]).

use serde::Serialize;

/// Why a held lease was lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum LossReason {
    /// Another node holds it now (it took over, or an operator broke the lease).
    TakenOver {
        /// The node now named in the lock.
        holder: String,
        /// The version that ended ours.
        version: u64,
    },
    /// An operator broke the lease (`cairn lock break`). The lock stays blocked for other
    /// nodes until this lease could no longer be in use.
    Broken {
        /// The operator (node id) who broke it.
        by: String,
        /// The version that ended ours.
        version: u64,
    },
    /// Renewals failed until the holder's local deadline passed. Another node may take
    /// over after its own waits.
    Unavailable {
        /// The last renewal error.
        error: String,
    },
}

impl LossReason {
    /// A short, stable label for the reason (`taken_over`, `broken`, `unavailable`), as used
    /// in metrics.
    pub fn label(&self) -> &'static str {
        match self {
            LossReason::TakenOver { .. } => "taken_over",
            LossReason::Broken { .. } => "broken",
            LossReason::Unavailable { .. } => "unavailable",
        }
    }
}

impl std::fmt::Display for LossReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LossReason::TakenOver { holder, version } => {
                write!(f, "taken over by {holder} (version {version})")
            }
            LossReason::Broken { by, version } => {
                write!(f, "broken by {by} (version {version})")
            }
            LossReason::Unavailable { error } => {
                write!(f, "renewals failed until the deadline: {error}")
            }
        }
    }
}
