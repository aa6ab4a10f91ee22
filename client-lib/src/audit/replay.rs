//! Rebuilding the log from entry bundles: strict decoding and leaf hashes,
//! then token and pledge-key signatures checked in parallel (rayon), then
//! every entry replayed in order through the protocol's own [`Replayer`]
//! (its Merkle tree and [`LedgerState`], SPEC R-AUDIT-4…R-AUDIT-9), every
//! failure reported, capturing campaign tallies at the sizes tally
//! statements name (R-AUDIT-10).

use std::collections::{BTreeMap, HashMap};

use pledge_protocol::entry::{Entry, EntryKind};
use pledge_protocol::funding::CampaignSnapshot;
use pledge_protocol::hash::{CampaignId, Hash};
use pledge_protocol::ledger::{LedgerState, RuleError, VerifiedEntry};
use pledge_protocol::merkle::MemoryHashes;
use pledge_protocol::replay::{Leaf, Replayed, Replayer, Verification};
use pledge_protocol::tile::{BundleId, FULL_WIDTH, decode_bundle};
use pledge_protocol::token::IssuerPublicKey;
use rayon::prelude::*;
use tokio::sync::mpsc;

use super::report::{Counts, Failure, FailureKind};
use super::state::StateDir;
use super::{AuditError, StateError};

/// Entries decoded and verified together (one rayon pass each).
const BATCH_ENTRIES: usize = 8192;

/// One entry bundle on its way to the replay.
#[derive(Debug)]
pub(crate) enum BundleItem {
    /// The bundle's bytes.
    Data {
        /// Which bundle.
        id: BundleId,
        /// Its bytes, as served or cached.
        bytes: Vec<u8>,
        /// Read from the state directory's cache.
        cached: bool,
    },
    /// The bundle could not be had: the replay stops here (a gap).
    Missing(Failure),
}

/// What the replay needs besides the bundles.
#[derive(Debug)]
pub(crate) struct ReplayInput {
    /// Entries below this index had their token and pledge signatures checked
    /// by an earlier run (bound to the pinned checkpoint); they are applied
    /// as [`VerifiedEntry::previously_verified`].
    pub skip_verified_below: u64,
    /// The cache to write full fetched bundles to.
    pub cache: Option<StateDir>,
    /// Cached bundles `0..n` must hash to this root, else the cache is corrupt.
    pub cache_check: Option<(u64, Hash)>,
    /// Bundles `0..n` are in the verified cache; those among them that had to
    /// be fetched are not written back (they are not verified yet when they
    /// arrive), so a lying server cannot poison the cache.
    pub cached_bundles: u64,
    /// Tally snapshots to capture: checkpoint size → campaigns.
    pub wants: BTreeMap<u64, Vec<CampaignId>>,
    /// The size of the checkpoint read before the tally statements: each
    /// campaign's last change size (R-TALLY-12) is captured there.
    pub reference: u64,
}

/// What the replay produced.
#[derive(Debug)]
pub(crate) struct ReplayOutcome {
    /// The rules state after every entry.
    pub ledger: LedgerState,
    /// Every complete-subtree hash of the rebuilt tree.
    pub tree: MemoryHashes,
    /// Failures found, in log order.
    pub failures: Vec<Failure>,
    /// Counts by kind.
    pub counts: Counts,
    /// Captured tallies: `None` if the campaign did not exist at that size.
    pub snapshots: HashMap<(u64, CampaignId), Option<CampaignSnapshot>>,
    /// Sealed campaigns' entry counts at the sizes of their statements (R-SEAL-80).
    pub sealed_entries: HashMap<(u64, CampaignId), Option<u64>>,
    /// True if a bundle was missing or malformed: the tree is incomplete.
    pub gap: bool,
    /// Entries `0..n` decoded and passed their stateless checks.
    pub verified_prefix: u64,
    /// Bundles `0..n` are full and on disk in the cache.
    pub cached_prefix: u64,
    /// Index of each campaign's (first, applied) CampaignOpened entry.
    pub opened: HashMap<CampaignId, u64>,
    /// Each campaign's last change size (R-TALLY-12) after every entry replayed.
    pub last_change: HashMap<CampaignId, u64>,
    /// The same at the reference size, if the replay reached it.
    pub last_change_at_reference: Option<HashMap<CampaignId, u64>>,
    /// Index of each campaign's last applied CampaignUpdated entry
    /// (R-AUDIT-16).
    pub last_update: HashMap<CampaignId, u64>,
}

