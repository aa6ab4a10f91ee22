//! `pledge demo`: simulates many pledgers against a server started with
//! `pledged --demo`. Each pledger has its own in-memory wallet, obtains
//! tokens for every open campaign of the open attester (cover issuance),
//! pledges with a varied threshold (no delay), and some amend or withdraw.
//! With `--funding` the campaign is one with conditional funding and the
//! pledgers mix the three kinds of terms: act, act if supported, fund.
//! Every receipt is verified offline; at the end the signed tally is checked
//! against two recomputations: the log rebuilt from entry bundles (root
//! checked against the signed checkpoint, every entry through the ledger
//! rules) and the demo's own view (the tally before plus its own pledges).

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt as _;
use pledge_protocol::api::FundingSpec;
use pledge_protocol::campaign::Funding;
use pledge_protocol::funding::{CampaignSnapshot, CampaignStatement, FundingSnapshot, JointTally};
use pledge_protocol::hash::CampaignId;
use pledge_protocol::merkle::Tree;
use pledge_protocol::note::NoteVerifier;
use pledge_protocol::pledge::Terms;
use pledge_protocol::replay::Replayer;
use pledge_protocol::tally::{TallySnapshot, recompute_active};

use crate::client::{
    AttesterKind, AttesterSpec, CampaignInfo, CampaignState, Client, ClientError, NewCampaign,
    PublicationSpec,
};
use crate::flows::{self, AttestKind, FlowError};
use crate::wallet::Wallet;

#[cfg(feature = "audit")]
mod sealed;
#[cfg(not(feature = "audit"))]
mod sealed {
    //! Without the auditor the demo's trustees cannot act.
    /// What a sealed demo did (empty without the `audit` feature).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SealedDemo;

    pub(super) async fn run(
        _: &crate::client::Client,
        _: &super::DemoOptions,
        _: &mut (dyn FnMut(String) + Send),
    ) -> Result<super::DemoReport, crate::flows::FlowError> {
        Err(crate::flows::FlowError::Campaign(
            "`pledge demo --sealed` needs the `audit` feature (its trustees audit the log)".into(),
        ))
    }
}
pub use sealed::SealedDemo;

/// Options of `pledge demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Number of simulated pledgers.
    pub pledgers: usize,
    /// With an admin token, the demo creates its own campaign first.
    pub admin_token: Option<String>,
    /// Pledgers run at most this many at once.
    pub concurrency: usize,
    /// Give up waiting for the open attester's rate limit after this long.
    pub max_rate_wait: Duration,
    /// Use (or create) a campaign with conditional funding and mix the
    /// three kinds of terms.
    pub funding: bool,
    /// Create a sealed campaign with three trustees (k = 2) run by the
    /// demo, and take it through key generation, sealed pledges,
    /// amendments, cover and both reveals (needs `admin_token`).
    pub sealed: bool,
    /// With `sealed`: the early reveal this long after the campaign is
    /// created.
    pub early_reveal: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            pledgers: 20,
            admin_token: None,
            concurrency: 32,
            max_rate_wait: Duration::from_secs(600),
            funding: false,
            sealed: false,
            early_reveal: Duration::from_secs(20),
        }
    }
}

/// What the demo did and found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoReport {
    /// The campaign used.
    pub campaign: String,
    /// Its title.
    pub title: String,
    /// Whether the demo created it.
    pub created: bool,
    /// Pledges made.
    pub pledged: usize,
    /// Amendments made.
    pub amended: usize,
    /// Withdrawals made.
    pub withdrawn: usize,
    /// Receipts verified offline.
    pub receipts_verified: usize,
    /// Times the open attester's rate limit made the demo wait.
    pub rate_limited: usize,
    /// Signed tally: log size.
    pub checkpoint_size: u64,
    /// Signed tally: live pledges.
    pub live: u64,
    /// Signed tally: active count A.
    pub active: u64,
    /// Goal.
    pub goal: u32,
    /// Signed tally: histogram `(t, count)` (of a campaign without
    /// funding; empty for a funding campaign).
    pub histogram: Vec<(u32, u64)>,
    /// A funding campaign's block and joint tally (SPEC R-FUND-2).
    pub funding: Option<(Funding, JointTally)>,
    /// Pledges of each kind made: act, act if supported, fund.
    pub kinds: [usize; 3],
    /// What a sealed demo did (`--sealed`).
    pub sealed: Option<sealed::SealedDemo>,
}

