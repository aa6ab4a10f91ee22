//! Bounded run of every cargo-fuzz target in `fuzz/` (see RELIABILITY.md,
//! "Fuzzing"). Each target runs for `PLEDGE_FUZZ_SECS` seconds (default 8;
//! `PLEDGE_LONG=1` makes it 600) from its committed seed corpus, with a
//! scratch corpus so the committed seeds never change. Needs the nightly
//! toolchain and cargo-fuzz; a missing tool fails the test with the install
//! line. A crash fails the test and names the artifact that reproduces it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const TARGETS: &[&str] = &[
    "entry",
    "campaign",
    "signed_note",
    "checkpoint",
    "add_checkpoint",
    "receipt",
    "tally_statement",
    "tally_snapshot",
    "tile_path",
    "bundle",
    "issuer_key",
    "funding",
    "sealed",
    "server_json",
];

const INSTALL: &str =
    "rustup toolchain install nightly --profile minimal && cargo install cargo-fuzz --locked";

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// `cargo +nightly …` with the outer build's settings removed, so the fuzz
/// project builds with its own lock file into `fuzz/target`.
fn cargo_nightly() -> Command {
    let mut c = Command::new("cargo");
    c.arg("+nightly")
        .current_dir(fuzz_dir())
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    c
}

fn require_tools() {
    let nightly = cargo_nightly()
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        nightly,
        "the nightly toolchain is missing; install it with: {INSTALL}"
    );
    let fuzz = cargo_nightly()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(fuzz, "cargo-fuzz is missing; install it with: {INSTALL}");
}

fn seconds() -> u64 {
    if let Some(s) = std::env::var("PLEDGE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return s;
    }
    if std::env::var("PLEDGE_LONG").is_ok_and(|v| v == "1") {
        600
    } else {
        8
    }
}

/// The `stat::<name>: <value>` line of libFuzzer's final statistics.
fn stat(output: &str, name: &str) -> Option<u64> {
    output.lines().find_map(|l| {
        l.strip_prefix(&format!("stat::{name}:"))
            .and_then(|v| v.trim().parse().ok())
    })
}

#[test]
fn every_decoder_survives_a_bounded_fuzz_run() {
    require_tools();
    let secs = seconds();
    let only: Option<Vec<String>> = std::env::var("PLEDGE_FUZZ_TARGETS")
        .ok()
        .map(|s| s.split(',').map(str::to_owned).collect());
    let t0 = Instant::now();
    let build = cargo_nightly()
        .args(["fuzz", "build", "-O", "--features", "server"])
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .expect("cargo +nightly fuzz build");
    assert!(build.success(), "cargo +nightly fuzz build failed");
    println!("fuzz build: {:.0?}", t0.elapsed());

    let mut report = Vec::new();
    for &t in TARGETS {
        if only.as_ref().is_some_and(|o| !o.iter().any(|x| x == t)) {
            continue;
        }
        let seeds = fuzz_dir().join("corpus").join(t);
        assert!(
            seeds.read_dir().is_ok_and(|mut d| d.next().is_some()),
            "no seeds for {t}: run python3 fuzz/seed_corpus.py"
        );
        let scratch = tempfile::tempdir().unwrap();
        let artifacts = fuzz_dir().join("artifacts").join(t);
        std::fs::create_dir_all(&artifacts).unwrap();
        let out = cargo_nightly()
            .args(["fuzz", "run", "-O", "--features", "server", t])
            .arg(scratch.path())
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={secs}"))
            .arg("-print_final_stats=1")
            .arg("-rss_limit_mb=2048")
            .arg("-max_len=70000")
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .output()
            .expect("cargo +nightly fuzz run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            let tail: Vec<&str> = stderr.lines().rev().take(60).collect();
            panic!(
                "fuzz target {t} failed (artifact in {}):\n{}",
                artifacts.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        let execs = stat(&stderr, "number_of_executed_units").unwrap_or(0);
        let cov = stderr
            .lines()
            .rev()
            .find_map(|l| l.split(" cov: ").nth(1))
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or("?")
            .to_owned();
        assert!(execs > 0, "{t}: no executions recorded:\n{stderr}");
        println!("fuzz {t:16} {secs:>5} s {execs:>12} execs  cov {cov}");
        report.push((t, execs));
    }
    println!(
        "fuzzed {} targets in {:.0?} (including the build)",
        report.len(),
        t0.elapsed()
    );
}
