//! RFC 6962 / RFC 9162 Merkle tree over SHA-256 (SPEC §10, R-LOG-1…R-LOG-9):
//! hashing, the incremental tree kept by the sequencer, proof generation over
//! stored subtree hashes, and proof verification.
//!
//! # Coordinates
//!
//! A [`NodeId`] `{ level, index }` names the root of the *complete* subtree over
//! leaves `[index·2^level, (index+1)·2^level)`. Those are the only hashes that
//! never change once written, so they are what a log stores (the Go
//! `sumdb/tlog` "stored hashes"): [`Tree::append_with`] reports each one as it
//! is completed, and every proof is computed from them through a
//! [`HashReader`]. Hashes of incomplete subtrees (the right edge of a tree whose
//! size is not a power of two) are recomputed from complete ones on demand.
//!
//! # Example
//!
//! ```
//! use pledge_protocol::merkle::{self, MemoryHashes};
//!
//! let mut log = MemoryHashes::new();
//! for entry in [&b"a"[..], b"b", b"c"] {
//!     log.push(merkle::leaf_hash(entry))?;
//! }
//! let root = log.root();
//! let proof = merkle::inclusion_proof(1, 3, &log)?;
//! merkle::verify_inclusion(&merkle::leaf_hash(b"b"), 1, 3, &proof, &root)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::hash::{Hash, sha256};

/// Domain-separation prefix of a leaf hash (RFC 9162 §2.1.1). SPEC R-LOG-1.
pub const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of an interior node hash (RFC 9162 §2.1.1). SPEC R-LOG-2.
pub const NODE_PREFIX: u8 = 0x01;

/// `SHA-256(0x00 ‖ entry)`: the hash of a log entry. SPEC R-LOG-1.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    Hash(sha256(&[&[LEAF_PREFIX], entry]))
}

/// `SHA-256(0x01 ‖ left ‖ right)`: the hash of an interior node. SPEC R-LOG-2.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Hash(sha256(&[&[NODE_PREFIX], left.as_bytes(), right.as_bytes()]))
}

/// The root of the empty tree: SHA-256 of the empty string. SPEC R-LOG-3.
pub fn empty_root() -> Hash {
    Hash(sha256(&[]))
}

/// The root of the complete subtree over leaves
/// `[index·2^level, (index+1)·2^level)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves (0 = a leaf hash).
    pub level: u8,
    /// Position among the nodes of that level, from the left, starting at 0.
    pub index: u64,
}

impl NodeId {
    /// The node at `level`, `index`.
    pub const fn new(level: u8, index: u64) -> Self {
        Self { level, index }
    }

    /// The leaf hash of leaf `index`.
    pub const fn leaf(index: u64) -> Self {
        Self { level: 0, index }
    }

    /// The leaves `[start, end)` this node covers, or `None` if `end` would not
    /// fit in a `u64` (no such node exists in any tree this crate handles).
    pub fn leaf_range(&self) -> Option<(u64, u64)> {
        let width = 1u64.checked_shl(u32::from(self.level))?;
        let start = self.index.checked_mul(width)?;
        let end = start.checked_add(width)?;
        Some((start, end))
    }
}

/// Reads stored complete-subtree hashes: the server's hash store, an in-memory
/// tree ([`MemoryHashes`]) or hashes read out of fetched tiles
/// ([`crate::tile::TileHashes`]).
pub trait HashReader {
    /// Why a hash could not be read (missing, I/O error in the caller's store…).
    type Error;

    /// The hash of the complete subtree `node`.
    ///
    /// # Errors
    /// Whatever the store reports, typically "not stored".
    fn read_hash(&self, node: NodeId) -> Result<Hash, Self::Error>;

    /// The hashes of `nodes`, in the same order. Proof generation calls this
    /// once per proof, so a store can batch its reads; the default reads one
    /// by one. Must return exactly `nodes.len()` hashes.
    ///
    /// # Errors
    /// As [`HashReader::read_hash`].
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, Self::Error> {
        nodes.iter().map(|n| self.read_hash(*n)).collect()
    }
}

impl<R: HashReader + ?Sized> HashReader for &R {
    type Error = R::Error;

