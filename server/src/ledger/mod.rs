//! The ledger side of `pledged`: the log rebuilt from the store at start-up,
//! the checks a submission passes before it is queued, the batch integration
//! the sequencer runs (SPEC §8, §10, R-STORE-2), and the view it publishes.
//! Never sees axum types.
//!
//! Ownership: the rules state and the Merkle tree ([`Core`]) belong to the
//! sequencer task alone, with no lock; after each durable commit it publishes
//! an immutable [`Published`] view (checkpoint, campaigns, signed tallies)
//! that every reader takes as an `Arc` without waiting for the disk.
//!
//! - [`Ledger`]: the shared side: store, log key, published view, events.
//! - [`publisher`]: the published view readers take and the signed tally
//!   statements in it.
//! - [`sequencer`]: the task that owns the [`Core`], batches, shuffles and
//!   integrates submissions.

pub mod publisher;
pub mod sequencer;

#[cfg(test)]
use publisher::sign_tally_of;
pub use publisher::{
    CampaignView, Figures, LogEvent, Phase, Published, RevealWork, TallyView,
    worst_case_funding_statement_len, worst_case_statement_len,
};
use publisher::{sign_campaign_tally, sign_tally};

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use pledge_protocol::checkpoint::{Checkpoint, verify_checkpoint};
use pledge_protocol::entry::{CampaignClosed, Entry, SealedSnapshot, SealedTallyRevealed};
use pledge_protocol::hash::{CampaignId, Hash};
use pledge_protocol::ledger::{LedgerState, RuleError, VerifiedEntry};
use pledge_protocol::merkle::{self, HashReader, NodeId, Tree};
use pledge_protocol::note::{NoteSignature, NoteSigner, NoteVerifier, SignedNote};
use pledge_protocol::pledge::PledgePublicKey;
use pledge_protocol::receipt::Receipt;
use pledge_protocol::replay::{Leaf, ReplayState, Replayer, Verification};
use pledge_protocol::sealed_reveal::aggregate_digest;
use tokio::sync::{broadcast, watch};

use crate::feed::{FeedHistory, history_meta};
use crate::store::{Batch, BatchEntry, LogStore, StoreError, StoredHash};

/// Entries read per store call while replaying the log at start-up.
const REPLAY_CHUNK: u64 = 1024;

/// Why the ledger could not start. Every message tells the operator what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored entry does not decode or breaks a ledger rule.
    #[error("stored entry {index} is invalid ({reason}); the data folder is damaged")]
    BadEntry {
        /// Index of the entry.
        index: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The stored checkpoint does not match the stored entries or hashes, or is
    /// not signed by this log's key.
    #[error("the stored checkpoint does not match the log: {0}; refusing to start")]
    CheckpointMismatch(String),
    /// Signing a checkpoint failed (the origin does not fit the key).
    #[error("cannot sign a checkpoint: {0}")]
    Signing(String),
    /// Stored server metadata does not decode.
    #[error("stored metadata is damaged: {0}; refusing to start")]
    Metadata(String),
}

/// Why a submission was refused or could not be integrated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// The entry breaks a ledger rule (SPEC §8).
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// The campaign's deadline has passed (SPEC R-CAMP-3: no pledge after it).
    #[error("the campaign's deadline has passed")]
    DeadlinePassed,
    /// The entry is not of the kind this operation takes.
    #[error("expected a {expected} entry")]
    WrongKind {
        /// The expected kind.
        expected: &'static str,
    },
    /// The queue is full: retry later.
    #[error("the ledger is busy; retry shortly")]
    QueueFull,
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The durable write failed; nothing was acknowledged.
    #[error("the ledger could not store the batch; nothing was recorded")]
    Storage,
    /// Another front end sequences the log (SPEC R-STORE-10) and this one
    /// could not hand the entry over: nothing was recorded.
    #[error(
        "the front end that sequences the log cannot be reached; if the entry reached it before \
         the failure it may be recorded: send the same entry again (a logged one is refused as \
         already spent) or look it up in the log"
    )]
    NotLeader,
    /// The campaign publishes pledges only in groups of a minimum size, and
    /// not enough arrived while this one waited: nothing was recorded.
    #[error(
        "this campaign publishes pledges only in groups of at least {min}, and fewer arrived \
         while this one waited; nothing was recorded: send the same entry again later"
    )]
    HeldBack {
        /// The campaign's minimum.
        min: u32,
    },
}

/// A campaign's publication policy (SPEC R-PUB-1): the wire API's type
/// (`publication` of `POST /v1/campaigns` and of the campaign object), also
/// the JSON the store keeps.
pub use pledge_protocol::api::Publication;

/// Store metadata key of a campaign's publication policy.
pub fn publication_meta(id: &CampaignId) -> Vec<u8> {
    format!("publication/{}", id.to_hex()).into_bytes()
}

/// What the sequencer returns for an integrated entry.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The entry's index in the log.
    pub index: u64,
    /// The checkpoint size the receipt proves against.
    pub size: u64,
    /// The C2SP tlog-proof receipt text.
    pub receipt: String,
    /// The entry's canonical bytes.
    pub entry: Vec<u8>,
}

/// The rules state and the Merkle tree: owned by the sequencer alone (no
/// lock), moved into each batch's integration and back. If an integration
/// fails or panics, the sequencer rebuilds it from the store.
#[derive(Debug)]
pub struct Core {
    state: LedgerState,
    tree: Tree,
}

impl Core {
    /// The rules state after every committed entry.
    pub fn state(&self) -> &LedgerState {
        &self.state
    }

    /// The stateful checks of a verified submission before it is held or
    /// queued: the rules (SPEC §8) and the deadline (R-CAMP-3). The
    /// integration checks them again, after the entries batched before it.
    ///
    /// # Errors
    /// [`SubmitError::Rule`] or [`SubmitError::DeadlinePassed`].
    pub fn check(&self, entry: &Entry, now: u64) -> Result<(), SubmitError> {
        self.state.check(entry)?;
        check_deadline(&self.state, entry, now)
    }
}

/// Which entries of a campaign the view indexes (SPEC R-API-7, R-API-21).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Milestone {
    Opened,
    Closed,
    Other,
}

/// Metadata updates committed with an entry (`None` deletes the key).
pub type MetaUpdates = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// One entry proposed to the sequencer, with the metadata to commit with it.
#[derive(Debug)]
pub enum Proposal {
    /// An entry whose stateless checks passed ([`Ledger::precheck`]).
    Entry(Box<VerifiedEntry>),
    /// Close a campaign: the sequencer computes the final tally when it
    /// integrates the entry, so no pledge can slip in between.
    Close {
        /// The campaign.
        campaign: CampaignId,
        /// Tokens the issuer signed for it.
        tokens_issued: u64,
    },
    /// Take an early reveal's snapshot of a sealed campaign: the sequencer
    /// names the aggregate when it integrates the entry (SPEC R-SEAL-35).
    Snapshot {
        /// The campaign.
        campaign: CampaignId,
    },
    /// Log what a snapshot decrypts to, once `k` trustees shared it (SPEC
    /// R-SEAL-37): the sequencer computes the counts from its state.
    Reveal {
        /// The campaign.
        campaign: CampaignId,
        /// The snapshot's log index.
        snapshot: u64,
    },
}

impl Proposal {
    /// A CampaignOpened entry (no stateless part to verify).
    ///
    /// # Errors
    /// [`SubmitError::WrongKind`] for another kind of entry.
    pub fn opening(entry: Entry) -> Result<Self, SubmitError> {
        if !matches!(entry, Entry::CampaignOpened(_)) {
            return Err(SubmitError::WrongKind {
                expected: "CampaignOpened",
            });
        }
        Ok(Self::Entry(Box::new(VerifiedEntry::verify(
            entry, None, None,
        )?)))
    }
}

/// The shared side of the ledger: store, log key, the published view and the
/// events. The rules state lives in the sequencer's [`Core`].
pub struct Ledger {
    store: Arc<dyn LogStore>,
    signer: NoteSigner,
    verifier: NoteVerifier,
    published: watch::Sender<Arc<Published>>,
    failed: std::sync::atomic::AtomicBool,
    /// True while a follower cannot read the store (logged once).
    follow_failing: std::sync::atomic::AtomicBool,
    events: broadcast::Sender<LogEvent>,
    /// Tally statements that could not be signed (metrics).
    tally_failures: std::sync::atomic::AtomicU64,
    /// Microseconds spent in the store's durable commits of batches
    /// (metrics: how much of a batch's time the store takes).
    commit_micros: std::sync::atomic::AtomicU64,
    /// Publication policies of campaigns that have one (SPEC R-PUB-1). Never
    /// held across a disk write.
    publication: RwLock<HashMap<CampaignId, Publication>>,
    /// Prechecks running on the blocking pool: at most four per core.
    checks: Arc<tokio::sync::Semaphore>,
    /// Each campaign's feed history (SPEC R-API-26), as committed. Updated
    /// only after the batch that changed it is durable; never held across a
    /// disk write.
    feeds: RwLock<HashMap<CampaignId, FeedRecord>>,
}

