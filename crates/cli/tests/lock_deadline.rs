//! `lock run` checks the lease's give-up time before it starts COMMAND (issue #18, item 5):
//! an acquire whose answer came back after it (a slow store, a `--timeout` longer than the
//! ttl) does not start COMMAND on a lease that may already be another node's.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::cli::{cairn, Run};
use common::{s3_skipped, Backend};

/// A TCP proxy to `target` that holds back the answer to every PUT of a key containing
/// `slow` for `delay`: a store that is slow to answer a lock's writes, and only those.
fn slow_proxy(target: &str, slow: &'static str, delay: Duration) -> String {
    let target = target.trim_start_matches("http://").to_string();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        while let Ok((client, _)) = listener.accept() {
            let Ok(upstream) = TcpStream::connect(&target) else {
                continue;
            };
            // Set when a slow PUT went up this connection; its answer is the next to come down
            // (HTTP/1.1 clients do not pipeline).
            let hold = Arc::new(AtomicBool::new(false));
            let (mut from, mut to) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            let up = Arc::clone(&hold);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n) = from.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let chunk = &buf[..n];
                    let is = |s: &[u8]| chunk.windows(s.len()).any(|w| w == s);
                    if chunk.starts_with(b"PUT ") && is(slow.as_bytes()) {
                        up.store(true, Ordering::SeqCst);
                    }
                    if to.write_all(chunk).is_err() {
                        break;
                    }
                }
                let _ = to.shutdown(std::net::Shutdown::Write);
            });
            let (mut from, mut to) = (upstream, client);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n) = from.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if hold.swap(false, Ordering::SeqCst) {
                        std::thread::sleep(delay);
                    }
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = to.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}

#[test]
fn lock_run_does_not_start_a_command_once_the_lease_is_past_its_give_up_time() {
    if s3_skipped() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let endpoint = Backend::LocalStack.endpoint().unwrap();
    // ttl 1 s: the holder gives up 600 ms after sending the acquire (1 s − 66 ms margin −
    // 333 ms grace); the store answers it after 1.5 s.
    let proxy = slow_proxy(&endpoint, "/locks/late/", Duration::from_millis(1500));
    let store = format!("s3://cairn-test/late-{}", uuid::Uuid::new_v4());
    let marker = dir.path().join("started");
    let out = Run(cairn(dir.path())
        .env("AWS_ENDPOINT_URL", &proxy)
        .args(["--store", &store, "--node", "slow"])
        .args(["lock", "run", "late", "--ttl", "1s", "--json", "--"])
        .args(["touch", marker.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap());
    assert_eq!(out.code(), Some(76), "{}", out.stderr());
    assert!(
        !marker.exists(),
        "COMMAND was started on a lease past its give-up time\n{}",
        out.stderr()
    );
    assert!(
        out.stderr().contains("the command was not started"),
        "{}",
        out.stderr()
    );
    let lines = out.json_lines();
    let finished = lines.last().unwrap();
    assert_eq!(finished["event"], "finished", "{lines:?}");
    assert!(finished["exit_code"].is_null(), "{finished}");
    assert_eq!(finished["lease_lost"], true, "{finished}");
    assert_eq!(finished["cairn_exit_code"], 76, "{finished}");
}
