//! What happened, as the harness saw it: a totally ordered list of events with monotonic
//! timestamps, recorded by the fleet's own code around each library call, never by the code
//! under test. The checker ([`super::check`]) judges the invariants on it alone, so it can
//! also be fed hand-made histories.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// One event. `at_ms` is milliseconds since the run started (tokio's monotonic clock).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the history (0, 1, 2, …): the order events were recorded in.
    pub seq: u64,
    /// Milliseconds since the run started.
    pub at_ms: f64,
    /// The node (or `harness`, `operator`, `querier`).
    pub node: String,
    /// Which run of the node (1 for the first, +1 at each restart).
    pub inc: u32,
    /// What happened.
    #[serde(flatten)]
    pub what: What,
}

/// What happened. Outcomes of operations carry the time the operation began (`begun_ms`)
/// where the checker needs an interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum What {
    /// A node's handle was built and it starts working.
    Started {
        /// The manifest strategy in force.
        strategy: String,
        /// How far its wall clock is off, in milliseconds.
        skew_ms: i64,
    },
    /// A node's clock check found its wall clock beyond the bound from the store's: from
    /// now on it refuses the rules that read time (takeover by expiry, claiming a turn,
    /// aging other nodes) until its clock is corrected.
    ClockBeyond {
        /// The measured offset (store − node), in milliseconds.
        offset_ms: i64,
    },
    /// The lifecycle actor deleted every object of a lock, a turn or the protocol record.
    Vanished {
        /// `lock`, `turn` or `protocol`.
        what: String,
        /// When the deleting began (run time, ms): what follows a deletion is judged from
        /// here, since a node may act on it before it is recorded.
        started_ms: f64,
        /// Its name.
        name: String,
        /// Objects deleted.
        objects: usize,
        /// A delete or listing that failed.
        error: Option<String>,
    },
    /// A node could not start (the store refused, or faults); it tries again.
    StartFailed {
        /// The error.
        error: String,
    },
    /// A node was killed: its tasks aborted, no release, no goodbye; its requests from now
    /// on never reach the store.
    Killed,
    /// A node was paused (its requests and timers stop), to be resumed.
    Paused,
    /// A paused node resumed.
    Resumed,
    /// A node's first heartbeat is stored.
    Joined,
    /// A heartbeat of the node is stored (its heartbeater reported a newer record).
    Beat,
    /// A node stops heartbeating and marks itself left (views show it offline at once).
    Left,
    /// A membership view (the querier's) saw a node in this health.
    Health {
        /// The node seen.
        of: String,
        /// `online`, `suspect` or `offline`.
        health: String,
        /// Age of its last heartbeat by the viewer's clock.
        age_ms: u64,
        /// Its timeout.
        timeout_ms: u64,
        /// Whether the view was served stale (the viewer could not reach the store).
        #[serde(default)]
        stale: bool,
    },
    /// A node got data for a stream it had not seen and created the stream.
    StreamCreate {
        /// The stream.
        stream: String,
        /// `created`, `exists` or `conflict`.
        outcome: String,
        /// The manifest version returned.
        version: u64,
        /// Its `created_by`.
        created_by: String,
        /// Its `created_at` (RFC 3339).
        created_at: String,
        /// Its incarnation.
        incarnation: u64,
        /// When the create began.
        begun_ms: f64,
    },
    /// A stream create failed (the stream may or may not exist).
    StreamCreateFailed {
        /// The stream.
        stream: String,
        /// The error.
        error: String,
        /// Whether it was [`cairn::Error::Ambiguous`].
        ambiguous: bool,
    },
    /// The querier's follower reported a new stream.
    StreamFollowed {
        /// The stream.
        stream: String,
        /// Who created it, as the follower read it.
        created_by: String,
    },
    /// A node starts a `put_if_newer` (so that one cut short by a kill counts as an update
    /// of unknown outcome).
    RecordPutBegun {
        /// The record key.
        key: String,
        /// The update's version.
        version: u64,
    },
    /// A node starts a turn claim.
    ClaimBegun {
        /// The turn.
        turn: String,
    },
    /// The claim ended without a run: `not_due`, `lost` or `failed`.
    ClaimEnded {
        /// The turn.
        turn: String,
        /// `not_due`, `lost`, `failed`.
        outcome: String,
        /// The turn number stored, when known.
        current: Option<u64>,
        /// The error, when failed.
        error: Option<String>,
    },
    /// A node won turn `number` and runs the job.
    TurnRun {
        /// The turn.
        turn: String,
        /// The turn number.
        number: u64,
        /// The number of the turn this claim followed, as stored with it (`None` for the
        /// first turn of a turn created afresh).
        #[serde(default)]
        previous: Option<u64>,
        /// When the claim began.
        begun_ms: f64,
    },
    /// The job of turn `number` ended and its outcome was recorded (or superseded, or failed).
    TurnFinished {
        /// The turn.
        turn: String,
        /// The turn number.
        number: u64,
        /// `recorded`, `superseded` or `failed`.
        outcome: String,
    },
    /// A node asks for the lock.
    AcquireBegun {
        /// The lock.
        lock: String,
    },
    /// A node holds the lock with this fencing token.
    Acquired {
        /// The lock.
        lock: String,
        /// The fencing token.
        token: u64,
    },
    /// An acquire ended without the lock: `busy` or `failed`.
    AcquireEnded {
        /// The lock.
        lock: String,
        /// `busy`, `failed`.
        outcome: String,
        /// The error, when failed.
        error: Option<String>,
    },
    /// A write to the protected object with a fencing token; the object accepts tokens ≥ the
    /// highest it has accepted.
    Guarded {
        /// The lock whose token it is.
        lock: String,
        /// The token.
        token: u64,
        /// Whether the object accepted it.
        accepted: bool,
        /// The highest token accepted before this write.
        highest: u64,
    },
    /// The holder stops using the lease and releases it (the interval ends here).
    Releasing {
        /// The lock.
        lock: String,
        /// The token.
        token: u64,
    },
    /// What the release returned.
    Released {
        /// The lock.
        lock: String,
        /// The token.
        token: u64,
        /// The error, if the release failed.
        error: Option<String>,
    },
    /// The holder learned its lease is lost (or its deadline passed).
    LockLost {
        /// The lock.
        lock: String,
        /// The token.
        token: u64,
        /// Why.
        reason: String,
        /// When the holder's interval ended: its local deadline, or when it learned, whichever
        /// is earlier (the holder must not use the lease past its deadline).
        ended_ms: f64,
    },
    /// An operator broke the lock.
    Broken {
        /// The lock.
        lock: String,
        /// The lock's version after the break, if it changed.
        version: Option<u64>,
        /// The error, if the break failed.
        error: Option<String>,
    },
    /// A versioned record update was applied, or refused as stale.
    RecordPut {
        /// The record's key.
        key: String,
        /// The update's version.
        version: u64,
        /// `applied` or `stale`.
        outcome: String,
        /// The stored version when stale.
        stored_version: Option<u64>,
        /// When the put began.
        begun_ms: f64,
    },
    /// A record update failed (it may or may not have been applied).
    RecordPutFailed {
        /// The record's key.
        key: String,
        /// The update's version.
        version: u64,
        /// The error.
        error: String,
    },
    /// An event was appended to the log at `sequence`.
    LogAppended {
        /// The event's unique id.
        id: String,
        /// Its sequence number.
        sequence: u64,
    },
    /// An append failed (it may or may not have been written).
    LogAppendFailed {
        /// The event's id.
        id: String,
        /// The error.
        error: String,
    },
    /// A misconfigured node (another strategy, another turn window) was refused.
    Refused {
        /// What was misconfigured.
        config: String,
        /// The error it got.
        error: String,
    },
    /// A misconfigured node was accepted and would have coordinated.
    Accepted {
        /// What was misconfigured.
        config: String,
        /// What it managed to do.
        detail: String,
    },
    /// After the run, read without faults: the whole log, in order (sequence, event id).
    FinalLog {
        /// Every entry's sequence number and event id (empty id: not a fleet event).
        entries: Vec<(u64, String)>,
        /// The error, if the log could not be read.
        error: Option<String>,
    },
    /// After the run, read without faults: a record's stored version.
    FinalRecord {
        /// The key.
        key: String,
        /// The stored version (`None`: no record).
        version: Option<u64>,
    },
    /// After the run, read without faults: every stream and its creator.
    FinalStreams {
        /// (stream, created_by, version).
        streams: Vec<(String, String, u64)>,
    },
    /// A real `cairn` process node started (`cairn lock run` on the process lock).
    Spawned {
        /// Its process id.
        pid: u32,
    },
    /// A real `cairn` process node's process ended by itself (or when the run stopped it).
    Exited {
        /// Its exit code, if it exited.
        code: Option<i32>,
        /// The signal that ended it, if one did.
        signal: Option<i32>,
    },
    /// A line the command of a real `cairn` process wrote to the harness's work file while
    /// it held the process lock: `start`, `tick` or `end`, with its fencing token and when
    /// it wrote the line (its wall clock, mapped onto the run's milliseconds).
    Work {
        /// The lock.
        lock: String,
        /// The fencing token the command was given (`$CAIRN_FENCING_TOKEN`).
        token: u64,
        /// `start`, `tick` or `end`.
        step: String,
        /// When the command wrote the line, in milliseconds since the run started.
        wrote_ms: f64,
    },
    /// The run ended.
    End,
}

