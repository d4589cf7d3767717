//! Command-line arguments (clap derive; the doc comments are the help text).

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::duration;

/// Coordinate a fleet of nodes through an S3-compatible bucket.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about, after_help = crate::cli::exit::HELP)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Store URL: s3://bucket/prefix, file:///absolute/path or memory://.
    /// Default: file://$PWD/.cairn (a local directory, no setup).
    #[arg(long, env = "CAIRN_STORE", global = true)]
    pub store: Option<String>,
    /// This node's id (1-128 of A-Z a-z 0-9 . _ -). Default: host name and process id.
    #[arg(long, env = "CAIRN_NODE", global = true)]
    pub node: Option<String>,
    /// Manifest strategy: probe the store (auto), or skip the probe and use one.
    #[arg(long, env = "CAIRN_STRATEGY", global = true, value_enum, default_value_t = StrategyArg::Auto)]
    pub strategy: StrategyArg,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Record lock transitions (and turn outcomes) in this event log topic.
    #[arg(long, env = "CAIRN_AUDIT_TOPIC", global = true)]
    pub audit_topic: Option<String>,
}

/// `--strategy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    /// Probe the store and choose.
    Auto,
    /// One object replaced with If-Match.
    EtagCas,
    /// One immutable object per version.
    VersionChain,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch a fleet of simulated log ingestors coordinate through the store with every
    /// feature at once (one node is killed and restarted), then see each invariant checked.
    /// --torture adds faults, kills, lock breaks, misconfigured nodes and skewed clocks.
    Fleet(FleetArgs),
    /// Probe the store: which conditional operations it honours, the manifest strategy
    /// cairn will use, and the round-trip latency.
    Doctor,
    /// Locks (leases) with fencing tokens.
    Lock {
        /// What to do with locks.
        #[command(subcommand)]
        command: LockCommand,
    },
    /// Streams any node can create; every racing creator ends with the same manifest.
    Stream {
        /// What to do with streams.
        #[command(subcommand)]
        command: StreamCommand,
    },
    /// Versioned records: a value only ever moves to a higher version.
    Record {
        /// What to do with records.
        #[command(subcommand)]
        command: RecordCommand,
    },
    /// Turns: a periodic job that runs on exactly one node per window.
    Turn {
        /// What to do with turns.
        #[command(subcommand)]
        command: TurnCommand,
    },
    /// Membership: heartbeats and who is online.
    Node {
        /// What to do with nodes.
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// The append-only event log.
    Log {
        /// What to do with the log.
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Measure this store: requests and latency (p50/p90/p99) of each operation next to the
    /// raw object_store calls that make its floor, then 1, 4, 16 and 64 nodes contending for
    /// one lock. Runs under a scratch prefix it deletes afterwards; under a minute on a local S3.
    Bench(BenchArgs),
}

/// `cairn bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Iterations of each operation (1 to 100000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub ops: u32,
    /// How many nodes contend for one lock, one run each (1 to 256; comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub nodes: Vec<u16>,
    /// How long each contention run lasts (100ms to 1h).
    #[arg(long, default_value = "3s", value_parser = duration::interval)]
    pub contention_for: Duration,
    /// How long each contending node holds the lock before releasing it (0 to 1h).
    #[arg(long, default_value = "100ms", value_parser = duration::grace)]
    pub hold: Duration,
    /// Measure membership at its defaults instead: how soon a killed `cairn node heartbeat`
    /// is seen not online (--kills), and whether live nodes under injected latency are ever
    /// called suspect (--live-nodes, --membership-for, --latency-min, --latency-max).
    #[arg(long)]
    pub membership: bool,
    /// With --membership: heartbeat processes killed, one at a time (1 to 1000).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub kills: u32,
    /// With --membership: live nodes heartbeating under latency (1 to 256).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub live_nodes: u16,
    /// With --membership: how long the live nodes run (100ms to 1h).
    #[arg(long, default_value = "10m", value_parser = duration::interval)]
    pub membership_for: Duration,
    /// With --membership: least latency injected into each request of the live run (0 to 1h).
    #[arg(long, default_value = "50ms", value_parser = duration::grace)]
    pub latency_min: Duration,
    /// With --membership: most latency injected into each request of the live run (0 to 1h).
    #[arg(long, default_value = "200ms", value_parser = duration::grace)]
    pub latency_max: Duration,
}

