//! Durable storage for the ledger and the issuer: one trait with a written
//! contract ([`Store`]), two embedded backends, [`redb`](RedbStore) and
//! [`sled`](SledStore), and a database server, [`PostgreSQL`](PostgresStore),
//! all run through one shared conformance suite
//! (`conformance.rs`, public with the `conformance` feature, for other
//! backends). Which one is the default is decided by the fault suite
//! (kill/EIO sweep); see [`SledStore`] for sled's known durability gaps.
//!
//! Nothing outside this module imports `redb`, `sled` or `postgres`.
//!
//! # What is stored (SPEC R-STORE-1, R-PRIV-1)
//!
//! - the log: entries by index, the nullifier index (nullifier → entry index),
//!   the Merkle stored hashes by `(level, index)` and the latest signed checkpoint;
//! - small metadata values by key (tally snapshots, issuer secret keys,
//!   per-campaign counters), written by the ledger and the issuer;
//! - *mark sets*: sets of 32-byte marks, used for single-use invite code hashes
//!   and for the issuer's keyed hashes `HMAC(k, person ‖ campaign)`.
//!
//! Nothing else: no timestamps, no request metadata, no addresses.
//!
//! # Layout of the data folder
//!
//! - redb: one file `ledger.redb`;
//! - sled: one folder `ledger.sled/`;
//! - PostgreSQL: nothing (the database holds the store; the data folder
//!   keeps the keys).
//!
//! Opening a folder that holds the other backend's store is refused
//! ([`StoreError::WrongBackend`]) rather than silently starting an empty log.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use pledge_protocol::hash::{Hash, Nullifier};

mod postgres;
mod redb;
mod sled;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use self::postgres::{Election, LEADER_META, MIGRATIONS, PostgresStore};
pub use self::redb::RedbStore;
pub use self::sled::SledStore;

/// Version of the on-disk layout written by this code (stored in the store and
/// checked at open).
pub const FORMAT_VERSION: u64 = 1;

/// Longest accepted mark-set name, in bytes.
pub const MAX_SET_NAME_LEN: usize = 255;

/// A 32-byte member of a mark set: the SHA-256 of an invite code, or the keyed
/// hash `HMAC(k, person ‖ campaign)` of the issuer (SPEC R-PRIV-1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mark(pub [u8; 32]);

impl fmt::Debug for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A mark is a keyed hash of a person; keep it out of logs.
        f.write_str("Mark(..)")
    }
}

impl From<[u8; 32]> for Mark {
    fn from(b: [u8; 32]) -> Self {
        Self(b)
    }
}

/// One log entry of a [`Batch`].
#[derive(Clone, PartialEq, Eq)]
pub struct BatchEntry {
    /// The canonical entry bytes (the Merkle leaf is `H(0x00 ‖ data)`).
    pub data: Vec<u8>,
    /// The nullifier this entry spends, if it is a pledge. It must not be
    /// present in the store yet, nor twice in the batch.
    pub nullifier: Option<Nullifier>,
}

impl fmt::Debug for BatchEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchEntry")
            .field("len", &self.data.len())
            .field("spends", &self.nullifier.is_some())
            .finish()
    }
}

/// A Merkle stored hash: the hash of the complete subtree of `2^level` leaves
/// that starts at leaf `index << level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredHash {
    /// Tree level, 0 for leaf hashes.
    pub level: u8,
    /// Index of the node within its level.
    pub index: u64,
    /// The node's hash.
    pub hash: Hash,
}

/// One sequencer batch, committed atomically by [`Store::commit_batch`].
#[derive(Clone, Default)]
pub struct Batch {
    /// Index the first entry gets; must equal the current [`Store::size`].
    pub first_index: u64,
    /// Entries in log order; entry `i` gets index `first_index + i`.
    pub entries: Vec<BatchEntry>,
    /// Merkle stored hashes that became known with this batch.
    pub hashes: Vec<StoredHash>,
    /// The new signed checkpoint note (must not be empty).
    pub checkpoint: Vec<u8>,
    /// Metadata updates applied in order: `Some(value)` writes, `None` deletes.
    pub meta: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("first_index", &self.first_index)
            .field("entries", &self.entries.len())
            .field("hashes", &self.hashes.len())
            .field("meta", &self.meta.len())
            .finish_non_exhaustive()
    }
}

