//! Group commit of the issuer's durable transactions (SPEC R-STORE-5): the
//! fsync, not RSA, bounded issuance until concurrent requests shared one
//! (BENCHMARKS.md). Each request's transaction stays all-or-nothing and is
//! durable before its signatures are returned.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

use crate::store::{IssueTxn, IssuerStore, StoreError};

/// Group commit of issuance transactions: a request's transaction is queued;
/// whoever finds no commit running becomes the leader, merges everything
/// queued into one durable store transaction, publishes each request's result
/// and repeats while requests are queued. One fsync then covers every request
/// that arrived during the previous one (the store's fsync, not RSA, bounded
/// issuance: BENCHMARKS.md). Each request's transaction stays all-or-nothing
/// and durable before its signatures are returned (SPEC R-STORE-5): if the
/// merged transaction fails, nothing of it was applied, and every request is
/// committed again on its own so that each gets its own outcome.
#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<GroupState>,
    done: Condvar,
}

#[derive(Default)]
struct GroupState {
    queue: Vec<(u64, IssueTxn)>,
    results: HashMap<u64, Result<(), StoreError>>,
    next_ticket: u64,
    leader: bool,
}

impl GroupCommit {
    /// Commits `txn` durably, possibly together with concurrent ones.
    pub(crate) fn commit(&self, store: &dyn IssuerStore, txn: IssueTxn) -> Result<(), StoreError> {
        let mut st = lock(&self.state);
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.queue.push((ticket, txn));
        loop {
            if let Some(r) = st.results.remove(&ticket) {
                return r;
            }
            if st.leader {
                st = self.done.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            st.leader = true;
            let batch = std::mem::take(&mut st.queue);
            drop(st);
            let tickets: Vec<u64> = batch.iter().map(|(t, _)| *t).collect();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                commit_group(store, batch)
            }));
            st = lock(&self.state);
            match outcome {
                Ok(results) => st.results.extend(results),
                Err(_) => st.results.extend(tickets.into_iter().map(|t| {
                    (
                        t,
                        Err(StoreError::Backend("issuance commit panicked".into())),
                    )
                })),
            }
            st.leader = false;
            self.done.notify_all();
        }
    }
}

/// One durable transaction for the whole batch when it succeeds; otherwise
/// (nothing of it was applied) one per request, each with its own outcome.
fn commit_group(
    store: &dyn IssuerStore,
    batch: Vec<(u64, IssueTxn)>,
) -> Vec<(u64, Result<(), StoreError>)> {
    // Merge only what keeps each request's meaning: takes, inserts and
    // counter increments. Metadata writes and deletes, whose order between
    // requests would change in one transaction, are committed one by one.
    let mergeable = batch
        .iter()
        .all(|(_, x)| x.put.is_empty() && x.delete.is_empty());
    if batch.len() == 1 || !mergeable {
        return commit_each(store, batch);
    }
    let mut merged = IssueTxn::default();
    let mut sums: Vec<(Vec<u8>, u64)> = Vec::new();
    for (_, x) in &batch {
        merged.absent.extend(x.absent.iter().cloned());
        merged.take.extend(x.take.iter().cloned());
        merged.insert.extend(x.insert.iter().cloned());
        for (k, by) in &x.increment {
            match sums.iter_mut().find(|(s, _)| s == k) {
                Some((_, n)) => match n.checked_add(*by) {
                    Some(sum) => *n = sum,
                    // The sum would not mean the sequence of increments.
                    None => return commit_each(store, batch),
                },
                None => sums.push((k.clone(), *by)),
            }
        }
    }
    merged.increment = sums;
    match store.issue(merged) {
        Ok(()) => batch.into_iter().map(|(t, _)| (t, Ok(()))).collect(),
        Err(_) => commit_each(store, batch),
    }
}

/// One durable transaction per request.
fn commit_each(
    store: &dyn IssuerStore,
    batch: Vec<(u64, IssueTxn)>,
) -> Vec<(u64, Result<(), StoreError>)> {
    batch
        .into_iter()
        .map(|(t, x)| (t, store.issue(x)))
        .collect()
}

fn lock<T>(l: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::{Mark, RedbStore};

    const SET: &[u8] = b"invite/g";
    const COUNTER: &[u8] = b"tokens-issued/x";

    fn redeem(code: u8) -> IssueTxn {
        IssueTxn {
            take: vec![(SET.to_vec(), Mark([code; 32]))],
            increment: vec![(COUNTER.to_vec(), 1)],
            ..IssueTxn::default()
        }
    }

    #[test]
    fn a_failing_request_in_a_group_fails_alone_and_the_others_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        store
            .add_marks(SET, &[Mark([1; 32]), Mark([2; 32])])
            .unwrap();
        // Code 3 was never minted; code 1 is redeemed twice in one group.
        let got = commit_group(
            &store,
            vec![
                (0, redeem(1)),
                (1, redeem(3)),
                (2, redeem(1)),
                (3, redeem(2)),
            ],
        );
        let outcome: Vec<(u64, bool)> = got.iter().map(|(t, r)| (*t, r.is_ok())).collect();
        assert_eq!(outcome, [(0, true), (1, false), (2, false), (3, true)]);
        assert!(matches!(
            got[1].1,
            Err(StoreError::MarkMissing { position: 0 })
        ));
        assert!(matches!(
            got[2].1,
            Err(StoreError::MarkMissing { position: 0 })
        ));
        assert_eq!(store.counter(COUNTER).unwrap(), 2);
        assert!(!store.contains_mark(SET, &Mark([1; 32])).unwrap());
        assert!(!store.contains_mark(SET, &Mark([2; 32])).unwrap());

        // A group that succeeds is one transaction with the counters summed.
        store
            .add_marks(SET, &[Mark([4; 32]), Mark([5; 32])])
            .unwrap();
        let got = commit_group(&store, vec![(7, redeem(4)), (8, redeem(5))]);
        assert!(got.iter().all(|(_, r)| r.is_ok()));
        assert_eq!(store.counter(COUNTER).unwrap(), 4);
    }

    #[test]
    fn concurrent_commits_each_get_their_own_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let marks: Vec<Mark> = (0..32u8).map(|i| Mark([i; 32])).collect();
        store.add_marks(SET, &marks).unwrap();
        let group = GroupCommit::default();
        // 64 threads, each of the 32 codes redeemed twice.
        let ok = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for i in 0..64u8 {
                let (group, store, ok) = (&group, &store, &ok);
                s.spawn(move || match group.commit(store, redeem(i % 32)) {
                    Ok(()) => {
                        ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) => assert!(matches!(e, StoreError::MarkMissing { .. }), "{e}"),
                });
            }
        });
        assert_eq!(ok.into_inner(), 32);
        assert_eq!(store.counter(COUNTER).unwrap(), 32);
        let st = lock(&group.state);
        assert!(st.queue.is_empty() && st.results.is_empty() && !st.leader);
    }
}
