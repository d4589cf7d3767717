//! The event log: an append-only log per topic, totally ordered by create-if-absent
//! sequence numbers (`log/<topic>/<sequence:020>.json`).
//!
//! An append writes the entry after the newest one it knows of with create-if-absent. If
//! that number is taken, it lists what came after and tries the next free one. Sequence
//! numbers are only ever claimed one past an existing entry, so the log has no gaps, and a
//! number is claimed once, so concurrent appenders never overwrite each other. An entry is
//! written with a `write_id` and verified like every other write.
//!
//! # The first entry starts at a floor
//!
//! An append to a topic with no entries (never used, or every entry vanished: a lifecycle
//! rule, a restore, an operator's `rm`) numbers its entry from the floor of now
//! (`src/clock.rs` (`floor`)), not from 1, so a topic emptied and appended to again numbers
//! above everything it held before. Concurrent first appends draw different floors, so, as
//! in the version chain, the first entry is stored in **slot 1** (`…/00000000000000000001.json`)
//! whatever its sequence, where every first append collides: one wins, the others append
//! after it, and the log stays gap-free. Every later entry `n` is at slot `n`. Topics written
//! before floors have sequence 1 in slot 1, which reads the same. Slot 1's sequence is read
//! from the entry when a listing or a read needs to place it, and remembered with slot 1's
//! etag: while a listing shows that etag, slot 1 holds the same entry (an entry is never
//! rewritten); another etag is a first entry created again after the topic was deleted
//! whole, read afresh. A cold client on a topic that still has its first entry pays one GET
//! for it.
//!
//! An appender that knows a tail (it appended or read it before) first reads that entry, and
//! at once slot 1 conditionally on the etag it knows (a 304 without a body): if the tail is
//! still there, nothing up to it vanished or was trimmed (both take the oldest first), and if
//! slot 1 is unchanged (or trimmed), the topic was not deleted whole and started again above
//! it; so the entry after the tail is one past the newest or taken (the create's conflict
//! then finds the newest). Otherwise the appender lists, as a fresh client does: a tail it
//! knew must not number an entry below ones appended after it and then trimmed or vanished,
//! nor below a first entry created again.
//!
//! The log is an audit trail: the only thing that deletes entries is an operator's
//! [`EventLog::delete_before`] (`cairn gc --log-before TOPIC:SEQ`), which deletes the oldest
//! entries, oldest first, and never the newest one, so the next append still continues
//! the numbering (sequence numbers are never reused). A reader that listed an entry the
//! collector then deleted skips it, as long as it is older than every entry it returned.
//!
//! # Reading in pages
//!
//! Entry keys sort by sequence (20 digits), so a reader lists only what it reads: a read
//! from a sequence lists after the slot before it, as far as it reads
//! ([`crate::store::Store::list_first`]); the newest entry is found from the first page of
//! the listing or, on a larger topic, by listings after guessed numbers (a listing after `n`
//! finds a slot exactly when the newest is above `n`). `log tail -n K` costs a few LISTs and
//! K GETs on a topic of any size, and a follower that is current one LIST a poll. Reading
//! takes slot 1 to be below every other slot (a first entry is created only in an empty
//! topic, each later one one past an existing one), so it is read only when it is among what
//! is read. Finding the newest entry (which numbers the next append) and the last `n` do
//! not: an appender that checked its tail just before the topic was deleted whole can write
//! one past it after a fresh first entry was created above, so they place slot 1 by its
//! sequence (as remembered while its etag is unchanged, else read) and take the higher.
//!
//! That stale appender itself finds slot 1 changed at its next append, lists and continues
//! above the new first entry: what stays below is the one entry whose create raced the
//! deletion (written once, never a duplicate number), and every reader places it below.
//!
//! Sequence numbers never wrap: once an entry at `u64::MAX` exists, appending fails at once
//! with [`Error::Exhausted`] (no create is attempted); retire the topic for a new one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::clock::next_number;
use crate::error::{Error, Result};
use crate::manifest::envelope::{decode, encode};
use crate::manifest::{listed_number, Manifests, Snapshot};
use crate::retry::Backoff;
use crate::store::{keys, CreateOutcome, Key, Name, Object, ReadIfChanged, WriteId};

/// The envelope kind of log entries.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const KIND: &str = "event";

/// One entry of a topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The topic.
    pub topic: String,
    /// Its sequence number: the topic's first starts at a floor drawn from time, each later
    /// one is the previous + 1 (see the module docs).
    pub sequence: u64,
    /// The node that appended it.
    pub appended_by: String,
    /// When (the appender's wall clock).
    pub appended_at: DateTime<Utc>,
    /// The event.
    pub event: serde_json::Value,
}

impl Entry {
    /// The entry a stored envelope of `topic` holds (its version is the sequence).
    fn of(topic: &Name, s: Snapshot<serde_json::Value>) -> Self {
        Entry {
            topic: topic.to_string(),
            sequence: s.version,
            appended_by: s.written_by,
            appended_at: s.written_at,
            event: s.body,
        }
    }
}

