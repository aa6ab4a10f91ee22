//! Merkle log and tlog-tiles: RFC 6962/9162 and C2SP known answers, failure
//! vectors, exhaustive and property tests, and cross-checks against two
//! independent implementations (`ct-merkle`, Cloudflare's `tlog_tiles`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use pledge_protocol::hash::Hash;
use pledge_protocol::merkle::{
    self, HashReader, MemoryHashes, NodeId, ProofError, ProveError, Tree, TreeError,
    consistency_proof, empty_root, inclusion_proof, leaf_hash, node_hash, tree_root,
    verify_consistency, verify_inclusion,
};
use pledge_protocol::tile::{
    self, BundleError, BundleId, TileError, TileHashes, TileId, TileResource, decode_bundle,
    encode_bundle, new_tiles, tile_data, tiles_for_nodes, tiles_for_size,
};
use proptest::prelude::*;
use serde::Deserialize;
use std::sync::OnceLock;

// ---------------------------------------------------------------- helpers

fn h(s: &str) -> Hash {
    Hash::from_hex(s).unwrap()
}

fn hs(v: &[String]) -> Vec<Hash> {
    v.iter().map(|s| h(s)).collect()
}

fn load<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn flip(hash: &Hash, bit: usize) -> Hash {
    let mut b = hash.0;
    b[(bit / 8) % 32] ^= 1 << (bit % 8);
    Hash(b)
}

/// A log of `n` leaves with entries `i.to_be_bytes()`, shared across tests.
fn test_log(n: u64) -> (Vec<Vec<u8>>, MemoryHashes) {
    let entries: Vec<Vec<u8>> = (0..n).map(|i| i.to_be_bytes().to_vec()).collect();
    let mut mem = MemoryHashes::new();
    for e in &entries {
        mem.push(leaf_hash(e)).unwrap();
    }
    (entries, mem)
}

fn log300() -> &'static (Vec<Vec<u8>>, MemoryHashes) {
    static LOG: OnceLock<(Vec<Vec<u8>>, MemoryHashes)> = OnceLock::new();
    LOG.get_or_init(|| test_log(300))
}

/// Largest power of two strictly below n (n >= 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 9162 §2.1.3.1 PATH(m, D[n]), recursive.
fn ref_path(m: usize, d: &[Hash]) -> Vec<Hash> {
    if d.len() <= 1 {
        return vec![];
    }
    let k = split(d.len());
    if m < k {
        let mut p = ref_path(m, &d[..k]);
        p.push(ref_mth(&d[k..]));
        p
    } else {
        let mut p = ref_path(m - k, &d[k..]);
        p.push(ref_mth(&d[..k]));
        p
    }
}

/// RFC 9162 §2.1.1 MTH, recursive.
fn ref_mth(d: &[Hash]) -> Hash {
    match d.len() {
        0 => empty_root(),
        1 => d[0],
        n => {
            let k = split(n);
            node_hash(&ref_mth(&d[..k]), &ref_mth(&d[k..]))
        }
    }
}

/// RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b), recursive.
fn ref_subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { vec![] } else { vec![ref_mth(d)] };
    }
    let k = split(n);
    if m <= k {
        let mut p = ref_subproof(m, &d[..k], b);
        p.push(ref_mth(&d[k..]));
        p
    } else {
        let mut p = ref_subproof(m - k, &d[k..], false);
        p.push(ref_mth(&d[..k]));
        p
    }
}

// ------------------------------------------------ RFC 6962 known answers

#[derive(Deserialize)]
struct RefTree {
    empty_root: String,
    leaf_hashes: Vec<LeafVector>,
    leaves: Vec<String>,
    node_hashes: Vec<Vec<String>>,
    roots: Vec<String>,
    frontiers: Vec<Vec<String>>,
    inclusion: Vec<InclusionVector>,
    consistency: Vec<ConsistencyVector>,
}

#[derive(Deserialize)]
struct LeafVector {
    name: String,
    entry: String,
    leaf_hash: String,
}

#[derive(Deserialize)]
struct InclusionVector {
    index: u64,
    size: u64,
    proof: Vec<String>,
}

#[derive(Deserialize)]
struct ConsistencyVector {
    old: u64,
    new: u64,
    proof: Vec<String>,
}

