//! The JavaScript-free half of `pledge-web`: argument parsing, the checks
//! made before the random wait, error codes and result shapes (as JSON).
//! Kept apart from the bindings so it is unit-tested natively.

use std::time::Duration;

use pledge_client::client::{ClientError, ErrorCode};
use pledge_client::flows::{AttestKind, FlowError, PledgeStatus, Standing, Submitted};
use pledge_client::wallet::{WalletData, WalletError};
use pledge_protocol::hash::CampaignId;
use pledge_protocol::pledge::Terms;
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// The CLI's default largest random delay (`pledge commit --delay-max`).
pub const DEFAULT_MAX_DELAY_SECONDS: u64 = 600;
/// Largest delay accepted from the page (a day): a larger value is a bug.
pub const MAX_DELAY_SECONDS: u64 = 86_400;

/// An error as the page sees it: `message`, a stable `code`, and what the
/// server said about status and retrying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorInfo {
    /// Stable machine-readable code (web/API.md "Errors").
    pub code: String,
    /// The Rust error's text.
    pub message: String,
    /// HTTP status when the server answered.
    pub status: Option<u16>,
    /// `Retry-After` seconds when the server sent one.
    pub retry_after: Option<u64>,
}

impl ErrorInfo {
    /// An error with a code and a message, nothing from a server.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            status: None,
            retry_after: None,
        }
    }

    /// A bad argument from JavaScript.
    pub fn argument(message: impl Into<String>) -> Self {
        Self::new("bad_argument", message)
    }
}

/// The code of a client (HTTP) error: the server's own code when it sent one.
fn client_code(e: &ClientError) -> &str {
    match e {
        ClientError::Network { .. } => "network",
        ClientError::BadResponse { .. } => "bad_response",
        ClientError::BadUrl(_) => "bad_argument",
        ClientError::Server { code, .. } | ClientError::Refused { code, .. } => match code {
            // No error body (SPEC R-API-2) to take a code from.
            ErrorCode::Other(c) if c.is_empty() || c == "unknown" => "server",
            code => code.as_str(),
        },
        _ => "server",
    }
}

/// The code of a wallet error.
fn wallet_code(e: &WalletError) -> &'static str {
    match e {
        WalletError::Decrypt(_) | WalletError::Protection(_) => "wallet_passphrase",
        WalletError::BadHeader { .. } | WalletError::Contents { .. } | WalletError::TooLarge(_) => {
            "wallet_corrupt"
        }
        WalletError::Kdf(_) | WalletError::Randomness => "crypto",
        _ => "storage",
    }
}

impl From<&WalletError> for ErrorInfo {
    fn from(e: &WalletError) -> Self {
        Self::new(wallet_code(e), e.to_string())
    }
}

impl From<&ClientError> for ErrorInfo {
    fn from(e: &ClientError) -> Self {
        Self {
            code: client_code(e).to_owned(),
            message: e.to_string(),
            status: e.status(),
            retry_after: e.retry_after().map(|d| d.as_secs()),
        }
    }
}

impl From<&FlowError> for ErrorInfo {
    fn from(e: &FlowError) -> Self {
        let code = match e {
            FlowError::Client(c) => return c.into(),
            FlowError::Wallet(w) => return Self::new(wallet_code(w), e.to_string()),
            FlowError::LogKeyChanged { .. } => "log_key_changed",
            FlowError::BadLog(_) => "bad_log",
            FlowError::KeyMismatch { .. } => "key_tagging",
            FlowError::Wallet2(_) => "no_token",
            FlowError::Campaign(_) => "campaign",
            FlowError::Receipt(_) => "receipt",
            FlowError::Crypto(_) => "crypto",
            FlowError::Runtime(_) => "runtime",
            _ => "error",
        };
        Self::new(code, e.to_string())
    }
}

