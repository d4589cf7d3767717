//! Membership: who is online.
//!
//! Each node heartbeats its own record, a manifest of kind `node` at `nodes/<node>/` (kind
//! `member` at `members/<node>/` on a prefix of format 1, where builds of that format look:
//! docs/GUARANTEES.md, "Formats"), every interval (default 1 s), and marks it *left* when it
//! stops. A view classifies every node by the age of its last heartbeat against a timeout
//! that adapts to how slow the node's heartbeat writes have been:
//!
//! `timeout = base + 2 × moving average of the node's heartbeat write latency`, with `base`
//! two heartbeat intervals by default (2 s at 1 s, OpenZiti's base). A node is *online*
//! while its last heartbeat is at most `timeout` old, *suspect* up to twice that, then
//! *offline*; a node that left is offline at once.
//!
//! ## Detection at the defaults
//!
//! A node that dies is seen not online (suspect) `timeout` after its last heartbeat was
//! sent, so between `timeout − interval` and `timeout` after it died: 1 to 2 s plus twice
//! its write latency at the defaults, under 3 s wherever writes take under 400 ms. A live
//! node's newest stored heartbeat is at most one interval plus one write old, so it stays
//! online with `interval + 2 × latency` to spare, one lost heartbeat included. Measured on
//! LocalStack with `cairn bench --membership` (docs/PERFORMANCE.md).
//!
//! A [`NodeView`] serves records from its cache for up to one interval; a cached record
//! can therefore look older than the store's. Before it calls a node suspect or offline, the
//! view reads that node's record again unless it was read (or listed) after the verdict
//! became due, so the cache never makes a live node suspect, and delays no verdict on a dead
//! one.
//!
//! Every heartbeat is a compare-and-swap on the version the node wrote last, so a second
//! process heartbeating under the same node id is detected (its write, or ours, conflicts
//! with a record of another session) and reported as [`Error::DuplicateNode`], never merged.
//!
//! Ages are read on the store's clock, not on any node's: a heartbeat's time is when the
//! store wrote it (its `Last-Modified`), and "now" is the store's time as the viewer measured
//! it with a clock check (`src/store/time.rs`; two requests, repeated at most every
//! 15 minutes). A node whose clock runs ahead or behind is aged exactly as any other; a
//! viewer whose own clock is measured beyond the bound
//! ([`crate::manifest::ManifestOptions::max_clock_offset`]) calls no node suspect or
//! offline ([`Health::Unknown`]) and says so.
//!
//! ## Stored durations are bounded
//!
//! A record's `interval_ms` and `write_latency_ms` come from another process (or a bug, or an
//! operator's hand) and are never trusted as they are: the interval must be at most
//! 1 h and the latency average between 0 and 1 h.
//!
//! - **Views** ([`Nodes::list`], [`Nodes::classify`], [`NodeView`]) clamp an
//!   out-of-range value to its bound (and log a warning): one bad record must not take the
//!   whole fleet's view down, and clamping an oversized value can only make a node look
//!   *less* alive than the value claims, never online forever.
//! - **Joining** ([`Nodes::join`]) refuses a record it would have to wait on or take
//!   over with [`Error::Corrupt`], at once: it never sleeps on a duration it has not checked,
//!   and never overwrites a record it cannot interpret.
//!
//! ## Views at fleet scale
//!
//! A [`NodeView`] refreshes from one listing of `nodes/` (one LIST per 1,000 nodes),
//! which carries every record object's etag and `last_modified`. A heartbeat replaces the
//! record's object (etag CAS) or adds a version (chain), so the listing shows it as a
//! changed object, and its `last_modified` is the heartbeat's time by the store's clock,
//! the same timestamp a GET's `Last-Modified` gives: the view takes that time from the
//! listing and does not read the record. The age is then judged exactly as before (from
//! that store time to the viewer's clock witness, `Health::Unknown` when the viewer's
//! clock is beyond the bound, `src/store/time.rs`): no clock is trusted more than by a
//! read. The record's body (its interval, latency average, beats, session) is read only
//! - when the node is new to the view, or its held record says it left (a node back);
//! - when its object stops changing: the first refresh that lists the same object as the
//!   last one taken from the listing reads it once, so a node's last word (`left`) is seen
//!   at most one refresh late, and a dead node costs one GET, then nothing;
//! - before a verdict other than online, since the timeout comes from the body.
//!
//! So a view of N nodes costs ⌈N/1000⌉ requests a refresh when nothing stopped or started,
//! whether they heartbeat or not; between reads, a row's beats, latency and version are as
//! of the last read.
//!
//! ## Cost
//!
//! One PUT per node per interval: at 1 s, 3,600 PUTs an hour (≈ $0.018 at S3 list prices),
//! about 2.6 million PUTs, ≈ $13, per node per month; at `--interval 2s` half that, at 10 s
//! ≈ $1.3. A view costs one listing per refresh once its cache entry goes stale (fresh for
//! one interval by default), plus the reads above.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::cache::{CacheOptions, CachedCollection, ManifestCache, View};
use crate::clock::{millis, stored_ms, until, Clock};
use crate::error::{Error, Result};
use crate::manifest::held::{self, ClaimBody, Held, HeldState, Keep, Released, Renewal};
use crate::manifest::listing::Entry;
use crate::manifest::{Collection, Manifest, Manifests, Remove, Revalidated, Snapshot, Write};
use crate::store::keys::Family;
use crate::store::Name;
use futures::StreamExt;

