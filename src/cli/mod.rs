//! The `cairn` command line: a thin layer over the library. `main.rs` only calls [`main`].

pub mod args;
mod doctor;
pub mod exit;

use clap::Parser;

use crate::error::Error;
use crate::store::url;
use args::{Cli, Command};

/// Parses arguments, runs the command, and returns the process exit code.
pub async fn main() -> i32 {
    let cli = Cli::parse();
    let store = match cli
        .global
        .store
        .clone()
        .map(Ok)
        .unwrap_or_else(url::default_url)
    {
        Ok(s) => s,
        Err(e) => return report(&e),
    };
    let node = cli.global.node.as_deref();
    let result = match cli.command {
        Command::Doctor => doctor::run(&store, node, cli.global.json).await,
    };
    match result {
        Ok(()) => exit::OK,
        Err(e) => report(&e),
    }
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