#[test]
fn rfc6962_reference_tree() {
    let v: RefTree = load("rfc6962_reference_tree.json");
    assert_eq!(empty_root(), h(&v.empty_root));
    for lv in &v.leaf_hashes {
        assert_eq!(
            leaf_hash(&hex::decode(&lv.entry).unwrap()),
            h(&lv.leaf_hash),
            "{}",
            lv.name
        );
    }
    let entries: Vec<Vec<u8>> = v.leaves.iter().map(|l| hex::decode(l).unwrap()).collect();
    let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();

    let mut tree = Tree::new();
    let mut mem = MemoryHashes::new();
    assert_eq!(tree.root(), h(&v.roots[0]));
    assert_eq!(tree.frontier(), &[] as &[Hash]);
    for (i, l) in leaves.iter().enumerate() {
        tree.append(*l).unwrap();
        mem.push(*l).unwrap();
        let size = i + 1;
        assert_eq!(tree.root(), h(&v.roots[size]), "root of size {size}");
        assert_eq!(mem.root(), h(&v.roots[size]), "root of size {size}");
        assert_eq!(
            tree.frontier(),
            hs(&v.frontiers[size]).as_slice(),
            "frontier of {size}"
        );
        assert_eq!(ref_mth(&leaves[..size]), h(&v.roots[size]));
    }
    for (size, root) in v.roots.iter().enumerate() {
        assert_eq!(
            tree_root(size as u64, &mem).unwrap(),
            h(root),
            "tree_root({size})"
        );
    }
    for (level, row) in v.node_hashes.iter().enumerate() {
        for (index, want) in row.iter().enumerate() {
            let node = NodeId::new(level as u8, index as u64);
            assert_eq!(mem.read_hash(node).unwrap(), h(want), "{node:?}");
        }
    }
    for iv in &v.inclusion {
        let proof = inclusion_proof(iv.index, iv.size, &mem).unwrap();
        assert_eq!(
            proof,
            hs(&iv.proof),
            "inclusion {} in {}",
            iv.index,
            iv.size
        );
        let root = h(&v.roots[iv.size as usize]);
        verify_inclusion(&leaves[iv.index as usize], iv.index, iv.size, &proof, &root).unwrap();
    }
    for cv in &v.consistency {
        let proof = consistency_proof(cv.old, cv.new, &mem).unwrap();
        assert_eq!(proof, hs(&cv.proof), "consistency {} -> {}", cv.old, cv.new);
        let (r1, r2) = (h(&v.roots[cv.old as usize]), h(&v.roots[cv.new as usize]));
        verify_consistency(cv.old, cv.new, &r1, &r2, &proof).unwrap();
    }
    // Every proof of the 8-leaf tree equals the RFC's recursive definition.
    for size in 1..=8usize {
        for index in 0..size {
            let want = ref_path(index, &leaves[..size]);
            assert_eq!(
                inclusion_proof(index as u64, size as u64, &mem).unwrap(),
                want
            );
        }
        for old in 1..=size {
            let want = ref_subproof(old, &leaves[..size], true);
            assert_eq!(
                consistency_proof(old as u64, size as u64, &mem).unwrap(),
                want
            );
        }
    }
}

#[derive(Deserialize)]
struct BadProofs {
    cases: Vec<BadProof>,
}

#[derive(Deserialize)]
struct BadProof {
    name: String,
    kind: String,
    #[serde(default)]
    leaf_hash: Option<String>,
    #[serde(default)]
    index: u64,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    root: Option<String>,
    #[serde(default)]
    old: u64,
    #[serde(default)]
    new: u64,
    #[serde(default)]
    old_root: Option<String>,
    #[serde(default)]
    new_root: Option<String>,
    proof: Vec<String>,
}

#[test]
fn rfc6962_bad_proofs_are_rejected() {
    let v: BadProofs = load("rfc6962_bad_proofs.json");
    assert!(v.cases.len() > 100);
    for c in &v.cases {
        let proof = hs(&c.proof);
        let result = match c.kind.as_str() {
            "inclusion" => verify_inclusion(
                &h(c.leaf_hash.as_deref().unwrap()),
                c.index,
                c.size,
                &proof,
                &h(c.root.as_deref().unwrap()),
            ),
            "consistency" => verify_consistency(
                c.old,
                c.new,
                &h(c.old_root.as_deref().unwrap()),
                &h(c.new_root.as_deref().unwrap()),
                &proof,
            ),
            k => panic!("unknown kind {k}"),
        };
        assert!(result.is_err(), "{} was accepted", c.name);
    }
}

