//! The independent auditor (`pledge audit`) against a real in-process server,
//! against a lying proxy in front of it, and against forged static logs built
//! with the protocol crate (for what a real server cannot be made to produce).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pledge_client::audit::{self, AuditError, AuditOptions, AuditReport, FailureKind};
use pledge_protocol::campaign::{CampaignDefinition, CampaignParams, RevealPolicy};
use pledge_protocol::checkpoint::Checkpoint;
use pledge_protocol::entry::{CampaignClosed, CampaignOpened, Entry};
use pledge_protocol::hash::CampaignId;
use pledge_protocol::ledger::{LedgerState, PledgeKeys};
use pledge_protocol::merkle::{MemoryHashes, leaf_hash};
use pledge_protocol::note::{KeyName, NoteSignature, NoteSigner, SignedNote, sign_note};
use pledge_protocol::pledge::{Amendment, Pledge, PledgeSigningKey, Terms, Withdrawal};
use pledge_protocol::tally::{TallySnapshot, TallyStatement};
use pledge_protocol::tile::{encode_bundle, tile_data, tiles_for_size};
use pledge_protocol::token::{IssuerPublicKey, IssuerSecretKey, Token, blind, finalize};
use pledge_tests::proxy::{Byte, Paths, Proxy, Rule};
use pledge_tests::server::Server;
use pledge_tests::serving::serve;
use pledge_tests::unix_now;
use pledge_tests::witness::WitnessServer;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// A real server
// ---------------------------------------------------------------------------

/// The calls of this suite, on the harness's server.
trait Calls {
    async fn fetch(&self, path: &str) -> Vec<u8>;
    async fn campaign(&self, id: &CampaignId) -> Value;
    async fn key_of(&self, id: &CampaignId) -> IssuerPublicKey;
    async fn submit_ok(&self, path: &str, e: &Entry);
    async fn pledge(
        &self,
        c: &CampaignId,
        pk: &IssuerPublicKey,
        t: u32,
    ) -> (PledgeSigningKey, pledge_protocol::hash::Nullifier);
}

impl Calls for Server {
    /// `GET path`, asserting a 200.
    async fn fetch(&self, path: &str) -> Vec<u8> {
        let (s, b) = self.get(path).await;
        assert_eq!(s, 200, "{path}");
        b
    }

    async fn campaign(&self, id: &CampaignId) -> Value {
        serde_json::from_slice(&self.fetch(&format!("/v1/campaigns/{}", id.to_hex())).await)
            .unwrap()
    }

    async fn key_of(&self, id: &CampaignId) -> IssuerPublicKey {
        let c = self.campaign(id).await;
        IssuerPublicKey::from_spki(&B64.decode(c["issuer_key"].as_str().unwrap()).unwrap()).unwrap()
    }

    async fn submit_ok(&self, path: &str, e: &Entry) {
        let (s, v) = self.submit(path, e).await;
        assert_eq!(s, 200, "{path}: {v}");
    }

    /// Pledges with threshold `t`; returns the pledge key and nullifier.
    async fn pledge(
        &self,
        c: &CampaignId,
        pk: &IssuerPublicKey,
        t: u32,
    ) -> (PledgeSigningKey, pledge_protocol::hash::Nullifier) {
        let (token, key) = self.token(c, pk).await;
        let p = Pledge::sign(*c, token, Terms::threshold(t).unwrap(), &key).unwrap();
        let n = p.nullifier();
        self.submit_ok("/v1/pledges", &Entry::Pledge(p)).await;
        (key, n)
    }
}

/// A server with the harness defaults and closing checks every 100 ms.
async fn start(dir: &Path) -> Server {
    Server::start_in(dir, |c| {
        c.close_check_interval = Duration::from_millis(100);
    })
    .await
}

// ---------------------------------------------------------------------------
// A lying proxy in front of the real server
// ---------------------------------------------------------------------------

fn opts(base: &str, state: Option<&Path>) -> AuditOptions {
    let mut o = AuditOptions::new(base);
    o.state_dir = state.map(Path::to_path_buf);
    o
}

async fn run_audit(o: &AuditOptions) -> AuditReport {
    audit::audit(o).await.unwrap()
}

fn kinds(r: &AuditReport) -> Vec<FailureKind> {
    r.failures.iter().map(|f| f.kind).collect()
}