/// The manifest kind of node records.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const KIND: &str = "node";

/// The kind of node records on a prefix of format 1, under `members/`
/// ([`Family::Member`]): builds of that format read and write them so.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const MEMBER_KIND: &str = "member";

/// The kind of node records kept in `family`.
fn kind_in(family: Family) -> &'static str {
    match family {
        Family::Member => MEMBER_KIND,
        _ => KIND,
    }
}

/// Longest heartbeat interval cairn writes or trusts in a record: 1 hour. A node heartbeating
/// less often is not usefully "online" (others would call it online for three hours after it
/// died), and at an hour a heartbeat costs well under a cent a month; anything longer in a
/// stored record is a bug or tampering.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// Largest heartbeat write-latency average trusted in a record: 1 hour. A single write is
/// bounded by the store's request timeout (10 s by default) times its attempts; an average
/// above an hour cannot come from real writes.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const MAX_WRITE_LATENCY: Duration = Duration::from_secs(3600);

/// Heartbeat and classification settings.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// How often a node heartbeats. Default 1 s: with the default base a dead node is seen
    /// suspect 1 to 2 s after it died (plus twice its write latency), at 3,600 PUTs an hour,
    /// ≈ $0.018 an hour or $13 a month per node on S3 prices; raise it to pay less and
    /// notice later (2 s: $6.5 a month, 2 to 4 s). Must be positive and at most
    /// 1 h.
    pub interval: Duration,
    /// The timeout before latency is added. `None` (the default): two of the node's own
    /// heartbeat intervals (2 s at 1 s, the base OpenZiti uses), so one lost or late
    /// heartbeat does not make a node suspect, and a dead one is noticed within two.
    pub base_timeout: Option<Duration>,
    /// Weight of the newest sample in the moving average of write latency. Default 0.2:
    /// about the last ten heartbeats count.
    pub latency_weight: f64,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            base_timeout: None,
            latency_weight: 0.2,
        }
    }
}

/// Whether a node is heartbeating or has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    /// Heartbeating.
    Alive,
    /// Left on purpose.
    Left,
}

/// The stored body of a member record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Alive or left.
    pub state: Presence,
    /// Unique to one run of the node, so two processes under one id tell each other apart.
    pub session: String,
    /// The node's heartbeat interval, in milliseconds (at most 1 h).
    pub interval_ms: u64,
    /// When this run joined.
    pub started_at: DateTime<Utc>,
    /// When this heartbeat was sent (the node's wall clock).
    pub heartbeat_at: DateTime<Utc>,
    /// Heartbeats written by this run (saturating at `u64::MAX`: a display counter).
    pub beats: u64,
    /// Moving average of this node's heartbeat write latency, in milliseconds (between 0 and
    /// 1 h).
    pub write_latency_ms: f64,
}

/// How a view sees a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Heartbeat within the timeout.
    Online,
    /// Heartbeat older than the timeout, but within twice it.
    Suspect,
    /// Heartbeat older than twice the timeout, or the node left.
    Offline,
    /// Not judged: this viewer's wall clock is measured beyond the bound from the store's
    /// (`src/store/time.rs`), so it cannot tell a heartbeat's age and calls no node
    /// suspect or offline. A node that left is still offline.
    Unknown,
}

