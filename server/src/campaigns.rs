//! Creating a campaign: the one service behind `POST /v1/admin/campaigns`
//! and `pledged --demo` (SPEC R-CAMP-1…R-CAMP-3, R-API-20, R-PUB-1).
//!
//! The order keeps the issuer's secrets out of the log's path: the issuer
//! generates the campaign's key and stores it in its own durable transaction
//! (pending), the sequencer logs the CampaignOpened entry, then the issuer
//! marks the key as in use; if the entry is refused the key is deleted, and
//! a key left pending by a crash is deleted at the next start-up (SPEC
//! R-STORE-7).

use std::sync::Arc;

use pledge_protocol::campaign::{CampaignParams, Funding, Sealed};
use pledge_protocol::hash::CampaignId;

use crate::config::{MAX_PUBLISH_DELAY_MS, MAX_PUBLISH_MIN};
use crate::issuer::{AdminError, AttesterPolicy, Issuer};
use crate::ledger::sequencer::SequencerHandle;
use crate::ledger::{Accepted, Ledger, Proposal, Publication, SubmitError, publication_meta};

/// What an organiser asks for.
#[derive(Debug)]
pub struct NewCampaign {
    /// The definition's parameters (the nonce is drawn here).
    pub params: CampaignParams,
    /// Who may get tokens.
    pub attester: AttesterPolicy,
    /// How its pledges are published (SPEC R-PUB-1).
    pub publication: Publication,
    /// The funding extension of a conditional funding campaign (SPEC
    /// R-CAMP-5, R-API-23); `None` for a plain one.
    pub funding: Option<Funding>,
    /// The sealed block of a sealed campaign (SPEC R-SEAL-30, R-API-48;
    /// `params.reveal` is then sealed); `None` for a live one.
    pub sealed: Option<Sealed>,
}

/// Why a campaign was not created. Nothing was logged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The definition, the thresholds or the publication policy are refused.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The deadline is not in the future.
    #[error("the campaign's deadline is not in the future: give a later one")]
    DeadlineInPast,
    /// The CampaignOpened entry was refused or could not be logged.
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// A background task failed.
    #[error("internal error")]
    Internal,
}

/// Validates `c`, generates and stores the issuer key, and logs the
/// CampaignOpened entry; returns the campaign id and the entry's receipt
/// once it is durable.
///
/// # Errors
/// [`CreateError`]; nothing was logged and no key is kept.
pub async fn create(
    issuer: &Arc<Issuer>,
    ledger: &Ledger,
    sequencer: &SequencerHandle,
    c: NewCampaign,
    now: u64,
) -> Result<(CampaignId, Accepted), CreateError> {
    let p = &c.params;
    if p.deadline <= now {
        return Err(CreateError::DeadlineInPast);
    }
    // SPEC R-API-20: the worst-case tally statement must fit a signed note
    // (a funding statement, R-FUND-7, for a funding campaign).
    // A sealed campaign's statement (R-SEAL-80) has no histogram: it always
    // fits.
    let levels = c.funding.as_ref().map(|f| f.levels().len());
    if c.sealed.is_none()
        && p.threshold_min <= p.threshold_max
        && !ledger.statement_fits(p.threshold_min, p.threshold_max, levels)
    {
        return Err(AdminError::BadCampaign(format!(
            "thresholds {}..={} are too many for one signed tally statement on this log \
             (at most about 4,000 distinct thresholds; a log-scale menu of thresholds fits)",
            p.threshold_min, p.threshold_max
        ))
        .into());
    }
    let publication = c.publication;
    if !publication.in_bounds() {
        return Err(AdminError::BadCampaign(format!(
            "publication.min_pledges must be 1-{MAX_PUBLISH_MIN} and publication.max_delay_ms \
             at most {MAX_PUBLISH_DELAY_MS}"
        ))
        .into());
    }
    // RSA key generation and the issuer's durable write, off the async threads.
    let iss = issuer.clone();
    let (params, attester, funding, sealed) = (c.params, c.attester, c.funding, c.sealed);
    let entry = tokio::task::spawn_blocking(move || {
        iss.prepare_campaign_with_extensions(params, funding, sealed, attester)
    })
    .await
    .map_err(|_| CreateError::Internal)??;
    let id = entry.campaign();
    let mut meta = Vec::new();
    if publication != Publication::IMMEDIATE {
        let bytes = serde_json::to_vec(&publication).map_err(|_| CreateError::Internal)?;
        meta.push((publication_meta(&id), Some(bytes)));
        ledger.set_publication(id, publication);
    }
    let submitted = match Proposal::opening(entry) {
        Ok(p) => sequencer.submit(p, meta).await,
        Err(e) => Err(e),
    };
    let iss = issuer.clone();
    let ok = submitted.is_ok();
    // The key in use, or deleted: both durable writes of the issuer.
    let _ = tokio::task::spawn_blocking(move || {
        if ok {
            iss.opened(&id);
        } else {
            iss.discard(&id);
        }
    })
    .await;
    Ok((id, submitted?))
}
