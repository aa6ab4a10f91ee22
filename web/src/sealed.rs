//! Sealed campaigns in the browser (SPEC §17.3 "The web page", R-SEAL-50 …
//! R-SEAL-55): the joint key the page seals under, checked against the log;
//! sealed pledges, amendments and the withdrawal (an amendment to the null
//! vector); the cover null pledges; the status of a sealed pledge, read from
//! the wallet alone.
//!
//! The wallet keeps a sealed pledge in the records every pledge uses
//! (R-SEAL-53): `threshold` is the chosen bucket's value, or 0 for the null
//! vector; `withdrawn` stays false (a sealed pledge is never withdrawn,
//! R-SEAL-33); the entries are the sealed pledge (`kind` "pledge") and the
//! sealed amendments ("amend"); the pledge key is the used token's. The
//! wallet's format is unchanged: an older page or CLI loads it.
//!
//! The parts free of JavaScript and of the network ([`KeyScan`], [`bucket_index`],
//! [`precheck`], [`record`]) are unit-tested natively; the async flows run
//! in the browser (`tests/browser/e2e.mjs`).

use std::time::Duration;

use pledge_client::client::{CampaignInfo, CampaignState, Client};
use pledge_client::flows::{self, FlowError};
use pledge_client::wallet::{EntryRecord, PledgeRecord, Wallet, WalletData};
use pledge_protocol::dkg::{Complaint, Dealing, DkgContext, DkgTranscript, Ready};
use pledge_protocol::entry::{Entry, TrusteeMessageKind};
use pledge_protocol::hash::{CampaignId, Nullifier};
use pledge_protocol::note::NoteVerifier;
use pledge_protocol::sealed::{JointPublicKey, SealedTerms};
use pledge_protocol::sealed_pledge::{SealedAmendment, SealedPledge};
use pledge_protocol::tile::{BundleId, decode_bundle};
use rand::SeedableRng as _;
use rand::rngs::{StdRng, SysRng};
use serde_json::{Value, json};

use crate::shape::ErrorInfo;

/// Entries per log bundle (C2SP tlog-tiles).
const BUNDLE: u64 = 256;

/// Cover null pledges are sent before the deadline by at least this much,
/// so a page open until its due time sends it before the close.
pub const COVER_MARGIN_SECONDS: u64 = 600;

/// The largest cover delay: a cover pledge is due at most this long after
/// the page drew it (a week), so a page reopened within a week finds it due.
pub const COVER_MAX_DELAY_SECONDS: u64 = 7 * 86_400;

fn flow(e: &FlowError) -> ErrorInfo {
    ErrorInfo::from(e)
}

fn bad_log(what: impl Into<String>) -> ErrorInfo {
    ErrorInfo::new("bad_log", what)
}

/// The bucket index of `threshold` among the campaign's `buckets` (SPEC
/// R-SEAL-50: a sealed campaign's thresholds are its bucket values).
///
/// # Errors
/// `not_a_bucket`, naming the allowed values.
pub fn bucket_index(buckets: &[u32], threshold: u32) -> Result<usize, ErrorInfo> {
    buckets.iter().position(|&b| b == threshold).ok_or_else(|| {
        let allowed: Vec<String> = buckets.iter().map(u32::to_string).collect();
        ErrorInfo::new(
            "not_a_bucket",
            format!(
                "{threshold} is not a threshold of this sealed campaign: choose one of {}",
                allowed.join(", ")
            ),
        )
    })
}

/// The trustee messages of one campaign, read in log order from the entry
/// after its CampaignOpened entry on, into the transcript the ledger keeps
/// (SPEC R-SEAL-34, R-DKG-25 … R-DKG-27), until the key generation is
/// complete (R-DKG-28). The log indexes of the messages read are kept: each
/// is then proven by inclusion ([`verified_joint_key`]).
#[derive(Debug)]
pub struct KeyScan {
    campaign: CampaignId,
    ctx: DkgContext,
    transcript: DkgTranscript,
    /// Log index and bytes of every message of the campaign read.
    pub messages: Vec<(u64, Vec<u8>)>,
}

impl KeyScan {
    /// A scan for `campaign` with its key-generation context.
    ///
    /// # Errors
    /// `bad_log` for a context the protocol refuses (a definition the log
    /// should not hold).
    pub fn new(campaign: CampaignId, ctx: DkgContext) -> Result<Self, ErrorInfo> {
        let transcript = DkgTranscript::new(&ctx).map_err(|e| bad_log(e.to_string()))?;
        Ok(Self {
            campaign,
            ctx,
            transcript,
            messages: Vec::new(),
        })
    }