#[test]
fn proof_errors_are_typed() {
    let (_, mem) = log300();
    let l = leaf_hash(b"x");
    assert_eq!(
        verify_inclusion(&l, 0, 0, &[], &l),
        Err(ProofError::EmptyTree)
    );
    assert_eq!(
        verify_inclusion(&l, 5, 5, &[], &l),
        Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
    );
    assert_eq!(
        verify_inclusion(&l, 0, 2, &[], &l),
        Err(ProofError::WrongLength {
            expected: 1,
            got: 0
        })
    );
    assert_eq!(
        verify_consistency(3, 2, &l, &l, &[]),
        Err(ProofError::OldLargerThanNew { old: 3, new: 2 })
    );
    assert!(matches!(
        inclusion_proof(0, 0, mem),
        Err(ProveError::Invalid(ProofError::EmptyTree))
    ));
    assert!(matches!(
        inclusion_proof(300, 300, mem),
        Err(ProveError::Invalid(ProofError::IndexOutOfRange { .. }))
    ));
    assert!(matches!(
        consistency_proof(5, 4, mem),
        Err(ProveError::Invalid(ProofError::OldLargerThanNew { .. }))
    ));
    // Sizes beyond what the reader holds: the reader's own error comes back.
    assert!(matches!(
        inclusion_proof(0, 301, mem),
        Err(ProveError::Read(merkle::MissingHash(_)))
    ));
    // Trivial consistency: from 0 and to the same size.
    let r = mem.root();
    assert_eq!(consistency_proof(0, 300, mem).unwrap(), vec![]);
    assert_eq!(consistency_proof(300, 300, mem).unwrap(), vec![]);
    verify_consistency(0, 300, &empty_root(), &r, &[]).unwrap();
    verify_consistency(300, 300, &r, &r, &[]).unwrap();
    verify_consistency(0, 0, &empty_root(), &empty_root(), &[]).unwrap();
    assert_eq!(
        verify_consistency(0, 0, &empty_root(), &r, &[]),
        Err(ProofError::RootMismatch)
    );
    assert_eq!(
        verify_consistency(0, 300, &r, &r, &[]),
        Err(ProofError::OldRootMismatch)
    );
}

// ------------------------------------------- exhaustive properties, 1..=300

fn check_inclusion_rejections(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) {
    let ctx = || format!("index {index} size {size}");
    for (k, p) in proof.iter().enumerate() {
        let mut bad = proof.to_vec();
        bad[k] = flip(p, (index as usize * 7 + size as usize * 13 + k * 31) % 256);
        assert!(
            verify_inclusion(leaf, index, size, &bad, root).is_err(),
            "flip {k}: {}",
            ctx()
        );
    }
    let bit = (index * 3 + size) as usize % 256;
    assert!(
        verify_inclusion(&flip(leaf, bit), index, size, proof, root).is_err(),
        "{}",
        ctx()
    );
    assert!(
        verify_inclusion(leaf, index, size, proof, &flip(root, bit)).is_err(),
        "{}",
        ctx()
    );
    let mut longer = proof.to_vec();
    longer.push(*root);
    assert!(
        verify_inclusion(leaf, index, size, &longer, root).is_err(),
        "{}",
        ctx()
    );
    let mut front = vec![*leaf];
    front.extend_from_slice(proof);
    assert!(
        verify_inclusion(leaf, index, size, &front, root).is_err(),
        "{}",
        ctx()
    );
    if let Some((_, shorter)) = proof.split_last() {
        assert!(
            verify_inclusion(leaf, index, size, shorter, root).is_err(),
            "{}",
            ctx()
        );
    }
    // Another position in the same tree.
    for other in [index.wrapping_sub(1), index + 1, index ^ 2] {
        if other != index {
            assert!(
                verify_inclusion(leaf, other, size, proof, root).is_err(),
                "index {other}: {}",
                ctx()
            );
        }
    }
}

#[test]
fn inclusion_proofs_for_every_size_and_index_up_to_300() {
    let (_, mem) = log300();
    let leaves: Vec<Hash> = (0..300)
        .map(|i| mem.read_hash(NodeId::leaf(i)).unwrap())
        .collect();
    for size in 1..=300u64 {
        let root = tree_root(size, mem).unwrap();
        for index in 0..size {
            let proof = inclusion_proof(index, size, mem).unwrap();
            assert_eq!(
                proof.len(),
                merkle::inclusion_proof_len(index, size).unwrap()
            );
            let leaf = &leaves[index as usize];
            verify_inclusion(leaf, index, size, &proof, &root).unwrap();
            // Flips are checked on a sample of indices to keep the debug run short.
            if index % 7 == 0 || index + 1 == size {
                check_inclusion_rejections(leaf, index, size, &proof, &root);
            }
        }
    }
}

