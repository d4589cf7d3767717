//! Running the `cairn` binary in a test: a hermetic command, a finished run, and a running
//! process whose stdout arrives line by line. Nothing here sleeps to synchronise: a test
//! waits for the line a process prints, with a generous deadline, so that a hang fails
//! instead of blocking the suite.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Generous: CI runs the suite on two busy cores.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// `cairn` in `dir`, with no store, node, strategy or log filter from the environment, and
/// the search for a default store kept inside the temporary directories (a stray
/// `/tmp/.cairn` is never found). Static AWS credentials and region, for S3 URLs.
pub fn cairn(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.current_dir(dir)
        .env_remove("CAIRN_STORE")
        .env_remove("CAIRN_NODE")
        .env_remove("CAIRN_NODE_PID")
        .env_remove("CAIRN_STRATEGY")
        .env_remove("CAIRN_AUDIT_TOPIC")
        .env_remove("CAIRN_TIMEOUT")
        .env_remove("CAIRN_LOG")
        .env("CAIRN_CEILING_DIRECTORIES", std::env::temp_dir())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

/// A temporary directory holding a `file://` store, and cairn commands run in it.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The store's directory.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// The store's URL.
    pub fn store(&self) -> String {
        format!("file://{}", self.root().display())
    }

    /// `cairn --store file://… --node NODE ARGS…`, stdin closed.
    pub fn cairn(&self, node: &str, args: &[&str]) -> Command {
        let mut c = cairn(self.dir.path());
        c.stdin(Stdio::null())
            .args(["--store", &self.store(), "--node", node])
            .args(args);
        c
    }

    /// Runs cairn to its end.
    pub fn run(&self, node: &str, args: &[&str]) -> Run {
        Run(self.cairn(node, args).output().unwrap())
    }

    /// Starts cairn with its stdout read line by line.
    pub fn spawn(&self, node: &str, args: &[&str]) -> Spawned {
        Spawned::start(self.cairn(node, args))
    }
}

/// A finished cairn run.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.0.status.code()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    /// Asserts exit 0.
    pub fn ok(self) -> Self {
        self.exits(0)
    }

    /// Asserts the exit code.
    pub fn exits(self, code: i32) -> Self {
        assert_eq!(
            self.code(),
            Some(code),
            "stdout: {}\nstderr: {}",
            self.stdout(),
            self.stderr()
        );
        self
    }

    /// stdout as one JSON value.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout().trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout()))
    }

    /// stdout as JSON lines.
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

/// A running cairn whose stdout lines arrive on a channel; killed if dropped still running.
pub struct Spawned {
    pub child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Spawned {
    pub fn start(mut c: Command) -> Self {
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::<Mutex<String>>::default();
        let (mut err, sink) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self {
            child,
            lines,
            stderr,
        }
    }

    /// The next line of stdout (fails the test after the deadline or at end of output).
    pub fn line(&self) -> String {
        self.lines.recv_timeout(DEADLINE).unwrap_or_else(|e| {
            panic!(
                "no line from cairn ({e}); stderr: {}",
                self.stderr.lock().unwrap()
            )
        })
    }

    /// Lines up to and including the first one `stop` accepts.
    pub fn lines_until(&self, stop: impl Fn(&str) -> bool) -> Vec<String> {
        let mut v = Vec::new();
        loop {
            let l = self.line();
            let done = stop(&l);
            v.push(l);
            if done {
                return v;
            }
        }
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid, sig) };
    }

    /// Waits for the exit (bounded) and returns the code.
    pub fn wait(&mut self) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(
                start.elapsed() < DEADLINE,
                "cairn did not exit; stderr: {}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The rest of stdout, once it has exited.
    pub fn rest(&self) -> Vec<String> {
        let mut v = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            v.push(l);
        }
        v
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pseudo-terminal of 24 rows by 80 columns for a command's stdin, stdout and stderr: the
/// test holds the master side, and everything the command writes is collected.
pub struct Pty {
    master: std::fs::File,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Pty {
    /// Opens a pty and sets `command` up to run on it.
    pub fn attach(command: &mut Command) -> Pty {
        use std::os::fd::{FromRawFd, OwnedFd};
        // SAFETY: the usual posix_openpt sequence; every descriptor is checked and owned.
        let (master, slave) = unsafe {
            let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            assert!(m >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
            let master = std::fs::File::from_raw_fd(m);
            assert_eq!(libc::grantpt(m), 0);
            assert_eq!(libc::unlockpt(m), 0);
            let size = libc::winsize {
                ws_row: 24,
                ws_col: 80,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            assert_eq!(libc::ioctl(m, libc::TIOCSWINSZ, &size), 0);
            let mut name = [0 as libc::c_char; 128];
            assert_eq!(libc::ptsname_r(m, name.as_mut_ptr(), name.len()), 0);
            let s = libc::open(
                name.as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            );
            assert!(
                s >= 0,
                "open pty slave: {}",
                std::io::Error::last_os_error()
            );
            (master, OwnedFd::from_raw_fd(s))
        };
        command
            .stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave);
        // Drain the terminal's output so no writer blocks.
        let output = Arc::<Mutex<Vec<u8>>>::default();
        let (mut reader, sink) = (master.try_clone().unwrap(), output.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty { master, output }
    }

    /// [`Pty::attach`], with the pty as the command's controlling terminal, in a session of
    /// its own whose foreground group is the command's (as a shell's job would run).
    pub fn attach_controlling(command: &mut Command) -> Pty {
        use std::os::unix::process::CommandExt;
        let pty = Pty::attach(command);
        // SAFETY: setsid and ioctl are async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        pty
    }

    /// Types `bytes`; the terminal keeps them until the command reads.
    pub fn type_in(&mut self, bytes: &[u8]) {
        std::io::Write::write_all(&mut self.master, bytes).unwrap();
    }

    /// Types a line.
    pub fn type_line(&mut self, s: &str) {
        self.type_in(format!("{s}\n").as_bytes());
    }

    /// Everything written to the terminal so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }
}