/// A campaign's feed history and whether the store holds it (a campaign
/// from before feed histories were kept gets one at start-up, written with
/// the next batch that touches the campaign).
#[derive(Debug, Clone)]
struct FeedRecord {
    history: Arc<FeedHistory>,
    stored: bool,
}

/// The active count `A` of a campaign's rules state: the joint one for a
/// funding campaign (R-FUND-1), else R-TALLY-2's. `None` only on sums that
/// cannot occur.
fn campaign_active(c: &pledge_protocol::ledger::CampaignState) -> Option<u64> {
    match &c.funding {
        Some(f) => f.joint().ok().map(|j| j.active),
        None => Some(c.tally.active()),
    }
}

/// A sealed campaign's reveal bookkeeping (SPEC R-SEAL-89).
fn reveal_work_of(c: &pledge_protocol::ledger::CampaignState) -> Option<RevealWork> {
    let s = c.sealed.as_ref()?;
    let k = c
        .definition
        .sealed_block()
        .map_or(0, |b| usize::from(b.k()));
    Some(RevealWork {
        early_snapshots: s.snapshots.iter().filter(|x| !x.at_close).count(),
        revealable: s
            .snapshots
            .iter()
            .filter(|x| x.revealed.is_none() && x.shares.len() >= k)
            .map(|x| x.index)
            .collect(),
        revealed: s
            .snapshots
            .iter()
            .filter_map(|x| x.revealed.clone().map(|r| (x.index, r)))
            .collect(),
    })
}

/// A sealed campaign's joint key, once logged (SPEC R-SEAL-34).
fn joint_key_of(
    c: &pledge_protocol::ledger::CampaignState,
) -> Option<pledge_protocol::sealed::JointPublicKey> {
    c.sealed.as_ref().and_then(|s| s.joint_key.clone())
}

/// The feed history of every campaign of `state`: as stored, or (for a
/// campaign from before feed histories) reconstructed from its tally, dated
/// by the deadline once closed, else by `now` (SPEC R-API-26).
fn load_feeds(
    store: &dyn LogStore,
    state: &LedgerState,
    now: u64,
) -> Result<HashMap<CampaignId, FeedRecord>, StartupError> {
    let mut feeds = HashMap::new();
    for (id, c) in state.campaigns() {
        let record = match store.meta(&history_meta(id))? {
            Some(bytes) => FeedRecord {
                history: Arc::new(serde_json::from_slice(&bytes).map_err(|e| {
                    StartupError::Metadata(format!(
                        "a campaign's feed history does not decode ({e})"
                    ))
                })?),
                stored: true,
            },
            None => {
                let at = if c.closed.is_some() {
                    c.deadline()
                } else {
                    now
                };
                let active = campaign_active(c).unwrap_or(0);
                FeedRecord {
                    history: Arc::new(FeedHistory::reconstructed(active, c.definition.goal(), at)),
                    stored: false,
                }
            }
        };
        feeds.insert(*id, record);
    }
    Ok(feeds)
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("origin", &self.verifier.name().as_str())
            .finish_non_exhaustive()
    }
}

/// Reads Merkle stored hashes out of the store.
#[derive(Debug, Clone, Copy)]
pub struct StoreHashes<'a>(pub &'a dyn LogStore);

impl HashReader for StoreHashes<'_> {
    type Error = StoreError;

    fn read_hash(&self, node: NodeId) -> Result<Hash, StoreError> {
        self.0
            .hash(node.level, node.index)?
            .ok_or(StoreError::MissingHash {
                level: node.level,
                index: node.index,
            })
    }
}

/// The hash reader of one batch's receipts: the batch's new stored hashes
/// from memory, every other node from the store at most once. The receipts of
/// a batch of consecutive leaves share all but their lowest proof nodes, so
/// this reads about `log2(size)` hashes per batch instead of that many per
/// receipt (each store read is its own read transaction).
struct BatchHashes<'a> {
    store: &'a dyn LogStore,
    memo: RefCell<HashMap<NodeId, Hash>>,
}

impl<'a> BatchHashes<'a> {
    fn new(store: &'a dyn LogStore, fresh: &[StoredHash]) -> Self {
        let memo = fresh
            .iter()
            .map(|h| (NodeId::new(h.level, h.index), h.hash))
            .collect();
        Self {
            store,
            memo: RefCell::new(memo),
        }
    }
}

