//! A whole family read from one listing: what [`super::Collection::entries`] and the cached
//! views ([`crate::cache::CachedCollection`]) are built on.
//!
//! **Cost.** One recursive listing of the family's folder (`locks/`, `nodes/`, …), one LIST
//! request per 1,000 objects, names every manifest and its newest version's key: under etag
//! CAS the one object `<name>/manifest.json`; on the version chain the highest slot of
//! `<name>/v/`. Then one GET per manifest whose body is needed, several in flight at once
//! ([`super::ManifestOptions::list_concurrency`]), the results in name order. There is no
//! second lookup per name. One exception on the chain: while a chain's first version is
//! still kept in slot 1 beside later ones, slot 1 is read too (its number orders it, see
//! `chain.rs`), unless the reader already knows it lies below the listed head.
//!
//! **Unchanged without a request.** A listing carries each object's etag and
//! `last_modified`, and the objects that decide a manifest's head (its mark) change
//! whenever a new version is stored: under etag CAS the object is replaced (a new etag), on
//! the chain a higher slot appears (a new key). A view that kept a manifest together with
//! its mark knows it unchanged when the listing shows the same mark, at no request.
//!
//! **Racing writers.** The listing is taken before the reads, so a read may find a newer
//! version than the listing named (it is taken: newer is never wrong). A listed head that is
//! gone when read was collected, which the chain does only to versions with newer ones: that
//! name is loaded the ordinary way ([`super::Manifest::load`]), as is a name whose head this
//! client already knows at a higher version than the listing shows.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::listed_number;
use super::Strategy;
use crate::error::Error;
use crate::store::{Key, Listed, Name};

/// What one listing showed of one manifest: the objects its newest version is found from.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// The manifest's name.
    pub(crate) name: Name,
    /// Etag CAS: the one object. Chain: the highest slot listed.
    pub(crate) head: Listed,
    /// Chain: slot 1, when it is listed beside higher slots (its version orders it).
    pub(crate) first: Option<Listed>,
}

/// The listed objects that decide a manifest's newest version, with their etags and times:
/// equal marks from two listings mean the same newest version. `None` when the store lists
/// no etag (then nothing is known unchanged without a read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mark(Vec<(Key, String, DateTime<Utc>)>);

impl Found {
    /// The mark of this manifest's head.
    pub(crate) fn mark(&self) -> Option<Mark> {
        let one = |l: &Listed| {
            l.etag.as_ref().map(|e| {
                (
                    l.key.clone(),
                    e.trim_matches('"').to_string(),
                    l.last_modified,
                )
            })
        };
        let mut v = vec![one(&self.head)?];
        if let Some(f) = &self.first {
            v.push(one(f)?);
        }
        Some(Mark(v))
    }

    /// Whether this listing shows the manifest as `old` (an earlier listing) did: the same
    /// newest version. Never when the store lists no etags.
    pub(crate) fn unchanged_since(&self, old: &Found) -> bool {
        let mark = self.mark();
        mark.is_some() && old.mark() == mark
    }

    /// Chain: what slot 1 is known to hold at most, given that `held` was read when a
    /// listing showed `old`: `held`, when slot 1 is listed as then (beside the head, or as
    /// the head), so that it need not be read again (`Protocol::read_listed`).
    pub(crate) fn first_at_most(&self, old: &Found, held: u64) -> Option<u64> {
        let first = self.first_mark();
        (first.is_some() && old.slot_one_mark() == first).then_some(held)
    }

    /// Chain: slot 1 as listed beside higher slots, if it is.
    pub(crate) fn first_mark(&self) -> Option<(Key, Option<String>, DateTime<Utc>)> {
        self.first.as_ref().map(identity)
    }

    /// Chain: slot 1 as listed, beside higher slots or alone (then it is the head).
    pub(crate) fn slot_one_mark(&self) -> Option<(Key, Option<String>, DateTime<Utc>)> {
        let alone = || {
            let file = self.head.key.file_name();
            let in_chain = self.head.key.as_str().contains("/v/");
            (in_chain && crate::store::keys::parse_numbered(file) == Some(1)).then_some(&self.head)
        };
        self.first.as_ref().or_else(alone).map(identity)
    }
}

/// What identifies one listed object: its key, etag and time.
fn identity(l: &Listed) -> (Key, Option<String>, DateTime<Utc>) {
    (l.key.clone(), l.etag.clone(), l.last_modified)
}

