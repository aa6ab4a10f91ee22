//! Pledger client tests against a real `pledged` on 127.0.0.1:0: the wallet
//! file (round trip, wrong passphrase, tampering, mode 0600, no plaintext),
//! cover issuance with the logged-key check (and a key-tagging proxy that is
//! refused), commit / amend / withdraw / status / watch with receipts
//! verified offline, and `pledge demo` with a few pledgers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pledge_client::client::{Client, ClientError};
use pledge_client::demo::{self, DemoOptions};
use pledge_client::flows::{self, AttestKind, FlowError, PendingFilter, WatchNews};
use pledge_client::wallet::{KdfParams, PinnedLog, Protection, TokenRecord, Wallet, WalletError};
use pledge_protocol::hash::CampaignId;
use pledge_protocol::pledge::PledgeSigningKey;
use pledge_protocol::token::{IssuerSecretKey, Token};
use pledge_tests::proxy::{Paths, Proxy, Rule};
use pledge_tests::server::Server;
use pledge_tests::witness::WitnessServer;

/// A server with the harness defaults and `rate` open-attester tokens per
/// minute and address (0: no limit).
async fn start_with(rate: u32) -> Server {
    Server::start(|c| c.open_rate_per_minute = rate).await
}

async fn start() -> Server {
    start_with(0).await
}

fn protection() -> Protection {
    Protection::Passphrase {
        passphrase: String::from("correct horse battery staple").into(),
        params: KdfParams::TESTING,
    }
}

async fn demo_campaign(c: &Client) -> CampaignId {
    c.campaigns().await.unwrap()[0].id().unwrap()
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn wallet_round_trip_wrong_passphrase_tampering_and_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("wallet.pledge");
    let key = PledgeSigningKey::generate().unwrap();
    let seed_hex = hex::encode(key.to_seed().as_slice());
    let campaign = CampaignId([7; 32]);
    let token = Token {
        pledge_pk: key.public_key(),
        randomizer: [1; 32],
        signature: [2; 256],
    };
    // A pending request with a real blinding state.
    let issuer = IssuerSecretKey::generate().unwrap();
    let pk2 = PledgeSigningKey::generate().unwrap();
    let (blinded, state) =
        pledge_protocol::token::blind(issuer.public_key(), &campaign, &pk2.public_key()).unwrap();

    let mut w = Wallet::create(&path, protection()).unwrap();
    w.data.log = Some(PinnedLog {
        server: "http://x".into(),
        verifier_key: "k".into(),
        checkpoint_size: 3,
        checkpoint_root: "00".repeat(32),
        ..PinnedLog::default()
    });
    w.data
        .tokens
        .push(TokenRecord::new(campaign, token.clone(), &key));
    w.data
        .pending
        .push(pledge_client::wallet::PendingToken::new(
            campaign,
            issuer.public_key().clone(),
            &pk2,
            state,
        ));
    w.save().unwrap();
    #[cfg(unix)]
    {
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
    }
    // Creating over an existing wallet is refused.
    assert!(matches!(
        Wallet::create(&path, protection()),
        Err(WalletError::AlreadyExists(_))
    ));

    // No plaintext secret or identifying content in the file.
    let bytes = std::fs::read(&path).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("pledge-wallet v1 argon2id m=1024 t=1 p=1 salt="));
    for needle in [
        seed_hex.as_str(),
        &hex::encode(key.to_seed().as_slice()),
        &campaign.to_hex(),
        "verifier_key",
        "tokens",
    ] {
        assert!(!text.contains(needle), "{needle} appears in the file");
    }
    assert!(
        !bytes.windows(32).any(|w| w == key.to_seed().as_slice()),
        "raw seed in the file"
    );

    // Round trip.
    let w2 = Wallet::open(&path, protection()).unwrap();
    assert_eq!(w2.data.log, w.data.log);
    assert_eq!(w2.data.tokens.len(), 1);
    assert_eq!(w2.data.tokens[0].token, token);
    assert_eq!(w2.data.tokens[0].key().public_key(), key.public_key());
    assert_eq!(w2.data.pending.len(), 1);
    assert_eq!(
        w2.data.pending[0].state().blinded_message(),
        blinded,
        "the blinding state survives, so the request can be resent unchanged"
    );
    assert_eq!(w2.data.pending[0].key().public_key(), pk2.public_key());

    // Wrong passphrase: a clear error, file untouched.
    let wrong = Protection::Passphrase {
        passphrase: String::from("wrong").into(),
        params: KdfParams::TESTING,
    };
    let e = Wallet::open(&path, wrong).unwrap_err();
    assert!(matches!(e, WalletError::Decrypt(_)), "{e}");
    assert!(e.to_string().contains("wrong passphrase"), "{e}");
    // Opening a passphrase wallet without one says so.
    let e = Wallet::open(&path, Protection::InsecureNoPassphrase).unwrap_err();
    assert!(matches!(e, WalletError::Protection(_)), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes);

    // Any flipped byte (ciphertext or header) is detected; nothing is rewritten.
    for pos in [bytes.len() - 1, bytes.len() - 40, 30, 60] {
        let mut bad = bytes.clone();
        bad[pos] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        let e = Wallet::open(&path, protection()).unwrap_err();
        assert!(
            matches!(e, WalletError::Decrypt(_) | WalletError::BadHeader { .. }),
            "flip at {pos}: {e}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), bad);
    }
    // Truncated file.
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(Wallet::open(&path, protection()).is_err());
    // open_or_create never replaces a damaged wallet.
    assert!(Wallet::open_or_create(&path, protection()).is_err());

    // An insecure wallet is marked in its header, still hides and authenticates.
    let ipath = dir.path().join("insecure.pledge");
    let mut iw = Wallet::create(&ipath, Protection::InsecureNoPassphrase).unwrap();
    iw.data
        .tokens
        .push(TokenRecord::new(campaign, token.clone(), &key));
    iw.save().unwrap();
    let ibytes = std::fs::read(&ipath).unwrap();
    let itext = String::from_utf8_lossy(&ibytes);
    assert!(itext.starts_with("pledge-wallet v1 insecure-no-passphrase nonce="));
    assert!(!itext.contains(&seed_hex));
    assert!(matches!(
        Wallet::open(&ipath, protection()),
        Err(WalletError::Protection(_))
    ));
    let iw2 = Wallet::open(&ipath, Protection::InsecureNoPassphrase).unwrap();
    assert!(iw2.is_insecure());
    assert_eq!(iw2.data.tokens[0].token, token);
}

