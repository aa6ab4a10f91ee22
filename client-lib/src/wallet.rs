//! The pledger's wallet: pinned log key, pledge-key seeds, tokens, pending
//! blinding states, pledges and their receipts, in one file encrypted at rest
//! (a seized device must not reveal that its owner pledged).
//!
//! # File format (version 1)
//!
//! ```text
//! pledge-wallet v1 argon2id m=<KiB> t=<passes> p=<lanes> salt=<b64> nonce=<b64>\n
//! <XChaCha20-Poly1305 ciphertext of the JSON contents, tag appended>
//! ```
//!
//! The key is Argon2id(passphrase, salt) with the parameters of the header;
//! the whole header line is the AEAD's associated data, so changing any byte
//! of the file makes opening fail. A wallet made with
//! `--insecure-no-passphrase` says `insecure-no-passphrase` instead of
//! `argon2id …`: its key is a fixed public constant, so it only hides the
//! contents from a casual look and detects tampering.
//!
//! The file is created with mode 0600 and replaced atomically (temporary file,
//! fsync, rename, fsync of the folder). A file that does not open (wrong
//! passphrase, corruption) is never overwritten.
//!
//! Several processes may use one wallet file at once (a `pledge commit`
//! waiting out its delay while another command runs). Each save takes an
//! exclusive advisory lock on `<wallet>.lock`, re-reads the file and merges
//! what another process wrote since ([`WalletData::merge_from`]) before
//! writing, so no token, pledge or receipt saved by one process is lost by
//! another's save.
//!
//! The format ([`Wallet::to_bytes`], [`Wallet::from_bytes`]) builds
//! everywhere; the file on disk needs the `native` feature. A browser keeps
//! the same bytes in its storage through [`Wallet::with_store`], so a wallet
//! exported from the page opens in the CLI and the reverse (SPEC R-WEB-1).

use std::collections::BTreeMap;
#[cfg(feature = "native")]
use std::fs::{self, File, OpenOptions};
#[cfg(feature = "native")]
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use pledge_protocol::codec::Writer;
use pledge_protocol::entry::Entry;
use pledge_protocol::hash::{CampaignId, Hash, Nullifier};
use pledge_protocol::pledge::{PledgeSigningKey, Terms};
use pledge_protocol::token::{BlindingState, IssuerPublicKey, Token};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

const MAGIC: &str = "pledge-wallet v1";
const INSECURE_KEY_TAG: &[u8] = b"pledge/v1/wallet-insecure-no-passphrase";
/// Largest wallet file opened (a wallet of thousands of pledges is far below).
const MAX_FILE: u64 = 64 * 1024 * 1024;

/// Why the wallet could not be opened or saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletError {
    /// Reading, writing or syncing the file failed.
    #[error("wallet file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// No wallet at this path.
    #[error("no wallet at {0} (run `pledge tokens` first, or pass --wallet)")]
    NotFound(PathBuf),
    /// A wallet already exists where a new one was to be created.
    #[error("a wallet already exists at {0}; refusing to overwrite it")]
    AlreadyExists(PathBuf),
    /// The header is not a pledge wallet header.
    #[error("{path} is not a pledge wallet, or its header is damaged: {what}")]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Decryption failed: wrong passphrase, or the file was modified.
    #[error(
        "cannot open the wallet {0}: wrong passphrase, or the file was modified or damaged \
         (it was left untouched)"
    )]
    Decrypt(PathBuf),
    /// The wallet needs a passphrase but was opened without one, or the reverse.
    #[error("{0}")]
    Protection(String),
    /// The decrypted contents do not parse.
    #[error("the wallet {path} decrypted but its contents are damaged: {what}")]
    Contents {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Key derivation failed (bad parameters).
    #[error("key derivation failed: {0}")]
    Kdf(String),
    /// The operating system's randomness failed.
    #[error("no randomness from the operating system")]
    Randomness,
    /// The file is larger than a wallet can be.
    #[error("{0} is too large to be a wallet")]
    TooLarge(PathBuf),
    /// The store given to [`Wallet::with_store`] failed to keep the bytes.
    #[error("the wallet could not be saved: {0}")]
    Store(String),
}

/// Where a wallet that is not a file keeps its bytes (e.g. a browser's
/// `localStorage`). Like a wallet file, the store may be shared: several
/// browser tabs hold the same wallet. So [`Wallet::save`] first reads what
/// the store holds now and merges it ([`WalletData::merge_from`]) before
/// writing, and the caller serialises saves across sharers (the browser
/// client holds a Web Lock around each flow).
pub trait WalletStore: Send + Sync {
    /// The encrypted wallet file as the store holds it now, if any.
    ///
    /// # Errors
    /// A message saying why the store cannot be read.
    fn load(&self) -> Result<Option<Vec<u8>>, String>;
    /// Replaces what the store holds with `bytes` (a whole encrypted file).
    ///
    /// # Errors
    /// A message saying why the store refused the bytes.
    fn save(&mut self, bytes: &[u8]) -> Result<(), String>;
}

/// How errors name the bytes of a [`WalletStore`].
const STORE_LABEL: &str = "(the stored wallet)";

/// Argon2id cost parameters, stored in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl KdfParams {
    /// The default: 64 MiB, 3 passes, 1 lane (RFC 9106 §4's second
    /// recommendation, with one lane for small devices); about 0.3 s here.
    pub const DEFAULT: Self = Self {
        m_kib: 64 * 1024,
        t: 3,
        p: 1,
    };
    /// Cheap parameters for tests only (still Argon2id, 1 MiB).
    pub const TESTING: Self = Self {
        m_kib: 1024,
        t: 1,
        p: 1,
    };
    /// Upper bounds accepted from a file header (a crafted file must not make
    /// opening take minutes or gigabytes).
    const MAX: Self = Self {
        m_kib: 4 * 1024 * 1024,
        t: 64,
        p: 16,
    };
}

/// How the wallet is protected at rest.
#[derive(Clone)]
pub enum Protection {
    /// Argon2id over a passphrase.
    Passphrase {
        /// The passphrase.
        passphrase: Zeroizing<String>,
        /// Cost parameters for new files (files keep their own).
        params: KdfParams,
    },
    /// No passphrase: a fixed public key. For tests and demos only.
    InsecureNoPassphrase,
}

impl Protection {
    /// A passphrase with the default parameters.
    pub fn passphrase(p: impl Into<String>) -> Self {
        Self::Passphrase {
            passphrase: Zeroizing::new(p.into()),
            params: KdfParams::DEFAULT,
        }
    }
}

impl std::fmt::Debug for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Passphrase { params, .. } => f
                .debug_struct("Passphrase")
                .field("params", params)
                .finish_non_exhaustive(),
            Self::InsecureNoPassphrase => f.write_str("InsecureNoPassphrase"),
        }
    }
}

