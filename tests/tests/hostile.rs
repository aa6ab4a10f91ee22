//! Hostile inputs (RELIABILITY.md's list, items 1–5, 9, 10) against a running `pledged`
//! on 127.0.0.1:0 and against the client: each case asserts the exact answer
//! (status and error code) and that nothing changed (checkpoint size and root,
//! the tally, the token and entry counters). Auditor cases (item 6) live in
//! `tests/tests/audit.rs`; crash and fault cases (7, 8) in RELIABILITY.md's
//! other sections. `PLEDGE_LONG=1` makes the campaign and flood counts larger.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, STANDARD_NO_PAD, URL_SAFE};
use pledge_client::client::Client;
use pledge_client::flows::{self, AttestKind, FlowError};
use pledge_client::wallet::Wallet;
use pledge_protocol::entry::Entry;
use pledge_protocol::hash::CampaignId;
use pledge_protocol::pledge::{Pledge, PledgeSigningKey, Terms};
use pledge_protocol::token::{IssuerPublicKey, Token, blind};
use pledge_server::config::Config;
use pledge_server::http::{RequestBody, decode_request_body};
use pledge_tests::proxy::{Proxy, Rule};
use pledge_tests::server::Server;
use pledge_tests::unix_now;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn long() -> bool {
    std::env::var("PLEDGE_LONG").is_ok_and(|v| v == "1")
}

/// The harness defaults, closing checks every 200 ms, and room for up to
/// 100 concurrent clients from 127.0.0.1.
fn config(dir: &Path) -> Config {
    let mut c = pledge_tests::server::config(dir);
    c.close_check_interval = Duration::from_millis(200);
    c.conn_limits.max_per_address = 4096;
    c
}

/// What must not change when a hostile request is refused.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    size: u64,
    checkpoint: Vec<u8>,
    tally: Option<(u64, u64)>,
    tokens_issued: u64,
    entries_accepted: u64,
}

/// The calls of this suite, on the harness's server.
trait Calls {
    async fn metric(&self, name: &str) -> u64;
    async fn snapshot(&self, c: &CampaignId) -> Snapshot;
    async fn campaign(&self, c: &CampaignId) -> (IssuerPublicKey, Value);
    async fn demo(&self) -> (CampaignId, IssuerPublicKey);
    async fn create_campaign(&self, title: &str, deadline: u64) -> CampaignId;
}

impl Calls for Server {
    /// A counter of `/metrics` (operator only: the admin token).
    async fn metric(&self, name: &str) -> u64 {
        let r = self
            .http
            .get(format!("{}/metrics", self.base))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "/metrics with the admin token");
        let text = String::from_utf8(r.bytes().await.unwrap().to_vec()).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no metric {name}"))
            .parse()
            .unwrap()
    }

    async fn snapshot(&self, c: &CampaignId) -> Snapshot {
        let (_, checkpoint) = self.get("/log/checkpoint").await;
        let size = std::str::from_utf8(&checkpoint)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let (s, b) = self.get(&format!("/v1/campaigns/{}", c.to_hex())).await;
        let tally = (s == 200).then(|| {
            let v: Value = serde_json::from_slice(&b).unwrap();
            (
                v["tally"]["live"].as_u64().unwrap(),
                v["tally"]["active"].as_u64().unwrap(),
            )
        });
        Snapshot {
            size,
            checkpoint,
            tally,
            tokens_issued: self.metric("pledged_tokens_issued_total").await,
            entries_accepted: self.metric("pledged_entries_accepted_total").await,
        }
    }

    async fn campaign(&self, c: &CampaignId) -> (IssuerPublicKey, Value) {
        let (s, b) = self.get(&format!("/v1/campaigns/{}", c.to_hex())).await;
        assert_eq!(s, 200);
        let v: Value = serde_json::from_slice(&b).unwrap();
        let key = B64.decode(v["issuer_key"].as_str().unwrap()).unwrap();
        (IssuerPublicKey::from_spki(&key).unwrap(), v)
    }

    async fn demo(&self) -> (CampaignId, IssuerPublicKey) {
        let (_, b) = self.get("/v1/campaigns").await;
        let v: Value = serde_json::from_slice(&b).unwrap();
        let id = CampaignId::from_hex(v["campaigns"][0]["campaign_id"].as_str().unwrap()).unwrap();
        (id, self.campaign(&id).await.0)
    }

    async fn create_campaign(&self, title: &str, deadline: u64) -> CampaignId {
        let (s, v) = self
            .post_raw(
                "/v1/campaigns",
                json!({"title": title, "action": "act", "deadline": deadline, "goal": 3,
                       "threshold_min": 1, "threshold_max": 100,
                       "attester": {"kind": "open"}})
                .to_string()
                .into_bytes(),
                true,
            )
            .await;
        assert_eq!(s, 201, "{v}");
        CampaignId::from_hex(v["campaign_id"].as_str().unwrap()).unwrap()
    }
}

fn pledge(c: &CampaignId, token: Token, key: &PledgeSigningKey, t: u32) -> Entry {
    Entry::Pledge(Pledge::sign(*c, token, Terms::threshold(t).unwrap(), key).unwrap())
}

