//! Turns: a periodic job (expiry, compaction) that runs on exactly one node per window, with
//! no configured master.
//!
//! A turn is a manifest of kind `turn` at `turns/<name>/`. Its body records the current turn
//! number, the node holding it, when it started and, once done, when it finished and how
//! (success or failure, duration, a small JSON result). Turn `n + 1` may be claimed once the
//! window has passed since turn `n` started, give or take the jitter: a claim is a
//! compare-and-swap on the version that holds turn `n`, so of all the nodes that try, exactly
//! one gets each turn number. The others learn who won and sleep until the next due time.
//!
//! ## Timing
//!
//! - Turn `n + 1` is *due* at `started_at(n) + window`. A node may claim it from
//!   `due − jitter`; a node in the [long-running loop](Turns::run_loop) wakes at
//!   `due + offset`, with `offset` drawn uniformly from `[−jitter, +jitter]` afresh for each
//!   turn, so nodes do not wake together and turns start `window ± jitter` apart. The first
//!   node to wake wins, so with many nodes turns start nearer `window − jitter`.
//! - The tolerance also serves cron: a one-shot invocation every `window` (the same period as
//!   the window) finds the turn due even when the previous one started a few seconds later in
//!   its minute.
//! - A holder that dies mid-turn does not block anything: the next turn is due from when the
//!   dead one *started*. The window is therefore also the longest a run may take before the
//!   next one may start beside it.
//! - Times are wall-clock times written by the claimer and compared with this node's wall
//!   clock, and no node claims by them unless its clock is measured within the bound
//!   ([`crate::manifest::ManifestOptions::max_clock_offset`], 2 s) of the store's
//!   (`src/store/time.rs`): a node whose clock is further off gets
//!   [`Error::ClockOffset`] (the long-running loop warns and retries), so no turn starts
//!   more than the bound early. Exactly one claim per turn number holds regardless of
//!   clocks.
//!
//! ## Cost
//!
//! Claiming a due turn is one conditional write (after a revalidating read in the loop: 1 or
//! 2 requests), plus a clock check (2 requests) when this process's last one is older than
//! 15 min; recording the outcome one more. A node that is not due makes no request until
//! its wake time, and then one revalidation (a 304 when nothing changed).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock;
use crate::error::{Error, Result};
use crate::log::{Audit, AuditEvent};
use crate::manifest::held::{self, ClaimBody, Closed};
use crate::manifest::listing::Entry;
use crate::manifest::{Change, Collection, Manifest, Manifests, Revalidated, Snapshot, Write};
use crate::retry::{jittered, Backoff};
use crate::store::keys::{self, Family};
use crate::store::Name;
use futures::StreamExt;

/// The manifest kind of turns.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const KIND: &str = "turn";

/// Largest JSON result, serialized, that a turn records (bigger ones are replaced by a note).
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const MAX_RESULT_BYTES: usize = 4096;

/// The longest window a turn may have (366 days), and the largest stored `window_ms` a
/// reader accepts; a larger stored value is corrupt data, never a reason to overflow.
#[cfg_attr(feature = "test-util", visibility::make(pub))]
pub(crate) const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);

/// How often a turn runs. The window and jitter belong to the turn: they are stored when the
/// turn is first created and change only by [`Turns::reconfigure`]. A client whose options
/// disagree with the stored ones is told so ([`crate::Error::TurnMismatch`]) and claims
/// nothing, unless it asked to adopt them ([`TurnOptions::adopt_stored`]).
#[derive(Debug, Clone)]
pub struct TurnOptions {
    /// Time from one turn's start to the next turn's due time. Default 300 s: the expiry
    /// interval of the systems this was built for; at this window a fleet pays for about
    /// 8,900 claims a month whatever its size.
    pub window: Duration,
    /// How far a node's wake time is moved, each way, from the due time. Default 30 s (10 %
    /// of the window): enough to spread wake-ups so that one node usually claims alone,
    /// and to let cron invocations with the window's period find the turn due.
    pub jitter: Duration,
    /// Follow the window and jitter stored with the turn when they differ from these
    /// (which are then used only to create the turn). Default `false`: a mismatch is an
    /// error, so that no node runs a turn on a schedule of its own.
    pub adopt_stored: bool,
}