impl Health {
    /// Its name, as serialized: `online`, `suspect`, `offline`, `unknown`.
    pub fn label(self) -> &'static str {
        match self {
            Health::Online => "online",
            Health::Suspect => "suspect",
            Health::Offline => "offline",
            Health::Unknown => "unknown",
        }
    }
}

/// One node as a view sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStatus {
    /// The node id.
    pub node: String,
    /// Online, suspect or offline.
    pub health: Health,
    /// Whether it left on purpose.
    pub left: bool,
    /// Age of its last heartbeat, in milliseconds, on the store's clock: from when the store
    /// wrote it (its `Last-Modified`) to the store's time now as this viewer measured it
    /// (0 when not judged, [`Health::Unknown`]).
    pub age_ms: u64,
    /// The timeout used for it, in milliseconds.
    pub timeout_ms: u64,
    /// The record's version.
    pub version: u64,
    /// The record.
    #[serde(flatten)]
    pub record: NodeRecord,
}

/// The outcome of [`Nodes::forget`].
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Forget {
    /// The record is gone (or, in a dry run, would be): this many objects.
    Forgotten {
        /// The node as it was classified just before.
        status: Box<NodeStatus>,
        /// Objects deleted.
        objects: usize,
    },
    /// The node is online or suspect, and `force` was not given; nothing was deleted.
    Refused(Box<NodeStatus>),
    /// The record changed between the two reads (the node came back); nothing was deleted.
    Changed,
    /// There is no such node.
    NotFound,
}

/// The membership client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Nodes {
    collection: Collection<NodeRecord>,
    options: NodeOptions,
}

impl Nodes {
    /// A membership client.
    pub fn new(manifests: Arc<Manifests>, options: NodeOptions) -> Self {
        Self {
            collection: {
                let family = manifests.node_family();
                Collection::new(manifests, family, kind_in(family))
            },
            options,
        }
    }

    /// The member records, one per node id.
    pub fn collection(&self) -> &Collection<NodeRecord> {
        &self.collection
    }

    /// The options in force.
    pub fn options(&self) -> &NodeOptions {
        &self.options
    }

    pub(crate) fn manifest(&self, node: &Name) -> Manifest<NodeRecord> {
        self.collection.open(node)
    }

    /// The timeout for a node with this record: base (default two of its intervals) plus
    /// twice its average write latency, with both stored durations clamped to their bounds
    /// (1 h).
    pub fn timeout(&self, r: &NodeRecord) -> Duration {
        let (interval, latency) = clamped(r);
        self.timeout_of(interval, latency)
    }

    fn timeout_of(&self, interval: Duration, latency: Duration) -> Duration {
        let base = self
            .options
            .base_timeout
            .unwrap_or(interval.saturating_mul(2));
        base.saturating_add(latency.saturating_mul(2))
    }

    /// Classifies a record as seen at `now`, a time on the store's clock ([`Nodes::now`];
    /// `None`: this viewer cannot tell the store's time, and judges no age). The heartbeat's
    /// time is the store's `Last-Modified` of the record ([`Snapshot::stored_at`]), or, for
    /// a record this client wrote and has not read back, the writer's `heartbeat_at`. Never
    /// panics, whatever the record holds: out-of-range durations are clamped (see the module
    /// docs), and a heartbeat later than `now` counts as age zero.
    pub fn classify(
        &self,
        node: &str,
        s: &Snapshot<NodeRecord>,
        now: Option<DateTime<Utc>>,
    ) -> NodeStatus {
        let beat = s.stored_at().unwrap_or(s.body.heartbeat_at);
        let age = now.map(|now| until(beat, now));
        if let Err(e) = checked(
            &format_args!("{}/{node}", self.collection.family().folder()),
            &s.body,
        ) {
            warn!(error = %e, "member record out of range; classifying it with clamped values");
        }
        let timeout = self.timeout(&s.body);
        let left = s.body.state == Presence::Left;
        let health = match age {
            _ if left => Health::Offline,
            None => Health::Unknown,
            Some(age) if age > timeout.saturating_mul(2) => Health::Offline,
            Some(age) if age > timeout => Health::Suspect,
            Some(_) => Health::Online,
        };
        NodeStatus {
            node: node.to_string(),
            health,
            left,
            age_ms: millis(age.unwrap_or_default()),
            timeout_ms: millis(timeout),
            version: s.version,
            record: s.body.clone(),
        }
    }

