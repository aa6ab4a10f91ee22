//! The conformance suite of the [`Store`] contract, for every backend: each
//! case is a public function of a [`Fixture`] (a factory of fresh stores),
//! so that a backend outside this crate runs the same cases as redb and
//! sled. Compiled for this crate's own tests and, for other crates, with the
//! `conformance` feature of `pledge-server`.
//!
//! A backend runs the whole suite, one `#[test]` per case, with
//! [`store_conformance!`](crate::store_conformance):
//!
//! ```ignore
//! use pledge_server::store::conformance::Fixture;
//! use pledge_server::store::{Store, StoreError};
//!
//! /// Each place is a fresh, empty database.
//! struct Postgres;
//!
//! impl Fixture for Postgres {
//!     type Place = TestDatabase; // dropped at the end of a case: clean up there
//!     fn place(&self) -> TestDatabase {
//!         TestDatabase::create()
//!     }
//!     fn open(&self, db: &TestDatabase) -> Result<Arc<dyn Store>, StoreError> {
//!         Ok(Arc::new(PostgresStore::connect(db.url())?))
//!     }
//! }
//!
//! pledge_server::store_conformance!(on_postgres, Postgres);
//! // Or, where the database is not always there:
//! pledge_server::store_conformance!(
//!     #[ignore = "needs a PostgreSQL server"] on_postgres, Postgres
//! );
//! ```
//!
//! redb and sled run it through [`Embedded`] (modules `on_redb` and
//! `on_sled` of this module's tests). What only an embedded store has (its
//! files, their modes, the folder lock, a read-only folder, damage done with
//! the engine itself) is checked in this module's `embedded` tests.
//!
//! A new case is a public function here, added to the list in
//! [`store_conformance!`](crate::store_conformance).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use pledge_protocol::hash::{Hash, Nullifier, sha256};

use super::{
    Backend, Batch, BatchEntry, IssueTxn, Mark, Store, StoreError, StoredHash, open_store,
};

#[cfg(test)]
mod embedded;

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// What the suite needs of a backend: fresh stores, and opening one again.
pub trait Fixture {
    /// Where one store lives (a temporary folder, a fresh database): made by
    /// [`Fixture::place`], dropped at the end of the case that made it.
    type Place;

    /// A new place that holds no store yet. A case calls it once per store
    /// it uses.
    fn place(&self) -> Self::Place;

    /// Opens the store at `place`, creating it on the first call. A case
    /// opens a place again only after dropping every handle of the previous
    /// open, and expects everything committed before to be there.
    ///
    /// # Errors
    /// Whatever the backend refuses the open with.
    fn open(&self, place: &Self::Place) -> Result<Arc<dyn Store>, StoreError>;
}

/// The embedded backends ([`Backend`]): each place is a fresh temporary data
/// folder, removed when the case ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Embedded(pub Backend);

impl Fixture for Embedded {
    type Place = tempfile::TempDir;

