//! Smoke test of the built `pledge` binary against an in-process `pledged` on
//! 127.0.0.1:0: tokens, campaigns, commit --now, status, receipt export and
//! offline verification, demo, and the exit codes (0 ok, 1 failure, 2 usage).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};
use std::time::Duration;

use pledge_server::config::Config;
use pledge_server::{AppState, run};

fn pledge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pledge"))
        .args(args)
        .env_remove("PLEDGE_PASSPHRASE")
        .env_remove("PLEDGE_ADMIN_TOKEN")
        .env_remove("PLEDGE_SERVER")
        .env_remove("PLEDGE_WALLET")
        .env_remove("PLEDGE_WITNESSES")
        .env("TZ", "UTC")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn cli(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        pledge(&refs)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pledge_binary_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("data"));
    config.batch_interval = Duration::from_millis(20);
    config.demo = true;
    config.open_rate_per_minute = 0;
    let state = AppState::start(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, state, async {
        let _ = rx.await;
    }));
    let wallet = dir.path().join("wallet.pledge");
    let w = wallet.to_str().unwrap().to_owned();
    let common = |rest: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec![
            "--server".into(),
            base.clone(),
            "--wallet".into(),
            w.clone(),
            "--insecure-no-passphrase".into(),
        ];
        v.extend(rest.iter().map(|s| (*s).to_owned()));
        v
    };

    let o = cli(common(&["tokens", "--attest", "open"])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("pinned the log key at first use"), "{t}");
    assert!(t.contains("NOT protected by a passphrase"), "{t}");
    assert!(t.contains("token obtained for"), "{t}");

    let o = cli(common(&["campaigns"])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let id = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 64, "{t}");

    let o = cli(common(&["commit", &id, "--threshold", "1", "--now"])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("Privacy cost"), "{t}");
    assert!(t.contains("receipt"), "{t}");

    let o = cli(common(&["status"])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("ACTIVATED: your threshold 1 is at most A = 1"),
        "{t}"
    );
    assert!(t.contains("the biggest group in which everyone's"), "{t}");
    assert!(t.contains("yes, receipts verified"), "{t}");

    let rfile = dir.path().join("r.txt");
    let o = cli(common(&["receipt", &id, "--out", rfile.to_str().unwrap()])).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Offline, with the pinned key from the wallet.
    let o = cli(common(&["verify-receipt", rfile.to_str().unwrap()])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("receipt OK") && t.contains("threshold 1"), "{t}");
    // Tampered receipt: exit 1 with a reason.
    let r = std::fs::read_to_string(&rfile).unwrap();
    std::fs::write(&rfile, r.replacen("index ", "index 1", 1)).unwrap();
    let o = cli(common(&["verify-receipt", rfile.to_str().unwrap()])).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // A second commit on the same campaign: failure, exit 1.
    let o = cli(common(&["commit", &id, "--threshold", "2", "--now"])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("already pledged"), "{t}");

    // The wallet needs --insecure-no-passphrase to open; without a terminal
    // or PLEDGE_PASSPHRASE the error says what to do.
    let o = cli(vec![
        "--server".into(),
        base.clone(),
        "--wallet".into(),
        w.clone(),
        "status".into(),
    ])
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // Demo with 3 pledgers.
    let o = cli(vec![
        "--server".into(),
        base.clone(),
        "demo".into(),
        "--pledgers".into(),
        "3".into(),
    ])
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("receipts verified offline"), "{t}");
    assert!(t.contains("checked: the tally equals"), "{t}");

    // Usage error: exit 2. Unreachable server: exit 1 with a clear message.
    assert_eq!(cli(vec!["commit".into()]).await.status.code(), Some(2));
    let o = cli(vec![
        "--server".into(),
        "http://127.0.0.1:9".into(),
        "campaigns".into(),
    ])
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("cannot reach the server"), "{t}");

    let _ = tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}

