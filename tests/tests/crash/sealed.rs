//! The sealed campaign of the crash suite (R-SEAL-62): what its clients and
//! trustees know (every acknowledged sealed entry at its index, what each
//! entry they sent encrypts, submissions whose outcome a kill hid), sealed
//! load, and the checks after every restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pledge_client::audit::{AuditOptions, audit_with_ledger};
use pledge_client::client::{Attestation, Client};
use pledge_protocol::entry::Entry;
use pledge_protocol::hash::{CampaignId, Nullifier};
use pledge_protocol::note::NoteVerifier;
use pledge_protocol::pledge::PledgeSigningKey;
use pledge_protocol::sealed::JointPublicKey;
use pledge_protocol::token::{IssuerPublicKey, blind, finalize, nullifier};
use pledge_tests::sealed;

/// Buckets of the crash suite's sealed campaign.
pub const BUCKETS: [u32; 3] = [1, 10, 100];
pub const B: usize = BUCKETS.len();

/// The sealed campaign as its clients and trustees know it.
#[derive(Debug)]
pub struct SealedModel {
    pub id: CampaignId,
    pub joint: JointPublicKey,
    pub issuer: IssuerPublicKey,
    pub log: NoteVerifier,
    /// Entry bytes → what it encrypts (`None`: null), for every entry sent.
    pub sent: HashMap<Vec<u8>, Option<usize>>,
    /// index → bytes of every acknowledged sealed entry.
    pub acked: BTreeMap<u64, Vec<u8>>,
    /// Sent, answer lost.
    pub unsure: Vec<Vec<u8>>,
    /// Pledges known to be in the log: key and next sequence number.
    pub owned: Vec<(Arc<PledgeSigningKey>, u32)>,
    /// Keys of pledges or amendments whose outcome is unknown (settled at
    /// the check).
    pub pending: Vec<Arc<PledgeSigningKey>>,
    pub acked_count: u64,
    pub unsure_count: u64,
}

pub type SharedSealed = Arc<Mutex<SealedModel>>;