    /// The store's time now as this viewer can vouch for it, for [`Nodes::classify`]: from
    /// its clock check (`src/store/time.rs`; two requests when the last is older than
    /// 15 min), `None` when that check puts this node's clock
    /// beyond the bound, or cannot be made (the store refuses the write: read-only
    /// credentials), which it says.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a clock check's only write is the scratch object `_cairn/clock.json`,
    /// which holds no state.
    pub async fn now(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(self.timeline().await?.now())
    }

    async fn timeline(&self) -> Result<Timeline> {
        let manifests = self.collection.manifests();
        match manifests.witness().await {
            Ok(w) if manifests.store_time().beyond(&w) => Ok(Timeline::Beyond),
            Ok(w) => Ok(Timeline::Store(w, Arc::clone(manifests.clock()))),
            Err(e @ (Error::Store { .. } | Error::Unsupported { .. })) => {
                warn!(error = %e, "no clock check (the store refused its write): this node cannot tell heartbeats' ages, and calls no node suspect or offline");
                Ok(Timeline::Beyond)
            }
            Err(e) => Err(e),
        }
    }

    /// Every node that ever joined, classified now, failing on the first record that cannot
    /// be read (see [`Nodes::entries`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`Nodes::entries`].
    pub async fn list(&self) -> Result<Vec<NodeStatus>> {
        self.entries()
            .await?
            .into_iter()
            .map(|e| e.map_err(Error::from))
            .collect()
    }

    /// Every node that ever joined, classified now; a record that cannot be read is an
    /// [`Unreadable`](crate::manifest::listing::Unreadable) entry in its place. One LIST per
    /// 1,000 nodes and one GET per node, several in flight, and a clock check when the last
    /// is stale and some node is alive (only a live node's age is read: a prefix with none, a
    /// fresh one, costs no check and gets no write). Each node is classified as soon as its
    /// record is read.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it reads, and may run a clock check, whose only write is the scratch
    /// object `_cairn/clock.json`, which holds no state.
    pub async fn entries(&self) -> Result<Vec<Entry<NodeStatus>>> {
        let all = self.collection.entries().await?;
        let mut all = std::pin::pin!(all);
        let mut time = LazyTimeline::default();
        let mut out = Vec::new();
        while let Some(e) = all.next().await {
            out.push(match e {
                Ok((n, s)) => {
                    let now = time.now_for(self, &s).await?;
                    Ok(self.classify(n.as_str(), &s, now))
                }
                Err(u) => Err(u),
            });
        }
        Ok(out)
    }

    /// Removes `node`'s record (every version) if it left or is offline, or, with `force`,
    /// whatever its health. The record is read, classified, read again just before the
    /// deletes and left alone if it changed in between ([`Forget::Changed`]). With
    /// `dry_run`, nothing is deleted.
    ///
    /// Why deleting is harmless here (unlike a lock or a record, which keep a tombstone): a
    /// member record's version is no fencing token, and nothing compares it across
    /// incarnations. A node that joins again after being forgotten starts a new record (at
    /// a floor drawn from time, as every manifest created afresh). What remains: without a conditional delete, a node coming back to life
    /// between the second read and the delete loses that heartbeat's record (the next view
    /// simply does not list it; under etag CAS its heartbeat process then stops as if
    /// another process had taken the id, exit 78), and a long-running view that knew the old
    /// record (version chain) may show it until the new record's version passes the old
    /// one. A node forgotten while offline but still alive (a paused VM) that resumes
    /// after another process joined under its id may, under the version chain, go
    /// undetected as a duplicate until one of them lists the record (at most half of
    /// `gc_min_age`): until then their writes collide only if they reach the same version.
    /// `--force` on a node that is online says the operator accepts all of it.
    ///
    /// # Cancel safety
    ///
    /// Dropping it stops it between deletes: what was deleted stays deleted, nothing else
    /// changes, and running it again finishes the rest.
    pub async fn forget(&self, node: &Name, force: bool, dry_run: bool) -> Result<Forget> {
        let m = self.manifest(node);
        let Some(s) = m.load().await? else {
            return Ok(Forget::NotFound);
        };
        let status = self.classify(node.as_str(), &s, self.now().await?);
        if !force && !status.left && status.health != Health::Offline {
            return Ok(Forget::Refused(Box::new(status)));
        }
        Ok(match m.remove(&s, dry_run).await? {
            Remove::Removed(keys) => Forget::Forgotten {
                status: Box::new(status),
                objects: keys.len(),
            },
            Remove::Changed => Forget::Changed,
            Remove::Gone => Forget::NotFound,
        })
    }