/// A key-tagging proxy: forwards everything, but rewrites `issuer_key` in
/// campaign objects to a key of its own.
async fn key_tagging_proxy(upstream: &str) -> Proxy {
    let fake = IssuerSecretKey::generate().unwrap();
    Proxy::with(
        upstream,
        [Rule::tag_issuer_keys(
            B64.encode(fake.public_key().as_spki()),
        )],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_prove_the_logged_key_and_a_key_tagging_server_is_refused() {
    let srv = start().await;
    let client = Client::new(&srv.base).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w");
    let mut w = Wallet::create(&path, protection()).unwrap();
    let (log, new) = flows::pin_log(&client, &mut w).await.unwrap();
    assert!(new);
    let r = flows::obtain_tokens(&client, &mut w, &log, &AttestKind::Open)
        .await
        .unwrap();
    assert_eq!(r.keys_checked, 1);
    assert_eq!(r.obtained.len(), 1);
    assert!(w.data.pending.is_empty());
    let id = demo_campaign(&client).await;
    assert!(w.data.unused_token(&id).is_some());
    // A second call asks for nothing new.
    let r = flows::obtain_tokens(&client, &mut w, &log, &AttestKind::Open)
        .await
        .unwrap();
    assert_eq!((r.obtained.len(), r.already_held.len()), (0, 1));
    // Stored and reopened.
    let w2 = Wallet::open(&path, protection()).unwrap();
    assert_eq!(w2.data.tokens.len(), 1);
    assert_eq!(w2.data.log.as_ref().unwrap().verifier_key, log.to_text());

    // A second campaign (admin) is covered too: cover issuance over all open
    // campaigns of the attester.
    let admin = srv.admin.clone();
    let now = pledge_tests::unix_now();
    client
        .create_campaign(
            &admin,
            &pledge_client::client::NewCampaign {
                title: "second".into(),
                text: String::new(),
                action: "act".into(),
                deadline: now + 3600,
                goal: 2,
                threshold_min: 1,
                threshold_max: 10,
                attester: pledge_client::client::AttesterSpec::Open,
                publication: None,
                funding: None,
                sealed: None,
            },
        )
        .await
        .unwrap();
    let mut fresh = Wallet::in_memory();
    let (log2, _) = flows::pin_log(&client, &mut fresh).await.unwrap();
    let r = flows::obtain_tokens(&client, &mut fresh, &log2, &AttestKind::Open)
        .await
        .unwrap();
    assert_eq!((r.keys_checked, r.obtained.len()), (2, 2));
    // A bad admin token is a clear 401.
    let e = client.mint_invites("nope", "g", 1).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(401), Some("unauthorized")));

    // Invite codes: the code's group only; a code is single-use.
    // An invite-only campaign of `group`, titled `title`.
    let invite_campaign = |title: &'static str, group: &'static str| {
        let (client, admin) = (&client, &admin);
        async move {
            client
                .create_campaign(
                    admin,
                    &pledge_client::client::NewCampaign {
                        title: title.into(),
                        text: String::new(),
                        action: "act".into(),
                        deadline: now + 3600,
                        goal: 2,
                        threshold_min: 1,
                        threshold_max: 10,
                        attester: pledge_client::client::AttesterSpec::Invite {
                            group: group.into(),
                        },
                        publication: None,
                        funding: None,
                        sealed: None,
                    },
                )
                .await
                .unwrap()
        }
    };
    invite_campaign("staff", "staff").await;
    // A second invite group open at the same time: a code must say which
    // group it is for (issue 14: `--group` was needed, or the tokens failed).
    let night = invite_campaign("night shift", "night.shift").await;
    let minted = client.mint_invites(&admin, "staff", 1).await.unwrap();
    assert_eq!(minted.campaigns, 1, "the staff campaign takes these codes");
    let code = minted.codes[0].as_str();
    assert!(
        code.starts_with("staff.") && code.len() == "staff.".len() + 32,
        "a code names its group"
    );
    assert_eq!(flows::invite_code_group(code), Some("staff"));
    let none = client.mint_invites(&admin, "stafff", 1).await.unwrap();
    assert_eq!(none.campaigns, 0, "a misspelt group has no campaign");
    assert!(!format!("{minted:?}").contains(minted.codes[0].as_str()));
    let codes = minted.codes;
    let invite = AttestKind::Invite {
        code: codes[0].clone(),
        group: None,
    };
    assert!(!format!("{invite:?}").contains(codes[0].as_str()));
    let mut iw = Wallet::in_memory();
    let (ilog, _) = flows::pin_log(&client, &mut iw).await.unwrap();
    let r = flows::obtain_tokens(&client, &mut iw, &ilog, &invite)
        .await
        .unwrap();
    assert_eq!((r.keys_checked, r.obtained.len()), (1, 1));
    let mut again = Wallet::in_memory();
    flows::pin_log(&client, &mut again).await.unwrap();
    let e = flows::obtain_tokens(&client, &mut again, &ilog, &invite)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, FlowError::Client(c) if c.code() == Some("invite_invalid")),
        "{e}"
    );
    assert!(again.data.pending.is_empty() && again.data.tokens.is_empty());

    // The other group's code, with no --group either: that group's campaign
    // only; a --group contradicting the code is refused before any request.
    let night_code = client.mint_invites(&admin, "night.shift", 1).await.unwrap();
    assert_eq!(
        flows::invite_code_group(&night_code.codes[0]),
        Some("night.shift")
    );
    let mut nw = Wallet::in_memory();
    let (nlog, _) = flows::pin_log(&client, &mut nw).await.unwrap();
    let wrong = AttestKind::Invite {
        code: night_code.codes[0].clone(),
        group: Some("staff".into()),
    };
    let e = flows::obtain_tokens(&client, &mut nw, &nlog, &wrong)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("is for group night.shift"), "{e}");
    assert!(nw.data.pending.is_empty());
    let by_code = AttestKind::Invite {
        code: night_code.codes[0].clone(),
        group: None,
    };
    let r = flows::obtain_tokens(&client, &mut nw, &nlog, &by_code)
        .await
        .unwrap();
    assert_eq!(r.obtained, vec![night.campaign_id.clone()]);

    // Through the key-tagging proxy: refused before any token request.
    let proxy = key_tagging_proxy(&srv.base).await;
    let pc = Client::new(&proxy.base).unwrap();
    let mut tagged = Wallet::in_memory();
    let (plog, _) = flows::pin_log(&pc, &mut tagged).await.unwrap();
    let e = flows::obtain_tokens(&pc, &mut tagged, &plog, &AttestKind::Open)
        .await
        .unwrap_err();
    assert!(matches!(e, FlowError::KeyMismatch { .. }), "{e}");
    assert!(e.to_string().contains("Refusing"), "{e}");
    assert_eq!(proxy.count("/v1/tokens"), 0);
    assert!(tagged.data.tokens.is_empty() && tagged.data.pending.is_empty());

    // A wallet pinned to this log refuses a server with another log key.
    let other = start().await;
    let oc = Client::new(&other.base).unwrap();
    let mut w3 = Wallet::open(&path, protection()).unwrap();
    let e = flows::pin_log(&oc, &mut w3).await.unwrap_err();
    assert!(matches!(e, FlowError::LogKeyChanged { .. }), "{e}");
    let _ = other.stop().await;
    let _ = srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_amend_withdraw_status_watch_and_receipts() {
    let srv = start().await;
    let client = Client::new(&srv.base).unwrap();
    let id = demo_campaign(&client).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w");
    let mut w = Wallet::create(&path, protection()).unwrap();
    let (log, _) = flows::pin_log(&client, &mut w).await.unwrap();

    // No token yet: a clear error.
    let e = flows::commit(&client, &mut w, &log, &id, 1, Duration::ZERO)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no unused token"), "{e}");
    flows::obtain_tokens(&client, &mut w, &log, &AttestKind::Open)
        .await
        .unwrap();
    // Out of range: refused locally.
    let e = flows::commit(&client, &mut w, &log, &id, 1001, Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(e, FlowError::Campaign(_)), "{e}");

    // Pledge with t = 2: included, not activated (A = 0).
    let s = flows::commit(&client, &mut w, &log, &id, 2, Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(s.nullifier.len(), 64);
    let st = flows::status(&client, &mut w, &log).await.unwrap();
    assert_eq!(st.len(), 1);
    assert!(st[0].included);
    assert_eq!((st[0].threshold, st[0].live, st[0].active), (2, 1, 0));
    assert!(!st[0].activated);
    // Pledging twice is refused locally.
    let e = flows::commit(&client, &mut w, &log, &id, 3, Duration::ZERO)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already pledged"), "{e}");

    // Watch while someone else pledges t = 1: then A = 2 and I am activated.
    let wallet_for_watch = Wallet::open(&path, protection()).unwrap();
    let wc = client.clone();
    let wlog = log.clone();
    let watcher = tokio::spawn(async move {
        let mut w = wallet_for_watch;
        let mut news = Vec::new();
        flows::watch(
            &wc,
            &mut w,
            &wlog,
            Duration::from_millis(200),
            Some(Duration::from_secs(4)),
            |n| news.push(n),
        )
        .await
        .unwrap();
        news
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut other = Wallet::in_memory();
    let (olog, _) = flows::pin_log(&client, &mut other).await.unwrap();
    flows::obtain_tokens(&client, &mut other, &olog, &AttestKind::Open)
        .await
        .unwrap();
    flows::commit(&client, &mut other, &olog, &id, 1, Duration::ZERO)
        .await
        .unwrap();
    let news = watcher.await.unwrap();
    assert!(
        news.iter().any(|n| matches!(
            n,
            WatchNews::Activated {
                threshold: 2,
                active: 2,
                ..
            }
        )),
        "{news:?}"
    );
    let st = flows::status(&client, &mut w, &log).await.unwrap();
    assert!(st[0].activated && st[0].active == 2);

    // Amend to 3: no longer activated (two pledges, t = 1 and 3: A = 1).
    flows::change(&client, &mut w, &log, &id, Some(3.into()))
        .await
        .unwrap();
    let st = flows::status(&client, &mut w, &log).await.unwrap();
    assert_eq!(
        (st[0].threshold, st[0].active, st[0].activated),
        (3, 1, false)
    );
    assert!(st[0].included);

    // Receipts: exported with the entry, verified offline; a flipped proof fails.
    let text = flows::export_receipt(&w, &id).unwrap();
    let check = flows::verify_receipt(text.as_bytes(), &log, None).unwrap();
    assert!(
        check.entry.unwrap().contains("PledgeAmended"),
        "amend receipt"
    );
    let rfile = dir.path().join("receipt.txt");
    std::fs::write(&rfile, &text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let proof_line = lines.iter().position(|l| l.starts_with("index ")).unwrap() + 1;
    let mut bad: Vec<String> = lines.iter().map(|s| (*s).to_owned()).collect();
    let mut b = B64.decode(&bad[proof_line]).unwrap();
    b[0] ^= 1;
    bad[proof_line] = B64.encode(b);
    let bad = format!("{}\n", bad.join("\n"));
    let e = flows::verify_receipt(bad.as_bytes(), &log, None).unwrap_err();
    assert!(matches!(e, FlowError::Receipt(_)), "{e}");
    // Another log's key refuses it.
    let other_key = pledge_protocol::note::NoteSigner::generate(
        pledge_protocol::note::KeyName::new(log.name().as_str()).unwrap(),
    )
    .unwrap()
    .verifier();
    assert!(flows::verify_receipt(text.as_bytes(), &other_key, None).is_err());

    // Withdraw: final, and the tally drops to the other pledge.
    flows::change(&client, &mut w, &log, &id, None)
        .await
        .unwrap();
    let e = flows::change(&client, &mut w, &log, &id, Some(2.into()))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no live pledge"), "{e}");
    let st = flows::status(&client, &mut w, &log).await.unwrap();
    assert!(st[0].withdrawn && !st[0].activated && st[0].included);
    assert_eq!((st[0].live, st[0].active), (1, 1));

    // Everything persisted; every receipt verifies from the reopened file.
    let w2 = Wallet::open(&path, protection()).unwrap();
    assert_eq!(w2.data.pledges.len(), 1);
    assert_eq!(w2.data.pledges[0].entries.len(), 3);
    assert!(flows::receipts_valid(&w2.data.pledges[0], &log));
    assert!(w2.data.tokens[0].used);
    assert!(w2.data.log.as_ref().unwrap().checkpoint_size > 0);

    // The server's refusal codes reach the caller: resubmitting the spent pledge.
    let first = B64.decode(&w2.data.pledges[0].entries[0].entry).unwrap();
    let e = client
        .submit_bytes("/v1/pledges", &first)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::Refused { status: 409, code, .. } if code == "double_spend"),
        "{e}"
    );
    assert!(!e.is_retryable());

    // Random delays stay within the bound.
    for _ in 0..50 {
        assert!(
            flows::random_delay(Duration::from_millis(30)).unwrap() <= Duration::from_millis(30)
        );
    }
    let _ = srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_pledgers_and_tally_recomputation() {
    let srv = start().await;
    let client = Client::new(&srv.base).unwrap();
    let mut lines = Vec::new();
    let mut say = |s: String| lines.push(s);
    let opts = DemoOptions {
        pledgers: 8,
        concurrency: 4,
        ..DemoOptions::default()
    };
    let r = demo::run(&client, &opts, &mut say).await.unwrap();
    assert!(!r.created);
    assert_eq!(r.pledged, 8);
    // Plan: i % 4 == 1 amends (i = 1, 5), i % 5 == 3 withdraws (i = 3).
    assert_eq!((r.amended, r.withdrawn), (2, 1));
    assert_eq!(r.receipts_verified, 8 + 2 + 1);
    assert_eq!(r.live, 7);
    assert_eq!(r.histogram.iter().map(|(_, n)| n).sum::<u64>(), 7);
    assert_eq!(
        r.active,
        pledge_protocol::tally::recompute_active(&r.histogram)
    );
    // The campaign JSON summary agrees with the signed statement.
    let c = client
        .campaign(&CampaignId::from_hex(&r.campaign).unwrap())
        .await
        .unwrap();
    assert_eq!(c.tally.unwrap().live, 7);

    // With the admin token: its own campaign, run twice is fine (fresh campaign).
    let opts = DemoOptions {
        pledgers: 3,
        admin_token: Some(srv.admin.clone()),
        ..DemoOptions::default()
    };
    let r2 = demo::run(&client, &opts, &mut |_| {}).await.unwrap();
    assert!(r2.created);
    assert_ne!(r2.campaign, r.campaign);
    assert_eq!(r2.live, 3);
    let _ = srv.stop().await;

    // Against a server whose open attester allows 1 request a minute, the
    // demo reports the rate limit instead of hanging when told not to wait.
    let slow = start_with(1).await;
    let client = Client::new(&slow.base).unwrap();
    let opts = DemoOptions {
        pledgers: 3,
        concurrency: 1,
        max_rate_wait: Duration::ZERO,
        ..DemoOptions::default()
    };
    let e = demo::run(&client, &opts, &mut |_| {}).await.unwrap_err();
    assert!(
        matches!(
            &e,
            FlowError::Client(ClientError::Refused { status: 429, .. })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("rate_limited"), "{e}");
    let _ = slow.stop().await;
}

#[test]
fn wallet_debug_output_holds_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Wallet::create(&dir.path().join("w"), protection()).unwrap();
    let key = PledgeSigningKey::generate().unwrap();
    let campaign = CampaignId([9; 32]);
    let token = Token {
        pledge_pk: key.public_key(),
        randomizer: [1; 32],
        signature: [2; 256],
    };
    w.data.tokens.push(TokenRecord::new(campaign, token, &key));
    w.save().unwrap();
    let dbg = format!("{w:?} {:?}", w.data.tokens[0]);
    assert!(!dbg.contains("correct horse"), "{dbg}");
    assert!(
        !dbg.contains(&hex::encode(key.to_seed().as_slice())),
        "{dbg}"
    );
    assert!(!dbg.contains(&campaign.to_hex()), "{dbg}");
    // Saving twice reuses the derived key and still opens.
    w.save().unwrap();
    assert_eq!(
        Wallet::open(&dir.path().join("w"), protection())
            .unwrap()
            .data
            .tokens
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_token_answer_is_resent_unchanged_from_the_saved_blinding_state() {
    let srv = start().await;
    // Token answers are swallowed (after the server signed) and replaced by
    // a 503, like a connection lost on the way back.
    let proxy = Proxy::with(&srv.base, [Rule::lose_answers(Paths::is("/v1/tokens"))]).await;
    let lossy = Client::new(&proxy.base).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w");
    let mut w = Wallet::create(&path, protection()).unwrap();
    let (log, _) = flows::pin_log(&lossy, &mut w).await.unwrap();
    let e = flows::obtain_tokens(&lossy, &mut w, &log, &AttestKind::Open)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, FlowError::Client(c) if c.is_retryable()),
        "{e}"
    );
    assert_eq!(c_retry(&e), Some(Duration::from_secs(1)));
    assert_eq!(proxy.count("/v1/tokens"), 1);
    drop(w);
    // "Crash": the pending state was saved before sending; reopen the file.
    let mut w = Wallet::open(&path, protection()).unwrap();
    assert_eq!(w.data.pending.len(), 1);
    assert!(w.data.tokens.is_empty());
    let key = w.data.pending[0].key().public_key();
    // The next call, straight to the server, resends the same request.
    let client = Client::new(&srv.base).unwrap();
    let r = flows::obtain_tokens(&client, &mut w, &log, &AttestKind::Open)
        .await
        .unwrap();
    assert_eq!(r.obtained.len(), 1);
    assert!(w.data.pending.is_empty());
    assert_eq!(w.data.tokens[0].token.pledge_pk, key);
    // The token verifies under the logged key: the saved state finalised the
    // server's signature of the very blinded message sent before the "crash".
    let id = demo_campaign(&client).await;
    let cp = flows::checkpoint(&client, &mut w, &log).await.unwrap();
    let pk = flows::verified_issuer_key(&client, &cp, &client.campaign(&id).await.unwrap())
        .await
        .unwrap();
    w.data.tokens[0].token.verify(&pk, &id).unwrap();
    let _ = srv.stop().await;
}

fn c_retry(e: &FlowError) -> Option<Duration> {
    match e {
        FlowError::Client(c) => c.retry_after(),
        _ => None,
    }
}

async fn second_campaign(srv: &Server) -> CampaignId {
    open_campaign(srv, "second", "act", 3600, 2).await
}

/// Issue 14, finding 3: two commands on one wallet file, each holding the
/// wallet in memory (as `pledge commit` does through its delay), both save;
/// neither pledge is lost, and both can still be withdrawn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_commands_on_one_wallet_file_keep_both_pledges() {
    let srv = start().await;
    let client = Client::new(&srv.base).unwrap();
    let first = demo_campaign(&client).await;
    let second = second_campaign(&srv).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w");
    let mut w = Wallet::create(&path, protection()).unwrap();
    let (log, _) = flows::pin_log(&client, &mut w).await.unwrap();
    let r = flows::obtain_tokens(&client, &mut w, &log, &AttestKind::Open)
        .await
        .unwrap();
    assert_eq!(r.obtained.len(), 2);
    drop(w);

    // Two handles opened before either commits.
    let mut a = Wallet::open(&path, protection()).unwrap();
    let mut b = Wallet::open(&path, protection()).unwrap();
    let sa = flows::commit(&client, &mut a, &log, &first, 2, Duration::ZERO)
        .await
        .unwrap();
    let sb = flows::commit(&client, &mut b, &log, &second, 3, Duration::ZERO)
        .await
        .unwrap();
    // And at the same time, each on its own handle: an amendment of the
    // first pledge and of the second.
    let mut c = Wallet::open(&path, protection()).unwrap();
    let mut d = Wallet::open(&path, protection()).unwrap();
    let (ra, rb) = tokio::join!(
        flows::change(&client, &mut c, &log, &first, Some(4.into())),
        flows::change(&client, &mut d, &log, &second, Some(5.into())),
    );
    ra.unwrap();
    rb.unwrap();

    let mut w = Wallet::open(&path, protection()).unwrap();
    assert_eq!(w.data.pledges.len(), 2, "a pledge vanished from the wallet");
    assert!(w.data.pending.is_empty());
    assert_eq!(w.data.tokens.len(), 2);
    assert!(w.data.tokens.iter().all(|t| t.used));
    for (id, s, t) in [(first, &sa, 4), (second, &sb, 5)] {
        let rec = w.data.pledge_for(&id).unwrap();
        assert_eq!(rec.nullifier, s.nullifier);
        assert_eq!(rec.threshold, t);
        assert_eq!(rec.entries.len(), 2);
        assert!(flows::receipts_valid(rec, &log));
    }
    let st = flows::status(&client, &mut w, &log).await.unwrap();
    assert_eq!(st.len(), 2);
    assert!(st.iter().all(|s| s.included && s.unacknowledged == 0));

    // Both can be withdrawn from the file (the "no live pledge of yours").
    let mut w = w;
    for id in [first, second] {
        flows::change(&client, &mut w, &log, &id, None)
            .await
            .unwrap();
    }
    let w = Wallet::open(&path, protection()).unwrap();
    assert!(w.data.pledges.iter().all(|p| p.withdrawn));
    assert!(w.data.pledges.iter().all(|p| p.entries.len() == 3));
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| {
        let n = e.unwrap().file_name();
        n == "w" || n == "w.lock"
    }));
    let _ = srv.stop().await;
}

