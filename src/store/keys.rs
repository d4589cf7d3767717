//! Every key shape cairn writes, in one place. Keys are relative to the root prefix and are
//! built only from validated [`Name`]s and numbers, so none can leave the prefix.
//!
//! ```text
//! <root>/
//!   _cairn/protocol.json                       the prefix's protocol record (strategy, format)
//!   _cairn/clock.json                          clock check scratch object (any node overwrites it)
//!   _probe/<id>.json                           capability probe scratch objects
//!   locks/<name>/manifest.json                 etag CAS strategy: the one manifest object
//!   locks/<name>/v/<version:020>.json          version chain: one immutable object a version
//!   streams/<name>/…                           (same two shapes)
//!   turns/<name>/…
//!   records/<namespace>/<key>/…
//!   members/<node>/…
//!   log/<topic>/<sequence:020>.json            event log entries (create-if-absent)
//! ```

use std::fmt;

use super::name::Name;

/// Width of zero-padded version and sequence numbers, so lexical order is numeric order.
pub const NUMBER_WIDTH: usize = 20;

/// A key relative to the store's root prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A key below this one.
    fn child(&self, segment: &str) -> Key {
        Key(format!("{}/{}", self.0, segment))
    }

    /// The last path segment.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The family a manifest belongs to; each is a top-level folder under the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Family {
    /// Leases (`locks/`).
    Lock,
    /// Streams (`streams/`).
    Stream,
    /// Turns (`turns/`).
    Turn,
    /// Nodes' heartbeats (`nodes/`).
    Node,
    /// Nodes' heartbeats on a prefix whose protocol record is of format 1 (`members/`):
    /// where builds of that format keep them, under the kind `member`.
    /// [`crate::node::Nodes`] uses this family on such a prefix, so that those builds and
    /// this one see the same nodes (docs/GUARANTEES.md, "Formats").
    Member,
    /// Test and benchmark manifests (`scratch/`).
    Scratch,
    /// The embedder's fenced objects (`app/`, [`crate::fenced`]).
    App,
}

impl Family {
    /// The top-level folder of this family.
    pub fn folder(self) -> Key {
        Key(match self {
            Family::Lock => "locks",
            Family::Stream => "streams",
            Family::Turn => "turns",
            Family::Node => "nodes",
            Family::Member => "members",
            Family::Scratch => "scratch",
            Family::App => "app",
        }
        .to_string())
    }
}

/// The base key of a named manifest of `family`.
pub fn manifest(family: Family, name: &Name) -> Key {
    family.folder().child(name.as_str())
}

/// The base key of a versioned record `namespace/key`.
pub fn record(namespace: &Name, key: &Name) -> Key {
    Key("records".into())
        .child(namespace.as_str())
        .child(key.as_str())
}

/// The folder holding every namespace of records.
pub fn record_root() -> Key {
    Key("records".into())
}

/// The folder holding one namespace's records.
pub fn record_namespace(namespace: &Name) -> Key {
    Key("records".into()).child(namespace.as_str())
}

/// The single object of a manifest under the etag CAS strategy.
pub fn etag_object(base: &Key) -> Key {
    base.child("manifest.json")
}

/// The folder of a manifest's versions under the version chain strategy.
pub fn chain_folder(base: &Key) -> Key {
    base.child("v")
}

/// The object of one version of a manifest under the version chain strategy.
pub fn chain_version(base: &Key, version: u64) -> Key {
    chain_folder(base).child(&numbered(version))
}

/// The folder holding every event log topic.
pub fn log_root() -> Key {
    Key("log".into())
}

/// The folder of an event log topic.
pub fn log_topic(topic: &Name) -> Key {
    Key("log".into()).child(topic.as_str())
}

/// One entry of an event log topic.
pub fn log_entry(topic: &Name, sequence: u64) -> Key {
    log_topic(topic).child(&numbered(sequence))
}

/// The prefix's protocol record (see [`crate::store::protocol`]).
pub fn protocol() -> Key {
    Key("_cairn/protocol.json".into())
}

/// The clock check's scratch object, overwritten by every node that measures its clock
/// against the store's ([`crate::store::time`]).
pub fn clock() -> Key {
    Key("_cairn/clock.json".into())
}

/// A capability probe scratch object.
pub fn probe(id: &str) -> Key {
    Key("_probe".into()).child(&format!("{id}.json"))
}

/// The top-level folders cairn coordinates through (every [`Family`], records, the log).
pub const COORDINATION_FOLDERS: [&str; 9] = [
    "app", "locks", "log", "members", "nodes", "records", "scratch", "streams", "turns",
];

/// Whether `key` (relative to the root) lies in one of [`COORDINATION_FOLDERS`]: an object
/// nodes coordinated through, not the protocol record, a probe's scratch object or anything
/// foreign.
pub fn is_coordination(key: &Key) -> bool {
    key.as_str()
        .split_once('/')
        .is_some_and(|(top, _)| COORDINATION_FOLDERS.contains(&top))
}

/// `<number:020>.json`.
fn numbered(n: u64) -> String {
    format!("{n:0width$}.json", width = NUMBER_WIDTH)
}

/// Parses the number out of a `<number:020>.json` file name; `None` for anything else.
pub fn parse_numbered(file_name: &str) -> Option<u64> {
    let digits = file_name.strip_suffix(".json")?;
    if digits.len() != NUMBER_WIDTH || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Re-creates a key from its string form as listed under the root. Only for keys that
/// the store itself listed (they are already inside the prefix).
pub(crate) fn from_listed(relative: String) -> Key {
    Key(relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_keys_sort_numerically_and_round_trip() {
        let n = Name::new("a").unwrap();
        let base = manifest(Family::Lock, &n);
        let k9 = chain_version(&base, 9);
        let k10 = chain_version(&base, 10);
        assert!(k9 < k10);
        assert_eq!(parse_numbered(k10.file_name()), Some(10));
        assert_eq!(parse_numbered("10.json"), None);
        assert_eq!(parse_numbered("manifest.json"), None);
        assert_eq!(k9.as_str(), "locks/a/v/00000000000000000009.json");
    }
}