    /// A cached view, for dashboards and routers that ask often.
    pub fn view(&self, options: CacheOptions) -> NodeView {
        NodeView {
            nodes: self.clone(),
            cached: CachedCollection::new(self.collection.clone(), options),
        }
    }

    /// Joins: writes this node's first heartbeat and keeps heartbeating in the background until
    /// [`Heartbeater::leave`]. If the record shows another process heartbeating under this id,
    /// watches it for one timeout first: if it is still being written, fails with
    /// [`Error::DuplicateNode`]; if not (a crashed earlier run), takes the record over. A
    /// stored record whose durations are out of range is [`Error::Corrupt`], at once (it is
    /// neither waited on nor overwritten); an interval option that is zero or above
    /// 1 h is [`Error::Config`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a dropped call may or may not have written, as when an answer is lost;
    /// the stored object is whole either way (each write is one conditional PUT of a whole
    /// object). Read again to learn which.
    pub async fn join(&self) -> Result<Heartbeater> {
        let interval = self.options.interval;
        if interval.is_zero() || interval > MAX_INTERVAL {
            return Err(Error::Config(format!(
                "heartbeat interval {interval:?} must be positive and at most {MAX_INTERVAL:?}"
            )));
        }
        let node = Name::new(self.collection.manifests().node())?;
        let m = self.manifest(&node);
        let clock = self.collection.manifests().clock();
        let session = self.collection.manifests().write_id().into_string();
        let mut current = m.load().await?;
        if let Some(c) = current.clone() {
            let (other_interval, other_latency) = checked(m.key(), &c.body)?;
            // Only a live record needs its age (and so the store's time); an unknown age is
            // watched, as a recent one is.
            let alive = c.body.state == Presence::Alive;
            let now = if alive { self.now().await? } else { None };
            let status = self.classify(node.as_str(), &c, now);
            if alive && status.health != Health::Offline {
                let watch = self.timeout_of(other_interval, other_latency);
                info!(node = %node, other = %c.body.session, ?watch, "another session's record is recent; watching it before joining");
                tokio::time::sleep(watch).await;
                match m.revalidate(&c).await? {
                    Revalidated::Unchanged => {}
                    Revalidated::Changed(s) => {
                        if s.body.state == Presence::Alive {
                            return Err(duplicate(&node, &s.body));
                        }
                        current = Some(s);
                    }
                    Revalidated::Missing => current = None,
                }
            }
        }
        let now = clock.now();
        let record = NodeRecord {
            state: Presence::Alive,
            session: session.clone(),
            interval_ms: millis(interval),
            started_at: now,
            heartbeat_at: now,
            beats: 1,
            write_latency_ms: 0.0,
        };
        let sent = clock.monotonic();
        let s = match m.write(current.as_ref(), record).await? {
            Write::Written(s) => s,
            Write::Conflict(Some(other)) => return Err(duplicate(&node, &other.body)),
            Write::Conflict(None) => {
                return Err(Error::Contention {
                    key: m.key().to_string(),
                    attempts: 1,
                })
            }
        };
        let first = clock.monotonic().saturating_duration_since(sent);
        info!(node = %node, session = %session, "joined");
        let beats = Beats {
            node: node.clone(),
            interval,
            weight: self.options.latency_weight.clamp(0.0, 1.0),
            clock: Arc::clone(clock),
        };
        let c = Arc::clone(clock);
        let held = Held::spawn(
            s,
            None,
            first.as_secs_f64() * 1000.0,
            move |keeper| async move {
                let due = crate::clock::after(c.monotonic(), interval);
                held::keep(m, beats, keeper, due, c).await;
            },
        );
        Ok(Heartbeater {
            node,
            nodes: self.clone(),
            held,
        })
    }
}

/// A record's stored durations, range-checked: [`Error::Corrupt`] naming `key` when the
/// interval is above [`MAX_INTERVAL`] or the latency average is not between 0 and
/// [`MAX_WRITE_LATENCY`].
fn checked(key: &impl std::fmt::Display, r: &NodeRecord) -> Result<(Duration, Duration)> {
    let interval = stored_ms(key, "interval_ms", r.interval_ms, MAX_INTERVAL)?;
    let ms = r.write_latency_ms;
    let max_ms = MAX_WRITE_LATENCY.as_secs_f64() * 1000.0;
    if !(0.0..=max_ms).contains(&ms) {
        return Err(Error::Corrupt {
            key: key.to_string(),
            reason: format!("write_latency_ms of {ms} is not between 0 and {max_ms} ms"),
        });
    }
    Ok((interval, Duration::from_secs_f64(ms / 1000.0)))
}