/// The log this wallet trusts, pinned at first use. `Debug` shows how many
/// joint keys it holds, not for which campaigns (those I sealed pledges in).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedLog {
    /// The server URL it was first seen at.
    pub server: String,
    /// Verifier key text `<origin>+<key id>+<base64>`.
    pub verifier_key: String,
    /// Size of the latest checkpoint verified.
    pub checkpoint_size: u64,
    /// Its root, hex.
    pub checkpoint_root: String,
    /// Witness verifier keys (SPEC R-COSIG-4) whose cosignatures checkpoints
    /// need, pinned with the log key or chosen by the user; `None` in a
    /// wallet written before witness policies were pinned (pinned at next use).
    #[serde(default)]
    pub witnesses: Option<Vec<String>>,
    /// How many of `witnesses` must have cosigned (SPEC R-COSIG-7).
    #[serde(default)]
    pub quorum: usize,
    /// Per campaign (hex), the size of the newest tally statement accepted:
    /// an older one served later is a replay and is refused (SPEC R-TALLY-12).
    /// Kept for every campaign read, not only those pledged to.
    #[serde(default)]
    pub statements: BTreeMap<String, u64>,
    /// Per sealed campaign (hex), its joint key (hex) as this wallet
    /// replayed it from the campaign's trustee messages proven in the log
    /// (SPEC R-SEAL-40): a key once logged never changes, so it is replayed
    /// once; a served key that differs from it is refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub joint_keys: BTreeMap<String, String>,
}

impl std::fmt::Debug for PinnedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinnedLog")
            .field("server", &self.server)
            .field("verifier_key", &self.verifier_key)
            .field("checkpoint_size", &self.checkpoint_size)
            .field("checkpoint_root", &self.checkpoint_root)
            .field("witnesses", &self.witnesses)
            .field("quorum", &self.quorum)
            .field("statements", &self.statements)
            .field("joint_keys", &self.joint_keys.len())
            .finish()
    }
}

impl PinnedLog {
    /// The root of the last verified checkpoint.
    pub fn root(&self) -> Option<Hash> {
        Hash::from_hex(&self.checkpoint_root).ok()
    }
}

/// A token request sent or about to be sent: kept so an interrupted request
/// can be resent unchanged and finalised (SPEC R-TOKEN-12).
pub struct PendingToken {
    /// The campaign.
    pub campaign: CampaignId,
    /// The issuer key checked against the log (P5).
    pub issuer_key: IssuerPublicKey,
    seed: Zeroizing<[u8; 32]>,
    state: BlindingState,
}

impl PendingToken {
    /// A new pending request.
    pub fn new(
        campaign: CampaignId,
        issuer_key: IssuerPublicKey,
        key: &PledgeSigningKey,
        state: BlindingState,
    ) -> Self {
        Self {
            campaign,
            issuer_key,
            seed: key.to_seed(),
            state,
        }
    }

    /// The pledge key.
    pub fn key(&self) -> PledgeSigningKey {
        PledgeSigningKey::from_seed(&self.seed)
    }

    /// The blinding state.
    pub fn state(&self) -> &BlindingState {
        &self.state
    }

    /// Identifies this request (a hash of its blinded message, which differs
    /// for every request).
    pub fn id(&self) -> [u8; 32] {
        pledge_protocol::hash::sha256(&[self.state.blinded_message().as_bytes()])
    }
}

impl std::fmt::Debug for PendingToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingToken")
            .field("campaign", &self.campaign)
            .finish_non_exhaustive()
    }
}

/// A finalised token and its pledge key.
pub struct TokenRecord {
    /// The campaign.
    pub campaign: CampaignId,
    /// The token (public once spent).
    pub token: Token,
    /// True once a pledge spending it was submitted.
    pub used: bool,
    seed: Zeroizing<[u8; 32]>,
}

impl TokenRecord {
    /// A record for a fresh token.
    pub fn new(campaign: CampaignId, token: Token, key: &PledgeSigningKey) -> Self {
        Self {
            campaign,
            token,
            used: false,
            seed: key.to_seed(),
        }
    }

    /// The pledge key the token was issued for.
    pub fn key(&self) -> PledgeSigningKey {
        PledgeSigningKey::from_seed(&self.seed)
    }

    /// The nullifier a pledge with this token has.
    pub fn nullifier(&self) -> Nullifier {
        self.token.nullifier(&self.campaign)
    }
}

impl std::fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Campaign and `used` together would say where I pledged: neither is printed.
        f.debug_struct("TokenRecord").finish_non_exhaustive()
    }
}

/// One log entry of mine and its receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct EntryRecord {
    /// `pledge`, `amend` or `withdraw`.
    pub kind: String,
    /// Sequence number (0 for the pledge).
    pub seq: u32,
    /// The canonical entry bytes, base64 (exactly the log leaf).
    pub entry: String,
    /// Index in the log, once acknowledged.
    pub index: Option<u64>,
    /// C2SP tlog-proof text, once acknowledged.
    pub receipt: Option<String>,
    /// Not to be sent before this time (Unix seconds): the end of its random
    /// delay, for an entry left pending by `pledge commit --background`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_after: Option<u64>,
}

impl EntryRecord {
    /// A signed entry not yet acknowledged (`bytes`: its canonical bytes).
    pub fn signed(kind: &str, seq: u32, bytes: &[u8], send_after: Option<u64>) -> Self {
        Self {
            kind: kind.into(),
            seq,
            entry: B64.encode(bytes),
            index: None,
            receipt: None,
            send_after,
        }
    }
}

/// A pledge of mine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PledgeRecord {
    /// Campaign id, hex.
    pub campaign: String,
    /// Nullifier, hex.
    pub nullifier: String,
    /// Current threshold (after amendments).
    pub threshold: u32,
    /// Withdrawn?
    pub withdrawn: bool,
    /// The pledge, then each amendment or withdrawal.
    pub entries: Vec<EntryRecord>,
}

impl PledgeRecord {
    /// The campaign id.
    pub fn campaign_id(&self) -> Option<CampaignId> {
        CampaignId::from_hex(&self.campaign).ok()
    }

    /// The next sequence number for an amendment or withdrawal.
    pub fn next_seq(&self) -> u32 {
        self.entries
            .iter()
            .map(|e| e.seq)
            .max()
            .map_or(0, |s| s.saturating_add(1))
    }

    /// The current terms: those of the latest pledge or amendment entry
    /// (a withdrawal keeps the terms it withdrew). `threshold` is their
    /// [`Terms::threshold_value`]; the entries are the record of the rest
    /// (support asked, money offered), so the wallet format is unchanged.
    /// `None` for a damaged record (an entry that does not decode, or no
    /// pledge entry).
    pub fn terms(&self) -> Option<Terms> {
        for e in self.entries.iter().rev() {
            let bytes = B64.decode(&e.entry).ok()?;
            match Entry::decode(&bytes).ok()? {
                Entry::Pledge(p) => return Some(p.terms),
                Entry::PledgeAmended(a) => return Some(a.terms),
                // A sealed vector says nothing in clear: the wallet's
                // threshold is its bucket value, 0 for the null vector
                // (SPEC R-SEAL-41).
                Entry::SealedPledge(_) | Entry::SealedAmended(_) => {
                    return Some(Terms::Threshold { t: self.threshold });
                }
                _ => {}
            }
        }
        None
    }

    /// Whether this is a pledge with sealed terms (its first entry is a
    /// sealed pledge: SPEC R-SEAL-31). Its `threshold` is its bucket value,
    /// or 0 for the null vector (a cover pledge, or a withdrawal).
    pub fn is_sealed(&self) -> bool {
        self.entries
            .first()
            .and_then(|e| B64.decode(&e.entry).ok())
            .is_some_and(|b| matches!(Entry::decode(&b), Ok(Entry::SealedPledge(_))))
    }

