//! The JSON wire API of the `/v1/…` endpoints (SPEC §12, "HTTP API"): one
//! typed request or response struct for every JSON body a server and a
//! client exchange, the error body and its [`ErrorCode`]s (R-API-2), and the
//! limits both sides enforce (R-API-3, R-API-9, R-PUB-1). `pledged`, the
//! `pledge` client library and the WebAssembly client all use these types, so
//! the API is written once.
//!
//! The types follow SPEC's examples field for field and byte for byte:
//!
//! - binary values are standard padded base64 (R-API-1; non-canonical
//!   trailing bits refused) and decode to `Vec<u8>` here;
//! - campaign ids are 64 lower-case hex digits and decode to [`CampaignId`]
//!   (upper-case refused);
//! - request bodies (`POST` bodies: [`NewCampaign`], [`NewInvites`],
//!   [`TokenRequest`], [`EntrySubmission`]) refuse unknown and duplicate
//!   fields (R-API-1); [`decode_request`] also refuses arrays in place of
//!   objects, which serde's derived structs would otherwise accept;
//! - response bodies accept fields they do not know, so a client keeps
//!   working with a newer server, and an unknown error code still decodes
//!   ([`ErrorCode::Other`]).
//!
//! Behind the `serde` feature: the rest of the crate has no serde dependency.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::de::{DeserializeOwned, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::hash::CampaignId;

// ---------------------------------------------------------------------------
// Limits (one definition for the server that enforces them and the client
// that stays within them)
// ---------------------------------------------------------------------------

/// Most campaigns one token request may name (R-API-9).
pub use crate::token::MAX_TOKEN_REQUESTS;

/// Largest body of a pledge, amendment or withdrawal request (R-API-3).
pub const MAX_ENTRY_BODY: usize = 8 * 1024;
/// Largest body of a token request (R-API-3; 64 blinded messages of 256
/// bytes in base64).
pub const MAX_TOKENS_BODY: usize = 64 * 1024;
/// Largest body of an admin request (R-API-3; a campaign text is at most
/// 16,000 bytes).
pub const MAX_ADMIN_BODY: usize = 128 * 1024;
/// Most invite codes minted per `POST /v1/admin/invites` (SPEC §12).
pub const MAX_INVITES_PER_CALL: u32 = 10_000;
/// Longest invite group name (SPEC §12: 1–64 characters of `A–Z a–z 0–9 . _ -`).
pub const MAX_GROUP_LEN: usize = 64;
/// Largest `publication.min_pledges` a campaign may ask for (R-PUB-1).
pub const MAX_PUBLISH_MIN: u32 = 100;
/// Largest `publication.max_delay_ms` (R-PUB-1): with the hold, a client's
/// request must still be answered within its 60 s timeout.
pub const MAX_PUBLISH_DELAY_MS: u64 = 15_000;

/// Whether `group` is a valid invite group name (SPEC §12): 1 to
/// [`MAX_GROUP_LEN`] characters of `A–Z a–z 0–9 . _ -`.
pub fn valid_group(group: &str) -> bool {
    !group.is_empty()
        && group.len() <= MAX_GROUP_LEN
        && group
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

// ---------------------------------------------------------------------------
// Field encodings
// ---------------------------------------------------------------------------

/// Standard padded base64 (RFC 4648 §4) for `Vec<u8>` fields (R-API-1).
pub mod base64_bytes {
    use super::{B64, Deserialize, Deserializer, Serializer};
    use base64::Engine as _;

    /// Encodes the bytes.
    ///
    /// # Errors
    /// Only the serializer's.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(bytes))
    }

    /// Decodes standard padded base64, refusing any other form.
    ///
    /// # Errors
    /// Not a string, or not canonical standard padded base64.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        B64.decode(s.as_bytes())
            .map_err(|_| serde::de::Error::custom("a binary field is not standard padded base64"))
    }
}

/// A [`CampaignId`] as 64 lower-case hex digits (R-API-1).
pub mod campaign_id_hex {
    use super::{CampaignId, Deserialize, Deserializer, Serializer};

    /// Encodes the id.
    ///
    /// # Errors
    /// Only the serializer's.
    pub fn serialize<S: Serializer>(id: &CampaignId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&id.to_hex())
    }

    /// Decodes exactly 64 lower-case hex digits.
    ///
    /// # Errors
    /// Anything else.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<CampaignId, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_campaign_id(&s)
            .ok_or_else(|| serde::de::Error::custom("campaign ids are 64 lower-case hex digits"))
    }
}

/// Parses a campaign id as the API writes it: 64 lower-case hex digits
/// (R-API-1). Upper-case digits are refused.
pub fn parse_campaign_id(s: &str) -> Option<CampaignId> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    CampaignId::from_hex(s).ok()
}

/// A secret string (an invite code) held in zeroizing memory.
mod secret_string {
    use super::{Deserialize, Deserializer, Serializer, Zeroizing};

    pub fn serialize<S: Serializer>(v: &Zeroizing<String>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Zeroizing<String>, D::Error> {
        String::deserialize(d).map(Zeroizing::new)
    }
}

// ---------------------------------------------------------------------------
// Decoding request bodies strictly (R-API-1)
// ---------------------------------------------------------------------------

/// Why a request body was refused (the server answers 400 `bad_request`
/// with this text as the detail).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Not JSON, not the expected shape, an unknown or duplicate field, or a
    /// malformed field value.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// An array where the API expects an object.
    #[error("invalid JSON: objects are expected where an array was given")]
    ArrayForObject,
}

/// Decodes a request body (a [`NewCampaign`], [`NewInvites`],
/// [`TokenRequest`] or [`EntrySubmission`]) exactly as `pledged` does:
/// unknown and duplicate fields are refused by the types, and so is any
/// array in place of an object.
///
/// serde's derived structs also accept an array of the field values in
/// order (`["<entry>"]` for `{"entry": "<entry>"}`): a second encoding of one
/// request. Every request body is an object, and its only arrays hold
/// objects, so anything else is refused.
///
/// # Errors
/// [`RequestError`].
pub fn decode_request<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RequestError> {
    let value = serde_json::from_slice(bytes)?;
    let shape: serde_json::Value = serde_json::from_slice(bytes)?;
    if !shape.is_object() || !arrays_hold_objects(&shape) {
        return Err(RequestError::ArrayForObject);
    }
    Ok(value)
}

/// Whether every array inside `v` holds only objects (depth is bounded by
/// serde_json's recursion limit of 128). The one exception is a funding
/// menu, `"support_levels": [3000, 6000]` (R-API-23): its type is a list of
/// integers, which no struct of the API could be read from, so it is not a
/// second encoding of anything. Likewise the lists of strings of the e-mail
/// attester (R-API-28, R-API-29): `"domains": ["union.example"]` and
/// `"campaigns": ["<hex>"]`, read as lists of domain names and campaign ids,
/// and the sealed block's lists (R-API-48): `"buckets"` and `"reveals"` of
/// integers, `"trustees"` of hex keys.
fn arrays_hold_objects(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Array(items) => items
            .iter()
            .all(|x| x.is_object() && arrays_hold_objects(x)),
        serde_json::Value::Object(map) => map.iter().all(|(k, v)| {
            ((k == "support_levels" || k == "buckets" || k == "reveals")
                && v.as_array()
                    .is_some_and(|a| a.iter().all(serde_json::Value::is_u64)))
                || ((k == "domains" || k == "campaigns" || k == "trustees")
                    && v.as_array()
                        .is_some_and(|a| a.iter().all(serde_json::Value::is_string)))
                || arrays_hold_objects(v)
        }),
        _ => true,
    }
}

// ---------------------------------------------------------------------------
// Errors (R-API-2)
// ---------------------------------------------------------------------------

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal,)*) => {
        /// The machine-readable `error` of an error body (R-API-2): every
        /// code of SPEC §12's tables, the few more `pledged` sends, and
        /// [`ErrorCode::Other`] for a code this version does not know (a
        /// newer server's).
        ///
        /// On the wire it is the snake-case string ([`ErrorCode::as_str`]).
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
            /// A code this version does not know, as received.
            Other(String),
        }

        impl ErrorCode {
            /// Every known code (not [`ErrorCode::Other`]).
            pub const KNOWN: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as the wire writes it.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)*
                    Self::Other(s) => s,
                }
            }

            /// The code for `s`: a known variant, else [`ErrorCode::Other`].
            pub fn parse(s: &str) -> Self {
                match s {
                    $($text => Self::$variant,)*
                    other => Self::Other(other.to_owned()),
                }
            }
        }
    };
}

