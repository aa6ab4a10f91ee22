//! The issuer and its attesters (DESIGN §2, P2, P3; SPEC R-TOKEN-8, R-TOKEN-13,
//! R-PRIV-1): per-campaign RSA issuer keys kept in store metadata and deleted
//! at close, the `open` and `invite` attesters, and all-or-nothing issuance of
//! blind signatures for one or many campaigns (cover issuance).
//!
//! - `open`: anyone gets tokens; only an in-memory, per-address request rate
//!   limit applies. **Not Sybil-resistant**: meant for demos and trusted
//!   networks. Nothing about the requester is stored.
//! - `invite`: the operator mints single-use codes for a campaign group; only
//!   `SHA-256(code)` is stored. Redeeming a code takes it and records, per
//!   campaign, the keyed hash `HMAC-SHA-256(k, code hash ‖ campaign id)` in one
//!   durable transaction, so each code yields at most one token per campaign.
//!
//! No handler types here: the HTTP layer maps [`IssueError`] to statuses.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use pledge_protocol::campaign::{CampaignDefinition, CampaignParams, RevealPolicy};
use pledge_protocol::entry::{CampaignOpened, Entry};
use pledge_protocol::hash::{CampaignId, sha256};
use pledge_protocol::token::{BlindSignature, IssuerSecretKey, TokenError};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::ledger::{Ledger, MetaUpdates, Phase, Published};
use crate::store::{IssueTxn, Mark, Store, StoreError};

/// Most campaigns one token request may cover.
pub use pledge_protocol::token::MAX_TOKEN_REQUESTS;
/// Most invite codes minted per admin call.
pub const MAX_INVITES_PER_CALL: u32 = 10_000;
/// Longest invite group name.
pub const MAX_GROUP_LEN: usize = 64;

/// How requesters of a campaign's tokens are checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum AttesterPolicy {
    /// No check beyond the per-address rate limit (not Sybil-resistant).
    Open,
    /// Single-use invite codes minted for `group`.
    Invite {
        /// The campaign group the codes are minted for.
        group: String,
    },
}

/// What the requester shows.
#[derive(Debug)]
pub enum Attestation {
    /// The open attester; the address only feeds the in-memory rate limit.
    Open {
        /// The peer address, if known.
        addr: Option<IpAddr>,
    },
    /// An invite code.
    Invite {
        /// The code as given.
        code: Zeroizing<String>,
    },
}

/// One blinded message for one campaign.
#[derive(Debug)]
pub struct TokenRequest {
    /// The campaign.
    pub campaign: CampaignId,
    /// The 256-byte blinded message.
    pub blinded: Vec<u8>,
}

/// Why tokens were not issued. Nothing was signed or recorded in any case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// No requests, or more than [`MAX_TOKEN_REQUESTS`].
    #[error("a token request must name between 1 and 64 campaigns")]
    RequestCount,
    /// The same campaign twice in one request.
    #[error("request {0} repeats a campaign")]
    DuplicateCampaign(usize),
    /// Unknown campaign.
    #[error("request {0}: unknown campaign")]
    UnknownCampaign(usize),
    /// The campaign is closed, closing or past its deadline.
    #[error("request {0}: the campaign is closed")]
    CampaignClosed(usize),
    /// The campaign's key is not loaded (it was just created, or is missing).
    #[error("request {0}: the campaign's issuer is not ready")]
    NotReady(usize),
    /// The attestation kind is not the campaign's.
    #[error("request {0}: this campaign does not accept this attestation")]
    AttesterNotAllowed(usize),
    /// Unknown or already used invite code.
    #[error("the invite code is unknown or already used")]
    InviteInvalid,
    /// A token was already issued for this invite and campaign.
    #[error("request {0}: a token was already issued to this invite for this campaign")]
    AlreadyIssued(usize),
    /// The open attester's rate limit.
    #[error("too many token requests from this address; retry later")]
    RateLimited {
        /// Seconds until the window resets.
        retry_after: u64,
    },
    /// The blinded message was refused (SPEC R-TOKEN-8).
    #[error("request {index}: {reason}")]
    BlindedMessage {
        /// Position in the request list.
        index: usize,
        /// Why.
        reason: TokenError,
    },
    /// The private operation failed its self-check (SPEC R-TOKEN-9).
    #[error("signing failed")]
    SigningFailed,
    /// The durable write failed.
    #[error("storage failed")]
    Storage,
}