/// `{kind: "open"}`, `{kind: "invite", code, group?}` or `{kind: "email",
/// address, code}` (SPEC R-WEB-17), read field by field. The address and
/// codes go into zeroizing memory at once and are never stored (R-WEB-19).
///
/// # Errors
/// `bad_argument` for another kind, an invite without a code, or an e-mail
/// attestation without its address or code.
pub fn attestation(
    kind: Option<String>,
    code: Option<String>,
    group: Option<String>,
    address: Option<String>,
) -> Result<AttestKind, ErrorInfo> {
    let code = code.map(Zeroizing::new).filter(|c| !c.trim().is_empty());
    let address = address.map(Zeroizing::new).filter(|a| !a.trim().is_empty());
    match kind.as_deref() {
        Some("open") => Ok(AttestKind::Open),
        Some("invite") => match code {
            Some(code) => Ok(AttestKind::Invite {
                code,
                group: group.filter(|g| !g.is_empty()),
            }),
            None => Err(ErrorInfo::argument(
                "an invite attestation needs its code: {kind: \"invite\", code: \"...\"}",
            )),
        },
        Some("email") => match (address, code) {
            (Some(address), Some(code)) => Ok(AttestKind::Email { address, code }),
            _ => Err(ErrorInfo::argument(
                "an e-mail attestation needs the address and the code mailed to it: \
                 {kind: \"email\", address: \"...\", code: \"...\"}",
            )),
        },
        Some(other) => Err(ErrorInfo::argument(format!(
            "unknown attestation kind {other:?}: use \"open\", \"invite\" or \"email\""
        ))),
        None => Err(ErrorInfo::argument(
            "the attestation needs a kind: {kind: \"open\"}, {kind: \"invite\", code: \"...\"} \
             or {kind: \"email\", address: \"...\", code: \"...\"}",
        )),
    }
}

/// A campaign id from 64 hex digits.
///
/// # Errors
/// `bad_argument` otherwise.
pub fn campaign(hex: &str) -> Result<CampaignId, ErrorInfo> {
    CampaignId::from_hex(hex.trim()).map_err(|_| {
        ErrorInfo::argument(format!(
            "{hex:?} is not a campaign id (64 hexadecimal digits)"
        ))
    })
}

/// A threshold from a JavaScript number: a whole number from 1 up.
///
/// # Errors
/// `bad_argument` for a fraction, zero, a negative or a huge number.
pub fn threshold(n: f64) -> Result<u32, ErrorInfo> {
    if n.is_finite() && n.fract() == 0.0 && n >= 1.0 && n <= f64::from(u32::MAX) {
        // INVARIANT: checked whole and within u32 just above.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(n as u32)
    } else {
        Err(ErrorInfo::argument(format!(
            "threshold {n} is not a whole number of people from 1 up"
        )))
    }
}

/// An amount in minor units from a JavaScript number: a whole number in
/// `1..=2^53-1` (every such number is exact in a double).
///
/// # Errors
/// `bad_argument` otherwise.
pub fn amount(n: f64, what: &str) -> Result<u64, ErrorInfo> {
    // INVARIANT: MAX_AMOUNT = 2^53 - 1 converts exactly.
    #[allow(clippy::cast_precision_loss)]
    let max = pledge_protocol::pledge::MAX_AMOUNT as f64;
    if n.is_finite() && n.fract() == 0.0 && n >= 1.0 && n <= max {
        // INVARIANT: checked whole and within 1..=2^53-1 just above.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(n as u64)
    } else {
        Err(ErrorInfo::argument(format!(
            "{what} {n} is not a whole number of minor units from 1 to 2^53-1"
        )))
    }
}

