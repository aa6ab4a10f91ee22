//! A sealed campaign's whole life over real HTTP (issue 16; SPEC §17.3):
//! an organiser opens it with three trustees (k = 2) and an early reveal;
//! the trustees, each a `pledge_client::trustee` acting only on the log it
//! audits itself, generate the joint key through the log; pledgers pledge
//! sealed terms (one-hot, null, an amendment); the server takes the early
//! snapshot, the trustees share it, the server logs what it decrypts to;
//! the organiser closes; the same for the final snapshot; an independent
//! audit passes and recomputes every reveal. Nothing shows live numbers
//! before a reveal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use pledge_client::audit::{AuditOptions, audit_with_ledger};
use pledge_client::client::Client;
use pledge_client::trustee::{self, Action};
use pledge_protocol::hash::CampaignId;
use pledge_protocol::sealed::JointPublicKey;
use pledge_tests::sealed::{amendment_entry, pledge, trustees_step};
use pledge_tests::server::Server;
use pledge_tests::unix_now;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use serde_json::{Value, json};

/// Polls `GET /v1/campaigns/<id>` until `done` holds (30 s at most).
async fn wait_for(
    client: &reqwest::Client,
    base: &str,
    id: &CampaignId,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = client
            .get(format!("{base}/v1/campaigns/{}", id.to_hex()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "waited in vain; campaign: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_campaign_from_key_generation_to_its_reveals() {
    let srv = Server::start(|c| {
        c.demo = false;
        c.close_check_interval = Duration::from_millis(200);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(16);
    // Each trustee makes its key file and gives the organisers its public key.
    let mut publics = Vec::new();
    let mut keys = Vec::new();
    for i in 0..3 {
        let path = dir.path().join(format!("trustee{i}.key"));
        publics.push(hex::encode(
            trustee::generate_key_file(&path, &mut rng)
                .unwrap()
                .to_bytes(),
        ));
        keys.push(trustee::load_key_file(&path).unwrap());
    }
    // Far enough for key generation and the pledges below to be logged
    // before it, even on a loaded machine (they take about a second).
    let early = unix_now() + 15;
    let body = json!({
        "title": "Sealed strike", "action": "strike", "deadline": unix_now() + 3600, "goal": 2,
        "threshold_min": 1, "threshold_max": 100, "attester": {"kind": "open"},
        "sealed": {"buckets": [1, 10, 100], "k": 2, "trustees": publics, "reveals": [early]}
    });
    let r = srv
        .http
        .post(format!("{}/v1/campaigns", srv.base))
        .bearer_auth(&srv.admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let id = CampaignId::from_hex(created["campaign_id"].as_str().unwrap()).unwrap();
    let client = Client::new(&srv.base).unwrap();
    let opts = AuditOptions::new(srv.base.clone());

    // Key generation: every trustee deals, then every trustee is ready.
    assert_eq!(
        trustees_step(&opts, &client, &id, &keys).await,
        vec![Action::Dealt; 3]
    );
    assert_eq!(
        trustees_step(&opts, &client, &id, &keys).await,
        vec![Action::Ready; 3]
    );
    assert!(
        trustees_step(&opts, &client, &id, &keys).await.is_empty(),
        "nothing more before a snapshot"
    );
    let info = wait_for(&srv.http, &srv.base, &id, |v| {
        v["sealed"]["joint_key"].is_string()
    })
    .await;
    let joint_hex = info["sealed"]["joint_key"].as_str().unwrap();
    // The key the server shows is the one the log gives (the trustees'
    // own replay): checked against the audited state below too.
    let joint =
        JointPublicKey::from_bytes(hex::decode(joint_hex).unwrap().try_into().unwrap()).unwrap();
    let issuer = pledge_protocol::token::IssuerPublicKey::from_spki(
        &base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            info["issuer_key"].as_str().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();

    // Pledges: bucket 0, bucket 1 amended to bucket 2, a null pledge.
    pledge(&client, &id, &issuer, &joint, 3, Some(0), &mut rng).await;
    let moving = pledge(&client, &id, &issuer, &joint, 3, Some(1), &mut rng).await;
    pledge(&client, &id, &issuer, &joint, 3, None, &mut rng).await;
    client
        .submit(&amendment_entry(
            &id,
            &moving,
            1,
            &joint,
            3,
            Some(2),
            &mut rng,
        ))
        .await
        .unwrap();
    // No live numbers before a reveal: only the count of sealed entries.
    let before = wait_for(&srv.http, &srv.base, &id, |v| v["tally"]["entries"] == 4).await;
    assert!(
        before["tally"].get("live").is_none() && before["tally"].get("active").is_none(),
        "{before}"
    );
    assert_eq!(before["sealed"]["revealed"], json!([]));
    assert!(
        unix_now() < early,
        "the pledges came after the early reveal time: the snapshot may miss them"
    );

    // The early reveal time passes: the server takes the snapshot, two
    // trustees' shares suffice, the server logs the counts.
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut shared = Vec::new();
    while shared.is_empty() {
        assert!(Instant::now() < deadline, "no snapshot to share");
        tokio::time::sleep(Duration::from_millis(300)).await;
        shared = trustee::step(&opts, &client, &id, &keys[2]).await.unwrap();
    }
    let snapshot = match shared[..] {
        [Action::Shared { snapshot }] => snapshot,
        _ => panic!("{shared:?}"),
    };
    assert_eq!(
        trustee::step(&opts, &client, &id, &keys[0]).await.unwrap(),
        vec![Action::Shared { snapshot }]
    );
    let revealed = wait_for(&srv.http, &srv.base, &id, |v| {
        v["sealed"]["revealed"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(
        revealed["sealed"]["revealed"][0],
        json!({"snapshot": snapshot, "counts": [1, 0, 1], "live": 2, "active": 1})
    );
    // The third trustee has nothing left to share for it.
    assert!(
        trustee::step(&opts, &client, &id, &keys[1])
            .await
            .unwrap()
            .is_empty()
    );

    // The organiser closes: the close is the final snapshot.
    pledge(&client, &id, &issuer, &joint, 3, Some(1), &mut rng).await;
    let r = srv
        .http
        .post(format!(
            "{}/v1/admin/campaigns/{}/close",
            srv.base,
            id.to_hex()
        ))
        .bearer_auth(&srv.admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let closed = wait_for(&srv.http, &srv.base, &id, |v| v["closed_index"].is_u64()).await;
    let close_at = closed["closed_index"].as_u64().unwrap();
    let posted = trustees_step(&opts, &client, &id, &keys[1..]).await;
    assert_eq!(posted, vec![Action::Shared { snapshot: close_at }; 2]);
    let last = wait_for(&srv.http, &srv.base, &id, |v| {
        v["sealed"]["revealed"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    })
    .await;
    assert_eq!(
        last["sealed"]["revealed"][1],
        json!({"snapshot": close_at, "counts": [1, 1, 1], "live": 3, "active": 1})
    );

    // An independent audit passes, and its own replay gives the same key
    // and the same revealed counts.
    let (report, ledger) = audit_with_ledger(&opts).await.unwrap();
    assert!(report.passed(), "{:?}", report.failures);
    // The report shows the sealed campaign's own figures: its entry count
    // and its latest reveal, never a live count read from an empty
    // histogram.
    let summary = report
        .campaigns
        .iter()
        .find(|c| c.id == id.to_hex())
        .unwrap();
    let sealed_summary = summary.sealed.as_ref().unwrap();
    assert_eq!(
        (
            sealed_summary.entries,
            sealed_summary.snapshots,
            sealed_summary.revealed,
            sealed_summary.latest_reveal
        ),
        (5, 2, 2, Some(close_at))
    );
    assert_eq!((summary.live, summary.active), (3, 1));
    assert!(
        report.to_string().contains("sealed, 5 sealed entries"),
        "{report}"
    );
    let ledger = ledger.unwrap();
    assert_eq!(ledger.joint_key(&id), Some(&joint));
    let sealed = ledger.campaign(&id).unwrap().sealed.as_ref().unwrap();
    let counts: Vec<_> = sealed
        .snapshots
        .iter()
        .map(|s| (s.index, s.revealed.clone()))
        .collect();
    assert_eq!(
        counts,
        vec![
            (snapshot, Some(vec![1, 0, 1])),
            (close_at, Some(vec![1, 1, 1]))
        ]
    );
    srv.shutdown().await;
}