    /// The last entry not yet acknowledged (to resend unchanged), if any.
    pub fn unacknowledged(&self) -> Option<&EntryRecord> {
        self.entries.last().filter(|e| e.receipt.is_none())
    }
}

/// Everything in a wallet. `Debug` prints counts only: which pledges are
/// mine is the secret.
#[derive(Default)]
pub struct WalletData {
    /// The pinned log (TOFU).
    pub log: Option<PinnedLog>,
    /// Requests whose answer was not yet finalised.
    pub pending: Vec<PendingToken>,
    /// Tokens.
    pub tokens: Vec<TokenRecord>,
    /// Pledges.
    pub pledges: Vec<PledgeRecord>,
    /// Cover traffic of sealed campaigns (SPEC R-SEAL-43): what is due when.
    pub cover: CoverPlan,
}

/// Cover traffic of sealed campaigns (SPEC R-SEAL-43 … R-SEAL-45): every
/// token of a sealed campaign is spent (a null pledge when the person does
/// not pledge), and each sealed pledge is re-encrypted a few times, at
/// random times before the deadline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverPlan {
    /// The person turned cover traffic off (`pledge cover --off`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub off: bool,
    /// Per sealed campaign (hex), what is due next.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub due: BTreeMap<String, CoverDue>,
}

/// The next cover entry of one sealed campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverDue {
    /// Not before this time (Unix seconds), drawn at random.
    pub at: u64,
    /// Cover amendments already sent for my pledge on the campaign.
    #[serde(default)]
    pub amendments: u8,
}

impl CoverPlan {
    /// Whether nothing is scheduled and cover is on (the default, which
    /// an older wallet's file holds by omitting it).
    pub fn is_default(&self) -> bool {
        !self.off && self.due.is_empty()
    }
}

impl WalletData {
    /// The unused token for `campaign`, if any.
    pub fn unused_token(&self, campaign: &CampaignId) -> Option<&TokenRecord> {
        self.tokens
            .iter()
            .find(|t| t.campaign == *campaign && !t.used)
    }

    /// Whether a token (used or not) or a pending request exists for `campaign`.
    pub fn has_token_for(&self, campaign: &CampaignId) -> bool {
        self.tokens.iter().any(|t| t.campaign == *campaign)
            || self.pending.iter().any(|p| p.campaign == *campaign)
    }

    /// The token record with this nullifier.
    pub fn token_by_nullifier(&self, n: &Nullifier) -> Option<&TokenRecord> {
        self.tokens.iter().find(|t| t.nullifier() == *n)
    }

    /// My latest (not withdrawn first, then any) pledge on `campaign`.
    pub fn pledge_for(&self, campaign: &CampaignId) -> Option<&PledgeRecord> {
        let hex = campaign.to_hex();
        self.pledges
            .iter()
            .rev()
            .find(|p| p.campaign == hex && !p.withdrawn)
            .or_else(|| self.pledges.iter().rev().find(|p| p.campaign == hex))
    }

    /// Mutable form of [`WalletData::pledge_for`].
    pub fn pledge_for_mut(&mut self, campaign: &CampaignId) -> Option<&mut PledgeRecord> {
        let hex = campaign.to_hex();
        let pos = self
            .pledges
            .iter()
            .rposition(|p| p.campaign == hex && !p.withdrawn)
            .or_else(|| self.pledges.iter().rposition(|p| p.campaign == hex))?;
        self.pledges.get_mut(pos)
    }
}

impl WalletData {
    /// Merges `theirs` (the file as another process saved it) into these
    /// contents, so that saving the result loses nothing either side holds:
    ///
    /// - the pinned log: kept; a later checkpoint of the same key is taken;
    /// - tokens (by campaign and token): union, `used` if either says so;
    /// - pledges (by nullifier): union; for one pledge, entries are merged by
    ///   sequence number, an acknowledged entry (with its receipt) always
    ///   winning over an unacknowledged one, so no acknowledged entry is
    ///   ever dropped; threshold and withdrawal follow the latest entry;
    /// - pending token requests (by [`PendingToken::id`]): theirs are added
    ///   unless `seen` says this side held them (and has since finalised or
    ///   dropped them); any request whose token is now in the wallet is
    ///   dropped, wherever it was finalised.
    pub fn merge_from(&mut self, theirs: WalletData, seen: &[[u8; 32]]) {
        let WalletData {
            log,
            pending,
            tokens,
            pledges,
            cover,
        } = theirs;
        match (&mut self.log, log) {
            (None, l) => self.log = l,
            (Some(o), Some(t)) if o.verifier_key == t.verifier_key => {
                if t.checkpoint_size > o.checkpoint_size {
                    o.checkpoint_size = t.checkpoint_size;
                    o.checkpoint_root.clone_from(&t.checkpoint_root);
                }
                if o.witnesses.is_none() && t.witnesses.is_some() {
                    o.witnesses = t.witnesses;
                    o.quorum = t.quorum;
                }
                for (c, size) in t.statements {
                    let mine = o.statements.entry(c).or_insert(0);
                    *mine = (*mine).max(size);
                }
                for (c, key) in t.joint_keys {
                    o.joint_keys.entry(c).or_insert(key);
                }
            }
            _ => {}
        }
        for t in tokens {
            match self
                .tokens
                .iter_mut()
                .find(|o| o.campaign == t.campaign && o.token == t.token)
            {
                Some(o) => o.used |= t.used,
                None => self.tokens.push(t),
            }
        }
        for p in pledges {
            match self.pledges.iter_mut().find(|o| o.nullifier == p.nullifier) {
                Some(o) => o.merge_from(p),
                None => self.pledges.push(p),
            }
        }
        // Cover: `off` is this process's (the person's latest word); a
        // campaign's schedule is the one further along (more amendments
        // sent, then the later time), so nothing sent is sent twice.
        for (c, d) in cover.due {
            let mine = self.cover.due.entry(c).or_insert(d);
            if (d.amendments, d.at) > (mine.amendments, mine.at) {
                *mine = d;
            }
        }
        let ours: Vec<[u8; 32]> = self.pending.iter().map(PendingToken::id).collect();
        for p in pending {
            let id = p.id();
            if !ours.contains(&id) && !seen.contains(&id) {
                self.pending.push(p);
            }
        }
        let tokens = &self.tokens;
        self.pending.retain(|p| {
            let pk = p.key().public_key();
            !tokens.iter().any(|t| t.token.pledge_pk == pk)
        });
    }
}

impl PledgeRecord {
    /// Merges another copy of the same pledge (same nullifier): see
    /// [`WalletData::merge_from`].
    fn merge_from(&mut self, theirs: PledgeRecord) {
        let mut latest_is_theirs = false;
        let top = self.entries.iter().map(|e| e.seq).max();
        for e in &theirs.entries {
            match self.entries.iter_mut().find(|o| o.seq == e.seq) {
                Some(o) => {
                    if o.receipt.is_none() && e.receipt.is_some() {
                        o.clone_from(e);
                        latest_is_theirs |= top == Some(e.seq);
                    }
                }
                None => {
                    self.entries.push(e.clone());
                    latest_is_theirs |= top.is_none_or(|t| e.seq > t);
                }
            }
        }
        self.entries.sort_by_key(|e| e.seq);
        let newest = self.entries.iter().map(|e| e.seq).max();
        if latest_is_theirs && theirs.entries.iter().map(|e| e.seq).max() == newest {
            self.threshold = theirs.threshold;
            self.withdrawn = theirs.withdrawn;
        }
        self.withdrawn |= self
            .entries
            .iter()
            .any(|e| e.kind == "withdraw" && e.receipt.is_some());
    }
}