error_codes! {
    /// 400: malformed JSON, field or base64 (SPEC §12).
    BadRequest = "bad_request",
    /// 400: the entry bytes do not decode (R-API-13, R-ENTRY-1).
    MalformedEntry = "malformed_entry",
    /// 401: missing or wrong admin bearer token (R-API-5).
    Unauthorized = "unauthorized",
    /// 401: an ActivityPub inbox request without a valid HTTP signature
    /// of the activity's actor (R-API-44).
    SignatureInvalid = "signature_invalid",
    /// 401: an ActivityPub inbox request whose `Date` is outside the
    /// window (R-API-44).
    SignatureStale = "signature_stale",
    /// 401: the signer's actor or key could not be fetched or used
    /// (R-API-44).
    ActorUnavailable = "actor_unavailable",
    /// 400: the `Digest` header is missing or not the body's (R-API-44).
    DigestMismatch = "digest_mismatch",
    /// 403: a follower that is not an instance or a group (R-API-45).
    ActorNotAllowed = "actor_not_allowed",
    /// 422: an activity the inbox does not take (R-API-46).
    UnsupportedActivity = "unsupported_activity",
    /// 403: the attestation kind or group is not the campaign's (R-API-11).
    AttesterNotAllowed = "attester_not_allowed",
    /// 403: unknown or already used invite code.
    InviteInvalid = "invite_invalid",
    /// 403: no pending e-mail code for this address, a wrong or expired
    /// code, or one whose attempts are used up (R-API-30).
    EmailCodeInvalid = "email_code_invalid",
    /// 403: the address's domain is not one the campaign takes (R-API-28).
    EmailDomainNotAllowed = "email_domain_not_allowed",
    /// 404: no such endpoint or resource (R-API-2).
    NotFound = "not_found",
    /// 404: no such campaign.
    UnknownCampaign = "unknown_campaign",
    /// 404: no pledge with this nullifier in the campaign.
    UnknownPledge = "unknown_pledge",
    /// 408: the request body did not arrive in time (R-API-2, R-API-3).
    RequestTimeout = "request_timeout",
    /// 409: closed, closing or past its deadline.
    CampaignClosed = "campaign_closed",
    /// 409: a campaign with this id already exists (R-API-2).
    CampaignExists = "campaign_exists",
    /// 409: a token was already issued to this invite or e-mail address for this campaign.
    AlreadyIssued = "already_issued",
    /// 409: the nullifier is already spent.
    DoubleSpend = "double_spend",
    /// 409: amendment or withdrawal out of sequence.
    BadSequence = "bad_sequence",
    /// 409: the pledge is withdrawn.
    Withdrawn = "withdrawn",
    /// 409: another ledger rule refused the entry (R-API-2).
    RuleViolation = "rule_violation",
    /// 413: the body is over the endpoint's limit (R-API-3).
    BodyTooLarge = "body_too_large",
    /// 413: the entry is over the ledger's size limit (R-API-2).
    EntryTooLarge = "entry_too_large",
    /// 422: the campaign violates R-CAMP-1/R-CAMP-3 or R-API-20.
    BadCampaign = "bad_campaign",
    /// 422: the new campaign's deadline is not in the future.
    DeadlineInPast = "deadline_in_past",
    /// 422: an update's deadline is not later than the effective one
    /// (R-RULE-12, R-API-35).
    DeadlineNotLater = "deadline_not_later",
    /// 422: an update's deadline is more than 90 days after the original
    /// (R-RULE-12, R-API-35).
    DeadlineTooLate = "deadline_too_late",
    /// 422: an update would give the campaign more than 32 languages
    /// (R-RULE-13, R-API-35).
    TooManyLanguages = "too_many_languages",
    /// 422: the blinded message is not 256 bytes or not in range (R-TOKEN-8).
    BadBlindedMessage = "bad_blinded_message",
    /// 422: the entry is not of this endpoint's kind.
    WrongEntryKind = "wrong_entry_kind",
    /// 422: the token is invalid.
    BadToken = "bad_token",
    /// 422: the pledge-key signature is invalid.
    BadSignature = "bad_signature",
    /// 422: the threshold is outside the campaign's range.
    ThresholdOutOfRange = "threshold_out_of_range",
    /// 422: support or funding terms in a campaign without funding, or a
    /// support amount not on its menu (R-RULE-10).
    TermsNotAllowed = "terms_not_allowed",
    /// 429: the open attester's rate limit (R-API-12), or the e-mail
    /// attester's per-address or per-domain limit (R-API-29).
    RateLimited = "rate_limited",
    /// 500: an internal fault (R-API-2).
    Internal = "internal",
    /// 503: the submission queue or the event streams are full.
    Busy = "busy",
    /// 503: the publication group did not complete in time (R-PUB-1).
    HeldBack = "held_back",
    /// 503: the server is shutting down.
    ShuttingDown = "shutting_down",
    /// 503: the storage failed (R-API-14).
    StorageUnavailable = "storage_unavailable",
    /// 503: this front end could not hand a write to the one that
    /// sequences the log (R-STORE-10); nothing was recorded.
    LeaderUnavailable = "leader_unavailable",
    /// 503: the issuer is not ready.
    IssuerNotReady = "issuer_not_ready",
    /// 503: the mail relay did not take the e-mail code, or none is
    /// configured (R-API-29); nothing was recorded.
    MailUnavailable = "mail_unavailable",
    /// 503: the campaign's tally statement could not be signed (R-API-20).
    TallyUnavailable = "tally_unavailable",
    /// 507: the ledger holds 2^32 campaigns.
    TooManyCampaigns = "too_many_campaigns",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for ErrorCode {
    fn from(s: &str) -> Self {
        Self::parse(s)
    }
}

impl std::str::FromStr for ErrorCode {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::parse(s))
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Self::parse(&s))
    }
}

/// Every error response's body (R-API-2): `{"error": "<code>", "detail":
/// "<text>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The machine-readable code.
    pub error: ErrorCode,
    /// For humans: what to fix.
    #[serde(default)]
    pub detail: String,
}

// ---------------------------------------------------------------------------
// Campaigns
// ---------------------------------------------------------------------------

/// `GET /v1/campaigns`: `{"campaigns": [campaign, …]}` in log order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignList {
    /// The campaigns.
    pub campaigns: Vec<Campaign>,
}

