//! What an audit found: counts, campaigns, and every failure with its kind,
//! entry index and detail. Serialised as JSON by `pledge audit --json`.

use std::fmt;

use serde::Serialize;

/// What kind of rule a failure breaks. The snake-case name is stable: scripts
/// match on it (`"kind": "tile_mismatch"`). SPEC R-AUDIT-2…R-AUDIT-12.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// R-AUDIT-2: the checkpoint is not a well-formed signed checkpoint note.
    CheckpointMalformed,
    /// R-AUDIT-2: the checkpoint carries no valid signature by the log key.
    CheckpointSignature,
    /// R-AUDIT-2: fewer than the required witnesses cosigned the checkpoint,
    /// or a configured witness's cosignature is invalid.
    WitnessQuorum,
    /// R-AUDIT-3: the tree is smaller than the checkpoint verified before.
    TreeShrank,
    /// R-AUDIT-3: a checkpoint of the same size as the one verified before
    /// has a different root (a fork).
    CheckpointFork,
    /// R-AUDIT-3: the new tree does not extend the tree verified before.
    Inconsistent,
    /// R-AUDIT-4: a tile or entry bundle the checkpoint covers was not served.
    Unavailable,
    /// R-AUDIT-4: an entry bundle does not split into its declared entries.
    BundleMalformed,
    /// R-AUDIT-4: a served tile has the wrong length.
    TileMalformed,
    /// R-AUDIT-4: a served hash tile differs from the one recomputed from the
    /// entries (which do hash to the checkpoint root).
    TileMismatch,
    /// R-AUDIT-4: the entries do not hash to the checkpoint root.
    RootMismatch,
    /// R-AUDIT-4: an entry in a bundle does not hash to the leaf hash the
    /// signed tree commits to (the bundle was altered).
    EntryMismatch,
    /// R-AUDIT-5: an entry does not decode.
    EntryUndecodable,
    /// R-AUDIT-5: an entry decodes but is not the canonical encoding of its value.
    EntryNotCanonical,
    /// R-AUDIT-6: a pledge's token does not verify under its campaign's logged key.
    BadToken,
    /// R-AUDIT-6: a pledge, amendment or withdrawal is not signed by its pledge key.
    BadPledgeSignature,
    /// R-AUDIT-7: a nullifier is spent twice.
    DuplicateNullifier,
    /// R-AUDIT-8: an entry for a campaign that is not open (not yet opened,
    /// or already closed).
    OutsideOpenWindow,
    /// R-AUDIT-8: a second CampaignOpened for one campaign id.
    DuplicateCampaign,
    /// R-AUDIT-8: a threshold outside the campaign's allowed range.
    ThresholdOutOfRange,
    /// R-AUDIT-8: an amendment or withdrawal of a nullifier with no pledge in
    /// the campaign.
    UnknownPledge,
    /// R-AUDIT-8: an amendment or withdrawal of a withdrawn pledge.
    AfterWithdrawal,
    /// R-AUDIT-8: an amendment or withdrawal out of sequence.
    BadSequence,
    /// R-AUDIT-9: a CampaignClosed entry whose tally differs from the replayed one.
    ClosingTallyMismatch,
    /// R-AUDIT-11: a campaign with more pledges than its issuer reported tokens.
    MorePledgesThanTokens,
    /// R-AUDIT-15: a CampaignUpdated entry out of sequence, with a deadline
    /// not later than the effective one or more than 90 days after the
    /// original, or with too many languages (R-RULE-11…R-RULE-13).
    BadUpdate,
    /// Another ledger rule (an entry the rules refuse for a reason not listed).
    RuleViolation,
    /// R-AUDIT-10: a tally statement without a valid log signature.
    TallySignature,
    /// R-AUDIT-10: a tally statement that does not parse, names another log or
    /// campaign, or claims a size beyond the published checkpoint.
    TallyMalformed,
    /// R-AUDIT-10: a tally statement that differs from the tally replayed at
    /// its checkpoint size.
    TallyMismatch,
    /// R-AUDIT-10: the server lists a campaign that the log does not contain,
    /// or serves no tally statement for a listed campaign.
    CampaignNotInLog,
    /// R-AUDIT-10: a tally statement bound to a size before the campaign's
    /// last change (R-TALLY-12): frozen or replayed.
    TallyStale,
    /// R-AUDIT-14: a campaign opened in the log is missing from `/v1/campaigns`.
    CampaignNotListed,
    /// R-AUDIT-14: a campaign of the log that is not listed serves no tally
    /// statement either.
    TallyMissing,
    /// R-AUDIT-14: `/v1/campaigns` shows an `issuer_key` other than the one its
    /// CampaignOpened entry logged.
    IssuerKeyMismatch,
    /// R-AUDIT-16: `/v1/campaigns` shows a deadline or texts other than those
    /// the campaign's CampaignUpdated entries give.
    CampaignViewMismatch,
    /// R-AUDIT-1: `/v1/log/key` serves another key than the one the audit trusts.
    LogKeyMismatch,
}