/// A [`std::io::Write`] into a zeroizing buffer that never lets the vector
/// reallocate (which would free a copy of the plaintext without zeroizing
/// it): when a write does not fit, the bytes move to a buffer at least twice
/// as large and the old one is zeroized as it is dropped.
struct ZeroizingWriter(Zeroizing<Vec<u8>>);

impl ZeroizingWriter {
    fn with_capacity(n: usize) -> Self {
        Self(Zeroizing::new(Vec::with_capacity(n)))
    }
}

impl std::io::Write for ZeroizingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let need = self.0.len().saturating_add(buf.len());
        if need > self.0.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(
                need.max(self.0.capacity().saturating_mul(2)),
            ));
            bigger.extend_from_slice(&self.0);
            self.0 = bigger;
        }
        let before = self.0.as_ptr();
        self.0.extend_from_slice(buf);
        debug_assert_eq!(before, self.0.as_ptr(), "the buffer reallocated");
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// --- On-disk JSON (inside the ciphertext) ---------------------------------

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
struct Disk {
    version: u32,
    #[zeroize(skip)]
    log: Option<PinnedLog>,
    pending: Vec<DiskPending>,
    tokens: Vec<DiskToken>,
    pledges: Vec<DiskPledge>,
    /// Absent in wallets written before sealed campaigns, and when default.
    #[zeroize(skip)]
    #[serde(default, skip_serializing_if = "CoverPlan::is_default")]
    cover: CoverPlan,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
struct DiskPending {
    campaign: String,
    issuer_key: String,
    seed: String,
    state: String,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
struct DiskToken {
    campaign: String,
    token: String,
    used: bool,
    seed: String,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
struct DiskPledge {
    campaign: String,
    nullifier: String,
    threshold: u32,
    withdrawn: bool,
    entries: Vec<EntryRecord>,
}

fn contents_err(path: &Path, what: impl Into<String>) -> WalletError {
    WalletError::Contents {
        path: path.to_owned(),
        what: what.into(),
    }
}

fn seed_from_hex(path: &Path, s: &str) -> Result<Zeroizing<[u8; 32]>, WalletError> {
    let mut out = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(s, out.as_mut_slice())
        .map_err(|_| contents_err(path, "a pledge-key seed is not 64 hex digits"))?;
    Ok(out)
}

impl WalletData {
    fn to_disk(&self) -> Disk {
        Disk {
            version: 1,
            log: self.log.clone(),
            pending: self
                .pending
                .iter()
                .map(|p| DiskPending {
                    campaign: p.campaign.to_hex(),
                    issuer_key: B64.encode(p.issuer_key.as_spki()),
                    seed: hex::encode(p.seed.as_slice()),
                    state: B64.encode(p.state.to_secret_bytes().expose()),
                })
                .collect(),
            tokens: self
                .tokens
                .iter()
                .map(|t| {
                    let mut w = Writer::new();
                    t.token.encode_into(&mut w);
                    DiskToken {
                        campaign: t.campaign.to_hex(),
                        token: B64.encode(w.into_bytes()),
                        used: t.used,
                        seed: hex::encode(t.seed.as_slice()),
                    }
                })
                .collect(),
            pledges: self
                .pledges
                .iter()
                .map(|p| DiskPledge {
                    campaign: p.campaign.clone(),
                    nullifier: p.nullifier.clone(),
                    threshold: p.threshold,
                    withdrawn: p.withdrawn,
                    entries: p.entries.clone(),
                })
                .collect(),
            cover: self.cover.clone(),
        }
    }

    fn from_disk(path: &Path, d: &Disk) -> Result<Self, WalletError> {
        if d.version != 1 {
            return Err(contents_err(path, format!("unknown version {}", d.version)));
        }
        let cid = |s: &str| {
            CampaignId::from_hex(s).map_err(|_| contents_err(path, "a campaign id is not hex"))
        };
        let mut out = Self {
            log: d.log.clone(),
            cover: d.cover.clone(),
            ..Self::default()
        };
        for p in &d.pending {
            let key = B64
                .decode(&p.issuer_key)
                .ok()
                .and_then(|k| IssuerPublicKey::from_spki(&k).ok())
                .ok_or_else(|| contents_err(path, "a pending issuer key is damaged"))?;
            let state_bytes = Zeroizing::new(
                B64.decode(&p.state)
                    .map_err(|_| contents_err(path, "a blinding state is not base64"))?,
            );
            let state = BlindingState::from_bytes(&state_bytes)
                .map_err(|e| contents_err(path, format!("a blinding state is damaged: {e}")))?;
            out.pending.push(PendingToken {
                campaign: cid(&p.campaign)?,
                issuer_key: key,
                seed: seed_from_hex(path, &p.seed)?,
                state,
            });
        }
        for t in &d.tokens {
            let bytes = B64
                .decode(&t.token)
                .map_err(|_| contents_err(path, "a token is not base64"))?;
            let token = Token::decode(&bytes)
                .map_err(|e| contents_err(path, format!("a token is damaged: {e}")))?;
            let rec = TokenRecord {
                campaign: cid(&t.campaign)?,
                token,
                used: t.used,
                seed: seed_from_hex(path, &t.seed)?,
            };
            if rec.key().public_key() != rec.token.pledge_pk {
                return Err(contents_err(path, "a token does not match its pledge key"));
            }
            out.tokens.push(rec);
        }
        for p in &d.pledges {
            out.pledges.push(PledgeRecord {
                campaign: p.campaign.clone(),
                nullifier: p.nullifier.clone(),
                threshold: p.threshold,
                withdrawn: p.withdrawn,
                entries: p.entries.clone(),
            });
        }
        Ok(out)
    }
}

// --- The wallet -------------------------------------------------------------

impl std::fmt::Debug for WalletData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalletData")
            .field("log", &self.log)
            .field("pending", &self.pending.len())
            .field("tokens", &self.tokens.len())
            .field("pledges", &self.pledges.len())
            .finish()
    }
}

/// An open wallet: its contents in memory, and where and how to save them.
pub struct Wallet {
    path: Option<PathBuf>,
    /// Where the bytes go when there is no file.
    store: Option<Box<dyn WalletStore>>,
    protection: Protection,
    /// Header of the file as opened (kept so saving reuses salt and params).
    kdf: Option<(KdfParams, [u8; 16])>,
    /// The derived key, kept so each save does not run Argon2 again.
    key: Option<Zeroizing<[u8; 32]>>,
    /// Pending requests (by [`PendingToken::id`]) this handle has held: one
    /// still in the file but no longer held here was finalised or refused
    /// here, so a merge does not bring it back.
    seen_pending: Vec<[u8; 32]>,
    /// The contents.
    pub data: WalletData,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet")
            .field("path", &self.path)
            .field("store", &self.store.is_some())
            .field("protection", &self.protection)
            .field("data", &self.data)
            .finish_non_exhaustive()
    }
}