    fn place(&self) -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn open(&self, place: &tempfile::TempDir) -> Result<Arc<dyn Store>, StoreError> {
        open_store(self.0, place.path())
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn open<F: Fixture>(f: &F, place: &F::Place) -> Arc<dyn Store> {
    f.open(place).unwrap_or_else(|e| panic!("open: {e}"))
}

fn nul(i: u64) -> Nullifier {
    Nullifier(sha256(&[b"test-nullifier", &i.to_be_bytes()]))
}

fn leaf(data: &[u8]) -> Hash {
    Hash(sha256(&[&[0u8], data]))
}

fn data(i: u64) -> Vec<u8> {
    format!("entry-{i}").into_bytes()
}

fn checkpoint_for(size: u64) -> Vec<u8> {
    format!("example.org/test\n{size}\nroot\n").into_bytes()
}

fn checkpoint_size(cp: &[u8]) -> u64 {
    let text = std::str::from_utf8(cp).unwrap();
    text.lines().nth(1).unwrap().parse().unwrap()
}

/// A batch of entries `first..first + n`, each spending `nul(i)`, with their
/// level-0 hashes, the matching checkpoint and one metadata write.
fn batch(first: u64, n: u64) -> Batch {
    let end = first + n;
    Batch {
        first_index: first,
        entries: (first..end)
            .map(|i| BatchEntry {
                data: data(i),
                nullifier: Some(nul(i)),
            })
            .collect(),
        hashes: (first..end)
            .map(|i| StoredHash {
                level: 0,
                index: i,
                hash: leaf(&data(i)),
            })
            .collect(),
        checkpoint: checkpoint_for(end),
        meta: vec![(b"tally/last".to_vec(), Some(end.to_be_bytes().to_vec()))],
    }
}

fn mark(i: u8) -> Mark {
    Mark([i; 32])
}

/// Everything observable about a store, for "nothing was written" checks.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    size: u64,
    entries: Vec<Vec<u8>>,
    checkpoint: Option<Vec<u8>>,
    hashes: BTreeMap<(u8, u64), Option<Hash>>,
    nullifiers: BTreeMap<u64, Option<u64>>,
    meta: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    marks: BTreeMap<(Vec<u8>, u8), bool>,
}

const PROBE_META: &[&[u8]] = &[
    b"tally/last",
    b"k1",
    b"k2",
    b"issuer/key/c1",
    b"count/c1",
    b"extra",
];
const PROBE_SETS: &[&[u8]] = &[b"invite", b"person/c1", b"person/c1x", b"person/c2"];

fn snapshot(s: &dyn Store) -> Snapshot {
    let size = s.size().unwrap();
    let mut hashes = BTreeMap::new();
    for level in 0..3u8 {
        for i in 0..size + 8 {
            hashes.insert((level, i), s.hash(level, i).unwrap());
        }
    }
    Snapshot {
        size,
        entries: s.entries(0, size).unwrap(),
        checkpoint: s.checkpoint().unwrap(),
        hashes,
        nullifiers: (0..size + 8)
            .map(|i| (i, s.nullifier_index(&nul(i)).unwrap()))
            .collect(),
        meta: PROBE_META
            .iter()
            .map(|k| (k.to_vec(), s.meta(k).unwrap()))
            .collect(),
        marks: PROBE_SETS
            .iter()
            .flat_map(|set| (0..8u8).map(move |m| (set.to_vec(), m)))
            .map(|(set, m)| {
                let has = s.contains_mark(&set, &mark(m)).unwrap();
                ((set, m), has)
            })
            .collect(),
    }
}

// ---------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------

/// A fresh store has no entry, checkpoint, metadata or counter.
pub fn fresh_store_is_empty<F: Fixture>(f: &F) {
    let place = f.place();
    let s = open(f, &place);
    assert_eq!(s.size().unwrap(), 0);
    assert_eq!(s.checkpoint().unwrap(), None);
    assert_eq!(s.entry(0).unwrap(), None);
    assert_eq!(s.entries(0, 0).unwrap(), Vec::<Vec<u8>>::new());
    assert_eq!(s.meta(b"k1").unwrap(), None);
    assert_eq!(s.counter(b"count/c1").unwrap(), 0);
}

/// Batches append at the size in order; entries, nullifiers, level-0 hashes,
/// checkpoint and metadata are readable after the commit.
pub fn sequence_numbers_are_assigned_in_order<F: Fixture>(f: &F) {
    let place = f.place();
    let s = open(f, &place);
    s.commit_batch(batch(0, 3)).unwrap();
    s.commit_batch(batch(3, 1)).unwrap();
    s.commit_batch(batch(4, 5)).unwrap();
    assert_eq!(s.size().unwrap(), 9);
    for i in 0..9 {
        assert_eq!(s.entry(i).unwrap(), Some(data(i)), "entry {i}");
        assert_eq!(
            s.nullifier_index(&nul(i)).unwrap(),
            Some(i),
            "nullifier {i}"
        );
        assert_eq!(s.hash(0, i).unwrap(), Some(leaf(&data(i))));
    }
    assert_eq!(s.entry(9).unwrap(), None);
    assert_eq!(s.nullifier_index(&nul(9)).unwrap(), None);
    assert_eq!(s.checkpoint().unwrap(), Some(checkpoint_for(9)));
    assert_eq!(
        s.meta(b"tally/last").unwrap(),
        Some(9u64.to_be_bytes().to_vec())
    );

    // Entries without a nullifier (amendments, campaign events) are logged too.
    let mut b2 = batch(9, 2);
    b2.entries[0].nullifier = None;
    s.commit_batch(b2).unwrap();
    assert_eq!(s.size().unwrap(), 11);
    assert_eq!(s.nullifier_index(&nul(9)).unwrap(), None);
    assert_eq!(s.nullifier_index(&nul(10)).unwrap(), Some(10));
}

/// A batch without entries still writes its hashes, checkpoint and metadata.
pub fn empty_batch_updates_checkpoint_and_meta<F: Fixture>(f: &F) {
    let place = f.place();
    let s = open(f, &place);
    s.commit_batch(batch(0, 2)).unwrap();
    let empty = Batch {
        first_index: 2,
        entries: vec![],
        hashes: vec![StoredHash {
            level: 1,
            index: 0,
            hash: Hash([9; 32]),
        }],
        checkpoint: b"re-signed".to_vec(),
        meta: vec![
            (b"k1".to_vec(), Some(b"v1".to_vec())),
            (b"tally/last".to_vec(), None),
        ],
    };
    s.commit_batch(empty).unwrap();
    assert_eq!(s.size().unwrap(), 2);
    assert_eq!(s.checkpoint().unwrap(), Some(b"re-signed".to_vec()));
    assert_eq!(s.hash(1, 0).unwrap(), Some(Hash([9; 32])));
    assert_eq!(s.meta(b"k1").unwrap(), Some(b"v1".to_vec()));
    assert_eq!(s.meta(b"tally/last").unwrap(), None);
}

/// A batch's metadata writes apply in order: of several writes of one key,
/// the last one stands (a put after a delete, a delete after a put).
pub fn batch_meta_writes_apply_in_order<F: Fixture>(f: &F) {
    let place = f.place();
    let s = open(f, &place);
    let mut b = batch(0, 1);
    b.meta = vec![
        (b"gone".to_vec(), Some(b"first".to_vec())),
        (b"kept".to_vec(), None),
        (b"twice".to_vec(), Some(b"1".to_vec())),
        (b"gone".to_vec(), None),
        (b"kept".to_vec(), Some(b"back".to_vec())),
        (b"twice".to_vec(), Some(b"2".to_vec())),
    ];
    s.commit_batch(b).unwrap();
    assert_eq!(s.meta(b"gone").unwrap(), None);
    assert_eq!(s.meta(b"kept").unwrap(), Some(b"back".to_vec()));
    assert_eq!(s.meta(b"twice").unwrap(), Some(b"2".to_vec()));
}

/// A batch not starting at the size is a `Conflict` and writes nothing.
pub fn wrong_first_index_is_a_conflict<F: Fixture>(f: &F) {
    let place = f.place();
    let s = open(f, &place);
    match s.commit_batch(batch(1, 2)) {
        Err(StoreError::Conflict {
            expected: 0,
            actual: 1,
        }) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(s.size().unwrap(), 0);
    assert_eq!(s.checkpoint().unwrap(), None);
    s.commit_batch(batch(0, 4)).unwrap();
    let before = snapshot(&*s);
    for first in [0, 3, 5, 100] {
        match s.commit_batch(batch(first, 1)) {
            Err(StoreError::Conflict {
                expected: 4,
                actual,
            }) => assert_eq!(actual, first),
            other => panic!("expected Conflict at {first}, got {other:?}"),
        }
    }
    assert_eq!(snapshot(&*s), before);
}

/// A batch spending a nullifier already in the store is refused whole.
pub fn duplicate_nullifier_in_store_is_refused_whole<F: Fixture>(f: &F) {
    let place = f.place();
    let s = open(f, &place);
    s.commit_batch(batch(0, 3)).unwrap();
    let before = snapshot(&*s);
    let mut dup = batch(3, 4);
    dup.entries[2].nullifier = Some(nul(1)); // spent at index 1
    dup.meta.push((b"extra".to_vec(), Some(b"x".to_vec())));
    match s.commit_batch(dup) {
        Err(StoreError::DuplicateNullifier { position: 2 }) => {}
        other => panic!("expected DuplicateNullifier at 2, got {other:?}"),
    }
    let after = snapshot(&*s);
    assert_eq!(after, before);
    // Spot checks that the snapshot covers what the refused batch carried.
    assert_eq!(after.nullifiers[&3], None);
    assert_eq!(after.hashes[&(0, 3)], None);
    assert_eq!(after.meta[b"extra".as_slice()], None);
    assert_eq!(s.nullifier_index(&nul(1)).unwrap(), Some(1));
    // The same batch without the duplicate goes through at the same index.
    s.commit_batch(batch(3, 4)).unwrap();
    assert_eq!(s.size().unwrap(), 7);
}

/// A batch spending one nullifier twice is refused whole.
pub fn duplicate_nullifier_within_batch_is_refused_whole<F: Fixture>(f: &F) {
    let place = f.place();
    let s = open(f, &place);
    s.commit_batch(batch(0, 1)).unwrap();
    let before = snapshot(&*s);
    let mut dup = batch(1, 3);
    dup.entries[2].nullifier = dup.entries[0].nullifier;
    match s.commit_batch(dup) {
        Err(StoreError::DuplicateNullifier { position: 2 }) => {}
        other => panic!("expected DuplicateNullifier at 2, got {other:?}"),
    }
    assert_eq!(snapshot(&*s), before);
}

/// A stored hash can be written again with its value, never changed.
pub fn stored_hashes_are_append_only<F: Fixture>(f: &F) {
    let place = f.place();
    let s = open(f, &place);
    s.commit_batch(batch(0, 2)).unwrap();
    // Rewriting a hash with the same value is fine (a re-sent partial tile).
    let mut same = batch(2, 1);
    same.hashes.push(StoredHash {
        level: 0,
        index: 1,
        hash: leaf(&data(1)),
    });
    s.commit_batch(same).unwrap();
    let before = snapshot(&*s);
    let mut changed = batch(3, 1);
    changed.hashes.push(StoredHash {
        level: 0,
        index: 0,
        hash: Hash([0xee; 32]),
    });
    match s.commit_batch(changed) {
        Err(StoreError::HashMismatch { level: 0, index: 0 }) => {}
        other => panic!("expected HashMismatch, got {other:?}"),
    }
    assert_eq!(snapshot(&*s), before);
    // Two values for one new node within a batch: the second is refused.
    let mut twice = batch(3, 1);
    for byte in [0x11, 0x22] {
        twice.hashes.push(StoredHash {
            level: 5,
            index: 0,
            hash: Hash([byte; 32]),
        });
    }
    match s.commit_batch(twice) {
        Err(StoreError::HashMismatch { level: 5, index: 0 }) => {}
        other => panic!("expected HashMismatch, got {other:?}"),
    }
    assert_eq!(snapshot(&*s), before);
}

/// Malformed batches are `Invalid` and leave the handle usable.
pub fn malformed_batches_are_invalid<F: Fixture>(f: &F) {
    let place = f.place();
    let s = open(f, &place);
    let mut no_cp = batch(0, 1);
    no_cp.checkpoint.clear();
    assert!(matches!(s.commit_batch(no_cp), Err(StoreError::Invalid(_))));
    let mut overflow = batch(0, 2);
    overflow.first_index = u64::MAX;
    assert!(matches!(
        s.commit_batch(overflow),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(s.size().unwrap(), 0);
    assert_eq!(s.checkpoint().unwrap(), None);
    // The store still works after refusals (they do not fail the handle).
    s.commit_batch(batch(0, 1)).unwrap();
}

/// Entry ranges inside the size are served; others are `OutOfRange`.
pub fn entry_ranges_and_bounds<F: Fixture>(f: &F) {
    let place = f.place();
    let s = open(f, &place);
    s.commit_batch(batch(0, 10)).unwrap();
    assert_eq!(s.entries(2, 5).unwrap(), vec![data(2), data(3), data(4)]);
    assert_eq!(
        s.entries(0, 10).unwrap(),
        (0..10).map(data).collect::<Vec<_>>()
    );
    assert_eq!(s.entries(9, 10).unwrap(), vec![data(9)]);
    assert!(s.entries(10, 10).unwrap().is_empty());
    assert!(s.entries(4, 4).unwrap().is_empty());
    for (start, end) in [(0, 11), (5, 4), (10, 11), (11, 12), (0, u64::MAX)] {
        match s.entries(start, end) {
            Err(StoreError::OutOfRange {
                start: s0,
                end: e0,
                size: 10,
            }) => assert_eq!((s0, e0), (start, end)),
            other => panic!("entries({start}, {end}): expected OutOfRange, got {other:?}"),
        }
    }
    assert_eq!(s.entry(10).unwrap(), None);
    assert_eq!(s.entry(u64::MAX).unwrap(), None);
}

/// Hash ranges by level; a missing one is `MissingHash`, levels kept apart.
pub fn hash_ranges<F: Fixture>(f: &F) {
    let place = f.place();
    let s = open(f, &place);
    let mut b0 = batch(0, 4);
    // Level-1 nodes 0 and 1 over the four leaves, and level 2 node 0.
    for (level, index) in [(1u8, 0u64), (1, 1), (2, 0)] {
        b0.hashes.push(StoredHash {
            level,
            index,
            hash: Hash([level * 16 + index as u8; 32]),
        });
    }
    s.commit_batch(b0).unwrap();
    assert_eq!(
        s.hashes(0, 0, 4).unwrap(),
        (0..4).map(|i| leaf(&data(i))).collect::<Vec<_>>()
    );
    assert_eq!(
        s.hashes(1, 0, 2).unwrap(),
        vec![Hash([16; 32]), Hash([17; 32])]
    );
    assert_eq!(s.hashes(2, 0, 1).unwrap(), vec![Hash([32; 32])]);
    assert!(s.hashes(0, 3, 3).unwrap().is_empty());
    // Levels do not bleed into each other.
    match s.hashes(1, 0, 3) {
        Err(StoreError::MissingHash { level: 1, index: 2 }) => {}
        other => panic!("expected MissingHash(1, 2), got {other:?}"),
    }
    match s.hashes(0, 2, 6) {
        Err(StoreError::MissingHash { level: 0, index: 4 }) => {}
        other => panic!("expected MissingHash(0, 4), got {other:?}"),
    }
    match s.hashes(3, 0, 1) {
        Err(StoreError::MissingHash { level: 3, index: 0 }) => {}
        other => panic!("expected MissingHash(3, 0), got {other:?}"),
    }
    assert!(matches!(
        s.hashes(0, 2, 1),
        Err(StoreError::OutOfRange { .. })
    ));
    assert_eq!(s.hash(1, 1).unwrap(), Some(Hash([17; 32])));
    assert_eq!(s.hash(1, 2).unwrap(), None);
    assert_eq!(s.hash(0, u64::MAX).unwrap(), None);
}

/// Everything committed is there after a reopen, and the store goes on.
pub fn reopen_preserves_everything<F: Fixture>(f: &F) {
    let place = f.place();
    let before = {
        let s = open(f, &place);
        s.commit_batch(batch(0, 5)).unwrap();
        s.commit_batch(batch(5, 2)).unwrap();
        s.add_marks(b"invite", &[mark(1), mark(2), mark(3)])
            .unwrap();
        s.issue(IssueTxn {
            take: vec![(b"invite".to_vec(), mark(2))],
            insert: vec![(b"person/c1".to_vec(), mark(5))],
            put: vec![(b"issuer/key/c1".to_vec(), b"der".to_vec())],
            increment: vec![(b"count/c1".to_vec(), 1)],
            ..IssueTxn::default()
        })
        .unwrap();
        snapshot(&*s)
        // `s` (the only handle) drops here.
    };
    assert_eq!(before.size, 7);
    let s = open(f, &place);
    assert_eq!(snapshot(&*s), before);
    assert_eq!(s.counter(b"count/c1").unwrap(), 1);
    // And the reopened store keeps working from where it was.
    s.commit_batch(batch(7, 1)).unwrap();
    assert!(matches!(
        s.commit_batch(batch(8, 1).tap_nullifier(0, nul(3))),
        Err(StoreError::DuplicateNullifier { position: 0 })
    ));
    drop(s);
    let s = open(f, &place);
    assert_eq!(s.size().unwrap(), 8);
    assert_eq!(s.checkpoint().unwrap(), Some(checkpoint_for(8)));
}

trait TapNullifier {
    fn tap_nullifier(self, position: usize, n: Nullifier) -> Self;
}

impl TapNullifier for Batch {
    fn tap_nullifier(mut self, position: usize, n: Nullifier) -> Self {
        self.entries[position].nullifier = Some(n);
        self
    }
}

/// An issue transaction applies its takes, inserts, puts, deletes and
/// increments together.
pub fn issue_applies_everything_on_success<F: Fixture>(f: &F) {
    let place = f.place();
    let s = open(f, &place);
    assert_eq!(s.add_marks(b"invite", &[mark(1), mark(2)]).unwrap(), 2);
    s.issue(IssueTxn {
        put: vec![
            (b"k1".to_vec(), b"old".to_vec()),
            (b"k2".to_vec(), b"v2".to_vec()),
        ],
        ..IssueTxn::default()
    })
    .unwrap();
    s.issue(IssueTxn {
        absent: vec![(b"closing".to_vec(), mark(9))],
        take: vec![(b"invite".to_vec(), mark(1))],
        insert: vec![
            (b"person/c1".to_vec(), mark(7)),
            (b"person/c2".to_vec(), mark(7)),
        ],
        put: vec![(b"k1".to_vec(), b"new".to_vec())],
        delete: vec![b"k2".to_vec(), b"absent".to_vec()],
        increment: vec![(b"count/c1".to_vec(), 2), (b"count/c1".to_vec(), 3)],
    })
    .unwrap();
    assert!(!s.contains_mark(b"invite", &mark(1)).unwrap());
    assert!(s.contains_mark(b"invite", &mark(2)).unwrap());
    assert!(s.contains_mark(b"person/c1", &mark(7)).unwrap());
    assert!(s.contains_mark(b"person/c2", &mark(7)).unwrap());
    assert!(!s.contains_mark(b"person/c1x", &mark(7)).unwrap());
    assert_eq!(s.meta(b"k1").unwrap(), Some(b"new".to_vec()));
    assert_eq!(s.meta(b"k2").unwrap(), None);
    assert_eq!(s.counter(b"count/c1").unwrap(), 5);
    // An invite code is single use.
    match s.issue(IssueTxn {
        take: vec![(b"invite".to_vec(), mark(1))],
        ..IssueTxn::default()
    }) {
        Err(StoreError::MarkMissing { position: 0 }) => {}
        other => panic!("expected MarkMissing, got {other:?}"),
    }
}

/// A refused issue transaction applies nothing of what it carried.
pub fn issue_failure_applies_nothing<F: Fixture>(f: &F) {
    let place = f.place();
    let s = open(f, &place);
    s.add_marks(b"invite", &[mark(1), mark(2)]).unwrap();
    s.issue(IssueTxn {
        insert: vec![(b"person/c1".to_vec(), mark(3))],
        put: vec![(b"k2".to_vec(), b"keep".to_vec())],
        increment: vec![(b"count/c1".to_vec(), 1)],
        ..IssueTxn::default()
    })
    .unwrap();
    let before = snapshot(&*s);
    s.add_marks(b"closing", &[mark(8)]).unwrap();
    let full = |take: Vec<(Vec<u8>, Mark)>, insert: Vec<(Vec<u8>, Mark)>| IssueTxn {
        absent: vec![(b"closing".to_vec(), mark(9))],
        take,
        insert,
        put: vec![(b"k1".to_vec(), b"v".to_vec())],
        delete: vec![b"k2".to_vec()],
        increment: vec![(b"count/c1".to_vec(), 1)],
    };
    type Case = (IssueTxn, fn(&StoreError) -> bool);
    let cases: Vec<Case> = vec![
        // Second take is missing: the first (present) one must stay.
        (
            full(
                vec![(b"invite".to_vec(), mark(1)), (b"invite".to_vec(), mark(6))],
                vec![(b"person/c2".to_vec(), mark(4))],
            ),
            |e| matches!(e, StoreError::MarkMissing { position: 1 }),
        ),
        // The same invite code twice in one transaction.
        (
            full(
                vec![(b"invite".to_vec(), mark(2)), (b"invite".to_vec(), mark(2))],
                vec![],
            ),
            |e| matches!(e, StoreError::MarkMissing { position: 1 }),
        ),
        // Last insert exists: the takes and earlier inserts must not apply.
        (
            full(
                vec![(b"invite".to_vec(), mark(1))],
                vec![
                    (b"person/c2".to_vec(), mark(4)),
                    (b"person/c1".to_vec(), mark(3)),
                ],
            ),
            |e| matches!(e, StoreError::MarkExists { position: 1 }),
        ),
        // The same person twice in one transaction.
        (
            full(
                vec![],
                vec![
                    (b"person/c2".to_vec(), mark(4)),
                    (b"person/c2".to_vec(), mark(4)),
                ],
            ),
            |e| matches!(e, StoreError::MarkExists { position: 1 }),
        ),
        // A set name that is too long.
        (full(vec![], vec![(vec![b'x'; 256], mark(4))]), |e| {
            matches!(e, StoreError::Invalid(_))
        }),
        // A mark that must be absent is present (the second of two): the
        // takes and inserts that would succeed must not apply.
        (
            IssueTxn {
                absent: vec![
                    (b"closing".to_vec(), mark(9)),
                    (b"closing".to_vec(), mark(8)),
                ],
                ..full(
                    vec![(b"invite".to_vec(), mark(1))],
                    vec![(b"person/c2".to_vec(), mark(4))],
                )
            },
            |e| matches!(e, StoreError::MarkPresent { position: 1 }),
        ),
    ];
    for (i, (txn, ok)) in cases.into_iter().enumerate() {
        match s.issue(txn) {
            Err(e) if ok(&e) => {}
            other => panic!("case {i}: unexpected {other:?}"),
        }
        assert_eq!(snapshot(&*s), before, "case {i} wrote something");
        assert_eq!(s.counter(b"count/c1").unwrap(), 1, "case {i}");
    }
    // A counter that would overflow, or holds a value of the wrong width.
    s.issue(IssueTxn {
        put: vec![
            (b"count/max".to_vec(), u64::MAX.to_be_bytes().to_vec()),
            (b"count/bad".to_vec(), b"abc".to_vec()),
        ],
        ..IssueTxn::default()
    })
    .unwrap();
    let overflow = IssueTxn {
        insert: vec![(b"person/c2".to_vec(), mark(4))],
        increment: vec![(b"count/max".to_vec(), 1)],
        ..IssueTxn::default()
    };
    assert!(matches!(s.issue(overflow), Err(StoreError::Invalid(_))));
    assert!(!s.contains_mark(b"person/c2", &mark(4)).unwrap());
    assert!(matches!(
        s.counter(b"count/bad"),
        Err(StoreError::Corrupt(_))
    ));
    let bad = IssueTxn {
        insert: vec![(b"person/c2".to_vec(), mark(4))],
        increment: vec![(b"count/bad".to_vec(), 1)],
        ..IssueTxn::default()
    };
    assert!(matches!(s.issue(bad), Err(StoreError::Invalid(_))));
    assert!(!s.contains_mark(b"person/c2", &mark(4)).unwrap());
    // Refusals leave the handle usable.
    s.issue(IssueTxn {
        insert: vec![(b"person/c2".to_vec(), mark(4))],
        ..IssueTxn::default()
    })
    .unwrap();
}

/// Adding marks twice counts them once; over-long set names are `Invalid`.
pub fn add_marks_is_idempotent<F: Fixture>(f: &F) {
    let place = f.place();
    let s = open(f, &place);
    assert_eq!(s.add_marks(b"invite", &[mark(1), mark(2)]).unwrap(), 2);
    assert_eq!(
        s.add_marks(b"invite", &[mark(2), mark(3), mark(3)])
            .unwrap(),
        1
    );
    assert_eq!(s.add_marks(b"invite", &[]).unwrap(), 0);
    for m in 1..=3 {
        assert!(s.contains_mark(b"invite", &mark(m)).unwrap());
    }
    assert!(!s.contains_mark(b"invite", &mark(4)).unwrap());
    assert!(!s.contains_mark(b"other", &mark(1)).unwrap());
    assert!(matches!(
        s.add_marks(&[0u8; 300], &[mark(1)]),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.contains_mark(&[0u8; 300], &mark(1)),
        Err(StoreError::Invalid(_))
    ));
}

/// `drop_set` deletes one set and the keys named, nothing else, durably.
pub fn drop_set_deletes_the_set_and_keys_only<F: Fixture>(f: &F) {
    let place = f.place();
    {
        let s = open(f, &place);
        let all: Vec<Mark> = (0..8).map(mark).collect();
        s.add_marks(b"person/c1", &all).unwrap();
        s.add_marks(b"person/c1x", &all[..2]).unwrap(); // a set whose name extends c1's
        s.add_marks(b"person/c2", &all[..3]).unwrap();
        s.issue(IssueTxn {
            put: vec![
                (b"issuer/key/c1".to_vec(), b"secret-der".to_vec()),
                (b"count/c1".to_vec(), 8u64.to_be_bytes().to_vec()),
                (b"k1".to_vec(), b"kept".to_vec()),
            ],
            ..IssueTxn::default()
        })
        .unwrap();
        assert_eq!(
            s.drop_set(b"person/c1", &[b"issuer/key/c1".as_slice()])
                .unwrap(),
            8
        );
        for m in 0..8 {
            assert!(!s.contains_mark(b"person/c1", &mark(m)).unwrap());
        }
        assert_eq!(s.meta(b"issuer/key/c1").unwrap(), None);
        // Dropping again is a no-op.
        assert_eq!(
            s.drop_set(b"person/c1", &[b"issuer/key/c1".as_slice()])
                .unwrap(),
            0
        );
        // The set can be used afresh (a new campaign could reuse the name).
        s.add_marks(b"person/c1", &[mark(1)]).unwrap();
        assert_eq!(s.drop_set(b"person/c1", &[]).unwrap(), 1);
    }
    let s = open(f, &place);
    for m in 0..8 {
        assert!(!s.contains_mark(b"person/c1", &mark(m)).unwrap());
    }
    assert!(s.contains_mark(b"person/c1x", &mark(0)).unwrap());
    assert!(s.contains_mark(b"person/c1x", &mark(1)).unwrap());
    assert!(s.contains_mark(b"person/c2", &mark(2)).unwrap());
    assert_eq!(s.meta(b"issuer/key/c1").unwrap(), None);
    assert_eq!(s.counter(b"count/c1").unwrap(), 8);
    assert_eq!(s.meta(b"k1").unwrap(), Some(b"kept".to_vec()));
}

/// `mark_counts` counts the marks of every set under a prefix (SPEC
/// R-STORE-8): after adding marks (minted invite codes), after a take (a
/// code used), after a drop (revoked), the other sets untouched; sets whose
/// name extends another's, names at the 255-byte limit and 0xff bytes are
/// told apart; an empty prefix counts every set; counts survive a reopen.
pub fn mark_counts_count_each_set_by_prefix<F: Fixture>(f: &F) {
    let place = f.place();
    let long: Vec<u8> = [b"invite/".as_slice(), &[b'x'; 248]].concat();
    assert_eq!(long.len(), 255);
    {
        let s = open(f, &place);
        assert_eq!(s.mark_counts(b"invite/").unwrap(), []);
        assert_eq!(s.mark_counts(b"").unwrap(), []);
        let all: Vec<Mark> = (0..8).map(mark).collect();
        s.add_marks(b"invite/staff", &all[..3]).unwrap();
        s.add_marks(b"invite/night", &all[..2]).unwrap();
        s.add_marks(b"invite/st", &all[5..6]).unwrap(); // a name staff's extends
        s.add_marks(b"invites", &all[..1]).unwrap(); // not under "invite/"
        s.add_marks(b"issued/c1", &all).unwrap();
        s.add_marks(&long, &all[..4]).unwrap();
        let counts = |s: &Arc<dyn Store>, prefix: &[u8]| -> Vec<(Vec<u8>, u64)> {
            s.mark_counts(prefix).unwrap()
        };
        let invites = |staff: Option<u64>| {
            let mut v = vec![
                (long.clone(), 4),
                (b"invite/night".to_vec(), 2),
                (b"invite/st".to_vec(), 1),
            ];
            if let Some(n) = staff {
                v.push((b"invite/staff".to_vec(), n));
            }
            v.sort();
            v
        };
        // After minting.
        assert_eq!(counts(&s, b"invite/"), invites(Some(3)));
        assert_eq!(
            counts(&s, b"invite/st"),
            [(b"invite/st".to_vec(), 1), (b"invite/staff".to_vec(), 3)]
        );
        assert_eq!(counts(&s, b"invite/staff"), [(b"invite/staff".to_vec(), 3)]);
        assert_eq!(counts(&s, &long), [(long.clone(), 4)]);
        // After a code is used: one fewer in its set only.
        s.issue(IssueTxn {
            take: vec![(b"invite/staff".to_vec(), mark(1))],
            insert: vec![(b"issued/c2".to_vec(), mark(1))],
            ..IssueTxn::default()
        })
        .unwrap();
        assert_eq!(counts(&s, b"invite/"), invites(Some(2)));
        assert_eq!(
            counts(&s, b"issued/"),
            [(b"issued/c1".to_vec(), 8), (b"issued/c2".to_vec(), 1)]
        );
        // A refused take changes no count.
        assert!(matches!(
            s.issue(IssueTxn {
                take: vec![(b"invite/staff".to_vec(), mark(1))],
                ..IssueTxn::default()
            }),
            Err(StoreError::MarkMissing { position: 0 })
        ));
        assert_eq!(counts(&s, b"invite/"), invites(Some(2)));
        // After a revoke: the set is gone, the others untouched.
        assert_eq!(s.drop_set(b"invite/staff", &[]).unwrap(), 2);
        assert_eq!(counts(&s, b"invite/"), invites(None));
        // Every set.
        let mut every = invites(None);
        every.extend([
            (b"invites".to_vec(), 1),
            (b"issued/c1".to_vec(), 8),
            (b"issued/c2".to_vec(), 1),
        ]);
        every.sort();
        assert_eq!(counts(&s, b""), every);
        // 0xff bytes: a prefix without a successor.
        s.add_marks(&[0xff], &all[..1]).unwrap();
        s.add_marks(&[0xff, 0xff], &all[..2]).unwrap();
        s.add_marks(&[0xfe, 0xff], &all[..3]).unwrap();
        assert_eq!(
            counts(&s, &[0xff]),
            [(vec![0xff], 1), (vec![0xff, 0xff], 2)]
        );
        assert_eq!(counts(&s, &[0xfe]), [(vec![0xfe, 0xff], 3)]);
        assert!(matches!(
            s.mark_counts(&[0u8; 256]),
            Err(StoreError::Invalid(_))
        ));
    }
    let s = open(f, &place);
    let mut want = vec![
        (long.clone(), 4),
        (b"invite/night".to_vec(), 2),
        (b"invite/st".to_vec(), 1),
    ];
    want.sort();
    assert_eq!(s.mark_counts(b"invite/").unwrap(), want);
}

/// Concurrent issues racing on one mark: exactly one wins each race.
pub fn concurrent_issue_of_one_mark_has_one_winner<F: Fixture>(f: &F) {
    const THREADS: usize = 8;
    let place = f.place();
    let s = open(f, &place);
    s.add_marks(b"invite", &[mark(9)]).unwrap();
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let s = Arc::clone(&s);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                // Half the threads race on the same person, half on the same invite.
                let txn = if t % 2 == 0 {
                    IssueTxn {
                        insert: vec![(b"person/c1".to_vec(), mark(1))],
                        increment: vec![(b"count/c1".to_vec(), 1)],
                        ..IssueTxn::default()
                    }
                } else {
                    IssueTxn {
                        take: vec![(b"invite".to_vec(), mark(9))],
                        increment: vec![(b"count/invites".to_vec(), 1)],
                        ..IssueTxn::default()
                    }
                };
                (t % 2, s.issue(txn))
            })
        })
        .collect();
    let mut wins = [0usize; 2];
    for h in handles {
        match h.join().unwrap() {
            (k, Ok(())) => wins[k] += 1,
            (0, Err(StoreError::MarkExists { position: 0 })) => {}
            (1, Err(StoreError::MarkMissing { position: 0 })) => {}
            (k, Err(e)) => panic!("kind {k}: unexpected {e:?}"),
        }
    }
    assert_eq!(wins, [1, 1]);
    assert_eq!(s.counter(b"count/c1").unwrap(), 1);
    assert_eq!(s.counter(b"count/invites").unwrap(), 1);
}