/// A campaign object of `GET /v1/campaigns[/<id>]` (SPEC §12 "Campaigns").
/// Everything in it is the server's claim: a client proves `issuer_key`
/// from the CampaignOpened entry at `opened_index` (R-API-7) and the outcome
/// from the CampaignClosed entry at `closed_index` (R-API-21).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    /// The campaign id.
    #[serde(with = "campaign_id_hex")]
    pub campaign_id: CampaignId,
    /// Title.
    pub title: String,
    /// Text.
    #[serde(default)]
    pub text: String,
    /// The action pledged.
    pub action: String,
    /// The effective deadline, Unix seconds: the last CampaignUpdated
    /// entry's, else the definition's (R-CAMP-8, R-API-34).
    pub deadline: u64,
    /// The definition's deadline when an update extended it (R-API-34);
    /// absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_deadline: Option<u64>,
    /// The organiser's texts in other languages, ascending by tag
    /// (R-CAMP-9, R-API-34); absent when there are none. `title` and `text`
    /// above stay the original.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub texts: Vec<CampaignTextSpec>,
    /// Success goal.
    pub goal: u32,
    /// Smallest allowed threshold.
    pub threshold_min: u32,
    /// Largest allowed threshold.
    pub threshold_max: u32,
    /// Reveal policy: `live`, `sealed` (R-API-49), or `other`.
    #[serde(default)]
    pub reveal: String,
    /// `open`, `closing` or `closed`.
    pub state: CampaignState,
    /// Who may obtain tokens; `null` if the server does not say.
    #[serde(default)]
    pub attester: Option<AttesterKind>,
    /// The invite group of an `invite` campaign.
    #[serde(default)]
    pub invite_group: Option<String>,
    /// The domains an `email` campaign is restricted to (R-API-28); absent
    /// for other campaigns and for an `email` campaign open to any domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_domains: Option<Vec<String>>,
    /// The canonical definition encoding (R-CAMP-1), base64 as served
    /// ([`Campaign::definition_bytes`] decodes it).
    #[serde(default)]
    pub definition: String,
    /// The issuer key, canonical SPKI (R-TOKEN-5), base64 as served
    /// ([`Campaign::issuer_key_bytes`] decodes it): unverified (R-API-7).
    pub issuer_key: String,
    /// Index of the CampaignOpened entry (R-API-7).
    #[serde(default)]
    pub opened_index: Option<u64>,
    /// Index of the CampaignClosed entry once logged (R-API-21).
    #[serde(default)]
    pub closed_index: Option<u64>,
    /// The latest tally, unsigned.
    #[serde(default)]
    pub tally: Option<TallySummary>,
    /// The publication policy (R-PUB-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publication: Option<Publication>,
    /// The funding extension (R-CAMP-5); absent for a campaign without it,
    /// so plain campaigns' objects are unchanged. A claim like
    /// `definition`: a client checks it against the logged definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funding: Option<FundingSpec>,
    /// The sealed block and joint key of a sealed campaign (R-SEAL-30,
    /// R-API-49); absent for any other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<SealedInfo>,
}

/// A campaign's funding extension in JSON (SPEC R-CAMP-5, R-API-23):
/// `{"currency": "EUR", "minor_digits": 2, "support_levels": [3000, 6000],
/// "surplus_to_fund": false}`. Amounts are integers in minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FundingSpec {
    /// ISO 4217 alphabetic code, three letters A-Z.
    pub currency: String,
    /// Decimal digits of the minor unit, 0..=4.
    pub minor_digits: u8,
    /// The support menu: at most 8 amounts in minor units, strictly
    /// ascending, each at least 1 (may be empty: funding only).
    #[serde(default)]
    pub support_levels: Vec<u64>,
    /// Activated funders give their whole amount (R-FUND-5).
    #[serde(default)]
    pub surplus_to_fund: bool,
}

impl FundingSpec {
    /// The extension of a definition.
    pub fn of(f: &crate::campaign::Funding) -> Self {
        Self {
            currency: f.currency().to_owned(),
            minor_digits: f.minor_digits(),
            support_levels: f.levels().to_vec(),
            surplus_to_fund: f.surplus_to_fund(),
        }
    }

    /// Validates it into a definition's extension.
    ///
    /// # Errors
    /// [`crate::codec::DecodeError`] naming the field R-CAMP-5 refuses.
    pub fn to_funding(&self) -> Result<crate::campaign::Funding, crate::codec::DecodeError> {
        let currency: [u8; 3] = self.currency.as_bytes().try_into().map_err(|_| {
            crate::codec::DecodeError::OutOfRange {
                field: "funding.currency",
                reason: "must be three letters A-Z",
            }
        })?;
        let flags = if self.surplus_to_fund {
            crate::campaign::FLAG_SURPLUS_TO_FUND
        } else {
            0
        };
        crate::campaign::Funding::new(
            currency,
            self.minor_digits,
            self.support_levels.clone(),
            flags,
        )
    }
}

// `definition` and `issuer_key` stay the served text: they are claims a
// client checks against the log, and callers of the client library have
// always decoded them themselves (a `Vec<u8>` here would still compile there
// and then fail at run time).
impl Campaign {
    /// The campaign id. Always `Ok` (the id is checked when the object is
    /// decoded); the `Result` is kept for callers of the client library
    /// written when the id was text.
    ///
    /// # Errors
    /// None.
    pub fn id(&self) -> Result<CampaignId, std::convert::Infallible> {
        Ok(self.campaign_id)
    }

    /// `issuer_key` decoded; `None` if it is not standard padded base64.
    pub fn issuer_key_bytes(&self) -> Option<Vec<u8>> {
        B64.decode(self.issuer_key.as_bytes()).ok()
    }

    /// `definition` decoded; `None` if it is not standard padded base64.
    pub fn definition_bytes(&self) -> Option<Vec<u8>> {
        B64.decode(self.definition.as_bytes()).ok()
    }
}

/// `state` of a campaign (R-API-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignState {
    /// Deadline in the future.
    Open,
    /// Deadline passed, the CampaignClosed entry not yet logged.
    Closing,
    /// The CampaignClosed entry is in the log.
    Closed,
}

impl CampaignState {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closing => "closing",
            Self::Closed => "closed",
        }
    }
}

impl fmt::Display for CampaignState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `attester` of a campaign object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttesterKind {
    /// The open attester (R-API-12).
    Open,
    /// Invite codes (R-API-11).
    Invite,
    /// One-time codes sent by e-mail (R-API-28).
    Email,
    /// An attester this version does not know (a newer server's): its
    /// campaigns are listed, and no token is asked for them.
    #[serde(other)]
    Other,
}

impl AttesterKind {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Invite => "invite",
            Self::Email => "email",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for AttesterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `tally` of a campaign object: the unsigned summary of the latest tally.
/// For a sealed campaign (R-API-49) `entries` is `Some` and the JSON is
/// `{"checkpoint_size", "entries"}` only: no `live`, no `active` (they read
/// 0 here and mean nothing); for any other, `{"checkpoint_size", "live",
/// "active"}` as always.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "TallySummaryWire", from = "TallySummaryWire")]
pub struct TallySummary {
    /// Log size the tally was computed at.
    pub checkpoint_size: u64,
    /// Live pledges (0 for a sealed campaign: not shown).
    pub live: u64,
    /// Active count A (0 for a sealed campaign: not shown).
    pub active: u64,
    /// A sealed campaign's count of sealed entries (R-SEAL-80); `None` for
    /// a live campaign.
    pub entries: Option<u64>,
}

/// The JSON of [`TallySummary`]: the figures of its kind only.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct TallySummaryWire {
    checkpoint_size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    live: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    active: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entries: Option<u64>,
}

impl From<TallySummary> for TallySummaryWire {
    fn from(t: TallySummary) -> Self {
        let live = t.entries.is_none();
        Self {
            checkpoint_size: t.checkpoint_size,
            live: live.then_some(t.live),
            active: live.then_some(t.active),
            entries: t.entries,
        }
    }
}

impl From<TallySummaryWire> for TallySummary {
    fn from(w: TallySummaryWire) -> Self {
        Self {
            checkpoint_size: w.checkpoint_size,
            live: w.live.unwrap_or(0),
            active: w.active.unwrap_or(0),
            entries: w.entries,
        }
    }
}

/// The sealed block of a campaign in JSON (SPEC R-SEAL-30, R-API-48):
/// `{"buckets": [1, 10, 100], "k": 2, "trustees": ["<64 hex>", …],
/// "reveals": [<unix seconds>, …]}`, in `POST /v1/campaigns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedSpec {
    /// The thresholds a pledger may choose, strictly ascending.
    pub buckets: Vec<u32>,
    /// Trustees a reveal needs.
    pub k: u8,
    /// The trustees' public keys for this campaign, 64 lower-case hex
    /// digits each (canonical ristretto255 encodings), trustee 1 first.
    pub trustees: Vec<String>,
    /// Early reveal times, Unix seconds, strictly ascending (may be
    /// omitted: none).
    #[serde(default)]
    pub reveals: Vec<u64>,
}

impl SealedSpec {
    /// The block of a definition.
    pub fn of(s: &crate::campaign::Sealed) -> Self {
        Self {
            buckets: s.buckets().to_vec(),
            k: s.k(),
            trustees: s.trustees().iter().map(hex::encode).collect(),
            reveals: s.early_reveals().to_vec(),
        }
    }