/// The event log client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventLog {
    manifests: Arc<Manifests>,
    /// The newest sequence number this client knows of, per topic.
    tails: Arc<Mutex<HashMap<String, u64>>>,
    /// The sequence of each topic's first entry (slot 1) as last read or written, and the
    /// etag slot 1 had then (while a listing shows that etag, slot 1 still holds it).
    firsts: Arc<Mutex<HashMap<String, KnownFirst>>>,
    /// A slot other than 1 seen in each topic: the first entry is below it (see
    /// [`EventLog::last`]), so a reader from there on need not read slot 1.
    above_first: Arc<Mutex<HashMap<String, u64>>>,
}

/// A topic's first entry as this client knows it: its sequence, and slot 1's etag then.
type KnownFirst = (u64, Option<String>);

/// The slot of a topic's first entry, whatever its sequence (module docs).
const FIRST_SLOT: u64 = 1;

/// How many keys a listing that looks for the newest entry reads at a time: one S3 LIST
/// request answers up to 1,000, and reading a 1,000th would not say whether more follow
/// without asking for the next page.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const PAGE: usize = 999;

/// How many entries [`EventLog::last`] reads at once.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const READ_AHEAD: usize = 16;

/// What [`EventLog::locate`] found.
struct Located {
    /// Slot 1 (the first entry) is there.
    first: bool,
    /// Slot 1's etag as listed.
    first_etag: Option<String>,
    /// The highest slot other than 1, if any.
    newest_other: Option<u64>,
}

/// Entries of a listing as (slot, key), in slot order; keys of other shapes are left alone.
fn slots(listed: &[crate::store::Listed]) -> Result<Vec<(u64, Key)>> {
    let mut v = Vec::with_capacity(listed.len());
    for l in listed {
        if let Some(n) = listed_number(&l.key)? {
            v.push((n, l.key.clone()));
        }
    }
    v.sort_unstable_by_key(|(n, _)| *n);
    Ok(v)
}

/// A listed entry gone after a newer one was read: only the oldest entries are ever deleted.
fn gone_after_newer(key: &Key) -> Error {
    Error::Corrupt {
        key: key.to_string(),
        reason: "listed but gone after a newer entry was read: entries are only deleted \
                 oldest first"
            .into(),
    }
}

/// An entry whose stored sequence is not its slot's.
fn wrong_sequence(key: &Key, found: u64, expected: u64) -> Error {
    Error::Corrupt {
        key: key.to_string(),
        reason: format!("holds sequence {found} where {expected} was expected"),
    }
}

/// Slot 1's etag in a listing, when it is listed with one.
fn first_etag(listed: &[crate::store::Listed]) -> Option<&str> {
    listed
        .iter()
        .find(|l| listed_number(&l.key).ok().flatten() == Some(FIRST_SLOT))
        .and_then(|l| l.etag.as_deref())
}

impl EventLog {
    /// An event log client.
    pub fn new(manifests: Arc<Manifests>) -> Self {
        Self {
            manifests,
            tails: Arc::default(),
            firsts: Arc::default(),
            above_first: Arc::default(),
        }
    }

    /// Appends `event` to `topic` and returns its sequence number. Three requests when this
    /// client knows the tail (two reads at once, that it is still there and that slot 1 is
    /// unchanged, and the create: two round trips), else a listing first (and, on a topic that
    /// still has its first entry, a read of it). Fails with
    /// [`Error::Exhausted`], without writing, when the newest entry is at `u64::MAX`, and with
    /// [`Error::Encode`], before any request, when the entry would exceed
    /// [`crate::store::MAX_OBJECT_BYTES`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a cancelled append may or may not have been written.
    pub async fn append(&self, topic: &Name, event: serde_json::Value) -> Result<u64> {
        let opts = self.manifests.options();
        let mut backoff = Backoff::new(opts.backoff_initial, opts.backoff_max);
        let folder = keys::log_topic(topic);
        crate::manifest::envelope::check_body_size(KIND, &event)?;
        let after = |newest: u64| next_number(&folder, "sequence", newest);
        let store = self.manifests.store();
        let known = match self.tail_hint(topic) {
            // Nothing comes after the last number: no request is worth making.
            Some(t) => {
                let next = after(t)?;
                // Both at once: the tail (nothing up to it was trimmed or vanished) and slot 1
                // (the topic was not deleted whole and started again above the tail).
                let tail_key = self.key_of(topic, t);
                let (tail, first) =
                    futures::join!(store.read(&tail_key), self.first_unchanged(topic, t));
                match (tail?, first?) {
                    (Some(_), true) => Some(next),
                    _ => None,
                }
            }
            None => None,
        };
        // (the sequence to claim, whether it is the topic's first entry)
        let mut next = match known {
            // Still there: nothing up to it was trimmed or vanished (module docs).
            Some(n) => (n, false),
            None => self.after_newest(topic).await?,
        };
        for _ in 0..opts.max_attempts.max(1) {
            let (seq, first) = next;
            let s = Snapshot {
                version: seq,
                write_id: self.manifests.write_id().into_string(),
                previous_write_id: None,
                written_by: self.manifests.node().to_string(),
                written_at: self.manifests.clock().now(),
                body: event.clone(),
                etag: None,
                object_version: None,
                seen: Default::default(),
                stored_at: Default::default(),
            };
            let key = keys::log_entry(topic, if first { FIRST_SLOT } else { seq });
            match self
                .manifests
                .store()
                .create(&key, encode(KIND, &s)?, &WriteId::new(s.write_id.clone()))
                .await?
            {
                CreateOutcome::Created { etag, .. } => {
                    if first {
                        self.set_first(topic, seq, etag);
                    }
                    self.set_tail(topic, seq);
                    debug!(topic = %topic, sequence = seq, "appended");
                    return Ok(seq);
                }
                CreateOutcome::Exists { .. } => {
                    next = if first {
                        // Another first entry won slot 1: append after the newest.
                        self.after_newest(topic).await?
                    } else {
                        (after(self.newest_after(topic, seq).await?)?, false)
                    };
                    let delay = self.manifests.with_rng(|r| backoff.next_delay(r));
                    tokio::time::sleep(crate::clock::divide(delay, 4)).await;
                }
            }
        }
        Err(Error::Contention {
            key: keys::log_topic(topic).to_string(),
            attempts: opts.max_attempts,
        })
    }