impl Wallet {
    /// A wallet that lives only in memory ([`Wallet::save`] does nothing):
    /// for `pledge demo`.
    pub fn in_memory() -> Self {
        Self {
            path: None,
            store: None,
            protection: Protection::InsecureNoPassphrase,
            kdf: None,
            key: None,
            seen_pending: Vec::new(),
            data: WalletData::default(),
        }
    }

    /// A new, empty wallet whose saves go to `store` (nothing is stored
    /// yet): the browser wallet.
    pub fn with_store(protection: Protection, store: Box<dyn WalletStore>) -> Self {
        Self {
            path: None,
            store: Some(store),
            protection,
            kdf: None,
            key: None,
            seen_pending: Vec::new(),
            data: WalletData::default(),
        }
    }

    /// From now on, saves go to `store` instead of a file.
    pub fn set_store(&mut self, store: Box<dyn WalletStore>) {
        self.path = None;
        self.store = Some(store);
    }

    /// A new, empty wallet to be saved at `path` (nothing is written yet).
    ///
    /// # Errors
    /// [`WalletError::AlreadyExists`] if a file is there.
    #[cfg(feature = "native")]
    pub fn create(path: &Path, protection: Protection) -> Result<Self, WalletError> {
        if path.exists() {
            return Err(WalletError::AlreadyExists(path.to_owned()));
        }
        Ok(Self {
            path: Some(path.to_owned()),
            store: None,
            protection,
            kdf: None,
            key: None,
            seen_pending: Vec::new(),
            data: WalletData::default(),
        })
    }

    /// Opens the wallet at `path`, or starts a new one there if no file
    /// exists. Returns whether it is new.
    ///
    /// # Errors
    /// As [`Wallet::open`].
    #[cfg(feature = "native")]
    pub fn open_or_create(
        path: &Path,
        protection: Protection,
    ) -> Result<(Self, bool), WalletError> {
        match Self::open(path, protection.clone()) {
            Ok(w) => Ok((w, false)),
            Err(WalletError::NotFound(_)) => Ok((Self::create(path, protection)?, true)),
            Err(e) => Err(e),
        }
    }

    /// Opens and decrypts the wallet at `path`.
    ///
    /// # Errors
    /// [`WalletError::NotFound`], [`WalletError::Decrypt`] (wrong passphrase
    /// or modified file), [`WalletError::Protection`] (the file needs a
    /// passphrase and none was given, or the reverse),
    /// [`WalletError::BadHeader`], [`WalletError::Contents`], I/O errors.
    #[cfg(feature = "native")]
    pub fn open(path: &Path, protection: Protection) -> Result<Self, WalletError> {
        let io = |source| WalletError::Io {
            path: path.to_owned(),
            source,
        };
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(WalletError::NotFound(path.to_owned()));
            }
            Err(e) => return Err(io(e)),
        };
        if meta.len() > MAX_FILE {
            return Err(WalletError::TooLarge(path.to_owned()));
        }
        let bytes = fs::read(path).map_err(io)?;
        let mut w = Self::from_bytes(&bytes, protection, path)?;
        w.path = Some(path.to_owned());
        Ok(w)
    }

    /// Decrypts a wallet from the bytes of a wallet file; `label` names where
    /// they came from in error messages. The result saves nowhere until
    /// [`Wallet::set_store`].
    ///
    /// # Errors
    /// [`WalletError::Decrypt`] (wrong passphrase or modified bytes),
    /// [`WalletError::Protection`], [`WalletError::BadHeader`],
    /// [`WalletError::Contents`], [`WalletError::TooLarge`].
    pub fn from_bytes(
        bytes: &[u8],
        protection: Protection,
        label: &Path,
    ) -> Result<Self, WalletError> {
        let (kdf, key, data) = decrypt(bytes, &protection, label, None)?;
        Ok(Self {
            path: None,
            store: None,
            protection,
            kdf,
            key: Some(key),
            seen_pending: data.pending.iter().map(PendingToken::id).collect(),
            data,
        })
    }

    /// Where the wallet is saved (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// True for a wallet made with `--insecure-no-passphrase`.
    pub fn is_insecure(&self) -> bool {
        matches!(self.protection, Protection::InsecureNoPassphrase)
    }

    /// Encrypts and writes the wallet atomically, mode 0600: temporary file,
    /// fsync, rename over the old file, fsync of the folder. Each save draws
    /// a fresh nonce. A wallet file is saved under an exclusive lock on
    /// `<wallet>.lock`, after re-reading the file and merging into these
    /// contents what another process saved meanwhile
    /// ([`WalletData::merge_from`]): after a save, `data` holds both. A
    /// wallet with a store (see [`Wallet::with_store`]) hands the same bytes
    /// to it; an in-memory wallet is not written.
    ///
    /// # Errors
    /// [`WalletError::Io`], [`WalletError::Store`], [`WalletError::Kdf`],
    /// [`WalletError::Randomness`]; the errors of [`Wallet::open`] when the
    /// file now on disk does not open with this wallet's passphrase (it is
    /// then left untouched).
    pub fn save(&mut self) -> Result<(), WalletError> {
        #[cfg(feature = "native")]
        if let Some(path) = self.path.clone() {
            let _lock = lock(&path)?;
            self.merge_file(&path)?;
            let file = self.to_bytes()?;
            return write_atomic(&path, &file);
        }
        if self.store.is_some() {
            self.merge_store()?;
            let file = self.to_bytes()?;
            if let Some(store) = self.store.as_mut() {
                store.save(&file).map_err(WalletError::Store)?;
            }
        }
        Ok(())
    }

    /// Merges into `data` what the wallet file now holds (saved by another
    /// process since this one opened or last saved it), under the file's
    /// lock, without writing. Does nothing for a wallet that is not a file.
    ///
    /// # Errors
    /// As [`Wallet::save`].
    pub fn refresh(&mut self) -> Result<(), WalletError> {
        #[cfg(feature = "native")]
        if let Some(path) = self.path.clone() {
            let _lock = lock(&path)?;
            self.merge_file(&path)?;
        }
        if self.store.is_some() {
            self.merge_store()?;
        }
        Ok(())
    }

    /// Reads what the store holds (if any) and merges it into `data`.
    fn merge_store(&mut self) -> Result<(), WalletError> {
        let bytes = match self.store.as_ref() {
            Some(store) => store.load().map_err(WalletError::Store)?,
            None => None,
        };
        match bytes {
            Some(b) if !b.is_empty() => self.merge_bytes(&b, Path::new(STORE_LABEL)),
            _ => Ok(()),
        }
    }

    /// Removes the wallet file if, under its lock and after merging what is
    /// on disk, it holds no token, no pending request and no pledge: a first
    /// command that failed leaves no wallet behind, and a wallet another
    /// process filled meanwhile is kept. The empty `<wallet>.lock` stays
    /// (removing a lock file others may wait on would let two processes
    /// lock different files). Returns whether the file was removed.
    ///
    /// # Errors
    /// As [`Wallet::save`].
    #[cfg(feature = "native")]
    pub fn discard_if_empty(&mut self) -> Result<bool, WalletError> {
        let Some(path) = self.path.clone() else {
            return Ok(false);
        };
        let _lock = lock(&path)?;
        self.merge_file(&path)?;
        let d = &self.data;
        if !(d.tokens.is_empty() && d.pending.is_empty() && d.pledges.is_empty()) {
            return Ok(false);
        }
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(WalletError::Io { path, source }),
        }
    }

    /// Reads the file at `path` (if any) and merges it into `data`; the
    /// caller holds the lock.
    #[cfg(feature = "native")]
    fn merge_file(&mut self, path: &Path) -> Result<(), WalletError> {
        let bytes = match fs::metadata(path) {
            Ok(m) if m.len() > MAX_FILE => return Err(WalletError::TooLarge(path.to_owned())),
            Ok(_) => fs::read(path),
            Err(e) => Err(e),
        };
        let bytes = match bytes {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(WalletError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        if bytes.is_empty() {
            self.note_pending();
            return Ok(());
        }
        self.merge_bytes(&bytes, path)
    }

    /// Decrypts `bytes` (a wallet file another process or tab saved; `label`
    /// names it in errors) with this wallet's key and merges them into `data`.
    fn merge_bytes(&mut self, bytes: &[u8], label: &Path) -> Result<(), WalletError> {
        let cached = self.kdf.as_ref().zip(self.key.as_ref());
        let (kdf, key, theirs) = decrypt(bytes, &self.protection, label, cached)?;
        if self.kdf.is_none() {
            // A wallet created here while another process created the
            // file: keep its salt and key.
            self.kdf = kdf;
            self.key = Some(key);
        }
        self.data.merge_from(theirs, &self.seen_pending);
        self.note_pending();
        Ok(())
    }

    /// Records the pending requests this handle now holds (see
    /// `seen_pending`).
    fn note_pending(&mut self) {
        for p in &self.data.pending {
            let id = p.id();
            if !self.seen_pending.contains(&id) {
                self.seen_pending.push(id);
            }
        }
    }

    /// The encrypted wallet file, exactly as [`Wallet::save`] writes it (a
    /// fresh nonce each call; the first call with a passphrase draws the
    /// salt and runs Argon2id).
    ///
    /// # Errors
    /// [`WalletError::Kdf`], [`WalletError::Randomness`].
    pub fn to_bytes(&mut self) -> Result<Vec<u8>, WalletError> {
        let path = self
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from("(wallet)"));
        let (header, key) = match &self.protection {
            Protection::Passphrase { passphrase, params } => {
                let (params, salt) = match self.kdf {
                    Some(k) => k,
                    None => {
                        let mut salt = [0u8; 16];
                        getrandom::fill(&mut salt).map_err(|_| WalletError::Randomness)?;
                        self.kdf = Some((*params, salt));
                        (*params, salt)
                    }
                };
                let key = match self.key.take() {
                    Some(k) => k,
                    None => derive_key(passphrase.as_bytes(), &salt, params)?,
                };
                self.key = Some(key.clone());
                (
                    format!(
                        "{MAGIC} argon2id m={} t={} p={} salt={}",
                        params.m_kib,
                        params.t,
                        params.p,
                        B64.encode(salt)
                    ),
                    key,
                )
            }
            Protection::InsecureNoPassphrase => {
                (format!("{MAGIC} insecure-no-passphrase"), insecure_key())
            }
        };
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|_| WalletError::Randomness)?;
        let header = format!("{header} nonce={}", B64.encode(nonce));
        let disk = self.data.to_disk();
        // The plaintext never sits in memory that is freed without being
        // zeroized: the writer moves to a larger zeroizing buffer itself
        // instead of letting the vector reallocate.
        let mut plain = ZeroizingWriter::with_capacity(
            64 * 1024 + 2048 * (disk.tokens.len() + disk.pending.len() + disk.pledges.len()),
        );
        serde_json::to_writer(&mut plain, &disk).map_err(|e| contents_err(&path, e.to_string()))?;
        drop(disk);
        let plain = plain.0;
        let cipher = XChaCha20Poly1305::new_from_slice(key.as_slice())
            .map_err(|_| WalletError::Kdf("key length".into()))?;
        let ciphertext = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &plain,
                    aad: header.as_bytes(),
                },
            )
            .map_err(|_| WalletError::Kdf("encryption failed".into()))?;
        let mut file = Vec::with_capacity(header.len() + 1 + ciphertext.len());
        file.extend_from_slice(header.as_bytes());
        file.push(b'\n');
        file.extend_from_slice(&ciphertext);
        Ok(file)
    }
}

