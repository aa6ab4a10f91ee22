//! What the clients know (acknowledged entries, the last signed checkpoint
//! they saw, unspent tokens, submissions whose outcome a crash hid), the load
//! that concurrent clients put on `pledged`, and the invariants checked after
//! every restart.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pledge_client::audit::{AuditOptions, audit};
use pledge_client::client::{Attestation, Client, ClientError};
use pledge_protocol::checkpoint::verify_checkpoint;
use pledge_protocol::entry::Entry;
use pledge_protocol::hash::{CampaignId, Hash, Nullifier};
use pledge_protocol::ledger::{LedgerState, PledgeKeys};
use pledge_protocol::merkle::{
    consistency_proof, consistency_proof_nodes, tree_root, tree_root_nodes, verify_consistency,
};
use pledge_protocol::note::{NoteVerifier, SignedNote};
use pledge_protocol::pledge::{Amendment, Pledge, PledgeSigningKey, Terms};
use pledge_protocol::receipt::Receipt;
use pledge_protocol::tile::{BundleId, TileHashes, decode_bundle, tiles_for_nodes};
use pledge_protocol::token::{IssuerPublicKey, Token, blind, finalize};

/// A token and the pledge key it authorises.
#[derive(Debug)]
pub struct Cred {
    pub token: Token,
    pub key: PledgeSigningKey,
    pub nullifier: Nullifier,
}

/// A pledge the clients know is in the log, with its next sequence number.
#[derive(Debug)]
struct Owned {
    cred: Arc<Cred>,
    next_seq: u32,
    busy: bool,
}

/// A submission whose answer the clients did not get (or got as a failure
/// that leaves the outcome open).
#[derive(Debug)]
struct Unsure {
    bytes: Vec<u8>,
    /// Answered 503 storage_unavailable (rather than no answer at all).
    storage_error: bool,
    /// The credential of a new pledge (returned to the pool if not logged).
    cred: Option<Arc<Cred>>,
}

/// Counters of one run.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// 200 answers with a receipt that verified.
    pub acked: u64,
    /// Network failures (killed server), and 503 storage_unavailable /
    /// shutting_down: the outcome is settled after the restart.
    pub unsure: u64,
    /// Of those, how many turned out to be in the log.
    pub unsure_logged: u64,
    /// 503 storage_unavailable answers (an I/O error reported to the caller).
    pub storage_errors: u64,
    /// Of those, how many were found in the log after the restart (the
    /// engine's write failed but its data reached the disk: SPEC R-STORE-2
    /// calls the outcome unknown).
    pub storage_errors_logged: u64,
    /// 503 busy answers (never in the log).
    pub busy: u64,
    /// Answers that break the API contract (4xx for a valid entry, …).
    pub unexpected: Vec<String>,
    /// Restarts checked.
    pub checks: u64,
    /// Entries in the log at the last check.
    pub log_size: u64,
}

/// The clients' side of the world.
#[derive(Debug)]
pub struct Model {
    pub log: NoteVerifier,
    pub log_text: String,
    pub campaign: CampaignId,
    pub issuer: IssuerPublicKey,
    pool: Vec<Arc<Cred>>,
    owned: Vec<Owned>,
    /// index → entry bytes of every acknowledged entry.
    acked: BTreeMap<u64, Vec<u8>>,
    unsure: Vec<Unsure>,
    /// Entries refused as `busy`: never in the log.
    busy: Vec<Vec<u8>>,
    /// The largest checkpoint (size, root) a client saw signed.
    seen: (u64, Hash),
    pub stats: Stats,
    audit_state: PathBuf,
    threshold_rng: u64,
}

pub type Shared = Arc<Mutex<Model>>;

fn refusal(e: &ClientError) -> String {
    format!("{e}")
}