    /// Validates it into a definition's sealed block (R-SEAL-30; the
    /// definition checks the buckets against the thresholds and the reveals
    /// against the deadline).
    ///
    /// # Errors
    /// [`crate::codec::DecodeError`] naming the field refused.
    pub fn to_sealed(&self) -> Result<crate::campaign::Sealed, crate::codec::DecodeError> {
        let trustees = self
            .trustees
            .iter()
            .map(|t| {
                let ok = t.len() == 64 && t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                let mut key = [0u8; 32];
                if !ok || hex::decode_to_slice(t, &mut key).is_err() {
                    return Err(crate::codec::DecodeError::OutOfRange {
                        field: "sealed.trustees",
                        reason: "each trustee key is 64 lower-case hex digits",
                    });
                }
                Ok(key)
            })
            .collect::<Result<Vec<_>, _>>()?;
        crate::campaign::Sealed::new(self.buckets.clone(), self.k, trustees, self.reveals.clone())
    }
}

/// The sealed block of a campaign object (R-API-49): the definition's block
/// and the trustees' joint key once their key generation logged it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedInfo {
    /// The thresholds a pledger may choose.
    pub buckets: Vec<u32>,
    /// Trustees a reveal needs.
    pub k: u8,
    /// The trustees' public keys, hex, trustee 1 first.
    pub trustees: Vec<String>,
    /// Early reveal times.
    #[serde(default)]
    pub reveals: Vec<u64>,
    /// The joint key (64 lower-case hex digits) once the key generation is
    /// complete in the log (R-SEAL-34), else `null`: a claim a client
    /// checks by replaying the campaign's trustee messages.
    #[serde(default)]
    pub joint_key: Option<String>,
    /// The revealed snapshots, in log order (R-API-53, R-SEAL-37).
    #[serde(default)]
    pub revealed: Vec<RevealedInfo>,
}

/// One revealed snapshot of a sealed campaign (R-API-53): what its
/// SealedTallyRevealed entry logged, with the tally it gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevealedInfo {
    /// The snapshot's log index (a SealedSnapshot entry or the close).
    pub snapshot: u64,
    /// Pledges per bucket, bucket 0 first.
    pub counts: Vec<u64>,
    /// Live pledges: the sum of the counts (null pledges count nowhere).
    pub live: u64,
    /// The active count of the revealed histogram (R-TALLY-9).
    pub active: u64,
}

/// `GET /v1/log/witnesses` (R-API-22).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessPolicy {
    /// Cosignatures a client should require.
    pub quorum: usize,
    /// The witnesses' verifier keys (R-COSIG-4 text).
    pub witnesses: Vec<String>,
}

/// `POST /v1/campaigns` (admin): a new campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// Title.
    pub title: String,
    /// Text (may be omitted: empty).
    #[serde(default)]
    pub text: String,
    /// The action pledged.
    pub action: String,
    /// Deadline, Unix seconds, in the future.
    pub deadline: u64,
    /// Success goal.
    pub goal: u32,
    /// Smallest allowed threshold.
    pub threshold_min: u32,
    /// Largest allowed threshold.
    pub threshold_max: u32,
    /// Who may obtain tokens.
    pub attester: AttesterPolicy,
    /// Publication policy (R-PUB-1); absent: the server's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publication: Option<Publication>,
    /// The funding extension (R-CAMP-5, R-API-23); absent: a campaign
    /// without conditional funding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funding: Option<FundingSpec>,
    /// The sealed block (R-SEAL-30, R-API-48); absent: a live campaign.
    /// Not with `funding`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<SealedSpec>,
}

/// A campaign's attester policy: `{"kind": "open"}`, `{"kind": "invite",
/// "group": "<group>"}` or `{"kind": "email"}` with an optional `"domains":
/// ["<domain>", …]` (R-API-28).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", from = "StrictAttesterPolicy")]
pub enum AttesterPolicy {
    /// No check beyond the per-address rate limit (not Sybil-resistant,
    /// R-API-12).
    Open,
    /// Single-use invite codes minted for `group` (R-API-11).
    Invite {
        /// The invite group.
        group: String,
    },
    /// One-time codes sent to an e-mail address (R-API-28), optionally only
    /// to addresses of `domains` (lower-case domain names, matched exactly:
    /// a subdomain is another domain).
    Email {
        /// The domains taken; `None`: any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        domains: Option<Vec<String>>,
    },
}

impl AttesterPolicy {
    /// The kind, as a campaign object shows it.
    pub fn kind(&self) -> AttesterKind {
        match self {
            Self::Open => AttesterKind::Open,
            Self::Invite { .. } => AttesterKind::Invite,
            Self::Email { .. } => AttesterKind::Email,
        }
    }
}

/// Most domains an `email` policy may list (R-API-28).
pub const MAX_EMAIL_DOMAINS: usize = 100;

/// Whether `d` is a domain name as an `email` policy lists it (R-API-28):
/// 1 to 253 characters of lower-case `a–z 0–9 - .`, dot-separated labels of 1
/// to 63 characters, none starting or ending with `-` (an internationalised
/// domain is given as its `xn--` A-label form).
pub fn valid_email_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

// serde's `deny_unknown_fields` does not reach the unit variants of an
// internally tagged enum (`{"kind": "open", "x": 1}` would pass): these
// mirrors decode `open` as an empty struct variant, which refuses extra
// fields (R-API-1), and convert.

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum StrictAttesterPolicy {
    Open {},
    Invite {
        group: String,
    },
    Email {
        #[serde(default)]
        domains: Option<Vec<String>>,
    },
}

impl From<StrictAttesterPolicy> for AttesterPolicy {
    fn from(p: StrictAttesterPolicy) -> Self {
        match p {
            StrictAttesterPolicy::Open {} => Self::Open,
            StrictAttesterPolicy::Invite { group } => Self::Invite { group },
            StrictAttesterPolicy::Email { domains } => Self::Email { domains },
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum StrictAttestation {
    Open {},
    Invite {
        #[serde(with = "secret_string")]
        code: Zeroizing<String>,
    },
    Email {
        #[serde(with = "secret_string")]
        address: Zeroizing<String>,
        #[serde(with = "secret_string")]
        code: Zeroizing<String>,
    },
}

impl From<StrictAttestation> for Attestation {
    fn from(a: StrictAttestation) -> Self {
        match a {
            StrictAttestation::Open {} => Self::Open,
            StrictAttestation::Invite { code } => Self::Invite { code },
            StrictAttestation::Email { address, code } => Self::Email { address, code },
        }
    }
}

/// A campaign's publication policy (R-PUB-1): its pledges, amendments and
/// withdrawals are integrated only in groups of at least `min_pledges`,
/// after a random delay of up to `max_delay_ms` once the group is complete,
/// so that no published batch shows one person's entry alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publication {
    /// Smallest group of pledge entries of the campaign that is published.
    pub min_pledges: u32,
    /// Longest random wait once a group is complete, in milliseconds.
    pub max_delay_ms: u64,
}

impl Publication {
    /// No holding: every entry is integrated with the next batch (no
    /// protection of the count's rise; for demonstrations).
    pub const IMMEDIATE: Self = Self {
        min_pledges: 1,
        max_delay_ms: 0,
    };

    /// Whether entries of this campaign are held at all.
    pub fn holds(&self) -> bool {
        self.min_pledges > 1 || self.max_delay_ms > 0
    }

    /// Whether the policy is within R-PUB-1's bounds.
    pub fn in_bounds(&self) -> bool {
        (1..=MAX_PUBLISH_MIN).contains(&self.min_pledges)
            && self.max_delay_ms <= MAX_PUBLISH_DELAY_MS
    }
}

/// `201` answer to `POST /v1/campaigns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignCreated {
    /// The new campaign's id, 64 lower-case hex digits as served (text, as
    /// callers of the client library have always read it; [`Self::id`]
    /// parses it).
    pub campaign_id: String,
    /// Index of its CampaignOpened entry.
    pub index: u64,
    /// Size of the checkpoint the receipt proves against.
    pub checkpoint_size: u64,
    /// C2SP tlog-proof for the entry.
    pub receipt: String,
}

impl CampaignCreated {
    /// The parsed campaign id; `None` if it is not 64 lower-case hex digits.
    pub fn id(&self) -> Option<CampaignId> {
        parse_campaign_id(&self.campaign_id)
    }
}

/// A campaign's title and text in one language (R-CAMP-9): an element of
/// `texts` in a campaign object and in `POST /v1/admin/campaigns/<id>/update`
/// (R-API-33).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignTextSpec {
    /// A lower-case language tag (R-CAMP-7): `fr`, `pt-br`.
    pub lang: String,
    /// The title in that language.
    pub title: String,
    /// The text in that language (may be omitted: empty).
    #[serde(default)]
    pub text: String,
}

