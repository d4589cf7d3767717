//! Command-line arguments (clap derive; the doc comments are the help text).

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::{duration, exit, help};

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
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Store URL: s3://bucket/prefix, az://container/prefix, file:///absolute/path or
    /// memory://.
    /// Default: the nearest .cairn directory from here up, as git finds .git (a command
    /// that writes creates ./.cairn when there is none).
    #[arg(long, env = "CAIRN_STORE", global = true)]
    pub store: Option<String>,
    /// This node's id (1-128 of A-Z a-z 0-9 . _ -). Default: the host name, the same
    /// across restarts.
    #[arg(long, env = "CAIRN_NODE", global = true)]
    pub node: Option<String>,
    /// Append this process's id to the node id (myhost-4242), for several processes on one
    /// host that need ids of their own.
    #[arg(long, env = "CAIRN_NODE_PID", global = true)]
    pub node_pid: bool,
    /// Longest one request to the store may take, retries included (100ms to 1h).
    #[arg(long, env = "CAIRN_TIMEOUT", global = true, default_value = "10s", value_parser = duration::parse)]
    pub timeout: Duration,
    /// Manifest strategy: probe the store (auto), or skip the probe and use one.
    #[arg(long, env = "CAIRN_STRATEGY", global = true, value_enum, default_value_t = StrategyArg::Auto)]
    pub strategy: StrategyArg,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Record lock transitions (and turn outcomes) in this event log topic.
    #[arg(long, env = "CAIRN_AUDIT_TOPIC", global = true)]
    pub audit_topic: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics while the command runs (for the
    /// long-running ones: lock run, lock hold, node heartbeat, turn run --loop). ADDR is
    /// host:port, e.g. 127.0.0.1:9464.
    #[arg(long, env = "CAIRN_METRICS_ADDR", global = true, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// What `lock run` and `lock hold` take to acquire a lock, flock's flags included.
#[derive(Debug, Args)]
pub struct AcquireArgs {
    /// The lock's name.
    pub name: String,
    /// Lease time-to-live (1s to 24h); renewed every ttl/3.
    #[arg(long, default_value = "30s", value_parser = duration::ttl)]
    pub ttl: Duration,
    /// How long to wait for the lock (0: try once; plain seconds or 30s, 1m30s, up to
    /// 366d). Default: wait without limit.
    #[arg(short = 'w', long, value_name = "DURATION", value_parser = duration::wait)]
    pub wait: Option<Duration>,
    /// Fail at once if the lock is held (the same as --wait 0).
    #[arg(short = 'n', long, conflicts_with = "wait")]
    pub nonblock: bool,
    /// Exit with CODE (0 to 255) when the lock could not be had.
    #[arg(short = 'E', long, value_name = "CODE", default_value_t = exit::LOCK_BUSY as u8)]
    pub conflict_exit_code: u8,
}

impl AcquireArgs {
    /// How long to wait: `--wait`, or no wait at all with `-n`.
    pub fn wait(&self) -> Option<Duration> {
        if self.nonblock {
            Some(Duration::ZERO)
        } else {
            self.wait
        }
    }
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
    #[command(after_help = help::fleet())]
    Fleet(FleetArgs),
    /// Probe the store: which conditional operations it honours, the manifest strategy
    /// cairn will use, and the round-trip latency.
    #[command(after_help = help::doctor())]
    Doctor,
    /// Locks (leases) with fencing tokens.
    #[command(after_help = help::lock())]
    Lock {
        /// What to do with locks.
        #[command(subcommand)]
        command: LockCommand,
    },
    /// Streams any node can create; every racing creator ends with the same manifest.
    #[command(after_help = help::stream())]
    Stream {
        /// What to do with streams.
        #[command(subcommand)]
        command: StreamCommand,
    },
    /// Versioned records: a value only ever moves to a higher version.
    #[command(after_help = help::record())]
    Record {
        /// What to do with records.
        #[command(subcommand)]
        command: RecordCommand,
    },
    /// Turns: a periodic job that runs on exactly one node per window.
    #[command(after_help = help::turn())]
    Turn {
        /// What to do with turns.
        #[command(subcommand)]
        command: TurnCommand,
    },
    /// Membership: heartbeats and who is online.
    #[command(after_help = help::node())]
    Node {
        /// What to do with nodes.
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// The append-only event log.
    #[command(after_help = help::log())]
    Log {
        /// What to do with the log.
        #[command(subcommand)]
        command: LogCommand,
    },
    /// One screen summarising the bucket: locks, turns, streams, nodes by health and the
    /// latest log events.
    #[command(after_help = help::status())]
    Status(StatusArgs),
    /// Delete what is no longer needed: old manifest versions, the history of released locks
    /// and deleted records (their tombstone stays: it holds the fencing token / version),
    /// nodes that left, old log entries. With `node forget`, the verbs that delete on purpose
    /// (they need s3:DeleteObject). Of old versions and tombstones' histories, nothing younger
    /// than the prefix's gc_min_age (10 minutes by default) goes, whatever the options say.
    #[command(after_help = help::gc())]
    Gc(GcArgs),
    /// Measure this store: requests and latency (p50/p90/p99) of each operation next to the
    /// raw object_store calls that make its floor, then 1, 4, 16 and 64 nodes contending for
    /// one lock. Runs under a scratch prefix it deletes afterwards; under a minute on a local S3.
    #[command(after_help = help::bench())]
    Bench(BenchArgs),
    /// The prefix's protocol record (_cairn/protocol.json), which fixes the manifest strategy
    /// for every node: repair it when it was deleted.
    #[command(after_help = help::protocol())]
    Protocol {
        /// What to do with the protocol record.
        #[command(subcommand)]
        command: ProtocolCommand,
    },
}

/// `cairn protocol` verbs.
#[derive(Debug, Subcommand)]
pub enum ProtocolCommand {
    /// Re-create a deleted protocol record. Nodes refuse a prefix that holds locks, streams,
    /// ... but no record, rather than decide the protocol afresh. This lists the whole
    /// prefix, infers the strategy in use from the objects' key shapes (etag CAS writes
    /// .../manifest.json, the version chain .../v/NUMBER.json), refuses a --strategy they
    /// contradict, probes the store, and writes the record. Nothing happens where a record
    /// exists. Check first why it vanished: no lifecycle rule may expire _cairn/.
    Recreate,
}

/// `--watch` and `--interval`, on the listing commands and `status`.
#[derive(Debug, Clone, Copy, Args)]
pub struct WatchArgs {
    /// Refresh until stopped (Ctrl-C, SIGTERM; exit 0): redrawn in place on a terminal,
    /// otherwise one snapshot after another (one JSON document each with --json).
    #[arg(long)]
    pub watch: bool,
    /// Time between refreshes with --watch (100ms to 1h).
    #[arg(long, default_value = "2s", value_parser = duration::interval, requires = "watch")]
    pub interval: Duration,
}

/// `cairn status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Show this topic's latest events (default: --audit-topic; without either, the topics
    /// and their newest sequence numbers).
    #[arg(long)]
    pub topic: Option<String>,
    /// Refresh as the listing commands do.
    #[command(flatten)]
    pub watch: WatchArgs,
}

/// `cairn gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Also trim released locks and deleted records whose tombstone is at least this old
    /// (0 to 366d) to the tombstone alone. The tombstone is never deleted.
    #[arg(long, value_name = "DURATION", value_parser = duration::wait)]
    pub released_older_than: Option<Duration>,
    /// Also remove nodes that left at least this long ago (0 to 366d).
    #[arg(long, value_name = "DURATION", value_parser = duration::wait)]
    pub left_older_than: Option<Duration>,
    /// Also delete TOPIC's log entries below sequence number SEQ (never the newest entry).
    /// Repeat for several topics.
    #[arg(long, value_name = "TOPIC:SEQ")]
    pub log_before: Vec<String>,
    /// Delete nothing; list what would go.
    #[arg(long)]
    pub dry_run: bool,
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
    /// Measure the listings and cached views at these fleet sizes instead (comma-separated,
    /// 1 to 100000): N locks, N streams and N member records each, next to the raw LIST and
    /// concurrent GETs of the same objects.
    #[arg(long, value_delimiter = ',', conflicts_with = "membership",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub scale: Vec<u32>,
    /// With --scale: requests in flight at once while seeding and in the raw GETs (1 to 1024).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
}

