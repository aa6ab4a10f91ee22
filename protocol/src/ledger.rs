//! The ledger rules as a pure state machine (SPEC §8, R-RULE-1…R-RULE-14).
//!
//! The server applies entries through it before it sequences them, and the
//! auditor replays the whole log through it: both sides run the same code, so
//! "what the ledger accepts" and "what an auditor accepts" cannot drift apart.
//!
//! Applying is atomic: on error nothing changes.

use std::collections::HashMap;

use crate::pledge_index::PledgeIndex;

use crate::campaign::{CampaignDefinition, TermsRefusal};
use crate::dkg::{Complaint, Dealing, DkgContext, DkgTranscript, Ready, TrusteeKey};
use crate::entry::{CampaignClosed, CampaignOpened, Entry};
use crate::entry::{DecryptionShares, SealedSnapshot, SealedTallyRevealed};
use crate::entry::{TrusteeMessage, TrusteeMessageKind};
use crate::funding::FundingTally;
use crate::hash::{CampaignId, Nullifier};
use crate::pledge::{Amendment, Pledge, PledgePublicKey, Terms, Withdrawal};
use crate::sealed::{
    Ciphertext, DecryptionShare, JointPublicKey, RevealContext, SealedTerms, TrusteePublicShare,
    TrusteeReveal,
};
use crate::sealed_pledge::{SealedAmendment, SealedPledge};
use crate::sealed_reveal::aggregate_digest;
use crate::tally::{MAX_THRESHOLD, Tally};
use crate::token::{IssuerKeyId, IssuerPublicKey, nullifier};
use crate::update::{CampaignUpdated, CampaignUpdates, UpdateRefusal};

/// Why an entry breaks the ledger rules. Each names the rule (SPEC §8).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// R-RULE-1: a CampaignOpened for a campaign id already in the log.
    #[error("campaign already opened")]
    CampaignExists,
    /// R-RULE-2: the entry names a campaign that was never opened.
    #[error("unknown campaign")]
    UnknownCampaign,
    /// R-RULE-2: the campaign is closed.
    #[error("campaign is closed")]
    CampaignClosed,
    /// R-RULE-3: the token does not verify under the campaign's logged key.
    #[error("token signature does not verify under the campaign's issuer key")]
    BadToken,
    /// R-RULE-3: the pledge, amendment or withdrawal signature is invalid.
    #[error("pledge-key signature does not verify")]
    BadPledgeSignature,
    /// R-RULE-4: the nullifier was already spent.
    #[error("token already spent")]
    DoubleSpend,
    /// R-RULE-5: the threshold is outside the campaign's allowed range.
    #[error("threshold outside the campaign's allowed range")]
    ThresholdOutOfRange,
    /// R-RULE-10: `act_if_supported` or `fund` terms in a campaign without
    /// funding.
    #[error("the campaign does not take support or funding pledges")]
    FundingNotAllowed,
    /// R-RULE-10: a support amount that is not on the campaign's menu.
    #[error("support amount is not one of the campaign's support levels")]
    SupportNotOnMenu,
    /// R-RULE-6: amendment/withdrawal of a nullifier with no pledge.
    #[error("no pledge with this nullifier in this campaign")]
    UnknownPledge,
    /// R-RULE-6: the pledge was withdrawn.
    #[error("pledge already withdrawn")]
    Withdrawn,
    /// R-RULE-7: the sequence number is not the previous one plus one.
    #[error("sequence number {got} is not the expected {expected}")]
    BadSequence {
        /// The next valid sequence number.
        expected: u32,
        /// The one in the entry.
        got: u32,
    },
    /// R-RULE-8: the CampaignClosed tally differs from the recomputed one.
    #[error("closing tally differs from the recomputed tally")]
    TallyMismatch,
    /// R-RULE-8: more pledges than tokens the issuer says it signed.
    #[error("campaign has {pledges} pledges but its issuer reported {tokens} tokens")]
    MorePledgesThanTokens {
        /// Pledge entries in the campaign.
        pledges: u64,
        /// Tokens reported.
        tokens: u64,
    },
    /// The entry cannot be encoded (too large).
    #[error("entry too large")]
    TooLarge,
    /// The ledger already holds 2^32 campaigns (an implementation limit: the
    /// rules index campaigns with 32 bits).
    #[error("the ledger holds the most campaigns it can")]
    TooManyCampaigns,
    /// R-RULE-11: the update number is not the campaign's previous one plus
    /// one (a replayed or reordered update).
    #[error("update number {got} is not the expected {expected}")]
    BadUpdateNumber {
        /// The next valid update number.
        expected: u32,
        /// The one in the entry.
        got: u32,
    },
    /// R-RULE-12: the new deadline is not later than the effective one.
    #[error("the new deadline is not later than the campaign's current deadline")]
    DeadlineNotLater,
    /// R-RULE-12: the new deadline is more than 90 days after the original.
    #[error("the new deadline is more than 90 days after the campaign's original deadline")]
    DeadlineTooLate,
    /// R-RULE-13: the campaign would have texts in more than 32 languages.
    #[error("the campaign would have texts in more than 32 languages")]
    TooManyLanguages,
    /// R-SEAL-33: plain terms or a withdrawal in a sealed campaign, or
    /// sealed terms in a live one.
    #[error("the entry's terms are not of the campaign's kind (sealed or live)")]
    WrongTermsKind,
    /// R-SEAL-33: a sealed pledge or amendment before the campaign's joint
    /// key is logged.
    #[error("the campaign's trustees have not logged their joint key yet")]
    SealedKeyNotReady,
    /// R-SEAL-32: sealed terms whose bucket count is not the campaign's, or
    /// whose proofs do not verify under the campaign's joint key and the
    /// entry's context.
    #[error("the sealed terms do not verify")]
    BadSealedTerms,
    /// R-SEAL-34: a trustee message refused by the key-generation rules
    /// (§17.2), or sent to a campaign that is not sealed.
    #[error("trustee message refused: {reason}")]
    BadTrusteeMessage {
        /// The first failing check (R-DKG-37).
        reason: String,
    },
    /// R-SEAL-35: a snapshot of a campaign without its key, beyond the
    /// scheduled early reveals, or whose digest is not the aggregate's.
    #[error("the snapshot is not the campaign's next one or not its aggregate")]
    BadSnapshot,
    /// R-SEAL-36, R-SEAL-37: decryption shares or a revealed tally refused.
    #[error("reveal refused: {reason}")]
    BadReveal {
        /// The first failing check.
        reason: String,
    },
}

impl From<UpdateRefusal> for RuleError {
    fn from(r: UpdateRefusal) -> Self {
        match r {
            UpdateRefusal::Number { expected, got } => RuleError::BadUpdateNumber { expected, got },
            UpdateRefusal::DeadlineNotLater => RuleError::DeadlineNotLater,
            UpdateRefusal::DeadlineTooLate => RuleError::DeadlineTooLate,
            UpdateRefusal::TooManyLanguages => RuleError::TooManyLanguages,
        }
    }
}

/// An entry whose stateless checks passed (SPEC R-RULE-3): for a pledge, its
/// token under the issuer key its campaign logged and its pledge-key
/// signature; for an amendment or withdrawal, its signature under the key of
/// the pledge it names (the key whose nullifier it carries, R-TOKEN-3); other
/// kinds have no stateless part. Only verification builds one, so the rules
/// cannot be applied to an entry nobody verified: [`LedgerState::apply`]
/// takes only this type.
///
/// The expensive part (RSA) runs without the state: [`VerifiedEntry::verify`]
/// with the campaign's key, in parallel or outside any lock, then
/// [`LedgerState::apply`] checks that the key used is the campaign's own.
/// The rules state keeps no pledge keys (a million of them would be 32 MB
/// that only amendments need): whoever verifies an amendment supplies the
/// pledge's key, from its store or from [`PledgeKeys`].
#[derive(Debug, Clone)]
pub struct VerifiedEntry {
    entry: Entry,
    /// The key a pledge was verified under (`None` for other kinds, and for
    /// entries read back from the ledger's own store).
    verified_under: Option<IssuerKeyId>,
    /// The joint key sealed terms were verified under (`None` for other
    /// kinds, and for entries read back from the ledger's own store).
    sealed_under: Option<[u8; 32]>,
}

impl VerifiedEntry {
    /// Runs the stateless checks of `entry`. `issuer_key` is the key the
    /// entry's campaign logged in its CampaignOpened, needed for a pledge
    /// only; `pledge_key` is the key of the pledge an amendment or withdrawal
    /// names, needed for those only (any source will do: a key that does not
    /// hash to the entry's nullifier is refused).
    ///
    /// # Errors
    /// [`RuleError::UnknownCampaign`] for a pledge without an issuer key,
    /// [`RuleError::UnknownPledge`] for an amendment or withdrawal without a
    /// pledge key, [`RuleError::BadToken`] or [`RuleError::BadPledgeSignature`].
    pub fn verify(
        entry: Entry,
        issuer_key: Option<&IssuerPublicKey>,
        pledge_key: Option<&PledgePublicKey>,
    ) -> Result<Self, RuleError> {
        Self::verify_sealed(entry, issuer_key, pledge_key, None)
    }

    /// [`VerifiedEntry::verify`], with the joint key of a sealed campaign
    /// (`None` for a live campaign, or before the key is logged): a sealed
    /// pledge or amendment's proofs are verified under it and its context
    /// (R-SEAL-32), after the token and signature.
    ///
    /// # Errors
    /// As [`VerifiedEntry::verify`]; [`RuleError::SealedKeyNotReady`] for
    /// sealed terms without a joint key, [`RuleError::BadSealedTerms`] for
    /// proofs that do not verify.
    pub fn verify_sealed(
        entry: Entry,
        issuer_key: Option<&IssuerPublicKey>,
        pledge_key: Option<&PledgePublicKey>,
        joint_key: Option<&JointPublicKey>,
    ) -> Result<Self, RuleError> {
        let mut sealed_under = None;
        let verified_under = match &entry {
            Entry::Pledge(p) => {
                let key = issuer_key.ok_or(RuleError::UnknownCampaign)?;
                verify_pledge(p, key)?;
                Some(key.key_id())
            }
            Entry::SealedPledge(p) => {
                let key = issuer_key.ok_or(RuleError::UnknownCampaign)?;
                p.token
                    .verify(key, &p.campaign)
                    .map_err(|_| RuleError::BadToken)?;
                if !p.verify_pledge_signature() {
                    return Err(RuleError::BadPledgeSignature);
                }
                let joint = joint_key.ok_or(RuleError::SealedKeyNotReady)?;
                // SPEC R-SEAL-32
                p.terms
                    .verify(&p.context(), joint)
                    .map_err(|_| RuleError::BadSealedTerms)?;
                sealed_under = Some(joint.to_bytes());
                Some(key.key_id())
            }
            Entry::SealedAmended(a) => {
                let pk = pledge_key_of(&a.campaign, &a.nullifier, pledge_key)?;
                if !a.verify(pk) {
                    return Err(RuleError::BadPledgeSignature);
                }
                let joint = joint_key.ok_or(RuleError::SealedKeyNotReady)?;
                let context = SealedAmendment::context_of(&a.campaign, &a.nullifier, a.seq, pk);
                // SPEC R-SEAL-32
                a.terms
                    .verify(&context, joint)
                    .map_err(|_| RuleError::BadSealedTerms)?;
                sealed_under = Some(joint.to_bytes());
                None
            }
            Entry::PledgeAmended(a) => {
                let pk = pledge_key_of(&a.campaign, &a.nullifier, pledge_key)?;
                // SPEC R-RULE-3: amendments are signed by the pledge's own key.
                if !a.verify(pk) {
                    return Err(RuleError::BadPledgeSignature);
                }
                None
            }
            Entry::PledgeWithdrawn(w) => {
                let pk = pledge_key_of(&w.campaign, &w.nullifier, pledge_key)?;
                if !w.verify(pk) {
                    return Err(RuleError::BadPledgeSignature);
                }
                None
            }
            Entry::CampaignOpened(_)
            | Entry::CampaignClosed(_)
            | Entry::CampaignUpdated(_)
            | Entry::TrusteeMessage(_)
            | Entry::SealedSnapshot(_)
            | Entry::DecryptionShares(_)
            | Entry::SealedTallyRevealed(_) => None,
        };
        Ok(Self {
            entry,
            verified_under,
            sealed_under,
        })
    }

