//! Replaying a log: entry bytes fed in log order, each one's leaf appended to
//! a Merkle tree and the entry applied through the ledger rules
//! ([`LedgerState`], SPEC §8), with what every replay needs besides: which
//! rule an entry broke, where each campaign opened and closed, each
//! campaign's last change size (R-TALLY-12), and its tally at any size.
//!
//! Sans-IO: the caller reads the bytes (a store, entry bundles, a cache),
//! chooses where stateless checks run ([`Verification`]) and decides what a
//! failure means:
//!
//! - `pledged` at start-up replays its own store, whose entries were verified
//!   before they were stored ([`Verification::Previously`], R-STORE-6); any
//!   failure is fatal.
//! - `pledge audit` decodes ([`Leaf::decode`]) and verifies pledges in
//!   parallel, then replays in order with [`Verification::Done`], reporting
//!   every failure and going on (R-AUDIT-4…R-AUDIT-12).
//! - `pledge demo` replays with [`Verification::Now`] and stops at the first
//!   failure.
//!
//! An entry that does not decode or breaks a rule still takes its place in
//! the tree (its leaf is the hash of the bytes logged) but changes nothing
//! else.

use std::collections::HashMap;
use std::fmt;

use crate::codec::DecodeError;
use crate::entry::{Entry, EntryKind};
use crate::hash::{CampaignId, Hash};
use crate::ledger::{LedgerState, PledgeKeys, RuleError, VerifiedEntry};
use crate::merkle::{self, GrowingTree, Tree, TreeError};
use crate::pledge::Pledge;
use crate::tally::{TallyError, TallySnapshot};

/// One entry's bytes, hashed and decoded without any state: safe to compute
/// in parallel ahead of the replay.
#[derive(Debug, Clone)]
pub struct Leaf {
    hash: Hash,
    entry: Result<Entry, DecodeError>,
    canonical: bool,
}

impl Leaf {
    /// The leaf hash of `bytes` (R-LOG-1), the entry they decode to
    /// (strictly, R-ENTRY-1), and whether it re-encodes to exactly these
    /// bytes (R-AUDIT-5).
    pub fn decode(bytes: &[u8]) -> Self {
        Self::read(bytes, true)
    }

    /// As [`Leaf::decode`], for bytes this crate's encoder wrote (a ledger's
    /// own store, R-STORE-6): they are not encoded again to be compared, and
    /// count as canonical.
    pub fn decode_stored(bytes: &[u8]) -> Self {
        Self::read(bytes, false)
    }

    fn read(bytes: &[u8], check_canonical: bool) -> Self {
        let hash = merkle::leaf_hash(bytes);
        match Entry::decode(bytes) {
            Ok(entry) => {
                let canonical = !check_canonical || entry.encode().is_ok_and(|b| b == bytes);
                Self {
                    hash,
                    entry: Ok(entry),
                    canonical,
                }
            }
            Err(e) => Self {
                hash,
                entry: Err(e),
                canonical: false,
            },
        }
    }

    /// The leaf hash.
    pub fn hash(&self) -> &Hash {
        &self.hash
    }

    /// The entry, or why the bytes do not decode.
    ///
    /// # Errors
    /// The [`DecodeError`].
    pub fn entry(&self) -> Result<&Entry, &DecodeError> {
        self.entry.as_ref()
    }
}