/// Issue 14, findings 7 and 9: short ids, dates with their zone in and out,
/// `--background` and `send-pending`, same-threshold amendments refused,
/// usage errors exit 2, `audit` honours the global `--server`, a short
/// PLEDGE_PASSPHRASE is refused for a new wallet, and a failed first command
/// leaves no wallet behind. Each assertion failed on the old CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pledger_friction() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("data"));
    config.batch_interval = Duration::from_millis(20);
    config.demo = true;
    config.open_rate_per_minute = 0;
    config.publication = pledge_server::ledger::Publication::IMMEDIATE;
    let state = AppState::start(&config).await.unwrap();
    let admin = state.admin_token().to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, state, async {
        let _ = rx.await;
    }));
    let with = |wallet: &std::path::Path, rest: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec![
            "--server".into(),
            base.clone(),
            "--wallet".into(),
            wallet.to_str().unwrap().to_owned(),
            "--insecure-no-passphrase".into(),
        ];
        v.extend(rest.iter().map(|s| (*s).to_owned()));
        v
    };

    // The admin token comes from a file (the data folder's admin.token), never
    // the command line (issue 19).
    let token_file = dir.path().join("data/admin.token");
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap().trim(),
        admin.as_str()
    );
    let token_file = token_file.to_str().unwrap().to_owned();
    // `pledge admin --admin-token-file <data>/admin.token …`.
    let admin_cmd = |rest: &[&str]| {
        let mut args = vec!["admin", "--admin-token-file", token_file.as_str()];
        args.extend_from_slice(rest);
        with(&dir.path().join("admin-w"), &args)
    };
    let o = cli(with(
        &dir.path().join("admin-w"),
        &["admin", "campaign", "list"],
    ))
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "no token is a usage error: {t}");
    assert!(t.contains("--admin-token-file"), "{t}");

    // A deadline given with its offset is shown in the reader's zone (TZ=UTC here).
    let o = cli(admin_cmd(&[
        "campaign",
        "create",
        "--title",
        "staff strike",
        "--action",
        "walk out",
        "--deadline",
        "2099-03-08T11:00+01:00",
        "--goal",
        "5",
        "--attester",
        "invite:staff",
    ]))
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let staff = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();

    // Codes minted, listed by group in the campaign's view, then revoked;
    // the older spelling still works, with a warning for a token given on
    // the command line.
    let o = cli(admin_cmd(&[
        "invites", "mint", "--group", "staff", "--count", "2",
    ]))
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let codes = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(codes.lines().count(), 2, "{codes}");
    assert!(codes.lines().all(|c| c.starts_with("staff.")), "{codes}");
    let o = cli(with(
        &dir.path().join("admin-w"),
        &[
            "admin",
            "--admin-token",
            &admin,
            "mint-invites",
            "--group",
            "staff",
            "--count",
            "1",
        ],
    ))
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("warning: an admin token on the command line"),
        "{t}"
    );
    // `invites list`: counts per group (SPEC R-API-37), never a code; a
    // group no campaign takes is flagged. Without a token: a usage error.
    let o = cli(admin_cmd(&[
        "invites", "mint", "--group", "staf", "--count", "1",
    ]))
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = cli(admin_cmd(&["invites", "list"])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let table = String::from_utf8_lossy(&o.stdout).to_string();
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["GROUP", "UNUSED", "CODES", "OPEN", "CAMPAIGNS"],
        "{t}"
    );
    assert_eq!(rows[1][..3], ["staf", "1", "0"], "{t}");
    assert!(
        table.lines().nth(1).unwrap().contains("no open campaign"),
        "{t}"
    );
    assert_eq!(rows[2], ["staff", "3", "1"], "{t}");
    assert_eq!(rows.len(), 3, "{t}");
    for code in codes.lines() {
        assert!(!t.contains(code), "{t}");
    }
    let o = cli(with(
        &dir.path().join("admin-w"),
        &["admin", "invites", "list"],
    ))
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = cli(admin_cmd(&["invites", "revoke", "--group", "staff"])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("3 unused invite codes of group staff deleted"),
        "{t}"
    );
    let o = cli(admin_cmd(&["invites", "revoke", "--group", "staf"])).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = cli(admin_cmd(&["invites", "list"])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let table = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(table.lines().count(), 2, "{t}");
    assert!(table.lines().nth(1).unwrap().contains("mint more"), "{t}");
    assert_eq!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()[..3],
        ["staff", "0", "1"],
        "{t}"
    );
    let o = cli(admin_cmd(&["campaign", "show", &staff[..8]])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("staff strike") && t.contains("invite codes of group staff"),
        "{t}"
    );
    assert!(t.contains("signed tally statement:"), "{t}");
    let w1 = dir.path().join("w1");
    let o = cli(with(&w1, &["campaigns"])).await;
    let t = text(&o);
    assert!(t.contains("2099-03-08 10:00 UTC (+00:00), in "), "{t}");

    // A failed first command (a wrong invite code) leaves no wallet behind.
    let o = cli(with(
        &w1,
        &[
            "tokens",
            "--attest",
            "invite:00000000000000000000000000000000",
        ],
    ))
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(!w1.exists(), "{t}");

    // A usage error inside a first command keeps exit 2 (and no wallet).
    let o = cli(with(
        &w1,
        &["--witness", "not-a-key", "tokens", "--attest", "open"],
    ))
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!w1.exists());

    // Short ids: a unique prefix names the demo campaign.
    let o = cli(with(&w1, &["tokens", "--attest", "open"])).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = cli(with(&w1, &["campaigns"])).await;
    let demo = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.contains("Demo campaign"))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .next()
        .unwrap();
    let prefix = &demo[..8];

    // --background: signed and saved, not sent; status shows it pending;
    // send-pending --now sends it.
    let o = cli(with(
        &w1,
        &[
            "commit",
            prefix,
            "--threshold",
            "1",
            "--background",
            "--delay-max",
            "3600",
        ],
    ))
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("signed and saved in the wallet, pending"), "{t}");
    let o = cli(with(&w1, &["status"])).await;
    let t = text(&o);
    assert!(t.contains("not yet: signed and in the wallet"), "{t}");
    let o = cli(with(&w1, &["send-pending", "--now"])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("sent the pending entry on"), "{t}");
    let o = cli(with(&w1, &["status"])).await;
    let t = text(&o);
    assert!(
        t.contains("ACTIVATED: your threshold 1 is at most A = 1"),
        "{t}"
    );
    assert!(t.contains("yes, receipts verified"), "{t}");
    let o = cli(with(&w1, &["send-pending"])).await;
    assert!(text(&o).contains("nothing pending"), "{}", text(&o));

    // The same threshold again: refused, nothing logged.
    let o = cli(with(&w1, &["amend", prefix, "--threshold", "1"])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("already 1: nothing to change"), "{t}");

    // Usage errors exit 2.
    for bad in ["zz", "123", "xyz1", "0000000"] {
        let o = cli(with(&w1, &["commit", bad, "--threshold", "1", "--now"])).await;
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o));
    }
    let o = cli(with(&w1, &["tokens", "--attest", "nobody"])).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = cli(with(
        &w1,
        &[
            "admin",
            "--admin-token",
            &admin,
            "create-campaign",
            "--title",
            "t",
            "--action",
            "a",
            "--deadline",
            "next tuesday",
            "--goal",
            "1",
            "--attester",
            "open",
        ],
    ))
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // A new wallet refuses a short PLEDGE_PASSPHRASE (and is not created).
    let w2 = dir.path().join("w2");
    let o = Command::new(env!("CARGO_BIN_EXE_pledge"))
        .args([
            "--server",
            &base,
            "--wallet",
            w2.to_str().unwrap(),
            "tokens",
            "--attest",
            "open",
        ])
        .env("PLEDGE_PASSPHRASE", "")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!w2.exists());

    // Output into a closed pipe (`pledge campaigns | head -0`): no panic.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = Command::new(env!("CARGO_BIN_EXE_pledge"))
        .args(["--server", &base, "campaigns"])
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));

    // `pledge --server URL audit`, like every other command.
    let o = cli(vec!["--server".into(), base.clone(), "audit".into()]).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("PASS"), "{t}");

    let _ = tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}