fn check_consistency_rejections(old: u64, new: u64, r1: &Hash, r2: &Hash, proof: &[Hash]) {
    let ctx = || format!("{old} -> {new}");
    for (k, p) in proof.iter().enumerate() {
        let mut bad = proof.to_vec();
        bad[k] = flip(p, (old as usize * 5 + new as usize * 11 + k * 29) % 256);
        assert!(
            verify_consistency(old, new, r1, r2, &bad).is_err(),
            "flip {k}: {}",
            ctx()
        );
    }
    let bit = (old * 3 + new) as usize % 256;
    assert!(
        verify_consistency(old, new, &flip(r1, bit), r2, proof).is_err(),
        "{}",
        ctx()
    );
    assert!(
        verify_consistency(old, new, r1, &flip(r2, bit), proof).is_err(),
        "{}",
        ctx()
    );
    let mut longer = proof.to_vec();
    longer.push(*r2);
    assert!(
        verify_consistency(old, new, r1, r2, &longer).is_err(),
        "{}",
        ctx()
    );
    let mut front = vec![*r1];
    front.extend_from_slice(proof);
    assert!(
        verify_consistency(old, new, r1, r2, &front).is_err(),
        "{}",
        ctx()
    );
    if let Some((_, shorter)) = proof.split_last() {
        assert!(
            verify_consistency(old, new, r1, r2, shorter).is_err(),
            "{}",
            ctx()
        );
    }
    if old != new {
        assert!(
            verify_consistency(old, new, r2, r1, proof).is_err(),
            "swapped: {}",
            ctx()
        );
    }
}

#[test]
fn consistency_proofs_for_every_pair_of_sizes_up_to_300() {
    let (_, mem) = log300();
    let roots: Vec<Hash> = (0..=300).map(|s| tree_root(s, mem).unwrap()).collect();
    for new in 1..=300u64 {
        for old in 0..=new {
            let proof = consistency_proof(old, new, mem).unwrap();
            let (r1, r2) = (&roots[old as usize], &roots[new as usize]);
            verify_consistency(old, new, r1, r2, &proof).unwrap();
            if old > 0 && (old % 5 == 0 || old + 1 == new || new % 64 == 0) {
                check_consistency_rejections(old, new, r1, r2, &proof);
            }
        }
    }
}

// ------------------------------------------------------- proptest samples

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_flipped_bit_in_an_inclusion_proof_is_rejected(
        size in 1u64..=300, index_seed in any::<u64>(), elem in any::<usize>(), bit in 0usize..256
    ) {
        let (_, mem) = log300();
        let index = index_seed % size;
        let root = tree_root(size, mem).unwrap();
        let leaf = mem.read_hash(NodeId::leaf(index)).unwrap();
        let mut proof = inclusion_proof(index, size, mem).unwrap();
        prop_assert!(verify_inclusion(&leaf, index, size, &proof, &root).is_ok());
        prop_assert!(verify_inclusion(&flip(&leaf, bit), index, size, &proof, &root).is_err());
        prop_assert!(verify_inclusion(&leaf, index, size, &proof, &flip(&root, bit)).is_err());
        if !proof.is_empty() {
            let k = elem % proof.len();
            proof[k] = flip(&proof[k], bit);
            prop_assert!(verify_inclusion(&leaf, index, size, &proof, &root).is_err());
        }
    }

    #[test]
    fn any_flipped_bit_in_a_consistency_proof_is_rejected(
        new in 2u64..=300, old_seed in any::<u64>(), elem in any::<usize>(), bit in 0usize..256
    ) {
        let (_, mem) = log300();
        let old = 1 + old_seed % (new - 1);
        let (r1, r2) = (tree_root(old, mem).unwrap(), tree_root(new, mem).unwrap());
        let mut proof = consistency_proof(old, new, mem).unwrap();
        prop_assert!(verify_consistency(old, new, &r1, &r2, &proof).is_ok());
        prop_assert!(verify_consistency(old, new, &flip(&r1, bit), &r2, &proof).is_err());
        prop_assert!(verify_consistency(old, new, &r1, &flip(&r2, bit), &proof).is_err());
        let k = elem % proof.len();
        proof[k] = flip(&proof[k], bit);
        prop_assert!(verify_consistency(old, new, &r1, &r2, &proof).is_err());
    }

    #[test]
    fn verifiers_never_panic_on_arbitrary_input(
        index in any::<u64>(), size in any::<u64>(), old in any::<u64>(),
        n in 0usize..70, seed in any::<[u8; 32]>()
    ) {
        let proof: Vec<Hash> = (0..n).map(|i| flip(&Hash(seed), i)).collect();
        let x = Hash(seed);
        prop_assert!(verify_inclusion(&x, index, size, &proof, &flip(&x, 0)).is_err());
        // Accepting requires the roots to match the empty tree or each other.
        let r = verify_consistency(old, size, &x, &flip(&x, 0), &proof);
        prop_assert!(r.is_err());
        let _ = merkle::inclusion_proof_nodes(index, size);
        let _ = merkle::consistency_proof_nodes(old, size);
    }

    #[test]
    fn tile_paths_round_trip(level in 0u8..=7, index in any::<u64>(), width in 1u16..=256) {
        let shift = 8 * u32::from(level);
        let max_index = (u64::MAX >> shift) >> 8;
        let index = index % (max_index + 1);
        if let Ok(t) = TileId::new(level, index, width) {
            let p = t.path();
            prop_assert_eq!(TileId::from_path(&p), Ok(t));
            prop_assert!(BundleId::from_path(&p).is_err());
            if level == 0 {
                let b = t.bundle().unwrap();
                prop_assert_eq!(BundleId::from_path(&b.path()), Ok(b));
            }
            // Any one-byte change parses to nothing or to a tile with exactly that path.
            let bytes = p.as_bytes();
            for i in 0..bytes.len() {
                for c in [b'0', b'1', b'9', b'x', b'/', b'.', b'p'] {
                    let mut m = bytes.to_vec();
                    m[i] = c;
                    let m = String::from_utf8(m).unwrap();
                    if let Ok(r) = TileResource::parse(&m) {
                        prop_assert_eq!(r.path(), m);
                    }
                }
            }
        }
    }

    #[test]
    fn bundles_round_trip(entries in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..=256)) {
        let data = encode_bundle(&entries).unwrap();
        let width = entries.len() as u16;
        let id = BundleId::new(7, width).unwrap();
        let decoded = decode_bundle(&data, &id).unwrap();
        prop_assert_eq!(decoded.len(), entries.len());
        for (d, e) in decoded.iter().zip(&entries) {
            prop_assert_eq!(*d, e.as_slice());
        }
        if width > 1 {
            prop_assert!(decode_bundle(&data, &BundleId::new(7, width - 1).unwrap()).is_err());
        }
        if width < 256 {
            prop_assert!(decode_bundle(&data, &BundleId::new(7, width + 1).unwrap()).is_err());
        }
        prop_assert!(decode_bundle(&data[..data.len() - 1], &id).is_err());
        let mut longer = data.clone();
        longer.push(0);
        prop_assert!(decode_bundle(&longer, &id).is_err());
    }
}