    /// Reads entry `index`; returns whether the key generation is complete.
    /// Entries of other kinds or campaigns are skipped. A message of the
    /// campaign that the transcript refuses is one the ledger refuses
    /// (R-SEAL-34): a log holding it is not a log this client follows.
    ///
    /// # Errors
    /// `bad_log` for an entry that does not decode or a refused message.
    pub fn feed(&mut self, index: u64, bytes: &[u8]) -> Result<bool, ErrorInfo> {
        if self.transcript.is_complete() {
            return Ok(true);
        }
        let entry = Entry::decode(bytes).map_err(|e| bad_log(format!("entry {index}: {e}")))?;
        let Entry::TrusteeMessage(m) = entry else {
            return Ok(false);
        };
        if m.campaign != self.campaign {
            return Ok(false);
        }
        let t = &mut self.transcript;
        let added = match m.kind {
            TrusteeMessageKind::Dealing => {
                Dealing::decode(&self.ctx, &m.body).and_then(|d| t.add_dealing(d))
            }
            TrusteeMessageKind::Complaint => Complaint::decode(&self.ctx, &m.body)
                .and_then(|c| t.add_complaint(c))
                .map(|_| ()),
            TrusteeMessageKind::Ready => {
                Ready::decode(&self.ctx, &m.body).and_then(|r| t.add_ready(r))
            }
        };
        added.map_err(|e| {
            bad_log(format!(
                "entry {index}: a trustee message the rules refuse ({e})"
            ))
        })?;
        self.messages.push((index, bytes.to_vec()));
        Ok(self.transcript.is_complete())
    }

    /// The joint key of the complete key generation (R-DKG-29), compared
    /// with the key the server serves (R-SEAL-51).
    ///
    /// # Errors
    /// `bad_log` when the key generation is not complete or has no key;
    /// `joint_key_mismatch` when `served` is another key.
    pub fn joint_key(&self, served: &str) -> Result<JointPublicKey, ErrorInfo> {
        let outcome = self
            .transcript
            .outcome()
            .map_err(|e| bad_log(format!("the log gives no joint key: {e}")))?;
        let logged = outcome.joint_key().clone();
        let logged_hex = hex::encode(logged.to_bytes());
        if served != logged_hex {
            return Err(ErrorInfo::new(
                "joint_key_mismatch",
                format!(
                    "campaign {}: the server serves the joint key {served} but the trustees' \
                     messages in the log give {logged_hex}. Refusing to seal: terms sealed under \
                     a key the trustees do not hold could be read by whoever holds it",
                    self.campaign
                ),
            ));
        }
        Ok(logged)
    }
}

/// The campaign's joint key, checked against the log (SPEC R-SEAL-51): the
/// CampaignOpened entry proven by inclusion gives the trustees and `k`;
/// the campaign's trustee messages, read from the log's bundles after it and
/// each proven by inclusion in a verified checkpoint, give the key (the
/// last ready message logs it, R-SEAL-34); the served `joint_key` must be
/// that key. The caller saves the wallet (the checkpoint is remembered).
///
/// # Errors
/// `sealed_key_not_ready` before the key is logged; `joint_key_mismatch`;
/// `bad_log`; the server's errors.
pub async fn verified_joint_key(
    client: &Client,
    wallet: &mut Wallet,
    log: &NoteVerifier,
    info: &CampaignInfo,
) -> Result<JointPublicKey, ErrorInfo> {
    let id = info.campaign_id;
    let sealed = info.sealed.as_ref().ok_or_else(|| not_sealed(&id))?;
    let served = sealed.joint_key.as_deref().ok_or_else(|| {
        ErrorInfo::new(
            "sealed_key_not_ready",
            format!(
                "the trustees of campaign {id} have not finished key generation: it takes \
                 pledges once their joint key is in the log"
            ),
        )
    })?;
    let cp = flows::checkpoint(client, wallet, log)
        .await
        .map_err(|e| flow(&e))?;
    let size = cp.checkpoint().size();
    let opened = info
        .opened_index
        .ok_or_else(|| bad_log(format!("campaign {id} has no opened_index")))?;
    let bytes = flows::proven_entry(client, opened, &cp)
        .await
        .map_err(|e| flow(&e))?;
    let definition = match Entry::decode(&bytes).map_err(|e| bad_log(e.to_string()))? {
        Entry::CampaignOpened(o) if o.definition.id() == id => o.definition,
        _ => {
            return Err(bad_log(format!(
                "entry {opened} is not the CampaignOpened entry of {id}"
            )));
        }
    };
    let ctx = pledge_protocol::ledger::dkg_context(&id, &definition).ok_or_else(|| {
        bad_log(format!(
            "campaign {id} is served as sealed but its logged definition is not"
        ))
    })?;
    let mut scan = KeyScan::new(id, ctx)?;
    let mut complete = false;
    let mut n = opened / BUNDLE;
    while !complete && n.saturating_mul(BUNDLE) < size {
        let width = u16::try_from((size - n * BUNDLE).min(BUNDLE)).unwrap_or(256);
        let bid = BundleId::new(n, width).map_err(|e| bad_log(e.to_string()))?;
        let data = client.bundle(&bid).await.map_err(|e| ErrorInfo::from(&e))?;
        let entries = decode_bundle(&data, &bid).map_err(|e| bad_log(e.to_string()))?;
        for (index, e) in (n * BUNDLE..).zip(entries) {
            if index > opened && scan.feed(index, e)? {
                complete = true;
                break;
            }
        }
        n += 1;
    }
    if !complete {
        return Err(bad_log(format!(
            "the server serves a joint key for campaign {id} but its log of size {size} does \
             not complete the key generation"
        )));
    }
    // The bundles are the server's word: every message read is proven.
    for (index, bytes) in &scan.messages {
        let proven = flows::proven_entry(client, *index, &cp)
            .await
            .map_err(|e| flow(&e))?;
        if proven != *bytes {
            return Err(bad_log(format!(
                "entry {index} differs between its bundle and its inclusion proof"
            )));
        }
    }
    scan.joint_key(served)
}