/// A record's stored durations clamped to their bounds, for views: a NaN or negative latency
/// counts as zero.
fn clamped(r: &NodeRecord) -> (Duration, Duration) {
    let interval = Duration::from_millis(r.interval_ms).min(MAX_INTERVAL);
    let secs = (r.write_latency_ms / 1000.0).clamp(0.0, MAX_WRITE_LATENCY.as_secs_f64());
    // `clamp` passes NaN through; `try_from` turns it into zero.
    let latency = Duration::try_from_secs_f64(secs).unwrap_or(Duration::ZERO);
    (interval, latency)
}

fn duplicate(node: &Name, other: &NodeRecord) -> Error {
    Error::DuplicateNode {
        node: node.to_string(),
        other_session: other.session.clone(),
        other_started_at: other.started_at,
    }
}

/// The claim a heartbeater holds: the newest record of this run, how the heartbeats ended
/// if they did, and the moving average of write latency in milliseconds.
type HeldNode = Held<NodeRecord, HeartbeatEnd, f64>;

impl ClaimBody for NodeRecord {
    fn session(&self) -> &str {
        &self.session
    }

    fn is_open(&self) -> bool {
        self.state == Presence::Alive
    }
}

/// Why a heartbeater stopped on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeartbeatEnd {
    /// Another process took over this node id's record; see [`Error::DuplicateNode`].
    Duplicate {
        /// The other process's session.
        other_session: String,
        /// When it joined.
        other_started_at: DateTime<Utc>,
    },
    /// The prefix's protocol record changed (another strategy or format) or became
    /// unreadable: no heartbeat is written on a prefix this node no longer coordinates on;
    /// see [`Error::ProtocolChanged`], whose fields these are. Restart the node.
    ProtocolChanged {
        /// The protocol record's key.
        key: String,
        /// The strategy this node coordinated with.
        known: crate::Strategy,
        /// What the record says now.
        now: String,
    },
}

impl HeartbeatEnd {
    /// The error this end is, for a caller that reports ends as errors.
    pub fn into_error(self, node: &Name) -> Error {
        match self {
            HeartbeatEnd::Duplicate {
                other_session,
                other_started_at,
            } => Error::DuplicateNode {
                node: node.to_string(),
                other_session,
                other_started_at,
            },
            HeartbeatEnd::ProtocolChanged { key, known, now } => {
                Error::ProtocolChanged { key, known, now }
            }
        }
    }
}

/// A joined node's heartbeat. Heartbeats in the background every interval; stop it with
/// [`Heartbeater::leave`]. Dropping it stops the heartbeats without marking the node left
/// (views then see it go suspect, then offline).
#[derive(Debug)]
pub struct Heartbeater {
    node: Name,
    nodes: Nodes,
    held: HeldNode,
}

impl Heartbeater {
    /// The node id.
    pub fn node(&self) -> &Name {
        &self.node
    }

    /// The moving average of heartbeat write latency so far.
    pub fn write_latency(&self) -> Duration {
        Duration::try_from_secs_f64(self.held.state().extra / 1000.0).unwrap_or(Duration::ZERO)
    }

    /// The last heartbeat stored.
    pub fn last(&self) -> Snapshot<NodeRecord> {
        self.held.state().snapshot.clone()
    }

    /// Waits until the heartbeater stops on its own (another process took the node id, or the
    /// prefix's protocol record changed) and says why. Never returns while heartbeats go on.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn ended(&self) -> HeartbeatEnd {
        loop {
            if let Some(e) = self.held.lost().await {
                return e;
            }
        }
    }

    /// Stops heartbeating and marks the node left (one conditional write, on top of a heartbeat
    /// of ours that landed late). A record another process wrote in between is
    /// [`Error::DuplicateNode`] and is left as it is; a record deleted in between (`node
    /// forget`) is left deleted.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a dropped call may or may not have written, as when an answer is lost;
    /// the stored object is whole either way (each write is one conditional PUT of a whole
    /// object). Read again to learn which.
    pub async fn leave(mut self) -> Result<()> {
        self.held.stop().await;
        let m = self.nodes.manifest(&self.node);
        let clock = self.nodes.collection.manifests().clock();
        let released = held::release(&self.held.shared(), &m, |ours| NodeRecord {
            state: Presence::Left,
            heartbeat_at: clock.now(),
            ..ours.clone()
        })
        .await?;
        match released {
            Released::Written(_) => {
                info!(node = %self.node, "left");
                Ok(())
            }
            Released::Beaten {
                ours,
                latest: Some(other),
            } if other.body.session != ours.body.session => Err(duplicate(&self.node, &other.body)),
            // Another process's record already (lost before), or ours closed, or deleted.
            Released::Lost(_) | Released::Already | Released::Beaten { .. } => Ok(()),
        }
    }
}

