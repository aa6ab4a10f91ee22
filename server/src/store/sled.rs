//! The sled 0.34 backend of [`Store`]: one folder `ledger.sled/` in the data
//! folder, every write one multi-tree sled transaction followed by
//! `Db::flush` and an `fsync` of sled's log file before the call returns.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pledge_protocol::hash::{Hash, Nullifier};
use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
};
use sled::{Db, IVec, Tree};

use super::{
    Backend, Batch, IssueTxn, IssuerStore, LogStore, Mark, MetaStore, STATE_CHECKPOINT,
    STATE_FORMAT, STATE_SIZE, SetCounts, StoreError, check_batch_shape, check_open_invariants,
    contiguous_hashes, decode_hash, decode_u64, hash_key, incremented, is_read_only, mark_key,
    prepare_dir, set_prefix, set_prefixes, sync_dir,
};

/// [`Store`] on sled 0.34.7.
///
/// # Durability and its caveats
/// Every write is one sled transaction (atomic across trees), then `Db::flush`,
/// then `fsync` of sled's log file `ledger.sled/db`, and the call returns only
/// after both. On Linux sled's own flush uses `sync_file_range`, which writes
/// the pages out but neither commits file metadata (a grown file size) nor
/// flushes the drive's volatile write cache (sled issue #1452); the extra
/// `fsync` (on a second descriptor of the same file, which syncs the inode)
/// closes that gap for the log file. Remaining caveats, not closed here: log
/// items over 128 KiB (a quarter of sled's 512 KiB segment) go to separate
/// files under `blobs/` that sled writes without any sync, and sled 0.34.7 can
/// be left unopenable by a kill during its own start-up snapshot (an empty
/// `snap.*.generating` file; issues #1527, #1533). The fault suite decides the
/// default backend.
///
/// Writes are serialised by a mutex in the handle (sled transactions also take
/// a process-wide lock), so transactions never conflict and retry.
pub struct SledStore {
    db: Db,
    entries: Tree,
    nullifiers: Tree,
    hashes: Tree,
    state: Tree,
    meta: Tree,
    marks: Tree,
    /// A read-only descriptor of sled's log file, only used to `fsync` it.
    log_file: File,
    write: Mutex<()>,
    path: PathBuf,
    failed: AtomicBool,
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn backend(e: sled::Error) -> StoreError {
    match e {
        sled::Error::Corruption { at, .. } => StoreError::Corrupt(format!(
            "sled reports corruption (at {at:?}); after a crash during start-up an empty \
             snap.*.generating file is a known cause (sled issues #1527, #1533)"
        )),
        other => StoreError::Backend(format!("sled: {other}")),
    }
}

/// Maps the result of a sled transaction whose closure aborts with a `StoreError`.
fn txn_result<T>(r: Result<T, TransactionError<StoreError>>) -> Result<T, StoreError> {
    r.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => backend(e),
    })
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn abort<T>(e: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

fn tx_u64(v: Option<IVec>, what: &str) -> TxResult<u64> {
    match v {
        None => Ok(0),
        Some(v) => decode_u64(&v, what).map_err(ConflictableTransactionError::Abort),
    }
}

impl SledStore {
    /// Opens or creates the store in the data folder `dir` (creating the folder
    /// if needed) and checks this contract's invariants (SPEC R-STORE-6): the
    /// size counter equals the number of entries (a full scan of the entry
    /// keys), entry indexes are exactly `0..size`, a checkpoint exists once
    /// `size > 0`, and the layout version is known.
    ///
    /// # Errors
    /// [`StoreError::ReadOnly`] if the folder cannot be written;
    /// [`StoreError::Locked`] if the store is still open elsewhere after
    /// waiting one second (a handle of this process that was just dropped
    /// releases sled's file lock from a background thread);
    /// [`StoreError::WrongBackend`] if the folder holds a redb store;
    /// [`StoreError::Corrupt`] if an invariant fails or sled reports corruption;
    /// [`StoreError::Backend`].
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let folder = prepare_dir(dir, Backend::Sled)?;
        let db = open_db(&folder, dir)?;
        let log_file = File::open(folder.join("db"))
            .map_err(|e| StoreError::Backend(format!("cannot open sled's log file: {e}")))?;
        // Make the creation of sled's files durable too.
        sync_dir(&folder)?;
        sync_dir(dir)?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| open_error(e, dir));
        let store = SledStore {
            entries: tree("entries")?,
            nullifiers: tree("nullifiers")?,
            hashes: tree("hashes")?,
            state: tree("state")?,
            meta: tree("meta")?,
            marks: tree("marks")?,
            db,
            log_file,
            write: Mutex::new(()),
            path: dir.to_path_buf(),
            failed: AtomicBool::new(false),
        };
        store.init_and_validate()?;
        Ok(store)
    }

    fn init_and_validate(&self) -> Result<(), StoreError> {
        match self.state.get(STATE_FORMAT).map_err(backend)? {
            None => {
                self.state
                    .insert(STATE_FORMAT, &super::FORMAT_VERSION.to_be_bytes())
                    .map_err(|e| open_error(e, &self.path))?;
                self.flush()?;
            }
            Some(v) => {
                let v = decode_u64(&v, "the format version")?;
                if v != super::FORMAT_VERSION {
                    return Err(StoreError::Corrupt(format!(
                        "layout version {v} is not supported (this build reads {})",
                        super::FORMAT_VERSION
                    )));
                }
            }
        }
        let size = self.read_size()?;
        let count = self.entries.len() as u64;
        let index = |kv: Option<(IVec, IVec)>| -> Result<Option<u64>, StoreError> {
            kv.map(|(k, _)| decode_u64(&k, "an entry key")).transpose()
        };
        let first = index(self.entries.first().map_err(backend)?)?;
        let last = index(self.entries.last().map_err(backend)?)?;
        let has_cp = self.state.get(STATE_CHECKPOINT).map_err(backend)?.is_some();
        check_open_invariants(size, count, first, last, has_cp)
    }

    fn check_ok(&self) -> Result<(), StoreError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(StoreError::Failed);
        }
        Ok(())
    }

    fn read_size(&self) -> Result<u64, StoreError> {
        match self.state.get(STATE_SIZE).map_err(backend)? {
            None => Ok(0),
            Some(v) => decode_u64(&v, "the size counter"),
        }
    }

    /// `Db::flush`, then `fsync` of the log file (see the type's docs).
    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(backend)?;
        self.log_file
            .sync_all()
            .map_err(|e| StoreError::Backend(format!("fsync of sled's log file failed: {e}")))
    }

    /// Runs one write: takes the write mutex, runs `f` (which performs a sled
    /// transaction), flushes on success, and fails the handle on engine errors.
    fn write<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.check_ok()?;
        let _guard = self.write.lock().map_err(|_| StoreError::Failed)?;
        self.check_ok()?;
        let out = f().and_then(|v| {
            // SPEC R-STORE-2: acknowledged only after the flush returns.
            self.flush()?;
            Ok(v)
        });
        if let Err(StoreError::Backend(_) | StoreError::Corrupt(_)) = &out {
            self.failed.store(true, Ordering::Release);
        }
        out
    }
}

