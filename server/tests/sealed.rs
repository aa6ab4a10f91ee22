//! Sealed campaigns served by `pledged` over a real socket (SPEC §17.3,
//! R-SEAL-80 … R-SEAL-88, R-API-48 … R-API-51): opening one with its
//! trustees, the trustees' key generation through
//! `POST /v1/campaigns/<id>/trustee-messages`, sealed pledges and
//! amendments under the logged joint key, the sealed tally statement in
//! place of the live one, and all of it again after a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pledge_protocol::dkg::{Dealing, DkgContext, DkgOutcome, DkgTranscript, Ready, TrusteeKeyPair};
use pledge_protocol::entry::{Entry, TrusteeMessage, TrusteeMessageKind};
use pledge_protocol::hash::CampaignId;
use pledge_protocol::note::NoteVerifier;
use pledge_protocol::pledge::{Pledge, PledgeSigningKey, Terms, Withdrawal};
use pledge_protocol::receipt::Receipt;
use pledge_protocol::sealed::{JointPublicKey, SealedTerms};
use pledge_protocol::sealed_pledge::{SealedAmendment, SealedPledge};
use pledge_protocol::sealed_tally::SealedTallyStatement;
use pledge_protocol::token::{IssuerPublicKey, Token, blind, finalize};
use pledge_server::AppState;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use reqwest::StatusCode;
use serde_json::{Value, json};

const BUCKETS: [u32; 4] = [1, 10, 100, 1000];

/// A change to a campaign body.
type Change = Box<dyn Fn(&mut Value)>;

