//! Several `pledged` front ends on one PostgreSQL database (issue 18; SPEC
//! R-STORE-10, R-STORE-11), with the real binary and a throwaway cluster
//! (tests/src/postgres.rs):
//!
//! - a front end that does not sequence issues tokens, follows the log and
//!   hands pledges to the one that does; both serve the same log;
//! - SIGKILL of the sequencing front end under load, again and again:
//!   another takes over, no acknowledged entry is lost, no fork, the auditor
//!   passes (the crash suite's model, tests/tests/crash/model.rs);
//! - a database restart under load: 503s with Retry-After, then recovery
//!   without restarting any front end.
//!
//! The tests share the process's PostgreSQL cluster and one restarts it:
//! they run one at a time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "crash/model.rs"]
mod model;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pledge_client::client::Client;
use pledge_tests::pledged::{self as proc, Launch, Pledged, start};
use pledge_tests::postgres::{TestDatabase, cluster};

use crate::model::{Model, Shared};

/// The binary under test (see tests/Cargo.toml).
const PLEDGED: &str = env!("CARGO_BIN_EXE_pledged-under-test");

/// One test at a time (one restarts the shared database server).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A front end on `db`, data folder `data` (the key files shared).
fn launch(data: &Path, db: &TestDatabase) -> Launch {
    let mut l = Launch::new(proc::binary(PLEDGED), data).backend("postgres");
    l.env = vec![
        ("PLEDGED_DATABASE_URL", db.url().to_owned()),
        ("PLEDGED_DEMO_FUNDING", "false".into()),
        ("PLEDGED_OPEN_RATE_PER_MINUTE", "0".into()),
        ("PLEDGED_BATCH_INTERVAL_MS", "10".into()),
        ("PLEDGED_MAX_CONNECTIONS_PER_ADDRESS", "4096".into()),
        ("PLEDGED_MAX_CONNECTIONS", "4096".into()),
        ("PLEDGED_LOG", "info".into()),
        ("RUST_BACKTRACE", "0".into()),
    ];
    l
}