fn not_sealed(id: &CampaignId) -> ErrorInfo {
    ErrorInfo::new("campaign", format!("campaign {id} is not sealed"))
}

/// What the page asked of a sealed campaign: a bucket, or the null vector
/// (withdraw; a cover pledge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedChange {
    /// Pledge (or, from the null vector, amend to) this bucket index.
    Pledge(Option<usize>),
    /// Amend to this bucket index (`None`: withdraw, the null vector).
    Amend(Option<usize>),
}

/// What [`precheck`] found to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Sign a sealed pledge with the unused token.
    NewPledge,
    /// Replace the wallet's sealed pledge that was never sent (a cover null
    /// pledge: nobody saw it) by a new one.
    ReplaceUnsent,
    /// Sign a sealed amendment.
    Amend,
    /// Resend the unacknowledged entry unchanged (no new delay).
    Resend,
}

/// Checks what the wallet alone refuses, before any wait (SPEC R-SEAL-52):
/// a second pledge (amend instead), an amendment without a pledge, a
/// pledge without a token, a change to what the pledge already is.
///
/// # Errors
/// `campaign`, `no_token`.
pub fn precheck(
    data: &WalletData,
    id: &CampaignId,
    buckets: &[u32],
    change: SealedChange,
) -> Result<Plan, ErrorInfo> {
    let rec = data.pledge_for(id);
    let value = |b: Option<usize>| b.and_then(|i| buckets.get(i).copied()).unwrap_or(0);
    match (change, rec) {
        (SealedChange::Pledge(_), None) => {
            if data.unused_token(id).is_none() {
                return Err(ErrorInfo::new(
                    "no_token",
                    format!(
                        "no unused token for campaign {id} in this wallet: obtain tokens while \
                         it is open"
                    ),
                ));
            }
            Ok(Plan::NewPledge)
        }
        (SealedChange::Pledge(b), Some(r)) if r.threshold == 0 => {
            if r.entries.len() == 1 && r.entries[0].receipt.is_none() {
                Ok(Plan::ReplaceUnsent)
            } else if r.unacknowledged().is_some() {
                Ok(Plan::Resend)
            } else if b.is_none() {
                Err(nothing_to_change(id))
            } else {
                // A null pledge in the log (cover, or withdrawn): pledging is
                // amending it, and looks the same (R-SEAL-31).
                Ok(Plan::Amend)
            }
        }
        (SealedChange::Pledge(_), Some(r)) if r.unacknowledged().is_some() => Ok(Plan::Resend),
        (SealedChange::Pledge(_), Some(_)) => Err(ErrorInfo::new(
            "campaign",
            format!("you already pledged to {id}; amend or withdraw that pledge instead"),
        )),
        (SealedChange::Amend(_), None) => Err(ErrorInfo::new(
            "no_token",
            format!("no pledge of yours on {id} in this wallet"),
        )),
        (SealedChange::Amend(_), Some(r)) if r.unacknowledged().is_some() => Ok(Plan::Resend),
        (SealedChange::Amend(b), Some(r)) if r.threshold == value(b) => Err(nothing_to_change(id)),
        (SealedChange::Amend(_), Some(_)) => Ok(Plan::Amend),
    }
}