/// The terms of a pledge from the page: `threshold` alone (act), with
/// `support` (act if supported) or with `fund` (give `fund` if `threshold`
/// act); amounts in minor units of the campaign's currency. Whether the
/// campaign takes them is checked by the flows (SPEC R-RULE-10).
///
/// # Errors
/// `bad_argument` for a bad number or both `support` and `fund`.
pub fn terms(threshold: f64, support: Option<f64>, fund: Option<f64>) -> Result<Terms, ErrorInfo> {
    let t = self::threshold(threshold)?;
    match (support, fund) {
        (None, None) => Ok(Terms::Threshold { t }),
        (Some(y), None) => Ok(Terms::SupportedThreshold {
            t,
            support: amount(y, "support")?,
        }),
        (None, Some(x)) => Ok(Terms::Fund {
            n: t,
            amount: amount(x, "fund")?,
        }),
        (Some(_), Some(_)) => Err(ErrorInfo::argument(
            "a pledge asks support or offers money, not both",
        )),
    }
}

/// The `{maxDelaySeconds, now}` options, after defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelayOptions {
    /// Largest random delay.
    pub max: Duration,
    /// Send at once.
    pub now: bool,
}

impl DelayOptions {
    /// The CLI's default: a random delay of at most 600 s.
    pub const DEFAULT: Self = Self {
        max: Duration::from_secs(DEFAULT_MAX_DELAY_SECONDS),
        now: false,
    };

    /// Send at once (amend and withdraw without options, as the CLI does).
    pub const NOW: Self = Self {
        max: Duration::ZERO,
        now: true,
    };

    /// From the fields of the options object (`None`: absent).
    ///
    /// # Errors
    /// `bad_argument` for a negative, fractional or too large delay.
    pub fn parse(max_delay_seconds: Option<f64>, now: Option<bool>) -> Result<Self, ErrorInfo> {
        let max = match max_delay_seconds {
            None => DEFAULT_MAX_DELAY_SECONDS,
            Some(s)
                if s.is_finite()
                    && s.fract() == 0.0
                    && (0.0..=MAX_DELAY_SECONDS as f64).contains(&s) =>
            {
                // INVARIANT: a whole number within 0..=MAX_DELAY_SECONDS.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let s = s as u64;
                s
            }
            Some(s) => {
                return Err(ErrorInfo::argument(format!(
                    "maxDelaySeconds {s} must be a whole number of seconds from 0 to \
                     {MAX_DELAY_SECONDS}"
                )));
            }
        };
        Ok(Self {
            max: Duration::from_secs(max),
            now: now.unwrap_or(false),
        })
    }
}

/// What the page asked to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A new pledge with these terms.
    Commit(Terms),
    /// New terms for my pledge.
    Amend(Terms),
    /// Withdraw my pledge.
    Withdraw,
}

/// Checks, before the random wait, what `flows::commit` / `flows::change`
/// would refuse at once from the wallet alone, so nobody waits ten minutes
/// for "no token". Returns true when an earlier attempt's entry is resent
/// unchanged (the flows do that without a delay, as the CLI does).
///
/// # Errors
/// `no_token` without a token or a live pledge; `campaign` for a second
/// pledge on the same campaign.
pub fn precheck(data: &WalletData, id: &CampaignId, change: Change) -> Result<bool, ErrorInfo> {
    let live = data.pledge_for(id).filter(|p| !p.withdrawn);
    match change {
        Change::Commit(_) => match live {
            Some(p) if p.entries.len() == 1 && p.unacknowledged().is_some() => Ok(true),
            Some(_) => Err(ErrorInfo::new(
                "campaign",
                format!("you already pledged to {id}; amend or withdraw that pledge instead"),
            )),
            None if data.unused_token(id).is_none() => Err(ErrorInfo::new(
                "no_token",
                format!(
                    "no unused token for campaign {id} in this wallet: obtain tokens while it \
                     is open"
                ),
            )),
            None => Ok(false),
        },
        Change::Amend(_) | Change::Withdraw => match live {
            Some(p) => Ok(p.unacknowledged().is_some()),
            None => Err(ErrorInfo::new(
                "no_token",
                format!("no live pledge of yours on {id} in this wallet"),
            )),
        },
    }
}

