//! Pledger flows on top of [`crate::client`] and [`crate::wallet`]: pin and
//! check the log, obtain tokens for every open campaign (cover issuance,
//! DESIGN P3) after proving each issuer key from the log (P5), pledge after a
//! random delay (P4), amend, withdraw, status, watch, and offline receipt
//! checks. The functions return what happened; printing is the CLI's job.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
#[cfg(feature = "native")]
use futures_util::StreamExt as _;
use pledge_protocol::campaign::{CampaignDefinition, Funding, TermsRefusal};
use pledge_protocol::checkpoint::{SignedCheckpoint, open_checkpoint};
use pledge_protocol::cosignature::{CosignatureError, WitnessVerifier, verify_cosignatures};
use pledge_protocol::entry::Entry;
/// Where an action pledge stands in a funding campaign (SPEC R-FUND-4).
pub use pledge_protocol::funding::Standing;
use pledge_protocol::funding::{CampaignStatement, JointTally};
use pledge_protocol::hash::{CampaignId, Hash, Nullifier};
use pledge_protocol::merkle::Tree;
use pledge_protocol::merkle::{
    self, consistency_proof, consistency_proof_nodes, inclusion_proof, inclusion_proof_nodes,
};
use pledge_protocol::note::{KeyError, NoteVerifier, Verifier, open_note};
use pledge_protocol::pledge::{Amendment, Pledge, PledgeSigningKey, Terms, Withdrawal};
use pledge_protocol::receipt::Receipt;
use pledge_protocol::replay::{ReplayError, Replayer, Verification};
use pledge_protocol::tile::{BundleId, TileHashes, decode_bundle, tiles_for_nodes};
use pledge_protocol::token::{IssuerPublicKey, blind, finalize};

#[cfg(feature = "native")]
use crate::client::ServerEvent;
use crate::client::{
    Attestation, AttesterKind, CampaignInfo, CampaignState, Client, ClientError, ErrorCode,
};
use crate::wallet::{
    EntryRecord, PendingToken, PinnedLog, PledgeRecord, TokenRecord, Wallet, WalletData,
    WalletError,
};

pub mod sealed;

/// Most campaigns one token request may name (SPEC R-API-9).
pub use pledge_protocol::token::MAX_TOKEN_REQUESTS;

/// Why a flow failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// Talking to the server failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The wallet could not be read or written.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// The server's log key differs from the one pinned at first use.
    #[error(
        "the server's log key changed: pinned {pinned}, now served {served}. Refusing to go on: \
         this is what a server presenting a different log to you would look like"
    )]
    LogKeyChanged {
        /// Pinned key text.
        pinned: String,
        /// Served key text.
        served: String,
    },
    /// The log failed a check (signature, consistency, inclusion, bundle).
    #[error("the log failed a check: {0}")]
    BadLog(String),
    /// The campaign object's issuer key differs from the key logged in its
    /// CampaignOpened entry (key tagging, DESIGN P5).
    #[error(
        "campaign {campaign}: the server advertises issuer key {advertised} but the key logged in \
         its CampaignOpened entry (index {index}, proven to checkpoint {size}) is {logged}. \
         Refusing: a server giving you a key of your own could recognise your token later"
    )]
    KeyMismatch {
        /// Campaign id, hex.
        campaign: String,
        /// Key id of the advertised key.
        advertised: String,
        /// Key id of the logged key.
        logged: String,
        /// Index of the CampaignOpened entry.
        index: u64,
        /// Checkpoint size of the proof.
        size: u64,
    },
    /// Nothing usable in the wallet for this campaign.
    #[error("{0}")]
    Wallet2(String),
    /// The request does not fit the campaign.
    #[error("{0}")]
    Campaign(String),
    /// A receipt does not verify.
    #[error("the receipt does not verify: {0}")]
    Receipt(String),
    /// A cryptographic step failed locally.
    #[error("{0}")]
    Crypto(String),
    /// The environment cannot do what the flow needs (no timer for the delay).
    #[error("{0}")]
    Runtime(String),
    /// The checkpoint lacks the pinned witness quorum (SPEC R-COSIG-7).
    #[error(
        "checkpoint {size} is cosigned by {found} of the pinned witnesses, {required} required \
         (waited {waited_s} s for the witnesses). Refusing: without independent witnesses this \
         could be a view of the log shown to you alone"
    )]
    WitnessQuorum {
        /// Checkpoint size.
        size: u64,
        /// Pinned witnesses that cosigned.
        found: usize,
        /// The quorum.
        required: usize,
        /// How long the client waited for cosignatures.
        waited_s: u64,
    },
    /// A threshold that is not one of a sealed campaign's bucket values
    /// (SPEC R-SEAL-41).
    #[error(
        "campaign {campaign} is sealed: a threshold must be one of its bucket values ({}), not \
         {given}",
        sealed::list(.allowed)
    )]
    NotABucket {
        /// Campaign id, hex.
        campaign: String,
        /// The threshold given.
        given: u32,
        /// The campaign's bucket values.
        allowed: Vec<u32>,
    },
    /// A sealed campaign whose trustees have not logged the joint key yet
    /// (SPEC R-SEAL-40): nothing can be sealed.
    #[error(
        "campaign {0}: the trustees have not finished key generation, so nothing can be sealed \
         yet; try again later"
    )]
    KeyNotReady(String),
    /// The campaign object serves a joint key that is not the one the
    /// campaign's trustee messages in the log give (SPEC R-SEAL-40).
    #[error(
        "campaign {campaign}: the server serves joint key {served} but the trustee messages in \
         the log (proven to checkpoint {size}) give {logged}. Refusing to seal under a key the \
         trustees did not make: whoever holds its secret could read your threshold"
    )]
    JointKeyMismatch {
        /// Campaign id, hex.
        campaign: String,
        /// The served key, hex.
        served: String,
        /// The logged key, hex (or "none yet").
        logged: String,
        /// The checkpoint the log was read to.
        size: u64,
    },
    /// A tally statement older than one already seen, or than my own entry
    /// (a replay, SPEC R-TALLY-12).
    #[error(
        "campaign {campaign}: the server served a tally statement at log size {size}, older \
         than {newer} ({why}). Refusing a replayed tally"
    )]
    StaleStatement {
        /// Campaign id, hex.
        campaign: String,
        /// The statement's size.
        size: u64,
        /// The size it should have reached.
        newer: u64,
        /// What that size is.
        why: &'static str,
    },
}

fn bad_log(what: impl std::fmt::Display) -> FlowError {
    FlowError::BadLog(what.to_string())
}

/// The log key to use: the one pinned in the wallet, or (first use) the one
/// the server serves, which is then pinned (trust on first use), with the
/// witness policy the server publishes (SPEC R-API-22) when none is pinned
/// yet (SPEC R-CLIENT-1). Returns the verifier and whether something was pinned just now (the
/// CLI prints it; the caller saves the wallet).
///
/// # Errors
/// [`FlowError::LogKeyChanged`] if the server now serves another key;
/// [`FlowError::BadLog`] for an unparsable key or witness policy.
pub async fn pin_log(
    client: &Client,
    wallet: &mut Wallet,
) -> Result<(NoteVerifier, bool), FlowError> {
    let served = client.log_key().await?;
    let (v, mut pinned_now) = match &wallet.data.log {
        Some(p) => {
            if p.verifier_key != served {
                return Err(FlowError::LogKeyChanged {
                    pinned: p.verifier_key.clone(),
                    served,
                });
            }
            (
                NoteVerifier::from_text(&p.verifier_key).map_err(bad_log)?,
                false,
            )
        }
        None => {
            let v = NoteVerifier::from_text(&served).map_err(bad_log)?;
            wallet.data.log = Some(PinnedLog {
                server: client.base().to_owned(),
                verifier_key: served,
                checkpoint_size: 0,
                checkpoint_root: merkle::empty_root().to_hex(),
                ..PinnedLog::default()
            });
            (v, true)
        }
    };
    if wallet
        .data
        .log
        .as_ref()
        .is_some_and(|p| p.witnesses.is_none())
    {
        let info = client.witness_policy().await?;
        let policy = WitnessPolicy::parse(&info.witnesses, info.quorum)
            .map_err(|e| bad_log(format!("the served witness policy: {e}")))?;
        pin_witnesses(wallet, &policy);
        pinned_now = true;
    }
    Ok((v, pinned_now))
}

/// Why a witness policy (`--witness` keys and quorum, the server's, or the
/// wallet's) is refused by [`WitnessPolicy::parse`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessPolicyError {
    /// A key text is not a witness verifier key.
    #[error("witness key {key:?}: {source}")]
    BadKey {
        /// The key text as given.
        key: String,
        /// Why it does not parse.
        #[source]
        source: KeyError,
    },
    /// More cosignatures are required than distinct witnesses listed.
    #[error("a quorum of {quorum} needs at least {quorum} distinct witnesses, {distinct} given")]
    QuorumTooLarge {
        /// The quorum.
        quorum: usize,
        /// Distinct witnesses listed.
        distinct: usize,
    },
}

/// A witness policy (SPEC R-COSIG-7): `quorum` of `witnesses` must cosign
/// every checkpoint the client accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessPolicy {
    /// Witness verifier keys.
    pub witnesses: Vec<WitnessVerifier>,
    /// Cosignatures required.
    pub quorum: usize,
}

impl WitnessPolicy {
    /// Parses verifier key texts (R-COSIG-4) and checks `quorum ≤ n` (with
    /// a witness listed twice counted once).
    ///
    /// # Errors
    /// [`WitnessPolicyError`] naming the bad key or the impossible quorum.
    pub fn parse(keys: &[String], quorum: usize) -> Result<Self, WitnessPolicyError> {
        let mut witnesses: Vec<WitnessVerifier> = Vec::new();
        for k in keys {
            let w = WitnessVerifier::from_text(k.trim()).map_err(|source| {
                WitnessPolicyError::BadKey {
                    key: k.clone(),
                    source,
                }
            })?;
            if !witnesses.contains(&w) {
                witnesses.push(w);
            }
        }
        if quorum > witnesses.len() {
            return Err(WitnessPolicyError::QuorumTooLarge {
                quorum,
                distinct: witnesses.len(),
            });
        }
        Ok(Self { witnesses, quorum })
    }

    /// The policy pinned in `wallet`, if any.
    ///
    /// # Errors
    /// [`FlowError::Wallet2`] when the stored policy does not parse.
    pub fn pinned(wallet: &Wallet) -> Result<Option<Self>, FlowError> {
        match wallet
            .data
            .log
            .as_ref()
            .and_then(|p| p.witnesses.as_ref().map(|w| (w, p.quorum)))
        {
            None => Ok(None),
            Some((keys, quorum)) => Self::parse(keys, quorum)
                .map(Some)
                .map_err(|e| FlowError::Wallet2(format!("the wallet's witness policy: {e}"))),
        }
    }
}

/// Pins `policy` in the wallet (replacing any earlier one): the user's
/// choice (`--witness`) or, at first use, the server's. The caller saves.
pub fn pin_witnesses(wallet: &mut Wallet, policy: &WitnessPolicy) {
    if let Some(p) = &mut wallet.data.log {
        p.witnesses = Some(
            policy
                .witnesses
                .iter()
                .map(WitnessVerifier::to_text)
                .collect(),
        );
        p.quorum = policy.quorum;
    }
}

/// How long [`checkpoint`] waits for the witnesses to cosign the latest
/// checkpoint (they cosign asynchronously, after the log publishes it).
pub const WITNESS_WAIT: Duration = Duration::from_secs(10);

/// Fetches and verifies the latest checkpoint; when the wallet remembers an
/// earlier one, also checks the new one extends it (consistency proof from
/// tiles), then remembers the new one (the caller saves the wallet).
///
/// # Errors
/// [`FlowError::BadLog`] for a bad signature, a shrinking tree or an
/// inconsistent history.
pub async fn checkpoint(
    client: &Client,
    wallet: &mut Wallet,
    log: &NoteVerifier,
) -> Result<SignedCheckpoint, FlowError> {
    let signed = cosigned_checkpoint(client, wallet, log).await?;
    let size = signed.checkpoint().size();
    let root = *signed.checkpoint().root();
    if let Some(p) = &wallet.data.log {
        let old_root = p
            .root()
            .ok_or_else(|| bad_log("wallet holds a damaged root"))?;
        if size < p.checkpoint_size {
            return Err(bad_log(format!(
                "the tree shrank from {} to {size} entries",
                p.checkpoint_size
            )));
        }
        if p.checkpoint_size > 0 && size > p.checkpoint_size {
            let nodes = consistency_proof_nodes(p.checkpoint_size, size).map_err(bad_log)?;
            let tiles = fetch_tiles(client, &nodes, size).await?;
            let proof = consistency_proof(p.checkpoint_size, size, &tiles).map_err(bad_log)?;
            merkle::verify_consistency(p.checkpoint_size, size, &old_root, &root, &proof).map_err(
                |e| {
                    bad_log(format!(
                        "checkpoint {size} does not extend the checkpoint {} seen before: {e}",
                        p.checkpoint_size
                    ))
                },
            )?;
        } else if size == p.checkpoint_size && old_root != root {
            return Err(bad_log(format!(
                "two checkpoints of size {size} with different roots"
            )));
        }
    }
    if let Some(p) = &mut wallet.data.log {
        p.checkpoint_size = size;
        p.checkpoint_root = root.to_hex();
    }
    Ok(signed)
}

