//! Sealed campaigns for pledgers (SPEC §17.3, R-SEAL-40 … R-SEAL-47): the
//! joint key a pledge is sealed under, replayed from the campaign's trustee
//! messages proven in the log (never taken from the campaign object alone);
//! sealed pledges, amendments and withdrawals (an amendment to the null
//! vector); cover traffic (a null pledge for every token the person does not
//! pledge with, re-encryptions of the current vector); the revealed counts,
//! read from their entry proven in the log.

use std::time::Duration;

use pledge_protocol::campaign::Sealed;
use pledge_protocol::checkpoint::SignedCheckpoint;
use pledge_protocol::entry::{Entry, EntryKind};
use pledge_protocol::hash::{CampaignId, Nullifier};
use pledge_protocol::ledger::{LedgerState, PledgeKeys};
use pledge_protocol::note::NoteVerifier;
use pledge_protocol::pledge::Terms;
use pledge_protocol::sealed::{JointPublicKey, SealedTerms};
use pledge_protocol::sealed_pledge::{SealedAmendment, SealedPledge};
use pledge_protocol::tile::decode_bundle;
use rand::SeedableRng as _;
use rand::rngs::{StdRng, SysRng};

use super::{
    FlowError, Submitted, bad_log, bundle_for, checkpoint, definition_of, key_for, prove_included,
    random_delay, send_and_record,
};
use crate::client::{CampaignInfo, CampaignState, Client};
use crate::wallet::{CoverDue, EntryRecord, PledgeRecord, Wallet};

/// Cover amendments (re-encryptions of the current vector) a client sends
/// per sealed pledge (SPEC R-SEAL-44).
pub const MAX_COVER_AMENDMENTS: u8 = 2;

/// Cover entries are due at least this long before the deadline (SPEC
/// R-SEAL-43), so that they are logged before the close.
pub const COVER_MARGIN_SECS: u64 = 60;

/// The wallet kind of a cover entry (a null pledge or a re-encryption).
pub const COVER_KIND: &str = "cover";