// ---------------------------------------------------- frontier persistence

#[test]
fn frontier_round_trip_and_restore_from_stored_hashes() {
    let (entries, mem) = log300();
    let mut tree = Tree::new();
    for (i, e) in entries.iter().enumerate() {
        let size = i as u64;
        let restored = Tree::from_frontier(size, tree.frontier().to_vec()).unwrap();
        assert_eq!(restored, tree);
        assert_eq!(Tree::from_reader(size, mem).unwrap(), tree);
        // Wrong frontier lengths are refused.
        let mut longer = tree.frontier().to_vec();
        longer.push(empty_root());
        assert!(matches!(
            Tree::from_frontier(size, longer),
            Err(TreeError::FrontierLength { .. })
        ));
        if !tree.frontier().is_empty() {
            let shorter = tree.frontier()[1..].to_vec();
            assert!(Tree::from_frontier(size, shorter).is_err());
        }
        // A restored tree keeps growing exactly like the original.
        let mut a = restored;
        let leaf = leaf_hash(e);
        assert_eq!(a.append(leaf).unwrap(), size);
        assert_eq!(tree.append(leaf).unwrap(), size);
        assert_eq!(a, tree);
        assert_eq!(a.root(), tree_root(size + 1, mem).unwrap());
    }
}

#[test]
fn append_with_reports_what_memory_hashes_stores() {
    let (entries, mem) = log300();
    let mut tree = Tree::new();
    let mut count = 0u64;
    for e in entries {
        tree.append_with(leaf_hash(e), |node, hash| {
            assert_eq!(mem.read_hash(node).unwrap(), hash, "{node:?}");
            count += 1;
        })
        .unwrap();
    }
    // A tree of n leaves has n + n/2 + n/4 + ... complete subtrees.
    let want: u64 = (0..64).map(|l| 300u64 >> l).sum();
    assert_eq!(count, want);
}

// ------------------------------------------------------------ tile vectors

#[derive(Deserialize)]
struct TileVectors {
    tiles: Vec<TileVector>,
    bundles: Vec<BundleVector>,
    tiles_for_size: Vec<SizeVector>,
    bundle_encodings: Vec<BundleEncoding>,
}

#[derive(Deserialize)]
struct TileVector {
    level: u8,
    index: u64,
    width: u16,
    path: String,
}

#[derive(Deserialize)]
struct BundleVector {
    index: u64,
    width: u16,
    path: String,
}

#[derive(Deserialize)]
struct SizeVector {
    size: u64,
    levels: Vec<LevelCount>,
}

#[derive(Deserialize)]
struct LevelCount {
    level: u8,
    full: u64,
    partial_width: u16,
}

#[derive(Deserialize)]
struct BundleEncoding {
    name: String,
    index: u64,
    width: u16,
    entries: Vec<String>,
    bundle: String,
}