    /// Whether slot 1 still holds the first entry this client knows: unchanged (a conditional
    /// read, answered 304 without a body) or gone (trimmed, oldest first: the tail read vouches
    /// for the rest). Another object there is a first entry created again after the topic was
    /// deleted whole, numbered above this client's tail `tail`, which must then list. A slot 1
    /// this client never placed is read and remembered (one GET), and judged by its sequence.
    async fn first_unchanged(&self, topic: &Name, tail: u64) -> Result<bool> {
        let known = self
            .firsts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic.as_str())
            .and_then(|(_, etag)| etag.clone());
        let Some(etag) = known else {
            return Ok(self.read_first(topic).await?.is_none_or(|f| f <= tail));
        };
        let key = keys::log_entry(topic, FIRST_SLOT);
        Ok(
            match self.manifests.store().read_if_changed(&key, &etag).await? {
                ReadIfChanged::Unchanged | ReadIfChanged::Missing => true,
                ReadIfChanged::Changed(_) => false,
            },
        )
    }

    /// What to claim after a listing: one past the newest entry, or, for a topic with no
    /// entries, its first entry at the floor of now.
    async fn after_newest(&self, topic: &Name) -> Result<(u64, bool)> {
        let folder = keys::log_topic(topic);
        Ok(match self.newest(topic).await? {
            Some(n) => (next_number(&folder, "sequence", n)?, false),
            None => (self.manifests.first_number(&folder).await?, true),
        })
    }

    fn tail_hint(&self, topic: &Name) -> Option<u64> {
        self.tails
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic.as_str())
            .copied()
    }

    fn set_tail(&self, topic: &Name, seq: u64) {
        let mut t = self.tails.lock().unwrap_or_else(|e| e.into_inner());
        let e = t.entry(topic.to_string()).or_insert(0);
        *e = (*e).max(seq);
    }

    fn first_hint(&self, topic: &Name) -> Option<u64> {
        self.firsts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic.as_str())
            .map(|(seq, _)| *seq)
    }

    /// The remembered sequence of `topic`'s first entry, when slot 1 is listed with the etag
    /// it had when this client read or wrote it: the same object, so the same entry. A
    /// first entry created again (after the topic was deleted whole) has another etag.
    fn first_if_current(&self, topic: &Name, listed_etag: Option<&str>) -> Option<u64> {
        let firsts = self.firsts.lock().unwrap_or_else(|e| e.into_inner());
        match (firsts.get(topic.as_str()), listed_etag) {
            (Some((seq, Some(known))), Some(listed)) if known == listed => Some(*seq),
            _ => None,
        }
    }

    /// The sequence of `topic`'s first entry, slot 1 being listed with `listed_etag`: as
    /// remembered while the etag is the same ([`Self::first_if_current`]), else read (and
    /// the object read, to serve its body). `None`: slot 1 is gone since the listing.
    async fn current_first(
        &self,
        topic: &Name,
        listed_etag: Option<&str>,
    ) -> Result<Option<(u64, Option<Object>)>> {
        if let Some(f) = self.first_if_current(topic, listed_etag) {
            return Ok(Some((f, None)));
        }
        Ok(self
            .read_first_object(topic)
            .await?
            .map(|(f, obj)| (f, Some(obj))))
    }

    fn above_first_hint(&self, topic: &Name) -> Option<u64> {
        self.above_first
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic.as_str())
            .copied()
    }

    fn set_above_first(&self, topic: &Name, slot: u64) {
        let mut a = self.above_first.lock().unwrap_or_else(|e| e.into_inner());
        a.insert(topic.to_string(), slot);
    }

    fn set_first(&self, topic: &Name, seq: u64, etag: Option<String>) {
        let mut f = self.firsts.lock().unwrap_or_else(|e| e.into_inner());
        f.insert(topic.to_string(), (seq, etag));
    }

    /// The key of the entry at `seq`: slot 1 when it is the topic's first as known.
    fn key_of(&self, topic: &Name, seq: u64) -> Key {
        let first = self.first_hint(topic) == Some(seq);
        keys::log_entry(topic, if first { FIRST_SLOT } else { seq })
    }

    /// The sequence of `topic`'s first entry, read from slot 1 (and remembered), or `None`
    /// when slot 1 is empty.
    async fn read_first(&self, topic: &Name) -> Result<Option<u64>> {
        Ok(self.read_first_object(topic).await?.map(|(f, _)| f))
    }

    /// [`Self::read_first`], with the object read.
    async fn read_first_object(&self, topic: &Name) -> Result<Option<(u64, Object)>> {
        let key = keys::log_entry(topic, FIRST_SLOT);
        let Some(obj) = self.manifests.store().read(&key).await? else {
            return Ok(None);
        };
        let s: Snapshot<serde_json::Value> = decode(KIND, &obj)?;
        if s.version == 0 {
            return Err(Error::Corrupt {
                key: key.to_string(),
                reason: "holds sequence 0".into(),
            });
        }
        self.set_first(topic, s.version, obj.etag.clone());
        Ok(Some((s.version, obj)))
    }

    /// Entries of a listing of the whole topic as (sequence, key), ascending by sequence:
    /// slot 1 placed by its sequence (remembered, else read; read again when no other slot is
    /// above what is remembered, for a first entry created again after the topic vanished).
    async fn sequences(
        &self,
        topic: &Name,
        listed: &[crate::store::Listed],
    ) -> Result<Vec<(u64, Key)>> {
        let mut all = slots(listed)?;
        if all.first().is_some_and(|(slot, _)| *slot == FIRST_SLOT) {
            let first = self
                .current_first(topic, first_etag(listed))
                .await?
                .map(|(f, _)| f);
            all = all
                .into_iter()
                .filter_map(|(slot, key)| match (slot == FIRST_SLOT, first) {
                    (false, _) => Some((slot, key)),
                    (true, Some(f)) => Some((f, key)),
                    // Deleted since the listing (trimmed, oldest first): leave it out.
                    (true, None) => None,
                })
                .collect();
            all.sort_unstable_by_key(|(n, _)| *n);
        }
        Ok(all)
    }

    /// The newest sequence number of `topic`, or `None` when it has no entries: one page of
    /// listing for a topic of fewer than [`PAGE`] entries, a few more for a larger one
    /// ([`EventLog::locate`]), and slot 1's read whenever it is listed and this client does
    /// not know its entry by its etag (a cold client on a topic that still has its first
    /// entry pays one GET for it).
    async fn newest(&self, topic: &Name) -> Result<Option<u64>> {
        let located = self.locate(topic).await?;
        // Slot 1 can hold a first entry created again above every other slot (the topic was
        // deleted whole, and a stale appender wrote one past its old tail since): its
        // sequence counts, as remembered while its etag is unchanged, else read.
        let first = match located.first {
            true => self
                .current_first(topic, located.first_etag.as_deref())
                .await?
                .map(|(f, _)| f),
            false => None,
        };
        let newest = match (located.newest_other, first) {
            (Some(m), Some(f)) => Some(m.max(f)),
            (m, f) => m.or(f),
        };
        if let Some(n) = newest {
            self.set_tail(topic, n);
        }
        Ok(newest)
    }

    /// Where `topic`'s newest entry is, without listing all of it (on a store that lists in
    /// order, [`Store::lists_in_order`](crate::store::Store::lists_in_order)): the first
    /// page of its listing; when that is not all, a search for the highest slot by listings
    /// that each read one page after a guess (doubling the guess past the last slot seen,
    /// then halving the gap): O(log(entries / [`PAGE`])) LIST requests. A listing after a
    /// number finds a slot above it exactly when the newest slot is above it, gaps or not.
    async fn locate(&self, topic: &Name) -> Result<Located> {
        let folder = keys::log_topic(topic);
        let store = self.manifests.store();
        let (listed, complete) = store.list_first(&folder, None, PAGE).await?;
        let all = slots(&listed)?;
        let first = all.first().is_some_and(|(n, _)| *n == FIRST_SLOT);
        let first_etag = first_etag(&listed).map(str::to_string);
        let newest_other = all.last().map(|(n, _)| *n).filter(|n| *n != FIRST_SLOT);
        let newest_other = match (complete, newest_other) {
            (true, n) => n,
            (false, Some(lo)) => Some(self.search_newest(topic, lo).await?),
            // A page of keys that are not entries: list it all.
            (false, None) => self.newest_listing_all(topic).await?,
        };
        if let Some(m) = newest_other {
            self.set_above_first(topic, m);
        }
        Ok(Located {
            first,
            first_etag,
            newest_other,
        })
    }

    /// The highest slot of `topic`, knowing that slot `lo` (not slot 1) exists and that the
    /// listing up to it was not all (see [`EventLog::locate`]).
    async fn search_newest(&self, topic: &Name, mut lo: u64) -> Result<u64> {
        let store = self.manifests.store();
        let page = u64::try_from(PAGE).unwrap_or(u64::MAX);
        let mut step = page;
        // A number no slot is above, once one is known.
        let mut hi: Option<u64> = None;
        // Each round doubles the step or halves the gap: 2 × 64 rounds cover every u64.
        for _ in 0..160 {
            let guess = match hi {
                None => lo.saturating_add(step),
                // What is left fits a page: list it.
                Some(h) if h.saturating_sub(lo) <= page => lo,
                Some(h) => lo.saturating_add(h.saturating_sub(lo).checked_div(2).unwrap_or(0)),
            };
            let after = keys::log_entry(topic, guess);
            let folder = keys::log_topic(topic);
            let (listed, complete) = store.list_first(&folder, Some(&after), PAGE).await?;
            let top = slots(&listed)?.last().map(|(n, _)| *n);
            match (top, complete) {
                (Some(t), true) => return Ok(t.max(lo)),
                (None, true) if guess == lo => return Ok(lo),
                (None, true) => hi = Some(guess),
                (Some(t), false) => {
                    lo = t.max(lo);
                    match hi {
                        None => step = step.saturating_mul(2),
                        // Appended to since: search above again.
                        Some(h) if lo >= h => hi = None,
                        Some(_) => {}
                    }
                }
                (None, false) => break,
            }
        }
        Ok(self.newest_listing_all(topic).await?.unwrap_or(lo).max(lo))
    }

    /// The highest slot other than 1 from a listing of the whole topic.
    async fn newest_listing_all(&self, topic: &Name) -> Result<Option<u64>> {
        let listed = self.manifests.store().list(&keys::log_topic(topic)).await?;
        Ok(slots(&listed)?
            .last()
            .map(|(n, _)| *n)
            .filter(|n| *n != FIRST_SLOT))
    }

    /// The newest sequence number at or after `at_least` (not a first entry: slot
    /// `at_least` is its own), listing only what comes after it.
    async fn newest_after(&self, topic: &Name, at_least: u64) -> Result<u64> {
        let listed = self
            .manifests
            .store()
            .list_after(&keys::log_topic(topic), &keys::log_entry(topic, at_least))
            .await?;
        let newest = slots(&listed)?
            .last()
            .map_or(at_least, |(n, _)| (*n).max(at_least));
        self.set_tail(topic, newest);
        Ok(newest)
    }

    /// The sequence number of `topic`'s newest entry, or `None` when the topic has none (it
    /// was never appended to). One LIST request for a topic of fewer than 999 entries,
    /// O(log(entries / 999)) for a larger one on a store that lists in order, and one
    /// GET of the first entry unless this client knows it by its etag (module docs).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn newest_sequence(&self, topic: &Name) -> Result<Option<u64>> {
        self.newest(topic).await
    }

    /// Entries of `topic` with sequence number ≥ `from`, in order, at most `limit`. The
    /// listing is read only as far as `limit` entries (on a store that lists in order), so a
    /// reader pays for what it reads, not for the topic: ⌈`limit`/1000⌉ LIST requests (one
    /// for a reader that is current) and a GET an entry.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn read(&self, topic: &Name, from: u64, limit: usize) -> Result<Vec<Entry>> {
        let store = self.manifests.store();
        // Everything after the slot before `from`; from 0 or 1, everything.
        let mut seqs = match from.checked_sub(1).filter(|before| *before > 0) {
            None => {
                let listed = self
                    .list_slots(topic, None, limit.saturating_add(1))
                    .await?;
                self.sequences(topic, &listed).await?
            }
            Some(before) => {
                let listed = self
                    .list_slots(topic, Some(keys::log_entry(topic, before)), limit)
                    .await?;
                let mut seqs = slots(&listed)?;
                // Slot 1 lies before the listing; its entry counts when its sequence is at
                // least `from` (a reader not yet past the first entry).
                let first = match self.first_hint(topic) {
                    Some(f) if f < from => None,
                    // Slot `from` itself, or one at or below it, is there: slot 1 is below
                    // it (see `last`).
                    None if seqs.first().is_some_and(|(n, _)| *n == from)
                        || self.above_first_hint(topic).is_some_and(|m| m <= from) =>
                    {
                        None
                    }
                    _ => self.read_first(topic).await?.filter(|f| *f >= from),
                };
                if let Some(f) = first {
                    seqs.push((f, keys::log_entry(topic, FIRST_SLOT)));
                    seqs.sort_unstable_by_key(|(n, _)| *n);
                }
                seqs
            }
        };
        seqs.retain(|(s, _)| *s >= from);
        seqs.truncate(limit);
        let mut out = Vec::with_capacity(seqs.len());
        for (seq, key) in seqs {
            let Some(obj) = store.read(&key).await? else {
                if out.is_empty() {
                    // Collected since the listing: collection goes oldest first, so only a
                    // prefix of what was listed can vanish.
                    continue;
                }
                return Err(gone_after_newer(&key));
            };
            let s: Snapshot<serde_json::Value> = decode(KIND, &obj)?;
            if s.version != seq {
                return Err(wrong_sequence(&key, s.version, seq));
            }
            self.set_tail(topic, seq);
            out.push(Entry::of(topic, s));
        }
        Ok(out)
    }

    /// The first keys of `topic` (after `offset`), read until `want` of them are entries or
    /// the listing ends.
    async fn list_slots(
        &self,
        topic: &Name,
        mut offset: Option<Key>,
        want: usize,
    ) -> Result<Vec<crate::store::Listed>> {
        let folder = keys::log_topic(topic);
        let store = self.manifests.store();
        let mut out = Vec::new();
        let mut entries = 0usize;
        loop {
            let need = want.saturating_sub(entries).max(1);
            let (listed, complete) = store.list_first(&folder, offset.as_ref(), need).await?;
            entries = entries.saturating_add(slots(&listed)?.len());
            offset = listed.last().map(|l| l.key.clone());
            out.extend(listed);
            if complete || entries >= want || offset.is_none() {
                return Ok(out);
            }
        }
    }

    /// The last `n` entries of `topic`, oldest first, and the newest sequence number found
    /// (`None`: the topic has no entries). It finds the newest slot as
    /// [`EventLog::newest_sequence`] does, lists the `n` slots up to it and reads them: a
    /// few LIST requests and `n` GETs (concurrently, at most 16 at a time),
    /// whatever the topic holds. Slot 1, which holds the first entry, is placed too: as
    /// remembered while a listing shows it unchanged (its etag), else read (one GET more for
    /// a cold client when it is not among the last `n`), since after the topic was deleted
    /// whole it can hold a first entry above a stale appender's.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn last(&self, topic: &Name, n: usize) -> Result<(Vec<Entry>, Option<u64>)> {
        if n == 0 {
            return Ok((Vec::new(), self.newest(topic).await?));
        }
        let located = self.locate(topic).await?;
        // Entries at or below `before` are not among the last n (0: all are).
        let (mut picked, before) = match located.newest_other {
            None => (Vec::new(), 0),
            Some(newest) => {
                let span = u64::try_from(n).unwrap_or(u64::MAX);
                match newest.checked_sub(span).filter(|b| *b > FIRST_SLOT) {
                    Some(before) => {
                        let after = keys::log_entry(topic, before);
                        let listed = self.list_slots(topic, Some(after), n).await?;
                        (slots(&listed)?, before)
                    }
                    // The last n reach the start of the topic.
                    None => {
                        let listed = self.list_slots(topic, None, n.saturating_add(1)).await?;
                        (slots(&listed)?, 0)
                    }
                }
            }
        };
        let newest = located.newest_other;
        picked.retain(|(s, _)| *s != FIRST_SLOT && newest.is_some_and(|m| *s <= m));
        let keep = picked.len().saturating_sub(n);
        picked.drain(..keep);
        let mut want: Vec<(Option<u64>, Key)> =
            picked.into_iter().map(|(s, k)| (Some(s), k)).collect();
        // Fewer than n above `before`: the first entry may be among them.
        if located.first && want.len() < n {
            want.insert(0, (None, keys::log_entry(topic, FIRST_SLOT)));
        }
        let store = self.manifests.store();
        let reads = futures::stream::iter(want.into_iter().map(|(seq, key)| async move {
            let obj = store.read(&key).await?;
            Ok::<_, Error>((seq, key, obj))
        }))
        .buffered(READ_AHEAD);
        let got: Vec<_> = futures::TryStreamExt::try_collect(reads).await?;
        let mut out = Vec::with_capacity(got.len());
        let mut first_seq = None;
        for (seq, key, obj) in got {
            let Some(obj) = obj else {
                if out.is_empty() {
                    // Collected since the listing, oldest first (see `read`).
                    continue;
                }
                return Err(gone_after_newer(&key));
            };
            let s: Snapshot<serde_json::Value> = decode(KIND, &obj)?;
            match seq {
                Some(seq) if s.version != seq => return Err(wrong_sequence(&key, s.version, seq)),
                Some(_) => {}
                None => {
                    self.set_first(topic, s.version, obj.etag.clone());
                    first_seq = Some(s.version);
                    if s.version <= before {
                        continue;
                    }
                }
            }
            out.push(Entry::of(topic, s));
        }
        if located.first && first_seq.is_none() {
            // Slot 1 was not among what was read. It can hold a first entry created again
            // above every other slot (the topic was deleted whole, and a stale appender wrote
            // one past its old tail since): then it is the newest entry.
            if let Some((f, obj)) = self
                .current_first(topic, located.first_etag.as_deref())
                .await?
            {
                first_seq = Some(f);
                if newest.is_none_or(|m| f > m) {
                    let obj = match obj {
                        Some(obj) => Some(obj),
                        None => store.read(&keys::log_entry(topic, FIRST_SLOT)).await?,
                    };
                    if let Some(obj) = obj {
                        let s: Snapshot<serde_json::Value> = decode(KIND, &obj)?;
                        out.push(Entry::of(topic, s));
                    }
                }
            }
        }
        // In order, the last n (slot 1 may hold the newest, see above).
        out.sort_by_key(|e| e.sequence);
        let extra = out.len().saturating_sub(n);
        out.drain(..extra);
        let newest = match (newest, first_seq) {
            (Some(m), f) => Some(f.map_or(m, |f| f.max(m))),
            (None, f) => f,
        };
        if let Some(m) = newest {
            self.set_tail(topic, m);
        }
        Ok((out, newest))
    }

    /// Waits for entries with sequence number ≥ `from`, polling every `interval` (one listing a
    /// poll), and returns them as soon as there are any.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn wait_for(
        &self,
        topic: &Name,
        from: u64,
        interval: Duration,
    ) -> Result<Vec<Entry>> {
        loop {
            let got = self.read(topic, from, 1000).await?;
            if !got.is_empty() {
                return Ok(got);
            }
            tokio::time::sleep(interval).await;
        }
    }
}