    /// An entry read back from a log whose entries were all verified before
    /// they were stored or cached: the ledger's own durable store at start-up
    /// (SPEC R-STORE-6), or an auditor's cache bound to a checkpoint it
    /// already verified (R-AUDIT-13). Never for bytes from anyone else.
    pub fn previously_verified(entry: Entry) -> Self {
        Self {
            entry,
            verified_under: None,
            sealed_under: None,
        }
    }

    /// The entry.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// The entry, giving up the proof of verification.
    pub fn into_entry(self) -> Entry {
        self.entry
    }
}

/// The key of the pledge whose nullifier an amendment or withdrawal carries:
/// `key` if its nullifier is `n` (R-TOKEN-3 binds the two, so a key from any
/// source is checked here rather than trusted).
fn pledge_key_of<'k>(
    campaign: &CampaignId,
    n: &Nullifier,
    key: Option<&'k PledgePublicKey>,
) -> Result<&'k PledgePublicKey, RuleError> {
    let key = key.ok_or(RuleError::UnknownPledge)?;
    if nullifier(campaign, key) != *n {
        return Err(RuleError::BadPledgeSignature);
    }
    Ok(key)
}

/// The key of every pledge applied, by nullifier: what verifies amendments
/// and withdrawals ([`VerifiedEntry::verify`]) for whoever has no store to
/// read a pledge back from (an auditor's replay, the demo, tests). 64 bytes
/// per pledge, one slot each.
#[derive(Debug, Default, Clone)]
pub struct PledgeKeys {
    keys: PledgeIndex<[u8; 32]>,
}

impl PledgeKeys {
    /// No keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers the key of `entry` if it is a pledge (call it once the
    /// pledge is applied; a nullifier already known keeps its key).
    pub fn remember(&mut self, entry: &Entry) {
        match entry {
            Entry::Pledge(p) => {
                self.keys
                    .insert_new(p.nullifier(), *p.token.pledge_pk.as_bytes());
            }
            Entry::SealedPledge(p) => {
                self.keys
                    .insert_new(p.nullifier(), *p.token.pledge_pk.as_bytes());
            }
            _ => {}
        }
    }

    /// The key of the pledge that spent `n`.
    pub fn get(&self, n: &Nullifier) -> Option<PledgePublicKey> {
        // Keys were valid points when their pledges were decoded.
        self.keys
            .get(n)
            .and_then(|k| PledgePublicKey::from_bytes(*k).ok())
    }

    /// The key an amendment or withdrawal needs to be verified (`None` for
    /// other kinds, and for a nullifier never spent).
    pub fn for_entry(&self, entry: &Entry) -> Option<PledgePublicKey> {
        match entry {
            Entry::PledgeAmended(a) => self.get(&a.nullifier),
            Entry::SealedAmended(a) => self.get(&a.nullifier),
            Entry::PledgeWithdrawn(w) => self.get(&w.nullifier),
            _ => None,
        }
    }
}

/// Public state of one campaign, derived from the log.
#[derive(Debug)]
pub struct CampaignState {
    /// The definition logged in CampaignOpened.
    pub definition: CampaignDefinition,
    /// The issuer key logged in CampaignOpened.
    pub issuer_key: IssuerPublicKey,
    /// Its key id (SHA-256 of its SPKI), to check pledges were verified
    /// under it.
    pub issuer_key_id: IssuerKeyId,
    /// Live thresholds: the tally of a campaign without funding. A funding
    /// campaign keeps this empty and counts in `funding` (its active count
    /// is the joint one, R-FUND-1, which this histogram cannot give).
    pub tally: Tally,
    /// The joint tally of a campaign with the funding extension (R-CAMP-5),
    /// `None` for any other.
    pub funding: Option<FundingTally>,
    /// Pledge entries ever accepted (withdrawn ones included).
    pub pledges: u64,
    /// The closing entry, once closed.
    pub closed: Option<CampaignClosed>,
    /// What its valid CampaignUpdated entries amount to (R-CAMP-8,
    /// R-CAMP-9).
    pub updates: CampaignUpdates,
    /// What a sealed campaign keeps (R-SEAL-33), `None` for a live one.
    pub sealed: Option<SealedState>,
}

/// The public state of a sealed campaign: its joint key once logged, and
/// the count of its sealed entries (the only number it shows before a
/// reveal). The ciphertexts are not kept: whoever needs the aggregate
/// (trustees, auditors, the reveal) sums them from the log (R-SEAL-33).
#[derive(Debug, Default, Clone)]
pub struct SealedState {
    /// The key generation so far (R-SEAL-34).
    pub dkg: Option<Box<DkgTranscript>>,
    /// The trustees' joint key, once logged: the outcome of the complete
    /// key generation (R-DKG-29).
    pub joint_key: Option<JointPublicKey>,
    /// Sealed pledges and amendments accepted.
    pub entries: u64,
    /// The trustees' public shares `X_1 … X_n`, once the key is logged
    /// (R-DKG-29).
    pub public_shares: Vec<TrusteePublicShare>,
    /// The latest ciphertexts of each sealed pledge, compressed: an
    /// amendment takes them out of the aggregate (64 bytes per bucket per
    /// pledge: 1 KiB at 16 buckets).
    latest: HashMap<Nullifier, Box<[[u8; 64]]>>,
    /// The sum of every sealed pledge's latest ciphertexts, per bucket.
    aggregate: Vec<Ciphertext>,
    /// The snapshots, in log order (R-SEAL-35).
    pub snapshots: Vec<Snapshot>,
}

impl SealedState {
    /// The current aggregate, bucket 0 first.
    pub fn aggregate(&self) -> &[Ciphertext] {
        &self.aggregate
    }

    /// The snapshot at log index `index`.
    pub fn snapshot(&self, index: u64) -> Option<&Snapshot> {
        self.snapshots.iter().find(|s| s.index == index)
    }

    /// Snapshots taken by SealedSnapshot entries (not the close).
    fn early_snapshots(&self) -> usize {
        self.snapshots.iter().filter(|s| !s.at_close).count()
    }

    /// Takes `old` (if any) out of the aggregate and adds `new`'s
    /// ciphertexts, keeping their encodings as received: compressing them
    /// again would cost an inverse square root per point, on the serial
    /// path of the sequencer and the auditor.
    fn replace(&mut self, n: Nullifier, new: &SealedTerms) -> Result<(), RuleError> {
        if let Some(old) = self.latest.get(&n) {
            for (sum, bytes) in self.aggregate.iter_mut().zip(old.iter()) {
                // Stored from a decoded ciphertext: it decodes.
                *sum -= Ciphertext::decode(bytes).map_err(|_| RuleError::UnknownPledge)?;
            }
        }
        for (sum, ct) in self.aggregate.iter_mut().zip(new.ciphertexts()) {
            *sum += *ct;
        }
        self.latest.insert(n, new.ciphertext_bytes().into());
        Ok(())
    }
}

/// A fixed aggregate of a sealed campaign, what trustees decrypt (R-SEAL-35).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The log index of the entry that took it (SealedSnapshot or
    /// CampaignClosed).
    pub index: u64,
    /// Whether it is the close's.
    pub at_close: bool,
    /// The aggregate, bucket 0 first.
    pub aggregate: Vec<Ciphertext>,
    /// Sealed pledges at the snapshot: the bound of each count (R-SEAL-37).
    pub pledges: u64,
    /// Accepted decryption shares, by trustee, in log order (R-SEAL-36).
    pub shares: Vec<(u8, Vec<DecryptionShare>)>,
    /// The revealed counts per bucket, once logged (R-SEAL-37).
    pub revealed: Option<Vec<u64>>,
}

impl Snapshot {
    /// The revealed counts as a tally (bucket values as thresholds): the
    /// histogram, live and active of R-TALLY-5 and R-TALLY-9.
    pub fn revealed_tally(&self, def: &CampaignDefinition) -> Option<Tally> {
        let counts = self.revealed.as_ref()?;
        let buckets = def.sealed_block()?.buckets();
        Tally::from_histogram(
            def.threshold_max(),
            buckets
                .iter()
                .zip(counts)
                .filter(|(_, c)| **c > 0)
                .map(|(b, c)| (*b, *c)),
        )
        .ok()
    }
}

/// What the rules keep per pledge: 12 bytes, 44 with its nullifier, one slot
/// each in a [`PledgeIndex`], since a ledger of a million pledges keeps a
/// million of these in memory (BENCHMARKS.md, RSS). Not the pledge's key:
/// amendments and withdrawals bring theirs checked ([`VerifiedEntry`]).
///
/// The terms are packed in `threshold` (see [`pack_terms`]): a plain
/// threshold is stored as itself, so campaigns without funding keep exactly
/// the state they had; a funding pledge's amount lives in
/// [`LedgerState::fund_amounts`].
#[derive(Debug, Clone, Copy)]
struct PledgeState {
    /// Index into [`LedgerState::ids`].
    campaign: u32,
    seq: u32,
    /// Packed terms ([`pack_terms`]), or [`WITHDRAWN`] once withdrawn.
    threshold: u32,
}