/// One issuer/attester transaction, applied atomically by [`Store::issue`] in
/// this order: `absent`, `take`, `insert`, `put`, `delete`, `increment`.
#[derive(Clone, Default)]
pub struct IssueTxn {
    /// `(set, mark)` pairs that must not exist; checked, not written (a
    /// campaign's issuance requires its closing mark absent, SPEC
    /// R-STORE-5).
    pub absent: Vec<(Vec<u8>, Mark)>,
    /// `(set, mark)` pairs that must exist and are removed (single-use invite
    /// code hashes). A pair listed twice fails at its second occurrence.
    pub take: Vec<(Vec<u8>, Mark)>,
    /// `(set, mark)` pairs that must not exist and are added (one token per
    /// person per campaign). A pair listed twice fails at its second occurrence.
    pub insert: Vec<(Vec<u8>, Mark)>,
    /// Metadata writes (for example a campaign's issuer secret key).
    pub put: Vec<(Vec<u8>, Vec<u8>)>,
    /// Metadata keys deleted (absent keys are fine).
    pub delete: Vec<Vec<u8>>,
    /// Counters (metadata values holding a big-endian `u64`, absent = 0) to
    /// increase by the given amount, such as tokens issued per campaign.
    pub increment: Vec<(Vec<u8>, u64)>,
}

impl fmt::Debug for IssueTxn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `put` may carry secret keys: print only the shape.
        f.debug_struct("IssueTxn")
            .field("absent", &self.absent.len())
            .field("take", &self.take.len())
            .field("insert", &self.insert.len())
            .field("put", &self.put.len())
            .field("delete", &self.delete.len())
            .field("increment", &self.increment.len())
            .finish()
    }
}

/// Which engine backs the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// redb 4: copy-on-write B-trees in one file, fsync on every commit.
    Redb,
    /// sled 0.34: log-structured; see [`SledStore`] for its durability caveat.
    Sled,
    /// PostgreSQL (15 or later) at `database_url`: see [`PostgresStore`].
    Postgres,
}

impl Backend {
    /// The backends that keep the store in the data folder, for tests and
    /// tools that iterate over them.
    pub const EMBEDDED: [Backend; 2] = [Backend::Redb, Backend::Sled];

    /// The lower-case name used in configuration (`redb`, `sled`,
    /// `postgres`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Redb => "redb",
            Backend::Sled => "sled",
            Backend::Postgres => "postgres",
        }
    }

    /// The file or folder this backend keeps inside the data folder (`None`
    /// for PostgreSQL).
    pub fn file_name(self) -> Option<&'static str> {
        match self {
            Backend::Redb => Some("ledger.redb"),
            Backend::Sled => Some("ledger.sled"),
            Backend::Postgres => None,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The text was not a backend's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown storage backend {0:?}: expected \"redb\", \"sled\" or \"postgres\"")]
pub struct UnknownBackend(pub String);

impl FromStr for Backend {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "redb" => Ok(Backend::Redb),
            "sled" => Ok(Backend::Sled),
            "postgres" => Ok(Backend::Postgres),
            other => Err(UnknownBackend(other.to_owned())),
        }
    }
}

/// Opens (or creates) the store of `backend` in the data folder `dir`.
///
/// # Errors
/// The page cache each backend may keep in memory (redb's and sled's own
/// default is 1 GiB, which made the server's RSS grow by ~1.9 KiB per pledge
/// until the cache filled: BENCHMARKS.md). The hot set is the log's right
/// edge (recent entries, tiles and hashes) and the marks of invite codes;
/// everything else is read at most once per audit or restart.
pub const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// See [`RedbStore::open`] and [`SledStore::open`]: [`StoreError::ReadOnly`],
/// [`StoreError::Locked`], [`StoreError::WrongBackend`], [`StoreError::Corrupt`],
/// [`StoreError::Backend`].
pub fn open_store(backend: Backend, dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    open_store_at(backend, dir, None)
}