/// `{index, checkpointSize, verified: true, delayedSeconds}`.
pub fn submitted(s: &Submitted, delayed: Duration) -> Value {
    json!({
        "index": s.index,
        "checkpointSize": s.checkpoint_size,
        // The flows return only after the receipt verified (they fail
        // otherwise), so this is always true when there is a result.
        "verified": true,
        "delayedSeconds": delayed.as_secs(),
    })
}

/// The `status()` array: one object per pledge of the wallet.
pub fn status(list: &[PledgeStatus], data: &WalletData) -> Value {
    let out: Vec<Value> = list
        .iter()
        .map(|s| {
            let index = data
                .pledges
                .iter()
                .rev()
                .find(|p| p.campaign == s.campaign)
                .and_then(|p| p.entries.iter().rev().find_map(|e| e.index));
            let send_after = data
                .pledges
                .iter()
                .rev()
                .find(|p| p.campaign == s.campaign)
                .and_then(|p| p.unacknowledged())
                .and_then(|e| e.send_after);
            let state = if s.unacknowledged > 0 {
                "pending"
            } else if s.withdrawn {
                "withdrawn"
            } else {
                "logged"
            };
            json!({
                "campaign": s.campaign,
                "title": s.title,
                "threshold": s.threshold,
                "state": state,
                "sendAfter": send_after,
                "index": index,
                "receiptVerified": s.included,
                "active": s.activated,
                "activeCount": s.active,
                "live": s.live,
                "goal": s.goal,
                "deadline": s.deadline,
                "campaignState": s.state,
                "statementSize": s.statement_size,
                "checkpointSize": s.checkpoint_size,
                "terms": terms_json(&s.terms),
                "funding": s.funding.as_ref().map(|f| {
                    let (standing, slots, eligible) = match s.standing() {
                        Some(Standing::Activated) => ("activated", None, None),
                        Some(Standing::WaitingForFunds) => ("waiting_for_funds", None, None),
                        Some(Standing::NotActivated) => ("not_activated", None, None),
                        Some(Standing::TieBreak { slots, eligible }) => {
                            ("split", Some(slots), Some(eligible))
                        }
                        // A funding pledge: called or not.
                        _ if u64::from(s.threshold) <= s.active => ("called", None, None),
                        _ => ("not_called", None, None),
                    };
                    json!({
                        "currency": f.block.currency(),
                        "minorDigits": f.block.minor_digits(),
                        "standing": standing,
                        "slots": slots,
                        "eligible": eligible,
                        "due": s.due(),
                        "tieWon": f.tie_won,
                    })
                }),
                "outcome": s.outcome.map(|o| json!({
                    "finalActive": o.active,
                    "finalLive": o.live,
                    "closedIndex": o.closed_index,
                    "onForMe": s.on_for_me(),
                    "goalReached": s.goal_reached(),
                    "text": s.outcome_text(),
                })),
            })
        })
        .collect();
    Value::Array(out)
}

/// `{kind, threshold, support, amount}` (`support` for act kinds, `amount`
/// for fund; minor units).
fn terms_json(t: &Terms) -> Value {
    json!({
        "kind": t.kind().name(),
        "threshold": t.threshold_value(),
        "support": t.support(),
        "amount": match t {
            Terms::Fund { amount, .. } => Some(*amount),
            _ => None,
        },
    })
}

/// What the wallet pinned (SPEC R-CLIENT-1): `{logKey, witnesses, quorum,
/// checkpointSize}`; `logKey` is `null` before the first use.
pub fn pins(data: &WalletData) -> Value {
    match &data.log {
        None => json!({"logKey": null, "witnesses": [], "quorum": 0, "checkpointSize": 0}),
        Some(l) => json!({
            "logKey": l.verifier_key,
            "witnesses": l.witnesses.clone().unwrap_or_default(),
            "quorum": l.quorum,
            "checkpointSize": l.checkpoint_size,
        }),
    }
}

