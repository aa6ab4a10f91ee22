//! HTTP routes and handlers: decode the request, call the ledger or the issuer,
//! encode the answer. Status codes come from [`error`] only. No access log is
//! kept and nothing about the requester is logged (DESIGN P1, P6). SPEC §12.
//!
//! The JSON bodies are the types of [`pledge_protocol::api`] (binary fields
//! as standard padded base64, ids as 64 lower-case hex digits, request
//! bodies refusing unknown fields and arrays in place of objects); this
//! module only moves them between HTTP and the ledger or the issuer.

pub mod activitypub;
pub mod error;
pub mod pages;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::Stream;
use pledge_protocol::api::{
    self, BlindSignature, BlindSignatures, Campaign, CampaignCreated, CampaignList, CampaignState,
    CheckpointEvent, EmailCodeRequest, EmailCodeSent, EntryAccepted, EntrySubmission,
    InvitesMinted, InvitesRevoked, NewCampaign, NewInvites, TallyEvent, TallySummary,
    TokenRequest as TokenRequestBody, WitnessPolicy,
};
use pledge_protocol::campaign::{CampaignParams, RevealPolicy};
use pledge_protocol::entry::Entry;
use pledge_protocol::hash::CampaignId;
use pledge_protocol::tile::{BundleId, TileId, TileResource, encode_bundle};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tower_http::timeout::TimeoutLayer;

use self::error::ApiError;
use crate::AppState;
use crate::campaigns::CreateError;
use crate::issuer::AdminError;
use crate::issuer::{Attestation, TokenRequest};
use crate::ledger::{Figures, LogEvent, Phase, Proposal, SubmitError, TallyView, unix_now};
use crate::serve::ClientIp;

/// Body size limits (SPEC R-API-3), defined once in the wire API.
pub use pledge_protocol::api::{MAX_ADMIN_BODY, MAX_ENTRY_BODY, MAX_TOKENS_BODY};
/// Requests (other than the event stream) that take longer are cut off.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

const TEXT: &str = "text/plain; charset=utf-8";

/// All routes.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/log/checkpoint", get(checkpoint))
        .route("/log/tile/{*path}", get(tile))
        .route("/v1/log/key", get(log_key))
        .route("/v1/log/witnesses", get(log_witnesses))
        .route("/v1/campaigns", get(list_campaigns).post(create_campaign))
        .route("/v1/campaigns/{id}", get(get_campaign))
        .route("/v1/campaigns/{id}/tally", get(get_tally))
        // SPEC R-API-24: Atom feeds of the list and of each campaign.
        .route("/v1/feed.atom", get(list_feed))
        .route("/v1/campaigns/{id}/feed.atom", get(campaign_feed))
        // SPEC R-API-19: a token answer closes its connection, so that no
        // later request (a pledge) can arrive on the same one.
        .route(
            "/v1/tokens",
            post(tokens).layer(axum::middleware::map_response(close_connection)),
        )
        .route(
            "/v1/attest/email",
            post(attest_email).layer(axum::middleware::map_response(close_connection)),
        )
        .route("/v1/admin/invites", get(list_invites).post(invites))
        .route("/v1/admin/invites/{group}", delete(revoke_invites))
        .route("/v1/admin/campaigns/{id}/close", post(close_campaign))
        // SPEC R-API-33: a later deadline, texts in other languages.
        .route("/v1/admin/campaigns/{id}/update", post(update_campaign))
        .layer(TimeoutLayer::with_status_code(
            error::TIMEOUT_STATUS,
            REQUEST_TIMEOUT,
        ));
    // Pledge entries may wait for their publication group (SPEC R-PUB-1):
    // their timeout covers the hold and the publication delay.
    let entry_timeout = REQUEST_TIMEOUT + state.inner.publish_max_hold + Duration::from_secs(15);
    let entries = Router::new()
        .route("/v1/pledges", post(pledge))
        .route("/v1/pledges/amend", post(amend))
        .route("/v1/pledges/withdraw", post(withdraw))
        // SPEC R-API-51: the trustees' key generation of a sealed campaign.
        .route("/v1/campaigns/{id}/trustee-messages", post(trustee_message))
        .layer(TimeoutLayer::with_status_code(
            error::TIMEOUT_STATUS,
            entry_timeout,
        ));
    Router::new()
        .route("/v1/events", get(events))
        .merge(api)
        .merge(entries)
        .merge(pages::router())
        // SPEC R-API-41 … R-API-46 (404 unless turned on).
        .merge(activitypub::routes().layer(TimeoutLayer::with_status_code(
            error::TIMEOUT_STATUS,
            REQUEST_TIMEOUT,
        )))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            leader_writes,
        ))
        .with_state(state)
}

