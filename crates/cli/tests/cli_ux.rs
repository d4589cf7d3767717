//! The operator's view of the `cairn` binary: help pages, durations, JSON shapes, tables,
//! `log tail`, flock(1)'s flags on `lock run`, `lock hold` and `lock break --token`.
//!
//! Real processes on a `file://` store in a temp dir, asserting on stdout, stderr and exit
//! code. Nothing here sleeps to synchronise: a test waits for the line a process prints
//! (with a generous deadline, so that a hang fails instead of blocking the suite).

mod common;

use std::time::Duration;

use common::cli::{Env, Pty, Spawned, DEADLINE};
use serde_json::Value;

/// A look at a lock as `lock show --json` prints it.
trait Locks {
    fn lock(&self, name: &str) -> Value;
}

impl Locks for Env {
    fn lock(&self, name: &str) -> Value {
        self.run("viewer", &["--json", "lock", "show", name])
            .ok()
            .json()
    }
}

// ---------------------------------------------------------------------------------------
// Help

/// Every leaf command.
const COMMANDS: &[&[&str]] = &[
    &["fleet"],
    &["doctor"],
    &["bench"],
    &["lock", "run"],
    &["lock", "hold"],
    &["lock", "ls"],
    &["lock", "show"],
    &["lock", "break"],
    &["stream", "create"],
    &["stream", "ls"],
    &["stream", "show"],
    &["stream", "update"],
    &["stream", "delete"],
    &["stream", "watch"],
    &["record", "put"],
    &["record", "get"],
    &["record", "delete"],
    &["turn", "run"],
    &["turn", "ls"],
    &["turn", "configure"],
    &["turn", "show"],
    &["node", "heartbeat"],
    &["node", "ls"],
    &["node", "forget"],
    &["gc"],
    &["status"],
    &["log", "append"],
    &["log", "tail"],
];

#[test]
fn every_command_s_help_has_global_options_apart_then_examples_and_its_exit_codes() {
    let env = Env::new();
    for cmd in COMMANDS {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = env.run("n", &args).ok().stdout();
        let global = out
            .find("\nGlobal options:\n")
            .unwrap_or_else(|| panic!("{cmd:?}: no Global options section:\n{out}"));
        // --store, --node, --json are listed there, not among the command's own options.
        for opt in ["--store <STORE>", "--node <NODE>", "--json\n"] {
            let line = format!("\n      {opt}");
            let at = out
                .find(&line)
                .unwrap_or_else(|| panic!("{cmd:?}: no {opt}"));
            assert!(
                at > global,
                "{cmd:?}: {opt} is outside Global options:\n{out}"
            );
        }
        let examples = out
            .find("\nExamples:\n  # ")
            .unwrap_or_else(|| panic!("{cmd:?}: no examples:\n{out}"));
        let codes = out
            .find("\nExit codes:\n")
            .unwrap_or_else(|| panic!("{cmd:?}: no exit codes:\n{out}"));
        assert!(global < examples && examples < codes, "{cmd:?}:\n{out}");
        assert!(
            out[examples..codes].contains("cairn "),
            "{cmd:?}: an example is a cairn command:\n{out}"
        );
        assert!(
            out[codes..].contains("\n  2    usage"),
            "{cmd:?}: exit 2 listed:\n{out}"
        );
    }
}

#[test]
fn help_lists_the_exit_codes_that_apply_to_the_command() {
    let env = Env::new();
    let run = env.run("n", &["lock", "run", "--help"]).ok().stdout();
    for code in ["  75   ", "  76   ", "  127  ", "128+N"] {
        assert!(run.contains(code), "lock run lacks {code}:\n{run}");
    }
    let create = env.run("n", &["stream", "create", "--help"]).ok().stdout();
    assert!(create.contains("  73   "), "{create}");
    assert!(!create.contains("  76   "), "{create}");
    let tail = env.run("n", &["log", "tail", "-h"]).ok().stdout();
    assert!(tail.contains("  3    the topic has no entries"), "{tail}");
}

