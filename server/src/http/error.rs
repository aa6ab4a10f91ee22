//! The only place that chooses HTTP status codes. Every error is a JSON body
//! `{"error": "<code>", "detail": "<what to fix>"}`
//! ([`pledge_protocol::api::ErrorBody`], SPEC R-API-2); 5xx details say
//! nothing internal. SPEC §12 lists the codes ([`ErrorCode`]).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pledge_protocol::api::{ErrorBody, ErrorCode, ErrorCode as C};
use pledge_protocol::ledger::RuleError;

use crate::issuer::{AdminError, IssueError};
use crate::ledger::SubmitError;

/// Status of a request cut off by the request timeout (its body is empty).
pub const TIMEOUT_STATUS: StatusCode = StatusCode::REQUEST_TIMEOUT;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: code,
                detail: detail.into(),
            },
            retry_after: None,
        }
    }

    fn retry(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The status (for tests).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code (for tests).
    pub fn code(&self) -> &ErrorCode {
        &self.body.error
    }

    /// The body is not valid JSON of the expected shape, or a field is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, C::BadRequest, detail)
    }

    /// The entry bytes do not decode (SPEC R-ENTRY-1).
    pub fn malformed_entry(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, C::MalformedEntry, detail)
    }

    /// The body is larger than the endpoint accepts.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            C::BodyTooLarge,
            format!("request bodies to this endpoint are limited to {limit} bytes"),
        )
    }

    /// The body could not be read.
    pub fn body_unreadable() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            C::BadRequest,
            "the request body could not be read",
        )
    }

    /// No such resource.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, C::NotFound, detail)
    }

    /// No such campaign.
    pub fn unknown_campaign() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            C::UnknownCampaign,
            "no campaign with this id",
        )
    }

    /// Missing or wrong admin bearer token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            C::Unauthorized,
            "this endpoint needs the admin bearer token (Authorization: Bearer <admin.token>)",
        )
    }

    /// The server refuses writes until restarted.
    pub fn failed() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            C::StorageUnavailable,
            "the ledger's storage failed; retry later",
        )
        .retry(30)
    }

    /// Every event-stream slot is taken (SPEC §12, `max_event_streams`).
    pub fn too_many_streams(max: usize) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            C::Busy,
            format!(
                "this server serves at most {max} event streams at once; \
                 retry later or poll /log/checkpoint"
            ),
        )
        .retry(10)
    }

    /// The campaign's current tally statement could not be signed.
    pub fn tally_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            C::TallyUnavailable,
            "the current tally statement of this campaign could not be signed; \
             the operator's log says why",
        )
        .retry(30)
    }

    /// The request (its body) took longer than the request timeout.
    pub fn timeout() -> Self {
        Self::new(
            TIMEOUT_STATUS,
            C::RequestTimeout,
            "the request body did not arrive within the request timeout",
        )
    }

    /// An unexpected internal fault.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            C::Internal,
            "internal error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body)).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<RuleError> for ApiError {
    fn from(e: RuleError) -> Self {
        use StatusCode as S;
        let (status, code) = match &e {
            RuleError::CampaignExists => (S::CONFLICT, C::CampaignExists),
            RuleError::UnknownCampaign => (S::NOT_FOUND, C::UnknownCampaign),
            RuleError::CampaignClosed => (S::CONFLICT, C::CampaignClosed),
            RuleError::BadToken => (S::UNPROCESSABLE_ENTITY, C::BadToken),
            RuleError::BadPledgeSignature => (S::UNPROCESSABLE_ENTITY, C::BadSignature),
            RuleError::DoubleSpend => (S::CONFLICT, C::DoubleSpend),
            RuleError::ThresholdOutOfRange => (S::UNPROCESSABLE_ENTITY, C::ThresholdOutOfRange),
            RuleError::FundingNotAllowed | RuleError::SupportNotOnMenu => {
                (S::UNPROCESSABLE_ENTITY, C::TermsNotAllowed)
            }
            RuleError::UnknownPledge => (S::NOT_FOUND, C::UnknownPledge),
            RuleError::Withdrawn => (S::CONFLICT, C::Withdrawn),
            RuleError::BadSequence { .. } => (S::CONFLICT, C::BadSequence),
            RuleError::TooLarge => (S::PAYLOAD_TOO_LARGE, C::EntryTooLarge),
            RuleError::TooManyCampaigns => (S::INSUFFICIENT_STORAGE, C::TooManyCampaigns),
            // SPEC R-API-35
            RuleError::DeadlineNotLater => (S::UNPROCESSABLE_ENTITY, C::DeadlineNotLater),
            RuleError::DeadlineTooLate => (S::UNPROCESSABLE_ENTITY, C::DeadlineTooLate),
            RuleError::TooManyLanguages => (S::UNPROCESSABLE_ENTITY, C::TooManyLanguages),
            _ => (S::CONFLICT, C::RuleViolation),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<crate::activitypub::inbox::InboxError> for ApiError {
    /// SPEC R-API-46: every refusal of the ActivityPub inbox is typed.
    fn from(e: crate::activitypub::inbox::InboxError) -> Self {
        use crate::activitypub::inbox::InboxError as E;
        use StatusCode as S;
        let (status, code) = match &e {
            E::Unsigned | E::Signature(_) | E::WrongHost | E::BadDate | E::ActorMismatch => {
                (S::UNAUTHORIZED, C::SignatureInvalid)
            }
            E::Stale(_) => (S::UNAUTHORIZED, C::SignatureStale),
            E::ActorUnavailable(_) => (S::UNAUTHORIZED, C::ActorUnavailable),
            E::NoDigest | E::DigestMismatch => (S::BAD_REQUEST, C::DigestMismatch),
            E::BadActivity(_) => (S::BAD_REQUEST, C::BadRequest),
            E::Unsupported(_) => (S::UNPROCESSABLE_ENTITY, C::UnsupportedActivity),
            E::NotAllowed(_) => (S::FORBIDDEN, C::ActorNotAllowed),
            E::Storage => return Self::failed(),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Rule(r) => r.into(),
            SubmitError::DeadlinePassed => {
                Self::new(StatusCode::CONFLICT, C::CampaignClosed, e.to_string())
            }
            SubmitError::WrongKind { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                C::WrongEntryKind,
                e.to_string(),
            ),
            SubmitError::QueueFull => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, C::Busy, e.to_string()).retry(1)
            }
            SubmitError::HeldBack { .. } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, C::HeldBack, e.to_string()).retry(30)
            }
            SubmitError::ShuttingDown => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                C::ShuttingDown,
                e.to_string(),
            )
            .retry(5),
            SubmitError::NotLeader => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                C::LeaderUnavailable,
                e.to_string(),
            )
            .retry(1),
            SubmitError::Storage => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                C::StorageUnavailable,
                e.to_string(),
            )
            .retry(5),
        }
    }
}