/// One decoded entry of a batch.
struct Decoded {
    index: u64,
    /// Read from the state directory's cache (bytes verified by an earlier run).
    cached: bool,
    leaf: Leaf,
}

struct Replay {
    input: ReplayInput,
    replayer: Replayer<MemoryHashes>,
    failures: Vec<Failure>,
    counts: Counts,
    snapshots: HashMap<(u64, CampaignId), Option<CampaignSnapshot>>,
    sealed_entries: HashMap<(u64, CampaignId), Option<u64>>,
    keys: HashMap<CampaignId, IssuerPublicKey>,
    verified_prefix: Option<u64>,
    cached_prefix: u64,
    cache_open: bool,
    /// Some bundle inside the cached range was fetched (its file was missing).
    prefix_fetched: bool,
    last_change_at_reference: Option<HashMap<CampaignId, u64>>,
    last_update: HashMap<CampaignId, u64>,
}

/// Runs the replay on the calling (blocking) thread, consuming bundles from
/// `rx` in log order, with CPU-heavy steps on `pool`.
///
/// # Errors
/// [`AuditError::State`] if the cache is corrupt or cannot be written.
pub(crate) fn run(
    mut rx: mpsc::Receiver<BundleItem>,
    input: ReplayInput,
    pool: &rayon::ThreadPool,
) -> Result<ReplayOutcome, AuditError> {
    let mut r = Replay {
        input,
        replayer: Replayer::new(),
        failures: Vec::new(),
        counts: Counts::default(),
        snapshots: HashMap::new(),
        sealed_entries: HashMap::new(),
        keys: HashMap::new(),
        verified_prefix: None,
        cached_prefix: 0,
        cache_open: true,
        prefix_fetched: false,
        last_change_at_reference: None,
        last_update: HashMap::new(),
    };
    r.capture(0);
    let mut gap = false;
    let mut batch: Vec<(BundleId, Vec<u8>, bool)> = Vec::new();
    let mut batch_entries = 0usize;
    while let Some(item) = rx.blocking_recv() {
        match item {
            BundleItem::Data { id, bytes, cached } => {
                batch_entries += usize::from(id.width());
                batch.push((id, bytes, cached));
                if batch_entries >= BATCH_ENTRIES {
                    if !r.process(std::mem::take(&mut batch), pool)? {
                        gap = true;
                        break;
                    }
                    batch_entries = 0;
                }
            }
            BundleItem::Missing(f) => {
                if !r.process(std::mem::take(&mut batch), pool)? {
                    gap = true;
                    break;
                }
                r.failures.push(f);
                gap = true;
                break;
            }
        }
    }
    if !gap && !batch.is_empty() && !r.process(batch, pool)? {
        gap = true;
    }
    if let Some(cache) = &r.input.cache {
        cache.sync_bundles()?;
    }
    let replayed = r.replayer.size();
    r.counts.replayed = replayed;
    let state = r.replayer.into_state();
    Ok(ReplayOutcome {
        verified_prefix: r.verified_prefix.unwrap_or(replayed),
        ledger: state.ledger,
        tree: state.tree,
        failures: r.failures,
        counts: r.counts,
        snapshots: r.snapshots,
        sealed_entries: r.sealed_entries,
        gap,
        cached_prefix: r.cached_prefix,
        opened: state.opened,
        last_change: state.last_change,
        last_change_at_reference: r.last_change_at_reference,
        last_update: r.last_update,
    })
}