/// POSTs a JSON body from a spawned task (which cannot borrow the server).
async fn post_json(
    http: &reqwest::Client,
    url: String,
    body: String,
) -> reqwest::Result<reqwest::Response> {
    http.post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
}

fn code(v: &Value) -> Option<&str> {
    v["error"].as_str()
}

/// The RSA modulus inside a 2048-bit SPKI: the 256 bytes after `02 82 01 01 00`.
fn modulus(pk: &IssuerPublicKey) -> Vec<u8> {
    let spki = pk.as_spki();
    let at = spki
        .windows(5)
        .position(|w| w == [0x02, 0x82, 0x01, 0x01, 0x00])
        .unwrap();
    spki[at + 5..at + 5 + 256].to_vec()
}

fn add_be(n: &[u8], delta: i32) -> Vec<u8> {
    let mut out = n.to_vec();
    let mut carry = delta;
    for b in out.iter_mut().rev() {
        let v = i32::from(*b) + carry;
        *b = v.rem_euclid(256) as u8;
        carry = v.div_euclid(256);
        if carry == 0 {
            break;
        }
    }
    out
}

// ---------------------------------------------------------------------------
// 1. Blinded messages
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blinded_messages_of_wrong_length_or_value_0_1_n_minus_1_n_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(&config(dir.path())).await;
    let (c, pk) = srv.demo().await;
    let before = srv.snapshot(&c).await;
    let n = modulus(&pk);
    let mut one = vec![0u8; 256];
    one[255] = 1;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("255 bytes", vec![7; 255]),
        ("257 bytes", vec![7; 257]),
        ("zero", vec![0; 256]),
        ("one", one),
        ("n-1", add_be(&n, -1)),
        ("n", n.clone()),
        ("n+1", add_be(&n, 1)),
        ("all ones", vec![0xff; 256]),
    ];
    let valid = {
        let key = PledgeSigningKey::generate().unwrap();
        blind(&pk, &c, &key.public_key()).unwrap().0
    };
    for (name, msg) in &cases {
        let (s, v) = srv
            .post(
                "/v1/tokens",
                &json!({"attestation": {"kind": "open"},
                        "requests": [{"campaign_id": c.to_hex(), "blinded_msg": B64.encode(msg)}]}),
            )
            .await;
        assert_eq!(
            (s, code(&v)),
            (422, Some("bad_blinded_message")),
            "{name}: {v}"
        );
        // A hostile message next to a valid one: the whole request is refused,
        // no signature is released for the valid one either.
        let (s, v) = srv
            .post(
                "/v1/tokens",
                &json!({"attestation": {"kind": "open"},
                        "requests": [{"campaign_id": c.to_hex(), "blinded_msg": B64.encode(valid.as_bytes())},
                                     {"campaign_id": c.to_hex(), "blinded_msg": B64.encode(msg)}]}),
            )
            .await;
        assert!(s == 422 || s == 400, "{name} in a pair: {s} {v}");
        assert!(v["blind_signatures"].is_null(), "{name}: {v}");
    }
    assert_eq!(srv.snapshot(&c).await, before);
    srv.shutdown().await;
}

