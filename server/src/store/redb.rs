//! The redb 4 backend of [`Store`]: one file `ledger.redb` in the data folder,
//! every write one redb write transaction committed with
//! `Durability::Immediate` and two-phase commit.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use pledge_protocol::hash::{Hash, Nullifier};
use redb::{
    Database, DatabaseError, Durability, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, StorageError, TableDefinition, WriteTransaction,
};

use super::{
    Backend, Batch, IssueTxn, IssuerStore, LogStore, Mark, MetaStore, STATE_CHECKPOINT,
    STATE_FORMAT, STATE_SIZE, SetCounts, StoreError, check_batch_shape, check_open_invariants,
    contiguous_hashes, decode_u64, incremented, is_read_only, mark_key, prepare_dir, set_prefix,
    set_prefixes, sync_dir,
};

const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
const NULLIFIERS: TableDefinition<&[u8; 32], u64> = TableDefinition::new("nullifiers");
const HASHES: TableDefinition<(u8, u64), &[u8; 32]> = TableDefinition::new("hashes");
const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
const META: TableDefinition<&[u8], &[u8]> = TableDefinition::new("meta");
const MARKS: TableDefinition<&[u8], ()> = TableDefinition::new("marks");

/// [`Store`] on redb 4.
///
/// # Durability
/// Every write transaction commits with `Durability::Immediate` (redb's
/// default, set explicitly) and two-phase commit (an extra fsync per commit,
/// which closes redb's documented checksum-forgery window on attacker-chosen
/// data). The database is opened with `set_check_integrity_on_open`, so a
/// damaged file is reported as [`StoreError::Corrupt`] instead of being trusted;
/// this reads the whole file at start-up.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    failed: AtomicBool,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn backend<E: Into<redb::Error>>(e: E) -> StoreError {
    match e.into() {
        redb::Error::Corrupted(msg) => StoreError::Corrupt(format!("redb: {msg}")),
        other => StoreError::Backend(format!("redb: {other}")),
    }
}

impl RedbStore {
    /// Opens or creates the store in the data folder `dir` (creating the folder
    /// if needed), checks redb's page checksums and this contract's invariants
    /// (SPEC R-STORE-6): the size counter equals the number of entries, entry
    /// indexes are exactly `0..size`, a checkpoint exists once `size > 0`, and
    /// the layout version is known.
    ///
    /// # Errors
    /// [`StoreError::ReadOnly`] if the folder or file cannot be written;
    /// [`StoreError::Locked`] if the store is open elsewhere;
    /// [`StoreError::WrongBackend`] if the folder holds a sled store;
    /// [`StoreError::Corrupt`] if an invariant fails; [`StoreError::Backend`].
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let file = prepare_dir(dir, Backend::Redb)?;
        let db = Database::builder()
            .set_check_integrity_on_open(true)
            .set_cache_size(super::CACHE_BYTES)
            .create(&file)
            .map_err(|e| open_error(e, dir))?;
        // Make the creation of the file durable too.
        sync_dir(dir)?;
        let store = RedbStore {
            db,
            path: dir.to_path_buf(),
            failed: AtomicBool::new(false),
        };
        store.init_and_validate()?;
        Ok(store)
    }

    fn init_and_validate(&self) -> Result<(), StoreError> {
        // Create every table (so read transactions never miss one) and the
        // format marker; a no-op commit on an existing store.
        let txn = self.begin_write()?;
        let res = (|| {
            txn.open_table(ENTRIES).map_err(backend)?;
            txn.open_table(NULLIFIERS).map_err(backend)?;
            txn.open_table(HASHES).map_err(backend)?;
            txn.open_table(META).map_err(backend)?;
            txn.open_table(MARKS).map_err(backend)?;
            let mut state = txn.open_table(STATE).map_err(backend)?;
            let format = state.get(STATE_FORMAT).map_err(backend)?;
            match format {
                None => {
                    drop(format);
                    state
                        .insert(STATE_FORMAT, super::FORMAT_VERSION.to_be_bytes().as_slice())
                        .map_err(backend)?;
                }
                Some(v) => {
                    let v = decode_u64(v.value(), "the format version")?;
                    if v != super::FORMAT_VERSION {
                        return Err(StoreError::Corrupt(format!(
                            "layout version {v} is not supported (this build reads {})",
                            super::FORMAT_VERSION
                        )));
                    }
                }
            }
            Ok(())
        })();
        self.finish(txn, res)?;

        let r = self.begin_read()?;
        let size = read_size(&r)?;
        let entries = r.open_table(ENTRIES).map_err(backend)?;
        let count = entries.len().map_err(backend)?;
        let first = entries.first().map_err(backend)?.map(|(k, _)| k.value());
        let last = entries.last().map_err(backend)?.map(|(k, _)| k.value());
        let state = r.open_table(STATE).map_err(backend)?;
        let has_cp = state.get(STATE_CHECKPOINT).map_err(backend)?.is_some();
        check_open_invariants(size, count, first, last, has_cp)
    }

    fn check_ok(&self) -> Result<(), StoreError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(StoreError::Failed);
        }
        Ok(())
    }

    fn begin_read(&self) -> Result<ReadTransaction, StoreError> {
        self.check_ok()?;
        self.db.begin_read().map_err(backend)
    }

    fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        self.check_ok()?;
        let mut txn = self.db.begin_write().map_err(|e| self.fail(backend(e)))?;
        // SPEC R-STORE-2: durable before `Ok`.
        txn.set_durability(Durability::Immediate)
            .map_err(|e| self.fail(backend(e)))?;
        txn.set_two_phase_commit(true);
        Ok(txn)
    }

    /// Marks the handle failed for engine errors on the write path.
    fn fail(&self, e: StoreError) -> StoreError {
        if matches!(e, StoreError::Backend(_) | StoreError::Corrupt(_)) {
            self.failed.store(true, Ordering::Release);
        }
        e
    }

    /// Commits `txn` if `res` is `Ok`, aborts it otherwise.
    fn finish<T>(
        &self,
        txn: WriteTransaction,
        res: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match res {
            Ok(v) => {
                txn.commit().map_err(|e| self.fail(backend(e)))?;
                Ok(v)
            }
            Err(e) => {
                let e = self.fail(e);
                if let Err(abort) = txn.abort() {
                    return Err(self.fail(backend(abort)));
                }
                Err(e)
            }
        }
    }
}