/// `PledgeState::threshold` of a withdrawn pledge (its threshold bits would
/// be `2^27 − 1`, above `MAX_THRESHOLD`, so no live pledge packs to it).
const WITHDRAWN: u32 = u32::MAX;
/// `PledgeState::threshold` of a sealed pledge (its terms are not known;
/// code 31 is no kind, so it unpacks to nothing and no live pledge packs to
/// it).
const SEALED: u32 = u32::MAX - 1;

/// Low bits of a packed terms value: the threshold (or a funder's `n`).
const THRESHOLD_BITS: u32 = 27;
const THRESHOLD_MASK: u32 = (1 << THRESHOLD_BITS) - 1;
/// Kind code of a funding pledge in the high bits (codes `1..=8` are support
/// levels `1..=8` of the menu, `0` an `act` pledge).
const CODE_FUND: u32 = 9;
const _: () = assert!(MAX_THRESHOLD < THRESHOLD_MASK);

impl PledgeState {
    /// The packed terms of a live pledge.
    fn live_terms(&self) -> Option<u32> {
        (self.threshold != WITHDRAWN).then_some(self.threshold)
    }
}

/// Packs terms the campaign accepted into 32 bits: `t | code << 27` with
/// `code` 0 for `act`, the 1-based menu index for `act_if_supported`,
/// [`CODE_FUND`] for `fund`. A plain threshold packs to itself.
fn pack_terms(def: &CampaignDefinition, terms: &Terms) -> Result<u32, RuleError> {
    let code = match terms {
        Terms::Threshold { .. } => 0,
        Terms::SupportedThreshold { support, .. } => {
            let levels = def.funding().ok_or(RuleError::FundingNotAllowed)?.levels();
            let i = levels
                .binary_search(support)
                .map_err(|_| RuleError::SupportNotOnMenu)?;
            // INVARIANT: at most 8 levels, so i + 1 ≤ 8 < CODE_FUND.
            u32::try_from(i + 1).map_err(|_| RuleError::SupportNotOnMenu)?
        }
        Terms::Fund { .. } => CODE_FUND,
    };
    Ok(terms.threshold_value() | (code << THRESHOLD_BITS))
}

/// The terms a packed value stands for (`amount` is the funding pledge's,
/// from [`LedgerState::fund_amounts`]).
fn unpack_terms(def: &CampaignDefinition, packed: u32, amount: Option<u64>) -> Option<Terms> {
    let t = packed & THRESHOLD_MASK;
    match packed >> THRESHOLD_BITS {
        0 => Terms::threshold(t).ok(),
        CODE_FUND => Terms::fund(t, amount?).ok(),
        code => {
            let y = *def
                .funding()?
                .levels()
                .get(usize::try_from(code - 1).ok()?)?;
            Terms::supported(t, y).ok()
        }
    }
}

/// The key-generation context of sealed campaign `id` (R-DKG-1): `None`
/// for a live campaign.
pub fn dkg_context(id: &CampaignId, def: &CampaignDefinition) -> Option<DkgContext> {
    let s = def.sealed_block()?;
    let trustees = s
        .trustees()
        .iter()
        .map(|t| TrusteeKey::from_bytes(*t).ok())
        .collect::<Option<Vec<_>>>()?;
    Some(DkgContext {
        campaign: *id.as_bytes(),
        k: s.k(),
        trustees,
    })
}

impl From<TermsRefusal> for RuleError {
    fn from(r: TermsRefusal) -> Self {
        match r {
            TermsRefusal::ThresholdOutOfRange => RuleError::ThresholdOutOfRange,
            TermsRefusal::FundingNotAllowed => RuleError::FundingNotAllowed,
            TermsRefusal::SupportNotOnMenu => RuleError::SupportNotOnMenu,
        }
    }
}

impl CampaignState {
    /// The effective deadline: the last valid update's, else the
    /// definition's. SPEC R-CAMP-8.
    pub fn deadline(&self) -> u64 {
        self.updates.effective_deadline(self.definition.deadline())
    }

    /// True if the campaign has the funding extension (R-CAMP-5).
    pub fn is_funding(&self) -> bool {
        self.funding.is_some()
    }

    /// The campaign's tally, of its kind: R-TALLY-5 or R-FUND-6.
    ///
    /// # Errors
    /// The snapshot's [`crate::tally::TallyError`] (too many buckets).
    pub fn snapshot(&self) -> Result<crate::funding::CampaignSnapshot, crate::tally::TallyError> {
        use crate::funding::CampaignSnapshot;
        match &self.funding {
            Some(f) => f.snapshot().map(CampaignSnapshot::Funding),
            None => self.tally.snapshot().map(CampaignSnapshot::Plain),
        }
    }

    /// Adds live terms to whichever tally the campaign keeps.
    fn count(&mut self, terms: &Terms) -> Result<(), RuleError> {
        match &mut self.funding {
            Some(f) => f.add(terms).map_err(|_| RuleError::ThresholdOutOfRange),
            None => self
                .tally
                .add(terms.threshold_value())
                .map_err(|_| RuleError::ThresholdOutOfRange),
        }
    }

    fn uncount(&mut self, terms: &Terms) -> Result<(), RuleError> {
        match &mut self.funding {
            Some(f) => f.remove(terms).map_err(|_| RuleError::UnknownPledge),
            None => self
                .tally
                .remove(terms.threshold_value())
                .map_err(|_| RuleError::UnknownPledge),
        }
    }

    fn recount(&mut self, old: &Terms, new: &Terms) -> Result<(), RuleError> {
        match &mut self.funding {
            Some(f) => f
                .amend(old, new)
                .map_err(|_| RuleError::ThresholdOutOfRange),
            None => self
                .tally
                .amend(old.threshold_value(), new.threshold_value())
                .map_err(|_| RuleError::ThresholdOutOfRange),
        }
    }
}

/// Everything the rules need to know about the log so far.
#[derive(Debug, Default)]
pub struct LedgerState {
    campaigns: HashMap<CampaignId, CampaignState>,
    /// Campaign ids in the order they were opened (`PledgeState::campaign`).
    ids: Vec<CampaignId>,
    /// Where each campaign is in `ids`.
    index: HashMap<CampaignId, u32>,
    pledges: PledgeIndex<PledgeState>,
    /// The amount of every `fund` pledge (and of every pledge once amended
    /// to `fund`), by nullifier: only funding campaigns add here.
    fund_amounts: PledgeIndex<u64>,
    entries: u64,
}

/// Stateless checks of a pledge: its token under `issuer_key` and its pledge-key
/// signature. SPEC R-RULE-3. Safe to run in parallel.
///
/// # Errors
/// [`RuleError::BadToken`] or [`RuleError::BadPledgeSignature`].
pub fn verify_pledge(p: &Pledge, issuer_key: &IssuerPublicKey) -> Result<(), RuleError> {
    p.token
        .verify(issuer_key, &p.campaign)
        .map_err(|_| RuleError::BadToken)?;
    if !p.verify_pledge_signature() {
        return Err(RuleError::BadPledgeSignature);
    }
    Ok(())
}

impl LedgerState {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries applied.
    pub fn len(&self) -> u64 {
        self.entries
    }

    /// True before any entry.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// A campaign's state.
    pub fn campaign(&self, id: &CampaignId) -> Option<&CampaignState> {
        self.campaigns.get(id)
    }

    /// All campaigns, in no particular order.
    pub fn campaigns(&self) -> impl Iterator<Item = (&CampaignId, &CampaignState)> {
        self.campaigns.iter()
    }

    /// True if the nullifier was ever spent.
    pub fn is_spent(&self, n: &Nullifier) -> bool {
        self.pledges.contains(n)
    }

    /// Next sequence number for an amendment or withdrawal of `n`, if the
    /// pledge is live.
    pub fn next_seq(&self, n: &Nullifier) -> Option<u32> {
        self.pledges
            .get(n)
            .filter(|p| p.live_terms().is_some())
            .and_then(|p| p.seq.checked_add(1))
    }

    /// Checks `entry` against the stateful rules without changing anything
    /// (the stateless ones are [`VerifiedEntry::verify`]'s): the check a
    /// sequencer runs before holding an entry, and an auditor runs to report
    /// the first rule an entry breaks.
    ///
    /// # Errors
    /// The first [`RuleError`] found.
    pub fn check(&self, entry: &Entry) -> Result<(), RuleError> {
        match entry {
            Entry::CampaignOpened(o) => self.check_open(o).map(|_| ()),
            Entry::Pledge(p) => self.check_pledge(p, None),
            Entry::PledgeAmended(a) => self.check_amend(a).map(|_| ()),
            Entry::SealedPledge(p) => self.check_sealed_pledge(p, None, None),
            Entry::SealedAmended(a) => self.check_sealed_amend(a, None),
            Entry::TrusteeMessage(m) => self.check_trustee_message(m).map(|_| ()),
            Entry::SealedSnapshot(x) => self.check_snapshot(x),
            Entry::DecryptionShares(x) => self.check_shares(x),
            Entry::SealedTallyRevealed(x) => self.check_revealed(x).map(|_| ()),
            Entry::PledgeWithdrawn(w) => self.check_withdraw(w).map(|_| ()),
            Entry::CampaignClosed(c) => self.check_close(c),
            Entry::CampaignUpdated(u) => self.check_update(u),
        }
    }