impl Model {
    /// Reads the log key and the demo campaign (its key checked against the
    /// logged CampaignOpened entry) from a fresh server.
    pub async fn new(client: &Client, audit_state: PathBuf) -> Self {
        let log_text = client.log_key().await.unwrap();
        let log = NoteVerifier::from_text(&log_text).unwrap();
        let info = client.campaigns().await.unwrap().remove(0);
        let campaign = info.id().unwrap();
        let key = B64.decode(&info.issuer_key).unwrap();
        let issuer = IssuerPublicKey::from_spki(&key).unwrap();
        let mut m = Self {
            log,
            log_text,
            campaign,
            issuer,
            pool: Vec::new(),
            owned: Vec::new(),
            acked: BTreeMap::new(),
            unsure: Vec::new(),
            busy: Vec::new(),
            seen: (0, pledge_protocol::merkle::empty_root()),
            stats: Stats::default(),
            audit_state,
            threshold_rng: 0x9e37_79b9_7f4a_7c15,
        };
        let (size, root, entries) = fetch_log(client, &m.log).await;
        let opened = entries
            .iter()
            .find_map(|e| match Entry::decode(e).unwrap() {
                Entry::CampaignOpened(o) if o.definition.id() == campaign => Some(o),
                _ => None,
            })
            .expect("the demo campaign is logged");
        assert_eq!(
            opened.issuer_key, m.issuer,
            "issuer key differs from the logged one"
        );
        m.seen = (size, root);
        m
    }

    /// Unspent tokens.
    pub fn pool_len(&self) -> usize {
        self.pool.len()
    }

    fn next_threshold(&mut self) -> u32 {
        // xorshift: thresholds 1..=40 so that the active count moves.
        let mut x = self.threshold_rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.threshold_rng = x;
        u32::try_from(x % 40).unwrap() + 1
    }

    fn see(&mut self, size: u64, root: Hash) {
        if size > self.seen.0 {
            self.seen = (size, root);
        }
    }
}

