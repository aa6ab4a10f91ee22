//! The PostgreSQL backend of [`Store`]: the log and the issuer's state in a
//! database of its own, for operators who run PostgreSQL with replicas and
//! backups already (issue 18; design in BENCHMARKS.md and README.md,
//! "PostgreSQL").
//!
//! # Transactions
//!
//! - [`LogStore::commit_batch`] is one statement, a call of the function
//!   `pledge_commit_batch` (migration 2), so one round trip and one READ
//!   COMMITTED transaction. Its first step updates the single `log_state`
//!   row where the size is the batch's first index, which locks the row:
//!   batches are serialised whoever sends them, and a second writer's batch
//!   waits, then finds the size moved and fails with
//!   [`StoreError::Conflict`] having written nothing (no fork, SPEC
//!   R-STORE-3). Entries, nullifiers (primary key: the last line of defence
//!   against a double spend, R-RULE-4) and stored hashes go in with one
//!   `unnest` insert each; a nullifier already stored or repeated, or a
//!   stored hash given another value, raises an error that undoes the whole
//!   batch and names the first offender. The commit returns after
//!   PostgreSQL's WAL flush (`synchronous_commit` on, its default: checked
//!   at open).
//! - [`IssuerStore::issue`], [`IssuerStore::add_marks`] and
//!   [`IssuerStore::drop_set`] are SERIALIZABLE transactions, retried when
//!   PostgreSQL reports a serialisation failure: of two issuances racing for
//!   one invite code, one commits and the other, retried, finds the code
//!   gone ([`StoreError::MarkMissing`]).
//! - Reads that need a consistent view of several rows (an entry range and
//!   the size) run in one REPEATABLE READ read-only transaction; single-row
//!   reads are single statements. Readers see whole batches only.
//!
//! # Schema and migrations
//!
//! [`MIGRATIONS`] are applied in order at open, under a transaction-scoped
//! advisory lock (several front ends may start at once), and recorded in
//! `pledge_schema`; a database whose schema is newer than this code is
//! refused. The tables: `log_state` (one row: size, checkpoint), `entries`,
//! `nullifiers`, `hashes`, `meta`, `marks`. Nothing else: no timestamps, no
//! request metadata.
//!
//! # What differs from the embedded backends
//!
//! - Several handles, in one process or several, may open one database: that
//!   is the point of it. Safety does not depend on there being one writer.
//! - A write that fails because the database went away is not known to have
//!   failed (the COMMIT may have reached the disk): the call returns
//!   [`StoreError::Backend`] and the handle stays usable; the ledger then
//!   reads back what is durable (`Ledger::reload`), as it does after any
//!   failed batch. The handle never turns [`StoreError::Failed`]: the
//!   database, not this process, holds the truth.
//! - Deleting a row does not erase it from the write-ahead log, replicas or
//!   backups until they expire (README.md, "PostgreSQL": what to protect).
//!
//! Connections are plain (no TLS): give a Unix socket folder or a loopback
//! address in the URL.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use pledge_protocol::hash::{Hash, Nullifier};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, GenericClient, IsolationLevel, NoTls, Row, Statement, Transaction};

use super::{
    Batch, IssueTxn, IssuerStore, LogStore, MAX_SET_NAME_LEN, Mark, MetaStore, StoreError,
    check_batch_shape, check_open_invariants, contiguous_hashes, decode_hash, incremented,
};

/// The schema, one migration per version, applied in order at open. A new
/// version is a new element; an applied one never changes.
pub const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE log_state (
    id         smallint PRIMARY KEY CHECK (id = 0),
    size       bigint   NOT NULL CHECK (size >= 0),
    checkpoint bytea
);
INSERT INTO log_state (id, size, checkpoint) VALUES (0, 0, NULL);
CREATE TABLE entries (
    idx  bigint PRIMARY KEY CHECK (idx >= 0),
    data bytea  NOT NULL
);
CREATE TABLE nullifiers (
    nullifier bytea  PRIMARY KEY CHECK (length(nullifier) = 32),
    idx       bigint NOT NULL
);
CREATE TABLE hashes (
    level smallint NOT NULL,
    idx   bigint   NOT NULL,
    hash  bytea    NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
);
CREATE TABLE meta (
    key   bytea PRIMARY KEY,
    value bytea NOT NULL
);
CREATE TABLE marks (
    set_name bytea NOT NULL CHECK (length(set_name) <= 255),
    mark     bytea NOT NULL CHECK (length(mark) = 32),
    PRIMARY KEY (set_name, mark)
);
",
    r#"