/// Issue 14, finding 3 and "Wallet safety": a pledge is in the wallet,
/// pending, before the random delay starts: another handle sees it (what
/// `pledge status` reads), and when the delayed command dies, the next
/// `commit` sends that very entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_pledge_is_pending_in_the_wallet_and_resumed_after_an_interruption() {
    let srv = start().await;
    let client = Client::new(&srv.base).unwrap();
    let id = demo_campaign(&client).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w");
    let (mut w, log) = file_pledger(&client, &path).await;

    // `pledge commit` with its delay (the longest the CLI draws).
    let (tc, tl) = (client.clone(), log.clone());
    let delayed = tokio::spawn(async move {
        flows::commit(&tc, &mut w, &tl, &id, 2, Duration::from_secs(600)).await
    });
    // Another command opens the file: the pledge is there, pending. (Waits
    // for the save, not for any time: the bound only turns a hang into a
    // failure.)
    let mut seen = None;
    for _ in 0..300 {
        let other = Wallet::open(&path, protection()).unwrap();
        if let Some(rec) = other.data.pledge_for(&id) {
            seen = Some((rec.clone(), other));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (rec, mut other) = seen.expect("the delayed pledge is not in the wallet during the delay");
    assert!(!delayed.is_finished());
    assert_eq!((rec.threshold, rec.entries.len()), (2, 1));
    assert!(rec.unacknowledged().is_some());
    assert!(other.data.tokens[0].used);
    let st = flows::status(&client, &mut other, &log).await.unwrap();
    assert_eq!(st.len(), 1);
    assert!(!st[0].included);
    assert_eq!((st[0].unacknowledged, st[0].live), (1, 0));

    // The delayed command dies (ctrl-c); a later `commit` resumes: it sends
    // the entry saved before the delay, unchanged.
    delayed.abort();
    assert!(delayed.await.unwrap_err().is_cancelled());
    let mut again = Wallet::open(&path, protection()).unwrap();
    let s = flows::commit(&client, &mut again, &log, &id, 2, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(s.nullifier, rec.nullifier);
    let mut w = Wallet::open(&path, protection()).unwrap();
    let done = w.data.pledge_for(&id).unwrap();
    assert_eq!(done.entries.len(), 1);
    assert_eq!(done.entries[0].entry, rec.entries[0].entry);
    assert_eq!(done.entries[0].index, Some(s.index));
    assert!(flows::receipts_valid(done, &log));
    let st = flows::status(&client, &mut w, &log).await.unwrap();
    assert!(st[0].included);
    assert_eq!(st[0].live, 1);
    let _ = srv.stop().await;
}

/// A wallet file at `path` with the log pinned and tokens for every open campaign.
async fn file_pledger(
    client: &Client,
    path: &Path,
) -> (Wallet, pledge_protocol::note::NoteVerifier) {
    let mut w = Wallet::create(path, protection()).unwrap();
    let (log, _) = flows::pin_log(client, &mut w).await.unwrap();
    flows::obtain_tokens(client, &mut w, &log, &AttestKind::Open)
        .await
        .unwrap();
    (w, log)
}

/// A wallet (in memory) with the log pinned and tokens for every open campaign.
async fn pledger(client: &Client) -> (Wallet, pledge_protocol::note::NoteVerifier) {
    let mut w = Wallet::in_memory();
    let (log, _) = flows::pin_log(client, &mut w).await.unwrap();
    flows::obtain_tokens(client, &mut w, &log, &AttestKind::Open)
        .await
        .unwrap();
    (w, log)
}

/// Issue 14, finding 4: `status` reads every campaign the same way whatever
/// the wallet holds, so a pledger's requests equal a non-pledger's (on the
/// old code the pledger alone asked for its campaign and its tally).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_requests_are_the_same_for_pledgers_and_others() {
    let srv = start().await;
    let proxy = Proxy::start(&srv.base).await;
    let client = Client::new(&proxy.base).unwrap();
    let demo = demo_campaign(&client).await;
    let second = second_campaign(&srv).await;
    let (mut a, alog) = pledger(&client).await;
    let (mut b, blog) = pledger(&client).await;
    flows::commit(&client, &mut a, &alog, &demo, 2, Duration::ZERO)
        .await
        .unwrap();
    // Both read up to the same checkpoint first: the consistency proof from
    // a wallet's last checkpoint depends on that size, not on its pledges.
    assert_eq!(
        flows::status(&client, &mut a, &alog).await.unwrap().len(),
        1
    );
    assert!(
        flows::status(&client, &mut b, &blog)
            .await
            .unwrap()
            .is_empty()
    );
    let _ = proxy.take_requests();
    let mine = flows::status(&client, &mut a, &alog).await.unwrap();
    let pledger_requests = proxy.take_requests();
    flows::status(&client, &mut b, &blog).await.unwrap();
    let other_requests = proxy.take_requests();
    assert_eq!(mine[0].threshold, 2);
    assert_eq!(pledger_requests, other_requests);
    for id in [demo, second] {
        let tally = format!("GET /v1/campaigns/{}/tally", id.to_hex());
        assert!(pledger_requests.contains(&tally), "{pledger_requests:?}");
    }
    assert!(
        !pledger_requests
            .iter()
            .any(|r| r == &format!("GET /v1/campaigns/{}", demo.to_hex())),
        "{pledger_requests:?}"
    );
    let _ = srv.stop().await;
}

/// Issue 14, finding 2: a server replaying an older tally statement (an
/// "ACTIVATED" that no longer holds) is refused — older than one the wallet
/// accepted before, or older than the wallet's own acknowledged entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_older_tally_statement_is_refused() {
    let srv = start().await;
    let proxy = Proxy::start(&srv.base).await;
    let client = Client::new(&proxy.base).unwrap();
    let demo = demo_campaign(&client).await;
    let tally_path = format!("/v1/campaigns/{}/tally", demo.to_hex());
    let (mut p, plog) = pledger(&client).await;
    let (mut r, rlog) = pledger(&client).await;
    let before = client.tally_statement(&demo).await.unwrap();
    flows::commit(&client, &mut p, &plog, &demo, 1, Duration::ZERO)
        .await
        .unwrap();
    let st = flows::status(&client, &mut p, &plog).await.unwrap();
    assert!(st[0].activated);
    let after_p = client.tally_statement(&demo).await.unwrap();

    // Replayed to a wallet that saw a newer one.
    proxy.set([Rule::serve(Paths::is(&tally_path), before)]);
    let e = flows::status(&client, &mut p, &plog).await.unwrap_err();
    assert!(
        matches!(&e, FlowError::StaleStatement { why, .. } if why.contains("accepted before")),
        "{e}"
    );
    proxy.clear();

    // Replayed to a wallet that never read a statement, but pledged after it.
    flows::commit(&client, &mut r, &rlog, &demo, 3, Duration::ZERO)
        .await
        .unwrap();
    proxy.set([Rule::serve(Paths::is(tally_path), after_p)]);
    let e = flows::status(&client, &mut r, &rlog).await.unwrap_err();
    assert!(
        matches!(&e, FlowError::StaleStatement { why, .. } if why.contains("your own")),
        "{e}"
    );
    proxy.clear();
    let st = flows::status(&client, &mut r, &rlog).await.unwrap();
    assert_eq!((st[0].threshold, st[0].live), (3, 2));
    let _ = srv.stop().await;
}

