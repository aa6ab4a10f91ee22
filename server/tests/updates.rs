//! Campaign updates on the server (issue 19, SPEC R-API-33…R-API-35,
//! R-CAMP-8, R-RULE-14): the admin endpoint through `app()` with typed
//! refusals, the campaign object, a restart that replays the updates from
//! the store, and the effective deadline in the sequencer's checks, driven
//! with explicit times (no sleeping, no wall clock in the assertions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use pledge_protocol::campaign::{CampaignDefinition, CampaignParams, RevealPolicy};
use pledge_protocol::entry::{CampaignOpened, Entry};
use pledge_protocol::ledger::VerifiedEntry;
use pledge_protocol::note::{KeyName, NoteSigner};
use pledge_protocol::pledge::{Pledge, PledgeSigningKey, Terms};
use pledge_protocol::token::{self, IssuerSecretKey};
use pledge_protocol::update::{CampaignText, CampaignUpdated};
use pledge_server::ledger::{Ledger, Phase, Proposal, SubmitError, unix_now};
use pledge_server::store::RedbStore;
use pledge_server::{AppState, app};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const DAY: u64 = 86_400;

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    body: Option<Value>,
    admin: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = admin {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// SPEC R-API-33, R-API-34, R-API-35 end to end through the router: every
/// refusal is typed and changes nothing; a valid extension and texts show in
/// the campaign object; a restart replays them from the store; a closed
/// campaign takes no update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_through_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::config(dir.path(), false);
    let state = AppState::start(&config).await.unwrap();
    let app = app(state.clone());
    let admin = state.admin_token().to_owned();
    let original = unix_now() + 3600;
    let (s, v) = call(
        &app,
        "POST",
        "/v1/campaigns",
        Some(json!({
            "title": "Walkout", "text": "We walk out.", "action": "walk out",
            "deadline": original, "goal": 2, "threshold_min": 1, "threshold_max": 10,
            "attester": {"kind": "open"}
        })),
        Some(admin.as_str()),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["campaign_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/admin/campaigns/{id}/update");
    let object = |app: Router| {
        let id = id.clone();
        async move {
            call(&app, "GET", &format!("/v1/campaigns/{id}"), None, None)
                .await
                .1
        }
    };
    let before = object(app.clone()).await;
    assert_eq!(before["deadline"], original);
    assert!(before.get("original_deadline").is_none(), "{before}");
    assert!(before.get("texts").is_none(), "{before}");
    let size_before = state.ledger().published().size();

    // Refusals, each typed, none logging anything.
    let later = original + 7 * DAY;
    let fr = |title: &str| json!({"lang": "fr", "title": title, "text": "Nous sortons."});
    let refused: Vec<(Value, Option<&str>, StatusCode, &str)> = vec![
        (
            json!({"deadline": later}),
            None,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            json!({}),
            Some(admin.as_str()),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"deadline": later, "title": "x"}),
            Some(admin.as_str()),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"texts": [{"lang": "pt_BR", "title": "x"}]}),
            Some(admin.as_str()),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"texts": [{"lang": "FR", "title": "x"}]}),
            Some(admin.as_str()),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"texts": [fr("a"), fr("b")]}),
            Some(admin.as_str()),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"texts": [{"lang": "fr", "title": ""}]}),
            Some(admin.as_str()),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"texts": [{"lang": "fr", "title": "a\nb"}]}),
            Some(admin.as_str()),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"texts": (0..17).map(|i| json!({"lang": format!("a{}", char::from(b'a' + i)), "title": "t"})).collect::<Vec<_>>()}),
            Some(admin.as_str()),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"deadline": original - 60}),
            Some(admin.as_str()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "deadline_not_later",
        ),
        (
            json!({"deadline": original}),
            Some(admin.as_str()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "deadline_not_later",
        ),
        (
            json!({"deadline": original + 90 * DAY + 1}),
            Some(admin.as_str()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "deadline_too_late",
        ),
    ];
    for (body, token, status, code) in refused {
        let (s, v) = call(&app, "POST", &path, Some(body.clone()), token).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (status, Some(code)),
            "{body}: {v}"
        );
    }
    let unknown = format!("/v1/admin/campaigns/{}/update", "ab".repeat(32));
    let (s, v) = call(
        &app,
        "POST",
        &unknown,
        Some(json!({"deadline": later})),
        Some(admin.as_str()),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_campaign"))
    );
    let (s, _) = call(
        &app,
        "POST",
        "/v1/admin/campaigns/XYZ/update",
        Some(json!({"deadline": later})),
        Some(admin.as_str()),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        state.ledger().published().size(),
        size_before,
        "a refusal logged something"
    );
    assert_eq!(object(app.clone()).await, before);

    // An extension: answered once durable, shown at once.
    let (s, v) = call(
        &app,
        "POST",
        &path,
        Some(json!({"deadline": later})),
        Some(admin.as_str()),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["update"], 1);
    assert_eq!(v["deadline"], later);
    assert_eq!(v["index"], size_before);
    let c = object(app.clone()).await;
    assert_eq!(c["deadline"], later);
    assert_eq!(c["original_deadline"], original);
    assert_eq!(c["title"], "Walkout", "the original title stays");
    assert_eq!(c["state"], "open");
    // The same deadline again, or the original, is not later.
    let (s, v) = call(
        &app,
        "POST",
        &path,
        Some(json!({"deadline": later})),
        Some(admin.as_str()),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("deadline_not_later"))
    );

    // Texts, in any order; a second French text replaces the first.
    let pt = json!({"lang": "pt-br", "title": "Paralisação", "text": "Saímos."});
    let (s, v) = call(
        &app,
        "POST",
        &path,
        Some(json!({"texts": [pt, fr("Débrayage")]})),
        Some(admin.as_str()),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["update"], 2);
    assert_eq!(v["languages"], json!(["fr", "pt-br"]));
    let (s, v) = call(
        &app,
        "POST",
        &path,
        Some(json!({"texts": [fr("Grève")]})),
        Some(admin.as_str()),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["update"], 3);
    let c = object(app.clone()).await;
    assert_eq!(
        c["texts"],
        json!([
            {"lang": "fr", "title": "Grève", "text": "Nous sortons."},
            {"lang": "pt-br", "title": "Paralisação", "text": "Saímos."}
        ])
    );
    assert_eq!(
        c["deadline"], later,
        "a text-only update keeps the deadline"
    );
    // The list shows the same object.
    let (_, list) = call(&app, "GET", "/v1/campaigns", None, None).await;
    assert_eq!(list["campaigns"][0], c);

    // A restart replays the updates from the store.
    state.stop().await;
    drop(app);
    drop(state);
    let state = AppState::start(&config).await.unwrap();
    let app = app_of(&state);
    let again = call(&app, "GET", &format!("/v1/campaigns/{id}"), None, None)
        .await
        .1;
    assert_eq!(again["deadline"], later);
    assert_eq!(again["original_deadline"], original);
    assert_eq!(again["texts"], c["texts"]);

    // Closed: no update.
    let (s, v) = call(
        &app,
        "POST",
        &format!("/v1/admin/campaigns/{id}/close"),
        Some(json!({})),
        Some(admin.as_str()),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = call(
        &app,
        "POST",
        &path,
        Some(json!({"deadline": later + DAY})),
        Some(admin.as_str()),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("campaign_closed"))
    );
    state.stop().await;
}