/// Fetches the latest checkpoint, verifies the log's signature and the
/// pinned witness policy (SPEC R-CLIENT-2, R-COSIG-6, R-COSIG-7). Witnesses cosign after
/// the log publishes, so a checkpoint short of the quorum is fetched again
/// for up to [`WITNESS_WAIT`].
async fn cosigned_checkpoint(
    client: &Client,
    wallet: &Wallet,
    log: &NoteVerifier,
) -> Result<SignedCheckpoint, FlowError> {
    let policy = WitnessPolicy::pinned(wallet)?.filter(|p| p.quorum > 0);
    let step = Duration::from_millis(250);
    let mut waited = Duration::ZERO;
    loop {
        let text = client.checkpoint().await?;
        let signed =
            open_checkpoint(&text, log).map_err(|e| bad_log(format!("checkpoint: {e}")))?;
        let Some(policy) = &policy else {
            return Ok(signed);
        };
        match verify_cosignatures(signed.note().note(), &policy.witnesses, policy.quorum) {
            Ok(_) => return Ok(signed),
            Err(CosignatureError::QuorumNotMet { found, required }) => {
                if waited >= WITNESS_WAIT {
                    return Err(FlowError::WitnessQuorum {
                        size: signed.checkpoint().size(),
                        found,
                        required,
                        waited_s: waited.as_secs(),
                    });
                }
            }
            Err(e) => return Err(bad_log(format!("checkpoint witness cosignature: {e}"))),
        }
        crate::rt::sleep(step)
            .await
            .map_err(|e| FlowError::Runtime(e.to_string()))?;
        waited += step;
    }
}

/// Fetches the tiles holding `nodes` for a tree of `size` leaves. They are
/// unauthenticated until what is computed from them is checked against a
/// verified root.
async fn fetch_tiles(
    client: &Client,
    nodes: &[merkle::NodeId],
    size: u64,
) -> Result<TileHashes, FlowError> {
    let mut tiles = TileHashes::new();
    for t in tiles_for_nodes(nodes, size) {
        let data = client.tile(&t).await?;
        tiles.insert(t, &data).map_err(bad_log)?;
    }
    Ok(tiles)
}

/// The bundle that holds entry `index` in a tree of `size` leaves.
fn bundle_for(index: u64, size: u64) -> Result<BundleId, FlowError> {
    let n = index / 256;
    let width = u16::try_from((size - n * 256).min(256)).unwrap_or(256);
    BundleId::new(n, width).map_err(bad_log)
}

/// Fetches entry `index` and proves it is in the tree of `checkpoint` (RFC
/// 9162 inclusion proof computed from tiles, checked against the signed root).
///
/// # Errors
/// [`FlowError::BadLog`] if the entry is missing or the proof fails.
pub async fn proven_entry(
    client: &Client,
    index: u64,
    checkpoint: &SignedCheckpoint,
) -> Result<Vec<u8>, FlowError> {
    let size = checkpoint.checkpoint().size();
    if index >= size {
        return Err(bad_log(format!(
            "entry {index} is not in the checkpoint of size {size}"
        )));
    }
    let id = bundle_for(index, size)?;
    let data = client.bundle(&id).await?;
    let entries = decode_bundle(&data, &id).map_err(bad_log)?;
    let pos = usize::try_from(index % 256).map_err(bad_log)?;
    let entry = entries
        .get(pos)
        .ok_or_else(|| bad_log("entry missing from its bundle"))?
        .to_vec();
    prove_included(client, &entry, index, checkpoint).await?;
    Ok(entry)
}

/// Proves that `entry` is entry `index` of the tree of `checkpoint` (RFC
/// 9162 inclusion proof computed from tiles, checked against the signed
/// root).
///
/// # Errors
/// [`FlowError::BadLog`] if the proof fails.
async fn prove_included(
    client: &Client,
    entry: &[u8],
    index: u64,
    checkpoint: &SignedCheckpoint,
) -> Result<(), FlowError> {
    let size = checkpoint.checkpoint().size();
    let nodes = inclusion_proof_nodes(index, size).map_err(bad_log)?;
    let tiles = fetch_tiles(client, &nodes, size).await?;
    let proof = inclusion_proof(index, size, &tiles).map_err(bad_log)?;
    merkle::verify_inclusion(
        &merkle::leaf_hash(entry),
        index,
        size,
        &proof,
        checkpoint.checkpoint().root(),
    )
    .map_err(|e| {
        bad_log(format!(
            "entry {index} is not proven in checkpoint {size}: {e}"
        ))
    })
}

/// DESIGN P5, SPEC R-TOKEN-11, R-API-7: the campaign's issuer key, taken
/// from its CampaignOpened entry proven by inclusion to `checkpoint`, and
/// compared with the key the campaign object advertises.
///
/// # Errors
/// [`FlowError::KeyMismatch`] if they differ; [`FlowError::BadLog`] if the
/// entry is missing, unproven, not a CampaignOpened, or of another campaign.
pub async fn verified_issuer_key(
    client: &Client,
    checkpoint: &SignedCheckpoint,
    c: &CampaignInfo,
) -> Result<IssuerPublicKey, FlowError> {
    let id = c.campaign_id;
    let index = c
        .opened_index
        .ok_or_else(|| bad_log(format!("campaign {} has no opened_index", c.campaign_id)))?;
    let bytes = proven_entry(client, index, checkpoint).await?;
    let logged = match Entry::decode(&bytes).map_err(bad_log)? {
        Entry::CampaignOpened(o) if o.definition.id() == id => o.issuer_key,
        Entry::CampaignOpened(_) => {
            return Err(bad_log(format!(
                "entry {index} opens another campaign than {}",
                c.campaign_id
            )));
        }
        _ => {
            return Err(bad_log(format!(
                "entry {index} is not the CampaignOpened entry of {}",
                c.campaign_id
            )));
        }
    };
    let advertised = c
        .issuer_key_bytes()
        .and_then(|k| IssuerPublicKey::from_spki(&k).ok());
    // SPEC R-TOKEN-11: refuse any key but the logged one.
    if advertised.as_ref() != Some(&logged) {
        return Err(FlowError::KeyMismatch {
            campaign: c.campaign_id.to_hex(),
            advertised: advertised.map_or_else(|| "(unparsable)".into(), |k| k.key_id().to_hex()),
            logged: logged.key_id().to_hex(),
            index,
            size: checkpoint.checkpoint().size(),
        });
    }
    Ok(logged)
}

/// What `pledge tokens` asks for.
#[derive(Clone)]
pub enum AttestKind {
    /// The open attester.
    Open,
    /// An invite code; `group` picks the invite group when several are open
    /// and the code does not name it (codes minted as `<group>.<hex>` do).
    Invite {
        /// The code (secret).
        code: zeroize::Zeroizing<String>,
        /// The group, if known.
        group: Option<String>,
    },
    /// An e-mail address and the one-time code mailed to it
    /// ([`request_email_code`]).
    Email {
        /// The address (secret: it names the pledger).
        address: zeroize::Zeroizing<String>,
        /// The code from the mail (secret until used).
        code: zeroize::Zeroizing<String>,
    },
}

/// The domain of an address as the server normalizes it (SPEC R-API-28):
/// after the last `@`, lower-cased.
fn email_domain(address: &str) -> Option<String> {
    address
        .trim()
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
}

/// The open `email` campaigns that take `address`'s domain.
fn email_campaigns<'a>(campaigns: &'a [CampaignInfo], address: &str) -> Vec<&'a CampaignInfo> {
    let domain = email_domain(address).unwrap_or_default();
    campaigns
        .iter()
        .filter(|c| {
            c.state == CampaignState::Open
                && c.attester == Some(AttesterKind::Email)
                && c.email_domains.as_ref().is_none_or(|d| d.contains(&domain))
        })
        .collect()
}

/// Asks the server to mail a one-time code to `address` (SPEC R-API-29),
/// for every open `email` campaign taking the address's domain for which
/// the wallet holds no token yet: the campaigns [`obtain_tokens`] then asks
/// tokens for with [`AttestKind::Email`]. Returns the server's answer and
/// how many campaigns the code is for (0: nothing was asked, no mail sent).
///
/// # Errors
/// [`FlowError::Client`] (e.g. 403 `email_domain_not_allowed`, 429
/// `rate_limited`, 503 `mail_unavailable`).
pub async fn request_email_code(
    client: &Client,
    wallet: &Wallet,
    address: &str,
) -> Result<(Option<pledge_protocol::api::EmailCodeSent>, usize), FlowError> {
    let campaigns = client.campaigns().await?;
    let ids: Vec<CampaignId> = email_campaigns(&campaigns, address)
        .into_iter()
        .map(|c| c.campaign_id)
        .filter(|id| !wallet.data.tokens.iter().any(|t| t.campaign == *id))
        .collect();
    if ids.is_empty() {
        return Ok((None, 0));
    }
    if ids.len() > MAX_TOKEN_REQUESTS {
        return Err(FlowError::Campaign(format!(
            "{} open campaigns: a request names at most {MAX_TOKEN_REQUESTS}",
            ids.len()
        )));
    }
    let sent = client.email_code(address, &ids).await?;
    Ok((Some(sent), ids.len()))
}

impl std::fmt::Debug for AttestKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Open => f.write_str("Open"),
            // The code is a secret until used: never printed.
            Self::Invite { group, .. } => f
                .debug_struct("Invite")
                .field("group", group)
                .finish_non_exhaustive(),
            Self::Email { .. } => f.debug_struct("Email").finish_non_exhaustive(),
        }
    }
}

/// The group an invite code names: codes are minted as `<group>.<32 hex>`
/// (SPEC R-API-8; a group may itself contain dots, the hex part cannot).
/// `None` for a code of the older, bare-hex form.
pub fn invite_code_group(code: &str) -> Option<&str> {
    let (group, hex) = code.rsplit_once('.')?;
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) && !group.is_empty())
        .then_some(group)
}

/// Outcome of [`obtain_tokens`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TokensReport {
    /// Campaigns a token was obtained for now (hex ids).
    pub obtained: Vec<String>,
    /// Campaigns skipped because the wallet already holds a token.
    pub already_held: Vec<String>,
    /// Campaigns whose key was checked against the log.
    pub keys_checked: usize,
    /// Sealed campaigns whose new token is to be spent as a null pledge
    /// unless the person pledges first (cover, SPEC R-SEAL-43): hex id and
    /// the Unix time it is due.
    pub cover: Vec<(String, u64)>,
}

/// Cover issuance (DESIGN P3): requests a token for *every* open campaign
/// the attestation is valid for, whether or not the pledger means to pledge.
/// Each campaign's issuer key is first proven from the log (P5); each
/// blinding state is saved in the wallet before the request is sent, so an
/// interrupted request is resent unchanged by the next call.
///
/// # Errors
/// [`FlowError::KeyMismatch`] (nothing is requested then),
/// [`FlowError::Client`] (4xx: the pending states are dropped, nothing was
/// signed; network or 5xx: they are kept for a retry), wallet errors.
pub async fn obtain_tokens(
    client: &Client,
    wallet: &mut Wallet,
    log: &NoteVerifier,
    attest: &AttestKind,
) -> Result<TokensReport, FlowError> {
    let cp = checkpoint(client, wallet, log).await?;
    let campaigns = client.campaigns().await?;
    let eligible: Vec<&CampaignInfo> = match attest {
        AttestKind::Open => campaigns
            .iter()
            .filter(|c| c.state == CampaignState::Open && c.attester == Some(AttesterKind::Open))
            .collect(),
        AttestKind::Invite { group, code } => {
            let invite: Vec<&CampaignInfo> = campaigns
                .iter()
                .filter(|c| {
                    c.state == CampaignState::Open && c.attester == Some(AttesterKind::Invite)
                })
                .collect();
            let groups: std::collections::BTreeSet<&str> = invite
                .iter()
                .filter_map(|c| c.invite_group.as_deref())
                .collect();
            let named = invite_code_group(code.as_str());
            let g = match (group, named) {
                (Some(g), Some(n)) if g != n => {
                    return Err(FlowError::Campaign(format!(
                        "the invite code is for group {n}, not {g}: leave out --group"
                    )));
                }
                (Some(g), _) => g.as_str(),
                (None, Some(n)) => n,
                (None, None) if groups.len() <= 1 => groups.iter().next().copied().unwrap_or(""),
                (None, None) => {
                    return Err(FlowError::Campaign(format!(
                        "open invite campaigns belong to several groups ({}); say which one your \
                         code is for with --group",
                        groups.into_iter().collect::<Vec<_>>().join(", ")
                    )));
                }
            };
            invite
                .into_iter()
                .filter(|c| c.invite_group.as_deref() == Some(g))
                .collect()
        }
        AttestKind::Email { address, .. } => email_campaigns(&campaigns, address),
    };
    let mut report = TokensReport::default();
    let sealed_deadlines: BTreeMap<CampaignId, u64> = eligible
        .iter()
        .filter(|c| c.sealed.is_some())
        .map(|c| (c.campaign_id, c.deadline))
        .collect();
    let mut wanted = Vec::new();
    for c in eligible {
        let id = c.campaign_id;
        if wallet.data.tokens.iter().any(|t| t.campaign == id) {
            report.already_held.push(id.to_hex());
            continue;
        }
        // Key check for every campaign before any blinding (P5).
        let key = verified_issuer_key(client, &cp, c).await?;
        report.keys_checked += 1;
        wanted.push((id, key));
    }
    // Only this attester's eligible campaigns are requested; a request left
    // pending for another attester stays for its own next call.
    let ids: Vec<CampaignId> = wanted.iter().map(|(id, _)| *id).collect();
    if ids.is_empty() {
        return Ok(report);
    }
    for (id, key) in wanted {
        if wallet.data.pending.iter().any(|p| p.campaign == id) {
            // An earlier request of ours got no answer: resend it unchanged.
            continue;
        }
        let pk = PledgeSigningKey::generate().map_err(|e| FlowError::Crypto(e.to_string()))?;
        let (_, state) =
            blind(&key, &id, &pk.public_key()).map_err(|e| FlowError::Crypto(e.to_string()))?;
        wallet
            .data
            .pending
            .push(PendingToken::new(id, key, &pk, state));
    }
    if ids.len() > MAX_TOKEN_REQUESTS {
        return Err(FlowError::Campaign(format!(
            "{} open campaigns: a request names at most {MAX_TOKEN_REQUESTS}",
            ids.len()
        )));
    }
    // SPEC R-TOKEN-12: blinding states are durable before the request leaves.
    wallet.save()?;
    let attestation = match attest {
        AttestKind::Open => Attestation::Open,
        AttestKind::Invite { code, .. } => Attestation::Invite { code: code.clone() },
        AttestKind::Email { address, code } => Attestation::Email {
            address: address.clone(),
            code: code.clone(),
        },
    };
    // One request per campaign (the save merged in what another process
    // saved, which may hold a request of its own for the same campaign).
    let mut sent: Vec<[u8; 32]> = Vec::new();
    let mut requests = Vec::new();
    for p in &wallet.data.pending {
        if ids.contains(&p.campaign) && !requests.iter().any(|(c, _)| *c == p.campaign) {
            sent.push(p.id());
            requests.push((p.campaign, p.state().blinded_message()));
        }
    }
    let sigs = match client.tokens(&attestation, &requests).await {
        Ok(s) => s,
        Err(e) => {
            if !e.is_retryable() {
                // All-or-nothing (R-API-9): a refusal signed nothing.
                wallet.data.pending.retain(|p| !sent.contains(&p.id()));
                wallet.save()?;
            }
            return Err(e.into());
        }
    };
    // `partition` keeps the order, which is the order of `requests`.
    let (pending, rest): (Vec<PendingToken>, Vec<PendingToken>) =
        std::mem::take(&mut wallet.data.pending)
            .into_iter()
            .partition(|p| sent.contains(&p.id()));
    wallet.data.pending = rest;
    let mut failed = None;
    for (p, sig) in pending.into_iter().zip(sigs) {
        let key = p.key();
        match finalize(
            &p.issuer_key,
            p.state(),
            &sig,
            &p.campaign,
            &key.public_key(),
        ) {
            Ok(token) => {
                report.obtained.push(p.campaign.to_hex());
                if let Some(&deadline) = sealed_deadlines.get(&p.campaign)
                    && let Ok(Some(at)) =
                        sealed::schedule_cover(wallet, &p.campaign, deadline, sealed::unix_now())
                {
                    report.cover.push((p.campaign.to_hex(), at));
                }
                wallet
                    .data
                    .tokens
                    .push(TokenRecord::new(p.campaign, token, &key));
            }
            Err(e) => {
                failed = Some(FlowError::Crypto(format!(
                    "the issuer's answer for campaign {} does not give a valid token: {e}",
                    p.campaign
                )));
            }
        }
    }
    wallet.save()?;
    match failed {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// A random delay in `[0, max]` (DESIGN P4), from the OS CSPRNG.
///
/// # Errors
/// [`FlowError::Crypto`] if the OS has no randomness.
pub fn random_delay(max: Duration) -> Result<Duration, FlowError> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|_| FlowError::Crypto("no randomness".into()))?;
    let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return Ok(Duration::ZERO);
    }
    Ok(Duration::from_millis(
        u64::from_le_bytes(b) % ms.saturating_add(1),
    ))
}