// ---------------------------------------------------------------------------
// 2. Double spending, re-encodings
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_spent_in_sequence_100_at_once_across_a_restart_and_re_encoded_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(&config(dir.path())).await;
    let (c, pk) = srv.demo().await;

    let (token, key) = srv.token(&c, &pk).await;
    let first = pledge(&c, token.clone(), &key, 1);
    let (s, v) = srv.submit("/v1/pledges", &first).await;
    assert_eq!(s, 200, "{v}");
    let after_one = srv.snapshot(&c).await;
    assert_eq!(after_one.tally, Some((1, 1)));

    // In sequence, the identical entry.
    let (s, v) = srv.submit("/v1/pledges", &first).await;
    assert_eq!((s, code(&v)), (409, Some("double_spend")), "{v}");
    // The same token with other terms (a new, validly signed pledge).
    let (s, v) = srv
        .submit("/v1/pledges", &pledge(&c, token.clone(), &key, 5))
        .await;
    assert_eq!((s, code(&v)), (409, Some("double_spend")), "{v}");

    // Alternative encodings of the same entry bytes: all refused at the edge.
    let bytes = first.encode().unwrap();
    let canonical = B64.encode(&bytes);
    let mut alternatives = vec![
        ("unpadded", STANDARD_NO_PAD.encode(&bytes)),
        ("base64url", URL_SAFE.encode(&bytes)),
        ("line breaks", {
            let (a, b) = canonical.split_at(40);
            format!("{a}\n{b}")
        }),
        ("leading space", format!(" {canonical}")),
        ("hex", hex::encode(&bytes)),
        ("upper hex", hex::encode_upper(&bytes)),
    ];
    // Non-canonical padding bits: the last symbol before '=' carries bits
    // that are not part of the data; set one of them.
    if let Some(pos) = canonical.find('=') {
        let last = canonical.as_bytes()[pos - 1];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let idx = alphabet.iter().position(|&a| a == last).unwrap();
        let mut s = canonical.clone().into_bytes();
        s[pos - 1] = alphabet[idx | 1];
        alternatives.push(("non-canonical padding bits", String::from_utf8(s).unwrap()));
    } else {
        panic!("entry length is a multiple of 3: pick another threshold");
    }
    for (name, text) in &alternatives {
        let (s, v) = srv.post("/v1/pledges", &json!({ "entry": text })).await;
        assert_eq!((s, code(&v)), (400, Some("bad_request")), "{name}: {v}");
    }
    // The entry with a trailing byte, or a second encoding of a field.
    let mut trailing = bytes.clone();
    trailing.push(0);
    let (s, v) = srv
        .post("/v1/pledges", &json!({"entry": B64.encode(&trailing)}))
        .await;
    assert_eq!((s, code(&v)), (400, Some("malformed_entry")), "{v}");
    // Upper-case hex in a campaign id (the same id, another spelling).
    let (s, v) = srv
        .post(
            "/v1/tokens",
            &json!({"attestation": {"kind": "open"},
                    "requests": [{"campaign_id": c.to_hex().to_uppercase(),
                                  "blinded_msg": B64.encode([1u8; 256])}]}),
        )
        .await;
    assert_eq!((s, code(&v)), (400, Some("bad_request")), "{v}");
    let (s, _) = srv
        .get(&format!("/v1/campaigns/{}", c.to_hex().to_uppercase()))
        .await;
    assert_eq!(s, 400);
    assert_eq!(srv.snapshot(&c).await, after_one);

    // 100 copies of a fresh token's pledge at once: exactly one accepted.
    let (token2, key2) = srv.token(&c, &pk).await;
    let second = pledge(&c, token2, &key2, 2);
    let body = json!({"entry": B64.encode(second.encode().unwrap())}).to_string();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let http = srv.http.clone();
        let url = format!("{}/v1/pledges", srv.base);
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let r = post_json(&http, url, body).await.unwrap();
            let s = r.status().as_u16();
            let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            (s, v["error"].as_str().map(str::to_owned))
        }));
    }
    let mut ok = 0;
    let mut dup = 0;
    for t in tasks {
        match t.await.unwrap() {
            (200, _) => ok += 1,
            (409, Some(c)) if c == "double_spend" => dup += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!((ok, dup), (1, 99));
    let settled = srv.snapshot(&c).await;
    assert_eq!(settled.tally, Some((2, 2)));
    assert_eq!(settled.size, after_one.size + 1);
    srv.shutdown().await;

    // Across a restart: both still spent, nothing else changes.
    let srv = Server::start_with(&config(dir.path())).await;
    let restarted = srv.snapshot(&c).await;
    assert_eq!(
        (&restarted.checkpoint, restarted.tally),
        (&settled.checkpoint, settled.tally)
    );
    for e in [&first, &second] {
        let (s, v) = srv.submit("/v1/pledges", e).await;
        assert_eq!((s, code(&v)), (409, Some("double_spend")), "{v}");
    }
    let (s, v) = srv.submit("/v1/pledges", &pledge(&c, token, &key, 3)).await;
    assert_eq!((s, code(&v)), (409, Some("double_spend")), "{v}");
    assert_eq!(srv.snapshot(&c).await, restarted);
    srv.shutdown().await;
}

// ---------------------------------------------------------------------------
// 3. Signatures under the wrong key, randomizers
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_another_or_a_closed_campaign_and_altered_randomizers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(&config(dir.path())).await;
    let (a, pk_a) = srv.demo().await;
    let b = srv
        .create_campaign("other campaign", unix_now() + 86_400)
        .await;
    let (pk_b, _) = srv.campaign(&b).await;
    let closing = srv.create_campaign("closes soon", unix_now() + 2).await;
    let (pk_closing, _) = srv.campaign(&closing).await;
    let (token_closing, key_closing) = srv.token(&closing, &pk_closing).await;
    let (token_b, key_b) = srv.token(&b, &pk_b).await;
    let (token_a, key_a) = srv.token(&a, &pk_a).await;

    // Wait until the short campaign is closed in the log.
    let t0 = Instant::now();
    loop {
        let (_, v) = srv.campaign(&closing).await;
        if v["state"] == "closed" {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "never closed: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before_a = srv.snapshot(&a).await;

    // B's valid token pledged to A (a valid signature under another key).
    let (s, v) = srv
        .submit("/v1/pledges", &pledge(&a, token_b.clone(), &key_b, 1))
        .await;
    assert_eq!((s, code(&v)), (422, Some("bad_token")), "{v}");
    // The closed campaign's valid token, to its own campaign and to A.
    let (s, v) = srv
        .submit(
            "/v1/pledges",
            &pledge(&closing, token_closing.clone(), &key_closing, 1),
        )
        .await;
    assert_eq!((s, code(&v)), (409, Some("campaign_closed")), "{v}");
    let (s, v) = srv
        .submit("/v1/pledges", &pledge(&a, token_closing, &key_closing, 1))
        .await;
    assert_eq!((s, code(&v)), (422, Some("bad_token")), "{v}");
    // No new tokens for the closed campaign either.
    let key = PledgeSigningKey::generate().unwrap();
    let (blinded, _) = blind(&pk_closing, &closing, &key.public_key()).unwrap();
    let (s, v) = srv
        .post(
            "/v1/tokens",
            &json!({"attestation": {"kind": "open"},
                    "requests": [{"campaign_id": closing.to_hex(),
                                  "blinded_msg": B64.encode(blinded.as_bytes())}]}),
        )
        .await;
    assert_eq!((s, code(&v)), (409, Some("campaign_closed")), "{v}");

    // A's token with one randomizer bit flipped (then re-signed by the pledge
    // key so only the token is wrong), and with a zero randomizer.
    for alter in [
        |t: &mut Token| t.randomizer[0] ^= 1,
        |t: &mut Token| t.randomizer = [0; 32],
        |t: &mut Token| t.signature[255] ^= 1,
    ] {
        let mut t = token_a.clone();
        alter(&mut t);
        let (s, v) = srv.submit("/v1/pledges", &pledge(&a, t, &key_a, 1)).await;
        assert_eq!((s, code(&v)), (422, Some("bad_token")), "{v}");
    }
    // A missing randomizer: the entry is 32 bytes short.
    let good = pledge(&a, token_a.clone(), &key_a, 1).encode().unwrap();
    let rand_at = good
        .windows(32)
        .position(|w| w == token_a.randomizer)
        .unwrap();
    let mut missing = good[..rand_at].to_vec();
    missing.extend_from_slice(&good[rand_at + 32..]);
    let (s, v) = srv
        .post("/v1/pledges", &json!({"entry": B64.encode(&missing)}))
        .await;
    assert_eq!((s, code(&v)), (400, Some("malformed_entry")), "{v}");

    let mut after = srv.snapshot(&a).await;
    // Tokens were issued before `before_a`; nothing since.
    after.checkpoint.clone_from(&before_a.checkpoint);
    assert_eq!(after, before_a);
    // The untouched token of A is still good.
    let (s, v) = srv
        .submit("/v1/pledges", &pledge(&a, token_a, &key_a, 1))
        .await;
    assert_eq!(s, 200, "{v}");
    srv.shutdown().await;
}

// ---------------------------------------------------------------------------
// 4. Hostile JSON
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_json_duplicate_keys_deep_nesting_bad_utf8_unknown_fields_and_1mb_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(&config(dir.path())).await;
    let (c, pk) = srv.demo().await;
    let (token, key) = srv.token(&c, &pk).await;
    let entry = B64.encode(pledge(&c, token, &key, 1).encode().unwrap());
    let before = srv.snapshot(&c).await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_obj = format!("{}1{}", "{\"a\":".repeat(5_000), "}".repeat(5_000));
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        (
            "duplicate key",
            format!("{{\"entry\":\"{entry}\",\"entry\":\"{entry}\"}}").into_bytes(),
        ),
        ("deep array", deep.clone().into_bytes()),
        ("deep object", deep_obj.clone().into_bytes()),
        ("deep value", format!("{{\"entry\":{deep}}}").into_bytes()),
        (
            "invalid utf-8",
            [b"{\"entry\":\"".as_slice(), &[0xff, 0xfe, 0x80], b"\"}"].concat(),
        ),
        (
            "overlong utf-8",
            [b"{\"entry\":\"".as_slice(), &[0xc0, 0xaf], b"\"}"].concat(),
        ),
        ("lone surrogate escape", b"{\"entry\":\"\\ud800\"}".to_vec()),
        (
            "unknown field",
            format!("{{\"entry\":\"{entry}\",\"x\":1}}").into_bytes(),
        ),
        ("not an object", format!("[\"{entry}\"]").into_bytes()),
        (
            "trailing garbage",
            format!("{{\"entry\":\"{entry}\"}}x").into_bytes(),
        ),
        ("empty", Vec::new()),
        ("nul", vec![0]),
    ];
    let limit = |path: &str| match path {
        "/v1/tokens" => pledge_server::http::MAX_TOKENS_BODY,
        "/v1/campaigns" | "/v1/admin/invites" => pledge_server::http::MAX_ADMIN_BODY,
        _ => pledge_server::http::MAX_ENTRY_BODY,
    };
    for path in [
        "/v1/pledges",
        "/v1/pledges/amend",
        "/v1/pledges/withdraw",
        "/v1/tokens",
        "/v1/campaigns",
        "/v1/admin/invites",
    ] {
        for (name, body) in &bodies {
            let (s, v) = if body.len() > limit(path) {
                announce_post(srv.addr, path, &srv.admin, body).await
            } else {
                srv.post_raw(path, body.clone(), true).await
            };
            if body.len() > limit(path) {
                // Over the endpoint's limit: refused by size before parsing.
                assert_eq!(
                    (s, code(&v)),
                    (413, Some("body_too_large")),
                    "{path} {name}: {v}"
                );
            } else {
                assert_eq!(
                    (s, code(&v)),
                    (400, Some("bad_request")),
                    "{path} {name}: {v}"
                );
            }
        }
    }
    // 1 MB bodies, with and without a truthful Content-Length, on every POST.
    let big = {
        let mut b = b"{\"entry\":\"".to_vec();
        b.resize(1 << 20, b'A');
        b.extend_from_slice(b"\"}");
        b
    };
    for path in [
        "/v1/pledges",
        "/v1/pledges/amend",
        "/v1/pledges/withdraw",
        "/v1/tokens",
        "/v1/campaigns",
        "/v1/admin/invites",
    ] {
        let (s, v) = announce_post(srv.addr, path, &srv.admin, &big).await;
        assert_eq!((s, code(&v)), (413, Some("body_too_large")), "{path}: {v}");
        // Chunked (no Content-Length): the limit holds while reading.
        let (s, v) = chunked_post(srv.addr, path, &srv.admin, &big).await;
        assert_eq!(
            (s, code(&v)),
            (413, Some("body_too_large")),
            "{path} chunked: {v}"
        );
    }
    assert_eq!(srv.snapshot(&c).await, before);

    // The decoder the handlers use agrees without a server.
    for (kind, body) in [
        (RequestBody::Entry, deep.as_bytes()),
        (RequestBody::Tokens, deep_obj.as_bytes()),
        (RequestBody::NewCampaign, b"{\"title\":1}".as_slice()),
        (
            RequestBody::NewInvites,
            b"{\"group\":\"g\",\"count\":1,\"count\":2}".as_slice(),
        ),
    ] {
        assert_eq!(
            decode_request_body(kind, body)
                .unwrap_err()
                .status()
                .as_u16(),
            400
        );
    }
    let ok = format!("{{\"entry\":\"{entry}\"}}");
    decode_request_body(RequestBody::Entry, ok.as_bytes()).unwrap();
    srv.shutdown().await;
}