/// Argon2 parameters and salt of a wallet file's header.
type KdfHeader = (KdfParams, [u8; 16]);

/// Header parameters and derived key of a wallet file, and its contents.
type Decrypted = (Option<KdfHeader>, Zeroizing<[u8; 32]>, WalletData);

/// Decrypts a wallet file. `cached` is a key already derived for a header's
/// parameters and salt: when the file has the same, Argon2 is not run again.
fn decrypt(
    bytes: &[u8],
    protection: &Protection,
    path: &Path,
    cached: Option<(&KdfHeader, &Zeroizing<[u8; 32]>)>,
) -> Result<Decrypted, WalletError> {
    if u64::try_from(bytes.len()).map_or(true, |l| l > MAX_FILE) {
        return Err(WalletError::TooLarge(path.to_owned()));
    }
    let nl = bytes
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| bad_header(path, "no header line"))?;
    let (header, rest) = bytes.split_at(nl);
    let ciphertext = rest.get(1..).unwrap_or_default();
    let header = std::str::from_utf8(header).map_err(|_| bad_header(path, "not text"))?;
    let parsed = parse_header(path, header)?;
    let reuse = match (&parsed.kdf, cached) {
        (Some(kdf), Some((k, key))) if k == kdf => Some(key.clone()),
        _ => None,
    };
    let key = match (reuse, &parsed.kdf, protection) {
        (Some(key), Some(_), Protection::Passphrase { .. }) => key,
        (_, Some((params, salt)), Protection::Passphrase { passphrase, .. }) => {
            derive_key(passphrase.as_bytes(), salt, *params)?
        }
        (_, None, Protection::InsecureNoPassphrase) => insecure_key(),
        (_, Some(_), Protection::InsecureNoPassphrase) => {
            return Err(WalletError::Protection(format!(
                "the wallet {} is protected by a passphrase: set PLEDGE_PASSPHRASE or \
                 run without --insecure-no-passphrase",
                path.display()
            )));
        }
        (_, None, Protection::Passphrase { .. }) => {
            return Err(WalletError::Protection(format!(
                "the wallet {} was made with --insecure-no-passphrase (not encrypted with a \
                 passphrase); pass --insecure-no-passphrase to open it",
                path.display()
            )));
        }
    };
    let cipher = XChaCha20Poly1305::new_from_slice(key.as_slice())
        .map_err(|_| WalletError::Kdf("key length".into()))?;
    let nonce =
        XNonce::try_from(parsed.nonce.as_slice()).map_err(|_| bad_header(path, "nonce length"))?;
    let plain = Zeroizing::new(
        cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: header.as_bytes(),
                },
            )
            .map_err(|_| WalletError::Decrypt(path.to_owned()))?,
    );
    let disk: Disk = serde_json::from_slice(&plain)
        .map_err(|e| contents_err(path, format!("not valid wallet JSON: {e}")))?;
    let data = WalletData::from_disk(path, &disk)?;
    Ok((parsed.kdf, key, data))
}

struct Header {
    kdf: Option<(KdfParams, [u8; 16])>,
    nonce: Vec<u8>,
}

fn bad_header(path: &Path, what: &str) -> WalletError {
    WalletError::BadHeader {
        path: path.to_owned(),
        what: what.to_owned(),
    }
}