/// Where an entry's stateless checks (R-RULE-3: a pledge's token under its
/// campaign's logged key, and its pledge-key signature) were run.
#[derive(Debug)]
// Moved once per entry and never stored: boxing the verdict would cost an
// allocation per pledge for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Verification {
    /// Nowhere yet: they run here, under the key the campaign logged, after
    /// the stateful rules pass (SPEC §8's order, as
    /// [`LedgerState::verify_and_apply`]).
    Now,
    /// Beforehand, e.g. in parallel: the outcome of [`VerifiedEntry::verify`]
    /// on this pledge under the key of its campaign's first CampaignOpened.
    /// Used only for a pledge whose campaign was opened by an earlier entry
    /// (a parallel pass may have used an opening later in the log);
    /// otherwise the entry is judged as with [`Verification::Now`] (an
    /// amendment's key is known only once its pledge is replayed).
    Done(Result<VerifiedEntry, RuleError>),
    /// Before the entry was stored or cached by whoever replays it now: the
    /// ledger's own store (R-STORE-6), an auditor's verified cache
    /// (R-AUDIT-13). Never for bytes from anyone else.
    Previously,
}

/// Why an entry was not applied: each stateless check that failed and the
/// first stateful rule it breaks, at least one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    stateless: Vec<RuleError>,
    rule: Option<RuleError>,
}

impl Refusal {
    fn rule(e: RuleError) -> Self {
        Self {
            stateless: Vec::new(),
            rule: Some(e),
        }
    }

    /// The stateless checks that failed (R-RULE-3), in order:
    /// [`RuleError::BadToken`], [`RuleError::BadPledgeSignature`].
    pub fn stateless(&self) -> &[RuleError] {
        &self.stateless
    }

    /// Every failure in the order an auditor reports them (R-AUDIT-12): the
    /// stateless checks, then the stateful rule.
    pub fn errors(&self) -> impl Iterator<Item = &RuleError> {
        self.stateless.iter().chain(&self.rule)
    }

    /// The failure [`LedgerState::verify_and_apply`] names: the stateful
    /// rule, else the first stateless check.
    pub fn first(&self) -> Option<&RuleError> {
        self.rule.as_ref().or(self.stateless.first())
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.first() {
            Some(e) => e.fmt(f),
            None => f.write_str("refused"),
        }
    }
}

/// What replaying one entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The entry's index in the log.
    pub index: u64,
    /// What it is, or why it does not decode (then it was not applied).
    pub entry: Result<Judged, DecodeError>,
}

/// A replayed entry that decoded, and what the rules said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// Its kind.
    pub kind: EntryKind,
    /// Its campaign.
    pub campaign: CampaignId,
    /// False if it re-encodes to other bytes (R-AUDIT-5); it is judged
    /// by the rules all the same.
    pub canonical: bool,
    /// A pledge whose stateless checks ran in this replay (here or in the
    /// caller's pass) and passed.
    pub checked: bool,
    /// `None` if the rules accepted it; else why not.
    pub refused: Option<Refusal>,
}

/// Why a replayed entry was not applied, for a caller that stops there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The bytes do not decode.
    #[error(transparent)]
    Undecodable(DecodeError),
    /// The entry breaks the rules.
    #[error("{0}")]
    Refused(Refusal),
}

impl Replayed {
    /// `Ok` if the entry was applied.
    ///
    /// # Errors
    /// [`ReplayError`].
    pub fn into_result(self) -> Result<Judged, ReplayError> {
        match self.entry {
            Err(e) => Err(ReplayError::Undecodable(e)),
            Ok(Judged {
                refused: Some(r), ..
            }) => Err(ReplayError::Refused(r)),
            Ok(d) => Ok(d),
        }
    }
}

/// What a replay leaves: the rules state, the tree and the bookkeeping of
/// [`Replayer`].
#[derive(Debug, Default)]
pub struct ReplayState<T = Tree> {
    /// The rules state after every entry replayed.
    pub ledger: LedgerState,
    /// The tree of every leaf replayed.
    pub tree: T,
    /// Index of each campaign's (applied) CampaignOpened entry.
    pub opened: HashMap<CampaignId, u64>,
    /// Index of each campaign's (applied) CampaignClosed entry.
    pub closed: HashMap<CampaignId, u64>,
    /// Each campaign's last change size (R-TALLY-12): the size just after
    /// its last applied entry other than its CampaignClosed.
    pub last_change: HashMap<CampaignId, u64>,
}