#[test]
fn lock_run_without_the_separator_suggests_the_command_line_with_it() {
    let env = Env::new();
    let out = env.run("n", &["lock", "run", "nf", "true"]).exits(2);
    let err = out.stderr();
    assert!(err.contains("unexpected argument 'true'"), "{err}");
    assert!(
        err.contains("tip: the command to run goes after `--`: cairn --store"),
        "{err}"
    );
    assert!(err.contains("lock run nf -- true"), "{err}");
    // Options before the name and the command's own flags land in the right place.
    let err = env
        .run("n", &["lock", "run", "-w", "5", "nf", "ls", "-l"])
        .exits(2)
        .stderr();
    assert!(err.contains("lock run -w 5 nf -- ls -l"), "{err}");
    let err = env
        .run("n", &["turn", "run", "expiry", "./expire.sh"])
        .exits(2)
        .stderr();
    assert!(err.contains("turn run expiry -- ./expire.sh"), "{err}");
    // A command after `--` still takes its own flags with no ambiguity.
    let out = env
        .run("n", &["lock", "run", "nf", "--", "sh", "-c", "echo -n hi"])
        .ok();
    assert_eq!(out.stdout(), "hi");
}

// ---------------------------------------------------------------------------------------
// Durations

#[test]
fn durations_accept_plain_seconds_and_compound_forms() {
    let env = Env::new();
    env.run("n", &["lock", "run", "a", "--wait", "5", "--", "true"])
        .ok();
    env.run(
        "n",
        &[
            "lock", "run", "a", "--ttl", "1m30s", "-w", "1m 30s", "--", "true",
        ],
    )
    .ok();
    env.run(
        "n",
        &[
            "turn", "run", "t", "--every", "1h30m", "--jitter", "90", "--", "true",
        ],
    )
    .ok();
    let t = env.run("n", &["--json", "turn", "show", "t"]).ok().json();
    assert_eq!(t["window_ms"], 5_400_000);
    assert_eq!(t["jitter_ms"], 90_000);
    let text = env.run("n", &["turn", "show", "t"]).ok().stdout();
    assert!(text.contains("window:      1h30m ± 1m30s"), "{text}");
}

#[test]
fn out_of_range_durations_are_refused_naming_the_range_before_any_request() {
    let env = Env::new();
    for (args, range) in [
        (
            &["lock", "run", "a", "--ttl", "25h", "--", "true"][..],
            "allowed from 1s to 24h",
        ),
        (
            &["lock", "run", "a", "--ttl", "0.5", "--", "true"],
            "allowed from 1s to 24h",
        ),
        (
            &["lock", "hold", "a", "-w", "367d"],
            "allowed from 0 to 366d",
        ),
        (
            &["turn", "run", "t", "--every", "0", "--", "true"],
            "allowed from 1s to 366d",
        ),
        (
            &["node", "heartbeat", "--interval", "50ms"],
            "allowed from 100ms to 1h",
        ),
    ] {
        let err = env.run("n", args).exits(2).stderr();
        assert!(
            err.contains("out of range") && err.contains(range),
            "{args:?}: {err}"
        );
    }
    let err = env
        .run(
            "n",
            &["lock", "run", "a", "--wait", "5 apples", "--", "true"],
        )
        .exits(2)
        .stderr();
    assert!(err.contains("is not a duration"), "{err}");
    assert!(
        !env.dir.path().join("store").exists(),
        "a refused duration must cost no request"
    );
}

