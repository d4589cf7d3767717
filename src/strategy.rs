//! The manifest strategies, at the bottom of the crate: the error type names them, and
//! everything else builds on both. What a store's capabilities allow is in
//! [`crate::store::protocol`].

use serde::{Deserialize, Serialize};

/// How manifests are stored and replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// One object replaced with `If-Match`.
    EtagCas,
    /// One immutable object a version, created with `If-None-Match: *`.
    VersionChain,
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl Strategy {
    /// Its name where cairn writes one: the protocol record, the CLI, telemetry labels.
    pub fn label(self) -> &'static str {
        match self {
            Strategy::EtagCas => "etag-cas",
            Strategy::VersionChain => "version-chain",
        }
    }

    /// The other strategy.
    pub fn other(self) -> Strategy {
        match self {
            Strategy::EtagCas => Strategy::VersionChain,
            Strategy::VersionChain => Strategy::EtagCas,
        }
    }
}
