//! The issuer (DESIGN §2, P2, P3; SPEC R-TOKEN-8, R-TOKEN-13, R-PRIV-1):
//! per-campaign RSA issuer keys kept in store metadata and deleted at close,
//! and all-or-nothing issuance of blind signatures for one or many campaigns
//! (cover issuance), after an [`attester`] admitted the requester; every
//! issuance is durable before it is answered ([`group_commit`]).
//!
//! No handler types here: the HTTP layer maps [`IssueError`] to statuses.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};

use pledge_protocol::campaign::{CampaignDefinition, CampaignParams, Funding, RevealPolicy};
use pledge_protocol::entry::{CampaignOpened, Entry};
use pledge_protocol::hash::{CampaignId, sha256};
use pledge_protocol::token::{BlindSignature, IssuerSecretKey, TokenError};
use zeroize::Zeroizing;

pub mod attester;
pub mod email;
mod group_commit;
pub mod wrap;

use self::attester::{Attester, InviteAttester, OpenAttester};
use self::email::{Address, CodeTicket, EmailAttester, EmailSettings};
use self::group_commit::GroupCommit;
use self::wrap::{KeyWrap, Stored};
use crate::ledger::{Ledger, Phase, Published};
use crate::store::{IssueTxn, IssuerStore, Mark, StoreError};

/// How requesters of a campaign's tokens are checked: the wire API's type
/// (`attester` of `POST /v1/campaigns`), also the JSON the store keeps.
pub use pledge_protocol::api::AttesterPolicy;
/// The limits of token requests and invites (SPEC R-API-9, §12), and the
/// invite group names (SPEC §12), defined once in the wire API.
pub use pledge_protocol::api::{
    MAX_GROUP_LEN, MAX_INVITES_PER_CALL, MAX_TOKEN_REQUESTS, valid_group,
};

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
    /// An e-mail address and the code sent to it.
    Email {
        /// The address as given.
        address: Zeroizing<String>,
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
    /// A token was already issued for this invite or address and campaign.
    #[error(
        "request {0}: a token was already issued to this invite code or e-mail address for this campaign"
    )]
    AlreadyIssued(usize),
    /// Not an e-mail address the e-mail attester takes (R-API-28).
    #[error(
        "not an e-mail address this server takes: ASCII local-part@domain.name, at most 254 characters"
    )]
    BadAddress,
    /// No valid pending code for this address and these campaigns.
    #[error(
        "no valid e-mail code for this address and these campaigns: wrong, expired, used, \
         or asked for other campaigns; ask for a new code"
    )]
    EmailCodeInvalid,
    /// The address's domain is not one the campaign takes.
    #[error("request {0}: this campaign does not take addresses of this domain")]
    EmailDomainNotAllowed(usize),
    /// The mail relay did not take the code (or none is configured).
    #[error("the e-mail code could not be sent; retry later")]
    MailUnavailable,
    /// The open attester's rate limit, or the e-mail attester's.
    #[error("too many requests from this address; retry later")]
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
    /// An `email` policy's domain list is invalid.
    #[error(
        "e-mail domains are 1 to 100 distinct lower-case domain names (a-z 0-9 - .; xn-- for \
         internationalised names)"
    )]
    BadDomains,
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

/// One line of [`Issuer::invite_groups`]: counts only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteGroupCount {
    /// The invite group.
    pub group: String,
    /// Its unused (minted, not redeemed, not revoked) codes.
    pub unused: u64,
    /// Open campaigns that take its codes.
    pub campaigns: usize,
}

/// Metadata key of the campaigns whose issuer key is stored but whose
/// CampaignOpened entry is not known to be logged yet (a JSON list of ids).
const PENDING_META: &[u8] = b"issuer-pending";

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
/// The set of closing marks: a campaign's id once its close began (SPEC
/// R-STORE-5). Public data; kept after the close.
const CLOSING_SET: &[u8] = b"closing";
fn closing_mark(id: &CampaignId) -> (Vec<u8>, Mark) {
    (CLOSING_SET.to_vec(), Mark(id.0))
}
fn issued_set(id: &CampaignId) -> Vec<u8> {
    format!("issued/{id}").into_bytes()
}
fn invite_set(group: &str) -> Vec<u8> {
    format!("invite/{group}").into_bytes()
}