impl TurnOptions {
    /// Checks the options before any request: a window above 0 and at most
    /// 366 days, and a jitter of at most half the window (so that consecutive turns
    /// start at least half a window apart).
    pub fn validate(&self) -> Result<()> {
        check_timing(self.window, self.jitter).map_err(Error::Config)
    }
}

/// The rule shared by options and stored records: `0 < window ≤ MAX_WINDOW`,
/// `jitter ≤ window / 2`.
fn check_timing(window: Duration, jitter: Duration) -> std::result::Result<(), String> {
    if window.is_zero() || window > MAX_WINDOW {
        return Err(format!(
            "turn window {window:?} is out of range: it must be above 0 and at most 366 days"
        ));
    }
    let half = clock::divide(window, 2);
    if jitter > half {
        return Err(format!(
            "turn jitter {jitter:?} is more than half the window {window:?}: turns would \
             overlap; use a jitter of at most {:?}",
            half
        ));
    }
    Ok(())
}

impl Default for TurnOptions {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(300),
            jitter: Duration::from_secs(30),
            adopt_stored: false,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The job succeeded.
    Success,
    /// The job failed.
    Failure,
}

impl std::fmt::Display for Status {
    /// As stored: `success` or `failure`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Success => "success",
            Status::Failure => "failure",
        })
    }
}

/// The recorded outcome of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnOutcome {
    /// Success or failure.
    pub status: Status,
    /// How long the job ran, in milliseconds.
    pub duration_ms: u64,
    /// A small JSON result (for example how many items were expired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The turn before the current one, as it was when the current one was claimed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviousTurn {
    /// Its number.
    pub turn: u64,
    /// Who held it.
    pub holder: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished; `None` if its holder never recorded an outcome (it died, or ran
    /// past the window).
    pub finished_at: Option<DateTime<Utc>>,
    /// Its outcome.
    pub outcome: Option<TurnOutcome>,
}

/// The stored body of a turn manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnRecord {
    /// The current turn number: above the previous turn's (its + 1, or on a prefix of format
    /// 3 drawn from time when that is higher, so that a claim that vanished is not numbered
    /// again); a turn created afresh (also after its objects vanished) starts at a floor
    /// drawn from time (`src/clock.rs` (`floor`)), so turn numbers never go backwards. They
    /// are not consecutive: `previous` names the turn before.
    pub turn: u64,
    /// The node that claimed it.
    pub holder: String,
    /// Unique to this claim, so a holder recognizes its own claim.
    pub session: String,
    /// The turn's window, in milliseconds (set when the turn was created, changed only by
    /// [`Turns::reconfigure`]).
    pub window_ms: u64,
    /// The turn's jitter, in milliseconds.
    pub jitter_ms: u64,
    /// When the turn started (claimer's wall clock).
    pub started_at: DateTime<Utc>,
    /// When it finished, once it has.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its outcome, once recorded.
    pub outcome: Option<TurnOutcome>,
    /// The turn before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousTurn>,
}

/// A stored turn's timing, range-checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The turn's window.
    pub window: Duration,
    /// The turn's jitter.
    pub jitter: Duration,
    /// When the next turn is due (`started_at + window`).
    pub next_due_at: DateTime<Utc>,
    /// The earliest a node may claim it (`next_due_at − jitter`).
    pub claimable_at: DateTime<Utc>,
}

impl TurnRecord {
    /// The stored window, jitter and due times, checked: a window or jitter out of range,
    /// or a due time past the end of time, is [`Error::Corrupt`] naming `key`. Never
    /// panics, whatever was stored.
    pub fn timing(&self, key: &impl std::fmt::Display) -> Result<Timing> {
        let window = clock::stored_ms(key, "window_ms", self.window_ms, MAX_WINDOW)?;
        let jitter = clock::stored_ms(key, "jitter_ms", self.jitter_ms, MAX_WINDOW)?;
        let corrupt = |reason: String| Error::Corrupt {
            key: key.to_string(),
            reason,
        };
        check_timing(window, jitter).map_err(corrupt)?;
        let next_due_at = clock::add(self.started_at, window).ok_or_else(|| {
            corrupt(format!(
                "started_at {} + window is past the end of time",
                self.started_at
            ))
        })?;
        let claimable_at = clock::sub(next_due_at, jitter)
            .ok_or_else(|| corrupt("due time − jitter is before the start of time".into()))?;
        Ok(Timing {
            window,
            jitter,
            next_due_at,
            claimable_at,
        })
    }
}