fn nothing_to_change(id: &CampaignId) -> ErrorInfo {
    ErrorInfo::new(
        "campaign",
        format!("your sealed pledge on {id} is already that: nothing to change, nothing sent"),
    )
}

/// Records a signed sealed entry in the wallet's data (SPEC R-SEAL-53) as
/// `plan` says: a new record (and its token used), the unsent pledge
/// replaced, or an amendment appended. `value` is the bucket's threshold, 0
/// for the null vector.
///
/// # Errors
/// `no_token` when the record or token `plan` needs is gone.
pub fn record(
    data: &mut WalletData,
    id: &CampaignId,
    nullifier: &Nullifier,
    plan: Plan,
    entry: EntryRecord,
    value: u32,
) -> Result<(), ErrorInfo> {
    let gone = || ErrorInfo::new("no_token", format!("the pledge on {id} is gone"));
    match plan {
        Plan::NewPledge => {
            for t in &mut data.tokens {
                if t.campaign == *id && t.nullifier() == *nullifier {
                    t.used = true;
                }
            }
            data.pledges.push(PledgeRecord {
                campaign: id.to_hex(),
                nullifier: nullifier.to_hex(),
                threshold: value,
                withdrawn: false,
                entries: vec![entry],
            });
        }
        Plan::ReplaceUnsent => {
            let r = data.pledge_for_mut(id).ok_or_else(gone)?;
            r.threshold = value;
            r.entries = vec![entry];
        }
        Plan::Amend => {
            let r = data.pledge_for_mut(id).ok_or_else(gone)?;
            r.threshold = value;
            r.entries.push(entry);
        }
        Plan::Resend => {}
    }
    Ok(())
}

/// The entry record of a signed sealed entry.
fn entry_record(kind: &str, seq: u32, bytes: &[u8], send_after: Option<u64>) -> EntryRecord {
    EntryRecord::signed(kind, seq, bytes, send_after)
}

/// A sealed campaign as the page pledges in it: its buckets and the
/// checked joint key.
pub struct Sealed {
    /// The bucket values.
    pub buckets: Vec<u32>,
    /// The joint key, checked against the log.
    pub key: JointPublicKey,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("buckets", &self.buckets)
            .finish_non_exhaustive()
    }
}

/// The campaign's buckets and checked key, if it is a sealed campaign
/// (`None`: a live one). Refuses a campaign that is not open.
///
/// # Errors
/// As [`verified_joint_key`]; `campaign` for a closed campaign.
pub async fn sealed_campaign(
    client: &Client,
    wallet: &mut Wallet,
    log: &NoteVerifier,
    info: &CampaignInfo,
) -> Result<Option<Sealed>, ErrorInfo> {
    let Some(s) = &info.sealed else {
        return Ok(None);
    };
    if info.state != CampaignState::Open {
        return Err(ErrorInfo::new(
            "campaign",
            format!("campaign {} is {}", info.campaign_id, info.state),
        ));
    }
    let key = verified_joint_key(client, wallet, log, info).await?;
    Ok(Some(Sealed {
        buckets: s.buckets.clone(),
        key,
    }))
}