// ---------------------------------------------------------------------------------------
// JSON shapes

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[test]
fn lock_run_json_prints_the_acquisition_then_the_outcome() {
    let env = Env::new();
    let lines = env
        .run(
            "worker-1",
            &["--json", "lock", "run", "job", "-c", "exit 7"],
        )
        .exits(7)
        .json_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (acq, done) = (&lines[0], &lines[1]);
    assert_eq!(acq["event"], "acquired");
    let lock = &acq["lock"];
    assert_eq!(lock["name"], "job");
    assert_eq!(lock["holder"], "worker-1");
    assert_eq!(lock["state"], "held");
    // A new lock's first token is a floor drawn from time (`clock::floor`).
    let token = lock["fencing_token"].as_u64().unwrap();
    assert!(token > 1_000_000, "{lock}");
    assert!(lock["expires_at"].as_str().unwrap().ends_with('Z'));
    chrono::DateTime::parse_from_rfc3339(lock["expires_at"].as_str().unwrap()).unwrap();
    // The lock object has the shape `lock show` gives.
    let shown = env.lock("job");
    assert_eq!(keys(lock), keys(&shown));
    assert_eq!(done["event"], "finished");
    assert_eq!(done["name"], "job");
    assert_eq!(done["fencing_token"], token);
    assert_eq!(done["exit_code"], 7);
    assert_eq!(done["lease_lost"], false);
    assert_eq!(done["loss"], Value::Null);
    assert_eq!(done["released"], true);
    assert_eq!(done["cairn_exit_code"], 7);
    assert_eq!(shown["state"], "released");
}

#[test]
fn stream_create_update_and_delete_share_one_shape() {
    let env = Env::new();
    let created = env
        .run(
            "n",
            &[
                "--json",
                "stream",
                "create",
                "clicks",
                "--metadata",
                r#"{"v":1}"#,
            ],
        )
        .ok()
        .json();
    let exists = env
        .run(
            "n",
            &[
                "--json",
                "stream",
                "create",
                "clicks",
                "--metadata",
                r#"{"v":1}"#,
            ],
        )
        .ok()
        .json();
    let updated = env
        .run(
            "n",
            &[
                "--json",
                "stream",
                "update",
                "clicks",
                "--metadata",
                r#"{"v":2}"#,
            ],
        )
        .ok()
        .json();
    let deleted = env
        .run("n", &["--json", "stream", "delete", "clicks"])
        .ok()
        .json();
    let shown = env
        .run("n", &["--json", "stream", "show", "clicks"])
        .ok()
        .json();
    for (v, outcome) in [
        (&created, "created"),
        (&exists, "exists"),
        (&updated, "updated"),
        (&deleted, "deleted"),
    ] {
        assert_eq!(keys(v), ["outcome", "stream"], "{v}");
        assert_eq!(v["outcome"], outcome);
        assert_eq!(keys(&v["stream"]), keys(&shown), "{v}");
        assert_eq!(v["stream"]["name"], "clicks");
    }
    assert_eq!(deleted["stream"]["state"], "deleted");
    assert_eq!(updated["stream"]["metadata"]["v"], 2);
}

#[test]
fn a_turn_s_name_is_name_and_its_number_is_number_in_every_command() {
    let env = Env::new();
    let ran = env
        .run(
            "n",
            &[
                "--json", "turn", "run", "expiry", "--every", "1h", "--", "true",
            ],
        )
        .ok()
        .json();
    assert_eq!(ran["outcome"], "ran");
    assert_eq!(ran["name"], "expiry");
    // A new turn's first number is a floor drawn from time (`clock::floor`).
    let number = ran["number"].as_u64().unwrap();
    assert!(number > 1_000_000, "{ran}");
    assert_eq!(ran["exit_code"], 0);
    assert_eq!(ran["recorded"], true);
    assert_eq!(ran["turn"]["name"], "expiry");
    assert_eq!(ran["turn"]["number"], number);
    let skipped = env
        .run("n", &["--json", "turn", "run", "expiry", "--", "true"])
        .ok()
        .json();
    assert_eq!(skipped["outcome"], "not-due");
    assert_eq!(skipped["name"], "expiry");
    assert!(skipped["claimable_at"].is_string());
    let shown = env
        .run("n", &["--json", "turn", "show", "expiry"])
        .ok()
        .json();
    let listed = env.run("n", &["--json", "turn", "ls"]).ok().json();
    for t in [&ran["turn"], &skipped["turn"], &shown, &listed[0]] {
        assert_eq!(t["name"], "expiry", "{t}");
        assert_eq!(t["number"], number, "{t}");
        assert!(t.get("turn").is_none(), "{t}");
        chrono::DateTime::parse_from_rfc3339(t["started_at"].as_str().unwrap()).unwrap();
    }
    assert_eq!(keys(&ran["turn"]), keys(&shown));
}