/// Replays a log fed entry by entry in log order; see the module docs. `T`
/// is the tree the leaves go to: [`Tree`] (frontier only) or
/// [`merkle::MemoryHashes`] (every hash, for proofs).
#[derive(Debug)]
pub struct Replayer<T = Tree> {
    state: ReplayState<T>,
    /// The key of each pledge applied, to verify the amendments and
    /// withdrawals judged in this replay; `None` when every entry is
    /// [`Verification::Previously`].
    keys: Option<PledgeKeys>,
}

impl<T: GrowingTree + Default> Default for Replayer<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: GrowingTree + Default> Replayer<T> {
    /// A replay of the empty log that verifies what it is asked to (it keeps
    /// every pledge's key, 64 bytes a pledge, for the amendments).
    pub fn new() -> Self {
        Self {
            state: ReplayState::default(),
            keys: Some(PledgeKeys::new()),
        }
    }

    /// A replay of the empty log whose every entry will be
    /// [`Verification::Previously`] (a ledger's own store at start-up): it
    /// keeps no pledge keys, so an amendment or withdrawal judged otherwise
    /// is refused as [`RuleError::UnknownPledge`].
    pub fn of_verified_log() -> Self {
        Self {
            state: ReplayState::default(),
            keys: None,
        }
    }
}

impl<T: GrowingTree> Replayer<T> {
    /// Entries replayed so far: the size of the tree.
    pub fn size(&self) -> u64 {
        self.state.tree.size()
    }

    /// The rules state.
    pub fn ledger(&self) -> &LedgerState {
        &self.state.ledger
    }

    /// The tree.
    pub fn tree(&self) -> &T {
        &self.state.tree
    }

    /// Each campaign's last change size so far (R-TALLY-12).
    pub fn last_change(&self) -> &HashMap<CampaignId, u64> {
        &self.state.last_change
    }

    /// A funding campaign's joint tally at the current size (R-FUND-6);
    /// `None` if it was not opened or has no funding extension.
    pub fn funding_tally(
        &self,
        id: &CampaignId,
    ) -> Option<Result<crate::funding::FundingSnapshot, TallyError>> {
        self.state
            .ledger
            .campaign(id)
            .and_then(|c| c.funding.as_ref())
            .map(crate::funding::FundingTally::snapshot)
    }

    /// A campaign's tally of its kind at the current size (R-TALLY-5 or
    /// R-FUND-6); `None` if it was not opened.
    pub fn campaign_tally(
        &self,
        id: &CampaignId,
    ) -> Option<Result<crate::funding::CampaignSnapshot, TallyError>> {
        self.state.ledger.campaign(id).map(|c| c.snapshot())
    }

    /// A campaign's tally at the current size; `None` if it was not opened.
    pub fn tally(&self, id: &CampaignId) -> Option<Result<TallySnapshot, TallyError>> {
        self.state.ledger.campaign(id).map(|c| c.tally.snapshot())
    }

    /// Everything the replay built.
    pub fn into_state(self) -> ReplayState<T> {
        self.state
    }

    /// [`Leaf::decode`] then [`Replayer::replay`].
    ///
    /// # Errors
    /// [`TreeError::Full`].
    pub fn replay_bytes(
        &mut self,
        bytes: &[u8],
        verification: Verification,
    ) -> Result<Replayed, TreeError> {
        self.replay(Leaf::decode(bytes), verification)
    }