/// A turn as read, for views. Serialized with the turn's number as `number` (the stored
/// record calls it `turn`, and there `turn` would read as the turn's name), in this order:
/// `name`, `number`, `version`, `state`, `holder`, `session`, `window_ms`, `jitter_ms`,
/// `started_at`, `finished_at`, `outcome`, `previous` (`number`, `holder`, `started_at`,
/// `finished_at`, `outcome`; absent for a turn's first) and `next_due_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnInfo {
    /// The turn's name.
    pub name: String,
    /// The manifest version.
    pub version: u64,
    /// `running` (no outcome yet) or `finished`.
    pub state: &'static str,
    /// When the next turn is due.
    pub next_due_at: DateTime<Utc>,
    /// The record.
    pub record: TurnRecord,
}

impl Serialize for TurnInfo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Previous<'a> {
            number: u64,
            holder: &'a str,
            started_at: &'a DateTime<Utc>,
            finished_at: &'a Option<DateTime<Utc>>,
            outcome: &'a Option<TurnOutcome>,
        }
        #[derive(Serialize)]
        struct View<'a> {
            name: &'a str,
            number: u64,
            version: u64,
            state: &'a str,
            holder: &'a str,
            session: &'a str,
            window_ms: u64,
            jitter_ms: u64,
            started_at: &'a DateTime<Utc>,
            finished_at: &'a Option<DateTime<Utc>>,
            outcome: &'a Option<TurnOutcome>,
            #[serde(skip_serializing_if = "Option::is_none")]
            previous: Option<Previous<'a>>,
            next_due_at: &'a DateTime<Utc>,
        }
        let r = &self.record;
        View {
            name: &self.name,
            number: r.turn,
            version: self.version,
            state: self.state,
            holder: &r.holder,
            session: &r.session,
            window_ms: r.window_ms,
            jitter_ms: r.jitter_ms,
            started_at: &r.started_at,
            finished_at: &r.finished_at,
            outcome: &r.outcome,
            previous: r.previous.as_ref().map(|p| Previous {
                number: p.turn,
                holder: &p.holder,
                started_at: &p.started_at,
                finished_at: &p.finished_at,
                outcome: &p.outcome,
            }),
            next_due_at: &self.next_due_at,
        }
        .serialize(s)
    }
}

impl TurnInfo {
    fn of(name: &Name, s: &Snapshot<TurnRecord>) -> Result<Self> {
        let timing = s.body.timing(&keys::manifest(Family::Turn, name))?;
        Ok(Self {
            name: name.to_string(),
            version: s.version,
            state: if s.body.outcome.is_some() {
                "finished"
            } else {
                "running"
            },
            next_due_at: timing.next_due_at,
            record: s.body.clone(),
        })
    }
}

/// What this client has done with one turn name since it was made (counts saturate).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TurnCounters {
    /// Turns this client won and ran.
    pub run: u64,
    /// Times it looked and the turn was not due (or had already been taken).
    pub skipped: u64,
    /// Claims it wrote that another node's claim beat.
    pub lost: u64,
    /// Runs that failed.
    pub failed: u64,
    /// How long the last run took, in milliseconds.
    pub last_duration_ms: Option<u64>,
}

/// The outcome of [`Turns::try_claim`].
#[derive(Debug)]
#[must_use]
pub enum Claim {
    /// This node holds the turn: run the job, then [`ClaimedTurn::finish`].
    Won(Box<ClaimedTurn>),
    /// The turn is not due yet; the earliest this node may claim it is `claimable_at`.
    NotDue {
        /// The turn as stored.
        current: TurnInfo,
        /// The earliest claim time (`next_due_at − jitter`).
        claimable_at: DateTime<Utc>,
    },
    /// Another node claimed it first.
    Lost {
        /// The winner's turn.
        current: TurnInfo,
    },
}