/// The recorder. Events are appended under one mutex, so their order is total.
#[derive(Debug)]
pub struct History {
    start: Instant,
    events: Mutex<Vec<Event>>,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    /// An empty history starting now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            events: Mutex::new(Vec::new()),
        }
    }

    /// When the run started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Milliseconds from the start to `t`.
    pub fn ms(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.start).as_secs_f64() * 1000.0
    }

    /// Milliseconds since the start.
    pub fn now_ms(&self) -> f64 {
        self.ms(Instant::now())
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }

    /// Records an event now.
    pub fn record(&self, node: &str, inc: u32, what: What) {
        self.record_with(node, inc, || ((), what));
    }

    /// Runs `f` and records what it returns, both under the history's lock: for the
    /// protected object, whose decision and record must be one step.
    pub fn record_with<R>(&self, node: &str, inc: u32, f: impl FnOnce() -> (R, What)) -> R {
        let mut ev = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let (r, what) = f();
        let seq = ev.len() as u64;
        let at_ms = self.now_ms();
        ev.push(Event {
            seq,
            at_ms,
            node: node.to_string(),
            inc,
            what,
        });
        r
    }

    /// Number of events so far.
    pub fn len(&self) -> usize {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events from index `from` on.
    pub fn since(&self, from: usize) -> Vec<Event> {
        let ev = self.events.lock().unwrap_or_else(|e| e.into_inner());
        ev.get(from..).map(<[Event]>::to_vec).unwrap_or_default()
    }

    /// Every event.
    pub fn events(&self) -> Vec<Event> {
        self.since(0)
    }
}

