//! A real SMTP listener for the e-mail attester's tests: Python's aiosmtpd
//! (Debian's `python3-aiosmtpd`) on 127.0.0.1 at a free port, started as a
//! child process that writes every message it accepts to a folder, one file
//! per message (`<n>.eml`, the envelope recipients on a first `X-Rcpt-To:`
//! line), and killed, its folder removed, when the [`Smtp`] value drops.
//!
//! Plain SMTP by default; [`Smtp::start_tls`] offers STARTTLS with a given
//! certificate and refuses mail without it. The Python used is
//! `PLEDGE_TEST_PYTHON` if set, else `/usr/bin/python3` (where Debian's
//! package installs the module; a pyenv or venv `python3` first on `PATH`
//! lacks it), else `python3` on `PATH`. Without aiosmtpd the test fails with
//! the install step (`./test` installs it); it never skips.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What to run when aiosmtpd is missing.
const INSTALL: &str = "apt-get install python3-aiosmtpd (./test installs it)";

/// The listener: one file per message into a folder.
const SCRIPT: &str = r#"
import os, sys, ssl, threading
from aiosmtpd.controller import Controller

port, folder = int(sys.argv[1]), sys.argv[2]
cert = sys.argv[3] if len(sys.argv) > 4 else None
key = sys.argv[4] if len(sys.argv) > 4 else None

class Handler:
    def __init__(self):
        self.n = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.n += 1
            n = self.n
        path = os.path.join(folder, "%06d.eml" % n)
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        with open(path + ".tmp", "wb") as f:
            f.write(b"X-Rcpt-To: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(content)
        os.rename(path + ".tmp", path)
        return "250 Message accepted for delivery"

kwargs = {}
if cert:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    kwargs = {"tls_context": ctx, "require_starttls": True}
controller = Controller(Handler(), hostname="127.0.0.1", port=port, **kwargs)
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
"#;

/// A running SMTP listener.
#[derive(Debug)]
pub struct Smtp {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    folder: tempfile::TempDir,
}

/// The Python that runs the listener.
pub fn python() -> String {
    if let Ok(p) = std::env::var("PLEDGE_TEST_PYTHON") {
        return p;
    }
    if Path::new("/usr/bin/python3").exists() {
        return "/usr/bin/python3".into();
    }
    "python3".into()
}

/// A port free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Smtp {
    /// Plain SMTP on a free port.
    pub fn start() -> Self {
        Self::spawn(free_port(), None)
    }

    /// STARTTLS (required) with the PEM certificate chain and key given.
    pub fn start_tls(cert: &Path, key: &Path) -> Self {
        Self::spawn(free_port(), Some((cert, key)))
    }

    /// Plain SMTP on `port` (a restart of a stopped listener).
    pub fn start_on(port: u16) -> Self {
        Self::spawn(port, None)
    }

    fn spawn(port: u16, tls: Option<(&Path, &Path)>) -> Self {
        let py = python();
        let check = Command::new(&py)
            .args(["-c", "import aiosmtpd.controller"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {py} ({e}): {INSTALL}"));
        assert!(
            check.status.success(),
            "{py} has no aiosmtpd module ({}): {INSTALL}",
            String::from_utf8_lossy(&check.stderr).trim()
        );
        let folder = tempfile::Builder::new()
            .prefix("pledge-smtp-")
            .tempdir()
            .unwrap();
        let mut cmd = Command::new(&py);
        cmd.arg("-c")
            .arg(SCRIPT)
            .arg(port.to_string())
            .arg(folder.path());
        if let Some((cert, key)) = tls {
            cmd.arg(cert).arg(key);
        }
        // Its own complaints (a refused TLS handshake, by design in one
        // test) go to a file beside the messages, shown if it fails to start.
        let errors = folder.path().join("listener.err");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&errors).unwrap())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        if line.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the aiosmtpd listener did not start (printed {line:?}; stderr: {}): {INSTALL}",
                std::fs::read_to_string(&errors).unwrap_or_default()
            );
        }
        Self {
            child,
            port,
            folder,
        }
    }

    /// The folder the messages are written to.
    pub fn folder(&self) -> &Path {
        self.folder.path()
    }

    /// The messages received so far, in order.
    pub fn messages(&self) -> Vec<String> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.folder.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned())
            .collect()
    }

    /// Waits (up to 10 s) for message number `n` (0-based) and returns it.
    pub fn wait_message(&self, n: usize) -> String {
        let t0 = Instant::now();
        loop {
            if let Some(m) = self.messages().into_iter().nth(n) {
                return m;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "no message {n} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the listener (its folder stays until drop).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The 8-digit code of a code mail: the digits after "code: ".
pub fn code_of(message: &str) -> String {
    let at = message
        .find("one-time code: ")
        .unwrap_or_else(|| panic!("no code in the message: {message}"));
    message[at + "one-time code: ".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}
