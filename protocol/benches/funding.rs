//! Criterion benchmarks of the joint (conditional funding) tally at one
//! million live pledges (SPEC R-FUND-1…R-FUND-3): incremental updates, the
//! breakpoint sweep a ledger runs when it signs a statement, the snapshot,
//! the from-scratch recomputation an auditor runs, and the allocation of
//! every pledge at the close.
//!
//!     cargo bench -p pledge-protocol --bench funding
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use pledge_protocol::funding::{FundingTally, allocate, recompute_joint};
use pledge_protocol::hash::{Hash, Nullifier};
use pledge_protocol::pledge::Terms;
use std::hint::black_box;

const LIVE: u32 = 1_000_000;
/// A funding campaign's thresholds fit one statement: a few thousand
/// distinct values (the server refuses wider ranges, R-FUND-6).
const T_MAX: u32 = 1_000;
/// EUR 50, 100, 200: the `pledged --demo` menu.
const MENU: [u64; 3] = [5_000, 10_000, 20_000];

/// xorshift64*: deterministic draws without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Thresholds skewed to small groups (`t_max · u²`).
    fn threshold(&mut self) -> u32 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((u * u * f64::from(T_MAX)) as u32).clamp(1, T_MAX)
    }

    /// 60 % act, 25 % act if supported (a menu level), 15 % fund EUR 10 to
    /// EUR 1,000: enough money that A is set by the money, not the people.
    fn terms(&mut self) -> Terms {
        let t = self.threshold();
        match self.next() % 100 {
            0..60 => Terms::Threshold { t },
            60..85 => Terms::SupportedThreshold {
                t,
                support: MENU[(self.next() % 3) as usize],
            },
            _ => Terms::Fund {
                n: t,
                amount: 1_000 + self.next() % 99_001,
            },
        }
    }
}

fn pledges() -> Vec<Terms> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..LIVE).map(|_| rng.terms()).collect()
}

fn bench(c: &mut Criterion) {
    let terms = pledges();
    let mut tally = FundingTally::new(T_MAX, &MENU).unwrap();
    for t in &terms {
        tally.add(t).unwrap();
    }
    let joint = tally.joint().unwrap();
    eprintln!(
        "1M mixed: live {} A {} funds {} cost {} demand {} levels {:?} next {:?}",
        tally.live(),
        joint.active,
        joint.funds,
        joint.cost,
        joint.demand,
        joint.levels,
        tally.next_funding().unwrap()
    );
    let mut rng = Rng(42);
    c.bench_function("funding/1M/add+remove", |b| {
        b.iter(|| {
            let t = rng.terms();
            tally.add(black_box(&t)).unwrap();
            tally.remove(black_box(&t)).unwrap();
        });
    });
    c.bench_function("funding/1M/joint (breakpoint sweep)", |b| {
        b.iter(|| black_box(&tally).joint().unwrap().active);
    });
    c.bench_function("funding/1M/next_funding", |b| {
        b.iter(|| black_box(&tally).next_funding().unwrap());
    });
    let mut group = c.benchmark_group("funding/1M/whole");
    group.sample_size(10);
    group.bench_function("snapshot", |b| {
        b.iter(|| tally.snapshot().unwrap().live());
    });
    group.bench_function("recompute_joint from scratch (auditor)", |b| {
        b.iter(|| recompute_joint(black_box(&terms)).unwrap().active);
    });
    let with_ids: Vec<(Nullifier, Terms)> = terms
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut n = [0u8; 32];
            n[..8].copy_from_slice(&(i as u64).to_be_bytes());
            (Nullifier(n), *t)
        })
        .collect();
    let root = Hash([0x11; 32]);
    group.bench_function("allocate every pledge at the close", |b| {
        b.iter(|| {
            allocate(&root, black_box(&with_ids), false)
                .unwrap()
                .1
                .len()
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