/// POSTs with a truthful `Content-Length` but sends only the first KiB of
/// the body before reading the answer: a server that refuses by the announced
/// length answers at once (and may close without reading the rest, which
/// would make a client that insists on writing everything see a broken pipe).
async fn announce_post(addr: SocketAddr, path: &str, admin: &str, body: &[u8]) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {admin}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(&body[..body.len().min(1024)]).await;
    read_answer(&mut s).await
}

/// Reads one HTTP/1.1 answer with a Content-Length body.
async fn read_answer(s: &mut tokio::net::TcpStream) -> (u16, Value) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if out.len() >= end + 4 + len {
                let status = text
                    .split(' ')
                    .nth(1)
                    .and_then(|x| x.parse().ok())
                    .unwrap_or(0);
                let v = serde_json::from_slice(&out[end + 4..end + 4 + len]).unwrap_or(Value::Null);
                return (status, v);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => panic!("no complete answer: {:?}", String::from_utf8_lossy(&out)),
        }
    }
}

/// POSTs `body` with `Transfer-Encoding: chunked` (no length announced) over a
/// raw socket and reads the answer; the server may stop reading early.
async fn chunked_post(addr: SocketAddr, path: &str, admin: &str, body: &[u8]) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {admin}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // Past every endpoint's limit (128 KiB) plus slack, then stop writing:
    // the server must have answered by then.
    let mut sent = 0;
    for chunk in body.chunks(16 * 1024) {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        if sent > 192 * 1024 || s.write_all(&frame).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    read_answer(&mut s).await
}