/// `cairn turn …`.
#[derive(Debug, Subcommand)]
pub enum TurnCommand {
    /// Run COMMAND if this invocation wins turn NAME: once --every has passed since the last
    /// turn started (give or take --jitter) and no other node claimed it first. COMMAND sees
    /// CAIRN_TURN (the turn number), CAIRN_TURN_NAME, CAIRN_NODE and CAIRN_TURN_RESULT (a
    /// file path: JSON written there is recorded as the turn's result). Exits with
    /// COMMAND's status; when not due or another node won, prints when the next turn is due
    /// and exits 0 without running anything.
    ///
    /// COMMAND runs in its own process group, and every signal cairn sends goes to the whole
    /// group. What COMMAND leaves running when it exits gets SIGTERM (SIGKILL 10 s later)
    /// before the outcome is recorded; if cairn itself dies, even by SIGKILL, the group is
    /// killed. A process that leaves the group (setsid) escapes all of this.
    Run {
        /// The turn's name.
        name: String,
        /// The window: time from one turn's start to the next turn's due time (1s to 366d).
        /// It belongs to the turn: used when the turn is first created, and then a node
        /// asking for another window is refused (exit 2). Default: the turn's stored window,
        /// or 300s for a new turn. Change it with `cairn turn configure`.
        #[arg(long, value_parser = duration::window)]
        every: Option<Duration>,
        /// How far each node's wake-up moves, each way, from the due time; a one-shot run
        /// finds the turn due from (due - jitter). At most half the window. Default: the
        /// turn's stored jitter, or min(30s, window/10) for a new turn.
        #[arg(long, value_parser = duration::jitter)]
        jitter: Option<Duration>,
        /// Keep running: sleep until each next due time (no polling in between) and run
        /// COMMAND whenever this node wins, until stopped with Ctrl-C or SIGTERM.
        #[arg(long = "loop")]
        keep_running: bool,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, num_args = 1..)]
        command: Vec<String>,
    },
    /// List every turn: number, holder, state, last outcome and next due time.
    Ls,
    /// Change a turn's window and jitter for every node (from each node's next claim).
    Configure {
        /// The turn's name.
        name: String,
        /// The new window (1s to 366d).
        #[arg(long, value_parser = duration::window)]
        every: Duration,
        /// The new jitter (at most half the window). Default: min(30s, window/10).
        #[arg(long, value_parser = duration::jitter)]
        jitter: Option<Duration>,
    },
    /// Show one turn.
    Show {
        /// The turn's name.
        name: String,
    },
}

/// `cairn node …`.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Join: heartbeat this node's record every --interval until stopped (Ctrl-C, SIGTERM),
    /// then mark it left. Exits 78 if another process heartbeats under the same node id.
    Heartbeat {
        /// Time between heartbeats (100ms to 1h).
        #[arg(long, default_value = "1s", value_parser = duration::interval)]
        interval: Duration,
    },
    /// List every node as online, suspect or offline, with its heartbeat age and timeout.
    Ls,
}

/// `cairn stream …`.
#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Create stream NAME unless it exists. Exit 0 when created or when it exists with
    /// equal metadata; exit 73 when it exists with different metadata (printed).
    Create {
        /// The stream's name.
        name: String,
        /// Metadata as JSON, or @FILE to read it from a file. Default: {}.
        #[arg(long)]
        metadata: Option<String>,
    },
    /// List every stream (active and deleted).
    Ls,
    /// Show one stream.
    Show {
        /// The stream's name.
        name: String,
    },
    /// Replace an active stream's metadata (compare-and-swap).
    Update {
        /// The stream's name.
        name: String,
        /// New metadata as JSON, or @FILE.
        #[arg(long)]
        metadata: String,
    },
    /// Delete a stream (writes a tombstone; creating it again starts a new incarnation).
    Delete {
        /// The stream's name.
        name: String,
    },
    /// Print one JSON line per created, changed or deleted stream, until stopped.
    Watch {
        /// How often to poll (one listing plus a conditional GET per known stream; 100ms to 1h).
        #[arg(long, default_value = "5s", value_parser = duration::interval)]
        interval: Duration,
        /// Poll once, print what is there, and exit.
        #[arg(long)]
        once: bool,
    },
}

/// `cairn record …`.
#[derive(Debug, Subcommand)]
pub enum RecordCommand {
    /// Store VALUE at VERSION unless the stored version is equal or higher (then: stale,
    /// exit 0, nothing written).
    Put {
        /// Namespace.
        namespace: String,
        /// Key.
        key: String,
        /// The value's version; must be higher than the stored one to apply.
        #[arg(long)]
        version: u64,
        /// The value, as JSON.
        #[arg(long)]
        value: String,
    },
    /// Print the stored record (exit 3 if there is none).
    Get {
        /// Namespace.
        namespace: String,
        /// Key.
        key: String,
    },
}

