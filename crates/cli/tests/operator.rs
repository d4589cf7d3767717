//! What an operator sees: errors in one line that name the cause and the fix, with their exit
//! codes and, under `--json`, as one JSON object; read-only commands that write nothing; the
//! default store found as git finds `.git`; a node id that survives restarts. Every test runs
//! the `cairn` binary as a process and looks at its stdout, stderr and exit code.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cli::{cairn, Run};
use common::{s3_skipped, Backend};

/// `cairn` against an S3 endpoint.
fn cairn_s3(dir: &Path, endpoint: &str) -> Command {
    let mut c = cairn(dir);
    c.env("AWS_ENDPOINT_URL", endpoint);
    c
}

fn run(c: &mut Command, args: &[&str]) -> Run {
    Run(c.args(args).output().expect("cairn runs"))
}

/// The one line the error is, asserting there is exactly one.
fn one_line(out: &Run) -> String {
    let err = out.stderr();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got:\n{err}");
    lines[0].to_string()
}

/// The `{"error": {…}}` object on stdout, asserting it is the only output there.
fn json_error(out: &Run) -> serde_json::Value {
    let text = out.stdout();
    let v: serde_json::Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {text:?}"));
    let obj = v["error"].as_object().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(obj.len(), 3, "{v}");
    assert_eq!(
        v["error"]["exit"].as_i64(),
        out.code().map(i64::from),
        "{v}"
    );
    v["error"].clone()
}

fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

fn s3_endpoint() -> String {
    Backend::LocalStack.endpoint().unwrap()
}

// ---------------------------------------------------------------------------------------
// Errors in one line

#[test]
fn a_wrong_bucket_is_one_line_naming_the_bucket_and_exits_2() {
    if s3_skipped() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bucket = format!(
        "cairn-nosuch-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let store = format!("s3://{bucket}/p");
    // A command that only looks, and one that writes (it would probe, then record).
    for args in [
        &["--store", &store, "lock", "ls"][..],
        &["--store", &store, "stream", "create", "s"],
    ] {
        let out = run(&mut cairn_s3(dir.path(), &s3_endpoint()), args);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr());
        let line = one_line(&out);
        assert!(
            line.starts_with(&format!("cairn: bucket {bucket} does not exist: create it")),
            "{line}"
        );
        assert!(
            !line.contains("<?xml") && !line.contains("_probe"),
            "{line}"
        );
        assert!(out.stdout().is_empty());
        let out = run(
            &mut cairn_s3(dir.path(), &s3_endpoint()),
            &[&["--json"], args].concat(),
        );
        let e = json_error(&out);
        assert_eq!(e["kind"], "no-such-bucket");
        assert_eq!(e["exit"], 2);
    }
}

#[test]
fn missing_credentials_exit_2_before_any_request_naming_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let mut c = cairn_s3(dir.path(), "http://127.0.0.1:1");
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        c.env_remove(var);
    }
    c.env("AWS_CONFIG_FILE", &empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty);
    let out = run(
        &mut c,
        &["--store", "s3://cairn-test/x", "stream", "create", "s"],
    );
    assert_eq!(out.code(), Some(2), "{}", out.stderr());
    // Named before any request: the endpoint (nothing listens on port 1) was never tried.
    let line = one_line(&out);
    assert!(
        line.starts_with(
            "cairn: no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY"
        ),
        "{line}"
    );
    let out = run(&mut c, &["--json"]);
    let e = json_error(&out);
    assert_eq!(e["kind"], "no-credentials");
    assert_eq!(e["exit"], 2);
}

#[test]
fn a_refused_connection_names_the_endpoint_and_is_not_an_unknown_write() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--store", "s3://cairn-test/x", "lock", "ls"][..],
        &["--store", "s3://cairn-test/x", "stream", "create", "s"],
    ] {
        let out = run(&mut cairn_s3(dir.path(), "http://127.0.0.1:1"), args);
        assert_eq!(out.code(), Some(1), "{args:?}: {}", out.stderr());
        let line = one_line(&out);
        assert!(
            line.starts_with("cairn: cannot connect to http://127.0.0.1:1 (connection refused)"),
            "{line}"
        );
        assert!(!line.contains("unknown"), "{line}");
        let out = run(
            &mut cairn_s3(dir.path(), "http://127.0.0.1:1"),
            &[&["--json"], args].concat(),
        );
        assert_eq!(json_error(&out)["kind"], "unreachable");
    }
}