impl From<IssueError> for ApiError {
    fn from(e: IssueError) -> Self {
        use StatusCode as S;
        let detail = e.to_string();
        match e {
            IssueError::RequestCount | IssueError::DuplicateCampaign(_) => {
                Self::new(S::BAD_REQUEST, C::BadRequest, detail)
            }
            IssueError::UnknownCampaign(_) => Self::new(S::NOT_FOUND, C::UnknownCampaign, detail),
            IssueError::CampaignClosed(_) => Self::new(S::CONFLICT, C::CampaignClosed, detail),
            IssueError::NotReady(_) => {
                Self::new(S::SERVICE_UNAVAILABLE, C::IssuerNotReady, detail).retry(1)
            }
            IssueError::AttesterNotAllowed(_) => {
                Self::new(S::FORBIDDEN, C::AttesterNotAllowed, detail)
            }
            IssueError::InviteInvalid => Self::new(S::FORBIDDEN, C::InviteInvalid, detail),
            IssueError::BadAddress => Self::new(S::BAD_REQUEST, C::BadRequest, detail),
            IssueError::EmailCodeInvalid => Self::new(S::FORBIDDEN, C::EmailCodeInvalid, detail),
            IssueError::EmailDomainNotAllowed(_) => {
                Self::new(S::FORBIDDEN, C::EmailDomainNotAllowed, detail)
            }
            IssueError::MailUnavailable => {
                Self::new(S::SERVICE_UNAVAILABLE, C::MailUnavailable, detail).retry(60)
            }
            IssueError::AlreadyIssued(_) => Self::new(S::CONFLICT, C::AlreadyIssued, detail),
            IssueError::RateLimited { retry_after } => {
                Self::new(S::TOO_MANY_REQUESTS, C::RateLimited, detail).retry(retry_after)
            }
            IssueError::BlindedMessage { .. } => {
                Self::new(S::UNPROCESSABLE_ENTITY, C::BadBlindedMessage, detail)
            }
            IssueError::Storage => {
                Self::new(S::SERVICE_UNAVAILABLE, C::StorageUnavailable, detail).retry(5)
            }
            _ => Self::internal(),
        }
    }
}

impl From<crate::campaigns::CreateError> for ApiError {
    fn from(e: crate::campaigns::CreateError) -> Self {
        use crate::campaigns::CreateError;
        match e {
            CreateError::Admin(e) => e.into(),
            CreateError::Submit(e) => e.into(),
            CreateError::DeadlineInPast => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                C::DeadlineInPast,
                e.to_string(),
            ),
            _ => Self::internal(),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        let detail = e.to_string();
        match e {
            AdminError::BadCampaign(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, C::BadCampaign, detail)
            }
            AdminError::BadGroup | AdminError::BadCount | AdminError::BadDomains => {
                Self::bad_request(detail)
            }
            AdminError::Storage => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                C::StorageUnavailable,
                detail,
            )
            .retry(5),
            AdminError::KeyGeneration => Self::internal(),
        }
    }
}
