//! Typed async HTTP client for the whole `pledged` API (SPEC §12): campaigns,
//! tokens, pledges, the C2SP tlog-tiles read API, tally statements, admin
//! calls and the `/v1/events` stream. Errors say what happened: the network,
//! a server fault (with its `Retry-After`), or a refusal with the server's
//! `{"error", "detail"}`.
//!
//! Nothing here verifies signatures or proofs: that is [`crate::flows`]'s job,
//! on top of these raw answers.

use std::time::Duration;

use futures_util::{Stream, StreamExt as _};
use pledge_protocol::api::{self, ErrorBody};
use pledge_protocol::entry::Entry;
use pledge_protocol::hash::CampaignId;
use pledge_protocol::tile::{BundleId, TileId};
use pledge_protocol::token::BlindedMessage;
use zeroize::Zeroizing;

/// Invite codes just minted ([`Client::mint_invites`]).
pub struct MintedInvites {
    /// The single-use codes, shown once.
    pub codes: Vec<Zeroizing<String>>,
    /// Open campaigns of the group when they were minted (0: none yet, or
    /// a misspelt group).
    pub campaigns: u32,
}

impl std::fmt::Debug for MintedInvites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The codes are one-use credentials: count them, never print them.
        f.debug_struct("MintedInvites")
            .field("codes", &self.codes.len())
            .field("campaigns", &self.campaigns)
            .finish()
    }
}

/// The code of a failure whose body is not an error body (SPEC R-API-2).
const UNKNOWN_CODE: &str = "unknown";

/// Largest JSON or text answer read into memory (tiles are 8 KiB, bundles at
/// most 256 entries of 64 KiB).
const MAX_BODY: usize = 32 * 1024 * 1024;

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server could not be reached or the connection broke.
    #[error("cannot reach the server at {url}: {reason}")]
    Network {
        /// The URL requested.
        url: String,
        /// What the HTTP stack said.
        reason: String,
    },
    /// The server failed (5xx); `retry_after` is its `Retry-After` in seconds.
    #[error("the server failed ({status} {code}): {detail}{}", retry_hint(*.retry_after))]
    Server {
        /// HTTP status.
        status: u16,
        /// Machine-readable code (SPEC R-API-2), e.g. `busy`,
        /// `storage_unavailable`; [`ErrorCode::Other`] for a code this
        /// version does not know, or `unknown` when the body was not an
        /// error body.
        code: ErrorCode,
        /// Human-readable detail.
        detail: String,
        /// `Retry-After` seconds, if sent.
        retry_after: Option<u64>,
    },
    /// The server refused the request (4xx) with a code and a detail.
    #[error("the server refused the request ({status} {code}): {detail}{}", retry_hint(*.retry_after))]
    Refused {
        /// HTTP status.
        status: u16,
        /// Machine-readable code (SPEC R-API-2), e.g. `double_spend`;
        /// [`ErrorCode::Other`] as for `Server`.
        code: ErrorCode,
        /// Human-readable detail.
        detail: String,
        /// `Retry-After` seconds (429), if sent.
        retry_after: Option<u64>,
    },
    /// The answer did not have the expected shape.
    #[error("unexpected answer from {url}: {what}")]
    BadResponse {
        /// The URL requested.
        url: String,
        /// What was wrong with it.
        what: String,
    },
    /// The server URL is not usable.
    #[error("bad server URL {0:?}: use http://host:port or https://host")]
    BadUrl(String),
}

fn retry_hint(s: Option<u64>) -> String {
    match s {
        Some(s) => format!(" (retry after {s} s)"),
        None => String::new(),
    }
}

impl ClientError {
    /// The machine-readable error code of a refusal or server failure, as
    /// text ([`Self::error_code`] for the typed code to match on).
    pub fn code(&self) -> Option<&str> {
        self.error_code().map(ErrorCode::as_str)
    }

    /// The typed error code of a refusal or server failure (SPEC R-API-2).
    pub fn error_code(&self) -> Option<&ErrorCode> {
        match self {
            Self::Server { code, .. } | Self::Refused { code, .. } => Some(code),
            _ => None,
        }
    }

