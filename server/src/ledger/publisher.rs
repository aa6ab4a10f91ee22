//! The publisher: what the log shows its readers. After each durable commit
//! the sequencer builds one immutable [`Published`] (the signed checkpoint
//! with the cosignatures gathered so far, and one [`CampaignView`] per
//! campaign with its signed tally statement, SPEC R-TALLY-7) and hands it to
//! every reader as an `Arc`: HTTP handlers, metrics, the issuer's campaign
//! checks, the witness pusher and the closing task never wait for the disk
//! and never see a state that is not durable. [`CampaignView::phase`] is the
//! one place a campaign's phase is computed.

use std::collections::HashMap;
use std::sync::Arc;

use pledge_protocol::campaign::CampaignDefinition;
use pledge_protocol::hash::CampaignId;
use pledge_protocol::ledger::LedgerState;
use pledge_protocol::note::{NoteSignature, NoteSigner, SignedNote, sign_note};
use pledge_protocol::sealed::JointPublicKey;
use pledge_protocol::sealed_tally::SealedTallyStatement;
use pledge_protocol::tally::TallyStatement;
use pledge_protocol::token::IssuerPublicKey;
use pledge_protocol::update::CampaignUpdates;

/// Something the log published, for `GET /v1/events`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LogEvent {
    /// A new checkpoint.
    Checkpoint {
        /// Tree size.
        size: u64,
        /// The signed note.
        note: Arc<str>,
    },
    /// A new tally statement.
    Tally(Arc<TallyView>),
}

/// The latest signed tally of one campaign.
#[derive(Debug, Clone)]
pub struct TallyView {
    /// The campaign.
    pub campaign: CampaignId,
    /// The checkpoint size it is bound to.
    pub checkpoint_size: u64,
    /// What the statement says: a live campaign's counts, or a sealed
    /// campaign's number of entries (which has no live or active count to
    /// show before its reveal, SPEC R-SEAL-80).
    pub figures: Figures,
    /// The signed note of the statement (SPEC R-TALLY-7, R-FUND-7 or
    /// R-SEAL-80).
    pub note: Arc<str>,
}

/// The figures of a tally statement, of its campaign's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figures {
    /// A live (or funding) campaign: live pledges and the active count.
    Live {
        /// Live pledges.
        live: u64,
        /// Active count.
        active: u64,
    },
    /// A sealed campaign before its reveal: its sealed pledges and
    /// amendments, and nothing else (SPEC R-SEAL-80).
    Sealed {
        /// Sealed entries in the log.
        entries: u64,
    },
}

impl TallyView {
    /// Live pledges and the active count; `None` for a sealed campaign,
    /// whose counts must never be shown (SPEC R-SEAL-83).
    pub fn live_active(&self) -> Option<(u64, u64)> {
        match self.figures {
            Figures::Live { live, active } => Some((live, active)),
            Figures::Sealed { .. } => None,
        }
    }
}

/// Where a campaign is in its life (SPEC R-CAMP-3, R-API-7): computed here
/// only, from the published view and the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Pledges, amendments and withdrawals are taken; tokens are issued.
    Open,
    /// The deadline has passed and the CampaignClosed entry is not logged yet.
    Closing,
    /// The CampaignClosed entry is logged.
    Closed,
}

impl Phase {
    /// The name the API uses (`state` of a campaign, SPEC R-API-7).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closing => "closing",
            Self::Closed => "closed",
        }
    }
}

/// What the log publishes about one campaign, as of one checkpoint.
#[derive(Debug, Clone)]
pub struct CampaignView {
    /// The definition logged in CampaignOpened.
    pub definition: CampaignDefinition,
    /// The issuer key logged in CampaignOpened.
    pub issuer_key: IssuerPublicKey,
    /// Index of the CampaignOpened entry (SPEC R-TOKEN-11).
    pub opened_at: u64,
    /// Index of the CampaignClosed entry, once closed (SPEC R-API-21).
    pub closed_at: Option<u64>,
    /// The latest signed tally; `None` if it could not be signed (logged,
    /// counted, served as 503: never an older statement as the current one).
    pub tally: Option<Arc<TallyView>>,
    /// What its CampaignUpdated entries amount to: the extended deadline and
    /// the texts by language (SPEC R-CAMP-8, R-CAMP-9).
    pub updates: CampaignUpdates,
    /// A sealed campaign's joint key once its trustees' key generation is
    /// complete in the log (SPEC R-SEAL-34): what sealed entries are
    /// verified under before they are queued. `None` for a live campaign
    /// and before the key.
    pub joint_key: Option<JointPublicKey>,
    /// What the sequencing front end has to log for a sealed campaign
    /// (SPEC R-SEAL-89): `None` for a live campaign.
    pub reveal_work: Option<RevealWork>,
}

/// A sealed campaign's reveal bookkeeping, from the rules' state (SPEC
/// R-SEAL-89).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevealWork {
    /// SealedSnapshot entries logged (early reveals taken).
    pub early_snapshots: usize,
    /// Log indexes of snapshots with shares from at least `k` trustees
    /// and no revealed tally yet.
    pub revealable: Vec<u64>,
    /// Revealed snapshots: log index and counts per bucket.
    pub revealed: Vec<(u64, Vec<u64>)>,
}