/// Accepts connections and never answers; holds them open for as long as it lives.
fn silent_endpoint() -> (String, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepting = listener.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((s, _)) = accepting.accept() {
            held.push(s);
        }
    });
    (format!("http://{addr}"), listener)
}

#[test]
fn an_endpoint_that_never_answers_fails_after_the_timeout_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, _listener) = silent_endpoint();
    let start = Instant::now();
    let out = run(
        &mut cairn_s3(dir.path(), &endpoint),
        &[
            "--timeout",
            "1s",
            "--store",
            "s3://cairn-test/x",
            "lock",
            "ls",
        ],
    );
    let took = start.elapsed();
    assert_eq!(out.code(), Some(1), "{}", out.stderr());
    let line = one_line(&out);
    assert!(
        line.starts_with(&format!("cairn: no answer from {endpoint} within 1s")),
        "{line}"
    );
    assert!(line.contains("--timeout"), "{line}");
    // The default (10 s) would take ten times as long.
    assert!(took < Duration::from_secs(8), "took {took:?}");

    let mut c = cairn_s3(dir.path(), &endpoint);
    c.env("CAIRN_TIMEOUT", "1s");
    let out = run(
        &mut c,
        &["--json", "--store", "s3://cairn-test/x", "stream", "ls"],
    );
    let e = json_error(&out);
    assert_eq!(e["kind"], "timeout");
    assert_eq!(e["exit"], 1);

    let out = run(&mut cairn(dir.path()), &["--timeout", "0s", "lock", "ls"]);
    assert_eq!(out.code(), Some(2));
    assert!(one_line(&out).contains("allowed from 100ms to 1h"));
}

#[test]
fn json_errors_are_one_object_with_kind_message_and_exit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = run(&mut cairn(d), &["--json", "lock", "show", "x"]);
    let e = json_error(&out);
    assert_eq!(e["kind"], "no-store");
    assert_eq!(e["exit"], 2);
    assert!(e["message"]
        .as_str()
        .unwrap()
        .starts_with("no cairn store here"));
    // The human line is on stderr as well.
    assert!(one_line(&out).starts_with("cairn: no cairn store here"));

    let out = run(
        &mut cairn(d),
        &["--json", "lock", "run", "bad/name", "--", "true"],
    );
    assert_eq!(json_error(&out)["kind"], "invalid-name");
    // Usage errors that clap finds, too.
    let out = run(
        &mut cairn(d),
        &["lock", "run", "x", "--ttl", "0s", "--json", "--", "true"],
    );
    let e = json_error(&out);
    assert_eq!(e["kind"], "usage");
    assert_eq!(e["exit"], 2);
    let out = run(&mut cairn(d), &["--json", "lock", "frobnicate"]);
    assert_eq!(json_error(&out)["kind"], "usage");
    assert!(is_empty_dir(d), "an error must leave nothing behind");
}

// ---------------------------------------------------------------------------------------
// Warnings during an outage

