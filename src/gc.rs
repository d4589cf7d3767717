//! Garbage collection for operators (`cairn gc`): the one place, with
//! [`crate::node::Nodes::forget`], that deletes objects on purpose. Nothing here is
//! on the safety path, and nothing here ever sets a version or a sequence number back.
//!
//! What it collects:
//!
//! - **Old manifest versions** (version chain), in every lock, stream, turn, member and
//!   record: the same collection every writer runs in passing ([`Manifest::collect_garbage`]:
//!   the newest `gc_keep` stay, and no version younger than `gc_min_age` goes), for
//!   manifests nobody writes any more.
//! - **Released locks and deleted records** older than an age: their history is trimmed to
//!   the tombstone alone ([`Manifest::trim`] with 1). The tombstone itself is **never**
//!   deleted. It keeps the lock's last fencing token, so the next acquirer's is higher.
//!   Were it deleted, the next acquirer would create the lock afresh at a floor drawn from
//!   time (`src/clock.rs` (`floor`)): still above every earlier token, but only as far as
//!   clocks agree, while the tombstone needs no clock. Likewise a deleted record keeps its
//!   version so a stale `put_if_newer` stays stale. Keeping one small object per name is
//!   the price. Under etag CAS a manifest is one object already, so there is nothing to trim.
//! - **Nodes that left** longer ago than an age: removed entirely
//!   ([`crate::node::Nodes::forget`] explains why that is harmless for members).
//! - **Event log entries** of a topic below a sequence number, never the newest entry
//!   ([`EventLog::delete_before`]).
//!
//! **Races.** A manifest is read, judged, then collected. Trimming never touches the newest
//! version, so a lock acquired (or a record written) between the read and the trim loses
//! nothing: the trim is exactly the collection its own writers run. Removing a member reads
//! the record again right before deleting and skips it if it changed; what is left is the
//! window between that read and the delete, since object stores have no conditional delete.
//!
//! **Never what it cannot read.** A manifest whose newest version does not parse (corrupt,
//! another kind, a newer format) is reported in [`GcReport::skipped`] and left alone, with
//! its history.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::clock::until;
use crate::error::{Error, Result};
use crate::lock::{LockRecord, StoredState};
use crate::log::EventLog;
use crate::manifest::{Collection, Manifest, Manifests, Snapshot};
use crate::node::{Forget, NodeOptions, NodeRecord, Nodes, Presence};
use crate::record::{Record, Records};
use crate::store::keys::Family;
use crate::store::Name;

/// What [`collect`] collects besides old manifest versions.
#[derive(Debug, Clone, Default)]
pub struct GcOptions {
    /// Trim released locks and deleted records whose tombstone is older than this to the
    /// tombstone alone. `None`: leave them as any manifest.
    pub released_older_than: Option<Duration>,
    /// Remove nodes that left longer ago than this. `None`: keep them.
    pub left_older_than: Option<Duration>,
    /// Delete each topic's entries below the sequence number (never the newest entry).
    pub log_before: Vec<(Name, u64)>,
    /// Delete nothing: report what would go.
    pub dry_run: bool,
}

/// What one collection found to delete, manifest by manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GcReport {
    /// Whether nothing was deleted (a dry run).
    pub dry_run: bool,
    /// Objects deleted (or that would be).
    pub objects: usize,
    /// One entry per manifest, node or topic that lost objects.
    pub collected: Vec<Collected>,
    /// What was left alone because it could not be read.
    pub skipped: Vec<Skipped>,
}

/// Objects deleted from one manifest, node or topic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Collected {
    /// `versions` (old versions), `released-lock` and `deleted-record` (history trimmed to
    /// the tombstone), `left-node` (removed), `log` (old entries).
    pub what: &'static str,
    /// The manifest's key (`locks/build`), the node id, or the topic.
    pub name: String,
    /// Objects deleted (or that would be).
    pub objects: usize,
    /// For a tombstone: what it keeps, a lock's fencing token or a record's version. For a
    /// log: the newest sequence number deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// A manifest or topic left alone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    /// Its key.
    pub key: String,
    /// Why.
    pub reason: String,
}

/// Whether an error says the stored data cannot be interpreted (so the object is left alone
/// and reported), rather than that the store failed (so the collection stops).
fn unreadable(e: &Error) -> bool {
    matches!(
        e,
        Error::Corrupt { .. } | Error::WrongKind { .. } | Error::UnsupportedFormat { .. }
    )
}

/// Collects garbage as `options` say. Stops at the first store failure (what was deleted
/// before stays deleted; running it again is safe).
///
/// # Cancel safety
///
/// Dropping it stops it between deletes: what was deleted stays deleted, nothing else changes,
/// and running it again finishes the rest.
pub async fn collect(
    manifests: &Arc<Manifests>,
    log: &EventLog,
    options: &GcOptions,
) -> Result<GcReport> {
    let mut g = Gc {
        manifests,
        options,
        report: GcReport {
            dry_run: options.dry_run,
            ..Default::default()
        },
    };
    g.plain(Family::Stream, crate::stream::KIND).await?;
    g.plain(Family::Turn, crate::turn::KIND).await?;
    g.plain(Family::App, crate::fenced::KIND).await?;
    g.locks().await?;
    g.records().await?;
    g.members().await?;
    for (topic, before) in &options.log_before {
        let seqs = log.delete_before(topic, *before, options.dry_run).await?;
        if let Some(last) = seqs.last() {
            g.add("log", topic.to_string(), seqs.len(), Some(*last));
        }
    }
    Ok(g.report)
}