/// A turn this node won. Record how it went with [`ClaimedTurn::finish`]; a claim dropped
/// without finishing stays "running" until the next turn is claimed, as if the node died.
#[derive(Debug)]
pub struct ClaimedTurn {
    name: Name,
    manifest: Manifest<TurnRecord>,
    snapshot: Snapshot<TurnRecord>,
    started: tokio::time::Instant,
    turns: Turns,
}

/// What [`ClaimedTurn::finish`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    /// The outcome is stored with the turn.
    Recorded(TurnInfo),
    /// A later turn was claimed before this one finished (it ran past the window, or its
    /// node stalled); the outcome could not be stored with the turn. It went to the audit
    /// log, if one is configured.
    Superseded(Option<TurnInfo>),
}

/// The job's own verdict: `Ok(result)` or `Err(reason)`.
pub type JobResult = std::result::Result<Option<serde_json::Value>, String>;

impl ClaimedTurn {
    /// The turn number.
    pub fn number(&self) -> u64 {
        self.snapshot.body.turn
    }

    /// The number of the turn this claim followed (`None` for the first turn of a turn created
    /// afresh). Numbers are drawn from time, so this is how a turn names the one before it.
    pub fn previous(&self) -> Option<u64> {
        self.snapshot.body.previous.as_ref().map(|p| p.turn)
    }

    /// The turn's name.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// When the turn started (wall clock).
    pub fn started_at(&self) -> DateTime<Utc> {
        self.snapshot.body.started_at
    }

    /// Records how the job went. One conditional write.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a dropped call may or may not have written, as when an answer is lost;
    /// the stored object is whole either way (each write is one conditional PUT of a whole
    /// object). Read again to learn which.
    pub async fn finish(self, result: JobResult) -> Result<Finish> {
        Ok(self.finish_inner(result).await?.0)
    }

    /// [`ClaimedTurn::finish`], also returning the stored version when ours is current.
    async fn finish_inner(
        self,
        result: JobResult,
    ) -> Result<(Finish, Option<Snapshot<TurnRecord>>)> {
        let clock = self.turns.collection.manifests().clock();
        let duration = clock.monotonic().saturating_duration_since(self.started);
        let duration_ms = clock::millis(duration);
        let outcome = match result {
            Ok(r) => TurnOutcome {
                status: Status::Success,
                duration_ms,
                result: r.map(bounded),
                error: None,
            },
            Err(e) => TurnOutcome {
                status: Status::Failure,
                duration_ms,
                result: None,
                error: Some(e.chars().take(MAX_RESULT_BYTES).collect()),
            },
        };
        crate::telemetry::turn(
            self.name.as_str(),
            match outcome.status {
                Status::Failure => "failed",
                _ => "run",
            },
        );
        self.turns.count(&self.name, |c| {
            c.run = c.run.saturating_add(1);
            c.failed = c
                .failed
                .saturating_add(u64::from(outcome.status == Status::Failure));
            c.last_duration_ms = Some(duration_ms);
        });
        let turn = self.number();
        let finished_at = clock.now();
        // Our claim may have been rewritten since (a reconfiguration keeps the turn, its
        // holder and its session): the outcome goes on the newest version of our own turn.
        let closed = held::close(&self.manifest, self.snapshot.clone(), |ours| TurnRecord {
            finished_at: Some(finished_at),
            outcome: Some(outcome.clone()),
            ..ours.clone()
        })
        .await?;
        let (finished, latest) = match closed {
            Closed::Written(s) => {
                info!(turn = %self.name, number = turn, status = ?outcome.status, duration_ms, "turn finished");
                (Finish::Recorded(TurnInfo::of(&self.name, &s)?), Some(s))
            }
            Closed::Beaten { latest, .. } => {
                warn!(turn = %self.name, number = turn, "a later turn started before this one finished; outcome not stored with the turn");
                let view = latest
                    .as_ref()
                    .map(|s| TurnInfo::of(&self.name, s))
                    .transpose()?;
                (Finish::Superseded(view), latest)
            }
        };
        if let Some(a) = &self.turns.audit {
            a.record(AuditEvent::Finish {
                turn: self.name.to_string(),
                number: turn,
                holder: self.snapshot.body.holder.clone(),
                outcome: serde_json::to_value(&outcome).unwrap_or(serde_json::Value::Null),
                stored: matches!(finished, Finish::Recorded(_)),
            });
        }
        Ok((finished, latest))
    }
}

