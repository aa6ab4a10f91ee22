//! Privacy checks (DESIGN P1, P4, P5, P6) as tests: after a full run from
//! marked client addresses (127.0.0.2, 127.0.0.3) with marked user agents,
//! nothing in the data folder or in the server's log lines carries a marker,
//! an address, an invite code, a token, a nullifier or a wall-clock time; batch
//! order does not follow arrival order; every client sees the same campaign key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pledge_protocol::cosignature::WitnessSigner;
use pledge_protocol::entry::Entry;
use pledge_protocol::hash::CampaignId;
use pledge_protocol::note::KeyName;
use pledge_protocol::pledge::{Amendment, Pledge, PledgeSigningKey, Terms, Withdrawal};
use pledge_protocol::tile::{BundleId, decode_bundle};
use pledge_protocol::token::{IssuerPublicKey, Token};
use pledge_server::config::Config;
use pledge_server::store::Backend;
use pledge_tests::server::{Server, TokenRequest, send, send_json};
use pledge_tests::unix_now;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Server and clients
// ---------------------------------------------------------------------------

/// The harness defaults with 1,000 open-attester tokens per minute and address.
fn config(dir: &Path) -> Config {
    let mut c = pledge_tests::server::config(dir);
    c.open_rate_per_minute = 1000;
    c
}

/// A client from a marked address with a marked user agent.
#[derive(Clone)]
struct Marked {
    http: reqwest::Client,
    base: String,
}

impl Marked {
    fn new(base: &str, ip: [u8; 4], ua: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .local_address(IpAddr::from(ip))
                .user_agent(ua)
                .build()
                .unwrap(),
            base: base.to_owned(),
        }
    }

    async fn get(&self, path: &str) -> (u16, Vec<u8>) {
        send(self.http.get(format!("{}{path}", self.base))).await
    }

    async fn post(&self, path: &str, body: &Value, admin: Option<&str>) -> (u16, Value) {
        let mut r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("x-forwarded-for", "127.0.0.3")
            .body(body.to_string());
        if let Some(a) = admin {
            r = r.bearer_auth(a);
        }
        send_json(r).await
    }

    async fn size(&self) -> u64 {
        let (_, b) = self.get("/log/checkpoint").await;
        std::str::from_utf8(&b)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    }

    async fn entries(&self) -> Vec<Vec<u8>> {
        let size = self.size().await;
        let mut out = Vec::new();
        let mut n = 0;
        while n * 256 < size {
            let id = BundleId::new(n, u16::try_from((size - n * 256).min(256)).unwrap()).unwrap();
            let (s, b) = self.get(&format!("/log/{}", id.path())).await;
            assert_eq!(s, 200);
            out.extend(
                decode_bundle(&b, &id)
                    .unwrap()
                    .into_iter()
                    .map(<[u8]>::to_vec),
            );
            n += 1;
        }
        out
    }

    async fn campaign_key(&self, c: &CampaignId) -> (IssuerPublicKey, u64) {
        let (s, b) = self.get(&format!("/v1/campaigns/{}", c.to_hex())).await;
        assert_eq!(s, 200);
        let v: Value = serde_json::from_slice(&b).unwrap();
        let key = B64.decode(v["issuer_key"].as_str().unwrap()).unwrap();
        (
            IssuerPublicKey::from_spki(&key).unwrap(),
            v["opened_index"].as_u64().unwrap(),
        )
    }

    async fn demo(&self) -> CampaignId {
        let (_, b) = self.get("/v1/campaigns").await;
        let v: Value = serde_json::from_slice(&b).unwrap();
        CampaignId::from_hex(v["campaigns"][0]["campaign_id"].as_str().unwrap()).unwrap()
    }

    async fn token(
        &self,
        c: &CampaignId,
        pk: &IssuerPublicKey,
        attestation: Value,
    ) -> (Token, PledgeSigningKey) {
        let req = TokenRequest::new(c, pk, attestation);
        let (s, v) = self.post("/v1/tokens", &req.body, None).await;
        req.finish(s, &v)
    }

    async fn submit(&self, path: &str, e: &Entry) -> (u16, Value) {
        self.post(
            path,
            &json!({"entry": B64.encode(e.encode().unwrap())}),
            None,
        )
        .await
    }
}