    fn read_hash(&self, node: NodeId) -> Result<Hash, Self::Error> {
        (**self).read_hash(node)
    }

    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, Self::Error> {
        (**self).read_hashes(nodes)
    }
}

/// Why a proof was refused, or could not be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// An inclusion proof was asked for or checked against a tree of size 0.
    #[error("a tree of size 0 has no leaves to prove")]
    EmptyTree,
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// Leaf index given.
        index: u64,
        /// Tree size given.
        size: u64,
    },
    /// A consistency proof from a larger tree to a smaller one.
    #[error("old tree size {old} is larger than new tree size {new}")]
    OldLargerThanNew {
        /// Old size given.
        old: u64,
        /// New size given.
        new: u64,
    },
    /// The proof does not have the number of hashes RFC 9162 prescribes for
    /// these sizes (extra or missing elements). SPEC R-LOG-7.
    #[error("proof has {got} hashes; these sizes need exactly {expected}")]
    WrongLength {
        /// Hashes the sizes call for.
        expected: usize,
        /// Hashes supplied.
        got: usize,
    },
    /// The proof does not lead to the (new) root given.
    #[error("the proof does not lead to the given root")]
    RootMismatch,
    /// The consistency proof does not lead to the old root given (for old
    /// size 0 the old root must be the empty-tree root).
    #[error("the proof does not lead to the given old root")]
    OldRootMismatch,
}

/// Why a proof or a root could not be computed from stored hashes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProveError<E> {
    /// The request itself is invalid (size 0, index out of range, old > new).
    #[error(transparent)]
    Invalid(#[from] ProofError),
    /// The hash reader failed.
    #[error("reading a stored hash failed: {0}")]
    Read(E),
    /// The hash reader broke its contract and returned the wrong number of hashes.
    #[error("hash reader returned {returned} hashes for {requested} requested")]
    ReaderContract {
        /// Hashes requested.
        requested: usize,
        /// Hashes returned.
        returned: usize,
    },
}

/// Why an incremental tree could not grow or be restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// The tree already holds `u64::MAX` leaves.
    #[error("the tree is full: it already holds 2^64 - 1 leaves")]
    Full,
    /// A persisted frontier does not have one hash per set bit of the size.
    #[error("a frontier for tree size {size} has {expected} hashes, got {got}")]
    FrontierLength {
        /// Tree size given.
        size: u64,
        /// `size.count_ones()`.
        expected: usize,
        /// Hashes given.
        got: usize,
    },
}

/// The complete subtrees that make up a tree of `size` leaves, largest (left)
/// first: one per set bit of `size`. Their hashes are the tree's *frontier*.
pub fn frontier_nodes(size: u64) -> impl Iterator<Item = NodeId> {
    let mut start = 0u64;
    (0..64u8).rev().filter_map(move |level| {
        let width = 1u64 << level;
        if size & width == 0 {
            return None;
        }
        let node = NodeId::new(level, start >> level);
        // Cannot overflow: start + width <= size.
        start += width;
        Some(node)
    })
}

/// The nodes to read to compute the root of a tree of `size` leaves
/// (the frontier of `size`; empty for size 0).
pub fn tree_root_nodes(size: u64) -> Vec<NodeId> {
    frontier_nodes(size).collect()
}

/// Folds subtree hashes right to left: `h0 ‖ (h1 ‖ (h2 ‖ …))`. This is
/// MTH of a range whose complete subtrees are `hashes`, largest first
/// (RFC 9162 §2.1.1 splits at the largest power of two).
fn fold_right(hashes: &[Hash]) -> Hash {
    let mut iter = hashes.iter().rev();
    let Some(last) = iter.next() else {
        return empty_root();
    };
    iter.fold(*last, |acc, h| node_hash(h, &acc))
}

/// The largest power of two strictly below `n`, for `n >= 2` (RFC 9162 §2.1.1's `k`).
fn split_point(n: u64) -> u64 {
    // n - 1 >= 1, so ilog2 is defined and < 64.
    1u64 << (n.saturating_sub(1).max(1)).ilog2()
}