/// SPEC R-STORE-10: a campaign's creation, update or close needs the
/// sequencer; a front end that does not sequence hands the request, as it
/// came, to the one that does (entries are handed over after their checks,
/// in [`submit_entry`]).
async fn leader_writes(
    State(state): State<AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path();
    let sequenced = req.method() == Method::POST
        && (path == "/v1/campaigns" || path.starts_with("/v1/admin/campaigns/"));
    if !sequenced || state.inner.cluster.is_leader() {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let headers = req.headers().clone();
    let body = match body_of(req, MAX_ADMIN_BODY).await {
        Ok((b, _)) => b,
        Err(e) => return e.into_response(),
    };
    forward(&state, method, &path, &headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Hands a write to the front end that sequences and returns its answer;
/// `503 leader_unavailable` if it cannot be reached, or if this request was
/// itself handed over (the sender believes this front end leads: it no
/// longer does, and requests are never handed on twice).
async fn forward(
    state: &AppState,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if headers.contains_key(crate::cluster::FORWARDED_HEADER) {
        return Err(SubmitError::NotLeader.into());
    }
    state
        .inner
        .cluster
        .forward(method, path, headers, body)
        .await
        .map_err(|_| SubmitError::NotLeader.into())
}

async fn close_connection(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

// ---------------------------------------------------------------------------
// Decoding helpers
// ---------------------------------------------------------------------------

/// Reads the body up to `limit` bytes and the client address (if served by
/// [`crate::serve`]: the peer, or what a trusted proxy forwarded). The
/// address is used only by the open attester's in-memory rate limit.
async fn body_of(req: Request, limit: usize) -> Result<(Bytes, Option<IpAddr>), ApiError> {
    let addr = req.extensions().get::<ClientIp>().map(|c| c.0).or_else(|| {
        req.extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
    });
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(ApiError::too_large(limit));
    }
    let bytes = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| {
            // The only other failure is a broken connection.
            if e.to_string().contains("length limit") {
                ApiError::too_large(limit)
            } else {
                ApiError::body_unreadable()
            }
        })?;
    Ok((bytes, addr))
}

/// Decodes a request body with the wire API's strict decoder (unknown and
/// duplicate fields, arrays in place of objects: 400).
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    api::decode_request(bytes).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The JSON answer `v`, its keys in sorted order (as the handlers have
/// always written these answers, with `serde_json::json!`).
fn sorted_json<T: Serialize>(v: &T) -> Result<Json<serde_json::Value>, ApiError> {
    serde_json::to_value(v)
        .map(Json)
        .map_err(|_| ApiError::internal())
}

fn campaign_id(s: &str) -> Result<CampaignId, ApiError> {
    api::parse_campaign_id(s)
        .ok_or_else(|| ApiError::bad_request("campaign ids are 64 lower-case hex digits"))
}

fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(ApiError::unauthorized)?;
    if state.inner.admin.matches(presented.trim()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

fn text(body: String, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(TEXT)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body,
    )
        .into_response()
}

// ---------------------------------------------------------------------------
// Service endpoints
// ---------------------------------------------------------------------------

async fn healthz(State(state): State<AppState>) -> Response {
    if state.inner.ledger.has_failed() {
        return ApiError::failed().into_response();
    }
    text("ok\n".into(), "no-store")
}

/// `GET /metrics` on the main listener: 404 when a separate metrics listener
/// is configured, otherwise only with the admin token (SPEC §12).
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.inner.metrics_listen.is_some() {
        return ApiError::not_found("metrics are served on the metrics listener only")
            .into_response();
    }
    if let Err(e) = require_admin(&state, &headers) {
        return e.into_response();
    }
    metrics_text(&state)
}

/// The metrics router of the separate metrics listener (`metrics_listen`).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(state): State<AppState>| async move { metrics_text(&state) }),
        )
        .fallback(|| async { ApiError::not_found("this listener serves /metrics only") })
        .with_state(state)
}