// ---------------------------------------------------------------------------------------
// Text output

#[test]
fn lock_ls_columns_sit_under_their_headers_with_a_long_node_id() {
    let env = Env::new();
    let long = "ingest-7.eu-west-1.compute.internal-with-a-very-long-name-123456";
    env.run(long, &["lock", "run", "a", "--", "true"]).ok();
    env.run(
        "b",
        &["lock", "run", "compaction-of-everything", "--", "true"],
    )
    .ok();
    let out = env.run("viewer", &["lock", "ls"]).ok().stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let col = |l: &str, what: &str| l.find(what).unwrap_or_else(|| panic!("{what} in {l}"));
    assert_eq!(col(lines[0], "HOLDER"), col(lines[1], long), "{out}");
    assert_eq!(col(lines[0], "HOLDER"), col(lines[2], " b ") + 1, "{out}");
    assert_eq!(col(lines[0], "STATE"), col(lines[1], "released"), "{out}");
    // The expiry is the last field; tokens, drawn from the clock, may contain "20" too.
    let last_field = |l: &str| l.rfind(' ').map_or(0, |i| i + 1);
    assert_eq!(col(lines[0], "EXPIRES"), last_field(lines[2]), "{out}");
    // Right-aligned numbers end under the end of their header.
    let end = |l: &str, at: usize| l[..at].trim_end().len();
    let token_end = col(lines[0], "TOKEN") + "TOKEN".len();
    assert_eq!(end(lines[1], token_end), token_end, "{out}");
    // RFC 3339 to the millisecond.
    let expires = lines[1].split_whitespace().last().unwrap();
    assert_eq!(expires.len(), "2026-01-01T00:00:00.000Z".len(), "{expires}");
    chrono::DateTime::parse_from_rfc3339(expires).unwrap();
}

#[test]
fn turn_show_reads_the_window_as_people_write_it() {
    let env = Env::new();
    env.run("n", &["turn", "run", "expiry", "--", "true"]).ok();
    let out = env.run("n", &["turn", "show", "expiry"]).ok().stdout();
    assert!(out.contains("window:      5m ± 30s"), "{out}");
    let started = out
        .lines()
        .find_map(|l| l.strip_prefix("started at:  "))
        .unwrap();
    assert_eq!(started.len(), "2026-01-01T00:00:00.000Z".len(), "{started}");
}

#[test]
fn stream_watch_calls_streams_there_at_start_existing_and_new_ones_created() {
    let env = Env::new();
    env.run("n", &["stream", "create", "old"]).ok();
    let once = env
        .run("n", &["--json", "stream", "watch", "--once"])
        .ok()
        .json_lines();
    assert_eq!(once.len(), 1);
    assert_eq!(once[0]["event"], "existing");
    assert_eq!(once[0]["stream"]["name"], "old");
    let mut watch = env.spawn(
        "watcher",
        &["--json", "stream", "watch", "--interval", "100ms"],
    );
    let first: Value = serde_json::from_str(&watch.line()).unwrap();
    assert_eq!(
        (first["event"].as_str(), first["stream"]["name"].as_str()),
        (Some("existing"), Some("old"))
    );
    env.run("n", &["stream", "create", "new"]).ok();
    let next: Value = serde_json::from_str(&watch.line()).unwrap();
    assert_eq!(
        (next["event"].as_str(), next["stream"]["name"].as_str()),
        (Some("created"), Some("new"))
    );
    env.run("n", &["stream", "delete", "old"]).ok();
    let gone: Value = serde_json::from_str(&watch.line()).unwrap();
    assert_eq!(
        (gone["event"].as_str(), gone["stream"]["name"].as_str()),
        (Some("deleted"), Some("old"))
    );
    watch.signal(libc::SIGINT);
    assert_eq!(watch.wait(), Some(0));
    // Text: one line each, the word first.
    let text = env.run("n", &["stream", "watch", "--once"]).ok().stdout();
    assert!(text.starts_with("existing  new  version 1"), "{text}");
}

// ---------------------------------------------------------------------------------------
// log tail