/// Mints `n` tokens for the demo campaign with the open attester
/// (`concurrency` requests at a time).
pub async fn mint(client: &Client, model: &Shared, n: usize, concurrency: usize) {
    let (campaign, issuer) = {
        let m = model.lock().unwrap();
        (m.campaign, m.issuer.clone())
    };
    let left = Arc::new(std::sync::atomic::AtomicUsize::new(n));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let model = model.clone();
        let issuer = issuer.clone();
        let left = left.clone();
        tasks.push(tokio::spawn(async move {
            while left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                .is_ok()
            {
                let key = PledgeSigningKey::generate().unwrap();
                let (blinded, st) = blind(&issuer, &campaign, &key.public_key()).unwrap();
                let sigs = client
                    .tokens(&Attestation::Open, &[(campaign, blinded)])
                    .await
                    .unwrap();
                let token = finalize(&issuer, &st, &sigs[0], &campaign, &key.public_key()).unwrap();
                let nullifier = token.nullifier(&campaign);
                model.lock().unwrap().pool.push(Arc::new(Cred {
                    token,
                    key,
                    nullifier,
                }));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

enum Job {
    New(Arc<Cred>, Vec<u8>),
    Amend(usize, Vec<u8>),
}

/// Runs `workers` concurrent clients against `base` until `stop` is set:
/// each submits a new pledge (while tokens last) or amends one of the
/// pledges it knows to be logged, verifies every receipt offline, and
/// records the outcome in the model.
pub async fn drive(base: String, model: Shared, workers: usize, stop: Arc<AtomicBool>) {
    let client = Client::new(&base).unwrap();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let client = client.clone();
        let model = model.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let job = {
                    let mut m = model.lock().unwrap();
                    let t = m.next_threshold();
                    let c = m.campaign;
                    let amend = m.pool.is_empty() || i % 4 == 0;
                    let free = if amend {
                        m.owned.iter().position(|o| !o.busy)
                    } else {
                        None
                    };
                    let job = if let Some(k) = free {
                        let o = &mut m.owned[k];
                        o.busy = true;
                        let a = Amendment::sign(
                            c,
                            o.cred.nullifier,
                            o.next_seq,
                            Terms::threshold(t).unwrap(),
                            &o.cred.key,
                        );
                        Some(Job::Amend(k, Entry::PledgeAmended(a).encode().unwrap()))
                    } else if let Some(cred) = m.pool.pop() {
                        let p = Pledge::sign(
                            c,
                            cred.token.clone(),
                            Terms::threshold(t).unwrap(),
                            &cred.key,
                        )
                        .unwrap();
                        Some(Job::New(cred, Entry::Pledge(p).encode().unwrap()))
                    } else {
                        None
                    };
                    // Signatures are deterministic: a retried token or
                    // amendment can give the bytes of an earlier `busy`
                    // refusal, which may then be logged.
                    if let Some(Job::New(_, b) | Job::Amend(_, b)) = &job {
                        m.busy.retain(|x| x != b);
                    }
                    job
                };
                let Some(job) = job else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let (path, bytes) = match &job {
                    Job::New(_, b) => ("/v1/pledges", b.clone()),
                    Job::Amend(_, b) => ("/v1/pledges/amend", b.clone()),
                };
                let answer = client.submit_bytes(path, &bytes).await;
                let pause = record(&model, job, bytes, answer);
                if pause {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Records one answer in the model; true if the worker should pause.
fn record(
    model: &Shared,
    job: Job,
    bytes: Vec<u8>,
    answer: Result<pledge_client::client::EntryAccepted, ClientError>,
) -> bool {
    let mut m = model.lock().unwrap();
    match answer {
        Ok(acc) => {
            let receipt = Receipt::parse(acc.receipt.as_bytes());
            let checked = receipt
                .as_ref()
                .ok()
                .and_then(|r| r.verify_entry(&bytes, &m.log).ok());
            let Some(signed) = checked else {
                m.stats
                    .unexpected
                    .push(format!("receipt for index {} does not verify", acc.index));
                return false;
            };
            if signed.checkpoint().size() != acc.checkpoint_size
                || receipt.as_ref().map(|r| r.index()).ok() != Some(acc.index)
            {
                m.stats
                    .unexpected
                    .push(format!("answer and receipt disagree at {}", acc.index));
            }
            m.see(signed.checkpoint().size(), *signed.checkpoint().root());
            if let Some(prev) = m.acked.insert(acc.index, bytes.clone())
                && prev != bytes
            {
                m.stats
                    .unexpected
                    .push(format!("two acknowledged entries at index {}", acc.index));
            }
            m.stats.acked += 1;
            match job {
                Job::New(cred, _) => m.owned.push(Owned {
                    cred,
                    next_seq: 1,
                    busy: false,
                }),
                Job::Amend(k, _) => {
                    m.owned[k].next_seq += 1;
                    m.owned[k].busy = false;
                }
            }
            false
        }
        Err(e) => {
            let code = e.code().unwrap_or("").to_owned();
            let status = e.status();
            let definitely_not_logged = status == Some(503) && code == "busy";
            let unsure = matches!(e, ClientError::Network { .. })
                || (status == Some(503)
                    && (code == "storage_unavailable"
                        || code == "shutting_down"
                        // SPEC R-STORE-10: the leader may have logged it.
                        || code == "leader_unavailable"));
            if status == Some(503) && code == "storage_unavailable" {
                m.stats.storage_errors += 1;
            }
            if status.is_some_and(|s| s == 503 || s == 429) && e.retry_after().is_none() {
                m.stats
                    .unexpected
                    .push(format!("{status:?} {code} without Retry-After"));
            }
            let (cred, k) = match job {
                Job::New(c, _) => (Some(c), None),
                Job::Amend(k, _) => (None, Some(k)),
            };
            if definitely_not_logged {
                m.stats.busy += 1;
                m.busy.push(bytes);
                if let Some(c) = cred {
                    m.pool.push(c);
                }
                if let Some(k) = k {
                    m.owned[k].busy = false;
                }
            } else if unsure {
                m.stats.unsure += 1;
                // An amendment left unsure keeps its pledge busy
                // until the restart settles its sequence number.
                m.unsure.push(Unsure {
                    bytes,
                    cred,
                    storage_error: code == "storage_unavailable",
                });
            } else {
                m.stats.unexpected.push(refusal(&e));
                if let Some(k) = k {
                    m.owned[k].busy = false;
                }
            }
            unsure || definitely_not_logged
        }
    }
}

/// Polls `/log/checkpoint` until `stop`, recording every verified checkpoint
/// as seen by a client.
pub async fn watch_checkpoints(base: String, model: Shared, stop: Arc<AtomicBool>) {
    let client = Client::new(&base).unwrap();
    let log = model.lock().unwrap().log.clone();
    while !stop.load(Ordering::SeqCst) {
        if let Ok(b) = client.checkpoint().await {
            let signed = SignedNote::parse(&b)
                .ok()
                .and_then(|n| verify_checkpoint(n, &log).ok());
            let mut m = model.lock().unwrap();
            match signed {
                Some(s) => m.see(s.checkpoint().size(), *s.checkpoint().root()),
                None => m
                    .stats
                    .unexpected
                    .push("a served checkpoint does not verify".into()),
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The verified checkpoint and every entry of the log.
pub async fn fetch_log(client: &Client, log: &NoteVerifier) -> (u64, Hash, Vec<Vec<u8>>) {
    let note = client.checkpoint().await.unwrap();
    let signed = verify_checkpoint(SignedNote::parse(&note).unwrap(), log)
        .expect("the served checkpoint is signed by the log key");
    let size = signed.checkpoint().size();
    let mut entries = Vec::with_capacity(usize::try_from(size).unwrap());
    let mut n = 0u64;
    while n * 256 < size {
        let width = u16::try_from((size - n * 256).min(256)).unwrap();
        let id = BundleId::new(n, width).unwrap();
        let b = client.bundle(&id).await.unwrap();
        for e in decode_bundle(&b, &id).unwrap() {
            entries.push(e.to_vec());
        }
        n += 1;
    }
    (size, *signed.checkpoint().root(), entries)
}

/// After a restart: every invariant of the crash suite.
///
/// - the log key is unchanged and the checkpoint verifies;
/// - the tree (from tiles) reproduces the last checkpoint a client saw, and
///   the new checkpoint is consistent with it (a consistency proof computed
///   from tiles verifies): never a fork, never a shrink;
/// - every acknowledged entry is in the log at its receipt's index;
/// - no nullifier is spent twice and every entry replays through the
///   ledger rules; the served tally equals the replayed one;
/// - the auditor (`pledge_client::audit`, pinned key, state directory kept
///   across restarts) passes: tiles, bundles, tokens, signatures, tallies;
/// - submissions whose outcome was unknown are settled: logged ones become
///   known pledges, the others return their token to the pool; `busy`
///   refusals are not in the log.
pub async fn check(base: &str, model: &Shared) {
    let client = Client::new(base).unwrap();
    let served_key = client.log_key().await.unwrap();
    let (log, seen) = {
        let m = model.lock().unwrap();
        assert_eq!(served_key, m.log_text, "log key changed");
        (m.log.clone(), m.seen)
    };
    let (size, root, entries) = fetch_log(&client, &log).await;
    assert!(
        size >= seen.0,
        "the tree shrank: a client saw size {} signed, now {size}",
        seen.0
    );

    // Tiles: reproduce both roots and prove consistency.
    let mut nodes = tree_root_nodes(size);
    nodes.extend(tree_root_nodes(seen.0));
    nodes.extend(consistency_proof_nodes(seen.0, size).unwrap());
    let mut tiles = TileHashes::new();
    for t in tiles_for_nodes(&nodes, size) {
        let data = client.tile(&t).await.unwrap();
        tiles.insert(t, &data).unwrap();
    }
    assert_eq!(
        tree_root(size, &tiles).unwrap(),
        root,
        "tiles do not give the root"
    );
    assert_eq!(
        tree_root(seen.0, &tiles).unwrap(),
        seen.1,
        "fork: the tree at size {} differs from the checkpoint a client saw",
        seen.0
    );
    let proof = consistency_proof(seen.0, size, &tiles).unwrap();
    verify_consistency(seen.0, size, &seen.1, &root, &proof)
        .unwrap_or_else(|e| panic!("fork: {} -> {size} not consistent: {e}", seen.0));

    // Entries: acknowledged ones at their index; replay; nullifiers unique.
    let mut state = LedgerState::new();
    let mut keys = PledgeKeys::new();
    let mut nullifiers = HashSet::new();
    let mut index_of: HashMap<&[u8], u64> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let entry = Entry::decode(e).unwrap();
        if let Entry::Pledge(p) = &entry {
            assert!(
                nullifiers.insert(p.nullifier()),
                "duplicate nullifier at index {i}"
            );
        }
        state
            .verify_and_apply(entry, &mut keys)
            .unwrap_or_else(|err| panic!("entry {i} breaks a ledger rule: {err}"));
        index_of.insert(e.as_slice(), u64::try_from(i).unwrap());
    }
    let (campaign, audit_state) = {
        let mut m = model.lock().unwrap();
        for (i, bytes) in &m.acked {
            let at = entries.get(usize::try_from(*i).unwrap());
            assert!(
                at == Some(bytes),
                "acknowledged entry {i} is lost (log size {size}, {})",
                if index_of.contains_key(bytes.as_slice()) {
                    "found elsewhere"
                } else {
                    "not in the log"
                }
            );
        }
        for b in &m.busy {
            assert!(
                !index_of.contains_key(b.as_slice()),
                "an entry refused as busy is in the log"
            );
        }
        m.busy.clear();
        let unsure = std::mem::take(&mut m.unsure);
        for u in unsure {
            let logged = index_of.get(u.bytes.as_slice()).copied();
            if let Some(i) = logged {
                m.stats.unsure_logged += 1;
                if u.storage_error {
                    m.stats.storage_errors_logged += 1;
                }
                m.acked.insert(i, u.bytes.clone());
            }
            match (u.cred, logged) {
                (Some(cred), Some(_)) => m.owned.push(Owned {
                    cred,
                    next_seq: 1,
                    busy: false,
                }),
                (Some(cred), None) => m.pool.push(cred),
                (None, _) => {}
            }
        }
        for o in &mut m.owned {
            o.next_seq = state
                .next_seq(&o.cred.nullifier)
                .expect("a known pledge is live");
            o.busy = false;
        }
        m.see(size, root);
        let campaign = m.campaign;
        let audit_state = m.audit_state.clone();
        m.stats.checks += 1;
        m.stats.log_size = size;
        (campaign, audit_state)
    };

    // The served tally equals the replayed one.
    let info = client.campaign(&campaign).await.unwrap();
    let c = state.campaign(&campaign).unwrap();
    let tally = info.tally.expect("a tally");
    if tally.checkpoint_size == size {
        assert_eq!(
            tally.live,
            c.tally.live(),
            "served live count differs from replay"
        );
        assert_eq!(
            tally.active,
            c.tally.active(),
            "served active count differs"
        );
    }

    // The independent auditor, with the key pinned and its state kept.
    let mut opts = AuditOptions::new(base);
    opts.log_key = Some(log);
    opts.state_dir = Some(audit_state);
    opts.threads = 1;
    let report = audit(&opts).await.unwrap();
    assert!(report.passed(), "audit failed: {:?}", report.failures);
}
