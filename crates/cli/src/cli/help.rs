//! The examples and exit codes shown under each command's `--help` (clap's `after_help`).
//! Exit codes are named from [`super::exit`], so a changed code changes every page.

use super::exit::{
    CANNOT_RUN, DUPLICATE_NODE, FAILURE, INTERRUPTED, LEASE_LOST, LOCK_BUSY, NOT_FOUND, OK,
    STORE_REFUSED, STREAM_CONFLICT, UNREADABLE, USAGE,
};
use super::output::say;

/// The code a listing ends with when some of its entries could not be read.
const SOME_UNREADABLE: (i32, &str) = (
    UNREADABLE,
    "listed, but some entries could not be read (each shown in its row with its key and why)",
);

/// A help page's tail: examples (a comment line, then the command), then the exit codes
/// that apply, followed by those every command that opens a store can end with.
fn page(examples: &[(&str, &str)], codes: &[(i32, &str)]) -> String {
    let mut s = String::from("Examples:\n");
    for (what, cmd) in examples {
        s.push_str(&format!("  # {what}\n  {cmd}\n\n"));
    }
    s.push_str("Exit codes:\n");
    let common: [(i32, &str); 3] = [
        (FAILURE, "failure (store unavailable, corrupt data, ...)"),
        (USAGE, "usage or configuration error"),
        (
            STORE_REFUSED,
            "the store was refused by the capability probe",
        ),
    ];
    let mut all: Vec<(i32, &str)> = codes.to_vec();
    all.extend(
        common
            .iter()
            .filter(|(c, _)| !codes.iter().any(|(k, _)| k == c)),
    );
    all.sort_by_key(|(c, _)| *c);
    for (code, meaning) in all {
        s.push_str(&format!("  {code:<5}{meaning}\n"));
    }
    s
}

/// A command group's help tail: examples, and where its exit codes are.
fn group(name: &str, examples: &[(&str, &str)]) -> String {
    let mut s = String::from("Examples:\n");
    for (what, cmd) in examples {
        s.push_str(&format!("  # {what}\n  {cmd}\n\n"));
    }
    s.push_str(&format!(
        "Exit codes: see each command's help (`cairn {name} <COMMAND> --help`)\n"
    ));
    s
}

pub fn fleet() -> String {
    page(
        &[
            (
                "a demo fleet on ./.cairn, every invariant checked at the end",
                "cairn fleet",
            ),
            (
                "faults, kills and real cairn processes, one line per event",
                "cairn fleet --torture --processes 3 --duration 1m --lines",
            ),
        ],
        &[
            (OK, "no invariant was violated"),
            (
                FAILURE,
                "an invariant was violated (printed with its history)",
            ),
            (USAGE, "usage error (also: --processes with memory://)"),
            (INTERRUPTED, "interrupted"),
        ],
    )
}

pub fn doctor() -> String {
    page(
        &[
            ("probe the default store (./.cairn)", "cairn doctor"),
            (
                "probe a bucket, as JSON",
                "cairn --store s3://ops-bucket/fleet doctor --json",
            ),
        ],
        &[(OK, "the store was probed (the report says what it honours)")],
    )
}

pub fn protocol() -> String {
    page(
        &[
            (
                "re-create a deleted record, with the strategy the objects show",
                "cairn --store s3://ops-bucket/fleet protocol recreate",
            ),
            (
                "re-create it for the version chain (refused if etag-CAS objects are present)",
                "cairn --store s3://ops-bucket/fleet --strategy version-chain protocol recreate",
            ),
        ],
        &[(OK, "the record is in place (re-created, or it existed)")],
    )
}

pub fn bench() -> String {
    page(
        &[
            ("measure the default store (./.cairn)", "cairn bench"),
            (
                "measure a bucket, fewer iterations, as JSON",
                "cairn --store s3://ops-bucket/bench bench --ops 20 --json",
            ),
        ],
        &[(
            OK,
            "the benchmark ran; the tables (or JSON) say what it measured",
        )],
    )
}