fn open_error(e: DatabaseError, dir: &Path) -> StoreError {
    let path = dir.to_path_buf();
    match e {
        DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path },
        DatabaseError::Storage(StorageError::Io(io)) if is_read_only(io.kind()) => {
            StoreError::ReadOnly { path }
        }
        other => backend(other),
    }
}

fn read_size(r: &ReadTransaction) -> Result<u64, StoreError> {
    let state = r.open_table(STATE).map_err(backend)?;
    let v = state.get(STATE_SIZE).map_err(backend)?;
    match v {
        None => Ok(0),
        Some(v) => decode_u64(v.value(), "the size counter"),
    }
}

impl MetaStore for RedbStore {
    fn meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.begin_read()?;
        let t = r.open_table(META).map_err(backend)?;
        Ok(t.get(key).map_err(backend)?.map(|v| v.value().to_vec()))
    }
}

impl LogStore for RedbStore {
    fn size(&self) -> Result<u64, StoreError> {
        read_size(&self.begin_read()?)
    }

    fn commit_batch(&self, batch: Batch) -> Result<(), StoreError> {
        let end = check_batch_shape(&batch)?;
        let txn = self.begin_write()?;
        let res = (|| {
            let mut state = txn.open_table(STATE).map_err(backend)?;
            let size = match state.get(STATE_SIZE).map_err(backend)? {
                None => 0,
                Some(v) => decode_u64(v.value(), "the size counter")?,
            };
            // SPEC R-STORE-3: the batch extends the log exactly.
            if batch.first_index != size {
                return Err(StoreError::Conflict {
                    expected: size,
                    actual: batch.first_index,
                });
            }
            let mut entries = txn.open_table(ENTRIES).map_err(backend)?;
            let mut nullifiers = txn.open_table(NULLIFIERS).map_err(backend)?;
            for (position, (index, entry)) in (size..end).zip(&batch.entries).enumerate() {
                if entries
                    .insert(index, entry.data.as_slice())
                    .map_err(backend)?
                    .is_some()
                {
                    return Err(StoreError::Corrupt(format!(
                        "entry {index} exists beyond the size counter"
                    )));
                }
                if let Some(n) = &entry.nullifier {
                    // SPEC R-STORE-3 / I1: one spend per nullifier, also within the batch.
                    if nullifiers.insert(&n.0, index).map_err(backend)?.is_some() {
                        return Err(StoreError::DuplicateNullifier { position });
                    }
                }
            }
            let mut hashes = txn.open_table(HASHES).map_err(backend)?;
            for h in &batch.hashes {
                let changed = hashes
                    .insert((h.level, h.index), &h.hash.0)
                    .map_err(backend)?
                    .is_some_and(|old| *old.value() != h.hash.0);
                if changed {
                    return Err(StoreError::HashMismatch {
                        level: h.level,
                        index: h.index,
                    });
                }
            }
            state
                .insert(STATE_SIZE, end.to_be_bytes().as_slice())
                .map_err(backend)?;
            state
                .insert(STATE_CHECKPOINT, batch.checkpoint.as_slice())
                .map_err(backend)?;
            let mut meta = txn.open_table(META).map_err(backend)?;
            for (k, v) in &batch.meta {
                match v {
                    Some(v) => meta.insert(k.as_slice(), v.as_slice()).map_err(backend)?,
                    None => meta.remove(k.as_slice()).map_err(backend)?,
                };
            }
            Ok(())
        })();
        self.finish(txn, res)
    }

    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.begin_read()?;
        let t = r.open_table(ENTRIES).map_err(backend)?;
        Ok(t.get(index).map_err(backend)?.map(|v| v.value().to_vec()))
    }

    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let r = self.begin_read()?;
        let size = read_size(&r)?;
        if start > end || end > size {
            return Err(StoreError::OutOfRange { start, end, size });
        }
        let t = r.open_table(ENTRIES).map_err(backend)?;
        let mut out = Vec::new();
        for (expected, item) in (start..end).zip(t.range(start..end).map_err(backend)?) {
            let (k, v) = item.map_err(backend)?;
            if k.value() != expected {
                return Err(StoreError::Corrupt(format!("entry {expected} is missing")));
            }
            out.push(v.value().to_vec());
        }
        if out.len() as u64 != end - start {
            return Err(StoreError::Corrupt(format!(
                "entries {start}..{end} are incomplete"
            )));
        }
        Ok(out)
    }

    fn hash(&self, level: u8, index: u64) -> Result<Option<Hash>, StoreError> {
        let r = self.begin_read()?;
        let t = r.open_table(HASHES).map_err(backend)?;
        Ok(t.get((level, index))
            .map_err(backend)?
            .map(|v| Hash(*v.value())))
    }

    fn hashes(&self, level: u8, start: u64, end: u64) -> Result<Vec<Hash>, StoreError> {
        if start > end {
            return Err(StoreError::OutOfRange {
                start,
                end,
                size: self.size()?,
            });
        }
        let r = self.begin_read()?;
        let t = r.open_table(HASHES).map_err(backend)?;
        let found = t.range((level, start)..(level, end)).map_err(backend)?;
        contiguous_hashes(
            level,
            start,
            end,
            found.map(|item| {
                let (k, v) = item.map_err(backend)?;
                Ok((k.value().1, *v.value()))
            }),
        )
    }

    fn nullifier_index(&self, nullifier: &Nullifier) -> Result<Option<u64>, StoreError> {
        let r = self.begin_read()?;
        let t = r.open_table(NULLIFIERS).map_err(backend)?;
        Ok(t.get(&nullifier.0).map_err(backend)?.map(|v| v.value()))
    }

    fn checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.begin_read()?;
        let t = r.open_table(STATE).map_err(backend)?;
        Ok(t.get(STATE_CHECKPOINT)
            .map_err(backend)?
            .map(|v| v.value().to_vec()))
    }
}

