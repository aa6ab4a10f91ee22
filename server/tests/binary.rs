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

    p.sigterm();
    let exit = p.wait_exit(Duration::from_secs(20));
    assert!(exit.is_some(), "pledged did not stop after SIGTERM");
    assert_eq!(exit, Some(0));
    let rest = p.all_output()[p.before_listening..].to_owned();
    assert!(rest.contains("stopped cleanly"), "{rest}");

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