/// `POST /v1/admin/campaigns/<id>/update` (admin, R-API-33): a later
/// deadline, texts in other languages, or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignUpdate {
    /// The new deadline, Unix seconds (R-CAMP-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<u64>,
    /// Texts for 1 to 16 languages (R-CAMP-9).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub texts: Vec<CampaignTextSpec>,
}

/// `200` answer to `POST /v1/admin/campaigns/<id>/update` (R-API-33).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignUpdateAccepted {
    /// The campaign.
    #[serde(with = "campaign_id_hex")]
    pub campaign_id: CampaignId,
    /// The update's number (1 for the first, R-RULE-11).
    pub update: u32,
    /// Index of the CampaignUpdated entry.
    pub index: u64,
    /// The effective deadline after it.
    pub deadline: u64,
    /// The languages the campaign has texts in after it, ascending.
    pub languages: Vec<String>,
}

/// `POST /v1/admin/invites` (admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInvites {
    /// The invite group.
    pub group: String,
    /// How many codes, 1 to [`MAX_INVITES_PER_CALL`].
    pub count: u32,
}

/// `201` answer to `POST /v1/admin/invites`: the codes, shown once (R-API-8).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitesMinted {
    /// The invite group.
    pub group: String,
    /// Single-use codes, 32 lower-case hex digits each.
    pub codes: Vec<String>,
    /// Open campaigns of this group when the codes were minted. 0: the codes
    /// work only once a campaign of the group opens (a misspelt group is
    /// the usual cause). Absent from older servers' answers (read as 0).
    #[serde(default)]
    pub campaigns: u32,
}

impl fmt::Debug for InvitesMinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvitesMinted")
            .field("group", &self.group)
            .field("codes", &self.codes.len())
            .field("campaigns", &self.campaigns)
            .finish()
    }
}

/// Answer to `DELETE /v1/admin/invites/<group>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitesRevoked {
    /// The invite group.
    pub group: String,
    /// Unused codes deleted.
    pub deleted: u64,
}

/// Answer to `GET /v1/admin/invites` (R-API-37): every invite group with
/// unused codes or an open campaign, by name. Counts only (R-API-39).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteGroups {
    /// The groups, in byte order of their names.
    pub groups: Vec<InviteGroup>,
}

/// One group of [`InviteGroups`] (R-API-38).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteGroup {
    /// The invite group.
    pub group: String,
    /// Codes minted and neither redeemed nor revoked (nor deleted with the
    /// group's last campaign, R-STORE-4).
    pub unused: u64,
    /// Open campaigns that take the group's codes (as in
    /// [`InvitesMinted::campaigns`]).
    pub campaigns: u32,
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

/// `POST /v1/tokens` (R-API-9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The proof of eligibility.
    pub attestation: Attestation,
    /// One blinded message per campaign, 1 to [`MAX_TOKEN_REQUESTS`].
    pub requests: Vec<BlindedRequest>,
}

/// `attestation` of a token request: `{"kind": "open"}`, `{"kind":
/// "invite", "code": "<code>"}` or `{"kind": "email", "address":
/// "<address>", "code": "<code from the mail>"}` (R-API-30).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", from = "StrictAttestation")]
pub enum Attestation {
    /// The open attester (R-API-12).
    Open,
    /// A single-use invite code (R-API-11), secret until used.
    Invite {
        /// The code.
        #[serde(with = "secret_string")]
        code: Zeroizing<String>,
    },
    /// An e-mail address and the one-time code sent to it (R-API-30).
    Email {
        /// The address, as given to `POST /v1/attest/email`.
        #[serde(with = "secret_string")]
        address: Zeroizing<String>,
        /// The code from the mail.
        #[serde(with = "secret_string")]
        code: Zeroizing<String>,
    },
}

impl fmt::Debug for Attestation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open => f.write_str("Open"),
            Self::Invite { .. } => f.debug_struct("Invite").finish_non_exhaustive(),
            Self::Email { .. } => f.debug_struct("Email").finish_non_exhaustive(),
        }
    }
}

/// `POST /v1/attest/email` (R-API-29): send a one-time code to `address`
/// for token requests naming `campaigns` (each an open `email` campaign).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailCodeRequest {
    /// The address.
    #[serde(with = "secret_string")]
    pub address: Zeroizing<String>,
    /// The campaigns the code will be good for, 1 to [`MAX_TOKEN_REQUESTS`].
    #[serde(with = "campaign_ids_hex")]
    pub campaigns: Vec<CampaignId>,
}

impl fmt::Debug for EmailCodeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailCodeRequest")
            .field("campaigns", &self.campaigns.len())
            .finish_non_exhaustive()
    }
}

/// `202` answer to `POST /v1/attest/email`: the code is on its way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailCodeSent {
    /// Seconds the code stays valid.
    pub expires_in: u64,
    /// Wrong codes tolerated before the code is void.
    pub attempts: u32,
}

/// Lists of campaign ids as the API writes them (R-API-1).
mod campaign_ids_hex {
    use super::{CampaignId, Deserialize, Deserializer, Serializer};
    use serde::ser::SerializeSeq as _;

    pub fn serialize<S: Serializer>(ids: &[CampaignId], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(ids.len()))?;
        for id in ids {
            seq.serialize_element(&id.to_hex())?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<CampaignId>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| {
                super::parse_campaign_id(s).ok_or_else(|| {
                    serde::de::Error::custom("campaign ids are 64 lower-case hex digits")
                })
            })
            .collect()
    }
}

/// One campaign of a token request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlindedRequest {
    /// The campaign.
    #[serde(with = "campaign_id_hex")]
    pub campaign_id: CampaignId,
    /// The blinded message (256 bytes for RSA-2048, R-TOKEN-8).
    #[serde(with = "base64_bytes")]
    pub blinded_msg: Vec<u8>,
}

/// `200` answer to `POST /v1/tokens`: blind signatures in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlindSignatures {
    /// One per request, in request order.
    pub blind_signatures: Vec<BlindSignature>,
}

/// One blind signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlindSignature {
    /// The campaign.
    #[serde(with = "campaign_id_hex")]
    pub campaign_id: CampaignId,
    /// The blind signature (256 bytes).
    #[serde(with = "base64_bytes")]
    pub blind_sig: Vec<u8>,
}

// ---------------------------------------------------------------------------
// Pledges, amendments, withdrawals
// ---------------------------------------------------------------------------

/// `POST /v1/pledges`, `/v1/pledges/amend`, `/v1/pledges/withdraw`:
/// `{"entry": "<base64 of the canonical entry encoding>"}` (R-ENTRY-1). The
/// bytes are decoded by the endpoint (400 `malformed_entry`), not here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntrySubmission {
    /// The entry's canonical encoding: exactly the log leaf.
    #[serde(with = "base64_bytes")]
    pub entry: Vec<u8>,
}

/// `200` answer to a pledge, amendment or withdrawal (R-API-14).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryAccepted {
    /// Index of the entry in the log.
    pub index: u64,
    /// Size of the checkpoint the receipt proves against.
    pub checkpoint_size: u64,
    /// C2SP tlog-proof text (§11).
    pub receipt: String,
}

// ---------------------------------------------------------------------------
// Events (`GET /v1/events`)
// ---------------------------------------------------------------------------

/// Data of `event: checkpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointEvent {
    /// The checkpoint's size.
    pub size: u64,
    /// The signed note text (unverified).
    pub note: String,
}

/// Data of `event: tally`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TallyEvent {
    /// The campaign.
    #[serde(with = "campaign_id_hex")]
    pub campaign_id: CampaignId,
    /// Log size of the tally.
    pub checkpoint_size: u64,
    /// Live pledges.
    pub live: u64,
    /// Active count.
    pub active: u64,
    /// The signed tally statement (R-TALLY-7), unverified.
    pub statement: String,
}

