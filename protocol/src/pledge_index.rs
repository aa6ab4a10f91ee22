//! The rules' memory of every pledge ever logged: a map from nullifier to a
//! small fixed-size state, laid out for a million pledges rather than for a
//! thousand.
//!
//! A `HashMap` keeps its load between 7/16 and 7/8 and doubles its table, so a
//! million 76-byte slots cost 2^21 slots, 161 MB (BENCHMARKS.md, "RSS"). This
//! index keeps almost everything in one vector sorted by nullifier (exactly
//! one slot per pledge, found by binary search) and only the pledges added
//! since the last merge in a hash map, at most a sixteenth of the sorted part
//! (plus [`MIN_RECENT`]). Merging costs one pass over the vector each time the
//! recent part fills, so inserting stays O(1) amortised (each element moves
//! about 16 times over the life of the index); lookups are O(log n).

use std::collections::HashMap;

use crate::hash::Nullifier;

/// Below this many recent entries no merge happens (small logs stay in the
/// hash map alone).
const MIN_RECENT: usize = 4096;

/// The sorted part grows by at most this fraction at each merge.
const RECENT_FRACTION: usize = 16;

/// Nullifier → `V`, each nullifier at most once.
#[derive(Debug, Clone)]
pub(crate) struct PledgeIndex<V> {
    /// Sorted by nullifier, no duplicates, disjoint from `recent`.
    sorted: Vec<(Nullifier, V)>,
    /// Inserted since the last merge.
    recent: HashMap<Nullifier, V>,
}

impl<V> Default for PledgeIndex<V> {
    fn default() -> Self {
        Self {
            sorted: Vec::new(),
            recent: HashMap::new(),
        }
    }
}

impl<V: Copy> PledgeIndex<V> {
    /// Number of nullifiers.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.sorted.len() + self.recent.len()
    }

    fn position(&self, n: &Nullifier) -> Result<usize, usize> {
        self.sorted.binary_search_by(|(k, _)| k.cmp(n))
    }

    /// The state of `n`, if present.
    pub(crate) fn get(&self, n: &Nullifier) -> Option<&V> {
        if let Some(v) = self.recent.get(n) {
            return Some(v);
        }
        self.position(n).ok().map(|i| &self.sorted[i].1)
    }

    /// The state of `n` to change in place, if present.
    pub(crate) fn get_mut(&mut self, n: &Nullifier) -> Option<&mut V> {
        if self.recent.contains_key(n) {
            return self.recent.get_mut(n);
        }
        match self.position(n) {
            Ok(i) => Some(&mut self.sorted[i].1),
            Err(_) => None,
        }
    }

    /// True if `n` is present.
    pub(crate) fn contains(&self, n: &Nullifier) -> bool {
        self.get(n).is_some()
    }

    /// Adds `n`, which must not be present (the rules check it first):
    /// returns false and changes nothing if it is.
    pub(crate) fn insert_new(&mut self, n: Nullifier, v: V) -> bool {
        if self.position(&n).is_ok() || self.recent.contains_key(&n) {
            return false;
        }
        self.recent.insert(n, v);
        if self.recent.len() >= MIN_RECENT.max(self.sorted.len() / RECENT_FRACTION) {
            self.merge();
        }
        true
    }

    /// Moves the recent entries into the sorted vector: sorts them, appends
    /// them, then merges the two sorted runs from the back, in place.
    fn merge(&mut self) {
        let mut fresh: Vec<(Nullifier, V)> = self.recent.drain().collect();
        fresh.sort_unstable_by_key(|e| e.0);
        let old = self.sorted.len();
        // Grow by exactly what is added: the vector is the index's whole
        // memory, doubling it would waste up to half.
        self.sorted.reserve_exact(fresh.len());
        self.sorted.extend_from_slice(&fresh);
        // Fill from the back: slot `k - 1` is free once the element that was
        // there has moved, and `k > i` until every fresh element is placed.
        let (mut i, mut j, mut k) = (old, fresh.len(), self.sorted.len());
        while j > 0 {
            if i > 0 && self.sorted[i - 1].0 > fresh[j - 1].0 {
                self.sorted[k - 1] = self.sorted[i - 1];
                i -= 1;
            } else {
                self.sorted[k - 1] = fresh[j - 1];
                j -= 1;
            }
            k -= 1;
        }
        // The recent map's table is kept for the next run; it is at most a
        // sixteenth of the index.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn nul(x: u64) -> Nullifier {
        // Spread over the whole key space, in an order unrelated to `x`.
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&x.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
        b[31] = x as u8;
        Nullifier(b)
    }

    #[test]
    fn agrees_with_a_map_through_many_merges() {
        let mut index = PledgeIndex::default();
        let mut model = BTreeMap::new();
        for x in 0..40_000u64 {
            assert!(index.insert_new(nul(x), x as u32));
            model.insert(nul(x), x as u32);
            // A second insert of a present key is refused, wherever it lives.
            if x % 997 == 0 {
                assert!(!index.insert_new(nul(x / 2), 0));
            }
            if x % 3 == 0
                && let Some(v) = index.get_mut(&nul(x / 3))
            {
                *v += 1;
                *model.get_mut(&nul(x / 3)).unwrap() += 1;
            }
        }
        assert!(index.sorted.len() > 30_000, "merges happened");
        assert_eq!(index.len(), model.len());
        for (k, v) in &model {
            assert_eq!(index.get(k), Some(v));
        }
        assert!(index.sorted.windows(2).all(|w| w[0].0 < w[1].0));
        for x in 40_000..41_000u64 {
            assert!(!index.contains(&nul(x)));
            assert!(index.get_mut(&nul(x)).is_none());
        }
    }

    #[test]
    fn the_sorted_part_holds_one_slot_per_entry() {
        let mut index = PledgeIndex::default();
        for x in 0..100_000u64 {
            index.insert_new(nul(x), 0u32);
        }
        assert_eq!(index.len(), 100_000);
        assert_eq!(index.sorted.capacity(), index.sorted.len());
        assert!(index.recent.len() <= index.sorted.len() / RECENT_FRACTION);
    }
}
