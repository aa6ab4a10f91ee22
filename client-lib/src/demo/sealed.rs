//! `pledge demo --sealed` (issue 16): the demo plays the organiser, three
//! trustees (k = 2) and the pledgers of a sealed campaign it creates through
//! the admin API: key generation through the log, sealed pledges,
//! amendments and withdrawals (to the null vector), cover (null pledges for
//! unused tokens, re-encryptions), an early reveal and the close's reveal,
//! each checked against what the demo pledged before its snapshot.
//!
//! The trustees' keys are made by the demo and held in its memory only: a
//! demo that stops halfway leaves a campaign nobody can reveal, which is
//! what a real campaign must avoid by giving the keys to independent
//! trustees (`pledge trustee keygen`). A server that made the trustee keys
//! itself would hold every share of the secret: it could read every
//! threshold, so `pledged --demo` does not open sealed campaigns.

use std::time::Duration;

use futures_util::StreamExt as _;
use pledge_protocol::api::SealedSpec;
use pledge_protocol::dkg::TrusteeKeyPair;
use pledge_protocol::hash::CampaignId;
use pledge_protocol::note::NoteVerifier;
use pledge_protocol::tally::recompute_active;
use rand::SeedableRng as _;
use rand::rngs::{StdRng, SysRng};

use super::{DemoOptions, DemoReport, pledger_wallet, tokens_for};
use crate::audit::AuditOptions;
use crate::client::{AttesterSpec, CampaignInfo, Client, NewCampaign, PublicationSpec};
use crate::flows::{self, FlowError, sealed as sf};
use crate::trustee::{self, Action};
use crate::wallet::Wallet;

/// What a sealed demo did and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedDemo {
    /// The campaign's bucket values.
    pub buckets: Vec<u32>,
    /// Trustees a reveal needs, and trustees.
    pub k: u8,
    /// Trustees.
    pub n: u8,
    /// Null pledges sent as cover (tokens not pledged with).
    pub null_pledges: usize,
    /// Cover re-encryptions sent.
    pub cover_amendments: usize,
    /// Sealed entries of the campaign, from its signed sealed statement.
    pub entries: u64,
    /// Each reveal: its snapshot's log index and counts per bucket, equal
    /// to what the demo pledged before the snapshot (checked in the
    /// campaign object and in the log).
    pub reveals: Vec<(u64, Vec<u64>)>,
}

/// Trustees a reveal needs, and trustees, in the demo.
const K: u8 = 2;
const N: usize = 3;

/// One simulated pledger of a sealed campaign.
struct Pledger {
    /// Its entries in the log: index, and the bucket the entry encrypts
    /// (`None`: null).
    history: Vec<(u64, Option<usize>)>,
    pledged: bool,
    amended: bool,
    withdrawn: bool,
    null: bool,
    cover_amendments: usize,
    rate_limited: usize,
}

/// Log-scale bucket values up to `max`: 1, 2, 5, 10, 20, 50, …
fn buckets_for(max: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut scale = 1u32;
    'outer: loop {
        for m in [1u32, 2, 5] {
            match m.checked_mul(scale) {
                Some(v) if v <= max => out.push(v),
                _ => break 'outer,
            }
        }
        match scale.checked_mul(10) {
            Some(s) => scale = s,
            None => break,
        }
    }
    out
}

/// Pledger `i`'s plan over `b` buckets: its bucket (`None`: it does not
/// pledge, its token goes as a null pledge), the bucket it amends to,
/// whether it then withdraws, whether it sends a cover re-encryption.
fn plan(i: usize, b: usize) -> (Option<usize>, Option<usize>, bool, bool) {
    let cover = i.is_multiple_of(3);
    if i % 5 == 4 {
        return (None, None, false, cover);
    }
    let first = (i * 7) % b;
    let amend = (i % 4 == 1).then_some((first + 1) % b);
    (Some(first), amend, i % 5 == 3, cover)
}

/// What the aggregate at snapshot `at` holds: per bucket, the pledgers
/// whose latest entry before `at` encrypts it.
fn expected_counts(pledgers: &[Pledger], at: u64, b: usize) -> Vec<u64> {
    let mut counts = vec![0u64; b];
    for p in pledgers {
        let latest = p
            .history
            .iter()
            .filter(|(index, _)| *index < at)
            .max_by_key(|(index, _)| *index);
        if let Some((_, Some(bucket))) = latest
            && let Some(c) = counts.get_mut(*bucket)
        {
            *c += 1;
        }
    }
    counts
}