-- One sequencer batch in one statement (one round trip instead of one per
-- table; BENCHMARKS.md, session 15), in its caller's transaction. Answers
-- ('ok', 0, 0), or ('conflict', size, 0) having changed nothing; a spent
-- or repeated nullifier raises SQLSTATE PLG01 (DETAIL: the entry's position
-- in the batch), a hash that differs from the stored one PLG02 (DETAIL:
-- level and index), and the raise undoes the whole batch. The checks run
-- only when an insert skipped a row: a batch that is fine pays nothing.
CREATE FUNCTION pledge_commit_batch(
    p_first       bigint,
    p_entries     bytea[],
    p_nullifiers  bytea[],
    p_spent_at    bigint[],
    p_levels      smallint[],
    p_indexes     bigint[],
    p_hashes      bytea[],
    p_checkpoint  bytea,
    p_meta_keys   bytea[],
    p_meta_values bytea[]
) RETURNS TABLE (outcome text, a bigint, b bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_size bigint;
    v_rows bigint;
    v_a    bigint;
    v_b    bigint;
BEGIN
    -- The update locks the state row: batches are serialised whoever sends
    -- them, and one not starting at the size changes nothing.
    UPDATE log_state s
        SET size = p_first + coalesce(cardinality(p_entries), 0), checkpoint = p_checkpoint
        WHERE s.id = 0 AND s.size = p_first;
    IF NOT FOUND THEN
        SELECT s.size INTO v_size FROM log_state s WHERE s.id = 0;
        RETURN QUERY SELECT 'conflict'::text, v_size, 0::bigint;
        RETURN;
    END IF;
    INSERT INTO entries (idx, data)
        SELECT p_first + e.ord - 1, e.data
        FROM unnest(p_entries) WITH ORDINALITY AS e(data, ord);
    INSERT INTO nullifiers (nullifier, idx)
        SELECT n.nul, p_first + n.pos FROM unnest(p_nullifiers, p_spent_at) AS n(nul, pos)
        ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    IF v_rows < coalesce(cardinality(p_nullifiers), 0) THEN
        -- The first entry whose nullifier is stored under another index:
        -- spent before, or earlier in this batch.
        SELECT min(n.pos) INTO v_a
        FROM unnest(p_nullifiers, p_spent_at) AS n(nul, pos)
        JOIN nullifiers x ON x.nullifier = n.nul
        WHERE x.idx <> p_first + n.pos;
        RAISE EXCEPTION USING ERRCODE = 'PLG01', MESSAGE = 'a nullifier is spent',
            DETAIL = v_a::text;
    END IF;
    INSERT INTO hashes (level, idx, hash)
        SELECT h.lvl, h.ix, h.val FROM unnest(p_levels, p_indexes, p_hashes) AS h(lvl, ix, val)
        ON CONFLICT (level, idx) DO NOTHING;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    IF v_rows < coalesce(cardinality(p_hashes), 0) THEN
        -- Append-only: the first hash that differs from the stored one (an
        -- earlier one of this batch at the same node counts as stored).
        SELECT h.lvl, h.ix INTO v_a, v_b
        FROM unnest(p_levels, p_indexes, p_hashes) WITH ORDINALITY AS h(lvl, ix, val, ord)
        JOIN hashes x ON x.level = h.lvl AND x.idx = h.ix
        WHERE x.hash <> h.val
        ORDER BY h.ord
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'PLG02', MESSAGE = 'a stored hash differs',
                DETAIL = v_a::text || ' ' || v_b::text;
        END IF;
    END IF;
    -- One value per key (the caller keeps the last write of each).
    DELETE FROM meta m
        WHERE m.key IN (SELECT u.k FROM unnest(p_meta_keys, p_meta_values) AS u(k, v)
                        WHERE u.v IS NULL);
    INSERT INTO meta (key, value)
        SELECT u.k, u.v FROM unnest(p_meta_keys, p_meta_values) AS u(k, v)
        WHERE u.v IS NOT NULL
        ON CONFLICT (key) DO UPDATE SET value = excluded.value;
    RETURN QUERY SELECT 'ok'::text, 0::bigint, 0::bigint;
END
$$;
"#,
];

/// The advisory lock key under which migrations run ("pledge" in ASCII).
const MIGRATION_LOCK: i64 = 0x0000_706c_6564_6765;

/// Idle connections kept for reuse.
const MAX_IDLE: usize = 16;

/// Attempts of a SERIALIZABLE transaction before giving up.
const SERIALIZABLE_ATTEMPTS: usize = 64;

/// [`Store`](super::Store) on PostgreSQL; see the module docs.
pub struct PostgresStore {
    config: postgres::Config,
    idle: Mutex<Vec<Conn>>,
}

/// A connection and the statements prepared on it: each SQL text is parsed
/// and planned once per connection, then runs in one round trip (an
/// unprepared statement costs two).
struct Conn {
    client: Client,
    prepared: HashMap<&'static str, Statement>,
}

impl Conn {
    fn new(client: Client) -> Self {
        Self {
            client,
            prepared: HashMap::new(),
        }
    }

    fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The connection outside any explicit transaction: each statement is
    /// a transaction of its own.
    fn session(&mut self) -> Session<'_, Client> {
        Session {
            on: &mut self.client,
            prepared: &mut self.prepared,
        }
    }
}