#[test]
fn c2sp_tile_path_vectors() {
    let v: TileVectors = load("c2sp_tlog_tiles_paths.json");
    for t in &v.tiles {
        let id = TileId::new(t.level, t.index, t.width).unwrap();
        assert_eq!(id.path(), t.path);
        assert_eq!(TileId::from_path(&t.path), Ok(id));
        assert_eq!(TileResource::parse(&t.path), Ok(TileResource::Hashes(id)));
    }
    for b in &v.bundles {
        let id = BundleId::new(b.index, b.width).unwrap();
        assert_eq!(id.path(), b.path);
        assert_eq!(BundleId::from_path(&b.path), Ok(id));
        assert_eq!(id.tile().bundle(), Some(id));
    }
    for s in &v.tiles_for_size {
        let tiles: Vec<TileId> = tiles_for_size(s.size).collect();
        let levels = tiles.iter().map(|t| t.level()).max().map_or(0, |l| l + 1);
        assert_eq!(usize::from(levels), s.levels.len(), "size {}", s.size);
        for lc in &s.levels {
            let at: Vec<&TileId> = tiles.iter().filter(|t| t.level() == lc.level).collect();
            let full = at.iter().filter(|t| t.is_full()).count() as u64;
            let partial: Vec<u16> = at
                .iter()
                .filter(|t| !t.is_full())
                .map(|t| t.width())
                .collect();
            assert_eq!(full, lc.full, "size {} level {}", s.size, lc.level);
            let want: Vec<u16> = if lc.partial_width == 0 {
                vec![]
            } else {
                vec![lc.partial_width]
            };
            assert_eq!(partial, want, "size {} level {}", s.size, lc.level);
            // Full tiles are numbered 0.. and the partial one comes last.
            for (i, t) in at.iter().enumerate() {
                assert_eq!(t.index(), i as u64);
            }
        }
        let partials: Vec<TileId> = tile::partial_tiles(s.size).collect();
        assert_eq!(
            partials,
            tiles
                .iter()
                .copied()
                .filter(|t| !t.is_full())
                .collect::<Vec<_>>()
        );
    }
    for e in &v.bundle_encodings {
        let entries: Vec<Vec<u8>> = e.entries.iter().map(|x| hex::decode(x).unwrap()).collect();
        let data = encode_bundle(&entries).unwrap();
        assert_eq!(hex::encode(&data), e.bundle, "{}", e.name);
        let id = BundleId::new(e.index, e.width).unwrap();
        let back = decode_bundle(&data, &id).unwrap();
        assert_eq!(
            back,
            entries.iter().map(Vec::as_slice).collect::<Vec<_>>(),
            "{}",
            e.name
        );
    }
}

#[derive(Deserialize)]
struct BadPaths {
    cases: Vec<BadPath>,
}

#[derive(Deserialize)]
struct BadPath {
    name: String,
    path: String,
}

#[test]
fn c2sp_tile_bad_path_vectors() {
    let v: BadPaths = load("c2sp_tlog_tiles_bad_paths.json");
    assert!(v.cases.len() > 30);
    for c in &v.cases {
        assert!(TileResource::parse(&c.path).is_err(), "{} accepted", c.name);
        assert!(TileId::from_path(&c.path).is_err(), "{} accepted", c.name);
        assert!(BundleId::from_path(&c.path).is_err(), "{} accepted", c.name);
    }
}

#[derive(Deserialize)]
struct BadBundles {
    cases: Vec<BadBundle>,
}

#[derive(Deserialize)]
struct BadBundle {
    name: String,
    index: u64,
    width: u16,
    bundle: String,
}

#[test]
fn c2sp_bad_bundle_vectors() {
    let v: BadBundles = load("c2sp_tlog_tiles_bad_bundles.json");
    for c in &v.cases {
        let id = BundleId::new(c.index, c.width).unwrap();
        let data = hex::decode(&c.bundle).unwrap();
        assert!(decode_bundle(&data, &id).is_err(), "{} accepted", c.name);
    }
    assert_eq!(encode_bundle::<Vec<u8>>(&[]), Err(BundleError::BadCount(0)));
    assert!(matches!(
        encode_bundle(&[vec![0u8; 65536]]),
        Err(BundleError::EntryTooLong {
            index: 0,
            len: 65536
        })
    ));
    assert!(encode_bundle(&vec![vec![1u8]; 257]).is_err());
}

#[test]
fn tile_coordinates_are_validated() {
    assert_eq!(TileId::new(0, 0, 0), Err(TileError::InvalidWidth(0)));
    assert_eq!(TileId::new(0, 0, 257), Err(TileError::InvalidWidth(257)));
    assert_eq!(TileId::new(8, 0, 1), Err(TileError::BeyondMaxTree));
    assert_eq!(TileId::new(7, 0, 256), Err(TileError::BeyondMaxTree));
    assert!(TileId::new(7, 0, 255).is_ok());
    assert_eq!(TileId::new(0, u64::MAX, 1), Err(TileError::BeyondMaxTree));
    // Every tile of the largest tree exists and covers leaves inside u64.
    for t in tile::partial_tiles(u64::MAX) {
        let (start, end) = t.leaf_range();
        assert!(start < end);
        assert!(TileId::new(t.level(), t.index(), t.width()).is_ok());
    }
    let t = TileId::new(1, 2, 3).unwrap();
    assert_eq!(t.leaf_range(), (2 * 256 * 256, (2 * 256 + 3) * 256));
    assert_eq!(t.node(0), Some(NodeId::new(8, 512)));
    assert_eq!(t.node(3), None);
    assert_eq!(t.nodes().count(), 3);
}