/// Outcome of a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// Index of the entry in the log.
    pub index: u64,
    /// Checkpoint size of the receipt.
    pub checkpoint_size: u64,
    /// Nullifier (hex).
    pub nullifier: String,
    /// Receipt text (verified).
    pub receipt: String,
}

async fn campaign_checked(
    client: &Client,
    id: &CampaignId,
    terms: Option<&Terms>,
) -> Result<CampaignInfo, FlowError> {
    // The whole list, not `/v1/campaigns/<id>`: the server learns nothing
    // about which campaign this pledge is for before it arrives.
    let c = client
        .campaigns()
        .await?
        .into_iter()
        .find(|c| c.campaign_id == *id)
        .ok_or_else(|| FlowError::Campaign(format!("no campaign {id} on this server")))?;
    if c.state != CampaignState::Open {
        return Err(FlowError::Campaign(format!(
            "campaign {id} is {} and accepts no more pledges",
            c.state
        )));
    }
    if let Some(terms) = terms {
        check_terms(&c, terms)?;
    }
    Ok(c)
}

/// The campaign's own definition (decoded from the campaign object and
/// checked against its id): what pledges are signed and checked against,
/// never an update's translation (SPEC R-CLIENT-8).
///
/// # Errors
/// [`FlowError::BadLog`] when the served definition is missing, damaged or
/// not the campaign's.
pub fn definition_of(c: &CampaignInfo) -> Result<CampaignDefinition, FlowError> {
    let bytes = c
        .definition_bytes()
        .ok_or_else(|| bad_log(format!("campaign {}: no definition served", c.campaign_id)))?;
    let def = CampaignDefinition::decode(&bytes)
        .map_err(|e| bad_log(format!("campaign {}: definition: {e}", c.campaign_id)))?;
    if def.id() != c.campaign_id {
        return Err(bad_log(format!(
            "campaign {}: the served definition is another campaign's",
            c.campaign_id
        )));
    }
    Ok(def)
}

/// Checks terms against the campaign's definition before anything is
/// signed (SPEC R-RULE-5, R-RULE-10), with the reason in words.
///
/// # Errors
/// [`FlowError::Campaign`] for terms the ledger would refuse.
pub fn check_terms(c: &CampaignInfo, terms: &Terms) -> Result<(), FlowError> {
    let def = definition_of(c)?;
    def.check_terms(terms).map_err(|r| {
        let what = match terms {
            Terms::Fund { .. } => "the number of people in your funding condition",
            _ => "threshold",
        };
        FlowError::Campaign(match r {
            TermsRefusal::ThresholdOutOfRange => format!(
                "{what} {} is outside this campaign's range {}..={}",
                terms.threshold_value(),
                c.threshold_min,
                c.threshold_max
            ),
            TermsRefusal::FundingNotAllowed => format!(
                "campaign {} takes no conditional funding: pledge a plain threshold",
                c.campaign_id
            ),
            TermsRefusal::SupportNotOnMenu => {
                let menu = def.funding().map(|f| {
                    f.levels()
                        .iter()
                        .map(|&y| format_amount(y, f))
                        .collect::<Vec<_>>()
                        .join(", ")
                });
                format!(
                    "this support is not on the campaign's menu ({})",
                    menu.unwrap_or_default()
                )
            }
            other => format!("terms refused: {other}"),
        })
    })
}

/// An amount in minor units written in the campaign's currency
/// (`1234` with 2 digits and EUR: `12.34 EUR`).
pub fn format_amount(minor: u64, f: &Funding) -> String {
    format!("{} {}", decimal_of(minor, f.minor_digits()), f.currency())
}

/// `minor` as a decimal with `digits` decimals (`1234`, 2: `12.34`).
pub fn decimal_of(minor: u64, digits: u8) -> String {
    if digits == 0 {
        return minor.to_string();
    }
    let scale = 10u64.pow(u32::from(digits));
    format!(
        "{}.{:0width$}",
        minor / scale,
        minor % scale,
        width = usize::from(digits)
    )
}

/// Parses an amount in major units (`200`, `12.5`, `12.50`) into minor
/// units of a currency with `digits` decimals: exact, no rounding.
///
/// # Errors
/// [`FlowError::Campaign`] for anything else (a sign, more decimals than the
/// currency has, an overflow, 0).
pub fn parse_amount(text: &str, digits: u8) -> Result<u64, FlowError> {
    let bad = || {
        FlowError::Campaign(format!(
            "{text:?} is not an amount of this currency (digits, at most {digits} decimals, above 0)"
        ))
    };
    let (whole, frac) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > usize::from(digits)
        || (text.contains('.') && frac.is_empty())
    {
        return Err(bad());
    }
    let scale = 10u64.pow(u32::from(digits));
    let w: u64 = whole.parse().map_err(|_| bad())?;
    let f: u64 = if frac.is_empty() {
        0
    } else {
        let pad = 10u64.pow(u32::from(digits) - u32::try_from(frac.len()).map_err(|_| bad())?);
        frac.parse::<u64>().map_err(|_| bad())? * pad
    };
    let v = w
        .checked_mul(scale)
        .and_then(|v| v.checked_add(f))
        .ok_or_else(bad)?;
    if v == 0 || v > pledge_protocol::pledge::MAX_AMOUNT {
        return Err(bad());
    }
    Ok(v)
}

/// Sends `entry` of `record` (already in the wallet, unacknowledged), checks
/// the receipt offline against the pinned key, and stores it.
async fn send_and_record(
    client: &Client,
    wallet: &mut Wallet,
    log: &NoteVerifier,
    campaign: &CampaignId,
    bytes: &[u8],
) -> Result<Submitted, FlowError> {
    let entry = Entry::decode(bytes).map_err(|e| FlowError::Crypto(e.to_string()))?;
    let accepted = client.submit(&entry).await?;
    let receipt = Receipt::parse(accepted.receipt.as_bytes())
        .map_err(|e| FlowError::Receipt(e.to_string()))?;
    receipt
        .verify_entry(bytes, log)
        .map_err(|e| FlowError::Receipt(e.to_string()))?;
    if receipt.index() != accepted.index {
        return Err(FlowError::Receipt(format!(
            "the server said index {} but the receipt proves index {}",
            accepted.index,
            receipt.index()
        )));
    }
    let rec = wallet
        .data
        .pledge_for_mut(campaign)
        .ok_or_else(|| FlowError::Wallet2("pledge record vanished".into()))?;
    let nullifier = rec.nullifier.clone();
    // The entry sent (another process's save, merged in meanwhile, may have
    // added entries after it).
    let encoded = B64.encode(bytes);
    let sent = rec
        .entries
        .iter_mut()
        .rev()
        .find(|e| e.entry == encoded)
        .ok_or_else(|| {
            FlowError::Wallet2(
                "the entry just acknowledged is no longer in the wallet's record".into(),
            )
        })?;
    sent.index = Some(accepted.index);
    sent.receipt = Some(accepted.receipt.clone());
    wallet.save()?;
    Ok(Submitted {
        index: accepted.index,
        checkpoint_size: accepted.checkpoint_size,
        nullifier,
        receipt: accepted.receipt,
    })
}

/// A pledge signed and saved in the wallet, pending, not yet sent.
#[derive(Debug, Clone)]
pub struct SignedPledge {
    /// The campaign.
    pub campaign: CampaignId,
    /// An earlier attempt's entry, found in the wallet and to be resent
    /// unchanged (no new delay is needed: it was drawn then).
    pub resend: bool,
    bytes: Vec<u8>,
}

/// The first half of [`commit`]: checks the campaign and the threshold,
/// signs the pledge with the wallet's token and saves it in the wallet,
/// pending, before any delay: `pledge status` shows it, and if this process
/// ends, `pledge send-pending` or the same `pledge commit` sends it.
/// `send_after` (Unix seconds) records when it may be sent (the end of its
/// random delay), for [`send_pending`].
///
/// `terms` are a threshold (`u32`) or any [`Terms`] of the campaign
/// (support asked, funding offered: SPEC R-PLEDGE-8).
///
/// # Errors
/// [`FlowError::Wallet2`] without a token; [`FlowError::Campaign`] for
/// terms the campaign refuses, a closed campaign, or a pledge already made.
pub async fn sign_pledge(
    client: &Client,
    wallet: &mut Wallet,
    campaign: &CampaignId,
    terms: impl Into<Terms>,
    send_after: Option<u64>,
) -> Result<SignedPledge, FlowError> {
    let terms = terms.into();
    if let Some(p) = wallet.data.pledge_for(campaign)
        && !p.withdrawn
    {
        if p.entries.len() == 1 && p.unacknowledged().is_some() {
            // An earlier attempt did not get its answer: resend it unchanged.
            return Ok(SignedPledge {
                campaign: *campaign,
                resend: true,
                bytes: entry_bytes(p.entries.first())?,
            });
        }
        return Err(FlowError::Campaign(format!(
            "you already pledged to {campaign}; use `pledge amend` to change the threshold"
        )));
    }
    let c = campaign_checked(client, campaign, None).await?;
    if let Some(block) = sealed::sealed_block(&c)? {
        // SPEC R-SEAL-41: one of the buckets, sealed under the logged key.
        let bucket = sealed::bucket_of(&c, &block, &terms)?;
        let bytes = sealed::sign_sealed_pledge(
            client,
            wallet,
            &c,
            &block,
            Some(bucket),
            "pledge",
            send_after,
        )
        .await?;
        return Ok(SignedPledge {
            campaign: *campaign,
            resend: false,
            bytes,
        });
    }
    check_terms(&c, &terms)?;
    let tok = wallet.data.unused_token(campaign).ok_or_else(|| {
        FlowError::Wallet2(format!(
            "no unused token for campaign {campaign}: run `pledge tokens` while it is open"
        ))
    })?;
    let key = tok.key();
    let pledge = Pledge::sign(*campaign, tok.token.clone(), terms, &key)
        .map_err(|e| FlowError::Crypto(e.to_string()))?;
    let nullifier = pledge.nullifier();
    let bytes = Entry::Pledge(pledge)
        .encode()
        .map_err(|e| FlowError::Crypto(e.to_string()))?;
    for t in &mut wallet.data.tokens {
        if t.campaign == *campaign && t.nullifier() == nullifier {
            t.used = true;
        }
    }
    wallet.data.pledges.push(PledgeRecord {
        campaign: campaign.to_hex(),
        nullifier: nullifier.to_hex(),
        threshold: terms.threshold_value(),
        withdrawn: false,
        entries: vec![EntryRecord::signed("pledge", 0, &bytes, send_after)],
    });
    wallet.save()?;
    Ok(SignedPledge {
        campaign: *campaign,
        resend: false,
        bytes,
    })
}

