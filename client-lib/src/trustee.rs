//! Trustees of sealed campaigns (SPEC R-SEAL-38): what a trustee posts, and
//! when, decided from the rules' state of a log the trustee audited itself.
//!
//! A trustee keeps one secret: its key for the campaign (a fresh one per
//! campaign, R-DKG-4), in a key file. Everything else is in the log: its
//! dealing (the polynomial is not needed once dealt: every share, its own
//! included, is encrypted in the dealing), the complaints, the ready
//! messages, the snapshots. So [`next_messages`] is a pure function of the
//! audited state and the key, and a trustee that restarts, or runs on
//! another machine with the same key file, posts what is missing and
//! nothing twice (the rules refuse duplicates anyway).
//!
//! The trustee never decrypts what a server hands it: it decrypts only the
//! snapshot aggregates of its own replay of the log, after the audit passed.

use std::io::Write as _;
use std::path::Path;

use pledge_protocol::dkg::{Complaint, Dealing, DkgError, Ready, TrusteeKey, TrusteeKeyPair};
use pledge_protocol::entry::{DecryptionShares, Entry, TrusteeMessage, TrusteeMessageKind};
use pledge_protocol::hash::CampaignId;
use pledge_protocol::ledger::{LedgerState, dkg_context};
use pledge_protocol::sealed::RevealContext;
use rand::rngs::{StdRng, SysRng};
use rand::{CryptoRng, SeedableRng};
use zeroize::Zeroizing;

use crate::audit::{AuditOptions, audit_with_ledger};
use crate::client::Client;

/// First line of a trustee key file.
const KEY_FILE_HEADER: &str = "pledge trustee key v1";

/// Why a trustee cannot act.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrusteeError {
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The key file exists already (never overwritten: it may hold a
    /// campaign's only copy of a trustee key).
    #[error("key file {0} exists already: not overwritten")]
    KeyFileExists(String),
    /// The key file is not a trustee key file.
    #[error("key file {0} is not a trustee key file")]
    BadKeyFile(String),
    /// The campaign is not in the audited log.
    #[error("campaign {0} is not in the log")]
    UnknownCampaign(String),
    /// The campaign is not sealed.
    #[error("campaign {0} is not sealed")]
    NotSealed(String),
    /// The key is not one of the campaign's trustees.
    #[error("this key is not a trustee of campaign {0}")]
    NotATrustee(String),
    /// A key-generation step failed.
    #[error("key generation: {0}")]
    Dkg(#[from] DkgError),
    /// The audit did not pass: a trustee acts only on a verified log.
    #[error("the audit of the log did not pass ({0}): not acting on it")]
    AuditFailed(String),
    /// The audit could not run, or the server refused a message.
    #[error("{0}")]
    Server(String),
}

/// Creates a trustee key file at `path` (mode 0600 on Unix; refuses to
/// overwrite) and returns the public key to give the organisers.
///
/// # Errors
/// [`TrusteeError::KeyFileExists`], [`TrusteeError::KeyFile`].
pub fn generate_key_file<R: CryptoRng + ?Sized>(
    path: &Path,
    rng: &mut R,
) -> Result<TrusteeKey, TrusteeError> {
    let shown = path.display().to_string();
    let kp = TrusteeKeyPair::generate(rng);
    let secret = kp.to_secret_bytes();
    let text = Zeroizing::new(format!(
        "{KEY_FILE_HEADER}\n{}\n",
        hex::encode(secret.as_slice())
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            TrusteeError::KeyFileExists(shown.clone())
        } else {
            TrusteeError::KeyFile {
                path: shown.clone(),
                source: e,
            }
        }
    })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| TrusteeError::KeyFile {
            path: shown,
            source,
        })?;
    Ok(kp.public_key())
}

/// Reads a trustee key file.
///
/// # Errors
/// [`TrusteeError::KeyFile`], [`TrusteeError::BadKeyFile`].
pub fn load_key_file(path: &Path) -> Result<TrusteeKeyPair, TrusteeError> {
    let shown = path.display().to_string();
    let text =
        Zeroizing::new(
            std::fs::read_to_string(path).map_err(|source| TrusteeError::KeyFile {
                path: shown.clone(),
                source,
            })?,
        );
    let mut lines = text.lines();
    if lines.next() != Some(KEY_FILE_HEADER) {
        return Err(TrusteeError::BadKeyFile(shown));
    }
    let mut secret = Zeroizing::new([0u8; 32]);
    let hex_line = lines.next().unwrap_or_default().trim();
    if hex::decode_to_slice(hex_line, secret.as_mut_slice()).is_err() || lines.next().is_some() {
        return Err(TrusteeError::BadKeyFile(shown));
    }
    TrusteeKeyPair::from_secret_bytes(&secret).map_err(|_| TrusteeError::BadKeyFile(shown))
}