fn metrics_text(state: &AppState) -> Response {
    let now = unix_now();
    let (size, open) = {
        let view = state.inner.ledger.published();
        let open = view
            .campaigns()
            .filter(|(_, c)| c.phase(now) == Phase::Open)
            .count();
        (view.size(), open as u64)
    };
    let mut body = state.inner.metrics.render(
        size,
        open,
        state.inner.sequencer.queued(),
        state.inner.ledger.tally_failures(),
    );
    // SPEC R-API-47: delivery counters, when ActivityPub is on.
    if let Some(fed) = state.federation() {
        body.push_str(&fed.render_metrics());
    }
    body.push_str(&format!(
        "# HELP pledged_batch_commit_seconds_total Time spent in the store's durable commits of \
         batches (part of pledged_batch_seconds_total).\n# TYPE pledged_batch_commit_seconds_total \
         counter\npledged_batch_commit_seconds_total {:.6}\n",
        state.inner.ledger.commit_seconds()
    ));
    // SPEC R-STORE-10: which front end of a cluster writes the log.
    body.push_str(&format!(
        "# HELP pledged_sequencing 1 while this front end sequences the log (always 1 \
         without PostgreSQL).\n# TYPE pledged_sequencing gauge\npledged_sequencing {}\n",
        u8::from(state.inner.cluster.is_leader())
    ));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

// ---------------------------------------------------------------------------
// Log read API (C2SP tlog-tiles)
// ---------------------------------------------------------------------------

async fn checkpoint(State(state): State<AppState>) -> Response {
    let note = state.inner.ledger.published().checkpoint();
    text(note.to_string(), "no-cache")
}

async fn log_key(State(state): State<AppState>) -> Response {
    text(
        format!("{}\n", state.inner.ledger.verifier().to_text()),
        "public, max-age=3600",
    )
}

/// SPEC R-API-22: the witnesses this log pushes to and the quorum clients
/// should require, for clients to pin with the log key.
async fn log_witnesses(State(state): State<AppState>) -> Response {
    let (keys, quorum) = &state.inner.witness_policy;
    let policy = WitnessPolicy {
        quorum: *quorum,
        witnesses: keys.clone(),
    };
    let mut r = Json(policy).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

async fn tile(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let resource = TileResource::parse(&format!("tile/{path}"))
        .map_err(|e| ApiError::not_found(format!("not a tile path: {e}")))?;
    let size = state.inner.ledger.published().size();
    let store = state.inner.ledger.store().clone();
    let (data, full) = match resource {
        TileResource::Hashes(t) => {
            let (start, end) = tile_span(&t);
            // SPEC R-TILE-4: only tiles the published tree contains.
            let available = size.checked_shr(8 * u32::from(t.level())).unwrap_or(0);
            if end > available {
                return Err(ApiError::not_found("tile beyond the published tree"));
            }
            let level = t.level() * 8;
            let hashes = tokio::task::spawn_blocking(move || store.hashes(level, start, end))
                .await
                .map_err(|_| ApiError::internal())?
                .map_err(|e| {
                    // The store is down (503, retry), not this request.
                    tracing::error!("reading a tile failed: {e}");
                    ApiError::from(SubmitError::Storage)
                })?;
            let mut out = Vec::with_capacity(hashes.len() * 32);
            for h in &hashes {
                out.extend_from_slice(h.as_bytes());
            }
            (out, t.is_full())
        }
        TileResource::Entries(b) => {
            let (start, end) = bundle_span(&b);
            if end > size {
                return Err(ApiError::not_found(
                    "entry bundle beyond the published tree",
                ));
            }
            let entries = tokio::task::spawn_blocking(move || store.entries(start, end))
                .await
                .map_err(|_| ApiError::internal())?
                .map_err(|e| {
                    // The store is down (503, retry), not this request.
                    tracing::error!("reading an entry bundle failed: {e}");
                    ApiError::from(SubmitError::Storage)
                })?;
            let data = encode_bundle(&entries).map_err(|_| ApiError::internal())?;
            (data, b.is_full())
        }
    };
    let cache = if full {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=60"
    };
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        data,
    )
        .into_response())
}

/// Node indexes `[start, end)` at the tile's tree level.
fn tile_span(t: &TileId) -> (u64, u64) {
    let start = t.index().saturating_mul(256);
    (start, start.saturating_add(u64::from(t.width())))
}

fn bundle_span(b: &BundleId) -> (u64, u64) {
    let start = b.index().saturating_mul(256);
    (start, start.saturating_add(u64::from(b.width())))
}

// ---------------------------------------------------------------------------
// Campaigns
// ---------------------------------------------------------------------------

impl From<&TallyView> for TallySummary {
    fn from(t: &TallyView) -> Self {
        // SPEC R-API-49: a sealed campaign's summary has its count of
        // entries and no live or active count.
        match t.figures {
            Figures::Live { live, active } => Self {
                checkpoint_size: t.checkpoint_size,
                live,
                active,
                entries: None,
            },
            Figures::Sealed { entries } => Self {
                checkpoint_size: t.checkpoint_size,
                live: 0,
                active: 0,
                entries: Some(entries),
            },
        }
    }
}

impl From<Phase> for CampaignState {
    fn from(p: Phase) -> Self {
        match p {
            Phase::Open => Self::Open,
            Phase::Closing => Self::Closing,
            Phase::Closed => Self::Closed,
        }
    }
}