/// The second half of [`commit`]: sends a signed pledge (or finds that
/// another command already did and the wallet holds its receipt).
///
/// # Errors
/// Server refusals; a receipt that does not verify.
pub async fn send_signed(
    client: &Client,
    wallet: &mut Wallet,
    log: &NoteVerifier,
    signed: &SignedPledge,
) -> Result<Submitted, FlowError> {
    // Another command may have sent it meanwhile (and saved the receipt).
    wallet.refresh()?;
    if let Some(done) = acknowledged(wallet, log, &signed.campaign, &signed.bytes)? {
        return Ok(done);
    }
    send_and_record(client, wallet, log, &signed.campaign, &signed.bytes).await
}

/// `pledge commit`: pledges to `campaign` with `threshold`, spending the
/// wallet's token, after waiting `delay` (DESIGN P4): [`sign_pledge`], the
/// wait, [`send_signed`]. The entry is saved in the wallet before the wait;
/// a second call after a network failure resends the same entry.
///
/// # Errors
/// As [`sign_pledge`] and [`send_signed`].
pub async fn commit(
    client: &Client,
    wallet: &mut Wallet,
    log: &NoteVerifier,
    campaign: &CampaignId,
    terms: impl Into<Terms>,
    delay: Duration,
) -> Result<Submitted, FlowError> {
    let terms = terms.into();
    if wallet
        .data
        .pledge_for(campaign)
        .is_some_and(|p| p.is_sealed() && p.threshold == 0 && p.unacknowledged().is_none())
    {
        // A sealed null pledge of mine (cover, or withdrawn): pledging
        // seals the threshold into it (SPEC R-SEAL-42).
        return change(client, wallet, log, campaign, Some(terms)).await;
    }
    let signed = sign_pledge(client, wallet, campaign, terms, None).await?;
    if !signed.resend && !delay.is_zero() {
        crate::rt::sleep(delay)
            .await
            .map_err(|e| FlowError::Runtime(e.to_string()))?;
    }
    send_signed(client, wallet, log, &signed).await
}

/// What [`send_pending`] did.
#[derive(Debug, Default)]
pub struct PendingReport {
    /// Entries sent now (campaign hex, what was acknowledged).
    pub sent: Vec<(String, Submitted)>,
    /// Entries whose delay is not over (campaign hex, Unix seconds when due).
    pub waiting: Vec<(String, u64)>,
}

/// Which pending entries [`send_pending`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingFilter {
    /// Every unacknowledged entry, at once (`pledge send-pending --now`).
    All,
    /// Entries whose `send_after` has passed at this time (Unix seconds),
    /// and those without one (an amendment or withdrawal whose answer was
    /// lost): `pledge send-pending`, run by the person.
    DueBy(u64),
    /// Only entries with a `send_after` that passed at this time: what a
    /// background sender (`pledge watch`) may send without racing a command
    /// that is still sending its own entry.
    DeferredDueBy(u64),
    /// The unacknowledged entry of this campaign, whatever its due time (a
    /// person's "send now" for one pledge, leaving the others' delays alone).
    Campaign(CampaignId),
}

/// `pledge send-pending`: sends every entry of the wallet that is signed but
/// not acknowledged (a pledge left by `commit --background` or by an
/// interrupted command, an amendment or withdrawal whose answer was lost),
/// unchanged, as `filter` allows.
///
/// # Errors
/// The first failure (earlier entries stay sent and recorded).
pub async fn send_pending(
    client: &Client,
    wallet: &mut Wallet,
    log: &NoteVerifier,
    filter: PendingFilter,
) -> Result<PendingReport, FlowError> {
    wallet.refresh()?;
    let mut todo = Vec::new();
    let mut report = PendingReport::default();
    for rec in &wallet.data.pledges {
        if let Some(e) = rec.unacknowledged() {
            let send = match (filter, e.send_after) {
                (PendingFilter::All, _) | (PendingFilter::DueBy(_), None) => true,
                (PendingFilter::Campaign(c), _) => rec.campaign_id() == Some(c),
                (PendingFilter::DeferredDueBy(_), None) => false,
                (PendingFilter::DueBy(now) | PendingFilter::DeferredDueBy(now), Some(due)) => {
                    if due > now {
                        report.waiting.push((rec.campaign.clone(), due));
                    }
                    due <= now
                }
            };
            if send {
                todo.push((rec.campaign.clone(), entry_bytes(Some(e))?));
            }
        }
    }
    for (campaign, bytes) in todo {
        let id = CampaignId::from_hex(&campaign)
            .map_err(|_| FlowError::Wallet2("a stored campaign id is damaged".into()))?;
        let done = send_and_record(client, wallet, log, &id, &bytes).await?;
        report.sent.push((campaign, done));
    }
    Ok(report)
}

/// The submission of `bytes` on `campaign` if the wallet already holds its
/// receipt (verified again against the pinned key).
fn acknowledged(
    wallet: &Wallet,
    log: &NoteVerifier,
    campaign: &CampaignId,
    bytes: &[u8],
) -> Result<Option<Submitted>, FlowError> {
    let encoded = B64.encode(bytes);
    let Some(rec) =
        wallet.data.pledges.iter().find(|p| {
            p.campaign == campaign.to_hex() && p.entries.iter().any(|e| e.entry == encoded)
        })
    else {
        return Ok(None);
    };
    let Some((index, text)) = rec
        .entries
        .iter()
        .find(|e| e.entry == encoded)
        .and_then(|e| Some((e.index?, e.receipt.clone()?)))
    else {
        return Ok(None);
    };
    let receipt = Receipt::parse(text.as_bytes()).map_err(|e| FlowError::Receipt(e.to_string()))?;
    let signed = receipt
        .verify_entry(bytes, log)
        .map_err(|e| FlowError::Receipt(e.to_string()))?;
    Ok(Some(Submitted {
        index,
        checkpoint_size: signed.checkpoint().size(),
        nullifier: rec.nullifier.clone(),
        receipt: text,
    }))
}

/// The submission of the wallet's pledge on `campaign` if it is
/// acknowledged (its receipt verified again against the pinned key):
/// another process or tab may have sent it.
///
/// # Errors
/// A stored receipt that no longer verifies; a damaged entry.
pub fn acknowledged_pledge(
    wallet: &Wallet,
    log: &NoteVerifier,
    campaign: &CampaignId,
) -> Result<Option<Submitted>, FlowError> {
    let Some(first) = wallet
        .data
        .pledge_for(campaign)
        .and_then(|p| p.entries.first())
    else {
        return Ok(None);
    };
    acknowledged(wallet, log, campaign, &entry_bytes(Some(first))?)
}

fn entry_bytes(e: Option<&EntryRecord>) -> Result<Vec<u8>, FlowError> {
    e.and_then(|e| B64.decode(&e.entry).ok())
        .ok_or_else(|| FlowError::Wallet2("a stored entry is damaged".into()))
}

fn key_for(wallet: &Wallet, rec: &PledgeRecord) -> Result<PledgeSigningKey, FlowError> {
    let n = Nullifier::from_hex(&rec.nullifier)
        .map_err(|_| FlowError::Wallet2("a stored nullifier is damaged".into()))?;
    wallet
        .data
        .token_by_nullifier(&n)
        .map(TokenRecord::key)
        .ok_or_else(|| {
            FlowError::Wallet2("the pledge key of this pledge is not in the wallet".into())
        })
}

/// `pledge amend` (`Some(terms)`: a new threshold, or new terms of any kind
/// the campaign takes) or `pledge withdraw` (`None`): signs the next
/// sequence number with the pledge's key, submits it, verifies the receipt.
///
/// # Errors
/// [`FlowError::Wallet2`] without a live pledge; server refusals
/// (`bad_sequence`, `withdrawn`, `campaign_closed`, …).
pub async fn change(
    client: &Client,
    wallet: &mut Wallet,
    log: &NoteVerifier,
    campaign: &CampaignId,
    to: Option<Terms>,
) -> Result<Submitted, FlowError> {
    let rec = wallet
        .data
        .pledge_for(campaign)
        .filter(|p| !p.withdrawn)
        .ok_or_else(|| FlowError::Wallet2(format!("no live pledge of yours on {campaign}")))?
        .clone();
    if let Some(last) = rec.unacknowledged() {
        // Resend the unacknowledged change first, unchanged.
        let bytes = entry_bytes(Some(last))?;
        return send_and_record(client, wallet, log, campaign, &bytes).await;
    }
    // A sealed pledge is withdrawn by amending it to the null vector,
    // which the wallet records as threshold 0.
    let null = Terms::Threshold { t: 0 };
    let wanted = match &to {
        None if rec.is_sealed() => Some(&null),
        other => other.as_ref(),
    };
    if let Some(t) = wanted
        && rec.terms().as_ref() == Some(t)
    {
        return Err(FlowError::Campaign(match t {
            Terms::Threshold { t: 0 } if rec.is_sealed() => format!(
                "your sealed pledge on {campaign} is already the null vector: nothing to change, \
                 nothing sent"
            ),
            Terms::Threshold { t } => format!(
                "your threshold on {campaign} is already {t}: nothing to change, nothing sent"
            ),
            other => format!(
                "your pledge on {campaign} is already {}: nothing to change, nothing sent",
                describe_terms_plain(other)
            ),
        }));
    }
    let c = campaign_checked(client, campaign, None).await?;
    if let Some(block) = sealed::sealed_block(&c)? {
        // SPEC R-SEAL-42: amend = re-encrypt; withdraw = amend to null.
        let bucket = match &to {
            Some(t) => Some(sealed::bucket_of(&c, &block, t)?),
            None => None,
        };
        return sealed::send_sealed_amendment(client, wallet, log, &c, &rec, bucket, "amend").await;
    }
    if let Some(t) = &to {
        check_terms(&c, t)?;
    }
    let key = key_for(wallet, &rec)?;
    let n = Nullifier::from_hex(&rec.nullifier)
        .map_err(|_| FlowError::Wallet2("a stored nullifier is damaged".into()))?;
    let seq = rec.next_seq();
    let (entry, kind) = match to {
        Some(terms) => (
            Entry::PledgeAmended(Amendment::sign(*campaign, n, seq, terms, &key)),
            "amend",
        ),
        None => (
            Entry::PledgeWithdrawn(Withdrawal::sign(*campaign, n, seq, &key)),
            "withdraw",
        ),
    };
    let bytes = entry
        .encode()
        .map_err(|e| FlowError::Crypto(e.to_string()))?;
    let r = wallet
        .data
        .pledge_for_mut(campaign)
        .ok_or_else(|| FlowError::Wallet2("pledge record vanished".into()))?;
    match to {
        Some(t) => r.threshold = t.threshold_value(),
        None => r.withdrawn = true,
    }
    r.entries.push(EntryRecord::signed(kind, seq, &bytes, None));
    wallet.save()?;
    send_and_record(client, wallet, log, campaign, &bytes).await
}

/// A signed tally statement, verified with the log key.
///
/// # Errors
/// [`FlowError::BadLog`] for a bad signature, another origin or campaign.
pub fn verify_statement(
    text: &str,
    log: &NoteVerifier,
    campaign: &CampaignId,
) -> Result<CampaignStatement, FlowError> {
    let verifiers: [&dyn Verifier; 1] = [log];
    let note = open_note(text.as_bytes(), &verifiers)
        .map_err(|e| bad_log(format!("tally statement signature: {e}")))?;
    let st = CampaignStatement::parse_note_body(note.body())
        .map_err(|e| bad_log(format!("tally statement: {e}")))?;
    if st.origin() != log.name().as_str() {
        return Err(bad_log("tally statement of another log"));
    }
    if st.campaign() != campaign {
        return Err(bad_log("tally statement of another campaign"));
    }
    Ok(st)
}

/// A closed campaign's final result, read from its CampaignClosed entry
/// proven by inclusion to a verified (witnessed) checkpoint, not from a
/// statement alone (SPEC R-API-21).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Final active count A.
    pub active: u64,
    /// Live pledges at close.
    pub live: u64,
    /// Index of the CampaignClosed entry.
    pub closed_index: u64,
}

/// One line of `pledge status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PledgeStatus {
    /// Campaign id (hex).
    pub campaign: String,
    /// Title.
    pub title: String,
    /// The action pledged.
    pub action: String,
    /// My current threshold.
    pub threshold: u32,
    /// Withdrawn by me.
    pub withdrawn: bool,
    /// Every entry of this pledge has a receipt that verifies offline.
    pub included: bool,
    /// Entries still waiting for an answer.
    pub unacknowledged: usize,
    /// Active count A from the signed statement.
    pub active: u64,
    /// Live pledges from the signed statement.
    pub live: u64,
    /// Goal.
    pub goal: u32,
    /// `t ≤ A` (and not withdrawn).
    pub activated: bool,
    /// Deadline, Unix seconds.
    pub deadline: u64,
    /// Campaign state.
    pub state: String,
    /// The log size the statement giving A is bound to.
    pub statement_size: u64,
    /// The verified checkpoint it was read with.
    pub checkpoint_size: u64,
    /// The final result, once the campaign is closed.
    pub outcome: Option<Outcome>,
    /// My current terms (`threshold` is their [`Terms::threshold_value`]).
    pub terms: Terms,
    /// A funding campaign's funding block and the joint tally of its
    /// statement (SPEC R-FUND-1, R-FUND-2); `None` for any other campaign.
    pub funding: Option<FundingStatus>,
}

/// Where my pledge stands in a funding campaign's joint tally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FundingStatus {
    /// The campaign's currency, menu and surplus rule.
    pub block: Funding,
    /// The joint tally the statement states.
    pub joint: JointTally,
    /// At the close, for an action pledge whose support level is split
    /// (SPEC R-FUND-4): whether the public order puts it among those that
    /// act, found by replaying the log; `None` otherwise.
    pub tie_won: Option<bool>,
}

impl PledgeStatus {
    /// An action pledge's standing in a funding campaign (SPEC R-FUND-4).
    pub fn standing(&self) -> Option<Standing> {
        let f = self.funding.as_ref()?;
        let y = self.terms.support()?;
        Some(f.joint.standing(self.threshold, y))
    }