impl FailureKind {
    /// The stable snake-case name (as in the JSON report).
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::CheckpointMalformed => "checkpoint_malformed",
            FailureKind::CheckpointSignature => "checkpoint_signature",
            FailureKind::WitnessQuorum => "witness_quorum",
            FailureKind::TreeShrank => "tree_shrank",
            FailureKind::CheckpointFork => "checkpoint_fork",
            FailureKind::Inconsistent => "inconsistent",
            FailureKind::Unavailable => "unavailable",
            FailureKind::BundleMalformed => "bundle_malformed",
            FailureKind::TileMalformed => "tile_malformed",
            FailureKind::TileMismatch => "tile_mismatch",
            FailureKind::RootMismatch => "root_mismatch",
            FailureKind::EntryMismatch => "entry_mismatch",
            FailureKind::EntryUndecodable => "entry_undecodable",
            FailureKind::EntryNotCanonical => "entry_not_canonical",
            FailureKind::BadToken => "bad_token",
            FailureKind::BadPledgeSignature => "bad_pledge_signature",
            FailureKind::DuplicateNullifier => "duplicate_nullifier",
            FailureKind::OutsideOpenWindow => "outside_open_window",
            FailureKind::DuplicateCampaign => "duplicate_campaign",
            FailureKind::ThresholdOutOfRange => "threshold_out_of_range",
            FailureKind::UnknownPledge => "unknown_pledge",
            FailureKind::AfterWithdrawal => "after_withdrawal",
            FailureKind::BadSequence => "bad_sequence",
            FailureKind::ClosingTallyMismatch => "closing_tally_mismatch",
            FailureKind::MorePledgesThanTokens => "more_pledges_than_tokens",
            FailureKind::BadUpdate => "bad_update",
            FailureKind::RuleViolation => "rule_violation",
            FailureKind::TallySignature => "tally_signature",
            FailureKind::TallyMalformed => "tally_malformed",
            FailureKind::TallyMismatch => "tally_mismatch",
            FailureKind::CampaignNotInLog => "campaign_not_in_log",
            FailureKind::TallyStale => "tally_stale",
            FailureKind::CampaignNotListed => "campaign_not_listed",
            FailureKind::TallyMissing => "tally_missing",
            FailureKind::IssuerKeyMismatch => "issuer_key_mismatch",
            FailureKind::CampaignViewMismatch => "campaign_view_mismatch",
            FailureKind::LogKeyMismatch => "log_key_mismatch",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One thing the log or the server got wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Which rule.
    pub kind: FailureKind,
    /// The log index of the entry concerned, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// The campaign concerned (64 hex digits), if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// What exactly is wrong, for a human.
    pub detail: String,
}