/// An open-attester campaign, thresholds 1..=10, whose deadline is `secs`
/// from now.
async fn open_campaign(
    srv: &Server,
    title: &str,
    action: &str,
    secs: u64,
    goal: u32,
) -> CampaignId {
    let now = pledge_tests::unix_now();
    // Straight to the server: the tamper proxy forwards no credentials.
    let c = Client::new(&srv.base)
        .unwrap()
        .create_campaign(
            &srv.admin,
            &pledge_client::client::NewCampaign {
                title: title.into(),
                text: String::new(),
                action: action.into(),
                deadline: now + secs,
                goal,
                threshold_min: 1,
                threshold_max: 10,
                attester: pledge_client::client::AttesterSpec::Open,
                publication: None,
                funding: None,
                sealed: None,
            },
        )
        .await
        .unwrap();
    CampaignId::from_hex(&c.campaign_id).unwrap()
}

/// Issue 14, finding 6: at close, status says plainly whether the action is
/// on for me, from the CampaignClosed entry proven in the log; a statement
/// that disagrees with that entry is refused even by a wallet with no memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outcome_at_close_comes_from_the_closing_entry() {
    let srv = start().await;
    let proxy = Proxy::start(&srv.base).await;
    let client = Client::new(&proxy.base).unwrap();
    let id = open_campaign(&srv, "closing soon", "walk out at 11:00", 4, 2).await;
    let (mut p, plog) = pledger(&client).await;
    let (mut q, qlog) = pledger(&client).await;
    let empty = client.tally_statement(&id).await.unwrap();
    flows::commit(&client, &mut p, &plog, &id, 1, Duration::ZERO)
        .await
        .unwrap();
    flows::commit(&client, &mut q, &qlog, &id, 3, Duration::ZERO)
        .await
        .unwrap();
    let st = flows::status(&client, &mut p, &plog).await.unwrap();
    assert!(st[0].outcome.is_none() && st[0].outcome_text().is_none());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let c = client.campaigns().await.unwrap();
        if c.iter()
            .any(|c| c.id().unwrap() == id && c.closed_index.is_some())
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never closed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let st = flows::status(&client, &mut p, &plog).await.unwrap();
    let o = st[0].outcome.unwrap();
    assert_eq!((o.active, o.live), (1, 2));
    assert_eq!(
        (st[0].on_for_me(), st[0].goal_reached()),
        (Some(true), Some(false))
    );
    let text = st[0].outcome_text().unwrap();
    assert!(text.starts_with("IT'S ON FOR YOU"), "{text}");
    assert!(text.contains("did not reach its goal of 2"), "{text}");
    assert!(text.contains("walk out at 11:00"), "{text}");
    let st = flows::status(&client, &mut q, &qlog).await.unwrap();
    assert_eq!(st[0].on_for_me(), Some(false));
    assert!(st[0].outcome_text().unwrap().starts_with("NOT ON"));

    // The statement of the empty campaign, replayed after the close.
    proxy.set([Rule::serve(
        Paths::is(format!("/v1/campaigns/{}/tally", id.to_hex())),
        empty,
    )]);
    let mut fresh = Wallet::in_memory();
    let (flog, _) = flows::pin_log(&client, &mut fresh).await.unwrap();
    let e = flows::status(&client, &mut fresh, &flog).await.unwrap_err();
    assert!(
        e.to_string().contains("disagrees with the final tally"),
        "{e}"
    );
    let _ = srv.stop().await;
}