/// Statements run on a connection or a transaction, prepared once per
/// connection.
struct Session<'a, C> {
    on: &'a mut C,
    prepared: &'a mut HashMap<&'static str, Statement>,
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

impl<C: GenericClient> Session<'_, C> {
    fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = self.on.prepare(sql)?;
        self.prepared.insert(sql, s.clone());
        Ok(s)
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Vec<Row>, postgres::Error> {
        let s = self.statement(sql)?;
        self.on.query(&s, params)
    }

    fn query_one(&mut self, sql: &'static str, params: Params<'_>) -> Result<Row, postgres::Error> {
        let s = self.statement(sql)?;
        self.on.query_one(&s, params)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Option<Row>, postgres::Error> {
        let s = self.statement(sql)?;
        self.on.query_opt(&s, params)
    }

    fn execute(&mut self, sql: &'static str, params: Params<'_>) -> Result<u64, postgres::Error> {
        let s = self.statement(sql)?;
        self.on.execute(&s, params)
    }
}

/// A transaction with the prepared statements of its connection.
type Tx<'s, 't> = Session<'s, Transaction<'t>>;

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: name the database only.
        f.debug_struct("PostgresStore")
            .field("dbname", &self.config.get_dbname())
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // A client owns a runtime, which tokio refuses to drop on one of its
        // own threads: close the connections where that is allowed.
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|e| e.into_inner()));
        let _ = off_runtime(move || {
            drop(idle);
            Ok(())
        });
    }
}

/// A database error as the contract wants it: no stored data in the message
/// (PostgreSQL's own messages quote key values: nullifiers, marks).
fn db(e: postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(d) => StoreError::Backend(format!(
            "postgres: {} (SQLSTATE {})",
            d.severity(),
            d.code().code()
        )),
        None if e.is_closed() => StoreError::Backend("postgres: the connection is closed".into()),
        None => StoreError::Backend(format!("postgres: {e}")),
    }
}

fn retryable(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// An index as PostgreSQL's `bigint`.
fn sql_index(i: u64) -> Result<i64, StoreError> {
    i64::try_from(i).map_err(|_| StoreError::Invalid("index beyond 2^63 - 1"))
}

/// A `bigint` read back as an index.
fn index_of(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} is negative")))
}

fn check_set(set: &[u8]) -> Result<(), StoreError> {
    if set.len() > MAX_SET_NAME_LEN {
        return Err(StoreError::Invalid("mark set name longer than 255 bytes"));
    }
    Ok(())
}

/// The least byte string greater than every string that starts with
/// `prefix`: `None` when there is none (an empty prefix, or all 0xff).
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Why a transaction body stopped: the contract's refusal, or a database
/// error that may be retried.
enum Stop {
    Refused(StoreError),
    Db(postgres::Error),
}