fn parse_header(path: &Path, header: &str) -> Result<Header, WalletError> {
    let rest = header
        .strip_prefix(MAGIC)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| bad_header(path, "missing `pledge-wallet v1`"))?;
    let fields: Vec<&str> = rest.split(' ').collect();
    let get = |name: &str| {
        fields
            .iter()
            .find_map(|f| f.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .ok_or_else(|| bad_header(path, &format!("missing {name}=")))
    };
    let nonce = B64
        .decode(get("nonce")?)
        .map_err(|_| bad_header(path, "nonce is not base64"))?;
    if nonce.len() != 24 {
        return Err(bad_header(path, "nonce is not 24 bytes"));
    }
    match fields.first().copied() {
        Some("insecure-no-passphrase") if fields.len() == 2 => Ok(Header { kdf: None, nonce }),
        Some("argon2id") if fields.len() == 6 => {
            let num = |name: &str| -> Result<u32, WalletError> {
                get(name)?
                    .parse::<u32>()
                    .map_err(|_| bad_header(path, &format!("{name} is not a number")))
            };
            let params = KdfParams {
                m_kib: num("m")?,
                t: num("t")?,
                p: num("p")?,
            };
            if params.m_kib > KdfParams::MAX.m_kib
                || params.t > KdfParams::MAX.t
                || params.p > KdfParams::MAX.p
            {
                return Err(bad_header(
                    path,
                    "Argon2 parameters beyond the allowed maximum",
                ));
            }
            let salt_v = B64
                .decode(get("salt")?)
                .map_err(|_| bad_header(path, "salt is not base64"))?;
            let salt: [u8; 16] = salt_v
                .try_into()
                .map_err(|_| bad_header(path, "salt is not 16 bytes"))?;
            Ok(Header {
                kdf: Some((params, salt)),
                nonce,
            })
        }
        _ => Err(bad_header(path, "unknown protection")),
    }
}