/// The issuer: campaign keys in memory, attesters, issuance.
pub struct Issuer {
    store: Arc<dyn IssuerStore>,
    keys: RwLock<HashMap<CampaignId, Arc<IssuerSecretKey>>>,
    policies: RwLock<HashMap<CampaignId, AttesterPolicy>>,
    closing: Mutex<HashSet<CampaignId>>,
    open: OpenAttester,
    invite: InviteAttester,
    email: EmailAttester,
    /// Held shared by every issuance from its campaign checks to its durable
    /// commit, and exclusively by [`Issuer::begin_close`], so the counter a
    /// close reads includes every token that passed the checks.
    in_flight: RwLock<()>,
    group: GroupCommit,
    /// Issuer keys are stored wrapped under this key (SPEC R-STORE-12).
    wrap: KeyWrap,
    /// Serialises updates of the pending-keys list.
    pending: Mutex<()>,
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
        store: Arc<dyn IssuerStore>,
        view: &Published,
        hmac_key: Zeroizing<[u8; 32]>,
        open_per_minute: u32,
    ) -> Result<Self, StoreError> {
        let wrap = KeyWrap::derive(&hmac_key);
        let mut keys = HashMap::new();
        let mut policies = HashMap::new();
        let mut closed_groups = HashSet::new();
        // Keys an older server stored in clear: wrapped now (R-STORE-12).
        let mut rewrap = Vec::new();
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
            if let Some(stored) = store.meta(&key_meta(id))? {
                match open_key(&wrap, id, &stored, &c.issuer_key) {
                    Ok((sk, legacy)) => {
                        if legacy {
                            let der = sk.to_der().map_err(|_| {
                                StoreError::Corrupt("an issuer key does not encode".into())
                            })?;
                            let wrapped = wrap
                                .wrap(id, der.expose())
                                .map_err(|e| StoreError::Backend(e.to_string()))?;
                            rewrap.push((key_meta(id), wrapped));
                        }
                        keys.insert(*id, Arc::new(sk));
                    }
                    Err(e) => tracing::error!(
                        "the stored issuer key of an open campaign is unusable ({e}); it cannot \
                         issue"
                    ),
                }
            }
            if let Some(p) = store.meta(&policy_meta(id))?
                && let Ok(p) = serde_json::from_slice::<AttesterPolicy>(&p)
            {
                policies.insert(*id, p);
            }
        }
        if !rewrap.is_empty() {
            let n = rewrap.len();
            store.issue(IssueTxn {
                put: rewrap,
                ..IssueTxn::default()
            })?;
            tracing::info!("wrapped {n} issuer key(s) stored in clear by an older version");
        }
        // Keys left pending (a crash between the issuer's write and the
        // log's): kept if their campaign is in the log, deleted otherwise.
        let pending = read_pending(store.as_ref())?;
        if !pending.is_empty() {
            let mut delete = Vec::new();
            for hex in &pending {
                if let Ok(id) = CampaignId::from_hex(hex)
                    && view.campaign(&id).is_none()
                {
                    delete.push(key_meta(&id));
                    delete.push(policy_meta(&id));
                }
            }
            store.issue(IssueTxn {
                delete: [vec![PENDING_META.to_vec()], delete].concat(),
                ..IssueTxn::default()
            })?;
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
        let invite_store = store.clone();
        let email = EmailAttester::new(hmac_key.clone(), EmailSettings::default())
            .map_err(StoreError::Backend)?;
        Ok(Self {
            store,
            keys: RwLock::new(keys),
            policies: RwLock::new(policies),
            closing: Mutex::new(HashSet::new()),
            open: OpenAttester::new(open_per_minute),
            invite: InviteAttester::new(invite_store, hmac_key),
            email,
            in_flight: RwLock::new(()),
            group: GroupCommit::default(),
            wrap,
            pending: Mutex::new(()),
        })
    }

    /// Brings the keys in memory in line with `view` on a front end that
    /// does not sequence (SPEC R-STORE-10): loads the key and policy of each
    /// open campaign another front end created; for each campaign closed
    /// since, stops issuing, waits for its own issuances in flight and
    /// deletes the campaign's keyed hashes and key again (one of its
    /// issuances may have committed after the sequencing front end deleted
    /// them, R-STORE-4), then forgets the key. Blocking (store reads and
    /// writes); a no-op when nothing changed.
    ///
    /// # Errors
    /// [`StoreError`] from the store.
    pub fn sync(&self, view: &Published) -> Result<(), StoreError> {
        for (id, c) in view.campaigns() {
            let known = read(&self.keys).contains_key(id);
            if c.closed_at.is_some() {
                if known {
                    self.stop_issuing(id);
                    self.store
                        .drop_set(&issued_set(id), &[key_meta(id).as_slice()])?;
                    write(&self.keys).remove(id);
                }
                continue;
            }
            if known {
                continue;
            }
            let Some(stored) = self.store.meta(&key_meta(id))? else {
                continue;
            };
            match open_key(&self.wrap, id, &stored, &c.issuer_key) {
                Ok((sk, _)) => {
                    if let Some(p) = self.store.meta(&policy_meta(id))?
                        && let Ok(p) = serde_json::from_slice::<AttesterPolicy>(&p)
                    {
                        write(&self.policies).insert(*id, p);
                    }
                    write(&self.keys).insert(*id, Arc::new(sk));
                }
                Err(e) => tracing::error!(
                    "the stored issuer key of an open campaign is unusable ({e}); it cannot issue"
                ),
            }
        }
        Ok(())
    }

    /// With the e-mail attester of `settings` (its relay and limits).
    ///
    /// # Errors
    /// A message naming the wrong setting.
    pub fn with_email(
        mut self,
        hmac_key: Zeroizing<[u8; 32]>,
        settings: EmailSettings,
    ) -> Result<Self, String> {
        self.email = EmailAttester::new(hmac_key, settings)?;
        Ok(self)
    }

    /// The e-mail attester.
    pub fn email(&self) -> &EmailAttester {
        &self.email
    }

    /// `POST /v1/attest/email` before the mail (SPEC R-API-29): checks the
    /// address and the campaigns (each open, of the `email` attester, taking
    /// the address's domain), counts the request against the limits and
    /// draws the code; [`EmailAttester::deliver`] sends it.
    ///
    /// # Errors
    /// [`IssueError`]; nothing is kept.
    pub fn prepare_email_code(
        &self,
        ledger: &Ledger,
        address: &str,
        campaigns: &[CampaignId],
        now: u64,
    ) -> Result<CodeTicket, IssueError> {
        if campaigns.is_empty() || campaigns.len() > MAX_TOKEN_REQUESTS {
            return Err(IssueError::RequestCount);
        }
        let mut seen = HashSet::new();
        for (i, c) in campaigns.iter().enumerate() {
            if !seen.insert(*c) {
                return Err(IssueError::DuplicateCampaign(i));
            }
        }
        let address = Address::parse(address).ok_or(IssueError::BadAddress)?;
        {
            let view = ledger.published();
            let policies = read(&self.policies);
            let closing = lock(&self.closing);
            for (i, id) in campaigns.iter().enumerate() {
                let c = view.campaign(id).ok_or(IssueError::UnknownCampaign(i))?;
                if c.phase(now) != Phase::Open || closing.contains(id) {
                    return Err(IssueError::CampaignClosed(i));
                }
                let policy = policies.get(id).ok_or(IssueError::NotReady(i))?;
                if !self.email.serves(policy) {
                    return Err(IssueError::AttesterNotAllowed(i));
                }
                if !email::domain_allowed(policy, address.domain()) {
                    return Err(IssueError::EmailDomainNotAllowed(i));
                }
            }
        }
        self.email.prepare(address, campaigns.to_vec())
    }

    /// The issuer's side of the store.
    pub fn store(&self) -> &Arc<dyn IssuerStore> {
        &self.store
    }

    /// The attester policy of a campaign.
    pub fn policy(&self, id: &CampaignId) -> Option<AttesterPolicy> {
        read(&self.policies).get(id).cloned()
    }

    /// How many open campaigns take invite codes of `group`.
    pub fn group_campaigns(&self, group: &str) -> usize {
        self.open_invite_campaigns()
            .get(group)
            .copied()
            .unwrap_or(0)
    }

    /// The open campaigns (issuer key loaded, not closing: a closed
    /// campaign's policy stays in memory until the next start) of each
    /// invite group, counted by group.
    fn open_invite_campaigns(&self) -> HashMap<String, usize> {
        let keys = read(&self.keys);
        let policies = read(&self.policies);
        let closing = lock(&self.closing);
        let mut out = HashMap::new();
        for (id, p) in policies.iter() {
            if let AttesterPolicy::Invite { group } = p
                && keys.contains_key(id)
                && !closing.contains(id)
            {
                *out.entry(group.clone()).or_insert(0) += 1;
            }
        }
        out
    }

    /// Every invite group with unused codes or an open campaign, by name,
    /// with its count of unused codes and of open campaigns taking its
    /// codes (SPEC R-API-37, R-API-38). Only counts are read from the store
    /// (R-STORE-8): no code hash leaves it. Blocking.
    ///
    /// # Errors
    /// [`AdminError::Storage`].
    pub fn invite_groups(&self) -> Result<Vec<InviteGroupCount>, AdminError> {
        let prefix = invite_set("");
        let mut groups: std::collections::BTreeMap<String, InviteGroupCount> = self
            .store
            .mark_counts(&prefix)?
            .into_iter()
            .filter_map(|(set, unused)| {
                // Sets are only ever made from valid group names (mint).
                let group = String::from_utf8(set.get(prefix.len()..)?.to_vec()).ok()?;
                valid_group(&group).then(|| {
                    let g = InviteGroupCount {
                        group: group.clone(),
                        unused,
                        campaigns: 0,
                    };
                    (group, g)
                })
            })
            .collect();
        for (group, n) in self.open_invite_campaigns() {
            groups
                .entry(group.clone())
                .or_insert(InviteGroupCount {
                    group,
                    unused: 0,
                    campaigns: 0,
                })
                .campaigns = n;
        }
        Ok(groups.into_values().collect())
    }

    /// Builds a new campaign: validates the definition, generates a fresh
    /// RSA-2048 issuer key (slow: run off the async threads), stores it (as
    /// PKCS#8 DER) with the attester policy in the issuer's own durable
    /// transaction, marked pending (SPEC R-STORE-7), and returns the
    /// CampaignOpened entry to log. The key never travels with the log's
    /// batch. It is installed at
    /// once so tokens can be issued as soon as the entry is in the log; call
    /// [`Issuer::opened`] once it is, [`Issuer::discard`] if it was refused.
    ///
    /// # Errors
    /// [`AdminError`].
    pub fn prepare_campaign(
        &self,
        params: CampaignParams,
        policy: AttesterPolicy,
    ) -> Result<Entry, AdminError> {
        self.prepare_campaign_with_funding(params, None, policy)
    }

    /// As [`Issuer::prepare_campaign`], for a campaign with the funding
    /// extension when `funding` is `Some` (SPEC R-CAMP-5).
    ///
    /// # Errors
    /// As [`Issuer::prepare_campaign`].
    pub fn prepare_campaign_with_funding(
        &self,
        params: CampaignParams,
        funding: Option<Funding>,
        policy: AttesterPolicy,
    ) -> Result<Entry, AdminError> {
        self.prepare_campaign_with_extensions(params, funding, None, policy)
    }

    /// As [`Issuer::prepare_campaign`], with the definition's extensions:
    /// funding (SPEC R-CAMP-5) or a sealed block (R-SEAL-30, whose
    /// `params.reveal` must be sealed), not both.
    ///
    /// # Errors
    /// As [`Issuer::prepare_campaign`].
    pub fn prepare_campaign_with_extensions(
        &self,
        mut params: CampaignParams,
        funding: Option<Funding>,
        sealed: Option<pledge_protocol::campaign::Sealed>,
        policy: AttesterPolicy,
    ) -> Result<Entry, AdminError> {
        if let AttesterPolicy::Invite { group } = &policy
            && !valid_group(group)
        {
            return Err(AdminError::BadGroup);
        }
        if let AttesterPolicy::Email { domains } = &policy {
            if !email::valid_domain_list(domains) {
                return Err(AdminError::BadDomains);
            }
            if !self.email.has_relay() {
                return Err(AdminError::BadCampaign(
                    "e-mail attestation needs a mail relay: set smtp_host and mail_from in the \
                     server configuration"
                        .into(),
                ));
            }
        }
        getrandom::fill(&mut params.nonce).map_err(|_| AdminError::KeyGeneration)?;
        let definition = CampaignDefinition::with_extensions(params, funding, sealed)
            .map_err(|e| AdminError::BadCampaign(e.to_string()))?;
        let sk = IssuerSecretKey::generate().map_err(|_| AdminError::KeyGeneration)?;
        let der = sk.to_der().map_err(|_| AdminError::KeyGeneration)?;
        let id = definition.id();
        let entry = Entry::CampaignOpened(CampaignOpened {
            definition,
            issuer_key: sk.public_key().clone(),
        });
        let policy_json = serde_json::to_vec(&policy).map_err(|_| AdminError::KeyGeneration)?;
        {
            let _pending = lock(&self.pending);
            let mut ids = self.pending_ids()?;
            ids.push(id.to_hex());
            self.store.issue(IssueTxn {
                put: vec![
                    // SPEC R-STORE-12: never in clear in the store.
                    (
                        key_meta(&id),
                        self.wrap
                            .wrap(&id, der.expose())
                            .map_err(|_| AdminError::KeyGeneration)?,
                    ),
                    (policy_meta(&id), policy_json),
                    (PENDING_META.to_vec(), pending_json(&ids)),
                ],
                ..IssueTxn::default()
            })?;
        }
        write(&self.keys).insert(id, Arc::new(sk));
        write(&self.policies).insert(id, policy);
        Ok(entry)
    }

    /// The campaigns whose key is stored but not known to be logged.
    fn pending_ids(&self) -> Result<Vec<String>, StoreError> {
        read_pending(self.store.as_ref())
    }

    /// Records that a campaign's CampaignOpened entry is logged: its key is
    /// no longer pending. Blocking. A failure is logged; the next start-up
    /// settles it from the log.
    pub fn opened(&self, id: &CampaignId) {
        if let Err(e) = self.settle_pending(id, Vec::new()) {
            tracing::error!("cannot record a campaign's key as in use: {e}");
        }
    }

    /// Forgets a campaign whose CampaignOpened entry was refused, and deletes
    /// its stored key and policy durably. Blocking. A failure is logged; the
    /// key stays pending and the next start-up deletes it.
    pub fn discard(&self, id: &CampaignId) {
        write(&self.keys).remove(id);
        write(&self.policies).remove(id);
        if let Err(e) = self.settle_pending(id, vec![key_meta(id), policy_meta(id)]) {
            tracing::error!("cannot delete a refused campaign's key: {e}");
        }
    }

    /// Takes `id` off the pending list, deleting `delete` in the same
    /// transaction (SPEC R-STORE-7).
    fn settle_pending(&self, id: &CampaignId, delete: Vec<Vec<u8>>) -> Result<(), StoreError> {
        let _pending = lock(&self.pending);
        let hex = id.to_hex();
        let mut ids = self.pending_ids()?;
        ids.retain(|x| *x != hex);
        self.store.issue(IssueTxn {
            put: vec![(PENDING_META.to_vec(), pending_json(&ids))],
            delete,
            ..IssueTxn::default()
        })
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
            // The code names its group (SPEC R-API-8): a pledger needs no
            // `--group`, and the group is no secret from whoever holds the code.
            let code = format!("{group}.{}", hex::encode(raw));
            marks.push(Mark(sha256(&[code.as_bytes()])));
            codes.push(code);
        }
        self.store.add_marks(&invite_set(group), &marks)?;
        Ok(codes)
    }

    /// Marks a campaign as closing: no more tokens from now on, from any
    /// front end. Returns once every issuance of this front end that passed
    /// its checks before is durable or failed, and the campaign's closing
    /// mark is durable (SPEC R-STORE-5): written in one transaction with its
    /// token counter, so an issuance of another front end on the same
    /// database either committed before (and is counted) or is refused. The
    /// counter read next is final. Blocking (waits for those commits).
    ///
    /// # Errors
    /// [`StoreError`] writing the closing mark.
    pub fn begin_close(&self, id: &CampaignId) -> Result<(), StoreError> {
        self.stop_issuing(id);
        let closing = IssueTxn {
            insert: vec![closing_mark(id)],
            increment: vec![(tokens_meta(id), 0)],
            ..IssueTxn::default()
        };
        match self.store.issue(closing) {
            // Written by an earlier attempt to close.
            Ok(()) | Err(StoreError::MarkExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// This front end issues no more tokens for `id`; returns once its
    /// issuances that passed their checks before are durable or failed.
    /// Blocking.
    fn stop_issuing(&self, id: &CampaignId) {
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
        let attester: &dyn Attester = match attestation {
            Attestation::Open { .. } => &self.open,
            Attestation::Invite { .. } => &self.invite,
            Attestation::Email { .. } => &self.email,
        };
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
                if !attester.serves(policy) {
                    return Err(IssueError::AttesterNotAllowed(i));
                }
                signers.push((key.clone(), policy.clone()));
            }
        }
        let mut txn = IssueTxn::default();
        let admitted: Vec<(CampaignId, &AttesterPolicy)> = requests
            .iter()
            .zip(&signers)
            .map(|(r, (_, policy))| (r.campaign, policy))
            .collect();
        attester.admit(attestation, &admitted, &mut txn)?;
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
            // The close of a campaign writes this mark and touches this
            // counter in one transaction: an issuance on any front end is
            // counted before the close, or refused (SPEC R-STORE-5).
            txn.absent.push(closing_mark(&r.campaign));
            txn.increment.push((tokens_meta(&r.campaign), 1));
        }
        // Durable before anything is released (SPEC R-STORE-5).
        self.group
            .commit(self.store.as_ref(), txn)
            .map_err(|e| match e {
                StoreError::MarkPresent { position } => IssueError::CampaignClosed(position),
                StoreError::MarkMissing { .. } => IssueError::InviteInvalid,
                StoreError::MarkExists { position } => IssueError::AlreadyIssued(position),
                other => {
                    tracing::error!("issuance transaction failed: {other}");
                    IssueError::Storage
                }
            })?;
        Ok(out)
    }
}