impl From<postgres::Error> for Stop {
    fn from(e: postgres::Error) -> Self {
        Stop::Db(e)
    }
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Refused(e)
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (a libpq URL or key=value string),
    /// applies the missing [`MIGRATIONS`] and checks the contract's
    /// invariants (SPEC R-STORE-6): the size equals the number of entries,
    /// entry indexes are exactly `0..size`, a checkpoint exists once
    /// `size > 0`.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a URL that does not parse or asks for TLS;
    /// [`StoreError::Backend`] if the database cannot be reached, has
    /// `synchronous_commit` off, or holds a newer schema than this code;
    /// [`StoreError::Corrupt`] if an invariant fails.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        off_runtime(|| Self::connect_here(url))
    }

    fn connect_here(url: &str) -> Result<Self, StoreError> {
        let config: postgres::Config = url
            .parse()
            .map_err(|_| StoreError::Invalid("the database URL does not parse"))?;
        if config.get_ssl_mode() == postgres::config::SslMode::Require {
            return Err(StoreError::Invalid(
                "sslmode=require: this build connects without TLS (use a Unix socket or loopback)",
            ));
        }
        let store = Self {
            config,
            idle: Mutex::new(Vec::new()),
        };
        let mut c = store.connect_one()?;
        store.check_durability(&mut c.client)?;
        migrate(&mut c.client)?;
        store.check_invariants(&mut c.client)?;
        store.put_back(c);
        Ok(store)
    }

    fn connect_one(&self) -> Result<Conn, StoreError> {
        self.config
            .connect(NoTls)
            .map(Conn::new)
            .map_err(|e| match e.as_db_error() {
                Some(_) => db(e),
                None => StoreError::Backend(format!("postgres: cannot connect: {e}")),
            })
    }

    /// A connection from the idle list, or a new one.
    fn client(&self) -> Result<Conn, StoreError> {
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        match idle {
            Some(c) if !c.is_closed() => Ok(c),
            _ => self.connect_one(),
        }
    }

    fn put_back(&self, c: Conn) {
        if c.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(c);
        }
    }

    /// Forgets the idle connections: after one broke (the database
    /// restarted), the others are broken too.
    fn drop_idle(&self) {
        let idle = self
            .idle
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        drop(idle);
    }

    /// Runs the read `f` on a connection, returning it for reuse; once more
    /// on a new connection if the first one turned out broken (a database
    /// restart leaves every idle connection broken). Never for writes: a
    /// write whose connection broke may have committed.
    fn read<T: Send>(
        &self,
        f: impl Fn(&mut Conn) -> Result<T, StoreError> + Send + Sync,
    ) -> Result<T, StoreError> {
        off_runtime(|| {
            let mut c = self.client()?;
            let out = f(&mut c);
            if out.is_err() && c.is_closed() {
                self.drop_idle();
                let mut c = self.connect_one()?;
                let out = f(&mut c);
                self.put_back(c);
                return out;
            }
            self.put_back(c);
            out
        })
    }

    /// Runs `f` on a connection, returning the connection for reuse.
    fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        off_runtime(|| {
            let mut c = self.client()?;
            let out = f(&mut c);
            if out.is_err() && c.is_closed() {
                self.drop_idle();
            }
            self.put_back(c);
            out
        })
    }

    /// Runs `body` in a SERIALIZABLE transaction, again from the start while
    /// PostgreSQL reports a serialisation failure or a deadlock.
    fn serializable<T: Send>(
        &self,
        mut body: impl FnMut(&mut Tx<'_, '_>) -> Result<T, Stop> + Send,
    ) -> Result<T, StoreError> {
        self.with(|c| {
            let mut last = None;
            for _ in 0..SERIALIZABLE_ATTEMPTS {
                let mut tx = c
                    .client
                    .build_transaction()
                    .isolation_level(IsolationLevel::Serializable)
                    .start()
                    .map_err(db)?;
                let result = body(&mut Session {
                    on: &mut tx,
                    prepared: &mut c.prepared,
                });
                let attempt = match result {
                    Ok(v) => tx.commit().map(|()| v).map_err(Stop::Db),
                    Err(e) => Err(e),
                };
                match attempt {
                    Ok(v) => return Ok(v),
                    Err(Stop::Refused(e)) => return Err(e),
                    Err(Stop::Db(e)) if retryable(&e) => last = Some(e),
                    Err(Stop::Db(e)) => return Err(db(e)),
                }
            }
            Err(last.map_or_else(
                || StoreError::Backend("postgres: serialisation retries exhausted".into()),
                db,
            ))
        })
    }

    /// A read-only REPEATABLE READ transaction: one snapshot for several
    /// statements.
    fn snapshot<T: Send>(
        &self,
        body: impl Fn(&mut Tx<'_, '_>) -> Result<T, StoreError> + Send + Sync,
    ) -> Result<T, StoreError> {
        self.read(|c| {
            let mut tx = c
                .client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(db)?;
            let out = body(&mut Session {
                on: &mut tx,
                prepared: &mut c.prepared,
            })?;
            tx.commit().map_err(db)?;
            Ok(out)
        })
    }

    /// Acknowledging only what is durable (DESIGN I3) needs the commit to wait
    /// for the WAL flush.
    fn check_durability(&self, c: &mut Client) -> Result<(), StoreError> {
        let row = c
            .query_one(
                "SELECT current_setting('synchronous_commit'), current_setting('fsync')",
                &[],
            )
            .map_err(db)?;
        let (sync, fsync): (String, String) = (row.get(0), row.get(1));
        if sync == "off" || fsync == "off" {
            return Err(StoreError::Backend(format!(
                "postgres: synchronous_commit is {sync} and fsync is {fsync}; pledged acknowledges \
                 only durable writes and needs both on"
            )));
        }
        Ok(())
    }

    fn check_invariants(&self, c: &mut Client) -> Result<(), StoreError> {
        let row = c
            .query_one(
                "SELECT s.size, s.checkpoint IS NOT NULL, \
                        (SELECT count(*) FROM entries), (SELECT min(idx) FROM entries), \
                        (SELECT max(idx) FROM entries) \
                 FROM log_state s WHERE s.id = 0",
                &[],
            )
            .map_err(db)?;
        let size = index_of(row.get(0), "the log size")?;
        let has_checkpoint: bool = row.get(1);
        let count = index_of(row.get(2), "the entry count")?;
        let first = row
            .get::<_, Option<i64>>(3)
            .map(|v| index_of(v, "an entry index"))
            .transpose()?;
        let last = row
            .get::<_, Option<i64>>(4)
            .map(|v| index_of(v, "an entry index"))
            .transpose()?;
        check_open_invariants(size, count, first, last, has_checkpoint)
    }
}