impl Failure {
    /// A failure not tied to an entry.
    pub fn new(kind: FailureKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            index: None,
            campaign: None,
            detail: detail.into(),
        }
    }

    /// A failure of the entry at `index`.
    pub fn at(kind: FailureKind, index: u64, detail: impl Into<String>) -> Self {
        Self {
            index: Some(index),
            ..Self::new(kind, detail)
        }
    }

    /// Names the campaign concerned.
    pub fn campaign(mut self, id: &pledge_protocol::hash::CampaignId) -> Self {
        self.campaign = Some(id.to_hex());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(i) = self.index {
            write!(f, " at entry {i}")?;
        }
        if let Some(c) = &self.campaign {
            write!(f, " (campaign {})", c.get(..16).unwrap_or(c))?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// Where the log key the audit trusted came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// `--log-key` on the command line.
    Argument,
    /// Pinned in the state directory by an earlier run.
    State,
    /// Fetched from the server itself (`/v1/log/key`): trust on first use.
    TrustOnFirstUse,
}

/// A checkpoint, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointSummary {
    /// Tree size.
    pub size: u64,
    /// Root hash, standard base64 as in the checkpoint.
    pub root: String,
}

/// What the audit looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Entries in the audited tree.
    pub entries: u64,
    /// Entries decoded and replayed this run (all of them unless a bundle was missing).
    pub replayed: u64,
    /// CampaignOpened entries.
    pub campaigns_opened: u64,
    /// Pledge entries.
    pub pledges: u64,
    /// PledgeAmended entries.
    pub amendments: u64,
    /// PledgeWithdrawn entries.
    pub withdrawals: u64,
    /// CampaignClosed entries.
    pub campaigns_closed: u64,
    /// CampaignUpdated entries (SPEC R-AUDIT-17).
    pub campaigns_updated: u64,
    /// Token and pledge signatures verified this run (the rest were verified
    /// by an earlier run and are bound to the pinned checkpoint).
    pub pledges_verified: u64,
    /// Entry bundles fetched from the server this run.
    pub bundles_fetched: u64,
    /// Entry bundles read from the state directory's cache.
    pub bundles_cached: u64,
    /// Hash tiles fetched and compared with the recomputed ones.
    pub tiles_checked: u64,
    /// Tally statements checked.
    pub tally_statements: u64,
}

/// One campaign as replayed from the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignSummary {
    /// Campaign id, 64 hex digits.
    pub id: String,
    /// Title from the CampaignOpened entry.
    pub title: String,
    /// Pledge entries accepted (withdrawn ones included).
    pub pledges: u64,
    /// Live pledges.
    pub live: u64,
    /// Active count A.
    pub active: u64,
    /// The goal.
    pub goal: u32,
    /// Whether a CampaignClosed entry was logged.
    pub closed: bool,
    /// Tokens the issuer reported at close.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_issued: Option<u64>,
    /// The checkpoint size of the tally statement checked, if one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement_size: Option<u64>,
    /// A sealed campaign's figures (SPEC §17): its `live` and `active`
    /// above are those of its latest reveal, 0 before any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sealed: Option<SealedSummary>,
}

/// What the audit recomputed of a sealed campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SealedSummary {
    /// Sealed pledges and amendments (the only public count before a
    /// reveal).
    pub entries: u64,
    /// Whether the trustees' joint key is logged.
    pub key_logged: bool,
    /// Snapshots taken (early reveals and the close).
    pub snapshots: usize,
    /// Snapshots revealed.
    pub revealed: usize,
    /// Log index of the latest revealed snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_reveal: Option<u64>,
}

/// The result of an audit. [`AuditReport::passed`] is true only if no check failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditReport {
    /// The server audited.
    pub server: String,
    /// The log origin (checkpoint first line), once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The log's verifier key text.
    pub log_key: String,
    /// Where that key came from.
    pub log_key_source: KeySource,
    /// The checkpoint audited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointSummary>,
    /// The checkpoint an earlier run verified (from the state directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<CheckpointSummary>,
    /// Witnesses whose cosignature verified.
    pub cosigned_by: Vec<String>,
    /// What was looked at.
    pub counts: Counts,
    /// Every campaign of the log.
    pub campaigns: Vec<CampaignSummary>,
    /// Every failure found, in the order found.
    pub failures: Vec<Failure>,
    /// Remarks that are not failures (trust on first use, skipped checks…).
    pub notes: Vec<String>,
    /// Whether the state directory now pins the audited checkpoint.
    pub state_updated: bool,
    /// Wall-clock time of the audit.
    pub elapsed_ms: u64,
    /// Entries replayed per second of wall-clock time.
    pub entries_per_second: f64,
    /// True if no check failed.
    pub passed: bool,
}

