//! The `pledged` binary as an operator runs it: `--demo` on a fresh folder
//! serves a demo campaign and says what to do next; SIGTERM stops it with
//! exit status 0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Pledged;

fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[cfg(unix)]
#[test]
fn demo_start_serves_campaigns_and_sigterm_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pledged"));
    cmd.args(["--demo", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .stderr(Stdio::null());
    let mut p = Pledged::spawn(cmd);
    let all = p.output.lock().unwrap()[..p.before_listening].to_owned();
    assert!(all.contains("verifier key: localhost/pledge+"), "{all}");
    assert!(all.contains("demo campaign"), "{all}");
    assert!(all.contains("admin.token"), "{all}");
    let addr = p.addr.to_string();
    let listing = http_get(&addr, "/v1/campaigns");
    assert!(listing.starts_with("HTTP/1.1 200"), "{listing}");
    assert!(listing.contains("\"title\":\"Demo campaign\""), "{listing}");
    // Its conditional-funding twin, announced with what to try.
    assert!(
        all.contains("funding demo campaign") && all.contains("pledge demo --funding"),
        "{all}"
    );
    assert!(
        listing.contains("\"title\":\"Demo strike fund\""),
        "{listing}"
    );

    p.sigterm();
    let exit = p.wait_exit(Duration::from_secs(20));
    assert!(exit.is_some(), "pledged did not stop after SIGTERM");
    assert_eq!(exit, Some(0));
    let rest = p.all_output()[p.before_listening..].to_owned();
    assert!(rest.contains("stopped cleanly"), "{rest}");
    // The first start announced the origin it fixed (issue 19).
    assert!(
        all.contains("new log: its origin \"localhost/pledge\" is now fixed"),
        "{all}"
    );

    // A restart on the same folder: the origin is not new any more.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pledged"));
    cmd.args(["--demo", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .stderr(Stdio::null());
    let mut again = Pledged::spawn(cmd);
    let second = again.output.lock().unwrap()[..again.before_listening].to_owned();
    assert!(
        second.contains("verifier key: localhost/pledge+"),
        "{second}"
    );
    assert!(!second.contains("new log"), "{second}");
    again.sigterm();
    assert_eq!(again.wait_exit(Duration::from_secs(20)), Some(0));

    // A missing configuration file is refused, naming it.
    let out = Command::new(env!("CARGO_BIN_EXE_pledged"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.toml"), "{err}");
}

/// A start that cannot listen (the port is taken) creates nothing: no data
/// folder, no keys, no log origin fixed. It created the folder and its keys
/// before binding.
#[test]
fn a_start_that_cannot_listen_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let data = dir.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_pledged"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!data.exists(), "a failed start created {}", data.display());
}

/// A failed start says each cause once, on stderr, without a backtrace even
/// when `RUST_BACKTRACE` is set (it printed `Caused by:` chains repeating
/// the message, then a backtrace).
#[test]
fn a_failed_start_says_its_cause_once_without_a_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A file where the data folder should be.
    std::fs::write(&data, b"not a folder").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pledged"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("pledged: error: cannot start with data folder"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        !err.contains("acktrace") && !err.contains("Caused by"),
        "{err}"
    );
    // No clause of the message comes twice.
    let clauses: Vec<&str> = err.trim_end().split(": ").collect();
    let mut seen = std::collections::BTreeSet::new();
    for c in &clauses {
        assert!(seen.insert(*c), "{c:?} twice in {err}");
    }
}

/// The output carries no terminal colour codes when it is not a terminal
/// (the log wrote them into files); `--listen` takes a host name.
#[cfg(unix)]
#[test]
fn stdout_is_plain_text_and_listen_takes_localhost() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    // A data folder open to others: the start makes it private and logs it.
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pledged"));
    cmd.args(["--demo", "--listen", "localhost:0", "--data"])
        .arg(&data)
        .stderr(Stdio::piped());
    let mut p = Pledged::spawn(cmd);
    assert!(p.addr.ip().is_loopback(), "{}", p.addr);
    let listing = http_get(&p.addr.to_string(), "/v1/campaigns");
    assert!(listing.starts_with("HTTP/1.1 200"), "{listing}");
    p.sigterm();
    assert_eq!(p.wait_exit(Duration::from_secs(20)), Some(0));
    let all = p.all_output();
    assert!(all.contains("made it private"), "{all}");
    assert!(!all.contains('\u{1b}'), "colour codes in {all:?}");
    // Log lines carry the time to the minute, never seconds or finer.
    let logged: Vec<&str> = all
        .lines()
        .filter(|l| l.contains(" INFO ") || l.contains(" WARN "))
        .collect();
    assert!(!logged.is_empty(), "no log line in {all}");
    for line in logged {
        let stamp = line.split(' ').next().unwrap();
        assert_eq!(stamp.len(), "2026-12-06T05:03Z".len(), "{line}");
        assert!(
            stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T' && !stamp.contains('.'),
            "{line}"
        );
    }
}