impl Event {
    /// Who did it: `node-3#2` (the node and its run), or `querier`, `operator`, ….
    pub fn who(&self) -> String {
        if self.inc > 1 || self.node.starts_with("node-") || self.node.starts_with("proc-") {
            format!("{}#{}", self.node, self.inc)
        } else {
            self.node.clone()
        }
    }

    /// What happened, in a few words.
    pub fn describe(&self) -> String {
        let opt = |e: &Option<String>| e.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
        match &self.what {
            What::Started { strategy, skew_ms } if *skew_ms != 0 => {
                format!("started ({strategy}, clock {skew_ms:+} ms)")
            }
            What::Started { strategy, .. } => format!("started ({strategy})"),
            What::ClockBeyond { offset_ms } => format!(
                "clock measured {:+} ms off the store's: beyond the bound, refuses time-based rules",
                -offset_ms
            ),
            What::Vanished {
                what,
                name,
                objects,
                error,
                ..
            } => format!(
                "deleted {what} {name} ({objects} objects, as a lifecycle rule would){}",
                opt(error)
            ),
            What::StartFailed { error } => format!("could not start: {error}"),
            What::Killed if self.node.starts_with("proc-") => "SIGKILLed (cairn process)".into(),
            What::Killed => "KILLED (no release, no goodbye)".into(),
            What::Paused => "PAUSED (SIGSTOP)".into(),
            What::Resumed => "resumed (SIGCONT)".into(),
            What::Joined => "joined (first heartbeat stored)".into(),
            What::Beat => "heartbeat stored".into(),
            What::Left => "leaving".into(),
            What::Health {
                of,
                health,
                age_ms,
                stale,
                ..
            } => format!(
                "sees {of} {health} (last heartbeat {age_ms} ms ago{})",
                if *stale { ", stale view" } else { "" }
            ),
            What::StreamCreate {
                stream,
                outcome,
                created_by,
                ..
            } => match outcome.as_str() {
                "created" => format!("created stream {stream}"),
                o => format!("stream {stream}: {o}, created by {created_by}"),
            },
            What::StreamCreateFailed { stream, error, .. } => {
                format!("create of stream {stream} failed: {error}")
            }
            What::StreamFollowed { stream, created_by } => {
                format!("follows new stream {stream} (by {created_by})")
            }
            What::RecordPutBegun { key, version } => {
                format!("puts record {key} at version {version}")
            }
            What::ClaimBegun { turn } => format!("claims turn {turn}"),
            What::ClaimEnded {
                turn,
                outcome,
                current,
                error,
            } => format!(
                "turn {turn}: {}{}{}",
                outcome.replace('_', " "),
                current
                    .map(|c| format!(" (current {c})"))
                    .unwrap_or_default(),
                opt(error)
            ),
            What::TurnRun { turn, number, .. } => format!("runs {turn} turn {number}"),
            What::TurnFinished {
                turn,
                number,
                outcome,
            } => format!("{turn} turn {number} done, outcome {outcome}"),
            What::AcquireBegun { lock } => format!("asks for lock {lock}"),
            What::Acquired { lock, token } => {
                format!("acquired lock {lock}, fencing token {token}")
            }
            What::AcquireEnded {
                lock,
                outcome,
                error,
            } => format!("lock {lock}: {outcome}{}", opt(error)),
            What::Guarded {
                token,
                accepted,
                highest,
                ..
            } => {
                if *accepted {
                    format!("fenced write with token {token} accepted")
                } else {
                    format!("fenced write with token {token} REFUSED (highest {highest})")
                }
            }
            What::Releasing { lock, token } => format!("hands lock {lock} over (token {token})"),
            What::Released { lock, error, .. } => match error {
                None => format!("released lock {lock}"),
                Some(e) => format!("release of lock {lock} failed: {e}"),
            },
            What::LockLost {
                lock,
                token,
                reason,
                ..
            } => format!("lost lock {lock} (token {token}): {reason}"),
            What::Broken {
                lock,
                version,
                error,
            } => match (version, error) {
                (_, Some(e)) => format!("break of lock {lock} failed: {e}"),
                (Some(v), None) => format!("broke lock {lock} (now version {v})"),
                (None, None) => format!("broke lock {lock}: it was never taken"),
            },
            What::RecordPut {
                key,
                version,
                outcome,
                stored_version,
                ..
            } => match stored_version {
                Some(s) => format!("{key} v{version}: {outcome} (stored v{s})"),
                None => format!("{key} v{version}: {outcome}"),
            },
            What::RecordPutFailed {
                key,
                version,
                error,
            } => format!("{key} v{version} failed: {error}"),
            What::LogAppended { id, sequence } => format!("logged {id} at #{sequence}"),
            What::LogAppendFailed { id, error } => format!("log append {id} failed: {error}"),
            What::Refused { config, error } => format!("refused ({config}): {error}"),
            What::Accepted { config, detail } => format!("NOT refused ({config}): {detail}"),
            What::FinalLog { entries, error } => {
                format!("final read: log of {} entries{}", entries.len(), opt(error))
            }
            What::FinalRecord { key, version } => format!("final read: {key} at {version:?}"),
            What::FinalStreams { streams } => format!("final read: {} streams", streams.len()),
            What::Spawned { pid } => format!("cairn process started (pid {pid})"),
            What::Exited { code, signal } => match (code, signal) {
                (Some(c), _) => format!("cairn process exited {c}"),
                (None, Some(s)) => format!("cairn process ended by signal {s}"),
                (None, None) => "cairn process ended".into(),
            },
            What::Work {
                lock,
                token,
                step,
                wrote_ms,
            } => format!("works under {lock} (token {token}): {step}, written at {wrote_ms:.0} ms"),
            What::End => "end of run".into(),
        }
    }
}