impl ClaimBody for TurnRecord {
    fn session(&self) -> &str {
        &self.session
    }

    /// A turn is open until its outcome is recorded.
    fn is_open(&self) -> bool {
        self.outcome.is_none()
    }
}

/// Replaces a result too large to store with a note saying so.
fn bounded(v: serde_json::Value) -> serde_json::Value {
    let len = serde_json::to_vec(&v).map_or(usize::MAX, |b| b.len());
    if len <= MAX_RESULT_BYTES {
        v
    } else {
        serde_json::json!({ "truncated": format!("result of {len} bytes exceeds {MAX_RESULT_BYTES}") })
    }
}

/// The turns client. Cheap to clone; clones share counters.
#[derive(Debug, Clone)]
pub struct Turns {
    collection: Collection<TurnRecord>,
    options: TurnOptions,
    counters: Arc<Mutex<HashMap<String, TurnCounters>>>,
    audit: Option<Audit>,
}

impl Turns {
    /// A turns client with these options.
    pub fn new(manifests: Arc<Manifests>, options: TurnOptions) -> Self {
        Self {
            collection: Collection::new(manifests, Family::Turn, KIND),
            options,
            counters: Arc::default(),
            audit: None,
        }
    }

    /// Records turn starts and outcomes in an event log topic, in the background as
    /// [`crate::lock::Locks::with_audit`] does: [`Audit::flush`] a clone before the process
    /// ends.
    pub fn with_audit(mut self, audit: Audit) -> Self {
        self.audit = Some(audit);
        self
    }

    /// The options in force.
    pub fn options(&self) -> &TurnOptions {
        &self.options
    }

    fn count(&self, name: &Name, f: impl FnOnce(&mut TurnCounters)) {
        let mut all = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        f(all.entry(name.to_string()).or_default());
    }