/// A manifest a listing named but that could not be read: its name, the key read, and why.
/// The rest of the listing is shown; this entry is reported in its place.
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct Unreadable {
    /// The manifest's name.
    pub name: String,
    /// The key of the object that could not be read (or decoded).
    pub key: String,
    /// Why (boxed: an entry of a listing stays small).
    #[serde(serialize_with = "as_text")]
    pub error: Box<Error>,
}

fn as_text<S: serde::Serializer>(e: &Error, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(e)
}

impl Unreadable {
    /// `name` could not be read: `error`, at the key it names, else at `key`.
    pub(crate) fn new(name: &Name, key: &Key, error: Error) -> Self {
        let key = match &error {
            Error::Corrupt { key, .. }
            | Error::UnsupportedFormat { key, .. }
            | Error::WrongKind { key, .. }
            | Error::Unavailable { key, .. }
            | Error::Store { key, .. } => key.clone(),
            _ => key.to_string(),
        };
        Self {
            name: name.to_string(),
            key,
            error: Box::new(error),
        }
    }
}

impl Unreadable {
    /// The same report again (an [`Error`] is not `Clone`): as [`Error::Corrupt`] at the
    /// same key, with the same reason.
    pub(crate) fn copy(&self) -> Self {
        let reason = match &*self.error {
            Error::Corrupt { reason, .. } => reason.clone(),
            e => e.to_string(),
        };
        Self {
            name: self.name.clone(),
            key: self.key.clone(),
            error: Box::new(Error::Corrupt {
                key: self.key.clone(),
                reason,
            }),
        }
    }
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.error)
    }
}

impl From<Unreadable> for Error {
    /// The error, for a caller that fails on the first unreadable entry.
    fn from(u: Unreadable) -> Self {
        *u.error
    }
}

/// One entry of a listing: the value, or why that one manifest could not be read.
pub type Entry<T> = std::result::Result<T, Unreadable>;

/// Groups a recursive listing of `folder` (a family's) by manifest name, in name order,
/// keeping for each what decides its head under `strategy`. Objects of other shapes (the
/// other strategy's, foreign files) and folders whose names cairn would not accept are
/// skipped. A chain key numbered above `u64::MAX` makes that name unreadable (in its place,
/// with its key).
pub(crate) fn group(strategy: Strategy, folder: &Key, listed: Vec<Listed>) -> Vec<Entry<Found>> {
    #[derive(Default)]
    struct Acc {
        head: Option<(u64, Listed)>,
        first: Option<Listed>,
        bad: Option<Unreadable>,
    }
    let root = format!("{}/", folder.as_str());
    let mut by_name: BTreeMap<String, Acc> = BTreeMap::new();
    for l in listed {
        let Some(rest) = l.key.as_str().strip_prefix(&root) else {
            continue;
        };
        let Some((name, inner)) = rest.split_once('/') else {
            continue;
        };
        if Name::new(name).is_err() {
            continue;
        }
        let slot = match strategy {
            Strategy::EtagCas if inner == "manifest.json" => 0,
            Strategy::EtagCas => continue,
            Strategy::VersionChain => {
                let Some(file) = inner.strip_prefix("v/") else {
                    continue;
                };
                if file.contains('/') {
                    continue;
                }
                match listed_number(&l.key) {
                    Ok(Some(n)) => n,
                    Ok(None) => continue,
                    Err(error) => {
                        let acc = by_name.entry(name.to_string()).or_default();
                        acc.bad.get_or_insert(Unreadable {
                            name: name.to_string(),
                            key: l.key.to_string(),
                            error: Box::new(error),
                        });
                        continue;
                    }
                }
            }
        };
        let acc = by_name.entry(name.to_string()).or_default();
        if strategy == Strategy::VersionChain && slot == 1 {
            acc.first = Some(l);
            continue;
        }
        if acc.head.as_ref().is_none_or(|(n, _)| slot > *n) {
            acc.head = Some((slot, l));
        }
    }
    let mut found = Vec::with_capacity(by_name.len());
    for (name, acc) in by_name {
        if let Some(b) = acc.bad {
            found.push(Err(b));
            continue;
        }
        let Ok(name) = Name::new(name) else { continue };
        let (head, first) = match (acc.head, acc.first) {
            (Some((_, head)), first) => (head, first),
            (None, Some(first)) => (first, None),
            (None, None) => continue,
        };
        found.push(Ok(Found { name, head, first }));
    }
    found
}