/// `pledged` serving on a loopback socket.
struct Served {
    base: String,
    state: AppState,
    http: reqwest::Client,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn serve(dir: &Path) -> Served {
    let state = AppState::start(&common::config(dir, false)).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(pledge_server::run(listener, state.clone(), async move {
        let _ = rx.await;
    }));
    Served {
        base,
        state,
        http: reqwest::Client::new(),
        stop,
        task,
    }
}

impl Served {
    /// Stops serving and the service; the folder can be opened again.
    async fn shut(self) {
        let Self {
            state,
            http,
            stop,
            task,
            ..
        } = self;
        drop(http);
        let _ = stop.send(());
        task.await.unwrap().unwrap();
        state.stop().await;
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    async fn json(&self, path: &str) -> Value {
        let (s, b) = self.get(path).await;
        assert_eq!(s, StatusCode::OK, "{path}: {b}");
        serde_json::from_str(&b).unwrap()
    }

    async fn post(&self, path: &str, body: &Value, admin: bool) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        if admin {
            req = req.header(
                "authorization",
                format!("Bearer {}", self.state.admin_token()),
            );
        }
        let r = req.send().await.unwrap();
        let s = r.status();
        let text = r.text().await.unwrap();
        (s, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn submit(&self, path: &str, e: &Entry) -> (StatusCode, Value) {
        self.post(
            path,
            &json!({"entry": B64.encode(e.encode().unwrap())}),
            false,
        )
        .await
    }

    async fn verifier(&self) -> NoteVerifier {
        let (_, b) = self.get("/v1/log/key").await;
        NoteVerifier::from_text(b.trim_end()).unwrap()
    }

    async fn size(&self) -> u64 {
        let (_, ck) = self.get("/log/checkpoint").await;
        ck.lines().nth(1).unwrap().parse().unwrap()
    }

    async fn token(&self, c: &CampaignId, pk: &IssuerPublicKey) -> (Token, PledgeSigningKey) {
        let key = PledgeSigningKey::generate().unwrap();
        let (blinded, st) = blind(pk, c, &key.public_key()).unwrap();
        let (s, v) = self
            .post(
                "/v1/tokens",
                &json!({
                    "attestation": {"kind": "open"},
                    "requests": [{
                        "campaign_id": c.to_hex(),
                        "blinded_msg": B64.encode(blinded.as_bytes()),
                    }]
                }),
                false,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let sig = B64
            .decode(v["blind_signatures"][0]["blind_sig"].as_str().unwrap())
            .unwrap();
        (finalize(pk, &st, &sig, c, &key.public_key()).unwrap(), key)
    }
}

fn sealed_body(trustees: &[TrusteeKeyPair], deadline: u64) -> Value {
    json!({
        "title": "Sealed walkout", "action": "walk out",
        "deadline": deadline,
        "goal": 2, "threshold_min": 1, "threshold_max": 1000,
        "attester": {"kind": "open"},
        "sealed": {
            "buckets": BUCKETS,
            "k": 2,
            "trustees": trustees
                .iter()
                .map(|t| hex::encode(t.public_key().to_bytes()))
                .collect::<Vec<_>>(),
            "reveals": [deadline - 60],
        }
    })
}

fn message(c: CampaignId, kind: TrusteeMessageKind, body: Vec<u8>) -> Entry {
    Entry::TrusteeMessage(TrusteeMessage {
        campaign: c,
        kind,
        body,
    })
}

/// Nothing in `v` (a campaign object, at any depth) is named `live` or
/// `active`.
fn no_live_numbers(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .all(|(k, v)| k != "live" && k != "active" && no_live_numbers(v)),
        Value::Array(a) => a.iter().all(no_live_numbers),
        _ => true,
    }
}

#[tokio::test]
async fn bad_sealed_blocks_are_refused_with_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let srv = serve(dir.path()).await;
    let mut rng = StdRng::seed_from_u64(80);
    let trustees: Vec<TrusteeKeyPair> =
        (0..3).map(|_| TrusteeKeyPair::generate(&mut rng)).collect();
    let deadline = pledge_server::ledger::unix_now() + 3600;
    let good = sealed_body(&trustees, deadline);
    let cases: Vec<(&str, Change)> = vec![
        ("k above n", Box::new(|b| b["sealed"]["k"] = json!(4))),
        ("k zero", Box::new(|b| b["sealed"]["k"] = json!(0))),
        (
            "buckets not ascending",
            Box::new(|b| b["sealed"]["buckets"] = json!([10, 1])),
        ),
        (
            "bucket above threshold_max",
            Box::new(|b| b["sealed"]["buckets"] = json!([1, 5000])),
        ),
        (
            "trustee not hex",
            Box::new(|b| b["sealed"]["trustees"][0] = json!("zz")),
        ),
        (
            "trustee repeated",
            Box::new(|b| {
                let t = b["sealed"]["trustees"][0].clone();
                b["sealed"]["trustees"][1] = t;
            }),
        ),
        (
            "reveal after the deadline",
            Box::new(move |b| b["sealed"]["reveals"] = json!([deadline + 1])),
        ),
        (
            "both funding and sealed",
            Box::new(|b| {
                b["funding"] = json!({"currency": "EUR", "minor_digits": 2});
            }),
        ),
    ];
    for (what, change) in cases {
        let mut b = good.clone();
        change(&mut b);
        let (s, v) = srv.post("/v1/campaigns", &b, true).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("bad_campaign")),
            "{what}: {v}"
        );
    }
    // An unknown field of the block is a bad request; nothing was logged.
    let mut b = good.clone();
    b["sealed"]["n"] = json!(3);
    assert_eq!(
        srv.post("/v1/campaigns", &b, true).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(srv.size().await, 0);
    let (s, v) = srv.post("/v1/campaigns", &good, true).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(srv.size().await, 1);
    srv.shut().await;
}

#[tokio::test]
async fn a_sealed_campaign_runs_its_key_generation_and_takes_sealed_pledges() {
    let dir = tempfile::tempdir().unwrap();
    let srv = serve(dir.path()).await;
    let mut rng = StdRng::seed_from_u64(81);
    let trustees: Vec<TrusteeKeyPair> =
        (0..3).map(|_| TrusteeKeyPair::generate(&mut rng)).collect();
    let deadline = pledge_server::ledger::unix_now() + 3600;

    // Opening: the block and no key yet.
    let (s, v) = srv
        .post("/v1/campaigns", &sealed_body(&trustees, deadline), true)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["campaign_id"].as_str().unwrap().to_owned();
    let c = CampaignId::from_hex(&id).unwrap();
    let camp = srv.json(&format!("/v1/campaigns/{id}")).await;
    assert_eq!(camp["reveal"], "sealed");
    assert_eq!(camp["sealed"]["buckets"], json!(BUCKETS));
    assert_eq!(camp["sealed"]["k"], 2);
    assert_eq!(
        camp["sealed"]["trustees"][2],
        hex::encode(trustees[2].public_key().to_bytes())
    );
    assert_eq!(camp["sealed"]["reveals"], json!([deadline - 60]));
    assert!(camp["sealed"]["joint_key"].is_null(), "{camp}");
    assert_eq!(
        camp["tally"],
        json!({"checkpoint_size": 1, "entries": 0}),
        "{camp}"
    );
    let pk = IssuerPublicKey::from_spki(&B64.decode(camp["issuer_key"].as_str().unwrap()).unwrap())
        .unwrap();

    // A sealed pledge before the key: refused, nothing logged.
    let (token, key) = srv.token(&c, &pk).await;
    let other = JointPublicKey::from_bytes(trustees[0].public_key().to_bytes()).unwrap();
    let early = SealedTerms::seal(
        &SealedPledge::context_of(&c, &token),
        &other,
        BUCKETS.len(),
        Some(1),
        &mut rng,
    )
    .unwrap();
    let early = Entry::SealedPledge(Box::new(
        SealedPledge::sign(c, token.clone(), early, &key).unwrap(),
    ));
    let (s, v) = srv.submit("/v1/pledges", &early).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"], "rule_violation");
    assert!(
        v["detail"].as_str().unwrap().contains("joint key"),
        "SealedKeyNotReady: {v}"
    );
    assert_eq!(srv.size().await, 1);

    // The key generation: three dealings, then three ready messages.
    let ctx = DkgContext {
        campaign: *c.as_bytes(),
        k: 2,
        trustees: trustees.iter().map(TrusteeKeyPair::public_key).collect(),
    };
    let dealings: Vec<Dealing> = trustees
        .iter()
        .zip(1u8..)
        .map(|(kp, i)| Dealing::deal(&ctx, kp, i, &mut rng).unwrap())
        .collect();
    let path = format!("/v1/campaigns/{id}/trustee-messages");
    let log = srv.verifier().await;
    for d in &dealings {
        let e = message(c, TrusteeMessageKind::Dealing, d.as_bytes().to_vec());
        let (s, v) = srv.submit(&path, &e).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let receipt = Receipt::parse(v["receipt"].as_str().unwrap().as_bytes()).unwrap();
        receipt.verify_entry(&e.encode().unwrap(), &log).unwrap();
    }
    // A bad trustee message (a second dealing of dealer 1, a corrupted
    // one): 409, nothing logged.
    let size = srv.size().await;
    let again = Dealing::deal(&ctx, &trustees[0], 1, &mut rng).unwrap();
    let mut corrupted = dealings[1].as_bytes().to_vec();
    corrupted[40] ^= 1;
    for body in [again.as_bytes().to_vec(), corrupted] {
        let (s, v) = srv
            .submit(&path, &message(c, TrusteeMessageKind::Dealing, body))
            .await;
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::CONFLICT, Some("rule_violation")),
            "{v}"
        );
        assert!(
            v["detail"]
                .as_str()
                .unwrap()
                .starts_with("trustee message refused"),
            "{v}"
        );
    }
    // Another kind of entry, or a message of another campaign, on this path.
    let (s, _) = srv.submit(&path, &early).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let elsewhere = message(
        CampaignId::from_hex(&"00".repeat(32)).unwrap(),
        TrusteeMessageKind::Dealing,
        dealings[0].as_bytes().to_vec(),
    );
    assert_eq!(
        srv.submit(&path, &elsewhere).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(srv.size().await, size, "nothing logged");

    let mut transcript = DkgTranscript::new(&ctx).unwrap();
    for d in &dealings {
        transcript.add_dealing(d.clone()).unwrap();
    }
    let digest = transcript.digest();
    for (kp, j) in trustees.iter().zip(1u8..) {
        let camp = srv.json(&format!("/v1/campaigns/{id}")).await;
        assert!(
            camp["sealed"]["joint_key"].is_null(),
            "no key before every ready"
        );
        let r = Ready::sign(&ctx, kp, j, digest).unwrap();
        let (s, v) = srv
            .submit(&path, &message(c, TrusteeMessageKind::Ready, r.encode()))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let outcome = DkgOutcome::compute(&ctx, &dealings, &[]).unwrap();
    let joint = outcome.joint_key().clone();
    let camp = srv.json(&format!("/v1/campaigns/{id}")).await;
    assert_eq!(
        camp["sealed"]["joint_key"],
        hex::encode(joint.to_bytes()),
        "{camp}"
    );

    // A sealed pledge under the key: 200 and a receipt that verifies.
    let terms = SealedTerms::seal(
        &SealedPledge::context_of(&c, &token),
        &joint,
        BUCKETS.len(),
        Some(2),
        &mut rng,
    )
    .unwrap();
    let pledge = SealedPledge::sign(c, token.clone(), terms, &key).unwrap();
    let n = pledge.nullifier();
    let e = Entry::SealedPledge(Box::new(pledge));
    let (s, v) = srv.submit("/v1/pledges", &e).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let receipt = Receipt::parse(v["receipt"].as_str().unwrap().as_bytes()).unwrap();
    let signed = receipt.verify_entry(&e.encode().unwrap(), &log).unwrap();
    assert_eq!(receipt.index(), v["index"].as_u64().unwrap());
    assert_eq!(
        signed.checkpoint().size(),
        v["checkpoint_size"].as_u64().unwrap()
    );
    // Again: the nullifier is spent.
    let (s, v) = srv.submit("/v1/pledges", &e).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("double_spend"))
    );

    // A sealed amendment (seq 1, to the null vector): 200.
    let amended = SealedTerms::seal(
        &SealedAmendment::context_of(&c, &n, 1, &key.public_key()),
        &joint,
        BUCKETS.len(),
        None,
        &mut rng,
    )
    .unwrap();
    let a = Entry::SealedAmended(Box::new(SealedAmendment::sign(c, n, 1, amended, &key)));
    let (s, v) = srv.submit("/v1/pledges/amend", &a).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Terms sealed for another sequence number do not verify.
    let wrong = SealedTerms::seal(
        &SealedAmendment::context_of(&c, &n, 7, &key.public_key()),
        &joint,
        BUCKETS.len(),
        Some(0),
        &mut rng,
    )
    .unwrap();
    let (s, v) = srv
        .submit(
            "/v1/pledges/amend",
            &Entry::SealedAmended(Box::new(SealedAmendment::sign(c, n, 2, wrong, &key))),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("rule_violation")),
        "{v}"
    );

    // A plain pledge and a withdrawal in the sealed campaign: 409.
    let (token2, key2) = srv.token(&c, &pk).await;
    let plain =
        Entry::Pledge(Pledge::sign(c, token2, Terms::threshold(10).unwrap(), &key2).unwrap());
    let (s, v) = srv.submit("/v1/pledges", &plain).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("rule_violation")),
        "{v}"
    );
    let w = Entry::PledgeWithdrawn(Withdrawal::sign(c, n, 2, &key));
    let (s, v) = srv.submit("/v1/pledges/withdraw", &w).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("rule_violation")),
        "{v}"
    );

    // The sealed tally statement: signed by the log, two entries, no
    // live or active count anywhere.
    let size = srv.size().await;
    let (s, note) = srv.get(&format!("/v1/campaigns/{id}/tally")).await;
    assert_eq!(s, StatusCode::OK);
    let st = SealedTallyStatement::open(note.as_bytes(), &log).unwrap();
    assert_eq!((st.entries(), st.checkpoint_size()), (2, size));
    assert_eq!(st.campaign(), &c);
    assert!(
        note.contains("\nentries 2\n") && !note.contains("live"),
        "{note}"
    );
    let camp = srv.json(&format!("/v1/campaigns/{id}")).await;
    assert_eq!(
        camp["tally"],
        json!({"checkpoint_size": size, "entries": 2})
    );
    assert!(no_live_numbers(&camp), "{camp}");
    let list = srv.json("/v1/campaigns").await;
    assert!(no_live_numbers(&list), "{list}");
    let (_, feed) = srv.get(&format!("/v1/campaigns/{id}/feed.atom")).await;
    assert!(
        !feed.contains("activated:") && !feed.contains("Live pledges"),
        "{feed}"
    );

    // (Closing, snapshots and reveals: tests/tests/sealed.rs, with the
    // trustees' own tool.)

    // A restart on the same folder: the same key, count and statement.
    let before = (camp.clone(), note.clone());
    srv.shut().await;
    let srv = serve(dir.path()).await;
    let camp = srv.json(&format!("/v1/campaigns/{id}")).await;
    assert_eq!(camp["sealed"], before.0["sealed"]);
    assert_eq!(camp["tally"], before.0["tally"]);
    let (_, note) = srv.get(&format!("/v1/campaigns/{id}/tally")).await;
    assert_eq!(note, before.1);
    let st = SealedTallyStatement::open(note.as_bytes(), &srv.verifier().await).unwrap();
    assert_eq!(st.entries(), 2);
    // The pledge key is read back from the store: amendment 2 verifies.
    let next = SealedTerms::seal(
        &SealedAmendment::context_of(&c, &n, 2, &key.public_key()),
        &joint,
        BUCKETS.len(),
        Some(3),
        &mut rng,
    )
    .unwrap();
    let a2 = Entry::SealedAmended(Box::new(SealedAmendment::sign(c, n, 2, next, &key)));
    let (s, v) = srv.submit("/v1/pledges/amend", &a2).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let camp = srv.json(&format!("/v1/campaigns/{id}")).await;
    assert_eq!(camp["tally"]["entries"], 3);
    srv.shut().await;
}