impl IssuerStore for RedbStore {
    fn issue(&self, txn_spec: IssueTxn) -> Result<(), StoreError> {
        // Encode keys first: a bad set name fails before the write lock.
        let takes = txn_spec
            .take
            .iter()
            .map(|(s, m)| mark_key(s, m))
            .collect::<Result<Vec<_>, _>>()?;
        let inserts = txn_spec
            .insert
            .iter()
            .map(|(s, m)| mark_key(s, m))
            .collect::<Result<Vec<_>, _>>()?;
        let absent = txn_spec
            .absent
            .iter()
            .map(|(s, m)| mark_key(s, m))
            .collect::<Result<Vec<_>, _>>()?;
        let txn = self.begin_write()?;
        let res = (|| {
            let mut marks = txn.open_table(MARKS).map_err(backend)?;
            // SPEC R-STORE-5: absent marks and inserts must not exist,
            // takes must.
            for (position, k) in absent.iter().enumerate() {
                if marks.get(k.as_slice()).map_err(backend)?.is_some() {
                    return Err(StoreError::MarkPresent { position });
                }
            }
            for (position, k) in takes.iter().enumerate() {
                if marks.remove(k.as_slice()).map_err(backend)?.is_none() {
                    return Err(StoreError::MarkMissing { position });
                }
            }
            for (position, k) in inserts.iter().enumerate() {
                if marks.insert(k.as_slice(), ()).map_err(backend)?.is_some() {
                    return Err(StoreError::MarkExists { position });
                }
            }
            let mut meta = txn.open_table(META).map_err(backend)?;
            for (k, v) in &txn_spec.put {
                meta.insert(k.as_slice(), v.as_slice()).map_err(backend)?;
            }
            for k in &txn_spec.delete {
                meta.remove(k.as_slice()).map_err(backend)?;
            }
            for (k, by) in &txn_spec.increment {
                let next = {
                    let cur = meta.get(k.as_slice()).map_err(backend)?;
                    incremented(cur.as_ref().map(|v| v.value()), *by)?
                };
                meta.insert(k.as_slice(), next.as_slice())
                    .map_err(backend)?;
            }
            Ok(())
        })();
        self.finish(txn, res)
    }

