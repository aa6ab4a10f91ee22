//! The PostgreSQL backend against a real, throwaway PostgreSQL cluster
//! (`pledge_tests::postgres`): the store conformance suite that redb and
//! sled pass, the schema migrations, and a whole server on it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use pledge_protocol::hash::Nullifier;
use pledge_server::store::conformance::Fixture;
use pledge_server::store::{
    Batch, BatchEntry, LogStore as _, MIGRATIONS, PostgresStore, Store, StoreError,
};
use pledge_tests::postgres::{TestDatabase, cluster};

/// Each place is a fresh database of the test cluster.
struct Postgres;

impl Fixture for Postgres {
    type Place = TestDatabase;

    fn place(&self) -> TestDatabase {
        cluster().database()
    }

    fn open(&self, db: &TestDatabase) -> Result<Arc<dyn Store>, StoreError> {
        Ok(Arc::new(PostgresStore::connect(db.url())?))
    }
}

pledge_server::store_conformance!(conformance, Postgres);

/// A batch at `first` of one entry per byte `b`, spending the nullifier
/// `[b; 32]`.
fn spends(first: u64, nullifiers: &[u8]) -> Batch {
    Batch {
        first_index: first,
        entries: nullifiers
            .iter()
            .map(|&b| BatchEntry {
                data: vec![b],
                nullifier: Some(Nullifier([b; 32])),
            })
            .collect(),
        checkpoint: b"cp".to_vec(),
        ..Batch::default()
    }
}

/// A database migrated by a newer `pledged` is refused, with what to do.
#[test]
fn a_newer_schema_is_refused() {
    let db = cluster().database();
    drop(PostgresStore::connect(db.url()).unwrap());
    let mut c = postgres::Client::connect(db.url(), postgres::NoTls).unwrap();
    let version: i32 = c
        .query_one("SELECT max(version) FROM pledge_schema", &[])
        .unwrap()
        .get(0);
    assert_eq!(version as usize, MIGRATIONS.len());
    c.execute("INSERT INTO pledge_schema VALUES ($1)", &[&(version + 1)])
        .unwrap();
    let err = PostgresStore::connect(db.url()).unwrap_err().to_string();
    assert!(err.contains("newer") && err.contains("pledged"), "{err}");
}

/// Opening twice (two front ends starting at once) migrates once.
#[test]
fn concurrent_opens_migrate_once() {
    let db = cluster().database();
    let url = db.url().to_owned();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PostgresStore::connect(&url).map(|_| ()))
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let mut c = postgres::Client::connect(db.url(), postgres::NoTls).unwrap();
    let rows: i64 = c
        .query_one("SELECT count(*) FROM pledge_schema", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows as usize, MIGRATIONS.len());
}

/// A log damaged behind the store's back (an entry row deleted) is refused
/// at open, as R-STORE-6 asks of every backend.
#[test]
fn a_damaged_log_is_refused_at_open() {
    let db = cluster().database();
    let s = PostgresStore::connect(db.url()).unwrap();
    s.commit_batch(spends(0, &[0, 1, 2])).unwrap();
    drop(s);
    let mut c = postgres::Client::connect(db.url(), postgres::NoTls).unwrap();
    c.execute("DELETE FROM entries WHERE idx = 1", &[]).unwrap();
    match PostgresStore::connect(db.url()) {
        Err(StoreError::Corrupt(m)) => assert!(m.contains('3') && m.contains('2'), "{m}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Error messages carry no stored data: a double spend names a position,
/// never the nullifier PostgreSQL would quote.
#[test]
fn refusals_quote_no_stored_data() {
    let db = cluster().database();
    let s = PostgresStore::connect(db.url()).unwrap();
    s.commit_batch(spends(0, &[0xab])).unwrap();
    let err = s.commit_batch(spends(1, &[0xab])).unwrap_err();
    assert!(matches!(
        err,
        StoreError::DuplicateNullifier { position: 0 }
    ));
    assert!(!format!("{err} {err:?}").to_lowercase().contains("abab"));
    assert!(
        !format!("{s:?}").contains("host="),
        "the URL stays out of Debug"
    );
}