// ---------------------------------------------------------------------------
// 5. Hostile issuer keys: the client refuses them
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_refuses_issuer_keys_with_e_1_even_modulus_512_bits_before_asking_for_tokens() {
    let vectors: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../protocol/tests/vectors/token_failures.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(&config(dir.path())).await;
    let (c, _) = srv.demo().await;
    let before = srv.snapshot(&c).await;
    let mut tried = Vec::new();
    for k in vectors["public_keys"].as_array().unwrap() {
        let name = k["name"].as_str().unwrap();
        let spki = hex::decode(k["spki"].as_str().unwrap()).unwrap();
        // The protocol refuses the key itself (token_failures.json) ...
        assert!(IssuerPublicKey::from_spki(&spki).is_err(), "{name}");
        // ... and a client talking to a server that advertises it refuses the
        // campaign before sending any token request.
        let proxy = Proxy::with(&srv.base, [Rule::tag_issuer_keys(B64.encode(&spki))]).await;
        let client = Client::new(&proxy.base).unwrap();
        let mut w = Wallet::in_memory();
        let (log, _) = flows::pin_log(&client, &mut w).await.unwrap();
        let e = flows::obtain_tokens(&client, &mut w, &log, &AttestKind::Open)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, FlowError::KeyMismatch { advertised, .. } if advertised == "(unparsable)"),
            "{name}: {e}"
        );
        assert_eq!(proxy.count("/v1/tokens"), 0, "{name}");
        assert!(w.data.tokens.is_empty() && w.data.pending.is_empty());
        tried.push(name.to_owned());
    }
    for expected in ["e_1", "even", "512"] {
        assert!(
            tried.iter().any(|n| n.contains(expected)),
            "token_failures.json has no key named *{expected}*: {tried:?}"
        );
    }
    assert_eq!(srv.snapshot(&c).await, before);
    srv.shutdown().await;
}