/// Issue 14, finding 5: a running watch re-reads the wallet, so an amendment
/// and a new pledge made by other commands are followed with the right
/// threshold (the old watch kept the threshold it started with).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_amendments_and_pledges_made_after_it_started() {
    let srv = start().await;
    let client = Client::new(&srv.base).unwrap();
    let demo = demo_campaign(&client).await;
    let second = second_campaign(&srv).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w");
    let (mut w, log) = file_pledger(&client, &path).await;
    flows::commit(&client, &mut w, &log, &demo, 2, Duration::ZERO)
        .await
        .unwrap();
    let (mut q, qlog) = pledger(&client).await;
    flows::commit(&client, &mut q, &qlog, &demo, 2, Duration::ZERO)
        .await
        .unwrap();

    let mut watched = Wallet::open(&path, protection()).unwrap();
    let (wc, wlog) = (client.clone(), log.clone());
    let watcher = tokio::spawn(async move {
        let mut news = Vec::new();
        flows::watch(
            &wc,
            &mut watched,
            &wlog,
            Duration::from_millis(200),
            Some(Duration::from_secs(8)),
            |n| news.push(n),
        )
        .await
        .unwrap();
        news
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Another command, on its own handle of the same file.
    let mut other = Wallet::open(&path, protection()).unwrap();
    flows::change(&client, &mut other, &log, &demo, Some(3.into()))
        .await
        .unwrap();
    flows::commit(&client, &mut other, &log, &second, 1, Duration::ZERO)
        .await
        .unwrap();
    let news = watcher.await.unwrap();
    assert!(
        news.contains(&WatchNews::Following {
            campaign: demo.to_hex(),
            threshold: 3,
            active: 0,
            activated: false,
        }),
        "{news:?}"
    );
    assert!(
        news.contains(&WatchNews::Following {
            campaign: second.to_hex(),
            threshold: 1,
            active: 1,
            activated: true,
        }),
        "{news:?}"
    );
    assert!(
        !news
            .iter()
            .any(|n| matches!(n, WatchNews::Deactivated { threshold: 2, .. })),
        "{news:?}"
    );
    let _ = srv.stop().await;
}

/// Issue 14, finding 2: the wallet pins the server's witness policy at first
/// use, and a checkpoint without the quorum (cosignatures stripped by a
/// coerced server, or a witness the user chose that never cosigned) is
/// refused; the real, cosigned one is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_without_the_pinned_witness_quorum_are_refused() {
    use pledge_protocol::cosignature::WitnessSigner;
    use pledge_protocol::note::KeyName;
    let dir = tempfile::tempdir().unwrap();
    let witness = WitnessServer::of_log_in(dir.path(), "witness.test").await;
    let wkey = witness.key.clone();
    let srv = Server::start_in(dir.path(), |c| c.witnesses = vec![witness.config()]).await;
    let proxy = Proxy::start(&srv.base).await;
    let client = Client::new(&proxy.base).unwrap();
    let id = demo_campaign(&client).await;

    let (mut w, log) = pledger(&client).await;
    let pinned = w.data.log.clone().unwrap();
    assert_eq!(pinned.witnesses, Some(vec![wkey.to_text()]));
    assert_eq!(pinned.quorum, 1);
    flows::commit(&client, &mut w, &log, &id, 1, Duration::ZERO)
        .await
        .unwrap();
    let cp = flows::checkpoint(&client, &mut w, &log).await.unwrap();
    assert!(cp.checkpoint().size() >= 2);

    proxy.set([Rule::strip_cosignatures()]);
    let e = flows::status(&client, &mut w, &log).await.unwrap_err();
    assert!(
        matches!(
            e,
            FlowError::WitnessQuorum {
                found: 0,
                required: 1,
                ..
            }
        ),
        "{e}"
    );
    proxy.clear();
    assert_eq!(flows::status(&client, &mut w, &log).await.unwrap().len(), 1);

    // A witness of the user's own choice that never saw this log.
    let stranger = WitnessSigner::generate(KeyName::new("witness.other").unwrap())
        .unwrap()
        .verifier();
    let policy = flows::WitnessPolicy::parse(&[stranger.to_text()], 1).unwrap();
    flows::pin_witnesses(&mut w, &policy);
    let e = flows::checkpoint(&client, &mut w, &log).await.unwrap_err();
    assert!(
        matches!(e, FlowError::WitnessQuorum { found: 0, .. }),
        "{e}"
    );
    assert!(flows::WitnessPolicy::parse(&[stranger.to_text()], 2).is_err());
    let _ = srv.stop().await;
    let _ = witness.server.stop().await;
}