    /// This client's counters for `name`.
    pub fn counters(&self, name: &Name) -> TurnCounters {
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name.as_str())
            .cloned()
            .unwrap_or_default()
    }

    /// The stored timing of `current`, after checking that this client agrees with it
    /// (or adopts it).
    fn timing(&self, name: &Name, current: &TurnRecord) -> Result<Timing> {
        let key = keys::manifest(Family::Turn, name);
        let t = current.timing(&key)?;
        let o = &self.options;
        if !o.adopt_stored && (t.window != o.window || t.jitter != o.jitter) {
            return Err(Error::TurnMismatch {
                turn: name.to_string(),
                stored_window: t.window,
                stored_jitter: t.jitter,
                asked_window: o.window,
                asked_jitter: o.jitter,
            });
        }
        Ok(t)
    }

    /// One-shot: claims the turn if it is due. Two requests when due (a read and the claim),
    /// one when not; the first turn ever is a single create.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a cancelled claim may have been written, and then counts as a turn
    /// whose holder died.
    pub async fn try_claim(&self, name: &Name) -> Result<Claim> {
        self.options.validate()?;
        let current = self.collection.open(name).load().await?;
        Ok(match self.claim_after(name, current).await? {
            Attempt::Won(t) => Claim::Won(t),
            Attempt::NotDue(s, claimable_at) => Claim::NotDue {
                current: TurnInfo::of(name, &s)?,
                claimable_at,
            },
            Attempt::Lost(s) => Claim::Lost {
                current: TurnInfo::of(name, &s)?,
            },
        })
    }

    /// Claims the turn after `current` if due (no read).
    async fn claim_after(
        &self,
        name: &Name,
        current: Option<Snapshot<TurnRecord>>,
    ) -> Result<Attempt> {
        if let Some(c) = &current {
            let claimable_at = self.timing(name, &c.body)?.claimable_at;
            if self.collection.manifests().clock().now() < claimable_at {
                crate::telemetry::turn(name.as_str(), "skipped");
                self.count(name, |c| c.skipped = c.skipped.saturating_add(1));
                return Ok(Attempt::NotDue(c.clone(), claimable_at));
            }
        }
        self.claim(name, current).await
    }

    /// Refuses a claim by time from a node whose wall clock is measured beyond the bound from
    /// the store's ([`crate::store::time`]): its `now` says a turn is due, and it writes the
    /// `started_at` every node's next due time counts from. Free while the last clock check
    /// serves; else a check, two requests.
    async fn check_clock(&self) -> Result<()> {
        let manifests = self.collection.manifests();
        let w = manifests.witness().await?;
        let time = manifests.store_time();
        if time.beyond(&w) {
            return Err(Error::ClockOffset {
                offset: w.offset_at(manifests.clock().monotonic(), manifests.clock().now()),
                bound: time.max_offset(),
                refused: "claiming a turn",
            });
        }
        Ok(())
    }

    /// Writes the claim of the turn after `current`, if this node's clock agrees with the
    /// store's: every claim writes the `started_at` that the next due time counts from, the
    /// first turn's too.
    async fn claim(&self, name: &Name, current: Option<Snapshot<TurnRecord>>) -> Result<Attempt> {
        self.check_clock().await?;
        let clock = self.collection.manifests().clock();
        let m = self.collection.open(name);
        // The turn keeps its own window and jitter; a new turn takes this client's.
        let (turn, window_ms, jitter_ms) = match current.as_ref() {
            // Above the last turn, and (format 3) drawn from time, so that a turn whose claim
            // vanished is not run again under its number (`Manifests::next_start`).
            Some(c) => (
                self.collection
                    .manifests()
                    .next_start(m.key(), "turn number", c.body.turn, 0)
                    .await?,
                c.body.window_ms,
                c.body.jitter_ms,
            ),
            // A turn manifest created afresh (also after its objects vanished) numbers its
            // first turn from the floor of now, above every turn of an earlier incarnation
            // (`clock::floor`).
            None => (
                self.collection.manifests().first_number(m.key()).await?,
                clock::millis(self.options.window),
                clock::millis(self.options.jitter),
            ),
        };
        let record = TurnRecord {
            turn,
            holder: self.collection.manifests().node().to_string(),
            session: self.collection.manifests().write_id().into_string(),
            window_ms,
            jitter_ms,
            started_at: clock.now(),
            finished_at: None,
            outcome: None,
            previous: current.as_ref().map(|c| PreviousTurn {
                turn: c.body.turn,
                holder: c.body.holder.clone(),
                started_at: c.body.started_at,
                finished_at: c.body.finished_at,
                outcome: c.body.outcome.clone(),
            }),
        };
        let started = clock.monotonic();
        match m.write(current.as_ref(), record).await? {
            Write::Written(s) => {
                if let Some(p) = s.body.previous.as_ref().filter(|p| p.outcome.is_none()) {
                    warn!(turn = %name, number = p.turn, holder = %p.holder, "previous turn never recorded an outcome");
                }
                info!(turn = %name, number = s.body.turn, "claimed turn");
                if let Some(a) = &self.audit {
                    a.record(AuditEvent::Start {
                        turn: name.to_string(),
                        number: s.body.turn,
                        holder: s.body.holder.clone(),
                    });
                }
                Ok(Attempt::Won(Box::new(ClaimedTurn {
                    name: name.clone(),
                    manifest: m,
                    snapshot: s,
                    started,
                    turns: self.clone(),
                })))
            }
            Write::Conflict(latest) => {
                crate::telemetry::turn(name.as_str(), "lost");
                self.count(name, |c| c.lost = c.lost.saturating_add(1));
                let latest = match latest {
                    Some(l) => l,
                    None => match m.load().await? {
                        Some(l) => l,
                        None => return Box::pin(self.claim(name, None)).await,
                    },
                };
                debug!(turn = %name, number = latest.body.turn, holder = %latest.body.holder, "lost the claim");
                Ok(Attempt::Lost(latest))
            }
        }
    }

    /// One-shot: claims the turn if due, runs `job` with the turn number, records its
    /// outcome, and says what happened: ran, not due, or lost to another node.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: dropped after the claim was written, the turn counts as one whose
    /// holder died (its number is used; the next window runs again); dropped while `job` runs,
    /// the job's future is dropped with it.
    pub async fn run_once<F, Fut>(&self, name: &Name, job: F) -> Result<RunOnce>
    where
        F: FnOnce(u64) -> Fut,
        Fut: Future<Output = JobResult>,
    {
        match self.try_claim(name).await? {
            Claim::Won(t) => {
                let t = *t;
                let number = t.number();
                let result = job(number).await;
                Ok(RunOnce::Ran {
                    number,
                    finished: t.finish(result).await?,
                })
            }
            Claim::NotDue {
                current,
                claimable_at,
            } => Ok(RunOnce::NotDue {
                current,
                claimable_at,
            }),
            Claim::Lost { current } => Ok(RunOnce::Lost { current }),
        }
    }

    /// The long-running mode: loops until `stop` is cancelled, sleeping until the next due time
    /// (plus this node's jitter) without polling, then revalidating the turn and claiming it if
    /// nobody else has. `job` runs for every turn this node wins, with the turn number. Store
    /// errors are logged and retried with backoff; the loop ends on its own only for an error
    /// that retrying cannot fix (invalid options, a window that disagrees with the turn's,
    /// corrupt or newer stored data, an exhausted turn number, a protocol record that changed
    /// under it), which it returns.
    ///
    /// # Cancel safety
    ///
    /// Dropping it at any await leaves at most what a dropped [`Turns::run_once`] leaves: a
    /// claim that may have been written, and a turn whose job was dropped stays unfinished,
    /// counted as one whose holder died. That blocks nothing: the next window runs again.
    pub async fn run_loop<F, Fut>(
        &self,
        name: &Name,
        mut job: F,
        stop: CancellationToken,
    ) -> Result<()>
    where
        F: FnMut(u64) -> Fut,
        Fut: Future<Output = JobResult>,
    {
        let opts = self.collection.manifests().options();
        self.options.validate()?;
        let mut backoff = Backoff::new(opts.backoff_initial, Duration::from_secs(30));
        let mut known: Option<Snapshot<TurnRecord>> = None;
        let mut loaded = false;
        while !stop.is_cancelled() {
            let step = self.loop_step(name, &mut known, &mut loaded, &mut job, &stop);
            match step.await {
                Ok(()) => backoff = Backoff::new(opts.backoff_initial, Duration::from_secs(30)),
                Err(
                    e @ (Error::Config(_)
                    | Error::NoSuchBucket { .. }
                    | Error::NoCredentials { .. }
                    | Error::TurnMismatch { .. }
                    | Error::Corrupt { .. }
                    | Error::UnsupportedFormat { .. }
                    | Error::ProtocolChanged { .. }
                    | Error::WrongKind { .. }
                    | Error::Exhausted { .. }),
                ) => return Err(e),
                Err(e) => {
                    let delay = self
                        .collection
                        .manifests()
                        .with_rng(|r| backoff.next_delay(r));
                    warn!(turn = %name, error = %e, ?delay, "turn loop: store error; retrying");
                    loaded = false;
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.cancelled() => {}
                    }
                }
            }
        }
        Ok(())
    }

    async fn loop_step<F, Fut>(
        &self,
        name: &Name,
        known: &mut Option<Snapshot<TurnRecord>>,
        loaded: &mut bool,
        job: &mut F,
        stop: &CancellationToken,
    ) -> Result<()>
    where
        F: FnMut(u64) -> Fut,
        Fut: Future<Output = JobResult>,
    {
        let m = self.collection.open(name);
        if !*loaded {
            *known = m.load().await?;
            *loaded = true;
        }
        if let Some(k) = known.as_ref() {
            // Sleep until this node's wake time for the next turn, with no request between.
            let t = self.timing(name, &k.body)?;
            let after = self
                .collection
                .manifests()
                .with_rng(|r| jittered(t.window, t.jitter, r));
            let wake = clock::add_saturating(k.body.started_at, after);
            let wait = clock::until(self.collection.manifests().clock().now(), wake);
            debug!(turn = %name, number = k.body.turn, ?wait, "sleeping until the next turn");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => return Ok(()),
            }
            // Has anyone claimed it meanwhile? A 304 when not.
            match m.revalidate(k).await? {
                Revalidated::Unchanged => {}
                Revalidated::Changed(s) => {
                    crate::telemetry::turn(name.as_str(), "skipped");
                    self.count(name, |c| c.skipped = c.skipped.saturating_add(1));
                    *known = Some(s);
                    return Ok(());
                }
                Revalidated::Missing => *known = None,
            }
        }
        match self.claim_after(name, known.take()).await? {
            Attempt::Won(t) => {
                let number = t.number();
                *known = Some(t.snapshot.clone());
                let result = tokio::select! {
                    r = job(number) => r,
                    _ = stop.cancelled() => return Ok(()),
                };
                let (_, latest) = t.finish_inner(result).await?;
                match latest {
                    Some(l) => *known = Some(l),
                    None => *loaded = false,
                }
            }
            // Woken a moment early (clock granularity): the next pass sleeps the rest.
            Attempt::NotDue(s, _) => *known = Some(s),
            Attempt::Lost(s) => *known = Some(s),
        }
        Ok(())
    }

    /// The turn `name`, or `None` if it never ran.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn get(&self, name: &Name) -> Result<Option<TurnInfo>> {
        let s = self.collection.load(name).await?;
        s.map(|s| TurnInfo::of(name, &s)).transpose()
    }

    /// Changes the window and jitter stored with turn `name` (an explicit reconfiguration:
    /// every node follows it from its next claim). The current turn keeps its number and
    /// holder. Returns the turn as stored now, or `None` if it never ran. Checked before
    /// any request.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: dropped between attempts it has written nothing more; dropped during a
    /// write, that write may or may not have landed, as when an answer is lost. Read again to
    /// learn which.
    pub async fn reconfigure(
        &self,
        name: &Name,
        window: Duration,
        jitter: Duration,
    ) -> Result<Option<TurnInfo>> {
        check_timing(window, jitter).map_err(Error::Config)?;
        let (window_ms, jitter_ms) = (clock::millis(window), clock::millis(jitter));
        let updated = self
            .collection
            .open(name)
            .update(|cur| match cur {
                Some(s) if s.body.window_ms != window_ms || s.body.jitter_ms != jitter_ms => {
                    Change::Write(TurnRecord {
                        window_ms,
                        jitter_ms,
                        ..s.body.clone()
                    })
                }
                _ => Change::Keep,
            })
            .await?;
        if updated.changed {
            info!(turn = %name, ?window, ?jitter, "turn reconfigured");
        }
        updated.snapshot.map(|s| TurnInfo::of(name, &s)).transpose()
    }

    /// Every turn, by name, failing on the first that cannot be read (see
    /// [`Turns::entries`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn list(&self) -> Result<Vec<TurnInfo>> {
        self.entries()
            .await?
            .into_iter()
            .map(|e| e.map_err(Error::from))
            .collect()
    }

    /// Every turn, by name; one that cannot be read (or whose stored timing is out of
    /// range) is an [`Unreadable`](crate::manifest::listing::Unreadable) entry in its place.
    /// One LIST per 1,000 turns and one GET per turn, several in flight.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads, so a dropped call changes nothing.
    pub async fn entries(&self) -> Result<Vec<Entry<TurnInfo>>> {
        let c = &self.collection;
        Ok(c.entries()
            .await?
            .map(|e| e.and_then(|(n, s)| TurnInfo::of(&n, &s).map_err(|e| c.unreadable(&n, e))))
            .collect()
            .await)
    }
}

/// [`Claim`] with the snapshots the loop keeps.
enum Attempt {
    Won(Box<ClaimedTurn>),
    NotDue(Snapshot<TurnRecord>, DateTime<Utc>),
    Lost(Snapshot<TurnRecord>),
}

/// The outcome of [`Turns::run_once`].
#[derive(Debug)]
#[must_use]
pub enum RunOnce {
    /// This node won turn `number` and ran the job.
    Ran {
        /// The turn number.
        number: u64,
        /// Whether the outcome was stored.
        finished: Finish,
    },
    /// Not due; see [`Claim::NotDue`].
    NotDue {
        /// The turn as stored.
        current: TurnInfo,
        /// The earliest claim time.
        claimable_at: DateTime<Utc>,
    },
    /// Another node won.
    Lost {
        /// The winner's turn.
        current: TurnInfo,
    },
}
