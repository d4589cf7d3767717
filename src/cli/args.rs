//! Command-line arguments (clap derive; the doc comments are the help text).

use clap::{Args, Parser, Subcommand};

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
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Probe the store: which conditional operations it honours, the manifest strategy
    /// cairn will use, and the round-trip latency.
    Doctor,
}