/// Why a campaign could not be created or invites minted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The definition is invalid.
    #[error("invalid campaign: {0}")]
    BadCampaign(String),
    /// The invite group name is invalid.
    #[error("invite group names are 1-64 characters of A-Z a-z 0-9 . _ -")]
    BadGroup,
    /// Count out of range.
    #[error("count must be between 1 and 10000")]
    BadCount,
    /// Key generation failed.
    #[error("issuer key generation failed")]
    KeyGeneration,
    /// The durable write failed.
    #[error("storage failed")]
    Storage,
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        tracing::error!("admin store write failed: {e}");
        AdminError::Storage
    }
}

fn key_meta(id: &CampaignId) -> Vec<u8> {
    format!("issuer-key/{id}").into_bytes()
}
fn policy_meta(id: &CampaignId) -> Vec<u8> {
    format!("campaign-policy/{id}").into_bytes()
}
/// Metadata counter of tokens issued for a campaign.
pub fn tokens_meta(id: &CampaignId) -> Vec<u8> {
    format!("tokens-issued/{id}").into_bytes()
}
fn issued_set(id: &CampaignId) -> Vec<u8> {
    format!("issued/{id}").into_bytes()
}
fn invite_set(group: &str) -> Vec<u8> {
    format!("invite/{group}").into_bytes()
}

/// True for a valid invite group name.
pub fn valid_group(g: &str) -> bool {
    !g.is_empty()
        && g.len() <= MAX_GROUP_LEN
        && g.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
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

/// The issuer: campaign keys in memory, attesters, issuance.
pub struct Issuer {
    store: Arc<dyn Store>,
    hmac_key: Zeroizing<[u8; 32]>,
    keys: RwLock<HashMap<CampaignId, Arc<IssuerSecretKey>>>,
    policies: RwLock<HashMap<CampaignId, AttesterPolicy>>,
    closing: Mutex<HashSet<CampaignId>>,
    limiter: Mutex<RateLimiter>,
    open_per_minute: u32,
    /// Held shared by every issuance from its campaign checks to its durable
    /// commit, and exclusively by [`Issuer::begin_close`], so the counter a
    /// close reads includes every token that passed the checks.
    in_flight: RwLock<()>,
    group: GroupCommit,
}

/// Group commit of issuance transactions: a request's transaction is queued;
/// whoever finds no commit running becomes the leader, merges everything
/// queued into one durable store transaction, publishes each request's result
/// and repeats while requests are queued. One fsync then covers every request
/// that arrived during the previous one (the store's fsync, not RSA, bounded
/// issuance: BENCHMARKS.md). Each request's transaction stays all-or-nothing
/// and durable before its signatures are returned (SPEC R-STORE-5): if the
/// merged transaction fails, nothing of it was applied, and every request is
/// committed again on its own so that each gets its own outcome.
#[derive(Default)]
struct GroupCommit {
    state: Mutex<GroupState>,
    done: Condvar,
}

#[derive(Default)]
struct GroupState {
    queue: Vec<(u64, IssueTxn)>,
    results: HashMap<u64, Result<(), StoreError>>,
    next_ticket: u64,
    leader: bool,
}

impl GroupCommit {
    /// Commits `txn` durably, possibly together with concurrent ones.
    fn commit(&self, store: &dyn Store, txn: IssueTxn) -> Result<(), StoreError> {
        let mut st = lock(&self.state);
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.queue.push((ticket, txn));
        loop {
            if let Some(r) = st.results.remove(&ticket) {
                return r;
            }
            if st.leader {
                st = self.done.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            st.leader = true;
            let batch = std::mem::take(&mut st.queue);
            drop(st);
            let tickets: Vec<u64> = batch.iter().map(|(t, _)| *t).collect();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                commit_group(store, batch)
            }));
            st = lock(&self.state);
            match outcome {
                Ok(results) => st.results.extend(results),
                Err(_) => st.results.extend(tickets.into_iter().map(|t| {
                    (
                        t,
                        Err(StoreError::Backend("issuance commit panicked".into())),
                    )
                })),
            }
            st.leader = false;
            self.done.notify_all();
        }
    }
}