impl CampaignView {
    /// The effective deadline (SPEC R-CAMP-8): the last update's, else the
    /// definition's.
    pub fn deadline(&self) -> u64 {
        self.updates.effective_deadline(self.definition.deadline())
    }

    /// The campaign's phase at `now` (Unix seconds), by its effective
    /// deadline (SPEC R-CAMP-8).
    pub fn phase(&self, now: u64) -> Phase {
        if self.closed_at.is_some() {
            Phase::Closed
        } else if now > self.deadline() {
            Phase::Closing
        } else {
            Phase::Open
        }
    }
}

/// An immutable view of the log after a durable commit: the checkpoint (with
/// the witness cosignatures gathered so far) and each campaign's view. The
/// sequencer publishes a new one after each commit; readers take an `Arc`
/// and never wait for the disk.
#[derive(Debug, Clone)]
pub struct Published {
    size: u64,
    checkpoint: Arc<str>,
    campaigns: Arc<HashMap<CampaignId, Arc<CampaignView>>>,
}

impl Published {
    /// The view of a tree of `size` leaves whose signed checkpoint is
    /// `checkpoint`.
    pub(super) fn new(
        size: u64,
        checkpoint: Arc<str>,
        campaigns: HashMap<CampaignId, Arc<CampaignView>>,
    ) -> Self {
        Self {
            size,
            checkpoint,
            campaigns: Arc::new(campaigns),
        }
    }

    /// This view with `sig` added to its checkpoint, if it is still the
    /// checkpoint of `size` and the signature is new (SPEC R-NOTE-12).
    pub(super) fn with_cosignature(&self, size: u64, sig: NoteSignature) -> Option<Self> {
        if self.size != size {
            return None;
        }
        let mut note = SignedNote::parse(self.checkpoint.as_bytes()).ok()?;
        note.add_signature(sig).ok()?;
        Some(Self {
            checkpoint: note.to_text().into(),
            ..self.clone()
        })
    }

    /// A copy of the campaign map, to build the next view from.
    pub(super) fn campaign_map(&self) -> HashMap<CampaignId, Arc<CampaignView>> {
        HashMap::clone(&self.campaigns)
    }

    /// The published tree size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The published signed checkpoint note.
    pub fn checkpoint(&self) -> Arc<str> {
        self.checkpoint.clone()
    }

    /// A campaign's view.
    pub fn campaign(&self, id: &CampaignId) -> Option<&Arc<CampaignView>> {
        self.campaigns.get(id)
    }

    /// Every campaign, in no particular order.
    pub fn campaigns(&self) -> impl Iterator<Item = (&CampaignId, &Arc<CampaignView>)> {
        self.campaigns.iter()
    }

    /// The index of the campaign's CampaignOpened entry.
    pub fn opened_at(&self, id: &CampaignId) -> Option<u64> {
        self.campaigns.get(id).map(|c| c.opened_at)
    }

    /// The index of the campaign's CampaignClosed entry, once closed.
    pub fn closed_at(&self, id: &CampaignId) -> Option<u64> {
        self.campaigns.get(id).and_then(|c| c.closed_at)
    }

    /// The latest signed tally of a campaign.
    pub fn tally(&self, id: &CampaignId) -> Option<Arc<TallyView>> {
        self.campaigns.get(id).and_then(|c| c.tally.clone())
    }
}

/// Signs the campaign's tally statement at `size`. `None` for an unknown
/// campaign; an error (never swallowed: the caller logs it, counts it and
/// serves 503 instead of an older statement) when the statement cannot be
/// built or signed, e.g. a histogram over the note size limit.
pub(super) fn sign_tally(
    signer: &NoteSigner,
    state: &LedgerState,
    id: &CampaignId,
    size: u64,
) -> Option<Result<Arc<TallyView>, String>> {
    let c = state.campaign(id)?;
    Some(sign_campaign_tally(signer, c, id, size))
}

/// Signs the campaign's statement at `size`: R-TALLY-7 for a plain campaign,
/// R-FUND-7 (the joint tally) for a funding campaign, R-SEAL-80 (the count
/// of sealed entries, no histogram) for a sealed campaign.
pub(super) fn sign_campaign_tally(
    signer: &NoteSigner,
    c: &pledge_protocol::ledger::CampaignState,
    id: &CampaignId,
    size: u64,
) -> Result<Arc<TallyView>, String> {
    if let Some(s) = &c.sealed {
        return sign_sealed_tally_of(signer, s.entries, id, size);
    }
    match &c.funding {
        Some(f) => sign_funding_tally_of(signer, f, id, size),
        None => sign_tally_of(signer, &c.tally, id, size),
    }
}

/// SPEC R-SEAL-80: a sealed campaign's statement.
fn sign_sealed_tally_of(
    signer: &NoteSigner,
    entries: u64,
    id: &CampaignId,
    size: u64,
) -> Result<Arc<TallyView>, String> {
    let stmt = SealedTallyStatement::new(signer.name().as_str(), size, *id, entries)
        .map_err(|e| e.to_string())?;
    signed_view(
        signer,
        &stmt.to_note_body(),
        id,
        size,
        Figures::Sealed { entries },
    )
}