    /// Checks then applies a verified entry: the stateful rules and that a
    /// pledge was verified under its campaign's own key (an amendment's or
    /// withdrawal's signature was verified under its pledge's key when the
    /// [`VerifiedEntry`] was built). Atomic: on error the state is unchanged.
    ///
    /// # Errors
    /// The first [`RuleError`] found.
    pub fn apply(&mut self, entry: &VerifiedEntry) -> Result<(), RuleError> {
        match &entry.entry {
            Entry::CampaignOpened(o) => {
                let id = self.check_open(o)?;
                // INVARIANT-like: a valid definition has 1 <= t_max <= MAX_THRESHOLD,
                // which `Tally::new` accepts; map the impossible error anyway.
                let tally = Tally::new(o.definition.threshold_max())
                    .map_err(|_| RuleError::ThresholdOutOfRange)?;
                let funding = match o.definition.funding() {
                    Some(f) => Some(
                        FundingTally::new(o.definition.threshold_max(), f.levels())
                            .map_err(|_| RuleError::SupportNotOnMenu)?,
                    ),
                    None => None,
                };
                let at = u32::try_from(self.ids.len()).map_err(|_| RuleError::TooManyCampaigns)?;
                self.ids.push(id);
                self.index.insert(id, at);
                self.campaigns.insert(
                    id,
                    CampaignState {
                        definition: o.definition.clone(),
                        issuer_key: o.issuer_key.clone(),
                        issuer_key_id: o.issuer_key.key_id(),
                        tally,
                        funding,
                        pledges: 0,
                        closed: None,
                        updates: CampaignUpdates::default(),
                        sealed: match dkg_context(&id, &o.definition) {
                            Some(ctx) => Some(SealedState {
                                dkg: Some(Box::new(DkgTranscript::new(&ctx).map_err(|e| {
                                    RuleError::BadTrusteeMessage {
                                        reason: e.to_string(),
                                    }
                                })?)),
                                aggregate: vec![
                                    Ciphertext::zero();
                                    o.definition
                                        .sealed_block()
                                        .map_or(0, |b| b.buckets().len())
                                ],
                                ..SealedState::default()
                            }),
                            None => None,
                        },
                    },
                );
            }
            Entry::SealedPledge(p) => {
                self.check_sealed_pledge(
                    p,
                    entry.verified_under.as_ref(),
                    entry.sealed_under.as_ref(),
                )?;
                let campaign = *self
                    .index
                    .get(&p.campaign)
                    .ok_or(RuleError::UnknownCampaign)?;
                let fresh = self.pledges.insert_new(
                    p.nullifier(),
                    PledgeState {
                        campaign,
                        seq: 0,
                        threshold: SEALED,
                    },
                );
                if !fresh {
                    return Err(RuleError::DoubleSpend);
                }
                let nullifier = p.nullifier();
                let c = self.open_mut(&p.campaign)?;
                c.pledges = c.pledges.saturating_add(1);
                if let Some(s) = &mut c.sealed {
                    s.entries = s.entries.saturating_add(1);
                    s.replace(nullifier, &p.terms)?;
                }
            }
            Entry::TrusteeMessage(m) => {
                let dkg = self.check_trustee_message(m)?;
                // SPEC R-SEAL-34: the complete key generation logs the key.
                let outcome = if dkg.is_complete() {
                    dkg.outcome().ok()
                } else {
                    None
                };
                if let Some(s) = &mut self.open_mut(&m.campaign)?.sealed {
                    s.dkg = Some(Box::new(dkg));
                    if let Some(o) = outcome {
                        s.joint_key = Some(o.joint_key().clone());
                        s.public_shares = o.public_shares().to_vec();
                    }
                }
            }
            Entry::SealedSnapshot(x) => {
                self.check_snapshot(x)?;
                let index = self.entries;
                let c = self.open_mut(&x.campaign)?;
                let pledges = c.pledges;
                if let Some(s) = &mut c.sealed {
                    s.snapshots.push(Snapshot {
                        index,
                        at_close: false,
                        aggregate: s.aggregate.clone(),
                        pledges,
                        shares: Vec::new(),
                        revealed: None,
                    });
                }
            }
            Entry::DecryptionShares(x) => {
                self.check_shares(x)?;
                if let Some(snap) = self.snapshot_mut(&x.campaign, x.snapshot) {
                    snap.shares.push((x.trustee, x.shares.clone()));
                }
            }
            Entry::SealedTallyRevealed(x) => {
                let counts = self.check_revealed(x)?;
                if let Some(snap) = self.snapshot_mut(&x.campaign, x.snapshot) {
                    snap.revealed = Some(counts);
                }
            }
            Entry::SealedAmended(a) => {
                self.check_sealed_amend(a, entry.sealed_under.as_ref())?;
                if let Some(p) = self.pledges.get_mut(&a.nullifier) {
                    p.seq = a.seq;
                }
                if let Some(s) = &mut self.open_mut(&a.campaign)?.sealed {
                    s.entries = s.entries.saturating_add(1);
                    s.replace(a.nullifier, &a.terms)?;
                }
            }
            Entry::Pledge(p) => {
                self.check_pledge(p, entry.verified_under.as_ref())?;
                let nullifier = p.nullifier();
                let c = self.open_mut(&p.campaign)?;
                let packed = pack_terms(&c.definition, &p.terms)?;
                c.count(&p.terms)?;
                c.pledges = c.pledges.saturating_add(1);
                let campaign = *self
                    .index
                    .get(&p.campaign)
                    .ok_or(RuleError::UnknownCampaign)?;
                let fresh = self.pledges.insert_new(
                    nullifier,
                    PledgeState {
                        campaign,
                        seq: 0,
                        threshold: packed,
                    },
                );
                if !fresh {
                    // Unreachable after `check_pledge`; keep the state
                    // unchanged all the same.
                    let c = self.open_mut(&p.campaign)?;
                    c.pledges = c.pledges.saturating_sub(1);
                    c.uncount(&p.terms).map_err(|_| RuleError::DoubleSpend)?;
                    return Err(RuleError::DoubleSpend);
                }
                self.remember_amount(nullifier, &p.terms);
            }
            Entry::PledgeAmended(a) => {
                let old = self.check_amend(a)?;
                let c = self.open_mut(&a.campaign)?;
                let packed = pack_terms(&c.definition, &a.terms)?;
                c.recount(&old, &a.terms)?;
                if let Some(p) = self.pledges.get_mut(&a.nullifier) {
                    p.seq = a.seq;
                    p.threshold = packed;
                }
                self.remember_amount(a.nullifier, &a.terms);
            }
            Entry::PledgeWithdrawn(w) => {
                let old = self.check_withdraw(w)?;
                self.open_mut(&w.campaign)?
                    .uncount(&old)
                    .map_err(|_| RuleError::UnknownPledge)?;
                if let Some(p) = self.pledges.get_mut(&w.nullifier) {
                    p.seq = w.seq;
                    p.threshold = WITHDRAWN;
                }
            }
            Entry::CampaignClosed(c) => {
                self.check_close(c)?;
                let index = self.entries;
                let state = self.open_mut(&c.campaign)?;
                let pledges = state.pledges;
                // SPEC R-SEAL-35: a sealed campaign's close is its final
                // snapshot.
                if let Some(s) = &mut state.sealed {
                    s.snapshots.push(Snapshot {
                        index,
                        at_close: true,
                        aggregate: s.aggregate.clone(),
                        pledges,
                        shares: Vec::new(),
                        revealed: None,
                    });
                }
                state.closed = Some(c.clone());
            }
            Entry::CampaignUpdated(u) => {
                self.check_update(u)?;
                let c = self.open_mut(&u.campaign())?;
                c.updates = c.updates.applied(u);
            }
        }
        self.entries = self.entries.saturating_add(1);
        Ok(())
    }

    /// Records a funding pledge's amount (the packed state has no room).
    fn remember_amount(&mut self, n: Nullifier, terms: &Terms) {
        if let Terms::Fund { amount, .. } = terms {
            match self.fund_amounts.get_mut(&n) {
                Some(a) => *a = *amount,
                None => {
                    self.fund_amounts.insert_new(n, *amount);
                }
            }
        }
    }

    /// The live terms of the pledge that spent `n` (`None` if unknown or
    /// withdrawn).
    pub fn live_terms(&self, n: &Nullifier) -> Option<Terms> {
        let p = self.pledges.get(n)?;
        let id = self.ids.get(usize::try_from(p.campaign).ok()?)?;
        let c = self.campaigns.get(id)?;
        unpack_terms(
            &c.definition,
            p.live_terms()?,
            self.fund_amounts.get(n).copied(),
        )
    }

    fn open(&self, id: &CampaignId) -> Result<&CampaignState, RuleError> {
        // SPEC R-RULE-2
        let c = self.campaigns.get(id).ok_or(RuleError::UnknownCampaign)?;
        if c.closed.is_some() {
            return Err(RuleError::CampaignClosed);
        }
        Ok(c)
    }

    fn open_mut(&mut self, id: &CampaignId) -> Result<&mut CampaignState, RuleError> {
        let c = self
            .campaigns
            .get_mut(id)
            .ok_or(RuleError::UnknownCampaign)?;
        if c.closed.is_some() {
            return Err(RuleError::CampaignClosed);
        }
        Ok(c)
    }

    /// Returns the new campaign's id (hashed once per entry).
    fn check_open(&self, o: &CampaignOpened) -> Result<CampaignId, RuleError> {
        // SPEC R-RULE-1
        let id = o.definition.id();
        if self.campaigns.contains_key(&id) {
            return Err(RuleError::CampaignExists);
        }
        Ok(id)
    }

    fn check_terms(c: &CampaignState, terms: &Terms) -> Result<(), RuleError> {
        // SPEC R-RULE-5, R-RULE-10
        c.definition.check_terms(terms).map_err(RuleError::from)
    }

    fn check_pledge(
        &self,
        p: &Pledge,
        verified_under: Option<&IssuerKeyId>,
    ) -> Result<(), RuleError> {
        let c = self.open(&p.campaign)?;
        // SPEC R-SEAL-33
        if c.sealed.is_some() {
            return Err(RuleError::WrongTermsKind);
        }
        Self::check_terms(c, &p.terms)?;
        // SPEC R-RULE-4
        if self.pledges.contains(&p.nullifier()) {
            return Err(RuleError::DoubleSpend);
        }
        // SPEC R-RULE-3: the token was verified under this campaign's own key
        // (an entry of the ledger's own store carries no key: it was checked
        // before it was stored).
        if verified_under.is_some_and(|k| *k != c.issuer_key_id) {
            return Err(RuleError::BadToken);
        }
        Ok(())
    }

    /// Verifies `entry` under the issuer key its campaign logged and, for an
    /// amendment or withdrawal, the pledge key `keys` holds: the stateless
    /// checks of [`VerifiedEntry::verify`]. A pledge of a campaign this state
    /// does not know is refused ([`RuleError::UnknownCampaign`]).
    ///
    /// # Errors
    /// As [`VerifiedEntry::verify`].
    pub fn verify(&self, entry: Entry, keys: &PledgeKeys) -> Result<VerifiedEntry, RuleError> {
        let id = entry.campaign();
        let issuer = self.campaign(&id).map(|c| &c.issuer_key);
        let pledge = keys.for_entry(&entry);
        VerifiedEntry::verify_sealed(entry, issuer, pledge.as_ref(), self.joint_key(&id))
    }

    /// [`LedgerState::check`], [`LedgerState::verify`] then
    /// [`LedgerState::apply`]: the whole check of one entry of a log nobody
    /// verified yet, in SPEC §8's order. An applied pledge's key goes to
    /// `keys`, for the amendments and withdrawals that follow.
    ///
    /// # Errors
    /// The first [`RuleError`] found; nothing changes.
    pub fn verify_and_apply(
        &mut self,
        entry: Entry,
        keys: &mut PledgeKeys,
    ) -> Result<(), RuleError> {
        // The stateful rules first, as a reader of SPEC §8 expects the first
        // broken rule to be named.
        self.check(&entry)?;
        let v = self.verify(entry, keys)?;
        self.apply(&v)?;
        keys.remember(v.entry());
        Ok(())
    }