impl Replay {
    /// Processes bundles; `Ok(false)` if one was malformed (a gap).
    fn process(
        &mut self,
        batch: Vec<(BundleId, Vec<u8>, bool)>,
        pool: &rayon::ThreadPool,
    ) -> Result<bool, AuditError> {
        let mut raw: Vec<(u64, &[u8], bool)> = Vec::new();
        let mut malformed = None;
        for (id, bytes, cached) in &batch {
            if *cached {
                self.counts.bundles_cached += 1;
            } else {
                self.counts.bundles_fetched += 1;
                if id.index() < self.input.cached_bundles {
                    self.prefix_fetched = true;
                }
            }
            let (start, _) = id.leaf_range();
            match decode_bundle(bytes, id) {
                Ok(entries) => {
                    raw.extend((start..).zip(entries).map(|(i, e)| (i, e, *cached)));
                    self.note_cache(id, bytes, *cached)?;
                }
                Err(e) => {
                    malformed = Some(Failure::at(
                        FailureKind::BundleMalformed,
                        start,
                        format!("entry bundle {}: {e}", id.path()),
                    ));
                    break;
                }
            }
        }
        let decoded: Vec<Decoded> = pool.install(|| {
            raw.par_iter()
                .map(|&(index, bytes, cached)| Decoded {
                    index,
                    cached,
                    leaf: Leaf::decode(bytes),
                })
                .collect()
        });
        // Keys of campaigns opened so far (the ledger uses the first opening;
        // a later duplicate is refused by R-RULE-1).
        for d in &decoded {
            if let Ok(Entry::CampaignOpened(o)) = d.leaf.entry() {
                self.keys
                    .entry(o.definition.id())
                    .or_insert_with(|| o.issuer_key.clone());
            }
        }
        let skip = self.input.skip_verified_below;
        let keys = &self.keys;
        // Joint keys of sealed campaigns logged before this batch (a key
        // completed inside the batch leaves its pledges to the serial path).
        let ledger = self.replayer.ledger();
        // SPEC R-AUDIT-6: stateless checks in parallel on all cores.
        let verdicts: Vec<Option<Result<VerifiedEntry, RuleError>>> = pool.install(|| {
            decoded
                .par_iter()
                .map(|d| match d.leaf.entry() {
                    // Only bytes read from the verified cache skip the checks.
                    Ok(e @ Entry::Pledge(p)) if d.index >= skip || !d.cached => keys
                        .get(&p.campaign)
                        .map(|k| VerifiedEntry::verify(e.clone(), Some(k), None)),
                    // SPEC R-SEAL-32: a sealed pledge's proofs, the costly
                    // part of a sealed campaign's audit, in parallel too.
                    Ok(e @ Entry::SealedPledge(p)) if d.index >= skip || !d.cached => {
                        match (keys.get(&p.campaign), ledger.joint_key(&p.campaign)) {
                            (Some(k), Some(joint)) => Some(VerifiedEntry::verify_sealed(
                                e.clone(),
                                Some(k),
                                None,
                                Some(joint),
                            )),
                            _ => None,
                        }
                    }
                    _ => None,
                })
                .collect()
        });
        for (d, verdict) in decoded.into_iter().zip(verdicts) {
            self.apply(d, verdict)?;
        }
        if let Some(f) = malformed {
            self.failures.push(f);
            return Ok(false);
        }
        Ok(true)
    }

    /// Writes a fetched full bundle to the cache and tracks the cached prefix.
    fn note_cache(&mut self, id: &BundleId, bytes: &[u8], cached: bool) -> Result<(), AuditError> {
        let Some(cache) = &self.input.cache else {
            return Ok(());
        };
        if !id.is_full() || !self.cache_open || id.index() != self.cached_prefix {
            self.cache_open = false;
            return Ok(());
        }
        if !cached {
            if id.index() < self.input.cached_bundles {
                self.cache_open = false;
                return Ok(());
            }
            cache.write_bundle(id.index(), bytes)?;
        }
        self.cached_prefix += 1;
        Ok(())
    }