pub fn lock() -> String {
    group(
        "lock",
        &[
            (
                "one backup at a time; give up at once if one runs",
                "cairn lock run backup -n -- ./backup.sh",
            ),
            ("who holds what", "cairn lock ls"),
        ],
    )
}

pub fn lock_run() -> String {
    page(
        &[
            (
                "in a cron line on every machine: one backup at a time, skipped if one runs",
                "cairn --store s3://ops-bucket/locks lock run nightly-backup -n -- ./backup.sh",
            ),
            (
                "wait up to 5 minutes, run a shell string, exit 1 (as flock does) if busy",
                "cairn lock run compaction -w 5m -E 1 -c 'compact --all && vacuum'",
            ),
        ],
        &[
            (
                OK,
                "COMMAND's own status is passed through (0 when it succeeded)",
            ),
            (
                LOCK_BUSY,
                "the lock is held by another node and --wait ran out (or -E CODE)",
            ),
            (
                LEASE_LOST,
                "the lease was lost (taken over, broken, renewals failed) while COMMAND ran, \
                 or found lost at release; COMMAND was stopped",
            ),
            (CANNOT_RUN, "COMMAND could not be started"),
            (
                INTERRUPTED,
                "interrupted before the lock was acquired (128+N for signal N)",
            ),
        ],
    ) + "  128+N  COMMAND was killed by signal N\n"
}

pub fn lock_hold() -> String {
    page(
        &[
            ("hold a lock while doing maintenance by hand; Ctrl-C (or closing the terminal) releases it", "cairn lock hold schema-migration"),
            (
                "in a script: take the lock, read its fencing token, release with SIGTERM",
                "coproc cairn lock hold deploy -w 1m; read -r token <&\"${COPROC[0]}\"; ...; kill $COPROC_PID",
            ),
        ],
        &[
            (OK, "held, then released on Ctrl-C, SIGTERM or SIGHUP, or once the process that started it exited or nobody reads its stdout"),
            (LOCK_BUSY, "the lock is held by another node and --wait ran out (or -E CODE)"),
            (LEASE_LOST, "the lease was lost while held (taken over, broken, renewals failed)"),
            (INTERRUPTED, "interrupted before the lock was acquired (128+N for signal N)"),
        ],
    )
}

pub fn lock_ls() -> String {
    page(
        &[
            ("every lock, its holder and fencing token", "cairn lock ls"),
            (
                "the held ones, with jq",
                "cairn lock ls --json | jq '.[] | select(.state == \"held\")'",
            ),
            (
                "refresh every second until Ctrl-C",
                "cairn lock ls --watch --interval 1s",
            ),
        ],
        &[
            (
                OK,
                "listed (also when there is none); --watch: stopped by Ctrl-C or SIGTERM",
            ),
            SOME_UNREADABLE,
        ],
    )
}

pub fn lock_show() -> String {
    page(
        &[
            (
                "one lock, with the fencing token `lock break` needs",
                "cairn lock show nightly-backup",
            ),
            (
                "its token alone",
                "cairn lock show nightly-backup --json | jq .fencing_token",
            ),
        ],
        &[(OK, "shown"), (NOT_FOUND, "no lock of that name")],
    )
}

pub fn lock_break() -> String {
    page(
        &[
            (
                "look, then break exactly the lease you saw (asks to confirm)",
                "cairn lock show nightly-backup; cairn lock break nightly-backup --token 42",
            ),
            (
                "from a script, without asking",
                "cairn lock break nightly-backup --token 42 --force",
            ),
        ],
        &[
            (
                OK,
                "broken (or that lease was no longer held: nothing to break)",
            ),
            (FAILURE, "not confirmed at the terminal"),
            (
                USAGE,
                "usage error; also when stdin is not a terminal and --force was not given",
            ),
            (
                NOT_FOUND,
                "no lock of that name, or its current lease has another fencing token than \
                 --token (a newer lease): nothing was broken",
            ),
        ],
    )
}

pub fn stream() -> String {
    group(
        "stream",
        &[
            (
                "create a stream from any node",
                "cairn stream create clicks --metadata '{\"schema\":\"v1\"}'",
            ),
            ("follow every change", "cairn stream watch --json"),
        ],
    )
}

