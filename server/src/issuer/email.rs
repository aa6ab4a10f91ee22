//! The e-mail attester (SPEC R-API-28 … R-API-31, issue 19): a one-time code
//! sent by SMTP to the address a pledger gives, redeemed with a token request.
//!
//! What it keeps, and where:
//!
//! - **In memory only**, for a code's life (at most the configured lifetime,
//!   15 minutes by default): the pending code, the campaigns it is good for,
//!   its expiry and its attempts left, under the key `HMAC-SHA-256(m,
//!   normalized address)` where `m` is a random key drawn at start-up and
//!   never written anywhere. The clear address is not kept at all once the
//!   mail is handed to the relay. A restart forgets every pending code (the
//!   pledger asks again).
//! - **In memory only**, per fixed one-hour window: request counts per
//!   address (under the same keyed hash) and per domain (`HMAC(m, domain)`).
//! - **Durably**, as for invites (R-API-10), in the issuance transaction:
//!   per campaign `HMAC-SHA-256(k, SHA-256("pledge email v1" ‖ 0 ‖
//!   normalized address) ‖ campaign id)`, so one address gets one token per
//!   campaign. These marks are in the campaign's keyed-hash set and go with it
//!   at close (R-STORE-4).
//!
//! Nothing here logs an address, a code, or a relay's answer text (which may
//! quote the address); a failed delivery is logged by kind and SMTP code only.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use pledge_protocol::api::valid_email_domain;
use pledge_protocol::hash::{CampaignId, sha256};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::attester::{Attester, RATE_LIMIT_KEYS, person_mark};
use super::{Attestation, AttesterPolicy, IssueError, issued_set};
use crate::store::IssueTxn;

/// How the server reaches its mail relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpTls {
    /// Plain SMTP, then `STARTTLS`, required (default port 587).
    #[default]
    StartTls,
    /// TLS from the first byte (SMTPS, default port 465).
    Tls,
    /// No TLS at all (default port 25): for a relay on the same host or a
    /// test; credentials and addresses travel in clear.
    None,
}

impl std::str::FromStr for SmtpTls {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "starttls" => Ok(Self::StartTls),
            "tls" => Ok(Self::Tls),
            "none" => Ok(Self::None),
            other => Err(format!(
                "smtp_tls must be starttls, tls or none, got {other:?}"
            )),
        }
    }
}

/// The mail relay (`smtp_*` settings). `Debug` prints no credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpRelay {
    /// Host name (checked against its certificate under TLS).
    pub host: String,
    /// Port; `None`: the default of [`SmtpRelay::tls`].
    pub port: Option<u16>,
    /// TLS mode.
    pub tls: SmtpTls,
    /// User name and password for `AUTH`, if any.
    pub credentials: Option<(String, Zeroizing<String>)>,
    /// The `From:` of the mails, e.g. `Pledges <pledge@union.example>`.
    pub from: String,
    /// A PEM file of the only CA certificates to trust for the relay instead
    /// of the system's (a private relay's own CA).
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for SmtpRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpRelay")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("credentials", &self.credentials.as_ref().map(|_| ".."))
            .field("from", &self.from)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// The e-mail attester's settings (SPEC R-API-29).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSettings {
    /// The relay; `None`: e-mail campaigns cannot be created and codes are
    /// answered 503 `mail_unavailable`.
    pub relay: Option<SmtpRelay>,
    /// How long a code is valid.
    pub code_ttl: Duration,
    /// Wrong codes tolerated before a code is void.
    pub max_attempts: u32,
    /// Code requests per address per hour (0: no limit).
    pub per_address_per_hour: u32,
    /// Code requests per domain per hour (0: no limit).
    pub per_domain_per_hour: u32,
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            relay: None,
            code_ttl: Duration::from_secs(15 * 60),
            max_attempts: 5,
            per_address_per_hour: 5,
            per_domain_per_hour: 1000,
        }
    }
}

/// Most codes pending at once; more requests are refused (429) until some
/// expire or are used.
pub const MAX_PENDING: usize = 100_000;

/// Longest an address may be (RFC 5321: 64 + 1 + 255, held to the 254 of a
/// forward path).
pub const MAX_ADDRESS_LEN: usize = 254;

/// How long delivering one code to the relay may take (R-API-3's 30 s cover
/// the whole request).
const SEND_TIMEOUT: Duration = Duration::from_secs(20);