/// How a node heartbeats: one conditional write per interval on this run's last version,
/// on a fixed schedule whatever the writes did; a write in flight is finished before
/// [`Heartbeater::leave`] writes on top of it. Never lost by time, only to another
/// process's write ([`HeartbeatEnd::Duplicate`]).
struct Beats {
    node: Name,
    interval: Duration,
    weight: f64,
    clock: Arc<dyn Clock>,
}

impl Keep<NodeRecord> for Beats {
    type Loss = HeartbeatEnd;
    type Extra = f64;

    fn cut_short(&self) -> bool {
        false
    }

    fn next_body(&mut self, state: &HeldState<NodeRecord, HeartbeatEnd, f64>) -> NodeRecord {
        let current = &state.snapshot;
        NodeRecord {
            heartbeat_at: self.clock.now(),
            // Saturating, not checked: `beats` is a display counter, not an identity or an
            // order (the manifest version is). At one beat a second it cannot reach the end
            // in 500 billion years, so only a planted value gets there, and heartbeats must
            // not stop over a statistic.
            beats: current.body.beats.saturating_add(1),
            interval_ms: millis(self.interval),
            write_latency_ms: state.extra,
            ..current.body.clone()
        }
    }

    fn settled(&mut self, state: &mut HeldState<NodeRecord, HeartbeatEnd, f64>, took: Duration) {
        // A failed or slow write is exactly what the timeout must adapt to: count it too.
        let took = took.as_secs_f64() * 1000.0;
        state.extra = (1.0 - self.weight) * state.extra + self.weight * took;
    }

    fn renewed(&mut self, s: &Snapshot<NodeRecord>, took: Duration) {
        crate::telemetry::heartbeat("ok");
        let latency_ms = took.as_secs_f64() * 1000.0;
        debug!(node = %self.node, beats = s.body.beats, latency_ms, "heartbeat");
    }

    fn failed(&mut self, e: &Error) {
        crate::telemetry::heartbeat("failed");
        warn!(node = %self.node, error = %e, "heartbeat not written; retrying next interval");
    }

    fn hold_until(&self, _sent: Instant) -> Option<Instant> {
        None
    }

    fn next_due(&mut self, _: Renewal, due: Instant, woke: Instant) -> Instant {
        crate::clock::after(due, self.interval).max(woke)
    }

    fn foreign(
        &self,
        ours: &Snapshot<NodeRecord>,
        latest: Option<Snapshot<NodeRecord>>,
    ) -> HeartbeatEnd {
        let (other_session, other_started_at) = latest.map_or_else(
            || ("(record deleted)".to_string(), ours.body.started_at),
            |o| (o.body.session, o.body.started_at),
        );
        warn!(node = %self.node, other = %other_session, "another process heartbeats under this node id; stopping");
        HeartbeatEnd::Duplicate {
            other_session,
            other_started_at,
        }
    }

    fn expired(&self, _error: String) -> Option<HeartbeatEnd> {
        None
    }

    fn fatal(&self, e: &Error) -> Option<HeartbeatEnd> {
        match e {
            Error::ProtocolChanged { key, known, now } => {
                warn!(node = %self.node, error = %e, "stopping heartbeats: the protocol record changed");
                Some(HeartbeatEnd::ProtocolChanged {
                    key: key.clone(),
                    known: *known,
                    now: now.clone(),
                })
            }
            _ => None,
        }
    }
}

/// Where a view reads "now": the store's clock, through a clock check; nowhere when the check
/// put this node beyond the bound or could not be made (read-only credentials).
enum Timeline {
    Store(crate::store::time::Witness, Arc<dyn Clock>),
    Beyond,
}

impl Timeline {
    fn now(&self) -> Option<DateTime<Utc>> {
        match self {
            Timeline::Store(w, clock) => Some(w.store_now(clock.monotonic())),
            Timeline::Beyond => None,
        }
    }
}