/// What a trustee posts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Its dealing (R-DKG-12).
    Dealt,
    /// A complaint against `dealer`, whose share did not open (R-DKG-20).
    Complained {
        /// The dealer.
        dealer: u8,
    },
    /// Its ready message (R-DKG-23).
    Ready,
    /// Its decryption shares of the snapshot at log index `snapshot`
    /// (R-SEAL-36).
    Shared {
        /// The snapshot's log index.
        snapshot: u64,
    },
}

/// What trustee `kp` must post next in campaign `id`, given the rules'
/// state of an audited log (SPEC R-SEAL-38), in this order: its dealing if
/// the log has none; once all dealings are in and before its ready message,
/// a complaint against each dealer whose share does not open (and that it
/// has not complained about), else its ready message naming the current
/// transcript digest; once the key is logged, its shares of every snapshot
/// not revealed that it has not shared. Empty when there is nothing to do.
///
/// # Errors
/// [`TrusteeError`] if the campaign is unknown, not sealed, `kp` is not one
/// of its trustees, or a key-generation step fails.
pub fn next_messages<R: CryptoRng + ?Sized>(
    state: &LedgerState,
    id: &CampaignId,
    kp: &TrusteeKeyPair,
    rng: &mut R,
) -> Result<Vec<(Action, Entry)>, TrusteeError> {
    let hex_id = id.to_hex();
    let c = state
        .campaign(id)
        .ok_or_else(|| TrusteeError::UnknownCampaign(hex_id.clone()))?;
    let (Some(block), Some(sealed), Some(ctx)) = (
        c.definition.sealed_block(),
        c.sealed.as_ref(),
        dkg_context(id, &c.definition),
    ) else {
        return Err(TrusteeError::NotSealed(hex_id));
    };
    let me = kp.public_key().to_bytes();
    let j = block
        .trustees()
        .iter()
        .position(|t| *t == me)
        .and_then(|at| u8::try_from(at + 1).ok())
        .ok_or_else(|| TrusteeError::NotATrustee(hex_id.clone()))?;
    let message = |kind, body: Vec<u8>| {
        Entry::TrusteeMessage(TrusteeMessage {
            campaign: *id,
            kind,
            body,
        })
    };
    let Some(dkg) = sealed.dkg.as_deref() else {
        return Err(TrusteeError::NotSealed(hex_id));
    };
    let mut out = Vec::new();
    if c.closed.is_none() && dkg.dealing(j).is_none() {
        let d = Dealing::deal(&ctx, kp, j, rng)?;
        out.push((
            Action::Dealt,
            message(TrusteeMessageKind::Dealing, d.as_bytes().to_vec()),
        ));
        return Ok(out);
    }
    if c.closed.is_none() && dkg.all_dealings_in() && !dkg.is_ready(j) {
        let n = u8::try_from(block.trustees().len()).unwrap_or(u8::MAX);
        for i in (1..=n).filter(|&i| i != j) {
            let Some(d) = dkg.dealing(i) else { continue };
            let complained = dkg
                .complaints()
                .iter()
                .any(|(x, _)| (x.accuser(), x.dealer()) == (j, i));
            if d.open_share(&ctx, kp, j).is_err() && !complained {
                let x = Complaint::make(&ctx, kp, j, d)?;
                out.push((
                    Action::Complained { dealer: i },
                    message(TrusteeMessageKind::Complaint, x.encode()),
                ));
            }
        }
        if out.is_empty() {
            let r = Ready::sign(&ctx, kp, j, dkg.digest())?;
            out.push((
                Action::Ready,
                message(TrusteeMessageKind::Ready, r.encode()),
            ));
        }
        return Ok(out);
    }
    let Some(key) = sealed.joint_key.as_ref() else {
        return Ok(out);
    };
    let outcome = dkg.outcome()?;
    let secret = outcome.secret_share(kp, j)?;
    for snap in &sealed.snapshots {
        if snap.revealed.is_some() || snap.shares.iter().any(|(t, _)| *t == j) {
            continue;
        }
        let context = RevealContext {
            campaign: *id.as_bytes(),
            size: snap.index,
        };
        let shares = secret.decryption_shares(&context, key, &snap.aggregate, rng);
        out.push((
            Action::Shared {
                snapshot: snap.index,
            },
            Entry::DecryptionShares(DecryptionShares {
                campaign: *id,
                snapshot: snap.index,
                trustee: j,
                shares,
            }),
        ));
    }
    Ok(out)
}