// ---------------------------------------------------------------------------
// 9. Shutdown with requests in flight
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_pledges_in_flight_answers_all_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(&config(dir.path())).await;
    let (c, pk) = srv.demo().await;
    let mut entries = Vec::new();
    for i in 0..40 {
        let (t, k) = srv.token(&c, &pk).await;
        entries.push(pledge(&c, t, &k, 1 + i % 5));
    }
    srv.shutdown().await;
    // Long batches: everything submitted now waits in the queue.
    let mut cfg = config(dir.path());
    cfg.batch_interval = Duration::from_secs(3600);
    let srv = Server::start_with(&cfg).await;
    let size0 = srv.snapshot(&c).await.size;
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let http = srv.http.clone();
        let url = format!("{}/v1/pledges", srv.base);
        let body = json!({"entry": B64.encode(e.encode().unwrap())}).to_string();
        let mut go = go_rx.clone();
        tasks.push(tokio::spawn(async move {
            // The last ten are sent once the server has been told to stop.
            if i >= 30 {
                let _ = go.wait_for(|g| *g).await;
            }
            let r = post_json(&http, url, body).await;
            match r {
                Ok(r) => {
                    let s = r.status().as_u16();
                    let v: Value =
                        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(Value::Null);
                    Some((s, v))
                }
                Err(_) => None, // connection refused after the listener closed
            }
        }));
    }
    // Wait until the first 30 are queued (in flight, unacknowledged).
    let t0 = Instant::now();
    while srv.metric("pledged_queue_depth").await < 30 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "pledges never queued"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut srv = srv;
    srv.signal_stop();
    let _ = go_tx.send(true);
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    srv.shutdown_within(Duration::from_secs(30)).await;
    // The first 30 were in flight: each got an answer, and it is 200.
    let mut acked = Vec::new();
    for (i, a) in answers.iter().enumerate() {
        match a {
            Some((200, v)) => acked.push((i, v["index"].as_u64().unwrap())),
            Some((503, v)) if i >= 30 => assert_eq!(code(v), Some("shutting_down")),
            None if i >= 30 => {}
            other => panic!("request {i}: {other:?}"),
        }
    }
    assert!(acked.len() >= 30, "{answers:?}");
    println!(
        "shutdown in flight: {} acknowledged, {} refused or not connected",
        acked.len(),
        40 - acked.len()
    );
    // After a restart every acknowledged pledge is at its index. (In process,
    // the store's lock is released when the last connection task drops its
    // handle on the state, a moment after `run` returns; a real process
    // exits.)
    let t0 = Instant::now();
    let srv = Server::start_with(&config(dir.path())).await;
    println!("store reopened after {:?}", t0.elapsed());
    let snap = srv.snapshot(&c).await;
    assert_eq!(snap.size, size0 + acked.len() as u64);
    for (i, index) in &acked {
        let bundle = index / 256;
        let width = (snap.size - bundle * 256).min(256);
        let id =
            pledge_protocol::tile::BundleId::new(bundle, u16::try_from(width).unwrap()).unwrap();
        let (s, b) = srv.get(&format!("/log/{}", id.path())).await;
        assert_eq!(s, 200);
        let got = pledge_protocol::tile::decode_bundle(&b, &id).unwrap();
        assert_eq!(
            got[usize::try_from(index % 256).unwrap()],
            entries[*i].encode().unwrap(),
            "acknowledged pledge {i} lost"
        );
    }
    srv.shutdown().await;
}