fn derive_key(
    passphrase: &[u8],
    salt: &[u8; 16],
    p: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, WalletError> {
    let params = argon2::Params::new(p.m_kib, p.t, p.p, Some(32))
        .map_err(|e| WalletError::Kdf(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, key.as_mut_slice())
        .map_err(|e| WalletError::Kdf(e.to_string()))?;
    Ok(key)
}

fn insecure_key() -> Zeroizing<[u8; 32]> {
    Zeroizing::new(pledge_protocol::hash::sha256(&[INSECURE_KEY_TAG]))
}

/// The wallet's folder, created mode 0700 if missing.
#[cfg(feature = "native")]
fn wallet_dir(path: &Path) -> Result<PathBuf, WalletError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        let mut b = fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            b.mode(0o700);
        }
        b.create(&dir).map_err(|source| WalletError::Io {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(dir)
}

/// Takes the exclusive advisory lock on `<wallet>.lock` (created empty,
/// mode 0600, and never removed: removing a lock file races with its next
/// user), waiting for another process's save to end. Released when the
/// returned file is dropped, or by the OS if the process dies.
#[cfg(feature = "native")]
fn lock(path: &Path) -> Result<File, WalletError> {
    wallet_dir(path)?;
    let mut name = path.file_name().map_or_else(
        || std::ffi::OsString::from("wallet"),
        std::ffi::OsStr::to_os_string,
    );
    name.push(".lock");
    let lock_path = path.with_file_name(name);
    let io = |source| WalletError::Io {
        path: lock_path.clone(),
        source,
    };
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let f = opts.open(&lock_path).map_err(io)?;
    // fs2's flock, as the witness's lock: std's `File::lock` (Rust 1.89) is
    // also flock on Unix; fs2 was chosen while the MSRV was 1.86.
    fs2::FileExt::lock_exclusive(&f).map_err(io)?;
    Ok(f)
}

/// Writes `data` to `path` atomically with mode 0600 (created so from the
/// start): a temporary file in the same folder, fsync, rename, fsync folder.
#[cfg(feature = "native")]
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), WalletError> {
    let io = |source| WalletError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = wallet_dir(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "wallet".into());
    let mut rnd = [0u8; 6];
    getrandom::fill(&mut rnd).map_err(|_| WalletError::Randomness)?;
    let tmp = dir.join(format!(".{name}.tmp-{}", hex::encode(rnd)));
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// The default wallet path: `<data dir>/wallet.pledge` in the user's data
/// folder (`~/.local/share/pledge/` on Linux).
#[cfg(feature = "native")]
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("org", "pledge", "pledge")
        .map(|d| d.data_dir().join("wallet.pledge"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_limits() {
        let p = Path::new("w");
        let h = parse_header(
            p,
            "pledge-wallet v1 argon2id m=1024 t=1 p=1 salt=AAAAAAAAAAAAAAAAAAAAAA== nonce=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .unwrap();
        assert_eq!(h.kdf.unwrap().0, KdfParams::TESTING);
        assert!(parse_header(
            p,
            "pledge-wallet v1 argon2id m=99999999 t=1 p=1 salt=AAAAAAAAAAAAAAAAAAAAAA== nonce=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .is_err());
        assert!(parse_header(p, "pledge-wallet v2 insecure-no-passphrase nonce=x").is_err());
    }

    #[test]
    fn the_plaintext_writer_grows_by_moving_to_a_new_zeroizing_buffer() {
        use std::io::Write as _;
        let mut w = ZeroizingWriter::with_capacity(8);
        let mut expected = Vec::new();
        let mut moves = 0;
        for i in 0..2000u32 {
            let chunk = format!("{i},");
            let before = w.0.as_ptr();
            w.write_all(chunk.as_bytes()).unwrap();
            moves += usize::from(before != w.0.as_ptr());
            expected.extend_from_slice(chunk.as_bytes());
        }
        assert_eq!(*w.0, expected);
        // Doubling: a handful of moves for ~9 KB from 8 bytes, not one per write.
        assert!((8..=16).contains(&moves), "{moves} moves");
    }

    fn entry(kind: &str, seq: u32, bytes: &str, acked: bool) -> EntryRecord {
        EntryRecord {
            kind: kind.into(),
            seq,
            entry: bytes.into(),
            index: acked.then_some(u64::from(seq)),
            receipt: acked.then(|| format!("receipt {bytes}")),
            send_after: None,
        }
    }

    /// SPEC R-CLIENT-9: a wallet written before sealed campaigns (no
    /// `cover`, no `joint_keys`) loads, and is written back byte for byte;
    /// the new fields round-trip.
    #[test]
    fn a_wallet_from_before_sealed_campaigns_loads_and_round_trips() {
        let old = r#"{"version":1,"log":{"server":"s","verifier_key":"k","checkpoint_size":3,"checkpoint_root":"00","witnesses":null,"quorum":0,"statements":{"c":3}},"pending":[],"tokens":[],"pledges":[]}"#;
        let d: Disk = serde_json::from_str(old).unwrap();
        let w = WalletData::from_disk(Path::new("w"), &d).unwrap();
        assert!(w.cover.is_default());
        assert!(w.log.as_ref().unwrap().joint_keys.is_empty());
        assert_eq!(serde_json::to_string(&w.to_disk()).unwrap(), old);

        let mut w = w;
        w.cover.due.insert(
            "c".into(),
            CoverDue {
                at: 7,
                amendments: 1,
            },
        );
        if let Some(l) = w.log.as_mut() {
            l.joint_keys.insert("c".into(), "ab".repeat(32));
        }
        let text = serde_json::to_string(&w.to_disk()).unwrap();
        let back =
            WalletData::from_disk(Path::new("w"), &serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(back.cover, w.cover);
        assert_eq!(back.log, w.log);
        // Debug names no campaign whose joint key the wallet holds.
        assert!(!format!("{back:?}").contains(&"ab".repeat(32)));
    }

    fn record(threshold: u32, withdrawn: bool, entries: Vec<EntryRecord>) -> PledgeRecord {
        PledgeRecord {
            campaign: "00".repeat(32),
            nullifier: "11".repeat(32),
            threshold,
            withdrawn,
            entries,
        }
    }

    #[test]
    fn merging_a_pledge_never_drops_an_acknowledged_entry() {
        // Theirs: the pledge acknowledged and an amendment to 5 acknowledged;
        // ours: the pledge unacknowledged, a withdrawal at the same seq, unanswered.
        let mut ours = record(
            2,
            true,
            vec![
                entry("pledge", 0, "p", false),
                entry("withdraw", 1, "w", false),
            ],
        );
        let theirs = record(
            5,
            false,
            vec![entry("pledge", 0, "p", true), entry("amend", 1, "a", true)],
        );
        ours.merge_from(theirs.clone());
        assert_eq!(ours.entries, theirs.entries);
        assert_eq!((ours.threshold, ours.withdrawn), (5, false));

        // Ours is ahead (an amendment not yet known there): kept, and the
        // threshold stays ours; their receipt of the pledge is taken.
        let mut ours = record(
            7,
            false,
            vec![entry("pledge", 0, "p", false), entry("amend", 1, "b", true)],
        );
        ours.merge_from(record(2, false, vec![entry("pledge", 0, "p", true)]));
        assert_eq!(
            ours.entries,
            vec![entry("pledge", 0, "p", true), entry("amend", 1, "b", true)]
        );
        assert_eq!(ours.threshold, 7);

        // An acknowledged entry of ours is never replaced by theirs.
        let mut ours = record(3, false, vec![entry("pledge", 0, "p", true)]);
        ours.merge_from(record(3, false, vec![entry("pledge", 0, "q", false)]));
        assert_eq!(ours.entries, vec![entry("pledge", 0, "p", true)]);
    }

    #[test]
    fn merging_wallets_unites_tokens_and_pledges_and_keeps_the_later_checkpoint() {
        let key = PledgeSigningKey::generate().unwrap();
        let campaign = CampaignId([7; 32]);
        let token = Token {
            pledge_pk: key.public_key(),
            randomizer: [1; 32],
            signature: [2; 256],
        };
        let log = |size| PinnedLog {
            server: "s".into(),
            verifier_key: "k".into(),
            checkpoint_size: size,
            checkpoint_root: format!("{size:064x}"),
            statements: [("c".to_owned(), size)].into(),
            ..PinnedLog::default()
        };
        let mut ours = WalletData {
            log: Some(log(3)),
            ..WalletData::default()
        };
        ours.tokens
            .push(TokenRecord::new(campaign, token.clone(), &key));
        let mut theirs = WalletData {
            log: Some(log(9)),
            ..WalletData::default()
        };
        let mut spent = TokenRecord::new(campaign, token, &key);
        spent.used = true;
        theirs.tokens.push(spent);
        theirs
            .pledges
            .push(record(2, false, vec![entry("pledge", 0, "p", true)]));
        ours.merge_from(theirs, &[]);
        assert_eq!(ours.log, Some(log(9)));
        assert_eq!(ours.tokens.len(), 1);
        assert!(ours.tokens[0].used);
        assert_eq!(ours.pledges.len(), 1);
    }

    /// One store shared by several handles, as `localStorage` is by the
    /// browser tabs of one origin.
    #[derive(Clone, Default)]
    struct SharedStore(std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>);

    impl WalletStore for SharedStore {
        fn load(&self) -> Result<Option<Vec<u8>>, String> {
            Ok(self.0.lock().unwrap().clone())
        }
        fn save(&mut self, bytes: &[u8]) -> Result<(), String> {
            *self.0.lock().unwrap() = Some(bytes.to_vec());
            Ok(())
        }
    }

    fn protection() -> Protection {
        Protection::Passphrase {
            passphrase: Zeroizing::new("two tabs, one wallet".into()),
            params: KdfParams::TESTING,
        }
    }

    fn open_tab(store: &SharedStore) -> Wallet {
        let bytes = store.load().unwrap().unwrap();
        let mut w = Wallet::from_bytes(&bytes, protection(), Path::new("tab")).unwrap();
        w.set_store(Box::new(store.clone()));
        w
    }

    fn pledge_on(campaign: u8, threshold: u32) -> PledgeRecord {
        PledgeRecord {
            campaign: format!("{campaign:02x}").repeat(32),
            nullifier: format!("{:02x}", campaign.wrapping_add(0x80)).repeat(32),
            threshold,
            withdrawn: false,
            entries: vec![entry("pledge", 0, &format!("p{campaign}"), true)],
        }
    }

    #[test]
    fn two_handles_on_one_store_lose_nothing_of_each_other() {
        // Issue 14 finding 3 in the browser: two tabs open the wallet, each
        // pledges to its own campaign and saves. A store saved without
        // re-reading kept only the last tab's pledge.
        let store = SharedStore::default();
        let mut first = Wallet::with_store(protection(), Box::new(store.clone()));
        first.save().unwrap();
        let mut tab_a = open_tab(&store);
        let mut tab_b = open_tab(&store);
        tab_a.data.pledges.push(pledge_on(1, 2));
        tab_a.save().unwrap();
        tab_b.data.pledges.push(pledge_on(2, 5));
        tab_b.save().unwrap();
        let reopened = open_tab(&store);
        let mut held: Vec<(String, u32)> = reopened
            .data
            .pledges
            .iter()
            .map(|p| (p.campaign.clone(), p.threshold))
            .collect();
        held.sort();
        assert_eq!(
            held,
            vec![("01".repeat(32), 2), ("02".repeat(32), 5)],
            "both tabs' pledges are in the stored wallet"
        );
        // And the tab that saved first learns the other's pledge on refresh.
        tab_a.refresh().unwrap();
        assert_eq!(tab_a.data.pledges.len(), 2);
    }

    #[test]
    fn a_store_holding_a_wallet_of_another_passphrase_is_not_overwritten() {
        let store = SharedStore::default();
        let mut w = Wallet::with_store(protection(), Box::new(store.clone()));
        w.save().unwrap();
        let mut tab = open_tab(&store);
        // Another tab imports a different wallet meanwhile (an import
        // replaces the stored bytes as they are).
        let mut other = Wallet::with_store(
            Protection::Passphrase {
                passphrase: Zeroizing::new("someone else entirely".into()),
                params: KdfParams::TESTING,
            },
            Box::new(SharedStore::default()),
        );
        let imported = other.to_bytes().unwrap();
        store.clone().save(&imported).unwrap();
        let imported = Some(imported);
        tab.data.pledges.push(pledge_on(3, 4));
        assert!(
            matches!(tab.save(), Err(WalletError::Decrypt(_))),
            "refused"
        );
        assert_eq!(store.load().unwrap(), imported, "left untouched");
    }
}
