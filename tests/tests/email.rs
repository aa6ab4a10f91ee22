//! The e-mail attester (SPEC R-API-28 … R-API-31, issue 19) end to end,
//! against a real SMTP listener (Python's aiosmtpd, `pledge_tests::smtp`):
//! a code is mailed, read from the listener's folder, redeemed for a token
//! that pledges; one token per address and campaign; wrong codes count and
//! void the code; domain restrictions and rate limits hold; a relay that is
//! down gets 503 and leaves nothing behind; and neither the data folder nor
//! the server's log lines hold the address or a code. Plain SMTP on loopback
//! (the relay setting `smtp_tls = "none"`), and one STARTTLS run with a
//! self-signed certificate trusted through `smtp_ca_file`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pledge_protocol::entry::Entry;
use pledge_protocol::hash::CampaignId;
use pledge_protocol::pledge::{Pledge, Terms};
use pledge_protocol::token::IssuerPublicKey;
use pledge_server::issuer::email::{SmtpRelay, SmtpTls};
use pledge_tests::server::{Server, TokenRequest};
use pledge_tests::smtp::{Smtp, code_of};
use pledge_tests::unix_now;
use serde_json::{Value, json};

fn relay(port: u16) -> SmtpRelay {
    SmtpRelay {
        host: "127.0.0.1".into(),
        port: Some(port),
        tls: SmtpTls::None,
        credentials: None,
        from: "Pledges <pledge@server.example>".into(),
        ca_file: None,
    }
}