/// Each failure's kind and the entry index it names.
fn kinds_at(r: &AuditReport) -> Vec<(FailureKind, Option<u64>)> {
    r.failures.iter().map(|f| (f.kind, f.index)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_server_passes_and_a_lying_proxy_is_caught_on_each_lie() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path()).await;
    let list: Value = serde_json::from_slice(&srv.fetch("/v1/campaigns").await).unwrap();
    let demo = CampaignId::from_hex(list["campaigns"][0]["campaign_id"].as_str().unwrap()).unwrap();
    let demo_pk = srv.key_of(&demo).await;

    // A second campaign that closes in a few seconds.
    let (s, v) = srv
        .post_admin(
            "/v1/campaigns",
            &json!({"title": "Short", "action": "walk out", "deadline": unix_now() + 3,
                    "goal": 2, "threshold_min": 1, "threshold_max": 10,
                    "attester": {"kind": "open"}}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let short = CampaignId::from_hex(v["campaign_id"].as_str().unwrap()).unwrap();
    let short_pk = srv.key_of(&short).await;

    let mut demo_pledges = Vec::new();
    for t in [1, 2, 2, 3, 5] {
        demo_pledges.push(srv.pledge(&demo, &demo_pk, t).await);
    }
    // An early checkpoint, to replay later as a "smaller" one.
    let early_checkpoint = srv.fetch("/log/checkpoint").await;
    for t in [1, 2, 4] {
        srv.pledge(&short, &short_pk, t).await;
    }
    let (k, n) = &demo_pledges[4];
    let a = Amendment::sign(demo, *n, 1, Terms::threshold(2).unwrap(), k);
    srv.submit_ok("/v1/pledges/amend", &Entry::PledgeAmended(a))
        .await;
    let (k, n) = &demo_pledges[3];
    let w = Withdrawal::sign(demo, *n, 1, k);
    srv.submit_ok("/v1/pledges/withdraw", &Entry::PledgeWithdrawn(w))
        .await;

    // Honest server, no state: passes, with the key trusted on first use.
    let r = run_audit(&opts(&srv.base, None)).await;
    assert!(r.passed(), "{r}");
    assert_eq!(r.counts.campaigns_opened, 2);
    assert_eq!(r.counts.pledges, 8);
    assert_eq!(r.counts.amendments, 1);
    assert_eq!(r.counts.withdrawals, 1);
    assert_eq!(r.counts.pledges_verified, 8);
    assert_eq!(r.counts.tally_statements, 2);
    assert_eq!(r.log_key_source, audit::KeySource::TrustOnFirstUse);
    let d = r.campaigns.iter().find(|c| c.id == demo.to_hex()).unwrap();
    assert_eq!((d.pledges, d.live, d.active), (5, 4, 4));
    // The replayed tallies equal the server's.
    for c in &r.campaigns {
        let v = srv.campaign(&CampaignId::from_hex(&c.id).unwrap()).await;
        assert_eq!(v["tally"]["live"].as_u64(), Some(c.live), "{v}");
        assert_eq!(v["tally"]["active"].as_u64(), Some(c.active), "{v}");
    }
    assert!(format!("{r}").contains("PASS"), "{r}");

    // Wait for the short campaign to close, then audit through the proxy
    // with a state directory.
    let deadline = Instant::now() + Duration::from_secs(15);
    while srv.campaign(&short).await["state"] != "closed" {
        assert!(Instant::now() < deadline, "campaign did not close");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tamper = Proxy::start(&srv.base).await;
    let proxy = tamper.base.clone();
    let state = tempfile::tempdir().unwrap();
    let r = run_audit(&opts(&proxy, Some(state.path()))).await;
    assert!(r.passed(), "{r}");
    assert_eq!(r.counts.campaigns_closed, 1);
    assert!(r.state_updated);
    let pinned = r.checkpoint.clone().unwrap();
    let s = r.campaigns.iter().find(|c| c.id == short.to_hex()).unwrap();
    assert!(s.closed);
    assert_eq!(s.tokens_issued, Some(3));
    // Again with the key now pinned by the state (as `pledge audit --state
    // DIR --threads 2` runs it).
    let mut again = opts(&proxy, Some(state.path()));
    again.threads = 2;
    assert!(run_audit(&again).await.passed());
    let r = run_audit(&opts(&proxy, Some(state.path()))).await;
    assert_eq!(r.log_key_source, audit::KeySource::State);
    assert_eq!(r.previous, Some(pinned.clone()));

    // Lie 1: a smaller checkpoint than the one pinned (validly signed: it is
    // the server's own older checkpoint).
    tamper.set([Rule::serve(Paths::is("/log/checkpoint"), early_checkpoint)]);
    let r = run_audit(&opts(&proxy, Some(state.path()))).await;
    assert_eq!(kinds(&r), vec![FailureKind::TreeShrank], "{r}");
    assert!(!run_audit(&again).await.passed());

    // Lie 2: a checkpoint signed by another key with the log's name.
    let real = String::from_utf8(srv.fetch("/log/checkpoint").await).unwrap();
    let body = real.split_once("\n\n").unwrap().0.to_owned() + "\n";
    let origin = body.lines().next().unwrap();
    let other = NoteSigner::generate(KeyName::new(origin).unwrap()).unwrap();
    let forged = sign_note(&body, &[&other]).unwrap().to_text();
    tamper.set([Rule::serve(Paths::is("/log/checkpoint"), forged)]);
    let r = run_audit(&opts(&proxy, Some(state.path()))).await;
    assert_eq!(kinds(&r), vec![FailureKind::CheckpointSignature], "{r}");

    // Lie 3: a hash tile with one flipped bit (fresh audit: every tile fetched).
    tamper.set([Rule::flip_bit(
        Paths::start_with("/log/tile/0/000"),
        Byte::At(5),
    )]);
    let r = run_audit(&opts(&proxy, None)).await;
    assert!(r.has(FailureKind::TileMismatch), "{r}");
    assert!(!r.has(FailureKind::RootMismatch), "{r}");
    assert_eq!(
        r.failures_of(FailureKind::TileMismatch)
            .next()
            .unwrap()
            .index,
        Some(0)
    );

    // Lie 4: an entry bundle with one flipped bit (its last byte).
    tamper.set([Rule::flip_bit(
        Paths::start_with("/log/tile/entries/000"),
        Byte::Last,
    )]);
    let r = run_audit(&opts(&proxy, None)).await;
    assert!(r.has(FailureKind::RootMismatch), "{r}");
    let size = r.checkpoint.as_ref().unwrap().size;
    let altered: Vec<_> = r.failures_of(FailureKind::EntryMismatch).collect();
    assert_eq!(altered.len(), 1, "{r}");
    assert_eq!(altered[0].index, Some(size - 1));
    assert!(!r.has(FailureKind::TileMismatch), "{r}");

    // Lie 5: a tally statement signed by the log key with a wrong count.
    let signer = NoteSigner::from_private_key_text(
        std::fs::read_to_string(dir.path().join("log.key"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let lie = TallyStatement::new(
        origin,
        size,
        demo,
        TallySnapshot::from_buckets(vec![(1, 1), (2, 3), (3, 1)]).unwrap(),
    )
    .unwrap();
    let note = sign_note(&lie.to_note_body(), &[&signer])
        .unwrap()
        .to_text();
    tamper.set([Rule::serve(Paths::end_with("/tally"), note)]);
    let r = run_audit(&opts(&proxy, None)).await;
    let wrong: Vec<_> = r.failures_of(FailureKind::TallyMismatch).collect();
    assert_eq!(wrong.len(), 1, "{r}");
    assert_eq!(wrong[0].campaign, Some(demo.to_hex()));
    // (The same statement served for the other campaign names the wrong one.)
    assert!(r.has(FailureKind::TallyMalformed), "{r}");

    // None of the lies moved the pinned checkpoint; the truth still passes.
    tamper.clear();
    let r = run_audit(&opts(&proxy, Some(state.path()))).await;
    assert!(r.passed(), "{r}");
    assert_eq!(r.previous, Some(pinned));
    let _ = srv.stop().await;
}

// ---------------------------------------------------------------------------
// Forged static logs
// ---------------------------------------------------------------------------

/// A static log: path → bytes, served by a test app.
type Files = Arc<Mutex<HashMap<String, Vec<u8>>>>;

async fn static_handler(State(files): State<Files>, uri: Uri) -> Response {
    match files.lock().unwrap().get(uri.path()) {
        Some(b) => b.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn serve_files(files: Files) -> String {
    serve(Router::new().fallback(static_handler).with_state(files)).await
}

const ORIGIN: &str = "forged.example/pledge";

/// The files of a log of `entries`, with tally statements.
fn publish(
    signer: &NoteSigner,
    entries: &[Vec<u8>],
    statements: &[(CampaignId, TallyStatement)],
) -> HashMap<String, Vec<u8>> {
    let mut mem = MemoryHashes::new();
    for e in entries {
        mem.push(leaf_hash(e)).unwrap();
    }
    let size = mem.size();
    let mut files = HashMap::new();
    for t in tiles_for_size(size) {
        files.insert(format!("/log/{}", t.path()), tile_data(&t, &mem).unwrap());
        if let Some(b) = t.bundle() {
            let (start, end) = b.leaf_range();
            let slice = &entries[usize::try_from(start).unwrap()..usize::try_from(end).unwrap()];
            files.insert(format!("/log/{}", b.path()), encode_bundle(slice).unwrap());
        }
    }
    let ck = Checkpoint::new(KeyName::new(ORIGIN).unwrap(), size, mem.root())
        .sign(signer)
        .unwrap();
    files.insert("/log/checkpoint".into(), ck.to_text().into_bytes());
    files.insert(
        "/v1/log/key".into(),
        format!("{}\n", signer.verifier().to_text()).into_bytes(),
    );
    let list: Vec<Value> = statements
        .iter()
        .map(|(id, _)| json!({"campaign_id": id.to_hex()}))
        .collect();
    files.insert(
        "/v1/campaigns".into(),
        json!({ "campaigns": list }).to_string().into_bytes(),
    );
    for (id, st) in statements {
        let note = sign_note(&st.to_note_body(), &[signer]).unwrap();
        files.insert(
            format!("/v1/campaigns/{}/tally", id.to_hex()),
            note.to_text().into_bytes(),
        );
    }
    files
}

struct Campaign {
    id: CampaignId,
    sk: IssuerSecretKey,
}

impl Campaign {
    fn new(title: &str) -> (Self, Entry) {
        let definition = CampaignDefinition::new(CampaignParams {
            nonce: [7; 16],
            title: title.into(),
            text: String::new(),
            action: "strike".into(),
            deadline: 4_000_000_000,
            goal: 3,
            threshold_min: 1,
            threshold_max: 100,
            reveal: RevealPolicy::Live,
        })
        .unwrap();
        let sk = IssuerSecretKey::generate().unwrap();
        let opened = Entry::CampaignOpened(CampaignOpened {
            issuer_key: sk.public_key().clone(),
            definition: definition.clone(),
        });
        (
            Self {
                id: definition.id(),
                sk,
            },
            opened,
        )
    }

    /// A token signed by `signer` (normally this campaign's key).
    fn token_by(&self, signer: &IssuerSecretKey) -> (Token, PledgeSigningKey) {
        let key = PledgeSigningKey::generate().unwrap();
        let (blinded, st) = blind(signer.public_key(), &self.id, &key.public_key()).unwrap();
        let sig = signer.blind_sign(blinded.as_bytes()).unwrap();
        let token = finalize(
            signer.public_key(),
            &st,
            sig.as_bytes(),
            &self.id,
            &key.public_key(),
        )
        .unwrap();
        (token, key)
    }

    fn pledge(&self, t: u32) -> (Pledge, PledgeSigningKey) {
        let (token, key) = self.token_by(&self.sk);
        let p = Pledge::sign(self.id, token, Terms::threshold(t).unwrap(), &key).unwrap();
        (p, key)
    }
}

fn enc(e: &Entry) -> Vec<u8> {
    e.encode().unwrap()
}

/// The tally of `id` after replaying `entries` honestly (skipping bad ones).
fn tally_after(entries: &[Vec<u8>], id: &CampaignId) -> TallySnapshot {
    let mut st = LedgerState::new();
    let mut keys = PledgeKeys::new();
    for e in entries {
        if let Ok(e) = Entry::decode(e) {
            let _ = st.verify_and_apply(e, &mut keys);
        }
    }
    st.campaign(id).unwrap().tally.snapshot().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_log_gets_every_failure_reported_with_its_entry_index() {
    let signer = NoteSigner::generate(KeyName::new(ORIGIN).unwrap()).unwrap();
    let (a, open_a) = Campaign::new("A");
    let (b, open_b) = Campaign::new("B");
    let (p1, k1) = a.pledge(1);
    let (p2, _k2) = a.pledge(2);
    let (mut p3, _) = a.pledge(3);
    p3.token.signature[100] ^= 0x01; // forged token signature
    let stranger = PledgeSigningKey::generate().unwrap();
    let bad_amend = Amendment::sign(
        a.id,
        p2.nullifier(),
        1,
        Terms::threshold(5).unwrap(),
        &stranger,
    );
    let withdraw = Withdrawal::sign(a.id, p1.nullifier(), 1, &k1);
    let late_amend = Amendment::sign(a.id, p1.nullifier(), 2, Terms::threshold(2).unwrap(), &k1);
    // A token for B signed with A's key (another campaign's key).
    let (tok, kx) = b.token_by(&a.sk);
    let cross = Pledge::sign(b.id, tok, Terms::threshold(1).unwrap(), &kx).unwrap();
    let (q1, _) = b.pledge(1);
    let (q2, _) = b.pledge(2);
    let (p4, _) = a.pledge(1);

    let mut entries = vec![
        enc(&open_a),                           // 0
        enc(&Entry::Pledge(p1.clone())),        // 1
        enc(&Entry::Pledge(p2)),                // 2
        enc(&Entry::Pledge(p1)),                // 3 duplicate nullifier
        enc(&Entry::Pledge(p3)),                // 4 forged token
        enc(&Entry::PledgeAmended(bad_amend)),  // 5 wrong key
        enc(&Entry::PledgeWithdrawn(withdraw)), // 6 ok
        enc(&Entry::PledgeAmended(late_amend)), // 7 after withdrawal
        enc(&open_b),                           // 8
        enc(&Entry::Pledge(cross)),             // 9 token under A's key
        enc(&Entry::Pledge(q1)),                // 10
        enc(&Entry::Pledge(q2)),                // 11
    ];
    let final_a = tally_after(&entries, &a.id);
    entries.push(enc(&Entry::CampaignClosed(CampaignClosed::new(
        a.id, 10, &final_a,
    )))); // 12 ok
    entries.push(enc(&Entry::Pledge(p4))); // 13 after close
    let tally_b = tally_after(&entries, &b.id);
    entries.push(enc(&Entry::CampaignClosed(CampaignClosed::new(
        b.id, 1, &tally_b,
    )))); // 14: 2 pledges, 1 token
    entries.push(vec![1, 99, 0]); // 15 undecodable
    let size = entries.len() as u64;
    let statements = vec![
        (
            a.id,
            TallyStatement::new(ORIGIN, 13, a.id, final_a).unwrap(),
        ),
        (
            b.id,
            // B's tally at size 12 is two pledges (thresholds 1 and 2); this says three.
            TallyStatement::new(
                ORIGIN,
                12,
                b.id,
                TallySnapshot::from_buckets(vec![(1, 2), (2, 1)]).unwrap(),
            )
            .unwrap(),
        ),
    ];
    let files: Files = Arc::new(Mutex::new(publish(&signer, &entries, &statements)));
    let base = serve_files(files.clone()).await;
    let mut o = opts(&base, None);
    o.log_key = Some(signer.verifier());
    let r = run_audit(&o).await;
    let got = kinds_at(&r);
    assert_eq!(
        got,
        vec![
            (FailureKind::DuplicateNullifier, Some(3)),
            (FailureKind::BadToken, Some(4)),
            (FailureKind::BadPledgeSignature, Some(5)),
            (FailureKind::AfterWithdrawal, Some(7)),
            (FailureKind::BadToken, Some(9)),
            (FailureKind::OutsideOpenWindow, Some(13)),
            (FailureKind::MorePledgesThanTokens, Some(14)),
            (FailureKind::EntryUndecodable, Some(15)),
            (FailureKind::TallyMismatch, None),
        ],
        "{r}"
    );
    assert_eq!(r.counts.entries, size);
    assert_eq!(r.log_key_source, audit::KeySource::Argument);
    let tm = r.failures_of(FailureKind::TallyMismatch).next().unwrap();
    assert_eq!(tm.campaign, Some(b.id.to_hex()));
    // The JSON report names each failure by kind and index.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["failures"][0]["kind"], "duplicate_nullifier");
    assert_eq!(json["failures"][0]["index"], 3);
    assert_eq!(json["passed"], false);

    // A truncated checkpoint.
    let ck = files.lock().unwrap()["/log/checkpoint"].clone();
    files
        .lock()
        .unwrap()
        .insert("/log/checkpoint".into(), ck[..ck.len() - 20].to_vec());
    let r = run_audit(&o).await;
    assert_eq!(kinds(&r), vec![FailureKind::CheckpointMalformed], "{r}");

    // A validly signed checkpoint of an absurd size costs a few requests,
    // not 2^32 of them.
    let huge = Checkpoint::new(KeyName::new(ORIGIN).unwrap(), 1 << 40, leaf_hash(b"x"))
        .sign(&signer)
        .unwrap();
    files
        .lock()
        .unwrap()
        .insert("/log/checkpoint".into(), huge.to_text().into_bytes());
    let r = tokio::time::timeout(Duration::from_secs(20), run_audit(&o))
        .await
        .expect("the audit of an absurd size must end quickly");
    assert!(r.has(FailureKind::Unavailable), "{r}");
    assert!(!r.passed());
}

/// `n` honest pledges in one campaign (threshold 1..=5), after its opening.
fn honest_entries(n: usize) -> (Campaign, Vec<Vec<u8>>) {
    let (a, open) = Campaign::new("Honest");
    let mut entries = vec![enc(&open)];
    for i in 0..n {
        let (p, _) = a.pledge(1 + (i % 5) as u32);
        entries.push(enc(&Entry::Pledge(p)));
    }
    (a, entries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_makes_later_runs_incremental_and_catches_forks_and_rewrites() {
    let signer = NoteSigner::generate(KeyName::new(ORIGIN).unwrap()).unwrap();
    let (a, mut entries) = honest_entries(299); // 300 entries: one full bundle + 44
    let statement = |entries: &[Vec<u8>]| {
        vec![(
            a.id,
            TallyStatement::new(
                ORIGIN,
                entries.len() as u64,
                a.id,
                tally_after(entries, &a.id),
            )
            .unwrap(),
        )]
    };
    let files: Files = Arc::new(Mutex::new(publish(&signer, &entries, &statement(&entries))));
    let base = serve_files(files.clone()).await;
    let state = tempfile::tempdir().unwrap();
    let mut o = opts(&base, Some(state.path()));
    o.log_key = Some(signer.verifier());
    o.threads = 2;

    let r = run_audit(&o).await;
    assert!(r.passed(), "{r}");
    assert_eq!((r.counts.bundles_fetched, r.counts.bundles_cached), (2, 0));
    assert_eq!(r.counts.pledges_verified, 299);
    assert!(r.state_updated);

    // The log grows: only the new bundles and tiles are fetched; old pledges'
    // signatures are not checked again, but every entry is replayed.
    let (extra, _) = a.pledge(4);
    entries.push(enc(&Entry::Pledge(extra)));
    let grown = publish(&signer, &entries, &statement(&entries));
    *files.lock().unwrap() = grown.clone();
    let r = run_audit(&o).await;
    assert!(r.passed(), "{r}");
    assert_eq!((r.counts.bundles_fetched, r.counts.bundles_cached), (1, 1));
    assert_eq!(r.counts.pledges_verified, 301 - 256);
    assert_eq!(r.counts.replayed, 301);
    assert_eq!(r.previous.as_ref().unwrap().size, 300);

    // A fork: same size, another last entry, validly signed.
    let mut forked = entries.clone();
    let (other, _) = a.pledge(2);
    *forked.last_mut().unwrap() = enc(&Entry::Pledge(other));
    *files.lock().unwrap() = publish(&signer, &forked, &statement(&forked));
    let r = run_audit(&o).await;
    assert_eq!(kinds(&r), vec![FailureKind::CheckpointFork], "{r}");

    // A rewrite: a bigger tree that does not extend the pinned one.
    let (more, _) = a.pledge(3);
    forked.push(enc(&Entry::Pledge(more)));
    *files.lock().unwrap() = publish(&signer, &forked, &statement(&forked));
    let r = run_audit(&o).await;
    assert_eq!(kinds(&r), vec![FailureKind::Inconsistent], "{r}");
    assert!(!r.state_updated);

    // The honest log still passes against the state the lies did not move.
    *files.lock().unwrap() = grown.clone();
    let r = run_audit(&o).await;
    assert!(r.passed(), "{r}");
    assert_eq!(r.previous.as_ref().unwrap().size, 301);

    // A witness policy the checkpoint does not meet.
    let w =
        pledge_protocol::cosignature::WitnessSigner::generate(KeyName::new("w1").unwrap()).unwrap();
    o.witnesses = vec![w.verifier()];
    let r = run_audit(&o).await;
    assert_eq!(kinds(&r), vec![FailureKind::WitnessQuorum], "{r}");
    // Once the witness cosigns, the quorum holds; a cosignature with one
    // flipped bit does not count.
    let ck = files.lock().unwrap()["/log/checkpoint"].clone();
    let mut note = SignedNote::parse(&ck).unwrap();
    let cosig = w.cosign_body(note.body(), 1_700_000_000).unwrap();
    note.add_signature(cosig.clone()).unwrap();
    files
        .lock()
        .unwrap()
        .insert("/log/checkpoint".into(), note.to_text().into_bytes());
    let r = run_audit(&o).await;
    assert!(r.passed(), "{r}");
    assert_eq!(r.cosigned_by, vec!["w1".to_owned()]);
    let mut raw = cosig.signature().to_vec();
    raw[20] ^= 1;
    let mut bad = SignedNote::parse(&ck).unwrap();
    bad.add_signature(NoteSignature::new(cosig.name().clone(), cosig.key_id(), raw).unwrap())
        .unwrap();
    files
        .lock()
        .unwrap()
        .insert("/log/checkpoint".into(), bad.to_text().into_bytes());
    let r = run_audit(&o).await;
    assert_eq!(kinds(&r), vec![FailureKind::WitnessQuorum], "{r}");
    o.witnesses.clear();

    // Old history rewritten while the cached copy of it is gone: the
    // re-fetched entries differ from those verified before. The server is
    // blamed, and its bytes do not enter the cache.
    let bundle0 = state.path().join("bundles").join("0");
    std::fs::remove_file(&bundle0).unwrap();
    let mut rewritten = entries.clone();
    let (early, _) = a.pledge(5);
    rewritten[7] = enc(&Entry::Pledge(early));
    let (later, _) = a.pledge(5);
    rewritten.push(enc(&Entry::Pledge(later)));
    *files.lock().unwrap() = publish(&signer, &rewritten, &statement(&rewritten));
    let r = run_audit(&o).await;
    assert_eq!(kinds(&r), vec![FailureKind::Inconsistent], "{r}");
    assert!(!bundle0.exists());

    // The honest log passes again (bundle 0 fetched, checked against the
    // recorded cache root), and the next run caches it again.
    *files.lock().unwrap() = grown;
    assert!(run_audit(&o).await.passed());
    let r = run_audit(&o).await;
    assert!(r.passed(), "{r}");
    assert!(bundle0.exists());

    // A cache altered on disk is a local problem (exit 2), not the server's.
    let mut bytes = std::fs::read(&bundle0).unwrap();
    bytes[300] ^= 1;
    std::fs::write(&bundle0, bytes).unwrap();
    let err = audit::audit(&o).await.unwrap_err();
    assert!(
        matches!(
            err,
            AuditError::State {
                source: audit::StateError::CacheAltered,
                ..
            }
        ),
        "{err}"
    );
}

/// CPU time of this process (user + system), from /proc (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// One-off throughput figure, not a test: run with
/// `cargo test --release -p pledge-tests --test audit -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement"]
async fn measure_audit_throughput() {
    let n: usize = std::env::var("AUDIT_ENTRIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4000);
    let signer = NoteSigner::generate(KeyName::new(ORIGIN).unwrap()).unwrap();
    let t = Instant::now();
    let (a, entries) = honest_entries(n);
    eprintln!("built {} entries in {:?}", entries.len(), t.elapsed());
    let st = vec![(
        a.id,
        TallyStatement::new(
            ORIGIN,
            entries.len() as u64,
            a.id,
            tally_after(&entries, &a.id),
        )
        .unwrap(),
    )];
    // Baseline: the bare token and pledge-key checks, one thread.
    let decoded: Vec<Entry> = entries.iter().map(|e| Entry::decode(e).unwrap()).collect();
    let key = a.sk.public_key().clone();
    let cpu = cpu_seconds();
    for e in &decoded {
        if let Entry::Pledge(p) = e {
            pledge_protocol::ledger::verify_pledge(p, &key).unwrap();
        }
    }
    let cpu = cpu_seconds() - cpu;
    eprintln!(
        "bare verify_pledge: {:.2} s CPU for {n} pledges: {:.0} per CPU-second",
        cpu,
        n as f64 / cpu
    );
    let files: Files = Arc::new(Mutex::new(publish(&signer, &entries, &st)));
    let base = serve_files(files).await;
    for threads in [1, 0] {
        let mut o = opts(&base, None);
        o.log_key = Some(signer.verifier());
        o.threads = threads;
        let cpu = cpu_seconds();
        let r = run_audit(&o).await;
        let cpu = cpu_seconds() - cpu;
        assert!(r.passed(), "{r}");
        eprintln!(
            "threads {threads}: {} entries in {} ms: {:.0} entries/s wall, {:.2} s CPU: {:.0} entries per CPU-second",
            r.counts.replayed,
            r.elapsed_ms,
            r.entries_per_second,
            cpu,
            r.counts.replayed as f64 / cpu
        );
    }
    // Incremental run over a cached log: no signature to verify again.
    let state = tempfile::tempdir().unwrap();
    let mut o = opts(&base, Some(state.path()));
    o.log_key = Some(signer.verifier());
    let _ = run_audit(&o).await;
    let r = run_audit(&o).await;
    assert!(r.passed(), "{r}");
    eprintln!(
        "second run with state: {} entries replayed in {} ms ({} bundles cached)",
        r.counts.replayed, r.elapsed_ms, r.counts.bundles_cached
    );
}

/// The whole stack: `pledged` pushes its checkpoints to a real witness
/// (`pledge witness serve`'s library), and the auditor requires its
/// cosignature (`--witness VKEY --quorum 1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_with_a_witness_quorum_against_a_witnessed_server() {
    let dir = tempfile::tempdir().unwrap();
    let witness = WitnessServer::of_log_in(dir.path(), "witness.test").await;
    let (log_key, wkey) = (witness.log.clone(), witness.key.clone());
    let srv = Server::start_in(dir.path(), |c| c.witnesses = vec![witness.config()]).await;
    let base = srv.base.clone();
    let list: Value = serde_json::from_slice(&srv.fetch("/v1/campaigns").await).unwrap();
    let demo = CampaignId::from_hex(list["campaigns"][0]["campaign_id"].as_str().unwrap()).unwrap();
    let pk = srv.key_of(&demo).await;
    for t in [1, 2] {
        srv.pledge(&demo, &pk, t).await;
    }

    let mut o = opts(&base, None);
    o.log_key = Some(log_key);
    o.witnesses = vec![wkey];
    o.quorum = Some(1);
    // Cosigning is asynchronous: wait until the latest checkpoint carries it.
    let deadline = Instant::now() + Duration::from_secs(15);
    let r = loop {
        let r = run_audit(&o).await;
        if r.passed() || Instant::now() > deadline {
            break r;
        }
        assert_eq!(kinds(&r), vec![FailureKind::WitnessQuorum], "{r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(r.passed(), "{r}");
    assert_eq!(r.cosigned_by, vec!["witness.test".to_owned()]);
    assert_eq!(r.counts.pledges, 2);
    let _ = srv.stop().await;
    let _ = witness.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_network_errors_are_audit_errors() {
    // (`pledge audit` exits with 2 on these: client-lib/tests/cli.rs.)
    // A quorum larger than the witnesses given.
    let mut o = opts("http://127.0.0.1:9", None);
    o.quorum = Some(1);
    let err = audit::audit(&o).await.unwrap_err();
    assert!(matches!(err, AuditError::QuorumTooLarge { .. }), "{err}");
    // Not a URL.
    let err = audit::audit(&opts("ftp://x", None)).await.unwrap_err();
    assert!(matches!(err, AuditError::BadServerUrl(_)), "{err}");
    // Nobody listening.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = audit::audit(&opts(&format!("http://{addr}"), None))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AuditError::Network {
                source: audit::NetworkError::Request(_),
                ..
            }
        ),
        "{err}"
    );
    // A state directory pinning another log's key than the one given.
    let signer = NoteSigner::generate(KeyName::new(ORIGIN).unwrap()).unwrap();
    let (c, entries) = honest_entries(2);
    let st = TallyStatement::new(ORIGIN, 3, c.id, tally_after(&entries, &c.id)).unwrap();
    let files: Files = Arc::new(Mutex::new(publish(&signer, &entries, &[(c.id, st)])));
    let base = serve_files(files).await;
    let state = tempfile::tempdir().unwrap();
    assert!(run_audit(&opts(&base, Some(state.path()))).await.passed());
    let other = NoteSigner::generate(KeyName::new(ORIGIN).unwrap()).unwrap();
    let mut o = opts(&base, Some(state.path()));
    o.log_key = Some(other.verifier());
    let err = audit::audit(&o).await.unwrap_err();
    assert!(matches!(err, AuditError::LogKeyConflict { .. }), "{err}");
}

// ---------------------------------------------------------------------------
// Blind spots found by an independent auditor (issue 15): each of these logs
// passed `pledge audit` before.
// ---------------------------------------------------------------------------

/// A forged log with a pinned key: its files and audit options.
async fn forged(
    signer: &NoteSigner,
    entries: &[Vec<u8>],
    statements: &[(CampaignId, TallyStatement)],
) -> (Files, AuditOptions) {
    let files: Files = Arc::new(Mutex::new(publish(signer, entries, statements)));
    let base = serve_files(files.clone()).await;
    let mut o = opts(&base, None);
    o.log_key = Some(signer.verifier());
    (files, o)
}

/// Blind spot 1: a genuine statement frozen at an old size (or replayed by
/// a cache) is `tally_stale` once the campaign's tally changed after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_older_than_the_last_change_is_stale() {
    let signer = NoteSigner::generate(KeyName::new(ORIGIN).unwrap()).unwrap();
    let (a, entries) = honest_entries(3); // opened at 0, pledges at 1, 2, 3
    // Genuine at size 2 (one pledge), but the tally changed at sizes 3 and 4.
    let old = TallyStatement::new(ORIGIN, 2, a.id, tally_after(&entries[..2], &a.id)).unwrap();
    let (files, o) = forged(&signer, &entries, &[(a.id, old)]).await;
    let r = run_audit(&o).await;
    assert_eq!(kinds(&r), vec![FailureKind::TallyStale], "{r}");
    assert_eq!(r.failures[0].campaign, Some(a.id.to_hex()));

    // A statement at the size of the last change is fresh.
    let fresh = TallyStatement::new(ORIGIN, 4, a.id, tally_after(&entries, &a.id)).unwrap();
    *files.lock().unwrap() = publish(&signer, &entries, &[(a.id, fresh)]);
    let r = run_audit(&o).await;
    assert!(r.passed(), "{r}");
    // A CampaignClosed does not change the tally: the statement before it
    // stays fresh after it.
    let mut closed = entries.clone();
    closed.push(enc(&Entry::CampaignClosed(CampaignClosed::new(
        a.id,
        3,
        &tally_after(&entries, &a.id),
    ))));
    let before_close = TallyStatement::new(ORIGIN, 4, a.id, tally_after(&entries, &a.id)).unwrap();
    *files.lock().unwrap() = publish(&signer, &closed, &[(a.id, before_close)]);
    let r = run_audit(&o).await;
    assert!(r.passed(), "{r}");
    // An amendment changes it (even back to the same histogram later).
    let (b, mut more) = honest_entries(0);
    let (p, k) = b.pledge(2);
    more.push(enc(&Entry::Pledge(p.clone())));
    let at2 = TallyStatement::new(ORIGIN, 2, b.id, tally_after(&more, &b.id)).unwrap();
    more.push(enc(&Entry::PledgeAmended(Amendment::sign(
        b.id,
        p.nullifier(),
        1,
        Terms::threshold(3).unwrap(),
        &k,
    ))));
    more.push(enc(&Entry::PledgeAmended(Amendment::sign(
        b.id,
        p.nullifier(),
        2,
        Terms::threshold(2).unwrap(),
        &k,
    ))));
    *files.lock().unwrap() = publish(&signer, &more, &[(b.id, at2)]);
    let r = run_audit(&o).await;
    assert_eq!(kinds(&r), vec![FailureKind::TallyStale], "{r}");
}

/// Blind spot 2: a campaign in the log but missing from `/v1/campaigns` is
/// reported, and its statement is checked anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_hidden_from_the_list_is_reported_and_its_tally_checked() {
    let signer = NoteSigner::generate(KeyName::new(ORIGIN).unwrap()).unwrap();
    let (a, open_a) = Campaign::new("Listed");
    let (b, open_b) = Campaign::new("Hidden");
    let (pa, _) = a.pledge(1);
    let (pb1, _) = b.pledge(1);
    let (pb2, _) = b.pledge(2);
    let entries = vec![
        enc(&open_a),
        enc(&Entry::Pledge(pa)),
        enc(&open_b), // 2
        enc(&Entry::Pledge(pb1)),
        enc(&Entry::Pledge(pb2)),
    ];
    let sa = TallyStatement::new(ORIGIN, 5, a.id, tally_after(&entries, &a.id)).unwrap();
    // B's statement lies (three pledges); only A is listed.
    let lie = TallyStatement::new(
        ORIGIN,
        5,
        b.id,
        TallySnapshot::from_buckets(vec![(1, 2), (2, 1)]).unwrap(),
    )
    .unwrap();
    let (files, o) = forged(&signer, &entries, &[(a.id, sa.clone())]).await;
    let lie_note = sign_note(&lie.to_note_body(), &[&signer]).unwrap();
    let b_tally = format!("/v1/campaigns/{}/tally", b.id.to_hex());
    files
        .lock()
        .unwrap()
        .insert(b_tally.clone(), lie_note.to_text().into_bytes());
    let r = run_audit(&o).await;
    let got: Vec<(FailureKind, Option<u64>, Option<String>)> = r
        .failures
        .iter()
        .map(|f| (f.kind, f.index, f.campaign.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (FailureKind::CampaignNotListed, Some(2), Some(b.id.to_hex())),
            (FailureKind::TallyMismatch, None, Some(b.id.to_hex())),
        ],
        "{r}"
    );
    assert_eq!(r.counts.tally_statements, 2);

    // Hidden and without a statement.
    files.lock().unwrap().remove(&b_tally);
    let r = run_audit(&o).await;
    assert_eq!(
        kinds(&r),
        vec![FailureKind::CampaignNotListed, FailureKind::TallyMissing],
        "{r}"
    );

    // Listed with an honest statement: passes.
    let sb = TallyStatement::new(ORIGIN, 5, b.id, tally_after(&entries, &b.id)).unwrap();
    *files.lock().unwrap() = publish(&signer, &entries, &[(a.id, sa), (b.id, sb)]);
    let r = run_audit(&o).await;
    assert!(r.passed(), "{r}");
}

/// Blind spot 3: the `issuer_key` that `/v1/campaigns` shows (and clients
/// blind their tokens to) must be the key the CampaignOpened entry logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_key_shown_other_than_the_logged_one_is_reported() {
    let signer = NoteSigner::generate(KeyName::new(ORIGIN).unwrap()).unwrap();
    let (a, entries) = honest_entries(2);
    let st = TallyStatement::new(ORIGIN, 3, a.id, tally_after(&entries, &a.id)).unwrap();
    let (files, o) = forged(&signer, &entries, &[(a.id, st)]).await;
    let list = |key: &IssuerPublicKey| {
        json!({"campaigns": [{"campaign_id": a.id.to_hex(),
                              "issuer_key": B64.encode(key.as_spki())}]})
        .to_string()
        .into_bytes()
    };
    files
        .lock()
        .unwrap()
        .insert("/v1/campaigns".into(), list(a.sk.public_key()));
    let r = run_audit(&o).await;
    assert!(r.passed(), "{r}");

    let tagging = IssuerSecretKey::generate().unwrap();
    files
        .lock()
        .unwrap()
        .insert("/v1/campaigns".into(), list(tagging.public_key()));
    let r = run_audit(&o).await;
    assert_eq!(kinds(&r), vec![FailureKind::IssuerKeyMismatch], "{r}");
    assert_eq!(r.failures[0].campaign, Some(a.id.to_hex()));
}

/// Blind spot 4: with the log key given (or pinned), a server that publishes
/// another key at `/v1/log/key` is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_log_key_other_than_the_trusted_one_is_reported() {
    let signer = NoteSigner::generate(KeyName::new(ORIGIN).unwrap()).unwrap();
    let (a, entries) = honest_entries(1);
    let st = TallyStatement::new(ORIGIN, 2, a.id, tally_after(&entries, &a.id)).unwrap();
    let (files, mut o) = forged(&signer, &entries, &[(a.id, st)]).await;
    // The served key ends in one newline (§12): that is the same key.
    let r = run_audit(&o).await;
    assert!(r.passed(), "{r}");

    let other = NoteSigner::generate(KeyName::new(ORIGIN).unwrap()).unwrap();
    files.lock().unwrap().insert(
        "/v1/log/key".into(),
        format!("{}\n", other.verifier().to_text()).into_bytes(),
    );
    let r = run_audit(&o).await;
    assert_eq!(kinds(&r), vec![FailureKind::LogKeyMismatch], "{r}");
    // The same when the key is pinned by the state directory.
    let state = tempfile::tempdir().unwrap();
    o.state_dir = Some(state.path().to_path_buf());
    let r = run_audit(&o).await;
    assert_eq!(kinds(&r), vec![FailureKind::LogKeyMismatch], "{r}");
    o.log_key = None;
    let r = run_audit(&o).await;
    assert_eq!(r.log_key_source, audit::KeySource::State);
    assert_eq!(kinds(&r), vec![FailureKind::LogKeyMismatch], "{r}");
    // Trusted on first use, the served key is the trusted one: nothing to
    // compare, and the report says so.
    let r = run_audit(&opts(&o.server, None)).await;
    assert_eq!(r.log_key_source, audit::KeySource::TrustOnFirstUse);
    assert_eq!(kinds(&r), vec![FailureKind::CheckpointSignature], "{r}");
}

/// A log that answers every hash-tile path (the first 1000 with junk) and
/// serves only the real entry bundles; counts the hash tiles asked for.
#[derive(Clone)]
struct Hostile {
    files: Files,
    tiles: Arc<std::sync::atomic::AtomicU64>,
}

async fn hostile_handler(State(h): State<Hostile>, uri: Uri) -> Response {
    let path = uri.path();
    let is_hash_tile = path.starts_with("/log/tile/") && !path.starts_with("/log/tile/entries/");
    if is_hash_tile {
        let n = h.tiles.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Some(b) = h.files.lock().unwrap().get(path) {
            return b.clone().into_response();
        }
        if n < 1000 {
            return vec![0u8; 256 * 32].into_response();
        }
    }
    match h.files.lock().unwrap().get(path) {
        Some(b) => b.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Blind spot 5: a log signing size 2^64 − 1 gets a verdict after the
/// bundles up to the first missing one, without asking for a single tile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_size_the_log_cannot_serve_stops_at_the_first_missing_bundle() {
    let signer = NoteSigner::generate(KeyName::new(ORIGIN).unwrap()).unwrap();
    let (a, entries) = honest_entries(299); // bundle 0 full, bundle 1 partial
    let st = TallyStatement::new(ORIGIN, 300, a.id, tally_after(&entries, &a.id)).unwrap();
    let mut files = publish(&signer, &entries, &[(a.id, st)]);
    let huge = Checkpoint::new(KeyName::new(ORIGIN).unwrap(), u64::MAX, leaf_hash(b"x"))
        .sign(&signer)
        .unwrap();
    files.insert("/log/checkpoint".into(), huge.to_text().into_bytes());
    let tiles = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let base = serve(Router::new().fallback(hostile_handler).with_state(Hostile {
        files: Arc::new(Mutex::new(files)),
        tiles: tiles.clone(),
    }))
    .await;
    let mut o = opts(&base, None);
    o.log_key = Some(signer.verifier());
    let r = run_audit(&o).await;
    let got = kinds_at(&r);
    // The full bundle 1 is not served: the replay stops at entry 256.
    assert_eq!(got, vec![(FailureKind::Unavailable, Some(256))], "{r}");
    assert_eq!(r.counts.replayed, 256);
    assert_eq!(r.counts.tiles_checked, 0);
    assert_eq!(tiles.load(std::sync::atomic::Ordering::SeqCst), 0, "{r}");
    assert!(!r.passed());
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("rebuilt only up to entry 256")),
        "{r}"
    );
}

/// Blind spot 6: every failure of an entry is reported: a copy of a pledge
/// with one RSA bit flipped is both `bad_token` and `duplicate_nullifier`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_breaking_two_rules_gets_both_reported() {
    let signer = NoteSigner::generate(KeyName::new(ORIGIN).unwrap()).unwrap();
    let (a, open) = Campaign::new("A");
    let (p, _) = a.pledge(1);
    let mut copy = p.clone();
    copy.token.signature[7] ^= 0x01;
    let mut both = a.pledge(2).0;
    both.token.signature[9] ^= 0x01;
    both.signature[3] ^= 0x01;
    let (late, _) = a.pledge(3);
    let mut late_bad = late.clone();
    late_bad.token.signature[11] ^= 0x01;
    let entries = vec![
        enc(&open),
        enc(&Entry::Pledge(p)),
        enc(&Entry::Pledge(copy)), // 2: bad token, and a spent nullifier
        enc(&Entry::Pledge(both)), // 3: bad token, bad pledge signature
        enc(&Entry::Pledge(late_bad.clone())), // 4: bad token (not spent: not applied)
        enc(&Entry::Pledge(late)), // 5: valid: a refused pledge spends nothing
    ];
    let st = TallyStatement::new(ORIGIN, 6, a.id, tally_after(&entries, &a.id)).unwrap();
    let (_files, o) = forged(&signer, &entries, &[(a.id, st)]).await;
    let r = run_audit(&o).await;
    let got = kinds_at(&r);
    assert_eq!(
        got,
        vec![
            (FailureKind::BadToken, Some(2)),
            (FailureKind::DuplicateNullifier, Some(2)),
            (FailureKind::BadToken, Some(3)),
            (FailureKind::BadPledgeSignature, Some(3)),
            (FailureKind::BadToken, Some(4)),
        ],
        "{r}"
    );
    assert_eq!(r.campaigns[0].live, 2);
}

/// The protocol's rule-decision vectors (`protocol/tests/vectors/
/// rule_decisions.json`), each served as a log: `pledge audit` reports
/// exactly the failures the vector lists for each entry (R-AUDIT-12), in log
/// order, and the tally the vector gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auditor_agrees_with_the_rule_decision_vectors() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../protocol/tests/vectors/rule_decisions.json"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let signer = NoteSigner::generate(KeyName::new(ORIGIN).unwrap()).unwrap();
    let files: Files = Arc::new(Mutex::new(HashMap::new()));
    let base = serve_files(files.clone()).await;
    let mut o = opts(&base, None);
    o.log_key = Some(signer.verifier());
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let entries: Vec<Vec<u8>> = c["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| hex::decode(e.as_str().unwrap()).unwrap())
            .collect();
        let size = entries.len() as u64;
        let statements: Vec<(CampaignId, TallyStatement)> = c["tallies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let id = CampaignId::from_hex(t["campaign"].as_str().unwrap()).unwrap();
                let buckets: Vec<(u32, u64)> =
                    serde_json::from_value(t["buckets"].clone()).unwrap();
                let snap = TallySnapshot::from_buckets(buckets).unwrap();
                // At the last change size: the freshest a statement must be.
                let at = t["last_change"].as_u64().unwrap();
                (id, TallyStatement::new(ORIGIN, at, id, snap).unwrap())
            })
            .collect();
        *files.lock().unwrap() = publish(&signer, &entries, &statements);
        let r = run_audit(&o).await;
        let got: Vec<(String, Option<u64>)> = r
            .failures
            .iter()
            .map(|f| (f.kind.name().to_owned(), f.index))
            .collect();
        let want: Vec<(String, Option<u64>)> = c["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .flat_map(|(i, d)| {
                d["failures"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(move |k| (k.as_str().unwrap().to_owned(), Some(i as u64)))
            })
            .collect();
        assert_eq!(got, want, "{name}: {r}");
        assert_eq!(r.counts.entries, size, "{name}");
        assert_eq!(r.counts.tally_statements, statements.len() as u64, "{name}");
    }
}

/// A conditional funding campaign (issue 17): the auditor checks its funding
/// statements (R-FUND-7) against the joint tally it recomputes from the log,
/// before and after the close, and reports a plain statement for it as a
/// mismatch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_funding_campaign_is_audited_on_its_joint_tally() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path()).await;
    let (s, v) = srv
        .post_admin(
            "/v1/campaigns",
            &json!({"title": "Supported strike", "action": "strike", "deadline": unix_now() + 3,
                    "goal": 2, "threshold_min": 1, "threshold_max": 10,
                    "attester": {"kind": "open"},
                    "funding": {"currency": "EUR", "minor_digits": 2,
                                "support_levels": [3000, 6000]}}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let c = CampaignId::from_hex(v["campaign_id"].as_str().unwrap()).unwrap();
    let pk = srv.key_of(&c).await;
    let mut keys = Vec::new();
    for terms in [
        Terms::threshold(1).unwrap(),
        Terms::supported(2, 3000).unwrap(),
        Terms::supported(2, 6000).unwrap(),
        Terms::fund(2, 7000).unwrap(),
    ] {
        let (token, key) = srv.token(&c, &pk).await;
        let p = Pledge::sign(c, token, terms, &key).unwrap();
        let n = p.nullifier();
        srv.submit_ok("/v1/pledges", &Entry::Pledge(p)).await;
        keys.push((key, n));
    }
    // The plain actor becomes a funder: F(2) = 7000 + 2000.
    let (k, n) = &keys[0];
    let a = Amendment::sign(c, *n, 1, Terms::fund(1, 2000).unwrap(), k);
    srv.submit_ok("/v1/pledges/amend", &Entry::PledgeAmended(a))
        .await;

    let r = run_audit(&opts(&srv.base, None)).await;
    assert!(r.passed(), "{r}");
    assert_eq!(r.counts.tally_statements, 2);
    let f = r.campaigns.iter().find(|x| x.id == c.to_hex()).unwrap();
    // E(2) = {3000, 6000}: cost(2) = 9000 ≤ F(2) = 9000, so A = 2.
    assert_eq!((f.pledges, f.live, f.active), (4, 4, 2));

    // Closed at the deadline on its joint tally; the audit still passes.
    let mut closed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if srv.campaign(&c).await["state"] == "closed" {
            closed = true;
            break;
        }
    }
    assert!(closed, "the funding campaign did not close");
    let r = run_audit(&opts(&srv.base, None)).await;
    assert!(r.passed(), "{r}");
    let f = r.campaigns.iter().find(|x| x.id == c.to_hex()).unwrap();
    assert!(f.closed);
}

/// Issue 19 (SPEC R-AUDIT-15…R-AUDIT-17): a log with campaign updates. Valid
/// updates are applied and change no tally (the statement of the pledge
/// alone passes); a replayed update number and an earlier deadline are
/// `bad_update` at their index; a campaign list showing another deadline or
/// texts than the log's updates is `campaign_view_mismatch`, and the same
/// list with the log's deadline and texts passes that check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_updates_are_audited_and_the_view_must_match_them() {
    use pledge_protocol::update::{CampaignText, CampaignUpdated};
    let signer = NoteSigner::generate(KeyName::new(ORIGIN).unwrap()).unwrap();
    let (a, open_a) = Campaign::new("A");
    let (p1, _) = a.pledge(1);
    let original = 4_000_000_000u64;
    let later = original + 7 * 86_400;
    let update = |n: u32, deadline: Option<u64>, texts: Vec<CampaignText>| {
        enc(&Entry::CampaignUpdated(
            CampaignUpdated::new(a.id, n, deadline, texts).unwrap(),
        ))
    };
    let fr = CampaignText::new("fr".into(), "Grève".into(), "Nous arrêtons.".into()).unwrap();
    let entries = vec![
        enc(&open_a),                           // 0
        enc(&Entry::Pledge(p1)),                // 1
        update(1, Some(later), vec![]),         // 2 ok
        update(1, Some(later + 1), vec![]),     // 3 number replayed
        update(2, Some(original + 60), vec![]), // 4 earlier than the effective deadline
        update(2, None, vec![fr]),              // 5 ok
    ];
    let tally = tally_after(&entries, &a.id);
    assert_eq!(tally.live(), 1);
    let statements = vec![(a.id, TallyStatement::new(ORIGIN, 6, a.id, tally).unwrap())];
    let mut published = publish(&signer, &entries, &statements);
    let list = |deadline: u64, title: &str| {
        json!({"campaigns": [{
            "campaign_id": a.id.to_hex(),
            "deadline": deadline,
            "original_deadline": original,
            "texts": [{"lang": "fr", "title": title, "text": "Nous arrêtons."}],
        }]})
        .to_string()
        .into_bytes()
    };
    published.insert("/v1/campaigns".into(), list(later, "Grève"));
    let files: Files = Arc::new(Mutex::new(published));
    let base = serve_files(files.clone()).await;
    let mut o = opts(&base, None);
    o.log_key = Some(signer.verifier());
    let r = run_audit(&o).await;
    assert_eq!(
        kinds_at(&r),
        vec![
            (FailureKind::BadUpdate, Some(3)),
            (FailureKind::BadUpdate, Some(4)),
        ],
        "{r}"
    );
    assert_eq!(r.counts.campaigns_updated, 4);
    // The server shows the original deadline, or another translation.
    for (deadline, title) in [(original, "Grève"), (later, "Débrayage")] {
        files
            .lock()
            .unwrap()
            .insert("/v1/campaigns".into(), list(deadline, title));
        let r = run_audit(&o).await;
        assert_eq!(
            kinds(&r),
            vec![
                FailureKind::BadUpdate,
                FailureKind::BadUpdate,
                FailureKind::CampaignViewMismatch
            ],
            "{r}"
        );
    }
}