/// A stored issuer key opened (R-STORE-12) and checked against the logged
/// public key; `true` if it was stored in clear by an older version.
fn open_key(
    wrap: &KeyWrap,
    id: &CampaignId,
    stored: &[u8],
    logged: &pledge_protocol::token::IssuerPublicKey,
) -> Result<(IssuerSecretKey, bool), String> {
    let (der, legacy) = match wrap.open(id, stored).map_err(|e| e.to_string())? {
        Stored::Wrapped(der) => (der, false),
        Stored::Legacy(der) => (der, true),
    };
    match IssuerSecretKey::from_der(&der) {
        Ok(sk) if sk.public_key() == logged => Ok((sk, legacy)),
        Ok(_) => Err("it is not the key the log names".into()),
        Err(_) => Err("it does not decode".into()),
    }
}

/// The pending-keys list (SPEC R-STORE-7); empty when absent. A list that
/// does not decode is [`StoreError::Corrupt`]: read as empty, the keys it
/// names would never be deleted.
fn read_pending(store: &dyn IssuerStore) -> Result<Vec<String>, StoreError> {
    store
        .meta(PENDING_META)?
        .map(|b| {
            serde_json::from_slice(&b).map_err(|e| {
                StoreError::Corrupt(format!(
                    "the list of pending issuer keys does not decode ({e})"
                ))
            })
        })
        .transpose()
        .map(Option::unwrap_or_default)
}

