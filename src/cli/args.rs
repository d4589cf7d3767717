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
    /// Probe the store: which conditional operations it honours, the manifest strategy
    /// cairn will use, and the round-trip latency.
    Doctor,
    /// Locks (leases) with fencing tokens.
    Lock {
        /// What to do with locks.
        #[command(subcommand)]
        command: LockCommand,
    },
}

/// `cairn lock …`.
#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Run COMMAND while holding lock NAME, like flock(1) for a bucket. COMMAND sees
    /// CAIRN_LOCK, CAIRN_NODE and CAIRN_FENCING_TOKEN. Exits with COMMAND's status, 75 if
    /// the lock could not be had within --wait, 76 if the lease was lost while COMMAND ran.
    Run {
        /// The lock's name.
        name: String,
        /// Lease time-to-live; renewed every ttl/3.
        #[arg(long, default_value = "30s", value_parser = duration::parse)]
        ttl: Duration,
        /// How long to wait for the lock (0: try once). Default: wait without limit.
        #[arg(long, value_parser = duration::parse)]
        wait: Option<Duration>,
        /// After a lost lease, how long COMMAND has between SIGTERM and SIGKILL.
        #[arg(long, default_value = "10s", value_parser = duration::parse)]
        grace: Duration,
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
