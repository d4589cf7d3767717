//! Validated names. Every user-supplied name passes through [`Name::new`] before it can
//! become part of a key, so a key can never leave cairn's root prefix.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest name accepted, in bytes (all allowed characters are ASCII).
pub const MAX_NAME_LEN: usize = 128;

/// A name for a lock, stream, turn, topic, namespace, record key or node:
/// 1–128 characters of `A–Z a–z 0–9 . _ -`, no leading dot, no `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    /// Validates `name`. Returns [`Error::InvalidName`] naming the broken rule.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("empty")
        } else if name.len() > MAX_NAME_LEN {
            Some("longer than 128 characters")
        } else if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            Some("only A-Z a-z 0-9 . _ - are allowed")
        } else if name.starts_with('.') {
            Some("must not start with a dot")
        } else if name.contains("..") {
            Some("must not contain '..'")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::InvalidName { name, reason }),
            None => Ok(Self(name)),
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Name {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Name::new(s).map_err(serde::de::Error::custom)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_each_rule_with_its_reason() {
        for (bad, why) in [
            ("", "empty"),
            (".hidden", "must not start with a dot"),
            ("a..b", "must not contain '..'"),
            ("a/b", "only A-Z a-z 0-9 . _ - are allowed"),
            ("caf\u{e9}", "only A-Z a-z 0-9 . _ - are allowed"),
        ] {
            match Name::new(bad) {
                Err(Error::InvalidName { reason, .. }) => assert_eq!(reason, why, "{bad:?}"),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
        assert!(Name::new("x".repeat(128)).is_ok());
        assert!(Name::new("x".repeat(129)).is_err());
        assert!(Name::new("node-1.eu_west").is_ok());
    }

    proptest! {
        // Whatever string comes in, an accepted name is a single safe path segment.
        #[test]
        fn accepted_names_never_leave_their_segment(s in ".{0,140}") {
            if let Ok(n) = Name::new(s.clone()) {
                prop_assert!(!n.as_str().contains('/'));
                prop_assert!(!n.as_str().contains(".."));
                prop_assert!(!n.as_str().starts_with('.'));
                prop_assert!((1..=MAX_NAME_LEN).contains(&n.as_str().len()));
            }
        }
    }
}