    /// A funding pledge's amount due were the campaign to close on this
    /// tally (SPEC R-FUND-5): final once closed.
    pub fn due(&self) -> Option<u64> {
        let f = self.funding.as_ref()?;
        match self.terms {
            Terms::Fund { n, amount } if !self.withdrawn => {
                Some(f.joint.due(n, amount, f.block.surplus_to_fund()))
            }
            Terms::Fund { .. } => Some(0),
            _ => None,
        }
    }

    /// Whether my condition holds on this tally: `t ≤ A` for a plain
    /// pledge; for an action pledge of a funding campaign, activated with
    /// its support paid for (a split level counts only once the close
    /// resolved it in my favour); for a funding pledge, `n ≤ A` (my money is
    /// called).
    fn holds(&self, active: u64) -> bool {
        if self.withdrawn {
            return false;
        }
        match (self.standing(), &self.funding) {
            (Some(Standing::Activated), _) => true,
            (Some(Standing::TieBreak { .. }), Some(f)) => f.tie_won == Some(true),
            (Some(_), _) => false,
            (None, _) => u64::from(self.threshold) <= active,
        }
    }

    /// Once closed: whether the action is on for me (not withdrawn, and my
    /// condition holds at the final A: for a funding pledge, whether my
    /// money is called).
    pub fn on_for_me(&self) -> Option<bool> {
        self.outcome.map(|o| self.holds(o.active))
    }

    /// Once closed: whether the campaign reached its goal (final `A ≥ goal`).
    pub fn goal_reached(&self) -> Option<bool> {
        self.outcome.map(|o| o.active >= u64::from(self.goal))
    }

    /// The outcome in words, once closed: what to do and why.
    pub fn outcome_text(&self) -> Option<String> {
        let o = self.outcome?;
        let goal = if o.active >= u64::from(self.goal) {
            format!("the campaign reached its goal of {}", self.goal)
        } else {
            format!("the campaign did not reach its goal of {}", self.goal)
        };
        if let Some(text) = self.funding_outcome_text(o.active, &goal) {
            return Some(text);
        }
        Some(if self.withdrawn {
            format!(
                "closed: you withdrew, so you are not counted; final A = {}; {goal}",
                o.active
            )
        } else if u64::from(self.threshold) <= o.active {
            format!(
                "IT'S ON FOR YOU: at close {} people had their condition met (final A = {}), at \
                 least your threshold {}; {goal}. Your pledge: {}",
                o.active, o.active, self.threshold, self.action
            )
        } else {
            format!(
                "NOT ON: at close only {} people had their condition met (final A = {}), fewer \
                 than your threshold {}, so your condition did not hold and you are not bound; \
                 {goal}",
                o.active, o.active, self.threshold
            )
        })
    }
}

impl PledgeStatus {
    /// The outcome of a support or funding pledge in words (SPEC R-FUND-4,
    /// R-FUND-5): activated and funded, eligible but not funded, or not
    /// activated; what a funder owes.
    fn funding_outcome_text(&self, active: u64, goal: &str) -> Option<String> {
        let f = self.funding.as_ref()?;
        if self.withdrawn {
            return None;
        }
        let money = |y: u64| format_amount(y, &f.block);
        Some(match (self.terms, self.standing()) {
            (Terms::Fund { n, amount }, _) => {
                let due = self.due().unwrap_or(0);
                if u64::from(n) <= active {
                    format!(
                        "YOUR FUNDING IS CALLED: at close {active} people act (final A = {active}),                          at least your {n}; you owe {} of the {} you offered, to be paid as the                          organisers say (nothing moves through this service); {goal}",
                        money(due),
                        money(amount)
                    )
                } else {
                    format!(
                        "NOT CALLED: at close only {active} people act (final A = {active}), fewer                          than your {n}: you owe nothing; {goal}"
                    )
                }
            }
            (_, Some(Standing::NotActivated)) => format!(
                "NOT ON: at close only {active} people had their condition met (final A =                  {active}), fewer than your threshold {}: you are not bound; {goal}",
                self.threshold
            ),
            (_, Some(Standing::WaitingForFunds)) => format!(
                "ELIGIBLE, NOT FUNDED: A = {active} reached your threshold {}, but the money                  pledged does not stretch to your support of {}: you are not bound; {goal}",
                self.threshold,
                money(self.terms.support().unwrap_or(0))
            ),
            (_, Some(Standing::TieBreak { slots, eligible })) if f.tie_won != Some(true) => {
                format!(
                    "ELIGIBLE, NOT FUNDED: A = {active} reached your threshold {}, but only                      {slots} of the {eligible} pledges asking {} are funded, and the public                      order (SPEC R-FUND-4) did not pick yours{}: you are not bound; {goal}",
                    self.threshold,
                    money(self.terms.support().unwrap_or(0)),
                    if f.tie_won.is_none() {
                        " (not resolved: the log was not replayed)"
                    } else {
                        ""
                    }
                )
            }
            (_, _) => {
                let support = self.terms.support().unwrap_or(0);
                let paid = if support == 0 {
                    String::new()
                } else {
                    format!(", and the fund pays you {}", money(support))
                };
                format!(
                    "IT'S ON FOR YOU: at close {active} people act (final A = {active}), at least                      your threshold {}{paid}; {goal}. Your pledge: {}",
                    self.threshold, self.action
                )
            }
        })
    }
}

/// Terms in words, without the campaign's currency (`threshold 5`,
/// `threshold 5, support 3000`, `fund 5000 if 100`): minor units.
pub fn describe_terms_plain(t: &Terms) -> String {
    match t {
        Terms::Threshold { t } => format!("threshold {t}"),
        Terms::SupportedThreshold { t, support } => {
            format!("threshold {t} with support {support} (minor units)")
        }
        Terms::Fund { n, amount } => format!("funding {amount} (minor units) if {n} act"),
        other => format!("terms of kind {}", other.kind().name()),
    }
}

/// Terms in words, amounts in the campaign's currency when it has one.
pub fn describe_terms(t: &Terms, funding: Option<&Funding>) -> String {
    let Some(f) = funding else {
        return describe_terms_plain(t);
    };
    match t {
        Terms::Threshold { t } => format!("act if {t} act"),
        Terms::SupportedThreshold { t, support } => {
            format!(
                "act if {t} act and I receive {}",
                format_amount(*support, f)
            )
        }
        Terms::Fund { n, amount } => {
            format!("give up to {} if {n} act", format_amount(*amount, f))
        }
        other => describe_terms_plain(other),
    }
}

/// Verifies every receipt of `rec` offline; true when all are present and valid.
pub fn receipts_valid(rec: &PledgeRecord, log: &NoteVerifier) -> bool {
    !rec.entries.is_empty()
        && rec.entries.iter().all(|e| {
            let (Some(r), Ok(bytes)) = (&e.receipt, B64.decode(&e.entry)) else {
                return false;
            };
            Receipt::parse(r.as_bytes())
                .ok()
                .is_some_and(|r| r.verify_entry(&bytes, log).is_ok())
        })
}

/// Accepts a verified statement for the wallet's memory, refusing a replay
/// (SPEC R-CLIENT-3, R-TALLY-12): older than a statement this wallet accepted before
/// for the campaign, or not covering one of my own acknowledged entries.
///
/// # Errors
/// [`FlowError::StaleStatement`].
pub fn accept_statement(wallet: &mut Wallet, st: &CampaignStatement) -> Result<(), FlowError> {
    let hex = st.campaign().to_hex();
    let size = st.checkpoint_size();
    let stale = |newer, why| FlowError::StaleStatement {
        campaign: hex.clone(),
        size,
        newer,
        why,
    };
    if let Some(seen) = wallet
        .data
        .log
        .as_ref()
        .and_then(|p| p.statements.get(&hex).copied())
        && size < seen
    {
        return Err(stale(seen, "a statement this wallet accepted before"));
    }
    let mine = wallet
        .data
        .pledges
        .iter()
        .filter(|p| p.campaign == hex)
        .flat_map(|p| p.entries.iter())
        .filter(|e| e.receipt.is_some())
        .filter_map(|e| e.index)
        .max();
    if let Some(i) = mine
        && size <= i
    {
        return Err(stale(
            i + 1,
            "the log size just after your own acknowledged entry",
        ));
    }
    if let Some(p) = &mut wallet.data.log {
        p.statements.insert(hex, size);
    }
    Ok(())
}

/// One campaign as every client reads it.
#[derive(Debug, Clone)]
pub struct CampaignView {
    /// The campaign object (unsigned fields: title, deadline, goal…).
    pub info: CampaignInfo,
    /// Its verified tally statement; `None` when the server could not serve
    /// one (503 `tally_unavailable`).
    pub statement: Option<CampaignStatement>,
    /// Its final result, once closed.
    pub outcome: Option<Outcome>,
    /// A sealed campaign's verified figures (SPEC R-SEAL-46); `None` for
    /// any other campaign.
    pub sealed: Option<SealedView>,
}

/// What a client knows of a sealed campaign (SPEC R-SEAL-46): its buckets
/// and reveal times, the count of sealed entries from its signed sealed
/// statement, and its latest reveal read from the log.
#[derive(Debug, Clone)]
pub struct SealedView {
    /// The campaign's sealed block (buckets, trustees, early reveals).
    pub block: pledge_protocol::campaign::Sealed,
    /// Sealed pledges and amendments, from the signed sealed statement.
    pub entries: u64,
    /// The log size that statement is bound to.
    pub statement_size: u64,
    /// The latest reveal, its counts read from its entry proven in the log.
    pub revealed: Option<RevealView>,
    /// How many reveals the log holds (early ones and the close's).
    pub reveals: usize,
}

/// One reveal of a sealed campaign (SPEC R-SEAL-37).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevealView {
    /// The snapshot's log index.
    pub snapshot: u64,
    /// Pledges per bucket, bucket 0 first.
    pub counts: Vec<u64>,
    /// Their sum: live pledges (null pledges count nowhere).
    pub live: u64,
    /// The active count of the revealed histogram (R-TALLY-9).
    pub active: u64,
}

impl SealedView {
    /// The next reveal after `now`: the first early reveal time still to
    /// come, else the deadline `deadline`.
    pub fn next_reveal(&self, now: u64, deadline: u64) -> u64 {
        self.block
            .early_reveals()
            .iter()
            .copied()
            .find(|&t| t > now)
            .unwrap_or(deadline)
    }
}

/// A reveal's histogram `(bucket value, count)`, zero counts left out
/// (SPEC R-SEAL-37).
pub fn revealed_histogram(buckets: &[u32], counts: &[u64]) -> Vec<(u32, u64)> {
    buckets
        .iter()
        .copied()
        .zip(counts.iter().copied())
        .filter(|&(_, n)| n > 0)
        .collect()
}

/// A sealed campaign's signed statement (SPEC R-SEAL-80 … R-SEAL-82),
/// verified with the log key: its size and entry count.
///
/// # Errors
/// [`FlowError::BadLog`] for a bad signature, another origin or campaign.
pub fn verify_sealed_statement(
    text: &str,
    log: &NoteVerifier,
    campaign: &CampaignId,
) -> Result<(u64, u64), FlowError> {
    let verifiers: [&dyn Verifier; 1] = [log];
    let note = open_note(text.as_bytes(), &verifiers)
        .map_err(|e| bad_log(format!("sealed tally statement signature: {e}")))?;
    let st = pledge_protocol::sealed_tally::SealedTallyStatement::parse_note_body(note.body())
        .map_err(|e| bad_log(format!("sealed tally statement: {e}")))?;
    if st.origin() != log.name().as_str() {
        return Err(bad_log("sealed tally statement of another log"));
    }
    if st.campaign() != campaign {
        return Err(bad_log("sealed tally statement of another campaign"));
    }
    Ok((st.checkpoint_size(), st.entries()))
}

/// [`SealedView`] of a sealed campaign: its statement verified, its latest
/// reveal checked against its entry proven in the log (the checkpoint is
/// read again when the log grew past `cp`).
async fn sealed_view(
    client: &Client,
    wallet: &mut Wallet,
    log: &NoteVerifier,
    cp: &mut SignedCheckpoint,
    info: &CampaignInfo,
) -> Result<SealedView, FlowError> {
    let id = info.campaign_id;
    let block = sealed::sealed_block(info)?.ok_or_else(|| {
        bad_log(format!(
            "campaign {id}: a sealed object for a live definition"
        ))
    })?;
    let (statement_size, entries) = match client.tally_statement(&id).await {
        Ok(text) => verify_sealed_statement(&text, log, &id)?,
        // Not signed yet (a campaign just opened): no entries to count.
        Err(e) if e.is(&ErrorCode::TallyUnavailable) => (0, 0),
        Err(e) => return Err(e.into()),
    };
    if statement_size > cp.checkpoint().size() {
        *cp = checkpoint(client, wallet, log).await?;
    }
    let served = info
        .sealed
        .as_ref()
        .map(|s| s.revealed.clone())
        .unwrap_or_default();
    let mut revealed = None;
    if let Some(last) = served.last() {
        let mut counts = sealed::revealed_from_log(client, cp, &id, last.snapshot).await?;
        if counts.is_none() {
            *cp = checkpoint(client, wallet, log).await?;
            counts = sealed::revealed_from_log(client, cp, &id, last.snapshot).await?;
        }
        let counts = counts.ok_or_else(|| {
            bad_log(format!(
                "campaign {id}: the server shows a reveal of snapshot {} that the log (size {}) \
                 does not hold",
                last.snapshot,
                cp.checkpoint().size()
            ))
        })?;
        if counts != last.counts {
            return Err(bad_log(format!(
                "campaign {id}: the server shows counts {:?} for snapshot {} but the log's reveal \
                 says {counts:?}",
                last.counts, last.snapshot
            )));
        }
        let hist = revealed_histogram(block.buckets(), &counts);
        revealed = Some(RevealView {
            snapshot: last.snapshot,
            live: counts.iter().sum(),
            active: pledge_protocol::tally::recompute_active(&hist),
            counts,
        });
    }
    Ok(SealedView {
        block,
        entries,
        statement_size,
        revealed,
        reveals: served.len(),
    })
}

