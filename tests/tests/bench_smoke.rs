//! Smoke test of the load generator (`pledge-bench`, BENCHMARKS.md): a tiny run
//! against the real server must finish and report every figure, with counts
//! equal to what was sent and an audit that passed. It checks that the
//! generator works, never how fast anything is.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::process::Command;

const PLEDGES: u64 = 300;

#[test]
fn load_generator_reports_every_figure() {
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pledge-bench"))
        .args([
            "--pledged",
            env!("CARGO_BIN_EXE_pledged-under-test"),
            "--pledges",
            &PLEDGES.to_string(),
            "--concurrency",
            "8",
            "--issue-concurrency",
            "4",
            "--batch-interval-ms",
            "20",
            "--limit-seconds",
            "0.1",
            "--repeat",
            "2",
            "--work-dir",
        ])
        .arg(work.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pledge-bench failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Vec<BTreeMap<String, String>> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .map(|l| {
            l.split_whitespace()
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_owned(), v.to_owned())
                })
                .collect()
        })
        .collect();
    assert_eq!(runs.len(), 2, "one RESULT line per run:\n{stdout}");
    // Each run used its own data folder, removed afterwards.
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);

    for (i, r) in runs.iter().enumerate() {
        let num = |k: &str| -> f64 {
            let v = r
                .get(k)
                .unwrap_or_else(|| panic!("run {i}: no {k} in {r:?}"));
            v.parse()
                .unwrap_or_else(|_| panic!("run {i}: {k}={v} is not a number"))
        };
        assert_eq!(num("run"), (i + 1) as f64);
        // Counts equal what was sent.
        for k in [
            "tokens",
            "pledges",
            "accepted",
            "audit_pledges",
            "audit_verified",
        ] {
            assert_eq!(num(k), PLEDGES as f64, "run {i}: {k}");
        }
        assert_eq!(num("errors"), 0.0);
        // The campaign's CampaignOpened entry plus the pledges.
        assert_eq!(num("audit_entries"), PLEDGES as f64 + 1.0);
        assert_eq!(r["audit_passed"], "true");
        assert!(num("audit_tallies") >= 1.0, "the tally was checked");
        assert_eq!(num("concurrency"), 8.0);
        assert_eq!(num("batch_interval_ms"), 20.0);
        // Every rate, time and size is a positive finite number, and every
        // ratio is that figure divided by the same run's limit.
        for k in [
            "tokens_per_s",
            "pledges_per_s",
            "audit_entries_per_s",
            "issue_s",
            "submit_s",
            "audit_s",
            "p50_ms",
            "p99_ms",
            "max_ms",
            "rss_peak_kib",
            "rss_end_kib",
            "disk_bytes",
            "disk_per_pledge",
            "rsa_priv_per_s_all",
            "rsa_priv_per_s_core",
            "rsa_verify_per_s_all",
            "rsa_verify_per_s_core",
            "tokens_ratio",
            "pledges_ratio",
            "audit_ratio",
            "cores",
        ] {
            let v = num(k);
            assert!(v.is_finite() && v > 0.0, "run {i}: {k}={v}");
        }
        assert!(num("p50_ms") <= num("p99_ms") && num("p99_ms") <= num("max_ms"));
        assert!(num("rss_end_kib") <= num("rss_peak_kib"));
        assert!(num("disk_bytes") >= num("disk_empty_bytes"));
        let close = |a: f64, b: f64| (a - b).abs() <= 0.002 + 0.01 * b.abs();
        assert!(close(
            num("tokens_ratio"),
            num("tokens_per_s") / num("rsa_priv_per_s_all")
        ));
        assert!(close(
            num("pledges_ratio"),
            num("pledges_per_s") / num("rsa_verify_per_s_all")
        ));
        assert!(close(
            num("audit_ratio"),
            num("audit_entries_per_s") / num("rsa_verify_per_s_all")
        ));
        assert!(close(
            num("disk_per_pledge"),
            num("disk_bytes") / PLEDGES as f64
        ));
    }
    // The human table is printed too.
    assert!(stdout.contains("durable pledges/s"), "{stdout}");
}
