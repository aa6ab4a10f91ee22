//! The ActivityPub endpoints (SPEC R-API-41 … R-API-46): WebFinger, the
//! actor, its outbox and collections, the campaigns' Events and the inbox.
//! Decode, call [`crate::activitypub`], encode; 404 on all of them when
//! ActivityPub is off.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::error::ApiError;
use crate::AppState;
use crate::activitypub::Federation;
use crate::activitypub::documents::{self, ACTOR_NAME, RELAY_ALIAS};
use crate::activitypub::inbox::{self, Outcome};

/// Largest inbox body (an activity).
pub const MAX_INBOX_BODY: usize = 64 * 1024;

/// The routes (merged into the main router).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/webfinger", get(webfinger))
        .route("/ap/actor", get(actor))
        .route("/ap/outbox", get(outbox))
        .route("/ap/followers", get(followers))
        .route("/ap/following", get(following))
        .route("/ap/campaigns/{id}", get(event))
        .route("/ap/campaigns/{id}/{activity}", get(activity))
        .route("/ap/inbox", post(inbox))
}

fn federation(state: &AppState) -> Result<&Arc<Federation>, ApiError> {
    state
        .federation()
        .ok_or_else(|| ApiError::not_found("ActivityPub is not turned on on this server"))
}

/// A JSON answer with `content_type`, cacheable by anyone for `max_age` s.
fn document(content_type: &'static str, max_age: u32, body: &Value) -> Response {
    let mut resp = Json(body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        h.insert(header::CACHE_CONTROL, v);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

const AP: &str = "application/activity+json; charset=utf-8";

/// `GET /.well-known/webfinger?resource=…` (SPEC R-API-41).
async fn webfinger(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let fed = federation(&state)?;
    let base = fed.base();
    let resource = q
        .get("resource")
        .ok_or_else(|| ApiError::bad_request("the resource parameter is required"))?;
    let known = match resource.strip_prefix("acct:") {
        Some(acct) => acct.rsplit_once('@').is_some_and(|(user, host)| {
            (user == ACTOR_NAME || user == RELAY_ALIAS)
                && host.eq_ignore_ascii_case(base.authority())
        }),
        None => *resource == base.actor(),
    };
    if !known {
        return Err(ApiError::not_found(format!(
            "this server's only account is acct:{ACTOR_NAME}@{}",
            base.authority()
        )));
    }
    Ok(document(
        "application/jrd+json; charset=utf-8",
        3600,
        &documents::webfinger(base, resource),
    ))
}

/// `GET /ap/actor` (SPEC R-API-42).
async fn actor(State(state): State<AppState>) -> Result<Response, ApiError> {
    let fed = federation(&state)?;
    Ok(document(
        AP,
        300,
        &documents::actor(fed.base(), fed.log_origin(), fed.key().public_pem()),
    ))
}

/// `GET /ap/outbox` (SPEC R-API-43).
async fn outbox(State(state): State<AppState>) -> Result<Response, ApiError> {
    let fed = federation(&state)?;
    let all = fed.announcements(state.ledger());
    Ok(document(AP, 60, &documents::outbox(fed.base(), all)))
}

/// `GET /ap/followers` (SPEC R-API-43): the count only.
async fn followers(State(state): State<AppState>) -> Result<Response, ApiError> {
    let fed = federation(&state)?;
    Ok(document(
        AP,
        60,
        &documents::counted_collection(&fed.base().followers(), fed.followers()),
    ))
}

/// `GET /ap/following`: always empty.
async fn following(State(state): State<AppState>) -> Result<Response, ApiError> {
    let fed = federation(&state)?;
    Ok(document(
        AP,
        3600,
        &documents::counted_collection(&fed.base().following(), 0),
    ))
}

/// `GET /ap/campaigns/<id>`: the campaign's Event as it stands.
async fn event(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let fed = federation(&state)?;
    let id = super::campaign_id(&id)?;
    let ev = fed
        .campaign_event(state.ledger(), &id)
        .ok_or_else(ApiError::unknown_campaign)?;
    Ok(document(AP, 60, &ev))
}

/// `GET /ap/campaigns/<id>/<activity>`: one announcing activity.
async fn activity(
    State(state): State<AppState>,
    Path((id, slug)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let fed = federation(&state)?;
    let id = super::campaign_id(&id)?;
    let want = format!("{}/{slug}", fed.base().event(&id.to_hex()));
    let a = fed
        .announcements(state.ledger())
        .into_iter()
        .find(|a| a.id == want)
        .ok_or_else(|| ApiError::not_found("no such activity"))?;
    Ok(document(AP, 3600, &a.activity))
}

/// `POST /ap/inbox` (SPEC R-API-44 … R-API-46): 202 once a follow is
/// stored or removed; a typed error otherwise, logged without the sender.
async fn inbox(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let fed = federation(&state)?.clone();
    let (parts, body) = req.into_parts();
    if parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_INBOX_BODY as u64)
    {
        return Err(ApiError::too_large(MAX_INBOX_BODY));
    }
    let body: Bytes = axum::body::to_bytes(body, MAX_INBOX_BODY)
        .await
        .map_err(|_| ApiError::too_large(MAX_INBOX_BODY))?;
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let request = inbox::Request {
        method: parts.method.as_str(),
        path_and_query: &path,
        headers: &parts.headers,
        body: &body,
    };
    match inbox::receive(&fed, &request, SystemTime::now()).await {
        Ok(outcome) => {
            let what = match outcome {
                Outcome::Followed => "follow",
                Outcome::Unfollowed => "undo",
            };
            Ok((StatusCode::ACCEPTED, Json(json!({ "accepted": what }))).into_response())
        }
        Err(e) => {
            fed.record_refused();
            tracing::info!("the ActivityPub inbox refused a request: {}", e.kind());
            Err(e.into())
        }
    }
}