/// Every campaign's verified tally, read the same way whatever the wallet
/// holds: the checkpoint (witnessed), the campaign list, every campaign's
/// statement and every closed campaign's CampaignClosed entry. The server
/// cannot tell from these requests which campaigns this wallet pledged to
/// (SPEC R-CLIENT-5).
///
/// # Errors
/// Server or log failures; a replayed statement.
pub async fn overview(
    client: &Client,
    wallet: &mut Wallet,
    log: &NoteVerifier,
) -> Result<(SignedCheckpoint, Vec<CampaignView>), FlowError> {
    let mut cp = checkpoint(client, wallet, log).await?;
    let list = client.campaigns().await?;
    let mut out = Vec::with_capacity(list.len());
    for info in list {
        let id = info.campaign_id;
        if info.sealed.is_some() {
            let view = sealed_view(client, wallet, log, &mut cp, &info).await?;
            // The close's outcome is known once its snapshot is revealed.
            let outcome = match (info.closed_index, &view.revealed) {
                (Some(i), Some(r)) if r.snapshot == i => Some(Outcome {
                    active: r.active,
                    live: r.live,
                    closed_index: i,
                }),
                _ => None,
            };
            out.push(CampaignView {
                info,
                statement: None,
                outcome,
                sealed: Some(view),
            });
            continue;
        }
        let statement = match client.tally_statement(&id).await {
            Ok(text) => Some(verify_statement(&text, log, &id)?),
            Err(e) if e.is(&ErrorCode::TallyUnavailable) => None,
            Err(e) => return Err(e.into()),
        };
        // Published after the checkpoint was read: read it again (a log
        // never serves a statement beyond its latest checkpoint, R-TALLY-11).
        let needed = statement
            .as_ref()
            .map_or(0, CampaignStatement::checkpoint_size)
            .max(info.closed_index.map_or(0, |i| i + 1));
        if needed > cp.checkpoint().size() {
            cp = checkpoint(client, wallet, log).await?;
            if needed > cp.checkpoint().size() {
                return Err(bad_log(format!(
                    "campaign {id}: the server names log size {needed}, beyond its checkpoint {}",
                    cp.checkpoint().size()
                )));
            }
        }
        if let Some(st) = &statement {
            accept_statement(wallet, st)?;
        }
        let outcome = match info.closed_index {
            Some(i) => Some(closed_outcome(client, &cp, &id, i, statement.as_ref()).await?),
            None => None,
        };
        out.push(CampaignView {
            info,
            statement,
            outcome,
            sealed: None,
        });
    }
    Ok((cp, out))
}

/// The CampaignClosed entry at `index`, proven to `cp`, and its agreement
/// with the campaign's statement (which no longer changes after the close):
/// SPEC R-CLIENT-4.
async fn closed_outcome(
    client: &Client,
    cp: &SignedCheckpoint,
    id: &CampaignId,
    index: u64,
    st: Option<&CampaignStatement>,
) -> Result<Outcome, FlowError> {
    let bytes = proven_entry(client, index, cp).await?;
    let Entry::CampaignClosed(c) = Entry::decode(&bytes).map_err(bad_log)? else {
        return Err(bad_log(format!(
            "entry {index} is not the CampaignClosed entry of {id}"
        )));
    };
    if c.campaign != *id {
        return Err(bad_log(format!(
            "entry {index} closes another campaign than {id}"
        )));
    }
    if let Some(st) = st
        && (st.active() != c.active || st.live() != c.live)
    {
        return Err(bad_log(format!(
            "campaign {id}: the served statement (A = {}, live {}) disagrees with the final \
             tally of its CampaignClosed entry {index} (A = {}, live {})",
            st.active(),
            st.live(),
            c.active,
            c.live
        )));
    }
    Ok(Outcome {
        active: c.active,
        live: c.live,
        closed_index: index,
    })
}

/// My pledges' lines from an [`overview`].
///
/// # Errors
/// [`FlowError::Wallet2`] for a damaged campaign id, [`FlowError::BadLog`]
/// when a campaign of mine is missing or has no statement.
pub fn my_statuses(
    wallet: &Wallet,
    log: &NoteVerifier,
    checkpoint_size: u64,
    views: &[CampaignView],
) -> Result<Vec<PledgeStatus>, FlowError> {
    let mut out = Vec::new();
    for rec in &wallet.data.pledges {
        let id = rec
            .campaign_id()
            .ok_or_else(|| FlowError::Wallet2("a stored campaign id is damaged".into()))?;
        let v = views
            .iter()
            .find(|v| v.info.campaign_id == id)
            .ok_or_else(|| bad_log(format!("campaign {id} is missing from the campaign list")))?;
        if let Some(sv) = &v.sealed {
            out.push(sealed_status(rec, log, checkpoint_size, v, sv));
            continue;
        }
        let st = v.statement.as_ref().ok_or_else(|| {
            bad_log(format!(
                "campaign {id}: the server has no tally statement for it"
            ))
        })?;
        let terms = rec
            .terms()
            .ok_or_else(|| FlowError::Wallet2(format!("the pledge on {id} is damaged")))?;
        let funding = match st {
            CampaignStatement::Funding(fs) => Some(FundingStatus {
                block: definition_of(&v.info)?.funding().cloned().ok_or_else(|| {
                    bad_log(format!(
                        "campaign {id}: a funding statement for a campaign without funding"
                    ))
                })?,
                joint: fs.snapshot().joint().clone(),
                tie_won: None,
            }),
            CampaignStatement::Plain(_) => None,
        };
        let mut status = PledgeStatus {
            campaign: rec.campaign.clone(),
            title: v.info.title.clone(),
            action: v.info.action.clone(),
            threshold: rec.threshold,
            withdrawn: rec.withdrawn,
            included: receipts_valid(rec, log),
            unacknowledged: rec.entries.iter().filter(|e| e.receipt.is_none()).count(),
            active: st.active(),
            live: st.live(),
            goal: v.info.goal,
            activated: false,
            deadline: v.info.deadline,
            state: v.info.state.to_string(),
            statement_size: st.checkpoint_size(),
            checkpoint_size,
            outcome: v.outcome,
            terms,
            funding,
        };
        status.activated = status.holds(status.active);
        out.push(status);
    }
    Ok(out)
}

/// My pledge's line in a sealed campaign (SPEC R-SEAL-46): A and live from
/// the latest reveal (0 before one); a null pledge (cover, or withdrawn by
/// amending to null) shows as withdrawn: it counts nowhere.
fn sealed_status(
    rec: &PledgeRecord,
    log: &NoteVerifier,
    checkpoint_size: u64,
    v: &CampaignView,
    sv: &SealedView,
) -> PledgeStatus {
    let (active, live) = sv.revealed.as_ref().map_or((0, 0), |r| (r.active, r.live));
    let null = rec.threshold == 0;
    PledgeStatus {
        campaign: rec.campaign.clone(),
        title: v.info.title.clone(),
        action: v.info.action.clone(),
        threshold: rec.threshold,
        withdrawn: rec.withdrawn || null,
        included: receipts_valid(rec, log),
        unacknowledged: rec.entries.iter().filter(|e| e.receipt.is_none()).count(),
        active,
        live,
        goal: v.info.goal,
        activated: !null && sv.revealed.is_some() && u64::from(rec.threshold) <= active,
        deadline: v.info.deadline,
        state: v.info.state.to_string(),
        statement_size: sv.statement_size,
        checkpoint_size,
        outcome: v.outcome,
        terms: Terms::Threshold { t: rec.threshold },
        funding: None,
    }
}

/// `pledge status`: for each of my pledges, whether it is included (receipts
/// verify), the campaign's A from its signed statement, whether I am
/// activated, the deadline, and the outcome once closed. Reads every
/// campaign ([`overview`]), so the requests are the same for every wallet;
/// saves what it verified (checkpoint, statement sizes) in the wallet.
///
/// # Errors
/// Server or log failures.
pub async fn status(
    client: &Client,
    wallet: &mut Wallet,
    log: &NoteVerifier,
) -> Result<Vec<PledgeStatus>, FlowError> {
    Ok(status_and_views(client, wallet, log).await?.0)
}

/// [`status`], with the campaign views it read (a sealed campaign's
/// buckets, statement and reveals are in its view).
///
/// # Errors
/// Server or log failures.
pub async fn status_and_views(
    client: &Client,
    wallet: &mut Wallet,
    log: &NoteVerifier,
) -> Result<(Vec<PledgeStatus>, Vec<CampaignView>), FlowError> {
    let (cp, views) = overview(client, wallet, log).await?;
    wallet.save()?;
    let mut out = my_statuses(wallet, log, cp.checkpoint().size(), &views)?;
    resolve_ties(client, wallet, log, &mut out).await?;
    Ok((out, views))
}

/// At the close, a pledge whose support level is split (SPEC R-FUND-4)
/// learns from the log whether the public order picked it: the level's
/// nullifiers and the final root come from a replay of the log (once per
/// campaign, only in that case).
async fn resolve_ties(
    client: &Client,
    wallet: &mut Wallet,
    log: &NoteVerifier,
    statuses: &mut [PledgeStatus],
) -> Result<(), FlowError> {
    for i in 0..statuses.len() {
        let s = &statuses[i];
        if s.withdrawn
            || s.outcome.is_none()
            || !matches!(s.standing(), Some(Standing::TieBreak { .. }))
        {
            continue;
        }
        let id = CampaignId::from_hex(&s.campaign)
            .map_err(|_| FlowError::Wallet2("a stored campaign id is damaged".into()))?;
        let alloc = allocation(client, wallet, log, &id).await?;
        for st in statuses.iter_mut().filter(|st| st.campaign == id.to_hex()) {
            let Some(n) = wallet
                .data
                .pledges
                .iter()
                .find(|p| p.campaign == st.campaign && !p.withdrawn)
                .and_then(|p| Nullifier::from_hex(&p.nullifier).ok())
            else {
                continue;
            };
            let won = alloc
                .rows
                .iter()
                .find(|r| r.nullifier == n)
                .map(|r| matches!(r.outcome, pledge_protocol::funding::Outcome::Acts { .. }));
            if let Some(f) = &mut st.funding {
                f.tie_won = won;
            }
            st.activated = st.holds(st.active);
        }
    }
    Ok(())
}

/// Replays the log from its entry bundles up to `size` with the protocol's
/// replay (every entry through the ledger rules, signatures included),
/// calling `before_each` with the replay so far and the next entry's bytes.
/// The caller checks the root against a signed checkpoint.
///
/// # Errors
/// Server failures; an entry the rules refuse ([`FlowError::BadLog`]).
pub async fn replay_log(
    client: &Client,
    size: u64,
    mut before_each: impl FnMut(&Replayer<Tree>, &[u8]) -> Result<(), FlowError>,
) -> Result<Replayer<Tree>, FlowError> {
    let mut replay = Replayer::<Tree>::new();
    let mut n = 0u64;
    while n.saturating_mul(256) < size {
        let width = u16::try_from((size - n * 256).min(256)).unwrap_or(256);
        let bid = BundleId::new(n, width).map_err(bad_log)?;
        let data = client.bundle(&bid).await?;
        let entries = decode_bundle(&data, &bid).map_err(bad_log)?;
        for bytes in entries {
            before_each(&replay, bytes)?;
            let step = replay
                .replay_bytes(bytes, Verification::Now)
                .map_err(bad_log)?;
            let index = step.index;
            step.into_result().map_err(|e| match e {
                ReplayError::Undecodable(e) => bad_log(e),
                e => bad_log(format!("entry {index}: {e}")),
            })?;
        }
        n += 1;
    }
    Ok(replay)
}

/// One live pledge of a closed funding campaign and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationRow {
    /// Its nullifier (public in the log).
    pub nullifier: Nullifier,
    /// Its anonymous pledge key (the token's), the handle under which a
    /// payment can be claimed elsewhere by signing with it.
    pub pledge_key: [u8; 32],
    /// Its live terms at the close.
    pub terms: Terms,
    /// Acts (with the support paid), waiting for funds, not activated, or
    /// owes (SPEC R-FUND-4, R-FUND-5).
    pub outcome: pledge_protocol::funding::Outcome,
}

/// Every live pledge's outcome in a closed funding campaign, recomputed
/// from the log: what the operator exports so payments can happen
/// elsewhere, and what any reader can check.
#[derive(Debug, Clone)]
pub struct Allocation {
    /// The campaign.
    pub campaign: CampaignId,
    /// Its funding block.
    pub block: Funding,
    /// Index of its CampaignClosed entry.
    pub closed_index: u64,
    /// The root of the log of size `closed_index + 1`: the tie-break seed
    /// (SPEC R-FUND-4).
    pub final_root: Hash,
    /// The joint tally at the close.
    pub joint: JointTally,
    /// Live pledges in log order.
    pub rows: Vec<AllocationRow>,
}