/// A tiny deterministic generator for the test's own choices (xorshift64*).
struct TestRng(u64);

impl TestRng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Offsets of integers that read as a wall-clock time inside `[lo, hi]`
/// seconds, in seconds, milliseconds, microseconds or nanoseconds, as 4- or
/// 8-byte big- or little-endian values or as ASCII decimal digits.
fn clock_values(bytes: &[u8], lo: u64, hi: u64) -> Vec<(usize, &'static str, u64)> {
    let mut hits = Vec::new();
    let ranges = [
        ("s", lo, hi),
        ("ms", lo * 1_000, hi * 1_000 + 999),
        ("us", lo * 1_000_000, hi * 1_000_000 + 999_999),
        ("ns", lo * 1_000_000_000, hi * 1_000_000_000 + 999_999_999),
    ];
    let check = |v: u64, at: usize, how: &'static str, hits: &mut Vec<_>| {
        for (unit, a, b) in ranges {
            if (a..=b).contains(&v) {
                hits.push((at, if unit == "s" { how } else { unit }, v));
            }
        }
    };
    for i in 0..bytes.len() {
        if let Some(w) = bytes.get(i..i + 8) {
            let w: [u8; 8] = w.try_into().unwrap();
            check(u64::from_be_bytes(w), i, "u64be", &mut hits);
            check(u64::from_le_bytes(w), i, "u64le", &mut hits);
        }
        if let Some(w) = bytes.get(i..i + 4) {
            let w: [u8; 4] = w.try_into().unwrap();
            let be = u64::from(u32::from_be_bytes(w));
            let le = u64::from(u32::from_le_bytes(w));
            if (lo..=hi).contains(&be) {
                hits.push((i, "u32be", be));
            }
            if (lo..=hi).contains(&le) {
                hits.push((i, "u32le", le));
            }
        }
    }
    // ASCII decimal (10 digits for seconds, 13 for milliseconds, ...).
    let text = String::from_utf8_lossy(bytes);
    let mut digits = String::new();
    let mut start = 0;
    for (i, ch) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        if ch.is_ascii_digit() {
            if digits.is_empty() {
                start = i;
            }
            digits.push(ch);
        } else if !digits.is_empty() {
            for len in [10usize, 13, 16, 19] {
                if digits.len() >= len
                    && let Ok(v) = digits[..len].parse::<u64>()
                {
                    check(v, start, "ascii", &mut hits);
                }
            }
            digits.clear();
        }
    }
    hits
}