/// `cairn log …`.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Append a JSON event to TOPIC; prints its sequence number.
    Append {
        /// The topic.
        topic: String,
        /// The event, as JSON.
        event: String,
    },
    /// Print TOPIC's entries as JSON lines, from sequence number --from.
    Tail {
        /// The topic.
        topic: String,
        /// First sequence number to print.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Keep printing new entries until stopped.
        #[arg(long)]
        follow: bool,
        /// How often to poll with --follow (100ms to 1h).
        #[arg(long, default_value = "1s", value_parser = duration::interval)]
        interval: Duration,
    },
}

/// `cairn lock …`.
#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Run COMMAND while holding lock NAME, like flock(1) for a bucket. COMMAND sees
    /// CAIRN_LOCK, CAIRN_NODE and CAIRN_FENCING_TOKEN. Exits with COMMAND's status, 75 if
    /// the lock could not be had within --wait, 76 if the lease was lost while COMMAND ran.
    ///
    /// COMMAND runs in its own process group, and every signal cairn sends goes to the whole
    /// group. What COMMAND leaves running when it exits gets SIGTERM (SIGKILL after --grace)
    /// before the lock is released; if cairn itself dies, even by SIGKILL, the group is
    /// killed. A process that leaves the group (setsid) escapes all of this.
    Run {
        /// The lock's name.
        name: String,
        /// Lease time-to-live (1s to 24h); renewed every ttl/3.
        #[arg(long, default_value = "30s", value_parser = duration::ttl)]
        ttl: Duration,
        /// How long to wait for the lock (0: try once). Default: wait without limit.
        #[arg(long, value_parser = duration::wait)]
        wait: Option<Duration>,
        /// How long COMMAND's process group has between SIGTERM and SIGKILL (0 to 1h): after a
        /// lost lease, and for what COMMAND leaves running when it exits. The holder gives
        /// the lease up this much before its deadline, so COMMAND is dead before any other
        /// node may take over; the grace must fit in the ttl with a renewal:
        /// ttl/3 < ttl - grace - margin (refused otherwise, exit 2). Default: 10s, or ttl/3
        /// when that is shorter.
        #[arg(long, value_parser = duration::grace)]
        grace: Option<Duration>,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, num_args = 1..)]
        command: Vec<String>,
    },
    /// List every lock with holder, fencing token, times and state.
    Ls,
    /// Show one lock.
    Show {
        /// The lock's name.
        name: String,
    },
    /// Forcibly end the current lease (writes a new version; the holder learns at its
    /// next renewal).
    Break {
        /// The lock's name.
        name: String,
    },
}

/// `cairn fleet`.
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// Drive the fleet harder: injected faults, random kills, an operator's lock breaks,
    /// misconfigured nodes, clocks skewed within the documented bound. Exit 1 on violations.
    #[arg(long)]
    pub torture: bool,
    /// Ingesting nodes (a querier comes in addition).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub nodes: u64,
    /// How long the fleet runs.
    #[arg(long, default_value = "30s", value_parser = duration::parse)]
    pub duration: Duration,
    /// The expiry turn's window.
    #[arg(long, default_value = "3s", value_parser = duration::parse)]
    pub turn_window: Duration,
    /// The expiry turn's jitter.
    #[arg(long, default_value = "500ms", value_parser = duration::parse)]
    pub turn_jitter: Duration,
    /// The compaction lock's ttl.
    #[arg(long, default_value = "3s", value_parser = duration::parse)]
    pub lock_ttl: Duration,
    /// Heartbeat interval.
    #[arg(long, default_value = "1s", value_parser = duration::parse)]
    pub heartbeat: Duration,
    /// Seed of data, delays and the fault plan.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Clock skew: none, within the documented bound, or beyond it (to see what then breaks).
    /// Default: none, or within with --torture.
    #[arg(long, value_enum)]
    pub skew: Option<SkewArg>,
    /// With --torture: no operator lock breaks.
    #[arg(long)]
    pub no_break: bool,
    /// With --torture: no misconfigured nodes.
    #[arg(long)]
    pub no_misconfigured: bool,
    /// Plant a defect (the store ignores preconditions; use with --strategy to bypass the
    /// probe) to see the checker report violations.
    #[arg(long)]
    pub plant_defect: bool,
    /// Also run this many real `cairn` processes (`cairn lock run proc-lock …`), SIGKILLed,
    /// restarted and once paused (SIGSTOP) past their lease's ttl. Needs a file:// or s3://
    /// store.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=16))]
    pub processes: u64,
    /// Print one line per event even on a terminal.
    #[arg(long)]
    pub lines: bool,
}

/// `--skew` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SkewArg {
    /// Every clock exact.
    None,
    /// Any two clocks differ by at most the documented bound (max_clock_skew, 2 s).
    Within,
    /// Two nodes beyond the bound, one ahead and one behind.
    Beyond,
}
