//! The attesters (DESIGN §2, P3; SPEC R-TOKEN-13): who may get tokens for a
//! campaign, checked before any private operation. The issuer picks the
//! attester by the kind of attestation shown; each campaign names the one it
//! accepts ([`AttesterPolicy`]). Further attesters plug in by implementing
//! [`Attester`]; the e-mail attester is [`super::email`].
//!
//! - [`OpenAttester`]: anyone gets tokens; only an in-memory, per-address
//!   request rate limit applies. **Not Sybil-resistant**: meant for demos and
//!   trusted networks. Nothing about the requester is stored.
//! - [`InviteAttester`]: the operator mints single-use codes for a campaign
//!   group; only `SHA-256(code)` is stored. Redeeming a code takes it and
//!   records, per campaign, the keyed hash `HMAC-SHA-256(k, code hash ‖
//!   campaign id)` in the issuance's durable transaction, so each code
//!   yields at most one token per campaign.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use pledge_protocol::hash::{CampaignId, sha256};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{Attestation, AttesterPolicy, IssueError, invite_set, issued_set};
use crate::store::{IssueTxn, IssuerStore, Mark};

/// Checks a requester for a set of campaigns before tokens are signed.
pub trait Attester: Send + Sync {
    /// Whether this attester answers for campaigns of `policy`.
    fn serves(&self, policy: &AttesterPolicy) -> bool;

    /// Admits the requester showing `attestation` for `campaigns` (each of a
    /// policy this attester [serves](Attester::serves)), and adds what must be
    /// recorded durably with the issuance to `txn`.
    ///
    /// # Errors
    /// [`IssueError`]: nothing is signed or recorded.
    fn admit(
        &self,
        attestation: &Attestation,
        campaigns: &[(CampaignId, &AttesterPolicy)],
        txn: &mut IssueTxn,
    ) -> Result<(), IssueError>;
}

/// The open attester's limit: requests per address key (an IPv4 address or
/// an IPv6 /64, [`crate::serve::address_key`]) in fixed one-minute windows
/// shared by all keys. At a window's end the whole table is dropped, so
/// expiry costs nothing per request and the table never holds more than one
/// window's keys; it holds at most [`RATE_LIMIT_KEYS`], beyond which new keys
/// are refused until the window ends (failing closed under a flood of
/// addresses).
#[derive(Debug)]
struct RateLimiter {
    window_start: Instant,
    counts: HashMap<IpAddr, u32>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self {
            window_start: Instant::now(),
            counts: HashMap::new(),
        }
    }
}

/// Most address keys the open attester's rate limit tracks in one window.
pub const RATE_LIMIT_KEYS: usize = 100_000;

/// The open attester: a per-address rate limit in memory, nothing stored.
#[derive(Debug)]
pub struct OpenAttester {
    limiter: Mutex<RateLimiter>,
    per_minute: u32,
}

impl OpenAttester {
    /// At most `per_minute` requests per address key and minute (0: no limit).
    pub fn new(per_minute: u32) -> Self {
        Self {
            limiter: Mutex::new(RateLimiter::default()),
            per_minute,
        }
    }
}

impl Attester for OpenAttester {
    fn serves(&self, policy: &AttesterPolicy) -> bool {
        matches!(policy, AttesterPolicy::Open)
    }

    fn admit(
        &self,
        attestation: &Attestation,
        _campaigns: &[(CampaignId, &AttesterPolicy)],
        _txn: &mut IssueTxn,
    ) -> Result<(), IssueError> {
        let Attestation::Open { addr } = attestation else {
            return Err(IssueError::AttesterNotAllowed(0));
        };
        // The fixed-window limit per address key, in memory only.
        let (Some(addr), limit) = (*addr, self.per_minute) else {
            return Ok(());
        };
        if limit == 0 {
            return Ok(());
        }
        self.limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check(addr, limit, Instant::now())
            .map_err(|retry_after| IssueError::RateLimited { retry_after })
    }
}

/// The invite attester: single-use codes of a campaign group.
pub struct InviteAttester {
    store: Arc<dyn IssuerStore>,
    hmac_key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for InviteAttester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InviteAttester").finish_non_exhaustive()
    }
}

impl InviteAttester {
    /// Codes in `store`, keyed hashes under `hmac_key` (DESIGN P2).
    pub fn new(store: Arc<dyn IssuerStore>, hmac_key: Zeroizing<[u8; 32]>) -> Self {
        Self { store, hmac_key }
    }

    /// `HMAC-SHA-256(k, code hash ‖ campaign id)` (DESIGN P2).
    fn person_mark(&self, person: &[u8; 32], campaign: &CampaignId) -> Mark {
        person_mark(&self.hmac_key, person, campaign)
    }
}