/// A normalized address (SPEC R-API-28): surrounding white space removed,
/// the domain in ASCII lower case, the local part exactly as given.
pub struct Address {
    full: Zeroizing<String>,
    at: usize,
}

impl std::fmt::Debug for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Address(..)")
    }
}

impl Address {
    /// Normalizes and checks `raw`; `None` if it is not an address this
    /// attester takes: ASCII only, at most [`MAX_ADDRESS_LEN`] bytes, a local
    /// part of 1 to 64 bytes that lettre accepts as a mailbox's, and a domain
    /// name (no address literal) as [`valid_email_domain`] takes it.
    pub fn parse(raw: &str) -> Option<Self> {
        let t = raw.trim();
        if !t.is_ascii() || t.len() > MAX_ADDRESS_LEN {
            return None;
        }
        let (local, domain) = t.rsplit_once('@')?;
        if local.is_empty() || local.len() > 64 {
            return None;
        }
        let domain = Zeroizing::new(domain.to_ascii_lowercase());
        if !valid_email_domain(&domain) || !domain.contains('.') {
            return None;
        }
        lettre::Address::new(local, domain.as_str()).ok()?;
        let mut full = Zeroizing::new(String::with_capacity(t.len()));
        full.push_str(local);
        full.push('@');
        full.push_str(&domain);
        Some(Self {
            full,
            at: local.len(),
        })
    }

    /// The domain (lower case).
    pub fn domain(&self) -> &str {
        &self.full[self.at + 1..]
    }

    /// The whole normalized address.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The durable marks' person value: `SHA-256("pledge email v1" ‖ 0 ‖
    /// address)`.
    fn person(&self) -> [u8; 32] {
        sha256(&[b"pledge email v1\0", self.full.as_bytes()])
    }
}

/// Whether a campaign of `policy` takes addresses of `domain`.
pub fn domain_allowed(policy: &AttesterPolicy, domain: &str) -> bool {
    match policy {
        AttesterPolicy::Email { domains: None } => true,
        AttesterPolicy::Email {
            domains: Some(list),
        } => list.iter().any(|d| d == domain),
        _ => false,
    }
}

/// Checks an `email` policy's domain list (R-API-28).
pub fn valid_domain_list(domains: &Option<Vec<String>>) -> bool {
    match domains {
        None => true,
        Some(list) => {
            !list.is_empty()
                && list.len() <= pledge_protocol::api::MAX_EMAIL_DOMAINS
                && list.iter().all(|d| valid_email_domain(d))
                && list.iter().enumerate().all(|(i, d)| !list[..i].contains(d))
        }
    }
}

struct Pending {
    code: Zeroizing<String>,
    campaigns: Vec<CampaignId>,
    expires: Instant,
    attempts_left: u32,
}

/// Fixed one-hour windows of counts per keyed hash.
struct Window {
    start: Instant,
    counts: HashMap<[u8; 32], u32>,
}

impl Window {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            counts: HashMap::new(),
        }
    }

    /// Counts one request of `key`; `Err(seconds to wait)` over `limit`.
    fn check(&mut self, key: [u8; 32], limit: u32, now: Instant) -> Result<(), u64> {
        let window = Duration::from_secs(3600);
        if now.duration_since(self.start) >= window {
            self.start = now;
            self.counts = HashMap::new();
        }
        if limit == 0 {
            return Ok(());
        }
        let refused = window
            .saturating_sub(now.duration_since(self.start))
            .as_secs()
            .max(1);
        let full = self.counts.len() >= RATE_LIMIT_KEYS;
        match self.counts.get_mut(&key) {
            Some(n) if *n >= limit => Err(refused),
            Some(n) => {
                *n += 1;
                Ok(())
            }
            None if full => Err(refused),
            None => {
                self.counts.insert(key, 1);
                Ok(())
            }
        }
    }

    fn refund(&mut self, key: &[u8; 32]) {
        if let Some(n) = self.counts.get_mut(key) {
            *n = n.saturating_sub(1);
        }
    }
}

struct State {
    pending: HashMap<[u8; 32], Pending>,
    per_address: Window,
    per_domain: Window,
}

/// A code drawn for an address, not yet delivered ([`EmailAttester::deliver`]).
pub struct CodeTicket {
    address: Address,
    key: [u8; 32],
    domain_key: [u8; 32],
    code: Zeroizing<String>,
    campaigns: Vec<CampaignId>,
}