fn sign_funding_tally_of(
    signer: &NoteSigner,
    tally: &pledge_protocol::funding::FundingTally,
    id: &CampaignId,
    size: u64,
) -> Result<Arc<TallyView>, String> {
    let snapshot = tally.snapshot().map_err(|e| e.to_string())?;
    let (live, active) = (snapshot.live(), snapshot.active());
    let stmt = pledge_protocol::funding::FundingStatement::new(
        signer.name().as_str(),
        size,
        *id,
        snapshot,
    )
    .map_err(|e| e.to_string())?;
    signed_view(
        signer,
        &stmt.to_note_body(),
        id,
        size,
        Figures::Live { live, active },
    )
}

/// The served view of a statement body: signed, with its figures.
fn signed_view(
    signer: &NoteSigner,
    body: &str,
    id: &CampaignId,
    size: u64,
    figures: Figures,
) -> Result<Arc<TallyView>, String> {
    let note = sign_note(body, &[signer]).map_err(|e| e.to_string())?;
    Ok(Arc::new(TallyView {
        campaign: *id,
        checkpoint_size: size,
        figures,
        note: note.to_text().into(),
    }))
}

pub(super) fn sign_tally_of(
    signer: &NoteSigner,
    tally: &pledge_protocol::tally::Tally,
    id: &CampaignId,
    size: u64,
) -> Result<Arc<TallyView>, String> {
    // A closed campaign's tally no longer changes: it is the final tally.
    let snapshot = tally.snapshot().map_err(|e| e.to_string())?;
    let (live, active) = (snapshot.live(), snapshot.active());
    let stmt = TallyStatement::new(signer.name().as_str(), size, *id, snapshot)
        .map_err(|e| e.to_string())?;
    signed_view(
        signer,
        &stmt.to_note_body(),
        id,
        size,
        Figures::Live { live, active },
    )
}

/// The longest funding statement (signed note, R-FUND-7) a funding campaign
/// with thresholds `t_min..=t_max` and `levels` support levels can ever need
/// on a log named `origin`: every threshold an `act` line per support amount
/// (0 and the menu) and a `fund` line, every count, amount and sum at its
/// widest (SPEC R-API-20).
pub fn worst_case_funding_statement_len(
    origin: &str,
    t_min: u32,
    t_max: u32,
    levels: usize,
) -> usize {
    let digits = |n: u128| n.to_string().len();
    let live = digits(u128::from(pledge_protocol::tally::MAX_LIVE));
    let amount = digits(u128::from(pledge_protocol::pledge::MAX_AMOUNT));
    let sum = digits(
        u128::from(pledge_protocol::tally::MAX_LIVE)
            * u128::from(pledge_protocol::pledge::MAX_AMOUNT),
    );
    let t = digits(u128::from(t_max));
    let span = usize::try_from(u64::from(t_max.saturating_sub(t_min)) + 1).unwrap_or(usize::MAX);
    let header = origin.len()
        + "/funding-tally/v1\n".len()
        + 65
        + digits(u128::from(u64::MAX))
        + 1
        + "live \nactive \n".len()
        + 2 * live
        + "funds \ncost \ndemand \n".len()
        + 3 * sum;
    let level_lines = (levels + 1) * ("level   \n".len() + amount + 2 * live);
    let act_line = "act   \n".len() + t + amount + live;
    let fund_line = "fund   \n".len() + t + live + sum;
    let signature = 1 + "— ".len() + origin.len() + 1 + 92 + 1;
    header
        .saturating_add(level_lines)
        .saturating_add(
            span.saturating_mul(
                (levels + 1)
                    .saturating_mul(act_line)
                    .saturating_add(fund_line),
            ),
        )
        .saturating_add(signature)
}

/// The longest tally statement (signed note, R-TALLY-7) a campaign with
/// thresholds `t_min..=t_max` can ever need on a log named `origin`: every
/// threshold a bucket, every count and size at its widest. Campaigns are
/// created only when this fits [`pledge_protocol::note::MAX_NOTE_BYTES`], so
/// a tally can never freeze for want of space (SPEC R-API-20).
pub fn worst_case_statement_len(origin: &str, t_min: u32, t_max: u32) -> usize {
    let digits = |n: u64| n.to_string().len();
    let live = digits(pledge_protocol::tally::MAX_LIVE);
    let buckets = usize::try_from(u64::from(t_max.saturating_sub(t_min)) + 1).unwrap_or(usize::MAX);
    let header = origin.len()
        + "/tally/v1\n".len()
        + 65
        + digits(u64::MAX)
        + 1
        + "live ".len()
        + live
        + 1
        + "active ".len()
        + live
        + 1;
    let line = digits(u64::from(t_max)) + 1 + live + 1;
    // "\n— <name> <base64 of a 4-byte key id and a 64-byte signature>\n"
    let signature = 1 + "— ".len() + origin.len() + 1 + 92 + 1;
    header
        .saturating_add(buckets.saturating_mul(line))
        .saturating_add(signature)
}
