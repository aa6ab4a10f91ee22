//! Sealed campaigns from the pledger's side (issue 16; SPEC R-SEAL-40 …
//! R-SEAL-47), over real HTTP against the real `pledged`: the client
//! library's flows (what `pledge commit`, `amend`, `withdraw`, `cover` and
//! `status` run) seal under the joint key they replay from the log, refuse
//! a threshold that is not a bucket, refuse to seal before the key exists
//! or under a key the log does not give, send cover, and read the reveals
//! from the log; `pledge demo --sealed` runs through key generation,
//! pledging, amendments, cover and two reveals, and the audit passes on the
//! result.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use pledge_client::audit::{AuditOptions, audit_with_ledger};
use pledge_client::client::Client;
use pledge_client::demo::{self, DemoOptions};
use pledge_client::flows::{self, AttestKind, FlowError, sealed as sf};
use pledge_client::trustee::{self, Action};
use pledge_client::wallet::Wallet;
use pledge_protocol::dkg::TrusteeKeyPair;
use pledge_protocol::hash::CampaignId;
use pledge_protocol::note::NoteVerifier;
use pledge_tests::proxy::{Paths, Proxy, Rule};
use pledge_tests::server::Server;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use serde_json::{Value, json};

fn now() -> u64 {
    sf::unix_now()
}

async fn start() -> Server {
    Server::start(|c| {
        c.demo = false;
        c.close_check_interval = Duration::from_millis(200);
    })
    .await
}