/// [`open_store`], or for [`Backend::Postgres`] [`PostgresStore::connect`]
/// to `database_url`.
///
/// # Errors
/// As [`open_store`] and [`PostgresStore::connect`]; [`StoreError::Invalid`]
/// for PostgreSQL without a URL.
pub fn open_store_at(
    backend: Backend,
    dir: &Path,
    database_url: Option<&str>,
) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match backend {
        Backend::Redb => Arc::new(RedbStore::open(dir)?),
        Backend::Sled => Arc::new(SledStore::open(dir)?),
        Backend::Postgres => Arc::new(PostgresStore::connect(database_url.ok_or(
            StoreError::Invalid(
                "the postgres backend needs database_url (or PLEDGED_DATABASE_URL)",
            ),
        )?)?),
    })
}

/// Errors of the storage layer. Messages carry no stored data (no entries,
/// nullifiers, marks or metadata values).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The engine reported an I/O or internal error (the message is the engine's).
    /// After such an error (or [`StoreError::Corrupt`]) on a write the store
    /// refuses every further call ([`StoreError::Failed`]): restart the process
    /// to recover from disk.
    #[error("storage engine error: {0}")]
    Backend(String),
    /// A previous write failed inside the engine; this handle refuses all work
    /// because its in-memory state may differ from what is durable.
    #[error("the store failed earlier and refuses further work; restart to recover from disk")]
    Failed,
    /// The data folder (or a file in it) cannot be written by this process.
    #[error(
        "the data folder {} is read-only or not writable by this user; \
         the store needs write access to it",
        path.display()
    )]
    ReadOnly {
        /// The data folder.
        path: PathBuf,
    },
    /// Another process (or another handle in this process) has the store open.
    #[error("the store in {} is already open in another process or handle", path.display())]
    Locked {
        /// The data folder.
        path: PathBuf,
    },
    /// The data folder holds the other backend's store.
    #[error(
        "the data folder {} holds a {found} store, but the {wanted} backend was selected",
        path.display()
    )]
    WrongBackend {
        /// The data folder.
        path: PathBuf,
        /// The backend whose files were found.
        found: Backend,
        /// The backend that was asked for.
        wanted: Backend,
    },
    /// The batch does not start at the current log size (another writer, or a
    /// sequencer whose view is stale). Nothing was written.
    #[error("batch starts at index {actual} but the log size is {expected}")]
    Conflict {
        /// The current log size.
        expected: u64,
        /// The batch's `first_index`.
        actual: u64,
    },
    /// Entry `position` of the batch spends a nullifier already in the store or
    /// earlier in the same batch. Nothing was written.
    #[error("batch entry {position} spends a nullifier that is already spent")]
    DuplicateNullifier {
        /// Position of the offending entry within `Batch::entries`.
        position: usize,
    },
    /// A stored hash would change an existing value (the log is append-only).
    /// Nothing was written.
    #[error("stored hash at level {level}, index {index} already holds a different value")]
    HashMismatch {
        /// Tree level.
        level: u8,
        /// Node index.
        index: u64,
    },
    /// `IssueTxn::absent[position]` is in its set. Nothing was written.
    #[error("absent {position}: the mark is in its set")]
    MarkPresent {
        /// Position within `IssueTxn::absent`.
        position: usize,
    },
    /// `IssueTxn::take[position]` is not in its set. Nothing was written.
    #[error("take {position}: the mark is not in its set (unknown or already used)")]
    MarkMissing {
        /// Position within `IssueTxn::take`.
        position: usize,
    },
    /// `IssueTxn::insert[position]` is already in its set. Nothing was written.
    #[error("insert {position}: the mark is already in its set")]
    MarkExists {
        /// Position within `IssueTxn::insert`.
        position: usize,
    },
    /// A range read asked for entries outside `[0, size)` or with `start > end`.
    #[error("range [{start}, {end}) is not within the log of size {size}")]
    OutOfRange {
        /// Requested start.
        start: u64,
        /// Requested end (exclusive).
        end: u64,
        /// The log size at the time of the read.
        size: u64,
    },
    /// A range read of stored hashes found no hash at this position.
    #[error("no stored hash at level {level}, index {index}")]
    MissingHash {
        /// Tree level.
        level: u8,
        /// Node index.
        index: u64,
    },
    /// The caller passed something the store cannot accept (the message says what).
    #[error("invalid store request: {0}")]
    Invalid(&'static str),
    /// The stored data breaks an invariant of this contract (detected at open or
    /// while reading). The store must not be used until an operator looks at it.
    #[error("the store is corrupt: {0}")]
    Corrupt(String),
}