    /// Returns the live pledge's current terms after checking the
    /// campaign, the sequence number (R-RULE-7) and liveness (R-RULE-6).
    fn live_pledge(
        &self,
        campaign: &CampaignId,
        n: &Nullifier,
        seq: u32,
    ) -> Result<(&CampaignState, Terms), RuleError> {
        let c = self.open(campaign)?;
        let p = self.pledges.get(n).ok_or(RuleError::UnknownPledge)?;
        if self.ids.get(p.campaign as usize) != Some(campaign) {
            return Err(RuleError::UnknownPledge);
        }
        let packed = p.live_terms().ok_or(RuleError::Withdrawn)?;
        let expected = p.seq.saturating_add(1);
        if seq != expected {
            return Err(RuleError::BadSequence { expected, got: seq });
        }
        // INVARIANT: a live pledge's packed terms were accepted by this
        // campaign, so they unpack.
        let terms = unpack_terms(&c.definition, packed, self.fund_amounts.get(n).copied())
            .ok_or(RuleError::UnknownPledge)?;
        Ok((c, terms))
    }

    /// The joint key of open sealed campaign `id`: R-RULE-2, then
    /// R-SEAL-33 (the campaign is sealed, its key logged).
    fn sealed_key(&self, id: &CampaignId) -> Result<&JointPublicKey, RuleError> {
        let c = self.open(id)?;
        c.sealed
            .as_ref()
            .ok_or(RuleError::WrongTermsKind)?
            .joint_key
            .as_ref()
            .ok_or(RuleError::SealedKeyNotReady)
    }

    /// The rules of a trustee message (SPEC R-SEAL-34): the campaign is
    /// open and sealed, the body decodes under its key-generation context
    /// and the transcript accepts it (R-DKG-25 … R-DKG-27). Returns the
    /// transcript with the message added.
    fn check_trustee_message(&self, m: &TrusteeMessage) -> Result<DkgTranscript, RuleError> {
        let c = self.open(&m.campaign)?;
        let refused = |reason: String| RuleError::BadTrusteeMessage { reason };
        let dkg = c
            .sealed
            .as_ref()
            .and_then(|s| s.dkg.as_deref())
            .ok_or_else(|| refused("the campaign is not sealed".into()))?;
        let ctx = dkg_context(&m.campaign, &c.definition)
            .ok_or_else(|| refused("the campaign is not sealed".into()))?;
        let mut next = dkg.clone();
        let added = match m.kind {
            TrusteeMessageKind::Dealing => {
                Dealing::decode(&ctx, &m.body).and_then(|d| next.add_dealing(d))
            }
            TrusteeMessageKind::Complaint => Complaint::decode(&ctx, &m.body)
                .and_then(|x| next.add_complaint(x))
                .map(|_| ()),
            TrusteeMessageKind::Ready => {
                Ready::decode(&ctx, &m.body).and_then(|r| next.add_ready(r))
            }
        };
        added.map_err(|e| refused(e.to_string()))?;
        Ok(next)
    }

    /// A snapshot of an open sealed campaign with its key logged, within its
    /// schedule of early reveals, naming the current aggregate (SPEC
    /// R-SEAL-35).
    fn check_snapshot(&self, x: &SealedSnapshot) -> Result<(), RuleError> {
        self.sealed_key(&x.campaign)?;
        let c = self.open(&x.campaign)?;
        let (Some(s), Some(block)) = (&c.sealed, c.definition.sealed_block()) else {
            return Err(RuleError::WrongTermsKind);
        };
        if s.early_snapshots() >= block.early_reveals().len()
            || x.aggregate_digest != aggregate_digest(&s.aggregate)
        {
            return Err(RuleError::BadSnapshot);
        }
        Ok(())
    }

    /// A sealed campaign (open or closed) with its key logged, and one of
    /// its snapshots.
    fn sealed_snapshot(
        &self,
        id: &CampaignId,
        index: u64,
    ) -> Result<(&CampaignState, &SealedState, &Snapshot), RuleError> {
        let refused = |reason: &str| RuleError::BadReveal {
            reason: reason.into(),
        };
        let c = self.campaigns.get(id).ok_or(RuleError::UnknownCampaign)?;
        let s = c.sealed.as_ref().ok_or(RuleError::WrongTermsKind)?;
        if s.joint_key.is_none() {
            return Err(RuleError::SealedKeyNotReady);
        }
        let snap = s
            .snapshot(index)
            .ok_or_else(|| refused("no snapshot at that log index"))?;
        if snap.revealed.is_some() {
            return Err(refused("the snapshot is revealed already"));
        }
        Ok((c, s, snap))
    }

    fn snapshot_mut(&mut self, id: &CampaignId, index: u64) -> Option<&mut Snapshot> {
        self.campaigns
            .get_mut(id)?
            .sealed
            .as_mut()?
            .snapshots
            .iter_mut()
            .find(|s| s.index == index)
    }

    /// One trustee's shares of a snapshot not revealed yet: its first, one
    /// per bucket, each proof valid (SPEC R-SEAL-36).
    fn check_shares(&self, x: &DecryptionShares) -> Result<(), RuleError> {
        let (_, s, snap) = self.sealed_snapshot(&x.campaign, x.snapshot)?;
        let refused = |reason: String| RuleError::BadReveal { reason };
        let public = s
            .public_shares
            .get(usize::from(x.trustee).wrapping_sub(1))
            .ok_or_else(|| refused(format!("no trustee {}", x.trustee)))?;
        if snap.shares.iter().any(|(t, _)| *t == x.trustee) {
            return Err(refused(format!(
                "trustee {} posted its shares already",
                x.trustee
            )));
        }
        if x.shares.len() != snap.aggregate.len() {
            return Err(refused("not one share per bucket".into()));
        }
        let context = RevealContext {
            campaign: *x.campaign.as_bytes(),
            size: x.snapshot,
        };
        let key = s.joint_key.as_ref().ok_or(RuleError::SealedKeyNotReady)?;
        for ((share, ct), b) in x.shares.iter().zip(&snap.aggregate).zip(0u32..) {
            share
                .verify(&context, key, public, b, ct)
                .map_err(|e| refused(e.to_string()))?;
        }
        Ok(())
    }

    /// The counts the first `k` trustees' shares of a snapshot decrypt to,
    /// which the entry must carry (SPEC R-SEAL-37).
    fn check_revealed(&self, x: &SealedTallyRevealed) -> Result<Vec<u64>, RuleError> {
        let counts = self.reveal_counts(&x.campaign, x.snapshot)?;
        if counts != x.counts {
            return Err(RuleError::TallyMismatch);
        }
        Ok(counts)
    }

    /// What the snapshot at log index `snapshot` of sealed campaign `id`
    /// decrypts to with the first `k` trustees' shares (SPEC R-SEAL-37):
    /// the counts a SealedTallyRevealed entry must carry.
    ///
    /// # Errors
    /// [`RuleError::BadReveal`] (no such snapshot, revealed already, fewer
    /// than `k` trustees' shares, a count beyond the bound), or the
    /// campaign's errors.
    pub fn reveal_counts(&self, id: &CampaignId, snapshot: u64) -> Result<Vec<u64>, RuleError> {
        let (c, s, snap) = self.sealed_snapshot(id, snapshot)?;
        let refused = |reason: String| RuleError::BadReveal { reason };
        let k = c
            .definition
            .sealed_block()
            .map_or(0, |b| usize::from(b.k()));
        if snap.shares.len() < k {
            return Err(refused(format!(
                "{} trustees' shares, {k} needed",
                snap.shares.len()
            )));
        }
        let mut reveals = Vec::with_capacity(k);
        for (t, shares) in snap.shares.iter().take(k) {
            let public = s
                .public_shares
                .get(usize::from(*t).wrapping_sub(1))
                .ok_or_else(|| refused(format!("no trustee {t}")))?;
            reveals.push(TrusteeReveal { public, shares });
        }
        let key = s.joint_key.as_ref().ok_or(RuleError::SealedKeyNotReady)?;
        let context = RevealContext {
            campaign: *id.as_bytes(),
            size: snapshot,
        };
        crate::sealed::reveal_counts(&context, key, &snap.aggregate, k, &reveals, snap.pledges)
            .map_err(|e| refused(e.to_string()))
    }

    /// The stateful rules of a sealed pledge (SPEC R-SEAL-33): R-RULE-2, the
    /// campaign sealed with its key logged, the bucket count, R-RULE-4,
    /// and that the entry was verified under the campaign's own keys.
    fn check_sealed_pledge(
        &self,
        p: &SealedPledge,
        verified_under: Option<&IssuerKeyId>,
        sealed_under: Option<&[u8; 32]>,
    ) -> Result<(), RuleError> {
        let key = self.sealed_key(&p.campaign)?;
        let c = self.open(&p.campaign)?;
        Self::check_bucket_count(c, p.terms.bucket_count())?;
        // SPEC R-RULE-4
        if self.pledges.contains(&p.nullifier()) {
            return Err(RuleError::DoubleSpend);
        }
        // SPEC R-RULE-3, R-SEAL-32: verified under this campaign's keys.
        if verified_under.is_some_and(|k| *k != c.issuer_key_id) {
            return Err(RuleError::BadToken);
        }
        if sealed_under.is_some_and(|k| *k != key.to_bytes()) {
            return Err(RuleError::BadSealedTerms);
        }
        Ok(())
    }

    /// The stateful rules of a sealed amendment (SPEC R-SEAL-33): R-RULE-2,
    /// the campaign sealed with its key logged, the bucket count, R-RULE-6
    /// (a sealed pledge of this campaign; none is ever withdrawn) and
    /// R-RULE-7.
    fn check_sealed_amend(
        &self,
        a: &SealedAmendment,
        sealed_under: Option<&[u8; 32]>,
    ) -> Result<(), RuleError> {
        let key = self.sealed_key(&a.campaign)?;
        let c = self.open(&a.campaign)?;
        Self::check_bucket_count(c, a.terms.bucket_count())?;
        let p = self
            .pledges
            .get(&a.nullifier)
            .ok_or(RuleError::UnknownPledge)?;
        if self.ids.get(p.campaign as usize) != Some(&a.campaign) || p.threshold != SEALED {
            return Err(RuleError::UnknownPledge);
        }
        let expected = p.seq.saturating_add(1);
        if a.seq != expected {
            return Err(RuleError::BadSequence {
                expected,
                got: a.seq,
            });
        }
        if sealed_under.is_some_and(|k| *k != key.to_bytes()) {
            return Err(RuleError::BadSealedTerms);
        }
        Ok(())
    }

    /// Sealed terms have exactly the campaign's number of buckets
    /// (R-SEAL-32).
    fn check_bucket_count(c: &CampaignState, b: usize) -> Result<(), RuleError> {
        let want = c.definition.sealed_block().map(|s| s.buckets().len());
        if want != Some(b) {
            return Err(RuleError::BadSealedTerms);
        }
        Ok(())
    }