impl HashReader for BatchHashes<'_> {
    type Error = StoreError;

    fn read_hash(&self, node: NodeId) -> Result<Hash, StoreError> {
        if let Some(h) = self.memo.borrow().get(&node) {
            return Ok(*h);
        }
        let h = StoreHashes(self.store).read_hash(node)?;
        self.memo.borrow_mut().insert(node, h);
        Ok(h)
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Ledger {
    /// Rebuilds the view from the store (SPEC R-STORE-6): replays every entry
    /// through the rules and the Merkle tree, checks the stored checkpoint is
    /// signed by `signer` and matches the replayed root and the stored hashes.
    /// An empty store gets its first (size 0) checkpoint committed. Returns
    /// the shared ledger and the [`Core`] for the sequencer.
    ///
    /// # Errors
    /// [`StartupError`] naming what does not match.
    pub fn open(
        store: Arc<dyn LogStore>,
        signer: NoteSigner,
    ) -> Result<(Self, Core), StartupError> {
        let verifier = signer.verifier();
        let loaded = match load_view(store.as_ref(), &signer, &verifier)? {
            Some(v) => v,
            None => {
                let note = sign_checkpoint(&signer, 0, merkle::empty_root())?;
                store.commit_batch(Batch {
                    first_index: 0,
                    checkpoint: note.clone().into_bytes(),
                    ..Batch::default()
                })?;
                Loaded {
                    core: Core {
                        state: LedgerState::new(),
                        tree: Tree::new(),
                    },
                    checkpoint: note.into(),
                    opened_at: HashMap::new(),
                    closed_at: HashMap::new(),
                    tallies: HashMap::new(),
                }
            }
        };
        let publication = load_publications(store.as_ref(), &loaded.core.state)?;
        let feeds = load_feeds(store.as_ref(), &loaded.core.state, unix_now())?;
        let (published, core) = loaded.into_parts();
        let (events, _) = broadcast::channel(256);
        let ledger = Self {
            store,
            signer,
            verifier,
            published: watch::Sender::new(Arc::new(published)),
            failed: std::sync::atomic::AtomicBool::new(false),
            follow_failing: std::sync::atomic::AtomicBool::new(false),
            events,
            tally_failures: std::sync::atomic::AtomicU64::new(0),
            commit_micros: std::sync::atomic::AtomicU64::new(0),
            publication: RwLock::new(publication),
            checks: Arc::new(tokio::sync::Semaphore::new(
                4 * std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            )),
            feeds: RwLock::new(feeds),
        };
        Ok((ledger, core))
    }

    /// A campaign's feed history (SPEC R-API-26), as committed.
    pub fn feed_history(&self, id: &CampaignId) -> Option<Arc<FeedHistory>> {
        self.feeds
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .map(|r| r.history.clone())
    }

    /// The feed histories the batch that leaves `core` as it is changes:
    /// campaigns opened in it, campaigns whose `A` reached a new step or the
    /// goal, and campaigns whose history is not stored yet.
    fn feed_updates(
        &self,
        core: &Core,
        touched: &BTreeSet<CampaignId>,
        now: u64,
    ) -> Vec<(CampaignId, Arc<FeedHistory>)> {
        let feeds = self
            .feeds
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = Vec::new();
        for id in touched {
            let Some(c) = core.state.campaign(id) else {
                continue;
            };
            let Some(active) = campaign_active(c) else {
                continue;
            };
            let (history, stored) = match feeds.get(id) {
                Some(r) => (r.history.clone(), r.stored),
                None => (Arc::new(FeedHistory::opened(now)), false),
            };
            match history.advance(active, c.definition.goal(), now) {
                Some(next) => out.push((*id, Arc::new(next))),
                None if !stored => out.push((*id, history)),
                None => {}
            }
        }
        out
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn LogStore> {
        &self.store
    }

    /// The log's verifier key.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// The latest published view: never waits for a disk write.
    pub fn published(&self) -> Arc<Published> {
        self.published.borrow().clone()
    }

    /// Waits until the published view holds at least `size` entries, for
    /// at most `limit`; whether it does.
    pub async fn published_at_least(&self, size: u64, limit: std::time::Duration) -> bool {
        let mut view = self.published.subscribe();
        tokio::time::timeout(limit, view.wait_for(|p| p.size() >= size))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// True once a durable write failed and the view could not be rebuilt:
    /// the server refuses writes until restarted.
    pub fn has_failed(&self) -> bool {
        self.failed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Adds a witness cosignature to the served checkpoint if it is still the
    /// checkpoint of `size` (SPEC R-NOTE-12). Returns whether it was added.
    pub fn attach_cosignature(&self, size: u64, sig: NoteSignature) -> bool {
        self.published
            .send_if_modified(|p| match p.with_cosignature(size, sig) {
                Some(next) => {
                    *p = Arc::new(next);
                    true
                }
                None => false,
            })
    }

    /// A campaign's publication policy ([`Publication::IMMEDIATE`] when it
    /// has none).
    pub fn publication(&self, id: &CampaignId) -> Publication {
        self.publication
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .copied()
            .unwrap_or(Publication::IMMEDIATE)
    }

    /// Records a campaign's publication policy (before its CampaignOpened
    /// entry is submitted; the same policy goes into the store with it).
    pub fn set_publication(&self, id: CampaignId, p: Publication) {
        self.publication
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, p);
    }

    /// Tally statements that could not be signed since start.
    pub fn tally_failures(&self) -> u64 {
        self.tally_failures
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Seconds spent in the store's durable commits of batches, successful
    /// or not.
    pub fn commit_seconds(&self) -> f64 {
        self.commit_micros
            .load(std::sync::atomic::Ordering::Relaxed) as f64
            / 1e6
    }

    /// Whether campaigns with thresholds `t_min..=t_max` always get a tally
    /// statement that fits a signed note on this log (SPEC R-API-20).
    pub fn statement_fits(&self, t_min: u32, t_max: u32, funding_levels: Option<usize>) -> bool {
        let origin = self.signer.name();
        let len = match funding_levels {
            None => worst_case_statement_len(origin.as_str(), t_min, t_max),
            Some(l) => worst_case_funding_statement_len(origin.as_str(), t_min, t_max, l),
        };
        len <= pledge_protocol::note::MAX_NOTE_BYTES
    }

    /// Subscribes to published checkpoints and tallies.
    pub fn subscribe(&self) -> broadcast::Receiver<LogEvent> {
        self.events.subscribe()
    }

    /// The checks of a submission against the published view, before it is
    /// queued: the campaign exists, is not closed and allows the terms; then
    /// the stateless signatures (RSA token and Ed25519 pledge key of a
    /// pledge; Ed25519 of an amendment or withdrawal under its pledge's key,
    /// read back from the store: the expensive part, run on the caller's
    /// thread). A sealed pledge or amendment is refused in a live campaign,
    /// a plain one in a sealed campaign, a sealed one before the published
    /// view has the campaign's joint key, and its proofs are verified under
    /// that key (SPEC R-SEAL-84). The sequencer runs the stateful rules
    /// ([`Core::check`]) when it takes the entry, and again when it
    /// integrates it. SPEC §8.
    ///
    /// # Errors
    /// [`SubmitError::Rule`]; [`SubmitError::Storage`] if the store cannot
    /// be read.
    pub fn precheck(&self, entry: Entry) -> Result<VerifiedEntry, SubmitError> {
        let published = self.published();
        let c = published
            .campaign(&entry.campaign())
            .ok_or(RuleError::UnknownCampaign)?;
        // SPEC R-SEAL-33 rule 1, R-SEAL-84: sealed terms only in a sealed
        // campaign; plain terms and withdrawals only in a live one.
        let sealed_campaign = c.definition.sealed_block().is_some();
        let sealed_entry = matches!(entry, Entry::SealedPledge(_) | Entry::SealedAmended(_));
        let plain_entry = matches!(
            entry,
            Entry::Pledge(_) | Entry::PledgeAmended(_) | Entry::PledgeWithdrawn(_)
        );
        if (sealed_entry && !sealed_campaign) || (plain_entry && sealed_campaign) {
            return Err(RuleError::WrongTermsKind.into());
        }
        // SPEC R-SEAL-33 rule 2: nothing sealed before the joint key (the
        // rules' order: before the stateless checks).
        if sealed_entry && c.joint_key.is_none() {
            return Err(RuleError::SealedKeyNotReady.into());
        }
        // SPEC R-RULE-3, R-SEAL-32: the token, the signature and the proofs
        // under the published joint key.
        let key =
            matches!(entry, Entry::Pledge(_) | Entry::SealedPledge(_)).then_some(&c.issuer_key);
        let pledge_key = self.pledge_key(&entry)?;
        let verified =
            VerifiedEntry::verify_sealed(entry, key, pledge_key.as_ref(), c.joint_key.as_ref())?;
        // SPEC R-RULE-2, R-RULE-5 (decryption shares come after the close,
        // R-SEAL-36)
        if c.closed_at.is_some() && !matches!(verified.entry(), Entry::DecryptionShares(_)) {
            return Err(RuleError::CampaignClosed.into());
        }
        let terms = match verified.entry() {
            Entry::Pledge(p) => Some(&p.terms),
            Entry::PledgeAmended(a) => Some(&a.terms),
            _ => None,
        };
        // SPEC R-RULE-5, R-RULE-10: the threshold in range; support and
        // funding terms only in a funding campaign, support from its menu.
        if let Some(t) = terms {
            c.definition.check_terms(t).map_err(RuleError::from)?;
        }
        Ok(verified)
    }

    /// The key of the pledge an amendment or withdrawal names, read back from
    /// that pledge's entry in the store: the rules keep no pledge keys in
    /// memory (32 MB a million pledges; BENCHMARKS.md, session 8). `None`
    /// for other kinds and for a nullifier no durable pledge spent (so an
    /// amendment sent before its pledge was acknowledged is refused as
    /// [`RuleError::UnknownPledge`], as the rules would refuse it).
    fn pledge_key(&self, entry: &Entry) -> Result<Option<PledgePublicKey>, SubmitError> {
        let n = match entry {
            Entry::PledgeAmended(a) => &a.nullifier,
            Entry::PledgeWithdrawn(w) => &w.nullifier,
            Entry::SealedAmended(a) => &a.nullifier,
            _ => return Ok(None),
        };
        let read = |e: StoreError| {
            tracing::error!(error = %e, "reading a pledge back from the store failed");
            SubmitError::Storage
        };
        let Some(index) = self.store.nullifier_index(n).map_err(read)? else {
            return Ok(None);
        };
        let bytes = self
            .store
            .entry(index)
            .map_err(read)?
            .ok_or(SubmitError::Storage)?;
        match Entry::decode(&bytes) {
            Ok(Entry::Pledge(p)) => Ok(Some(p.token.pledge_pk)),
            // SPEC R-SEAL-85: a sealed pledge's key, for its amendments (the
            // rules refuse an amendment of one kind to a pledge of the other).
            Ok(Entry::SealedPledge(p)) => Ok(Some(p.token.pledge_pk)),
            // The store maps nullifiers to pledges only (R-STORE-6 checked
            // every stored entry at start-up).
            _ => Err(SubmitError::Storage),
        }
    }

    /// [`Ledger::precheck`] on the blocking pool, at most four per core at a
    /// time. The checks are CPU-bound, so more at once only queue for the
    /// cores, and each extra thread holds its own stack and allocator arena:
    /// with one blocking task per request, 512 pledges in flight kept up to
    /// 512 threads (BENCHMARKS.md, "RSS"). One per core was 15 % slower
    /// (the hand-over between a finished check and the next leaves a core
    /// idle); four per core was not (BENCHMARKS.md, session 7).
    ///
    /// # Errors
    /// The outer error if the check panicked; the inner one as
    /// [`Ledger::precheck`].
    pub async fn precheck_on_pool(
        self: &Arc<Self>,
        entry: Entry,
    ) -> Result<Result<VerifiedEntry, SubmitError>, tokio::task::JoinError> {
        // The semaphore is never closed.
        let permit = self.checks.clone().acquire_owned().await.ok();
        let ledger = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            ledger.precheck(entry)
        })
        .await
    }

    /// Rebuilds the [`Core`] from the store, after a failed or panicked
    /// integration left it dirty or lost; marks the ledger failed (writes
    /// refused until restart) if the store cannot be read back. The
    /// published view is untouched: it only ever shows durable state.
    pub fn reload(&self) -> Option<Core> {
        let loaded = load_view(self.store.as_ref(), &self.signer, &self.verifier).and_then(|v| {
            v.map(|v| {
                let feeds = load_feeds(self.store.as_ref(), &v.core.state, unix_now())?;
                Ok((v, feeds))
            })
            .transpose()
        });
        match loaded {
            Ok(Some((v, feeds))) => {
                // What the store holds: a failed commit may have reached it.
                *self
                    .feeds
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = feeds;
                if self
                    .failed
                    .swap(false, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::info!("the store is readable again: writes resume");
                }
                Some(self.publish_loaded(v))
            }
            Ok(None) | Err(_) => {
                // Logged once per outage; the sequencer tries again.
                if !self.failed.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::error!(
                        "the store cannot be read back; refusing writes until it can (retried \
                         every second)"
                    );
                }
                None
            }
        }
    }

    /// Publishes a view read back from the store if it is ahead of the
    /// published one: a commit whose answer was lost (acknowledged to no
    /// one) may have reached the store, and a follower may have read part of
    /// the log before its store failed. Without this the view would stay
    /// behind what is durable until the next batch, which may never come.
    /// Returns the core.
    fn publish_loaded(&self, loaded: Loaded) -> Core {
        let old = self.published();
        if loaded.core.tree.size() <= old.size() {
            return loaded.core;
        }
        match load_publications(self.store.as_ref(), &loaded.core.state) {
            Ok(policies) => {
                for (id, p) in policies {
                    self.set_publication(id, p);
                }
            }
            Err(e) => tracing::error!("reading publication policies back: {e}"),
        }
        let (published, core) = loaded.into_parts();
        let (size, note) = (published.size(), published.checkpoint());
        let changed: Vec<Arc<TallyView>> = published
            .campaign_map()
            .iter()
            .filter_map(|(id, view)| {
                let tally = view.tally.clone()?;
                let before = old.campaign(id).and_then(|v| v.tally.clone());
                let same = before.is_some_and(|b| b.figures == tally.figures);
                (!same).then_some(tally)
            })
            .collect();
        self.published.send_replace(Arc::new(published));
        tracing::info!("published size {size}, read back from the store");
        let _ = self.events.send(LogEvent::Checkpoint { size, note });
        for t in changed {
            let _ = self.events.send(LogEvent::Tally(t));
        }
        core
    }

    /// Follows the log that another front end sequences (SPEC R-STORE-10):
    /// reads the entries committed since `core`'s size, applies them (they
    /// were verified before they were stored, R-STORE-6), checks the result
    /// against the stored checkpoint (signed by this log's key, root equal)
    /// and publishes the new view, its signed tallies (the same bytes the
    /// sequencing front end signed: Ed25519 is deterministic) and events.
    /// Returns the core, rebuilt from the store if it no longer matches it;
    /// `None` if the store cannot be read back (as [`Ledger::reload`]).
    pub fn catch_up(&self, core: Core) -> Option<Core> {
        let ckpt = match self.store.checkpoint() {
            Ok(Some(c)) => c,
            Ok(None) => return Some(core),
            Err(e) => {
                if !self
                    .follow_failing
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::warn!("following the log: cannot read the checkpoint ({e}); retrying");
                }
                return Some(core);
            }
        };
        if self
            .follow_failing
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::info!("following the log: the store is readable again");
        }
        let Some((size, root)) = SignedNote::parse(&ckpt)
            .ok()
            .and_then(|n| verify_checkpoint(n, &self.verifier).ok())
            .map(|s| (s.checkpoint().size(), *s.checkpoint().root()))
        else {
            tracing::error!("following the log: the stored checkpoint is not this log's");
            return Some(core);
        };
        let have = core.tree.size();
        if size == have {
            return Some(core);
        }
        if size < have {
            tracing::error!("following the log: the store is behind this front end; reloading");
            return self.reload();
        }
        match self.follow(core, size, root) {
            Ok((core, touched, milestones)) => {
                let Ok(note) = String::from_utf8(ckpt) else {
                    return self.reload();
                };
                let note: Arc<str> = note.into();
                let new_tallies = self.publish(&core, size, &note, &touched, &milestones);
                let _ = self.events.send(LogEvent::Checkpoint { size, note });
                for t in new_tallies {
                    let _ = self.events.send(LogEvent::Tally(t));
                }
                Some(core)
            }
            Err(why) => {
                tracing::error!("following the log: {why}; reloading it from the store");
                self.reload()
            }
        }
    }

    /// Applies the stored entries `core.size()..size`, checks the root, and
    /// loads the publication policies and feed histories they changed.
    #[allow(clippy::type_complexity)]
    fn follow(
        &self,
        mut core: Core,
        size: u64,
        root: Hash,
    ) -> Result<
        (
            Core,
            BTreeSet<CampaignId>,
            Vec<(CampaignId, u64, Milestone)>,
        ),
        String,
    > {
        let mut touched = BTreeSet::new();
        let mut milestones = Vec::new();
        let mut start = core.tree.size();
        while start < size {
            let end = size.min(start.saturating_add(REPLAY_CHUNK));
            let entries = self.store.entries(start, end).map_err(|e| e.to_string())?;
            if entries.len() as u64 != end - start {
                return Err("entries missing below the checkpoint's size".into());
            }
            for (index, bytes) in (start..end).zip(entries) {
                let entry = Entry::decode(&bytes).map_err(|e| format!("entry {index}: {e}"))?;
                let campaign = entry.campaign();
                let milestone = match entry {
                    Entry::CampaignOpened(_) => Milestone::Opened,
                    Entry::CampaignClosed(_) => Milestone::Closed,
                    _ => Milestone::Other,
                };
                core.state
                    .apply(&VerifiedEntry::previously_verified(entry))
                    .map_err(|e| format!("entry {index}: {e}"))?;
                core.tree
                    .append(merkle::leaf_hash(&bytes))
                    .map_err(|e| e.to_string())?;
                touched.insert(campaign);
                if milestone != Milestone::Other {
                    milestones.push((campaign, index, milestone));
                }
            }
            start = end;
        }
        if core.tree.root() != root {
            return Err("the stored checkpoint's root differs from the entries'".into());
        }
        for (id, _, m) in &milestones {
            if *m == Milestone::Opened
                && let Some(bytes) = self
                    .store
                    .meta(&publication_meta(id))
                    .map_err(|e| e.to_string())?
            {
                let p = serde_json::from_slice::<Publication>(&bytes)
                    .map_err(|e| format!("a publication policy does not decode ({e})"))?;
                self.set_publication(*id, p);
            }
        }
        let mut histories = Vec::new();
        for id in &touched {
            if let Some(bytes) = self
                .store
                .meta(&history_meta(id))
                .map_err(|e| e.to_string())?
            {
                let h: FeedHistory = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("a feed history does not decode ({e})"))?;
                histories.push((*id, h));
            }
        }
        let mut feeds = self
            .feeds
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (id, h) in histories {
            feeds.insert(
                id,
                FeedRecord {
                    history: Arc::new(h),
                    stored: true,
                },
            );
        }
        drop(feeds);
        Ok((core, touched, milestones))
    }

    /// Integrates one batch (already shuffled) into `core`: applies each
    /// proposal to the rules, appends the accepted ones to the tree, signs the
    /// checkpoint and the touched campaigns' tallies, commits durably, then
    /// publishes the new view and returns each result. If the commit fails
    /// every proposal gets [`SubmitError::Storage`] and `core` is rebuilt from
    /// the store (SPEC R-STORE-2, DESIGN I3); `None` afterwards means it could
    /// not be.
    pub fn integrate(
        &self,
        core: Core,
        proposals: Vec<(Proposal, MetaUpdates)>,
        now: u64,
    ) -> (Option<Core>, Vec<Result<Accepted, SubmitError>>) {
        let mut core = core;
        let first_index = core.tree.size();
        // The receipts' hashes left of the batch are the frontier before it
        // (each is a left sibling of a subtree holding a new entry).
        let before: Vec<StoredHash> = merkle::frontier_nodes(first_index)
            .zip(core.tree.frontier())
            .map(|(node, hash)| StoredHash {
                level: node.level,
                index: node.index,
                hash: *hash,
            })
            .collect();
        let mut results: Vec<Result<(u64, Vec<u8>), SubmitError>> =
            Vec::with_capacity(proposals.len());
        let mut batch = Batch {
            first_index,
            ..Batch::default()
        };
        let mut touched = BTreeSet::new();
        let mut milestones = Vec::new();
        for (proposal, meta) in proposals {
            let r = apply_one(&mut core, proposal, now, &mut batch);
            let r = r.map(|(index, bytes, campaign, milestone)| {
                batch.meta.extend(meta);
                touched.insert(campaign);
                if milestone != Milestone::Other {
                    milestones.push((campaign, index, milestone));
                }
                (index, bytes)
            });
            results.push(r);
        }
        let failed = |results: Vec<Result<(u64, Vec<u8>), SubmitError>>| {
            results.iter().map(|_| Err(SubmitError::Storage)).collect()
        };
        if batch.entries.is_empty() && batch.meta.is_empty() {
            // Nothing applied, nothing changed: every result is an error.
            let results = results
                .into_iter()
                .map(|r| r.and(Err(SubmitError::Storage)))
                .collect();
            return (Some(core), results);
        }
        // SPEC R-API-26: the feed histories this batch changes are committed
        // with it.
        let feed_updates = self.feed_updates(&core, &touched, now);
        for (id, h) in &feed_updates {
            match serde_json::to_vec(h.as_ref()) {
                Ok(bytes) => batch.meta.push((history_meta(id), Some(bytes))),
                Err(e) => tracing::error!("encoding a feed history failed: {e}"),
            }
        }
        let size = core.tree.size();
        let note = match sign_checkpoint(&self.signer, size, core.tree.root()) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!("signing the checkpoint failed: {e}");
                return (self.reload(), failed(results));
            }
        };
        batch.checkpoint = note.clone().into_bytes();
        let mut known = batch.hashes.clone();
        known.extend(before);
        let started = std::time::Instant::now();
        let committed = self.store.commit_batch(batch);
        self.commit_micros.fetch_add(
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        if let Err(e) = committed {
            tracing::error!("committing a batch failed, nothing acknowledged: {e}");
            return (self.reload(), failed(results));
        }
        // Durable from here on: publish.
        {
            let mut feeds = self
                .feeds
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (id, history) in feed_updates {
                feeds.insert(
                    id,
                    FeedRecord {
                        history,
                        stored: true,
                    },
                );
            }
        }
        let note: Arc<str> = note.into();
        let new_tallies = self.publish(&core, size, &note, &touched, &milestones);
        let _ = self.events.send(LogEvent::Checkpoint {
            size,
            note: note.clone(),
        });
        for t in new_tallies {
            let _ = self.events.send(LogEvent::Tally(t));
        }
        let reader = BatchHashes::new(self.store.as_ref(), &known);
        let results = results
            .into_iter()
            .map(|r| {
                let (index, entry) = r?;
                let receipt = make_receipt(&reader, index, size, &note).map_err(|e| {
                    tracing::error!("building a receipt failed: {e}");
                    SubmitError::Storage
                })?;
                Ok(Accepted {
                    index,
                    size,
                    receipt,
                    entry,
                })
            })
            .collect();
        (Some(core), results)
    }

    /// Publishes the view after a durable commit of size `size`: the new
    /// checkpoint, and a new view of each touched campaign with its signed
    /// tally. Returns the new tallies.
    fn publish(
        &self,
        core: &Core,
        size: u64,
        note: &Arc<str>,
        touched: &BTreeSet<CampaignId>,
        milestones: &[(CampaignId, u64, Milestone)],
    ) -> Vec<Arc<TallyView>> {
        let old = self.published();
        let mut campaigns = old.campaign_map();
        let mut new_tallies = Vec::new();
        for id in touched {
            let Some(c) = core.state.campaign(id) else {
                continue;
            };
            let milestone = |m: Milestone| {
                milestones
                    .iter()
                    .find(|(c, _, k)| c == id && *k == m)
                    .map(|(_, i, _)| *i)
            };
            let before = campaigns.get(id);
            let Some(opened_at) = milestone(Milestone::Opened).or(before.map(|v| v.opened_at))
            else {
                continue;
            };
            let closed_at = milestone(Milestone::Closed).or(before.and_then(|v| v.closed_at));
            let tally = match sign_campaign_tally(&self.signer, c, id, size) {
                Ok(t) => {
                    new_tallies.push(t.clone());
                    Some(t)
                }
                Err(e) => {
                    // Never serve the older statement as if it were current.
                    self.tally_failures
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::error!("cannot sign a campaign's tally statement at size {size}: {e}");
                    None
                }
            };
            let view = CampaignView {
                definition: c.definition.clone(),
                issuer_key: c.issuer_key.clone(),
                opened_at,
                closed_at,
                tally,
                updates: c.updates.clone(),
                joint_key: joint_key_of(c),
                reveal_work: reveal_work_of(c),
            };
            campaigns.insert(*id, Arc::new(view));
        }
        let next = Arc::new(Published::new(size, note.clone(), campaigns));
        self.published.send_replace(next);
        new_tallies
    }
}