impl DemoReport {
    /// A short text form of the histogram: up to 12 buckets.
    pub fn histogram_summary(&self) -> String {
        let mut s: Vec<String> = self
            .histogram
            .iter()
            .take(12)
            .map(|(t, n)| format!("t={t}:{n}"))
            .collect();
        if self.histogram.len() > 12 {
            s.push(format!("… ({} more buckets)", self.histogram.len() - 12));
        }
        if s.is_empty() {
            "(empty)".into()
        } else {
            s.join(" ")
        }
    }
}

/// Final state of one simulated pledger.
struct PledgerOutcome {
    /// Final live terms (None if withdrawn).
    live: Option<Terms>,
    /// The first terms' kind: 0 act, 1 act if supported, 2 fund.
    kind: usize,
    amended: bool,
    withdrawn: bool,
    receipts: usize,
    rate_limited: usize,
}

/// The demo's plan for pledger `i` of `n`: (first terms, amended terms,
/// withdraws). Without funding, a threshold spread over the range; with
/// funding (`menu` = the support levels), half act, three in ten ask a
/// support level of the menu, two in ten fund twice the top level.
fn plan(
    i: usize,
    n: usize,
    c: &CampaignInfo,
    menu: Option<&[u64]>,
) -> (Terms, Option<Terms>, bool) {
    let span = u64::from(c.threshold_max.saturating_sub(c.threshold_min)) + 1;
    let span = span.min(n.max(1) as u64);
    // With funding, thresholds over the lowest third: enough people are
    // willing that the money, not the headcount, sets A, which is what the
    // demo is there to show.
    let span = if menu.is_some() {
        (span / 3).max(1)
    } else {
        span
    };
    let off = (i as u64).wrapping_mul(37) % span;
    let t = c
        .threshold_min
        .saturating_add(u32::try_from(off).unwrap_or(0));
    let t2 = (t / 2).max(c.threshold_min);
    let with = |t: u32| -> Terms {
        match menu {
            Some(levels) if i % 10 >= 5 && i % 10 < 8 && !levels.is_empty() => {
                Terms::SupportedThreshold {
                    t,
                    support: levels[i % levels.len()],
                }
            }
            Some(levels) if i % 10 >= 8 => Terms::Fund {
                n: t,
                amount: levels.last().copied().unwrap_or(1000).saturating_mul(2),
            },
            _ => Terms::Threshold { t },
        }
    };
    let amended = (i % 4 == 1).then(|| with(t2));
    let withdraws = i % 5 == 3;
    (with(t), amended, withdraws)
}

fn kind_index(t: &Terms) -> usize {
    match t {
        Terms::SupportedThreshold { .. } => 1,
        Terms::Fund { .. } => 2,
        _ => 0,
    }
}

