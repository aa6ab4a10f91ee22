//! The real `pledged` binary as a child process, for the suites that need a
//! process of its own (crash and fault injection, the browser): started on a
//! data folder with `--demo --listen 127.0.0.1:0`, optionally under
//! `strace --inject` or a wrapper command, waited for until it prints its
//! address, and stopped with SIGKILL or SIGTERM (or killed when dropped).
//!
//! The binary is `pledged-under-test`, the server's own `main.rs` built by
//! this package (see tests/Cargo.toml): a suite passes its path,
//! `env!("CARGO_BIN_EXE_pledged-under-test")`, which cargo sets for tests
//! only, through [`binary`].

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary to run: `PLEDGE_TEST_PLEDGED` if set (a copy, so that a long
/// run is not disturbed by a rebuild), else `built` (the suite's
/// `env!("CARGO_BIN_EXE_pledged-under-test")`).
pub fn binary(built: &str) -> String {
    std::env::var("PLEDGE_TEST_PLEDGED").unwrap_or_else(|_| built.to_owned())
}

/// How to start one `pledged`.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The binary (see [`binary`]).
    pub binary: String,
    /// `--backend` (`redb` or `sled`), if given.
    pub backend: Option<&'static str>,
    /// The data folder.
    pub data: PathBuf,
    /// Extra `PLEDGED_*` settings (a later one wins).
    pub env: Vec<(&'static str, String)>,
    /// `strace` arguments placed before the binary (fault injection), if any.
    pub strace: Option<Vec<String>>,
    /// Wrapper command and arguments placed before everything (e.g. `setpriv …`).
    pub wrapper: Vec<String>,
}

impl Launch {
    /// `binary --demo --listen 127.0.0.1:0 --data data`, nothing else.
    pub fn new(binary: impl Into<String>, data: &Path) -> Self {
        Self {
            binary: binary.into(),
            backend: None,
            data: data.to_path_buf(),
            env: Vec::new(),
            strace: None,
            wrapper: Vec::new(),
        }
    }

    /// With `--backend backend`.
    pub fn backend(mut self, backend: &'static str) -> Self {
        self.backend = Some(backend);
        self
    }

    /// With the setting `key=value`.
    pub fn env(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.env.push((key, value.into()));
        self
    }
}

/// A started `pledged` (or the process that wraps it).
#[derive(Debug)]
pub struct Pledged {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: PathBuf,
    /// `http://127.0.0.1:<port>` once listening.
    pub base: Option<String>,
}

/// How a start ended when it did not reach "listening".
#[derive(Debug)]
pub struct StartFailure {
    /// The exit status (a signal shows as no code).
    pub status: ExitStatus,
    /// What it wrote to stderr.
    pub stderr: String,
    /// What it wrote to stdout.
    pub stdout: Vec<String>,
}

impl Pledged {
    /// Spawns the process; does not wait for it to listen.
    pub fn spawn(l: &Launch, stderr: &Path) -> Self {
        let mut argv: Vec<String> = l.wrapper.clone();
        if let Some(s) = &l.strace {
            argv.push("strace".into());
            argv.extend(s.iter().cloned());
        }
        argv.push(l.binary.clone());
        argv.extend(["--demo", "--listen", "127.0.0.1:0"].map(String::from));
        if let Some(b) = l.backend {
            argv.extend(["--backend", b].map(String::from));
        }
        argv.push("--data".into());
        argv.push(l.data.to_string_lossy().into_owned());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(stderr).unwrap());
        for (k, v) in &l.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", argv[0]));
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            stderr: stderr.to_path_buf(),
            base: None,
        }
    }

    /// Waits until the server prints its address, or exits.
    ///
    /// # Errors
    /// How the process ended if it exited first.
    pub fn wait_listening(&mut self, limit: Duration) -> Result<String, StartFailure> {
        let start = Instant::now();
        let mut stdout = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_millis(20)) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("listening on ") {
                        let base = rest.split(';').next().unwrap().to_owned();
                        self.base = Some(base.clone());
                        return Ok(base);
                    }
                    stdout.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().unwrap();
                    return Err(StartFailure {
                        status,
                        stderr: std::fs::read_to_string(&self.stderr).unwrap_or_default(),
                        stdout,
                    });
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                // Drain what it printed.
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(50)) {
                    stdout.push(l);
                }
                return Err(StartFailure {
                    status,
                    stderr: std::fs::read_to_string(&self.stderr).unwrap_or_default(),
                    stdout,
                });
            }
            assert!(
                start.elapsed() < limit,
                "pledged did not listen within {limit:?}; stdout {stdout:?}; stderr {}",
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            );
        }
    }

    /// The pid of `pledged` itself (the child of `strace` when wrapped).
    pub fn server_pid(&self) -> Option<u32> {
        let pid = self.child.id();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
        if exe.to_string_lossy().contains("pledged-under-test") {
            return Some(pid);
        }
        // Walk down one or two levels (setpriv execs; strace forks).
        let mut frontier = vec![pid];
        for _ in 0..3 {
            let mut next = Vec::new();
            for p in frontier {
                let tasks = std::fs::read_dir(format!("/proc/{p}/task")).ok()?;
                for t in tasks.flatten() {
                    let kids =
                        std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                    for k in kids
                        .split_whitespace()
                        .filter_map(|k| k.parse::<u32>().ok())
                    {
                        let exe = std::fs::read_link(format!("/proc/{k}/exe")).ok();
                        if exe.is_some_and(|e| e.to_string_lossy().contains("pledged-under-test")) {
                            return Some(k);
                        }
                        next.push(k);
                    }
                }
            }
            frontier = next;
        }
        None
    }

    /// SIGKILL to `pledged` itself, then waits for the wrapper to exit.
    pub fn kill9(mut self) -> ExitStatus {
        if let Some(pid) = self.server_pid() {
            signal(pid, "KILL");
            if pid != self.child.id() {
                // Under strace: let strace reap its tracee and exit by
                // itself. Killing strace first would detach a tracee that
                // is still exiting, which can hold the store's lock for a
                // moment after we restart.
                let deadline = Instant::now() + Duration::from_secs(20);
                while Instant::now() < deadline {
                    if let Some(s) = self.child.try_wait().unwrap() {
                        return s;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        let _ = self.child.kill();
        self.child.wait().unwrap()
    }

    /// SIGTERM and wait (graceful stop); returns the exit status.
    pub fn terminate(mut self, limit: Duration) -> ExitStatus {
        if let Some(pid) = self.server_pid() {
            signal(pid, "TERM");
        }
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("pledged did not stop within {limit:?} after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the process to exit by itself (e.g. after an injected
    /// SIGKILL), up to `limit`.
    pub fn try_wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Resident set size of `pledged` in KiB (`VmRSS` in `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> Option<u64> {
        rss_of(self.server_pid()?)
    }

    /// Whatever the process wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Pledged {
    /// A failing test must not leave a server running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if let Some(pid) = self.server_pid() {
                signal(pid, "KILL");
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `VmRSS` of a process in KiB.
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Starts `pledged` and waits up to 120 s for it to listen, panicking with
/// its stderr if it does not.
pub fn start(l: &Launch, stderr: &Path) -> (Pledged, String) {
    start_within(l, stderr, Duration::from_secs(120))
}

/// Starts `pledged` and waits up to `limit` for it to listen, panicking with
/// its stderr if it does not.
pub fn start_within(l: &Launch, stderr: &Path, limit: Duration) -> (Pledged, String) {
    let mut p = Pledged::spawn(l, stderr);
    match p.wait_listening(limit) {
        Ok(base) => (p, base),
        Err(f) => panic!(
            "pledged ({}) did not start: {:?}\nstderr: {}\nstdout: {:?}",
            l.backend.unwrap_or("default backend"),
            f.status,
            f.stderr,
            f.stdout
        ),
    }
}