fn campaign_json(state: &AppState, id: &CampaignId) -> Option<Campaign> {
    let now = unix_now();
    let view = state.inner.ledger.published();
    let c = view.campaign(id)?;
    let d = &c.definition;
    let policy = state.inner.issuer.policy(id);
    Some(Campaign {
        campaign_id: *id,
        title: d.title().to_owned(),
        text: d.text().to_owned(),
        action: d.action().to_owned(),
        // SPEC R-API-34: the effective deadline, the original when extended,
        // and the organiser's texts.
        deadline: c.deadline(),
        original_deadline: (c.deadline() != d.deadline()).then_some(d.deadline()),
        texts: text_specs(&c.updates),
        goal: d.goal(),
        threshold_min: d.threshold_min(),
        threshold_max: d.threshold_max(),
        reveal: match d.reveal() {
            RevealPolicy::Live => "live",
            RevealPolicy::Sealed => "sealed",
            _ => "other",
        }
        .to_owned(),
        state: c.phase(now).into(),
        attester: policy.as_ref().map(api::AttesterPolicy::kind),
        invite_group: match &policy {
            Some(api::AttesterPolicy::Invite { group }) => Some(group.clone()),
            _ => None,
        },
        email_domains: match policy {
            Some(api::AttesterPolicy::Email { domains }) => domains,
            _ => None,
        },
        definition: B64.encode(d.encode()),
        issuer_key: B64.encode(c.issuer_key.as_spki()),
        opened_index: Some(c.opened_at),
        closed_index: c.closed_at,
        tally: c.tally.as_deref().map(TallySummary::from),
        publication: Some(state.inner.ledger.publication(id)),
        funding: d.funding().map(api::FundingSpec::of),
        // SPEC R-API-49: the sealed block and the joint key once logged.
        sealed: d.sealed_block().map(|s| {
            let spec = api::SealedSpec::of(s);
            api::SealedInfo {
                buckets: spec.buckets,
                k: spec.k,
                trustees: spec.trustees,
                reveals: spec.reveals,
                joint_key: c.joint_key.as_ref().map(|k| hex::encode(k.to_bytes())),
                // SPEC R-API-53
                revealed: c
                    .reveal_work
                    .iter()
                    .flat_map(|w| &w.revealed)
                    .map(|(snapshot, counts)| {
                        let tally = pledge_protocol::tally::Tally::from_histogram(
                            d.threshold_max(),
                            s.buckets()
                                .iter()
                                .zip(counts)
                                .filter(|(_, n)| **n > 0)
                                .map(|(b, n)| (*b, *n)),
                        )
                        .ok();
                        api::RevealedInfo {
                            snapshot: *snapshot,
                            counts: counts.clone(),
                            live: counts.iter().sum(),
                            active: tally.map_or(0, |t| t.active()),
                        }
                    })
                    .collect(),
            }
        }),
    })
}

/// A campaign's texts as the API writes them (SPEC R-API-34), ascending by
/// language tag.
fn text_specs(u: &pledge_protocol::update::CampaignUpdates) -> Vec<api::CampaignTextSpec> {
    u.texts()
        .values()
        .map(|t| api::CampaignTextSpec {
            lang: t.lang().to_owned(),
            title: t.title().to_owned(),
            text: t.text().to_owned(),
        })
        .collect()
}

async fn list_campaigns(State(state): State<AppState>) -> Response {
    let mut ids: Vec<(u64, CampaignId)> = {
        let view = state.inner.ledger.published();
        view.campaigns().map(|(id, c)| (c.opened_at, *id)).collect()
    };
    ids.sort();
    let list = CampaignList {
        campaigns: ids
            .iter()
            .filter_map(|(_, id)| campaign_json(&state, id))
            .collect(),
    };
    match sorted_json(&list) {
        Ok(json) => json.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn get_campaign(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = campaign_id(&id)?;
    let c = campaign_json(&state, &id).ok_or_else(ApiError::unknown_campaign)?;
    Ok(Json(c).into_response())
}

async fn get_tally(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = campaign_id(&id)?;
    let view = state.inner.ledger.published();
    let Some(t) = view.tally(&id) else {
        if view.campaign(&id).is_some() {
            // Signing failed (logged and counted): say so, never serve an
            // older statement as the current one.
            return Err(ApiError::tally_unavailable());
        }
        return Err(ApiError::unknown_campaign());
    };
    drop(view);
    Ok(text(t.note.to_string(), "no-cache"))
}

// ---------------------------------------------------------------------------
// Feeds (SPEC R-API-24 … R-API-27)
// ---------------------------------------------------------------------------

/// A feed answer (SPEC R-API-25): the Atom content type, a public cache
/// lifetime, a strong ETag of the body and 304 on a matching
/// `If-None-Match`. No cookie; nothing about the request is looked at or
/// kept beyond that header.
fn atom(headers: &HeaderMap, body: String) -> Response {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(body.as_bytes());
    let tag = format!("\"{}\"", hex::encode(d.get(..16).unwrap_or(&d[..])));
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag);
    let mut resp = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        body.into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::feed::ATOM),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(crate::feed::FEED_CACHE),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // A browser that opens a feed runs and loads nothing from it.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    resp
}

/// `GET /v1/campaigns/<id>/feed.atom` (SPEC R-API-24).
async fn campaign_feed(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = campaign_id(&id)?;
    let view = state.inner.ledger.published();
    let c = view.campaign(&id).ok_or_else(ApiError::unknown_campaign)?;
    let history = state
        .inner
        .ledger
        .feed_history(&id)
        .ok_or_else(ApiError::internal)?;
    let origin = state.inner.ledger.verifier().name().as_str().to_owned();
    let body = crate::feed::campaign_feed(&origin, &crate::feed::campaign_view(id, c, &history));
    drop(view);
    Ok(atom(&headers, body))
}

/// `GET /v1/feed.atom` (SPEC R-API-24): the list's openings and closes.
async fn list_feed(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let view = state.inner.ledger.published();
    let histories: Vec<_> = view
        .campaigns()
        .filter_map(|(id, c)| Some((*id, c, state.inner.ledger.feed_history(id)?)))
        .collect();
    let campaigns: Vec<_> = histories
        .iter()
        .map(|(id, c, h)| crate::feed::campaign_view(*id, c, h))
        .collect();
    let origin = state.inner.ledger.verifier().name().as_str().to_owned();
    let body = crate::feed::list_feed(&origin, &campaigns);
    atom(&headers, body)
}