/// `pledge audit` and `pledge witness serve` exit codes (the library returns
/// typed errors; the binary maps them): 0 for a passing audit, 2 for usage,
/// network and state errors; a generated witness key, then 2 for a key that
/// exists and for a witness without a log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_and_witness_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("data"));
    config.batch_interval = Duration::from_millis(20);
    config.demo = true;
    let state = AppState::start(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, state, async {
        let _ = rx.await;
    }));
    let audit = |rest: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec!["--server".into(), base.clone(), "audit".into()];
        v.extend(rest.iter().map(|s| (*s).to_owned()));
        v
    };

    // A passing audit pins the key in --state; --json prints the report.
    let st = dir.path().join("audit-state");
    let st = st.to_str().unwrap();
    let o = cli(audit(&["--state", st, "--json", "--threads", "2"])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["passed"], serde_json::Value::Bool(true), "{t}");

    // Usage errors: a quorum above the witnesses given, a malformed key.
    for bad in [&["--quorum", "1"][..], &["--log-key", "not a key"][..]] {
        let o = cli(audit(bad)).await;
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {t}");
        assert!(t.contains("pledge audit: "), "{t}");
    }
    // A state directory pinning another key than --log-key.
    let other = pledge_protocol::note::NoteSigner::generate(
        pledge_protocol::note::KeyName::new("other.example/log").unwrap(),
    )
    .unwrap()
    .verifier()
    .to_text();
    let o = cli(audit(&["--state", st, "--log-key", &other])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("the state directory pins log key"), "{t}");
    // Not a URL; nobody listening.
    let o = cli(vec!["--server".into(), "ftp://x".into(), "audit".into()]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = gone.local_addr().unwrap();
    drop(gone);
    let o = cli(vec![
        "--server".into(),
        format!("http://{addr}"),
        "audit".into(),
    ])
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("pledge audit: cannot read"), "{t}");

    // Witness: a new key (its verifier key on stdout), never overwritten.
    let key = dir.path().join("witness.key");
    let key = key.to_str().unwrap();
    let gen_key = || -> Vec<String> {
        [
            "witness",
            "serve",
            "--key",
            key,
            "--generate-key",
            "--name",
            "witness.example/w1",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };
    let o = cli(gen_key()).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("witness.example/w1+"),
        "{t}"
    );
    let o = cli(gen_key()).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("an existing key is never overwritten"), "{t}");
    // Serving without any --log is a configuration error.
    let wstate = dir.path().join("witness-state");
    let o = cli(vec![
        "witness".into(),
        "serve".into(),
        "--key".into(),
        key.to_owned(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--state".into(),
        wstate.to_str().unwrap().to_owned(),
    ])
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("pledge witness: no log configured"), "{t}");

    let _ = tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}