/// One durable transaction for the whole batch when it succeeds; otherwise
/// (nothing of it was applied) one per request, each with its own outcome.
fn commit_group(
    store: &dyn Store,
    batch: Vec<(u64, IssueTxn)>,
) -> Vec<(u64, Result<(), StoreError>)> {
    // Merge only what keeps each request's meaning: takes, inserts and
    // counter increments. Metadata writes and deletes, whose order between
    // requests would change in one transaction, are committed one by one.
    let mergeable = batch
        .iter()
        .all(|(_, x)| x.put.is_empty() && x.delete.is_empty());
    if batch.len() == 1 || !mergeable {
        return commit_each(store, batch);
    }
    let mut merged = IssueTxn::default();
    let mut sums: Vec<(Vec<u8>, u64)> = Vec::new();
    for (_, x) in &batch {
        merged.take.extend(x.take.iter().cloned());
        merged.insert.extend(x.insert.iter().cloned());
        for (k, by) in &x.increment {
            match sums.iter_mut().find(|(s, _)| s == k) {
                Some((_, n)) => match n.checked_add(*by) {
                    Some(sum) => *n = sum,
                    // The sum would not mean the sequence of increments.
                    None => return commit_each(store, batch),
                },
                None => sums.push((k.clone(), *by)),
            }
        }
    }
    merged.increment = sums;
    match store.issue(merged) {
        Ok(()) => batch.into_iter().map(|(t, _)| (t, Ok(()))).collect(),
        Err(_) => commit_each(store, batch),
    }
}

/// One durable transaction per request.
fn commit_each(
    store: &dyn Store,
    batch: Vec<(u64, IssueTxn)>,
) -> Vec<(u64, Result<(), StoreError>)> {
    batch
        .into_iter()
        .map(|(t, x)| (t, store.issue(x)))
        .collect()
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer").finish_non_exhaustive()
    }
}

impl Issuer {
    /// Loads the issuer keys and policies of open campaigns from the store
    /// and finishes the clean-up of closed campaigns (their keyed-hash sets
    /// and keys are dropped again; a no-op once done). SPEC R-STORE-4.
    ///
    /// # Errors
    /// [`StoreError`] from the store.
    pub fn load(
        store: Arc<dyn Store>,
        view: &Published,
        hmac_key: Zeroizing<[u8; 32]>,
        open_per_minute: u32,
    ) -> Result<Self, StoreError> {
        let mut keys = HashMap::new();
        let mut policies = HashMap::new();
        let mut closed_groups = HashSet::new();
        for (id, c) in view.campaigns() {
            if c.closed_at.is_some() {
                let key = key_meta(id);
                store.drop_set(&issued_set(id), &[key.as_slice()])?;
                if let Some(p) = store.meta(&policy_meta(id))?
                    && let Ok(AttesterPolicy::Invite { group }) =
                        serde_json::from_slice::<AttesterPolicy>(&p)
                {
                    closed_groups.insert(group);
                }
                continue;
            }
            if let Some(der) = store.meta(&key_meta(id))? {
                let der = Zeroizing::new(der);
                match IssuerSecretKey::from_der(&der) {
                    Ok(sk) if sk.public_key() == &c.issuer_key => {
                        keys.insert(*id, Arc::new(sk));
                    }
                    _ => tracing::error!(
                        "the stored issuer key of an open campaign is unusable; it cannot issue"
                    ),
                }
            }
            if let Some(p) = store.meta(&policy_meta(id))?
                && let Ok(p) = serde_json::from_slice::<AttesterPolicy>(&p)
            {
                policies.insert(*id, p);
            }
        }
        // Finish an interrupted deletion of invite codes: groups whose last
        // campaign closed (codes minted for a group no campaign used yet are
        // kept).
        for group in closed_groups {
            let in_use = policies
                .values()
                .any(|p| matches!(p, AttesterPolicy::Invite { group: g } if *g == group));
            if !in_use {
                store.drop_set(&invite_set(&group), &[])?;
            }
        }
        Ok(Self {
            store,
            hmac_key,
            keys: RwLock::new(keys),
            policies: RwLock::new(policies),
            closing: Mutex::new(HashSet::new()),
            limiter: Mutex::new(RateLimiter::default()),
            open_per_minute,
            in_flight: RwLock::new(()),
            group: GroupCommit::default(),
        })
    }

    /// The attester policy of a campaign.
    pub fn policy(&self, id: &CampaignId) -> Option<AttesterPolicy> {
        read(&self.policies).get(id).cloned()
    }