impl EventLog {
    /// Deletes `topic`'s entries with a sequence number below `before`, oldest first, but
    /// never the newest entry (the next append numbers from it; deleting it would reuse
    /// sequence numbers). Returns the sequence numbers deleted, or with `dry_run` those
    /// that would be. Keys in the topic that are not entries are left alone. One listing,
    /// then one delete an entry.
    ///
    /// # Cancel safety
    ///
    /// Dropping it stops it between deletes: what was deleted stays deleted, nothing else
    /// changes, and running it again finishes the rest.
    pub async fn delete_before(
        &self,
        topic: &Name,
        before: u64,
        dry_run: bool,
    ) -> Result<Vec<u64>> {
        let store = self.manifests.store();
        let listed = store.list(&keys::log_topic(topic)).await?;
        let mut seqs = self.sequences(topic, &listed).await?;
        let newest = seqs.last().map_or(0, |(n, _)| *n);
        seqs.retain(|(s, _)| *s < before && *s < newest);
        if !dry_run {
            for (_, key) in &seqs {
                store.delete(key).await?;
            }
            debug!(topic = %topic, deleted = seqs.len(), "deleted old entries");
        }
        Ok(seqs.into_iter().map(|(s, _)| s).collect())
    }

    /// The topics that have entries. One listing.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn topics(&self) -> Result<Vec<String>> {
        self.manifests.store().list_folders(&keys::log_root()).await
    }
}