    /// Records a sealed campaign's joint key. Until the trustees' key
    /// generation entries exist (SPEC §17.2) only this crate's tests call it.
    #[cfg(test)]
    pub(crate) fn set_joint_key(&mut self, id: &CampaignId, key: JointPublicKey) {
        if let Some(s) = self.campaigns.get_mut(id).and_then(|c| c.sealed.as_mut()) {
            s.joint_key = Some(key);
        }
    }

    /// The joint key a sealed entry of campaign `id` is verified under
    /// (`None` for a live campaign, an unknown one, or before the key is
    /// logged).
    pub fn joint_key(&self, id: &CampaignId) -> Option<&JointPublicKey> {
        self.campaigns.get(id)?.sealed.as_ref()?.joint_key.as_ref()
    }

    /// The stateful rules of an amendment (its signature is
    /// [`VerifiedEntry::verify`]'s).
    fn check_amend(&self, a: &Amendment) -> Result<Terms, RuleError> {
        // SPEC R-SEAL-33
        if self.open(&a.campaign)?.sealed.is_some() {
            return Err(RuleError::WrongTermsKind);
        }
        let (c, old) = self.live_pledge(&a.campaign, &a.nullifier, a.seq)?;
        Self::check_terms(c, &a.terms)?;
        Ok(old)
    }

    /// The stateful rules of a withdrawal (its signature is
    /// [`VerifiedEntry::verify`]'s).
    fn check_withdraw(&self, w: &Withdrawal) -> Result<Terms, RuleError> {
        // SPEC R-SEAL-33: a sealed pledge is withdrawn by amending it to the
        // null vector, which looks like any other amendment.
        if self.open(&w.campaign)?.sealed.is_some() {
            return Err(RuleError::WrongTermsKind);
        }
        let (_, old) = self.live_pledge(&w.campaign, &w.nullifier, w.seq)?;
        Ok(old)
    }

    /// The rules of a CampaignUpdated: the campaign is open (R-RULE-2), then
    /// R-RULE-11, R-RULE-12, R-RULE-13 in that order. The rules carry no
    /// clock: the ledger also refuses an update once the campaign's
    /// effective deadline has passed (R-RULE-14).
    fn check_update(&self, u: &CampaignUpdated) -> Result<(), RuleError> {
        let c = self.open(&u.campaign())?;
        c.updates
            .check(u, c.definition.deadline())
            .map_err(RuleError::from)
    }

