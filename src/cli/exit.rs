//! Exit codes, with their meanings. Listed in `--help` and in the README.

/// Success.
pub const OK: i32 = 0;
/// A failure cairn cannot classify further (store unavailable, bad data, …).
pub const FAILURE: i32 = 1;
/// Bad command-line usage or configuration (clap's own code for usage errors).
pub const USAGE: i32 = 2;
/// The store was refused by the capability probe.
pub const STORE_REFUSED: i32 = 69;

/// The exit-code table shown under `--help`.
pub const HELP: &str = "\
Exit codes:
  0   success
  1   failure (store unavailable, corrupt data, ...)
  2   usage or configuration error
  69  the store was refused by the capability probe";