#[test]
fn log_tail_n_prints_the_last_n_events() {
    let env = Env::new();
    for i in 1..=5 {
        env.run(
            "n",
            &["log", "append", "deploys", &format!(r#"{{"i":{i}}}"#)],
        )
        .ok();
    }
    let last2 = env
        .run("n", &["--json", "log", "tail", "deploys", "-n", "2"])
        .ok()
        .json_lines();
    let seqs: Vec<u64> = last2
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    // The topic's first sequence is a floor drawn from time; the last two follow it by 3, 4.
    let first = env
        .run("n", &["--json", "log", "tail", "deploys", "-n", "5"])
        .ok()
        .json_lines()[0]["sequence"]
        .as_u64()
        .unwrap();
    assert_eq!(seqs, [first + 3, first + 4]);
    assert_eq!(last2[1]["event"]["i"], 5);
    let all = env
        .run("n", &["log", "tail", "deploys", "-n", "50"])
        .ok()
        .stdout();
    assert_eq!(all.lines().count(), 5, "{all}");
    assert!(
        all.lines()
            .next()
            .unwrap()
            .trim_start()
            .starts_with(&format!("{first}  ")),
        "{all}"
    );
    let none = env.run("n", &["log", "tail", "deploys", "-n", "0"]).ok();
    assert_eq!(none.stdout(), "");
    let err = env
        .run("n", &["log", "tail", "deploys", "-n", "2", "--from", "1"])
        .exits(2)
        .stderr();
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn log_tail_of_a_topic_with_no_entries_says_so_and_exits_3() {
    let env = Env::new();
    env.run("n", &["log", "append", "deploys", "{}"]).ok();
    for args in [
        &["log", "tail", "nosuch"][..],
        &["log", "tail", "nosuch", "-n", "3"],
    ] {
        let out = env.run("n", args).exits(3);
        assert_eq!(out.stdout(), "");
        assert!(
            out.stderr().contains("log topic nosuch has no entries"),
            "{}",
            out.stderr()
        );
    }
    // A topic that has entries, read past its end, is not an error.
    env.run("n", &["log", "tail", "deploys", "--from", "9"])
        .ok();
}

// ---------------------------------------------------------------------------------------
// lock run's flock(1) flags, lock hold

/// Starts `lock hold NAME` as `node` and waits until it prints the fencing token.
fn hold(env: &Env, node: &str, name: &str, extra: &[&str]) -> (Spawned, u64) {
    let mut args = vec!["lock", "hold", name];
    args.extend_from_slice(extra);
    let h = env.spawn(node, &args);
    let token = h
        .line()
        .trim()
        .parse()
        .expect("the fencing token alone on a line");
    (h, token)
}

#[test]
fn lock_run_nonblock_wait_conflict_code_and_command_string_behave_as_flock_s() {
    let env = Env::new();
    let (mut holder, token) = hold(&env, "holder", "L", &[]);
    // A new lock's first token is a floor drawn from time (`clock::floor`).
    assert!(token > 1_000_000, "{token}");
    // -n: at once, 75 by default, naming the holder.
    let err = env
        .run("other", &["lock", "run", "L", "-n", "--", "true"])
        .exits(75)
        .stderr();
    assert!(
        err.contains(&format!("held by holder (fencing token {token}")),
        "{err}"
    );
    // -E: the conflict code of one's choice.
    env.run(
        "other",
        &["lock", "run", "L", "-n", "-E", "9", "--", "true"],
    )
    .exits(9);
    env.run(
        "other",
        &[
            "lock",
            "run",
            "L",
            "--nonblock",
            "--conflict-exit-code",
            "0",
            "--",
            "false",
        ],
    )
    .exits(0);
    // -w: waits, then gives up with the conflict code.
    env.run(
        "other",
        &["lock", "run", "L", "-w", "0.3", "-E", "4", "--", "true"],
    )
    .exits(4);
    // --json says busy with the lock's shape.
    let busy = env
        .run("other", &["--json", "lock", "run", "L", "-n", "--", "true"])
        .exits(75)
        .json();
    assert_eq!(busy["event"], "busy");
    assert_eq!(busy["lock"]["holder"], "holder");
    assert_eq!(busy["lock"]["fencing_token"], token);
    // -n with -w is a contradiction.
    env.run(
        "other",
        &["lock", "run", "L", "-n", "-w", "5", "--", "true"],
    )
    .exits(2);
    holder.signal(libc::SIGTERM);
    assert_eq!(holder.wait(), Some(0), "{}", holder.stderr());
    // -c: a shell string under the lock, with its environment.
    let out = env
        .run(
            "other",
            &[
                "lock",
                "run",
                "L",
                "-n",
                "-c",
                "echo \"$CAIRN_LOCK $CAIRN_FENCING_TOKEN\"; exit 5",
            ],
        )
        .exits(5);
    // Above the holder's token (its + 1, or drawn from time: not consecutive).
    let printed = out.stdout();
    let (lock, theirs) = printed.trim().split_once(' ').expect("lock and token");
    assert_eq!(lock, "L");
    assert!(theirs.parse::<u64>().unwrap() > token, "{printed}");
    // -c and a COMMAND after -- do not mix.
    env.run("other", &["lock", "run", "L", "-c", "true", "--", "true"])
        .exits(2);
}

#[test]
fn lock_hold_prints_the_token_holds_until_sigterm_then_releases() {
    let env = Env::new();
    let (mut h, token) = hold(&env, "maint", "schema", &["--ttl", "3s"]);
    let l = env.lock("schema");
    assert_eq!(l["state"], "held");
    assert_eq!(l["holder"], "maint");
    assert_eq!(l["fencing_token"], token);
    h.signal(libc::SIGTERM);
    assert_eq!(h.wait(), Some(0), "{}", h.stderr());
    assert!(h.rest().is_empty(), "only the token on stdout");
    let l = env.lock("schema");
    assert_eq!(l["state"], "released");
    assert!(
        h.stderr().contains("released lock schema"),
        "{}",
        h.stderr()
    );

    // --json: the acquisition, then the outcome; SIGINT works as SIGTERM does.
    let mut h = env.spawn("maint", &["--json", "lock", "hold", "schema"]);
    let acq: Value = serde_json::from_str(&h.line()).unwrap();
    assert_eq!(acq["event"], "acquired");
    assert!(acq["lock"]["fencing_token"].as_u64().unwrap() > token);
    assert_eq!(keys(&acq["lock"]), keys(&env.lock("schema")));
    h.signal(libc::SIGINT);
    assert_eq!(h.wait(), Some(0), "{}", h.stderr());
    let done: Value = serde_json::from_str(&h.line()).unwrap();
    assert_eq!(done["event"], "finished");
    assert_eq!(done["released"], true);
    assert_eq!(done["lease_lost"], false);
    assert!(done.get("exit_code").is_none(), "{done}");
    assert_eq!(env.lock("schema")["state"], "released");
}

#[test]
fn lock_hold_exits_76_when_its_lease_is_broken() {
    let env = Env::new();
    let mut h = env.spawn("maint", &["--json", "lock", "hold", "L", "--ttl", "3s"]);
    let acq: Value = serde_json::from_str(&h.line()).unwrap();
    let token = acq["lock"]["fencing_token"].to_string();
    env.run("op", &["lock", "break", "L", "--token", &token, "--force"])
        .ok();
    // It learns at its next renewal (every second at a 3 s ttl).
    assert_eq!(h.wait(), Some(76), "{}", h.stderr());
    let done: Value = serde_json::from_str(&h.line()).unwrap();
    assert_eq!(done["lease_lost"], true);
    assert_eq!(done["loss"]["reason"], "broken");
    assert_eq!(done["loss"]["by"], "op");
    assert_eq!(done["released"], false);
    assert_eq!(done["cairn_exit_code"], 76);
    let l = env.lock("L");
    assert_eq!(l["state"], "broken");
    assert_eq!(l["holder"], "maint", "a break keeps the holder");
    assert_eq!(l["broken_by"], "op");
    chrono::DateTime::parse_from_rfc3339(l["broken_at"].as_str().unwrap()).unwrap();
}

// ---------------------------------------------------------------------------------------
// lock break --token

#[test]
fn lock_break_refuses_a_token_that_is_not_the_current_lease_s() {
    let env = Env::new();
    env.run("a", &["lock", "run", "L", "--", "true"]).ok();
    let first = env.lock("L")["fencing_token"].as_u64().unwrap();
    let (mut h, token) = hold(&env, "b", "L", &[]);
    assert!(
        token > first,
        "a newer lease than the one an operator saw first"
    );
    let (first, token_s) = (first.to_string(), token.to_string());
    let before = env.lock("L");
    let out = env
        .run("op", &["lock", "break", "L", "--token", &first, "--force"])
        .exits(3);
    let err = out.stderr();
    assert!(err.contains("refusing to break lock L"), "{err}");
    assert!(err.contains(&format!("fencing token {token}")), "{err}");
    assert_eq!(env.lock("L"), before, "nothing written");
    let j = env
        .run(
            "op",
            &["--json", "lock", "break", "L", "--token", "7", "--force"],
        )
        .exits(3)
        .json();
    assert_eq!(j["outcome"], "other-lease");
    assert_eq!(j["lock"]["fencing_token"], token);
    env.run(
        "op",
        &["lock", "break", "nosuch", "--token", "1", "--force"],
    )
    .exits(3);
    // The right token breaks it; the holder exits 76.
    let j = env
        .run(
            "op",
            &[
                "--json", "lock", "break", "L", "--token", &token_s, "--force",
            ],
        )
        .ok()
        .json();
    assert_eq!(j["outcome"], "broken");
    assert_eq!(j["lock"]["state"], "broken");
    assert_eq!(j["lock"]["holder"], "b");
    assert_eq!(h.wait(), Some(76), "{}", h.stderr());
    // Breaking it again: nothing to break, exit 0.
    let again = env
        .run(
            "op",
            &["lock", "break", "L", "--token", &token_s, "--force"],
        )
        .ok();
    assert!(
        again.stderr().contains("not held (broken)"),
        "{}",
        again.stderr()
    );
}

#[test]
fn lock_break_off_a_terminal_without_force_is_refused_before_any_request() {
    let env = Env::new();
    let out = env
        .run("op", &["lock", "break", "L", "--token", "1"])
        .exits(2);
    assert!(
        out.stderr().contains("stdin is not a terminal") && out.stderr().contains("--force"),
        "{}",
        out.stderr()
    );
    assert!(!env.dir.path().join("store").exists(), "no request made");
    // --token is required: the lease to break is named, never implied.
    let err = env
        .run("op", &["lock", "break", "L", "--force"])
        .exits(2)
        .stderr();
    assert!(err.contains("--token"), "{err}");
}

/// Runs `lock break` on a terminal, answering `answer`; returns the exit code and the
/// terminal's text.
fn break_on_a_terminal(env: &Env, token: u64, answer: &str) -> (Option<i32>, String) {
    let t = token.to_string();
    let mut c = env.cairn("op", &["lock", "break", "L", "--token", &t]);
    let mut pty = Pty::attach(&mut c);
    let mut child = c.spawn().unwrap();
    pty.type_line(answer);
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("lock break hung; terminal:\n{}", pty.output());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), pty.output())
}

#[test]
fn lock_break_on_a_terminal_asks_and_breaks_only_on_yes() {
    let env = Env::new();
    let (mut h, token) = hold(&env, "b", "L", &[]);
    let (code, screen) = break_on_a_terminal(&env, token, "n");
    assert_eq!(code, Some(1), "{screen}");
    assert!(
        screen.contains(&format!("Break lease {token} of lock L, held by b?")),
        "{screen}"
    );
    assert!(screen.contains("[y/N]"), "{screen}");
    assert!(screen.contains("not broken"), "{screen}");
    assert_eq!(env.lock("L")["state"], "held");
    let (code, screen) = break_on_a_terminal(&env, token, "y");
    assert_eq!(code, Some(0), "{screen}");
    assert_eq!(env.lock("L")["state"], "broken");
    assert_eq!(h.wait(), Some(76), "{}", h.stderr());
}