/// How long [`SledStore::open`] waits for a file lock that a just-dropped handle
/// in this process may still hold (sled releases it from a background thread).
const LOCK_WAIT: Duration = Duration::from_secs(1);

fn open_db(folder: &Path, dir: &Path) -> Result<Db, StoreError> {
    let started = Instant::now();
    loop {
        let res = sled::Config::new()
            .path(folder)
            // Every write path flushes explicitly before returning.
            .flush_every_ms(None)
            .cache_capacity(super::CACHE_BYTES as u64)
            .open()
            .map_err(|e| open_error(e, dir));
        match res {
            Err(StoreError::Locked { .. }) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

fn open_error(e: sled::Error, dir: &Path) -> StoreError {
    let path = dir.to_path_buf();
    match e {
        sled::Error::Io(io) if is_read_only(io.kind()) => StoreError::ReadOnly { path },
        // sled reports a held file lock as a plain I/O error with this text.
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            StoreError::Locked { path }
        }
        other => backend(other),
    }
}

fn mark_keys<'a>(
    pairs: impl Iterator<Item = (&'a [u8], &'a Mark)>,
) -> Result<Vec<Vec<u8>>, StoreError> {
    pairs.map(|(s, m)| mark_key(s, m)).collect()
}

impl MetaStore for SledStore {
    fn meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.check_ok()?;
        Ok(self.meta.get(key).map_err(backend)?.map(|v| v.to_vec()))
    }
}