pub fn stream_create() -> String {
    page(
        &[
            (
                "create it unless it exists",
                "cairn stream create clicks --metadata '{\"schema\":\"v1\"}'",
            ),
            (
                "metadata from a file, as JSON",
                "cairn stream create clicks --metadata @schema.json --json",
            ),
        ],
        &[
            (OK, "created, or it exists with equal metadata"),
            (
                STREAM_CONFLICT,
                "it exists with different metadata (the stored manifest is printed)",
            ),
        ],
    )
}

pub fn stream_ls() -> String {
    page(
        &[
            ("every stream, active and deleted", "cairn stream ls"),
            ("as JSON", "cairn stream ls --json"),
            ("refresh every 2s until Ctrl-C", "cairn stream ls --watch"),
        ],
        &[
            (
                OK,
                "listed (also when there is none); --watch: stopped by Ctrl-C or SIGTERM",
            ),
            SOME_UNREADABLE,
        ],
    )
}

pub fn stream_show() -> String {
    page(
        &[
            ("one stream", "cairn stream show clicks"),
            (
                "its metadata",
                "cairn stream show clicks --json | jq .metadata",
            ),
        ],
        &[(OK, "shown"), (NOT_FOUND, "no stream of that name")],
    )
}

pub fn stream_update() -> String {
    page(
        &[(
            "replace the metadata",
            "cairn stream update clicks --metadata @schema-v2.json",
        )],
        &[
            (OK, "updated"),
            (NOT_FOUND, "no active stream of that name"),
        ],
    )
}

pub fn stream_delete() -> String {
    page(
        &[(
            "delete (a tombstone; creating it again starts a new incarnation)",
            "cairn stream delete clicks",
        )],
        &[
            (OK, "deleted"),
            (NOT_FOUND, "no active stream of that name"),
        ],
    )
}

pub fn stream_watch() -> String {
    page(
        &[
            ("follow every change until Ctrl-C", "cairn stream watch"),
            (
                "one JSON line per stream there now, then exit",
                "cairn stream watch --once --json",
            ),
        ],
        &[(OK, "stopped by Ctrl-C, or --once done")],
    )
}

pub fn record() -> String {
    group(
        "record",
        &[(
            "store a value at a version",
            "cairn record put agents agent-7 --version 7 --value '\"connected\"'",
        )],
    )
}

pub fn record_put() -> String {
    page(
        &[
            (
                "applied: version 7 is higher than what is stored",
                "cairn record put agents agent-7 --version 7 --value '\"connected\"'",
            ),
            (
                "stale: ignored, exit 0",
                "cairn record put agents agent-7 --version 6 --value '\"disconnected\"'",
            ),
        ],
        &[(OK, "applied, or stale (nothing written)")],
    )
}

pub fn record_get() -> String {
    page(
        &[
            ("the stored value", "cairn record get agents agent-7"),
            ("as JSON", "cairn record get agents agent-7 --json"),
        ],
        &[(OK, "printed"), (NOT_FOUND, "no such record")],
    )
}

pub fn turn() -> String {
    group(
        "turn",
        &[(
            "in a cron line on every node: one of them runs the expiry per window",
            "cairn turn run expiry --every 5m -- ./expire.sh",
        )],
    )
}

pub fn turn_run() -> String {
    page(
        &[
            ("in a cron line on every node, every 5 minutes", "*/5 * * * * cairn turn run expiry --every 5m --jitter 30s -- ./expire.sh"),
            ("one long-running process per node", "cairn turn run expiry --loop -- ./expire.sh"),
        ],
        &[
            (OK, "COMMAND's own status is passed through (also when its outcome could not be recorded: said on stderr); also 0 when the turn was not due or another node won it"),
            (USAGE, "usage error, or --every/--jitter disagree with the turn's"),
            (CANNOT_RUN, "COMMAND could not be started"),
            (INTERRUPTED, "interrupted before COMMAND started (128+N for signal N)"),
        ],
    ) + "  128+N  COMMAND was killed by signal N\n"
}

