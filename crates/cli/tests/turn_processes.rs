//! Many processes run `cairn turn run` against LocalStack (and against Ceph RGW and Azurite)
//! over several short windows: one alone first, then six in shell loops of one-shot
//! invocations (as cron would, each stopping once it has run a turn) and two in `--loop` mode. Every run logs start and end with its turn number; a checker proves each turn number
//! ran exactly once, in order, never overlapping, and never before its window.

mod common;

use std::time::Duration;

use common::{parse_log, s3_skipped, Backend, LogLine};

const EVERY_SECS: f64 = 2.0;
const JITTER_SECS: f64 = 0.5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_taking_turns_run_each_turn_number_exactly_once() {
    processes_taking_turns_on(Backend::LocalStack).await;
}

/// The same on RGW, with whatever strategy each process's probe picks there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_rgw_processes_taking_turns_run_each_turn_number_exactly_once() {
    processes_taking_turns_on(Backend::Rgw).await;
}

/// The same on Azurite, through an `az://` store URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_azurite_processes_taking_turns_run_each_turn_number_exactly_once() {
    processes_taking_turns_on(Backend::Azurite).await;
}

async fn processes_taking_turns_on(backend: Backend) {
    if s3_skipped() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs.log");
    let store = backend.store_url(&format!("turn-procs-{}", uuid::Uuid::new_v4()));
    let job = r#"echo "start $CAIRN_TURN $CAIRN_NODE $(date +%s%N)" >> "$LOG"; sleep 0.3; echo "end $CAIRN_TURN $CAIRN_NODE $(date +%s%N)" >> "$LOG""#;
    // One turn first, alone, so that every later turn is a handoff from another process's
    // record: the spread below holds by construction, not by which process the scheduler
    // favours (on 2 busy cores the one-shot that polls fastest can win every window).
    let first = common::cairn_worker_on(
        backend,
        &store,
        "first",
        &log,
        &format!(
            r#"exec "$CAIRN_BIN" turn run sweep --every {EVERY_SECS}s --jitter {JITTER_SECS}s -- sh -c '{job}'"#
        ),
    )
    .status()
    .await
    .unwrap();
    assert!(first.success(), "the first turn failed: {first:?}");
    assert_eq!(parse_log(&log).len(), 2, "the first turn ran");
    let run_for_secs = 16;
    let mut one_shots = Vec::new();
    for w in 0..6 {
        let script = format!(
            r#"end=$(( $(date +%s) + {run_for_secs} ))
               while [ "$(date +%s)" -lt "$end" ]; do
                 "$CAIRN_BIN" turn run sweep --every {EVERY_SECS}s --jitter {JITTER_SECS}s -- sh -c '{job}' || {{ echo "worker {w} failed: $?" >&2; exit 1; }}
                 grep -q "^start [0-9]* cron-{w} " "$LOG" && exit 0
                 sleep 0.{w}
               done"#
        );
        one_shots.push(
            common::cairn_worker_on(backend, &store, &format!("cron-{w}"), &log, &script)
                .spawn()
                .unwrap(),
        );
    }
    let mut loopers = Vec::new();
    for w in 0..2 {
        let script = format!(
            r#"exec "$CAIRN_BIN" turn run sweep --loop --every {EVERY_SECS}s --jitter {JITTER_SECS}s -- sh -c '{job}'"#
        );
        loopers.push(
            common::cairn_worker_on(backend, &store, &format!("loop-{w}"), &log, &script)
                .spawn()
                .unwrap(),
        );
    }
    for mut c in one_shots {
        let status = tokio::time::timeout(Duration::from_secs(120), c.wait())
            .await
            .expect("one-shot workers finish")
            .unwrap();
        assert!(status.success(), "a one-shot worker failed: {status:?}");
    }
    for c in &loopers {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(c.id().unwrap() as libc::pid_t, libc::SIGTERM) };
    }
    for mut c in loopers {
        let status = tokio::time::timeout(Duration::from_secs(30), c.wait())
            .await
            .expect("--loop workers stop on SIGTERM")
            .unwrap();
        assert!(status.success(), "a --loop worker failed: {status:?}");
    }

    let mut lines = parse_log(&log);
    // A `--loop` worker that the SIGTERM above stopped in the middle of its job leaves a
    // last start with no end: the test's own interruption, not an overlap. Its turn still
    // counts.
    let interrupted = lines
        .last()
        .filter(|l| l.what == "start" && l.node.starts_with("loop-"))
        .cloned();
    if interrupted.is_some() {
        lines.pop();
    }
    let starts: Vec<&LogLine> = lines
        .iter()
        .filter(|l| l.what == "start")
        .chain(interrupted.as_ref())
        .collect();
    assert!(starts.len() >= 5, "too few turns ran: {lines:#?}");
    // Runs never overlap: start and end alternate, with the same turn and node.
    for pair in lines.chunks(2) {
        let [s, e] = pair else {
            panic!("unpaired line {pair:?}")
        };
        assert_eq!(
            (s.what.as_str(), e.what.as_str()),
            ("start", "end"),
            "overlap: {pair:?}"
        );
        assert_eq!(
            (s.number, &s.node),
            (e.number, &e.node),
            "overlap: {pair:?}"
        );
    }
    // Each turn number exactly once, in order: numbers are drawn from time (above the last,
    // not consecutive; `Manifests::next_start`), so a skipped window shows in the gaps below.
    for w in starts.windows(2) {
        assert!(w[1].number > w[0].number, "turn numbers: {starts:#?}");
    }
    // Never before the window minus the jitter. The times are the jobs' own starts, each its
    // claim plus a process start-up that 2 busy cores can stretch, hence 0.9 s of slack: a
    // window ignored would show as turns one job (0.3 s) apart, still below the bound.
    for w in starts.windows(2) {
        let gap = (w[1].at_ns - w[0].at_ns) as f64 / 1e9;
        assert!(
            gap >= EVERY_SECS - JITTER_SECS - 0.9,
            "turn {} started {gap:.2}s after turn {}",
            w[1].number,
            w[0].number
        );
    }
    // Handoffs: the first turn was "first"'s, every later one another process's, and no
    // one-shot ran twice.
    assert_eq!(starts[0].node, "first", "turns: {starts:#?}");
    assert!(
        starts[1..].iter().all(|s| s.node != "first"),
        "turns: {starts:#?}"
    );
    for w in 0..6 {
        let node = format!("cron-{w}");
        let runs = starts.iter().filter(|s| s.node == node).count();
        assert!(
            runs <= 1,
            "{node} ran {runs} turns after it stopped: {starts:#?}"
        );
    }
}