/// Replays the log up to a verified checkpoint and allocates a closed
/// funding campaign (SPEC R-FUND-4, R-FUND-5), checking that the joint
/// tally is the one its CampaignClosed entry states.
///
/// # Errors
/// A campaign without funding or not closed yet; log failures.
pub async fn allocation(
    client: &Client,
    wallet: &mut Wallet,
    log: &NoteVerifier,
    campaign: &CampaignId,
) -> Result<Allocation, FlowError> {
    let cp = checkpoint(client, wallet, log).await?;
    let info = client
        .campaigns()
        .await?
        .into_iter()
        .find(|c| c.campaign_id == *campaign)
        .ok_or_else(|| FlowError::Campaign(format!("no campaign {campaign} on this server")))?;
    let block = definition_of(&info)?.funding().cloned().ok_or_else(|| {
        FlowError::Campaign(format!("campaign {campaign} takes no conditional funding"))
    })?;
    let closed_index = info.closed_index.ok_or_else(|| {
        FlowError::Campaign(format!(
            "campaign {campaign} is not closed yet: who acts and who pays is fixed only at the close"
        ))
    })?;
    let size = cp.checkpoint().size();
    if closed_index >= size {
        return Err(bad_log(format!(
            "campaign {campaign}: its CampaignClosed entry {closed_index} is beyond the checkpoint \
             {size}"
        )));
    }
    let mut final_root = None;
    let mut keys: Vec<(Nullifier, [u8; 32])> = Vec::new();
    let replay = replay_log(client, size, |r, bytes| {
        if r.size() == closed_index + 1 {
            final_root = Some(r.tree().root());
        }
        if let Ok(Entry::Pledge(p)) = Entry::decode(bytes)
            && p.campaign == *campaign
        {
            keys.push((p.nullifier(), *p.token.pledge_pk.as_bytes()));
        }
        Ok(())
    })
    .await?;
    if replay.tree().root() != *cp.checkpoint().root() {
        return Err(bad_log(
            "the entry bundles do not hash up to the signed checkpoint root",
        ));
    }
    let final_root = match final_root {
        Some(r) => r,
        None => replay.tree().root(),
    };
    let closed = replay
        .ledger()
        .campaign(campaign)
        .and_then(|c| c.closed.clone())
        .ok_or_else(|| {
            bad_log(format!(
                "campaign {campaign}: no CampaignClosed entry in the log"
            ))
        })?;
    let live: Vec<(Nullifier, [u8; 32], Terms)> = keys
        .into_iter()
        .filter_map(|(n, k)| Some((n, k, replay.ledger().live_terms(&n)?)))
        .collect();
    let pairs: Vec<(Nullifier, Terms)> = live.iter().map(|(n, _, t)| (*n, *t)).collect();
    let (joint, outcomes) =
        pledge_protocol::funding::allocate(&final_root, &pairs, block.surplus_to_fund())
            .map_err(bad_log)?;
    if joint.active != closed.active {
        return Err(bad_log(format!(
            "campaign {campaign}: the log's pledges give A = {} but its CampaignClosed entry says {}",
            joint.active, closed.active
        )));
    }
    let rows = live
        .into_iter()
        .zip(outcomes)
        .map(|((nullifier, pledge_key, terms), outcome)| AllocationRow {
            nullifier,
            pledge_key,
            terms,
            outcome,
        })
        .collect();
    Ok(Allocation {
        campaign: *campaign,
        block,
        closed_index,
        final_root,
        joint,
        rows,
    })
}

/// Something `pledge watch` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchNews {
    /// One of my pledges became activated (`t ≤ A`).
    Activated {
        /// Campaign (hex).
        campaign: String,
        /// My threshold.
        threshold: u32,
        /// A.
        active: u64,
    },
    /// One of my pledges is no longer activated.
    Deactivated {
        /// Campaign (hex).
        campaign: String,
        /// My threshold.
        threshold: u32,
        /// A.
        active: u64,
    },
    /// A campaign I pledged to reached its goal.
    GoalReached {
        /// Campaign (hex).
        campaign: String,
        /// A.
        active: u64,
        /// Goal.
        goal: u32,
    },
    /// A campaign I pledged to fell back below its goal (success is judged
    /// at the deadline).
    GoalLost {
        /// Campaign (hex).
        campaign: String,
        /// A.
        active: u64,
        /// Goal.
        goal: u32,
    },
    /// The wallet now holds a pledge the watch did not follow yet (made
    /// after it started, by another command), or a new threshold for one.
    Following {
        /// Campaign (hex).
        campaign: String,
        /// My threshold now.
        threshold: u32,
        /// A (latest statement).
        active: u64,
        /// `t ≤ A`.
        activated: bool,
    },
    /// One of my pledges was withdrawn (by another command): no longer watched.
    Withdrawn {
        /// Campaign (hex).
        campaign: String,
    },
    /// A campaign of mine closed: its final result for me.
    Outcome(Box<PledgeStatus>),
    /// A pending entry of mine whose delay was over was sent (`commit
    /// --background`).
    Sent {
        /// Campaign (hex).
        campaign: String,
        /// Its index in the log.
        index: u64,
    },
    /// Sending a pending entry failed (it stays pending; the reason).
    NotSent(String),
    /// A new verified checkpoint.
    Checkpoint(u64),
    /// A sealed campaign I pledged to revealed its counts (an early reveal
    /// or the close's; SPEC R-SEAL-46): read from their entry proven in the
    /// log, not from the server's word.
    Revealed {
        /// Campaign (hex).
        campaign: String,
        /// Log index of the revealed snapshot.
        snapshot: u64,
        /// Pledges per bucket, bucket 0 first.
        counts: Vec<u64>,
        /// Live pledges (their sum).
        live: u64,
        /// A of the revealed histogram.
        active: u64,
        /// My threshold (the bucket I chose); `None` for a null pledge.
        threshold: Option<u32>,
    },
}

/// What the watch knows of one of my pledges.
#[derive(Debug, Clone, Copy)]
struct Followed {
    threshold: u32,
    terms: Terms,
    goal: u32,
    activated: bool,
    reached: bool,
    closed: bool,
}

/// State `pledge watch` compares against: my live pledges (re-read from the
/// wallet at each change, so pledges, amendments and withdrawals made by
/// other commands are followed) and the latest A of every campaign.
#[derive(Debug, Default)]
pub struct Watcher {
    mine: BTreeMap<CampaignId, Followed>,
    active: BTreeMap<CampaignId, u64>,
    /// Funding campaigns' latest joint tallies.
    joint: BTreeMap<CampaignId, JointTally>,
    goals: BTreeMap<CampaignId, u32>,
    /// Sealed campaigns: how many reveals the log held at the last look.
    reveals: BTreeMap<CampaignId, usize>,
}

impl Watcher {
    /// Builds the watch list from my pledges' current status (the latest A
    /// of every campaign comes from [`Watcher::learn`]).
    pub fn new(statuses: &[PledgeStatus]) -> Self {
        let mut w = Self::default();
        for s in statuses {
            let Ok(id) = CampaignId::from_hex(&s.campaign) else {
                continue;
            };
            if !s.withdrawn {
                w.mine.insert(
                    id,
                    Followed {
                        threshold: s.threshold,
                        terms: s.terms,
                        goal: s.goal,
                        activated: s.activated,
                        reached: s.active >= u64::from(s.goal),
                        closed: s.outcome.is_some(),
                    },
                );
            }
        }
        w
    }

    /// Remembers every campaign's latest A and goal (from an [`overview`]),
    /// so a pledge made later is judged against them.
    pub fn learn(&mut self, views: &[CampaignView]) {
        for v in views {
            let id = v.info.campaign_id;
            self.goals.insert(id, v.info.goal);
            if let Some(st) = &v.statement {
                self.observe(st);
            }
            if let Some(s) = &v.sealed {
                self.reveals.insert(id, s.reveals);
            }
        }
    }

    /// Whether I follow a sealed campaign (whose reveals come with no tally
    /// event, so the watch looks for them).
    pub fn follows_sealed(&self) -> bool {
        self.mine.keys().any(|id| self.reveals.contains_key(id))
    }

    /// Whether the campaign list shows a reveal of a sealed campaign of mine
    /// that the last look did not find (a hint only: [`Watcher::revealed`]
    /// reports what the log proves).
    pub fn reveal_served(&self, list: &[CampaignInfo]) -> bool {
        list.iter().any(|c| {
            c.sealed.as_ref().is_some_and(|s| {
                self.mine.contains_key(&c.campaign_id)
                    && s.revealed.len() > self.reveals.get(&c.campaign_id).copied().unwrap_or(0)
            })
        })
    }

    /// The reveals of my sealed campaigns that appeared since the last call
    /// (or [`Watcher::learn`]); remembers the new views.
    pub fn revealed(&mut self, views: &[CampaignView]) -> Vec<WatchNews> {
        let mut news = Vec::new();
        for v in views {
            let id = v.info.campaign_id;
            let Some(s) = &v.sealed else { continue };
            let seen = self.reveals.get(&id).copied().unwrap_or(0);
            if let (Some(f), Some(r)) = (self.mine.get(&id), &s.revealed)
                && s.reveals > seen
            {
                news.push(WatchNews::Revealed {
                    campaign: id.to_hex(),
                    snapshot: r.snapshot,
                    counts: r.counts.clone(),
                    live: r.live,
                    active: r.active,
                    threshold: (f.threshold > 0).then_some(f.threshold),
                });
            }
            self.reveals.insert(id, s.reveals);
        }
        news
    }

    /// Whether `terms` hold on campaign `id`'s latest tally (for a funding
    /// campaign: activated with support paid, or a funder called; a split
    /// level does not count before the close).
    fn holds(&self, id: &CampaignId, terms: &Terms) -> bool {
        let active = self.active.get(id).copied().unwrap_or(0);
        match (self.joint.get(id), terms.support()) {
            (Some(j), Some(y)) => j.standing(terms.threshold_value(), y) == Standing::Activated,
            _ => u64::from(terms.threshold_value()) <= active,
        }
    }

    /// Records a verified statement's A without reporting anything (call
    /// before [`Watcher::sync`], so a pledge changed meanwhile is judged
    /// against the newest A).
    pub fn observe(&mut self, st: &CampaignStatement) {
        self.active.insert(*st.campaign(), st.active());
        if let CampaignStatement::Funding(f) = st {
            self.joint
                .insert(*st.campaign(), f.snapshot().joint().clone());
        }
    }

    /// Follows the wallet's pledges as they are now: a new pledge or a new
    /// threshold gives [`WatchNews::Following`], a withdrawal
    /// [`WatchNews::Withdrawn`].
    pub fn sync(&mut self, data: &WalletData) -> Vec<WatchNews> {
        let mut news = Vec::new();
        let mut latest: BTreeMap<CampaignId, &PledgeRecord> = BTreeMap::new();
        for rec in &data.pledges {
            if let Some(id) = rec.campaign_id() {
                // A live pledge wins over a withdrawn one of the same campaign.
                let keep = latest
                    .get(&id)
                    .is_some_and(|o| !o.withdrawn && rec.withdrawn);
                if !keep {
                    latest.insert(id, rec);
                }
            }
        }
        for (id, rec) in latest {
            let campaign = id.to_hex();
            let followed = self.mine.get(&id).map(|f| f.terms);
            match (followed, rec.withdrawn) {
                (Some(_), true) => {
                    self.mine.remove(&id);
                    news.push(WatchNews::Withdrawn { campaign });
                }
                (Some(old), false) if Some(old) != rec.terms() => {
                    let active = self.active.get(&id).copied().unwrap_or(0);
                    let terms = rec.terms().unwrap_or(Terms::Threshold { t: rec.threshold });
                    let activated = self.holds(&id, &terms);
                    let Some(f) = self.mine.get_mut(&id) else {
                        continue;
                    };
                    f.threshold = rec.threshold;
                    f.terms = terms;
                    f.activated = activated;
                    news.push(WatchNews::Following {
                        campaign,
                        threshold: rec.threshold,
                        active,
                        activated: f.activated,
                    });
                }
                (None, false) => {
                    let active = self.active.get(&id).copied().unwrap_or(0);
                    let goal = self.goals.get(&id).copied().unwrap_or(u32::MAX);
                    let terms = rec.terms().unwrap_or(Terms::Threshold { t: rec.threshold });
                    let activated = self.holds(&id, &terms);
                    self.mine.insert(
                        id,
                        Followed {
                            threshold: rec.threshold,
                            terms,
                            goal,
                            activated,
                            reached: active >= u64::from(goal),
                            closed: false,
                        },
                    );
                    news.push(WatchNews::Following {
                        campaign,
                        threshold: rec.threshold,
                        active,
                        activated,
                    });
                }
                _ => {}
            }
        }
        news
    }

    /// Feeds a verified statement; returns what changed for me.
    pub fn update(&mut self, st: &CampaignStatement) -> Vec<WatchNews> {
        let mut news = Vec::new();
        self.observe(st);
        let now = self
            .mine
            .get(st.campaign())
            .map(|f| self.holds(st.campaign(), &f.terms));
        if let (Some(f), Some(now)) = (self.mine.get_mut(st.campaign()), now) {
            if now != f.activated {
                let campaign = st.campaign().to_hex();
                news.push(if now {
                    WatchNews::Activated {
                        campaign,
                        threshold: f.threshold,
                        active: st.active(),
                    }
                } else {
                    WatchNews::Deactivated {
                        campaign,
                        threshold: f.threshold,
                        active: st.active(),
                    }
                });
                f.activated = now;
            }
            let now_reached = st.active() >= u64::from(f.goal);
            if now_reached != f.reached {
                f.reached = now_reached;
                let campaign = st.campaign().to_hex();
                news.push(if now_reached {
                    WatchNews::GoalReached {
                        campaign,
                        active: st.active(),
                        goal: f.goal,
                    }
                } else {
                    WatchNews::GoalLost {
                        campaign,
                        active: st.active(),
                        goal: f.goal,
                    }
                });
            }
        }
        news
    }

    /// Outcomes of my campaigns that closed since the last call.
    pub fn outcomes(&mut self, statuses: &[PledgeStatus]) -> Vec<WatchNews> {
        let mut news = Vec::new();
        for s in statuses
            .iter()
            .filter(|s| s.outcome.is_some() && !s.withdrawn)
        {
            let Ok(id) = CampaignId::from_hex(&s.campaign) else {
                continue;
            };
            if let Some(f) = self.mine.get_mut(&id)
                && !f.closed
            {
                f.closed = true;
                news.push(WatchNews::Outcome(Box::new(s.clone())));
            }
        }
        news
    }

    /// Whether one of my watched campaigns is past its deadline but its
    /// outcome was not reported yet.
    #[cfg(feature = "native")]
    fn awaits_outcome(&self, id: &CampaignId) -> bool {
        self.mine.get(id).is_some_and(|f| !f.closed)
    }

