//! The event log: an append-only log per topic, totally ordered by create-if-absent
//! sequence numbers (`log/<topic>/<sequence:020>.json`).
//!
//! An append writes the entry after the newest one it knows of with create-if-absent. If
//! that number is taken, it lists what came after and tries the next free one. Sequence
//! numbers are claimed one past an existing entry, so the log has no gaps after its first
//! entry, and a number is claimed once, so concurrent appenders never overwrite each other.
//! An entry is written with a `write_id` and verified like every other write.
//!
//! # The first entry starts at a floor
//!
//! An append to a topic with no entries (never used, or every entry vanished: a lifecycle
//! rule, a restore, an operator's `rm`) numbers its entry from the floor of now
//! ([`crate::clock::floor`]), not from 1, so a topic emptied and appended to again numbers
//! above everything it held before. Two residual cases, both about a topic with no entries:
//!
//! - Two appends racing on an empty topic draw different floors, so both land (no single
//!   winner, unlike every later number): the topic then starts with a gap, and a reader that
//!   read the higher entry before the lower one landed does not see the lower one. The
//!   appender of a first entry lists what came after it, so its next append goes after the
//!   newest, not into the gap.
//!
//! An appender that knows a tail (it appended or read it before) first reads that entry: if
//! it is still there, nothing up to it vanished or was trimmed (both take the oldest first),
//! so the entry after it is one past the newest or taken (the create's conflict then finds
//! the newest). If it is gone, the appender lists, as a fresh client does: a tail it knew
//! must not number an entry below ones appended after it and then trimmed or vanished.
//!
//! The log is an audit trail: the only thing that deletes entries is an operator's
//! [`EventLog::delete_before`] (`cairn gc --log-before TOPIC:SEQ`), which deletes the oldest
//! entries, oldest first, and never the newest one, so the next append still continues
//! the numbering (sequence numbers are never reused). A reader that listed an entry the
//! collector then deleted skips it, as long as it is older than every entry it returned.
//!
//! Sequence numbers never wrap: once an entry at `u64::MAX` exists, appending fails at once
//! with [`Error::Exhausted`] (no create is attempted); retire the topic for a new one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::clock::next_number;
use crate::error::{Error, Result};
use crate::manifest::envelope::{decode, encode};
use crate::manifest::{listed_number, Manifests, Snapshot};
use crate::retry::Backoff;
use crate::store::{keys, CreateOutcome, Name, WriteId};

/// The envelope kind of log entries.
pub const KIND: &str = "event";

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

/// The event log client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventLog {
    manifests: Arc<Manifests>,
    /// The newest sequence number this client knows of, per topic.
    tails: Arc<Mutex<HashMap<String, u64>>>,
}

impl EventLog {
    /// An event log client.
    pub fn new(manifests: Arc<Manifests>) -> Self {
        Self {
            manifests,
            tails: Arc::default(),
        }
    }