    /// Builds a new campaign: validates the definition, generates a fresh
    /// RSA-2048 issuer key (slow: run off the async threads), and returns the
    /// CampaignOpened entry with the metadata to commit with it (the key as
    /// PKCS#8 DER and the attester policy). The key is installed at once so
    /// tokens can be issued as soon as the entry is in the log.
    ///
    /// # Errors
    /// [`AdminError`].
    pub fn prepare_campaign(
        &self,
        mut params: CampaignParams,
        policy: AttesterPolicy,
    ) -> Result<(Entry, MetaUpdates), AdminError> {
        if let AttesterPolicy::Invite { group } = &policy
            && !valid_group(group)
        {
            return Err(AdminError::BadGroup);
        }
        getrandom::fill(&mut params.nonce).map_err(|_| AdminError::KeyGeneration)?;
        let definition =
            CampaignDefinition::new(params).map_err(|e| AdminError::BadCampaign(e.to_string()))?;
        let sk = IssuerSecretKey::generate().map_err(|_| AdminError::KeyGeneration)?;
        let der = sk.to_der().map_err(|_| AdminError::KeyGeneration)?;
        let id = definition.id();
        let entry = Entry::CampaignOpened(CampaignOpened {
            definition,
            issuer_key: sk.public_key().clone(),
        });
        let policy_json = serde_json::to_vec(&policy).map_err(|_| AdminError::KeyGeneration)?;
        let meta = vec![
            (key_meta(&id), Some(der.expose().to_vec())),
            (policy_meta(&id), Some(policy_json)),
        ];
        write(&self.keys).insert(id, Arc::new(sk));
        write(&self.policies).insert(id, policy);
        Ok((entry, meta))
    }

    /// Forgets a campaign whose CampaignOpened entry was refused.
    pub fn discard(&self, id: &CampaignId) {
        write(&self.keys).remove(id);
        write(&self.policies).remove(id);
    }

    /// Mints `count` single-use invite codes for `group`; only their SHA-256
    /// hashes are stored (durably, before the codes are returned).
    ///
    /// # Errors
    /// [`AdminError::BadGroup`], [`AdminError::BadCount`], [`AdminError::Storage`].
    pub fn mint_invites(&self, group: &str, count: u32) -> Result<Vec<String>, AdminError> {
        if !valid_group(group) {
            return Err(AdminError::BadGroup);
        }
        if count == 0 || count > MAX_INVITES_PER_CALL {
            return Err(AdminError::BadCount);
        }
        let mut codes = Vec::new();
        let mut marks = Vec::new();
        for _ in 0..count {
            let mut raw = [0u8; 16];
            getrandom::fill(&mut raw).map_err(|_| AdminError::KeyGeneration)?;
            let code = hex::encode(raw);
            marks.push(Mark(sha256(&[code.as_bytes()])));
            codes.push(code);
        }
        self.store.add_marks(&invite_set(group), &marks)?;
        Ok(codes)
    }

    /// Marks a campaign as closing: no more tokens from now on. Returns once
    /// every issuance that passed its checks before is durable or failed, so
    /// the counter read next is final. Blocking (waits for those commits).
    pub fn begin_close(&self, id: &CampaignId) {
        lock(&self.closing).insert(*id);
        drop(write(&self.in_flight));
    }

    /// Deletes a closed campaign's keyed-hash set and issuer key durably, then
    /// forgets the key in memory (SPEC R-STORE-4, DESIGN P2).
    ///
    /// # Errors
    /// [`StoreError`].
    ///
    /// When the campaign was the last open one of its invite group, the
    /// group's unused invite codes are deleted too (SPEC R-STORE-4): kept,
    /// their hashes with the organiser's list of who got which code would
    /// name who asked for tokens.
    pub fn finish_close(&self, id: &CampaignId) -> Result<(), StoreError> {
        let key = key_meta(id);
        self.store.drop_set(&issued_set(id), &[key.as_slice()])?;
        write(&self.keys).remove(id);
        if let Some(AttesterPolicy::Invite { group }) = self.policy(id) {
            let keys = read(&self.keys);
            let still_used = read(&self.policies).iter().any(|(other, p)| {
                other != id
                    && keys.contains_key(other)
                    && matches!(p, AttesterPolicy::Invite { group: g } if *g == group)
            });
            drop(keys);
            if !still_used {
                self.store.drop_set(&invite_set(&group), &[])?;
            }
        }
        Ok(())
    }

    /// Deletes every unused invite code of `group` (admin); returns how many
    /// there were.
    ///
    /// # Errors
    /// [`AdminError`] for a bad group name or a store failure.
    pub fn revoke_invites(&self, group: &str) -> Result<u64, AdminError> {
        if !valid_group(group) {
            return Err(AdminError::BadGroup);
        }
        Ok(self.store.drop_set(&invite_set(group), &[])?)
    }