// ---------------------------------------------------------------------------
// Full run, then scan
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_stored_or_logged_links_a_person_or_a_time_to_a_pledge_redb() {
    full_run_then_scan(Backend::Redb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_stored_or_logged_links_a_person_or_a_time_to_a_pledge_sled() {
    full_run_then_scan(Backend::Sled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_stored_or_logged_links_a_person_or_a_time_to_a_pledge_postgres() {
    full_run_then_scan(Backend::Postgres).await;
}

#[test]
fn the_scanners_find_what_they_look_for() {
    // Positive controls: a clock value in each encoding is found.
    let now = unix_now();
    for bytes in [
        now.to_be_bytes().to_vec(),
        now.to_le_bytes().to_vec(),
        u32::try_from(now).unwrap().to_be_bytes().to_vec(),
        (now * 1_000).to_le_bytes().to_vec(),
        (now * 1_000_000_000).to_be_bytes().to_vec(),
        format!("x{now}y").into_bytes(),
        format!("t={}", now * 1_000).into_bytes(),
    ] {
        let mut hay = vec![0xa5u8; 13];
        hay.extend_from_slice(&bytes);
        hay.extend_from_slice(&[0x5a; 7]);
        assert!(
            !clock_values(&hay, now - 1, now + 1).is_empty(),
            "{bytes:?}"
        );
    }
    assert!(clock_values(&[0u8; 64], now - 1, now + 1).is_empty());
    assert_eq!(find(b"ab127.0.0.2cd", b"127.0.0.2"), Some(2));
}

async fn full_run_then_scan(backend: Backend) {
    // The PostgreSQL backend keeps the store in a database: its dump and
    // the cluster's log are scanned besides the data folder.
    let db = (backend == Backend::Postgres).then(|| pledge_tests::postgres::cluster().database());
    pledge_tests::logs::capture();
    let mut rng = TestRng(0x5eed_0001);
    let ua_open = format!("MARKER-UA-{:016x}", rng.next());
    let ua_invite = format!("MARKER-UA-{:016x}", rng.next());
    let dir = tempfile::tempdir().unwrap();
    let t_start = unix_now();
    // An unreachable witness (the discard port): its failed pushes make the
    // server log warnings during the run, so the log scan has lines to read.
    let mut cfg = config(dir.path());
    cfg.backend = backend;
    cfg.database_url = db
        .as_ref()
        .map(|d| pledge_server::config::DatabaseUrl(d.url().to_owned()));
    cfg.witnesses.push(pledge_server::witness::Witness {
        url: "http://127.0.0.1:9".into(),
        key: WitnessSigner::from_seed(KeyName::new("witness.example/w1").unwrap(), &[9; 32])
            .verifier(),
    });
    let srv = Server::start_with(&cfg).await;

    let open = Marked::new(&srv.base, [127, 0, 0, 2], &ua_open);
    let invited = Marked::new(&srv.base, [127, 0, 0, 3], &ua_invite);
    let admin = Marked::new(&srv.base, [127, 0, 0, 1], "MARKER-UA-admin");

    // An invite campaign and invite codes.
    let (s, v) = admin
        .post(
            "/v1/admin/invites",
            &json!({"group": "union-local-7", "count": 4}),
            Some(&srv.admin),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let codes: Vec<String> = v["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let (s, v) = admin
        .post(
            "/v1/campaigns",
            &json!({"title": "Walk out", "text": "If enough of us do.", "action": "walk out",
                    "deadline": unix_now() + 7 * 86_400, "goal": 3,
                    "threshold_min": 1, "threshold_max": 50,
                    "attester": {"kind": "invite", "group": "union-local-7"}}),
            Some(&srv.admin),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let walkout = CampaignId::from_hex(v["campaign_id"].as_str().unwrap()).unwrap();
    let demo = open.demo().await;

    // Tokens, pledges, an amendment and a withdrawal from both addresses.
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    let mut submitted = Vec::new();
    let (pk_demo, _) = open.campaign_key(&demo).await;
    let (pk_walk, _) = invited.campaign_key(&walkout).await;
    for i in 0..6u32 {
        let (t, k) = open.token(&demo, &pk_demo, json!({"kind": "open"})).await;
        submitted.push((demo, t, k, 1 + i % 4));
    }
    for code in &codes[..3] {
        let (t, k) = invited
            .token(&walkout, &pk_walk, json!({"kind": "invite", "code": code}))
            .await;
        submitted.push((walkout, t, k, 2));
    }
    let mut nullifiers = Vec::new();
    for (i, (c, t, k, th)) in submitted.iter().enumerate() {
        let p = Pledge::sign(*c, t.clone(), Terms::threshold(*th).unwrap(), k).unwrap();
        nullifiers.push((*c, p.nullifier(), i));
        secrets.push(("token signature".into(), t.signature.to_vec()));
        secrets.push(("pledge key".into(), t.pledge_pk.as_bytes().to_vec()));
        let client = if i % 2 == 0 { &open } else { &invited };
        let (s, v) = client.submit("/v1/pledges", &Entry::Pledge(p)).await;
        assert_eq!(s, 200, "{v}");
    }
    let (c0, n0, i0) = nullifiers[0];
    let amend = Entry::PledgeAmended(Amendment::sign(
        c0,
        n0,
        1,
        Terms::threshold(3).unwrap(),
        &submitted[i0].2,
    ));
    assert_eq!(open.submit("/v1/pledges/amend", &amend).await.0, 200);
    let (c1, n1, i1) = nullifiers[1];
    let withdraw = Entry::PledgeWithdrawn(Withdrawal::sign(c1, n1, 1, &submitted[i1].2));
    assert_eq!(
        invited.submit("/v1/pledges/withdraw", &withdraw).await.0,
        200
    );
    // A refused request from a marked client is logged the same way.
    let (s, _) = invited
        .submit(
            "/v1/pledges",
            &Entry::Pledge(
                Pledge::sign(
                    submitted[0].0,
                    submitted[0].1.clone(),
                    Terms::threshold(1).unwrap(),
                    &submitted[0].2,
                )
                .unwrap(),
            ),
        )
        .await;
    assert_eq!(s, 409);
    srv.shutdown().await;
    // Restart once so recovery paths log too, then stop.
    let srv = Server::start_with(&cfg).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    srv.shutdown().await;
    let t_end = unix_now();

    // What must appear nowhere.
    let mut markers: Vec<(String, Vec<u8>)> = vec![
        ("user agent (open)".into(), ua_open.clone().into_bytes()),
        ("user agent (invite)".into(), ua_invite.clone().into_bytes()),
        ("user agent prefix".into(), b"MARKER-UA".to_vec()),
        ("address 127.0.0.2".into(), b"127.0.0.2".to_vec()),
        ("address 127.0.0.3".into(), b"127.0.0.3".to_vec()),
        ("address 127.0.0.2 (binary)".into(), vec![127, 0, 0, 2]),
        ("address 127.0.0.3 (binary)".into(), vec![127, 0, 0, 3]),
        ("forwarding header name".into(), b"x-forwarded-for".to_vec()),
    ];
    for code in &codes {
        markers.push(("invite code".into(), code.clone().into_bytes()));
        markers.push((
            "invite code (upper)".into(),
            code.to_uppercase().into_bytes(),
        ));
    }

    // 1. The data folder, and the database's dump and its server's log.
    let mut files: Vec<(String, Vec<u8>)> = files_under(dir.path())
        .into_iter()
        .map(|f| (f.display().to_string(), std::fs::read(&f).unwrap()))
        .collect();
    assert!(!files.is_empty());
    if let Some(db) = &db {
        let dump = db.dump();
        assert!(
            find(&dump, b"COPY public.entries").is_some(),
            "the dump holds the log"
        );
        files.push(("the database dump".into(), dump));
        files.push((
            "the PostgreSQL server log".into(),
            pledge_tests::postgres::cluster().log().into_bytes(),
        ));
    }
    let mut scanned = 0usize;
    for (name, bytes) in &files {
        scanned += bytes.len();
        for (what, m) in &markers {
            assert!(
                find(bytes, m).is_none(),
                "{what} found in {name} at {:?}",
                find(bytes, m)
            );
        }
        let hits = clock_values(bytes, t_start.saturating_sub(2), t_end + 2);
        assert!(
            hits.is_empty(),
            "wall-clock values in {name}: {:?}",
            &hits[..hits.len().min(10)]
        );
        if db.is_some() {
            // No nullifier quoted in an error message of the database's log
            // or anywhere it is not the log's own table.
            for (_, n, _) in &nullifiers {
                let quoted = format!("\\x{}", hex::encode(n.as_bytes()));
                if !name.contains("dump") {
                    assert!(
                        find(bytes, quoted.as_bytes()).is_none(),
                        "nullifier in {name}"
                    );
                }
            }
        }
    }
    println!(
        "{backend:?}: scanned {} files, {scanned} bytes, for {} markers and clock values",
        files.len(),
        markers.len()
    );

    // 2. Every log line the servers printed.
    let log = pledge_tests::logs::text();
    assert!(
        log.lines().count() > 0,
        "no log lines captured: is tracing wired?"
    );
    for (what, m) in &markers {
        assert!(
            find(log.as_bytes(), m).is_none(),
            "{what} found in the server log:\n{}",
            log.lines()
                .filter(|l| find(l.as_bytes(), m).is_some())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // DESIGN P6: no token, nullifier or pledge key in the log, in hex or base64.
    for (c, n, _) in &nullifiers {
        for s in [hex::encode(n.as_bytes()), B64.encode(n.as_bytes())] {
            assert!(!log.contains(&s), "nullifier in the log");
        }
        let _ = c;
    }
    for (what, b) in &secrets {
        for s in [hex::encode(b), B64.encode(b)] {
            assert!(!log.contains(&s), "{what} in the log");
        }
    }
    println!("scanned {} log lines", log.lines().count());
}

// ---------------------------------------------------------------------------
// Batch order
// ---------------------------------------------------------------------------

/// Kendall's tau between `order` (a permutation of 0..n) and the identity.
fn kendall_tau(order: &[usize]) -> f64 {
    let n = order.len();
    let mut concordant = 0i64;
    let mut discordant = 0i64;
    for i in 0..n {
        for j in i + 1..n {
            if order[i] < order[j] {
                concordant += 1;
            } else {
                discordant += 1;
            }
        }
    }
    (concordant - discordant) as f64 / (n * (n - 1) / 2) as f64
}

/// Under the null hypothesis (log order a uniformly random permutation of
/// arrival order), Kendall's tau has mean 0 and standard deviation
/// sigma = sqrt(2(2n+5) / (9n(n-1))), and is close to normal for n >= 10.
/// |tau| < 4 sigma then fails by chance with probability about 6e-5 (two-sided
/// normal tail at 4 sigma), while an order that follows arrival (tau = 1) or
/// mostly follows it fails it by far: see the `bound_rejects_*` assertions.
fn tau_bound(n: usize) -> f64 {
    let n = n as f64;
    4.0 * (2.0 * (2.0 * n + 5.0) / (9.0 * n * (n - 1.0))).sqrt()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_order_does_not_follow_arrival_order() {
    const N: usize = 48;
    let bound = tau_bound(N);
    // The bound has power: an arrival-ordered batch, or one with a fifth of
    // its neighbours swapped, or reversed, is rejected.
    let identity: Vec<usize> = (0..N).collect();
    assert!(kendall_tau(&identity) >= bound);
    let mut rng = TestRng(0x5eed_0002);
    let mut nearly = identity.clone();
    for i in (0..N - 1).step_by(5) {
        nearly.swap(i, i + 1);
    }
    assert!(kendall_tau(&nearly) >= bound, "{}", kendall_tau(&nearly));
    let reversed: Vec<usize> = identity.iter().rev().copied().collect();
    assert!(kendall_tau(&reversed).abs() >= bound);

    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(&config(dir.path())).await;
    let client = Marked::new(&srv.base, [127, 0, 0, 1], "order-test");
    let c = client.demo().await;
    let (pk, _) = client.campaign_key(&c).await;
    let mut entries = Vec::new();
    for _ in 0..N {
        let (t, k) = client.token(&c, &pk, json!({"kind": "open"})).await;
        let th = 1 + u32::try_from(rng.next() % 20).unwrap();
        entries.push(Entry::Pledge(
            Pledge::sign(c, t, Terms::threshold(th).unwrap(), &k).unwrap(),
        ));
    }
    srv.shutdown().await;

    // One batch of exactly N: it is integrated when the N-th arrives.
    let mut cfg = config(dir.path());
    cfg.batch_interval = Duration::from_secs(3600);
    cfg.batch_size = N;
    let srv = Server::start_with(&cfg).await;
    let client = Marked::new(&srv.base, [127, 0, 0, 1], "order-test");
    let size0 = client.size().await;
    let mut tasks = Vec::new();
    for e in &entries {
        let cl = client.clone();
        let e = e.clone();
        tasks.push(tokio::spawn(
            async move { cl.submit("/v1/pledges", &e).await },
        ));
        // Space the arrivals so the queue order is the submission order.
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let mut indexes = Vec::new();
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert_eq!(s, 200, "{v}");
        indexes.push(v["index"].as_u64().unwrap());
    }
    let log = client.entries().await;
    srv.shutdown().await;
    assert_eq!(log.len() as u64, size0 + N as u64);
    // Arrival rank of the entry at each log position of the batch.
    let batch = &log[usize::try_from(size0).unwrap()..];
    let order: Vec<usize> = batch
        .iter()
        .map(|b| {
            entries
                .iter()
                .position(|e| &e.encode().unwrap() == b)
                .unwrap()
        })
        .collect();
    for (rank, index) in indexes.iter().enumerate() {
        assert_eq!(order[usize::try_from(index - size0).unwrap()], rank);
    }
    let tau = kendall_tau(&order);
    println!("batch of {N}: Kendall tau {tau:.3}, bound {bound:.3}");
    assert!(
        tau.abs() < bound,
        "log order follows arrival order: tau = {tau:.3} >= {bound:.3}: {order:?}"
    );
}

// ---------------------------------------------------------------------------
// Same key for everyone
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_gets_the_logged_campaign_key() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(&config(dir.path())).await;
    let admin = Marked::new(&srv.base, [127, 0, 0, 1], "admin");
    let (s, v) = admin
        .post(
            "/v1/campaigns",
            &json!({"title": "second", "action": "act", "deadline": unix_now() + 86_400,
                    "goal": 2, "threshold_min": 1, "threshold_max": 9,
                    "attester": {"kind": "open"}}),
            Some(&srv.admin),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let clients: Vec<Marked> = [
        [127, 0, 0, 1],
        [127, 0, 0, 2],
        [127, 0, 0, 3],
        [127, 0, 0, 4],
    ]
    .iter()
    .enumerate()
    .map(|(i, ip)| Marked::new(&srv.base, *ip, &format!("client-{i}")))
    .collect();
    let log = clients[0].entries().await;
    let (_, b) = clients[0].get("/v1/campaigns").await;
    let list: Value = serde_json::from_slice(&b).unwrap();
    let ids: Vec<CampaignId> = list["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| CampaignId::from_hex(c["campaign_id"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    for id in &ids {
        let mut seen = Vec::new();
        for (round, cl) in clients.iter().cycle().take(12).enumerate() {
            let (key, opened) = cl.campaign_key(id).await;
            let logged = match Entry::decode(&log[usize::try_from(opened).unwrap()]).unwrap() {
                Entry::CampaignOpened(o) => {
                    assert_eq!(o.definition.id(), *id);
                    o.issuer_key
                }
                other => panic!("opened_index points at {other:?}"),
            };
            assert_eq!(
                key,
                logged,
                "client {} round {round}",
                round % clients.len()
            );
            // The list answer carries the same key.
            let (_, b) = cl.get("/v1/campaigns").await;
            let v: Value = serde_json::from_slice(&b).unwrap();
            let listed = v["campaigns"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["campaign_id"] == id.to_hex())
                .unwrap()["issuer_key"]
                .as_str()
                .unwrap()
                .to_owned();
            assert_eq!(B64.decode(listed).unwrap(), key.as_spki().to_vec());
            seen.push(key);
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]));
    }
    srv.shutdown().await;
    let _ = std::io::stdout().flush();
}