/// `HMAC-SHA-256(k, person ‖ campaign id)` (DESIGN P2): the durable mark of
/// one person's token for one campaign (an invite code's hash, or an
/// e-mail address's, [`super::email`]).
pub(super) fn person_mark(key: &[u8; 32], person: &[u8; 32], campaign: &CampaignId) -> Mark {
    // INVARIANT: HMAC accepts keys of any length.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => {
            return Mark(sha256(&[key, person, campaign.as_bytes()]));
        }
    };
    mac.update(person);
    mac.update(campaign.as_bytes());
    Mark(mac.finalize().into_bytes().into())
}

impl Attester for InviteAttester {
    fn serves(&self, policy: &AttesterPolicy) -> bool {
        matches!(policy, AttesterPolicy::Invite { .. })
    }

    fn admit(
        &self,
        attestation: &Attestation,
        campaigns: &[(CampaignId, &AttesterPolicy)],
        txn: &mut IssueTxn,
    ) -> Result<(), IssueError> {
        let Attestation::Invite { code } = attestation else {
            return Err(IssueError::AttesterNotAllowed(0));
        };
        let code_hash = sha256(&[code.as_bytes()]);
        // All campaigns must belong to one group: the code's.
        let mut group = None;
        for (i, (_, policy)) in campaigns.iter().enumerate() {
            if let AttesterPolicy::Invite { group: g } = policy {
                match group {
                    None => group = Some(g.clone()),
                    Some(ref first) if first != g => {
                        return Err(IssueError::AttesterNotAllowed(i));
                    }
                    Some(_) => {}
                }
            }
        }
        let Some(group) = group else {
            return Err(IssueError::RequestCount);
        };
        // Refuse unknown codes before any RSA work (a flood of guessed codes
        // must not cost private operations); the transaction remains the
        // authority.
        let set = invite_set(&group);
        match self.store.contains_mark(&set, &Mark(code_hash)) {
            Ok(true) => {}
            Ok(false) => return Err(IssueError::InviteInvalid),
            Err(e) => {
                tracing::error!("reading invite codes failed: {e}");
                return Err(IssueError::Storage);
            }
        }
        txn.take.push((set, Mark(code_hash)));
        for (campaign, _) in campaigns {
            txn.insert
                .push((issued_set(campaign), self.person_mark(&code_hash, campaign)));
        }
        Ok(())
    }
}

impl RateLimiter {
    /// Counts one request from `addr`; `Err(seconds to wait)` over `limit`.
    fn check(&mut self, addr: IpAddr, limit: u32, now: Instant) -> Result<(), u64> {
        let window = Duration::from_secs(60);
        if now.duration_since(self.window_start) >= window {
            self.window_start = now;
            self.counts = HashMap::new();
        }
        let left = window.saturating_sub(now.duration_since(self.window_start));
        let refused = left.as_secs().max(1);
        let key = crate::serve::address_key(addr);
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
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn rate_limit_keys_ipv6_by_64_and_forgets_at_the_window_end() {
        let mut rl = RateLimiter::default();
        let t0 = rl.window_start;
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(rl.check(a, 2, t0).is_ok());
        assert!(rl.check(same_64, 2, t0).is_ok());
        // Third request from the same /64: refused with the time left.
        assert_eq!(rl.check(a, 2, t0 + Duration::from_secs(20)), Err(40));
        assert!(rl.check(other_64, 2, t0).is_ok());
        // IPv4 and IPv4-mapped IPv6 are one address.
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert!(rl.check(v4, 1, t0).is_ok());
        assert!(rl.check(mapped, 1, t0).is_err());
        // A new window forgets everything at once.
        assert!(rl.check(a, 2, t0 + Duration::from_secs(60)).is_ok());
        assert_eq!(rl.counts.len(), 1);
    }

    #[test]
    fn rate_limit_table_is_bounded() {
        let mut rl = RateLimiter::default();
        let t0 = rl.window_start;
        for i in 0..RATE_LIMIT_KEYS as u32 {
            assert!(rl.check(IpAddr::from(i.to_be_bytes()), 5, t0).is_ok());
        }
        let late: IpAddr = "203.0.113.200".parse().unwrap();
        let late = if rl.counts.contains_key(&late) {
            IpAddr::from([250, 250, 250, 250])
        } else {
            late
        };
        assert!(rl.check(late, 5, t0).is_err(), "a new key past the bound");
        assert_eq!(rl.counts.len(), RATE_LIMIT_KEYS);
        // Known keys keep their own budget.
        assert!(rl.check(IpAddr::from(7u32.to_be_bytes()), 5, t0).is_ok());
    }
}
