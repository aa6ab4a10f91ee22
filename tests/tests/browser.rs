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

/// The repository root, once playwright-core and Chromium are there (a
/// missing one fails the test with its install step).
fn root_with_browser_tools() -> PathBuf {
    let root = repo_root();
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
    root
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
    let root = root_with_browser_tools();
    let script = root.join("tests/browser/e2e.mjs");
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
    let root = root_with_browser_tools();
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

/// Pledging in a sealed campaign through the page, in Chromium (issue 16;
/// SPEC R-SEAL-50 … R-SEAL-55, R-WEB-20 … R-WEB-22): this test opens a
/// sealed campaign with three trustees (k = 2) on the real `pledged --demo`,
/// runs their key generation through the log with `trustee::step`, then runs
/// `tests/browser/sealed.mjs` while the trustees keep stepping (each on a log
/// it audits itself). The script pledges, amends, withdraws (an amendment to
/// the null vector) and sends a cover null pledge in three browsers, checks
/// that the page shows no count before the reveal, closes the campaign, and
/// waits for the page to show the revealed counts; the trustees share the
/// close's snapshot meanwhile and `pledged` logs the reveal. Last, an
/// independent `pledge audit` of the whole log passes and recomputes the
/// same counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_campaign_in_chromium() {
    use pledge_client::audit::{AuditOptions, audit_with_ledger};
    use pledge_client::client::Client;
    use pledge_client::trustee;
    use pledge_protocol::hash::CampaignId;

    let root = root_with_browser_tools();
    let tmp = tempfile::tempdir().unwrap();
    let l = Launch::new(PLEDGED, &tmp.path().join("data"))
        .env("PLEDGED_BATCH_INTERVAL_MS", "20")
        .env("PLEDGED_CLOSE_CHECK_INTERVAL_MS", "200")
        .env("PLEDGED_LOG", "warn");
    let (server, base) = start_within(&l, &tmp.path().join("stderr.txt"), Duration::from_secs(60));
    let admin = std::fs::read_to_string(tmp.path().join("data/admin.token"))
        .expect("pledged --demo writes data/admin.token");
    let admin = admin.trim();

    // The trustees' key files, and the campaign naming their public keys.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(20);
    let mut publics = Vec::new();
    let mut keys = Vec::new();
    for i in 0..3 {
        let path = tmp.path().join(format!("trustee{i}.key"));
        let public = trustee::generate_key_file(&path, &mut rng).unwrap();
        publics.push(hex::encode(public.to_bytes()));
        keys.push(trustee::load_key_file(&path).unwrap());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let http = reqwest::Client::new();
    let created: serde_json::Value = http
        .post(format!("{base}/v1/campaigns"))
        .bearer_auth(admin)
        .json(&serde_json::json!({
            "title": "Sealed walkout", "text": "", "action": "walk out at 11:00",
            // Far: a cover pledge's random time (at most a week away, before
            // the deadline) never falls within the run.
            "deadline": now + 30 * 86_400, "goal": 2, "threshold_min": 1, "threshold_max": 100,
            "attester": {"kind": "open"},
            "publication": {"min_pledges": 1, "max_delay_ms": 0},
            "sealed": {"buckets": [1, 5, 20], "k": 2, "trustees": publics},
        }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = CampaignId::from_hex(created["campaign_id"].as_str().unwrap()).unwrap();
    let client = Client::new(&base).unwrap();
    let opts = AuditOptions::new(base.clone());
    // Key generation: every trustee deals, then every trustee is ready.
    for want in [trustee::Action::Dealt, trustee::Action::Ready] {
        for kp in &keys {
            assert_eq!(
                trustee::step(&opts, &client, &id, kp).await.unwrap(),
                vec![want.clone()]
            );
        }
    }

    // The published view carries the key once the last ready message is in.
    let mut tries = 0;
    while client
        .campaign(&id)
        .await
        .unwrap()
        .sealed
        .unwrap()
        .joint_key
        .is_none()
    {
        tries += 1;
        assert!(
            tries < 300,
            "the joint key never appeared in the campaign object"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let artifacts = std::env::var_os("PLEDGE_BROWSER_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/browser-artifacts"));
    let out_path = tmp.path().join("sealed-stdout.txt");
    let err_path = tmp.path().join("sealed-stderr.txt");
    let mut node = Command::new("node")
        .arg(root.join("tests/browser/sealed.mjs"))
        .env("PLEDGE_URL", &base)
        .env("PLEDGE_ADMIN_TOKEN", admin)
        .env("PLEDGE_ARTIFACTS", &artifacts)
        .env("PLEDGE_SEALED_CAMPAIGN", id.to_hex())
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("node is missing ({e}): run `apt-get install nodejs`"));
    // The trustees act on what the log holds while the pages run: they
    // share the close's snapshot once the script closes the campaign.
    let mut shared = Vec::new();
    let mut step_errors = Vec::new();
    let status = loop {
        if let Some(status) = node.try_wait().unwrap() {
            break status;
        }
        for kp in &keys {
            match trustee::step(&opts, &client, &id, kp).await {
                Ok(actions) => shared.extend(actions),
                Err(e) => step_errors.push(e.to_string()),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    println!("{stdout}");
    eprintln!("{}", std::fs::read_to_string(&err_path).unwrap_or_default());
    eprintln!("trustee step errors: {step_errors:?}");
    eprintln!("pledged's stderr:\n{}", server.stderr_text());
    let last = stdout.lines().last().unwrap_or_default();
    let summary: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|_| panic!("sealed.mjs printed no JSON summary line; last line: {last}"));
    assert!(
        status.success() && summary["ok"] == true,
        "sealed browser scenario failed (exit {:?}): {}",
        status.code(),
        summary["error"]
    );
    assert!(summary["checks"].as_u64().unwrap() >= 20, "{summary}");
    assert_eq!(summary["foreign_requests"], serde_json::json!([]));
    assert!(
        shared
            .iter()
            .filter(|a| matches!(a, trustee::Action::Shared { .. }))
            .count()
            >= 2,
        "the trustees shared no snapshot: {shared:?}"
    );

    // An independent audit of the whole log passes and recomputes what the
    // page showed: one live pledge at threshold 1 (the others null).
    let (report, ledger) = audit_with_ledger(&opts).await.unwrap();
    assert!(report.passed(), "{:?}", report.failures);
    let ledger = ledger.unwrap();
    let sealed = ledger.campaign(&id).unwrap().sealed.as_ref().unwrap();
    let revealed: Vec<_> = sealed
        .snapshots
        .iter()
        .map(|s| s.revealed.clone())
        .collect();
    assert_eq!(revealed, vec![Some(vec![1, 0, 0])], "{summary}");
}