pub fn turn_ls() -> String {
    page(
        &[
            (
                "every turn, its number, holder and next due time",
                "cairn turn ls",
            ),
            ("refresh every 2s until Ctrl-C", "cairn turn ls --watch"),
        ],
        &[
            (
                OK,
                "listed (also when there is none); --watch: stopped by Ctrl-C or SIGTERM",
            ),
            SOME_UNREADABLE,
        ],
    )
}

pub fn turn_configure() -> String {
    page(
        &[(
            "a window of an hour and a half, 5 minutes of jitter, for every node",
            "cairn turn configure expiry --every 1h30m --jitter 5m",
        )],
        &[
            (OK, "changed"),
            (NOT_FOUND, "no turn of that name (`turn run` creates it)"),
        ],
    )
}

pub fn turn_show() -> String {
    page(
        &[
            ("one turn", "cairn turn show expiry"),
            (
                "its last outcome",
                "cairn turn show expiry --json | jq .outcome",
            ),
        ],
        &[(OK, "shown"), (NOT_FOUND, "no turn of that name")],
    )
}

pub fn node() -> String {
    group("node", &[("who is online", "cairn node ls")])
}

pub fn node_heartbeat() -> String {
    page(
        &[
            (
                "join and heartbeat every 2 s until stopped",
                "cairn --node ingest-1 node heartbeat",
            ),
            (
                "every 10 s (a fifth of the cost)",
                "cairn node heartbeat --interval 10s",
            ),
        ],
        &[
            (OK, "stopped by Ctrl-C or SIGTERM; the node is marked left"),
            (
                DUPLICATE_NODE,
                "another process heartbeats under this node id",
            ),
            (
                INTERRUPTED,
                "interrupted before joining (128+N for signal N)",
            ),
        ],
    )
}

pub fn node_ls() -> String {
    page(
        &[
            ("online, suspect and offline nodes", "cairn node ls"),
            ("as JSON", "cairn node ls --json"),
            (
                "refresh every 2s until Ctrl-C (redrawn in place on a terminal)",
                "cairn node ls --watch",
            ),
        ],
        &[
            (
                OK,
                "listed (also when there is none); --watch: stopped by Ctrl-C or SIGTERM",
            ),
            SOME_UNREADABLE,
        ],
    )
}

pub fn node_forget() -> String {
    page(
        &[
            (
                "remove a node that left or is offline",
                "cairn node forget web-3",
            ),
            (
                "even one that still heartbeats",
                "cairn node forget web-3 --force",
            ),
        ],
        &[
            (OK, "forgotten (every version of its record deleted)"),
            (NOT_FOUND, "no such node"),
            (
                LOCK_BUSY,
                "the node is online or suspect (without --force), or heartbeated meanwhile",
            ),
        ],
    )
}

pub fn gc() -> String {
    page(
        &[
            ("what would go, deleting nothing", "cairn gc --dry-run"),
            ("old versions of every manifest", "cairn gc"),
            (
                "also released locks and deleted records idle for a day (tombstone kept)",
                "cairn gc --released-older-than 1d",
            ),
            (
                "also nodes that left a week ago, and audit entries before 5000",
                "cairn gc --left-older-than 7d --log-before audit:5000",
            ),
        ],
        &[(OK, "collected (also when there was nothing to delete)")],
    )
}

pub fn status() -> String {
    page(
        &[
            ("the bucket at a glance", "cairn status"),
            (
                "with the latest events of a topic",
                "cairn status --topic audit",
            ),
            ("as one JSON document", "cairn status --json"),
            (
                "refresh every 5s until Ctrl-C",
                "cairn status --watch --interval 5s",
            ),
        ],
        &[
            (OK, "shown; --watch: stopped by Ctrl-C or SIGTERM"),
            SOME_UNREADABLE,
        ],
    )
}

pub fn record_delete() -> String {
    page(
        &[(
            "delete (a tombstone keeping the version: a put needs a higher one)",
            "cairn record delete agents agent-7",
        )],
        &[
            (OK, "deleted (also when it was deleted already)"),
            (NOT_FOUND, "no such record"),
        ],
    )
}