    fn check_close(&self, cl: &CampaignClosed) -> Result<(), RuleError> {
        let c = self.open(&cl.campaign)?;
        // SPEC R-SEAL-35: a sealed close commits to the aggregate, not to
        // a tally nobody knows yet.
        if let Some(s) = &c.sealed {
            if cl.live != 0 || cl.active != 0 || cl.tally_digest != aggregate_digest(&s.aggregate) {
                return Err(RuleError::TallyMismatch);
            }
            if c.pledges > cl.tokens_issued {
                return Err(RuleError::MorePledgesThanTokens {
                    pledges: c.pledges,
                    tokens: cl.tokens_issued,
                });
            }
            return Ok(());
        }
        // SPEC R-RULE-8
        let matches = match &c.funding {
            Some(f) => {
                let current = f.snapshot().map_err(|_| RuleError::TallyMismatch)?;
                cl.matches_funding(&current)
            }
            None => {
                let current = c.tally.snapshot().map_err(|_| RuleError::TallyMismatch)?;
                cl.matches(&current)
            }
        };
        if !matches {
            return Err(RuleError::TallyMismatch);
        }
        if c.pledges > cl.tokens_issued {
            return Err(RuleError::MorePledgesThanTokens {
                pledges: c.pledges,
                tokens: cl.tokens_issued,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::CampaignOpened;
    use crate::pledge::PledgeSigningKey;
    use crate::sealed::SealedTerms;
    use crate::token::{IssuerSecretKey, Token, blind, finalize};
    use curve25519_dalek::{RistrettoPoint, Scalar};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    struct Sealed {
        state: LedgerState,
        keys: PledgeKeys,
        issuer: IssuerSecretKey,
        id: CampaignId,
        joint: JointPublicKey,
        rng: StdRng,
    }

    impl Sealed {
        /// A log with one sealed campaign (4 buckets) whose joint key is
        /// not logged yet.
        fn new() -> Self {
            let issuer = IssuerSecretKey::generate().unwrap();
            let definition = crate::campaign::tests::sealed_sample(vec![1, 10, 100, 1000], 2, 3);
            let id = definition.id();
            let mut state = LedgerState::new();
            let mut keys = PledgeKeys::new();
            state
                .verify_and_apply(
                    Entry::CampaignOpened(CampaignOpened {
                        definition,
                        issuer_key: issuer.public_key().clone(),
                    }),
                    &mut keys,
                )
                .unwrap();
            let joint =
                JointPublicKey::from_point(RistrettoPoint::mul_base(&Scalar::from(77u64))).unwrap();
            Self {
                state,
                keys,
                issuer,
                id,
                joint,
                rng: StdRng::seed_from_u64(16),
            }
        }

        fn token(&self, key: &PledgeSigningKey, campaign: &CampaignId) -> Token {
            let pk = self.issuer.public_key();
            let (blinded, st) = blind(pk, campaign, &key.public_key()).unwrap();
            let sig = self.issuer.blind_sign(blinded.as_bytes()).unwrap();
            finalize(pk, &st, sig.as_bytes(), campaign, &key.public_key()).unwrap()
        }

        /// A sealed pledge for bucket `bucket` over `b` buckets, its proofs
        /// bound to `context` (the pledge's own when `None`).
        fn pledge(
            &mut self,
            key: &PledgeSigningKey,
            b: usize,
            bucket: Option<usize>,
            context: Option<crate::sealed::SealContext>,
        ) -> Entry {
            let token = self.token(key, &self.id);
            let ctx = context.unwrap_or_else(|| SealedPledge::context_of(&self.id, &token));
            let terms = SealedTerms::seal(&ctx, &self.joint, b, bucket, &mut self.rng).unwrap();
            Entry::SealedPledge(Box::new(
                SealedPledge::sign(self.id, token, terms, key).unwrap(),
            ))
        }

        fn amend(&mut self, key: &PledgeSigningKey, seq: u32, proof_seq: u32) -> Entry {
            let n = crate::token::nullifier(&self.id, &key.public_key());
            let ctx = SealedAmendment::context_of(&self.id, &n, proof_seq, &key.public_key());
            let terms = SealedTerms::seal(&ctx, &self.joint, 4, Some(3), &mut self.rng).unwrap();
            Entry::SealedAmended(Box::new(SealedAmendment::sign(self.id, n, seq, terms, key)))
        }

        fn submit(&mut self, e: Entry) -> Result<(), RuleError> {
            self.state.verify_and_apply(e, &mut self.keys)
        }

        fn entries(&self) -> u64 {
            self.state
                .campaign(&self.id)
                .unwrap()
                .sealed
                .as_ref()
                .unwrap()
                .entries
        }
    }

    /// SPEC R-SEAL-31 … R-SEAL-33: what a sealed campaign accepts and
    /// refuses, with the first rule named; refused entries change nothing.
    #[test]
    fn sealed_pledges_and_amendments_follow_the_sealed_rules() {
        let mut s = Sealed::new();
        let alice = PledgeSigningKey::from_seed(&[1; 32]);
        // No pledge before the joint key is logged.
        let early = s.pledge(&alice, 4, Some(1), None);
        assert_eq!(s.state.check(&early), Err(RuleError::SealedKeyNotReady));
        assert_eq!(s.submit(early), Err(RuleError::SealedKeyNotReady));
        let id = s.id;
        let joint = s.joint.clone();
        s.state.set_joint_key(&id, joint);

        // A one-hot pledge and a null pledge are accepted alike.
        let p = s.pledge(&alice, 4, Some(1), None);
        let bytes = p.encode().unwrap();
        assert_eq!(
            (bytes[1], bytes[2 + 32 + 320]),
            (2, 2),
            "kind 2, terms kind 2"
        );
        assert_eq!(Entry::decode(&bytes).unwrap(), p);
        s.submit(p.clone()).unwrap();
        let bob = PledgeSigningKey::from_seed(&[2; 32]);
        let null = s.pledge(&bob, 4, None, None);
        s.submit(null).unwrap();
        assert_eq!(s.entries(), 2);
        assert_eq!(s.state.campaign(&id).unwrap().pledges, 2);
        // R-RULE-4 holds for sealed pledges too.
        assert_eq!(s.submit(p), Err(RuleError::DoubleSpend));

        // Refusals, each naming its rule; none changes the state.
        let carol = PledgeSigningKey::from_seed(&[3; 32]);
        let wrong_b = s.pledge(&carol, 5, Some(0), None);
        assert_eq!(s.submit(wrong_b), Err(RuleError::BadSealedTerms));
        let dave = PledgeSigningKey::from_seed(&[4; 32]);
        let token = s.token(&dave, &id);
        let mut other = SealedPledge::context_of(&id, &token);
        other.nullifier[0] ^= 1;
        let copied = s.pledge(&dave, 4, Some(0), Some(other));
        assert_eq!(s.submit(copied), Err(RuleError::BadSealedTerms));
        let plain =
            Entry::Pledge(Pledge::sign(id, token, Terms::threshold(10).unwrap(), &dave).unwrap());
        assert_eq!(s.submit(plain), Err(RuleError::WrongTermsKind));
        let withdraw = Entry::PledgeWithdrawn(Withdrawal::sign(
            id,
            crate::token::nullifier(&id, &alice.public_key()),
            1,
            &alice,
        ));
        assert_eq!(s.submit(withdraw), Err(RuleError::WrongTermsKind));
        let plain_amend = Entry::PledgeAmended(Amendment::sign(
            id,
            crate::token::nullifier(&id, &alice.public_key()),
            1,
            Terms::threshold(10).unwrap(),
            &alice,
        ));
        assert_eq!(s.submit(plain_amend), Err(RuleError::WrongTermsKind));
        assert_eq!(s.entries(), 2);

        // Amendments: seq 1, then 2; the proofs are bound to the seq.
        let replayed_proof = s.amend(&alice, 1, 2);
        assert_eq!(s.submit(replayed_proof), Err(RuleError::BadSealedTerms));
        let a1 = s.amend(&alice, 1, 1);
        let bytes = a1.encode().unwrap();
        assert_eq!((bytes[1], bytes[2 + 32 + 32 + 4]), (3, 2));
        assert_eq!(Entry::decode(&bytes).unwrap(), a1);
        s.submit(a1.clone()).unwrap();
        assert_eq!(
            s.submit(a1),
            Err(RuleError::BadSequence {
                expected: 2,
                got: 1
            })
        );
        let a2 = s.amend(&alice, 2, 2);
        s.submit(a2).unwrap();
        assert_eq!(
            s.state
                .next_seq(&crate::token::nullifier(&id, &alice.public_key())),
            Some(3)
        );
        let stranger = PledgeSigningKey::from_seed(&[9; 32]);
        let unknown = s.amend(&stranger, 1, 1);
        assert_eq!(s.state.check(&unknown), Err(RuleError::UnknownPledge));
        assert_eq!(s.entries(), 4);

        // A sealed close commits to the aggregate, not to a (live) tally.
        let close = Entry::CampaignClosed(CampaignClosed::new(
            id,
            10,
            &s.state.campaign(&id).unwrap().tally.snapshot().unwrap(),
        ));
        assert_eq!(s.state.check(&close), Err(RuleError::TallyMismatch));
    }

    /// SPEC R-SEAL-34: the trustees' key generation runs through the log;
    /// the last ready message logs the joint key, under which sealed
    /// pledges then verify and which the trustees' shares decrypt.
    /// Refused messages change nothing.
    #[test]
    fn key_generation_through_the_log_opens_a_sealed_campaign() {
        use crate::dkg::{DkgOutcome, TrusteeKeyPair};
        let mut rng = StdRng::seed_from_u64(34);
        let pairs: Vec<TrusteeKeyPair> =
            (0..3).map(|_| TrusteeKeyPair::generate(&mut rng)).collect();
        let d = crate::campaign::tests::sample();
        let definition = CampaignDefinition::sealed(
            crate::campaign::CampaignParams {
                nonce: *d.nonce(),
                title: d.title().into(),
                text: d.text().into(),
                action: d.action().into(),
                deadline: d.deadline(),
                goal: d.goal(),
                threshold_min: 1,
                threshold_max: 1000,
                reveal: crate::campaign::RevealPolicy::Sealed,
            },
            crate::campaign::Sealed::new(
                vec![1, 10, 100, 1000],
                2,
                pairs.iter().map(|p| p.public_key().to_bytes()).collect(),
                vec![],
            )
            .unwrap(),
        )
        .unwrap();
        let id = definition.id();
        let issuer = IssuerSecretKey::generate().unwrap();
        let mut state = LedgerState::new();
        let mut keys = PledgeKeys::new();
        state
            .verify_and_apply(
                Entry::CampaignOpened(CampaignOpened {
                    definition: definition.clone(),
                    issuer_key: issuer.public_key().clone(),
                }),
                &mut keys,
            )
            .unwrap();
        let ctx = dkg_context(&id, &definition).unwrap();
        let msg = |kind, body: Vec<u8>| {
            Entry::TrusteeMessage(TrusteeMessage {
                campaign: id,
                kind,
                body,
            })
        };
        let dealings: Vec<Dealing> = pairs
            .iter()
            .zip(1u8..)
            .map(|(kp, i)| Dealing::deal(&ctx, kp, i, &mut rng).unwrap())
            .collect();
        // A ready message before every dealing is in is refused.
        let early = Ready::sign(
            &ctx,
            &pairs[0],
            1,
            state
                .campaign(&id)
                .unwrap()
                .sealed
                .as_ref()
                .unwrap()
                .dkg
                .as_ref()
                .unwrap()
                .digest(),
        )
        .unwrap();
        assert!(matches!(
            state.verify_and_apply(msg(TrusteeMessageKind::Ready, early.encode()), &mut keys),
            Err(RuleError::BadTrusteeMessage { .. })
        ));
        for d in &dealings {
            let e = msg(TrusteeMessageKind::Dealing, d.as_bytes().to_vec());
            let bytes = e.encode().unwrap();
            assert_eq!((bytes[1], bytes[34]), (8, 1), "kind 8, dealing");
            assert_eq!(Entry::decode(&bytes).unwrap(), e);
            state.verify_and_apply(e, &mut keys).unwrap();
        }
        // A second dealing by dealer 1, and a corrupted one, are refused.
        let again = Dealing::deal(&ctx, &pairs[0], 1, &mut rng).unwrap();
        let mut bad = again.as_bytes().to_vec();
        bad[40] ^= 1;
        for body in [again.as_bytes().to_vec(), bad] {
            assert!(matches!(
                state.verify_and_apply(msg(TrusteeMessageKind::Dealing, body), &mut keys),
                Err(RuleError::BadTrusteeMessage { .. })
            ));
        }
        let digest = state
            .campaign(&id)
            .unwrap()
            .sealed
            .as_ref()
            .unwrap()
            .dkg
            .as_ref()
            .unwrap()
            .digest();
        for (kp, j) in pairs.iter().zip(1u8..) {
            assert!(state.joint_key(&id).is_none(), "no key before every ready");
            let r = Ready::sign(&ctx, kp, j, digest).unwrap();
            state
                .verify_and_apply(msg(TrusteeMessageKind::Ready, r.encode()), &mut keys)
                .unwrap();
        }
        let outcome = DkgOutcome::compute(&ctx, &dealings, &[]).unwrap();
        assert_eq!(state.joint_key(&id), Some(outcome.joint_key()));
        // Nothing more is accepted once complete.
        let late = Complaint::make(&ctx, &pairs[1], 2, &dealings[0]).unwrap();
        assert!(matches!(
            state.verify_and_apply(msg(TrusteeMessageKind::Complaint, late.encode()), &mut keys),
            Err(RuleError::BadTrusteeMessage { .. })
        ));

        // A sealed pledge verifies under the logged key.
        let key = PledgeSigningKey::from_seed(&[7; 32]);
        let (blinded, st) = blind(issuer.public_key(), &id, &key.public_key()).unwrap();
        let sig = issuer.blind_sign(blinded.as_bytes()).unwrap();
        let token = finalize(
            issuer.public_key(),
            &st,
            sig.as_bytes(),
            &id,
            &key.public_key(),
        )
        .unwrap();
        let ctx_p = SealedPledge::context_of(&id, &token);
        let terms = SealedTerms::seal(&ctx_p, outcome.joint_key(), 4, Some(2), &mut rng).unwrap();
        let pledge = SealedPledge::sign(id, token, terms.clone(), &key).unwrap();
        state
            .verify_and_apply(Entry::SealedPledge(Box::new(pledge)), &mut keys)
            .unwrap();
        // Trustees 1 and 3 decrypt it: bucket 2 holds one pledge.
        let reveal = crate::sealed::RevealContext {
            campaign: *id.as_bytes(),
            size: 7,
        };
        let aggregate = crate::sealed::aggregate(4, [&terms]).unwrap();
        let shares: Vec<_> = [0usize, 2]
            .iter()
            .map(|&i| {
                let x = outcome
                    .secret_share(&pairs[i], u8::try_from(i + 1).unwrap())
                    .unwrap();
                (
                    x.public_share(),
                    x.decryption_shares(&reveal, outcome.joint_key(), &aggregate, &mut rng),
                )
            })
            .collect();
        let reveals: Vec<crate::sealed::TrusteeReveal<'_>> = shares
            .iter()
            .map(|(public, shares)| crate::sealed::TrusteeReveal { public, shares })
            .collect();
        let counts =
            crate::sealed::reveal_counts(&reveal, outcome.joint_key(), &aggregate, 2, &reveals, 10);
        assert_eq!(counts.unwrap(), vec![0, 0, 1, 0]);

        // A trustee message for a live campaign is refused.
        let live = crate::campaign::tests::sample();
        let live_id = live.id();
        state
            .verify_and_apply(
                Entry::CampaignOpened(CampaignOpened {
                    definition: live,
                    issuer_key: issuer.public_key().clone(),
                }),
                &mut keys,
            )
            .unwrap();
        let e = Entry::TrusteeMessage(TrusteeMessage {
            campaign: live_id,
            kind: TrusteeMessageKind::Dealing,
            body: dealings[0].as_bytes().to_vec(),
        });
        assert!(matches!(
            state.check(&e),
            Err(RuleError::BadTrusteeMessage { .. })
        ));
    }

    /// A sealed campaign whose trustees logged their key through the log
    /// (4 buckets, 3 trustees, k = 2, one early reveal).
    struct Revealing {
        state: LedgerState,
        keys: PledgeKeys,
        issuer: IssuerSecretKey,
        id: CampaignId,
        pairs: Vec<crate::dkg::TrusteeKeyPair>,
        outcome: crate::dkg::DkgOutcome,
        rng: StdRng,
    }

    impl Revealing {
        fn new() -> Self {
            use crate::dkg::{DkgOutcome, TrusteeKeyPair};
            let mut rng = StdRng::seed_from_u64(35);
            let pairs: Vec<TrusteeKeyPair> =
                (0..3).map(|_| TrusteeKeyPair::generate(&mut rng)).collect();
            let d = crate::campaign::tests::sample();
            let definition = CampaignDefinition::sealed(
                crate::campaign::CampaignParams {
                    nonce: *d.nonce(),
                    title: d.title().into(),
                    text: d.text().into(),
                    action: d.action().into(),
                    deadline: d.deadline(),
                    goal: 3,
                    threshold_min: 1,
                    threshold_max: 1000,
                    reveal: crate::campaign::RevealPolicy::Sealed,
                },
                crate::campaign::Sealed::new(
                    vec![1, 2, 100, 1000],
                    2,
                    pairs.iter().map(|p| p.public_key().to_bytes()).collect(),
                    vec![d.deadline() - 1000],
                )
                .unwrap(),
            )
            .unwrap();
            let id = definition.id();
            let issuer = IssuerSecretKey::generate().unwrap();
            let mut state = LedgerState::new();
            let mut keys = PledgeKeys::new();
            state
                .verify_and_apply(
                    Entry::CampaignOpened(CampaignOpened {
                        definition: definition.clone(),
                        issuer_key: issuer.public_key().clone(),
                    }),
                    &mut keys,
                )
                .unwrap();
            let ctx = dkg_context(&id, &definition).unwrap();
            let dealings: Vec<Dealing> = pairs
                .iter()
                .zip(1u8..)
                .map(|(kp, i)| Dealing::deal(&ctx, kp, i, &mut rng).unwrap())
                .collect();
            let msg = |kind, body: Vec<u8>| {
                Entry::TrusteeMessage(TrusteeMessage {
                    campaign: id,
                    kind,
                    body,
                })
            };
            for d in &dealings {
                state
                    .verify_and_apply(
                        msg(TrusteeMessageKind::Dealing, d.as_bytes().to_vec()),
                        &mut keys,
                    )
                    .unwrap();
            }
            let digest = state
                .campaign(&id)
                .unwrap()
                .sealed
                .as_ref()
                .unwrap()
                .dkg
                .as_ref()
                .unwrap()
                .digest();
            for (kp, j) in pairs.iter().zip(1u8..) {
                let r = Ready::sign(&ctx, kp, j, digest).unwrap();
                state
                    .verify_and_apply(msg(TrusteeMessageKind::Ready, r.encode()), &mut keys)
                    .unwrap();
            }
            let outcome = DkgOutcome::compute(&ctx, &dealings, &[]).unwrap();
            Self {
                state,
                keys,
                issuer,
                id,
                pairs,
                outcome,
                rng,
            }
        }

        /// Pledges `bucket` (`None`: null) with a fresh key; returns it.
        fn pledge(&mut self, bucket: Option<usize>) -> PledgeSigningKey {
            let key = PledgeSigningKey::generate().unwrap();
            let pk = self.issuer.public_key();
            let (blinded, st) = blind(pk, &self.id, &key.public_key()).unwrap();
            let sig = self.issuer.blind_sign(blinded.as_bytes()).unwrap();
            let token = finalize(pk, &st, sig.as_bytes(), &self.id, &key.public_key()).unwrap();
            let ctx = SealedPledge::context_of(&self.id, &token);
            let terms = SealedTerms::seal(&ctx, self.outcome.joint_key(), 4, bucket, &mut self.rng)
                .unwrap();
            let e = Entry::SealedPledge(Box::new(
                SealedPledge::sign(self.id, token, terms, &key).unwrap(),
            ));
            self.state.verify_and_apply(e, &mut self.keys).unwrap();
            key
        }

        fn amend(&mut self, key: &PledgeSigningKey, seq: u32, bucket: Option<usize>) {
            let n = crate::token::nullifier(&self.id, &key.public_key());
            let ctx = SealedAmendment::context_of(&self.id, &n, seq, &key.public_key());
            let terms = SealedTerms::seal(&ctx, self.outcome.joint_key(), 4, bucket, &mut self.rng)
                .unwrap();
            let e =
                Entry::SealedAmended(Box::new(SealedAmendment::sign(self.id, n, seq, terms, key)));
            self.state.verify_and_apply(e, &mut self.keys).unwrap();
        }

        fn sealed(&self) -> &SealedState {
            self.state
                .campaign(&self.id)
                .unwrap()
                .sealed
                .as_ref()
                .unwrap()
        }

        /// Trustee `j`'s shares of the snapshot at `index`.
        fn shares(&mut self, j: u8, index: u64) -> Entry {
            let x = self
                .outcome
                .secret_share(&self.pairs[usize::from(j) - 1], j)
                .unwrap();
            let snap = self.sealed().snapshot(index).unwrap().aggregate.clone();
            let ctx = crate::sealed::RevealContext {
                campaign: *self.id.as_bytes(),
                size: index,
            };
            Entry::DecryptionShares(DecryptionShares {
                campaign: self.id,
                snapshot: index,
                trustee: j,
                shares: x.decryption_shares(&ctx, self.outcome.joint_key(), &snap, &mut self.rng),
            })
        }

        fn submit(&mut self, e: Entry) -> Result<(), RuleError> {
            let bytes = e.encode().unwrap();
            assert_eq!(Entry::decode(&bytes).unwrap(), e, "round trip");
            self.state.verify_and_apply(e, &mut self.keys)
        }
    }

    /// SPEC R-SEAL-35 … R-SEAL-37: an early snapshot and the close fix the
    /// aggregate; any k trustees' shares reveal the counts, which the log
    /// carries and the rules recompute; amendments (a change of bucket, a
    /// withdrawal to null) count once; every refusal changes nothing.
    #[test]
    fn a_sealed_campaign_is_revealed_by_any_k_trustees() {
        let mut r = Revealing::new();
        let id = r.id;
        let a = r.pledge(Some(0));
        let _b = r.pledge(Some(1));
        let c = r.pledge(Some(1));
        let _null = r.pledge(None);
        r.amend(&a, 1, Some(0)); // a re-encrypts its bucket (cover)
        r.amend(&c, 1, None); // c withdraws (null vector)
        // The snapshot must name the current aggregate.
        let wrong = Entry::SealedSnapshot(SealedSnapshot {
            campaign: id,
            aggregate_digest: crate::hash::Hash([0; 32]),
        });
        assert_eq!(r.submit(wrong), Err(RuleError::BadSnapshot));
        let digest = aggregate_digest(r.sealed().aggregate());
        let index = r.state.len();
        r.submit(Entry::SealedSnapshot(SealedSnapshot {
            campaign: id,
            aggregate_digest: digest,
        }))
        .unwrap();
        // One early reveal scheduled: a second snapshot is refused.
        let again = Entry::SealedSnapshot(SealedSnapshot {
            campaign: id,
            aggregate_digest: digest,
        });
        assert_eq!(r.submit(again), Err(RuleError::BadSnapshot));
        // No reveal before k trustees' shares.
        let counts = vec![1, 1, 0, 0];
        let reveal = |counts: Vec<u64>| {
            Entry::SealedTallyRevealed(SealedTallyRevealed {
                campaign: id,
                snapshot: index,
                counts,
            })
        };
        assert!(matches!(
            r.submit(reveal(counts.clone())),
            Err(RuleError::BadReveal { .. })
        ));
        let s3 = r.shares(3, index);
        r.submit(s3.clone()).unwrap();
        assert!(
            matches!(r.submit(s3), Err(RuleError::BadReveal { .. })),
            "twice"
        );
        // Shares made for another snapshot index do not verify.
        let mut other = r.shares(1, index);
        if let Entry::DecryptionShares(x) = &mut other {
            let ctx = crate::sealed::RevealContext {
                campaign: *id.as_bytes(),
                size: index + 1,
            };
            let secret = r.outcome.secret_share(&r.pairs[0], 1).unwrap();
            let aggregate = r.sealed().snapshot(index).unwrap().aggregate.clone();
            x.shares =
                secret.decryption_shares(&ctx, r.outcome.joint_key(), &aggregate, &mut r.rng);
        }
        assert!(matches!(r.submit(other), Err(RuleError::BadReveal { .. })));
        // Trustee 2's shares relabelled as trustee 1's do not verify.
        let mut stolen = r.shares(2, index);
        if let Entry::DecryptionShares(x) = &mut stolen {
            x.trustee = 1;
        }
        assert!(matches!(r.submit(stolen), Err(RuleError::BadReveal { .. })));
        let e = r.shares(1, index);
        r.submit(e).unwrap();
        // Wrong counts are refused; the right ones are logged.
        assert_eq!(
            r.submit(reveal(vec![0, 1, 0, 1])),
            Err(RuleError::TallyMismatch)
        );
        assert_eq!(
            r.submit(reveal(vec![0, 1, 0, 1, 0])),
            Err(RuleError::TallyMismatch)
        );
        r.submit(reveal(counts.clone())).unwrap();
        assert!(
            matches!(
                r.submit(reveal(counts.clone())),
                Err(RuleError::BadReveal { .. })
            ),
            "revealed twice"
        );
        let def = r.state.campaign(&id).unwrap().definition.clone();
        let tally = r
            .sealed()
            .snapshot(index)
            .unwrap()
            .revealed_tally(&def)
            .unwrap();
        let snap = tally.snapshot().unwrap();
        // Histogram {1: 1, 2: 1}: live 2, and both act (2 if at least 2 do).
        assert_eq!((snap.live(), snap.active()), (2, 2));

        // More pledges, then the close: its digest is the final aggregate,
        // live and active 0 (unknown until the reveal).
        r.pledge(Some(2));
        let close = |digest, live| {
            Entry::CampaignClosed(CampaignClosed {
                campaign: id,
                tokens_issued: 5,
                live,
                active: 0,
                tally_digest: digest,
            })
        };
        assert_eq!(
            r.submit(close(digest, 0)),
            Err(RuleError::TallyMismatch),
            "the old aggregate"
        );
        let final_digest = aggregate_digest(r.sealed().aggregate());
        assert_eq!(
            r.submit(close(final_digest, 5)),
            Err(RuleError::TallyMismatch),
            "a live count"
        );
        let closing = r.state.len();
        r.submit(close(final_digest, 0)).unwrap();
        // Shares and the reveal come after the close.
        let e = r.shares(2, closing);
        r.submit(e).unwrap();
        let e = r.shares(1, closing);
        r.submit(e).unwrap();
        let last = Entry::SealedTallyRevealed(SealedTallyRevealed {
            campaign: id,
            snapshot: closing,
            counts: vec![1, 1, 1, 0],
        });
        r.submit(last).unwrap();
        let tally = r
            .sealed()
            .snapshot(closing)
            .unwrap()
            .revealed_tally(&def)
            .unwrap();
        assert_eq!(tally.snapshot().unwrap().live(), 3);
        assert_eq!(r.sealed().snapshots.len(), 2);
    }

    /// Sealed terms in a live campaign are refused, and a sealed pledge
    /// verified under another joint key is not applied.
    #[test]
    fn sealed_terms_only_in_sealed_campaigns_under_their_key() {
        let mut s = Sealed::new();
        let id = s.id;
        let joint = s.joint.clone();
        s.state.set_joint_key(&id, joint);
        // A live campaign with the same issuer.
        let live = crate::campaign::tests::sample();
        let live_id = live.id();
        s.submit(Entry::CampaignOpened(CampaignOpened {
            definition: live,
            issuer_key: s.issuer.public_key().clone(),
        }))
        .unwrap();
        let key = PledgeSigningKey::from_seed(&[5; 32]);
        let token = s.token(&key, &live_id);
        let ctx = SealedPledge::context_of(&live_id, &token);
        let terms = SealedTerms::seal(&ctx, &s.joint, 4, Some(0), &mut s.rng).unwrap();
        let e = Entry::SealedPledge(Box::new(
            SealedPledge::sign(live_id, token, terms, &key).unwrap(),
        ));
        assert_eq!(s.state.check(&e), Err(RuleError::WrongTermsKind));
        // Verified under a key that is not the campaign's: refused at apply.
        let other =
            JointPublicKey::from_point(RistrettoPoint::mul_base(&Scalar::from(5u64))).unwrap();
        let token = s.token(&key, &id);
        let ctx = SealedPledge::context_of(&id, &token);
        let terms = SealedTerms::seal(&ctx, &other, 4, Some(0), &mut s.rng).unwrap();
        let e = Entry::SealedPledge(Box::new(
            SealedPledge::sign(id, token, terms, &key).unwrap(),
        ));
        let v = VerifiedEntry::verify_sealed(e, Some(s.issuer.public_key()), None, Some(&other))
            .unwrap();
        assert_eq!(s.state.apply(&v), Err(RuleError::BadSealedTerms));
        assert_eq!(s.entries(), 0);
    }

    /// The rules' memory per pledge (BENCHMARKS.md, RSS): 12 bytes of state
    /// beside each 32-byte nullifier, no key.
    #[test]
    fn a_pledge_costs_the_rules_44_bytes() {
        assert_eq!(size_of::<PledgeState>(), 12);
        assert_eq!(size_of::<(Nullifier, PledgeState)>(), 44);
    }
}