// ------------------------------------------------- proofs served from tiles

#[test]
fn proofs_from_fetched_tiles_equal_proofs_from_stored_hashes() {
    let (_, mem) = test_log(70_000);
    let size = mem.size();
    let root = mem.root();
    for (index, old) in [
        (0u64, 1u64),
        (69_999, 65_536),
        (12_345, 255),
        (65_535, 69_999),
        (300, 256),
    ] {
        // A client computes which tiles it needs and fetches only those.
        let mut nodes = merkle::inclusion_proof_nodes(index, size).unwrap();
        nodes.extend(merkle::consistency_proof_nodes(old, size).unwrap());
        nodes.extend(merkle::tree_root_nodes(old));
        let mut fetched = TileHashes::new();
        for t in tiles_for_nodes(&nodes, size) {
            fetched.insert(t, &tile_data(&t, &mem).unwrap()).unwrap();
        }
        let p = inclusion_proof(index, size, &fetched).unwrap();
        assert_eq!(p, inclusion_proof(index, size, &mem).unwrap());
        verify_inclusion(
            &mem.read_hash(NodeId::leaf(index)).unwrap(),
            index,
            size,
            &p,
            &root,
        )
        .unwrap();
        let c = consistency_proof(old, size, &fetched).unwrap();
        assert_eq!(c, consistency_proof(old, size, &mem).unwrap());
        let old_root = tree_root(old, &fetched).unwrap();
        verify_consistency(old, size, &old_root, &root, &c).unwrap();
    }
    // A tampered tile yields a proof that does not verify.
    let index = 1000;
    let nodes = merkle::inclusion_proof_nodes(index, size).unwrap();
    let mut fetched = TileHashes::new();
    for t in tiles_for_nodes(&nodes, size) {
        let mut data = tile_data(&t, &mem).unwrap();
        if t.level() == 1 {
            data[0] ^= 1;
        }
        fetched.insert(t, &data).unwrap();
    }
    let p = inclusion_proof(index, size, &fetched).unwrap();
    let leaf = mem.read_hash(NodeId::leaf(index)).unwrap();
    assert_eq!(
        verify_inclusion(&leaf, index, size, &p, &root),
        Err(ProofError::RootMismatch)
    );
    // Missing tiles are reported by coordinates.
    assert!(matches!(
        inclusion_proof(0, size, &TileHashes::new()),
        Err(ProveError::Read(tile::MissingTile {
            level: 0,
            index: 0,
            ..
        }))
    ));
}

#[test]
fn new_tiles_from_growing_log_rebuild_every_tile() {
    // Publishing only new_tiles at each checkpoint leaves the full set of the final size.
    let sizes = [
        0u64, 1, 5, 255, 256, 257, 1000, 65_535, 65_536, 65_537, 70_000,
    ];
    let mut published = std::collections::BTreeSet::new();
    for w in sizes.windows(2) {
        for t in new_tiles(w[0], w[1]).unwrap() {
            assert!(published.insert(t), "{t:?} published twice");
        }
    }
    let full_set: std::collections::BTreeSet<TileId> = tiles_for_size(70_000).collect();
    assert!(full_set.is_subset(&published));
    // Anything else published was a partial tile of an intermediate size.
    for t in published.difference(&full_set) {
        assert!(!t.is_full(), "{t:?}");
    }
}

// --------------------------------------------------- independent oracles

#[test]
fn ct_merkle_agrees_on_roots_and_proofs() {
    use ct_merkle::mem_backed_tree::MemoryBackedTree;
    use sha2::Sha256;
    let (entries, mem) = log300();
    let mut oracle = MemoryBackedTree::<Sha256, Vec<u8>>::new();
    for (i, e) in entries.iter().enumerate() {
        oracle.push(e.clone());
        let size = i as u64 + 1;
        let root = oracle.root();
        assert_eq!(
            root.as_bytes().as_slice(),
            tree_root(size, mem).unwrap().as_bytes()
        );
        if size > 128 && !size.is_multiple_of(16) {
            continue;
        }
        for index in 0..size {
            let ours: Vec<u8> = inclusion_proof(index, size, mem)
                .unwrap()
                .iter()
                .flat_map(|h| h.0)
                .collect();
            let theirs = oracle.prove_inclusion(index as usize);
            assert_eq!(
                theirs.as_bytes(),
                ours.as_slice(),
                "inclusion {index} in {size}"
            );
            root.verify_inclusion(e_at(entries, index), index, &theirs)
                .unwrap();
        }
        for old in 1..size {
            let ours: Vec<u8> = consistency_proof(old, size, mem)
                .unwrap()
                .iter()
                .flat_map(|h| h.0)
                .collect();
            let theirs = oracle.prove_consistency((size - old) as usize);
            assert_eq!(
                theirs.as_bytes(),
                ours.as_slice(),
                "consistency {old} -> {size}"
            );
        }
    }
}

