//! `pledged` pushes each checkpoint to a configured witness (tlog-witness
//! `add-checkpoint`) and serves the checkpoint with the witness's cosignature.
//! The witness here is a minimal one built from `pledge-protocol`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use pledge_protocol::cosignature::{
    AddCheckpointRequest, WitnessCheckError, WitnessSigner, WitnessedTree, check_add_checkpoint,
    format_cosignature_lines, format_size_body,
};
use pledge_protocol::note::{KeyName, NoteVerifier, SignedNote};
use pledge_server::witness::Witness;
use pledge_server::{AppState, app};
use tower::ServiceExt as _;

#[derive(Clone)]
struct FakeWitness {
    signer: Arc<WitnessSigner>,
    log: Arc<OnceLock<NoteVerifier>>,
    latest: Arc<Mutex<Option<WitnessedTree>>>,
    calls: Arc<Mutex<Vec<(u64, u64)>>>,
}

async fn add_checkpoint(State(w): State<FakeWitness>, body: Bytes) -> (StatusCode, String) {
    let Ok(req) = AddCheckpointRequest::parse(&body) else {
        return (StatusCode::BAD_REQUEST, String::new());
    };
    let log = w.log.get().unwrap();
    let mut latest = w.latest.lock().unwrap();
    w.calls
        .lock()
        .unwrap()
        .push((req.old_size(), req.checkpoint().size()));
    match check_add_checkpoint(&req, log, *latest) {
        Ok(signed) => {
            *latest = Some(WitnessedTree {
                size: signed.checkpoint().size(),
                root: *signed.checkpoint().root(),
            });
            let sig = w
                .signer
                .cosign_body(req.note().body(), 1_700_000_000)
                .unwrap();
            (StatusCode::OK, format_cosignature_lines(&[sig]))
        }
        Err(WitnessCheckError::StaleOldSize { latest_size, .. }) => {
            (StatusCode::CONFLICT, format_size_body(latest_size))
        }
        Err(_) => (StatusCode::UNPROCESSABLE_ENTITY, String::new()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_pushed_and_served_with_the_witness_cosignature() {
    let signer = WitnessSigner::from_seed(KeyName::new("witness.test").unwrap(), &[4; 32]);
    let fake = FakeWitness {
        signer: Arc::new(signer),
        log: Arc::new(OnceLock::new()),
        latest: Arc::new(Mutex::new(None)),
        calls: Arc::new(Mutex::new(Vec::new())),
    };
    let wkey = fake.signer.verifier();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let waddr = listener.local_addr().unwrap();
    let router = Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let dir = tempfile::tempdir().unwrap();
    // The log key is created at first start: create it now to tell the witness.
    let keys = pledge_server::keys::load_or_create(dir.path(), "localhost/pledge").unwrap();
    fake.log.set(keys.log.verifier()).unwrap();
    drop(keys);
    let mut config = common::config(dir.path(), true);
    config.witnesses = vec![Witness {
        url: format!("http://{waddr}"),
        key: wkey.clone(),
    }];
    let state = AppState::start(&config).await.unwrap();
    // The checkpoint after the demo campaign (size 1) gets cosigned.
    wait_for_cosigned(&state, &wkey, &fake).await;
    let calls = fake.calls.lock().unwrap().clone();
    assert_eq!(calls.first().map(|c| c.0), Some(0), "{calls:?}");
    assert!(calls.iter().all(|(old, new)| old <= new), "{calls:?}");
    state.stop().await;
    drop(state);

    // After a restart the pusher believes the witness is at 0; the witness
    // answers 409 with its size and the pusher retries from there.
    fake.calls.lock().unwrap().clear();
    config.demo = false;
    let state = AppState::start(&config).await.unwrap();
    wait_for_cosigned(&state, &wkey, &fake).await;
    let calls = fake.calls.lock().unwrap().clone();
    assert_eq!(calls, vec![(0, 1), (1, 1)]);
    state.stop().await;
}

async fn wait_for_cosigned(
    state: &AppState,
    wkey: &pledge_protocol::cosignature::WitnessVerifier,
    fake: &FakeWitness,
) {
    let app = app(state.clone());
    let mut cosigned = false;
    for _ in 0..100 {
        let resp = app
            .clone()
            .oneshot(Request::get("/log/checkpoint").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let note = SignedNote::parse(&body).unwrap();
        if note.body().starts_with("localhost/pledge\n1\n")
            && let Some(sig) = note.signatures().iter().find(|s| s.name() == wkey.name())
        {
            assert!(
                wkey.verify_cosignature(note.body().as_bytes(), sig.signature())
                    .is_some()
            );
            // The log's own signature is still there and verifies.
            pledge_protocol::checkpoint::verify_checkpoint(
                note.clone(),
                &state.ledger().verifier().clone(),
            )
            .unwrap();
            cosigned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        cosigned,
        "checkpoint not cosigned; calls {:?}",
        fake.calls.lock().unwrap()
    );
}