impl LogStore for SledStore {
    fn size(&self) -> Result<u64, StoreError> {
        self.check_ok()?;
        self.read_size()
    }

    fn commit_batch(&self, batch: Batch) -> Result<(), StoreError> {
        let end = check_batch_shape(&batch)?;
        self.write(|| {
            let trees = (
                &self.state,
                &self.entries,
                &self.nullifiers,
                &self.hashes,
                &self.meta,
            );
            txn_result(trees.transaction(
                |(state, entries, nullifiers, hashes, meta): &(
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                    TransactionalTree,
                )| {
                    let size = tx_u64(state.get(STATE_SIZE)?, "the size counter")?;
                    // SPEC R-STORE-3: the batch extends the log exactly.
                    if batch.first_index != size {
                        return abort(StoreError::Conflict {
                            expected: size,
                            actual: batch.first_index,
                        });
                    }
                    for (position, (index, entry)) in (size..end).zip(&batch.entries).enumerate() {
                        let key = index.to_be_bytes();
                        if entries.insert(&key, entry.data.as_slice())?.is_some() {
                            return abort(StoreError::Corrupt(format!(
                                "entry {index} exists beyond the size counter"
                            )));
                        }
                        if let Some(n) = &entry.nullifier {
                            // SPEC R-STORE-3 / I1: one spend per nullifier, also within the batch.
                            if nullifiers.insert(&n.0, &key)?.is_some() {
                                return abort(StoreError::DuplicateNullifier { position });
                            }
                        }
                    }
                    for h in &batch.hashes {
                        let old = hashes.insert(&hash_key(h.level, h.index), &h.hash.0)?;
                        if old.is_some_and(|old| old.as_ref() != h.hash.0) {
                            return abort(StoreError::HashMismatch {
                                level: h.level,
                                index: h.index,
                            });
                        }
                    }
                    state.insert(STATE_SIZE, &end.to_be_bytes())?;
                    state.insert(STATE_CHECKPOINT, batch.checkpoint.as_slice())?;
                    for (k, v) in &batch.meta {
                        match v {
                            Some(v) => meta.insert(k.as_slice(), v.as_slice())?,
                            None => meta.remove(k.as_slice())?,
                        };
                    }
                    Ok(())
                },
            ))
        })
    }

    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.check_ok()?;
        Ok(self
            .entries
            .get(index.to_be_bytes())
            .map_err(backend)?
            .map(|v| v.to_vec()))
    }

    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        self.check_ok()?;
        let size = self.read_size()?;
        if start > end || end > size {
            return Err(StoreError::OutOfRange { start, end, size });
        }
        let mut out = Vec::new();
        let range = self.entries.range(start.to_be_bytes()..end.to_be_bytes());
        for (expected, item) in (start..end).zip(range) {
            let (k, v) = item.map_err(backend)?;
            if decode_u64(&k, "an entry key")? != expected {
                return Err(StoreError::Corrupt(format!("entry {expected} is missing")));
            }
            out.push(v.to_vec());
        }
        if out.len() as u64 != end - start {
            return Err(StoreError::Corrupt(format!(
                "entries {start}..{end} are incomplete"
            )));
        }
        Ok(out)
    }

    fn hash(&self, level: u8, index: u64) -> Result<Option<Hash>, StoreError> {
        self.check_ok()?;
        self.hashes
            .get(hash_key(level, index))
            .map_err(backend)?
            .map(|v| decode_hash(&v, level, index))
            .transpose()
    }

    fn hashes(&self, level: u8, start: u64, end: u64) -> Result<Vec<Hash>, StoreError> {
        self.check_ok()?;
        if start > end {
            return Err(StoreError::OutOfRange {
                start,
                end,
                size: self.read_size()?,
            });
        }
        let found = self
            .hashes
            .range(hash_key(level, start)..hash_key(level, end))
            .map(|item| {
                let (k, v) = item.map_err(backend)?;
                let index = k
                    .get(1..)
                    .ok_or_else(|| StoreError::Corrupt("short stored-hash key".into()))
                    .and_then(|b| decode_u64(b, "a stored-hash key"))?;
                Ok((index, v))
            });
        contiguous_hashes(level, start, end, found)
    }

    fn nullifier_index(&self, nullifier: &Nullifier) -> Result<Option<u64>, StoreError> {
        self.check_ok()?;
        self.nullifiers
            .get(nullifier.0)
            .map_err(backend)?
            .map(|v| decode_u64(&v, "a nullifier's entry index"))
            .transpose()
    }

    fn checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.check_ok()?;
        Ok(self
            .state
            .get(STATE_CHECKPOINT)
            .map_err(backend)?
            .map(|v| v.to_vec()))
    }
}