    /// Replays the next entry of the log: appends its leaf, then applies it
    /// if it decodes and passes the rules.
    ///
    /// # Errors
    /// [`TreeError::Full`]: nothing changed.
    pub fn replay(
        &mut self,
        leaf: Leaf,
        verification: Verification,
    ) -> Result<Replayed, TreeError> {
        let index = self.state.tree.append_leaf(leaf.hash)?;
        let entry = match leaf.entry {
            Err(e) => Err(e),
            Ok(entry) => {
                let kind = entry.kind();
                let campaign = entry.campaign();
                let (checked, refused) = self.judge(entry, &campaign, verification);
                if refused.is_none() {
                    self.applied(kind, campaign, index);
                }
                Ok(Judged {
                    kind,
                    campaign,
                    canonical: leaf.canonical,
                    checked,
                    refused,
                })
            }
        };
        Ok(Replayed { index, entry })
    }

    /// Verifies (as `verification` says) and applies `entry`: whether a
    /// pledge's stateless checks ran and passed, and why it was refused.
    fn judge(
        &mut self,
        entry: Entry,
        campaign: &CampaignId,
        verification: Verification,
    ) -> (bool, Option<Refusal>) {
        let verdict = match verification {
            Verification::Previously => {
                return (
                    false,
                    self.apply(&VerifiedEntry::previously_verified(entry)),
                );
            }
            Verification::Done(v)
                if matches!(entry, Entry::Pledge(_) | Entry::SealedPledge(_))
                    && self.state.opened.contains_key(campaign) =>
            {
                v
            }
            Verification::Done(_) | Verification::Now => {
                // SPEC §8's order: the stateful rules, then the signatures.
                if let Err(e) = self.state.ledger.check(&entry) {
                    return (false, Some(Refusal::rule(e)));
                }
                let no_keys = PledgeKeys::new();
                let keys = self.keys.as_ref().unwrap_or(&no_keys);
                self.state.ledger.verify(entry.clone(), keys)
            }
        };
        match (verdict, &entry) {
            (Ok(v), _) => (v.entry().kind() == EntryKind::Pledge, self.apply(&v)),
            (Err(e), Entry::Pledge(p)) => (false, Some(self.refuse_pledge(p, &entry, e))),
            (Err(e), _) => (false, Some(Refusal::rule(e))),
        }
    }

    fn apply(&mut self, v: &VerifiedEntry) -> Option<Refusal> {
        match self.state.ledger.apply(v) {
            Ok(()) => {
                if let Some(keys) = &mut self.keys {
                    keys.remember(v.entry());
                }
                None
            }
            Err(e) => Some(Refusal::rule(e)),
        }
    }

    /// A pledge that failed its stateless checks with `failed`: each one
    /// that fails under its campaign's logged key, and the first stateful
    /// rule it breaks (R-AUDIT-12).
    fn refuse_pledge(&self, p: &Pledge, entry: &Entry, failed: RuleError) -> Refusal {
        let key = self
            .state
            .ledger
            .campaign(&p.campaign)
            .map(|c| &c.issuer_key);
        let mut stateless = Vec::new();
        if key.is_none_or(|k| p.token.verify(k, &p.campaign).is_err()) {
            stateless.push(RuleError::BadToken);
        }
        if !p.verify_pledge_signature() {
            stateless.push(RuleError::BadPledgeSignature);
        }
        if stateless.is_empty() {
            // A verdict from elsewhere that these checks do not reproduce.
            stateless.push(failed);
        }
        Refusal {
            stateless,
            rule: self.state.ledger.check(entry).err(),
        }
    }

    /// Openings, closings and last change sizes (R-TALLY-12): every applied
    /// entry of a campaign but its CampaignClosed and its CampaignUpdated
    /// entries (R-RULE-14: an update changes no tally) changes its tally.
    fn applied(&mut self, kind: EntryKind, campaign: CampaignId, index: u64) {
        let s = &mut self.state;
        match kind {
            EntryKind::CampaignClosed => {
                s.closed.insert(campaign, index);
            }
            EntryKind::CampaignUpdated => {}
            EntryKind::CampaignOpened => {
                s.opened.insert(campaign, index);
                s.last_change.insert(campaign, index + 1);
            }
            _ => {
                s.last_change.insert(campaign, index + 1);
            }
        }
    }
}
