//! Crash, fault and overload suite against the real `pledged` binary
//! (issue 5, items 1, 2, 3, 7; figures in RELIABILITY.md).
//!
//! - `kill_loop_*`: concurrent pledges and amendments over loopback HTTP,
//!   SIGKILL at random moments (also during start-up and recovery), restart,
//!   and after every restart the invariants of `model::check`; every restart
//!   is followed by a clean stop and a second reopen.
//! - `strace_sweep_*`: `strace --inject` puts EIO, ENOSPC or SIGKILL into the
//!   N-th `write`, `pwrite64`, `fsync`, `fdatasync`, `sync_file_range`,
//!   `rename` or `unlink` of each thread, from start-up through appends;
//!   the folder of one run is the start-up (recovery) folder of the next.
//! - `read_only_data_folder_*`: start-up refuses clearly without write access.
//! - `overload_*`: more submissions than the queue holds → 503/429 with
//!   Retry-After, bounded memory, recovery, nothing acknowledged lost.
//!
//! The bounded versions run in `cargo test`; `PLEDGE_LONG=1` runs the long
//! ones (≥ 1,000 kills, the full injection sweep). `PLEDGE_CRASH_SEED=<n>`
//! replays a run's random choices. The binary is `pledged-under-test`, the
//! server's own `main.rs` built by this package (see tests/Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "crash/model.rs"]
mod model;
#[path = "crash/proc.rs"]
mod proc;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pledge_client::client::Client;

use crate::model::{Model, Shared, Stats};
use crate::proc::{Launch, Pledged, start};

fn long() -> bool {
    std::env::var("PLEDGE_LONG").is_ok_and(|v| v == "1")
}

/// A small deterministic generator (xorshift64*), so that a failing run can
/// be replayed with `PLEDGE_CRASH_SEED`.
struct Rng(u64);

impl Rng {
    fn from_env(salt: u64) -> Self {
        let seed = std::env::var("PLEDGE_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        println!("PLEDGE_CRASH_SEED={seed}");
        Self((seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A test directory with a data folder, an audit state folder and a file
/// for the server's stderr.
struct Dirs {
    tmp: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Self {
        Self {
            tmp: tempfile::tempdir().unwrap(),
        }
    }
    fn data(&self) -> std::path::PathBuf {
        self.tmp.path().join("data")
    }
    fn audit(&self) -> std::path::PathBuf {
        self.tmp.path().join("audit")
    }
    fn stderr(&self) -> std::path::PathBuf {
        self.tmp.path().join("stderr.txt")
    }
}

/// First start on a fresh folder: the demo campaign, the model, `tokens`
/// pre-minted, one check.
fn first_start(
    rt: &tokio::runtime::Runtime,
    l: &Launch,
    d: &Dirs,
    tokens: usize,
) -> (Pledged, String, Shared) {
    let (p, base) = start(l, &d.stderr());
    let model = rt.block_on(async {
        let client = Client::new(&base).unwrap();
        let model: Shared = Arc::new(Mutex::new(Model::new(&client, d.audit()).await));
        model::mint(&client, &model, tokens, 4).await;
        model::check(&base, &model).await;
        model
    });
    (p, base, model)
}

/// Runs load against `base` for `ms` milliseconds, then SIGKILLs `p`.
fn load_then_kill(
    rt: &tokio::runtime::Runtime,
    p: Pledged,
    base: &str,
    model: &Shared,
    workers: usize,
    ms: u64,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let drive = rt.spawn(model::drive(
        base.to_owned(),
        model.clone(),
        workers,
        stop.clone(),
    ));
    let watch = rt.spawn(model::watch_checkpoints(
        base.to_owned(),
        model.clone(),
        stop.clone(),
    ));
    std::thread::sleep(Duration::from_millis(ms));
    let status = p.kill9();
    assert!(
        status.code().is_none(),
        "pledged exited by itself: {status:?}"
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    rt.block_on(async {
        drive.await.unwrap();
        watch.await.unwrap();
    });
}

/// Restart, check, stop cleanly, reopen, check again.
fn restart_and_check(
    rt: &tokio::runtime::Runtime,
    l: &Launch,
    d: &Dirs,
    model: &Shared,
) -> (Pledged, String) {
    let (p, base) = start(l, &d.stderr());
    rt.block_on(model::check(&base, model));
    let status = p.terminate(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "clean stop after recovery failed");
    let (p, base) = start(l, &d.stderr());
    rt.block_on(model::check(&base, model));
    (p, base)
}

fn summary(name: &str, backend: &str, kills: u64, elapsed: Duration, s: &Stats) {
    println!(
        "RESULT {name} backend={backend} kills={kills} checks={} acked={} unsure={} \
         unsure_logged={} storage_errors={} busy={} log_size={} unexpected={} secs={:.0}",
        s.checks,
        s.acked,
        s.unsure,
        s.unsure_logged,
        s.storage_errors,
        s.busy,
        s.log_size,
        s.unexpected.len(),
        elapsed.as_secs_f64()
    );
}

// ---------------------------------------------------------------------------
// 1. SIGKILL at random moments under load
// ---------------------------------------------------------------------------

fn kill_loop(backend: &'static str, salt: u64) {
    let kills: u64 = if long() {
        std::env::var("PLEDGE_CRASH_KILLS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(520)
    } else {
        25
    };
    let started = Instant::now();
    let mut rng = Rng::from_env(salt);
    let rt = runtime();
    let d = Dirs::new();
    let l = Launch::new(backend, &d.data());
    let (mut p, mut base, model) = first_start(&rt, &l, &d, 150);
    let mut done = 0;
    while done < kills {
        if rng.below(5) == 0 {
            // Kill during start-up: store open, replay, recovery.
            p.kill9();
            let q = Pledged::spawn(&l, &d.stderr());
            std::thread::sleep(Duration::from_millis(rng.below(400)));
            q.kill9();
        } else {
            let ms = 30 + rng.below(900);
            load_then_kill(&rt, p, &base, &model, 8, ms);
        }
        done += 1;
        (p, base) = restart_and_check(&rt, &l, &d, &model);
        if done % 25 == 0 {
            let s = model.lock().unwrap().stats.clone();
            summary("progress", backend, done, started.elapsed(), &s);
        }
        let low = model.lock().unwrap().pool_len() < 20;
        if low {
            rt.block_on(async {
                let client = Client::new(&base).unwrap();
                model::mint(&client, &model, 60, 2).await;
            });
        }
    }
    p.terminate(Duration::from_secs(60));
    let stats = model.lock().unwrap().stats.clone();
    summary("kill_loop", backend, done, started.elapsed(), &stats);
    assert!(stats.unexpected.is_empty(), "{:?}", stats.unexpected);
    assert!(stats.acked > kills, "too little load: {stats:?}");
}

#[test]
fn kill_loop_redb() {
    kill_loop("redb", 1);
}

#[test]
fn kill_loop_sled() {
    kill_loop("sled", 2);
}