// ---------------------------------------------------------------------------
// 10. Slow bodies, floods, many campaigns
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_cut_off_by_the_request_timeout_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(&config(dir.path())).await;
    let (c, _) = srv.demo().await;
    let before = srv.snapshot(&c).await;
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(
            b"POST /v1/pledges HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"entry\":\"",
        )
        .await
        .unwrap();
        slow.push(s);
    }
    let t0 = Instant::now();
    // Trickle a byte every second; meanwhile the server answers others.
    let mut answered = None;
    while answered.is_none() {
        for s in &mut slow {
            let _ = s.write_all(b"A").await;
        }
        let (status, _) = srv.get("/healthz").await;
        assert_eq!(status, 200);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut buf = [0u8; 512];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(10), slow[0].read(&mut buf)).await
            && n > 0
        {
            answered = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert!(
            t0.elapsed() < Duration::from_secs(45),
            "slow body never cut off"
        );
    }
    let answer = answered.unwrap();
    let elapsed = t0.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        elapsed >= Duration::from_secs(25) && elapsed <= Duration::from_secs(40),
        "{elapsed:?}"
    );
    assert_eq!(srv.snapshot(&c).await, before);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_gets_429_and_other_addresses_are_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.open_rate_per_minute = 5;
    let srv = Server::start_with(&cfg).await;
    let (c, pk) = srv.demo().await;
    let req = |pk: &IssuerPublicKey| {
        let key = PledgeSigningKey::generate().unwrap();
        let (blinded, _) = blind(pk, &c, &key.public_key()).unwrap();
        json!({"attestation": {"kind": "open"},
               "requests": [{"campaign_id": c.to_hex(), "blinded_msg": B64.encode(blinded.as_bytes())}]})
    };
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..30 {
        let r = srv
            .http
            .post(format!("{}/v1/tokens", srv.base))
            .json(&req(&pk))
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        if s == 429 {
            retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let v: Value = r.json().await.unwrap();
            assert_eq!(code(&v), Some("rate_limited"));
        }
        statuses.push(s);
    }
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!((ok, limited), (5, 25), "{statuses:?}");
    assert!(
        retry_after.is_some_and(|s| (1..=60).contains(&s)),
        "{retry_after:?}"
    );
    // Issuance counters are published with the next batch only (SPEC §12):
    // no reader of /metrics sees a token request the moment it happens.
    assert_eq!(srv.metric("pledged_tokens_issued_total").await, 0);
    assert_eq!(srv.metric("pledged_rate_limited_total").await, 0);
    srv.create_campaign("next batch", unix_now() + 3600).await;
    assert_eq!(srv.metric("pledged_tokens_issued_total").await, 5);
    assert_eq!(srv.metric("pledged_rate_limited_total").await, 25);
    // Another address is not limited by the first one's flood.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let r = other
        .post(format!("{}/v1/tokens", srv.base))
        .json(&req(&pk))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_garbage_signatures_is_refused_and_the_server_stays_responsive() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(&config(dir.path())).await;
    let (c, pk) = srv.demo().await;
    let (template, _) = srv.token(&c, &pk).await;
    let before = srv.snapshot(&c).await;
    let n = if long() { 20_000 } else { 2_000 };
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        // Fresh pledge key (so a fresh nullifier), garbage issuer signature.
        let key = PledgeSigningKey::generate().unwrap();
        let mut t = template.clone();
        t.pledge_pk = key.public_key();
        t.signature = [0u8; 256];
        t.signature[..8].copy_from_slice(&(i as u64).to_be_bytes());
        t.signature[8] = 1;
        let body =
            json!({"entry": B64.encode(pledge(&c, t, &key, 1).encode().unwrap())}).to_string();
        let http = srv.http.clone();
        let url = format!("{}/v1/pledges", srv.base);
        let permit = sem.clone().acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let r = post_json(&http, url, body).await.unwrap();
            drop(permit);
            let s = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (s, v["error"].as_str().map(str::to_owned))
        }));
        if i % 500 == 250 {
            // Responsive during the flood.
            let h = Instant::now();
            let (s, _) = srv.get("/healthz").await;
            assert_eq!(s, 200);
            assert!(h.elapsed() < Duration::from_secs(2), "{:?}", h.elapsed());
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), (422, Some("bad_token".to_owned())));
    }
    let rate = f64::from(n) / t0.elapsed().as_secs_f64();
    println!("garbage signatures refused: {n} at {rate:.0}/s");
    assert_eq!(srv.snapshot(&c).await, before);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_campaigns_are_created_listed_and_covered_by_one_token_request() {
    // RSA-2048 key generation costs 0.1–1 s per campaign on this machine, so
    // CI creates 24 (with the demo: 25); PLEDGE_LONG=1 creates 300.
    let n = if long() { 300 } else { 24 };
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(&config(dir.path())).await;
    let (demo, _) = srv.demo().await;
    let t0 = Instant::now();
    let mut ids = vec![demo];
    for i in 0..n {
        ids.push(
            srv.create_campaign(&format!("campaign {i}"), unix_now() + 86_400)
                .await,
        );
    }
    let per = t0.elapsed() / u32::try_from(n).unwrap();
    println!("{n} campaigns created, {per:?} each");
    let (s, b) = srv.get("/v1/campaigns").await;
    assert_eq!(s, 200);
    let v: Value = serde_json::from_slice(&b).unwrap();
    let listed: Vec<&str> = v["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["campaign_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), ids.len());
    for id in &ids {
        assert!(listed.contains(&id.to_hex().as_str()));
    }
    // Cover issuance over many campaigns in requests of at most 64.
    let mut reqs = Vec::new();
    for id in &ids {
        let (pk, _) = srv.campaign(id).await;
        let key = PledgeSigningKey::generate().unwrap();
        let (blinded, _) = blind(&pk, id, &key.public_key()).unwrap();
        reqs.push(
            json!({"campaign_id": id.to_hex(), "blinded_msg": B64.encode(blinded.as_bytes())}),
        );
    }
    for chunk in reqs.chunks(64) {
        let (s, v) = srv
            .post(
                "/v1/tokens",
                &json!({"attestation": {"kind": "open"}, "requests": chunk}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["blind_signatures"].as_array().unwrap().len(), chunk.len());
    }
    // 65 requests in one body: refused whole.
    let too_many: Vec<Value> = (0..65).map(|i| reqs[i % reqs.len()].clone()).collect();
    let (s, v) = srv
        .post(
            "/v1/tokens",
            &json!({"attestation": {"kind": "open"}, "requests": too_many}),
        )
        .await;
    assert_eq!((s, code(&v)), (400, Some("bad_request")), "{v}");
    srv.shutdown().await;
}