/// Hex ids of the campaigns with an unused token.
pub fn token_campaigns(data: &WalletData) -> Vec<String> {
    let mut out: Vec<String> = data
        .tokens
        .iter()
        .filter(|t| !t.used)
        .map(|t| t.campaign.to_hex())
        .collect();
    out.dedup();
    out
}

/// How long is left, as the whole seconds shown to a person (rounded up, so
/// the countdown reaches 0 only when the wait is over).
pub fn seconds_left(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use pledge_client::wallet::{EntryRecord, PledgeRecord};

    fn id(b: u8) -> CampaignId {
        CampaignId::from_hex(&hex::encode([b; 32])).unwrap()
    }

    #[test]
    fn options_defaults_and_limits() {
        assert_eq!(
            DelayOptions::parse(None, None).unwrap(),
            DelayOptions {
                max: Duration::from_secs(600),
                now: false
            }
        );
        assert_eq!(
            DelayOptions::parse(Some(0.0), Some(true)).unwrap(),
            DelayOptions {
                max: Duration::ZERO,
                now: true
            }
        );
        assert_eq!(
            DelayOptions::parse(Some(86_400.0), None).unwrap().max,
            Duration::from_secs(86_400)
        );
        for bad in [-1.0, 1.5, 86_401.0, f64::NAN, f64::INFINITY] {
            let e = DelayOptions::parse(Some(bad), None).unwrap_err();
            assert_eq!(e.code, "bad_argument", "{bad}");
        }
    }

    #[test]
    fn thresholds_and_campaign_ids() {
        assert_eq!(threshold(1.0).unwrap(), 1);
        assert_eq!(threshold(4_294_967_295.0).unwrap(), u32::MAX);
        for bad in [0.0, -3.0, 2.5, 4_294_967_296.0, f64::NAN] {
            assert_eq!(threshold(bad).unwrap_err().code, "bad_argument", "{bad}");
        }
        let hex = "ab".repeat(32);
        assert_eq!(campaign(&hex).unwrap().to_hex(), hex);
        assert_eq!(campaign("abc").unwrap_err().code, "bad_argument");
        assert_eq!(campaign(&"zz".repeat(32)).unwrap_err().code, "bad_argument");
    }

    #[test]
    fn attestations() {
        assert!(matches!(
            attestation(Some("open".into()), None, None, None).unwrap(),
            AttestKind::Open
        ));
        match attestation(
            Some("invite".into()),
            Some("c0de".into()),
            Some(String::new()),
            None,
        )
        .unwrap()
        {
            AttestKind::Invite { code, group } => {
                assert_eq!(code.as_str(), "c0de");
                assert_eq!(group, None);
            }
            _ => panic!("invite expected"),
        }
        match attestation(
            Some("email".into()),
            Some("12345678".into()),
            None,
            Some("jane@union.example".into()),
        )
        .unwrap()
        {
            AttestKind::Email { address, code } => {
                assert_eq!(address.as_str(), "jane@union.example");
                assert_eq!(code.as_str(), "12345678");
            }
            _ => panic!("email expected"),
        }
        for (k, c, a) in [
            (Some("invite"), None, None),
            (Some("invite"), Some("  "), None),
            (Some("email"), Some("12345678"), None),
            (Some("email"), None, Some("jane@union.example")),
            (Some("email"), Some(" "), Some("jane@union.example")),
            (Some("sms"), Some("1"), None),
            (None, None, None),
        ] {
            let e = attestation(
                k.map(str::to_owned),
                c.map(str::to_owned),
                None,
                a.map(str::to_owned),
            )
            .unwrap_err();
            assert_eq!(e.code, "bad_argument");
        }
    }

    #[test]
    fn error_codes() {
        let refused = FlowError::Client(ClientError::Refused {
            status: 409,
            code: "double_spend".into(),
            detail: "spent".into(),
            retry_after: None,
        });
        let e = ErrorInfo::from(&refused);
        assert_eq!((e.code.as_str(), e.status), ("double_spend", Some(409)));
        assert!(e.message.contains("double_spend"));
        let busy = FlowError::Client(ClientError::Server {
            status: 503,
            code: "unknown".into(),
            detail: String::new(),
            retry_after: Some(3),
        });
        let e = ErrorInfo::from(&busy);
        assert_eq!(
            (e.code.as_str(), e.status, e.retry_after),
            ("server", Some(503), Some(3))
        );
        let cases: Vec<(FlowError, &str)> = vec![
            (
                FlowError::Client(ClientError::Network {
                    url: "u".into(),
                    reason: "r".into(),
                }),
                "network",
            ),
            (
                FlowError::LogKeyChanged {
                    pinned: "a".into(),
                    served: "b".into(),
                },
                "log_key_changed",
            ),
            (FlowError::BadLog("x".into()), "bad_log"),
            (
                FlowError::KeyMismatch {
                    campaign: "c".into(),
                    advertised: "a".into(),
                    logged: "l".into(),
                    index: 0,
                    size: 1,
                },
                "key_tagging",
            ),
            (FlowError::Wallet2("none".into()), "no_token"),
            (
                FlowError::Wallet(WalletError::Decrypt("w".into())),
                "wallet_passphrase",
            ),
            (
                FlowError::Wallet(WalletError::Contents {
                    path: "w".into(),
                    what: "x".into(),
                }),
                "wallet_corrupt",
            ),
            (
                FlowError::Wallet(WalletError::Store("full".into())),
                "storage",
            ),
            (FlowError::Receipt("bad".into()), "receipt"),
        ];
        for (err, code) in cases {
            let info = ErrorInfo::from(&err);
            assert_eq!(info.code, code, "{err}");
            assert_eq!(info.message, err.to_string());
        }
    }

    fn pledge(c: CampaignId, withdrawn: bool, acked: &[bool]) -> PledgeRecord {
        PledgeRecord {
            campaign: c.to_hex(),
            nullifier: "00".repeat(32),
            threshold: 3,
            withdrawn,
            entries: acked
                .iter()
                .enumerate()
                .map(|(i, a)| EntryRecord {
                    kind: "pledge".into(),
                    seq: u32::try_from(i).unwrap(),
                    entry: String::new(),
                    index: a.then_some(10 + i as u64),
                    receipt: a.then(|| "r".to_owned()),
                    send_after: None,
                })
                .collect(),
        }
    }

    #[test]
    fn prechecks_mirror_the_flows() {
        let c = id(1);
        let empty = WalletData::default();
        assert_eq!(
            precheck(&empty, &c, Change::Commit(2.into()))
                .unwrap_err()
                .code,
            "no_token"
        );
        assert_eq!(
            precheck(&empty, &c, Change::Withdraw).unwrap_err().code,
            "no_token"
        );
        let mut w = WalletData::default();
        w.pledges.push(pledge(c, false, &[false]));
        assert!(precheck(&w, &c, Change::Commit(2.into())).unwrap());
        let mut w = WalletData::default();
        w.pledges.push(pledge(c, false, &[true]));
        assert_eq!(
            precheck(&w, &c, Change::Commit(2.into())).unwrap_err().code,
            "campaign"
        );
        assert!(!precheck(&w, &c, Change::Amend(4.into())).unwrap());
        let mut w = WalletData::default();
        w.pledges.push(pledge(c, false, &[true, false]));
        assert!(precheck(&w, &c, Change::Withdraw).unwrap());
        let mut w = WalletData::default();
        w.pledges.push(pledge(c, true, &[true, true]));
        assert_eq!(
            precheck(&w, &c, Change::Amend(4.into())).unwrap_err().code,
            "no_token"
        );
    }

    #[test]
    fn status_shape() {
        let c = id(2);
        let mut w = WalletData::default();
        w.pledges.push(pledge(c, false, &[true, true]));
        let st = PledgeStatus {
            campaign: c.to_hex(),
            title: "Strike".into(),
            threshold: 3,
            withdrawn: false,
            included: true,
            unacknowledged: 0,
            active: 5,
            live: 7,
            goal: 10,
            activated: true,
            deadline: 1_900_000_000,
            state: "open".into(),
            action: "walk out".into(),
            statement_size: 12,
            checkpoint_size: 14,
            outcome: None,
            terms: Terms::Threshold { t: 3 },
            funding: None,
        };
        let v = status(std::slice::from_ref(&st), &w);
        assert!(v[0]["outcome"].is_null());
        let closed = PledgeStatus {
            outcome: Some(pledge_client::flows::Outcome {
                active: 2,
                live: 7,
                closed_index: 13,
            }),
            ..st.clone()
        };
        let c0 = &status(&[closed], &w)[0]["outcome"];
        assert_eq!(c0["onForMe"], false, "threshold 3 > final A 2");
        assert_eq!(c0["goalReached"], false);
        assert!(c0["text"].as_str().unwrap().starts_with("NOT ON"));
        let o = &v[0];
        assert_eq!(o["campaign"], c.to_hex());
        assert_eq!(o["state"], "logged");
        assert_eq!(o["index"], 11);
        assert_eq!(o["receiptVerified"], true);
        assert_eq!(o["active"], true);
        let pending = PledgeStatus {
            unacknowledged: 1,
            withdrawn: true,
            ..st.clone()
        };
        assert_eq!(status(&[pending], &w)[0]["state"], "pending");
        let gone = PledgeStatus {
            withdrawn: true,
            ..st
        };
        assert_eq!(status(&[gone], &w)[0]["state"], "withdrawn");
    }

    #[test]
    fn terms_from_the_page() {
        assert_eq!(terms(3.0, None, None).unwrap(), Terms::Threshold { t: 3 });
        assert_eq!(
            terms(3.0, Some(5000.0), None).unwrap(),
            Terms::SupportedThreshold {
                t: 3,
                support: 5000
            }
        );
        assert_eq!(
            terms(7.0, None, Some(12_345.0)).unwrap(),
            Terms::Fund {
                n: 7,
                amount: 12_345
            }
        );
        assert_eq!(
            terms(
                9_007_199_254_740_991.0_f64.min(5.0),
                None,
                Some(9_007_199_254_740_991.0)
            )
            .unwrap(),
            Terms::Fund {
                n: 5,
                amount: pledge_protocol::pledge::MAX_AMOUNT
            }
        );
        for (y, x) in [
            (Some(0.0), None),
            (Some(1.5), None),
            (None, Some(-3.0)),
            (None, Some(9_007_199_254_740_992.0)),
            (None, Some(f64::NAN)),
            (Some(100.0), Some(100.0)),
        ] {
            assert_eq!(
                terms(3.0, y, x).unwrap_err().code,
                "bad_argument",
                "{y:?} {x:?}"
            );
        }
        assert_eq!(terms(0.0, None, None).unwrap_err().code, "bad_argument");
    }

    #[test]
    fn countdown_rounds_up() {
        assert_eq!(seconds_left(Duration::ZERO), 0);
        assert_eq!(seconds_left(Duration::from_millis(1)), 1);
        assert_eq!(seconds_left(Duration::from_millis(2_000)), 2);
        assert_eq!(seconds_left(Duration::from_millis(2_001)), 3);
    }

    #[test]
    fn submitted_shape() {
        let s = Submitted {
            index: 4,
            checkpoint_size: 9,
            nullifier: "n".into(),
            receipt: "r".into(),
        };
        let v = submitted(&s, Duration::from_millis(12_900));
        assert_eq!(
            v,
            json!({"index": 4, "checkpointSize": 9, "verified": true, "delayedSeconds": 12})
        );
    }
}