async fn create_campaign(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    require_admin(&state, req.headers())?;
    let (body, _) = body_of(req, MAX_ADMIN_BODY).await?;
    let c: NewCampaign = parse_json(&body)?;
    let bad = |e: String| CreateError::Admin(AdminError::BadCampaign(e));
    // SPEC R-API-23: the funding extension is checked like the definition.
    let funding = c
        .funding
        .as_ref()
        .map(api::FundingSpec::to_funding)
        .transpose()
        .map_err(|e| bad(e.to_string()))?;
    // SPEC R-API-48: the sealed block likewise; not with funding.
    let sealed = c
        .sealed
        .as_ref()
        .map(api::SealedSpec::to_sealed)
        .transpose()
        .map_err(|e| bad(e.to_string()))?;
    if funding.is_some() && sealed.is_some() {
        return Err(bad(
            "a campaign is not both sealed and funding: give `funding` or `sealed`, not both"
                .into(),
        )
        .into());
    }
    let params = CampaignParams {
        nonce: [0; 16],
        title: c.title,
        text: c.text,
        action: c.action,
        deadline: c.deadline,
        goal: c.goal,
        threshold_min: c.threshold_min,
        threshold_max: c.threshold_max,
        reveal: if sealed.is_some() {
            RevealPolicy::Sealed
        } else {
            RevealPolicy::Live
        },
    };
    let new = crate::campaigns::NewCampaign {
        params,
        attester: c.attester,
        publication: c.publication.unwrap_or(state.inner.publication_default),
        funding,
        sealed,
    };
    let inner = &state.inner;
    let (id, accepted) = crate::campaigns::create(
        &inner.issuer,
        &inner.ledger,
        &inner.sequencer,
        new,
        unix_now(),
    )
    .await
    .inspect_err(|e| {
        if matches!(e, CreateError::Submit(SubmitError::QueueFull)) {
            inner.metrics.record_queue_full();
        }
    })?;
    let created = CampaignCreated {
        campaign_id: id.to_hex(),
        index: accepted.index,
        checkpoint_size: accepted.size,
        receipt: accepted.receipt,
    };
    Ok((StatusCode::CREATED, sorted_json(&created)?).into_response())
}

async fn invites(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    require_admin(&state, req.headers())?;
    let (body, _) = body_of(req, MAX_ADMIN_BODY).await?;
    let n: NewInvites = parse_json(&body)?;
    let issuer = state.inner.issuer.clone();
    let group = n.group.clone();
    let codes = tokio::task::spawn_blocking(move || issuer.mint_invites(&group, n.count))
        .await
        .map_err(|_| ApiError::internal())??;
    let campaigns = state.inner.issuer.group_campaigns(&n.group);
    let minted = InvitesMinted {
        group: n.group,
        codes,
        campaigns: u32::try_from(campaigns).unwrap_or(u32::MAX),
    };
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        sorted_json(&minted)?,
    )
        .into_response())
}

/// `GET /v1/admin/invites` (SPEC R-API-37 … R-API-39): per invite group,
/// how many codes are unused and how many open campaigns take them.
async fn list_invites(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let issuer = state.inner.issuer.clone();
    let groups = tokio::task::spawn_blocking(move || issuer.invite_groups())
        .await
        .map_err(|_| ApiError::internal())??;
    let answer = api::InviteGroups {
        groups: groups
            .into_iter()
            .map(|g| api::InviteGroup {
                group: g.group,
                unused: g.unused,
                campaigns: u32::try_from(g.campaigns).unwrap_or(u32::MAX),
            })
            .collect(),
    };
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        sorted_json(&answer)?,
    )
        .into_response())
}

/// `DELETE /v1/admin/invites/<group>`: deletes the group's unused codes.
async fn revoke_invites(
    State(state): State<AppState>,
    Path(group): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let issuer = state.inner.issuer.clone();
    let g = group.clone();
    let deleted = tokio::task::spawn_blocking(move || issuer.revoke_invites(&g))
        .await
        .map_err(|_| ApiError::internal())??;
    Ok(sorted_json(&InvitesRevoked { group, deleted })?.into_response())
}

/// `POST /v1/admin/campaigns/<id>/close` (SPEC R-API-32): closes an open
/// campaign now, as its deadline would: issuance stops, the CampaignClosed
/// entry is logged with the final tally, the issuer state is deleted.
async fn close_campaign(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let id = campaign_id(&id)?;
    // SPEC R-SEAL-88: a sealed campaign closes like any other; its close
    // is the final snapshot, which its trustees then reveal.
    let phase = state
        .inner
        .ledger
        .published()
        .campaign(&id)
        .map(|c| c.phase(unix_now()))
        .ok_or_else(ApiError::unknown_campaign)?;
    if phase == Phase::Closed {
        return Err(pledge_protocol::ledger::RuleError::CampaignClosed.into());
    }
    let index = crate::close_one(&state.inner.issuer, &state.inner.sequencer, id)
        .await
        .map_err(|e| match e {
            crate::CloseError::AlreadyClosed => {
                pledge_protocol::ledger::RuleError::CampaignClosed.into()
            }
            crate::CloseError::Submit(e) => e.into(),
            crate::CloseError::Counter(_) => ApiError::failed(),
        })?;
    Ok(sorted_json(&serde_json::json!({
        "campaign_id": id.to_hex(),
        "closed_index": index,
    }))?
    .into_response())
}