async fn email_campaign(srv: &Server, domains: Option<&[&str]>) -> (CampaignId, IssuerPublicKey) {
    let mut attester = json!({"kind": "email"});
    if let Some(d) = domains {
        attester["domains"] = json!(d);
    }
    let (s, v) = srv
        .post_admin(
            "/v1/campaigns",
            &json!({"title": "Walkout", "action": "walk out", "deadline": unix_now() + 3600,
                    "goal": 2, "threshold_min": 1, "threshold_max": 10,
                    "attester": attester}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = CampaignId::from_hex(v["campaign_id"].as_str().unwrap()).unwrap();
    let (s, b) = srv.get(&format!("/v1/campaigns/{}", id.to_hex())).await;
    assert_eq!(s, 200);
    let c: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(c["attester"], "email");
    match domains {
        Some(d) => assert_eq!(c["email_domains"], json!(d)),
        None => assert!(c.get("email_domains").is_none(), "{c}"),
    }
    let key = B64.decode(c["issuer_key"].as_str().unwrap()).unwrap();
    (id, IssuerPublicKey::from_spki(&key).unwrap())
}

async fn ask(srv: &Server, address: &str, campaigns: &[&CampaignId]) -> (u16, Value) {
    let ids: Vec<String> = campaigns.iter().map(|c| c.to_hex()).collect();
    srv.post(
        "/v1/attest/email",
        &json!({"address": address, "campaigns": ids}),
    )
    .await
}

fn attestation(address: &str, code: &str) -> Value {
    json!({"kind": "email", "address": address, "code": code})
}

/// A code that is not `code`.
fn wrong(code: &str) -> String {
    let last = code.as_bytes()[7];
    format!("{}{}", &code[..7], if last == b'0' { '1' } else { '0' })
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn contains_ci(hay: &[u8], needle: &str) -> bool {
    let hay = hay.to_ascii_lowercase();
    let needle = needle.to_ascii_lowercase();
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emailed_code_gives_one_token_per_address_and_campaign() {
    pledge_tests::logs::capture();
    let mut smtp = Smtp::start();
    let dir = tempfile::tempdir().unwrap();
    let port = smtp.port;
    let srv = Server::start_in(dir.path(), |c| {
        c.email.relay = Some(relay(port));
        c.email.max_attempts = 3;
        c.email.per_address_per_hour = 3;
    })
    .await;
    // The marked address: its local part must appear nowhere but in the mail.
    let jane = "  Jane.Marker-7f3a@Union.EXAMPLE ";
    let (c1, pk1) = email_campaign(&srv, Some(&["union.example"])).await;
    let (c2, pk2) = email_campaign(&srv, None).await;
    let mut codes = Vec::new();

    // 1. A code for both campaigns, mailed to the normalized address.
    let (s, v) = ask(&srv, jane, &[&c1, &c2]).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(
        (v["expires_in"].as_u64(), v["attempts"].as_u64()),
        (Some(900), Some(3))
    );
    let mail = smtp.wait_message(0);
    assert!(
        mail.starts_with("X-Rcpt-To: Jane.Marker-7f3a@union.example\r\n"),
        "{mail}"
    );
    let code = code_of(&mail);
    assert_eq!(code.len(), 8, "{mail}");
    codes.push(code.clone());
    // A wrong code is refused (and costs an attempt).
    let req = TokenRequest::new(&c1, &pk1, attestation(jane, &wrong(&code)));
    let (s, v) = srv.post("/v1/tokens", &req.body).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("email_code_invalid")),
        "{v}"
    );
    // The right one gives the token, which pledges.
    let req = TokenRequest::new(&c1, &pk1, attestation(jane, &code));
    let (s, v) = srv.post("/v1/tokens", &req.body).await;
    let (token, key) = req.finish(s, &v);
    let p = Pledge::sign(c1, token, Terms::threshold(1).unwrap(), &key).unwrap();
    let (s, v) = srv.submit("/v1/pledges", &Entry::Pledge(p)).await;
    assert_eq!(s, 200, "{v}");
    // The code is spent.
    let req = TokenRequest::new(&c2, &pk2, attestation(jane, &code));
    let (s, v) = srv.post("/v1/tokens", &req.body).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("email_code_invalid")),
        "{v}"
    );

    // 2. Another case of the local part is another address (R-API-28), with
    // its own limit; another case of the domain is the same address, whose
    // campaign c1 already gave it its token.
    let (s, v) = ask(&srv, "jane.marker-7f3a@union.example", &[&c1]).await;
    assert_eq!(s, 202, "{v}");
    let (s, v) = ask(&srv, "Jane.Marker-7f3a@UNION.example", &[&c1]).await;
    assert_eq!(s, 202, "{v}");
    let mail = smtp.wait_message(2);
    assert!(mail.starts_with("X-Rcpt-To: Jane.Marker-7f3a@union.example\r\n"));
    let code = code_of(&mail);
    codes.push(code.clone());
    let req = TokenRequest::new(
        &c1,
        &pk1,
        attestation("Jane.Marker-7f3a@union.example", &code),
    );
    let (s, v) = srv.post("/v1/tokens", &req.body).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (409, Some("already_issued")),
        "{v}"
    );
    codes.push(code_of(&smtp.wait_message(1)));

    // 3. The third request of the hour for jane: a code for c2 only.
    let (s, v) = ask(&srv, jane, &[&c2]).await;
    assert_eq!(s, 202, "{v}");
    let code = code_of(&smtp.wait_message(3));
    codes.push(code.clone());
    // Not good for c1, which it was not asked for (and that costs no attempt).
    let req = TokenRequest::new(&c1, &pk1, attestation(jane, &code));
    let (s, v) = srv.post("/v1/tokens", &req.body).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("email_code_invalid")),
        "{v}"
    );
    let req = TokenRequest::new(&c2, &pk2, attestation(jane, &code));
    let (s, v) = srv.post("/v1/tokens", &req.body).await;
    req.finish(s, &v);
    // A fourth within the hour: rate limited.
    let (s, v) = ask(&srv, jane, &[&c2]).await;
    assert_eq!((s, v["error"].as_str()), (429, Some("rate_limited")), "{v}");

    // 4. Domain restriction; wrong attester; bad addresses.
    let (s, v) = ask(&srv, "bob.marker-7f3a@other.example", &[&c2, &c1]).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("email_domain_not_allowed")),
        "{v}"
    );
    let (s, b) = srv.get("/v1/campaigns").await;
    assert_eq!(s, 200);
    let demo: Value = serde_json::from_slice(&b).unwrap();
    let demo = CampaignId::from_hex(demo["campaigns"][0]["campaign_id"].as_str().unwrap()).unwrap();
    let (s, v) = ask(&srv, "bob.marker-7f3a@other.example", &[&demo]).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("attester_not_allowed")),
        "{v}"
    );
    for bad in [
        "no-at-sign",
        "x@localhost",
        "x@[127.0.0.1]",
        "ünï@union.example",
    ] {
        let (s, v) = ask(&srv, bad, &[&c1]).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (400, Some("bad_request")),
            "{bad}: {v}"
        );
    }
    let (s, v) = ask(&srv, "bob.marker-7f3a@other.example", &[&c2, &c2]).await;
    assert_eq!(s, 400, "{v}");

    // 5. Attempts: three wrong codes void the code.
    let bob = "bob.marker-7f3a@other.example";
    let (s, v) = ask(&srv, bob, &[&c2]).await;
    assert_eq!(s, 202, "{v}");
    let code = code_of(&smtp.wait_message(4));
    codes.push(code.clone());
    for _ in 0..3 {
        let req = TokenRequest::new(&c2, &pk2, attestation(bob, &wrong(&code)));
        let (s, v) = srv.post("/v1/tokens", &req.body).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (403, Some("email_code_invalid")),
            "{v}"
        );
    }
    let req = TokenRequest::new(&c2, &pk2, attestation(bob, &code));
    let (s, v) = srv.post("/v1/tokens", &req.body).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("email_code_invalid")),
        "{v}"
    );

    // 6. The relay is down: 503, nothing kept, nothing counted.
    smtp.stop();
    let carol = "carol.marker-7f3a@other.example";
    for _ in 0..4 {
        let (s, v) = ask(&srv, carol, &[&c2]).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (503, Some("mail_unavailable")),
            "{v}"
        );
    }
    let req = TokenRequest::new(&c2, &pk2, attestation(carol, "12345678"));
    let (s, v) = srv.post("/v1/tokens", &req.body).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("email_code_invalid")),
        "{v}"
    );
    assert!(
        pledge_tests::logs::text().contains("the mail relay did not take an e-mail code"),
        "the failure is logged"
    );
    // Back up on the same port: carol's failed requests did not count.
    let smtp = Smtp::start_on(port);
    for i in 0..3 {
        let (s, v) = ask(&srv, carol, &[&c2]).await;
        assert_eq!(s, 202, "{v}");
        codes.push(code_of(&smtp.wait_message(i)));
    }
    let req = TokenRequest::new(&c2, &pk2, attestation(carol, codes.last().unwrap()));
    let (s, v) = srv.post("/v1/tokens", &req.body).await;
    req.finish(s, &v);

    // 7. Privacy: neither the data folder nor the log lines hold a local
    // part of these addresses or any code (R-API-4, R-API-29, R-STORE-1).
    srv.shutdown().await;
    let log = pledge_tests::logs::text();
    assert!(log.contains("pledge_server"), "the log was captured");
    let files = files_under(dir.path());
    assert!(files.len() >= 3, "{files:?}");
    for secret in ["marker-7f3a"]
        .into_iter()
        .map(String::from)
        .chain(codes.iter().cloned())
    {
        assert!(!contains_ci(log.as_bytes(), &secret), "{secret} in the log");
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            assert!(!contains_ci(&bytes, &secret), "{secret} in {}", f.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_go_over_starttls_to_a_relay_of_a_private_ca() {
    pledge_tests::logs::capture();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (the openssl package) makes the test certificate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let smtp = Smtp::start_tls(&cert, &key);
    let port = smtp.port;

    // Without the CA the relay's certificate is refused: 503, no mail.
    let srv = Server::start(|c| {
        c.email.relay = Some(SmtpRelay {
            tls: SmtpTls::StartTls,
            ..relay(port)
        });
    })
    .await;
    let (c, _) = email_campaign(&srv, None).await;
    let (s, v) = ask(&srv, "dana@tls.example", &[&c]).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (503, Some("mail_unavailable")),
        "{v}"
    );
    assert!(smtp.messages().is_empty());
    srv.shutdown().await;

    // With it, the code arrives.
    let srv = Server::start(|c| {
        c.email.relay = Some(SmtpRelay {
            tls: SmtpTls::StartTls,
            ca_file: Some(cert.clone()),
            ..relay(port)
        });
    })
    .await;
    let (c, pk) = email_campaign(&srv, None).await;
    let (s, v) = ask(&srv, "dana@tls.example", &[&c]).await;
    assert_eq!(s, 202, "{v}");
    let code = code_of(&smtp.wait_message(0));
    let req = TokenRequest::new(&c, &pk, attestation("dana@tls.example", &code));
    let (s, v) = srv.post("/v1/tokens", &req.body).await;
    req.finish(s, &v);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_relay_there_are_no_email_campaigns() {
    let srv = Server::start(|_| {}).await;
    let (s, v) = srv
        .post_admin(
            "/v1/campaigns",
            &json!({"title": "T", "action": "A", "deadline": unix_now() + 3600,
                    "goal": 1, "threshold_min": 1, "threshold_max": 1,
                    "attester": {"kind": "email"}}),
        )
        .await;
    assert_eq!((s, v["error"].as_str()), (422, Some("bad_campaign")), "{v}");
    for domains in [
        json!([]),
        json!(["Upper.example"]),
        json!(["a.example", "a.example"]),
    ] {
        let (s, v) = srv
            .post_admin(
                "/v1/campaigns",
                &json!({"title": "T", "action": "A", "deadline": unix_now() + 3600,
                        "goal": 1, "threshold_min": 1, "threshold_max": 1,
                        "attester": {"kind": "email", "domains": domains}}),
            )
            .await;
        assert_eq!(
            (s, v["error"].as_str()),
            (400, Some("bad_request")),
            "{domains}: {v}"
        );
    }
    srv.shutdown().await;
}

/// The client library's flow (what `pledge tokens --attest email:ADDRESS`
/// runs): a code for every open e-mail campaign taking the address's
/// domain, then cover issuance for exactly those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_asks_a_code_for_every_email_campaign_of_its_domain() {
    use pledge_client::client::Client;
    use pledge_client::flows::{self, AttestKind};
    use pledge_client::wallet::Wallet;
    use zeroize::Zeroizing;

    let smtp = Smtp::start();
    let port = smtp.port;
    let srv = Server::start(|c| c.email.relay = Some(relay(port))).await;
    let (ours, _) = email_campaign(&srv, Some(&["union.example"])).await;
    let (any, _) = email_campaign(&srv, None).await;
    let (_theirs, _) = email_campaign(&srv, Some(&["other.example"])).await;
    let client = Client::new(&srv.base).unwrap();
    let mut w = Wallet::in_memory();
    let (log, _) = flows::pin_log(&client, &mut w).await.unwrap();
    let address = "Eve@Union.example";
    let (sent, n) = flows::request_email_code(&client, &w, address)
        .await
        .unwrap();
    assert_eq!((sent.unwrap().expires_in, n), (900, 2));
    let code = code_of(&smtp.wait_message(0));
    let kind = AttestKind::Email {
        address: Zeroizing::new(address.into()),
        code: Zeroizing::new(code.clone()),
    };
    assert!(!format!("{kind:?}").contains(&code) && !format!("{kind:?}").contains("Eve"));
    let r = flows::obtain_tokens(&client, &mut w, &log, &kind)
        .await
        .unwrap();
    let mut got = r.obtained.clone();
    got.sort();
    let mut want = vec![ours.to_hex(), any.to_hex()];
    want.sort();
    assert_eq!(got, want);
    // Holding both tokens, nothing more is asked (no mail).
    let (sent, n) = flows::request_email_code(&client, &w, address)
        .await
        .unwrap();
    assert!(sent.is_none() && n == 0);
    assert_eq!(smtp.messages().len(), 1);
    srv.shutdown().await;
}

/// A code past its lifetime is refused, and a new one works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_code_is_refused() {
    let smtp = Smtp::start();
    let port = smtp.port;
    let srv = Server::start(|c| {
        c.email.relay = Some(relay(port));
        c.email.code_ttl = std::time::Duration::from_secs(1);
    })
    .await;
    let (c, pk) = email_campaign(&srv, None).await;
    let (s, v) = ask(&srv, "fay@late.example", &[&c]).await;
    assert_eq!((s, v["expires_in"].as_u64()), (202, Some(1)), "{v}");
    let code = code_of(&smtp.wait_message(0));
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let req = TokenRequest::new(&c, &pk, attestation("fay@late.example", &code));
    let (s, v) = srv.post("/v1/tokens", &req.body).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("email_code_invalid")),
        "{v}"
    );
    let (s, v) = ask(&srv, "fay@late.example", &[&c]).await;
    assert_eq!(s, 202, "{v}");
    let code = code_of(&smtp.wait_message(1));
    let req = TokenRequest::new(&c, &pk, attestation("fay@late.example", &code));
    let (s, v) = srv.post("/v1/tokens", &req.body).await;
    req.finish(s, &v);
    srv.shutdown().await;
}

