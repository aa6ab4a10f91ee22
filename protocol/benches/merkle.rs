//! Criterion benchmarks: Merkle append (1M leaves), root, inclusion and
//! consistency proof generation + verification at size 1M.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use pledge_protocol::hash::Hash;
use pledge_protocol::merkle::{
    HashReader, MemoryHashes, NodeId, Tree, consistency_proof, inclusion_proof, leaf_hash,
    tree_root, verify_consistency, verify_inclusion,
};
use std::hint::black_box;
use std::time::Duration;

const N: u64 = 1_000_000;

fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

fn bench_append(c: &mut Criterion) {
    let all = leaves(N);
    let mut g = c.benchmark_group("merkle_append");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(N));
    // Per-append cost = reported time / 1M (criterion prints elements/s).
    g.bench_function("tree_1M_leaves", |b| {
        b.iter(|| {
            let mut t = Tree::new();
            for l in &all {
                t.append(*l).unwrap();
            }
            black_box(t.root())
        })
    });
    g.bench_function("tree_1M_leaves_with_stored_hashes", |b| {
        b.iter(|| {
            let mut t = Tree::new();
            let mut stored = Vec::with_capacity(2 * N as usize);
            for l in &all {
                t.append_with(*l, |n, h| stored.push((n, h))).unwrap();
            }
            black_box(stored.len())
        })
    });
    g.bench_function("memory_hashes_1M_leaves", |b| {
        b.iter(|| {
            let mut m = MemoryHashes::new();
            for l in &all {
                m.push(*l).unwrap();
            }
            black_box(m.size())
        })
    });
    g.finish();
}

fn bench_proofs(c: &mut Criterion) {
    let mut mem = MemoryHashes::new();
    for l in leaves(N) {
        mem.push(l).unwrap();
    }
    let root = mem.root();
    let tree = Tree::from_reader(N, &mem).unwrap();
    let mut g = c.benchmark_group("merkle_1M");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    let mut i = 0u64;
    g.bench_function("inclusion_proof_generate_and_verify", |b| {
        b.iter(|| {
            // A different leaf each time, spread over the tree.
            i = (i + 7_919) % N;
            let proof = inclusion_proof(i, N, &mem).unwrap();
            let leaf = mem.read_hash(NodeId::leaf(i)).unwrap();
            verify_inclusion(&leaf, i, N, &proof, &root).unwrap();
            black_box(proof.len())
        })
    });
    let mut old = 1u64;
    g.bench_function("consistency_proof_generate_and_verify", |b| {
        b.iter(|| {
            old = (old + 7_919) % N + 1;
            let proof = consistency_proof(old, N, &mem).unwrap();
            let old_root = tree_root(old, &mem).unwrap();
            verify_consistency(old, N, &old_root, &root, &proof).unwrap();
            black_box(proof.len())
        })
    });
    g.bench_function("tree_root_from_stored_hashes", |b| {
        b.iter(|| black_box(tree_root(black_box(N - 1), &mem).unwrap()))
    });
    g.bench_function("tree_root_from_frontier", |b| {
        b.iter(|| black_box(tree.root()))
    });
    g.bench_function("single_append_at_1M", |b| {
        b.iter_batched(
            || tree.clone(),
            |mut t| black_box(t.append(root).unwrap()),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_append, bench_proofs);
criterion_main!(benches);