/// Reading metadata: shared by both sides of the store ([`LogStore`],
/// [`IssuerStore`]), which write it (one key space in one engine). The
/// storage contract below holds for every method of the three traits.
///
/// # Atomicity and durability (SPEC R-STORE-2)
///
/// Every method that writes (`commit_batch`, `issue`, `add_marks`, `drop_set`)
/// applies all of its changes or none of them, and returns `Ok` only after the
/// changes are durable: redb commits with `Durability::Immediate` (fsync, two-phase
/// commit); sled commits a transaction, calls `Db::flush` (on Linux
/// `sync_file_range`, which alone does not flush the drive's write cache: sled
/// issue #1452) and then `fsync`s its log file — see [`SledStore`] for what stays
/// uncovered. A write that returns `Err` other than
/// [`StoreError::Backend`] or [`StoreError::Corrupt`] has written nothing. After
/// `Backend` or `Corrupt` on a write the handle is failed ([`StoreError::Failed`]
/// from then on, reads included): the caller must not acknowledge anything from
/// that write and should restart, recovering what is durable.
///
/// # Isolation
///
/// Writes are serialised. Readers see a prefix of the committed writes, never
/// part of one: once `size()` returns `n`, entries `0..n`, their nullifiers, the
/// hashes and the checkpoint of that batch are readable. Readers never block on
/// a commit's fsync for long (redb: snapshot reads; sled: short global lock).
///
/// # Privacy (SPEC R-PRIV-1, R-STORE-4)
///
/// The store keeps only what the caller passes in; it adds no timestamps and no
/// request metadata. Deleting a key or a set ([`IssuerStore::drop_set`],
/// `IssueTxn::delete`) removes it from the database's view, but neither engine
/// guarantees physical erasure: freed pages (redb) or old log segments (sled) may
/// keep the bytes on disk until they are reused or the file is compacted, and the
/// file system or drive may keep copies. Secret keys kept as metadata should be
/// treated as recoverable from a disk image taken before it is overwritten.
pub trait MetaStore: Send + Sync + fmt::Debug + 'static {
    /// The metadata value under `key`, if any.
    ///
    /// # Security
    /// The returned buffer is not zeroized; wrap secret values at once.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Failed`].
    fn meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
}

/// The log's side of the store (SPEC R-STORE-1…R-STORE-3, R-STORE-6): entries,
/// nullifier index, Merkle stored hashes, the checkpoint, and the ledger's
/// own metadata written with its batches. The ledger holds only this trait:
/// it cannot write issuance state, and nothing of the issuer's (its secret
/// keys above all, R-STORE-7) passes through it.
pub trait LogStore: MetaStore {
    /// The number of committed log entries.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Failed`], [`StoreError::Corrupt`].
    fn size(&self) -> Result<u64, StoreError>;

    /// Commits one sequencer batch atomically and durably (SPEC R-STORE-3):
    ///
    /// - `batch.first_index` must equal [`Store::size`], else
    ///   [`StoreError::Conflict`];
    /// - entry `i` is stored at index `first_index + i`; its nullifier, if any, is
    ///   mapped to that index. A nullifier already in the store or repeated in the
    ///   batch refuses the whole batch with [`StoreError::DuplicateNullifier`]
    ///   naming the first offending position;
    /// - each stored hash is written; rewriting an existing one with the same
    ///   value is allowed, with a different value it is
    ///   [`StoreError::HashMismatch`];
    /// - the checkpoint replaces the previous one (it must not be empty:
    ///   [`StoreError::Invalid`]);
    /// - metadata updates are applied in order.
    ///
    /// A batch with no entries is allowed (it may update hashes, the checkpoint
    /// and metadata). The store does not check that hashes or the checkpoint
    /// match the entries: that is the sequencer's job. The sequencer should
    /// check nullifiers first ([`Store::nullifier_index`]) and use this refusal
    /// as the last line of defence against a double spend.
    ///
    /// # Errors
    /// The errors above, [`StoreError::Invalid`] if the indexes would overflow,
    /// [`StoreError::Backend`], [`StoreError::Failed`]. On any error nothing is
    /// written.
    fn commit_batch(&self, batch: Batch) -> Result<(), StoreError>;

