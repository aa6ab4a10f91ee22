#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Browser test of the campaign pages: starts the real `pledged --demo` and
//! runs `tests/browser/e2e.mjs`, which drives Debian's chromium with
//! playwright-core through the scenarios (open the demo campaign, pledge in
//! two browsers and see the activation live, amend, withdraw, export and
//! re-import the wallet, languages, accessibility checks, and no request to
//! any host but the server), after the page's tally arithmetic against the
//! protocol vectors, which `page_tally_matches_vectors` also runs alone in
//! node. Also: tokens obtained when the wallet opens, never on the Pledge
//! click, and on another connection than the pledge; a pledge signed and
//! saved before its countdown survives closing the page; two tabs of one
//! wallet pledging at once both keep their pledge; the invite path; the
//! outcome line once a campaign closes (issue 14); the e-mail path (issue 19:
//! SPEC R-WEB-17 the steps and refusals, R-WEB-18 what the page says before
//! anything is sent, R-WEB-19 nothing stored) against a real SMTP listener (`pledge_tests::smtp`,
//! Python's aiosmtpd), whose folder the script reads the codes from.
//! Screenshots go to `target/browser-artifacts/` (or
//! `PLEDGE_BROWSER_ARTIFACTS`). SPEC R-WEB-10 … R-WEB-13.
//!
//! Needs `node`, `tests/browser/node_modules` (`npm ci --prefix tests/browser`),
//! `/usr/bin/chromium` (`apt-get install chromium`) and `python3-aiosmtpd`;
//! `.ci/run` installs them. Missing ones fail the test with the step to run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use pledge_tests::pledged::{Launch, Pledged, start_within};
use pledge_tests::smtp::Smtp;

const PLEDGED: &str = env!("CARGO_BIN_EXE_pledged-under-test");
const CHROMIUM: &str = "/usr/bin/chromium";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The real `pledged --demo` on `tmp/data`, its stderr in `tmp/stderr.txt`,
/// mailing e-mail codes to `smtp` (plain SMTP on loopback; at most 2 code
/// requests per address and hour, so the page's "too many codes" shows);
/// killed when the test ends, passed or not.
fn start_server(tmp: &Path, smtp: &Smtp) -> (Pledged, String) {
    let l = Launch::new(PLEDGED, &tmp.join("data"))
        .env("PLEDGED_BATCH_INTERVAL_MS", "20")
        .env("PLEDGED_LOG", "warn")
        .env("PLEDGED_SMTP_HOST", "127.0.0.1")
        .env("PLEDGED_SMTP_PORT", smtp.port.to_string())
        .env("PLEDGED_SMTP_TLS", "none")
        .env("PLEDGED_MAIL_FROM", "Pledges <pledge@server.example>")
        .env("PLEDGED_EMAIL_RATE_PER_ADDRESS_PER_HOUR", "2");
    start_within(&l, &tmp.join("stderr.txt"), Duration::from_secs(60))
}

/// The page's tally arithmetic (`server/web/tally.js`) against the protocol
/// vectors, in node alone: known answers, and "N more needed" for every
/// threshold of the generated campaigns of `tally_more_needed.json`
/// (SPEC R-WEB-13). `e2e.mjs` runs the same checks first.
/// The pages' choice of a campaign's text (`server/web/texts.js`, SPEC
/// R-WEB-15), in node alone: the visitor's languages in order, a regional
/// preference matching a base text and back, the original otherwise.
#[test]
fn page_picks_the_visitors_language() {
    let script = repo_root().join("tests/browser/texts-check.mjs");
    let out = Command::new("node")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("node is missing ({e}): run `apt-get install nodejs`"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let last = stdout.lines().last().unwrap_or_default();
    let summary: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|_| panic!("texts-check.mjs printed no JSON summary; last line: {last}"));
    assert!(
        out.status.success() && summary["ok"] == true,
        "the page picks the wrong text: {}",
        summary["error"]
    );
    assert!(summary["checks"].as_u64().unwrap() >= 10, "{summary}");
}

#[test]
fn page_tally_matches_vectors() {
    let script = repo_root().join("tests/browser/tally-check.mjs");
    let out = Command::new("node")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("node is missing ({e}): run `apt-get install nodejs`"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let last = stdout.lines().last().unwrap_or_default();
    let summary: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|_| panic!("tally-check.mjs printed no JSON summary; last line: {last}"));
    assert!(
        out.status.success() && summary["ok"] == true,
        "the page's numbers disagree with the tally: {}",
        summary["error"]
    );
    assert!(summary["checks"].as_u64().unwrap() >= 25, "{summary}");
}