/// Data of `event: sealed_tally` (R-API-50): a sealed campaign's statement
/// (R-SEAL-80), which has no live or active count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedTallyEvent {
    /// The campaign.
    #[serde(with = "campaign_id_hex")]
    pub campaign_id: CampaignId,
    /// Log size of the statement.
    pub checkpoint_size: u64,
    /// Sealed pledges and amendments in the log.
    pub entries: u64,
    /// The signed sealed tally statement, unverified.
    pub statement: String,
}

/// The `event:` name of [`SealedTallyEvent`]s.
pub const EVENT_SEALED_TALLY: &str = "sealed_tally";

/// `POST /v1/campaigns/<id>/trustee-messages` (R-API-51): `{"entry":
/// "<base64 of a TrusteeMessage entry>"}`; the answer is an
/// [`EntryAccepted`].
pub type TrusteeMessageSubmission = EntrySubmission;

/// The `event:` name of [`CheckpointEvent`]s.
pub const EVENT_CHECKPOINT: &str = "checkpoint";
/// The `event:` name of [`TallyEvent`]s.
pub const EVENT_TALLY: &str = "tally";

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const ID: &str = "0c5b1a9e62d36f0f9e9c4b3ff0b1e6a1c7e13b8e2a8d0b6f3d1c5a7e9b2f4d60";

    /// Decodes `text` as `T`, encodes it again and checks nothing changed
    /// (as JSON values: key order is the encoder's business).
    fn round_trip<T: Serialize + DeserializeOwned>(text: &str) -> T {
        let t: T = serde_json::from_str(text).unwrap();
        let again = serde_json::to_value(&t).unwrap();
        let want: Value = serde_json::from_str(text).unwrap();
        assert_eq!(again, want, "{text}");
        t
    }

    fn campaign_json(attester: &str, group: &str, closed: &str, tally: &str) -> String {
        format!(
            r#"{{
  "campaign_id": "{ID}",
  "title": "Bike lanes", "text": "Paint them.", "action": "cycle to work",
  "deadline": 1772928000, "goal": 10, "threshold_min": 1, "threshold_max": 1000,
  "reveal": "live",
  "state": "open",
  "attester": {attester},
  "invite_group": {group},
  "definition": "AQIDBA==",
  "issuer_key": "MIIBIjAN",
  "opened_index": 0,
  "closed_index": {closed},
  "tally": {tally},
  "publication": {{"min_pledges": 3, "max_delay_ms": 10000}}
}}"#
        )
    }

    #[test]
    fn campaign_objects_of_spec_round_trip() {
        let c: Campaign = round_trip(&campaign_json(
            r#""open""#,
            "null",
            "null",
            r#"{"checkpoint_size": 12, "live": 3, "active": 2}"#,
        ));
        assert_eq!(c.campaign_id.to_hex(), ID);
        assert_eq!(c.state, CampaignState::Open);
        assert_eq!(c.attester, Some(AttesterKind::Open));
        assert_eq!(c.definition_bytes(), Some(vec![1, 2, 3, 4]));
        assert_eq!(c.id(), Ok(c.campaign_id));
        assert_eq!(
            c.tally,
            Some(TallySummary {
                checkpoint_size: 12,
                live: 3,
                active: 2,
                entries: None,
            })
        );
        // A sealed campaign's summary has its count and nothing else
        // (R-API-49).
        let sealed = TallySummary {
            checkpoint_size: 9,
            live: 0,
            active: 0,
            entries: Some(2),
        };
        assert_eq!(
            serde_json::to_value(sealed).unwrap(),
            json!({"checkpoint_size": 9, "entries": 2})
        );
        let back: TallySummary =
            serde_json::from_value(json!({"checkpoint_size": 9, "entries": 2})).unwrap();
        assert_eq!(back, sealed);
        let c: Campaign = round_trip(&campaign_json(r#""invite""#, r#""staff""#, "57", "null"));
        assert_eq!(
            (c.attester, c.invite_group.as_deref(), c.closed_index),
            (Some(AttesterKind::Invite), Some("staff"), Some(57))
        );
        for (s, state) in [
            ("open", CampaignState::Open),
            ("closing", CampaignState::Closing),
            ("closed", CampaignState::Closed),
        ] {
            assert_eq!(serde_json::to_value(state).unwrap(), json!(s));
            assert_eq!(state.to_string(), s);
        }
        let list: CampaignList = round_trip(&format!(
            r#"{{"campaigns": [{}]}}"#,
            campaign_json(r#""open""#, "null", "null", "null")
        ));
        assert_eq!(list.campaigns.len(), 1);
    }

    #[test]
    fn a_campaign_object_in_struct_order_is_the_servers_bytes() {
        let c: Campaign = serde_json::from_str(&campaign_json(
            "null",
            "null",
            "null",
            r#"{"checkpoint_size": 1, "live": 0, "active": 0}"#,
        ))
        .unwrap();
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"campaign_id":"{ID}","title":"Bike lanes","text":"Paint them.","action":"cycle to work","deadline":1772928000,"goal":10,"threshold_min":1,"threshold_max":1000,"reveal":"live","state":"open","attester":null,"invite_group":null,"definition":"AQIDBA==","issuer_key":"MIIBIjAN","opened_index":0,"closed_index":null,"tally":{{"checkpoint_size":1,"live":0,"active":0}},"publication":{{"min_pledges":3,"max_delay_ms":10000}}}}"#
            )
        );
    }

    #[test]
    fn clients_accept_fields_they_do_not_know_and_missing_optional_ones() {
        let text = format!(
            r#"{{"campaign_id": "{ID}", "title": "t", "action": "a", "deadline": 1,
                "goal": 1, "threshold_min": 1, "threshold_max": 2, "state": "closed",
                "issuer_key": "", "something_new": [1, 2]}}"#
        );
        let c: Campaign = serde_json::from_str(&text).unwrap();
        assert_eq!(c.state, CampaignState::Closed);
        assert!(c.text.is_empty() && c.attester.is_none() && c.publication.is_none());
        let c: Campaign =
            serde_json::from_str(&text.replace(r#""state""#, r#""attester": "sms", "state""#))
                .unwrap();
        assert_eq!(c.attester, Some(AttesterKind::Other));
        let e: ErrorBody = serde_json::from_str(r#"{"error": "busy", "x": 1}"#).unwrap();
        assert_eq!((e.error, e.detail.as_str()), (ErrorCode::Busy, ""));
    }

    #[test]
    fn admin_bodies_of_spec_round_trip() {
        let c: NewCampaign = round_trip(
            r#"{"title": "T", "text": "X", "action": "A", "deadline": 1772928000,
                "goal": 10, "threshold_min": 1, "threshold_max": 1000,
                "attester": {"kind": "open"}}"#,
        );
        assert_eq!(c.attester, AttesterPolicy::Open);
        assert_eq!(c.attester.kind(), AttesterKind::Open);
        let c: NewCampaign = round_trip(
            r#"{"title": "T", "text": "", "action": "A", "deadline": 1772928000,
                "goal": 10, "threshold_min": 1, "threshold_max": 1000,
                "attester": {"kind": "invite", "group": "staff"},
                "publication": {"min_pledges": 3, "max_delay_ms": 10000}}"#,
        );
        assert_eq!(
            c.attester,
            AttesterPolicy::Invite {
                group: "staff".into()
            }
        );
        assert!(c.publication.is_some_and(|p| p.holds() && p.in_bounds()));
        // `text` may be omitted (SPEC §12).
        let c: NewCampaign = decode_request(
            br#"{"title": "T", "action": "A", "deadline": 1, "goal": 1,
                 "threshold_min": 1, "threshold_max": 1, "attester": {"kind": "open"}}"#,
        )
        .unwrap();
        assert!(c.text.is_empty() && c.publication.is_none());
        // R-API-48: a sealed block, its lists of integers and of hex keys
        // taken by the strict decoder; a block R-SEAL-30 refuses is refused
        // by `to_sealed`.
        let key = hex::encode([
            0xe2, 0xf2, 0xae, 0x0a, 0x6a, 0xbc, 0x4e, 0x71, 0xa8, 0x84, 0xa9, 0x61, 0xc5, 0x00,
            0x51, 0x5f, 0x58, 0xe3, 0x0b, 0x6a, 0xa5, 0x82, 0xdd, 0x8d, 0xb6, 0xa6, 0x59, 0x45,
            0xe0, 0x8d, 0x2d, 0x76,
        ]);
        let c: NewCampaign = decode_request(
            format!(
                r#"{{"title": "T", "action": "A", "deadline": 100, "goal": 1,
                 "threshold_min": 1, "threshold_max": 10, "attester": {{"kind": "open"}},
                 "sealed": {{"buckets": [1, 5, 10], "k": 1, "trustees": ["{key}"],
                             "reveals": [50]}}}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        let sealed = c.sealed.unwrap();
        let block = sealed.to_sealed().unwrap();
        assert_eq!(SealedSpec::of(&block), sealed);
        let mut upper = sealed.clone();
        upper.trustees = vec![key.to_uppercase()];
        assert!(upper.to_sealed().is_err());
        let mut k = sealed.clone();
        k.k = 2;
        assert!(k.to_sealed().is_err());
        let created: CampaignCreated = round_trip(&format!(
            r#"{{"campaign_id": "{ID}", "index": 0, "checkpoint_size": 1, "receipt": "r"}}"#
        ));
        assert_eq!(created.id().map(|i| i.to_hex()).as_deref(), Some(ID));
        let n: NewInvites = round_trip(r#"{"group": "staff", "count": 10}"#);
        assert_eq!(n.count, 10);
        let m: InvitesMinted = round_trip(
            r#"{"group": "staff", "codes": ["00112233445566778899aabbccddeeff"], "campaigns": 2}"#,
        );
        assert_eq!(m.campaigns, 2);
        assert!(
            !format!("{m:?}").contains("0011"),
            "codes stay out of Debug"
        );
        round_trip::<InvitesRevoked>(r#"{"group": "staff", "deleted": 3}"#);
        round_trip::<WitnessPolicy>(r#"{"quorum": 1, "witnesses": ["w+01234567+AAAA"]}"#);
        assert!(!Publication::IMMEDIATE.holds());
        assert!(
            !Publication {
                min_pledges: MAX_PUBLISH_MIN + 1,
                max_delay_ms: 0
            }
            .in_bounds()
        );
    }

    #[test]
    fn token_bodies_of_spec_round_trip() {
        let blinded = B64.encode([7u8; 256]);
        let t: TokenRequest = round_trip(&format!(
            r#"{{"attestation": {{"kind": "open"}},
                "requests": [{{"campaign_id": "{ID}", "blinded_msg": "{blinded}"}}]}}"#
        ));
        assert_eq!(t.attestation, Attestation::Open);
        assert_eq!(t.requests[0].blinded_msg, [7u8; 256]);
        let t: TokenRequest = round_trip(&format!(
            r#"{{"attestation": {{"kind": "invite", "code": "c0de"}},
                "requests": [{{"campaign_id": "{ID}", "blinded_msg": "{blinded}"}}]}}"#
        ));
        assert!(matches!(&t.attestation, Attestation::Invite { code } if code.as_str() == "c0de"));
        assert!(
            !format!("{t:?}").contains("c0de"),
            "the code stays out of Debug"
        );
        let s: BlindSignatures = round_trip(&format!(
            r#"{{"blind_signatures": [{{"campaign_id": "{ID}", "blind_sig": "{blinded}"}}]}}"#
        ));
        assert_eq!(s.blind_signatures[0].blind_sig, [7u8; 256]);
    }

    #[test]
    fn entry_bodies_of_spec_round_trip() {
        let e: EntrySubmission = decode_request(br#"{"entry": "AQID"}"#).unwrap();
        assert_eq!(e.entry, [1, 2, 3]);
        round_trip::<EntrySubmission>(r#"{"entry": "AQID"}"#);
        let a: EntryAccepted =
            round_trip(r#"{"index": 5, "checkpoint_size": 6, "receipt": "proof"}"#);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"index":5,"checkpoint_size":6,"receipt":"proof"}"#
        );
    }

    #[test]
    fn event_payloads_of_spec_round_trip() {
        round_trip::<CheckpointEvent>(r#"{"size": 3, "note": "n"}"#);
        let t: TallyEvent = round_trip(&format!(
            r#"{{"campaign_id": "{ID}", "checkpoint_size": 3, "live": 2, "active": 1, "statement": "s"}}"#
        ));
        assert_eq!((t.live, t.active), (2, 1));
    }

    #[test]
    fn email_bodies_of_spec_decode_strictly() {
        // R-API-28: the policy, with and without domains.
        let p: AttesterPolicy = decode_request(br#"{"kind": "email"}"#).unwrap();
        assert_eq!(p, AttesterPolicy::Email { domains: None });
        assert_eq!(p.kind(), AttesterKind::Email);
        assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"kind":"email"}"#);
        let p: AttesterPolicy =
            decode_request(br#"{"kind": "email", "domains": ["union.example"]}"#).unwrap();
        assert_eq!(
            p,
            AttesterPolicy::Email {
                domains: Some(vec!["union.example".into()])
            }
        );
        round_trip::<AttesterPolicy>(r#"{"kind": "email", "domains": ["a.example", "b.example"]}"#);
        assert!(decode_request::<AttesterPolicy>(br#"{"kind": "email", "x": 1}"#).is_err());
        assert!(valid_email_domain("xn--bcher-kva.example"));
        assert!(!valid_email_domain("Union.example") && !valid_email_domain("a..b"));
        // R-API-29: the code request.
        let r: EmailCodeRequest = decode_request(
            format!(r#"{{"address": "jane@union.example", "campaigns": ["{ID}"]}}"#).as_bytes(),
        )
        .unwrap();
        assert_eq!(r.address.as_str(), "jane@union.example");
        assert_eq!(r.campaigns.len(), 1);
        assert!(!format!("{r:?}").contains("jane"));
        for bad in [
            format!(r#"{{"address": "a@b.c", "campaigns": ["{ID}"], "x": 1}}"#),
            format!(
                r#"{{"address": "a@b.c", "campaigns": ["{}"]}}"#,
                ID.to_uppercase()
            ),
            format!(r#"{{"address": "a@b.c", "campaigns": [["{ID}"]]}}"#),
            format!(r#"["a@b.c", ["{ID}"]]"#),
            r#"{"address": "a@b.c"}"#.to_owned(),
        ] {
            assert!(
                decode_request::<EmailCodeRequest>(bad.as_bytes()).is_err(),
                "{bad}"
            );
        }
        // R-API-30: the attestation; its Debug shows neither field.
        let a: Attestation = decode_request(
            br#"{"kind": "email", "address": "jane@x.example", "code": "01234567"}"#,
        )
        .unwrap();
        let dbg = format!("{a:?}");
        assert!(!dbg.contains("jane") && !dbg.contains("01234567"), "{dbg}");
        assert!(decode_request::<Attestation>(br#"{"kind": "email", "code": "1"}"#).is_err());
        let sent: EmailCodeSent = round_trip(r#"{"expires_in": 900, "attempts": 5}"#);
        assert_eq!(sent.expires_in, 900);
    }

    #[test]
    fn error_codes_round_trip_and_unknown_ones_are_kept() {
        assert_eq!(ErrorCode::KNOWN.len(), 48);
        let mut seen = std::collections::BTreeSet::new();
        for code in ErrorCode::KNOWN {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert_eq!(&ErrorCode::parse(s), code);
            assert_eq!(ErrorCode::from(s), *code);
            assert_eq!(code.to_string(), s);
            assert_eq!(*code, s);
            assert_eq!(serde_json::to_value(code).unwrap(), json!(s));
            let body: ErrorBody =
                serde_json::from_value(json!({"error": s, "detail": "d"})).unwrap();
            assert_eq!(&body.error, code);
            assert_eq!(
                serde_json::to_string(&body).unwrap(),
                format!(r#"{{"error":"{s}","detail":"d"}}"#)
            );
        }
        // Every code SPEC §12 names is known.
        for s in [
            "bad_request",
            "malformed_entry",
            "body_too_large",
            "unknown_campaign",
            "unknown_pledge",
            "unauthorized",
            "attester_not_allowed",
            "invite_invalid",
            "campaign_closed",
            "already_issued",
            "double_spend",
            "bad_sequence",
            "withdrawn",
            "wrong_entry_kind",
            "bad_token",
            "bad_signature",
            "threshold_out_of_range",
            "terms_not_allowed",
            "bad_blinded_message",
            "bad_campaign",
            "deadline_in_past",
            "rate_limited",
            "busy",
            "held_back",
            "shutting_down",
            "storage_unavailable",
            "issuer_not_ready",
            "tally_unavailable",
            "too_many_campaigns",
        ] {
            assert!(!matches!(ErrorCode::parse(s), ErrorCode::Other(_)), "{s}");
        }
        // A newer server's code.
        let body: ErrorBody =
            serde_json::from_str(r#"{"error": "quota_exceeded", "detail": "later"}"#).unwrap();
        assert_eq!(body.error, ErrorCode::Other("quota_exceeded".into()));
        assert_eq!(body.error.as_str(), "quota_exceeded");
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":"quota_exceeded","detail":"later"}"#
        );
        assert_eq!("busy".parse::<ErrorCode>(), Ok(ErrorCode::Busy));
    }

    #[test]
    fn requests_are_strict() {
        let blinded = B64.encode([7u8; 256]);
        let token = |att: &str, id: &str, msg: &str| {
            format!(
                r#"{{"attestation": {att}, "requests": [{{"campaign_id": "{id}", "blinded_msg": "{msg}"}}]}}"#
            )
        };
        let open = r#"{"kind": "open"}"#;
        assert!(decode_request::<TokenRequest>(token(open, ID, &blinded).as_bytes()).is_ok());
        let refused = [
            // unknown fields, at every level
            token(r#"{"kind": "open", "x": 1}"#, ID, &blinded),
            token(r#"{"kind": "invite", "code": "c", "x": 1}"#, ID, &blinded),
            token(r#"{"kind": "other"}"#, ID, &blinded),
            format!(r#"{{"attestation": {open}, "requests": [], "x": 1}}"#),
            token(open, &format!(r#"{ID}", "x": "1"#), &blinded),
            // duplicate fields
            format!(r#"{{"attestation": {open}, "attestation": {open}, "requests": []}}"#),
            // upper-case hex, short ids
            token(open, &ID.to_uppercase(), &blinded),
            token(open, "abcd", &blinded),
            // not standard padded base64
            token(open, ID, blinded.trim_end_matches('=')),
            token(open, ID, "AQJ="),
            token(open, ID, &blinded.replacen("Bw", "B_", 1)),
            // arrays in place of objects
            format!(r#"[{open}, []]"#),
            format!(r#"{{"attestation": {open}, "requests": [["{ID}", "{blinded}"]]}}"#),
            r#"{"attestation": ["open"], "requests": []}"#.to_owned(),
        ];
        for body in &refused {
            assert!(
                decode_request::<TokenRequest>(body.as_bytes()).is_err(),
                "{body}"
            );
        }
        assert!(matches!(
            decode_request::<EntrySubmission>(br#"["AQID"]"#),
            Err(RequestError::ArrayForObject)
        ));
        assert_eq!(
            decode_request::<EntrySubmission>(br#"["AQID"]"#)
                .unwrap_err()
                .to_string(),
            "invalid JSON: objects are expected where an array was given"
        );
        for body in [
            &br#"{"entry": "AQID", "extra": 1}"#[..],
            br#"{"entry": "AQID", "entry": "AQID"}"#,
            br#"{"entry": "AQI"}"#,
            br#""#,
        ] {
            assert!(matches!(
                decode_request::<EntrySubmission>(body),
                Err(RequestError::Json(_))
            ));
        }
        assert!(decode_request::<NewInvites>(br#"{"group": "g", "count": 1, "x": 0}"#).is_err());
        for attester in [
            r#"{"kind": "open", "x": 1}"#,
            r#"{"kind": "invite", "group": "g", "x": 1}"#,
        ] {
            let body = format!(
                r#"{{"title": "T", "action": "A", "deadline": 1, "goal": 1,
                     "threshold_min": 1, "threshold_max": 1, "attester": {attester}}}"#
            );
            assert!(
                decode_request::<NewCampaign>(body.as_bytes()).is_err(),
                "{body}"
            );
        }
        assert!(decode_request::<NewInvites>(br#"["g", 1]"#).is_err());
        assert!(
            decode_request::<NewCampaign>(
                br#"{"title": "T", "action": "A", "deadline": 1, "goal": 1,
                     "threshold_min": 1, "threshold_max": 1, "attester": {"kind": "open"},
                     "publication": {"min_pledges": 1, "max_delay_ms": 0, "x": 1}}"#
            )
            .is_err()
        );
        // The funding menu is the one array of integers a body may hold.
        let with = |funding: &str| {
            format!(
                r#"{{"title": "T", "action": "A", "deadline": 1, "goal": 1,
                     "threshold_min": 1, "threshold_max": 1, "attester": {{"kind": "open"}},
                     "funding": {funding}}}"#
            )
        };
        let ok = decode_request::<NewCampaign>(
            with(r#"{"currency": "EUR", "minor_digits": 2, "support_levels": [3000, 6000]}"#)
                .as_bytes(),
        )
        .unwrap();
        let f = ok.funding.unwrap();
        assert_eq!(f.support_levels, [3000, 6000]);
        assert!(!f.surplus_to_fund);
        assert_eq!(f.to_funding().unwrap().levels(), [3000, 6000]);
        for bad in [
            r#"["EUR", 2, [3000], false]"#,
            r#"{"currency": "EUR", "minor_digits": 2, "support_levels": ["3000"]}"#,
            r#"{"currency": "EUR", "minor_digits": 2, "support_levels": [-1]}"#,
            r#"{"currency": "EUR", "minor_digits": 2, "x": 1}"#,
            r#"{"currency": "EUR"}"#,
        ] {
            assert!(
                decode_request::<NewCampaign>(with(bad).as_bytes()).is_err(),
                "{bad}"
            );
        }
        // Only under that name: an array of numbers elsewhere stays refused.
        assert!(
            decode_request::<NewCampaign>(
                br#"{"title": "T", "action": "A", "deadline": 1, "goal": 1,
                     "threshold_min": 1, "threshold_max": 1, "attester": {"kind": "open"},
                     "publication": [1, 0]}"#
            )
            .is_err()
        );
    }

    #[test]
    fn group_names() {
        assert!(valid_group("staff-2026.a_b"));
        assert!(valid_group(&"g".repeat(MAX_GROUP_LEN)));
        assert!(!valid_group(""));
        assert!(!valid_group(&"g".repeat(MAX_GROUP_LEN + 1)));
        assert!(!valid_group("a b"));
        assert!(!valid_group("é"));
    }

    /// SPEC §12 and [`ErrorCode`] name the same codes: every code of a
    /// status table (`| 409 | `code` |`) is known, and every known code is
    /// written in §12 (a table or R-API-2's list).
    #[test]
    fn spec_and_error_codes_agree() {
        let spec = include_str!("../../SPEC.md");
        let start = spec.find("\n## 12. ").expect("SPEC §12");
        let end = spec[start..].find("\n## 13. ").expect("SPEC §13") + start;
        let http = &spec[start..end];
        let mut tabled = std::collections::BTreeSet::new();
        for line in http.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() > 3
                && cells[1].len() == 3
                && cells[1].bytes().all(|b| b.is_ascii_digit())
            {
                // "`a`" or "`a`, `b`": the codes are the odd pieces.
                for code in cells[2].split('`').skip(1).step_by(2) {
                    tabled.insert(code.to_owned());
                }
            }
        }
        assert!(tabled.len() > 10, "SPEC §12's tables were not found");
        for code in &tabled {
            assert!(
                !matches!(ErrorCode::parse(code), ErrorCode::Other(_)),
                "SPEC §12 lists `{code}`, ErrorCode does not know it"
            );
        }
        for code in ErrorCode::KNOWN {
            assert!(
                http.contains(&format!("`{}`", code.as_str())),
                "ErrorCode::{code:?} is not in SPEC §12"
            );
        }
    }
}