/// `cairn turn …`.
#[derive(Debug, Subcommand)]
pub enum TurnCommand {
    /// Run COMMAND if this invocation wins turn NAME: once --every has passed since the last
    /// turn started (give or take --jitter) and no other node claimed it first. COMMAND sees
    /// CAIRN_TURN (the turn number), CAIRN_TURN_NAME, CAIRN_NODE and CAIRN_TURN_RESULT (a
    /// file path in a private directory made for this run: JSON written there, up to 64 KiB,
    /// is recorded as the turn's result). Exits with COMMAND's status, also when its outcome
    /// could not be recorded (said on stderr); when not due or another node won, prints when
    /// the next turn is due and exits 0 without running anything.
    ///
    /// COMMAND runs in its own process group, and every signal cairn sends goes to the whole
    /// group. What COMMAND leaves running when it exits gets SIGTERM (SIGKILL 10 s later)
    /// before the outcome is recorded; if cairn itself dies, even by SIGKILL, the group is
    /// killed. A process that leaves the group (setsid) escapes all of this.
    #[command(after_help = help::turn_run())]
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
        /// COMMAND whenever this node wins, until stopped with Ctrl-C, SIGTERM or SIGHUP.
        #[arg(long = "loop")]
        keep_running: bool,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, num_args = 1..)]
        command: Vec<String>,
    },
    /// List every turn: number, holder, state, last outcome and next due time.
    #[command(after_help = help::turn_ls())]
    Ls(WatchArgs),
    /// Change a turn's window and jitter for every node (from each node's next claim).
    #[command(after_help = help::turn_configure())]
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
    #[command(after_help = help::turn_show())]
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
    #[command(after_help = help::node_heartbeat())]
    Heartbeat {
        /// Time between heartbeats (100ms to 1h).
        #[arg(long, default_value = "1s", value_parser = duration::interval)]
        interval: Duration,
    },
    /// List every node as online, suspect or offline, with its heartbeat age and timeout.
    #[command(after_help = help::node_ls())]
    Ls(WatchArgs),
    /// Remove the record of a node that left or is offline (every version). Refuses a node
    /// that is online or suspect unless --force. Needs s3:DeleteObject.
    #[command(after_help = help::node_forget())]
    Forget {
        /// The id of the node to forget.
        // Not `node`: that would shadow the global `--node` (this process's own id).
        #[arg(value_name = "ID")]
        id: String,
        /// Remove it even if it is online or suspect (its heartbeat process, if alive, may
        /// stop with exit 78 or write a new record).
        #[arg(long)]
        force: bool,
    },
}