    /// True for a refusal or failure with this code.
    pub fn is(&self, code: &ErrorCode) -> bool {
        self.error_code() == Some(code)
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Server { status, .. } | Self::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// `Retry-After`, when the server sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Server { retry_after, .. } | Self::Refused { retry_after, .. } => {
                retry_after.map(Duration::from_secs)
            }
            _ => None,
        }
    }

    /// True when sending the same request again later may succeed: network
    /// failures, 5xx, 408 and 429. A definitive refusal is not retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Network { .. } | Self::Server { .. } => true,
            Self::Refused { status, .. } => *status == 429 || *status == 408,
            _ => false,
        }
    }
}

// The JSON bodies are the wire API's types (`pledge_protocol::api`, SPEC
// §12), shared with `pledged`; the names this library has always used stay.

/// A campaign's attester policy in admin requests.
pub use pledge_protocol::api::AttesterPolicy as AttesterSpec;
/// A campaign as `GET /v1/campaigns` describes it. `issuer_key` is a claim of
/// the server only: [`crate::flows`] checks it against the logged entry
/// (SPEC R-API-7, DESIGN P5).
pub use pledge_protocol::api::Campaign as CampaignInfo;
/// A campaign's publication policy in admin requests (SPEC R-PUB-1).
pub use pledge_protocol::api::Publication as PublicationSpec;
/// `GET /v1/log/witnesses` (SPEC R-API-22).
pub use pledge_protocol::api::WitnessPolicy as WitnessPolicyInfo;
pub use pledge_protocol::api::{
    AttesterKind, CampaignCreated, CampaignState, EntryAccepted, ErrorCode, NewCampaign,
    TallySummary,
};

/// Proof of eligibility sent with a token request.
pub use pledge_protocol::api::Attestation;

/// One event of `GET /v1/events`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A new checkpoint (signed note text, unverified).
    Checkpoint {
        /// Its size.
        size: u64,
        /// The signed note text.
        note: String,
    },
    /// A campaign's tally changed.
    Tally {
        /// The campaign.
        campaign_id: CampaignId,
        /// Log size of the tally.
        checkpoint_size: u64,
        /// Live pledges.
        live: u64,
        /// Active count.
        active: u64,
        /// The signed statement (R-TALLY-7), unverified.
        statement: String,
    },
    /// An event type this client does not know.
    Other(String),
}

