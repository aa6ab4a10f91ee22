//! What the integration tests of `pledge-server` share (they cannot use the
//! `pledge-tests` harness, which depends on this crate): the test [`config`]
//! of an in-process service, and the real `pledged` binary as a child
//! process ([`Pledged`]) that prints its address, answers SIGTERM and keeps
//! what it printed.
#![allow(dead_code)] // each test binary uses a part

use std::io::{BufRead as _, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pledge_server::config::Config;

/// A service on `dir` with the demo campaign if `demo`, entries published
/// one at a time (the publication policy, R-PUB-1, has its own tests) and
/// 10 ms batches.
pub fn config(dir: &Path, demo: bool) -> Config {
    let mut c = Config::new(dir);
    c.publication = pledge_server::ledger::Publication::IMMEDIATE;
    c.batch_interval = Duration::from_millis(10);
    c.demo = demo;
    c.demo_funding = false;
    c
}

/// A running `pledged` (or the command that execs it) and what it printed.
#[derive(Debug)]
pub struct Pledged {
    child: Child,
    /// The address it printed (`listening on http://…`).
    pub addr: SocketAddr,
    /// Every line it printed, in order: stdout, and stderr if the command
    /// piped it.
    pub output: Arc<Mutex<String>>,
    /// How many bytes of `output` came before it listened.
    pub before_listening: usize,
    readers: Vec<JoinHandle<()>>,
}

/// Appends every line of `from` to `output`, in a thread.
fn collect(from: impl Read + Send + 'static, output: &Arc<Mutex<String>>) -> JoinHandle<()> {
    let output = Arc::clone(output);
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            let mut o = output.lock().unwrap();
            o.push_str(&line);
            o.push('\n');
        }
    })
}

impl Pledged {
    /// Spawns `cmd` with its stdout piped and waits (up to 60 s) for the
    /// address it prints; its stderr is kept too if `cmd` pipes it.
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        if let Some(err) = child.stderr.take() {
            readers.push(collect(err, &output));
        }
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let started = Instant::now();
        let addr = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("pledged exited: {}", output.lock().unwrap()))
                .unwrap();
            output.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(rest) = line.strip_prefix("listening on http://") {
                break rest.split(';').next().unwrap().parse().unwrap();
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{}",
                output.lock().unwrap()
            );
        };
        let before_listening = output.lock().unwrap().len();
        let rest = Arc::clone(&output);
        readers.push(std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut o = rest.lock().unwrap();
                o.push_str(&line);
                o.push('\n');
            }
        }));
        Self {
            child,
            addr,
            output,
            before_listening,
            readers,
        }
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Waits for the exit, at most `limit`; `None` if it is still running,
    /// else the exit code (-1 for a signal).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Once it exited: everything it printed (the readers have met the end
    /// of the pipes).
    pub fn all_output(&mut self) -> String {
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        self.output.lock().unwrap().clone()
    }

    /// SIGTERM, then a clean exit within 30 s (else a kill and a panic);
    /// returns everything it printed.
    pub fn stop(mut self) -> String {
        self.sigterm();
        if self.wait_exit(Duration::from_secs(30)).is_none() {
            let _ = self.child.kill();
            panic!("pledged did not stop after SIGTERM");
        }
        self.all_output()
    }
}

impl Drop for Pledged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