/// Pushes the complete subtrees of the range `[lo, hi)`, largest first. The
/// range must be aligned: `lo` a multiple of the largest power of two not
/// above `hi - lo`, which holds for every range RFC 9162's recursion produces.
fn push_range_nodes(lo: u64, hi: u64, out: &mut Vec<NodeId>) -> usize {
    let mut start = lo;
    let mut rest = hi.saturating_sub(lo);
    let mut count = 0;
    while rest > 0 {
        let level = rest.ilog2();
        let width = 1u64 << level;
        // level < 64, so it fits in a u8.
        out.push(NodeId::new(level as u8, start >> level));
        start += width;
        rest -= width;
        count += 1;
    }
    count
}

/// The ranges `[lo, hi)` whose hashes form PATH(index, D[size]) (RFC 9162
/// §2.1.3.1), in proof order (bottom up).
fn inclusion_ranges(index: u64, size: u64) -> Result<Vec<(u64, u64)>, ProofError> {
    if size == 0 {
        return Err(ProofError::EmptyTree);
    }
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut lo, mut hi) = (0u64, size);
    let mut ranges = Vec::with_capacity(64);
    while hi - lo > 1 {
        let mid = lo + split_point(hi - lo);
        if index < mid {
            ranges.push((mid, hi));
            hi = mid;
        } else {
            ranges.push((lo, mid));
            lo = mid;
        }
    }
    ranges.reverse();
    Ok(ranges)
}

/// The ranges whose hashes form PROOF(old, D[new]) (RFC 9162 §2.1.4.1), in
/// proof order. Empty when `old == 0` or `old == new`.
fn consistency_ranges(old: u64, new: u64) -> Result<Vec<(u64, u64)>, ProofError> {
    if old > new {
        return Err(ProofError::OldLargerThanNew { old, new });
    }
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    let (mut lo, mut hi) = (0u64, new);
    let mut whole = true; // the RFC's `b`: still on the old tree's root path
    let mut ranges = Vec::with_capacity(64);
    // Invariant: lo < old < hi until the loop ends with hi == old.
    while hi != old {
        let mid = lo + split_point(hi - lo);
        if old <= mid {
            ranges.push((mid, hi));
            hi = mid;
        } else {
            ranges.push((lo, mid));
            lo = mid;
            whole = false;
        }
    }
    if !whole {
        // [lo, old) is a complete subtree: the loop ends after a left step.
        ranges.push((lo, hi));
    }
    ranges.reverse();
    Ok(ranges)
}

/// Reads the nodes of `ranges` in one batch and folds each range.
fn compute_ranges<R: HashReader + ?Sized>(
    ranges: &[(u64, u64)],
    reader: &R,
) -> Result<Vec<Hash>, ProveError<R::Error>> {
    let mut nodes = Vec::new();
    let mut counts = Vec::with_capacity(ranges.len());
    for &(lo, hi) in ranges {
        counts.push(push_range_nodes(lo, hi, &mut nodes));
    }
    let hashes = read_exact(&nodes, reader)?;
    let mut rest = hashes.as_slice();
    let mut out = Vec::with_capacity(ranges.len());
    for n in counts {
        let Some((group, tail)) = rest.split_at_checked(n) else {
            // INVARIANT: read_exact returned one hash per node and the counts
            // sum to the node count; reported rather than panicking.
            return Err(ProveError::ReaderContract {
                requested: nodes.len(),
                returned: hashes.len(),
            });
        };
        out.push(fold_right(group));
        rest = tail;
    }
    Ok(out)
}

fn read_exact<R: HashReader + ?Sized>(
    nodes: &[NodeId],
    reader: &R,
) -> Result<Vec<Hash>, ProveError<R::Error>> {
    if nodes.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = reader.read_hashes(nodes).map_err(ProveError::Read)?;
    if hashes.len() != nodes.len() {
        return Err(ProveError::ReaderContract {
            requested: nodes.len(),
            returned: hashes.len(),
        });
    }
    Ok(hashes)
}

fn nodes_of(ranges: &[(u64, u64)]) -> Vec<NodeId> {
    let mut nodes = Vec::new();
    for &(lo, hi) in ranges {
        push_range_nodes(lo, hi, &mut nodes);
    }
    nodes
}