fn e_at(entries: &[Vec<u8>], i: u64) -> &Vec<u8> {
    &entries[i as usize]
}

/// tlog_tiles reads hashes by Go's linear "stored hash index".
struct GoStore(Vec<tlog_tiles::Hash>);

impl tlog_tiles::HashReader for GoStore {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        Ok(indexes.iter().map(|&i| self.0[i as usize]).collect())
    }
}

#[test]
fn tlog_tiles_agrees_on_paths_new_tiles_proofs_and_tile_data() {
    // Paths: Go's sumdb layout carries the height (tile/8/...) and calls bundles
    // "data"; C2SP drops the height and says "entries".
    let mut ids = vec![];
    for level in 0..=7u8 {
        for index in [
            0u64,
            1,
            9,
            10,
            99,
            999,
            1000,
            1001,
            999_999,
            1_000_000,
            1_234_067,
            123_456_789_012,
        ] {
            for width in [1u16, 2, 17, 255, 256] {
                if let Ok(t) = TileId::new(level, index, width) {
                    ids.push(t);
                }
            }
        }
    }
    assert!(ids.len() > 300);
    for t in &ids {
        let go = tlog_tiles::Tile::new(8, t.level(), t.index(), u32::from(t.width()), false);
        assert_eq!(t.path(), go.path().replacen("tile/8/", "tile/", 1));
        if let Some(b) = t.bundle() {
            let go = tlog_tiles::Tile::new(8, 0, b.index(), u32::from(b.width()), true);
            assert_eq!(
                b.path(),
                go.path().replacen("tile/8/data/", "tile/entries/", 1)
            );
        }
    }
    // Tiles to publish on growth.
    let sizes = [
        0u64, 1, 2, 100, 255, 256, 257, 511, 512, 4096, 65_535, 65_536, 65_537, 70_000, 16_777_216,
        16_777_300,
    ];
    for &old in &sizes {
        for &new in &sizes {
            if old > new {
                continue;
            }
            let ours: Vec<(u8, u64, u32)> = new_tiles(old, new)
                .unwrap()
                .map(|t| (t.level(), t.index(), u32::from(t.width())))
                .collect();
            let theirs: Vec<(u8, u64, u32)> = tlog_tiles::Tile::new_tiles(8, old, new)
                .iter()
                .map(|t| (t.level(), t.level_index(), t.width()))
                .collect();
            assert_eq!(ours, theirs, "{old} -> {new}");
        }
    }
    // Proofs, roots and tile contents over Go's stored-hash layout.
    let (entries, mem) = test_log(600);
    let mut go = GoStore(vec![]);
    for (n, e) in entries.iter().enumerate() {
        let new = tlog_tiles::stored_hashes(n as u64, e, &go).unwrap();
        go.0.extend(new);
    }
    for size in (1..=600u64).step_by(37).chain([256, 512, 600]) {
        let root = tlog_tiles::tree_hash(size, &go).unwrap();
        assert_eq!(root.0, tree_root(size, &mem).unwrap().0, "root {size}");
        for index in (0..size).step_by(11) {
            let theirs = tlog_tiles::prove_record(size, index, &go).unwrap();
            let ours = inclusion_proof(index, size, &mem).unwrap();
            assert_eq!(
                theirs.iter().map(|h| h.0).collect::<Vec<_>>(),
                ours.iter().map(|h| h.0).collect::<Vec<_>>()
            );
        }
        for old in (1..=size).step_by(13) {
            let theirs = tlog_tiles::prove_tree(size, old, &go).unwrap();
            let ours = consistency_proof(old, size, &mem).unwrap();
            assert_eq!(
                theirs.iter().map(|h| h.0).collect::<Vec<_>>(),
                ours.iter().map(|h| h.0).collect::<Vec<_>>(),
                "{old} -> {size}"
            );
        }
        for t in tiles_for_size(size) {
            let go_tile =
                tlog_tiles::Tile::new(8, t.level(), t.index(), u32::from(t.width()), false);
            assert_eq!(
                go_tile.read_data(&go).unwrap(),
                tile_data(&t, &mem).unwrap(),
                "{t:?}"
            );
        }
    }
}