/// Issue 17: conditional funding through the CLI. `pledge demo --funding`
/// against `pledged --demo`; an organiser's funding campaign; supported and
/// funding pledges; standings before the close; the outcomes after it
/// (activated and funded, eligible but not funded, what the funder owes);
/// `pledge funding dues`; the audit; and refused terms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn funding_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("data"));
    config.batch_interval = Duration::from_millis(20);
    config.demo = true;
    config.open_rate_per_minute = 0;
    config.publication = pledge_server::ledger::Publication::IMMEDIATE;
    let state = AppState::start(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, state, async {
        let _ = rx.await;
    }));
    let with = |wallet: &str, rest: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec![
            "--server".into(),
            base.clone(),
            "--wallet".into(),
            dir.path().join(wallet).to_str().unwrap().to_owned(),
            "--insecure-no-passphrase".into(),
        ];
        v.extend(rest.iter().map(|s| (*s).to_owned()));
        v
    };

    // `pledge demo --funding` finds the demo's funding campaign and mixes
    // the three kinds; its joint tally is checked against the log.
    let o = cli(vec![
        "--server".into(),
        base.clone(),
        "demo".into(),
        "--funding".into(),
        "--pledgers".into(),
        "20".into(),
    ])
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("conditional funding in EUR"), "{t}");
    assert!(
        t.contains("kinds pledged: 10 act, 6 act if supported, 4 fund"),
        "{t}"
    );
    assert!(t.contains("checked: the tally equals"), "{t}");

    // An organiser's funding campaign, closing in a few seconds.
    let token_file = dir.path().join("data/admin.token");
    let deadline = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 8)
    .to_string();
    let o = cli(with(
        "admin-w",
        &[
            "admin",
            "--admin-token-file",
            token_file.to_str().unwrap(),
            "campaign",
            "create",
            "--title",
            "Strike fund",
            "--action",
            "strike",
            "--deadline",
            &deadline,
            "--goal",
            "1",
            "--threshold-max",
            "10",
            "--attester",
            "open",
            "--currency",
            "EUR",
            "--support-levels",
            "50,100",
        ],
    ))
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let id = t
        .split_whitespace()
        .skip_while(|w| *w != "campaign")
        .nth(1)
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 64, "{t}");

    for w in ["a", "b", "f"] {
        let o = cli(with(w, &["tokens", "--attest", "open"])).await;
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    // Refused before anything is signed: a support off the menu, an amount
    // with too many decimals, support on a campaign without funding.
    let o = cli(with(
        "a",
        &[
            "commit",
            &id,
            "--threshold",
            "1",
            "--support",
            "30",
            "--now",
        ],
    ))
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("not on the campaign's menu (50.00 EUR, 100.00 EUR)"),
        "{t}"
    );
    let o = cli(with(
        "a",
        &[
            "commit",
            &id,
            "--threshold",
            "1",
            "--support",
            "50.001",
            "--now",
        ],
    ))
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = cli(with("a", &["campaigns"])).await;
    let plain = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let o = cli(with(
        "a",
        &[
            "commit",
            &plain,
            "--threshold",
            "1",
            "--support",
            "50",
            "--now",
        ],
    ))
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("takes no conditional funding"), "{t}");

    // Two strikers asking 50 each at threshold 1, one funder of 50 if 1
    // strikes: A = 1, and the 50 level is split (one of the two acts).
    for w in ["a", "b"] {
        let o = cli(with(
            w,
            &[
                "commit",
                &id,
                "--threshold",
                "1",
                "--support",
                "50",
                "--now",
            ],
        ))
        .await;
        let t = text(&o);
        assert_eq!(o.status.code(), Some(0), "{t}");
        assert!(t.contains("act if 1 act and I receive 50.00 EUR"), "{t}");
    }
    let o = cli(with(
        "f",
        &["commit", &id, "--fund", "50", "--if", "1", "--now"],
    ))
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("give up to 50.00 EUR if 1 act"), "{t}");

    let o = cli(with("a", &["status"])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("ELIGIBLE, PARTLY FUNDED: your threshold 1 is at most A = 1, and 1 of the 2"),
        "{t}"
    );
    let o = cli(with("f", &["status"])).await;
    let t = text(&o);
    assert!(
        t.contains("CALLED: A = 1 reached your 1; on this tally you would owe 50.00 EUR"),
        "{t}"
    );

    // After the close: one striker acts and is paid, the other is told
    // plainly that the money did not stretch to them; the funder owes 50.
    let client = pledge_client::client::Client::new(&base).unwrap();
    let cid = pledge_protocol::hash::CampaignId::from_hex(&id).unwrap();
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    while client.campaign(&cid).await.unwrap().closed_index.is_none() {
        assert!(tokio::time::Instant::now() < until, "never closed");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut on = 0;
    let mut off = 0;
    for w in ["a", "b"] {
        let o = cli(with(w, &["status"])).await;
        let t = text(&o);
        assert_eq!(o.status.code(), Some(0), "{t}");
        if t.contains("IT'S ON FOR YOU") {
            assert!(t.contains("and the fund pays you 50.00 EUR"), "{t}");
            on += 1;
        } else {
            assert!(t.contains("ELIGIBLE, NOT FUNDED"), "{t}");
            assert!(t.contains("did not pick yours"), "{t}");
            off += 1;
        }
    }
    assert_eq!((on, off), (1, 1));
    let o = cli(with("f", &["status"])).await;
    let t = text(&o);
    assert!(
        t.contains("YOUR FUNDING IS CALLED") && t.contains("you owe 50.00 EUR"),
        "{t}"
    );

    // The export, recomputed from the log by anyone.
    let o = cli(with("admin-w", &["funding", "dues", &id])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let rows: Vec<&str> = t.lines().filter(|l| l.contains('\t')).collect();
    let rows: Vec<&str> = rows.into_iter().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(rows.len(), 3, "{t}");
    assert_eq!(
        rows.iter().filter(|l| l.ends_with("\tacts\t5000")).count(),
        1
    );
    assert_eq!(
        rows.iter()
            .filter(|l| l.ends_with("\teligible_not_funded\t0"))
            .count(),
        1
    );
    assert_eq!(
        rows.iter().filter(|l| l.ends_with("\towes\t5000")).count(),
        1
    );
    // On an open campaign it says why it cannot.
    let o = cli(with("admin-w", &["funding", "dues", &plain])).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    let o = cli(vec!["--server".into(), base.clone(), "audit".into()]).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("PASS"), "{t}");

    let _ = tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}