/// Unix seconds now (the browser's clock in a page).
pub fn unix_now() -> u64 {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    {
        // INVARIANT: Date.now() is a non-negative number of milliseconds.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let s = (js_sys::Date::now() / 1000.0) as u64;
        s
    }
    #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// The campaign's sealed block, from its own definition (checked against
/// its id); `None` for a campaign that is not sealed.
///
/// # Errors
/// [`FlowError::BadLog`] for a served definition that is damaged or not the
/// campaign's.
pub fn sealed_block(c: &CampaignInfo) -> Result<Option<Sealed>, FlowError> {
    Ok(definition_of(c)?.sealed_block().cloned())
}

/// The bucket of `terms` in a sealed campaign (SPEC R-SEAL-41): a plain
/// threshold that is one of the campaign's bucket values.
///
/// # Errors
/// [`FlowError::NotABucket`] for any other threshold (naming the allowed
/// values), [`FlowError::Campaign`] for terms of another kind.
pub fn bucket_of(c: &CampaignInfo, block: &Sealed, terms: &Terms) -> Result<usize, FlowError> {
    let Terms::Threshold { t } = terms else {
        return Err(FlowError::Campaign(format!(
            "campaign {} is sealed: it takes a plain threshold (one of {}), no support or funding",
            c.campaign_id,
            list(block.buckets())
        )));
    };
    block
        .buckets()
        .iter()
        .position(|b| b == t)
        .ok_or_else(|| FlowError::NotABucket {
            campaign: c.campaign_id.to_hex(),
            given: *t,
            allowed: block.buckets().to_vec(),
        })
}

/// The bucket values as `1, 10, 100`.
pub fn list(buckets: &[u32]) -> String {
    buckets
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The threshold a wallet records for a sealed pledge of `bucket` (`0`: the
/// null vector; bucket values are at least 1, R-SEAL-30).
fn threshold_of(block: &Sealed, bucket: Option<usize>) -> u32 {
    bucket
        .and_then(|b| block.buckets().get(b).copied())
        .unwrap_or(0)
}

/// The bucket a wallet's record of a sealed pledge holds (`None`: null).
pub fn bucket_of_record(block: &Sealed, rec: &PledgeRecord) -> Option<usize> {
    block.buckets().iter().position(|b| *b == rec.threshold)
}

fn rng() -> Result<StdRng, FlowError> {
    StdRng::try_from_rng(&mut SysRng)
        .map_err(|e| FlowError::Crypto(format!("no randomness from the system: {e}")))
}

/// The pinned log's verifier (the wallet is pinned before anything is
/// signed).
fn pinned_verifier(wallet: &Wallet) -> Result<NoteVerifier, FlowError> {
    let p = wallet
        .data
        .log
        .as_ref()
        .ok_or_else(|| FlowError::Wallet2("no log pinned in this wallet yet".into()))?;
    NoteVerifier::from_text(&p.verifier_key).map_err(bad_log)
}

/// SPEC R-SEAL-40: the joint key to seal under in campaign `c`, as the log
/// gives it: replayed by the ledger rules from the campaign's CampaignOpened
/// entry and trustee messages, each proven by inclusion to `cp` (once per
/// wallet: the key is remembered with the pinned log), then compared with
/// the key the campaign object serves.
///
/// # Errors
/// [`FlowError::KeyNotReady`] when the log has no joint key yet and the
/// server serves none; [`FlowError::JointKeyMismatch`] when the served key
/// is not the logged one (or is served before the log has one);
/// [`FlowError::BadLog`] for a log that fails a check.
pub async fn verified_joint_key(
    client: &Client,
    wallet: &mut Wallet,
    cp: &SignedCheckpoint,
    c: &CampaignInfo,
) -> Result<JointPublicKey, FlowError> {
    let id = c.campaign_id;
    let hex_id = id.to_hex();
    let served_text = c.sealed.as_ref().and_then(|s| s.joint_key.clone());
    let served = served_text.as_deref().map(|t| {
        let mut b = [0u8; 32];
        hex::decode_to_slice(t, &mut b)
            .ok()
            .and_then(|()| JointPublicKey::from_bytes(b).ok())
    });
    let remembered = wallet
        .data
        .log
        .as_ref()
        .and_then(|p| p.joint_keys.get(&hex_id))
        .and_then(|t| {
            let mut b = [0u8; 32];
            hex::decode_to_slice(t, &mut b).ok()?;
            JointPublicKey::from_bytes(b).ok()
        });
    let logged = match remembered {
        Some(k) => Some(k),
        None => {
            let k = joint_key_from_log(client, cp, c).await?;
            if let (Some(k), Some(p)) = (&k, wallet.data.log.as_mut()) {
                p.joint_keys
                    .insert(hex_id.clone(), hex::encode(k.to_bytes()));
            }
            k
        }
    };
    let mismatch = |logged: String| FlowError::JointKeyMismatch {
        campaign: hex_id.clone(),
        served: served_text.clone().unwrap_or_default(),
        logged,
        size: cp.checkpoint().size(),
    };
    match (served, logged) {
        (None, None) => Err(FlowError::KeyNotReady(hex_id.clone())),
        (Some(_), None) => Err(mismatch("none yet".into())),
        (Some(s), Some(l)) if s.as_ref() != Some(&l) => Err(mismatch(hex::encode(l.to_bytes()))),
        (_, Some(l)) => Ok(l),
    }
}

/// Replays campaign `c`'s key generation from the log: its CampaignOpened
/// entry and then its trustee messages in log order, each proven by
/// inclusion to `cp`, through the ledger rules (R-SEAL-34), up to the entry
/// that logs the joint key. Other entries are skipped by their kind byte
/// (the ready messages sign the transcript, so a message left out of a
/// bundle makes the replay fail, never gives another key). `None` when the
/// log up to `cp` has no joint key for it.
///
/// # Errors
/// [`FlowError::BadLog`] for an unproven entry or one the rules refuse.
pub async fn joint_key_from_log(
    client: &Client,
    cp: &SignedCheckpoint,
    c: &CampaignInfo,
) -> Result<Option<JointPublicKey>, FlowError> {
    let id = c.campaign_id;
    let opened = c
        .opened_index
        .ok_or_else(|| bad_log(format!("campaign {id} has no opened_index")))?;
    let mut state = LedgerState::new();
    let mut keys = PledgeKeys::new();
    let open = super::proven_entry(client, opened, cp).await?;
    match Entry::decode(&open).map_err(bad_log)? {
        e @ Entry::CampaignOpened(_) if e.campaign() == id => state
            .verify_and_apply(e, &mut keys)
            .map_err(|e| bad_log(format!("entry {opened}: {e}")))?,
        _ => {
            return Err(bad_log(format!(
                "entry {opened} is not the CampaignOpened entry of {id}"
            )));
        }
    }
    let mut found = None;
    scan(
        client,
        cp,
        opened + 1,
        EntryKind::TrusteeMessage as u8,
        |index, bytes| {
            let entry = Entry::decode(bytes).map_err(bad_log)?;
            if entry.campaign() != id {
                return Ok(Scan::Next);
            }
            Ok(Scan::Prove(Box::new(entry), index))
        },
        |entry, index| {
            state
                .verify_and_apply(entry, &mut keys)
                .map_err(|e| bad_log(format!("entry {index}: {e}")))?;
            found = state.joint_key(&id).cloned();
            Ok(found.is_some())
        },
    )
    .await?;
    Ok(found)
}

/// What [`scan`]'s filter says of an entry.
enum Scan {
    /// Not wanted.
    Next,
    /// Wanted: prove it by inclusion, then hand it to the consumer.
    Prove(Box<Entry>, u64),
}

/// Reads the log's entry bundles from `from` to `cp`'s size, picks the
/// entries of kind `kind` that `filter` wants, proves each by inclusion to
/// `cp` and hands it to `take`, until `take` says it is done.
async fn scan(
    client: &Client,
    cp: &SignedCheckpoint,
    from: u64,
    kind: u8,
    mut filter: impl FnMut(u64, &[u8]) -> Result<Scan, FlowError>,
    mut take: impl FnMut(Entry, u64) -> Result<bool, FlowError>,
) -> Result<bool, FlowError> {
    let size = cp.checkpoint().size();
    let mut n = from / 256;
    while n.saturating_mul(256) < size {
        let bid = bundle_for(n * 256, size)?;
        let data = client.bundle(&bid).await?;
        let entries = decode_bundle(&data, &bid).map_err(bad_log)?;
        for (pos, bytes) in entries.iter().enumerate() {
            let bytes: &[u8] = bytes;
            let index = n * 256 + pos as u64;
            if index < from || bytes.get(1) != Some(&kind) {
                continue;
            }
            if let Scan::Prove(entry, at) = filter(index, bytes)? {
                prove_included(client, bytes, at, cp).await?;
                if take(*entry, at)? {
                    return Ok(true);
                }
            }
        }
        n += 1;
    }
    Ok(false)
}

/// SPEC R-SEAL-46: the counts of the reveal of `snapshot` in campaign `id`,
/// read from its SealedTallyRevealed entry proven by inclusion to `cp`
/// (the rules accept that entry only if it is what the trustees' shares
/// decrypt to); `None` if the log up to `cp` has none.
///
/// # Errors
/// [`FlowError::BadLog`] for an unproven entry.
pub async fn revealed_from_log(
    client: &Client,
    cp: &SignedCheckpoint,
    id: &CampaignId,
    snapshot: u64,
) -> Result<Option<Vec<u64>>, FlowError> {
    let mut counts = None;
    scan(
        client,
        cp,
        snapshot + 1,
        EntryKind::SealedTallyRevealed as u8,
        |index, bytes| match Entry::decode(bytes).map_err(bad_log)? {
            e @ Entry::SealedTallyRevealed(_) => Ok(match &e {
                Entry::SealedTallyRevealed(r) if r.campaign == *id && r.snapshot == snapshot => {
                    Scan::Prove(Box::new(e), index)
                }
                _ => Scan::Next,
            }),
            _ => Ok(Scan::Next),
        },
        |e, _| {
            if let Entry::SealedTallyRevealed(r) = e {
                counts = Some(r.counts);
            }
            Ok(true)
        },
    )
    .await?;
    Ok(counts)
}

/// Seals `bucket` (`None`: the null vector) as the wallet's pledge on `c`
/// with its unused token, and saves it in the wallet, pending (kind
/// `pledge`, or [`COVER_KIND`] for a cover null pledge). Returns the entry.
pub(crate) async fn sign_sealed_pledge(
    client: &Client,
    wallet: &mut Wallet,
    c: &CampaignInfo,
    block: &Sealed,
    bucket: Option<usize>,
    kind: &str,
    send_after: Option<u64>,
) -> Result<Vec<u8>, FlowError> {
    let id = c.campaign_id;
    let log = pinned_verifier(wallet)?;
    let cp = checkpoint(client, wallet, &log).await?;
    let joint = verified_joint_key(client, wallet, &cp, c).await?;
    let tok = wallet.data.unused_token(&id).ok_or_else(|| {
        FlowError::Wallet2(format!(
            "no unused token for campaign {id}: run `pledge tokens` while it is open"
        ))
    })?;
    let key = tok.key();
    let token = tok.token.clone();
    let ctx = SealedPledge::context_of(&id, &token);
    let terms = SealedTerms::seal(&ctx, &joint, block.buckets().len(), bucket, &mut rng()?)
        .map_err(|e| FlowError::Crypto(e.to_string()))?;
    let pledge =
        SealedPledge::sign(id, token, terms, &key).map_err(|e| FlowError::Crypto(e.to_string()))?;
    let nullifier = pledge.nullifier();
    let bytes = Entry::SealedPledge(Box::new(pledge))
        .encode()
        .map_err(|e| FlowError::Crypto(e.to_string()))?;
    for t in &mut wallet.data.tokens {
        if t.campaign == id && t.nullifier() == nullifier {
            t.used = true;
        }
    }
    wallet.data.pledges.push(PledgeRecord {
        campaign: id.to_hex(),
        nullifier: nullifier.to_hex(),
        threshold: threshold_of(block, bucket),
        withdrawn: false,
        entries: vec![EntryRecord::signed(kind, 0, &bytes, send_after)],
    });
    wallet.save()?;
    Ok(bytes)
}

/// SPEC R-SEAL-42: a sealed amendment of my pledge `rec` on `c` to `bucket`
/// (`None`: the null vector, which is how a sealed pledge is withdrawn;
/// the current bucket: a cover re-encryption), signed with the pledge's key,
/// saved in the wallet, sent, its receipt verified.
pub(crate) async fn send_sealed_amendment(
    client: &Client,
    wallet: &mut Wallet,
    log: &NoteVerifier,
    c: &CampaignInfo,
    rec: &PledgeRecord,
    bucket: Option<usize>,
    kind: &str,
) -> Result<Submitted, FlowError> {
    let id = c.campaign_id;
    let block = sealed_block(c)?
        .ok_or_else(|| FlowError::Campaign(format!("campaign {id} is not sealed")))?;
    let cp = checkpoint(client, wallet, log).await?;
    let joint = verified_joint_key(client, wallet, &cp, c).await?;
    let key = key_for(wallet, rec)?;
    let n = Nullifier::from_hex(&rec.nullifier)
        .map_err(|_| FlowError::Wallet2("a stored nullifier is damaged".into()))?;
    let seq = rec.next_seq();
    let ctx = SealedAmendment::context_of(&id, &n, seq, &key.public_key());
    let terms = SealedTerms::seal(&ctx, &joint, block.buckets().len(), bucket, &mut rng()?)
        .map_err(|e| FlowError::Crypto(e.to_string()))?;
    let bytes = Entry::SealedAmended(Box::new(SealedAmendment::sign(id, n, seq, terms, &key)))
        .encode()
        .map_err(|e| FlowError::Crypto(e.to_string()))?;
    let r = wallet
        .data
        .pledges
        .iter_mut()
        .find(|p| p.nullifier == rec.nullifier)
        .ok_or_else(|| FlowError::Wallet2("pledge record vanished".into()))?;
    r.threshold = threshold_of(&block, bucket);
    r.entries.push(EntryRecord::signed(kind, seq, &bytes, None));
    wallet.save()?;
    send_and_record(client, wallet, log, &id, &bytes).await
}

/// A random time in `[now, deadline − COVER_MARGIN_SECS]` (`now` when that
/// is empty).
fn random_time(now: u64, deadline: u64) -> Result<u64, FlowError> {
    let room = deadline
        .saturating_sub(COVER_MARGIN_SECS)
        .saturating_sub(now);
    Ok(now + random_delay(Duration::from_secs(room))?.as_secs())
}

/// SPEC R-SEAL-43: schedules the cover of a sealed campaign whose token the
/// wallet just obtained (a null pledge at a random time before the
/// deadline, unless the person pledges first). Nothing when cover is off or
/// already scheduled. The caller saves the wallet.
///
/// # Errors
/// No randomness.
pub fn schedule_cover(
    wallet: &mut Wallet,
    campaign: &CampaignId,
    deadline: u64,
    now: u64,
) -> Result<Option<u64>, FlowError> {
    if wallet.data.cover.off || wallet.data.cover.due.contains_key(&campaign.to_hex()) {
        return Ok(None);
    }
    let at = random_time(now, deadline)?;
    wallet
        .data
        .cover
        .due
        .insert(campaign.to_hex(), CoverDue { at, amendments: 0 });
    Ok(Some(at))
}

/// After an entry of mine in a sealed campaign: the next cover
/// re-encryption at a new random time (SPEC R-SEAL-44), unless all are
/// sent or cover is off. Returns when it is due.
fn reschedule(
    wallet: &mut Wallet,
    campaign: &CampaignId,
    deadline: u64,
    now: u64,
) -> Result<Option<u64>, FlowError> {
    if wallet.data.cover.off {
        return Ok(None);
    }
    let at = random_time(now, deadline)?;
    let d = wallet
        .data
        .cover
        .due
        .entry(campaign.to_hex())
        .or_insert(CoverDue { at, amendments: 0 });
    d.at = at;
    Ok((d.amendments < MAX_COVER_AMENDMENTS).then_some(at))
}

/// After the person's own sealed pledge or amendment: reschedules the cover
/// re-encryptions (saved). Returns when the next is due.
///
/// # Errors
/// Wallet errors; no randomness.
pub fn after_my_entry(
    wallet: &mut Wallet,
    c: &CampaignInfo,
    now: u64,
) -> Result<Option<u64>, FlowError> {
    let at = reschedule(wallet, &c.campaign_id, c.deadline, now)?;
    wallet.save()?;
    Ok(at)
}

/// What a cover entry was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoverKind {
    /// A null pledge spending a token the person did not pledge with.
    NullPledge,
    /// A re-encryption of my current vector (null or a bucket).
    Reencryption,
}

/// What [`send_cover`] did.
#[derive(Debug, Default)]
pub struct CoverReport {
    /// Cover traffic is off in this wallet: nothing was sent.
    pub off: bool,
    /// Sent now: campaign (hex), what, the acknowledgement.
    pub sent: Vec<(String, CoverKind, Submitted)>,
    /// Not due yet: campaign (hex), Unix seconds when due.
    pub waiting: Vec<(String, u64)>,
    /// Due, but the campaign has no joint key yet (hex): sent once it has.
    pub no_key_yet: Vec<String>,
}

/// `pledge cover`: sends the cover entries that are due (every one with
/// `now_all`), in every open sealed campaign this wallet holds a token for
/// (or `only` that one): a null pledge where the token is unused, else a
/// re-encryption of my current vector, at most [`MAX_COVER_AMENDMENTS`] per
/// pledge (SPEC R-SEAL-43, R-SEAL-44). Reads the whole campaign list (the
/// same requests for every wallet).
///
/// # Errors
/// The first failure (what was sent before stays recorded), a served joint
/// key that is not the logged one included.
pub async fn send_cover(
    client: &Client,
    wallet: &mut Wallet,
    log: &NoteVerifier,
    only: Option<&CampaignId>,
    now_all: bool,
    now: u64,
) -> Result<CoverReport, FlowError> {
    wallet.refresh()?;
    let mut report = CoverReport {
        off: wallet.data.cover.off,
        ..CoverReport::default()
    };
    if report.off {
        return Ok(report);
    }
    let campaigns = client.campaigns().await?;
    for c in &campaigns {
        let id = c.campaign_id;
        if c.state != CampaignState::Open
            || c.sealed.is_none()
            || c.deadline <= now
            || only.is_some_and(|o| *o != id)
            || !wallet.data.tokens.iter().any(|t| t.campaign == id)
        {
            continue;
        }
        let Some(block) = sealed_block(c)? else {
            continue;
        };
        if !wallet.data.cover.due.contains_key(&id.to_hex()) {
            // A token obtained before cover was scheduled (an older client).
            schedule_cover(wallet, &id, c.deadline, now)?;
        }
        let Some(due) = wallet.data.cover.due.get(&id.to_hex()).copied() else {
            continue;
        };
        let mine = wallet.data.pledge_for(&id).cloned();
        if mine
            .as_ref()
            .is_some_and(|r| r.unacknowledged().is_some() || due.amendments >= MAX_COVER_AMENDMENTS)
        {
            // An entry waiting for `send-pending`, or all cover sent.
            continue;
        }
        if mine.is_none() && wallet.data.unused_token(&id).is_none() {
            continue;
        }
        if !now_all && due.at > now {
            report.waiting.push((id.to_hex(), due.at));
            continue;
        }
        let sent = match &mine {
            Some(rec) => {
                let bucket = bucket_of_record(&block, rec);
                match send_sealed_amendment(client, wallet, log, c, rec, bucket, COVER_KIND).await {
                    Ok(s) => {
                        if let Some(d) = wallet.data.cover.due.get_mut(&id.to_hex()) {
                            d.amendments = d.amendments.saturating_add(1);
                        }
                        (CoverKind::Reencryption, s)
                    }
                    Err(FlowError::KeyNotReady(_)) => {
                        report.no_key_yet.push(id.to_hex());
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            None => {
                let bytes =
                    match sign_sealed_pledge(client, wallet, c, &block, None, COVER_KIND, None)
                        .await
                    {
                        Ok(b) => b,
                        Err(FlowError::KeyNotReady(_)) => {
                            report.no_key_yet.push(id.to_hex());
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                let s = send_and_record(client, wallet, log, &id, &bytes).await?;
                (CoverKind::NullPledge, s)
            }
        };
        reschedule(wallet, &id, c.deadline, now)?;
        wallet.save()?;
        report.sent.push((id.to_hex(), sent.0, sent.1));
    }
    Ok(report)
}