/// A TCP proxy to `target` that can be cut: then it refuses new connections and closes the
/// open ones, as a store that went down.
struct Proxy {
    addr: String,
    listener: Option<TcpListener>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn to(target: &str) -> Self {
        let target = target.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let accepting = listener.try_clone().unwrap();
        let conns = Arc::clone(&open);
        std::thread::spawn(move || {
            while let Ok((client, _)) = accepting.accept() {
                let Ok(upstream) = TcpStream::connect(&target) else {
                    continue;
                };
                let mut list = conns.lock().unwrap();
                for (from, to) in [(&client, &upstream), (&upstream, &client)] {
                    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
                list.push(client);
                list.push(upstream);
            }
        });
        Self {
            addr,
            listener: Some(listener),
            open,
        }
    }

    /// Refuses new connections and closes the open ones.
    fn cut(&mut self) {
        if let Some(l) = self.listener.take() {
            // SAFETY: shutdown(2) on a socket we own, to wake the accepting thread.
            unsafe { libc::shutdown(std::os::fd::AsRawFd::as_raw_fd(&l), libc::SHUT_RDWR) };
        }
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

#[test]
fn warnings_during_an_outage_are_single_short_lines_never_repeated() {
    if s3_skipped() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut proxy = Proxy::to(&s3_endpoint());
    let store = format!("s3://cairn-test/outage-{}", uuid::Uuid::new_v4());
    let mut holder = cairn_s3(dir.path(), &proxy.addr)
        .args(["--timeout", "1s", "--store", &store, "--node", "holder"])
        .args(["lock", "run", "x", "--ttl", "15s", "--grace", "1s", "--"])
        .args(["sh", "-c", "echo working; exec sleep 60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The command runs: the lock is held. Then the store goes away. Renewals (from 5 s on)
    // fail, and are retried every second, until the holder gives the lease up (12 s after
    // its last renewal), stops the command and exits by itself.
    let mut first = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "working\n");
    proxy.cut();
    let mut err = String::new();
    holder
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = holder.wait().unwrap();
    // A lease lost to an outage is exit 76, whichever stopped the command first: cairn at
    // its give-up time, or the guard at the same moment (the command's own 143 once won).
    assert_eq!(status.code(), Some(76), "{status:?}\n{err}");
    let renewals: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("renewal failed"))
        .collect();
    assert_eq!(renewals.len(), 1, "one warning for the outage:\n{err}");
    assert!(renewals[0].contains(&proxy.addr), "{err}");
    for line in err.lines() {
        assert!(line.len() < 400, "a long line: {line}");
        assert!(
            !line.contains("<?xml") && !line.contains("Error performing"),
            "{line}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Read-only commands write nothing

const LOOKING: &[&[&str]] = &[
    &["lock", "ls"],
    &["lock", "show", "x"],
    &["node", "ls"],
    &["turn", "ls"],
    &["turn", "show", "x"],
    &["stream", "ls"],
    &["stream", "show", "x"],
    &["stream", "watch", "--once"],
    &["log", "tail", "t"],
    &["record", "get", "ns", "k"],
];

#[test]
fn read_only_verbs_in_an_empty_directory_create_nothing_and_say_no_store_here() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    for args in LOOKING {
        let out = run(&mut cairn(&sub), args);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr());
        let line = one_line(&out);
        let looked = format!(
            "cairn: no cairn store here (looked in {}, {}): ",
            sub.display(),
            dir.path().display()
        );
        assert!(line.starts_with(&looked), "{args:?}: {line}");
        assert!(line.contains("--store"), "{line}");
        assert!(out.stdout().is_empty(), "{args:?}");
        assert!(is_empty_dir(&sub), "{args:?} created something");
    }
    // A store named but not there is not created either.
    let missing = dir.path().join("missing");
    let url = format!("file://{}", missing.display());
    let out = run(&mut cairn(&sub), &["--store", &url, "lock", "ls"]);
    assert_eq!(out.code(), Some(2));
    assert!(
        one_line(&out).starts_with(&format!("cairn: no cairn store at {url}")),
        "{}",
        out.stderr()
    );
    assert!(!missing.exists());
}

#[test]
fn read_only_verbs_on_a_fresh_s3_prefix_write_nothing() {
    if s3_skipped() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("ro-{}", uuid::Uuid::new_v4());
    let store = format!("s3://{}/{prefix}", common::BUCKET);
    for args in LOOKING {
        let out = run(
            &mut cairn_s3(dir.path(), &s3_endpoint()),
            &[&["--store", &store], *args].concat(),
        );
        let code = out.code();
        assert!(
            code == Some(0) || code == Some(3),
            "{args:?}: {}",
            out.stderr()
        );
    }
    use object_store::ObjectStore;
    let s3 = common::s3_store(&s3_endpoint());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listed: Vec<_> = rt.block_on(async {
        use futures::TryStreamExt;
        s3.list(Some(&object_store::path::Path::from(prefix.as_str())))
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
    });
    assert!(listed.is_empty(), "read-only commands wrote {listed:?}");
    assert!(is_empty_dir(dir.path()));
}

// ---------------------------------------------------------------------------------------
// The default store

#[test]
fn a_writing_command_creates_the_store_here_and_says_so_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = run(&mut cairn(d), &["lock", "run", "x", "--", "true"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    assert_eq!(
        out.stderr(),
        format!(
            "cairn: created cairn store at {}\n",
            d.join(".cairn").display()
        )
    );
    assert!(d.join(".cairn").is_dir());
    let out = run(&mut cairn(d), &["lock", "run", "x", "--", "true"]);
    assert_eq!(out.code(), Some(0));
    assert_eq!(out.stderr(), "", "said only once");
}

#[test]
fn a_command_in_a_subdirectory_uses_the_parents_store() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path();
    let deep = top.join("a/b");
    std::fs::create_dir_all(&deep).unwrap();
    let out = run(&mut cairn(top), &["stream", "create", "up-here"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr());

    let out = run(&mut cairn(&deep), &["--json", "stream", "show", "up-here"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    let shown = out.json();
    assert_eq!(shown["name"], "up-here");

    let out = run(&mut cairn(&deep), &["stream", "create", "down-there"]);
    assert_eq!(out.code(), Some(0));
    assert_eq!(out.stderr(), "", "no store is created below one");
    assert!(!deep.join(".cairn").exists() && !top.join("a/.cairn").exists());
    let out = run(&mut cairn(top), &["--json", "stream", "ls"]);
    let all = out.json();
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["down-there", "up-here"]);

    // --store and CAIRN_STORE override the search.
    let other = tempfile::tempdir().unwrap();
    let url = format!("file://{}", other.path().display());
    let out = run(
        &mut cairn(&deep),
        &["--store", &url, "stream", "show", "up-here"],
    );
    assert_eq!(out.code(), Some(3), "{}", out.stderr());
    let mut c = cairn(&deep);
    c.env("CAIRN_STORE", &url);
    assert_eq!(run(&mut c, &["stream", "show", "up-here"]).code(), Some(3));
}

// ---------------------------------------------------------------------------------------
// Node ids

/// The node id a `lock run` command sees in `CAIRN_NODE`.
fn node_seen(c: &mut Command, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["lock", "run", "n", "--", "sh", "-c", "echo \"$CAIRN_NODE\""]);
    let out = run(c, &all);
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    out.stdout().trim().to_string()
}

#[test]
fn the_default_node_id_is_the_host_name_the_same_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let host = cairn::default_node_id().to_string();
    assert!(!host.is_empty());
    assert_eq!(node_seen(&mut cairn(d), &[]), host);
    assert_eq!(
        node_seen(&mut cairn(d), &[]),
        host,
        "stable across restarts"
    );

    // Asked for, the process id is appended: each process its own id.
    let with_pid = |c: &mut Command, args: &[&str], base: &str| {
        let id = node_seen(c, args);
        let pid = id
            .strip_prefix(&format!("{base}-"))
            .unwrap_or_else(|| panic!("{id:?} is not {base}-PID"));
        assert!(pid.parse::<u32>().is_ok(), "{id}");
        id
    };
    let a = with_pid(&mut cairn(d), &["--node-pid"], &host);
    let b = with_pid(&mut cairn(d), &["--node-pid"], &host);
    assert_ne!(a, b, "two processes, two ids");
    let mut c = cairn(d);
    c.env("CAIRN_NODE_PID", "true");
    with_pid(&mut c, &[], &host);
    with_pid(&mut cairn(d), &["--node", "web", "--node-pid"], "web");
    assert_eq!(node_seen(&mut cairn(d), &["--node", "web"]), "web");
}

/// Starts `node heartbeat` with `args`; returns it and its `joined` event, once it has joined.
fn heartbeat(
    d: &Path,
    args: &[&str],
) -> (
    std::process::Child,
    BufReader<std::process::ChildStdout>,
    serde_json::Value,
) {
    let mut p = cairn(d)
        .args(args)
        .args(["node", "heartbeat", "--interval", "200ms", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kept open until the process exits: it prints `left` on stdout when stopped.
    let mut out = BufReader::new(p.stdout.take().unwrap());
    let mut joined = String::new();
    out.read_line(&mut joined).unwrap();
    let joined = serde_json::from_str(&joined).unwrap_or_else(|e| panic!("{e}: {joined:?}"));
    (p, out, joined)
}

#[test]
fn two_heartbeats_on_one_host_share_the_default_id_and_the_second_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let host = cairn::default_node_id().to_string();
    let (first, first_out, joined) = heartbeat(d, &[]);
    assert_eq!(joined["node"], host);
    let second = run(&mut cairn(d), &["node", "heartbeat", "--interval", "200ms"]);
    assert_eq!(second.code(), Some(78), "{}", second.stderr());
    // With --node-pid each process has an id of its own.
    let (own, own_out, joined) = heartbeat(d, &["--node-pid"]);
    assert_eq!(joined["node"], format!("{host}-{}", own.id()));
    for (mut p, _out) in [(first, first_out), (own, own_out)] {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(p.id() as libc::pid_t, libc::SIGTERM) };
        assert!(p.wait().unwrap().success());
    }
}