fn trustee_err(e: trustee::TrusteeError) -> FlowError {
    FlowError::Campaign(format!("a demo trustee failed: {e}"))
}

/// One round of each trustee in `keys`; what they posted.
async fn trustees_step(
    audit: &AuditOptions,
    client: &Client,
    id: &CampaignId,
    keys: &[&TrusteeKeyPair],
) -> Result<Vec<Action>, FlowError> {
    let mut all = Vec::new();
    for kp in keys {
        all.extend(
            trustee::step(audit, client, id, kp)
                .await
                .map_err(trustee_err)?,
        );
    }
    Ok(all)
}

/// Polls the campaign object until `done` holds (`what` names it in the
/// error after `limit`).
async fn wait_for(
    client: &Client,
    id: &CampaignId,
    limit: Duration,
    what: &str,
    done: impl Fn(&CampaignInfo) -> bool,
) -> Result<CampaignInfo, FlowError> {
    let start = tokio::time::Instant::now();
    loop {
        let c = client.campaign(id).await?;
        if done(&c) {
            return Ok(c);
        }
        if start.elapsed() > limit {
            return Err(FlowError::Campaign(format!(
                "waited {} s in vain for {what}",
                limit.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn revealed(c: &CampaignInfo) -> usize {
    c.sealed.as_ref().map_or(0, |s| s.revealed.len())
}

/// Trustees 1 and 3 (trustee 2 stays away: k = 2 suffice) share snapshots
/// until the campaign shows `reveals` reveals.
async fn reveal(
    audit: &AuditOptions,
    client: &Client,
    id: &CampaignId,
    keys: &[TrusteeKeyPair],
    reveals: usize,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<CampaignInfo, FlowError> {
    let start = tokio::time::Instant::now();
    loop {
        let c = client.campaign(id).await?;
        if revealed(&c) >= reveals {
            return Ok(c);
        }
        for a in trustees_step(audit, client, id, &[&keys[0], &keys[2]]).await? {
            if let Action::Shared { snapshot } = a {
                say(format!(
                    "a trustee posted its decryption shares of the snapshot at log index \
                     {snapshot} (after auditing the log itself)"
                ));
            }
        }
        if start.elapsed() > Duration::from_secs(120) {
            return Err(FlowError::Campaign(
                "the trustees' shares were not turned into a reveal within 120 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Runs `pledge demo --sealed`.
pub(super) async fn run(
    client: &Client,
    opts: &DemoOptions,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<DemoReport, FlowError> {
    let Some(admin) = &opts.admin_token else {
        return Err(FlowError::Campaign(
            "`pledge demo --sealed` creates its own sealed campaign, whose definition names its \
             trustees' keys: give it the server's admin token (--admin-token-file \
             <data folder>/admin.token, or PLEDGE_ADMIN_TOKEN)"
                .into(),
        ));
    };
    let mut probe = Wallet::in_memory();
    let (log, _) = flows::pin_log(client, &mut probe).await?;
    say(format!("log key (pinned for this run): {}", log.to_text()));
    let mut rng = StdRng::try_from_rng(&mut SysRng)
        .map_err(|e| FlowError::Crypto(format!("no randomness from the system: {e}")))?;
    let keys: Vec<TrusteeKeyPair> = (0..N).map(|_| TrusteeKeyPair::generate(&mut rng)).collect();
    let now = sf::unix_now();
    let n = u32::try_from(opts.pledgers).unwrap_or(u32::MAX);
    let threshold_max = n.max(10);
    let buckets = buckets_for(threshold_max);
    let early = now + opts.early_reveal.as_secs().max(1);
    let created = client
        .create_campaign(
            admin,
            &NewCampaign {
                title: "pledge demo sealed campaign".into(),
                text:
                    "Created by `pledge demo --sealed`: thresholds stay encrypted until a reveal."
                        .into(),
                action: "show sealed pledging working".into(),
                deadline: now + 24 * 3600,
                goal: (n / 4).max(2),
                threshold_min: 1,
                threshold_max,
                publication: Some(PublicationSpec::IMMEDIATE),
                attester: AttesterSpec::Open,
                funding: None,
                sealed: Some(SealedSpec {
                    buckets: buckets.clone(),
                    k: K,
                    trustees: keys
                        .iter()
                        .map(|k| hex::encode(k.public_key().to_bytes()))
                        .collect(),
                    reveals: vec![early],
                }),
            },
        )
        .await?;
    let id = created
        .id()
        .ok_or_else(|| FlowError::Campaign("the server returned a bad campaign id".into()))?;
    say(format!(
        "created sealed campaign {id} (entry {}): buckets {}, {K} of {N} trustees, early reveal \
         in {} s, then at the close",
        created.index,
        sf::list(&buckets),
        early - now
    ));

    // Key generation through the log: each trustee audits the log, then
    // posts what it owes (dealing, then ready).
    let mut audit = AuditOptions::new(client.base().to_owned());
    audit.log_key = Some(log.clone());
    let all: Vec<&TrusteeKeyPair> = keys.iter().collect();
    for round in 0..6 {
        let posted = trustees_step(&audit, client, &id, &all).await?;
        say(format!(
            "trustee round {}: {}",
            round + 1,
            if posted.is_empty() {
                "nothing to post".to_owned()
            } else {
                posted
                    .iter()
                    .map(|a| format!("{a:?}").to_lowercase())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
        if posted.is_empty() {
            break;
        }
    }
    let info = wait_for(client, &id, Duration::from_secs(30), "the joint key", |c| {
        c.sealed.as_ref().is_some_and(|s| s.joint_key.is_some())
    })
    .await?;
    say("joint key logged: the campaign takes sealed pledges".into());

    // The pledgers.
    let b = buckets.len();
    let info_ref = &info;
    let log_ref = &log;
    let results: Vec<Result<Pledger, FlowError>> = futures_util::stream::iter(0..opts.pledgers)
        .map(|i| async move { one_pledger(client, log_ref, info_ref, i, b, opts).await })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let mut pledgers = Vec::with_capacity(results.len());
    for r in results {
        pledgers.push(r?);
    }
    let real = pledgers.iter().filter(|p| p.pledged).count();
    let nulls = pledgers.iter().filter(|p| p.null).count();
    let cover_amendments = pledgers.iter().map(|p| p.cover_amendments).sum();
    say(format!(
        "{} pledgers: {real} sealed pledges, {} amended, {} withdrew (amended to null), {nulls} \
         null pledges (cover for unused tokens), {cover_amendments} cover re-encryptions; every \
         receipt verified",
        pledgers.len(),
        pledgers.iter().filter(|p| p.amended).count(),
        pledgers.iter().filter(|p| p.withdrawn).count(),
    ));

    // The early reveal: the server takes the snapshot once its time has
    // passed; trustees 1 and 3 share it.
    let wait = early.saturating_sub(sf::unix_now());
    if wait > 0 {
        say(format!("waiting {wait} s for the early reveal time"));
        tokio::time::sleep(Duration::from_secs(wait + 1)).await;
    }
    reveal(&audit, client, &id, &keys, 1, say).await?;
    say("early reveal logged".into());

    // The close, and its reveal.
    let closed_at = client.close_campaign(admin, &id).await?;
    say(format!(
        "closed by the organiser: CampaignClosed at log index {closed_at}"
    ));
    let last = reveal(&audit, client, &id, &keys, 2, say).await?;
    let served = last
        .sealed
        .as_ref()
        .map(|s| s.revealed.clone())
        .unwrap_or_default();

    // Every reveal equals what the demo pledged before its snapshot, in
    // the campaign object and in the log (entry proven by inclusion).
    let cp = flows::checkpoint(client, &mut probe, &log).await?;
    let mut reveals = Vec::new();
    for r in &served {
        let expected = expected_counts(&pledgers, r.snapshot, b);
        let logged = sf::revealed_from_log(client, &cp, &id, r.snapshot).await?;
        if r.counts != expected || logged.as_ref() != Some(&expected) {
            return Err(FlowError::BadLog(format!(
                "reveal of snapshot {}: the demo pledged {expected:?} before it, the server \
                 shows {:?}, the log holds {logged:?}",
                r.snapshot, r.counts
            )));
        }
        say(format!(
            "reveal of the snapshot at log index {}: counts per bucket {:?} = what the demo \
             pledged before it (checked in the campaign object and in the log)",
            r.snapshot, r.counts
        ));
        reveals.push((r.snapshot, r.counts.clone()));
    }
    let final_counts = reveals
        .last()
        .map(|(_, c)| c.clone())
        .ok_or_else(|| FlowError::BadLog("no reveal".into()))?;
    let histogram = flows::revealed_histogram(&buckets, &final_counts);
    let sent: u64 = pledgers.iter().map(|p| p.history.len() as u64).sum();
    let (statement_size, entries) =
        flows::verify_sealed_statement(&client.tally_statement(&id).await?, &log, &id)?;
    if entries != sent {
        return Err(FlowError::BadLog(format!(
            "the signed sealed statement counts {entries} sealed entries; the demo sent {sent}"
        )));
    }
    Ok(DemoReport {
        campaign: id.to_hex(),
        title: info.title.clone(),
        created: true,
        pledged: real,
        amended: pledgers.iter().filter(|p| p.amended).count(),
        withdrawn: pledgers.iter().filter(|p| p.withdrawn).count(),
        receipts_verified: usize::try_from(sent).unwrap_or(usize::MAX),
        rate_limited: pledgers.iter().map(|p| p.rate_limited).sum(),
        checkpoint_size: statement_size,
        live: final_counts.iter().sum(),
        active: recompute_active(&histogram),
        goal: info.goal,
        histogram,
        funding: None,
        kinds: [real, 0, 0],
        sealed: Some(SealedDemo {
            buckets,
            k: K,
            n: N as u8,
            null_pledges: nulls,
            cover_amendments,
            entries,
            reveals,
        }),
    })
}

async fn one_pledger(
    client: &Client,
    log: &NoteVerifier,
    c: &CampaignInfo,
    i: usize,
    b: usize,
    opts: &DemoOptions,
) -> Result<Pledger, FlowError> {
    let id = c.campaign_id;
    let buckets = sf::sealed_block(c)?
        .ok_or_else(|| FlowError::Campaign(format!("campaign {id} is not sealed")))?
        .buckets()
        .to_vec();
    let mut wallet = pledger_wallet(client, log).await?;
    let rate_limited = tokens_for(client, &mut wallet, log, opts).await?;
    let (first, amend, withdraw, cover) = plan(i, b);
    let mut p = Pledger {
        history: Vec::new(),
        pledged: first.is_some(),
        amended: amend.is_some(),
        withdrawn: withdraw,
        null: first.is_none(),
        cover_amendments: 0,
        rate_limited,
    };
    let now = sf::unix_now();
    let mut current = None;
    if let Some(bucket) = first {
        let s = flows::commit(
            client,
            &mut wallet,
            log,
            &id,
            buckets[bucket],
            Duration::ZERO,
        )
        .await?;
        p.history.push((s.index, Some(bucket)));
        current = Some(bucket);
    }
    if let Some(bucket) = amend {
        let s = flows::change(client, &mut wallet, log, &id, Some(buckets[bucket].into())).await?;
        p.history.push((s.index, Some(bucket)));
        current = Some(bucket);
    }
    if withdraw {
        let s = flows::change(client, &mut wallet, log, &id, None).await?;
        p.history.push((s.index, None));
        current = None;
    }
    // Cover, as `pledge cover --now` sends it: the unused token as a null
    // pledge; then, for some, a re-encryption of the current vector.
    let rounds = if cover {
        2
    } else {
        usize::from(first.is_none())
    };
    for _ in 0..rounds {
        let r = sf::send_cover(client, &mut wallet, log, Some(&id), true, now).await?;
        for (_, kind, s) in r.sent {
            if kind == sf::CoverKind::Reencryption {
                p.cover_amendments += 1;
            }
            p.history.push((s.index, current));
        }
    }
    let all_ok = wallet
        .data
        .pledges
        .iter()
        .all(|r| flows::receipts_valid(r, log));
    if !all_ok {
        return Err(FlowError::Receipt(format!(
            "pledger {i}: a stored receipt fails"
        )));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_scale_buckets() {
        assert_eq!(buckets_for(10), vec![1, 2, 5, 10]);
        assert_eq!(buckets_for(200), vec![1, 2, 5, 10, 20, 50, 100, 200]);
        assert_eq!(buckets_for(1), vec![1]);
    }
}