impl std::fmt::Debug for CodeTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeTicket").finish_non_exhaustive()
    }
}

/// The e-mail attester.
pub struct EmailAttester {
    hmac_key: Zeroizing<[u8; 32]>,
    memory_key: Zeroizing<[u8; 32]>,
    settings: EmailSettings,
    mailer: Option<(AsyncSmtpTransport<Tokio1Executor>, Mailbox)>,
    state: Mutex<State>,
}

impl std::fmt::Debug for EmailAttester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailAttester").finish_non_exhaustive()
    }
}

impl EmailAttester {
    /// Durable marks under `hmac_key` (the issuer's `k`); the relay and the
    /// limits of `settings`. Builds the SMTP client (no connection yet).
    ///
    /// # Errors
    /// A message naming the setting that is wrong (the `From:` address, the
    /// CA file, the TLS set-up).
    pub fn new(hmac_key: Zeroizing<[u8; 32]>, settings: EmailSettings) -> Result<Self, String> {
        let mut memory_key = Zeroizing::new([0u8; 32]);
        getrandom::fill(memory_key.as_mut_slice())
            .map_err(|e| format!("no randomness for the e-mail attester: {e}"))?;
        let mailer = settings.relay.as_ref().map(build_mailer).transpose()?;
        Ok(Self {
            hmac_key,
            memory_key,
            settings,
            mailer,
            state: Mutex::new(State {
                pending: HashMap::new(),
                per_address: Window::new(),
                per_domain: Window::new(),
            }),
        })
    }

    /// Whether a relay is configured.
    pub fn has_relay(&self) -> bool {
        self.mailer.is_some()
    }

    /// The settings.
    pub fn settings(&self) -> &EmailSettings {
        &self.settings
    }

    fn memory_hash(&self, label: &[u8], value: &[u8]) -> [u8; 32] {
        match <Hmac<Sha256> as KeyInit>::new_from_slice(self.memory_key.as_slice()) {
            Ok(mut mac) => {
                mac.update(label);
                mac.update(value);
                mac.finalize().into_bytes().into()
            }
            // INVARIANT: HMAC accepts keys of any length.
            Err(_) => sha256(&[self.memory_key.as_slice(), label, value]),
        }
    }

    /// Counts the request against the limits and draws a code for `address`
    /// and `campaigns` (already checked open and of this address's domain).
    ///
    /// # Errors
    /// [`IssueError::RateLimited`], [`IssueError::MailUnavailable`] without a
    /// relay.
    pub fn prepare(
        &self,
        address: Address,
        campaigns: Vec<CampaignId>,
    ) -> Result<CodeTicket, IssueError> {
        if self.mailer.is_none() {
            return Err(IssueError::MailUnavailable);
        }
        let key = self.memory_hash(b"address\0", address.as_str().as_bytes());
        let domain_key = self.memory_hash(b"domain\0", address.domain().as_bytes());
        let now = Instant::now();
        let mut st = lock(&self.state);
        st.pending.retain(|_, p| p.expires > now);
        if st.pending.len() >= MAX_PENDING && !st.pending.contains_key(&key) {
            return Err(IssueError::RateLimited { retry_after: 60 });
        }
        let s = &self.settings;
        st.per_address
            .check(key, s.per_address_per_hour, now)
            .map_err(|retry_after| IssueError::RateLimited { retry_after })?;
        if let Err(retry_after) = st.per_domain.check(domain_key, s.per_domain_per_hour, now) {
            st.per_address.refund(&key);
            return Err(IssueError::RateLimited { retry_after });
        }
        drop(st);
        let code = draw_code().ok_or(IssueError::SigningFailed)?;
        Ok(CodeTicket {
            address,
            key,
            domain_key,
            code,
            campaigns,
        })
    }

    /// Sends the ticket's code to its address; on success the code is
    /// pending (replacing an earlier one of the address), on failure nothing
    /// is kept and the request does not count against the limits.
    ///
    /// # Errors
    /// [`IssueError::MailUnavailable`].
    pub async fn deliver(&self, ticket: CodeTicket) -> Result<(), IssueError> {
        let sent = match &self.mailer {
            Some((transport, from)) => {
                self.send(transport, from, &ticket.address, &ticket.code)
                    .await
            }
            None => Err(()),
        };
        let mut st = lock(&self.state);
        if sent.is_err() {
            st.per_address.refund(&ticket.key);
            st.per_domain.refund(&ticket.domain_key);
            return Err(IssueError::MailUnavailable);
        }
        let CodeTicket {
            key,
            code,
            campaigns,
            ..
        } = ticket;
        st.pending.insert(
            key,
            Pending {
                code,
                campaigns,
                expires: Instant::now() + self.settings.code_ttl,
                attempts_left: self.settings.max_attempts.max(1),
            },
        );
        Ok(())
    }

