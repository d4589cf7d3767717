//! Many processes run `cairn lock run` against LocalStack (and against Ceph RGW and Azurite) at once,
//! each logging enter and exit with its fencing token. Some holders are killed with SIGKILL
//! mid-lease. A checker proves that critical sections never overlap, that tokens strictly
//! rise in enter order, and that a killed holder's lock is taken over only after its ttl.

mod common;

use std::time::Duration;

use common::{parse_log, s3_skipped, Backend, LogLine};

const TTL_SECS: f64 = 4.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_processes_never_overlap_and_killed_holders_are_taken_over_after_the_ttl() {
    many_processes_on(Backend::LocalStack).await;
}

/// The same on RGW, with whatever strategy each process's probe picks there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_rgw_many_processes_never_overlap_and_killed_holders_are_taken_over_after_the_ttl() {
    many_processes_on(Backend::Rgw).await;
}

/// The same on Azurite, through an `az://` store URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_azurite_many_processes_never_overlap_and_killed_holders_are_taken_over_after_the_ttl() {
    many_processes_on(Backend::Azurite).await;
}

async fn many_processes_on(backend: Backend) {
    if s3_skipped() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("critical.log");
    let prefix = format!("procs-{}", uuid::Uuid::new_v4());
    let store = backend.store_url(&prefix);
    // Each worker runs three critical sections. Workers 0 and 3 kill their own cairn with
    // SIGKILL in their second round, after logging their exit: the lease stays held in the
    // store with nobody renewing it.
    let normal = r#"echo "enter $CAIRN_FENCING_TOKEN $CAIRN_NODE $(date +%s%N)" >> "$LOG"; sleep 0.2; echo "exit $CAIRN_FENCING_TOKEN $CAIRN_NODE $(date +%s%N)" >> "$LOG""#;
    let killer = r#"echo "enter $CAIRN_FENCING_TOKEN $CAIRN_NODE $(date +%s%N)" >> "$LOG"; sleep 0.2; echo "killed $CAIRN_FENCING_TOKEN $CAIRN_NODE $(date +%s%N)" >> "$LOG"; kill -9 $PPID; sleep 5"#;
    let workers = 6;
    let mut children = Vec::new();
    for w in 0..workers {
        let script = format!(
            r#"for round in 1 2 3; do
                 if [ "$round" = 2 ] && {{ [ {w} = 0 ] || [ {w} = 3 ]; }}; then body='{killer}'; else body='{normal}'; fi
                 "$CAIRN_BIN" lock run crit --ttl {TTL_SECS}s --grace 1s --wait 120s -- sh -c "$body"
                 code=$?
                 if [ $code -ne 0 ] && [ $code -ne 137 ]; then echo "worker {w} round $round exit $code" >&2; exit 1; fi
               done"#
        );
        let child = common::cairn_worker_on(backend, &store, &format!("worker-{w}"), &log, &script)
            .spawn()
            .unwrap();
        children.push(child);
    }
    for mut c in children {
        let status = tokio::time::timeout(Duration::from_secs(300), c.wait())
            .await
            .expect("workers finish within 5 minutes")
            .unwrap();
        assert!(status.success(), "a worker failed: {status:?}");
    }

    let lines = parse_log(&log);
    let enters: Vec<&LogLine> = lines.iter().filter(|l| l.what == "enter").collect();
    assert_eq!(enters.len(), workers * 3, "{lines:#?}");
    assert_eq!(lines.iter().filter(|l| l.what == "killed").count(), 2);
    // Critical sections alternate enter / (exit | killed) with the same token and node:
    // nobody entered while another was inside.
    for pair in lines.chunks(2) {
        let [enter, leave] = pair else {
            panic!("unpaired line {pair:?}")
        };
        assert_eq!(enter.what, "enter", "overlap: {pair:?}");
        assert!(
            leave.what == "exit" || leave.what == "killed",
            "overlap: {pair:?}"
        );
        assert_eq!(
            (enter.number, &enter.node),
            (leave.number, &leave.node),
            "overlap: {pair:?}"
        );
    }
    // Tokens strictly rise in enter order.
    for w in enters.windows(2) {
        assert!(w[0].number < w[1].number, "tokens must rise: {w:?}");
    }
    // After a killed holder, the next holder entered only once the ttl had run out.
    for (i, l) in lines.iter().enumerate() {
        if l.what != "killed" {
            continue;
        }
        let enter_of_killed = &lines[i - 1];
        let next = lines
            .get(i + 1)
            .expect("someone takes over after a killed holder");
        let gap = (next.at_ns - enter_of_killed.at_ns) as f64 / 1e9;
        assert!(
            gap >= TTL_SECS - 0.5,
            "lock of killed holder {} taken over after only {gap:.2}s",
            l.node
        );
        assert!(next.number > l.number);
    }
}