/// The e-mail attester from the command line, with a mail relay that is
/// down (the mail itself is tested in tests/tests/email.rs against a real
/// SMTP listener): an `email` campaign with a domain, shown as such; asking
/// for a code fails with `mail_unavailable`, a made-up code with
/// `email_code_invalid`, and neither leaves a wallet behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_attester_commands() {
    use pledge_server::issuer::email::{SmtpRelay, SmtpTls};
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("data"));
    config.batch_interval = Duration::from_millis(20);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    config.email.relay = Some(SmtpRelay {
        host: "127.0.0.1".into(),
        port: Some(port),
        tls: SmtpTls::None,
        credentials: None,
        from: "pledge@server.example".into(),
        ca_file: None,
    });
    let state = AppState::start(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, state, async {
        let _ = rx.await;
    }));
    let wallet = dir.path().join("w");
    let with = |rest: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec![
            "--server".into(),
            base.clone(),
            "--wallet".into(),
            wallet.to_str().unwrap().to_owned(),
            "--insecure-no-passphrase".into(),
        ];
        v.extend(rest.iter().map(|s| (*s).to_owned()));
        v
    };
    let token_file = dir.path().join("data/admin.token");
    let token_file = token_file.to_str().unwrap().to_owned();
    let create = |extra: &[&str]| {
        let mut args = vec![
            "admin",
            "--admin-token-file",
            token_file.as_str(),
            "campaign",
            "create",
            "--title",
            "union vote",
            "--action",
            "vote",
            "--deadline",
            "+1d",
            "--goal",
            "5",
        ];
        args.extend_from_slice(extra);
        with(&args)
    };
    let o = cli(create(&[
        "--attester",
        "open",
        "--email-domain",
        "x.example",
    ]))
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o = cli(create(&[
        "--attester",
        "email",
        "--email-domain",
        "Union.Example",
    ]))
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = cli(with(&["campaigns"])).await;
    let t = text(&o);
    assert!(
        t.contains("e-mail codes to addresses at union.example"),
        "{t}"
    );
    let o = cli(with(&["tokens", "--attest", "email:jane@union.example"])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("mail_unavailable"), "{t}");
    assert!(!wallet.exists(), "{t}");
    let o = cli(with(&[
        "tokens",
        "--attest",
        "email:jane@union.example",
        "--email-code",
        "12345678",
    ]))
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("email_code_invalid"), "{t}");
    assert!(!wallet.exists(), "{t}");
    // `--email-code -` with nothing on standard input: a clear error, no
    // prompt (standard input is no terminal), no request, no wallet.
    let o = cli(with(&[
        "tokens",
        "--attest",
        "email:jane@union.example",
        "--email-code",
        "-",
    ]))
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("no e-mail code on standard input"), "{t}");
    assert!(!t.contains("code from the mail"), "{t}");
    assert!(!wallet.exists(), "{t}");
    let o = cli(with(&["tokens", "--attest", "open", "--email-code", "1"])).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    let _ = tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}