/// R-STORE-5, the close of a campaign against issuances for it: a close
/// inserts the closing mark and touches the counter, an issuance requires
/// the mark absent and increments the counter. However they race, an
/// issuance that succeeded is in the counter read right after the close.
pub fn an_issuance_racing_a_close_is_counted_or_refused<F: Fixture>(f: &F) {
    const ROUNDS: u8 = 24;
    const ISSUERS: usize = 3;
    let place = f.place();
    let s = open(f, &place);
    for round in 0..ROUNDS {
        let counter = format!("count/{round}").into_bytes();
        let closing = (b"closing".to_vec(), mark(round));
        let barrier = Arc::new(Barrier::new(ISSUERS + 1));
        let issuers: Vec<_> = (0..ISSUERS)
            .map(|_| {
                let (s, barrier) = (Arc::clone(&s), Arc::clone(&barrier));
                let (counter, closing) = (counter.clone(), closing.clone());
                thread::spawn(move || {
                    barrier.wait();
                    s.issue(IssueTxn {
                        absent: vec![closing],
                        increment: vec![(counter, 1)],
                        ..IssueTxn::default()
                    })
                })
            })
            .collect();
        barrier.wait();
        s.issue(IssueTxn {
            insert: vec![closing],
            increment: vec![(counter.clone(), 0)],
            ..IssueTxn::default()
        })
        .unwrap();
        let counted = s.counter(&counter).unwrap();
        let mut issued = 0u64;
        for h in issuers {
            match h.join().unwrap() {
                Ok(()) => issued += 1,
                Err(StoreError::MarkPresent { position: 0 }) => {}
                Err(e) => panic!("round {round}: unexpected {e:?}"),
            }
        }
        assert_eq!(
            counted, issued,
            "round {round}: an issuance after the close"
        );
        assert_eq!(s.counter(&counter).unwrap(), issued);
    }
}

