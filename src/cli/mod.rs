//! The `cairn` command line: a thin layer over the library. `main.rs` only calls [`main`].

pub mod args;
mod doctor;
pub mod duration;
pub mod exit;
mod lock;

use clap::Parser;

use crate::error::Error;
use crate::lease::LeaseOptions;
use crate::manifest::Strategy;
use crate::store::url;
use crate::{Cairn, Result, StrategyChoice};
use args::{Cli, Command, Global, LockCommand, StrategyArg};

/// Parses arguments, runs the command, and returns the process exit code.
pub async fn main() -> i32 {
    let cli = Cli::parse();
    match dispatch(cli).await {
        Ok(code) => code,
        Err(e) => report(&e),
    }
}

async fn dispatch(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    match &cli.command {
        Command::Doctor => {
            doctor::run(&store_url(g)?, g.node.as_deref(), g.json).await?;
            Ok(exit::OK)
        }
        Command::Lock { command } => {
            let cairn = connect(g).await?;
            match command {
                LockCommand::Run {
                    name,
                    ttl,
                    wait,
                    grace,
                    command,
                } => lock::run(&cairn, name, *ttl, *wait, *grace, command, g.json).await,
                LockCommand::Ls => lock::ls(&cairn.locks(LeaseOptions::default())?, g.json).await,
                LockCommand::Show { name } => {
                    lock::show(&cairn.locks(LeaseOptions::default())?, name, g.json).await
                }
                LockCommand::Break { name } => {
                    lock::break_lock(&cairn.locks(LeaseOptions::default())?, name, g.json).await
                }
            }
        }
    }
}

fn store_url(g: &Global) -> Result<String> {
    g.store.clone().map(Ok).unwrap_or_else(url::default_url)
}

/// Opens the store named by the global options, probing it unless `--strategy` says.
async fn connect(g: &Global) -> Result<Cairn> {
    let mut b = Cairn::open(&store_url(g)?).await?;
    if let Some(n) = &g.node {
        b = b.node(n)?;
    }
    b = b.strategy(match g.strategy {
        StrategyArg::Auto => StrategyChoice::Probe,
        StrategyArg::EtagCas => StrategyChoice::Fixed(Strategy::EtagCas),
        StrategyArg::VersionChain => StrategyChoice::Fixed(Strategy::VersionChain),
    });
    b.build().await
}

/// Prints an error to stderr and picks its exit code.
fn report(e: &Error) -> i32 {
    eprintln!("cairn: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        eprintln!("  caused by: {s}");
        source = s.source();
    }
    match e {
        Error::StoreRefused { .. } => exit::STORE_REFUSED,
        Error::Config(_) | Error::InvalidName { .. } => exit::USAGE,
        _ => exit::FAILURE,
    }
}