/// One round of a trustee: audits the log at `opts.server` (the trustee's
/// own checks: log key, witnesses, every entry, tree), computes
/// [`next_messages`] from the replayed state and posts them to `client`.
/// Returns what was posted.
///
/// # Errors
/// [`TrusteeError::AuditFailed`] if the audit did not pass (nothing is
/// posted), [`TrusteeError::Server`] if it could not run or a message was
/// refused, and [`next_messages`]'s errors.
pub async fn step(
    opts: &AuditOptions,
    client: &Client,
    id: &CampaignId,
    kp: &TrusteeKeyPair,
) -> Result<Vec<Action>, TrusteeError> {
    let (report, ledger) = audit_with_ledger(opts)
        .await
        .map_err(|e| TrusteeError::Server(format!("auditing the log: {e}")))?;
    let ledger = match (report.passed(), ledger) {
        (true, Some(l)) => l,
        _ => {
            let first = report.failures.first().map_or_else(
                || "the log could not be rebuilt".to_owned(),
                ToString::to_string,
            );
            return Err(TrusteeError::AuditFailed(first));
        }
    };
    let mut rng = StdRng::try_from_rng(&mut SysRng)
        .map_err(|e| TrusteeError::Server(format!("no randomness from the system: {e}")))?;
    let messages = next_messages(&ledger, id, kp, &mut rng)?;
    let mut done = Vec::with_capacity(messages.len());
    for (action, entry) in messages {
        client
            .submit(&entry)
            .await
            .map_err(|e| TrusteeError::Server(format!("posting {action:?}: {e}")))?;
        done.push(action);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pledge_protocol::campaign::{CampaignDefinition, CampaignParams, RevealPolicy, Sealed};
    use pledge_protocol::entry::{CampaignClosed, CampaignOpened, SealedTallyRevealed};
    use pledge_protocol::ledger::PledgeKeys;
    use pledge_protocol::pledge::PledgeSigningKey;
    use pledge_protocol::sealed::SealedTerms;
    use pledge_protocol::sealed_pledge::SealedPledge;
    use pledge_protocol::sealed_reveal::aggregate_digest;
    use pledge_protocol::token::{IssuerSecretKey, blind, finalize};

    fn rng() -> StdRng {
        StdRng::seed_from_u64(38)
    }

    fn definition(trustees: Vec<[u8; 32]>) -> CampaignDefinition {
        CampaignDefinition::sealed(
            CampaignParams {
                nonce: [38; 16],
                title: "Sealed".into(),
                text: String::new(),
                action: "strike".into(),
                deadline: 4_000_000_000,
                goal: 2,
                threshold_min: 1,
                threshold_max: 100,
                reveal: RevealPolicy::Sealed,
            },
            Sealed::new(vec![1, 10, 100], 2, trustees, vec![]).unwrap(),
        )
        .unwrap()
    }

    /// Applies every trustee's next messages until none has anything to
    /// post; returns how many rounds it took and what was posted.
    fn settle(
        state: &mut LedgerState,
        keys: &mut PledgeKeys,
        id: &CampaignId,
        trustees: &[TrusteeKeyPair],
        rng: &mut StdRng,
    ) -> Vec<Action> {
        let mut posted = Vec::new();
        for _ in 0..10 {
            let mut any = false;
            for kp in trustees {
                for (action, entry) in next_messages(state, id, kp, rng).unwrap() {
                    state.verify_and_apply(entry, keys).unwrap();
                    posted.push(action);
                    any = true;
                }
            }
            if !any {
                return posted;
            }
        }
        panic!("trustees never settled: {posted:?}");
    }

    /// SPEC R-SEAL-38: trustees driven only by the log deal, get ready,
    /// and share each snapshot once; the shares reveal the pledges.
    #[test]
    fn trustees_acting_on_the_log_open_and_reveal_a_campaign() {
        let mut rng = rng();
        let trustees: Vec<TrusteeKeyPair> =
            (0..3).map(|_| TrusteeKeyPair::generate(&mut rng)).collect();
        let def = definition(trustees.iter().map(|t| t.public_key().to_bytes()).collect());
        let id = def.id();
        let issuer = IssuerSecretKey::generate().unwrap();
        let mut state = LedgerState::new();
        let mut keys = PledgeKeys::new();
        state
            .verify_and_apply(
                Entry::CampaignOpened(CampaignOpened {
                    definition: def,
                    issuer_key: issuer.public_key().clone(),
                }),
                &mut keys,
            )
            .unwrap();
        // An outsider is no trustee.
        let outsider = TrusteeKeyPair::generate(&mut rng);
        assert!(matches!(
            next_messages(&state, &id, &outsider, &mut rng),
            Err(TrusteeError::NotATrustee(_))
        ));

        let posted = settle(&mut state, &mut keys, &id, &trustees, &mut rng);
        assert_eq!(
            posted,
            vec![
                Action::Dealt,
                Action::Dealt,
                Action::Dealt,
                Action::Ready,
                Action::Ready,
                Action::Ready
            ]
        );
        let key = state.joint_key(&id).expect("the key is logged").clone();

        // One pledge in bucket 1, then the close (the final snapshot).
        let pk = PledgeSigningKey::generate().unwrap();
        let (blinded, st) = blind(issuer.public_key(), &id, &pk.public_key()).unwrap();
        let sig = issuer.blind_sign(blinded.as_bytes()).unwrap();
        let token = finalize(
            issuer.public_key(),
            &st,
            sig.as_bytes(),
            &id,
            &pk.public_key(),
        )
        .unwrap();
        let ctx = SealedPledge::context_of(&id, &token);
        let terms = SealedTerms::seal(&ctx, &key, 3, Some(1), &mut rng).unwrap();
        let pledge = SealedPledge::sign(id, token, terms, &pk).unwrap();
        state
            .verify_and_apply(Entry::SealedPledge(Box::new(pledge)), &mut keys)
            .unwrap();
        let c = state.campaign(&id).unwrap();
        let digest = aggregate_digest(c.sealed.as_ref().unwrap().aggregate());
        let at = state.len();
        state
            .verify_and_apply(
                Entry::CampaignClosed(CampaignClosed {
                    campaign: id,
                    tokens_issued: 1,
                    live: 0,
                    active: 0,
                    tally_digest: digest,
                }),
                &mut keys,
            )
            .unwrap();
        let posted = settle(&mut state, &mut keys, &id, &trustees, &mut rng);
        assert_eq!(posted, vec![Action::Shared { snapshot: at }; 3]);
        let counts = state.reveal_counts(&id, at).unwrap();
        assert_eq!(counts, vec![0, 1, 0]);
        state
            .verify_and_apply(
                Entry::SealedTallyRevealed(SealedTallyRevealed {
                    campaign: id,
                    snapshot: at,
                    counts,
                }),
                &mut keys,
            )
            .unwrap();
        // Nothing left to do, for anyone.
        for kp in &trustees {
            assert!(next_messages(&state, &id, kp, &mut rng).unwrap().is_empty());
        }
    }

    #[test]
    fn key_files_are_private_refuse_overwrite_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trustee.key");
        let public = generate_key_file(&path, &mut rng()).unwrap();
        assert_eq!(load_key_file(&path).unwrap().public_key(), public);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            generate_key_file(&path, &mut rng()),
            Err(TrusteeError::KeyFileExists(_))
        ));
        assert_eq!(load_key_file(&path).unwrap().public_key(), public, "kept");
        std::fs::write(&path, "pledge trustee key v1\nzz\n").unwrap();
        assert!(matches!(
            load_key_file(&path),
            Err(TrusteeError::BadKeyFile(_))
        ));
        std::fs::write(&path, "something else\n").unwrap();
        assert!(matches!(
            load_key_file(&path),
            Err(TrusteeError::BadKeyFile(_))
        ));
    }
}