/// Runs `pledge demo`. `say` receives progress lines.
///
/// # Errors
/// [`FlowError`]: no open demo campaign (start the server with `pledged
/// --demo`), refusals, a receipt that does not verify, or a tally that
/// differs from the recomputations.
pub async fn run(
    client: &Client,
    opts: &DemoOptions,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<DemoReport, FlowError> {
    if opts.sealed {
        return sealed::run(client, opts, say).await;
    }
    let mut probe = Wallet::in_memory();
    let (log, _) = flows::pin_log(client, &mut probe).await?;
    say(format!("log key (pinned for this run): {}", log.to_text()));
    let (campaign, created) = pick_campaign(client, opts, say).await?;
    let id = campaign.campaign_id;
    say(format!(
        "campaign {} \"{}\" (goal {}, thresholds {}..={})",
        campaign.campaign_id,
        campaign.title,
        campaign.goal,
        campaign.threshold_min,
        campaign.threshold_max
    ));
    let funding = flows::definition_of(&campaign)?.funding().cloned();
    if let Some(f) = &funding {
        say(format!(
            "conditional funding in {} (support menu: {})",
            f.currency(),
            f.levels()
                .iter()
                .map(|&y| flows::format_amount(y, f))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let before = flows::verify_statement(&client.tally_statement(&id).await?, &log, &id)?;
    say(format!(
        "tally before: live {}, A {}; simulating {} pledgers",
        before.live(),
        before.active(),
        opts.pledgers
    ));

    let campaign_ref = &campaign;
    let log_ref = &log;
    let menu = funding.as_ref().map(Funding::levels);
    let results: Vec<Result<PledgerOutcome, FlowError>> =
        futures_util::stream::iter(0..opts.pledgers)
            .map(|i| async move { one_pledger(client, log_ref, campaign_ref, i, opts, menu).await })
            .buffer_unordered(opts.concurrency.max(1))
            .collect()
            .await;
    let mut outcomes = Vec::with_capacity(results.len());
    for r in results {
        outcomes.push(r?);
    }
    let rate_limited: usize = outcomes.iter().map(|o| o.rate_limited).sum();
    if rate_limited > 0 {
        say(format!(
            "the open attester's per-address rate limit answered 429 {rate_limited} times; the \
             demo waited as told by Retry-After"
        ));
    }

    // The signed tally after, and the checkpoint it refers to.
    let after = flows::verify_statement(&client.tally_statement(&id).await?, &log, &id)?;
    check_against_log(client, &log, &id, &after).await?;
    let mine: Vec<Terms> = outcomes.iter().filter_map(|o| o.live).collect();
    let (histogram, joint) = own_view(&before, &after, &mine)?;
    let mut kinds = [0usize; 3];
    for o in &outcomes {
        kinds[o.kind] += 1;
    }
    Ok(DemoReport {
        campaign: campaign.campaign_id.to_hex(),
        title: campaign.title.clone(),
        created,
        pledged: outcomes.len(),
        amended: outcomes.iter().filter(|o| o.amended).count(),
        withdrawn: outcomes.iter().filter(|o| o.withdrawn).count(),
        receipts_verified: outcomes.iter().map(|o| o.receipts).sum(),
        rate_limited,
        checkpoint_size: after.checkpoint_size(),
        live: after.live(),
        active: after.active(),
        goal: campaign.goal,
        histogram,
        funding: funding.zip(joint),
        kinds,
        sealed: None,
    })
}

/// A plain campaign's histogram, or a funding campaign's joint tally.
type OwnView = (Vec<(u32, u64)>, Option<JointTally>);

/// The demo's own view: the tally before plus its pledgers' final live
/// terms, which must be exactly the signed tally after (nobody else
/// pledged meanwhile). Returns the histogram (plain) or the joint tally
/// (funding).
fn own_view(
    before: &CampaignStatement,
    after: &CampaignStatement,
    mine: &[Terms],
) -> Result<OwnView, FlowError> {
    let differs = |live: u64, active: u64| {
        FlowError::BadLog(format!(
            "the signed tally (live {}, A {}) differs from the demo's own view (live {live}, A \
             {active}); did someone else pledge during the demo?",
            after.live(),
            after.active(),
        ))
    };
    match (before, after) {
        (CampaignStatement::Plain(b), CampaignStatement::Plain(a)) => {
            let mut buckets: BTreeMap<u32, u64> = b.snapshot().buckets().iter().copied().collect();
            for t in mine {
                *buckets.entry(t.threshold_value()).or_default() += 1;
            }
            let expected: Vec<(u32, u64)> = buckets.into_iter().collect();
            if expected.as_slice() != a.snapshot().buckets() {
                return Err(differs(
                    expected.iter().map(|(_, n)| n).sum::<u64>(),
                    recompute_active(&expected),
                ));
            }
            Ok((expected, None))
        }
        (CampaignStatement::Funding(b), CampaignStatement::Funding(a)) => {
            // The buckets before plus mine, merged; the snapshot recomputes
            // the joint tally from them (R-FUND-6).
            let mut actors: BTreeMap<(u32, u64), u64> = b
                .snapshot()
                .actors()
                .iter()
                .map(|&(t, y, c)| ((t, y), c))
                .collect();
            let mut funders: BTreeMap<u32, (u64, u128)> = b
                .snapshot()
                .funders()
                .iter()
                .map(|&(n, c, sum)| (n, (c, sum)))
                .collect();
            for terms in mine {
                match (terms, terms.support()) {
                    (Terms::Fund { n, amount }, _) => {
                        let f = funders.entry(*n).or_default();
                        f.0 += 1;
                        f.1 += u128::from(*amount);
                    }
                    (_, Some(y)) => *actors.entry((terms.threshold_value(), y)).or_default() += 1,
                    (_, None) => {}
                }
            }
            let expected = FundingSnapshot::new(
                actors.into_iter().map(|((t, y), c)| (t, y, c)).collect(),
                funders.into_iter().map(|(n, (c, s))| (n, c, s)).collect(),
            )
            .map_err(|e| FlowError::BadLog(e.to_string()))?;
            if expected != *a.snapshot() {
                return Err(differs(expected.live(), expected.active()));
            }
            Ok((Vec::new(), Some(expected.joint().clone())))
        }
        _ => Err(FlowError::BadLog(
            "the campaign's statements changed kind during the demo".into(),
        )),
    }
}

async fn pick_campaign(
    client: &Client,
    opts: &DemoOptions,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<(CampaignInfo, bool), FlowError> {
    if let Some(token) = &opts.admin_token {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let n = u32::try_from(opts.pledgers).unwrap_or(u32::MAX);
        let funding = opts.funding.then(|| FundingSpec {
            currency: "EUR".into(),
            minor_digits: 2,
            support_levels: vec![5_000, 10_000, 20_000],
            surplus_to_fund: false,
        });
        let created = client
            .create_campaign(
                token,
                &NewCampaign {
                    title: "pledge demo campaign".into(),
                    text: "Created by `pledge demo` with simulated pledgers.".into(),
                    action: "show the pledge service working".into(),
                    deadline: now + 24 * 3600,
                    goal: (n / 2).max(2),
                    threshold_min: 1,
                    threshold_max: n.max(10),
                    // Simulated pledgers: nothing to hide, and each pledge's
                    // receipt shown at once.
                    publication: Some(PublicationSpec::IMMEDIATE),
                    attester: AttesterSpec::Open,
                    funding,
                    sealed: None,
                },
            )
            .await?;
        say(format!(
            "created campaign {} (entry {})",
            created.campaign_id, created.index
        ));
        let id = created
            .id()
            .ok_or_else(|| FlowError::Campaign("the server returned a bad campaign id".into()))?;
        return Ok((client.campaign(&id).await?, true));
    }
    let list = client.campaigns().await?;
    let c = list
        .into_iter()
        .find(|c| {
            c.state == CampaignState::Open
                && c.attester == Some(AttesterKind::Open)
                && c.funding.is_some() == opts.funding
        })
        .ok_or_else(|| {
            FlowError::Campaign(format!(
                "no open campaign {}with the open attester: start the server with `pledged \
                 --demo`, or pass --admin-token to let the demo create one",
                if opts.funding {
                    "with conditional funding "
                } else {
                    "without funding "
                }
            ))
        })?;
    Ok((c, false))
}

async fn one_pledger(
    client: &Client,
    log: &NoteVerifier,
    c: &CampaignInfo,
    i: usize,
    opts: &DemoOptions,
    menu: Option<&[u64]>,
) -> Result<PledgerOutcome, FlowError> {
    let id = c.campaign_id;
    let mut wallet = pledger_wallet(client, log).await?;
    let rate_limited = tokens_for(client, &mut wallet, log, opts).await?;
    let (t, amend, withdraw) = plan(i, opts.pledgers, c, menu);
    let mut receipts = 0;
    flows::commit(client, &mut wallet, log, &id, t, Duration::ZERO).await?;
    receipts += 1;
    let mut live = Some(t);
    if let Some(t2) = amend {
        flows::change(client, &mut wallet, log, &id, Some(t2)).await?;
        receipts += 1;
        live = Some(t2);
    }
    if withdraw {
        flows::change(client, &mut wallet, log, &id, None).await?;
        receipts += 1;
        live = None;
    }
    // Every receipt of this pledger, verified again from the wallet.
    let all_ok = wallet
        .data
        .pledges
        .iter()
        .all(|p| flows::receipts_valid(p, log));
    if !all_ok {
        return Err(FlowError::Receipt(format!(
            "pledger {i}: a stored receipt fails"
        )));
    }
    Ok(PledgerOutcome {
        live,
        kind: kind_index(&t),
        amended: amend.is_some(),
        withdrawn: withdraw,
        receipts,
        rate_limited,
    })
}

/// A demo pledger's wallet pinned to `log`.
async fn pledger_wallet(client: &Client, log: &NoteVerifier) -> Result<Wallet, FlowError> {
    let mut wallet = Wallet::in_memory();
    let (pinned, _) = flows::pin_log(client, &mut wallet).await?;
    if pinned != *log {
        return Err(FlowError::LogKeyChanged {
            pinned: log.to_text(),
            served: pinned.to_text(),
        });
    }
    Ok(wallet)
}

/// Tokens from the open attester for every open campaign (cover issuance),
/// waiting out its rate limit as told (up to `opts.max_rate_wait`).
/// Returns how many times it was rate limited.
async fn tokens_for(
    client: &Client,
    wallet: &mut Wallet,
    log: &NoteVerifier,
    opts: &DemoOptions,
) -> Result<usize, FlowError> {
    let mut rate_limited = 0;
    let started = tokio::time::Instant::now();
    loop {
        match flows::obtain_tokens(client, wallet, log, &AttestKind::Open).await {
            Ok(_) => return Ok(rate_limited),
            Err(FlowError::Client(e @ ClientError::Refused { status: 429, .. })) => {
                rate_limited += 1;
                let wait = e.retry_after().unwrap_or(Duration::from_secs(2));
                if started.elapsed() + wait > opts.max_rate_wait {
                    return Err(FlowError::Client(e));
                }
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Rebuilds the log from entry bundles up to the latest checkpoint with the
/// protocol's replay, checks its root against the signed checkpoint,
/// applies every entry with the ledger rules (signatures included), and
/// compares the campaign's tally at the statement's size with the
/// statement.
async fn check_against_log(
    client: &Client,
    log: &NoteVerifier,
    id: &CampaignId,
    statement: &CampaignStatement,
) -> Result<(), FlowError> {
    let text = client.checkpoint().await?;
    let cp = pledge_protocol::checkpoint::open_checkpoint(&text, log)
        .map_err(|e| FlowError::BadLog(format!("checkpoint: {e}")))?;
    let size = cp.checkpoint().size();
    if statement.checkpoint_size() > size {
        return Err(FlowError::BadLog(format!(
            "tally statement at size {} is beyond the checkpoint {size}",
            statement.checkpoint_size()
        )));
    }
    let mut at_statement: Option<CampaignSnapshot> = None;
    let replay = flows::replay_log(client, size, |r, _| {
        if r.size() == statement.checkpoint_size() {
            at_statement = Some(snapshot_of(r, id)?);
        }
        Ok(())
    })
    .await?;
    if replay.tree().root() != *cp.checkpoint().root() {
        return Err(FlowError::BadLog(
            "the entry bundles do not hash up to the signed checkpoint root".into(),
        ));
    }
    let recomputed = match at_statement {
        Some(s) => s,
        None => snapshot_of(&replay, id)?,
    };
    if !statement.states(&recomputed) {
        return Err(FlowError::BadLog(format!(
            "the signed tally (live {}, A {}) differs from the log's (live {}, A {})",
            statement.live(),
            statement.active(),
            recomputed.live(),
            recomputed.active()
        )));
    }
    Ok(())
}

fn snapshot_of(replay: &Replayer<Tree>, id: &CampaignId) -> Result<CampaignSnapshot, FlowError> {
    match replay.campaign_tally(id) {
        Some(t) => t.map_err(|e| FlowError::BadLog(e.to_string())),
        None => Ok(CampaignSnapshot::Plain(TallySnapshot::empty())),
    }
}