    /// The entry at `index`, or `None` if `index >= size()`.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Failed`].
    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError>;

    /// The entries `[start, end)`, in index order. The caller bounds the length.
    ///
    /// # Errors
    /// [`StoreError::OutOfRange`] if `start > end` or `end > size()`;
    /// [`StoreError::Corrupt`] if an entry below the size is missing;
    /// [`StoreError::Backend`], [`StoreError::Failed`].
    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError>;

    /// The stored hash at `(level, index)`, if any.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Failed`].
    fn hash(&self, level: u8, index: u64) -> Result<Option<Hash>, StoreError>;

    /// The stored hashes at `level`, indexes `[start, end)`.
    ///
    /// # Errors
    /// [`StoreError::OutOfRange`] if `start > end`; [`StoreError::MissingHash`]
    /// naming the first absent index; [`StoreError::Backend`], [`StoreError::Failed`].
    fn hashes(&self, level: u8, start: u64, end: u64) -> Result<Vec<Hash>, StoreError>;

    /// The index of the entry that spent `nullifier`, if any.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Failed`].
    fn nullifier_index(&self, nullifier: &Nullifier) -> Result<Option<u64>, StoreError>;

    /// The checkpoint note of the latest committed batch (`None` before the
    /// first batch; always `Some` once `size() > 0`).
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Failed`].
    fn checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError>;
}

/// The issuer's side of the store (SPEC R-STORE-4, R-STORE-5, R-STORE-7):
/// issuance transactions, mark sets and counters. The issuer and the
/// attesters hold only this trait: they cannot touch the log.
pub trait IssuerStore: MetaStore {
    /// Applies an issuer/attester transaction atomically and durably (SPEC
    /// R-STORE-5), in the order documented on [`IssueTxn`].
    ///
    /// # Errors
    /// [`StoreError::MarkPresent`] for the first `absent` whose mark is
    /// present, [`StoreError::MarkMissing`] for the first `take` whose mark is
    /// absent, [`StoreError::MarkExists`] for the first `insert` whose mark is
    /// present (in that order); [`StoreError::Invalid`] for a set name
    /// longer than [`MAX_SET_NAME_LEN`], a counter that would overflow or a
    /// counter key whose value is not 8 bytes; [`StoreError::Backend`],
    /// [`StoreError::Failed`]. On any error nothing is written.
    fn issue(&self, txn: IssueTxn) -> Result<(), StoreError>;

    /// Whether `mark` is in `set`.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a set name that is too long;
    /// [`StoreError::Backend`], [`StoreError::Failed`].
    fn contains_mark(&self, set: &[u8], mark: &Mark) -> Result<bool, StoreError>;

    /// Adds `marks` to `set` atomically and durably (for example invite code
    /// hashes minted by the operator). Marks already present stay; returns how
    /// many were new.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a set name that is too long;
    /// [`StoreError::Backend`], [`StoreError::Failed`].
    fn add_marks(&self, set: &[u8], marks: &[Mark]) -> Result<u64, StoreError>;

    /// Deletes every mark of `set` and the metadata keys `delete_meta`
    /// atomically and durably (a closed campaign's keyed hashes and issuer
    /// secret key: SPEC R-PRIV-1). Returns how many marks were removed. See the
    /// trait's privacy note on physical erasure.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a set name that is too long;
    /// [`StoreError::Backend`], [`StoreError::Failed`].
    fn drop_set(&self, set: &[u8], delete_meta: &[&[u8]]) -> Result<u64, StoreError>;

    /// How many marks each set whose name starts with `prefix` holds (SPEC
    /// R-STORE-8): `(set name, count)` in byte order of the names, sets
    /// without marks absent, all read from one consistent view. Only
    /// counts leave the store: never a mark. The issuer lists the unused
    /// invite codes of every group with it (prefix `invite/`). The cost
    /// grows with the number of marks of the matching sets only.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a prefix longer than [`MAX_SET_NAME_LEN`];
    /// [`StoreError::Corrupt`] for a stored mark key of the wrong shape;
    /// [`StoreError::Backend`], [`StoreError::Failed`].
    fn mark_counts(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, u64)>, StoreError>;

    /// The counter under `key` (see `IssueTxn::increment`): 0 when absent.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if the value is not 8 bytes, and the errors of
    /// [`MetaStore::meta`].
    fn counter(&self, key: &[u8]) -> Result<u64, StoreError> {
        match self.meta(key)? {
            None => Ok(0),
            Some(v) => decode_counter(&v),
        }
    }
}

/// A whole store: both sides, in one engine and one data folder (the
/// embedded backends), opened once and handed to the ledger as a
/// [`LogStore`] and to the issuer as an [`IssuerStore`].
pub trait Store: LogStore + IssuerStore {}

impl<T: LogStore + IssuerStore> Store for T {}

// ---------------------------------------------------------------------------
// Helpers shared by both backends. Key layouts (big-endian, so byte order is
// index order):
//   entries:    u64 index
//   nullifiers: 32-byte nullifier -> u64 index
//   hashes:     u8 level ‖ u64 index -> 32-byte hash
//   marks:      u8 len(set) ‖ set ‖ 32-byte mark -> empty
//   state:      "size" -> u64, "checkpoint" -> bytes, "format" -> u64
//   meta:       caller's key -> caller's value
// ---------------------------------------------------------------------------

pub(crate) const STATE_SIZE: &[u8] = b"size";
pub(crate) const STATE_CHECKPOINT: &[u8] = b"checkpoint";
pub(crate) const STATE_FORMAT: &[u8] = b"format";

/// `u8 level ‖ u64 index`, big-endian.
pub(crate) fn hash_key(level: u8, index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = level;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

/// The key prefix of a mark set: `u8 len ‖ set`.
///
/// # Errors
/// [`StoreError::Invalid`] if the set name is longer than [`MAX_SET_NAME_LEN`].
pub(crate) fn set_prefix(set: &[u8]) -> Result<Vec<u8>, StoreError> {
    let len = u8::try_from(set.len())
        .map_err(|_| StoreError::Invalid("mark set name longer than 255 bytes"))?;
    let mut k = Vec::with_capacity(1 + set.len() + 32);
    k.push(len);
    k.extend_from_slice(set);
    Ok(k)
}

/// The key prefixes `u8 len ‖ prefix` under which the marks of every set
/// whose name starts with `prefix` lie (one per possible name length), for
/// [`IssuerStore::mark_counts`] on the embedded backends.
///
/// # Errors
/// [`StoreError::Invalid`] if `prefix` is longer than [`MAX_SET_NAME_LEN`].
pub(crate) fn set_prefixes(prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
    let shortest = u8::try_from(prefix.len())
        .map_err(|_| StoreError::Invalid("mark set name longer than 255 bytes"))?;
    Ok((shortest..=u8::MAX)
        .map(|len| {
            let mut k = Vec::with_capacity(1 + prefix.len());
            k.push(len);
            k.extend_from_slice(prefix);
            k
        })
        .collect())
}

/// The set name of a stored mark key `u8 len ‖ set ‖ mark`.
///
/// # Errors
/// [`StoreError::Corrupt`] if the key is not of that shape.
pub(crate) fn set_of_mark_key(key: &[u8]) -> Result<&[u8], StoreError> {
    let len = usize::from(*key.first().unwrap_or(&0));
    if key.len() != 1 + len + 32 {
        return Err(StoreError::Corrupt(format!(
            "a mark key is {} bytes, not {} for a set name of {len}",
            key.len(),
            1 + len + 32
        )));
    }
    Ok(&key[1..=len])
}

/// The counts of [`IssuerStore::mark_counts`] on the embedded backends,
/// fed the stored mark keys in key order (a set's marks are contiguous).
#[derive(Default)]
pub(crate) struct SetCounts {
    done: std::collections::BTreeMap<Vec<u8>, u64>,
    current: Option<(Vec<u8>, u64)>,
}

impl SetCounts {
    /// Counts the mark stored under `key` (`u8 len ‖ set ‖ mark`).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if the key is not of that shape.
    pub(crate) fn add(&mut self, key: &[u8]) -> Result<(), StoreError> {
        let set = set_of_mark_key(key)?;
        match &mut self.current {
            Some((s, n)) if s.as_slice() == set => *n += 1,
            _ => {
                if let Some((s, n)) = self.current.replace((set.to_vec(), 1)) {
                    *self.done.entry(s).or_insert(0) += n;
                }
            }
        }
        Ok(())
    }

    /// The counts by set name, in byte order.
    pub(crate) fn finish(mut self) -> Vec<(Vec<u8>, u64)> {
        if let Some((s, n)) = self.current.take() {
            *self.done.entry(s).or_insert(0) += n;
        }
        self.done.into_iter().collect()
    }
}

/// `u8 len ‖ set ‖ mark`.
pub(crate) fn mark_key(set: &[u8], mark: &Mark) -> Result<Vec<u8>, StoreError> {
    let mut k = set_prefix(set)?;
    k.extend_from_slice(&mark.0);
    Ok(k)
}

pub(crate) fn decode_u64(bytes: &[u8], what: &str) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{what} is {} bytes, not 8", bytes.len())))?;
    Ok(u64::from_be_bytes(arr))
}

pub(crate) fn decode_hash(bytes: &[u8], level: u8, index: u64) -> Result<Hash, StoreError> {
    let arr: [u8; 32] = bytes.try_into().map_err(|_| {
        StoreError::Corrupt(format!(
            "stored hash at level {level}, index {index} is {} bytes, not 32",
            bytes.len()
        ))
    })?;
    Ok(Hash(arr))
}

/// The stored hashes `[start, end)` of `level` out of `found` (the stored
/// indexes and values of that range, in index order, as each backend reads
/// them): [`StoreError::MissingHash`] names the first index not there.
pub(crate) fn contiguous_hashes<V: AsRef<[u8]>>(
    level: u8,
    start: u64,
    end: u64,
    found: impl IntoIterator<Item = Result<(u64, V), StoreError>>,
) -> Result<Vec<Hash>, StoreError> {
    let mut out = Vec::new();
    let mut next = start;
    for item in found {
        let (index, value) = item?;
        if index != next {
            return Err(StoreError::MissingHash { level, index: next });
        }
        out.push(decode_hash(value.as_ref(), level, index)?);
        next += 1;
    }
    if next != end {
        return Err(StoreError::MissingHash { level, index: next });
    }
    Ok(out)
}

fn decode_counter(bytes: &[u8]) -> Result<u64, StoreError> {
    decode_u64(bytes, "a counter value")
}

/// `current + by` for `IssueTxn::increment`.
pub(crate) fn incremented(current: Option<&[u8]>, by: u64) -> Result<[u8; 8], StoreError> {
    let now = match current {
        None => 0,
        // A caller bug (a non-counter value under a counter key), not damage:
        // refuse the transaction without failing the handle.
        Some(v) => decode_counter(v)
            .map_err(|_| StoreError::Invalid("counter key holds a value that is not 8 bytes"))?,
    };
    let next = now
        .checked_add(by)
        .ok_or(StoreError::Invalid("counter increment overflows u64"))?;
    Ok(next.to_be_bytes())
}

/// Validates the batch fields that need no stored state, and returns the
/// index after the batch.
pub(crate) fn check_batch_shape(batch: &Batch) -> Result<u64, StoreError> {
    if batch.checkpoint.is_empty() {
        return Err(StoreError::Invalid("batch checkpoint is empty"));
    }
    let n = u64::try_from(batch.entries.len())
        .map_err(|_| StoreError::Invalid("batch has too many entries"))?;
    batch
        .first_index
        .checked_add(n)
        .ok_or(StoreError::Invalid("batch indexes overflow u64"))
}

/// Checks the invariants that open validates on either backend (SPEC R-STORE-6).
pub(crate) fn check_open_invariants(
    size: u64,
    entry_count: u64,
    first: Option<u64>,
    last: Option<u64>,
    has_checkpoint: bool,
) -> Result<(), StoreError> {
    if entry_count != size {
        return Err(StoreError::Corrupt(format!(
            "the size counter says {size} entries but {entry_count} are stored"
        )));
    }
    if size > 0 {
        if first != Some(0) || last != Some(size - 1) {
            return Err(StoreError::Corrupt(format!(
                "entry indexes are not 0..{size} (first {first:?}, last {last:?})"
            )));
        }
        if !has_checkpoint {
            return Err(StoreError::Corrupt(format!(
                "the log has {size} entries but no checkpoint"
            )));
        }
    }
    Ok(())
}

/// Whether an I/O error means "this process may not write here".
pub(crate) fn is_read_only(kind: std::io::ErrorKind) -> bool {
    matches!(
        kind,
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
    )
}

/// `fsync` of a folder, so that files created in it survive a power loss.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::Backend(format!("cannot sync the data folder: {e}")))
}

/// Creates the data folder if needed and refuses a folder that holds the other
/// backend's store.
///
/// A folder created here gets mode 0700 on Unix: the store holds issuer secret
/// keys and keyed hashes of people (SPEC R-STORE-4). An existing folder's mode is
/// left as the operator set it.
pub(crate) fn prepare_dir(dir: &Path, wanted: Backend) -> Result<PathBuf, StoreError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    if let Err(e) = builder.create(dir) {
        return Err(if is_read_only(e.kind()) {
            StoreError::ReadOnly {
                path: dir.to_path_buf(),
            }
        } else {
            StoreError::Backend(format!("cannot create the data folder: {e}"))
        });
    }
    for other in Backend::EMBEDDED {
        if other != wanted && other.file_name().is_some_and(|f| dir.join(f).exists()) {
            return Err(StoreError::WrongBackend {
                path: dir.to_path_buf(),
                found: other,
                wanted,
            });
        }
    }
    let file = wanted
        .file_name()
        .ok_or(StoreError::Invalid("not an embedded backend"))?;
    Ok(dir.join(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_round_trip() {
        for b in [Backend::Redb, Backend::Sled, Backend::Postgres] {
            assert_eq!(b.name().parse::<Backend>(), Ok(b));
            assert_eq!(b.to_string(), b.name());
        }
        assert_eq!(
            "Redb".parse::<Backend>(),
            Err(UnknownBackend("Redb".into()))
        );
        assert!("".parse::<Backend>().is_err());
    }

    #[test]
    fn key_layouts_sort_by_index() {
        assert!(hash_key(0, 255) < hash_key(0, 256));
        assert!(hash_key(0, u64::MAX) < hash_key(1, 0));
        let a = mark_key(b"ab", &Mark([0xff; 32])).unwrap();
        let b = mark_key(b"abc", &Mark([0; 32])).unwrap();
        // A set's prefix never collides with a longer set's prefix.
        assert!(!b.starts_with(&set_prefix(b"ab").unwrap()));
        assert!(a.starts_with(&set_prefix(b"ab").unwrap()));
        assert!(matches!(
            set_prefix(&[0u8; 256]),
            Err(StoreError::Invalid(_))
        ));
        assert!(set_prefix(&[0u8; 255]).is_ok());
    }

    #[test]
    fn counters_decode_and_overflow() {
        assert_eq!(incremented(None, 3).unwrap(), 3u64.to_be_bytes());
        assert_eq!(
            incremented(Some(&5u64.to_be_bytes()), 2).unwrap(),
            7u64.to_be_bytes()
        );
        assert!(matches!(
            incremented(Some(&u64::MAX.to_be_bytes()), 1),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            incremented(Some(b"short"), 1),
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn debug_output_hides_values() {
        let txn = IssueTxn {
            put: vec![(b"issuer-key".to_vec(), b"SECRET-DER".to_vec())],
            insert: vec![(b"set".to_vec(), Mark([7; 32]))],
            ..IssueTxn::default()
        };
        let s = format!("{txn:?}");
        assert!(!s.contains("SECRET") && !s.contains("83, 69"), "{s}");
        assert_eq!(format!("{:?}", Mark([7; 32])), "Mark(..)");
    }
}