/// One audit event: a transition of a lock or a turn, appended to the audit topic as the
/// entry's event. Stored as a JSON object with an `event` field naming the variant
/// (`"acquire"`, `"takeover"`, `"release"`, `"break"`, `"start"`, `"finish"`) beside the
/// variant's fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
#[non_exhaustive]
pub enum AuditEvent {
    /// A free (never taken, released or expired) lock was acquired.
    Acquire(Acquisition),
    /// A lock was taken over from a holder whose lease had expired.
    Takeover(Acquisition),
    /// A lease was released.
    Release {
        /// The lock.
        lock: String,
        /// The node that released it.
        holder: String,
        /// The released lease's fencing token.
        fencing_token: u64,
    },
    /// An operator broke a lease.
    Break {
        /// The lock.
        lock: String,
        /// The node that broke it.
        by: Option<String>,
        /// The holder whose lease was broken.
        holder: String,
        /// The broken lease's fencing token.
        fencing_token: u64,
        /// The lock's version written by the break.
        version: u64,
    },
    /// A node claimed a turn and started its job.
    Start {
        /// The turn.
        turn: String,
        /// The turn's number.
        number: u64,
        /// The node running it.
        holder: String,
    },
    /// A turn's job finished.
    Finish {
        /// The turn.
        turn: String,
        /// The turn's number.
        number: u64,
        /// The node that ran it.
        holder: String,
        /// How the job went, as stored with the turn.
        outcome: serde_json::Value,
        /// Whether the outcome was stored with the turn (`false`: a later turn had started).
        stored: bool,
    },
}

