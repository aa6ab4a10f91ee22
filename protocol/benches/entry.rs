//! Criterion benchmarks: entry decoding and ledger rule checks.
//! Run: `cargo bench -p pledge-protocol --bench entry`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use pledge_protocol::entry::Entry;
use pledge_protocol::ledger::{LedgerState, PledgeKeys, verify_pledge};
use std::hint::black_box;

fn log() -> Vec<(Vec<u8>, Entry)> {
    let path = format!("{}/tests/vectors/entries.json", env!("CARGO_MANIFEST_DIR"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let b = hex::decode(e["entry"].as_str().unwrap()).unwrap();
            let entry = Entry::decode(&b).unwrap();
            (b, entry)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let log = log();
    let (pledge_bytes, pledge) = &log[1];
    c.bench_function("entry/decode_pledge", |b| {
        b.iter(|| Entry::decode(black_box(pledge_bytes)).unwrap())
    });
    c.bench_function("entry/encode_pledge", |b| {
        b.iter(|| black_box(pledge).encode().unwrap())
    });
    c.bench_function("entry/leaf_hash_pledge", |b| {
        b.iter(|| black_box(pledge).leaf_hash().unwrap())
    });
    let Entry::CampaignOpened(open) = &log[0].1 else {
        panic!("first vector entry is not CampaignOpened")
    };
    let Entry::Pledge(p) = pledge else {
        panic!("second vector entry is not a Pledge")
    };
    c.bench_function("ledger/verify_pledge (RSA + Ed25519)", |b| {
        b.iter(|| verify_pledge(black_box(p), &open.issuer_key).unwrap())
    });
    let mut state = LedgerState::new();
    state
        .verify_and_apply(log[0].1.clone(), &mut PledgeKeys::new())
        .unwrap();
    c.bench_function("ledger/check_pledge_stateful_only", |b| {
        b.iter(|| state.check(black_box(pledge)).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