    async fn send(
        &self,
        transport: &AsyncSmtpTransport<Tokio1Executor>,
        from: &Mailbox,
        to: &Address,
        code: &str,
    ) -> Result<(), ()> {
        let minutes = self.settings.code_ttl.as_secs().div_ceil(60);
        let body = Zeroizing::new(format!(
            "Your one-time code: {code}\n\n\
             Enter it where you asked for it, within {minutes} minutes. With it you get \
             one anonymous pledge token per campaign for this address; the server keeps \
             no record of your address and cannot tell what you pledge.\n\n\
             If you did not ask for this code, ignore this message.\n"
        ));
        let Ok(rcpt) = to.as_str().parse::<lettre::Address>() else {
            return Err(());
        };
        let message = Message::builder()
            .from(from.clone())
            .to(Mailbox::new(None, rcpt))
            .subject("Your pledge code")
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_string())
            .map_err(|_| {
                tracing::warn!("cannot build the e-mail code's message");
            })?;
        match tokio::time::timeout(SEND_TIMEOUT, transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                // Only the kind and the SMTP code: a relay's answer text may
                // quote the address.
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_tls() {
                    "TLS"
                } else if e.is_permanent() {
                    "permanent refusal"
                } else if e.is_transient() {
                    "transient refusal"
                } else if e.is_response() {
                    "unexpected answer"
                } else {
                    "connection"
                };
                let code = e.status().map(|c| c.to_string()).unwrap_or_default();
                tracing::warn!("the mail relay did not take an e-mail code: {kind} {code}");
                Err(())
            }
            Err(_) => {
                tracing::warn!("the mail relay did not take an e-mail code: timeout");
                Err(())
            }
        }
    }

    /// Pending codes (for tests and metrics).
    pub fn pending_codes(&self) -> usize {
        lock(&self.state).pending.len()
    }
}

impl Attester for EmailAttester {
    fn serves(&self, policy: &AttesterPolicy) -> bool {
        matches!(policy, AttesterPolicy::Email { .. })
    }

    fn admit(
        &self,
        attestation: &Attestation,
        campaigns: &[(CampaignId, &AttesterPolicy)],
        txn: &mut IssueTxn,
    ) -> Result<(), IssueError> {
        let Attestation::Email { address, code } = attestation else {
            return Err(IssueError::AttesterNotAllowed(0));
        };
        let address = Address::parse(address).ok_or(IssueError::BadAddress)?;
        for (i, (_, policy)) in campaigns.iter().enumerate() {
            if !domain_allowed(policy, address.domain()) {
                return Err(IssueError::EmailDomainNotAllowed(i));
            }
        }
        let key = self.memory_hash(b"address\0", address.as_str().as_bytes());
        let now = Instant::now();
        {
            let mut st = lock(&self.state);
            let Some(p) = st.pending.get_mut(&key) else {
                return Err(IssueError::EmailCodeInvalid);
            };
            if p.expires <= now {
                st.pending.remove(&key);
                return Err(IssueError::EmailCodeInvalid);
            }
            // The code is good only for the campaigns it was asked for; a
            // request for others is no guess at the code and costs no attempt.
            if !campaigns.iter().all(|(c, _)| p.campaigns.contains(c)) {
                return Err(IssueError::EmailCodeInvalid);
            }
            let given = code.trim().as_bytes();
            let matches = given.len() == p.code.len() && bool::from(given.ct_eq(p.code.as_bytes()));
            if !matches {
                p.attempts_left = p.attempts_left.saturating_sub(1);
                if p.attempts_left == 0 {
                    st.pending.remove(&key);
                }
                return Err(IssueError::EmailCodeInvalid);
            }
            // Single-use: spent by this request whatever its outcome.
            st.pending.remove(&key);
        }
        let person = address.person();
        for (campaign, _) in campaigns {
            txn.insert.push((
                issued_set(campaign),
                person_mark(&self.hmac_key, &person, campaign),
            ));
        }
        Ok(())
    }
}