struct Gc<'a> {
    manifests: &'a Arc<Manifests>,
    options: &'a GcOptions,
    report: GcReport,
}

impl Gc<'_> {
    fn add(&mut self, what: &'static str, name: String, objects: usize, version: Option<u64>) {
        if objects == 0 {
            return;
        }
        self.report.objects = self.report.objects.saturating_add(objects);
        self.report.collected.push(Collected {
            what,
            name,
            objects,
            version,
        });
    }

    /// The newest version of `m`, or `None` when it is gone or unreadable (then reported).
    async fn head<T>(&mut self, m: &Manifest<T>) -> Result<Option<Snapshot<T>>>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync,
    {
        match m.load().await {
            Ok(s) => Ok(s),
            Err(e) if unreadable(&e) => {
                self.report.skipped.push(Skipped {
                    key: m.key().to_string(),
                    reason: e.to_string(),
                });
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Trims `m` to `keep` versions (the `gc_min_age` bound applies) and reports it.
    async fn trim<T>(
        &mut self,
        m: &Manifest<T>,
        keep: usize,
        what: &'static str,
        v: Option<u64>,
    ) -> Result<()>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync,
    {
        let deleted = m.trim(keep, self.options.dry_run).await?;
        self.add(what, m.key().to_string(), deleted.len(), v);
        Ok(())
    }

    fn keep(&self) -> usize {
        self.manifests.options().gc_keep
    }

    fn older_than(&self, at: chrono::DateTime<chrono::Utc>, age: Duration) -> bool {
        until(at, self.manifests.clock().now()) >= age
    }

    /// The manifests of `family`, read as `kind`.
    fn collection<T>(&self, family: Family, kind: &'static str) -> Collection<T> {
        Collection::new(Arc::clone(self.manifests), family, kind)
    }

    /// Trims every manifest of `family` to the newest `gc_keep` versions, its body read as
    /// plain JSON whatever the family's type.
    async fn plain(&mut self, family: Family, kind: &'static str) -> Result<()> {
        let c = self.collection::<serde_json::Value>(family, kind);
        for name in c.names().await? {
            let m = c.open(&name);
            if self.head(&m).await?.is_some() {
                let keep = self.keep();
                self.trim(&m, keep, "versions", None).await?;
            }
        }
        Ok(())
    }

    async fn locks(&mut self) -> Result<()> {
        let c = self.collection::<LockRecord>(Family::Lock, crate::lock::KIND);
        for name in c.names().await? {
            let m = c.open(&name);
            let Some(s) = self.head(&m).await? else {
                continue;
            };
            let released = s.body.state == StoredState::Released;
            match self.options.released_older_than {
                Some(age) if released && self.older_than(s.written_at, age) => {
                    // Reported by the token it keeps (the next holder's is above it).
                    let token = s.body.fencing_token.0;
                    self.trim(&m, 1, "released-lock", Some(token)).await?
                }
                _ => {
                    let keep = self.keep();
                    self.trim(&m, keep, "versions", None).await?
                }
            }
        }
        Ok(())
    }

    async fn records(&mut self) -> Result<()> {
        let records = Records::new(Arc::clone(self.manifests));
        for ns in records.namespaces().await? {
            let Ok(ns) = Name::new(ns) else { continue };
            for key in records.keys(&ns).await? {
                let Ok(key) = Name::new(key) else { continue };
                let m: Manifest<Record> = records.handle(&ns, &key);
                let Some(s) = self.head(&m).await? else {
                    continue;
                };
                match self.options.released_older_than {
                    Some(age) if s.body.deleted && self.older_than(s.written_at, age) => {
                        self.trim(&m, 1, "deleted-record", Some(s.body.version))
                            .await?
                    }
                    _ => {
                        let keep = self.keep();
                        self.trim(&m, keep, "versions", None).await?
                    }
                }
            }
        }
        Ok(())
    }

    async fn members(&mut self) -> Result<()> {
        let members = Nodes::new(Arc::clone(self.manifests), NodeOptions::default());
        let c = members.collection();
        for name in c.names().await? {
            let m = c.open(&name);
            let Some(s): Option<Snapshot<NodeRecord>> = self.head(&m).await? else {
                continue;
            };
            match self.options.left_older_than {
                Some(age)
                    if s.body.state == Presence::Left
                        && self.older_than(s.body.heartbeat_at, age) =>
                {
                    match members.forget(&name, false, self.options.dry_run).await? {
                        Forget::Forgotten { objects, .. } => {
                            self.add("left-node", name.to_string(), objects, None)
                        }
                        // Came back, or went, since: not ours to delete.
                        Forget::Changed | Forget::NotFound | Forget::Refused(_) => {}
                    }
                }
                _ => {
                    let keep = self.keep();
                    self.trim(&m, keep, "versions", None).await?
                }
            }
        }
        Ok(())
    }
}