#[tokio::test]
async fn sealed_entries_are_refused_in_a_live_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::start(&common::config(dir.path(), true))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(pledge_server::run(listener, state.clone(), async move {
        let _ = rx.await;
    }));
    let srv = Served {
        base,
        state,
        http: reqwest::Client::new(),
        stop,
        task,
    };
    let c = srv.state.demo_campaign().unwrap();
    let camp = srv.json(&format!("/v1/campaigns/{}", c.to_hex())).await;
    assert!(camp.get("sealed").is_none(), "{camp}");
    assert_eq!(camp["tally"]["live"], 0, "a live campaign keeps its counts");
    let pk = IssuerPublicKey::from_spki(&B64.decode(camp["issuer_key"].as_str().unwrap()).unwrap())
        .unwrap();
    let (token, key) = srv.token(&c, &pk).await;
    let mut rng = StdRng::seed_from_u64(82);
    let kp = TrusteeKeyPair::generate(&mut rng);
    let joint = JointPublicKey::from_bytes(kp.public_key().to_bytes()).unwrap();
    let terms = SealedTerms::seal(
        &SealedPledge::context_of(&c, &token),
        &joint,
        4,
        Some(0),
        &mut rng,
    )
    .unwrap();
    let e = Entry::SealedPledge(Box::new(SealedPledge::sign(c, token, terms, &key).unwrap()));
    let (s, v) = srv.submit("/v1/pledges", &e).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("rule_violation")),
        "{v}"
    );
    assert!(v["detail"].as_str().unwrap().contains("terms"), "{v}");
    // A trustee message for a live campaign is refused by the rules.
    let (s, v) = srv
        .submit(
            &format!("/v1/campaigns/{}/trustee-messages", c.to_hex()),
            &message(c, TrusteeMessageKind::Ready, vec![0; 97]),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("rule_violation")),
        "{v}"
    );
    srv.shut().await;
}