/// Runs `f` where the synchronous client may block: here, unless this
/// thread is inside a tokio runtime (the client drives its connection with a
/// runtime of its own, and tokio refuses a runtime inside a runtime), then on
/// a short-lived thread of its own while this one waits. The server calls the
/// store from its blocking pool, where the handle is set too, so this costs a
/// thread per call there (tens of microseconds against a database round
/// trip; BENCHMARKS.md).
fn off_runtime<T: Send>(f: impl FnOnce() -> Result<T, StoreError> + Send) -> Result<T, StoreError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| {
        s.spawn(f).join().unwrap_or_else(|_| {
            Err(StoreError::Backend(
                "postgres: a store call panicked".into(),
            ))
        })
    })
}

/// Applies the missing migrations under an advisory lock.
fn migrate(c: &mut Client) -> Result<(), StoreError> {
    let mut tx = c.transaction().map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(db)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS pledge_schema (version integer PRIMARY KEY)")
        .map_err(db)?;
    let current: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM pledge_schema", &[])
        .map_err(db)?
        .get(0);
    let known = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
    if current > known {
        return Err(StoreError::Backend(format!(
            "postgres: the database schema is version {current}, newer than this pledged's \
             {known}: run a newer pledged"
        )));
    }
    for (version, sql) in (1..)
        .zip(MIGRATIONS)
        .skip(usize::try_from(current).unwrap_or(0))
    {
        tx.batch_execute(sql).map_err(db)?;
        tx.execute(
            "INSERT INTO pledge_schema (version) VALUES ($1)",
            &[&version],
        )
        .map_err(db)?;
        tracing::info!(version, "applied a database schema migration");
    }
    tx.commit().map_err(db)
}

/// [`LogStore::commit_batch`] in one statement, one round trip: the
/// function of migration 2 (`pledge_commit_batch`) in a transaction of its
/// own.
fn commit_on(c: &mut Conn, batch: &Batch) -> Result<(), StoreError> {
    let first = sql_index(batch.first_index)?;
    let data: Vec<&[u8]> = batch.entries.iter().map(|e| e.data.as_slice()).collect();
    let (nullifiers, spent_at): (Vec<&[u8]>, Vec<i64>) = batch
        .entries
        .iter()
        .zip(0i64..)
        .filter_map(|(e, p)| e.nullifier.as_ref().map(|n| (n.0.as_slice(), p)))
        .unzip();
    let levels: Vec<i16> = batch.hashes.iter().map(|h| i16::from(h.level)).collect();
    let indexes = batch
        .hashes
        .iter()
        .map(|h| sql_index(h.index))
        .collect::<Result<Vec<i64>, _>>()?;
    let hashes: Vec<&[u8]> = batch.hashes.iter().map(|h| h.hash.0.as_slice()).collect();
    // The last write of a key wins, as in the embedded stores.
    let mut last: HashMap<&[u8], Option<&[u8]>> = HashMap::new();
    let mut order = Vec::new();
    for (key, value) in &batch.meta {
        if last.insert(key.as_slice(), value.as_deref()).is_none() {
            order.push(key.as_slice());
        }
    }
    let meta_values: Vec<Option<&[u8]>> = order.iter().map(|k| last[k]).collect();
    let answer = c.session().query_one(
        "SELECT outcome, a, b FROM pledge_commit_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &first,
            &data,
            &nullifiers,
            &spent_at,
            &levels,
            &indexes,
            &hashes,
            &batch.checkpoint,
            &order,
            &meta_values,
        ],
    );
    let row = match answer {
        Ok(row) => row,
        Err(e) => return Err(refusal(&e).unwrap_or_else(|| db(e))),
    };
    let (outcome, a): (&str, i64) = (row.get(0), row.get(1));
    match outcome {
        "ok" => Ok(()),
        "conflict" => Err(StoreError::Conflict {
            expected: index_of(a, "the log size")?,
            actual: batch.first_index,
        }),
        other => Err(StoreError::Corrupt(format!(
            "pledge_commit_batch answered {other:?}"
        ))),
    }
}

/// The contract's refusal that `pledge_commit_batch` raised, if `e` is one.
fn refusal(e: &postgres::Error) -> Option<StoreError> {
    let d = e.as_db_error()?;
    let detail = d.detail().unwrap_or_default();
    let mut numbers = detail.split(' ').map(str::parse::<u64>);
    match d.code().code() {
        "PLG01" => Some(StoreError::DuplicateNullifier {
            position: usize::try_from(numbers.next()?.ok()?).ok()?,
        }),
        "PLG02" => Some(StoreError::HashMismatch {
            level: u8::try_from(numbers.next()?.ok()?).ok()?,
            index: numbers.next()?.ok()?,
        }),
        _ => None,
    }
}

fn put_meta(tx: &mut Tx<'_, '_>, key: &[u8], value: &[u8]) -> Result<u64, postgres::Error> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&key, &value],
    )
}

fn delete_meta(tx: &mut Tx<'_, '_>, key: &[u8]) -> Result<u64, postgres::Error> {
    tx.execute("DELETE FROM meta WHERE key = $1", &[&key])
}