    /// Appends `event` to `topic` and returns its sequence number. Two requests when this
    /// client knows the tail (a read that it is still there, and the create), else a listing
    /// first. Fails with [`Error::Exhausted`], without
    /// writing, when the newest entry is at `u64::MAX`, and with [`Error::Encode`], before
    /// any request, when the entry would exceed [`crate::store::MAX_OBJECT_BYTES`]. Not
    /// cancel-safe: a cancelled append may or may not have been written.
    pub async fn append(&self, topic: &Name, event: serde_json::Value) -> Result<u64> {
        let opts = self.manifests.options();
        let mut backoff = Backoff::new(opts.backoff_initial, opts.backoff_max);
        let folder = keys::log_topic(topic);
        let after = |newest: u64| next_number(&folder, "sequence", newest);
        let mut first = false;
        let store = self.manifests.store();
        let known = match self.tail_hint(topic) {
            Some(t) => store.read(&keys::log_entry(topic, t)).await?.map(|_| t),
            None => None,
        };
        let mut next = match known {
            // Still there: nothing up to it was trimmed or vanished (module docs).
            Some(t) => after(t)?,
            None => match self.newest(topic, 0).await? {
                // No entries: start above anything the topic may have held (module docs).
                0 => {
                    first = true;
                    self.manifests.first_number(&folder)?
                }
                newest => after(newest)?,
            },
        };
        for _ in 0..opts.max_attempts.max(1) {
            let s = Snapshot {
                version: next,
                write_id: self.manifests.with_rng(WriteId::random).0,
                previous_write_id: None,
                written_by: self.manifests.node().to_string(),
                written_at: self.manifests.clock().now(),
                body: event.clone(),
                etag: None,
                seen: Default::default(),
            };
            let key = keys::log_entry(topic, next);
            match self
                .manifests
                .store()
                .create(&key, encode(KIND, &s)?, &WriteId(s.write_id.clone()))
                .await?
            {
                CreateOutcome::Created { .. } => {
                    self.set_tail(topic, next);
                    if first {
                        // Another first entry may have landed above ours (a different floor):
                        // learn the newest, so that the next append goes after it.
                        // Our entry is stored whatever this listing answers: a failure
                        // leaves the tail at ours (the next append then finds the newest
                        // by its create's conflict).
                        if let Err(e) = self.newest(topic, next).await {
                            debug!(topic = %topic, error = %e, "could not list after a first entry");
                        }
                    }
                    debug!(topic = %topic, sequence = next, "appended");
                    return Ok(next);
                }
                CreateOutcome::Exists { .. } => {
                    first = false;
                    next = after(self.newest(topic, next).await?)?;
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

    /// The newest sequence number at or after `at_least` (listing only what comes after).
    async fn newest(&self, topic: &Name, at_least: u64) -> Result<u64> {
        let folder = keys::log_topic(topic);
        let listed = if at_least == 0 {
            self.manifests.store().list(&folder).await?
        } else {
            self.manifests
                .store()
                .list_after(&folder, &keys::log_entry(topic, at_least))
                .await?
        };
        let mut newest = at_least;
        for l in &listed {
            newest = newest.max(listed_number(&l.key)?.unwrap_or(0));
        }
        self.set_tail(topic, newest);
        Ok(newest)
    }

    /// The sequence number of `topic`'s newest entry, or `None` when the topic has none (it
    /// was never appended to). One listing.
    pub async fn newest_sequence(&self, topic: &Name) -> Result<Option<u64>> {
        Ok(Some(self.newest(topic, 0).await?).filter(|n| *n > 0))
    }

    /// Entries of `topic` with sequence number ≥ `from`, in order, at most `limit`.
    pub async fn read(&self, topic: &Name, from: u64, limit: usize) -> Result<Vec<Entry>> {
        let folder = keys::log_topic(topic);
        let store = self.manifests.store();
        // Everything after the entry before `from`; from 0 or 1, everything.
        let listed = match from.checked_sub(1).filter(|before| *before > 0) {
            None => store.list(&folder).await?,
            Some(before) => {
                store
                    .list_after(&folder, &keys::log_entry(topic, before))
                    .await?
            }
        };
        let mut seqs = Vec::with_capacity(listed.len());
        for l in &listed {
            seqs.extend(listed_number(&l.key)?.filter(|s| *s >= from));
        }
        seqs.sort_unstable();
        seqs.truncate(limit);
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let key = keys::log_entry(topic, seq);
            let Some(obj) = store.read(&key).await? else {
                if out.is_empty() {
                    // Collected since the listing: collection goes oldest first, so only a
                    // prefix of what was listed can vanish.
                    continue;
                }
                return Err(Error::Corrupt {
                    key: key.to_string(),
                    reason: "listed but gone after a newer entry was read: entries are only \
                             deleted oldest first"
                        .into(),
                });
            };
            let s: Snapshot<serde_json::Value> = decode(KIND, &obj)?;
            if s.version != seq {
                return Err(Error::Corrupt {
                    key: key.to_string(),
                    reason: format!("holds sequence {} at the key of {seq}", s.version),
                });
            }
            self.set_tail(topic, seq);
            out.push(Entry {
                topic: topic.to_string(),
                sequence: seq,
                appended_by: s.written_by,
                appended_at: s.written_at,
                event: s.body,
            });
        }
        Ok(out)
    }

    /// Waits for entries with sequence number ≥ `from`, polling every `interval` (one
    /// listing a poll), and returns them as soon as there are any. Cancel-safe.
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
    pub async fn delete_before(
        &self,
        topic: &Name,
        before: u64,
        dry_run: bool,
    ) -> Result<Vec<u64>> {
        let store = self.manifests.store();
        let listed = store.list(&keys::log_topic(topic)).await?;
        let mut seqs = Vec::with_capacity(listed.len());
        for l in &listed {
            seqs.extend(listed_number(&l.key)?);
        }
        seqs.sort_unstable();
        let newest = seqs.last().copied().unwrap_or(0);
        seqs.retain(|s| *s < before && *s < newest);
        if !dry_run {
            for s in &seqs {
                store.delete(&keys::log_entry(topic, *s)).await?;
            }
            debug!(topic = %topic, deleted = seqs.len(), "deleted old entries");
        }
        Ok(seqs)
    }

    /// The topics that have entries. One listing.
    pub async fn topics(&self) -> Result<Vec<String>> {
        self.manifests.store().list_folders(&keys::log_root()).await
    }
}

/// Where a feature writes its audit trail: a log and a topic.
#[derive(Debug, Clone)]
pub struct Audit {
    log: EventLog,
    topic: Name,
}

impl Audit {
    /// Audit events go to `topic` of `log`.
    pub fn new(log: EventLog, topic: Name) -> Self {
        Self { log, topic }
    }

    /// Appends an audit event. Failures are logged, never returned: the audit trail must
    /// not decide whether a lock or a turn works.
    pub async fn record(&self, event: serde_json::Value) {
        if let Err(e) = self.log.append(&self.topic, event).await {
            tracing::warn!(topic = %self.topic, error = %e, "audit event not written");
        }
    }
}