/// Eight decimal digits, uniform.
fn draw_code() -> Option<Zeroizing<String>> {
    loop {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b).ok()?;
        let x = u32::from_be_bytes(b);
        // 4·10^9 is a multiple of 10^8: no bias below it.
        if x < 4_000_000_000 {
            return Some(Zeroizing::new(format!("{:08}", x % 100_000_000)));
        }
    }
}

fn build_mailer(r: &SmtpRelay) -> Result<(AsyncSmtpTransport<Tokio1Executor>, Mailbox), String> {
    let from: Mailbox = r
        .from
        .parse()
        .map_err(|e| format!("mail_from {:?} is not a mailbox: {e}", r.from))?;
    let port = r.port.unwrap_or(match r.tls {
        SmtpTls::StartTls => 587,
        SmtpTls::Tls => 465,
        SmtpTls::None => 25,
    });
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(r.host.as_str())
        .port(port)
        .timeout(Some(Duration::from_secs(15)));
    if r.tls != SmtpTls::None {
        let mut params = TlsParameters::builder(r.host.clone());
        if let Some(path) = &r.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read smtp_ca_file {}: {e}", path.display()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| format!("smtp_ca_file {}: {e}", path.display()))?;
            params = params
                .certificate_store(CertificateStore::None)
                .add_root_certificate(cert);
        }
        let params = params
            .build_rustls()
            .map_err(|e| format!("SMTP TLS set-up: {e}"))?;
        b = b.tls(match r.tls {
            SmtpTls::Tls => Tls::Wrapper(params),
            _ => Tls::Required(params),
        });
    }
    if let Some((user, password)) = &r.credentials {
        b = b.credentials(Credentials::new(user.clone(), password.to_string()));
    }
    Ok((b.build(), from))
}

fn lock<T>(l: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn addresses_are_trimmed_and_their_domain_lower_cased() {
        let a = Address::parse("  Jane.Doe+x@Union.EXAMPLE \n").unwrap();
        assert_eq!(a.as_str(), "Jane.Doe+x@union.example");
        assert_eq!(a.domain(), "union.example");
        // The local part is kept as given: another case is another address.
        let b = Address::parse("jane.doe+x@union.example").unwrap();
        assert_ne!(a.person(), b.person());
        assert_eq!(
            a.person(),
            Address::parse("Jane.Doe+x@union.example").unwrap().person()
        );
        for bad in [
            "",
            "no-at-sign",
            "@union.example",
            "jane@",
            "jane@localhost",
            "jane@[192.0.2.1]",
            "jané@union.example",
            "jane@union..example",
            "jane doe@union.example",
            "jane@-union.example",
        ] {
            assert!(Address::parse(bad).is_none(), "{bad:?}");
        }
        assert!(Address::parse(&format!("{}@union.example", "a".repeat(65))).is_none());
    }

    #[test]
    fn domain_lists_are_checked_and_matched_exactly() {
        let p = AttesterPolicy::Email {
            domains: Some(vec!["union.example".into()]),
        };
        assert!(domain_allowed(&p, "union.example"));
        assert!(!domain_allowed(&p, "mail.union.example"));
        assert!(domain_allowed(
            &AttesterPolicy::Email { domains: None },
            "x.example"
        ));
        assert!(!domain_allowed(&AttesterPolicy::Open, "x.example"));
        assert!(valid_domain_list(&None));
        assert!(valid_domain_list(&Some(vec!["a.example".into()])));
        assert!(!valid_domain_list(&Some(vec![])));
        assert!(!valid_domain_list(&Some(vec!["A.example".into()])));
        assert!(!valid_domain_list(&Some(vec![
            "a.example".into(),
            "a.example".into()
        ])));
    }

    #[test]
    fn codes_are_eight_digits() {
        for _ in 0..100 {
            let c = draw_code().unwrap();
            assert_eq!(c.len(), 8);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn the_relay_settings_print_no_password() {
        let r = SmtpRelay {
            host: "smtp.example".into(),
            port: None,
            tls: SmtpTls::StartTls,
            credentials: Some(("user".into(), Zeroizing::new("hunter2".into()))),
            from: "pledge@example.org".into(),
            ca_file: None,
        };
        assert!(!format!("{r:?}").contains("hunter2"));
    }
}