/// R-API-10 and R-STORE-4: the store holds exactly `HMAC-SHA-256(k,
/// SHA-256("pledge email v1" ‖ 0 ‖ address) ‖ campaign_id)` for an address's
/// token (recomputed here from `issuer.hmac`), and no longer once the
/// campaign has closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_mark_is_the_specified_keyed_hash_and_goes_at_close() {
    use hmac::{Hmac, KeyInit, Mac};
    use pledge_server::store::{IssuerStore as _, Mark};

    let smtp = Smtp::start();
    let port = smtp.port;
    let dir = tempfile::tempdir().unwrap();
    let tweak = |c: &mut pledge_server::config::Config| c.email.relay = Some(relay(port));
    let srv = Server::start_in(dir.path(), tweak).await;
    let (s, v) = srv
        .post_admin(
            "/v1/campaigns",
            &json!({"title": "Short", "action": "act", "deadline": unix_now() + 4,
                    "goal": 1, "threshold_min": 1, "threshold_max": 1,
                    "attester": {"kind": "email"}}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let c = CampaignId::from_hex(v["campaign_id"].as_str().unwrap()).unwrap();
    let (_, b) = srv.get(&format!("/v1/campaigns/{}", c.to_hex())).await;
    let info: Value = serde_json::from_slice(&b).unwrap();
    let pk = IssuerPublicKey::from_spki(&B64.decode(info["issuer_key"].as_str().unwrap()).unwrap())
        .unwrap();
    let (s, v) = ask(&srv, " Gil@Close.Example", &[&c]).await;
    assert_eq!(s, 202, "{v}");
    let code = code_of(&smtp.wait_message(0));
    let req = TokenRequest::new(&c, &pk, attestation("Gil@close.example", &code));
    let (s, v) = srv.post("/v1/tokens", &req.body).await;
    req.finish(s, &v);
    srv.shutdown().await;

    let k = hex::decode(
        std::fs::read_to_string(dir.path().join("issuer.hmac"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let person = pledge_protocol::hash::sha256(&[b"pledge email v1\0", b"Gil@close.example"]);
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&k).unwrap();
    mac.update(&person);
    mac.update(c.as_bytes());
    let mark = Mark(mac.finalize().into_bytes().into());
    let set = format!("issued/{}", c.to_hex()).into_bytes();
    let store = open_store(dir.path());
    assert!(
        store.contains_mark(&set, &mark).unwrap(),
        "the specified mark"
    );
    drop(store);

    // Past the deadline the campaign closes, and its marks go.
    let srv = Server::start_in(dir.path(), tweak).await;
    let t0 = std::time::Instant::now();
    loop {
        let (_, b) = srv.get(&format!("/v1/campaigns/{}", c.to_hex())).await;
        let info: Value = serde_json::from_slice(&b).unwrap();
        if !info["closed_index"].is_null() {
            break;
        }
        assert!(
            t0.elapsed().as_secs() < 30,
            "the campaign did not close: {info}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    srv.shutdown().await;
    let store = open_store(dir.path());
    assert!(
        !store.contains_mark(&set, &mark).unwrap(),
        "deleted at close"
    );
}

/// The store of a server of this process that just stopped: its lock goes
/// when its last connection task drops (as `pledge_tests::server` waits).
fn open_store(dir: &Path) -> pledge_server::store::RedbStore {
    let t0 = std::time::Instant::now();
    loop {
        match pledge_server::store::RedbStore::open(dir) {
            Ok(s) => return s,
            Err(pledge_server::store::StoreError::Locked { .. })
                if t0.elapsed() < pledge_tests::server::LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("{e}"),
        }
    }
}