// ---------------------------------------------------------------------------
// Regressions
// ---------------------------------------------------------------------------

/// Bug found here: serde's derived request structs also accepted a JSON array
/// of the field values (`["<entry>"]`, `{"requests": [["<id>", "<msg>"]]}`),
/// a second encoding of one request that the strict decoder must refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_arrays_in_place_of_objects_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(&config(dir.path())).await;
    let (c, pk) = srv.demo().await;
    let (token, key) = srv.token(&c, &pk).await;
    let entry = B64.encode(pledge(&c, token, &key, 1).encode().unwrap());
    let before = srv.snapshot(&c).await;
    let blinded = {
        let k = PledgeSigningKey::generate().unwrap();
        B64.encode(blind(&pk, &c, &k.public_key()).unwrap().0.as_bytes())
    };
    let cases = [
        ("/v1/pledges", json!([entry])),
        (
            "/v1/tokens",
            json!({"attestation": {"kind": "open"}, "requests": [[c.to_hex(), blinded]]}),
        ),
        ("/v1/tokens", json!([{"kind": "open"}, []])),
        ("/v1/admin/invites", json!(["g", 2])),
        (
            "/v1/campaigns",
            json!(["t", "x", "a", 4_102_444_800u64, 3, 1, 10, {"kind": "open"}]),
        ),
    ];
    for (path, body) in &cases {
        let (s, v) = srv
            .post_raw(path, body.to_string().into_bytes(), true)
            .await;
        assert_eq!(
            (s, code(&v)),
            (400, Some("bad_request")),
            "{path} {body}: {v}"
        );
    }
    assert_eq!(srv.snapshot(&c).await, before);
    // The object forms are accepted.
    let (s, v) = srv.post("/v1/pledges", &json!({ "entry": entry })).await;
    assert_eq!(s, 200, "{v}");
    srv.shutdown().await;
}

// ---------------------------------------------------------------------------
// 11. A listener on /v1/events (SPEC R-PUB-1)
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_events_listener_never_sees_fewer_pledges_than_the_campaigns_minimum() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.publication = pledge_server::ledger::Publication {
        min_pledges: 3,
        max_delay_ms: 200,
    };
    cfg.publish_max_hold = Duration::from_secs(20);
    let srv = Server::start_with(&cfg).await;
    // Created without a policy: the server's default (3) applies.
    let c = srv.create_campaign("held back", unix_now() + 3600).await;
    let (pk, info) = srv.campaign(&c).await;
    assert_eq!(info["publication"]["min_pledges"], 3, "{info}");
    let mut entries = Vec::new();
    for t in 1..=6 {
        let (token, key) = srv.token(&c, &pk).await;
        entries.push(pledge(&c, token, &key, t));
    }
    // The listener, as an observer would run it.
    let mut stream = srv
        .http
        .get(format!("{}/v1/events", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    let hex = c.to_hex();
    let listener = tokio::spawn(async move {
        let mut text = String::new();
        let mut lives = Vec::new();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(40) && !lives.contains(&6) {
            let Ok(Ok(Some(chunk))) =
                tokio::time::timeout(Duration::from_secs(1), stream.chunk()).await
            else {
                continue;
            };
            text.push_str(&String::from_utf8_lossy(&chunk));
            lives = text
                .split("\n\n")
                .filter(|ev| ev.starts_with("event: tally\n"))
                .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ")))
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .filter(|v| v["campaign_id"] == hex.as_str())
                .map(|v| v["live"].as_u64().unwrap())
                .collect();
        }
        lives
    });
    // Pledges trickle in one by one, 300 ms apart.
    let mut tasks = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let http = srv.http.clone();
        let url = format!("{}/v1/pledges", srv.base);
        let body = json!({"entry": B64.encode(e.encode().unwrap())}).to_string();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300 * i as u64)).await;
            let r = post_json(&http, url, body).await.unwrap();
            let s = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (s, v["checkpoint_size"].as_u64())
        }));
    }
    let mut sizes = Vec::new();
    for t in tasks {
        let (s, size) = t.await.unwrap();
        assert_eq!(s, 200);
        sizes.push(size.unwrap());
    }
    // Two batches of three: the first three share a checkpoint, the last three another.
    assert!(sizes[0] == sizes[1] && sizes[1] == sizes[2], "{sizes:?}");
    assert!(sizes[3] == sizes[4] && sizes[4] == sizes[5], "{sizes:?}");
    assert_eq!(sizes[3], sizes[0] + 3, "{sizes:?}");
    let lives = listener.await.unwrap();
    assert_eq!(lives, vec![3, 6], "live counts the listener saw");
    srv.shutdown().await;
}