impl IssuerStore for SledStore {
    fn issue(&self, spec: IssueTxn) -> Result<(), StoreError> {
        let takes = mark_keys(spec.take.iter().map(|(s, m)| (s.as_slice(), m)))?;
        let inserts = mark_keys(spec.insert.iter().map(|(s, m)| (s.as_slice(), m)))?;
        let absent = mark_keys(spec.absent.iter().map(|(s, m)| (s.as_slice(), m)))?;
        self.write(|| {
            txn_result((&self.marks, &self.meta).transaction(
                |(marks, meta): &(TransactionalTree, TransactionalTree)| {
                    // SPEC R-STORE-5: absent marks and inserts must not
                    // exist, takes must.
                    for (position, k) in absent.iter().enumerate() {
                        if marks.get(k.as_slice())?.is_some() {
                            return abort(StoreError::MarkPresent { position });
                        }
                    }
                    for (position, k) in takes.iter().enumerate() {
                        if marks.remove(k.as_slice())?.is_none() {
                            return abort(StoreError::MarkMissing { position });
                        }
                    }
                    for (position, k) in inserts.iter().enumerate() {
                        if marks.insert(k.as_slice(), &[])?.is_some() {
                            return abort(StoreError::MarkExists { position });
                        }
                    }
                    for (k, v) in &spec.put {
                        meta.insert(k.as_slice(), v.as_slice())?;
                    }
                    for k in &spec.delete {
                        meta.remove(k.as_slice())?;
                    }
                    for (k, by) in &spec.increment {
                        let cur = meta.get(k.as_slice())?;
                        let next = incremented(cur.as_deref(), *by)
                            .map_err(ConflictableTransactionError::Abort)?;
                        meta.insert(k.as_slice(), &next)?;
                    }
                    Ok(())
                },
            ))
        })
    }

    fn contains_mark(&self, set: &[u8], mark: &Mark) -> Result<bool, StoreError> {
        let k = mark_key(set, mark)?;
        self.check_ok()?;
        self.marks.contains_key(k).map_err(backend)
    }

    fn add_marks(&self, set: &[u8], marks: &[Mark]) -> Result<u64, StoreError> {
        let keys = mark_keys(marks.iter().map(|m| (set, m)))?;
        self.write(|| {
            txn_result(self.marks.transaction(|t: &TransactionalTree| {
                let mut added = 0u64;
                for k in &keys {
                    if t.insert(k.as_slice(), &[])?.is_none() {
                        added += 1;
                    }
                }
                Ok(added)
            }))
        })
    }

    fn mark_counts(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, u64)>, StoreError> {
        let prefixes = set_prefixes(prefix)?;
        self.check_ok()?;
        // SPEC R-STORE-8: sled has no read snapshot; the write mutex keeps
        // every write out while the sets are counted.
        let _guard = self.write.lock().map_err(|_| StoreError::Failed)?;
        self.check_ok()?;
        let mut counts = SetCounts::default();
        for p in prefixes {
            for k in self.marks.scan_prefix(&p).keys() {
                counts.add(&k.map_err(backend)?)?;
            }
        }
        Ok(counts.finish())
    }

    fn drop_set(&self, set: &[u8], delete_meta: &[&[u8]]) -> Result<u64, StoreError> {
        let prefix = set_prefix(set)?;
        self.write(|| {
            // The write mutex keeps the set unchanged between this scan and the
            // transaction (sled transactions cannot scan).
            let keys = self
                .marks
                .scan_prefix(&prefix)
                .keys()
                .collect::<Result<Vec<IVec>, _>>()
                .map_err(backend)?;
            txn_result((&self.marks, &self.meta).transaction(
                |(marks, meta): &(TransactionalTree, TransactionalTree)| {
                    for k in &keys {
                        marks.remove(k)?;
                    }
                    for k in delete_meta {
                        meta.remove(*k)?;
                    }
                    Ok(keys.len() as u64)
                },
            ))
        })
    }
}