/// The body of [`IssuerStore::issue`], in the order of [`IssueTxn`].
fn issue_in(tx: &mut Tx<'_, '_>, txn: &IssueTxn) -> Result<(), Stop> {
    // One statement each for all the absent marks, the takes and the
    // inserts, however many requests the group commit merged; the position
    // the contract names is found from the rows each one returned.
    if !txn.absent.is_empty() {
        let (sets, marks) = pair_columns(&txn.absent);
        let present = tx.query(
            "SELECT m.set_name, m.mark FROM marks m \
             JOIN unnest($1::bytea[], $2::bytea[]) AS u(s, k) \
             ON m.set_name = u.s AND m.mark = u.k",
            &[&sets, &marks],
        )?;
        let present = pairs_of(&present);
        if let Some(position) = txn
            .absent
            .iter()
            .position(|(set, mark)| present.contains(&(set.clone(), mark.0.to_vec())))
        {
            return Err(StoreError::MarkPresent { position }.into());
        }
    }
    if !txn.take.is_empty() {
        let (sets, marks) = pair_columns(&txn.take);
        let taken = tx.query(
            "DELETE FROM marks m USING unnest($1::bytea[], $2::bytea[]) AS u(s, k) \
             WHERE m.set_name = u.s AND m.mark = u.k RETURNING m.set_name, m.mark",
            &[&sets, &marks],
        )?;
        if let Some(position) = first_not_done(&txn.take, &taken) {
            return Err(StoreError::MarkMissing { position }.into());
        }
    }
    if !txn.insert.is_empty() {
        let (sets, marks) = pair_columns(&txn.insert);
        let added = tx.query(
            "INSERT INTO marks (set_name, mark) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
             ON CONFLICT DO NOTHING RETURNING set_name, mark",
            &[&sets, &marks],
        )?;
        if let Some(position) = first_not_done(&txn.insert, &added) {
            return Err(StoreError::MarkExists { position }.into());
        }
    }
    for (key, value) in &txn.put {
        put_meta(tx, key, value)?;
    }
    for key in &txn.delete {
        delete_meta(tx, key)?;
    }
    for (key, by) in &txn.increment {
        let current: Option<Vec<u8>> = tx
            .query_opt("SELECT value FROM meta WHERE key = $1", &[key])?
            .map(|r| r.get(0));
        let next = incremented(current.as_deref(), *by)?;
        put_meta(tx, key, &next)?;
    }
    Ok(())
}

/// The `(set name, mark)` rows a statement returned.
fn pairs_of(rows: &[Row]) -> std::collections::HashSet<(Vec<u8>, Vec<u8>)> {
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// The set names and the marks of `pairs`, as two arrays.
fn pair_columns(pairs: &[(Vec<u8>, Mark)]) -> (Vec<&[u8]>, Vec<&[u8]>) {
    pairs
        .iter()
        .map(|(set, mark)| (set.as_slice(), mark.0.as_slice()))
        .unzip()
}

/// The first position of `pairs` that is not among the rows a statement
/// touched, or that repeats an earlier pair.
fn first_not_done(pairs: &[(Vec<u8>, Mark)], rows: &[Row]) -> Option<usize> {
    let mut done = pairs_of(rows);
    pairs
        .iter()
        .position(|(set, mark)| !done.remove(&(set.clone(), mark.0.to_vec())))
}

impl MetaStore for PostgresStore {
    fn meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|c| {
            Ok(c.session()
                .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
                .map_err(db)?
                .map(|r| r.get(0)))
        })
    }
}