/// The operator's step of README "Several front ends": the same key files
/// in every front end's data folder.
fn copy_keys(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["log.key", "admin.token", "issuer.hmac"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
}

struct FrontEnd {
    launch: Launch,
    stderr: PathBuf,
    proc: Option<Pledged>,
    base: String,
}

impl FrontEnd {
    fn start(launch: Launch, stderr: PathBuf) -> Self {
        let (p, base) = start(&launch, &stderr);
        Self {
            launch,
            stderr,
            proc: Some(p),
            base,
        }
    }

    fn restart(&mut self) {
        let (p, base) = start(&self.launch, &self.stderr);
        self.proc = Some(p);
        self.base = base;
    }

    fn kill(&mut self) {
        let status = self.proc.take().expect("running").kill9();
        assert!(
            status.code().is_none(),
            "pledged exited by itself: {status:?}"
        );
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// Two front ends on a fresh database: `a` started first (it sequences and
/// opens the demo campaign), `b` on a copy of its key files.
fn pair(tmp: &Path, db: &TestDatabase) -> (FrontEnd, FrontEnd) {
    let a = FrontEnd::start(launch(&tmp.join("a"), db), tmp.join("a.err"));
    copy_keys(&tmp.join("a"), &tmp.join("b"));
    let b = FrontEnd::start(launch(&tmp.join("b"), db), tmp.join("b.err"));
    (a, b)
}

/// Drives pledges and amendments against `base` for `ms` milliseconds.
fn load(rt: &tokio::runtime::Runtime, base: &str, model: &Shared, ms: u64, during: impl FnOnce()) {
    let stop = Arc::new(AtomicBool::new(false));
    let drive = rt.spawn(model::drive(
        base.to_owned(),
        model.clone(),
        8,
        stop.clone(),
    ));
    let watch = rt.spawn(model::watch_checkpoints(
        base.to_owned(),
        model.clone(),
        stop.clone(),
    ));
    std::thread::sleep(Duration::from_millis(ms / 2));
    during();
    std::thread::sleep(Duration::from_millis(ms / 2));
    stop.store(true, Ordering::SeqCst);
    rt.block_on(async {
        drive.await.unwrap();
        watch.await.unwrap();
    });
}

/// Waits until `base` serves a checkpoint of at least `size`.
fn wait_for_size(rt: &tokio::runtime::Runtime, base: &str, size: u64) -> u64 {
    let client = Client::new(base).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let served = rt
            .block_on(client.checkpoint())
            .ok()
            .and_then(|b| {
                String::from_utf8(b)
                    .ok()?
                    .lines()
                    .nth(1)
                    .and_then(|l| l.parse::<u64>().ok())
            })
            .unwrap_or(0);
        if served >= size {
            return served;
        }
        assert!(
            Instant::now() < deadline,
            "{base} still serves size {served} < {size}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The crash suite's model of the demo campaign, read from `base`, with
/// `tokens` minted there.
fn model_on(rt: &tokio::runtime::Runtime, base: &str, audit: &Path, tokens: usize) -> Shared {
    rt.block_on(async {
        let client = Client::new(base).unwrap();
        let model = Arc::new(Mutex::new(Model::new(&client, audit.to_path_buf()).await));
        model::mint(&client, &model, tokens, 4).await;
        model
    })
}

/// Waits until every front end serves at least the largest checkpoint any
/// of them serves: a follower's view lags the sequencer's (and the receipts
/// it hands back) by up to its poll interval (SPEC R-STORE-10).
fn converge(rt: &tokio::runtime::Runtime, bases: &[&str]) {
    let top = bases
        .iter()
        .map(|b| wait_for_size(rt, b, 0))
        .max()
        .unwrap_or(0);
    for b in bases {
        wait_for_size(rt, b, top);
    }
}

fn acked(model: &Shared) -> u64 {
    model.lock().unwrap().stats.acked
}

#[test]
fn a_follower_issues_forwards_and_serves_the_same_log() {
    let _serial = serial();
    let db = cluster().database();
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (a, b) = pair(tmp.path(), &db);
    // SPEC R-STORE-10: `b` does not sequence; its tokens come from the
    // campaign key it loaded from the database, its pledges go through `a`.
    let model = model_on(&rt, &b.base, &tmp.path().join("audit"), 120);
    load(&rt, &b.base, &model, 1500, || {});
    let n = acked(&model);
    assert!(
        n > 10,
        "too few pledges acknowledged through the follower: {n}"
    );
    converge(&rt, &[&a.base, &b.base]);
    rt.block_on(model::check(&b.base, &model));
    // Both front ends serve the log the leader wrote (the follower's view
    // follows within its poll interval), with the same signed tally.
    let size = wait_for_size(&rt, &b.base, 1);
    wait_for_size(&rt, &a.base, size);
    let (ta, tb) = rt.block_on(async {
        let id = model.lock().unwrap().campaign;
        let ca = Client::new(&a.base).unwrap();
        let cb = Client::new(&b.base).unwrap();
        // The follower may lag by a poll: wait until both name one size.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ta = ca.tally_statement(&id).await.unwrap();
            let tb = cb.tally_statement(&id).await.unwrap();
            if ta == tb || Instant::now() > deadline {
                return (ta, tb);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert_eq!(
        ta, tb,
        "the two front ends serve different tally statements"
    );
    // Only `a` sequences, and says so in its metrics.
    let token = std::fs::read_to_string(tmp.path().join("a").join("admin.token")).unwrap();
    let sequencing = |base: &str| {
        let body = rt
            .block_on(
                reqwest::Client::new()
                    .get(format!("{base}/metrics"))
                    .bearer_auth(token.trim())
                    .send(),
            )
            .unwrap();
        let text = rt.block_on(body.text()).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("pledged_sequencing "))
            .map(str::to_owned)
    };
    assert_eq!(sequencing(&a.base).as_deref(), Some("1"));
    assert_eq!(sequencing(&b.base).as_deref(), Some("0"));
    // `b` says it follows.
    assert!(
        b.stderr_text()
            .contains("another front end sequences the log"),
        "{}",
        b.stderr_text()
    );
    assert!(
        !b.stderr_text().contains("this front end now sequences"),
        "{}",
        b.stderr_text()
    );
    let unexpected = model.lock().unwrap().stats.unexpected.clone();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    // Failover: `a` dies, `b` takes the lock and says so (the time is
    // printed for BENCHMARKS.md, not asserted).
    let mut a = a;
    let killed = Instant::now();
    a.kill();
    let deadline = killed + Duration::from_secs(30);
    while sequencing(&b.base).as_deref() != Some("1") {
        assert!(Instant::now() < deadline, "b did not take over");
        std::thread::sleep(Duration::from_millis(5));
    }
    println!(
        "RESULT cluster_failover_ms={}",
        killed.elapsed().as_millis()
    );
    drop(b);
}

/// SPEC R-STORE-10: e-mail codes are pending in the memory of the
/// sequencing front end only, so a code asked for through one front end is
/// redeemed through any (a follower hands both requests over), and the
/// per-address limits are one set for the whole cluster.
#[test]
fn an_email_code_asked_on_one_front_end_is_redeemed_on_another() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use pledge_protocol::entry::Entry;
    use pledge_protocol::hash::CampaignId;
    use pledge_protocol::pledge::{Pledge, Terms};
    use pledge_protocol::token::IssuerPublicKey;
    use pledge_tests::server::TokenRequest;
    use pledge_tests::smtp::{Smtp, code_of};
    use serde_json::{Value, json};

    let _serial = serial();
    let smtp = Smtp::start();
    let db = cluster().database();
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let with_relay = |data: &Path| {
        let mut l = launch(data, &db);
        // Batches (and so the follower's wake-ups) no more often than its
        // poll: the receipt check below needs the follower's lag.
        for (k, v) in &mut l.env {
            if *k == "PLEDGED_BATCH_INTERVAL_MS" {
                *v = "1000".into();
            }
        }
        l.env.extend([
            ("PLEDGED_SMTP_HOST", "127.0.0.1".to_owned()),
            ("PLEDGED_SMTP_PORT", smtp.port.to_string()),
            ("PLEDGED_SMTP_TLS", "none".to_owned()),
            (
                "PLEDGED_MAIL_FROM",
                "Pledges <pledge@server.example>".to_owned(),
            ),
        ]);
        l
    };
    let a = FrontEnd::start(with_relay(&tmp.path().join("a")), tmp.path().join("a.err"));
    copy_keys(&tmp.path().join("a"), &tmp.path().join("b"));
    let b = FrontEnd::start(with_relay(&tmp.path().join("b")), tmp.path().join("b.err"));
    let token = std::fs::read_to_string(tmp.path().join("a").join("admin.token")).unwrap();
    let http = reqwest::Client::new();
    // A request, again while the answer is a 503 (with Retry-After: the
    // follower does not know the sequencer's URL yet, or has not loaded the
    // new campaign's issuer key yet), as clients do.
    let post = |base: &str, path: &str, body: &Value, admin: bool| -> (u16, Value) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (s, v) = rt.block_on(async {
                let mut req = http.post(format!("{base}{path}")).json(body);
                if admin {
                    req = req.bearer_auth(token.trim());
                }
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                (status, resp.json().await.unwrap_or(Value::Null))
            });
            if s != 503 || Instant::now() > deadline {
                return (s, v);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // An e-mail campaign, created through the follower (handed to `a`).
    let spec = json!({"title": "Walkout", "action": "walk out",
                      "deadline": pledge_tests::unix_now() + 3600, "goal": 2,
                      "threshold_min": 1, "threshold_max": 10,
                      "attester": {"kind": "email"},
                      "publication": {"min_pledges": 1, "max_delay_ms": 0}});
    let (s, v) = post(&b.base, "/v1/campaigns", &spec, true);
    assert_eq!(s, 201, "{v}");
    let id = CampaignId::from_hex(v["campaign_id"].as_str().unwrap()).unwrap();
    // Its issuer key, once each front end serves the campaign.
    let key_on = |base: &str| -> IssuerPublicKey {
        let client = Client::new(base).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(c) = rt.block_on(client.campaign(&id)) {
                let spki = B64.decode(&c.issuer_key).unwrap();
                return IssuerPublicKey::from_spki(&spki).unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "{base} never served the campaign"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let pk = key_on(&a.base);
    assert_eq!(key_on(&b.base).as_spki(), pk.as_spki());
    let ask = |base: &str, address: &str| {
        let (s, v) = post(
            base,
            "/v1/attest/email",
            &json!({"address": address, "campaigns": [id.to_hex()]}),
            false,
        );
        assert_eq!(s, 202, "{v}");
    };
    let redeem = |base: &str, address: &str, code: &str| {
        let req = TokenRequest::new(
            &id,
            &pk,
            json!({"kind": "email", "address": address, "code": code}),
        );
        let (s, v) = post(base, "/v1/tokens", &req.body, false);
        req.finish(s, &v)
    };
    // Asked on the follower, redeemed on the sequencer; and the other way.
    ask(&b.base, "ann@union.example");
    redeem(
        &a.base,
        "ann@union.example",
        &code_of(&smtp.wait_message(0)),
    );
    ask(&a.base, "bob@union.example");
    let (token, key) = redeem(
        &b.base,
        "bob@union.example",
        &code_of(&smtp.wait_message(1)),
    );

    // SPEC R-STORE-10: a follower answers a pledge it handed over only once
    // it serves the checkpoint its receipt names (read your writes).
    let pledge = Pledge::sign(id, token, Terms::threshold(1).unwrap(), &key).unwrap();
    let (s, v) = post(
        &b.base,
        "/v1/pledges",
        &json!({"entry": B64.encode(Entry::Pledge(pledge).encode().unwrap())}),
        false,
    );
    assert_eq!(s, 200, "{v}");
    let named = v["checkpoint_size"].as_u64().unwrap();
    // The size served now (waiting for at least 0 is not waiting).
    let served = wait_for_size(&rt, &b.base, 0);
    assert!(
        served >= named,
        "the follower serves size {served} after a receipt for size {named}"
    );
    drop((a, b));
}

#[test]
fn sigkill_of_the_sequencer_under_load_loses_nothing() {
    let _serial = serial();
    let db = cluster().database();
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (a, b) = pair(tmp.path(), &db);
    let mut fronts = [a, b];
    let model = model_on(&rt, &fronts[1].base, &tmp.path().join("audit"), 200);
    // Round k: the leader is fronts[k % 2]; load goes to the other one,
    // which must take over when the leader is killed mid-load.
    let rounds = 4;
    for k in 0..rounds {
        let (lead, follow) = (k % 2, 1 - k % 2);
        let before = acked(&model);
        let base = fronts[follow].base.clone();
        load(&rt, &base, &model, 2000, || fronts[lead].kill());
        // The survivor took over: pledges were acknowledged after the kill
        // (nobody else was left to sequence them).
        let after_kill = acked(&model);
        load(&rt, &base, &model, 800, || {});
        assert!(
            acked(&model) > after_kill,
            "round {k}: nothing acknowledged after the sequencer was killed; survivor's log:\n{}",
            fronts[follow].stderr_text()
        );
        assert!(acked(&model) > before);
        // Every acknowledged entry is in the log at its index, no fork, no
        // shrink, the auditor passes.
        rt.block_on(model::check(&base, &model));
        // The killed one comes back as a follower.
        fronts[lead].restart();
        let size = wait_for_size(&rt, &base, 1);
        wait_for_size(&rt, &fronts[lead].base, size);
        let low = model.lock().unwrap().pool_len() < 60;
        if low {
            rt.block_on(async {
                let client = Client::new(&base).unwrap();
                model::mint(&client, &model, 100, 4).await;
            });
        }
    }
    rt.block_on(model::check(&fronts[0].base, &model));
    let stats = model.lock().unwrap().stats.clone();
    println!("RESULT cluster_sigkill rounds={rounds} {stats:?}");
    assert!(stats.unexpected.is_empty(), "{:?}", stats.unexpected);
}

#[test]
fn a_database_restart_gives_clean_503s_then_recovery() {
    let _serial = serial();
    let db = cluster().database();
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (a, b) = pair(tmp.path(), &db);
    let model = model_on(&rt, &a.base, &tmp.path().join("audit"), 200);
    let before = acked(&model);
    load(&rt, &b.base, &model, 3000, || cluster().restart());
    let after_restart = acked(&model);
    assert!(
        after_restart > before,
        "no pledge at all around the restart"
    );
    // Settle the submissions left unsure by the outage (their tokens go
    // back to the pool unless logged), and mint more for the next round.
    converge(&rt, &[&a.base, &b.base]);
    rt.block_on(async {
        model::check(&a.base, &model).await;
        let client = Client::new(&b.base).unwrap();
        model::mint(&client, &model, 100, 4).await;
    });
    // Recovery without restarting a front end: pledges are acknowledged
    // again, through either.
    load(&rt, &a.base, &model, 1500, || {});
    load(&rt, &b.base, &model, 1500, || {});
    assert!(
        acked(&model) > after_restart,
        "nothing acknowledged after the database came back; logs:\n{}\n{}",
        a.stderr_text(),
        b.stderr_text()
    );
    converge(&rt, &[&a.base, &b.base]);
    rt.block_on(model::check(&a.base, &model));
    rt.block_on(model::check(&b.base, &model));
    let stats = model.lock().unwrap().stats.clone();
    println!("RESULT cluster_db_restart {stats:?}");
    // Every refusal during the outage was a 503 with Retry-After (the
    // model records anything else as unexpected).
    assert!(stats.unexpected.is_empty(), "{:?}", stats.unexpected);
    drop((a, b));
}