    fn apply(
        &mut self,
        d: Decoded,
        verdict: Option<Result<VerifiedEntry, RuleError>>,
    ) -> Result<(), AuditError> {
        let index = d.index;
        let verification = match verdict {
            // SPEC R-AUDIT-6: used only for a campaign opened by an earlier
            // entry (the parallel pass may have seen an opening later in its
            // batch).
            Some(v) => Verification::Done(v),
            // A pledge of the verified cache, checked by an earlier run bound
            // to the pinned checkpoint.
            None if d.cached
                && index < self.input.skip_verified_below
                && matches!(
                    d.leaf.entry(),
                    Ok(Entry::Pledge(_) | Entry::SealedPledge(_))
                ) =>
            {
                Verification::Previously
            }
            // Not a pledge (no stateless part), or a pledge of a campaign
            // not opened earlier (the rules refuse it).
            None => Verification::Now,
        };
        let Replayed { entry, .. } = self
            .replayer
            .replay(d.leaf, verification)
            .map_err(|e| AuditError::Internal(format!("tree: {e}")))?;
        self.check_cache_root()?;
        match entry {
            Err(e) => {
                self.unverified(index);
                self.failures.push(Failure::at(
                    FailureKind::EntryUndecodable,
                    index,
                    format!("entry does not decode: {e}"),
                ));
            }
            Ok(judged) => {
                if !judged.canonical {
                    // SPEC R-AUDIT-5
                    self.unverified(index);
                    self.failures.push(
                        Failure::at(
                            FailureKind::EntryNotCanonical,
                            index,
                            "entry decodes but re-encodes to different bytes",
                        )
                        .campaign(&judged.campaign),
                    );
                }
                self.count(judged.kind);
                if judged.kind == EntryKind::CampaignUpdated && judged.refused.is_none() {
                    self.last_update.insert(judged.campaign, index);
                }
                if judged.checked {
                    self.counts.pledges_verified += 1;
                }
                if let Some(refusal) = &judged.refused {
                    if !refusal.stateless().is_empty() {
                        self.unverified(index);
                    }
                    // SPEC R-AUDIT-12: each stateless check that fails is
                    // reported, and so is the first ledger rule the entry
                    // breaks; the entry is not applied.
                    for e in refusal.errors() {
                        self.failures
                            .push(rule_failure(judged.kind, &judged.campaign, index, e));
                    }
                }
            }
        }
        self.capture(index + 1);
        Ok(())
    }

    fn unverified(&mut self, index: u64) {
        if self.verified_prefix.is_none() {
            self.verified_prefix = Some(index);
        }
    }

    fn count(&mut self, kind: EntryKind) {
        let c = &mut self.counts;
        match kind {
            EntryKind::CampaignOpened => c.campaigns_opened += 1,
            EntryKind::Pledge => c.pledges += 1,
            EntryKind::PledgeAmended => c.amendments += 1,
            EntryKind::PledgeWithdrawn => c.withdrawals += 1,
            EntryKind::CampaignClosed => c.campaigns_closed += 1,
            // SPEC R-AUDIT-17
            EntryKind::CampaignUpdated => c.campaigns_updated += 1,
            _ => {}
        }
    }

    /// SPEC R-AUDIT-13: cached bundles are used only if they hash to the root
    /// recorded when they were cached.
    fn check_cache_root(&mut self) -> Result<(), AuditError> {
        let Some((bundles, root)) = self.input.cache_check else {
            return Ok(());
        };
        let tree = self.replayer.tree();
        if tree.size() == bundles.saturating_mul(u64::from(FULL_WIDTH)) {
            self.input.cache_check = None;
            if tree.root() != root {
                if self.prefix_fetched {
                    // Some of these entries came from the server this time:
                    // it now serves other entries than those verified before.
                    self.failures.push(Failure::new(
                        FailureKind::Inconsistent,
                        format!(
                            "the first {} entries served now differ from those verified earlier: \
                             history was rewritten",
                            tree.size()
                        ),
                    ));
                } else {
                    return Err(AuditError::State {
                        path: self
                            .input
                            .cache
                            .as_ref()
                            .map_or_else(|| "bundles".into(), |c| c.path().join("bundles")),
                        source: StateError::CacheAltered,
                    });
                }
            }
        }
        Ok(())
    }