/// `cairn stream …`.
#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Create stream NAME unless it exists. Exit 0 when created or when it exists with
    /// equal metadata; exit 73 when it exists with different metadata (printed).
    #[command(after_help = help::stream_create())]
    Create {
        /// The stream's name.
        name: String,
        /// Metadata as JSON, or @FILE to read it from a file. Default: {}.
        #[arg(long)]
        metadata: Option<String>,
    },
    /// List every stream (active and deleted).
    #[command(after_help = help::stream_ls())]
    Ls(WatchArgs),
    /// Show one stream.
    #[command(after_help = help::stream_show())]
    Show {
        /// The stream's name.
        name: String,
    },
    /// Replace an active stream's metadata (compare-and-swap).
    #[command(after_help = help::stream_update())]
    Update {
        /// The stream's name.
        name: String,
        /// New metadata as JSON, or @FILE.
        #[arg(long)]
        metadata: String,
    },
    /// Delete a stream (writes a tombstone; creating it again starts a new incarnation).
    #[command(after_help = help::stream_delete())]
    Delete {
        /// The stream's name.
        name: String,
    },
    /// Print one line per stream: each one there when watching starts (`existing`), then
    /// each one created, changed or deleted while watching, until stopped. JSON lines with
    /// --json.
    #[command(after_help = help::stream_watch())]
    Watch {
        /// How often to poll (one listing plus a GET per changed stream; 100ms to 1h).
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
    #[command(after_help = help::record_put())]
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
    #[command(after_help = help::record_get())]
    Get {
        /// Namespace.
        namespace: String,
        /// Key.
        key: String,
    },
    /// Delete a record: a tombstone that keeps its version, so a put must still carry a
    /// higher version to apply (a stale one stays stale).
    #[command(after_help = help::record_delete())]
    Delete {
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
    #[command(after_help = help::log_append())]
    Append {
        /// The topic.
        topic: String,
        /// The event, as JSON.
        event: String,
    },
    /// Print TOPIC's entries, from sequence number --from or the last -n: one line each
    /// (sequence, time, node, event), or JSON lines with --json. A topic with no entries is
    /// an error (exit 3), unless --follow waits for its first.
    #[command(after_help = help::log_tail())]
    Tail {
        /// The topic.
        topic: String,
        /// First sequence number to print.
        #[arg(long, default_value_t = 1, conflicts_with = "lines")]
        from: u64,
        /// Print only the last N entries (then, with --follow, what comes after).
        #[arg(short = 'n', long, value_name = "N")]
        lines: Option<u64>,
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
    /// CAIRN_LOCK, CAIRN_NODE and CAIRN_FENCING_TOKEN. Exits with COMMAND's status, 75 (or
    /// -E CODE) if the lock could not be had within --wait, 76 if the lease was lost while
    /// COMMAND ran.
    ///
    /// COMMAND runs in its own process group, and every signal cairn sends goes to the whole
    /// group. What COMMAND leaves running when it exits gets SIGTERM (SIGKILL after --grace)
    /// before the lock is released; if cairn itself dies, even by SIGKILL, the group is
    /// killed. A process that leaves the group (setsid) escapes all of this.
    #[command(after_help = help::lock_run())]
    Run {
        /// The lock, and how to wait for it.
        #[command(flatten)]
        acquire: AcquireArgs,
        /// How long COMMAND's process group has between SIGTERM and SIGKILL (0 to 1h): after a
        /// lost lease, and for what COMMAND leaves running when it exits. The holder gives
        /// the lease up this much before its deadline, so COMMAND is dead before any other
        /// node may take over; the grace must fit in the ttl with a renewal:
        /// ttl/3 < ttl - grace - margin (refused otherwise, exit 2). Default: 10s, or ttl/3
        /// when that is shorter.
        #[arg(long, value_parser = duration::grace)]
        grace: Option<Duration>,
        /// Run STRING with `sh -c` instead of a COMMAND after `--`.
        #[arg(
            short = 'c',
            long = "command",
            value_name = "STRING",
            conflicts_with = "command"
        )]
        shell_command: Option<String>,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required_unless_present = "shell_command", num_args = 1..)]
        command: Vec<String>,
    },
    /// Hold lock NAME, renewing it, until Ctrl-C, SIGTERM or SIGHUP; print its fencing token.
    ///
    /// For work done by hand, or by a script that reads the fencing token. Prints the
    /// fencing token alone on a line of stdout once the lock is held (with --json: the
    /// acquisition, then the outcome, as JSON lines); releases the lock on Ctrl-C, SIGTERM or
    /// SIGHUP and exits 0. Also releases and exits 0 once whoever asked for the hold is gone:
    /// the process that started it exited, or its stdout is a pipe nobody reads any more
    /// (stdin is not watched). Exits 76 if the lease is lost meanwhile (taken over, broken,
    /// renewals failed).
    #[command(after_help = help::lock_hold())]
    Hold {
        /// The lock, and how to wait for it.
        #[command(flatten)]
        acquire: AcquireArgs,
    },
    /// List every lock with holder, fencing token, times and state.
    #[command(after_help = help::lock_ls())]
    Ls(WatchArgs),
    /// Show one lock.
    #[command(after_help = help::lock_show())]
    Show {
        /// The lock's name.
        name: String,
    },
    /// Forcibly end the lease with fencing token --token of lock NAME (never a newer one).
    ///
    /// Like Terraform's force-unlock: only the lease with that fencing token (see `lock
    /// show`) is broken; a lease acquired since is left alone. The break is written as a new
    /// version that keeps the holder and its expiry: the holder learns at its next renewal
    /// and stops, and no other node gets the lock before the broken lease expires. Asks for
    /// confirmation when stdin is a terminal; elsewhere refuses without --force.
    #[command(after_help = help::lock_break())]
    Break {
        /// The lock's name.
        name: String,
        /// The fencing token of the lease to break, as `cairn lock show NAME` prints it.
        #[arg(long)]
        token: u64,
        /// Break without asking (needed when stdin is not a terminal).
        #[arg(long)]
        force: bool,
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
    /// restarted and once paused (SIGSTOP) past their lease's ttl. Needs a file://, s3:// or
    /// az:// store.
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
