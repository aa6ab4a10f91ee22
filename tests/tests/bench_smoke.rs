//! Smoke test of the load generator (`pledge-bench`, BENCHMARKS.md): a tiny run
//! against the real server must finish and report every figure, with counts
//! equal to what was sent and an audit that passed. It checks that the
//! generator works, never how fast anything is.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::process::Command;

const PLEDGES: u64 = 300;

type Run = BTreeMap<String, String>;

/// Runs `pledge-bench` with `args` (plus the server, a small batch interval,
/// short limits and a temporary work folder); its stdout and its RESULT
/// lines.
fn bench(args: &[&str]) -> (String, Vec<Run>) {
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pledge-bench"))
        .args([
            "--pledged",
            env!("CARGO_BIN_EXE_pledged-under-test"),
            "--batch-interval-ms",
            "20",
            "--limit-seconds",
            "0.1",
        ])
        .args(args)
        .arg("--work-dir")
        .arg(work.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "pledge-bench failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Vec<Run> = stdout
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
    // Each run used its own data folder, removed afterwards.
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
    (stdout, runs)
}

/// A numeric field of run `i`.
fn num(r: &Run, i: usize, k: &str) -> f64 {
    let v = r
        .get(k)
        .unwrap_or_else(|| panic!("run {i}: no {k} in {r:?}"));
    v.parse()
        .unwrap_or_else(|_| panic!("run {i}: {k}={v} is not a number"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 0.002 + 0.01 * b.abs()
}

#[test]
fn load_generator_reports_every_figure() {
    let (stdout, runs) = bench(&[
        "--pledges",
        &PLEDGES.to_string(),
        "--concurrency",
        "8",
        "--issue-concurrency",
        "4",
        "--repeat",
        "2",
    ]);
    assert_eq!(runs.len(), 2, "one RESULT line per run:\n{stdout}");

    for (i, r) in runs.iter().enumerate() {
        let num = |k: &str| num(r, i, k);
        assert!(!r.contains_key("sealed"), "a live run: {r:?}");
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
        assert!(close(
            num("disk_growth_per_pledge"),
            (num("disk_bytes") - num("disk_empty_bytes")) / PLEDGES as f64
        ));
        where_the_time_went(r, i);
    }
    // The human table is printed too.
    assert!(stdout.contains("durable pledges/s"), "{stdout}");
}

/// The figures of where the submission's time went: batches and their mean
/// size, the sequencer's busy share and, inside it, the store's commits, the
/// server's cores and the machine's busy share.
fn where_the_time_went(r: &Run, i: usize) {
    let num = |k: &str| num(r, i, k);
    assert!(num("batches") >= 1.0, "run {i}");
    assert!(close(num("mean_batch"), num("accepted") / num("batches")));
    for k in [
        "sequencer_busy",
        "commit_busy",
        "server_cores",
        "machine_busy",
    ] {
        let v = num(k);
        assert!(v.is_finite() && v > 0.0, "run {i}: {k}={v}");
    }
    // The commits are part of the batches' time; a share of all cores is
    // at most one (rounding aside).
    assert!(num("commit_busy") <= num("sequencer_busy"), "run {i}");
    assert!(num("machine_busy") <= 1.05, "run {i}");
}

/// The issue-18 set-up under the load generator: two front ends on one
/// throwaway PostgreSQL database (the harness starts the cluster), tokens
/// and pledges spread over both, the audit through the first, and the
/// database's own batch rate and the store's measured in the same run.
#[test]
fn load_generator_runs_two_front_ends_on_postgres() {
    let (stdout, runs) = bench(&[
        "--pledges",
        "200",
        "--concurrency",
        "8",
        "--issue-concurrency",
        "4",
        "--backend",
        "postgres",
        "--front-ends",
        "2",
    ]);
    assert_eq!(runs.len(), 1, "one RESULT line:\n{stdout}");
    let r = &runs[0];
    let num = |k: &str| num(r, 0, k);
    assert_eq!(num("front_ends"), 2.0);
    for k in ["tokens", "pledges", "accepted", "audit_pledges"] {
        assert_eq!(num(k), 200.0, "{k}");
    }
    assert_eq!(num("errors"), 0.0);
    assert_eq!(r["audit_passed"], "true");
    for k in [
        "pledges_per_s",
        "pg_batch_rows_per_s",
        "pg_store_rows_per_s",
        "disk_per_pledge",
    ] {
        let v = num(k);
        assert!(v.is_finite() && v > 0.0, "{k}={v}");
    }
    assert!(close(
        num("pg_ratio"),
        num("pledges_per_s") / num("pg_batch_rows_per_s")
    ));
    assert!(num("disk_growth_per_pledge") > 0.0);
    assert!(close(
        num("pg_store_ratio"),
        num("pg_store_rows_per_s") / num("pg_batch_rows_per_s")
    ));
    where_the_time_went(r, 0);
}

/// Pledges of the sealed smoke run (B = 4: a count per bucket is likely
/// non-zero, and null pledges likely too).
const SEALED_PLEDGES: u64 = 40;
const SEALED_BUCKETS: u64 = 4;

#[test]
fn load_generator_runs_a_sealed_campaign_to_its_reveal() {
    let (stdout, runs) = bench(&[
        "--sealed",
        "--buckets",
        &SEALED_BUCKETS.to_string(),
        "--pledges",
        &SEALED_PLEDGES.to_string(),
        "--concurrency",
        "8",
        "--issue-concurrency",
        "4",
    ]);
    assert_eq!(runs.len(), 1, "one RESULT line:\n{stdout}");
    let r = &runs[0];
    let num = |k: &str| num(r, 0, k);
    assert_eq!(r["sealed"], "true");
    assert_eq!(num("buckets"), SEALED_BUCKETS as f64);
    assert_eq!((num("trustees"), num("trustees_k")), (3.0, 2.0));
    for k in ["tokens", "pledges", "accepted"] {
        assert_eq!(num(k), SEALED_PLEDGES as f64, "{k}");
    }
    assert_eq!(num("errors"), 0.0);
    // The auditor saw every sealed pledge; the entries are the two
    // campaigns' openings, 3 dealings and 3 ready messages, the pledges.
    assert_eq!(r["audit_passed"], "true");
    assert_eq!(num("audit_sealed_entries"), SEALED_PLEDGES as f64);
    assert_eq!(num("audit_entries"), SEALED_PLEDGES as f64 + 8.0);
    // The reveal gave back what was pledged: every pledge but the null
    // ones is live.
    assert_eq!(r["reveal_matches"], "true");
    assert_eq!(
        num("revealed_live") + num("null_pledges"),
        SEALED_PLEDGES as f64
    );
    // One sealed pledge's entry: its sealed terms (SPEC R-SEAL-6) and the
    // token, signatures and framing around them.
    let terms = pledge_protocol::sealed::sealed_terms_len(SEALED_BUCKETS as usize) as f64;
    assert!(
        num("entry_bytes") > terms && num("entry_bytes") < terms + 1024.0,
        "{r:?}"
    );
    for k in [
        "dkg_s",
        "tokens_per_s",
        "seal_s",
        "seal_per_s",
        "proof_verify_per_s_core",
        "proof_verify_per_s_all",
        "proof_decode_verify_per_s_all",
        "pledges_per_s",
        "p50_ms",
        "p99_ms",
        "max_ms",
        "audit_s",
        "audit_entries_per_s",
        "reveal_s",
        "rss_peak_kib",
        "disk_per_pledge",
        "proof_ratio",
        "audit_proof_ratio",
        "decode_proof_ratio",
        "audit_decode_proof_ratio",
    ] {
        let v = num(k);
        assert!(v.is_finite() && v > 0.0, "{k}={v}");
    }
    assert!(close(
        num("proof_ratio"),
        num("pledges_per_s") / num("proof_verify_per_s_all")
    ));
    assert!(close(
        num("audit_proof_ratio"),
        num("audit_entries_per_s") / num("proof_verify_per_s_all")
    ));
    assert!(close(
        num("decode_proof_ratio"),
        num("pledges_per_s") / num("proof_decode_verify_per_s_all")
    ));
    assert!(stdout.contains("durable sealed pledges/s"), "{stdout}");
}