    /// Records the tallies wanted at `size` (entries `0..size` applied).
    fn capture(&mut self, size: u64) {
        if size == self.input.reference {
            self.last_change_at_reference = Some(self.replayer.last_change().clone());
        }
        let Some(ids) = self.input.wants.get(&size) else {
            return;
        };
        for id in ids {
            let snap = self.replayer.campaign_tally(id).and_then(Result::ok);
            self.snapshots.insert((size, *id), snap);
            // SPEC R-SEAL-80: a sealed campaign's entry count at that size.
            let sealed = self
                .replayer
                .ledger()
                .campaign(id)
                .and_then(|c| c.sealed.as_ref())
                .map(|s| s.entries);
            self.sealed_entries.insert((size, *id), sealed);
        }
    }
}

fn kind_word(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::CampaignOpened => "CampaignOpened",
        EntryKind::Pledge => "pledge",
        EntryKind::PledgeAmended => "amendment",
        EntryKind::PledgeWithdrawn => "withdrawal",
        EntryKind::CampaignClosed => "CampaignClosed",
        EntryKind::CampaignUpdated => "CampaignUpdated",
        _ => "entry",
    }
}

/// Maps a ledger rule error to the auditor's failure kinds. SPEC R-AUDIT-6…9, 11.
fn rule_failure(entry: EntryKind, campaign: &CampaignId, index: u64, e: &RuleError) -> Failure {
    let what = kind_word(entry);
    let (kind, detail) = match e {
        RuleError::BadToken => (
            FailureKind::BadToken,
            format!(
                "{what}: token signature does not verify under the campaign's logged issuer key"
            ),
        ),
        RuleError::BadPledgeSignature => (
            FailureKind::BadPledgeSignature,
            format!("{what}: not signed by the pledge's key"),
        ),
        RuleError::DoubleSpend => (
            FailureKind::DuplicateNullifier,
            format!("{what}: its nullifier was already spent by an earlier pledge"),
        ),
        RuleError::UnknownCampaign => (
            FailureKind::OutsideOpenWindow,
            format!("{what} for a campaign with no earlier CampaignOpened entry"),
        ),
        RuleError::CampaignClosed => (
            FailureKind::OutsideOpenWindow,
            format!("{what} after its campaign's CampaignClosed entry"),
        ),
        RuleError::CampaignExists => (
            FailureKind::DuplicateCampaign,
            "second CampaignOpened entry for this campaign id".to_owned(),
        ),
        RuleError::ThresholdOutOfRange => (
            FailureKind::ThresholdOutOfRange,
            format!("{what}: threshold outside the campaign's allowed range"),
        ),
        RuleError::FundingNotAllowed | RuleError::SupportNotOnMenu => {
            (FailureKind::ThresholdOutOfRange, format!("{what}: {e}"))
        }
        RuleError::UnknownPledge => (
            FailureKind::UnknownPledge,
            format!("{what} of a nullifier with no pledge in this campaign"),
        ),
        RuleError::Withdrawn => (
            FailureKind::AfterWithdrawal,
            format!("{what} of a pledge already withdrawn"),
        ),
        RuleError::BadSequence { expected, got } => (
            FailureKind::BadSequence,
            format!("{what} with sequence number {got}, expected {expected}"),
        ),
        RuleError::TallyMismatch => (
            FailureKind::ClosingTallyMismatch,
            "CampaignClosed commits to a tally that differs from the replayed one".to_owned(),
        ),
        RuleError::MorePledgesThanTokens { pledges, tokens } => (
            FailureKind::MorePledgesThanTokens,
            format!("{pledges} pledges but the issuer reported only {tokens} tokens"),
        ),
        // SPEC R-AUDIT-15
        RuleError::BadUpdateNumber { expected, got } => (
            FailureKind::BadUpdate,
            format!("{what} with update number {got}, expected {expected}"),
        ),
        RuleError::DeadlineNotLater | RuleError::DeadlineTooLate | RuleError::TooManyLanguages => {
            (FailureKind::BadUpdate, format!("{what}: {e}"))
        }
        other => (FailureKind::RuleViolation, format!("{what}: {other}")),
    };
    Failure::at(kind, index, detail).campaign(campaign)
}