/// The typed client. Cheap to clone (one connection pool).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// A client for the server at `base` (`http://host:port`, no trailing
    /// path needed).
    ///
    /// # Errors
    /// [`ClientError::BadUrl`] if `base` is not an http(s) URL.
    pub fn new(base: &str) -> Result<Self, ClientError> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() < 9 {
            return Err(ClientError::BadUrl(base));
        }
        // In a browser, fetch() sets the user agent and has no connect
        // timeout of its own; the per-request timeout below still applies.
        #[cfg(not(target_arch = "wasm32"))]
        let builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Idle connections are dropped before the server's idle timeout
            // (SPEC R-API-19, 5 s by default) can close one under a new
            // request, and no connection joins requests far apart (DESIGN P3).
            .pool_idle_timeout(Duration::from_secs(2))
            // No identifying user agent beyond the product (DESIGN P1).
            .user_agent("pledge-client");
        #[cfg(target_arch = "wasm32")]
        let builder = reqwest::Client::builder();
        let http = builder.build().map_err(|e| ClientError::Network {
            url: base.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self { http, base })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, ClientError> {
        let resp = req
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| network(url, &e))?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(resp);
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = resp.bytes().await.unwrap_or_default();
        let (code, detail) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(b) => (b.error, b.detail),
            Err(_) => (
                ErrorCode::Other(UNKNOWN_CODE.to_owned()),
                String::from_utf8_lossy(body.get(..body.len().min(200)).unwrap_or_default())
                    .trim()
                    .to_owned(),
            ),
        };
        if status >= 500 {
            Err(ClientError::Server {
                status,
                code,
                detail,
                retry_after,
            })
        } else {
            Err(ClientError::Refused {
                status,
                code,
                detail,
                retry_after,
            })
        }
    }

    async fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let url = self.url(path);
        let resp = self.send(self.http.get(&url), &url).await?;
        read_body(resp, &url).await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let bytes = self.get_bytes(path).await?;
        parse_json(&bytes, &self.url(path))
    }

    /// POSTs `body` as JSON. The body goes through a `serde_json::Value`,
    /// so its keys are written in sorted order, as this client always has.
    async fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
        admin: Option<&str>,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let body = serde_json::to_value(body).map_err(|e| ClientError::BadResponse {
            url: url.clone(),
            what: format!("cannot encode the request: {e}"),
        })?;
        let mut req = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(token) = admin {
            req = req.bearer_auth(token);
        }
        let resp = self.send(req, &url).await?;
        let bytes = read_body(resp, &url).await?;
        parse_json(&bytes, &url)
    }

    /// DELETEs `path` (admin) and reads the JSON answer.
    async fn delete_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        admin: Option<&str>,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let mut req = self.http.delete(&url);
        if let Some(token) = admin {
            req = req.bearer_auth(token);
        }
        let resp = self.send(req, &url).await?;
        let bytes = read_body(resp, &url).await?;
        parse_json(&bytes, &url)
    }

    /// `GET /healthz`.
    ///
    /// # Errors
    /// [`ClientError`]; 503 when the server refuses writes.
    pub async fn health(&self) -> Result<(), ClientError> {
        self.get_bytes("/healthz").await.map(|_| ())
    }

    /// `GET /v1/log/key`: the log's verifier key text (unverified: pin it).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn log_key(&self) -> Result<String, ClientError> {
        let b = self.get_bytes("/v1/log/key").await?;
        String::from_utf8(b)
            .map(|s| s.trim_end().to_owned())
            .map_err(|_| ClientError::BadResponse {
                url: self.url("/v1/log/key"),
                what: "the key is not UTF-8".into(),
            })
    }

    /// `GET /v1/log/witnesses`: the witnesses the log pushes to and the
    /// quorum it asks clients to require (unverified: pin it with the key).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn witness_policy(&self) -> Result<WitnessPolicyInfo, ClientError> {
        self.get_json("/v1/log/witnesses").await
    }

    /// `GET /log/checkpoint`: the signed note bytes (unverified).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn checkpoint(&self) -> Result<Vec<u8>, ClientError> {
        self.get_bytes("/log/checkpoint").await
    }

    /// `GET /log/tile/<L>/<N>[.p/<W>]`: a hash tile (unverified).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn tile(&self, tile: &TileId) -> Result<Vec<u8>, ClientError> {
        self.get_bytes(&format!("/log/{}", tile.path())).await
    }

    /// `GET /log/tile/entries/<N>[.p/<W>]`: an entry bundle (unverified).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn bundle(&self, bundle: &BundleId) -> Result<Vec<u8>, ClientError> {
        self.get_bytes(&format!("/log/{}", bundle.path())).await
    }

    /// `GET /v1/campaigns`, in log order.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn campaigns(&self) -> Result<Vec<CampaignInfo>, ClientError> {
        Ok(self
            .get_json::<api::CampaignList>("/v1/campaigns")
            .await?
            .campaigns)
    }

    /// `GET /v1/campaigns/<id>`.
    ///
    /// # Errors
    /// [`ClientError`] (404 `unknown_campaign`).
    pub async fn campaign(&self, id: &CampaignId) -> Result<CampaignInfo, ClientError> {
        self.get_json(&format!("/v1/campaigns/{}", id.to_hex()))
            .await
    }

    /// `GET /v1/campaigns/<id>/tally`: the signed tally statement text
    /// (unverified).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn tally_statement(&self, id: &CampaignId) -> Result<String, ClientError> {
        let path = format!("/v1/campaigns/{}/tally", id.to_hex());
        let b = self.get_bytes(&path).await?;
        String::from_utf8(b).map_err(|_| ClientError::BadResponse {
            url: self.url(&path),
            what: "the statement is not UTF-8".into(),
        })
    }

    /// `POST /v1/attest/email` (SPEC R-API-29): has the server mail a
    /// one-time code to `address` for token requests naming `campaigns`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn email_code(
        &self,
        address: &str,
        campaigns: &[CampaignId],
    ) -> Result<api::EmailCodeSent, ClientError> {
        let body = api::EmailCodeRequest {
            address: zeroize::Zeroizing::new(address.to_owned()),
            campaigns: campaigns.to_vec(),
        };
        self.post_json("/v1/attest/email", &body, None).await
    }

    /// `POST /v1/tokens`: blind signatures, in request order, for one blinded
    /// message per campaign (all-or-nothing, SPEC R-API-9).
    ///
    /// # Errors
    /// [`ClientError`]; [`ClientError::BadResponse`] if the answer does not
    /// name the requested campaigns in order.
    pub async fn tokens(
        &self,
        attestation: &Attestation,
        requests: &[(CampaignId, BlindedMessage)],
    ) -> Result<Vec<Vec<u8>>, ClientError> {
        let body = api::TokenRequest {
            attestation: attestation.clone(),
            requests: requests
                .iter()
                .map(|(c, b)| api::BlindedRequest {
                    campaign_id: *c,
                    blinded_msg: b.as_bytes().to_vec(),
                })
                .collect(),
        };
        let answer: api::BlindSignatures = self.post_json("/v1/tokens", &body, None).await?;
        let url = self.url("/v1/tokens");
        if answer.blind_signatures.len() != requests.len() {
            return Err(ClientError::BadResponse {
                url,
                what: format!(
                    "{} signatures for {} requests",
                    answer.blind_signatures.len(),
                    requests.len()
                ),
            });
        }
        let mut out = Vec::with_capacity(requests.len());
        for ((c, _), s) in requests.iter().zip(answer.blind_signatures) {
            if s.campaign_id != *c {
                return Err(ClientError::BadResponse {
                    url,
                    what: "signatures are not in request order".into(),
                });
            }
            out.push(s.blind_sig);
        }
        Ok(out)
    }

    /// Submits a Pledge, PledgeAmended or PledgeWithdrawn entry to its
    /// endpoint. The answer's receipt is not yet verified.
    ///
    /// # Errors
    /// [`ClientError`]; [`ClientError::BadResponse`] for another entry kind.
    pub async fn submit(&self, entry: &Entry) -> Result<EntryAccepted, ClientError> {
        let trustee;
        let path = match entry {
            Entry::Pledge(_) | Entry::SealedPledge(_) => "/v1/pledges",
            Entry::PledgeAmended(_) | Entry::SealedAmended(_) => "/v1/pledges/amend",
            Entry::PledgeWithdrawn(_) => "/v1/pledges/withdraw",
            // SPEC R-SEAL-38: a trustee's messages and decryption shares.
            Entry::TrusteeMessage(_) | Entry::DecryptionShares(_) => {
                trustee = format!(
                    "/v1/campaigns/{}/trustee-messages",
                    entry.campaign().to_hex()
                );
                trustee.as_str()
            }
            _ => {
                return Err(ClientError::BadResponse {
                    url: self.url("/v1/pledges"),
                    what: "only pledges, amendments, withdrawals and trustee messages can be submitted"
                        .into(),
                });
            }
        };
        let bytes = entry.encode().map_err(|e| ClientError::BadResponse {
            url: self.url(path),
            what: e.to_string(),
        })?;
        self.submit_bytes(path, &bytes).await
    }

    /// Submits already encoded entry bytes to `path` (`/v1/pledges`, …).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn submit_bytes(
        &self,
        path: &str,
        entry: &[u8],
    ) -> Result<EntryAccepted, ClientError> {
        let body = api::EntrySubmission {
            entry: entry.to_vec(),
        };
        self.post_json(path, &body, None).await
    }

    /// `POST /v1/campaigns` (admin).
    ///
    /// # Errors
    /// [`ClientError`] (401 `unauthorized`, 422 `bad_campaign`, …).
    pub async fn create_campaign(
        &self,
        admin_token: &str,
        c: &NewCampaign,
    ) -> Result<CampaignCreated, ClientError> {
        self.post_json("/v1/campaigns", c, Some(admin_token)).await
    }

    /// `POST /v1/admin/invites` (admin): `count` fresh single-use codes, and
    /// how many open campaigns take them.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn mint_invites(
        &self,
        admin_token: &str,
        group: &str,
        count: u32,
    ) -> Result<MintedInvites, ClientError> {
        let body = api::NewInvites {
            group: group.to_owned(),
            count,
        };
        let inv: api::InvitesMinted = self
            .post_json("/v1/admin/invites", &body, Some(admin_token))
            .await?;
        Ok(MintedInvites {
            codes: inv.codes.into_iter().map(Zeroizing::new).collect(),
            campaigns: inv.campaigns,
        })
    }

    /// `DELETE /v1/admin/invites/<group>` (admin): deletes every unused code
    /// of the group; returns how many.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn revoke_invites(&self, admin_token: &str, group: &str) -> Result<u64, ClientError> {
        let answer: api::InvitesRevoked = self
            .delete_json(&format!("/v1/admin/invites/{group}"), Some(admin_token))
            .await?;
        Ok(answer.deleted)
    }

    /// `GET /v1/admin/invites` (admin, SPEC R-API-37): every invite group
    /// with unused codes or an open campaign, with both counts (never a
    /// code).
    ///
    /// # Errors
    /// [`ClientError`] (401 `unauthorized`).
    pub async fn invite_groups(
        &self,
        admin_token: &str,
    ) -> Result<Vec<api::InviteGroup>, ClientError> {
        let url = self.url("/v1/admin/invites");
        let resp = self
            .send(self.http.get(&url).bearer_auth(admin_token), &url)
            .await?;
        let bytes = read_body(resp, &url).await?;
        let answer: api::InviteGroups = parse_json(&bytes, &url)?;
        Ok(answer.groups)
    }

    /// `POST /v1/admin/campaigns/<id>/close` (admin, SPEC R-API-32): closes
    /// an open campaign now, before its deadline. Returns the index of its
    /// CampaignClosed entry.
    ///
    /// # Errors
    /// [`ClientError`]: 404 `unknown_campaign`, 409 `campaign_closed`.
    pub async fn close_campaign(
        &self,
        admin_token: &str,
        id: &CampaignId,
    ) -> Result<u64, ClientError> {
        #[derive(serde::Deserialize)]
        struct Closed {
            closed_index: u64,
        }
        let c: Closed = self
            .post_json(
                &format!("/v1/admin/campaigns/{id}/close"),
                &serde_json::json!({}),
                Some(admin_token),
            )
            .await?;
        Ok(c.closed_index)
    }

    /// `POST /v1/admin/campaigns/<id>/update` (admin, SPEC R-API-33): a
    /// later deadline and/or the campaign's title and text in other
    /// languages, logged as a CampaignUpdated entry. Returns the server's
    /// answer once the entry is durable.
    ///
    /// # Errors
    /// [`ClientError`]: 404 `unknown_campaign`, 409 `campaign_closed`, 422
    /// `deadline_not_later`, `deadline_too_late`, `too_many_languages`, 400
    /// `bad_request` (R-API-35).
    pub async fn update_campaign(
        &self,
        admin_token: &str,
        id: &CampaignId,
        update: &api::CampaignUpdate,
    ) -> Result<api::CampaignUpdateAccepted, ClientError> {
        self.post_json(
            &format!("/v1/admin/campaigns/{id}/update"),
            update,
            Some(admin_token),
        )
        .await
    }

    /// `GET /v1/events`: a stream of parsed server-sent events. It ends when
    /// the server closes the connection.
    ///
    /// # Errors
    /// [`ClientError`] opening the stream; stream items carry later failures.
    pub async fn events(
        &self,
    ) -> Result<impl Stream<Item = Result<ServerEvent, ClientError>> + Unpin + use<>, ClientError>
    {
        let url = self.url("/v1/events");
        let resp = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| network(&url, &e))?;
        if !resp.status().is_success() {
            return Err(ClientError::Server {
                status: resp.status().as_u16(),
                code: ErrorCode::Other("events_unavailable".into()),
                detail: "the event stream is not available".into(),
                retry_after: None,
            });
        }
        let bytes = resp.bytes_stream();
        let state = SseState {
            bytes: Box::pin(bytes),
            buf: Vec::new(),
            url,
        };
        Ok(Box::pin(futures_util::stream::unfold(
            state,
            |mut st| async move {
                loop {
                    if let Some(ev) = st.next_event() {
                        return Some((ev, st));
                    }
                    match st.bytes.next().await {
                        Some(Ok(chunk)) => {
                            st.buf.extend_from_slice(&chunk);
                            if st.buf.len() > MAX_BODY {
                                return None;
                            }
                        }
                        Some(Err(e)) => {
                            let err = network(&st.url, &e);
                            st.buf.clear();
                            return Some((Err(err), st));
                        }
                        None => return None,
                    }
                }
            },
        )))
    }
}