pub fn log() -> String {
    group(
        "log",
        &[(
            "the last 10 events of a topic",
            "cairn log tail deploys -n 10",
        )],
    )
}

pub fn log_append() -> String {
    page(
        &[(
            "append an event; prints its sequence number",
            "cairn log append deploys '{\"service\":\"api\",\"version\":\"1.4.2\"}'",
        )],
        &[(OK, "appended")],
    )
}

pub fn log_tail() -> String {
    page(
        &[
            (
                "the last 20 events, then follow",
                "cairn log tail deploys -n 20 --follow",
            ),
            (
                "everything from sequence 100, as JSON lines",
                "cairn log tail deploys --from 100 --json",
            ),
        ],
        &[
            (OK, "printed (with --follow: stopped by Ctrl-C)"),
            (NOT_FOUND, "the topic has no entries (without --follow)"),
        ],
    )
}

/// Prints clap's error `e` to stderr with `tip` after its first line, where clap puts its
/// own tips.
pub fn print_with_tip(e: &clap::Error, tip: &str) {
    let text = e.render().to_string();
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    say!("{first}\n\n  tip: {tip}\n{rest}");
}

/// Options of `lock run`, `turn run` and the global ones that take a value as the next
/// argument: skipped when looking for where COMMAND starts.
const TAKES_VALUE: &[&str] = &[
    "--ttl",
    "--wait",
    "-w",
    "--grace",
    "--conflict-exit-code",
    "-E",
    "--command",
    "-c",
    "--every",
    "--jitter",
    "--store",
    "--node",
    "--strategy",
    "--audit-topic",
];

/// For `cairn lock run NAME COMMAND…` or `cairn turn run NAME COMMAND…` without the `--`
/// that must come before COMMAND: the command line with `--` put where it belongs, to
/// suggest. `None` for any other mistake. `args` are the arguments after the program name.
pub fn separator_hint(args: &[String]) -> Option<String> {
    if args.iter().any(|a| a == "--") {
        return None;
    }
    let run = args
        .windows(2)
        .position(|w| (w[0] == "lock" || w[0] == "turn") && w[1] == "run")?
        + 1;
    let mut positionals = 0;
    let mut i = run + 1;
    while i < args.len() {
        let a = &args[i];
        if a.starts_with('-') && a.len() > 1 {
            if TAKES_VALUE.contains(&a.as_str()) {
                i += 1; // its value
            }
        } else {
            positionals += 1;
            if positionals == 2 {
                let mut fixed: Vec<&str> = args[..i].iter().map(String::as_str).collect();
                fixed.push("--");
                fixed.extend(args[i..].iter().map(String::as_str));
                return Some(format!("cairn {}", fixed.join(" ")));
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_lists_examples_then_its_codes_then_the_common_ones_once() {
        let p = lock_show();
        let ex = p.find("Examples:").unwrap();
        let codes = p.find("Exit codes:").unwrap();
        assert!(ex < codes);
        assert!(p.contains("  3    no lock of that name"));
        assert_eq!(p.matches("  2    ").count(), 1);
        assert_eq!(
            lock_break().matches("  2    ").count(),
            1,
            "{}",
            lock_break()
        );
        assert!(lock_break().contains("stdin is not a terminal"));
    }

    #[test]
    fn a_missing_separator_is_put_before_the_command() {
        let args = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            separator_hint(&args("lock run nf true")).as_deref(),
            Some("cairn lock run nf -- true")
        );
        assert_eq!(
            separator_hint(&args("--node a lock run -w 5 true echo true")).as_deref(),
            Some("cairn --node a lock run -w 5 true -- echo true")
        );
        assert_eq!(
            separator_hint(&args("turn run expiry --every 1h ./x.sh -v")).as_deref(),
            Some("cairn turn run expiry --every 1h -- ./x.sh -v")
        );
        assert_eq!(separator_hint(&args("lock run nf -- true extra")), None);
        assert_eq!(separator_hint(&args("lock ls extra")), None);
    }
}
