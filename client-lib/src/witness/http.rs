//! The witness's HTTP interface: `POST /add-checkpoint` (C2SP tlog-witness)
//! with its status codes, a bounded body read and a bound on requests in
//! flight. SPEC R-WIT-3…R-WIT-7, R-WITSRV-1, R-WITSRV-6.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use pledge_protocol::cosignature::{
    AddCheckpointRequest, MAX_ADD_CHECKPOINT_BYTES, TLOG_SIZE_CONTENT_TYPE, WitnessCheckError,
    format_size_body,
};
use tokio::sync::Semaphore;

use super::{AddCheckpointError, Witness, now_seconds};

/// Longest time a client may take to send its request body. SPEC R-WITSRV-6.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Most `add-checkpoint` requests handled at once; more get 503 with
/// `Retry-After`. SPEC R-WITSRV-6.
pub const MAX_IN_FLIGHT: usize = 64;

#[derive(Debug, Clone)]
struct AppState {
    witness: Arc<Witness>,
    in_flight: Arc<Semaphore>,
}

/// The witness's routes: `POST /add-checkpoint` (the submission prefix is the
/// server root). Everything else is 404 (405 for another method).
pub fn router(witness: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .with_state(AppState {
            witness,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        })
}

/// Serves the witness on `listener` until `shutdown` completes, then lets
/// requests in flight finish.
///
/// # Errors
/// The listener's I/O error.
pub async fn serve(
    listener: tokio::net::TcpListener,
    witness: Witness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let witness = Arc::new(witness);
    let result = axum::serve(listener, router(Arc::clone(&witness)))
        .with_graceful_shutdown(shutdown)
        .await;
    // Connection tasks drop their handles to the witness just after the
    // server returns, and a store may still be finishing on a blocking
    // thread: wait (bounded) until this is the last handle, so the state
    // folder's lock is released when `serve` returns and a restart in the
    // same process can reopen it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !witness.is_sole_owner(&witness) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(witness);
    result
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut body = msg.into();
    body.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Maps a refusal to its tlog-witness status. SPEC R-WIT-3…R-WIT-6.
fn refusal(e: &AddCheckpointError) -> Response {
    match e {
        AddCheckpointError::UnknownOrigin(_) => text(StatusCode::NOT_FOUND, e.to_string()),
        AddCheckpointError::Refused(check) => match check {
            WitnessCheckError::UnknownOrigin { .. } => text(StatusCode::NOT_FOUND, e.to_string()),
            WitnessCheckError::NotSignedByLog(_) => text(StatusCode::FORBIDDEN, e.to_string()),
            WitnessCheckError::OldSizeTooLarge { .. } => {
                text(StatusCode::BAD_REQUEST, e.to_string())
            }
            // SPEC R-WIT-5: the body is the witness's size, nothing else.
            WitnessCheckError::StaleOldSize { latest_size, .. } => (
                StatusCode::CONFLICT,
                [(header::CONTENT_TYPE, TLOG_SIZE_CONTENT_TYPE)],
                format_size_body(*latest_size),
            )
                .into_response(),
            WitnessCheckError::RootMismatch { .. } => text(StatusCode::CONFLICT, e.to_string()),
            WitnessCheckError::BadProof { .. } => {
                text(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            _ => text(StatusCode::BAD_REQUEST, e.to_string()),
        },
        // 5xx say nothing internal; the operator's log has the detail.
        AddCheckpointError::Clock(_)
        | AddCheckpointError::Cosign(_)
        | AddCheckpointError::Persist(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the witness could not cosign; try again later",
        ),
        AddCheckpointError::Suspended => {
            let mut r = text(
                StatusCode::SERVICE_UNAVAILABLE,
                "this log is suspended on this witness after a storage failure",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
            r
        }
    }
}

async fn add_checkpoint(State(app): State<AppState>, req: Request) -> Response {
    let Ok(_permit) = Arc::clone(&app.in_flight).try_acquire_owned() else {
        let mut r = text(StatusCode::SERVICE_UNAVAILABLE, "witness busy; retry later");
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return r;
    };
    // SPEC R-WITSRV-6: bounded size (announced or actual), bounded time.
    let too_large = || {
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {MAX_ADD_CHECKPOINT_BYTES} bytes or was cut off"),
        )
    };
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_ADD_CHECKPOINT_BYTES as u64) {
        return too_large();
    }
    let body: Body = req.into_body();
    let read = axum::body::to_bytes(body, MAX_ADD_CHECKPOINT_BYTES);
    let bytes = match tokio::time::timeout(READ_TIMEOUT, read).await {
        Err(_) => return text(StatusCode::REQUEST_TIMEOUT, "request body took too long"),
        Ok(Err(_)) => return too_large(),
        Ok(Ok(b)) => b,
    };
    // SPEC R-WIT-3: a malformed body is 400.
    let parsed = match AddCheckpointRequest::parse(&bytes) {
        Ok(p) => p,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let timestamp = match now_seconds() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "clock");
            return refusal(&e);
        }
    };
    match app.witness.add_checkpoint(&parsed, &bytes, timestamp).await {
        Ok(lines) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            lines,
        )
            .into_response(),
        Err(e) => refusal(&e),
    }
}