fn apply_one(
    core: &mut Core,
    proposal: Proposal,
    now: u64,
    batch: &mut Batch,
) -> Result<(u64, Vec<u8>, CampaignId, Milestone), SubmitError> {
    let verified = match proposal {
        Proposal::Entry(e) => *e,
        Proposal::Close {
            campaign,
            tokens_issued,
        } => {
            let c = core
                .state
                .campaign(&campaign)
                .ok_or(RuleError::UnknownCampaign)?;
            // SPEC R-ENTRY-6, R-FUND-6: a funding campaign closes on its
            // joint tally; R-SEAL-35: a sealed one on its aggregate.
            let closed = match (&c.funding, &c.sealed) {
                (_, Some(s)) => CampaignClosed {
                    campaign,
                    tokens_issued,
                    live: 0,
                    active: 0,
                    tally_digest: aggregate_digest(s.aggregate()),
                },
                (Some(f), None) => {
                    let tally = f.snapshot().map_err(|_| RuleError::TallyMismatch)?;
                    CampaignClosed::for_funding(campaign, tokens_issued, &tally)
                }
                (None, None) => {
                    let tally = c.tally.snapshot().map_err(|_| RuleError::TallyMismatch)?;
                    CampaignClosed::new(campaign, tokens_issued, &tally)
                }
            };
            VerifiedEntry::verify(Entry::CampaignClosed(closed), None, None)?
        }
        Proposal::Snapshot { campaign } => {
            let s = core
                .state
                .campaign(&campaign)
                .and_then(|c| c.sealed.as_ref())
                .ok_or(RuleError::WrongTermsKind)?;
            let entry = Entry::SealedSnapshot(SealedSnapshot {
                campaign,
                aggregate_digest: aggregate_digest(s.aggregate()),
            });
            VerifiedEntry::verify(entry, None, None)?
        }
        Proposal::Reveal { campaign, snapshot } => {
            let counts = core.state.reveal_counts(&campaign, snapshot)?;
            let entry = Entry::SealedTallyRevealed(SealedTallyRevealed {
                campaign,
                snapshot,
                counts,
            });
            VerifiedEntry::verify(entry, None, None)?
        }
    };
    let entry = verified.entry();
    check_deadline(&core.state, entry, now)?;
    let bytes = entry.encode().map_err(|_| RuleError::TooLarge)?;
    // The stateful rules run again here because earlier entries of this batch
    // may have changed the state.
    core.state.apply(&verified)?;
    let mut hashes = Vec::new();
    let index = core
        .tree
        .append_with(merkle::leaf_hash(&bytes), |node, hash| {
            hashes.push(StoredHash {
                level: node.level,
                index: node.index,
                hash,
            });
        })
        .map_err(|_| SubmitError::Storage)?;
    batch.hashes.extend(hashes);
    // SPEC R-SEAL-85: a sealed pledge spends its nullifier like any pledge
    // (the store's index, read back for its amendments' key).
    let nullifier = match entry {
        Entry::Pledge(p) => Some(p.nullifier()),
        Entry::SealedPledge(p) => Some(p.nullifier()),
        _ => None,
    };
    batch.entries.push(BatchEntry {
        data: bytes.clone(),
        nullifier,
    });
    let milestone = match entry {
        Entry::CampaignOpened(_) => Milestone::Opened,
        Entry::CampaignClosed(_) => Milestone::Closed,
        _ => Milestone::Other,
    };
    Ok((index, bytes, entry.campaign(), milestone))
}