    /// The campaigns watched.
    pub fn campaigns(&self) -> impl Iterator<Item = &CampaignId> {
        self.mine.keys()
    }
}

/// `pledge watch`: follows `/v1/events` (the same public stream any reader
/// gets: nothing tells the server which campaigns interest this client) and
/// calls `on_news` for each change; when the stream fails, polls every
/// `poll` (reading *every* campaign, like [`status`]). Each statement is
/// verified and checked for replay ([`accept_statement`]); a statement beyond
/// the verified checkpoint makes it read and verify the checkpoint (witness
/// quorum included) first. The wallet is re-read at each change, so pledges,
/// amendments and withdrawals made meanwhile by other commands are followed;
/// when a campaign of mine closes, its [`WatchNews::Outcome`] is reported
/// (once per run; at start for campaigns already closed). Deferred entries
/// (`commit --background`) whose random delay is over by a minute are sent,
/// checked every `poll` ([`WatchNews::Sent`], [`WatchNews::NotSent`]). Stops after `until` if given.
///
/// # Errors
/// Log failures (a bad signature, a replayed statement, a missing quorum).
#[cfg(feature = "native")]
pub async fn watch(
    client: &Client,
    wallet: &mut Wallet,
    log: &NoteVerifier,
    poll: Duration,
    until: Option<Duration>,
    mut on_news: impl FnMut(WatchNews),
) -> Result<(), FlowError> {
    let (cp, views) = overview(client, wallet, log).await?;
    wallet.save()?;
    let statuses = my_statuses(wallet, log, cp.checkpoint().size(), &views)?;
    let mut w = Watcher::new(&statuses);
    w.learn(&views);
    for n in w.outcomes(&statuses) {
        on_news(n);
    }
    for n in send_due(client, wallet, log).await {
        on_news(n);
    }
    let mut verified = cp.checkpoint().size();
    let mut last_reveal_look = tokio::time::Instant::now();
    let mut reveal_look_due = false;
    let deadline = until.map(|d| tokio::time::Instant::now() + d);
    let run = async {
        loop {
            match client.events().await {
                Ok(mut stream) => loop {
                    // A sealed campaign's reveal has no tally event of its
                    // own: after a new checkpoint, look (at most once per
                    // `poll`; a look put off is made after `poll` without
                    // events).
                    if reveal_look_due && last_reveal_look.elapsed() >= poll {
                        reveal_look_due = false;
                        last_reveal_look = tokio::time::Instant::now();
                        for n in
                            look_for_reveals(client, wallet, log, &mut w, &mut verified).await?
                        {
                            on_news(n);
                        }
                    }
                    let ev = tokio::select! {
                        ev = stream.next() => ev,
                        () = tokio::time::sleep(poll) => {
                            for n in send_due(client, wallet, log).await {
                                on_news(n);
                            }
                            continue;
                        }
                    };
                    let Some(ev) = ev else { break };
                    match ev {
                        Ok(ServerEvent::Tally {
                            campaign_id: id,
                            statement,
                            ..
                        }) => {
                            let st = verify_statement(&statement, log, &id)?;
                            if st.checkpoint_size() > verified {
                                verified =
                                    checkpoint(client, wallet, log).await?.checkpoint().size();
                                if st.checkpoint_size() > verified {
                                    return Err(bad_log(format!(
                                        "a statement at log size {} beyond the checkpoint \
                                             {verified}",
                                        st.checkpoint_size()
                                    )));
                                }
                            }
                            wallet.refresh()?;
                            accept_statement(wallet, &st)?;
                            w.observe(&st);
                            let mut news = w.sync(&wallet.data);
                            news.extend(w.update(&st));
                            if w.awaits_outcome(&id) && past_deadline(&views, &id) {
                                let (cp, views) = overview(client, wallet, log).await?;
                                verified = verified.max(cp.checkpoint().size());
                                let st = my_statuses(wallet, log, cp.checkpoint().size(), &views)?;
                                news.extend(w.outcomes(&st));
                            }
                            wallet.save()?;
                            for n in news {
                                on_news(n);
                            }
                        }
                        Ok(ServerEvent::Checkpoint { note, .. }) => {
                            let cp = open_checkpoint(note.as_bytes(), log)
                                .map_err(|e| bad_log(format!("checkpoint: {e}")))?;
                            on_news(WatchNews::Checkpoint(cp.checkpoint().size()));
                            reveal_look_due |= w.follows_sealed();
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                },
                Err(_) => {
                    for n in send_due(client, wallet, log).await {
                        on_news(n);
                    }
                    // Poll: every campaign, like any public reader.
                    if let Ok((cp, views)) = overview(client, wallet, log).await {
                        verified = verified.max(cp.checkpoint().size());
                        wallet.refresh()?;
                        for v in views.iter().filter_map(|v| v.statement.as_ref()) {
                            w.observe(v);
                        }
                        let mut news = w.sync(&wallet.data);
                        for v in &views {
                            if let Some(st) = &v.statement {
                                news.extend(w.update(st));
                            }
                        }
                        news.extend(w.revealed(&views));
                        let st = my_statuses(wallet, log, cp.checkpoint().size(), &views)?;
                        news.extend(w.outcomes(&st));
                        wallet.save()?;
                        for n in news {
                            on_news(n);
                        }
                    }
                }
            }
            crate::rt::sleep(poll)
                .await
                .map_err(|e| FlowError::Runtime(e.to_string()))?;
        }
    };
    match deadline {
        Some(d) => match tokio::time::timeout_at(d, run).await {
            Ok(r) => r,
            Err(_) => Ok(()),
        },
        None => run.await,
    }
}

/// One look of [`watch`] for reveals of my sealed campaigns: the campaign
/// list, as any reader reads it, and, when it shows a reveal the watcher has
/// not reported, every campaign read as [`status`] does (the counts from
/// their entry proven in the log): the reveals, and the outcomes they fix.
#[cfg(feature = "native")]
async fn look_for_reveals(
    client: &Client,
    wallet: &mut Wallet,
    log: &NoteVerifier,
    w: &mut Watcher,
    verified: &mut u64,
) -> Result<Vec<WatchNews>, FlowError> {
    // A failed read is retried at the next checkpoint.
    let Ok(list) = client.campaigns().await else {
        return Ok(Vec::new());
    };
    if !w.reveal_served(&list) {
        return Ok(Vec::new());
    }
    let (cp, views) = overview(client, wallet, log).await?;
    *verified = (*verified).max(cp.checkpoint().size());
    wallet.refresh()?;
    let mut news = w.sync(&wallet.data);
    news.extend(w.revealed(&views));
    let st = my_statuses(wallet, log, cp.checkpoint().size(), &views)?;
    news.extend(w.outcomes(&st));
    wallet.save()?;
    Ok(news)
}

/// How long past its due time a deferred entry must be before `watch`
/// sends it: a `pledge commit` still running sends its own entry at the due
/// time, and two senders of one entry would race (the second gets 409).
#[cfg(feature = "native")]
const WATCH_SEND_GRACE_S: u64 = 60;

/// Sends the wallet's deferred entries at least [`WATCH_SEND_GRACE_S`] past
/// their due time ([`send_pending`]). A failure is reported, never fatal:
/// the watch goes on, and the entry stays pending.
#[cfg(feature = "native")]
async fn send_due(client: &Client, wallet: &mut Wallet, log: &NoteVerifier) -> Vec<WatchNews> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let filter = PendingFilter::DeferredDueBy(now.saturating_sub(WATCH_SEND_GRACE_S));
    let mut news: Vec<WatchNews> = match send_pending(client, wallet, log, filter).await {
        Ok(r) => r
            .sent
            .into_iter()
            .map(|(campaign, s)| WatchNews::Sent {
                campaign,
                index: s.index,
            })
            .collect(),
        Err(e) => vec![WatchNews::NotSent(e.to_string())],
    };
    // Cover of sealed campaigns that is due (SPEC R-SEAL-43, R-SEAL-44).
    let cover = &wallet.data.cover;
    if !cover.off
        && cover
            .due
            .values()
            .any(|d| d.at <= now && d.amendments < sealed::MAX_COVER_AMENDMENTS)
    {
        match sealed::send_cover(client, wallet, log, None, false, now).await {
            Ok(r) => news.extend(r.sent.into_iter().map(|(campaign, _, s)| WatchNews::Sent {
                campaign,
                index: s.index,
            })),
            Err(e) => news.push(WatchNews::NotSent(e.to_string())),
        }
    }
    news
}

/// Whether `id`'s deadline (from the campaign list) has passed.
#[cfg(feature = "native")]
fn past_deadline(views: &[CampaignView], id: &CampaignId) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    views
        .iter()
        .find(|v| v.info.campaign_id == *id)
        .is_some_and(|v| v.info.deadline < now)
}

/// What an offline receipt check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptCheck {
    /// Log origin.
    pub origin: String,
    /// Entry index.
    pub index: u64,
    /// Checkpoint size.
    pub checkpoint_size: u64,
    /// Root of that checkpoint (hex).
    pub root: String,
    /// A description of the entry, when its bytes were available.
    pub entry: Option<String>,
}

/// `pledge verify-receipt`: checks a C2SP tlog-proof offline with the log key.
/// The entry bytes come from `entry` or, failing that, from the receipt's
/// `extra` line (as written by `pledge receipt`); the leaf hash is
/// recomputed from them, so `extra` is never trusted on its own.
///
/// # Errors
/// [`FlowError::Receipt`] naming what failed.
pub fn verify_receipt(
    text: &[u8],
    log: &NoteVerifier,
    entry: Option<&[u8]>,
) -> Result<ReceiptCheck, FlowError> {
    let r = Receipt::parse(text).map_err(|e| FlowError::Receipt(e.to_string()))?;
    let bytes = entry
        .map(<[u8]>::to_vec)
        .or_else(|| r.extra().map(<[u8]>::to_vec));
    let Some(bytes) = bytes else {
        return Err(FlowError::Receipt(
            "no entry to check: pass --entry, or export the receipt with `pledge receipt`, which \
             includes the entry"
                .into(),
        ));
    };
    let signed = r
        .verify_entry(&bytes, log)
        .map_err(|e| FlowError::Receipt(e.to_string()))?;
    let desc = match Entry::decode(&bytes) {
        Ok(Entry::Pledge(p)) => format!(
            "Pledge on campaign {} with threshold {}",
            p.campaign,
            p.terms.threshold_value()
        ),
        Ok(Entry::PledgeAmended(a)) => format!(
            "PledgeAmended on campaign {} (seq {}) to threshold {}",
            a.campaign,
            a.seq,
            a.terms.threshold_value()
        ),
        Ok(Entry::PledgeWithdrawn(w)) => {
            format!("PledgeWithdrawn on campaign {} (seq {})", w.campaign, w.seq)
        }
        Ok(e) => format!("{:?} entry", e.kind()),
        Err(e) => format!("undecodable entry ({e})"),
    };
    Ok(ReceiptCheck {
        origin: signed.checkpoint().origin().to_string(),
        index: r.index(),
        checkpoint_size: signed.checkpoint().size(),
        root: signed.checkpoint().root().to_hex(),
        entry: Some(desc),
    })
}

/// The receipt of my latest entry on `campaign`, with the entry bytes in the
/// tlog-proof `extra` line so `pledge verify-receipt FILE` works alone.
///
/// # Errors
/// [`FlowError::Wallet2`] when there is no acknowledged entry.
pub fn export_receipt(wallet: &Wallet, campaign: &CampaignId) -> Result<String, FlowError> {
    let rec = wallet
        .data
        .pledge_for(campaign)
        .ok_or_else(|| FlowError::Wallet2(format!("no pledge of yours on {campaign}")))?;
    let e = rec
        .entries
        .iter()
        .rev()
        .find(|e| e.receipt.is_some())
        .ok_or_else(|| FlowError::Wallet2("no acknowledged entry yet".into()))?;
    let text = e.receipt.as_deref().unwrap_or_default();
    let (header, rest) = text
        .split_once('\n')
        .ok_or_else(|| FlowError::Receipt("stored receipt is damaged".into()))?;
    let rest = match rest.split_once('\n') {
        Some((first, after)) if first.starts_with("extra ") => after,
        _ => rest,
    };
    Ok(format!("{header}\nextra {}\n{rest}", e.entry))
}

/// A leaf hash, for callers that compare receipts with entries.
pub fn leaf_of(entry: &[u8]) -> Hash {
    merkle::leaf_hash(entry)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn amounts_parse_exactly_and_print_back() {
        assert_eq!(parse_amount("200", 2).unwrap(), 20_000);
        assert_eq!(parse_amount("12.5", 2).unwrap(), 1_250);
        assert_eq!(parse_amount("12.50", 2).unwrap(), 1_250);
        assert_eq!(parse_amount("0.01", 2).unwrap(), 1);
        assert_eq!(parse_amount("7", 0).unwrap(), 7);
        assert_eq!(parse_amount("1.2345", 4).unwrap(), 12_345);
        for bad in [
            "",
            ".5",
            "5.",
            "-1",
            "+1",
            "1e3",
            "0",
            "0.00",
            "12.345",
            "1,5",
            " 1",
            "90071992547409.92",
        ] {
            assert!(parse_amount(bad, 2).is_err(), "{bad:?}");
        }
        assert!(parse_amount("1.5", 0).is_err());
        // The largest amount (2^53 - 1 minor units) and one more.
        assert_eq!(
            parse_amount("90071992547409.91", 2).unwrap(),
            pledge_protocol::pledge::MAX_AMOUNT
        );
        assert!(parse_amount("184467440737095516.16", 2).is_err());
        for (minor, digits, text) in [
            (20_000, 2, "200.00"),
            (1, 2, "0.01"),
            (7, 0, "7"),
            (12_345, 4, "1.2345"),
        ] {
            assert_eq!(decimal_of(minor, digits), text);
            assert_eq!(parse_amount(text, digits).unwrap(), minor);
        }
    }
}
