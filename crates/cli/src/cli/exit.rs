//! Exit codes, with their meanings. Listed in `--help` and in docs/CLI.md.

/// Success. `lock run` and `turn run` pass COMMAND's own status through instead, `turn
/// run` also when COMMAND ran but its outcome could not be recorded (the store went away
/// meanwhile: said on stderr), so that cron tells a failed job from an outage.
pub const OK: i32 = 0;
/// A failure cairn cannot classify further (store unreachable or unavailable, no answer
/// within `--timeout`, bad data, stdout closed, …).
pub const FAILURE: i32 = 1;
/// Bad command-line usage or configuration (clap's own code for usage errors): also no
/// cairn store here, no such bucket, no credentials, access denied.
pub const USAGE: i32 = 2;
/// The store was refused by the capability probe (EX_UNAVAILABLE).
pub const STORE_REFUSED: i32 = 69;
/// Not found: `lock show`, `stream show`, `record get`, `record delete`, `node forget`,
/// `log tail` (a topic with no entries); `lock break`: no such lock, or its current lease has another fencing token.
pub const NOT_FOUND: i32 = 3;
/// `lock ls`, `stream ls`, `turn ls`, `node ls`, `status`: listed, but some entries could
/// not be read (corrupt, foreign, or unreachable); each is shown in its place with its key and
/// why, and the rest as usual (EX_DATAERR).
pub const UNREADABLE: i32 = 65;
/// `stream create`: the stream exists with different metadata (EX_CANTCREAT).
pub const STREAM_CONFLICT: i32 = 73;
/// `lock run`, `lock hold`: the lock could not be had within `--wait` (EX_TEMPFAIL); `-E`
/// chooses another code. `node forget`: the node is online or suspect (without `--force`),
/// or heartbeated while being forgotten.
pub const LOCK_BUSY: i32 = 75;
/// `lock run`: the lease was lost while the command ran; it was stopped. `lock hold`: the
/// lease was lost while held.
pub const LEASE_LOST: i32 = 76;
/// `node heartbeat`: another process heartbeats under this node id (EX_CONFIG).
pub const DUPLICATE_NODE: i32 = 78;
/// `lock run`, `turn run`: the command could not be started.
pub const CANNOT_RUN: i32 = 127;
/// Interrupted (SIGINT) before the command started.
pub const INTERRUPTED: i32 = 130;

/// The exit-code table shown under `--help`.
pub const HELP: &str = "\
Exit codes:
  0    success (lock run, turn run: COMMAND's own status is passed through,
       turn run: also when its outcome could not be recorded; turn run: also
       when the turn was not due or another node won it)
  1    failure (store unreachable or unavailable, corrupt data, stdout
       closed, ...)
  2    usage or configuration error (also: no cairn store here, no such
       bucket, no credentials, access denied; --strategy disagrees with the
       prefix's protocol record, --every/--jitter with the turn's; the
       protocol record is missing on a prefix in use: cairn protocol recreate)
  3    not found (lock show, stream show, record get, record delete,
       node forget, log tail, ...;
       lock break: the lock's current lease has another --token)
  65   lock ls, stream ls, turn ls, node ls, status: listed, but some
       entries could not be read (each is shown in its row with its key)
  69   the store was refused by the capability probe
  73   stream create: the stream exists with different metadata
  75   lock run, lock hold: the lock is held by another node and --wait
       ran out (-E CODE chooses another code); node forget: the node is
       online or suspect (use --force)
  76   lock run, lock hold: the lease was lost (taken over, broken, renewals
       failed) while held, or found lost at release; COMMAND was stopped
       (or, acquired past the lease's give-up time, never started)
  78   node heartbeat: another process heartbeats under this node id
  127  lock run, turn run: COMMAND could not be started
  130  interrupted before COMMAND started
  128+N  COMMAND was killed by signal N";