/// The stored nodes [`inclusion_proof`] reads for (`index`, `size`): a client
/// that serves proofs from tiles fetches the tiles holding these
/// ([`crate::tile::tiles_for_nodes`]).
///
/// # Errors
/// [`ProofError::EmptyTree`], [`ProofError::IndexOutOfRange`].
pub fn inclusion_proof_nodes(index: u64, size: u64) -> Result<Vec<NodeId>, ProofError> {
    Ok(nodes_of(&inclusion_ranges(index, size)?))
}

/// The stored nodes [`consistency_proof`] reads for (`old`, `new`).
///
/// # Errors
/// [`ProofError::OldLargerThanNew`].
pub fn consistency_proof_nodes(old: u64, new: u64) -> Result<Vec<NodeId>, ProofError> {
    Ok(nodes_of(&consistency_ranges(old, new)?))
}

/// The number of hashes in the inclusion proof for (`index`, `size`).
///
/// # Errors
/// [`ProofError::EmptyTree`], [`ProofError::IndexOutOfRange`].
pub fn inclusion_proof_len(index: u64, size: u64) -> Result<usize, ProofError> {
    Ok(inclusion_ranges(index, size)?.len())
}

/// The number of hashes in the consistency proof from `old` to `new`
/// (0 when `old` is 0 or equals `new`).
///
/// # Errors
/// [`ProofError::OldLargerThanNew`].
pub fn consistency_proof_len(old: u64, new: u64) -> Result<usize, ProofError> {
    Ok(consistency_ranges(old, new)?.len())
}

/// The inclusion proof (audit path) of leaf `index` in the tree of the first
/// `size` leaves, RFC 9162 §2.1.3.1, computed from stored hashes. `size` may
/// be any past size of the log. SPEC R-LOG-5.
///
/// # Errors
/// [`ProofError::EmptyTree`] / [`ProofError::IndexOutOfRange`] (as
/// [`ProveError::Invalid`]), or the reader's failure.
pub fn inclusion_proof<R: HashReader + ?Sized>(
    index: u64,
    size: u64,
    reader: &R,
) -> Result<Vec<Hash>, ProveError<R::Error>> {
    compute_ranges(&inclusion_ranges(index, size)?, reader)
}

/// The consistency proof from the tree of `old` leaves to the tree of `new`
/// leaves, RFC 9162 §2.1.4.1. Empty when `old` is 0 or equals `new`
/// (R-LOG-8). SPEC R-LOG-6.
///
/// # Errors
/// [`ProofError::OldLargerThanNew`] (as [`ProveError::Invalid`]), or the
/// reader's failure.
pub fn consistency_proof<R: HashReader + ?Sized>(
    old: u64,
    new: u64,
    reader: &R,
) -> Result<Vec<Hash>, ProveError<R::Error>> {
    compute_ranges(&consistency_ranges(old, new)?, reader)
}

/// The root of the tree of the first `size` leaves (any past size), from
/// stored hashes. SPEC R-LOG-3.
///
/// # Errors
/// The reader's failure.
pub fn tree_root<R: HashReader + ?Sized>(
    size: u64,
    reader: &R,
) -> Result<Hash, ProveError<R::Error>> {
    let nodes = tree_root_nodes(size);
    Ok(fold_right(&read_exact(&nodes, reader)?))
}