/// A lease handed out, as [`AuditEvent::Acquire`] and [`AuditEvent::Takeover`] record it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Acquisition {
    /// The lock.
    pub lock: String,
    /// The node that acquired it.
    pub holder: String,
    /// The lease's fencing token.
    pub fencing_token: u64,
    /// The holder whose lease expired (`None` for a free lock).
    pub previous_holder: Option<String>,
}

impl AuditEvent {
    /// The event of an acquisition: a takeover when it had a previous holder.
    pub fn acquired(a: Acquisition) -> Self {
        match a.previous_holder {
            Some(_) => AuditEvent::Takeover(a),
            None => AuditEvent::Acquire(a),
        }
    }
}

/// Where a feature writes its audit trail: a log and a topic.
///
/// [`Audit::record`] queues an event and returns at once, so that a lock is handed over and
/// a turn's job started without waiting for the audit trail; one background task per
/// `Audit` (and its clones) appends the queued events in order. A process that ends soon
/// after should [`Audit::flush`] first.
#[derive(Debug, Clone)]
pub struct Audit {
    log: EventLog,
    topic: Name,
    queue: Arc<AuditQueue>,
}

/// The events waiting to be appended, and the task appending them.
#[derive(Debug)]
struct AuditQueue {
    state: Mutex<QueueState>,
    /// `true` while nothing is queued or being written.
    idle: tokio::sync::watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct QueueState {
    pending: std::collections::VecDeque<AuditEvent>,
    /// The task appending `pending`, while there is one.
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Audit {
    /// Audit events go to `topic` of `log`.
    pub fn new(log: EventLog, topic: Name) -> Self {
        Self {
            log,
            topic,
            queue: Arc::new(AuditQueue {
                state: Mutex::default(),
                idle: tokio::sync::watch::Sender::new(true),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.queue.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `event` to be appended after those queued before it, and returns at once.
    /// Failures are logged, never returned: the audit trail must not decide whether a lock
    /// or a turn works. Outside a tokio runtime the event is logged as not written.
    pub fn record(&self, event: AuditEvent) {
        let mut st = self.state();
        st.pending.push_back(event);
        self.keep_draining(&mut st);
    }

    /// Makes sure a task appends what is queued: the one running, or a new one when none
    /// runs (none yet, or the last one ended with its runtime). Without a runtime the queue
    /// is dropped, logged.
    fn keep_draining(&self, st: &mut QueueState) {
        if st.pending.is_empty() || st.task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                self.queue.idle.send_replace(false);
                st.task = Some(rt.spawn(self.clone().drain()));
            }
            Err(_) => {
                tracing::warn!(
                    topic = %self.topic,
                    events = st.pending.len(),
                    "audit events not written: no tokio runtime"
                );
                st.pending.clear();
                st.task = None;
                self.queue.idle.send_replace(true);
            }
        }
    }

    /// Appends the queued events in order until none is left. Ended early (its runtime shut
    /// down), it leaves the rest queued for [`Audit::keep_draining`].
    async fn drain(self) {
        loop {
            let next = {
                let mut st = self.state();
                match st.pending.pop_front() {
                    Some(event) => event,
                    None => {
                        st.task = None;
                        self.queue.idle.send_replace(true);
                        return;
                    }
                }
            };
            let written = match serde_json::to_value(&next) {
                Ok(value) => self.log.append(&self.topic, value).await.map(|_| ()),
                Err(source) => Err(Error::Encode {
                    what: "audit event",
                    source,
                }),
            };
            if let Err(e) = written {
                tracing::warn!(topic = %self.topic, error = %e, "audit event not written");
            }
        }
    }

    /// Waits until every event queued so far (by this `Audit` or a clone) has been
    /// appended, or has failed and been logged.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only waits; the events go on being appended.
    pub async fn flush(&self) {
        let mut idle = self.queue.idle.subscribe();
        loop {
            {
                let mut st = self.state();
                if st.pending.is_empty() && st.task.as_ref().is_none_or(|t| t.is_finished()) {
                    return;
                }
                self.keep_draining(&mut st);
            }
            // The sender lives as long as `self`: the wait ends when the queue is idle, or
            // after a second to look again (a task that ended with its runtime never says).
            let _ = tokio::time::timeout(Duration::from_secs(1), idle.wait_for(|idle| *idle)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored shape of the acquisition events is the one written before they were typed:
    /// an object with `event`, `lock`, `holder`, `fencing_token` and `previous_holder`.
    #[test]
    fn acquisitions_are_stored_as_before() {
        let a = |previous: Option<&str>| Acquisition {
            lock: "deploy".into(),
            holder: "n1".into(),
            fencing_token: 7,
            previous_holder: previous.map(str::to_string),
        };
        assert_eq!(
            serde_json::to_value(AuditEvent::acquired(a(None))).unwrap(),
            serde_json::json!({"event": "acquire", "lock": "deploy", "holder": "n1",
                "fencing_token": 7, "previous_holder": null})
        );
        assert_eq!(
            serde_json::to_value(AuditEvent::acquired(a(Some("n0")))).unwrap(),
            serde_json::json!({"event": "takeover", "lock": "deploy", "holder": "n1",
                "fencing_token": 7, "previous_holder": "n0"})
        );
    }
}