/// Issue 19: an organiser closes a campaign before its deadline. Without
/// `--yes` nothing happens (exit 2); with it the CampaignClosed entry is
/// logged, the pledger's outcome is fixed at once, a second close is
/// refused, no pledge or token is taken any more, and the audit passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_closes_a_campaign_before_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("data"));
    config.batch_interval = Duration::from_millis(20);
    config.open_rate_per_minute = 0;
    config.publication = pledge_server::ledger::Publication::IMMEDIATE;
    let state = AppState::start(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, state, async {
        let _ = rx.await;
    }));
    let token_file = dir.path().join("data/admin.token");
    let with = |wallet: &str, rest: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec![
            "--server".into(),
            base.clone(),
            "--wallet".into(),
            dir.path().join(wallet).to_str().unwrap().to_owned(),
            "--insecure-no-passphrase".into(),
        ];
        v.extend(rest.iter().map(|s| (*s).to_owned()));
        v
    };
    let admin = |rest: &[&str]| {
        let mut args = vec!["admin", "--admin-token-file", token_file.to_str().unwrap()];
        args.extend_from_slice(rest);
        with("admin-w", &args)
    };
    let o = cli(admin(&[
        "campaign",
        "create",
        "--title",
        "Walkout",
        "--action",
        "walk out",
        "--deadline",
        "+7d",
        "--goal",
        "1",
        "--attester",
        "open",
    ]))
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let id = t
        .split_whitespace()
        .skip_while(|w| *w != "campaign")
        .nth(1)
        .unwrap()
        .to_owned();
    for w in ["p", "q"] {
        let o = cli(with(w, &["tokens", "--attest", "open"])).await;
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    let o = cli(with("p", &["commit", &id, "--threshold", "1", "--now"])).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Without --yes: a usage error, and the campaign stays open.
    let o = cli(admin(&["campaign", "close", &id[..8]])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("--yes"), "{t}");
    let client = pledge_client::client::Client::new(&base).unwrap();
    let cid = pledge_protocol::hash::CampaignId::from_hex(&id).unwrap();
    assert!(client.campaign(&cid).await.unwrap().closed_index.is_none());

    let o = cli(admin(&["campaign", "close", &id[..8], "--yes"])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("CampaignClosed entry"), "{t}");
    let c = client.campaign(&cid).await.unwrap();
    assert!(c.closed_index.is_some(), "{c:?}");
    assert_eq!(c.tally.unwrap().active, 1);

    // The outcome is fixed now, days before the deadline.
    let o = cli(with("p", &["status"])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("IT'S ON FOR YOU"), "{t}");
    // No second close, no more pledges.
    let o = cli(admin(&["campaign", "close", &id, "--yes"])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("campaign_closed"), "{t}");
    let o = cli(with("q", &["commit", &id, "--threshold", "1", "--now"])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("closed"), "{t}");

    let o = cli(vec!["--server".into(), base.clone(), "audit".into()]).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("PASS"), "{t}");

    let _ = tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}