impl AuditReport {
    /// True if no check failed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// True if some failure is of `kind`.
    pub fn has(&self, kind: FailureKind) -> bool {
        self.failures.iter().any(|f| f.kind == kind)
    }

    /// The failures of `kind`.
    pub fn failures_of(&self, kind: FailureKind) -> impl Iterator<Item = &Failure> {
        self.failures.iter().filter(move |f| f.kind == kind)
    }
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "server      {}", self.server)?;
        if let Some(o) = &self.origin {
            writeln!(f, "log         {o}")?;
        }
        let source = match self.log_key_source {
            KeySource::Argument => "from --log-key",
            KeySource::State => "pinned in the state directory",
            KeySource::TrustOnFirstUse => "fetched from the server: trust on first use",
        };
        writeln!(f, "log key     {} ({source})", self.log_key)?;
        if let Some(c) = &self.checkpoint {
            writeln!(f, "checkpoint  size {} root {}", c.size, c.root)?;
        }
        if let Some(c) = &self.previous {
            writeln!(f, "previous    size {} root {}", c.size, c.root)?;
        }
        if !self.cosigned_by.is_empty() {
            writeln!(f, "cosigned by {}", self.cosigned_by.join(", "))?;
        }
        let c = &self.counts;
        writeln!(
            f,
            "entries     {}: CampaignOpened {}, Pledge {}, PledgeAmended {}, PledgeWithdrawn {}, CampaignClosed {}, CampaignUpdated {}",
            c.entries,
            c.campaigns_opened,
            c.pledges,
            c.amendments,
            c.withdrawals,
            c.campaigns_closed,
            c.campaigns_updated
        )?;
        writeln!(
            f,
            "checked     entries replayed {}, pledges verified {}, tiles {}, bundles fetched {}, bundles from cache {}, tally statements {}",
            c.replayed,
            c.pledges_verified,
            c.tiles_checked,
            c.bundles_fetched,
            c.bundles_cached,
            c.tally_statements
        )?;
        for camp in &self.campaigns {
            if let Some(s) = &camp.sealed {
                let revealed = match s.latest_reveal {
                    Some(at) => format!(
                        "revealed at {at}: live {}, active {}",
                        camp.live, camp.active
                    ),
                    None => "not revealed".to_owned(),
                };
                writeln!(
                    f,
                    "campaign    {} {:?}: sealed, {} sealed entries, {} snapshots, {} revealed; {revealed} (goal {}){}{}",
                    camp.id.get(..16).unwrap_or(&camp.id),
                    camp.title,
                    s.entries,
                    s.snapshots,
                    s.revealed,
                    camp.goal,
                    if s.key_logged { "" } else { ", no key yet" },
                    if camp.closed { ", closed" } else { "" }
                )?;
                continue;
            }
            writeln!(
                f,
                "campaign    {} {:?}: {} pledges, live {}, active {} (goal {}){}",
                camp.id.get(..16).unwrap_or(&camp.id),
                camp.title,
                camp.pledges,
                camp.live,
                camp.active,
                camp.goal,
                if camp.closed { ", closed" } else { "" }
            )?;
        }
        for n in &self.notes {
            writeln!(f, "note        {n}")?;
        }
        writeln!(
            f,
            "time        {} ms ({:.0} entries/s)",
            self.elapsed_ms, self.entries_per_second
        )?;
        if self.failures.is_empty() {
            writeln!(f, "result      PASS: every check holds")?;
        } else {
            writeln!(f, "result      FAIL: {} failures", self.failures.len())?;
            for fl in &self.failures {
                writeln!(f, "  {fl}")?;
            }
        }
        Ok(())
    }
}