/// The timeline of one view, found at the first record that needs it: a record that left is
/// offline whatever the time, so a view of none but those makes no clock check.
#[derive(Default)]
struct LazyTimeline(Option<Timeline>);

impl LazyTimeline {
    async fn now_for(
        &mut self,
        ms: &Nodes,
        s: &Snapshot<NodeRecord>,
    ) -> Result<Option<DateTime<Utc>>> {
        if s.body.state == Presence::Left {
            return Ok(None);
        }
        if self.0.is_none() {
            self.0 = Some(ms.timeline().await?);
        }
        Ok(self.0.as_ref().and_then(Timeline::now))
    }
}

/// How long ago the verdict on a node that is not online (and did not leave) became due:
/// its heartbeat's age beyond the timeout (suspect) or twice it (offline). `None` for a
/// node online or gone for good.
fn overdue(s: &NodeStatus) -> Option<Duration> {
    let threshold = match s.health {
        Health::Online | Health::Unknown => return None,
        _ if s.left => return None,
        Health::Suspect => s.timeout_ms,
        Health::Offline => s.timeout_ms.saturating_mul(2),
    };
    Some(Duration::from_millis(s.age_ms.saturating_sub(threshold)))
}

/// Members read through a [`ManifestCache`]. Cancel-safe.
#[derive(Debug)]
pub struct NodeView {
    nodes: Nodes,
    cached: CachedCollection<NodeRecord>,
}

impl NodeView {
    /// Every node, classified now; `stale` when some of it could not be revalidated. A node
    /// about to be called suspect or offline on a record read before that verdict became
    /// due is read again first (one conditional GET), so the cache never makes a live node
    /// look dead (see the module docs).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`NodeView::entries`].
    pub async fn list(&self) -> Result<View<Vec<NodeStatus>>> {
        let all = self.entries().await?;
        let stale = all.stale;
        let items = all
            .items
            .into_iter()
            .map(|e| e.map_err(Error::from))
            .collect::<Result<_>>()?;
        Ok(View { items, stale })
    }

    /// [`NodeView::list`], with a record that cannot be read as an
    /// [`Unreadable`](crate::manifest::listing::Unreadable) entry in its place. A refresh is
    /// one listing of the nodes (one LIST per 1,000 nodes); a heartbeat costs no GET, a
    /// record is read only when new, when it stops changing, and before a verdict other than
    /// online (module docs, "Views at fleet scale").
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it reads, and may run a clock check, whose only write is the scratch
    /// object `_cairn/clock.json`, which holds no state; the cache keeps what it held.
    pub async fn entries(&self) -> Result<View<Vec<Entry<NodeStatus>>>> {
        let ms = &self.nodes;
        let mut time = LazyTimeline::default();
        // A live node's heartbeat is a change of its record's object: its store time is
        // taken from the listing, and the record is read only when new, when it stops
        // changing, and before a verdict other than online (module docs, "Views").
        let alive = |s: &Snapshot<NodeRecord>| s.body.state == Presence::Alive;
        let all = self.cached.entries_with(&alive).await?;
        let mut stale = all.stale;
        let mut items = Vec::with_capacity(all.items.len());
        for e in all.items {
            let (name, s) = match e {
                Ok(v) => v,
                Err(u) => {
                    items.push(Err(u));
                    continue;
                }
            };
            let now = time.now_for(ms, &s).await?;
            let status = ms.classify(name.as_str(), &s, now);
            let Some(due_for) = overdue(&status) else {
                items.push(Ok(status));
                continue;
            };
            // A record whose body is older than its object (its heartbeats taken from the
            // listing) is read before the verdict: its timeout is the body's.
            let due_for = if self.cached.is_behind(&name) {
                Duration::ZERO
            } else {
                due_for
            };
            let again = match self.cached.get_within(&name, due_for).await {
                Ok(again) => again,
                Err(e) => {
                    items.push(Err(self.cached.collection().unreadable(&name, e)));
                    continue;
                }
            };
            stale |= again.stale;
            if let Some(s) = again.items {
                let now = time.now_for(ms, &s).await?;
                items.push(Ok(ms.classify(name.as_str(), &s, now)));
            }
        }
        Ok(View { items, stale })
    }

    /// The cache underneath (for its statistics).
    pub fn cache(&self) -> &ManifestCache<NodeRecord> {
        self.cached.cache()
    }
}