/// `POST /v1/admin/campaigns/<id>/update` (SPEC R-API-33): logs a
/// CampaignUpdated entry with a later deadline and/or texts in other
/// languages, through the sequencer, and answers once it is durable.
async fn update_campaign(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    use pledge_protocol::update::{CampaignText, CampaignUpdated};
    require_admin(&state, req.headers())?;
    let id = campaign_id(&id)?;
    let (body, _) = body_of(req, MAX_ADMIN_BODY).await?;
    let u: api::CampaignUpdate = parse_json(&body)?;
    let number = {
        let view = state.inner.ledger.published();
        let c = view.campaign(&id).ok_or_else(ApiError::unknown_campaign)?;
        match c.phase(unix_now()) {
            Phase::Open => {}
            Phase::Closed => return Err(pledge_protocol::ledger::RuleError::CampaignClosed.into()),
            // SPEC R-RULE-14: a campaign past its deadline is never reopened.
            Phase::Closing => return Err(SubmitError::DeadlinePassed.into()),
        }
        c.updates.count().saturating_add(1)
    };
    // SPEC R-CAMP-7, R-CAMP-9, R-ENTRY-9: the same checks as the decoder's.
    let texts = u
        .texts
        .into_iter()
        .map(|t| {
            let lang = t.lang.clone();
            CampaignText::new(t.lang, t.title, t.text)
                .map_err(|e| ApiError::bad_request(format!("texts: language {lang:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let update = CampaignUpdated::new(id, number, u.deadline, texts)
        .map_err(|e| ApiError::bad_request(format!("update: {e}")))?;
    let entry =
        pledge_protocol::ledger::VerifiedEntry::verify(Entry::CampaignUpdated(update), None, None)?;
    let inner = &state.inner;
    let accepted = inner
        .sequencer
        .submit(Proposal::Entry(Box::new(entry)), Vec::new())
        .await
        .inspect_err(|e| {
            if matches!(e, SubmitError::QueueFull) {
                inner.metrics.record_queue_full();
            }
        })?;
    // The view is published before the sequencer answers.
    let view = inner.ledger.published();
    let c = view.campaign(&id).ok_or_else(ApiError::internal)?;
    let done = api::CampaignUpdateAccepted {
        campaign_id: id,
        update: number,
        index: accepted.index,
        deadline: c.deadline(),
        languages: c.updates.texts().keys().cloned().collect(),
    };
    drop(view);
    Ok(sorted_json(&done)?.into_response())
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

/// Decodes a token request body: everything the handler checks before it
/// touches any state.
fn decode_tokens(body: &[u8]) -> Result<(api::Attestation, Vec<TokenRequest>), ApiError> {
    let t: TokenRequestBody = parse_json(body)?;
    let requests = t
        .requests
        .into_iter()
        .map(|r| TokenRequest {
            campaign: r.campaign_id,
            blinded: r.blinded_msg,
        })
        .collect();
    Ok((t.attestation, requests))
}

async fn tokens(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let headers = req.headers().clone();
    let (body, addr) = body_of(req, MAX_TOKENS_BODY).await?;
    let (attestation, requests) = decode_tokens(&body)?;
    if matches!(attestation, api::Attestation::Email { .. }) && !state.inner.cluster.is_leader() {
        // SPEC R-STORE-10: e-mail codes are pending on the sequencing front
        // end only (R-API-29).
        return forward(&state, Method::POST, "/v1/tokens", &headers, body).await;
    }
    let attestation = match attestation {
        api::Attestation::Open => Attestation::Open { addr },
        api::Attestation::Invite { code } => Attestation::Invite { code },
        api::Attestation::Email { address, code } => Attestation::Email { address, code },
    };
    let st = state.clone();
    let result = tokio::task::spawn_blocking(move || {
        st.inner
            .issuer
            .issue(&st.inner.ledger, &attestation, &requests, unix_now())
            .map(|sigs| (sigs, requests))
    })
    .await
    .map_err(|_| ApiError::internal())?;
    let (sigs, requests) = match result {
        Ok(x) => x,
        Err(e) => {
            if matches!(e, crate::issuer::IssueError::RateLimited { .. }) {
                state.inner.metrics.record_rate_limited();
            }
            state.inner.metrics.record_token_refused();
            return Err(e.into());
        }
    };
    state.inner.metrics.record_tokens(sigs.len() as u64);
    let out = BlindSignatures {
        blind_signatures: requests
            .iter()
            .zip(&sigs)
            .map(|(r, s)| BlindSignature {
                campaign_id: r.campaign,
                blind_sig: s.as_bytes().to_vec(),
            })
            .collect(),
    };
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        sorted_json(&out)?,
    )
        .into_response())
}

/// `POST /v1/attest/email` (SPEC R-API-29): checks, sends a one-time code
/// to the address, answers 202 once the relay took it. The address is only
/// in this request's memory and, while the code is pending, nowhere (the
/// pending code is filed under a keyed hash); nothing is logged about it.
async fn attest_email(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let headers = req.headers().clone();
    let (body, _) = body_of(req, MAX_TOKENS_BODY).await?;
    let r: EmailCodeRequest = parse_json(&body)?;
    if !state.inner.cluster.is_leader() {
        // SPEC R-STORE-10: one front end keeps the pending codes and the
        // limits of the whole cluster, the sequencing one.
        drop(r);
        return forward(&state, Method::POST, "/v1/attest/email", &headers, body).await;
    }
    let issuer = &state.inner.issuer;
    let ticket = issuer
        .prepare_email_code(&state.inner.ledger, &r.address, &r.campaigns, unix_now())
        .inspect_err(|e| {
            if matches!(e, crate::issuer::IssueError::RateLimited { .. }) {
                state.inner.metrics.record_rate_limited();
            }
        })?;
    drop(r);
    issuer.email().deliver(ticket).await?;
    let s = issuer.email().settings();
    let sent = EmailCodeSent {
        expires_in: s.code_ttl.as_secs(),
        attempts: s.max_attempts.max(1),
    };
    Ok((
        StatusCode::ACCEPTED,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        sorted_json(&sent)?,
    )
        .into_response())
}

// ---------------------------------------------------------------------------
// Pledges
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Kind {
    Pledge,
    Amend,
    Withdraw,
    /// A trustee message for this campaign (SPEC R-API-51).
    Trustee(CampaignId),
}

/// Decodes a pledge, amendment or withdrawal body into an entry.
fn decode_entry(body: &[u8]) -> Result<Entry, ApiError> {
    let e: EntrySubmission = parse_json(body)?;
    Entry::decode(&e.entry).map_err(|e| ApiError::malformed_entry(e.to_string()))
}

/// The JSON request bodies of the API, for [`decode_request_body`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestBody {
    /// `POST /v1/tokens`.
    Tokens,
    /// `POST /v1/pledges`, `/v1/pledges/amend`, `/v1/pledges/withdraw`.
    Entry,
    /// `POST /v1/campaigns` (admin).
    NewCampaign,
    /// `POST /v1/admin/invites` (admin).
    NewInvites,
    /// `POST /v1/attest/email`.
    EmailCode,
}

/// Decodes a request body exactly as its handler does before touching any
/// state (no ledger, issuer or clock involved): for fuzzing and tests.
///
/// # Errors
/// The 400 [`ApiError`] the handler would answer.
pub fn decode_request_body(kind: RequestBody, body: &[u8]) -> Result<(), ApiError> {
    match kind {
        RequestBody::Tokens => decode_tokens(body).map(|_| ()),
        RequestBody::Entry => decode_entry(body).map(|_| ()),
        RequestBody::NewCampaign => parse_json::<NewCampaign>(body).map(|_| ()),
        RequestBody::NewInvites => parse_json::<NewInvites>(body).map(|_| ()),
        RequestBody::EmailCode => parse_json::<EmailCodeRequest>(body).map(|_| ()),
    }
}

async fn submit_entry(state: AppState, req: Request, kind: Kind) -> Result<Response, ApiError> {
    if state.inner.ledger.has_failed() {
        return Err(ApiError::failed());
    }
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let headers = req.headers().clone();
    // The route's own timeout also covers the publication hold (R-PUB-1);
    // reading the body gets the ordinary one, so a slow body is cut as
    // early as on any other endpoint.
    let (body, _) = tokio::time::timeout(REQUEST_TIMEOUT, body_of(req, MAX_ENTRY_BODY))
        .await
        .map_err(|_| ApiError::timeout())??;
    let entry = decode_entry(&body)?;
    let ok = matches!(
        (kind, &entry),
        (Kind::Pledge, Entry::Pledge(_) | Entry::SealedPledge(_))
            | (
                Kind::Amend,
                Entry::PledgeAmended(_) | Entry::SealedAmended(_)
            )
            | (Kind::Withdraw, Entry::PledgeWithdrawn(_))
            | (
                Kind::Trustee(_),
                Entry::TrusteeMessage(_) | Entry::DecryptionShares(_)
            )
    );
    if !ok {
        return Err(SubmitError::WrongKind {
            expected: match kind {
                Kind::Pledge => "Pledge",
                Kind::Amend => "PledgeAmended",
                Kind::Withdraw => "PledgeWithdrawn",
                Kind::Trustee(_) => "TrusteeMessage or DecryptionShares",
            },
        }
        .into());
    }
    // SPEC R-API-51: a trustee message names the campaign of its path.
    if let Kind::Trustee(id) = kind
        && entry.campaign() != id
    {
        return Err(ApiError::bad_request(
            "the trustee message is for another campaign than the one in the path",
        ));
    }
    // Signature checks (RSA for pledges) off the async threads.
    let entry = state
        .inner
        .ledger
        .precheck_on_pool(entry)
        .await
        .map_err(|_| ApiError::internal())??;
    // SPEC R-STORE-10: another front end sequences; it checks the entry
    // again (no front end takes another's word for a signature).
    if !state.inner.cluster.is_leader() {
        let answer = forward(&state, Method::POST, &path, &headers, body).await?;
        return Ok(after_handing_over(&state, answer).await);
    }
    let accepted = state
        .inner
        .sequencer
        .submit(Proposal::Entry(Box::new(entry)), Vec::new())
        .await
        .inspect_err(|e| {
            if *e == SubmitError::QueueFull {
                state.inner.metrics.record_queue_full();
            }
        })?;
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(EntryAccepted {
            index: accepted.index,
            checkpoint_size: accepted.size,
            receipt: accepted.receipt,
        }),
    )
        .into_response())
}

/// Longest wait of a follower for its view to show an entry it handed
/// over (several of its polls).
const READ_YOUR_WRITES: Duration = Duration::from_secs(2);

/// SPEC R-STORE-10: the sequencer's answer to an entry this front end
/// handed over, given back once this front end serves the checkpoint the
/// receipt names (it reads the log at once instead of at its next poll), so
/// that a client reading this front end next sees its own entry. After
/// [`READ_YOUR_WRITES`] the answer goes back anyway: the entry is durable
/// and its receipt verifies on its own.
async fn after_handing_over(state: &AppState, answer: Response) -> Response {
    if answer.status() != StatusCode::OK {
        return answer;
    }
    let (parts, body) = answer.into_parts();
    // Already in memory (the whole answer was read when it was handed back).
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::internal().into_response();
    };
    if let Ok(accepted) = serde_json::from_slice::<EntryAccepted>(&bytes) {
        let ledger = &state.inner.ledger;
        if ledger.published().size() < accepted.checkpoint_size {
            state.inner.sequencer.wake();
            ledger
                .published_at_least(accepted.checkpoint_size, READ_YOUR_WRITES)
                .await;
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}

async fn pledge(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    submit_entry(state, req, Kind::Pledge).await
}

async fn amend(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    submit_entry(state, req, Kind::Amend).await
}

async fn withdraw(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    submit_entry(state, req, Kind::Withdraw).await
}

/// `POST /v1/campaigns/<id>/trustee-messages` (SPEC R-API-51): a
/// TrusteeMessage entry of the campaign's key generation (R-SEAL-34),
/// sequenced like a pledge and answered with its receipt; the rules decide
/// (409 `rule_violation` naming the failed check).
async fn trustee_message(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let id = campaign_id(&id)?;
    submit_entry(state, req, Kind::Trustee(id)).await
}

// ---------------------------------------------------------------------------
// Server-sent events
// ---------------------------------------------------------------------------

/// An event of the stream; its data's keys in sorted order, as always.
fn sse_event(ev: &LogEvent) -> Event {
    let (name, data) = match ev {
        LogEvent::Checkpoint { size, note } => (
            api::EVENT_CHECKPOINT,
            serde_json::to_value(CheckpointEvent {
                size: *size,
                note: note.to_string(),
            }),
        ),
        LogEvent::Tally(t) => match t.figures {
            Figures::Live { live, active } => (
                api::EVENT_TALLY,
                serde_json::to_value(TallyEvent {
                    campaign_id: t.campaign,
                    checkpoint_size: t.checkpoint_size,
                    live,
                    active,
                    statement: t.note.to_string(),
                }),
            ),
            // SPEC R-API-50: a sealed campaign's event has no counts but
            // its entries.
            Figures::Sealed { entries } => (
                api::EVENT_SEALED_TALLY,
                serde_json::to_value(api::SealedTallyEvent {
                    campaign_id: t.campaign,
                    checkpoint_size: t.checkpoint_size,
                    entries,
                    statement: t.note.to_string(),
                }),
            ),
        },
    };
    data.ok()
        .and_then(|d| Event::default().event(name).json_data(d).ok())
        .unwrap_or_default()
}

/// `GET /v1/events`: the current checkpoint, then every new checkpoint and
/// tally. The server does not know who listens beyond the connection itself.
async fn events(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let permit = state
        .inner
        .event_streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::too_many_streams(state.inner.max_event_streams))?;
    let rx = state.inner.ledger.subscribe();
    let (size, note) = {
        let v = state.inner.ledger.published();
        (v.size(), v.checkpoint())
    };
    let first = Some(sse_event(&LogEvent::Checkpoint { size, note }));
    let shutdown = state.inner.shutdown.clone();
    // The permit lives in the stream's state: the slot is free again when
    // the stream ends or its connection goes away.
    let stream = futures_util::stream::unfold(
        (first, rx, shutdown, permit),
        |(mut first, mut rx, mut shutdown, permit)| async move {
            if let Some(ev) = first.take() {
                return Some((Ok(ev), (None, rx, shutdown, permit)));
            }
            loop {
                let next = tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => None,
                    r = rx.recv() => match r {
                        Ok(ev) => Some(Some(sse_event(&ev))),
                        Err(broadcast::error::RecvError::Lagged(_)) => Some(None),
                        Err(broadcast::error::RecvError::Closed) => None,
                    }
                };
                match next {
                    None => return None,
                    Some(None) => continue,
                    Some(Some(ev)) => return Some((Ok(ev), (None, rx, shutdown, permit))),
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