    /// Tokens issued for a campaign so far (the durable counter).
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn tokens_issued(&self, id: &CampaignId) -> Result<u64, StoreError> {
        self.store.counter(&tokens_meta(id))
    }

    /// Issues one blind signature per request, all or nothing: checks every
    /// campaign and the attestation, signs every blinded message, then records
    /// the invite use, the keyed hashes and the per-campaign counters in one
    /// durable transaction before anything is returned. Blocking (RSA).
    ///
    /// # Errors
    /// [`IssueError`]; nothing was issued or recorded.
    pub fn issue(
        &self,
        ledger: &Ledger,
        attestation: &Attestation,
        requests: &[TokenRequest],
        now: u64,
    ) -> Result<Vec<BlindSignature>, IssueError> {
        if requests.is_empty() || requests.len() > MAX_TOKEN_REQUESTS {
            return Err(IssueError::RequestCount);
        }
        let mut seen = HashSet::new();
        for (i, r) in requests.iter().enumerate() {
            if !seen.insert(r.campaign) {
                return Err(IssueError::DuplicateCampaign(i));
            }
        }
        // Until the commit below: a close waits for this request.
        let _in_flight = read(&self.in_flight);
        // Campaign state and attester policy, per request.
        let mut signers = Vec::with_capacity(requests.len());
        {
            let view = ledger.published();
            let keys = read(&self.keys);
            let policies = read(&self.policies);
            let closing = lock(&self.closing);
            for (i, r) in requests.iter().enumerate() {
                let c = view
                    .campaign(&r.campaign)
                    .ok_or(IssueError::UnknownCampaign(i))?;
                if c.phase(now) != Phase::Open || closing.contains(&r.campaign) {
                    return Err(IssueError::CampaignClosed(i));
                }
                let key = keys.get(&r.campaign).ok_or(IssueError::NotReady(i))?;
                let policy = policies.get(&r.campaign).ok_or(IssueError::NotReady(i))?;
                let allowed = matches!(
                    (policy, attestation),
                    (AttesterPolicy::Open, Attestation::Open { .. })
                        | (AttesterPolicy::Invite { .. }, Attestation::Invite { .. })
                );
                if !allowed {
                    return Err(IssueError::AttesterNotAllowed(i));
                }
                signers.push((key.clone(), policy.clone()));
            }
        }
        let mut txn = IssueTxn::default();
        match attestation {
            Attestation::Open { addr } => self.rate_limit(*addr)?,
            Attestation::Invite { code } => {
                let code_hash = sha256(&[code.as_bytes()]);
                // All campaigns must belong to one group: the code's.
                let mut group = None;
                for (i, (_, policy)) in signers.iter().enumerate() {
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
                // Refuse unknown codes before any RSA work (a flood of guessed
                // codes must not cost private operations); the transaction
                // below remains the authority.
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
                for r in requests {
                    txn.insert.push((
                        issued_set(&r.campaign),
                        self.person_mark(&code_hash, &r.campaign),
                    ));
                }
            }
        }
        // SPEC R-TOKEN-8/9: checks and private operation, per message.
        let mut out = Vec::with_capacity(requests.len());
        for (i, (r, (key, _))) in requests.iter().zip(&signers).enumerate() {
            let sig = key.blind_sign(&r.blinded).map_err(|e| match e {
                TokenError::SigningFailed => IssueError::SigningFailed,
                reason => IssueError::BlindedMessage { index: i, reason },
            })?;
            out.push(sig);
        }
        for r in requests {
            txn.increment.push((tokens_meta(&r.campaign), 1));
        }
        // Durable before anything is released (SPEC R-STORE-5).
        self.group
            .commit(self.store.as_ref(), txn)
            .map_err(|e| match e {
                StoreError::MarkMissing { .. } => IssueError::InviteInvalid,
                StoreError::MarkExists { position } => IssueError::AlreadyIssued(position),
                other => {
                    tracing::error!("issuance transaction failed: {other}");
                    IssueError::Storage
                }
            })?;
        Ok(out)
    }

    /// `HMAC-SHA-256(k, code hash ‖ campaign id)` (DESIGN P2).
    fn person_mark(&self, person: &[u8; 32], campaign: &CampaignId) -> Mark {
        // INVARIANT: HMAC accepts keys of any length.
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(self.hmac_key.as_slice()) {
            Ok(m) => m,
            Err(_) => {
                return Mark(sha256(&[
                    self.hmac_key.as_slice(),
                    person,
                    campaign.as_bytes(),
                ]));
            }
        };
        mac.update(person);
        mac.update(campaign.as_bytes());
        Mark(mac.finalize().into_bytes().into())
    }

    /// The open attester's fixed-window limit per address key, in memory only.
    fn rate_limit(&self, addr: Option<IpAddr>) -> Result<(), IssueError> {
        let (Some(addr), limit) = (addr, self.open_per_minute) else {
            return Ok(());
        };
        if limit == 0 {
            return Ok(());
        }
        lock(&self.limiter)
            .check(addr, limit, Instant::now())
            .map_err(|retry_after| IssueError::RateLimited { retry_after })
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

/// The demo campaign's definition parameters (open attester, 30 days, t in
/// 1..=1000, goal 10).
pub fn demo_params(now: u64) -> CampaignParams {
    CampaignParams {
        nonce: [0; 16],
        title: "Demo campaign".into(),
        text: "A demonstration campaign opened by pledged --demo. Tokens come from \
               the open attester, which anyone can use: do not rely on its counts. \
               Each pledge is published at once, alone: its timing is not private."
            .into(),
        action: "try the pledge service".into(),
        deadline: now.saturating_add(30 * 24 * 3600),
        goal: 10,
        threshold_min: 1,
        threshold_max: 1000,
        reveal: RevealPolicy::Live,
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}
fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}
fn lock<T>(l: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::RedbStore;

    const SET: &[u8] = b"invite/g";
    const COUNTER: &[u8] = b"tokens-issued/x";

    fn redeem(code: u8) -> IssueTxn {
        IssueTxn {
            take: vec![(SET.to_vec(), Mark([code; 32]))],
            increment: vec![(COUNTER.to_vec(), 1)],
            ..IssueTxn::default()
        }
    }

    #[test]
    fn a_failing_request_in_a_group_fails_alone_and_the_others_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        store
            .add_marks(SET, &[Mark([1; 32]), Mark([2; 32])])
            .unwrap();
        // Code 3 was never minted; code 1 is redeemed twice in one group.
        let got = commit_group(
            &store,
            vec![
                (0, redeem(1)),
                (1, redeem(3)),
                (2, redeem(1)),
                (3, redeem(2)),
            ],
        );
        let outcome: Vec<(u64, bool)> = got.iter().map(|(t, r)| (*t, r.is_ok())).collect();
        assert_eq!(outcome, [(0, true), (1, false), (2, false), (3, true)]);
        assert!(matches!(
            got[1].1,
            Err(StoreError::MarkMissing { position: 0 })
        ));
        assert!(matches!(
            got[2].1,
            Err(StoreError::MarkMissing { position: 0 })
        ));
        assert_eq!(store.counter(COUNTER).unwrap(), 2);
        assert!(!store.contains_mark(SET, &Mark([1; 32])).unwrap());
        assert!(!store.contains_mark(SET, &Mark([2; 32])).unwrap());

        // A group that succeeds is one transaction with the counters summed.
        store
            .add_marks(SET, &[Mark([4; 32]), Mark([5; 32])])
            .unwrap();
        let got = commit_group(&store, vec![(7, redeem(4)), (8, redeem(5))]);
        assert!(got.iter().all(|(_, r)| r.is_ok()));
        assert_eq!(store.counter(COUNTER).unwrap(), 4);
    }

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

    #[test]
    fn concurrent_commits_each_get_their_own_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let marks: Vec<Mark> = (0..32u8).map(|i| Mark([i; 32])).collect();
        store.add_marks(SET, &marks).unwrap();
        let group = GroupCommit::default();
        // 64 threads, each of the 32 codes redeemed twice.
        let ok = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for i in 0..64u8 {
                let (group, store, ok) = (&group, &store, &ok);
                s.spawn(move || match group.commit(store, redeem(i % 32)) {
                    Ok(()) => {
                        ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) => assert!(matches!(e, StoreError::MarkMissing { .. }), "{e}"),
                });
            }
        });
        assert_eq!(ok.into_inner(), 32);
        assert_eq!(store.counter(COUNTER).unwrap(), 32);
        let st = lock(&group.state);
        assert!(st.queue.is_empty() && st.results.is_empty() && !st.leader);
    }
}