impl LogStore for PostgresStore {
    fn size(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            let size: i64 = c
                .session()
                .query_one("SELECT size FROM log_state WHERE id = 0", &[])
                .map_err(db)?
                .get(0);
            index_of(size, "the log size")
        })
    }

    fn commit_batch(&self, batch: Batch) -> Result<(), StoreError> {
        let end = check_batch_shape(&batch)?;
        sql_index(end)?;
        self.with(|c| commit_on(c, &batch))
    }

    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let Ok(i) = i64::try_from(index) else {
            return Ok(None);
        };
        self.read(|c| {
            Ok(c.session()
                .query_opt("SELECT data FROM entries WHERE idx = $1", &[&i])
                .map_err(db)?
                .map(|r| r.get(0)))
        })
    }

    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        self.snapshot(|tx| {
            let size: i64 = tx
                .query_one("SELECT size FROM log_state WHERE id = 0", &[])
                .map_err(db)?
                .get(0);
            let size = index_of(size, "the log size")?;
            if start > end || end > size {
                return Err(StoreError::OutOfRange { start, end, size });
            }
            let rows = tx
                .query(
                    "SELECT data FROM entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
                    &[&sql_index(start)?, &sql_index(end)?],
                )
                .map_err(db)?;
            if rows.len() as u64 != end - start {
                return Err(StoreError::Corrupt(format!(
                    "entries [{start}, {end}) below the size {size} are missing"
                )));
            }
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn hash(&self, level: u8, index: u64) -> Result<Option<Hash>, StoreError> {
        let Ok(i) = i64::try_from(index) else {
            return Ok(None);
        };
        self.read(|c| {
            c.session()
                .query_opt(
                    "SELECT hash FROM hashes WHERE level = $1 AND idx = $2",
                    &[&i16::from(level), &i],
                )
                .map_err(db)?
                .map(|r| decode_hash(r.get(0), level, index))
                .transpose()
        })
    }

    fn hashes(&self, level: u8, start: u64, end: u64) -> Result<Vec<Hash>, StoreError> {
        if start > end {
            return Err(StoreError::OutOfRange {
                start,
                end,
                size: self.size()?,
            });
        }
        // Indexes past 2^63 - 1 are never stored.
        let first = i64::try_from(start).unwrap_or(i64::MAX);
        let last = i64::try_from(end).unwrap_or(i64::MAX);
        let rows = self.read(|c| {
            c.session()
                .query(
                    "SELECT idx, hash FROM hashes WHERE level = $1 AND idx >= $2 AND idx < $3 \
                 ORDER BY idx",
                    &[&i16::from(level), &first, &last],
                )
                .map_err(db)
        })?;
        contiguous_hashes(
            level,
            start,
            end,
            rows.iter().map(|r| {
                let value: &[u8] = r.get(1);
                Ok((index_of(r.get(0), "a hash index")?, value))
            }),
        )
    }

    fn nullifier_index(&self, nullifier: &Nullifier) -> Result<Option<u64>, StoreError> {
        self.read(|c| {
            c.session()
                .query_opt(
                    "SELECT idx FROM nullifiers WHERE nullifier = $1",
                    &[&nullifier.0.as_slice()],
                )
                .map_err(db)?
                .map(|r| index_of(r.get(0), "a nullifier's index"))
                .transpose()
        })
    }

    fn checkpoint(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|c| {
            Ok(c.session()
                .query_one("SELECT checkpoint FROM log_state WHERE id = 0", &[])
                .map_err(db)?
                .get(0))
        })
    }
}

impl IssuerStore for PostgresStore {
    fn issue(&self, txn: IssueTxn) -> Result<(), StoreError> {
        for (set, _) in txn.absent.iter().chain(&txn.take).chain(&txn.insert) {
            check_set(set)?;
        }
        self.serializable(|tx| issue_in(tx, &txn))
    }

    fn contains_mark(&self, set: &[u8], mark: &Mark) -> Result<bool, StoreError> {
        check_set(set)?;
        self.read(|c| {
            Ok(c.session()
                .query_opt(
                    "SELECT 1 FROM marks WHERE set_name = $1 AND mark = $2",
                    &[&set, &mark.0.as_slice()],
                )
                .map_err(db)?
                .is_some())
        })
    }

    fn add_marks(&self, set: &[u8], marks: &[Mark]) -> Result<u64, StoreError> {
        check_set(set)?;
        let values: Vec<&[u8]> = marks.iter().map(|m| m.0.as_slice()).collect();
        self.serializable(|tx| {
            Ok(tx.execute(
                "INSERT INTO marks (set_name, mark) SELECT $1, m FROM unnest($2::bytea[]) AS m \
                 ON CONFLICT DO NOTHING",
                &[&set, &values],
            )?)
        })
    }

    fn mark_counts(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, u64)>, StoreError> {
        check_set(prefix)?;
        // The names starting with `prefix` are those from `prefix` up to
        // (excluding) its successor, a range of the primary key's index;
        // no successor (empty, or all 0xff bytes): no upper bound.
        let end = prefix_successor(prefix);
        // SPEC R-STORE-8: one statement, one snapshot; only counts leave.
        let rows = self.with(|c| {
            c.session()
                .query(
                    "SELECT set_name, count(*) FROM marks \
                 WHERE set_name >= $1 AND ($2::bytea IS NULL OR set_name < $2) \
                 GROUP BY set_name ORDER BY set_name",
                    &[&prefix, &end],
                )
                .map_err(db)
        })?;
        rows.iter()
            .map(|r| {
                let set: Vec<u8> = r.get(0);
                Ok((set, index_of(r.get(1), "a mark count")?))
            })
            .collect()
    }

    fn drop_set(&self, set: &[u8], delete_meta: &[&[u8]]) -> Result<u64, StoreError> {
        check_set(set)?;
        self.serializable(|tx| {
            let n = tx.execute("DELETE FROM marks WHERE set_name = $1", &[&set])?;
            for key in delete_meta {
                self::delete_meta(tx, key)?;
            }
            Ok(n)
        })
    }
}

// ---------------------------------------------------------------------------
// Several front ends on one database: who sequences (SPEC R-STORE-10, R-STORE-11)

/// The session-level advisory lock whose holder sequences ("pledgeL").
const LEADER_LOCK: i64 = 0x0070_6c65_6467_654c;