/// Issue 14, finding 7: a pledge signed for later (`commit --background`)
/// is in the wallet, not sent before its time, sent exactly once after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_pledge_waits_for_its_time_then_is_sent_once() {
    let srv = start().await;
    let client = Client::new(&srv.base).unwrap();
    let demo = demo_campaign(&client).await;
    let (mut w, log) = pledger(&client).await;
    let due = 2_000_000_000;
    let signed = flows::sign_pledge(&client, &mut w, &demo, 2, Some(due))
        .await
        .unwrap();
    assert!(!signed.resend);
    let r = flows::send_pending(&client, &mut w, &log, PendingFilter::DueBy(due - 1))
        .await
        .unwrap();
    assert!(r.sent.is_empty());
    assert_eq!(r.waiting, vec![(demo.to_hex(), due)]);
    let st = flows::status(&client, &mut w, &log).await.unwrap();
    assert_eq!((st[0].unacknowledged, st[0].live), (1, 0));
    let r = flows::send_pending(&client, &mut w, &log, PendingFilter::DueBy(due))
        .await
        .unwrap();
    assert_eq!(r.sent.len(), 1);
    assert!(r.waiting.is_empty());
    let r = flows::send_pending(&client, &mut w, &log, PendingFilter::All)
        .await
        .unwrap();
    assert!(r.sent.is_empty() && r.waiting.is_empty());
    let st = flows::status(&client, &mut w, &log).await.unwrap();
    assert_eq!((st[0].unacknowledged, st[0].live), (0, 1));
    assert!(st[0].included);
    let _ = srv.stop().await;
}