/// No pledge, amendment or withdrawal after the campaign's effective
/// deadline (SPEC R-CAMP-8), and no update of a campaign past it (R-RULE-14:
/// a campaign that is closing is never reopened).
fn check_deadline(state: &LedgerState, entry: &Entry, now: u64) -> Result<(), SubmitError> {
    match entry {
        Entry::Pledge(_)
        | Entry::PledgeAmended(_)
        | Entry::PledgeWithdrawn(_)
        | Entry::SealedPledge(_)
        | Entry::SealedAmended(_)
        | Entry::CampaignUpdated(_) => {
            if let Some(c) = state.campaign(&entry.campaign())
                && now > c.deadline()
            {
                return Err(SubmitError::DeadlinePassed);
            }
            Ok(())
        }
        Entry::CampaignOpened(o) => {
            if now > o.definition.deadline() {
                return Err(SubmitError::DeadlinePassed);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn sign_checkpoint(signer: &NoteSigner, size: u64, root: Hash) -> Result<String, StartupError> {
    Checkpoint::new(signer.name().clone(), size, root)
        .sign(signer)
        .map(|n| n.to_text())
        .map_err(|e| StartupError::Signing(e.to_string()))
}

/// The tlog-proof receipt of entry `index` in the tree of `size` leaves.
fn make_receipt<R: HashReader + ?Sized>(
    reader: &R,
    index: u64,
    size: u64,
    note: &str,
) -> Result<String, String>
where
    R::Error: std::fmt::Display,
{
    let proof = merkle::inclusion_proof(index, size, reader).map_err(|e| e.to_string())?;
    let note = SignedNote::parse(note.as_bytes()).map_err(|e| e.to_string())?;
    Ok(Receipt::new(index, proof, note)
        .map_err(|e| e.to_string())?
        .to_text())
}

/// Replays the store into a view; `None` for a store that has never been
/// written (no checkpoint yet).
fn load_view(
    store: &dyn LogStore,
    signer: &NoteSigner,
    verifier: &NoteVerifier,
) -> Result<Option<Loaded>, StartupError> {
    let size = store.size()?;
    let Some(ckpt) = store.checkpoint()? else {
        return Ok(None);
    };
    let mut replay = Replayer::<Tree>::of_verified_log();
    let mut start = 0;
    while start < size {
        let end = size.min(start.saturating_add(REPLAY_CHUNK));
        for (i, bytes) in (start..end).zip(store.entries(start, end)?) {
            let bad = |reason: String| StartupError::BadEntry { index: i, reason };
            // Only verified entries were ever stored (SPEC R-STORE-6).
            replay
                .replay(Leaf::decode_stored(&bytes), Verification::Previously)
                .map_err(|e| bad(e.to_string()))?
                .into_result()
                .map_err(|e| bad(e.to_string()))?;
        }
        start = end;
    }
    let ReplayState {
        ledger: state,
        tree,
        opened: opened_at,
        closed: closed_at,
        ..
    } = replay.into_state();
    // The checkpoint must be ours and match the replayed entries…
    let note = SignedNote::parse(&ckpt)
        .map_err(|e| StartupError::CheckpointMismatch(format!("unreadable note: {e}")))?;
    let signed = verify_checkpoint(note, verifier).map_err(|e| {
        StartupError::CheckpointMismatch(format!("not signed by this log's key: {e}"))
    })?;
    let cp = signed.checkpoint();
    if cp.size() != size || *cp.root() != tree.root() {
        return Err(StartupError::CheckpointMismatch(format!(
            "checkpoint says size {} but the store holds {size} entries, or the roots differ",
            cp.size()
        )));
    }
    // …and the stored hashes that tiles and proofs are served from must agree.
    let stored_root = merkle::tree_root(size, &StoreHashes(store))
        .map_err(|e| StartupError::CheckpointMismatch(format!("stored hashes: {e}")))?;
    if stored_root != tree.root() {
        return Err(StartupError::CheckpointMismatch(
            "the stored Merkle hashes do not give the checkpoint's root".into(),
        ));
    }
    let checkpoint: Arc<str> = String::from_utf8(ckpt)
        .map_err(|_| StartupError::CheckpointMismatch("not UTF-8".into()))?
        .into();
    let mut tallies = HashMap::new();
    let ids: Vec<CampaignId> = state.campaigns().map(|(id, _)| *id).collect();
    for id in ids {
        match sign_tally(signer, &state, &id, size) {
            Some(Ok(t)) => {
                tallies.insert(id, t);
            }
            Some(Err(e)) => {
                tracing::error!("cannot sign a campaign's tally statement at size {size}: {e}");
            }
            None => {}
        }
    }
    Ok(Some(Loaded {
        core: Core { state, tree },
        checkpoint,
        opened_at,
        closed_at,
        tallies,
    }))
}

/// The publication policies of the campaigns still open.
fn load_publications(
    store: &dyn LogStore,
    state: &LedgerState,
) -> Result<HashMap<CampaignId, Publication>, StartupError> {
    let mut publication = HashMap::new();
    for (id, c) in state.campaigns() {
        if c.closed.is_none()
            && let Some(bytes) = store.meta(&publication_meta(id))?
        {
            let p = serde_json::from_slice::<Publication>(&bytes).map_err(|e| {
                StartupError::Metadata(format!(
                    "a campaign's publication policy does not decode ({e})"
                ))
            })?;
            publication.insert(*id, p);
        }
    }
    Ok(publication)
}

/// What a replay of the store rebuilt.
struct Loaded {
    core: Core,
    checkpoint: Arc<str>,
    opened_at: HashMap<CampaignId, u64>,
    closed_at: HashMap<CampaignId, u64>,
    tallies: HashMap<CampaignId, Arc<TallyView>>,
}

impl Loaded {
    /// The published view of what was loaded, and the core.
    fn into_parts(self) -> (Published, Core) {
        let mut campaigns = HashMap::new();
        for (id, c) in self.core.state.campaigns() {
            let Some(&opened_at) = self.opened_at.get(id) else {
                continue;
            };
            campaigns.insert(
                *id,
                Arc::new(CampaignView {
                    definition: c.definition.clone(),
                    issuer_key: c.issuer_key.clone(),
                    opened_at,
                    closed_at: self.closed_at.get(id).copied(),
                    tally: self.tallies.get(id).cloned(),
                    updates: c.updates.clone(),
                    joint_key: joint_key_of(c),
                    reveal_work: reveal_work_of(c),
                }),
            );
        }
        let published = Published::new(self.core.tree.size(), self.checkpoint, campaigns);
        (published, self.core)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::issuer::demo_params;
    use crate::store::{IssueTxn, IssuerStore, Mark, MetaStore, RedbStore, Store};
    use pledge_protocol::campaign::CampaignDefinition;
    use pledge_protocol::entry::CampaignOpened;
    use pledge_protocol::note::KeyName;
    use pledge_protocol::token::IssuerSecretKey;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A store whose next batch commit fails, as an I/O error would, or
    /// waits (says it entered, then waits for a release) when `hold` is set.
    #[derive(Debug)]
    struct Flaky {
        inner: RedbStore,
        fail: AtomicBool,
        /// The next commit reaches the store but reports a failure (the
        /// answer lost on the way back, as when a database restarts).
        lost_answer: AtomicBool,
        panic: AtomicBool,
        /// Calls of `hash` and `hashes`.
        hash_reads: std::sync::atomic::AtomicU64,
        #[allow(clippy::type_complexity)]
        hold: Mutex<Option<(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>)>>,
    }

    impl Flaky {
        /// A redb store that neither fails, panics nor holds yet.
        fn open(dir: &std::path::Path) -> Self {
            Self {
                inner: RedbStore::open(dir).unwrap(),
                fail: AtomicBool::new(false),
                lost_answer: AtomicBool::new(false),
                panic: AtomicBool::new(false),
                hash_reads: std::sync::atomic::AtomicU64::new(0),
                hold: Mutex::new(None),
            }
        }
    }

    impl MetaStore for Flaky {
        fn meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.meta(key)
        }
    }

    impl LogStore for Flaky {
        fn size(&self) -> Result<u64, StoreError> {
            self.inner.size()
        }

        fn commit_batch(&self, batch: Batch) -> Result<(), StoreError> {
            if self.fail.swap(false, Ordering::SeqCst) {
                return Err(StoreError::Backend("injected failure".into()));
            }
            assert!(
                !self.panic.swap(false, Ordering::SeqCst),
                "injected panic inside a commit"
            );
            if let Some((entered, release)) = self.hold.lock().unwrap().take() {
                entered.send(()).unwrap();
                release.recv().unwrap();
            }
            self.inner.commit_batch(batch)?;
            if self.lost_answer.swap(false, Ordering::SeqCst) {
                return Err(StoreError::Backend("injected lost answer".into()));
            }
            Ok(())
        }

        fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.entry(index)
        }

        fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
            self.inner.entries(start, end)
        }

        fn hash(&self, level: u8, index: u64) -> Result<Option<Hash>, StoreError> {
            self.hash_reads.fetch_add(1, Ordering::SeqCst);
            self.inner.hash(level, index)
        }

        fn hashes(&self, level: u8, start: u64, end: u64) -> Result<Vec<Hash>, StoreError> {
            self.hash_reads.fetch_add(1, Ordering::SeqCst);
            self.inner.hashes(level, start, end)
        }

        fn nullifier_index(
            &self,
            n: &pledge_protocol::hash::Nullifier,
        ) -> Result<Option<u64>, StoreError> {
            self.inner.nullifier_index(n)
        }

        fn checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.checkpoint()
        }
    }

    impl IssuerStore for Flaky {
        fn issue(&self, txn: IssueTxn) -> Result<(), StoreError> {
            self.inner.issue(txn)
        }

        fn contains_mark(&self, set: &[u8], mark: &Mark) -> Result<bool, StoreError> {
            self.inner.contains_mark(set, mark)
        }

        fn add_marks(&self, set: &[u8], marks: &[Mark]) -> Result<u64, StoreError> {
            self.inner.add_marks(set, marks)
        }

        fn drop_set(&self, set: &[u8], delete_meta: &[&[u8]]) -> Result<u64, StoreError> {
            self.inner.drop_set(set, delete_meta)
        }

        fn mark_counts(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, u64)>, StoreError> {
            self.inner.mark_counts(prefix)
        }
    }

    #[test]
    fn the_widest_campaign_allowed_still_gets_a_signed_statement() {
        use pledge_protocol::note::MAX_NOTE_BYTES;
        use pledge_protocol::tally::{MAX_LIVE, MAX_THRESHOLD, Tally};
        let signer = signer();
        let origin = signer.name().as_str().to_owned();
        let fits = |lo: u32, hi: u32| worst_case_statement_len(&origin, lo, hi) <= MAX_NOTE_BYTES;
        // What R-CAMP-3 allows (2^20 thresholds) does not fit: refused at creation.
        assert!(!fits(1, 1 << 20));
        // The widest range that fits, with the widest thresholds: every
        // bucket filled, counts as large as the live total allows.
        let hi = MAX_THRESHOLD;
        let mut lo = hi;
        while lo > 1 && fits(lo - 1, hi) {
            lo -= 1;
        }
        let n = u64::from(hi - lo) + 1;
        assert!(n >= 3_000, "only {n} thresholds fit");
        let count = MAX_LIVE / n;
        let tally = Tally::from_histogram(hi, (lo..=hi).map(|t| (t, count))).unwrap();
        let id = CampaignId([7; 32]);
        let view = sign_tally_of(&signer, &tally, &id, u64::MAX).unwrap();
        assert!(view.note.len() <= MAX_NOTE_BYTES);
        assert!(
            view.note.len() <= worst_case_statement_len(&origin, lo, hi),
            "the bound {} is below a real statement of {} bytes",
            worst_case_statement_len(&origin, lo, hi),
            view.note.len()
        );
        // Past the bound a real statement fails to sign: the failure the
        // creation check keeps away (before, it froze the tally silently).
        let wide: Vec<(u32, u64)> = (1..=12_000u32).map(|t| (t * 8_000, 1_000_000)).collect();
        let tally = Tally::from_histogram(MAX_THRESHOLD, wide).unwrap();
        assert!(sign_tally_of(&signer, &tally, &id, 1).is_err());
    }

    fn signer() -> NoteSigner {
        NoteSigner::from_seed(KeyName::new("test.example/log").unwrap(), &[9; 32])
    }

    fn opened(key: &IssuerSecretKey, nonce: u8) -> Entry {
        let mut p = demo_params(unix_now());
        p.nonce = [nonce; 16];
        Entry::CampaignOpened(CampaignOpened {
            definition: CampaignDefinition::new(p).unwrap(),
            issuer_key: key.public_key().clone(),
        })
    }

    fn integrate(
        ledger: &Ledger,
        core: &mut Option<Core>,
        proposals: Vec<(Proposal, MetaUpdates)>,
    ) -> Vec<Result<Accepted, SubmitError>> {
        let (next, results) = ledger.integrate(core.take().unwrap(), proposals, unix_now());
        *core = next;
        results
    }

    #[test]
    fn a_failed_commit_acknowledges_nothing_and_the_view_stays_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Flaky::open(dir.path()));
        let (ledger, core) = Ledger::open(store.clone(), signer()).unwrap();
        let mut core = Some(core);
        let before = ledger.published().checkpoint();
        let key = IssuerSecretKey::generate().unwrap();
        let a = opened(&key, 1);
        let b = opened(&key, 2);

        store.fail.store(true, Ordering::SeqCst);
        let results = integrate(
            &ledger,
            &mut core,
            vec![
                (Proposal::opening(a.clone()).unwrap(), Vec::new()),
                (
                    Proposal::opening(b.clone()).unwrap(),
                    vec![(b"k".to_vec(), Some(b"v".to_vec()))],
                ),
            ],
        );
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(SubmitError::Storage))),
            "{results:?}"
        );
        {
            let view = ledger.published();
            assert_eq!(view.size(), 0);
            assert_eq!(view.checkpoint(), before);
            assert!(view.campaign(&a.campaign()).is_none());
        }
        // The core was rebuilt from the store: nothing of the batch in it.
        let c = core.as_ref().unwrap();
        assert!(c.state().campaign(&a.campaign()).is_none());
        assert_eq!(store.meta(b"k").unwrap(), None);
        assert!(!ledger.has_failed());

        // The same entries go through once the store works again.
        let results = integrate(
            &ledger,
            &mut core,
            vec![(Proposal::opening(a.clone()).unwrap(), Vec::new())],
        );
        let ok = results.into_iter().next().unwrap().unwrap();
        assert_eq!((ok.index, ok.size), (0, 1));
        let receipt = Receipt::parse(ok.receipt.as_bytes()).unwrap();
        receipt.verify_entry(&ok.entry, ledger.verifier()).unwrap();
        // A second open of the same campaign in a later batch breaks R-RULE-1.
        let results = integrate(
            &ledger,
            &mut core,
            vec![(Proposal::opening(a).unwrap(), Vec::new())],
        );
        assert!(matches!(
            results[0],
            Err(SubmitError::Rule(RuleError::CampaignExists))
        ));
        assert_eq!(ledger.published().size(), 1);
    }

    /// The receipts of a batch need, besides the batch's own new hashes,
    /// only the tree's frontier before it, which the core holds: integrating
    /// reads no hash from the store (each read is a database round trip on
    /// the sequencer's serial path with PostgreSQL).
    #[test]
    fn integrating_a_batch_reads_no_hash_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Flaky::open(dir.path()));
        let (ledger, core) = Ledger::open(store.clone(), signer()).unwrap();
        let mut core = Some(core);
        let key = IssuerSecretKey::generate().unwrap();
        let mut nonce = 0u8;
        // Batches of 1, 2, …, 7 entries: the log grows through sizes whose
        // frontiers have one to three subtrees.
        for n in 1..=7 {
            let proposals = (0..n)
                .map(|_| {
                    nonce += 1;
                    (Proposal::opening(opened(&key, nonce)).unwrap(), Vec::new())
                })
                .collect();
            let reads = store.hash_reads.load(Ordering::SeqCst);
            let results = integrate(&ledger, &mut core, proposals);
            assert_eq!(
                store.hash_reads.load(Ordering::SeqCst),
                reads,
                "batch of {n} read hashes from the store"
            );
            for r in results {
                let ok = r.unwrap();
                let receipt = Receipt::parse(ok.receipt.as_bytes()).unwrap();
                receipt.verify_entry(&ok.entry, ledger.verifier()).unwrap();
            }
        }
        assert_eq!(ledger.published().size(), 28);
    }

    /// A commit that reached the store but whose answer was lost (a
    /// database restarting between its commit and its reply) acknowledges
    /// nothing, yet what is durable is published once read back: the view
    /// does not stay behind the store until the next batch (found as a
    /// front end stuck below the log's size after a database restart).
    #[test]
    fn a_commit_whose_answer_is_lost_is_published_once_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Flaky::open(dir.path()));
        let (ledger, core) = Ledger::open(store.clone(), signer()).unwrap();
        let mut events = ledger.subscribe();
        let mut core = Some(core);
        let key = IssuerSecretKey::generate().unwrap();
        let a = opened(&key, 1);
        store.lost_answer.store(true, Ordering::SeqCst);
        let results = integrate(
            &ledger,
            &mut core,
            vec![(Proposal::opening(a.clone()).unwrap(), Vec::new())],
        );
        assert!(
            matches!(results[0], Err(SubmitError::Storage)),
            "{results:?}"
        );
        assert_eq!(store.size().unwrap(), 1, "the commit reached the store");
        let c = core.as_ref().unwrap();
        assert!(c.state().campaign(&a.campaign()).is_some());
        let view = ledger.published();
        assert_eq!(view.size(), 1, "the view stays behind the store");
        assert_eq!(
            view.checkpoint().as_bytes(),
            store.checkpoint().unwrap().unwrap().as_slice()
        );
        let campaign = view.campaign(&a.campaign()).expect("campaign published");
        assert_eq!(campaign.opened_at, 0);
        assert!(campaign.tally.is_some());
        // Watchers and witnesses hear of it as of any checkpoint.
        let mut sizes = Vec::new();
        let mut tallies = 0;
        while let Ok(e) = events.try_recv() {
            match e {
                LogEvent::Checkpoint { size, .. } => sizes.push(size),
                LogEvent::Tally(_) => tallies += 1,
            }
        }
        assert_eq!((sizes, tallies), (vec![1], 1));
        // The next batch goes on from there.
        let b = opened(&key, 2);
        let results = integrate(
            &ledger,
            &mut core,
            vec![(Proposal::opening(b).unwrap(), Vec::new())],
        );
        let ok = results.into_iter().next().unwrap().unwrap();
        assert_eq!((ok.index, ok.size), (1, 2));
    }

    /// SPEC R-API-26: a campaign's feed history is committed with the batch
    /// that opens it, dated by the batch's hour, not by a failed batch, and
    /// read back (not recomputed from the clock) when the ledger reopens.
    #[test]
    fn feed_histories_are_committed_with_their_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Flaky::open(dir.path()));
        let (ledger, core) = Ledger::open(store.clone(), signer()).unwrap();
        let mut core = Some(core);
        let key = IssuerSecretKey::generate().unwrap();
        let (a, b) = (opened(&key, 1), opened(&key, 2));
        // 2000-01-01T05:43:21Z: long before the clock of this test.
        let then = 946_705_401;
        store.fail.store(true, Ordering::SeqCst);
        let (next, results) = ledger.integrate(
            core.take().unwrap(),
            vec![(Proposal::opening(b.clone()).unwrap(), Vec::new())],
            then,
        );
        core = next;
        assert!(matches!(results[0], Err(SubmitError::Storage)));
        assert!(ledger.feed_history(&b.campaign()).is_none());
        let (next, results) = ledger.integrate(
            core.take().unwrap(),
            vec![(Proposal::opening(a.clone()).unwrap(), Vec::new())],
            then,
        );
        assert!(next.is_some() && results[0].is_ok(), "{results:?}");
        let want = crate::feed::FeedHistory::opened(then);
        assert_eq!(want.opened, 262_973, "hours since 1970");
        let stored = store
            .meta(&crate::feed::history_meta(&a.campaign()))
            .unwrap()
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<crate::feed::FeedHistory>(&stored).unwrap(),
            want
        );
        assert_eq!(*ledger.feed_history(&a.campaign()).unwrap(), want);
        assert_eq!(
            store
                .meta(&crate::feed::history_meta(&b.campaign()))
                .unwrap(),
            None
        );
        drop(ledger);
        let (ledger, _) = Ledger::open(store, signer()).unwrap();
        assert_eq!(*ledger.feed_history(&a.campaign()).unwrap(), want);
    }

    /// Issue 12, item 1: readers never wait for a disk write. With a commit
    /// stuck inside the store, the published view (checkpoint, campaigns,
    /// tallies) and a precheck answer at once, from the last durable state.
    /// (Before, they took a read lock the integration held through the
    /// commit.)
    #[test]
    fn readers_do_not_wait_for_a_commit_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Flaky::open(dir.path()));
        let (ledger, core) = Ledger::open(store.clone(), signer()).unwrap();
        let ledger = Arc::new(ledger);
        let key = IssuerSecretKey::generate().unwrap();
        let (entered_tx, entered) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        *store.hold.lock().unwrap() = Some((entered_tx, release_rx));
        let l = ledger.clone();
        let a = opened(&key, 1);
        let writer = std::thread::spawn(move || {
            l.integrate(
                core,
                vec![(Proposal::opening(a).unwrap(), Vec::new())],
                unix_now(),
            )
        });
        // The commit is now blocked inside the store.
        entered.recv().unwrap();
        let (read_tx, read_rx) = std::sync::mpsc::channel();
        let l = ledger.clone();
        let b = opened(&key, 2);
        std::thread::spawn(move || {
            let p = l.published();
            let pre = l.precheck(b.clone());
            let _ = read_tx.send((p.size(), p.campaigns().count(), pre.is_err()));
        });
        // A deadlock guard, not a timing: a reader blocked behind the
        // commit would never answer while the commit is held.
        let read = read_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("a reader waited for the commit in progress");
        // Before the commit: size 0, no campaign (so the second opening's
        // precheck is refused: unknown campaign).
        assert_eq!(read, (0, 0, true));
        release.send(()).unwrap();
        let (core, results) = writer.join().unwrap();
        assert!(core.is_some());
        assert!(results[0].is_ok(), "{results:?}");
        assert_eq!(ledger.published().size(), 1);
        assert_eq!(ledger.published().campaigns().count(), 1);
    }

    /// Issue 12, item 1: a panic inside an integration (here inside the
    /// store's commit, after the batch was applied to the rules and the
    /// tree) leaves no half-applied state: nothing is acknowledged or
    /// published, and the sequencer rebuilds its core from the store, so the
    /// same entry is accepted next. (Before, the half-applied view stayed
    /// behind a poisoned lock and the retry was refused as a duplicate.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_inside_an_integration_leaves_no_half_applied_state() {
        use crate::ledger::sequencer::{SequencerConfig, spawn};
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Flaky::open(dir.path()));
        let (ledger, core) = Ledger::open(store.clone(), signer()).unwrap();
        let ledger = Arc::new(ledger);
        let (_stop, shutdown) = watch::channel(false);
        let (_lead, leader) = watch::channel(true);
        let (seq, _task) = spawn(
            ledger.clone(),
            core,
            SequencerConfig {
                interval: std::time::Duration::from_millis(5),
                max_batch: 16,
                capacity: 16,
                max_hold: std::time::Duration::from_secs(1),
            },
            Arc::new(crate::metrics::Metrics::default()),
            shutdown,
            leader,
        );
        let key = IssuerSecretKey::generate().unwrap();
        let a = opened(&key, 1);
        store.panic.store(true, Ordering::SeqCst);
        let r = seq
            .submit(Proposal::opening(a.clone()).unwrap(), Vec::new())
            .await;
        assert_eq!(r.unwrap_err(), SubmitError::Storage);
        assert_eq!(ledger.published().size(), 0);
        assert!(!ledger.has_failed());
        let ok = seq
            .submit(Proposal::opening(a.clone()).unwrap(), Vec::new())
            .await
            .unwrap();
        assert_eq!((ok.index, ok.size), (0, 1));
        assert!(ledger.published().campaign(&a.campaign()).is_some());
    }

    #[test]
    fn a_checkpoint_that_does_not_match_the_entries_refuses_start() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.path()).unwrap());
            let (ledger, core) = Ledger::open(store.clone(), signer()).unwrap();
            let key = IssuerSecretKey::generate().unwrap();
            let (_, r) = ledger.integrate(
                core,
                vec![(Proposal::opening(opened(&key, 1)).unwrap(), Vec::new())],
                unix_now(),
            );
            assert!(r[0].is_ok());
            // Overwrite the checkpoint with a signed one of the wrong root.
            let bad = sign_checkpoint(&signer(), 1, Hash([0; 32])).unwrap();
            store
                .commit_batch(Batch {
                    first_index: 1,
                    checkpoint: bad.into_bytes(),
                    ..Batch::default()
                })
                .unwrap();
        }
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.path()).unwrap());
        let e = Ledger::open(store.clone(), signer()).unwrap_err();
        assert!(matches!(e, StartupError::CheckpointMismatch(_)), "{e}");
        // Another log key is refused too.
        let other = NoteSigner::from_seed(KeyName::new("test.example/log").unwrap(), &[8; 32]);
        assert!(matches!(
            Ledger::open(store, other).unwrap_err(),
            StartupError::CheckpointMismatch(_)
        ));
    }
}