#[cfg(not(target_arch = "wasm32"))]
type ByteStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<bytes::Bytes, reqwest::Error>> + Send>>;
// A browser's fetch stream lives on the page's only thread.
#[cfg(target_arch = "wasm32")]
type ByteStream = std::pin::Pin<Box<dyn Stream<Item = Result<bytes::Bytes, reqwest::Error>>>>;

struct SseState {
    bytes: ByteStream,
    buf: Vec<u8>,
    url: String,
}

impl SseState {
    /// Takes one complete event (terminated by a blank line) from the buffer.
    fn next_event(&mut self) -> Option<Result<ServerEvent, ClientError>> {
        loop {
            let end = find_blank_line(&self.buf)?;
            let (block, rest_at) = end;
            let text =
                String::from_utf8_lossy(self.buf.get(..block).unwrap_or_default()).into_owned();
            self.buf.drain(..rest_at.min(self.buf.len()));
            let mut event = String::from("message");
            let mut data = String::new();
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            if data.is_empty() {
                // Keep-alive comment or empty event.
                continue;
            }
            return Some(parse_event(&event, &data, &self.url));
        }
    }
}

/// (end of the event block, start of what follows) for the first blank line.
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let normalized = buf.windows(2).position(|w| w == b"\n\n");
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n");
    match (normalized, crlf) {
        (Some(a), Some(b)) if b < a => Some((b, b + 4)),
        (Some(a), _) => Some((a, a + 2)),
        (None, Some(b)) => Some((b, b + 4)),
        (None, None) => None,
    }
}