/// Concurrent batches at one index spending one nullifier: one commits.
pub fn concurrent_spend_of_one_nullifier_has_one_winner<F: Fixture>(f: &F) {
    // Two sequencers (a bug, but the store must still hold): both try to
    // append a batch spending the same nullifier at the same index.
    let place = f.place();
    let s = open(f, &place);
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let s = Arc::clone(&s);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                s.commit_batch(batch(0, 2))
            })
        })
        .collect();
    let mut ok = 0;
    for h in handles {
        match h.join().unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::Conflict {
                expected: 2,
                actual: 0,
            }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(s.size().unwrap(), 2);
}

/// Readers running during commits see whole batches only, never a size
/// going back.
pub fn readers_see_only_whole_batches<F: Fixture>(f: &F) {
    const BATCH: u64 = 5;
    const BATCHES: u64 = 30;
    let place = f.place();
    let s = open(f, &place);
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let s = Arc::clone(&s);
            let done = Arc::clone(&done);
            thread::spawn(move || {
                let mut observed = 0u64;
                let mut last = 0u64;
                while !done.load(Ordering::Acquire) {
                    let size = s.size().unwrap();
                    assert_eq!(size % BATCH, 0, "saw a partial batch: size {size}");
                    assert!(size >= last, "size went back from {last} to {size}");
                    last = size;
                    // Everything below the size is readable.
                    let entries = s.entries(0, size).unwrap();
                    assert_eq!(entries.len() as u64, size);
                    if size > 0 {
                        assert_eq!(entries[size as usize - 1], data(size - 1));
                        assert_eq!(s.nullifier_index(&nul(size - 1)).unwrap(), Some(size - 1));
                        assert!(s.hash(0, size - 1).unwrap().is_some());
                        let cp = checkpoint_size(&s.checkpoint().unwrap().unwrap());
                        assert!(
                            cp >= size && cp.is_multiple_of(BATCH),
                            "checkpoint {cp} vs size {size}"
                        );
                        observed += 1;
                    }
                }
                observed
            })
        })
        .collect();
    for k in 0..BATCHES {
        s.commit_batch(batch(k * BATCH, BATCH)).unwrap();
    }
    done.store(true, Ordering::Release);
    for r in readers {
        // Each reader saw at least one non-empty state (else the test is vacuous).
        assert!(r.join().unwrap() > 0);
    }
    assert_eq!(s.size().unwrap(), BATCH * BATCHES);
}