/// Metadata key of the sequencing front end's URL, written by it once it
/// holds [`LEADER_LOCK`] (SPEC R-STORE-11). Not secret: an address of the
/// operator's own machine, nothing of a pledger.
pub const LEADER_META: &[u8] = b"cluster/leader";

/// How often a follower asks for the lock, and the leader checks that the
/// connection holding it is alive.
const ELECTION_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// A front end's candidacy for the sequencer's role (SPEC R-STORE-10): a
/// thread of its own holds one connection and, on it, asks for a
/// session-level advisory lock until it gets it. The holder sequences; the
/// lock goes with its connection, so a front end that dies (or whose
/// connection breaks) frees it for another at once. The lock is for
/// liveness only: safety comes from `commit_batch`'s row lock and size
/// check, so even two front ends that both believe they lead cannot fork
/// the log (the second batch is a [`StoreError::Conflict`]).
#[derive(Debug)]
pub struct Election {
    leader: tokio::sync::watch::Receiver<bool>,
    advertise: tokio::sync::watch::Sender<Option<String>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Election {
    /// Starts the candidacy; returns once the first attempt is answered (so
    /// a lone front end starts as the leader), or after five seconds.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a URL that does not parse.
    pub fn start(url: &str) -> Result<Self, StoreError> {
        let config: postgres::Config = url
            .parse()
            .map_err(|_| StoreError::Invalid("the database URL does not parse"))?;
        let (leader_tx, leader) = tokio::sync::watch::channel(false);
        let (advertise, advertised) = tokio::sync::watch::channel(None);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (first_tx, first_rx) = std::sync::mpsc::channel::<()>();
        let stopping = stop.clone();
        std::thread::Builder::new()
            .name("pledged-election".into())
            .spawn(move || campaign(&config, &leader_tx, &advertised, &stopping, first_tx))
            .map_err(|e| StoreError::Backend(format!("cannot start the election thread: {e}")))?;
        // The sender is dropped after the first attempt.
        let _ = first_rx.recv_timeout(std::time::Duration::from_secs(5));
        Ok(Self {
            leader,
            advertise,
            stop,
        })
    }

    /// True while this front end holds the lock.
    pub fn leader(&self) -> tokio::sync::watch::Receiver<bool> {
        self.leader.clone()
    }

    /// The URL other front ends forward writes to while this one leads.
    pub fn advertise(&self, url: String) {
        self.advertise.send_replace(Some(url));
    }

    /// Gives the role up (graceful stop): the thread closes its connection,
    /// which frees the lock for another front end.
    pub fn resign(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for Election {
    fn drop(&mut self) {
        self.resign();
    }
}

/// The election thread (see [`Election`]).
fn campaign(
    config: &postgres::Config,
    leader: &tokio::sync::watch::Sender<bool>,
    advertised: &tokio::sync::watch::Receiver<Option<String>>,
    stop: &std::sync::atomic::AtomicBool,
    first: std::sync::mpsc::Sender<()>,
) {
    use std::sync::atomic::Ordering;
    let mut first = Some(first);
    let mut outage = false;
    while !stop.load(Ordering::Relaxed) {
        let mut c = match config.connect(NoTls) {
            Ok(c) => c,
            Err(e) => {
                if !outage {
                    tracing::warn!(
                        "election: cannot reach the database ({}); retrying",
                        e.as_db_error().map_or_else(
                            || "connection failed".into(),
                            |d| d.code().code().to_owned()
                        )
                    );
                    outage = true;
                }
                first.take();
                std::thread::sleep(ELECTION_POLL);
                continue;
            }
        };
        if outage {
            tracing::info!("election: the database is reachable again");
            outage = false;
        }
        let mut written: Option<String> = None;
        loop {
            if stop.load(Ordering::Relaxed) {
                // Dropping the connection below frees the lock.
                leader.send_replace(false);
                break;
            }
            let ok = if *leader.borrow() {
                let url = advertised.borrow().clone();
                match url {
                    Some(u) if written.as_ref() != Some(&u) => {
                        let done = c.execute(
                            "INSERT INTO meta (key, value) VALUES ($1, $2) \
                             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                            &[&LEADER_META, &u.as_bytes()],
                        );
                        if done.is_ok() {
                            written = Some(u);
                        }
                        done.is_ok()
                    }
                    _ => c.simple_query("SELECT 1").is_ok(),
                }
            } else {
                match c.query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK]) {
                    Ok(row) => {
                        if row.get::<_, bool>(0) {
                            tracing::info!("this front end now sequences the log");
                            leader.send_replace(true);
                            first.take();
                            // Write the URL at once.
                            continue;
                        }
                        true
                    }
                    Err(_) => false,
                }
            };
            first.take();
            if !ok {
                if *leader.borrow() {
                    tracing::error!(
                        "the database connection holding the sequencer's lock broke: this front \
                         end stops sequencing"
                    );
                    leader.send_replace(false);
                }
                break;
            }
            std::thread::sleep(ELECTION_POLL);
        }
        drop(c);
    }
    leader.send_replace(false);
}