/// Signs `change` on sealed campaign `id` and saves it in the wallet,
/// unsent, due at `send_after` (SPEC R-SEAL-52): a sealed pledge with the
/// unused token, the replacement of an unsent null pledge, or a sealed
/// amendment with the next sequence number (a withdrawal is an amendment to
/// the null vector, R-SEAL-33). Returns true when an earlier entry is to be
/// resent unchanged.
///
/// # Errors
/// As [`precheck`]; `crypto`; the wallet's errors.
pub fn sign(
    wallet: &mut Wallet,
    id: &CampaignId,
    campaign: &Sealed,
    change: SealedChange,
    send_after: Option<u64>,
) -> Result<bool, ErrorInfo> {
    let plan = precheck(&wallet.data, id, &campaign.buckets, change)?;
    if plan == Plan::Resend {
        return Ok(true);
    }
    let bucket = match change {
        SealedChange::Pledge(b) | SealedChange::Amend(b) => b,
    };
    let value = bucket
        .and_then(|i| campaign.buckets.get(i).copied())
        .unwrap_or(0);
    let b = campaign.buckets.len();
    let crypto = |e: &dyn std::fmt::Display| ErrorInfo::new("crypto", e.to_string());
    let mut rng = StdRng::try_from_rng(&mut SysRng).map_err(|e| crypto(&e))?;
    let (nullifier, entry) = match plan {
        Plan::NewPledge | Plan::ReplaceUnsent => {
            let tok = match plan {
                Plan::NewPledge => wallet.data.unused_token(id),
                _ => wallet
                    .data
                    .pledge_for(id)
                    .and_then(|r| Nullifier::from_hex(&r.nullifier).ok())
                    .and_then(|n| wallet.data.token_by_nullifier(&n)),
            }
            .ok_or_else(|| ErrorInfo::new("no_token", format!("no token for campaign {id}")))?;
            let key = tok.key();
            let ctx = SealedPledge::context_of(id, &tok.token);
            let terms = SealedTerms::seal(&ctx, &campaign.key, b, bucket, &mut rng)
                .map_err(|e| crypto(&e))?;
            let p =
                SealedPledge::sign(*id, tok.token.clone(), terms, &key).map_err(|e| crypto(&e))?;
            let n = p.nullifier();
            let bytes = Entry::SealedPledge(Box::new(p))
                .encode()
                .map_err(|e| crypto(&e))?;
            (n, entry_record("pledge", 0, &bytes, send_after))
        }
        Plan::Amend | Plan::Resend => {
            let rec = wallet
                .data
                .pledge_for(id)
                .ok_or_else(|| ErrorInfo::new("no_token", format!("no pledge on {id}")))?;
            let n = Nullifier::from_hex(&rec.nullifier)
                .map_err(|_| ErrorInfo::new("wallet_corrupt", "a stored nullifier is damaged"))?;
            let key = wallet
                .data
                .token_by_nullifier(&n)
                .map(pledge_client::wallet::TokenRecord::key)
                .ok_or_else(|| {
                    ErrorInfo::new(
                        "no_token",
                        "the pledge key of this pledge is not in the wallet",
                    )
                })?;
            let seq = rec.next_seq();
            let ctx = SealedAmendment::context_of(id, &n, seq, &key.public_key());
            let terms = SealedTerms::seal(&ctx, &campaign.key, b, bucket, &mut rng)
                .map_err(|e| crypto(&e))?;
            let bytes =
                Entry::SealedAmended(Box::new(SealedAmendment::sign(*id, n, seq, terms, &key)))
                    .encode()
                    .map_err(|e| crypto(&e))?;
            (n, entry_record("amend", seq, &bytes, send_after))
        }
    };
    record(&mut wallet.data, id, &nullifier, plan, entry, value)?;
    wallet.save().map_err(|e| ErrorInfo::from(&e))?;
    Ok(false)
}

/// The due time of a cover null pledge drawn at `now` for a campaign
/// closing at `deadline` (SPEC R-SEAL-54): uniform in `[now, last]` where
/// `last` is `COVER_MARGIN_SECONDS` before the deadline and at most
/// `COVER_MAX_DELAY_SECONDS` after now; `None` when the campaign closes
/// too soon for one. `draw` is uniform in `[0, 1)`.
pub fn cover_due(now: u64, deadline: u64, draw: f64) -> Option<u64> {
    let last = deadline
        .checked_sub(COVER_MARGIN_SECONDS)?
        .min(now.saturating_add(COVER_MAX_DELAY_SECONDS));
    if last <= now {
        return None;
    }
    let span = last - now;
    // INVARIANT: `draw` in [0, 1) and span < 2^53: the product fits.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let offset = (draw.clamp(0.0, 1.0) * span as f64) as u64;
    Some(now + offset.min(span))
}

/// Cover (SPEC R-SEAL-54): for every open sealed campaign with its key
/// logged for which the wallet holds an unused token and no pledge, signs a
/// null sealed pledge and saves it unsent, due at a random time
/// ([`cover_due`]); the page's sender (`sendPending({})`) sends it once
/// due. Returns `[{campaign, sendAfter}]`. A campaign whose key is not
/// logged yet is left for a later call.
///
/// # Errors
/// `joint_key_mismatch`, `bad_log`, the server's and the wallet's errors.
pub async fn schedule_cover(
    client: &Client,
    wallet: &mut Wallet,
    log: &NoteVerifier,
    now: u64,
) -> Result<Vec<Value>, ErrorInfo> {
    let campaigns = client.campaigns().await.map_err(|e| ErrorInfo::from(&e))?;
    let mut out = Vec::new();
    for info in campaigns {
        let id = info.campaign_id;
        let ready = info.state == CampaignState::Open
            && info.sealed.as_ref().is_some_and(|s| s.joint_key.is_some());
        if !ready
            || wallet.data.pledge_for(&id).is_some()
            || wallet.data.unused_token(&id).is_none()
        {
            continue;
        }
        let draw = random_unit()?;
        let Some(due) = cover_due(now, info.deadline, draw) else {
            continue;
        };
        let Some(campaign) = sealed_campaign(client, wallet, log, &info).await? else {
            continue;
        };
        sign(
            wallet,
            &id,
            &campaign,
            SealedChange::Pledge(None),
            Some(due),
        )?;
        out.push(json!({"campaign": id.to_hex(), "sendAfter": due}));
    }
    Ok(out)
}