// ---------------------------------------------------------------------------
// One test per case
// ---------------------------------------------------------------------------

/// Runs the store conformance suite ([`store::conformance`](crate::store::conformance))
/// on a backend: `store_conformance!(module, fixture)` makes a module
/// `module` with one `#[test]` per case, each calling the case with
/// `&fixture` (the expression is evaluated in each test, inside `module`, which
/// sees the items of the module around it). Attributes before the module name
/// go on every test (`#[ignore = "..."]`).
///
/// Needs the `conformance` feature of `pledge-server` outside this crate.
#[macro_export]
macro_rules! store_conformance {
    ($(#[$attr:meta])* $module:ident, $fixture:expr $(,)?) => {
        $crate::store_conformance!(
            @cases [$(#[$attr])*] $module, $fixture;
            fresh_store_is_empty,
            sequence_numbers_are_assigned_in_order,
            empty_batch_updates_checkpoint_and_meta,
            batch_meta_writes_apply_in_order,
            an_issuance_racing_a_close_is_counted_or_refused,
            wrong_first_index_is_a_conflict,
            duplicate_nullifier_in_store_is_refused_whole,
            duplicate_nullifier_within_batch_is_refused_whole,
            stored_hashes_are_append_only,
            malformed_batches_are_invalid,
            entry_ranges_and_bounds,
            hash_ranges,
            reopen_preserves_everything,
            issue_applies_everything_on_success,
            issue_failure_applies_nothing,
            add_marks_is_idempotent,
            drop_set_deletes_the_set_and_keys_only,
            mark_counts_count_each_set_by_prefix,
            concurrent_issue_of_one_mark_has_one_winner,
            concurrent_spend_of_one_nullifier_has_one_winner,
            readers_see_only_whole_batches,
        );
    };
    (@cases $attrs:tt $module:ident, $fixture:expr; $($case:ident,)*) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $( $crate::store_conformance!(@case $attrs $case, $fixture); )*
        }
    };
    (@case [$($attr:tt)*] $case:ident, $fixture:expr) => {
        #[test]
        $($attr)*
        fn $case() {
            $crate::store::conformance::$case(&$fixture)
        }
    };
}

#[cfg(test)]
crate::store_conformance!(on_redb, super::Embedded(super::Backend::Redb));
#[cfg(test)]
crate::store_conformance!(on_sled, super::Embedded(super::Backend::Sled));