fn parse_event(event: &str, data: &str, url: &str) -> Result<ServerEvent, ClientError> {
    let bad = |e: serde_json::Error| ClientError::BadResponse {
        url: url.to_owned(),
        what: format!("{event} event: {e}"),
    };
    match event {
        api::EVENT_CHECKPOINT => {
            let c: api::CheckpointEvent = serde_json::from_str(data).map_err(bad)?;
            Ok(ServerEvent::Checkpoint {
                size: c.size,
                note: c.note,
            })
        }
        api::EVENT_TALLY => {
            let t: api::TallyEvent = serde_json::from_str(data).map_err(bad)?;
            Ok(ServerEvent::Tally {
                campaign_id: t.campaign_id,
                checkpoint_size: t.checkpoint_size,
                live: t.live,
                active: t.active,
                statement: t.statement,
            })
        }
        other => Ok(ServerEvent::Other(other.to_owned())),
    }
}

fn network(url: &str, e: &reqwest::Error) -> ClientError {
    #[cfg(not(target_arch = "wasm32"))]
    let refused = e.is_connect();
    // fetch() does not tell a refused connection from other failures.
    #[cfg(target_arch = "wasm32")]
    let refused = false;
    let reason = if e.is_timeout() {
        "timed out".to_owned()
    } else if refused {
        "connection refused or unreachable (is the server running?)".to_owned()
    } else {
        let mut s = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(inner) = src {
            s.push_str(": ");
            s.push_str(&inner.to_string());
            src = inner.source();
        }
        s
    };
    ClientError::Network {
        url: url.to_owned(),
        reason,
    }
}