#[test]
fn campaign_pages_in_chromium() {
    let root = repo_root();
    let script = root.join("tests/browser/e2e.mjs");
    let modules = root.join("tests/browser/node_modules/playwright-core");
    assert!(
        modules.is_dir(),
        "{} is missing: run `npm ci --prefix tests/browser` (bash .ci/run does it)",
        modules.display()
    );
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run `apt-get install chromium` (bash .ci/run does it)"
    );
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        node_ok,
        "node is missing: run `apt-get install nodejs npm` (bash .ci/run does it)"
    );

    let tmp = tempfile::tempdir().unwrap();
    let smtp = Smtp::start();
    let (server, base) = start_server(tmp.path(), &smtp);
    let artifacts = std::env::var_os("PLEDGE_BROWSER_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/browser-artifacts"));
    println!(
        "browser test against {base}; screenshots in {}",
        artifacts.display()
    );
    // The admin token lets the script open more campaigns (a second open
    // one for two tabs, an invite one, one that closes during the run).
    let admin = std::fs::read_to_string(tmp.path().join("data/admin.token"))
        .expect("pledged --demo writes data/admin.token");
    let out = Command::new("node")
        .arg(&script)
        .env("PLEDGE_URL", &base)
        .env("PLEDGE_ADMIN_TOKEN", admin.trim())
        .env("PLEDGE_ARTIFACTS", &artifacts)
        .env("PLEDGE_SMTP_DIR", smtp.folder())
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    eprintln!("pledged's stderr:\n{}", server.stderr_text());
    let last = stdout.lines().last().unwrap_or_default();
    let summary: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|_| panic!("e2e.mjs printed no JSON summary line; last line: {last}"));
    assert!(
        out.status.success() && summary["ok"] == true,
        "browser scenarios failed (exit {:?}): {}",
        out.status.code(),
        summary["error"]
    );
    assert!(
        summary["checks"].as_u64().unwrap() >= 55,
        "too few checks ran: {summary}"
    );
    assert_eq!(
        summary["foreign_requests"],
        serde_json::json!([]),
        "requests to other hosts"
    );
    assert!(summary["requests"].as_u64().unwrap() > 20);
    assert!(
        artifacts.join("campaign-page.png").is_file(),
        "no campaign-page.png screenshot in {}",
        artifacts.display()
    );
}

/// `benchSeal`, the WebAssembly export that times sealed terms (issue 16),
/// runs in Chromium from the bundle `pledged` serves, through the benchmark
/// script `tests/browser/seal-bench.mjs`, and returns one positive time per
/// seal. Not a timing test: the figures are BENCHMARKS.md's ("Session 12"),
/// measured with the same script and more iterations.
#[test]
fn seal_bench_runs_in_chromium() {
    let root = repo_root();
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .is_dir(),
        "playwright-core is missing: run `npm ci --prefix tests/browser` (bash .ci/run does it)"
    );
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run `apt-get install chromium` (bash .ci/run does it)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let l = Launch::new(PLEDGED, &tmp.path().join("data")).env("PLEDGED_LOG", "warn");
    let (_server, base) = start_within(&l, &tmp.path().join("stderr.txt"), Duration::from_secs(60));
    let out = Command::new("node")
        .arg(root.join("tests/browser/seal-bench.mjs"))
        .env("PLEDGE_URL", &base)
        .env("SEAL_BUCKETS", "1,32")
        .env("SEAL_ITERATIONS", "5")
        .env("SEAL_WARMUP", "1")
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("node is missing ({e}): run `apt-get install nodejs`"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let last = stdout.lines().last().unwrap_or_default();
    let summary: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|_| panic!("seal-bench.mjs printed no JSON summary; last line: {last}"));
    assert!(out.status.success() && summary["ok"] == true, "{summary}");
    let runs: Vec<&serde_json::Value> = summary["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.get("buckets").is_some())
        .collect();
    assert_eq!(runs.len(), 2, "{summary}");
    for r in runs {
        assert_eq!(r["iterations"], 5, "{r}");
        let (min, median, p95) = (
            r["min_ms"].as_f64().unwrap(),
            r["median_ms"].as_f64().unwrap(),
            r["p95_ms"].as_f64().unwrap(),
        );
        assert!(
            0.0 < min && min <= median && median <= p95 && p95 < 60_000.0,
            "{r}"
        );
    }
}
