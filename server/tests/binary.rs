//! The `pledged` binary as an operator runs it: `--demo` on a fresh folder
//! serves a demo campaign and says what to do next; SIGTERM stops it with
//! exit status 0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    let mut child = Command::new(env!("CARGO_BIN_EXE_pledged"))
        .args(["--demo", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let started = Instant::now();
    let addr = loop {
        let line = lines.next().expect("pledged exited early").unwrap();
        printed.push(line.clone());
        if let Some(rest) = line.strip_prefix("listening on http://") {
            break rest.split(';').next().unwrap().to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{printed:?}");
    };
    let all = printed.join("\n");
    assert!(all.contains("verifier key: localhost/pledge+"), "{all}");
    assert!(all.contains("demo campaign"), "{all}");
    assert!(all.contains("admin.token"), "{all}");
    let listing = http_get(&addr, "/v1/campaigns");
    assert!(listing.starts_with("HTTP/1.1 200"), "{listing}");
    assert!(listing.contains("\"title\":\"Demo campaign\""), "{listing}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "pledged did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(0));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.contains("stopped cleanly")),
        "{rest:?}"
    );

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