    fn contains_mark(&self, set: &[u8], mark: &Mark) -> Result<bool, StoreError> {
        let k = mark_key(set, mark)?;
        let r = self.begin_read()?;
        let t = r.open_table(MARKS).map_err(backend)?;
        Ok(t.get(k.as_slice()).map_err(backend)?.is_some())
    }

    fn add_marks(&self, set: &[u8], marks: &[Mark]) -> Result<u64, StoreError> {
        let keys = marks
            .iter()
            .map(|m| mark_key(set, m))
            .collect::<Result<Vec<_>, _>>()?;
        let txn = self.begin_write()?;
        let res = (|| {
            let mut t = txn.open_table(MARKS).map_err(backend)?;
            let mut added = 0u64;
            for k in &keys {
                if t.insert(k.as_slice(), ()).map_err(backend)?.is_none() {
                    added += 1;
                }
            }
            Ok(added)
        })();
        self.finish(txn, res)
    }

    fn mark_counts(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, u64)>, StoreError> {
        let prefixes = set_prefixes(prefix)?;
        // SPEC R-STORE-8: one read transaction, one snapshot.
        let r = self.begin_read()?;
        let t = r.open_table(MARKS).map_err(backend)?;
        let mut counts = SetCounts::default();
        for lo in prefixes {
            // Every key starting with `lo` (at most 1 + 255 + 32 bytes) sorts
            // between `lo` and `lo ‖ 0xff…`.
            let mut hi = lo.clone();
            hi.extend_from_slice(&[0xffu8; 1 + super::MAX_SET_NAME_LEN + 32]);
            for item in t.range(lo.as_slice()..=hi.as_slice()).map_err(backend)? {
                let (k, _) = item.map_err(backend)?;
                let k = k.value();
                if k.starts_with(&lo) {
                    counts.add(k)?;
                }
            }
        }
        Ok(counts.finish())
    }

    fn drop_set(&self, set: &[u8], delete_meta: &[&[u8]]) -> Result<u64, StoreError> {
        let prefix = set_prefix(set)?;
        let mut lo = prefix.clone();
        lo.extend_from_slice(&[0u8; 32]);
        let mut hi = prefix;
        hi.extend_from_slice(&[0xffu8; 32]);
        let txn = self.begin_write()?;
        let res = (|| {
            let mut t = txn.open_table(MARKS).map_err(backend)?;
            let mut removed = 0u64;
            for item in t
                .extract_from_if(lo.as_slice()..=hi.as_slice(), |_, _| true)
                .map_err(backend)?
            {
                item.map_err(backend)?;
                removed += 1;
            }
            drop(t);
            let mut meta = txn.open_table(META).map_err(backend)?;
            for k in delete_meta {
                meta.remove(*k).map_err(backend)?;
            }
            Ok(removed)
        })();
        self.finish(txn, res)
    }
}