/// After entries of mine were sent (`sent`: campaign hex and answer): for
/// each sealed campaign among them, the next cover re-encryption at a new
/// random time (SPEC R-SEAL-44), as the CLI does after its own entries.
/// Best effort: the entries are logged whatever happens here, and a
/// campaign list that cannot be read (or a wallet that cannot be saved)
/// leaves the earlier schedule, whose time still comes.
pub async fn after_sent(client: &Client, wallet: &mut Wallet, sent: &[(String, flows::Submitted)]) {
    // Only sealed campaigns have a cover schedule (drawn when their tokens
    // came): a live pledge costs no extra request.
    let due = &wallet.data.cover.due;
    if wallet.data.cover.off || !sent.iter().any(|(c, _)| due.contains_key(c)) {
        return;
    }
    let Ok(list) = client.campaigns().await else {
        return;
    };
    let now = flows::sealed::unix_now();
    for info in list.iter().filter(|c| c.sealed.is_some()) {
        if sent.iter().any(|(c, _)| *c == info.campaign_id.to_hex()) {
            let _ = flows::sealed::after_my_entry(wallet, info, now);
        }
    }
}

/// The page's shape of a [`flows::sealed::CoverReport`].
pub fn cover_report(r: &flows::sealed::CoverReport) -> Value {
    json!({
        "off": r.off,
        "sent": r.sent.iter().map(|(c, kind, s)| json!({
            "campaign": c,
            "kind": match kind {
                flows::sealed::CoverKind::NullPledge => "null_pledge",
                flows::sealed::CoverKind::Reencryption => "reencryption",
            },
            "index": s.index,
        })).collect::<Vec<_>>(),
        "waiting": r.waiting.iter().map(|(c, due)| json!({"campaign": c, "sendAfter": due}))
            .collect::<Vec<_>>(),
        "noKeyYet": r.no_key_yet,
    })
}

/// A uniform draw in `[0, 1)` from the system's CSPRNG.
fn random_unit() -> Result<f64, ErrorInfo> {
    let d = flows::random_delay(Duration::from_secs(1 << 20)).map_err(|e| flow(&e))?;
    // INVARIANT: at most 2^20 s, exact in a double.
    #[allow(clippy::cast_precision_loss)]
    let x = d.as_secs_f64() / (1u64 << 20) as f64;
    Ok(x.min(0.999_999_999))
}