/// Verifies that `leaf` is leaf `index` of the tree of `size` leaves whose
/// root is `root`, with the algorithm of RFC 9162 §2.1.3.2. The whole proof
/// must be used: extra or missing hashes are rejected. SPEC R-LOG-7.
///
/// # Errors
/// [`ProofError::EmptyTree`], [`ProofError::IndexOutOfRange`],
/// [`ProofError::WrongLength`], [`ProofError::RootMismatch`].
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let expected = inclusion_proof_len(index, size)?;
    if proof.len() != expected {
        return Err(ProofError::WrongLength {
            expected,
            got: proof.len(),
        });
    }
    // RFC 9162 §2.1.3.2 steps 2-5 (index < size, so size - 1 cannot wrap).
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongLength {
                expected,
                got: proof.len(),
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength {
            expected,
            got: proof.len(),
        });
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of `old_size` leaves with root `old_root` is a
/// prefix of the tree of `new_size` leaves with root `new_root`, with the
/// algorithm of RFC 9162 §2.1.4.2; the whole proof must be used. For
/// `old_size == new_size` the proof must be empty and the roots equal; for
/// `old_size == 0` the proof must be empty and `old_root` the empty-tree root
/// (the empty tree is a prefix of every tree). SPEC R-LOG-7, R-LOG-8.
///
/// # Errors
/// [`ProofError::OldLargerThanNew`], [`ProofError::WrongLength`],
/// [`ProofError::OldRootMismatch`], [`ProofError::RootMismatch`].
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    let expected = consistency_proof_len(old_size, new_size)?;
    if proof.len() != expected {
        return Err(ProofError::WrongLength {
            expected,
            got: proof.len(),
        });
    }
    if old_size == 0 {
        // SPEC R-LOG-8
        if *old_root != empty_root() {
            return Err(ProofError::OldRootMismatch);
        }
        if new_size == 0 && *new_root != empty_root() {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }
    if old_size == new_size {
        // SPEC R-LOG-8
        if old_root != new_root {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }
    // RFC 9162 §2.1.4.2. Step 1 (empty path) is covered by the length check:
    // 0 < old < new always needs at least one hash.
    let (first, rest) = if old_size.is_power_of_two() {
        (*old_root, proof) // step 2: prepend old_root
    } else {
        match proof.split_first() {
            Some((f, r)) => (*f, r),
            None => {
                return Err(ProofError::WrongLength {
                    expected,
                    got: proof.len(),
                });
            }
        }
    };
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (first, first);
    for c in rest {
        if snode == 0 {
            return Err(ProofError::WrongLength {
                expected,
                got: proof.len(),
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength {
            expected,
            got: proof.len(),
        });
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The sequencer's incremental tree: the size and the frontier (one hash per
/// complete subtree of [`frontier_nodes`]), O(log n) memory, O(1) amortised
/// hashing per append. SPEC R-LOG-4.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Tree {
    size: u64,
    /// Hashes of `frontier_nodes(size)`, largest subtree first.
    frontier: Vec<Hash>,
}

impl Tree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root hash (RFC 9162 §2.1.1 MTH); [`empty_root`] for size 0.
    pub fn root(&self) -> Hash {
        fold_right(&self.frontier)
    }

    /// The frontier hashes, largest subtree first (the hashes of
    /// [`frontier_nodes`]`(self.size())`). Persist these with the size to
    /// restore the tree with [`Tree::from_frontier`].
    pub fn frontier(&self) -> &[Hash] {
        &self.frontier
    }

    /// Restores a tree from its size and frontier.
    ///
    /// # Errors
    /// [`TreeError::FrontierLength`] if `frontier.len() != size.count_ones()`.
    pub fn from_frontier(size: u64, frontier: Vec<Hash>) -> Result<Self, TreeError> {
        let expected = size.count_ones() as usize;
        if frontier.len() != expected {
            return Err(TreeError::FrontierLength {
                size,
                expected,
                got: frontier.len(),
            });
        }
        Ok(Self { size, frontier })
    }

    /// Rebuilds the tree of `size` leaves from stored hashes (reads the
    /// `size.count_ones()` frontier nodes).
    ///
    /// # Errors
    /// The reader's failure.
    pub fn from_reader<R: HashReader + ?Sized>(
        size: u64,
        reader: &R,
    ) -> Result<Self, ProveError<R::Error>> {
        let frontier = read_exact(&tree_root_nodes(size), reader)?;
        Ok(Self { size, frontier })
    }

    /// Appends a leaf hash; returns its index.
    ///
    /// # Errors
    /// [`TreeError::Full`] at `u64::MAX` leaves.
    pub fn append(&mut self, leaf: Hash) -> Result<u64, TreeError> {
        self.append_with(leaf, |_, _| {})
    }

    /// Appends a leaf hash and calls `on_node` for every complete subtree the
    /// append produces, bottom up: first `(NodeId::leaf(index), leaf)`, then
    /// each parent it completes. Storing these (the Go tlog "stored hashes")
    /// is enough to serve every proof, root and tile of every size.
    ///
    /// # Errors
    /// [`TreeError::Full`] at `u64::MAX` leaves.
    pub fn append_with(
        &mut self,
        leaf: Hash,
        mut on_node: impl FnMut(NodeId, Hash),
    ) -> Result<u64, TreeError> {
        let index = self.size;
        let new_size = index.checked_add(1).ok_or(TreeError::Full)?;
        on_node(NodeId::leaf(index), leaf);
        let mut hash = leaf;
        let mut node = NodeId::leaf(index);
        // Each trailing 1 bit of `index` is a complete subtree on the frontier
        // that the new leaf's subtree now completes.
        while node.index & 1 == 1 {
            let Some(left) = self.frontier.pop() else {
                // INVARIANT: frontier has one hash per set bit of size; the
                // trailing ones of `index` are among them.
                break;
            };
            hash = node_hash(&left, &hash);
            node = NodeId::new(node.level + 1, node.index >> 1);
            on_node(node, hash);
        }
        self.frontier.push(hash);
        self.size = new_size;
        Ok(index)
    }
}

/// Every complete-subtree hash of a tree, in memory: a [`HashReader`] for
/// tests, clients and auditors that rebuild a whole log. About 64 bytes per
/// leaf.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryHashes {
    /// `levels[l][i]` is the hash of `NodeId { level: l, index: i }`.
    levels: Vec<Vec<Hash>>,
}

/// [`MemoryHashes`] has no hash for this node: it is not a complete subtree of
/// the tree held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no stored hash for level {} index {}: not a complete subtree of the tree held", .0.level, .0.index)]
pub struct MissingHash(pub NodeId);

impl MemoryHashes {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends a leaf hash; returns its index.
    ///
    /// # Errors
    /// [`TreeError::Full`] at `u64::MAX` leaves.
    pub fn push(&mut self, leaf: Hash) -> Result<u64, TreeError> {
        let index = self.size();
        index.checked_add(1).ok_or(TreeError::Full)?;
        let mut node = NodeId::leaf(index);
        let mut hash = leaf;
        loop {
            let level = usize::from(node.level);
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            let Some(row) = self.levels.get_mut(level) else {
                break; // INVARIANT: pushed just above.
            };
            row.push(hash);
            if node.index & 1 == 0 {
                break;
            }
            // The left sibling exists: it was stored before this node.
            let Some(left) = row.len().checked_sub(2).and_then(|i| row.get(i)) else {
                break; // INVARIANT: index is odd, so row holds >= 2 hashes.
            };
            hash = node_hash(left, &hash);
            node = NodeId::new(node.level + 1, node.index >> 1);
        }
        Ok(index)
    }

    /// The root of the whole tree held.
    pub fn root(&self) -> Hash {
        let hashes: Vec<Hash> = frontier_nodes(self.size())
            .filter_map(|n| self.read_hash(n).ok())
            .collect();
        fold_right(&hashes)
    }
}

impl HashReader for MemoryHashes {
    type Error = MissingHash;

    fn read_hash(&self, node: NodeId) -> Result<Hash, MissingHash> {
        usize::try_from(node.index)
            .ok()
            .and_then(|i| self.levels.get(usize::from(node.level))?.get(i))
            .copied()
            .ok_or(MissingHash(node))
    }
}

/// A tree that grows one leaf at a time: [`Tree`] (the frontier only, for a
/// ledger that stores its hashes elsewhere) or [`MemoryHashes`] (every
/// hash, for proofs over a rebuilt log). What [`crate::replay::Replayer`]
/// appends leaves to.
pub trait GrowingTree {
    /// Number of leaves.
    fn size(&self) -> u64;

    /// The root hash of the whole tree.
    fn root(&self) -> Hash;

    /// Appends a leaf hash; returns its index.
    ///
    /// # Errors
    /// [`TreeError::Full`] at `u64::MAX` leaves.
    fn append_leaf(&mut self, leaf: Hash) -> Result<u64, TreeError>;
}

impl GrowingTree for Tree {
    fn size(&self) -> u64 {
        self.size
    }
    fn root(&self) -> Hash {
        Tree::root(self)
    }
    fn append_leaf(&mut self, leaf: Hash) -> Result<u64, TreeError> {
        self.append(leaf)
    }
}

impl GrowingTree for MemoryHashes {
    fn size(&self) -> u64 {
        MemoryHashes::size(self)
    }
    fn root(&self) -> Hash {
        MemoryHashes::root(self)
    }
    fn append_leaf(&mut self, leaf: Hash) -> Result<u64, TreeError> {
        self.push(leaf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MTH straight from RFC 9162 §2.1.1, recursive, for cross-checking.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            empty_root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Tree::new().root(), empty_root());
        assert_eq!(MemoryHashes::new().root(), empty_root());
    }

    #[test]
    fn incremental_roots_match_recursive_definition() {
        let all = leaves(70);
        let mut tree = Tree::new();
        let mut mem = MemoryHashes::new();
        for (i, l) in all.iter().enumerate() {
            assert_eq!(tree.append(*l), Ok(i as u64));
            assert_eq!(mem.push(*l), Ok(i as u64));
            let want = mth(&all[..=i]);
            assert_eq!(tree.root(), want);
            assert_eq!(mem.root(), want);
        }
        for size in 0..=70u64 {
            assert_eq!(tree_root(size, &mem).unwrap(), mth(&all[..size as usize]));
        }
    }

    #[test]
    fn append_with_reports_every_complete_subtree_once() {
        let all = leaves(37);
        let mut tree = Tree::new();
        let mut mem = MemoryHashes::new();
        let mut seen = Vec::new();
        for l in &all {
            tree.append_with(*l, |n, h| seen.push((n, h))).unwrap();
            mem.push(*l).unwrap();
        }
        // 37 leaves: 37 + 18 + 9 + 4 + 2 + 1 complete subtrees.
        assert_eq!(seen.len(), 37 + 18 + 9 + 4 + 2 + 1);
        for (n, h) in seen {
            assert_eq!(mem.read_hash(n), Ok(h));
            let (lo, hi) = n.leaf_range().unwrap();
            assert_eq!(h, mth(&all[lo as usize..hi as usize]));
        }
    }

    #[test]
    fn split_point_is_largest_power_of_two_below() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(u64::MAX), 1 << 63);
        assert_eq!(split_point((1 << 63) + 1), 1 << 63);
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        // Lengths and node plans at the edge of u64.
        let size = u64::MAX;
        assert_eq!(inclusion_proof_len(size - 1, size), Ok(63));
        assert_eq!(inclusion_proof_len(0, size), Ok(64));
        assert!(consistency_proof_len(size - 1, size).is_ok());
        assert!(consistency_proof_len(1, size).is_ok());
        assert_eq!(frontier_nodes(size).count(), 64);
        let nodes = inclusion_proof_nodes(size - 1, size).unwrap();
        assert!(nodes.iter().all(|n| n.leaf_range().is_some()));
        // Verification with garbage at huge sizes fails cleanly.
        let h = leaf_hash(b"x");
        let proof = vec![h; 63];
        assert_eq!(
            verify_inclusion(&h, size - 1, size, &proof, &h),
            Err(ProofError::RootMismatch)
        );
        let n = consistency_proof_len(size - 1, size).unwrap();
        assert!(verify_consistency(size - 1, size, &h, &h, &vec![h; n]).is_err());
        // A full tree refuses to grow.
        let mut full = Tree::from_frontier(u64::MAX, vec![h; 64]).unwrap();
        assert_eq!(full.append(h), Err(TreeError::Full));
        assert_eq!(full.size(), u64::MAX);
    }

    #[test]
    fn reader_contract_violation_is_an_error_not_a_panic() {
        struct Liar;
        impl HashReader for Liar {
            type Error = ();
            fn read_hash(&self, _: NodeId) -> Result<Hash, ()> {
                Ok(empty_root())
            }
            fn read_hashes(&self, _: &[NodeId]) -> Result<Vec<Hash>, ()> {
                Ok(vec![])
            }
        }
        assert!(matches!(
            inclusion_proof(3, 10, &Liar),
            Err(ProveError::ReaderContract { returned: 0, .. })
        ));
        assert!(matches!(
            tree_root(10, &Liar),
            Err(ProveError::ReaderContract {
                requested: 2,
                returned: 0
            })
        ));
    }
}