fn app_of(state: &AppState) -> Router {
    app(state.clone())
}

/// SPEC R-CAMP-8, R-RULE-14 in the sequencer's checks, with explicit times:
/// a pledge after the original deadline but before the extended one is
/// accepted, one after the extended deadline refused; an update of a
/// campaign past its effective deadline is refused; the published phase
/// follows the effective deadline.
#[test]
fn pledges_and_updates_follow_the_effective_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path()).unwrap());
    let signer = NoteSigner::from_seed(KeyName::new("test.example/log").unwrap(), &[9; 32]);
    let (ledger, core) = Ledger::open(store, signer).unwrap();
    let sk = IssuerSecretKey::generate().unwrap();
    let d = 2_000_000_000u64;
    let def = CampaignDefinition::new(CampaignParams {
        nonce: [5; 16],
        title: "Walkout".into(),
        text: String::new(),
        action: "walk out".into(),
        deadline: d,
        goal: 1,
        threshold_min: 1,
        threshold_max: 10,
        reveal: RevealPolicy::Live,
    })
    .unwrap();
    let id = def.id();
    let open = Entry::CampaignOpened(CampaignOpened {
        definition: def,
        issuer_key: sk.public_key().clone(),
    });
    let (core, r) = ledger.integrate(
        core,
        vec![(Proposal::opening(open).unwrap(), Vec::new())],
        d - 100,
    );
    let mut core = core.unwrap();
    r[0].as_ref().unwrap();

    let pledge = |seed: u8| {
        let key = PledgeSigningKey::from_seed(&[seed; 32]);
        let pk = sk.public_key();
        let (blinded, st) = token::blind(pk, &id, &key.public_key()).unwrap();
        let sig = sk.blind_sign(blinded.as_bytes()).unwrap();
        let tok = token::finalize(pk, &st, sig.as_bytes(), &id, &key.public_key()).unwrap();
        let e = Entry::Pledge(Pledge::sign(id, tok, Terms::threshold(1).unwrap(), &key).unwrap());
        VerifiedEntry::verify(e, Some(pk), None).unwrap()
    };
    let update = |n: u32, deadline: Option<u64>, texts: Vec<CampaignText>| {
        VerifiedEntry::verify(
            Entry::CampaignUpdated(CampaignUpdated::new(id, n, deadline, texts).unwrap()),
            None,
            None,
        )
        .unwrap()
    };
    let p1 = pledge(1);
    // Before any update: after the original deadline is too late.
    assert_eq!(
        core.check(p1.entry(), d + 10),
        Err(SubmitError::DeadlinePassed)
    );
    assert_eq!(core.check(p1.entry(), d), Ok(()));

    let extended = d + 1000;
    let (next, r) = ledger.integrate(
        core,
        vec![(
            Proposal::Entry(Box::new(update(1, Some(extended), vec![]))),
            Vec::new(),
        )],
        d - 50,
    );
    core = next.unwrap();
    r[0].as_ref().unwrap();
    assert_eq!(core.state().campaign(&id).unwrap().deadline(), extended);
    let view = ledger.published();
    let c = view.campaign(&id).unwrap();
    assert_eq!(c.deadline(), extended);
    assert_eq!(
        c.phase(d + 10),
        Phase::Open,
        "past the original, before the extension"
    );
    assert_eq!(c.phase(extended + 1), Phase::Closing);
    drop(view);

    // After the original deadline, before the extended one: accepted.
    assert_eq!(core.check(p1.entry(), d + 10), Ok(()));
    let (next, r) = ledger.integrate(
        core,
        vec![(Proposal::Entry(Box::new(p1)), Vec::new())],
        d + 10,
    );
    core = next.unwrap();
    r[0].as_ref().unwrap();
    assert_eq!(core.state().campaign(&id).unwrap().tally.live(), 1);
    // After the extended deadline: refused, also at integration.
    let p2 = pledge(2);
    assert_eq!(
        core.check(p2.entry(), extended + 1),
        Err(SubmitError::DeadlinePassed)
    );
    let (next, r) = ledger.integrate(
        core,
        vec![(Proposal::Entry(Box::new(p2)), Vec::new())],
        extended + 1,
    );
    core = next.unwrap();
    assert_eq!(r[0].as_ref().unwrap_err(), &SubmitError::DeadlinePassed);
    // An update once the effective deadline passed: refused (never reopened).
    let late = update(2, Some(extended + 5000), vec![]);
    assert_eq!(
        core.check(late.entry(), extended + 1),
        Err(SubmitError::DeadlinePassed)
    );
    assert_eq!(core.check(late.entry(), extended - 1), Ok(()));
    assert_eq!(core.state().campaign(&id).unwrap().tally.live(), 1);
}