/// Issue 19: an organiser extends a campaign's deadline and gives its text
/// in French (SPEC R-API-33, R-CLIENT-7). `extend` without `--yes` changes
/// nothing (exit 2), an earlier deadline is refused (exit 1), a later one is
/// logged and shown ("extended from"), `text` adds a language that `pledge
/// campaigns` lists, `status` shows the effective deadline and the one it
/// replaced, and `pledge
/// audit` passes on a log holding the updates (R-AUDIT-15, R-AUDIT-16).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_extends_a_campaign_and_gives_its_text_in_french() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("data"));
    config.batch_interval = Duration::from_millis(20);
    config.open_rate_per_minute = 0;
    config.publication = pledge_server::ledger::Publication::IMMEDIATE;
    let state = AppState::start(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, state, async {
        let _ = rx.await;
    }));
    let token_file = dir.path().join("data/admin.token");
    let with = |wallet: &str, rest: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec![
            "--server".into(),
            base.clone(),
            "--wallet".into(),
            dir.path().join(wallet).to_str().unwrap().to_owned(),
            "--insecure-no-passphrase".into(),
        ];
        v.extend(rest.iter().map(|s| (*s).to_owned()));
        v
    };
    let admin = |rest: &[&str]| {
        let mut args = vec!["admin", "--admin-token-file", token_file.to_str().unwrap()];
        args.extend_from_slice(rest);
        with("admin-w", &args)
    };
    // A deadline as a date with its offset, 10 days from now (whole seconds).
    let in_days = |d: i64| {
        jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_hours(24 * d))
            .unwrap()
            .round(jiff::Unit::Second)
            .unwrap()
    };
    let original = in_days(10);
    let o = cli(admin(&[
        "campaign",
        "create",
        "--title",
        "Walkout",
        "--text",
        "We walk out.",
        "--action",
        "walk out",
        "--deadline",
        &original.to_string(),
        "--goal",
        "1",
        "--attester",
        "open",
    ]))
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let id = t
        .split_whitespace()
        .skip_while(|w| *w != "campaign")
        .nth(1)
        .unwrap()
        .to_owned();
    let client = pledge_client::client::Client::new(&base).unwrap();
    let cid = pledge_protocol::hash::CampaignId::from_hex(&id).unwrap();

    // Without --yes: a usage error, nothing logged.
    let later = in_days(20);
    let later_arg = later
        .to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(1)))
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    let o = cli(admin(&[
        "campaign",
        "extend",
        &id[..8],
        "--deadline",
        &later_arg,
    ]))
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("--yes"), "{t}");
    let c = client.campaign(&cid).await.unwrap();
    assert_eq!(c.deadline, original.as_second() as u64);
    assert!(c.original_deadline.is_none());
    // Earlier: refused by the server, typed.
    let earlier = in_days(5).to_string();
    let o = cli(admin(&[
        "campaign",
        "extend",
        &id,
        "--deadline",
        &earlier,
        "--yes",
    ]))
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("deadline_not_later"), "{t}");
    // Later: logged, and shown as extended.
    let o = cli(admin(&[
        "campaign",
        "extend",
        &id[..8],
        "--deadline",
        &later_arg,
        "--yes",
    ]))
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("CampaignUpdated entry") && t.contains("extended from"),
        "{t}"
    );
    let c = client.campaign(&cid).await.unwrap();
    assert_eq!(c.deadline, later.as_second() as u64);
    assert_eq!(c.original_deadline, Some(original.as_second() as u64));

    // A French text from a file (CR LF read as LF, the last line feed dropped).
    let file = dir.path().join("fr.txt");
    std::fs::write(&file, "Nous débrayons.\r\nTous ensemble.\r\n").unwrap();
    let o = cli(admin(&[
        "campaign",
        "text",
        &id[..8],
        "--lang",
        "FR",
        "--title",
        "Débrayage",
        "--text-file",
        file.to_str().unwrap(),
    ]))
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("languages now: fr"), "{t}");
    let c = client.campaign(&cid).await.unwrap();
    assert_eq!(c.texts.len(), 1);
    assert_eq!(c.texts[0].lang, "fr");
    assert_eq!(c.texts[0].text, "Nous débrayons.\nTous ensemble.");
    assert_eq!(c.title, "Walkout", "the original title stays");
    // A bad tag is a usage error before anything is sent.
    let o = cli(admin(&[
        "campaign", "text", &id, "--lang", "fr_FR", "--title", "x",
    ]))
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    let o = cli(with("p", &["campaigns"])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("(extended from "), "{t}");
    assert!(t.contains("also in: fr"), "{t}");
    let o = cli(admin(&["campaign", "show", &id[..8]])).await;
    let t = text(&o);
    assert!(
        t.contains("(extended from ") && t.contains("also in: fr"),
        "{t}"
    );

    // A pledger's status shows the effective deadline.
    let o = cli(with("p", &["tokens", "--attest", "open"])).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = cli(with("p", &["commit", &id, "--threshold", "1", "--now"])).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = cli(with("p", &["status"])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let shown = later
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%d %H:%M")
        .to_string();
    assert!(t.contains(&shown), "status should show {shown}: {t}");
    assert!(
        t.contains("(extended from "),
        "status should say the deadline was extended: {t}"
    );

    let o = cli(vec!["--server".into(), base.clone(), "audit".into()]).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("PASS"), "{t}");
    assert!(t.contains("CampaignUpdated 2"), "{t}");

    let _ = tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}