/// Sealed clients until `stop`: new pledges (buckets in turn, or null)
/// and, one time in three, an amendment of a pledge known to be in the
/// log. An answer records the entry as acknowledged at its index; a
/// failure (the server killed) as unsure, its pledge key as pending. Each
/// worker stops at its first failure.
pub async fn drive(base: String, model: SharedSealed, workers: usize, stop: Arc<AtomicBool>) {
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (base, model, stop) = (base.clone(), model.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let client = Client::new(&base).unwrap();
            let mut rng = sealed::system_rng();
            let mut round = w;
            while !stop.load(Ordering::SeqCst) {
                round += 1;
                let choice = (round % (B + 1) < B).then_some(round % (B + 1));
                let (id, joint, issuer, amend) = {
                    let mut m = model.lock().unwrap();
                    let amend = if round % 3 == 0 && !m.owned.is_empty() {
                        let i = round % m.owned.len();
                        Some(m.owned.swap_remove(i))
                    } else {
                        None
                    };
                    (m.id, m.joint.clone(), m.issuer.clone(), amend)
                };
                let (entry, key, next) = match amend {
                    Some((key, seq)) => (
                        sealed::amendment_entry(&id, &key, seq, &joint, B, choice, &mut rng),
                        key,
                        seq + 1,
                    ),
                    None => {
                        let key = PledgeSigningKey::generate().unwrap();
                        let (blinded, st) = blind(&issuer, &id, &key.public_key()).unwrap();
                        let Ok(sigs) = client.tokens(&Attestation::Open, &[(id, blinded)]).await
                        else {
                            // The server is gone: nothing was sent.
                            break;
                        };
                        let token =
                            finalize(&issuer, &st, &sigs[0], &id, &key.public_key()).unwrap();
                        let e = sealed::pledge_entry(&id, token, &key, &joint, B, choice, &mut rng);
                        (e, Arc::new(key), 1)
                    }
                };
                let bytes = entry.encode().unwrap();
                model.lock().unwrap().sent.insert(bytes.clone(), choice);
                let answer = client.submit(&entry).await;
                let mut m = model.lock().unwrap();
                match answer {
                    Ok(a) => {
                        m.acked.insert(a.index, bytes);
                        m.acked_count += 1;
                        m.owned.push((key, next));
                    }
                    Err(_) => {
                        m.unsure.push(bytes);
                        m.unsure_count += 1;
                        m.pending.push(key);
                        break;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// What the log says of the sealed campaign: its entries (decoded, with
/// their index), and per snapshot index the histogram of the latest terms
/// of each pledge before it, from what the clients sent.
pub fn expected_counts(
    m: &SealedModel,
    entries: &[(u64, Vec<u8>, Entry)],
    snapshot: u64,
) -> Vec<u64> {
    let mut latest: HashMap<Nullifier, Option<usize>> = HashMap::new();
    for (i, bytes, e) in entries {
        if *i >= snapshot {
            break;
        }
        let n = match e {
            Entry::SealedPledge(p) if p.campaign == m.id => p.nullifier(),
            Entry::SealedAmended(a) if a.campaign == m.id => a.nullifier,
            _ => continue,
        };
        let choice = *m
            .sent
            .get(bytes)
            .unwrap_or_else(|| panic!("sealed entry {i} was never sent"));
        latest.insert(n, choice);
    }
    let mut counts = vec![0u64; B];
    for b in latest.values().flatten() {
        counts[*b] += 1;
    }
    counts
}

/// After a restart: every acknowledged sealed entry is in the log at its
/// index, unsure ones are settled (pending pledge keys whose pledge is
/// logged are owned again, at the next sequence number the log gives), the
/// audit from scratch passes and its replay has the joint key the
/// trustees made. Returns the log's entries.
pub async fn check(base: &str, model: &SharedSealed) -> Vec<(u64, Vec<u8>, Entry)> {
    let client = Client::new(base).unwrap();
    let log = model.lock().unwrap().log.clone();
    let (_, _, raw) = crate::model::fetch_log(&client, &log).await;
    let entries: Vec<(u64, Vec<u8>, Entry)> = raw
        .into_iter()
        .zip(0u64..)
        .map(|(b, i)| {
            let e = Entry::decode(&b).unwrap();
            (i, b, e)
        })
        .collect();
    {
        let mut m = model.lock().unwrap();
        for (i, bytes) in &m.acked {
            assert!(
                entries.get(usize::try_from(*i).unwrap()).map(|x| &x.1) == Some(bytes),
                "acknowledged sealed entry {i} is lost (log size {})",
                entries.len()
            );
        }
        let index_of: HashMap<&[u8], u64> =
            entries.iter().map(|(i, b, _)| (b.as_slice(), *i)).collect();
        let unsure = std::mem::take(&mut m.unsure);
        for u in unsure {
            if let Some(i) = index_of.get(u.as_slice()) {
                m.acked.insert(*i, u);
            }
        }
        // Entries per nullifier: the pledge (seq 0) and its amendments.
        let mut seen: HashMap<Nullifier, u32> = HashMap::new();
        for (_, _, e) in &entries {
            let n = match e {
                Entry::SealedPledge(p) => p.nullifier(),
                Entry::SealedAmended(a) => a.nullifier,
                _ => continue,
            };
            *seen.entry(n).or_default() += 1;
        }
        let id = m.id;
        let pending = std::mem::take(&mut m.pending);
        for key in pending {
            let n = nullifier(&id, &key.public_key());
            if let Some(&count) = seen.get(&n) {
                m.owned.push((key, count));
            }
        }
        for (key, next) in &mut m.owned {
            let n = nullifier(&id, &key.public_key());
            *next = seen[&n];
        }
    }
    let mut opts = AuditOptions::new(base);
    opts.log_key = Some(log);
    let (report, ledger) = audit_with_ledger(&opts).await.unwrap();
    assert!(report.passed(), "audit failed: {:?}", report.failures);
    let (id, joint) = {
        let m = model.lock().unwrap();
        (m.id, m.joint.clone())
    };
    assert_eq!(ledger.unwrap().joint_key(&id), Some(&joint));
    entries
}