fn pending_json(ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(ids).unwrap_or_else(|_| b"[]".to_vec())
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

/// The funding demo campaign `pledged --demo` opens beside the plain one
/// (`pledge demo --funding`).
pub fn demo_funding_params(now: u64) -> CampaignParams {
    CampaignParams {
        title: "Demo strike fund".into(),
        text: "A demonstration of conditional funding opened by pledged --demo: strike if \
               enough strike (and, if you need it, if your lost wage is covered), or fund \
               the strike if it is big enough. Intent only: no money moves here. Tokens come \
               from the open attester, which anyone can use: do not rely on its counts."
            .into(),
        action: "join the demonstration strike".into(),
        // A funding statement lists (threshold, support) buckets: a
        // narrower range keeps it within one signed note (R-FUND-6).
        threshold_max: 200,
        ..demo_params(now)
    }
}

/// The funding block of [`demo_funding_params`]: EUR, support levels 50,
/// 100 and 200, pro rata.
///
/// # Errors
/// None in practice: the block is a valid constant.
pub fn demo_funding()
-> Result<pledge_protocol::campaign::Funding, pledge_protocol::codec::DecodeError> {
    pledge_protocol::campaign::Funding::new(*b"EUR", 2, vec![5_000, 10_000, 20_000], 0)
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
    use crate::ledger::unix_now;
    use crate::store::{RedbStore, Store};
    use pledge_protocol::note::{KeyName, NoteSigner};

    /// Issue 12, item 3: the issuer stores a new campaign's key in its own
    /// transaction, pending until the CampaignOpened entry is logged; a key
    /// whose entry never made it to the log (a crash in between, or a
    /// refusal) does not outlive the next start, nor a discard.
    #[test]
    fn a_key_whose_campaign_was_never_logged_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.path()).unwrap());
        let signer = NoteSigner::from_seed(KeyName::new("test.example/log").unwrap(), &[9; 32]);
        let (ledger, _core) = Ledger::open(store.clone(), signer).unwrap();
        let issuer = Issuer::load(
            store.clone(),
            &ledger.published(),
            Zeroizing::new([1; 32]),
            0,
        )
        .unwrap();
        let a = issuer
            .prepare_campaign(demo_params(1), AttesterPolicy::Open)
            .unwrap()
            .campaign();
        let b = issuer
            .prepare_campaign(demo_params(1), AttesterPolicy::Open)
            .unwrap()
            .campaign();
        assert!(store.meta(&key_meta(&a)).unwrap().is_some());
        assert_eq!(issuer.pending_ids().unwrap(), [a.to_hex(), b.to_hex()]);
        // b's entry is refused: its key is deleted at once.
        issuer.discard(&b);
        assert!(store.meta(&key_meta(&b)).unwrap().is_none());
        assert!(store.meta(&policy_meta(&b)).unwrap().is_none());
        assert_eq!(issuer.pending_ids().unwrap(), [a.to_hex()]);
        // The server stops before a's entry is logged: the next start
        // deletes a's key too.
        drop(issuer);
        let again = Issuer::load(
            store.clone(),
            &ledger.published(),
            Zeroizing::new([1; 32]),
            0,
        )
        .unwrap();
        assert!(store.meta(&key_meta(&a)).unwrap().is_none());
        assert!(store.meta(PENDING_META).unwrap().is_none());
        assert!(again.policy(&a).is_none());
    }

    /// SPEC R-STORE-12: the store never holds an issuer key in clear; one
    /// stored in clear by an older version is wrapped at the next start,
    /// and still serves.
    #[test]
    fn issuer_keys_are_stored_wrapped_and_clear_ones_get_wrapped() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.path()).unwrap());
        let signer = NoteSigner::from_seed(KeyName::new("test.example/log").unwrap(), &[9; 32]);
        let (ledger, core) = Ledger::open(store.clone(), signer).unwrap();
        let hmac = Zeroizing::new([1; 32]);
        let issuer = Issuer::load(store.clone(), &ledger.published(), hmac.clone(), 0).unwrap();
        let entry = issuer
            .prepare_campaign(demo_params(1), AttesterPolicy::Open)
            .unwrap();
        let id = entry.campaign();
        let der = read(&issuer.keys)[&id].to_der().unwrap();
        let stored = store.meta(&key_meta(&id)).unwrap().unwrap();
        assert!(
            !stored
                .windows(64)
                .any(|w| der.expose().windows(64).any(|d| d == w)),
            "the stored value contains the key's DER"
        );
        assert!(stored.starts_with(b"PKW1"));
        // Log the campaign, then put its key back in clear as an older
        // version stored it.
        let (_core, results) = ledger.integrate(
            core,
            vec![(crate::ledger::Proposal::opening(entry).unwrap(), Vec::new())],
            1,
        );
        assert!(results[0].is_ok());
        issuer.opened(&id);
        drop(issuer);
        store
            .issue(IssueTxn {
                put: vec![(key_meta(&id), der.expose().to_vec())],
                ..IssueTxn::default()
            })
            .unwrap();
        let again = Issuer::load(store.clone(), &ledger.published(), hmac, 0).unwrap();
        assert!(read(&again.keys).contains_key(&id), "the clear key serves");
        let rewrapped = store.meta(&key_meta(&id)).unwrap().unwrap();
        assert!(
            rewrapped.starts_with(b"PKW1"),
            "the clear key was not wrapped"
        );
        // Another data folder's issuer.hmac cannot open it: no key, no
        // issuance, and an error in the log.
        drop(again);
        let other = Issuer::load(store, &ledger.published(), Zeroizing::new([2; 32]), 0).unwrap();
        assert!(!read(&other.keys).contains_key(&id));
    }

    /// Two issuers on one store, as two front ends on one database: the
    /// leader opened a campaign (logged), the follower loaded its key.
    struct Cluster {
        _dir: tempfile::TempDir,
        store: Arc<dyn Store>,
        ledger: Ledger,
        core: Option<crate::ledger::Core>,
        leader: Issuer,
        follower: Issuer,
        id: CampaignId,
    }

    impl Cluster {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.path()).unwrap());
            let signer = NoteSigner::from_seed(KeyName::new("test.example/log").unwrap(), &[9; 32]);
            let (ledger, core) = Ledger::open(store.clone(), signer).unwrap();
            let hmac = Zeroizing::new([1; 32]);
            let leader = Issuer::load(store.clone(), &ledger.published(), hmac.clone(), 0).unwrap();
            let opened = leader
                .prepare_campaign(demo_params(unix_now()), AttesterPolicy::Open)
                .unwrap();
            let id = opened.campaign();
            let (core, results) = ledger.integrate(
                core,
                vec![(
                    crate::ledger::Proposal::opening(opened).unwrap(),
                    Vec::new(),
                )],
                unix_now(),
            );
            assert!(results[0].is_ok());
            leader.opened(&id);
            // The follower loads the campaign's key from the store.
            let follower = Issuer::load(store.clone(), &ledger.published(), hmac, 0).unwrap();
            follower.sync(&ledger.published()).unwrap();
            assert!(read(&follower.keys).contains_key(&id));
            Self {
                _dir: dir,
                store,
                ledger,
                core,
                leader,
                follower,
                id,
            }
        }
    }

    /// SPEC R-STORE-10, R-STORE-4, the second guard: when a follower's view
    /// shows a campaign closed, it waits for its own issuances in flight and
    /// deletes the campaign's keyed hashes again, so none outlives the close
    /// even if one was committed after the sequencing front end deleted them
    /// (the closing mark of R-STORE-5 refuses such an issuance; the test
    /// writes the mark directly, as one would have before closing marks).
    #[test]
    fn a_follower_deletes_the_keyed_hashes_it_wrote_after_the_close() {
        let Cluster {
            _dir,
            store,
            ledger,
            core,
            leader,
            follower,
            id,
        } = Cluster::new();
        // The leader closes the campaign and deletes its keyed hashes ...
        leader.begin_close(&id).unwrap();
        let (_core, results) = ledger.integrate(
            core.unwrap(),
            vec![(
                crate::ledger::Proposal::Close {
                    campaign: id,
                    tokens_issued: 0,
                },
                Vec::new(),
            )],
            unix_now(),
        );
        assert!(results[0].is_ok());
        leader.finish_close(&id).unwrap();
        // ... then a person mark of the campaign is committed.
        store
            .issue(IssueTxn {
                insert: vec![(issued_set(&id), Mark([7; 32]))],
                ..IssueTxn::default()
            })
            .unwrap();
        follower.sync(&ledger.published()).unwrap();
        assert!(!read(&follower.keys).contains_key(&id));
        assert!(
            store.mark_counts(&issued_set(&id)).unwrap().is_empty(),
            "a keyed hash outlived the close"
        );
    }

    /// SPEC R-STORE-5, R-STORE-10: once the close of a campaign began on
    /// one front end, no other front end on the same store issues a token
    /// for it (its view still shows the campaign open until the
    /// CampaignClosed entry is logged), so the counter the close reads is
    /// final.
    #[test]
    fn no_front_end_issues_once_a_close_began() {
        let Cluster {
            _dir,
            ledger,
            leader,
            follower,
            id,
            ..
        } = Cluster::new();
        let pk = read(&follower.keys)[&id].public_key().clone();
        let request = || {
            let key = pledge_protocol::pledge::PledgeSigningKey::generate().unwrap();
            let (blinded, _) = pledge_protocol::token::blind(&pk, &id, &key.public_key()).unwrap();
            vec![TokenRequest {
                campaign: id,
                blinded: blinded.as_bytes().to_vec(),
            }]
        };
        let open = Attestation::Open { addr: None };
        follower
            .issue(&ledger, &open, &request(), unix_now())
            .unwrap();
        leader.begin_close(&id).unwrap();
        let counted = leader.tokens_issued(&id).unwrap();
        assert_eq!(counted, 1);
        // The follower's view still shows the campaign open.
        assert!(matches!(
            follower.issue(&ledger, &open, &request(), unix_now()),
            Err(IssueError::CampaignClosed(0))
        ));
        assert_eq!(leader.tokens_issued(&id).unwrap(), counted);
        // A second attempt to close (a refused CampaignClosed) is fine.
        leader.begin_close(&id).unwrap();
    }

    /// A pending list that does not decode refuses start-up instead of
    /// being read as empty (the keys it names would never be deleted).
    #[test]
    fn an_undecodable_pending_list_refuses_start() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.path()).unwrap());
        let signer = NoteSigner::from_seed(KeyName::new("test.example/log").unwrap(), &[9; 32]);
        let (ledger, _core) = Ledger::open(store.clone(), signer).unwrap();
        store
            .issue(IssueTxn {
                put: vec![(PENDING_META.to_vec(), b"not json".to_vec())],
                ..IssueTxn::default()
            })
            .unwrap();
        let e = Issuer::load(store, &ledger.published(), Zeroizing::new([1; 32]), 0).unwrap_err();
        assert!(matches!(e, StoreError::Corrupt(_)), "{e}");
    }
}