/// Opens a sealed campaign (buckets 1, 10, 100; 2 of 3 trustees) with an
/// early reveal at `early`, if any.
async fn open_sealed(srv: &Server, keys: &[TrusteeKeyPair], early: Option<u64>) -> CampaignId {
    let publics: Vec<String> = keys
        .iter()
        .map(|k| hex::encode(k.public_key().to_bytes()))
        .collect();
    let (status, created) = srv
        .post_admin(
            "/v1/campaigns",
            &json!({
                "title": "Sealed strike", "action": "strike", "deadline": now() + 3600,
                "goal": 2, "threshold_min": 1, "threshold_max": 100,
                "attester": {"kind": "open"},
                "sealed": {"buckets": [1, 10, 100], "k": 2, "trustees": publics,
                           "reveals": early.into_iter().collect::<Vec<_>>()}
            }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    CampaignId::from_hex(created["campaign_id"].as_str().unwrap()).unwrap()
}

/// One round of each trustee, each with its own audit state directory
/// under `states` (as `pledge trustee serve --state`): after the first
/// round a trustee verifies only what is new.
async fn trustees_step(
    srv: &Server,
    client: &Client,
    id: &CampaignId,
    keys: &[&TrusteeKeyPair],
    states: &std::path::Path,
) -> Vec<Action> {
    let mut all = Vec::new();
    for kp in keys {
        let mut opts = AuditOptions::new(srv.base.clone());
        opts.state_dir = Some(states.join(hex::encode(&kp.public_key().to_bytes()[..8])));
        all.extend(trustee::step(&opts, client, id, kp).await.unwrap());
    }
    all
}

/// Key generation: every trustee deals, then is ready; waits for the key
/// in the campaign object.
async fn generate_key(
    srv: &Server,
    client: &Client,
    id: &CampaignId,
    keys: &[TrusteeKeyPair],
    states: &std::path::Path,
) {
    let all: Vec<&TrusteeKeyPair> = keys.iter().collect();
    assert_eq!(
        trustees_step(srv, client, id, &all, states).await,
        vec![Action::Dealt; 3]
    );
    assert_eq!(
        trustees_step(srv, client, id, &all, states).await,
        vec![Action::Ready; 3]
    );
    wait_for(srv, id, |v| v["sealed"]["joint_key"].is_string()).await;
}

async fn wait_for(srv: &Server, id: &CampaignId, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = srv.get(&format!("/v1/campaigns/{}", id.to_hex())).await;
        let v: Value = serde_json::from_slice(&body).unwrap();
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "waited in vain; campaign: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A wallet with tokens for every open campaign, pinned to the server.
async fn wallet(client: &Client) -> (Wallet, NoteVerifier) {
    let mut w = Wallet::in_memory();
    let (log, _) = flows::pin_log(client, &mut w).await.unwrap();
    flows::obtain_tokens(client, &mut w, &log, &AttestKind::Open)
        .await
        .unwrap();
    (w, log)
}

fn trustee_keys(seed: u64) -> Vec<TrusteeKeyPair> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..3).map(|_| TrusteeKeyPair::generate(&mut rng)).collect()
}

/// SPEC R-SEAL-40 … R-SEAL-46: commit, amend, withdraw (to null), commit
/// again, cover (a null pledge, re-encryptions), status before and after
/// the close's reveal; refusals before the key and for a non-bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_pledging_through_the_client_flows() {
    let srv = start().await;
    let client = Client::new(&srv.base).unwrap();
    let keys = trustee_keys(40);
    let states = tempfile::tempdir().unwrap();
    let id = open_sealed(&srv, &keys, None).await;
    let (mut a, alog) = wallet(&client).await;
    let (mut b, blog) = wallet(&client).await;
    // Cover was scheduled with the tokens of the sealed campaign.
    assert!(a.data.cover.due.contains_key(&id.to_hex()));

    // Before key generation: nothing can be sealed, with a clear error,
    // and nothing is spent.
    let e = flows::commit(&client, &mut a, &alog, &id, 10, Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(&e, FlowError::KeyNotReady(_)), "{e}");
    assert!(
        e.to_string()
            .contains("the trustees have not finished key generation"),
        "{e}"
    );
    assert!(a.data.unused_token(&id).is_some() && a.data.pledges.is_empty());
    let r = sf::send_cover(&client, &mut b, &blog, Some(&id), true, now())
        .await
        .unwrap();
    assert_eq!(r.no_key_yet, vec![id.to_hex()]);
    assert!(r.sent.is_empty());

    generate_key(&srv, &client, &id, &keys, states.path()).await;

    // A threshold that is not a bucket: a typed error naming the values.
    let e = flows::commit(&client, &mut a, &alog, &id, 7, Duration::ZERO)
        .await
        .unwrap_err();
    match &e {
        FlowError::NotABucket { given, allowed, .. } => {
            assert_eq!((*given, allowed.clone()), (7, vec![1, 10, 100]))
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("1, 10, 100"), "{e}");

    // A sealed pledge, an amendment, a withdrawal (to null), and a pledge
    // sealed into the null vector again.
    let p = flows::commit(&client, &mut a, &alog, &id, 10, Duration::ZERO)
        .await
        .unwrap();
    let rec = a.data.pledge_for(&id).unwrap().clone();
    assert!(rec.is_sealed());
    assert_eq!((rec.threshold, rec.entries.len()), (10, 1));
    flows::change(&client, &mut a, &alog, &id, Some(100.into()))
        .await
        .unwrap();
    flows::change(&client, &mut a, &alog, &id, None)
        .await
        .unwrap();
    let rec = a.data.pledge_for(&id).unwrap().clone();
    assert_eq!((rec.threshold, rec.withdrawn), (0, false));
    let e = flows::change(&client, &mut a, &alog, &id, None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already the null vector"), "{e}");
    let again = flows::commit(&client, &mut a, &alog, &id, 1, Duration::ZERO)
        .await
        .unwrap();
    assert!(again.index > p.index);
    assert_eq!(a.data.pledge_for(&id).unwrap().threshold, 1);
    assert_eq!(a.data.pledge_for(&id).unwrap().entries.len(), 4);

    // Cover: b never pledges; its token goes as a null pledge, then its
    // vector (null) is re-encrypted, twice at most.
    let r = sf::send_cover(&client, &mut b, &blog, Some(&id), true, now())
        .await
        .unwrap();
    assert_eq!(r.sent.len(), 1);
    assert_eq!(r.sent[0].1, sf::CoverKind::NullPledge);
    let brec = b.data.pledge_for(&id).unwrap().clone();
    assert_eq!(
        (brec.threshold, brec.entries[0].kind.as_str()),
        (0, "cover")
    );
    for _ in 0..3 {
        sf::send_cover(&client, &mut b, &blog, Some(&id), true, now())
            .await
            .unwrap();
    }
    assert_eq!(
        b.data.pledge_for(&id).unwrap().entries.len(),
        1 + usize::from(sf::MAX_COVER_AMENDMENTS)
    );
    // Not due yet without --now: nothing is sent, the due time is said.
    let (mut c, clog) = wallet(&client).await;
    let due = c.data.cover.due[&id.to_hex()].at;
    let r = sf::send_cover(
        &client,
        &mut c,
        &clog,
        Some(&id),
        false,
        due.saturating_sub(1),
    )
    .await
    .unwrap();
    if due > now() {
        assert_eq!(r.waiting, vec![(id.to_hex(), due)]);
    }
    // Off: nothing at all.
    c.data.cover.off = true;
    let r = sf::send_cover(&client, &mut c, &clog, Some(&id), true, now())
        .await
        .unwrap();
    assert!(r.off && r.sent.is_empty());

    // Status before a reveal: sealed, the entry count, no numbers.
    let (statuses, views) = flows::status_and_views(&client, &mut a, &alog)
        .await
        .unwrap();
    let v = views
        .iter()
        .find(|v| v.info.campaign_id == id)
        .unwrap()
        .sealed
        .clone()
        .unwrap();
    assert_eq!(v.entries, 4 + 3);
    assert!(v.revealed.is_none());
    assert_eq!(
        v.next_reveal(now(), v_deadline(&views, &id)),
        v_deadline(&views, &id)
    );
    assert_eq!(statuses.len(), 1);
    assert_eq!((statuses[0].threshold, statuses[0].active), (1, 0));
    assert!(!statuses[0].activated && statuses[0].included);

    // Close; two trustees reveal, while `pledge watch` runs on a's wallet:
    // it announces the reveal (read from the log) and a's outcome.
    let news = std::sync::Mutex::new(Vec::new());
    let reveal = async {
        let (st, _) = srv
            .post_admin(
                &format!("/v1/admin/campaigns/{}/close", id.to_hex()),
                &json!({}),
            )
            .await;
        assert_eq!(st, 200);
        let closed = wait_for(&srv, &id, |v| v["closed_index"].is_u64()).await;
        let close_at = closed["closed_index"].as_u64().unwrap();
        assert_eq!(
            trustees_step(&srv, &client, &id, &[&keys[0], &keys[1]], states.path()).await,
            vec![Action::Shared { snapshot: close_at }; 2]
        );
        wait_for(&srv, &id, |v| {
            v["sealed"]["revealed"]
                .as_array()
                .is_some_and(|r| r.len() == 1)
        })
        .await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !news
            .lock()
            .unwrap()
            .iter()
            .any(|n| matches!(n, flows::WatchNews::Outcome(_)))
        {
            assert!(Instant::now() < deadline, "watch saw: {:?}", news.lock());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        close_at
    };
    let close_at = tokio::select! {
        r = flows::watch(&client, &mut a, &alog, Duration::from_secs(1), None, |n| {
            news.lock().unwrap().push(n);
        }) => panic!("the watch stopped: {r:?}"),
        at = reveal => at,
    };
    let revealed: Vec<_> = news
        .lock()
        .unwrap()
        .iter()
        .filter_map(|n| match n {
            flows::WatchNews::Revealed {
                campaign,
                snapshot,
                counts,
                active,
                threshold,
                ..
            } => Some((
                campaign.clone(),
                *snapshot,
                counts.clone(),
                *active,
                *threshold,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        revealed,
        vec![(id.to_hex(), close_at, vec![1, 0, 0], 1, Some(1))]
    );
    let (statuses, views) = flows::status_and_views(&client, &mut a, &alog)
        .await
        .unwrap();
    let v = views
        .iter()
        .find(|v| v.info.campaign_id == id)
        .unwrap()
        .sealed
        .clone()
        .unwrap();
    let r = v.revealed.unwrap();
    // a: bucket 0 (threshold 1); b: null.
    assert_eq!(
        (r.snapshot, r.counts.clone(), r.live, r.active),
        (close_at, vec![1, 0, 0], 1, 1)
    );
    let s = &statuses[0];
    assert_eq!((s.active, s.live), (1, 1));
    assert!(s.activated);
    let o = s.outcome.unwrap();
    assert_eq!((o.active, o.closed_index), (1, close_at));
    // b's null pledge counts nowhere: shown as not counted.
    let (bs, _) = flows::status_and_views(&client, &mut b, &blog)
        .await
        .unwrap();
    assert!(bs[0].withdrawn && !bs[0].activated);

    let (report, _) = audit_with_ledger(&AuditOptions::new(srv.base.clone()))
        .await
        .unwrap();
    assert!(report.passed(), "{:?}", report.failures);
    srv.shutdown().await;
}

fn v_deadline(views: &[flows::CampaignView], id: &CampaignId) -> u64 {
    views
        .iter()
        .find(|v| v.info.campaign_id == *id)
        .unwrap()
        .info
        .deadline
}

/// SPEC R-SEAL-40: a server (here a proxy in front of it) that serves
/// another joint key in its campaign object is refused, by a wallet that
/// replays the key from the log and by one that remembers it; nothing is
/// sealed or sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_joint_key_that_the_log_does_not_give_is_refused() {
    let srv = start().await;
    let client = Client::new(&srv.base).unwrap();
    let keys = trustee_keys(41);
    let states = tempfile::tempdir().unwrap();
    let id = open_sealed(&srv, &keys, None).await;
    generate_key(&srv, &client, &id, &keys, states.path()).await;

    // The campaign list with another valid point as the joint key (a
    // trustee's public key: a key whose secret one party holds).
    let (_, body) = srv.get("/v1/campaigns").await;
    let mut list: Value = serde_json::from_slice(&body).unwrap();
    let other = hex::encode(keys[0].public_key().to_bytes());
    let items = list["campaigns"].as_array_mut().unwrap();
    for c in items.iter_mut() {
        if c["campaign_id"] == id.to_hex() {
            assert_ne!(c["sealed"]["joint_key"], json!(other));
            c["sealed"]["joint_key"] = json!(other);
        }
    }
    let lying = serde_json::to_vec(&list).unwrap();
    let proxy = Proxy::with(
        &srv.base,
        [Rule::serve(Paths::is("/v1/campaigns"), lying.clone())],
    )
    .await;
    let via = Client::new(&proxy.base).unwrap();

    // A fresh wallet: the replay from the log gives the real key.
    let (mut w, log) = wallet(&client).await;
    let e = flows::commit(&via, &mut w, &log, &id, 10, Duration::ZERO)
        .await
        .unwrap_err();
    match &e {
        FlowError::JointKeyMismatch { served, logged, .. } => {
            assert_eq!(served, &other);
            assert_ne!(logged, &other);
        }
        other => panic!("{other}"),
    }
    assert!(w.data.unused_token(&id).is_some() && w.data.pledges.is_empty());

    // A wallet that pledged honestly remembers the key, and refuses the
    // lie when it amends.
    let (mut h, hlog) = wallet(&client).await;
    flows::commit(&client, &mut h, &hlog, &id, 10, Duration::ZERO)
        .await
        .unwrap();
    let e = flows::change(&via, &mut h, &hlog, &id, Some(100.into()))
        .await
        .unwrap_err();
    assert!(matches!(e, FlowError::JointKeyMismatch { .. }), "{e}");
    assert_eq!(h.data.pledge_for(&id).unwrap().entries.len(), 1);
    // Cover refuses it too.
    let e = sf::send_cover(&via, &mut w, &log, Some(&id), true, now())
        .await
        .unwrap_err();
    assert!(matches!(e, FlowError::JointKeyMismatch { .. }), "{e}");

    // Honest again: the same wallets seal.
    flows::commit(&client, &mut w, &log, &id, 10, Duration::ZERO)
        .await
        .unwrap();
    srv.shutdown().await;
}

/// `pledge demo --sealed` (issue 16's "done when", small): key generation,
/// pledges, amendments, withdrawals, cover, the early reveal and the
/// close's, each equal to what was pledged before its snapshot; then the
/// independent audit passes and recomputes the same counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_sealed_runs_to_both_reveals_and_the_audit_passes() {
    let srv = Server::start(|c| c.close_check_interval = Duration::from_millis(200)).await;
    let client = Client::new(&srv.base).unwrap();
    let opts = DemoOptions {
        pledgers: 12,
        concurrency: 4,
        admin_token: Some(srv.admin.clone()),
        sealed: true,
        early_reveal: Duration::from_secs(8),
        ..DemoOptions::default()
    };
    let mut lines = Vec::new();
    let r = demo::run(&client, &opts, &mut |s| lines.push(s))
        .await
        .unwrap();
    let sd = r.sealed.clone().unwrap();
    // Plan: i % 5 == 4 do not pledge (i = 4, 9: null pledges); amend
    // i % 4 == 1 (1, 5); withdraw i % 5 == 3 (3, 8); cover re-encryptions
    // for i % 3 == 0 (0, 3, 6: two each; 9: its null pledge, then one).
    assert_eq!((r.pledged, r.amended, r.withdrawn), (10, 2, 2));
    assert_eq!((sd.null_pledges, sd.cover_amendments), (2, 7));
    assert_eq!(sd.entries, 10 + 2 + 2 + 2 + 7);
    assert_eq!(sd.reveals.len(), 2);
    let (_, last) = sd.reveals.last().unwrap();
    // 10 pledged, 2 withdrew: 8 live, spread over the buckets by plan.
    assert_eq!(last.iter().sum::<u64>(), 8);
    assert_eq!(r.live, 8);
    assert!(
        lines.iter().any(|l| l.contains("joint key logged")),
        "{lines:?}"
    );

    // `pledge audit`: passes, and its own replay reveals the same counts.
    let (report, ledger) = audit_with_ledger(&AuditOptions::new(srv.base.clone()))
        .await
        .unwrap();
    assert!(report.passed(), "{:?}", report.failures);
    let id = CampaignId::from_hex(&r.campaign).unwrap();
    let ledger = ledger.unwrap();
    let snaps: Vec<(u64, Vec<u64>)> = ledger
        .campaign(&id)
        .unwrap()
        .sealed
        .as_ref()
        .unwrap()
        .snapshots
        .iter()
        .map(|s| (s.index, s.revealed.clone().unwrap()))
        .collect();
    assert_eq!(snaps, sd.reveals);
    srv.shutdown().await;
}