async fn read_body(resp: reqwest::Response, url: &str) -> Result<Vec<u8>, ClientError> {
    if resp.content_length().is_some_and(|l| l > MAX_BODY as u64) {
        return Err(ClientError::BadResponse {
            url: url.to_owned(),
            what: "answer too large".into(),
        });
    }
    let b = resp.bytes().await.map_err(|e| network(url, &e))?;
    if b.len() > MAX_BODY {
        return Err(ClientError::BadResponse {
            url: url.to_owned(),
            what: "answer too large".into(),
        });
    }
    Ok(b.to_vec())
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], url: &str) -> Result<T, ClientError> {
    serde_json::from_slice(bytes).map_err(|e| ClientError::BadResponse {
        url: url.to_owned(),
        what: format!("invalid JSON: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_blocks_are_split_and_parsed() {
        let mut st = SseState {
            bytes: Box::pin(futures_util::stream::empty()),
            buf: b": keep-alive\n\nevent: checkpoint\ndata: {\"size\":3,\"note\":\"x\"}\n\nevent: tally\ndata: {\"campaign_id\":\"abababababababababababababababababababababababababababababababab\",\"checkpoint_size\":3,\"live\":1,\"active\":1,\"statement\":\"s\"}\n\nevent: check".to_vec(),
            url: "u".into(),
        };
        assert_eq!(
            st.next_event().map(Result::ok),
            Some(Some(ServerEvent::Checkpoint {
                size: 3,
                note: "x".into()
            }))
        );
        assert!(matches!(
            st.next_event(),
            Some(Ok(ServerEvent::Tally { live: 1, .. }))
        ));
        assert!(st.next_event().is_none());
        assert_eq!(st.buf, b"event: check");
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(Client::new("localhost:8080").is_err());
        assert!(Client::new("http://127.0.0.1:8080/").is_ok());
    }
}