/// The status of my sealed pledge on `id` from the wallet alone (SPEC
/// R-SEAL-55): `{campaign, sealed: true, threshold, null, state, sendAfter,
/// index, receiptVerified, entries}`, `null` when the wallet has none.
/// Nothing is asked of the server: what the campaign's reveals say is the
/// campaign object's (`sealed.revealed`).
pub fn status(data: &WalletData, log: &NoteVerifier, id: &CampaignId) -> Value {
    let Some(r) = data.pledge_for(id) else {
        return Value::Null;
    };
    let pending = r.unacknowledged();
    // SPEC R-SEAL-44: the next cover re-encryption of a logged pledge.
    let cover = data
        .cover
        .due
        .get(&r.campaign)
        .filter(|d| {
            !data.cover.off
                && pending.is_none()
                && d.amendments < flows::sealed::MAX_COVER_AMENDMENTS
        })
        .map(|d| json!({"at": d.at, "sent": d.amendments}));
    json!({
        "coverDue": cover,
        "campaign": r.campaign,
        "sealed": true,
        "threshold": r.threshold,
        "null": r.threshold == 0,
        "state": if pending.is_some() { "pending" } else { "logged" },
        "sendAfter": pending.and_then(|e| e.send_after),
        "index": r.entries.iter().rev().find_map(|e| e.index),
        "receiptVerified": flows::receipts_valid(r, log),
        "entries": r.entries.len(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use pledge_protocol::dkg::{TrusteeKey, TrusteeKeyPair};
    use pledge_protocol::entry::TrusteeMessage;

    fn id(b: u8) -> CampaignId {
        CampaignId::from_hex(&hex::encode([b; 32])).unwrap()
    }

    /// A complete key generation of 3 trustees (k = 2) for campaign `c`, as
    /// TrusteeMessage entry bytes in log order.
    fn key_generation(c: &CampaignId, seed: u64) -> (DkgContext, Vec<Vec<u8>>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let pairs: Vec<TrusteeKeyPair> =
            (0..3).map(|_| TrusteeKeyPair::generate(&mut rng)).collect();
        let ctx = DkgContext {
            campaign: *c.as_bytes(),
            k: 2,
            trustees: pairs
                .iter()
                .map(TrusteeKeyPair::public_key)
                .collect::<Vec<TrusteeKey>>(),
        };
        let msg = |kind, body: Vec<u8>| {
            Entry::TrusteeMessage(TrusteeMessage {
                campaign: *c,
                kind,
                body,
            })
            .encode()
            .unwrap()
        };
        let mut t = DkgTranscript::new(&ctx).unwrap();
        let mut out = Vec::new();
        for (kp, i) in pairs.iter().zip(1u8..) {
            let d = Dealing::deal(&ctx, kp, i, &mut rng).unwrap();
            out.push(msg(TrusteeMessageKind::Dealing, d.as_bytes().to_vec()));
            t.add_dealing(d).unwrap();
        }
        let digest = t.digest();
        for (kp, i) in pairs.iter().zip(1u8..) {
            out.push(msg(
                TrusteeMessageKind::Ready,
                Ready::sign(&ctx, kp, i, digest).unwrap().encode(),
            ));
        }
        (ctx, out)
    }

    #[test]
    fn the_scan_takes_the_logged_key_and_refuses_another() {
        let c = id(7);
        let (ctx, msgs) = key_generation(&c, 1);
        let (_, other) = key_generation(&id(8), 2);
        let mut scan = KeyScan::new(c, ctx.clone()).unwrap();
        // Another campaign's messages and other entries are skipped.
        assert!(!scan.feed(10, &other[0]).unwrap());
        let mut done = false;
        for (i, m) in (11u64..).zip(&msgs) {
            assert!(!done, "complete before the last ready message");
            done = scan.feed(i, m).unwrap();
        }
        assert!(done, "the last ready message completes the key generation");
        assert_eq!(scan.messages.len(), 6);
        assert_eq!(scan.messages[0].0, 11);
        let dealings: Vec<Dealing> = msgs[..3]
            .iter()
            .map(|m| {
                let Entry::TrusteeMessage(m) = Entry::decode(m).unwrap() else {
                    panic!("not a trustee message")
                };
                Dealing::decode(&ctx, &m.body).unwrap()
            })
            .collect();
        let outcome = pledge_protocol::dkg::DkgOutcome::compute(&ctx, &dealings, &[]).unwrap();
        let expected = hex::encode(outcome.joint_key().to_bytes());
        assert_eq!(
            hex::encode(scan.joint_key(&expected).unwrap().to_bytes()),
            expected
        );
        // A served key that is not the logged one is refused.
        let mut wrong = hex::decode(&expected).unwrap();
        wrong[0] ^= 1;
        assert_eq!(
            scan.joint_key(&hex::encode(wrong)).unwrap_err().code,
            "joint_key_mismatch"
        );
    }

    #[test]
    fn an_incomplete_or_disordered_key_generation_gives_no_key() {
        let c = id(9);
        let (ctx, msgs) = key_generation(&c, 3);
        // Without the last ready message: no key, whatever the server says.
        let mut scan = KeyScan::new(c, ctx.clone()).unwrap();
        for (i, m) in (0u64..).zip(&msgs[..5]) {
            assert!(!scan.feed(i, m).unwrap());
        }
        assert_eq!(
            scan.joint_key(&"00".repeat(32)).unwrap_err().code,
            "bad_log"
        );
        // A ready message before the dealings is one the rules refuse.
        let mut scan = KeyScan::new(c, ctx).unwrap();
        assert_eq!(scan.feed(0, &msgs[3]).unwrap_err().code, "bad_log");
        // Bytes that are no entry.
        assert_eq!(scan.feed(1, b"junk").unwrap_err().code, "bad_log");
    }

    #[test]
    fn thresholds_are_bucket_values() {
        assert_eq!(bucket_index(&[1, 10, 100], 10).unwrap(), 1);
        let e = bucket_index(&[1, 10, 100], 11).unwrap_err();
        assert_eq!(e.code, "not_a_bucket");
        assert!(e.message.contains("1, 10, 100"), "{}", e.message);
    }

    #[test]
    fn cover_is_due_before_the_deadline() {
        let now = 1_000_000;
        let deadline = now + 3600;
        assert_eq!(cover_due(now, deadline, 0.0), Some(now));
        let last = deadline - COVER_MARGIN_SECONDS;
        assert_eq!(cover_due(now, deadline, 0.999_999_999), Some(last - 1));
        assert_eq!(cover_due(now, deadline, 1.0), Some(last));
        let mid = cover_due(now, deadline, 0.5).unwrap();
        assert!(now < mid && mid < last);
        // Too close to the deadline: no cover pledge.
        assert_eq!(cover_due(now, now + COVER_MARGIN_SECONDS, 0.5), None);
        assert_eq!(cover_due(now, now, 0.5), None);
        // Far deadlines: within the largest delay.
        let far = cover_due(now, now + 365 * 86_400, 1.0).unwrap();
        assert_eq!(far, now + COVER_MAX_DELAY_SECONDS);
    }

    fn entry(kind: &str, seq: u32, acked: bool) -> EntryRecord {
        EntryRecord {
            kind: kind.into(),
            seq,
            entry: format!("{kind}{seq}"),
            index: acked.then_some(u64::from(seq)),
            receipt: acked.then(|| "r".into()),
            send_after: None,
        }
    }

    fn with_pledge(c: &CampaignId, threshold: u32, entries: Vec<EntryRecord>) -> WalletData {
        let mut d = WalletData::default();
        d.pledges.push(PledgeRecord {
            campaign: c.to_hex(),
            nullifier: "00".repeat(32),
            threshold,
            withdrawn: false,
            entries,
        });
        d
    }

    #[test]
    fn what_the_wallet_allows() {
        let c = id(1);
        let b = [1, 10, 100];
        let empty = WalletData::default();
        assert_eq!(
            precheck(&empty, &c, &b, SealedChange::Pledge(Some(0)))
                .unwrap_err()
                .code,
            "no_token"
        );
        assert_eq!(
            precheck(&empty, &c, &b, SealedChange::Amend(Some(0)))
                .unwrap_err()
                .code,
            "no_token"
        );
        // An unsent cover null pledge is replaced by the person's pledge.
        let unsent = with_pledge(&c, 0, vec![entry("pledge", 0, false)]);
        assert_eq!(
            precheck(&unsent, &c, &b, SealedChange::Pledge(Some(1))).unwrap(),
            Plan::ReplaceUnsent
        );
        // A null pledge in the log: pledging amends it.
        let null = with_pledge(&c, 0, vec![entry("pledge", 0, true)]);
        assert_eq!(
            precheck(&null, &c, &b, SealedChange::Pledge(Some(1))).unwrap(),
            Plan::Amend
        );
        assert_eq!(
            precheck(&null, &c, &b, SealedChange::Amend(None))
                .unwrap_err()
                .code,
            "campaign"
        );
        // A bucket pledge: a second pledge is refused, amending works,
        // amending to the same bucket sends nothing.
        let ten = with_pledge(&c, 10, vec![entry("pledge", 0, true)]);
        assert_eq!(
            precheck(&ten, &c, &b, SealedChange::Pledge(Some(2)))
                .unwrap_err()
                .code,
            "campaign"
        );
        assert_eq!(
            precheck(&ten, &c, &b, SealedChange::Amend(Some(2))).unwrap(),
            Plan::Amend
        );
        assert_eq!(
            precheck(&ten, &c, &b, SealedChange::Amend(None)).unwrap(),
            Plan::Amend
        );
        assert_eq!(
            precheck(&ten, &c, &b, SealedChange::Amend(Some(1)))
                .unwrap_err()
                .code,
            "campaign"
        );
        // An unacknowledged amendment is resent first.
        let lost = with_pledge(
            &c,
            100,
            vec![entry("pledge", 0, true), entry("amend", 1, false)],
        );
        assert_eq!(
            precheck(&lost, &c, &b, SealedChange::Amend(None)).unwrap(),
            Plan::Resend
        );
    }

    #[test]
    fn records_keep_the_bucket_and_never_withdraw() {
        let c = id(2);
        let n = Nullifier::from_hex(&"00".repeat(32)).unwrap();
        let mut d = with_pledge(&c, 0, vec![entry("pledge", 0, false)]);
        record(
            &mut d,
            &c,
            &n,
            Plan::ReplaceUnsent,
            entry("pledge", 0, false),
            10,
        )
        .unwrap();
        let r = d.pledge_for(&c).unwrap();
        assert_eq!((r.threshold, r.entries.len(), r.withdrawn), (10, 1, false));
        record(&mut d, &c, &n, Plan::Amend, entry("amend", 1, false), 0).unwrap();
        let r = d.pledge_for(&c).unwrap();
        assert_eq!((r.threshold, r.entries.len(), r.withdrawn), (0, 2, false));
        assert_eq!(
            record(
                &mut WalletData::default(),
                &c,
                &n,
                Plan::Amend,
                entry("amend", 1, false),
                0
            )
            .unwrap_err()
            .code,
            "no_token"
        );
    }
}
