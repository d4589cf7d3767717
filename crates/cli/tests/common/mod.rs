//! The root's shared harness (`tests/common`), and what the binary's tests add to it:
//! running `cairn` ([`cli`]), `sh -c` workers around it, and the short torture ([`torture`]).
#![allow(dead_code, unused_imports)]

#[path = "../../../../tests/common/mod.rs"]
mod shared;

pub mod cli;
pub mod torture;

pub use shared::*;

/// A `sh -c SCRIPT` worker that runs the cairn binary (`$CAIRN_BIN`) against LocalStack as
/// node `node`, appending to `$LOG`.
pub fn cairn_worker(
    store: &str,
    node: &str,
    log: &std::path::Path,
    script: &str,
) -> tokio::process::Command {
    cairn_worker_on(Backend::LocalStack, store, node, log, script)
}

/// [`cairn_worker`] against the server `backend` (an S3 server or Azurite).
pub fn cairn_worker_on(
    backend: Backend,
    store: &str,
    node: &str,
    log: &std::path::Path,
    script: &str,
) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c")
        .arg(script)
        .env("CAIRN_BIN", env!("CARGO_BIN_EXE_cairn"))
        .env("CAIRN_STORE", store)
        .env("CAIRN_NODE", node)
        .env("LOG", log)
        .envs(backend.cli_env())
        .env_remove("CAIRN_STRATEGY")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    c
}
